//! A shared directory (NFS, a mounted volume, a CI artifact) as a remote cache.
//!
//! Whoever can write the directory controls what kiln reads from it, so every read
//! opens regular files only (no symlinks, FIFOs or devices), reads no more than the
//! record allows (an entry or learned record: [`MAX_RECORD`]; a blob: its entry's
//! size), and runs under the remote's timeout like a network remote's requests: a
//! hung NFS mount skips the remote instead of hanging the build.

use crate::{check_name, Remote};
use kiln_diagnostics::{Error, IoContext, Result};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The largest entry or learned record read from a shared directory.
const MAX_RECORD: u64 = 16 << 20;

/// `file:///path`: `blobs/<sha256>`, `entries/<key>.json`, `learned/<id>.json`.
/// Every write goes to a temporary name in the same directory and is renamed, so a
/// reader never sees a partial file and concurrent writers of one name are harmless.
#[derive(Debug, Clone)]
pub struct DirRemote {
    root: PathBuf,
    timeout: Duration,
}

impl DirRemote {
    /// A remote rooted at `path` (created when missing); each operation may take
    /// `timeout`.
    pub fn new(path: &str, timeout: Duration) -> Result<Self> {
        let root = PathBuf::from(path);
        if !root.is_absolute() {
            return Err(
                Error::usage(format!("remote cache directory `{path}` is not absolute"))
                    .hint("write it as `file:///absolute/path`"),
            );
        }
        Ok(DirRemote { root, timeout })
    }

    fn path(&self, kind: &str, name: &str) -> Result<PathBuf> {
        check_name(name)?;
        Ok(self.root.join(kind).join(name))
    }

    /// Runs `op` on a thread of its own and waits at most the timeout: a file
    /// system that stops answering is a remote failure (the remote is skipped), and
    /// the stuck thread is left behind rather than the build.
    fn timed<T: Send + 'static>(
        &self,
        what: &str,
        op: impl FnOnce(&DirRemote) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let me = self.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("kiln-dir-remote".into())
            .spawn(move || {
                let _ = tx.send(op(&me));
            })
            .map_err(|e| Error::internal("failed to start a thread").with_source(e))?;
        rx.recv_timeout(self.timeout).unwrap_or_else(|_| {
            Err(Error::remote(format!(
                "{} did not answer within {} s ({what})",
                self.describe(),
                self.timeout.as_secs_f32()
            ))
            .hint("check the mount; `timeout` in [workspace.metadata.kiln.cache] sets the limit"))
        })
    }

    /// The record names under `kind` (`<name>.json`, temporary files left out).
    fn list(&self, kind: &'static str) -> Result<Vec<String>> {
        self.timed("listing records", move |me| {
            let dir = me.root.join(kind);
            Ok(std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let name = name.strip_suffix(".json")?;
                    (!name.starts_with('.')).then(|| name.to_string())
                })
                .collect())
        })
    }

    fn read(&self, kind: &'static str, name: String) -> Result<Option<Vec<u8>>> {
        self.timed("reading a record", move |me| {
            let p = me.path(kind, &name)?;
            let file = match kiln_fs::open_regular(&p) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(refused(&p, e)),
            };
            kiln_fs::read_capped(file, MAX_RECORD)
                .map(Some)
                .map_err(|e| refused(&p, e))
        })
    }

    fn write(&self, kind: &'static str, name: String, bytes: Vec<u8>) -> Result<()> {
        self.timed("writing a record", move |me| {
            kiln_fs::write_atomic(&me.path(kind, &name)?, &bytes)
        })
    }
}

/// A file of the shared directory kiln won't read: a warning, not a dead remote.
fn refused(path: &Path, e: std::io::Error) -> Error {
    Error::usage(format!("`{}` is refused: {e}", path.display()))
}

impl Remote for DirRemote {
    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn ping(&self) -> Result<()> {
        self.timed("creating its directory", |me| {
            std::fs::create_dir_all(&me.root).io_context("create", &me.root)
        })
    }

    fn get_entry(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.read("entries", format!("{key}.json"))
    }

    fn put_entry(&self, key: &str, json: &[u8]) -> Result<()> {
        self.write("entries", format!("{key}.json"), json.to_vec())
    }

    fn get_blob(&self, sha256: &str, size: u64, dest: &Path) -> Result<bool> {
        let (sha256, dest) = (sha256.to_string(), dest.to_path_buf());
        self.timed("reading a binary", move |me| {
            let src = me.path("blobs", &sha256)?;
            let file = match kiln_fs::open_regular(&src) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(refused(&src, e)),
            };
            if file.metadata().map_or(0, |m| m.len()) > size {
                return Err(Error::usage(format!(
                    "blob {sha256} is larger than its entry says ({size} bytes)"
                )));
            }
            let tmp = kiln_fs::temp_path(&dest);
            let copied = kiln_fs::create_new(&tmp)
                .and_then(|mut out| std::io::copy(&mut file.take(size + 1), &mut out))
                .io_context("copy into", &tmp);
            match copied {
                Ok(n) if n <= size => {
                    std::fs::rename(&tmp, &dest).io_context("rename into", &dest)?;
                    Ok(true)
                }
                other => {
                    let _ = std::fs::remove_file(&tmp);
                    other?;
                    Err(Error::usage(format!(
                        "blob {sha256} is larger than its entry says ({size} bytes)"
                    )))
                }
            }
        })
    }

    fn has_blob(&self, sha256: &str) -> Result<bool> {
        let sha256 = sha256.to_string();
        self.timed("looking for a binary", move |me| {
            Ok(std::fs::symlink_metadata(me.path("blobs", &sha256)?).is_ok_and(|m| m.is_file()))
        })
    }

    fn put_blob(&self, sha256: &str, _size: u64, src: &Path) -> Result<()> {
        let (sha256, src) = (sha256.to_string(), src.to_path_buf());
        self.timed("writing a binary", move |me| {
            let dest = me.path("blobs", &sha256)?;
            let dir = dest.parent().expect("blob dir");
            std::fs::create_dir_all(dir).io_context("create", dir)?;
            // A new file under an unpredictable name in the remote's own directory
            // (never through a link someone planted), renamed within it.
            let tmp = kiln_fs::temp_path(&dest);
            if let Err(e) = kiln_fs::copy_hashing(&src, &tmp, false) {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            std::fs::rename(&tmp, &dest).io_context("rename into", &dest)
        })
    }

    fn learned_ids(&self) -> Result<Vec<String>> {
        self.list("learned")
    }

    fn entry_keys(&self) -> Result<Vec<String>> {
        self.list("entries")
    }

    fn get_learned(&self, id: &str) -> Result<Option<Vec<u8>>> {
        self.read("learned", format!("{id}.json"))
    }

    fn put_learned(&self, id: &str, json: &[u8]) -> Result<()> {
        self.write("learned", format!("{id}.json"), json.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(dir: &Path) -> DirRemote {
        DirRemote::new(dir.to_str().unwrap(), Duration::from_secs(5)).unwrap()
    }

    #[test]
    fn round_trips_and_rejects_path_tricks() {
        let dir = tempfile::tempdir().unwrap();
        let r = remote(dir.path());
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
        assert!(
            r.get_blob("f00", 2, &dest).is_err(),
            "longer than announced"
        );
        r.put_learned("pkg-0123", b"{}").unwrap();
        assert_eq!(r.learned_ids().unwrap(), ["pkg-0123"]);
        assert!(r.get_entry("../../etc/passwd").is_err());
        assert!(DirRemote::new("relative/dir", Duration::from_secs(1)).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn fifos_devices_and_links_are_refused_at_once_without_killing_the_remote() {
        let dir = tempfile::tempdir().unwrap();
        let r = remote(dir.path());
        r.ping().unwrap();
        std::fs::create_dir_all(dir.path().join("entries")).unwrap();
        std::fs::create_dir_all(dir.path().join("blobs")).unwrap();
        let fifo = dir.path().join("entries/k.json");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let t0 = std::time::Instant::now();
        let e = r.get_entry("k").unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(2), "a FIFO waited");
        assert_eq!(e.kind(), kiln_diagnostics::Kind::Usage, "{e}");
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("blobs/z")).unwrap();
        let e = r
            .get_blob("z", 1 << 30, &dir.path().join("out"))
            .unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(!r.has_blob("z").unwrap());
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("entries/l.json")).unwrap();
        assert!(r.get_entry("l").is_err());
    }

    #[test]
    fn an_operation_that_hangs_is_a_remote_failure_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let r = DirRemote::new(dir.path().to_str().unwrap(), Duration::from_millis(200)).unwrap();
        let t0 = std::time::Instant::now();
        let e = r
            .timed("waiting", |_| {
                std::thread::sleep(Duration::from_secs(5));
                Ok(())
            })
            .unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(2));
        assert_eq!(e.kind(), kiln_diagnostics::Kind::Remote);
        assert!(e.to_string().contains("did not answer within"), "{e}");
    }
}
