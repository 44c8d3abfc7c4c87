//! `kiln verify`: re-hash the artifact store.

use super::{load_workspace, short};
use crate::args::{Cli, VerifyArgs};
use crate::reporter::Reporter;
use kiln_artifacts::Store;
use kiln_diagnostics::{Error, Kind, Result};
use std::process::ExitCode;

pub(crate) fn verify(cli: &Cli, args: &VerifyArgs, r: &Reporter) -> Result<ExitCode> {
    // Without `--out` the store is the workspace's; with it, no workspace is needed.
    let root = match &args.out {
        Some(out) => out.clone(),
        None => load_workspace(cli, cli.global.flags())?
            .settings
            .artifact_dir
            .value
            .clone(),
    };
    let store = Store::new(&root);
    if !root.join("checksums.json").is_file() {
        return Err(Error::usage(format!(
            "no artifact store at `{}` (no checksums.json)",
            root.display()
        ))
        .hint("run `kiln build` first, or pass `--out DIR` to verify another store"));
    }
    let report = store.verify()?;
    r.emit(&kiln_schema::Event::VerifyFinished {
        checked: report.checked,
        problems: report
            .problems
            .iter()
            .map(|p| kiln_schema::VerifyProblem {
                path: p.path.clone(),
                detail: p.detail.clone(),
            })
            .collect(),
        store: short(&root),
    });
    if report.problems.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    Err(Error::new(
        Kind::VerifyFailed,
        format!(
            "{} of {} artifacts failed verification",
            report.problems.len(),
            report.checked
        ),
    )
    .hint("run `kiln build` to rebuild them; do not ship this store"))
}
