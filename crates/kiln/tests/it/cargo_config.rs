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
