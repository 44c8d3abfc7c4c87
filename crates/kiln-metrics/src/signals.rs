//! Interrupts reach the whole build: a SIGINT, SIGTERM or SIGHUP sent to kiln alone
//! (a CI runner cancelling, `timeout`, `kill`) is passed to every process group kiln
//! started (cargo with its rustc and build scripts) and every other process below
//! kiln, kiln waits for cargo to end, then ends itself by the same signal. Without
//! this, cargo and rustc ran on as orphans.
//!
//! The signals are blocked in every thread and taken by one thread with `sigwait`, so
//! nothing runs in a signal handler. Children start with an empty signal mask (the
//! standard library resets it), so they can be interrupted as usual.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static GROUPS: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How long kiln waits for its children to end after passing a signal on.
const GRACE: Duration = Duration::from_secs(10);

/// Starts forwarding. Call once, before any other thread starts (a thread inherits
/// the signal mask of the thread that starts it).
pub fn forward_interrupts() {
    #[cfg(unix)]
    unix::start();
}

/// Whether kiln was interrupted: a child that failed now failed because of it, and
/// kiln is about to end; callers stop instead of reporting a failure.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// A process group kiln started (the child was spawned with `process_group(0)`):
/// interrupts are passed to it until the guard is dropped (after waiting for it).
#[derive(Debug)]
pub struct ChildGroup(u32);

impl ChildGroup {
    /// Registers the group whose leader is `pid`.
    pub fn register(pid: u32) -> Self {
        GROUPS.lock().expect("groups").insert(pid);
        ChildGroup(pid)
    }
}

impl Drop for ChildGroup {
    fn drop(&mut self) {
        GROUPS.lock().expect("groups").remove(&self.0);
    }
}

#[cfg(unix)]
mod unix {
    use super::*;

    const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

    fn set_of(signals: &[libc::c_int]) -> libc::sigset_t {
        // SAFETY: sigemptyset initialises the set before sigaddset reads it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in signals {
                libc::sigaddset(&mut set, *s);
            }
            set
        }
    }

    pub(super) fn start() {
        let set = set_of(&SIGNALS);
        // SAFETY: a valid set; only this thread's mask changes (inherited by threads).
        if unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("kiln-signals".into())
            .spawn(move || loop {
                let mut sig: libc::c_int = 0;
                // SAFETY: `set` is a valid signal set and `sig` a valid out pointer.
                if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                    continue;
                }
                pass_on_and_end(sig);
            });
        if spawned.is_err() {
            // No thread to take them: let the signals act as they normally would.
            // SAFETY: as above.
            unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
        }
    }

    fn pass_on_and_end(sig: libc::c_int) -> ! {
        INTERRUPTED.store(true, Ordering::SeqCst);
        let groups: Vec<u32> = GROUPS.lock().expect("groups").iter().copied().collect();
        for g in &groups {
            if let Ok(pgid) = libc::pid_t::try_from(*g) {
                // SAFETY: signalling a process group kiln started.
                unsafe { libc::kill(-pgid, sig) };
            }
        }
        // Everything else kiln started (`cargo metadata`, `cargo tree`, git, a
        // wrapper they run), found by parentage.
        let procs = crate::host::host().processes();
        for p in crate::host::descendants(&procs, std::process::id()) {
            if let Ok(pid) = libc::pid_t::try_from(p.pid) {
                // SAFETY: signalling a process kiln started.
                unsafe { libc::kill(pid, sig) };
            }
        }
        let deadline = Instant::now() + GRACE;
        while !GROUPS.lock().expect("groups").is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // End by the same signal, as a shell expects (exit status 128 + n).
        // SAFETY: restoring the default action and raising it ends the process.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            let one = set_of(&[sig]);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &one, std::ptr::null_mut());
            libc::raise(sig);
        }
        std::process::exit(128 + sig)
    }
}
