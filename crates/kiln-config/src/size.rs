//! Sizes (`500M`, `4GiB`) and the memory budget setting, parsed once.

use kiln_diagnostics::{Error, Result};
use serde::Deserialize;

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
    // Whole bytes only: `0.5` is not half a byte but a mistake.
    if !(n >= 0.0 && bytes.is_finite() && bytes.fract() == 0.0 && bytes < u64::MAX as f64) {
        return Err(bad(s));
    }
    Ok(bytes as u64)
}

fn bad(s: &str) -> Error {
    Error::usage(format!("invalid size `{}`", s.escape_debug()))
        .hint("write sizes like `500M`, `4GiB` or `1048576`")
}

/// The smallest memory budget kiln accepts: less can't run one compiler.
pub const MIN_BUDGET: u64 = 64 << 20;

/// The memory budget: `auto` (the cgroup limit, else 75% of available memory) or a
/// fixed size of at least [`MIN_BUDGET`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawSize")]
pub enum MemoryLimit {
    /// Detected from the machine when the build starts.
    #[default]
    Auto,
    /// A fixed number of bytes.
    Bytes(u64),
}

impl MemoryLimit {
    /// Parses `auto` or a size.
    pub fn parse(s: &str) -> Result<Self> {
        if s.trim().eq_ignore_ascii_case("auto") {
            return Ok(Self::Auto);
        }
        let bytes = parse_size(s)?;
        if bytes < MIN_BUDGET {
            return Err(Error::usage(format!(
                "the memory budget `{}` is too small to run a compiler",
                s.escape_debug()
            ))
            .hint("give at least `64MiB` (sizes take a unit: `4GiB`, `512M`), or `auto`"));
        }
        Ok(Self::Bytes(bytes))
    }
}

impl std::fmt::Display for MemoryLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Bytes(b) => write!(f, "{b} bytes"),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSize {
    Number(u64),
    Text(String),
}

impl TryFrom<RawSize> for MemoryLimit {
    type Error = String;
    fn try_from(raw: RawSize) -> Result<Self, String> {
        let text = match raw {
            RawSize::Number(n) => n.to_string(),
            RawSize::Text(t) => t,
        };
        MemoryLimit::parse(&text).map_err(|e| {
            let hints = e.hints().join("; ");
            format!("{e} ({hints})")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("500M").unwrap(), 500 << 20);
        assert_eq!(parse_size("10").unwrap(), 10);
        assert_eq!(
            parse_size("0").unwrap(),
            0,
            "`gc --max-size 0` empties the cache"
        );
        assert_eq!(parse_size("0.5K").unwrap(), 512);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0.5").is_err());
    }

    #[test]
    fn budgets_are_auto_or_at_least_64_mib() {
        assert_eq!(MemoryLimit::parse("auto").unwrap(), MemoryLimit::Auto);
        assert_eq!(
            MemoryLimit::parse("1GiB").unwrap(),
            MemoryLimit::Bytes(1 << 30)
        );
        assert!(MemoryLimit::parse("1024").is_err());
        assert!(MemoryLimit::parse("0.5").is_err());
    }
}
