//! The interface through which a build reports what happens, so the analysis and the
//! execution share it without importing each other, and tests can observe a build.

use crate::plan::Step;
use std::time::Duration;

/// Receives what happens during a build, to render it.
pub trait Observer: Sync {
    /// kiln did something on the user's behalf (installed a target, overrode a setting).
    fn note(&self, message: &str);
    /// Something is wrong but the build goes on (a corrupt cache entry).
    fn warn(&self, message: &str);
    /// A cargo invocation is starting.
    fn step_started(&self, step: &Step);
    /// Cargo finished compiling one crate; `target` is `None` for host crates.
    fn unit_finished(&self, name: &str, target: Option<&str>);
    /// A line cargo wrote to stderr (status lines and rendered diagnostics).
    fn cargo_stderr(&self, line: &str);
    /// A cargo invocation finished successfully.
    fn step_finished(&self, step: &Step, elapsed: Duration);
}
