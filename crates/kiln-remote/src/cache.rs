//! Read-through and write-back between the local cache and a [`Remote`].

use crate::Remote;
use hmac::Mac;
use kiln_cache::{printable, Entry, Learned, LocalCache, Wanted};
use kiln_diagnostics::{Error, Kind, Result};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// How many downloads or uploads run at once.
const PARALLEL: usize = 8;

/// A remote in use by one kiln process: it stops being asked after the first failure
/// to reach it, so an unreachable remote costs one timeout, not one per binary.
pub struct RemoteCache {
    remote: Box<dyn Remote>,
    /// Whether this process uploads what it builds (the `upload` setting, resolved).
    uploads: bool,
    /// The team's signing key: entries uploaded are signed with it, and entries
    /// fetched must carry a valid signature.
    signing_key: Option<Vec<u8>>,
    alive: AtomicBool,
    skipped: Mutex<Option<String>>,
    warnings: Mutex<Vec<String>>,
    hits: AtomicU64,
    bytes_down: AtomicU64,
    uploaded: AtomicU64,
    bytes_up: AtomicU64,
}

/// What the remote did during one build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteStats {
    /// `oci://...` or `file://...`.
    pub remote: String,
    /// Entries restored from it.
    pub hits: u64,
    /// Bytes downloaded.
    pub bytes_down: u64,
    /// Entries uploaded.
    pub uploaded: u64,
    /// Bytes uploaded.
    pub bytes_up: u64,
    /// Why it was skipped, when it was.
    pub skipped: Option<String>,
    /// Entries rejected or failed uploads, one line each.
    pub warnings: Vec<String>,
}

impl RemoteCache {
    /// Wraps `remote`, checking it answers; a remote that doesn't is skipped (with
    /// the reason in [`stats`](Self::stats)), never an error.
    pub fn new(remote: Box<dyn Remote>, uploads: bool) -> Self {
        let r = RemoteCache {
            remote,
            uploads,
            signing_key: None,
            alive: AtomicBool::new(true),
            skipped: Mutex::new(None),
            warnings: Mutex::new(Vec::new()),
            hits: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            uploaded: AtomicU64::new(0),
            bytes_up: AtomicU64::new(0),
        };
        if let Err(e) = r.remote.ping() {
            r.fail(&e);
        }
        r
    }

    /// Signs uploads with `key` and accepts only entries it signed (HMAC-SHA256).
    pub fn with_signing_key(mut self, key: Option<Vec<u8>>) -> Self {
        self.signing_key = key.filter(|k| !k.is_empty());
        self
    }

    /// The HMAC of `entry`'s signed bytes under the signing key, if there is one.
    fn mac(&self, entry: &Entry) -> Option<HmacSha256> {
        let key = self.signing_key.as_ref()?;
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(&entry.signed_bytes());
        Some(mac)
    }

    /// The signature of `entry` under the signing key.
    fn sign(&self, entry: &Entry) -> Option<String> {
        Some(kiln_fs::hex(&self.mac(entry)?.finalize().into_bytes()))
    }

    /// Whether `entry` may be used: always without a signing key; with one, only when
    /// its signature verifies (compared in constant time).
    fn trusted(&self, entry: &Entry) -> bool {
        let Some(mac) = self.mac(entry) else {
            return true;
        };
        entry
            .signature
            .as_deref()
            .and_then(unhex)
            .is_some_and(|sig| mac.verify_slice(&sig).is_ok())
    }

    /// Whether the remote is still being used.
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Whether this process uploads what it builds.
    pub fn uploads(&self) -> bool {
        self.uploads
    }

    fn fail(&self, e: &Error) {
        if self.alive.swap(false, Ordering::SeqCst) {
            *self.skipped.lock().expect("lock") = Some(e.to_string());
        }
    }

    fn warn(&self, w: String) {
        self.warnings.lock().expect("lock").push(w);
    }

    /// Runs `f`; a failure to reach the remote disables it, anything else is a warning.
    fn guard<T>(&self, what: &str, f: impl FnOnce() -> Result<T>) -> Option<T> {
        if !self.alive() {
            return None;
        }
        match f() {
            Ok(v) => Some(v),
            Err(e) if e.kind() == Kind::Remote => {
                self.fail(&e);
                None
            }
            Err(e) => {
                self.warn(format!("{what}: {e}"));
                None
            }
        }
    }

    /// Merges the remote's learned build-script inputs for `ids` into `local`, so keys
    /// computed here match the ones computed where the binaries were built.
    pub fn fetch_learned(&self, ids: &BTreeSet<String>, local: &LocalCache) {
        let Some(remote_ids) = self.guard("listing learned inputs", || self.remote.learned_ids())
        else {
            return;
        };
        for id in remote_ids.into_iter().filter(|id| ids.contains(id)) {
            let Some(Some(bytes)) = self.guard("learned inputs", || self.remote.get_learned(&id))
            else {
                continue;
            };
            let Ok(theirs) = serde_json::from_slice::<Learned>(&bytes) else {
                self.warn(format!(
                    "learned inputs {id} from {} are unreadable; ignored",
                    self.remote.describe()
                ));
                continue;
            };
            // Only names inside the workspace and well-formed variable names: a
            // planted record must not make kiln read outside it.
            let (theirs, dropped) = theirs.from_outside();
            if !dropped.is_empty() {
                self.warn(format!(
                    "learned inputs {id} from {} named {}; ignored",
                    self.remote.describe(),
                    dropped.join(", ")
                ));
            }
            let mut merged = local.learned(&id).unwrap_or_default();
            let before = merged.clone();
            merged.files.extend(theirs.files);
            merged.env.extend(theirs.env);
            if merged != before {
                let _ = local.set_learned(&id, &merged);
            }
        }
    }

    /// Looks the `wanted` units up remotely (in parallel) and copies every verified
    /// hit into `local`: an entry must be exactly the unit asked for, and its blob
    /// must match its digest. Returns the keys restored.
    pub fn fetch(&self, wanted: &[Wanted], local: &LocalCache) -> Vec<String> {
        let queue = Mutex::new(wanted.to_vec());
        let found = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..PARALLEL.min(wanted.len()) {
                s.spawn(|| loop {
                    let Some(want) = queue.lock().expect("lock").pop() else {
                        return;
                    };
                    if self.fetch_one(&want, local) {
                        found.lock().expect("lock").push(want.key);
                    }
                });
            }
        });
        found.into_inner().expect("lock")
    }

    fn fetch_one(&self, want: &Wanted, local: &LocalCache) -> bool {
        let key = want.key.as_str();
        let Some(Some(bytes)) = self.guard("a remote entry", || self.remote.get_entry(key)) else {
            return false;
        };
        let entry = match serde_json::from_slice::<Entry>(&bytes) {
            Ok(e) if e.answers(want) && kiln_fs::is_sha256_hex(&e.sha256) => {
                if !self.trusted(&e) {
                    self.warn(format!(
                        "the remote entry for {} {} is not signed with this team's signing key; ignored and rebuilt",
                        want.binary,
                        short(key)
                    ));
                    return false;
                }
                e
            }
            _ => {
                self.warn(format!(
                    "the remote entry for {} {} is unreadable or not the one asked for; rebuilt instead",
                    want.binary,
                    short(key)
                ));
                return false;
            }
        };
        let staging = kiln_fs::temp_path(&local.root().join("remote-download"));
        let got = self.guard("a remote binary", || {
            self.remote.get_blob(&entry.sha256, entry.size, &staging)
        });
        let result = match got {
            Some(true) => match kiln_fs::sha256_file(&staging) {
                Ok((sha, size)) if sha == entry.sha256 && size == entry.size => {
                    self.bytes_down.fetch_add(size, Ordering::SeqCst);
                    match local.put(entry.clone(), &staging) {
                        Ok(_) => true,
                        Err(e) => {
                            self.warn(format!(
                                "storing {} from the remote failed: {e}",
                                entry.binary
                            ));
                            false
                        }
                    }
                }
                _ => {
                    self.warn(format!(
                        "{} for {} from {} does not match its digest {}; rejected and rebuilt",
                        printable(&entry.binary),
                        printable(&entry.target),
                        self.remote.describe(),
                        short(&entry.sha256)
                    ));
                    false
                }
            },
            _ => false,
        };
        let _ = std::fs::remove_file(&staging);
        if result {
            self.hits.fetch_add(1, Ordering::SeqCst);
        }
        result
    }

    /// Whether the remote holds an entry for `key` (nothing is downloaded but the entry).
    pub fn has(&self, key: &str) -> bool {
        matches!(
            self.guard("a remote entry", || self.remote.get_entry(key)),
            Some(Some(_))
        )
    }

    /// Uploads `entries` (blobs first, each only if missing, then the entry) and the
    /// learned inputs `learned_ids` from `local`. Failures are warnings.
    pub fn upload(&self, entries: &[Entry], learned_ids: &BTreeSet<String>, local: &LocalCache) {
        if self.uploads() {
            self.force_upload(entries, learned_ids, local);
        }
    }

    /// [`upload`](Self::upload) whatever the upload setting (`kiln cache push`).
    pub fn force_upload(
        &self,
        entries: &[Entry],
        learned_ids: &BTreeSet<String>,
        local: &LocalCache,
    ) {
        if !self.alive() {
            return;
        }
        let queue = Mutex::new(entries.to_vec());
        std::thread::scope(|s| {
            for _ in 0..PARALLEL.min(entries.len()) {
                s.spawn(|| loop {
                    let Some(entry) = queue.lock().expect("lock").pop() else {
                        return;
                    };
                    self.upload_one(&entry, local);
                });
            }
        });
        for id in learned_ids {
            if let Some(l) = local.learned(id) {
                // What is shared holds no local path: files outside the workspace
                // (absolute paths) stay in this machine's record.
                let (l, _) = l.from_outside();
                let json = serde_json::to_vec(&l).expect("learned serializes");
                self.guard("uploading learned inputs", || {
                    self.remote.put_learned(id, &json)
                });
            }
        }
    }

    fn upload_one(&self, entry: &Entry, local: &LocalCache) {
        let Some(blob) = local.blob(&entry.sha256) else {
            return;
        };
        let done = self.guard(&format!("uploading {}", entry.binary), || {
            if !self.remote.has_blob(&entry.sha256)? {
                self.remote.put_blob(&entry.sha256, entry.size, &blob)?;
                self.bytes_up.fetch_add(entry.size, Ordering::SeqCst);
            }
            let signed = Entry {
                signature: self.sign(entry),
                ..entry.clone()
            };
            let json = serde_json::to_vec_pretty(&signed).expect("entry serializes");
            self.remote.put_entry(&entry.key, &json)
        });
        if done.is_some() {
            self.uploaded.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// What happened so far.
    pub fn stats(&self) -> RemoteStats {
        RemoteStats {
            remote: self.remote.describe(),
            hits: self.hits.load(Ordering::SeqCst),
            bytes_down: self.bytes_down.load(Ordering::SeqCst),
            uploaded: self.uploaded.load(Ordering::SeqCst),
            bytes_up: self.bytes_up.load(Ordering::SeqCst),
            skipped: self.skipped.lock().expect("lock").clone(),
            warnings: self.warnings.lock().expect("lock").clone(),
        }
    }
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn short(s: &str) -> &str {
    &s[..s.len().min(12)]
}
