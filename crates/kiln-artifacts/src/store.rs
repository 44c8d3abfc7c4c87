//! Writing into the store: stage every file under a temporary name, then rename.

use kiln_diagnostics::{Error, IoContext, Result};
use kiln_fs::{copy_hashing, temp_path, write_atomic, write_synced, LockMode, TMP_MARK};
use kiln_schema::{ArtifactRecord, Checksums};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

const CHECKSUMS: &str = "checksums.json";

/// An artifact store rooted at a directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Exclusive access to the store; released when dropped.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

/// A binary to install: where it is now and its complete record. The store checks
/// that what it copies has the recorded digest.
#[derive(Debug, Clone)]
pub struct NewArtifact {
    /// The freshly built binary.
    pub source: PathBuf,
    /// Everything else `checksums.json` says about it (its `sboms` are filled in
    /// from `documents`).
    pub record: ArtifactRecord,
    /// Documents installed beside it, by file-name suffix (`spdx.json`), with their
    /// format (`spdx-2.3`).
    pub documents: Vec<Document>,
}

/// A file about an artifact, installed beside it.
#[derive(Debug, Clone)]
pub struct Document {
    /// What follows `<bin>.` in its name.
    pub suffix: String,
    /// Its format, as `checksums.json` names it.
    pub format: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Where the binary `bin` for `os`/`arch` lives in the store, relative to its root.
pub fn artifact_path(os: &str, arch: &str, bin: &str) -> String {
    format!("{os}/{arch}/{bin}")
}

/// Files written under temporary names, waiting to be renamed into place.
#[derive(Debug)]
struct Staged {
    renames: Vec<(PathBuf, PathBuf)>,
    record: ArtifactRecord,
}

impl Store {
    /// A store at `root` (nothing is touched until something is written).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the root and proves it writable, so a build fails before compiling
    /// rather than after.
    pub fn prepare(&self) -> Result<()> {
        let unwritable = |e: std::io::Error| {
            Error::environment(format!("the artifact directory `{}` is not writable", self.root.display()))
                .with_source(e)
                .hint("pass `--artifact-dir DIR` (or set `artifact-dir` in `[workspace.metadata.kiln]`) to a writable directory")
        };
        fs::create_dir_all(&self.root).map_err(unwritable)?;
        let probe = self
            .root
            .join(format!("{TMP_MARK}probe-{}", std::process::id()));
        File::create(&probe).map_err(unwritable)?;
        fs::remove_file(&probe).map_err(unwritable)?;
        Ok(())
    }

    /// Takes the store's write lock, waiting for other kiln processes, and removes
    /// temporary files a killed process may have left behind.
    pub fn lock(&self) -> Result<StoreLock> {
        self.prepare()?;
        let file = kiln_fs::lock(&self.root.join(".kiln.lock"), LockMode::Exclusive)?;
        self.remove_stale_temps();
        Ok(StoreLock { _file: file })
    }

    fn remove_stale_temps(&self) {
        let dirs = walk_dirs(&self.root);
        for dir in dirs {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().contains(TMP_MARK) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }

    /// Installs `artifacts` all or nothing: every file is staged first, and only when
    /// all are staged are they renamed into place and `checksums.json` rewritten.
    /// The caller must hold the lock.
    pub fn install(
        &self,
        _lock: &StoreLock,
        artifacts: Vec<NewArtifact>,
    ) -> Result<Vec<ArtifactRecord>> {
        let mut staged = Vec::new();
        for a in artifacts {
            match self.stage(a) {
                Ok(s) => staged.push(s),
                Err(e) => {
                    staged.iter().flat_map(|s| &s.renames).for_each(|(tmp, _)| {
                        let _ = fs::remove_file(tmp);
                    });
                    return Err(e);
                }
            }
        }
        let mut checksums = self.read_checksums().unwrap_or_default();
        let mut records = Vec::new();
        let mut dirs = std::collections::BTreeSet::new();
        for s in staged {
            for (tmp, dest) in &s.renames {
                fs::rename(tmp, dest).io_context("rename into", dest)?;
                dirs.extend(dest.parent().map(Path::to_path_buf));
            }
            checksums.upsert(s.record.clone());
            records.push(s.record);
        }
        // The renames are durable before checksums.json names what they installed.
        for dir in &dirs {
            kiln_fs::sync_dir(dir)?;
        }
        records.sort_by(|a, b| a.path.cmp(&b.path));
        let mut json = serde_json::to_vec_pretty(&checksums).expect("checksums serialize");
        json.push(b'\n');
        write_atomic(&self.root.join(CHECKSUMS), &json)?;
        kiln_fs::sync_dir(&self.root)?;
        Ok(records)
    }

    fn stage(&self, a: NewArtifact) -> Result<Staged> {
        let record = a.record;
        let rel = artifact_path(&record.os, &record.arch, &record.binary);
        let dest = self.root.join(&rel);
        let dir = dest.parent().expect("artifact has a parent");
        fs::create_dir_all(dir).io_context("create", dir)?;
        let tmp = temp_path(&dest);
        let (sha256, size) = copy_hashing(&a.source, &tmp, true)?;
        if (sha256.as_str(), size, rel.as_str())
            != (record.sha256.as_str(), record.size, record.path.as_str())
        {
            let _ = fs::remove_file(&tmp);
            return Err(Error::internal(format!(
                "`{}` changed while it was being installed (sha256 {sha256}, expected {})",
                a.source.display(),
                record.sha256
            ))
            .hint("run the build again; nothing was installed"));
        }
        let mut renames = vec![(tmp, dest.clone())];
        let mut record = record;
        record.sboms.clear();
        for d in &a.documents {
            let side = dest.with_file_name(format!("{}.{}", record.binary, d.suffix));
            let tmp = temp_path(&side);
            write_synced(&tmp, &d.bytes)?;
            renames.push((tmp, side));
            record.sboms.push(kiln_schema::SbomRecord {
                path: format!("{rel}.{}", d.suffix),
                format: d.format.clone(),
                sha256: kiln_fs::sha256_hex(&d.bytes),
            });
        }
        let sidecars = [
            ("sha256", format!("{}  {}\n", record.sha256, record.binary)),
            ("version", format!("v{}\n", record.version)),
        ];
        for (ext, text) in sidecars {
            let side = dest.with_file_name(format!("{}.{ext}", record.binary));
            let tmp = temp_path(&side);
            write_synced(&tmp, text.as_bytes())?;
            renames.push((tmp, side));
        }
        Ok(Staged { renames, record })
    }

    /// Reads `checksums.json`; a missing file is an empty store.
    pub fn read_checksums(&self) -> Result<Checksums> {
        let path = self.root.join(CHECKSUMS);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::usage(format!(
                    "`{}` is not a valid kiln checksums file",
                    path.display()
                ))
                .with_source(e)
                .hint("run `kiln build` to rewrite it")
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Checksums::default()),
            Err(e) => Err(Error::io("read", &path, e)),
        }
    }
}

fn walk_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(entries) = fs::read_dir(&out[i]) {
            out.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
        i += 1;
    }
    out
}
