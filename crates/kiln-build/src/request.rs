//! Which binaries the user asked for (packages, binaries, features), merged over
//! `[workspace.metadata.kiln]`; the settings (targets, profile, store, budget) are
//! resolved once in [`kiln_config::Settings`].

use kiln_config::{BackendChoice, MemoryLimit, Setting};
use kiln_diagnostics::{Error, Result};
use kiln_toolchain::Target;
use kiln_workspace::Workspace;
use std::path::PathBuf;

/// Command-line choices of what to build; each empty one falls back to the
/// workspace config, then to kiln's defaults.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// `-p`: packages, names or globs (`chronik-*`).
    pub packages: Vec<String>,
    /// `--exclude`: members left out, names or globs.
    pub exclude: Vec<String>,
    /// `--bin`: binaries.
    pub bins: Vec<String>,
    /// `--features`.
    pub features: Vec<String>,
    /// `--all-features`.
    pub all_features: bool,
    /// `--no-default-features`.
    pub no_default_features: bool,
}

/// The resolved request: exactly what will be built and where it goes.
#[derive(Debug, Clone)]
pub struct Selection {
    /// `(package, its selected binaries)`, sorted by package.
    pub units: Vec<(String, Vec<String>)>,
    /// Targets, in the order given.
    pub targets: Vec<Target>,
    /// Cargo profile.
    pub profile: String,
    /// Features passed to cargo.
    pub features: Vec<String>,
    /// `--all-features`.
    pub all_features: bool,
    /// `--no-default-features`.
    pub no_default_features: bool,
    /// Backend choice.
    pub backend: BackendChoice,
    /// Artifact store root.
    pub out: PathBuf,
    /// Cargo `-j`.
    pub jobs: Option<u32>,
    /// The memory budget and where it came from.
    pub max_memory: Setting<MemoryLimit>,
}

impl Selection {
    /// The cargo arguments that select features, shared by `cargo build` and `cargo tree`.
    pub fn feature_args(&self) -> Vec<String> {
        feature_args(&self.features, self.all_features, self.no_default_features)
    }

    /// The directory cargo names after the profile (`debug` for `dev`).
    pub fn profile_dir(&self) -> &str {
        match self.profile.as_str() {
            "dev" | "test" => "debug",
            "bench" => "release",
            p => p,
        }
    }
}

fn pick<T: Clone>(cli: &[T], config: &Option<Vec<T>>) -> Vec<T> {
    if cli.is_empty() {
        config.clone().unwrap_or_default()
    } else {
        cli.to_vec()
    }
}

/// Resolves `req` against `ws` ([`BuildRequest::resolve`]) and makes `ws`'s graph
/// the one cargo will build for it: resolved with the request's features, so C
/// detection, system libraries, host tools, SBOMs and keys follow `--features`.
pub fn select(ws: &mut Workspace, req: &BuildRequest) -> Result<Selection> {
    let sel = req.resolve(ws)?;
    // The default features are what `Workspace::load` resolved already.
    if sel.feature_args().is_empty() {
        return Ok(sel);
    }
    let packages: Vec<&str> = sel.units.iter().map(|(p, _)| p.as_str()).collect();
    let qualified = ws.qualify_features(&packages, &sel.features)?;
    ws.resolve_with(&feature_args(
        &qualified,
        sel.all_features,
        sel.no_default_features,
    ))?;
    Ok(sel)
}

/// The cargo arguments that select `features` (and all, or no default, features).
fn feature_args(features: &[String], all: bool, no_default: bool) -> Vec<String> {
    let mut args = Vec::new();
    if !features.is_empty() {
        args.extend(["--features".to_string(), features.join(",")]);
    }
    if all {
        args.push("--all-features".into());
    }
    if no_default {
        args.push("--no-default-features".into());
    }
    args
}

impl BuildRequest {
    /// Resolves the request against the workspace, rejecting unknown packages,
    /// binaries and targets with the valid choices named.
    pub fn resolve(&self, ws: &Workspace) -> Result<Selection> {
        let (cfg, s) = (&ws.config, &ws.settings);
        check_profile(ws, &s.profile.value)?;
        let units = resolve_units(
            ws,
            &pick(&self.packages, &cfg.packages),
            &self.exclude,
            &pick(&self.bins, &cfg.binaries),
        )?;
        Ok(Selection {
            units,
            targets: s.targets.value.clone(),
            profile: s.profile.value.clone(),
            features: pick(&self.features, &cfg.features),
            all_features: self.all_features || cfg.all_features.unwrap_or(false),
            no_default_features: self.no_default_features
                || cfg.no_default_features.unwrap_or(false),
            backend: s.backend.value,
            out: s.artifact_dir.value.clone(),
            jobs: s.jobs.value,
            max_memory: s.max_memory.clone(),
        })
    }
}

/// The profile must be cargo's own or defined in the root manifest or a cargo config
/// file: said up front (exit 2), not by cargo after seconds of work.
fn check_profile(ws: &Workspace, profile: &str) -> Result<()> {
    const BUILT_IN: [&str; 4] = ["dev", "release", "test", "bench"];
    let in_manifest = |name: &str| {
        ws.root_manifest
            .get("profile")
            .and_then(|p| p.get(name))
            .is_some()
    };
    if BUILT_IN.contains(&profile) || in_manifest(profile) {
        return Ok(());
    }
    let config = kiln_toolchain::CargoConfig::discover(&ws.root);
    if config.defines_profile(profile) {
        return Ok(());
    }
    let mut known: Vec<String> = BUILT_IN.iter().map(|s| s.to_string()).collect();
    if let Some(t) = ws.root_manifest.get("profile").and_then(|p| p.as_table()) {
        known.extend(
            t.keys()
                .filter(|k| !BUILT_IN.contains(&k.as_str()))
                .cloned(),
        );
    }
    Err(Error::usage(format!(
        "profile `{}` is not defined",
        kiln_diagnostics::printable(profile, 60)
    ))
    .hint(format!(
        "use one of: {}; or define [profile.{}] (with `inherits = \"release\"`) in the root Cargo.toml",
        known.join(", "),
        kiln_diagnostics::printable(profile, 60)
    )))
}

/// Whether `name` matches the cargo-style glob `pattern` (`*`, `?`, `[abc]`).
fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => match p.iter().position(|c| *c == ']') {
                Some(end) if !n.is_empty() => {
                    p[1..end].contains(&n[0]) && go(&p[end + 1..], &n[1..])
                }
                _ => false,
            },
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

fn is_glob(spec: &str) -> bool {
    spec.contains(['*', '?', '['])
}

fn resolve_units(
    ws: &Workspace,
    packages: &[String],
    exclude: &[String],
    bins: &[String],
) -> Result<Vec<(String, Vec<String>)>> {
    let with_bins: Vec<&str> = ws.binary_members().map(|p| p.name.as_str()).collect();
    if with_bins.is_empty() {
        return Err(Error::usage(format!(
            "the workspace at `{}` has no binary targets",
            ws.root.display()
        ))
        .hint("kiln builds binaries: add a `src/main.rs` or a `[[bin]]` section to a member"));
    }
    let mut excluded = ws.config.exclude.clone().unwrap_or_default();
    excluded.extend(exclude.iter().cloned());
    let is_excluded = |p: &str| excluded.iter().any(|e| glob_match(e, p));
    let mut chosen: Vec<String> = Vec::new();
    if packages.is_empty() {
        chosen.extend(with_bins.iter().map(|p| p.to_string()));
    }
    for spec in packages {
        if !is_glob(spec) {
            chosen.push(spec.clone());
            continue;
        }
        let matched: Vec<&str> = with_bins
            .iter()
            .copied()
            .filter(|p| glob_match(spec, p))
            .collect();
        if matched.is_empty() {
            return Err(
                Error::usage(format!("`-p {spec}` matches no member with a binary"))
                    .hint(format!("packages with binaries: {}", with_bins.join(", "))),
            );
        }
        chosen.extend(matched.into_iter().map(String::from));
    }
    // `--exclude` names members: a typo would silently build everything.
    for e in exclude {
        if !ws.members.iter().any(|m| glob_match(e, &m.name)) {
            return Err(Error::usage(format!(
                "`--exclude {e}` matches no member of the workspace"
            ))
            .hint(format!("packages with binaries: {}", with_bins.join(", "))));
        }
    }
    chosen.retain(|p| !is_excluded(p));
    chosen.sort();
    chosen.dedup();
    if chosen.is_empty() {
        return Err(Error::usage("every selected package is excluded")
            .hint("drop an `--exclude`, or select packages with `-p`"));
    }
    let mut units = Vec::new();
    for name in &chosen {
        let pkg = ws.member(name).ok_or_else(|| {
            Error::usage(format!("package `{name}` is not a member of the workspace"))
                .hint(format!("packages with binaries: {}", with_bins.join(", ")))
        })?;
        if pkg.bins.is_empty() {
            return Err(
                Error::usage(format!("package `{name}` has no binary targets"))
                    .hint(format!("packages with binaries: {}", with_bins.join(", "))),
            );
        }
        let selected: Vec<String> = if bins.is_empty() {
            pkg.bins.clone()
        } else {
            pkg.bins
                .iter()
                .filter(|b| bins.contains(b))
                .cloned()
                .collect()
        };
        if !selected.is_empty() {
            units.push((pkg.name.clone(), selected));
        }
    }
    for b in bins {
        if !units.iter().any(|(_, bs)| bs.contains(b)) {
            let all: Vec<&str> = chosen
                .iter()
                .filter_map(|p| ws.member(p))
                .flat_map(|p| p.bins.iter().map(String::as_str))
                .collect();
            return Err(
                Error::usage(format!("no selected package has a binary named `{b}`")).hint(
                    format!("binaries of the selected packages: {}", all.join(", ")),
                ),
            );
        }
    }
    units.sort();
    Ok(units)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cargo_style_globs() {
        use super::glob_match as m;
        assert!(m("chronik-*", "chronik-server"));
        assert!(m("chronik-?li", "chronik-cli"));
        assert!(m("*-[cs]*", "chronik-server"));
        assert!(!m("chronik-*", "other"));
        assert!(m("exact", "exact") && !m("exact", "exactly"));
    }
}
