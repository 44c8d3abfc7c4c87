//! Parallelism within a memory budget.
//!
//! kiln runs cargo under a jobserver of its own (cargo and rustc both take their
//! parallelism from an inherited jobserver), sized from the budget and an estimate of
//! one compiler job's memory (the worst measured in the previous build, else a
//! conservative default). While cargo runs, kiln samples the memory of the whole
//! process tree; near the budget it takes tokens back from the jobserver, so no new
//! compiler starts until memory falls again. A compiler killed anyway (the kernel's
//! OOM killer) makes kiln retry that cargo invocation once with half the jobs.

use kiln_config::{MemoryLimit, Setting};
use kiln_metrics::{detect_budget, Budget, BuildMetrics};
use kiln_schema::{EstimateSource, JobLimit};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A release-mode rustc job's memory when nothing was measured yet.
const DEFAULT_PER_JOB: u64 = 768 << 20;

/// The memory plan of a build.
#[derive(Debug, Clone)]
pub struct Resources {
    /// The budget.
    pub budget: Budget,
    /// Concurrent compiler jobs.
    pub jobs: u32,
    /// Estimated memory of one job.
    pub per_job: u64,
    /// Where the estimate comes from.
    pub estimate_source: EstimateSource,
    /// What limits `jobs` (cores, the budget, `-j`).
    pub limited_by: JobLimit,
}

impl Resources {
    /// Plans jobs for the memory budget `limit` (`--max-memory` / `max-memory`), the
    /// user's `-j` (`requested`), and the metrics of the last build.
    ///
    /// Jobs are `-j`, else the core count lowered to cargo's own `build.jobs` when
    /// that is smaller (`configured`); then as many as the budget holds. More jobs
    /// than cores was measured to lose on the real workload: with the workspace's
    /// `jobs = 8` on 2 cores, the cold build of both targets used 3558 CPU-s instead
    /// of about 3140 and took 1826 s instead of 1685 s (bench/real.sh).
    pub fn plan(
        limit: &Setting<MemoryLimit>,
        requested: Option<u32>,
        configured: Option<(u32, kiln_schema::ConfigSource)>,
        last: Option<&BuildMetrics>,
    ) -> Self {
        let budget = detect_budget(limit.value, limit.origin.into());
        let measured = last
            .into_iter()
            .flat_map(|m| m.steps.iter())
            .filter(|s| s.jobs > 0 && s.peak_bytes > 0)
            .map(|s| s.peak_bytes / u64::from(s.jobs))
            .max();
        let (per_job, estimate_source) = match measured {
            Some(p) => (p.max(64 << 20), EstimateSource::Measured),
            None => (DEFAULT_PER_JOB, EstimateSource::Default),
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let by_budget = (budget.bytes / per_job).clamp(1, u64::from(u32::MAX)) as u32;
        let (mut jobs, mut limited_by) = match (requested, configured) {
            (Some(j), _) => (j.max(1), JobLimit::JobsFlag),
            (None, Some((j, source))) if j < cores => (j.max(1), JobLimit::CargoJobs { source }),
            _ => (cores, JobLimit::Cores { cores }),
        };
        if by_budget < jobs {
            jobs = by_budget;
            limited_by = JobLimit::MemoryBudget;
        }
        Resources {
            budget,
            jobs,
            per_job,
            estimate_source,
            limited_by,
        }
    }
}

/// Holds back jobserver tokens while the build's memory is near the budget.
///
/// A token is taken with a blocking `acquire` on a thread (the pipe jobserver has no
/// non-blocking read that wouldn't also change cargo's end): it returns as soon as a
/// running job gives one back, and that job's successor waits. Each jobserver has a
/// generation, so an acquire still waiting when its cargo invocation ends can't
/// stop the governor from acting in the next one.
pub(crate) struct Governor {
    budget: u64,
    client: Mutex<Option<jobserver::Client>>,
    held: Arc<Mutex<Vec<jobserver::Acquired>>>,
    pending: Arc<AtomicUsize>,
    generation: Arc<AtomicUsize>,
    /// How many tokens were held back over the build.
    pub(crate) throttled: Arc<AtomicUsize>,
}

/// A jobserver allowing `jobs` concurrent jobs: its holder (cargo, make) keeps one
/// implicit token, so the pool holds one fewer.
pub(crate) fn jobserver(jobs: u32) -> std::io::Result<jobserver::Client> {
    jobserver::Client::new(jobs.saturating_sub(1) as usize)
}

impl Governor {
    pub(crate) fn new(budget: u64) -> Self {
        Governor {
            budget,
            client: Mutex::new(None),
            held: Arc::new(Mutex::new(Vec::new())),
            pending: Arc::new(AtomicUsize::new(0)),
            generation: Arc::new(AtomicUsize::new(0)),
            throttled: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A jobserver allowing `jobs` concurrent jobs, which this governor watches.
    pub(crate) fn client(&self, jobs: u32) -> std::io::Result<jobserver::Client> {
        self.release();
        let client = jobserver(jobs)?;
        *self.client.lock().expect("client") = Some(client.clone());
        Ok(client)
    }

    /// Called with each memory sample (every 100 ms): near the budget, take one more
    /// token as soon as one is free; well below it, give one back.
    pub(crate) fn on_sample(&self, rss: u64) {
        let Some(client) = self.client.lock().expect("client").clone() else {
            return;
        };
        if rss > self.budget / 100 * 85 {
            if self.pending.swap(1, Ordering::SeqCst) == 0 {
                let generation = self.generation.load(Ordering::SeqCst);
                let (held, pending, current, throttled) = (
                    self.held.clone(),
                    self.pending.clone(),
                    self.generation.clone(),
                    self.throttled.clone(),
                );
                std::thread::spawn(move || {
                    let token = client.acquire();
                    // A token of an earlier jobserver is simply dropped.
                    if current.load(Ordering::SeqCst) == generation {
                        if let Ok(token) = token {
                            held.lock().expect("held").push(token);
                            throttled.fetch_add(1, Ordering::SeqCst);
                        }
                        pending.store(0, Ordering::SeqCst);
                    }
                });
            }
        } else if rss < self.budget / 100 * 60 {
            // Dropping a token gives it back.
            self.held.lock().expect("held").pop();
        }
    }

    /// Stops holding anything (between steps).
    pub(crate) fn release(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.pending.store(0, Ordering::SeqCst);
        *self.client.lock().expect("client") = None;
        self.held.lock().expect("held").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_the_budget_tokens_are_held_and_given_back_below_it() {
        let held = |g: &Governor| g.held.lock().unwrap().len();
        let wait_for = |g: &Governor, n: usize| {
            for _ in 0..100 {
                if held(g) == n {
                    return;
                }
                g.on_sample(900);
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            panic!("held {} tokens, expected {n}", held(g));
        };
        let g = Governor::new(1000);
        let client = g.client(4).unwrap();
        let busy = client.acquire().unwrap(); // a compiler running
        wait_for(&g, 2);
        assert_eq!(client.available().unwrap(), 0, "nothing left for a new job");
        drop(busy);
        wait_for(&g, 3);
        g.on_sample(700);
        assert_eq!(held(&g), 3, "between 60% and 85%: hold");
        g.on_sample(100);
        assert_eq!(held(&g), 2);
        assert_eq!(client.available().unwrap(), 1, "one is free again");
        // A waiting acquire of an ended invocation doesn't block the next one.
        g.on_sample(900);
        let next = g.client(2).unwrap();
        assert_eq!(held(&g), 0);
        let _busy = next.acquire().unwrap();
        g.on_sample(900);
        drop(_busy);
        wait_for(&g, 1);
    }

    fn flag(bytes: u64) -> Setting<MemoryLimit> {
        Setting {
            value: MemoryLimit::Bytes(bytes),
            origin: kiln_config::Origin::Flag("--max-memory"),
        }
    }

    #[test]
    fn jobs_follow_the_budget_and_the_measured_peak() {
        let r = Resources::plan(&flag(1 << 30), None, None, None);
        assert_eq!(r.jobs, 1, "1 GiB holds one 768 MiB job");
        assert_eq!(r.limited_by, JobLimit::MemoryBudget);
        let last = BuildMetrics {
            steps: vec![kiln_metrics::StepMetrics {
                jobs: 2,
                peak_bytes: 400 << 20,
                ..Default::default()
            }],
            ..Default::default()
        };
        let r = Resources::plan(&flag(1 << 30), None, None, Some(&last));
        assert_eq!(r.per_job, 200 << 20);
        assert_eq!(r.estimate_source, EstimateSource::Measured);
        let r = Resources::plan(&flag(64 << 30), Some(1), None, None);
        assert_eq!((r.jobs, &r.limited_by), (1, &JobLimit::JobsFlag));
        // The workspace's `jobs` lowers the count, never raises it past the cores;
        // `-j` is the user's explicit word.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let file = kiln_schema::ConfigSource::Workspace {
            path: ".cargo/config.toml".into(),
            table: None,
        };
        let many = Some((cores + 6, file.clone()));
        let r = Resources::plan(&flag(64 << 30), None, many.clone(), None);
        assert_eq!(r.jobs, cores);
        let one = Some((1, file));
        let r = Resources::plan(&flag(64 << 30), None, one, None);
        assert_eq!(
            (r.jobs, r.limited_by.to_string().as_str()),
            (1, "build.jobs in `.cargo/config.toml`")
        );
        let r = Resources::plan(&flag(64 << 30), Some(cores + 1), many, None);
        assert_eq!(
            (r.jobs, &r.limited_by),
            (cores + 1, &JobLimit::JobsFlag),
            "-j wins"
        );
    }
}
