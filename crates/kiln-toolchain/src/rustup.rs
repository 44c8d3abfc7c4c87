//! The toolchain file rustup would use for a directory: the one lookup every part of
//! kiln shares (cache keys, `kiln affected`, the build-graph memo).

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
}
