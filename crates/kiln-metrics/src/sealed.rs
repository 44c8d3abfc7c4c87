//! Credentials out of every child's reach, `/proc` included.
//!
//! Removing a variable with `std::env::remove_var` changes the C library's copy of
//! the environment, not the block the kernel shows in `/proc/<pid>/environ`: a build
//! script that walks its ancestors could read kiln's credentials there. So when any
//! sealed variable is set, kiln writes their values into a pipe, runs itself again
//! (the same executable, the same arguments) with an environment without them and
//! the pipe's number in `KILN_SEALED_FD`, and the new process reads them back into
//! memory. It also marks itself not dumpable, so processes of the same user can't
//! read its memory or environment through `/proc` or ptrace.

/// Runs kiln again without the variables `names`, handing their values over in a
/// pipe: returns only when none is set or this can't be done here (then the caller
/// goes on as before, with the variables removed from the C library's copy only).
pub fn rerun_without(names: &[&str]) {
    #[cfg(unix)]
    unix::rerun_without(names);
    #[cfg(not(unix))]
    let _ = names;
}

/// The values handed over in the pipe `fd` by [`rerun_without`], put back into this
/// process's environment (in memory only: its `/proc` block stays clean) for the
/// settings to read and seal again.
pub fn receive(fd: i32) {
    #[cfg(unix)]
    unix::receive(fd);
    #[cfg(not(unix))]
    let _ = fd;
}

/// Makes this process not dumpable (Linux): its memory and environment can't be
/// read by other processes of the same user.
pub fn not_dumpable() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: PR_SET_DUMPABLE with 0 only changes this process's own flag.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

#[cfg(unix)]
mod unix {
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::os::unix::process::CommandExt;

    /// A pipe holds this much without a reader; more would block before the exec.
    const MAX_HANDED_OVER: usize = 60 << 10;

    pub(super) fn rerun_without(names: &[&str]) {
        let mut payload = Vec::new();
        for name in names {
            if let Some(value) = std::env::var_os(name) {
                payload.extend_from_slice(name.as_bytes());
                payload.push(0);
                payload.extend_from_slice(value.as_bytes());
                payload.push(0);
            }
        }
        if payload.is_empty() || payload.len() > MAX_HANDED_OVER {
            return;
        }
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe() writes.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return;
        }
        // SAFETY: pipe() just returned these two descriptors, owned here alone.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // The write end never reaches the new process; the read end does.
        // SAFETY: fcntl on descriptors this function owns.
        unsafe {
            libc::fcntl(fds[1], libc::F_SETFD, libc::FD_CLOEXEC);
            libc::fcntl(fds[0], libc::F_SETFD, 0);
        }
        let mut writer = std::fs::File::from(write);
        if writer.write_all(&payload).is_err() {
            return;
        }
        drop(writer);
        // The executable's own path (not `/proc/self/exe`, which would make the
        // process's name `exe` in ps and top).
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_default();
        let clean = std::env::vars_os().filter(|(k, _)| !names.iter().any(|n| k == n));
        let mut cmd = std::process::Command::new(exe);
        cmd.arg0(arg0)
            .args(args)
            .env_clear()
            .envs(clean)
            .env(kiln_config::SEALED_FD, fds[0].to_string());
        // Only returns when the exec failed: go on in this process.
        let _ = cmd.exec();
        drop(read);
    }

    pub(super) fn receive(fd: i32) {
        // SAFETY: the descriptor was inherited for this process to read and own; a
        // wrong number is refused below unless it is a pipe.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd, &mut stat) } != 0
            || stat.st_mode & libc::S_IFMT != libc::S_IFIFO
        {
            return;
        }
        let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
        let mut payload = Vec::new();
        if Read::by_ref(&mut file)
            .take(MAX_HANDED_OVER as u64 + 1)
            .read_to_end(&mut payload)
            .is_err()
        {
            return;
        }
        let mut parts = payload.split(|&b| b == 0);
        while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
            if name.is_empty() || name.contains(&b'=') {
                continue;
            }
            let name = std::ffi::OsString::from_vec(name.to_vec());
            let value = std::ffi::OsString::from_vec(value.to_vec());
            std::env::set_var(name, value);
        }
    }
}
