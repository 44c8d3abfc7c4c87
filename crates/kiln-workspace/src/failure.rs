//! What went wrong when cargo (or rustup behind it) failed before compiling: the
//! cause, read from its message, and the fix for that cause.
//!
//! Cargo's messages are stable enough to match on their key phrases; anything not
//! recognised keeps cargo's own text with a generic hint.

use kiln_diagnostics::{Error, Kind};

/// Why cargo failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CargoFailure {
    /// The toolchain the workspace pins is not installed.
    ToolchainMissing(String),
    /// `Cargo.lock` must change but `--locked`/`--frozen` forbids it.
    LockStale,
    /// Cargo needs the network but `--offline`/`--frozen` forbids it.
    NeedsNetwork,
    /// A git host or registry could not be reached (or refused the credentials).
    Unreachable,
    /// A package needs a newer compiler than the toolchain in use.
    Msrv,
    /// A manifest is broken, or there is no workspace here.
    Manifest,
    /// Anything else: a compile error, or a message kiln doesn't know.
    Other,
}

/// Reads the cause from cargo's stderr.
pub fn classify(stderr: &str) -> CargoFailure {
    let s = stderr;
    let has = |needle: &str| s.contains(needle);
    if let Some(name) = missing_toolchain(s) {
        return CargoFailure::ToolchainMissing(name);
    }
    if has("needs to be updated but --locked was passed")
        || has("needs to be updated but --frozen was passed")
        || has("cannot update the lock file")
    {
        return CargoFailure::LockStale;
    }
    if has("--offline was specified")
        || has("without the network")
        || has("in offline mode")
        || has("--frozen was specified")
        || has("offline mode is enabled")
    {
        return CargoFailure::NeedsNetwork;
    }
    if has("requires rustc ")
        || has("is not supported by the following package")
        || has("the package requires rustc")
    {
        return CargoFailure::Msrv;
    }
    if has("failed to load source for dependency")
        || has("Unable to update")
        || has("failed to fetch")
        || has("failed to clone")
        || has("Could not resolve host")
        || has("failed to download")
        || has("spurious network error")
        || has("failed to authenticate")
        || has("failed to get `")
    {
        return CargoFailure::Unreachable;
    }
    if has("failed to parse manifest")
        || has("failed to load manifest")
        || has("could not find `Cargo.toml`")
        || has("failed to read `")
    {
        return CargoFailure::Manifest;
    }
    CargoFailure::Other
}

/// The name in rustup's `toolchain 'X' is not installed`.
fn missing_toolchain(s: &str) -> Option<String> {
    let line = s
        .lines()
        .find(|l| l.contains("is not installed") && l.contains("toolchain '"))?;
    let start = line.find("toolchain '")? + "toolchain '".len();
    let end = start + line[start..].find('\'')?;
    let name = &line[start..end];
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        .then(|| name.to_string())
}

/// `stderr` without rustup's `Stack backtrace:` (and what follows it), trimmed.
pub fn without_backtrace(stderr: &str) -> String {
    let end = stderr.find("Stack backtrace:").unwrap_or(stderr.len());
    stderr[..end].trim().to_string()
}

/// The error for a cargo command (`what`, e.g. "read the Cargo workspace") that failed
/// with `stderr`: the cause's kind and fix, cargo's own words as the cause, and
/// rustup's backtrace only when `verbose`.
pub fn explain(what: &str, stderr: &str, verbose: bool) -> Error {
    explain_inner(what, stderr, verbose, true)
}

/// Like [`explain`] for output the user has seen already (a build's stderr, streamed
/// as it ran): `None` when the cause is not one kiln knows, so the caller keeps its
/// own error (a compile error).
pub fn explain_seen(what: &str, stderr: &str) -> Option<Error> {
    // A compile error is the user's code, whatever else the output says.
    let compiled = stderr.contains("error: could not compile") || stderr.contains("error[E");
    (!compiled && classify(stderr) != CargoFailure::Other)
        .then(|| explain_inner(what, stderr, false, false))
}

/// A dependency that is known not to compile with the toolchain in use, and the
/// fix: found building public workspaces whose lockfiles predate the compiler (the
/// compatibility table). `None` for anything else.
pub fn explain_known_breakage(stderr: &str) -> Option<Error> {
    // `time` before 0.3.35 stopped compiling with Rust 1.80 (a new `FromIterator`
    // impl makes a `Box<_>` ambiguous, rust-lang/rust#127343).
    let old_time = stderr.contains("could not compile `time`")
        && stderr.contains("type annotations needed for `Box<_>`");
    old_time.then(|| {
        Error::new(
            kiln_diagnostics::Kind::BuildFailed,
            "the `time` crate Cargo.lock pins is older than 0.3.35, which doesn't compile with Rust 1.80 or newer",
        )
        .hint("run `cargo update -p time` and commit Cargo.lock")
        .hint("or pin the Rust the lockfile was made with in rust-toolchain.toml (kiln installs it with `kiln setup`)")
    })
}

fn explain_inner(what: &str, stderr: &str, verbose: bool, attach: bool) -> Error {
    let shown = if verbose {
        stderr.trim().to_string()
    } else {
        without_backtrace(stderr)
    };
    let first = shown
        .lines()
        .find(|l| l.starts_with("error"))
        .unwrap_or_else(|| shown.lines().next().unwrap_or("cargo failed"))
        .trim_start_matches("error: ")
        .to_string();
    // The cause is what cargo said besides the line the message repeats.
    let mut skipped = false;
    let rest: String = shown
        .lines()
        .filter(|l| {
            let repeat = !skipped && l.trim_start_matches("error: ") == first;
            skipped |= repeat;
            !repeat
        })
        .collect::<Vec<_>>()
        .join("\n");
    let with_cause = |e: Error| {
        if attach && !rest.trim().is_empty() {
            e.with_source(CargoOutput(rest.clone()))
        } else {
            e
        }
    };
    let message = format!("failed to {what}: {first}");
    let e = match classify(stderr) {
        CargoFailure::ToolchainMissing(name) => Error::new(Kind::Environment, message)
            .hint(format!(
                "run `kiln setup`: it installs the toolchain the workspace pins ({name}) with the musl targets"
            ))
            .hint(format!("or install it yourself: `rustup toolchain install {}`", channel_of(&name))),
        CargoFailure::LockStale => Error::usage(message)
            .hint("update the lockfile (`cargo update --workspace`, or `cargo generate-lockfile`) and commit it, or build without `--locked`/`--frozen`"),
        CargoFailure::NeedsNetwork => Error::usage(message)
            .hint("fetch the dependencies once with the network (`cargo fetch`), or build without `--offline`/`--frozen`"),
        CargoFailure::Unreachable => Error::new(Kind::Remote, message)
            .hint("check the network and the credentials for the git host or registry named above")
            .hint("to build without the network, fetch first (`cargo fetch`) and pass `--offline`"),
        CargoFailure::Msrv => Error::new(Kind::Environment, message)
            .hint("use a newer toolchain: `rustup update`, or raise the channel in rust-toolchain.toml to at least the package's `rust-version`"),
        CargoFailure::Manifest => Error::usage(message)
            .hint("fix the manifest cargo names above"),
        CargoFailure::Other => Error::usage(message)
            .hint("fix the problem cargo reports above (run the same cargo command to see it in full)"),
    };
    with_cause(e)
}

/// `1.80.0` from `1.80.0-x86_64-unknown-linux-gnu`: the part `rustup toolchain
/// install` takes.
fn channel_of(name: &str) -> &str {
    for host in [
        "-x86_64-",
        "-aarch64-",
        "-i686-",
        "-arm-",
        "-armv7-",
        "-riscv64",
        "-powerpc",
        "-s390x",
    ] {
        if let Some(i) = name.find(host) {
            return &name[..i];
        }
    }
    name
}

/// Cargo's output, as the cause of a kiln error.
#[derive(Debug)]
struct CargoOutput(String);

impl std::fmt::Display for CargoOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CargoOutput {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_read_from_cargo_and_rustup_messages() {
        let rustup = "error: toolchain '1.80.0-x86_64-unknown-linux-gnu' is not installed\nhelp: run `rustup toolchain install` to install it\n\nStack backtrace:\n   0: anyhow::error\n";
        assert_eq!(
            classify(rustup),
            CargoFailure::ToolchainMissing("1.80.0-x86_64-unknown-linux-gnu".into())
        );
        let e = explain("read the Cargo workspace", rustup, false);
        assert_eq!(e.kind().exit_code(), 4);
        assert!(e.hints().iter().any(|h| h.contains("kiln setup")));
        assert!(e
            .hints()
            .iter()
            .any(|h| h.contains("rustup toolchain install 1.80.0`")));
        let shown = format!(
            "{e} {:?}",
            std::error::Error::source(&e).map(|s| s.to_string())
        );
        assert!(!shown.contains("anyhow"), "{shown}");
        let verbose = explain("x", rustup, true);
        assert!(std::error::Error::source(&verbose)
            .unwrap()
            .to_string()
            .contains("anyhow"));

        assert_eq!(
            classify("error: the lock file /w/Cargo.lock needs to be updated but --locked was passed to prevent this"),
            CargoFailure::LockStale
        );
        assert_eq!(
            classify("error: failed to get `dep` as a dependency of package `a`\nCaused by:\n  failed to load source for dependency `dep`\n  Unable to update file:///x\n"),
            CargoFailure::Unreachable
        );
        assert_eq!(
            classify("error: rustc 1.80.0 is not supported by the following package:\n  a@0.1.0 requires rustc 1.999"),
            CargoFailure::Msrv
        );
        assert_eq!(
            classify("error: failed to parse manifest at `/w/Cargo.toml`"),
            CargoFailure::Manifest
        );
        assert_eq!(
            classify("error: attempting to make an HTTP request, but --offline was specified"),
            CargoFailure::NeedsNetwork
        );
        assert_eq!(
            classify("error[E0425]: cannot find value"),
            CargoFailure::Other
        );
    }

    #[test]
    fn an_old_time_crate_is_named_with_its_fix() {
        let seen = "error[E0282]: type annotations needed for `Box<_>`\n  --> /root/.cargo/registry/src/index.crates.io-1/time-0.3.29/src/format_description/parse/mod.rs:83:9\nerror: could not compile `time` (lib) due to 1 previous error\n";
        let e = explain_known_breakage(seen).expect("recognised");
        assert_eq!(e.kind().exit_code(), 1);
        assert!(
            e.hints().join(" ").contains("cargo update -p time"),
            "{e:?}"
        );
        assert!(explain_known_breakage("error: could not compile `time`\n").is_none());
        assert!(explain_known_breakage(
            "error[E0282]: type annotations needed for `Box<_>`\nerror: could not compile `app`\n"
        )
        .is_none());
    }
}
