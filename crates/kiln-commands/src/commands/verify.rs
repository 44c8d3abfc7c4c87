//! `kiln verify`: re-hash the artifact store.

use super::{read_workspace, short};
use crate::args::{GlobalArgs, VerifyArgs};
use crate::reporter::Reporter;
use kiln_artifacts::Store;
use kiln_diagnostics::{Error, Kind, Result};
use std::process::ExitCode;

pub(crate) fn verify(g: &GlobalArgs, args: &VerifyArgs, r: &Reporter) -> Result<ExitCode> {
    super::warn_deprecated_out(&args.store, r);
    // Without `--artifact-dir` the store is the workspace's; with it, no workspace
    // is needed.
    let root = match args.store.dir().0 {
        Some(dir) => dir,
        // The store's place is a setting: read from the manifests, cargo not run.
        None => read_workspace(&args.manifest, g.flags())?
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
        .hint("run `kiln build` first, or pass `--artifact-dir DIR` to verify another store"));
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
    // Artifacts, not problems: one binary can have several.
    let failed: std::collections::BTreeSet<&str> =
        report.problems.iter().map(|p| p.path.as_str()).collect();
    let problems = match report.problems.len() {
        1 => "1 problem".to_string(),
        n => format!("{n} problems"),
    };
    Err(Error::new(
        Kind::VerifyFailed,
        format!(
            "{} of {} artifacts failed verification ({problems})",
            failed.len(),
            report.checked
        ),
    )
    .hint("run `kiln build` to rebuild them; do not ship this store"))
}
