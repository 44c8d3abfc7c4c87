//! The workspace as kiln sees it: members, their binaries, and what each binary's
//! build graph contains. Read once with `cargo metadata`, then queried in memory.

pub mod early;
mod failure;
mod git;
mod lock;
mod manifests;

pub use failure::{
    classify, explain, explain_known_breakage, explain_seen, without_backtrace, CargoFailure,
};
pub use git::{
    git, git_bytes, git_line, missing_submodules, source_date_epoch, start_git,
    without_credentials, EPOCH_ARGS,
};
pub use lock::{lock_entries, parse_lock, LockEntry};

/// The cargo kiln runs: `$CARGO` (set when kiln itself runs under cargo), else
/// `cargo` from PATH. Every cargo invocation kiln makes starts this one.
pub fn cargo_program() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

use cargo_metadata::{DependencyKind, Metadata, MetadataCommand, PackageId};
use kiln_config::{Config, Flags, Settings};
use kiln_diagnostics::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Which dependency platforms a query follows: `None` for an edge of every
/// platform, else the edge's `cfg(..)` or triple; true when the build's targets
/// include it.
pub type Platforms<'a> = &'a dyn Fn(Option<&str>) -> bool;

/// A workspace member that kiln may build.
#[derive(Debug, Clone)]
pub struct Package {
    /// Package name.
    pub name: String,
    /// Package version, without `v`.
    pub version: String,
    /// Directory holding its `Cargo.toml`.
    pub dir: PathBuf,
    /// Names of its binary targets.
    pub bins: Vec<String>,
    /// Its manifest's `repository` (inherited from `[workspace.package]` if so).
    pub repository: Option<String>,
    id: PackageId,
}

/// A package in a binary's build graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// Package name.
    pub name: String,
    /// Its locked version.
    pub version: String,
    /// Features enabled for it (as resolved for the workspace).
    pub features: Vec<String>,
    /// Who pulls it in: the binary's package first, this package last.
    pub chain: Vec<String>,
    /// The last workspace member in `chain`: the manifest a user edits to change how
    /// the package is pulled in (a feature, a direct dependency).
    pub nearest_member: String,
}

/// A package of a [`ResolvedGraph`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPackage {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// cargo's source id (`registry+https://...`, `git+https://...#rev`); `None` for
    /// path packages.
    pub source: Option<String>,
    /// The manifest's `license`.
    pub license: Option<String>,
    /// Whether it is a proc-macro (compiled for the host, never linked in).
    pub proc_macro: bool,
}

/// A package's dependency graph from cargo's resolve; node 0 is the package.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedGraph {
    /// The packages.
    pub nodes: Vec<ResolvedPackage>,
    /// `(from, to, build-only)` edges between `nodes`.
    pub edges: Vec<(usize, usize, bool)>,
}

/// A loaded workspace.
#[derive(Debug)]
pub struct Workspace {
    /// The workspace root directory.
    pub root: PathBuf,
    /// The root `Cargo.toml`.
    pub manifest: PathBuf,
    /// Cargo's target directory (honours `CARGO_TARGET_DIR` and config).
    pub target_dir: PathBuf,
    /// Members, sorted by name.
    pub members: Vec<Package>,
    /// `[workspace.metadata.kiln]`.
    pub config: Config,
    /// The effective settings: the environment over `config` over defaults.
    pub settings: Settings,
    /// The root manifest, read once.
    pub root_manifest: toml::Table,
    /// What `cargo metadata` said; `None` when the workspace was [read](Self::read)
    /// from its manifests (no dependency graph then).
    metadata: Option<Metadata>,
}

impl Workspace {
    /// Loads the workspace that `manifest_path` (or the current directory) belongs to.
    /// Its settings come from its root manifest, the environment and `flags`; cargo is
    /// run with the resulting `--locked`/`--frozen`/`--offline`, and a failure names
    /// its cause and fix.
    pub fn load(manifest_path: Option<&Path>, flags: Flags) -> Result<Self> {
        let manifest = locate_root(manifest_path, flags.verbose)?;
        let root = manifest.parent().map(Path::to_path_buf).unwrap_or_default();
        let (config, root_manifest) = Config::load(&manifest)?;
        let verbose = flags.verbose;
        let settings = Settings::load(&config, &root, flags)?;
        let metadata = run_metadata(&manifest, &root, &settings, &[], verbose)?;
        // kiln reads one table, the root manifest's: a member's own is a mistake
        // that would otherwise do nothing.
        let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let root_manifest_path = canonical(&manifest);
        if let Some(p) = metadata.workspace_packages().into_iter().find(|p| {
            p.metadata.get("kiln").is_some()
                && canonical(p.manifest_path.as_std_path()) != root_manifest_path
        }) {
            return Err(Error::usage(format!(
                "`{}` has a [package.metadata.kiln] table, which kiln doesn't read: settings apply to the whole workspace",
                p.manifest_path
            ))
            .hint(format!(
                "move it to [workspace.metadata.kiln] in `{}`",
                manifest.display()
            )));
        }
        let mut members: Vec<Package> = metadata
            .workspace_packages()
            .into_iter()
            .map(|p| Package {
                name: p.name.to_string(),
                version: p.version.to_string(),
                dir: p
                    .manifest_path
                    .parent()
                    .map(|d| d.as_std_path().to_path_buf())
                    .unwrap_or_default(),
                bins: p
                    .targets
                    .iter()
                    .filter(|t| t.is_bin())
                    .map(|t| t.name.clone())
                    .collect(),
                repository: p.repository.clone(),
                id: p.id.clone(),
            })
            .collect();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        let target_dir = metadata.target_directory.clone().into_std_path_buf();
        Ok(Self {
            root,
            manifest,
            target_dir,
            members,
            config,
            settings,
            root_manifest,
            metadata: Some(metadata),
        })
    }

    /// `features` as `cargo metadata` takes them for the whole workspace: a bare name
    /// becomes `pkg/name` for each of `packages` that declares it (what `cargo build
    /// -p` gives it to); `pkg/feat` stays. A name none of them has is exit 2.
    pub fn qualify_features(&self, packages: &[&str], features: &[String]) -> Result<Vec<String>> {
        let Some(metadata) = &self.metadata else {
            return Ok(features.to_vec());
        };
        let mut qualified = Vec::new();
        for f in features
            .iter()
            .flat_map(|f| f.split([',', ' ']))
            .filter(|f| !f.is_empty())
        {
            if f.contains('/') {
                qualified.push(f.to_string());
                continue;
            }
            let declaring: Vec<String> = metadata
                .workspace_packages()
                .into_iter()
                .filter(|p| packages.contains(&p.name.as_str()))
                .filter(|p| {
                    p.features.contains_key(f)
                        || p.dependencies
                            .iter()
                            .any(|d| d.optional && d.rename.as_deref().unwrap_or(&d.name) == f)
                })
                .map(|p| format!("{}/{f}", p.name))
                .collect();
            if declaring.is_empty() {
                return Err(Error::usage(format!(
                    "none of the selected packages ({}) has the feature `{f}`",
                    packages.join(", ")
                ))
                .hint("name it as `package/feature`, or check the spelling in the package's [features]"));
            }
            qualified.extend(declaring);
        }
        Ok(qualified)
    }

    /// Resolves the graph again with `feature_args` (`--features`, `--all-features`,
    /// ...), so that what is analysed (C dependencies, system libraries, host tools,
    /// SBOMs, keys) is what cargo will build. A workspace [read](Self::read) from its
    /// manifests has no graph to resolve.
    pub fn resolve_with(&mut self, feature_args: &[String]) -> Result<()> {
        if self.metadata.is_none() {
            return Ok(());
        }
        let resolved = run_metadata(
            &self.manifest,
            &self.root,
            &self.settings,
            feature_args,
            self.settings.verbose,
        )?;
        self.metadata = Some(resolved);
        Ok(())
    }

    /// The workspace read from its manifests as data: nothing runs, not cargo and
    /// nothing the repository configures (see `manifests`). Members, versions,
    /// binaries, repositories and the target directory are known; the dependency
    /// graph is not (the queries on it answer empty). For steps that hold a secret.
    pub fn read(manifest_path: Option<&Path>, flags: Flags) -> Result<Self> {
        check_manifest_path(manifest_path)?;
        let manifest = manifests::locate_root(manifest_path)?;
        let root = manifest.parent().map(Path::to_path_buf).unwrap_or_default();
        let (config, root_manifest) = Config::load(&manifest)?;
        let settings = Settings::load(&config, &root, flags)?;
        let mut members = manifests::members(&root, &root_manifest)?;
        members.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self {
            target_dir: manifests::target_dir(&root),
            root,
            manifest,
            members,
            config,
            settings,
            root_manifest,
            metadata: None,
        })
    }

    /// The `repository` of the package `name` as cargo resolved it, else the root
    /// manifest's (`[workspace.package]` or `[package]`), which a member may not inherit.
    pub fn repository(&self, name: &str) -> Option<String> {
        self.member(name)
            .and_then(|p| p.repository.clone())
            .or_else(|| self.root_repository())
    }

    /// The root manifest's `repository` (`[workspace.package]`, else `[package]`).
    pub fn root_repository(&self) -> Option<String> {
        self.root_manifest
            .get("workspace")
            .and_then(|w| w.get("package"))
            .or_else(|| self.root_manifest.get("package"))
            .and_then(|p| p.get("repository"))
            .and_then(|r| r.as_str())
            .map(String::from)
    }

    /// cargo's resolve, when cargo was asked.
    fn resolve(&self) -> Option<&cargo_metadata::Resolve> {
        self.metadata.as_ref()?.resolve.as_ref()
    }

    /// Every package cargo's metadata names (none when read from the manifests).
    fn packages(&self) -> impl Iterator<Item = &cargo_metadata::Package> {
        self.metadata.iter().flat_map(|m| m.packages.iter())
    }

    /// The member called `name`.
    pub fn member(&self, name: &str) -> Option<&Package> {
        self.members.iter().find(|p| p.name == name)
    }

    /// Members that have at least one binary.
    pub fn binary_members(&self) -> impl Iterator<Item = &Package> {
        self.members.iter().filter(|p| !p.bins.is_empty())
    }

    /// Package ids reachable from `package` through normal and build dependencies
    /// (dev-dependencies don't go into a binary) of the platforms `platform_ok`
    /// accepts, including itself.
    fn closure<'a>(
        &'a self,
        package: &'a Package,
        platform_ok: Platforms,
    ) -> HashSet<&'a PackageId> {
        self.walk(package, platform_ok).into_keys().collect()
    }

    /// Breadth-first walk of `package`'s build graph (edges of other platforms left
    /// out): each reached id with the id it was first reached from (`None` for
    /// `package` itself).
    fn walk<'a>(
        &'a self,
        package: &'a Package,
        platform_ok: Platforms,
    ) -> HashMap<&'a PackageId, Option<&'a PackageId>> {
        let mut parents = HashMap::new();
        let Some(resolve) = self.resolve() else {
            return parents;
        };
        let nodes: HashMap<&PackageId, _> = resolve.nodes.iter().map(|n| (&n.id, n)).collect();
        let mut queue = std::collections::VecDeque::from([(&package.id, None)]);
        while let Some((id, parent)) = queue.pop_front() {
            if parents.contains_key(id) {
                continue;
            }
            parents.insert(id, parent);
            let Some(node) = nodes.get(id) else { continue };
            for dep in &node.deps {
                if dep.dep_kinds.iter().any(|k| {
                    k.kind != DependencyKind::Development
                        && platform_ok(k.target.as_ref().map(|t| t.to_string()).as_deref())
                }) {
                    queue.push_back((&dep.pkg, Some(id)));
                }
            }
        }
        parents
    }

    /// The packages in `package`'s build graph that `wanted` picks (by name), with
    /// their enabled features and the chain of packages that pulls each in
    /// (`app -> reqwest -> native-tls -> openssl-sys`).
    pub fn dependencies_with_paths(
        &self,
        package: &Package,
        platform_ok: Platforms,
        wanted: impl Fn(&str) -> bool,
    ) -> Vec<Dependency> {
        let parents = self.walk(package, platform_ok);
        let Some(resolve) = self.resolve() else {
            return Vec::new();
        };
        let names: HashMap<&PackageId, (&str, String)> = self
            .packages()
            .map(|p| (&p.id, (p.name.as_str(), p.version.to_string())))
            .collect();
        let name = |id: &PackageId| {
            names
                .get(id)
                .map_or_else(|| id.repr.clone(), |n| n.0.to_string())
        };
        let members: HashSet<&PackageId> = self.members.iter().map(|m| &m.id).collect();
        let mut out: Vec<Dependency> = resolve
            .nodes
            .iter()
            .filter(|n| parents.contains_key(&n.id) && wanted(&name(&n.id)))
            .map(|n| {
                let mut chain = vec![name(&n.id)];
                let mut nearest_member = None;
                let mut cur = parents[&n.id];
                while let Some(p) = cur {
                    chain.push(name(p));
                    if nearest_member.is_none() && members.contains(p) {
                        nearest_member = Some(name(p));
                    }
                    cur = parents[p];
                }
                chain.reverse();
                Dependency {
                    name: name(&n.id),
                    version: names.get(&n.id).map(|n| n.1.clone()).unwrap_or_default(),
                    features: n.features.iter().map(|f| f.to_string()).collect(),
                    nearest_member: nearest_member.unwrap_or_else(|| package.name.clone()),
                    chain,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// `package`'s dependency graph from cargo's resolve: every package reachable
    /// through normal and build dependencies whose platform `platform_ok` accepts
    /// (`None` is "every platform"; otherwise a `cfg(..)` or a triple), with edges
    /// marked build-only where they are (a build dependency, or a proc-macro). The
    /// resolve unifies features across the workspace: callers cut it down to the
    /// packages the build really compiles.
    pub fn resolved_graph(
        &self,
        package: &str,
        platform_ok: &dyn Fn(Option<&str>) -> bool,
    ) -> Option<ResolvedGraph> {
        let resolve = self.resolve()?;
        let root = &self.member(package)?.id;
        let packages: HashMap<&PackageId, &cargo_metadata::Package> =
            self.packages().map(|p| (&p.id, p)).collect();
        let nodes: HashMap<&PackageId, &cargo_metadata::Node> =
            resolve.nodes.iter().map(|n| (&n.id, n)).collect();
        let mut index: HashMap<PackageId, usize> = HashMap::new();
        let mut out = ResolvedGraph::default();
        let mut queue = std::collections::VecDeque::from([root]);
        let mut add = |id: &PackageId, out: &mut ResolvedGraph| -> Option<usize> {
            let p = packages.get(id)?;
            Some(*index.entry(id.clone()).or_insert_with(|| {
                out.nodes.push(ResolvedPackage {
                    name: p.name.to_string(),
                    version: p.version.to_string(),
                    source: p.source.as_ref().map(|s| s.repr.clone()),
                    license: p.license.clone(),
                    proc_macro: p.targets.iter().any(|t| t.is_proc_macro()),
                });
                out.nodes.len() - 1
            }))
        };
        let mut seen = HashSet::new();
        add(root, &mut out)?;
        while let Some(id) = queue.pop_front() {
            if !seen.insert(id) {
                continue;
            }
            let from = add(id, &mut out)?;
            let Some(node) = nodes.get(id) else { continue };
            for dep in &node.deps {
                let kinds: Vec<&cargo_metadata::DepKindInfo> = dep
                    .dep_kinds
                    .iter()
                    .filter(|k| k.kind != DependencyKind::Development)
                    .filter(|k| platform_ok(k.target.as_ref().map(|t| t.to_string()).as_deref()))
                    .collect();
                if kinds.is_empty() {
                    continue;
                }
                let Some(to) = add(&dep.pkg, &mut out) else {
                    continue;
                };
                let build = kinds.iter().all(|k| k.kind == DependencyKind::Build)
                    || out.nodes[to].proc_macro;
                out.edges.push((from, to, build));
                queue.push_back(&dep.pkg);
            }
        }
        Some(out)
    }

    /// How many packages `package`'s build compiles (a progress estimate).
    pub fn build_graph_size(&self, package: &Package, platform_ok: Platforms) -> usize {
        self.closure(package, platform_ok).len()
    }

    /// Packages in `package`'s build graph that compile C: those whose build script is
    /// built with a C build tool (`cc`, `cmake`, `bindgen`, `pkg-config`, ...) and known
    /// C-compiling crates. Sorted names.
    pub fn c_compiling_deps(&self, package: &Package, platform_ok: Platforms) -> Vec<String> {
        let closure = self.closure(package, platform_ok);
        let mut out: Vec<String> = self
            .packages()
            .filter(|p| closure.contains(&p.id))
            .filter(|p| compiles_c(&p.name, &p.dependencies))
            .map(|p| p.name.to_string())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Packages that compile C in the build graph of any binary member, sorted.
    pub fn binaries_c_deps(&self, platform_ok: Platforms) -> Vec<String> {
        let mut out: Vec<String> = self
            .binary_members()
            .flat_map(|p| self.c_compiling_deps(p, platform_ok))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// Build dependencies that mean a build script compiles (or links against) C or C++.
const C_BUILD_TOOLS: &[&str] = &[
    "cc",
    "cmake",
    "bindgen",
    "pkg-config",
    "cxx-build",
    "autotools",
    "nasm-rs",
    "vcpkg",
];

/// `-sys` and other crates known to compile C whatever their build-dependencies say.
const KNOWN_C_CRATES: &[&str] = &[
    "openssl-sys",
    "libz-sys",
    "zstd-sys",
    "aws-lc-sys",
    "aws-lc-fips-sys",
    "ring",
    "libsqlite3-sys",
    "bzip2-sys",
    "lz4-sys",
    "lzma-sys",
    "librocksdb-sys",
    "rdkafka-sys",
    "libgit2-sys",
    "libssh2-sys",
    "curl-sys",
    "tikv-jemalloc-sys",
    "libmimalloc-sys",
];

/// Whether a package compiles C: from what its build script is built with, not from a
/// `links` key, which many pure-Rust crates declare only to pass values to dependents.
fn compiles_c(name: &str, deps: &[cargo_metadata::Dependency]) -> bool {
    KNOWN_C_CRATES.contains(&name)
        || deps
            .iter()
            .any(|d| d.kind == DependencyKind::Build && C_BUILD_TOOLS.contains(&d.name.as_str()))
}

/// The manifest cargo would start from, when it declares `[workspace]` itself: then it
/// is the root and no `cargo locate-project` (a process through rustup's proxy, a fifth
/// of a restore) is needed. Anything else, including a manifest that doesn't parse, is
/// left to cargo and its error messages.
pub fn declared_root(manifest_path: Option<&Path>) -> Option<PathBuf> {
    let manifest = match manifest_path {
        Some(p) => normalize(&std::path::absolute(p).ok()?),
        None => std::env::current_dir()
            .ok()?
            .ancestors()
            .map(|d| d.join("Cargo.toml"))
            .find(|m| m.is_file())?,
    };
    let text = std::fs::read_to_string(&manifest).ok()?;
    let doc: toml::Table = text.parse().ok()?;
    doc.get("workspace")?.as_table()?;
    Some(manifest)
}

/// `path` without `.` and `..` components, as cargo spells the paths it reports (the
/// components are removed as written, like cargo does, not resolved through symlinks).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `cargo metadata` of the workspace at `root` with the settings' `--locked` and the
/// like, and `extra` arguments (features); a failure names its cause and fix.
fn run_metadata(
    manifest: &Path,
    root: &Path,
    settings: &Settings,
    extra: &[String],
    verbose: bool,
) -> Result<Metadata> {
    let mut cmd = MetadataCommand::new();
    cmd.manifest_path(manifest);
    // Cargo reads `.cargo/config.toml` from the current directory up; builds run at
    // the root, so metadata (target dir, ...) must be read from there too.
    cmd.current_dir(root);
    let mut options: Vec<String> = settings
        .cargo_flags()
        .iter()
        .map(|f| f.to_string())
        .collect();
    options.extend(extra.iter().cloned());
    cmd.other_options(options);
    cmd.exec().map_err(|e| match e {
        cargo_metadata::Error::CargoMetadata { stderr } => {
            explain("read the Cargo workspace", &stderr, verbose)
        }
        other => Error::environment("failed to run `cargo metadata`")
            .with_source(other)
            .hint("make sure `cargo` is installed and on PATH"),
    })
}

/// The two plain mistakes, said in kiln's words before cargo's.
fn check_manifest_path(manifest_path: Option<&Path>) -> Result<()> {
    match manifest_path {
        Some(p) if !p.is_file() => Err(Error::usage(format!("`{}` does not exist", p.display()))
            .hint("pass `--manifest-path` the path of a workspace's Cargo.toml")),
        None => {
            let cwd = std::env::current_dir().unwrap_or_default();
            if cwd.ancestors().any(|d| d.join("Cargo.toml").is_file()) {
                Ok(())
            } else {
                Err(not_in_workspace(&cwd))
            }
        }
        Some(_) => Ok(()),
    }
}

fn not_in_workspace(cwd: &Path) -> Error {
    Error::usage(format!(
        "`{}` is not in a Cargo workspace (no Cargo.toml here or in any parent directory)",
        cwd.display()
    ))
    .hint("run kiln inside a Cargo workspace, or pass `--manifest-path path/to/Cargo.toml`")
}

/// The workspace root manifest for `manifest_path` (or the current directory), asked
/// of cargo before anything else: it reads no lockfile and needs no network, so the
/// settings (`--locked`, ...) are known before `cargo metadata` runs.
fn locate_root(manifest_path: Option<&Path>, verbose: bool) -> Result<PathBuf> {
    check_manifest_path(manifest_path)?;
    if let Some(root) = declared_root(manifest_path) {
        return Ok(root);
    }
    let mut cmd = std::process::Command::new(cargo_program());
    cmd.args(["locate-project", "--workspace", "--message-format", "plain"]);
    if let Some(p) = manifest_path {
        cmd.arg("--manifest-path").arg(p);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            Error::environment("failed to run `cargo locate-project`")
                .with_source(e)
                .hint("make sure `cargo` is installed and on PATH")
        })?;
    if !out.status.success() {
        return Err(explain(
            "read the Cargo workspace",
            &String::from_utf8_lossy(&out.stderr),
            verbose,
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}
