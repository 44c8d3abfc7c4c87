//! OCI image-layout pieces: descriptors, the blob directory, canonical JSON.
//!
//! JSON is written by [`canonical_json`] with object keys sorted and no whitespace, so
//! the same image always serializes to the same bytes whatever map type or serde_json
//! features the dependency tree ends up with.

use kiln_diagnostics::{IoContext, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::Write;
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

/// A writer that hashes what passes through and counts it.
pub(crate) struct HashingWriter<W> {
    pub(crate) inner: W,
    pub(crate) hasher: Sha256,
    pub(crate) len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// `sha256:<hex>` of everything written, the byte count, and the inner writer.
    pub(crate) fn finish(self) -> (String, u64, W) {
        (
            format!("sha256:{}", kiln_fs::hex(&self.hasher.finalize())),
            self.len,
            self.inner,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = json!({"b": 1, "a": {"z": [1, {"y": 2, "x": "q\""}], "c": null}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":null,"z":[1,{"x":"q\"","y":2}]},"b":1}"#
        );
    }
}
