//! The parts of the user's cargo configuration that decide whether a target can link.
//!
//! Cargo reads `.cargo/config.toml` from the working directory up to `/`, then
//! `$CARGO_HOME`; nearer files win, and `CARGO_TARGET_<TRIPLE>_LINKER` beats them all.
//! kiln never edits these files: it overrides a setting for its own cargo invocation
//! only, and says so.

use crate::Target;
use std::path::{Path, PathBuf};

/// The linker settings cargo would use, read from the user's configuration.
#[derive(Debug, Clone, Default)]
pub struct CargoConfig {
    /// Parsed config files, nearest first, with their paths.
    files: Vec<(PathBuf, toml::Table)>,
}

/// A user linker setting kiln replaces for one target, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkerOverride {
    /// The linker the user configured.
    pub configured: String,
    /// Where it was configured (file path or environment variable).
    pub source: String,
    /// Why it can't be used for this target.
    pub reason: String,
}

impl CargoConfig {
    /// Reads every config file cargo would read when run in `cwd`.
    pub fn discover(cwd: &Path) -> Self {
        let mut paths: Vec<PathBuf> = cwd.ancestors().map(|d| d.join(".cargo")).collect();
        if let Some(home) = cargo_home() {
            if !paths.contains(&home) {
                paths.push(home);
            }
        }
        let files = paths
            .into_iter()
            .filter_map(|dir| {
                ["config.toml", "config"]
                    .iter()
                    .map(|f| dir.join(f))
                    .find(|p| p.is_file())
            })
            .filter_map(|p| {
                let table = std::fs::read_to_string(&p)
                    .ok()?
                    .parse::<toml::Table>()
                    .ok()?;
                Some((p, table))
            })
            .collect();
        Self { files }
    }

    /// The text of every config file, nearest first (re-serialized, so comments and
    /// formatting don't count).
    pub fn file_texts(&self) -> Vec<String> {
        self.files.iter().map(|(_, t)| t.to_string()).collect()
    }

    /// The linker configured for `target`, and where it came from.
    pub fn linker(&self, target: &Target) -> Option<(String, String)> {
        let var = format!("CARGO_TARGET_{}_LINKER", target.env_name());
        if let Ok(v) = std::env::var(&var) {
            return Some((v, var));
        }
        self.files.iter().find_map(|(path, table)| {
            target_tables(table, target).find_map(|(name, t)| {
                let linker = t.get("linker")?.as_str()?;
                let source = if name == target.triple {
                    path.display().to_string()
                } else {
                    format!("{} [target.'{name}']", path.display())
                };
                Some((linker.to_string(), source))
            })
        })
    }

    /// Whether `profile.<name>.<key>` is set in any config file or by
    /// `CARGO_PROFILE_<NAME>_<KEY>`.
    pub fn profile_sets(&self, profile: &str, key: &str) -> bool {
        let var = format!(
            "CARGO_PROFILE_{}_{}",
            profile.to_uppercase().replace('-', "_"),
            key.to_uppercase()
        );
        std::env::var_os(var).is_some()
            || self.files.iter().any(|(_, t)| {
                t.get("profile")
                    .and_then(|p| p.get(profile))
                    .and_then(|p| p.get(key))
                    .is_some()
            })
    }

    /// The rustflags cargo would pass when building for `target`, and where they come
    /// from, following cargo's order: `CARGO_ENCODED_RUSTFLAGS`, `RUSTFLAGS`,
    /// `target.<triple>.rustflags`, `build.rustflags` (the first that is set wins;
    /// arrays from several config files are joined, nearest last; the triple's table
    /// and every matching `target.'cfg(..)'` table count).
    pub fn rustflags(&self, target: &Target) -> Option<(Vec<String>, String)> {
        if let Ok(v) = std::env::var("CARGO_ENCODED_RUSTFLAGS") {
            let flags = v
                .split('\x1f')
                .filter(|f| !f.is_empty())
                .map(String::from)
                .collect();
            return Some((flags, "CARGO_ENCODED_RUSTFLAGS".into()));
        }
        if let Ok(v) = std::env::var("RUSTFLAGS") {
            return Some((
                v.split_whitespace().map(String::from).collect(),
                "RUSTFLAGS".into(),
            ));
        }
        let target_env = format!("CARGO_TARGET_{}_RUSTFLAGS", target.env_name());
        self.config_list(&target_env, |t| {
            target_tables(t, target)
                .filter_map(|(_, t)| t.get("rustflags"))
                .collect()
        })
        .or_else(|| {
            self.config_list("CARGO_BUILD_RUSTFLAGS", |t| {
                t.get("build")
                    .and_then(|b| b.get("rustflags"))
                    .into_iter()
                    .collect()
            })
        })
    }

    /// A list setting from every config file (farthest first; `get` picks its values
    /// out of one file) and its env variable.
    fn config_list(
        &self,
        env: &str,
        get: impl Fn(&toml::Table) -> Vec<&toml::Value>,
    ) -> Option<(Vec<String>, String)> {
        let mut flags = Vec::new();
        let mut sources = Vec::new();
        for (file, table) in self.files.iter().rev() {
            let values = get(table);
            if values.is_empty() {
                continue;
            }
            for v in values {
                match v {
                    toml::Value::Array(a) => {
                        flags.extend(a.iter().filter_map(|x| x.as_str().map(String::from)))
                    }
                    toml::Value::String(s) => flags.extend(s.split_whitespace().map(String::from)),
                    _ => {}
                }
            }
            sources.push(file.display().to_string());
        }
        if let Ok(v) = std::env::var(env) {
            flags.extend(v.split_whitespace().map(String::from));
            sources.push(env.to_string());
        }
        (!sources.is_empty()).then(|| (flags, sources.join(", ")))
    }

    /// `[build] jobs`, from config files or `CARGO_BUILD_JOBS`.
    pub fn build_jobs(&self) -> Option<i64> {
        if let Some(j) = std::env::var("CARGO_BUILD_JOBS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            return Some(j);
        }
        self.files
            .iter()
            .find_map(|(_, t)| t.get("build")?.get("jobs")?.as_integer())
    }

    /// Whether the user's linker for `target` must be replaced, given that kiln would
    /// otherwise link with `replacement` on this `host_arch`.
    pub fn linker_override(&self, target: &Target, host_arch: &str) -> Option<LinkerOverride> {
        let (configured, source) = self.linker(target)?;
        let base = Path::new(&configured)
            .file_name()
            .map_or(configured.clone(), |f| f.to_string_lossy().into_owned());
        let host_tool = [
            "cc", "gcc", "clang", "c++", "g++", "clang++", "ld", "ld.lld", "lld", "musl-gcc",
        ]
        .iter()
        .any(|t| {
            base == *t
                || base.starts_with(&format!("{t}-"))
                    && base[t.len() + 1..].chars().all(|c| c.is_ascii_digit())
        });
        let cross = target.rust_arch() != host_arch;
        if host_tool && cross {
            return Some(LinkerOverride {
                configured,
                source,
                reason: format!(
                    "`{base}` links for the host ({host_arch}), not for {}",
                    target.triple
                ),
            });
        }
        None
    }
}

/// The `[target.X]` tables of one config file that apply to `target`: its triple's
/// first, then every matching `cfg(..)` table, as cargo reads them.
fn target_tables<'a, 'b>(
    table: &'a toml::Table,
    target: &'b Target,
) -> impl Iterator<Item = (&'a str, &'a toml::Table)> + use<'a, 'b> {
    let targets = table.get("target").and_then(|t| t.as_table());
    let exact = targets
        .and_then(|t| t.get_key_value(&target.triple))
        .and_then(|(k, t)| Some((k.as_str(), t.as_table()?)));
    let cfgs = targets.into_iter().flat_map(move |t| {
        t.iter().filter_map(move |(name, v)| {
            (name.starts_with("cfg(") && crate::cfg::matches(name, target))
                .then_some((name.as_str(), v.as_table()?))
        })
    });
    exact.into_iter().chain(cfgs)
}

/// Rustflags kiln keeps for its own build, and a sentence per flag it dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RustflagsFix {
    /// The flags to pass instead.
    pub flags: Vec<String>,
    /// What was dropped and why, one line each.
    pub dropped: Vec<String>,
}

/// Drops the rustflags that can't work for `target`: linker choices (`-fuse-ld=..`,
/// `linker=..`) when kiln replaced the linker, `target-cpu=native` (artifacts must run
/// on any machine of the arch), and CPU names the target doesn't know (`cpus` lists
/// them; called only when a `target-cpu` flag is present). `None` when all can stay.
pub fn fix_rustflags(
    flags: &[String],
    target: &Target,
    linker_replaced: bool,
    cpus: impl FnOnce() -> Vec<String>,
) -> Option<RustflagsFix> {
    // Group `-C value` pairs so a flag and its value are kept or dropped together.
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut it = flags.iter();
    while let Some(f) = it.next() {
        if (f == "-C" || f == "--codegen") && it.len() > 0 {
            groups.push(vec![f.clone(), it.next().expect("checked").clone()]);
        } else {
            groups.push(vec![f.clone()]);
        }
    }
    let codegen = |g: &[String]| -> Option<String> {
        match g {
            [flag, v] if flag == "-C" || flag == "--codegen" => Some(v.clone()),
            [one] => one
                .strip_prefix("--codegen=")
                .or_else(|| one.strip_prefix("-C"))
                .map(String::from),
            _ => None,
        }
    };
    let mut cpus = Some(cpus);
    let mut known: Option<Vec<String>> = None;
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for g in groups {
        let why = codegen(&g).and_then(|v| {
            let linker_flag = v.starts_with("linker=")
                || v.starts_with("linker-flavor=")
                || (v.starts_with("link-arg") && v.contains("-fuse-ld"));
            if linker_flag && linker_replaced {
                return Some("it only works with the linker kiln replaced".to_string());
            }
            let cpu = v.strip_prefix("target-cpu=")?;
            if cpu == "native" {
                return Some(format!(
                    "it targets the build machine's CPU; artifacts must run on any {} machine",
                    target.arch
                ));
            }
            let list = known.get_or_insert_with(|| cpus.take().map(|f| f()).unwrap_or_default());
            (!list.is_empty() && !list.iter().any(|c| c == cpu))
                .then(|| format!("{} has no CPU named `{cpu}`", target.triple))
        });
        match why {
            Some(why) => dropped.push(format!(
                "rustflag `{}` for {} dropped: {why}",
                g.join(" "),
                target.triple
            )),
            None => kept.extend(g),
        }
    }
    (!dropped.is_empty()).then_some(RustflagsFix {
        flags: kept,
        dropped,
    })
}

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> CargoConfig {
        CargoConfig {
            files: vec![(
                PathBuf::from("/w/.cargo/config.toml"),
                text.parse().unwrap(),
            )],
        }
    }

    #[test]
    fn host_linker_for_another_arch_is_overridden() {
        let c = config("[target.aarch64-unknown-linux-musl]\nlinker = \"clang\"\n");
        let arm = Target::parse("arm64").unwrap();
        let o = c.linker_override(&arm, "x86_64").unwrap();
        assert_eq!(o.configured, "clang");
        assert!(o.reason.contains("host"));
        assert!(c.linker_override(&arm, "aarch64").is_none());
    }

    #[test]
    fn hostile_rustflags_are_dropped_and_the_rest_kept() {
        let arm = Target::parse("arm64").unwrap();
        let flags: Vec<String> = [
            "-C",
            "link-arg=-fuse-ld=lld",
            "-C",
            "target-cpu=native",
            "-Copt-level=3",
            "-C",
            "target-cpu=znver3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let fix = fix_rustflags(&flags, &arm, true, || {
            vec!["generic".into(), "neoverse-n1".into()]
        })
        .unwrap();
        assert_eq!(fix.flags, ["-Copt-level=3"]);
        assert_eq!(fix.dropped.len(), 3, "{:?}", fix.dropped);
        assert!(fix.dropped[2].contains("no CPU named `znver3`"));
        let ok: Vec<String> = vec!["-C".into(), "target-cpu=neoverse-n1".into()];
        assert!(fix_rustflags(&ok, &arm, true, || vec!["neoverse-n1".into()]).is_none());
    }

    #[test]
    fn rustflags_follow_cargo_precedence() {
        let c = config("[build]\nrustflags = [\"-Cb\"]\n[target.aarch64-unknown-linux-musl]\nrustflags = [\"-Ct\"]\n");
        let arm = Target::parse("arm64").unwrap();
        if std::env::var_os("RUSTFLAGS").is_none()
            && std::env::var_os("CARGO_ENCODED_RUSTFLAGS").is_none()
        {
            assert_eq!(c.rustflags(&arm).unwrap().0, ["-Ct"]);
            assert_eq!(
                c.rustflags(&Target::parse("amd64").unwrap()).unwrap().0,
                ["-Cb"]
            );
        }
    }

    #[test]
    fn cfg_tables_count_for_linker_and_rustflags() {
        let c = config(
            "[target.'cfg(all(target_arch = \"aarch64\", target_env = \"musl\"))']\nlinker = \"clang\"\nrustflags = [\"-Ccfg\"]\n\
             [target.'cfg(target_os = \"linux\")']\nrustflags = [\"-Clinux\"]\n\
             [target.aarch64-unknown-linux-musl]\nrustflags = [\"-Ct\"]\n",
        );
        let (arm, amd) = (
            Target::parse("arm64").unwrap(),
            Target::parse("amd64").unwrap(),
        );
        let o = c.linker_override(&arm, "x86_64").unwrap();
        assert!(o.source.contains("cfg(all"), "{}", o.source);
        assert!(c.linker(&amd).is_none());
        let mut flags = c.rustflags(&arm).unwrap().0;
        flags.sort();
        assert_eq!(flags, ["-Ccfg", "-Clinux", "-Ct"]);
        assert_eq!(c.rustflags(&amd).unwrap().0, ["-Clinux"]);
    }

    #[test]
    fn a_cross_linker_is_respected() {
        let c =
            config("[target.aarch64-unknown-linux-musl]\nlinker = \"aarch64-linux-musl-gcc\"\n");
        assert!(c
            .linker_override(&Target::parse("arm64").unwrap(), "x86_64")
            .is_none());
    }
}
