//! Command-line arguments, cargo-style: each command lists only the options it uses,
//! grouped under cargo's headings (shared groups are flattened in).

use clap::{Args, Parser, Subcommand, ValueEnum};
use kiln_build::BuildRequest;
use kiln_config::BackendChoice;
use std::path::PathBuf;

/// kiln builds a Cargo workspace's server binaries for linux/amd64 and linux/arm64
/// (static musl) from any host, restores what was built before from a shared cache,
/// and ships them as checksummed artifacts and multi-arch images.
#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    after_help = "Start with `kiln init` in a workspace, then `kiln build`. Docs: https://github.com/kiln-build/kiln/tree/main/docs"
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How kiln speaks: every command takes these.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global Options")]
pub(crate) struct GlobalArgs {
    /// Print more: cargo's own status lines, the commands kiln runs, tools' full errors
    #[arg(short, long, global = true, conflicts_with = "quiet", action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Print only errors (and data a command was asked for)
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// Output format: human-readable text, or one JSON object per line on stdout
    #[arg(long, global = true, value_enum, default_value_t = MessageFormat::Human, value_name = "FMT")]
    pub(crate) message_format: MessageFormat,
    /// Coloring
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub(crate) color: ColorChoice,
}

impl GlobalArgs {
    /// The settings' flags every command has.
    pub(crate) fn flags(&self) -> kiln_config::Flags {
        kiln_config::Flags {
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
    /// Write the kiln settings block into Cargo.toml and the generated paths into .gitignore
    Init(InitArgs),
    /// Cross-compile the workspace's binaries into the artifact store
    Build(BuildArgs),
    /// Show what `kiln build` would do and run, without running it
    Plan(PlanArgs),
    /// Re-hash the artifact store; exit 3 on any mismatch
    Verify(VerifyArgs),
    /// Check and install the cross-compilation prerequisites
    Setup(SetupArgs),
    /// Which binaries x platforms a change since a git revision affects (for CI)
    Affected(AffectedArgs),
    /// Inspect and maintain the binary cache, local and remote
    Cache(CacheArgs),
    /// Build a multi-arch OCI image from the artifact store, without a container engine
    Image(ImageArgs),
    /// Write a Dockerfile (and .dockerignore) that packages the artifacts, for docker buildx
    Dockerfile(DockerfileArgs),
    /// Write the release folder: archives per binary x target, SHA256SUMS, install.sh
    Release(ReleaseArgs),
    /// Generate the CI pipeline that builds, caches and ships with kiln
    Ci(CiArgs),
    /// Write an HTML report of the last build that did work: timeline, memory, cache hits
    Report(ReportArgs),
    /// Show every effective setting and where it comes from (flag, environment, Cargo.toml, default)
    Config(ConfigArgs),
    /// Print a shell completion script (e.g. `kiln completions bash > /etc/bash_completion.d/kiln`)
    Completions(CompletionsArgs),
    /// Write man pages for kiln and every subcommand
    Man(ManArgs),
}

/// Which workspace.
#[derive(Debug, Clone, Args, Default)]
#[command(next_help_heading = "Manifest Options")]
pub(crate) struct ManifestArgs {
    /// Path to the workspace's Cargo.toml [default: found from the current directory]
    #[arg(long, value_name = "PATH")]
    pub(crate) manifest_path: Option<PathBuf>,
}

/// How cargo may touch the lockfile and the network.
#[derive(Debug, Clone, Args, Default)]
#[command(next_help_heading = "Manifest Options")]
pub(crate) struct LockArgs {
    /// Assert that Cargo.lock will remain unchanged (also `locked = true`)
    #[arg(long)]
    pub(crate) locked: bool,
    /// Equivalent to --locked and --offline
    #[arg(long)]
    pub(crate) frozen: bool,
    /// Run without accessing the network
    #[arg(long)]
    pub(crate) offline: bool,
}

/// Which packages and binaries.
#[derive(Debug, Clone, Args, Default)]
#[command(next_help_heading = "Package Selection")]
pub(crate) struct SelectArgs {
    /// Package(s) to build, globs as cargo takes them (`chronik-*`; default: every member with a binary)
    #[arg(short, long = "package", value_name = "SPEC")]
    pub(crate) packages: Vec<String>,
    /// Every member with a binary (the default; for cargo habits)
    #[arg(long, conflicts_with = "packages")]
    pub(crate) workspace: bool,
    /// Members to leave out (globs), with the default selection or --workspace
    #[arg(long, value_name = "SPEC")]
    pub(crate) exclude: Vec<String>,
}

/// Which binaries of the selected packages.
#[derive(Debug, Clone, Args, Default)]
#[command(next_help_heading = "Target Selection")]
pub(crate) struct BinArgs {
    /// Binary(ies) to build (default: all binaries of the selected packages)
    #[arg(long = "bin", value_name = "NAME")]
    pub(crate) bins: Vec<String>,
}

/// Cargo features.
#[derive(Debug, Clone, Args, Default)]
#[command(next_help_heading = "Feature Selection")]
pub(crate) struct FeatureArgs {
    /// Space or comma separated list of features to activate
    #[arg(short = 'F', long, value_delimiter = ',', value_name = "FEATURES")]
    pub(crate) features: Vec<String>,
    /// Activate all available features
    #[arg(long)]
    pub(crate) all_features: bool,
    /// Do not activate the `default` feature
    #[arg(long)]
    pub(crate) no_default_features: bool,
}

/// The platforms, spelled the same in every command.
#[derive(Debug, Clone, Args, Default)]
#[command(next_help_heading = "Platform Selection")]
pub(crate) struct PlatformArgs {
    /// Platform(s): linux/amd64, linux/arm64 (or amd64, arm64, amd64-gnu, a Linux target triple); comma-separated or repeated [default: the configured targets, else linux/amd64,linux/arm64]
    #[arg(long = "target", visible_alias = "platform", value_name = "PLATFORM")]
    pub(crate) targets: Vec<String>,
}

/// How cargo compiles.
#[derive(Debug, Clone, Args, Default)]
#[command(next_help_heading = "Compilation Options")]
pub(crate) struct CompileArgs {
    /// Build with the release profile (the default; for cargo habits)
    #[arg(short = 'r', long, conflicts_with = "profile")]
    pub(crate) release: bool,
    /// Build with the given cargo profile [default: release]
    #[arg(long, value_name = "NAME")]
    pub(crate) profile: Option<String>,
    /// Toolchain backend [default: auto, i.e. zig when C code is built, else cargo]
    #[arg(long, value_enum, value_name = "BACKEND")]
    pub(crate) backend: Option<Backend>,
}

/// Memory and parallelism.
#[derive(Debug, Clone, Args, Default)]
#[command(next_help_heading = "Compilation Options")]
pub(crate) struct ResourceArgs {
    /// Parallel jobs for cargo (an upper bound: the memory budget may allow fewer)
    #[arg(short, long, value_name = "N")]
    pub(crate) jobs: Option<u32>,
    /// Memory budget for the whole build: a size (4GiB) or `auto` (cgroup limit, else 75% of available)
    #[arg(long, value_name = "SIZE")]
    pub(crate) max_memory: Option<String>,
}

/// The artifact store.
#[derive(Debug, Clone, Args, Default)]
#[command(next_help_heading = "Output Options")]
pub(crate) struct StoreArgs {
    /// The artifact store [default: `artifact-dir`, else <workspace>/artifacts]
    #[arg(long, value_name = "DIR")]
    pub(crate) artifact_dir: Option<PathBuf>,
    /// Deprecated spelling of --artifact-dir
    #[arg(long, value_name = "DIR", hide = true, conflicts_with = "artifact_dir")]
    pub(crate) out: Option<PathBuf>,
}

impl StoreArgs {
    /// The store named on the command line, and whether the old `--out` named it.
    pub(crate) fn dir(&self) -> (Option<PathBuf>, bool) {
        match (&self.artifact_dir, &self.out) {
            (Some(d), _) => (Some(d.clone()), false),
            (None, Some(d)) => (Some(d.clone()), true),
            (None, None) => (None, false),
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    #[command(flatten)]
    pub(crate) manifest: ManifestArgs,
}

/// What `build` and `plan` share.
#[derive(Debug, Clone, Args, Default)]
pub(crate) struct BuildOptions {
    #[command(flatten)]
    pub(crate) select: SelectArgs,
    #[command(flatten)]
    pub(crate) bins: BinArgs,
    #[command(flatten)]
    pub(crate) features: FeatureArgs,
    #[command(flatten)]
    pub(crate) platforms: PlatformArgs,
    #[command(flatten)]
    pub(crate) compile: CompileArgs,
    #[command(flatten)]
    pub(crate) resources: ResourceArgs,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) manifest: ManifestArgs,
    #[command(flatten)]
    pub(crate) lock: LockArgs,
    /// Neither read nor write the binary cache
    #[arg(long, help_heading = "Cache Options")]
    pub(crate) no_cache: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    /// Only say what would be built, restored or kept (as `kiln plan`)
    #[arg(long)]
    pub(crate) dry_run: bool,
    #[command(flatten)]
    pub(crate) options: BuildOptions,
    /// Where to write the build metrics [default: <target-dir>/kiln/metrics]
    #[arg(long, value_name = "DIR", help_heading = "Output Options")]
    pub(crate) metrics_out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    pub(crate) options: BuildOptions,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Backend {
    Auto,
    Cargo,
    Zig,
    Cross,
}

impl BuildOptions {
    /// What to build.
    pub(crate) fn request(&self) -> BuildRequest {
        request(&self.select, &self.bins, &self.features)
    }

    /// The settings' flags this command line gives, over `global`'s.
    pub(crate) fn flags(&self, global: &GlobalArgs) -> kiln_config::Flags {
        kiln_config::Flags {
            out: self.store.dir().0,
            max_memory: self.resources.max_memory.clone(),
            jobs: self.resources.jobs,
            ..compile_flags(&self.platforms, &self.compile, &self.lock, global)
        }
    }
}

fn request(select: &SelectArgs, bins: &BinArgs, features: &FeatureArgs) -> BuildRequest {
    BuildRequest {
        packages: select.packages.clone(),
        exclude: select.exclude.clone(),
        bins: bins.bins.clone(),
        features: features
            .features
            .iter()
            .flat_map(|f| f.split_whitespace())
            .map(String::from)
            .collect(),
        all_features: features.all_features,
        no_default_features: features.no_default_features,
    }
}

fn lock_flags(lock: &LockArgs, global: &GlobalArgs) -> kiln_config::Flags {
    kiln_config::Flags {
        locked: lock.locked,
        frozen: lock.frozen,
        offline: lock.offline,
        ..global.flags()
    }
}

fn compile_flags(
    platforms: &PlatformArgs,
    compile: &CompileArgs,
    lock: &LockArgs,
    global: &GlobalArgs,
) -> kiln_config::Flags {
    kiln_config::Flags {
        targets: platforms.targets.clone(),
        profile: compile
            .profile
            .clone()
            .or_else(|| compile.release.then(|| "release".to_string())),
        backend: compile.backend.map(|b| match b {
            Backend::Auto => BackendChoice::Auto,
            Backend::Cargo => BackendChoice::Cargo,
            Backend::Zig => BackendChoice::Zig,
            Backend::Cross => BackendChoice::Cross,
        }),
        ..lock_flags(lock, global)
    }
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) manifest: ManifestArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SetupArgs {
    /// Only report what is missing; exit 4 if anything required is
    #[arg(long)]
    pub(crate) check: bool,
    #[command(flatten)]
    pub(crate) platforms: PlatformArgs,
    #[command(flatten)]
    pub(crate) manifest: ManifestArgs,
}

impl SetupArgs {
    pub(crate) fn flags(&self, global: &GlobalArgs) -> kiln_config::Flags {
        kiln_config::Flags {
            targets: self.platforms.targets.clone(),
            ..global.flags()
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct AffectedArgs {
    /// The revision to compare against (its merge-base with --head is used)
    #[arg(long, value_name = "REV", required_unless_present = "all")]
    pub(crate) base: Option<String>,
    /// The revision with the changes [default: the working tree, uncommitted edits included]
    #[arg(long, value_name = "REV")]
    pub(crate) head: Option<String>,
    /// Everything is affected (a first push, a new tag): no git comparison
    #[arg(long, conflicts_with_all = ["base", "head"])]
    pub(crate) all: bool,
    /// Drop binaries the remote cache already holds (the keys are computed; needs a remote)
    #[arg(long)]
    pub(crate) skip_cached: bool,
    /// Output: text, json, a GitHub Actions matrix, or the lines a workflow step appends to $GITHUB_OUTPUT (`matrix=`, `empty=`, `image=`)
    #[arg(long, value_enum, default_value_t = AffectedFormat::Text)]
    pub(crate) format: AffectedFormat,
    #[command(flatten)]
    pub(crate) sync: SyncArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum AffectedFormat {
    Text,
    Json,
    GithubMatrix,
    GithubOutputs,
}

/// What a command computing the plan's keys takes (no memory, no store).
#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    #[command(flatten)]
    pub(crate) select: SelectArgs,
    #[command(flatten)]
    pub(crate) bins: BinArgs,
    #[command(flatten)]
    pub(crate) features: FeatureArgs,
    #[command(flatten)]
    pub(crate) platforms: PlatformArgs,
    #[command(flatten)]
    pub(crate) compile: CompileArgs,
    #[command(flatten)]
    pub(crate) manifest: ManifestArgs,
    #[command(flatten)]
    pub(crate) lock: LockArgs,
}

impl SyncArgs {
    pub(crate) fn request(&self) -> BuildRequest {
        request(&self.select, &self.bins, &self.features)
    }

    pub(crate) fn flags(&self, global: &GlobalArgs) -> kiln_config::Flags {
        compile_flags(&self.platforms, &self.compile, &self.lock, global)
    }
}

#[derive(Debug, Args)]
pub(crate) struct CacheArgs {
    #[command(subcommand)]
    pub(crate) action: CacheAction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CacheAction {
    /// Size, entry count and hit rate over recent builds
    Stats {
        #[command(flatten)]
        manifest: ManifestArgs,
    },
    /// Evict least recently used entries until the cache fits in SIZE (e.g. 2GiB, 500M)
    Gc {
        /// Size limit
        #[arg(long, value_name = "SIZE")]
        max_size: String,
        #[command(flatten)]
        manifest: ManifestArgs,
    },
    /// Remove every cached binary
    Clear {
        #[command(flatten)]
        manifest: ManifestArgs,
    },
    /// Upload the current plan's locally cached binaries to the remote cache (signed with KILN_CACHE_SIGNING_KEY when set)
    Push(PushArgs),
    /// Download the current plan's binaries from the remote cache into the local one
    Pull(PullArgs),
    /// Make an Ed25519 key pair for signing the shared cache: the secret key goes to FILE, the public key to stdout
    Keygen {
        /// The key's name (e.g. `chronik-ci-1`): signatures and `trusted-keys` entries carry it
        name: String,
        /// Where to write the secret key (created with mode 0600; never overwritten)
        #[arg(long, visible_alias = "out", value_name = "FILE")]
        output: PathBuf,
    },
}

impl CacheAction {
    /// The workspace option of the actions that read one.
    pub(crate) fn manifest(&self) -> Option<&ManifestArgs> {
        match self {
            CacheAction::Stats { manifest }
            | CacheAction::Gc { manifest, .. }
            | CacheAction::Clear { manifest } => Some(manifest),
            CacheAction::Push(p) => Some(&p.sync.manifest),
            CacheAction::Pull(p) => Some(&p.sync.manifest),
            CacheAction::Keygen { .. } => None,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// Push, as data, every entry of this CI run's slice at URL (the `file://` directory build jobs pushed to) instead of the plan's: nothing the workspace configures runs (no cargo), for the step that holds the signing key
    #[arg(long, value_name = "URL", conflicts_with_all = ["packages", "bins", "features", "all_features", "no_default_features"])]
    pub(crate) from: Option<String>,
    #[command(flatten)]
    pub(crate) sync: SyncArgs,
}

#[derive(Debug, Args)]
pub(crate) struct PullArgs {
    /// Vouch for the remote's unsigned entries as this CI run's own builds (the slices a run's build jobs hand on), so they can be signed when pushed; never for a shared cache
    #[arg(long)]
    pub(crate) vouch: bool,
    #[command(flatten)]
    pub(crate) sync: SyncArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ImageArgs {
    /// Where to write: `oci:DIR` (an OCI layout) or `oci-archive:FILE` [default: oci:<target-dir>/kiln/image]
    #[arg(long, value_name = "KIND:PATH")]
    pub(crate) output: Option<kiln_config::ImageOutput>,
    /// Push to this reference (`registry/repository:tag`); the index goes up last
    #[arg(long, value_name = "REF")]
    pub(crate) push: Option<String>,
    /// More tags for the pushed image (e.g. the commit)
    #[arg(long = "tag", value_name = "TAG", requires = "push")]
    pub(crate) tags: Vec<String>,
    /// Base image reference instead of the configured one (`scratch` for none)
    #[arg(long, value_name = "REF")]
    pub(crate) base: Option<String>,
    /// Plain HTTP for this registry (loopback registries use it without asking; also KILN_INSECURE_REGISTRIES)
    #[arg(long)]
    pub(crate) insecure: bool,
    /// Sign the pushed image with this PKCS#8 PEM ECDSA P-256 key, as cosign does (also KILN_IMAGE_SIGNING_KEY)
    #[arg(long, value_name = "FILE", requires = "push")]
    pub(crate) sign_key: Option<PathBuf>,
    /// Leave the SBOMs and the provenance statement out of the image (and its referrers)
    #[arg(long)]
    pub(crate) no_attach: bool,
    /// Run `kiln build` first, so the image holds binaries of the current sources
    #[arg(long)]
    pub(crate) build: bool,
    /// Package the store as it is and run nothing the workspace configures (no cargo, no staleness check), for a step that holds a write token or a signing key
    #[arg(long, conflicts_with = "build")]
    pub(crate) no_build: bool,
    #[command(flatten)]
    pub(crate) platforms: PlatformArgs,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) manifest: ManifestArgs,
}

impl ImageArgs {
    /// The settings' flags: the store to read, the platforms.
    pub(crate) fn flags(&self, global: &GlobalArgs) -> kiln_config::Flags {
        kiln_config::Flags {
            out: self.store.dir().0,
            targets: self.platforms.targets.clone(),
            ..global.flags()
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct ReleaseArgs {
    /// The release folder, replaced whole [default: <target-dir>/kiln/dist]
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Say what the folder would hold (names, sizes, digests) and write nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Where install.sh downloads the archives from [default: the GitHub release of the tag, from the package's `repository`]
    #[arg(long, value_name = "URL")]
    pub(crate) base_url: Option<String>,
    /// The release's tag [default: v<version>]
    #[arg(long, value_name = "TAG")]
    pub(crate) tag: Option<String>,
    /// The image pushed for this release, by digest (`registry/repo@sha256:...`), recorded in release.json
    #[arg(long, value_name = "REF")]
    pub(crate) image: Option<String>,
    /// Release the store as it is, without `kiln build` first (restores or builds what changed)
    #[arg(long)]
    pub(crate) no_build: bool,
    /// The artifact store [default: `artifact-dir`, else <workspace>/artifacts]
    #[arg(long, value_name = "DIR")]
    pub(crate) artifact_dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) platforms: PlatformArgs,
    #[command(flatten)]
    pub(crate) manifest: ManifestArgs,
}

impl ReleaseArgs {
    /// The settings' flags: the store to read, the platforms.
    pub(crate) fn flags(&self, global: &GlobalArgs) -> kiln_config::Flags {
        kiln_config::Flags {
            out: self.artifact_dir.clone(),
            targets: self.platforms.targets.clone(),
            ..global.flags()
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct DockerfileArgs {
    /// Base image: `scratch` or an image such as `debian:bookworm-slim` [default: the configured base]
    #[arg(long, value_name = "REF")]
    pub(crate) base: Option<String>,
    /// Directory to write into; the build context [default: the workspace root]
    #[arg(long, value_name = "DIR")]
    pub(crate) output: Option<PathBuf>,
    /// Replace a Dockerfile or .dockerignore that kiln didn't generate
    #[arg(long)]
    pub(crate) force: bool,
    #[command(flatten)]
    pub(crate) manifest: ManifestArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CiArgs {
    #[command(subcommand)]
    pub(crate) provider: CiProvider,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CiProvider {
    /// GitHub Actions: .github/workflows/kiln.yml
    Github(CiGithubArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CiGithubArgs {
    /// Exit 3 if the file on disk differs from what kiln would write, showing how (for CI)
    #[arg(long)]
    pub(crate) check: bool,
    /// Use the full commit SHAs in [workspace.metadata.kiln.ci.pins] for actions
    #[arg(long)]
    pub(crate) pin_actions: bool,
    /// Where to write [default: .github/workflows/kiln.yml]
    #[arg(long, value_name = "PATH")]
    pub(crate) output: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) manifest: ManifestArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// The build metrics to report on [default: the last build that compiled something]
    #[arg(long, value_name = "FILE")]
    pub(crate) metrics: Option<PathBuf>,
    /// Where to write the page [default: <target-dir>/kiln/report.html]
    #[arg(long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Open it in the browser
    #[arg(long)]
    pub(crate) open: bool,
    #[command(flatten)]
    pub(crate) manifest: ManifestArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    #[command(flatten)]
    pub(crate) manifest: ManifestArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Directory to write `kiln.1`, `kiln-build.1`, ... into
    #[arg(long, value_name = "DIR")]
    pub(crate) output: PathBuf,
}
