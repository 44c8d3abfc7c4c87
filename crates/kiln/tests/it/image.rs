//! `kiln image` and `kiln dockerfile` against real tools: podman (runc), the CNCF
//! distribution registry (Debian's `docker-registry`) on loopback, skopeo, qemu.

use crate::common;

use common::{
    built_example, free_port, kiln_command, tool, wait_for_port, Registry, Run, TempWorkspace,
};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `kiln <args>` in `ws` with a fast retry backoff and no registry credentials from
/// the environment or the user's docker config.
fn kiln(ws: &TempWorkspace, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = kiln_command(ws.root());
    cmd.args(args)
        .env("KILN_REGISTRY_BACKOFF_MS", "20")
        .env("DOCKER_CONFIG", ws.path(".no-docker-config"))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env_remove("REGISTRY_USERNAME")
        .env_remove("REGISTRY_PASSWORD")
        .env_remove("GITHUB_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from(cmd.output().unwrap())
}

/// `skopeo inspect --raw` of a plain-HTTP registry reference, `None` when it fails.
fn skopeo_inspect(reference: &str) -> Option<String> {
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw", reference])
        .output()
        .expect("`skopeo` is needed by the tests (.ci/run installs it)");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The raw manifest or index at `reference`, which must exist.
#[track_caller]
fn skopeo_raw(reference: &str) -> String {
    skopeo_inspect(reference).unwrap_or_else(|| panic!("skopeo inspect {reference} failed"))
}

fn podman(args: &[&str]) -> String {
    tool("podman", args, Path::new("/"))
}

/// A container running chronik-server on loopback ports; removed on drop.
struct Container {
    id: String,
    http: u16,
    kafka: u16,
}

impl Container {
    fn run(image: &str, extra: &[&str]) -> Self {
        let (kafka, http) = (free_port(), free_port());
        let (k, h) = (kafka.to_string(), http.to_string());
        let mut args = vec!["run", "-d", "--network", "host"];
        args.extend_from_slice(extra);
        args.push(image);
        args.extend_from_slice(&[
            "--bind-addr",
            "127.0.0.1",
            "--data-dir",
            "/data",
            "--kafka-port",
            &k,
            "--http-port",
            &h,
            "standalone",
        ]);
        let id = podman(&args).trim().to_string();
        let c = Container { id, http, kafka };
        wait_for_port(http);
        c
    }

    fn health(&self) -> String {
        let mut conn = TcpStream::connect(("127.0.0.1", self.http)).unwrap();
        conn.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        conn.read_to_string(&mut out).unwrap();
        out
    }

    fn uid(&self) -> String {
        let pid = podman(&["inspect", "-f", "{{.State.Pid}}", &self.id]);
        let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
        status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.id])
            .output();
    }
}

/// Asserts the chronik image works: uid 1000, /data written, /health and ApiVersions.
fn check_running(c: &Container) {
    assert_eq!(c.uid(), "1000", "runs as the image's user");
    let health = c.health();
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
    let cli = built_example()
        .root
        .join("artifacts/linux/amd64/chronik-cli");
    let ping = tool(
        cli.to_str().unwrap(),
        &["ping", &format!("127.0.0.1:{}", c.kafka)],
        Path::new("/"),
    );
    assert!(
        ping.contains("error_code=0") && ping.contains("api_key=18"),
        "{ping}"
    );
    let copy = tempfile::tempdir().unwrap();
    let dest = copy.path().join("data");
    podman(&["cp", &format!("{}:/data", c.id), dest.to_str().unwrap()]);
    assert!(
        dest.join("server.log").is_file(),
        "the server wrote under /data"
    );
}

/// The layout's index, and each platform's manifest and config.
fn read_layout(layout: &Path) -> (Value, Vec<(String, Value, Value)>) {
    let blob = |d: &str| -> Value {
        let p = layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let top: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let index = blob(top["manifests"][0]["digest"].as_str().unwrap());
    let platforms = common::images(&index)
        .map(|m| {
            let manifest = blob(m["digest"].as_str().unwrap());
            let config = blob(manifest["config"]["digest"].as_str().unwrap());
            (
                m["platform"]["architecture"].as_str().unwrap().to_string(),
                manifest,
                config,
            )
        })
        .collect();
    (index, platforms)
}

#[test]
fn the_image_runs_under_podman_as_uid_1000_and_serves() {
    let ws = TempWorkspace::built_chronik();
    let archive = ws.path("chronik.tar");
    let run = kiln(
        &ws,
        &[
            "image",
            "--output",
            &format!("oci-archive:{}", archive.display()),
        ],
        &[],
    );
    run.success();
    assert!(
        run.stderr.contains("users, /tmp, volumes"),
        "{}",
        run.stderr
    );
    let id = podman(&["pull", "-q", &format!("oci-archive:{}", archive.display())]);
    let c = Container::run(id.trim(), &[]);
    check_running(&c);
    let (_, platforms) = read_layout(&ws.path("target/kiln/image"));
    let (_, _, config) = &platforms[0];
    assert_eq!(config["config"]["User"], "1000:1000");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["chronik-server"])
    );
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!([
            "--bind-addr",
            "0.0.0.0",
            "--data-dir",
            "/data",
            "standalone"
        ])
    );
    assert_eq!(
        config["config"]["ExposedPorts"],
        serde_json::json!({"9092/tcp": {}, "9093/tcp": {}})
    );
    assert_eq!(
        config["config"]["Volumes"],
        serde_json::json!({"/data": {}})
    );
}

#[test]
fn the_arm64_binary_in_the_image_runs_under_qemu() {
    let ws = TempWorkspace::built_chronik();
    let run = kiln(&ws, &["image", "--message-format", "json"], &[]);
    run.success();
    let event: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(event["reason"], "image-written", "{event}");
    assert_eq!(event["platforms"].as_array().unwrap().len(), 2);
    let layout = ws.path("target/kiln/image");
    let (index, platforms) = read_layout(&layout);
    let arches: Vec<&str> = common::images(&index)
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"]);
    assert_eq!(
        event["digest"],
        serde_json::from_str::<Value>(&ws.read("target/kiln/image/index.json")).unwrap()
            ["manifests"][0]["digest"]
    );
    let (_, manifest, config) = platforms.iter().find(|(a, _, _)| a == "arm64").unwrap();
    assert_eq!(config["architecture"], "arm64");
    let top = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let out = tempfile::tempdir().unwrap();
    tool(
        "tar",
        &[
            "-xzf",
            layout.join("blobs/sha256").join(&top).to_str().unwrap(),
            "-C",
            out.path().to_str().unwrap(),
        ],
        Path::new("/"),
    );
    let cli = out.path().join("usr/local/bin/chronik-cli");
    let listing = tool(
        "tar",
        &[
            "-tvzf",
            layout.join("blobs/sha256").join(&top).to_str().unwrap(),
        ],
        Path::new("/"),
    );
    assert!(
        listing.contains("-rwxr-xr-x 0/0"),
        "root-owned, executable:\n{listing}"
    );
    let version = tool(
        "qemu-aarch64-static",
        &[cli.to_str().unwrap(), "--version"],
        Path::new("/"),
    );
    assert_eq!(version.trim(), "chronik-cli 0.3.1");
    let file = tool("file", &["-b", cli.to_str().unwrap()], Path::new("/"));
    assert!(file.contains("ARM aarch64"), "{file}");
}

#[test]
fn the_same_artifacts_give_byte_identical_images() {
    let ws = TempWorkspace::built_chronik();
    let (a, b) = (ws.path("a.tar"), ws.path("b.tar"));
    kiln(
        &ws,
        &["image", "--output", &format!("oci-archive:{}", a.display())],
        &[],
    )
    .success();
    let first = common::snapshot_dir(&ws.path("target/kiln/image"));
    // A second run with an empty layer cache compresses everything again.
    std::fs::remove_dir_all(ws.path(".kiln-test-cache")).unwrap();
    kiln(
        &ws,
        &["image", "--output", &format!("oci-archive:{}", b.display())],
        &[],
    )
    .success();
    let second = common::snapshot_dir(&ws.path("target/kiln/image"));
    assert_eq!(first.len(), second.len());
    assert!(first == second, "layout differs between runs");
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "archives differ"
    );
    // And a third run takes its layers from the layer cache.
    let run = kiln(&ws, &["image"], &[]);
    run.success();
    assert!(run.stderr.contains("(cached)"), "{}", run.stderr);
    assert!(common::snapshot_dir(&ws.path("target/kiln/image")) == first);
}

#[test]
fn push_to_a_registry_then_pull_and_run_and_a_second_push_uploads_nothing() {
    let reg = Registry::start(None);
    let ws = TempWorkspace::built_chronik();
    let reference = format!("{}/chronik/server:latest", reg.host());
    let run = kiln(
        &ws,
        &[
            "image",
            "--push",
            &reference,
            "--tag",
            "rev-abc",
            "--insecure",
        ],
        &[],
    );
    run.success();
    assert!(run.stderr.contains("5 blobs uploaded"), "{}", run.stderr);
    let raw = skopeo_raw(&format!("docker://{reference}"));
    let index: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let mut platforms: Vec<String> = common::images(&index)
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    platforms.sort();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let tagged = skopeo_raw(&format!("docker://{}/chronik/server:rev-abc", reg.host()));
    assert_eq!(tagged, raw, "both tags point at the same index");

    // A release tag of the same artifacts is a promotion by digest: nothing uploaded
    // but the manifests, and the tag names the very index the first push made.
    let again = kiln(
        &ws,
        &[
            "image",
            "--push",
            &reference,
            "--tag",
            "0.3.1",
            "--insecure",
        ],
        &[],
    );
    again.success();
    assert!(
        again.stderr.contains("0 blobs uploaded"),
        "{}",
        again.stderr
    );
    let released = skopeo_raw(&format!("docker://{}/chronik/server:0.3.1", reg.host()));
    assert_eq!(released, raw, "the release tag is the same digest");

    let id = podman(&[
        "pull",
        "-q",
        "--tls-verify=false",
        "--platform",
        "linux/amd64",
        &format!("docker://{reference}"),
    ]);
    let c = Container::run(id.trim(), &[]);
    check_running(&c);
}

#[test]
fn a_registry_with_auth_rejects_bad_credentials_and_accepts_good_ones() {
    let reg = Registry::start(Some(("kiln", "s3cret-pass")));
    let ws = TempWorkspace::built_chronik();
    let reference = format!("{}/chronik:auth", reg.host());
    let args = ["image", "--push", &reference, "--insecure"];
    kiln(&ws, &args, &[]).failure(5, "requires credentials");
    let bad = kiln(
        &ws,
        &args,
        &[
            ("REGISTRY_USERNAME", "kiln"),
            ("REGISTRY_PASSWORD", "wrong-pass"),
        ],
    );
    bad.failure(
        5,
        "refused the credentials of `kiln` from REGISTRY_USERNAME/REGISTRY_PASSWORD",
    );
    assert!(!bad.stderr.contains("wrong-pass") && !bad.stdout.contains("wrong-pass"));
    // Credentials from a docker config file work too.
    let auth = base64_encode(b"kiln:s3cret-pass");
    ws.write(
        ".docker/config.json",
        &format!(
            "{{\"auths\": {{\"{}\": {{\"auth\": \"{auth}\"}}}}}}",
            reg.host()
        ),
    );
    let docker = ws.path(".docker");
    let good = kiln(&ws, &args, &[("DOCKER_CONFIG", docker.to_str().unwrap())]);
    good.success();
    assert!(!good.stderr.contains("s3cret") && !good.stdout.contains("s3cret"));
    let env = kiln(
        &ws,
        &args,
        &[
            ("REGISTRY_USERNAME", "kiln"),
            ("REGISTRY_PASSWORD", "s3cret-pass"),
        ],
    );
    env.success();
    assert!(env.stderr.contains("0 blobs uploaded"), "{}", env.stderr);
}

fn base64_encode(data: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A one-request-per-connection HTTP proxy to `upstream` that answers 500 to blob
/// upload PUTs while `failures` is above zero (or always, when `always`).
struct FaultyProxy {
    port: u16,
    injected: Arc<AtomicUsize>,
}

impl FaultyProxy {
    fn start(upstream: u16, failures: usize, always: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let injected = Arc::new(AtomicUsize::new(0));
        let count = injected.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let count = count.clone();
                std::thread::spawn(move || {
                    let _ = proxy_one(conn, upstream, failures, always, &count);
                });
            }
        });
        FaultyProxy { port, injected }
    }
}

fn proxy_one(
    mut client: TcpStream,
    upstream: u16,
    failures: usize,
    always: bool,
    injected: &AtomicUsize,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let length: usize = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    client.read_exact(&mut body)?;
    let request_line = text.lines().next().unwrap_or_default().to_string();
    let is_blob_put = request_line.starts_with("PUT ") && request_line.contains("/blobs/uploads/");
    if is_blob_put && (always || injected.load(Ordering::SeqCst) < failures) {
        injected.fetch_add(1, Ordering::SeqCst);
        client.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\nConnection: close\r\n\r\noops\n")?;
        return Ok(());
    }
    let head: String = text
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect::<Vec<_>>()
        .join("\r\n");
    let head = head.trim_end().to_string() + "\r\nConnection: close\r\n\r\n";
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.write_all(head.as_bytes())?;
    up.write_all(&body)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    client.write_all(&answer)
}

#[test]
fn a_failing_blob_upload_is_retried_and_a_failed_push_leaves_no_tag() {
    let reg = Registry::start(None);
    let ws = TempWorkspace::built_chronik();

    // One 500 on a blob upload: retried, the push succeeds.
    let flaky = FaultyProxy::start(reg.port, 1, false);
    let reference = format!("127.0.0.1:{}/chronik:flaky", flaky.port);
    kiln(&ws, &["image", "--push", &reference, "--insecure"], &[]).success();
    assert_eq!(
        flaky.injected.load(Ordering::SeqCst),
        1,
        "the fault was injected"
    );
    skopeo_raw(&format!("docker://{}/chronik:flaky", reg.host()));

    // Every blob upload fails: a clear error after the retries, and no tag.
    let broken = FaultyProxy::start(reg.port, 0, true);
    let reference = format!("127.0.0.1:{}/chronik:broken", broken.port);
    let run = kiln(
        &ws,
        &[
            "image",
            "--push",
            &reference,
            "--insecure",
            "--base",
            "scratch",
        ],
        &[("SOURCE_DATE_EPOCH", "1700000001")],
    );
    run.failure(5, "answered 500 to the upload of blob sha256:");
    assert_eq!(broken.injected.load(Ordering::SeqCst), 4, "tried 4 times");
    assert!(
        skopeo_inspect(&format!("docker://{}/chronik:broken", reg.host())).is_none(),
        "a failed push left a tag"
    );

    // Nothing listening: a clear error naming the registry.
    let down = format!("127.0.0.1:{}/chronik:down", free_port());
    kiln(&ws, &["image", "--push", &down, "--insecure"], &[])
        .failure(5, "cannot reach registry `127.0.0.1:");
}

#[test]
fn a_missing_artifact_for_one_arch_is_a_clear_error() {
    let ws = TempWorkspace::chronik();
    kiln(&ws, &["build", "--target", "amd64"], &[]).success();
    let run = kiln(&ws, &["image"], &[]);
    run.failure(2, "`chronik-server` has no artifact for linux/arm64");
    assert!(
        run.stderr.contains("kiln build --target arm64"),
        "{}",
        run.stderr
    );
    assert!(!ws.path("target/kiln/image").exists());
    kiln(&ws, &["image", "--platform", "amd64"], &[]).success();
    // Insecure pushes go only to this machine.
    kiln(
        &ws,
        &[
            "image",
            "--platform",
            "amd64",
            "--push",
            "registry.example.com/x:1",
            "--insecure",
        ],
        &[],
    )
    .failure(2, "plain HTTP is only used for registries on this machine");
}

#[test]
fn a_base_image_from_the_registry_goes_under_kilns_layers() {
    let reg = Registry::start(None);
    // A small two-arch base of our own, built and pushed with podman.
    let ctx = tempfile::tempdir().unwrap();
    // Per-arch content: podman 4 keeps one entry when both platforms give the same image.
    for arch in ["amd64", "arm64"] {
        std::fs::write(
            ctx.path().join(format!("marker-{arch}")),
            format!("base for {arch}\n"),
        )
        .unwrap();
    }
    std::fs::write(
        ctx.path().join("Containerfile"),
        "FROM scratch\nARG TARGETARCH\nCOPY marker-${TARGETARCH} /etc/base-marker\nENV BASE_VAR=1\n",
    )
    .unwrap();
    let name = format!("localhost/kiln-test-base-{}", reg.port);
    podman(&[
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/arm64",
        "--manifest",
        &name,
        ctx.path().to_str().unwrap(),
    ]);
    let base_ref = format!("{}/base:1", reg.host());
    podman(&[
        "manifest",
        "push",
        "--all",
        "--tls-verify=false",
        &name,
        &format!("docker://{base_ref}"),
    ]);
    let _ = Command::new("podman")
        .args(["manifest", "rm", &name])
        .output();

    let ws = TempWorkspace::built_chronik();
    let pushed = format!("{}/onbase:1", reg.host());
    kiln(
        &ws,
        &[
            "image",
            "--base",
            &base_ref,
            "--insecure",
            "--push",
            &pushed,
        ],
        &[],
    )
    .success();
    let (index, platforms) = read_layout(&ws.path("target/kiln/image"));
    assert_eq!(
        index["annotations"]["org.opencontainers.image.base.name"],
        format!("{base_ref}")
    );
    assert!(index["annotations"]["org.opencontainers.image.base.digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    for (arch, manifest, config) in &platforms {
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 3, "{arch}: base, users/volumes, binaries");
        let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
        assert_eq!(diff_ids.len(), 3);
        let env = config["config"]["Env"].to_string();
        assert!(
            env.contains("BASE_VAR=1") && env.contains("RUST_LOG=info"),
            "{env}"
        );
        // The bottom layer is the base's and holds its file.
        let bottom = layers[0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        let listing = tool(
            "tar",
            &[
                "-tzf",
                ws.path("target/kiln/image/blobs/sha256")
                    .join(bottom)
                    .to_str()
                    .unwrap(),
            ],
            Path::new("/"),
        );
        assert!(listing.contains("etc/base-marker"), "{arch}: {listing}");
    }
    let id = podman(&[
        "pull",
        "-q",
        "--tls-verify=false",
        "--platform",
        "linux/amd64",
        &format!("docker://{pushed}"),
    ]);
    let c = Container::run(id.trim(), &[]);
    check_running(&c);
    let marker = tempfile::tempdir().unwrap();
    podman(&[
        "cp",
        &format!("{}:/etc/base-marker", c.id),
        marker.path().to_str().unwrap(),
    ]);
    assert!(marker.path().join("base-marker").is_file());
}

#[test]
fn dockerfile_snapshots() {
    let ws = TempWorkspace::empty();
    common::copy_tree(
        &common::repo_root().join("examples/chronik"),
        ws.root(),
        &["target", "artifacts"],
    );
    kiln(&ws, &["dockerfile"], &[]).success();
    insta::assert_snapshot!("dockerfile_scratch", ws.read("Dockerfile"));
    insta::assert_snapshot!("dockerignore", ws.read(".dockerignore"));
    let rootfs = ws.root().join("kiln-rootfs.tar");
    let passwd = tool(
        "tar",
        &["-xOf", rootfs.to_str().unwrap(), "etc/passwd"],
        ws.root(),
    );
    assert!(
        passwd.contains("chronik:x:1000:1000:chronik:/data:"),
        "{passwd}"
    );
    // Modes and owners travel in the tar: git keeps neither.
    let listing = tool("tar", &["-tvf", rootfs.to_str().unwrap()], ws.root());
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("drwxrwxrwt 0/0") && l.ends_with(" tmp/")),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("drwxr-xr-x 1000/1000") && l.ends_with(" data/")),
        "{listing}"
    );
    let again = std::fs::read(&rootfs).unwrap();
    kiln(&ws, &["dockerfile"], &[]).success();
    assert_eq!(
        std::fs::read(&rootfs).unwrap(),
        again,
        "the same settings give the same bytes"
    );
    kiln(&ws, &["dockerfile", "--base", "debian:bookworm-slim"], &[]).success();
    insta::assert_snapshot!("dockerfile_debian", ws.read("Dockerfile"));
    // A hand-written Dockerfile is never replaced without `--force` (issue 38).
    ws.write("Dockerfile", "FROM alpine\n# ours\n");
    let run = kiln(&ws, &["dockerfile"], &[]);
    run.failure(2, "kiln didn't generate it");
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    assert_eq!(ws.read("Dockerfile"), "FROM alpine\n# ours\n");
    kiln(&ws, &["dockerfile", "--force"], &[]).success();
    assert!(ws
        .read("Dockerfile")
        .contains("Generated by `kiln dockerfile`"));
}

#[test]
fn podman_builds_the_generated_dockerfile_for_both_platforms_and_it_runs() {
    let ws = TempWorkspace::built_chronik();
    kiln(&ws, &["dockerfile"], &[]).success();
    // As a team that commits the generated files builds it: from a clean clone (git
    // keeps no empty directories and no modes but the executable bit), with the
    // artifacts CI downloaded beside it.
    let git = |args: &[&str], dir: &Path| tool("git", args, dir);
    git(&["init", "-q", "."], ws.root());
    git(&["add", "-A", "."], ws.root());
    git(
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "generated",
        ],
        ws.root(),
    );
    let clone = tempfile::tempdir().unwrap();
    let context = clone.path().join("clone");
    git(
        &[
            "clone",
            "-q",
            ws.root().to_str().unwrap(),
            context.to_str().unwrap(),
        ],
        clone.path(),
    );
    common::copy_tree(
        &ws.root().join("artifacts"),
        &context.join("artifacts"),
        &[],
    );
    let name = format!("localhost/kiln-test-dockerfile-{}", free_port());
    podman(&[
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/arm64",
        "--manifest",
        &name,
        context.to_str().unwrap(),
    ]);
    let list: Value = serde_json::from_str(&podman(&["manifest", "inspect", &name])).unwrap();
    let mut arches: Vec<&str> = list["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    arches.sort();
    assert_eq!(arches, ["amd64", "arm64"]);
    let c = Container::run(&name, &[]);
    check_running(&c);
    drop(c);
    let _ = Command::new("podman")
        .args(["manifest", "rm", &name])
        .output();
}

/// A server on `ip` that answers each request with `answer(head)` and records every
/// request's head; returns its port and the heads.
fn fake_server(
    ip: &str,
    answer: impl Fn(&str) -> String + Send + 'static,
) -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let heads = seen.clone();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            let Ok((mut s, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 8192];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let reply = answer(&head);
            heads.lock().unwrap().push(head);
            let _ = s.write_all(reply.as_bytes());
        }
    });
    (port, seen)
}

/// `kiln image --push` to `127.0.0.1:<port>/chronik:t` with registry credentials;
/// returns the run.
fn push_with_credentials(port: u16) -> Run {
    let ws = TempWorkspace::built_chronik();
    let mut cmd = kiln_command(ws.root());
    cmd.args([
        "image",
        "--insecure",
        "--push",
        &format!("127.0.0.1:{port}/chronik:t"),
    ])
    .env("REGISTRY_USERNAME", "kiln-user")
    .env("REGISTRY_PASSWORD", "kiln-password")
    .env("KILN_REGISTRY_BACKOFF_MS", "10")
    .env("DOCKER_CONFIG", ws.path(".no-docker-config"));
    Run::from(cmd.output().unwrap())
}

fn has_basic(head: &str) -> bool {
    head.to_ascii_lowercase().contains("authorization: basic")
}

/// A fake registry on 127.0.0.1 whose every answer is a Bearer challenge naming
/// `realm`, and a realm server on `realm_ip` that records each request's headers.
/// Returns whether the realm ever received Basic credentials.
fn realm_received_credentials(realm_ip: &str) -> bool {
    let (realm_port, seen) = fake_server(realm_ip, |_| {
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\nConnection: close\r\n\r\n{\"token\":\"abc\"}".into()
    });
    let challenge =
        format!("Bearer realm=\"http://{realm_ip}:{realm_port}/token\",service=\"test\"");
    let (reg_port, _) = fake_server("127.0.0.1", move |_| {
        format!("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {challenge}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    });
    let run = push_with_credentials(reg_port);
    assert_ne!(run.code, 0, "the fake registry accepts nothing");
    assert!(!run.stderr.contains("kiln-password"), "{}", run.stderr);
    let requests = seen.lock().unwrap().clone();
    assert!(!requests.is_empty(), "kiln asked the realm for a token");
    requests.iter().any(|r| has_basic(r))
}

/// The upload chain of issue 38 against the real binary: the registry (127.0.0.1)
/// answers an upload's start with a `Location` on another host (127.0.0.2, loopback
/// but another origin); kiln follows it without the credentials.
#[test]
fn an_upload_redirected_to_another_host_carries_no_credentials() {
    let (elsewhere, heads) = fake_server("127.0.0.2", |_| {
        "HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
    });
    let (port, registry_heads) = fake_server("127.0.0.1", move |head| {
        let close = "Content-Length: 0\r\nConnection: close\r\n\r\n";
        if !has_basic(head) {
            format!("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"r\"\r\n{close}")
        } else if head.starts_with("POST ") {
            format!("HTTP/1.1 202 Accepted\r\nLocation: http://127.0.0.2:{elsewhere}/upload/1?state=x\r\n{close}")
        } else if head.starts_with("HEAD ") {
            format!("HTTP/1.1 404 Not Found\r\n{close}")
        } else {
            format!("HTTP/1.1 200 OK\r\n{close}")
        }
    });
    let run = push_with_credentials(port);
    assert!(!run.stderr.contains("kiln-password"), "{}", run.stderr);
    assert!(
        registry_heads.lock().unwrap().iter().any(|h| has_basic(h)),
        "control: the registry itself got the credentials"
    );
    let heads = heads.lock().unwrap().clone();
    assert!(
        !heads.is_empty(),
        "kiln followed the Location: {}",
        run.stderr
    );
    for h in &heads {
        assert!(
            !h.to_ascii_lowercase().contains("authorization"),
            "credentials sent to another origin:\n{h}"
        );
    }
}

/// Basic credentials go to a token realm on the registry's own host, and never over
/// plain HTTP to another host (127.0.0.2 is loopback too, but not the registry).
#[test]
fn registry_credentials_stay_with_their_registry() {
    assert!(
        realm_received_credentials("127.0.0.1"),
        "control: same host gets them"
    );
    assert!(!realm_received_credentials("127.0.0.2"));
}
