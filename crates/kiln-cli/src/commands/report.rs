//! `kiln report [--open]`.

use super::{load_workspace, short};
use crate::args::{Cli, ReportArgs};
use crate::reporter::Reporter;
use kiln_diagnostics::{Error, Result};
use kiln_schema::{Event, Warning};
use std::process::ExitCode;

pub(crate) fn report(cli: &Cli, args: &ReportArgs, r: &Reporter) -> Result<ExitCode> {
    let ws = load_workspace(cli, cli.global.flags())?;
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
    r.emit(&Event::ReportWritten {
        path: short(&out),
        breakdown: kiln_metrics::breakdown_rows(&metrics),
        slowest: kiln_metrics::slowest_crates(&metrics, 10),
    });
    if args.open {
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else {
            "xdg-open"
        };
        let opened = std::process::Command::new(opener)
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        match opened {
            Ok(s) if s.success() => {}
            Ok(s) => r.emit(&Event::Warning(Warning::NoBrowser {
                page: short(&out),
                error: format!("{opener} exited with {s}"),
            })),
            Err(e) => r.emit(&Event::Warning(Warning::NoBrowser {
                page: short(&out),
                error: format!("{opener}: {e}"),
            })),
        }
    }
    Ok(ExitCode::SUCCESS)
}
