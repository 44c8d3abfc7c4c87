//! The enum-like settings, parsed once: a typo is an error wherever it is read.
//!
//! Each type deserializes from its kebab-case name (TOML) and parses from the same
//! name (environment variables, flags), with one error listing the choices.

use kiln_diagnostics::{Error, Result};
use serde::Deserialize;

/// A setting with a fixed set of names.
pub trait Choice: Sized + Copy + 'static {
    /// Every value with its name, in the order the docs list them.
    const CHOICES: &'static [(&'static str, Self)];

    /// The name of `self`, as written in the config.
    fn name(self) -> &'static str
    where
        Self: PartialEq,
    {
        Self::CHOICES
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("?", |(n, _)| n)
    }

    /// Parses a name; the error names `what` (a key or variable) and the choices, but
    /// never echoes the value (it may come from the environment).
    fn parse_named(s: &str, what: &str) -> Result<Self> {
        Self::CHOICES
            .iter()
            .find(|(n, _)| *n == s.trim())
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                Error::usage(format!(
                    "invalid {what}: it is not one of {}",
                    list::<Self>()
                ))
                .hint(format!("set {what} to one of {}", list::<Self>()))
            })
    }
}

fn list<T: Choice>() -> String {
    T::CHOICES
        .iter()
        .map(|(n, _)| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which toolchain backend builds a target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendChoice {
    /// zig where the build graph compiles C, plain cargo otherwise.
    #[default]
    Auto,
    /// Plain cargo, linking with `rust-lld`.
    Cargo,
    /// `cargo zigbuild`, with zig as C compiler and linker.
    Zig,
    /// `cross`, which builds inside a container.
    Cross,
}

impl Choice for BackendChoice {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("auto", Self::Auto),
        ("cargo", Self::Cargo),
        ("zig", Self::Zig),
        ("cross", Self::Cross),
    ];
}

/// How the generated CI workflow and `kiln affected --format github-matrix` split work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Matrix {
    /// One job per binary package and platform.
    #[default]
    Binary,
    /// One job per platform, building every affected binary.
    Platform,
}

impl Choice for Matrix {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("binary", Self::Binary), ("platform", Self::Platform)];
}

/// Who writes to the shared remote cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Upload {
    /// Every build uploads what it built.
    Always,
    /// Only builds with `CI=true` upload (CI fills, developers read).
    #[default]
    Ci,
    /// Read-only.
    Never,
}

impl Choice for Upload {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("always", Self::Always),
        ("ci", Self::Ci),
        ("never", Self::Never),
    ];
}

impl Upload {
    /// Whether a process uploads, given whether it runs in CI.
    pub fn enabled(self, in_ci: bool) -> bool {
        match self {
            Upload::Always => true,
            Upload::Ci => in_ci,
            Upload::Never => false,
        }
    }
}

/// An SBOM format kiln writes beside each binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SbomFormat {
    /// SPDX 2.3 JSON, `<bin>.spdx.json`.
    Spdx,
    /// CycloneDX 1.5 JSON, `<bin>.cdx.json`.
    Cyclonedx,
}

impl Choice for SbomFormat {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("spdx", Self::Spdx), ("cyclonedx", Self::Cyclonedx)];
}

impl SbomFormat {
    /// Its name and version as `checksums.json` records it.
    pub fn format_name(self) -> &'static str {
        match self {
            SbomFormat::Spdx => "spdx-2.3",
            SbomFormat::Cyclonedx => "cyclonedx-1.5",
        }
    }

    /// The file name suffix after the binary's name.
    pub fn suffix(self) -> &'static str {
        match self {
            SbomFormat::Spdx => "spdx.json",
            SbomFormat::Cyclonedx => "cdx.json",
        }
    }
}

/// The `malloc` a static musl binary runs with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Allocator {
    /// The target libc's own (musl's mallocng: small, slow under threads).
    #[default]
    System,
    /// mimalloc, linked in by kiln so that it replaces `malloc` and friends.
    Mimalloc,
}

impl Choice for Allocator {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("system", Self::System), ("mimalloc", Self::Mimalloc)];
}

/// `allocator = "mimalloc"` (every binary) or `allocator = { bin = "mimalloc" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocatorConfig {
    /// One allocator for every binary.
    All(Allocator),
    /// Per binary name; the others keep the system allocator.
    PerBinary(std::collections::BTreeMap<String, Allocator>),
}

impl<'de> Deserialize<'de> for AllocatorConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let names = || {
            let n: Vec<String> = Allocator::CHOICES
                .iter()
                .map(|(n, _)| format!("\"{n}\""))
                .collect();
            n.join(" or ")
        };
        let one = |v: &toml::Value, what: &str| {
            v.as_str()
                .and_then(|s| Allocator::CHOICES.iter().find(|(n, _)| *n == s))
                .map(|(_, a)| *a)
                .ok_or_else(|| D::Error::custom(format!("{what} is {}", names())))
        };
        match toml::Value::deserialize(d)? {
            v @ toml::Value::String(_) => Ok(AllocatorConfig::All(one(&v, "`allocator`")?)),
            toml::Value::Table(t) => t
                .iter()
                .map(|(bin, v)| Ok((bin.clone(), one(v, &format!("the allocator of `{bin}`"))?)))
                .collect::<Result<_, D::Error>>()
                .map(AllocatorConfig::PerBinary),
            _ => Err(D::Error::custom(format!(
                "`allocator` is {} for every binary, or a table of binary names to those",
                names()
            ))),
        }
    }
}

impl AllocatorConfig {
    /// The allocator of the binary `bin`.
    pub fn of(&self, bin: &str) -> Allocator {
        match self {
            AllocatorConfig::All(a) => *a,
            AllocatorConfig::PerBinary(m) => m.get(bin).copied().unwrap_or_default(),
        }
    }

    /// Whether the setting names `bin`'s allocator (one for all does): a choice
    /// made, so no reminder of musl's malloc is due.
    pub fn chooses(&self, bin: &str) -> bool {
        match self {
            AllocatorConfig::All(_) => true,
            AllocatorConfig::PerBinary(m) => m.contains_key(bin),
        }
    }
}

/// sccache as `RUSTC_WRAPPER`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sccache {
    /// When it is on PATH.
    #[default]
    Auto,
    /// Required: its absence is an error.
    On,
    /// Never.
    Off,
}

impl Choice for Sccache {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("auto", Self::Auto), ("on", Self::On), ("off", Self::Off)];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_typos_name_the_choices() {
        for (n, v) in Matrix::CHOICES {
            assert_eq!(Matrix::parse_named(n, "x").unwrap(), *v);
            assert_eq!(v.name(), *n);
        }
        let e = Upload::parse_named("sometimes", "KILN_CACHE_UPLOAD").unwrap_err();
        assert_eq!(e.kind().exit_code(), 2);
        assert!(e.to_string().contains("`always`, `ci`, `never`"), "{e}");
        assert!(
            !e.to_string().contains("sometimes"),
            "values are not echoed: {e}"
        );
    }
}
