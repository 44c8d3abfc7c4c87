//! One example of every event, note and warning: documented, stable, round trips.

use super::*;
use crate::Change;

fn change() -> Change {
    Change {
        id: crate::InputId::File {
            path: crate::RelPath::new(std::path::Path::new("crates/chronik-storage/src/lib.rs")),
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
        Warning::StoreManifestUnreadable {
            path: "artifacts/checksums.json".into(),
            error: "expected value at line 1 column 1".into(),
        },
        Warning::CacheUnusable {
            error: "the kiln cache `/c/v1` can't be used: writing to it failed: Read-only file system (os error 30)".into(),
        },
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
        Warning::DistUnavailable {
            scheduler: "https://scheduler:10600".into(),
            why: "connection refused".into(),
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
            entries: vec!["chronik-server x86_64-unknown-linux-musl 1b19464c4de7".into()],
        },
        Warning::SecretInputsNotUploaded {
            remote: r(),
            entries: vec!["chronik-server x86_64-unknown-linux-musl (DB_PASS)".into()],
        },
        Warning::ReleaseWithoutDownloadUrl {
            tag: "v0.3.1".into(),
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
        Warning::DeprecatedFlag {
            flag: "--out".into(),
            instead: "--artifact-dir".into(),
        },
        Warning::StaleStore {
            units: vec![crate::UnitGroup {
                binary: "chronik-server".into(),
                arches: vec!["amd64".into()],
            }],
        },
    ];
    for w in &all {
        match w {
            Warning::StoreManifestUnreadable { .. }
            | Warning::CacheUnusable { .. }
            | Warning::CorruptCacheEntry { .. }
            | Warning::SharedTargetDir { .. }
            | Warning::RetryingWithFewerJobs { .. }
            | Warning::SccacheOff { .. }
            | Warning::DistUnavailable { .. }
            | Warning::NativeUnusable { .. }
            | Warning::NativeNotCached { .. }
            | Warning::EditedDuringBuild { .. }
            | Warning::NotCached { .. }
            | Warning::RemoteSkipped { .. }
            | Warning::RemoteFailed { .. }
            | Warning::RemoteOperationFailed { .. }
            | Warning::RemoteEntryRefused { .. }
            | Warning::RemoteDigestMismatch { .. }
            | Warning::SecretInputsNotUploaded { .. }
            | Warning::ReleaseWithoutDownloadUrl { .. }
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
            | Warning::NoBrowser { .. }
            | Warning::DeprecatedFlag { .. }
            | Warning::StaleStore { .. } => {}
        }
    }
    all
}

/// One example of everything `kiln verify` can find (as for warnings).
fn mismatches() -> Vec<Mismatch> {
    let file = || "linux/arm64/chronik-cli.spdx.json".to_string();
    let all = vec![
        Mismatch::Missing,
        Mismatch::Digest {
            actual: "ab".into(),
            size: 1,
            recorded: "cd".into(),
            recorded_size: 2,
        },
        Mismatch::Sidecar {
            file: "chronik-cli.sha256".into(),
        },
        Mismatch::VersionFile {
            file: "chronik-cli.version".into(),
            version: "0.1.0".into(),
        },
        Mismatch::SbomMissing { file: file() },
        Mismatch::SbomChanged { file: file() },
        Mismatch::SbomOfAnotherBinary { file: file() },
        Mismatch::AuditSection,
        Mismatch::NotElf,
        Mismatch::Machine {
            actual: "amd64".into(),
            expected: "arm64".into(),
        },
        Mismatch::NotStatic,
    ];
    for m in &all {
        match m {
            Mismatch::Missing
            | Mismatch::Digest { .. }
            | Mismatch::Sidecar { .. }
            | Mismatch::VersionFile { .. }
            | Mismatch::SbomMissing { .. }
            | Mismatch::SbomChanged { .. }
            | Mismatch::SbomOfAnotherBinary { .. }
            | Mismatch::AuditSection
            | Mismatch::NotElf
            | Mismatch::Machine { .. }
            | Mismatch::NotStatic => {}
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
        Note::Distributed {
            scheduler: "https://scheduler:10600".into(),
            servers: 2,
            cores: 32,
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
            | Note::Distributed { .. }
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
        Event::SccacheStats {
            hits: 3,
            misses: 1,
            remote: 6,
            fell_back: 1,
            local: 4,
        },
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
            layers: vec![
                ("sha256:00".into(), 30, LayerRole::Base { n: 1 }),
                ("sha256:01".into(), 20, LayerRole::System),
                (
                    "sha256:02".into(),
                    10,
                    LayerRole::Binaries {
                        arch: "amd64".into(),
                    },
                ),
            ],
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
                origin: SettingOrigin::Flag {
                    flag: "--max-memory".into(),
                },
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
            problems: mismatches()
                .into_iter()
                .map(|detail| VerifyProblem {
                    path: "linux/arm64/chronik-cli".into(),
                    detail,
                })
                .collect(),
            store: "artifacts".into(),
        },
        Event::ReleaseWritten {
            out: "target/kiln/dist".into(),
            dry_run: false,
            version: "0.3.1".into(),
            tag: "v0.3.1".into(),
            files: vec![ReleaseFile {
                name: "chronik-cli-0.3.1-x86_64-unknown-linux-musl.tar.gz".into(),
                size: 1 << 20,
                sha256: "ab".repeat(32),
            }],
            binstall: vec![BinstallBlock {
                package: "chronik-cli".into(),
                toml: "[package.metadata.binstall]\npkg-fmt = \"tgz\"\n".into(),
            }],
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
            image: true,
            affected: vec![AffectedUnit {
                package: "chronik-server".into(),
                bins: vec!["chronik-server".into()],
                target: "aarch64-unknown-linux-musl".into(),
                platform: "linux-arm64".into(),
                because: vec!["chronik-storage".into()],
            }],
            total: 4,
        },
        Event::Initialized {
            manifest: "Cargo.toml".into(),
            table: "[workspace.metadata.kiln]".into(),
            binaries: vec!["chronik-server".into()],
            gitignore: vec!["/artifacts/".into()],
        },
        Event::ManWritten {
            dir: "man".into(),
            pages: vec!["kiln.1".into(), "kiln-build.1".into()],
        },
        Event::Settings {
            settings: vec![
                SettingRecord {
                    key: "cache.upload".into(),
                    value: "never".into(),
                    origin: SettingOrigin::Env {
                        name: "KILN_CACHE_UPLOAD".into(),
                    },
                },
                SettingRecord {
                    key: "targets".into(),
                    value: "linux/amd64".into(),
                    origin: SettingOrigin::Flag {
                        flag: "--target".into(),
                    },
                },
                SettingRecord {
                    key: "cache.sccache".into(),
                    value: "true".into(),
                    origin: SettingOrigin::Config {
                        key: "cache.sccache".into(),
                    },
                },
                SettingRecord {
                    key: "jobs".into(),
                    value: "2".into(),
                    origin: SettingOrigin::Default,
                },
            ],
        },
        Event::HostTool {
            package: "chronik-server".into(),
            tool: "protoc".into(),
            by: vec!["chronik-proto (via prost-build)".into()],
            state: ToolState::Missing,
            required: true,
            fix: Some("run `kiln setup`".into()),
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
            started: 1_796_199_674,
            compiled: 4,
            skipped: 1,
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
            | Event::ReleaseWritten { .. }
            | Event::CacheStats(_)
            | Event::CacheCollected { .. }
            | Event::CacheCleared { .. }
            | Event::CacheSynced { .. }
            | Event::KeyGenerated { .. }
            | Event::Affected { .. }
            | Event::Settings { .. }
            | Event::Tool { .. }
            | Event::HostTool { .. }
            | Event::Installing { .. }
            | Event::Ready
            | Event::DockerfileWritten { .. }
            | Event::WorkflowWritten { .. }
            | Event::ReportWritten { .. }
            | Event::Initialized { .. }
            | Event::ManWritten { .. }
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
        // Notes, warnings and verify problems: each kind in its table.
        let problems = v["problems"].as_array().into_iter().flatten();
        let kinds = std::iter::once(&v).chain(problems.map(|p| &p["detail"]));
        for kind in kinds.filter_map(|k| k["kind"].as_str()) {
            assert!(
                doc.contains(&format!("| `{reason}` | `{kind}` |")),
                "docs/message-format.md lacks the {reason} kind `{kind}`"
            );
        }
        // Where settings come from: each in the `settings` row.
        for s in v["settings"].as_array().into_iter().flatten() {
            let from = s["origin"]["from"].as_str().unwrap();
            let row = doc
                .lines()
                .find(|l| l.starts_with("| `settings` |"))
                .unwrap();
            let documented = format!("\"from\": \"{from}\"");
            assert!(row.contains(&documented), "settings row lacks {documented}");
        }
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
        lines.push_str(&json);
        lines.push('\n');
    }
    insta::assert_snapshot!(lines);
}
