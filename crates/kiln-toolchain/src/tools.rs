//! Tools kiln installs for itself: a Python virtual environment holding zig (pip's
//! `ziglang`) and cargo-zigbuild, under kiln's data directory.
//!
//! A virtual environment works where installing into the system Python is refused
//! (PEP 668: Debian 12+, Ubuntu 24.04, Homebrew), never needs
//! `--break-system-packages`, and leaves the user's Python alone. Its `bin` is put
//! first on kiln's own PATH at start ([`activate`]), so kiln and the tools it runs
//! (cargo -> cargo-zigbuild -> python3 -m ziglang) find them without the user
//! changing PATH.

use kiln_diagnostics::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where kiln's tools live (`KILN_TOOLS_DIR` or the data directory), given once by
/// the CLI at start ([`activate`]) from its settings.
static TOOLS_DIR: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();

/// The virtual environment's directory, if kiln has a place for it.
pub fn tools_venv() -> Option<PathBuf> {
    TOOLS_DIR.get()?.as_ref().map(|d| d.join("venv"))
}

fn bin_dir(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts")
    } else {
        venv.join("bin")
    }
}

/// Records where kiln's tools live and puts their environment's `bin` first on this
/// process's PATH when it exists. Called once at start, before any thread, so every
/// lookup and child process agrees.
pub fn activate(tools_dir: Option<PathBuf>) {
    let _ = TOOLS_DIR.set(tools_dir);
    let Some(bin) = tools_venv().map(|v| bin_dir(&v)) else {
        return;
    };
    if !bin.is_dir() {
        return;
    }
    kiln_fs::put_first_on_path(&bin);
}

/// Installs `packages` from PyPI into kiln's environment, creating it first with
/// `python3 -m venv` (or `uv venv` where the venv module is missing).
pub fn install_python_tools(packages: &[&str]) -> Result<()> {
    let venv = tools_venv().ok_or_else(|| {
        Error::environment("no place for kiln's tools: neither KILN_TOOLS_DIR nor HOME is set")
            .hint("set KILN_TOOLS_DIR to a writable directory")
    })?;
    let python = bin_dir(&venv).join(if cfg!(windows) {
        "python.exe"
    } else {
        "python"
    });
    if !python.is_file() {
        create_venv(&venv)?;
    }
    let pip = run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(packages));
    let installed = match pip {
        Ok(()) => Ok(()),
        // A venv made by uv has no pip: uv installs into it.
        Err(e) if kiln_fs::which("uv").is_some() => run(Command::new("uv")
            .args(["pip", "install", "--quiet", "--python"])
            .arg(&python)
            .args(packages))
        .map_err(|_| e),
        Err(e) => Err(e),
    };
    installed.map_err(|why| {
        Error::environment(format!(
            "installing {} into kiln's Python environment failed: {why}",
            packages.join(", ")
        ))
        .hint(format!(
            "check that PyPI is reachable; the environment is `{}` (delete it to start over)",
            venv.display()
        ))
    })?;
    // Now that it exists, it goes first on PATH (the directory is known already).
    kiln_fs::put_first_on_path(&bin_dir(&venv));
    Ok(())
}

fn create_venv(venv: &Path) -> Result<()> {
    if let Some(parent) = venv.parent() {
        std::fs::create_dir_all(parent).map_err(|e| {
            Error::io("create kiln's tools directory", parent, e)
                .hint("set KILN_TOOLS_DIR to a writable directory")
        })?;
    }
    let python3 = kiln_fs::which("python3");
    // With the system's packages visible: the environment's `python3` comes first on
    // PATH, and must not hide what the system Python has (a ziglang installed there,
    // the modules build scripts import).
    let by_venv = python3.as_ref().map(|py| {
        run(Command::new(py)
            .args(["-m", "venv", "--system-site-packages"])
            .arg(venv))
    });
    if let Some(Ok(())) = by_venv {
        return Ok(());
    }
    // A half-made environment (venv without ensurepip) would stop the next attempt.
    let _ = std::fs::remove_dir_all(venv);
    if kiln_fs::which("uv").is_some()
        && run(Command::new("uv")
            .args(["venv", "--system-site-packages"])
            .arg(venv))
        .is_ok()
    {
        return Ok(());
    }
    let why = match (python3, by_venv) {
        (None, _) => "python3 is not installed".to_string(),
        (_, Some(Err(e))) => e,
        _ => "unknown".to_string(),
    };
    Err(Error::environment(format!(
        "can't create a Python virtual environment for zig and cargo-zigbuild: {why}"
    ))
    .hint("install Python's venv module (`apt-get install python3-venv` on Debian/Ubuntu) or uv, then run `kiln setup` again")
    .hint("or install zig and cargo-zigbuild yourself (`brew install zig` and `cargo install cargo-zigbuild`, or `pipx install cargo-zigbuild` and `pipx inject cargo-zigbuild ziglang`)"))
}

/// Runs a command quietly: `Err` with the last line of its stderr when it fails.
fn run(cmd: &mut Command) -> std::result::Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("can't run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("it failed")
        .trim()
        .to_string())
}
