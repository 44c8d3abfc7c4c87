//! Notes, warnings and rebuild reasons in words.

use kiln_schema::{CacheProblem, Note, Reason, Warning};

/// A reason a binary rebuilds, in words.
pub(crate) fn reason(r: &Reason) -> String {
    match r {
        Reason::NotBuiltBefore => "not built before".into(),
        Reason::CacheOff => "the cache is off".into(),
        Reason::CorruptEntry => "its cache entry was corrupt".into(),
        Reason::UntrustedEntry => {
            "its cache entry came from a remote and no trusted key signed it".into()
        }
        Reason::Evicted => "the cached build was evicted".into(),
        Reason::Changed { change } => change.to_string(),
    }
}

/// The first few reasons, and how many more.
pub(crate) fn reasons(rs: &[Reason]) -> String {
    let mut out: Vec<String> = rs.iter().take(3).map(reason).collect();
    if rs.len() > 3 {
        out.push(format!("{} more inputs changed", rs.len() - 3));
    }
    out.join(", ")
}

/// A note in words.
pub(crate) fn note(n: &Note) -> String {
    match n {
        Note::MuslMalloc { binaries } => {
            let names: Vec<String> = binaries.iter().map(|b| format!("`{b}`")).collect();
            format!(
                "{} {} musl's malloc, slow under many threads: set `allocator = \"mimalloc\"` (or `\"system\"` to keep it) in the kiln settings; {}",
                names.join(", "),
                if names.len() == 1 { "uses" } else { "use" },
                kiln_diagnostics::docs_url("allocator.md")
            )
        }
        Note::Distributed {
            scheduler,
            servers,
            cores,
        } => format!(
            "compiling on {servers} build server(s) of {scheduler} too: {cores} remote core(s) beside this machine's jobs"
        ),
        Note::Override { change } => change.to_string(),
        Note::RustTargetInstalled { target } => {
            format!("installed the Rust target {target} with rustup")
        }
        Note::ProvisioningNative {
            library,
            target,
            chain,
        } => format!(
            "building a static {library} for {target} (needed by {}); it is kept and reused",
            chain.join(" -> ")
        ),
        Note::NativeRestored { library, target } => format!(
            "restored the static {library} for {target} from the cache (built once, by whichever machine built it first)"
        ),
        Note::NoAuditSection => "RUSTC_WRAPPER is set, so the binaries built now don't carry their dependency list \
             (kiln links it in as cargo's rustc wrapper); their SBOMs are written all the same"
            .into(),
        Note::AlreadyCached {
            package,
            platform,
            remote,
        } => format!("{package} {platform} is in {remote}"),
    }
}

/// A warning in words.
pub(crate) fn warning(w: &Warning) -> String {
    let list = |items: &[String]| items.join(", ");
    match w {
        Warning::StoreManifestUnreadable { path, error } => format!(
            "`{path}` is unreadable ({error}); rewriting it from this build's binaries"
        ),
        Warning::CacheUnusable { error } => {
            format!("{error}; building without the cache")
        }
        Warning::CorruptCacheEntry { problem } => {
            let what = match problem {
                CacheProblem::Unreadable { key, error } => {
                    format!("entry {key} is unreadable ({error})")
                }
                CacheProblem::InvalidBlobName { key } => {
                    format!("entry {key} names an invalid blob")
                }
                CacheProblem::DigestMismatch {
                    binary,
                    target,
                    found,
                    expected,
                } => format!(
                    "cached {binary} for {target} does not match its digest (sha256 {found}, expected {expected})"
                ),
                CacheProblem::BlobMissing {
                    binary,
                    target,
                    blob,
                } => format!("cached {binary} for {target} lost its blob {blob}"),
            };
            format!("{what}; it was removed and will be rebuilt")
        }
        Warning::SharedTargetDir { target_dir, other } => format!(
            "the target dir `{target_dir}` was last used by another checkout (`{other}`); cargo's freshness checks can't tell \
             them apart, so binaries built now are not cached (use a target dir per checkout)"
        ),
        Warning::RetryingWithFewerJobs {
            package,
            jobs,
            fewer,
        } => format!(
            "a compiler building `{package}` was killed (signal 9), most likely out of memory; retrying `{package}` once with {fewer} job(s) instead of {jobs}"
        ),
        Warning::SccacheOff { why } => format!("sccache is off for this build: {why}"),
        Warning::DistUnavailable { scheduler, why } => format!(
            "distributed compilation is off for this build ({scheduler}: {why}); everything compiles on this machine"
        ),
        Warning::NativeUnusable {
            library,
            target,
            error,
        } => format!("the cached {library} for {target} can't be used ({error}); building it"),
        Warning::NativeNotCached {
            library,
            target,
            error,
        } => format!("the static {library} for {target} was built but not cached: {error}"),
        Warning::EditedDuringBuild { binary, changes } => {
            let what: Vec<String> = changes.iter().map(ToString::to_string).collect();
            format!(
                "{} while {binary} was being built; it is installed but not cached",
                what.join(", ")
            )
        }
        Warning::NotCached {
            binary,
            target,
            error,
        } => format!("could not cache {binary} for {target}: {error}"),

        Warning::RemoteSkipped { why, .. } => {
            format!("remote cache skipped, building locally: {why}")
        }
        Warning::RemoteFailed { remote, why } => {
            format!("remote cache {remote} failed during the build: {why}")
        }
        Warning::RemoteOperationFailed {
            operation, error, ..
        } => format!("{operation}: {error}"),
        Warning::RemoteEntryRefused {
            remote,
            binary,
            key,
        } => format!(
            "the entry for {binary} {key} in {remote} is unreadable or not the one asked for; rebuilt instead"
        ),
        Warning::RemoteDigestMismatch { remote, entries } => format!(
            "{} from {remote} did not match {} digest (damaged or truncated); rejected and rebuilt, and uploaded again where this build uploads",
            list(entries),
            if entries.len() == 1 { "its" } else { "their" }
        ),
        Warning::SecretInputsNotUploaded { remote, entries } => format!(
            "not uploaded to {remote}: {} (their keys cover the value of a variable or file that looks like a secret; a published key would let anyone test guesses of it)",
            list(entries)
        ),
        Warning::ReleaseWithoutDownloadUrl { tag } => format!(
            "the release {tag}'s install.sh names no download location: set `repository` (a GitHub URL) in Cargo.toml's [package] or [workspace.package], or pass `--base-url https://…/download/{tag}`; until then it needs `sh install.sh --base-url URL`"
        ),
        Warning::RemoteRecordUnreadable { remote, id } => {
            format!("learned inputs {id} from {remote} are unreadable; ignored")
        }
        Warning::RemoteNamesDropped { remote, id, names } => {
            format!("learned inputs {id} from {remote} named {}; ignored", list(names))
        }
        Warning::UnsignedEntries { remote, entries } => format!(
            "{} remote entr{} from {remote} carr{} no signature of a trusted key ({}); rebuilt instead",
            entries.len(),
            if entries.len() == 1 { "y" } else { "ies" },
            if entries.len() == 1 { "ies" } else { "y" },
            list(entries)
        ),
        Warning::UnsignedRecords { remote, ids } => format!(
            "{} learned build-script record(s) from {remote} carry no signature of a trusted key ({}); ignored",
            ids.len(),
            list(ids)
        ),
        Warning::CredentialNames { remote, names } => {
            format!(
                "learned build-script records from {remote} named credential-like variables ({}); such names are never learned from a remote",
                list(names)
            )
        }
        Warning::UnvouchedEntries { remote, entries } => format!(
            "{} cached entr{} restored without a trusted signature {} not uploaded to {remote} ({}): this machine can't vouch for {}",
            entries.len(),
            if entries.len() == 1 { "y" } else { "ies" },
            if entries.len() == 1 { "was" } else { "were" },
            list(entries),
            if entries.len() == 1 { "it" } else { "them" }
        ),
        Warning::UnvouchedRecords { remote, ids } => format!(
            "{} learned build-script record(s) holding names from an unverified remote were not uploaded to {remote} ({})",
            ids.len(),
            list(ids)
        ),
        Warning::MetricsNotWritten { error } => {
            format!("could not write the build metrics: {error}")
        }
        Warning::RemoteWithoutTrustedKeys => format!(
            "the remote cache has no `trusted-keys`: readers can't check who wrote what they restore; `kiln cache keygen NAME --output FILE` makes a key ({}#a-signed-team-cache-step-by-step)",
            kiln_diagnostics::docs_url("remote-cache.md")
        ),
        Warning::ActionVersionBumped { file, uses } => format!(
            "{file} uses `{uses}` where kiln writes another version; record it in [workspace.metadata.kiln.ci.actions] (e.g. `checkout = \"actions/checkout@v7\"`) or `kiln ci github` will write kiln's back"
        ),
        Warning::ToolMissing { tool, install } => {
            format!("{tool} is missing (install: {install})")
        }
        Warning::NoBrowser { page, error } => {
            format!("could not open a browser ({error}); open {page} yourself")
        }
        Warning::StaleStore { units } => format!(
            "the artifact store's {} predate the current sources (edited since `kiln build`, or no longer compiling): the image holds the old binaries; `kiln image --build` rebuilds first",
            super::grouped(units)
        ),
        Warning::DeprecatedFlag { flag, instead } => {
            format!("`{flag}` is deprecated; use `{instead}` (the old name will go in a future release)")
        }
    }
}
