//! The build's rooms with fakes for what they drive: a cargo that "builds" by
//! writing files (or gets killed), and a clock that moves only when told. The
//! workspace is real (a one-package crate in a temp dir, read by `cargo metadata`);
//! nothing compiles.

use super::*;
use crate::build::cargo::{CargoCall, StepError};
use crate::observer::Recorder;
use crate::BuildRequest;
use kiln_schema::{Event, Warning};
use std::sync::atomic::AtomicU32;
use std::sync::Mutex;

/// A clock the fake cargo moves forward.
#[derive(Default)]
struct FakeClock(Mutex<Duration>);

impl FakeClock {
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Duration {
        *self.0.lock().unwrap()
    }
}

/// A cargo that takes `secs` on the fake clock, is killed the first `killed` times,
/// and otherwise writes each binary it is asked for.
struct FakeCargo<'c> {
    clock: &'c FakeClock,
    secs: u64,
    killed: AtomicU32,
    calls: Mutex<Vec<usize>>,
}

impl CargoRunner for FakeCargo<'_> {
    fn run(&self, call: &CargoCall<'_>) -> std::result::Result<Vec<Built>, StepError> {
        self.calls.lock().unwrap().push(call.index);
        self.clock.advance(Duration::from_secs(self.secs));
        if self.killed.load(Ordering::SeqCst) > 0 {
            self.killed.fetch_sub(1, Ordering::SeqCst);
            return Err(StepError::Killed(process::killed_error(&call.step.package)));
        }
        let mut built = Vec::new();
        for t in &call.step.targets {
            for bin in &call.step.bins {
                let path = call.target_dir.join(&t.triple).join("release").join(bin);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, format!("{bin} for {}", t.triple)).unwrap();
                built.push(Built {
                    step: call.index,
                    bin: bin.clone(),
                    triple: t.triple.clone(),
                    path,
                });
            }
        }
        Ok(built)
    }
}

/// A one-package workspace (`app`, one binary) for amd64, without kiln's cache.
pub(super) fn workspace(dir: &std::path::Path) -> (Workspace, Plan) {
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"1.2.3\"\nedition = \"2021\"\n\n[workspace.metadata.kiln]\nsbom = []\nauditable = false\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
    let flags = kiln_config::Flags {
        targets: vec!["amd64".into()],
        out: Some(dir.join("artifacts")),
        max_memory: Some("1GiB".into()),
        jobs: Some(4),
        ..Default::default()
    };
    let ws = Workspace::load(Some(&dir.join("Cargo.toml")), flags).unwrap();
    let sel = BuildRequest::default().resolve(&ws).unwrap();
    let plan = Plan::new(&ws, &sel, &dir.join("native")).unwrap();
    (ws, plan)
}

fn run(
    dir: &std::path::Path,
    cargo: &FakeCargo<'_>,
    clock: &FakeClock,
) -> (Result<BuildOutcome>, Vec<Event>) {
    let (ws, plan) = workspace(dir);
    let store = Store::new(dir.join("artifacts"));
    let seen = Recorder::default();
    let outcome = execute_with(&ws, &plan, &store, (None, None), &seen, cargo, clock);
    (outcome, seen.0.into_inner().unwrap())
}

#[test]
fn a_cold_build_installs_what_cargo_built_and_measures_it_by_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::default();
    let cargo = FakeCargo {
        clock: &clock,
        secs: 7,
        killed: AtomicU32::new(0),
        calls: Mutex::default(),
    };
    let (outcome, events) = run(dir.path(), &cargo, &clock);
    let outcome = outcome.unwrap();
    assert_eq!(outcome.records.len(), 1);
    let rec = &outcome.records[0];
    assert_eq!(
        (rec.binary.as_str(), rec.version.as_str()),
        ("app", "1.2.3")
    );
    let installed = std::fs::read(dir.path().join("artifacts/linux/amd64/app")).unwrap();
    assert_eq!(installed, b"app for x86_64-unknown-linux-musl");
    assert_eq!(outcome.steps.len(), 1);
    assert_eq!(
        outcome.steps[0].wall_secs, 7.0,
        "the fake clock's seven seconds"
    );
    assert_eq!(outcome.elapsed, Duration::from_secs(7));
    assert!(events.iter().any(
        |e| matches!(e, Event::BuildStarted { command, .. } if command.contains("--timings"))
    ));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::StepFinished { elapsed_secs, .. } if *elapsed_secs == 7.0)));
}

#[test]
fn a_killed_compiler_is_retried_once_with_half_the_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::default();
    let cargo = FakeCargo {
        clock: &clock,
        secs: 1,
        killed: AtomicU32::new(1),
        calls: Mutex::default(),
    };
    let (outcome, events) = run(dir.path(), &cargo, &clock);
    let outcome = outcome.unwrap();
    let retry = events.iter().find_map(|e| match e {
        Event::Warning(Warning::RetryingWithFewerJobs { jobs, fewer, .. }) => Some((*jobs, *fewer)),
        _ => None,
    });
    let (jobs, fewer) = retry.expect("a retry warning");
    assert_eq!(fewer, (jobs / 2).max(1));
    assert!(outcome.steps[0].retried);
    assert_eq!(outcome.steps[0].jobs, fewer);
    assert_eq!(*cargo.calls.lock().unwrap(), [0, 0], "the step, twice");
    assert_eq!(outcome.steps[0].wall_secs, 2.0, "both tries count");
}

#[test]
fn killed_twice_fails_and_leaves_the_store_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("artifacts/linux/amd64");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join("app"), b"the good one").unwrap();
    std::fs::write(dir.path().join("artifacts/.kiln-store"), b"").unwrap();
    let clock = FakeClock::default();
    let cargo = FakeCargo {
        clock: &clock,
        secs: 1,
        killed: AtomicU32::new(2),
        calls: Mutex::default(),
    };
    let (outcome, _) = run(dir.path(), &cargo, &clock);
    let e = outcome.unwrap_err();
    assert!(e.to_string().contains("was killed (signal 9)"), "{e}");
    assert_eq!(std::fs::read(store.join("app")).unwrap(), b"the good one");
}

#[test]
fn a_target_dir_another_checkout_used_is_claimed_with_a_warning() {
    let shared = tempfile::tempdir().unwrap();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for d in [a.path(), b.path()] {
        std::fs::create_dir_all(d.join(".cargo")).unwrap();
        std::fs::write(
            d.join(".cargo/config.toml"),
            format!("[build]\ntarget-dir = \"{}\"\n", shared.path().display()),
        )
        .unwrap();
    }
    let clock = FakeClock::default();
    let cargo = FakeCargo {
        clock: &clock,
        secs: 1,
        killed: AtomicU32::new(0),
        calls: Mutex::default(),
    };
    let (first, events) = run(a.path(), &cargo, &clock);
    first.unwrap();
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::Warning(Warning::SharedTargetDir { .. }))));
    let (second, events) = run(b.path(), &cargo, &clock);
    second.unwrap();
    let warned = events.iter().find_map(|e| match e {
        Event::Warning(Warning::SharedTargetDir { other, .. }) => Some(other.clone()),
        _ => None,
    });
    assert_eq!(warned.as_deref(), Some(a.path().to_str().unwrap()));
}

/// A remote held in memory (shared between the "machines" of a test), or one that
/// never answers.
#[derive(Default, Clone)]
struct FakeRemote {
    store: std::sync::Arc<Mutex<std::collections::BTreeMap<String, Vec<u8>>>>,
    down: bool,
}

impl FakeRemote {
    fn op<T>(
        &self,
        f: impl FnOnce(&mut std::collections::BTreeMap<String, Vec<u8>>) -> T,
    ) -> Result<T> {
        if self.down {
            return Err(kiln_diagnostics::Error::environment("connection refused"));
        }
        Ok(f(&mut self.store.lock().unwrap()))
    }

    fn names(&self, prefix: &str) -> Vec<String> {
        let store = self.store.lock().unwrap();
        store
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }
}

impl kiln_remote::Remote for FakeRemote {
    fn describe(&self) -> String {
        "memory://test".into()
    }
    fn ping(&self) -> Result<()> {
        self.op(|_| ())
    }
    fn get_entry(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.op(|s| s.get(&format!("entry/{key}")).cloned())
    }
    fn put_entry(&self, key: &str, json: &[u8]) -> Result<()> {
        self.op(|s| drop(s.insert(format!("entry/{key}"), json.to_vec())))
    }
    fn get_blob(&self, sha256: &str, size: u64, dest: &std::path::Path) -> Result<bool> {
        let blob = self.op(|s| s.get(&format!("blob/{sha256}")).cloned())?;
        Ok(blob
            .filter(|b| b.len() as u64 <= size)
            .map(|b| std::fs::write(dest, b).unwrap())
            .is_some())
    }
    fn has_blob(&self, sha256: &str) -> Result<bool> {
        self.op(|s| s.contains_key(&format!("blob/{sha256}")))
    }
    fn put_blob(&self, sha256: &str, _size: u64, src: &std::path::Path) -> Result<()> {
        let bytes = std::fs::read(src).unwrap();
        self.op(|s| drop(s.insert(format!("blob/{sha256}"), bytes)))
    }
    fn learned_ids(&self) -> Result<Vec<String>> {
        self.op(|_| ())?;
        Ok(self
            .names("learned/")
            .iter()
            .map(|n| n["learned/".len()..].to_string())
            .collect())
    }
    fn get_learned(&self, id: &str) -> Result<Option<Vec<u8>>> {
        self.op(|s| s.get(&format!("learned/{id}")).cloned())
    }
    fn put_learned(&self, id: &str, json: &[u8]) -> Result<()> {
        self.op(|s| drop(s.insert(format!("learned/{id}"), json.to_vec())))
    }
}

/// Builds the one-package workspace in `dir` with its own local cache and `remote`.
fn run_with_remote(
    dir: &std::path::Path,
    remote: &FakeRemote,
    cargo: &FakeCargo<'_>,
    clock: &FakeClock,
) -> (Result<BuildOutcome>, Vec<Event>) {
    let (ws, plan) = workspace(dir);
    let store = Store::new(dir.join("artifacts"));
    let cache = LocalCache::open(Some(dir.join("cache"))).unwrap();
    let remote = RemoteCache::new(Box::new(remote.clone()), true);
    let seen = Recorder::default();
    let outcome = execute_with(
        &ws,
        &plan,
        &store,
        (Some(&cache), Some(&remote)),
        &seen,
        cargo,
        clock,
    );
    (outcome, seen.0.into_inner().unwrap())
}

#[test]
fn a_binary_another_machine_built_is_restored_from_the_remote_without_cargo() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = FakeRemote::default();
    let clock = FakeClock::default();
    let cargo = FakeCargo {
        clock: &clock,
        secs: 3,
        killed: AtomicU32::new(0),
        calls: Mutex::default(),
    };
    let (first, _) = run_with_remote(a.path(), &remote, &cargo, &clock);
    let first = first.unwrap();
    assert_eq!(cargo.calls.lock().unwrap().len(), 1);
    assert_eq!(first.remote.as_ref().unwrap().uploaded, 1);
    assert_eq!(remote.names("entry/").len(), 1, "one entry uploaded");
    assert_eq!(remote.names("blob/").len(), 1, "with its binary");

    let (second, _) = run_with_remote(b.path(), &remote, &cargo, &clock);
    let second = second.unwrap();
    assert_eq!(
        cargo.calls.lock().unwrap().len(),
        1,
        "cargo never ran again"
    );
    assert_eq!(second.units[0].state, UnitState::Restore);
    assert_eq!(second.remote.as_ref().unwrap().hits, 1);
    assert_eq!(
        std::fs::read(b.path().join("artifacts/linux/amd64/app")).unwrap(),
        b"app for x86_64-unknown-linux-musl"
    );
    assert_eq!(second.records[0].sha256, first.records[0].sha256);
}

#[test]
fn a_remote_that_never_answers_costs_a_warning_not_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let remote = FakeRemote {
        down: true,
        ..Default::default()
    };
    let clock = FakeClock::default();
    let cargo = FakeCargo {
        clock: &clock,
        secs: 1,
        killed: AtomicU32::new(0),
        calls: Mutex::default(),
    };
    let (outcome, _) = run_with_remote(dir.path(), &remote, &cargo, &clock);
    let outcome = outcome.unwrap();
    assert_eq!(cargo.calls.lock().unwrap().len(), 1);
    assert_eq!(outcome.records.len(), 1);
    let stats = outcome.remote.unwrap();
    assert_eq!(stats.uploaded, 0);
    assert!(
        stats
            .skipped
            .as_deref()
            .is_some_and(|s| s.contains("connection refused")),
        "{:?}",
        stats.skipped
    );
}
