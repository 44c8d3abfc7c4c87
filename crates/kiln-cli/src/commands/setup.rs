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
    // The toolchain the workspace pins comes first: without it cargo can't even read
    // the workspace.
    let here = cli
        .global
        .manifest_path
        .as_deref()
        .and_then(|m| m.parent())
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| std::env::current_dir().unwrap_or_default(), Into::into);
    pinned_toolchain(&here, args, r)?;
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
    // Python packages go into kiln's environment in one pip run.
    let python: Vec<&'static str> = missing
        .iter()
        .filter_map(|p| match &p.install {
            kiln_toolchain::Install::Python(pkgs) => Some(pkgs.clone()),
            kiln_toolchain::Install::Command(_) => None,
        })
        .flatten()
        .collect();
    for p in missing
        .iter()
        .filter(|p| matches!(p.install, kiln_toolchain::Install::Command(_)))
    {
        r.status("Installing", &format!("{} (`{}`)", p.name, p.install));
        Probe::install(&dir, p)?;
    }
    if !python.is_empty() {
        let install = kiln_toolchain::Install::Python(python.clone());
        r.status("Installing", &format!("{} ({install})", python.join(", ")));
        kiln_toolchain::install_python_tools(&python)?;
    }
    let after = Probe::check(&dir, &targets, needs_zig);
    if let Some(p) = after.iter().find(|p| p.required && p.found.is_none()) {
        return Err(
            Error::environment(format!("{} is still missing after installing it", p.name))
                .hint(format!("install it by hand: {}", p.install)),
        );
    }
    r.status("Ready", "everything kiln needs is installed");
    Ok(ExitCode::SUCCESS)
}

fn report(r: &Reporter, list: &[Prerequisite]) {
    for p in list {
        match (&p.found, p.required) {
            (Some(v), _) => r.status("Found", &format!("{} ({})", p.name, first_line(v))),
            (None, true) => r.warn(&format!("{} is missing (install: {})", p.name, p.install)),
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

/// Installs the toolchain `dir`'s toolchain file pins when rustup lacks it, with its
/// components and the musl targets (`--check`: exit 4 instead).
fn pinned_toolchain(dir: &std::path::Path, args: &SetupArgs, r: &Reporter) -> Result<()> {
    let Some(pinned) = kiln_toolchain::pinned(dir)? else {
        return Ok(());
    };
    let Some(name) = kiln_toolchain::missing_toolchain(dir) else {
        return Ok(());
    };
    let targets = if args.targets.is_empty() {
        Target::defaults()
    } else {
        args.targets
            .iter()
            .map(|t| Target::parse(t))
            .collect::<Result<_>>()?
    };
    let install = kiln_toolchain::toolchain_install(&pinned, &targets);
    if args.check {
        return Err(Error::environment(format!(
            "missing: rust toolchain {name}, pinned in `{}`",
            pinned.file.display()
        ))
        .hint("run `kiln setup` to install it"));
    }
    r.status(
        "Installing",
        &format!(
            "rust toolchain {} (`{}`)",
            pinned.channel,
            install.join(" ")
        ),
    );
    let p = Prerequisite {
        name: format!("rust toolchain {}", pinned.channel),
        found: None,
        required: true,
        install: kiln_toolchain::Install::Command(install),
    };
    Probe::install(dir, &p)?;
    if let Some(still) = kiln_toolchain::missing_toolchain(dir) {
        return Err(Error::environment(format!(
            "rust toolchain {still} is still missing after installing it"
        ))
        .hint(format!(
            "install it by hand: `rustup toolchain install {}`",
            pinned.channel
        )));
    }
    Ok(())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}
