//! Bad input: each case exits non-zero with a message that names the fix, and leaves
//! the previous artifacts exactly as they were.

use crate::common;

use common::{snapshot_dir, TempWorkspace};

/// Runs `kiln build <args>` on a built copy after `prepare`, and checks that the
/// store did not change.
fn fails_untouched(
    prepare: impl FnOnce(&TempWorkspace),
    args: &[&str],
    code: i32,
    needle: &str,
) -> String {
    let ws = TempWorkspace::built_chronik();
    prepare(&ws);
    let before = snapshot_dir(&ws.path("artifacts"));
    assert_eq!(
        before.len(),
        19,
        "4 binaries, 12 sidecars (.sha256, .version, .spdx.json), checksums.json, the lock, the marker"
    );
    let mut full = vec!["build"];
    full.extend_from_slice(args);
    let run = ws.kiln(&full);
    run.failure(code, needle);
    assert!(
        run.stderr.contains("hint:"),
        "every error names a fix:\n{}",
        run.stderr
    );
    assert_eq!(
        snapshot_dir(&ws.path("artifacts")),
        before,
        "artifacts changed"
    );
    run.stderr.clone()
}

#[test]
fn not_a_cargo_workspace() {
    let ws = TempWorkspace::empty();
    let run = ws.kiln(&["build"]);
    run.failure(
        2,
        "is not in a Cargo workspace (no Cargo.toml here or in any parent directory)",
    );
    assert!(run.stderr.contains("--manifest-path"));
}

#[test]
fn workspace_without_binaries() {
    let ws = TempWorkspace::empty();
    ws.write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"lib\"]\nresolver = \"2\"\n",
    );
    ws.write(
        "lib/Cargo.toml",
        "[package]\nname = \"only-lib\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    ws.write("lib/src/lib.rs", "pub fn f() {}\n");
    ws.kiln(&["build"]).failure(2, "has no binary targets");
}

#[test]
fn unknown_target() {
    let err = fails_untouched(
        |_| {},
        &["--target", "sparc64"],
        2,
        "unknown target `sparc64`",
    );
    assert!(err.contains("arm64"));
}

#[test]
fn unknown_package() {
    let err = fails_untouched(
        |_| {},
        &["-p", "chronik-nope"],
        2,
        "package `chronik-nope` is not a member",
    );
    assert!(
        err.contains("chronik-cli, chronik-server"),
        "lists the valid packages:\n{err}"
    );
}

#[test]
fn a_package_without_binaries() {
    fails_untouched(
        |_| {},
        &["-p", "chronik-storage"],
        2,
        "package `chronik-storage` has no binary targets",
    );
}

#[test]
fn compile_error_in_one_crate() {
    let err = fails_untouched(
        |ws| {
            let lib = ws.read("crates/chronik-storage/src/lib.rs");
            ws.write(
                "crates/chronik-storage/src/lib.rs",
                &format!("{lib}\npub fn broken() -> u32 {{ \"no\" }}\n"),
            );
        },
        &[],
        1,
        "failed to build `chronik-server`",
    );
    assert!(
        err.contains("mismatched types"),
        "cargo's diagnostic is shown:\n{err}"
    );
}

#[test]
fn unwritable_artifact_dir() {
    let ws = TempWorkspace::built_chronik();
    ws.write("blocker", "a file where a directory should be\n");
    let out = ws.path("blocker/artifacts");
    // The old flag name still works, with a deprecation warning.
    let run = ws.kiln(&["build", "--target", "amd64", "--out", out.to_str().unwrap()]);
    run.failure(4, "is not writable");
    assert!(
        run.stderr
            .contains("`--out` is deprecated; use `--artifact-dir`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("pass `--artifact-dir DIR`"),
        "{}",
        run.stderr
    );
    assert_eq!(ws.read("blocker"), "a file where a directory should be\n");
}

#[test]
fn invalid_kiln_config() {
    let err = fails_untouched(
        |ws| {
            let m = ws.read("Cargo.toml");
            ws.write(
                "Cargo.toml",
                &format!("{m}\n[workspace.metadata.kiln]\ntarget = [\"arm64\"]\n"),
            );
        },
        &[],
        2,
        "invalid `[workspace.metadata.kiln]`",
    );
    assert!(
        err.contains("unknown field `target`") && err.contains("`targets`"),
        "{err}"
    );
}

#[test]
fn unknown_target_in_config() {
    fails_untouched(
        |ws| {
            let m = ws.read("Cargo.toml");
            ws.write(
                "Cargo.toml",
                &format!("{m}\n[workspace.metadata.kiln]\ntargets = [\"mips\"]\n"),
            );
        },
        &[],
        2,
        "unknown target `mips`",
    );
}

/// `kiln cache clear` in a workspace whose config is broken is an error: it must not
/// fall back to the default cache directory and clear that one.
#[test]
fn cache_commands_refuse_a_broken_config() {
    let ws = TempWorkspace::chronik_sources();
    let default_cache = ws.path("default-cache");
    std::fs::create_dir_all(default_cache.join("v1/entries")).unwrap();
    std::fs::write(default_cache.join("v1/entries/keep"), "x").unwrap();
    let m = ws.read("Cargo.toml");
    ws.write(
        "Cargo.toml",
        &format!("{m}\n[workspace.metadata.kiln]\ncache-dri = \"elsewhere\"\n"),
    );
    let mut cmd = common::kiln_command(ws.root());
    cmd.args(["cache", "clear"])
        .env("KILN_CACHE_DIR", &default_cache);
    let run = common::Run::from(cmd.output().unwrap());
    run.failure(2, "unknown field `cache-dri`");
    assert!(default_cache.join("v1/entries/keep").is_file());
}

/// A truncated ELF file in the store is a verification failure (exit 3), not a crash.
#[test]
fn a_truncated_elf_in_the_store_fails_verification() {
    let ws = TempWorkspace::built_chronik();
    std::fs::write(ws.path("artifacts/linux/amd64/chronik-cli"), b"\x7fELF\x02").unwrap();
    let run = ws.kiln(&["verify"]);
    run.failure(3, "chronik-cli");
}

/// A memory budget that can't run a compiler is refused with the form to use.
#[test]
fn a_fractional_memory_budget_is_refused() {
    let run = fails_untouched(|_| {}, &["--max-memory", "0.5"], 2, "invalid size `0.5`");
    assert!(run.contains("4GiB"), "{run}");
}

/// A value that is not one of a key's choices is exit 2 in every command, naming the
/// key: none of them falls back to a default (`matrix = "platfrom"` used to mean
/// per-binary in `kiln affected` while `kiln ci github` refused it).
#[test]
fn a_typo_in_an_enum_like_key_is_an_error_in_every_command() {
    let ws = TempWorkspace::chronik_sources();
    let m = ws.read("Cargo.toml");
    for (table, key, needle) in [
        ("ci", "matrix = \"platfrom\"", "platfrom"),
        ("cache", "upload = \"sometimes\"", "sometimes"),
        ("cache", "sccache = \"yes\"", "unknown variant `yes`"),
    ] {
        ws.write(
            "Cargo.toml",
            &format!("{m}\n[workspace.metadata.kiln.{table}]\n{key}\n"),
        );
        for args in [
            &["affected", "--all", "--format", "github-matrix"][..],
            &["ci", "github", "--output", "wf.yml"],
            &["build", "--dry-run"],
            &["plan"],
            &["config"],
            &["cache", "stats"],
            &["image"],
            &["dockerfile"],
            &["verify"],
        ] {
            let run = ws.kiln(args);
            run.failure(2, needle);
            assert!(run.stderr.contains("hint:"), "{args:?}: {}", run.stderr);
        }
    }
    assert!(!ws.path("wf.yml").exists());
}

/// The environment overrides the file, a bad value in it is exit 2 naming the
/// variable (never echoing the value), and `kiln config` says where each setting
/// came from.
#[test]
fn settings_come_from_flag_env_file_default_in_that_order() {
    let ws = TempWorkspace::chronik_sources();
    let m = ws.read("Cargo.toml");
    ws.write(
        "Cargo.toml",
        &format!("{m}\n[workspace.metadata.kiln]\nmax-memory = \"2GiB\"\n[workspace.metadata.kiln.cache]\nupload = \"always\"\nremote = \"oci://user:secret@127.0.0.1:1/c\"\n"),
    );
    // A signing key that isn't one (an old HMAC secret) is a usage error that never
    // shows the value.
    let mut cmd = common::kiln_command(ws.root());
    cmd.args(["config"])
        .env("KILN_CACHE_SIGNING_KEY", "hunter2");
    let run = common::Run::from(cmd.output().unwrap());
    run.failure(2, "KILN_CACHE_SIGNING_KEY holds neither a kiln secret key");
    assert!(!run.stderr.contains("hunter2"));
    let (key, public) = common::keygen(ws.root(), "ci-key");
    let key_text = std::fs::read_to_string(&key).unwrap();
    let mut cmd = common::kiln_command(ws.root());
    cmd.args(["config", "--message-format", "json"])
        .env("KILN_CACHE_UPLOAD", "never")
        .env("KILN_CACHE_TRUSTED_KEYS", &public)
        .env("KILN_CACHE_SIGNING_KEY", key_text.trim());
    let run = common::Run::from(cmd.output().unwrap());
    run.success();
    let secret_part = key_text.trim().split_once(':').unwrap().1;
    assert!(!run.stdout.contains(secret_part) && !run.stdout.contains("secret"));
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(v["reason"], "settings");
    let get = |k: &str| {
        v["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"] == k)
            .unwrap_or_else(|| panic!("{k} in {v}"))
            .clone()
    };
    assert_eq!(get("cache.upload")["value"], "never");
    let env = |name: &str| serde_json::json!({"from": "env", "name": name});
    assert_eq!(get("cache.upload")["origin"], env("KILN_CACHE_UPLOAD"));
    assert_eq!(get("cache.remote")["value"], "oci://127.0.0.1:1/c");
    assert_eq!(get("max-memory")["value"], "2147483648 bytes");
    assert_eq!(get("cache.sccache")["origin"], env("KILN_SCCACHE"));
    assert_eq!(
        get("backend")["origin"],
        serde_json::json!({"from": "default"})
    );
    assert_eq!(get("cache.signing-key")["value"], "ci-key (set)");
    assert_eq!(get("cache.trusted-keys")["value"], "ci-key");

    // A flag wins over the file, and the plan says so.
    let plan = ws.kiln(&["plan", "--max-memory", "3GiB", "--message-format", "json"]);
    plan.success();
    let res = plan
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["reason"] == "plan-resources")
        .expect("plan-resources event");
    assert_eq!(res["budget_bytes"], 3u64 << 30);
    assert_eq!(
        res["budget_source"],
        serde_json::json!({"from": "setting", "origin": {"from": "flag", "flag": "--max-memory"}})
    );

    let mut cmd = common::kiln_command(ws.root());
    cmd.args(["plan"])
        .env("KILN_CACHE_UPLOAD", "sometimes-secret");
    let run = common::Run::from(cmd.output().unwrap());
    run.failure(2, "KILN_CACHE_UPLOAD");
    assert!(!run.stderr.contains("sometimes-secret"), "{}", run.stderr);
}

/// Trust that would switch itself off is refused: vouching for a run's slice, or
/// signing, where no key is trusted (nothing would check the result); and `push
/// --from` reads only a directory.
#[test]
fn vouching_and_signing_without_trusted_keys_are_refused() {
    let ws = TempWorkspace::chronik_sources();
    let slice = tempfile::tempdir().unwrap();
    let url = format!("file://{}", slice.path().display());
    let mut cmd = common::kiln_command(ws.root());
    cmd.args(["cache", "pull", "--vouch"])
        .env("KILN_REMOTE_CACHE", &url);
    common::Run::from(cmd.output().unwrap()).failure(2, "`--vouch` needs trusted keys");
    // A value that names no key would switch checking off: refused.
    for blank in [" ", ","] {
        let mut cmd = common::kiln_command(ws.root());
        cmd.args(["cache", "pull"])
            .env("KILN_REMOTE_CACHE", &url)
            .env("KILN_CACHE_TRUSTED_KEYS", blank);
        common::Run::from(cmd.output().unwrap()).failure(2, "names no key");
    }
    let (key, _) = common::keygen(ws.root(), "ci-key");
    let mut cmd = common::kiln_command(ws.root());
    cmd.args(["cache", "push", "--from", &url])
        .env("KILN_REMOTE_CACHE", &url)
        .env("KILN_CACHE_SIGNING_KEY", &key);
    let run = common::Run::from(cmd.output().unwrap());
    run.failure(2, "no keys are trusted");
    assert!(run.stderr.contains("trusted-keys"), "{}", run.stderr);
    let mut cmd = common::kiln_command(ws.root());
    cmd.args(["cache", "push", "--from", "oci://127.0.0.1:1/slice"])
        .env("KILN_REMOTE_CACHE", &url);
    common::Run::from(cmd.output().unwrap()).failure(2, "can't be listed");
    let mut cmd = common::kiln_command(ws.root());
    cmd.args(["cache", "push", "--from", "file:///nonexistent/kiln-slice"])
        .env("KILN_REMOTE_CACHE", &url);
    common::Run::from(cmd.output().unwrap()).failure(2, "is not a directory");
}
