//! The parts of the user's cargo configuration that decide whether a target can link.
//!
//! Cargo reads `.cargo/config.toml` from the working directory up to `/`, then
//! `$CARGO_HOME`; nearer files win, and `CARGO_TARGET_<TRIPLE>_LINKER` beats them all.
//! kiln never edits these files: it overrides a setting for its own cargo invocation
//! only, and says so.

use crate::Target;
use kiln_schema::{ConfigSource, Override, Setting};
use std::path::{Path, PathBuf};

/// The linker settings cargo would use, read from the user's configuration.
#[derive(Debug, Clone, Default)]
pub struct CargoConfig {
    /// Parsed config files, nearest first.
    files: Vec<ConfigFile>,
}

/// One cargo config file: where it sits (as a level, for keys and messages) and its
/// parsed content.
#[derive(Debug, Clone)]
struct ConfigFile {
    level: ConfigSource,
    table: toml::Table,
}

/// A user linker setting kiln replaces for one target, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkerOverride {
    /// The linker the user configured.
    pub configured: String,
    /// Where it was configured.
    pub source: ConfigSource,
    /// Why it can't be used for this target.
    pub reason: String,
}

impl CargoConfig {
    /// Reads every config file cargo would read when run in `cwd` (the workspace root).
    pub fn discover(cwd: &Path) -> Self {
        let home = cargo_home();
        let mut dirs: Vec<PathBuf> = cwd.ancestors().map(|d| d.join(".cargo")).collect();
        if let Some(home) = &home {
            if !dirs.contains(home) {
                dirs.push(home.clone());
            }
        }
        let files = dirs
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
                let level = level_of(&p, cwd, home.as_deref());
                Some(ConfigFile { level, table })
            })
            .collect();
        Self { files }
    }

    /// A configuration made of one `.cargo/config.toml` at the workspace root with
    /// `text` (for tests and tools).
    pub fn from_text(text: &str) -> Option<Self> {
        let table = text.parse().ok()?;
        let level = ConfigSource::Workspace {
            path: ".cargo/config.toml".into(),
            table: None,
        };
        Some(Self {
            files: vec![ConfigFile { level, table }],
        })
    }

    /// Every config file, nearest first, by level: what the cache key hashes.
    pub fn files(&self) -> impl Iterator<Item = (&ConfigSource, &toml::Table)> {
        self.files.iter().map(|f| (&f.level, &f.table))
    }

    /// The linker configured for `target`, and where it came from.
    pub fn linker(&self, target: &Target) -> Option<(String, ConfigSource)> {
        let var = format!("CARGO_TARGET_{}_LINKER", target.env_name());
        if let Ok(v) = std::env::var(&var) {
            return Some((v, ConfigSource::Env { name: var }));
        }
        self.files.iter().find_map(|file| {
            target_tables(&file.table, target).find_map(|(name, t)| {
                let linker = t.get("linker")?.as_str()?;
                let table = (name != target.triple).then(|| name.to_string());
                Some((linker.to_string(), file.level.clone().with_table(table)))
            })
        })
    }

    /// Whether a config file defines `[profile.<name>]` (cargo accepts custom
    /// profiles from config files as from the manifest).
    pub fn defines_profile(&self, profile: &str) -> bool {
        self.files.iter().any(|f| {
            f.table
                .get("profile")
                .and_then(|p| p.get(profile))
                .is_some()
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
            || self.files.iter().any(|f| {
                f.table
                    .get("profile")
                    .and_then(|p| p.get(profile))
                    .and_then(|p| p.get(key))
                    .is_some()
            })
    }

    /// `build.jobs` as cargo reads it (`CARGO_BUILD_JOBS`, else the nearest file that
    /// sets it; a negative value counts down from `cores`), and where it came from.
    pub fn jobs(&self, cores: u32) -> Option<(u32, ConfigSource)> {
        let resolve = |n: i64| -> Option<u32> {
            let n = if n < 0 { i64::from(cores) + n } else { n };
            u32::try_from(n.max(1)).ok()
        };
        if let Ok(v) = std::env::var("CARGO_BUILD_JOBS") {
            let env = ConfigSource::Env {
                name: "CARGO_BUILD_JOBS".into(),
            };
            return resolve(v.trim().parse().ok()?).map(|n| (n, env));
        }
        self.files.iter().find_map(|f| {
            let n = f.table.get("build")?.get("jobs")?.as_integer()?;
            resolve(n).map(|n| (n, f.level.clone()))
        })
    }

    /// The rustflags cargo would pass when building for `target`, and where they come
    /// from, following cargo's order: `CARGO_ENCODED_RUSTFLAGS`, `RUSTFLAGS`,
    /// `target.<triple>.rustflags`, `build.rustflags` (the first that is set wins;
    /// arrays from several config files are joined, nearest last; the triple's table
    /// and every matching `target.'cfg(..)'` table count).
    pub fn rustflags(&self, target: &Target) -> Option<(Vec<String>, ConfigSource)> {
        let env = |name: &str| ConfigSource::Env { name: name.into() };
        if let Ok(v) = std::env::var("CARGO_ENCODED_RUSTFLAGS") {
            let flags = v
                .split('\x1f')
                .filter(|f| !f.is_empty())
                .map(String::from)
                .collect();
            return Some((flags, env("CARGO_ENCODED_RUSTFLAGS")));
        }
        if let Ok(v) = std::env::var("RUSTFLAGS") {
            return Some((
                v.split_whitespace().map(String::from).collect(),
                env("RUSTFLAGS"),
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
    /// out of one file) and its env variable, with the nearest source that set it.
    fn config_list(
        &self,
        env: &str,
        get: impl Fn(&toml::Table) -> Vec<&toml::Value>,
    ) -> Option<(Vec<String>, ConfigSource)> {
        let mut flags = Vec::new();
        let mut nearest = None;
        for file in self.files.iter().rev() {
            let values = get(&file.table);
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
            nearest = Some(file.level.clone());
        }
        if let Ok(v) = std::env::var(env) {
            flags.extend(v.split_whitespace().map(String::from));
            nearest = Some(ConfigSource::Env { name: env.into() });
        }
        nearest.map(|source| (flags, source))
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
            .find_map(|f| f.table.get("build")?.get("jobs")?.as_integer())
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

/// Rustflags kiln keeps for its own build, and an override per flag it dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RustflagsFix {
    /// The flags to pass instead.
    pub flags: Vec<String>,
    /// What was dropped and why.
    pub dropped: Vec<Override>,
    /// The dropped flags as rustc receives them (`["-C", "link-arg=-fuse-ld=lld"]`),
    /// one group per entry of `dropped`.
    pub dropped_groups: Vec<Vec<String>>,
}

/// Drops the rustflags that can't work for `target`: linker choices (`-fuse-ld=..`,
/// `linker=..`) when kiln replaced the linker, `target-cpu=native` (artifacts must run
/// on any machine of the arch), and CPU names the target doesn't know (`cpus` lists
/// them; called only when a `target-cpu` flag is present). `None` when all can stay.
pub fn fix_rustflags(
    flags: &[String],
    source: Option<&ConfigSource>,
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
    let mut dropped_groups = Vec::new();
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
            Some(why) => {
                dropped_groups.push(g.clone());
                dropped.push(Override {
                    target: Some(target.triple.clone()),
                    setting: Setting::Rustflag,
                    from: g.join(" "),
                    to: None,
                    source: source.cloned(),
                    reason: why,
                });
            }
            None => kept.extend(g),
        }
    }
    (!dropped.is_empty()).then_some(RustflagsFix {
        flags: kept,
        dropped,
        dropped_groups,
    })
}

/// The level of the config file at `path`: inside the workspace (by its relative
/// path), `$CARGO_HOME`, or a directory above the workspace.
fn level_of(path: &Path, root: &Path, home: Option<&Path>) -> ConfigSource {
    if home.is_some_and(|h| path.parent() == Some(h)) {
        return ConfigSource::CargoHome { table: None };
    }
    match path.strip_prefix(root) {
        Ok(rel) => ConfigSource::Workspace {
            path: rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/"),
            table: None,
        },
        Err(_) => ConfigSource::Parent { table: None },
    }
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
        CargoConfig::from_text(text).unwrap()
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
        let fix = fix_rustflags(&flags, None, &arm, true, || {
            vec!["generic".into(), "neoverse-n1".into()]
        })
        .unwrap();
        assert_eq!(fix.flags, ["-Copt-level=3"]);
        assert_eq!(fix.dropped.len(), 3, "{:?}", fix.dropped);
        assert!(fix.dropped[2].reason.contains("no CPU named `znver3`"));
        let ok: Vec<String> = vec!["-C".into(), "target-cpu=neoverse-n1".into()];
        assert!(fix_rustflags(&ok, None, &arm, true, || vec!["neoverse-n1".into()]).is_none());
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
        assert!(o.source.to_string().contains("cfg(all"), "{}", o.source);
        assert!(c.linker(&amd).is_none());
        let mut flags = c.rustflags(&arm).unwrap().0;
        flags.sort();
        assert_eq!(flags, ["-Ccfg", "-Clinux", "-Ct"]);
        assert_eq!(c.rustflags(&amd).unwrap().0, ["-Clinux"]);
    }

    #[test]
    fn config_files_are_named_by_level_never_by_absolute_path() {
        let home = Path::new("/home/u/.cargo");
        let root = Path::new("/src/ws");
        assert_eq!(
            level_of(&root.join(".cargo/config.toml"), root, Some(home)),
            ConfigSource::Workspace {
                path: ".cargo/config.toml".into(),
                table: None
            }
        );
        assert_eq!(
            level_of(&home.join("config.toml"), root, Some(home)),
            ConfigSource::CargoHome { table: None }
        );
        assert_eq!(
            level_of(Path::new("/src/.cargo/config"), root, Some(home)),
            ConfigSource::Parent { table: None }
        );
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
