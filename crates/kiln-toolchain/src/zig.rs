//! Finding zig and its version cheaply.
//!
//! Asking `zig version` through a Python shim (pip's `ziglang`, often behind pyenv)
//! costs ~0.1 s, paid on every build because zig's version is part of every cache
//! key. [`ZigProbe`] splits the question: [`ZigProbe::lookup_key`] is computed
//! without starting any process, from everything that decides which zig runs (PATH,
//! the Python selectors, the files found on PATH); [`ZigProbe::locate`] does the
//! expensive probe once and returns the zig binary's path and a stamp of it, so a
//! remembered answer is used only while that binary is unchanged.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What a probe found: the zig binary, its file stamp and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZigProbe {
    /// The zig executable itself (not a shim).
    pub exe: PathBuf,
    /// `size mtime inode` of `exe` when it was probed.
    pub stamp: String,
    /// `zig version`.
    pub version: String,
}

/// `size mtime inode` of a file, or empty when it is missing.
pub fn file_stamp(path: &Path) -> String {
    let Ok(m) = std::fs::metadata(path) else {
        return String::new();
    };
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    format!("{} {mtime} {ino}", m.len())
}

impl ZigProbe {
    /// A key for remembering the probe: changes whenever a different zig could run.
    pub fn lookup_key() -> String {
        let mut parts: Vec<String> = [
            "PATH",
            "PYENV_VERSION",
            "VIRTUAL_ENV",
            "CONDA_PREFIX",
            "CARGO_ZIGBUILD_ZIG_PATH",
            "CARGO_ZIGBUILD_PYTHON_PATH",
        ]
        .iter()
        .map(|v| format!("{v}={}", std::env::var(v).unwrap_or_default()))
        .collect();
        for tool in ["zig", "python3"] {
            let found = kiln_fs::which(tool);
            let canonical = found.as_ref().and_then(|p| p.canonicalize().ok());
            parts.push(format!(
                "{tool} {found:?} {canonical:?} {}",
                found.as_deref().map(file_stamp).unwrap_or_default()
            ));
        }
        // pyenv picks the Python from version files: the nearest `.python-version`, then the global one.
        let cwd = std::env::current_dir().unwrap_or_default();
        let local = cwd
            .ancestors()
            .map(|d| d.join(".python-version"))
            .find(|p| p.is_file());
        let root = std::env::var_os("PYENV_ROOT")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
        for f in local.into_iter().chain(root.map(|r| r.join("version"))) {
            parts.push(format!(
                "{} {}",
                f.display(),
                std::fs::read_to_string(&f).unwrap_or_default().trim()
            ));
        }
        parts.join("\n")
    }

    /// Finds the zig binary cargo-zigbuild would run and asks its version (slow).
    pub fn locate() -> Option<ZigProbe> {
        let exe = std::env::var_os("CARGO_ZIGBUILD_ZIG_PATH")
            .map(PathBuf::from)
            .or_else(|| kiln_fs::which("zig").and_then(|z| zig_env_exe(&z)))
            .or_else(python_ziglang)?;
        let out = Command::new(&exe)
            .arg("version")
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Some(ZigProbe {
            stamp: file_stamp(&exe),
            exe,
            version,
        })
    }

    /// Makes `exe` the zig [`direct`] hands cargo-zigbuild, when nothing was found yet.
    pub fn remember(&self) {
        let _ = FOUND.set(Some(self.exe.clone()));
    }

    /// Whether the binary is still the one probed.
    pub fn still_valid(&self) -> bool {
        file_stamp(&self.exe) == self.stamp && !self.stamp.is_empty()
    }
}

/// The zig binary this process found (by [`ZigProbe::locate`] or a remembered probe).
static FOUND: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();

/// Points cargo-zigbuild (and the compiler wrapper scripts it writes) at the zig binary
/// itself. cargo-zigbuild otherwise prefers `python3 -m ziglang` whenever that imports,
/// and every C file then starts a Python (~50 ms): a third of OpenSSL's build time.
/// Its Python lookup is disabled with a path that cannot exist, so its fallback, the
/// zig binary, is the one kiln probed (same zig, same version, same keys).
pub fn direct(cmd: &mut Command) {
    let exe = FOUND.get_or_init(|| ZigProbe::locate().map(|p| p.exe));
    if let Some(exe) = exe {
        cmd.env("CARGO_ZIGBUILD_ZIG_PATH", exe).env(
            "CARGO_ZIGBUILD_PYTHON_PATH",
            "/dev/null/kiln-runs-zig-directly",
        );
    }
}

/// The real binary behind a `zig` on PATH (which may be a wrapper script).
fn zig_env_exe(zig: &Path) -> Option<PathBuf> {
    let out = Command::new(zig)
        .arg("env")
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `zig env` prints JSON (older) or ZON (newer); both have `zig_exe` with a quoted path.
    let after = &text[text.find("zig_exe")? + "zig_exe".len()..];
    let start = after.find('"')? + 1;
    let end = start + after[start..].find('"')?;
    Some(PathBuf::from(&after[start..end]))
}

/// The zig binary of pip's `ziglang` package for the Python cargo-zigbuild asks
/// (`CARGO_ZIGBUILD_PYTHON_PATH`, else `python3` on PATH).
fn python_ziglang() -> Option<PathBuf> {
    let python = std::env::var_os("CARGO_ZIGBUILD_PYTHON_PATH").unwrap_or_else(|| "python3".into());
    let out = Command::new(python)
        .args([
            "-c",
            "import ziglang, os; print(os.path.dirname(ziglang.__file__))",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    ["zig", "zig.exe"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}
