//! `kiln image` and `kiln dockerfile`: arguments into a request for kiln-ship,
//! which does the work and says what it did.

use super::{load_workspace, open_cache, read_workspace};
use crate::args::{BuildOptions, DockerfileArgs, GlobalArgs, ImageArgs};
use crate::reporter::Reporter;
use kiln_diagnostics::Result;
use kiln_schema::{Event, Reason, UnitGroup, UnitState, Warning};
use kiln_ship::{DockerfileRequest, ImageRequest};
use kiln_workspace::Workspace;
use std::collections::BTreeMap;
use std::process::ExitCode;

pub(crate) fn image(g: &GlobalArgs, args: &ImageArgs, r: &Reporter) -> Result<ExitCode> {
    super::warn_deprecated_out(&args.store, r);
    if args.build {
        // The same platforms, store and workspace as the image.
        let options = BuildOptions {
            platforms: args.platforms.clone(),
            store: args.store.clone(),
            manifest: args.manifest.clone(),
            ..Default::default()
        };
        super::build::build_with(g, &options, None, r)?;
    }
    // `--no-build` packages the store as it is and runs nothing the workspace
    // configures: the manifests are read as data, not given to cargo.
    let mut ws = if args.no_build {
        read_workspace(&args.manifest, args.flags(g))?
    } else {
        load_workspace(&args.manifest, args.flags(g))?
    };
    if !args.build && !args.no_build {
        warn_if_stale(&mut ws, r);
    }
    let req = ImageRequest {
        output: args.output.clone(),
        push: args.push.clone(),
        tags: args.tags.clone(),
        base: args.base.clone(),
        insecure: args.insecure,
        sign_key: args.sign_key.clone(),
        attach: !args.no_attach,
        layer_cache: open_cache(&ws).ok().map(|c| c.root().join("layers")),
    };
    kiln_ship::image(&ws, &req, &|e| r.emit(&e))?;
    Ok(ExitCode::SUCCESS)
}

/// Hears nothing: the staleness check's analysis has nothing to tell the user.
struct Quiet;

impl kiln_build::Observer for Quiet {
    fn event(&self, _: Event) {}
    fn cargo_stderr(&self, _: &str) {}
}

/// Warns when binaries in the store are not what the sources build now (an edit
/// since `kiln build`, or sources that no longer compile): the image would ship
/// them silently otherwise. The same keys as `kiln plan` (the local cache holds what
/// build scripts declared, which the keys include); nothing is restored.
fn warn_if_stale(ws: &mut Workspace, r: &Reporter) {
    let stale = (|| -> Result<Vec<UnitGroup>> {
        let sel = kiln_build::select(ws, &kiln_build::BuildRequest::default())?;
        let store = kiln_artifacts::Store::new(&sel.out);
        let recorded = store.read_checksums()?.artifacts;
        let cache = open_cache(ws).ok();
        let plan = kiln_build::Plan::new(ws, &sel, &kiln_build::native_root(ws, cache.as_ref()))?;
        let analysis = kiln_build::analyze(ws, &plan, &store, cache.as_ref(), None, &Quiet)?;
        let mut by_bin: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for u in analysis
            .units
            .iter()
            .filter(|u| u.state != UnitState::Fresh)
        {
            let Some(record) = recorded
                .iter()
                .find(|a| a.binary == u.bin && a.target == u.target.triple)
            else {
                continue;
            };
            // Stale for sure when a build would restore another binary, or when the
            // cache remembers the last build and an input changed since; a cache
            // without that history can't tell (no false alarm then).
            let changed = u
                .reasons
                .iter()
                .any(|r| matches!(r, Reason::Changed { .. }));
            let known = u.state == UnitState::Restore || changed;
            if known && record.key.as_deref() != Some(u.key.as_str()) {
                by_bin
                    .entry(u.bin.clone())
                    .or_default()
                    .push(u.target.arch.clone());
            }
        }
        Ok(by_bin
            .into_iter()
            .map(|(binary, arches)| UnitGroup { binary, arches })
            .collect())
    })();
    if let Ok(units) = stale {
        if !units.is_empty() {
            r.emit(&Event::Warning(Warning::StaleStore { units }));
        }
    }
}

pub(crate) fn dockerfile(g: &GlobalArgs, args: &DockerfileArgs, r: &Reporter) -> Result<ExitCode> {
    let ws = load_workspace(&args.manifest, g.flags())?;
    let req = DockerfileRequest {
        base: args.base.clone(),
        output: args.output.clone(),
        force: args.force,
    };
    r.emit(&kiln_ship::dockerfile(&ws, &req)?);
    Ok(ExitCode::SUCCESS)
}
