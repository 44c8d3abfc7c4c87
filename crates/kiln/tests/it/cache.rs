//! The binary cache: rebuild exactly what changed, restore the rest, never serve a
//! stale or corrupt binary.

use crate::common;

use common::{kiln_command, Run, TempWorkspace};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// `kiln plan` as `{ "binary/arch": state }`.
fn plan_states(ws: &TempWorkspace, env: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut cmd = kiln_command(ws.root());
    cmd.args(["plan", "--message-format", "json"])
        .envs(env.iter().copied());
    common::plan_states(&Run::from(cmd.output().unwrap()))
}

fn states(rebuilt: &[&str]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for bin in ["chronik-cli", "chronik-server"] {
        for arch in ["amd64", "arm64"] {
            let state = if rebuilt.contains(&bin) {
                "rebuild"
            } else {
                "fresh"
            };
            out.insert(format!("{bin}/{arch}"), state.to_string());
        }
    }
    out
}

fn sha(ws: &TempWorkspace, rel: &str) -> String {
    let c: Value = serde_json::from_str(&ws.read("artifacts/checksums.json")).unwrap();
    c["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"] == rel)
        .unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A copy of the example built once, with a warm cache inside it.
fn warm() -> TempWorkspace {
    let ws = TempWorkspace::chronik();
    ws.kiln(&["build", "-q"]).success();
    ws
}

#[test]
fn nothing_changed_means_everything_fresh() {
    let ws = warm();
    let run = ws.kiln(&["build"]);
    run.success();
    assert!(
        run.stderr
            .contains("Fresh chronik-cli (linux/amd64, linux/arm64), chronik-server (linux/amd64, linux/arm64)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("[cache: 4/4 hits]"), "{}", run.stderr);
}

/// What changes, how (returns the old text, empty for a new file), which file, and
/// which binaries must rebuild.
type Case<'a> = (&'a str, Box<dyn Fn() -> String + 'a>, &'a str, Vec<&'a str>);

/// A way to damage a cache blob.
type Damage = fn(&Path);

#[test]
fn each_input_rebuilds_exactly_its_dependents() {
    let ws = warm();
    assert_eq!(plan_states(&ws, &[]), states(&[]));
    let append = |rel: &str, text: &str| {
        let old = ws.read(rel);
        ws.write(rel, &format!("{old}{text}"));
        old
    };
    // Each case: make the change, check the plan, undo it.
    let cases: Vec<Case<'_>> = vec![
        (
            "leaf library",
            Box::new(|| append("crates/chronik-storage/src/lib.rs", "\n// edit\n")),
            "crates/chronik-storage/src/lib.rs",
            vec!["chronik-server"],
        ),
        (
            "shared library",
            Box::new(|| append("crates/chronik-common/src/lib.rs", "\n// edit\n")),
            "crates/chronik-common/src/lib.rs",
            vec!["chronik-cli", "chronik-server"],
        ),
        (
            "protocol",
            Box::new(|| append("crates/chronik-protocol/src/lib.rs", "\n// edit\n")),
            "crates/chronik-protocol/src/lib.rs",
            vec!["chronik-cli", "chronik-server"],
        ),
        (
            "C source",
            Box::new(|| append("crates/chronik-checksum/csrc/crc32c.c", "\n/* edit */\n")),
            "crates/chronik-checksum/csrc/crc32c.c",
            vec!["chronik-server"],
        ),
        (
            "build script",
            Box::new(|| append("crates/chronik-checksum/build.rs", "\n// edit\n")),
            "crates/chronik-checksum/build.rs",
            vec!["chronik-server"],
        ),
        (
            "binary's manifest",
            Box::new(|| {
                append(
                    "crates/chronik-cli/Cargo.toml",
                    "\n[features]\nextra = []\n",
                )
            }),
            "crates/chronik-cli/Cargo.toml",
            vec!["chronik-cli"],
        ),
        (
            "root profile",
            Box::new(|| {
                append(
                    "Cargo.toml",
                    "\n[profile.release.package.chronik-common]\nopt-level = 2\n",
                )
            }),
            "Cargo.toml",
            vec!["chronik-cli", "chronik-server"],
        ),
        (
            "workspace version",
            Box::new(|| {
                let old = ws.read("Cargo.toml");
                ws.write(
                    "Cargo.toml",
                    &old.replace("version = \"0.3.1\"", "version = \"0.3.2\""),
                );
                old
            }),
            "Cargo.toml",
            vec!["chronik-cli", "chronik-server"],
        ),
        (
            "README",
            Box::new(|| {
                ws.write("README.md", "docs\n");
                String::new()
            }),
            "README.md",
            vec![],
        ),
        (
            "unrelated root file",
            Box::new(|| append("Cargo.toml", "\n# a comment\n")),
            "Cargo.toml",
            vec![],
        ),
    ];
    for (what, change, file, rebuilt) in cases {
        let old = change();
        assert_eq!(
            plan_states(&ws, &[]),
            states(&rebuilt),
            "after changing the {what}"
        );
        if old.is_empty() {
            std::fs::remove_file(ws.path(file)).unwrap();
        } else {
            ws.write(file, &old);
        }
        assert_eq!(
            plan_states(&ws, &[]),
            states(&[]),
            "after undoing the {what}"
        );
    }
    // Environment and cargo config reach every binary.
    assert_eq!(
        plan_states(&ws, &[("RUSTFLAGS", "-Cdebug-assertions=on")]),
        states(&["chronik-cli", "chronik-server"])
    );
    ws.write(
        ".cargo/config.toml",
        "[build]\nrustflags = [\"-Cdebug-assertions=on\"]\n",
    );
    assert_eq!(
        plan_states(&ws, &[]),
        states(&["chronik-cli", "chronik-server"])
    );
    std::fs::remove_file(ws.path(".cargo/config.toml")).unwrap();
    // A new member no binary uses, with its own lockfile entries, rebuilds nothing.
    ws.write(
        "crates/chronik-bench/Cargo.toml",
        "[package]\nname = \"chronik-bench\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    ws.write("crates/chronik-bench/src/lib.rs", "pub fn bench() {}\n");
    assert_eq!(plan_states(&ws, &[]), states(&[]));
}

#[test]
fn dry_run_says_what_would_happen_and_does_nothing() {
    let ws = warm();
    let lib = ws.read("crates/chronik-storage/src/lib.rs");
    ws.write(
        "crates/chronik-storage/src/lib.rs",
        &format!("{lib}\n// edit\n"),
    );
    let before = common::snapshot_dir(&ws.path("artifacts"));
    let run = ws.kiln(&["build", "--dry-run"]);
    run.success();
    // What would happen is the answer: stdout.
    assert!(
        run.stdout.contains("rebuild  chronik-server")
            && run
                .stdout
                .contains("because crates/chronik-storage/src/lib.rs changed"),
        "{}",
        run.stdout
    );
    assert_eq!(common::snapshot_dir(&ws.path("artifacts")), before);
}

#[test]
fn rebuilds_are_real_and_reverting_restores_the_old_binary() {
    let ws = warm();
    let before = sha(&ws, "linux/amd64/chronik-server");
    let cli_before = sha(&ws, "linux/amd64/chronik-cli");
    let lib = ws.read("crates/chronik-storage/src/lib.rs");
    ws.write(
        "crates/chronik-storage/src/lib.rs",
        &lib.replace("{name}.log", "{name}.segment"),
    );
    let run = ws.kiln(&["build"]);
    run.success();
    assert!(run.stderr.contains("2 built"), "{}", run.stderr);
    let edited = sha(&ws, "linux/amd64/chronik-server");
    assert_ne!(edited, before, "the edited server is a new binary");
    assert_eq!(sha(&ws, "linux/amd64/chronik-cli"), cli_before);
    let bytes = std::fs::read(ws.path("artifacts/linux/amd64/chronik-server")).unwrap();
    assert!(
        bytes.windows(8).any(|w| w == b".segment"),
        "the rebuilt binary has the edit"
    );
    ws.write("crates/chronik-storage/src/lib.rs", &lib);
    let run = ws.kiln(&["build"]);
    run.success();
    assert!(run.stderr.contains("Restored 2 binaries"), "{}", run.stderr);
    assert_eq!(
        sha(&ws, "linux/amd64/chronik-server"),
        before,
        "the original binary comes back from the cache"
    );
    ws.kiln(&["verify"]).success();
}

#[test]
fn a_fresh_checkout_restores_everything_without_compiling() {
    let a = warm();
    let b = TempWorkspace::chronik();
    let target = b.path("fresh-target");
    let mut cmd = kiln_command(b.root());
    cmd.args(["build"])
        .env("KILN_CACHE_DIR", a.path(".kiln-test-cache"))
        .env("CARGO_TARGET_DIR", &target);
    let run = Run::from(cmd.output().unwrap());
    run.success();
    assert!(run.stderr.contains("Restored 4 binaries"), "{}", run.stderr);
    assert!(
        !common::cargo_ran_in(&target),
        "cargo never built anything: nothing but kiln's metrics in the target dir"
    );
    for rel in ["linux/amd64/chronik-server", "linux/arm64/chronik-cli"] {
        assert_eq!(sha(&a, rel), sha(&b, rel));
    }
    b.kiln(&["verify"]).success();
}

/// A cargo config like Chronik Stream's, which kiln must override for its build.
const HOSTILE_CONFIG: &str = "[build]\njobs = 512\n\n\
    [target.x86_64-unknown-linux-musl]\nlinker = \"clang\"\nrustflags = [\"-C\", \"link-arg=-fuse-ld=lld\", \"-C\", \"target-cpu=native\"]\n\n\
    [target.aarch64-unknown-linux-musl]\nlinker = \"clang\"\nrustflags = [\"-C\", \"link-arg=-fuse-ld=lld\", \"-C\", \"target-cpu=native\"]\n";

/// Relocation matrix: built in one checkout, then a clone at another path under
/// another directory name, with another HOME, CARGO_HOME and target dir, restores
/// all four binaries without cargo, plain and with kiln's overrides in effect.
#[test]
fn a_relocated_clone_restores_everything_even_with_overrides() {
    for config in [None, Some(HOSTILE_CONFIG)] {
        let a = TempWorkspace::chronik();
        if let Some(c) = config {
            a.write(".cargo/config.toml", c);
        }
        let built = a.kiln(&["build"]);
        built.success();
        if config.is_some() {
            assert!(built.stderr.contains("replaced by zig"), "{}", built.stderr);
        }
        let (b, root) = TempWorkspace::relocated_clone(&a);
        let cache = a.path(".kiln-test-cache");
        let all = |state: &str| {
            ["chronik-cli", "chronik-server"]
                .iter()
                .flat_map(|bin| {
                    ["amd64", "arm64"].map(|arch| (format!("{bin}/{arch}"), state.to_string()))
                })
                .collect::<BTreeMap<_, _>>()
        };
        let plan = common::kiln_elsewhere(
            &root,
            b.root(),
            &cache,
            &["plan", "--message-format", "json"],
        );
        assert_eq!(
            common::plan_states(&plan),
            all("restore"),
            "{}",
            plan.stderr
        );
        let run = common::kiln_elsewhere(&root, b.root(), &cache, &["build"]);
        run.success();
        assert!(run.stderr.contains("Restored 4 binaries"), "{}", run.stderr);
        assert!(
            !common::cargo_ran_in(&b.path("other-target")),
            "cargo never built anything"
        );
        let plan = common::kiln_elsewhere(
            &root,
            b.root(),
            &cache,
            &["plan", "--message-format", "json"],
        );
        assert_eq!(common::plan_states(&plan), all("fresh"));
        for rel in ["linux/amd64/chronik-server", "linux/arm64/chronik-cli"] {
            let c: Value = serde_json::from_str(
                &std::fs::read_to_string(root.join("artifacts/checksums.json")).unwrap(),
            )
            .unwrap();
            let theirs = c["artifacts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["path"] == rel)
                .unwrap()["sha256"]
                .clone();
            assert_eq!(theirs.as_str().unwrap(), sha(&a, rel));
        }
        // Nothing local went into what is shared: no path of either checkout in the
        // cache entries.
        for e in walk_files(&cache.join("v1/entries")) {
            let text = std::fs::read_to_string(&e).unwrap();
            assert!(!text.contains(a.root().to_str().unwrap()), "{text}");
            assert!(!text.contains(b.root().to_str().unwrap()), "{text}");
        }
    }
}

/// A plan explains a miss in words, from typed inputs: the changed file, the
/// variable, the override.
#[test]
fn misses_are_explained_in_words() {
    let ws = warm();
    let reasons = |env: &[(&str, &str)]| {
        let mut cmd = kiln_command(ws.root());
        cmd.args(["plan"]).envs(env.iter().copied());
        let run = Run::from(cmd.output().unwrap());
        run.success();
        format!("{}{}", run.stdout, run.stderr)
    };
    let old = ws.read("crates/chronik-storage/src/lib.rs");
    ws.write(
        "crates/chronik-storage/src/lib.rs",
        &format!("{old}\n// edit\n"),
    );
    let out = reasons(&[]);
    assert!(
        out.contains("crates/chronik-storage/src/lib.rs changed"),
        "{out}"
    );
    ws.write("crates/chronik-storage/src/lib.rs", &old);
    let out = reasons(&[("CFLAGS", "-O1")]);
    assert!(out.contains("CFLAGS was set"), "{out}");
    assert!(
        !out.contains("-O1"),
        "an environment value is never shown:\n{out}"
    );
    ws.write(".cargo/config.toml", HOSTILE_CONFIG);
    let out = reasons(&[]);
    assert!(
        out.contains("linker override for aarch64-unknown-linux-musl: clang -> zig"),
        "{out}"
    );
    assert!(!out.contains("override#"), "{out}");
}

/// Files named with bytes that are not UTF-8, and symlinks, are inputs.
#[cfg(unix)]
#[test]
fn non_utf8_names_and_symlinks_count() {
    use std::os::unix::ffi::OsStrExt;
    let ws = warm();
    // A build script that declares nothing: by cargo's rule every file of its package
    // is an input, whatever its name.
    ws.write("crates/chronik-storage/build.rs", "fn main() {}\n");
    ws.kiln(&["build", "-q"]).success();
    let raw = ws
        .path("crates/chronik-storage")
        .join(std::ffi::OsStr::from_bytes(b"data-\xff.bin"));
    std::fs::write(&raw, "one").unwrap();
    assert_eq!(plan_states(&ws, &[]), states(&["chronik-server"]));
    ws.kiln(&["build", "-q"]).success();
    std::fs::write(&raw, "two").unwrap();
    assert_eq!(plan_states(&ws, &[]), states(&["chronik-server"]));
    ws.kiln(&["build", "-q"]).success();
    // A symlink to a file outside the workspace that the compile reads: its
    // target's content counts.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("shared.h"), "v1").unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("shared.h"),
        ws.path("crates/chronik-common/shared.h"),
    )
    .unwrap();
    let lib = ws.read("crates/chronik-common/src/lib.rs");
    ws.write(
        "crates/chronik-common/src/lib.rs",
        &format!("{lib}\npub const SHARED: &str = include_str!(\"../shared.h\");\n"),
    );
    ws.kiln(&["build", "-q"]).success();
    assert_eq!(plan_states(&ws, &[]), states(&[]));
    std::fs::write(outside.path().join("shared.h"), "v2").unwrap();
    assert_eq!(
        plan_states(&ws, &[]),
        states(&["chronik-cli", "chronik-server"])
    );
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    common::snapshot_dir(dir)
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

fn blobs(cache: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(cache.join("v1/blobs")).unwrap().flatten() {
        out.extend(
            std::fs::read_dir(d.path())
                .unwrap()
                .flatten()
                .map(|e| e.path()),
        );
    }
    out.sort();
    out
}

#[test]
fn corrupt_entries_are_detected_evicted_and_rebuilt() {
    let ws = warm();
    let cache = ws.path(".kiln-test-cache");
    let damage: [(&str, Damage); 3] = [
        ("flipped byte", |p| {
            let mut b = std::fs::read(p).unwrap();
            b[100] ^= 0xff;
            std::fs::write(p, b).unwrap();
        }),
        ("truncated", |p| {
            let b = std::fs::read(p).unwrap();
            std::fs::write(p, &b[..b.len() / 2]).unwrap();
        }),
        ("deleted", |p| std::fs::remove_file(p).unwrap()),
    ];
    for (what, hurt) in damage {
        std::fs::remove_dir_all(ws.path("artifacts")).unwrap();
        let blob = &blobs(&cache)[0];
        hurt(blob);
        let run = ws.kiln(&["build"]);
        run.success();
        assert!(
            run.stderr.contains("warning:") && run.stderr.contains("rebuilt"),
            "{what}: {}",
            run.stderr
        );
        assert!(run.stderr.contains("1 built"), "{what}: {}", run.stderr);
        ws.kiln(&["verify"]).success();
    }
}

#[test]
fn two_builds_at_once_both_succeed() {
    let ws = TempWorkspace::chronik();
    let spawn = || {
        kiln_command(ws.root())
            .args(["build", "-q"])
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (spawn(), spawn());
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    ws.kiln(&["verify"]).success();
    let c: Value = serde_json::from_str(&ws.read("artifacts/checksums.json")).unwrap();
    assert_eq!(c["artifacts"].as_array().unwrap().len(), 4);
}

#[test]
fn killed_at_any_moment_the_next_run_recovers() {
    let ws = warm();
    for (i, ms) in [5u64, 40, 90, 150, 250, 400, 700].iter().enumerate() {
        if i % 2 == 0 {
            // Make the next build a restore for half the runs, a compile for the others.
            std::fs::remove_dir_all(ws.path("artifacts")).ok();
        } else {
            // One crate to compile (per arch): cargo is running when the kill comes.
            let main = ws.read("crates/chronik-cli/src/main.rs");
            ws.write(
                "crates/chronik-cli/src/main.rs",
                &format!("{main}\n// kill {i}\n"),
            );
        }
        let mut child = kiln_command(ws.root())
            .args(["build", "-q"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(*ms));
        let _ = child.kill();
        let _ = child.wait();
        ws.kiln(&["build", "-q"]).success();
        ws.kiln(&["verify"]).success();
    }
}

#[test]
fn cache_stats_gc_and_clear() {
    let ws = warm();
    ws.kiln(&["build", "-q"]).success();
    let stats: Value = serde_json::from_str(
        &ws.kiln(&["cache", "stats", "--message-format", "json"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(stats["entries"], 4);
    assert_eq!(stats["recent_hits"], 4);
    assert_eq!(stats["recent_misses"], 4);
    assert!(stats["bytes"].as_u64().unwrap() > 1_000_000);
    ws.kiln(&["cache", "gc", "--max-size", "1M"]).success();
    let stats: Value = serde_json::from_str(
        &ws.kiln(&["cache", "stats", "--message-format", "json"])
            .stdout,
    )
    .unwrap();
    assert!(stats["bytes"].as_u64().unwrap() <= 1 << 20, "{stats}");
    assert!(stats["entries"].as_u64().unwrap() < 4);
    ws.kiln(&["cache", "clear"]).success();
    let stats: Value = serde_json::from_str(
        &ws.kiln(&["cache", "stats", "--message-format", "json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(stats["entries"], 0);
    ws.kiln(&["cache", "gc", "--max-size", "lots"])
        .failure(2, "invalid size");
}

#[test]
fn a_target_dir_shared_between_checkouts_is_not_trusted_for_caching() {
    let a = TempWorkspace::chronik();
    let b = TempWorkspace::chronik();
    let shared = a.path("target");
    a.kiln(&["build", "-q", "-p", "chronik-cli", "--target", "amd64"])
        .success();
    let lib = b.read("crates/chronik-common/src/lib.rs");
    b.write(
        "crates/chronik-common/src/lib.rs",
        &format!("{lib}\n// b\n"),
    );
    let mut cmd = kiln_command(b.root());
    cmd.args(["build", "-p", "chronik-cli", "--target", "amd64"])
        .env("CARGO_TARGET_DIR", &shared);
    let run = Run::from(cmd.output().unwrap());
    run.success();
    assert!(
        run.stderr.contains("was last used by another checkout"),
        "{}",
        run.stderr
    );
    assert!(
        blobs(&b.path(".kiln-test-cache")).is_empty(),
        "nothing was cached"
    );
}

#[test]
fn a_source_edited_during_the_build_is_not_cached() {
    let ws = TempWorkspace::chronik();
    ws.kiln(&["build", "-q", "-p", "chronik-cli"]).success();
    // A compiler wrapper that edits a source while cargo compiles that crate, as a
    // user saving a file mid-build would.
    let lib = ws.path("crates/chronik-storage/src/lib.rs");
    // An edit first, so cargo compiles chronik-storage (the copied target dir is fresh).
    let text = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, format!("{text}// edited before the build\n")).unwrap();
    let wrapper = ws.path("edit-during-build.sh");
    let script = format!(
        "#!/bin/sh\ncase \"$*\" in *chronik_storage*) echo '// saved mid-build' >> '{}';; esac\nexec \"$@\"\n",
        lib.display()
    );
    std::fs::write(&wrapper, script).unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&wrapper)
        .status()
        .unwrap();
    let mut cmd = kiln_command(ws.root());
    cmd.args(["build", "-p", "chronik-server", "--target", "amd64"])
        .env("RUSTC_WRAPPER", &wrapper);
    let run = Run::from(cmd.output().unwrap());
    run.success();
    assert!(
        run.stderr
            .contains("changed while chronik-server was being built"),
        "{}",
        run.stderr
    );
    assert_eq!(
        plan_states(&ws, &[])["chronik-server/amd64"],
        "rebuild",
        "nothing stale was cached"
    );
}
