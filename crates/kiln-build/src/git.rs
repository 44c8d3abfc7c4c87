//! The git revision an artifact was built from.

use kiln_schema::GitInfo;
use kiln_workspace::git_line;
use std::path::Path;

/// The HEAD commit of the checkout holding `dir`, and whether tracked files differ
/// from it. Outside a git checkout both are empty.
pub fn git_info(dir: &Path) -> GitInfo {
    let run = |args: &[&str]| git_line(dir, args);
    let commit = run(HEAD_ARGS);
    let dirty = commit.is_some() && run(STATUS_ARGS).is_some_and(|s| !s.is_empty());
    GitInfo { commit, dirty }
}

const HEAD_ARGS: &[&str] = &["rev-parse", "--verify", "-q", "HEAD"];
const STATUS_ARGS: &[&str] = &["status", "--porcelain", "--untracked-files=no"];

/// Starts, beside `cargo metadata`, the probes a build of the workspace at `root`
/// runs whatever metadata says: `rustc -vV`, git's HEAD, status, commit time and file
/// list. Their answers are collected where they are used (`kiln_workspace::early`).
pub fn start_probes(root: &Path) {
    kiln_toolchain::start_rustc_version(root);
    let git = |args: &[&str]| kiln_workspace::start_git(root, args);
    git(HEAD_ARGS);
    git(STATUS_ARGS);
    git(kiln_fingerprint::LS_FILES_ARGS);
    if std::env::var_os("SOURCE_DATE_EPOCH").is_none() {
        git(kiln_workspace::EPOCH_ARGS);
    }
}
