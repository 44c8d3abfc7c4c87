//! What every build records: `target/kiln/metrics/<time>.json`, `last.json`, and
//! `kiln.prom` for node_exporter's textfile collector. The JSON schema is
//! `docs/metrics.schema.json`; `schema_version` changes when a field does.

use crate::sampler::Sample;
use kiln_diagnostics::Result;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Version of the metrics JSON format.
pub const SCHEMA_VERSION: u32 = 1;

/// How many builds' metrics a target dir keeps.
pub(crate) const KEPT: usize = 50;

/// One build.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildMetrics {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// kiln's version.
    pub kiln_version: String,
    /// Host: `linux/x86_64, 2 cores, <hostname>`.
    pub host: String,
    /// Unix time the build started.
    pub started: u64,
    /// Wall time.
    pub wall_secs: f64,
    /// CPU time of every process the build ran.
    pub cpu_secs: f64,
    /// The memory budget.
    pub budget_bytes: u64,
    /// Where the budget came from.
    pub budget_source: String,
    /// The highest memory of the whole process tree.
    pub peak_bytes: u64,
    /// Steps retried after a compiler was killed.
    pub retries: u32,
    /// Concurrent compiler jobs kiln allowed.
    pub jobs: u32,
    /// Binaries from the cache.
    pub cache_hits: u32,
    /// Binaries built.
    pub cache_misses: u32,
    /// sccache hits during this build, when cargo ran with sccache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sccache_hits: Option<u64>,
    /// sccache misses during this build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sccache_misses: Option<u64>,
    /// Compiles sccache ran on distributed build servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sccache_remote: Option<u64>,
    /// Compiles sent to a build server that failed there and ran here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sccache_fell_back: Option<u64>,
    /// Compiles that ran here by rule (bin crates and links; everything without a farm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sccache_local: Option<u64>,
    /// Native libraries provisioned for the build (built, or restored from a cache).
    #[serde(default)]
    pub provisioning: Vec<ProvisionMetrics>,
    /// Per binary x target.
    pub units: Vec<UnitMetrics>,
    /// Per cargo invocation, with cargo's per-crate timings.
    pub steps: Vec<StepMetrics>,
    /// Memory over time.
    pub samples: Vec<Sample>,
}

/// A native library kiln provided before cargo ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProvisionMetrics {
    /// The library (`OpenSSL`).
    pub library: String,
    /// Target triple.
    pub target: String,
    /// Wall seconds spent on it.
    pub wall_secs: f64,
    /// Whether it came from the local or remote cache rather than being built.
    pub restored: bool,
    /// Built while cargo compiled everything else (its time overlaps cargo's).
    #[serde(default)]
    pub beside_cargo: bool,
}

/// One binary on one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UnitMetrics {
    /// Package.
    pub package: String,
    /// Binary.
    pub binary: String,
    /// Target triple.
    pub target: String,
    /// `fresh`, `restore` or `build`.
    pub state: String,
    /// Whether the cache supplied it.
    pub cache_hit: bool,
    /// Wall seconds of the cargo invocation that built it (0 for hits).
    pub wall_secs: f64,
    /// CPU seconds of that invocation.
    pub cpu_secs: f64,
    /// Peak memory of the process tree during that invocation.
    pub peak_bytes: u64,
    /// Artifact size.
    pub size_bytes: u64,
    /// Seconds compiling and linking the binary's own crate for this target (cargo's
    /// timing of its `bin` unit): the binary's figure, not its invocation's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_secs: Option<f64>,
    /// Peak memory of the whole build while that crate compiled and linked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_peak_bytes: Option<u64>,
}

/// One cargo invocation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Package.
    pub package: String,
    /// Target triples.
    pub targets: Vec<String>,
    /// Concurrent jobs it was given.
    pub jobs: u32,
    /// Wall seconds.
    pub wall_secs: f64,
    /// CPU seconds.
    pub cpu_secs: f64,
    /// Peak memory of the process tree.
    pub peak_bytes: u64,
    /// Whether it was retried with fewer jobs after a compiler was killed.
    pub retried: bool,
    /// Seconds from the build's start when the invocation started.
    pub offset_secs: f64,
    /// cargo's own per-crate timings (`cargo build --timings`).
    pub crates: Vec<CrateTiming>,
}

/// One crate compilation, as cargo timed it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CrateTiming {
    /// Crate name.
    pub name: String,
    /// Version.
    pub version: String,
    /// What cargo calls the unit's target (`build script`, `bin "x"`, empty for the lib).
    pub target: String,
    /// Seconds after the invocation started.
    pub start: f64,
    /// Seconds it took.
    pub duration: f64,
    /// `linux/amd64` for a crate built for a target, `host` for build scripts and
    /// proc macros; absent when cargo's messages didn't say (older metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// A crate cargo said it finished (a `compiler-artifact` or `build-script-executed`
/// message), with when: what places cargo's timings on their platform.
#[derive(Debug, Clone, PartialEq)]
pub struct CrateMark {
    /// Package name.
    pub name: String,
    /// Which of the package's units.
    pub unit: UnitKind,
    /// `linux/amd64`, or `host`.
    pub platform: String,
    /// Seconds after the invocation started.
    pub at: f64,
}

/// What a compilation unit of a package is, as cargo's timings tell them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitKind {
    /// The library (or proc macro).
    Lib,
    /// A binary, by name.
    Bin(String),
    /// The build script's compilation.
    BuildScript,
    /// The build script's run.
    BuildScriptRun,
}

impl UnitKind {
    /// The kind of a timing's `target` field (`""`, `x "bin"`, `build-script`,
    /// `build-script (run)`).
    fn of_timing(target: &str) -> Self {
        let t = target.trim();
        if t.contains("(run)") {
            UnitKind::BuildScriptRun
        } else if t.starts_with("build-script") || t.starts_with("build script") {
            UnitKind::BuildScript
        } else if let Some(name) = t.strip_suffix(" \"bin\"") {
            UnitKind::Bin(name.to_string())
        } else if let Some(name) = t.strip_prefix("bin \"").and_then(|r| r.strip_suffix('"')) {
            UnitKind::Bin(name.to_string())
        } else {
            UnitKind::Lib
        }
    }
}

/// `chronik-common` and `chronik_common` are the same crate to cargo.
fn same_crate(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| x == y || (x == b'-' && y == b'_') || (x == b'_' && y == b'-'))
}

impl CrateTiming {
    /// Sets each timing's platform from the mark of the same crate and kind whose time
    /// is nearest its end (cargo's timings name no target: with two targets every
    /// crate appears twice). Each mark is used once.
    pub fn place(timings: &mut [CrateTiming], marks: &[CrateMark]) {
        let mut used = vec![false; marks.len()];
        let mut order: Vec<usize> = (0..timings.len()).collect();
        order.sort_by(|a, b| {
            let end = |i: usize| timings[i].start + timings[i].duration;
            end(*a).total_cmp(&end(*b))
        });
        for i in order {
            let t = &timings[i];
            let kind = UnitKind::of_timing(&t.target);
            let end = t.start + t.duration;
            let best = marks
                .iter()
                .enumerate()
                .filter(|(j, m)| !used[*j] && m.unit == kind && same_crate(&m.name, &t.name))
                .min_by(|(_, a), (_, b)| (a.at - end).abs().total_cmp(&(b.at - end).abs()))
                .map(|(j, _)| j);
            if let Some(j) = best {
                used[j] = true;
                timings[i].platform = Some(marks[j].platform.clone());
            }
        }
    }
}

impl CrateTiming {
    /// Reads cargo's timing report (`cargo-timing.html`): the `UNIT_DATA` array it embeds.
    pub fn from_cargo_html(html: &str) -> Vec<CrateTiming> {
        let Some(start) = html.find("const UNIT_DATA = ") else {
            return Vec::new();
        };
        let rest = &html[start + "const UNIT_DATA = ".len()..];
        let Some(end) = rest.find("];") else {
            return Vec::new();
        };
        let units: Vec<serde_json::Value> = serde_json::from_str(&rest[..=end]).unwrap_or_default();
        units
            .iter()
            .map(|u| CrateTiming {
                name: u["name"].as_str().unwrap_or_default().into(),
                version: u["version"].as_str().unwrap_or_default().into(),
                target: u["target"].as_str().unwrap_or_default().trim().into(),
                start: u["start"].as_f64().unwrap_or_default(),
                duration: u["duration"].as_f64().unwrap_or_default(),
                platform: None,
            })
            .collect()
    }
}

impl StepMetrics {
    /// Cargo's timing of binary `bin`'s own crate on `platform` (`linux/amd64`).
    pub fn bin_timing(&self, bin: &str, platform: &str) -> Option<&CrateTiming> {
        let unit = format!("{bin} \"bin\"");
        self.crates.iter().find(|c| {
            (c.target == unit || c.target == format!("bin \"{bin}\""))
                && c.platform.as_deref() == Some(platform)
        })
    }
}

impl BuildMetrics {
    /// The highest memory sampled between `from` and `to` seconds into the build.
    pub fn peak_between(samples: &[Sample], from: f64, to: f64) -> Option<u64> {
        samples
            .iter()
            .filter(|s| {
                let t = s.ms as f64 / 1000.0;
                t >= from && t <= to
            })
            .map(|s| s.rss)
            .max()
    }

    /// Writes `<dir>/<started>.json`, `<dir>/last.json` and `<dir>/kiln.prom`, and
    /// keeps only the newest [`KEPT`] timestamped files.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        let json = serde_json::to_vec_pretty(self).expect("metrics serialize");
        let path = dir.join(format!("{}.json", self.started));
        kiln_fs::write_atomic(&path, &json)?;
        kiln_fs::write_atomic(&dir.join("last.json"), &json)?;
        kiln_fs::write_atomic(&dir.join("kiln.prom"), self.prometheus().as_bytes())?;
        let mut stamped: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                Some((name.strip_suffix(".json")?.parse().ok()?, e.path()))
            })
            .collect();
        stamped.sort_by_key(|s| std::cmp::Reverse(s.0));
        for (_, old) in stamped.iter().skip(KEPT) {
            let _ = std::fs::remove_file(old);
        }
        Ok(path)
    }

    /// Prometheus text exposition format (gauges), for a textfile collector.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let gauge = |out: &mut String, name: &str, help: &str, rows: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP kiln_{name} {help}");
            let _ = writeln!(out, "# TYPE kiln_{name} gauge");
            for (labels, v) in rows {
                let _ = writeln!(out, "kiln_{name}{labels} {v}");
            }
        };
        let one = |v: f64| vec![(String::new(), v)];
        gauge(
            &mut out,
            "build_wall_seconds",
            "Wall time of the last build.",
            &one(self.wall_secs),
        );
        gauge(
            &mut out,
            "build_cpu_seconds",
            "CPU time of every process of the last build.",
            &one(self.cpu_secs),
        );
        gauge(
            &mut out,
            "build_peak_memory_bytes",
            "Peak memory of the last build's whole process tree.",
            &one(self.peak_bytes as f64),
        );
        gauge(
            &mut out,
            "build_memory_budget_bytes",
            "Memory budget of the last build.",
            &one(self.budget_bytes as f64),
        );
        gauge(
            &mut out,
            "build_retries",
            "Steps retried after a compiler was killed.",
            &one(self.retries as f64),
        );
        gauge(
            &mut out,
            "build_cache_hits",
            "Binaries restored from the cache.",
            &one(self.cache_hits as f64),
        );
        gauge(
            &mut out,
            "build_cache_misses",
            "Binaries built.",
            &one(self.cache_misses as f64),
        );
        gauge(
            &mut out,
            "build_started_timestamp_seconds",
            "Unix time the last build started.",
            &one(self.started as f64),
        );
        let per = |f: &dyn Fn(&UnitMetrics) -> f64| -> Vec<(String, f64)> {
            self.units
                .iter()
                .map(|u| {
                    (
                        format!(
                            "{{package=\"{}\",binary=\"{}\",target=\"{}\"}}",
                            escape(&u.package),
                            escape(&u.binary),
                            escape(&u.target)
                        ),
                        f(u),
                    )
                })
                .collect()
        };
        gauge(
            &mut out,
            "binary_wall_seconds",
            "Wall time of the cargo invocation that built the binary (0 when cached).",
            &per(&|u| u.wall_secs),
        );
        gauge(
            &mut out,
            "binary_cpu_seconds",
            "CPU time of that invocation.",
            &per(&|u| u.cpu_secs),
        );
        gauge(
            &mut out,
            "binary_peak_memory_bytes",
            "Peak memory during that invocation.",
            &per(&|u| u.peak_bytes as f64),
        );
        gauge(
            &mut out,
            "binary_cache_hit",
            "1 when the cache supplied the binary.",
            &per(&|u| f64::from(u8::from(u.cache_hit))),
        );
        gauge(
            &mut out,
            "binary_size_bytes",
            "Size of the artifact.",
            &per(&|u| u.size_bytes as f64),
        );
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cargo_timings() {
        let html = "<script>\nconst UNIT_DATA = [\n {\"i\":1,\"name\":\"a\",\"version\":\"0.1.0\",\"target\":\" build script\",\"start\":0.5,\"duration\":1.25,\"sections\":[]}\n];\nconst CONCURRENCY_DATA = [];";
        let t = CrateTiming::from_cargo_html(html);
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].name.as_str(), t[0].target.as_str(), t[0].duration),
            ("a", "build script", 1.25)
        );
        assert!(CrateTiming::from_cargo_html("<html>").is_empty());
    }

    #[test]
    fn twin_timings_are_placed_on_their_platforms_by_when_cargo_said_they_ended() {
        let t = |name: &str, target: &str, start: f64, duration: f64| CrateTiming {
            name: name.into(),
            target: target.into(),
            start,
            duration,
            ..Default::default()
        };
        let mut timings = vec![
            t("chronik-common", "", 0.0, 1.0),
            t("chronik-common", "", 0.0, 2.0),
            t("cc", "", 0.0, 0.5),
            t("app", "build-script (run)", 2.0, 0.2),
            // Same name, same end: told apart by the unit's kind.
            t("app", "build-script", 1.0, 0.0),
            t("app", "app \"bin\"", 1.0, 0.0),
        ];
        let m = |name: &str, unit: UnitKind, platform: &str, at: f64| CrateMark {
            name: name.into(),
            unit,
            platform: platform.into(),
            at,
        };
        let marks = [
            m("chronik_common", UnitKind::Lib, "linux/arm64", 2.01),
            m("chronik_common", UnitKind::Lib, "linux/amd64", 1.02),
            m("cc", UnitKind::Lib, "host", 0.51),
            m("app", UnitKind::Bin("app".into()), "linux/arm64", 1.0),
            m("app", UnitKind::BuildScript, "host", 1.0),
            m("app", UnitKind::BuildScriptRun, "linux/amd64", 2.21),
        ];
        CrateTiming::place(&mut timings, &marks);
        let platforms: Vec<Option<&str>> = timings.iter().map(|t| t.platform.as_deref()).collect();
        assert_eq!(
            platforms,
            [
                Some("linux/amd64"),
                Some("linux/arm64"),
                Some("host"),
                Some("linux/amd64"),
                Some("host"),
                Some("linux/arm64")
            ]
        );
    }

    #[test]
    fn prometheus_lines_have_help_type_and_labels() {
        let m = BuildMetrics {
            units: vec![UnitMetrics {
                package: "p".into(),
                binary: "b\"x".into(),
                target: "t".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = m.prometheus();
        assert!(text.contains("# TYPE kiln_build_peak_memory_bytes gauge"));
        assert!(
            text.contains("kiln_binary_size_bytes{package=\"p\",binary=\"b\\\"x\",target=\"t\"} 0")
        );
    }
}
