//! `kiln cache stats | gc | clear`.

use super::{build::human_size, load_workspace, open_cache};
use crate::args::{CacheAction, CacheArgs, Cli};
use crate::reporter::Reporter;
use kiln_diagnostics::{Error, Result};
use std::process::ExitCode;

pub(crate) fn cache(cli: &Cli, args: &CacheArgs, r: &Reporter) -> Result<ExitCode> {
    // Outside a workspace the cache is still reachable through KILN_CACHE_DIR or the
    // default. Inside one, a workspace that can't be read (a broken config) is an
    // error: `gc` or `clear` must never fall back to another directory than the one
    // configured.
    let in_workspace = cli.global.manifest_path.is_some()
        || std::env::current_dir()
            .ok()
            .is_some_and(|d| d.ancestors().any(|a| a.join("Cargo.toml").is_file()));
    let cache = match load_workspace(cli) {
        Ok(ws) => open_cache(&ws)?,
        Err(e) if in_workspace => return Err(e),
        Err(_) => {
            let cwd = std::env::current_dir().unwrap_or_default();
            let s = kiln_config::Settings::resolve(
                &kiln_config::Config::default(),
                &cwd,
                kiln_config::env(),
                cli.global.flags(),
            )?;
            kiln_cache::LocalCache::open(s.cache_dir.value)?
        }
    };
    match &args.action {
        CacheAction::Stats => {
            let s = cache.stats();
            if r.is_json() {
                r.event(&kiln_schema::Event::CacheStats(s));
            } else {
                let lookups = s.recent_hits + s.recent_misses;
                let rate = if lookups == 0 {
                    "no builds yet".to_string()
                } else {
                    format!("{:.0}%", 100.0 * s.recent_hits as f64 / lookups as f64)
                };
                r.info("Cache", &s.root);
                r.info(
                    "Entries",
                    &format!("{} ({})", s.entries, human_size(s.bytes)),
                );
                r.info(
                    "Hit rate",
                    &format!(
                        "{rate} ({} hits, {} misses over the last {} builds)",
                        s.recent_hits,
                        s.recent_misses,
                        s.builds.min(50)
                    ),
                );
                if s.recent_remote_hits + s.recent_bytes_up > 0 {
                    let remote_rate = if lookups == 0 {
                        "0%".to_string()
                    } else {
                        format!(
                            "{:.0}%",
                            100.0 * s.recent_remote_hits as f64 / lookups as f64
                        )
                    };
                    r.info(
                        "Remote",
                        &format!(
                            "{remote_rate} of lookups served remotely ({} hits); {} down, {} up",
                            s.recent_remote_hits,
                            human_size(s.recent_bytes_down),
                            human_size(s.recent_bytes_up)
                        ),
                    );
                }
            }
        }
        CacheAction::Gc { max_size } => {
            let max = kiln_config::parse_size(max_size)?;
            let g = cache.gc(max)?;
            let native = kiln_native::clean_build_dirs(&cache.native_dir())?;
            r.status(
                "Collected",
                &format!(
                    "{} entries, {} freed, {} left",
                    g.entries_removed,
                    human_size(g.bytes_freed + native),
                    human_size(g.bytes_left)
                ),
            );
        }
        CacheAction::Clear => {
            cache.clear()?;
            r.status("Cleared", &cache.root().display().to_string());
        }
        CacheAction::Push(build) | CacheAction::Pull(build) => {
            let push = matches!(args.action, CacheAction::Push(_));
            sync(cli, build, push, &cache, r)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiln cache push|pull`: the current plan's binaries, local -> remote or back.
fn sync(
    cli: &Cli,
    args: &crate::args::BuildArgs,
    push: bool,
    cache: &kiln_cache::LocalCache,
    r: &Reporter,
) -> Result<()> {
    let ws = load_workspace(cli)?;
    // Like a build, a sync holds the cache's shared lock: `gc` waits for it.
    let _lock = cache.lock_shared()?;
    let Some(remote) = super::open_remote(&ws, r)? else {
        return Err(Error::usage("no remote cache is configured")
            .hint("set `remote` in [workspace.metadata.kiln.cache], or KILN_REMOTE_CACHE"));
    };
    if !remote.alive() {
        return Err(Error::remote(format!(
            "remote cache {} is unreachable",
            remote.stats().remote
        ))
        .hint("check the address, credentials and network, then retry"));
    }
    let sel = args.request().resolve(&ws)?;
    let plan = kiln_build::Plan::new(&ws, &sel, &kiln_build::native_root(&ws, Some(cache)))?;
    let store = kiln_artifacts::Store::new(&sel.out);
    let remote_for_analysis = (!push).then_some(&remote);
    let analysis = kiln_build::analyze(&ws, &plan, &store, Some(cache), remote_for_analysis, r)?;
    // Native libraries kiln provisioned travel with the binaries.
    let native = kiln_build::native_entries(&plan);
    if push {
        let mut entries: Vec<kiln_cache::Entry> = analysis
            .units
            .iter()
            .filter_map(|u| u.cached().cloned())
            .collect();
        entries.extend(native.iter().filter_map(|w| match cache.get(&w.key) {
            kiln_cache::Lookup::Hit(e, _) if e.answers(w) => Some(*e),
            _ => None,
        }));
        remote.force_upload(&entries, &analysis.learned_ids(), cache);
    } else {
        let absent: Vec<kiln_cache::Wanted> = native
            .into_iter()
            .filter(|w| !cache.contains(&w.key))
            .collect();
        remote.fetch(&absent, cache);
    }
    let s = remote.stats();
    for w in &s.warnings {
        r.warn(w);
    }
    if let Some(why) = &s.skipped {
        return Err(Error::remote(format!(
            "remote cache {} failed: {why}",
            s.remote
        )));
    }
    let missing = analysis
        .units
        .iter()
        .filter(|u| u.cached().is_none())
        .count();
    let verb = if push { "Pushed" } else { "Pulled" };
    let (n, bytes) = if push {
        (s.uploaded, s.bytes_up)
    } else {
        (s.hits, s.bytes_down)
    };
    r.status(
        verb,
        &format!(
            "{n} of {} binaries ({}) {} {}{}",
            analysis.units.len(),
            human_size(bytes),
            if push { "to" } else { "from" },
            s.remote,
            if missing > 0 {
                format!("; {missing} not cached anywhere yet (run `kiln build`)")
            } else {
                String::new()
            }
        ),
    );
    Ok(())
}
