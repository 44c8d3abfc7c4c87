//! Every (step, target)'s build graph, from `cargo tree`, memoized in the cache.
//!
//! A graph is fully determined by the manifests, `Cargo.lock`, cargo config, the
//! toolchain, the host, the package, target and feature flags: those are hashed into
//! the memo key, so a second run, or a fresh checkout sharing the cache, skips the
//! `cargo tree` processes (the largest part of a restore's time). Paths under the
//! workspace root are stored relative to it, so the memo serves any checkout location;
//! path dependencies outside the workspace are re-checked by their manifest's hash.

use crate::plan::{Plan, Step};
use kiln_diagnostics::Result;
use kiln_fingerprint::{dep_graph, DepGraph};
use kiln_fs::sha256_hex;
use kiln_local_cache::LocalCache;
use kiln_toolchain::Target;
use kiln_workspace::Workspace;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Stand-in for the workspace root inside memoized graphs.
const ROOT: &str = "/kiln-workspace-root";

#[derive(Serialize, Deserialize)]
struct Memo {
    graph: DepGraph,
    /// Manifests of path dependencies outside the workspace, with their hashes.
    outside: Vec<(PathBuf, String)>,
}

/// `cargo tree` for every (step, target), from the memo or run side by side.
pub(crate) fn graphs(
    ws: &Workspace,
    plan: &Plan,
    cache: Option<&LocalCache>,
) -> Result<HashMap<(usize, String), DepGraph>> {
    // Features decide the graph; `--locked`/`--offline` only how cargo may get there.
    let feature_args = plan.selection.feature_args();
    let cargo_args: Vec<String> = feature_args
        .iter()
        .cloned()
        .chain(ws.settings.cargo_flags().iter().map(|f| f.to_string()))
        .collect();
    let common = cache
        .map(|_| workspace_digest(ws, plan))
        .unwrap_or_default();
    let jobs: Vec<(usize, &Step, &Target)> = plan
        .steps
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.targets.iter().map(move |t| (i, s, t)))
        .collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(i, s, t)| {
                let key = sha256_hex(
                    format!(
                        "tree-v1\n{common}\n{}\n{}\n{feature_args:?}",
                        s.package, t.triple
                    )
                    .as_bytes(),
                );
                let args = &cargo_args;
                let job = move || match cache.and_then(|c| recall(c, &key, ws)) {
                    Some(g) => Ok(g),
                    None => {
                        let g = dep_graph(
                            &ws.manifest,
                            &s.package,
                            &t.triple,
                            args,
                            ws.settings.verbose,
                        )?;
                        if let Some(c) = cache {
                            remember(c, &key, ws, &g);
                        }
                        Ok(g)
                    }
                };
                (*i, t.triple.clone(), scope.spawn(job))
            })
            .collect();
        handles
            .into_iter()
            .map(|(i, triple, h)| Ok(((i, triple), h.join().expect("cargo tree thread")?)))
            .collect()
    })
}

/// Everything besides package, target and features that decides a graph.
fn workspace_digest(ws: &Workspace, plan: &Plan) -> String {
    let read = |p: &Path| std::fs::read(p).map(|b| sha256_hex(&b)).unwrap_or_default();
    let mut parts = vec![
        format!("host {} {}", std::env::consts::ARCH, std::env::consts::OS),
        format!("lock {}", read(&ws.root.join("Cargo.lock"))),
        format!(
            "root {}",
            sha256_hex(ws.root_manifest.to_string().as_bytes())
        ),
        format!(
            "toolchain {}",
            std::env::var("RUSTUP_TOOLCHAIN").unwrap_or_default()
        ),
    ];
    let toolchain_file = kiln_toolchain::toolchain_file(&ws.root);
    parts.push(format!(
        "toolchain-file {}",
        toolchain_file.as_deref().map(read).unwrap_or_default()
    ));
    for m in &ws.members {
        let rel = m.dir.strip_prefix(&ws.root).unwrap_or(&m.dir);
        parts.push(format!(
            "member {} {}",
            rel.display(),
            read(&m.dir.join("Cargo.toml"))
        ));
    }
    for (_, table) in plan.cargo_config.files() {
        parts.push(format!(
            "config {}",
            sha256_hex(table.to_string().as_bytes())
        ));
    }
    sha256_hex(parts.join("\n").as_bytes())
}

fn outside_manifest_hash(dir: &Path) -> String {
    std::fs::read(dir.join("Cargo.toml"))
        .map(|b| sha256_hex(&b))
        .unwrap_or_default()
}

fn recall(cache: &LocalCache, key: &str, ws: &Workspace) -> Option<DepGraph> {
    let memo: Memo = serde_json::from_slice(&cache.memo("tree", key)?).ok()?;
    let unchanged = memo
        .outside
        .iter()
        .all(|(dir, hash)| outside_manifest_hash(dir) == *hash);
    unchanged.then(|| memo.graph.rebased(Path::new(ROOT), &ws.root))
}

fn remember(cache: &LocalCache, key: &str, ws: &Workspace, graph: &DepGraph) {
    let outside = graph
        .nodes
        .iter()
        .filter_map(|n| n.path.as_ref())
        .filter(|p| !p.starts_with(&ws.root))
        .map(|p| (p.clone(), outside_manifest_hash(p)))
        .collect();
    let memo = Memo {
        graph: graph.clone().rebased(&ws.root, Path::new(ROOT)),
        outside,
    };
    if let Ok(bytes) = serde_json::to_vec(&memo) {
        cache.set_memo("tree", key, &bytes);
    }
}
