//! Settings resolution: precedence, typed values, errors naming their source.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Env {
    Env::from_vars(pairs.iter().map(|(k, v)| (k.into(), v.into())))
}

/// `[workspace.metadata.kiln]` with `top` keys and `cache` keys.
fn config(top: &str, cache: &str) -> Config {
    Config::parse(&format!(
        "[workspace.metadata.kiln]\n{top}\n[workspace.metadata.kiln.cache]\n{cache}"
    ))
    .unwrap()
}

#[test]
fn env_wins_over_file_wins_over_default() {
    let c = config("", "upload = \"always\"\nsccache = \"off\"\n");
    let s = Settings::resolve(
        &c,
        Path::new("/ws"),
        &env(&[("KILN_CACHE_UPLOAD", "never")]),
        Flags::default(),
    )
    .unwrap();
    assert_eq!(s.upload.value, Upload::Never);
    assert_eq!(s.upload.origin, Origin::Env("KILN_CACHE_UPLOAD"));
    assert_eq!(s.sccache.value, Sccache::Off);
    assert_eq!(s.sccache.origin, Origin::Config("cache.sccache"));
    assert_eq!(s.matrix.value, Matrix::Binary);
    assert_eq!(s.matrix.origin, Origin::Default);
    let flagged = s.backend.or_flag(Some(BackendChoice::Zig), "--backend");
    assert_eq!(flagged.origin.to_string(), "--backend");
}

#[test]
fn a_bad_env_value_is_a_usage_error_naming_the_variable() {
    let e = Settings::resolve(
        &Config::default(),
        Path::new("/"),
        &env(&[("KILN_SCCACHE", "yes")]),
        Flags::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind().exit_code(), 2);
    assert!(e.to_string().contains("KILN_SCCACHE"), "{e}");
}

#[test]
fn cache_dir_and_remote_precedence() {
    let c = config("cache-dir = \"~/kc\"", "remote = \"file:///r\"\n");
    let s = Settings::resolve(
        &c,
        Path::new("/ws"),
        &env(&[("HOME", "/home/u"), ("KILN_REMOTE_CACHE", "off")]),
        Flags::default(),
    )
    .unwrap();
    assert_eq!(s.cache_dir.value, Some(PathBuf::from("/home/u/kc")));
    assert_eq!(s.remote.value, None, "`off` disables the configured remote");
    let s = Settings::resolve(
        &Config::default(),
        Path::new("/ws"),
        &env(&[("XDG_CACHE_HOME", "/x")]),
        Flags::default(),
    )
    .unwrap();
    assert_eq!(s.cache_dir.value, Some(PathBuf::from("/x/kiln")));
    assert_eq!(s.remote.value, None);
}

#[test]
fn cargo_flags_from_flag_env_or_file() {
    let c = Config::parse("[workspace.metadata.kiln]\nlocked = true\n").unwrap();
    let s = Settings::resolve(&c, Path::new("/"), &env(&[]), Flags::default()).unwrap();
    assert_eq!(s.cargo_flags(), ["--locked"]);
    let s = Settings::resolve(
        &c,
        Path::new("/"),
        &env(&[("KILN_LOCKED", "false"), ("KILN_OFFLINE", "1")]),
        Flags::default(),
    )
    .unwrap();
    assert_eq!(s.cargo_flags(), ["--offline"]);
    let flags = Flags {
        frozen: true,
        ..Flags::default()
    };
    let s =
        Settings::resolve(&c, Path::new("/"), &env(&[("KILN_LOCKED", "false")]), flags).unwrap();
    assert_eq!(s.cargo_flags(), ["--frozen"]);
    assert!(Settings::resolve(
        &c,
        Path::new("/"),
        &env(&[("KILN_OFFLINE", "maybe")]),
        Flags::default()
    )
    .is_err());
}

#[test]
fn uploads_in_ci_by_default_only() {
    let s = Settings::resolve(
        &Config::default(),
        Path::new("/"),
        &env(&[("CI", "true")]),
        Flags::default(),
    )
    .unwrap();
    assert!(s.uploads());
    let s = Settings::resolve(
        &Config::default(),
        Path::new("/"),
        &env(&[]),
        Flags::default(),
    )
    .unwrap();
    assert!(!s.uploads());
}

#[test]
fn flags_win_and_typed_values_are_checked_when_read() {
    let c = config(
        "targets = [\"arm64\"]\nartifact-dir = \"out\"\nprofile = \"dist\"",
        "remote = \"s3://bucket/prefix\"",
    );
    let s = Settings::resolve(&c, Path::new("/ws"), &env(&[]), Flags::default()).unwrap();
    assert_eq!(s.targets.value, [Target::parse("arm64").unwrap()]);
    assert_eq!(s.artifact_dir.value, PathBuf::from("/ws/out"));
    assert_eq!(s.profile.value, "dist");
    assert!(matches!(s.remote.value, Some(RemoteUrl::S3 { .. })));
    let flags = Flags {
        targets: vec!["amd64,arm64".into()],
        out: Some("/elsewhere".into()),
        profile: Some("release".into()),
        ..Flags::default()
    };
    let s = Settings::resolve(&c, Path::new("/ws"), &env(&[]), flags).unwrap();
    assert_eq!(s.targets.value.len(), 2);
    assert_eq!(s.targets.origin, Origin::Flag("--target"));
    assert_eq!(s.artifact_dir.value, PathBuf::from("/elsewhere"));
    assert_eq!(s.profile.origin, Origin::Flag("--profile"));
    for (top, cache) in [("targets = [\"sparc\"]", ""), ("", "remote = \"ftp://x\"")] {
        let e = Settings::resolve(
            &config(top, cache),
            Path::new("/ws"),
            &env(&[]),
            Flags::default(),
        )
        .unwrap_err();
        assert_eq!(e.kind().exit_code(), 2, "{e}");
    }
    let jobs = Flags {
        jobs: Some(0),
        ..Flags::default()
    };
    assert!(Settings::resolve(&Config::default(), Path::new("/"), &env(&[]), jobs).is_err());
    let both = Flags {
        targets: vec!["amd64".into(), "amd64-gnu".into()],
        ..Flags::default()
    };
    let e = Settings::resolve(&Config::default(), Path::new("/"), &env(&[]), both).unwrap_err();
    assert!(e.to_string().contains("would both write"), "{e}");
}

#[test]
fn trusted_keys_that_name_no_key_are_an_error_not_checking_off() {
    let resolve = |c: &Config, e: &[(&str, &str)]| {
        Settings::resolve(c, Path::new("/ws"), &env(e), Flags::default())
    };
    for blank in [" ", ",", " , "] {
        let e = resolve(&Config::default(), &[("KILN_CACHE_TRUSTED_KEYS", blank)]).unwrap_err();
        assert_eq!(e.kind().exit_code(), 2, "{blank:?}");
        assert!(e.to_string().contains("names no key"), "{e}");
    }
    let empty = config("", "trusted-keys = []\n");
    let e = resolve(&empty, &[]).unwrap_err();
    assert!(e.to_string().contains("is empty"), "{e}");
    // Unset (or set to nothing at all, which counts as unset): no checking, as before.
    assert!(!resolve(&Config::default(), &[]).unwrap().trust.enforced());
}

#[test]
fn a_plain_http_scheduler_off_this_machine_needs_its_host_named() {
    let resolve = |e: &[(&str, &str)]| {
        Settings::resolve(
            &Config::default(),
            Path::new("/ws"),
            &env(e),
            Flags::default(),
        )
    };
    let far = ("KILN_SCCACHE_DIST_SCHEDULER", "http://farm.example:10600");
    let e = resolve(&[far]).unwrap_err();
    assert_eq!(e.kind().exit_code(), 2);
    assert!(e.to_string().contains("clear text"), "{e}");
    assert!(e
        .hints()
        .join(" ")
        .contains("KILN_INSECURE_REGISTRIES=farm.example"));
    assert!(resolve(&[far, ("KILN_INSECURE_REGISTRIES", "farm.example")]).is_ok());
    assert!(resolve(&[("KILN_SCCACHE_DIST_SCHEDULER", "http://127.0.0.1:10600")]).is_ok());
    let lookalike = (
        "KILN_SCCACHE_DIST_SCHEDULER",
        "http://127.attacker.example:10600",
    );
    assert!(resolve(&[lookalike]).is_err(), "a name is not an address");
    assert!(resolve(&[("KILN_SCCACHE_DIST_SCHEDULER", "https://farm.example:10600")]).is_ok());
}
