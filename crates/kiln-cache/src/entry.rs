//! What the cache stores per key.

use kiln_fingerprint::Inputs;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// One cached binary: where its bytes are and what produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The input key.
    pub key: String,
    /// Package that owns the binary.
    pub package: String,
    /// Binary name.
    pub binary: String,
    /// Target triple.
    pub target: String,
    /// Package version.
    pub version: String,
    /// SHA-256 of the binary (its blob's name).
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Cargo profile.
    pub profile: String,
    /// `rustc -V`.
    pub rustc: String,
    /// Backend that built it.
    pub backend: String,
    /// Overrides of the user's cargo config in effect, as data.
    #[serde(default)]
    pub overrides: Vec<kiln_schema::Override>,
    /// Unix time it was built.
    pub created: u64,
    /// The inputs hashed into `key`, to explain later misses.
    pub inputs: Inputs,
    /// Hex HMAC-SHA256 of [`Entry::signed_bytes`] with the team's signing key, when
    /// the uploader had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Entry {
    /// The canonical bytes a signature covers: every field but the signature.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let unsigned = Entry {
            signature: None,
            ..self.clone()
        };
        kiln_fingerprint::canonical_encoding(&unsigned)
    }

    /// Whether this entry is exactly the one asked for: the same key, package, binary
    /// and target. A remote entry that is not is never used, whatever its digest.
    pub fn answers(&self, want: &Wanted) -> bool {
        (&self.key, &self.package, &self.binary, &self.target)
            == (&want.key, &want.package, &want.binary, &want.target)
    }
}

/// What a lookup asks for: a key, and the unit it was computed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The cache key.
    pub key: String,
    /// Package.
    pub package: String,
    /// Binary.
    pub binary: String,
    /// Target triple.
    pub target: String,
}

/// Whether `name` can be one component of a path in the cache: not empty, at most
/// 255 bytes, no `/`, `\`, NUL or control characters, not `.` or `..`.
pub fn is_safe_component(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
}

/// Whether `name` is an environment variable name a build script may ask for:
/// `[A-Za-z_][A-Za-z0-9_.-]*` (the cc crate reads `CC_<target triple>`, with dashes).
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// The result of a lookup.
#[derive(Debug)]
pub enum Lookup {
    /// Found and verified: the entry and its blob.
    Hit(Box<Entry>, PathBuf),
    /// Not cached.
    Miss,
    /// Was cached but damaged; it has been removed. The reason says how.
    Corrupt(String),
}

/// Inputs build scripts declared with `cargo:rerun-if-changed` / `rerun-if-env-changed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Learned {
    /// Files and directories, relative to the workspace root when inside it.
    pub files: BTreeSet<String>,
    /// Environment variable names.
    pub env: BTreeSet<String>,
}

impl Learned {
    /// What of a record from outside (a remote cache) may be used: files relative to
    /// the workspace that stay inside it, and well-formed variable names. The second
    /// list says what was dropped.
    pub fn from_outside(self) -> (Learned, Vec<String>) {
        let mut dropped = Vec::new();
        let files = self
            .files
            .into_iter()
            .filter(|f| {
                let p = std::path::Path::new(f);
                let ok = !f.is_empty()
                    && !f.chars().any(char::is_control)
                    && p.components()
                        .all(|c| matches!(c, std::path::Component::Normal(_)));
                if !ok {
                    dropped.push(format!("file {}", printable(f)));
                }
                ok
            })
            .collect();
        let env = self
            .env
            .into_iter()
            .filter(|v| {
                let ok = is_env_name(v) && v.len() <= 255;
                if !ok {
                    dropped.push(format!("variable {}", printable(v)));
                }
                ok
            })
            .collect();
        (Learned { files, env }, dropped)
    }
}

/// `s` with control characters replaced and its length bounded, for messages about
/// data from outside.
pub fn printable(s: &str) -> String {
    format!("`{}`", kiln_diagnostics::printable(s, 80))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_shaped_names_and_bad_variables_are_refused() {
        for bad in ["", ".", "..", "../../tmp/x", "/tmp/x", "a\0b", "a\nb"] {
            assert!(!is_safe_component(bad), "{bad:?}");
        }
        assert!(is_safe_component("chronik-server"));
        assert!(is_env_name("CC_x86_64_unknown_linux_musl"));
        assert!(is_env_name("CC_aarch64-unknown-linux-musl"));
        assert!(
            !is_env_name("1X") && !is_env_name("A B") && !is_env_name("A=B") && !is_env_name("")
        );
        let planted = Learned {
            files: ["/etc/hostname", "../../../../root", "ok/file.h", "a/../b"]
                .map(String::from)
                .into(),
            env: ["OK_VAR", "BAD VAR", "X=1"].map(String::from).into(),
        };
        let (kept, dropped) = planted.from_outside();
        assert_eq!(kept.files.into_iter().collect::<Vec<_>>(), ["ok/file.h"]);
        assert_eq!(kept.env.into_iter().collect::<Vec<_>>(), ["OK_VAR"]);
        assert_eq!(dropped.len(), 5);
    }
}
