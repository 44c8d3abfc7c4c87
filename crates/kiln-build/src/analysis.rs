//! Checking a plan against the cache and the store: every binary x target gets its
//! key and is found fresh, restorable, or to be built (with the reason).

use crate::execute::Observer;
use crate::keys::KeyContext;
use crate::plan::Plan;
use kiln_artifacts::Store;
use kiln_cache::{Entry, LocalCache, Lookup};
use kiln_diagnostics::Result;
use kiln_fingerprint::{diff, Inputs};
use kiln_remote::RemoteCache;
use kiln_schema::GitInfo;
use kiln_toolchain::{rustc_version, zig_version, Backend, Target, ZigProbe};
use kiln_workspace::Workspace;
use std::path::PathBuf;

/// What happens to one binary x target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitState {
    /// The artifact store already holds exactly the cached binary.
    Fresh,
    /// The cache has it: copy it into the store.
    Restore,
    /// Not cached: cargo builds it.
    Build,
}

impl UnitState {
    /// `fresh`, `restore` or `rebuild`, as `kiln plan` prints it.
    pub fn label(self) -> &'static str {
        match self {
            UnitState::Fresh => "fresh",
            UnitState::Restore => "restore",
            UnitState::Build => "rebuild",
        }
    }
}

/// One binary for one target, with its key and fate.
#[derive(Debug, Clone)]
pub struct UnitPlan {
    /// Index of its step in the plan.
    pub step: usize,
    /// Package.
    pub package: String,
    /// Binary.
    pub bin: String,
    /// Target.
    pub target: Target,
    /// Cache key.
    pub key: String,
    /// Fresh, restore or build.
    pub state: UnitState,
    /// For a build: why (the inputs that changed since the last cached build).
    pub reasons: Vec<String>,
    pub(crate) hit: Option<(Box<Entry>, PathBuf)>,
    /// The inputs hashed into `key`, as they were when analysed.
    pub(crate) inputs: Inputs,
}

impl UnitPlan {
    /// The cache entry found for this unit, if it was a hit.
    pub fn cached(&self) -> Option<&Entry> {
        self.hit.as_ref().map(|(e, _)| e.as_ref())
    }
}

/// The plan checked against the cache and the store.
pub struct Analysis<'a> {
    /// Every binary x target.
    pub units: Vec<UnitPlan>,
    pub(crate) ctx: KeyContext<'a>,
    pub(crate) rustc_line: String,
    pub(crate) git: GitInfo,
}

impl Analysis<'_> {
    /// The ids of the learned build-script inputs the plan's keys use.
    pub fn learned_ids(&self) -> std::collections::BTreeSet<String> {
        self.ctx.learned_ids()
    }
}

/// Computes every unit's key and looks it up: what is fresh, restorable, or to build.
pub fn analyze<'a>(
    ws: &'a Workspace,
    plan: &'a Plan,
    store: &Store,
    cache: Option<&LocalCache>,
    remote: Option<&RemoteCache>,
    observer: &dyn Observer,
) -> Result<Analysis<'a>> {
    let uses_zig = plan
        .steps
        .iter()
        .any(|s| s.invocation.backend == Backend::Zig);
    // Probes and `cargo tree` are independent process spawns: run them side by side.
    let (ctx, rustc, git, zig) = std::thread::scope(|s| {
        let git = s.spawn(|| crate::git_info(&ws.root));
        let zig = s.spawn(|| {
            if uses_zig {
                zig_version_memo(cache)
            } else {
                None
            }
        });
        let rustc = s.spawn(|| rustc_version(&ws.root));
        let ctx = KeyContext::new(ws, plan, cache);
        let join = "probe thread";
        (
            ctx,
            rustc.join().expect(join),
            git.join().expect(join),
            zig.join().expect(join),
        )
    });
    let rustc = rustc?;
    let rustc_line = rustc.lines().next().unwrap_or_default().to_string();
    let mut ctx = ctx?;
    ctx.set_toolchain(rustc, zig);
    let remote = remote.filter(|r| r.alive());
    if let (Some(r), Some(c)) = (remote, cache) {
        r.fetch_learned(&ctx.learned_ids(), c);
    }
    let mut keyed = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        for target in &step.targets {
            for bin in &step.bins {
                let inputs = ctx.inputs(i, step, bin, target, cache);
                keyed.push((i, step, target, bin, inputs.key(), inputs));
            }
        }
    }
    // What the local cache lacks, the remote may have: fetched into the local cache
    // (verified) before the lookups below.
    if let (Some(r), Some(c)) = (remote, cache) {
        let missing: Vec<String> = keyed
            .iter()
            .map(|k| k.4.clone())
            .filter(|k| !c.contains(k))
            .collect();
        if !missing.is_empty() {
            r.fetch(&missing, c);
        }
    }
    let stored = store.read_checksums().unwrap_or_default();
    let mut units = Vec::new();
    for (i, step, target, bin, key, inputs) in keyed {
        let mut unit = UnitPlan {
            step: i,
            package: step.package.clone(),
            bin: bin.clone(),
            target: target.clone(),
            key: key.clone(),
            state: UnitState::Build,
            reasons: Vec::new(),
            hit: None,
            inputs: Inputs::default(),
        };
        match cache.map_or(Lookup::Miss, |c| c.get(&key)) {
            Lookup::Hit(entry, blob) => {
                let rel = format!("{}/{}/{bin}", target.os, target.arch);
                let in_store = stored
                    .artifacts
                    .iter()
                    .any(|a| a.path == rel && a.sha256 == entry.sha256)
                    && kiln_fs::sha256_file(&store.root().join(&rel))
                        .is_ok_and(|(s, _)| s == entry.sha256);
                unit.state = if in_store {
                    UnitState::Fresh
                } else {
                    UnitState::Restore
                };
                unit.hit = Some((entry, blob));
            }
            Lookup::Corrupt(why) => {
                observer.warn(&format!("{why}; it was removed and will be rebuilt"));
                unit.reasons.push("its cache entry was corrupt".into());
            }
            Lookup::Miss => unit.reasons = miss_reasons(cache, &unit, &inputs),
        }
        unit.inputs = inputs;
        units.push(unit);
    }
    ctx.files.save();
    Ok(Analysis {
        units,
        ctx,
        rustc_line,
        git,
    })
}

/// zig's version, remembered in the cache while the same zig binary would run (see
/// [`ZigProbe`]): probing it through a Python shim costs more than a whole restore.
fn zig_version_memo(cache: Option<&LocalCache>) -> Option<String> {
    let Some(cache) = cache else {
        return zig_version();
    };
    let key = kiln_fs::sha256_hex(ZigProbe::lookup_key().as_bytes());
    let remembered = cache.memo("zig", &key).and_then(|b| {
        let text = String::from_utf8(b).ok()?;
        let mut lines = text.lines();
        let (exe, stamp, version) = (lines.next()?, lines.next()?, lines.next()?);
        let probe = ZigProbe {
            exe: exe.into(),
            stamp: stamp.into(),
            version: version.into(),
        };
        probe.still_valid().then_some(probe.version)
    });
    if remembered.is_some() {
        return remembered;
    }
    match ZigProbe::locate() {
        Some(p) => {
            let text = format!("{}\n{}\n{}\n", p.exe.display(), p.stamp, p.version);
            cache.set_memo("zig", &key, text.as_bytes());
            Some(p.version)
        }
        None => zig_version(),
    }
}

/// Why a unit must be built: what differs from the newest cached build of it.
fn miss_reasons(
    cache: Option<&LocalCache>,
    unit: &UnitPlan,
    inputs: &kiln_fingerprint::Inputs,
) -> Vec<String> {
    let Some(cache) = cache else {
        return vec!["the cache is off".into()];
    };
    let Some(last) = cache.latest(&unit.package, &unit.target.triple, &unit.bin) else {
        return vec!["not built before".into()];
    };
    let changes = diff(&last.inputs, inputs);
    let mut out: Vec<String> = changes
        .iter()
        .take(3)
        .map(|(name, how)| {
            let shown = name.strip_prefix("file:").unwrap_or(name);
            format!("{shown} {how}")
        })
        .collect();
    if changes.len() > 3 {
        out.push(format!("{} more inputs changed", changes.len() - 3));
    }
    if out.is_empty() {
        out.push("the cached build was evicted".into());
    }
    out
}
