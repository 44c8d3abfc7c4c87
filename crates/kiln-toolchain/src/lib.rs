//! Everything about turning Rust into a Linux binary for a given architecture:
//! target names, the backend that drives the build, and the tools each one needs.

mod backend;
mod cargo_config;
mod cfg;
mod probe;
mod rustup;
mod target;
mod zig;

pub use backend::{Backend, Invocation};
pub use cargo_config::{fix_rustflags, CargoConfig, LinkerOverride, RustflagsFix};
pub use cfg::matches as cfg_matches;
pub use probe::{
    ensure_rust_targets, rustc_version, target_cpus, zig_version, Prerequisite, Probe,
};
pub use rustup::{is_toolchain_file, toolchain_file};
pub use target::Target;
pub use zig::{file_stamp, ZigProbe};
