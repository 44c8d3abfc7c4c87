//! What kiln says about what it ships, checked by the tools people already use:
//! `rust-audit-info` (crates.io) reads the dependency list linked into every binary,
//! `pyspdxtools` (PyPI `spdx-tools`) validates the SPDX files, and the CycloneDX
//! files pass CycloneDX 1.5's JSON schema (PyPI `cyclonedx-python-lib`).

use crate::common::{self, tool, TempWorkspace};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `rust-audit-info`, installed by .ci/run under target/ci-tools.
fn rust_audit_info() -> PathBuf {
    let p = common::repo_root().join("target/ci-tools/bin/rust-audit-info");
    assert!(
        p.is_file(),
        "rust-audit-info is needed by the tests: run .ci/run, or `cargo install --locked --root target/ci-tools rust-audit-info`"
    );
    p
}

/// The store's binaries (not the sidecars).
fn binaries(ws: &TempWorkspace) -> Vec<(String, Value)> {
    let c: Value = serde_json::from_str(&ws.read("artifacts/checksums.json")).unwrap();
    c["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["path"].as_str().unwrap().to_string(), a.clone()))
        .collect()
}

const BOTH: &str = "\n[workspace.metadata.kiln]\nsbom = [\"spdx\", \"cyclonedx\"]\n";

#[test]
fn binaries_carry_their_dependency_list_and_sboms_validate() {
    let ws = TempWorkspace::chronik();
    ws.write("Cargo.toml", &format!("{}{BOTH}", ws.read("Cargo.toml")));
    ws.kiln(&["build"]).success();
    let bins = binaries(&ws);
    assert_eq!(bins.len(), 4);
    for (path, record) in &bins {
        // The list a scanner reads from the binary: this package at the root, its C
        // build dependency (cc) marked build-only, nothing of another platform.
        let out = Command::new(rust_audit_info())
            .arg(ws.path(&format!("artifacts/{path}")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        let packages = list["packages"].as_array().unwrap();
        let root = packages.iter().find(|p| p["root"] == true).unwrap();
        assert_eq!(root["name"], record["package"], "{path}");
        assert_eq!(record["auditable"], true);
        if record["package"] == "chronik-server" {
            let cc = packages.iter().find(|p| p["name"] == "cc").expect("cc");
            assert_eq!(cc["kind"], "build", "{path}");
            assert!(packages.iter().any(|p| p["name"] == "chronik-storage"));
        } else {
            assert!(
                !packages.iter().any(|p| p["name"] == "cc"),
                "{path}: cli has no C"
            );
        }
        // Both SBOMs, listed with their digests, describe this binary.
        let formats: Vec<&str> = record["sboms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["format"].as_str().unwrap())
            .collect();
        assert_eq!(formats, ["spdx-2.3", "cyclonedx-1.5"]);
        let spdx: Value =
            serde_json::from_str(&ws.read(&format!("artifacts/{path}.spdx.json"))).unwrap();
        let described = spdx["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["SPDXID"] == "SPDXRef-Binary")
            .unwrap();
        assert_eq!(described["checksums"][0]["checksumValue"], record["sha256"]);
        let text = serde_json::to_string(&spdx).unwrap();
        assert!(text.contains("pkg:cargo/chronik-common@0.3.1"));
        assert!(
            !text.contains(ws.root().to_str().unwrap()),
            "a local path in an SBOM"
        );
    }
    // The real validators.
    for (path, _) in &bins {
        let spdx = ws.path(&format!("artifacts/{path}.spdx.json"));
        let out = Command::new("pyspdxtools")
            .arg("-i")
            .arg(&spdx)
            .output()
            .expect("pyspdxtools is needed by the tests (.ci/run installs spdx-tools with pip)");
        assert!(
            out.status.success(),
            "{path}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let cdx: Vec<PathBuf> = bins
        .iter()
        .map(|(p, _)| ws.path(&format!("artifacts/{p}.cdx.json")))
        .collect();
    cyclonedx_valid(&cdx).unwrap();
    // The validator does reject a broken document.
    let broken = ws.path("broken.cdx.json");
    std::fs::write(
        &broken,
        ws.read(&format!("artifacts/{}.cdx.json", bins[0].0))
            .replace("\"library\"", "\"librarian\""),
    )
    .unwrap();
    assert!(cyclonedx_valid(&[broken]).is_err());

    // `kiln verify` checks them: an edited SBOM is a verification failure.
    ws.kiln(&["verify"]).success();
    let spdx = ws.path(&format!("artifacts/{}.spdx.json", bins[0].0));
    let original = std::fs::read_to_string(&spdx).unwrap();
    std::fs::write(&spdx, original.replace("0.3.1", "0.3.2")).unwrap();
    ws.kiln(&["verify"])
        .failure(3, "spdx.json does not match checksums.json");
    std::fs::write(&spdx, original).unwrap();

    // Deterministic: restored into a fresh store, the same bytes.
    let before: Vec<(String, String)> = bins
        .iter()
        .flat_map(|(p, _)| [format!("{p}.spdx.json"), format!("{p}.cdx.json")])
        .map(|p| (p.clone(), ws.read(&format!("artifacts/{p}"))))
        .collect();
    std::fs::remove_dir_all(ws.path("artifacts")).unwrap();
    let run = ws.kiln(&["build"]);
    run.success();
    assert!(run.stderr.contains("4 restored"), "{}", run.stderr);
    for (p, text) in before {
        assert_eq!(ws.read(&format!("artifacts/{p}")), text, "{p} changed");
    }
}

/// Validates CycloneDX files against the 1.5 schema; the error names the problem.
fn cyclonedx_valid(files: &[PathBuf]) -> Result<(), String> {
    let script = "import sys\nfrom cyclonedx.validation.json import JsonStrictValidator\nfrom cyclonedx.schema import SchemaVersion\nv = JsonStrictValidator(SchemaVersion.V1_5)\nfor f in sys.argv[1:]:\n    e = v.validate_str(open(f).read())\n    if e:\n        print(f, e)\n        sys.exit(1)\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(files)
        .output()
        .unwrap();
    if String::from_utf8_lossy(&out.stderr).contains("ModuleNotFoundError") {
        panic!("cyclonedx-python-lib is needed by the tests (.ci/run installs it with pip)");
    }
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// `auditable = false`: no section, and a different key (the binary differs).
#[test]
fn auditable_false_links_nothing_in() {
    let ws = TempWorkspace::chronik();
    ws.write(
        "Cargo.toml",
        &format!(
            "{}\n[workspace.metadata.kiln]\nauditable = false\nsbom = []\n",
            ws.read("Cargo.toml")
        ),
    );
    ws.kiln(&["build", "-p", "chronik-cli", "--target", "amd64"])
        .success();
    let bin = ws.path("artifacts/linux/amd64/chronik-cli");
    let out = Command::new(rust_audit_info()).arg(&bin).output().unwrap();
    assert!(
        !out.status.success(),
        "a dependency list in a binary built without one"
    );
    assert!(!has_section(&bin, ".dep-v0"));
    let c: Value = serde_json::from_str(&ws.read("artifacts/checksums.json")).unwrap();
    assert!(c["artifacts"][0].get("auditable").is_none());
    assert!(c["artifacts"][0].get("sboms").is_none());
    assert!(!ws
        .path("artifacts/linux/amd64/chronik-cli.spdx.json")
        .exists());
}

fn has_section(bin: &Path, name: &str) -> bool {
    tool(
        "readelf",
        &["-S", bin.to_str().unwrap()],
        bin.parent().unwrap(),
    )
    .contains(name)
}
