//! What kiln asks the operating system while it builds: every process with its parent
//! and resident memory (to sum a build's process tree), a live process's CPU time (the
//! sccache server kiln starts), and how much memory the machine or its cgroup allows.
//!
//! One small trait, [`Host`], so the sampler and the budget are the same code on every
//! OS: [`ProcFs`] reads Linux's `/proc` and `/sys/fs/cgroup` from configurable roots
//! (tests hand it a tree of their own, with a page size other than 4096), and on macOS
//! `Darwin` asks libproc and sysctl. [`host`] is the one for the running OS.

use std::path::{Path, PathBuf};

/// One running process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    /// Its id.
    pub pid: u32,
    /// Its parent's id.
    pub ppid: u32,
    /// Resident bytes.
    pub rss: u64,
}

/// The operating system, as far as kiln's memory and CPU accounting needs it.
pub trait Host: Send + Sync {
    /// Every process kiln may see (others' may be missing: they can't be ours).
    fn processes(&self) -> Vec<Proc>;
    /// User plus system CPU seconds of the live process `pid` and, where the OS keeps
    /// them per process (Linux), of the children it waited for.
    fn cpu_secs(&self, pid: u32) -> Option<f64>;
    /// Memory that can be used now without swapping, in bytes.
    fn memory_available(&self) -> Option<u64>;
    /// Physical memory, in bytes.
    fn memory_total(&self) -> Option<u64>;
    /// The memory limit of the control group this process runs in, if any.
    fn memory_limit(&self) -> Option<u64>;
}

/// The running OS's [`Host`].
pub fn host() -> &'static dyn Host {
    #[cfg(target_os = "macos")]
    {
        static DARWIN: Darwin = Darwin;
        &DARWIN
    }
    #[cfg(not(target_os = "macos"))]
    {
        static PROC: std::sync::OnceLock<ProcFs> = std::sync::OnceLock::new();
        PROC.get_or_init(ProcFs::system)
    }
}

/// Resident bytes of every descendant of `root` in `procs` (not `root` itself).
pub fn descendants_rss(procs: &[Proc], root: u32) -> u64 {
    descendants(procs, root).map(|p| p.rss).sum()
}

/// Every descendant of `root` in `procs` (not `root` itself).
pub fn descendants(procs: &[Proc], root: u32) -> impl Iterator<Item = &Proc> {
    let parent: std::collections::HashMap<u32, u32> =
        procs.iter().map(|p| (p.pid, p.ppid)).collect();
    procs.iter().filter(move |p| {
        let mut at = p.pid;
        // Bounded: a cycle in a racy snapshot must not hang the sampler.
        for _ in 0..64 {
            match parent.get(&at) {
                Some(&pp) if pp == root => return true,
                Some(&pp) if pp > 1 => at = pp,
                _ => return false,
            }
        }
        false
    })
}

/// CPU seconds of the children this process waited for (cargo, and through it every
/// compiler it waited for), from `getrusage`, on every Unix.
pub fn children_cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// This machine's name, for the metrics' host line (never a path).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into `buf`.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end])
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .collect()
}

/// A `sysconf` value, if the system has one.
fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf has no memory effects.
    let v = unsafe { libc::sysconf(name) };
    (v > 0).then_some(v as u64)
}

/// Linux: `/proc` and `/sys/fs/cgroup`.
#[derive(Debug, Clone)]
pub struct ProcFs {
    /// Where `/proc` is.
    pub proc: PathBuf,
    /// Where `/sys/fs/cgroup` is.
    pub cgroup: PathBuf,
    /// Bytes per page: `/proc/<pid>/stat` counts resident memory in pages, 4 KiB on
    /// x86_64 but 16 or 64 KiB on some arm64 kernels.
    pub page_size: u64,
    /// Clock ticks per second, the unit of the CPU times in `/proc/<pid>/stat`.
    pub clock_ticks: u64,
}

impl ProcFs {
    /// The running system's.
    pub fn system() -> Self {
        Self {
            proc: "/proc".into(),
            cgroup: "/sys/fs/cgroup".into(),
            page_size: sysconf(libc::_SC_PAGESIZE).unwrap_or(4096),
            clock_ticks: sysconf(libc::_SC_CLK_TCK).unwrap_or(100),
        }
    }

    /// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces
    /// and parentheses): index 0 is the state, 1 the parent.
    fn stat(&self, pid: &str) -> Option<Vec<String>> {
        let stat = std::fs::read_to_string(self.proc.join(pid).join("stat")).ok()?;
        let rest = stat.get(stat.rfind(')')? + 2..)?;
        Some(rest.split_whitespace().map(str::to_string).collect())
    }

    fn read_u64(path: &Path) -> Option<u64> {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }

    fn meminfo(&self, key: &str) -> Option<u64> {
        let info = std::fs::read_to_string(self.proc.join("meminfo")).ok()?;
        let kib: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }
}

impl Host for ProcFs {
    fn processes(&self) -> Vec<Proc> {
        let Ok(dir) = std::fs::read_dir(&self.proc) else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let pid: u32 = name.to_str()?.parse().ok()?;
                let fields = self.stat(name.to_str()?)?;
                // After the name: 1 = ppid, 21 = rss in pages.
                Some(Proc {
                    pid,
                    ppid: fields.get(1)?.parse().ok()?,
                    rss: fields.get(21)?.parse::<u64>().ok()? * self.page_size,
                })
            })
            .collect()
    }

    fn cpu_secs(&self, pid: u32) -> Option<f64> {
        let fields = self.stat(&pid.to_string())?;
        // utime, stime, cutime, cstime.
        let ticks: u64 = [11, 12, 13, 14]
            .iter()
            .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
            .sum();
        Some(ticks as f64 / self.clock_ticks as f64)
    }

    fn memory_available(&self) -> Option<u64> {
        self.meminfo("MemAvailable")
    }

    fn memory_total(&self) -> Option<u64> {
        self.meminfo("MemTotal")
    }

    fn memory_limit(&self) -> Option<u64> {
        // v2: the limit of this process's cgroup ("max" means none).
        let cgroup = std::fs::read_to_string(self.proc.join("self/cgroup")).unwrap_or_default();
        let v2 = cgroup
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap_or("/")
            .trim_start_matches('/');
        for dir in [self.cgroup.join(v2), self.cgroup.clone()] {
            if let Some(n) = Self::read_u64(&dir.join("memory.max")) {
                return Some(n);
            }
        }
        // v1: absurdly large values mean "no limit".
        Self::read_u64(&self.cgroup.join("memory/memory.limit_in_bytes")).filter(|n| *n < 1 << 50)
    }
}

/// macOS: libproc for processes, sysctl for memory.
#[cfg(target_os = "macos")]
#[derive(Debug, Clone, Copy)]
pub struct Darwin;

#[cfg(target_os = "macos")]
impl Darwin {
    /// `proc_pidinfo(pid, flavor)` into a `T`, when the call fills all of it.
    fn pidinfo<T>(pid: u32, flavor: libc::c_int) -> Option<T> {
        // SAFETY: a zeroed T is valid for these plain C structs, and proc_pidinfo
        // writes at most `size` bytes into it.
        let mut info: T = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<T>() as libc::c_int;
        let n = unsafe {
            libc::proc_pidinfo(
                pid as libc::c_int,
                flavor,
                0,
                (&mut info as *mut T).cast(),
                size,
            )
        };
        (n == size).then_some(info)
    }

    fn task_info(pid: u32) -> Option<libc::proc_taskinfo> {
        Self::pidinfo(pid, libc::PROC_PIDTASKINFO)
    }

    fn parent(pid: u32) -> Option<u32> {
        Self::pidinfo::<libc::proc_bsdinfo>(pid, libc::PROC_PIDTBSDINFO).map(|i| i.pbi_ppid)
    }
}

#[cfg(target_os = "macos")]
impl Host for Darwin {
    fn processes(&self) -> Vec<Proc> {
        // SAFETY: a null buffer asks for the count; the second call fills at most `len`.
        let count = unsafe { libc::proc_listallpids(std::ptr::null_mut(), 0) };
        if count <= 0 {
            return Vec::new();
        }
        let mut pids = vec![0 as libc::c_int; count as usize + 64];
        let len = (pids.len() * std::mem::size_of::<libc::c_int>()) as libc::c_int;
        let n = unsafe { libc::proc_listallpids(pids.as_mut_ptr().cast(), len) };
        pids.truncate(n.max(0) as usize);
        pids.into_iter()
            .filter(|p| *p > 0)
            .filter_map(|p| {
                let pid = p as u32;
                Some(Proc {
                    pid,
                    ppid: Self::parent(pid)?,
                    rss: Self::task_info(pid)?.pti_resident_size,
                })
            })
            .collect()
    }

    // libc deprecates its Mach timebase items in favour of the mach2 crate; one
    // call doesn't justify another dependency.
    #[allow(deprecated)]
    fn cpu_secs(&self, pid: u32) -> Option<f64> {
        let info = Self::task_info(pid)?;
        // Times are in Mach absolute-time units: nanoseconds scaled by the timebase.
        let mut tb = libc::mach_timebase_info { numer: 0, denom: 0 };
        // SAFETY: writes the struct it is given.
        if unsafe { libc::mach_timebase_info(&mut tb) } != 0 || tb.denom == 0 {
            return None;
        }
        let units = (info.pti_total_user + info.pti_total_system) as f64;
        Some(units * f64::from(tb.numer) / f64::from(tb.denom) / 1e9)
    }

    fn memory_available(&self) -> Option<u64> {
        // macOS compresses and pages memory in its own way: three quarters of
        // physical memory is what the budget takes (see `budget`).
        None
    }

    fn memory_total(&self) -> Option<u64> {
        let mut bytes: u64 = 0;
        let mut size = std::mem::size_of::<u64>();
        // SAFETY: hw.memsize is a u64; sysctlbyname writes at most `size` bytes.
        let rc = unsafe {
            libc::sysctlbyname(
                c"hw.memsize".as_ptr(),
                (&mut bytes as *mut u64).cast(),
                &mut size,
                std::ptr::null_mut(),
                0,
            )
        };
        (rc == 0 && bytes > 0).then_some(bytes)
    }

    fn memory_limit(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `/proc` of its own: `(pid, ppid, rss pages)` per process.
    fn fake_proc(dir: &Path, procs: &[(u32, u32, u64)]) {
        for (pid, ppid, pages) in procs {
            let d = dir.join(pid.to_string());
            std::fs::create_dir_all(&d).unwrap();
            // 52 fields like the kernel's: state, ppid, ..., rss at 21 after the name.
            let mut fields = vec!["0".to_string(); 50];
            fields[0] = "S".into();
            fields[1] = ppid.to_string();
            fields[11] = "300".into();
            fields[12] = "100".into();
            fields[21] = pages.to_string();
            let stat = format!("{pid} (rustc (a) b) {}\n", fields.join(" "));
            std::fs::write(d.join("stat"), stat).unwrap();
        }
        std::fs::write(
            dir.join("meminfo"),
            "MemTotal:       8000 kB\nMemAvailable:   6000 kB\n",
        )
        .unwrap();
    }

    #[test]
    fn a_tree_is_summed_with_the_kernels_page_size() {
        let tmp = tempfile::tempdir().unwrap();
        // 10 = kiln, 11 = cargo, 12 = rustc (under cargo), 20 = someone else's.
        fake_proc(
            tmp.path(),
            &[(10, 1, 5), (11, 10, 2), (12, 11, 3), (20, 1, 100)],
        );
        let fs = ProcFs {
            proc: tmp.path().into(),
            cgroup: tmp.path().join("none"),
            page_size: 16384,
            clock_ticks: 100,
        };
        let procs = fs.processes();
        assert_eq!(procs.len(), 4);
        // A 16 KiB-page arm64 kernel: 5 pages of cargo and rustc are 80 KiB, not 20.
        assert_eq!(descendants_rss(&procs, 10), 5 * 16384);
        assert_eq!(fs.cpu_secs(12), Some(4.0));
        assert_eq!(fs.memory_available(), Some(6000 * 1024));
        assert_eq!(fs.memory_total(), Some(8000 * 1024));
        assert_eq!(fs.memory_limit(), None);
    }

    #[test]
    fn cgroup_limits_v2_then_v1() {
        let tmp = tempfile::tempdir().unwrap();
        let fs = ProcFs {
            proc: tmp.path().join("proc"),
            cgroup: tmp.path().join("cg"),
            page_size: 4096,
            clock_ticks: 100,
        };
        std::fs::create_dir_all(fs.proc.join("self")).unwrap();
        std::fs::create_dir_all(fs.cgroup.join("memory")).unwrap();
        std::fs::write(
            fs.cgroup.join("memory/memory.limit_in_bytes"),
            "1073741824\n",
        )
        .unwrap();
        assert_eq!(fs.memory_limit(), Some(1 << 30), "v1");
        std::fs::write(fs.proc.join("self/cgroup"), "0::/build\n").unwrap();
        std::fs::create_dir_all(fs.cgroup.join("build")).unwrap();
        std::fs::write(fs.cgroup.join("build/memory.max"), "2147483648\n").unwrap();
        assert_eq!(
            fs.memory_limit(),
            Some(2 << 30),
            "v2 of this process's group"
        );
        std::fs::write(fs.cgroup.join("build/memory.max"), "max\n").unwrap();
        std::fs::write(fs.cgroup.join("memory.max"), "max\n").unwrap();
        assert_eq!(fs.memory_limit(), Some(1 << 30), "no v2 limit: v1's");
    }

    #[test]
    fn the_real_system_answers() {
        let h = host();
        let me = std::process::id();
        let procs = h.processes();
        assert!(procs.iter().any(|p| p.pid == me && p.rss > 0));
        assert!(h.cpu_secs(me).is_some());
        assert!(h.memory_total().unwrap() > 0);
        assert!(!hostname().is_empty());
    }
}
