//! The inputs every binary of the workspace shares, defined once: cache keys hash
//! them and `kiln affected` asks the same definitions whether a change to one of
//! these files touches every binary.
//!
//! - the root manifest's `[profile]`, `[patch]`, `[replace]` and `[workspace.package]`;
//! - what in each cargo config file can change a build: `[build]` (but `jobs`,
//!   `target-dir` and `build-dir`, which change where and how fast, not what),
//!   `[target]`, `[profile]`, `[env]`, `[unstable]` and `[patch]`; aliases, network,
//!   registry credentials and terminal settings are not inputs;
//! - the toolchain file rustup uses (found by [`kiln_toolchain::toolchain_file`]).

use crate::canonical::encode;
use crate::inputs::InputValue;
use kiln_toolchain::CargoConfig;
use std::path::Path;

/// Root manifest sections that change every binary.
const ROOT_SECTIONS: &[&[&str]] = &[
    &["profile"],
    &["patch"],
    &["replace"],
    &["workspace", "package"],
];

/// Cargo config tables that can change what a build produces.
const CONFIG_TABLES: &[&str] = &["build", "target", "profile", "env", "unstable", "patch"];

/// `[build]` keys that don't change what is built.
const BUILD_KEYS_IGNORED: &[&str] = &["jobs", "target-dir", "build-dir"];

/// A file whose change can touch every binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedFile {
    /// The root `Cargo.toml`.
    RootManifest,
    /// `.cargo/config.toml` (or `.cargo/config`) at the workspace root.
    CargoConfig,
    /// `rust-toolchain.toml` or `rust-toolchain` at the workspace root.
    ToolchainFile,
}

impl SharedFile {
    /// Which shared file `rel` (relative to the workspace root) is, if any.
    pub fn of(rel: &Path) -> Option<Self> {
        if rel == Path::new("Cargo.toml") {
            Some(SharedFile::RootManifest)
        } else if rel == Path::new(".cargo/config.toml") || rel == Path::new(".cargo/config") {
            Some(SharedFile::CargoConfig)
        } else if kiln_toolchain::is_toolchain_file(rel) {
            Some(SharedFile::ToolchainFile)
        } else {
            None
        }
    }

    /// Whether going from `old` to `new` text changes every binary's key.
    pub fn changes_every_binary(self, old: &str, new: &str) -> bool {
        let parse = |t: &str| t.parse::<toml::Table>().ok();
        match self {
            SharedFile::ToolchainFile => old != new,
            SharedFile::RootManifest => match (parse(old), parse(new)) {
                (Some(a), Some(b)) => root_manifest(&a) != root_manifest(&b),
                _ => old != new,
            },
            SharedFile::CargoConfig => match (parse(old), parse(new)) {
                (Some(a), Some(b)) => config_digest(&a) != config_digest(&b),
                _ => old != new,
            },
        }
    }
}

/// The root manifest's shared sections, as a key value.
pub fn root_manifest(table: &toml::Table) -> InputValue {
    let parts: Vec<(String, Option<&toml::Value>)> = ROOT_SECTIONS
        .iter()
        .map(|path| (path.join("."), lookup(table, path)))
        .collect();
    crate::digest(&encode(&parts))
}

/// Every cargo config file by level, nearest first, as a key value.
pub fn cargo_config(config: &CargoConfig) -> InputValue {
    InputValue::Configs {
        files: config
            .files()
            .map(|(level, table)| (level.clone(), config_digest(table)))
            .collect(),
    }
}

/// Digest of what in one config file can change a build.
pub fn config_digest(table: &toml::Table) -> String {
    let mut relevant = toml::Table::new();
    for name in CONFIG_TABLES {
        if let Some(v) = table.get(*name) {
            let mut v = v.clone();
            if *name == "build" {
                if let Some(t) = v.as_table_mut() {
                    BUILD_KEYS_IGNORED.iter().for_each(|k| {
                        t.remove(*k);
                    });
                }
            }
            relevant.insert((*name).to_string(), v);
        }
    }
    kiln_fs::sha256_hex(&encode(&relevant))
}

/// The toolchain file rustup would read in `root`, as a key value.
pub fn toolchain_file(root: &Path) -> Option<InputValue> {
    let path = kiln_toolchain::toolchain_file(root)?;
    let bytes = std::fs::read(path).ok()?;
    Some(crate::digest(&bytes))
}

fn lookup<'a>(table: &'a toml::Table, path: &[&str]) -> Option<&'a toml::Value> {
    let (first, rest) = path.split_first()?;
    rest.iter().try_fold(table.get(*first)?, |v, p| v.get(*p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_build_relevant_config_changes_touch_everything() {
        let f = SharedFile::of(Path::new(".cargo/config.toml")).unwrap();
        let base = "[build]\njobs = 8\n[target.x]\nlinker = \"clang\"\n";
        assert!(!f.changes_every_binary(base, &format!("{base}[alias]\nb = \"build\"\n")));
        assert!(!f.changes_every_binary(base, &base.replace("jobs = 8", "jobs = 2")));
        assert!(f.changes_every_binary(base, &base.replace("clang", "gcc")));
        assert_eq!(SharedFile::of(Path::new(".cargo/audit.toml")), None);
    }

    #[test]
    fn root_manifest_sections_are_the_shared_ones() {
        let f = SharedFile::RootManifest;
        let base = "[workspace]\nmembers = [\"a\"]\n[profile.release]\nlto = false\n";
        assert!(!f.changes_every_binary(base, &base.replace("\"a\"", "\"a\", \"b\"")));
        assert!(f.changes_every_binary(base, &base.replace("false", "true")));
    }
}
