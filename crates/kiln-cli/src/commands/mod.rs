//! One module per subcommand.

mod affected;
mod build;
mod cache;
mod ci;
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

/// The remote cache: `KILN_REMOTE_CACHE` (`off` disables), else the configured one.
/// `None` when there is none or the cache is off.
fn open_remote(ws: &Workspace, r: &Reporter) -> Result<Option<kiln_remote::RemoteCache>> {
    let config = ws.config.cache.clone().unwrap_or_default();
    let url = match std::env::var("KILN_REMOTE_CACHE") {
        Ok(v) if v.trim() == "off" || v.trim().is_empty() => None,
        Ok(v) => Some(v.trim().to_string()),
        Err(_) => config.remote.clone(),
    };
    let Some(url) = url else {
        return Ok(None);
    };
    // `KILN_CACHE_UPLOAD` overrides `upload` (the generated workflow sets `never` for
    // builds that must not write to the shared cache).
    let upload_env = std::env::var("KILN_CACHE_UPLOAD")
        .ok()
        .filter(|v| !v.is_empty());
    let upload = kiln_remote::Upload::parse(
        upload_env
            .as_deref()
            .or(config.upload.as_deref())
            .unwrap_or("ci"),
    )?;
    let timeout = std::time::Duration::from_secs(config.timeout.unwrap_or(5).max(1));
    let remote = kiln_remote::open(&url, config.insecure.unwrap_or(false), timeout)?;
    // The signing key comes from the environment only (a CI secret), never a file.
    let key = std::env::var_os("KILN_CACHE_SIGNING_KEY").map(|k| k.into_encoded_bytes());
    let cache = kiln_remote::RemoteCache::new(remote, upload).with_signing_key(key);
    if let Some(why) = cache.stats().skipped {
        r.warn(&format!("remote cache skipped, building locally: {why}"));
    }
    Ok(Some(cache))
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
