//! Before cargo runs: the target dir is locked and claimed for this checkout, the
//! rustup targets installed, the backends checked.

use super::{BuildContext, Wanted};
use crate::plan::Plan;
use kiln_diagnostics::Result;
use kiln_schema::Note;
use kiln_toolchain::{ensure_rust_targets, Backend, Target};
use kiln_workspace::Workspace;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Holds the target dir for this build (released when the file is dropped).
pub(super) fn lock_target_dir(target_dir: &Path) -> Result<std::fs::File> {
    kiln_fs::lock(
        &target_dir.join("kiln/build.lock"),
        kiln_fs::LockMode::Exclusive,
    )
}

/// Records this workspace as the target dir's user; returns the previous user when
/// it was another checkout (cargo compares mtimes, not contents, so two checkouts of
/// the same packages in one target dir can be served each other's outputs).
pub(super) fn claim_target_dir(ws: &Workspace, plan: &Plan) -> Option<PathBuf> {
    // Unrelated workspaces may share a target dir safely (their packages differ); it is
    // another checkout of the same packages that cargo can't tell apart.
    let names: Vec<&str> = ws.members.iter().map(|m| m.name.as_str()).collect();
    let id = &kiln_fs::sha256_hex(names.join("\n").as_bytes())[..16];
    let path = plan.target_dir.join("kiln/owners").join(id);
    let previous = std::fs::read_to_string(&path).ok().map(PathBuf::from);
    let _ = kiln_fs::write_atomic(&path, ws.root.to_string_lossy().as_bytes());
    previous.filter(|p| *p != ws.root)
}

/// Stops before anything compiles when a build script of a step to build needs a
/// host program that isn't here (it would fail minutes in otherwise), naming the
/// package, the tool, who needs it and the fix.
pub(super) fn host_tools(cx: &BuildContext<'_>, wanted: &[Wanted<'_>]) -> Result<()> {
    let steps: BTreeSet<usize> = wanted.iter().map(|w| w.step).collect();
    let mut missing = Vec::new();
    for i in steps {
        let step = &cx.plan.steps[i];
        for need in &step.host_tools {
            if need.tool.required && need.found.is_none() {
                missing.push((step, need));
            }
        }
    }
    let Some((step, _)) = missing.first() else {
        return Ok(());
    };
    let what: Vec<String> = missing
        .iter()
        .map(|(s, n)| {
            format!(
                "`{}` for `{}` (run by {})",
                n.tool.name,
                s.package,
                n.by.join(", ")
            )
        })
        .collect();
    let mut e = kiln_diagnostics::Error::environment(format!(
        "the build of `{}` needs host tools that are not installed: {}",
        step.package,
        what.join("; ")
    ));
    let mut fixes: Vec<String> = Vec::new();
    for (_, n) in &missing {
        let fix = format!("{}: {}", n.tool.name, n.fix());
        if !fixes.contains(&fix) {
            fixes.push(fix);
        }
    }
    for f in fixes {
        e = e.hint(f);
    }
    Err(e.hint("`kiln setup --check` lists what every build script needs"))
}

/// Installs missing rustup targets and checks the backends, for the units to build.
pub(super) fn toolchains(cx: &BuildContext<'_>, wanted: &[Wanted<'_>]) -> Result<()> {
    let targets: Vec<&Target> = wanted
        .iter()
        .map(|w| w.target)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let backends: BTreeSet<Backend> = wanted
        .iter()
        .map(|w| cx.plan.steps[w.step].invocation.backend)
        .collect();
    let (installed, backends_ok) = std::thread::scope(|s| {
        let backends_ok = s.spawn(|| backends.iter().try_for_each(|b| b.check_available()));
        (
            ensure_rust_targets(&cx.ws.root, &targets),
            backends_ok.join().expect("probe thread"),
        )
    });
    backends_ok?;
    for t in installed? {
        cx.observer.note(Note::RustTargetInstalled {
            target: t.triple.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_checkout_claims_its_target_dir_again_quietly() {
        let dir = tempfile::tempdir().unwrap();
        let (ws, plan) = super::super::tests::workspace(dir.path());
        assert_eq!(claim_target_dir(&ws, &plan), None, "first claim");
        assert_eq!(claim_target_dir(&ws, &plan), None, "same checkout again");
        let owners = plan.target_dir.join("kiln/owners");
        let recorded: Vec<_> = std::fs::read_dir(&owners).unwrap().collect();
        assert_eq!(recorded.len(), 1);
    }

    #[test]
    fn one_build_at_a_time_holds_the_target_dir() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_target_dir(dir.path()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let path = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let lock = lock_target_dir(&path);
            tx.send(()).unwrap();
            lock.map(drop)
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300))
                .is_err(),
            "a second build waits while the first holds the lock"
        );
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        waiter.join().unwrap().unwrap();
    }
}
