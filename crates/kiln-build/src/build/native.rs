//! Native libraries the plan's `-sys` crates need: restored from the local or remote
//! cache (typed [`NativeEntry`] records), else built (beside cargo when the plan has
//! a gate, before it otherwise) and shared through the caches.

use super::{BuildContext, Wanted};
use crate::plan::{NativeGate, NativeLib, Plan};
use kiln_diagnostics::{Error, Result};
use kiln_local_cache::{Artifact, Entry, LocalCache, NativeEntry, Origin, Subject};
use kiln_schema::{Note, Warning};
use std::collections::BTreeSet;

/// What the caches hold a provisioned library `n` under, built with `compiler`.
fn wanted(n: &NativeLib, compiler: &str) -> kiln_local_cache::Wanted {
    kiln_local_cache::Wanted {
        key: kiln_native::cache_key(&n.provision, &n.target, compiler),
        target: n.target.triple.clone(),
        subject: Subject::Native {
            krate: n.provision.krate.clone(),
            library: n.provision.library.clone(),
        },
    }
}

/// The cache entries of every native library `plan` provisions (for `kiln cache
/// push`/`pull`, which move them with the binaries).
pub fn native_entries(plan: &Plan) -> Vec<kiln_local_cache::Wanted> {
    let libs: Vec<&NativeLib> = plan.steps.iter().flat_map(|s| s.native.iter()).collect();
    if libs.is_empty() {
        return Vec::new();
    }
    // Asked only when there is a library: starting zig costs ~0.1 s.
    let compiler = kiln_toolchain::zig_version().unwrap_or_default();
    let mut out: Vec<kiln_local_cache::Wanted> =
        libs.iter().map(|n| wanted(n, &compiler)).collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out.dedup_by(|a, b| a.key == b.key);
    out
}

/// Installs the native libraries the wanted units need from the caches; returns the
/// ones that must be built.
pub(super) fn restore<'p>(cx: &BuildContext<'p>, units: &[Wanted<'_>]) -> Vec<&'p NativeLib> {
    let mut seen = BTreeSet::new();
    let mut pending = Vec::new();
    let mut compiler = None;
    for w in units {
        for n in cx.plan.steps[w.step]
            .native
            .iter()
            .filter(|n| n.target == *w.target)
        {
            if !seen.insert(n.prefix.clone()) || kiln_native::is_intact(&n.prefix) {
                continue;
            }
            let t0 = cx.monitor.mark();
            let compiler =
                compiler.get_or_insert_with(|| kiln_toolchain::zig_version().unwrap_or_default());
            let want = wanted(n, compiler);
            if cx.cache().is_some_and(|c| restore_one(cx, c, &want, n)) {
                cx.monitor
                    .provisioned(&n.provision.library, &n.target.triple, t0, true, false);
            } else {
                pending.push(n);
            }
        }
    }
    pending
}

/// Builds the native libraries `pending`, one after the other, and shares each.
pub(super) fn provision(
    cx: &BuildContext<'_>,
    pending: &[&NativeLib],
    beside_cargo: bool,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    // OpenSSL's make gets jobs of its own, as many as cargo's: beside cargo, every crate
    // that links OpenSSL waits for it (and the build script waiting at the gate holds
    // one of cargo's jobs idle), so it takes half the machine instead of the third one
    // fixed job gave it; with cargo idle (a small workspace), it takes all of it.
    // Measured: bench/provision.sh (a fixture: twice as fast per target) and
    // bench/real.sh (the real workload, beside a busy cargo).
    let jobserver = crate::resources::jobserver(cx.plan.resources.jobs)
        .map_err(|e| Error::internal("failed to create a jobserver").with_source(e))?;
    let compiler = kiln_toolchain::zig_version().unwrap_or_default();
    for n in pending {
        let t0 = cx.monitor.mark();
        cx.observer.note(Note::ProvisioningNative {
            library: n.provision.library.clone(),
            target: n.target.triple.clone(),
            chain: n.provision.chain.clone(),
        });
        kiln_native::provision_openssl(&cx.plan.native_root, &n.target, &n.prefix, &|cmd| {
            jobserver.configure(cmd)
        })?;
        if let Some(c) = cx.cache() {
            share(cx, c, &wanted(n, &compiler), n, &compiler);
        }
        cx.monitor.provisioned(
            &n.provision.library,
            &n.target.triple,
            t0,
            false,
            beside_cargo,
        );
    }
    Ok(())
}

/// Closes the gate before cargo starts (a stale `.done` must not let a build script
/// through).
pub(super) fn close_gate(gate: &NativeGate) {
    for ext in ["done", "failed"] {
        let _ = std::fs::remove_file(gate.path.with_extension(ext));
    }
    if let Some(dir) = gate.path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
}

/// Lets the waiting build scripts go on (`ok`) or fail.
pub(super) fn open_gate(gate: &NativeGate, ok: bool) {
    let ext = if ok { "done" } else { "failed" };
    let _ = std::fs::write(gate.path.with_extension(ext), b"");
}

/// Installs the provisioned library `n` from the local cache, after fetching it from
/// the remote when that has it: true when it is in place.
fn restore_one(
    cx: &BuildContext<'_>,
    cache: &LocalCache,
    want: &kiln_local_cache::Wanted,
    n: &NativeLib,
) -> bool {
    if let Some(r) = cx.remote.filter(|r| r.alive()) {
        if !cache.has_usable(&want.key) {
            r.fetch(std::slice::from_ref(want), cache);
        }
    }
    let kiln_local_cache::Lookup::Hit(entry, blob) = cache.get(&want.key) else {
        return false;
    };
    if !entry.answers(want) {
        return false;
    }
    // A prefix left by an interrupted or older install is replaced.
    if n.prefix.exists() {
        let _ = std::fs::remove_dir_all(&n.prefix);
    }
    let installed = kiln_fs::install_dir(&n.prefix, |staging| kiln_native::unpack(&blob, staging));
    match installed {
        Ok(()) => {
            cx.observer.note(Note::NativeRestored {
                library: n.provision.library.clone(),
                target: n.target.triple.clone(),
            });
            true
        }
        // Another kiln may have installed it meanwhile.
        Err(_) if kiln_native::is_intact(&n.prefix) => true,
        Err(e) => {
            cx.observer.warn(Warning::NativeUnusable {
                library: n.provision.library.clone(),
                target: n.target.triple.clone(),
                error: e.detail(),
            });
            false
        }
    }
}

/// Stores a library kiln just built in the local cache (and the remote, when this
/// build uploads), so no other machine of the team builds it again.
fn share(
    cx: &BuildContext<'_>,
    cache: &LocalCache,
    want: &kiln_local_cache::Wanted,
    n: &NativeLib,
    compiler: &str,
) {
    let packed = kiln_fs::temp_path(&cache.root().join("native-archive"));
    let stored = kiln_native::pack(&n.prefix, &packed)
        .and_then(|()| kiln_fs::sha256_file(&packed).map_err(|e| Error::io("read", &packed, e)))
        .and_then(|(sha256, size)| {
            cache.put(
                Entry {
                    key: want.key.clone(),
                    target: want.target.clone(),
                    sha256,
                    size,
                    created: super::store::unix_now(),
                    artifact: Artifact::Native(NativeEntry {
                        krate: n.provision.krate.clone(),
                        library: n.provision.library.clone(),
                        source: kiln_native::source_version(&n.provision).into(),
                        recipe: kiln_native::RECIPE_VERSION,
                        compiler: compiler.into(),
                    }),
                    signatures: Vec::new(),
                    origin: Some(Origin::Built),
                },
                &packed,
            )
        });
    let _ = std::fs::remove_file(&packed);
    match stored {
        Ok(entry) => {
            if let Some(r) = cx.remote.filter(|r| r.alive() && r.uploads()) {
                r.upload(&[entry], &BTreeSet::new(), cache);
            }
        }
        Err(e) => cx.observer.warn(Warning::NativeNotCached {
            library: n.provision.library.clone(),
            target: n.target.triple.clone(),
            error: e.detail(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_closes_before_cargo_and_opens_either_way() {
        let dir = tempfile::tempdir().unwrap();
        let gate = NativeGate {
            path: dir.path().join("kiln/native-gate"),
            gated: "openssl-sys".into(),
        };
        std::fs::create_dir_all(dir.path().join("kiln")).unwrap();
        std::fs::write(gate.path.with_extension("done"), b"").unwrap();
        close_gate(&gate);
        assert!(
            !gate.path.with_extension("done").exists(),
            "a stale gate is shut"
        );
        open_gate(&gate, false);
        assert!(gate.path.with_extension("failed").exists());
        close_gate(&gate);
        open_gate(&gate, true);
        assert!(gate.path.with_extension("done").exists());
        assert!(!gate.path.with_extension("failed").exists());
    }

    #[test]
    fn a_library_is_wanted_by_its_crate_library_and_target() {
        let n = NativeLib {
            provision: kiln_native::Provision {
                krate: "openssl-sys".into(),
                library: "OpenSSL".into(),
                chain: vec!["app".into(), "openssl-sys".into()],
            },
            target: kiln_toolchain::Target::parse("arm64").unwrap(),
            prefix: "/anywhere".into(),
        };
        let w = wanted(&n, "zig 0.17.1");
        assert_eq!(w.target, "aarch64-unknown-linux-musl");
        assert_eq!(w.subject.name(), "OpenSSL");
        assert_ne!(
            w.key,
            wanted(&n, "zig 0.18.0").key,
            "the compiler is in the key"
        );
        let elsewhere = NativeLib {
            prefix: "/elsewhere".into(),
            ..n.clone()
        };
        assert_eq!(
            w.key,
            wanted(&elsewhere, "zig 0.17.1").key,
            "never the path"
        );
    }
}
