//! Memory and time: the memory budget kiln keeps, the sampler that measures the real
//! memory of the whole build (every cargo, rustc, linker and build-script process),
//! the metrics each build writes (JSON and Prometheus text), and `kiln report`.

mod budget;
pub mod host;
mod metrics;
mod report;
mod sampler;
pub mod sealed;
pub mod signals;

pub use budget::{detect_budget, Budget};
pub use metrics::{
    BuildMetrics, CrateMark, CrateTiming, ProvisionMetrics, StepMetrics, UnitKind, UnitMetrics,
    SCHEMA_VERSION,
};
pub use report::{breakdown_rows, report_html, slowest_crates};
pub use sampler::{tree_rss, Sample, Sampler};

/// `1.5 GiB`, `300 MiB`, `12 KiB`.
pub fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.0} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
