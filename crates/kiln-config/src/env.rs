//! The environment variables kiln reads, read in this one place.
//!
//! Every `KILN_*` variable (and the few others that change kiln's settings) is read
//! once into [`Env`]; [`crate::Settings`] merges it over the config file. Values are
//! never printed: errors name the variable, not what it holds.
//!
//! `KILN_OPENSSL_PREFIX` is not here: kiln sets it for a build script it runs.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// Bytes that must never be printed or stored (a signing key).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// The secret bytes, for the one place that uses them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The variables, by name; docs/configuration.md lists the same.
pub const VARIABLES: &[&str] = &[
    "KILN_CACHE_DIR",
    "KILN_REMOTE_CACHE",
    "KILN_CACHE_UPLOAD",
    "KILN_CACHE_TRUSTED_KEYS",
    "KILN_CACHE_SIGNING_KEY",
    "KILN_IMAGE_SIGNING_KEY",
    "KILN_SCCACHE",
    "KILN_SCCACHE_DIST_SCHEDULER",
    "KILN_SCCACHE_DIST_TOKEN",
    "KILN_INSECURE_REGISTRIES",
    "KILN_REGISTRY",
    "KILN_REGISTRY_BACKOFF_MS",
    "KILN_TOOLS_DIR",
    "KILN_LOCKED",
    "KILN_FROZEN",
    "KILN_OFFLINE",
    "KILN_HEARTBEAT_SECS",
    "KILN_SEALED_FD",
];

/// Who may see a credential besides kiln itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// kiln alone: no child process gets it.
    Kiln,
    /// kiln and the sccache server it runs, whose storage backend needs it (S3,
    /// the GitHub Actions cache); never cargo, rustc, build scripts or proc macros.
    SccacheServer,
}

/// The credentials kiln reads (or that must never reach code kiln compiles), by
/// name. [`seal_credentials`] takes them out of the process environment, so cargo,
/// rustc, build scripts, proc macros, zig and the OpenSSL build never see them; kiln
/// hands each to the one client that uses it.
pub const CREDENTIALS: &[(&str, Holder)] = &[
    ("KILN_CACHE_SIGNING_KEY", Holder::Kiln),
    ("KILN_IMAGE_SIGNING_KEY", Holder::Kiln),
    ("REGISTRY_USERNAME", Holder::Kiln),
    ("REGISTRY_PASSWORD", Holder::Kiln),
    ("GITHUB_TOKEN", Holder::Kiln),
    // Written into the private config file of kiln's sccache server, nowhere else.
    ("KILN_SCCACHE_DIST_TOKEN", Holder::Kiln),
    // GitHub's OIDC token endpoint: whoever holds these can mint attestations.
    ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", Holder::Kiln),
    ("ACTIONS_ID_TOKEN_REQUEST_URL", Holder::Kiln),
    ("AWS_ACCESS_KEY_ID", Holder::SccacheServer),
    ("AWS_SECRET_ACCESS_KEY", Holder::SccacheServer),
    ("AWS_SESSION_TOKEN", Holder::SccacheServer),
    ("ACTIONS_RUNTIME_TOKEN", Holder::SccacheServer),
];

/// Secrets of CI platforms and package registries that kiln itself doesn't use:
/// taken out of the environment like [`CREDENTIALS`], so no build script, proc macro
/// or compiler kiln starts can read them (cargo's own per-registry tokens,
/// `CARGO_REGISTRIES_<NAME>_TOKEN`, stay: cargo needs them to download).
pub const CHILD_SECRETS: &[&str] = &[
    "GH_TOKEN",
    "GITHUB_PAT",
    "CARGO_REGISTRY_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "CI_JOB_TOKEN",
    "CI_JOB_JWT",
    "CI_JOB_JWT_V2",
    "CI_REGISTRY_PASSWORD",
    "BUILDKITE_AGENT_ACCESS_TOKEN",
    "SYSTEM_ACCESSTOKEN",
    "CIRCLE_OIDC_TOKEN",
    "CIRCLE_OIDC_TOKEN_V2",
    "NPM_TOKEN",
    "NODE_AUTH_TOKEN",
    "TWINE_PASSWORD",
    "DOCKER_PASSWORD",
    "CODECOV_TOKEN",
];

/// Every variable no child of kiln's may inherit: [`CREDENTIALS`] and
/// [`CHILD_SECRETS`]. kiln runs itself again without them (see
/// `kiln_metrics::sealed`), so they aren't in its own `/proc/<pid>/environ` either.
pub fn sealed_names() -> impl Iterator<Item = &'static str> {
    CREDENTIALS
        .iter()
        .map(|(n, _)| *n)
        .chain(CHILD_SECRETS.iter().copied())
}

/// The variable through which kiln, running itself again, hands the sealed values
/// to itself: the number of an inherited pipe, never the values.
pub const SEALED_FD: &str = "KILN_SEALED_FD";

/// The pipe kiln handed its sealed values over in, when this process is kiln run
/// again by itself; the variable is removed. Call it first thing.
pub fn take_sealed_fd() -> Option<i32> {
    let fd = std::env::var(SEALED_FD).ok()?;
    std::env::remove_var(SEALED_FD);
    fd.parse().ok().filter(|fd| *fd > 2)
}

/// A snapshot of the environment that matters to kiln's settings.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// `KILN_CACHE_DIR`: the local cache directory.
    pub cache_dir: Option<PathBuf>,
    /// `KILN_REMOTE_CACHE`: the remote cache URL, `off` to disable.
    pub remote_cache: Option<String>,
    /// `KILN_CACHE_UPLOAD`: `always`, `ci`, `never`.
    pub cache_upload: Option<String>,
    /// `KILN_CACHE_TRUSTED_KEYS`: public keys (comma-separated) whose signatures
    /// make a shared cache record usable.
    pub trusted_keys: Option<String>,
    /// `KILN_CACHE_SIGNING_KEY`: the secret key (or the path of its file) signing
    /// what this machine uploads.
    pub signing_key: Option<Secret>,
    /// Every variable of [`CREDENTIALS`] that is set.
    pub credentials: Vec<(&'static str, Secret)>,
    /// `SCCACHE_BUCKET` is set: sccache stores in S3.
    pub sccache_s3: bool,
    /// `SCCACHE_GHA_ENABLED` is set: sccache stores in the GitHub Actions cache.
    pub sccache_gha: bool,
    /// `KILN_IMAGE_SIGNING_KEY`: a PKCS#8 PEM ECDSA P-256 key `kiln image --push`
    /// signs the pushed image with (cosign's layout), instead of `--sign-key FILE`.
    pub image_signing_key: Option<Secret>,
    /// `KILN_SCCACHE`: `auto`, `on`, `off`.
    pub sccache: Option<String>,
    /// `KILN_SCCACHE_DIST_SCHEDULER`: the sccache-dist scheduler URL, `off` to disable.
    pub dist_scheduler: Option<String>,
    /// `KILN_SCCACHE_DIST_TOKEN`: the scheduler's client token.
    pub dist_token: Option<Secret>,
    /// `KILN_INSECURE_REGISTRIES`: hosts allowed plain HTTP though not on this machine.
    pub insecure_registries: Vec<String>,
    /// `KILN_REGISTRY`: the host `REGISTRY_USERNAME`/`REGISTRY_PASSWORD` are meant for.
    pub registry: Option<String>,
    /// `KILN_REGISTRY_BACKOFF_MS`: the first retry delay of registry requests.
    pub registry_backoff: Option<Duration>,
    /// `KILN_TOOLS_DIR`: where `kiln setup` keeps the Python environment with zig.
    pub tools_dir: Option<PathBuf>,
    /// `KILN_LOCKED`, `KILN_FROZEN`, `KILN_OFFLINE`: `true`/`1` or `false`/`0`.
    pub locked: Option<String>,
    /// See `locked`.
    pub frozen: Option<String>,
    /// See `locked`.
    pub offline: Option<String>,
    /// `KILN_HEARTBEAT_SECS`: how often a build says it is alive when stderr is not a
    /// terminal (default 30).
    pub heartbeat: Option<Duration>,
    /// `XDG_DATA_HOME`.
    pub xdg_data_home: Option<PathBuf>,
    /// `GITHUB_ACTOR`.
    pub github_actor: Option<String>,
    /// `CI=true` or `CI=1`.
    pub in_ci: bool,
    /// `RUSTC_WRAPPER` is set: the user's wrapper wins over sccache.
    pub rustc_wrapper: bool,
    /// `XDG_CACHE_HOME`.
    pub xdg_cache_home: Option<PathBuf>,
    /// `HOME`.
    pub home: Option<PathBuf>,
}

impl Env {
    /// Reads the process environment.
    pub fn from_process() -> Self {
        Self::from_vars(std::env::vars_os())
    }

    /// Builds the snapshot from `(name, value)` pairs; empty values count as unset.
    pub fn from_vars(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Self {
        let mut env = Env::default();
        for (name, value) in vars {
            if value.is_empty() {
                continue;
            }
            let text = || value.to_str().map(|s| s.trim().to_string());
            let name = name.to_str().unwrap_or_default();
            if let Some((known, _)) = CREDENTIALS.iter().find(|(c, _)| *c == name) {
                env.credentials
                    .push((known, Secret(value.clone().into_encoded_bytes())));
            }
            match name {
                "KILN_CACHE_DIR" => env.cache_dir = Some(PathBuf::from(&value)),
                "KILN_REMOTE_CACHE" => env.remote_cache = text(),
                "KILN_CACHE_UPLOAD" => env.cache_upload = Some(text().unwrap_or_default()),
                "KILN_CACHE_TRUSTED_KEYS" => env.trusted_keys = Some(text().unwrap_or_default()),
                "KILN_CACHE_SIGNING_KEY" => {
                    env.signing_key = Some(Secret(value.clone().into_encoded_bytes()))
                }
                "KILN_IMAGE_SIGNING_KEY" => {
                    env.image_signing_key = Some(Secret(value.clone().into_encoded_bytes()))
                }
                "KILN_SCCACHE" => env.sccache = Some(text().unwrap_or_default()),
                "KILN_SCCACHE_DIST_SCHEDULER" => env.dist_scheduler = text(),
                "KILN_SCCACHE_DIST_TOKEN" => {
                    env.dist_token = Some(Secret(value.clone().into_encoded_bytes()))
                }
                "KILN_INSECURE_REGISTRIES" => {
                    env.insecure_registries = text()
                        .unwrap_or_default()
                        .split(',')
                        .map(|h| h.trim().to_string())
                        .filter(|h| !h.is_empty())
                        .collect()
                }
                "KILN_REGISTRY" => env.registry = text(),
                "KILN_REGISTRY_BACKOFF_MS" => {
                    env.registry_backoff = text()
                        .and_then(|t| t.parse().ok())
                        .map(Duration::from_millis)
                }
                "KILN_TOOLS_DIR" => env.tools_dir = Some(PathBuf::from(&value)),
                "KILN_LOCKED" => env.locked = Some(text().unwrap_or_default()),
                "KILN_FROZEN" => env.frozen = Some(text().unwrap_or_default()),
                "KILN_OFFLINE" => env.offline = Some(text().unwrap_or_default()),
                "KILN_HEARTBEAT_SECS" => {
                    env.heartbeat = text()
                        .and_then(|t| t.parse::<u64>().ok())
                        .filter(|s| *s > 0)
                        .map(Duration::from_secs)
                }
                "SCCACHE_BUCKET" => env.sccache_s3 = true,
                "SCCACHE_GHA_ENABLED" => env.sccache_gha = value != "false" && value != "0",
                "XDG_DATA_HOME" => env.xdg_data_home = Some(PathBuf::from(&value)),
                "GITHUB_ACTOR" => env.github_actor = text(),
                "CI" => env.in_ci = matches!(value.to_str(), Some("true" | "1")),
                "RUSTC_WRAPPER" => env.rustc_wrapper = true,
                "XDG_CACHE_HOME" => env.xdg_cache_home = Some(PathBuf::from(&value)),
                "HOME" => env.home = Some(PathBuf::from(&value)),
                _ => {}
            }
        }
        env
    }
}

/// What the clients kiln runs may use: the credentials taken out of the environment
/// (registry, S3, the sccache server's storage) and the registry settings. Resolved
/// once into [`crate::Settings`]; no client reads the environment itself.
#[derive(Debug, Clone, Default)]
pub struct Access {
    credentials: Vec<(&'static str, Secret)>,
    /// `KILN_REGISTRY`: the host `REGISTRY_USERNAME`/`REGISTRY_PASSWORD` are meant for.
    pub registry: Option<String>,
    /// `KILN_INSECURE_REGISTRIES`: hosts allowed plain HTTP though not on this machine.
    pub insecure_registries: Vec<String>,
    /// `KILN_REGISTRY_BACKOFF_MS`: the first retry delay of registry requests.
    pub registry_backoff: Option<Duration>,
    /// `GITHUB_ACTOR`: the user `GITHUB_TOKEN` is sent as.
    pub github_actor: Option<String>,
    sccache_s3: bool,
    sccache_gha: bool,
}

impl Access {
    /// The credential `name` (one of [`CREDENTIALS`]) as text, when set.
    pub fn credential(&self, name: &str) -> Option<&str> {
        self.credentials
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, s)| std::str::from_utf8(s.expose()).ok())
    }

    /// The credentials kiln's sccache server gets, for its storage backend: the
    /// S3 ones when sccache stores in S3 (`SCCACHE_BUCKET`), the Actions cache token
    /// when it stores there (`SCCACHE_GHA_ENABLED`).
    pub fn sccache_server_credentials(&self) -> Vec<(&'static str, String)> {
        CREDENTIALS
            .iter()
            .filter(|(_, h)| *h == Holder::SccacheServer)
            .filter(|(n, _)| {
                if n.starts_with("AWS_") {
                    self.sccache_s3
                } else {
                    self.sccache_gha
                }
            })
            .filter_map(|(n, _)| Some((*n, self.credential(n)?.to_string())))
            .collect()
    }
}

impl Env {
    /// The credentials and registry settings, for the clients.
    pub fn access(&self) -> Access {
        Access {
            credentials: self.credentials.clone(),
            registry: self.registry.clone(),
            insecure_registries: self.insecure_registries.clone(),
            registry_backoff: self.registry_backoff,
            github_actor: self.github_actor.clone(),
            sccache_s3: self.sccache_s3,
            sccache_gha: self.sccache_gha,
        }
    }
}

impl Env {
    /// Where `kiln setup` installs tools it owns (a Python virtual environment with
    /// zig and cargo-zigbuild): `KILN_TOOLS_DIR`, else the platform's data directory.
    pub fn tools_dir(&self) -> Option<PathBuf> {
        if let Some(d) = &self.tools_dir {
            return Some(d.clone());
        }
        if let Some(d) = &self.xdg_data_home {
            return Some(d.join("kiln/tools"));
        }
        let home = self.home.as_ref()?;
        Some(if cfg!(target_os = "macos") {
            home.join("Library/Application Support/kiln/tools")
        } else {
            home.join(".local/share/kiln/tools")
        })
    }
}

/// The process's snapshot, read on first use.
pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(Env::from_process)
}

/// Takes the [`CREDENTIALS`] out of this process's environment, after reading them
/// into [`env`]: every child kiln starts from then on runs without them. Call it
/// once, first thing, before any thread starts.
pub fn seal_credentials() {
    let _ = env();
    for name in sealed_names() {
        if std::env::var_os(name).is_some() {
            std::env::remove_var(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Env {
        Env::from_vars(pairs.iter().map(|(k, v)| (k.into(), v.into())))
    }

    #[test]
    fn empty_values_are_unset_and_secrets_are_redacted() {
        let e = vars(&[
            ("KILN_CACHE_DIR", ""),
            ("KILN_CACHE_SIGNING_KEY", "hunter2"),
            ("KILN_INSECURE_REGISTRIES", " a:5000, ,b "),
            ("CI", "true"),
        ]);
        assert_eq!(e.cache_dir, None);
        assert_eq!(e.insecure_registries, ["a:5000", "b"]);
        assert!(e.in_ci);
        assert!(!format!("{e:?}").contains("hunter2"));
        assert_eq!(
            e.access().credential("KILN_CACHE_SIGNING_KEY"),
            Some("hunter2")
        );
        assert_eq!(e.signing_key.unwrap().expose(), b"hunter2");
    }
}
