//! `kiln release`: the release folder, its checksums and its installer, for real
//! (sha256sum, tar, sh, curl with file:// URLs, shellcheck).

use crate::common;

use common::{tool, Run, TempWorkspace};
use std::path::Path;
use std::process::Command;

/// `kiln release <args>` in `ws` at a fixed commit time.
fn release(ws: &TempWorkspace, args: &[&str]) -> Run {
    let mut cmd = common::kiln_command(ws.root());
    cmd.arg("release")
        .args(args)
        .env("SOURCE_DATE_EPOCH", "1700000000");
    Run::from(cmd.output().unwrap())
}

/// `sh install.sh <args>` from `dir`, with HOME pointing nowhere useful.
fn install(dir: &Path, home: &Path, args: &[&str]) -> Run {
    let out = Command::new("sh")
        .arg(dir.join("install.sh"))
        .args(args)
        .env("HOME", home)
        .output()
        .unwrap();
    Run::from(out)
}

fn archives(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tar.gz"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_release_folder_is_reproducible_checksummed_and_installs_what_it_checked() {
    let ws = TempWorkspace::chronik();
    ws.write("crates/chronik-server/LICENSE-MIT", "MIT License\n");
    ws.write("crates/chronik-server/README.md", "# chronik-server\n");
    let dist = ws.path("dist");
    let dist = dist.to_str().unwrap();

    // A dry run names every file and writes nothing (it builds, as a release does).
    let dry = release(&ws, &["--out", dist, "--dry-run"]);
    dry.success();
    assert!(dry.stderr.contains("Would write"), "{}", dry.stderr);
    assert!(
        dry.stderr
            .contains("chronik-server-0.3.1-aarch64-unknown-linux-musl.tar.gz"),
        "{}",
        dry.stderr
    );
    assert!(!ws.path("dist").exists());

    let first = release(&ws, &["--out", dist, "--message-format", "json"]);
    first.success();
    let names = archives(&ws.path("dist"));
    assert_eq!(
        names,
        [
            "chronik-cli-0.3.1-aarch64-unknown-linux-musl.tar.gz",
            "chronik-cli-0.3.1-x86_64-unknown-linux-musl.tar.gz",
            "chronik-server-0.3.1-aarch64-unknown-linux-musl.tar.gz",
            "chronik-server-0.3.1-x86_64-unknown-linux-musl.tar.gz",
        ]
    );
    for f in ["SHA256SUMS", "install.sh", "release.json"] {
        assert!(ws.path("dist").join(f).is_file(), "{f}");
    }
    // Every file is in SHA256SUMS, and sha256sum agrees.
    let sums = ws.read("dist/SHA256SUMS");
    assert_eq!(sums.lines().count(), 6, "{sums}");
    tool(
        "sha256sum",
        &["-c", "--strict", "SHA256SUMS"],
        &ws.path("dist"),
    );
    // The archive holds the binary, the package's license and readme, its SBOM.
    let listing = tool(
        "tar",
        &[
            "-tzvf",
            "chronik-server-0.3.1-x86_64-unknown-linux-musl.tar.gz",
        ],
        &ws.path("dist"),
    );
    for want in [
        "chronik-server-0.3.1-x86_64-unknown-linux-musl/chronik-server",
        "chronik-server-0.3.1-x86_64-unknown-linux-musl/LICENSE-MIT",
        "chronik-server-0.3.1-x86_64-unknown-linux-musl/README.md",
        "chronik-server-0.3.1-x86_64-unknown-linux-musl/chronik-server.spdx.json",
    ] {
        assert!(listing.contains(want), "{want} in\n{listing}");
    }
    assert!(listing.contains("0/0"), "numeric owners only:\n{listing}");
    assert!(
        listing.contains("2023-11-14"),
        "SOURCE_DATE_EPOCH mtimes:\n{listing}"
    );
    // The manifest lists what SHA256SUMS covers, and the event says the same.
    let manifest: serde_json::Value = serde_json::from_str(&ws.read("dist/release.json")).unwrap();
    assert_eq!(manifest["version"], "0.3.1");
    assert_eq!(manifest["tag"], "v0.3.1");
    assert_eq!(
        manifest["base_url"],
        "https://github.com/chronik-stream/chronik/releases/download/v0.3.1"
    );
    assert_eq!(manifest["artifacts"].as_array().unwrap().len(), 4);
    for f in manifest["files"].as_array().unwrap() {
        let line = format!(
            "{}  {}",
            f["sha256"].as_str().unwrap(),
            f["name"].as_str().unwrap()
        );
        assert!(sums.contains(&line), "{line}");
    }
    let event: serde_json::Value = first
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["reason"] == "release-written")
        .expect("release-written event");
    assert_eq!(event["files"].as_array().unwrap().len(), 7);
    assert!(
        event["binstall"][0]["toml"]
            .as_str()
            .unwrap()
            .contains("/releases/download/v{ version }/chronik-cli-{ version }-{ target }.tar.gz"),
        "{event}"
    );
    // The installer passes shellcheck as a POSIX script.
    tool("shellcheck", &["-s", "sh", "install.sh"], &ws.path("dist"));

    // Twice in a row: byte-identical archives (and so the same SHA256SUMS).
    let again = ws.path("dist-again");
    release(&ws, &["--out", again.to_str().unwrap()]).success();
    for n in &names {
        assert_eq!(
            std::fs::read(ws.path("dist").join(n)).unwrap(),
            std::fs::read(again.join(n)).unwrap(),
            "{n}"
        );
    }
    assert_eq!(ws.read("dist-again/SHA256SUMS"), sums);

    // The installer, from the folder itself: the binary installed runs.
    let home = ws.path("home");
    let to = ws.path("bin");
    let base = format!("file://{dist}");
    let run = install(
        &ws.path("dist"),
        &home,
        &[
            "--base-url",
            &base,
            "--to",
            to.to_str().unwrap(),
            "chronik-server",
        ],
    );
    run.success();
    let version = tool(
        to.join("chronik-server").to_str().unwrap(),
        &["--version"],
        &to,
    );
    assert!(version.contains("0.3.1"), "{version}");
    assert!(!to.join("chronik-cli").exists(), "only what was asked");

    // One byte flipped in an archive: nothing installed, the checksum named.
    let tampered = ws.path("tampered");
    common::copy_tree(&ws.path("dist"), &tampered, &[]);
    let archive = tampered.join("chronik-server-0.3.1-x86_64-unknown-linux-musl.tar.gz");
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&archive, bytes).unwrap();
    let to2 = ws.path("bin2");
    let run = install(
        &tampered,
        &home,
        &[
            "--base-url",
            &format!("file://{}", tampered.display()),
            "--to",
            to2.to_str().unwrap(),
        ],
    );
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("checksum mismatch"), "{}", run.stderr);
    assert!(!to2.join("chronik-server").exists());
    assert!(
        !to2.join("chronik-cli").exists(),
        "nothing at all is installed"
    );

    // Plain HTTP is refused before anything is downloaded.
    let run = install(
        &ws.path("dist"),
        &home,
        &["--base-url", "http://127.0.0.1:1/x"],
    );
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("only https://"), "{}", run.stderr);
}

#[test]
fn a_release_never_replaces_a_folder_of_other_files_or_ships_a_changed_binary() {
    let ws = TempWorkspace::built_chronik();
    ws.write("not-a-release/notes.txt", "mine\n");
    let out = ws.path("not-a-release");
    release(&ws, &["--no-build", "--out", out.to_str().unwrap()]).failure(2, "not a kiln release");
    assert_eq!(ws.read("not-a-release/notes.txt"), "mine\n");
    // A binary that is not what checksums.json records is never archived.
    let bin = ws.path("artifacts/linux/amd64/chronik-cli");
    let mut bytes = std::fs::read(&bin).unwrap();
    bytes.push(0);
    std::fs::write(&bin, bytes).unwrap();
    let dist = ws.path("dist");
    release(&ws, &["--no-build", "--out", dist.to_str().unwrap()])
        .failure(3, "is not the file checksums.json records");
    assert!(!dist.exists());
    // A download location that isn't https (or file://) is refused up front.
    release(
        &ws,
        &[
            "--no-build",
            "--dry-run",
            "--base-url",
            "http://example.com/x",
        ],
    )
    .failure(2, "can't be the installer's download location");
}

/// A workspace that names no `repository` and no `--base-url`: the release is
/// written (exit 0: the local files are right) with one warning naming both fixes,
/// and no binstall block (its `{ repo }` would be empty); `--base-url` quiets it.
#[test]
fn a_release_without_a_download_location_says_how_to_give_one() {
    let ws = TempWorkspace::built_chronik();
    ws.write(
        "Cargo.toml",
        &ws.read("Cargo.toml").replace(
            "repository = \"https://github.com/chronik-stream/chronik\"\n",
            "",
        ),
    );
    for member in ["chronik-cli", "chronik-server"] {
        let manifest = format!("crates/{member}/Cargo.toml");
        ws.write(
            &manifest,
            &ws.read(&manifest)
                .replace("repository.workspace = true\n", ""),
        );
    }
    let run = release(
        &ws,
        &["--no-build", "--dry-run", "--message-format", "json"],
    );
    run.success();
    let events: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let warning = events
        .iter()
        .find(|e| e["kind"] == "release-without-download-url")
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert_eq!(warning["tag"], "v0.3.1");
    let written = events
        .iter()
        .find(|e| e["reason"] == "release-written")
        .unwrap();
    assert!(
        written
            .get("binstall")
            .is_none_or(|b| b == &serde_json::json!([])),
        "{written}"
    );
    let human = release(&ws, &["--no-build", "--dry-run"]);
    human.success();
    assert!(
        human.stderr.contains("`repository`") && human.stderr.contains("--base-url"),
        "{}",
        human.stderr
    );
    let given = release(
        &ws,
        &[
            "--no-build",
            "--dry-run",
            "--base-url",
            "https://downloads.example/v0.3.1",
        ],
    );
    given.success();
    assert!(
        !given.stderr.contains("names no download location"),
        "{}",
        given.stderr
    );
}
