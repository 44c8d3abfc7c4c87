//! The formats other programs read: `checksums.json` and the JSON event stream.
//!
//! They live in one crate so that the writer and every reader (tests, CI scripts,
//! `kiln verify`) share one definition. `docs/checksums-json.md` and
//! `docs/message-format.md` document them; bump [`CHECKSUMS_SCHEMA_VERSION`] on any
//! incompatible change.

mod events;
mod inputs;
mod kinds;
mod notices;
mod overrides;
mod path;

pub use events::*;
pub use inputs::{Change, InputId, InputValue};
pub use kinds::*;
pub use notices::{CacheProblem, Note, Warning};
pub use overrides::{ConfigSource, Override, Setting};
pub use path::RelPath;

use serde::{Deserialize, Serialize};

/// Version of the `checksums.json` layout.
pub const CHECKSUMS_SCHEMA_VERSION: u32 = 2;

/// The whole `artifacts/checksums.json` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checksums {
    /// Layout version; see [`CHECKSUMS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Every artifact in the store, sorted by `path`.
    pub artifacts: Vec<ArtifactRecord>,
}

impl Default for Checksums {
    fn default() -> Self {
        Self {
            schema_version: CHECKSUMS_SCHEMA_VERSION,
            artifacts: Vec::new(),
        }
    }
}

impl Checksums {
    /// Inserts or replaces the record with the same `path`, keeping the order stable.
    pub fn upsert(&mut self, record: ArtifactRecord) {
        self.artifacts.retain(|a| a.path != record.path);
        self.artifacts.push(record);
        self.artifacts.sort_by(|a, b| a.path.cmp(&b.path));
    }
}

/// One binary in the artifact store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactRecord {
    /// Path relative to the store root, with `/` separators: `linux/amd64/chronik-server`.
    pub path: String,
    /// Operating system (`linux`).
    pub os: String,
    /// Architecture in OCI/Docker spelling (`amd64`, `arm64`).
    pub arch: String,
    /// The Rust target triple it was built for, with the glibc version of a pinned
    /// glibc target (`x86_64-unknown-linux-gnu.2.28`).
    pub target: String,
    /// The Cargo package that owns the binary.
    pub package: String,
    /// The binary's name.
    pub binary: String,
    /// The package version, without a leading `v`.
    pub version: String,
    /// Hex SHA-256 of the binary.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// The Cargo profile it was built with.
    pub profile: String,
    /// Source revision it was built from.
    pub git: GitInfo,
    /// `rustc -V` of the compiler that built it.
    pub rustc: String,
    /// The toolchain backend used (`cargo`, `zig`, `cross`).
    pub backend: BackendKind,
    /// Settings of the user's cargo configuration that kiln overrode for this build.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<Override>,
    /// The SBOMs beside the binary (`<bin>.spdx.json`, `<bin>.cdx.json`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sboms: Vec<SbomRecord>,
    /// Whether the binary carries its dependency list (cargo-auditable's `.dep-v0`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auditable: bool,
    /// The cache key it was built or restored under (a digest of its inputs, no
    /// paths), for provenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The allocator kiln linked in place of the libc's `malloc` (`mimalloc 2.3.2`);
    /// absent for the libc's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocator: Option<String>,
    /// C libraries linked in that no crate brings: what kiln provisioned (OpenSSL,
    /// with its exact `openssl-src`), the allocator, the target's static libc.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub linked: Vec<LinkedRecord>,
}

/// A C library linked into an artifact (also listed in its SBOMs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkedRecord {
    /// `OpenSSL`, `mimalloc`, `musl`.
    pub name: String,
    /// The release linked (`3.6.3`).
    pub version: String,
    /// Where kiln got it (`openssl-src 300.6.1+3.6.3`), when it built it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Its license (SPDX).
    pub license: String,
}

/// An SBOM file of an artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SbomRecord {
    /// Path relative to the store root: `linux/amd64/chronik-server.spdx.json`.
    pub path: String,
    /// `spdx-2.3` or `cyclonedx-1.5`.
    pub format: String,
    /// Hex SHA-256 of the file.
    pub sha256: String,
}

/// The git state of the workspace at build time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitInfo {
    /// Full commit hash, or `None` outside a git checkout.
    pub commit: Option<String>,
    /// True when tracked files had uncommitted changes.
    pub dirty: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn record(path: &str) -> ArtifactRecord {
        ArtifactRecord {
            path: path.into(),
            os: "linux".into(),
            arch: "amd64".into(),
            target: "x86_64-unknown-linux-musl".into(),
            package: "p".into(),
            binary: "b".into(),
            version: "1.0.0".into(),
            sha256: "00".into(),
            size: 1,
            profile: "release".into(),
            git: GitInfo::default(),
            rustc: "rustc 1".into(),
            backend: BackendKind::Cargo,
            overrides: vec![],
            sboms: vec![],
            auditable: false,
            key: None,
            allocator: None,
            linked: vec![LinkedRecord {
                name: "musl".into(),
                version: "1.2.5".into(),
                source: None,
                license: "MIT".into(),
            }],
        }
    }

    #[test]
    fn upsert_replaces_and_sorts() {
        let mut c = Checksums::default();
        c.upsert(record("linux/b"));
        c.upsert(record("linux/a"));
        let mut newer = record("linux/b");
        newer.size = 2;
        c.upsert(newer);
        let paths: Vec<_> = c
            .artifacts
            .iter()
            .map(|a| (a.path.as_str(), a.size))
            .collect();
        assert_eq!(paths, [("linux/a", 1), ("linux/b", 2)]);
    }

    #[test]
    fn events_are_tagged_by_reason() {
        let e = Event::Note(Note::RustTargetInstalled { target: "t".into() });
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"reason":"note","kind":"rust-target-installed","target":"t"}"#
        );
    }
}
