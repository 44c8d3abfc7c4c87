//! What an image carries besides its layers: each platform manifest's SBOMs (the
//! SPDX files beside its binaries) and an in-toto statement of SLSA provenance.
//! Deterministic: the same store gives the same bytes, wherever the image goes.

use crate::PlatformImage;
use kiln_diagnostics::{Error, Result};
use std::path::Path;

/// Where the attachments come from: the store and its records, and the facts about
/// the workspace the provenance names (never a local path).
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The artifact store's root.
    pub store: &'a Path,
    /// Its `checksums.json`.
    pub checksums: &'a kiln_schema::Checksums,
    /// The workspace directory's name.
    pub workspace: &'a str,
    /// The repository's URL, without credentials.
    pub origin: Option<&'a str>,
}

/// What is attached to a platform manifest `subject` of the image `name`: the SBOMs
/// of its binaries (one artifact, a layer per SPDX file) and an in-toto statement
/// with SLSA v1 provenance. Deterministic: the same build attaches the same bytes,
/// wherever the image is written or pushed.
pub fn attachments(
    source: &Source<'_>,
    img: &PlatformImage,
    name: &str,
    subject: &kiln_oci::Descriptor,
) -> Result<Vec<kiln_oci::Artifact>> {
    use std::collections::BTreeMap;
    let title = |name: &str| {
        BTreeMap::from([(
            "org.opencontainers.image.title".to_string(),
            name.to_string(),
        )])
    };
    let records: Vec<&kiln_schema::ArtifactRecord> = img
        .binaries
        .iter()
        .filter_map(|(b, _)| {
            source
                .checksums
                .artifacts
                .iter()
                .find(|a| a.binary == *b && a.arch == img.arch && a.os == "linux")
        })
        .collect();
    let mut sboms = Vec::new();
    for rec in &records {
        for s in rec.sboms.iter().filter(|s| s.format.starts_with("spdx")) {
            let path = source.store.join(&s.path);
            let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
            let name = s.path.rsplit('/').next().unwrap_or_default();
            sboms.push((kiln_oci::media::SPDX.to_string(), bytes, title(name)));
        }
    }
    let mut out = Vec::new();
    if !sboms.is_empty() {
        out.push(kiln_oci::Artifact {
            artifact_type: kiln_oci::media::SPDX.into(),
            layers: sboms,
            annotations: BTreeMap::new(),
        });
    }
    let statement = provenance(source, &records, name, subject);
    out.push(kiln_oci::Artifact {
        artifact_type: kiln_oci::media::IN_TOTO.into(),
        layers: vec![(
            kiln_oci::media::IN_TOTO.into(),
            kiln_oci::canonical_json(&statement).into_bytes(),
            title("provenance.intoto.json"),
        )],
        annotations: BTreeMap::from([(
            "in-toto.io/predicate-type".to_string(),
            "https://slsa.dev/provenance/v1".to_string(),
        )]),
    });
    Ok(out)
}

/// An in-toto statement (v1) of SLSA provenance (v1) for the manifest `subject` of
/// the image `name`: who built it (kiln and its version), from what (the repository and
/// revision, the workspace), how (`kiln build` and the targets), and each binary's
/// cache key and digest. No local paths, no credentials, no clock.
fn provenance(
    source: &Source<'_>,
    records: &[&kiln_schema::ArtifactRecord],
    name: &str,
    subject: &kiln_oci::Descriptor,
) -> serde_json::Value {
    let (workspace, origin) = (source.workspace, source.origin);
    let commit = records.iter().find_map(|r| r.git.commit.clone());
    let mut resolved = Vec::new();
    if let (Some(uri), Some(rev)) = (&origin, &commit) {
        resolved
            .push(serde_json::json!({"uri": format!("git+{uri}"), "digest": {"gitCommit": rev}}));
    }
    let byproducts: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            let mut b = serde_json::json!({
                "name": r.path,
                "digest": {"sha256": r.sha256},
            });
            if let Some(key) = &r.key {
                b["annotations"] = serde_json::json!({"kiln.cache-key": key});
            }
            b
        })
        .collect();
    let targets: Vec<&str> = records.iter().map(|r| r.target.as_str()).collect();
    serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": subject.hex()}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://github.com/kiln-build/kiln/blob/main/docs/supply-chain.md#provenance",
                "externalParameters": {
                    "workspace": workspace,
                    "command": "kiln build",
                    "targets": targets,
                    "source": origin,
                    "revision": commit,
                    "dirty": records.iter().any(|r| r.git.dirty),
                },
                "resolvedDependencies": resolved,
            },
            "runDetails": {
                "builder": {
                    "id": "https://github.com/kiln-build/kiln",
                    "version": {"kiln": env!("CARGO_PKG_VERSION")},
                },
                "byproducts": byproducts,
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provenance_names_each_binary_by_digest_and_key_and_no_local_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec: kiln_schema::ArtifactRecord = serde_json::from_value(serde_json::json!({
            "path": "linux/amd64/srv", "os": "linux", "arch": "amd64",
            "target": "x86_64-unknown-linux-musl", "package": "srv", "binary": "srv",
            "version": "1.0.0", "sha256": "ab".repeat(32), "size": 3, "profile": "release",
            "git": {"commit": "c0ffee", "dirty": false}, "rustc": "rustc 1.95.0", "backend": "zig",
            "key": "cd".repeat(32)
        }))
        .unwrap();
        std::fs::create_dir_all(dir.path().join("linux/amd64")).unwrap();
        std::fs::write(dir.path().join("linux/amd64/srv.spdx.json"), b"{}").unwrap();
        rec.sboms.push(kiln_schema::SbomRecord {
            path: "linux/amd64/srv.spdx.json".into(),
            format: "spdx-2.3".into(),
            sha256: "00".into(),
        });
        let checksums = kiln_schema::Checksums {
            artifacts: vec![rec],
            ..Default::default()
        };
        let source = Source {
            store: dir.path(),
            checksums: &checksums,
            workspace: "srv",
            origin: Some("https://example.com/srv"),
        };
        let img = PlatformImage {
            arch: "amd64".into(),
            binaries: vec![("srv".into(), dir.path().join("linux/amd64/srv"))],
        };
        let subject = kiln_oci::Descriptor::of(kiln_oci::media::MANIFEST, b"m");
        let a = attachments(&source, &img, "srv", &subject).unwrap();
        assert_eq!(a.len(), 2, "an SBOM artifact and a provenance statement");
        let statement = String::from_utf8(a[1].layers[0].1.clone()).unwrap();
        assert!(statement.contains(&"ab".repeat(32)) && statement.contains(&"cd".repeat(32)));
        assert!(statement.contains("git+https://example.com/srv"));
        assert!(!statement.contains(dir.path().to_str().unwrap()));
        assert_eq!(
            a,
            attachments(&source, &img, "srv", &subject).unwrap(),
            "deterministic"
        );
    }
}
