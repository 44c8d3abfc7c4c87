//! The memory budget: what a build may use, from the flag, the config, or the machine.

use kiln_diagnostics::{Error, Result};

/// A memory budget and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Bytes.
    pub bytes: u64,
    /// `--max-memory`, `max-memory in Cargo.toml`, `cgroup memory.max`, `75% of MemAvailable`.
    pub source: String,
}

/// The budget for `setting` (`auto`, or a size such as `4GiB`); `auto` is the cgroup
/// limit when the build runs in one (v2 `memory.max`, v1 `memory.limit_in_bytes`),
/// else three quarters of the memory available now.
pub fn detect_budget(setting: Option<&str>, source: &str) -> Result<Budget> {
    match setting.map(str::trim) {
        Some(s) if !s.eq_ignore_ascii_case("auto") => Ok(Budget {
            bytes: parse_budget(s)?,
            source: source.to_string(),
        }),
        _ => Ok(auto()),
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

/// Parses `500M`, `2GiB`, `1.5G`, `1048576` (bytes).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(bad(s)),
    };
    let n: f64 = num.parse().map_err(|_| bad(s))?;
    let bytes = n * mult as f64;
    // Whole bytes only: `0.5` is not half a byte's budget but a mistake.
    if !(n >= 0.0 && bytes.is_finite() && bytes.fract() == 0.0 && bytes < u64::MAX as f64) {
        return Err(bad(s));
    }
    Ok(bytes as u64)
}

/// The smallest memory budget kiln accepts: less can't run one compiler.
const MIN_BUDGET: u64 = 64 << 20;

/// A memory budget: a size of at least [`MIN_BUDGET`].
fn parse_budget(s: &str) -> Result<u64> {
    let bytes = parse_size(s)?;
    if bytes < MIN_BUDGET {
        return Err(Error::usage(format!(
            "the memory budget `{s}` is too small to run a compiler"
        ))
        .hint("give at least `64MiB` (sizes take a unit: `4GiB`, `512M`), or `auto`"));
    }
    Ok(bytes)
}

fn bad(s: &str) -> Error {
    Error::usage(format!("invalid size `{s}`")).hint("write sizes like `500M`, `4GiB` or `1048576`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_of_a_byte_and_tiny_budgets_are_errors() {
        assert!(parse_size("0.5").is_err());
        assert_eq!(
            parse_size("0").unwrap(),
            0,
            "`gc --max-size 0` empties the cache"
        );
        assert_eq!(parse_size("0.5K").unwrap(), 512);
        assert!(parse_budget("0.5").is_err());
        assert!(parse_budget("1024").is_err());
        assert_eq!(parse_budget("1GiB").unwrap(), 1 << 30);
    }

    #[test]
    fn sizes_and_auto() {
        assert_eq!(parse_size("4GiB").unwrap(), 4 << 30);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("500M").unwrap(), 500 << 20);
        assert!(parse_size("lots").is_err() && parse_budget("0").is_err());
        let b = detect_budget(Some("2GiB"), "--max-memory").unwrap();
        assert_eq!((b.bytes, b.source.as_str()), (2 << 30, "--max-memory"));
        assert!(detect_budget(None, "").unwrap().bytes > 0);
    }
}

/// No size a user writes makes the parser panic.
#[cfg(test)]
mod no_panic {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sizes(s in "[0-9.eE+-]{0,30}[a-zA-Z]{0,4}") {
            let _ = super::parse_size(&s);
            let _ = super::parse_budget(&s);
        }
    }
}
