//! A ustar writer that sets every header field itself, so the same entries always give
//! the same bytes (the `tar` crate's deterministic mode still leaves some choices to it).

use std::io::{self, Read, Write};
use std::path::PathBuf;

/// What a tar entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A directory.
    Dir,
    /// A regular file with these bytes.
    Bytes(Vec<u8>),
    /// A regular file read from disk while writing.
    File(PathBuf),
}

/// One entry of a layer: a path relative to `/`, its content and ownership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `etc/passwd`, `usr/local/bin/app` (no leading slash; directories without a trailing one).
    pub path: String,
    /// Content.
    pub content: Content,
    /// Permission bits (`0o755`, `0o1777`).
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
}

impl Entry {
    /// A root-owned directory.
    pub fn dir(path: &str, mode: u32) -> Self {
        Self::owned_dir(path, mode, 0, 0)
    }

    /// A directory owned by `uid:gid`.
    pub fn owned_dir(path: &str, mode: u32, uid: u32, gid: u32) -> Self {
        Entry {
            path: path.trim_matches('/').into(),
            content: Content::Dir,
            mode,
            uid,
            gid,
        }
    }

    /// A root-owned file.
    pub fn file(path: &str, mode: u32, content: Content) -> Self {
        Entry {
            path: path.trim_matches('/').into(),
            content,
            mode,
            uid: 0,
            gid: 0,
        }
    }
}

/// Writes `entries` as a tar stream, sorted by path, with the parent directories
/// added where missing (root-owned, 0755) and every mtime set to `mtime`.
pub(crate) fn write(entries: &[Entry], mtime: u64, out: &mut impl Write) -> io::Result<()> {
    for e in normalize(entries) {
        let (size, typeflag) = match &e.content {
            Content::Dir => (0, b'5'),
            Content::Bytes(b) => (b.len() as u64, b'0'),
            Content::File(p) => (std::fs::metadata(p)?.len(), b'0'),
        };
        let name = match e.content {
            Content::Dir => format!("{}/", e.path),
            _ => e.path.clone(),
        };
        out.write_all(&header(&name, e.mode, e.uid, e.gid, size, mtime, typeflag)?)?;
        let written = match &e.content {
            Content::Dir => 0,
            Content::Bytes(b) => {
                out.write_all(b)?;
                b.len() as u64
            }
            Content::File(p) => io::copy(&mut std::fs::File::open(p)?.take(size), out)?,
        };
        if written != size {
            return Err(io::Error::other(format!(
                "{} changed while it was read",
                e.path
            )));
        }
        let pad = (512 - size % 512) % 512;
        out.write_all(&vec![0; pad as usize])?;
    }
    out.write_all(&[0; 1024])
}

/// Entries sorted by path, parents added; of two entries for one path the later wins.
fn normalize(entries: &[Entry]) -> Vec<Entry> {
    let mut all: std::collections::BTreeMap<String, Entry> = Default::default();
    for e in entries {
        all.insert(e.path.clone(), e.clone());
    }
    // Missing parents, root-owned.
    let paths: Vec<String> = all.keys().cloned().collect();
    for p in paths {
        for a in std::path::Path::new(&p).ancestors().skip(1) {
            let a = a.to_string_lossy();
            if !a.is_empty() && !all.contains_key(a.as_ref()) {
                all.insert(a.to_string(), Entry::dir(&a, 0o755));
            }
        }
    }
    all.into_values().collect()
}

fn header(
    name: &str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: u64,
    typeflag: u8,
) -> io::Result<[u8; 512]> {
    let mut h = [0u8; 512];
    let (prefix, name) = split_name(name)?;
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], mode as u64);
    octal(&mut h[108..116], uid as u64);
    octal(&mut h[116..124], gid as u64);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[156] = typeflag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // uname/gname stay empty: images are read by numeric ids.
    octal(&mut h[329..337], 0);
    octal(&mut h[337..345], 0);
    h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| *b as u32).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    Ok(h)
}

/// Splits a long path into ustar's prefix (155) and name (100) fields.
fn split_name(path: &str) -> io::Result<(&str, &str)> {
    if path.len() <= 100 {
        return Ok(("", path));
    }
    let too_long = || io::Error::other(format!("path too long for a tar header: {path}"));
    // By bytes: the 156th byte may be inside a multi-byte character, and `/` (ASCII)
    // is always a character boundary.
    let limit = path.len().min(156);
    let cut = path.as_bytes()[..limit]
        .iter()
        .rposition(|b| *b == b'/')
        .ok_or_else(too_long)?;
    let (prefix, name) = (&path[..cut], &path[cut + 1..]);
    if name.len() > 100 || name.is_empty() {
        return Err(too_long());
    }
    Ok((prefix, name))
}

fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
    field[digits] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_path_with_multibyte_characters_splits_or_fails_cleanly() {
        // `é` is two bytes; byte 156 falls inside one of them.
        let path = format!("{}/{}", "é".repeat(77), "x".repeat(10));
        let (prefix, name) = split_name(&path).unwrap();
        assert_eq!((prefix.len(), name), (154, "xxxxxxxxxx"));
        let long = format!("data/{}", "é".repeat(120));
        assert!(split_name(&long).is_err());
    }

    #[test]
    fn sorted_with_parents_and_fixed_fields() {
        let entries = vec![
            Entry::file("usr/local/bin/app", 0o755, Content::Bytes(b"hi".to_vec())),
            Entry::owned_dir("data", 0o755, 1000, 1000),
        ];
        let mut a = Vec::new();
        write(&entries, 42, &mut a).unwrap();
        let mut b = Vec::new();
        write(
            &entries.iter().rev().cloned().collect::<Vec<_>>(),
            42,
            &mut b,
        )
        .unwrap();
        assert_eq!(a, b, "order of input does not matter");
        let names: Vec<String> = a
            .chunks(512)
            .filter(|h| h[257..262] == *b"ustar")
            .map(|h| {
                String::from_utf8_lossy(&h[..100])
                    .trim_end_matches('\0')
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            [
                "data/",
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                "usr/local/bin/app"
            ]
        );
        let data = &a[..512];
        assert_eq!(&data[108..115], b"0001750", "uid 1000");
        assert_eq!(&data[136..147], b"00000000052", "mtime 42");
    }

    #[test]
    fn long_paths_use_the_prefix_field() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(20));
        let (p, n) = split_name(&long).unwrap();
        assert_eq!((p.len(), n.len()), (120, 20));
        assert!(split_name(&"x".repeat(300)).is_err());
    }
}
