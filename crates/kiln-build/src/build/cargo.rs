//! Running the plan's cargo invocations: one narrowed to what the cache missed per
//! step, under kiln's jobserver, retried once with half the jobs when a compiler is
//! killed (most likely out of memory). How cargo is started is a [`CargoRunner`], so
//! the retry and the bookkeeping are tested with a fake one.

use super::{native, prepare, BuildContext, Wanted};
use crate::observer::Observer;
use crate::plan::{Plan, Step, SCCACHE_PORT};
use kiln_diagnostics::{Error, Result};
use kiln_schema::{Event, Note, Warning};
use kiln_toolchain::Target;
use std::path::{Path, PathBuf};

/// A binary cargo produced, before it is installed.
#[derive(Debug, Clone)]
pub(crate) struct Built {
    /// Index of its step in the plan.
    pub(crate) step: usize,
    /// The binary.
    pub(crate) bin: String,
    /// The target triple it was built for.
    pub(crate) triple: String,
    /// Where cargo put it.
    pub(crate) path: PathBuf,
}

/// How a cargo invocation failed.
#[derive(Debug)]
pub(crate) enum StepError {
    /// A compiler was killed by signal 9 (most likely out of memory): worth one retry
    /// with fewer jobs.
    Killed(Error),
    /// Any other failure.
    Failed(Error),
}

impl StepError {
    fn into_error(self) -> Error {
        match self {
            StepError::Killed(e) | StepError::Failed(e) => e,
        }
    }
}

impl From<Error> for StepError {
    fn from(e: Error) -> Self {
        StepError::Failed(e)
    }
}

/// One cargo invocation to run: the step (its invocation is the whole command), its
/// index in the plan, and the jobserver it takes its parallelism from.
pub(crate) struct CargoCall<'a> {
    pub(crate) root: &'a Path,
    pub(crate) target_dir: &'a Path,
    pub(crate) index: usize,
    pub(crate) step: &'a Step,
    /// The invocation's environment with what is known only now (the sccache port).
    pub(crate) env: Vec<(String, String)>,
    pub(crate) jobserver: &'a jobserver::Client,
    pub(crate) observer: &'a dyn Observer,
    /// The crates cargo said it finished, and when: what places its timings on
    /// their platforms.
    pub(crate) marks: &'a std::sync::Mutex<Vec<kiln_metrics::CrateMark>>,
}

/// Starts cargo for one step and reports what it built.
pub(crate) trait CargoRunner: Sync {
    /// Runs `call` to the end.
    fn run(&self, call: &CargoCall<'_>) -> std::result::Result<Vec<Built>, StepError>;
}

/// Runs cargo for `wanted`: provisions what native libraries need building (beside
/// cargo when the plan has a gate), then one narrowed invocation per step.
///
/// Cargo serializes builds in one target dir, but between its end and our copy out of
/// `target/` another kiln could overwrite the binaries: the returned lock on the
/// target dir must be held until the binaries are installed.
pub(super) fn build_units(
    cx: &BuildContext<'_>,
    wanted: &[Wanted<'_>],
) -> Result<(Vec<Built>, Option<std::fs::File>)> {
    if wanted.is_empty() {
        return Ok((Vec::new(), None));
    }
    let lock = prepare::lock_target_dir(&cx.plan.target_dir)?;
    let port = cx.monitor.start_sccache(cx);
    if let Some(other) = prepare::claim_target_dir(cx.ws, cx.plan) {
        cx.observer.warn(Warning::SharedTargetDir {
            target_dir: cx.plan.target_dir.display().to_string(),
            other: other.display().to_string(),
        });
        cx.turn_cache_off();
    }
    prepare::host_tools(cx, wanted)?;
    prepare::toolchains(cx, wanted)?;
    if cx.ws.config.auditable != Some(false) && cx.ws.settings.rustc_wrapper {
        cx.observer.note(Note::NoAuditSection);
    }
    let pending = native::restore(cx, wanted);
    let gate = cx.plan.gate.as_ref();
    if gate.is_none() {
        native::provision(cx, &pending, false)?;
    }
    std::thread::scope(|scope| {
        // The gate's build scripts wait until provisioning beside cargo ends.
        let provisioner = gate.map(|g| {
            native::close_gate(g);
            scope.spawn(|| {
                let r = native::provision(cx, &pending, true);
                native::open_gate(g, r.is_ok());
                r
            })
        });
        let built = run_steps(cx, wanted, port);
        // A failed provisioning is the cause of cargo's failure: it is the error.
        if let Some(p) = provisioner {
            p.join().expect("provisioning thread")?;
        }
        Ok((built?, Some(lock)))
    })
}

/// The environment of `step`'s invocation with kiln's sccache server's port, or
/// without the port when the server didn't start (the wrapper then compiles locally).
fn resolved_env(step: &Step, port: Option<u16>) -> Vec<(String, String)> {
    step.invocation
        .env
        .iter()
        .filter_map(|(k, v)| match (v.as_str(), port) {
            (SCCACHE_PORT, Some(p)) => Some((k.clone(), p.to_string())),
            (SCCACHE_PORT, None) => None,
            _ => Some((k.clone(), v.clone())),
        })
        .collect()
}

/// The step `i` narrowed to the units of `wanted` in it, if any: what `kiln build`
/// runs for it (and `kiln plan` shows).
pub(crate) fn narrowed(
    plan: &Plan,
    cx_ws: &kiln_workspace::Workspace,
    i: usize,
    wanted: &[Wanted<'_>],
) -> Option<Step> {
    let step = &plan.steps[i];
    let mine: Vec<&Wanted<'_>> = wanted.iter().filter(|w| w.step == i).collect();
    if mine.is_empty() {
        return None;
    }
    let bins: Vec<String> = step
        .bins
        .iter()
        .filter(|b| mine.iter().any(|w| w.bin == *b))
        .cloned()
        .collect();
    let targets: Vec<Target> = step
        .targets
        .iter()
        .filter(|t| mine.iter().any(|w| w.target == *t))
        .cloned()
        .collect();
    Some(plan.narrow(cx_ws, step, &bins, &targets))
}

/// Runs cargo for `wanted`, one narrowed invocation per step, each measured.
pub(super) fn run_steps(
    cx: &BuildContext<'_>,
    wanted: &[Wanted<'_>],
    port: Option<u16>,
) -> Result<Vec<Built>> {
    let mut built = Vec::new();
    for i in 0..cx.plan.steps.len() {
        let Some(step) = narrowed(cx.plan, cx.ws, i, wanted) else {
            continue;
        };
        for o in &step.invocation.overrides {
            cx.observer.note(Note::Override { change: o.clone() });
        }
        let env = resolved_env(&step, port);
        cx.observer.event(Event::BuildStarted {
            targets: step.targets.iter().map(|t| t.triple.clone()).collect(),
            packages: vec![step.package.clone()],
            backend: step.invocation.backend.kind(),
            version: step.version.clone(),
            command: step.invocation.display_with(&env),
            crates: step.graph_size * step.targets.len(),
        });
        let measure = cx.monitor.step_started(i);
        let marks = std::sync::Mutex::new(Vec::new());
        // The local jobs the memory budget allows, plus the build farm's cores: a
        // compile sent there costs this machine a waiting process, not a rustc.
        let mut jobs = cx.plan.resources.jobs + cx.monitor.remote_slots();
        let mut retried = false;
        let outcome = loop {
            let client = cx
                .monitor
                .governor
                .client(jobs)
                .map_err(|e| Error::internal("failed to create a jobserver").with_source(e))?;
            let call = CargoCall {
                root: &cx.ws.root,
                target_dir: &cx.plan.target_dir,
                index: i,
                step: &step,
                env: env.clone(),
                jobserver: &client,
                observer: cx.observer,
                marks: &marks,
            };
            match cx.runner.run(&call) {
                Err(StepError::Killed(_)) if !retried => {
                    let fewer = (jobs / 2).max(1);
                    cx.observer.warn(Warning::RetryingWithFewerJobs {
                        package: step.package.clone(),
                        jobs,
                        fewer,
                    });
                    jobs = fewer;
                    retried = true;
                    marks.lock().expect("marks").clear();
                }
                other => break other.map_err(StepError::into_error),
            }
        };
        let marks = marks.into_inner().expect("marks");
        let elapsed = cx.monitor.step_finished(
            measure,
            &step,
            (jobs, retried),
            (&cx.plan.target_dir, &marks),
        );
        built.extend(outcome?);
        cx.observer.event(Event::StepFinished {
            package: step.package.clone(),
            elapsed_secs: elapsed.as_secs_f64(),
        });
    }
    Ok(built)
}
