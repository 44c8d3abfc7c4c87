//! The parts of the user's cargo configuration that decide whether a target can link.
//!
//! Cargo reads `.cargo/config.toml` from the working directory up to `/`, then
//! `$CARGO_HOME`; nearer files win, and `CARGO_TARGET_<TRIPLE>_LINKER` beats them all.
//! kiln never edits these files: it overrides a setting for its own cargo invocation
//! only, and says so.

use crate::Target;
use std::path::{Path, PathBuf};

/// The linker settings cargo would use, read from the user's configuration.
#[derive(Debug, Clone, Default)]
pub struct CargoConfig {
    /// Parsed config files, nearest first, with their paths.
    files: Vec<(PathBuf, toml::Table)>,
}

/// A user linker setting kiln replaces for one target, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkerOverride {
    /// The linker the user configured.
    pub configured: String,
    /// Where it was configured (file path or environment variable).
    pub source: String,
    /// Why it can't be used for this target.
    pub reason: String,
}

impl CargoConfig {
    /// Reads every config file cargo would read when run in `cwd`.
    pub fn discover(cwd: &Path) -> Self {
        let mut paths: Vec<PathBuf> = cwd.ancestors().map(|d| d.join(".cargo")).collect();
        if let Some(home) = cargo_home() {
            if !paths.contains(&home) {
                paths.push(home);
            }
        }
        let files = paths
            .into_iter()
            .filter_map(|dir| {
                ["config.toml", "config"]
                    .iter()
                    .map(|f| dir.join(f))
                    .find(|p| p.is_file())
            })
            .filter_map(|p| {
                let table = std::fs::read_to_string(&p)
                    .ok()?
                    .parse::<toml::Table>()
                    .ok()?;
                Some((p, table))
            })
            .collect();
        Self { files }
    }

    /// The text of every config file, nearest first (re-serialized, so comments and
    /// formatting don't count).
    pub fn file_texts(&self) -> Vec<String> {
        self.files.iter().map(|(_, t)| t.to_string()).collect()
    }

    /// The linker configured for `target`, and where it came from.
    pub fn linker(&self, target: &Target) -> Option<(String, String)> {
        let var = format!("CARGO_TARGET_{}_LINKER", target.env_name());
        if let Ok(v) = std::env::var(&var) {
            return Some((v, var));
        }
        self.files.iter().find_map(|(path, table)| {
            let linker = table
                .get("target")?
                .get(&target.triple)?
                .get("linker")?
                .as_str()?;
            Some((linker.to_string(), path.display().to_string()))
        })
    }

    /// Whether `profile.<name>.<key>` is set in any config file or by
    /// `CARGO_PROFILE_<NAME>_<KEY>`.
    pub fn profile_sets(&self, profile: &str, key: &str) -> bool {
        let var = format!(
            "CARGO_PROFILE_{}_{}",
            profile.to_uppercase().replace('-', "_"),
            key.to_uppercase()
        );
        std::env::var_os(var).is_some()
            || self.files.iter().any(|(_, t)| {
                t.get("profile")
                    .and_then(|p| p.get(profile))
                    .and_then(|p| p.get(key))
                    .is_some()
            })
    }

    /// Whether the user's linker for `target` must be replaced, given that kiln would
    /// otherwise link with `replacement` on this `host_arch`.
    pub fn linker_override(&self, target: &Target, host_arch: &str) -> Option<LinkerOverride> {
        let (configured, source) = self.linker(target)?;
        let base = Path::new(&configured)
            .file_name()
            .map_or(configured.clone(), |f| f.to_string_lossy().into_owned());
        let host_tool = [
            "cc", "gcc", "clang", "c++", "g++", "clang++", "ld", "ld.lld", "lld", "musl-gcc",
        ]
        .iter()
        .any(|t| {
            base == *t
                || base.starts_with(&format!("{t}-"))
                    && base[t.len() + 1..].chars().all(|c| c.is_ascii_digit())
        });
        let cross = target.rust_arch() != host_arch;
        if host_tool && cross {
            return Some(LinkerOverride {
                configured,
                source,
                reason: format!(
                    "`{base}` links for the host ({host_arch}), not for {}",
                    target.triple
                ),
            });
        }
        None
    }
}

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> CargoConfig {
        CargoConfig {
            files: vec![(
                PathBuf::from("/w/.cargo/config.toml"),
                text.parse().unwrap(),
            )],
        }
    }

    #[test]
    fn host_linker_for_another_arch_is_overridden() {
        let c = config("[target.aarch64-unknown-linux-musl]\nlinker = \"clang\"\n");
        let arm = Target::parse("arm64").unwrap();
        let o = c.linker_override(&arm, "x86_64").unwrap();
        assert_eq!(o.configured, "clang");
        assert!(o.reason.contains("host"));
        assert!(c.linker_override(&arm, "aarch64").is_none());
    }

    #[test]
    fn a_cross_linker_is_respected() {
        let c =
            config("[target.aarch64-unknown-linux-musl]\nlinker = \"aarch64-linux-musl-gcc\"\n");
        assert!(c
            .linker_override(&Target::parse("arm64").unwrap(), "x86_64")
            .is_none());
    }
}
