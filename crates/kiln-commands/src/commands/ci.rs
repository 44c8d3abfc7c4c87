//! `kiln ci github [--check]`.

use super::{load_workspace, short};
use crate::args::{CiArgs, CiProvider, GlobalArgs};
use crate::reporter::Reporter;
use kiln_diagnostics::{Error, Result};
use kiln_schema::{Event, Warning, WorkflowState};
use std::process::ExitCode;

pub(crate) fn ci(g: &GlobalArgs, args: &CiArgs, r: &Reporter) -> Result<ExitCode> {
    let CiProvider::Github(args) = &args.provider;
    let ws = load_workspace(&args.manifest, g.flags())?;
    let artifacts = &ws.settings.artifact_dir.value;
    let artifact_dir = artifacts
        .strip_prefix(&ws.root)
        .map_err(|_| {
            Error::usage("the artifact store is outside the workspace, where CI can't upload it")
                .hint("set `artifact-dir` to a path inside the workspace")
        })?
        .display()
        .to_string();
    let options = kiln_workflow::Options {
        config: ws.config.ci.clone().unwrap_or_default(),
        // From the file only: the generated workflow must not depend on who runs
        // `kiln ci github` (KILN_REMOTE_CACHE is a per-machine override).
        remote: ws.config.cache.as_ref().and_then(|c| c.remote.clone()),
        artifact_dir,
        pin_actions: args.pin_actions,
        platforms: ws
            .settings
            .targets
            .value
            .iter()
            .map(|t| t.platform())
            .collect(),
        version: env!("CARGO_PKG_VERSION").into(),
        trusted: ws
            .config
            .cache
            .as_ref()
            .is_some_and(|c| c.trusted_keys.is_some()),
    };
    let yaml = kiln_workflow::github(&options)?;
    let trusts = ws
        .config
        .cache
        .as_ref()
        .is_some_and(|c| c.trusted_keys.as_ref().is_some_and(|k| !k.is_empty()));
    if options.remote.is_some() && !trusts {
        r.emit(&Event::Warning(Warning::RemoteWithoutTrustedKeys));
    }
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| ws.root.join(".github/workflows/kiln.yml"));
    // The install action sits in the same `.github` directory as the workflow.
    let github_dir = path
        .parent()
        .and_then(|workflows| workflows.parent())
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| ws.root.join(".github"));
    let mut files = vec![(path, yaml)];
    if let Some(action) = kiln_workflow::install_action(&options) {
        files.push((github_dir.join(kiln_workflow::INSTALL_ACTION_PATH), action));
    }
    let written = |path: &std::path::Path, state| {
        r.emit(&Event::WorkflowWritten {
            path: short(path),
            state,
        })
    };
    if args.check {
        for (path, text) in &files {
            check(path, text, &written, r)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    for (path, text) in &files {
        kiln_fs::write_atomic(path, text.as_bytes())?;
        written(path, WorkflowState::Written);
    }
    Ok(ExitCode::SUCCESS)
}

/// `--check` of one generated file: fresh, fresh but for bumped action versions, or
/// drifted (exit 3 with the difference).
fn check(
    path: &std::path::Path,
    text: &str,
    written: &dyn Fn(&std::path::Path, WorkflowState),
    r: &Reporter,
) -> Result<()> {
    let current = std::fs::read_to_string(path).unwrap_or_default();
    if current == text {
        written(path, WorkflowState::Fresh);
        return Ok(());
    }
    // A Dependabot bump of an action is not drift: accepted, with how to record it.
    if let Some(bumped) = kiln_workflow::only_action_versions_differ(&current, text) {
        for uses in &bumped {
            r.emit(&Event::Warning(Warning::ActionVersionBumped {
                file: short(path),
                uses: kiln_diagnostics::printable(uses, 120),
            }));
        }
        written(path, WorkflowState::FreshButActions);
        return Ok(());
    }
    Err(Error::new(
        kiln_diagnostics::Kind::VerifyFailed,
        format!(
            "{} is {} what `kiln ci github` writes",
            short(path),
            if current.is_empty() {
                "missing, not"
            } else {
                "not"
            }
        ),
    )
    .hint(format!(
        "run `kiln ci github` and commit the result; the difference:\n{}",
        kiln_workflow::drift(&current, text, 20).trim_end()
    )))
}
