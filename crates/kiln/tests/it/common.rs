//! Test harness: the real `kiln` binary run on copies of `examples/chronik` in temp
//! dirs. The example is built once per test binary; every other copy starts from a
//! copy of that build's target dir (compile time is scarce), with its own kiln cache.

#![allow(dead_code, unreachable_pub)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The kiln repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// A scratch copy of a workspace, deleted on drop.
pub struct TempWorkspace {
    pub dir: tempfile::TempDir,
}

impl TempWorkspace {
    /// A fresh copy of `examples/chronik`, with a copy of a target dir in which it
    /// was built once (so dependencies are compiled) but no artifacts and no cache.
    ///
    /// Each copy has its own target dir: cargo's freshness checks are by mtime and
    /// would confuse two checkouts of the same packages sharing one.
    pub fn chronik() -> Self {
        let ws = Self::empty();
        copy_tree(
            &built_example().root,
            ws.root(),
            &["artifacts", ".kiln-test-cache"],
        );
        // The copied target dir now belongs to this copy alone.
        std::fs::remove_dir_all(ws.path("target/kiln/owners")).unwrap();
        ws
    }

    /// The example without its C code: only chronik-cli and the libraries it uses,
    /// so the workspace is pure Rust (plain cargo + rust-lld, no zig).
    pub fn pure_rust_chronik() -> Self {
        let ws = Self::chronik();
        for c in ["chronik-server", "chronik-storage", "chronik-checksum"] {
            std::fs::remove_dir_all(ws.path(&format!("crates/{c}"))).unwrap();
        }
        ws
    }

    /// A copy of `examples/chronik`'s sources only: no target dir, nothing built.
    pub fn chronik_sources() -> Self {
        let ws = Self::empty();
        copy_tree(
            &repo_root().join("examples/chronik"),
            ws.root(),
            &["target", "artifacts"],
        );
        ws
    }

    /// [`Self::chronik_sources`] built for linux/amd64 alone: for tests of what a
    /// cold build does that the target doesn't change (half the compiling).
    pub fn chronik_sources_amd64() -> Self {
        let ws = Self::chronik_sources();
        let manifest = ws.read("Cargo.toml");
        ws.write(
            "Cargo.toml",
            &format!("{manifest}\n[workspace.metadata.kiln]\ntargets = [\"amd64\"]\n"),
        );
        ws
    }

    /// A clone of `from`'s sources (no target dir, artifacts or cache) at another
    /// path, under another directory name: what a teammate or a CI runner has.
    pub fn relocated_clone(from: &TempWorkspace) -> (Self, PathBuf) {
        let ws = Self::empty();
        let root = ws.path("elsewhere/another-name");
        copy_tree(
            from.root(),
            &root,
            &["target", "artifacts", ".kiln-test-cache", "fresh-target"],
        );
        (ws, root)
    }

    /// An empty directory.
    pub fn empty() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("kiln-test-")
                .tempdir()
                .unwrap(),
        }
    }

    /// A copy of the shared, already built example, artifacts included.
    pub fn built_chronik() -> Self {
        let ws = Self::empty();
        copy_tree(&built_example().root, ws.root(), &[".kiln-test-cache"]);
        ws
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    /// `kiln <args>` run in this workspace, hermetically.
    pub fn kiln(&self, args: &[&str]) -> Run {
        let mut cmd = kiln_command(self.root());
        cmd.args(args);
        Run::from(cmd.output().expect("run kiln"))
    }
}

/// A `kiln` command with a hermetic environment: the workspace's own target dir, a
/// private kiln cache, no colors.
pub fn kiln_command(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.current_dir(cwd)
        .env_remove("CARGO_TARGET_DIR")
        .env("KILN_CACHE_DIR", cwd.join(".kiln-test-cache"))
        // Never the user's tools environment (`kiln setup`'s venv).
        .env("KILN_TOOLS_DIR", cwd.join(".kiln-test-tools"))
        .env("NO_COLOR", "1")
        // sccache's server and disk cache are per user: only the sccache tests use it,
        // each with a server and directory of its own.
        .env("KILN_SCCACHE", "off")
        // No "still compiling" lines on a slow or busy machine: output doesn't depend
        // on speed (the heartbeat test sets its own).
        .env("KILN_HEARTBEAT_SECS", "3600")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS");
    cmd
}

/// `kiln <args>` in `cwd` as another user on another machine would run it: another
/// `HOME` and `CARGO_HOME` (the toolchains stay where rustup has them), another
/// target dir, and the kiln cache at `cache`.
pub fn kiln_elsewhere(cwd: &Path, home: &Path, cache: &Path, args: &[&str]) -> Run {
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".rustup"));
    let mut cmd = kiln_command(cwd);
    cmd.args(args)
        .env("HOME", home.join("home"))
        .env("CARGO_HOME", home.join("cargo-home"))
        .env("RUSTUP_HOME", rustup_home)
        .env("CARGO_TARGET_DIR", home.join("other-target"))
        .env("KILN_CACHE_DIR", cache);
    Run::from(cmd.output().expect("run kiln"))
}

/// `kiln plan --message-format json` output as `{ "binary/arch": state }`.
pub fn plan_states(run: &Run) -> std::collections::BTreeMap<String, String> {
    run.success();
    let mut out = std::collections::BTreeMap::new();
    for line in run.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["reason"] == "plan-unit" {
            for arch in v["arches"].as_array().unwrap() {
                out.insert(
                    format!(
                        "{}/{}",
                        v["binary"].as_str().unwrap(),
                        arch.as_str().unwrap()
                    ),
                    v["state"].as_str().unwrap().to_string(),
                );
            }
        }
    }
    out
}

/// What a command did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn success(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn failure(&self, code: i32, needle: &str) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }
}

/// The example, built once per test binary with `--message-format json`.
pub struct BuiltExample {
    pub ws: TempWorkspace,
    pub root: PathBuf,
    pub events: Vec<serde_json::Value>,
}

pub fn built_example() -> &'static BuiltExample {
    static BUILT: OnceLock<BuiltExample> = OnceLock::new();
    BUILT.get_or_init(|| {
        let ws = TempWorkspace::chronik_sources();
        let run = ws.kiln(&["build", "--message-format", "json"]);
        run.success();
        let events = run
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("json event"))
            .collect();
        let root = ws.root().to_path_buf();
        BuiltExample { ws, root, events }
    })
}

/// Copies a directory tree, skipping top-level entries named in `skip`.
pub fn copy_tree(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let name = e.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let dest = to.join(&name);
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest, &[]);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
            // The original's mtime: cargo's freshness is by mtime, and a copied target
            // dir is only fresh when its outputs stay newer than the copied sources.
            let modified = e.metadata().unwrap().modified().unwrap();
            std::fs::File::options()
                .write(true)
                .open(&dest)
                .and_then(|f| f.set_modified(modified))
                .unwrap();
        }
    }
}

/// An image index's platform images (not the SBOMs and provenance it also lists).
pub fn images(index: &serde_json::Value) -> impl Iterator<Item = &serde_json::Value> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["artifactType"].is_null())
}

/// An image index's attachments: the entries that describe rather than run.
pub fn attachments(index: &serde_json::Value) -> impl Iterator<Item = &serde_json::Value> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| !m["artifactType"].is_null())
}

/// Every file (not directory) under `dir`, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Every file under `dir` with its content, for before/after comparisons.
pub fn snapshot_dir(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Output of a shell tool, which must succeed.
#[track_caller]
pub fn tool(program: &str, args: &[&str], cwd: &Path) -> String {
    let o = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| {
            panic!("`{program}` is needed by the tests (.ci/run installs it): {e}")
        });
    assert!(
        o.status.success(),
        "`{program} {args:?}` failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private registry on 127.0.0.1, optionally with htpasswd auth; killed on drop.
pub struct Registry {
    _dir: tempfile::TempDir,
    pub child: Child,
    pub port: u16,
}

impl Registry {
    pub fn start(auth: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, pass)) = auth {
            let line = tool("htpasswd", &["-Bbn", user, pass], dir.path());
            std::fs::write(dir.path().join("htpasswd"), line.trim()).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("`docker-registry` is needed by the tests (.ci/run installs it)");
        wait_for_port(port);
        Registry {
            _dir: dir,
            child,
            port,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether cargo wrote anything into `target` (kiln's own `target/kiln`, where the
/// build metrics go, doesn't count).
pub fn cargo_ran_in(target: &Path) -> bool {
    std::fs::read_dir(target)
        .map(|rd| rd.flatten().any(|e| e.file_name() != "kiln"))
        .unwrap_or(false)
}

/// `kiln cache keygen NAME --out <dir>/NAME.secret`: the secret key's path and the
/// public key printed on stdout.
pub fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let secret = dir.join(format!("{name}.secret"));
    let run = Run::from(
        kiln_command(dir)
            .args(["cache", "keygen", name, "--output"])
            .arg(&secret)
            .output()
            .unwrap(),
    );
    run.success();
    let public = run.stdout.trim().to_string();
    assert!(public.starts_with(&format!("{name}:")), "{public}");
    (secret, public)
}

/// Hex SHA-256, as kiln hashes environment values into keys.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where .ci/run keeps the test tools it installs outside the checkout (so a fresh
/// clone doesn't build them again): `KILN_CI_TOOLS`, else `~/.cache/kiln-ci`.
pub fn ci_tools() -> PathBuf {
    std::env::var_os("KILN_CI_TOOLS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|c| PathBuf::from(c).join("kiln-ci")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kiln-ci")))
        .expect("HOME or KILN_CI_TOOLS is set")
}

/// Every file under `dir` whose bytes contain `needle` (a secret that must not be there).
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let finder = memchr::memmem::Finder::new(needle.as_bytes());
    files_under(dir)
        .into_iter()
        // Regular files only: reading a FIFO would wait for ever.
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
        .filter(|p| std::fs::read(p).is_ok_and(|b| finder.find(&b).is_some()))
        .collect()
}

/// The program `tool` on this process's PATH.
pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}
