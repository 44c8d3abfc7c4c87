//! The user's `.cargo/config.toml` is respected where it works and overridden, with a
//! note, where it cannot link the target. The file itself is never edited.

use crate::common;

use common::TempWorkspace;

#[test]
fn a_host_linker_for_arm64_is_overridden_with_a_note() {
    // Pure Rust, so kiln links with rust-lld (the zig backend replaces any linker).
    let ws = TempWorkspace::pure_rust_chronik();
    let config = "[target.aarch64-unknown-linux-musl]\nlinker = \"clang\"\n\n[build]\njobs = 512\n";
    ws.write(".cargo/config.toml", config);
    let run = ws.kiln(&["build", "-p", "chronik-cli", "--target", "arm64"]);
    run.success();
    assert!(
        run.stderr
            .contains("linker `clang` for aarch64-unknown-linux-musl")
            && run.stderr.contains("replaced by rust-lld"),
        "the override is announced:\n{}",
        run.stderr
    );
    let checksums: serde_json::Value =
        serde_json::from_str(&ws.read("artifacts/checksums.json")).unwrap();
    let overrides = checksums["artifacts"][0]["overrides"]
        .as_array()
        .expect("overrides recorded");
    let linker = overrides
        .iter()
        .find(|o| o["setting"] == "linker")
        .expect("linker override recorded");
    assert_eq!(linker["from"], "clang", "{overrides:?}");
    assert_eq!(linker["to"], "rust-lld");
    assert_eq!(linker["target"], "aarch64-unknown-linux-musl");
    assert_eq!(
        linker["source"],
        serde_json::json!({"level": "workspace", "path": ".cargo/config.toml"}),
        "recorded by level, never by an absolute path"
    );
    let jobs = overrides.iter().find(|o| o["setting"] == "jobs");
    assert_eq!(jobs.expect("jobs cap recorded")["from"], "512");
    assert_eq!(
        ws.read(".cargo/config.toml"),
        config,
        "the user's file is untouched"
    );
}

/// Per-target rustflags kiln must change differently (the real workload's config:
/// `-fuse-ld=lld` it drops, a different valid `target-cpu` per target it keeps) still
/// build both targets in one cargo invocation: kiln drops the flags per `--target` as
/// cargo's rustc wrapper, and the binaries run.
#[test]
fn different_rustflags_per_target_share_one_invocation() {
    let ws = TempWorkspace::chronik();
    ws.write(
        ".cargo/config.toml",
        "[target.x86_64-unknown-linux-musl]\nlinker = \"clang\"\nrustflags = [\"-C\", \"link-arg=-fuse-ld=lld\", \"-C\", \"target-cpu=x86-64-v2\"]\n\n\
         [target.aarch64-unknown-linux-musl]\nlinker = \"clang\"\nrustflags = [\"-C\", \"link-arg=-fuse-ld=lld\", \"-C\", \"target-cpu=generic\"]\n",
    );
    let plan = ws.kiln(&["plan", "-p", "chronik-cli", "--message-format", "json"]);
    plan.success();
    let steps: Vec<serde_json::Value> = plan
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["reason"] == "plan-step")
        .collect();
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!(
        steps[0]["targets"].as_array().unwrap().len(),
        2,
        "{steps:?}"
    );
    let run = ws.kiln(&["build", "-p", "chronik-cli", "-v"]);
    run.success();
    assert!(run.stderr.contains("KILN_WRAP_RUSTC=1"), "{}", run.stderr);
    assert_eq!(
        run.stderr.matches("    Building ").count(),
        1,
        "{}",
        run.stderr
    );
    for (arch, runner) in [("amd64", None), ("arm64", Some("qemu-aarch64-static"))] {
        let bin = ws.path(&format!("artifacts/linux/{arch}/chronik-cli"));
        let out = match runner {
            None => std::process::Command::new(&bin).arg("--version").output(),
            Some(q) => std::process::Command::new(q)
                .arg(&bin)
                .arg("--version")
                .output(),
        }
        .unwrap();
        assert!(out.status.success(), "{arch}: {out:?}");
    }
}
