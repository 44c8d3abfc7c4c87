//! `kiln setup`: check, and install, what cross-compiling needs.

use super::load_workspace;
use crate::args::{Cli, SetupArgs};
use crate::reporter::Reporter;
use kiln_build::{BuildRequest, Plan};
use kiln_config::BackendChoice;
use kiln_diagnostics::{Error, Result};
use kiln_toolchain::{Prerequisite, Probe, Target};
use std::process::ExitCode;

pub(crate) fn setup(cli: &Cli, args: &SetupArgs, r: &Reporter) -> Result<ExitCode> {
    // Inside a workspace, prepare for what it builds; elsewhere, for the defaults.
    let ws = load_workspace(cli).ok();
    let dir = ws.as_ref().map_or_else(
        || std::env::current_dir().unwrap_or_default(),
        |w| w.root.clone(),
    );
    let mut native = Vec::new();
    let (targets, needs_zig) = match &ws {
        Some(ws) => {
            let req = BuildRequest {
                targets: args.targets.clone(),
                ..Default::default()
            };
            let sel = req.resolve(ws)?;
            // The plan names the native libraries the graph needs (and fails on one
            // kiln can't provide).
            let cache = super::open_cache(ws)?;
            let plan = Plan::new(ws, &sel, &kiln_build::native_root(ws, Some(&cache)))?;
            native = plan.steps.into_iter().flat_map(|s| s.native).collect();
            native.sort_by(|a, b| a.prefix.cmp(&b.prefix));
            native.dedup_by(|a, b| a.prefix == b.prefix);
            let zig = match sel.backend {
                BackendChoice::Zig => true,
                BackendChoice::Auto => !ws.binaries_c_deps().is_empty(),
                BackendChoice::Cargo | BackendChoice::Cross => false,
            };
            (sel.targets, zig)
        }
        None if args.targets.is_empty() => (Target::defaults(), true),
        None => (
            args.targets
                .iter()
                .map(|t| Target::parse(t))
                .collect::<Result<_>>()?,
            true,
        ),
    };
    let list = Probe::check(&dir, &targets, needs_zig);
    report(r, &list);
    super::build::report_native(r, &native);
    let missing: Vec<&Prerequisite> = list
        .iter()
        .filter(|p| p.required && p.found.is_none())
        .collect();
    if missing.is_empty() {
        r.status("Ready", "everything kiln needs is installed");
        return Ok(ExitCode::SUCCESS);
    }
    if args.check {
        let names: Vec<&str> = missing.iter().map(|p| p.name.as_str()).collect();
        return Err(Error::environment(format!("missing: {}", names.join(", ")))
            .hint("run `kiln setup` to install them"));
    }
    for p in missing {
        r.status(
            "Installing",
            &format!("{} (`{}`)", p.name, p.install.join(" ")),
        );
        Probe::install(&dir, p)?;
    }
    let after = Probe::check(&dir, &targets, needs_zig);
    if let Some(p) = after.iter().find(|p| p.required && p.found.is_none()) {
        return Err(
            Error::environment(format!("{} is still missing after installing it", p.name))
                .hint(format!("install it by hand: `{}`", p.install.join(" "))),
        );
    }
    r.status("Ready", "everything kiln needs is installed");
    Ok(ExitCode::SUCCESS)
}

fn report(r: &Reporter, list: &[Prerequisite]) {
    for p in list {
        match (&p.found, p.required) {
            (Some(v), _) => r.status("Found", &format!("{} ({})", p.name, first_line(v))),
            (None, true) => r.warn(&format!(
                "{} is missing (install: `{}`)",
                p.name,
                p.install.join(" ")
            )),
            (None, false) => r.info(
                "Optional",
                &format!(
                    "{} is not installed; this workspace doesn't need it",
                    p.name
                ),
            ),
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}
