//! Shipping what kiln built. The artifact store is the input: `image` verifies it
//! and makes a multi-arch OCI image of its binaries (pulling a base when one is
//! configured, attaching SBOMs and provenance, writing a layout or archive, pushing
//! and signing); `dockerfile` writes the files `docker buildx` needs to do the same.
//! The CLI's commands only turn arguments into a request and events into words.
//!
//! This is the one crate that drives both the image builder (kiln-image) and the
//! registry client (kiln-registry); they share only kiln-oci's types.

mod dockerfile;
mod image;
mod spec;

pub use dockerfile::{dockerfile, DockerfileRequest};
pub use image::{image, ImageRequest};
