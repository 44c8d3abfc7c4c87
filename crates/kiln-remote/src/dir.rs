//! A shared directory (NFS, a mounted volume, a CI artifact) as a remote cache.

use crate::{check_name, Remote};
use kiln_diagnostics::{Error, IoContext, Result};
use std::path::{Path, PathBuf};

/// `file:///path`: `blobs/<sha256>`, `entries/<key>.json`, `learned/<id>.json`.
/// Every write goes to a temporary name in the same directory and is renamed, so a
/// reader never sees a partial file and concurrent writers of one name are harmless.
#[derive(Debug, Clone)]
pub struct DirRemote {
    root: PathBuf,
}

impl DirRemote {
    /// A remote rooted at `path` (created when missing).
    pub fn new(path: &str) -> Result<Self> {
        let root = PathBuf::from(path);
        if !root.is_absolute() {
            return Err(
                Error::usage(format!("remote cache directory `{path}` is not absolute"))
                    .hint("write it as `file:///absolute/path`"),
            );
        }
        Ok(DirRemote { root })
    }

    fn path(&self, kind: &str, name: &str) -> Result<PathBuf> {
        check_name(name)?;
        Ok(self.root.join(kind).join(name))
    }

    fn read(&self, kind: &str, name: &str) -> Result<Option<Vec<u8>>> {
        let p = self.path(kind, name)?;
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", &p, e)),
        }
    }

    fn write(&self, kind: &str, name: &str, bytes: &[u8]) -> Result<()> {
        kiln_fs::write_atomic(&self.path(kind, name)?, bytes)
    }
}

impl Remote for DirRemote {
    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn ping(&self) -> Result<()> {
        std::fs::create_dir_all(&self.root).io_context("create", &self.root)
    }

    fn get_entry(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.read("entries", &format!("{key}.json"))
    }

    fn put_entry(&self, key: &str, json: &[u8]) -> Result<()> {
        self.write("entries", &format!("{key}.json"), json)
    }

    fn get_blob(&self, sha256: &str, size: u64, dest: &Path) -> Result<bool> {
        let src = self.path("blobs", sha256)?;
        if !src.is_file() {
            return Ok(false);
        }
        if std::fs::metadata(&src).map_or(0, |m| m.len()) > size {
            return Err(kiln_diagnostics::Error::usage(format!(
                "blob {sha256} is larger than its entry says ({size} bytes)"
            )));
        }
        let tmp = kiln_fs::temp_path(dest);
        std::fs::copy(&src, &tmp).io_context("copy", &src)?;
        std::fs::rename(&tmp, dest).io_context("rename into", dest)?;
        Ok(true)
    }

    fn has_blob(&self, sha256: &str) -> Result<bool> {
        Ok(self.path("blobs", sha256)?.is_file())
    }

    fn put_blob(&self, sha256: &str, _size: u64, src: &Path) -> Result<()> {
        let dest = self.path("blobs", sha256)?;
        let dir = dest.parent().expect("blob dir");
        std::fs::create_dir_all(dir).io_context("create", dir)?;
        let tmp = kiln_fs::temp_path(&dest);
        std::fs::copy(src, &tmp).io_context("copy", src)?;
        std::fs::rename(&tmp, &dest).io_context("rename into", &dest)
    }

    fn learned_ids(&self) -> Result<Vec<String>> {
        let dir = self.root.join("learned");
        Ok(std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json").map(String::from)
            })
            .collect())
    }

    fn get_learned(&self, id: &str) -> Result<Option<Vec<u8>>> {
        self.read("learned", &format!("{id}.json"))
    }

    fn put_learned(&self, id: &str, json: &[u8]) -> Result<()> {
        self.write("learned", &format!("{id}.json"), json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_path_tricks() {
        let dir = tempfile::tempdir().unwrap();
        let r = DirRemote::new(dir.path().to_str().unwrap()).unwrap();
        r.ping().unwrap();
        assert_eq!(r.get_entry("abc").unwrap(), None);
        r.put_entry("abc", b"{}").unwrap();
        assert_eq!(r.get_entry("abc").unwrap().unwrap(), b"{}");
        let src = dir.path().join("bin");
        std::fs::write(&src, b"elf").unwrap();
        r.put_blob("f00", 3, &src).unwrap();
        assert!(r.has_blob("f00").unwrap());
        let dest = dir.path().join("out");
        assert!(r.get_blob("f00", 3, &dest).unwrap());
        assert_eq!(std::fs::read(&dest).unwrap(), b"elf");
        r.put_learned("pkg-0123", b"{}").unwrap();
        assert_eq!(r.learned_ids().unwrap(), ["pkg-0123"]);
        assert!(r.get_entry("../../etc/passwd").is_err());
        assert!(DirRemote::new("relative/dir").is_err());
    }
}
