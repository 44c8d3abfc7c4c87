//! The workspace read from its manifests as data, without cargo: for the steps that
//! hold a signing key or a write token (publishing to the cache, pushing an image,
//! writing a release). `cargo metadata` runs programs the repository configures (a
//! `rustc-wrapper`, `build.rustc`, a toolchain through `rust-toolchain.toml`), so
//! those steps must not start it. What is read here is what packaging needs:
//! members, their versions, binaries and repositories, and the target directory;
//! there is no dependency graph.

use crate::Package;
use cargo_metadata::PackageId;
use kiln_diagnostics::{Error, IoContext, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The root manifest for `manifest_path` (or the current directory), found without
/// cargo: the nearest `Cargo.toml` with a `[workspace]` table, else the nearest one.
pub(crate) fn locate_root(manifest_path: Option<&Path>) -> Result<PathBuf> {
    let start = match manifest_path {
        Some(p) => std::path::absolute(p).io_context("resolve", p)?,
        None => {
            let cwd = std::env::current_dir().unwrap_or_default();
            match cwd
                .ancestors()
                .map(|d| d.join("Cargo.toml"))
                .find(|m| m.is_file())
            {
                Some(m) => m,
                None => return Err(crate::not_in_workspace(&cwd)),
            }
        }
    };
    let nearest = crate::normalize(&start);
    let dir = nearest.parent().map(Path::to_path_buf).unwrap_or_default();
    let root = dir
        .ancestors()
        .map(|d| d.join("Cargo.toml"))
        .find(|m| read_table(m).is_ok_and(|t| t.contains_key("workspace")));
    Ok(root.unwrap_or(nearest))
}

fn read_table(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path).io_context("read", path)?;
    text.parse::<toml::Table>().map_err(|e| {
        Error::usage(format!("`{}` is not valid TOML", path.display()))
            .with_source(e)
            .hint("fix the manifest; `cargo metadata` shows the same error")
    })
}

/// The members of the workspace whose root manifest is `root_manifest` (already
/// parsed as `table`): `[workspace] members` (globs) without `exclude`, the root
/// package, and the path dependencies under the root, as cargo counts them.
pub(crate) fn members(root: &Path, table: &toml::Table) -> Result<Vec<Package>> {
    let ws = table.get("workspace").and_then(|w| w.as_table());
    let strings = |key: &str| -> Vec<String> {
        ws.and_then(|w| w.get(key))
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let excluded: Vec<PathBuf> = strings("exclude").iter().map(|e| root.join(e)).collect();
    let mut dirs: Vec<PathBuf> = Vec::new();
    if table.contains_key("package") {
        dirs.push(root.to_path_buf());
    }
    for pattern in strings("members") {
        for dir in expand(root, &pattern) {
            if dir.join("Cargo.toml").is_file() && !excluded.iter().any(|e| dir.starts_with(e)) {
                dirs.push(dir);
            }
        }
    }
    let inherited = ws.and_then(|w| w.get("package")).and_then(|p| p.as_table());
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    while let Some(dir) = dirs.pop() {
        let dir = crate::normalize(&dir);
        if !seen.insert(dir.clone()) {
            continue;
        }
        let manifest = dir.join("Cargo.toml");
        let own = if dir == root {
            table.clone()
        } else {
            read_table(&manifest)?
        };
        let Some(package) = own.get("package").and_then(|p| p.as_table()) else {
            continue;
        };
        // Path dependencies inside the workspace are members too.
        for deps in dependency_tables(&own) {
            for dep in deps.values() {
                if let Some(path) = dep.get("path").and_then(|p| p.as_str()) {
                    let d = crate::normalize(&dir.join(path));
                    if d.starts_with(root) && !excluded.iter().any(|e| d.starts_with(e)) {
                        dirs.push(d);
                    }
                }
            }
        }
        let field = |key: &str| -> Option<String> {
            match package.get(key)? {
                toml::Value::String(s) => Some(s.clone()),
                toml::Value::Table(t)
                    if t.get("workspace").and_then(|w| w.as_bool()) == Some(true) =>
                {
                    inherited?.get(key)?.as_str().map(String::from)
                }
                _ => None,
            }
        };
        let name = field("name").ok_or_else(|| {
            Error::usage(format!("`{}` has no package name", manifest.display()))
                .hint("add `name = \"...\"` under [package]")
        })?;
        let version = field("version").unwrap_or_else(|| "0.0.0".into());
        out.push(Package {
            bins: binaries(&dir, &name, package, &own),
            id: PackageId {
                repr: format!("path+file://{}#{name}@{version}", dir.display()),
            },
            repository: field("repository"),
            name,
            version,
            dir,
        });
    }
    Ok(out)
}

/// `[dependencies]`, `[build-dependencies]` and their `[target.*]` forms (dev
/// dependencies count for membership too, as in cargo).
fn dependency_tables(manifest: &toml::Table) -> Vec<&toml::Table> {
    const KINDS: [&str; 5] = [
        "dependencies",
        "build-dependencies",
        "dev-dependencies",
        "build_dependencies",
        "dev_dependencies",
    ];
    let mut out: Vec<&toml::Table> = KINDS
        .iter()
        .filter_map(|k| manifest.get(*k)?.as_table())
        .collect();
    if let Some(targets) = manifest.get("target").and_then(|t| t.as_table()) {
        for t in targets.values().filter_map(|t| t.as_table()) {
            out.extend(KINDS.iter().filter_map(|k| t.get(*k)?.as_table()));
        }
    }
    out
}

/// The package's binary targets: `[[bin]]` entries, and unless `autobins = false`
/// the ones cargo discovers (`src/main.rs`, `src/bin/*.rs`, `src/bin/*/main.rs`)
/// that no `[[bin]]` already names by path.
fn binaries(dir: &Path, name: &str, package: &toml::Table, manifest: &toml::Table) -> Vec<String> {
    let explicit: Vec<(String, Option<PathBuf>)> = manifest
        .get("bin")
        .and_then(|b| b.as_array())
        .into_iter()
        .flatten()
        .filter_map(|b| {
            let n = b.get("name")?.as_str()?.to_string();
            let p = b
                .get("path")
                .and_then(|p| p.as_str())
                .map(|p| crate::normalize(&dir.join(p)));
            Some((n, p))
        })
        .collect();
    let mut out: BTreeSet<String> = explicit.iter().map(|(n, _)| n.clone()).collect();
    if package.get("autobins").and_then(|a| a.as_bool()) != Some(false) {
        let mut found: Vec<(String, PathBuf)> = Vec::new();
        let main = dir.join("src/main.rs");
        if main.is_file() {
            found.push((name.to_string(), main));
        }
        if let Ok(rd) = std::fs::read_dir(dir.join("src/bin")) {
            for e in rd.flatten() {
                let p = e.path();
                let stem = p.file_stem().and_then(|s| s.to_str()).map(String::from);
                match stem {
                    Some(s) if p.extension().is_some_and(|x| x == "rs") && p.is_file() => {
                        found.push((s, p))
                    }
                    Some(s) if p.join("main.rs").is_file() => found.push((s, p.join("main.rs"))),
                    _ => {}
                }
            }
        }
        for (n, p) in found {
            let claimed = explicit
                .iter()
                .any(|(en, ep)| ep.as_ref() == Some(&p) || (ep.is_none() && *en == n));
            if !claimed {
                out.insert(n);
            }
        }
    }
    out.into_iter().collect()
}

/// Expands a `members` entry: `*` and `?` within a path component, as cargo's globs.
fn expand(root: &Path, pattern: &str) -> Vec<PathBuf> {
    let mut current = vec![root.to_path_buf()];
    for part in Path::new(pattern).components() {
        let part = part.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        for base in &current {
            if !part.contains(['*', '?', '[']) {
                next.push(base.join(&*part));
                continue;
            }
            let Ok(rd) = std::fs::read_dir(base) else {
                continue;
            };
            let mut names: Vec<String> = rd
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .filter(|n| !n.starts_with('.') && matches(&part, n))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| base.join(n)));
        }
        current = next;
    }
    current
}

/// Glob match of one component: `*` any run, `?` one character (`[...]` classes are
/// taken literally, which no workspace we know uses).
fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Cargo's target directory as its configuration gives it, read as data:
/// `CARGO_TARGET_DIR`, `CARGO_BUILD_TARGET_DIR`, else `build.target-dir` of the
/// nearest `.cargo/config.toml` (relative to the directory holding `.cargo`), else
/// `<root>/target`.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    for var in ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            return root.join(v);
        }
    }
    for dir in root.ancestors() {
        for name in ["config.toml", "config"] {
            let path = dir.join(".cargo").join(name);
            let Ok(table) = read_table(&path) else {
                continue;
            };
            if let Some(t) = table
                .get("build")
                .and_then(|b| b.get("target-dir"))
                .and_then(|t| t.as_str())
            {
                return crate::normalize(&dir.join(t));
            }
        }
    }
    root.join("target")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_cargo() {
        assert!(matches("*", "chronik-server"));
        assert!(matches("chronik-*", "chronik-server"));
        assert!(matches("c?ronik*r", "chronik-server"));
        assert!(!matches("chronik-*", "kiln"));
        assert!(!matches("a?", "a"));
    }

    #[test]
    fn members_binaries_and_inheritance_come_from_the_manifests() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |p: &str, s: &str| {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, s).unwrap();
        };
        write(
            "Cargo.toml",
            "[workspace]\nmembers = [\"crates/*\"]\nexclude = [\"crates/old\"]\n[workspace.package]\nversion = \"1.2.3\"\nrepository = \"https://example.com/r\"\n",
        );
        write(
            "crates/server/Cargo.toml",
            "[package]\nname = \"server\"\nversion.workspace = true\nrepository.workspace = true\n[[bin]]\nname = \"srv\"\npath = \"src/main.rs\"\n[dependencies]\nutil = { path = \"../../util\" }\n",
        );
        write("crates/server/src/main.rs", "fn main() {}");
        write("crates/server/src/bin/admin.rs", "fn main() {}");
        write("crates/old/Cargo.toml", "[package]\nname = \"old\"\n");
        write(
            "util/Cargo.toml",
            "[package]\nname = \"util\"\nversion = \"0.1.0\"\n",
        );
        let table = read_table(&root.join("Cargo.toml")).unwrap();
        let mut m = members(root, &table).unwrap();
        m.sort_by(|a, b| a.name.cmp(&b.name));
        let names: Vec<&str> = m.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["server", "util"]);
        assert_eq!(m[0].bins, ["admin", "srv"]);
        assert_eq!(m[0].version, "1.2.3");
        assert_eq!(m[0].repository.as_deref(), Some("https://example.com/r"));
        assert!(m[1].bins.is_empty());
        let nested = root.join("crates/server/Cargo.toml");
        assert_eq!(locate_root(Some(&nested)).unwrap(), root.join("Cargo.toml"));
    }
}
