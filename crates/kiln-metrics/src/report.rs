//! `kiln report`: one self-contained HTML page (inline CSS and SVG, no scripts, no
//! fetches) that works from file://: the crate timeline per cargo invocation, memory
//! over time against the budget, and the per-binary table with cache hits.

use crate::human_bytes;
use crate::metrics::BuildMetrics;
use std::fmt::Write;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The report for `m`.
pub fn report_html(m: &BuildMetrics) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>kiln build report</title>\n<style>\
body{{font:14px system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}\
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}th{{background:#f3f3f3}}\
.hit{{color:#0a7a2f}}.miss{{color:#b35900}}svg{{background:#fafafa;border:1px solid #ddd}}\
</style></head><body>\n<h1>kiln build report</h1>\n"
    );
    let _ = writeln!(
        h,
        "<p>{} &middot; kiln {} &middot; wall {:.2}s, CPU {:.2}s &middot; peak memory {} of a {} budget ({}) &middot; {} jobs &middot; {} retries &middot; cache {}/{} hits</p>",
        esc(&m.host),
        esc(&m.kiln_version),
        m.wall_secs,
        m.cpu_secs,
        human_bytes(m.peak_bytes),
        human_bytes(m.budget_bytes),
        esc(&m.budget_source),
        m.jobs,
        m.retries,
        m.cache_hits,
        m.cache_hits + m.cache_misses
    );
    h.push_str("<h2>Binaries</h2>\n<table><tr><th>binary</th><th>target</th><th>result</th><th>wall s</th><th>CPU s</th><th>peak memory</th><th>size</th></tr>\n");
    for u in &m.units {
        let (class, what) = if u.cache_hit {
            ("hit", u.state.as_str())
        } else {
            ("miss", "built")
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{what}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td><td>{}</td></tr>",
            esc(&u.binary),
            esc(&u.target),
            u.wall_secs,
            u.cpu_secs,
            human_bytes(u.peak_bytes),
            human_bytes(u.size_bytes)
        );
    }
    h.push_str("</table>\n");
    breakdown(&mut h, m);
    memory_chart(&mut h, m);
    timeline(&mut h, m);
    h.push_str("</body></html>\n");
    h
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
            format!("{} for {} ({how})", p.library, p.target),
            p.wall_secs,
            None,
            None,
        ));
    }
    for s in &m.steps {
        let busy = if s.wall_secs > 0.0 {
            Some((s.cpu_secs / (s.wall_secs * cores)).min(1.0))
        } else {
            None
        };
        rows.push((
            format!("cargo: {} ({})", s.package, s.targets.join(", ")),
            s.wall_secs,
            Some(s.cpu_secs),
            busy.map(|b| 1.0 - b),
        ));
    }
    rows
}

/// The `n` crates that took longest, over every cargo invocation: `(crate and its
/// unit, seconds)`, longest first. Where a cold build's time goes, crate by crate.
pub fn slowest_crates(m: &BuildMetrics, n: usize) -> Vec<(String, f64)> {
    let mut all: Vec<(String, f64)> = m
        .steps
        .iter()
        .flat_map(|s| &s.crates)
        .map(|c| {
            let what = if c.target.is_empty() {
                format!("{} {}", c.name, c.version)
            } else {
                format!("{} {} ({})", c.name, c.version, c.target)
            };
            (what, c.duration)
        })
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(n);
    all
}

fn breakdown(h: &mut String, m: &BuildMetrics) {
    h.push_str("<h2>Where the time went</h2>\n<table><tr><th>what</th><th>wall s</th><th>CPU s</th><th>cores idle</th></tr>\n");
    for (what, wall, cpu, idle) in breakdown_rows(m) {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{wall:.1}</td><td>{}</td><td>{}</td></tr>",
            esc(&what),
            cpu.map_or(String::new(), |c| format!("{c:.1}")),
            idle.map_or(String::new(), |i| format!("{:.0}%", i * 100.0))
        );
    }
    h.push_str("</table>\n");
}

fn memory_chart(h: &mut String, m: &BuildMetrics) {
    h.push_str("<h2>Memory of the whole build</h2>\n");
    let (w, ht) = (900.0, 220.0);
    let max_ms = m.samples.iter().map(|s| s.ms).max().unwrap_or(1).max(1) as f64;
    let top = m
        .samples
        .iter()
        .map(|s| s.rss)
        .max()
        .unwrap_or(0)
        .max(m.budget_bytes)
        .max(1) as f64
        * 1.1;
    let x = |ms: u64| 40.0 + (ms as f64 / max_ms) * (w - 50.0);
    let y = |b: u64| ht - 20.0 - (b as f64 / top) * (ht - 30.0);
    let _ = writeln!(
        h,
        "<svg width=\"{w}\" height=\"{ht}\" role=\"img\" aria-label=\"memory over time\">"
    );
    let by = y(m.budget_bytes);
    let _ = writeln!(
        h,
        "<line x1=\"40\" x2=\"{}\" y1=\"{by:.1}\" y2=\"{by:.1}\" stroke=\"#c00\" stroke-dasharray=\"6 4\"/><text x=\"44\" y=\"{:.1}\" fill=\"#c00\">budget {}</text>",
        w - 10.0,
        by - 4.0,
        human_bytes(m.budget_bytes)
    );
    let points: Vec<String> = m
        .samples
        .iter()
        .map(|s| format!("{:.1},{:.1}", x(s.ms), y(s.rss)))
        .collect();
    let _ = writeln!(
        h,
        "<polyline fill=\"none\" stroke=\"#1f5fbf\" stroke-width=\"1.5\" points=\"{}\"/>",
        points.join(" ")
    );
    let _ = writeln!(
        h,
        "<text x=\"44\" y=\"{:.1}\">peak {}</text><text x=\"{:.1}\" y=\"{:.1}\">{:.1}s</text></svg>",
        ht - 4.0,
        human_bytes(m.peak_bytes),
        w - 60.0,
        ht - 4.0,
        max_ms / 1000.0
    );
}

fn timeline(h: &mut String, m: &BuildMetrics) {
    h.push_str("<h2>Crate compilations (cargo's timings)</h2>\n");
    for s in &m.steps {
        let _ = writeln!(
            h,
            "<h3>{} &rarr; {} ({} jobs, {:.2}s{})</h3>",
            esc(&s.package),
            esc(&s.targets.join(", ")),
            s.jobs,
            s.wall_secs,
            if s.retried { ", retried" } else { "" }
        );
        if s.crates.is_empty() {
            h.push_str("<p>no crate was compiled</p>\n");
            continue;
        }
        // Lanes: each bar goes to the first lane free at its start.
        let mut lanes: Vec<f64> = Vec::new();
        let mut bars = Vec::new();
        let mut crates = s.crates.clone();
        crates.sort_by(|a, b| a.start.total_cmp(&b.start));
        for c in &crates {
            let lane = match lanes.iter().position(|end| *end <= c.start) {
                Some(i) => i,
                None => {
                    lanes.push(0.0);
                    lanes.len() - 1
                }
            };
            lanes[lane] = c.start + c.duration;
            bars.push((lane, c));
        }
        let end = crates
            .iter()
            .map(|c| c.start + c.duration)
            .fold(0.1, f64::max);
        let (w, row) = (900.0, 18.0);
        let ht = lanes.len() as f64 * row + 10.0;
        let _ = writeln!(
            h,
            "<svg width=\"{w}\" height=\"{ht}\" role=\"img\" aria-label=\"crate timeline\">"
        );
        for (lane, c) in bars {
            let x = 5.0 + c.start / end * (w - 10.0);
            let bw = (c.duration / end * (w - 10.0)).max(1.0);
            let yy = 5.0 + lane as f64 * row;
            let label = if c.target.is_empty() {
                c.name.clone()
            } else {
                format!("{} ({})", c.name, c.target)
            };
            let _ = writeln!(
                h,
                "<g><title>{} {:.2}s</title><rect x=\"{x:.1}\" y=\"{yy:.1}\" width=\"{bw:.1}\" height=\"{}\" fill=\"#8fb3e8\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text></g>",
                esc(&label),
                c.duration,
                row - 3.0,
                x + 2.0,
                yy + row - 7.0,
                esc(&label)
            );
        }
        h.push_str("</svg>\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{CrateTiming, StepMetrics, UnitMetrics};
    use crate::sampler::Sample;

    #[test]
    fn self_contained_with_every_part() {
        let m = BuildMetrics {
            budget_bytes: 1 << 30,
            peak_bytes: 300 << 20,
            units: vec![UnitMetrics {
                binary: "srv".into(),
                target: "x86_64-unknown-linux-musl".into(),
                ..Default::default()
            }],
            steps: vec![StepMetrics {
                package: "srv".into(),
                crates: vec![CrateTiming {
                    name: "dep<1>".into(),
                    start: 0.0,
                    duration: 1.0,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            samples: vec![
                Sample {
                    ms: 0,
                    rss: 1,
                    step: None,
                },
                Sample {
                    ms: 100,
                    rss: 300 << 20,
                    step: Some(0),
                },
            ],
            ..Default::default()
        };
        let html = report_html(&m);
        assert!(html.contains("<polyline") && html.contains("budget 1.0 GiB"));
        assert!(html.contains("dep&lt;1&gt;") && html.contains("srv"));
        assert!(
            !html.contains("http://") && !html.contains("https://") && !html.contains("<script")
        );
    }
}
