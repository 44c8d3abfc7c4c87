//! `kiln affected` on a scripted git history.

use crate::common;

use common::{tool, TempWorkspace};
use serde_json::Value;

fn git(ws: &TempWorkspace, args: &[&str]) -> String {
    tool("git", args, ws.root())
}

fn repo() -> TempWorkspace {
    let ws = TempWorkspace::chronik();
    ws.write(".gitignore", "/target\n/artifacts\n/.kiln-test-cache\n");
    git(&ws, &["init", "-q", "-b", "main"]);
    git(&ws, &["config", "user.email", "t@example.com"]);
    git(&ws, &["config", "user.name", "t"]);
    git(&ws, &["add", "-A"]);
    git(&ws, &["commit", "-qm", "base"]);
    ws
}

fn commit_edit(ws: &TempWorkspace, rel: &str, text: &str, msg: &str) {
    let old = std::fs::read_to_string(ws.path(rel)).unwrap_or_default();
    ws.write(rel, &format!("{old}{text}"));
    git(ws, &["add", "-A"]);
    git(ws, &["commit", "-qm", msg]);
}

fn matrix(ws: &TempWorkspace, args: &[&str]) -> Vec<(String, String)> {
    let mut full = vec!["affected", "--format", "github-matrix"];
    full.extend_from_slice(args);
    let run = ws.kiln(&full);
    run.success();
    let v: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    v["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["package"].as_str().unwrap().to_string(),
                e["platform"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(packages: &[&str]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in packages {
        for plat in ["linux-amd64", "linux-arm64"] {
            out.push((p.to_string(), plat.to_string()));
        }
    }
    out
}

#[test]
fn a_feature_branch_with_merges_affects_only_what_it_changed() {
    let ws = repo();
    git(&ws, &["checkout", "-qb", "feature"]);
    commit_edit(
        &ws,
        "crates/chronik-storage/src/lib.rs",
        "\n// feature work\n",
        "storage",
    );
    git(&ws, &["checkout", "-q", "main"]);
    commit_edit(
        &ws,
        "crates/chronik-cli/src/main.rs",
        "\n// main moves on\n",
        "cli on main",
    );
    git(&ws, &["checkout", "-q", "feature"]);
    git(&ws, &["merge", "-q", "--no-edit", "main"]);
    commit_edit(
        &ws,
        "crates/chronik-storage/src/lib.rs",
        "\n// more\n",
        "storage again",
    );
    // main's own change is not the branch's: measured from the merge-base.
    assert_eq!(
        matrix(&ws, &["--base", "main", "--head", "feature"]),
        pairs(&["chronik-server"])
    );
    // A library both binaries use reaches both.
    commit_edit(
        &ws,
        "crates/chronik-protocol/src/lib.rs",
        "\n// proto\n",
        "protocol",
    );
    assert_eq!(
        matrix(&ws, &["--base", "main", "--head", "feature"]),
        pairs(&["chronik-cli", "chronik-server"])
    );
}

#[test]
fn docs_changes_affect_nothing_and_uncommitted_edits_count() {
    let ws = repo();
    commit_edit(&ws, "README.md", "docs\n", "docs");
    assert_eq!(
        matrix(&ws, &["--base", "HEAD~1", "--head", "HEAD"]),
        pairs(&[])
    );
    let lib = ws.read("crates/chronik-common/src/lib.rs");
    ws.write(
        "crates/chronik-common/src/lib.rs",
        &format!("{lib}\n// wip\n"),
    );
    assert_eq!(
        matrix(&ws, &["--base", "HEAD"]),
        pairs(&["chronik-cli", "chronik-server"])
    );
}

#[test]
fn a_lockfile_bump_affects_the_binaries_that_use_the_crate() {
    let ws = repo();
    git(&ws, &["checkout", "-qb", "bump"]);
    let lock = ws.read("Cargo.lock");
    let shlex = lock
        .find("name = \"shlex\"")
        .expect("shlex in the lockfile");
    let (head, tail) = lock.split_at(shlex);
    ws.write(
        "Cargo.lock",
        &format!(
            "{head}{}",
            tail.replacen("version = \"", "version = \"9", 1)
        ),
    );
    git(&ws, &["commit", "-qam", "bump shlex"]);
    git(&ws, &["checkout", "-q", "main"]);
    // shlex is a build dependency of `cc`, which only chronik-checksum (and so the server) uses.
    assert_eq!(
        matrix(&ws, &["--base", "main", "--head", "bump"]),
        pairs(&["chronik-server"])
    );
}

#[test]
fn a_profile_change_affects_everything() {
    let ws = repo();
    commit_edit(
        &ws,
        "Cargo.toml",
        "\n[profile.release.package.chronik-common]\nopt-level = 2\n",
        "profile",
    );
    assert_eq!(
        matrix(&ws, &["--base", "HEAD~1", "--head", "HEAD"]),
        pairs(&["chronik-cli", "chronik-server"])
    );
}

#[test]
fn a_missing_base_says_to_fetch_history() {
    let ws = repo();
    let run = ws.kiln(&["affected", "--base", "origin/nowhere"]);
    run.failure(2, "`origin/nowhere` is not in this git checkout");
    assert!(run.stderr.contains("fetch"), "{}", run.stderr);
}
