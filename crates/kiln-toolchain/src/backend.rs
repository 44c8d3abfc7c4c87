//! Toolchain backends: the program that runs the build for a set of targets.

use crate::probe::zig_hint;
use kiln_config::BackendChoice;
use kiln_diagnostics::{Error, Result};

/// The program that drives a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Backend {
    /// `cargo build`, linking musl targets with the bundled `rust-lld`.
    Cargo,
    /// `cargo zigbuild`: zig compiles C and links, for any target from any host.
    Zig,
    /// `cross build`: builds inside a container image per target.
    Cross,
}

impl Backend {
    /// Picks the backend: the configured one, or for `auto` zig when the build graph
    /// compiles C (plain cargo has no cross C compiler) and cargo otherwise.
    pub fn choose(choice: BackendChoice, compiles_c: bool) -> Backend {
        match choice {
            BackendChoice::Auto if compiles_c => Backend::Zig,
            BackendChoice::Auto | BackendChoice::Cargo => Backend::Cargo,
            BackendChoice::Zig => Backend::Zig,
            BackendChoice::Cross => Backend::Cross,
        }
    }

    /// The name used in output and `checksums.json`.
    pub fn name(self) -> &'static str {
        self.kind().name()
    }

    /// The backend as records and events name it.
    pub fn kind(self) -> kiln_schema::BackendKind {
        match self {
            Backend::Cargo => kiln_schema::BackendKind::Cargo,
            Backend::Zig => kiln_schema::BackendKind::Zig,
            Backend::Cross => kiln_schema::BackendKind::Cross,
        }
    }

    fn zig_missing() -> Error {
        Error::environment("zig is not installed; the zig backend needs it").hint(zig_hint())
    }

    /// After a failed build: the missing tool that explains it, if any. Only called on
    /// the failure path, so it may start processes.
    pub fn diagnose_failure(self) -> Option<Error> {
        (self == Backend::Zig && crate::zig_version().is_none()).then(Self::zig_missing)
    }

    /// The command that starts a build, before kiln's own arguments.
    pub fn command(self) -> (String, Vec<String>) {
        match self {
            Backend::Cargo => (kiln_workspace::cargo_program(), vec!["build".into()]),
            Backend::Zig => (kiln_workspace::cargo_program(), vec!["zigbuild".into()]),
            Backend::Cross => ("cross".into(), vec!["build".into()]),
        }
    }

    /// Fails with an install hint when the backend's tools are missing.
    pub fn check_available(self) -> Result<()> {
        match self {
            Backend::Cargo => Ok(()),
            Backend::Zig => {
                if !crate::probe::on_path("cargo-zigbuild") {
                    return Err(Error::environment(
                        "`cargo-zigbuild` is not installed; the zig backend needs it",
                    )
                    .hint(zig_hint()));
                }
                // Checked without starting zig (its pip shim costs ~0.1 s on every
                // build); a python without the ziglang package is diagnosed by
                // `diagnose_failure` if the build then fails.
                if !crate::probe::on_path("zig") && !crate::probe::on_path("python3") {
                    return Err(Self::zig_missing());
                }
                Ok(())
            }
            Backend::Cross => {
                if crate::probe::on_path("cross") {
                    Ok(())
                } else {
                    Err(Error::environment("`cross` is not installed; the cross backend needs it")
                        .hint("run `cargo install cross` (it also needs a Docker or Podman engine), or set `backend = \"zig\"`"))
                }
            }
        }
    }
}

/// One process kiln runs to build: program, arguments, environment, and the notes
/// that explain any change kiln made to the user's setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The backend it uses.
    pub backend: Backend,
    /// Program to run.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables, sorted by name.
    pub env: Vec<(String, String)>,
    /// What kiln changed of the user's configuration for this invocation.
    pub overrides: Vec<kiln_schema::Override>,
}

impl Invocation {
    /// The command line as a user would type it, env first.
    pub fn display(&self) -> String {
        self.display_with(&self.env)
    }

    /// [`Invocation::display`] with `env` in place of the invocation's environment
    /// (the same one, with what is known only when it runs filled in).
    pub fn display_with(&self, env: &[(String, String)]) -> String {
        let env = env.iter().map(|(k, v)| format!("{k}={v} "));
        format!(
            "{}{} {}",
            env.collect::<String>(),
            self.program,
            self.args.join(" ")
        )
    }
}
