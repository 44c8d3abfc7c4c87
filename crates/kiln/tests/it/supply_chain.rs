//! What kiln says about what it ships, checked by the tools people already use:
//! `rust-audit-info` (crates.io) reads the dependency list linked into every binary,
//! `pyspdxtools` (PyPI `spdx-tools`) validates the SPDX files, and the CycloneDX
//! files pass CycloneDX 1.5's JSON schema (PyPI `cyclonedx-python-lib`).

use crate::common::{self, tool, TempWorkspace};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `rust-audit-info`, installed by .ci/run under `common::ci_tools()`.
fn rust_audit_info() -> PathBuf {
    let p = common::ci_tools().join("bin/rust-audit-info");
    assert!(
        p.is_file(),
        "rust-audit-info is needed by the tests: run .ci/run, or `cargo install --locked --version 0.5.4 --root {} rust-audit-info`",
        common::ci_tools().display()
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
        spdx_valid(&spdx);
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

/// `pyspdxtools -i`: the SPDX tools' own validation of an SPDX file.
fn spdx_valid(file: &Path) {
    let out = Command::new("pyspdxtools")
        .arg("-i")
        .arg(file)
        .output()
        .expect("pyspdxtools is needed by the tests (.ci/run installs spdx-tools with pip)");
    assert!(
        out.status.success(),
        "{}: {}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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

/// A plain HTTP GET against the local registry (curl), with `accept`.
fn get(url: &str, accept: &str) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-fsS", "-H", &format!("Accept: {accept}"), url])
        .output()
        .expect("curl is needed by the tests (.ci/run installs it)");
    assert!(
        out.status.success(),
        "GET {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn sha256_hex(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// After `kiln image --push --sign-key`, each platform manifest's referrers (the
/// `sha256-<hex>` tag index: the registry here has no referrers API) hold its SBOMs
/// and an in-toto SLSA provenance statement; the index carries a cosign signature
/// that `openssl` verifies over the payload; skopeo and podman still pull it; and a
/// second push attaches byte-identical documents.
#[test]
fn a_pushed_image_carries_its_sboms_provenance_and_a_signature() {
    let reg = common::Registry::start(None);
    let ws = TempWorkspace::built_chronik();
    let key = ws.path("key.pem");
    let public = ws.path("pub.pem");
    tool(
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            key.to_str().unwrap(),
        ],
        ws.root(),
    );
    tool("chmod", &["600", key.to_str().unwrap()], ws.root());
    tool(
        "openssl",
        &[
            "pkey",
            "-in",
            key.to_str().unwrap(),
            "-pubout",
            "-out",
            public.to_str().unwrap(),
        ],
        ws.root(),
    );
    let push = |tag: &str| {
        let mut cmd = common::kiln_command(ws.root());
        cmd.args([
            "image",
            "--push",
            &format!("{}/chronik/signed:{tag}", reg.host()),
            "--insecure",
            "--sign-key",
        ])
        .arg(&key)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("DOCKER_CONFIG", ws.path(".no-docker-config"));
        let run = common::Run::from(cmd.output().unwrap());
        run.success();
        run
    };
    let run = push("v1");
    assert!(
        run.stderr.contains("Attached") && run.stderr.contains("Signed"),
        "{}",
        run.stderr
    );
    let base = format!("http://{}/v2/chronik/signed", reg.host());
    let index_bytes = get(&format!("{base}/manifests/v1"), INDEX);
    let index_digest = format!("sha256:{}", sha256_hex(&index_bytes));
    let index: Value = serde_json::from_slice(&index_bytes).unwrap();
    let checksums: Value = serde_json::from_str(&ws.read("artifacts/checksums.json")).unwrap();
    let mut attached = Vec::new();
    for m in common::images(&index) {
        let digest = m["digest"].as_str().unwrap();
        let arch = m["platform"]["architecture"].as_str().unwrap();
        let tag = digest.replacen(':', "-", 1);
        let referrers: Value =
            serde_json::from_slice(&get(&format!("{base}/manifests/{tag}"), INDEX)).unwrap();
        let mut types = Vec::new();
        for r in referrers["manifests"].as_array().unwrap() {
            let manifest: Value = serde_json::from_slice(&get(
                &format!("{base}/manifests/{}", r["digest"].as_str().unwrap()),
                MANIFEST,
            ))
            .unwrap();
            assert_eq!(
                manifest["subject"]["digest"], digest,
                "refers to its platform manifest"
            );
            let kind = manifest["artifactType"].as_str().unwrap().to_string();
            assert_eq!(r["artifactType"], kind.as_str());
            attached.push(r["digest"].as_str().unwrap().to_string());
            for layer in manifest["layers"].as_array().unwrap() {
                let blob = get(
                    &format!("{base}/blobs/{}", layer["digest"].as_str().unwrap()),
                    "*/*",
                );
                if kind == "application/spdx+json" {
                    let file = ws.path("attached.spdx.json");
                    std::fs::write(&file, &blob).unwrap();
                    spdx_valid(&file);
                } else {
                    let s: Value = serde_json::from_slice(&blob).unwrap();
                    assert_eq!(s["_type"], "https://in-toto.io/Statement/v1");
                    assert_eq!(s["predicateType"], "https://slsa.dev/provenance/v1");
                    assert_eq!(
                        s["subject"][0]["digest"]["sha256"],
                        digest.trim_start_matches("sha256:")
                    );
                    let text = serde_json::to_string(&s).unwrap();
                    for a in checksums["artifacts"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|a| a["arch"] == arch)
                    {
                        assert!(
                            text.contains(a["sha256"].as_str().unwrap()),
                            "a binary's digest"
                        );
                        assert!(text.contains(a["key"].as_str().unwrap()), "a binary's key");
                    }
                    assert!(!text.contains(ws.root().to_str().unwrap()), "a local path");
                }
            }
            types.push(kind);
        }
        types.sort();
        assert_eq!(
            types,
            ["application/spdx+json", "application/vnd.in-toto+json"]
        );
    }
    // The index lists the same attachments the referrers do.
    let mut listed: Vec<String> = common::attachments(&index)
        .map(|a| a["digest"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    let mut referred = attached.clone();
    referred.sort();
    assert_eq!(listed, referred, "the index lists what the referrers hold");

    // The cosign signature of the index, checked with openssl over its payload.
    let sig_manifest: Value = serde_json::from_slice(&get(
        &format!(
            "{base}/manifests/{}.sig",
            index_digest.replacen(':', "-", 1)
        ),
        MANIFEST,
    ))
    .unwrap();
    let layer = &sig_manifest["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let payload = get(
        &format!("{base}/blobs/{}", layer["digest"].as_str().unwrap()),
        "*/*",
    );
    let p: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        p["critical"]["image"]["docker-manifest-digest"],
        index_digest.as_str()
    );
    let signature = layer["annotations"]["dev.cosignproject.cosign/signature"]
        .as_str()
        .unwrap();
    std::fs::write(ws.path("payload.json"), &payload).unwrap();
    std::fs::write(ws.path("sig.b64"), signature).unwrap();
    tool(
        "openssl",
        &["base64", "-d", "-A", "-in", "sig.b64", "-out", "sig.bin"],
        ws.root(),
    );
    let verified = tool(
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.bin",
            "payload.json",
        ],
        ws.root(),
    );
    assert!(verified.contains("Verified OK"), "{verified}");

    // Still an ordinary image to skopeo and podman.
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}/chronik/signed:v1", reg.host()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tool(
        "podman",
        &[
            "pull",
            "-q",
            "--tls-verify=false",
            "--platform",
            "linux/amd64",
            &format!("docker://{}/chronik/signed:v1", reg.host()),
        ],
        Path::new("/"),
    );

    // Reproducible: a second push attaches the same documents (same digests), and
    // the same key doesn't sign the same index twice.
    push("v2");
    let sig_url = format!(
        "{base}/manifests/{}.sig",
        index_digest.replacen(':', "-", 1)
    );
    let layers = |url: &str| -> usize {
        let m: Value = serde_json::from_slice(&get(url, MANIFEST)).unwrap();
        m["layers"].as_array().unwrap().len()
    };
    assert_eq!(layers(&sig_url), 1);
    // Another signer's signature is added beside the first, never over it.
    tool(
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "key.pem",
        ],
        ws.root(),
    );
    tool("chmod", &["600", "key.pem"], ws.root());
    push("v3");
    let sig_manifest: Value = serde_json::from_slice(&get(&sig_url, MANIFEST)).unwrap();
    let sigs = sig_manifest["layers"].as_array().unwrap();
    assert_eq!(sigs.len(), 2, "{sig_manifest}");
    assert_eq!(
        sigs[0]["annotations"]["dev.cosignproject.cosign/signature"], signature,
        "the first signature is kept"
    );
    for m in common::images(&index) {
        let tag = m["digest"].as_str().unwrap().replacen(':', "-", 1);
        let referrers: Value =
            serde_json::from_slice(&get(&format!("{base}/manifests/{tag}"), INDEX)).unwrap();
        assert_eq!(
            referrers["manifests"].as_array().unwrap().len(),
            2,
            "no new referrers"
        );
        for r in referrers["manifests"].as_array().unwrap() {
            assert!(attached.contains(&r["digest"].as_str().unwrap().to_string()));
        }
    }
}

/// The blob of `digest` in the layout at `layout`.
fn layout_blob(layout: &Path, digest: &str) -> Value {
    let p = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Without a registry, the SBOMs and the provenance travel in the image itself: the
/// index of the layout and of the archive lists them (platform `unknown/unknown`,
/// `subject` the platform manifest), every blob is there, `podman load` still loads
/// the archive and `skopeo` copies the layout; `--no-attach` leaves them out.
#[test]
fn layouts_and_archives_carry_the_attachments_and_still_load() {
    let ws = TempWorkspace::built_chronik();
    let archive = ws.path("chronik.tar");
    let run = ws.kiln(&[
        "image",
        "--output",
        &format!("oci-archive:{}", archive.display()),
    ]);
    run.success();
    assert!(run.stderr.contains("Attached"), "{}", run.stderr);
    let layout = ws.path("target/kiln/image");
    let top: Value = serde_json::from_str(&ws.read("target/kiln/image/index.json")).unwrap();
    assert_eq!(top["manifests"].as_array().unwrap().len(), 1, "one image");
    let index = layout_blob(&layout, top["manifests"][0]["digest"].as_str().unwrap());
    let platforms: Vec<&str> = common::images(&index)
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert_eq!(platforms.len(), 2);
    let mut kinds = Vec::new();
    let mut blobs = vec![top["manifests"][0]["digest"].as_str().unwrap().to_string()];
    for a in common::attachments(&index) {
        assert_eq!(a["platform"]["os"], "unknown", "{a}");
        let digest = a["digest"].as_str().unwrap();
        let manifest = layout_blob(&layout, digest);
        let subject = manifest["subject"]["digest"].as_str().unwrap();
        assert!(
            platforms.contains(&subject),
            "refers to a platform: {manifest}"
        );
        assert_eq!(manifest["artifactType"], a["artifactType"]);
        blobs.push(digest.to_string());
        for l in manifest["layers"].as_array().unwrap() {
            let d = l["digest"].as_str().unwrap();
            assert!(layout.join("blobs/sha256").join(&d[7..]).is_file());
            blobs.push(d.to_string());
        }
        kinds.push((
            subject.to_string(),
            a["artifactType"].as_str().unwrap().to_string(),
        ));
    }
    kinds.sort();
    assert_eq!(
        kinds.len(),
        4,
        "an SBOM and a provenance per platform: {kinds:?}"
    );
    for p in &platforms {
        let of: Vec<&str> = kinds
            .iter()
            .filter(|(s, _)| s == p)
            .map(|(_, k)| k.as_str())
            .collect();
        assert_eq!(
            of,
            ["application/spdx+json", "application/vnd.in-toto+json"]
        );
    }
    // The archive holds each of those blobs once.
    let listing = tool("tar", &["-tf", archive.to_str().unwrap()], ws.root());
    let names: Vec<&str> = listing.lines().collect();
    for d in &blobs {
        let name = format!("blobs/sha256/{}", &d[7..]);
        assert_eq!(
            names.iter().filter(|n| **n == name).count(),
            1,
            "{name} in the archive"
        );
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "no blob twice");

    tool(
        "podman",
        &["load", "-q", "-i", archive.to_str().unwrap()],
        ws.root(),
    );
    tool(
        "skopeo",
        &[
            "copy",
            "--all",
            &format!("oci:{}:latest", layout.display()),
            &format!("dir:{}", ws.path("copied").display()),
        ],
        ws.root(),
    );

    ws.kiln(&["image", "--no-attach"]).success();
    let top: Value = serde_json::from_str(&ws.read("target/kiln/image/index.json")).unwrap();
    let index = layout_blob(&layout, top["manifests"][0]["digest"].as_str().unwrap());
    assert_eq!(common::attachments(&index).count(), 0);
    assert_eq!(common::images(&index).count(), 2);
}

/// A signing key that isn't one stops the push before anything is uploaded.
#[test]
fn a_bad_signing_key_pushes_nothing() {
    let reg = common::Registry::start(None);
    let ws = TempWorkspace::built_chronik();
    ws.write(
        "bad.pem",
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    );
    // Readable by others: refused before it is even parsed, with the fix.
    let reference = format!("{}/chronik/bad:v1", reg.host());
    let run = ws.kiln(&[
        "image",
        "--push",
        &reference,
        "--insecure",
        "--sign-key",
        "bad.pem",
    ]);
    run.failure(2, "can be read by other users");
    assert!(run.stderr.contains("chmod 600"), "{}", run.stderr);
    tool("chmod", &["600", "bad.pem"], ws.root());
    let run = ws.kiln(&[
        "image",
        "--push",
        &reference,
        "--insecure",
        "--sign-key",
        "bad.pem",
    ]);
    run.failure(2, "not an ECDSA P-256 key");
    assert!(!run.stderr.contains("bm90IGEga2V5"));
    let tags = Command::new("curl")
        .args([
            "-s",
            &format!("http://{}/v2/chronik/bad/tags/list", reg.host()),
        ])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&tags.stdout).contains("v1"),
        "pushed anyway"
    );
}

/// `kiln image --artifact-dir DIR` reads everything from that store: binaries and SBOMs alike
/// (it used to read the SBOMs from the default store and fail with exit 101).
#[test]
fn an_image_of_a_store_elsewhere_carries_that_stores_sboms() {
    let ws = TempWorkspace::chronik();
    let out = ws.path("elsewhere");
    let out_arg = out.to_str().unwrap();
    ws.kiln(&["build", "--artifact-dir", out_arg]).success();
    assert!(
        !ws.path("artifacts").exists(),
        "built into the default store"
    );
    let layout = ws.path("layout");
    ws.kiln(&[
        "image",
        "--artifact-dir",
        out_arg,
        "--output",
        &format!("oci:{}", layout.display()),
    ])
    .success();
    let top: Value =
        serde_json::from_str(&std::fs::read_to_string(layout.join("index.json")).unwrap()).unwrap();
    let index = layout_blob(&layout, top["manifests"][0]["digest"].as_str().unwrap());
    let mut sboms = 0;
    for a in common::attachments(&index).filter(|a| a["artifactType"] == "application/spdx+json") {
        let manifest = layout_blob(&layout, a["digest"].as_str().unwrap());
        for l in manifest["layers"].as_array().unwrap() {
            let title = l["annotations"]["org.opencontainers.image.title"]
                .as_str()
                .unwrap();
            let blob = std::fs::read(
                layout
                    .join("blobs/sha256")
                    .join(&l["digest"].as_str().unwrap()[7..]),
            )
            .unwrap();
            let arch = if blob.windows(6).any(|w| w == b"x86_64") {
                "amd64"
            } else {
                "arm64"
            };
            let file = std::fs::read(out.join("linux").join(arch).join(title)).unwrap();
            assert_eq!(blob, file, "{title} is the one in the store read");
            sboms += 1;
        }
    }
    assert_eq!(sboms, 4, "two binaries' SBOMs per platform");
}
