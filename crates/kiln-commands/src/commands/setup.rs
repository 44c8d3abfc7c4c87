//! `kiln setup`: check, and install, what cross-compiling needs.

use super::load_workspace;
use crate::args::{GlobalArgs, SetupArgs};
use crate::reporter::Reporter;
use kiln_build::{BuildRequest, Plan};
use kiln_config::BackendChoice;
use kiln_diagnostics::{Error, Result};
use kiln_schema::{Event, ToolState, Warning};
use kiln_toolchain::{Prerequisite, Probe};
use std::process::ExitCode;

pub(crate) fn setup(g: &GlobalArgs, args: &SetupArgs, r: &Reporter) -> Result<ExitCode> {
    // The toolchain the workspace pins comes first: without it cargo can't even read
    // the workspace.
    let here = args
        .manifest
        .manifest_path
        .as_deref()
        .and_then(|m| m.parent())
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| std::env::current_dir().unwrap_or_default(), Into::into);
    pinned_toolchain(&here, args, r)?;
    // Inside a workspace, prepare for what it builds; elsewhere, for the defaults.
    let mut ws = load_workspace(&args.manifest, args.flags(g)).ok();
    let dir = ws.as_ref().map_or_else(
        || std::env::current_dir().unwrap_or_default(),
        |w| w.root.clone(),
    );
    let mut native = Vec::new();
    let mut host: Vec<(String, kiln_build::HostToolNeed)> = Vec::new();
    let (targets, needs_zig) = match &mut ws {
        Some(ws) => {
            // The configured features decide the graph (C, system libraries).
            let sel = kiln_build::select(ws, &BuildRequest::default())?;
            // The plan names the native libraries the graph needs (and fails on one
            // kiln can't provide).
            let cache = super::open_cache(ws)?;
            let plan = Plan::new(ws, &sel, &kiln_build::native_root(ws, Some(&cache)))?;
            for s in &plan.steps {
                for n in &s.host_tools {
                    if !host
                        .iter()
                        .any(|(p, h)| *p == s.package && h.tool.name == n.tool.name)
                    {
                        host.push((s.package.clone(), n.clone()));
                    }
                }
            }
            native = plan.steps.into_iter().flat_map(|s| s.native).collect();
            native.sort_by(|a, b| a.prefix.cmp(&b.prefix));
            native.dedup_by(|a, b| a.prefix == b.prefix);
            let zig = match sel.backend {
                BackendChoice::Zig => true,
                BackendChoice::Auto => !ws
                    .binaries_c_deps(&kiln_toolchain::on_any(&sel.targets))
                    .is_empty(),
                BackendChoice::Cargo | BackendChoice::Cross => false,
            };
            (sel.targets, zig)
        }
        None => (kiln_config::parse_targets(&args.platforms.targets)?, true),
    };
    let list = Probe::check(&dir, &targets, needs_zig);
    report(r, &list);
    if let Some(ws) = &ws {
        report_farm(ws, r);
    }
    if !native.is_empty() {
        r.emit(&Event::NativeNeeded {
            native: super::build::native_records(&native),
        });
    }
    // A missing tool is reported once, after the install tried it (`--check` installs
    // nothing: it reports them now).
    for (package, need) in host.iter().filter(|(_, n)| args.check || n.found.is_some()) {
        r.emit(&super::build::host_tool_event(package, need));
    }
    let missing: Vec<&Prerequisite> = list
        .iter()
        .filter(|p| p.required && p.found.is_none())
        .collect();
    // Each host tool once, whichever packages need it.
    let mut host_missing: Vec<&kiln_build::HostToolNeed> = Vec::new();
    for (_, n) in host
        .iter()
        .filter(|(_, n)| n.tool.required && n.found.is_none())
    {
        if !host_missing.iter().any(|m| m.tool.name == n.tool.name) {
            host_missing.push(n);
        }
    }
    if missing.is_empty() && host_missing.is_empty() {
        r.emit(&Event::Ready);
        return Ok(ExitCode::SUCCESS);
    }
    if args.check {
        let names: Vec<&str> = missing
            .iter()
            .map(|p| p.name.as_str())
            .chain(host_missing.iter().map(|n| n.tool.name.as_str()))
            .collect();
        let mut e = Error::environment(format!("missing: {}", names.join(", ")))
            .hint("run `kiln setup` to install what kiln provides");
        for n in &host_missing {
            e = e.hint(format!("{}: {}", n.tool.name, n.fix()));
        }
        return Err(e);
    }
    // Python packages go into kiln's environment in one pip run: zig and the host
    // tools a registry package ships (pinned; pip checks each download's digest).
    let python: Vec<&'static str> = missing
        .iter()
        .filter_map(|p| match &p.install {
            kiln_toolchain::Install::Python(pkgs) => Some(pkgs.clone()),
            kiln_toolchain::Install::Command(_) => None,
        })
        .flatten()
        .chain(host_missing.iter().filter_map(|n| n.tool.pip))
        .collect();
    for p in missing
        .iter()
        .filter(|p| matches!(p.install, kiln_toolchain::Install::Command(_)))
    {
        r.emit(&Event::Installing {
            what: p.name.clone(),
            how: format!("`{}`", p.install),
        });
        Probe::install(&dir, p)?;
    }
    if !python.is_empty() {
        let install = kiln_toolchain::Install::Python(python.clone());
        r.emit(&Event::Installing {
            what: python.join(", "),
            how: install.to_string(),
        });
        kiln_toolchain::install_python_tools(&python)?;
    }
    let after = Probe::check(&dir, &targets, needs_zig);
    if let Some(p) = after.iter().find(|p| p.required && p.found.is_none()) {
        return Err(
            Error::environment(format!("{} is still missing after installing it", p.name))
                .hint(format!("install it by hand: {}", p.install)),
        );
    }
    // What kiln can't install: the system's package manager's command.
    let still: Vec<&&kiln_build::HostToolNeed> = host_missing
        .iter()
        .filter(|n| kiln_toolchain::host_tools::find(&n.tool).is_none())
        .collect();
    if !still.is_empty() {
        let names: Vec<&str> = still.iter().map(|n| n.tool.name.as_str()).collect();
        let mut e = Error::environment(format!(
            "build scripts need host tools kiln can't install: {}",
            names.join(", ")
        ));
        for n in &still {
            e = e.hint(format!("{}: {}", n.tool.name, n.fix()));
        }
        return Err(e);
    }
    for (package, need) in host.iter().filter(|(_, n)| n.found.is_none()) {
        let found = kiln_toolchain::host_tools::Need {
            found: kiln_toolchain::host_tools::find(&need.tool),
            ..need.clone()
        };
        r.emit(&super::build::host_tool_event(package, &found));
    }
    r.emit(&Event::Ready);
    Ok(ExitCode::SUCCESS)
}

fn report(r: &Reporter, list: &[Prerequisite]) {
    for p in list {
        let state = match (&p.found, p.required) {
            (Some(v), _) => ToolState::Found { version: v.clone() },
            (None, true) => ToolState::Missing,
            (None, false) => ToolState::NotNeeded,
        };
        if state == ToolState::Missing {
            r.emit(&Event::Warning(Warning::ToolMissing {
                tool: p.name.clone(),
                install: p.install.to_string(),
            }));
        }
        r.emit(&Event::Tool {
            name: p.name.clone(),
            state,
        });
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
    let targets = kiln_config::parse_targets(&args.platforms.targets)?;
    let install = kiln_toolchain::toolchain_install(&pinned, &targets);
    if args.check {
        return Err(Error::environment(format!(
            "missing: rust toolchain {name}, pinned in `{}`",
            pinned.file.display()
        ))
        .hint("run `kiln setup` to install it"));
    }
    r.emit(&Event::Installing {
        what: format!("rust toolchain {}", pinned.channel),
        how: format!("`{}`", install.join(" ")),
    });
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

/// With a build farm configured: whether its scheduler answers through the sccache
/// kiln would use, and how many servers and cores it offers.
fn report_farm(ws: &kiln_workspace::Workspace, r: &Reporter) {
    let Some(scheduler) = &ws.settings.dist.value else {
        return;
    };
    let status = match kiln_fs::which("sccache") {
        None => Some(kiln_build::DistStatus::Unavailable(
            "sccache is not installed".into(),
        )),
        Some(exe) => kiln_build::dist_status(&exe, ws),
    };
    match status {
        Some(kiln_build::DistStatus::Ready { servers, cores }) => {
            r.emit(&Event::Note(kiln_schema::Note::Distributed {
                scheduler: scheduler.to_string(),
                servers,
                cores,
            }))
        }
        Some(kiln_build::DistStatus::Unavailable(why)) => {
            r.emit(&Event::Warning(Warning::DistUnavailable {
                scheduler: scheduler.to_string(),
                why,
            }))
        }
        None => {}
    }
}
