//! Cache keys for binaries.
//!
//! A key covers one binary for one target, profile and feature set. It is the SHA-256
//! of the canonical encoding ([`Inputs::encoding`]) of typed inputs ([`InputId`] ->
//! [`InputValue`]); the list itself is kept with each cache entry so that a miss can
//! say in words which input changed ([`Change`]). No input holds a path of this
//! machine (checkout, `CARGO_HOME`, cache or target dir) or an environment value
//! (values are hashed): a key computed in another checkout, under another user, on
//! another machine is the same key.
//!
//! The inputs (change any of them, or their meaning, and bump [`KEY_VERSION`]):
//! 1. `scheme`: [`KEY_VERSION`];
//! 2. `unit`: package, binary, target triple, profile; `features`: the feature flags;
//! 3. `backend`: backend name and version (zig's version for the zig backend);
//! 4. `toolchain`: the digest of `rustc -vV` of the toolchain used in the workspace;
//! 5. `env`: environment cargo, rustc and cc read (RUSTFLAGS, CARGO_PROFILE_*, CC_*, ...)
//!    and variables build scripts asked for with `rerun-if-env-changed`, by value digest;
//!    `kiln-env`: what kiln sets for its own invocation (never a path);
//! 6. `override`: each setting of the user's config kiln overrides for the target, as
//!    data (setting, from, to, config level);
//! 7. `native`: each native library kiln provisions, by name, source version and recipe;
//! 8. the shared inputs of [`global`]: `root-manifest`, `cargo-config` (by level),
//!    `toolchain-file`;
//! 9. `dep`: each non-workspace package in the binary's build graph for that target and
//!    feature set (`cargo tree`), with its source, `Cargo.lock` checksum and features;
//!    `package`: each workspace member in it, with version and features;
//! 10. `file`: every file (not ignored by git, not under `target/`) of each workspace
//!     package in that graph, by content (a symlink by what it resolves to), plus
//!     files that build scripts named with `rerun-if-changed` (`external` outside the
//!     workspace).

mod canonical;
mod files;
pub mod global;
mod graph;
mod inputs;
#[cfg(test)]
mod proptests;

pub use canonical::encode as canonical_encoding;
pub use files::{dir_digest, files_digest, FileHasher, LS_FILES_ARGS};
pub use graph::{dep_graph, DepGraph, GraphNode};
pub use inputs::{diff, digest, Change, Input, InputId, InputValue, Inputs, KEY_VERSION};
pub use kiln_schema::RelPath;
