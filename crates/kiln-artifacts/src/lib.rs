//! The artifact store: `<root>/<os>/<arch>/<bin>` with `.sha256` and `.version`
//! sidecars, and `<root>/checksums.json` listing everything.
//!
//! Every file is written to a temporary name in its final directory and renamed into
//! place, so a reader (or a crash) never sees half a file, and a failed build never
//! replaces a good artifact. Writers hold an exclusive lock on `<root>/.kiln.lock`.

mod elf;
mod store;
mod verify;

pub use elf::{elf_info, ElfInfo};
pub use store::{
    artifact_path, sha256_sidecar, version_sidecar, Document, NewArtifact, Store, StoreLock,
};
pub use verify::{Problem, VerifyReport};
