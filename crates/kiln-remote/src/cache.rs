//! Read-through and write-back between the local cache and a [`Remote`].

use crate::Remote;
use kiln_diagnostics::{Error, Kind, Result};
use kiln_local_cache::{Entry, Learned, LocalCache, Origin, Wanted};
use kiln_schema::Warning;
use kiln_trust::{Domain, SecretKey, TrustedKeys};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Runs `work` on every item, [`PARALLEL`] at a time.
fn in_parallel<T: Send>(items: Vec<T>, work: impl Fn(T) + Sync) {
    let threads = PARALLEL.min(items.len());
    let queue = Mutex::new(items);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let Some(item) = queue.lock().expect("lock").pop() else {
                    return;
                };
                work(item);
            });
        }
    });
}

/// How many downloads or uploads run at once.
const PARALLEL: usize = 8;

/// A remote in use by one kiln process: it stops being asked after the first failure
/// to reach it, so an unreachable remote costs one timeout, not one per binary.
pub struct RemoteCache {
    remote: Box<dyn Remote>,
    /// Whether this process uploads what it builds (the `upload` setting, resolved).
    uploads: bool,
    /// Keys whose signatures make a record usable; empty: checking is off.
    trusted: TrustedKeys,
    /// The key this machine signs what it vouches for with.
    signer: Option<SecretKey>,
    /// This remote holds this CI run's own builds (`kiln cache pull --vouch`):
    /// unsigned records from it that its job built are vouched for like local builds.
    vouch: bool,
    /// Uploads say which entries this machine built (`kiln cache push` into a
    /// run's slice), for the jobs that vouch for them.
    claims_origin: bool,
    /// Whether lookups copy hits into the local cache; off for a plan that only
    /// asks what the remote has (`kiln affected --skip-cached`).
    downloads: bool,
    alive: AtomicBool,
    /// Whether it failed to answer when opened (said then), not during the build.
    failed_at_open: bool,
    skipped: Mutex<Option<String>>,
    /// Blobs this process found damaged on the remote: uploaded again over them.
    damaged: Mutex<BTreeSet<String>>,
    warnings: Mutex<Vec<Warning>>,
    /// Records refused or held back, by reason: one warning each at the end.
    refused: Mutex<BTreeMap<Refusal, BTreeSet<String>>>,
    hits: AtomicU64,
    bytes_down: AtomicU64,
    uploaded: AtomicU64,
    bytes_up: AtomicU64,
}

/// Why records were refused or held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Refusal {
    /// A remote entry no trusted key signed.
    UnsignedEntry,
    /// A remote learned record no trusted key signed.
    UnsignedLearned,
    /// A remote learned record named a credential-like variable.
    CredentialName,
    /// A local entry restored without a trusted signature, not uploaded.
    UnvouchedEntry,
    /// A local learned record holding unverified remote names, not uploaded.
    UnvouchedLearned,
    /// A remote blob that didn't match its entry's digest.
    DigestMismatch,
    /// A local entry whose key covers a secret's value: used here, never uploaded.
    SecretInKey,
}

impl Refusal {
    /// The warning for the records refused for this reason.
    fn warning(self, remote: String, what: &BTreeSet<String>) -> Warning {
        let list: Vec<String> = what.iter().cloned().collect();
        match self {
            Refusal::UnsignedEntry => Warning::UnsignedEntries {
                remote,
                entries: list,
            },
            Refusal::UnsignedLearned => Warning::UnsignedRecords { remote, ids: list },
            Refusal::CredentialName => Warning::CredentialNames {
                remote,
                names: list,
            },
            Refusal::UnvouchedEntry => Warning::UnvouchedEntries {
                remote,
                entries: list,
            },
            Refusal::UnvouchedLearned => Warning::UnvouchedRecords { remote, ids: list },
            Refusal::DigestMismatch => Warning::RemoteDigestMismatch {
                remote,
                entries: list,
            },
            Refusal::SecretInKey => Warning::SecretInputsNotUploaded {
                remote,
                entries: list,
            },
        }
    }
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
    /// Whether it was skipped from the start (it didn't answer when opened), as
    /// opposed to failing during the build.
    pub failed_at_open: bool,
    /// Entries rejected, failed uploads: one warning each (one per reason for
    /// refused signatures).
    pub warnings: Vec<Warning>,
}

impl RemoteCache {
    /// Wraps `remote`, checking it answers; a remote that doesn't is skipped (with
    /// the reason in [`stats`](Self::stats)), never an error.
    pub fn new(remote: Box<dyn Remote>, uploads: bool) -> Self {
        let mut r = RemoteCache {
            remote,
            uploads,
            trusted: TrustedKeys::default(),
            signer: None,
            vouch: false,
            claims_origin: false,
            downloads: true,
            alive: AtomicBool::new(true),
            failed_at_open: false,
            skipped: Mutex::new(None),
            damaged: Mutex::new(BTreeSet::new()),
            warnings: Mutex::new(Vec::new()),
            refused: Mutex::new(BTreeMap::new()),
            hits: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            uploaded: AtomicU64::new(0),
            bytes_up: AtomicU64::new(0),
        };
        if let Err(e) = r.remote.ping() {
            r.fail(&e);
            r.failed_at_open = true;
        }
        r
    }

    /// Uses only records signed by one of `trusted` (when it isn't empty), and signs
    /// what this machine vouches for with `signer`.
    pub fn with_trust(mut self, trusted: TrustedKeys, signer: Option<SecretKey>) -> Self {
        self.trusted = trusted;
        self.signer = signer;
        self
    }

    /// Reads only what keys need (the learned build-script records) and answers
    /// [`has`](Self::has); downloads no binary.
    pub fn keys_only(mut self) -> Self {
        self.downloads = false;
        self
    }

    /// Says in each uploaded entry whether this machine built it (`kiln cache
    /// push`, which hands a build job's slice on): outside what a signature covers,
    /// and read only by a job that vouches for the slice.
    pub fn claiming_origin(mut self) -> Self {
        self.claims_origin = true;
        self
    }

    /// Vouches for this remote's unsigned records that its uploader built, as this
    /// CI run's own builds: for the slices a run's build jobs hand to its later
    /// jobs, never a shared cache.
    pub fn vouching(mut self) -> Self {
        self.vouch = true;
        self
    }

    fn enforced(&self) -> bool {
        !self.trusted.is_empty()
    }

    fn refuse(&self, why: Refusal, what: impl Into<String>) {
        self.refused
            .lock()
            .expect("lock")
            .entry(why)
            .or_default()
            .insert(what.into());
    }

    /// How an entry fetched from the remote counts here: verified by a trusted key,
    /// vouched for as this run's, unverified (no keys trusted), or refused (`None`).
    fn origin_of(&self, entry: &Entry) -> Option<Origin> {
        if let Some(signer) = entry.signer(&self.trusted) {
            return Some(Origin::Verified {
                signer: signer.to_string(),
            });
        }
        if self.vouch {
            // A run's slice says which entries its job built; what the job only
            // restored must carry its own signature.
            (entry.origin == Some(Origin::Built)).then_some(Origin::Run)
        } else if self.enforced() {
            None
        } else {
            Some(Origin::Unverified)
        }
    }

    /// The entry as this machine uploads it: signed when it vouches for it and has
    /// a key, passed on with its signatures when a trusted key signed it, and held
    /// back (`None`) when it came unverified while keys are trusted.
    fn to_upload(&self, entry: &Entry) -> Option<Entry> {
        let mut out = entry.shared();
        match &entry.origin {
            Some(origin @ (Origin::Built | Origin::Run)) => {
                if let Some(key) = &self.signer {
                    out.signatures = vec![key.sign(Domain::Entry, &out.signed_bytes())];
                }
                // A build job's own builds say so in its slice, outside what is
                // signed: `--vouch` adopts only those.
                if self.claims_origin && *origin == Origin::Built {
                    out.origin = Some(Origin::Built);
                }
                Some(out)
            }
            Some(Origin::Verified { .. }) => Some(out),
            _ if self.enforced() => None,
            _ => Some(out),
        }
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
            *self.skipped.lock().expect("lock") = Some(e.detail());
        }
    }

    fn warn(&self, w: Warning) {
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
                self.warn(Warning::RemoteOperationFailed {
                    remote: self.remote.describe(),
                    operation: what.to_string(),
                    error: e.detail(),
                });
                None
            }
        }
    }

    /// Merges the remote's learned build-script inputs for `ids` into `local`, so keys
    /// computed here match the ones computed where the binaries were built. With
    /// trusted keys, a record must be signed by one of them.
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
                self.warn(Warning::RemoteRecordUnreadable {
                    remote: self.remote.describe(),
                    id: id.clone(),
                });
                continue;
            };
            let signed = self
                .trusted
                .verify(
                    Domain::Learned,
                    &theirs.names().signed_bytes(&id),
                    &theirs.signatures,
                )
                .is_some();
            if !signed && self.enforced() && !self.vouch {
                self.refuse(Refusal::UnsignedLearned, id);
                continue;
            }
            // Only names inside the workspace and well-formed, non-credential
            // variable names: a planted record must not make kiln read outside it
            // or publish a hash of a secret.
            let (theirs, dropped) = theirs.from_outside();
            let mut names = Vec::new();
            for d in dropped {
                match d.strip_prefix("credential-like variable ") {
                    Some(name) => self.refuse(Refusal::CredentialName, name),
                    None => names.push(d),
                }
            }
            if !names.is_empty() {
                self.warn(Warning::RemoteNamesDropped {
                    remote: self.remote.describe(),
                    id: id.clone(),
                    names,
                });
            }
            let mut merged = local.learned(&id).unwrap_or_default();
            let before = merged.clone();
            merged.merge(theirs);
            if merged.names() != before.names() {
                merged.unvouched |= !signed && !self.vouch;
                let _ = local.set_learned(&id, &merged);
            }
        }
    }

    /// Looks the `wanted` units up remotely (in parallel) and copies every verified
    /// hit into `local`: an entry must be exactly the unit asked for, and its blob
    /// must match its digest. Returns the keys restored.
    pub fn fetch(&self, wanted: &[Wanted], local: &LocalCache) -> Vec<String> {
        if !self.downloads {
            return Vec::new();
        }
        let found = Mutex::new(Vec::new());
        in_parallel(wanted.to_vec(), |want| {
            if self.fetch_one(&want, local) {
                found.lock().expect("lock").push(want.key);
            }
        });
        found.into_inner().expect("lock")
    }

    fn fetch_one(&self, want: &Wanted, local: &LocalCache) -> bool {
        let key = want.key.as_str();
        let Some(Some(bytes)) = self.guard("a remote entry", || self.remote.get_entry(key)) else {
            return false;
        };
        self.adopt(want, &bytes, local)
    }

    /// Takes the remote entry `bytes` read for `want` into `local` with its blob, when
    /// it is exactly the unit asked for, vouched for, and its blob matches its digest.
    fn adopt(&self, want: &Wanted, bytes: &[u8], local: &LocalCache) -> bool {
        let key = want.key.as_str();
        let entry = match serde_json::from_slice::<Entry>(bytes) {
            Ok(e) if e.answers(want) && kiln_fs::is_sha256_hex(&e.sha256) => {
                let Some(origin) = self.origin_of(&e) else {
                    self.refuse(
                        Refusal::UnsignedEntry,
                        format!("{} {}", want.subject.name(), short(key)),
                    );
                    return false;
                };
                Entry {
                    origin: Some(origin),
                    ..e
                }
            }
            _ => {
                self.warn(Warning::RemoteEntryRefused {
                    remote: self.remote.describe(),
                    binary: want.subject.name().into(),
                    key: short(key).into(),
                });
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
                            self.warn(Warning::RemoteOperationFailed {
                                remote: self.remote.describe(),
                                operation: format!("storing {} locally", entry.name()),
                                error: e.detail(),
                            });
                            false
                        }
                    }
                }
                _ => {
                    self.damaged
                        .lock()
                        .expect("lock")
                        .insert(entry.sha256.clone());
                    self.refuse(
                        Refusal::DigestMismatch,
                        format!("{} {} {}", entry.name(), entry.target, short(&entry.sha256)),
                    );
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

    /// Copies every entry the remote holds into `local`, checked as [`fetch`](Self::fetch)
    /// checks what it was asked for, with every learned record: `kiln cache push
    /// --from` reads a run's slice this way, as data, without computing a key.
    /// Returns the entries now local and the learned records' ids.
    pub fn fetch_listed(&self, local: &LocalCache) -> (Vec<Entry>, BTreeSet<String>) {
        let Some(keys) = self.guard("listing entries", || self.remote.entry_keys()) else {
            return Default::default();
        };
        // Each entry read once: what it says it is becomes what is asked of it.
        let listed: Vec<(Wanted, Vec<u8>)> = keys
            .iter()
            .filter_map(|key| {
                let bytes = self.guard("a remote entry", || self.remote.get_entry(key))??;
                let e = serde_json::from_slice::<Entry>(&bytes).ok()?;
                let want = Wanted {
                    key: e.key.clone(),
                    target: e.target.clone(),
                    subject: e.subject(),
                };
                (e.key == *key).then_some((want, bytes))
            })
            .collect();
        let ids: BTreeSet<String> = self
            .guard("listing learned inputs", || self.remote.learned_ids())
            .unwrap_or_default()
            .into_iter()
            .collect();
        self.fetch_learned(&ids, local);
        if !self.downloads {
            return (Vec::new(), ids);
        }
        let entries = Mutex::new(Vec::new());
        in_parallel(listed, |(want, bytes)| {
            if !self.adopt(&want, &bytes, local) {
                return;
            }
            if let kiln_local_cache::Lookup::Hit(e, _) = local.get_any(&want.key) {
                entries.lock().expect("lock").push(*e);
            }
        });
        (entries.into_inner().expect("lock"), ids)
    }

    /// Whether the remote holds a usable entry for `key`: its own, and signed by a
    /// trusted key when keys are trusted (nothing is downloaded but the entry).
    pub fn has(&self, key: &str) -> bool {
        let Some(Some(bytes)) = self.guard("a remote entry", || self.remote.get_entry(key)) else {
            return false;
        };
        serde_json::from_slice::<Entry>(&bytes)
            .is_ok_and(|e| e.key == key && self.origin_of(&e).is_some())
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
        in_parallel(entries.to_vec(), |entry| self.upload_one(&entry, local));
        for id in learned_ids {
            let Some(l) = local.learned(id) else {
                continue;
            };
            if l.unvouched && self.enforced() {
                self.refuse(Refusal::UnvouchedLearned, id.clone());
                continue;
            }
            // What is shared holds no local path: files outside the workspace
            // (absolute paths) stay in this machine's record.
            let (mut shared, _) = l.names().from_outside();
            if let Some(key) = &self.signer {
                shared.signatures = vec![key.sign(Domain::Learned, &shared.signed_bytes(id))];
            }
            let json = serde_json::to_vec(&shared).expect("learned serializes");
            self.guard("uploading learned inputs", || {
                self.remote.put_learned(id, &json)
            });
        }
    }

    fn upload_one(&self, entry: &Entry, local: &LocalCache) {
        // Its inputs would publish a hash of a secret (brute-forceable): kept here.
        let secrets = entry.secret_inputs();
        if !secrets.is_empty() {
            self.refuse(
                Refusal::SecretInKey,
                format!("{} {} ({})", entry.name(), entry.target, secrets.join(", ")),
            );
            return;
        }
        let Some(shared) = self.to_upload(entry) else {
            self.refuse(
                Refusal::UnvouchedEntry,
                format!("{} {}", entry.name(), entry.target),
            );
            return;
        };
        let Some(blob) = local.blob(&entry.sha256) else {
            return;
        };
        let done = self.guard(&format!("uploading {}", entry.name()), || {
            // A blob found damaged here is replaced, not trusted for its name.
            let damaged = self.damaged.lock().expect("lock").contains(&entry.sha256);
            if damaged || !self.remote.has_blob(&entry.sha256)? {
                self.remote.put_blob(&entry.sha256, entry.size, &blob)?;
                self.bytes_up.fetch_add(entry.size, Ordering::SeqCst);
            }
            let json = serde_json::to_vec_pretty(&shared).expect("entry serializes");
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
            failed_at_open: self.failed_at_open,
            warnings: {
                let remote = self.remote.describe();
                let mut w = self.warnings.lock().expect("lock").clone();
                w.extend(
                    self.refused
                        .lock()
                        .expect("lock")
                        .iter()
                        .map(|(why, what)| why.warning(remote.clone(), what)),
                );
                w
            },
        }
    }
}

fn short(s: &str) -> &str {
    &s[..s.len().min(12)]
}
