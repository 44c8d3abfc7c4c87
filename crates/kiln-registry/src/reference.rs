//! Image references: `ghcr.io/org/app:tag`, `debian:bookworm-slim`, `127.0.0.1:5000/app@sha256:..`.

use kiln_config::is_loopback_host;
use kiln_diagnostics::{Error, Result};

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host (and port), as addressed over HTTP (`registry-1.docker.io` for Docker Hub).
    pub registry: String,
    /// Repository path (`library/debian`).
    pub repository: String,
    /// Tag, or digest (`sha256:..`); `latest` when neither is given.
    pub reference: String,
}

impl Reference {
    /// Parses `s` the way docker does: a first component with `.` or `:` or
    /// `localhost` is a registry, otherwise Docker Hub (with `library/` for one-part names).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            Error::usage(format!("invalid image reference `{s}`"))
                .hint("write it as `registry/repository:tag`, e.g. `ghcr.io/org/app:1.0`")
        };
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) if d.starts_with("sha256:") && d.len() == 71 => (r, Some(d)),
            Some(_) => return Err(bad()),
            None => (s, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path.to_string())
            }
            _ => ("docker.io".to_string(), rest.to_string()),
        };
        // A tag is after the last ':' of the last path component.
        let last_slash = path.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match path[last_slash..].rfind(':') {
            Some(i) => (
                path[..last_slash + i].to_string(),
                Some(path[last_slash + i + 1..].to_string()),
            ),
            None => (path.clone(), None),
        };
        let valid_repo = !repository.is_empty()
            && repository.split('/').all(|c| {
                !c.is_empty()
                    && c.chars().all(|ch| {
                        ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch)
                    })
            });
        let valid_tag = tag.as_deref().is_none_or(is_valid_tag);
        if !valid_repo || !valid_tag {
            return Err(bad());
        }
        let (registry, repository) = if registry == "docker.io" {
            let repo = if repository.contains('/') {
                repository
            } else {
                format!("library/{repository}")
            };
            ("registry-1.docker.io".to_string(), repo)
        } else {
            (registry, repository)
        };
        let reference = digest
            .map(String::from)
            .or(tag)
            .unwrap_or_else(|| "latest".into());
        Ok(Reference {
            registry,
            repository,
            reference,
        })
    }

    /// The same repository at another tag.
    pub fn with_tag(&self, tag: &str) -> Self {
        Reference {
            reference: tag.into(),
            ..self.clone()
        }
    }

    /// Whether the registry is on this machine (where plain HTTP is allowed).
    pub fn is_loopback(&self) -> bool {
        let host = self
            .registry
            .rsplit_once(':')
            .map_or(self.registry.as_str(), |(h, _)| h);
        is_loopback_host(host)
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = if self.reference.starts_with("sha256:") {
            '@'
        } else {
            ':'
        };
        write!(
            f,
            "{}/{}{sep}{}",
            self.registry, self.repository, self.reference
        )
    }
}

/// Whether `tag` is a tag the distribution spec allows:
/// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_the_distribution_spec() {
        for ok in ["latest", "v1.2.3", "_x", "a".repeat(128).as_str()] {
            assert!(is_valid_tag(ok), "{ok}");
        }
        for bad in [
            "",
            ".x",
            "-x",
            "a b",
            "x/y",
            "a".repeat(129).as_str(),
            "t\u{1b}[2J",
        ] {
            assert!(!is_valid_tag(bad), "{bad}");
        }
    }

    #[test]
    fn only_real_loopback_addresses_are_loopback() {
        for host in ["localhost", "127.0.0.1", "127.1.2.3", "[::1]"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "127.attacker.example",
            "127.0.0.1.nip.io",
            "1270.0.0.1",
            "127.0.0.256",
            "localhost.example",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
        let r = Reference::parse("127.attacker.example:5000/c:latest").unwrap();
        assert!(!r.is_loopback());
    }

    #[test]
    fn parses_like_docker() {
        let r = Reference::parse("debian:bookworm-slim").unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("registry-1.docker.io", "library/debian", "bookworm-slim")
        );
        let r = Reference::parse("ghcr.io/chronik-stream/chronik").unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("ghcr.io", "chronik-stream/chronik", "latest")
        );
        let r = Reference::parse("127.0.0.1:5000/app:v1").unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("127.0.0.1:5000", "app", "v1")
        );
        assert!(r.is_loopback());
        let d = format!("localhost/app@sha256:{}", "a".repeat(64));
        assert!(Reference::parse(&d)
            .unwrap()
            .reference
            .starts_with("sha256:"));
        for bad in ["", "App", "ghcr.io/", "x:bad tag", "a@sha256:12"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
