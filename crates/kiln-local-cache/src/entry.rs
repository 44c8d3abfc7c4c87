//! What the cache stores per key.

use kiln_fingerprint::Inputs;
use kiln_schema::{InputId, InputValue};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// One cached artifact: where its bytes are, and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The input key.
    pub key: String,
    /// Target triple.
    pub target: String,
    /// SHA-256 of the blob (its name).
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Unix time it was made.
    pub created: u64,
    /// What the blob is: a binary, or a native library's prefix.
    pub artifact: Artifact,
    /// Ed25519 signatures (`NAME:<base64>`) over [`Entry::signed_bytes`], by the
    /// keys of whoever vouched for this entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<String>,
    /// Where this machine got the entry: kept in the local cache only, never
    /// uploaded, and never taken from a remote's bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

/// What a cache entry holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Artifact {
    /// A binary cargo built.
    Binary(BinaryEntry),
    /// A static native library kiln built for a `-sys` crate (its prefix, packed).
    Native(NativeEntry),
}

/// A cached binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryEntry {
    /// Package that owns the binary.
    pub package: String,
    /// Binary name.
    pub binary: String,
    /// Package version.
    pub version: String,
    /// Cargo profile.
    pub profile: String,
    /// `rustc -V`.
    pub rustc: String,
    /// Backend that built it.
    pub backend: kiln_schema::BackendKind,
    /// Overrides of the user's cargo config in effect, as data.
    #[serde(default)]
    pub overrides: Vec<kiln_schema::Override>,
    /// The inputs hashed into `key`, to explain later misses.
    pub inputs: Inputs,
}

/// A cached native library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeEntry {
    /// The `-sys` crate it is for (`openssl-sys`).
    #[serde(rename = "crate")]
    pub krate: String,
    /// The library (`OpenSSL`).
    pub library: String,
    /// Its source (`openssl-src 300.6.1+3.6.3`).
    pub source: String,
    /// The version of kiln's recipe.
    pub recipe: u32,
    /// The C compiler that built it (`zig 0.17.1`).
    pub compiler: String,
}

/// Where a local entry came from, which decides whether this machine may vouch for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Origin {
    /// Built on this machine.
    Built,
    /// Built by this CI run's own jobs and handed over directly (`kiln cache pull
    /// --vouch` of the run's slices): vouched for like a local build.
    Run,
    /// Restored from a remote with a valid signature of the trusted key `signer`.
    Verified {
        /// The key's name.
        signer: String,
    },
    /// Restored from a remote without a trusted signature (no keys were trusted).
    Unverified,
}

impl Entry {
    /// The canonical bytes a signature covers: every field but the signatures and
    /// the local origin.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let unsigned = Entry {
            signatures: Vec::new(),
            origin: None,
            ..self.clone()
        };
        kiln_fingerprint::canonical_encoding(&unsigned)
    }

    /// The trusted key that signed this entry, if one did.
    pub fn signer<'k>(&self, keys: &'k kiln_trust::TrustedKeys) -> Option<&'k str> {
        keys.verify(
            kiln_trust::Domain::Entry,
            &self.signed_bytes(),
            &self.signatures,
        )
    }

    /// Whether this machine can vouch for the entry: it built it (or this run did),
    /// or a trusted key signed it.
    pub fn vouched(&self) -> bool {
        matches!(
            self.origin,
            Some(Origin::Built | Origin::Run | Origin::Verified { .. })
        )
    }

    /// The entry as it is shared: without the local origin.
    pub fn shared(&self) -> Entry {
        Entry {
            origin: None,
            ..self.clone()
        }
    }

    /// Whether this entry is exactly the one asked for: the same key, target and
    /// subject. A remote entry that is not is never used, whatever its digest.
    pub fn answers(&self, want: &Wanted) -> bool {
        self.key == want.key && self.target == want.target && self.subject() == want.subject
    }

    /// What the entry is of.
    pub fn subject(&self) -> Subject {
        match &self.artifact {
            Artifact::Binary(b) => Subject::Binary {
                package: b.package.clone(),
                binary: b.binary.clone(),
            },
            Artifact::Native(n) => Subject::Native {
                krate: n.krate.clone(),
                library: n.library.clone(),
            },
        }
    }

    /// The binary it holds, for a binary entry.
    pub fn binary(&self) -> Option<&BinaryEntry> {
        match &self.artifact {
            Artifact::Binary(b) => Some(b),
            Artifact::Native(_) => None,
        }
    }

    /// The binary's or the library's name, for messages.
    pub fn name(&self) -> &str {
        match &self.artifact {
            Artifact::Binary(b) => &b.binary,
            Artifact::Native(n) => &n.library,
        }
    }
}

/// What an entry is of: a unit's binary or a native library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A binary of a package.
    Binary {
        /// Package.
        package: String,
        /// Binary.
        binary: String,
    },
    /// A native library for a `-sys` crate.
    Native {
        /// The `-sys` crate.
        krate: String,
        /// The library.
        library: String,
    },
}

impl Subject {
    /// The binary's or library's name, for messages.
    pub fn name(&self) -> &str {
        match self {
            Subject::Binary { binary, .. } => binary,
            Subject::Native { library, .. } => library,
        }
    }
}

/// What a lookup asks for: a key, and what it was computed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The cache key.
    pub key: String,
    /// Target triple.
    pub target: String,
    /// The binary or library.
    pub subject: Subject,
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
    /// Was cached but damaged; it has been removed.
    Corrupt(kiln_schema::CacheProblem),
    /// Cached, but restored from a remote without a signature of a key the
    /// workspace now trusts: not used (kept, in case the keys change back).
    Untrusted,
}

/// What a build learned its inputs are: for a package, what its build script declared
/// (`cargo:rerun-if-changed` / `rerun-if-env-changed`); for a binary (`reads-` ids),
/// what its compile read, from dep-info.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Learned {
    /// Files and directories, relative to the workspace root when inside it.
    pub files: BTreeSet<String>,
    /// Environment variable names.
    pub env: BTreeSet<String>,
    /// Members whose build script declared no `rerun-if-changed`: by cargo's rule,
    /// every file of theirs is an input (binary records only).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub whole: BTreeSet<String>,
    /// Signatures over [`Learned::signed_bytes`] (shared records only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<String>,
    /// Local only: some of it came from a remote record no trusted key signed, so
    /// this machine can't vouch for the record.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unvouched: bool,
}

/// Whether a variable name looks like a credential (`*TOKEN*`, `*SECRET*`,
/// `*PASSWORD*`, `*_KEY`, or a credential kiln knows by name). Such names are never
/// learned from a remote: a planted record would make kiln publish a hash of the
/// value in a key.
pub fn is_credential_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "TOKEN",
        "SECRET",
        "PASS",
        "CREDENTIAL",
        "APIKEY",
        "API_KEY",
        "PRIVATE",
        "COOKIE",
        "DATABASE_URL",
    ]
    .iter()
    .any(|w| upper.contains(w))
        || ["_KEY", "_KEY_ID", "_PEM", "_DSN", "_CERT", "_AUTH"]
            .iter()
            .any(|s| upper.ends_with(s))
        || kiln_config::sealed_names().any(|n| n == upper)
}

/// Whether a file a build reads looks like it holds a secret: `.env` files, keys
/// and certificates, `.netrc`, credentials files.
pub fn is_credential_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    name == ".env"
        || name.starts_with(".env.")
        || name == ".netrc"
        || name == ".npmrc"
        || name == ".pgpass"
        || name.starts_with("id_rsa")
        || name.starts_with("id_ed25519")
        || name.contains("credential")
        || name.contains("secret")
        || [".pem", ".key", ".p12", ".pfx", ".jks", ".keystore"]
            .iter()
            .any(|e| name.ends_with(e))
}

impl Entry {
    /// The variables and files whose content this entry's key covers that look like
    /// secrets (`DB_PASS`, `.env`): their hashes must not leave this machine, so
    /// such an entry is used here and never uploaded. Unset variables don't count.
    pub fn secret_inputs(&self) -> Vec<String> {
        let Artifact::Binary(b) = &self.artifact else {
            return Vec::new();
        };
        b.inputs
            .iter()
            .filter_map(|(id, value)| match id {
                InputId::Env { name }
                    if is_credential_name(name) && !matches!(value, InputValue::Missing) =>
                {
                    Some(name.clone())
                }
                InputId::File { path } if is_credential_file(path.as_str()) => {
                    Some(path.to_string())
                }
                _ => None,
            })
            .collect()
    }
}

impl Learned {
    /// The canonical bytes a signature covers: the package identity `id`, then the
    /// files and variables.
    pub fn signed_bytes(&self, id: &str) -> Vec<u8> {
        if self.whole.is_empty() {
            // The encoding records had before `whole`: their signatures still hold.
            return kiln_fingerprint::canonical_encoding(&(id, &self.files, &self.env));
        }
        kiln_fingerprint::canonical_encoding(&(id, &self.files, &self.env, &self.whole))
    }

    /// Adds `other`'s names: a record only grows (see docs/keys.md for why a larger
    /// record can't make a key miss a change).
    pub fn merge(&mut self, other: Learned) {
        self.files.extend(other.files);
        self.env.extend(other.env);
        self.whole.extend(other.whole);
    }

    /// The record as it is shared: the names only, no signatures or local flags.
    pub fn names(&self) -> Learned {
        Learned {
            files: self.files.clone(),
            env: self.env.clone(),
            whole: self.whole.clone(),
            ..Learned::default()
        }
    }

    /// What of a record from outside (a remote cache) may be used: files relative to
    /// the workspace that stay inside it, and well-formed variable names that don't
    /// look like credentials. The second list says what was dropped.
    pub fn from_outside(self) -> (Learned, Vec<String>) {
        let self_flags = Learned {
            signatures: self.signatures,
            unvouched: self.unvouched,
            ..Learned::default()
        };
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
                } else if is_credential_name(v) {
                    dropped.push(format!("credential-like variable {}", printable(v)));
                    return false;
                }
                ok
            })
            .collect();
        let whole = self
            .whole
            .into_iter()
            .filter(|m| {
                let ok = is_safe_component(m);
                if !ok {
                    dropped.push(format!("member {}", printable(m)));
                }
                ok
            })
            .collect();
        (
            Learned {
                files,
                env,
                whole,
                ..self_flags
            },
            dropped,
        )
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
            env: [
                "OK_VAR",
                "BAD VAR",
                "X=1",
                "REGISTRY_PASSWORD",
                "GH_TOKEN",
                "MY_SIGNING_KEY",
                "aws_secret_access_key",
                "REGISTRY_USERNAME",
            ]
            .map(String::from)
            .into(),
            ..Learned::default()
        };
        let (kept, dropped) = planted.from_outside();
        assert_eq!(kept.files.into_iter().collect::<Vec<_>>(), ["ok/file.h"]);
        assert_eq!(kept.env.into_iter().collect::<Vec<_>>(), ["OK_VAR"]);
        assert_eq!(dropped.len(), 10, "{dropped:?}");
        assert!(!is_credential_name("CC_x86_64_unknown_linux_musl"));
        assert!(!is_credential_name("KEYBOARD_LAYOUT"));
    }
}
