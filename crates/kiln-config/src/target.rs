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
    /// For a glibc target, the glibc version it links against (`2.28`): the oldest
    /// glibc its binaries run on. Needs zig, which has every version's stubs.
    pub glibc: Option<String>,
}

/// The glibc `amd64-gnu` and `arm64-gnu` link against: 2.28 (2018) runs on every
/// maintained glibc distribution (Debian 10+, Ubuntu 20.04+, RHEL 8+), the seed's
/// `debian:bookworm-slim` (2.36) included.
pub const DEFAULT_GLIBC: &str = "2.28";

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

/// Short names of the glibc targets (linked against [`DEFAULT_GLIBC`]).
const GNU_ALIASES: &[(&str, &str)] = &[
    ("amd64-gnu", "x86_64-unknown-linux-gnu"),
    ("arm64-gnu", "aarch64-unknown-linux-gnu"),
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

    /// Parses `amd64`, `arm64` (and their synonyms), `amd64-gnu`, `arm64-gnu`, or a
    /// Linux target triple, a glibc one optionally with its glibc version as
    /// cargo-zigbuild spells it (`x86_64-unknown-linux-gnu.2.36`).
    pub fn parse(s: &str) -> Result<Target> {
        let unknown = || {
            Error::usage(format!("unknown target `{}`", kiln_diagnostics::printable(s, 80)))
                .hint("use `amd64`, `arm64` (static musl), `amd64-gnu`, `arm64-gnu` (glibc), or a Linux Rust target triple such as `aarch64-unknown-linux-musl`")
                .hint("`rustc --print target-list | grep linux` lists the triples")
        };
        let (triple, glibc) = if let Some((_, t)) = GNU_ALIASES.iter().find(|(a, _)| *a == s) {
            (*t, Some(DEFAULT_GLIBC.to_string()))
        } else {
            let t = ALIASES
                .iter()
                .find(|(alias, _)| *alias == s)
                .map_or(s, |(_, t)| *t);
            match t.split_once('.') {
                Some((triple, version)) => {
                    let numeric = version.split('.').count() == 2
                        && version.split('.').all(|p| {
                            !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit())
                        });
                    if !triple.ends_with("-gnu") || !numeric {
                        return Err(unknown().hint("a glibc version goes after a `-gnu` triple: `x86_64-unknown-linux-gnu.2.36`"));
                    }
                    (triple, Some(version.to_string()))
                }
                None => (t, None),
            }
        };
        let mut parts = triple.split('-');
        let rust_arch = parts.next().unwrap_or_default();
        let arch = ARCHES
            .iter()
            .find(|(r, _)| *r == rust_arch)
            .map(|(_, o)| *o);
        match (arch, triple.contains("-linux-")) {
            (Some(arch), true) => Ok(Target {
                triple: triple.to_string(),
                os: "linux".into(),
                arch: arch.into(),
                glibc,
            }),
            _ => Err(unknown()),
        }
    }

    /// The `--target` the build is asked for: the triple, with the glibc version
    /// when there is one (cargo-zigbuild's spelling; cargo's output still goes under
    /// the plain triple). Also how the target is named in keys and records.
    pub fn build_target(&self) -> String {
        match &self.glibc {
            Some(v) => format!("{}.{v}", self.triple),
            None => self.triple.clone(),
        }
    }

    /// True for glibc targets, whose binaries need a glibc at run time.
    pub fn is_gnu(&self) -> bool {
        self.triple.contains("-gnu")
    }

    /// True for musl targets, whose binaries are static.
    pub fn is_musl(&self) -> bool {
        self.triple.contains("-musl")
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
    fn glibc_targets_carry_their_version() {
        let t = Target::parse("arm64-gnu").unwrap();
        assert_eq!(t.triple, "aarch64-unknown-linux-gnu");
        assert_eq!(
            t.build_target(),
            format!("aarch64-unknown-linux-gnu.{DEFAULT_GLIBC}")
        );
        let t = Target::parse("x86_64-unknown-linux-gnu.2.36").unwrap();
        assert_eq!(
            (t.triple.as_str(), t.glibc.as_deref(), t.arch.as_str()),
            ("x86_64-unknown-linux-gnu", Some("2.36"), "amd64")
        );
        assert!(t.is_gnu() && !t.is_musl());
        assert_eq!(
            Target::parse("amd64").unwrap().build_target(),
            "x86_64-unknown-linux-musl"
        );
        for bad in [
            "x86_64-unknown-linux-musl.2.36",
            "x86_64-unknown-linux-gnu.2",
            "x86_64-unknown-linux-gnu.2.x",
            "x86_64-unknown-linux-gnu.../../x",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
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
