//! The memory budget: what a build may use, from the flag, the config, or the machine.

use kiln_config::MemoryLimit;
use kiln_schema::{BudgetSource, SettingOrigin};

/// A memory budget and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Bytes.
    pub bytes: u64,
    /// The setting that gave it, or what kiln measured.
    pub source: BudgetSource,
}

/// The budget for `limit` (parsed and bounded by kiln-config); `auto` is the cgroup
/// limit when the build runs in one (v2 `memory.max`, v1 `memory.limit_in_bytes`),
/// else three quarters of the memory available now.
pub fn detect_budget(limit: MemoryLimit, origin: SettingOrigin) -> Budget {
    match limit {
        MemoryLimit::Bytes(bytes) => Budget {
            bytes,
            source: BudgetSource::Setting { origin },
        },
        MemoryLimit::Auto => auto(),
    }
}

fn auto() -> Budget {
    let host = crate::host::host();
    let available = host.memory_available();
    if let Some(limit) = host.memory_limit() {
        // Others in the cgroup may already use some of it.
        return Budget {
            bytes: available.map_or(limit, |a| limit.min(a.max(limit / 2))),
            source: BudgetSource::Cgroup,
        };
    }
    if let Some(a) = available {
        return Budget {
            bytes: a / 4 * 3,
            source: BudgetSource::Available,
        };
    }
    match host.memory_total() {
        // macOS: physical memory (hw.memsize); it compresses before it swaps.
        Some(t) => Budget {
            bytes: t / 4 * 3,
            source: BudgetSource::Physical,
        },
        None => Budget {
            bytes: 4 << 30,
            source: BudgetSource::Fallback,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_budget_keeps_its_source_and_auto_finds_memory() {
        let b = detect_budget(
            MemoryLimit::Bytes(2 << 30),
            SettingOrigin::Flag {
                flag: "--max-memory".into(),
            },
        );
        assert_eq!(
            (b.bytes, b.source.to_string().as_str()),
            (2 << 30, "--max-memory")
        );
        assert!(detect_budget(MemoryLimit::Auto, SettingOrigin::Default).bytes > 0);
    }
}
