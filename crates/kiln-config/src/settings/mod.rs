//! The effective settings: command-line flags over environment over the config file
//! over defaults, resolved in one place with one precedence rule.

mod rows;
mod trust;

pub use rows::SettingRow;
pub use trust::Trust;

use crate::choices::{BackendChoice, Choice, Matrix, Sccache, Upload};
use crate::env::{Access, Env, Secret};
use crate::size::MemoryLimit;
use crate::{Config, DistScheduler, RemoteUrl, Target};
use kiln_diagnostics::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// kiln's default.
    Default,
    /// A key of `[workspace.metadata.kiln]`, dotted (`cache.upload`).
    Config(&'static str),
    /// An environment variable.
    Env(&'static str),
    /// A command-line flag.
    Flag(&'static str),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::Config(k) => write!(f, "`{k}` in [workspace.metadata.kiln]"),
            Origin::Env(v) => write!(f, "{v}"),
            Origin::Flag(flag) => write!(f, "{flag}"),
        }
    }
}

impl From<Origin> for kiln_schema::SettingOrigin {
    fn from(o: Origin) -> Self {
        use kiln_schema::SettingOrigin as S;
        match o {
            Origin::Default => S::Default,
            Origin::Config(key) => S::Config { key: key.into() },
            Origin::Env(name) => S::Env { name: name.into() },
            Origin::Flag(flag) => S::Flag { flag: flag.into() },
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    /// The effective value.
    pub value: T,
    /// Its origin, for `kiln config` and error messages.
    pub origin: Origin,
}

impl<T> Setting<T> {
    fn new(value: T, origin: Origin) -> Self {
        Self { value, origin }
    }

    /// The value changed by `f`, from the same origin.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Setting<U> {
        Setting::new(f(self.value), self.origin)
    }

    /// The flag's value when it was given: flags win over everything else.
    pub fn or_flag(self, flag: Option<T>, name: &'static str) -> Self {
        match flag {
            Some(v) => Self::new(v, Origin::Flag(name)),
            None => self,
        }
    }
}

/// The first of: the environment variable, the config key, the default.
fn layered<T: Default>(
    env: Option<(Result<T>, &'static str)>,
    file: Option<T>,
    key: &'static str,
) -> Result<Setting<T>> {
    if let Some((v, var)) = env {
        return Ok(Setting::new(v?, Origin::Env(var)));
    }
    Ok(match file {
        Some(v) => Setting::new(v, Origin::Config(key)),
        None => Setting::new(T::default(), Origin::Default),
    })
}

fn choice<T: Choice>(raw: &Option<String>, var: &'static str) -> Option<(Result<T>, &'static str)> {
    raw.as_deref().map(|s| (T::parse_named(s, var), var))
}

/// The command-line flags settings resolution takes: the top layer over the
/// environment, the config file and the defaults. A command sets those it has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// `--locked`.
    pub locked: bool,
    /// `--frozen`.
    pub frozen: bool,
    /// `--offline`.
    pub offline: bool,
    /// `-v`: show tools' full output (rustup's backtraces included).
    pub verbose: bool,
    /// `--artifact-dir`: the artifact store.
    pub out: Option<PathBuf>,
    /// `--target` (`--platform`): targets as typed.
    pub targets: Vec<String>,
    /// `--profile` (`--release`).
    pub profile: Option<String>,
    /// `--backend`.
    pub backend: Option<BackendChoice>,
    /// `--max-memory`: a size or `auto`.
    pub max_memory: Option<String>,
    /// `-j`.
    pub jobs: Option<u32>,
}

fn boolean(raw: &Option<String>, var: &'static str) -> Option<(Result<bool>, &'static str)> {
    raw.as_deref().map(|s| {
        let v = match s {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(kiln_diagnostics::Error::usage(format!(
                "invalid {var}: it is not `true` or `false`"
            ))
            .hint(format!("set {var}=true or {var}=false, or unset it"))),
        };
        (v, var)
    })
}

/// A flag that only switches on: given, it wins; absent, the layers below decide.
fn switch(s: Setting<bool>, given: bool, name: &'static str) -> Setting<bool> {
    s.or_flag(given.then_some(true), name)
}

/// Every setting kiln reads from more than one place, resolved once: flags over
/// environment over `[workspace.metadata.kiln]` over defaults, each a typed value
/// with its origin. Commands and libraries read these, never the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The targets to build (`--target`, `targets`; default amd64 and arm64).
    pub targets: Setting<Vec<Target>>,
    /// The cargo profile.
    pub profile: Setting<String>,
    /// The artifact store's root (absolute).
    pub artifact_dir: Setting<PathBuf>,
    /// Cargo's `-j` (a flag only; else the memory budget decides).
    pub jobs: Setting<Option<u32>>,
    /// The toolchain backend.
    pub backend: Setting<BackendChoice>,
    /// The memory budget.
    pub max_memory: Setting<MemoryLimit>,
    /// The local cache directory; `None` when there is no home directory to put it in.
    pub cache_dir: Setting<Option<PathBuf>>,
    /// The remote cache; `None` when there is none or it is `off`.
    pub remote: Setting<Option<RemoteUrl>>,
    /// Who uploads to the remote cache.
    pub upload: Setting<Upload>,
    /// sccache as `RUSTC_WRAPPER`.
    pub sccache: Setting<Sccache>,
    /// The sccache-dist scheduler kiln's sccache server sends compiles to.
    pub dist: Setting<Option<DistScheduler>>,
    /// `KILN_SCCACHE_DIST_TOKEN`: the scheduler's client token.
    pub dist_token: Option<Secret>,
    /// How CI jobs are split.
    pub matrix: Setting<Matrix>,
    /// How long a remote operation may take before the remote is skipped.
    pub remote_timeout: Setting<Duration>,
    /// Plain HTTP for a registry on this machine.
    pub insecure: Setting<bool>,
    /// Whose signatures shared cache records need, and the key this machine signs
    /// its uploads with.
    pub trust: Trust,
    /// The credentials and registry settings the clients kiln runs may use.
    pub access: Access,
    /// `KILN_IMAGE_SIGNING_KEY`: the key `kiln image --push` signs with.
    pub image_signing_key: Option<Secret>,
    /// Whether this process runs in CI.
    pub in_ci: bool,
    /// The user set `RUSTC_WRAPPER`, which wins over sccache.
    pub rustc_wrapper: bool,
    /// Cargo's `--locked`: `Cargo.lock` must not change.
    pub locked: Setting<bool>,
    /// Cargo's `--frozen`: `--locked` and `--offline`.
    pub frozen: Setting<bool>,
    /// Cargo's `--offline`: no network.
    pub offline: Setting<bool>,
    /// `-v`.
    pub verbose: bool,
}

impl Settings {
    /// The settings of the workspace at `root` with `config`, under this process's
    /// environment.
    pub fn load(config: &Config, root: &Path, flags: Flags) -> Result<Self> {
        Self::resolve(config, root, crate::env(), flags)
    }

    /// The settings outside any workspace (`kiln cache` reaching the cache from
    /// anywhere): the environment's and the defaults, relative to `cwd`.
    pub fn outside_workspace(cwd: &Path, flags: Flags) -> Result<Self> {
        Self::resolve(&Config::default(), cwd, crate::env(), flags)
    }

    /// Resolves `config` (of the workspace at `root`) under `env`. A value that is
    /// not one of a setting's choices is a usage error naming where it came from.
    pub fn resolve(config: &Config, root: &Path, env: &Env, flags: Flags) -> Result<Self> {
        let cache = config.cache.clone().unwrap_or_default();
        let ci = config.ci.clone().unwrap_or_default();
        let remote = match &env.remote_cache {
            Some(v) if v == "off" => Setting::new(None, Origin::Env("KILN_REMOTE_CACHE")),
            Some(v) => Setting::new(
                Some(RemoteUrl::parse(v, "KILN_REMOTE_CACHE")?),
                Origin::Env("KILN_REMOTE_CACHE"),
            ),
            None => match &cache.remote {
                Some(url) => Setting::new(
                    Some(RemoteUrl::parse(
                        url,
                        "`cache.remote` in [workspace.metadata.kiln]",
                    )?),
                    Origin::Config("cache.remote"),
                ),
                None => Setting::new(None, Origin::Default),
            },
        };
        let file_dist = cache.dist.as_ref().and_then(|d| d.scheduler.as_deref());
        let dist = match (&env.dist_scheduler, file_dist) {
            (Some(v), _) if v == "off" => {
                Setting::new(None, Origin::Env("KILN_SCCACHE_DIST_SCHEDULER"))
            }
            (Some(v), _) => Setting::new(
                Some(DistScheduler::parse(
                    v,
                    "KILN_SCCACHE_DIST_SCHEDULER",
                    &env.insecure_registries,
                )?),
                Origin::Env("KILN_SCCACHE_DIST_SCHEDULER"),
            ),
            (None, Some(url)) => Setting::new(
                Some(DistScheduler::parse(
                    url,
                    "`cache.dist.scheduler` in [workspace.metadata.kiln]",
                    &env.insecure_registries,
                )?),
                Origin::Config("cache.dist.scheduler"),
            ),
            (None, None) => Setting::new(None, Origin::Default),
        };
        let cache_dir = match (&env.cache_dir, &config.cache_dir) {
            (Some(d), _) => Setting::new(Some(d.clone()), Origin::Env("KILN_CACHE_DIR")),
            (None, Some(d)) => Setting::new(
                Some(root.join(expand_home(d, env.home.as_deref()))),
                Origin::Config("cache-dir"),
            ),
            (None, None) => Setting::new(default_cache_dir(env), Origin::Default),
        };
        let targets = match (flags.targets.is_empty(), &config.targets) {
            (false, _) => Setting::new(parse_targets(&flags.targets)?, Origin::Flag("--target")),
            (true, Some(t)) => Setting::new(parse_targets(t)?, Origin::Config("targets")),
            (true, None) => Setting::new(Target::defaults(), Origin::Default),
        };
        let profile = match &config.profile {
            Some(p) => Setting::new(p.clone(), Origin::Config("profile")),
            None => Setting::new("release".to_string(), Origin::Default),
        }
        .or_flag(flags.profile.clone(), "--profile");
        let artifact_dir = match &config.artifact_dir {
            Some(d) => Setting::new(root.join(d), Origin::Config("artifact-dir")),
            None => Setting::new(root.join("artifacts"), Origin::Default),
        }
        .or_flag(
            flags
                .out
                .as_ref()
                .map(|o| std::env::current_dir().unwrap_or_default().join(o)),
            "--artifact-dir",
        );
        let max_memory = layered(None, config.max_memory, "max-memory")?.or_flag(
            flags
                .max_memory
                .as_deref()
                .map(MemoryLimit::parse)
                .transpose()?,
            "--max-memory",
        );
        if flags.jobs == Some(0) {
            return Err(Error::usage("`-j 0` runs nothing")
                .hint("give at least 1 job, or leave `-j` out: the memory budget picks the jobs"));
        }
        Ok(Self {
            targets,
            profile,
            artifact_dir,
            jobs: Setting::new(None, Origin::Default).or_flag(flags.jobs.map(Some), "--jobs"),
            backend: layered(None, config.backend, "backend")?.or_flag(flags.backend, "--backend"),
            max_memory,
            cache_dir,
            remote,
            upload: layered(
                choice(&env.cache_upload, "KILN_CACHE_UPLOAD"),
                cache.upload,
                "cache.upload",
            )?,
            sccache: layered(
                choice(&env.sccache, "KILN_SCCACHE"),
                cache.sccache,
                "cache.sccache",
            )?,
            dist,
            dist_token: env.dist_token.clone(),
            matrix: layered(None, ci.matrix, "ci.matrix")?,
            remote_timeout: match cache.timeout {
                Some(s) => Setting::new(
                    Duration::from_secs(s.max(1)),
                    Origin::Config("cache.timeout"),
                ),
                None => Setting::new(Duration::from_secs(5), Origin::Default),
            },
            insecure: layered(None, cache.insecure, "cache.insecure")?,
            trust: Trust::resolve(env, cache.trusted_keys.clone())?,
            access: env.access(),
            image_signing_key: env.image_signing_key.clone(),
            in_ci: env.in_ci,
            rustc_wrapper: env.rustc_wrapper,
            locked: switch(
                layered(boolean(&env.locked, "KILN_LOCKED"), config.locked, "locked")?,
                flags.locked,
                "--locked",
            ),
            frozen: switch(
                layered(boolean(&env.frozen, "KILN_FROZEN"), config.frozen, "frozen")?,
                flags.frozen,
                "--frozen",
            ),
            offline: switch(
                layered(
                    boolean(&env.offline, "KILN_OFFLINE"),
                    config.offline,
                    "offline",
                )?,
                flags.offline,
                "--offline",
            ),
            verbose: flags.verbose,
        })
    }

    /// The arguments every cargo invocation gets: `--locked`, `--frozen`, `--offline`.
    pub fn cargo_flags(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        if self.locked.value {
            f.push("--locked");
        }
        if self.frozen.value {
            f.push("--frozen");
        }
        if self.offline.value {
            f.push("--offline");
        }
        f
    }

    /// Whether this process uploads to the remote cache.
    pub fn uploads(&self) -> bool {
        self.upload.value.enabled(self.in_ci)
    }
}

/// Targets as typed, parsed; two targets that would write the same store path (musl
/// and glibc for one arch) are an error; a target named twice counts once.
pub fn parse_targets(names: &[String]) -> Result<Vec<Target>> {
    let mut out: Vec<Target> = Vec::new();
    for t in names
        .iter()
        .flat_map(|n| n.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let t = Target::parse(t)?;
        if let Some(other) = out.iter().find(|o| o.platform() == t.platform()) {
            if other.build_target() != t.build_target() {
                return Err(Error::usage(format!(
                    "targets `{}` and `{}` would both write to `{}`",
                    other.build_target(),
                    t.build_target(),
                    t.platform()
                ))
                .hint("build them in two runs with different `--artifact-dir` directories"));
            }
            continue;
        }
        out.push(t);
    }
    if out.is_empty() {
        return Ok(Target::defaults());
    }
    Ok(out)
}

/// `~/x` with the home directory.
fn expand_home(p: &Path, home: Option<&Path>) -> PathBuf {
    match (p.strip_prefix("~"), home) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => p.to_path_buf(),
    }
}

/// `$XDG_CACHE_HOME/kiln`, else the platform's cache directory under `$HOME`.
fn default_cache_dir(env: &Env) -> Option<PathBuf> {
    if let Some(d) = &env.xdg_cache_home {
        return Some(d.join("kiln"));
    }
    let home = env.home.as_ref()?;
    Some(if cfg!(target_os = "macos") {
        home.join("Library/Caches/kiln")
    } else {
        home.join(".cache/kiln")
    })
}

#[cfg(test)]
mod tests;
