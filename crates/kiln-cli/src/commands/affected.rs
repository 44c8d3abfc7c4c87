//! `kiln affected`: the binaries x platforms a change touches, for CI matrices.

use super::load_workspace;
use crate::args::{AffectedArgs, AffectedFormat, Cli};
use crate::reporter::Reporter;
use kiln_build::{affected as compute, Plan};
use kiln_diagnostics::Result;
use std::process::ExitCode;

pub(crate) fn affected(cli: &Cli, args: &AffectedArgs, r: &Reporter) -> Result<ExitCode> {
    let ws = load_workspace(cli)?;
    let sel = args.build.request().resolve(&ws)?;
    // Native libraries are only named here, never built.
    let plan = Plan::new(&ws, &sel, &ws.target_dir.join("kiln/native"))?;
    let a = compute(&ws, &plan, &args.base, args.head.as_deref())?;
    match args.format {
        AffectedFormat::GithubMatrix => {
            let include: Vec<_> = a
                .units
                .iter()
                .map(|u| serde_json::json!({"package": u.package, "platform": u.platform}))
                .collect();
            println!("{}", serde_json::json!({ "include": include }));
        }
        AffectedFormat::Json => {
            let units: Vec<_> = a
                .units
                .iter()
                .map(|u| {
                    serde_json::json!({"package": u.package, "bins": u.bins, "target": u.triple, "platform": u.platform, "because": u.because})
                })
                .collect();
            let v = serde_json::json!({
                "merge_base": a.merge_base,
                "files": a.files,
                "changed_packages": a.changed,
                "everything": a.everything,
                "affected": units,
            });
            println!("{v}");
        }
        AffectedFormat::Text => {
            for u in &a.units {
                println!(
                    "{} {} (because {} changed)",
                    u.package,
                    u.platform,
                    u.because.join(", ")
                );
            }
            r.info(
                "Affected",
                &format!(
                    "{} of {} binary packages x targets since {}",
                    a.units.len(),
                    plan.steps.iter().map(|s| s.targets.len()).sum::<usize>(),
                    &a.merge_base[..12.min(a.merge_base.len())]
                ),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
