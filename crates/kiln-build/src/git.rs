//! The git revision an artifact was built from.

use kiln_schema::GitInfo;
use kiln_workspace::git_line;
use std::path::Path;

/// The HEAD commit of the checkout holding `dir`, and whether tracked files differ
/// from it. Outside a git checkout both are empty.
pub fn git_info(dir: &Path) -> GitInfo {
    let run = |args: &[&str]| git_line(dir, args);
    let commit = run(&["rev-parse", "--verify", "-q", "HEAD"]);
    let dirty = commit.is_some()
        && run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    GitInfo { commit, dirty }
}
