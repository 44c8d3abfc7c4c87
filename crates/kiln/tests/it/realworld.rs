//! Workspaces as people have them: pinned toolchains, git dependencies, MSRV,
//! lockfiles, `links` without C, externally-managed Pythons, long quiet builds, and
//! cargo's command-line habits.

use crate::common::{self, kiln_command, Run, TempWorkspace};
use std::path::Path;
use std::process::Command;

/// A one-binary workspace: `a` (a binary) with `extra` lines in its manifest.
fn tiny(ws: &TempWorkspace, extra: &str) {
    ws.write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"a\"]\nresolver = \"2\"\n",
    );
    ws.write(
        "a/Cargo.toml",
        &format!("[package]\nname = \"a\"\nversion = \"0.1.0\"\nedition = \"2021\"\n{extra}"),
    );
    ws.write("a/src/main.rs", "fn main() { println!(\"a\"); }\n");
}

fn run(mut cmd: Command) -> Run {
    Run::from(cmd.output().expect("run kiln"))
}

/// rustup's home, for commands run with another `CARGO_HOME`.
fn rustup_home() -> std::path::PathBuf {
    std::env::var_os("RUSTUP_HOME")
        .map(Into::into)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").unwrap()).join(".rustup"))
}

/// The pinned toolchain is not installed: every command says `kiln setup` (exit 4)
/// without rustup's backtrace; `kiln setup` installs it with the musl targets, and
/// the build then uses it.
#[test]
fn a_missing_pinned_toolchain_is_installed_by_setup() {
    const OLD: &str = "1.80.0";
    let ws = TempWorkspace::empty();
    tiny(&ws, "");
    ws.write(
        "rust-toolchain.toml",
        &format!("[toolchain]\nchannel = \"{OLD}\"\ncomponents = [\"clippy\"]\n"),
    );
    let _ = Command::new("rustup")
        .args(["toolchain", "uninstall", OLD])
        .output();
    let kiln = |args: &[&str]| {
        let mut c = kiln_command(ws.root());
        // `cargo test` runs under rustup, whose RUSTUP_TOOLCHAIN would win over the
        // toolchain file.
        c.args(args)
            .env_remove("RUSTUP_TOOLCHAIN")
            .env("RUSTUP_AUTO_INSTALL", "0")
            .env("RUST_BACKTRACE", "1");
        run(c)
    };
    for args in [
        &["build", "--target", "amd64"][..],
        &["plan"],
        &["setup", "--check"],
    ] {
        let r = kiln(args);
        r.failure(4, "kiln setup");
        assert!(r.stderr.contains(OLD), "{}", r.stderr);
        assert!(!r.stderr.contains("Stack backtrace"), "{}", r.stderr);
        assert!(
            !r.stderr.contains("inside a Cargo workspace"),
            "{}",
            r.stderr
        );
    }
    kiln(&["setup"]).success();
    let b = kiln(&["build", "--target", "arm64"]);
    b.success();
    let sums: serde_json::Value =
        serde_json::from_str(&ws.read("artifacts/checksums.json")).unwrap();
    assert!(
        sums["artifacts"][0]["rustc"]
            .as_str()
            .unwrap()
            .contains(OLD),
        "{sums}"
    );
}

/// A git dependency whose repository is gone: exit 5 (a remote failed) with the fix
/// for that cause, not "run kiln inside a Cargo workspace".
#[test]
fn an_unreachable_git_dependency_names_the_cause() {
    let ws = TempWorkspace::empty();
    let repo = ws.path("dep-src");
    std::fs::create_dir_all(repo.join("src")).unwrap();
    std::fs::write(
        repo.join("Cargo.toml"),
        "[package]\nname = \"dep\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(repo.join("src/lib.rs"), "pub fn f() {}\n").unwrap();
    for args in [
        &["init", "-q"][..],
        &["add", "."],
        &[
            "-c",
            "user.email=t@t",
            "-c",
            "user.name=t",
            "commit",
            "-qm",
            "dep",
        ],
    ] {
        common::tool("git", args, &repo);
    }
    let url = format!("file://{}", repo.display());
    tiny(
        &ws,
        &format!("[dependencies]\ndep = {{ git = \"{url}\" }}\n"),
    );
    // Resolved once (as a checkout would be), then the host goes away.
    let mut c = kiln_command(ws.root());
    c.args(["plan"])
        .env("CARGO_HOME", ws.path("cargo-home-1"))
        .env("RUSTUP_HOME", rustup_home());
    run(c).success();
    std::fs::remove_dir_all(&repo).unwrap();
    let mut c = kiln_command(ws.root());
    c.args(["plan"])
        .env("CARGO_HOME", ws.path("cargo-home-2"))
        .env("RUSTUP_HOME", rustup_home());
    let r = run(c);
    r.failure(5, "check the network");
    assert!(r.stderr.contains("dep"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("inside a Cargo workspace"),
        "{}",
        r.stderr
    );
}

/// A package that needs a newer compiler: exit 4 naming the toolchain as the fix.
#[test]
fn a_rust_version_above_the_toolchain_says_to_update_it() {
    let ws = TempWorkspace::empty();
    tiny(&ws, "rust-version = \"1.999\"\n");
    ws.kiln(&["build", "--target", "amd64"])
        .failure(4, "newer toolchain");
    assert!(!ws.path("artifacts/checksums.json").exists());
}

/// `--locked` (or `locked = true`) with a lockfile that needs changes: exit 2 with the
/// fix, and `Cargo.lock` is not touched.
#[test]
fn locked_with_a_stale_lockfile_fails_and_leaves_it_alone() {
    let ws = TempWorkspace::empty();
    tiny(&ws, "");
    ws.write(
        "b/Cargo.toml",
        "[package]\nname = \"b\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    ws.write("b/src/lib.rs", "pub fn b() {}\n");
    ws.kiln(&["plan"]).success();
    let lock = ws.read("Cargo.lock");
    // A new dependency the lockfile doesn't have.
    let m = ws.read("a/Cargo.toml");
    ws.write(
        "a/Cargo.toml",
        &format!("{m}[dependencies]\nb = {{ path = \"../b\" }}\n"),
    );
    let r = ws.kiln(&["build", "--locked", "--target", "amd64"]);
    r.failure(2, "cargo update");
    assert_eq!(ws.read("Cargo.lock"), lock);
    ws.write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"a\"]\nresolver = \"2\"\n[workspace.metadata.kiln]\nlocked = true\n",
    );
    ws.kiln(&["plan"]).failure(2, "--locked");
    assert_eq!(ws.read("Cargo.lock"), lock);
    // Without it cargo may update the lockfile, as it always does.
    ws.write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"a\"]\nresolver = \"2\"\n",
    );
    ws.kiln(&["plan"]).success();
    assert_ne!(ws.read("Cargo.lock"), lock);
}

/// A build script that declares `links` but compiles nothing is pure Rust: the plan
/// says so and picks plain cargo.
#[test]
fn links_without_a_c_compiler_is_pure_rust() {
    let ws = TempWorkspace::empty();
    ws.write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"a\", \"sig\"]\nresolver = \"2\"\n",
    );
    ws.write(
        "sig/Cargo.toml",
        "[package]\nname = \"sig\"\nversion = \"0.1.0\"\nedition = \"2021\"\nlinks = \"sig\"\nbuild = \"build.rs\"\n",
    );
    ws.write(
        "sig/build.rs",
        "fn main() { println!(\"cargo:value=1\"); }\n",
    );
    ws.write("sig/src/lib.rs", "pub fn s() {}\n");
    ws.write(
        "a/Cargo.toml",
        "[package]\nname = \"a\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[dependencies]\nsig = { path = \"../sig\" }\n",
    );
    ws.write("a/src/main.rs", "fn main() { sig::s(); }\n");
    let r = ws.kiln(&["plan", "--message-format", "json"]);
    r.success();
    let step = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["reason"] == "plan-step")
        .unwrap();
    assert_eq!(step["c_deps"], serde_json::json!([]), "{step}");
    assert_eq!(step["backend"], "cargo");
    ws.kiln(&["plan"]).success();
    assert!(ws.kiln(&["plan"]).stderr.contains("pure Rust"));
}

/// On a Python that refuses `pip install` (PEP 668, Debian's /usr/bin/python3) and
/// without zig, `kiln setup` installs zig and cargo-zigbuild into an environment of
/// its own, and the build then finds them there without PATH changes.
#[test]
fn setup_works_on_an_externally_managed_python() {
    let system_python = Path::new("/usr/bin/python3");
    assert!(
        system_python.is_file(),
        "the test needs Debian's /usr/bin/python3 (.ci/run installs it)"
    );
    let marker = std::fs::read_dir("/usr/lib").unwrap().flatten().any(|d| {
        d.file_name().to_string_lossy().starts_with("python3")
            && d.path().join("EXTERNALLY-MANAGED").is_file()
    });
    assert!(
        marker,
        "/usr/bin/python3 is expected to be externally managed"
    );
    let ws = TempWorkspace::chronik_sources();
    let bin = ws.path("only-bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(system_python, bin.join("python3")).unwrap();
    // Rust's tools, and the system's, but no zig, no cargo-zigbuild, no pyenv.
    let cargo_bin = Path::new(&std::env::var_os("CARGO_HOME").map_or_else(
        || Path::new(&std::env::var_os("HOME").unwrap()).join(".cargo"),
        Into::into,
    ))
    .join("bin");
    let path = std::env::join_paths([
        bin.as_path(),
        &cargo_bin,
        Path::new("/usr/bin"),
        Path::new("/bin"),
    ])
    .unwrap();
    let tools = ws.path("kiln-tools");
    let kiln = |args: &[&str]| {
        let mut c = kiln_command(ws.root());
        c.args(args)
            .env("PATH", &path)
            .env("KILN_TOOLS_DIR", &tools)
            .env_remove("CARGO_ZIGBUILD_ZIG_PATH")
            .env_remove("VIRTUAL_ENV")
            .env_remove("PYENV_VERSION");
        run(c)
    };
    kiln(&["setup", "--check"]).failure(4, "zig");
    // An index that serves other bytes under the locked names and versions (a
    // compromised mirror): pip checks every wheel against kiln's lock and installs
    // nothing.
    let evil = ws.path("evil-index");
    std::fs::create_dir_all(&evil).unwrap();
    fake_wheel(&evil, "ziglang", "0.17.1");
    fake_wheel(&evil, "cargo_zigbuild", "0.24.1");
    let mut c = kiln_command(ws.root());
    c.args(["setup"])
        .env("PATH", &path)
        .env("KILN_TOOLS_DIR", &tools)
        .env("PIP_NO_INDEX", "1")
        .env("PIP_FIND_LINKS", &evil)
        .env_remove("CARGO_ZIGBUILD_ZIG_PATH")
        .env_remove("VIRTUAL_ENV")
        .env_remove("PYENV_VERSION");
    let refused = run(c);
    refused.failure(4, "failed");
    assert!(
        refused.stderr.contains("hash"),
        "pip's refusal is passed on: {}",
        refused.stderr
    );
    assert!(!tools.join("bin/zig").exists(), "nothing was linked");
    let s = kiln(&["setup"]);
    s.success();
    assert!(!s.stderr.contains("break-system-packages"), "{}", s.stderr);
    assert!(tools.join("venv/bin/cargo-zigbuild").is_file());
    // Isolated: only the locked wheels are importable, and only the tools (not the
    // environment's python3) go on PATH, so build scripts keep the system's Python.
    let cfg = std::fs::read_to_string(tools.join("venv/pyvenv.cfg")).unwrap();
    assert!(
        cfg.contains("include-system-site-packages = false"),
        "{cfg}"
    );
    for t in ["zig", "cargo-zigbuild"] {
        assert!(tools.join("bin").join(t).is_file(), "{t} is linked");
    }
    assert!(!tools.join("bin/python3").exists());
    let requirements = std::fs::read_to_string(tools.join("venv/kiln-requirements.txt")).unwrap();
    assert!(
        requirements.contains("cargo-zigbuild==") && requirements.contains("--hash=sha256:"),
        "{requirements}"
    );
    let still = Command::new(system_python)
        .args(["-c", "import ziglang"])
        .output()
        .unwrap();
    assert!(!still.status.success(), "the system Python was left alone");
    // kiln finds them there with the same PATH (its probe runs zig and
    // cargo-zigbuild); the build itself is the zig backend's, tested elsewhere.
    let check = kiln(&["setup", "--check"]);
    check.success();
    assert!(check.stderr.contains("Found zig"), "{}", check.stderr);
    assert!(
        check.stderr.contains("Found cargo-zigbuild"),
        "{}",
        check.stderr
    );
}

/// A wheel named like PyPI's `name` `version` for this machine, with other bytes.
fn fake_wheel(dir: &Path, name: &str, version: &str) {
    let tag = format!("py3-none-manylinux_2_17_{}", std::env::consts::ARCH);
    let file = dir.join(format!("{name}-{version}-{tag}.whl"));
    let info = format!("{name}-{version}.dist-info");
    let script = format!(
        "import zipfile\nz = zipfile.ZipFile({file:?}, 'w')\nz.writestr('{info}/METADATA', 'Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n')\nz.writestr('{info}/WHEEL', 'Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: {tag}\\n')\nz.writestr('{info}/RECORD', '')\nz.close()\n",
        file = file.display().to_string()
    );
    let mut python = Command::new("python3");
    python.args(["-c", &script]);
    run(python).success();
}

/// Builds whose stderr is not a terminal (CI logs) say they are alive while a slow
/// package compiles, and print a line per finished package.
#[test]
fn a_quiet_build_has_a_heartbeat_in_non_terminal_logs() {
    let ws = TempWorkspace::empty();
    tiny(&ws, "build = \"build.rs\"\n");
    ws.write(
        "a/build.rs",
        "fn main() { std::thread::sleep(std::time::Duration::from_secs(4)); }\n",
    );
    let mut c = kiln_command(ws.root());
    c.args(["build", "--target", "amd64"])
        .env("KILN_HEARTBEAT_SECS", "1");
    let r = run(c);
    r.success();
    let beats = r
        .stderr
        .lines()
        .filter(|l| l.contains("Compiling") && l.contains("crates done"))
        .count();
    assert!(beats >= 2, "{}", r.stderr);
    assert!(r.stderr.contains("Built a in"), "{}", r.stderr);
}

/// `--release`, `-vv`, `--workspace`, `--exclude` and `-p` globs work as in cargo.
#[test]
fn cargo_habits_are_accepted() {
    let ws = TempWorkspace::chronik_sources();
    let units = |args: &[&str]| {
        let mut full = vec!["plan", "--message-format", "json"];
        full.extend_from_slice(args);
        let r = ws.kiln(&full);
        r.success();
        let mut bins: Vec<String> = r
            .stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["reason"] == "plan-unit")
            .map(|e| e["binary"].as_str().unwrap().to_string())
            .collect();
        bins.sort();
        bins.dedup();
        bins
    };
    assert_eq!(
        units(&["--release", "-vv"]),
        ["chronik-cli", "chronik-server"]
    );
    assert_eq!(
        units(&["--workspace", "--exclude", "chronik-c*"]),
        ["chronik-server"]
    );
    assert_eq!(units(&["-p", "chronik-s*"]), ["chronik-server"]);
    ws.kiln(&["plan", "-p", "nothing-*"])
        .failure(2, "matches no member");
    ws.kiln(&["plan", "--exclude", "typo"])
        .failure(2, "matches no member");
    ws.kiln(&["plan", "--release", "--profile", "dev"])
        .failure(2, "cannot be used with");
}

/// The graph kiln analyses is the one cargo builds for the request's features:
/// `--features`, configured `features`, `--all-features`, `--no-default-features`
/// and `-p` change what compiles C and which system libraries are refused, and a
/// dependency of another platform (a `cfg(target_os = "haiku")` one, like
/// iana-time-zone-haiku) is never counted. Local stand-ins keep it offline: a
/// build-dependency named `cc` marks a C compile, a crate named `pq-sys` links libpq.
#[test]
fn features_decide_what_the_plan_analyses() {
    let ws = TempWorkspace::empty();
    ws.write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"app\", \"other\"]\nresolver = \"2\"\n",
    );
    let app = |default: &str| {
        format!(
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[features]\ndefault = [{default}]\nc = [\"dep:cdep\"]\npg = [\"dep:pq-sys\"]\n\n[dependencies]\ncdep = {{ path = \"../cdep\", optional = true }}\npq-sys = {{ path = \"../pq-sys\", optional = true }}\n\n[target.'cfg(target_os = \"haiku\")'.dependencies]\nhdep = {{ path = \"../hdep\" }}\n"
        )
    };
    ws.write("app/Cargo.toml", &app(""));
    ws.write("app/src/main.rs", "fn main() {}\n");
    ws.write(
        "other/Cargo.toml",
        "[package]\nname = \"other\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    ws.write("other/src/main.rs", "fn main() {}\n");
    for (name, build_dep) in [
        ("cdep", true),
        ("hdep", true),
        ("pq-sys", false),
        ("cc", false),
    ] {
        let mut m =
            format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n");
        if build_dep {
            m.push_str("\n[build-dependencies]\ncc = { path = \"../cc\" }\n");
            ws.write(&format!("{name}/build.rs"), "fn main() {}\n");
        }
        ws.write(&format!("{name}/Cargo.toml"), &m);
        ws.write(&format!("{name}/src/lib.rs"), "\n");
    }
    let c_deps = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["plan", "--message-format", "json", "-p", "app"];
        all.extend_from_slice(args);
        let run = ws.kiln(&all);
        run.success();
        let step: serde_json::Value = run
            .stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|e| e["reason"] == "plan-step")
            .unwrap_or_else(|| panic!("{}", run.stdout));
        serde_json::from_value(step["c_deps"].clone()).unwrap()
    };
    // Default features: nothing compiles C (hdep is Haiku's only).
    assert_eq!(c_deps(&[]), Vec::<String>::new());
    assert_eq!(c_deps(&["--features", "c"]), ["cdep"]);
    assert_eq!(c_deps(&["--features", "app/c"]), ["cdep"]);
    // A system library a static musl build can't find: refused before any build.
    let mut pg = ws.kiln(&["plan", "-p", "app", "--features", "pg"]);
    pg.failure(4, "pq-sys");
    pg = ws.kiln(&["plan", "-p", "app", "--all-features"]);
    pg.failure(4, "pq-sys");
    // A feature the selected package doesn't have is said plainly.
    ws.kiln(&["plan", "-p", "other", "--features", "c"])
        .failure(2, "has the feature `c`");
    // Default features on: C; `--no-default-features` turns them off.
    ws.write("app/Cargo.toml", &app("\"c\""));
    assert_eq!(c_deps(&[]), ["cdep"]);
    assert_eq!(c_deps(&["--no-default-features"]), Vec::<String>::new());
    // Features configured for the workspace count like `--features`.
    ws.write("app/Cargo.toml", &app(""));
    let m = ws.read("Cargo.toml");
    ws.write(
        "Cargo.toml",
        &format!("{m}\n[workspace.metadata.kiln]\nfeatures = [\"c\"]\n"),
    );
    assert_eq!(c_deps(&[]), ["cdep"]);
}

/// lemmy keeps its translations in a git submodule that a build script reads: cloned
/// without `--recursive`, the build failed 15 minutes in. kiln refuses before
/// compiling, naming the submodule, the member holding it and the fix; a submodule
/// outside every built member (docs) stops nothing.
#[test]
fn a_submodule_a_built_member_holds_must_be_checked_out_first() {
    let ws = TempWorkspace::empty();
    ws.write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"server\", \"email\"]\nresolver = \"2\"\n",
    );
    ws.write(
        "server/Cargo.toml",
        "[package]\nname = \"server\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nemail = { path = \"../email\" }\n",
    );
    ws.write("server/src/main.rs", "fn main() {}\n");
    ws.write(
        "email/Cargo.toml",
        "[package]\nname = \"email\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    ws.write("email/src/lib.rs", "");
    ws.write(
        ".gitmodules",
        "[submodule \"translations\"]\n\tpath = email/translations\n\turl = https://example.invalid/t.git\n[submodule \"docs\"]\n\tpath = docs/site\n\turl = https://example.invalid/d.git\n",
    );
    common::tool("git", &["init", "-q"], ws.root());
    std::fs::create_dir_all(ws.path("email/translations")).unwrap();
    let run = ws.kiln(&["plan", "--target", "amd64"]);
    run.failure(
        4,
        "the git submodule `email/translations` is not checked out, and `email` (built for `server`) holds it",
    );
    assert!(
        run.stderr
            .contains("git submodule update --init --recursive"),
        "{}",
        run.stderr
    );
    // Checked out: the plan goes ahead, though `docs/site` is still missing.
    ws.write("email/translations/en.json", "{}\n");
    ws.kiln(&["plan", "--target", "amd64"]).success();
}
