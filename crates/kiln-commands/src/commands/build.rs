//! `kiln build` and `kiln plan`.

use super::{load_workspace, open_cache, short};
use crate::args::{BuildArgs, BuildOptions, GlobalArgs};
use crate::reporter::Reporter;
use kiln_artifacts::Store;
use kiln_build::{analyze, execute, NativeLib, Plan, UnitPlan, UnitState};
use kiln_diagnostics::Result;
use kiln_local_cache::LocalCache;
use kiln_schema::{Counts, Event, UnitGroup, Warning};
use kiln_workspace::Workspace;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

pub(crate) fn build(g: &GlobalArgs, args: &BuildArgs, r: &Reporter) -> Result<ExitCode> {
    build_with(g, &args.options, args.metrics_out.as_deref(), r)
}

/// `kiln build` with these options (also what `kiln image --build` runs first).
pub(crate) fn build_with(
    g: &GlobalArgs,
    options: &BuildOptions,
    metrics_out: Option<&std::path::Path>,
    r: &Reporter,
) -> Result<ExitCode> {
    let result = run_build(g, options, metrics_out, r);
    // From the process's start to its end (see `crate::elapsed_secs`).
    let elapsed_secs = crate::elapsed_secs();
    let finished = match result {
        Ok(summary) => Ok(Event::Finished {
            success: true,
            elapsed_secs,
            artifacts: summary.artifacts,
            error: None,
            counts: summary.counts,
            store: summary.store,
            cached: summary.cached,
        }),
        Err(e) => {
            // Machines get the failure as the last event too; people get the error.
            r.emit(&Event::Finished {
                success: false,
                elapsed_secs,
                artifacts: 0,
                error: Some(e.to_string()),
                counts: Counts::default(),
                store: String::new(),
                cached: false,
            });
            Err(e)
        }
    };
    r.emit(&finished?);
    Ok(ExitCode::SUCCESS)
}

/// What a successful build reports at the end.
struct Summary {
    artifacts: usize,
    counts: Counts,
    store: String,
    cached: bool,
}

type Prepared = (Workspace, Plan, Store, Option<LocalCache>);

/// What `build` and `plan` share: the workspace, the resolved request, its plan, the
/// store and the cache.
fn prepare(g: &GlobalArgs, args: &BuildOptions, r: &Reporter) -> Result<Prepared> {
    super::warn_deprecated_out(&args.store, r);
    if let Some(manifest) = kiln_workspace::declared_root(args.manifest.manifest_path.as_deref()) {
        kiln_build::start_probes(manifest.parent().unwrap_or(Path::new("")));
    }
    let mut ws = load_workspace(&args.manifest, args.flags(g))?;
    let sel = kiln_build::select(&mut ws, &args.request())?;
    let cache = if args.no_cache {
        None
    } else {
        // A cache that can't be used costs speed, never the build.
        match open_cache(&ws) {
            Ok(c) => Some(c),
            Err(e) => {
                r.emit(&Event::Warning(Warning::CacheUnusable {
                    error: e.detail(),
                }));
                None
            }
        }
    };
    let plan = Plan::new(&ws, &sel, &kiln_build::native_root(&ws, cache.as_ref()))?;
    let store = Store::new(&sel.out);
    Ok((ws, plan, store, cache))
}

fn run_build(
    g: &GlobalArgs,
    args: &BuildOptions,
    metrics_out: Option<&std::path::Path>,
    r: &Reporter,
) -> Result<Summary> {
    let (ws, plan, store, cache) = prepare(g, args, r)?;
    let remote = if cache.is_some() {
        super::open_remote(&ws, r)?
    } else {
        None
    };
    let outcome = execute(&ws, &plan, &store, cache.as_ref(), remote.as_ref(), r)?;
    let sccache = outcome.sccache;
    if let Some(s) = sccache.filter(|s| s.hits + s.misses + s.remote + s.local > 0) {
        r.emit(&Event::SccacheStats {
            hits: s.hits,
            misses: s.misses,
            remote: s.remote,
            fell_back: s.fell_back,
            local: s.local,
        });
    }
    let state = |u: &UnitPlan, s: UnitState| u.state == s;
    for rec in &outcome.records {
        let built = outcome.units.iter().any(|u| {
            state(u, UnitState::Rebuild) && rec.binary == u.bin && rec.target == u.target.triple
        });
        r.emit(&Event::ArtifactWritten {
            artifact: Box::new(rec.clone()),
            built,
        });
    }
    let count = |s: UnitState| outcome.units.iter().filter(|u| u.state == s).count();
    let counts = Counts {
        built: count(UnitState::Rebuild),
        restored: count(UnitState::Restore),
        fresh: count(UnitState::Fresh),
    };
    for s in [UnitState::Fresh, UnitState::Restore] {
        let units = grouped(&outcome.units, s);
        if !units.is_empty() {
            r.emit(&Event::Units { state: s, units });
        }
    }
    if let Some(rs) = &outcome.remote {
        report_remote(rs, r);
    }
    let mut metrics = metrics(&plan, &outcome, &store);
    metrics.sccache_hits = sccache.map(|s| s.hits);
    metrics.sccache_misses = sccache.map(|s| s.misses);
    // Where compiles ran, once a build farm took part.
    let dist = sccache.filter(|s| s.remote + s.fell_back > 0);
    metrics.sccache_remote = dist.map(|s| s.remote);
    metrics.sccache_fell_back = dist.map(|s| s.fell_back);
    metrics.sccache_local = dist.map(|s| s.local);
    let dir = metrics_out.map_or_else(|| ws.target_dir.join("kiln/metrics"), Into::into);
    if let Err(e) = metrics.write(&dir) {
        r.emit(&Event::Warning(Warning::MetricsNotWritten {
            error: e.to_string(),
        }));
    }
    if !outcome.steps.is_empty() {
        r.emit(&Event::BuildResources {
            peak_bytes: metrics.peak_bytes,
            budget_bytes: metrics.budget_bytes,
            jobs: metrics.jobs,
            throttled: outcome.throttled,
            retries: metrics.retries,
            cpu_secs: metrics.cpu_secs,
        });
    }
    Ok(Summary {
        artifacts: outcome.records.len(),
        counts,
        store: short(store.root()),
        cached: cache.is_some(),
    })
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
            let built = u.state == UnitState::Rebuild;
            // The binary's own figures: its crate's compile and link on its target.
            let own = step
                .filter(|_| built)
                .and_then(|s| Some((s, s.bin_timing(&u.bin, &u.target.platform())?)));
            kiln_metrics::UnitMetrics {
                package: u.package.clone(),
                binary: u.bin.clone(),
                target: u.target.triple.clone(),
                state: match u.state {
                    UnitState::Fresh => "fresh",
                    UnitState::Restore => "restore",
                    UnitState::Rebuild => "build",
                }
                .into(),
                cache_hit: !built,
                wall_secs: step.filter(|_| built).map_or(0.0, |s| s.wall_secs),
                cpu_secs: step.filter(|_| built).map_or(0.0, |s| s.cpu_secs),
                peak_bytes: step.filter(|_| built).map_or(0, |s| s.peak_bytes),
                size_bytes: checksums
                    .artifacts
                    .iter()
                    .find(|a| a.binary == u.bin && a.target == u.target.triple)
                    .map_or(0, |a| a.size),
                own_secs: own.map(|(_, c)| c.duration),
                own_peak_bytes: own.and_then(|(s, c)| {
                    let from = s.offset_secs + c.start;
                    kiln_metrics::BuildMetrics::peak_between(
                        &outcome.samples,
                        from,
                        from + c.duration,
                    )
                }),
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
        budget_source: plan.resources.budget.source.to_string(),
        peak_bytes: outcome.samples.iter().map(|s| s.rss).max().unwrap_or(0),
        retries: outcome.steps.iter().filter(|s| s.retried).count() as u32,
        jobs: plan.resources.jobs,
        cache_hits: hits,
        cache_misses: units.len() as u32 - hits,
        sccache_hits: None,
        sccache_misses: None,
        sccache_remote: None,
        sccache_fell_back: None,
        sccache_local: None,
        provisioning: outcome.provisioning.clone(),
        units,
        steps: outcome.steps.clone(),
        samples: outcome.samples.clone(),
    }
}

/// What the remote cache did: its warnings, then why it stopped or what it moved.
fn report_remote(rs: &kiln_remote::RemoteStats, r: &Reporter) {
    for w in &rs.warnings {
        r.emit(&Event::Warning(w.clone()));
    }
    if let Some(why) = &rs.skipped {
        if rs.failed_at_open {
            // Already said when it was opened.
            return;
        }
        r.emit(&Event::Warning(Warning::RemoteFailed {
            remote: rs.remote.clone(),
            why: why.clone(),
        }));
    }
    r.emit(&Event::RemoteUsed {
        remote: rs.remote.clone(),
        hits: rs.hits,
        bytes_down: rs.bytes_down,
        uploaded: rs.uploaded,
        bytes_up: rs.bytes_up,
    });
}

/// Each binary in `state` with its architectures.
fn grouped(units: &[UnitPlan], state: UnitState) -> Vec<UnitGroup> {
    let mut by_bin: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for u in units.iter().filter(|u| u.state == state) {
        by_bin
            .entry(&u.bin)
            .or_default()
            .push(u.target.arch.clone());
    }
    by_bin
        .into_iter()
        .map(|(b, arches)| UnitGroup {
            binary: b.into(),
            arches,
        })
        .collect()
}

pub(crate) fn plan(g: &GlobalArgs, args: &BuildOptions, r: &Reporter) -> Result<ExitCode> {
    let (ws, plan, store, cache) = prepare(g, args, r)?;
    let analysis = analyze(&ws, &plan, &store, cache.as_ref(), None, r)?;
    // One line per binary and state, with the architectures it covers.
    let mut lines: Vec<(String, UnitState, Vec<kiln_schema::Reason>, Vec<String>)> = Vec::new();
    for u in &analysis.units {
        match lines
            .iter_mut()
            .find(|(b, s, why, _)| *b == u.bin && *s == u.state && *why == u.reasons)
        {
            Some((_, _, _, arches)) => arches.push(u.target.arch.clone()),
            None => lines.push((
                u.bin.clone(),
                u.state,
                u.reasons.clone(),
                vec![u.target.arch.clone()],
            )),
        }
    }
    lines.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    for (binary, state, because, arches) in lines {
        r.emit(&Event::PlanUnit {
            binary,
            state,
            arches,
            because,
        });
    }
    // Each step's command as `kiln build` will run it: narrowed to the binaries and
    // targets to build (the whole step when none is cached).
    for (i, step) in plan.steps.iter().enumerate() {
        let wanted: Vec<(&str, &kiln_toolchain::Target)> = analysis
            .units
            .iter()
            .filter(|u| u.step == i && u.state == UnitState::Rebuild)
            .map(|u| (u.bin.as_str(), &u.target))
            .collect();
        let runs =
            kiln_build::narrowed_step(&ws, &plan, i, &wanted).unwrap_or_else(|| step.clone());
        r.emit(&Event::PlanStep {
            package: step.package.clone(),
            bins: step.bins.clone(),
            targets: step.targets.iter().map(|t| t.triple.clone()).collect(),
            backend: step.invocation.backend.kind(),
            c_deps: step.c_deps.clone(),
            workspace_c_deps: plan.workspace_c_deps.clone(),
            command: runs.invocation.display(),
            overrides: step.invocation.overrides.clone(),
            native: native_records(&step.native),
        });
        for need in &step.host_tools {
            r.emit(&host_tool_event(&step.package, need));
        }
    }
    let res = &plan.resources;
    r.emit(&Event::PlanResources {
        budget_bytes: res.budget.bytes,
        budget_source: res.budget.source.clone(),
        jobs: res.jobs,
        limited_by: res.limited_by.clone(),
        per_job_bytes: res.per_job,
        estimate_source: res.estimate_source,
    });
    Ok(ExitCode::SUCCESS)
}

/// The native libraries kiln provides, as records.
pub(crate) fn native_records(native: &[NativeLib]) -> Vec<kiln_schema::NativeRecord> {
    native
        .iter()
        .map(|n| kiln_schema::NativeRecord {
            library: n.provision.library.to_string(),
            krate: n.provision.krate.to_string(),
            target: n.target.triple.clone(),
            chain: n.provision.chain.clone(),
            ready: kiln_native::is_intact(&n.prefix),
        })
        .collect()
}

/// A host tool a package's build needs, as an event.
pub(crate) fn host_tool_event(package: &str, need: &kiln_build::HostToolNeed) -> Event {
    Event::HostTool {
        package: package.to_string(),
        tool: need.tool.name.clone(),
        by: need.by.clone(),
        state: match &need.found {
            Some(f) => kiln_schema::ToolState::Found {
                version: f.version.clone(),
            },
            None => kiln_schema::ToolState::Missing,
        },
        required: need.tool.required,
        fix: need.found.is_none().then(|| need.fix()),
    }
}
