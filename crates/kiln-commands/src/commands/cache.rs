//! `kiln cache stats | gc | clear`.

use super::{load_workspace, open_cache, read_workspace};
use crate::args::{CacheAction, CacheArgs, GlobalArgs, SyncArgs};
use crate::reporter::Reporter;
use kiln_diagnostics::{Error, Result};
use kiln_schema::{Event, SyncDirection};
use std::process::ExitCode;

pub(crate) fn cache(g: &GlobalArgs, args: &CacheArgs, r: &Reporter) -> Result<ExitCode> {
    // Push and pull read the workspace themselves, once, with their own flags.
    let manifest = match (&args.action, args.action.manifest()) {
        (CacheAction::Keygen { name, output }, _) => return keygen(name, output, r),
        (CacheAction::Push(p), _) => {
            match &p.from {
                Some(from) => push_from(g, &p.sync, from, r)?,
                None => sync(g, &p.sync, Sync::Push, r)?,
            }
            return Ok(ExitCode::SUCCESS);
        }
        (CacheAction::Pull(pull), _) => {
            let how = if pull.vouch {
                Sync::PullVouching
            } else {
                Sync::Pull
            };
            sync(g, &pull.sync, how, r)?;
            return Ok(ExitCode::SUCCESS);
        }
        (_, Some(m)) => m,
        (_, None) => unreachable!("every other action reads a workspace"),
    };
    // Outside a workspace the cache is still reachable through KILN_CACHE_DIR or the
    // default. Inside one, a workspace that can't be read (a broken config) is an
    // error: `gc` or `clear` must never fall back to another directory than the one
    // configured.
    let in_workspace = manifest.manifest_path.is_some()
        || std::env::current_dir()
            .ok()
            .is_some_and(|d| d.ancestors().any(|a| a.join("Cargo.toml").is_file()));
    let cache = match load_workspace(manifest, g.flags()) {
        Ok(ws) => open_cache(&ws)?,
        Err(e) if in_workspace => return Err(e),
        Err(_) => {
            let cwd = std::env::current_dir().unwrap_or_default();
            let s = kiln_config::Settings::outside_workspace(&cwd, g.flags())?;
            kiln_local_cache::LocalCache::open(s.cache_dir.value)?
        }
    };
    match &args.action {
        CacheAction::Stats { .. } => r.emit(&Event::CacheStats(cache.stats())),
        CacheAction::Gc { max_size, .. } => {
            let max = kiln_config::parse_size(max_size)?;
            let g = cache.gc(max)?;
            let native = kiln_native::clean_build_dirs(&cache.native_dir())?;
            r.emit(&Event::CacheCollected {
                entries_removed: g.entries_removed,
                bytes_freed: g.bytes_freed + native,
                bytes_left: g.bytes_left,
            });
        }
        CacheAction::Clear { .. } => {
            cache.clear()?;
            r.emit(&Event::CacheCleared {
                root: cache.root().display().to_string(),
            });
        }
        CacheAction::Push(_) | CacheAction::Pull(_) | CacheAction::Keygen { .. } => {
            unreachable!("handled before the cache is opened")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiln cache keygen NAME --out FILE`: the secret key into a new owner-only file,
/// the public key (for `trusted-keys`) on stdout.
fn keygen(name: &str, out: &std::path::Path, r: &Reporter) -> Result<ExitCode> {
    let (key, secret) = kiln_trust::SecretKey::generate(name)?;
    kiln_trust::write_secret_file(out, &secret)?;
    r.emit(&Event::KeyGenerated {
        name: name.into(),
        public_key: key.public().to_string(),
        secret_file: out.display().to_string(),
    });
    Ok(ExitCode::SUCCESS)
}

/// Which way `kiln cache push|pull` moves entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sync {
    Push,
    Pull,
    /// A pull from this run's own slices (`--vouch`).
    PullVouching,
}

/// `kiln cache push --from SLICE`: every entry of a run's slice into the remote, as
/// data. Nothing the workspace configures runs: its manifests are read, not given
/// to cargo, and entries travel by their keys. With trusted keys, the entries the
/// slice says its job built are vouched for (signed with the signing key), the
/// others must carry a trusted signature already.
fn push_from(g: &GlobalArgs, args: &SyncArgs, from: &str, r: &Reporter) -> Result<()> {
    let ws = read_workspace(&args.manifest, args.flags(g))?;
    let cache = &open_cache(&ws)?;
    let _lock = cache.lock_shared()?;
    let remote = reachable(super::open_remote(&ws, r)?)?;
    let url = kiln_config::RemoteUrl::parse(from, "--from")?;
    match &url {
        kiln_config::RemoteUrl::Dir(dir) if !dir.is_dir() => {
            return Err(Error::usage(format!(
                "`{}` is not a directory: there is no slice to push",
                dir.display()
            ))
            .hint("pass `--from` the directory build jobs pushed to (`KILN_REMOTE_CACHE=file:///… kiln cache push`)"));
        }
        kiln_config::RemoteUrl::Dir(_) => {}
        _ => {
            return Err(Error::usage(format!(
                "{url} can't be listed: `--from` reads the `file://` directory a build job pushed to"
            ))
            .hint("pass `--from file:///path/to/slice`"));
        }
    }
    let s = &ws.settings;
    let slice = kiln_remote::open(&url, false, s.remote_timeout.value, &s.access)?;
    let slice =
        kiln_remote::RemoteCache::new(slice, false).with_trust(s.trust.keys.value.clone(), None);
    let slice = reachable(Some(if s.trust.enforced() {
        slice.vouching()
    } else {
        slice
    }))?;
    let (entries, ids) = slice.fetch_listed(cache);
    remote.force_upload(&entries, &ids, cache);
    outcome(&slice.stats(), r)?;
    let st = remote.stats();
    outcome(&st, r)?;
    r.emit(&Event::CacheSynced {
        direction: SyncDirection::Push,
        moved: st.uploaded,
        total: entries.len(),
        bytes: st.bytes_up,
        remote: st.remote,
        missing: 0,
    });
    Ok(())
}

/// `kiln cache push|pull`: the current plan's binaries, local -> remote or back.
fn sync(g: &GlobalArgs, args: &SyncArgs, how: Sync, r: &Reporter) -> Result<()> {
    let push = how == Sync::Push;
    let mut ws = load_workspace(&args.manifest, args.flags(g))?;
    let cache = &open_cache(&ws)?;
    if how == Sync::PullVouching && !ws.settings.trust.enforced() {
        return Err(Error::usage(
            "`--vouch` needs trusted keys: without them nothing is signed or checked, so there is nothing to vouch for",
        )
        .hint("pull without `--vouch`, or add `trusted-keys` to [workspace.metadata.kiln.cache]"));
    }
    // Like a build, a sync holds the cache's shared lock: `gc` waits for it.
    let _lock = cache.lock_shared()?;
    let remote = reachable(super::open_remote(&ws, r)?.map(|rc| match how {
        Sync::PullVouching => rc.vouching(),
        // What this machine built says so: the run's later jobs vouch for only that.
        Sync::Push => rc.claiming_origin(),
        Sync::Pull => rc,
    }))?;
    let sel = kiln_build::select(&mut ws, &args.request())?;
    let plan = kiln_build::Plan::new(&ws, &sel, &kiln_build::native_root(&ws, Some(cache)))?;
    let store = kiln_artifacts::Store::new(&sel.out);
    let remote_for_analysis = (!push).then_some(&remote);
    let analysis = kiln_build::analyze(&ws, &plan, &store, Some(cache), remote_for_analysis, r)?;
    // Native libraries kiln provisioned travel with the binaries.
    let native = kiln_build::native_entries(&plan);
    if push {
        // Every cached entry of the plan, vouched for or not: the upload decides
        // what may go (and says what it held back).
        let wanted = analysis.units.iter().map(|u| u.wanted()).chain(native);
        let entries: Vec<kiln_local_cache::Entry> = wanted
            .filter_map(|w| match cache.get_any(&w.key) {
                kiln_local_cache::Lookup::Hit(e, _) if e.answers(&w) => Some(*e),
                _ => None,
            })
            .collect();
        remote.force_upload(&entries, &analysis.learned_ids(), cache);
    } else {
        let absent: Vec<kiln_local_cache::Wanted> = native
            .into_iter()
            .filter(|w| !cache.has_usable(&w.key))
            .collect();
        remote.fetch(&absent, cache);
    }
    let s = remote.stats();
    outcome(&s, r)?;
    // Held-back entries (restored unverified) were warned about above; missing are
    // the ones not cached here (push) or anywhere (pull).
    let missing = analysis
        .units
        .iter()
        .filter(|u| match push {
            true => !cache.contains(&u.key),
            false => u.cached().is_none(),
        })
        .count();
    let (moved, bytes) = if push {
        (s.uploaded, s.bytes_up)
    } else {
        (s.hits, s.bytes_down)
    };
    r.emit(&Event::CacheSynced {
        direction: if push {
            SyncDirection::Push
        } else {
            SyncDirection::Pull
        },
        moved,
        total: analysis.units.len(),
        bytes,
        remote: s.remote,
        missing,
    });
    Ok(())
}

/// The configured remote cache, answering; else the error that says what to fix.
fn reachable(remote: Option<kiln_remote::RemoteCache>) -> Result<kiln_remote::RemoteCache> {
    let Some(remote) = remote else {
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
    Ok(remote)
}

/// Says what a remote refused or dropped; a remote that failed midway is the error.
fn outcome(stats: &kiln_remote::RemoteStats, r: &Reporter) -> Result<()> {
    for w in &stats.warnings {
        r.emit(&Event::Warning(w.clone()));
    }
    match &stats.skipped {
        Some(why) => Err(Error::remote(format!(
            "remote cache {} failed: {why}",
            stats.remote
        ))),
        None => Ok(()),
    }
}
