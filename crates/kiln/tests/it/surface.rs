//! What a newcomer meets first: `--help` of every command, the words of the main
//! commands (snapshots, with times, sizes, digests and paths scrubbed), data on
//! stdout and status on stderr, `kiln init` to a pushed image, completions and man
//! pages, the README's first lines.

use crate::common::{self, kiln_command, repo_root, Registry, Run, TempWorkspace};
use std::path::Path;

/// `kiln <args>` outside any workspace, at a fixed help width.
fn kiln_bare(args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = kiln_command(dir.path());
    cmd.args(args).env("COLUMNS", "100");
    Run::from(cmd.output().unwrap())
}

/// Every command, as a user types it.
const COMMANDS: &[&str] = &[
    "",
    "init",
    "build",
    "plan",
    "verify",
    "setup",
    "affected",
    "cache",
    "cache stats",
    "cache gc",
    "cache clear",
    "cache push",
    "cache pull",
    "cache keygen",
    "image",
    "dockerfile",
    "ci",
    "ci github",
    "report",
    "config",
    "completions",
    "man",
];

#[test]
fn help_of_every_command_is_its_own() {
    let mut all = String::new();
    for c in COMMANDS {
        let mut args: Vec<&str> = c.split_whitespace().collect();
        args.push("--help");
        let run = kiln_bare(&args);
        run.success();
        all.push_str(&format!(
            "=== {}\n{}\n",
            format!("kiln {c} --help").replace("  ", " "),
            run.stdout
        ));
    }
    insta::assert_snapshot!("help", all);
    let help = |c: &str| {
        let mut args: Vec<&str> = c.split_whitespace().collect();
        args.push("--help");
        kiln_bare(&args).stdout
    };
    // What kiln is, not what its CLI crate is.
    assert!(help("").starts_with("kiln builds a Cargo workspace's server binaries"));
    // Flags only where they apply.
    for c in ["affected", "cache push", "cache pull"] {
        for flag in ["--jobs", "--max-memory", "--dry-run", "--artifact-dir"] {
            assert!(!help(c).contains(flag), "`kiln {c}` lists {flag}");
        }
    }
    for c in ["verify", "setup", "report", "config", "image", "dockerfile"] {
        for flag in ["--locked", "--frozen", "--offline"] {
            assert!(!help(c).contains(flag), "`kiln {c}` lists {flag}");
        }
    }
    let plan = help("plan");
    assert!(!plan.contains("--metrics-out") && !plan.contains("--dry-run"));
    // One spelling of platforms, cargo's headings.
    for c in ["build", "plan", "affected", "image", "setup", "cache push"] {
        let h = help(c);
        assert!(
            h.contains("--target <PLATFORM>") && h.contains("[alias: --platform]"),
            "{c}"
        );
    }
    assert!(plan.contains("Package Selection:") && plan.contains("Feature Selection:"));
    // The image's store and its destination can't be confused.
    let image = help("image");
    assert!(image.contains("--artifact-dir <DIR>") && image.contains("--output <KIND:PATH>"));
    assert!(!image.contains("--out "), "the old name is hidden");
}

/// The text with what changes between runs replaced: the workspace path, times,
/// sizes, digests, core counts.
fn scrub(text: &str, root: &Path) -> String {
    let text = text.replace(&root.display().to_string(), "[WS]");
    let mut out = String::new();
    for line in text.lines() {
        let mut words = Vec::new();
        let tokens: Vec<&str> = line.split(' ').collect();
        let mut i = 0;
        while i < tokens.len() {
            let t = tokens[i];
            let core = t.trim_matches(|c: char| "(),;[]~".contains(c));
            let next = tokens
                .get(i + 1)
                .map(|n| n.trim_end_matches([',', ')', ';']));
            let number = !core.is_empty() && core.chars().all(|c| c.is_ascii_digit() || c == '.');
            let hex = core.len() >= 12 && core.chars().all(|c| c.is_ascii_hexdigit());
            if number && matches!(next, Some("B" | "KiB" | "MiB" | "GiB")) {
                words.push(t.replace(core, "[SIZE]"));
            } else if number && matches!(next, Some("cores" | "core" | "job(s)")) {
                words.push(t.replace(core, "[N]"));
            } else if let Some(secs) = core
                .strip_suffix('s')
                .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.'))
            {
                words.push(t.replace(&format!("{secs}s"), "[TIME]"));
            } else if hex || core.starts_with("sha256:") {
                words.push(t.replace(core, "[HASH]"));
            } else if core.len() > 2 && core.ends_with('%') {
                words.push(t.replace(core, "[PCT]"));
            } else {
                words.push(t.to_string());
            }
            i += 1;
        }
        out.push_str(words.join(" ").trim_end());
        out.push('\n');
    }
    out
}

#[test]
fn the_main_commands_words_are_stable_and_data_goes_to_stdout() {
    let ws = TempWorkspace::chronik();
    let root = ws.root();
    // The allocator note comes from the analysis, which runs beside cargo in a cold
    // build: its place among the lines varies (it has a test of its own).
    let show = |run: &Run| {
        let stderr: String = run
            .stderr
            .lines()
            .filter(|l| !l.contains("musl's malloc"))
            .map(|l| format!("{l}\n"))
            .collect();
        format!(
            "--- stdout\n{}--- stderr\n{}",
            scrub(&run.stdout, root),
            scrub(&stderr, root)
        )
    };
    // A budget of its own: the words don't depend on the machine's memory.
    let plan = ws.kiln(&["plan", "--max-memory", "4GiB"]);
    plan.success();
    // `kiln plan | grep rebuild` finds the binaries to build.
    assert!(plan
        .stdout
        .lines()
        .any(|l| l.starts_with("rebuild  chronik-server")));
    assert!(!plan.stderr.contains("rebuild "));
    let build = ws.kiln(&["build"]);
    build.success();
    let again = ws.kiln(&["build"]);
    let one = ws.kiln(&["build", "--platform", "linux/amd64", "--bin", "chronik-cli"]);
    assert!(
        one.stderr.contains("Finished 1 binary (1 fresh)"),
        "{}",
        one.stderr
    );
    let verify = ws.kiln(&["verify"]);
    let config = ws.kiln(&["config"]);
    assert!(config.stderr.is_empty() && config.stdout.contains("targets"));
    let stats = ws.kiln(&["cache", "stats"]);
    assert!(stats.stdout.contains("hit rate"), "{}", stats.stdout);
    let affected = ws.kiln(&["affected", "--all"]);
    assert!(
        affected.stdout.contains("chronik-server linux/amd64"),
        "{}",
        affected.stdout
    );
    insta::assert_snapshot!(
        "human_output",
        [
            ("kiln plan", &plan),
            ("kiln build", &build),
            ("kiln build (again)", &again),
            ("kiln verify", &verify),
            ("kiln config", &config),
            ("kiln affected --all", &affected),
        ]
        .iter()
        .map(|(c, r)| format!("=== {c}\n{}", show(r)))
        .collect::<String>()
    );
}

#[test]
fn cache_stats_before_any_build_says_so_once() {
    let ws = TempWorkspace::chronik_sources();
    let run = ws.kiln(&["cache", "stats"]);
    run.success();
    assert!(
        run.stdout.contains("hit rate  no builds yet"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("over the last 0"), "{}", run.stdout);
}

/// The example's sources without their kiln settings: what a new user has.
fn unconfigured() -> TempWorkspace {
    let ws = TempWorkspace::chronik();
    let manifest = ws.read("Cargo.toml");
    let cut = manifest.find("[workspace.metadata.kiln").unwrap();
    ws.write("Cargo.toml", &manifest[..cut]);
    std::fs::remove_file(ws.path(".gitignore")).unwrap();
    ws
}

/// `kiln init` edits what it can and destroys nothing (issue 38): a `.gitignore`
/// that isn't UTF-8 keeps every byte and gets kiln's lines appended; a symlinked
/// `Cargo.toml` stays a link, and the file it names gets the block.
#[test]
fn init_keeps_a_non_utf8_gitignore_and_a_symlinked_manifest() {
    let ws = unconfigured();
    let mine: &[u8] = b"*.pem\n.env\n# caf\xe9\n";
    std::fs::write(ws.path(".gitignore"), mine).unwrap();
    let real = ws.path("manifests/Cargo.toml");
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::rename(ws.path("Cargo.toml"), &real).unwrap();
    std::os::unix::fs::symlink("manifests/Cargo.toml", ws.path("Cargo.toml")).unwrap();
    ws.kiln(&["init"]).success();
    let ignore = std::fs::read(ws.path(".gitignore")).unwrap();
    assert!(
        ignore.starts_with(mine),
        "{}",
        String::from_utf8_lossy(&ignore)
    );
    assert!(String::from_utf8_lossy(&ignore).ends_with("/artifacts/\n/target/\n"));
    assert!(std::fs::symlink_metadata(ws.path("Cargo.toml"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::read_to_string(&real)
        .unwrap()
        .contains("[workspace.metadata.kiln"));
}

/// The README's path for a new user: `kiln init`, `kiln build`, `kiln image --push`
/// to a registry on this machine (plain HTTP without `--insecure`, as ko does),
/// with the pushed reference by digest on stdout.
#[test]
fn from_kiln_init_to_a_pushed_image() {
    let ws = unconfigured();
    let run = ws.kiln(&["init"]);
    run.success();
    assert!(run
        .stderr
        .contains("Wrote [workspace.metadata.kiln] into Cargo.toml"));
    let manifest = ws.read("Cargo.toml");
    assert!(manifest.contains("[workspace.metadata.kiln.image]"));
    assert!(
        manifest.contains("entrypoint = [\"chronik-server\"]"),
        "{manifest}"
    );
    assert_eq!(
        ws.read(".gitignore"),
        "# kiln: the artifact store and cargo's output\n/artifacts/\n/target/\n"
    );
    // Never twice: the second run changes nothing.
    let second = ws.kiln(&["init"]);
    second.failure(2, "already has a [workspace.metadata.kiln] table");
    assert_eq!(ws.read("Cargo.toml"), manifest);
    ws.kiln(&["config"]).success();
    ws.kiln(&["build", "-q"]).success();
    let registry = Registry::start(None);
    let reference = format!("127.0.0.1:{}/team/app:v1", registry.port);
    let push = ws.kiln(&["image", "--push", &reference]);
    push.success();
    let by_digest = format!("127.0.0.1:{}/team/app@sha256:", registry.port);
    assert!(
        push.stdout.trim().starts_with(&by_digest),
        "{}",
        push.stdout
    );
    assert_eq!(push.stdout.lines().count(), 1, "{}", push.stdout);
    let raw = common::tool(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{reference}"),
        ],
        ws.root(),
    );
    assert!(raw.contains("linux") && raw.contains("arm64"), "{raw}");
}

#[test]
fn a_single_package_reads_package_metadata_and_a_members_table_is_an_error() {
    let ws = TempWorkspace::empty();
    ws.write(
        "Cargo.toml",
        "[package]\nname = \"solo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[package.metadata.kiln]\ntargets = [\"linux/amd64\"]\n",
    );
    ws.write("src/main.rs", "fn main() {}\n");
    let run = ws.kiln(&["config"]);
    run.success();
    let targets = run
        .stdout
        .lines()
        .find(|l| l.starts_with("targets"))
        .unwrap();
    assert!(
        targets.contains("linux/amd64") && !targets.contains("arm64"),
        "{targets}"
    );
    assert!(
        targets.contains("`targets` in [workspace.metadata.kiln]") || targets.contains("`targets`")
    );
    // A typo there is an error like anywhere else.
    ws.write(
        "Cargo.toml",
        "[package]\nname = \"solo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[package.metadata.kiln]\ntargetz = [\"amd64\"]\n",
    );
    ws.kiln(&["config"])
        .failure(2, "invalid `[package.metadata.kiln]`");
    // `kiln init` on a single package writes the package's table.
    ws.write(
        "Cargo.toml",
        "[package]\nname = \"solo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    ws.kiln(&["init"]).success();
    assert!(ws.read("Cargo.toml").contains("[package.metadata.kiln]\n"));
    assert!(!ws.read("Cargo.toml").contains("[workspace"));
    ws.kiln(&["config"]).success();

    // In a workspace, a member's own table would do nothing: an error naming where to move it.
    let ws = TempWorkspace::chronik();
    let member = "crates/chronik-cli/Cargo.toml";
    let text = ws.read(member);
    ws.write(
        member,
        &format!("{text}\n[package.metadata.kiln]\ntargets = [\"amd64\"]\n"),
    );
    let run = ws.kiln(&["plan"]);
    run.failure(
        2,
        "has a [package.metadata.kiln] table, which kiln doesn't read",
    );
    assert!(
        run.stderr.contains("move it to [workspace.metadata.kiln]"),
        "{}",
        run.stderr
    );
}

#[test]
fn mistakes_exit_2_up_front_and_hints_name_the_choices() {
    let ws = TempWorkspace::chronik_sources();
    let started = std::time::Instant::now();
    let run = ws.kiln(&["build", "--profile", "nope"]);
    run.failure(2, "profile `nope` is not defined");
    assert!(
        run.stderr.contains("dev, release, test, bench"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("Compiling") && !run.stderr.contains("Building"));
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    // A custom profile of the manifest is fine.
    let manifest = ws.read("Cargo.toml");
    ws.write(
        "Cargo.toml",
        &format!("{manifest}\n[profile.fast]\ninherits = \"release\"\n"),
    );
    ws.kiln(&["plan", "--profile", "fast"]).success();
    ws.kiln(&["build", "-j", "0"])
        .failure(2, "`-j 0` runs nothing");
    let run = ws.kiln(&["build", "--bin", "nope"]);
    run.failure(2, "no selected package has a binary named `nope`");
    assert!(
        run.stderr.contains("chronik-cli, chronik-server"),
        "{}",
        run.stderr
    );
    let run = ws.kiln(&["report"]);
    run.failure(2, "no build metrics");
    assert!(run.stderr.contains("run `kiln build` first"));
    // Outside a workspace: said in kiln's words, naming no manifest that wasn't named.
    let run = kiln_bare(&["plan"]);
    run.failure(2, "is not in a Cargo workspace");
    assert!(!run.stderr.contains("fix the manifest"), "{}", run.stderr);
    kiln_bare(&["plan", "--manifest-path", "/nonexistent/Cargo.toml"])
        .failure(2, "`/nonexistent/Cargo.toml` does not exist");
}

#[test]
fn an_image_of_a_broken_store_exits_3_like_verify() {
    let ws = TempWorkspace::built_chronik();
    std::fs::write(ws.path("artifacts/linux/amd64/chronik-cli"), "swapped").unwrap();
    ws.kiln(&["verify"])
        .failure(3, "1 of 4 artifacts failed verification");
    ws.kiln(&["image"])
        .failure(3, "the artifact store is not consistent");
}

#[test]
fn an_image_of_binaries_older_than_the_sources_warns_and_build_rebuilds_first() {
    let ws = TempWorkspace::chronik();
    ws.kiln(&["build", "-q"]).success();
    let run = ws.kiln(&["image"]);
    run.success();
    assert!(!run.stderr.contains("predate"), "{}", run.stderr);
    let main = "crates/chronik-cli/src/main.rs";
    let text = ws.read(main);
    ws.write(main, &format!("{text}\n// edited after the build\n"));
    let run = ws.kiln(&["image"]);
    run.success();
    assert!(
        run.stderr.contains("the artifact store's chronik-cli (linux/amd64, linux/arm64) predate the current sources"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("chronik-server ("),
        "only what changed"
    );
    let run = ws.kiln(&["image", "--build"]);
    run.success();
    assert!(run.stderr.contains("(2 built, 2 fresh)"), "{}", run.stderr);
    assert!(!run.stderr.contains("predate"), "{}", run.stderr);
}

#[test]
fn the_allocator_note_is_short_linked_and_silenced_by_a_choice() {
    let ws = TempWorkspace::chronik();
    let plain = ws.read("Cargo.toml");
    assert!(
        !plain.contains("allocator"),
        "the example leaves the allocator unset"
    );
    let notes = |run: &Run| -> Vec<serde_json::Value> {
        run.success();
        run.stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["reason"] == "note" && v["kind"] == "musl-malloc")
            .collect()
    };
    let run = ws.kiln(&["plan", "--message-format", "json"]);
    assert_eq!(notes(&run).len(), 1, "once");
    let human = ws.kiln(&["plan"]);
    let line = human
        .stderr
        .lines()
        .find(|l| l.contains("musl's malloc"))
        .unwrap();
    assert!(line.len() < 260, "short: {line}");
    assert!(line.contains("https://github.com/kiln-build/kiln/blob/main/docs/allocator.md"));
    ws.write(
        "Cargo.toml",
        &format!("{plain}\n[workspace.metadata.kiln]\nallocator = \"system\"\n"),
    );
    let run = ws.kiln(&["plan", "--message-format", "json"]);
    assert!(notes(&run).is_empty(), "an explicit choice silences it");
}

#[test]
fn report_shows_the_last_build_that_compiled_and_no_browser_is_a_warning() {
    let ws = TempWorkspace::chronik_sources();
    ws.kiln(&["build", "--target", "amd64"]).success();
    ws.kiln(&["build", "--target", "amd64"]).success();
    // A PATH with cargo and rustc (rustup's directory) but no xdg-open.
    let cargo = common::tool("sh", &["-c", "command -v cargo"], ws.root());
    let bin = Path::new(cargo.trim()).parent().unwrap().to_path_buf();
    assert!(!bin.join("xdg-open").exists());
    let mut cmd = kiln_command(ws.root());
    cmd.args(["report", "--open"]).env("PATH", &bin);
    let run = Run::from(cmd.output().unwrap());
    run.success();
    assert!(
        run.stderr
            .contains("compiled 2 binaries; the build after it compiled nothing"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("could not open a browser"),
        "{}",
        run.stderr
    );
    let html = ws.read("target/kiln/report.html");
    assert!(
        html.contains(">linux/amd64</text>"),
        "a row group per platform"
    );
    assert!(html.contains(">host</text>"), "build scripts on the host");
    assert!(
        html.contains(">0.0s</text>") || html.contains(">0s</text>"),
        "a time axis"
    );
    assert!(html.contains("peak "));
}

#[test]
fn completions_and_man_pages() {
    let bash = kiln_bare(&["completions", "bash"]);
    bash.success();
    assert!(bash.stdout.contains("_kiln()") && bash.stdout.contains("--artifact-dir"));
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        kiln_bare(&["completions", shell]).success();
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man");
    let run = kiln_bare(&["man", "--output", out.to_str().unwrap()]);
    run.success();
    for page in [
        "kiln.1",
        "kiln-build.1",
        "kiln-cache-push.1",
        "kiln-ci-github.1",
    ] {
        let text = std::fs::read_to_string(out.join(page)).unwrap();
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page}");
    }
}

#[test]
fn the_readme_says_what_kiln_is_then_gives_the_two_commands() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let lines: Vec<&str> = readme.lines().collect();
    assert_eq!(lines[0], "# kiln");
    assert!(lines[2].starts_with("kiln builds a Cargo workspace's server binaries"));
    let block = readme.find("```sh\n").unwrap();
    let commands: Vec<&str> = readme[block + 6..].lines().take(2).collect();
    assert!(commands[0].contains("-- build --manifest-path examples/chronik/Cargo.toml"));
    assert!(commands[1].starts_with("bash .ci/run"));
    assert!(readme.contains("releases/latest/download/install.sh"));
    assert!(readme.contains("/artifacts/"), "what to ignore");
}
