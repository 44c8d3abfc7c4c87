//! The `--message-format json` event stream: every line kiln prints is one of these.

use crate::{ArtifactRecord, Change, Note, Override, Warning};
use serde::{Deserialize, Serialize};

/// One line of `--message-format json` output. Every command speaks only in these:
/// the JSON renderer prints them, the human renderer (kiln-cli) words them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Event {
    /// A cargo invocation is starting.
    BuildStarted {
        /// Targets this invocation builds.
        targets: Vec<String>,
        /// Packages it builds.
        packages: Vec<String>,
        /// The backend.
        backend: BackendKind,
        /// The package's version.
        #[serde(default)]
        version: String,
        /// The command, as a shell would run it (environment first).
        #[serde(default)]
        command: String,
        /// Crates cargo will compile at most (for progress).
        #[serde(default)]
        crates: usize,
    },
    /// A note: kiln acted on the user's behalf.
    Note(Note),
    /// A warning: something is wrong, the command goes on.
    Warning(Warning),
    /// A crate finished compiling.
    CrateCompiled {
        /// Crate name.
        name: String,
        /// Target triple, or `host` for build scripts and proc macros.
        target: String,
    },
    /// A cargo invocation finished.
    StepFinished {
        /// The package.
        package: String,
        /// Wall time in seconds.
        elapsed_secs: f64,
    },
    /// A binary was written to the artifact store.
    ArtifactWritten {
        /// Its record in `checksums.json`.
        artifact: Box<ArtifactRecord>,
        /// Whether this build compiled it (else it was restored).
        #[serde(default)]
        built: bool,
    },
    /// Binaries that were not compiled: restored from the cache, or fresh.
    Units {
        /// `fresh` or `restore`.
        state: UnitState,
        /// Each binary with its architectures.
        units: Vec<UnitGroup>,
    },
    /// sccache's hits and misses in this build.
    SccacheStats {
        /// Hits.
        hits: u64,
        /// Misses.
        misses: u64,
    },
    /// What the remote cache did during the build.
    RemoteUsed {
        /// The remote (no credentials).
        remote: String,
        /// Entries restored.
        hits: u64,
        /// Bytes downloaded.
        bytes_down: u64,
        /// Entries uploaded.
        uploaded: u64,
        /// Bytes uploaded.
        bytes_up: u64,
    },
    /// Memory and CPU of a build that ran cargo.
    BuildResources {
        /// Peak bytes of the whole process tree.
        peak_bytes: u64,
        /// The budget.
        budget_bytes: u64,
        /// Jobs at a time.
        jobs: u32,
        /// Times work was held back near the budget.
        throttled: usize,
        /// Cargo invocations retried after an OOM kill.
        retries: u32,
        /// CPU seconds.
        cpu_secs: f64,
    },
    /// `kiln image` starts: what it assembles, from where.
    ImageStarted {
        /// The image's name.
        name: String,
        /// `linux/amd64`, ...
        platforms: Vec<String>,
        /// The artifact store it reads.
        store: String,
        /// The base image pulled first, if not scratch.
        base: Option<String>,
    },
    /// `kiln image` wrote an image.
    ImageWritten {
        /// Index digest.
        digest: String,
        /// Platforms (`linux/amd64`) with their manifest digests.
        platforms: Vec<(String, String)>,
        /// Layers: digest, compressed size, what they hold.
        layers: Vec<(String, u64, String)>,
        /// Local outputs written (layout directory, archive).
        outputs: Vec<String>,
        /// References pushed.
        pushed: Vec<String>,
        /// Digests of the layers that came from kiln's layer cache.
        #[serde(default)]
        cached_layers: Vec<String>,
        /// Attachments: `(artifact type, platform, manifest digest)`.
        #[serde(default)]
        attached: Vec<(String, String, String)>,
        /// A push: blobs uploaded, their bytes, and blobs already there.
        #[serde(default)]
        uploaded: (usize, u64, usize),
        /// The tag of the cosign signature, when the image was signed.
        #[serde(default)]
        signed: Option<String>,
    },
    /// `kiln plan`: one binary's state on some architectures.
    PlanUnit {
        /// The binary.
        binary: String,
        /// Fresh, restore or rebuild.
        state: UnitState,
        /// Architectures in this state for the same reasons.
        arches: Vec<String>,
        /// Why it rebuilds: typed, never a value of the environment.
        because: Vec<Reason>,
    },
    /// `kiln plan`: one cargo invocation.
    PlanStep {
        /// The package built.
        package: String,
        /// Its binaries.
        bins: Vec<String>,
        /// Target triples.
        targets: Vec<String>,
        /// The backend.
        backend: BackendKind,
        /// Dependencies that compile C.
        c_deps: Vec<String>,
        /// Packages of the whole workspace that compile C (why `auto` chose zig).
        #[serde(default)]
        workspace_c_deps: Vec<String>,
        /// The command, as a shell would run it, with kiln's environment: exactly
        /// what `kiln build` runs.
        command: String,
        /// Settings of the user's cargo configuration kiln overrides.
        overrides: Vec<Override>,
        /// Native libraries kiln provides for it.
        native: Vec<NativeRecord>,
    },
    /// `kiln plan`: the memory budget and how many jobs it allows.
    PlanResources {
        /// The budget in bytes.
        budget_bytes: u64,
        /// Where the budget came from.
        budget_source: BudgetSource,
        /// Jobs at a time.
        jobs: u32,
        /// What limits the jobs.
        limited_by: JobLimit,
        /// Estimated bytes per job.
        per_job_bytes: u64,
        /// Where the estimate came from.
        estimate_source: EstimateSource,
    },
    /// `kiln setup`: native libraries the build will need.
    NativeNeeded {
        /// The libraries.
        native: Vec<NativeRecord>,
    },
    /// `kiln verify`: the result of re-hashing the store.
    VerifyFinished {
        /// Artifacts checked.
        checked: usize,
        /// Those that don't match their record.
        problems: Vec<VerifyProblem>,
        /// The store.
        #[serde(default)]
        store: String,
    },
    /// `kiln cache stats`.
    CacheStats(CacheStats),
    /// `kiln cache gc`.
    CacheCollected {
        /// Entries removed.
        entries_removed: usize,
        /// Bytes freed.
        bytes_freed: u64,
        /// Bytes left.
        bytes_left: u64,
    },
    /// `kiln cache clear`.
    CacheCleared {
        /// The cache root.
        root: String,
    },
    /// `kiln cache push` or `pull`.
    CacheSynced {
        /// Which way.
        direction: SyncDirection,
        /// Entries moved.
        moved: u64,
        /// Binaries of the plan.
        total: usize,
        /// Bytes moved.
        bytes: u64,
        /// The remote.
        remote: String,
        /// Binaries of the plan not cached (here for a push, anywhere for a pull).
        missing: usize,
    },
    /// `kiln cache keygen`: a key pair was made.
    KeyGenerated {
        /// The key's name.
        name: String,
        /// The public key, for `trusted-keys`.
        public_key: String,
        /// Where the secret key was written.
        secret_file: String,
    },
    /// `kiln affected --format json`: what a change touches.
    Affected {
        /// The commit compared against (empty with `--all`).
        merge_base: String,
        /// Changed files, relative to the workspace root.
        files: Vec<String>,
        /// Members whose inputs changed.
        changed_packages: Vec<String>,
        /// True when a change touches every binary (a lockfile, a toolchain file).
        everything: bool,
        /// Binary packages x targets to rebuild.
        affected: Vec<AffectedUnit>,
        /// Binary packages x targets considered.
        #[serde(default)]
        total: usize,
    },
    /// `kiln config`: the effective settings.
    Settings {
        /// Each setting, its value and where it came from.
        settings: Vec<SettingRecord>,
    },
    /// `kiln setup`: a prerequisite and its state.
    Tool {
        /// The tool.
        name: String,
        /// Found, missing or not needed.
        state: ToolState,
    },
    /// `kiln setup`: kiln installs something.
    Installing {
        /// What.
        what: String,
        /// How (the command, or the pip packages).
        how: String,
    },
    /// `kiln setup`: everything needed is installed.
    Ready,
    /// `kiln dockerfile` wrote its files.
    DockerfileWritten {
        /// The Dockerfile.
        dockerfile: String,
        /// Its `.dockerignore`.
        dockerignore: String,
        /// The rootfs directory it copies from, when it needs one.
        rootfs: Option<String>,
        /// The base image (`scratch`).
        base: String,
        /// The command that builds it.
        next: String,
    },
    /// `kiln ci github` wrote (or checked) the workflow.
    WorkflowWritten {
        /// The file.
        path: String,
        /// Written, or found up to date.
        state: WorkflowState,
    },
    /// `kiln report` wrote its page.
    ReportWritten {
        /// The page.
        path: String,
        /// Where the time went: `(what, wall seconds, CPU seconds, idle share)`.
        breakdown: Vec<(String, f64, Option<f64>, Option<f64>)>,
        /// The slowest crates: `(what, seconds)`.
        slowest: Vec<(String, f64)>,
    },
    /// The final event of `kiln build`: what happened overall.
    Finished {
        /// True when every requested artifact was produced.
        success: bool,
        /// Wall time in seconds.
        elapsed_secs: f64,
        /// How many artifacts were written.
        artifacts: usize,
        /// The error message, when `success` is false.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Binaries x targets: compiled, restored, fresh.
        #[serde(default)]
        counts: Counts,
        /// The artifact store.
        #[serde(default)]
        store: String,
        /// Whether the cache was used (hits are restored + fresh).
        #[serde(default)]
        cached: bool,
    },
}

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
        source: String,
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
        origin: String,
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
            JobLimit::CargoJobs { source } => f.write_str(source),
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
            BudgetSource::Setting { origin } => f.write_str(origin),
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

/// A native library kiln builds for a `-sys` crate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeRecord {
    /// The library (`openssl`).
    pub library: String,
    /// The `-sys` crate that links it.
    #[serde(rename = "crate")]
    pub krate: String,
    /// The target triple.
    pub target: String,
    /// Who pulls the crate in, from the binary's package.
    pub chain: Vec<String>,
    /// Whether it is built already (kiln builds it once otherwise).
    #[serde(default)]
    pub ready: bool,
}

/// An artifact whose file doesn't match `checksums.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyProblem {
    /// Path in the store.
    pub path: String,
    /// What is wrong.
    pub detail: String,
}

/// The local cache's size and recent hit rate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStats {
    /// Where it is.
    pub root: String,
    /// Cached binaries (entries).
    pub entries: usize,
    /// Bytes of blobs on disk.
    pub bytes: u64,
    /// Builds in the log.
    pub builds: usize,
    /// Cache hits over the last builds (at most 50).
    pub recent_hits: u64,
    /// Cache misses over the same builds.
    pub recent_misses: u64,
    /// Of the hits, those the remote cache supplied.
    pub recent_remote_hits: u64,
    /// Bytes downloaded from the remote over the same builds.
    pub recent_bytes_down: u64,
    /// Bytes uploaded to the remote over the same builds.
    pub recent_bytes_up: u64,
}

/// A binary package on a target that a change affects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffectedUnit {
    /// The package.
    pub package: String,
    /// Its binaries.
    pub bins: Vec<String>,
    /// The target triple.
    pub target: String,
    /// `linux/amd64`.
    pub platform: String,
    /// The changed packages (or files) that affect it.
    pub because: Vec<String>,
}

/// One effective setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingRecord {
    /// The key, as in `[workspace.metadata.kiln]` (dotted for sub-tables).
    pub key: String,
    /// The value, rendered (secrets show only `set`/`unset`).
    pub value: String,
    /// Where it came from: `default`, a config key, an environment variable, a flag.
    pub origin: String,
}

/// `kiln affected --format github-matrix`: a GitHub Actions `strategy.matrix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GithubMatrix {
    /// One job each.
    pub include: Vec<MatrixEntry>,
}

/// One job of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatrixEntry {
    /// A readable job name (`chronik-server linux/amd64`).
    pub name: String,
    /// The package, with one job per package and platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// Packages for `-p`, space-separated.
    pub packages: String,
    /// The `--target` value (`amd64`).
    pub target: String,
    /// `linux-amd64`, usable in artifact names.
    pub platform: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change() -> Change {
        Change {
            id: crate::InputId::File {
                path: crate::RelPath::new(std::path::Path::new(
                    "crates/chronik-storage/src/lib.rs",
                )),
            },
            old: Some(crate::InputValue::Digest {
                sha256: "aa".into(),
            }),
            new: Some(crate::InputValue::Digest {
                sha256: "bb".into(),
            }),
        }
    }

    /// One example of every warning; the match makes a new kind a compile error here
    /// until it has one (and so a documented kind).
    fn warnings() -> Vec<Warning> {
        let r = || "file:///mnt/kiln".to_string();
        let all = vec![
            Warning::CorruptCacheEntry {
                problem: crate::CacheProblem::BlobMissing {
                    binary: "chronik-server".into(),
                    target: "x86_64-unknown-linux-musl".into(),
                    blob: "ab".into(),
                },
            },
            Warning::SharedTargetDir {
                target_dir: "/t".into(),
                other: "/other".into(),
            },
            Warning::RetryingWithFewerJobs {
                package: "chronik-server".into(),
                jobs: 2,
                fewer: 1,
            },
            Warning::SccacheOff {
                why: "no free port".into(),
            },
            Warning::NativeUnusable {
                library: "OpenSSL".into(),
                target: "t".into(),
                error: "e".into(),
            },
            Warning::NativeNotCached {
                library: "OpenSSL".into(),
                target: "t".into(),
                error: "e".into(),
            },
            Warning::EditedDuringBuild {
                binary: "chronik-server".into(),
                changes: vec![change()],
            },
            Warning::NotCached {
                binary: "b".into(),
                target: "t".into(),
                error: "e".into(),
            },
            Warning::RemoteSkipped {
                remote: r(),
                why: "timed out".into(),
            },
            Warning::RemoteFailed {
                remote: r(),
                why: "timed out".into(),
            },
            Warning::RemoteOperationFailed {
                remote: r(),
                operation: "uploading".into(),
                error: "e".into(),
            },
            Warning::RemoteEntryRefused {
                remote: r(),
                binary: "b".into(),
                key: "0123".into(),
            },
            Warning::RemoteDigestMismatch {
                remote: r(),
                binary: "b".into(),
                target: "t".into(),
                digest: "ab".into(),
            },
            Warning::RemoteRecordUnreadable {
                remote: r(),
                id: "pkg-1".into(),
            },
            Warning::RemoteNamesDropped {
                remote: r(),
                id: "pkg-1".into(),
                names: vec!["file `/etc`".into()],
            },
            Warning::UnsignedEntries {
                remote: r(),
                entries: vec!["chronik-cli 0123".into()],
            },
            Warning::UnsignedRecords {
                remote: r(),
                ids: vec!["pkg-1".into()],
            },
            Warning::CredentialNames {
                remote: r(),
                names: vec!["REGISTRY_PASSWORD".into()],
            },
            Warning::UnvouchedEntries {
                remote: r(),
                entries: vec!["chronik-cli t".into()],
            },
            Warning::UnvouchedRecords {
                remote: r(),
                ids: vec!["pkg-1".into()],
            },
            Warning::MetricsNotWritten {
                error: "disk full".into(),
            },
            Warning::RemoteWithoutTrustedKeys,
            Warning::ActionVersionBumped {
                file: ".github/workflows/kiln.yml".into(),
                uses: "actions/checkout@v7".into(),
            },
            Warning::ToolMissing {
                tool: "zig".into(),
                install: "pip install ziglang".into(),
            },
            Warning::NoBrowser {
                page: "target/kiln/report.html".into(),
                error: "no xdg-open".into(),
            },
        ];
        for w in &all {
            match w {
                Warning::CorruptCacheEntry { .. }
                | Warning::SharedTargetDir { .. }
                | Warning::RetryingWithFewerJobs { .. }
                | Warning::SccacheOff { .. }
                | Warning::NativeUnusable { .. }
                | Warning::NativeNotCached { .. }
                | Warning::EditedDuringBuild { .. }
                | Warning::NotCached { .. }
                | Warning::RemoteSkipped { .. }
                | Warning::RemoteFailed { .. }
                | Warning::RemoteOperationFailed { .. }
                | Warning::RemoteEntryRefused { .. }
                | Warning::RemoteDigestMismatch { .. }
                | Warning::RemoteRecordUnreadable { .. }
                | Warning::RemoteNamesDropped { .. }
                | Warning::UnsignedEntries { .. }
                | Warning::UnsignedRecords { .. }
                | Warning::CredentialNames { .. }
                | Warning::UnvouchedEntries { .. }
                | Warning::UnvouchedRecords { .. }
                | Warning::MetricsNotWritten { .. }
                | Warning::RemoteWithoutTrustedKeys
                | Warning::ActionVersionBumped { .. }
                | Warning::ToolMissing { .. }
                | Warning::NoBrowser { .. } => {}
            }
        }
        all
    }

    /// One example of every note (as for warnings).
    fn notes() -> Vec<Note> {
        let all = vec![
            Note::MuslMalloc {
                binaries: vec!["chronik-server".into()],
            },
            Note::Override {
                change: Override {
                    target: Some("aarch64-unknown-linux-musl".into()),
                    setting: crate::Setting::Linker,
                    from: "clang".into(),
                    to: Some("zig".into()),
                    source: None,
                    reason: "zig links for the target".into(),
                },
            },
            Note::RustTargetInstalled {
                target: "aarch64-unknown-linux-musl".into(),
            },
            Note::ProvisioningNative {
                library: "OpenSSL".into(),
                target: "aarch64-unknown-linux-musl".into(),
                chain: vec!["app".into(), "openssl-sys".into()],
            },
            Note::NativeRestored {
                library: "OpenSSL".into(),
                target: "t".into(),
            },
            Note::NoAuditSection,
            Note::AlreadyCached {
                package: "p".into(),
                platform: "linux-amd64".into(),
                remote: "oci://r/c".into(),
            },
        ];
        for n in &all {
            match n {
                Note::MuslMalloc { .. }
                | Note::Override { .. }
                | Note::RustTargetInstalled { .. }
                | Note::ProvisioningNative { .. }
                | Note::NativeRestored { .. }
                | Note::NoAuditSection
                | Note::AlreadyCached { .. } => {}
            }
        }
        all
    }

    /// One example of every event. The match makes a new variant a compile error
    /// here until it has an example (and so a snapshot and a documented reason).
    fn examples() -> Vec<Event> {
        let native = NativeRecord {
            library: "openssl".into(),
            krate: "openssl-sys".into(),
            target: "x86_64-unknown-linux-musl".into(),
            chain: vec!["chronik-server".into(), "openssl-sys".into()],
            ready: false,
        };
        let mut all = vec![
            Event::BuildStarted {
                targets: vec!["x86_64-unknown-linux-musl".into()],
                packages: vec!["chronik-server".into()],
                backend: BackendKind::Zig,
                version: "0.3.1".into(),
                command: "cargo zigbuild --release".into(),
                crates: 12,
            },
            Event::CrateCompiled {
                name: "chronik-storage".into(),
                target: "host".into(),
            },
            Event::StepFinished {
                package: "chronik-server".into(),
                elapsed_secs: 2.5,
            },
            Event::ArtifactWritten {
                artifact: Box::new(crate::tests::record("linux/amd64/chronik-server")),
                built: true,
            },
            Event::Units {
                state: UnitState::Restore,
                units: vec![UnitGroup {
                    binary: "chronik-cli".into(),
                    arches: vec!["amd64".into()],
                }],
            },
            Event::SccacheStats { hits: 3, misses: 1 },
            Event::RemoteUsed {
                remote: "oci://ghcr.io/org/cache".into(),
                hits: 1,
                bytes_down: 10,
                uploaded: 0,
                bytes_up: 0,
            },
            Event::BuildResources {
                peak_bytes: 1 << 28,
                budget_bytes: 4 << 30,
                jobs: 2,
                throttled: 0,
                retries: 0,
                cpu_secs: 4.5,
            },
            Event::ImageStarted {
                name: "chronik".into(),
                platforms: vec!["linux/amd64".into()],
                store: "artifacts".into(),
                base: None,
            },
            Event::ImageWritten {
                digest: "sha256:00".into(),
                platforms: vec![("linux/amd64".into(), "sha256:01".into())],
                layers: vec![("sha256:02".into(), 10, "linux/amd64 binaries".into())],
                outputs: vec!["oci:target/kiln/image".into()],
                pushed: vec!["127.0.0.1:5000/chronik:v1".into()],
                cached_layers: vec!["sha256:02".into()],
                attached: vec![(
                    "application/spdx+json".into(),
                    "linux/amd64".into(),
                    "sha256:03".into(),
                )],
                uploaded: (3, 1000, 1),
                signed: Some("sha256-00.sig".into()),
            },
            Event::PlanUnit {
                binary: "chronik-server".into(),
                state: UnitState::Rebuild,
                arches: vec!["amd64".into()],
                because: vec![
                    Reason::Changed {
                        change: Box::new(change()),
                    },
                    Reason::NotBuiltBefore,
                ],
            },
            Event::PlanStep {
                package: "chronik-server".into(),
                bins: vec!["chronik-server".into()],
                targets: vec!["x86_64-unknown-linux-musl".into()],
                backend: BackendKind::Zig,
                c_deps: vec!["chronik-storage".into()],
                workspace_c_deps: vec!["chronik-storage".into()],
                command: "cargo zigbuild --release".into(),
                overrides: vec![],
                native: vec![native.clone()],
            },
            Event::PlanResources {
                budget_bytes: 4 << 30,
                budget_source: BudgetSource::Setting {
                    origin: "--max-memory".into(),
                },
                jobs: 2,
                limited_by: JobLimit::Cores { cores: 2 },
                per_job_bytes: 768 << 20,
                estimate_source: EstimateSource::Default,
            },
            Event::NativeNeeded {
                native: vec![native],
            },
            Event::VerifyFinished {
                checked: 2,
                problems: vec![VerifyProblem {
                    path: "linux/arm64/chronik-cli".into(),
                    detail: "sha256 mismatch".into(),
                }],
                store: "artifacts".into(),
            },
            Event::CacheStats(CacheStats {
                root: "/cache/v1".into(),
                entries: 4,
                ..CacheStats::default()
            }),
            Event::CacheCollected {
                entries_removed: 2,
                bytes_freed: 100,
                bytes_left: 1000,
            },
            Event::CacheCleared {
                root: "/cache/v1".into(),
            },
            Event::CacheSynced {
                direction: SyncDirection::Push,
                moved: 4,
                total: 4,
                bytes: 1 << 20,
                remote: "s3://bucket/prefix".into(),
                missing: 0,
            },
            Event::KeyGenerated {
                name: "team-1".into(),
                public_key: "team-1:AAAA".into(),
                secret_file: "team-1.secret".into(),
            },
            Event::Affected {
                merge_base: "0123456789ab".into(),
                files: vec!["crates/chronik-storage/src/lib.rs".into()],
                changed_packages: vec!["chronik-storage".into()],
                everything: false,
                affected: vec![AffectedUnit {
                    package: "chronik-server".into(),
                    bins: vec!["chronik-server".into()],
                    target: "aarch64-unknown-linux-musl".into(),
                    platform: "linux-arm64".into(),
                    because: vec!["chronik-storage".into()],
                }],
                total: 4,
            },
            Event::Settings {
                settings: vec![SettingRecord {
                    key: "cache.upload".into(),
                    value: "never".into(),
                    origin: "KILN_CACHE_UPLOAD".into(),
                }],
            },
            Event::Tool {
                name: "zig".into(),
                state: ToolState::Found {
                    version: "0.17.1".into(),
                },
            },
            Event::Installing {
                what: "zig".into(),
                how: "pip install ziglang".into(),
            },
            Event::Ready,
            Event::DockerfileWritten {
                dockerfile: "Dockerfile".into(),
                dockerignore: ".dockerignore".into(),
                rootfs: None,
                base: "scratch".into(),
                next: "docker buildx build .".into(),
            },
            Event::WorkflowWritten {
                path: ".github/workflows/kiln.yml".into(),
                state: WorkflowState::Written,
            },
            Event::ReportWritten {
                path: "target/kiln/report.html".into(),
                breakdown: vec![("cargo".into(), 10.0, Some(18.0), Some(0.1))],
                slowest: vec![("chronik-server (x86_64-unknown-linux-musl)".into(), 4.0)],
            },
            Event::Finished {
                success: true,
                elapsed_secs: 0.5,
                artifacts: 4,
                error: None,
                counts: Counts {
                    built: 1,
                    restored: 2,
                    fresh: 1,
                },
                store: "artifacts".into(),
                cached: true,
            },
        ];
        all.extend(notes().into_iter().map(Event::Note));
        all.extend(warnings().into_iter().map(Event::Warning));
        for e in &all {
            match e {
                Event::BuildStarted { .. }
                | Event::Note(_)
                | Event::Warning(_)
                | Event::CrateCompiled { .. }
                | Event::StepFinished { .. }
                | Event::ArtifactWritten { .. }
                | Event::Units { .. }
                | Event::SccacheStats { .. }
                | Event::RemoteUsed { .. }
                | Event::BuildResources { .. }
                | Event::ImageStarted { .. }
                | Event::ImageWritten { .. }
                | Event::PlanUnit { .. }
                | Event::PlanStep { .. }
                | Event::PlanResources { .. }
                | Event::NativeNeeded { .. }
                | Event::VerifyFinished { .. }
                | Event::CacheStats(_)
                | Event::CacheCollected { .. }
                | Event::CacheCleared { .. }
                | Event::CacheSynced { .. }
                | Event::KeyGenerated { .. }
                | Event::Affected { .. }
                | Event::Settings { .. }
                | Event::Tool { .. }
                | Event::Installing { .. }
                | Event::Ready
                | Event::DockerfileWritten { .. }
                | Event::WorkflowWritten { .. }
                | Event::ReportWritten { .. }
                | Event::Finished { .. } => {}
            }
        }
        all
    }

    #[test]
    fn every_event_is_documented_stable_and_round_trips() {
        let doc = include_str!("../../../docs/message-format.md");
        let mut lines = String::new();
        for e in examples() {
            let json = serde_json::to_string(&e).unwrap();
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            let reason = v["reason"].as_str().unwrap();
            assert!(
                doc.contains(&format!("| `{reason}` |")),
                "docs/message-format.md lacks `{reason}`"
            );
            // Notes and warnings: each kind in its table.
            if let Some(kind) = v["kind"].as_str() {
                assert!(
                    doc.contains(&format!("| `{reason}` | `{kind}` |")),
                    "docs/message-format.md lacks the {reason} kind `{kind}`"
                );
            }
            assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
            lines.push_str(&json);
            lines.push('\n');
        }
        insta::assert_snapshot!(lines);
    }
}
