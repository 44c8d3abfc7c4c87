//! kiln as cargo's `RUSTC_WRAPPER`: per-target rustflags fixes in one invocation.
//!
//! `CARGO_ENCODED_RUSTFLAGS` replaces the flags of every target of an invocation, so
//! targets whose flags kiln must change differently (`target-cpu=x86-64-v2` on one,
//! `generic` on the other, both next to a `-fuse-ld=lld` kiln must drop) used to need
//! an invocation each, compiling every host crate twice, one after the other. Cargo
//! can't take per-target replacements either (`--config` arrays are appended to the
//! file's). So kiln leaves the user's flags to cargo and removes, per `--target`, the
//! exact flag groups it would drop, as the wrapper rustc runs under; everything else
//! (host crates, `-vV`, other targets) passes through untouched.

use std::collections::BTreeMap;
use std::ffi::OsString;

/// Set in cargo's environment when kiln is the wrapper.
pub const WRAP_VAR: &str = "KILN_WRAP_RUSTC";
/// Per target triple, the flag groups to drop (JSON).
pub const DROP_VAR: &str = "KILN_RUSTFLAGS_DROP";
/// The wrapper to run next (sccache), if any.
pub const NEXT_VAR: &str = "KILN_NEXT_WRAPPER";
/// A native library kiln provisions while cargo runs: `<gate path>` whose `.done` or
/// `.failed` sibling appears when provisioning ends.
pub const GATE_VAR: &str = "KILN_NATIVE_GATE";
/// The `-sys` packages (comma-separated) whose build scripts wait for the gate.
pub const GATED_VAR: &str = "KILN_NATIVE_GATED";

/// The directory of what kiln links into binaries, once `<dir>/ready` exists:
/// `<dir>/<triple>/<bin>.o` (the audit section) and the archive
/// `<dir>/<triple>/<bin>.alloc/lib`[`ALLOCATOR_LIB`]`.a` (the allocator replacing the
/// libc's `malloc`).
pub const LINK_OBJECTS_VAR: &str = "KILN_LINK_OBJECTS";

/// The static library name of the allocator kiln links in. It goes in whole and
/// before the libc on the link line (`-l static:+whole-archive`): a `-C link-arg`
/// comes after `-lc`, where lld has already taken musl's malloc.
pub const ALLOCATOR_LIB: &str = "kiln_mimalloc";

/// The rustc arguments that link kiln's objects into the rustc run `args`, if it
/// links binary `bin` (cargo sets `CARGO_BIN_NAME` then) for a target that has some
/// under `dir`.
fn link_args(args: &[OsString], bin: &str, dir: &std::path::Path) -> Vec<OsString> {
    let is_bin = args
        .windows(2)
        .any(|w| w[0] == "--crate-type" && w[1] == "bin");
    if !is_bin || bin.is_empty() {
        return Vec::new();
    }
    let Some(target) = target_of(args) else {
        return Vec::new();
    };
    // Written right after kiln's analysis, long before cargo links anything; the
    // wait is bounded all the same.
    let ready = dir.join("ready");
    for _ in 0..6000 {
        if ready.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut out = Vec::new();
    let audit = dir.join(&target).join(format!("{bin}.o"));
    if audit.is_file() {
        let mut arg = OsString::from("link-arg=");
        arg.push(audit.as_os_str());
        out.extend([OsString::from("-C"), arg]);
    }
    let alloc = dir.join(&target).join(format!("{bin}.alloc"));
    if alloc.join(format!("lib{ALLOCATOR_LIB}.a")).is_file() {
        let mut search = OsString::from("native=");
        search.push(alloc.as_os_str());
        out.extend([
            OsString::from("-L"),
            search,
            OsString::from("-l"),
            OsString::from(format!("static:+whole-archive={ALLOCATOR_LIB}")),
        ]);
    }
    out
}

/// The `--target` of a rustc run.
fn target_of(args: &[OsString]) -> Option<String> {
    args.iter().enumerate().find_map(|(i, a)| {
        let a = a.to_str()?;
        if a == "--target" {
            args.get(i + 1)?.to_str().map(String::from)
        } else {
            a.strip_prefix("--target=").map(String::from)
        }
    })
}

/// Whether the rustc run `args` (for package `package`) compiles a build script of
/// one of the `gated` packages: the step that must wait for their native library, as
/// the script runs right after it is compiled. Everything else cargo compiles in the
/// meantime.
pub fn waits_for_gate(args: &[OsString], package: &str, gated: &str) -> bool {
    gated.split(',').any(|g| g == package)
        && args.windows(2).any(|w| {
            w[0] == "--crate-name"
                && w[1]
                    .to_str()
                    .is_some_and(|n| n.starts_with("build_script_"))
        })
}

/// Waits until provisioning behind `gate` ends: `Err` when it failed.
fn wait_for_gate(gate: &std::path::Path) -> Result<(), ()> {
    let sibling = |ext: &str| {
        let mut p = gate.as_os_str().to_owned();
        p.push(ext);
        std::path::PathBuf::from(p)
    };
    let (done, failed) = (sibling(".done"), sibling(".failed"));
    loop {
        if done.exists() {
            return Ok(());
        }
        if failed.exists() {
            return Err(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Flag groups to drop per target triple: `{"aarch64-unknown-linux-musl": [["-C",
/// "link-arg=-fuse-ld=lld"]]}`.
pub type Drops = BTreeMap<String, Vec<Vec<String>>>;

/// The environment that makes the current kiln executable cargo's rustc wrapper for
/// `drops`, chaining to `next` (sccache) when given. `None` when kiln can't name its
/// own executable.
pub fn wrapper_env(drops: &Drops, next: Option<&std::path::Path>) -> Option<Vec<(String, String)>> {
    let mut env = base_env(next)?;
    env.push((
        DROP_VAR.to_string(),
        serde_json::to_string(drops).expect("drops serialize"),
    ));
    Some(env)
}

/// kiln as the wrapper without any flag drops of its own: what the native gate and
/// the audit objects add on top of an invocation, whose own drops (if any) stay.
pub fn base_env(next: Option<&std::path::Path>) -> Option<Vec<(String, String)>> {
    let exe = std::env::current_exe().ok()?;
    let mut env = vec![
        ("RUSTC_WRAPPER".to_string(), exe.display().to_string()),
        (WRAP_VAR.to_string(), "1".to_string()),
    ];
    if let Some(n) = next {
        env.push((NEXT_VAR.to_string(), n.display().to_string()));
    }
    Some(env)
}

/// `rustc`'s arguments without the flag groups dropped for its `--target`.
pub fn filter_args(args: &[OsString], drops: &Drops) -> Vec<OsString> {
    let Some(groups) = target_of(args).and_then(|t| drops.get(&t)) else {
        return args.to_vec();
    };
    let mut out = Vec::with_capacity(args.len());
    let mut i = 0;
    'outer: while i < args.len() {
        for g in groups.iter().filter(|g| !g.is_empty()) {
            let matches = g.len() <= args.len() - i
                && g.iter()
                    .zip(&args[i..])
                    .all(|(want, have)| have.to_str() == Some(want.as_str()));
            if matches {
                i += g.len();
                continue 'outer;
            }
        }
        out.push(args[i].clone());
        i += 1;
    }
    out
}

/// When this process is cargo's rustc wrapper (kiln set [`WRAP_VAR`]), runs rustc (or
/// the next wrapper) with the fixed arguments and never returns; otherwise `None`.
pub fn run_if_wrapping() -> Option<std::process::ExitCode> {
    std::env::var_os(WRAP_VAR)?;
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.is_empty() {
        return None;
    }
    let drops: Drops = std::env::var(DROP_VAR)
        .ok()
        .and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or_default();
    if let (Some(gate), Some(gated)) = (std::env::var_os(GATE_VAR), std::env::var(GATED_VAR).ok()) {
        let package = std::env::var("CARGO_PKG_NAME").unwrap_or_default();
        if waits_for_gate(&args, &package, &gated)
            && wait_for_gate(std::path::Path::new(&gate)).is_err()
        {
            eprintln!("kiln (as rustc wrapper): the native library {package} links could not be built; kiln reports why");
            return Some(std::process::ExitCode::from(1));
        }
    }
    let mut filtered = filter_args(&args, &drops);
    if let Some(dir) = std::env::var_os(LINK_OBJECTS_VAR) {
        let bin = std::env::var("CARGO_BIN_NAME").unwrap_or_default();
        filtered.extend(link_args(&args, &bin, std::path::Path::new(&dir)));
    }
    // The next wrapper (sccache) takes rustc as its first argument; else rustc runs.
    let (program, rest) = match std::env::var_os(NEXT_VAR).filter(|n| !n.is_empty()) {
        Some(next) => (next, &filtered[..]),
        None => (filtered[0].clone(), &filtered[1..]),
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(rest);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let e = cmd.exec();
        eprintln!("kiln (as rustc wrapper): can't run rustc: {e}");
        Some(std::process::ExitCode::from(101))
    }
    #[cfg(not(unix))]
    {
        let code = cmd.status().ok().and_then(|s| s.code()).unwrap_or(101);
        Some(std::process::ExitCode::from(
            u8::try_from(code).unwrap_or(101),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_gets_its_link_objects_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let t = "aarch64-unknown-linux-musl";
        std::fs::create_dir_all(dir.path().join(t)).unwrap();
        std::fs::write(dir.path().join(t).join("app.o"), b"obj").unwrap();
        std::fs::create_dir_all(dir.path().join(t).join("app.alloc")).unwrap();
        std::fs::write(
            dir.path().join(t).join("app.alloc/libkiln_mimalloc.a"),
            b"!<arch>\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("ready"), b"").unwrap();
        let bin = os(&[
            "rustc",
            "--crate-name",
            "app",
            "--crate-type",
            "bin",
            "--target",
            t,
        ]);
        let lib = os(&[
            "rustc",
            "--crate-name",
            "app",
            "--crate-type",
            "lib",
            "--target",
            t,
        ]);
        let at = dir.path().join(t);
        assert_eq!(
            link_args(&bin, "app", dir.path()),
            os(&[
                "-C",
                &format!("link-arg={}", at.join("app.o").display()),
                "-L",
                &format!("native={}", at.join("app.alloc").display()),
                "-l",
                "static:+whole-archive=kiln_mimalloc",
            ])
        );
        assert!(link_args(&lib, "app", dir.path()).is_empty());
        assert!(link_args(&bin, "other", dir.path()).is_empty());
        assert!(link_args(&bin, "", dir.path()).is_empty());
    }

    #[test]
    fn only_a_gated_packages_build_script_waits() {
        let script = os(&[
            "rustc",
            "--crate-name",
            "build_script_main",
            "--edition=2021",
        ]);
        let lib = os(&["rustc", "--crate-name", "openssl_sys", "--edition=2021"]);
        assert!(waits_for_gate(&script, "openssl-sys", "openssl-sys"));
        assert!(waits_for_gate(
            &script,
            "openssl-sys",
            "zstd-sys,openssl-sys"
        ));
        assert!(
            !waits_for_gate(&lib, "openssl-sys", "openssl-sys"),
            "the script ran already"
        );
        assert!(!waits_for_gate(&script, "ring", "openssl-sys"));
        assert!(!waits_for_gate(
            &script,
            "openssl-sys-extras",
            "openssl-sys"
        ));
    }

    #[test]
    fn the_gate_opens_on_done_and_fails_on_failed() {
        let dir = tempfile::tempdir().unwrap();
        let gate = dir.path().join("gate");
        std::fs::write(dir.path().join("gate.done"), "").unwrap();
        assert_eq!(wait_for_gate(&gate), Ok(()));
        let other = dir.path().join("other");
        let opener = std::thread::spawn({
            let failed = dir.path().join("other.failed");
            move || {
                std::thread::sleep(std::time::Duration::from_millis(300));
                std::fs::write(failed, "").unwrap();
            }
        });
        assert_eq!(wait_for_gate(&other), Err(()));
        opener.join().unwrap();
    }

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn drops_only_the_groups_of_the_target_being_compiled() {
        let mut drops = Drops::new();
        drops.insert(
            "aarch64-unknown-linux-musl".into(),
            vec![
                vec!["-C".into(), "link-arg=-fuse-ld=lld".into()],
                vec!["-Ctarget-cpu=native".into()],
            ],
        );
        let arm = os(&[
            "rustc",
            "--crate-name",
            "x",
            "--target",
            "aarch64-unknown-linux-musl",
            "-C",
            "link-arg=-fuse-ld=lld",
            "-C",
            "opt-level=2",
            "-Ctarget-cpu=native",
            "-C",
            "link-arg=-fuse-ld=lld",
        ]);
        assert_eq!(
            filter_args(&arm, &drops),
            os(&[
                "rustc",
                "--crate-name",
                "x",
                "--target",
                "aarch64-unknown-linux-musl",
                "-C",
                "opt-level=2"
            ])
        );
        let amd = os(&[
            "rustc",
            "--target=x86_64-unknown-linux-musl",
            "-C",
            "link-arg=-fuse-ld=lld",
        ]);
        assert_eq!(
            filter_args(&amd, &drops),
            amd,
            "another target keeps its flags"
        );
        let host = os(&["rustc", "-C", "link-arg=-fuse-ld=lld", "build.rs"]);
        assert_eq!(
            filter_args(&host, &drops),
            host,
            "host crates have no --target"
        );
        // A flag's value alone is not a group.
        let value = os(&[
            "rustc",
            "--target",
            "aarch64-unknown-linux-musl",
            "-C",
            "opt-level=2",
            "link-arg=-fuse-ld=lld",
        ]);
        assert_eq!(filter_args(&value, &drops), value);
    }
}
