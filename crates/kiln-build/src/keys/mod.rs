//! Computing the cache key of every binary x target in a plan (see `kiln-fingerprint`
//! for the list of inputs), and learning what build scripts read after a build.
//!
//! [`KeyContext`] is built in one step from [`KeySources`]: plain data (the root, the
//! members, the build graphs, the toolchain), so keys can be computed and tested
//! without running cargo.

use crate::plan::{Plan, Step};
use kiln_diagnostics::Result;
use kiln_fingerprint::{
    dir_digest, global, DepGraph, FileHasher, GraphNode, InputId, InputValue, Inputs, RelPath,
};
use kiln_local_cache::{Learned, LocalCache};
use kiln_schema::Setting;
use kiln_toolchain::{Backend, Target};
use kiln_workspace::Workspace;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kiln_fs::sha256_hex as sha;

pub(crate) mod reads;

/// The toolchain every key includes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Toolchain {
    /// The full `rustc -vV`.
    pub(crate) rustc: String,
    /// zig's version, when the zig backend is in use.
    pub(crate) zig: Option<String>,
}

/// Everything keys are computed from, gathered before the context is made.
pub(crate) struct KeySources {
    /// The workspace root.
    pub(crate) root: PathBuf,
    /// The workspace's files.
    pub(crate) files: FileHasher,
    /// Members as `(name, directory relative to the root)`.
    pub(crate) members: Vec<(String, PathBuf)>,
    /// `(name, version)` -> `(source, checksum)` from `Cargo.lock`.
    pub(crate) lock: HashMap<(String, String), (String, String)>,
    /// Inputs every binary shares (root manifest, cargo config, toolchain file).
    pub(crate) shared: Vec<(InputId, InputValue)>,
    /// `(step index, triple)` -> build graph.
    pub(crate) graphs: HashMap<(usize, String), DepGraph>,
    /// Cargo profile.
    pub(crate) profile: String,
    /// The feature flags, as a key value.
    pub(crate) features: InputValue,
    /// Cargo's target directory, where build scripts' outputs are read.
    pub(crate) target_dir: PathBuf,
    /// The profile's output directory name (`release`, `debug`, ...).
    pub(crate) profile_dir: String,
    /// Each step's package and binaries, by step index.
    pub(crate) units: Vec<(String, Vec<String>)>,
}

impl KeySources {
    /// Gathers the sources from the workspace and plan; runs `cargo tree` where the
    /// cache has no memo of a graph.
    pub(crate) fn gather(ws: &Workspace, plan: &Plan, cache: Option<&LocalCache>) -> Result<Self> {
        let skip = [ws.target_dir.clone()];
        // The stat cache lives with the binary cache, never in `target/`: a restore
        // must not create the target dir.
        let stat_cache = cache.map(|c| {
            c.root().join("stat").join(format!(
                "{}.json",
                &sha(ws.root.to_string_lossy().as_bytes())[..16]
            ))
        });
        let mut shared = vec![
            (
                InputId::RootManifest,
                global::root_manifest(&ws.root_manifest),
            ),
            (
                InputId::CargoConfig,
                global::cargo_config(&plan.cargo_config),
            ),
        ];
        if let Some(t) = global::toolchain_file(&ws.root) {
            shared.push((InputId::ToolchainFile, t));
        }
        let sel = &plan.selection;
        Ok(Self {
            root: ws.root.clone(),
            files: FileHasher::new(&ws.root, &skip, Some(&plan.selection.out), stat_cache),
            members: ws
                .members
                .iter()
                .map(|m| {
                    let rel = m.dir.strip_prefix(&ws.root).unwrap_or(&m.dir);
                    (m.name.clone(), rel.to_path_buf())
                })
                .collect(),
            lock: kiln_workspace::lock_entries(&ws.root.join("Cargo.lock")),
            shared,
            graphs: crate::graphs::graphs(ws, plan, cache)?,
            profile: sel.profile.clone(),
            features: features_value(sel),
            target_dir: ws.target_dir.clone(),
            profile_dir: sel.profile_dir().to_string(),
            units: plan
                .steps
                .iter()
                .map(|s| (s.package.clone(), s.bins.clone()))
                .collect(),
        })
    }
}

/// What is the same for every unit of a build: toolchain, config and file hashes.
pub(crate) struct KeyContext {
    src: KeySources,
    toolchain: Toolchain,
    /// `(name, directory relative to the root)` -> member index.
    members: HashMap<(String, PathBuf), usize>,
    /// Files of each member (nested members own theirs), relative, sorted.
    owned: Vec<Vec<PathBuf>>,
    /// Each member's file hashes and identity, computed once per snapshot.
    digests: Mutex<HashMap<usize, Arc<MemberDigest>>>,
    /// The digest of each path package outside the workspace, likewise.
    outside: Mutex<HashMap<PathBuf, String>>,
}

/// The selection's feature flags as a key value.
pub(crate) fn features_value(sel: &crate::Selection) -> InputValue {
    let mut features = sel.features.clone();
    features.sort();
    InputValue::Features {
        features,
        all: sel.all_features,
        no_default: sel.no_default_features,
    }
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

/// An environment value as a key value: its digest, never the value itself.
fn env_value(value: Option<String>) -> InputValue {
    value.map_or(InputValue::Missing, |v| {
        kiln_fingerprint::digest(v.as_bytes())
    })
}

impl KeyContext {
    /// The context for `src` built with `toolchain`.
    pub(crate) fn new(src: KeySources, toolchain: Toolchain) -> Self {
        let members: HashMap<(String, PathBuf), usize> = src
            .members
            .iter()
            .enumerate()
            .map(|(i, (name, dir))| ((name.clone(), dir.clone()), i))
            .collect();
        let owned = assign_files(&src.files, &members, src.members.len());
        Self {
            src,
            toolchain,
            members,
            owned,
            digests: Mutex::default(),
            outside: Mutex::default(),
        }
    }

    /// The ids under which build scripts' declarations are kept, for every package of
    /// every graph: what a remote cache must supply before keys are computed.
    pub(crate) fn learned_ids(&self) -> BTreeSet<String> {
        let packages = self
            .src
            .graphs
            .iter()
            .flat_map(|((_, triple), g)| g.nodes.iter().map(move |n| (n, triple)))
            .map(|(n, triple)| self.learned_id(n, triple));
        let binaries = self.src.graphs.keys().flat_map(|(step, triple)| {
            let bins = self.src.units.get(*step).map_or(&[][..], |u| &u.1[..]);
            bins.iter().map(move |b| self.reads_id(*step, b, triple))
        });
        packages.chain(binaries).collect()
    }

    /// The id under which what one binary's compile read is kept: the unit and the
    /// build's configuration (features and profile decide which `mod`s compile),
    /// never the content, so every checkout and commit finds it.
    fn reads_id(&self, step: usize, bin: &str, triple: &str) -> String {
        let package = self.src.units.get(step).map_or("", |u| u.0.as_str());
        let dir = self
            .src
            .members
            .iter()
            .find(|(n, _)| n == package)
            .map(|(_, d)| d.as_path());
        reads::record_id(
            package,
            dir,
            bin,
            triple,
            &self.src.profile,
            &self.src.features,
        )
    }

    /// The graph of a step for a target.
    /// Cargo.lock's `(name, version) -> (source, checksum)`.
    pub(crate) fn lock(&self) -> &HashMap<(String, String), (String, String)> {
        &self.src.lock
    }

    pub(crate) fn graph(&self, step: usize, triple: &str) -> &DepGraph {
        &self.src.graphs[&(step, triple.to_string())]
    }

    /// Saves the file hashes for the next run.
    pub(crate) fn save(&self) {
        self.src.files.save();
    }

    /// The inputs of one binary of `step` (index `index`) for `target`, using what
    /// build scripts declared earlier (kept in the cache).
    pub(crate) fn inputs(
        &self,
        index: usize,
        step: &Step,
        bin: &str,
        target: &Target,
        cache: Option<&LocalCache>,
    ) -> Inputs {
        let mut i = Inputs::new();
        i.add(
            InputId::Unit,
            InputValue::Unit {
                package: step.package.clone(),
                binary: bin.to_string(),
                target: target.build_target(),
                profile: self.src.profile.clone(),
            },
        );
        i.add(InputId::Features, self.src.features.clone());
        let backend = step.invocation.backend;
        let version = match backend {
            Backend::Zig => self.toolchain.zig.clone().unwrap_or_default(),
            _ => String::new(),
        };
        i.add(
            InputId::Backend,
            InputValue::Tool {
                name: backend.name().into(),
                version,
            },
        );
        i.add(
            InputId::Toolchain,
            kiln_fingerprint::digest(self.toolchain.rustc.as_bytes()),
        );
        for (k, v) in &self.src.shared {
            i.add(k.clone(), v.clone());
        }
        for (k, v) in std::env::vars() {
            if env_matters(&k, target) {
                i.add(InputId::Env { name: k }, env_value(Some(v)));
            }
        }
        self.kiln_inputs(step, target, &mut i);
        // Host programs that shape the output (protoc's generated code, nasm's
        // objects): by version, only for the binaries whose build runs them.
        for need in step.host_tools.iter().filter(|n| n.tool.keyed) {
            let value = match &need.found {
                Some(f) => InputValue::Tool {
                    name: need.tool.name.clone(),
                    version: f.version.clone(),
                },
                None => InputValue::Missing,
            };
            i.add(
                InputId::HostTool {
                    name: need.tool.name.clone(),
                },
                value,
            );
        }
        let reads = cache
            .filter(|_| !reads::untracked(self.graph(index, &target.triple)))
            .and_then(|c| c.learned(&self.reads_id(index, bin, &target.triple)));
        for node in &self.graph(index, &target.triple).nodes {
            self.node_inputs(node, &target.triple, &mut i, cache, reads.as_ref());
        }
        if let Some(r) = &reads {
            self.read_inputs(r, &mut i);
        }
        i
    }

    /// What a binary's compile read (its learned record): each file by content (or
    /// missing), the other file each `mod` could have found, and the variables rustc
    /// reported, by digest.
    fn read_inputs(&self, reads: &Learned, i: &mut Inputs) {
        // Inside the workspace: kiln wrote the record from dep-info, or took it from a
        // remote through `Learned::from_outside`.
        for f in &reads.files {
            let rel = Path::new(f);
            self.add_file(rel, i);
            if let Some(other) = reads::module_sibling(rel) {
                self.add_file(&other, i);
            }
        }
        for var in &reads.env {
            i.add(
                InputId::Env { name: var.clone() },
                env_value(std::env::var(var).ok()),
            );
        }
    }

    /// A workspace file as an input: its content's digest, or missing.
    fn add_file(&self, rel: &Path, i: &mut Inputs) {
        let value = self
            .src
            .files
            .hash(rel)
            .map_or(InputValue::Missing, |sha256| InputValue::Digest { sha256 });
        i.add(
            InputId::File {
                path: RelPath::new(rel),
            },
            value,
        );
    }

    /// What kiln itself sets for the target: its variables, overrides and native
    /// libraries, each as data without a local path.
    fn kiln_inputs(&self, step: &Step, target: &Target, i: &mut Inputs) {
        let native: Vec<_> = step.native.iter().filter(|n| n.target == *target).collect();
        let native_vars: BTreeSet<String> = native
            .iter()
            .flat_map(|n| kiln_native::env_names(&n.provision, target))
            .collect();
        let target_env = target.env_name();
        for (k, v) in &step.invocation.env {
            let relevant = k.starts_with("CARGO_PROFILE_")
                || k == "CARGO_ENCODED_RUSTFLAGS"
                || k.contains(&target_env);
            if !relevant || native_vars.contains(k) {
                continue;
            }
            // Rustflags are the user's own (they may hold anything): by digest.
            let value = if k == "CARGO_ENCODED_RUSTFLAGS" || k.ends_with("_RUSTFLAGS") {
                kiln_fingerprint::digest(v.as_bytes())
            } else {
                InputValue::Text { value: v.clone() }
            };
            i.add(InputId::KilnEnv { name: k.clone() }, value);
        }
        for n in native {
            i.add(
                InputId::Native {
                    library: n.provision.library.clone(),
                    target: target.triple.clone(),
                },
                InputValue::Native {
                    version: kiln_native::source_version(&n.provision).into(),
                    recipe: kiln_native::RECIPE_VERSION,
                },
            );
        }
        for o in &step.invocation.overrides {
            if !o.changes_output_for(&target.triple) {
                continue;
            }
            i.add(
                InputId::Override {
                    target: target.triple.clone(),
                    setting: o.setting,
                    flag: (o.setting == Setting::Rustflag).then(|| o.from.clone()),
                },
                InputValue::Override {
                    from: o.from.clone(),
                    to: o.to.clone(),
                    source: o.source.clone(),
                },
            );
        }
    }

    /// The workspace member a graph node is, if it is one.
    fn member(&self, node: &GraphNode) -> Option<usize> {
        let rel = node.path.as_ref()?.strip_prefix(&self.src.root).ok()?;
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
            .filter_map(|f| Some((f.clone(), self.src.files.hash(f)?)))
            .collect();
        let digest = Arc::new(MemberDigest { files });
        self.digests.lock().unwrap().insert(member, digest.clone());
        digest
    }

    /// Forgets the member hashes, so the next keys see the files as they are now.
    pub(crate) fn rehash(&self) {
        self.digests.lock().unwrap().clear();
        self.outside.lock().unwrap().clear();
    }

    fn node_inputs(
        &self,
        node: &GraphNode,
        triple: &str,
        i: &mut Inputs,
        cache: Option<&LocalCache>,
        reads: Option<&Learned>,
    ) {
        let features: Vec<String> = node
            .features
            .split(',')
            .filter(|f| !f.is_empty())
            .map(String::from)
            .collect();
        match self.member(node) {
            Some(member) => {
                // With a record of what the binary read, the member's key covers
                // those files (added once, in `read_inputs`) and its layout; with
                // none, or a build script that declared no `rerun-if-changed`
                // (cargo's rule: then every file of the package counts), all of them.
                match reads.filter(|r| !r.whole.contains(&node.name)) {
                    Some(_) => {
                        let dir = &self.src.members[member].1;
                        for f in reads::LAYOUT_FILES {
                            self.add_file(&dir.join(f), i);
                        }
                        i.add(
                            InputId::File {
                                path: RelPath::new(&dir.join("src/bin")),
                            },
                            InputValue::Text {
                                value: bin_dir_listing(&self.src.root.join(dir).join("src/bin")),
                            },
                        );
                    }
                    None => {
                        for (f, h) in &self.member_digest(member).files {
                            i.add(
                                InputId::File {
                                    path: RelPath::new(f),
                                },
                                InputValue::Digest { sha256: h.clone() },
                            );
                        }
                    }
                }
                i.add(
                    InputId::Package {
                        name: node.name.clone(),
                    },
                    InputValue::Package {
                        version: node.version.clone(),
                        features,
                    },
                );
            }
            None => {
                let (source, checksum) = self.external_identity(node);
                i.add(
                    InputId::Dep {
                        name: node.name.clone(),
                        version: node.version.clone(),
                    },
                    InputValue::Dep {
                        source,
                        checksum,
                        features,
                    },
                );
            }
        }
        let Some(learned) = cache.and_then(|c| c.learned(&self.learned_id(node, triple))) else {
            return;
        };
        for f in &learned.files {
            let path = self.src.root.join(f);
            let value = if path.is_dir() {
                InputValue::Digest {
                    sha256: dir_digest(&path),
                }
            } else {
                std::fs::read(&path).map_or(InputValue::Missing, |b| kiln_fingerprint::digest(&b))
            };
            let id = match Path::new(f).is_absolute() {
                true => InputId::External { path: f.clone() },
                false => InputId::File {
                    path: RelPath::new(Path::new(f)),
                },
            };
            i.add(id, value);
        }
        for var in &learned.env {
            i.add(
                InputId::Env { name: var.clone() },
                env_value(std::env::var(var).ok()),
            );
        }
    }

    /// Where an external package comes from and its `Cargo.lock` checksum; a path
    /// package outside the workspace by the digest of its files.
    fn external_identity(&self, node: &GraphNode) -> (String, String) {
        if let Some(path) = &node.path {
            // Asked for by every unit's inputs and learned id: hashed once.
            let mut outside = self.outside.lock().unwrap();
            let digest = outside
                .entry(path.clone())
                .or_insert_with(|| dir_digest(path));
            return (format!("path {digest}"), String::new());
        }
        match self
            .src
            .lock
            .get(&(node.name.clone(), node.version.clone()))
        {
            Some((source, checksum)) => (source.clone(), checksum.clone()),
            None => (node.source.clone(), String::new()),
        }
    }

    /// The id under which a package's build-script declarations for one target are
    /// kept: its name and the digest of its sources and the target, the same in every
    /// checkout. Per target, because build scripts read per-target variables
    /// (`CC_<triple>`): a record shared by targets would change one target's key when
    /// another target is built.
    fn learned_id(&self, node: &GraphNode, triple: &str) -> String {
        let identity = match self.member(node) {
            // A member by where it is, not by its content: an edit to a file its
            // build doesn't read must find the same record (a record only grows, and
            // a key names the files it covers, so this can't hide a change).
            Some(member) => sha(&kiln_fingerprint::canonical_encoding(&(
                "member",
                &self.src.members[member].0,
                RelPath::new(&self.src.members[member].1),
            ))),
            None => {
                let (source, checksum) = self.external_identity(node);
                sha(&kiln_fingerprint::canonical_encoding(&(source, checksum)))
            }
        };
        let digest = sha(&kiln_fingerprint::canonical_encoding(&(identity, triple)));
        format!("{}-{}", node.name, &digest[..16])
    }

    /// After a build: records what the build scripts of `step`'s graph declared
    /// (`rerun-if-changed` outside their package, `rerun-if-env-changed`).
    pub(crate) fn learn(&self, index: usize, target: &Target, cache: &LocalCache) {
        let dir = reads::ProfileDir::read(
            &self.src.root,
            &self.src.target_dir,
            self.src
                .target_dir
                .join(&target.triple)
                .join(&self.src.profile_dir),
        );
        let graph = self.graph(index, &target.triple);
        let mut by_package: BTreeMap<&str, (&GraphNode, Learned)> = BTreeMap::new();
        for script in &dir.scripts {
            let Some(text) = &script.output else {
                continue;
            };
            let Some(node) = graph.nodes.iter().find(|n| n.name == script.package) else {
                continue;
            };
            let pkg_dir = node.path.clone();
            let (_, learned) = by_package
                .entry(node.name.as_str())
                .or_insert_with(|| (node, Learned::default()));
            for line in text.lines() {
                if let Some(f) = line.strip_prefix("cargo:rerun-if-changed=") {
                    let p = pkg_dir
                        .as_ref()
                        .map_or_else(|| PathBuf::from(f), |d| d.join(f));
                    let inside_own = pkg_dir.as_ref().is_some_and(|d| p.starts_with(d));
                    if !inside_own && pkg_dir.is_some() {
                        let rel = p
                            .strip_prefix(&self.src.root)
                            .map_or(p.clone(), Path::to_path_buf);
                        learned.files.insert(rel.display().to_string());
                    }
                } else if let Some(v) = line.strip_prefix("cargo:rerun-if-env-changed=") {
                    learned.env.insert(v.to_string());
                }
            }
        }
        for (node, learned) in by_package.into_values() {
            remember(cache, &self.learned_id(node, &target.triple), learned);
        }
        if reads::untracked(graph) {
            return;
        }
        let members: Vec<&str> = graph
            .nodes
            .iter()
            .filter(|n| self.member(n).is_some())
            .map(|n| n.name.as_str())
            .collect();
        let scripts = dir.build_scripts(&members);
        let bins = self.src.units.get(index).map_or(&[][..], |u| &u.1[..]);
        for bin in bins {
            if let Some(read) = dir.binary(bin, &scripts) {
                remember(cache, &self.reads_id(index, bin, &target.triple), read);
            }
        }
    }
}

/// Whether kiln wrote `rel` (`kiln ci github`'s workflow and action, `kiln
/// dockerfile`'s files): no package owns them, so regenerating them rebuilds nothing
/// (in a workspace whose root is a package, they lie in its directory).
fn generated_by_kiln(root: &Path, rel: &Path) -> bool {
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let candidate = name == "Dockerfile"
        || name == ".dockerignore"
        || (rel.starts_with(".github") && (name.ends_with(".yml") || name.ends_with(".yaml")));
    if name == "kiln-rootfs.tar" {
        return true;
    }
    if !candidate {
        return false;
    }
    let mut head = [0u8; 256];
    let n = std::fs::File::open(root.join(rel))
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    String::from_utf8_lossy(&head[..n]).contains("# Generated by `kiln ")
}

/// Adds `learned` to the record `id` (a record only grows).
fn remember(cache: &LocalCache, id: &str, learned: Learned) {
    let mut merged = cache.learned(id).unwrap_or_default();
    let before = merged.names();
    merged.merge(learned);
    if merged.names() != before {
        let _ = cache.set_learned(id, &merged);
    }
}

/// The names in a package's `src/bin` (cargo makes a binary of each), sorted: a new
/// one is a new target even when no file the compile read changed.
fn bin_dir_listing(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.join("\n")
}

/// A member's files with their hashes.
struct MemberDigest {
    files: Vec<(PathBuf, String)>,
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
    for f in files
        .files()
        .iter()
        .filter(|f| !generated_by_kiln(files.root(), f))
    {
        if let Some(i) = f.ancestors().skip(1).find_map(|d| by_dir.get(d)) {
            owned[*i].push(f.clone());
        }
    }
    owned
}

#[cfg(test)]
mod tests;
