//! Running a plan: cargo invocations, their output, and the install into the store.

use crate::plan::{Plan, Step};
use cargo_metadata::Message;
use kiln_artifacts::{NewArtifact, Store};
use kiln_diagnostics::{Error, IoContext, Kind, Result};
use kiln_schema::{ArtifactRecord, GitInfo};
use kiln_toolchain::{ensure_rust_targets, rustc_version, Backend};
use kiln_workspace::Workspace;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Receives what happens during a build, to render it.
pub trait Observer: Sync {
    /// kiln did something on the user's behalf (installed a target, overrode a setting).
    fn note(&self, message: &str);
    /// A cargo invocation is starting.
    fn step_started(&self, step: &Step);
    /// Cargo finished compiling one crate; `target` is `None` for host crates.
    fn unit_finished(&self, name: &str, target: Option<&str>);
    /// A line cargo wrote to stderr (status lines and rendered diagnostics).
    fn cargo_stderr(&self, line: &str);
    /// A cargo invocation finished successfully.
    fn step_finished(&self, step: &Step, elapsed: Duration);
}

/// What a successful build produced.
#[derive(Debug)]
pub struct BuildOutcome {
    /// Records of every artifact written, as in `checksums.json`.
    pub records: Vec<ArtifactRecord>,
    /// Wall time of the whole build.
    pub elapsed: Duration,
}

/// A binary cargo produced, before it is installed.
struct Built {
    step: usize,
    bin: String,
    triple: String,
    path: PathBuf,
}

/// Runs every step of `plan`, then installs all binaries into `store` at once.
/// Nothing is installed unless every step succeeds.
pub fn execute(
    ws: &Workspace,
    plan: &Plan,
    store: &Store,
    observer: &dyn Observer,
) -> Result<BuildOutcome> {
    let start = Instant::now();
    store.prepare()?;
    let targets: Vec<_> = plan
        .steps
        .iter()
        .flat_map(|s| &s.targets)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let backends: BTreeSet<Backend> = plan.steps.iter().map(|s| s.invocation.backend).collect();
    // The probes are independent process spawns: run them side by side.
    let (installed, rustc, git) = std::thread::scope(|s| {
        let rustc = s.spawn(|| rustc_version(&ws.root));
        let git = s.spawn(|| crate::git_info(&ws.root));
        let backends_ok = s.spawn(|| backends.iter().try_for_each(|b| b.check_available()));
        let installed = ensure_rust_targets(&ws.root, &targets);
        let backends_ok = backends_ok.join().expect("probe thread");
        let rustc = rustc.join().expect("probe thread");
        let git = git.join().expect("probe thread");
        (installed.and_then(|i| backends_ok.map(|()| i)), rustc, git)
    });
    for t in installed? {
        observer.note(&format!(
            "installed the Rust target {} with rustup",
            t.triple
        ));
    }
    let rustc = rustc?;
    let rustc_line = rustc.lines().next().unwrap_or_default().to_string();
    // Cargo serializes builds in one target dir, but between its end and our copy out
    // of `target/` another kiln could overwrite the binaries: hold the dir until done.
    let _target_lock = lock_target_dir(&plan.target_dir)?;
    let mut built = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        for o in &step.invocation.overrides {
            observer.note(o);
        }
        observer.step_started(step);
        let t0 = Instant::now();
        built.extend(run_step(ws, plan, i, step, observer)?);
        observer.step_finished(step, t0.elapsed());
    }
    let artifacts = built
        .into_iter()
        .map(|b| new_artifact(plan, b, &git, &rustc_line))
        .collect();
    let lock = store.lock()?;
    let records = store.install(&lock, artifacts)?;
    Ok(BuildOutcome {
        records,
        elapsed: start.elapsed(),
    })
}

fn lock_target_dir(target_dir: &Path) -> Result<std::fs::File> {
    let dir = target_dir.join("kiln");
    std::fs::create_dir_all(&dir).io_context("create", &dir)?;
    let path = dir.join("build.lock");
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .io_context("open", &path)?;
    file.lock().io_context("lock", &path)?;
    Ok(file)
}

fn new_artifact(plan: &Plan, b: Built, git: &GitInfo, rustc: &str) -> NewArtifact {
    let step = &plan.steps[b.step];
    let target = step
        .targets
        .iter()
        .find(|t| t.triple == b.triple)
        .expect("built for a planned target");
    NewArtifact {
        source: b.path,
        record: ArtifactRecord {
            path: String::new(),
            os: target.os.clone(),
            arch: target.arch.clone(),
            target: target.triple.clone(),
            package: step.package.clone(),
            binary: b.bin,
            version: step.version.clone(),
            sha256: String::new(),
            size: 0,
            profile: plan.profile.clone(),
            git: git.clone(),
            rustc: rustc.to_string(),
            backend: step.invocation.backend.name().into(),
            overrides: step.invocation.overrides.clone(),
        },
    }
}

fn run_step(
    ws: &Workspace,
    plan: &Plan,
    index: usize,
    step: &Step,
    observer: &dyn Observer,
) -> Result<Vec<Built>> {
    let inv = &step.invocation;
    let mut child = Command::new(&inv.program)
        .args(&inv.args)
        .envs(inv.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&ws.root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::environment(format!("failed to start `{}`", inv.program))
                .with_source(e)
                .hint("make sure cargo is installed and on PATH")
        })?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let mut built = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            for line in BufReader::new(stderr)
                .lines()
                .map_while(std::io::Result::ok)
            {
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
        return Err(step_failure(step, status));
    }
    let expected = step.bins.len() * step.targets.len();
    if built.len() != expected {
        return Err(Error::internal(format!(
            "cargo reported {} of the {expected} binaries expected from `{}`",
            built.len(),
            step.package
        )));
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
