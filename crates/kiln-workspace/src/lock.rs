//! `Cargo.lock`, parsed once for everything that reads it (cache keys, `kiln affected`).

use std::collections::HashMap;
use std::path::Path;

/// One `[[package]]` of `Cargo.lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEntry {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// `source`, empty for path packages.
    pub source: String,
    /// `checksum`, empty when there is none.
    pub checksum: String,
    /// `dependencies`, as written.
    pub dependencies: Vec<String>,
}

/// The packages of a `Cargo.lock` text; an unreadable text has none.
pub fn parse_lock(text: &str) -> Vec<LockEntry> {
    let table = text.parse::<toml::Table>().unwrap_or_default();
    let s = |p: &toml::Value, k: &str| {
        p.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    table
        .get("package")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
        .map(|p| LockEntry {
            name: s(p, "name"),
            version: s(p, "version"),
            source: s(p, "source"),
            checksum: s(p, "checksum"),
            dependencies: p
                .get("dependencies")
                .and_then(|d| d.as_array())
                .into_iter()
                .flatten()
                .filter_map(|d| d.as_str().map(String::from))
                .collect(),
        })
        .collect()
}

/// `(name, version)` -> `(source, checksum)` of the `Cargo.lock` at `path`.
pub fn lock_entries(path: &Path) -> HashMap<(String, String), (String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    parse_lock(&text)
        .into_iter()
        .map(|e| ((e.name, e.version), (e.source, e.checksum)))
        .collect()
}
