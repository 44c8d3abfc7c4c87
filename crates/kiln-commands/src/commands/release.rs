//! `kiln release`: the binaries restored or built as usual, then the release folder.

use super::{load_workspace, read_workspace, short};
use crate::args::{BuildOptions, GlobalArgs, ReleaseArgs, StoreArgs};
use crate::reporter::Reporter;
use kiln_diagnostics::Result;
use kiln_schema::{BinstallBlock, Event, ReleaseFile};
use std::process::ExitCode;

pub(crate) fn release(g: &GlobalArgs, args: &ReleaseArgs, r: &Reporter) -> Result<ExitCode> {
    if !args.no_build {
        // The same platforms, store and workspace as the release.
        let options = BuildOptions {
            platforms: args.platforms.clone(),
            store: StoreArgs {
                artifact_dir: args.artifact_dir.clone(),
                out: None,
            },
            manifest: args.manifest.clone(),
            ..Default::default()
        };
        super::build::build_with(g, &options, None, r)?;
    }
    // Without a build, nothing the workspace configures runs (the release job holds
    // a write token): the manifests are read as data, not given to cargo.
    let ws = if args.no_build {
        read_workspace(&args.manifest, args.flags(g))?
    } else {
        load_workspace(&args.manifest, args.flags(g))?
    };
    let store = kiln_artifacts::Store::new(&ws.settings.artifact_dir.value);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| ws.target_dir.join("kiln").join("dist"));
    let req = kiln_release::Request {
        out: out.clone(),
        dry_run: args.dry_run,
        base_url: args.base_url.clone(),
        tag: args.tag.clone(),
        image: args.image.clone(),
    };
    let released = kiln_release::release(&ws, &store, &req)?;
    let m = &released.manifest;
    if m.base_url.is_none() {
        r.emit(&Event::Warning(
            kiln_schema::Warning::ReleaseWithoutDownloadUrl { tag: m.tag.clone() },
        ));
    }
    let files = released
        .files
        .iter()
        .map(|f| ReleaseFile {
            name: f.name.clone(),
            size: f.size,
            sha256: f.sha256.clone(),
        })
        .collect();
    r.emit(&Event::ReleaseWritten {
        out: short(&out),
        dry_run: args.dry_run,
        version: m.version.clone(),
        tag: m.tag.clone(),
        files,
        binstall: released
            .binstall
            .into_iter()
            .map(|(package, toml)| BinstallBlock { package, toml })
            .collect(),
    });
    Ok(ExitCode::SUCCESS)
}
