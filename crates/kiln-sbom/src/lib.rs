//! What a binary is made of, said in the formats scanners read.
//!
//! kiln knows each binary's exact dependency graph for its target (cargo's resolve,
//! cut down to the packages `cargo tree` says the build compiles). From that one
//! [`Graph`] this crate writes:
//! - the dependency list cargo-auditable defines (zlib-compressed JSON in a `.dep-v0`
//!   section), as an ELF object kiln links into the binary, so `rust-audit-info`,
//!   `cargo audit bin`, syft and trivy read it without `cargo auditable` installed;
//! - an SPDX 2.3 and a CycloneDX 1.5 JSON SBOM beside the artifact.
//!
//! Everything is deterministic: packages in one order, no timestamps but the one the
//! caller passes (kiln's reproducible-build time), identifiers derived from content.

mod auditable;
mod cyclonedx;
mod elf;
mod spdx;

pub use auditable::{audit_json, audit_object, read_audit, AUDIT_SECTION};
pub use cyclonedx::cyclonedx;
pub use spdx::spdx;

/// Where a package comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// crates.io.
    CratesIo,
    /// Another registry (its index URL).
    Registry(String),
    /// A git repository (its URL, without credentials).
    Git(String),
    /// A path in or beside the workspace.
    Local,
}

/// Whether a package is compiled into the binary or only runs while building it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Linked into the binary.
    Runtime,
    /// A build script's or proc-macro's dependency.
    Build,
}

/// One package of a binary's graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Crate name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Where it comes from.
    pub source: Source,
    /// `Cargo.lock`'s SHA-256 of the `.crate` file, for registry packages.
    pub checksum: Option<String>,
    /// The manifest's `license` (an SPDX expression), if any.
    pub license: Option<String>,
    /// Runtime if any path from the root reaches it through runtime edges only.
    pub kind: Kind,
    /// Indices of the packages it depends on, sorted.
    pub deps: Vec<usize>,
}

/// A C library linked into the binary that no crate of the graph brings (kiln
/// provisioned it, or it is the target's libc): SBOM scanners match these by PURL
/// and CPE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    /// `OpenSSL`, `mimalloc`, `musl`.
    pub name: String,
    /// The release linked.
    pub version: String,
    /// Its license, an SPDX identifier.
    pub license: String,
    /// Its package URL (`pkg:generic/openssl@3.6.3`).
    pub purl: String,
    /// Its CPE 2.3 name, when it has one (vulnerability databases key on it).
    pub cpe: Option<String>,
}

/// A binary's dependency graph: `nodes[root]` is its package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    /// The binary's name.
    pub binary: String,
    /// The target triple.
    pub target: String,
    /// Packages, sorted by (name, version, source); `deps` index into it.
    pub nodes: Vec<Node>,
    /// The binary's own package.
    pub root: usize,
    /// C libraries linked in besides the graph's crates (not in the audit list,
    /// which is cargo-auditable's format of crates).
    pub linked: Vec<Linked>,
}

impl Graph {
    /// Sorts `nodes` into the canonical order and remaps every index (root and deps).
    pub fn canonical(mut self) -> Self {
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        order.sort_by(|a, b| {
            let (x, y) = (&self.nodes[*a], &self.nodes[*b]);
            (&x.name, &x.version, &x.source).cmp(&(&y.name, &y.version, &y.source))
        });
        let mut new_index = vec![0; order.len()];
        for (new, old) in order.iter().enumerate() {
            new_index[*old] = new;
        }
        let mut nodes: Vec<Node> = order.iter().map(|i| self.nodes[*i].clone()).collect();
        for n in &mut nodes {
            n.deps = n.deps.iter().map(|d| new_index[*d]).collect();
            n.deps.sort_unstable();
            n.deps.dedup();
        }
        self.root = new_index[self.root];
        self.nodes = nodes;
        self
    }

    /// The package URL of node `i` (`pkg:cargo/name@version`).
    pub fn purl(&self, i: usize) -> String {
        let n = &self.nodes[i];
        let mut purl = format!("pkg:cargo/{}@{}", n.name, n.version);
        match &n.source {
            Source::Registry(url) => purl.push_str(&format!("?repository_url={}", percent(url))),
            Source::Git(url) => {
                purl.push_str(&format!("?vcs_url={}", percent(&format!("git+{url}"))))
            }
            Source::CratesIo | Source::Local => {}
        }
        purl
    }

    /// A short identity of the graph's content, for document names and cache keys.
    pub fn digest(&self) -> String {
        kiln_fs::sha256_hex(audit_json(self).as_bytes())
    }
}

/// Percent-encodes what a PURL qualifier value can't hold.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b':' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The SHA-256 of the binary an SBOM of kiln's (SPDX or CycloneDX) says it
/// describes, to check the pair belongs together.
pub fn described_sha256(sbom: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(sbom).ok()?;
    let hashes = if v.get("spdxVersion").is_some() {
        v["packages"]
            .as_array()?
            .iter()
            .find(|p| p["SPDXID"] == "SPDXRef-Binary")?["checksums"]
            .clone()
    } else {
        v["metadata"]["component"]["hashes"].clone()
    };
    hashes.as_array()?.iter().find_map(|h| {
        let alg = h.get("algorithm").or_else(|| h.get("alg"))?.as_str()?;
        let value = h
            .get("checksumValue")
            .or_else(|| h.get("content"))?
            .as_str()?;
        matches!(alg, "SHA256" | "SHA-256").then(|| value.to_string())
    })
}

/// The root package's name in a `.dep-v0` dependency list.
pub fn audit_root(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v["packages"]
        .as_array()?
        .iter()
        .find(|p| p["root"] == true)?["name"]
        .as_str()
        .map(String::from)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// app -> (lib -> serde), build: cc.
    pub(crate) fn sample() -> Graph {
        let node = |name: &str, source: Source, kind: Kind, deps: Vec<usize>| Node {
            name: name.into(),
            version: "1.0.0".into(),
            source,
            checksum: (name == "serde").then(|| "ab".repeat(32)),
            license: Some("MIT OR Apache-2.0".into()),
            kind,
            deps,
        };
        Graph {
            binary: "app".into(),
            target: "x86_64-unknown-linux-musl".into(),
            nodes: vec![
                node("serde", Source::CratesIo, Kind::Runtime, vec![]),
                node("app", Source::Local, Kind::Runtime, vec![2, 3]),
                node(
                    "lib",
                    Source::Git("https://example.com/lib".into()),
                    Kind::Runtime,
                    vec![0],
                ),
                node("cc", Source::CratesIo, Kind::Build, vec![]),
            ],
            root: 1,
            linked: vec![Linked {
                name: "OpenSSL".into(),
                version: "3.6.3".into(),
                license: "Apache-2.0".into(),
                purl: "pkg:generic/openssl@3.6.3".into(),
                cpe: Some("cpe:2.3:a:openssl:openssl:3.6.3:*:*:*:*:*:*:*".into()),
            }],
        }
        .canonical()
    }

    #[test]
    fn canonical_order_remaps_indices() {
        let g = sample();
        let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["app", "cc", "lib", "serde"]);
        assert_eq!(g.root, 0);
        assert_eq!(g.nodes[0].deps, [1, 2]);
        assert_eq!(g.nodes[2].deps, [3]);
        assert_eq!(g.purl(3), "pkg:cargo/serde@1.0.0");
        assert_eq!(
            g.purl(2),
            "pkg:cargo/lib@1.0.0?vcs_url=git%2Bhttps://example.com/lib"
        );
    }
}
