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

    /// (hits, misses) of this server: this build's, since the server is its own.
    pub(crate) fn stats(&self) -> Option<(u64, u64)> {
        let out = Command::new(&self.exe)
            .args(["--show-stats", "--stats-format", "json"])
            .env("SCCACHE_SERVER_PORT", self.port.to_string())
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let sum = |k: &str| -> u64 {
            v["stats"][k]["counts"]
                .as_object()
                .map_or(0, |m| m.values().filter_map(|x| x.as_u64()).sum())
        };
        Some((sum("cache_hits"), sum("cache_misses")))
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
