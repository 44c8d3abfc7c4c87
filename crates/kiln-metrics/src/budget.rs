//! The memory budget: what a build may use, from the flag, the config, or the machine.

use kiln_config::MemoryLimit;

/// A memory budget and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Bytes.
    pub bytes: u64,
    /// `--max-memory`, `max-memory in Cargo.toml`, `cgroup memory.max`, `75% of MemAvailable`.
    pub source: String,
}

/// The budget for `limit` (parsed and bounded by kiln-config); `auto` is the cgroup
/// limit when the build runs in one (v2 `memory.max`, v1 `memory.limit_in_bytes`),
/// else three quarters of the memory available now.
pub fn detect_budget(limit: MemoryLimit, source: &str) -> Budget {
    match limit {
        MemoryLimit::Bytes(bytes) => Budget {
            bytes,
            source: source.to_string(),
        },
        MemoryLimit::Auto => auto(),
    }
}

fn auto() -> Budget {
    let available = mem_available();
    if let Some(limit) = cgroup_limit() {
        // Others in the cgroup may already use some of it.
        return Budget {
            bytes: available.map_or(limit, |a| limit.min(a.max(limit / 2))),
            source: "the cgroup memory limit".into(),
        };
    }
    match available {
        Some(a) => Budget {
            bytes: a / 4 * 3,
            source: "75% of available memory".into(),
        },
        None => Budget {
            bytes: 4 << 30,
            source: "a 4 GiB default (memory size unknown)".into(),
        },
    }
}

fn cgroup_limit() -> Option<u64> {
    // v2: the limit of this process's cgroup.
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let v2_path = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/");
    for dir in [
        format!("/sys/fs/cgroup{v2_path}"),
        "/sys/fs/cgroup".to_string(),
    ] {
        if let Ok(v) = std::fs::read_to_string(format!("{dir}/memory.max")) {
            if let Ok(n) = v.trim().parse::<u64>() {
                return Some(n);
            }
        }
    }
    // v1: absurdly large values mean "no limit".
    let v1 = std::fs::read_to_string("/sys/fs/cgroup/memory/memory.limit_in_bytes").ok()?;
    v1.trim().parse::<u64>().ok().filter(|n| *n < 1 << 50)
}

fn mem_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_budget_keeps_its_source_and_auto_finds_memory() {
        let b = detect_budget(MemoryLimit::Bytes(2 << 30), "--max-memory");
        assert_eq!((b.bytes, b.source.as_str()), (2 << 30, "--max-memory"));
        assert!(detect_budget(MemoryLimit::Auto, "").bytes > 0);
    }
}
