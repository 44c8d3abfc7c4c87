//! The real cargo: started as the plan's invocation says, its JSON messages read
//! for the binaries it built and the crates it finished, its stderr passed through
//! (and kept for naming the cause when it fails before compiling).

use super::cargo::{Built, CargoCall, CargoRunner, StepError};
use crate::plan::Step;
use cargo_metadata::Message;
use kiln_diagnostics::{Error, Kind};
use kiln_metrics::UnitKind;
use kiln_schema::Event;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// Starts the real cargo (or cargo-zigbuild, cross) as the plan says.
pub(crate) struct ProcessRunner;

impl CargoRunner for ProcessRunner {
    fn run(&self, call: &CargoCall<'_>) -> std::result::Result<Vec<Built>, StepError> {
        let step = call.step;
        let inv = &step.invocation;
        let mut cmd = Command::new(&inv.program);
        cmd.args(&inv.args)
            .envs(call.env.iter().map(|(k, v)| (k, v)))
            .current_dir(call.root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // cargo and rustc take their parallelism from this jobserver, which the memory
        // governor can drain.
        call.jobserver.configure(&mut cmd);
        if step.invocation.backend == kiln_toolchain::Backend::Zig {
            kiln_toolchain::direct_zig(&mut cmd);
        }
        // A process group of its own, so an interrupt kiln passes on reaches cargo
        // and everything it started.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().map_err(|e| {
            Error::environment(format!("failed to start `{}`", inv.program))
                .with_source(e)
                .hint("make sure cargo is installed and on PATH")
        })?;
        let group = kiln_metrics::signals::ChildGroup::register(child.id());
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let killed = std::sync::atomic::AtomicBool::new(false);
        // The start of cargo's stderr, for naming the cause when the build fails before
        // compiling (rustup, the network, the lockfile, the MSRV).
        let tool_errors = std::sync::Mutex::new(String::new());
        let mut built = Vec::new();
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
                    call.observer.cargo_stderr(&line);
                }
            });
            let started = std::time::Instant::now();
            let mark = |id: &cargo_metadata::PackageId, unit: UnitKind, triple: Option<&str>| {
                call.marks
                    .lock()
                    .expect("marks")
                    .push(kiln_metrics::CrateMark {
                        name: package_name(&id.repr),
                        unit,
                        platform: triple
                            .and_then(|t| step.targets.iter().find(|x| x.triple == t))
                            .map_or_else(|| "host".to_string(), |t| t.platform()),
                        at: started.elapsed().as_secs_f64(),
                    });
            };
            for msg in Message::parse_stream(BufReader::new(stdout)).flatten() {
                if let Message::BuildScriptExecuted(b) = &msg {
                    let triple = triple_of(b.out_dir.as_std_path(), call.target_dir, step);
                    mark(&b.package_id, UnitKind::BuildScriptRun, triple.as_deref());
                }
                if let Message::CompilerArtifact(a) = msg {
                    let triple = a
                        .filenames
                        .first()
                        .and_then(|f| triple_of(f.as_std_path(), call.target_dir, step));
                    let unit = if a.target.is_custom_build() {
                        UnitKind::BuildScript
                    } else if a.target.is_bin() {
                        UnitKind::Bin(a.target.name.clone())
                    } else {
                        UnitKind::Lib
                    };
                    mark(&a.package_id, unit, triple.as_deref());
                    call.observer.event(Event::CrateCompiled {
                        name: a.target.name.clone(),
                        target: triple.clone().unwrap_or_else(|| "host".into()),
                    });
                    let is_bin = a.target.is_bin() && step.bins.contains(&a.target.name);
                    if let (true, Some(exe), Some(triple)) = (is_bin, a.executable, triple) {
                        built.push(Built {
                            step: call.index,
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
        if kiln_metrics::signals::interrupted() {
            // kiln ends by the signal in a moment: no failure to report.
            drop(group);
            loop {
                std::thread::park();
            }
        }
        if !status.success() {
            if killed.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StepError::Killed(killed_error(&step.package)));
            }
            let seen = tool_errors.into_inner().unwrap_or_default();
            return Err(StepError::Failed(
                inv.backend
                    .diagnose_failure()
                    .or_else(|| {
                        kiln_toolchain::explain_seen(&format!("build `{}`", step.package), &seen)
                    })
                    .or_else(|| kiln_toolchain::host_tools::explain_build_failure(&seen))
                    .or_else(|| kiln_workspace::explain_known_breakage(&seen))
                    .unwrap_or_else(|| step_failure(step, status)),
            ));
        }
        expect_every_binary(step, built)
    }
}

/// The error of a step whose compiler was killed.
pub(crate) fn killed_error(package: &str) -> Error {
    Error::environment(format!(
        "a compiler building `{package}` was killed (signal 9), most likely out of memory"
    ))
    .hint("lower `--max-memory` (kiln then runs fewer jobs) or `--jobs`, or build one target at a time (`--target amd64`)")
}

/// Every binary x target of `step`, or an error naming how many cargo reported.
fn expect_every_binary(
    step: &Step,
    built: Vec<Built>,
) -> std::result::Result<Vec<Built>, StepError> {
    let expected = step.bins.len() * step.targets.len();
    let distinct: BTreeSet<(&str, &str)> = built
        .iter()
        .map(|b| (b.bin.as_str(), b.triple.as_str()))
        .collect();
    if distinct.len() != expected {
        return Err(StepError::Failed(Error::internal(format!(
            "cargo reported {} of the {expected} binaries expected from `{}`",
            distinct.len(),
            step.package
        ))));
    }
    Ok(built)
}

fn step_failure(step: &Step, status: std::process::ExitStatus) -> Error {
    let platforms: Vec<String> = step.targets.iter().map(|t| t.platform()).collect();
    let what = format!("`{}` ({})", step.package, platforms.join(", "));
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

/// The package name in a cargo package id: `registry+https://…#cc@1.2.3` gives `cc`,
/// `path+file:///w/chronik-common#0.3.1` gives `chronik-common`, and the old
/// `cc 1.2.3 (registry+…)` form gives `cc`.
fn package_name(id: &str) -> String {
    if let Some((url, fragment)) = id.rsplit_once('#') {
        if let Some((name, _)) = fragment.split_once('@') {
            return name.to_string();
        }
        let path = url.split(['?', '#']).next().unwrap_or(url);
        return path
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(path)
            .to_string();
    }
    id.split(' ').next().unwrap_or(id).to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn built(bin: &str, triple: &str) -> Built {
        Built {
            step: 0,
            bin: bin.into(),
            triple: triple.into(),
            path: std::path::PathBuf::from(format!("/t/{triple}/release/{bin}")),
        }
    }

    #[test]
    fn a_step_must_report_each_binary_for_each_target_once() {
        let dir = tempfile::tempdir().unwrap();
        let (_, plan) = super::super::tests::workspace(dir.path());
        let step = &plan.steps[0];
        let triple = &step.targets[0].triple;
        assert!(expect_every_binary(step, vec![built("app", triple)]).is_ok());
        // cargo may report a binary twice (fresh, then copied); that is still one.
        assert!(
            expect_every_binary(step, vec![built("app", triple), built("app", triple)]).is_ok()
        );
        let Err(StepError::Failed(e)) = expect_every_binary(step, Vec::new()) else {
            panic!("nothing built must fail");
        };
        assert!(e.to_string().contains("0 of the 1"), "{e}");
    }

    #[test]
    fn package_ids_of_every_cargo_form_give_the_name() {
        for (id, name) in [
            (
                "registry+https://github.com/rust-lang/crates.io-index#cc@1.2.3",
                "cc",
            ),
            (
                "path+file:///w/crates/chronik-common#0.3.1",
                "chronik-common",
            ),
            ("path+file:///w/x#other-name@0.1.0", "other-name"),
            ("git+https://github.com/o/r?rev=abc#dep@0.2.0", "dep"),
            (
                "cc 1.2.3 (registry+https://github.com/rust-lang/crates.io-index)",
                "cc",
            ),
        ] {
            assert_eq!(package_name(id), name, "{id}");
        }
    }

    #[test]
    fn outputs_are_placed_by_the_triple_directory_they_were_written_to() {
        let dir = tempfile::tempdir().unwrap();
        let (_, plan) = super::super::tests::workspace(dir.path());
        let step = &plan.steps[0];
        let td = Path::new("/t");
        let triple = step.targets[0].triple.clone();
        let inside = td.join(&triple).join("release/app");
        assert_eq!(triple_of(&inside, td, step), Some(triple));
        assert_eq!(
            triple_of(&td.join("release/app"), td, step),
            None,
            "host build"
        );
        assert_eq!(triple_of(Path::new("/elsewhere/app"), td, step), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_killed_cargo_is_told_apart_from_a_compile_error() {
        use std::os::unix::process::ExitStatusExt;
        let dir = tempfile::tempdir().unwrap();
        let (_, plan) = super::super::tests::workspace(dir.path());
        let step = &plan.steps[0];
        let killed = step_failure(step, std::process::ExitStatus::from_raw(9));
        assert!(killed.to_string().contains("out of memory"), "{killed}");
        let failed = step_failure(step, std::process::ExitStatus::from_raw(101 << 8));
        assert!(
            failed
                .to_string()
                .contains("failed to build `app` (linux/amd64)"),
            "{failed}"
        );
    }
}
