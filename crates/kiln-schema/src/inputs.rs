//! The vocabulary of cache keys: what an input is ([`InputId`]), its value
//! ([`InputValue`]), workspace-relative paths, and a change between two builds, in
//! words where a person reads it. Typed data first: `kiln plan` says *why* a binary
//! rebuilds with these, and the words are made from them in one place (`Display`).

use crate::{ConfigSource, RelPath, Setting};
use serde::{Deserialize, Serialize};
use std::fmt;

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
    /// The dependency list kiln links into the binary (cargo-auditable's `.dep-v0`).
    AuditSection,
    /// The allocator kiln links in place of the libc's `malloc`.
    Allocator,
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
    /// A host program a build script runs that shapes the output (protoc, nasm).
    HostTool {
        /// Its name.
        name: String,
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

/// One input that differs between two lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Which input.
    pub id: InputId,
    /// Its old value; `None` when it was added.
    pub old: Option<InputValue>,
    /// Its new value; `None` when it was removed.
    pub new: Option<InputValue>,
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
            InputId::AuditSection => write!(f, "the dependency list linked in (.dep-v0) {how}"),
            InputId::Allocator => match (&self.old, &self.new) {
                (Some(InputValue::Text { value: a }), Some(InputValue::Text { value: b })) => {
                    write!(f, "the allocator changed: {a} -> {b}")
                }
                _ => write!(f, "the allocator {how}"),
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
            InputId::HostTool { name } => match (&self.old, &self.new) {
                (
                    Some(InputValue::Tool { version: a, .. }),
                    Some(InputValue::Tool { version: b, .. }),
                ) => write!(f, "{name} changed: {a} -> {b}"),
                _ => write!(f, "host tool {name} {how}"),
            },
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
