//! `kiln report`: one self-contained HTML page (inline CSS and SVG, no scripts, no
//! fetches) that works from file://: per binary its own figures, where the time
//! went, memory over time (scaled to the peak, the budget marked), and cargo's crate
//! timeline per invocation with a row group per platform and a time axis, as
//! `cargo build --timings` draws it.

use crate::human_bytes;
use crate::metrics::{BuildMetrics, CrateTiming, StepMetrics};
use std::fmt::Write;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Width of the charts, and of the label column left of them.
const WIDTH: f64 = 960.0;
const LABELS: f64 = 110.0;

/// `linux/amd64` for a triple (`x86_64-unknown-linux-musl`).
fn platform_of(triple: &str) -> String {
    let arch = match triple.split('-').next().unwrap_or(triple) {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("linux/{arch}")
}

/// A UTC date and time for unix seconds: `2026-12-02 10:15 UTC`.
fn utc(secs: u64) -> String {
    let stamp = kiln_fs::rfc3339(secs);
    stamp
        .get(..16)
        .map(|s| format!("{} UTC", s.replace('T', " ")))
        .unwrap_or(stamp)
}

/// The report for `m`.
pub fn report_html(m: &BuildMetrics) -> String {
    let mut h = String::new();
    h.push_str(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>kiln build report</title>\n<style>\
body{font:14px system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}table{border-collapse:collapse;margin:.5em 0}\
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}\
th{background:#f3f3f3}.hit{color:#0a7a2f}.miss{color:#b35900}svg{background:#fcfcfc;border:1px solid #ddd;display:block}\
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:.5em 1em}\
.card b{display:block;font-size:20px}.muted{color:#666}\
</style></head><body>\n<h1>kiln build report</h1>\n",
    );
    let built = m.units.iter().filter(|u| !u.cache_hit).count();
    let _ = writeln!(
        h,
        "<p class=\"muted\">The build started {} on {} with kiln {}.</p>",
        utc(m.started),
        esc(&m.host),
        esc(&m.kiln_version)
    );
    let card = |h: &mut String, value: String, what: &str| {
        let _ = write!(h, "<div class=\"card\"><b>{value}</b>{what}</div>");
    };
    h.push_str("<div class=\"cards\">");
    card(&mut h, format!("{:.1}s", m.wall_secs), "wall time");
    card(&mut h, format!("{:.1}s", m.cpu_secs), "CPU time");
    card(&mut h, human_bytes(m.peak_bytes), "peak memory");
    card(
        &mut h,
        human_bytes(m.budget_bytes),
        &format!("budget ({})", esc(&m.budget_source)),
    );
    card(
        &mut h,
        format!("{built} of {}", m.units.len()),
        "binaries compiled",
    );
    card(&mut h, m.jobs.to_string(), "jobs");
    if let Some(remote) = m.sccache_remote {
        card(&mut h, remote.to_string(), "compiles on build servers");
        card(
            &mut h,
            m.sccache_fell_back.unwrap_or(0).to_string(),
            "sent, failed there, compiled here",
        );
        card(
            &mut h,
            m.sccache_local.unwrap_or(0).to_string(),
            "compiled here by rule (bin crates, links)",
        );
    }
    h.push_str("</div>\n");
    binaries(&mut h, m);
    breakdown(&mut h, m);
    memory_chart(&mut h, m);
    timeline(&mut h, m);
    h.push_str("</body></html>\n");
    h
}

fn binaries(h: &mut String, m: &BuildMetrics) {
    h.push_str("<h2>Binaries</h2>\n<table><tr><th>binary</th><th>platform</th><th>result</th><th>its crate s</th><th>peak memory then</th><th>size</th></tr>\n");
    for u in &m.units {
        let (class, what) = match (u.cache_hit, u.state.as_str()) {
            (false, _) => ("miss", "compiled"),
            (true, "fresh") => ("hit", "fresh in the store"),
            (true, _) => ("hit", "restored from the cache"),
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{what}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&u.binary),
            esc(&platform_of(&u.target)),
            u.own_secs.map_or("–".into(), |s| format!("{s:.2}")),
            u.own_peak_bytes.map_or("–".into(), human_bytes),
            human_bytes(u.size_bytes)
        );
    }
    h.push_str("</table>\n<p class=\"muted\">A compiled binary's figures are its own crate's: compiling and linking it for that platform (cargo's timing), and the build's memory meanwhile. The cargo invocations' totals are below.</p>\n");
}

/// The cores of the host line (`linux/x86_64, 2 cores, name`), 1 when unknown.
fn cores(host: &str) -> f64 {
    host.split(", ")
        .find_map(|p| p.strip_suffix(" cores"))
        .and_then(|n| n.parse::<f64>().ok())
        .filter(|n| *n >= 1.0)
        .unwrap_or(1.0)
}

/// Where the wall time went: native libraries before cargo, then each cargo
/// invocation with how much of the machine it kept busy.
pub fn breakdown_rows(m: &BuildMetrics) -> Vec<(String, f64, Option<f64>, Option<f64>)> {
    let cores = cores(&m.host);
    let mut rows = Vec::new();
    for p in &m.provisioning {
        let how = match (p.restored, p.beside_cargo) {
            (true, _) => "restored",
            (false, true) => "built beside cargo",
            (false, false) => "built",
        };
        rows.push((
            format!("{} for {} ({how})", p.library, platform_of(&p.target)),
            p.wall_secs,
            None,
            None,
        ));
    }
    for s in &m.steps {
        let busy = (s.wall_secs > 0.0).then(|| (s.cpu_secs / (s.wall_secs * cores)).min(1.0));
        rows.push((
            format!("cargo: {} ({})", s.package, platforms(s)),
            s.wall_secs,
            Some(s.cpu_secs),
            busy.map(|b| 1.0 - b),
        ));
    }
    rows
}

fn platforms(s: &StepMetrics) -> String {
    s.targets
        .iter()
        .map(|t| platform_of(t))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `n` crates that took longest, over every cargo invocation: `(crate and its
/// unit, seconds)`, longest first. Where a cold build's time goes, crate by crate.
pub fn slowest_crates(m: &BuildMetrics, n: usize) -> Vec<(String, f64)> {
    let mut all: Vec<(String, f64)> = m
        .steps
        .iter()
        .flat_map(|s| &s.crates)
        .map(|c| (label(c, true), c.duration))
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(n);
    all
}

/// `serde 1.0.1 (build-script, host)`; in a bar, `serde (build-script)` (its row
/// group names the platform).
fn label(c: &CrateTiming, full: bool) -> String {
    let mut what = vec![];
    if full && !c.target.is_empty() {
        what.push(c.target.clone());
    } else if c.target.contains("\"bin\"") {
        what.push("bin".to_string());
    } else if !c.target.is_empty() {
        what.push(c.target.replace("build-script", "build script"));
    }
    if let Some(p) = c.platform.as_ref().filter(|_| full) {
        what.push(p.clone());
    }
    let name = if full && !c.version.is_empty() {
        format!("{} {}", c.name, c.version)
    } else {
        c.name.clone()
    };
    if what.is_empty() {
        name
    } else {
        format!("{name} ({})", what.join(", "))
    }
}

fn breakdown(h: &mut String, m: &BuildMetrics) {
    h.push_str("<h2>Where the time went</h2>\n<table><tr><th>what</th><th>wall s</th><th>CPU s</th><th>cores idle</th><th>peak memory</th><th>jobs</th></tr>\n");
    let rows = breakdown_rows(m);
    let steps = std::iter::repeat_n(None, m.provisioning.len()).chain(m.steps.iter().map(Some));
    for ((what, wall, cpu, idle), step) in rows.into_iter().zip(steps) {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{wall:.1}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&what),
            cpu.map_or(String::new(), |c| format!("{c:.1}")),
            idle.map_or(String::new(), |i| format!("{:.0}%", i * 100.0)),
            step.map_or(String::new(), |s| human_bytes(s.peak_bytes)),
            step.map_or(String::new(), |s| format!(
                "{}{}",
                s.jobs,
                if s.retried { ", retried" } else { "" }
            )),
        );
    }
    h.push_str("</table>\n");
}

/// A tick interval that puts at most ten ticks over `span` seconds.
fn tick(span: f64) -> f64 {
    [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0,
    ]
    .into_iter()
    .find(|t| span / t <= 10.0)
    .unwrap_or(1800.0)
}

/// A time axis under a chart: a tick and a label every [`tick`] seconds.
fn time_axis(h: &mut String, span: f64, y: f64, x: impl Fn(f64) -> f64) {
    let step = tick(span);
    let mut t = 0.0;
    while t <= span + 1e-9 {
        let _ = write!(
            h,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1:.1}\" y2=\"{2:.1}\" stroke=\"#999\"/><text x=\"{0:.1}\" y=\"{3:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#555\">{4}s</text>",
            x(t),
            y,
            y + 4.0,
            y + 15.0,
            if step < 1.0 { format!("{t:.1}") } else { format!("{t:.0}") }
        );
        t += step;
    }
    h.push('\n');
}

fn memory_chart(h: &mut String, m: &BuildMetrics) {
    h.push_str("<h2>Memory of the whole build</h2>\n");
    let peak = m
        .samples
        .iter()
        .map(|s| s.rss)
        .max()
        .unwrap_or(0)
        .max(m.peak_bytes);
    if m.samples.is_empty() || peak == 0 {
        h.push_str("<p>No memory was sampled: nothing was compiled.</p>\n");
        return;
    }
    let (w, ht, top_pad, bottom) = (WIDTH, 240.0, 10.0, 22.0);
    let span = m.samples.iter().map(|s| s.ms).max().unwrap_or(1).max(1) as f64 / 1000.0;
    // Scaled to the peak, so a build far below its budget is still a curve; the
    // budget is drawn when it fits, and said when it doesn't.
    let budget_fits = m.budget_bytes as f64 <= peak as f64 * 1.5;
    let top = if budget_fits {
        peak.max(m.budget_bytes) as f64 * 1.1
    } else {
        peak as f64 * 1.15
    };
    let x = |t: f64| LABELS + t / span * (w - LABELS - 20.0);
    let y = |b: f64| top_pad + (1.0 - b / top) * (ht - top_pad - bottom);
    let _ = writeln!(
        h,
        "<svg width=\"{w}\" height=\"{ht}\" role=\"img\" aria-label=\"memory over time\">"
    );
    for i in 0..=4 {
        let b = top * f64::from(i) / 4.0;
        let _ = write!(
            h,
            "<line x1=\"{LABELS}\" x2=\"{:.1}\" y1=\"{1:.1}\" y2=\"{1:.1}\" stroke=\"#eee\"/><text x=\"{2:.1}\" y=\"{3:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#555\">{4}</text>",
            w - 20.0,
            y(b),
            LABELS - 6.0,
            y(b) + 4.0,
            human_bytes(b as u64)
        );
    }
    // Each cargo invocation as a band, named.
    for s in &m.steps {
        let (x0, x1) = (x(s.offset_secs), x(s.offset_secs + s.wall_secs));
        let _ = write!(
            h,
            "<rect x=\"{x0:.1}\" y=\"{top_pad}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#eef3fb\"><title>cargo: {}</title></rect>",
            (x1 - x0).max(1.0),
            ht - top_pad - bottom,
            esc(&s.package)
        );
    }
    let points: Vec<String> = m
        .samples
        .iter()
        .map(|s| format!("{:.1},{:.1}", x(s.ms as f64 / 1000.0), y(s.rss as f64)))
        .collect();
    let _ = writeln!(
        h,
        "<polyline fill=\"none\" stroke=\"#1f5fbf\" stroke-width=\"1.5\" points=\"{}\"/>",
        points.join(" ")
    );
    let py = y(peak as f64);
    let _ = writeln!(
        h,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" fill=\"#1f5fbf\">peak {}</text>",
        LABELS + 6.0,
        py - 4.0,
        human_bytes(peak)
    );
    if budget_fits {
        let by = y(m.budget_bytes as f64);
        let _ = writeln!(
            h,
            "<line x1=\"{LABELS}\" x2=\"{:.1}\" y1=\"{by:.1}\" y2=\"{by:.1}\" stroke=\"#c00\" stroke-dasharray=\"6 4\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" fill=\"#c00\" text-anchor=\"end\">budget {}</text>",
            w - 20.0,
            w - 24.0,
            by - 4.0,
            human_bytes(m.budget_bytes)
        );
    }
    time_axis(h, span, ht - bottom, x);
    h.push_str("</svg>\n");
    if !budget_fits {
        let _ = writeln!(
            h,
            "<p class=\"muted\">The budget, {}, is {:.0}&times; the peak: above the chart.</p>",
            human_bytes(m.budget_bytes),
            m.budget_bytes as f64 / peak as f64
        );
    }
}

/// Colors of a platform's bars: its crates, and its binaries' own crates.
fn colors(platform: &str) -> (&'static str, &'static str) {
    match platform {
        "host" => ("#c9c9c9", "#9a9a9a"),
        p if p.ends_with("arm64") => ("#f2c28f", "#d9822b"),
        _ => ("#9dbde8", "#3b73c4"),
    }
}

fn timeline(h: &mut String, m: &BuildMetrics) {
    h.push_str("<h2>Crate compilations (cargo's timings)</h2>\n");
    if m.steps.is_empty() {
        h.push_str(
            "<p>No cargo invocation ran: every binary came from the store or the cache.</p>\n",
        );
    }
    for s in &m.steps {
        let _ = writeln!(
            h,
            "<h3>cargo: {} &rarr; {} ({} jobs, {:.2}s{})</h3>",
            esc(&s.package),
            esc(&platforms(s)),
            s.jobs,
            s.wall_secs,
            if s.retried { ", retried" } else { "" }
        );
        if s.crates.is_empty() {
            h.push_str("<p>no crate was compiled</p>\n");
            continue;
        }
        step_timeline(h, s);
    }
}

/// A platform's rows of a timeline: its name, each lane's end, and its bars (lane,
/// crate).
type Group<'a> = (String, Vec<f64>, Vec<(usize, &'a CrateTiming)>);

fn step_timeline(h: &mut String, s: &StepMetrics) {
    // A group of lanes per platform, targets first, host last; each bar goes to the
    // first lane of its group free at its start.
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut crates: Vec<&CrateTiming> = s.crates.iter().collect();
    crates.sort_by(|a, b| a.start.total_cmp(&b.start));
    for c in crates {
        let p = c.platform.clone().unwrap_or_else(|| "unknown".into());
        let g = match groups.iter().position(|g| g.0 == p) {
            Some(i) => i,
            None => {
                groups.push((p, Vec::new(), Vec::new()));
                groups.len() - 1
            }
        };
        let (_, lanes, bars) = &mut groups[g];
        let lane = lanes
            .iter()
            .position(|end| *end <= c.start)
            .unwrap_or_else(|| {
                lanes.push(0.0);
                lanes.len() - 1
            });
        lanes[lane] = c.start + c.duration;
        bars.push((lane, c));
    }
    groups.sort_by_key(|g| (g.0 == "host", g.0.clone()));
    let span = s
        .crates
        .iter()
        .map(|c| c.start + c.duration)
        .fold(s.wall_secs.max(0.1), f64::max);
    let (row, gap, bottom) = (18.0, 8.0, 22.0);
    let lanes: usize = groups.iter().map(|g| g.1.len()).sum();
    let ht = lanes as f64 * row + groups.len() as f64 * gap + bottom + 4.0;
    let x = |t: f64| LABELS + t / span * (WIDTH - LABELS - 20.0);
    let _ = writeln!(
        h,
        "<svg width=\"{WIDTH}\" height=\"{ht:.0}\" role=\"img\" aria-label=\"crate timeline of {}\">",
        esc(&s.package)
    );
    let mut top = 4.0;
    for (platform, lanes, bars) in &groups {
        let (fill, own) = colors(platform);
        let _ = write!(
            h,
            "<text x=\"6\" y=\"{:.1}\" font-size=\"12\" font-weight=\"bold\">{}</text>",
            top + 13.0,
            esc(platform)
        );
        for (lane, c) in bars {
            let bx = x(c.start);
            let bw = (x(c.start + c.duration) - bx).max(1.0);
            let by = top + *lane as f64 * row;
            let color = if c.target.contains("\"bin\"") {
                own
            } else {
                fill
            };
            let name = label(c, false);
            // A label only where it fits; the tooltip always has it.
            let text = if bw >= name.len() as f64 * 6.2 + 6.0 {
                format!(
                    "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text>",
                    bx + 3.0,
                    by + row - 6.0,
                    esc(&name)
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                h,
                "<g><title>{} {:.2}s (from {:.2}s)</title><rect x=\"{bx:.1}\" y=\"{by:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"{color}\"/>{text}</g>",
                esc(&label(c, true)),
                c.duration,
                c.start,
                row - 3.0
            );
        }
        top += lanes.len() as f64 * row + gap;
    }
    time_axis(h, span, top, x);
    h.push_str("</svg>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{CrateTiming, StepMetrics, UnitMetrics};
    use crate::sampler::Sample;

    fn metrics() -> BuildMetrics {
        let timing = |name: &str, target: &str, platform: &str, start: f64| CrateTiming {
            name: name.into(),
            target: target.into(),
            start,
            duration: 1.0,
            platform: Some(platform.into()),
            ..Default::default()
        };
        BuildMetrics {
            budget_bytes: 16 << 30,
            peak_bytes: 300 << 20,
            units: vec![UnitMetrics {
                binary: "srv".into(),
                target: "x86_64-unknown-linux-musl".into(),
                state: "build".into(),
                own_secs: Some(1.0),
                own_peak_bytes: Some(300 << 20),
                ..Default::default()
            }],
            steps: vec![StepMetrics {
                package: "srv".into(),
                targets: vec!["x86_64-unknown-linux-musl".into()],
                wall_secs: 3.0,
                crates: vec![
                    timing("dep<1>", "", "linux/amd64", 0.0),
                    timing("cc", "", "host", 0.0),
                    timing("srv", "srv \"bin\"", "linux/amd64", 1.5),
                ],
                ..Default::default()
            }],
            samples: vec![
                Sample {
                    ms: 0,
                    rss: 1,
                    step: None,
                },
                Sample {
                    ms: 2500,
                    rss: 300 << 20,
                    step: Some(0),
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn self_contained_with_every_part() {
        let html = report_html(&metrics());
        assert!(html.contains("<polyline") && html.contains("peak 300.0 MiB"));
        assert!(html.contains("dep&lt;1&gt;") && html.contains("srv"));
        assert!(!html.contains("<script") && !html.contains("src=\"http"));
    }

    #[test]
    fn memory_is_scaled_to_the_peak_and_a_far_budget_is_said_not_drawn() {
        let html = report_html(&metrics());
        // 16 GiB against a 300 MiB peak: the axis tops out near the peak.
        assert!(
            html.contains("The budget, 16.0 GiB, is 55&times; the peak"),
            "{html}"
        );
        assert!(!html.contains("budget 16.0 GiB</text>"));
        let mut near = metrics();
        near.budget_bytes = 400 << 20;
        let html = report_html(&near);
        assert!(html.contains(">budget 400.0 MiB</text>"));
    }

    #[test]
    fn timelines_group_rows_by_platform_with_a_time_axis() {
        let html = report_html(&metrics());
        let amd = html
            .find(">linux/amd64</text>")
            .expect("a linux/amd64 group");
        let host = html.find(">host</text>").expect("a host group");
        assert!(amd < host, "targets before the host");
        assert!(
            html.contains(">0.0s</text>") && html.contains(">3.0s</text>"),
            "{html}"
        );
        // The binary row is the binary's own, not the invocation's 3 s.
        assert!(html.contains("<td class=\"n\">1.00</td>"));
    }

    #[test]
    fn ticks_are_round_and_few() {
        assert_eq!(tick(3.0), 0.5);
        assert_eq!(tick(624.0), 120.0);
        assert_eq!(tick(0.4), 0.1);
    }
}
