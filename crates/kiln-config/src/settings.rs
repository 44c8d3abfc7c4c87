//! The effective settings: command-line flags over environment over the config file
//! over defaults, resolved in one place with one precedence rule.

use crate::choices::{BackendChoice, Choice, Matrix, Sccache, Upload};
use crate::env::Env;
use crate::size::MemoryLimit;
use crate::Config;
use kiln_diagnostics::Result;
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

/// The command-line flags that settings resolution needs (the rest are applied by the
/// command that has them, with [`Setting::or_flag`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// `--locked`.
    pub locked: bool,
    /// `--frozen`.
    pub frozen: bool,
    /// `--offline`.
    pub offline: bool,
    /// `-v`: show tools' full output (rustup's backtraces included).
    pub verbose: bool,
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

/// The shared cache's trust: the public keys readers check, and the secret key
/// (environment only) the uploading step signs with.
#[derive(Debug, Clone)]
pub struct Trust {
    /// `trusted-keys` / `KILN_CACHE_TRUSTED_KEYS`, plus the signing key's own public
    /// key (a signer trusts what it signed).
    pub keys: Setting<kiln_trust::TrustedKeys>,
    /// `KILN_CACHE_SIGNING_KEY`.
    pub signer: Option<kiln_trust::SecretKey>,
}

impl Trust {
    /// Whether records must be signed by a trusted key to be used (and whether only
    /// what this machine built or verified may be uploaded).
    pub fn enforced(&self) -> bool {
        !self.keys.value.is_empty()
    }

    fn resolve(env: &Env, file: Option<Vec<crate::TrustedKey>>) -> Result<Self> {
        let keys = match &env.trusted_keys {
            Some(list) => Setting::new(
                kiln_trust::TrustedKeys::parse(list.split(',')).map_err(|e| {
                    kiln_diagnostics::Error::usage(format!(
                        "invalid KILN_CACHE_TRUSTED_KEYS: {e}"
                    ))
                    .hint("list public keys (`NAME:<base64>`, as `kiln cache keygen` prints them), comma-separated")
                })?,
                Origin::Env("KILN_CACHE_TRUSTED_KEYS"),
            ),
            None => match file {
                Some(keys) => Setting::new(
                    keys.into_iter()
                        .fold(kiln_trust::TrustedKeys::default(), |k, t| k.with(t.0)),
                    Origin::Config("cache.trusted-keys"),
                ),
                None => Setting::new(Default::default(), Origin::Default),
            },
        };
        let signer = env
            .signing_key
            .as_ref()
            .map(|s| kiln_trust::SecretKey::from_env_value(s.expose(), "KILN_CACHE_SIGNING_KEY"))
            .transpose()?;
        let keys = match &signer {
            Some(k) => keys.map(|t| t.with(k.public())),
            None => keys,
        };
        Ok(Self { keys, signer })
    }
}

/// Every setting kiln reads from more than one place, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The toolchain backend.
    pub backend: Setting<BackendChoice>,
    /// The memory budget.
    pub max_memory: Setting<MemoryLimit>,
    /// The local cache directory; `None` when there is no home directory to put it in.
    pub cache_dir: Setting<Option<PathBuf>>,
    /// The remote cache URL; `None` when there is none or it is `off`.
    pub remote: Setting<Option<String>>,
    /// Who uploads to the remote cache.
    pub upload: Setting<Upload>,
    /// sccache as `RUSTC_WRAPPER`.
    pub sccache: Setting<Sccache>,
    /// How CI jobs are split.
    pub matrix: Setting<Matrix>,
    /// How long a remote operation may take before the remote is skipped.
    pub remote_timeout: Setting<Duration>,
    /// Plain HTTP for a registry on this machine.
    pub insecure: Setting<bool>,
    /// Whose signatures shared cache records need, and the key this machine signs
    /// its uploads with.
    pub trust: Trust,
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
    /// Resolves `config` (of the workspace at `root`) under `env`. A value that is
    /// not one of a setting's choices is a usage error naming where it came from.
    pub fn resolve(config: &Config, root: &Path, env: &Env, flags: Flags) -> Result<Self> {
        let cache = config.cache.clone().unwrap_or_default();
        let ci = config.ci.clone().unwrap_or_default();
        let remote = match &env.remote_cache {
            Some(v) => Setting::new(
                (v != "off").then(|| v.clone()),
                Origin::Env("KILN_REMOTE_CACHE"),
            ),
            None => layered(None, cache.remote.map(Some), "cache.remote")?,
        };
        let cache_dir = match (&env.cache_dir, &config.cache_dir) {
            (Some(d), _) => Setting::new(Some(d.clone()), Origin::Env("KILN_CACHE_DIR")),
            (None, Some(d)) => Setting::new(
                Some(root.join(expand_home(d, env.home.as_deref()))),
                Origin::Config("cache-dir"),
            ),
            (None, None) => Setting::new(default_cache_dir(env), Origin::Default),
        };
        Ok(Self {
            backend: layered(None, config.backend, "backend")?,
            max_memory: layered(None, config.max_memory, "max-memory")?,
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

    /// `(key, value, origin)` for each setting, as `kiln config` shows them. The
    /// signing key shows only whether it is set.
    pub fn rows(&self) -> Vec<(&'static str, String, String)> {
        fn row<T>(k: &'static str, s: &Setting<T>, v: String) -> (&'static str, String, String) {
            (k, v, s.origin.to_string())
        }
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        vec![
            row("backend", &self.backend, self.backend.value.name().into()),
            row(
                "max-memory",
                &self.max_memory,
                self.max_memory.value.to_string(),
            ),
            row(
                "cache-dir",
                &self.cache_dir,
                opt(&self
                    .cache_dir
                    .value
                    .as_ref()
                    .map(|d| d.display().to_string())),
            ),
            row(
                "cache.remote",
                &self.remote,
                opt(&self.remote.value.as_deref().map(without_credentials)),
            ),
            row(
                "cache.upload",
                &self.upload,
                self.upload.value.name().into(),
            ),
            row(
                "cache.sccache",
                &self.sccache,
                self.sccache.value.name().into(),
            ),
            row(
                "cache.timeout",
                &self.remote_timeout,
                format!("{}s", self.remote_timeout.value.as_secs()),
            ),
            row(
                "cache.insecure",
                &self.insecure,
                self.insecure.value.to_string(),
            ),
            row("ci.matrix", &self.matrix, self.matrix.value.name().into()),
            row("locked", &self.locked, self.locked.value.to_string()),
            row("frozen", &self.frozen, self.frozen.value.to_string()),
            row("offline", &self.offline, self.offline.value.to_string()),
            row(
                "cache.trusted-keys",
                &self.trust.keys,
                if self.trust.enforced() {
                    let names: Vec<&str> = self
                        .trust
                        .keys
                        .value
                        .keys()
                        .iter()
                        .map(|k| k.name())
                        .collect();
                    names.join(", ")
                } else {
                    "none (remote records are used unsigned)".into()
                },
            ),
            (
                "cache.signing-key",
                match &self.trust.signer {
                    Some(k) => format!("{} (set)", k.name()),
                    None => "unset".into(),
                },
                if self.trust.signer.is_some() {
                    "KILN_CACHE_SIGNING_KEY"
                } else {
                    "default"
                }
                .into(),
            ),
        ]
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

/// A URL without `user:password@` and without a query, for display.
fn without_credentials(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = host.rsplit('@').next().unwrap_or_default();
            format!("{scheme}://{host}{path}")
        }
        None => url.to_string(),
    }
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
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_vars(pairs.iter().map(|(k, v)| (k.into(), v.into())))
    }

    /// `[workspace.metadata.kiln]` with `top` keys and `cache` keys.
    fn config(top: &str, cache: &str) -> Config {
        Config::parse(&format!(
            "[workspace.metadata.kiln]\n{top}\n[workspace.metadata.kiln.cache]\n{cache}"
        ))
        .unwrap()
    }

    #[test]
    fn env_wins_over_file_wins_over_default() {
        let c = config("", "upload = \"always\"\nsccache = \"off\"\n");
        let s = Settings::resolve(
            &c,
            Path::new("/ws"),
            &env(&[("KILN_CACHE_UPLOAD", "never")]),
            Flags::default(),
        )
        .unwrap();
        assert_eq!(s.upload.value, Upload::Never);
        assert_eq!(s.upload.origin, Origin::Env("KILN_CACHE_UPLOAD"));
        assert_eq!(s.sccache.value, Sccache::Off);
        assert_eq!(s.sccache.origin, Origin::Config("cache.sccache"));
        assert_eq!(s.matrix.value, Matrix::Binary);
        assert_eq!(s.matrix.origin, Origin::Default);
        let flagged = s.backend.or_flag(Some(BackendChoice::Zig), "--backend");
        assert_eq!(flagged.origin.to_string(), "--backend");
    }

    #[test]
    fn a_bad_env_value_is_a_usage_error_naming_the_variable() {
        let e = Settings::resolve(
            &Config::default(),
            Path::new("/"),
            &env(&[("KILN_SCCACHE", "yes")]),
            Flags::default(),
        )
        .unwrap_err();
        assert_eq!(e.kind().exit_code(), 2);
        assert!(e.to_string().contains("KILN_SCCACHE"), "{e}");
    }

    #[test]
    fn cache_dir_and_remote_precedence() {
        let c = config("cache-dir = \"~/kc\"", "remote = \"file:///r\"\n");
        let s = Settings::resolve(
            &c,
            Path::new("/ws"),
            &env(&[("HOME", "/home/u"), ("KILN_REMOTE_CACHE", "off")]),
            Flags::default(),
        )
        .unwrap();
        assert_eq!(s.cache_dir.value, Some(PathBuf::from("/home/u/kc")));
        assert_eq!(s.remote.value, None, "`off` disables the configured remote");
        let s = Settings::resolve(
            &Config::default(),
            Path::new("/ws"),
            &env(&[("XDG_CACHE_HOME", "/x")]),
            Flags::default(),
        )
        .unwrap();
        assert_eq!(s.cache_dir.value, Some(PathBuf::from("/x/kiln")));
        assert_eq!(s.remote.value, None);
    }

    #[test]
    fn shown_urls_carry_no_credentials() {
        assert_eq!(
            without_credentials("oci://u:p@reg.example/c?token=x"),
            "oci://reg.example/c"
        );
        assert_eq!(without_credentials("file:///dir"), "file:///dir");
    }

    #[test]
    fn cargo_flags_from_flag_env_or_file() {
        let c = Config::parse("[workspace.metadata.kiln]\nlocked = true\n").unwrap();
        let s = Settings::resolve(&c, Path::new("/"), &env(&[]), Flags::default()).unwrap();
        assert_eq!(s.cargo_flags(), ["--locked"]);
        let s = Settings::resolve(
            &c,
            Path::new("/"),
            &env(&[("KILN_LOCKED", "false"), ("KILN_OFFLINE", "1")]),
            Flags::default(),
        )
        .unwrap();
        assert_eq!(s.cargo_flags(), ["--offline"]);
        let flags = Flags {
            frozen: true,
            ..Flags::default()
        };
        let s = Settings::resolve(&c, Path::new("/"), &env(&[("KILN_LOCKED", "false")]), flags)
            .unwrap();
        assert_eq!(s.cargo_flags(), ["--frozen"]);
        assert!(Settings::resolve(
            &c,
            Path::new("/"),
            &env(&[("KILN_OFFLINE", "maybe")]),
            Flags::default()
        )
        .is_err());
    }

    #[test]
    fn uploads_in_ci_by_default_only() {
        let s = Settings::resolve(
            &Config::default(),
            Path::new("/"),
            &env(&[("CI", "true")]),
            Flags::default(),
        )
        .unwrap();
        assert!(s.uploads());
        let s = Settings::resolve(
            &Config::default(),
            Path::new("/"),
            &env(&[]),
            Flags::default(),
        )
        .unwrap();
        assert!(!s.uploads());
    }
}
