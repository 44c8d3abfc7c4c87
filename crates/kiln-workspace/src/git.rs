//! Running git: the one helper every crate uses to ask the checkout something.

use std::path::Path;

/// Runs `git args` in `dir`: its stdout, or its stderr (trimmed) when it fails or
/// can't start. Nothing is read from the user's terminal.
pub fn git_bytes(dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    // Outside any checkout git can only fail: say so without starting it.
    if std::env::var_os("GIT_DIR").is_none() && !in_checkout(dir) {
        return Err("not a git repository (no .git here or in any parent directory)".into());
    }
    let out = crate::early::output("git", args, dir).map_err(|e| format!("can't run git: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Starts `git args` in `dir` beside other work, for a later [`git_bytes`] of the
/// same command to collect (see [`crate::early`]).
pub fn start_git(dir: &Path, args: &[&str]) {
    if std::env::var_os("GIT_DIR").is_some() || in_checkout(dir) {
        crate::early::start("git", args, dir);
    }
}

/// Whether `dir` or a parent holds `.git` (a directory, or a worktree's file).
fn in_checkout(dir: &Path) -> bool {
    checkout_top(dir).is_some()
}

/// The nearest of `dir` and its parents that holds `.git`: the checkout's top.
fn checkout_top(dir: &Path) -> Option<std::path::PathBuf> {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
}

/// [`git_bytes`] as text.
pub fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    git_bytes(dir, args).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The trimmed output of a git command that succeeded, else `None`.
pub fn git_line(dir: &Path, args: &[&str]) -> Option<String> {
    git(dir, args).ok().map(|s| s.trim().to_string())
}

/// The git command [`source_date_epoch`] runs: the HEAD commit's time.
pub const EPOCH_ARGS: &[&str] = &["log", "-1", "--format=%ct"];

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
    git_line(root, EPOCH_ARGS)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

/// A repository URL without the user or token it may carry
/// (`https://user:token@host/o/r` is `https://host/o/r`), for anything kiln shares.
pub fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if path.is_empty() && !rest.contains('/') {
                format!("{scheme}://{host}")
            } else {
                format!("{scheme}://{host}/{path}")
            }
        }
        // scp-like `git@host:o/r`.
        None => url.split_once('@').map_or(url, |(_, h)| h).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_dropped_from_urls() {
        assert_eq!(
            without_credentials("https://u:t0ken@github.com/o/r.git"),
            "https://github.com/o/r.git"
        );
        assert_eq!(
            without_credentials("https://github.com/o/r"),
            "https://github.com/o/r"
        );
        assert_eq!(without_credentials("https://u@host"), "https://host");
        assert_eq!(
            without_credentials("git@github.com:o/r.git"),
            "github.com:o/r.git"
        );
    }
}

/// The git submodules of the checkout holding `dir` whose directory is missing or
/// empty (cloned without `--recursive`), as absolute paths. Read from `.gitmodules`
/// without running git: a build that needs one fails minutes in, a missing one is
/// seen in microseconds.
pub fn missing_submodules(dir: &Path) -> Vec<std::path::PathBuf> {
    let Some(top) = checkout_top(dir) else {
        return Vec::new();
    };
    let Ok(text) = std::fs::read_to_string(top.join(".gitmodules")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == "path").then(|| value.trim().trim_matches('"'))
        })
        // A path that climbs out of the checkout is no submodule of ours.
        .filter(|p| {
            !p.is_empty()
                && !Path::new(p)
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
        })
        .map(|p| top.join(p))
        .filter(|p| std::fs::read_dir(p).map_or(true, |mut d| d.next().is_none()))
        .collect()
}

#[cfg(test)]
mod submodule_tests {
    use super::*;

    #[test]
    fn a_submodule_without_files_is_missing_and_a_checked_out_one_is_not() {
        let top = std::env::temp_dir().join(format!("kiln-submodules-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&top);
        std::fs::create_dir_all(top.join(".git")).unwrap();
        std::fs::create_dir_all(top.join("crates/email/translations")).unwrap();
        std::fs::create_dir_all(top.join("vendor/full")).unwrap();
        std::fs::write(top.join("vendor/full/x"), "x").unwrap();
        std::fs::write(
            top.join(".gitmodules"),
            "[submodule \"t\"]\n\tpath = crates/email/translations\n\turl = https://example.invalid/t.git\n\
             [submodule \"f\"]\n\tpath = vendor/full\n[submodule \"gone\"]\n\tpath = \"never/cloned\"\n\
             [submodule \"evil\"]\n\tpath = ../outside\n",
        )
        .unwrap();
        let missing = missing_submodules(&top.join("crates"));
        assert_eq!(
            missing,
            [
                top.join("crates/email/translations"),
                top.join("never/cloned")
            ]
        );
        std::fs::remove_dir_all(&top).unwrap();
    }
}
