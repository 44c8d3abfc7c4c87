//! Fault injection for the reliability tests: an HTTP proxy that breaks chosen
//! answers of a real server (a registry, moto), kills at a chosen write step with
//! strace, and a size-limited tmpfs.

#![allow(unreachable_pub)]

use crate::common::{self, Run};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the proxy does to a matching answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Never answers (the connection stays open).
    Stall,
    /// Closes the connection with a reset instead of answering.
    Reset,
    /// Answers 500 with no body.
    ServerError,
    /// Sends the head and half the body, then closes.
    Truncate,
    /// Sends the whole answer with every body byte flipped.
    Corrupt,
    /// Sends the answer a few bytes at a time, slower than any deadline allows.
    Trickle,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::Stall,
        Fault::Reset,
        Fault::ServerError,
        Fault::Truncate,
        Fault::Corrupt,
        Fault::Trickle,
    ];
}

/// A proxy on 127.0.0.1 in front of `upstream` (`127.0.0.1:port`): requests whose
/// method and path match `matches` get `fault`, every other one is passed on. One
/// request per connection (it answers `Connection: close`).
pub struct FaultProxy {
    pub port: u16,
    /// Requests the fault was applied to.
    pub faulted: Arc<AtomicUsize>,
}

impl FaultProxy {
    pub fn start(upstream: String, fault: Fault, matches: fn(&str, &str) -> bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let faulted = Arc::new(AtomicUsize::new(0));
        let count = faulted.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (upstream, count) = (upstream.clone(), count.clone());
                std::thread::spawn(move || serve(conn, &upstream, fault, matches, &count));
            }
        });
        FaultProxy { port, faulted }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn serve(
    client: TcpStream,
    upstream: &str,
    fault: Fault,
    matches: fn(&str, &str) -> bool,
    count: &AtomicUsize,
) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut head = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("connection:") {
            continue;
        }
        if line == "\r\n" {
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            break;
        }
        head.extend_from_slice(line.as_bytes());
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let request_line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let mut parts = request_line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let faulty = matches(method, path);
    let mut client = client;
    if faulty {
        count.fetch_add(1, Ordering::SeqCst);
        match fault {
            Fault::Stall => {
                std::thread::sleep(Duration::from_secs(600));
                return;
            }
            Fault::Reset => {
                reset(&client);
                return;
            }
            Fault::ServerError => {
                let _ = client.write_all(
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                return;
            }
            _ => {}
        }
    }
    let Ok(mut up) = TcpStream::connect(upstream) else {
        return;
    };
    let _ = up.write_all(&head);
    let _ = up.write_all(&body);
    let mut answer = Vec::new();
    let _ = up.read_to_end(&mut answer);
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(answer.len(), |i| i + 4);
    let (head, body) = answer.split_at(split);
    if !faulty {
        let _ = client.write_all(&answer);
        return;
    }
    match fault {
        Fault::Truncate => {
            let _ = client.write_all(head);
            let _ = client.write_all(&body[..body.len() / 2]);
            let _ = client.flush();
            reset(&client);
        }
        Fault::Corrupt => {
            let flipped: Vec<u8> = body.iter().map(|b| !b).collect();
            let _ = client.write_all(head);
            let _ = client.write_all(&flipped);
        }
        Fault::Trickle => {
            let _ = client.write_all(head);
            for chunk in body.chunks(16) {
                if client.write_all(chunk).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        _ => unreachable!(),
    }
}

/// Closes with a TCP reset (linger 0), not an orderly end of stream.
fn reset(conn: &TcpStream) {
    let fd = std::os::fd::AsRawFd::as_raw_fd(conn);
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = conn.shutdown(Shutdown::Both);
}

/// The `--message-format json` events of a run's stdout.
pub fn events(run: &Run) -> Vec<serde_json::Value> {
    run.stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The warnings among a run's events.
pub fn warnings(run: &Run) -> Vec<serde_json::Value> {
    events(run)
        .into_iter()
        .filter(|e| e["reason"] == "warning")
        .collect()
}

/// A write step kiln took: a rename into, or a sync of, `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteStep {
    pub syscall: String,
    pub path: String,
    /// Which call of this syscall by kiln's main thread it is (from 1): strace's
    /// `when=`. (Not `-P path`: strace 6.1 matches only a `rename`'s source, a
    /// temporary name that changes from run to run.)
    pub nth: usize,
    /// Counted per thread of kiln's (for writes that run in parallel): the kill
    /// comes at the first thread to reach its `nth` call.
    pub threads: bool,
}

/// The renames and syncs of kiln's main thread (where the store, cache and layout
/// writes happen) on paths under any of `under`, in order.
pub fn write_steps(cmd: Command, under: &[&Path]) -> Vec<WriteStep> {
    steps(cmd, under, false)
}

/// [`write_steps`] for writes kiln makes from several threads (uploads): each
/// `nth` call any thread makes, once.
pub fn write_steps_in_threads(cmd: Command, under: &[&Path]) -> Vec<WriteStep> {
    let mut out: Vec<WriteStep> = Vec::new();
    for s in steps(cmd, under, true) {
        if !out.iter().any(|o| o.syscall == s.syscall && o.nth == s.nth) {
            out.push(s);
        }
    }
    out
}

fn steps(cmd: Command, under: &[&Path], threads: bool) -> Vec<WriteStep> {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut args = vec![
        "-y",
        "-qq",
        "-e",
        "signal=none",
        "-e",
        "trace=rename,renameat,renameat2,fsync,fdatasync",
        "-o",
        log.path().to_str().unwrap(),
    ];
    if threads {
        args.push("-f");
    }
    Run::from(strace(cmd, &args).output().unwrap()).success();
    let text = std::fs::read_to_string(log.path()).unwrap();
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut steps = Vec::new();
    for line in text.lines() {
        // With -f every line starts with the thread's id.
        let (tid, call) = match threads {
            true => line.split_once(' ').unwrap_or(("", line)),
            false => ("", line),
        };
        let Some((syscall, path)) = step_of(call) else {
            continue;
        };
        let nth = counts
            .entry((tid.to_string(), syscall.clone()))
            .or_default();
        *nth += 1;
        if under.iter().any(|u| Path::new(&path).starts_with(u)) {
            steps.push(WriteStep {
                syscall,
                path,
                nth: *nth,
                threads,
            });
        }
    }
    steps
}

/// `("renameat2", "/dest")` from a strace line: the destination of a rename, the
/// file of a sync.
fn step_of(line: &str) -> Option<(String, String)> {
    let call = line.trim_start();
    let (syscall, args) = call.split_once('(')?;
    let quoted: Vec<&str> = args.split('"').skip(1).step_by(2).collect();
    let path = match syscall {
        "rename" => quoted.get(1)?.to_string(),
        "renameat" | "renameat2" => quoted.get(1)?.to_string(),
        "fsync" | "fdatasync" => {
            let start = args.find('<')? + 1;
            args[start..].split('>').next()?.to_string()
        }
        _ => return None,
    };
    Some((syscall.to_string(), path))
}

/// `cmd` run under strace, killed with SIGKILL at `step` (the syscall is not made).
pub fn killed_at(cmd: Command, step: &WriteStep) -> Run {
    let trace = format!("trace={}", step.syscall);
    let inject = format!("inject={}:signal=KILL:when={}", step.syscall, step.nth);
    let mut args = vec!["-qq", "-o", "/dev/null", "-e", &trace, "-e", &inject];
    if step.threads {
        args.push("-f");
    }
    Run::from(strace(cmd, &args).output().unwrap())
}

/// `cmd` as strace's child with strace's `args`.
fn strace(cmd: Command, args: &[&str]) -> Command {
    let mut traced = Command::new("strace");
    traced.args(args).arg("--").arg(cmd.get_program());
    traced.args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        traced.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => traced.env(k, v),
            None => traced.env_remove(k),
        };
    }
    traced
}

/// Copies of some directories, put back before every run of a kill sweep: each
/// run starts from the state the steps were listed in.
pub struct Saved {
    dirs: Vec<(PathBuf, PathBuf)>,
    _copies: tempfile::TempDir,
}

impl Saved {
    pub fn new(dirs: &[PathBuf]) -> Self {
        let copies = tempfile::tempdir().unwrap();
        let dirs = dirs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let copy = copies.path().join(i.to_string());
                if d.exists() {
                    common::copy_tree(d, &copy, &[]);
                }
                (d.clone(), copy)
            })
            .collect();
        Saved {
            dirs,
            _copies: copies,
        }
    }

    pub fn reset(&self) {
        for (dir, copy) in &self.dirs {
            if dir.exists() {
                std::fs::remove_dir_all(dir).unwrap();
            }
            if copy.exists() {
                common::copy_tree(copy, dir, &[]);
            }
        }
    }
}

/// Picks `n` of `steps`, spread from the first to the last: what the CI test
/// samples (`bench/faults.sh` runs them all).
pub fn sample<T: Clone>(steps: &[T], n: usize) -> Vec<T> {
    let chosen: Vec<T> = if std::env::var_os("KILN_FAULTS_ALL").is_some() || steps.len() <= n {
        steps.to_vec()
    } else {
        (0..n)
            .map(|i| steps[i * (steps.len() - 1) / (n - 1).max(1)].clone())
            .collect()
    };
    eprintln!("kill points: {} found, {} tried", steps.len(), chosen.len());
    chosen
}

/// A tmpfs of `size` (`"2M"`) mounted at a new directory; unmounted on drop.
pub struct Tmpfs {
    pub dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Fills the filesystem, leaving about `left` bytes free.
    pub fn fill(&self, left: u64) {
        let filler = self.dir.path().join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let mut todo = fs_free(self.dir.path()).saturating_sub(left);
        let chunk = vec![7u8; 64 << 10];
        while todo > 0 {
            let n = todo.min(chunk.len() as u64) as usize;
            if f.write_all(&chunk[..n]).is_err() {
                break;
            }
            todo -= n as u64;
        }
        let _ = f.sync_all();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Free bytes on the filesystem of `dir`.
pub fn fs_free(dir: &Path) -> u64 {
    let out = common::tool("df", &["-B1", "--output=avail", dir.to_str().unwrap()], dir);
    out.lines().nth(1).unwrap().trim().parse().unwrap()
}
