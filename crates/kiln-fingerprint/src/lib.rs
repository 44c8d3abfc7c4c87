//! Cache keys for binaries.
//!
//! A key covers one binary for one target, profile and feature set. It is the hash of
//! a sorted list of named inputs ([`Inputs`]); the list itself is kept with each cache
//! entry so that a miss can say which input changed.
//!
//! The inputs, in order (change any of them and bump [`KEY_VERSION`]):
//! 1. `kiln`: [`KEY_VERSION`];
//! 2. `unit`: package, binary, target triple, profile; `features`: the feature flags;
//! 3. `backend`: backend name and version (zig's version for the zig backend);
//! 4. `rustc`: the full `rustc -vV` of the toolchain used in the workspace;
//! 5. `env:*`: environment cargo, rustc and cc read (RUSTFLAGS, CARGO_PROFILE_*, CC_*, ...),
//!    kiln's own per-target settings, and variables build scripts asked for with
//!    `rerun-if-env-changed`;
//! 6. `manifest`: the root manifest's `profile`, `patch`, `replace` and `workspace.package`;
//!    `cargo-config#N`: every `.cargo/config.toml` cargo would read; `toolchain-file`;
//! 7. `dep:*`: each non-workspace package in the binary's build graph for that target and
//!    feature set (`cargo tree`), with its version, source, `Cargo.lock` checksum and features;
//! 8. `file:*`: every file (not ignored by git, not under `target/`) of each workspace
//!    package in that graph, plus files outside them that build scripts named with
//!    `rerun-if-changed`.

mod files;
mod graph;
mod inputs;

pub use files::FileHasher;
pub use graph::{dep_graph, DepGraph, GraphNode};
pub use inputs::{diff, Inputs, KEY_VERSION};
