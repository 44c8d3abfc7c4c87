//! The local binary cache.
//!
//! Layout under the cache root (`KILN_CACHE_DIR`, else `$XDG_CACHE_HOME/kiln`, else
//! `~/.cache/kiln`), all under `v1/`:
//! - `blobs/<aa>/<sha256>`: binaries, named by their content;
//! - `entries/<aa>/<key>.json`: an [`Entry`] per input key: which blob, and the inputs;
//! - `latest/<package>/<triple>/<binary>`: the key built last, to explain a miss;
//! - `learned/<id>.json`: inputs build scripts declared (`rerun-if-*`), per package;
//! - `memo/<kind>/<key>.json`: derived data keyed by its inputs (build graphs, tool versions);
//! - `log.jsonl`: one line per build (hits, misses) for `kiln cache stats`.
//!
//! Every file is written under a temporary name and renamed, so a reader never sees a
//! partial file and a killed writer leaves only a temp file behind. Blobs are verified
//! against their name on every read: a corrupt one is removed and reported, never used.
//! Concurrent writers of one key write identical content, so the last rename wins harmlessly.

mod entry;
mod maintenance;

pub use entry::{
    is_credential_file, is_credential_name, is_env_name, is_safe_component, printable, Artifact,
    BinaryEntry, Entry, Learned, Lookup, NativeEntry, Origin, Subject, Wanted,
};
pub use kiln_schema::CacheStats;
pub use maintenance::{CacheLock, GcReport, RemoteUse};

use kiln_diagnostics::{Error, IoContext, Result};
use kiln_fs::write_atomic;
use kiln_schema::CacheProblem;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// A local cache rooted at a directory.
#[derive(Debug, Clone)]
pub struct LocalCache {
    root: PathBuf,
    /// The keys an entry restored from a remote must be signed by to be used; empty
    /// when the workspace trusts none (then any entry is used).
    trusted: kiln_trust::TrustedKeys,
}

impl LocalCache {
    /// The cache at `dir` (the `cache_dir` setting); `None` (no home directory) is an
    /// error naming the fix.
    pub fn open(dir: Option<PathBuf>) -> Result<Self> {
        let base = dir.ok_or_else(|| {
            Error::environment("no cache directory: neither KILN_CACHE_DIR nor HOME is set")
                .hint("set KILN_CACHE_DIR to a writable directory")
        })?;
        let root = base.join("v1");
        let unusable = |what: &str, d: &Path, e: std::io::Error| {
            Error::environment(format!("the kiln cache `{}` can't be used: {what} failed", d.display()))
                .with_source(e)
                .hint("set KILN_CACHE_DIR (or `cache-dir` in [workspace.metadata.kiln]) to a writable directory")
        };
        for sub in ["blobs", "entries", "latest", "learned"] {
            let d = root.join(sub);
            fs::create_dir_all(&d).map_err(|e| unusable("creating it", &d, e))?;
        }
        // Proven writable now: a read-only cache fails here, not halfway through.
        let probe = kiln_fs::temp_path(&root.join("probe"));
        kiln_fs::create_new(&probe).map_err(|e| unusable("writing to it", &root, e))?;
        let _ = fs::remove_file(&probe);
        // What a killed kiln left at the top (downloads under way, probes).
        kiln_fs::remove_stale_temps(&root, None, kiln_fs::STALE_AFTER);
        Ok(Self {
            root,
            trusted: kiln_trust::TrustedKeys::default(),
        })
    }

    /// Uses only entries this machine can vouch for (built here or by this run,
    /// or signed by one of `keys`) when `keys` isn't empty: an entry restored from a
    /// remote before the workspace trusted any key is then a miss.
    pub fn with_trusted_keys(mut self, keys: kiln_trust::TrustedKeys) -> Self {
        self.trusted = keys;
        self
    }

    /// Where native libraries kiln builds for `-sys` crates are kept, with the cache
    /// so that every workspace on the machine shares them.
    pub fn native_dir(&self) -> PathBuf {
        self.root.join("native")
    }

    /// The versioned root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The blob path of a hex SHA-256; anything else names no file (`None`).
    fn blob_path_checked(&self, sha256: &str) -> Option<PathBuf> {
        kiln_fs::is_sha256_hex(sha256).then(|| self.blob_path(sha256))
    }

    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.root
            .join("blobs")
            .join(&sha256[..2.min(sha256.len())])
            .join(sha256)
    }

    fn entry_path(&self, key: &str) -> PathBuf {
        self.root
            .join("entries")
            .join(&key[..2.min(key.len())])
            .join(format!("{key}.json"))
    }

    /// Where the newest key of a unit is kept; `None` when a name could not be a
    /// single path component (it may come from a remote: never a way out of the cache).
    fn latest_path(&self, package: &str, triple: &str, binary: &str) -> Option<PathBuf> {
        [package, triple, binary]
            .iter()
            .all(|n| is_safe_component(n))
            .then(|| {
                self.root
                    .join("latest")
                    .join(package)
                    .join(triple)
                    .join(binary)
            })
    }

    /// Looks `key` up. A hit has had its blob's SHA-256 checked; a corrupt entry or
    /// blob is removed and returned as [`Lookup::Corrupt`] with the reason. With
    /// trusted keys, an entry this machine can't vouch for is [`Lookup::Untrusted`].
    pub fn get(&self, key: &str) -> Lookup {
        match self.get_any(key) {
            Lookup::Hit(entry, _) if !self.trusts(&entry) => Lookup::Untrusted,
            other => other,
        }
    }

    /// Whether `entry` may be used under the trusted keys: always when none are
    /// trusted; else when this machine built it or a trusted key signed it.
    fn trusts(&self, entry: &Entry) -> bool {
        self.trusted.is_empty() || entry.vouched() || entry.signer(&self.trusted).is_some()
    }

    /// Whether a usable entry for `key` is here (its blob not checked: [`get`](Self::get)
    /// does that).
    pub fn has_usable(&self, key: &str) -> bool {
        kiln_fs::is_sha256_hex(key)
            && fs::read(self.entry_path(key))
                .ok()
                .and_then(|b| serde_json::from_slice::<Entry>(&b).ok())
                .is_some_and(|e| self.trusts(&e))
    }

    /// [`get`](Self::get) whatever the trusted keys say: for `kiln cache push`,
    /// whose upload decides what may leave this machine.
    pub fn get_any(&self, key: &str) -> Lookup {
        if !kiln_fs::is_sha256_hex(key) {
            return Lookup::Miss;
        }
        let path = self.entry_path(key);
        let Ok(bytes) = fs::read(&path) else {
            return Lookup::Miss;
        };
        let entry: Entry = match serde_json::from_slice(&bytes) {
            Ok(e) => e,
            Err(e) => {
                let _ = fs::remove_file(&path);
                return Lookup::Corrupt(CacheProblem::Unreadable {
                    key: key.into(),
                    error: e.to_string(),
                });
            }
        };
        let Some(blob) = self.blob_path_checked(&entry.sha256) else {
            let _ = fs::remove_file(&path);
            return Lookup::Corrupt(CacheProblem::InvalidBlobName { key: key.into() });
        };
        match kiln_fs::sha256_file(&blob) {
            Ok((sha, size)) if sha == entry.sha256 && size == entry.size => {
                touch(&path);
                Lookup::Hit(Box::new(entry), blob)
            }
            Ok((sha, _)) => {
                let _ = fs::remove_file(&blob);
                let _ = fs::remove_file(&path);
                Lookup::Corrupt(CacheProblem::DigestMismatch {
                    binary: entry.name().into(),
                    target: entry.target.clone(),
                    found: sha,
                    expected: entry.sha256.clone(),
                })
            }
            Err(_) => {
                let _ = fs::remove_file(&path);
                Lookup::Corrupt(CacheProblem::BlobMissing {
                    binary: entry.name().into(),
                    target: entry.target.clone(),
                    blob: entry.sha256.clone(),
                })
            }
        }
    }

    /// Stores `binary` under `entry.key`. The entry is complete: the copy must have
    /// its `sha256` and `size`, or nothing is stored.
    pub fn put(&self, entry: Entry, binary: &Path) -> Result<Entry> {
        let refused = || {
            Error::usage(format!(
                "refusing a cache entry with an invalid key, digest or name ({} {})",
                printable(entry.name()),
                printable(&entry.target)
            ))
        };
        // Binaries remember their newest key (to explain a miss); libraries don't.
        let latest = match &entry.artifact {
            crate::Artifact::Binary(b) => Some(
                self.latest_path(&b.package, &entry.target, &b.binary)
                    .ok_or_else(refused)?,
            ),
            crate::Artifact::Native(_) => None,
        };
        let (Some(blob), true) = (
            self.blob_path_checked(&entry.sha256),
            kiln_fs::is_sha256_hex(&entry.key),
        ) else {
            return Err(refused());
        };
        if !matches!(kiln_fs::sha256_file(&blob), Ok((s, _)) if s == entry.sha256) {
            let dir = blob.parent().expect("blob dir");
            fs::create_dir_all(dir).io_context("create", dir)?;
            let tmp = kiln_fs::temp_path(&blob);
            let copied = kiln_fs::copy_hashing(binary, &tmp, false)?;
            if copied != (entry.sha256.clone(), entry.size) {
                let _ = fs::remove_file(&tmp);
                return Err(Error::internal(format!(
                    "`{}` does not match its entry (sha256 {}, expected {})",
                    binary.display(),
                    copied.0,
                    entry.sha256
                )));
            }
            fs::rename(&tmp, &blob).io_context("rename into", &blob)?;
        }
        let json = serde_json::to_vec_pretty(&entry).expect("entry serializes");
        write_atomic(&self.entry_path(&entry.key), &json)?;
        if let Some(latest) = latest {
            write_atomic(&latest, entry.key.as_bytes())?;
        }
        Ok(entry)
    }

    /// Whether an entry exists for `key` (not verified: [`get`](Self::get) does that).
    pub fn contains(&self, key: &str) -> bool {
        kiln_fs::is_sha256_hex(key) && self.entry_path(key).is_file()
    }

    /// The path of the blob `sha256`, if present (not verified).
    pub fn blob(&self, sha256: &str) -> Option<PathBuf> {
        let p = self.blob_path_checked(sha256)?;
        p.is_file().then_some(p)
    }

    /// The entry built last for this binary and target, if it is still cached.
    pub fn latest(&self, package: &str, triple: &str, binary: &str) -> Option<Entry> {
        let key = fs::read_to_string(self.latest_path(package, triple, binary)?).ok()?;
        let key = key.trim();
        if !kiln_fs::is_sha256_hex(key) {
            return None;
        }
        let bytes = fs::read(self.entry_path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Inputs build scripts declared for the package identified by `id`.
    pub fn learned(&self, id: &str) -> Option<Learned> {
        if !is_safe_component(id) {
            return None;
        }
        let bytes = fs::read(self.root.join("learned").join(format!("{id}.json"))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// A memoized result of `kind` (e.g. `tree`, `zig`) under `key`: derived data that
    /// is expensive to recompute (process spawns) and fully determined by the key.
    pub fn memo(&self, kind: &str, key: &str) -> Option<Vec<u8>> {
        fs::read(self.memo_path(kind, key)).ok()
    }

    /// Stores a memoized result; failures only cost a recomputation next time.
    pub fn set_memo(&self, kind: &str, key: &str, bytes: &[u8]) {
        let _ = write_atomic(&self.memo_path(kind, key), bytes);
    }

    fn memo_path(&self, kind: &str, key: &str) -> PathBuf {
        self.root
            .join("memo")
            .join(kind)
            .join(format!("{key}.json"))
    }

    /// Records what build scripts of the package `id` declared.
    pub fn set_learned(&self, id: &str, learned: &Learned) -> Result<()> {
        if !is_safe_component(id) {
            return Err(Error::usage(format!(
                "refusing learned inputs under the invalid id {}",
                printable(id)
            )));
        }
        let json = serde_json::to_vec_pretty(learned).expect("learned serializes");
        write_atomic(&self.root.join("learned").join(format!("{id}.json")), &json)
    }
}

/// Marks an entry as used, for LRU eviction.
fn touch(path: &Path) {
    if let Ok(f) = File::options().append(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}
