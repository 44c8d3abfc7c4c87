//! What kiln says besides its results: notes (it acted on the user's behalf) and
//! warnings (something is wrong but the command goes on). Both are data; the human
//! renderer in kiln-commands turns each into words, `--message-format json` prints it as
//! is (`{"reason":"warning","kind":"...",...}`).

use crate::{Change, Override};
use serde::{Deserialize, Serialize};

/// kiln did something on the user's behalf, or something they should know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Note {
    /// kiln's sccache server sends compiles to an sccache-dist build farm; the
    /// build runs its local jobs plus the farm's cores.
    Distributed {
        /// The scheduler's URL.
        scheduler: String,
        /// Build servers the scheduler has.
        servers: u64,
        /// Their cores: the jobs added to the local ones.
        cores: u64,
    },
    /// These static musl binaries use musl's `malloc` (slow under threads).
    MuslMalloc {
        /// The binaries.
        binaries: Vec<String>,
    },
    /// kiln overrode a setting of the user's cargo configuration for its own run.
    Override {
        /// What it changed.
        change: Override,
    },
    /// A rustup target was installed.
    RustTargetInstalled {
        /// The triple.
        target: String,
    },
    /// kiln builds a static native library the build needs.
    ProvisioningNative {
        /// `OpenSSL`.
        library: String,
        /// The target triple.
        target: String,
        /// Who pulls the `-sys` crate in.
        chain: Vec<String>,
    },
    /// A native library kiln built once was restored from the cache.
    NativeRestored {
        /// `OpenSSL`.
        library: String,
        /// The target triple.
        target: String,
    },
    /// The user's `RUSTC_WRAPPER` keeps kiln from linking the dependency list in.
    NoAuditSection,
    /// `kiln affected --skip-cached`: the remote holds this unit already.
    AlreadyCached {
        /// The package.
        package: String,
        /// `linux-amd64`.
        platform: String,
        /// The remote.
        remote: String,
    },
}

/// Something is wrong, but the command goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Warning {
    /// The store's `checksums.json` can't be read: this build rewrites it from
    /// every binary it installs (it refuses when that would drop any).
    StoreManifestUnreadable {
        /// The file.
        path: String,
        /// Why it can't be read.
        error: String,
    },
    /// The local cache can't be used (not writable, not a directory): this build
    /// runs without it.
    CacheUnusable {
        /// Why, with the system's cause.
        error: String,
    },
    /// A local cache entry was damaged; it was removed and the binary rebuilds.
    CorruptCacheEntry {
        /// What is wrong with it.
        problem: CacheProblem,
    },
    /// The target dir was last used by another checkout of the same packages.
    SharedTargetDir {
        /// The target dir.
        target_dir: String,
        /// The other checkout.
        other: String,
    },
    /// A compiler was killed (most likely out of memory): cargo runs again with fewer
    /// jobs.
    RetryingWithFewerJobs {
        /// The package.
        package: String,
        /// Jobs before.
        jobs: u32,
        /// Jobs now.
        fewer: u32,
    },
    /// kiln's sccache server didn't start; rustc runs without it.
    SccacheOff {
        /// Why.
        why: String,
    },
    /// Distributed compilation is configured but off for this build (the scheduler
    /// doesn't answer, offers no server, or sccache is off): everything compiles here.
    DistUnavailable {
        /// The scheduler's URL.
        scheduler: String,
        /// Why.
        why: String,
    },
    /// A cached native library can't be used; it is built instead.
    NativeUnusable {
        /// `OpenSSL`.
        library: String,
        /// The target triple.
        target: String,
        /// Why.
        error: String,
    },
    /// A native library was built but could not be cached.
    NativeNotCached {
        /// `OpenSSL`.
        library: String,
        /// The target triple.
        target: String,
        /// Why.
        error: String,
    },
    /// Sources changed while cargo ran: the binary is installed but not cached.
    EditedDuringBuild {
        /// The binary.
        binary: String,
        /// What changed.
        changes: Vec<Change>,
    },
    /// A binary could not be read or cached after cargo built it.
    NotCached {
        /// The binary.
        binary: String,
        /// The target triple.
        target: String,
        /// Why.
        error: String,
    },
    /// The remote cache was not reachable when the command started.
    RemoteSkipped {
        /// The remote.
        remote: String,
        /// Why.
        why: String,
    },
    /// The remote cache failed during the build; the build went on locally.
    RemoteFailed {
        /// The remote.
        remote: String,
        /// Why.
        why: String,
    },
    /// One operation on the remote failed (the rest went on).
    RemoteOperationFailed {
        /// The remote.
        remote: String,
        /// What kiln was doing.
        operation: String,
        /// Why.
        error: String,
    },
    /// A remote entry was refused: unreadable, or not the one asked for.
    RemoteEntryRefused {
        /// The remote.
        remote: String,
        /// The binary asked for.
        binary: String,
        /// The start of the key.
        key: String,
    },
    /// A remote binary doesn't match its entry's digest; it was rebuilt.
    RemoteDigestMismatch {
        /// The remote.
        remote: String,
        /// Each one as `<binary> <target> <start of the digest its entry names>`.
        entries: Vec<String>,
    },
    /// Entries whose keys cover the value of a credential-like variable or file
    /// (`DB_PASS`, `.env`): built and used here, never uploaded.
    SecretInputsNotUploaded {
        /// The remote.
        remote: String,
        /// Each as `<binary> <target> (<variables and files>)`: names, never values.
        entries: Vec<String>,
    },
    /// `kiln release` wrote an `install.sh` that knows no download location: the
    /// workspace names no GitHub `repository` and no `--base-url` was given.
    ReleaseWithoutDownloadUrl {
        /// The release's tag.
        tag: String,
    },
    /// A learned build-script record from the remote is unreadable.
    RemoteRecordUnreadable {
        /// The remote.
        remote: String,
        /// The record's id.
        id: String,
    },
    /// Names in a remote learned record were dropped (paths outside the workspace,
    /// malformed variable names).
    RemoteNamesDropped {
        /// The remote.
        remote: String,
        /// The record's id.
        id: String,
        /// What was dropped.
        names: Vec<String>,
    },
    /// Remote entries carry no signature of a trusted key; they were rebuilt.
    UnsignedEntries {
        /// The remote.
        remote: String,
        /// `binary key-prefix` each.
        entries: Vec<String>,
    },
    /// Remote learned records carry no signature of a trusted key; ignored.
    UnsignedRecords {
        /// The remote.
        remote: String,
        /// Their ids.
        ids: Vec<String>,
    },
    /// Remote learned records named credential-like variables, never learned.
    CredentialNames {
        /// The remote.
        remote: String,
        /// The names.
        names: Vec<String>,
    },
    /// Entries this machine restored without a trusted signature were not uploaded.
    UnvouchedEntries {
        /// The remote.
        remote: String,
        /// `binary target` each.
        entries: Vec<String>,
    },
    /// Learned records holding names from an unverified remote were not uploaded.
    UnvouchedRecords {
        /// The remote.
        remote: String,
        /// Their ids.
        ids: Vec<String>,
    },
    /// The build's metrics could not be written.
    MetricsNotWritten {
        /// Why.
        error: String,
    },
    /// A remote cache is configured for CI without `trusted-keys`.
    RemoteWithoutTrustedKeys,
    /// The workflow uses another version of an action than kiln writes (a Dependabot
    /// bump): accepted, and how to record it.
    ActionVersionBumped {
        /// The workflow file.
        file: String,
        /// `owner/action@version`.
        uses: String,
    },
    /// A prerequisite is missing.
    ToolMissing {
        /// The tool.
        tool: String,
        /// How to install it.
        install: String,
    },
    /// `kiln report --open` could not open a browser.
    NoBrowser {
        /// The page, to open by hand.
        page: String,
        /// Why.
        error: String,
    },
    /// `kiln image`: binaries in the store are not what the sources build now.
    StaleStore {
        /// The binaries and their architectures.
        units: Vec<crate::UnitGroup>,
    },
    /// A flag was given by an old name that still works.
    DeprecatedFlag {
        /// The old name.
        flag: String,
        /// The name to use.
        instead: String,
    },
}

/// What is wrong with a damaged local cache entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "kebab-case")]
pub enum CacheProblem {
    /// The entry's JSON doesn't parse.
    Unreadable {
        /// Its key.
        key: String,
        /// The parser's error.
        error: String,
    },
    /// The entry names a blob that can't be one.
    InvalidBlobName {
        /// Its key.
        key: String,
    },
    /// The blob's bytes don't match the entry.
    DigestMismatch {
        /// The binary.
        binary: String,
        /// The target.
        target: String,
        /// What the blob hashes to.
        found: String,
        /// What the entry says.
        expected: String,
    },
    /// The blob is gone.
    BlobMissing {
        /// The binary.
        binary: String,
        /// The target.
        target: String,
        /// The blob's digest.
        blob: String,
    },
}
