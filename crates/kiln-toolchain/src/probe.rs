//! Finding (and, for `kiln setup`, installing) the tools a build needs.

use crate::Target;
use kiln_diagnostics::{Error, Result};
use std::path::Path;
use std::process::Command;

/// Runs a command and returns its trimmed stdout when it succeeds.
fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `rustc -vV` as run in `dir` (so `rust-toolchain.toml` applies): the full text.
pub fn rustc_version(dir: &Path) -> Result<String> {
    output(Command::new(rustc()).arg("-vV").current_dir(dir)).ok_or_else(|| {
        Error::environment("failed to run `rustc -vV`")
            .hint("install Rust with rustup (https://rustup.rs) and make sure `rustc` is on PATH")
    })
}

fn rustc() -> String {
    std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into())
}

/// The version of the zig compiler cargo-zigbuild would use, if any.
pub fn zig_version() -> Option<String> {
    output(Command::new("zig").arg("version"))
        .or_else(|| output(Command::new("python3").args(["-m", "ziglang", "version"])))
}

/// CPU names rustc knows for `triple` (`rustc --print target-cpus`), empty if unknown.
pub fn target_cpus(dir: &Path, triple: &str) -> Vec<String> {
    let text = output(
        Command::new(rustc())
            .args(["--print", "target-cpus", "--target", triple])
            .current_dir(dir),
    )
    .unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// The sysroot of the toolchain used in `dir` (so `rust-toolchain.toml` applies).
fn sysroot(dir: &Path) -> Option<String> {
    output(
        Command::new(rustc())
            .args(["--print", "sysroot"])
            .current_dir(dir),
    )
}

fn has_std(sysroot: Option<&str>, target: &Target) -> bool {
    sysroot.is_some_and(|s| {
        Path::new(s)
            .join("lib/rustlib")
            .join(&target.triple)
            .join("lib")
            .is_dir()
    })
}

/// Makes sure every target's standard library is installed for the toolchain used in
/// `dir`, adding missing ones with rustup. Returns the targets it had to install.
pub fn ensure_rust_targets<'a>(dir: &Path, targets: &[&'a Target]) -> Result<Vec<&'a Target>> {
    let root = sysroot(dir);
    let missing: Vec<&Target> = targets
        .iter()
        .copied()
        .filter(|t| !has_std(root.as_deref(), t))
        .collect();
    for target in &missing {
        let status = Command::new("rustup")
            .args(["target", "add", &target.triple])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .status();
        if !matches!(status, Ok(s) if s.success()) || !has_std(sysroot(dir).as_deref(), target) {
            return Err(Error::environment(format!(
                "the Rust target `{}` is not installed",
                target.triple
            ))
            .hint(format!("run `rustup target add {}`", target.triple))
            .hint("without rustup, install the standard library for that target by hand"));
        }
    }
    Ok(missing)
}

/// Whether `program` is an executable file on PATH (no process is started).
pub(crate) fn on_path(program: &str) -> bool {
    kiln_fs::which(program).is_some()
}

/// One tool a build needs, whether it is there, and how to get it.
#[derive(Debug, Clone)]
pub struct Prerequisite {
    /// What it is (`rust target aarch64-unknown-linux-musl`, `zig`).
    pub name: String,
    /// Its version or state when present.
    pub found: Option<String>,
    /// Whether the current workspace needs it (optional ones are reported only).
    pub required: bool,
    /// The command that installs it.
    pub install: Vec<String>,
}

/// Checks the prerequisites for building `targets`, with or without C code.
#[derive(Debug)]
pub struct Probe;

impl Probe {
    /// Lists every prerequisite and whether it is present.
    pub fn check(dir: &Path, targets: &[Target], needs_zig: bool) -> Vec<Prerequisite> {
        let root = sysroot(dir);
        let mut list: Vec<Prerequisite> = targets
            .iter()
            .map(|t| Prerequisite {
                name: format!("rust target {}", t.triple),
                found: has_std(root.as_deref(), t).then(|| "installed".to_string()),
                required: true,
                install: vec![
                    "rustup".into(),
                    "target".into(),
                    "add".into(),
                    t.triple.clone(),
                ],
            })
            .collect();
        let pip = pip_install(&["ziglang"]);
        list.push(Prerequisite {
            name: "zig".into(),
            found: zig_version(),
            required: needs_zig,
            install: pip,
        });
        list.push(Prerequisite {
            name: "cargo-zigbuild".into(),
            found: output(Command::new("cargo-zigbuild").arg("--version")),
            required: needs_zig,
            install: pip_install(&["cargo-zigbuild"]),
        });
        list
    }

    /// Runs a prerequisite's install command, inheriting the terminal.
    pub fn install(dir: &Path, p: &Prerequisite) -> Result<()> {
        let (program, args) = p.install.split_first().expect("install command");
        let status = Command::new(program)
            .args(args)
            .current_dir(dir)
            .status()
            .map_err(|e| {
                Error::environment(format!("failed to run `{program}` to install {}", p.name))
                    .with_source(e)
                    .hint(format!(
                        "install {} by hand: `{}`",
                        p.name,
                        p.install.join(" ")
                    ))
            })?;
        if !status.success() {
            return Err(
                Error::environment(format!("`{}` failed", p.install.join(" "))).hint(zig_hint()),
            );
        }
        Ok(())
    }
}

fn pip_install(packages: &[&str]) -> Vec<String> {
    let mut cmd: Vec<String> = ["python3", "-m", "pip", "install"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    cmd.extend(packages.iter().map(|s| s.to_string()));
    cmd
}

/// How to get zig and cargo-zigbuild on any host.
pub(crate) fn zig_hint() -> String {
    "install zig and cargo-zigbuild with `python3 -m pip install ziglang cargo-zigbuild` \
     (or `brew install zig` and `cargo install cargo-zigbuild` on macOS), or run `kiln setup`"
        .to_string()
}
