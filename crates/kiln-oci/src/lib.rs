//! The OCI pieces kiln's image builder, registry client and remote cache share:
//! media types, descriptors, canonical JSON, the blob directory of a layout, and
//! the shape of a built or fetched image.
//!
//! JSON is written by [`canonical_json`] with object keys sorted and no whitespace, so
//! the same image always serializes to the same bytes whatever map type or serde_json
//! features the dependency tree ends up with.

use kiln_diagnostics::{IoContext, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// OCI media types kiln writes.
pub mod media {
    /// An image index (multi-platform).
    pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// One platform's manifest.
    pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// An image config.
    pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// A gzip-compressed layer.
    pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// Docker's manifest list, accepted from base images.
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker's schema 2 manifest, accepted from base images.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker's gzip layer, written back as [`LAYER_GZIP`] (same bytes).
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// The empty config of an artifact manifest (`{}`).
    pub const EMPTY: &str = "application/vnd.oci.empty.v1+json";
    /// An SPDX JSON document.
    pub const SPDX: &str = "application/spdx+json";
    /// An in-toto statement (SLSA provenance).
    pub const IN_TOTO: &str = "application/vnd.in-toto+json";
    /// cosign's signed payload.
    pub const COSIGN_PAYLOAD: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
}

/// A manifest attached to another (OCI 1.1 `subject`): an SBOM, a provenance
/// statement. Its config is the empty descriptor; its blobs are `layers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// `artifactType`: what it is (`application/spdx+json`).
    pub artifact_type: String,
    /// Each blob's media type, bytes and annotations (a file title).
    pub layers: Vec<(String, Vec<u8>, std::collections::BTreeMap<String, String>)>,
    /// The manifest's annotations.
    pub annotations: std::collections::BTreeMap<String, String>,
}

impl Artifact {
    /// The empty config blob every artifact manifest points at.
    pub const EMPTY_CONFIG: &'static [u8] = b"{}";

    /// Every blob the manifest points at, `(media type, bytes)`: the empty config,
    /// then the layers.
    pub fn blobs(&self) -> impl Iterator<Item = (&str, &[u8])> {
        std::iter::once((media::EMPTY, Self::EMPTY_CONFIG)).chain(
            self.layers
                .iter()
                .map(|(mt, bytes, _)| (mt.as_str(), bytes.as_slice())),
        )
    }

    /// The manifest referring to `subject`, canonical JSON, and its descriptor as an
    /// index lists a referrer (with `artifactType` and annotations).
    pub fn manifest(&self, subject: &Descriptor) -> (Vec<u8>, Value) {
        let config = Descriptor::of(media::EMPTY, Self::EMPTY_CONFIG);
        let layers: Vec<Value> = self
            .layers
            .iter()
            .map(|(mt, bytes, ann)| {
                let mut d = Descriptor::of(mt, bytes).to_json();
                if !ann.is_empty() {
                    d["annotations"] = json!(ann);
                }
                d
            })
            .collect();
        let mut m = json!({
            "schemaVersion": 2,
            "mediaType": media::MANIFEST,
            "artifactType": self.artifact_type,
            "config": config.to_json(),
            "layers": layers,
            "subject": subject.to_json(),
        });
        if !self.annotations.is_empty() {
            m["annotations"] = json!(self.annotations);
        }
        let bytes = canonical_json(&m).into_bytes();
        let mut entry = Descriptor::of(media::MANIFEST, &bytes).to_json();
        entry["artifactType"] = json!(self.artifact_type);
        if !self.annotations.is_empty() {
            entry["annotations"] = json!(self.annotations);
        }
        (bytes, entry)
    }
}

/// The tag under which a registry without the referrers API lists `subject`'s
/// referrers (the distribution spec's fallback): `sha256-<hex>`.
pub fn referrers_tag(subject: &Descriptor) -> String {
    format!("sha256-{}", subject.hex())
}

/// The referrers index `index` (an existing one, or none) with `entry` added once.
pub fn with_referrer(index: Option<&[u8]>, entry: &Value) -> Vec<u8> {
    let mut manifests: Vec<Value> = index
        .and_then(|b| serde_json::from_slice::<Value>(b).ok())
        .and_then(|v| v["manifests"].as_array().cloned())
        .unwrap_or_default();
    if !manifests.iter().any(|m| m["digest"] == entry["digest"]) {
        manifests.push(entry.clone());
    }
    canonical_json(&json!({"schemaVersion": 2, "mediaType": media::INDEX, "manifests": manifests}))
        .into_bytes()
}

/// A content descriptor: what a manifest or index points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Media type.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

impl Descriptor {
    /// The descriptor of `bytes`.
    pub fn of(media_type: &str, bytes: &[u8]) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest: format!("sha256:{}", kiln_fs::sha256_hex(bytes)),
            size: bytes.len() as u64,
        }
    }

    /// As JSON, with optional extra fields (platform, annotations).
    pub fn to_json(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }

    /// The hex part of the digest.
    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }
}

/// The `blobs/sha256` directory of an OCI layout being written.
#[derive(Debug, Clone)]
pub struct BlobDir {
    root: PathBuf,
}

impl BlobDir {
    /// A blob directory under the layout root `root` (created as needed).
    pub fn new(root: &Path) -> Result<Self> {
        let dir = root.join("blobs/sha256");
        std::fs::create_dir_all(&dir).io_context("create", &dir)?;
        Ok(BlobDir {
            root: root.to_path_buf(),
        })
    }

    /// The layout root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with `digest` lives.
    pub fn path(&self, digest: &str) -> PathBuf {
        self.root
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    /// Whether the blob is present.
    pub fn has(&self, digest: &str) -> bool {
        self.path(digest).is_file()
    }

    /// Stores `bytes` and returns their descriptor.
    pub fn put(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor> {
        let d = Descriptor::of(media_type, bytes);
        let path = self.path(&d.digest);
        if !path.is_file() {
            kiln_fs::write_atomic(&path, bytes)?;
        }
        Ok(d)
    }

    /// Stores JSON in canonical form.
    pub fn put_json(&self, media_type: &str, value: &Value) -> Result<Descriptor> {
        self.put(media_type, canonical_json(value).as_bytes())
    }

    /// Reads a blob.
    pub fn read(&self, digest: &str) -> Result<Vec<u8>> {
        let p = self.path(digest);
        std::fs::read(&p).io_context("read", &p)
    }
}

/// `value` with sorted keys and no whitespace.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

fn write_value(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_value(&map[*k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// What a layer holds, as `kiln image` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerRole {
    /// A layer of the base image, numbered from 1 at the bottom.
    Base(usize),
    /// kiln's own files: users, groups, CA certificates, `/tmp`, volumes.
    System,
    /// The binaries of one architecture.
    Binaries(String),
}

impl std::fmt::Display for LayerRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayerRole::Base(n) => write!(f, "base layer {n}"),
            LayerRole::System => f.write_str("users, /tmp, volumes"),
            LayerRole::Binaries(arch) => write!(f, "linux/{arch} binaries"),
        }
    }
}

/// A layer in a blob directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The compressed blob.
    pub descriptor: Descriptor,
    /// `sha256:` of the uncompressed tar, as the image config lists it.
    pub diff_id: String,
    /// Whether it came from a cache rather than being written now.
    pub cached: bool,
    /// What it holds.
    pub role: LayerRole,
}

/// One platform of a built image.
#[derive(Debug, Clone)]
pub struct PlatformManifest {
    /// OCI architecture (`amd64`).
    pub arch: String,
    /// The manifest.
    pub manifest: Descriptor,
    /// The image config.
    pub config: Descriptor,
    /// Its layers, bottom first.
    pub layers: Vec<Layer>,
}

/// An artifact (SBOM, provenance) attached to one platform manifest of a built
/// image: its manifest has that platform manifest as `subject`, and the image index
/// lists it too, so a layout or archive carries it wherever the image goes.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// OCI architecture of the platform it describes.
    pub arch: String,
    /// The platform manifest it refers to.
    pub subject: Descriptor,
    /// What it holds.
    pub artifact: Artifact,
    /// Its manifest in the blob directory.
    pub manifest: Descriptor,
}

/// The platform an image index gives an entry that is not an image, so that
/// runtimes choosing a platform pass over it (the convention `docker buildx` uses
/// for its attestations).
pub fn not_a_platform() -> Value {
    json!({"architecture": "unknown", "os": "unknown"})
}

/// An image whose blobs are in a [`BlobDir`]: what the builder writes and the
/// registry client pushes.
#[derive(Debug, Clone)]
pub struct Built {
    /// The image index.
    pub index: Descriptor,
    /// Per platform.
    pub manifests: Vec<PlatformManifest>,
    /// The artifacts attached to the platform manifests, in the index after them.
    pub attachments: Vec<Attachment>,
}

/// One platform of a base image.
#[derive(Debug, Clone)]
pub struct BasePlatform {
    /// OCI architecture.
    pub arch: String,
    /// The base's image config.
    pub config: Value,
    /// Its layers, bottom first.
    pub layers: Vec<Descriptor>,
}

/// A base image fetched from a registry.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// The reference it was fetched by.
    pub name: String,
    /// The digest of its index (or manifest).
    pub digest: String,
    /// Per platform.
    pub platforms: Vec<BasePlatform>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_artifact_refers_to_its_subject_and_the_fallback_index_lists_it_once() {
        let subject = Descriptor::of(media::MANIFEST, b"m");
        let a = Artifact {
            artifact_type: media::SPDX.into(),
            layers: vec![(media::SPDX.into(), b"{}".to_vec(), Default::default())],
            annotations: Default::default(),
        };
        let (bytes, entry) = a.manifest(&subject);
        let m: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(m["subject"]["digest"], subject.digest);
        assert_eq!(m["config"]["mediaType"], media::EMPTY);
        assert_eq!(entry["artifactType"], media::SPDX);
        assert_eq!(referrers_tag(&subject), format!("sha256-{}", subject.hex()));
        let once = with_referrer(None, &entry);
        let twice = with_referrer(Some(&once), &entry);
        assert_eq!(once, twice);
        let v: Value = serde_json::from_slice(&twice).unwrap();
        assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = json!({"b": 1, "a": {"z": [1, {"y": 2, "x": "q\""}], "c": null}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":null,"z":[1,{"x":"q\"","y":2}]},"b":1}"#
        );
    }
}
