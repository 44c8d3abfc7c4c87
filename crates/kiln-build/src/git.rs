//! The git revision an artifact was built from.

use kiln_schema::GitInfo;
use std::path::Path;
use std::process::Command;

/// The HEAD commit of the checkout holding `dir`, and whether tracked files differ
/// from it. Outside a git checkout both are empty.
pub fn git_info(dir: &Path) -> GitInfo {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = run(&["rev-parse", "--verify", "-q", "HEAD"]);
    let dirty = commit.is_some()
        && run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    GitInfo { commit, dirty }
}
