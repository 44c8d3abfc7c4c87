//! A binary's key covers what its compile reads (learned from dep-info), so edits
//! cargo itself wouldn't recompile for (tests, docs, CI files) rebuild nothing, and
//! every edit cargo would recompile for rebuilds.

use crate::common::{self, plan_states, Run, TempWorkspace};
use std::process::Command;

const TRIPLE: &str = "x86_64-unknown-linux-musl";

/// A workspace whose root is the binary's package (ripgrep's layout) with two
/// members: `lib` (a build script declaring `rerun-if-changed=schema.txt`) and `gen`
/// (a build script declaring nothing: every file of it counts, cargo's rule).
fn root_package_workspace() -> TempWorkspace {
    let ws = TempWorkspace::empty();
    ws.write(
        "Cargo.toml",
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\nexclude = [\"data.txt\"]\n\n[dependencies]\nlib = { path = \"crates/lib\" }\ngen = { path = \"crates/gen\" }\n\n[workspace]\nmembers = [\"crates/*\"]\n",
    );
    ws.write(
        "src/main.rs",
        "mod net;\nmod linked;\n#[path = \"extra/p.rs\"]\nmod p;\nfn main() {\n    println!(\"{} {} {} {} {} {}\", include_str!(\"../data.txt\").trim(), env!(\"GREETING\"), lib::f(), gen::g(), net::N, p::P + linked::L);\n}\n",
    );
    ws.write("src/net.rs", "pub const N: u8 = 1;\n");
    ws.write("src/extra/p.rs", "pub const P: u8 = 2;\n");
    ws.write("shared/linked.rs", "pub const L: u8 = 3;\n");
    std::os::unix::fs::symlink("../shared/linked.rs", ws.path("src/linked.rs")).unwrap();
    ws.write("data.txt", "data\n");
    ws.write("tests/it.rs", "#[test]\nfn t() {}\n");
    ws.write("benches/b.rs", "fn main() {}\n");
    ws.write("examples/e.rs", "fn main() {}\n");
    ws.write("README.md", "# app\n");
    ws.write(".github/workflows/ci.yml", "on: push\n");
    ws.write(
        ".gitignore",
        "/target\n/.kiln-test-cache\n/cargo-target\n/artifacts\n",
    );
    ws.write(
        "crates/lib/Cargo.toml",
        "[package]\nname = \"lib\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    ws.write(
        "crates/lib/build.rs",
        "fn main() {\n    println!(\"cargo:rerun-if-changed=schema.txt\");\n    let s = std::fs::read_to_string(\"schema.txt\").unwrap();\n    println!(\"cargo:rustc-env=SCHEMA={}\", s.trim());\n}\n",
    );
    ws.write("crates/lib/schema.txt", "v1\n");
    ws.write("crates/lib/notes.txt", "notes\n");
    ws.write(
        "crates/lib/src/lib.rs",
        "pub fn f() -> &'static str {\n    env!(\"SCHEMA\")\n}\n",
    );
    ws.write(
        "crates/gen/Cargo.toml",
        "[package]\nname = \"gen\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    ws.write("crates/gen/build.rs", "fn main() {}\n");
    ws.write("crates/gen/notes.txt", "notes\n");
    ws.write("crates/gen/src/lib.rs", "pub fn g() -> u8 {\n    4\n}\n");
    common::tool("git", &["init", "-q"], ws.root());
    common::tool("git", &["add", "-A"], ws.root());
    ws
}

/// `kiln <args>` with the variable the binary's `env!` reads.
fn kiln(ws: &TempWorkspace, greeting: &str, args: &[&str]) -> Run {
    let mut cmd = common::kiln_command(ws.root());
    cmd.args(args).env("GREETING", greeting);
    Run::from(cmd.output().expect("run kiln"))
}

/// Whether `cargo build` (in a target dir of its own) recompiles any of the
/// workspace's crates: cargo's own rebuild decision.
fn cargo_recompiles(ws: &TempWorkspace, greeting: &str) -> bool {
    let out = Command::new("cargo")
        .args([
            "build",
            "--release",
            "--target",
            TRIPLE,
            "--message-format",
            "json",
        ])
        .current_dir(ws.root())
        .env("CARGO_TARGET_DIR", ws.path("cargo-target"))
        .env("GREETING", greeting)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().any(|l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        v["reason"] == "compiler-artifact"
            && v["fresh"] == false
            && v["package_id"]
                .as_str()
                .unwrap()
                .starts_with("path+file://")
    })
}

/// Whether kiln's plan rebuilds `app`, then builds so the next edit starts from a
/// built state.
fn kiln_rebuilds(ws: &TempWorkspace, greeting: &str) -> bool {
    let states = plan_states(&kiln(
        ws,
        greeting,
        &["plan", "--target", "amd64", "--message-format", "json"],
    ));
    kiln(ws, greeting, &["build", "--target", "amd64"]).success();
    assert_eq!(states.len(), 1, "{states:?}");
    states.values().all(|s| s == "rebuild")
}

#[test]
fn kiln_rebuilds_exactly_when_cargo_recompiles() {
    let ws = root_package_workspace();
    let mut greeting = "hello";
    kiln(&ws, greeting, &["build", "--target", "amd64"]).success();
    assert!(cargo_recompiles(&ws, greeting));
    let append = |rel: &str, text: &str| {
        let old = std::fs::read_to_string(ws.path(rel)).unwrap();
        ws.write(rel, &format!("{old}{text}"));
    };
    type Edit<'a> = (&'a str, bool, Box<dyn Fn() + 'a>);
    let edits: Vec<Edit> = vec![
        (
            "a source file",
            true,
            Box::new(|| append("src/net.rs", "// edit\n")),
        ),
        (
            "a new `mod` with its file",
            true,
            Box::new(|| {
                ws.write("src/added.rs", "pub const A: u8 = 5;\n");
                append("src/main.rs", "mod added;\n");
            }),
        ),
        (
            "a file behind include_str! (and in `exclude`)",
            true,
            Box::new(|| append("data.txt", "more\n")),
        ),
        (
            "a #[path] module",
            true,
            Box::new(|| append("src/extra/p.rs", "// edit\n")),
        ),
        (
            "a file only a test reads",
            false,
            Box::new(|| append("tests/it.rs", "// edit\n")),
        ),
        (
            "the README",
            false,
            Box::new(|| append("README.md", "more\n")),
        ),
        (
            "a .github workflow",
            false,
            Box::new(|| append(".github/workflows/ci.yml", "# edit\n")),
        ),
        (
            "a bench",
            false,
            Box::new(|| append("benches/b.rs", "// edit\n")),
        ),
        (
            "an example",
            false,
            Box::new(|| append("examples/e.rs", "// edit\n")),
        ),
        (
            "a rerun-if-changed file",
            true,
            Box::new(|| ws.write("crates/lib/schema.txt", "v2\n")),
        ),
        (
            "a file a declaring build script doesn't name",
            false,
            Box::new(|| append("crates/lib/notes.txt", "more\n")),
        ),
        (
            "any file of a package whose build script declares nothing",
            true,
            Box::new(|| append("crates/gen/notes.txt", "more\n")),
        ),
        (
            "an unread file deleted",
            false,
            Box::new(|| std::fs::remove_file(ws.path("tests/it.rs")).unwrap()),
        ),
        (
            "an unread file renamed",
            false,
            Box::new(|| std::fs::rename(ws.path("README.md"), ws.path("README.txt")).unwrap()),
        ),
        (
            "a symlinked source's target",
            true,
            Box::new(|| append("shared/linked.rs", "// edit\n")),
        ),
        (
            "a new file in src/ no `mod` names",
            false,
            Box::new(|| ws.write("src/unused.rs", "fn x() {}\n")),
        ),
    ];
    let mut report = Vec::new();
    for (what, expected, edit) in &edits {
        edit();
        let cargo = cargo_recompiles(&ws, greeting);
        let kiln = kiln_rebuilds(&ws, greeting);
        report.push(format!(
            "{what}: expected {expected}, cargo {cargo}, kiln {kiln}"
        ));
        assert!(
            cargo == *expected && kiln == *expected,
            "{}",
            report.join("\n")
        );
    }
    // An `env!` variable's value, last (it stays changed).
    greeting = "bonjour";
    assert!(cargo_recompiles(&ws, greeting), "env! value: cargo");
    assert!(kiln_rebuilds(&ws, greeting), "env! value: kiln");
    // And nothing changed: both leave it.
    assert!(!cargo_recompiles(&ws, greeting));
    assert!(!kiln_rebuilds(&ws, greeting));
}

/// The case on the example: tests, README and `.github/` edits leave every
/// unit fresh in `kiln affected` and `kiln build` compiles nothing.
#[test]
fn test_docs_and_ci_edits_leave_the_example_fresh() {
    let ws = TempWorkspace::chronik_sources_amd64();
    common::tool("git", &["init", "-q"], ws.root());
    ws.write(".gitignore", "/target\n/.kiln-test-cache\n/artifacts\n");
    common::tool("git", &["add", "-A"], ws.root());
    common::tool(
        "git",
        &[
            "-c",
            "user.name=k",
            "-c",
            "user.email=k@k",
            "commit",
            "-qm",
            "base",
        ],
        ws.root(),
    );
    ws.kiln(&["build"]).success();
    ws.write(
        "crates/chronik-storage/tests/extra.rs",
        "#[test]\nfn t() {}\n",
    );
    ws.write("crates/chronik-storage/README.md", "# chronik-storage\n");
    ws.write(".github/workflows/other.yml", "on: push\n");
    common::tool("git", &["add", "-A"], ws.root());
    let states = plan_states(&ws.kiln(&["plan", "--message-format", "json"]));
    assert!(states.values().all(|s| s == "fresh"), "{states:?}");
    assert_eq!(affected_units(&ws), Vec::<String>::new());
    let build = ws.kiln(&["build"]);
    build.success();
    assert!(build.stderr.contains("(2 fresh)"), "{}", build.stderr);
    // A source edit in the same package is one the binary reads.
    ws.write(
        "crates/chronik-storage/src/lib.rs",
        &format!(
            "{}\n// edit\n",
            ws.read("crates/chronik-storage/src/lib.rs")
        ),
    );
    assert_eq!(affected_units(&ws), ["chronik-server/linux-amd64"]);
}

/// `kiln affected --base HEAD` (the working tree against the last commit) as
/// `package/platform`.
fn affected_units(ws: &TempWorkspace) -> Vec<String> {
    let run = ws.kiln(&["affected", "--base", "HEAD", "--message-format", "json"]);
    run.success();
    let v: serde_json::Value = serde_json::from_str(run.stdout.lines().next().unwrap()).unwrap();
    v["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            format!(
                "{}/{}",
                u["package"].as_str().unwrap(),
                u["platform"].as_str().unwrap()
            )
        })
        .collect()
}
