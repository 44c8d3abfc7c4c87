//! Every effective setting as `kiln config` shows it: key, value, origin. Secrets
//! show only whether they are set; URLs lose their credentials.

use super::{Origin, Setting, Settings};
use crate::choices::Choice;
use crate::Config;

/// One row of `kiln config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingRow {
    /// The dotted key (`cache.upload`).
    pub key: &'static str,
    /// The value, in words.
    pub value: String,
    /// Where it came from.
    pub origin: Origin,
}

fn row<T>(key: &'static str, s: &Setting<T>, value: String) -> SettingRow {
    SettingRow {
        key,
        value,
        origin: s.origin,
    }
}

/// A key of the config file only: its value, or the default's words.
fn file<T>(
    key: &'static str,
    v: Option<T>,
    show: impl Fn(T) -> String,
    default: &str,
) -> SettingRow {
    let (value, origin) = match v {
        Some(v) => (show(v), Origin::Config(key)),
        None => (default.to_string(), Origin::Default),
    };
    SettingRow { key, value, origin }
}

fn list(v: &[String]) -> String {
    v.join(", ")
}

impl Settings {
    /// `(key, value, origin)` for each setting, as `kiln config` shows them.
    pub fn rows(&self, config: &Config) -> Vec<SettingRow> {
        let mut rows = vec![
            row(
                "targets",
                &self.targets,
                self.targets
                    .value
                    .iter()
                    .map(|t| t.platform())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            file(
                "packages",
                config.packages.as_deref(),
                list,
                "every member with a binary",
            ),
            file(
                "binaries",
                config.binaries.as_deref(),
                list,
                "every binary of those packages",
            ),
            file("exclude", config.exclude.as_deref(), list, "none"),
            row("profile", &self.profile, self.profile.value.clone()),
            file("features", config.features.as_deref(), list, "none"),
            file(
                "all-features",
                config.all_features,
                |b| b.to_string(),
                "false",
            ),
            file(
                "no-default-features",
                config.no_default_features,
                |b| b.to_string(),
                "false",
            ),
            row(
                "artifact-dir",
                &self.artifact_dir,
                self.artifact_dir.value.display().to_string(),
            ),
            row("backend", &self.backend, self.backend.value.name().into()),
            row(
                "max-memory",
                &self.max_memory,
                self.max_memory.value.to_string(),
            ),
            row(
                "jobs",
                &self.jobs,
                self.jobs
                    .value
                    .map_or("from the memory budget".into(), |j| j.to_string()),
            ),
            file(
                "allocator",
                config.allocator.as_ref(),
                |a| match a {
                    crate::AllocatorConfig::All(a) => a.name().to_string(),
                    crate::AllocatorConfig::PerBinary(m) => m
                        .iter()
                        .map(|(b, a)| format!("{b} = {}", a.name()))
                        .collect::<Vec<_>>()
                        .join(", "),
                },
                "system",
            ),
            file(
                "sbom",
                config.sbom.as_deref(),
                |s| {
                    s.iter()
                        .map(|f| f.name().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                "spdx",
            ),
            file("auditable", config.auditable, |b| b.to_string(), "true"),
            file(
                "provision-native",
                config.provision_native,
                |b| b.to_string(),
                "true",
            ),
            row(
                "cache-dir",
                &self.cache_dir,
                self.cache_dir
                    .value
                    .as_ref()
                    .map_or("none".into(), |d| d.display().to_string()),
            ),
            row(
                "cache.remote",
                &self.remote,
                self.remote
                    .value
                    .as_ref()
                    .map_or("none".into(), |r| r.to_string()),
            ),
            row(
                "cache.upload",
                &self.upload,
                self.upload.value.name().into(),
            ),
            row(
                "cache.sccache",
                &self.sccache,
                self.sccache.value.name().into(),
            ),
            row(
                "cache.dist.scheduler",
                &self.dist,
                self.dist
                    .value
                    .as_ref()
                    .map_or("none".into(), |d| d.to_string()),
            ),
            SettingRow {
                key: "cache.dist.token",
                value: if self.dist_token.is_some() {
                    "set"
                } else {
                    "unset"
                }
                .into(),
                origin: if self.dist_token.is_some() {
                    Origin::Env("KILN_SCCACHE_DIST_TOKEN")
                } else {
                    Origin::Default
                },
            },
            row(
                "cache.timeout",
                &self.remote_timeout,
                format!("{}s", self.remote_timeout.value.as_secs()),
            ),
            row(
                "cache.insecure",
                &self.insecure,
                self.insecure.value.to_string(),
            ),
            row(
                "cache.trusted-keys",
                &self.trust.keys,
                if self.trust.enforced() {
                    let names: Vec<&str> = self
                        .trust
                        .keys
                        .value
                        .keys()
                        .iter()
                        .map(|k| k.name())
                        .collect();
                    names.join(", ")
                } else {
                    "none (remote records are used unsigned)".into()
                },
            ),
            SettingRow {
                key: "cache.signing-key",
                value: match &self.trust.signer {
                    Some(k) => format!("{} (set)", k.name()),
                    None => "unset".into(),
                },
                origin: if self.trust.signer.is_some() {
                    Origin::Env("KILN_CACHE_SIGNING_KEY")
                } else {
                    Origin::Default
                },
            },
            row("ci.matrix", &self.matrix, self.matrix.value.name().into()),
            row("locked", &self.locked, self.locked.value.to_string()),
            row("frozen", &self.frozen, self.frozen.value.to_string()),
            row("offline", &self.offline, self.offline.value.to_string()),
        ];
        rows.push(file(
            "host-tools",
            config.host_tools.as_ref(),
            |t| t.keys().cloned().collect::<Vec<_>>().join(", "),
            "the tools kiln knows (protoc, cmake, nasm, libclang, ...)",
        ));
        rows.extend(image_rows(config));
        rows
    }
}

/// `[workspace.metadata.kiln.image]`, key by key.
fn image_rows(config: &Config) -> Vec<SettingRow> {
    let i = config.image.clone().unwrap_or_default();
    let map = |m: std::collections::BTreeMap<String, String>| {
        m.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        file(
            "image.name",
            i.name,
            |n| n,
            "the workspace directory's name",
        ),
        file("image.base", i.base, |b| b, "scratch"),
        file(
            "image.binaries",
            i.binaries,
            |b| list(&b),
            "every binary in the store",
        ),
        file(
            "image.entrypoint",
            i.entrypoint,
            |e| list(&e),
            "the only binary, or the one named like the image",
        ),
        file("image.cmd", i.cmd, |c| list(&c), "none"),
        file(
            "image.user",
            i.user,
            |u| format!("{} ({}:{})", u.name, u.uid, u.gid.unwrap_or(u.uid)),
            "app (1000:1000)",
        ),
        file(
            "image.ports",
            i.ports,
            |p| p.iter().map(|p| p.spec()).collect::<Vec<_>>().join(", "),
            "none",
        ),
        file("image.volumes", i.volumes, |v| list(&v), "none"),
        file(
            "image.workdir",
            i.workdir,
            |w| w,
            "the first volume, else /",
        ),
        file("image.env", i.env, map, "none"),
        file("image.labels", i.labels, map, "none"),
        file("image.annotations", i.annotations, map, "none"),
        file(
            "image.ca-certificates",
            i.ca_certificates,
            |b| b.to_string(),
            "true",
        ),
        file(
            "image.source",
            i.source,
            |s| s,
            "the workspace's `repository`",
        ),
    ]
}
