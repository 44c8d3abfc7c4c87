//! A binary's real build graph for one target and feature set, from `cargo tree`:
//! the same resolver as `cargo build -p <package> --target <triple>`, so an optional
//! dependency that isn't switched on, a dev-dependency, or a dependency for another
//! platform is not in it.

use kiln_diagnostics::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One package in the graph.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GraphNode {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// The local directory for path packages (workspace members and path dependencies).
    pub path: Option<PathBuf>,
    /// The source shown by cargo for git packages, empty otherwise.
    pub source: String,
    /// Enabled features, comma-separated and sorted.
    pub features: String,
}

/// Every package `package`'s build compiles for one target.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DepGraph {
    /// The packages, deduplicated and sorted.
    pub nodes: BTreeSet<GraphNode>,
}

impl DepGraph {
    /// The same graph with paths under `from` moved under `to` (a cached graph made in
    /// another checkout of the same workspace).
    pub fn rebased(mut self, from: &Path, to: &Path) -> Self {
        self.nodes = std::mem::take(&mut self.nodes)
            .into_iter()
            .map(|mut n| {
                if let Some(rel) = n.path.as_ref().and_then(|p| p.strip_prefix(from).ok()) {
                    n.path = Some(to.join(rel));
                }
                n
            })
            .collect();
        self
    }
}

/// Runs `cargo tree` for `package` on `triple` with the given cargo arguments
/// (features, `--locked`/`--offline`); a failure names its cause (`verbose` keeps
/// rustup's backtrace).
pub fn dep_graph(
    manifest: &Path,
    package: &str,
    triple: &str,
    cargo_args: &[String],
    verbose: bool,
) -> Result<DepGraph> {
    let cargo = kiln_toolchain::cargo_program();
    let out = Command::new(cargo)
        .args(["tree", "--manifest-path"])
        .arg(manifest)
        .args([
            "-p",
            package,
            "--target",
            triple,
            "-e",
            "normal,build",
            "--prefix",
            "none",
        ])
        .args(["--format", "{p}|{f}"])
        .args(cargo_args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::environment("failed to run `cargo tree`").with_source(e))?;
    if !out.status.success() {
        return Err(kiln_toolchain::explain(
            &format!("run `cargo tree -p {package} --target {triple}`"),
            &String::from_utf8_lossy(&out.stderr),
            verbose,
        ));
    }
    Ok(parse(&String::from_utf8_lossy(&out.stdout)))
}

fn parse(text: &str) -> DepGraph {
    let mut nodes = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let line = line.trim_end_matches(" (*)");
        let (pkg, features) = line.rsplit_once('|').unwrap_or((line, ""));
        let pkg = pkg.trim_end_matches(" (proc-macro)");
        let mut parts = pkg.splitn(3, ' ');
        let (Some(name), Some(version)) = (parts.next(), parts.next()) else {
            continue;
        };
        let rest = parts.next().unwrap_or("").trim_end_matches(" (proc-macro)");
        let inner = rest
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or("");
        let (path, source) = if inner.starts_with('/') || inner.chars().nth(1) == Some(':') {
            (Some(PathBuf::from(inner)), String::new())
        } else {
            (None, inner.to_string())
        };
        let mut feats: Vec<&str> = features.split(',').filter(|f| !f.is_empty()).collect();
        feats.sort_unstable();
        nodes.insert(GraphNode {
            name: name.to_string(),
            version: version.trim_start_matches('v').to_string(),
            path,
            source,
            features: feats.join(","),
        });
    }
    DepGraph { nodes }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_cargo_tree_lines() {
        let g = super::parse(
            "app v0.1.0 (/w/app)|\nserde_derive v1.0.1 (proc-macro)|default\nlibc v0.2.1|std,default\nx v1.0.0 (https://github.com/o/x#abc)|\nlibc v0.2.1|std,default (*)\n",
        );
        let names: Vec<_> = g
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), n.features.as_str(), n.path.is_some()))
            .collect();
        assert_eq!(
            names,
            [
                ("app", "", true),
                ("libc", "default,std", false),
                ("serde_derive", "default", false),
                ("x", "", false)
            ]
        );
        assert_eq!(
            g.nodes.iter().find(|n| n.name == "x").unwrap().source,
            "https://github.com/o/x#abc"
        );
    }
}
