//! mimalloc for static musl binaries, replacing musl's `malloc` without a code change.
//!
//! musl 1.2 lets a program define the whole `malloc` family itself (its own code
//! calls the public names), and in a static link an object's definitions win over
//! `libc.a`, whose malloc members are then never pulled in. So kiln compiles
//! mimalloc's single-file build (`static.c`) with `MI_MALLOC_OVERRIDE` into one
//! object per target, with zig (the same C compiler as the rest of the build), puts
//! it in a static library, and links that whole into the binary ahead of the libc
//! (`-l static:+whole-archive`, added by kiln as rustc wrapper). Ahead matters: lld
//! takes an archive member as soon as a symbol it defines is wanted, so an object
//! after `-lc` (where `-C link-arg` puts it) meets musl's malloc already taken.
//! The sources come from crates.io's `libmimalloc-sys`, pinned, so the object is the
//! same on every machine: no date, no paths, baseline CPU.

use kiln_diagnostics::{Error, IoContext, Result};
use kiln_fs::{lock, temp_path, write_atomic, LockMode};
use kiln_toolchain::wrapper::ALLOCATOR_LIB;
use kiln_toolchain::Target;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `libmimalloc-sys` release whose sources kiln builds.
pub const MIMALLOC_SYS_VERSION: &str = "0.1.49";
/// The mimalloc those sources are (its stable `v2` line).
pub const MIMALLOC_VERSION: &str = "2.3.2";
/// Bump when the flags below change what the library holds.
const RECIPE: u32 = 2;

/// What decides the object's bytes besides the C compiler: for cache keys.
pub fn mimalloc_identity() -> String {
    format!("mimalloc {MIMALLOC_VERSION} (libmimalloc-sys {MIMALLOC_SYS_VERSION}), recipe {RECIPE}")
}

/// zig's name of a musl target kiln can build mimalloc for.
fn zig_target(target: &Target) -> Result<String> {
    let arch = match target.rust_arch() {
        a @ ("x86_64" | "aarch64") => a,
        _ => {
            return Err(Error::usage(format!(
                "`allocator = \"mimalloc\"` supports the x86_64 and aarch64 musl targets, not {}",
                target.triple
            ))
            .hint("set the allocator per binary, or leave this target out"))
        }
    };
    Ok(format!("{arch}-linux-musl"))
}

/// Where the static library for `target` is kept under `root` (the native-library
/// cache): `lib`[`ALLOCATOR_LIB`]`.a`, one object inside.
pub fn mimalloc_library(root: &Path, target: &Target) -> PathBuf {
    root.join(format!(
        "mimalloc-{MIMALLOC_VERSION}-{}-r{RECIPE}",
        target.triple
    ))
    .join(format!("lib{ALLOCATOR_LIB}.a"))
}

/// The library for `target`, built now unless it is already under `root`; true
/// when built. `zig` is the compiler; concurrent kiln processes wait for each other.
pub fn provision_mimalloc(root: &Path, target: &Target, zig: &Path) -> Result<(PathBuf, bool)> {
    let library = mimalloc_library(root, target);
    if library.is_file() {
        return Ok((library, false));
    }
    std::fs::create_dir_all(root).io_context("create", root)?;
    let _lock = lock(&root.join(".mimalloc.lock"), LockMode::Exclusive)?;
    if library.is_file() {
        return Ok((library, false));
    }
    let zig_target = zig_target(target)?;
    let src = sources(root)?;
    let parent = library.parent().unwrap_or(root);
    std::fs::create_dir_all(parent).io_context("create", parent)?;
    let object = parent.join("mimalloc.o");
    let staging = temp_path(&object);
    let out = Command::new(zig)
        .args(["cc", "-target", &zig_target, "-mcpu=baseline", "-c"])
        .args([
            "-O3",
            "-fPIC",
            "-ftls-model=initial-exec",
            "-fno-builtin-malloc",
        ])
        .args([
            "-DMI_MALLOC_OVERRIDE",
            "-DMI_BUILD_RELEASE",
            "-DNDEBUG",
            "-DMI_DEBUG=0",
        ])
        // mimalloc prints its build date in verbose mode: a fixed one keeps the
        // object reproducible (zig refuses __DATE__ otherwise).
        .args([
            "-Wno-builtin-macro-redefined",
            "-D__DATE__=\"Jan 1 1970\"",
            "-D__TIME__=\"00:00:00\"",
        ])
        .arg("-I")
        .arg(src.join("include"))
        .arg("-I")
        .arg(src.join("src"))
        .arg(src.join("src/static.c"))
        .arg("-o")
        .arg(&staging)
        .output()
        .map_err(|e| Error::environment("failed to run zig to build mimalloc").with_source(e))?;
    let failed = |what: &str, out: &std::process::Output| {
        Error::environment(format!(
            "{what} mimalloc for {} failed:\n{}",
            target.triple,
            kiln_diagnostics::printable(&String::from_utf8_lossy(&out.stderr), 4000)
        ))
        .hint("set `allocator = \"system\"` to build with musl's malloc meanwhile")
    };
    if !out.status.success() {
        let _ = std::fs::remove_file(&staging);
        return Err(failed("compiling", &out));
    }
    // llvm-ar's `D`: zero dates and ids, so the library is as reproducible as the object.
    let archive = temp_path(&library);
    let out = Command::new(zig)
        .args(["ar", "rcsD"])
        .arg(&archive)
        .arg(&staging)
        .output()
        .map_err(|e| Error::environment("failed to run `zig ar`").with_source(e))?;
    let _ = std::fs::remove_file(&staging);
    if !out.status.success() {
        let _ = std::fs::remove_file(&archive);
        return Err(failed("archiving", &out));
    }
    std::fs::rename(&archive, &library).io_context("rename into", &library)?;
    Ok((library, true))
}

/// mimalloc's source tree (`v2`), from the pinned `libmimalloc-sys` that cargo
/// fetches into its registry (a helper manifest under `root` asks for it).
fn sources(root: &Path) -> Result<PathBuf> {
    let helper = root.join("mimalloc-helper");
    let manifest = format!(
        "[package]\nname = \"kiln-mimalloc-sources\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[workspace]\n\n[dependencies]\nlibmimalloc-sys = {{ version = \"={MIMALLOC_SYS_VERSION}\", default-features = false }}\n"
    );
    write_atomic(&helper.join("Cargo.toml"), manifest.as_bytes())?;
    write_atomic(&helper.join("src/lib.rs"), b"")?;
    let out = Command::new(kiln_toolchain::cargo_program())
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(helper.join("Cargo.toml"))
        .output()
        .map_err(|e| Error::environment("failed to run `cargo metadata`").with_source(e))?;
    if !out.status.success() {
        return Err(Error::environment(format!(
            "fetching mimalloc's sources (crates.io `libmimalloc-sys {MIMALLOC_SYS_VERSION}`) failed:\n{}",
            kiln_diagnostics::printable(&String::from_utf8_lossy(&out.stderr), 2000)
        ))
        .hint("kiln needs crates.io (or your registry mirror) once per machine for it; or set `allocator = \"system\"`"));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::environment("`cargo metadata` printed no JSON").with_source(e))?;
    let dir = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "libmimalloc-sys")
        .and_then(|p| p["manifest_path"].as_str())
        .and_then(|m| Path::new(m).parent().map(|d| d.join("c_src/mimalloc/v2")))
        .filter(|d| d.join("src/static.c").is_file())
        .ok_or_else(|| {
            Error::environment(format!(
                "`libmimalloc-sys {MIMALLOC_SYS_VERSION}` has no mimalloc sources where kiln expects them"
            ))
            .hint("set `allocator = \"system\"`, and report this to kiln")
        })?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_kept_per_target_and_version_and_only_x86_64_and_aarch64_musl_build() {
        let root = Path::new("/cache/native");
        let amd = Target::parse("amd64").unwrap();
        let arm = Target::parse("arm64").unwrap();
        assert_ne!(mimalloc_library(root, &amd), mimalloc_library(root, &arm));
        assert!(mimalloc_library(root, &amd)
            .to_string_lossy()
            .contains(MIMALLOC_VERSION));
        assert_eq!(zig_target(&arm).unwrap(), "aarch64-linux-musl");
        assert!(zig_target(&Target::parse("armv7-unknown-linux-musleabihf").unwrap()).is_err());
    }
}
