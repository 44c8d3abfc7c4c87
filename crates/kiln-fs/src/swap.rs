//! Replacing a whole directory in one step, and collecting what a killed writer left.
//!
//! A directory is replaced by filling a staged copy beside it and exchanging the two
//! names with one `renameat2(RENAME_EXCHANGE)` (Linux) or `renamex_np(RENAME_SWAP)`
//! (macOS): a reader that opens a path sees the old tree or the new one, never a
//! mix, and a crash at any point leaves one of the two under the real name. Where the
//! filesystem can't exchange, the old tree is moved aside first: still never a mix,
//! but for a moment no tree at all.

use crate::{temp_path, TMP_MARK};
use kiln_diagnostics::{Error, IoContext, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// Puts the directory `staged` at `dest` in one step. Returns where the tree that
/// was at `dest` now is (for the caller to remove), `None` when there was none.
pub fn swap_in_dir(staged: &Path, dest: &Path) -> Result<Option<PathBuf>> {
    match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::rename(staged, dest).io_context("rename into", dest)?;
            return Ok(None);
        }
        Err(e) => return Err(Error::io("inspect", dest, e)),
        Ok(_) => {}
    }
    match exchange(staged, dest) {
        Ok(()) => Ok(Some(staged.to_path_buf())),
        Err(e) if unsupported(&e) => {
            // Never a mix, but a moment with nothing at `dest`.
            let old = temp_path(dest);
            fs::rename(dest, &old).io_context("move aside", dest)?;
            if let Err(e) = fs::rename(staged, dest) {
                let _ = fs::rename(&old, dest);
                return Err(Error::io("rename into", dest, e));
            }
            Ok(Some(old))
        }
        Err(e) => Err(Error::io("exchange with", dest, e)),
    }
}

fn unsupported(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(
            e.raw_os_error(),
            Some(libc::EINVAL | libc::ENOSYS | libc::ENOTSUP)
        )
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        true
    }
}

/// Exchanges the names `a` and `b` atomically (both must exist).
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    let (a, b) = {
        use std::os::unix::ffi::OsStrExt;
        (
            std::ffi::CString::new(a.as_os_str().as_bytes())?,
            std::ffi::CString::new(b.as_os_str().as_bytes())?,
        )
    };
    // The raw system call on Linux: older C libraries have no wrapper for it.
    // SAFETY: both paths are NUL-terminated strings that outlive the call.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    // SAFETY: as above.
    #[cfg(target_vendor = "apple")]
    let r = unsafe { libc::renamex_np(a.as_ptr(), b.as_ptr(), libc::RENAME_SWAP) };
    #[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
    return match r {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    };
    #[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
    {
        let _ = (a, b);
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }
}

/// The process id a kiln temporary name carries (`.<name>.kiln-tmp-<pid>-<n>`, as
/// [`temp_path`] makes them), if `name` is one made for `base` (any base when `None`).
pub fn temp_owner(name: &str, base: Option<&str>) -> Option<u32> {
    let (before, after) = name.split_once(TMP_MARK)?;
    // kiln's temporary names are hidden: `.` and the name they stand in for.
    let base_here = before.strip_prefix('.')?;
    if base.is_some_and(|b| b != base_here) {
        return None;
    }
    let (pid, n) = after.split_once('-')?;
    n.bytes().all(|b| b.is_ascii_digit()).then_some(())?;
    pid.parse().ok()
}

/// Whether a process with this id runs on this machine (in this PID namespace).
fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Removes, in `dir`, the temporary files and directories kiln made for `base` (any
/// base when `None`) whose writer is gone: its process no longer runs and it is
/// older than `min_age`. Nothing else is touched, and nothing younger: another
/// machine or PID namespace may be writing it. Returns how many were removed.
pub fn remove_stale_temps(dir: &Path, base: Option<&str>, min_age: std::time::Duration) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let now = std::time::SystemTime::now();
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| temp_owner(n, base)) else {
            continue;
        };
        let Ok(meta) = e.path().symlink_metadata() else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age >= min_age);
        if !old || (pid == std::process::id() || process_alive(pid)) {
            continue;
        }
        let gone = if meta.is_dir() {
            fs::remove_dir_all(e.path())
        } else {
            fs::remove_file(e.path())
        };
        removed += usize::from(gone.is_ok());
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swap_leaves_the_new_tree_in_place_and_hands_back_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("store");
        let staged = dir.path().join("staged");
        fs::create_dir_all(dest.join("a")).unwrap();
        fs::write(dest.join("a/f"), b"old").unwrap();
        fs::create_dir_all(staged.join("a")).unwrap();
        fs::write(staged.join("a/f"), b"new").unwrap();
        let old = swap_in_dir(&staged, &dest).unwrap().unwrap();
        assert_eq!(fs::read(dest.join("a/f")).unwrap(), b"new");
        assert_eq!(fs::read(old.join("a/f")).unwrap(), b"old");
        // Nothing at dest: a plain rename.
        let fresh = dir.path().join("fresh");
        fs::create_dir(&fresh).unwrap();
        assert!(swap_in_dir(&fresh, &dir.path().join("new-dest"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn only_a_dead_writers_temporaries_for_the_name_are_collected() {
        let dir = tempfile::tempdir().unwrap();
        // A pid that can't be running (above the kernel's maximum).
        let dead = format!(".store{TMP_MARK}4194305-0");
        let live = format!(".store{TMP_MARK}{}-1", std::process::id());
        let other = format!(".other{TMP_MARK}4194305-0");
        for n in [&dead, &live, &other, &"notes.txt".to_string()] {
            fs::create_dir(dir.path().join(n)).unwrap();
        }
        assert_eq!(temp_owner(&dead, Some("store")), Some(4_194_305));
        assert_eq!(temp_owner("notes.txt", None), None);
        // Not hidden: another tool's name that merely looks like kiln's.
        assert_eq!(temp_owner(&format!("a{TMP_MARK}1-1"), None), None);
        assert_eq!(
            remove_stale_temps(dir.path(), Some("store"), std::time::Duration::ZERO),
            1
        );
        assert!(!dir.path().join(&dead).exists());
        for n in [&live, &other, &"notes.txt".to_string()] {
            assert!(dir.path().join(n).exists(), "{n} kept");
        }
        // Too young to be collected, even when its writer is gone.
        assert_eq!(
            remove_stale_temps(dir.path(), None, std::time::Duration::from_secs(3600)),
            0
        );
    }
}
