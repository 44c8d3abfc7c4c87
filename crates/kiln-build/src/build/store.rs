//! After cargo: what it built is learned from and cached (under the key future
//! lookups compute), every artifact gets its complete record, and all are installed
//! into the store at once.

use super::{learned_targets, BuildContext, Built};
use crate::analysis::{Analysis, UnitPlan, UnitState};
use crate::plan::Plan;
use kiln_artifacts::NewArtifact;
use kiln_diagnostics::{Error, Result};
use kiln_local_cache::{Artifact, BinaryEntry, Entry, LocalCache, Origin};
use kiln_schema::{ArtifactRecord, Warning};
use std::path::{Path, PathBuf};

/// Seconds since the Unix epoch, for records' creation times.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Caches what cargo built, then installs every unit's artifact (built or restored)
/// into the store in one step. Returns the records written and the new cache
/// entries (to upload).
pub(super) fn install(
    cx: &BuildContext<'_>,
    analysis: &Analysis,
    units: &mut [UnitPlan],
    built: Vec<Built>,
) -> Result<(Vec<ArtifactRecord>, Vec<Entry>)> {
    // Learn what every build script declared before computing any final key, so
    // each key sees all of it (the next lookup will); and hash the sources again, to
    // notice an edit made while cargo ran.
    analysis.rehash();
    if let Some(cache) = cx.cache() {
        for (step, target) in learned_targets(&built, units) {
            analysis.learn(step, target, cache);
        }
    }
    let mut artifacts = Vec::new();
    let mut new_entries = Vec::new();
    for b in built {
        let Some(unit) = units
            .iter_mut()
            .find(|u| u.step == b.step && u.bin == b.bin && u.target.triple == b.triple)
        else {
            continue;
        };
        if unit.state != UnitState::Rebuild {
            continue;
        }
        let entry = cx
            .cache()
            .and_then(|c| cache_built(cx, analysis, c, unit, &b.path));
        let digest = entry.as_ref().map(|e| (e.sha256.clone(), e.size));
        let key = entry.as_ref().map(|e| e.key.clone());
        artifacts.push(new_artifact(cx, analysis, unit, b.path, digest, key)?);
        new_entries.extend(entry);
    }
    for unit in units.iter().filter(|u| u.state == UnitState::Restore) {
        let (entry, blob) = unit.hit.as_ref().expect("restore has a hit");
        let digest = Some((entry.sha256.clone(), entry.size));
        let key = Some(entry.key.clone());
        artifacts.push(new_artifact(cx, analysis, unit, blob.clone(), digest, key)?);
    }
    let records = if artifacts.is_empty() {
        Vec::new()
    } else {
        let lock = cx.store.lock()?;
        cx.store.install(&lock, artifacts)?
    };
    Ok((records, new_entries))
}

/// Caches the binary cargo built under the key future lookups will compute (which
/// includes what its build scripts declared).
fn cache_built(
    cx: &BuildContext<'_>,
    analysis: &Analysis,
    cache: &LocalCache,
    unit: &mut UnitPlan,
    path: &Path,
) -> Option<Entry> {
    let plan: &Plan = cx.plan;
    let step = &plan.steps[unit.step];
    let inputs = analysis.inputs_now(plan, unit, Some(cache));
    // Cargo read the sources somewhere between the two hashings: if they differ, the
    // binary's inputs are unknown and it must not be cached under either key.
    let edited: Vec<kiln_schema::Change> = kiln_fingerprint::diff(&unit.inputs, &inputs)
        .into_iter()
        // Files both keys cover: the second may cover fewer (a first build learns
        // what the compile read) or more (a new `mod`).
        .filter(|c| {
            c.old.is_some()
                && c.new.is_some()
                && matches!(c.id, kiln_fingerprint::InputId::File { .. })
        })
        .collect();
    if !edited.is_empty() {
        cx.observer.warn(Warning::EditedDuringBuild {
            binary: unit.bin.clone(),
            changes: edited,
        });
        return None;
    }
    let not_cached = |error: String| Warning::NotCached {
        binary: unit.bin.clone(),
        target: unit.target.triple.clone(),
        error,
    };
    let (sha256, size) = match kiln_fs::sha256_file(path) {
        Ok(digest) => digest,
        Err(e) => {
            cx.observer
                .warn(not_cached(format!("can't read `{}`: {e}", path.display())));
            return None;
        }
    };
    unit.key = inputs.key();
    let entry = Entry {
        key: unit.key.clone(),
        target: unit.target.build_target(),
        sha256,
        size,
        created: unix_now(),
        artifact: Artifact::Binary(BinaryEntry {
            package: unit.package.clone(),
            binary: unit.bin.clone(),
            version: step.version.clone(),
            profile: plan.profile.clone(),
            rustc: analysis.rustc_line().to_string(),
            backend: step.invocation.backend.kind(),
            overrides: step.invocation.overrides.clone(),
            inputs,
        }),
        signatures: Vec::new(),
        origin: Some(Origin::Built),
    };
    match cache.put(entry, path) {
        Ok(e) => Some(e),
        Err(e) => {
            cx.observer.warn(not_cached(e.detail()));
            None
        }
    }
}

/// The complete record of a unit's artifact, with the digest of `source` (known from
/// the cache entry, or hashed here when the binary was not cached).
fn new_artifact(
    cx: &BuildContext<'_>,
    analysis: &Analysis,
    unit: &UnitPlan,
    source: PathBuf,
    digest: Option<(String, u64)>,
    key: Option<String>,
) -> Result<NewArtifact> {
    let (plan, about) = (cx.plan, &cx.about);
    let (sha256, size) = match digest {
        Some(d) => d,
        None => kiln_fs::sha256_file(&source).map_err(|e| Error::io("read", &source, e))?,
    };
    let step = &plan.steps[unit.step];
    let t = &unit.target;
    let mimalloc = about.mimalloc_for(&unit.bin, &unit.target);
    let (linked, components): (Vec<_>, Vec<_>) =
        crate::linked::linked(plan, unit, mimalloc, analysis.rustc_line())
            .into_iter()
            .unzip();
    let documents = unit
        .graph
        .as_ref()
        .map(|g| {
            let g = kiln_sbom::Graph {
                linked: components,
                ..g.clone()
            };
            about.documents(&g, &sha256)
        })
        .unwrap_or_default();
    let auditable = crate::analysis::links_audit_section(cx.ws)
        && unit
            .graph
            .as_ref()
            .is_some_and(|g| kiln_sbom::audit_object(g).is_some());
    Ok(NewArtifact {
        source,
        documents,
        record: ArtifactRecord {
            path: kiln_artifacts::artifact_path(&t.os, &t.arch, &unit.bin),
            os: t.os.clone(),
            arch: t.arch.clone(),
            target: t.build_target(),
            package: step.package.clone(),
            binary: unit.bin.clone(),
            version: step.version.clone(),
            sha256,
            size,
            profile: plan.profile.clone(),
            git: analysis.git().clone(),
            rustc: analysis.rustc_line().to_string(),
            backend: step.invocation.backend.kind(),
            overrides: step.invocation.overrides.clone(),
            sboms: Vec::new(),
            auditable,
            key: Some(key.unwrap_or_else(|| unit.key.clone())),
            allocator: mimalloc.then(|| format!("mimalloc {}", kiln_native::MIMALLOC_VERSION)),
            linked,
        },
    })
}
