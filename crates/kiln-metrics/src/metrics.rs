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
            })
            .collect()
    }
}

impl BuildMetrics {
    /// Writes `<dir>/<started>.json`, `<dir>/last.json` and `<dir>/kiln.prom`.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        let json = serde_json::to_vec_pretty(self).expect("metrics serialize");
        let path = dir.join(format!("{}.json", self.started));
        kiln_fs::write_atomic(&path, &json)?;
        kiln_fs::write_atomic(&dir.join("last.json"), &json)?;
        kiln_fs::write_atomic(&dir.join("kiln.prom"), self.prometheus().as_bytes())?;
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
