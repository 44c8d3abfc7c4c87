//! Writing into the store: stage every file under a temporary name, then rename.

use kiln_diagnostics::{Error, IoContext, Result};
use kiln_fs::{copy_hashing, write_synced, LockMode, TMP_MARK};
use kiln_schema::{ArtifactRecord, Checksums};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

const CHECKSUMS: &str = "checksums.json";
const LOCK: &str = ".kiln.lock";
/// The file that says a directory is a kiln store (and a staged tree kiln's own).
const MARKER: &str = ".kiln-store";
const MARKER_TEXT: &str =
    "This directory is a kiln artifact store: kiln replaces it whole on every build.\n";

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

impl Store {
    /// A store at `root` (nothing is touched until something is written).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The root with symbolic links resolved: what is exchanged on install (a link
    /// named as the store stays a link to it).
    fn real_root(&self) -> PathBuf {
        fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone())
    }

    /// Creates the root and proves it and its parent writable (the new tree is
    /// staged beside the root), so a build fails before compiling rather than after,
    /// and removes what a killed kiln left when no other kiln holds the store (a
    /// build that installs nothing collects it too). A directory that isn't a store
    /// (anything but new, empty or kiln's) is refused: kiln replaces the whole
    /// directory on every install.
    pub fn prepare(&self) -> Result<()> {
        let real = self.ensure()?;
        let parent = real.parent().unwrap_or(Path::new("/"));
        for dir in [real.as_path(), parent] {
            let probe = dir.join(format!(".kiln-store{TMP_MARK}probe-{}", std::process::id()));
            let written = File::create(&probe).and_then(|_| fs::remove_file(&probe));
            written.map_err(|e| unwritable(dir, e))?;
        }
        if let Some(_lock) = kiln_fs::try_lock(&self.root.join(LOCK))? {
            self.remove_stale(&real);
        }
        Ok(())
    }

    /// Checks the root is a store, creates it with its marker, and returns it with
    /// symbolic links resolved.
    fn ensure(&self) -> Result<PathBuf> {
        self.check_is_store()?;
        fs::create_dir_all(&self.root).map_err(|e| unwritable(&self.root, e))?;
        let real = self.real_root();
        if !real.join(MARKER).exists() {
            write_synced(&real.join(MARKER), MARKER_TEXT.as_bytes())?;
        }
        Ok(real)
    }

    /// Refuses a root that holds anything but a kiln store: the filesystem root, a
    /// source tree, or a directory of other files.
    fn check_is_store(&self) -> Result<()> {
        let real = self.real_root();
        let refuse = |why: String| {
            Err(Error::usage(format!(
                "`{}` can't be the artifact directory: {why}",
                self.root.display()
            ))
            .hint("pass `--artifact-dir` a new or empty directory (kiln replaces the whole directory on every build), e.g. `artifacts`"))
        };
        if real.parent().is_none() {
            return refuse("it is the filesystem's root".into());
        }
        let Ok(entries) = fs::read_dir(&real) else {
            return Ok(());
        };
        let names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if let Some(n) = names
            .iter()
            .find(|n| ["Cargo.toml", ".git", "Cargo.lock", "src"].contains(&n.as_str()))
        {
            return refuse(format!("it holds `{n}`, so it is a source tree"));
        }
        let kilns = [MARKER, CHECKSUMS, LOCK];
        if names.is_empty() || names.iter().any(|n| kilns.contains(&n.as_str())) {
            return Ok(());
        }
        let mut shown: Vec<&str> = names.iter().map(String::as_str).collect();
        shown.sort_unstable();
        shown.truncate(3);
        refuse(format!(
            "it holds files kiln didn't write ({}) and no kiln store",
            shown.join(", ")
        ))
    }

    /// Takes the store's write lock, waiting for other kiln processes, and removes
    /// what a killed kiln left: staged trees beside the root (only a lock holder
    /// stages, so any found now is dead) and temporary files of older kilns inside it.
    pub fn lock(&self) -> Result<StoreLock> {
        let real = self.ensure()?;
        let file = kiln_fs::lock(&self.root.join(LOCK), LockMode::Exclusive)?;
        self.remove_stale(&real);
        Ok(StoreLock { _file: file })
    }

    /// Removes, beside and inside the store at `real`, what a killed kiln left; the
    /// caller holds the lock.
    fn remove_stale(&self, real: &Path) {
        let (Some(parent), Some(name)) = (real.parent(), real.file_name().and_then(|n| n.to_str()))
        else {
            return;
        };
        if let Ok(entries) = fs::read_dir(parent) {
            for e in entries.flatten() {
                let staged = e
                    .file_name()
                    .to_str()
                    .is_some_and(|n| kiln_fs::temp_owner(n, Some(name)).is_some());
                // Only trees kiln staged: they carry the store's marker.
                if staged && e.path().join(MARKER).is_file() {
                    remove_marker_last(&e.path());
                }
            }
        }
        // Older kilns renamed file by file inside the store: their leftovers are
        // files named like kiln's temporaries at the top and in `<os>/<arch>/`.
        let mut dirs = vec![real.to_path_buf()];
        for os in subdirs(real) {
            dirs.extend(subdirs(&os));
        }
        for dir in dirs {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let ours = e
                    .file_name()
                    .to_str()
                    .is_some_and(|n| kiln_fs::temp_owner(n, None).is_some());
                if ours && e.file_type().is_ok_and(|t| t.is_file()) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }

    /// Installs `artifacts` all or nothing, and all at once: the whole new store is
    /// staged beside the root (files it keeps as hard links, new files written and
    /// synced, `checksums.json` last), then exchanged with the root in one rename. A
    /// reader that opens a path sees the old store or the new one, never a mix; one
    /// holding a file open keeps reading the old file. The caller must hold the lock.
    pub fn install(
        &self,
        _lock: &StoreLock,
        artifacts: Vec<NewArtifact>,
    ) -> Result<Vec<ArtifactRecord>> {
        let real = self.real_root();
        let stage = kiln_fs::temp_path(&real);
        let records = match self.fill_stage(&real, &stage, artifacts) {
            Ok(r) => r,
            Err(e) => {
                let _ = fs::remove_dir_all(&stage);
                return Err(e);
            }
        };
        let old = match kiln_fs::swap_in_dir(&stage, &real) {
            Ok(old) => old,
            Err(e) => {
                let _ = fs::remove_dir_all(&stage);
                return Err(e);
            }
        };
        if let Some(parent) = real.parent() {
            kiln_fs::sync_dir(parent)?;
        }
        if let Some(old) = old {
            remove_marker_last(&old);
        }
        Ok(records)
    }

    fn fill_stage(
        &self,
        real: &Path,
        stage: &Path,
        artifacts: Vec<NewArtifact>,
    ) -> Result<Vec<ArtifactRecord>> {
        fs::create_dir(stage).io_context("create", stage)?;
        if let Ok(meta) = fs::metadata(real) {
            let _ = fs::set_permissions(stage, meta.permissions());
        }
        write_synced(&stage.join(MARKER), MARKER_TEXT.as_bytes())?;
        carry_over(real, stage)?;
        let paths: Vec<String> = artifacts.iter().map(|a| a.record.path.clone()).collect();
        let mut checksums = match self.read_checksums() {
            Ok(c) => c,
            Err(e) => {
                self.check_rewrite(&paths, &e)?;
                Checksums::default()
            }
        };
        let mut records = Vec::new();
        for a in artifacts {
            let record = self.stage(stage, a)?;
            checksums.upsert(record.clone());
            records.push(record);
        }
        records.sort_by(|a, b| a.path.cmp(&b.path));
        let mut json = serde_json::to_vec_pretty(&checksums).expect("checksums serialize");
        json.push(b'\n');
        write_new(&stage.join(CHECKSUMS), &json)?;
        for dir in kiln_fs::dirs_under(stage) {
            kiln_fs::sync_dir(&dir)?;
        }
        Ok(records)
    }

    /// With `checksums.json` unreadable, a build may rewrite it only when it
    /// installs every binary the store holds: otherwise the others' records would be
    /// lost without a word.
    pub fn check_rewrite(&self, paths: &[String], unreadable: &Error) -> Result<()> {
        let unlisted: Vec<String> = self
            .binaries_on_disk()
            .into_iter()
            .filter(|p| !paths.contains(p))
            .collect();
        if unlisted.is_empty() {
            return Ok(());
        }
        Err(Error::new(
            kiln_diagnostics::Kind::VerifyFailed,
            format!(
                "{unreadable}, and this build would rewrite it without the records of {}",
                unlisted.join(", ")
            ),
        )
        .hint("run `kiln build` for every binary and target the store holds (no `-p`/`--bin`/`--target`) to rewrite it, or remove those files"))
    }

    /// The binaries in the store's folders, by their `.sha256` sidecars:
    /// `linux/amd64/app` for `linux/amd64/app` beside `linux/amd64/app.sha256`.
    pub fn binaries_on_disk(&self) -> Vec<String> {
        let mut out = Vec::new();
        let real = self.real_root();
        for os in subdirs(&real) {
            for arch in subdirs(&os) {
                let Ok(entries) = fs::read_dir(&arch) else {
                    continue;
                };
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name.starts_with('.') || !arch.join(format!("{name}.sha256")).is_file() {
                        continue;
                    }
                    if let Ok(rel) = e.path().strip_prefix(&real) {
                        out.push(rel.to_string_lossy().replace('\\', "/"));
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// Writes one artifact's files into the staged tree under their final names
    /// (replacing the links to the old ones, never writing through them).
    fn stage(&self, stage: &Path, a: NewArtifact) -> Result<ArtifactRecord> {
        let record = a.record;
        let rel = artifact_path(&record.os, &record.arch, &record.binary);
        let dest = stage.join(&rel);
        let dir = dest.parent().expect("artifact has a parent");
        fs::create_dir_all(dir).io_context("create", dir)?;
        unlink(&dest)?;
        let (sha256, size) = copy_hashing(&a.source, &dest, true)?;
        if (sha256.as_str(), size, rel.as_str())
            != (record.sha256.as_str(), record.size, record.path.as_str())
        {
            return Err(Error::internal(format!(
                "`{}` changed while it was being installed (sha256 {sha256}, expected {})",
                a.source.display(),
                record.sha256
            ))
            .hint("run the build again; nothing was installed"));
        }
        let mut record = record;
        record.sboms.clear();
        for d in &a.documents {
            let side = dest.with_file_name(format!("{}.{}", record.binary, d.suffix));
            write_new(&side, &d.bytes)?;
            record.sboms.push(kiln_schema::SbomRecord {
                path: format!("{rel}.{}", d.suffix),
                format: d.format.clone(),
                sha256: kiln_fs::sha256_hex(&d.bytes),
            });
        }
        let sidecars = [
            ("sha256", sha256_sidecar(&record.sha256, &record.binary)),
            ("version", version_sidecar(&record.version)),
        ];
        for (ext, text) in sidecars {
            let side = dest.with_file_name(format!("{}.{ext}", record.binary));
            write_new(&side, text.as_bytes())?;
        }
        Ok(record)
    }

    /// Reads `checksums.json`; a missing file is an empty store.
    pub fn read_checksums(&self) -> Result<Checksums> {
        let path = self.root.join(CHECKSUMS);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::new(
                    kiln_diagnostics::Kind::VerifyFailed,
                    format!("`{}` is not a valid kiln checksums file", path.display()),
                )
                .with_source(e)
                .hint("run `kiln build` to rewrite it")
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Checksums::default()),
            Err(e) => Err(Error::io("read", &path, e)),
        }
    }
}

/// The error for an artifact directory (or its parent) that can't be written.
fn unwritable(dir: &Path, e: std::io::Error) -> Error {
    Error::environment(format!("the artifact directory `{}` is not writable", dir.display()))
        .with_source(e)
        .hint("pass `--artifact-dir DIR` (or set `artifact-dir` in `[workspace.metadata.kiln]`) to a writable directory whose parent is writable too")
}

/// The text of a binary's `.sha256` sidecar (what `sha256sum -c` reads).
pub fn sha256_sidecar(sha256: &str, binary: &str) -> String {
    format!("{sha256}  {binary}\n")
}

/// The text of a binary's `.version` sidecar.
pub fn version_sidecar(version: &str) -> String {
    format!("v{version}\n")
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Removes a staged or replaced tree, its marker last: a removal cut short leaves
/// a tree the next lock still knows as kiln's.
fn remove_marker_last(dir: &Path) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_name() == MARKER {
            continue;
        }
        let _ = match e.file_type() {
            Ok(t) if t.is_dir() => fs::remove_dir_all(e.path()),
            _ => fs::remove_file(e.path()),
        };
    }
    let _ = fs::remove_file(dir.join(MARKER));
    let _ = fs::remove_dir(dir);
}

/// Recreates `from`'s tree in `to` with hard links to its files (copies where a
/// link can't be made), its symbolic links and directories: everything the new
/// store keeps, kiln's or not. Kiln's temporary files and the marker stay behind.
fn carry_over(from: &Path, to: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(from) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let text = name.to_string_lossy();
        if text == MARKER || kiln_fs::temp_owner(&text, None).is_some() {
            continue;
        }
        let (src, dest) = (e.path(), to.join(&name));
        let kind = e.file_type().io_context("inspect", &src)?;
        if kind.is_dir() {
            fs::create_dir(&dest).io_context("create", &dest)?;
            if let Ok(meta) = fs::metadata(&src) {
                let _ = fs::set_permissions(&dest, meta.permissions());
            }
            carry_over(&src, &dest)?;
        } else if kind.is_symlink() {
            let target = fs::read_link(&src).io_context("read", &src)?;
            symlink(&target, &dest)?;
        } else if kind.is_file() {
            if fs::hard_link(&src, &dest).is_err() {
                fs::copy(&src, &dest).io_context("copy", &src)?;
            }
        } else {
            return Err(Error::usage(format!(
                "`{}` in the artifact directory is neither a file, a directory nor a link; kiln can't keep it in a new store",
                src.display()
            ))
            .hint("move it out of the artifact directory"));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn symlink(target: &Path, dest: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, dest).io_context("link", dest)
}

#[cfg(not(unix))]
fn symlink(target: &Path, dest: &Path) -> Result<()> {
    fs::copy(target, dest).map(|_| ()).io_context("copy", dest)
}

/// Removes the staged tree's link at `path`, if any, so what is written there next
/// is a new file and the old store's file stays as it was.
fn unlink(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", path, e)),
        _ => Ok(()),
    }
}

/// Writes and syncs a new file at `path` in the staged tree (replacing a link).
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    unlink(path)?;
    write_synced(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new artifact for `bin` on amd64 with `bytes`, its source written under `dir`.
    fn artifact(dir: &Path, bin: &str, bytes: &[u8]) -> NewArtifact {
        let source = dir.join(format!("built-{bin}"));
        fs::write(&source, bytes).unwrap();
        let record = serde_json::from_value(serde_json::json!({
            "path": format!("linux/amd64/{bin}"), "os": "linux", "arch": "amd64",
            "target": "x86_64-unknown-linux-musl", "package": bin, "binary": bin,
            "version": "1.0.0", "sha256": kiln_fs::sha256_hex(bytes), "size": bytes.len(),
            "profile": "release", "git": {"commit": null, "dirty": false},
            "rustc": "rustc 1.0.0", "backend": "cargo"
        }))
        .unwrap();
        NewArtifact {
            source,
            record,
            documents: Vec::new(),
        }
    }

    #[test]
    fn an_install_swaps_the_whole_store_and_keeps_what_it_did_not_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("artifacts"));
        let lock = store.lock().unwrap();
        store
            .install(
                &lock,
                vec![
                    artifact(dir.path(), "a", b"a1"),
                    artifact(dir.path(), "b", b"b1"),
                ],
            )
            .unwrap();
        fs::write(store.root().join("README"), b"mine").unwrap();
        let held = fs::File::open(store.root().join("linux/amd64/a")).unwrap();
        store
            .install(&lock, vec![artifact(dir.path(), "a", b"a2")])
            .unwrap();
        let read = |rel: &str| fs::read(store.root().join(rel)).unwrap();
        assert_eq!(read("linux/amd64/a"), b"a2");
        assert_eq!(read("linux/amd64/b"), b"b1", "kept");
        assert_eq!(read("README"), b"mine", "the user's file is kept");
        assert_eq!(store.read_checksums().unwrap().artifacts.len(), 2);
        // An open file keeps the bytes it had: kiln never writes into one.
        assert_eq!(kiln_fs::read_capped(held, 16).unwrap(), b"a1");
        // Nothing staged is left beside the store.
        let beside: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            beside
                .iter()
                .all(|n| !n.to_string_lossy().contains(TMP_MARK)),
            "{beside:?}"
        );
        drop(lock);
        // An unreadable manifest: a partial install is refused, a whole one rewrites it.
        fs::write(store.root().join(CHECKSUMS), b"{").unwrap();
        let lock = store.lock().unwrap();
        let e = store
            .install(&lock, vec![artifact(dir.path(), "a", b"a3")])
            .unwrap_err();
        assert!(e.to_string().contains("linux/amd64/b"), "{e}");
        assert_eq!(read("linux/amd64/a"), b"a2");
        let all = vec![
            artifact(dir.path(), "a", b"a3"),
            artifact(dir.path(), "b", b"b3"),
        ];
        store.install(&lock, all).unwrap();
        assert_eq!(store.read_checksums().unwrap().artifacts.len(), 2);
    }

    #[test]
    fn only_new_empty_or_kiln_directories_are_stores() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Store::new(dir.path().join("new")).prepare().is_ok());
        fs::create_dir(dir.path().join("empty")).unwrap();
        assert!(Store::new(dir.path().join("empty")).prepare().is_ok());
        for (name, file) in [("src-tree", "Cargo.toml"), ("photos", "a.jpg")] {
            fs::create_dir(dir.path().join(name)).unwrap();
            fs::write(dir.path().join(name).join(file), b"x").unwrap();
            let e = Store::new(dir.path().join(name)).prepare().unwrap_err();
            assert_eq!(e.kind(), kiln_diagnostics::Kind::Usage, "{e}");
        }
        assert!(Store::new("/").prepare().is_err());
    }
}
