//! The file primitives kiln's stores share (artifact store, binary cache, stat cache).
//!
//! Every write goes to a temporary name in the destination's directory and is renamed
//! into place, so a reader never sees a partial file and a killed writer leaves only a
//! temporary file, recognisable by [`TMP_MARK`], for the next locked writer to remove.

use kiln_diagnostics::{IoContext, Result};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

mod swap;
pub use swap::{remove_stale_temps, swap_in_dir, temp_owner};

/// Part of every temporary file name kiln writes.
pub const TMP_MARK: &str = ".kiln-tmp-";

/// The first executable file named `program` in a `PATH` directory: the one lookup
/// every crate uses to find a tool.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

/// Puts `dir` first on this process's `PATH` (once): for tools kiln installed for
/// itself. Only call it before starting threads.
pub fn put_first_on_path(dir: &Path) {
    let current = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&current).next().as_deref() == Some(dir) {
        return;
    }
    let paths = std::iter::once(dir.to_path_buf()).chain(std::env::split_paths(&current));
    if let Ok(joined) = std::env::join_paths(paths) {
        std::env::set_var("PATH", joined);
    }
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// The bytes of an OS string (lossy only where the platform has no byte view): for
/// hashing and escaping names exactly.
#[cfg(unix)]
pub fn os_bytes(s: &std::ffi::OsStr) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    s.as_bytes().to_vec()
}

/// The bytes of an OS string (lossy only where the platform has no byte view).
#[cfg(not(unix))]
pub fn os_bytes(s: &std::ffi::OsStr) -> Vec<u8> {
    s.to_string_lossy().into_owned().into_bytes()
}

/// `path` relative to the current directory when it is below it, for shorter
/// messages.
pub fn display_path(path: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    path.strip_prefix(&cwd)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Lowercase hex of some bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `s` is a hex SHA-256 as kiln writes them (64 lowercase hex digits): what
/// a key, blob name or digest from outside must be before it names a file.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Hex SHA-256 and size of a file's content, read in chunks.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex(&h.finalize()), size))
}

/// A fresh temporary name next to `dest`: `.<name>.kiln-tmp-<pid>-<n>`, where `n`
/// is unpredictable (a writer to a shared directory can't plant a link at the name
/// kiln will use next). Create it with [`create_new`].
pub fn temp_path(dest: &Path) -> PathBuf {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let mut h = KEYS.get_or_init(Default::default).build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let n = h.finish();
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    dest.with_file_name(format!(".{name}{TMP_MARK}{}-{n}", std::process::id()))
}

/// Creates the file `path`, which must not exist: never through a symbolic link
/// planted there, never over someone else's file (`O_CREAT | O_EXCL`).
pub fn create_new(path: &Path) -> std::io::Result<File> {
    File::options().write(true).create_new(true).open(path)
}

/// `dir` and every directory below it (not through symbolic links), `dir` first.
pub fn dirs_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
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

/// Syncs a directory, so the renames made in it survive a crash (a file's own sync
/// doesn't cover the directory entry that names it). Not needed, and not possible,
/// outside Unix.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .io_context("sync", dir)?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes `bytes` to `path` and syncs it.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).io_context("create", path)?;
    f.write_all(bytes).io_context("write", path)?;
    f.sync_all().io_context("sync", path)
}

/// Writes `dest` through a temporary file and a rename, creating its directory.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let dir = dest.parent().expect("destination has a parent");
    fs::create_dir_all(dir).io_context("create", dir)?;
    let tmp = temp_path(dest);
    let written = create_new(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
        .io_context("write", &tmp);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, dest).io_context("rename into", dest)
}

/// How old a dead writer's temporary file must be before another process removes
/// it: a writer in another PID namespace looks dead but is rarely this slow.
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Makes the directory `dest` in one step: `fill` creates and fills a directory at
/// the temporary path it is given (beside `dest`), which then takes `dest`'s place
/// in one exchange (see [`swap_in_dir`]); the old tree is removed after. A failing
/// `fill` leaves `dest` as it was and removes what it made; a killed process leaves
/// `dest` old or new, and a temporary name that the next install collects.
///
/// Only for directories kiln owns whole: everything at `dest` is replaced.
pub fn install_dir(dest: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent).io_context("create", parent)?;
    if let Some(name) = dest.file_name().and_then(|n| n.to_str()) {
        remove_stale_temps(parent, Some(name), STALE_AFTER);
    }
    let staging = temp_path(dest);
    if let Err(e) = fill(&staging) {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    let old = match swap_in_dir(&staging, dest) {
        Ok(old) => old,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    sync_dir(parent)?;
    if let Some(old) = old {
        let _ = fs::remove_dir_all(&old);
    }
    Ok(())
}

/// Copies `src` to `dest` (a new name, see [`create_new`]: a temporary name the
/// caller renames later), syncs it,
/// marks it executable when asked, and returns the SHA-256 and size of what was written.
pub fn copy_hashing(src: &Path, dest: &Path, executable: bool) -> Result<(String, u64)> {
    let mut input = File::open(src).io_context("open", src)?;
    let mut out = create_new(dest).io_context("create", dest)?;
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
    if executable {
        set_executable(&out, dest)?;
    }
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

/// Opens a file that someone else controls (a shared-directory cache) for reading,
/// only if it is a regular file: never through a symlink (`/dev/zero` behind one
/// would be endless), never a FIFO (opening one waits for a writer) or a device.
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    let mut options = File::options();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Non-blocking: a FIFO opens at once (and is then refused) instead of waiting.
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc_eloop()) {
            std::io::Error::other("a symbolic link, not a regular file")
        } else {
            e
        }
    })?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

#[cfg(unix)]
fn libc_eloop() -> i32 {
    libc::ELOOP
}

#[cfg(not(unix))]
fn libc_eloop() -> i32 {
    -1
}

/// Reads at most `max` bytes of `file`; a longer file is an error, read no further.
pub fn read_capped(file: File, max: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    file.take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(std::io::Error::other(format!(
            "larger than the {max} bytes allowed"
        )));
    }
    Ok(out)
}

/// How a lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Many holders at once (readers).
    Shared,
    /// One holder (writers).
    Exclusive,
}

/// Opens (creating it and its directory) the lock file at `path` and waits for the
/// lock; it is released when the returned file is dropped.
pub fn lock(path: &Path, mode: LockMode) -> Result<File> {
    let file = open_lock_file(path)?;
    match mode {
        LockMode::Shared => file.lock_shared(),
        LockMode::Exclusive => file.lock(),
    }
    .io_context("lock", path)?;
    Ok(file)
}

/// The lock file at `path`, created with its directory when missing.
fn open_lock_file(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).io_context("create", dir)?;
    }
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .io_context("open", path)
}

/// [`lock`] without waiting: `None` when another process holds it.
pub fn try_lock(path: &Path) -> Result<Option<File>> {
    let file = open_lock_file(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(kiln_diagnostics::Error::io("lock", path, e)),
    }
}

/// `1970-01-01T00:00:00Z` for seconds since the epoch.
pub fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_no_temp_and_copy_hashes_what_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/file");
        write_atomic(&dest, b"abc").unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"abc");
        let names: Vec<_> = fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1);
        let copy = dir.path().join("copy");
        let (sha, size) = copy_hashing(&dest, &copy, true).unwrap();
        assert_eq!((sha.clone(), size), sha256_file(&copy).unwrap());
        assert_eq!(sha, sha256_hex(b"abc"));
    }

    #[test]
    fn a_directory_is_installed_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("prefix");
        install_dir(&dest, |p| {
            fs::create_dir_all(p.join("lib")).unwrap();
            fs::write(p.join("lib/a"), b"1").map_err(|e| kiln_diagnostics::Error::io("write", p, e))
        })
        .unwrap();
        assert_eq!(fs::read(dest.join("lib/a")).unwrap(), b"1");
        // A failure leaves the old one, and nothing else, behind.
        let failed = install_dir(&dest, |p| {
            fs::create_dir_all(p).unwrap();
            Err(kiln_diagnostics::Error::internal("half way"))
        });
        assert!(failed.is_err());
        assert_eq!(fs::read(dest.join("lib/a")).unwrap(), b"1");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        // A new one replaces the old one whole.
        install_dir(&dest, |p| {
            fs::create_dir_all(p).unwrap();
            fs::write(p.join("b"), b"2").map_err(|e| kiln_diagnostics::Error::io("write", p, e))
        })
        .unwrap();
        assert!(!dest.join("lib").exists() && dest.join("b").is_file());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn temporary_names_are_unpredictable_and_never_written_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("entry.json");
        let (a, b) = (temp_path(&dest), temp_path(&dest));
        let n = |p: &Path| -> u64 {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.rsplit('-').next().unwrap().parse().unwrap()
        };
        assert!(n(&b).abs_diff(n(&a)) > 1, "{a:?} then {b:?}");
        // A link planted at the name is refused, and what it points to is untouched.
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, &a).unwrap();
        assert!(create_new(&a).is_err());
        assert!(copy_hashing(&victim, &a, false).is_err());
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
    }

    #[cfg(unix)]
    #[test]
    fn only_regular_files_open_and_reads_stop_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, b"12345").unwrap();
        assert_eq!(
            read_capped(open_regular(&file).unwrap(), 5).unwrap(),
            b"12345"
        );
        assert!(read_capped(open_regular(&file).unwrap(), 4).is_err());
        let link = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let e = open_regular(&link).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(open_regular(Path::new("/dev/null")).is_err());
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success(), "mkfifo (coreutils)");
        let e = open_regular(&fifo).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
}
