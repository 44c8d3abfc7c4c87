//! One error type for every kiln crate.
//!
//! An error carries a lowercase message, the `hint:` lines that tell the user what to
//! do next, and a [`Kind`] that decides the process exit code. Keeping one type means
//! hints survive from the crate that knows the fix up to the CLI that prints them.

use std::fmt;
use std::path::Path;

/// What went wrong, coarsely: this picks the exit code (see `docs/exit-codes.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Cargo ran and the build failed (a compile error in the user's code).
    BuildFailed,
    /// Bad input: not a workspace, unknown target/package, invalid configuration.
    Usage,
    /// `kiln verify` found an artifact that does not match its recorded checksum.
    VerifyFailed,
    /// The machine lacks something: a rustup target, zig, a writable directory.
    Environment,
    /// A registry or remote cache failed: unreachable, refused the credentials,
    /// rejected an upload after retries.
    Remote,
    /// A bug in kiln or an unexpected failure of a tool it runs.
    Internal,
}

impl Kind {
    /// The process exit code for this kind; stable across releases.
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::BuildFailed => 1,
            Kind::Usage => 2,
            Kind::VerifyFailed => 3,
            Kind::Environment => 4,
            Kind::Remote => 5,
            Kind::Internal => 101,
        }
    }
}

/// A kiln error: message, hints, kind and an optional cause.
#[derive(Debug)]
pub struct Error {
    kind: Kind,
    message: String,
    hints: Vec<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Result alias used across kiln's crates.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind`.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hints: Vec::new(),
            source: None,
        }
    }

    /// Bad input from the user.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }

    /// Something missing or broken on the machine.
    pub fn environment(message: impl Into<String>) -> Self {
        Self::new(Kind::Environment, message)
    }

    /// A remote service (registry, cache) failed.
    pub fn remote(message: impl Into<String>) -> Self {
        Self::new(Kind::Remote, message)
    }

    /// An unexpected failure.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Kind::Internal, message)
    }

    /// An I/O failure on `path`; the path is always named.
    pub fn io(action: &str, path: &Path, err: std::io::Error) -> Self {
        let kind = match err.kind() {
            std::io::ErrorKind::PermissionDenied
            | std::io::ErrorKind::ReadOnlyFilesystem
            | std::io::ErrorKind::StorageFull
            | std::io::ErrorKind::QuotaExceeded => Kind::Environment,
            _ => Kind::Internal,
        };
        let mut e =
            Self::new(kind, format!("failed to {action} `{}`", path.display())).with_source(err);
        if kind == Kind::Environment {
            e = e.hint(format!(
                "check that `{}` is writable and its disk has free space",
                path.display()
            ));
        }
        e
    }

    /// Adds a `hint:` line naming a fix.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind, which decides the exit code.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The hints, in the order they were added.
    pub fn hints(&self) -> &[String] {
        &self.hints
    }

    /// The message without the cause chain.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message followed by every cause (`failed to write `x`: No space left on
    /// device (os error 28)`): for warnings, which have no room for a cause list.
    pub fn detail(&self) -> String {
        let mut out = self.message.clone();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cause = c.source();
        }
        out
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Wraps I/O results so that the error names the path.
pub trait IoContext<T> {
    /// Maps an I/O error to an [`Error`] naming `action` and `path`.
    fn io_context(self, action: &str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn io_context(self, action: &str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(action, path, e))
    }
}

/// Text from outside (a registry's answer, a remote entry's field) made safe to print:
/// control characters (escape sequences, newlines that fake log lines) become `?`,
/// and at most `max` characters are kept.
pub fn printable(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > max {
        out.push_str("...");
    }
    out
}

/// Where a page of kiln's documentation is published (`docs_url("allocator.md")`):
/// hints link there, since a binary install has no `docs/` beside it.
pub fn docs_url(page: &str) -> String {
    format!("https://github.com/kiln-build/kiln/blob/main/docs/{page}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_denied_is_an_environment_error_with_a_hint() {
        let err = Error::io(
            "write",
            Path::new("/x"),
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert_eq!(err.kind().exit_code(), 4);
        assert!(err.hints()[0].contains("/x"));
        assert_eq!(err.to_string(), "failed to write `/x`");
    }
}
