//! Computing the cache key of every binary x target in a plan (see `kiln-fingerprint`
//! for the list of inputs), and learning what build scripts read after a build.

use crate::plan::{Plan, Step};
use kiln_cache::{Learned, LocalCache};
use kiln_diagnostics::Result;
use kiln_fingerprint::{DepGraph, FileHasher, GraphNode, Inputs};
use kiln_toolchain::{Backend, Target};
use kiln_workspace::Workspace;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What is the same for every unit of a build: toolchain, config and file hashes.
pub(crate) struct KeyContext<'a> {
    ws: &'a Workspace,
    plan: &'a Plan,
    pub(crate) files: FileHasher,
    rustc: String,
    zig: Option<String>,
    lock: HashMap<(String, String), String>,
    shared: Vec<(String, String)>,
    /// `(name, directory relative to the root)` -> member index.
    members: HashMap<(String, PathBuf), usize>,
    /// Files of each member (nested members own theirs), relative, sorted.
    owned: Vec<Vec<PathBuf>>,
    /// Each member's file hashes and identity, computed once per snapshot.
    digests: Mutex<HashMap<usize, Arc<MemberDigest>>>,
    /// `(step index, triple)` -> build graph.
    graphs: HashMap<(usize, String), DepGraph>,
}

/// Environment variables that change what cargo, rustc or a C compiler produce.
fn env_matters(name: &str, target: &Target) -> bool {
    const EXACT: &[&str] = &[
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC",
        "RUSTC_BOOTSTRAP",
        "RUSTC_LINKER",
        "CC",
        "CXX",
        "AR",
        "RANLIB",
        "CFLAGS",
        "CXXFLAGS",
        "LDFLAGS",
        "TARGET_CC",
        "TARGET_CXX",
        "TARGET_AR",
        "TARGET_CFLAGS",
        "TARGET_CXXFLAGS",
        "SOURCE_DATE_EPOCH",
    ];
    let target_prefix = format!("CARGO_TARGET_{}_", target.env_name());
    let excluded = [
        "CARGO_BUILD_JOBS",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_BUILD_BUILD_DIR",
    ];
    if excluded.contains(&name) {
        return false;
    }
    let under = target.triple.replace('-', "_");
    EXACT.contains(&name)
        || name.starts_with("CARGO_PROFILE_")
        || name.starts_with("CARGO_BUILD_")
        || name.starts_with("CARGO_UNSTABLE_")
        || name.starts_with(&target_prefix)
        || [
            "CC_",
            "CXX_",
            "AR_",
            "CFLAGS_",
            "CXXFLAGS_",
            "RANLIB_",
            "BINDGEN_EXTRA_CLANG_ARGS",
        ]
        .iter()
        .any(|p| {
            name.starts_with(p)
                && (name.ends_with(&target.triple)
                    || name.ends_with(&under)
                    || *p == "BINDGEN_EXTRA_CLANG_ARGS")
        })
}

use kiln_fs::sha256_hex as sha;

impl<'a> KeyContext<'a> {
    /// Gathers the shared inputs and runs `cargo tree` for every step and target.
    pub(crate) fn new(
        ws: &'a Workspace,
        plan: &'a Plan,
        cache: Option<&LocalCache>,
    ) -> Result<Self> {
        let skip = [ws.target_dir.clone(), plan.selection.out.clone()];
        // The stat cache lives with the binary cache, never in `target/`: a restore
        // must not create the target dir.
        let stat_cache = cache.map(|c| {
            c.root().join("stat").join(format!(
                "{}.json",
                &sha(ws.root.to_string_lossy().as_bytes())[..16]
            ))
        });
        let files = FileHasher::new(&ws.root, &skip, stat_cache);
        let mut shared = vec![(
            "manifest".to_string(),
            root_manifest_digest(&ws.root_manifest),
        )];
        for (i, text) in plan.cargo_config.file_texts().iter().enumerate() {
            shared.push((format!("cargo-config#{i}"), sha(text.as_bytes())));
        }
        for name in ["rust-toolchain.toml", "rust-toolchain"] {
            if let Some(text) = ws
                .root
                .ancestors()
                .map(|d| d.join(name))
                .find_map(|p| std::fs::read(p).ok())
            {
                shared.push(("toolchain-file".into(), sha(&text)));
                break;
            }
        }
        let members: HashMap<(String, PathBuf), usize> = ws
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                (
                    (
                        m.name.clone(),
                        m.dir.strip_prefix(&ws.root).unwrap_or(&m.dir).to_path_buf(),
                    ),
                    i,
                )
            })
            .collect();
        let owned = assign_files(&files, &members, ws.members.len());
        let graphs = crate::graphs::graphs(ws, plan, cache)?;
        Ok(Self {
            ws,
            plan,
            files,
            rustc: String::new(),
            zig: None,
            lock: lock_checksums(&ws.root.join("Cargo.lock")),
            shared,
            members,
            owned,
            digests: Mutex::default(),
            graphs,
        })
    }

    /// Sets the toolchain versions, which go into every key.
    pub(crate) fn set_toolchain(&mut self, rustc: String, zig: Option<String>) {
        self.rustc = rustc;
        self.zig = zig;
    }

    /// The ids under which build scripts' declarations are kept, for every package of
    /// every graph: what a remote cache must supply before keys are computed.
    pub(crate) fn learned_ids(&self) -> std::collections::BTreeSet<String> {
        self.graphs
            .values()
            .flat_map(|g| g.nodes.iter())
            .map(|n| self.learned_id(n, &self.node_id(n)))
            .collect()
    }

    /// The graph of a step for a target.
    pub(crate) fn graph(&self, step: usize, triple: &str) -> &DepGraph {
        &self.graphs[&(step, triple.to_string())]
    }

    /// The inputs of one binary of `step` for `target`, using what build scripts
    /// declared earlier (kept in the cache).
    pub(crate) fn inputs(
        &self,
        index: usize,
        step: &Step,
        bin: &str,
        target: &Target,
        cache: Option<&LocalCache>,
    ) -> Inputs {
        let sel = &self.plan.selection;
        let mut i = Inputs::new();
        i.add(
            "unit",
            format!("{}/{bin}/{}/{}", step.package, target.triple, sel.profile),
        );
        i.add(
            "features",
            format!(
                "{:?} all={} no-default={}",
                sel.features, sel.all_features, sel.no_default_features
            ),
        );
        let backend = step.invocation.backend;
        let backend_version = match backend {
            Backend::Zig => self.zig.clone().unwrap_or_default(),
            _ => String::new(),
        };
        i.add(
            "backend",
            format!("{} {backend_version}", backend.name())
                .trim()
                .to_string(),
        );
        i.add("rustc", sha(self.rustc.as_bytes()));
        for (k, v) in &self.shared {
            i.add(k.clone(), v.clone());
        }
        for (k, v) in std::env::vars() {
            if env_matters(&k, target) {
                i.add(format!("env:{k}"), v);
            }
        }
        let target_env = target.env_name();
        for (k, v) in &step.invocation.env {
            if k.starts_with("CARGO_PROFILE_")
                || k == "CARGO_ENCODED_RUSTFLAGS"
                || k.contains(&target_env)
            {
                // A provisioned library's path differs between machines; its
                // directory name is its identity.
                let v = match k.ends_with("_OPENSSL_DIR") {
                    true => Path::new(v)
                        .file_name()
                        .map_or(v.clone(), |f| f.to_string_lossy().into_owned()),
                    false => v.clone(),
                };
                i.add(format!("kiln-env:{k}"), v);
            }
        }
        for (n, o) in step.invocation.overrides.iter().enumerate() {
            if o.contains(&target.triple) {
                i.add(format!("override#{n}"), o.clone());
            }
        }
        for node in &self.graph(index, &target.triple).nodes {
            self.node_inputs(node, &mut i, cache);
        }
        i
    }

    /// The workspace member a graph node is, if it is one.
    fn member(&self, node: &GraphNode) -> Option<usize> {
        let rel = node.path.as_ref()?.strip_prefix(&self.ws.root).ok()?;
        self.members
            .get(&(node.name.clone(), rel.to_path_buf()))
            .copied()
    }

    /// A member's files with their hashes, and their digest; hashed once until
    /// [`KeyContext::rehash`].
    fn member_digest(&self, member: usize) -> Arc<MemberDigest> {
        if let Some(d) = self.digests.lock().unwrap().get(&member) {
            return d.clone();
        }
        let files: Vec<(PathBuf, String)> = self.owned[member]
            .iter()
            .filter_map(|f| Some((f.clone(), self.files.hash(f)?)))
            .collect();
        let id = files_id(&files);
        let digest = Arc::new(MemberDigest { files, id });
        self.digests.lock().unwrap().insert(member, digest.clone());
        digest
    }

    /// Forgets the member hashes, so the next keys see the files as they are now.
    pub(crate) fn rehash(&self) {
        self.digests.lock().unwrap().clear();
    }

    fn node_inputs(&self, node: &GraphNode, i: &mut Inputs, cache: Option<&LocalCache>) {
        let id = match self.member(node) {
            Some(member) => {
                let digest = self.member_digest(member);
                for (f, h) in &digest.files {
                    i.add(format!("file:{}", f.display()), h.clone());
                }
                i.add(
                    format!("package:{}", node.name),
                    format!("{} [{}]", node.version, node.features),
                );
                digest.id.clone()
            }
            None => {
                let id = self.external_id(node);
                i.add(
                    format!("dep:{} {}", node.name, node.version),
                    format!("{id} [{}]", node.features),
                );
                id
            }
        };
        let Some(learned) = cache.and_then(|c| c.learned(&self.learned_id(node, &id))) else {
            return;
        };
        for f in &learned.files {
            let path = self.ws.root.join(f);
            let digest = if path.is_dir() {
                dir_digest(&path)
            } else {
                std::fs::read(&path)
                    .map(|b| sha(&b))
                    .unwrap_or_else(|_| "missing".into())
            };
            i.add(format!("file:{f}"), digest);
        }
        for var in &learned.env {
            i.add(format!("env:{var}"), std::env::var(var).unwrap_or_default());
        }
    }

    /// A stable identity of a graph node's sources: for a member, its files' hashes;
    /// otherwise its content, source and `Cargo.lock` checksum.
    fn node_id(&self, node: &GraphNode) -> String {
        match self.member(node) {
            Some(member) => self.member_digest(member).id.clone(),
            None => self.external_id(node),
        }
    }

    fn external_id(&self, node: &GraphNode) -> String {
        if let Some(path) = &node.path {
            return format!("path {}", dir_digest(path));
        }
        match self.lock.get(&(node.name.clone(), node.version.clone())) {
            Some(c) => c.clone(),
            None => node.source.clone(),
        }
    }

    fn learned_id(&self, node: &GraphNode, id: &str) -> String {
        format!("{}-{}", node.name, &sha(id.as_bytes())[..16])
    }

    /// After a build: records what the build scripts of `step`'s graph declared
    /// (`rerun-if-changed` outside their package, `rerun-if-env-changed`).
    pub(crate) fn learn(&self, index: usize, target: &Target, cache: &LocalCache) {
        let build = self
            .ws
            .target_dir
            .join(&target.triple)
            .join(self.plan.selection.profile_dir())
            .join("build");
        let Ok(rd) = std::fs::read_dir(&build) else {
            return;
        };
        let graph = self.graph(index, &target.triple);
        let mut by_package: BTreeMap<&str, (&GraphNode, Learned)> = BTreeMap::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some((pkg, _hash)) = name.rsplit_once('-') else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(e.path().join("output")) else {
                continue;
            };
            let Some(node) = graph.nodes.iter().find(|n| n.name == pkg) else {
                continue;
            };
            let pkg_dir = node.path.clone();
            let (_, learned) = by_package
                .entry(node.name.as_str())
                .or_insert_with(|| (node, Learned::default()));
            for line in text.lines() {
                let line = line.replacen("cargo::", "cargo:", 1);
                if let Some(f) = line.strip_prefix("cargo:rerun-if-changed=") {
                    let p = pkg_dir
                        .as_ref()
                        .map_or_else(|| PathBuf::from(f), |d| d.join(f));
                    let inside_own = pkg_dir.as_ref().is_some_and(|d| p.starts_with(d));
                    if !inside_own && pkg_dir.is_some() {
                        let rel = p
                            .strip_prefix(&self.ws.root)
                            .map_or(p.clone(), Path::to_path_buf);
                        learned.files.insert(rel.display().to_string());
                    }
                } else if let Some(v) = line.strip_prefix("cargo:rerun-if-env-changed=") {
                    learned.env.insert(v.to_string());
                }
            }
        }
        for (node, learned) in by_package.into_values() {
            let id = self.learned_id(node, &self.node_id(node));
            let mut merged = cache.learned(&id).unwrap_or_default();
            let before = merged.clone();
            merged.files.extend(learned.files);
            merged.env.extend(learned.env);
            if merged != before {
                let _ = cache.set_learned(&id, &merged);
            }
        }
    }
}

/// `(name, version)` -> `source checksum` from Cargo.lock.
fn lock_checksums(path: &Path) -> HashMap<(String, String), String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    let Ok(table) = text.parse::<toml::Table>() else {
        return HashMap::new();
    };
    let packages = table
        .get("package")
        .and_then(|p| p.as_array())
        .cloned()
        .unwrap_or_default();
    packages
        .iter()
        .map(|p| {
            let s = |k: &str| {
                p.get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            (
                (s("name"), s("version")),
                format!("{} {}", s("source"), s("checksum")),
            )
        })
        .collect()
}

/// Digest of the root manifest's sections that change every binary.
fn root_manifest_digest(table: &toml::Table) -> String {
    let mut parts = BTreeMap::new();
    for key in ["profile", "patch", "replace"] {
        if let Some(v) = table.get(key) {
            parts.insert(key.to_string(), v.to_string());
        }
    }
    if let Some(v) = table.get("workspace").and_then(|w| w.get("package")) {
        parts.insert("workspace.package".into(), v.to_string());
    }
    sha(format!("{parts:?}").as_bytes())
}

/// Digest of every file below a directory outside the workspace (path dependencies,
/// directories named by build scripts), skipping `target/` and hidden directories.
fn dir_digest(dir: &Path) -> String {
    let hasher = FileHasher::new(dir, &[dir.join("target")], None);
    let files: Vec<(&PathBuf, String)> = hasher
        .files_under(Path::new(""), &[])
        .filter_map(|f| Some((f, hasher.hash(f)?)))
        .collect();
    files_id(&files)
}

/// A member's files with their hashes, and a digest of them all.
struct MemberDigest {
    files: Vec<(PathBuf, String)>,
    id: String,
}

/// Gives each file to the member whose directory is its nearest ancestor, in one pass
/// (a member's files exclude those of members nested in it).
fn assign_files(
    files: &FileHasher,
    members: &HashMap<(String, PathBuf), usize>,
    count: usize,
) -> Vec<Vec<PathBuf>> {
    let by_dir: HashMap<&Path, usize> = members
        .iter()
        .map(|((_, d), i)| (d.as_path(), *i))
        .collect();
    let mut owned = vec![Vec::new(); count];
    for f in files.files() {
        if let Some(i) = f.ancestors().skip(1).find_map(|d| by_dir.get(d)) {
            owned[*i].push(f.clone());
        }
    }
    owned
}

/// Digest of a list of `(path, content hash)`.
fn files_id<P: AsRef<Path>>(files: &[(P, String)]) -> String {
    let mut h = Sha256::new();
    for (f, hash) in files {
        h.update(f.as_ref().to_string_lossy().as_bytes());
        h.update(hash.as_bytes());
    }
    kiln_fs::hex(&h.finalize())
}
