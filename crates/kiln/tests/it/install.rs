//! Installing kiln as a user would, from what kiln publishes: the crates as
//! `cargo package` makes them (installed offline, as crates.io would serve them).

use crate::common::{self, Run};
use std::process::Command;

/// Every crate of the workspace packages (`cargo package --workspace`: versions on
/// path dependencies, descriptions, licenses, no file from outside its crate), and
/// `cargo install` of the packaged `cargo-kiln`, its libraries taken from their
/// packages too, offline, gives `kiln` and `cargo kiln`.
#[test]
fn the_packaged_crates_install_offline_as_kiln_and_cargo_kiln() {
    let root = common::repo_root();
    let work = tempfile::tempdir().unwrap();
    let packages = work.path().join("packages");
    let mut package = Command::new(cargo());
    package
        .current_dir(&root)
        .args([
            "package",
            "--workspace",
            "--locked",
            "--no-verify",
            "--allow-dirty",
        ])
        .arg("--target-dir")
        .arg(&packages);
    let run = Run::from(package.output().unwrap());
    run.success();
    let unpacked = work.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let mut patches = String::from("[patch.crates-io]\n");
    let mut bin_crate = None;
    for e in std::fs::read_dir(packages.join("package"))
        .unwrap()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".crate") else {
            continue;
        };
        let mut tar = Command::new("tar");
        tar.arg("-xzf").arg(e.path()).arg("-C").arg(&unpacked);
        Run::from(tar.output().unwrap()).success();
        let dir = unpacked.join(stem);
        let krate = stem.rsplit_once('-').unwrap().0;
        for license in ["LICENSE-MIT", "LICENSE-APACHE"] {
            assert!(dir.join(license).is_file(), "{stem} lacks {license}");
        }
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains("description = "),
            "{stem} has no description"
        );
        assert!(!manifest.contains("path = \"../"), "{stem} depends by path");
        if krate == "cargo-kiln" {
            bin_crate = Some(dir);
        } else {
            patches.push_str(&format!(
                "{krate} = {{ path = {:?} }}\n",
                dir.display().to_string()
            ));
        }
    }
    let bin_crate = bin_crate.expect("cargo-kiln was packaged");
    assert!(
        !bin_crate.join("tests").exists(),
        "the installed crate carries no tests"
    );
    let config = work.path().join("patches.toml");
    std::fs::write(&config, patches).unwrap();
    // The workspace's compiled dependencies are reused (same profile); the kiln
    // crates compile from their packages.
    let install_root = work.path().join("root");
    let mut install = Command::new(cargo());
    install
        .current_dir(work.path())
        .args(["install", "--offline", "--debug", "--path"])
        .arg(&bin_crate)
        .arg("--root")
        .arg(&install_root)
        .arg("--config")
        .arg(&config)
        .arg("--target-dir")
        .arg(root.join("target/install-test"));
    let run = Run::from(install.output().unwrap());
    run.success();
    let bin = install_root.join("bin");
    let version = format!("kiln {}", env!("CARGO_PKG_VERSION"));
    let kiln = Run::from(
        Command::new(bin.join("kiln"))
            .arg("--version")
            .output()
            .unwrap(),
    );
    kiln.success();
    assert_eq!(kiln.stdout.trim(), version);
    // As cargo runs a subcommand: `cargo kiln --version` starts `cargo-kiln kiln --version`.
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let sub = Run::from(
        Command::new(cargo())
            .args(["kiln", "--version"])
            .env("PATH", path)
            .output()
            .unwrap(),
    );
    sub.success();
    assert_eq!(sub.stdout.trim(), version);
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}
