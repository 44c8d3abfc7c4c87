//! Real-world workspaces: C dependencies from crates.io, hostile cargo configs and
//! feature unification. The fixtures share one target dir and one kiln cache, both
//! new for each run of this test binary (never left over from an earlier run).

use crate::common;

use common::{kiln_command, tool, Run, TempWorkspace};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The target dir and kiln cache the fixtures share, created for this run.
fn shared() -> &'static (tempfile::TempDir, PathBuf, PathBuf) {
    static SHARED: OnceLock<(tempfile::TempDir, PathBuf, PathBuf)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("kiln-native-")
            .tempdir()
            .unwrap();
        let (target, cache) = (dir.path().join("target"), dir.path().join("cache"));
        (dir, target, cache)
    })
}

/// `kiln build` in a fixture with its own target dir (one target dir serializes
/// builds: they would wait for each other) and the shared cache.
fn build(ws: &TempWorkspace, args: &[&str]) -> Run {
    let (_, _, cache) = shared();
    let mut cmd = kiln_command(ws.root());
    cmd.arg("build").args(args).env("KILN_CACHE_DIR", cache);
    Run::from(cmd.output().unwrap())
}

/// A one-package workspace with `deps` and `main.rs`.
fn fixture(name: &str, deps: &str, main: &str) -> TempWorkspace {
    let ws = TempWorkspace::empty();
    // These tests are about building C for two targets, not about fast binaries: the
    // release profile without optimisation (Rust and, through cc's OPT_LEVEL, C)
    // compiles several times faster and builds and links the same sources.
    ws.write("Cargo.toml", &format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n{deps}\n\n[profile.release]\nopt-level = 0\n"));
    ws.write("src/main.rs", main);
    ws
}

/// Runs an artifact natively (amd64) or under qemu (arm64) and returns its stdout.
fn run_artifact(ws: &TempWorkspace, arch: &str, bin: &str) -> String {
    let path = ws.path(&format!("artifacts/linux/{arch}/{bin}"));
    let file = tool("file", &["-b", path.to_str().unwrap()], ws.root());
    assert!(
        file.contains("statically linked") || file.contains("static-pie"),
        "{arch}: {file}"
    );
    match arch {
        "amd64" => tool(path.to_str().unwrap(), &[], ws.root()),
        _ => tool("qemu-aarch64-static", &[path.to_str().unwrap()], ws.root()),
    }
}

fn sha256_hex(data: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("data");
    std::fs::write(&f, data).unwrap();
    tool("sha256sum", &[f.to_str().unwrap()], Path::new("/"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

const RING_MAIN: &str = r#"fn main() {
    let d = ring::digest::digest(&ring::digest::SHA256, b"kiln");
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    println!("{hex}");
}
"#;

#[test]
fn ring_builds_for_both_arches_despite_a_hostile_cargo_config() {
    let ws = fixture("ring-sha", "ring = \"0.17\"", RING_MAIN);
    let config = "[build]\njobs = 512\n\n\
        [target.x86_64-unknown-linux-musl]\nlinker = \"clang\"\nrustflags = [\"-C\", \"link-arg=-fuse-ld=lld\", \"-C\", \"target-cpu=native\"]\n\n\
        [target.'cfg(all(target_arch = \"aarch64\", target_env = \"musl\"))']\nlinker = \"clang\"\nrustflags = [\"-C\", \"link-arg=-fuse-ld=lld\", \"-C\", \"target-cpu=native\"]\n\n\
        [profile.release]\ndebug = 1\n";
    ws.write(".cargo/config.toml", config);
    let run = build(&ws, &[]);
    run.success();
    for needle in [
        "linker `clang`",
        "`-C link-arg=-fuse-ld=lld`",
        "`-C target-cpu=native`",
        "`[build] jobs = 512`",
    ] {
        assert!(
            run.stderr.contains(needle),
            "{needle} not announced:\n{}",
            run.stderr
        );
    }
    let expected = sha256_hex(b"kiln");
    for arch in ["amd64", "arm64"] {
        assert_eq!(
            run_artifact(&ws, arch, "ring-sha").trim(),
            expected,
            "{arch}"
        );
    }
    assert_eq!(
        ws.read(".cargo/config.toml"),
        config,
        "the user's file is untouched"
    );
    let checksums = ws.read("artifacts/checksums.json");
    assert!(
        checksums.contains("target-cpu=native"),
        "overrides are recorded:\n{checksums}"
    );
}

#[test]
fn zstd_sys_with_bindgen_reads_the_target_headers() {
    let main = "fn main() {\n    let v = unsafe { zstd_sys::ZSTD_versionNumber() };\n    println!(\"zstd {}\", v / 10000);\n}\n";
    let ws = fixture(
        "zstd-rt",
        "zstd-sys = { version = \"2\", features = [\"bindgen\"] }",
        main,
    );
    build(&ws, &[]).success();
    for arch in ["amd64", "arm64"] {
        assert_eq!(
            run_artifact(&ws, arch, "zstd-rt").trim(),
            "zstd 1",
            "{arch}"
        );
    }
}

#[test]
fn features_are_those_of_the_package_not_the_whole_workspace() {
    let ws = TempWorkspace::empty();
    ws.write(
        "Cargo.toml",
        "[workspace]\nresolver = \"2\"\nmembers = [\"greet\", \"app\", \"it\"]\n",
    );
    ws.write("greet/Cargo.toml", "[package]\nname = \"greet\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[features]\nloud = []\n");
    ws.write(
        "greet/src/lib.rs",
        "pub fn hello() -> &'static str {\n    if cfg!(feature = \"loud\") { \"HELLO\" } else { \"hello\" }\n}\n",
    );
    ws.write("app/Cargo.toml", "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ngreet = { path = \"../greet\" }\n");
    ws.write(
        "app/src/main.rs",
        "fn main() { println!(\"{}\", greet::hello()); }\n",
    );
    // A test-only member that switches the feature on: `cargo build` at the root would
    // unify it into app's build.
    ws.write(
        "it/Cargo.toml",
        "[package]\nname = \"it\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ngreet = { path = \"../greet\", features = [\"loud\"] }\n",
    );
    ws.write(
        "it/src/lib.rs",
        "pub fn check() -> &'static str { greet::hello() }\n",
    );
    build(&ws, &["--target", "amd64"]).success();
    assert_eq!(run_artifact(&ws, "amd64", "app").trim(), "hello");
}

const OPENSSL_MAIN: &str = r#"fn main() {
    let d = openssl::sha::sha256(b"kiln");
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    println!("{hex}");
}
"#;

#[test]
fn openssl_without_vendored_is_provisioned_once_and_reused() {
    // arm64 only, the cross-compiled case on an x86_64 host: building OpenSSL is
    // minutes of C per target, and both arches' C builds are covered by the ring and
    // aws-lc tests.
    let first = fixture("ssl-sha", "openssl = \"0.10\"", OPENSSL_MAIN);
    let m = first.read("Cargo.toml");
    first.write(
        "Cargo.toml",
        &format!("{m}\n[workspace.metadata.kiln]\ntargets = [\"arm64\"]\n"),
    );
    // The team's shared cache, which this build fills.
    let remote = tempfile::tempdir().unwrap();
    let remote_url = format!("file://{}", remote.path().display());
    let (_, target, cache) = shared();
    let mut cmd = kiln_command(first.root());
    cmd.arg("build")
        .env("CARGO_TARGET_DIR", target)
        .env("KILN_CACHE_DIR", cache)
        .env("KILN_REMOTE_CACHE", &remote_url)
        .env("KILN_CACHE_UPLOAD", "always");
    let run = Run::from(cmd.output().unwrap());
    run.success();
    assert!(
        run.stderr.contains("building a static OpenSSL"),
        "{}",
        run.stderr
    );
    let expected = sha256_hex(b"kiln");
    assert_eq!(run_artifact(&first, "arm64", "ssl-sha").trim(), expected);
    // The exact OpenSSL is recorded and in the SBOM, with musl beside it.
    let checksums: serde_json::Value =
        serde_json::from_str(&first.read("artifacts/checksums.json")).unwrap();
    let linked = &checksums["artifacts"][0]["linked"];
    assert_eq!(linked[0]["name"], "OpenSSL", "{linked}");
    assert_eq!(linked[0]["version"], "3.6.3");
    assert_eq!(linked[0]["source"], "openssl-src 300.6.1+3.6.3");
    assert_eq!(linked[0]["license"], "Apache-2.0");
    assert_eq!(linked[1]["name"], "musl");
    let spdx: serde_json::Value =
        serde_json::from_str(&first.read("artifacts/linux/arm64/ssl-sha.spdx.json")).unwrap();
    let text = spdx.to_string();
    assert!(text.contains("pkg:generic/openssl@3.6.3"), "{text}");
    assert!(text.contains("STATIC_LINK"));
    // Built from the sources kiln's lockfile pins.
    let lock = std::fs::read_to_string(cache.join("v1/native/openssl-helper/Cargo.lock")).unwrap();
    assert!(
        lock.contains("name = \"openssl-src\"\nversion = \"300.6.1+3.6.3\""),
        "{lock}"
    );
    // The build trees (~100 MB per target) are gone once the libraries are installed.
    // (the shared cache, as above)
    let leftovers: Vec<_> = walk_dirs(cache)
        .into_iter()
        .filter(|d| d.parent().is_some_and(|p| p.ends_with("openssl-build")))
        .filter(|d| d.to_string_lossy().ends_with("-musl"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A clone at another path, as another user with another target dir, restores the
    // binary: the provisioned OpenSSL enters keys by name, version and recipe, never
    // by where it is installed.
    let (other, root) = TempWorkspace::relocated_clone(&first);
    let run = common::kiln_elsewhere(&root, other.root(), cache, &["build"]);
    run.success();
    assert!(
        run.stderr.contains("Restored 1 binary from cache"),
        "{}",
        run.stderr
    );
    assert!(!common::cargo_ran_in(&other.path("other-target")));
    // Another workspace needing OpenSSL reuses the libraries built for the first.
    let second = fixture("ssl-sha-two", "openssl = \"0.10\"", OPENSSL_MAIN);
    let mut plan = kiln_command(second.root());
    plan.args(["plan"])
        .env("CARGO_TARGET_DIR", target)
        .env("KILN_CACHE_DIR", cache);
    let plan = Run::from(plan.output().unwrap());
    plan.success();
    assert!(
        plan.stderr
            .contains("OpenSSL for linux/arm64 (built already)"),
        "{}",
        plan.stderr
    );
    // As another machine of the team: the OpenSSL it provisioned and its local cache
    // entry gone, the shared remote there. The OpenSSL the first build made comes from
    // the remote (into the same place, so cargo rebuilds nothing for it); nobody builds
    // it again.
    for e in std::fs::read_dir(cache.join("v1/native"))
        .unwrap()
        .flatten()
    {
        if e.file_name().to_string_lossy().starts_with("openssl-") {
            std::fs::remove_dir_all(e.path()).unwrap();
        }
    }
    let entries = common::files_under(&cache.join("v1/entries"));
    let native: Vec<_> = entries
        .iter()
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("\"kind\": \"native\"")))
        .collect();
    assert!(!native.is_empty(), "the local cache held the built OpenSSL");
    for p in native {
        std::fs::remove_file(p).unwrap();
    }
    let mut cmd = kiln_command(second.root());
    cmd.args(["build", "--target", "arm64"])
        .env("CARGO_TARGET_DIR", target)
        .env("KILN_CACHE_DIR", cache)
        .env("KILN_REMOTE_CACHE", &remote_url);
    let run = Run::from(cmd.output().unwrap());
    run.success();
    assert!(
        !run.stderr.contains("building a static OpenSSL"),
        "OpenSSL was built again:\n{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("restored the static OpenSSL for aarch64-unknown-linux-musl"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run_artifact(&second, "arm64", "ssl-sha-two").trim(),
        expected
    );
}

fn walk_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(e.path());
            out.extend(walk_dirs(&e.path()));
        }
    }
    out
}

#[test]
fn provisioning_switched_off_makes_openssl_the_error_with_both_fixes() {
    let ws = fixture("ssl-off", "openssl = \"0.10\"", OPENSSL_MAIN);
    let manifest = ws.read("Cargo.toml");
    ws.write(
        "Cargo.toml",
        &format!("{manifest}\n[workspace]\n[workspace.metadata.kiln]\nprovision-native = false\n"),
    );
    let run = build(&ws, &["--target", "arm64"]);
    run.failure(4, "provision-native = false");
    assert!(
        run.stderr.contains("ssl-off -> openssl -> openssl-sys"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("AARCH64_UNKNOWN_LINUX_MUSL_OPENSSL_DIR"),
        "{}",
        run.stderr
    );
    assert!(!ws.path("artifacts").exists());
}

#[test]
fn a_system_library_kiln_cannot_provide_names_the_crate_and_the_fixes() {
    let ws = fixture("uses-sqlite", "rusqlite = \"0.32\"", "fn main() {}\n");
    let run = build(&ws, &["--target", "arm64"]);
    run.failure(4, "`libsqlite3-sys` links the system SQLite library");
    assert!(
        run.stderr
            .contains("uses-sqlite -> rusqlite -> libsqlite3-sys"),
        "{}",
        run.stderr
    );
    // The fix as a command for the member that pulls it in, at the locked version (so
    // following it changes no other package of the lockfile).
    let locked = std::fs::read_to_string(ws.path("Cargo.lock")).unwrap();
    let version = locked
        .split("name = \"libsqlite3-sys\"\nversion = \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("libsqlite3-sys locked");
    let fix = format!("`cargo add -p uses-sqlite libsqlite3-sys@{version} --features bundled`");
    assert!(run.stderr.contains(&fix), "{fix} in {}", run.stderr);
    assert!(
        run.stderr
            .contains("AARCH64_UNKNOWN_LINUX_MUSL_SQLITE3_LIB_DIR"),
        "{}",
        run.stderr
    );
    ws.kiln(&["setup", "--check"]).failure(4, "libsqlite3-sys");
}

#[test]
fn aws_lc_lz4_and_zlib_build_their_c_for_both_arches() {
    let main = r#"fn main() {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"kiln");
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let lz4 = unsafe { lz4_sys::LZ4_versionNumber() };
    let z = unsafe { std::ffi::CStr::from_ptr(libz_sys::zlibVersion()) };
    println!("{hex} lz4={} zlib={}", lz4 / 10000, &z.to_str().unwrap()[..2]);
}
"#;
    let ws = fixture(
        "awslc-sha",
        "aws-lc-rs = \"1\"\nlz4-sys = \"1\"\nlibz-sys = { version = \"1\", features = [\"static\"] }",
        main,
    );
    build(&ws, &[]).success();
    let expected = format!("{} lz4=1 zlib=1.", sha256_hex(b"kiln"));
    for arch in ["amd64", "arm64"] {
        assert_eq!(
            run_artifact(&ws, arch, "awslc-sha").trim(),
            expected,
            "{arch}"
        );
    }
}
