//! Which files belong to which package, and their content hashes.
//!
//! Files come from `git ls-files` (tracked and untracked-but-not-ignored), so ignored
//! files are never inputs; outside git, a walk that skips `target/` and hidden
//! directories. Hashes are remembered in a stat cache keyed by size, mtime, ctime and
//! inode; an entry is trusted only if the file was last changed well before it was
//! hashed, so an edit in the same instant as a hash is never missed.

use kiln_fs::os_bytes;
use kiln_fs::sha256_hex as sha256;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Lists and hashes the workspace's files.
#[derive(Debug)]
pub struct FileHasher {
    root: PathBuf,
    /// The root with symlinks resolved, to tell where a symlink points.
    real_root: PathBuf,
    /// Relative paths, sorted.
    files: Vec<PathBuf>,
    cache_path: Option<PathBuf>,
    cache: Mutex<StatCache>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StatCache {
    entries: HashMap<PathBuf, Stamp>,
    #[serde(skip)]
    dirty: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    hashed_at_ns: i128,
    sha256: String,
}

/// Whether `rel`, a path inside an artifact store, is a file kiln writes there:
/// `checksums.json`, the lock and marker, or anything in an `<os>/<arch>/` folder.
fn written_by_kiln(rel: &Path) -> bool {
    let parts: Vec<_> = rel.components().map(|c| c.as_os_str()).collect();
    match parts.as_slice() {
        [one] => ["checksums.json", ".kiln.lock", ".kiln-store"]
            .iter()
            .any(|n| one == n),
        [os, _arch, _file] => *os == "linux",
        _ => false,
    }
}

/// Nanoseconds a file must predate its hashing for the cached hash to be trusted.
const RACY_WINDOW_NS: i128 = 2_000_000_000;

impl FileHasher {
    /// Lists the files under `root`, leaving out everything under `skip` (the target
    /// dir), the files kiln writes into the artifact store `store` (only those: a
    /// store inside a package must not hide the package's sources) and kiln's
    /// temporary files. `cache_path` is where the stat cache lives, if anywhere.
    pub fn new(
        root: &Path,
        skip: &[PathBuf],
        store: Option<&Path>,
        cache_path: Option<PathBuf>,
    ) -> Self {
        let mut files = git_files(root).unwrap_or_else(|| walk(root));
        let skip: Vec<PathBuf> = skip
            .iter()
            .filter_map(|s| s.strip_prefix(root).ok().map(Path::to_path_buf))
            .collect();
        let store = store.and_then(|s| s.strip_prefix(root).ok());
        files.retain(|f| {
            !skip
                .iter()
                .any(|s| !s.as_os_str().is_empty() && f.starts_with(s))
                && !f
                    .components()
                    .any(|c| c.as_os_str().to_string_lossy().contains(kiln_fs::TMP_MARK))
                && !store.is_some_and(|s| f.strip_prefix(s).is_ok_and(written_by_kiln))
        });
        files.sort();
        files.dedup();
        let cache = cache_path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self {
            root: root.to_path_buf(),
            real_root: std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf()),
            files,
            cache_path,
            cache: Mutex::new(cache),
        }
    }

    /// Files under the relative directory `dir`, except those under any of `except`
    /// (nested packages own their own files).
    pub fn files_under<'a>(
        &'a self,
        dir: &'a Path,
        except: &'a [PathBuf],
    ) -> impl Iterator<Item = &'a PathBuf> + 'a {
        self.files.iter().filter(move |f| {
            f.starts_with(dir)
                && !except
                    .iter()
                    .any(|e| e != dir && e.starts_with(dir) && f.starts_with(e))
        })
    }

    /// Hex SHA-256 of the file at the relative path `rel`, or `None` if it is gone.
    /// A symlink is hashed by what it resolves to (see [`FileHasher::symlink_digest`]).
    pub fn hash(&self, rel: &Path) -> Option<String> {
        let path = self.root.join(rel);
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if meta.file_type().is_symlink() {
            // Not stat-cached: the link's own stamp says nothing about its target.
            return Some(self.symlink_digest(&path));
        }
        let stamp = stamp_of(&meta);
        if let Some(s) = self.cache.lock().unwrap().entries.get(rel) {
            let same =
                (s.len, s.mtime_ns, s.ctime_ns, s.ino) == (stamp.0, stamp.1, stamp.2, stamp.3);
            if same && s.hashed_at_ns - s.mtime_ns.max(s.ctime_ns) > RACY_WINDOW_NS {
                return Some(s.sha256.clone());
            }
        }
        let sha = sha256(&std::fs::read(&path).ok()?);
        let mut cache = self.cache.lock().unwrap();
        cache.entries.insert(
            rel.to_path_buf(),
            Stamp {
                len: stamp.0,
                mtime_ns: stamp.1,
                ctime_ns: stamp.2,
                ino: stamp.3,
                hashed_at_ns: now_ns(),
                sha256: sha.clone(),
            },
        );
        cache.dirty = true;
        Some(sha)
    }

    /// A symlink's digest: a link to a file inside the workspace counts as that file's
    /// content (a copy and a link of the same bytes build the same); a link to a
    /// directory inside, by where it points relative to the root; a link leading
    /// outside, by its target text and the content found there; a dangling link, by
    /// its target text.
    fn symlink_digest(&self, link: &Path) -> String {
        let target = std::fs::read_link(link).unwrap_or_default();
        let target = os_bytes(target.as_os_str());
        let Ok(real) = std::fs::canonicalize(link) else {
            return sha256(&[b"dangling\0".as_slice(), &target].concat());
        };
        let inside = real.strip_prefix(&self.real_root).ok();
        match (inside, real.is_dir()) {
            (Some(rel), true) => {
                sha256(&[b"dir\0".as_slice(), &os_bytes(rel.as_os_str())].concat())
            }
            (Some(_), false) => {
                std::fs::read(&real).map_or_else(|_| sha256(b"unreadable"), |b| sha256(&b))
            }
            (None, is_dir) => {
                let content = if is_dir {
                    shallow_dir_digest(&real)
                } else {
                    std::fs::read(&real).map_or_else(|_| sha256(b"unreadable"), |b| sha256(&b))
                };
                sha256(&[b"outside\0".as_slice(), &target, b"\0", content.as_bytes()].concat())
            }
        }
    }

    /// Writes the stat cache back (atomically) if it changed. Failures are ignored:
    /// the cache only saves time.
    pub fn save(&self) {
        let (Some(path), mut cache) = (&self.cache_path, self.cache.lock().unwrap()) else {
            return;
        };
        if !cache.dirty {
            return;
        }
        let Ok(bytes) = serde_json::to_vec(&*cache) else {
            return;
        };
        if kiln_fs::write_atomic(path, &bytes).is_ok() {
            cache.dirty = false;
        }
    }

    /// Every listed file, relative to the root, sorted.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The workspace root the paths are relative to.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

#[cfg(unix)]
fn stamp_of(m: &std::fs::Metadata) -> (u64, i128, i128, u64) {
    use std::os::unix::fs::MetadataExt;
    let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
    (
        m.len(),
        ns(m.mtime(), m.mtime_nsec()),
        ns(m.ctime(), m.ctime_nsec()),
        m.ino(),
    )
}

#[cfg(not(unix))]
fn stamp_of(m: &std::fs::Metadata) -> (u64, i128, i128, u64) {
    let t = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    (m.len(), t, t, 0)
}

/// The git command listing a checkout's files (see [`git_files`]).
pub const LS_FILES_ARGS: &[&str] = &[
    "ls-files",
    "-z",
    "--cached",
    "--others",
    "--exclude-standard",
];

/// Tracked and untracked-but-not-ignored files below `root`, relative to it.
fn git_files(root: &Path) -> Option<Vec<PathBuf>> {
    let out = kiln_workspace::git_bytes(root, LS_FILES_ARGS).ok()?;
    let files = out
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(path_from_bytes)
        // A dangling symlink is still an input (its target text).
        .filter(|p| std::fs::symlink_metadata(root.join(p)).is_ok())
        .collect();
    Some(files)
}

#[cfg(unix)]
fn path_from_bytes(b: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(b))
}

#[cfg(not(unix))]
fn path_from_bytes(b: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(b).into_owned())
}

/// Digest of every file below a directory outside the workspace (path dependencies,
/// directories named by build scripts), skipping `target/` and hidden directories.
pub fn dir_digest(dir: &Path) -> String {
    let hasher = FileHasher::new(dir, &[dir.join("target")], None, None);
    let files: Vec<(&PathBuf, String)> = hasher
        .files()
        .iter()
        .filter_map(|f| Some((f, hasher.hash(f)?)))
        .collect();
    files_digest(&files)
}

/// Like [`dir_digest`], with symlinks counted by their target text only (a directory
/// reached through a symlink could lead back to itself).
fn shallow_dir_digest(dir: &Path) -> String {
    let files: Vec<(PathBuf, String)> = walk(dir)
        .into_iter()
        .filter_map(|f| {
            let p = dir.join(&f);
            let meta = std::fs::symlink_metadata(&p).ok()?;
            let h = if meta.file_type().is_symlink() {
                sha256(&os_bytes(std::fs::read_link(&p).ok()?.as_os_str()))
            } else {
                sha256(&std::fs::read(&p).ok()?)
            };
            Some((f, h))
        })
        .collect();
    let mut files = files;
    files.sort();
    files_digest(&files)
}

/// Digest of a list of `(relative path, content hash)`, each field length-delimited.
pub fn files_digest<P: AsRef<Path>>(files: &[(P, String)]) -> String {
    let list: Vec<(crate::RelPath, &str)> = files
        .iter()
        .map(|(p, h)| (crate::RelPath::new(p.as_ref()), h.as_str()))
        .collect();
    sha256(&crate::canonical::encode(&list))
}

/// Every file below `root` outside hidden directories and `target/`.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(root.join(&rel)) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let child = rel.join(&name);
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                let n = name.to_string_lossy();
                if !n.starts_with('.') && n != "target" {
                    stack.push(child);
                }
            } else {
                out.push(child);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn non_utf8_names_and_symlinks_are_inputs() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = dir.path();
        let raw = PathBuf::from(std::ffi::OsStr::from_bytes(b"data-\xff.bin"));
        std::fs::write(root.join(&raw), "one").unwrap();
        std::fs::write(root.join("real.txt"), "same").unwrap();
        std::os::unix::fs::symlink("real.txt", root.join("in.txt")).unwrap();
        std::fs::write(outside.path().join("x.h"), "outside").unwrap();
        std::os::unix::fs::symlink(outside.path().join("x.h"), root.join("out.h")).unwrap();
        std::os::unix::fs::symlink("nowhere", root.join("dangling")).unwrap();
        let h = FileHasher::new(root, &[], None, None);
        assert!(h.files().contains(&raw), "{:?}", h.files());
        assert!(h.files().contains(&PathBuf::from("dangling")));
        let before = h.hash(&raw).unwrap();
        std::fs::write(root.join(&raw), "two").unwrap();
        assert_ne!(
            FileHasher::new(root, &[], None, None).hash(&raw).unwrap(),
            before
        );
        // Inside: a link is its target's content.
        assert_eq!(h.hash(Path::new("in.txt")), h.hash(Path::new("real.txt")));
        // Outside: target text and content; editing the target changes it.
        let out = h.hash(Path::new("out.h")).unwrap();
        std::fs::write(outside.path().join("x.h"), "edited").unwrap();
        assert_ne!(h.hash(Path::new("out.h")).unwrap(), out);
        assert!(h.hash(Path::new("dangling")).is_some());
    }

    #[test]
    fn nested_packages_own_their_files_and_edits_change_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in ["a/src/lib.rs", "a/b/src/lib.rs", "target/x", "README.md"] {
            std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
            std::fs::write(root.join(f), f).unwrap();
        }
        let cache = root.join(".cache/stat.json");
        let h = FileHasher::new(root, &[root.join("target")], None, Some(cache.clone()));
        let except = [PathBuf::from("a/b")];
        let a: Vec<_> = h.files_under(Path::new("a"), &except).collect();
        assert_eq!(a, [&PathBuf::from("a/src/lib.rs")]);
        let before = h.hash(Path::new("a/src/lib.rs")).unwrap();
        h.save();
        std::fs::write(root.join("a/src/lib.rs"), "changed").unwrap();
        let h2 = FileHasher::new(root, &[], None, Some(cache));
        assert_ne!(h2.hash(Path::new("a/src/lib.rs")).unwrap(), before);
    }
}
