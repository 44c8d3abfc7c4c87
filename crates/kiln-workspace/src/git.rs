//! Running git: the one helper every crate uses to ask the checkout something.

use std::path::Path;
use std::process::Command;

/// Runs `git args` in `dir`: its stdout, or its stderr (trimmed) when it fails or
/// can't start. Nothing is read from the user's terminal.
pub fn git_bytes(dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("can't run git: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// [`git_bytes`] as text.
pub fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    git_bytes(dir, args).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The trimmed output of a git command that succeeded, else `None`.
pub fn git_line(dir: &Path, args: &[&str]) -> Option<String> {
    git(dir, args).ok().map(|s| s.trim().to_string())
}

/// The time every generated timestamp uses (image configs, SBOMs):
/// `SOURCE_DATE_EPOCH`, else the HEAD commit's time, else 0; never the clock, so a
/// rebuild of the same commit gives the same bytes.
pub fn source_date_epoch(root: &Path) -> u64 {
    if let Some(e) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return e;
    }
    git_line(root, &["log", "-1", "--format=%ct"])
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}
