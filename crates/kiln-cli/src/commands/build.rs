//! `kiln build` and `kiln plan`.

use super::{load_workspace, open_cache, short};
use crate::args::{BuildArgs, Cli};
use crate::reporter::Reporter;
use kiln_artifacts::Store;
use kiln_build::{analyze, execute, NativeLib, Plan, UnitPlan, UnitState};
use kiln_cache::LocalCache;
use kiln_diagnostics::Result;
use kiln_schema::Event;
use kiln_workspace::Workspace;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

pub(crate) fn build(cli: &Cli, args: &BuildArgs, r: &Reporter) -> Result<ExitCode> {
    let start = Instant::now();
    let result = run_build(cli, args, r);
    let elapsed_secs = start.elapsed().as_secs_f64();
    let finished = match &result {
        Ok(n) => Event::Finished {
            success: true,
            elapsed_secs,
            artifacts: *n,
            error: None,
        },
        Err(e) => Event::Finished {
            success: false,
            elapsed_secs,
            artifacts: 0,
            error: Some(e.to_string()),
        },
    };
    r.event(&finished);
    result.map(|_| ExitCode::SUCCESS)
}

type Prepared = (Workspace, Plan, Store, Option<LocalCache>);

/// What `build` and `plan` share: the workspace, the resolved request, its plan, the
/// store and the cache.
fn prepare(cli: &Cli, args: &BuildArgs) -> Result<Prepared> {
    let ws = load_workspace(cli)?;
    let sel = args.request().resolve(&ws)?;
    let cache = if args.no_cache {
        None
    } else {
        Some(open_cache(&ws)?)
    };
    let plan = Plan::new(&ws, &sel, &kiln_build::native_root(&ws, cache.as_ref()))?;
    let store = Store::new(&sel.out);
    Ok((ws, plan, store, cache))
}

fn run_build(cli: &Cli, args: &BuildArgs, r: &Reporter) -> Result<usize> {
    let (ws, plan, store, cache) = prepare(cli, args)?;
    let remote = if cache.is_some() {
        super::open_remote(&ws, r)?
    } else {
        None
    };
    let outcome = execute(&ws, &plan, &store, cache.as_ref(), remote.as_ref(), r)?;
    let sccache = outcome.sccache;
    if let Some((hits, misses)) = sccache.filter(|(h, m)| h + m > 0) {
        r.info(
            "sccache",
            &format!(
                "{hits} hits, {misses} misses over {} compiler calls",
                hits + misses
            ),
        );
    }
    for rec in &outcome.records {
        r.event(&Event::ArtifactWritten {
            artifact: Box::new(rec.clone()),
        });
    }
    let count = |s: UnitState| outcome.units.iter().filter(|u| u.state == s).count();
    let (fresh, restored, built) = (
        count(UnitState::Fresh),
        count(UnitState::Restore),
        count(UnitState::Build),
    );
    if fresh > 0 {
        r.status("Fresh", &grouped(&outcome.units, UnitState::Fresh));
    }
    if restored > 0 {
        r.status(
            "Restored",
            &format!(
                "{restored} binaries from cache: {}",
                grouped(&outcome.units, UnitState::Restore)
            ),
        );
    }
    for rec in outcome.records.iter().filter(|rec| {
        outcome.units.iter().any(|u| {
            u.state == UnitState::Build && rec.binary == u.bin && rec.target == u.target.triple
        })
    }) {
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
    if let Some(rs) = &outcome.remote {
        report_remote(rs, r);
    }
    let total = outcome.units.len();
    let cache_note = if cache.is_some() {
        format!(" [cache: {}/{total} hits]", fresh + restored)
    } else {
        String::new()
    };
    let mut metrics = metrics(&plan, &outcome, &store);
    metrics.sccache_hits = sccache.map(|s| s.0);
    metrics.sccache_misses = sccache.map(|s| s.1);
    let dir = args
        .metrics_out
        .clone()
        .unwrap_or_else(|| ws.target_dir.join("kiln/metrics"));
    if let Err(e) = metrics.write(&dir) {
        r.warn(&format!("could not write the build metrics: {e}"));
    }
    if !outcome.steps.is_empty() {
        let retries = if metrics.retries > 0 {
            format!(", {} retried after an OOM kill", metrics.retries)
        } else {
            String::new()
        };
        r.info(
            "Memory",
            &format!(
                "peak {} of a {} budget, {} job(s){}{retries}; CPU {:.1}s; `kiln report` for the timeline",
                human_size(metrics.peak_bytes),
                human_size(metrics.budget_bytes),
                metrics.jobs,
                if outcome.throttled > 0 {
                    format!(", work held back {} time(s) near the budget", outcome.throttled)
                } else {
                    String::new()
                },
                metrics.cpu_secs
            ),
        );
    }
    r.status(
        "Finished",
        &format!(
            "{total} binaries ({built} built, {restored} restored, {fresh} fresh) in {:.2}s into {}{cache_note}",
            outcome.elapsed.as_secs_f64(),
            short(store.root())
        ),
    );
    Ok(outcome.records.len())
}

/// The metrics of a finished build.
fn metrics(
    plan: &Plan,
    outcome: &kiln_build::BuildOutcome,
    store: &Store,
) -> kiln_metrics::BuildMetrics {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .saturating_sub(outcome.elapsed.as_secs());
    let checksums = store.read_checksums().unwrap_or_default();
    let units: Vec<kiln_metrics::UnitMetrics> = outcome
        .units
        .iter()
        .map(|u| {
            let step = outcome
                .steps
                .iter()
                .rev()
                .find(|s| s.package == u.package && s.targets.contains(&u.target.triple));
            let built = u.state == UnitState::Build;
            kiln_metrics::UnitMetrics {
                package: u.package.clone(),
                binary: u.bin.clone(),
                target: u.target.triple.clone(),
                state: u.state.label().replace("rebuild", "build"),
                cache_hit: !built,
                wall_secs: step.filter(|_| built).map_or(0.0, |s| s.wall_secs),
                cpu_secs: step.filter(|_| built).map_or(0.0, |s| s.cpu_secs),
                peak_bytes: step.filter(|_| built).map_or(0, |s| s.peak_bytes),
                size_bytes: checksums
                    .artifacts
                    .iter()
                    .find(|a| a.binary == u.bin && a.target == u.target.triple)
                    .map_or(0, |a| a.size),
            }
        })
        .collect();
    let hits = units.iter().filter(|u| u.cache_hit).count() as u32;
    let host = format!(
        "{}/{}, {} cores, {}",
        std::env::consts::OS,
        std::env::consts::ARCH,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        kiln_metrics::host::hostname()
    );
    kiln_metrics::BuildMetrics {
        schema_version: kiln_metrics::SCHEMA_VERSION,
        kiln_version: env!("CARGO_PKG_VERSION").into(),
        host,
        started,
        wall_secs: outcome.elapsed.as_secs_f64(),
        cpu_secs: outcome.steps.iter().map(|s| s.cpu_secs).sum(),
        budget_bytes: plan.resources.budget.bytes,
        budget_source: plan.resources.budget.source.clone(),
        peak_bytes: outcome.samples.iter().map(|s| s.rss).max().unwrap_or(0),
        retries: outcome.steps.iter().filter(|s| s.retried).count() as u32,
        jobs: plan.resources.jobs,
        cache_hits: hits,
        cache_misses: units.len() as u32 - hits,
        sccache_hits: None,
        sccache_misses: None,
        provisioning: outcome.provisioning.clone(),
        units,
        steps: outcome.steps.clone(),
        samples: outcome.samples.clone(),
    }
}

/// One line on what the remote cache did; its warnings and why it was skipped.
fn report_remote(rs: &kiln_remote::RemoteStats, r: &Reporter) {
    for w in &rs.warnings {
        r.warn(w);
    }
    if let Some(why) = &rs.skipped {
        if rs.hits == 0 && rs.uploaded == 0 {
            // Already said when it was opened, unless it failed later.
            r.info("Remote", &format!("{} skipped ({why})", rs.remote));
            return;
        }
        r.warn(&format!(
            "remote cache {} failed during the build: {why}",
            rs.remote
        ));
    }
    r.info(
        "Remote",
        &format!(
            "{}: {} restored ({} down), {} uploaded ({} up)",
            rs.remote,
            rs.hits,
            human_size(rs.bytes_down),
            rs.uploaded,
            human_size(rs.bytes_up)
        ),
    );
}

/// `chronik-server (amd64, arm64), chronik-cli (amd64)` for the units in `state`.
fn grouped(units: &[UnitPlan], state: UnitState) -> String {
    let mut by_bin: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for u in units.iter().filter(|u| u.state == state) {
        by_bin.entry(&u.bin).or_default().push(&u.target.arch);
    }
    by_bin
        .iter()
        .map(|(b, a)| format!("{b} ({})", a.join(", ")))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn plan(cli: &Cli, args: &BuildArgs, r: &Reporter) -> Result<ExitCode> {
    let (ws, plan, store, cache) = prepare(cli, args)?;
    let analysis = analyze(&ws, &plan, &store, cache.as_ref(), None, r)?;
    // One line per binary and state, with the architectures it covers.
    let mut lines: BTreeMap<(String, &str, Vec<String>), Vec<&str>> = BTreeMap::new();
    for u in &analysis.units {
        lines
            .entry((u.bin.clone(), u.state.label(), u.reasons.clone()))
            .or_default()
            .push(&u.target.arch);
    }
    for ((bin, state, reasons), arches) in &lines {
        if r.is_json() {
            r.event(&Event::PlanUnit {
                binary: bin.clone(),
                state: state.to_string(),
                arches: arches.iter().map(|a| a.to_string()).collect(),
                because: reasons.clone(),
            });
        } else {
            let because = if reasons.is_empty() {
                String::new()
            } else {
                format!("   because {}", reasons.join(", "))
            };
            r.line_plain(&format!(
                "   {state:<8}{bin:<24}{}{because}",
                arches.join(",")
            ));
        }
    }
    for step in &plan.steps {
        let why = match (step.c_deps.is_empty(), plan.workspace_c_deps.is_empty()) {
            (false, _) => format!("compiles C via {}", step.c_deps.join(", ")),
            (true, true) => "pure Rust".to_string(),
            (true, false) => format!(
                "pure Rust, but the workspace compiles C via {}: one backend keeps shared crates built once",
                plan.workspace_c_deps.join(", ")
            ),
        };
        let arches: Vec<&str> = step.targets.iter().map(|t| t.arch.as_str()).collect();
        if r.is_json() {
            r.event(&Event::PlanStep {
                package: step.package.clone(),
                bins: step.bins.clone(),
                targets: step.targets.iter().map(|t| t.triple.clone()).collect(),
                backend: step.invocation.backend.name().into(),
                c_deps: step.c_deps.clone(),
                command: step.invocation.display(),
                overrides: step.invocation.overrides.clone(),
                native: step
                    .native
                    .iter()
                    .map(|n| kiln_schema::NativeRecord {
                        library: n.provision.library.to_string(),
                        krate: n.provision.krate.to_string(),
                        target: n.target.triple.clone(),
                        chain: n.provision.chain.clone(),
                    })
                    .collect(),
            });
            continue;
        }
        r.info(
            "Backend",
            &format!(
                "{} ({}) with {} ({why})",
                step.package,
                arches.join(", "),
                step.invocation.backend.name()
            ),
        );
        for o in &step.invocation.overrides {
            r.info("Override", &o.to_string());
        }
        report_native(r, &step.native);
        if r.verbose() {
            r.info("Command", &step.invocation.display());
        }
    }
    let res = &plan.resources;
    r.event(&Event::PlanResources {
        budget_bytes: res.budget.bytes,
        budget_source: res.budget.source.clone(),
        jobs: res.jobs,
        limited_by: res.limited_by.clone(),
        per_job_bytes: res.per_job,
        estimate_source: res.estimate_source.clone(),
    });
    if !r.is_json() {
        r.info(
            "Memory",
            &format!(
                "budget {} ({}); {} job(s) at a time (limited by {}; ~{} per job, {}); cargo runs each package's targets in parallel under kiln's jobserver",
                human_size(res.budget.bytes),
                res.budget.source,
                res.jobs,
                res.limited_by,
                human_size(res.per_job),
                res.estimate_source
            ),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per native library kiln provides: which, for what, and who needs it.
pub(crate) fn report_native(r: &Reporter, native: &[NativeLib]) {
    for n in native {
        let state = if n.prefix.join("lib").is_dir() {
            "built already"
        } else {
            "kiln builds it once"
        };
        r.info(
            "Native",
            &format!(
                "{} for {} ({state}), for {} via {}",
                n.provision.library,
                n.target.arch,
                n.provision.krate,
                n.provision.chain.join(" -> ")
            ),
        );
    }
}

pub(crate) fn human_size(bytes: u64) -> String {
    kiln_metrics::human_bytes(bytes)
}
