//! Checking a plan against the cache and the store: every binary x target gets its
//! key and is found fresh, restorable, or to be built (with the reason).

use crate::allocator::{add_allocator_input, musl_malloc_note, wants_mimalloc};
use crate::keys::{KeyContext, KeySources, Toolchain};
use crate::observer::Observer;
use crate::plan::Plan;
use kiln_artifacts::Store;
use kiln_diagnostics::Result;
use kiln_fingerprint::{diff, Inputs};
use kiln_local_cache::{Entry, LocalCache, Lookup};
use kiln_remote::RemoteCache;
pub use kiln_schema::UnitState;
use kiln_schema::{GitInfo, Reason, Warning};
use kiln_toolchain::{rustc_version, zig_version, Backend, Target, ZigProbe};
use kiln_workspace::Workspace;
use std::path::PathBuf;

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
    pub reasons: Vec<Reason>,
    pub(crate) hit: Option<(Box<Entry>, PathBuf)>,
    /// The inputs hashed into `key`, as they were when analysed.
    pub(crate) inputs: Inputs,
    /// Its dependency graph, when the audit section or an SBOM needs it.
    pub(crate) graph: Option<kiln_sbom::Graph>,
}

impl UnitPlan {
    /// The cache entry found for this unit, if it was a hit.
    pub fn cached(&self) -> Option<&Entry> {
        self.hit.as_ref().map(|(e, _)| e.as_ref())
    }

    /// What a cache lookup of this unit asks for.
    pub fn wanted(&self) -> kiln_local_cache::Wanted {
        kiln_local_cache::Wanted {
            key: self.key.clone(),
            subject: kiln_local_cache::Subject::Binary {
                package: self.package.clone(),
                binary: self.bin.clone(),
            },
            target: self.target.build_target(),
        }
    }
}

/// The plan checked against the cache and the store.
pub struct Analysis {
    /// Every binary x target.
    pub units: Vec<UnitPlan>,
    ctx: KeyContext,
    /// Whether binaries carry their dependency list (a key input then).
    auditable: bool,
    /// The allocator setting and zig's version (which compiles mimalloc).
    allocator: Option<kiln_config::AllocatorConfig>,
    zig: Option<String>,
    rustc_line: String,
    git: GitInfo,
}

impl Analysis {
    /// The ids of the learned build-script inputs the plan's keys use.
    pub fn learned_ids(&self) -> std::collections::BTreeSet<String> {
        self.ctx.learned_ids()
    }

    /// `rustc -V` of the toolchain, as artifacts record it.
    pub fn rustc_line(&self) -> &str {
        &self.rustc_line
    }

    /// The git state of the workspace.
    pub fn git(&self) -> &GitInfo {
        &self.git
    }

    /// Forgets file hashes, so the next keys see the sources as they are now.
    pub(crate) fn rehash(&self) {
        self.ctx.rehash();
    }

    /// Records what the build scripts of a step declared for `target`.
    pub(crate) fn learn(&self, step: usize, target: &Target, cache: &LocalCache) {
        self.ctx.learn(step, target, cache);
    }

    /// A unit's inputs as they are now (after a build, with what it learned).
    pub(crate) fn inputs_now(
        &self,
        plan: &Plan,
        unit: &UnitPlan,
        cache: Option<&LocalCache>,
    ) -> Inputs {
        let step = &plan.steps[unit.step];
        let mut inputs = self
            .ctx
            .inputs(unit.step, step, &unit.bin, &unit.target, cache);
        if self.auditable {
            add_audit_input(&mut inputs, unit.graph.as_ref());
        }
        add_allocator_input(
            &mut inputs,
            &self.allocator,
            &unit.bin,
            &unit.target,
            self.zig.as_deref(),
        );
        inputs
    }
}

/// The dependency list linked into a binary is part of it: its digest is a key input.
fn add_audit_input(inputs: &mut Inputs, graph: Option<&kiln_sbom::Graph>) {
    if let Some(g) = graph {
        inputs.add(
            kiln_fingerprint::InputId::AuditSection,
            kiln_fingerprint::digest(kiln_sbom::audit_json(g).as_bytes()),
        );
    }
}

/// Computes every unit's key and looks it up: what is fresh, restorable, or to build.
pub fn analyze(
    ws: &Workspace,
    plan: &Plan,
    store: &Store,
    cache: Option<&LocalCache>,
    remote: Option<&RemoteCache>,
    observer: &dyn Observer,
) -> Result<Analysis> {
    let mimalloc = wants_mimalloc(ws, plan);
    // Checked before any probe: nothing is worth doing with this setting.
    if ws.settings.rustc_wrapper && mimalloc {
        return Err(kiln_diagnostics::Error::usage(
            "`allocator = \"mimalloc\"` needs kiln as the rustc wrapper, and RUSTC_WRAPPER names another",
        )
        .hint("unset RUSTC_WRAPPER (kiln runs sccache itself when it is installed), or set `allocator = \"system\"`"));
    }
    let uses_zig = mimalloc
        || plan
            .steps
            .iter()
            .any(|s| s.invocation.backend == Backend::Zig);
    // Probes and `cargo tree` are independent process spawns: run them side by side.
    let (sources, rustc, git, zig) = std::thread::scope(|s| {
        let git = s.spawn(|| crate::git_info(&ws.root));
        let zig = s.spawn(|| {
            if uses_zig {
                zig_version_memo(cache)
            } else {
                None
            }
        });
        let rustc = s.spawn(|| rustc_version(&ws.root));
        let sources = KeySources::gather(ws, plan, cache);
        let join = "probe thread";
        (
            sources,
            rustc.join().expect(join),
            git.join().expect(join),
            zig.join().expect(join),
        )
    });
    // No zig yet: the one `kiln setup` would install, so restoring needs no zig.
    let zig = zig.or_else(|| uses_zig.then(|| kiln_toolchain::ZIG_VERSION.to_string()));
    let rustc = rustc?;
    let rustc_line = rustc.lines().next().unwrap_or_default().to_string();
    let ctx = KeyContext::new(
        sources?,
        Toolchain {
            rustc,
            zig: zig.clone(),
        },
    );
    let remote = remote.filter(|r| r.alive());
    if let (Some(r), Some(c)) = (remote, cache) {
        r.fetch_learned(&ctx.learned_ids(), c);
    }
    if let Some(note) = musl_malloc_note(ws, plan, &ctx) {
        observer.note(note);
    }
    let auditable = links_audit_section(ws);
    let formats = sbom_formats(ws);
    let wants_graph = auditable || !formats.is_empty();
    let mut keyed = Vec::new();
    let mut graphs = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        for target in &step.targets {
            for bin in &step.bins {
                let mut inputs = ctx.inputs(i, step, bin, target, cache);
                let graph = wants_graph
                    .then(|| {
                        crate::sbom::binary_graph(
                            ws,
                            &step.package,
                            bin,
                            target,
                            ctx.graph(i, &target.triple),
                            ctx.lock(),
                        )
                    })
                    .flatten();
                if auditable {
                    add_audit_input(&mut inputs, graph.as_ref());
                }
                add_allocator_input(
                    &mut inputs,
                    &ws.config.allocator,
                    bin,
                    target,
                    zig.as_deref(),
                );
                keyed.push((i, step, target, bin, inputs.key(), inputs));
                graphs.push(graph);
            }
        }
    }
    // What the local cache lacks, the remote may have: fetched into the local cache
    // (verified) before the lookups below.
    if let (Some(r), Some(c)) = (remote, cache) {
        let missing: Vec<kiln_local_cache::Wanted> = keyed
            .iter()
            .filter(|k| !c.has_usable(&k.4))
            .map(|(_, step, target, bin, key, _)| kiln_local_cache::Wanted {
                key: key.clone(),
                subject: kiln_local_cache::Subject::Binary {
                    package: step.package.clone(),
                    binary: bin.to_string(),
                },
                target: target.build_target(),
            })
            .collect();
        if !missing.is_empty() {
            r.fetch(&missing, c);
        }
    }
    let stored = match store.read_checksums() {
        Ok(c) => c,
        Err(e) => {
            // Refused before compiling when this build can't rewrite it whole.
            let paths: Vec<String> = keyed
                .iter()
                .map(|(_, _, target, bin, _, _)| {
                    kiln_artifacts::artifact_path(&target.os, &target.arch, bin)
                })
                .collect();
            store.check_rewrite(&paths, &e)?;
            observer.warn(Warning::StoreManifestUnreadable {
                path: kiln_fs::display_path(&store.root().join("checksums.json")),
                error: e.detail(),
            });
            kiln_schema::Checksums::default()
        }
    };
    let mut units = Vec::new();
    for ((i, step, target, bin, key, inputs), graph) in keyed.into_iter().zip(graphs) {
        let mut unit = UnitPlan {
            step: i,
            package: step.package.clone(),
            bin: bin.clone(),
            target: target.clone(),
            key: key.clone(),
            state: UnitState::Rebuild,
            reasons: Vec::new(),
            hit: None,
            inputs,
            graph,
        };
        let lookup = cache.map_or(Lookup::Miss, |c| c.get(&key));
        if let Lookup::Corrupt(problem) = &lookup {
            observer.warn(Warning::CorruptCacheEntry {
                problem: problem.clone(),
            });
        }
        let sboms: Vec<&str> = if unit.graph.is_some() {
            formats.iter().map(|f| f.format_name()).collect()
        } else {
            Vec::new()
        };
        settle(&mut unit, lookup, cache, |sha| {
            let rel = kiln_artifacts::artifact_path(&target.os, &target.arch, bin);
            in_store(store, &stored, &rel, sha, &sboms)
        });
        units.push(unit);
    }
    ctx.save();
    Ok(Analysis {
        units,
        ctx,
        auditable,
        allocator: ws.config.allocator.clone(),
        zig,
        rustc_line,
        git,
    })
}

/// Whether kiln links each binary's dependency list in: asked for (the default), and
/// kiln is the rustc wrapper (a `RUSTC_WRAPPER` of the user's takes that place).
pub(crate) fn links_audit_section(ws: &Workspace) -> bool {
    ws.config.auditable != Some(false) && !ws.settings.rustc_wrapper
}

/// The SBOM formats the workspace asks for (default: SPDX).
pub(crate) fn sbom_formats(ws: &Workspace) -> Vec<kiln_config::SbomFormat> {
    let mut f = ws
        .config
        .sbom
        .clone()
        .unwrap_or_else(|| vec![kiln_config::SbomFormat::Spdx]);
    f.sort();
    f.dedup();
    f
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
        probe.still_valid().then(|| {
            probe.remember();
            probe.version
        })
    });
    if remembered.is_some() {
        return remembered;
    }
    match ZigProbe::locate() {
        Some(p) => {
            let text = format!("{}\n{}\n{}\n", p.exe.display(), p.stamp, p.version);
            cache.set_memo("zig", &key, text.as_bytes());
            p.remember();
            Some(p.version)
        }
        None => zig_version(),
    }
}

/// Whether the store holds exactly the binary `sha256` at `rel`, by its record and
/// by its content, with its `.sha256` and `.version` sidecars as kiln writes them and
/// the SBOMs `sboms` asks for (by format) unchanged on disk.
fn in_store(
    store: &Store,
    stored: &kiln_schema::Checksums,
    rel: &str,
    sha256: &str,
    sboms: &[&str],
) -> bool {
    let Some(record) = stored
        .artifacts
        .iter()
        .find(|a| a.path == rel && a.sha256 == sha256)
    else {
        return false;
    };
    let formats: Vec<&str> = record.sboms.iter().map(|s| s.format.as_str()).collect();
    let sidecar = |ext: &str, text: String| {
        let path = store.root().join(format!("{rel}.{ext}"));
        std::fs::read(path).is_ok_and(|b| b == text.as_bytes())
    };
    formats == sboms
        && sidecar(
            "sha256",
            kiln_artifacts::sha256_sidecar(sha256, &record.binary),
        )
        && sidecar("version", kiln_artifacts::version_sidecar(&record.version))
        && record.sboms.iter().all(|s| {
            kiln_fs::sha256_file(&store.root().join(&s.path)).is_ok_and(|(h, _)| h == s.sha256)
        })
        && kiln_fs::sha256_file(&store.root().join(rel)).is_ok_and(|(s, _)| s == sha256)
}

/// Decides a unit's fate from its cache lookup: fresh when the store already holds
/// the cached binary, restore on any other hit, build (with the reasons) otherwise.
fn settle(
    unit: &mut UnitPlan,
    lookup: Lookup,
    cache: Option<&LocalCache>,
    stored: impl FnOnce(&str) -> bool,
) {
    match lookup {
        Lookup::Hit(entry, blob) => {
            unit.state = match stored(&entry.sha256) {
                true => UnitState::Fresh,
                false => UnitState::Restore,
            };
            unit.hit = Some((entry, blob));
        }
        Lookup::Corrupt(_) => {
            unit.state = UnitState::Rebuild;
            unit.reasons = vec![Reason::CorruptEntry];
        }
        Lookup::Untrusted => {
            unit.state = UnitState::Rebuild;
            unit.reasons = vec![Reason::UntrustedEntry];
        }
        Lookup::Miss => {
            unit.state = UnitState::Rebuild;
            unit.reasons = miss_reasons(cache, unit);
        }
    }
}

/// Why a unit must be built: every input that differs from the newest cached build
/// of it (the renderer shows the first few).
fn miss_reasons(cache: Option<&LocalCache>, unit: &UnitPlan) -> Vec<Reason> {
    let Some(cache) = cache else {
        return vec![Reason::CacheOff];
    };
    let Some(last) = cache.latest(&unit.package, &unit.target.triple, &unit.bin) else {
        return vec![Reason::NotBuiltBefore];
    };
    let Some(last) = last.binary() else {
        return vec![Reason::NotBuiltBefore];
    };
    let out: Vec<Reason> = diff(&last.inputs, &unit.inputs)
        .into_iter()
        .map(|change| Reason::Changed {
            change: Box::new(change),
        })
        .collect();
    if out.is_empty() {
        return vec![Reason::Evicted];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_fingerprint::{InputId, RelPath};

    fn unit(inputs: Inputs) -> UnitPlan {
        UnitPlan {
            step: 0,
            package: "app".into(),
            bin: "app".into(),
            target: Target::parse("amd64").unwrap(),
            key: inputs.key(),
            state: UnitState::Rebuild,
            reasons: vec![],
            hit: None,
            inputs,
            graph: None,
        }
    }

    fn with_file(content: &[u8]) -> Inputs {
        let mut i = Inputs::new();
        i.add(
            InputId::File {
                path: RelPath::new(std::path::Path::new("app/src/main.rs")),
            },
            kiln_fingerprint::digest(content),
        );
        i
    }

    fn cache_with(dir: &std::path::Path, inputs: Inputs) -> LocalCache {
        let cache = LocalCache::open(Some(dir.join("cache"))).unwrap();
        let bin = dir.join("app");
        std::fs::write(&bin, b"binary").unwrap();
        let (sha256, size) = kiln_fs::sha256_file(&bin).unwrap();
        let entry = Entry {
            key: inputs.key(),
            target: "x86_64-unknown-linux-musl".into(),
            sha256,
            size,
            created: 0,
            artifact: kiln_local_cache::Artifact::Binary(kiln_local_cache::BinaryEntry {
                package: "app".into(),
                binary: "app".into(),
                version: "1.0.0".into(),
                profile: "release".into(),
                rustc: "rustc 1".into(),
                backend: kiln_schema::BackendKind::Cargo,
                overrides: vec![],
                inputs,
            }),
            signatures: Vec::new(),
            origin: Some(kiln_local_cache::Origin::Built),
        };
        cache.put(entry, &bin).unwrap();
        cache
    }

    #[test]
    fn a_hit_is_fresh_only_when_the_store_holds_it() {
        let d = tempfile::tempdir().unwrap();
        let cache = cache_with(d.path(), with_file(b"v1"));
        for (stored, state) in [(true, UnitState::Fresh), (false, UnitState::Restore)] {
            let mut u = unit(with_file(b"v1"));
            let lookup = cache.get(&u.key);
            settle(&mut u, lookup, Some(&cache), |_| stored);
            assert_eq!(u.state, state);
        }
    }

    #[test]
    fn a_miss_says_which_input_changed_in_words() {
        let d = tempfile::tempdir().unwrap();
        let cache = cache_with(d.path(), with_file(b"v1"));
        let mut u = unit(with_file(b"v2"));
        let lookup = cache.get(&u.key);
        settle(&mut u, lookup, Some(&cache), |_| false);
        assert_eq!(u.state, UnitState::Rebuild);
        let words: Vec<String> = u
            .reasons
            .iter()
            .map(|r| match r {
                Reason::Changed { change } => change.to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(words, ["app/src/main.rs changed"]);
        let mut off = unit(with_file(b"v2"));
        settle(&mut off, Lookup::Miss, None, |_| false);
        assert_eq!(off.reasons, [Reason::CacheOff]);
    }
}
