//! Build targets: what users type (`amd64`, `arm64`, a triple) and what it means.

use kiln_diagnostics::{Error, Result};

/// A target kiln builds for: a Rust triple and the OS/arch it lands under in the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// The Rust target triple, e.g. `aarch64-unknown-linux-musl`.
    pub triple: String,
    /// The OS directory in the artifact store (`linux`).
    pub os: String,
    /// The architecture in OCI spelling (`amd64`, `arm64`).
    pub arch: String,
}

/// Short names kiln accepts, and the static musl triple each stands for.
const ALIASES: &[(&str, &str)] = &[
    ("amd64", "x86_64-unknown-linux-musl"),
    ("x86_64", "x86_64-unknown-linux-musl"),
    ("linux/amd64", "x86_64-unknown-linux-musl"),
    ("linux-amd64", "x86_64-unknown-linux-musl"),
    ("arm64", "aarch64-unknown-linux-musl"),
    ("aarch64", "aarch64-unknown-linux-musl"),
    ("linux/arm64", "aarch64-unknown-linux-musl"),
    ("linux-arm64", "aarch64-unknown-linux-musl"),
];

/// Rust architecture names and their OCI spelling.
const ARCHES: &[(&str, &str)] = &[
    ("x86_64", "amd64"),
    ("aarch64", "arm64"),
    ("armv7", "arm"),
    ("arm", "arm"),
    ("i686", "386"),
    ("i586", "386"),
    ("riscv64gc", "riscv64"),
    ("powerpc64le", "ppc64le"),
    ("s390x", "s390x"),
];

impl Target {
    /// The targets built when nothing is configured: linux/amd64 and linux/arm64, static musl.
    pub fn defaults() -> Vec<Target> {
        ["amd64", "arm64"]
            .iter()
            .map(|t| Target::parse(t).expect("built-in alias"))
            .collect()
    }

    /// Parses `amd64`, `arm64` (and their synonyms) or a Linux target triple.
    pub fn parse(s: &str) -> Result<Target> {
        let triple = ALIASES
            .iter()
            .find(|(alias, _)| *alias == s)
            .map_or(s, |(_, t)| *t);
        let mut parts = triple.split('-');
        let rust_arch = parts.next().unwrap_or_default();
        let arch = ARCHES
            .iter()
            .find(|(r, _)| *r == rust_arch)
            .map(|(_, o)| *o);
        match (arch, triple.contains("-linux-")) {
            (Some(arch), true) => {
                Ok(Target { triple: triple.to_string(), os: "linux".into(), arch: arch.into() })
            }
            _ => Err(Error::usage(format!("unknown target `{s}`"))
                .hint("use `amd64`, `arm64`, or a Linux Rust target triple such as `aarch64-unknown-linux-musl`")
                .hint("`rustc --print target-list | grep linux` lists the triples")),
        }
    }

    /// True for musl targets, whose binaries are static.
    pub fn is_musl(&self) -> bool {
        self.triple.ends_with("-musl") || self.triple.contains("-musl")
    }

    /// The triple as cargo spells it in environment variable names.
    pub fn env_name(&self) -> String {
        self.triple.to_uppercase().replace(['-', '.'], "_")
    }

    /// The first component of the triple (`aarch64`).
    pub fn rust_arch(&self) -> &str {
        self.triple.split('-').next().unwrap_or_default()
    }

    /// `linux/arm64`, as container platforms are written.
    pub fn platform(&self) -> String {
        format!("{}/{}", self.os, self.arch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_map_to_static_musl() {
        assert_eq!(
            Target::parse("arm64").unwrap().triple,
            "aarch64-unknown-linux-musl"
        );
        assert_eq!(Target::parse("linux/amd64").unwrap().arch, "amd64");
        assert!(Target::parse("amd64").unwrap().is_musl());
    }

    #[test]
    fn full_triples_are_accepted() {
        let t = Target::parse("aarch64-unknown-linux-gnu").unwrap();
        assert_eq!((t.arch.as_str(), t.is_musl()), ("arm64", false));
        assert_eq!(t.env_name(), "AARCH64_UNKNOWN_LINUX_GNU");
    }

    #[test]
    fn unknown_targets_are_rejected_with_a_hint() {
        for bad in ["sparc", "x86_64-apple-darwin", "mips-unknown-linux-gnu"] {
            let err = Target::parse(bad).unwrap_err();
            assert!(err.to_string().contains(bad));
            assert!(!err.hints().is_empty());
        }
    }
}
