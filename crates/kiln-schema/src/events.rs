//! The `--message-format json` event stream: every line kiln prints is one of these.

use crate::{ArtifactRecord, Override};
use serde::{Deserialize, Serialize};

/// One line of `--message-format json` output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Event {
    /// A cargo invocation is starting.
    BuildStarted {
        /// Targets this invocation builds.
        targets: Vec<String>,
        /// Packages it builds.
        packages: Vec<String>,
        /// The backend (`cargo`, `zig`, `cross`).
        backend: String,
    },
    /// kiln changed how cargo is run, with the reason.
    Note {
        /// What kiln did and why.
        message: String,
    },
    /// A crate finished compiling.
    CrateCompiled {
        /// Crate name.
        name: String,
        /// Target triple, or `host` for build scripts and proc macros.
        target: String,
    },
    /// A binary was written to the artifact store.
    ArtifactWritten {
        /// Its record in `checksums.json`.
        artifact: Box<ArtifactRecord>,
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
    },
    /// `kiln plan`: one binary's state on some architectures.
    PlanUnit {
        /// The binary.
        binary: String,
        /// `fresh`, `restore` or `rebuild`.
        state: String,
        /// Architectures in this state for the same reasons.
        arches: Vec<String>,
        /// Why it rebuilds: sentences naming inputs, never values of the environment.
        because: Vec<String>,
    },
    /// `kiln plan`: one cargo invocation.
    PlanStep {
        /// The package built.
        package: String,
        /// Its binaries.
        bins: Vec<String>,
        /// Target triples.
        targets: Vec<String>,
        /// The backend (`cargo`, `zig`, `cross`).
        backend: String,
        /// Dependencies that compile C.
        c_deps: Vec<String>,
        /// The command, as a shell would run it.
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
        budget_source: String,
        /// Jobs at a time.
        jobs: u32,
        /// What limits the jobs (cores, the budget, `-j`).
        limited_by: String,
        /// Estimated bytes per job.
        per_job_bytes: u64,
        /// Where the estimate came from.
        estimate_source: String,
    },
    /// `kiln verify`: the result of re-hashing the store.
    VerifyFinished {
        /// Artifacts checked.
        checked: usize,
        /// Those that don't match their record.
        problems: Vec<VerifyProblem>,
    },
    /// `kiln cache stats`.
    CacheStats(CacheStats),
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
    },
    /// `kiln config`: the effective settings.
    Settings {
        /// Each setting, its value and where it came from.
        settings: Vec<SettingRecord>,
    },
    /// The final event: what happened overall.
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

    /// One example of every event. The match makes a new variant a compile error
    /// here until it has an example (and so a snapshot and a documented reason).
    fn examples() -> Vec<Event> {
        let all = vec![
            Event::BuildStarted {
                targets: vec!["x86_64-unknown-linux-musl".into()],
                packages: vec!["chronik-server".into()],
                backend: "zig".into(),
            },
            Event::Note {
                message: "installed the rustup target".into(),
            },
            Event::CrateCompiled {
                name: "chronik-storage".into(),
                target: "host".into(),
            },
            Event::ArtifactWritten {
                artifact: Box::new(crate::tests::record("linux/amd64/chronik-server")),
            },
            Event::ImageWritten {
                digest: "sha256:00".into(),
                platforms: vec![("linux/amd64".into(), "sha256:01".into())],
                layers: vec![("sha256:02".into(), 10, "linux/amd64 binaries".into())],
                outputs: vec!["oci:target/kiln/image".into()],
                pushed: vec![],
            },
            Event::PlanUnit {
                binary: "chronik-server".into(),
                state: "rebuild".into(),
                arches: vec!["amd64".into()],
                because: vec!["crates/chronik-storage/src/lib.rs changed".into()],
            },
            Event::PlanStep {
                package: "chronik-server".into(),
                bins: vec!["chronik-server".into()],
                targets: vec!["x86_64-unknown-linux-musl".into()],
                backend: "zig".into(),
                c_deps: vec!["chronik-storage".into()],
                command: "cargo zigbuild --release".into(),
                overrides: vec![],
                native: vec![NativeRecord {
                    library: "openssl".into(),
                    krate: "openssl-sys".into(),
                    target: "x86_64-unknown-linux-musl".into(),
                    chain: vec!["chronik-server".into(), "openssl-sys".into()],
                }],
            },
            Event::PlanResources {
                budget_bytes: 4 << 30,
                budget_source: "--max-memory".into(),
                jobs: 2,
                limited_by: "2 cores".into(),
                per_job_bytes: 768 << 20,
                estimate_source: "default estimate".into(),
            },
            Event::VerifyFinished {
                checked: 2,
                problems: vec![VerifyProblem {
                    path: "linux/arm64/chronik-cli".into(),
                    detail: "sha256 mismatch".into(),
                }],
            },
            Event::CacheStats(CacheStats {
                root: "/cache/v1".into(),
                entries: 4,
                ..CacheStats::default()
            }),
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
            },
            Event::Settings {
                settings: vec![SettingRecord {
                    key: "cache.upload".into(),
                    value: "never".into(),
                    origin: "KILN_CACHE_UPLOAD".into(),
                }],
            },
            Event::Finished {
                success: true,
                elapsed_secs: 0.5,
                artifacts: 4,
                error: None,
            },
        ];
        for e in &all {
            match e {
                Event::BuildStarted { .. }
                | Event::Note { .. }
                | Event::CrateCompiled { .. }
                | Event::ArtifactWritten { .. }
                | Event::ImageWritten { .. }
                | Event::PlanUnit { .. }
                | Event::PlanStep { .. }
                | Event::PlanResources { .. }
                | Event::VerifyFinished { .. }
                | Event::CacheStats(_)
                | Event::Affected { .. }
                | Event::Settings { .. }
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
            assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
            lines.push_str(&json);
            lines.push('\n');
        }
        insta::assert_snapshot!(lines);
    }
}
