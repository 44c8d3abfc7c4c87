//! What a build measures while it runs: memory of the whole process tree (and the
//! governor that holds work back near the budget), each cargo invocation's time, CPU
//! and crates, native libraries provisioned, and kiln's own sccache server. Time
//! comes from a [`Clock`], so the bookkeeping is tested without waiting.

use super::BuildContext;
use crate::plan::{Plan, Step};
use crate::sccache::SccacheServer;
use kiln_schema::Warning;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Time since the build started.
pub(crate) trait Clock: Sync {
    /// How long since the clock was made.
    fn now(&self) -> Duration;
}

/// The machine's monotonic clock.
pub(crate) struct SystemClock(Instant);

impl SystemClock {
    /// A clock starting now.
    pub(crate) fn new() -> Self {
        SystemClock(Instant::now())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// What the monitor collected, at the end of the build.
pub(crate) struct Measured {
    pub(crate) steps: Vec<kiln_metrics::StepMetrics>,
    pub(crate) samples: Vec<kiln_metrics::Sample>,
    pub(crate) throttled: usize,
    pub(crate) sccache: Option<crate::sccache::SccacheCounts>,
    pub(crate) provisioning: Vec<kiln_metrics::ProvisionMetrics>,
}

/// A step being measured: when it started and the CPU used before it.
pub(crate) struct StepStart {
    index: usize,
    at: Duration,
    cpu: f64,
    wall: Instant,
}

/// The build's measurements while it runs.
pub(crate) struct Monitor<'c> {
    provisioning: Mutex<Vec<kiln_metrics::ProvisionMetrics>>,
    /// kiln's sccache server, started with the first cargo invocation.
    sccache: Mutex<Option<SccacheServer>>,
    /// The build farm's cores, added to the local jobs while its scheduler answers.
    remote_slots: std::sync::atomic::AtomicU32,
    /// The build farm was said to be unusable (once per build).
    dist_warned: std::sync::atomic::AtomicBool,
    sampler: kiln_metrics::Sampler,
    pub(crate) governor: std::sync::Arc<crate::resources::Governor>,
    steps: Mutex<Vec<kiln_metrics::StepMetrics>>,
    /// Since the build started, by the build's clock.
    clock: &'c dyn Clock,
}

impl<'c> Monitor<'c> {
    pub(crate) fn start(plan: &Plan, clock: &'c dyn Clock) -> Self {
        let governor =
            std::sync::Arc::new(crate::resources::Governor::new(plan.resources.budget.bytes));
        let g = governor.clone();
        Monitor {
            provisioning: Mutex::new(Vec::new()),
            sccache: Mutex::new(None),
            remote_slots: std::sync::atomic::AtomicU32::new(0),
            dist_warned: std::sync::atomic::AtomicBool::new(false),
            sampler: kiln_metrics::Sampler::start(
                Duration::from_millis(100),
                Box::new(move |rss| g.on_sample(rss)),
            ),
            governor,
            steps: Mutex::new(Vec::new()),
            clock,
        }
    }

    fn now(&self) -> Duration {
        self.clock.now()
    }

    /// Starts kiln's sccache server for this build when the plan uses sccache; the
    /// port cargo's wrapper talks to. A server that can't start is one warning, not
    /// a failure: the wrapper compiles locally.
    pub(crate) fn start_sccache(&self, cx: &BuildContext<'_>) -> Option<u16> {
        let Some(exe) = cx.plan.sccache.as_ref() else {
            if let Some(scheduler) = &cx.ws.settings.dist.value {
                if !self
                    .dist_warned
                    .swap(true, std::sync::atomic::Ordering::SeqCst)
                {
                    cx.observer.warn(Warning::DistUnavailable {
                        scheduler: scheduler.to_string(),
                        why: "kiln runs without sccache (`sccache = \"off\"`, a RUSTC_WRAPPER of your own, or sccache not installed)".into(),
                    });
                }
            }
            return None;
        };
        let mut slot = self.sccache.lock().expect("sccache");
        if slot.is_none() {
            let credentials = cx.ws.settings.access.sccache_server_credentials();
            let started = match crate::sccache::Farm::of(cx.ws) {
                Some(farm) => self.join_farm(cx, exe, &credentials, &farm),
                None => SccacheServer::start(exe, &credentials, |_| {}),
            };
            match started {
                Ok(server) => *slot = Some(server),
                Err(why) => {
                    cx.observer.warn(Warning::SccacheOff { why });
                    return None;
                }
            }
        }
        slot.as_ref().map(SccacheServer::port)
    }

    /// Starts the server as a client of `farm`: its cores join the jobs when it
    /// answers; otherwise one warning, and a server that compiles here.
    fn join_farm(
        &self,
        cx: &BuildContext<'_>,
        exe: &std::path::Path,
        credentials: &[(&'static str, String)],
        farm: &crate::sccache::Farm<'_>,
    ) -> Result<SccacheServer, String> {
        let (server, status) = SccacheServer::start_in_farm(exe, credentials, farm)?;
        let scheduler = farm.scheduler().to_string();
        match status {
            crate::sccache::DistStatus::Ready { servers, cores } => {
                let slots = u32::try_from(cores).unwrap_or(u32::MAX);
                self.remote_slots
                    .store(slots, std::sync::atomic::Ordering::SeqCst);
                cx.observer.note(kiln_schema::Note::Distributed {
                    scheduler,
                    servers,
                    cores,
                });
            }
            crate::sccache::DistStatus::Unavailable(why) => {
                cx.observer
                    .warn(Warning::DistUnavailable { scheduler, why });
            }
        }
        Ok(server)
    }

    /// The build farm's cores while it takes compiles (0 without one).
    pub(crate) fn remote_slots(&self) -> u32 {
        self.remote_slots.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Starts measuring step `index`.
    pub(crate) fn step_started(&self, index: usize) -> StepStart {
        self.sampler.set_step(Some(index));
        StepStart {
            index,
            at: self.now(),
            cpu: self.cpu_secs(),
            wall: Instant::now(),
        }
    }

    /// Records the step started at `start`, run with `jobs`; returns its wall time.
    pub(crate) fn step_finished(
        &self,
        start: StepStart,
        step: &Step,
        (jobs, retried): (u32, bool),
        (target_dir, marks): (&Path, &[kiln_metrics::CrateMark]),
    ) -> Duration {
        self.governor.release();
        self.sampler.set_step(None);
        let wall = self.now().saturating_sub(start.at);
        self.steps
            .lock()
            .expect("steps")
            .push(kiln_metrics::StepMetrics {
                package: step.package.clone(),
                targets: step.targets.iter().map(|t| t.triple.clone()).collect(),
                jobs,
                wall_secs: wall.as_secs_f64(),
                cpu_secs: self.cpu_secs() - start.cpu,
                peak_bytes: self.sampler.peak(Some(start.index)),
                retried,
                offset_secs: start.at.as_secs_f64(),
                crates: {
                    let mut crates = cargo_timings(target_dir, start.wall);
                    kiln_metrics::CrateTiming::place(&mut crates, marks);
                    crates
                },
            });
        wall
    }

    /// Records a native library provisioned (restored or built) since `since`.
    pub(crate) fn provisioned(
        &self,
        library: &str,
        target: &str,
        since: Duration,
        restored: bool,
        beside_cargo: bool,
    ) {
        self.provisioning
            .lock()
            .expect("provisioning")
            .push(kiln_metrics::ProvisionMetrics {
                library: library.into(),
                target: target.into(),
                wall_secs: self.now().saturating_sub(since).as_secs_f64(),
                restored,
                beside_cargo,
            });
    }

    /// When the clock says it is now (for [`Monitor::provisioned`]).
    pub(crate) fn mark(&self) -> Duration {
        self.now()
    }

    /// CPU of everything the build ran so far: waited-for children, and kiln's sccache
    /// server (alive, with the compilers it ran and waited for).
    fn cpu_secs(&self) -> f64 {
        let server = self
            .sccache
            .lock()
            .expect("sccache")
            .as_ref()
            .map_or(0.0, SccacheServer::cpu_secs);
        kiln_metrics::host::children_cpu_secs() + server
    }

    /// Everything measured; the sccache server (asked for its stats first, as it is
    /// this build's alone) and the sampler stop.
    pub(crate) fn finish(self) -> Measured {
        let server = self.sccache.lock().expect("sccache").take();
        let sccache = server.as_ref().and_then(SccacheServer::stats);
        drop(server);
        Measured {
            steps: std::mem::take(&mut *self.steps.lock().expect("steps")),
            throttled: self
                .governor
                .throttled
                .load(std::sync::atomic::Ordering::SeqCst),
            provisioning: std::mem::take(&mut *self.provisioning.lock().expect("provisioning")),
            sccache,
            samples: self.sampler.finish(),
        }
    }
}

/// cargo's timings of the invocation that started at `since` (its HTML report).
pub(crate) fn cargo_timings(target_dir: &Path, since: Instant) -> Vec<kiln_metrics::CrateTiming> {
    let report = target_dir.join("cargo-timings/cargo-timing.html");
    let fresh = |m: &std::fs::Metadata| {
        m.modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age <= since.elapsed() + Duration::from_secs(1))
    };
    if !std::fs::metadata(&report).is_ok_and(|m| fresh(&m)) {
        return Vec::new();
    }
    // cargo also keeps a timestamped copy per run: kiln's runs shouldn't pile up.
    for e in std::fs::read_dir(target_dir.join("cargo-timings"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("cargo-timing-") && e.metadata().is_ok_and(|m| fresh(&m)) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    std::fs::read_to_string(&report)
        .map(|h| kiln_metrics::CrateTiming::from_cargo_html(&h))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_are_this_runs_and_cargos_dated_copies_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let timings = dir.path().join("cargo-timings");
        std::fs::create_dir_all(&timings).unwrap();
        let since = Instant::now();
        assert!(cargo_timings(dir.path(), since).is_empty(), "no report yet");
        let html = r#"<script>const UNIT_DATA = [{"name":"app","version":"1.0.0","target":" (bin)","start":0.5,"duration":2.0}];</script>"#;
        std::fs::write(timings.join("cargo-timing.html"), html).unwrap();
        std::fs::write(timings.join("cargo-timing-20261202T000000Z.html"), html).unwrap();
        let crates = cargo_timings(dir.path(), since);
        assert_eq!(crates.len(), 1);
        assert_eq!((crates[0].name.as_str(), crates[0].duration), ("app", 2.0));
        assert!(!timings.join("cargo-timing-20261202T000000Z.html").exists());
    }

    #[test]
    fn the_system_clock_moves_forward() {
        let c = SystemClock::new();
        let a = c.now();
        std::thread::sleep(Duration::from_millis(5));
        assert!(c.now() > a);
    }
}
