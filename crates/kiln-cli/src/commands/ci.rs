//! `kiln ci github [--check]`.

use super::{load_workspace, short};
use crate::args::{CiArgs, CiProvider, Cli};
use crate::reporter::Reporter;
use kiln_diagnostics::{Error, Result};
use std::process::ExitCode;

pub(crate) fn ci(cli: &Cli, args: &CiArgs, r: &Reporter) -> Result<ExitCode> {
    let ws = load_workspace(cli)?;
    let CiProvider::Github = args.provider;
    let artifacts = kiln_build::artifact_dir(&ws, None);
    let artifact_dir = artifacts
        .strip_prefix(&ws.root)
        .map_err(|_| {
            Error::usage("the artifact store is outside the workspace, where CI can't upload it")
                .hint("set `artifact-dir` to a path inside the workspace")
        })?
        .display()
        .to_string();
    let options = kiln_ci::Options {
        config: ws.config.ci.clone().unwrap_or_default(),
        // From the file only: the generated workflow must not depend on who runs
        // `kiln ci github` (KILN_REMOTE_CACHE is a per-machine override).
        remote: ws.config.cache.as_ref().and_then(|c| c.remote.clone()),
        artifact_dir,
        pin_actions: args.pin_actions,
        platforms: kiln_build::BuildRequest::default()
            .resolve(&ws)?
            .targets
            .iter()
            .map(|t| format!("{}/{}", t.os, t.arch))
            .collect(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let yaml = kiln_ci::github(&options)?;
    let trusts = ws
        .config
        .cache
        .as_ref()
        .is_some_and(|c| c.trusted_keys.as_ref().is_some_and(|k| !k.is_empty()));
    if options.remote.is_some() && !trusts {
        r.warn("the remote cache has no `trusted-keys`: readers can't check who wrote what they restore; `kiln cache keygen NAME --out FILE` makes a key (docs/remote-cache.md, \"A signed team cache\")");
    }
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| ws.root.join(".github/workflows/kiln.yml"));
    if args.check {
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == yaml {
            r.status("Fresh", &format!("{} is up to date", short(&path)));
            return Ok(ExitCode::SUCCESS);
        }
        // A Dependabot bump of an action is not drift: accepted, with how to record it.
        if let Some(bumped) = kiln_ci::only_action_versions_differ(&current, &yaml) {
            for uses in &bumped {
                r.warn(&format!(
                    "{} uses `{}` where kiln writes another version; record it in [workspace.metadata.kiln.ci.actions] (e.g. `checkout = \"actions/checkout@v7\"`) or `kiln ci github` will write kiln's back",
                    short(&path),
                    kiln_diagnostics::printable(uses, 120)
                ));
            }
            r.status(
                "Fresh",
                &format!("{} is up to date but for action versions", short(&path)),
            );
            return Ok(ExitCode::SUCCESS);
        }
        return Err(Error::new(
            kiln_diagnostics::Kind::VerifyFailed,
            format!(
                "{} is {} what `kiln ci github` writes",
                short(&path),
                if current.is_empty() {
                    "missing, not"
                } else {
                    "not"
                }
            ),
        )
        .hint("run `kiln ci github` and commit the result"));
    }
    kiln_fs::write_atomic(&path, yaml.as_bytes())?;
    r.status("Wrote", &short(&path));
    Ok(ExitCode::SUCCESS)
}
