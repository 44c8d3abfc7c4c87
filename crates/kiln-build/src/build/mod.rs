//! Running a plan: what the cache lacks is built, the rest restored, and everything
//! installed into the store at once.
//!
//! One room per job, each with the [`BuildContext`] every room needs:
//! - `cargo`: running the plan's cargo invocations (the [`CargoRunner`]), OOM retries;
//! - `monitor`: memory, CPU and timings while cargo runs; kiln's sccache server;
//! - `native`: native libraries restored from the caches or built beside cargo;
//! - `about`: what kiln links into each binary (audit section, mimalloc) and writes
//!   beside it (SBOMs);
//! - `store`: caching what was built and the records of the artifacts;
//! - `prepare`: the target dir's lock and owner, rustup targets, backends.

mod about;
mod cargo;
mod monitor;
mod native;
mod prepare;
mod process;
mod store;
#[cfg(test)]
mod tests;

pub(crate) use cargo::{Built, CargoRunner};
pub(crate) use monitor::{Clock, SystemClock};
pub use native::native_entries;
pub(crate) use process::ProcessRunner;

pub(crate) use about::About;
pub(crate) use monitor::Monitor;

use crate::analysis::{analyze, UnitPlan, UnitState};
use crate::observer::Observer;
use crate::plan::Plan;
use kiln_artifacts::Store;
use kiln_diagnostics::Result;
use kiln_local_cache::LocalCache;
use kiln_remote::{RemoteCache, RemoteStats};
use kiln_schema::ArtifactRecord;
use kiln_toolchain::Target;
use kiln_workspace::Workspace;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What a successful build produced.
#[derive(Debug)]
pub struct BuildOutcome {
    /// Every binary x target and what happened to it.
    pub units: Vec<UnitPlan>,
    /// Records of every artifact written, as in `checksums.json`.
    pub records: Vec<ArtifactRecord>,
    /// Wall time of the whole build.
    pub elapsed: Duration,
    /// What the remote cache did, when one is configured.
    pub remote: Option<RemoteStats>,
    /// Every cargo invocation, measured.
    pub steps: Vec<kiln_metrics::StepMetrics>,
    /// Memory of the whole process tree over the build.
    pub samples: Vec<kiln_metrics::Sample>,
    /// How many times work was held back near the memory budget.
    pub throttled: usize,
    /// What kiln's sccache server did in this build, when kiln ran it.
    pub sccache: Option<crate::sccache::SccacheCounts>,
    /// Native libraries built or restored for this build.
    pub provisioning: Vec<kiln_metrics::ProvisionMetrics>,
}

/// What every room of a build needs: the workspace, the plan, where things go, who
/// hears about it, and how cargo is run.
pub(crate) struct BuildContext<'a> {
    pub(crate) ws: &'a Workspace,
    pub(crate) plan: &'a Plan,
    pub(crate) store: &'a Store,
    cache: Option<&'a LocalCache>,
    /// Set when the target dir turned out to be another checkout's: nothing built
    /// now may be cached.
    cache_off: AtomicBool,
    pub(crate) remote: Option<&'a RemoteCache>,
    pub(crate) observer: &'a dyn Observer,
    pub(crate) runner: &'a dyn CargoRunner,
    pub(crate) monitor: Monitor<'a>,
    pub(crate) about: About,
}

impl<'a> BuildContext<'a> {
    /// The local cache, unless there is none or it was turned off for this build.
    pub(crate) fn cache(&self) -> Option<&'a LocalCache> {
        self.cache
            .filter(|_| !self.cache_off.load(Ordering::SeqCst))
    }

    fn turn_cache_off(&self) {
        self.cache_off.store(true, Ordering::SeqCst);
    }
}

/// One binary of a step for one target.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wanted<'a> {
    pub(crate) step: usize,
    pub(crate) bin: &'a str,
    pub(crate) target: &'a Target,
}

/// Builds what the cache lacks, restores the rest, and installs everything into
/// `store` at once. Nothing is installed unless every step succeeds.
pub fn execute(
    ws: &Workspace,
    plan: &Plan,
    store: &Store,
    cache: Option<&LocalCache>,
    remote: Option<&RemoteCache>,
    observer: &dyn Observer,
) -> Result<BuildOutcome> {
    execute_with(
        ws,
        plan,
        store,
        (cache, remote),
        observer,
        &ProcessRunner,
        &SystemClock::new(),
    )
}

/// [`execute`] with the cargo runner and the clock given (tests give fakes).
pub(crate) fn execute_with(
    ws: &Workspace,
    plan: &Plan,
    store: &Store,
    (cache, remote): (Option<&LocalCache>, Option<&RemoteCache>),
    observer: &dyn Observer,
    runner: &dyn CargoRunner,
    clock: &dyn Clock,
) -> Result<BuildOutcome> {
    let start = clock.now();
    store.prepare()?;
    let _cache_lock = cache.map(LocalCache::lock_shared).transpose()?;
    let cx = BuildContext {
        ws,
        plan,
        store,
        cache,
        cache_off: AtomicBool::new(false),
        remote,
        observer,
        runner,
        monitor: Monitor::start(plan, clock),
        about: About::new(ws, plan),
    };
    let all = every_unit(plan);
    // With no cached build of any unit, every unit is a miss whatever its key: start
    // cargo at once and compute the keys beside it, instead of before it (a remote
    // may hold them, though).
    let cold = remote.is_none_or(|r| !r.alive())
        && cache.is_none_or(|c| {
            all.iter().all(|w| {
                c.latest(&plan.steps[w.step].package, &w.target.build_target(), w.bin)
                    .is_none()
            })
        });
    cx.about.reset();
    let (analysis, built) = if cold {
        std::thread::scope(|s| {
            let cx = &cx;
            let analysis = s.spawn(move || {
                let a = analyze(ws, plan, store, cx.cache(), None, observer);
                let linked = cx
                    .about
                    .write_objects(a.as_ref().ok().map(|a| a.units.as_slice()), true);
                a.and_then(|a| linked.map(|_| a))
            });
            cx.about.relink_changed_objects(plan, &all);
            let built = cargo::build_units(cx, &all);
            (analysis.join().expect("analysis thread"), built)
        })
    } else {
        let analysis = analyze(ws, plan, store, cache, remote, observer);
        cx.about
            .write_objects(analysis.as_ref().ok().map(|a| a.units.as_slice()), false)?;
        let analysis = analysis?;
        let wanted: Vec<Wanted<'_>> = analysis
            .units
            .iter()
            .filter(|u| u.state == UnitState::Rebuild)
            .map(|u| Wanted {
                step: u.step,
                bin: &u.bin,
                target: &u.target,
            })
            .collect();
        cx.about.relink_changed_objects(plan, &wanted);
        let built = cargo::build_units(&cx, &wanted);
        (Ok(analysis), built)
    };
    let (analysis, (built, _target_lock)) = (analysis?, built?);
    let mut units = analysis.units.clone();
    if cold {
        units.iter_mut().for_each(|u| u.state = UnitState::Rebuild);
    }
    let (records, new_entries) = store::install(&cx, &analysis, &mut units, built)?;
    if let (Some(r), Some(c)) = (remote, cx.cache()) {
        if !new_entries.is_empty() {
            r.upload(&new_entries, &analysis.learned_ids(), c);
        }
    }
    let remote = remote.map(RemoteCache::stats);
    if let Some(cache) = cx.cache() {
        let hits = units
            .iter()
            .filter(|u| u.state != UnitState::Rebuild)
            .count() as u64;
        let used = remote.as_ref().map(|r| kiln_local_cache::RemoteUse {
            hits: r.hits,
            bytes_down: r.bytes_down,
            bytes_up: r.bytes_up,
        });
        cache.record_build(hits, units.len() as u64 - hits, used);
    }
    let m = cx.monitor.finish();
    Ok(BuildOutcome {
        units,
        records,
        elapsed: clock.now().saturating_sub(start),
        remote,
        steps: m.steps,
        samples: m.samples,
        throttled: m.throttled,
        sccache: m.sccache,
        provisioning: m.provisioning,
    })
}

/// The command `kiln build` runs for step `i` of `plan` when `units` (binary,
/// target) of it are to be built: the step narrowed to them. `None` when none is.
pub fn narrowed_step(
    ws: &Workspace,
    plan: &Plan,
    i: usize,
    units: &[(&str, &Target)],
) -> Option<crate::Step> {
    let wanted: Vec<Wanted<'_>> = units
        .iter()
        .map(|(bin, target)| Wanted {
            step: i,
            bin,
            target,
        })
        .collect();
    cargo::narrowed(plan, ws, i, &wanted)
}

/// Every binary of every step for every target.
fn every_unit(plan: &Plan) -> Vec<Wanted<'_>> {
    plan.steps
        .iter()
        .enumerate()
        .flat_map(|(step, s)| {
            s.targets
                .iter()
                .flat_map(move |target| s.bins.iter().map(move |bin| Wanted { step, bin, target }))
        })
        .collect()
}

/// The units' steps and targets whose build scripts ran: each learns once.
fn learned_targets<'u>(built: &[Built], units: &'u [UnitPlan]) -> BTreeSet<(usize, &'u Target)> {
    built
        .iter()
        .filter_map(|b| {
            units
                .iter()
                .find(|u| u.step == b.step && u.target.triple == b.triple)
        })
        .map(|u| (u.step, &u.target))
        .collect()
}
