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
    assemble, write_archive, write_layout, Attach, ImageSpec, PlatformImage, Provenance, User,
};
pub use kiln_fs::rfc3339;
pub use kiln_oci::{
    canonical_json, media, Artifact, Attachment, BaseImage, BasePlatform, BlobDir, Built,
    Descriptor, Layer, LayerRole, PlatformManifest,
};
pub use layer::{write_layer, LayerCache};
pub use tar::{Content, Entry};
