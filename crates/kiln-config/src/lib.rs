//! kiln's configuration: the `[workspace.metadata.kiln]` table of the root manifest.
//!
//! Every field is optional: an unconfigured workspace gets kiln's defaults. The table is
//! parsed from the manifest text itself (not from `cargo metadata`) so that an error can
//! point at the line. Unknown keys are errors, since a misspelt key silently ignored
//! would build the wrong thing.

use kiln_diagnostics::{Error, IoContext, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

mod choices;
mod env;
mod settings;
mod size;
mod target;
mod values;

pub use choices::{
    Allocator, AllocatorConfig, BackendChoice, Choice, Matrix, SbomFormat, Sccache, Upload,
};
pub use env::{
    env, seal_credentials, sealed_names, take_sealed_fd, Access, Env, Holder, Secret,
    CHILD_SECRETS, CREDENTIALS, SEALED_FD, VARIABLES,
};
pub use settings::{parse_targets, Flags, Origin, Setting, SettingRow, Settings, Trust};
pub use size::{parse_size, MemoryLimit, MIN_BUDGET};
pub use target::{Target, DEFAULT_GLIBC};
pub use values::{is_loopback_host, DistScheduler, ImageOutput, RemoteUrl, Size};

/// The `[workspace.metadata.kiln]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Targets to build: `amd64`, `arm64` or Rust triples. Default: amd64 and arm64.
    pub targets: Option<Vec<String>>,
    /// Packages whose binaries are built. Default: every member with a binary.
    pub packages: Option<Vec<String>>,
    /// Binaries to build, by name. Default: all binaries of the selected packages.
    pub binaries: Option<Vec<String>>,
    /// Packages never built by default (tools, test helpers).
    pub exclude: Option<Vec<String>>,
    /// Cargo profile. Default: `release`.
    pub profile: Option<String>,
    /// Features to enable, as `cargo build --features`.
    pub features: Option<Vec<String>>,
    /// As `cargo build --all-features`.
    pub all_features: Option<bool>,
    /// As `cargo build --no-default-features`.
    pub no_default_features: Option<bool>,
    /// Toolchain backend. Default: `auto`.
    pub backend: Option<BackendChoice>,
    /// Where the artifact store goes, relative to the workspace root. Default: `artifacts`.
    pub artifact_dir: Option<PathBuf>,
    /// The local binary cache (`~` is expanded). Default: `~/.cache/kiln`;
    /// `KILN_CACHE_DIR` overrides it.
    pub cache_dir: Option<PathBuf>,
    /// Build native libraries that `-sys` crates link from the system (OpenSSL) for
    /// musl targets. Default: true; `false` makes such a crate an error with the fixes.
    pub provision_native: Option<bool>,
    /// Link each binary's dependency list into it (cargo-auditable's `.dep-v0`
    /// section), for `cargo audit bin`, syft and trivy. Default: true.
    pub auditable: Option<bool>,
    /// The `malloc` of static musl binaries: `"system"` (musl's, the default) or
    /// `"mimalloc"`, for every binary or per binary (`{ server = "mimalloc" }`).
    pub allocator: Option<AllocatorConfig>,
    /// The SBOMs written beside each binary: `spdx`, `cyclonedx`. Default: `["spdx"]`;
    /// `[]` writes none.
    pub sbom: Option<Vec<SbomFormat>>,
    /// Memory budget: a size (`4GiB`) or `auto` (the default: the cgroup limit, else
    /// 75% of available memory).
    pub max_memory: Option<MemoryLimit>,
    /// Pass `--locked` to every cargo invocation: a stale `Cargo.lock` is an error, never
    /// rewritten. Recommended in CI (the generated workflow sets `KILN_LOCKED`).
    pub locked: Option<bool>,
    /// Pass `--frozen` (`--locked` and `--offline`).
    pub frozen: Option<bool>,
    /// Pass `--offline`: cargo uses only what it has downloaded.
    pub offline: Option<bool>,
    /// The container image `kiln image` and `kiln dockerfile` make from the artifacts.
    pub image: Option<ImageConfig>,
    /// The shared remote cache and sccache.
    pub cache: Option<CacheConfig>,
    /// The CI pipeline `kiln ci github` writes.
    pub ci: Option<CiConfig>,
    /// Host programs in-house build scripts run, by name (`flatc`), beside the ones
    /// kiln knows (protoc, cmake, ...).
    pub host_tools: Option<std::collections::BTreeMap<String, HostToolConfig>>,
}

/// `[workspace.metadata.kiln.host-tools.<name>]`: a program some build script runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HostToolConfig {
    /// Packages (members or dependencies) whose presence in a binary's build graph
    /// means the tool is needed: usually the member whose build script runs it.
    pub packages: Vec<String>,
    /// The variable that names the program instead of PATH (`FLATC`), if any.
    pub env: Option<String>,
    /// The argument that prints its version. Default: `--version`.
    pub version_arg: Option<String>,
    /// How to install it, shown when it is missing (`apt-get install flatbuffers-compiler`).
    pub install: Option<String>,
    /// Whether its version goes into the cache keys of the binaries that need it
    /// (it generates code). Default: true.
    pub keyed: Option<bool>,
}

/// A host tool's name (a program, `[A-Za-z0-9._+-]`) and variable (`[A-Z0-9_]`)
/// must be safe as a file name and in messages.
fn check_host_tools(
    tools: &std::collections::BTreeMap<String, HostToolConfig>,
) -> std::result::Result<(), String> {
    for (name, t) in tools {
        let program_ok = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
        if !program_ok {
            return Err(format!(
                "host-tools: `{}` is not a program name (letters, digits, `._+-`)",
                kiln_diagnostics::printable(name, 64)
            ));
        }
        if let Some(env) = &t.env {
            let ok = !env.is_empty()
                && env
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                return Err(format!(
                    "host-tools.{name}: env `{}` is not a variable name (A-Z, 0-9, _)",
                    kiln_diagnostics::printable(env, 64)
                ));
            }
        }
        if t.packages.is_empty() {
            return Err(format!(
                "host-tools.{name}: `packages` names no package, so it would never be needed"
            ));
        }
    }
    Ok(())
}

/// `[workspace.metadata.kiln.ci]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CiConfig {
    /// `runs-on` labels. Default: `ubuntu-latest`.
    pub runner: Option<Runner>,
    /// Image repository, with its registry. Default: `ghcr.io/<owner>/<repo>`.
    pub image: Option<String>,
    /// Whether tags `v*` make a GitHub Release. Default: true.
    pub release: Option<bool>,
    /// Whether pushes build and push the image. Default: true.
    pub push_image: Option<bool>,
    /// Shell commands run before kiln in every job (e.g. installing protoc).
    pub setup: Option<Vec<String>>,
    /// One job per `binary` x platform (default) or per `platform`.
    pub matrix: Option<Matrix>,
    /// The command that installs kiln on a runner.
    pub install: Option<String>,
    /// Where the install action downloads kiln's release assets from (`https://`
    /// or `file://`, the directory holding `kiln-<triple>` and its `.sha256`).
    /// Default: kiln's own GitHub release of the version that wrote the workflow.
    pub install_url: Option<String>,
    /// The default branch: pushes to it push `latest`. Default: `main`.
    pub branch: Option<String>,
    /// Full commit SHAs for `--pin-actions`, by `owner/action@version`.
    pub pins: Option<std::collections::BTreeMap<String, String>>,
    /// Action versions instead of kiln's defaults, by role (`checkout =
    /// "actions/checkout@v7"`): what a Dependabot bump is recorded in.
    pub actions: Option<std::collections::BTreeMap<String, String>>,
    /// `timeout-minutes` of each build job. Default: 60.
    pub timeout_minutes: Option<u32>,
    /// What `kiln cache gc --max-size` keeps of the kiln cache before a job saves it
    /// to the Actions cache (a repository has 10 GB in all). Default: `2GiB`.
    pub cache_max_size: Option<Size>,
}

/// `runs-on`: one label or several.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Runner {
    /// `ubuntu-latest`.
    One(String),
    /// `[self-hosted, linux, x64]`.
    Many(Vec<String>),
}

/// `[workspace.metadata.kiln.cache]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CacheConfig {
    /// `oci://registry/repo` or `file:///dir`; `KILN_REMOTE_CACHE` overrides it (`off` disables).
    pub remote: Option<String>,
    /// Who uploads: `always`, `ci` (default), `never`.
    pub upload: Option<Upload>,
    /// sccache as `RUSTC_WRAPPER`: `auto` (default: when installed), `on`, `off`.
    pub sccache: Option<Sccache>,
    /// Plain HTTP for a registry on this machine.
    pub insecure: Option<bool>,
    /// Seconds any remote operation may take before the remote is skipped. Default: 5.
    pub timeout: Option<u64>,
    /// Public keys (`NAME:<base64>`, from `kiln cache keygen`) whose signatures make
    /// a remote record usable. When set, every reader refuses what none of them signed.
    pub trusted_keys: Option<Vec<TrustedKey>>,
    /// Distributed compilation through an sccache-dist build farm.
    pub dist: Option<DistConfig>,
}

/// `[workspace.metadata.kiln.cache.dist]`: kiln's sccache server becomes a client of
/// an sccache-dist scheduler. The token is never in the file: `KILN_SCCACHE_DIST_TOKEN`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DistConfig {
    /// The scheduler's URL (`https://scheduler.example.com:10600`);
    /// `KILN_SCCACHE_DIST_SCHEDULER` overrides it (`off` disables).
    pub scheduler: Option<String>,
}

/// One entry of `trusted-keys`, parsed when the config is read (a typo is exit 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey(pub kiln_trust::PublicKey);

impl<'de> Deserialize<'de> for TrustedKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        kiln_trust::PublicKey::parse(&text)
            .map(TrustedKey)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "{e}: a trusted key is what `kiln cache keygen` prints, `NAME:<base64>`"
                ))
            })
    }
}

/// `[workspace.metadata.kiln.image]`: what goes into the container image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImageConfig {
    /// Image name used for the OCI layout's reference. Default: the directory name.
    pub name: Option<String>,
    /// Binaries copied into `/usr/local/bin`. Default: every binary in the store.
    pub binaries: Option<Vec<String>>,
    /// `ENTRYPOINT`. Default: the only binary, or the one named like the image.
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`.
    pub cmd: Option<Vec<String>>,
    /// The user the entrypoint runs as. Default: `app`, uid and gid 1000.
    pub user: Option<ImageUser>,
    /// Ports to expose: `9092` or `"9092/udp"`.
    pub ports: Option<Vec<Port>>,
    /// Directories created, owned by the user and declared volumes.
    pub volumes: Option<Vec<String>>,
    /// Environment variables.
    pub env: Option<std::collections::BTreeMap<String, String>>,
    /// Image config labels.
    pub labels: Option<std::collections::BTreeMap<String, String>>,
    /// Manifest annotations added to kiln's `org.opencontainers.image.*` ones.
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
    /// Working directory. Default: the first volume, else `/`.
    pub workdir: Option<String>,
    /// `scratch` (default) or an image reference whose layers go under kiln's.
    pub base: Option<String>,
    /// Ship a CA bundle at `/etc/ssl/certs/ca-certificates.crt` (scratch only). Default: true.
    pub ca_certificates: Option<bool>,
    /// `org.opencontainers.image.source`. Default: the workspace's `repository`.
    pub source: Option<String>,
}

/// An exposed port: `9092` (tcp) or `"9092/udp"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Port {
    /// A TCP port.
    Number(u16),
    /// `port/protocol`.
    Spec(String),
}

impl Port {
    /// `9092/tcp`, as image configs write it.
    pub fn spec(&self) -> String {
        match self {
            Port::Number(n) => format!("{n}/tcp"),
            Port::Spec(s) if s.contains('/') => s.clone(),
            Port::Spec(s) => format!("{s}/tcp"),
        }
    }
}

/// The image's user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageUser {
    /// User and group name in `/etc/passwd` and `/etc/group`.
    pub name: String,
    /// Numeric uid.
    pub uid: u32,
    /// Numeric gid. Default: the uid.
    pub gid: Option<u32>,
}

#[derive(Deserialize)]
struct Manifest {
    workspace: Option<WorkspaceTable>,
    package: Option<WorkspaceTable>,
}

/// `[workspace]` or `[package]`: kiln reads only their `metadata.kiln`.
#[derive(Deserialize)]
struct WorkspaceTable {
    metadata: Option<MetadataTable>,
}

#[derive(Deserialize)]
struct MetadataTable {
    kiln: Option<Config>,
}

impl Config {
    /// Reads the root manifest at `manifest`: the kiln table, and the whole manifest
    /// as a TOML table for the other sections kiln reads (profiles, patches).
    pub fn load(manifest: &Path) -> Result<(Self, toml::Table)> {
        let text = std::fs::read_to_string(manifest).io_context("read", manifest)?;
        let config = Self::parse(&text).map_err(|e| {
            let table = if text.contains("package.metadata.kiln") {
                "[package.metadata.kiln]"
            } else {
                "[workspace.metadata.kiln]"
            };
            Error::usage(format!("invalid `{table}` in `{}`", manifest.display()))
                .with_source(e)
                .hint(format!(
                    "fix the key named above; {} lists every key kiln reads",
                    kiln_diagnostics::docs_url("configuration.md")
                ))
        })?;
        // It parsed as a manifest just above, so it parses as a table.
        let table = text.parse::<toml::Table>().unwrap_or_default();
        Ok((config, table))
    }

    /// Parses the kiln table out of a root manifest's text: `[workspace.metadata.kiln]`,
    /// or for a root package (a single-package project) `[package.metadata.kiln]`, as
    /// cargo-dist reads both; both at once is an error.
    pub fn parse(manifest_text: &str) -> Result<Self, toml::de::Error> {
        let manifest: Manifest = toml::from_str(manifest_text)?;
        let kiln = |t: Option<WorkspaceTable>| t.and_then(|w| w.metadata).and_then(|m| m.kiln);
        match (kiln(manifest.workspace), kiln(manifest.package)) {
            (Some(_), Some(_)) => Err(serde::de::Error::custom(
                "both [workspace.metadata.kiln] and [package.metadata.kiln] are set; keep one (kiln reads the root manifest's)",
            )),
            (Some(c), None) | (None, Some(c)) => {
                if let Some(tools) = &c.host_tools {
                    check_host_tools(tools).map_err(serde::de::Error::custom)?;
                }
                Ok(c)
            }
            (None, None) => Ok(Config::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allocator_is_one_for_all_or_per_binary_and_typos_name_the_choices() {
        let c = Config::parse("[workspace.metadata.kiln]\nallocator = \"mimalloc\"\n").unwrap();
        assert_eq!(c.allocator.unwrap().of("any"), Allocator::Mimalloc);
        let c =
            Config::parse("[workspace.metadata.kiln.allocator]\nserver = \"mimalloc\"\n").unwrap();
        let a = c.allocator.unwrap();
        assert_eq!(
            (a.of("server"), a.of("cli")),
            (Allocator::Mimalloc, Allocator::System)
        );
        let err =
            Config::parse("[workspace.metadata.kiln]\nallocator = \"jemalloc\"\n").unwrap_err();
        assert!(
            err.to_string().contains("\"system\" or \"mimalloc\""),
            "{err}"
        );
        let err = Config::parse("[workspace.metadata.kiln.allocator]\nserver = 1\n").unwrap_err();
        assert!(err.to_string().contains("allocator of `server`"), "{err}");
    }

    #[test]
    fn unconfigured_manifest_gives_defaults() {
        let c = Config::parse("[workspace]\nmembers = []\n").unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn reads_the_kiln_table() {
        let c = Config::parse(
            "[workspace]\n[workspace.metadata.kiln]\ntargets = [\"arm64\"]\nbackend = \"zig\"\n",
        )
        .unwrap();
        assert_eq!(c.targets.unwrap(), ["arm64"]);
        assert_eq!(c.backend, Some(BackendChoice::Zig));
    }

    #[test]
    fn unknown_key_lists_valid_keys() {
        let err = Config::parse("[workspace.metadata.kiln]\ntarget = [\"arm64\"]\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unknown field `target`"), "{msg}");
        assert!(msg.contains("`targets`"), "{msg}");
    }

    #[test]
    fn bad_backend_names_the_choices() {
        let err = Config::parse("[workspace.metadata.kiln]\nbackend = \"docker\"\n").unwrap_err();
        assert!(err.to_string().contains("auto"), "{err}");
    }

    #[test]
    fn every_enum_like_key_rejects_a_typo() {
        for (table, key) in [
            ("[workspace.metadata.kiln.ci]", "matrix = \"platfrom\""),
            ("[workspace.metadata.kiln.cache]", "upload = \"sometimes\""),
            ("[workspace.metadata.kiln.cache]", "sccache = \"yes\""),
            ("[workspace.metadata.kiln]", "max-memory = \"lots\""),
            ("[workspace.metadata.kiln]", "max-memory = \"1K\""),
        ] {
            assert!(
                Config::parse(&format!("{table}\n{key}\n")).is_err(),
                "{key}"
            );
        }
        let c = Config::parse("[workspace.metadata.kiln]\nmax-memory = \"2GiB\"\n").unwrap();
        assert_eq!(c.max_memory, Some(MemoryLimit::Bytes(2 << 30)));
    }
}

/// No manifest text makes the config parser panic.
#[cfg(test)]
mod no_panic {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn manifests(body in "[a-z\\-=\\[\\]\"0-9 .\n{}]{0,200}") {
            let _ = super::Config::parse(&format!("[workspace.metadata.kiln]\n{body}"));
        }
    }
}
