//! `kiln cache stats | gc | clear`.

use super::{build::human_size, load_workspace, open_cache};
use crate::args::{CacheAction, CacheArgs, Cli};
use crate::reporter::Reporter;
use kiln_diagnostics::{Error, Result};
use std::process::ExitCode;

pub(crate) fn cache(cli: &Cli, args: &CacheArgs, r: &Reporter) -> Result<ExitCode> {
    // Outside a workspace the cache is still reachable through KILN_CACHE_DIR or the default.
    let cache = match load_workspace(cli) {
        Ok(ws) => open_cache(&ws)?,
        Err(_) => kiln_cache::LocalCache::open(None)?,
    };
    match &args.action {
        CacheAction::Stats => {
            let s = cache.stats();
            if r.is_json() {
                println!("{}", serde_json::to_string(&s).expect("stats serialize"));
            } else {
                let lookups = s.recent_hits + s.recent_misses;
                let rate = if lookups == 0 {
                    "no builds yet".to_string()
                } else {
                    format!("{:.0}%", 100.0 * s.recent_hits as f64 / lookups as f64)
                };
                r.info("Cache", &s.root.display().to_string());
                r.info(
                    "Entries",
                    &format!("{} ({})", s.entries, human_size(s.bytes)),
                );
                r.info(
                    "Hit rate",
                    &format!(
                        "{rate} ({} hits, {} misses over the last {} builds)",
                        s.recent_hits,
                        s.recent_misses,
                        s.builds.min(50)
                    ),
                );
            }
        }
        CacheAction::Gc { max_size } => {
            let max = parse_size(max_size)?;
            let g = cache.gc(max)?;
            let native = kiln_native::clean_build_dirs(&cache.root().join("native"))?;
            r.status(
                "Collected",
                &format!(
                    "{} entries, {} freed, {} left",
                    g.entries_removed,
                    human_size(g.bytes_freed + native),
                    human_size(g.bytes_left)
                ),
            );
        }
        CacheAction::Clear => {
            cache.clear()?;
            r.status("Cleared", &cache.root().display().to_string());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses `500M`, `2GiB`, `1.5G`, `1024` (bytes).
fn parse_size(s: &str) -> Result<u64> {
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
        _ => {
            return Err(Error::usage(format!("invalid size `{s}`"))
                .hint("write sizes like `500M`, `2GiB` or `1048576`"))
        }
    };
    let n: f64 = num.parse().map_err(|_| {
        Error::usage(format!("invalid size `{s}`"))
            .hint("write sizes like `500M`, `2GiB` or `1048576`")
    })?;
    Ok((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(super::parse_size("500M").unwrap(), 500 << 20);
        assert_eq!(super::parse_size("10").unwrap(), 10);
        assert!(super::parse_size("lots").is_err());
    }
}
