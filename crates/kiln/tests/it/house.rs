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
                "crates/kiln-cli/src/reporter.rs",
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
