//! Writing into the store: stage every file under a temporary name, then rename.

use kiln_diagnostics::{Error, IoContext, Result};
use kiln_schema::{ArtifactRecord, Checksums};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const TMP_MARK: &str = ".kiln-tmp-";
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

/// A binary to install: where it is now and its record, whose `sha256`, `size` and
/// `path` the store fills in.
#[derive(Debug, Clone)]
pub struct NewArtifact {
    /// The freshly built binary.
    pub source: PathBuf,
    /// Everything else `checksums.json` says about it.
    pub record: ArtifactRecord,
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
                .hint("pass `--out DIR` (or set `artifact-dir` in `[workspace.metadata.kiln]`) to a writable directory")
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
        let path = self.root.join(".kiln.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .io_context("open", &path)?;
        file.lock().io_context("lock", &path)?;
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
        for s in staged {
            for (tmp, dest) in &s.renames {
                fs::rename(tmp, dest).io_context("rename into", dest)?;
            }
            checksums.upsert(s.record.clone());
            records.push(s.record);
        }
        records.sort_by(|a, b| a.path.cmp(&b.path));
        let json = serde_json::to_vec_pretty(&checksums).expect("checksums serialize");
        write_atomic(&self.root.join(CHECKSUMS), &[&json, b"\n"])?;
        Ok(records)
    }

    fn stage(&self, a: NewArtifact) -> Result<Staged> {
        let mut record = a.record;
        let rel = format!("{}/{}/{}", record.os, record.arch, record.binary);
        let dest = self.root.join(&rel);
        let dir = dest.parent().expect("artifact has a parent");
        fs::create_dir_all(dir).io_context("create", dir)?;
        let tmp = temp_name(&dest);
        let (sha256, size) = copy_hashing(&a.source, &tmp)?;
        record.path = rel;
        record.sha256 = sha256;
        record.size = size;
        let mut renames = vec![(tmp, dest.clone())];
        let sidecars = [
            ("sha256", format!("{}  {}\n", record.sha256, record.binary)),
            ("version", format!("v{}\n", record.version)),
        ];
        for (ext, text) in sidecars {
            let side = dest.with_file_name(format!("{}.{ext}", record.binary));
            let tmp = temp_name(&side);
            write_synced(&tmp, &[text.as_bytes()])?;
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

fn temp_name(dest: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    dest.with_file_name(format!(".{name}{TMP_MARK}{}-{n}", std::process::id()))
}

/// Copies `src` to `dest`, returning the SHA-256 and size of what was written.
fn copy_hashing(src: &Path, dest: &Path) -> Result<(String, u64)> {
    let mut input = File::open(src).io_context("open", src)?;
    let mut out = File::create(dest).io_context("create", dest)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buf).io_context("read", src)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).io_context("write", dest)?;
        size += n as u64;
    }
    set_executable(&out, dest)?;
    out.sync_all().io_context("sync", dest)?;
    Ok((hex(&hasher.finalize()), size))
}

#[cfg(unix)]
fn set_executable(file: &File, path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(0o755))
        .io_context("chmod", path)
}

#[cfg(not(unix))]
fn set_executable(_: &File, _: &Path) -> Result<()> {
    Ok(())
}

fn write_synced(path: &Path, parts: &[&[u8]]) -> Result<()> {
    let mut f = File::create(path).io_context("create", path)?;
    for p in parts {
        f.write_all(p).io_context("write", path)?;
    }
    f.sync_all().io_context("sync", path)
}

/// Writes `dest` through a temporary file and a rename.
fn write_atomic(dest: &Path, parts: &[&[u8]]) -> Result<()> {
    let tmp = temp_name(dest);
    if let Err(e) = write_synced(&tmp, parts) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, dest).io_context("rename into", dest)
}

/// Hex SHA-256 of a file's content.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).io_context("open", path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut f, &mut hasher).io_context("read", path)?;
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
