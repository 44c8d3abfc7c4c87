//! kiln's own sccache server for one build.
//!
//! sccache compiles cache misses in a server process. Left to itself, the first
//! `sccache` call starts a daemon that outlives the build, is not kiln's descendant
//! (so the memory sampler and CPU accounting miss every compiler it runs), and may be
//! another sccache version whose protocol the wrapper doesn't speak ("error reading
//! compile response from server"). kiln instead runs a server of the wrapper's own
//! version in the foreground, as its child, on a private port, for this build only;
//! and tells the wrapper to compile locally if the server fails, so a broken server
//! never fails a build.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What kiln's sccache server did in one build.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SccacheCounts {
    /// Cache hits.
    pub hits: u64,
    /// Cache misses.
    pub misses: u64,
    /// Compiles run on distributed build servers.
    pub remote: u64,
    /// Compiles sent to a build server that failed there and ran here.
    pub fell_back: u64,
    /// Compiles that ran here by rule (bin crates and links; all without a farm).
    pub local: u64,
}

/// A running private server.
pub(crate) struct SccacheServer {
    exe: PathBuf,
    port: u16,
    child: Child,
}

impl SccacheServer {
    /// Starts `exe` as a foreground server on a free loopback port; `Err` says why
    /// not (the build then runs without sccache).
    /// `credentials` are the storage credentials its backend needs (see
    /// [`kiln_config::Access::sccache_server_credentials`]).
    pub(crate) fn start(
        exe: &Path,
        credentials: &[(&'static str, String)],
        configure: impl FnOnce(&mut Command),
    ) -> Result<Self, String> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let mut cmd = Command::new(exe);
        cmd.env("SCCACHE_START_SERVER", "1")
            .env("SCCACHE_NO_DAEMON", "1")
            .env("SCCACHE_SERVER_PORT", port.to_string())
            // Killed at the end of the build; never gone in the middle of a long link.
            .env("SCCACHE_IDLE_TIMEOUT", "0")
            // The one child that gets storage credentials: its backend needs them;
            // the compilers it runs get the wrapper's (sealed) environment.
            .envs(credentials.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        configure(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("can't start {}: {e}", exe.display()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("the sccache server exited at start ({status})"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the sccache server did not start listening within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self {
            exe: exe.to_path_buf(),
            port,
            child,
        })
    }

    /// The loopback port the server listens on (cargo's wrapper calls go there).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// This server's counts: this build's, since the server is its own.
    pub(crate) fn stats(&self) -> Option<SccacheCounts> {
        let out = Command::new(&self.exe)
            .args(["--show-stats", "--stats-format", "json"])
            .env("SCCACHE_SERVER_PORT", self.port.to_string())
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        // sccache counts some things per compiler or per server: an object of numbers.
        let total = |m: &serde_json::Value| -> u64 {
            m.as_object()
                .map_or(0, |m| m.values().filter_map(|x| x.as_u64()).sum())
        };
        let s = &v["stats"];
        let sum = |k: &str| total(&s[k]["counts"]);
        let remote = total(&s["dist_compiles"]);
        let fell_back = s["dist_errors"].as_u64().unwrap_or(0);
        // Compilations (cache misses, wherever they ran), and the calls sccache hands
        // back to run here (bin crates with their link, cargo's probes).
        let compiled = s["compilations"].as_u64().unwrap_or(0)
            + s["requests_not_cacheable"].as_u64().unwrap_or(0);
        Some(SccacheCounts {
            hits: sum("cache_hits"),
            misses: sum("cache_misses"),
            remote,
            fell_back,
            local: compiled.saturating_sub(remote + fell_back),
        })
    }
}

impl SccacheServer {
    /// CPU seconds of the server and the compilers it ran and reaped so far.
    pub(crate) fn cpu_secs(&self) -> f64 {
        kiln_metrics::host::host()
            .cpu_secs(self.child.id())
            .unwrap_or(0.0)
    }
}

impl Drop for SccacheServer {
    fn drop(&mut self) {
        let stopped = Command::new(&self.exe)
            .arg("--stop-server")
            .env("SCCACHE_SERVER_PORT", self.port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// What a build farm's scheduler answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DistStatus {
    /// It answered and has build servers.
    Ready {
        /// Build servers.
        servers: u64,
        /// Their cores.
        cores: u64,
    },
    /// Nothing will compile remotely; why.
    Unavailable(String),
}

/// A build farm kiln's server can join: the scheduler, the client token, and where
/// sccache keeps the toolchain packages it uploads (made once per toolchain).
pub(crate) struct Farm<'a> {
    scheduler: &'a str,
    token: Option<&'a [u8]>,
    toolchains: PathBuf,
}

impl<'a> Farm<'a> {
    /// The farm `ws`'s settings name (`cache.dist.scheduler`), if any; its toolchain
    /// packages live in kiln's cache directory, so each is made once per machine.
    pub(crate) fn of(ws: &'a kiln_workspace::Workspace) -> Option<Self> {
        let settings = &ws.settings;
        Some(Farm {
            scheduler: settings.dist.value.as_ref()?.as_str(),
            token: settings.dist_token.as_ref().map(|t| t.expose()),
            toolchains: settings
                .cache_dir
                .value
                .clone()
                .unwrap_or_else(|| ws.target_dir.join("kiln"))
                .join("sccache-dist"),
        })
    }

    /// The scheduler's URL.
    pub(crate) fn scheduler(&self) -> &str {
        self.scheduler
    }
}

/// The sccache config file that makes a server a client of `farm`, in a fresh private
/// directory (0700; the file through kiln's secret-file writer, 0600): the caller
/// removes the directory once the server has read it, since it holds the token.
fn write_dist_config(farm: &Farm<'_>) -> Result<PathBuf, String> {
    let token = match farm.token {
        None => None,
        Some(t) => Some(
            std::str::from_utf8(t)
                .ok()
                .filter(|t| {
                    t.chars()
                        .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
                })
                .ok_or("KILN_SCCACHE_DIST_TOKEN holds characters a config file can't carry")?,
        ),
    };
    let toolchains = farm
        .toolchains
        .to_str()
        .ok_or("the cache directory is not UTF-8")?;
    if toolchains.contains(['"', '\\', '\n']) {
        return Err("the cache directory's path can't go into sccache's config".into());
    }
    std::fs::create_dir_all(&farm.toolchains)
        .map_err(|e| format!("can't create {toolchains}: {e}"))?;
    let dir = kiln_fs::temp_path(&std::env::temp_dir().join("kiln-sccache"));
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(&dir)
        .map_err(|e| format!("can't create a private directory: {e}"))?;
    let mut text = format!(
        "[dist]\nscheduler_url = \"{}\"\ntoolchains = []\ntoolchain_cache_size = {}\ncache_dir = \"{toolchains}\"\n",
        farm.scheduler,
        10u64 << 30
    );
    if let Some(t) = token {
        text.push_str(&format!(
            "\n[dist.auth]\ntype = \"token\"\ntoken = \"{t}\"\n"
        ));
    }
    let path = dir.join("sccache.conf");
    if let Err(e) = kiln_trust::write_secret_file(&path, &text) {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(format!("can't write sccache's config: {e}"));
    }
    Ok(path)
}

impl SccacheServer {
    /// Starts `exe` as a client of `farm` when the farm answers with build servers;
    /// otherwise a server that compiles here (so no compile waits on a scheduler that
    /// is gone), and why.
    pub(crate) fn start_in_farm(
        exe: &Path,
        credentials: &[(&'static str, String)],
        farm: &Farm<'_>,
    ) -> Result<(Self, DistStatus), String> {
        match Self::joined(exe, credentials, farm) {
            Ok((server, status)) => Ok((server, status)),
            Err(why) => Ok((
                Self::start(exe, credentials, |_| {})?,
                DistStatus::Unavailable(why),
            )),
        }
    }

    /// A server of `exe` that is a client of `farm`, with what the scheduler offers;
    /// `Err` says why the farm won't take compiles (the server is stopped then).
    fn joined(
        exe: &Path,
        credentials: &[(&'static str, String)],
        farm: &Farm<'_>,
    ) -> Result<(Self, DistStatus), String> {
        let config = write_dist_config(farm)?;
        let started = Self::start(exe, credentials, |cmd| {
            cmd.env("SCCACHE_CONF", &config);
        });
        // sccache may read its dist settings only when its dist client is first
        // asked for (a loaded machine showed `Disabled` when the file was gone by
        // then): the file, and the token with it, goes once the status is known.
        let forget = || {
            if let Some(dir) = config.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        };
        let server = started.inspect_err(|_| forget())?;
        let status = server.dist_status();
        forget();
        match status {
            DistStatus::Unavailable(why) => Err(why),
            ready => Ok((server, ready)),
        }
    }

    /// `sccache --dist-status` of this server: what its scheduler says.
    fn dist_status(&self) -> DistStatus {
        let out = Command::new(&self.exe)
            .arg("--dist-status")
            .env("SCCACHE_SERVER_PORT", self.port.to_string())
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        let out = match out {
            Ok(o) if o.status.success() => o.stdout,
            Ok(o) => {
                return DistStatus::Unavailable(format!(
                    "`sccache --dist-status` failed ({})",
                    o.status
                ))
            }
            Err(e) => return DistStatus::Unavailable(format!("can't run sccache: {e}")),
        };
        parse_dist_status(&out)
    }
}

/// sccache's `--dist-status` JSON: `{"SchedulerStatus": [url, {"num_servers", "num_cpus", ..}]}`,
/// `{"NotConnected": [url, why]}` or `{"Disabled": why}`. What it says of a failure
/// is shortened and made printable: it comes from the network.
fn parse_dist_status(json: &[u8]) -> DistStatus {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(json) else {
        return DistStatus::Unavailable(
            "sccache's answer isn't JSON (an sccache without dist support?)".into(),
        );
    };
    if let Some(status) = v.get("SchedulerStatus").and_then(|s| s.get(1)) {
        let servers = status["num_servers"].as_u64().unwrap_or(0);
        let cores = status["num_cpus"].as_u64().unwrap_or(0);
        if servers == 0 || cores == 0 {
            return DistStatus::Unavailable("the scheduler has no build server".into());
        }
        return DistStatus::Ready { servers, cores };
    }
    let why = v
        .get("NotConnected")
        .and_then(|n| n.get(1))
        .or_else(|| v.get("Disabled"))
        .and_then(|w| w.as_str())
        .unwrap_or("the scheduler didn't answer");
    DistStatus::Unavailable(kiln_diagnostics::printable(why, 200))
}

/// Whether the farm `ws` names answers through a throwaway server of `exe`, and what it
/// offers (for `kiln setup --check`); `None` without one.
pub fn dist_status(exe: &Path, ws: &kiln_workspace::Workspace) -> Option<DistStatus> {
    let farm = Farm::of(ws)?;
    Some(match SccacheServer::joined(exe, &[], &farm) {
        Ok((_server, status)) => status,
        Err(why) => DistStatus::Unavailable(why),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dist_status_answers_are_read_and_failures_stay_printable() {
        let ready = br#"{"SchedulerStatus":["http://127.0.0.1:10600/",{"num_servers":2,"num_cpus":16,"in_progress":0}]}"#;
        assert_eq!(
            parse_dist_status(ready),
            DistStatus::Ready {
                servers: 2,
                cores: 16
            }
        );
        let empty =
            br#"{"SchedulerStatus":["http://s/",{"num_servers":0,"num_cpus":0,"in_progress":0}]}"#;
        assert!(
            matches!(parse_dist_status(empty), DistStatus::Unavailable(w) if w.contains("no build server"))
        );
        let down = br#"{"NotConnected":["http://s/","error sending request\u001b[31m"]}"#;
        let DistStatus::Unavailable(why) = parse_dist_status(down) else {
            panic!()
        };
        assert!(
            why.starts_with("error sending request") && !why.contains('\u{1b}'),
            "{why}"
        );
        assert!(matches!(
            parse_dist_status(b"not json"),
            DistStatus::Unavailable(_)
        ));
    }
}
