//! The plan: one cargo invocation per package, covering every target it is built for.
//!
//! One package per invocation gives each binary the feature set of
//! `cargo build -p <package>` (no unification with unrelated members); all targets in
//! one invocation let cargo build them in parallel under one jobserver.

use crate::request::Selection;
use kiln_diagnostics::Result;
use kiln_toolchain::{Backend, CargoConfig, Invocation, Target};
use kiln_workspace::Workspace;

/// Everything `kiln build` will run, computed before anything runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The steps, in the order they run.
    pub steps: Vec<Step>,
    /// The cargo profile.
    pub profile: String,
    /// Directory cargo puts `<triple>/<profile>` output under.
    pub target_dir: std::path::PathBuf,
    /// The resolved request, to re-plan a step for a subset.
    pub selection: Selection,
    pub(crate) cargo_config: CargoConfig,
    /// Packages compiling C in any binary's graph: why `auto` picked zig.
    pub workspace_c_deps: Vec<String>,
}

/// One cargo invocation.
#[derive(Debug, Clone)]
pub struct Step {
    /// The package built.
    pub package: String,
    /// Its version.
    pub version: String,
    /// Binaries built.
    pub bins: Vec<String>,
    /// Targets built.
    pub targets: Vec<Target>,
    /// Dependencies of this package that compile C.
    pub c_deps: Vec<String>,
    /// Packages in the build graph, for progress.
    pub graph_size: usize,
    /// The process to run.
    pub invocation: Invocation,
}

impl Plan {
    /// Plans the build of `sel` in `ws`.
    pub fn new(ws: &Workspace, sel: &Selection) -> Result<Plan> {
        let cargo_config = CargoConfig::discover(&ws.root);
        // One backend for the whole workspace, not per package: two backends link
        // differently, so cargo would rebuild every shared crate each time it switches
        // between them in one target dir, and a binary's cache key would depend on
        // which other packages were selected.
        let workspace_c_deps = ws.binaries_c_deps();
        let backend = Backend::choose(sel.backend, !workspace_c_deps.is_empty());
        let mut steps = Vec::new();
        for (name, bins) in &sel.units {
            let pkg = ws.member(name).expect("resolved package");
            let c_deps = ws.c_compiling_deps(pkg);
            let invocation = invocation(ws, sel, &cargo_config, backend, name, bins, &sel.targets);
            steps.push(Step {
                package: name.clone(),
                version: pkg.version.clone(),
                bins: bins.clone(),
                targets: sel.targets.clone(),
                c_deps,
                graph_size: ws.build_graph_size(pkg),
                invocation,
            });
        }
        Ok(Plan {
            steps,
            profile: sel.profile.clone(),
            target_dir: ws.target_dir.clone(),
            selection: sel.clone(),
            cargo_config,
            workspace_c_deps,
        })
    }

    /// The same step for a subset of its binaries and targets (what the cache missed).
    pub fn narrow(&self, ws: &Workspace, step: &Step, bins: &[String], targets: &[Target]) -> Step {
        let backend = step.invocation.backend;
        let invocation = invocation(
            ws,
            &self.selection,
            &self.cargo_config,
            backend,
            &step.package,
            bins,
            targets,
        );
        Step {
            bins: bins.to_vec(),
            targets: targets.to_vec(),
            invocation,
            ..step.clone()
        }
    }

    /// Number of binaries times targets.
    pub fn artifact_count(&self) -> usize {
        self.steps
            .iter()
            .map(|s| s.bins.len() * s.targets.len())
            .sum()
    }
}

fn invocation(
    ws: &Workspace,
    sel: &Selection,
    cargo_config: &CargoConfig,
    backend: Backend,
    package: &str,
    bins: &[String],
    targets: &[Target],
) -> Invocation {
    let host_arch = std::env::consts::ARCH;
    let (program, mut args) = backend.command();
    let manifest = ws.manifest.display().to_string();
    args.extend([
        "--manifest-path".into(),
        manifest,
        "--profile".into(),
        sel.profile.clone(),
    ]);
    args.extend(["-p".into(), package.to_string()]);
    for b in bins {
        args.extend(["--bin".into(), b.clone()]);
    }
    for t in targets {
        args.extend(["--target".into(), t.triple.clone()]);
    }
    args.extend(sel.feature_args());
    if let Some(j) = sel.jobs {
        args.extend(["-j".into(), j.to_string()]);
    }
    args.extend(["--message-format".into(), "json-render-diagnostics".into()]);

    let mut env = Vec::new();
    let mut overrides = Vec::new();
    if !cargo_config.profile_sets(&sel.profile, "strip")
        && !profile_sets_in_manifest(ws, &sel.profile, "strip")
    {
        env.push((
            format!(
                "CARGO_PROFILE_{}_STRIP",
                sel.profile.to_uppercase().replace('-', "_")
            ),
            "symbols".into(),
        ));
    }
    for t in targets {
        let user = cargo_config.linker(t);
        match backend {
            Backend::Zig => {
                if let Some((linker, source)) = user {
                    overrides.push(format!(
                        "linker `{linker}` for {} (from {source}) replaced by zig, which links for the target",
                        t.triple
                    ));
                }
            }
            Backend::Cargo => {
                if let Some(o) = cargo_config.linker_override(t, host_arch) {
                    overrides.push(format!(
                        "linker `{}` for {} (from {}) replaced by rust-lld: {}",
                        o.configured, t.triple, o.source, o.reason
                    ));
                    env.push((
                        format!("CARGO_TARGET_{}_LINKER", t.env_name()),
                        "rust-lld".into(),
                    ));
                } else if user.is_none() && t.is_musl() {
                    env.push((
                        format!("CARGO_TARGET_{}_LINKER", t.env_name()),
                        "rust-lld".into(),
                    ));
                }
            }
            Backend::Cross => {}
        }
    }
    env.sort();
    Invocation {
        backend,
        program,
        args,
        env,
        overrides,
    }
}

/// Whether the root manifest's `[profile.<name>]` sets `key`.
fn profile_sets_in_manifest(ws: &Workspace, profile: &str, key: &str) -> bool {
    ws.root_manifest
        .get("profile")
        .and_then(|p| p.get(profile))
        .and_then(|p| p.get(key))
        .is_some()
}
