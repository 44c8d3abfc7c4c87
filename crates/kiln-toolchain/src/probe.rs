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

/// The arguments of [`rustc_version`]'s `rustc`, for [`start_rustc_version`].
const RUSTC_VERSION_ARGS: &[&str] = &["-vV"];

/// Starts [`rustc_version`] for `dir` now, beside other work (`cargo metadata`).
pub fn start_rustc_version(dir: &Path) {
    kiln_workspace::early::start(&rustc(), RUSTC_VERSION_ARGS, dir);
}

/// `rustc -vV` as run in `dir` (so `rust-toolchain.toml` applies): the full text.
pub fn rustc_version(dir: &Path) -> Result<String> {
    kiln_workspace::early::output(&rustc(), RUSTC_VERSION_ARGS, dir)
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .ok_or_else(|| {
            Error::environment("failed to run `rustc -vV`").hint(
                "install Rust with rustup (https://rustup.rs) and make sure `rustc` is on PATH",
            )
        })
}

fn rustc() -> String {
    std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into())
}

/// The zig `kiln setup` installs (`ziglang` from PyPI at this version). Keys hold
/// zig's version; where zig is not installed yet, they assume this one, so a job that
/// only restores (a CI image job) needs no zig and still finds what `kiln setup` plus
/// a build would have stored.
pub const ZIG_VERSION: &str = "0.17.1";
/// The pip requirement for [`ZIG_VERSION`].
pub(crate) const ZIGLANG: &str = "ziglang==0.17.1";

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
    /// How to install it.
    pub install: Install,
}

/// How `kiln setup` installs a prerequisite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Install {
    /// A command (`rustup target add ...`).
    Command(Vec<String>),
    /// PyPI packages, into kiln's own Python environment.
    Python(Vec<&'static str>),
}

impl std::fmt::Display for Install {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Install::Command(c) => f.write_str(&c.join(" ")),
            Install::Python(p) => write!(
                f,
                "pip install {} into kiln's Python environment{}",
                p.join(" "),
                crate::tools::tools_venv()
                    .map(|v| format!(" ({})", v.display()))
                    .unwrap_or_default()
            ),
        }
    }
}

/// The toolchain `dir`'s toolchain file pins, when rustup doesn't have it: the name
/// rustup reports. Asked of rustup itself (its rules decide), without installing.
pub fn missing_toolchain(dir: &Path) -> Option<String> {
    let out = Command::new(rustc())
        .arg("--version")
        .current_dir(dir)
        .env("RUSTUP_AUTO_INSTALL", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    if out.status.success() {
        return None;
    }
    match kiln_workspace::classify(&String::from_utf8_lossy(&out.stderr)) {
        crate::CargoFailure::ToolchainMissing(name) => Some(name),
        _ => None,
    }
}

/// The command that installs a pinned toolchain with its components and targets,
/// and the musl targets kiln builds.
pub fn toolchain_install(p: &crate::Pinned, targets: &[Target]) -> Vec<String> {
    let mut cmd: Vec<String> = ["rustup", "toolchain", "install", &p.channel]
        .iter()
        .map(|s| s.to_string())
        .collect();
    cmd.extend([
        "--profile".to_string(),
        p.profile.clone().unwrap_or_else(|| "minimal".into()),
    ]);
    for c in &p.components {
        cmd.extend(["--component".to_string(), c.clone()]);
    }
    let mut triples: Vec<&str> = p.targets.iter().map(String::as_str).collect();
    triples.extend(targets.iter().map(|t| t.triple.as_str()));
    triples.sort_unstable();
    triples.dedup();
    for t in triples {
        cmd.extend(["--target".to_string(), t.to_string()]);
    }
    cmd
}

/// Checks the prerequisites for building `targets`, with or without C code.
#[derive(Debug)]
pub struct Probe;

impl Probe {
    /// Lists every prerequisite and whether it is present: the toolchain the
    /// workspace pins (first: the rest is installed into it), the targets' standard
    /// libraries, zig and cargo-zigbuild.
    pub fn check(dir: &Path, targets: &[Target], needs_zig: bool) -> Vec<Prerequisite> {
        let mut list = Vec::new();
        let pinned = crate::rustup::pinned(dir).ok().flatten();
        if let Some(p) = &pinned {
            let missing = missing_toolchain(dir);
            list.push(Prerequisite {
                name: format!(
                    "rust toolchain {} (pinned in {})",
                    p.channel,
                    file_name(&p.file)
                ),
                found: missing.is_none().then(|| "installed".to_string()),
                required: true,
                install: Install::Command(toolchain_install(p, targets)),
            });
        }
        let root = sysroot(dir);
        list.extend(targets.iter().map(|t| {
            let mut add: Vec<String> = vec!["rustup".into(), "target".into(), "add".into()];
            if let Some(p) = &pinned {
                add.extend(["--toolchain".into(), p.channel.clone()]);
            }
            add.push(t.triple.clone());
            Prerequisite {
                name: format!("rust target {}", t.triple),
                found: has_std(root.as_deref(), t).then(|| "installed".to_string()),
                required: true,
                install: Install::Command(add),
            }
        }));
        list.push(Prerequisite {
            name: "zig".into(),
            found: zig_version(),
            required: needs_zig,
            install: Install::Python(vec![ZIGLANG]),
        });
        list.push(Prerequisite {
            name: "cargo-zigbuild".into(),
            found: output(Command::new("cargo-zigbuild").arg("--version")),
            required: needs_zig,
            install: Install::Python(vec!["cargo-zigbuild"]),
        });
        list
    }

    /// Runs a prerequisite's install command, inheriting the terminal.
    pub fn install(dir: &Path, p: &Prerequisite) -> Result<()> {
        let command = match &p.install {
            Install::Python(packages) => return crate::tools::install_python_tools(packages),
            Install::Command(c) => c,
        };
        let (program, args) = command.split_first().expect("install command");
        let status = Command::new(program)
            .args(args)
            .current_dir(dir)
            .status()
            .map_err(|e| {
                Error::environment(format!("failed to run `{program}` to install {}", p.name))
                    .with_source(e)
                    .hint(format!("install {} by hand: `{}`", p.name, p.install))
            })?;
        if !status.success() {
            return Err(Error::environment(format!("`{}` failed", p.install)).hint(
                "check rustup's message above (network, disk space), then run `kiln setup` again",
            ));
        }
        Ok(())
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// How to get zig and cargo-zigbuild on any host.
pub(crate) fn zig_hint() -> String {
    "run `kiln setup` (it installs zig and cargo-zigbuild into a Python environment of its own), \
     or install them yourself (`brew install zig` and `cargo install cargo-zigbuild`)"
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_zig_is_the_one_pip_installs() {
        assert_eq!(ZIGLANG.strip_prefix("ziglang=="), Some(ZIG_VERSION));
    }
}
