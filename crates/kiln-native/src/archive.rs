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
/// The top-level directories a prefix may hold.
const TOPS: &[&str] = &["lib", "lib64", "include"];

/// Writes the regular files under `prefix`'s `lib`, `lib64` and `include` to `dest`.
pub fn pack(prefix: &Path, dest: &Path) -> Result<()> {
    let mut files = Vec::new();
    for top in TOPS {
        collect(&prefix.join(top), Path::new(top), &mut files)?;
    }
    files.sort();
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

/// Unpacks the archive `src` into `dest`, which must not exist yet. Anything
/// malformed is an error and leaves `dest` absent.
pub fn unpack(src: &Path, dest: &Path) -> Result<()> {
    let result = unpack_into(src, dest);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(dest);
    }
    result
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
    loop {
        let mut len = [0u8; 4];
        match r.read(&mut len[..1]) {
            Ok(0) => return Ok(()),
            Ok(_) => r.read_exact(&mut len[1..]).map_err(|_| bad("truncated"))?,
            Err(e) => return Err(Error::io("read", src, e)),
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
    }
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
        let truncated = d.path().join("trunc");
        let full = std::fs::read(&blob).unwrap();
        std::fs::write(&truncated, &full[..full.len() - 1]).unwrap();
        assert!(unpack(&truncated, &d.path().join("t-out")).is_err());
    }
}
