//! The plan: one cargo invocation per package, covering every target it is built for.
//!
//! One package per invocation gives each binary the feature set of
//! `cargo build -p <package>` (no unification with unrelated members); all targets in
//! one invocation let cargo build them in parallel under one jobserver.

use crate::request::Selection;
use crate::resources::Resources;
use kiln_config::Sccache;
use kiln_diagnostics::Result;
use kiln_native::Provision;
use kiln_schema::{Override, Setting};
use kiln_toolchain::{
    fix_rustflags, target_cpus, Backend, CargoConfig, Invocation, RustflagsFix, Target,
};
use kiln_workspace::Workspace;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

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
    /// Per target triple: the user's rustflags as kiln changed them, if it had to.
    rustflags: HashMap<String, Option<RustflagsFix>>,
    /// Whether changed rustflags go in CARGO_ENCODED_RUSTFLAGS (an invocation per
    /// distinct set) rather than through kiln as rustc wrapper.
    encoded_rustflags: bool,
    /// Where provisioned native libraries live.
    pub native_root: PathBuf,
    /// sccache, when kiln runs cargo with it as `RUSTC_WRAPPER`.
    pub sccache: Option<PathBuf>,
    /// The memory budget and the parallelism planned from it.
    pub resources: Resources,
    /// Where kiln, as rustc wrapper, finds the objects it links into each binary (the
    /// audit section, mimalloc), when any is linked.
    pub link_dir: Option<PathBuf>,
    /// The native libraries built beside cargo, when any are: their `-sys` crates'
    /// build scripts wait at this gate (see [`NativeGate`]).
    pub gate: Option<NativeGate>,
}

/// Native libraries built beside cargo: cargo starts at once, and kiln as rustc
/// wrapper holds only the compilation of the `-sys` crates' build scripts until the
/// file `<path>.done` (or `.failed`) appears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeGate {
    /// `<target dir>/kiln/native-gate`.
    pub path: PathBuf,
    /// The `-sys` crates whose build scripts wait, comma-separated.
    pub gated: String,
}

/// The value kiln puts in `SCCACHE_SERVER_PORT` once its server for the build has
/// started (it takes a free port then); `kiln plan` shows this in its place.
pub const SCCACHE_PORT: &str = "<port of kiln's sccache server>";

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
    /// Native libraries kiln provides for this step's targets.
    pub native: Vec<NativeLib>,
    /// Host programs its build scripts run (protoc, cmake, ...), found or not.
    pub host_tools: Vec<HostToolNeed>,
}

/// A host program a step's build scripts run.
pub type HostToolNeed = kiln_toolchain::host_tools::Need;

/// A native library kiln builds for a target and points the `-sys` crate at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeLib {
    /// What and who needs it.
    pub provision: Provision,
    /// For which target.
    pub target: Target,
    /// Where it is (or will be) installed.
    pub prefix: PathBuf,
}

impl Plan {
    /// Plans the build of `sel` in `ws`.
    /// Native libraries kiln provisions go under `native_root`.
    pub fn new(ws: &Workspace, sel: &Selection, native_root: &Path) -> Result<Plan> {
        let cargo_config = CargoConfig::discover(&ws.root);
        // One backend for the whole workspace, not per package: two backends link
        // differently, so cargo would rebuild every shared crate each time it switches
        // between them in one target dir, and a binary's cache key would depend on
        // which other packages were selected.
        let on_targets = kiln_toolchain::on_any(&sel.targets);
        let workspace_c_deps = ws.binaries_c_deps(&on_targets);
        // A glibc version pin needs zig's stubs, as the allocator kiln links needs zig.
        let needs_zig = sel.targets.iter().any(|t| t.glibc.is_some());
        let backend = Backend::choose(sel.backend, !workspace_c_deps.is_empty() || needs_zig);
        let rustflags: HashMap<String, Option<RustflagsFix>> = sel
            .targets
            .iter()
            .map(|t| {
                (
                    t.triple.clone(),
                    rustflags_fix(ws, &cargo_config, backend, t),
                )
            })
            .collect();
        // One invocation builds every target of a package, whatever kiln changes of
        // each target's rustflags (kiln, as rustc wrapper, drops them per target):
        // host crates are built once and cargo keeps every core busy across targets.
        // Except when kiln drops a `target-cpu` and zig compiles C: cargo-zigbuild
        // reads rustflags itself to pick zig's CPU (`native` would make zig cc compile
        // for this host), so it must see the fixed flags, which only
        // CARGO_ENCODED_RUSTFLAGS shows it; each distinct set then gets an invocation.
        let drops_cpu = |t: &Target| {
            rustflags[&t.triple]
                .as_ref()
                .is_some_and(|f| f.dropped.iter().any(|o| o.from.contains("target-cpu=")))
        };
        let encoded = backend == Backend::Zig && sel.targets.iter().any(drops_cpu);
        let mut groups: Vec<Vec<Target>> = Vec::new();
        if encoded {
            let mut by_flags: Vec<(Option<&Vec<String>>, Vec<Target>)> = Vec::new();
            for t in &sel.targets {
                let flags = rustflags[&t.triple].as_ref().map(|f| &f.flags);
                match by_flags.iter_mut().find(|(f, _)| *f == flags) {
                    Some((_, ts)) => ts.push(t.clone()),
                    None => by_flags.push((flags, vec![t.clone()])),
                }
            }
            groups.extend(by_flags.into_iter().map(|(_, ts)| ts));
        } else {
            groups.push(sel.targets.clone());
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let jobs_configured = cargo_config.jobs(cores);
        let mimalloc = sel.units.iter().any(|(_, bins)| {
            bins.iter().any(|b| {
                sel.targets
                    .iter()
                    .any(|t| crate::allocator::mimalloc_for(&ws.config.allocator, b, t))
            })
        });
        let links = crate::analysis::links_audit_section(ws) || mimalloc;
        let mut plan = Plan {
            link_dir: links.then(|| ws.target_dir.join("kiln/link")),
            gate: None,
            encoded_rustflags: encoded,
            steps: Vec::new(),
            profile: sel.profile.clone(),
            target_dir: ws.target_dir.clone(),
            selection: sel.clone(),
            cargo_config,
            workspace_c_deps,
            rustflags: rustflags.clone(),
            native_root: native_root.to_path_buf(),
            sccache: sccache(ws)?,
            resources: Resources::plan(
                &sel.max_memory,
                sel.jobs,
                jobs_configured,
                last_metrics(&ws.target_dir).as_ref(),
            ),
        };
        plan.gate = gate(ws, &plan.cargo_config, sel, native_root)?;
        let missing_submodules = kiln_workspace::missing_submodules(&ws.root);
        for (name, bins) in &sel.units {
            let pkg = ws.member(name).expect("resolved package");
            refuse_missing_submodules(ws, pkg, &on_targets, &missing_submodules)?;
            let deps = ws.dependencies_with_paths(pkg, &on_targets, kiln_native::is_relevant);
            let mut native = Vec::new();
            for t in &sel.targets {
                for p in kiln_native::check(&deps, t, ws.config.provision_native != Some(false))? {
                    let prefix = kiln_native::prefix(native_root, &p, t);
                    native.push(NativeLib {
                        provision: p,
                        target: t.clone(),
                        prefix,
                    });
                }
            }
            for targets in &groups {
                let native: Vec<NativeLib> = native
                    .iter()
                    .filter(|n| targets.contains(&n.target))
                    .cloned()
                    .collect();
                let invocation = plan.invocation(ws, backend, name, bins, targets, &native);
                plan.steps.push(Step {
                    package: name.clone(),
                    version: pkg.version.clone(),
                    bins: bins.clone(),
                    targets: targets.clone(),
                    c_deps: ws.c_compiling_deps(pkg, &on_targets),
                    graph_size: ws.build_graph_size(pkg, &on_targets),
                    invocation,
                    native,
                    host_tools: kiln_toolchain::host_tools::needs(ws, pkg, targets),
                });
            }
        }
        Ok(plan)
    }

    /// The same step for a subset of its binaries and targets (what the cache missed).
    pub fn narrow(&self, ws: &Workspace, step: &Step, bins: &[String], targets: &[Target]) -> Step {
        let native: Vec<NativeLib> = step
            .native
            .iter()
            .filter(|n| targets.contains(&n.target))
            .cloned()
            .collect();
        let invocation = self.invocation(
            ws,
            step.invocation.backend,
            &step.package,
            bins,
            targets,
            &native,
        );
        Step {
            bins: bins.to_vec(),
            targets: targets.to_vec(),
            invocation,
            native,
            ..step.clone()
        }
    }
}

impl Plan {
    /// The cargo invocation for `package`'s `bins` on `targets`.
    fn invocation(
        &self,
        ws: &Workspace,
        backend: Backend,
        package: &str,
        bins: &[String],
        targets: &[Target],
        native: &[NativeLib],
    ) -> Invocation {
        let (sel, cargo_config) = (&self.selection, &self.cargo_config);
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
            args.extend(["--target".into(), t.build_target()]);
        }
        args.extend(sel.feature_args());
        args.extend(ws.settings.cargo_flags().iter().map(|f| f.to_string()));
        let mut overrides = Vec::new();
        // The budget decides the jobs; the user's `[build] jobs` can't raise them.
        let jobs = self.resources.jobs;
        // No `-j`: cargo takes its parallelism from kiln's jobserver (and warns that
        // it ignores `-j` when both are given).
        if let Some(j) = cargo_config.build_jobs().filter(|j| *j > i64::from(jobs)) {
            overrides.push(Override {
                target: None,
                setting: Setting::Jobs,
                from: j.to_string(),
                to: Some(jobs.to_string()),
                source: None,
                reason: format!("limited by {}", self.resources.limited_by),
            });
        }
        args.extend(["--message-format".into(), "json-render-diagnostics".into()]);
        // cargo's own per-crate timings, for the metrics and `kiln report`.
        args.push("--timings".into());

        let mut env = Vec::new();
        for n in native {
            env.extend(kiln_native::env(&n.provision, &n.target, &n.prefix));
        }
        // The flags kiln drops, per target, applied by kiln as rustc wrapper (chaining
        // to sccache); without any, sccache is the wrapper itself.
        let mut drops = kiln_toolchain::wrapper::Drops::new();
        if self.encoded_rustflags {
            if let Some(fix) = targets
                .first()
                .and_then(|t| self.rustflags[&t.triple].as_ref())
            {
                env.push((
                    "CARGO_ENCODED_RUSTFLAGS".to_string(),
                    fix.flags.join("\x1f"),
                ));
            }
            for t in targets {
                overrides.extend(
                    self.rustflags[&t.triple]
                        .iter()
                        .flat_map(|f| f.dropped.clone()),
                );
            }
        }
        for t in targets.iter().filter(|_| !self.encoded_rustflags) {
            if let Some(fix) = self.rustflags[&t.triple].as_ref() {
                overrides.extend(fix.dropped.iter().cloned());
                drops.insert(t.triple.clone(), fix.dropped_groups.clone());
            }
        }
        let wrapper = if drops.is_empty() {
            None
        } else {
            kiln_toolchain::wrapper::wrapper_env(&drops, self.sccache.as_deref())
        };
        // kiln is the wrapper also when it links objects in or gates build scripts.
        let gate = self.gate.as_ref().filter(|g| {
            native
                .iter()
                .any(|n| g.gated.split(',').any(|k| k == n.provision.krate))
        });
        let wrapper = wrapper.or_else(|| {
            (self.link_dir.is_some() || gate.is_some())
                .then(|| kiln_toolchain::wrapper::base_env(self.sccache.as_deref()))
                .flatten()
        });
        match wrapper {
            Some(w) => env.extend(w),
            None => {
                if let Some(sc) = &self.sccache {
                    env.push(("RUSTC_WRAPPER".to_string(), sc.display().to_string()));
                }
            }
        }
        if let Some(dir) = &self.link_dir {
            env.push((
                kiln_toolchain::wrapper::LINK_OBJECTS_VAR.to_string(),
                dir.display().to_string(),
            ));
        }
        if let Some(g) = gate {
            env.push((
                kiln_toolchain::wrapper::GATE_VAR.to_string(),
                g.path.display().to_string(),
            ));
            env.push((
                kiln_toolchain::wrapper::GATED_VAR.to_string(),
                g.gated.clone(),
            ));
        }
        if self.sccache.is_some() {
            // Every wrapper call talks to kiln's own server, and compiles locally when
            // it can't answer (see `crate::sccache`).
            env.push(("SCCACHE_SERVER_PORT".into(), SCCACHE_PORT.into()));
            env.push(("SCCACHE_IGNORE_SERVER_IO_ERROR".into(), "1".into()));
        }
        if !cargo_config.profile_sets(&sel.profile, "strip")
            && !profile_sets_in_manifest(ws, &sel.profile, "strip")
        {
            // kiln strips; the debug info the profile asks for could never reach the
            // binary, and generating it costs time in every crate and most in an LTO
            // link. A profile that sets `strip` keeps both.
            let profile = sel.profile.to_uppercase().replace('-', "_");
            env.push((format!("CARGO_PROFILE_{profile}_STRIP"), "symbols".into()));
            env.push((format!("CARGO_PROFILE_{profile}_DEBUG"), "false".into()));
        }
        let (linker_overrides, linker_env) =
            linker_settings(cargo_config, backend, targets, std::env::consts::ARCH);
        overrides.extend(linker_overrides);
        env.extend(linker_env);
        env.sort();
        Invocation {
            backend,
            program,
            args,
            env,
            overrides,
        }
    }
}

/// The `SCCACHE_*` variables that give sccache storage other machines or runs share
/// (S3, Redis, the GitHub Actions cache, memcached, GCS, Azure, WebDAV, OSS, COS) or
/// a config file of the user's.
const SCCACHE_SHARED: &[&str] = &[
    "SCCACHE_BUCKET",
    "SCCACHE_REDIS",
    "SCCACHE_REDIS_ENDPOINT",
    "SCCACHE_REDIS_CLUSTER_ENDPOINTS",
    "SCCACHE_GHA_ENABLED",
    "SCCACHE_MEMCACHED",
    "SCCACHE_MEMCACHED_ENDPOINT",
    "SCCACHE_GCS_BUCKET",
    "SCCACHE_AZURE_CONNECTION_STRING",
    "SCCACHE_WEBDAV_ENDPOINT",
    "SCCACHE_OSS_BUCKET",
    "SCCACHE_COS_BUCKET",
    "SCCACHE_CONF",
];

/// The variable that makes `sccache = "auto"` use sccache, if any. Measured on the
/// example (bench/sccache.sh), a cold build through sccache takes 1.54x the time
/// without it with an empty sccache cache (1.19x with every compile a hit), and kiln's
/// own cache already restores every binary built before: sccache pays where its
/// storage outlives the machine (CI runners, a team's shared backend), so `auto` asks
/// for one. Values are only tested for being set (`SCCACHE_GHA_ENABLED` counts unless
/// it says off), never kept or shown.
fn shared_sccache_backend(var: impl Fn(&str) -> Option<OsString>) -> Option<&'static str> {
    SCCACHE_SHARED.iter().copied().find(|name| match var(name) {
        None => false,
        Some(v) if *name == "SCCACHE_GHA_ENABLED" => {
            !matches!(v.to_str(), Some("" | "0" | "false" | "off"))
        }
        Some(v) => !v.is_empty(),
    })
}

/// The linkers kiln uses for `targets` on a `host_arch` machine: the overrides of the
/// user's linker settings it makes, and the variables it sets.
fn linker_settings(
    cargo_config: &CargoConfig,
    backend: Backend,
    targets: &[Target],
    host_arch: &str,
) -> (Vec<Override>, Vec<(String, String)>) {
    let mut overrides = Vec::new();
    let mut env = Vec::new();
    for t in targets {
        let user = cargo_config.linker(t);
        match backend {
            Backend::Zig => {
                if let Some((linker, source)) = user {
                    overrides.push(Override {
                        target: Some(t.triple.clone()),
                        setting: Setting::Linker,
                        from: linker,
                        to: Some("zig".into()),
                        source: Some(source),
                        reason: "zig links for the target".into(),
                    });
                }
            }
            Backend::Cargo => {
                if let Some(o) = cargo_config.linker_override(t, host_arch) {
                    overrides.push(Override {
                        target: Some(t.triple.clone()),
                        setting: Setting::Linker,
                        from: o.configured,
                        to: Some("rust-lld".into()),
                        source: Some(o.source),
                        reason: o.reason,
                    });
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
    (overrides, env)
}

/// The user's rustflags for `t` with what can't work removed, when anything must be.
fn rustflags_fix(
    ws: &Workspace,
    config: &CargoConfig,
    backend: Backend,
    t: &Target,
) -> Option<RustflagsFix> {
    let (flags, source) = config.rustflags(t)?;
    let kiln_links = match backend {
        Backend::Zig => true,
        Backend::Cargo => {
            config.linker_override(t, std::env::consts::ARCH).is_some()
                || (config.linker(t).is_none() && t.is_musl())
        }
        Backend::Cross => false,
    };
    fix_rustflags(&flags, Some(&source), t, kiln_links, || {
        target_cpus(&ws.root, &t.triple)
    })
}

/// The gate for native libraries not built yet, when cargo can run beside their
/// build: not with a wrapper of the user's (kiln must be the wrapper that holds the
/// build scripts), nor when a `-sys` crate's build script is compiled already (cargo
/// could run it again without compiling it, before the library exists).
fn gate(
    ws: &Workspace,
    config: &CargoConfig,
    sel: &Selection,
    native_root: &Path,
) -> Result<Option<NativeGate>> {
    let mut krates = std::collections::BTreeSet::new();
    for (name, _) in &sel.units {
        let pkg = ws.member(name).expect("resolved package");
        let deps = ws.dependencies_with_paths(
            pkg,
            &kiln_toolchain::on_any(&sel.targets),
            kiln_native::is_relevant,
        );
        for t in &sel.targets {
            for p in kiln_native::check(&deps, t, ws.config.provision_native != Some(false))? {
                if !kiln_native::is_intact(&kiln_native::prefix(native_root, &p, t)) {
                    krates.insert(p.krate);
                }
            }
        }
    }
    let config_wrapper = config.files().any(|(_, t)| {
        t.get("build")
            .and_then(|b| b.get("rustc-wrapper"))
            .is_some()
    });
    if krates.is_empty()
        || ws.settings.rustc_wrapper
        || config_wrapper
        || krates
            .iter()
            .any(|k| build_script_compiled(&ws.target_dir, k))
    {
        return Ok(None);
    }
    Ok(Some(NativeGate {
        path: ws.target_dir.join("kiln/native-gate"),
        gated: krates.into_iter().collect::<Vec<_>>().join(","),
    }))
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

/// Where provisioned native libraries go: with the cache, else (no cache, or only
/// naming them) under `target/`.
pub fn native_root(ws: &Workspace, cache: Option<&kiln_local_cache::LocalCache>) -> PathBuf {
    cache.map_or_else(|| ws.target_dir.join("kiln/native"), |c| c.native_dir())
}

/// Whether the root manifest's `[profile.<name>]` sets `key`.
fn profile_sets_in_manifest(ws: &Workspace, profile: &str, key: &str) -> bool {
    ws.root_manifest
        .get("profile")
        .and_then(|p| p.get(profile))
        .and_then(|p| p.get(key))
        .is_some()
}

/// sccache to use as `RUSTC_WRAPPER`: `on` requires it, `off` never, and `auto` (the
/// default) uses it where it pays: installed and given a shared storage backend
/// ([`shared_sccache_backend`]) or a build farm (`cache.dist`). A `RUSTC_WRAPPER` the user set is left alone, and so
/// are their `SCCACHE_*` settings (storage backend, size).
fn sccache(ws: &Workspace) -> Result<Option<PathBuf>> {
    if ws.settings.rustc_wrapper {
        return Ok(None);
    }
    let mode = &ws.settings.sccache;
    let auto_pays = || {
        ws.settings.dist.value.is_some()
            || shared_sccache_backend(|v| std::env::var_os(v)).is_some()
    };
    match (mode.value, kiln_fs::which("sccache")) {
        (Sccache::Off, _) | (Sccache::Auto, None) => Ok(None),
        (Sccache::Auto, Some(p)) => Ok(auto_pays().then_some(p)),
        (Sccache::On, Some(p)) => Ok(Some(p)),
        (Sccache::On, None) => Err(kiln_diagnostics::Error::environment(format!(
            "sccache is required ({}) but not installed",
            mode.origin
        ))
        .hint("install it (`cargo install sccache`, or `apt-get install sccache`), or set `sccache = \"auto\"`")),
    }
}

/// The metrics of the last build in this target dir, for the memory estimate.
fn last_metrics(target_dir: &Path) -> Option<kiln_metrics::BuildMetrics> {
    let bytes = std::fs::read(target_dir.join("kiln/metrics/last.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Refuses, before anything compiles, a unit whose build graph holds a member with a
/// git submodule that isn't checked out: its build script or an `include_str!` would
/// fail on the missing files minutes into the build (lemmy's translations).
fn refuse_missing_submodules(
    ws: &Workspace,
    pkg: &kiln_workspace::Package,
    platforms: kiln_workspace::Platforms,
    missing: &[PathBuf],
) -> Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    let members = ws.dependencies_with_paths(pkg, platforms, |n| ws.member(n).is_some());
    for m in members.iter().filter_map(|d| ws.member(&d.name)) {
        let Some(sub) = missing.iter().find(|s| s.starts_with(&m.dir)) else {
            continue;
        };
        let rel = sub.strip_prefix(&ws.root).unwrap_or(sub);
        return Err(kiln_diagnostics::Error::environment(format!(
            "the git submodule `{}` is not checked out, and `{}` (built for `{}`) holds it",
            rel.display(),
            m.name,
            pkg.name
        ))
        .hint("run `git submodule update --init --recursive` (or clone with `--recursive`), then build again"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_linker_is_replaced_per_backend_as_data() {
        let c = CargoConfig::from_text("[target.aarch64-unknown-linux-musl]\nlinker = \"clang\"\n")
            .unwrap();
        let targets = [
            Target::parse("amd64").unwrap(),
            Target::parse("arm64").unwrap(),
        ];
        let (o, env) = linker_settings(&c, Backend::Cargo, &targets, "x86_64");
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].target.as_deref(), Some("aarch64-unknown-linux-musl"));
        assert_eq!(
            (o[0].from.as_str(), o[0].to.as_deref()),
            ("clang", Some("rust-lld"))
        );
        assert_eq!(
            env,
            [
                (
                    "CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER".to_string(),
                    "rust-lld".to_string()
                ),
                (
                    "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER".to_string(),
                    "rust-lld".to_string()
                ),
            ]
        );
        let (o, env) = linker_settings(&c, Backend::Zig, &targets, "x86_64");
        assert_eq!(o[0].to.as_deref(), Some("zig"));
        assert!(env.is_empty(), "zig links itself");
        // On an arm64 host, clang links arm64: nothing to override.
        let (o, _) = linker_settings(&c, Backend::Cargo, &targets, "aarch64");
        assert!(o.is_empty());
    }

    #[test]
    fn auto_sccache_wants_storage_that_outlives_the_machine() {
        let with = |pairs: &'static [(&'static str, &'static str)]| {
            shared_sccache_backend(move |v| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == v)
                    .map(|(_, val)| OsString::from(val))
            })
        };
        assert_eq!(with(&[]), None, "a local disk cache alone");
        assert_eq!(
            with(&[("SCCACHE_DIR", "/x"), ("SCCACHE_CACHE_SIZE", "9G")]),
            None
        );
        assert_eq!(with(&[("SCCACHE_GHA_ENABLED", "false")]), None);
        assert_eq!(with(&[("SCCACHE_BUCKET", "")]), None);
        assert_eq!(
            with(&[("SCCACHE_GHA_ENABLED", "true")]),
            Some("SCCACHE_GHA_ENABLED")
        );
        assert_eq!(
            with(&[("SCCACHE_REDIS_ENDPOINT", "redis://127.0.0.1")]),
            Some("SCCACHE_REDIS_ENDPOINT")
        );
        assert_eq!(with(&[("SCCACHE_BUCKET", "b")]), Some("SCCACHE_BUCKET"));
    }
}
