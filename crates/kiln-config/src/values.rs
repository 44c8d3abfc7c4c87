//! Typed values of settings that arrive as text (a URL, a size, an image output),
//! parsed once where they are read, so a typo is a usage error in every command.

use kiln_diagnostics::{Error, Result};
use serde::Deserialize;
use std::path::PathBuf;

/// Where the remote cache is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteUrl {
    /// `oci://registry/repository`, or `oci+http://` for plain HTTP on this machine.
    Oci {
        /// `registry/repository`.
        location: String,
        /// `oci+http://`.
        plain_http: bool,
    },
    /// `s3://bucket/prefix`.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix (no leading or trailing `/`).
        prefix: String,
    },
    /// `file:///dir` or an absolute path: a shared directory.
    Dir(PathBuf),
}

impl RemoteUrl {
    /// Parses a remote cache URL; `origin` names where it came from in the error.
    pub fn parse(url: &str, origin: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::usage(format!(
                "invalid remote cache `{}` ({origin}): {why}",
                kiln_diagnostics::printable(url, 120)
            ))
            .hint("write `oci://ghcr.io/org/kiln-cache`, `s3://bucket/prefix`, `file:///mnt/shared/kiln`, or `off`")
        };
        let oci = |rest: &str, plain_http: bool| {
            let (host, repo) = rest.split_once('/').ok_or_else(|| bad("no repository"))?;
            if host.is_empty() || repo.is_empty() || rest.contains(char::is_whitespace) {
                return Err(bad("no registry or repository"));
            }
            Ok(RemoteUrl::Oci {
                location: rest.trim_end_matches('/').to_string(),
                plain_http,
            })
        };
        if let Some(rest) = url.strip_prefix("oci+http://") {
            return oci(rest, true);
        }
        if let Some(rest) = url.strip_prefix("oci://") {
            return oci(rest, false);
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket"));
            }
            return Ok(RemoteUrl::S3 {
                bucket: bucket.into(),
                prefix: prefix.trim_matches('/').into(),
            });
        }
        let dir = url.strip_prefix("file://").unwrap_or(url);
        if url.starts_with("file://") || url.starts_with('/') {
            let path = PathBuf::from(dir);
            if !path.is_absolute() {
                return Err(bad("the directory is not absolute"));
            }
            return Ok(RemoteUrl::Dir(path));
        }
        Err(bad("unknown scheme"))
    }
}

impl std::fmt::Display for RemoteUrl {
    /// The URL without credentials or query, for messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteUrl::Oci {
                location,
                plain_http,
            } => {
                let scheme = if *plain_http { "oci+http" } else { "oci" };
                let clean = location.rsplit('@').next().unwrap_or_default();
                let clean = clean.split(['?', '#']).next().unwrap_or_default();
                write!(f, "{scheme}://{clean}")
            }
            RemoteUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            RemoteUrl::Dir(p) => write!(f, "file://{}", p.display()),
        }
    }
}

/// A size as written (`2GiB`), with its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Size {
    /// The bytes.
    pub bytes: u64,
    /// The text it was written as, for generated files.
    pub text: String,
}

impl Size {
    /// Parses `500M`, `2GiB`.
    pub fn parse(text: &str) -> Result<Self> {
        Ok(Size {
            bytes: crate::parse_size(text)?,
            text: text.trim().to_string(),
        })
    }
}

impl TryFrom<String> for Size {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        Size::parse(&s).map_err(|e| e.to_string())
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Where `kiln image` writes the image besides (or instead of) the default layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageOutput {
    /// `oci:DIR`: an OCI image layout directory.
    Layout(PathBuf),
    /// `oci-archive:FILE`: an OCI archive, for `podman load` / `docker load`.
    Archive(PathBuf),
}

impl std::str::FromStr for ImageOutput {
    type Err = Error;
    fn from_str(o: &str) -> Result<Self> {
        let cwd = std::env::current_dir().unwrap_or_default();
        match o.split_once(':') {
            Some(("oci", p)) if !p.is_empty() => Ok(ImageOutput::Layout(cwd.join(p))),
            Some(("oci-archive", p)) if !p.is_empty() => Ok(ImageOutput::Archive(cwd.join(p))),
            _ => Err(Error::usage(format!(
                "unknown image output `{}`",
                kiln_diagnostics::printable(o, 80)
            ))
            .hint("use `oci:DIR` (an OCI layout) or `oci-archive:FILE.tar` (for `podman load` / `docker load`)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls_parse_into_their_kinds_and_typos_are_errors() {
        assert_eq!(
            RemoteUrl::parse("oci://ghcr.io/org/cache", "test").unwrap(),
            RemoteUrl::Oci {
                location: "ghcr.io/org/cache".into(),
                plain_http: false
            }
        );
        assert_eq!(
            RemoteUrl::parse("s3://b/p/", "test").unwrap().to_string(),
            "s3://b/p"
        );
        assert_eq!(
            RemoteUrl::parse("/mnt/kiln", "test").unwrap(),
            RemoteUrl::Dir("/mnt/kiln".into())
        );
        assert_eq!(
            RemoteUrl::parse("oci://user:pw@reg.example/c", "t")
                .unwrap()
                .to_string(),
            "oci://reg.example/c"
        );
        for bad in [
            "ftp://x",
            "oci://host",
            "s3:///p",
            "file://rel/dir",
            "cache",
        ] {
            let e = RemoteUrl::parse(bad, "KILN_REMOTE_CACHE").unwrap_err();
            assert!(e.to_string().contains("KILN_REMOTE_CACHE"), "{e}");
        }
    }

    #[test]
    fn sizes_and_image_outputs() {
        let s = Size::parse("2GiB").unwrap();
        assert_eq!((s.bytes, s.to_string()), (2 << 30, "2GiB".to_string()));
        assert!(Size::parse("lots").is_err());
        assert!(matches!(
            "oci-archive:x.tar".parse::<ImageOutput>(),
            Ok(ImageOutput::Archive(_))
        ));
        assert!("docker:x".parse::<ImageOutput>().is_err());
    }
}

/// Whether `host` (no port) is this machine: `localhost`, an IPv4 address in
/// 127.0.0.0/8, or `[::1]`; a name merely starting with `127.` is not. The one
/// test of where plain HTTP may go (registries, the remote cache, the scheduler).
pub fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An sccache-dist scheduler URL: `http(s)://host[:port]`, no credentials in it (the
/// token is `KILN_SCCACHE_DIST_TOKEN`), nothing a config file or a log line could
/// misread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistScheduler(String);

impl DistScheduler {
    /// Parses a scheduler URL; `origin` names where it came from in the error. Plain
    /// HTTP carries the token in clear text: only to this machine, or to a host
    /// listed in `insecure_hosts` (`KILN_INSECURE_REGISTRIES`).
    pub fn parse(url: &str, origin: &str, insecure_hosts: &[String]) -> Result<Self> {
        let bad = |why: &str| {
            Error::usage(format!(
                "invalid sccache-dist scheduler `{}` ({origin}): {why}",
                kiln_diagnostics::printable(url, 120)
            ))
            .hint("write `https://scheduler.example.com:10600` (the token goes in KILN_SCCACHE_DIST_TOKEN)")
        };
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| bad("not an http:// or https:// URL"))?;
        let host = rest.trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(bad("a scheduler URL is a host and a port, no path"));
        }
        if host.contains('@') {
            return Err(bad("credentials don't belong in the URL"));
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        {
            return Err(bad("unexpected characters in the host"));
        }
        let name = match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        let listed = insecure_hosts.iter().any(|h| h == host || h == name);
        if url.starts_with("http://") && !is_loopback_host(name) && !listed {
            return Err(Error::usage(format!(
                "the sccache-dist scheduler `{}` ({origin}) is plain HTTP off this machine: its token would cross the network in clear text",
                kiln_diagnostics::printable(url, 120)
            ))
            .hint(format!("use https://, or allow this host by name with KILN_INSECURE_REGISTRIES={name}")));
        }
        Ok(Self(url.trim_end_matches('/').to_string()))
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DistScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
