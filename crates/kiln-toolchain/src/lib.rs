//! Everything about turning Rust into a Linux binary for a given architecture:
//! target names, the backend that drives the build, and the tools each one needs.

mod backend;
mod cargo_config;
mod cfg;
pub mod host_tools;
mod probe;
mod rustup;
mod tools;
pub mod wrapper;
mod zig;

pub use backend::{Backend, Invocation};
pub use cargo_config::{fix_rustflags, CargoConfig, LinkerOverride, RustflagsFix};
pub use cfg::matches as cfg_matches;
pub use kiln_config::{Target, DEFAULT_GLIBC};
pub use kiln_workspace::{
    cargo_program, classify, explain, explain_seen, without_backtrace, CargoFailure,
};
pub use probe::{
    ensure_rust_targets, missing_toolchain, rustc_version, start_rustc_version, target_cpus,
    toolchain_install, zig_version, Install, Prerequisite, Probe, ZIG_VERSION,
};
pub use rustup::{is_toolchain_file, pinned, toolchain_file, Pinned};
pub use tools::{activate as activate_tools, install_python_tools, tools_venv};
pub use zig::{direct as direct_zig, file_stamp, ZigProbe};

/// The dependency platforms the build of `targets` follows: an edge of every
/// platform, or one whose `cfg(..)` or triple matches one of the targets (for
/// the workspace's graph queries).
pub fn on_any(targets: &[Target]) -> impl Fn(Option<&str>) -> bool + '_ {
    move |p: Option<&str>| match p {
        None => true,
        Some(cfg) if cfg.starts_with("cfg(") => targets.iter().any(|t| cfg_matches(cfg, t)),
        Some(triple) => targets.iter().any(|t| t.triple == triple),
    }
}
