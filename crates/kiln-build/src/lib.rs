//! Building: turn a request (which binaries, which targets) into a [`Plan`] of cargo
//! invocations, run them, and install what they produce into the artifact store.
//!
//! The plan is computed completely before anything runs, so `kiln plan` can print
//! exactly what `kiln build` will do.

mod affected;
mod allocator;
mod analysis;
mod build;
mod git;
mod graphs;
mod keys;
mod linked;
mod observer;
mod plan;
mod request;
mod resources;
mod sbom;
mod sccache;

pub use affected::{affected, Affected, AffectedUnit};
pub use analysis::{analyze, Analysis, UnitPlan, UnitState};
pub use build::{execute, narrowed_step, native_entries, BuildOutcome};
pub use git::{git_info, start_probes};
pub use observer::Observer;
pub use plan::{native_root, HostToolNeed, NativeGate, NativeLib, Plan, Step, SCCACHE_PORT};
pub use request::{select, BuildRequest, Selection};
pub use resources::Resources;
pub use sccache::{dist_status, DistStatus, SccacheCounts};
