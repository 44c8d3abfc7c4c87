//! Command-line arguments, cargo-style.

use clap::{Args, Parser, Subcommand, ValueEnum};
use kiln_build::BuildRequest;
use kiln_config::BackendChoice;
use std::path::PathBuf;

/// Build, cache and ship a Cargo workspace's server binaries.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Path to the workspace's Cargo.toml (default: found from the current directory)
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) manifest_path: Option<PathBuf>,
    /// Print more: cargo's own status lines, the commands kiln runs, tools' full errors (repeatable, as cargo's)
    #[arg(short, long, global = true, conflicts_with = "quiet", action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Print only errors
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// Output format: human-readable text, or one JSON object per line on stdout
    #[arg(long, global = true, value_enum, default_value_t = MessageFormat::Human)]
    pub(crate) message_format: MessageFormat,
    /// Coloring: auto, always, never
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub(crate) color: ColorChoice,
    /// Pass --locked to cargo: a Cargo.lock that needs changes is an error (also `locked = true`)
    #[arg(long, global = true)]
    pub(crate) locked: bool,
    /// Pass --frozen to cargo: --locked and --offline
    #[arg(long, global = true)]
    pub(crate) frozen: bool,
    /// Pass --offline to cargo: only what is already downloaded
    #[arg(long, global = true)]
    pub(crate) offline: bool,
}

impl GlobalArgs {
    /// The flags settings resolution takes, of the options every command has.
    pub(crate) fn flags(&self) -> kiln_config::Flags {
        kiln_config::Flags {
            locked: self.locked,
            frozen: self.frozen,
            offline: self.offline,
            verbose: self.verbose > 0,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum MessageFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Cross-compile the workspace's binaries into the artifact store
    Build(BuildArgs),
    /// Show what `kiln build` would run, without running it
    Plan(BuildArgs),
    /// Re-hash the artifact store; exit 3 on any mismatch
    Verify(VerifyArgs),
    /// Check and install the cross-compilation prerequisites
    Setup(SetupArgs),
    /// Which binaries x platforms a change since a git revision affects (for CI)
    Affected(AffectedArgs),
    /// Inspect and maintain the local binary cache
    Cache(CacheArgs),
    /// Build a multi-arch OCI image from the artifact store, without a container engine
    Image(ImageArgs),
    /// Write a Dockerfile (and .dockerignore) that packages the artifacts, for docker buildx
    Dockerfile(DockerfileArgs),
    /// Generate the CI pipeline that builds, caches and ships with kiln
    Ci(CiArgs),
    /// Write an HTML report of the last build: timeline, memory, cache hits
    Report(ReportArgs),
    /// Show the effective settings (flags, environment, Cargo.toml, defaults) and where each comes from
    Config,
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// The build metrics to report on (default: target/kiln/metrics/last.json)
    #[arg(long, value_name = "FILE")]
    pub(crate) metrics: Option<PathBuf>,
    /// Where to write the page (default: target/kiln/report.html)
    #[arg(long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Open it in the browser
    #[arg(long)]
    pub(crate) open: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CiArgs {
    #[command(subcommand)]
    pub(crate) provider: CiProvider,
    /// Exit 3 if the file on disk differs from what kiln would write (for CI)
    #[arg(long, global = true)]
    pub(crate) check: bool,
    /// Use the full commit SHAs in [workspace.metadata.kiln.ci.pins] for actions
    #[arg(long, global = true)]
    pub(crate) pin_actions: bool,
    /// Where to write (default: .github/workflows/kiln.yml)
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub(crate) enum CiProvider {
    /// GitHub Actions: .github/workflows/kiln.yml
    Github,
}

#[derive(Debug, Args)]
pub(crate) struct ImageArgs {
    /// Where to write: `oci:DIR` (OCI layout, default target/kiln/image) or `oci-archive:FILE`
    #[arg(long, value_name = "KIND:PATH")]
    pub(crate) output: Option<kiln_config::ImageOutput>,
    /// Push to this reference (`registry/repository:tag`); the index goes up last
    #[arg(long, value_name = "REF")]
    pub(crate) push: Option<String>,
    /// More tags for the pushed image (e.g. the commit)
    #[arg(long = "tag", value_name = "TAG", requires = "push")]
    pub(crate) tags: Vec<String>,
    /// Platforms: amd64, arm64, linux/arm64 (comma-separated or repeated; default: the configured targets)
    #[arg(long = "platform", value_name = "PLATFORM")]
    pub(crate) platforms: Vec<String>,
    /// Base image reference instead of the configured one (`scratch` for none)
    #[arg(long, value_name = "REF")]
    pub(crate) base: Option<String>,
    /// Use plain HTTP for a registry on this machine (or one in KILN_INSECURE_REGISTRIES)
    #[arg(long)]
    pub(crate) insecure: bool,
    /// Sign the pushed image with this PKCS#8 PEM ECDSA P-256 key, as cosign does (also KILN_IMAGE_SIGNING_KEY)
    #[arg(long, value_name = "FILE", requires = "push")]
    pub(crate) sign_key: Option<PathBuf>,
    /// Leave the SBOMs and the provenance statement out of the image (and its referrers)
    #[arg(long)]
    pub(crate) no_attach: bool,
    /// The artifact store to read (default: the configured artifact dir)
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct DockerfileArgs {
    /// Base image: `scratch` or an image such as `debian:bookworm-slim` (default: the configured base)
    #[arg(long, value_name = "REF")]
    pub(crate) base: Option<String>,
    /// Directory to write into; the build context (default: the workspace root)
    #[arg(long, value_name = "DIR")]
    pub(crate) output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct AffectedArgs {
    /// The revision to compare against (its merge-base with --head is used)
    #[arg(long, value_name = "REV", required_unless_present = "all")]
    pub(crate) base: Option<String>,
    /// Everything is affected (a first push, a new tag): no git comparison
    #[arg(long, conflicts_with_all = ["base", "head"])]
    pub(crate) all: bool,
    /// Drop binaries the remote cache already holds (the keys are computed; needs a remote)
    #[arg(long)]
    pub(crate) skip_cached: bool,
    /// The revision with the changes (default: the working tree, uncommitted edits included)
    #[arg(long, value_name = "REV")]
    pub(crate) head: Option<String>,
    /// Output: text, json, or a GitHub Actions matrix
    #[arg(long, value_enum, default_value_t = AffectedFormat::Text)]
    pub(crate) format: AffectedFormat,
    #[command(flatten)]
    pub(crate) build: BuildArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum AffectedFormat {
    Text,
    Json,
    GithubMatrix,
}

#[derive(Debug, Args)]
pub(crate) struct CacheArgs {
    #[command(subcommand)]
    pub(crate) action: CacheAction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CacheAction {
    /// Size, entry count and hit rate over recent builds
    Stats,
    /// Evict least recently used entries until the cache fits in SIZE (e.g. 2GiB, 500M)
    Gc {
        /// Size limit
        #[arg(long, value_name = "SIZE")]
        max_size: String,
    },
    /// Remove every cached binary
    Clear,
    /// Upload the current plan's locally cached binaries to the remote cache (signed with KILN_CACHE_SIGNING_KEY when set)
    Push(BuildArgs),
    /// Download the current plan's binaries from the remote cache into the local one
    Pull(PullArgs),
    /// Make an Ed25519 key pair for signing the shared cache: the secret key goes to FILE, the public key to stdout
    Keygen {
        /// The key's name (e.g. `chronik-ci-1`): signatures and `trusted-keys` entries carry it
        name: String,
        /// Where to write the secret key (created with mode 0600; never overwritten)
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub(crate) struct PullArgs {
    #[command(flatten)]
    pub(crate) build: BuildArgs,
    /// Vouch for the remote's unsigned entries as this CI run's own builds (the slices a run's build jobs hand on), so they can be signed when pushed; never for a shared cache
    #[arg(long)]
    pub(crate) vouch: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    /// Package(s) to build, globs as cargo takes them (`chronik-*`; default: every member with a binary)
    #[arg(short, long = "package", value_name = "SPEC")]
    pub(crate) packages: Vec<String>,
    /// Every member with a binary (the default; for cargo habits)
    #[arg(long, conflicts_with = "packages")]
    pub(crate) workspace: bool,
    /// Members to leave out (globs), with the default selection or --workspace
    #[arg(long, value_name = "SPEC")]
    pub(crate) exclude: Vec<String>,
    /// The release profile (the default; for cargo habits)
    #[arg(short = 'r', long, conflicts_with = "profile")]
    pub(crate) release: bool,
    /// Binary(ies) to build (default: all binaries of the selected packages)
    #[arg(long = "bin", value_name = "NAME")]
    pub(crate) bins: Vec<String>,
    /// Target(s): amd64, arm64 or a Linux target triple (default: amd64 and arm64)
    #[arg(long = "target", value_name = "TARGET")]
    pub(crate) targets: Vec<String>,
    /// Cargo profile (default: release)
    #[arg(long, value_name = "NAME")]
    pub(crate) profile: Option<String>,
    /// Features to enable (comma or space separated)
    #[arg(short = 'F', long, value_delimiter = ',')]
    pub(crate) features: Vec<String>,
    /// Enable all features
    #[arg(long)]
    pub(crate) all_features: bool,
    /// Disable default features
    #[arg(long)]
    pub(crate) no_default_features: bool,
    /// Toolchain backend (default: auto, i.e. zig when C code is built, else cargo)
    #[arg(long, value_enum)]
    pub(crate) backend: Option<Backend>,
    /// Artifact store directory (default: <workspace>/artifacts)
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Parallel jobs for cargo (an upper bound: the memory budget may allow fewer)
    #[arg(short, long, value_name = "N")]
    pub(crate) jobs: Option<u32>,
    /// Memory budget for the whole build: a size (4GiB) or `auto` (cgroup limit, else 75% of available)
    #[arg(long, value_name = "SIZE")]
    pub(crate) max_memory: Option<String>,
    /// Where to write the build metrics (default: target/kiln/metrics)
    #[arg(long, value_name = "DIR")]
    pub(crate) metrics_out: Option<PathBuf>,
    /// Neither read nor write the binary cache
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// Only say what would be built, restored or kept (as `kiln plan`)
    #[arg(long)]
    pub(crate) dry_run: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Backend {
    Auto,
    Cargo,
    Zig,
    Cross,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Artifact store directory (default: the workspace's)
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct SetupArgs {
    /// Only report what is missing; exit 4 if anything required is
    #[arg(long)]
    pub(crate) check: bool,
    /// Targets to prepare (default: the workspace's, or amd64 and arm64)
    #[arg(long = "target", value_name = "TARGET")]
    pub(crate) targets: Vec<String>,
}

impl BuildArgs {
    /// What to build (the settings' flags are in [`BuildArgs::flags`]).
    pub(crate) fn request(&self) -> BuildRequest {
        BuildRequest {
            packages: self.packages.clone(),
            exclude: self.exclude.clone(),
            bins: self.bins.clone(),
            features: self
                .features
                .iter()
                .flat_map(|f| f.split_whitespace())
                .map(String::from)
                .collect(),
            all_features: self.all_features,
            no_default_features: self.no_default_features,
        }
    }

    /// The settings' flags this command line gives, over `global`'s.
    pub(crate) fn flags(&self, global: &GlobalArgs) -> kiln_config::Flags {
        kiln_config::Flags {
            out: self.out.clone(),
            targets: self.targets.clone(),
            profile: self
                .profile
                .clone()
                .or_else(|| self.release.then(|| "release".to_string())),
            backend: self.backend.map(|b| match b {
                Backend::Auto => BackendChoice::Auto,
                Backend::Cargo => BackendChoice::Cargo,
                Backend::Zig => BackendChoice::Zig,
                Backend::Cross => BackendChoice::Cross,
            }),
            max_memory: self.max_memory.clone(),
            jobs: self.jobs,
            ..global.flags()
        }
    }
}

impl ImageArgs {
    /// The settings' flags: the store to read, the platforms.
    pub(crate) fn flags(&self, global: &GlobalArgs) -> kiln_config::Flags {
        kiln_config::Flags {
            out: self.out.clone(),
            targets: self.platforms.clone(),
            ..global.flags()
        }
    }
}
