//! One module per subcommand.

mod affected;
mod build;
mod cache;
mod ci;
mod config;
mod docs;
mod image;
mod init;
mod release;
mod report;
mod setup;
mod verify;

use crate::args::{Cli, Command, ManifestArgs, StoreArgs};
use crate::reporter::Reporter;
use kiln_diagnostics::Result;
use kiln_schema::{Event, Warning};
use kiln_workspace::Workspace;
use std::process::ExitCode;

pub(crate) fn run(cli: &Cli, r: &Reporter) -> Result<ExitCode> {
    let g = &cli.global;
    match &cli.command {
        Command::Init(a) => init::init(a, r),
        Command::Build(a) if a.dry_run => build::plan(g, &a.options, r),
        Command::Build(a) => build::build(g, a, r),
        Command::Plan(a) => build::plan(g, &a.options, r),
        Command::Verify(a) => verify::verify(g, a, r),
        Command::Setup(a) => setup::setup(g, a, r),
        Command::Affected(a) => affected::affected(g, a, r),
        Command::Cache(a) => cache::cache(g, a, r),
        Command::Image(a) => image::image(g, a, r),
        Command::Dockerfile(a) => image::dockerfile(g, a, r),
        Command::Release(a) => release::release(g, a, r),
        Command::Ci(a) => ci::ci(g, a, r),
        Command::Report(a) => report::report(g, a, r),
        Command::Config(a) => config::config(g, a, r),
        Command::Completions(a) => docs::completions(a, r),
        Command::Man(a) => docs::man(a, r),
    }
}

/// The workspace, its settings resolved with `flags` (the command's own over the
/// global ones: see `args`).
fn load_workspace(manifest: &ManifestArgs, flags: kiln_config::Flags) -> Result<Workspace> {
    Workspace::load(manifest.manifest_path.as_deref(), flags)
}

/// The workspace read from its manifests as data, for a command (or a mode) that
/// must run nothing the repository configures: no cargo, so no `rustc-wrapper`,
/// `build.rustc` or toolchain file of the repository's (see `Workspace::read`).
fn read_workspace(manifest: &ManifestArgs, flags: kiln_config::Flags) -> Result<Workspace> {
    Workspace::read(manifest.manifest_path.as_deref(), flags)
}

/// Says so when the store was named with the old `--out`.
fn warn_deprecated_out(store: &StoreArgs, r: &Reporter) {
    if store.dir().1 {
        r.emit(&Event::Warning(Warning::DeprecatedFlag {
            flag: "--out".into(),
            instead: "--artifact-dir".into(),
        }));
    }
}

/// The local cache, where the settings put it (`KILN_CACHE_DIR`, `cache-dir`, the
/// platform cache directory).
fn open_cache(ws: &Workspace) -> Result<kiln_local_cache::LocalCache> {
    Ok(
        kiln_local_cache::LocalCache::open(ws.settings.cache_dir.value.clone())?
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
