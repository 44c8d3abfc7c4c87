//! One module per subcommand.

mod affected;
mod build;
mod cache;
mod image;
mod setup;
mod verify;

use crate::args::{Cli, Command};
use crate::reporter::Reporter;
use kiln_diagnostics::Result;
use kiln_workspace::Workspace;
use std::process::ExitCode;

pub(crate) fn run(cli: &Cli, reporter: &Reporter) -> Result<ExitCode> {
    match &cli.command {
        Command::Build(a) if a.dry_run => build::plan(cli, a, reporter),
        Command::Build(a) => build::build(cli, a, reporter),
        Command::Plan(a) => build::plan(cli, a, reporter),
        Command::Verify(a) => verify::verify(cli, a, reporter),
        Command::Setup(a) => setup::setup(cli, a, reporter),
        Command::Affected(a) => affected::affected(cli, a, reporter),
        Command::Cache(a) => cache::cache(cli, a, reporter),
        Command::Image(a) => image::image(cli, a, reporter),
        Command::Dockerfile(a) => image::dockerfile(cli, a, reporter),
    }
}

fn load_workspace(cli: &Cli) -> Result<Workspace> {
    Workspace::load(cli.global.manifest_path.as_deref())
}

/// The local cache: `KILN_CACHE_DIR`, else `cache-dir` from the config, else the
/// platform cache directory.
fn open_cache(ws: &Workspace) -> Result<kiln_cache::LocalCache> {
    let configured = std::env::var_os("KILN_CACHE_DIR")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            ws.config
                .cache_dir
                .as_ref()
                .map(|d| ws.root.join(expand_home(d)))
        });
    kiln_cache::LocalCache::open(configured)
}

fn expand_home(p: &std::path::Path) -> std::path::PathBuf {
    match (p.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => std::path::PathBuf::from(home).join(rest),
        _ => p.to_path_buf(),
    }
}

/// A path relative to the current directory when it is below it, for shorter output.
fn short(path: &std::path::Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    path.strip_prefix(&cwd)
        .unwrap_or(path)
        .display()
        .to_string()
}
