//! Running a plan: cargo invocations, their output, and the install into the store.

use crate::analysis::{analyze, Analysis, UnitPlan, UnitState};
use crate::observer::Observer;
use crate::plan::{Plan, Step};
use cargo_metadata::Message;
use kiln_artifacts::{NewArtifact, Store};
use kiln_cache::{Entry, LocalCache};
use kiln_diagnostics::{Error, IoContext, Kind, Result};
use kiln_remote::{RemoteCache, RemoteStats};
use kiln_schema::ArtifactRecord;
use kiln_toolchain::{ensure_rust_targets, Backend, Target};
use kiln_workspace::Workspace;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    /// sccache's (hits, misses) in this build, when kiln ran it.
    pub sccache: Option<(u64, u64)>,
    /// Native libraries built or restored for this build.
    pub provisioning: Vec<kiln_metrics::ProvisionMetrics>,
}

/// A binary cargo produced, before it is installed.
struct Built {
    step: usize,
    bin: String,
    triple: String,
    path: PathBuf,
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
    let start = Instant::now();
    store.prepare()?;
    let monitor = Monitor::start(plan);
    let _cache_lock = cache.map(LocalCache::lock_shared).transpose()?;
    let all: Vec<Wanted<'_>> = plan
        .steps
        .iter()
        .enumerate()
        .flat_map(|(step, s)| {
            s.targets
                .iter()
                .flat_map(move |target| s.bins.iter().map(move |bin| Wanted { step, bin, target }))
        })
        .collect();
    // With no cached build of any unit, every unit is a miss whatever its key: start
    // cargo at once and compute the keys beside it, instead of before it.
    // A remote may hold them though.
    let cold = remote.is_none_or(|r| !r.alive())
        && cache.is_none_or(|c| {
            all.iter().all(|w| {
                c.latest(&plan.steps[w.step].package, &w.target.build_target(), w.bin)
                    .is_none()
            })
        });
    let mut cache = cache;
    let about = About::new(ws, plan);
    about.reset();
    about.relink_changed_allocators(plan);
    let (analysis, built) = if cold {
        std::thread::scope(|s| {
            let lookup = cache;
            let about = &about;
            let analysis = s.spawn(move || {
                let a = analyze(ws, plan, store, lookup, None, observer);
                let linked = about.write_objects(a.as_ref().ok().map(|a| a.units.as_slice()), true);
                a.and_then(|a| linked.map(|_| a))
            });
            let built = build_units(
                ws, plan, &all, &mut cache, remote, &monitor, observer, about,
            );
            (analysis.join().expect("analysis thread"), built)
        })
    } else {
        let analysis = analyze(ws, plan, store, cache, remote, observer);
        about.write_objects(analysis.as_ref().ok().map(|a| a.units.as_slice()), false)?;
        let analysis = analysis?;
        let wanted: Vec<Wanted<'_>> = analysis
            .units
            .iter()
            .filter(|u| u.state == UnitState::Build)
            .map(|u| Wanted {
                step: u.step,
                bin: &u.bin,
                target: &u.target,
            })
            .collect();
        let built = build_units(
            ws, plan, &wanted, &mut cache, remote, &monitor, observer, &about,
        );
        (Ok(analysis), built)
    };
    let (analysis, (built, _target_lock)) = (analysis?, built?);
    let mut units = analysis.units.clone();
    if cold {
        units.iter_mut().for_each(|u| u.state = UnitState::Build);
    }
    let mut artifacts = Vec::new();
    let mut new_entries = Vec::new();
    // Learn what every build script declared before computing any final key, so
    // each key sees all of it (the next lookup will); and hash the sources again, to
    // notice an edit made while cargo ran.
    analysis.rehash();
    if let Some(cache) = cache {
        let learned: BTreeSet<(usize, &Target)> = built
            .iter()
            .filter_map(|b| {
                units
                    .iter()
                    .find(|u| u.step == b.step && u.target.triple == b.triple)
            })
            .map(|u| (u.step, &u.target))
            .collect();
        for (step, target) in learned {
            analysis.learn(step, target, cache);
        }
    }
    for b in built {
        let Some(unit) = units
            .iter_mut()
            .find(|u| u.step == b.step && u.bin == b.bin && u.target.triple == b.triple)
        else {
            continue;
        };
        if unit.state != UnitState::Build {
            continue;
        }
        let entry = cache.and_then(|c| cache_built(&analysis, plan, c, unit, &b.path, observer));
        let digest = entry.as_ref().map(|e| (e.sha256.clone(), e.size));
        let key = entry.as_ref().map(|e| e.key.clone());
        artifacts.push(new_artifact(
            plan, unit, b.path, digest, key, &analysis, &about,
        )?);
        new_entries.extend(entry);
    }
    for unit in units.iter().filter(|u| u.state == UnitState::Restore) {
        let (entry, blob) = unit.hit.as_ref().expect("restore has a hit");
        let digest = Some((entry.sha256.clone(), entry.size));
        let key = Some(entry.key.clone());
        artifacts.push(new_artifact(
            plan,
            unit,
            blob.clone(),
            digest,
            key,
            &analysis,
            &about,
        )?);
    }
    let records = if artifacts.is_empty() {
        Vec::new()
    } else {
        let lock = store.lock()?;
        store.install(&lock, artifacts)?
    };
    if let (Some(r), Some(c)) = (remote, cache) {
        if !new_entries.is_empty() {
            r.upload(&new_entries, &analysis.learned_ids(), c);
        }
    }
    let remote = remote.map(RemoteCache::stats);
    if let Some(cache) = cache {
        let hits = units.iter().filter(|u| u.state != UnitState::Build).count() as u64;
        let used = remote.as_ref().map(|r| kiln_cache::RemoteUse {
            hits: r.hits,
            bytes_down: r.bytes_down,
            bytes_up: r.bytes_up,
        });
        cache.record_build(hits, units.len() as u64 - hits, used);
    }
    let steps = std::mem::take(&mut *monitor.steps.lock().expect("steps"));
    let throttled = monitor
        .governor
        .throttled
        .load(std::sync::atomic::Ordering::SeqCst);
    let provisioning = std::mem::take(&mut *monitor.provisioning.lock().expect("provisioning"));
    // Asked before the server stops; the server is this build's alone.
    let server = monitor.sccache.lock().expect("sccache").take();
    let sccache = server
        .as_ref()
        .and_then(crate::sccache::SccacheServer::stats);
    drop(server);
    let samples = monitor.sampler.finish();
    Ok(BuildOutcome {
        units,
        records,
        elapsed: start.elapsed(),
        remote,
        steps,
        samples,
        throttled,
        sccache,
        provisioning,
    })
}

/// One binary of a step for one target.
#[derive(Debug, Clone, Copy)]
struct Wanted<'a> {
    step: usize,
    bin: &'a str,
    target: &'a Target,
}

/// Runs cargo for `wanted`, one narrowed invocation per step. Turns `cache` off
/// when the target dir was last used by another checkout.
///
/// Cargo serializes builds in one target dir, but between its end and our copy out of
/// `target/` another kiln could overwrite the binaries: the returned lock on the
/// target dir must be held until the binaries are installed.
#[allow(clippy::too_many_arguments)]
fn build_units(
    ws: &Workspace,
    plan: &Plan,
    wanted: &[Wanted<'_>],
    cache: &mut Option<&LocalCache>,
    remote: Option<&RemoteCache>,
    monitor: &Monitor,
    observer: &dyn Observer,
    about: &About,
) -> Result<(Vec<Built>, Option<std::fs::File>)> {
    if wanted.is_empty() {
        return Ok((Vec::new(), None));
    }
    let lock = lock_target_dir(&plan.target_dir)?;
    let wrapper_env = start_sccache(ws, plan, monitor, observer);
    if let Some(other) = claim_target_dir(ws, plan) {
        observer.warn(&format!(
            "the target dir `{}` was last used by another checkout (`{}`); cargo's freshness checks can't tell \
             them apart, so binaries built now are not cached (use a target dir per checkout)",
            plan.target_dir.display(),
            other.display()
        ));
        *cache = None;
    }
    prepare_toolchains(ws, plan, wanted, observer)?;
    if ws.config.auditable != Some(false) && ws.settings.rustc_wrapper {
        observer.note(
            "RUSTC_WRAPPER is set, so the binaries built now don't carry their dependency list              (kiln links it in as cargo's rustc wrapper); their SBOMs are written all the same",
        );
    }
    let cache = *cache;
    let pending = restore_natives(plan, wanted, cache, remote, monitor, observer);
    // A library to build runs beside cargo, which compiles everything else meanwhile;
    // only the `-sys` crates' build scripts wait for it (kiln as rustc wrapper holds
    // their compilation until the library is there). Sequential when that can't be
    // arranged: another wrapper of the user's, or a build script compiled already
    // (cargo would run it again without compiling it, before the library exists).
    let gate = (!pending.is_empty())
        .then(|| NativeGate::new(plan, &pending, ws.settings.rustc_wrapper))
        .flatten();
    if gate.is_none() {
        provision(plan, &pending, false, cache, remote, monitor, observer)?;
    }
    std::thread::scope(|scope| {
        let provisioner = gate.as_ref().map(|g| {
            scope.spawn(|| {
                let r = provision(plan, &pending, true, cache, remote, monitor, observer);
                g.open(r.is_ok());
                r
            })
        });
        let mut extra: Vec<(String, String)> = wrapper_env
            .iter()
            .cloned()
            .chain(gate.iter().flat_map(|g| g.env(plan)))
            .chain(about.env(plan))
            .collect();
        // Each variable once: the gate and the audit objects may both add the wrapper.
        let mut seen = BTreeSet::new();
        extra.retain(|(k, _)| seen.insert(k.clone()));
        let built = run_steps(ws, plan, wanted, &extra, monitor, observer);
        // A failed provisioning is the cause of cargo's failure: it is the error.
        if let Some(p) = provisioner {
            p.join().expect("provisioning thread")?;
        }
        Ok((built?, Some(lock)))
    })
}

/// Runs cargo for `wanted`, one narrowed invocation per step, with `extra` in its
/// environment (sccache's server, the native gate).
fn run_steps(
    ws: &Workspace,
    plan: &Plan,
    wanted: &[Wanted<'_>],
    extra: &[(String, String)],
    monitor: &Monitor,
    observer: &dyn Observer,
) -> Result<Vec<Built>> {
    let mut built = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        let mine: Vec<&Wanted<'_>> = wanted.iter().filter(|w| w.step == i).collect();
        if mine.is_empty() {
            continue;
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
        let narrowed = plan.narrow(ws, step, &bins, &targets);
        for o in &narrowed.invocation.overrides {
            observer.note(&o.to_string());
        }
        observer.step_started(&narrowed);
        let t0 = Instant::now();
        let cpu0 = build_cpu_secs(monitor);
        monitor.sampler.set_step(Some(i));
        let mut jobs = plan.resources.jobs;
        let mut retried = false;
        let outcome = loop {
            let client = monitor
                .governor
                .client(jobs)
                .map_err(|e| Error::internal("failed to create a jobserver").with_source(e))?;
            match run_step(ws, plan, i, &narrowed, &client, extra, observer) {
                Err(StepError::Killed(e)) if !retried => {
                    let fewer = (jobs / 2).max(1);
                    observer.warn(&format!(
                        "{}; retrying `{}` once with {fewer} job(s) instead of {jobs}",
                        e.message(),
                        narrowed.package
                    ));
                    jobs = fewer;
                    retried = true;
                }
                other => break other.map_err(StepError::into_error),
            }
        };
        monitor.governor.release();
        monitor.sampler.set_step(None);
        monitor
            .steps
            .lock()
            .expect("steps")
            .push(kiln_metrics::StepMetrics {
                package: narrowed.package.clone(),
                targets: narrowed.targets.iter().map(|t| t.triple.clone()).collect(),
                jobs,
                wall_secs: t0.elapsed().as_secs_f64(),
                cpu_secs: build_cpu_secs(monitor) - cpu0,
                peak_bytes: monitor.sampler.peak(Some(i)),
                retried,
                offset_secs: monitor.start.elapsed().as_secs_f64() - t0.elapsed().as_secs_f64(),
                crates: cargo_timings(&plan.target_dir, t0),
            });
        built.extend(outcome?);
        observer.step_finished(&narrowed, t0.elapsed());
    }
    Ok(built)
}

/// Provisioning running beside cargo: the files that say it ended, and who waits.
struct NativeGate {
    /// `<target dir>/kiln/native-gate`; `.done` or `.failed` appear beside it.
    path: PathBuf,
    /// The `-sys` packages whose build scripts wait.
    gated: String,
}

impl NativeGate {
    /// A gate for building `pending` beside cargo, if that is safe (see `build_units`).
    fn new(plan: &Plan, pending: &[&crate::plan::NativeLib], user_wrapper: bool) -> Option<Self> {
        let config_wrapper = plan.cargo_config.files().any(|(_, t)| {
            t.get("build")
                .and_then(|b| b.get("rustc-wrapper"))
                .is_some()
        });
        let krates: BTreeSet<&str> = pending.iter().map(|n| n.provision.krate.as_str()).collect();
        if user_wrapper
            || config_wrapper
            || krates
                .iter()
                .any(|k| build_script_compiled(&plan.target_dir, k))
        {
            return None;
        }
        let path = plan.target_dir.join("kiln/native-gate");
        for ext in [".done", ".failed"] {
            let _ = std::fs::remove_file(path.with_extension(&ext[1..]));
        }
        std::fs::create_dir_all(path.parent()?).ok()?;
        Some(Self {
            path,
            gated: krates.into_iter().collect::<Vec<_>>().join(","),
        })
    }

    /// Lets the waiting build scripts go on (`ok`) or fail.
    fn open(&self, ok: bool) {
        let ext = if ok { "done" } else { "failed" };
        let _ = std::fs::write(self.path.with_extension(ext), b"");
    }

    /// cargo's environment: kiln as the rustc wrapper (chaining to the one the plan
    /// chose), told what to wait for.
    fn env(&self, plan: &Plan) -> Vec<(String, String)> {
        use kiln_toolchain::wrapper::{GATED_VAR, GATE_VAR};
        let mut env = vec![
            (GATE_VAR.to_string(), self.path.display().to_string()),
            (GATED_VAR.to_string(), self.gated.clone()),
        ];
        env.extend(kiln_wrapper_env(plan));
        env
    }
}

/// Whether a build script of `krate` was compiled in `target_dir` already (any
/// profile): cargo may then run it again without compiling it.
fn build_script_compiled(target_dir: &Path, krate: &str) -> bool {
    let prefix = format!("{krate}-");
    let Ok(profiles) = std::fs::read_dir(target_dir) else {
        return false;
    };
    profiles.flatten().any(|profile| {
        std::fs::read_dir(profile.path().join("build"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|d| d.file_name().to_string_lossy().starts_with(&prefix))
            .any(|d| {
                std::fs::read_dir(d.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|f| f.file_name().to_string_lossy().starts_with("build-script-"))
            })
    })
}

/// Starts kiln's sccache server for this build when the plan uses sccache: the
/// environment cargo then gets. Without a server, cargo runs without the wrapper's
/// server settings, and a server that can't start is one warning, not a failure.
fn start_sccache(
    ws: &Workspace,
    plan: &Plan,
    monitor: &Monitor,
    observer: &dyn Observer,
) -> Vec<(String, String)> {
    let Some(exe) = &plan.sccache else {
        return Vec::new();
    };
    let mut slot = monitor.sccache.lock().expect("sccache");
    if slot.is_none() {
        let credentials = ws.settings.access.sccache_server_credentials();
        match crate::sccache::SccacheServer::start(exe, &credentials, |_| {}) {
            Ok(server) => *slot = Some(server),
            Err(why) => {
                observer.warn(&format!("sccache is off for this build: {why}"));
                // The wrapper still runs (it is in the plan); it compiles locally.
                return vec![("SCCACHE_IGNORE_SERVER_IO_ERROR".into(), "1".into())];
            }
        }
    }
    slot.as_ref().map(|s| s.env()).unwrap_or_default()
}

/// What the build measures while it runs: memory of the process tree (and the
/// governor that holds back work near the budget), and each cargo invocation.
pub(crate) struct Monitor {
    /// Native libraries provisioned (built or restored) for this build.
    pub(crate) provisioning: std::sync::Mutex<Vec<kiln_metrics::ProvisionMetrics>>,
    /// kiln's sccache server, started with the first cargo invocation.
    pub(crate) sccache: std::sync::Mutex<Option<crate::sccache::SccacheServer>>,
    pub(crate) sampler: kiln_metrics::Sampler,
    pub(crate) governor: std::sync::Arc<crate::resources::Governor>,
    pub(crate) steps: std::sync::Mutex<Vec<kiln_metrics::StepMetrics>>,
    pub(crate) start: Instant,
}

impl Monitor {
    fn start(plan: &Plan) -> Self {
        let governor =
            std::sync::Arc::new(crate::resources::Governor::new(plan.resources.budget.bytes));
        let g = governor.clone();
        Monitor {
            provisioning: std::sync::Mutex::new(Vec::new()),
            sccache: std::sync::Mutex::new(None),
            sampler: kiln_metrics::Sampler::start(
                Duration::from_millis(100),
                Box::new(move |rss| g.on_sample(rss)),
            ),
            governor,
            steps: std::sync::Mutex::new(Vec::new()),
            start: Instant::now(),
        }
    }
}

impl Monitor {
    /// Records a native library provisioned for this build (restored or built).
    fn provisioned(
        &self,
        n: &crate::plan::NativeLib,
        since: Instant,
        restored: bool,
        beside_cargo: bool,
    ) {
        self.provisioning
            .lock()
            .expect("provisioning")
            .push(kiln_metrics::ProvisionMetrics {
                library: n.provision.library.clone(),
                target: n.target.triple.clone(),
                wall_secs: since.elapsed().as_secs_f64(),
                restored,
                beside_cargo,
            });
    }
}

/// CPU of everything the build ran so far: waited-for children, and kiln's sccache
/// server (alive, with the compilers it ran and waited for).
fn build_cpu_secs(monitor: &Monitor) -> f64 {
    let server = monitor
        .sccache
        .lock()
        .expect("sccache")
        .as_ref()
        .map_or(0.0, crate::sccache::SccacheServer::cpu_secs);
    kiln_metrics::host::children_cpu_secs() + server
}

/// cargo's timings of the invocation that started at `since` (its HTML report).
fn cargo_timings(target_dir: &Path, since: Instant) -> Vec<kiln_metrics::CrateTiming> {
    let report = target_dir.join("cargo-timings/cargo-timing.html");
    let fresh = std::fs::metadata(&report)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|age| age <= since.elapsed() + Duration::from_secs(1));
    if !fresh {
        return Vec::new();
    }
    // cargo also keeps a timestamped copy per run: kiln's runs shouldn't pile up.
    for e in std::fs::read_dir(target_dir.join("cargo-timings"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let recent = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age <= since.elapsed() + Duration::from_secs(1));
        if name.starts_with("cargo-timing-") && recent {
            let _ = std::fs::remove_file(e.path());
        }
    }
    std::fs::read_to_string(&report)
        .map(|h| kiln_metrics::CrateTiming::from_cargo_html(&h))
        .unwrap_or_default()
}

/// Records this workspace as the target dir's user; returns the previous user when
/// it was another checkout (cargo compares mtimes, not contents, so two checkouts of
/// the same packages in one target dir can be served each other's outputs).
fn claim_target_dir(ws: &Workspace, plan: &Plan) -> Option<PathBuf> {
    // Unrelated workspaces may share a target dir safely (their packages differ); it is
    // another checkout of the same packages that cargo can't tell apart.
    let names: Vec<&str> = ws.members.iter().map(|m| m.name.as_str()).collect();
    let id = &kiln_fs::sha256_hex(names.join("\n").as_bytes())[..16];
    let path = plan.target_dir.join("kiln/owners").join(id);
    let previous = std::fs::read_to_string(&path).ok().map(PathBuf::from);
    let _ = kiln_fs::write_atomic(&path, ws.root.to_string_lossy().as_bytes());
    previous.filter(|p| *p != ws.root)
}

/// Installs the native libraries the wanted units need from the caches; returns the
/// ones that must be built.
fn restore_natives<'p>(
    plan: &'p Plan,
    wanted: &[Wanted<'_>],
    cache: Option<&LocalCache>,
    remote: Option<&RemoteCache>,
    monitor: &Monitor,
    observer: &dyn Observer,
) -> Vec<&'p crate::plan::NativeLib> {
    let mut seen = BTreeSet::new();
    let mut pending = Vec::new();
    let mut compiler = None;
    for w in wanted {
        for n in plan.steps[w.step]
            .native
            .iter()
            .filter(|n| n.target == *w.target)
        {
            if !seen.insert(n.prefix.clone()) || kiln_native::is_intact(&n.prefix) {
                continue;
            }
            let t0 = Instant::now();
            let compiler =
                compiler.get_or_insert_with(|| kiln_toolchain::zig_version().unwrap_or_default());
            let want = native_wanted(n, compiler);
            if cache.is_some_and(|c| restore_native(c, remote, &want, n, observer)) {
                monitor.provisioned(n, t0, true, false);
            } else {
                pending.push(n);
            }
        }
    }
    pending
}

/// Builds the native libraries `pending`, one after the other, and shares each.
fn provision(
    plan: &Plan,
    pending: &[&crate::plan::NativeLib],
    beside_cargo: bool,
    cache: Option<&LocalCache>,
    remote: Option<&RemoteCache>,
    monitor: &Monitor,
    observer: &dyn Observer,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let compiler = kiln_toolchain::zig_version().unwrap_or_default();
    for n in pending {
        let t0 = Instant::now();
        observer.note(&format!(
            "building a static {} for {} (needed by {}); it is kept and reused",
            n.provision.library,
            n.target.triple,
            n.provision.chain.join(" -> ")
        ));
        // Beside cargo it takes one job (make -j1): a second compiler stream that
        // fills cargo's idle moments instead of competing with every job it runs.
        let jobs = beside_cargo.then_some(1);
        kiln_native::provision_openssl(&plan.native_root, &n.target, &n.prefix, jobs)?;
        if let Some(c) = cache {
            share_native(
                c,
                remote,
                &native_wanted(n, &compiler),
                n,
                &compiler,
                observer,
            );
        }
        monitor.provisioned(n, t0, false, beside_cargo);
    }
    Ok(())
}

/// What the caches hold a provisioned library `n` under, built with `compiler`.
fn native_wanted(n: &crate::plan::NativeLib, compiler: &str) -> kiln_cache::Wanted {
    kiln_cache::Wanted {
        key: kiln_native::cache_key(&n.provision, &n.target, compiler),
        package: format!("native-{}", n.provision.krate),
        binary: n.provision.library.to_lowercase(),
        target: n.target.triple.clone(),
    }
}

/// The cache entries of every native library `plan` provisions (for `kiln cache
/// push`/`pull`, which move them with the binaries).
pub fn native_entries(plan: &Plan) -> Vec<kiln_cache::Wanted> {
    let libs: Vec<&crate::plan::NativeLib> =
        plan.steps.iter().flat_map(|s| s.native.iter()).collect();
    if libs.is_empty() {
        return Vec::new();
    }
    // Asked only when there is a library: starting zig costs ~0.1 s.
    let compiler = kiln_toolchain::zig_version().unwrap_or_default();
    let mut out: Vec<kiln_cache::Wanted> =
        libs.iter().map(|n| native_wanted(n, &compiler)).collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out.dedup_by(|a, b| a.key == b.key);
    out
}

/// Installs the provisioned library `n` from the local cache, after fetching it from
/// the remote when that has it: true when it is in place.
fn restore_native(
    cache: &LocalCache,
    remote: Option<&RemoteCache>,
    want: &kiln_cache::Wanted,
    n: &crate::plan::NativeLib,
    observer: &dyn Observer,
) -> bool {
    if let Some(r) = remote.filter(|r| r.alive()) {
        if !cache.has_usable(&want.key) {
            r.fetch(std::slice::from_ref(want), cache);
        }
    }
    let kiln_cache::Lookup::Hit(entry, blob) = cache.get(&want.key) else {
        return false;
    };
    if !entry.answers(want) {
        return false;
    }
    let staging = kiln_fs::temp_path(&n.prefix);
    if let Some(parent) = n.prefix.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let installed = kiln_native::unpack(&blob, &staging).and_then(|()| {
        std::fs::rename(&staging, &n.prefix).map_err(|e| Error::io("rename into", &n.prefix, e))
    });
    match installed {
        Ok(()) => {
            observer.note(&format!(
                "restored the static {} for {} from the cache (built once, by whichever machine built it first)",
                n.provision.library, n.target.triple
            ));
            true
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            // Another kiln may have installed it meanwhile.
            if kiln_native::is_intact(&n.prefix) {
                return true;
            }
            observer.warn(&format!(
                "the cached {} for {} can't be used ({e}); building it",
                n.provision.library, n.target.triple
            ));
            false
        }
    }
}

/// Stores a library kiln just built in the local cache (and the remote, when this
/// build uploads), so no other machine of the team builds it again.
fn share_native(
    cache: &LocalCache,
    remote: Option<&RemoteCache>,
    want: &kiln_cache::Wanted,
    n: &crate::plan::NativeLib,
    compiler: &str,
    observer: &dyn Observer,
) {
    let packed = kiln_fs::temp_path(&cache.root().join("native-archive"));
    let stored = kiln_native::pack(&n.prefix, &packed)
        .and_then(|()| kiln_fs::sha256_file(&packed).map_err(|e| Error::io("read", &packed, e)))
        .and_then(|(sha256, size)| {
            cache.put(
                Entry {
                    key: want.key.clone(),
                    package: want.package.clone(),
                    binary: want.binary.clone(),
                    target: want.target.clone(),
                    version: kiln_native::source_version(&n.provision).into(),
                    sha256,
                    size,
                    profile: "native".into(),
                    rustc: String::new(),
                    backend: compiler.into(),
                    overrides: Vec::new(),
                    created: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                    inputs: Default::default(),
                    signatures: Vec::new(),
                    origin: Some(kiln_cache::Origin::Built),
                },
                &packed,
            )
        });
    let _ = std::fs::remove_file(&packed);
    match stored {
        Ok(entry) => {
            if let Some(r) = remote.filter(|r| r.alive() && r.uploads()) {
                r.upload(&[entry], &BTreeSet::new(), cache);
            }
        }
        Err(e) => observer.warn(&format!(
            "the static {} for {} was built but not cached: {e}",
            n.provision.library, n.target.triple
        )),
    }
}

/// Installs missing rustup targets and checks the backends, for the units to build.
fn prepare_toolchains(
    ws: &Workspace,
    plan: &Plan,
    wanted: &[Wanted<'_>],
    observer: &dyn Observer,
) -> Result<()> {
    let targets: Vec<&Target> = wanted
        .iter()
        .map(|w| w.target)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let backends: BTreeSet<Backend> = wanted
        .iter()
        .map(|w| plan.steps[w.step].invocation.backend)
        .collect();
    let (installed, backends_ok) = std::thread::scope(|s| {
        let backends_ok = s.spawn(|| backends.iter().try_for_each(|b| b.check_available()));
        (
            ensure_rust_targets(&ws.root, &targets),
            backends_ok.join().expect("probe thread"),
        )
    });
    backends_ok?;
    for t in installed? {
        observer.note(&format!(
            "installed the Rust target {} with rustup",
            t.triple
        ));
    }
    Ok(())
}

/// Learns what the build scripts declared, then caches the binary under the key
/// that future lookups will compute (which includes those declarations).
fn cache_built(
    analysis: &Analysis,
    plan: &Plan,
    cache: &LocalCache,
    unit: &mut UnitPlan,
    path: &Path,
    observer: &dyn Observer,
) -> Option<Entry> {
    let step = &plan.steps[unit.step];
    let inputs = analysis.inputs_now(plan, unit, Some(cache));
    // Cargo read the sources somewhere between the two hashings: if they differ, the
    // binary's inputs are unknown and it must not be cached under either key.
    let edited: Vec<String> = kiln_fingerprint::diff(&unit.inputs, &inputs)
        .into_iter()
        .filter(|c| c.old.is_some() && matches!(c.id, kiln_fingerprint::InputId::File { .. }))
        .map(|c| c.to_string())
        .collect();
    if !edited.is_empty() {
        observer.warn(&format!(
            "{} while {} was being built; it is installed but not cached",
            edited.join(", "),
            unit.bin
        ));
        return None;
    }
    let (sha256, size) = match kiln_fs::sha256_file(path) {
        Ok(digest) => digest,
        Err(e) => {
            observer.warn(&format!("could not read {}: {e}", path.display()));
            return None;
        }
    };
    unit.key = inputs.key();
    let entry = Entry {
        key: unit.key.clone(),
        package: unit.package.clone(),
        binary: unit.bin.clone(),
        target: unit.target.build_target(),
        version: step.version.clone(),
        sha256,
        size,
        profile: plan.profile.clone(),
        rustc: analysis.rustc_line().to_string(),
        backend: step.invocation.backend.name().into(),
        overrides: step.invocation.overrides.clone(),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        inputs,
        signatures: Vec::new(),
        origin: Some(kiln_cache::Origin::Built),
    };
    match cache.put(entry, path) {
        Ok(e) => Some(e),
        Err(e) => {
            observer.warn(&format!(
                "could not cache {} for {}: {e}",
                unit.bin, unit.target.triple
            ));
            None
        }
    }
}

fn lock_target_dir(target_dir: &Path) -> Result<std::fs::File> {
    kiln_fs::lock(
        &target_dir.join("kiln/build.lock"),
        kiln_fs::LockMode::Exclusive,
    )
}

/// The complete record of a unit's artifact, with the digest of `source` (known from
/// the cache entry, or hashed here when the binary was not cached).
fn new_artifact(
    plan: &Plan,
    unit: &UnitPlan,
    source: PathBuf,
    digest: Option<(String, u64)>,
    key: Option<String>,
    analysis: &Analysis,
    about: &About,
) -> Result<NewArtifact> {
    let (sha256, size) = match digest {
        Some(d) => d,
        None => kiln_fs::sha256_file(&source).map_err(|e| Error::io("read", &source, e))?,
    };
    let step = &plan.steps[unit.step];
    let t = &unit.target;
    let mimalloc = about.mimalloc_for(&unit.bin, &unit.target);
    let (linked, components): (Vec<_>, Vec<_>) =
        crate::linked::linked(plan, unit, mimalloc, analysis.rustc_line())
            .into_iter()
            .unzip();
    let documents = unit
        .graph
        .as_ref()
        .map(|g| {
            let g = kiln_sbom::Graph {
                linked: components,
                ..g.clone()
            };
            about.documents(&g, &sha256)
        })
        .unwrap_or_default();
    let auditable = about.auditable
        && unit
            .graph
            .as_ref()
            .is_some_and(|g| kiln_sbom::audit_object(g).is_some());
    Ok(NewArtifact {
        source,
        documents,
        record: ArtifactRecord {
            path: kiln_artifacts::artifact_path(&t.os, &t.arch, &unit.bin),
            os: t.os.clone(),
            arch: t.arch.clone(),
            target: t.build_target(),
            package: step.package.clone(),
            binary: unit.bin.clone(),
            version: step.version.clone(),
            sha256,
            size,
            profile: plan.profile.clone(),
            git: analysis.git().clone(),
            rustc: analysis.rustc_line().to_string(),
            backend: step.invocation.backend.name().into(),
            overrides: step.invocation.overrides.clone(),
            sboms: Vec::new(),
            auditable,
            key: Some(key.unwrap_or_else(|| unit.key.clone())),
            allocator: mimalloc.then(|| format!("mimalloc {}", kiln_native::MIMALLOC_VERSION)),
            linked,
        },
    })
}

/// What kiln writes about each binary besides the binary (the SBOMs, dated by the
/// source's time, never the clock), and what it links in: the audit section, the
/// allocator replacing musl's `malloc`.
pub(crate) struct About {
    formats: Vec<kiln_config::SbomFormat>,
    created: String,
    auditable: bool,
    allocator: Option<kiln_config::AllocatorConfig>,
    native_root: PathBuf,
    /// Where the objects for the linker go (when the wrapper can add them).
    link_dir: Option<PathBuf>,
}

impl About {
    pub(crate) fn new(ws: &Workspace, plan: &Plan) -> Self {
        let auditable = crate::analysis::links_audit_section(ws);
        let allocator = ws.config.allocator.clone();
        let links = auditable || crate::allocator::wants_mimalloc(ws, plan);
        Self {
            formats: crate::analysis::sbom_formats(ws),
            created: kiln_fs::rfc3339(kiln_workspace::source_date_epoch(&ws.root)),
            auditable,
            allocator,
            native_root: plan.native_root.clone(),
            link_dir: links.then(|| plan.target_dir.join("kiln/link")),
        }
    }

    /// Makes cargo link again each binary whose allocator changed since it was last
    /// linked in this target dir: cargo doesn't see the object kiln adds, so it
    /// would call the old binary fresh. Removing its output is what cargo notices.
    /// Before cargo starts, in both the cold and the warm path.
    fn relink_changed_allocators(&self, plan: &Plan) {
        let stamps = plan.target_dir.join("kiln/allocator");
        for step in &plan.steps {
            for target in &step.targets {
                for bin in &step.bins {
                    let wanted = if self.mimalloc_for(bin, target) {
                        kiln_native::mimalloc_identity()
                    } else {
                        "system".to_string()
                    };
                    let stamp = stamps.join(&target.triple).join(bin);
                    let linked =
                        std::fs::read_to_string(&stamp).unwrap_or_else(|_| "system".to_string());
                    if linked == wanted {
                        continue;
                    }
                    let out = plan
                        .target_dir
                        .join(&target.triple)
                        .join(plan.selection.profile_dir());
                    let _ = std::fs::remove_file(out.join(bin));
                    let prefix = format!("{}-", bin.replace('-', "_"));
                    for e in std::fs::read_dir(out.join("deps"))
                        .into_iter()
                        .flatten()
                        .flatten()
                    {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if name.starts_with(&prefix) && !name.contains('.') {
                            let _ = std::fs::remove_file(e.path());
                        }
                    }
                    let _ = kiln_fs::write_atomic(&stamp, wanted.as_bytes());
                }
            }
        }
    }

    /// Whether `bin` links mimalloc in place of musl's `malloc` on `target`.
    fn mimalloc_for(&self, bin: &str, target: &Target) -> bool {
        crate::allocator::mimalloc_for(&self.allocator, bin, target)
    }

    fn documents(&self, g: &kiln_sbom::Graph, sha256: &str) -> Vec<kiln_artifacts::Document> {
        self.formats
            .iter()
            .map(|f| {
                let text = match f {
                    kiln_config::SbomFormat::Spdx => {
                        kiln_sbom::spdx(g, sha256, &self.created, env!("CARGO_PKG_VERSION"))
                    }
                    kiln_config::SbomFormat::Cyclonedx => {
                        kiln_sbom::cyclonedx(g, sha256, &self.created, env!("CARGO_PKG_VERSION"))
                    }
                };
                kiln_artifacts::Document {
                    suffix: f.suffix().into(),
                    format: f.format_name().into(),
                    bytes: text.into_bytes(),
                }
            })
            .collect()
    }

    /// Clears the link objects of an earlier build (the wrapper waits for `ready`).
    fn reset(&self) {
        if let Some(dir) = &self.link_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Writes the link objects of each unit to build where the wrapper finds it (the
    /// audit section; mimalloc, compiled once per target into the native cache), then
    /// `ready` (also when analysis or mimalloc failed: the wrapper must not wait
    /// forever; the build fails with that error). Nothing when nothing is built: a
    /// restore leaves `target/` alone and needs no zig.
    fn write_objects(&self, units: Option<&[UnitPlan]>, all: bool) -> Result<()> {
        let Some(dir) = &self.link_dir else {
            return Ok(());
        };
        let building: Vec<&UnitPlan> = units
            .into_iter()
            .flatten()
            .filter(|u| all || u.state == UnitState::Build)
            .collect();
        if units.is_some() && building.is_empty() {
            return Ok(());
        }
        let _ = std::fs::create_dir_all(dir);
        let written = self.link_objects(dir, &building);
        let _ = std::fs::write(dir.join("ready"), b"");
        written
    }

    fn link_objects(&self, dir: &Path, building: &[&UnitPlan]) -> Result<()> {
        let mut zig = None;
        for u in building {
            let at = dir.join(&u.target.triple);
            if self.auditable {
                if let Some(obj) = u.graph.as_ref().and_then(kiln_sbom::audit_object) {
                    kiln_fs::write_atomic(&at.join(format!("{}.o", u.bin)), &obj)?;
                }
            }
            if self.mimalloc_for(&u.bin, &u.target) {
                if zig.is_none() {
                    zig = Some(kiln_toolchain::ZigProbe::locate().ok_or_else(|| {
                        Error::environment("`allocator = \"mimalloc\"` needs zig to compile mimalloc, and zig is not installed")
                            .hint("run `kiln setup`, or set `allocator = \"system\"`")
                    })?);
                }
                let exe = &zig.as_ref().expect("located above").exe;
                let (library, _) =
                    kiln_native::provision_mimalloc(&self.native_root, &u.target, exe)?;
                let dir = at.join(format!("{}.alloc", u.bin));
                std::fs::create_dir_all(&dir).io_context("create", &dir)?;
                let dest = dir.join(library.file_name().unwrap_or_default());
                let _ = std::fs::remove_file(&dest);
                std::fs::hard_link(&library, &dest)
                    .or_else(|_| std::fs::copy(&library, &dest).map(|_| ()))
                    .io_context("copy into", &dest)?;
            }
        }
        Ok(())
    }

    /// cargo's environment for the link objects: kiln as the rustc wrapper.
    fn env(&self, plan: &Plan) -> Vec<(String, String)> {
        let Some(dir) = &self.link_dir else {
            return Vec::new();
        };
        let mut env = vec![(
            kiln_toolchain::wrapper::LINK_OBJECTS_VAR.to_string(),
            dir.display().to_string(),
        )];
        env.extend(kiln_wrapper_env(plan));
        env
    }
}

/// kiln as cargo's rustc wrapper when the plan's invocations don't have it already
/// (chaining to sccache when the plan uses it).
fn kiln_wrapper_env(plan: &Plan) -> Vec<(String, String)> {
    use kiln_toolchain::wrapper::WRAP_VAR;
    let wraps = plan
        .steps
        .iter()
        .all(|s| s.invocation.env.iter().any(|(k, _)| k == WRAP_VAR));
    if wraps {
        return Vec::new();
    }
    kiln_toolchain::wrapper::base_env(plan.sccache.as_deref()).unwrap_or_default()
}

/// How a cargo invocation failed.
enum StepError {
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

fn run_step(
    ws: &Workspace,
    plan: &Plan,
    index: usize,
    step: &Step,
    jobserver: &jobserver::Client,
    wrapper_env: &[(String, String)],
    observer: &dyn Observer,
) -> std::result::Result<Vec<Built>, StepError> {
    let inv = &step.invocation;
    let mut cmd = Command::new(&inv.program);
    cmd.args(&inv.args)
        // cargo's own per-crate timings, for the metrics and `kiln report`.
        .arg("--timings")
        .envs(inv.env.iter().map(|(k, v)| (k, v)))
        .envs(wrapper_env.iter().map(|(k, v)| (k, v)))
        .current_dir(&ws.root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // cargo and rustc take their parallelism from this jobserver, which the memory
    // governor can drain.
    jobserver.configure(&mut cmd);
    let killed = std::sync::atomic::AtomicBool::new(false);
    let mut child = cmd.spawn().map_err(|e| {
        Error::environment(format!("failed to start `{}`", inv.program))
            .with_source(e)
            .hint("make sure cargo is installed and on PATH")
    })?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let mut built = Vec::new();
    // The start of cargo's stderr, for naming the cause when the build fails before
    // compiling (rustup, the network, the lockfile, the MSRV).
    let tool_errors = std::sync::Mutex::new(String::new());
    std::thread::scope(|s| {
        s.spawn(|| {
            for line in BufReader::new(stderr)
                .lines()
                .map_while(std::io::Result::ok)
            {
                if line.contains("signal: 9") || line.contains("SIGKILL") {
                    killed.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                let mut t = tool_errors.lock().unwrap();
                if t.len() < 64 << 10 {
                    t.push_str(&line);
                    t.push('\n');
                }
                observer.cargo_stderr(&line);
            }
        });
        for msg in Message::parse_stream(BufReader::new(stdout)).flatten() {
            if let Message::CompilerArtifact(a) = msg {
                let triple = a
                    .filenames
                    .first()
                    .and_then(|f| triple_of(f.as_std_path(), &plan.target_dir, step));
                observer.unit_finished(&a.target.name, triple.as_deref());
                let is_bin = a.target.is_bin() && step.bins.contains(&a.target.name);
                if let (true, Some(exe), Some(triple)) = (is_bin, a.executable, triple) {
                    built.push(Built {
                        step: index,
                        bin: a.target.name.clone(),
                        triple,
                        path: exe.into_std_path_buf(),
                    });
                }
            }
        }
    });
    let status = child
        .wait()
        .map_err(|e| Error::internal("failed to wait for cargo").with_source(e))?;
    if !status.success() {
        if killed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StepError::Killed(Error::environment(format!(
                "a compiler building `{}` was killed (signal 9), most likely out of memory",
                step.package
            ))
            .hint("lower `--max-memory` (kiln then runs fewer jobs) or `--jobs`, or build one target at a time (`--target amd64`)")));
        }
        let seen = tool_errors.into_inner().unwrap_or_default();
        return Err(StepError::Failed(
            step.invocation
                .backend
                .diagnose_failure()
                .or_else(|| {
                    kiln_toolchain::explain_seen(&format!("build `{}`", step.package), &seen)
                })
                .unwrap_or_else(|| step_failure(step, status)),
        ));
    }
    let expected = step.bins.len() * step.targets.len();
    if built.len() != expected {
        return Err(StepError::Failed(Error::internal(format!(
            "cargo reported {} of the {expected} binaries expected from `{}`",
            built.len(),
            step.package
        ))));
    }
    Ok(built)
}

fn step_failure(step: &Step, status: std::process::ExitStatus) -> Error {
    let arches: Vec<&str> = step.targets.iter().map(|t| t.arch.as_str()).collect();
    let what = format!("`{}` ({})", step.package, arches.join(", "));
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if status.signal() == Some(9) || status.code() == Some(137) {
            return Error::environment(format!(
                "the build of {what} was killed (signal 9), most likely out of memory"
            ))
            .hint("build fewer targets at once (`--target amd64`) or lower `--jobs`");
        }
    }
    Error::new(Kind::BuildFailed, format!("failed to build {what}"))
        .hint("fix the errors cargo printed above; the artifact store was left as it was")
}

/// The target triple an output file was built for, from its path under the target dir.
fn triple_of(file: &Path, target_dir: &Path, step: &Step) -> Option<String> {
    let rel = file.strip_prefix(target_dir).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    step.targets
        .iter()
        .find(|t| t.triple == first)
        .map(|t| t.triple.clone())
}
