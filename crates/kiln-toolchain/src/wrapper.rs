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

/// Flag groups to drop per target triple: `{"aarch64-unknown-linux-musl": [["-C",
/// "link-arg=-fuse-ld=lld"]]}`.
pub type Drops = BTreeMap<String, Vec<Vec<String>>>;

/// The environment that makes the current kiln executable cargo's rustc wrapper for
/// `drops`, chaining to `next` (sccache) when given. `None` when kiln can't name its
/// own executable.
pub fn wrapper_env(drops: &Drops, next: Option<&std::path::Path>) -> Option<Vec<(String, String)>> {
    let exe = std::env::current_exe().ok()?;
    let mut env = vec![
        ("RUSTC_WRAPPER".to_string(), exe.display().to_string()),
        (WRAP_VAR.to_string(), "1".to_string()),
        (
            DROP_VAR.to_string(),
            serde_json::to_string(drops).expect("drops serialize"),
        ),
    ];
    if let Some(n) = next {
        env.push((NEXT_VAR.to_string(), n.display().to_string()));
    }
    Some(env)
}

/// `rustc`'s arguments without the flag groups dropped for its `--target`.
pub fn filter_args(args: &[OsString], drops: &Drops) -> Vec<OsString> {
    let target = args.iter().enumerate().find_map(|(i, a)| {
        let a = a.to_str()?;
        if a == "--target" {
            args.get(i + 1)?.to_str().map(String::from)
        } else {
            a.strip_prefix("--target=").map(String::from)
        }
    });
    let Some(groups) = target.and_then(|t| drops.get(&t)) else {
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
    let filtered = filter_args(&args, &drops);
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
