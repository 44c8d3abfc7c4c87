//! The memory of the whole build: every descendant of this process (cargo, rustc,
//! linkers, build scripts, zig), summed, sampled a few times a second. The largest
//! single process is not the peak: two rustc and a linker at once are.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Milliseconds since the sampler started.
    pub ms: u64,
    /// Resident bytes of every descendant process together.
    pub rss: u64,
    /// The build step running then (an index), if any.
    pub step: Option<usize>,
}

/// Resident bytes of all descendants of `root` (not `root` itself), on this OS.
pub fn tree_rss(root: u32) -> u64 {
    crate::host::descendants_rss(&crate::host::host().processes(), root)
}

/// A background sampler of this process's descendants.
pub struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    /// Dropping it wakes the sampling thread at once (it sleeps on the channel).
    wake: Option<std::sync::mpsc::Sender<()>>,
    step: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// No step is running.
const NO_STEP: usize = usize::MAX;

impl Sampler {
    /// Starts sampling every `interval`; `on_sample` sees each total (to hold back work).
    pub fn start(interval: Duration, on_sample: Box<dyn Fn(u64) + Send>) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let step = Arc::new(AtomicUsize::new(NO_STEP));
        let (s, st, sp) = (samples.clone(), stop.clone(), step.clone());
        let (wake, sleep) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let me = std::process::id();
            let start = Instant::now();
            while !st.load(Ordering::SeqCst) {
                let rss = tree_rss(me);
                let current = sp.load(Ordering::SeqCst);
                s.lock().expect("samples").push(Sample {
                    ms: start.elapsed().as_millis() as u64,
                    rss,
                    step: (current != NO_STEP).then_some(current),
                });
                on_sample(rss);
                if let Err(std::sync::mpsc::RecvTimeoutError::Disconnected) =
                    sleep.recv_timeout(interval)
                {
                    break;
                }
            }
        });
        Sampler {
            samples,
            stop,
            wake: Some(wake),
            step,
            thread: Some(thread),
        }
    }

    /// Marks which step runs now (`None` between steps), to attribute samples.
    pub fn set_step(&self, step: Option<usize>) {
        self.step.store(step.unwrap_or(NO_STEP), Ordering::SeqCst);
    }

    /// The highest total seen so far while `step` ran (any step when `None`).
    pub fn peak(&self, step: Option<usize>) -> u64 {
        self.samples
            .lock()
            .expect("samples")
            .iter()
            .filter(|s| step.is_none() || s.step == step)
            .map(|s| s.rss)
            .max()
            .unwrap_or(0)
    }

    /// Stops and returns every sample.
    pub fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.samples.lock().expect("samples"))
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_holding_memory_is_counted() {
        // A child writing 64 MiB and holding it for 5 s.
        let mut child = std::process::Command::new("python3")
            .args(["-c", "import time; b = b'x' * (64 << 20); time.sleep(5)"])
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut peak = 0;
        while Instant::now() < deadline && peak < 60 << 20 {
            peak = peak.max(tree_rss(std::process::id()));
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(peak >= 60 << 20, "peak {peak}");
    }
}
