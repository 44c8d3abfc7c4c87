use super::*;

fn record(bin: &str, version: &str, target: &str, arch: &str) -> ArtifactRecord {
    serde_json::from_value(serde_json::json!({
        "path": format!("linux/{arch}/{bin}"),
        "os": "linux",
        "arch": arch,
        "target": target,
        "package": bin,
        "binary": bin,
        "version": version,
        "sha256": "0".repeat(64),
        "size": 1,
        "profile": "release",
        "git": { "dirty": false },
        "rustc": "rustc 1.0.0",
        "backend": "zig",
    }))
    .unwrap()
}

#[test]
fn a_release_has_one_version_or_a_tag() {
    let same = [
        record("a", "1.2.3", "x86_64-unknown-linux-musl", "amd64"),
        record("b", "1.2.3", "aarch64-unknown-linux-musl", "arm64"),
    ];
    assert_eq!(release_version(&same, None).unwrap(), "1.2.3");
    let mixed = [
        same[0].clone(),
        record("c", "0.9.0", "x86_64-unknown-linux-musl", "amd64"),
    ];
    let err = release_version(&mixed, None).unwrap_err();
    assert!(err.message().contains("0.9.0, 1.2.3"), "{}", err.message());
    assert_eq!(release_version(&mixed, Some("v2.0.0")).unwrap(), "2.0.0");
}

#[test]
fn names_and_urls_that_could_break_the_installer_are_refused() {
    assert!(check_words("tag", "v1.2.3-rc.1+build").is_ok());
    for bad in ["v1'; rm -rf ~", "v1 2", "", "../x", "v1\n"] {
        assert!(check_words("tag", bad).is_err(), "{bad:?}");
    }
    assert!(check_url("https://github.com/o/r/releases/download/v1").is_ok());
    assert!(check_url("file:///tmp/dist").is_ok());
    for bad in [
        "http://example.com",
        "https://x/'$(id)'",
        "ftp://x",
        "https://x y",
    ] {
        assert!(check_url(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_pinned_glibc_target_is_named_by_its_triple() {
    let r = record("a", "1.0.0", "x86_64-unknown-linux-gnu.2.28", "amd64");
    assert_eq!(triple(&r), "x86_64-unknown-linux-gnu");
}

#[test]
fn images_are_recorded_only_by_digest() {
    let d = format!("sha256:{}", "ab".repeat(32));
    let ok = ImageEntry::parse(&format!("ghcr.io/o/r@{d}")).unwrap();
    assert_eq!(ok.repository, "ghcr.io/o/r");
    assert_eq!(ok.digest, d);
    assert!(ImageEntry::parse("ghcr.io/o/r:v1").is_err());
    assert!(ImageEntry::parse("ghcr.io/o/r@sha256:abc").is_err());
}

#[test]
fn the_installer_and_binstall_blocks() {
    let artifacts: Vec<ArtifactEntry> = [
        ("srv", "x86_64-unknown-linux-musl", "amd64"),
        ("srv", "x86_64-unknown-linux-gnu.2.28", "amd64"),
        ("srv", "aarch64-unknown-linux-musl", "arm64"),
    ]
    .iter()
    .map(|(b, t, a)| ArtifactEntry {
        binary: b.to_string(),
        package: b.to_string(),
        version: "1.0.0".into(),
        target: t.to_string(),
        os: "linux".into(),
        arch: a.to_string(),
        archive: format!("{b}-1.0.0-{}.tar.gz", t.split('.').next().unwrap()),
        binary_sha256: "0".repeat(64),
        sboms: vec![],
    })
    .collect();
    let files: Vec<FileEntry> = artifacts
        .iter()
        .enumerate()
        .map(|(i, a)| FileEntry {
            name: a.archive.clone(),
            kind: "archive".into(),
            sha256: format!("{i}").repeat(64),
            size: 1,
        })
        .collect();
    let script = installer("1.0.0", Some("https://example.com/dl"), &artifacts, &files);
    // musl wins over glibc for amd64; one line per binary x arch.
    insta::assert_snapshot!("installer", script);
    let records = [record("srv", "1.0.0", "x86_64-unknown-linux-musl", "amd64")];
    let blocks = binstall_blocks(&records, "v1.0.0", &|_| true);
    insta::assert_snapshot!("binstall", blocks[0].1);
}
