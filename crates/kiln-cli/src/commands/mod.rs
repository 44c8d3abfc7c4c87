//! One module per subcommand.

mod affected;
mod build;
mod cache;
mod ci;
mod config;
mod image;
mod report;
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
        Command::Ci(a) => ci::ci(cli, a, reporter),
        Command::Report(a) => report::report(cli, a, reporter),
        Command::Config => config::config(cli, reporter),
    }
}

/// The workspace, its settings resolved with `flags` (the command's own over the
/// global ones: see `args`).
fn load_workspace(cli: &Cli, flags: kiln_config::Flags) -> Result<Workspace> {
    Workspace::load(cli.global.manifest_path.as_deref(), flags)
}

/// The local cache, where the settings put it (`KILN_CACHE_DIR`, `cache-dir`, the
/// platform cache directory).
fn open_cache(ws: &Workspace) -> Result<kiln_cache::LocalCache> {
    Ok(
        kiln_cache::LocalCache::open(ws.settings.cache_dir.value.clone())?
            .with_trusted_keys(ws.settings.trust.keys.value.clone()),
    )
}

/// The remote cache the settings name; `None` when there is none or it is `off`.
fn open_remote(ws: &Workspace, r: &Reporter) -> Result<Option<kiln_remote::RemoteCache>> {
    let s = &ws.settings;
    let Some(url) = &s.remote.value else {
        return Ok(None);
    };
    let remote = kiln_remote::open(url, s.insecure.value, s.remote_timeout.value, &s.access)?;
    // The signing key comes from the environment only (a CI secret), never a file.
    let cache = kiln_remote::RemoteCache::new(remote, s.uploads())
        .with_trust(s.trust.keys.value.clone(), s.trust.signer.clone());
    if let Some(why) = cache.stats().skipped {
        r.emit(&kiln_schema::Event::Warning(
            kiln_schema::Warning::RemoteSkipped {
                remote: url.to_string(),
                why,
            },
        ));
    }
    Ok(Some(cache))
}

/// A path relative to the current directory when it is below it, for shorter output.
fn short(path: &std::path::Path) -> String {
    kiln_fs::display_path(path)
}
