//! A provisioned library's prefix (`lib/`, `include/`) as one blob, for the remote
//! cache: a machine that never built OpenSSL unpacks what another one built.
//!
//! The format is kiln's own and deliberately small, since the bytes come from a
//! remote and are untrusted until checked: a magic line, then per regular file its
//! relative path, mode bit (executable or not) and bytes, in path order. Unpacking
//! accepts only relative paths of normal components under `lib`, `lib64` or
//! `include`, bounded sizes, and writes into a fresh directory.

use kiln_diagnostics::{Error, IoContext, Result};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

const MAGIC: &[u8] = b"kiln-native-archive v1\n";
/// Largest archive member and path kiln accepts.
const MAX_FILE: u64 = 1 << 30;
const MAX_PATH: u32 = 4096;
/// Most members an archive may have (OpenSSL's prefix has about 150).
const MAX_FILES: usize = 20_000;
/// The list of an installed prefix's files and digests, written last.
const MANIFEST: &str = "kiln-manifest.txt";
/// The top-level directories a prefix may hold.
const TOPS: &[&str] = &["lib", "lib64", "include"];

/// Writes the regular files under `prefix`'s `lib`, `lib64` and `include` to `dest`.
pub fn pack(prefix: &Path, dest: &Path) -> Result<()> {
    let files = prefix_files(prefix)?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(dest).io_context("create", dest)?);
    let mut write = || -> std::io::Result<()> {
        out.write_all(MAGIC)?;
        for rel in &files {
            let path = prefix.join(rel);
            let text = rel.to_string_lossy().replace('\\', "/");
            let meta = std::fs::metadata(&path)?;
            out.write_all(&(text.len() as u32).to_le_bytes())?;
            out.write_all(text.as_bytes())?;
            out.write_all(&[u8::from(is_executable(&meta))])?;
            out.write_all(&meta.len().to_le_bytes())?;
            std::io::copy(&mut std::fs::File::open(&path)?, &mut out)?;
        }
        out.flush()?;
        out.get_ref().sync_all()
    };
    write().io_context("write", dest)
}

fn collect(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries {
        let e = e.io_context("read", dir)?;
        let t = e.file_type().io_context("read", &e.path())?;
        let r = rel.join(e.file_name());
        if t.is_dir() {
            collect(&e.path(), &r, out)?;
        } else if t.is_file() {
            out.push(r);
        }
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &std::fs::Metadata) -> bool {
    false
}

/// Unpacks the archive `src` into `dest`, which must not exist yet, and seals it
/// (see [`seal`]). Anything malformed is an error and leaves `dest` absent.
pub fn unpack(src: &Path, dest: &Path) -> Result<()> {
    let result = unpack_into(src, dest).and_then(|()| seal(dest));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(dest);
    }
    result
}

/// The files of a prefix's `lib`, `lib64` and `include`, relative, sorted.
fn prefix_files(prefix: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for top in TOPS {
        collect(&prefix.join(top), Path::new(top), &mut files)?;
    }
    files.sort();
    Ok(files)
}

/// The manifest text of `prefix`: a line `<sha256>  <path>` per file.
fn manifest(prefix: &Path) -> Result<String> {
    let mut text = String::new();
    for rel in prefix_files(prefix)? {
        let path = prefix.join(&rel);
        let (sha, _) = kiln_fs::sha256_file(&path).io_context("read", &path)?;
        text.push_str(&format!(
            "{sha}  {}\n",
            rel.to_string_lossy().replace('\\', "/")
        ));
    }
    Ok(text)
}

/// Records every file of an installed prefix with its digest (synced), so that a
/// later build uses the prefix only if it is still exactly what was installed.
pub fn seal(prefix: &Path) -> Result<()> {
    let text = manifest(prefix)?;
    kiln_fs::write_synced(&prefix.join(MANIFEST), text.as_bytes())?;
    kiln_fs::sync_dir(prefix)
}

/// Whether `prefix` holds a sealed installation whose files are unchanged: an
/// interrupted, tampered with or older (unsealed) prefix is not used.
pub fn is_intact(prefix: &Path) -> bool {
    let Ok(recorded) = std::fs::read_to_string(prefix.join(MANIFEST)) else {
        return false;
    };
    !recorded.is_empty() && manifest(prefix).is_ok_and(|now| now == recorded)
}

fn unpack_into(src: &Path, dest: &Path) -> Result<()> {
    let bad = |why: &str| Error::remote(format!("a native-library archive is malformed: {why}"));
    let mut r = std::io::BufReader::new(std::fs::File::open(src).io_context("open", src)?);
    let mut magic = vec![0u8; MAGIC.len()];
    r.read_exact(&mut magic).map_err(|_| bad("too short"))?;
    if magic != MAGIC {
        return Err(bad("not a kiln archive"));
    }
    std::fs::create_dir(dest).io_context("create", dest)?;
    let mut dirs = std::collections::BTreeSet::new();
    for count in 0.. {
        let mut len = [0u8; 4];
        match r.read(&mut len[..1]) {
            Ok(0) => break,
            Ok(_) => r.read_exact(&mut len[1..]).map_err(|_| bad("truncated"))?,
            Err(e) => return Err(Error::io("read", src, e)),
        }
        if count >= MAX_FILES {
            return Err(bad("too many files"));
        }
        let len = u32::from_le_bytes(len);
        if len == 0 || len > MAX_PATH {
            return Err(bad("a path is empty or too long"));
        }
        let mut name = vec![0u8; len as usize];
        r.read_exact(&mut name).map_err(|_| bad("truncated"))?;
        let name = String::from_utf8(name).map_err(|_| bad("a path is not UTF-8"))?;
        let rel = safe_relative(&name).ok_or_else(|| bad("a path leaves the prefix"))?;
        let mut head = [0u8; 9];
        r.read_exact(&mut head).map_err(|_| bad("truncated"))?;
        let size = u64::from_le_bytes(head[1..].try_into().expect("8 bytes"));
        if size > MAX_FILE {
            return Err(bad("a file is too large"));
        }
        let path = dest.join(&rel);
        if path.exists() {
            return Err(bad("a path appears twice"));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).io_context("create", parent)?;
            dirs.insert(parent.to_path_buf());
        }
        let mut f = std::fs::File::create(&path).io_context("create", &path)?;
        let copied = std::io::copy(&mut (&mut r).take(size), &mut f).io_context("write", &path)?;
        if copied != size {
            return Err(bad("truncated"));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = if head[0] == 1 { 0o755 } else { 0o644 };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .io_context("set permissions on", &path)?;
        }
        f.sync_all().io_context("sync", &path)?;
    }
    // The files are synced; their directory entries too, before the caller renames
    // the prefix into place.
    for d in dirs.iter().chain([&dest.to_path_buf()]) {
        kiln_fs::sync_dir(d)?;
    }
    Ok(())
}

/// `name` as a relative path of normal components under one of [`TOPS`].
fn safe_relative(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    let mut comps = p.components();
    match comps.next() {
        Some(Component::Normal(top)) if TOPS.iter().any(|t| top == *t) => {}
        _ => return None,
    }
    if name.contains('\\')
        || !comps.all(|c| matches!(c, Component::Normal(_)))
        || p.components().count() < 2
    {
        return None;
    }
    Some(p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_hostile_archives() {
        let d = tempfile::tempdir().unwrap();
        let prefix = d.path().join("prefix");
        std::fs::create_dir_all(prefix.join("lib/pkgconfig")).unwrap();
        std::fs::create_dir_all(prefix.join("include/openssl")).unwrap();
        std::fs::write(prefix.join("lib/libcrypto.a"), b"ar").unwrap();
        std::fs::write(prefix.join("lib/pkgconfig/x.pc"), b"pc").unwrap();
        std::fs::write(prefix.join("include/openssl/ssl.h"), b"h").unwrap();
        std::fs::write(prefix.join("stray"), b"not packed").unwrap();
        let blob = d.path().join("blob");
        pack(&prefix, &blob).unwrap();
        let again = d.path().join("again");
        pack(&prefix, &again).unwrap();
        assert_eq!(
            std::fs::read(&blob).unwrap(),
            std::fs::read(&again).unwrap(),
            "deterministic"
        );
        let out = d.path().join("out");
        unpack(&blob, &out).unwrap();
        assert_eq!(
            std::fs::read(out.join("lib/pkgconfig/x.pc")).unwrap(),
            b"pc"
        );
        assert_eq!(
            std::fs::read(out.join("include/openssl/ssl.h")).unwrap(),
            b"h"
        );
        assert!(!out.join("stray").exists());

        for name in ["../evil", "/etc/passwd", "lib/../../x", "etc/x", "lib"] {
            let mut bytes = MAGIC.to_vec();
            bytes.extend((name.len() as u32).to_le_bytes());
            bytes.extend(name.as_bytes());
            bytes.push(0);
            bytes.extend(1u64.to_le_bytes());
            bytes.push(b'x');
            let evil = d.path().join("evil");
            std::fs::write(&evil, bytes).unwrap();
            let dest = d.path().join("evil-out");
            assert!(unpack(&evil, &dest).is_err(), "{name}");
            assert!(!dest.exists(), "{name}");
        }
        // Sealed on unpack; any change to an installed file makes it not intact.
        assert!(is_intact(&out));
        std::fs::write(out.join("lib/pkgconfig/x.pc"), b"PC").unwrap();
        assert!(!is_intact(&out));
        assert!(!is_intact(&prefix), "never sealed");
        seal(&prefix).unwrap();
        assert!(is_intact(&prefix));
        std::fs::write(prefix.join("lib/extra.a"), b"planted").unwrap();
        assert!(!is_intact(&prefix), "a file added after sealing");

        let mut many = MAGIC.to_vec();
        for i in 0..=MAX_FILES {
            let name = format!("lib/f{i}");
            many.extend((name.len() as u32).to_le_bytes());
            many.extend(name.as_bytes());
            many.push(0);
            many.extend(0u64.to_le_bytes());
        }
        let crowded = d.path().join("many");
        std::fs::write(&crowded, many).unwrap();
        let e = unpack(&crowded, &d.path().join("many-out")).unwrap_err();
        assert!(e.to_string().contains("too many files"), "{e}");
        assert!(!d.path().join("many-out").exists());

        let truncated = d.path().join("trunc");
        let full = std::fs::read(&blob).unwrap();
        std::fs::write(&truncated, &full[..full.len() - 1]).unwrap();
        assert!(unpack(&truncated, &d.path().join("t-out")).is_err());
    }
}
