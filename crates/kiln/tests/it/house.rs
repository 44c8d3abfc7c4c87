//! The rules of `crates/README.md` that a reader can check in the source: one place
//! for each job, so a newcomer finds it there.

use crate::common::repo_root;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `crates/*/src`, with its text.
fn sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push((p.clone(), std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    for c in std::fs::read_dir(repo_root().join("crates"))
        .unwrap()
        .flatten()
    {
        let src = c.path().join("src");
        if src.is_dir() {
            walk(&src, &mut out);
        }
    }
    assert!(out.len() > 50, "found the sources");
    out
}

/// Lines containing `needle` outside the files allowed to, ignoring comments.
fn offenders(needle: &str, allowed: &[&str]) -> Vec<String> {
    let root = repo_root();
    sources()
        .into_iter()
        .filter(|(p, _)| {
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            !allowed.contains(&rel.as_str())
        })
        .flat_map(|(p, text)| {
            text.lines()
                .enumerate()
                .filter(|(_, l)| l.contains(needle) && !l.trim_start().starts_with("//"))
                .map(|(i, l)| format!("{}:{}: {}", p.display(), i + 1, l.trim()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn only_the_reporter_prints() {
    for needle in ["println!(", "print!(", "eprintln!(", "eprint!("] {
        let found = offenders(
            needle,
            &[
                "crates/kiln-commands/src/reporter.rs",
                // A build script kiln runs: `cargo:` lines are its protocol with cargo.
                "crates/kiln-native/src/openssl.rs",
                // kiln as cargo's rustc wrapper: a process of its own, with no reporter.
                "crates/kiln-toolchain/src/wrapper.rs",
            ],
        );
        assert!(
            found.is_empty(),
            "print outside the reporter:\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn kiln_variables_are_read_in_one_place() {
    for needle in ["var(\"KILN_", "var_os(\"KILN_"] {
        let found = offenders(
            needle,
            &[
                "crates/kiln-config/src/env.rs",
                // The build script's input, set by kiln for it.
                "crates/kiln-native/src/openssl.rs",
            ],
        );
        assert!(
            found.is_empty(),
            "KILN_* read outside kiln-config:\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn one_git_runner_and_one_path_lookup() {
    let git = offenders(
        "Command::new(\"git\")",
        &["crates/kiln-workspace/src/git.rs"],
    );
    assert!(
        git.is_empty(),
        "git run outside kiln-workspace:\n{}",
        git.join("\n")
    );
    let path = offenders("split_paths(", &["crates/kiln-fs/src/lib.rs"]);
    assert!(
        path.is_empty(),
        "PATH searched outside kiln-fs:\n{}",
        path.join("\n")
    );
}

/// What kiln asks the OS about processes and memory lives behind one trait, so a
/// macOS (or any other) host is one implementation, not a hunt through the crates.
/// (kiln-fs uses libc only for the flags that open an untrusted file safely.)
#[test]
fn the_os_is_asked_in_one_place() {
    for needle in ["\"/proc", "\"/sys/fs", "libc::"] {
        let allowed: &[&str] = if needle == "libc::" {
            // Files (kiln-fs: opening, exchanging, whether a temporary file's
            // writer lives) and processes (kiln-metrics: memory, signals).
            &[
                "crates/kiln-metrics/src/host.rs",
                "crates/kiln-metrics/src/signals.rs",
                "crates/kiln-metrics/src/sealed.rs",
                "crates/kiln-fs/src/lib.rs",
                "crates/kiln-fs/src/swap.rs",
            ]
        } else {
            &["crates/kiln-metrics/src/host.rs"]
        };
        let found = offenders(needle, allowed);
        assert!(
            found.is_empty(),
            "OS query outside kiln-metrics' host.rs:\n{}",
            found.join("\n")
        );
    }
}

/// Every crate can be published: a description, the workspace's license and
/// repository, and internal dependencies pinned to the workspace's version (they are
/// released together), so `cargo install kiln` works once they are on crates.io.
#[test]
fn every_crate_is_publishable() {
    let root: toml::Table = std::fs::read_to_string(repo_root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let version = root["workspace"]["package"]["version"].as_str().unwrap();
    let deps = root["workspace"]["dependencies"].as_table().unwrap();
    let mut internal = 0;
    for (name, dep) in deps.iter().filter(|(n, _)| n.starts_with("kiln-")) {
        internal += 1;
        assert_eq!(
            dep.get("version").and_then(|v| v.as_str()),
            Some(format!("={version}").as_str()),
            "{name} needs `version = \"={version}\"` beside its path"
        );
    }
    let crates: Vec<PathBuf> = std::fs::read_dir(repo_root().join("crates"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("Cargo.toml"))
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(
        internal,
        crates.len() - 1,
        "every library crate is in [workspace.dependencies]"
    );
    for manifest in crates {
        let t: toml::Table = std::fs::read_to_string(&manifest).unwrap().parse().unwrap();
        let p = t["package"].as_table().unwrap();
        for key in ["description", "license", "repository", "version"] {
            assert!(p.contains_key(key), "{}: no `{key}`", manifest.display());
        }
        assert!(
            p.get("publish").is_none(),
            "{}: publish = false",
            manifest.display()
        );
    }
}

/// crates/README.md's table of who depends on whom is exactly what the manifests say
/// (cargo-dist's `--check` idea: the picture can't drift from the code).
#[test]
fn crates_depend_only_as_the_readme_says() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(repo_root())
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut actual = std::collections::BTreeMap::new();
    for p in meta["packages"].as_array().unwrap() {
        let deps: std::collections::BTreeSet<String> = p["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].is_null() && d["name"].as_str().unwrap().starts_with("kiln-"))
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect();
        actual.insert(p["name"].as_str().unwrap().to_string(), deps);
    }
    let readme = std::fs::read_to_string(repo_root().join("crates/README.md")).unwrap();
    let table = readme
        .split("| crate | depends on |")
        .nth(1)
        .expect("the dependency table");
    let mut drawn = std::collections::BTreeMap::new();
    for row in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_string();
        let deps: std::collections::BTreeSet<String> = cells[2]
            .split_whitespace()
            .map(|d| d.trim_matches('`').to_string())
            .collect();
        drawn.insert(name, deps);
    }
    assert_eq!(
        drawn, actual,
        "crates/README.md's dependency table differs from the manifests"
    );
    // And the picture has no cycle and keeps the image side out of the build core.
    for core in [
        "kiln-build",
        "kiln-local-cache",
        "kiln-remote",
        "kiln-fingerprint",
    ] {
        for side in ["kiln-image", "kiln-ship"] {
            assert!(!actual[core].contains(side), "{core} depends on {side}");
        }
    }
}
