//! Overrides of the user's cargo configuration, as data.
//!
//! kiln records what it changed for its own cargo invocation as typed values with no
//! local path in them, so they can go into cache keys, shared cache entries and
//! `checksums.json` unchanged on every machine; the sentence a user reads is rendered
//! from them ([`std::fmt::Display`]).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Which setting kiln overrode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Setting {
    /// `target.<triple>.linker` (or `CARGO_TARGET_<T>_LINKER`).
    Linker,
    /// One flag of the target's rustflags.
    Rustflag,
    /// `[build] jobs`.
    Jobs,
}

impl Setting {
    /// The setting's name as a user writes it.
    pub fn name(self) -> &'static str {
        match self {
            Setting::Linker => "linker",
            Setting::Rustflag => "rustflag",
            Setting::Jobs => "[build] jobs",
        }
    }
}

/// Where a setting came from: a cargo config level, never a local path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "level", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ConfigSource {
    /// An environment variable.
    Env {
        /// Its name.
        name: String,
    },
    /// A config file inside the workspace.
    Workspace {
        /// Its path relative to the workspace root, with `/` separators.
        path: String,
        /// The `[target.'cfg(..)']` table it was read from, when not the triple's own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        table: Option<String>,
    },
    /// A config file in a directory above the workspace.
    Parent {
        /// The `cfg(..)` table, as above.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        table: Option<String>,
    },
    /// `$CARGO_HOME/config.toml`.
    CargoHome {
        /// The `cfg(..)` table, as above.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        table: Option<String>,
    },
}

impl ConfigSource {
    /// The same level, read from the table `table` of that file.
    pub fn with_table(self, table: Option<String>) -> Self {
        match self {
            ConfigSource::Env { name } => ConfigSource::Env { name },
            ConfigSource::Workspace { path, .. } => ConfigSource::Workspace { path, table },
            ConfigSource::Parent { .. } => ConfigSource::Parent { table },
            ConfigSource::CargoHome { .. } => ConfigSource::CargoHome { table },
        }
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (file, table) = match self {
            ConfigSource::Env { name } => return write!(f, "`{name}`"),
            ConfigSource::Workspace { path, table } => (format!("`{path}`"), table),
            ConfigSource::Parent { table } => ("a cargo config above the workspace".into(), table),
            ConfigSource::CargoHome { table } => ("`$CARGO_HOME/config.toml`".into(), table),
        };
        match table {
            Some(t) => write!(f, "{file} [target.'{t}']"),
            None => f.write_str(&file),
        }
    }
}

/// One setting of the user's configuration that kiln changed for its own invocation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// The target triple it applies to; `None` for every target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Which setting.
    pub setting: Setting,
    /// The user's value.
    pub from: String,
    /// What kiln uses instead; `None` when it dropped the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Where the user's value came from, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ConfigSource>,
    /// Why, in words.
    pub reason: String,
}

impl Override {
    /// Whether it changes what is built for `triple` (a jobs cap changes only speed).
    pub fn changes_output_for(&self, triple: &str) -> bool {
        self.setting != Setting::Jobs && self.target.as_deref() == Some(triple)
    }
}

impl fmt::Display for Override {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let from = match &self.source {
            Some(s) => format!(" (from {s})"),
            None => String::new(),
        };
        let target = self
            .target
            .as_ref()
            .map(|t| format!(" for {t}"))
            .unwrap_or_default();
        match (self.setting, &self.to) {
            (Setting::Jobs, Some(to)) => write!(
                f,
                "`[build] jobs = {}`{from} capped at {to} ({})",
                self.from, self.reason
            ),
            (Setting::Linker, Some(to)) => write!(
                f,
                "linker `{}`{target}{from} replaced by {to}: {}",
                self.from, self.reason
            ),
            (setting, Some(to)) => write!(
                f,
                "{} `{}`{target}{from} replaced by `{to}`: {}",
                setting.name(),
                self.from,
                self.reason
            ),
            (setting, None) => write!(
                f,
                "{} `{}`{target}{from} dropped: {}",
                setting.name(),
                self.from,
                self.reason
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_rendered_from_data_without_paths() {
        let o = Override {
            target: Some("aarch64-unknown-linux-musl".into()),
            setting: Setting::Linker,
            from: "clang".into(),
            to: Some("rust-lld".into()),
            source: Some(ConfigSource::Workspace {
                path: ".cargo/config.toml".into(),
                table: None,
            }),
            reason: "`clang` links for the host (x86_64), not for aarch64-unknown-linux-musl"
                .into(),
        };
        assert_eq!(
            o.to_string(),
            "linker `clang` for aarch64-unknown-linux-musl (from `.cargo/config.toml`) replaced by rust-lld: `clang` links for the host (x86_64), not for aarch64-unknown-linux-musl"
        );
        assert!(o.changes_output_for("aarch64-unknown-linux-musl"));
        assert!(!o.changes_output_for("x86_64-unknown-linux-musl"));
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(serde_json::from_str::<Override>(&json).unwrap(), o);
    }
}
