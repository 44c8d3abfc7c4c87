//! What the cache stores per key.

use kiln_fingerprint::Inputs;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// One cached binary: where its bytes are and what produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The input key.
    pub key: String,
    /// Package that owns the binary.
    pub package: String,
    /// Binary name.
    pub binary: String,
    /// Target triple.
    pub target: String,
    /// Package version.
    pub version: String,
    /// SHA-256 of the binary (its blob's name).
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Cargo profile.
    pub profile: String,
    /// `rustc -V`.
    pub rustc: String,
    /// Backend that built it.
    pub backend: String,
    /// Overrides of the user's cargo config in effect, as data.
    #[serde(default)]
    pub overrides: Vec<kiln_schema::Override>,
    /// Unix time it was built.
    pub created: u64,
    /// The inputs hashed into `key`, to explain later misses.
    pub inputs: Inputs,
}

/// The result of a lookup.
#[derive(Debug)]
pub enum Lookup {
    /// Found and verified: the entry and its blob.
    Hit(Box<Entry>, PathBuf),
    /// Not cached.
    Miss,
    /// Was cached but damaged; it has been removed. The reason says how.
    Corrupt(String),
}

/// Inputs build scripts declared with `cargo:rerun-if-changed` / `rerun-if-env-changed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Learned {
    /// Files and directories, relative to the workspace root when inside it.
    pub files: BTreeSet<String>,
    /// Environment variable names.
    pub env: BTreeSet<String>,
}
