//! What a binary's compile read, learned from cargo's dep-info after a build, so its
//! key covers those files instead of every file under its packages' directories: an
//! edit to a test, a README or `.github/` rebuilds nothing, as with cargo.
//!
//! Why a learned set can't miss a change (docs/keys.md has the long form): a key
//! names the set of files it covers, so a lookup hits only an entry stored under the
//! very same set, and an entry is stored under a set that holds everything its build
//! read (the record is extended with the build's dep-info before its key is made).
//! With every file of that set unchanged, rustc starts from the same crate roots and
//! each further file it opens is decided by files already read (a `mod`, an
//! `include_str!`, a `#[path]`), the manifest, cfg and the environment, all keyed:
//! so it reads the same files and builds the same binary. The exceptions and what
//! kiln does about each are in docs/keys.md (build scripts without
//! `rerun-if-changed`, `mod m;` finding a second candidate file, target
//! auto-discovery, proc macros that read files without telling cargo).

use kiln_fingerprint::{InputValue, RelPath};
use kiln_local_cache::Learned;
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// Files every member's key covers whatever its record says: the manifest, and what
/// cargo's target auto-discovery looks for (a new `build.rs` or `src/lib.rs` changes
/// the build without an edit to a file the compile read).
pub(crate) const LAYOUT_FILES: &[&str] = &["Cargo.toml", "build.rs", "src/lib.rs", "src/main.rs"];

/// Proc macros that read files cargo doesn't hear about (a directory of queries or
/// migrations, a folder to embed, whose new files no dep-info names): a binary whose
/// graph holds one keeps every file of its members as an input.
const UNTRACKED_READERS: &[&str] = &[
    "sqlx-macros",
    "include_dir_macros",
    "refinery-macros",
    "migrations_macros",
    "rust-embed-impl",
];

/// The id under which what one binary's compile read is kept: the unit and the
/// build's configuration (features and profile decide which `mod`s compile), never
/// the content, so every checkout and commit finds it.
pub(crate) fn record_id(
    package: &str,
    dir: Option<&Path>,
    bin: &str,
    triple: &str,
    profile: &str,
    features: &InputValue,
) -> String {
    let digest = kiln_fs::sha256_hex(&kiln_fingerprint::canonical_encoding(&(
        package,
        dir.map(RelPath::new),
        bin,
        triple,
        profile,
        features,
    )));
    format!("reads-{bin}-{}", &digest[..16])
}

/// Whether a change to `file` (relative to the root) can change what a binary with
/// the record `reads` builds, for the member at `dir`: a file it read, the other
/// candidate of a `mod` it read, the member's layout (manifest, auto-discovered
/// targets), or any file of a member whose build script declared nothing.
pub(crate) fn touches(reads: &Learned, member: &str, dir: &Path, file: &Path) -> bool {
    reads.whole.contains(member)
        || reads.files.contains(&*file.to_string_lossy())
        || LAYOUT_FILES.iter().any(|f| dir.join(f) == file)
        || file.starts_with(dir.join("src/bin"))
        || reads
            .files
            .iter()
            .any(|r| module_sibling(Path::new(r)).is_some_and(|s| s == file))
}

/// A dep-info file's first rule's prerequisites and its `# env-dep:` names.
pub(crate) fn parse_dep_info(text: &str) -> (Vec<PathBuf>, Vec<String>) {
    let first = text.lines().next().unwrap_or_default();
    let deps = first.split_once(": ").map_or("", |(_, rest)| rest);
    let mut files = Vec::new();
    let mut cur = String::new();
    let mut chars = deps.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => cur.push(n),
                None => cur.push('\\'),
            },
            ' ' => {
                if !cur.is_empty() {
                    files.push(PathBuf::from(std::mem::take(&mut cur)));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        files.push(PathBuf::from(cur));
    }
    let env = text
        .lines()
        .filter_map(|l| l.strip_prefix("# env-dep:"))
        .map(|l| l.split_once('=').map_or(l, |(name, _)| name).to_string())
        .collect();
    (files, env)
}

/// `path` relative to `root` with `.`/`..` resolved by their text, when it stays
/// inside `root`.
fn inside(root: &Path, path: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix(root).ok()?;
    let mut out = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// The variables rustc reports reading that are no input of kiln's: those cargo
/// sets from the manifest and the layout (already keyed, some of them local paths)
/// and those build scripts set (keyed through the build script's inputs).
fn set_by_cargo(name: &str, from_build_scripts: &BTreeSet<String>) -> bool {
    name.starts_with("CARGO_")
        || name == "OUT_DIR"
        || name == "RUSTC"
        || name == "TARGET"
        || from_build_scripts.contains(name)
}

/// The other file `mod m;` could have found: `d/m/mod.rs` for `d/m.rs` and back.
/// Both existing is an error rustc would now report, so the other one's existence
/// is part of the key.
pub(crate) fn module_sibling(rel: &Path) -> Option<PathBuf> {
    if rel.extension()? != "rs" {
        return None;
    }
    let name = rel.file_name()?.to_str()?;
    let parent = rel.parent()?;
    if name == "mod.rs" {
        let dir = parent.file_name()?.to_str()?;
        return Some(parent.parent()?.join(format!("{dir}.rs")));
    }
    if ["lib.rs", "main.rs", "build.rs"].contains(&name) {
        return None;
    }
    Some(parent.join(rel.file_stem()?).join("mod.rs"))
}

/// One directory under a profile's `build/`: a build script's package, and the
/// `output` of a run (`cargo::` spelled `cargo:`), `None` for the directory the script
/// was compiled in.
pub(crate) struct ScriptDir {
    pub(crate) package: String,
    pub(crate) path: PathBuf,
    pub(crate) output: Option<String>,
}

/// One profile directory of the target dir (`<target dir>/<triple>/<profile>`) as
/// cargo left it after a build, each file read once whatever asks.
pub(crate) struct ProfileDir<'a> {
    root: &'a Path,
    /// Cargo's target directory (files under it are outputs, never inputs).
    target_dir: &'a Path,
    dir: PathBuf,
    /// Every build script directory.
    pub(crate) scripts: Vec<ScriptDir>,
    /// rustc's dep-info of every crate under `deps/` (files, `env-dep` names), read
    /// when first asked.
    deps: std::cell::OnceCell<Vec<(Vec<PathBuf>, Vec<String>)>>,
}

impl<'a> ProfileDir<'a> {
    /// Reads the build script directories of `dir`.
    pub(crate) fn read(root: &'a Path, target_dir: &'a Path, dir: PathBuf) -> Self {
        let scripts = std::fs::read_dir(dir.join("build"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let (package, _hash) = name.rsplit_once('-')?;
                let output = std::fs::read_to_string(e.path().join("output"))
                    .ok()
                    .map(|text| {
                        text.lines()
                            .map(|l| l.replacen("cargo::", "cargo:", 1) + "\n")
                            .collect()
                    });
                Some(ScriptDir {
                    package: package.to_string(),
                    path: e.path(),
                    output,
                })
            })
            .collect();
        Self {
            root,
            target_dir,
            dir,
            scripts,
            deps: std::cell::OnceCell::new(),
        }
    }

    /// A path from a dep-info file as a workspace file, relative to the root; `None`
    /// for outputs (under the target dir) and files outside the workspace.
    fn workspace_file(&self, f: PathBuf) -> Option<String> {
        let abs = if f.is_absolute() {
            f
        } else {
            self.root.join(f)
        };
        if abs.starts_with(self.target_dir) {
            return None;
        }
        inside(self.root, &abs).map(|rel| rel.to_string_lossy().into_owned())
    }

    fn deps(&self) -> &[(Vec<PathBuf>, Vec<String>)] {
        self.deps.get_or_init(|| {
            std::fs::read_dir(self.dir.join("deps"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "d"))
                .filter_map(|p| std::fs::read_to_string(p).ok())
                .map(|text| parse_dep_info(&text))
                .collect()
        })
    }

    /// What building `bin` read: the workspace files of cargo's dep-info for it (its
    /// packages' sources, `include_*!` files, build scripts' `rerun-if-changed`), the
    /// members' build scripts' sources and `whole` members (`scripts`), and the
    /// variables rustc reported for the workspace crates among them. `None` when cargo
    /// wrote no dep-info for it.
    pub(crate) fn binary(&self, bin: &str, scripts: &BuildScripts) -> Option<Learned> {
        let text = std::fs::read_to_string(self.dir.join(format!("{bin}.d"))).ok()?;
        let mut learned = Learned {
            whole: scripts.whole.clone(),
            files: scripts.sources.clone(),
            ..Learned::default()
        };
        learned.files.extend(
            parse_dep_info(&text)
                .0
                .into_iter()
                .filter_map(|f| self.workspace_file(f)),
        );
        for (files, env) in self.deps() {
            // A workspace crate of this binary's graph: rustc names its files
            // relative to the workspace, and the binary read them.
            let ours = files.iter().any(|f| {
                !f.is_absolute()
                    && inside(self.root, &self.root.join(f))
                        .is_some_and(|r| learned.files.contains(&*r.to_string_lossy()))
            });
            if ours {
                learned.env.extend(
                    env.iter()
                        .filter(|n| !set_by_cargo(n, &scripts.sets_env))
                        .cloned(),
                );
            }
        }
        Some(learned)
    }

    /// The `members`' build scripts as cargo left them: which declared no
    /// `rerun-if-changed` (every output of theirs, stale ones too, so a doubt counts
    /// the whole package), the sources their compile read, and the variables any
    /// build script sets for rustc.
    pub(crate) fn build_scripts(&self, members: &[&str]) -> BuildScripts {
        let mut out = BuildScripts::default();
        for s in &self.scripts {
            let member = members.contains(&s.package.as_str());
            match &s.output {
                Some(text) => {
                    for l in text.lines() {
                        if let Some(kv) = l.strip_prefix("cargo:rustc-env=") {
                            out.sets_env
                                .insert(kv.split_once('=').map_or(kv, |(k, _)| k).into());
                        }
                    }
                    if member
                        && !text
                            .lines()
                            .any(|l| l.starts_with("cargo:rerun-if-changed="))
                    {
                        out.whole.insert(s.package.clone());
                    }
                }
                // The directory the script was compiled in: its dep-info names the
                // script's modules.
                None if member => {
                    let files = std::fs::read_dir(&s.path).into_iter().flatten().flatten();
                    for d in files.filter(|d| d.path().extension().is_some_and(|x| x == "d")) {
                        let text = std::fs::read_to_string(d.path()).unwrap_or_default();
                        out.sources.extend(
                            parse_dep_info(&text)
                                .0
                                .into_iter()
                                .filter_map(|f| self.workspace_file(f)),
                        );
                    }
                }
                None => {}
            }
        }
        out
    }
}

/// What the members' build scripts tell about a step's binaries (see
/// [`ProfileDir::build_scripts`]).
#[derive(Default)]
pub(crate) struct BuildScripts {
    whole: BTreeSet<String>,
    sources: BTreeSet<String>,
    sets_env: BTreeSet<String>,
}

/// Whether a graph holds a proc macro that reads files cargo doesn't hear about: its
/// binaries are keyed by every file of their members.
pub(crate) fn untracked(graph: &kiln_fingerprint::DepGraph) -> bool {
    graph
        .nodes
        .iter()
        .any(|n| UNTRACKED_READERS.contains(&n.name.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_info_gives_files_with_escaped_spaces_and_env_names() {
        let text = "/w/target/x86_64-unknown-linux-musl/release/app: /w/src/main.rs /w/my\\ dir/a.rs /w/README.md\n";
        let (files, env) = parse_dep_info(text);
        assert_eq!(
            files,
            [
                PathBuf::from("/w/src/main.rs"),
                PathBuf::from("/w/my dir/a.rs"),
                PathBuf::from("/w/README.md")
            ]
        );
        assert!(env.is_empty());
        let rustc = "/w/target/deps/app-1.d: src/main.rs src/../data.txt\n\nsrc/main.rs:\n\n# env-dep:GREETING=hi\n# env-dep:UNSET\n# env-dep:CARGO_PKG_VERSION=1.0.0\n";
        let (files, env) = parse_dep_info(rustc);
        assert_eq!(files.len(), 2);
        assert_eq!(env, ["GREETING", "UNSET", "CARGO_PKG_VERSION"]);
        assert!(set_by_cargo("CARGO_PKG_VERSION", &BTreeSet::new()));
        assert!(!set_by_cargo("GREETING", &BTreeSet::new()));
    }

    #[test]
    fn paths_resolve_inside_the_root_or_not_at_all() {
        let root = Path::new("/w");
        assert_eq!(
            inside(root, Path::new("/w/src/../data.txt")),
            Some(PathBuf::from("data.txt"))
        );
        assert_eq!(inside(root, Path::new("/w/../etc/passwd")), None);
        assert_eq!(inside(root, Path::new("/elsewhere/x.rs")), None);
    }

    #[test]
    fn a_module_files_other_candidate_is_keyed() {
        assert_eq!(
            module_sibling(Path::new("a/src/net.rs")),
            Some(PathBuf::from("a/src/net/mod.rs"))
        );
        assert_eq!(
            module_sibling(Path::new("a/src/net/mod.rs")),
            Some(PathBuf::from("a/src/net.rs"))
        );
        assert_eq!(module_sibling(Path::new("a/src/main.rs")), None);
        assert_eq!(module_sibling(Path::new("a/README.md")), None);
    }
}
