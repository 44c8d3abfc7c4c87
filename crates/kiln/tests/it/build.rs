//! `kiln build` and `kiln verify` end to end on a copy of examples/chronik.

use crate::common;

use common::{built_example, tool, Run, TempWorkspace};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BINS: [&str; 2] = ["chronik-cli", "chronik-server"];

#[test]
fn builds_static_binaries_for_both_arches() {
    let root = &built_example().root;
    for (arch, machine) in [("amd64", "x86-64"), ("arm64", "ARM aarch64")] {
        for bin in BINS {
            let path = root.join(format!("artifacts/linux/{arch}/{bin}"));
            let file = tool("file", &["-b", path.to_str().unwrap()], root);
            assert!(
                file.contains("ELF 64-bit") && file.contains(machine),
                "{bin} {arch}: {file}"
            );
            assert!(
                file.contains("statically linked") || file.contains("static-pie"),
                "{bin} {arch}: {file}"
            );
            assert!(
                !file.contains("interpreter"),
                "{bin} {arch} has an interpreter: {file}"
            );
            assert!(
                !file.contains("not stripped"),
                "{bin} {arch} is not stripped: {file}"
            );
        }
    }
}

#[test]
fn binaries_run_natively_and_under_qemu() {
    let root = &built_example().root;
    let amd = root.join("artifacts/linux/amd64/chronik-server");
    let out = tool(amd.to_str().unwrap(), &["--version"], root);
    assert_eq!(out.trim(), "chronik-server 0.3.1");
    let arm = root.join("artifacts/linux/arm64/chronik-server");
    let out = tool(
        "qemu-aarch64-static",
        &[arm.to_str().unwrap(), "--version"],
        root,
    );
    assert_eq!(out.trim(), "chronik-server 0.3.1");
    let cli = root.join("artifacts/linux/arm64/chronik-cli");
    let out = tool(
        "qemu-aarch64-static",
        &[cli.to_str().unwrap(), "--version"],
        root,
    );
    assert_eq!(out.trim(), "chronik-cli 0.3.1");
}

#[test]
fn sidecars_are_accepted_by_sha256sum_and_version_files_name_the_version() {
    let root = &built_example().root;
    for arch in ["amd64", "arm64"] {
        let dir = root.join(format!("artifacts/linux/{arch}"));
        let out = tool(
            "sha256sum",
            &["-c", "chronik-cli.sha256", "chronik-server.sha256"],
            &dir,
        );
        assert_eq!(out.matches(": OK").count(), 2, "{out}");
        for bin in BINS {
            assert_eq!(
                std::fs::read_to_string(dir.join(format!("{bin}.version"))).unwrap(),
                "v0.3.1\n"
            );
        }
    }
}

#[test]
fn checksums_json_lists_exactly_the_four_artifacts_with_true_hashes() {
    let root = &built_example().root;
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("artifacts/checksums.json")).unwrap(),
    )
    .unwrap();
    let artifacts = json["artifacts"].as_array().unwrap();
    let paths: Vec<&str> = artifacts
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "linux/amd64/chronik-cli",
            "linux/amd64/chronik-server",
            "linux/arm64/chronik-cli",
            "linux/arm64/chronik-server"
        ]
    );
    for a in artifacts {
        let path = root.join("artifacts").join(a["path"].as_str().unwrap());
        let sum = tool("sha256sum", &[path.to_str().unwrap()], root);
        assert_eq!(
            a["sha256"].as_str().unwrap(),
            sum.split_whitespace().next().unwrap()
        );
        assert_eq!(
            a["size"].as_u64().unwrap(),
            std::fs::metadata(&path).unwrap().len()
        );
        assert_eq!(a["version"], "0.3.1");
        assert_eq!(a["profile"], "release");
        assert!(a["rustc"].as_str().unwrap().starts_with("rustc "));
        let triple = if a["arch"] == "amd64" {
            "x86_64-unknown-linux-musl"
        } else {
            "aarch64-unknown-linux-musl"
        };
        assert_eq!(a["target"], triple);
    }
    // chronik-server links the C checksum code, so auto picks zig, for the whole
    // workspace: chronik-cli shares crates with it and is built the same way.
    let backend = |p: &str| artifacts.iter().find(|a| a["path"] == p).unwrap()["backend"].clone();
    assert_eq!(backend("linux/amd64/chronik-server"), "zig");
    assert_eq!(backend("linux/arm64/chronik-cli"), "zig");
}

#[test]
fn checksums_json_snapshot() {
    let root = &built_example().root;
    let text = std::fs::read_to_string(root.join("artifacts/checksums.json")).unwrap();
    // The file as written (field order included), with the values that vary redacted.
    let redacted: Vec<String> = text
        .lines()
        .map(|l| match l.split_once(": ") {
            Some((k, _))
                if [
                    "\"sha256\"",
                    "\"size\"",
                    "\"rustc\"",
                    "\"commit\"",
                    "\"key\"",
                ]
                .contains(&k.trim()) =>
            {
                format!("{k}: [redacted]")
            }
            _ => l.to_string(),
        })
        .collect();
    insta::assert_snapshot!(redacted.join("\n"));
}

#[test]
fn json_messages_report_every_artifact_and_finish() {
    let events = &built_example().events;
    let reasons: Vec<&str> = events
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| **r == "artifact-written").count(),
        4
    );
    assert!(reasons.contains(&"crate-compiled"));
    let last = events.last().unwrap();
    assert_eq!(last["reason"], "finished");
    assert_eq!(last["success"], true);
    assert_eq!(last["artifacts"], 4);
}

#[test]
fn verify_passes_then_fails_after_a_flipped_byte() {
    let ws = TempWorkspace::built_chronik();
    ws.kiln(&["verify"]).success();
    let path = ws.path("artifacts/linux/arm64/chronik-server");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let run = ws.kiln(&["verify"]);
    run.failure(3, "linux/arm64/chronik-server");
    assert!(
        !run.stderr.contains("linux/amd64/chronik-server"),
        "only the damaged file is named:\n{}",
        run.stderr
    );
}

#[test]
fn verify_without_a_store_says_to_build_first() {
    let ws = TempWorkspace::chronik();
    ws.kiln(&["verify"]).failure(2, "kiln build");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn chronik_server_serves_kafka_and_http() {
    let root = &built_example().root;
    let data = tempfile::tempdir().unwrap();
    let (kafka, http) = (free_port(), free_port());
    let mut server = Command::new(root.join("artifacts/linux/amd64/chronik-server"))
        .args([
            "--bind-addr",
            "127.0.0.1",
            "--kafka-port",
            &kafka.to_string(),
            "--http-port",
            &http.to_string(),
        ])
        .args(["--data-dir", data.path().to_str().unwrap(), "standalone"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ping = Command::new(root.join("artifacts/linux/amd64/chronik-cli"))
        .args(["ping", &format!("127.0.0.1:{kafka}")])
        .output()
        .unwrap();
    let ping_out = String::from_utf8_lossy(&ping.stdout);
    let mut conn = TcpStream::connect(("127.0.0.1", http)).unwrap();
    conn.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut health = String::new();
    conn.read_to_string(&mut health).unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(ping.status.success(), "{ping:?}");
    assert!(
        ping_out.contains("correlation_id=42 error_code=0"),
        "{ping_out}"
    );
    assert!(ping_out.contains("api_key=18"), "{ping_out}");
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
    assert!(
        data.path().join("server.log").is_file(),
        "server writes its segment under --data-dir"
    );
}

/// `kiln plan -v` shows each cargo invocation exactly as `kiln build -v` runs it:
/// program, arguments and kiln's environment (the plan owns the whole command).
#[test]
fn plan_shows_the_commands_build_runs() {
    let ws = TempWorkspace::chronik();
    let commands = |run: &Run, reason: &str| -> std::collections::BTreeMap<String, String> {
        run.success();
        run.stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["reason"] == reason)
            .map(|e| {
                let package = match reason {
                    "plan-step" => e["package"].as_str().unwrap().to_string(),
                    _ => e["packages"][0].as_str().unwrap().to_string(),
                };
                (package, e["command"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let planned = commands(
        &ws.kiln(&["plan", "-v", "--message-format", "json"]),
        "plan-step",
    );
    let ran = commands(
        &ws.kiln(&["build", "-v", "--message-format", "json"]),
        "build-started",
    );
    assert_eq!(planned.len(), 2, "{planned:?}");
    assert_eq!(planned, ran);
    for command in planned.values() {
        assert!(
            command.contains("--timings") && command.contains("--target"),
            "{command}"
        );
    }
}
