//! Remote binary caches: where a binary built on one machine is found by every other.
//!
//! A remote stores what the local cache stores, by the same names: entries (JSON, by
//! input key), blobs (binaries, by SHA-256) and learned build-script inputs (by
//! package identity, so a machine computes the same keys as the one that built). The
//! [`Remote`] trait is that storage; kiln's build checks every blob it downloads
//! against the entry's digest before using it, so a remote can serve stale or hostile
//! bytes and kiln still installs only what the key says.

mod cache;
mod dir;
mod oci;
mod s3;

pub use cache::{RemoteCache, RemoteStats};
pub use dir::DirRemote;
pub use oci::OciRemote;
pub use s3::S3Remote;

use kiln_config::{Access, RemoteUrl};
use kiln_diagnostics::{Error, Result};
use std::path::Path;
use std::time::Duration;

/// Storage for cache entries, blobs and learned inputs.
pub trait Remote: Send + Sync {
    /// `oci://host/repo` or `file:///path`, for messages (never with credentials).
    fn describe(&self) -> String;
    /// Checks the remote answers, within the timeout.
    fn ping(&self) -> Result<()>;
    /// The entry JSON stored under `key`, if any.
    fn get_entry(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Stores an entry; the blob it names must be stored first.
    fn put_entry(&self, key: &str, json: &[u8]) -> Result<()>;
    /// Downloads the blob `sha256` into `dest`; false when absent.
    /// At most `size` bytes are written: a longer blob is an error, not a full disk.
    fn get_blob(&self, sha256: &str, size: u64, dest: &Path) -> Result<bool>;
    /// Whether the blob is stored.
    fn has_blob(&self, sha256: &str) -> Result<bool>;
    /// Uploads the file `src` as the blob `sha256` (of `size` bytes).
    fn put_blob(&self, sha256: &str, size: u64, src: &Path) -> Result<()>;
    /// Ids of every learned-inputs record stored.
    fn learned_ids(&self) -> Result<Vec<String>>;
    /// Keys of every entry stored: only a run's slice (a directory) is read whole,
    /// by `kiln cache push --from`.
    fn entry_keys(&self) -> Result<Vec<String>> {
        Err(Error::usage(format!(
            "{} can't be listed: `--from` reads a `file://` directory a build job pushed to",
            self.describe()
        ))
        .hint("pass `--from file:///path/to/slice`"))
    }
    /// One learned-inputs record.
    fn get_learned(&self, id: &str) -> Result<Option<Vec<u8>>>;
    /// Stores a learned-inputs record.
    fn put_learned(&self, id: &str, json: &[u8]) -> Result<()>;
}

/// Opens the remote at `url` (`insecure`: plain HTTP to a registry on this machine,
/// like `oci+http://`); `timeout` bounds every operation, `access` holds the
/// credentials its client may use.
pub fn open(
    url: &RemoteUrl,
    insecure: bool,
    timeout: Duration,
    access: &Access,
) -> Result<Box<dyn Remote>> {
    Ok(match url {
        RemoteUrl::Oci {
            location,
            plain_http,
        } => Box::new(OciRemote::new(
            location,
            insecure || *plain_http,
            timeout,
            access,
        )?),
        RemoteUrl::Dir(path) => Box::new(DirRemote::new(&path.to_string_lossy(), timeout)?),
        RemoteUrl::S3 { bucket, prefix } => {
            Box::new(S3Remote::new(bucket, prefix, insecure, timeout, access)?)
        }
    })
}

/// Checks `name` is safe as a file name and tag component (keys, digests, ids are).
pub(crate) fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 120
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::internal(format!(
            "invalid cache object name `{name}`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Duration::from_secs(1);
        let access = Access::default();
        let open = |url: &str| {
            RemoteUrl::parse(url, "test").and_then(|u| super::open(&u, false, t, &access))
        };
        assert!(open("oci://ghcr.io/org/cache").unwrap().describe() == "oci://ghcr.io/org/cache");
        assert!(open("file:///tmp/x").unwrap().describe() == "file:///tmp/x");
        assert!(
            open("oci+http://registry.example.com/c").is_err(),
            "plain HTTP off loopback"
        );
        assert!(
            open("oci+http://127.attacker.example:5000/c").is_err(),
            "a name starting with 127. is not loopback"
        );
        assert!(open("oci://ghcr.io/org/cache:tag").is_err());
        assert_eq!(open("s3://b/p").unwrap().describe(), "s3://b/p");
        assert!(open("s3:///p").is_err());
        assert!(open("ftp://x").is_err());
    }
}
