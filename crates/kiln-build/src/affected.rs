//! `kiln affected`: which binaries x targets a git change touches.
//!
//! The change is the diff from the merge-base of `base` and `head` (not `base`'s tip,
//! so a branch's set doesn't grow as main moves on) to `head`, or to the working tree
//! (uncommitted and untracked files included) when there is no `head`. Files map to
//! the workspace packages that own them; `Cargo.lock` to the packages whose entries
//! changed; the root manifest's shared sections, cargo config and toolchain files to
//! everything, by the same definitions the cache keys use
//! (`kiln_fingerprint::global`). A binary is affected when its build graph for that target (normal and
//! build dependencies, with its features) contains a changed package.

use crate::graphs::graphs;
use crate::keys::reads;
use crate::plan::Plan;
use kiln_diagnostics::{Error, Result};
use kiln_fingerprint::global::SharedFile;
use kiln_local_cache::LocalCache;
use kiln_workspace::git;
use kiln_workspace::Workspace;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One affected binary package on one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffectedUnit {
    /// The package.
    pub package: String,
    /// Its binaries in the selection.
    pub bins: Vec<String>,
    /// Target triple.
    pub triple: String,
    /// `linux-amd64`, as CI matrices name platforms.
    pub platform: String,
    /// The `--target` value kiln takes for it (`amd64`).
    pub target: String,
    /// The changed packages (or `everything`) that make it affected.
    pub because: Vec<String>,
}

/// The result of `kiln affected`.
#[derive(Debug, Clone)]
pub struct Affected {
    /// The merge-base commit the change is measured from.
    pub merge_base: String,
    /// Changed files, relative to the workspace root.
    pub files: Vec<String>,
    /// Workspace and external packages the change touches.
    pub changed: BTreeSet<String>,
    /// True when a change touches every binary (toolchain, profile, cargo config).
    pub everything: bool,
    /// Affected units, sorted.
    pub units: Vec<AffectedUnit>,
    /// Whether the container image changes: a binary in it or its settings
    /// (`[workspace.metadata.kiln.image]`) did, or everything is in scope. Decided
    /// before `--skip-cached`: a binary another run cached still changes the image.
    pub image: bool,
}

fn commit_of(root: &Path, rev: &str) -> Result<String> {
    git(root, &["rev-parse", "--verify", "-q", &format!("{rev}^{{commit}}")]).map(|s| s.trim().to_string()).map_err(|_| {
        let shallow = git(root, &["rev-parse", "--is-shallow-repository"]).is_ok_and(|s| s.trim() == "true");
        let mut e = Error::usage(format!("the revision `{rev}` is not in this git checkout"));
        if shallow {
            e = e.hint(format!(
                "this is a shallow clone: fetch more history (`git fetch --unshallow`, or `git fetch origin {rev}`); with actions/checkout set `fetch-depth: 0`"
            ));
        } else {
            e = e.hint("fetch it first (`git fetch origin`) or check the name");
        }
        e
    })
}

/// Computes what changed between `base` and `head` (or the working tree); with no
/// `base`, everything is affected (a first push, a new tag, `--all`).
pub fn affected(
    ws: &Workspace,
    plan: &Plan,
    cache: Option<&LocalCache>,
    base: Option<&str>,
    head: Option<&str>,
) -> Result<Affected> {
    let Some(base) = base else {
        return Ok(Affected {
            merge_base: String::new(),
            files: Vec::new(),
            changed: BTreeSet::new(),
            everything: true,
            units: units(ws, plan, &Changes::default(), true, cache)?,
            image: true,
        });
    };
    let root = &ws.root;
    if git(root, &["rev-parse", "--git-dir"]).is_err() {
        return Err(
            Error::usage(format!("`{}` is not in a git checkout", root.display())).hint(
                "`kiln affected` compares git revisions; run it in a clone of the repository",
            ),
        );
    }
    let base_commit = commit_of(root, base)?;
    let head_commit = commit_of(root, head.unwrap_or("HEAD"))?;
    let merge_base = git(root, &["merge-base", &base_commit, &head_commit]).map(|s| s.trim().to_string()).map_err(|_| {
        Error::usage(format!("`{base}` and `{}` have no common ancestor in this checkout", head.unwrap_or("HEAD")))
            .hint("the clone is probably shallow: fetch more history (`git fetch --unshallow`; actions/checkout `fetch-depth: 0`)")
    })?;
    let mut diff_args = vec![
        "diff",
        "--relative",
        "--name-only",
        "--no-renames",
        merge_base.as_str(),
    ];
    if let Some(h) = head {
        diff_args.push(h);
    }
    let mut files: BTreeSet<String> = git(root, &diff_args)
        .map_err(|e| Error::internal(format!("`git diff` failed: {e}")))?
        .lines()
        .map(String::from)
        .collect();
    if head.is_none() {
        let untracked =
            git(root, &["ls-files", "--others", "--exclude-standard"]).unwrap_or_default();
        files.extend(untracked.lines().map(String::from));
    }
    let mut changed = BTreeSet::new();
    let mut by_member: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut everything = false;
    let mut image_settings = false;
    let old_text =
        |f: &str| git(root, &["show", &format!("{merge_base}:./{f}")]).unwrap_or_default();
    let new_text = |f: &str| match head {
        Some(h) => git(root, &["show", &format!("{h}:./{f}")]).unwrap_or_default(),
        None => std::fs::read_to_string(root.join(f)).unwrap_or_default(),
    };
    for f in &files {
        if f == "Cargo.lock" {
            changed.extend(lock_changes(&old_text(f), &new_text(f)));
            continue;
        }
        // What touches every binary is defined once, with the cache keys.
        match SharedFile::of(Path::new(f)) {
            Some(shared) => {
                let (old, new) = (old_text(f), new_text(f));
                everything |= shared.changes_every_binary(&old, &new);
                if shared == SharedFile::RootManifest {
                    changed.extend(workspace_dependency_changes(&old, &new));
                    image_settings |= image_table(&old) != image_table(&new);
                }
            }
            None => {
                if let Some(m) = owner(ws, &root.join(f)) {
                    by_member.entry(m).or_default().push(f.clone());
                }
            }
        }
    }
    let changes = Changes {
        packages: changed.clone(),
        files: by_member,
    };
    changed.extend(changes.files.keys().cloned());
    let units = units(ws, plan, &changes, everything, cache)?;
    Ok(Affected {
        merge_base,
        files: files.into_iter().collect(),
        image: image_settings || !units.is_empty(),
        units,
        changed,
        everything,
    })
}

/// The image settings of a root manifest's text (`[workspace.metadata.kiln.image]`,
/// or a root package's), `None` when it has none or doesn't parse.
fn image_table(manifest: &str) -> Option<toml::Value> {
    let t: toml::Table = manifest.parse().ok()?;
    ["workspace", "package"].iter().find_map(|section| {
        t.get(*section)?
            .get("metadata")?
            .get("kiln")?
            .get("image")
            .cloned()
    })
}

/// What a change touched: packages as a whole (their `Cargo.lock` entries, a
/// workspace dependency) and members' files.
#[derive(Default)]
struct Changes {
    packages: BTreeSet<String>,
    /// Member -> its changed files, relative to the root.
    files: BTreeMap<String, Vec<String>>,
}

/// What each binary of a step read when it was last built (the union over them),
/// `None` when one has no record here or a proc macro of the graph reads files
/// cargo doesn't hear about: then every file of a member counts.
fn step_reads(
    ws: &Workspace,
    plan: &Plan,
    step: &crate::Step,
    triple: &str,
    graph: &kiln_fingerprint::DepGraph,
    cache: Option<&LocalCache>,
) -> Option<kiln_local_cache::Learned> {
    let cache = cache?;
    if reads::untracked(graph) {
        return None;
    }
    let dir = ws.member(&step.package).map(|m| relative(ws, &m.dir));
    let features = crate::keys::features_value(&plan.selection);
    let mut all = kiln_local_cache::Learned::default();
    for bin in &step.bins {
        let id = reads::record_id(
            &step.package,
            dir.as_deref(),
            bin,
            triple,
            &plan.selection.profile,
            &features,
        );
        all.merge(cache.learned(&id)?);
    }
    Some(all)
}

fn relative(ws: &Workspace, dir: &Path) -> std::path::PathBuf {
    dir.strip_prefix(&ws.root).unwrap_or(dir).to_path_buf()
}

/// The binaries x targets whose build graphs contain a changed package: one whose
/// `Cargo.lock` entry or dependency changed, or a member with a changed file the
/// binary's build reads (every file, without a record of what it read).
fn units(
    ws: &Workspace,
    plan: &Plan,
    changes: &Changes,
    everything: bool,
    cache: Option<&LocalCache>,
) -> Result<Vec<AffectedUnit>> {
    let graphs = graphs(ws, plan, None)?;
    let mut units = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        for t in &step.targets {
            let g = &graphs[&(i, t.triple.clone())];
            let read = step_reads(ws, plan, step, &t.triple, g, cache);
            let touched = |name: &str| {
                changes.packages.contains(name)
                    || changes.files.get(name).is_some_and(|files| {
                        let Some(r) = &read else { return true };
                        let dir = ws
                            .member(name)
                            .map_or_else(Default::default, |m| relative(ws, &m.dir));
                        files
                            .iter()
                            .any(|f| reads::touches(r, name, &dir, Path::new(f)))
                    })
            };
            let because: Vec<String> = if everything {
                vec!["everything".into()]
            } else {
                g.nodes
                    .iter()
                    .filter(|n| touched(&n.name))
                    .map(|n| n.name.clone())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect()
            };
            if !because.is_empty() {
                units.push(AffectedUnit {
                    package: step.package.clone(),
                    bins: step.bins.clone(),
                    triple: t.triple.clone(),
                    platform: format!("{}-{}", t.os, t.arch),
                    target: t.arch.clone(),
                    because,
                });
            }
        }
    }
    units.sort_by(|a, b| (&a.package, &a.platform).cmp(&(&b.package, &b.platform)));
    Ok(units)
}

/// The member owning a path: the one with the deepest directory containing it.
fn owner(ws: &Workspace, path: &Path) -> Option<String> {
    ws.members
        .iter()
        .filter(|m| path.starts_with(&m.dir))
        .max_by_key(|m| m.dir.components().count())
        .map(|m| m.name.clone())
}

/// Names of packages whose `Cargo.lock` entries were added, removed or changed.
fn lock_changes(old: &str, new: &str) -> BTreeSet<String> {
    type Versions = BTreeSet<(String, String, String, Vec<String>)>;
    let entries = |text: &str| -> BTreeMap<String, Versions> {
        let mut out: BTreeMap<String, Versions> = BTreeMap::new();
        for e in kiln_workspace::parse_lock(text) {
            let what = (e.version, e.source, e.checksum, e.dependencies);
            out.entry(e.name).or_default().insert(what);
        }
        out
    };
    let (o, n) = (entries(old), entries(new));
    o.keys()
        .chain(n.keys())
        .filter(|k| o.get(*k) != n.get(*k))
        .cloned()
        .collect()
}

/// The `[workspace.dependencies]` entries a root manifest change touches.
fn workspace_dependency_changes(old: &str, new: &str) -> BTreeSet<String> {
    let deps = |t: &str| {
        t.parse::<toml::Table>()
            .ok()
            .and_then(|t| t.get("workspace")?.get("dependencies")?.as_table().cloned())
            .unwrap_or_default()
    };
    let (od, nd) = (deps(old), deps(new));
    od.keys()
        .chain(nd.keys())
        .filter(|k| od.get(*k) != nd.get(*k))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_changes_name_only_what_moved() {
        let old = "[[package]]\nname = \"a\"\nversion = \"1.0.0\"\n\n[[package]]\nname = \"b\"\nversion = \"1.0.0\"\n";
        let new = "[[package]]\nname = \"a\"\nversion = \"1.0.1\"\n\n[[package]]\nname = \"b\"\nversion = \"1.0.0\"\n\n[[package]]\nname = \"c\"\nversion = \"0.1.0\"\n";
        assert_eq!(
            lock_changes(old, new).into_iter().collect::<Vec<_>>(),
            ["a", "c"]
        );
    }

    #[test]
    fn profile_changes_touch_everything_and_workspace_deps_name_themselves() {
        let old = "[workspace.dependencies]\nx = \"1\"\n[profile.release]\nlto = false\n";
        let new = "[workspace.dependencies]\nx = \"2\"\n[profile.release]\nlto = false\n";
        assert!(!SharedFile::RootManifest.changes_every_binary(old, new));
        let deps = workspace_dependency_changes(old, new);
        assert_eq!(deps.into_iter().collect::<Vec<_>>(), ["x"]);
        assert!(SharedFile::RootManifest.changes_every_binary(
            old,
            "[workspace.dependencies]\nx = \"1\"\n[profile.release]\nlto = true\n"
        ));
    }
}
