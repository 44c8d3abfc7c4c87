//! The toolchain file rustup would use for a directory: the one lookup every part of
//! kiln shares (cache keys, `kiln affected`, the build-graph memo).

use kiln_diagnostics::{Error, IoContext, Result};
use std::path::{Path, PathBuf};

/// The toolchain file that applies in `dir`, by rustup's rules: the nearest directory
/// (from `dir` up) holding `rust-toolchain` or `rust-toolchain.toml`; when a directory
/// has both, rustup uses `rust-toolchain`.
pub fn toolchain_file(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().find_map(|d| {
        ["rust-toolchain", "rust-toolchain.toml"]
            .iter()
            .map(|name| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Whether `rel` (a path relative to the workspace root) is the place of a toolchain
/// file that would apply to the whole workspace.
pub fn is_toolchain_file(rel: &Path) -> bool {
    rel == Path::new("rust-toolchain") || rel == Path::new("rust-toolchain.toml")
}

/// The toolchain a workspace pins in its toolchain file, by rustup's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    /// `1.80.0`, `stable`, `nightly-2025-01-01`.
    pub channel: String,
    /// Components the file lists (`clippy`, `rustfmt`).
    pub components: Vec<String>,
    /// Targets the file lists.
    pub targets: Vec<String>,
    /// `minimal`, `default`, `complete`; rustup's default when absent.
    pub profile: Option<String>,
    /// The file, for messages.
    pub file: PathBuf,
}

/// Reads the toolchain file that applies in `dir`: `None` without one, or when it names
/// a local toolchain (`path = ...`), which rustup doesn't install.
pub fn pinned(dir: &Path) -> Result<Option<Pinned>> {
    let Some(file) = toolchain_file(dir) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&file).io_context("read", &file)?;
    parse_pinned(&text, &file)
}

fn parse_pinned(text: &str, file: &Path) -> Result<Option<Pinned>> {
    let trimmed = text.trim();
    // The legacy form: one line, the channel.
    if !trimmed.is_empty() && !trimmed.contains('=') && !trimmed.contains('[') {
        return Ok(Some(Pinned {
            channel: checked_channel(trimmed, file)?,
            components: Vec::new(),
            targets: Vec::new(),
            profile: None,
            file: file.to_path_buf(),
        }));
    }
    let table: toml::Table = trimmed.parse().map_err(|e| {
        Error::usage(format!(
            "`{}` is not a valid toolchain file",
            file.display()
        ))
        .with_source(e)
        .hint("rustup's format: `[toolchain]` with `channel = \"1.80.0\"`")
    })?;
    let Some(t) = table.get("toolchain").and_then(|t| t.as_table()) else {
        return Ok(None);
    };
    let Some(channel) = t.get("channel").and_then(|c| c.as_str()) else {
        return Ok(None);
    };
    let list = |key: &str| -> Vec<String> {
        t.get(key)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str())
                    .filter(|s| is_rustup_name(s))
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(Some(Pinned {
        channel: checked_channel(channel, file)?,
        components: list("components"),
        targets: list("targets"),
        profile: t
            .get("profile")
            .and_then(|p| p.as_str())
            .filter(|p| is_rustup_name(p))
            .map(String::from),
        file: file.to_path_buf(),
    }))
}

/// Names rustup takes on its command line: no spaces, no options, nothing else.
fn is_rustup_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn checked_channel(channel: &str, file: &Path) -> Result<String> {
    if is_rustup_name(channel) {
        Ok(channel.to_string())
    } else {
        Err(Error::usage(format!(
            "`{}` pins a toolchain name rustup can't take",
            file.display()
        ))
        .hint("write a channel such as `stable`, `1.80.0` or `nightly-2025-01-01`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_wins_and_the_legacy_name_wins_in_one_directory() {
        let d = tempfile::tempdir().unwrap();
        let inner = d.path().join("ws/crates");
        std::fs::create_dir_all(&inner).unwrap();
        assert_eq!(toolchain_file(&inner), None);
        std::fs::write(d.path().join("rust-toolchain.toml"), "").unwrap();
        assert_eq!(
            toolchain_file(&inner),
            Some(d.path().join("rust-toolchain.toml"))
        );
        std::fs::write(d.path().join("ws/rust-toolchain.toml"), "").unwrap();
        std::fs::write(d.path().join("ws/rust-toolchain"), "").unwrap();
        assert_eq!(
            toolchain_file(&inner),
            Some(d.path().join("ws/rust-toolchain"))
        );
        assert!(is_toolchain_file(Path::new("rust-toolchain.toml")));
        assert!(!is_toolchain_file(Path::new(
            "crates/x/rust-toolchain.toml"
        )));
    }

    #[test]
    fn toolchain_files_in_both_forms() {
        let f = Path::new("rust-toolchain.toml");
        let p = parse_pinned(
            "[toolchain]\nchannel = \"1.80.0\"\ncomponents = [\"clippy\", \"rustfmt\"]\ntargets = [\"wasm32-unknown-unknown\"]\nprofile = \"minimal\"\n",
            f,
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.channel, "1.80.0");
        assert_eq!(p.components, ["clippy", "rustfmt"]);
        assert_eq!(p.targets, ["wasm32-unknown-unknown"]);
        assert_eq!(p.profile.as_deref(), Some("minimal"));
        let legacy = parse_pinned("nightly-2025-01-01\n", f).unwrap().unwrap();
        assert_eq!(legacy.channel, "nightly-2025-01-01");
        assert_eq!(
            parse_pinned("[toolchain]\npath = \"/opt/rust\"\n", f).unwrap(),
            None
        );
        assert!(parse_pinned("[toolchain]\nchannel = \"--help\"\n", f).is_err());
    }
}
