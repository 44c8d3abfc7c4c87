//! Each binary's dependency graph for its target, for the audit section kiln links
//! in and the SBOMs it writes beside the artifact.
//!
//! The edges come from cargo's resolve (`cargo metadata`), which unifies features
//! across the workspace; the nodes are cut down to what `cargo tree` says the build of
//! this package for this target really compiles (the graph the cache key already
//! holds). Sources are named without local paths or credentials.

use kiln_fingerprint::DepGraph;
use kiln_sbom::{Graph, Kind, Node, Source};
use kiln_toolchain::Target;
use kiln_workspace::Workspace;
use std::collections::{HashMap, HashSet, VecDeque};

/// The graph of `bin` (of `package`) for `target`; `exact` is the build's node set,
/// `lock` Cargo.lock's `(name, version) -> (source, checksum)`.
pub(crate) fn binary_graph(
    ws: &Workspace,
    package: &str,
    bin: &str,
    target: &Target,
    exact: &DepGraph,
    lock: &HashMap<(String, String), (String, String)>,
) -> Option<Graph> {
    let platform_ok = kiln_toolchain::on_any(std::slice::from_ref(target));
    let r = ws.resolved_graph(package, &platform_ok)?;
    let built: HashSet<(&str, &str)> = exact
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.version.as_str()))
        .collect();
    let keep: Vec<bool> = r
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| i == 0 || built.contains(&(n.name.as_str(), n.version.as_str())))
        .collect();
    // Reachable from the root through kept packages; runtime if through runtime edges.
    let reach = |runtime_only: bool| {
        let mut seen = vec![false; r.nodes.len()];
        seen[0] = true;
        let mut queue = VecDeque::from([0usize]);
        while let Some(at) = queue.pop_front() {
            for (from, to, build) in &r.edges {
                if *from == at && keep[*to] && !seen[*to] && !(runtime_only && *build) {
                    seen[*to] = true;
                    queue.push_back(*to);
                }
            }
        }
        seen
    };
    let (any, runtime) = (reach(false), reach(true));
    let index: HashMap<usize, usize> = (0..r.nodes.len())
        .filter(|i| any[*i])
        .enumerate()
        .map(|(new, old)| (old, new))
        .collect();
    let mut nodes: Vec<Node> = (0..r.nodes.len())
        .filter(|i| any[*i])
        .map(|i| {
            let p = &r.nodes[i];
            let key = (p.name.clone(), p.version.clone());
            Node {
                name: p.name.clone(),
                version: p.version.clone(),
                source: source(p.source.as_deref()),
                checksum: lock
                    .get(&key)
                    .map(|(_, sum)| sum.clone())
                    .filter(|s| s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())),
                license: p.license.clone(),
                kind: if runtime[i] {
                    Kind::Runtime
                } else {
                    Kind::Build
                },
                deps: Vec::new(),
            }
        })
        .collect();
    for (from, to, _) in &r.edges {
        if let (Some(f), Some(t)) = (index.get(from), index.get(to)) {
            nodes[*f].deps.push(*t);
        }
    }
    Some(
        Graph {
            binary: bin.to_string(),
            target: target.triple.clone(),
            nodes,
            root: 0,
            linked: Vec::new(),
        }
        .canonical(),
    )
}

/// A cargo source id as an SBOM source: crates.io, another registry, a git URL (no
/// credentials, query or revision), or local.
fn source(id: Option<&str>) -> Source {
    let Some(id) = id else {
        return Source::Local;
    };
    let (kind, url) = id.split_once('+').unwrap_or(("", id));
    let url = kiln_workspace::without_credentials(url.split(['?', '#']).next().unwrap_or_default());
    match kind {
        "registry" | "sparse"
            if url == "https://github.com/rust-lang/crates.io-index"
                || url == "https://index.crates.io/" =>
        {
            Source::CratesIo
        }
        "registry" | "sparse" => Source::Registry(url),
        "git" => Source::Git(url),
        _ => Source::Local,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_carry_no_credentials_or_revisions() {
        assert_eq!(
            source(Some(
                "registry+https://github.com/rust-lang/crates.io-index"
            )),
            Source::CratesIo
        );
        assert_eq!(
            source(Some("sparse+https://index.crates.io/")),
            Source::CratesIo
        );
        assert_eq!(
            source(Some(
                "git+https://user:token@github.com/o/r?branch=main#abc123"
            )),
            Source::Git("https://github.com/o/r".into())
        );
        assert_eq!(
            source(Some("sparse+https://my.registry/index/")),
            Source::Registry("https://my.registry/index/".into())
        );
        assert_eq!(source(None), Source::Local);
    }
}
