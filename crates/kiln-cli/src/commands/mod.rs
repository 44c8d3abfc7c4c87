//! One module per subcommand.

mod build;
mod setup;
mod verify;

use crate::args::{Cli, Command};
use crate::reporter::Reporter;
use kiln_diagnostics::Result;
use kiln_workspace::Workspace;
use std::process::ExitCode;

pub(crate) fn run(cli: &Cli, reporter: &Reporter) -> Result<ExitCode> {
    match &cli.command {
        Command::Build(a) => build::build(cli, a, reporter),
        Command::Plan(a) => build::plan(cli, a, reporter),
        Command::Verify(a) => verify::verify(cli, a, reporter),
        Command::Setup(a) => setup::setup(cli, a, reporter),
    }
}

fn load_workspace(cli: &Cli) -> Result<Workspace> {
    Workspace::load(cli.global.manifest_path.as_deref())
}

/// A path relative to the current directory when it is below it, for shorter output.
fn short(path: &std::path::Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    path.strip_prefix(&cwd)
        .unwrap_or(path)
        .display()
        .to_string()
}
