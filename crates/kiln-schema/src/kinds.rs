//! The small typed values events carry: states, reasons, limits, sources, kinds.

use crate::Change;
use serde::{Deserialize, Serialize};

/// How many units ended in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Compiled.
    pub built: usize,
    /// Restored from the cache.
    pub restored: usize,
    /// Already in the store.
    pub fresh: usize,
}

/// What happens to a binary for a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnitState {
    /// The store already holds exactly the cached binary.
    Fresh,
    /// The cache has it: copied into the store.
    Restore,
    /// Not cached: cargo builds it.
    Rebuild,
}

/// A binary with the architectures it has in one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitGroup {
    /// The binary.
    pub binary: String,
    /// `amd64`, `arm64`.
    pub arches: Vec<String>,
}

/// Why a binary rebuilds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reason {
    /// No build of it is cached.
    NotBuiltBefore,
    /// `--no-cache`.
    CacheOff,
    /// Its entry was damaged and removed.
    CorruptEntry,
    /// Its entry came from a remote and no trusted key signed it.
    UntrustedEntry,
    /// Its inputs are those of a cached build that was evicted since.
    Evicted,
    /// An input differs from the newest cached build's.
    Changed {
        /// Which, and how.
        change: Box<Change>,
    },
}

/// What limits a build's parallel jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "kebab-case")]
pub enum JobLimit {
    /// The machine's cores.
    Cores {
        /// How many.
        cores: u32,
    },
    /// `-j`.
    JobsFlag,
    /// cargo's own `build.jobs` (or `CARGO_BUILD_JOBS`), lower than the cores.
    CargoJobs {
        /// Where it is set.
        source: crate::ConfigSource,
    },
    /// The memory budget.
    MemoryBudget,
}

/// Where a job's memory estimate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EstimateSource {
    /// The worst job of the last build in this target dir.
    Measured,
    /// kiln's conservative default.
    Default,
}

/// Where the memory budget comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub enum BudgetSource {
    /// A setting: `--max-memory` or `max-memory` (its origin).
    Setting {
        /// Where it was set.
        origin: SettingOrigin,
    },
    /// The cgroup's memory limit.
    Cgroup,
    /// Three quarters of available memory.
    Available,
    /// Three quarters of physical memory (macOS).
    Physical,
    /// 4 GiB: the machine's memory is unknown.
    Fallback,
}

impl std::fmt::Display for JobLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobLimit::Cores { cores } => write!(f, "{cores} cores"),
            JobLimit::JobsFlag => f.write_str("-j"),
            JobLimit::CargoJobs {
                source: source @ crate::ConfigSource::Env { .. },
            } => write!(f, "{source}"),
            JobLimit::CargoJobs { source } => write!(f, "build.jobs in {source}"),
            JobLimit::MemoryBudget => f.write_str("the memory budget"),
        }
    }
}

impl std::fmt::Display for EstimateSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EstimateSource::Measured => "measured in the last build",
            EstimateSource::Default => "default estimate",
        })
    }
}

impl std::fmt::Display for BudgetSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BudgetSource::Setting { origin } => write!(f, "{origin}"),
            BudgetSource::Cgroup => f.write_str("the cgroup memory limit"),
            BudgetSource::Available => f.write_str("75% of available memory"),
            BudgetSource::Physical => f.write_str("75% of physical memory"),
            BudgetSource::Fallback => f.write_str("a 4 GiB default (memory size unknown)"),
        }
    }
}

/// A toolchain backend, as events and records name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// `cargo build`, linking with rust-lld.
    Cargo,
    /// `cargo zigbuild`.
    Zig,
    /// `cross build`.
    Cross,
}

impl BackendKind {
    /// `cargo`, `zig`, `cross`.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cargo => "cargo",
            BackendKind::Zig => "zig",
            BackendKind::Cross => "cross",
        }
    }
}

/// Which way `kiln cache` moved entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncDirection {
    /// Local to remote.
    Push,
    /// Remote to local.
    Pull,
}

/// What `kiln ci github` found or did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum WorkflowState {
    /// Written.
    Written,
    /// `--check`: up to date.
    Fresh,
    /// `--check`: up to date but for action versions (a Dependabot bump).
    FreshButActions,
}

/// A prerequisite's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum ToolState {
    /// Installed.
    Found {
        /// Its version line.
        version: String,
    },
    /// Needed and missing (a warning says how to install it).
    Missing,
    /// Not installed, and this workspace doesn't need it.
    NotNeeded,
}

/// What `kiln verify` found wrong with an artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Mismatch {
    /// The binary isn't there.
    Missing,
    /// Its bytes differ from the record.
    Digest {
        /// SHA-256 of the file.
        actual: String,
        /// Its size.
        size: u64,
        /// SHA-256 recorded.
        recorded: String,
        /// Size recorded.
        recorded_size: u64,
    },
    /// `<bin>.sha256` disagrees with the record.
    Sidecar {
        /// The sidecar's name.
        file: String,
    },
    /// `<bin>.version` disagrees with the record.
    VersionFile {
        /// The sidecar's name.
        file: String,
        /// The version recorded.
        version: String,
    },
    /// A recorded SBOM is missing.
    SbomMissing {
        /// Its path in the store.
        file: String,
    },
    /// A recorded SBOM's bytes changed.
    SbomChanged {
        /// Its path in the store.
        file: String,
    },
    /// A recorded SBOM describes a binary with other bytes.
    SbomOfAnotherBinary {
        /// Its path in the store.
        file: String,
    },
    /// The embedded dependency list is missing or names another package.
    AuditSection,
    /// Not a 64-bit ELF binary.
    NotElf,
    /// An ELF binary for another machine.
    Machine {
        /// The ELF machine found.
        actual: String,
        /// The architecture recorded.
        expected: String,
    },
    /// Dynamically linked although built for musl.
    NotStatic,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Missing => f.write_str("missing"),
            Mismatch::Digest {
                actual,
                size,
                recorded,
                recorded_size,
            } => write!(
                f,
                "sha256 {actual} ({size} bytes) does not match recorded {recorded} ({recorded_size} bytes)"
            ),
            Mismatch::Sidecar { file } => write!(f, "{file} does not match checksums.json"),
            Mismatch::VersionFile { file, version } => {
                write!(f, "{file} does not say v{version}")
            }
            Mismatch::SbomMissing { file } => write!(f, "{file} is missing"),
            Mismatch::SbomChanged { file } => write!(f, "{file} does not match checksums.json"),
            Mismatch::SbomOfAnotherBinary { file } => write!(f, "{file} describes another binary"),
            Mismatch::AuditSection => {
                f.write_str("its dependency list (.dep-v0) is missing or names another package")
            }
            Mismatch::NotElf => f.write_str("not a 64-bit ELF binary"),
            Mismatch::Machine { actual, expected } => {
                write!(f, "ELF machine is {actual}, expected {expected}")
            }
            Mismatch::NotStatic => f.write_str("dynamically linked, expected a static musl binary"),
        }
    }
}

/// Where a setting's value came from, as `kiln config` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub enum SettingOrigin {
    /// kiln's default.
    Default,
    /// A key of `[workspace.metadata.kiln]`, dotted.
    Config {
        /// The key.
        key: String,
    },
    /// An environment variable.
    Env {
        /// Its name.
        name: String,
    },
    /// A command-line flag.
    Flag {
        /// The flag.
        flag: String,
    },
}

impl std::fmt::Display for SettingOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingOrigin::Default => f.write_str("default"),
            SettingOrigin::Config { key } => write!(f, "`{key}` in [workspace.metadata.kiln]"),
            SettingOrigin::Env { name } => f.write_str(name),
            SettingOrigin::Flag { flag } => f.write_str(flag),
        }
    }
}

/// What an image layer holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "kebab-case")]
pub enum LayerRole {
    /// A layer of the base image, numbered from 1 at the bottom.
    Base {
        /// Its number.
        n: usize,
    },
    /// kiln's own files: users, groups, CA certificates, `/tmp`, volumes.
    System,
    /// The binaries of one architecture.
    Binaries {
        /// `amd64`, `arm64`.
        arch: String,
    },
}

impl std::fmt::Display for LayerRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayerRole::Base { n } => write!(f, "base layer {n}"),
            LayerRole::System => f.write_str("users, /tmp, volumes"),
            LayerRole::Binaries { arch } => write!(f, "linux/{arch} binaries"),
        }
    }
}
