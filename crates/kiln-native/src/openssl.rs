//! A static OpenSSL for a musl target, built once from the `openssl-src` crate's
//! sources with the zig toolchain (through a tiny helper crate whose build script
//! drives `openssl-src`, so the same C compiler flags as the user's build apply).

use kiln_diagnostics::{Error, IoContext, Result};
use kiln_fs::{lock, write_atomic, LockMode};
use kiln_toolchain::Target;
use std::path::Path;
use std::process::Command;

/// The exact `openssl-src` provisioned builds use: its version is in every cache key
/// and record, so a new OpenSSL release (a security fix) is a new key everywhere.
/// Bump it with the lockfile beside this file (`cargo generate-lockfile` on the
/// helper manifest, then copy `Cargo.lock` to `openssl.lock`).
pub const OPENSSL_SRC_VERSION: &str = "300.6.1+3.6.3";

/// The helper crate's lockfile: the build resolves from it with `--locked`, so two
/// machines build OpenSSL from the same sources (and `cc`) whatever crates.io holds
/// by then.
const OPENSSL_LOCK: &str = include_str!("openssl.lock");

/// The OpenSSL release inside [`OPENSSL_SRC_VERSION`] (its build metadata).
pub fn openssl_version() -> &'static str {
    OPENSSL_SRC_VERSION
        .split_once('+')
        .map_or(OPENSSL_SRC_VERSION, |(_, v)| v)
}

const BUILD_RS: &str = r#"use std::path::{Path, PathBuf};

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target = std::env::var("TARGET").unwrap();
    let host = std::env::var("HOST").unwrap();
    let built = openssl_src::Build::new().target(&target).host(&host).out_dir(out.join("openssl")).build();
    let prefix = PathBuf::from(std::env::var("KILN_OPENSSL_PREFIX").unwrap());
    copy(built.lib_dir(), &prefix.join("lib"));
    copy(built.include_dir(), &prefix.join("include"));
    println!("cargo:rerun-if-env-changed=KILN_OPENSSL_PREFIX");
}
"#;

/// Builds OpenSSL for `target` into `prefix` unless it is already there. `root` holds
/// the helper crate and its target dir; concurrent kiln processes wait for each other.
/// `jobserver` hands the helper's cargo (and through it OpenSSL's `make`) the
/// jobserver kiln chose for it.
pub fn provision_openssl(
    root: &Path,
    target: &Target,
    prefix: &Path,
    jobserver: &dyn Fn(&mut Command),
) -> Result<bool> {
    if crate::is_intact(prefix) {
        return Ok(false);
    }
    let _lock = lock(&root.join(".openssl.lock"), LockMode::Exclusive)?;
    if crate::is_intact(prefix) {
        return Ok(false);
    }
    // An unsealed or changed prefix (an older kiln's, or tampered with) is rebuilt.
    if prefix.exists() {
        std::fs::remove_dir_all(prefix).io_context("remove", prefix)?;
    }
    for tool in ["perl", "make"] {
        if kiln_fs::which(tool).is_none() {
            return Err(Error::environment(format!("building OpenSSL for {} needs `{tool}`, which is not installed", target.triple))
                .hint(format!("install {tool} (e.g. `apt-get install {tool}`), or enable the `vendored` feature of openssl-sys")));
        }
    }
    let helper = root.join("openssl-helper");
    let exact = OPENSSL_SRC_VERSION.split('+').next().unwrap_or_default();
    let manifest = format!(
        "[package]\nname = \"kiln-openssl-provision\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[workspace]\n\n[build-dependencies]\nopenssl-src = \"={exact}\"\n"
    );
    write_atomic(&helper.join("Cargo.toml"), manifest.as_bytes())?;
    write_atomic(&helper.join("Cargo.lock"), OPENSSL_LOCK.as_bytes())?;
    write_atomic(&helper.join("build.rs"), BUILD_RS.as_bytes())?;
    write_atomic(&helper.join("src/lib.rs"), b"")?;
    // The prefix appears whole (sealed) or not at all.
    kiln_fs::install_dir(prefix, |staging| {
        let mut cmd = Command::new(kiln_toolchain::cargo_program());
        jobserver(&mut cmd);
        kiln_toolchain::direct_zig(&mut cmd);
        cmd.args([
            "zigbuild",
            "--release",
            "--locked",
            "--target",
            &target.triple,
            "--manifest-path",
        ])
        .arg(helper.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", root.join("openssl-build"))
        .env("KILN_OPENSSL_PREFIX", staging)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS");
        fixed_flags(&mut cmd, &target.triple);
        let out = cmd.output().map_err(|e| {
            Error::environment("failed to run `cargo zigbuild` to build OpenSSL").with_source(e)
        })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = stderr
                .lines()
                .rev()
                .take(25)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(Error::environment(format!("building OpenSSL for {} failed:\n{}", target.triple, tail.join("\n")))
                .hint("enable the `vendored` feature of openssl-sys to build it within your own build instead"));
        }
        crate::seal(staging)
    })?;
    // The build tree (~100 MB per target) is not needed once the prefix is installed.
    let _ = std::fs::remove_dir_all(root.join("openssl-build").join(&target.triple));
    Ok(true)
}

/// The compiler flags of a provisioned OpenSSL, the same on every machine whatever its
/// environment holds (the cache key doesn't read it): OpenSSL's own optimisation
/// (`-O3`, through cc from the release profile) and no debug info, which kiln's
/// stripped binaries would drop anyway and which makes the libraries three times the
/// size to store and download (the zig wrapper passes `-g`; cc puts `-g0` after it).
fn fixed_flags(cmd: &mut Command, triple: &str) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_PROFILE_")
            || k.starts_with("CFLAGS")
            || k.starts_with("TARGET_CFLAGS")
            || k.starts_with("CC_")
            || k == "OPT_LEVEL"
        {
            cmd.env_remove(k.as_ref());
        }
    }
    cmd.env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env(format!("CFLAGS_{triple}"), "-g0");
}

/// Removes what OpenSSL builds left behind (an interrupted build's tree), unless a
/// provisioning is running. Returns the bytes freed.
pub fn clean_build_dirs(root: &Path) -> Result<u64> {
    if !root.is_dir() {
        return Ok(0);
    }
    let _lock = lock(&root.join(".openssl.lock"), LockMode::Exclusive)?;
    let build = root.join("openssl-build");
    let bytes = dir_size(&build);
    if build.exists() {
        std::fs::remove_dir_all(&build).io_context("remove", &build)?;
    }
    Ok(bytes)
}

fn dir_size(p: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| dir_size(&e.path()))
        .sum()
}
