//! The typed inputs of a key, the key itself, and what changed between two lists.

use crate::canonical::encode;
use crate::path::RelPath;
use kiln_schema::{ConfigSource, Setting};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// Version of the key scheme; bump it whenever the set or meaning of inputs changes.
pub const KEY_VERSION: u32 = 2;

/// What an input is: its kind and the fields that name it. Two inputs with equal ids
/// are the same input in two builds, so a change of value is explained as a change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum InputId {
    /// The key scheme ([`KEY_VERSION`]).
    Scheme,
    /// Package, binary, target triple and profile.
    Unit,
    /// The feature flags of the build.
    Features,
    /// The backend and its version.
    Backend,
    /// The toolchain (`rustc -vV`).
    Toolchain,
    /// The toolchain file rustup reads.
    ToolchainFile,
    /// The root manifest's sections that change every binary.
    RootManifest,
    /// The cargo config files, by level.
    CargoConfig,
    /// An environment variable cargo, rustc, cc or a build script reads.
    Env {
        /// Its name.
        name: String,
    },
    /// A variable kiln sets for its cargo invocation.
    KilnEnv {
        /// Its name.
        name: String,
    },
    /// A setting of the user's configuration that kiln overrides for a target.
    Override {
        /// The target triple.
        target: String,
        /// Which setting.
        setting: Setting,
        /// For rustflags, the flag dropped (several can be).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flag: Option<String>,
    },
    /// A native library kiln provisions for a target.
    Native {
        /// The library (`OpenSSL`).
        library: String,
        /// The target triple.
        target: String,
    },
    /// A workspace member in the build graph.
    Package {
        /// Its name.
        name: String,
    },
    /// A package from outside the workspace in the build graph.
    Dep {
        /// Its name.
        name: String,
        /// Its version.
        version: String,
    },
    /// A file inside the workspace.
    File {
        /// Relative to the workspace root.
        path: RelPath,
    },
    /// A file outside the workspace a build script named (`rerun-if-changed`).
    External {
        /// Its absolute path, which is the same on every machine that has it.
        path: String,
    },
}

/// The value of an input. Nothing here is a sentence or a path of this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum InputValue {
    /// A version number.
    Number {
        /// The number.
        value: u32,
    },
    /// One binary of a package for one target and profile.
    Unit {
        /// Package.
        package: String,
        /// Binary.
        binary: String,
        /// Target triple.
        target: String,
        /// Cargo profile.
        profile: String,
    },
    /// Feature flags.
    Features {
        /// `--features`, sorted.
        features: Vec<String>,
        /// `--all-features`.
        all: bool,
        /// `--no-default-features`.
        no_default: bool,
    },
    /// A tool and its version.
    Tool {
        /// Its name.
        name: String,
        /// Its version, empty when it has none of its own.
        version: String,
    },
    /// Content, by its SHA-256 (files, environment values, configuration).
    Digest {
        /// Hex SHA-256.
        sha256: String,
    },
    /// Absent: a file that is missing, a variable that is unset.
    Missing,
    /// A short value kiln itself chose (never user data, never a path).
    Text {
        /// The value.
        value: String,
    },
    /// What an override does.
    Override {
        /// The user's value.
        from: String,
        /// kiln's value; `None` when dropped.
        to: Option<String>,
        /// Where the user's value came from.
        source: Option<ConfigSource>,
    },
    /// A provisioned native library.
    Native {
        /// The library's source version.
        version: String,
        /// The version of kiln's build recipe for it.
        recipe: u32,
    },
    /// A workspace member.
    Package {
        /// Its version.
        version: String,
        /// Its enabled features, sorted.
        features: Vec<String>,
    },
    /// An external package.
    Dep {
        /// Where it comes from (registry, git URL, or the digest of a path package).
        source: String,
        /// `Cargo.lock` checksum, empty when it has none.
        checksum: String,
        /// Its enabled features, sorted.
        features: Vec<String>,
    },
    /// Config files, nearest first.
    Configs {
        /// Each file's level and the digest of what in it can change a build.
        files: Vec<(ConfigSource, String)>,
    },
}

impl InputValue {
    /// The digest of `bytes`.
    pub fn digest(bytes: &[u8]) -> Self {
        InputValue::Digest {
            sha256: kiln_fs::sha256_hex(bytes),
        }
    }
}

/// One input: what it is and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// What it is.
    pub id: InputId,
    /// Its value.
    pub value: InputValue,
}

/// The inputs of one cache key, each once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<Input>", into = "Vec<Input>")]
pub struct Inputs(BTreeMap<InputId, InputValue>);

impl From<Vec<Input>> for Inputs {
    fn from(list: Vec<Input>) -> Self {
        Inputs(list.into_iter().map(|i| (i.id, i.value)).collect())
    }
}

impl From<Inputs> for Vec<Input> {
    fn from(inputs: Inputs) -> Self {
        inputs
            .0
            .into_iter()
            .map(|(id, value)| Input { id, value })
            .collect()
    }
}

impl Inputs {
    /// Starts a list holding the key version.
    pub fn new() -> Self {
        let mut i = Self::default();
        i.add(InputId::Scheme, InputValue::Number { value: KEY_VERSION });
        i
    }

    /// Adds (or replaces) one input.
    pub fn add(&mut self, id: InputId, value: InputValue) {
        self.0.insert(id, value);
    }

    /// The value of one input.
    pub fn get(&self, id: &InputId) -> Option<&InputValue> {
        self.0.get(id)
    }

    /// Every input, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&InputId, &InputValue)> {
        self.0.iter()
    }

    /// How many inputs there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The canonical bytes the key hashes: every input's id and value encoded
    /// canonically, in the order of the encoded ids (not of any Rust declaration).
    pub fn encoding(&self) -> Vec<u8> {
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = self
            .0
            .iter()
            .map(|(id, v)| (encode(id), encode(v)))
            .collect();
        entries.sort();
        let mut out = b"kiln-key\0".to_vec();
        out.extend((entries.len() as u64).to_be_bytes());
        for (id, v) in entries {
            out.extend((id.len() as u64).to_be_bytes());
            out.extend(id);
            out.extend((v.len() as u64).to_be_bytes());
            out.extend(v);
        }
        out
    }

    /// The cache key: hex SHA-256 of [`Inputs::encoding`].
    pub fn key(&self) -> String {
        kiln_fs::hex(&Sha256::digest(self.encoding()))
    }
}

/// One input that differs between two lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Which input.
    pub id: InputId,
    /// Its old value; `None` when it was added.
    pub old: Option<InputValue>,
    /// Its new value; `None` when it was removed.
    pub new: Option<InputValue>,
}

/// The inputs that differ between an old and a new list, in id order.
pub fn diff(old: &Inputs, new: &Inputs) -> Vec<Change> {
    let mut ids: Vec<&InputId> = old.0.keys().chain(new.0.keys()).collect();
    ids.sort();
    ids.dedup();
    ids.into_iter()
        .filter(|id| old.0.get(*id) != new.0.get(*id))
        .map(|id| Change {
            id: id.clone(),
            old: old.0.get(id).cloned(),
            new: new.0.get(id).cloned(),
        })
        .collect()
}

impl fmt::Display for Change {
    /// The change in words: "crates/x/src/lib.rs changed", "RUSTFLAGS changed".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match (&self.old, &self.new) {
            (None, _) => "added",
            (_, None) => "removed",
            _ => "changed",
        };
        match &self.id {
            InputId::Scheme => write!(f, "kiln's cache key format changed"),
            InputId::Unit => write!(f, "the binary's package, target or profile changed"),
            InputId::Features => write!(f, "the feature flags changed"),
            InputId::Backend => match (&self.old, &self.new) {
                (
                    Some(InputValue::Tool {
                        name: a,
                        version: va,
                    }),
                    Some(InputValue::Tool {
                        name: b,
                        version: vb,
                    }),
                ) => {
                    write!(f, "backend changed: {} -> {}", tool(a, va), tool(b, vb))
                }
                _ => write!(f, "the backend changed"),
            },
            InputId::Toolchain => write!(f, "the Rust toolchain changed (`rustc -vV`)"),
            InputId::ToolchainFile => write!(f, "the toolchain file {how}"),
            InputId::RootManifest => write!(
                f,
                "the root Cargo.toml's [profile], [patch], [replace] or [workspace.package] changed"
            ),
            InputId::CargoConfig => write!(f, "{}", config_change(&self.old, &self.new)),
            InputId::Env { name } => match how {
                "added" => write!(f, "{name} was set"),
                "removed" => write!(f, "{name} was unset"),
                _ => write!(f, "{name} changed"),
            },
            InputId::KilnEnv { name } => match (&self.old, &self.new) {
                (Some(InputValue::Text { value: a }), Some(InputValue::Text { value: b })) => {
                    write!(f, "kiln's {name} changed: {a} -> {b}")
                }
                _ => write!(f, "kiln's {name} {how}"),
            },
            InputId::Override {
                target, setting, ..
            } => {
                write!(
                    f,
                    "{}",
                    override_change(setting.name(), target, &self.old, &self.new)
                )
            }
            InputId::Native { library, target } => {
                write!(f, "the provisioned {library} for {target} {how}")
            }
            InputId::Package { name } => match (&self.old, &self.new) {
                (
                    Some(InputValue::Package {
                        version: va,
                        features: fa,
                    }),
                    Some(InputValue::Package {
                        version: vb,
                        features: fb,
                    }),
                ) if va == vb => write!(
                    f,
                    "features of {name} changed: [{}] -> [{}]",
                    fa.join(","),
                    fb.join(",")
                ),
                (
                    Some(InputValue::Package { version: va, .. }),
                    Some(InputValue::Package { version: vb, .. }),
                ) => {
                    write!(f, "version of {name} changed: {va} -> {vb}")
                }
                _ => write!(f, "package {name} {how}"),
            },
            InputId::Dep { name, version } => match (&self.old, &self.new) {
                (
                    Some(InputValue::Dep { features: fa, .. }),
                    Some(InputValue::Dep { features: fb, .. }),
                ) if fa != fb => {
                    write!(
                        f,
                        "features of dependency {name} {version} changed: [{}] -> [{}]",
                        fa.join(","),
                        fb.join(",")
                    )
                }
                _ => write!(f, "dependency {name} {version} {how}"),
            },
            InputId::File { path } => write!(f, "{path} {how}"),
            InputId::External { path } => write!(f, "{path} (outside the workspace) {how}"),
        }
    }
}

fn tool(name: &str, version: &str) -> String {
    match version {
        "" => name.to_string(),
        v => format!("{name} {v}"),
    }
}

fn override_change(
    setting: &str,
    target: &str,
    old: &Option<InputValue>,
    new: &Option<InputValue>,
) -> String {
    let show = |v: &Option<InputValue>| match v {
        Some(InputValue::Override { from, to, .. }) => {
            format!("{from} -> {}", to.as_deref().unwrap_or("dropped"))
        }
        _ => String::new(),
    };
    match (old, new) {
        (None, Some(_)) => format!("{setting} override for {target}: {}", show(new)),
        (Some(_), None) => format!(
            "{setting} for {target} no longer overridden (was {})",
            show(old)
        ),
        _ => format!(
            "{setting} override for {target} changed: {} (was {})",
            show(new),
            show(old)
        ),
    }
}

fn config_change(old: &Option<InputValue>, new: &Option<InputValue>) -> String {
    let files = |v: &Option<InputValue>| match v {
        Some(InputValue::Configs { files }) => files.clone(),
        _ => Vec::new(),
    };
    let (a, b) = (files(old), files(new));
    let mut changed: Vec<String> = a
        .iter()
        .filter(|f| !b.contains(f))
        .chain(b.iter().filter(|f| !a.contains(f)))
        .map(|(level, _)| level.to_string())
        .collect();
    changed.dedup();
    match changed.as_slice() {
        [] => "the order of the cargo config files changed".into(),
        list => format!("cargo configuration changed: {}", list.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> InputId {
        InputId::File {
            path: RelPath::new(std::path::Path::new(path)),
        }
    }

    #[test]
    fn key_depends_on_every_input_and_not_on_insertion_order() {
        let mut a = Inputs::new();
        a.add(file("x"), InputValue::digest(b"1"));
        a.add(InputId::Toolchain, InputValue::digest(b"r"));
        let mut b = Inputs::new();
        b.add(InputId::Toolchain, InputValue::digest(b"r"));
        b.add(file("x"), InputValue::digest(b"1"));
        assert_eq!(a.key(), b.key());
        b.add(file("x"), InputValue::digest(b"2"));
        assert_ne!(a.key(), b.key());
        let d = diff(&a, &b);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].to_string(), "x changed");
    }

    #[test]
    fn a_value_cannot_imitate_two_inputs() {
        let env = |n: &str| InputId::Env { name: n.into() };
        let text = |v: &str| InputValue::Text { value: v.into() };
        let mut one = Inputs::new();
        one.add(env("CFLAGS"), text("-O2\nenv:CXXFLAGS=-O3"));
        let mut two = Inputs::new();
        two.add(env("CFLAGS"), text("-O2"));
        two.add(env("CXXFLAGS"), text("-O3"));
        assert_ne!(one.key(), two.key());
    }

    #[test]
    fn explanations_are_sentences() {
        let o = |to: &str| InputValue::Override {
            from: "clang".into(),
            to: Some(to.into()),
            source: None,
        };
        let id = InputId::Override {
            target: "aarch64-unknown-linux-musl".into(),
            setting: Setting::Linker,
            flag: None,
        };
        let added = Change {
            id: id.clone(),
            old: None,
            new: Some(o("zig")),
        };
        assert_eq!(
            added.to_string(),
            "linker override for aarch64-unknown-linux-musl: clang -> zig"
        );
        let env = Change {
            id: InputId::Env {
                name: "RUSTFLAGS".into(),
            },
            old: Some(InputValue::digest(b"a")),
            new: Some(InputValue::digest(b"b")),
        };
        assert_eq!(env.to_string(), "RUSTFLAGS changed");
    }
}
