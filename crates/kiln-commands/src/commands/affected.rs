//! `kiln affected`: the binaries x platforms a change touches, for CI matrices.

use super::load_workspace;
use crate::args::{AffectedArgs, AffectedFormat, GlobalArgs};
use crate::reporter::Reporter;
use kiln_build::{affected as compute, Plan};
use kiln_diagnostics::Result;
use kiln_schema::{Event, GithubMatrix, MatrixEntry};
use std::process::ExitCode;

pub(crate) fn affected(g: &GlobalArgs, args: &AffectedArgs, r: &Reporter) -> Result<ExitCode> {
    let mut ws = load_workspace(&args.sync.manifest, args.sync.flags(g))?;
    let sel = kiln_build::select(&mut ws, &args.sync.request())?;
    // Native libraries are only named here, never built.
    let plan = Plan::new(&ws, &sel, &kiln_build::native_root(&ws, None))?;
    // What each binary read when it was last built (a record in the cache) narrows a
    // member's changed files to those its build reads.
    let cache = super::open_cache(&ws).ok();
    let mut a = compute(
        &ws,
        &plan,
        cache.as_ref(),
        args.base.as_deref(),
        args.head.as_deref(),
    )?;
    if args.skip_cached {
        skip_cached(&ws, &plan, &sel, &mut a, r)?;
    }
    match args.format {
        AffectedFormat::GithubMatrix | AffectedFormat::GithubOutputs => {
            let per_platform = ws.settings.matrix.value == kiln_config::Matrix::Platform;
            let m = matrix(&a.units, per_platform);
            let json = serde_json::to_string(&m).expect("matrix serializes");
            if args.format == AffectedFormat::GithubMatrix {
                r.output(&json);
            } else {
                // Lines for $GITHUB_OUTPUT: the step's outputs, in one go.
                r.output(&format!("matrix={json}"));
                r.output(&format!("empty={}", m.include.is_empty()));
                r.output(&format!("image={}", a.image));
            }
        }
        AffectedFormat::Json | AffectedFormat::Text => {
            let event = Event::Affected {
                merge_base: a.merge_base.clone(),
                files: a.files.clone(),
                changed_packages: a.changed.iter().cloned().collect(),
                everything: a.everything,
                image: a.image,
                affected: a
                    .units
                    .iter()
                    .map(|u| kiln_schema::AffectedUnit {
                        package: u.package.clone(),
                        bins: u.bins.clone(),
                        target: u.triple.clone(),
                        platform: u.platform.clone(),
                        because: u.because.clone(),
                    })
                    .collect(),
                total: plan.steps.iter().map(|s| s.targets.len()).sum(),
            };
            // `--format json` is the output asked for, whatever `--message-format`.
            match args.format {
                AffectedFormat::Json => r.output_event(&event),
                _ => r.emit(&event),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The GitHub Actions matrix: one entry per package x platform, or per platform with
/// every affected package (`matrix = "platform"` in `[workspace.metadata.kiln.ci]`).
/// Each entry has a readable `name`, the `packages` for `-p`, the `target` for
/// `--target`, and a `platform` usable in artifact names.
fn matrix(units: &[kiln_build::AffectedUnit], per_platform: bool) -> GithubMatrix {
    let include = if per_platform {
        let mut by: std::collections::BTreeMap<(&str, &str), Vec<&str>> = Default::default();
        for u in units {
            by.entry((&u.platform, &u.target))
                .or_default()
                .push(&u.package);
        }
        by.into_iter()
            .map(|((platform, target), packages)| MatrixEntry {
                name: platform.replacen('-', "/", 1),
                package: None,
                packages: packages.join(" "),
                target: target.into(),
                platform: platform.into(),
            })
            .collect()
    } else {
        units
            .iter()
            .map(|u| MatrixEntry {
                name: format!("{} {}", u.package, u.platform.replacen('-', "/", 1)),
                package: Some(u.package.clone()),
                packages: u.package.clone(),
                target: u.target.clone(),
                platform: u.platform.clone(),
            })
            .collect()
    };
    GithubMatrix { include }
}

/// Drops the units whose binaries the remote cache already holds under their current
/// keys: CI then starts no runner for them (the image job restores them).
fn skip_cached(
    ws: &kiln_workspace::Workspace,
    plan: &Plan,
    sel: &kiln_build::Selection,
    a: &mut kiln_build::Affected,
    r: &Reporter,
) -> Result<()> {
    let cache = super::open_cache(ws)?;
    let Some(remote) = super::open_remote(ws, r)? else {
        return Ok(());
    };
    if !remote.alive() {
        return Ok(());
    }
    // The keys the team computed: with the build scripts' declarations the remote
    // learned (verified as the trust settings say); no binary is downloaded.
    let remote = remote.keys_only();
    let store = kiln_artifacts::Store::new(&sel.out);
    let analysis = kiln_build::analyze(ws, plan, &store, Some(&cache), Some(&remote), r)?;
    a.units.retain(|u| {
        let keys: Vec<&str> = analysis
            .units
            .iter()
            .filter(|p| p.package == u.package && p.target.triple == u.triple)
            .map(|p| p.key.as_str())
            .collect();
        let cached = !keys.is_empty() && keys.iter().all(|k| remote.has(k));
        if cached {
            r.emit(&Event::Note(kiln_schema::Note::AlreadyCached {
                package: u.package.clone(),
                platform: u.platform.clone(),
                remote: remote.stats().remote,
            }));
        }
        !cached
    });
    Ok(())
}
