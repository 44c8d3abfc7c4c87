//! Memory budget, process-tree peak measurement, OOM retry, metrics and the report.

use crate::common;

use common::{kiln_command, tool, Run, TempWorkspace};
use serde_json::Value;
use std::path::Path;

const MIB: u64 = 1 << 20;

fn build(ws: &TempWorkspace, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = kiln_command(ws.root());
    cmd.arg("build").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from(cmd.output().unwrap())
}

fn last_metrics(ws: &TempWorkspace) -> Value {
    serde_json::from_str(&ws.read("target/kiln/metrics/last.json")).unwrap()
}

#[test]
fn a_build_script_holding_1_gib_shows_in_the_measured_peak() {
    let ws = TempWorkspace::empty();
    ws.write(
        "Cargo.toml",
        "[package]\nname = \"holder\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    // Writes every byte of 1 GiB (so it is resident) and holds it for 2 s.
    ws.write(
        "build.rs",
        "fn main() {\n    let v = vec![7u8; 1 << 30];\n    std::thread::sleep(std::time::Duration::from_secs(2));\n    assert_eq!(std::hint::black_box(&v)[12345], 7);\n}\n",
    );
    ws.write("src/main.rs", "fn main() {}\n");
    build(&ws, &["--target", "amd64"], &[]).success();
    let m = last_metrics(&ws);
    let peak = m["peak_bytes"].as_u64().unwrap();
    // The 1 GiB plus cargo itself; within 10%.
    assert!(peak >= 1024 * MIB, "peak {} MiB", peak / MIB);
    assert!(peak <= 1024 * MIB * 11 / 10, "peak {} MiB", peak / MIB);
}

/// A workspace of two libraries that each make rustc use ~330 MiB in release mode,
/// and a binary that uses both (so cargo can compile the two at once).
fn hungry_workspace() -> TempWorkspace {
    let ws = TempWorkspace::empty();
    ws.write(
        "Cargo.toml",
        "[workspace]\nresolver = \"2\"\nmembers = [\"a\", \"b\", \"app\"]\n",
    );
    for name in ["a", "b"] {
        ws.write(
            &format!("{name}/Cargo.toml"),
            &format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"),
        );
        let mut src = String::from("pub fn big(mut x: u64) -> u64 {\n");
        for i in 0..12_000u64 {
            src.push_str(&format!(
                "    x = x.wrapping_mul({}).rotate_left({}) ^ {};\n",
                i * 2 + 3,
                i % 63 + 1,
                i * 7919
            ));
            if i % 50 == 0 {
                src.push_str(&format!(
                    "    if x % {} == 1 {{ x = x.wrapping_add({i}); }}\n",
                    i + 2
                ));
            }
        }
        src.push_str("    x\n}\n");
        ws.write(&format!("{name}/src/lib.rs"), &src);
    }
    ws.write("app/Cargo.toml", "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\na = { path = \"../a\" }\nb = { path = \"../b\" }\n");
    ws.write(
        "app/src/main.rs",
        "fn main() { println!(\"{}\", a::big(1) ^ b::big(2)); }\n",
    );
    ws
}

#[test]
fn the_budget_holds_where_unbounded_parallelism_would_not() {
    let budget = 450 * MIB;
    let ws = hungry_workspace();
    let run = build(&ws, &["--target", "amd64", "--max-memory", "450MiB"], &[]);
    run.success();
    let bounded = last_metrics(&ws);
    let peak = bounded["peak_bytes"].as_u64().unwrap();
    assert!(
        peak <= budget,
        "peak {} MiB over the {} MiB budget:\n{}",
        peak / MIB,
        budget / MIB,
        run.stderr
    );
    assert_eq!(bounded["jobs"], 1, "{bounded}");
    assert!(
        run.stderr.contains("of a 450.0 MiB budget"),
        "{}",
        run.stderr
    );

    // The same build with room for both cores: the two libraries compile at once.
    let free = hungry_workspace();
    build(&free, &["--target", "amd64", "--max-memory", "64GiB"], &[]).success();
    let unbounded = last_metrics(&free);
    let free_peak = unbounded["peak_bytes"].as_u64().unwrap();
    eprintln!(
        "peak with a 450 MiB budget: {} MiB; without: {} MiB",
        peak / MIB,
        free_peak / MIB
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores >= 2 {
        assert!(
            free_peak > budget,
            "unbounded {} MiB does not exceed the budget: the fixture is too small",
            free_peak / MIB
        );
    } else {
        // One core: nothing can compile at once, and the plan says why.
        assert_eq!(unbounded["jobs"], 1, "{unbounded}");
    }
}

#[test]
fn a_compiler_killed_once_is_retried_with_fewer_jobs() {
    let ws = TempWorkspace::chronik();
    let marker = ws.path("killed-once");
    let shim = ws.path("oom-shim.sh");
    // Like the OOM killer: SIGKILL the first rustc that compiles chronik-storage.
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\ncase \"$*\" in *\"--crate-name chronik_storage\"*)\n  if [ ! -e {m} ]; then touch {m}; kill -9 $$; fi ;;\nesac\nexec \"$@\"\n",
            m = marker.display()
        ),
    )
    .unwrap();
    tool("chmod", &["+x", shim.to_str().unwrap()], Path::new("/"));
    let lib = "crates/chronik-storage/src/lib.rs";
    ws.write(lib, &format!("{}\n// rebuilt\n", ws.read(lib)));
    let run = build(
        &ws,
        &["--target", "amd64"],
        &[("RUSTC_WRAPPER", shim.to_str().unwrap())],
    );
    run.success();
    assert!(marker.exists(), "the shim never ran");
    assert!(
        run.stderr.contains("was killed (signal 9)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("retrying `chronik-server` once with"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("1 retried after an OOM kill"),
        "{}",
        run.stderr
    );
    let m = last_metrics(&ws);
    assert_eq!(m["retries"], 1);
    ws.kiln(&["verify"]).success();
}

#[test]
fn metrics_match_their_schema_and_the_prometheus_file_parses() {
    let ws = TempWorkspace::chronik();
    let out = ws.path("metrics-here");
    build(&ws, &["--metrics-out", out.to_str().unwrap()], &[]).success();
    // A second, cached build is recorded too.
    build(&ws, &["--metrics-out", out.to_str().unwrap()], &[]).success();
    let json = out.join("last.json");
    let prom = out.join("kiln.prom");
    let schema = common::repo_root().join("docs/metrics.schema.json");
    let check = format!(
        "import json, jsonschema\n\
         from prometheus_client.parser import text_string_to_metric_families\n\
         jsonschema.validate(json.load(open('{}')), json.load(open('{}')))\n\
         names = [f.name for f in text_string_to_metric_families(open('{}').read())]\n\
         assert 'kiln_build_peak_memory_bytes' in names and 'kiln_binary_cache_hit' in names, names\n\
         print(len(names))",
        json.display(),
        schema.display(),
        prom.display()
    );
    let n = tool("python3", &["-c", &check], Path::new("/"));
    assert!(n.trim().parse::<u32>().unwrap() >= 10, "{n}");
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(m["cache_hits"], 4, "the second build restored everything");
    // Both builds are kept, by start time.
    assert!(std::fs::read_dir(&out).unwrap().count() >= 3);
}

#[test]
fn the_report_is_a_self_contained_page_with_timeline_memory_and_hits() {
    let ws = TempWorkspace::chronik();
    let lib = "crates/chronik-protocol/src/lib.rs";
    ws.write(lib, &format!("{}\n// rebuilt\n", ws.read(lib)));
    build(&ws, &[], &[]).success();
    let m = last_metrics(&ws);
    let crates: usize = m["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["crates"].as_array().unwrap().len())
        .sum();
    assert!(crates > 0, "cargo's timings were read: {m}");
    let copies = std::fs::read_dir(ws.path("target/cargo-timings"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("cargo-timing-"))
        .count();
    assert_eq!(
        copies, 0,
        "kiln's runs leave no timestamped timing reports behind"
    );
    let report = ws.kiln(&["report"]);
    report.success();
    // Where the time went, in the terminal: each cargo invocation with its CPU.
    assert!(
        report.stderr.lines().any(|l| l.contains("Time")
            && l.contains("cargo: chronik-server")
            && l.contains("idle")),
        "{}",
        report.stderr
    );
    // And crate by crate: the slowest first, at most ten.
    let slowest: Vec<f64> = report
        .stderr
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("Slowest"))
        .map(|l| {
            l.trim_start()
                .split('s')
                .next()
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        !slowest.is_empty() && slowest.len() <= 10,
        "{}",
        report.stderr
    );
    assert!(slowest.windows(2).all(|w| w[0] >= w[1]), "{slowest:?}");
    let html = ws.read("target/kiln/report.html");
    for needle in [
        "Where the time went",
        "<polyline",
        "budget",
        "chronik-protocol",
        "chronik-server",
        "chronik-cli",
        "<rect",
    ] {
        assert!(html.contains(needle), "{needle} missing");
    }
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"));
}
