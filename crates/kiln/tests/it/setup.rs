//! `kiln setup` and what happens when the zig toolchain is missing.

use crate::common;

use common::{kiln_command, which, Run, TempWorkspace};
use std::path::{Path, PathBuf};

/// A PATH with cargo, rustc, rustup and git but neither zig, cargo-zigbuild nor python.
fn path_without_zig() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for tool in ["cargo", "rustc", "rustup", "git"] {
        let found = which(tool).unwrap_or_else(|| panic!("{tool} not on PATH"));
        std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
    }
    (dir, bin)
}

fn kiln_with_path(cwd: &Path, path: &Path, args: &[&str]) -> Run {
    let mut cmd = kiln_command(cwd);
    cmd.env("PATH", path)
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .args(args);
    Run::from(cmd.output().unwrap())
}

#[test]
fn setup_check_passes_on_a_prepared_machine() {
    let ws = TempWorkspace::chronik();
    let run = ws.kiln(&["setup", "--check"]);
    run.success();
    for needle in [
        "rust target x86_64-unknown-linux-musl",
        "rust target aarch64-unknown-linux-musl",
        "zig",
        "cargo-zigbuild",
    ] {
        assert!(
            run.stderr.contains(needle),
            "{needle} not reported:\n{}",
            run.stderr
        );
    }
}

#[test]
fn setup_check_lists_what_is_missing() {
    let ws = TempWorkspace::chronik();
    let (_keep, path) = path_without_zig();
    let run = kiln_with_path(ws.root(), &path, &["setup", "--check"]);
    run.failure(4, "missing: zig, cargo-zigbuild");
    assert!(run.stderr.contains("pip install ziglang"), "{}", run.stderr);
}

#[test]
fn a_pure_rust_workspace_builds_without_zig() {
    let ws = TempWorkspace::pure_rust_chronik();
    let (_keep, path) = path_without_zig();
    let check = kiln_with_path(ws.root(), &path, &["setup", "--check"]);
    check.success();
    assert!(check.stderr.contains("doesn't need it"), "{}", check.stderr);
    let run = kiln_with_path(ws.root(), &path, &["build", "--target", "arm64"]);
    run.success();
    assert!(ws.path("artifacts/linux/arm64/chronik-cli").is_file());
    assert!(ws
        .read("artifacts/checksums.json")
        .contains("\"backend\": \"cargo\""));
}

#[test]
fn a_pure_rust_package_of_a_workspace_with_c_still_needs_zig() {
    let ws = TempWorkspace::chronik();
    let (_keep, path) = path_without_zig();
    let run = kiln_with_path(
        ws.root(),
        &path,
        &["build", "-p", "chronik-cli", "--target", "arm64"],
    );
    run.failure(4, "cargo-zigbuild");
}

#[test]
fn build_without_zig_names_the_install_command() {
    let ws = TempWorkspace::chronik();
    let (_keep, path) = path_without_zig();
    let run = kiln_with_path(ws.root(), &path, &["build", "-p", "chronik-server"]);
    run.failure(4, "cargo-zigbuild");
    assert!(run.stderr.contains("run `kiln setup`"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("break-system-packages"),
        "{}",
        run.stderr
    );
    assert!(!ws.path("artifacts/linux").exists(), "nothing was written");
}
