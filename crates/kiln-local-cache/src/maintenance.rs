//! `kiln cache stats | gc | clear`, and the build log they read.

use crate::LocalCache;
use kiln_diagnostics::{IoContext, Result};
use kiln_fs::{lock, write_atomic, LockMode, TMP_MARK};
use kiln_schema::CacheStats;

/// How old a temp file must be before `gc` takes it for a killed writer's leftover.
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(3600);
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;
use std::time::SystemTime;

/// What the remote cache did in one build, for the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteUse {
    /// Entries restored from the remote.
    pub hits: u64,
    /// Bytes downloaded.
    pub bytes_down: u64,
    /// Bytes uploaded.
    pub bytes_up: u64,
}

/// What `gc` removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GcReport {
    /// Entries removed.
    pub entries_removed: usize,
    /// Bytes of blobs freed.
    pub bytes_freed: u64,
    /// Bytes left.
    pub bytes_left: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct LogLine {
    time: u64,
    hits: u64,
    misses: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remote: Option<RemoteUse>,
}

/// A held cache lock: shared while building, exclusive for gc and clear.
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

impl LocalCache {
    /// Shared lock held by builds, so gc never removes a blob being restored.
    pub fn lock_shared(&self) -> Result<CacheLock> {
        let file = lock(&self.root.join(".gc.lock"), LockMode::Shared)?;
        Ok(CacheLock { _file: file })
    }

    fn lock_exclusive(&self) -> Result<CacheLock> {
        let file = lock(&self.root.join(".gc.lock"), LockMode::Exclusive)?;
        Ok(CacheLock { _file: file })
    }

    /// Appends one build's hit and miss counts (and the remote's part) to the log.
    pub fn record_build(&self, hits: u64, misses: u64, remote: Option<RemoteUse>) {
        let time = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let line = serde_json::to_string(&LogLine {
            time,
            hits,
            misses,
            remote,
        })
        .expect("log line");
        if let Ok(mut f) = File::options()
            .create(true)
            .append(true)
            .open(self.root.join("log.jsonl"))
        {
            let _ = writeln!(f, "{line}");
        }
    }

    /// Entry files with their blob and last use.
    fn entries(&self) -> Vec<(PathBuf, String, SystemTime)> {
        let mut out = Vec::new();
        for dir in kiln_fs::dirs_under(&self.root.join("entries")) {
            for e in fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = e.path();
                if !e.file_type().is_ok_and(|t| t.is_file()) {
                    continue;
                }
                if path.to_string_lossy().contains(TMP_MARK) {
                    continue;
                }
                let Ok(bytes) = fs::read(&path) else { continue };
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                    continue;
                };
                let used = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                out.push((
                    path,
                    v["sha256"].as_str().unwrap_or_default().to_string(),
                    used,
                ));
            }
        }
        out
    }

    fn blobs(&self) -> HashMap<String, (PathBuf, u64)> {
        let mut out = HashMap::new();
        for dir in kiln_fs::dirs_under(&self.root.join("blobs")) {
            for e in fs::read_dir(dir).into_iter().flatten().flatten() {
                if !e.file_type().is_ok_and(|t| t.is_file()) {
                    continue;
                }
                // Temp files are another process's write in progress, not blobs.
                if e.file_name().to_string_lossy().contains(TMP_MARK) {
                    continue;
                }
                let size = e.metadata().map_or(0, |m| m.len());
                out.insert(
                    e.file_name().to_string_lossy().into_owned(),
                    (e.path(), size),
                );
            }
        }
        out
    }

    /// Removes temp files left by killed writers: only those older than
    /// [`STALE_TEMP`], since a younger one may be a write in progress in another
    /// process that does not hold the cache lock.
    fn remove_stale_temp_files(&self) {
        for sub in ["blobs", "entries"] {
            for dir in kiln_fs::dirs_under(&self.root.join(sub)) {
                for e in fs::read_dir(dir).into_iter().flatten().flatten() {
                    let stale = e
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > STALE_TEMP);
                    if stale && e.file_name().to_string_lossy().contains(TMP_MARK) {
                        let _ = fs::remove_file(e.path());
                    }
                }
            }
        }
    }

    /// Counts entries, bytes and recent hit rate.
    pub fn stats(&self) -> CacheStats {
        let log = fs::read_to_string(self.root.join("log.jsonl")).unwrap_or_default();
        let lines: Vec<LogLine> = log
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let recent = &lines[lines.len().saturating_sub(50)..];
        CacheStats {
            root: self.root.display().to_string(),
            entries: self.entries().len(),
            bytes: self.blobs().values().map(|(_, s)| s).sum(),
            builds: lines.len(),
            recent_hits: recent.iter().map(|l| l.hits).sum(),
            recent_misses: recent.iter().map(|l| l.misses).sum(),
            recent_remote_hits: recent.iter().filter_map(|l| l.remote).map(|r| r.hits).sum(),
            recent_bytes_down: recent
                .iter()
                .filter_map(|l| l.remote)
                .map(|r| r.bytes_down)
                .sum(),
            recent_bytes_up: recent
                .iter()
                .filter_map(|l| l.remote)
                .map(|r| r.bytes_up)
                .sum(),
        }
    }

    /// Evicts least recently used entries until the blobs they keep fit in
    /// `max_bytes`, then removes unreferenced blobs and stale temp files.
    pub fn gc(&self, max_bytes: u64) -> Result<GcReport> {
        let _lock = self.lock_exclusive()?;
        let blobs = self.blobs();
        let mut entries = self.entries();
        entries.sort_by_key(|(_, _, used)| std::cmp::Reverse(*used));
        let mut kept_blobs = HashSet::new();
        let mut kept_bytes = 0u64;
        let mut report = GcReport::default();
        for (path, sha, _) in entries {
            let size = blobs.get(&sha).map_or(0, |(_, s)| *s);
            let new_blob = !kept_blobs.contains(&sha);
            if new_blob && kept_bytes + size > max_bytes {
                let _ = fs::remove_file(&path);
                report.entries_removed += 1;
                continue;
            }
            if new_blob {
                kept_bytes += size;
                kept_blobs.insert(sha);
            }
        }
        for (sha, (path, size)) in blobs {
            if !kept_blobs.contains(&sha) {
                let _ = fs::remove_file(path);
                report.bytes_freed += size;
            }
        }
        report.bytes_left = kept_bytes;
        self.remove_stale_temp_files();
        write_atomic(&self.root.join(".last-gc"), b"")?;
        Ok(report)
    }

    /// Removes everything in the cache.
    pub fn clear(&self) -> Result<()> {
        let _lock = self.lock_exclusive()?;
        for sub in ["blobs", "entries", "latest", "learned"] {
            let d = self.root.join(sub);
            if d.exists() {
                fs::remove_dir_all(&d).io_context("remove", &d)?;
            }
            fs::create_dir_all(&d).io_context("create", &d)?;
        }
        let _ = fs::remove_file(self.root.join("log.jsonl"));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::LocalCache;
    use std::time::{Duration, SystemTime};

    #[test]
    fn gc_leaves_a_write_in_progress_alone_and_removes_stale_leftovers() {
        let d = tempfile::tempdir().unwrap();
        let cache = LocalCache::open(Some(d.path().to_path_buf())).unwrap();
        let dir = cache.root().join("blobs/ab");
        std::fs::create_dir_all(&dir).unwrap();
        let tmp = kiln_fs::temp_path(&dir.join("ab".repeat(32)));
        std::fs::write(&tmp, b"half a blob").unwrap();
        cache.gc(u64::MAX).unwrap();
        assert!(
            tmp.is_file(),
            "another process's write in progress was removed"
        );
        let f = std::fs::File::options().append(true).open(&tmp).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(7200))
            .unwrap();
        cache.gc(u64::MAX).unwrap();
        assert!(!tmp.exists(), "a killed writer's leftover stays");
    }
}
