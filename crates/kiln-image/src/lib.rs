//! Container images from kiln's artifact store, without a container engine.
//!
//! Like ko and jib, kiln writes the OCI blobs itself: a base layer (users, CA bundle,
//! owned data directories) and a binary layer per architecture, an image config and
//! manifest per platform, and an index over them. Everything is deterministic: tar
//! headers are written field by field, JSON is canonical, gzip is pinned, and
//! timestamps come from `SOURCE_DATE_EPOCH` or the commit, so the same artifacts give
//! the same digests.

mod attach;
mod certs;
mod dockerfile;
mod image;
mod layer;
mod oci;
mod tar;

pub use attach::{attachments, Source};
pub use dockerfile::{dockerfile, DockerBase, DockerFiles, ROOTFS_TAR};
pub use image::{
    add_to_layout, assemble, check_archive_dest, check_layout_dir, write_archive, write_layout,
    Attach, ImageSpec, PlatformImage, Provenance, User,
};
pub use kiln_fs::rfc3339;
pub use kiln_oci::{
    canonical_json, media, Artifact, Attachment, BaseImage, BasePlatform, BlobDir, Built,
    Descriptor, Layer, LayerRole, PlatformManifest,
};
pub use layer::{write_layer, LayerCache};
pub use tar::{Content, Entry};

/// Writes `entries` as a gzipped tar with kiln's deterministic writer (sorted, every
/// mtime `mtime`, numeric owners only, no name or time in the gzip header): the same
/// entries give the same bytes on every machine, for release archives. Returns the
/// hex SHA-256 and the size of what it wrote, hashed on the way out.
pub fn write_tar_gz(
    entries: &[Entry],
    mtime: u64,
    out: impl std::io::Write,
) -> std::io::Result<(String, u64)> {
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(oci::HashingWriter::new(out), flate2::Compression::new(9));
    tar::write(entries, mtime, &mut gz)?;
    let (digest, size, mut inner) = gz.finish()?.finish();
    std::io::Write::flush(&mut inner)?;
    Ok((digest.trim_start_matches("sha256:").to_string(), size))
}
