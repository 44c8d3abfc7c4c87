//! What the other commands say: plan, verify, cache, affected, config, setup, image,
//! dockerfile, ci, report.

use super::{arch_of, count, line, notices, platforms, Line, Style, View};
use kiln_metrics::human_bytes as size;
use kiln_schema::{Event, SyncDirection, ToolState, WorkflowState};

/// The words for a command's event.
pub(super) fn render(e: &Event, v: View) -> Vec<Line> {
    match e {
        Event::PlanUnit {
            binary,
            state,
            arches,
            because,
        } => {
            let because = if because.is_empty() {
                String::new()
            } else {
                format!("   because {}", notices::reasons(because))
            };
            let state = match state {
                kiln_schema::UnitState::Fresh => "fresh",
                kiln_schema::UnitState::Restore => "restore",
                kiln_schema::UnitState::Rebuild => "rebuild",
            };
            // Data (stdout): `kiln plan | grep rebuild` finds the binaries to build.
            vec![line(
                Style::Data,
                format!("{state:<8} {binary:<24} {}{because}", platforms(arches)),
            )]
        }
        Event::PlanStep {
            package,
            targets,
            backend,
            c_deps,
            workspace_c_deps,
            command,
            overrides,
            native,
            ..
        } => {
            let why = match (c_deps.is_empty(), workspace_c_deps.is_empty()) {
                (false, _) => format!("compiles C via {}", c_deps.join(", ")),
                (true, true) => "pure Rust".to_string(),
                (true, false) => format!(
                    "pure Rust, but the workspace compiles C via {}: one backend keeps shared crates built once",
                    workspace_c_deps.join(", ")
                ),
            };
            let arches: Vec<&str> = targets.iter().map(|t| arch_of(t)).collect();
            let mut out = vec![line(
                Style::Info("Backend"),
                format!(
                    "{package} ({}) with {} ({why})",
                    platforms(&arches),
                    backend.name()
                ),
            )];
            out.extend(
                overrides
                    .iter()
                    .map(|o| line(Style::Info("Override"), o.to_string())),
            );
            out.extend(natives(native));
            if v.verbose {
                // What `kiln build` runs, as a shell runs it: data.
                out.push(line(Style::Data, command.clone()));
            }
            out
        }
        Event::PlanResources {
            budget_bytes,
            budget_source,
            jobs,
            limited_by,
            per_job_bytes,
            estimate_source,
        } => vec![line(
            Style::Info("Memory"),
            format!(
                "budget {} ({budget_source}); {jobs} job(s) at a time (limited by {limited_by}; ~{} per job, {estimate_source}); cargo runs each package's targets in parallel under kiln's jobserver",
                size(*budget_bytes),
                size(*per_job_bytes)
            ),
        )],
        Event::NativeNeeded { native } => natives(native),
        Event::VerifyFinished {
            checked,
            problems,
            store,
        } => {
            if problems.is_empty() {
                return vec![line(
                    Style::Status("Verified"),
                    format!("{checked} artifacts in {store}"),
                )];
            }
            problems
                .iter()
                .map(|p| line(Style::Error, format!("{}: {}", p.path, p.detail)))
                .collect()
        }
        Event::ReleaseWritten {
            out,
            dry_run,
            version,
            tag,
            files,
            binstall,
        } => {
            let mut lines: Vec<Line> = files
                .iter()
                .map(|f| line(Style::Info(if *dry_run { "Would write" } else { "Wrote" }), format!("{out}/{} ({})", f.name, size(f.size))))
                .collect();
            lines.push(line(
                Style::Status(if *dry_run { "Dry run" } else { "Released" }),
                format!("{version} ({tag}): {} files in {out}", files.len()),
            ));
            for b in binstall {
                lines.push(line(
                    Style::Plain,
                    format!("note: for `cargo binstall {}`, add to its Cargo.toml:\n{}", b.package, b.toml.trim_end()),
                ));
            }
            lines
        }
        Event::CacheStats(s) => cache_stats(s),
        Event::CacheCollected {
            entries_removed,
            bytes_freed,
            bytes_left,
        } => vec![line(
            Style::Status("Collected"),
            format!(
                "{entries_removed} entries, {} freed, {} left",
                size(*bytes_freed),
                size(*bytes_left)
            ),
        )],
        Event::CacheCleared { root } => vec![line(Style::Status("Cleared"), root.clone())],
        Event::CacheSynced {
            direction,
            moved,
            total,
            bytes,
            remote,
            missing,
        } => {
            let (verb, way) = synced(*direction);
            let missing = match (missing, direction) {
                (0, _) => String::new(),
                (n, SyncDirection::Push) => format!("; {n} not in the local cache (run `kiln build`)"),
                (n, SyncDirection::Pull) => {
                    format!("; {n} not cached anywhere yet (run `kiln build`)")
                }
            };
            vec![line(
                Style::Status(verb),
                format!("{moved} of {total} binaries ({}) {way} {remote}{missing}", size(*bytes)),
            )]
        }
        Event::KeyGenerated {
            name,
            public_key,
            secret_file,
        } => vec![
            line(
                Style::Status("Generated"),
                format!(
                    "key `{name}`: secret key in `{secret_file}` (store it as the CI secret KILN_CACHE_SIGNING_KEY; never commit it)"
                ),
            ),
            line(
                Style::Plain,
                format!("add the public key to Cargo.toml:\n\n[workspace.metadata.kiln.cache]\ntrusted-keys = [\"{public_key}\"]\n"),
            ),
            line(Style::Data, public_key.clone()),
        ],
        Event::Affected {
            merge_base,
            affected,
            total,
            ..
        } => {
            let mut out: Vec<Line> = affected
                .iter()
                .map(|u| {
                    line(
                        Style::Data,
                        format!(
                            "{} {} (because {} changed)",
                            u.package,
                            platforms(&[arch_of(&u.target)]),
                            u.because.join(", ")
                        ),
                    )
                })
                .collect();
            let since = if merge_base.is_empty() {
                "(everything)".to_string()
            } else {
                format!("since {}", &merge_base[..12.min(merge_base.len())])
            };
            out.push(line(
                Style::Info("Affected"),
                format!("{} of {total} binary packages x targets {since}", affected.len()),
            ));
            out
        }
        Event::Settings { settings } => {
            let key = settings.iter().map(|s| s.key.len()).max().unwrap_or(0);
            let value = settings
                .iter()
                .map(|s| s.value.len())
                .filter(|n| *n <= 40)
                .max()
                .unwrap_or(0);
            settings
                .iter()
                .map(|s| {
                    let text = format!("{:<key$}  {:<value$}  ({})", s.key, s.value, s.origin);
                    line(Style::Data, text)
                })
                .collect()
        }
        Event::Tool { name, state } => tool(name, state).into_iter().collect(),
        Event::HostTool {
            package,
            tool,
            by,
            state,
            required,
            fix,
        } => {
            let who = by.join(", ");
            match state {
                ToolState::Found { version } => vec![line(
                    Style::Info("Host tool"),
                    format!("{tool} for {package}, run by {who}: {version}"),
                )],
                _ if *required => vec![line(
                    Style::Warn,
                    format!(
                        "{package}'s build needs `{tool}` (run by {who}), which is not installed; {}",
                        fix.as_deref().unwrap_or("install it")
                    ),
                )],
                _ => vec![line(
                    Style::Info("Optional"),
                    format!(
                        "{tool} for {package} (run by {who}) is not installed; {}",
                        fix.as_deref().unwrap_or("install it if the build asks for it")
                    ),
                )],
            }
        }
        Event::Installing { what, how } => {
            vec![line(Style::Status("Installing"), format!("{what} ({how})"))]
        }
        Event::Ready => vec![line(
            Style::Status("Ready"),
            "everything kiln needs is installed",
        )],
        Event::ImageStarted {
            name,
            platforms,
            store,
            base,
        } => {
            let mut out = Vec::new();
            if let Some(b) = base {
                out.push(line(Style::Status("Pulling"), format!("base image {b}")));
            }
            out.push(line(
                Style::Status("Assembling"),
                format!("{name} ({}) from {store}", platforms.join(", ")),
            ));
            out
        }
        Event::ImageWritten { .. } => image(e),
        Event::DockerfileWritten {
            dockerfile,
            dockerignore,
            rootfs,
            base,
            next,
        } => vec![
            line(
                Style::Status("Wrote"),
                format!(
                    "{dockerfile}, {dockerignore}{} (base {base})",
                    rootfs.as_ref().map(|r| format!(", {r}")).unwrap_or_default()
                ),
            ),
            line(Style::Info("Next"), next.clone()),
        ],
        Event::WorkflowWritten { path, state } => vec![workflow(path, state)],
        Event::ReportWritten {
            path,
            started,
            compiled,
            skipped,
            breakdown,
            slowest,
        } => {
            let which = match (compiled, skipped) {
                (0, _) => "compiled nothing (every binary was fresh or restored)".to_string(),
                (_, 0) => format!("compiled {}", count(*compiled, "binary", "binaries")),
                (_, 1) => format!(
                    "compiled {}; the build after it compiled nothing",
                    count(*compiled, "binary", "binaries")
                ),
                (_, n) => format!(
                    "compiled {}; the {n} builds after it compiled nothing",
                    count(*compiled, "binary", "binaries")
                ),
            };
            let mut out = vec![line(
                Style::Info("Report"),
                format!("the build of {} {which}", kiln_fs::rfc3339(*started)),
            )];
            out.extend(breakdown
                .iter()
                .map(|(what, wall, cpu, idle)| {
                    let detail = match (cpu, idle) {
                        (Some(c), Some(i)) => format!(", CPU {c:.1}s, cores {:.0}% idle", i * 100.0),
                        _ => String::new(),
                    };
                    line(Style::Info("Time"), format!("{wall:.1}s {what}{detail}"))
                }));
            out.extend(
                slowest
                    .iter()
                    .map(|(what, secs)| line(Style::Info("Slowest"), format!("{secs:>7.1}s {what}"))),
            );
            out.push(line(Style::Status("Wrote"), path.clone()));
            out
        }
        Event::Initialized {
            manifest,
            table,
            binaries,
            gitignore,
        } => {
            let mut out = vec![line(
                Style::Status("Wrote"),
                format!("{table} into {manifest} (the image packages {})", binaries.join(", ")),
            )];
            if !gitignore.is_empty() {
                out.push(line(
                    Style::Status("Ignored"),
                    format!("{} in .gitignore", gitignore.join(", ")),
                ));
            }
            out.push(line(Style::Info("Next"), "kiln setup && kiln build"));
            out
        }
        Event::ManWritten { dir, pages } => vec![line(
            Style::Status("Wrote"),
            format!("{} into {dir}", count(pages.len(), "man page", "man pages")),
        )],
        // The build's events are worded in `build`; these only feed progress.
        Event::BuildStarted { .. }
        | Event::CrateCompiled { .. }
        | Event::StepFinished { .. }
        | Event::Note(_)
        | Event::Warning(_)
        | Event::ArtifactWritten { .. }
        | Event::Units { .. }
        | Event::SccacheStats { .. }
        | Event::RemoteUsed { .. }
        | Event::BuildResources { .. }
        | Event::Finished { .. } => Vec::new(),
    }
}

/// One line per native library kiln provides: which, for what, and who needs it.
fn natives(native: &[kiln_schema::NativeRecord]) -> Vec<Line> {
    native
        .iter()
        .map(|n| {
            let state = if n.ready {
                "built already"
            } else {
                "kiln builds it once"
            };
            line(
                Style::Info("Native"),
                format!(
                    "{} for linux/{} ({state}), for {} via {}",
                    n.library,
                    arch_of(&n.target),
                    n.krate,
                    n.chain.join(" -> ")
                ),
            )
        })
        .collect()
}

fn cache_stats(s: &kiln_schema::CacheStats) -> Vec<Line> {
    let lookups = s.recent_hits + s.recent_misses;
    let rate = |n: u64| format!("{:.0}%", 100.0 * n as f64 / lookups.max(1) as f64);
    // Data (stdout), `key  value` lines a script can read.
    let row = |k: &str, v: String| line(Style::Data, format!("{k:<9} {v}"));
    let mut out = vec![
        row("cache", s.root.clone()),
        row("entries", format!("{} ({})", s.entries, size(s.bytes))),
    ];
    if lookups == 0 {
        out.push(row("hit rate", "no builds yet".into()));
        return out;
    }
    out.push(row(
        "hit rate",
        format!(
            "{} ({} hits, {} misses over the last {})",
            rate(s.recent_hits),
            s.recent_hits,
            s.recent_misses,
            count(s.builds.min(50), "build", "builds")
        ),
    ));
    if s.recent_remote_hits + s.recent_bytes_up > 0 {
        out.push(row(
            "remote",
            format!(
                "{} of lookups served remotely ({} hits); {} down, {} up",
                rate(s.recent_remote_hits),
                s.recent_remote_hits,
                size(s.recent_bytes_down),
                size(s.recent_bytes_up)
            ),
        ));
    }
    out
}

fn image(e: &Event) -> Vec<Line> {
    let Event::ImageWritten {
        digest,
        platforms,
        layers,
        outputs,
        pushed,
        cached_layers,
        attached,
        uploaded,
        signed,
    } = e
    else {
        return Vec::new();
    };
    let short = |d: &str| {
        d.trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect::<String>()
    };
    let mut out: Vec<Line> = layers
        .iter()
        .map(|(d, bytes, what)| {
            let cached = if cached_layers.contains(d) {
                " (cached)"
            } else {
                ""
            };
            line(
                Style::Info("Layer"),
                format!("{} {:>9}  {what}{cached}", short(d), size(*bytes)),
            )
        })
        .collect();
    out.extend(
        platforms
            .iter()
            .map(|(p, d)| line(Style::Info("Manifest"), format!("{p} {d}"))),
    );
    out.extend(attached.iter().map(|(kind, platform, d)| {
        line(Style::Info("Attached"), format!("{kind} to {platform} {d}"))
    }));
    out.push(line(
        Style::Status("Wrote"),
        format!("{} {digest}", outputs.join(", ")),
    ));
    if !pushed.is_empty() {
        let (blobs, bytes, there) = uploaded;
        out.push(line(
            Style::Status("Pushed"),
            format!(
                "{} ({blobs} blobs uploaded, {}; {there} already there) {digest}",
                pushed.join(", "),
                size(*bytes)
            ),
        ));
        if !attached.is_empty() {
            out.push(line(
                Style::Status("Referred"),
                format!("{} attachments to their platform manifests", attached.len()),
            ));
        }
    }
    if let Some(s) = signed {
        out.push(line(Style::Status("Signed"), format!("{digest} as {s}")));
    }
    // Data (stdout), as `ko build` prints it: each pushed repository by digest, or
    // the digest of what was written.
    if pushed.is_empty() {
        out.push(line(Style::Data, digest.clone()));
    }
    for reference in pushed {
        let repo = reference
            .rsplit_once(':')
            .filter(|(_, tag)| !tag.contains('/'))
            .map_or(reference.as_str(), |(repo, _)| repo);
        let by_digest = format!("{repo}@{digest}");
        if !out.iter().any(|l| l.text == by_digest) {
            out.push(line(Style::Data, by_digest));
        }
    }
    out
}

/// `kiln cache push|pull`: what moved.
fn synced(direction: SyncDirection) -> (&'static str, &'static str) {
    match direction {
        SyncDirection::Push => ("Pushed", "to"),
        SyncDirection::Pull => ("Pulled", "from"),
    }
}

/// `kiln setup`: a tool's line.
fn tool(name: &str, state: &ToolState) -> Option<Line> {
    match state {
        ToolState::Found { version } => Some(line(
            Style::Status("Found"),
            format!("{name} ({})", version.lines().next().unwrap_or_default()),
        )),
        ToolState::Missing => None,
        ToolState::NotNeeded => Some(line(
            Style::Info("Optional"),
            format!("{name} is not installed; this workspace doesn't need it"),
        )),
    }
}

/// `kiln ci github`: the workflow's line.
fn workflow(path: &str, state: &WorkflowState) -> Line {
    match state {
        WorkflowState::Written => line(Style::Status("Wrote"), path),
        WorkflowState::Fresh => line(Style::Status("Fresh"), format!("{path} is up to date")),
        WorkflowState::FreshButActions => line(
            Style::Status("Fresh"),
            format!("{path} is up to date but for action versions"),
        ),
    }
}
