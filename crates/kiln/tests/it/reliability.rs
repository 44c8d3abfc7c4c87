//! kiln's promises under faults (docs/reliability.md): killed at a write step, the
//! store, a layout, a remote and a release are old or new, never mixed, and the next
//! run recovers by itself; a remote that stalls, resets, fails, truncates, corrupts or
//! trickles costs a bounded wait and one warning; a full disk is a clear error that
//! loses nothing; kiln removes only what it wrote.

use crate::common::{self, kiln_command, Registry, Run, TempWorkspace};
use crate::faults::{self, Fault, FaultProxy, Tmpfs, WriteStep};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Kill points tried per command in CI; `bench/faults.sh` sets KILN_FAULTS_ALL to
/// try every one.
const SAMPLED: usize = 4;

/// The same for the remote's push and pull, whose every try builds a reader.
const SAMPLED_REMOTE: usize = 3;

/// The store's files by path, without kiln's lock and marker.
fn store_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    common::snapshot_dir(dir)
        .into_iter()
        .map(|(p, b)| (p.strip_prefix(dir).unwrap().display().to_string(), b))
        .filter(|(p, _)| p != ".kiln.lock" && p != ".kiln-store")
        .collect()
}

/// Edits a string chronik-cli prints (its two binaries change; one crate compiles
/// per arch): `mark` names the version of the sources.
fn set_sources(ws: &TempWorkspace, mark: &str) {
    let path = "crates/chronik-cli/src/main.rs";
    let text = ws.read(path);
    let start = text.find("usage: chronik-cli").unwrap();
    let end = start + text[start..].find('"').unwrap();
    ws.write(
        path,
        &format!(
            "{}usage: chronik-cli ping HOST:PORT | --version{mark}{}",
            &text[..start],
            &text[end..]
        ),
    );
}

/// A second version of all four binaries without compiling a crate: the same
/// build linked without its dependency list (`auditable = false`), or with it.
fn set_auditable(ws: &TempWorkspace, on: bool) {
    let manifest = ws.read("Cargo.toml");
    let base = manifest
        .split("\n[workspace.metadata.kiln]\nauditable")
        .next()
        .unwrap()
        .to_string();
    match on {
        true => ws.write("Cargo.toml", &base),
        false => ws.write(
            "Cargo.toml",
            &format!("{base}\n[workspace.metadata.kiln]\nauditable = false\n"),
        ),
    }
}

/// Kiln's temporary names left anywhere under `dir` (outside target dirs).
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in kiln_dirs(dir) {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().contains(".kiln-tmp-") {
                out.push(e.path());
            }
        }
    }
    out
}

fn kiln_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        for e in std::fs::read_dir(&out[i]).into_iter().flatten().flatten() {
            let skip =
                ["target", "fresh-target", ".git"].contains(&&*e.file_name().to_string_lossy());
            if e.file_type().is_ok_and(|t| t.is_dir()) && !skip {
                out.push(e.path());
            }
        }
        i += 1;
    }
    out
}

/// A copy of the example built through kiln, so its local cache holds the four
/// binaries (a push has something to send).
fn cached_chronik() -> TempWorkspace {
    let ws = TempWorkspace::chronik();
    ws.kiln(&["build", "-q"]).success();
    ws
}

/// `kiln cache <verb>` in `ws` against `remote`.
fn cache_command(ws: &TempWorkspace, verb: &str, remote: &str) -> Command {
    let mut c = kiln_command(ws.root());
    c.args(["cache", verb]).env("KILN_REMOTE_CACHE", remote);
    c
}

/// `run` (a build in `b`) succeeded without a warning and installed exactly the
/// binaries `a` has: what a killed push or pull left restored right or not at all.
#[track_caller]
fn installed_what_a_built(run: &Run, b: &TempWorkspace, a: &TempWorkspace) {
    run.success();
    assert!(faults::warnings(run).is_empty(), "{}", run.stdout);
    b.kiln(&["verify"]).success();
    assert_eq!(
        binaries(&b.path("artifacts")),
        binaries(&a.path("artifacts"))
    );
}

/// A [`cached_chronik`] whose four binaries `kiln cache push` put in `remote`.
fn pushed_to(remote: &str, env: &[(&str, &str)]) -> TempWorkspace {
    let ws = cached_chronik();
    let mut c = cache_command(&ws, "push", remote);
    for (k, v) in env {
        c.env(k, v);
    }
    Run::from(c.output().unwrap()).success();
    ws
}

/// A killed process: strace ends itself with the child's signal.
#[track_caller]
fn assert_killed(run: &Run, step: &WriteStep) {
    assert!(
        run.code == -1 || run.code == 137,
        "not killed at {step:?} (exit {}):\n{}",
        run.code,
        run.stderr
    );
}

#[test]
fn a_build_killed_at_any_write_step_leaves_the_old_store_or_the_new() {
    let ws = cached_chronik();
    let build = |ws: &TempWorkspace| {
        let mut c = kiln_command(ws.root());
        c.args(["build", "-q"]);
        c
    };
    // Both versions built and cached (A, then B relinked without the dependency
    // list); the store holds B, then A is restored over it.
    set_auditable(&ws, false);
    ws.kiln(&["build", "-q"]).success();
    let store = ws.path("artifacts");
    // Every run starts from the same state: the store at B, the cache as it was.
    let saved = faults::Saved::new(&[store.clone(), ws.path(".kiln-test-cache")]);
    let old = store_files(&store);
    set_auditable(&ws, true);
    let except = [ws.path("target")];
    let steps: Vec<WriteStep> = faults::write_steps(build(&ws), &[ws.root()])
        .into_iter()
        .filter(|s| !except.iter().any(|e| Path::new(&s.path).starts_with(e)))
        .collect();
    let new = store_files(&store);
    assert_ne!(old, new, "the update changes the store");
    assert!(
        steps
            .iter()
            .any(|s| s.syscall == "renameat2" && Path::new(&s.path) == store),
        "the store is exchanged in one step: {steps:#?}"
    );
    for step in faults::sample(&steps, SAMPLED) {
        saved.reset();
        let run = faults::killed_at(build(&ws), &step);
        assert_killed(&run, &step);
        let now = store_files(&store);
        assert!(
            now == old || now == new,
            "killed at {step:?}, the store is neither the old one nor the new one"
        );
        // The next run finishes the job and leaves nothing behind.
        ws.kiln(&["build", "-q"]).success();
        assert_eq!(store_files(&store), new, "after the kill at {step:?}");
        ws.kiln(&["verify"]).success();
        let left: Vec<PathBuf> = leftovers(ws.root())
            .into_iter()
            .filter(|p| !p.starts_with(ws.path(".kiln-test-cache")))
            .collect();
        assert!(left.is_empty(), "left after {step:?}: {left:?}");
    }
}

/// Every blob an OCI layout's index names (manifests, configs, layers) is present
/// and has its digest.
fn layout_is_whole(dir: &Path) -> Result<Vec<String>, String> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let mut refs = Vec::new();
    let mut queue: Vec<String> = Vec::new();
    for m in index["manifests"].as_array().ok_or("no manifests")? {
        queue.push(m["digest"].as_str().unwrap().to_string());
        refs.push(
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
    }
    while let Some(d) = queue.pop() {
        let path = dir
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"));
        let bytes = std::fs::read(&path).map_err(|e| format!("{d}: {e}"))?;
        if format!("sha256:{}", common::sha256_hex(&bytes)) != d {
            return Err(format!("{d} doesn't match its digest"));
        }
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            for key in ["manifests", "layers"] {
                for m in v[key].as_array().into_iter().flatten() {
                    queue.push(m["digest"].as_str().unwrap().to_string());
                }
            }
            if let Some(c) = v["config"]["digest"].as_str() {
                queue.push(c.to_string());
            }
        }
    }
    refs.sort();
    Ok(refs)
}

#[test]
fn an_image_killed_at_any_write_step_leaves_whole_layouts_and_keeps_other_images() {
    let ws = TempWorkspace::built_chronik();
    let out = ws.path("layout");
    // The layout holds another image already, under its own tag.
    ws.kiln(&["image", "-q", "--output", "oci:layout"])
        .success();
    let index = ws
        .read("layout/index.json")
        .replace("\"latest\"", "\"other\"");
    ws.write("layout/index.json", &index);
    // Another creation time: another image, nothing compiled.
    let image = |ws: &TempWorkspace| {
        let mut c = kiln_command(ws.root());
        c.args(["image", "-q", "--output", "oci:layout"])
            .env("SOURCE_DATE_EPOCH", "86400");
        c
    };
    let default = ws.path("target/kiln/image");
    let saved = faults::Saved::new(&[out.clone(), default.clone(), ws.path(".kiln-test-cache")]);
    let steps = faults::write_steps(image(&ws), &[&out, &ws.path("target/kiln")]);
    assert_eq!(layout_is_whole(&out).unwrap(), ["latest", "other"]);
    assert!(!steps.is_empty());
    for step in faults::sample(&steps, SAMPLED) {
        saved.reset();
        let run = faults::killed_at(image(&ws), &step);
        assert_killed(&run, &step);
        let refs = layout_is_whole(&out).unwrap_or_else(|e| panic!("after {step:?}: {e}"));
        assert!(refs == ["latest", "other"] || refs == ["other"], "{refs:?}");
        if default.exists() {
            layout_is_whole(&default)
                .unwrap_or_else(|e| panic!("kiln's layout after {step:?}: {e}"));
        }
        image(&ws).output().map(Run::from).unwrap().success();
        assert_eq!(layout_is_whole(&out).unwrap(), ["latest", "other"]);
    }
}

#[test]
fn image_output_adds_to_a_layout_and_refuses_directories_that_are_not_one() {
    let ws = TempWorkspace::built_chronik();
    // A folder of the user's, the source tree, a file that isn't an archive:
    // refused, exit 2, untouched.
    ws.write("notes/notes.txt", "mine\n");
    ws.write("image.tar", "not a tar\n");
    refused_untouched(
        &ws,
        &["image", "--output", "oci:notes"],
        "notes",
        "not an OCI layout",
    );
    refused_untouched(
        &ws,
        &["image", "--output", "oci:crates"],
        "crates",
        "not an OCI layout",
    );
    refused_untouched(
        &ws,
        &["image", "--output", "oci-archive:image.tar"],
        "image.tar",
        "not an OCI archive",
    );
    // A layout of someone else's (skopeo wrote it) keeps its image beside kiln's.
    ws.kiln(&["image", "-q", "--output", "oci:first"]).success();
    common::tool(
        "skopeo",
        &["copy", "oci:first:latest", "oci:shared:theirs"],
        ws.root(),
    );
    ws.kiln(&["image", "-q", "--output", "oci:shared"])
        .success();
    assert_eq!(
        layout_is_whole(&ws.path("shared")).unwrap(),
        ["latest", "theirs"]
    );
    let inspect = common::tool(
        "skopeo",
        &["inspect", "--raw", "oci:shared:theirs"],
        ws.root(),
    );
    assert!(inspect.contains("schemaVersion"), "{inspect}");
    // kiln's own archive is replaced.
    ws.kiln(&["image", "-q", "--output", "oci-archive:mine.tar"])
        .success();
    ws.kiln(&["image", "-q", "--output", "oci-archive:mine.tar"])
        .success();
}

#[test]
fn a_release_killed_at_any_write_step_is_the_old_release_or_the_new() {
    let ws = TempWorkspace::built_chronik();
    ws.kiln(&["release", "--no-build", "--out", "dist"])
        .success();
    let old = common::snapshot_dir(&ws.path("dist"));
    let saved = faults::Saved::new(&[ws.path("dist"), ws.path(".kiln-test-cache")]);
    // Another release time: other archives, nothing compiled.
    let release = |ws: &TempWorkspace| {
        let mut c = kiln_command(ws.root());
        c.args(["release", "--no-build", "--out", "dist"])
            .env("SOURCE_DATE_EPOCH", "86400");
        c
    };
    let steps = faults::write_steps(release(&ws), &[&ws.path("dist"), ws.root()]);
    let steps: Vec<WriteStep> = steps
        .into_iter()
        .filter(|s| !s.path.contains("/target"))
        .collect();
    let new = common::snapshot_dir(&ws.path("dist"));
    assert_ne!(old, new);
    for step in faults::sample(&steps, SAMPLED) {
        saved.reset();
        let run = faults::killed_at(release(&ws), &step);
        assert_killed(&run, &step);
        let now = common::snapshot_dir(&ws.path("dist"));
        assert!(
            now == old || now == new,
            "killed at {step:?}: a mixed release"
        );
        release(&ws).output().map(Run::from).unwrap().success();
        assert_eq!(common::snapshot_dir(&ws.path("dist")), new);
    }
}

#[test]
fn a_push_killed_at_any_write_step_never_serves_a_wrong_binary() {
    let remote_dir = tempfile::tempdir().unwrap();
    let remote = format!("file://{}", remote_dir.path().display());
    let a = cached_chronik();
    let push = |ws: &TempWorkspace| cache_command(ws, "push", &remote);
    let saved = faults::Saved::new(&[remote_dir.path().to_path_buf(), a.path(".kiln-test-cache")]);
    let b = TempWorkspace::chronik();
    let steps = faults::write_steps_in_threads(push(&a), &[remote_dir.path()]);
    assert!(!steps.is_empty());
    for step in faults::sample(&steps, SAMPLED_REMOTE) {
        saved.reset();
        let run = faults::killed_at(push(&a), &step);
        assert_killed(&run, &step);
        // A reader takes what is whole and builds the rest; what it installs is right.
        let (run, _) = read_through(&b, &remote, &[]);
        installed_what_a_built(&run, &b, &a);
        // The push, run again, completes the remote.
        push(&a).output().map(Run::from).unwrap().success();
    }
}

#[test]
fn a_pull_killed_at_any_write_step_never_restores_a_truncated_entry() {
    let remote_dir = tempfile::tempdir().unwrap();
    let remote = format!("file://{}", remote_dir.path().display());
    let a = pushed_to(&remote, &[]);
    let b = TempWorkspace::chronik();
    let cache = b.path(".kiln-test-cache");
    let pull = |ws: &TempWorkspace| cache_command(ws, "pull", &remote);
    let saved = faults::Saved::new(std::slice::from_ref(&cache));
    let steps = faults::write_steps_in_threads(pull(&b), &[&cache]);
    assert!(!steps.is_empty());
    for step in faults::sample(&steps, SAMPLED_REMOTE) {
        saved.reset();
        let run = faults::killed_at(pull(&b), &step);
        assert_killed(&run, &step);
        // Offline now: what the killed pull left must restore right or not at all.
        let run = b.kiln(&["build", "--message-format", "json"]);
        installed_what_a_built(&run, &b, &a);
        std::fs::remove_dir_all(b.path("artifacts")).unwrap();
    }
}

/// The store's binaries and sidecars (not `checksums.json`, whose records name
/// the commit and keys).
fn binaries(store: &Path) -> Vec<(String, Vec<u8>)> {
    store_files(store)
        .into_iter()
        .filter(|(p, _)| !p.ends_with("checksums.json"))
        .collect()
}

/// A copy of the example that reads `remote` with a 2 s timeout, as a machine that
/// never built anything would.
fn reader(remote: &str, env: &[(&str, &str)]) -> (TempWorkspace, Run, Duration) {
    let ws = TempWorkspace::chronik();
    let manifest = ws.read("Cargo.toml");
    ws.write(
        "Cargo.toml",
        &format!("{manifest}\n[workspace.metadata.kiln.cache]\ntimeout = 2\n"),
    );
    let (run, took) = read_through(&ws, remote, env);
    (ws, run, took)
}

/// `kiln build` in a [`reader`]'s copy again, from an empty store and cache.
fn read_through(ws: &TempWorkspace, remote: &str, env: &[(&str, &str)]) -> (Run, Duration) {
    for dir in ["artifacts", ".kiln-test-cache"] {
        if ws.path(dir).exists() {
            std::fs::remove_dir_all(ws.path(dir)).unwrap();
        }
    }
    let mut c = kiln_command(ws.root());
    c.args(["build", "--message-format", "json"])
        .env("KILN_REMOTE_CACHE", remote)
        .env("KILN_REGISTRY_BACKOFF_MS", "20")
        .env("DOCKER_CONFIG", ws.path(".no-docker-config"))
        .env_remove("CI");
    for (k, v) in env {
        c.env(k, v);
    }
    let start = Instant::now();
    let run = Run::from(c.output().unwrap());
    (run, start.elapsed())
}

/// The documented bound for a remote with `timeout = 2` and binaries under 1 MiB:
/// two tries of 2 s, their backoff, the whole build's own time.
const BOUND: Duration = Duration::from_secs(30);

/// Each fault on the remote's binary downloads: the build ends in time, exit 0,
/// with one warning naming the cause, and what it installs is right. `reader_of`
/// gives the remote URL and environment for the proxy at a `host:port`.
fn every_fault_is_one_warning(
    upstream: &str,
    reader_of: impl Fn(&str) -> (String, Vec<(String, String)>),
    blob_get: fn(&str, &str) -> bool,
) {
    // One copy, its store and cache emptied before each fault.
    let mut ws: Option<TempWorkspace> = None;
    for fault in Fault::ALL {
        let proxy = FaultProxy::start(upstream.to_string(), fault, blob_get);
        let (url, env) = reader_of(&proxy.host());
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (run, took) = match &ws {
            Some(ws) => read_through(ws, &url, &env),
            None => {
                let (w, run, took) = reader(&url, &env);
                ws = Some(w);
                (run, took)
            }
        };
        let ws = ws.as_ref().unwrap();
        eprintln!("fault {fault:?}: the build took {took:.1?}");
        run.success();
        assert!(took < BOUND, "{fault:?}: {took:?}\n{}", run.stderr);
        assert!(
            proxy.faulted.load(std::sync::atomic::Ordering::SeqCst) > 0,
            "{fault:?}: no blob was asked for"
        );
        let warnings = faults::warnings(&run);
        assert_eq!(
            warnings.len(),
            1,
            "{fault:?}: {warnings:#?}\n{}",
            run.stderr
        );
        // A damaged download is the data's fault (a shared directory's, S3's):
        // that binary is rebuilt; through a registry, whose client checks each
        // blob, the remote is dropped. Anything else drops the remote.
        let kind = warnings[0]["kind"].as_str().unwrap();
        let text = warnings[0].to_string();
        match fault {
            Fault::Corrupt => assert!(
                kind == "remote-digest-mismatch" || text.contains("digest"),
                "{fault:?}: {warnings:#?}"
            ),
            _ => assert_eq!(kind, "remote-failed", "{fault:?}: {warnings:#?}"),
        }
        ws.kiln(&["verify"]).success();
    }
}

fn is_blob_get(method: &str, path: &str) -> bool {
    method == "GET" && path.contains("/blobs/sha256:")
}

fn is_s3_blob_get(method: &str, path: &str) -> bool {
    method == "GET" && path.contains("/blobs/")
}

#[test]
fn every_registry_fault_costs_a_bounded_wait_and_one_warning() {
    let reg = Registry::start(None);
    let remote = format!("oci+http://{}/kiln-cache", reg.host());
    let _a = pushed_to(&remote, &[]);
    every_fault_is_one_warning(
        &reg.host(),
        |host| (format!("oci+http://{host}/kiln-cache"), Vec::new()),
        is_blob_get,
    );
}

#[test]
fn every_s3_fault_costs_a_bounded_wait_and_one_warning() {
    let moto = crate::remote::Moto::start();
    let _a = pushed_to("s3://kiln-cache/chronik", &moto.env());
    let upstream = moto.endpoint.trim_start_matches("http://").to_string();
    every_fault_is_one_warning(
        &upstream,
        |host| {
            let mut env: Vec<(String, String)> = moto
                .env()
                .iter()
                .filter(|(k, _)| *k != "AWS_ENDPOINT_URL")
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            env.push(("AWS_ENDPOINT_URL".into(), format!("http://{host}")));
            ("s3://kiln-cache/chronik".into(), env)
        },
        is_s3_blob_get,
    );
}

#[test]
fn a_damaged_shared_directory_costs_one_warning_and_is_repaired_by_the_next_upload() {
    let remote_dir = tempfile::tempdir().unwrap();
    let remote = format!("file://{}", remote_dir.path().display());
    let _a = pushed_to(&remote, &[]);
    // Two blobs damaged: one truncated, one with a byte flipped.
    let blobs: Vec<PathBuf> = common::files_under(&remote_dir.path().join("blobs"));
    assert!(blobs.len() >= 4, "{blobs:?}");
    let bytes = std::fs::read(&blobs[0]).unwrap();
    std::fs::write(&blobs[0], &bytes[..bytes.len() / 2]).unwrap();
    let mut bytes = std::fs::read(&blobs[1]).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&blobs[1], &bytes).unwrap();
    // A CI reader warns once, rebuilds those two, and uploads them over the damage.
    let (_ws, run, _) = reader(&remote, &[("CI", "true")]);
    run.success();
    let warnings = faults::warnings(&run);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0]["kind"], "remote-digest-mismatch");
    assert_eq!(warnings[0]["entries"].as_array().unwrap().len(), 2);
    for blob in &blobs {
        let name = blob.file_name().unwrap().to_string_lossy().to_string();
        assert_eq!(
            common::sha256_hex(&std::fs::read(blob).unwrap()),
            name,
            "replaced"
        );
    }
    // The next reader restores all four, without a word.
    let (_ws, run, _) = reader(&remote, &[]);
    run.success();
    assert!(faults::warnings(&run).is_empty(), "{}", run.stdout);
    assert_eq!(finished(&run)["counts"]["restored"], 4, "{}", run.stdout);
}

/// The `finished` event of a `--message-format json` run.
fn finished(run: &Run) -> serde_json::Value {
    faults::events(run)
        .into_iter()
        .find(|e| e["reason"] == "finished")
        .unwrap_or_else(|| panic!("no finished event:\n{}", run.stdout))
}

#[test]
fn a_remote_failing_during_the_build_is_said_once() {
    // Manifests answer; every blob GET is a 500: the remote dies mid-build, after
    // hits = uploads = 0 (the case that was silent).
    let reg = Registry::start(None);
    let remote = format!("oci+http://{}/kiln-cache", reg.host());
    let _a = pushed_to(&remote, &[]);
    let proxy = FaultProxy::start(reg.host(), Fault::ServerError, is_blob_get);
    let (_ws, run, _) = reader(&format!("oci+http://{}/kiln-cache", proxy.host()), &[]);
    run.success();
    let warnings = faults::warnings(&run);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0]["kind"], "remote-failed");
    assert!(
        warnings[0]["why"].as_str().unwrap().contains("500"),
        "{warnings:#?}"
    );
}

#[test]
fn an_unreadable_manifest_is_never_silently_narrowed() {
    let ws = TempWorkspace::built_chronik();
    ws.write("artifacts/checksums.json", "garbage{");
    let before = store_files(&ws.path("artifacts"));
    ws.kiln(&["verify"])
        .failure(3, "not a valid kiln checksums file");
    // A build of some binaries would drop the others' records: refused, nothing changed.
    ws.kiln(&["build", "-p", "chronik-cli"])
        .failure(3, "linux/amd64/chronik-server");
    assert_eq!(store_files(&ws.path("artifacts")), before);
    // A build of everything rewrites it, and says so.
    let run = ws.kiln(&["build", "--message-format", "json"]);
    run.success();
    let warnings = faults::warnings(&run);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0]["kind"], "store-manifest-unreadable");
    let run = ws.kiln(&["verify"]);
    run.success();
    assert!(run.stderr.contains("Verified 4"), "{}", run.stderr);
}

#[test]
fn damaged_sidecars_are_restored_by_the_next_build() {
    let ws = cached_chronik();
    std::fs::remove_file(ws.path("artifacts/linux/amd64/chronik-server.sha256")).unwrap();
    ws.write("artifacts/linux/arm64/chronik-cli.version", "garbled");
    ws.kiln(&["verify"]).failure(3, "chronik-server");
    let run = ws.kiln(&["build"]);
    run.success();
    assert!(run.stderr.contains("2 restored"), "{}", run.stderr);
    ws.kiln(&["verify"]).success();
}

#[test]
fn kiln_removes_only_its_own_leftovers_and_refuses_directories_it_does_not_own() {
    let ws = TempWorkspace::built_chronik();
    // Another tool's files that merely look like kiln's, inside and beside the store.
    ws.write("artifacts/linux/amd64/report.kiln-tmp-notes", "theirs\n");
    ws.write("artifacts/notes/a.kiln-tmp-1-1", "theirs\n");
    // A stage a live process is writing (this test's pid), without kiln's marker.
    let live = format!(".artifacts.kiln-tmp-{}-0", std::process::id());
    ws.write(&format!("{live}/x"), "in progress\n");
    // A dead kiln's stage: marked, its process gone.
    ws.write(".artifacts.kiln-tmp-4194305-7/.kiln-store", "");
    ws.write(".artifacts.kiln-tmp-4194305-7/linux/amd64/half", "");
    // A sidecar gone: the build installs, carrying the user's files over.
    std::fs::remove_file(ws.path("artifacts/linux/amd64/chronik-cli.version")).unwrap();
    ws.kiln(&["build", "-q"]).success();
    assert_eq!(
        ws.read("artifacts/linux/amd64/report.kiln-tmp-notes"),
        "theirs\n"
    );
    assert_eq!(ws.read("artifacts/notes/a.kiln-tmp-1-1"), "theirs\n");
    assert_eq!(ws.read(&format!("{live}/x")), "in progress\n");
    assert!(!ws.path(".artifacts.kiln-tmp-4194305-7").exists());
    ws.kiln(&["verify"]).success();
    // Directories that aren't a store: refused before anything is built or removed.
    ws.kiln(&["build", "--artifact-dir", "/"])
        .failure(2, "filesystem's root");
    let cli = ["build", "--artifact-dir", "crates/chronik-cli"];
    refused_untouched(&ws, &cli, "crates/chronik-cli", "source tree");
    ws.write("mine/photo.jpg", "x");
    let mine = ["build", "--artifact-dir", "mine"];
    refused_untouched(&ws, &mine, "mine", "files kiln didn't write (photo.jpg)");
}

/// `kiln <args>` fails with exit 2 saying `needle`, and `path` is as it was.
#[track_caller]
fn refused_untouched(ws: &TempWorkspace, args: &[&str], path: &str, needle: &str) {
    let snapshot = || match ws.path(path) {
        p if p.is_file() => vec![(p.clone(), std::fs::read(&p).unwrap())],
        p => common::snapshot_dir(&p),
    };
    let before = snapshot();
    assert!(!before.is_empty(), "{path} holds something to keep");
    ws.kiln(args).failure(2, needle);
    assert_eq!(snapshot(), before, "{path} changed");
}

#[test]
fn an_unusable_cache_is_one_warning_and_the_build_goes_on() {
    let ws = cached_chronik();
    // A cache directory that is a file.
    ws.write("cache-file", "not a directory\n");
    let mut c = kiln_command(ws.root());
    c.args(["build", "--message-format", "json"])
        .env("KILN_CACHE_DIR", ws.path("cache-file"));
    let run = Run::from(c.output().unwrap());
    run.success();
    let warnings = faults::warnings(&run);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0]["kind"], "cache-unusable");
    assert_eq!(ws.read("cache-file"), "not a directory\n");
    // A read-only cache (a read-only mount: root ignores file modes).
    let ro = Tmpfs::mount("1M");
    let out = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(ro.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut c = kiln_command(ws.root());
    c.args(["build", "--message-format", "json"])
        .env("KILN_CACHE_DIR", ro.path());
    let run = Run::from(c.output().unwrap());
    run.success();
    let warnings = faults::warnings(&run);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0]["error"]
            .as_str()
            .unwrap()
            .contains("Read-only file system"),
        "{warnings:#?}"
    );
    ws.kiln(&["verify"]).success();
}

#[test]
fn a_full_disk_is_a_clear_error_that_loses_nothing() {
    // The store on a full filesystem: the old store stays whole.
    let disk = Tmpfs::mount("6M");
    let ws = cached_chronik();
    let store = disk.path().join("artifacts");
    let store_arg = store.to_str().unwrap().to_string();
    // One arch in the store; then the other must be installed, on a full disk.
    ws.kiln(&[
        "build",
        "-q",
        "--target",
        "amd64",
        "--artifact-dir",
        &store_arg,
    ])
    .success();
    let before = store_files(&store);
    disk.fill(64 << 10);
    let run = ws.kiln(&["build", "--artifact-dir", &store_arg]);
    run.failure(4, "No space left on device");
    assert!(run.stderr.contains("free space"), "{}", run.stderr);
    assert_eq!(store_files(&store), before, "the old store is whole");
    assert!(
        leftovers(disk.dir.path()).is_empty(),
        "{:?}",
        leftovers(disk.dir.path())
    );
    // The cache on a full filesystem: the binaries aren't cached, said with the cause.
    let cache_disk = Tmpfs::mount("2M");
    let ws = TempWorkspace::chronik();
    let mut c = kiln_command(ws.root());
    c.args(["build", "--message-format", "json"])
        .env("KILN_CACHE_DIR", cache_disk.path());
    // Room for the cache's own files, not for binaries.
    std::fs::create_dir_all(cache_disk.path().join("v1")).unwrap();
    cache_disk.fill(32 << 10);
    let run = Run::from(c.output().unwrap());
    run.success();
    let warnings = faults::warnings(&run);
    assert!(!warnings.is_empty());
    assert!(
        warnings
            .iter()
            .all(|w| w.to_string().contains("No space left on device")),
        "{warnings:#?}"
    );
    ws.kiln(&["verify"]).success();
    // The target dir on a full filesystem: cargo's failure, the store untouched.
    let target_disk = Tmpfs::mount("1M");
    let before = store_files(&ws.path("artifacts"));
    // Without the cache, cargo compiles everything into the full target dir.
    let mut c = kiln_command(ws.root());
    c.args(["build", "--no-cache"])
        .env("CARGO_TARGET_DIR", target_disk.path());
    let run = Run::from(c.output().unwrap());
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("left as it was"), "{}", run.stderr);
    assert_eq!(store_files(&ws.path("artifacts")), before);
}

#[test]
fn concurrent_builds_and_gc_on_one_cache_lose_nothing() {
    let cache = tempfile::tempdir().unwrap();
    let a = TempWorkspace::chronik();
    let b = TempWorkspace::chronik();
    let start = |ws: &TempWorkspace| {
        let mut c = kiln_command(ws.root());
        c.args(["build", "-q"]).env("KILN_CACHE_DIR", cache.path());
        c.spawn().unwrap()
    };
    let (mut ca, mut cb) = (start(&a), start(&b));
    let mut gcs = 0;
    while ca.try_wait().unwrap().is_none() || cb.try_wait().unwrap().is_none() {
        let mut c = kiln_command(a.root());
        c.args(["cache", "gc", "--max-size", "1M"])
            .env("KILN_CACHE_DIR", cache.path());
        Run::from(c.output().unwrap()).success();
        gcs += 1;
    }
    assert!(ca.wait().unwrap().success() && cb.wait().unwrap().success());
    assert!(gcs > 0);
    a.kiln(&["verify"]).success();
    b.kiln(&["verify"]).success();
    // Whatever the cache kept restores intact.
    let c = TempWorkspace::chronik();
    let mut cmd = kiln_command(c.root());
    cmd.args(["build", "-q"])
        .env("KILN_CACHE_DIR", cache.path());
    Run::from(cmd.output().unwrap()).success();
    c.kiln(&["verify"]).success();
    assert!(
        leftovers(cache.path()).is_empty(),
        "{:?}",
        leftovers(cache.path())
    );
}

#[test]
fn an_interrupted_build_takes_cargo_and_rustc_with_it() {
    let ws = TempWorkspace::chronik();
    set_sources(&ws, " (interrupted)");
    // A rustc wrapper that, compiling chronik-cli, says so and takes its time.
    let pids = ws.path("pids");
    let wrapper = ws.path("slow-rustc.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \"$*\" in *chronik_cli*) echo $$ >> {}; sleep 60;; esac\nexec \"$@\"\n",
            pids.display()
        ),
    )
    .unwrap();
    common::tool("chmod", &["+x", wrapper.to_str().unwrap()], ws.root());
    let mut c = kiln_command(ws.root());
    c.args(["build", "-q"])
        .env("RUSTC_WRAPPER", &wrapper)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut kiln = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pids.exists() {
        assert!(Instant::now() < deadline, "rustc never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let store_before = store_files(&ws.path("artifacts"));
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(kiln.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    let status = kiln.wait().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    let started: Vec<i32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    for pid in started {
        let alive = Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z");
        assert!(!alive, "rustc's wrapper {pid} outlived kiln");
    }
    assert_eq!(store_files(&ws.path("artifacts")), store_before);
}
