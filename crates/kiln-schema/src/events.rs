//! The `--message-format json` event stream: every line kiln prints is one of these.

use crate::{
    ArtifactRecord, BackendKind, BudgetSource, Counts, EstimateSource, JobLimit, LayerRole,
    Mismatch, Note, Override, Reason, SettingOrigin, SyncDirection, ToolState, UnitGroup,
    UnitState, Warning, WorkflowState,
};
use serde::{Deserialize, Serialize};

/// One line of `--message-format json` output. Every command speaks only in these:
/// the JSON renderer prints them, the human renderer (kiln-commands) words them.
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
    /// sccache's hits and misses in this build, and where the compiles ran.
    SccacheStats {
        /// Hits.
        hits: u64,
        /// Misses.
        misses: u64,
        /// Compiles that ran on a distributed build server.
        #[serde(default)]
        remote: u64,
        /// Compiles sent to a build server that failed there and ran here instead.
        #[serde(default)]
        fell_back: u64,
        /// Compiles that ran here by rule (bin crates and their link, what sccache
        /// can't cache or distribute, everything when nothing is distributed).
        #[serde(default)]
        local: u64,
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
        layers: Vec<(String, u64, LayerRole)>,
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
    /// `kiln release`: the release folder written (or, for `--dry-run`, what it would hold).
    ReleaseWritten {
        /// The folder.
        out: String,
        /// Nothing was written.
        dry_run: bool,
        /// The release's version and tag.
        version: String,
        /// `v1.2.3`.
        tag: String,
        /// Every file of the folder, by name, with its size and SHA-256.
        files: Vec<ReleaseFile>,
        /// `[package.metadata.binstall]` blocks matching the archive names, by package.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        binstall: Vec<BinstallBlock>,
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
        /// Whether the container image changes (a binary or its settings did), before
        /// `--skip-cached` drops what another run cached.
        #[serde(default)]
        image: bool,
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
    /// `kiln plan`, `kiln setup`: a host program a package's build scripts run.
    HostTool {
        /// The workspace package whose build needs it.
        package: String,
        /// The tool (`protoc`).
        tool: String,
        /// The crates whose build scripts run it (`chronik-proto (via prost-build)`).
        by: Vec<String>,
        /// Found (with its version), or missing.
        state: ToolState,
        /// Whether the build can't go without it.
        required: bool,
        /// How to get it, when it is missing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fix: Option<String>,
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
    /// `kiln init`: the settings block and the ignore entries written.
    Initialized {
        /// The manifest written to.
        manifest: String,
        /// The table written (`[workspace.metadata.kiln]` or `[package.metadata.kiln]`).
        table: String,
        /// The binaries the image packages.
        binaries: Vec<String>,
        /// Lines added to `.gitignore` (none when it had them).
        gitignore: Vec<String>,
    },
    /// `kiln man`: the pages written.
    ManWritten {
        /// The directory.
        dir: String,
        /// File names, `kiln.1` first.
        pages: Vec<String>,
    },
    /// `kiln report` wrote its page.
    ReportWritten {
        /// The page.
        path: String,
        /// When the build reported on started (unix seconds).
        started: u64,
        /// Binaries it compiled.
        compiled: usize,
        /// Later builds passed over because they compiled nothing.
        skipped: usize,
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
    pub detail: Mismatch,
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
    /// Where it came from: kiln's default, a config key, an environment variable, a flag.
    pub origin: SettingOrigin,
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
#[path = "events_tests.rs"]
mod tests;

/// A file of a release folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseFile {
    /// Its name in the folder.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex SHA-256.
    pub sha256: String,
}

/// The `[package.metadata.binstall]` block for a package, so `cargo binstall` finds
/// its archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinstallBlock {
    /// The package.
    pub package: String,
    /// The TOML to add to its Cargo.toml.
    pub toml: String,
}
