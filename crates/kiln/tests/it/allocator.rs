//! The allocator of shipped binaries: musl's `malloc` is noted, `allocator =
//! "mimalloc"` replaces it without a code change (proved by mimalloc's own stats from
//! the running binary, natively and under qemu), and glibc targets build dynamically
//! linked binaries against a pinned glibc that `kiln image` won't put on scratch.

use crate::common::{self, tool, TempWorkspace};
use serde_json::Value;
use std::process::Command;

/// The peak number of mimalloc segments the binary reports at exit with
/// `MIMALLOC_SHOW_STATS=1`, `None` when mimalloc isn't in it. A segment is only ever
/// taken for an allocation, so a peak above zero means `malloc` went to mimalloc.
fn mimalloc_segments(program: &str, args: &[&str]) -> Option<u64> {
    let out = Command::new(program)
        .args(args)
        .env("MIMALLOC_SHOW_STATS", "1")
        .output()
        .unwrap_or_else(|e| panic!("`{program}`: {e}"));
    assert!(out.status.success(), "{program} {args:?} failed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.contains("heap stats") {
        return None;
    }
    let line = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("segments:"))
        .unwrap_or_else(|| panic!("no segments line in:\n{stderr}"));
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn musl_malloc_is_noted_once_per_binary_and_mimalloc_replaces_it_in_both_arches() {
    let ws = TempWorkspace::chronik();
    let build = ws.kiln(&["build"]);
    build.success();
    let notes: Vec<&str> = build
        .stderr
        .lines()
        .filter(|l| l.contains("musl's malloc"))
        .collect();
    assert_eq!(notes.len(), 1, "{}", build.stderr);
    assert!(
        notes[0].contains("`chronik-server`") && notes[0].contains("`chronik-cli`"),
        "{}",
        notes[0]
    );

    ws.write(
        "Cargo.toml",
        &format!(
            "{}\n[workspace.metadata.kiln.allocator]\nchronik-cli = \"mimalloc\"\n",
            ws.read("Cargo.toml")
        ),
    );
    // The allocator is in the CLI's keys, not in the server's.
    let states = common::plan_states(&ws.kiln(&["plan", "--message-format", "json"]));
    for arch in ["amd64", "arm64"] {
        assert_eq!(
            states[&format!("chronik-cli/{arch}")],
            "rebuild",
            "{states:?}"
        );
        assert_eq!(
            states[&format!("chronik-server/{arch}")],
            "fresh",
            "{states:?}"
        );
    }
    let plan = ws.kiln(&["plan"]);
    assert!(
        plan.stdout.contains("because the allocator added"),
        "{}",
        plan.stdout
    );
    let note = plan
        .stderr
        .lines()
        .find(|l| l.contains("musl's malloc"))
        .expect("the server still uses musl's malloc");
    assert!(!note.contains("chronik-cli"), "{note}");
    ws.kiln(&["build"]).success();

    let amd = ws.path("artifacts/linux/amd64/chronik-cli");
    let arm = ws.path("artifacts/linux/arm64/chronik-cli");
    let native = mimalloc_segments(amd.to_str().unwrap(), &["--version"]);
    assert!(native.is_some_and(|n| n > 0), "amd64: {native:?}");
    let emulated = mimalloc_segments("qemu-aarch64-static", &[arm.to_str().unwrap(), "--version"]);
    assert!(emulated.is_some_and(|n| n > 0), "arm64: {emulated:?}");
    let server = ws.path("artifacts/linux/amd64/chronik-server");
    assert_eq!(
        mimalloc_segments(server.to_str().unwrap(), &["--version"]),
        None,
        "the server keeps musl's malloc"
    );
    // Still static, still runs, still carries its dependency list.
    let out = tool(amd.to_str().unwrap(), &["--version"], ws.root());
    assert_eq!(out.trim(), "chronik-cli 0.3.1");
    let file = tool("file", &[amd.to_str().unwrap()], ws.root());
    assert!(
        file.contains("statically linked") || file.contains("static-pie"),
        "{file}"
    );
    ws.kiln(&["verify"]).success();
    let c: Value = serde_json::from_str(&ws.read("artifacts/checksums.json")).unwrap();
    for a in c["artifacts"].as_array().unwrap() {
        let expected = (a["binary"] == "chronik-cli").then_some("mimalloc 2.3.2");
        assert_eq!(a["allocator"].as_str(), expected, "{a}");
    }
    // A wrapper of the user's takes the place kiln links the allocator from.
    let mut cmd = common::kiln_command(ws.root());
    cmd.arg("plan").env("RUSTC_WRAPPER", "/usr/bin/env");
    common::Run::from(cmd.output().unwrap()).failure(2, "needs kiln as the rustc wrapper");
}

/// A pure-Rust workspace links with plain cargo and rust-lld (Rust's own musl
/// `libc.a`), where the order on the link line decides which malloc wins.
#[test]
fn mimalloc_replaces_musls_malloc_when_rust_lld_links_too() {
    let ws = TempWorkspace::pure_rust_chronik();
    ws.write(
        "Cargo.toml",
        &format!(
            "{}\n[workspace.metadata.kiln]\nallocator = \"mimalloc\"\n",
            ws.read("Cargo.toml")
        ),
    );
    let run = ws.kiln(&["build", "--target", "amd64", "--message-format", "json"]);
    run.success();
    assert!(
        run.stdout.contains("\"backend\":\"cargo\""),
        "{}",
        run.stdout
    );
    let bin = ws.path("artifacts/linux/amd64/chronik-cli");
    let segments = mimalloc_segments(bin.to_str().unwrap(), &["--version"]);
    assert!(segments.is_some_and(|n| n > 0), "{segments:?}");
}

#[test]
fn glibc_targets_link_against_the_pinned_glibc_and_need_a_glibc_base_image() {
    let ws = TempWorkspace::chronik();
    ws.kiln(&["build", "--target", "amd64-gnu", "--target", "arm64-gnu"])
        .success();
    let c: Value = serde_json::from_str(&ws.read("artifacts/checksums.json")).unwrap();
    let mut targets: Vec<&str> = c["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["target"].as_str().unwrap())
        .collect();
    targets.sort();
    targets.dedup();
    assert_eq!(
        targets,
        [
            "aarch64-unknown-linux-gnu.2.28",
            "x86_64-unknown-linux-gnu.2.28"
        ]
    );
    let amd = ws.path("artifacts/linux/amd64/chronik-cli");
    let arm = ws.path("artifacts/linux/arm64/chronik-cli");
    let out = tool(amd.to_str().unwrap(), &["--version"], ws.root());
    assert_eq!(out.trim(), "chronik-cli 0.3.1");
    // arm64 under qemu, with Debian's arm64 glibc as its root for the loader.
    let out = tool(
        "qemu-aarch64-static",
        &[
            "-L",
            "/usr/aarch64-linux-gnu",
            arm.to_str().unwrap(),
            "--version",
        ],
        ws.root(),
    );
    assert_eq!(out.trim(), "chronik-cli 0.3.1");
    for (bin, loader) in [
        (&amd, "ld-linux-x86-64.so.2"),
        (&arm, "ld-linux-aarch64.so.1"),
    ] {
        let bin = bin.to_str().unwrap();
        let headers = tool("readelf", &["-lW", bin], ws.root());
        assert!(headers.contains(loader), "dynamically linked: {headers}");
        // Every glibc symbol version it needs is at most the pinned 2.28.
        let versions = tool("readelf", &["-VW", bin], ws.root());
        let needed: Vec<(u32, u32)> = versions
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("GLIBC_"))
            .filter_map(|v| {
                let mut p = v.split('.');
                Some((p.next()?.parse().ok()?, p.next()?.parse().ok()?))
            })
            .collect();
        assert!(!needed.is_empty(), "{versions}");
        assert!(needed.iter().all(|v| *v <= (2, 28)), "{bin}: {needed:?}");
    }
    ws.kiln(&["verify"]).success();

    // Not on scratch: no C library there. The message names the base to use.
    ws.kiln(&["image", "--platform", "linux/amd64"])
        .failure(2, "glibc binary");
    let run = ws.kiln(&["image", "--platform", "linux/amd64"]);
    assert!(
        run.stderr.contains("debian:bookworm-slim"),
        "{}",
        run.stderr
    );
    ws.kiln(&["dockerfile"]).failure(2, "glibc binary");

    // musl and glibc for one arch would overwrite each other in the store.
    ws.kiln(&["plan", "--target", "amd64", "--target", "amd64-gnu"])
        .failure(2, "would both write to `linux/amd64`");
    ws.kiln(&["plan", "--target", "x86_64-unknown-linux-gnu.2.x"])
        .failure(2, "unknown target");
}
