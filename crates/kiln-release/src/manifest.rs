//! `release.json`: what a release folder holds (documented in docs/release.md).

use kiln_diagnostics::{Error, Result};
use serde::{Deserialize, Serialize};

/// The layout version of `release.json`; bumped on any incompatible change.
pub const RELEASE_SCHEMA_VERSION: u32 = 1;

/// The manifest of a release folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseManifest {
    /// [`RELEASE_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The version the release carries (the packages' shared version).
    pub version: String,
    /// The release's tag (`v1.2.3`).
    pub tag: String,
    /// The mtime of every archive entry: the commit's time or `SOURCE_DATE_EPOCH`.
    pub source_date_epoch: u64,
    /// Where `install.sh` downloads from by default; absent when the workspace names
    /// no GitHub repository (the installer then needs `--base-url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// One entry per binary x target.
    pub artifacts: Vec<ArtifactEntry>,
    /// The image pushed for this release, by digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageEntry>,
    /// Every file of the folder but `release.json` and `SHA256SUMS`, in write order.
    pub files: Vec<FileEntry>,
}

/// A binary x target in the release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactEntry {
    /// The binary's name.
    pub binary: String,
    /// The package that builds it.
    pub package: String,
    /// The package's version.
    pub version: String,
    /// The target as built (`x86_64-unknown-linux-musl`, `x86_64-unknown-linux-gnu.2.28`).
    pub target: String,
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`.
    pub arch: String,
    /// The archive holding it.
    pub archive: String,
    /// The binary's own SHA-256 (as in the artifact store's `checksums.json`).
    pub binary_sha256: String,
    /// The SBOM files inside the archive.
    pub sboms: Vec<String>,
}

/// A file of the release folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Its name in the folder.
    pub name: String,
    /// `archive`, `installer`, `manifest`, `checksums`.
    pub kind: String,
    /// Hex SHA-256.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// An image reference pinned by digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageEntry {
    /// `registry/repository`.
    pub repository: String,
    /// `sha256:<hex>`.
    pub digest: String,
}

impl ImageEntry {
    /// Parses `registry/repository@sha256:<hex>`; a tag alone is refused, since a
    /// release records exactly what was pushed.
    pub fn parse(reference: &str) -> Result<Self> {
        let bad = || {
            Error::usage(format!(
                "`{}` is not an image reference pinned by digest",
                reference.escape_debug()
            ))
            .hint("pass `--image registry/repository@sha256:<digest>` (what `kiln image --push` printed)")
        };
        let (repo, digest) = reference.split_once('@').ok_or_else(bad)?;
        let hex = digest.strip_prefix("sha256:").ok_or_else(bad)?;
        let repo_ok = !repo.is_empty()
            && repo
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c));
        if !repo_ok || !kiln_fs::is_sha256_hex(hex) {
            return Err(bad());
        }
        Ok(Self {
            repository: repo.to_string(),
            digest: digest.to_string(),
        })
    }
}
