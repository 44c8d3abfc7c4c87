//! The distribution API calls kiln needs, over ureq (blocking, rustls): blob HEAD and
//! upload (POST then one PUT), manifest PUT/GET, and token auth. Transport errors,
//! timeouts and 5xx answers are retried with backoff; 4xx answers are not.

use crate::auth::{self, parse_challenge, Challenge, Credentials, Purpose, Source};
use crate::Reference;
use kiln_config::Access;
use kiln_diagnostics::{Error, Result};
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

/// How many times a request is tried before giving up.
const ATTEMPTS: u32 = 4;

/// A request body that can be produced again for a retry.
pub(crate) enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    File(&'a std::path::Path, u64),
}

/// A finished exchange: status, selected headers, body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
}

/// A client for one registry and repository.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    registry: String,
    repository: String,
    credentials: Option<(Credentials, Source)>,
    authorization: Mutex<Option<String>>,
    /// Backoff before the first retry; doubled after each.
    backoff: Duration,
    /// Tries per request.
    attempts: u32,
    /// Every request's overall deadline, and a download's before its per-MiB
    /// allowance: ureq's read timeout alone doesn't hold on a reused connection.
    deadline: Duration,
}

impl Client {
    /// A client for `reference`'s repository. A registry on this machine is spoken to
    /// in plain HTTP (as ko and crane do: a local registry rarely has a certificate);
    /// any other only when `insecure` is set and it is listed in
    /// `KILN_INSECURE_REGISTRIES` (comma-separated hosts).
    pub fn new(reference: &Reference, insecure: bool, access: &Access) -> Result<Self> {
        Self::with_purpose(reference, insecure, Purpose::Destination, access)
    }

    /// A client that only reads `reference` (a base image): environment credentials
    /// meant for the destination are not given to it.
    pub fn for_pull(reference: &Reference, insecure: bool, access: &Access) -> Result<Self> {
        Self::with_purpose(reference, insecure, Purpose::Source, access)
    }

    fn with_purpose(
        reference: &Reference,
        insecure: bool,
        purpose: Purpose,
        access: &Access,
    ) -> Result<Self> {
        let listed = access.insecure_registries.contains(&reference.registry);
        if insecure && !(reference.is_loopback() || listed) {
            return Err(Error::usage(format!("`--insecure` is refused for `{}`: plain HTTP is only used for registries on this machine", reference.registry))
                .hint(format!("set KILN_INSECURE_REGISTRIES={} to allow it for this host explicitly", reference.registry)));
        }
        let scheme = if insecure || reference.is_loopback() {
            "http"
        } else {
            "https"
        };
        Ok(Client {
            agent: agent(Duration::from_secs(10), Duration::from_secs(120)),
            attempts: ATTEMPTS,
            deadline: Duration::from_secs(120),
            base: format!("{scheme}://{}", reference.registry),
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            credentials: auth::lookup(&reference.registry, purpose, access),
            authorization: Mutex::new(None),
            backoff: access
                .registry_backoff
                .unwrap_or(Duration::from_millis(500)),
        })
    }

    /// Bounds every connect and read to `timeout` and tries each request `attempts`
    /// times: for callers (the remote cache) that must give up quickly.
    pub fn bounded(mut self, timeout: Duration, attempts: u32) -> Self {
        self.agent = agent(timeout, timeout);
        self.deadline = timeout;
        self.attempts = attempts.max(1);
        self
    }

    /// The registry host.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// `/v2/<repository>/<rest>` as a full URL.
    pub(crate) fn url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.base, self.repository)
    }

    /// An absolute URL for a `Location` header, which may be relative. A registry
    /// may send an upload elsewhere (storage of its own), but never from HTTPS to
    /// plain HTTP, and never to plain HTTP off this machine.
    pub(crate) fn absolute(&self, location: &str) -> Result<String> {
        if !(location.starts_with("http://") || location.starts_with("https://")) {
            return Ok(format!("{}{location}", self.base));
        }
        let plain = location.starts_with("http://");
        let authority = authority(location);
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        if plain && (self.base.starts_with("https://") || !crate::is_loopback_host(host)) {
            return Err(Error::remote(format!(
                "registry `{}` sent an upload to `{}` over plain HTTP; refused",
                self.registry,
                kiln_diagnostics::printable(redact(location), 200)
            ))
            .hint("a registry off this machine must keep uploads on HTTPS"));
        }
        Ok(location.to_string())
    }

    /// Whether `url` is on the registry's own origin (scheme, host and port): the
    /// only place its credentials go.
    fn same_origin(&self, url: &str) -> bool {
        origin(url) == origin(&self.base)
    }

    /// Sends a request, authenticating on a 401 and retrying transient failures.
    /// Returns the answer for any HTTP status; errors only when the registry can't be
    /// reached or keeps failing, or refuses the credentials.
    pub(crate) fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &Body,
    ) -> Result<Answer> {
        self.send_to(method, url, headers, body, None)
    }

    /// [`send`](Self::send) with one try (authentication aside): for requests that
    /// must not be repeated as they are (a PUT to an upload session).
    pub(crate) fn send_once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &Body,
    ) -> Result<Answer> {
        self.send_tries(method, url, headers, body, None, 1)
    }

    /// How many times a request is tried.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// [`send`](Self::send), streaming a 200 answer's body of at most the given size
    /// into the file `sink` (written under a temporary name, renamed when complete)
    /// instead of memory.
    pub(crate) fn send_to(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &Body,
        sink: Option<(&std::path::Path, u64)>,
    ) -> Result<Answer> {
        self.send_tries(method, url, headers, body, sink, self.attempts)
    }

    fn send_tries(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &Body,
        sink: Option<(&std::path::Path, u64)>,
        attempts: u32,
    ) -> Result<Answer> {
        let mut authenticated = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            // An overall deadline on every request, so a registry that stalls or
            // trickles bytes can't hold a build for ever: the client's deadline, plus
            // a second per MiB of a body sent or received.
            let mib = match (sink, body) {
                (Some((_, size)), _) => size >> 20,
                (None, Body::File(_, size)) => size >> 20,
                (None, Body::Bytes(b)) => (b.len() >> 20) as u64,
                (None, Body::Empty) => 0,
            };
            let mut req = self
                .agent
                .request(method, url)
                .timeout(self.deadline + Duration::from_secs(mib));
            for (k, v) in headers {
                req = req.set(k, v);
            }
            // Credentials only to the origin they were given for: a `Location`
            // elsewhere gets the request without them.
            if self.same_origin(url) {
                if let Some(a) = self.authorization.lock().expect("auth lock").as_ref() {
                    req = req.set("Authorization", a);
                }
            }
            let sent = match body {
                Body::Empty => req.call(),
                Body::Bytes(b) => req.send_bytes(b),
                Body::File(p, len) => match std::fs::File::open(p) {
                    Ok(f) => req.set("Content-Length", &len.to_string()).send(f),
                    Err(e) => {
                        return Err(Error::io("read", p, e));
                    }
                },
            };
            let response = match sent {
                Ok(r) => r,
                Err(ureq::Error::Status(_, r)) => r,
                Err(ureq::Error::Transport(t)) => {
                    // A failed TLS handshake fails the same way every time.
                    if self.base.starts_with("https://") && is_tls_failure(&t.to_string()) {
                        return Err(Error::remote(format!(
                            "TLS with registry `{}` failed ({method} {}): {t}",
                            self.registry,
                            redact(url)
                        ))
                        .hint(format!(
                            "if `{}` serves plain HTTP, allow it with KILN_INSECURE_REGISTRIES={} and pass `--insecure`",
                            self.registry, self.registry
                        )));
                    }
                    if attempt < attempts {
                        self.wait(attempt);
                        continue;
                    }
                    return Err(Error::remote(format!(
                        "cannot reach registry `{}` ({method} {}): {t}",
                        self.registry,
                        redact(url)
                    ))
                    .hint(format!("check that the registry is running and the address is right; kiln tried {} times", attempts)));
                }
            };
            let status = response.status();
            if status == 401 && !authenticated {
                authenticated = true;
                let challenge = response.header("WWW-Authenticate").map(String::from);
                drop(response.into_string());
                self.authenticate(challenge.as_deref())?;
                attempt -= 1;
                continue;
            }
            if status == 401 || status == 403 {
                return Err(self.refused(status));
            }
            if (status >= 500 || status == 429) && attempt < attempts {
                drop(response.into_string());
                self.wait(attempt);
                continue;
            }
            let location = response.header("Location").map(String::from);
            let content_type = response.header("Content-Type").map(String::from);
            if let (200, Some((dest, size))) = (status, sink) {
                let tmp = kiln_fs::temp_path(dest);
                let copied = std::fs::File::create(&tmp).and_then(|mut f| {
                    let n = std::io::copy(&mut response.into_reader().take(size + 1), &mut f)?;
                    if n > size {
                        return Err(std::io::Error::other(format!(
                            "the blob is larger than the {size} bytes it was announced with"
                        )));
                    }
                    f.sync_all()
                });
                match copied.and_then(|_| std::fs::rename(&tmp, dest)) {
                    Ok(()) => {}
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        if attempt < attempts {
                            self.wait(attempt);
                            continue;
                        }
                        return Err(Error::remote(format!(
                            "downloading from `{}` failed",
                            self.registry
                        ))
                        .with_source(e));
                    }
                }
                return Ok(Answer {
                    status,
                    location,
                    content_type,
                    body: Vec::new(),
                });
            }
            // Manifests, configs and small blobs only (layers stream to disk): a
            // registry that answers with more is refused, not held in memory.
            let mut buf = Vec::new();
            response
                .into_reader()
                .take(MAX_IN_MEMORY + 1)
                .read_to_end(&mut buf)
                .map_err(|e| {
                    Error::remote(format!("reading the answer of `{}` failed", self.registry))
                        .with_source(e)
                })?;
            if buf.len() as u64 > MAX_IN_MEMORY {
                return Err(Error::remote(format!(
                    "`{}` answered {method} {} with more than {} MiB; refused",
                    self.registry,
                    redact(url),
                    MAX_IN_MEMORY >> 20
                )));
            }
            return Ok(Answer {
                status,
                location,
                content_type,
                body: buf,
            });
        }
    }

    pub(crate) fn wait(&self, attempt: u32) {
        std::thread::sleep(self.backoff * 2u32.pow(attempt - 1));
    }

    fn refused(&self, status: u16) -> Error {
        let (msg, hint) = match &self.credentials {
            Some((c, source)) => (
                format!(
                    "registry `{}` refused the credentials of `{}` from {} (HTTP {status})",
                    self.registry,
                    c.username,
                    Credentials::describe(source)
                ),
                "check the username and password or token, and that it may push to this repository",
            ),
            None => (
                format!("registry `{}` requires credentials (HTTP {status})", self.registry),
                "set REGISTRY_USERNAME and REGISTRY_PASSWORD, run `docker login`, or set GITHUB_TOKEN for ghcr.io",
            ),
        };
        Error::remote(msg).hint(hint)
    }

    /// Answers a 401 challenge: Basic with the credentials, or a Bearer token from the realm.
    fn authenticate(&self, challenge: Option<&str>) -> Result<()> {
        match challenge.and_then(parse_challenge) {
            Some(Challenge::Basic) => {
                let (c, _) = self.credentials.as_ref().ok_or_else(|| self.refused(401))?;
                *self.authorization.lock().expect("auth lock") = Some(c.basic());
                Ok(())
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let scope =
                    scope.unwrap_or_else(|| format!("repository:{}:pull,push", self.repository));
                let mut req = self.agent.get(&realm).query("scope", &scope);
                if let Some(s) = &service {
                    req = req.query("service", s);
                }
                // Credentials go to the realm only when it belongs to the registry.
                if let Some((c, _)) = &self.credentials {
                    if auth::realm_may_receive_credentials(&realm, &self.registry) {
                        req = req.set("Authorization", &c.basic());
                    }
                }
                let answer = match req.call() {
                    Ok(r) => r,
                    Err(ureq::Error::Status(401 | 403, _)) => return Err(self.refused(401)),
                    Err(e) => {
                        return Err(Error::remote(format!(
                            "cannot get a token from `{}` for `{}`",
                            redact(&realm),
                            self.registry
                        ))
                        .with_source(e))
                    }
                };
                let v: serde_json::Value =
                    serde_json::from_reader(answer.into_reader().take(1 << 20)).map_err(|e| {
                        Error::remote(format!("`{}` sent an unreadable token", redact(&realm)))
                            .with_source(e)
                    })?;
                let token = v["token"]
                    .as_str()
                    .or_else(|| v["access_token"].as_str())
                    .ok_or_else(|| Error::remote(format!("`{}` sent no token", redact(&realm))))?;
                *self.authorization.lock().expect("auth lock") = Some(format!("Bearer {token}"));
                Ok(())
            }
            None => Err(self.refused(401)),
        }
    }

    /// An error for an unexpected answer.
    pub(crate) fn unexpected(&self, what: &str, a: &Answer) -> Error {
        let body = String::from_utf8_lossy(&a.body);
        let detail = kiln_diagnostics::printable(body.trim(), 300);
        Error::remote(format!(
            "registry `{}` answered {} to {what}: {}",
            self.registry,
            a.status,
            detail.trim()
        ))
    }
}

/// The largest answer kept in memory (a manifest, a config, a cache entry): the
/// same bound as a blob small enough to fetch into memory.
pub(crate) const MAX_IN_MEMORY: u64 = 16 << 20;

fn agent(connect: Duration, read: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(connect)
        .timeout_read(read)
        .timeout_write(Duration::from_secs(120))
        .redirects(5)
        .build()
}

/// `host:port` of a URL (`https://host:port/path` -> `host:port`).
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// `scheme://host:port`, lowercase, with the scheme's default port left out.
fn origin(url: &str) -> String {
    let scheme = url
        .split_once("://")
        .map_or("", |(s, _)| s)
        .to_ascii_lowercase();
    let host = authority(url).to_ascii_lowercase();
    let host = match scheme.as_str() {
        "https" => host.strip_suffix(":443").unwrap_or(&host).to_string(),
        "http" => host.strip_suffix(":80").unwrap_or(&host).to_string(),
        _ => host,
    };
    format!("{scheme}://{host}")
}

/// A URL without its query (upload URLs carry state tokens).
fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// Whether a transport error is a TLS failure (a plain-HTTP server, a bad
/// certificate) rather than a network one worth retrying.
fn is_tls_failure(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "tls",
        "certificate",
        "handshake",
        "corrupt message",
        "invalidcontenttype",
        "wrong version number",
    ]
    .iter()
    .any(|k| m.contains(k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};

    /// A registry whose every answer is a 200 with a body one byte over the bound.
    fn oversized_registry() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let mut conn = conn;
                let len = MAX_IN_MEMORY + 1;
                let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
                let chunk = vec![b'{'; 1 << 20];
                let mut left = len as usize;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if conn.write_all(&chunk[..n]).is_err() {
                        break;
                    }
                    left -= n;
                }
            }
        });
        port
    }

    #[test]
    fn an_answer_over_the_in_memory_bound_is_refused() {
        let port = oversized_registry();
        let reference = Reference::parse(&format!("127.0.0.1:{port}/repo:tag")).unwrap();
        let client = Client::new(&reference, true, &Access::default())
            .unwrap()
            .bounded(Duration::from_secs(10), 1);
        let e = client.manifest_bytes("tag").unwrap_err();
        assert!(e.to_string().contains("more than 16 MiB"), "{e}");
    }

    /// A one-answer-per-connection HTTP server on `ip`: `answer` gets the request
    /// head and returns the reply; every head is kept.
    fn server(
        ip: &str,
        answer: impl Fn(&str) -> String + Send + 'static,
    ) -> (u16, std::sync::Arc<Mutex<Vec<String>>>) {
        let listener = std::net::TcpListener::bind((ip, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let heads = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let (mut head, mut line, mut length) = (String::new(), String::new(), 0usize);
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                    line.clear();
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let reply = answer(&head);
                heads.lock().unwrap().push(head);
                let mut conn = conn;
                let _ = conn.write_all(reply.as_bytes());
            }
        });
        (port, seen)
    }

    /// The upload chain of issue 38: a registry answers the upload's start with a
    /// `Location` on another host; the PUT there must carry no credentials. And a
    /// `Location` in plain HTTP off this machine is refused.
    #[test]
    fn credentials_never_follow_a_location_to_another_origin() {
        let (elsewhere, heads) = server("127.0.0.2", |_| {
            "HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
        });
        let (port, _) = server("127.0.0.1", move |head| {
            if !head.to_ascii_lowercase().contains("authorization: basic") {
                return "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"r\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into();
            }
            format!("HTTP/1.1 202 Accepted\r\nLocation: http://127.0.0.2:{elsewhere}/upload/1?state=x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        });
        let access = kiln_config::Env::from_vars(
            [
                ("REGISTRY_USERNAME", "user"),
                ("REGISTRY_PASSWORD", "kiln-test-secret"),
            ]
            .map(|(k, v)| (k.into(), v.into())),
        )
        .access();
        let reference = Reference::parse(&format!("127.0.0.1:{port}/repo:tag")).unwrap();
        let client = Client::new(&reference, false, &access)
            .unwrap()
            .bounded(Duration::from_secs(5), 1);
        let d = crate::Descriptor::of("application/octet-stream", b"blob");
        client.upload_blob_bytes(b"blob", &d).unwrap();
        let heads = heads.lock().unwrap();
        assert_eq!(heads.len(), 1, "the PUT went to the other host");
        assert!(
            !heads[0].to_ascii_lowercase().contains("authorization"),
            "credentials sent to another origin:\n{}",
            heads[0]
        );
        // Plain HTTP off this machine: refused before anything is sent there.
        let client = Client::new(&reference, false, &access).unwrap();
        let e = client
            .absolute("http://storage.example/upload")
            .unwrap_err();
        assert!(e.to_string().contains("plain HTTP"), "{e}");
        assert!(client.absolute("/v2/repo/blobs/uploads/1").is_ok());
    }

    #[test]
    fn a_loopback_registry_is_plain_http_without_asking() {
        let reference = Reference::parse("127.0.0.1:5000/repo:tag").unwrap();
        let client = Client::new(&reference, false, &Access::default()).unwrap();
        assert!(client
            .url("tags/list")
            .starts_with("http://127.0.0.1:5000/"));
        let remote = Reference::parse("ghcr.io/o/r:tag").unwrap();
        let client = Client::new(&remote, false, &Access::default()).unwrap();
        assert!(client.url("tags/list").starts_with("https://ghcr.io/"));
    }

    #[test]
    fn tls_to_a_plain_http_server_fails_once_and_names_the_way_out() {
        // A plain HTTP server, counting connections; spoken to in TLS.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = connections.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut conn = conn;
                let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            }
        });
        let reference = Reference::parse(&format!("127.0.0.1:{port}/repo:tag")).unwrap();
        let mut client = Client::new(&reference, false, &Access::default()).unwrap();
        client.base = format!("https://127.0.0.1:{port}");
        let e = client.manifest_bytes("tag").unwrap_err();
        let text = format!("{e} {}", e.hints().join(" "));
        assert!(text.contains("TLS with registry"), "{text}");
        assert!(text.contains("KILN_INSECURE_REGISTRIES"), "{text}");
        assert_eq!(
            connections.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "not retried"
        );
    }
}
