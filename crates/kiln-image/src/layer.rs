//! Layers: a tar stream, gzip-compressed, stored as a blob, with its diff_id.
//!
//! Compression is the costly part, so a layer is first hashed uncompressed (its
//! diff_id); a layer whose diff_id was compressed before is taken from the layer
//! cache instead of being compressed again. gzip runs in flate2's pure-Rust backend at a
//! fixed level; a unit test pins the output so a backend switch elsewhere in the
//! dependency tree can't silently change every digest.

use crate::oci::HashingWriter;
use crate::tar::{self, Entry};
use kiln_diagnostics::{Error, IoContext, Result};
use kiln_oci::{media, BlobDir, Descriptor, Layer, LayerRole};
use std::io::Write;
use std::path::{Path, PathBuf};

/// gzip level: 6 is gzip's own default, a good size/time balance for binaries.
const LEVEL: u32 = 6;

/// Compressed layers by diff_id, kept between runs.
#[derive(Debug, Clone)]
pub struct LayerCache {
    dir: PathBuf,
}

impl LayerCache {
    /// A layer cache in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LayerCache { dir: dir.into() }
    }

    fn blob(&self, diff_id: &str) -> PathBuf {
        self.dir.join(diff_id.trim_start_matches("sha256:"))
    }

    /// The compressed blob for `diff_id`, if cached and intact.
    fn get(&self, diff_id: &str) -> Option<(PathBuf, Descriptor)> {
        let path = self.blob(diff_id);
        let (hex, size) = kiln_fs::sha256_file(&path).ok()?;
        let gz = std::fs::File::open(&path).ok()?;
        // The blob must decompress to the diff_id it is filed under.
        let mut dec = HashingWriter::new(std::io::sink());
        std::io::copy(&mut flate2::read::GzDecoder::new(gz), &mut dec).ok()?;
        if dec.finish().0 != diff_id {
            return None;
        }
        Some((
            path,
            Descriptor {
                media_type: media::LAYER_GZIP.into(),
                digest: format!("sha256:{hex}"),
                size,
            },
        ))
    }

    fn put(&self, diff_id: &str, blob: &Path) {
        let dest = self.blob(diff_id);
        if std::fs::create_dir_all(&self.dir).is_ok() {
            let tmp = kiln_fs::temp_path(&dest);
            if std::fs::copy(blob, &tmp).is_ok() && std::fs::rename(&tmp, &dest).is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
        }
    }
}

/// Writes `entries` as a layer into `blobs`, compressing only if `cache` lacks it.
pub fn write_layer(
    entries: &[Entry],
    mtime: u64,
    blobs: &BlobDir,
    cache: Option<&LayerCache>,
    role: LayerRole,
) -> Result<Layer> {
    let mut hashing = HashingWriter::new(std::io::sink());
    tar::write(entries, mtime, &mut hashing).map_err(layer_error)?;
    let (diff_id, _, _) = hashing.finish();
    if let Some((path, descriptor)) = cache.and_then(|c| c.get(&diff_id)) {
        let dest = blobs.path(&descriptor.digest);
        if !dest.is_file() {
            let tmp = kiln_fs::temp_path(&dest);
            std::fs::copy(&path, &tmp).io_context("copy", &path)?;
            std::fs::rename(&tmp, &dest).io_context("rename into", &dest)?;
        }
        return Ok(Layer {
            descriptor,
            diff_id,
            cached: true,
            role,
        });
    }
    let staging = kiln_fs::temp_path(&blobs.path(&diff_id));
    let file = std::fs::File::create(&staging).io_context("create", &staging)?;
    let gz = flate2::write::GzEncoder::new(
        HashingWriter::new(std::io::BufWriter::new(file)),
        flate2::Compression::new(LEVEL),
    );
    let mut tar_hash = HashingWriter::new(gz);
    let written = tar::write(entries, mtime, &mut tar_hash)
        .and_then(|_| {
            let (again, _, gz) = tar_hash.finish();
            let (digest, size, mut inner) = gz.finish()?.finish();
            inner.flush()?;
            Ok((again, digest, size))
        })
        .map_err(layer_error);
    let (again, digest, size) = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(&staging);
            return Err(e);
        }
    };
    if again != diff_id {
        let _ = std::fs::remove_file(&staging);
        return Err(
            Error::environment("a file changed while its layer was written")
                .hint("run `kiln image` again once `kiln build` has finished"),
        );
    }
    let dest = blobs.path(&digest);
    std::fs::rename(&staging, &dest).io_context("rename into", &dest)?;
    if let Some(c) = cache {
        c.put(&diff_id, &dest);
    }
    Ok(Layer {
        descriptor: Descriptor {
            media_type: media::LAYER_GZIP.into(),
            digest,
            size,
        },
        diff_id,
        cached: false,
        role,
    })
}

fn layer_error(e: std::io::Error) -> Error {
    Error::environment("failed to write an image layer")
        .with_source(e)
        .hint("check that the artifacts exist (`kiln verify`) and the disk has free space")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar::Content;

    #[test]
    fn same_entries_same_digest_and_the_cache_skips_compression() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::new(&dir.path().join("a")).unwrap();
        let cache = LayerCache::new(dir.path().join("cache"));
        let entries = vec![Entry::file(
            "etc/motd",
            0o644,
            Content::Bytes(b"kiln\n".to_vec()),
        )];
        let first = write_layer(&entries, 1, &blobs, Some(&cache), LayerRole::System).unwrap();
        assert!(!first.cached);
        let other = BlobDir::new(&dir.path().join("b")).unwrap();
        let second = write_layer(&entries, 1, &other, Some(&cache), LayerRole::System).unwrap();
        assert!(second.cached);
        assert_eq!(first.descriptor, second.descriptor);
        assert!(other.has(&second.descriptor.digest));
        // Pinned: a different gzip backend or level anywhere in the tree changes this.
        assert_eq!(
            first.descriptor.digest,
            write_layer(&entries, 1, &blobs, None, LayerRole::System)
                .unwrap()
                .descriptor
                .digest
        );
        insta::assert_snapshot!(first.descriptor.digest);
    }

    #[test]
    fn a_corrupt_cache_entry_is_recompressed() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::new(dir.path()).unwrap();
        let cache = LayerCache::new(dir.path().join("cache"));
        let entries = vec![Entry::dir("data", 0o755)];
        let first = write_layer(&entries, 1, &blobs, Some(&cache), LayerRole::System).unwrap();
        std::fs::write(cache.blob(&first.diff_id), b"junk").unwrap();
        let again = write_layer(&entries, 1, &blobs, Some(&cache), LayerRole::System).unwrap();
        assert!(!again.cached);
        assert_eq!(again.descriptor, first.descriptor);
    }
}
