//! `kiln report [--open]`.

use super::{load_workspace, short};
use crate::args::{Cli, ReportArgs};
use crate::reporter::Reporter;
use kiln_diagnostics::{Error, IoContext, Result};
use std::process::ExitCode;

pub(crate) fn report(cli: &Cli, args: &ReportArgs, r: &Reporter) -> Result<ExitCode> {
    let ws = load_workspace(cli)?;
    let source = args
        .metrics
        .clone()
        .unwrap_or_else(|| ws.target_dir.join("kiln/metrics/last.json"));
    let bytes = std::fs::read(&source).map_err(|e| {
        Error::io("read", &source, e)
            .hint("run `kiln build` first: every build writes its metrics there")
    })?;
    let metrics: kiln_metrics::BuildMetrics = serde_json::from_slice(&bytes).map_err(|e| {
        Error::usage(format!("`{}` is not kiln build metrics", source.display()))
            .with_source(e)
            .hint("run `kiln build` to write new ones")
    })?;
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| ws.target_dir.join("kiln/report.html"));
    kiln_fs::write_atomic(&out, kiln_metrics::report_html(&metrics).as_bytes())?;
    // The time breakdown in the terminal too: where a cold build went.
    for (what, wall, cpu, idle) in kiln_metrics::breakdown_rows(&metrics) {
        let detail = match (cpu, idle) {
            (Some(c), Some(i)) => format!(", CPU {c:.1}s, cores {:.0}% idle", i * 100.0),
            _ => String::new(),
        };
        r.info("Time", &format!("{wall:.1}s {what}{detail}"));
    }
    for (what, secs) in kiln_metrics::slowest_crates(&metrics, 10) {
        r.info("Slowest", &format!("{secs:>7.1}s {what}"));
    }
    r.status("Wrote", &short(&out));
    if args.open {
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else {
            "xdg-open"
        };
        std::process::Command::new(opener)
            .arg(&out)
            .spawn()
            .io_context("run", std::path::Path::new(opener))?;
    }
    Ok(ExitCode::SUCCESS)
}
