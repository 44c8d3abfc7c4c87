//! What `kiln build` says: steps, artifacts, the cache, resources, the summary.

use super::{arch_of, count, grouped, line, notices, platforms, Line, Style, View};
use kiln_metrics::human_bytes as size;
use kiln_schema::{Event, UnitState};

/// The words for a build event; `None` for the other commands' events.
pub(super) fn render(e: &Event, v: View) -> Option<Vec<Line>> {
    Some(match e {
        Event::BuildStarted {
            targets,
            packages,
            backend,
            version,
            command,
            ..
        } => {
            let arches: Vec<&str> = targets.iter().map(|t| arch_of(t)).collect();
            let mut out = vec![line(
                Style::Status("Building"),
                format!(
                    "{} v{version} ({}) with {}",
                    packages.join(", "),
                    platforms(&arches),
                    backend.name()
                ),
            )];
            if v.verbose {
                out.push(line(Style::Info("Running"), command.clone()));
            }
            out
        }
        Event::CrateCompiled { .. } => Vec::new(),
        Event::StepFinished {
            package,
            elapsed_secs,
        } if v.verbose || v.log => vec![line(
            Style::Info("Built"),
            format!("{package} in {elapsed_secs:.1}s"),
        )],
        Event::StepFinished { .. } => Vec::new(),
        Event::Note(n) => vec![line(Style::Info("Note"), notices::note(n))],
        Event::Warning(w) => vec![line(Style::Warn, notices::warning(w))],
        Event::ArtifactWritten { artifact, built } if *built => vec![line(
            Style::Status("Installed"),
            format!(
                "{} ({}, sha256 {})",
                artifact.path,
                size(artifact.size),
                &artifact.sha256[..12.min(artifact.sha256.len())]
            ),
        )],
        Event::ArtifactWritten { .. } => Vec::new(),
        Event::Units { state, units } => match state {
            UnitState::Fresh => vec![line(Style::Status("Fresh"), grouped(units))],
            _ => vec![line(
                Style::Status("Restored"),
                format!(
                    "{} from cache: {}",
                    count(
                        units.iter().map(|u| u.arches.len()).sum::<usize>(),
                        "binary",
                        "binaries"
                    ),
                    grouped(units)
                ),
            )],
        },
        Event::SccacheStats {
            hits,
            misses,
            remote,
            fell_back,
            local,
        } => {
            let mut text = format!(
                "{hits} hits, {misses} misses over {} compiler calls",
                hits + misses
            );
            if remote + fell_back > 0 {
                text.push_str(&format!(
                    "; compiled {remote} on build servers, {fell_back} here after a server failed, {local} here by rule"
                ));
            }
            vec![line(Style::Info("sccache"), text)]
        }
        Event::RemoteUsed {
            remote,
            hits,
            bytes_down,
            uploaded,
            bytes_up,
        } => vec![line(
            Style::Info("Remote"),
            format!(
                "{remote}: {hits} restored ({} down), {uploaded} uploaded ({} up)",
                size(*bytes_down),
                size(*bytes_up)
            ),
        )],
        Event::BuildResources {
            peak_bytes,
            budget_bytes,
            jobs,
            throttled,
            retries,
            cpu_secs,
        } => {
            let held = if *throttled > 0 {
                format!(", work held back {throttled} time(s) near the budget")
            } else {
                String::new()
            };
            let retried = if *retries > 0 {
                format!(", {retries} retried after an OOM kill")
            } else {
                String::new()
            };
            vec![line(
                Style::Info("Memory"),
                format!(
                    "peak {} of a {} budget, {jobs} job(s){held}{retried}; CPU {cpu_secs:.1}s; `kiln report` for the timeline",
                    size(*peak_bytes),
                    size(*budget_bytes)
                ),
            )]
        }
        Event::Finished {
            success: true,
            elapsed_secs,
            counts,
            store,
            cached,
            ..
        } => {
            let total = counts.built + counts.restored + counts.fresh;
            let note = if *cached {
                format!(" [cache: {}/{total} hits]", counts.restored + counts.fresh)
            } else {
                String::new()
            };
            // Only what happened: `(4 restored)`, `(1 built, 3 fresh)`.
            let parts: Vec<String> = [
                (counts.built, "built"),
                (counts.restored, "restored"),
                (counts.fresh, "fresh"),
            ]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
            let parts = if parts.is_empty() {
                String::new()
            } else {
                format!(" ({})", parts.join(", "))
            };
            vec![line(
                Style::Status("Finished"),
                format!(
                    "{}{parts} in {elapsed_secs:.2}s into {store}{note}",
                    count(total, "binary", "binaries")
                ),
            )]
        }
        Event::Finished { .. } => Vec::new(),
        _ => return None,
    })
}
