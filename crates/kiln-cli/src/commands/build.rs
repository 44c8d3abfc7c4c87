//! `kiln build` and `kiln plan`.

use super::{load_workspace, short};
use crate::args::{BuildArgs, Cli};
use crate::reporter::Reporter;
use kiln_artifacts::Store;
use kiln_build::{execute, Plan};
use kiln_diagnostics::Result;
use kiln_schema::Event;
use std::process::ExitCode;
use std::time::Instant;

pub(crate) fn build(cli: &Cli, args: &BuildArgs, r: &Reporter) -> Result<ExitCode> {
    let start = Instant::now();
    let result = run_build(cli, args, r);
    let finished = match &result {
        Ok(n) => Event::Finished {
            success: true,
            elapsed_secs: start.elapsed().as_secs_f64(),
            artifacts: *n,
            error: None,
        },
        Err(e) => Event::Finished {
            success: false,
            elapsed_secs: start.elapsed().as_secs_f64(),
            artifacts: 0,
            error: Some(e.to_string()),
        },
    };
    r.event(&finished);
    result.map(|_| ExitCode::SUCCESS)
}

fn run_build(cli: &Cli, args: &BuildArgs, r: &Reporter) -> Result<usize> {
    let ws = load_workspace(cli)?;
    let sel = args.request().resolve(&ws)?;
    let plan = Plan::new(&ws, &sel)?;
    let store = Store::new(&sel.out);
    let outcome = execute(&ws, &plan, &store, r)?;
    for rec in &outcome.records {
        r.event(&Event::ArtifactWritten {
            artifact: Box::new(rec.clone()),
        });
        r.status(
            "Installed",
            &format!(
                "{} ({}, sha256 {})",
                rec.path,
                human_size(rec.size),
                &rec.sha256[..12]
            ),
        );
    }
    let arches: Vec<&str> = sel.targets.iter().map(|t| t.arch.as_str()).collect();
    r.status(
        "Finished",
        &format!(
            "{} binaries for {} in {:.2}s into {}",
            outcome.records.len(),
            arches.join(", "),
            outcome.elapsed.as_secs_f64(),
            short(store.root())
        ),
    );
    Ok(outcome.records.len())
}

pub(crate) fn plan(cli: &Cli, args: &BuildArgs, r: &Reporter) -> Result<ExitCode> {
    let ws = load_workspace(cli)?;
    let sel = args.request().resolve(&ws)?;
    let plan = Plan::new(&ws, &sel)?;
    for step in &plan.steps {
        let arches: Vec<&str> = step.targets.iter().map(|t| t.arch.as_str()).collect();
        let why = if step.c_deps.is_empty() {
            "pure Rust".to_string()
        } else {
            format!("compiles C via {}", step.c_deps.join(", "))
        };
        if r.is_json() {
            let v = serde_json::json!({
                "reason": "plan-step",
                "package": step.package,
                "bins": step.bins,
                "targets": step.targets.iter().map(|t| &t.triple).collect::<Vec<_>>(),
                "backend": step.invocation.backend.name(),
                "c_deps": step.c_deps,
                "command": step.invocation.display(),
                "overrides": step.invocation.overrides,
            });
            println!("{v}");
            continue;
        }
        r.status(
            "Build",
            &format!(
                "{} [{}] for {} with {} ({why})",
                step.package,
                step.bins.join(", "),
                arches.join(", "),
                step.invocation.backend.name()
            ),
        );
        for o in &step.invocation.overrides {
            r.info("Override", o);
        }
        if r.verbose() {
            r.info("Command", &step.invocation.display());
        }
    }
    r.info(
        "Store",
        &format!(
            "{} binaries into {}",
            plan.artifact_count(),
            short(&sel.out)
        ),
    );
    Ok(ExitCode::SUCCESS)
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.0} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
