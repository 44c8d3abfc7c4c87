//! `kiln report [--open]`: the HTML report of the last build that compiled something
//! (a no-op or fully restored build after it has nothing to show), saying which.

use super::{load_workspace, short};
use crate::args::{GlobalArgs, ReportArgs};
use crate::reporter::Reporter;
use kiln_diagnostics::{Error, Result};
use kiln_metrics::BuildMetrics;
use kiln_schema::{Event, Warning};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub(crate) fn report(g: &GlobalArgs, args: &ReportArgs, r: &Reporter) -> Result<ExitCode> {
    let ws = load_workspace(&args.manifest, g.flags())?;
    let (metrics, skipped) = match &args.metrics {
        Some(file) => (read(file)?, 0),
        None => last_that_compiled(&ws.target_dir.join("kiln/metrics"))?,
    };
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| ws.target_dir.join("kiln/report.html"));
    kiln_fs::write_atomic(&out, kiln_metrics::report_html(&metrics).as_bytes())?;
    // The time breakdown in the terminal too: where a cold build went.
    r.emit(&Event::ReportWritten {
        path: short(&out),
        started: metrics.started,
        compiled: metrics.units.iter().filter(|u| !u.cache_hit).count(),
        skipped,
        breakdown: kiln_metrics::breakdown_rows(&metrics),
        slowest: kiln_metrics::slowest_crates(&metrics, 10),
    });
    if args.open {
        open(&out, r);
    }
    Ok(ExitCode::SUCCESS)
}

fn read(file: &Path) -> Result<BuildMetrics> {
    let bytes = std::fs::read(file).map_err(|e| {
        Error::usage(format!("cannot read build metrics `{}`", file.display()))
            .with_source(e)
            .hint("run `kiln build` first: every build writes its metrics under <target-dir>/kiln/metrics")
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::usage(format!("`{}` is not kiln build metrics", file.display()))
            .with_source(e)
            .hint("run `kiln build` to write new ones")
    })
}

/// The newest metrics in `dir` of a build that compiled something, with how many
/// newer builds compiled nothing; the newest of all when none compiled.
fn last_that_compiled(dir: &Path) -> Result<(BuildMetrics, usize)> {
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stamp = name.strip_suffix(".json")?.parse::<u64>().ok()?;
            Some((stamp, e.path()))
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    let mut newest = None;
    for (i, (_, file)) in files.iter().enumerate() {
        let Ok(m) = read(file) else { continue };
        if m.units.iter().any(|u| !u.cache_hit) {
            return Ok((m, i));
        }
        newest.get_or_insert(m);
    }
    newest.map(|m| (m, 0)).ok_or_else(|| {
        Error::usage(format!("no build metrics in `{}` yet", short(dir)))
            .hint("run `kiln build` first: every build writes its metrics there")
    })
}

/// Opens the page in the browser; a machine without one gets a warning, and the
/// opener's own noise is not shown.
fn open(page: &Path, r: &Reporter) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let opened = std::process::Command::new(opener)
        .arg(page)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    let error = match opened {
        Ok(s) if s.success() => return,
        Ok(s) => format!("{opener} exited with {s}"),
        Err(e) => format!("{opener}: {e}"),
    };
    r.emit(&Event::Warning(Warning::NoBrowser {
        page: short(page),
        error,
    }));
}
