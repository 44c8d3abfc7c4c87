//! Registry credentials, looked up the way users already store them. They are held in
//! memory only for the requests that need them: never printed, logged or written.

use base64::Engine;
use kiln_config::Access;
use std::path::PathBuf;

/// A username and password (or token). `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The username.
    pub username: String,
    secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

impl Credentials {
    /// Credentials from a username and a password or token.
    pub fn new(username: impl Into<String>, secret: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            secret: secret.into(),
        }
    }

    /// The `Authorization: Basic ..` value.
    pub(crate) fn basic(&self) -> String {
        let raw = format!("{}:{}", self.username, self.secret);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// Where these came from, for messages (never the values).
    pub fn describe(source: &Source) -> &'static str {
        match source {
            Source::Env => "REGISTRY_USERNAME/REGISTRY_PASSWORD",
            Source::GithubToken => "GITHUB_TOKEN",
            Source::DockerConfig => "~/.docker/config.json",
            Source::Helper => "a docker credential helper",
        }
    }
}

/// Where credentials were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `REGISTRY_USERNAME` + `REGISTRY_PASSWORD`.
    Env,
    /// `GITHUB_TOKEN`, for ghcr.io.
    GithubToken,
    /// An `auths` entry of the docker config.
    DockerConfig,
    /// `credHelpers` / `credsStore`.
    Helper,
}

/// What a client does with a registry, which decides whose credentials it may get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// kiln writes there (an image push, the remote cache): the registry the user
    /// pointed kiln at.
    Destination,
    /// kiln only reads from there (a base image).
    Source,
}

/// Credentials for `registry`: `REGISTRY_USERNAME`/`REGISTRY_PASSWORD` when they are
/// meant for it (the host in `KILN_REGISTRY`, or when that is unset, the destination
/// kiln was pointed at, never a base image's registry), then `GITHUB_TOKEN` for
/// ghcr.io, then the docker config (`$DOCKER_CONFIG/config.json` or
/// `~/.docker/config.json`), whose entries are per host, credential helpers included.
pub fn lookup(registry: &str, purpose: Purpose, env: &Access) -> Option<(Credentials, Source)> {
    // From the settings' access: these variables are no longer in the environment
    // any child inherits.
    let env_applies = match &env.registry {
        Some(h) => h == registry,
        None => purpose == Purpose::Destination,
    };
    if let (true, Some(u), Some(p)) = (
        env_applies,
        env.credential("REGISTRY_USERNAME"),
        env.credential("REGISTRY_PASSWORD"),
    ) {
        return Some((Credentials::new(u, p), Source::Env));
    }
    if registry == "ghcr.io" {
        if let Some(t) = env.credential("GITHUB_TOKEN") {
            let user = env.github_actor.clone().unwrap_or_else(|| "kiln".into());
            return Some((Credentials::new(user, t), Source::GithubToken));
        }
    }
    docker_config(registry)
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

fn docker_config(registry: &str) -> Option<(Credentials, Source)> {
    let text = std::fs::read_to_string(docker_config_path()?).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    // Docker Hub is stored under its legacy index URL.
    let keys: Vec<String> = if registry == "registry-1.docker.io" {
        vec![
            "https://index.docker.io/v1/".into(),
            "docker.io".into(),
            "index.docker.io".into(),
        ]
    } else {
        vec![
            registry.to_string(),
            format!("https://{registry}"),
            format!("http://{registry}"),
        ]
    };
    let helper = keys
        .iter()
        .find_map(|k| config["credHelpers"][k].as_str())
        .or_else(|| config["credsStore"].as_str());
    if let Some(helper) = helper {
        if let Some(c) = from_helper(helper, &keys[0]) {
            return Some((c, Source::Helper));
        }
    }
    let entry = keys.iter().find_map(|k| config["auths"].get(k))?;
    if let (Some(u), Some(p)) = (entry["username"].as_str(), entry["password"].as_str()) {
        return Some((Credentials::new(u, p), Source::DockerConfig));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry["auth"].as_str()?)
        .ok()?;
    let (u, p) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((Credentials::new(u, p), Source::DockerConfig))
}

/// How long a credential helper may take before kiln gives up on it (a helper that
/// waits for a desktop prompt would otherwise hang the build).
const HELPER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Runs `docker-credential-<helper> get` with the server URL on stdin, for at most
/// [`HELPER_TIMEOUT`].
fn from_helper(helper: &str, server: &str) -> Option<Credentials> {
    run_helper(
        std::path::Path::new(&format!("docker-credential-{helper}")),
        server,
        HELPER_TIMEOUT,
    )
}

fn run_helper(
    program: &std::path::Path,
    server: &str,
    timeout: std::time::Duration,
) -> Option<Credentials> {
    use std::io::{Read, Write};
    let mut child = std::process::Command::new(program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(server.as_bytes()));
    let mut stdout = child.stdout.take()?;
    // Read beside the wait, so a chatty helper can't block on a full pipe.
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.by_ref().take(1 << 20).read_to_end(&mut out);
        out
    });
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    let out = reader.join().ok()?;
    if !status.success() || !matches!(written, Some(Ok(()))) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out).ok()?;
    Some(Credentials::new(
        v["Username"].as_str()?,
        v["Secret"].as_str()?,
    ))
}

/// Whether Basic credentials for `registry` may go to the token `realm`: only over
/// HTTPS to the registry's own host or a host of the registry's parent domain
/// (`auth.docker.io` for `registry-1.docker.io`), or over plain HTTP to the same
/// loopback host the registry is on.
pub(crate) fn realm_may_receive_credentials(realm: &str, registry: &str) -> bool {
    let host_of = |hostport: &str| -> String {
        let h = hostport.rsplit_once(':').map_or(hostport, |(h, p)| {
            if p.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                hostport
            }
        });
        h.to_ascii_lowercase()
    };
    let registry_host = host_of(registry);
    let (scheme, rest) = match realm.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => return false,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return false;
    }
    let realm_host = host_of(authority);
    match scheme.as_str() {
        "https" => {
            realm_host == registry_host
                || registry_host
                    .split_once('.')
                    .filter(|(_, parent)| parent.contains('.'))
                    .is_some_and(|(_, parent)| realm_host.ends_with(&format!(".{parent}")))
        }
        "http" => realm_host == registry_host && crate::is_loopback_host(&registry_host),
        _ => false,
    }
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Bearer realm="..",service="..",scope=".."` or `Basic realm=".."`.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    let mut scope = None;
    // Values are quoted and may contain commas (scopes do).
    let mut rest = params;
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim();
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        match key {
            "realm" => realm = Some(value.to_string()),
            "service" => service = Some(value.to_string()),
            "scope" => scope = Some(value.to_string()),
            _ => {}
        }
        rest = next;
    }
    Some(Challenge::Bearer {
        realm: realm?,
        service,
        scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge("Basic realm=\"Registry\""),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge("Bearer realm=\"https://ghcr.io/token\",service=\"ghcr.io\",scope=\"repository:a/b:pull,push\""),
            Some(Challenge::Bearer {
                realm: "https://ghcr.io/token".into(),
                service: Some("ghcr.io".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn credentials_go_only_to_realms_of_the_registry() {
        let ok = [
            ("https://ghcr.io/token", "ghcr.io"),
            ("https://auth.docker.io/token", "registry-1.docker.io"),
            ("http://127.0.0.1:5000/token", "127.0.0.1:5000"),
            (
                "https://registry.example.com:8443/auth",
                "registry.example.com:8443",
            ),
        ];
        for (realm, registry) in ok {
            assert!(realm_may_receive_credentials(realm, registry), "{realm}");
        }
        let refused = [
            ("http://127.0.0.2:5000/token", "127.0.0.1:5000"),
            ("http://ghcr.io/token", "ghcr.io"),
            ("https://evil.example/token", "ghcr.io"),
            ("https://ghcr.io.evil.example/token", "ghcr.io"),
            ("https://x.io/token", "ghcr.io"),
            ("https://user@ghcr.io/token", "ghcr.io"),
            ("ftp://ghcr.io/token", "ghcr.io"),
        ];
        for (realm, registry) in refused {
            assert!(!realm_may_receive_credentials(realm, registry), "{realm}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_hanging_credential_helper_is_given_up_on() {
        use std::os::unix::fs::PermissionsExt;
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        };
        let hang = script("docker-credential-hang", "exec sleep 600");
        let started = Instant::now();
        assert!(run_helper(&hang, "registry.example", Duration::from_secs(1)).is_none());
        assert!(started.elapsed() < Duration::from_secs(5));
        let ok = script(
            "docker-credential-ok",
            "cat >/dev/null; echo '{\"Username\":\"u\",\"Secret\":\"s\"}'",
        );
        let c = run_helper(&ok, "registry.example", Duration::from_secs(10)).unwrap();
        assert_eq!(c.username, "u");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = Credentials::new("me", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
