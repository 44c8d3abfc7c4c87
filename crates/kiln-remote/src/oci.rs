//! An OCI registry as a remote cache, with the same auth as `kiln image`.
//!
//! Each cache entry is an OCI artifact tagged `k-<key>`: its config is the entry JSON
//! (media type `application/vnd.kiln.cache.entry.v1+json`) and its one layer the
//! binary (`application/vnd.kiln.binary.v1`), so the registry deduplicates binaries
//! across keys and a garbage-collecting registry keeps what tags point at. Learned
//! inputs are artifacts tagged `l-<id>`. Any distribution-API registry (ghcr.io,
//! ECR, Harbor, `registry:2`) works.

use crate::{check_name, Remote};
use kiln_diagnostics::{Error, Result};
use kiln_oci::{media, Descriptor};
use kiln_registry::{Client, Reference};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const ENTRY_TYPE: &str = "application/vnd.kiln.cache.entry.v1+json";
const LEARNED_TYPE: &str = "application/vnd.kiln.cache.learned.v1+json";
const BINARY_TYPE: &str = "application/vnd.kiln.binary.v1";
const ARTIFACT_TYPE: &str = "application/vnd.kiln.cache.v1";

/// `oci://registry/repository`.
pub struct OciRemote {
    client: Client,
    name: String,
}

impl OciRemote {
    /// A remote in the repository `reference` (`host[:port]/path`, no tag).
    pub fn new(
        reference: &str,
        insecure: bool,
        timeout: Duration,
        access: &kiln_config::Access,
    ) -> Result<Self> {
        let r = Reference::parse(reference).map_err(|_| {
            Error::usage(format!("invalid OCI remote cache `oci://{reference}`")).hint(
                "write it as `oci://<registry>/<repository>`, e.g. `oci://ghcr.io/org/kiln-cache`",
            )
        })?;
        if r.reference != "latest" || reference.contains('@') {
            return Err(Error::usage(format!(
                "OCI remote cache `oci://{reference}` names a tag or digest"
            ))
            .hint("give the repository only: kiln tags entries itself"));
        }
        let client = Client::new(&r, insecure, access)?.bounded(timeout, 2);
        Ok(OciRemote {
            client,
            name: format!("oci://{}/{}", r.registry, r.repository),
        })
    }

    /// The config blob of the artifact tagged `tag`, if the tag exists (its digest
    /// checked by the client).
    fn get_config(&self, tag: &str) -> Result<Option<Vec<u8>>> {
        let Some(bytes) = self.client.manifest_bytes(tag)? else {
            return Ok(None);
        };
        let manifest: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            Error::remote(format!("{} has an unreadable manifest at {tag}", self.name))
                .with_source(e)
        })?;
        let digest = manifest["config"]["digest"].as_str().unwrap_or_default();
        self.client.blob_bytes(digest)
    }

    /// Pushes `config` (and `layers`) as an artifact tagged `tag`.
    fn put_artifact(
        &self,
        tag: &str,
        config_type: &str,
        config: &[u8],
        layers: &[Descriptor],
    ) -> Result<()> {
        let config_desc = Descriptor::of(config_type, config);
        if !self.client.blob_exists(&config_desc.digest)? {
            self.client.upload_blob_bytes(config, &config_desc)?;
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media::MANIFEST,
            "artifactType": ARTIFACT_TYPE,
            "config": config_desc.to_json(),
            "layers": layers.iter().map(|l| l.to_json()).collect::<Vec<_>>(),
        });
        let bytes = kiln_oci::canonical_json(&manifest);
        self.client
            .put_manifest_bytes(tag, media::MANIFEST, bytes.as_bytes())
    }
}

impl Remote for OciRemote {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn ping(&self) -> Result<()> {
        self.client.ping()
    }

    fn get_entry(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_name(key)?;
        self.get_config(&format!("k-{}", &key[..key.len().min(64)]))
    }

    fn put_entry(&self, key: &str, json: &[u8]) -> Result<()> {
        check_name(key)?;
        let entry: serde_json::Value = serde_json::from_slice(json)
            .map_err(|e| Error::internal("a cache entry is not JSON").with_source(e))?;
        let layer = Descriptor {
            media_type: BINARY_TYPE.into(),
            digest: format!("sha256:{}", entry["sha256"].as_str().unwrap_or_default()),
            size: entry["size"].as_u64().unwrap_or_default(),
        };
        self.put_artifact(
            &format!("k-{}", &key[..key.len().min(64)]),
            ENTRY_TYPE,
            json,
            &[layer],
        )
    }

    fn get_blob(&self, sha256: &str, size: u64, dest: &Path) -> Result<bool> {
        check_name(sha256)?;
        self.client
            .download_blob(&format!("sha256:{sha256}"), size, dest)
    }

    fn has_blob(&self, sha256: &str) -> Result<bool> {
        check_name(sha256)?;
        self.client.blob_exists(&format!("sha256:{sha256}"))
    }

    fn put_blob(&self, sha256: &str, size: u64, src: &Path) -> Result<()> {
        check_name(sha256)?;
        let d = Descriptor {
            media_type: BINARY_TYPE.into(),
            digest: format!("sha256:{sha256}"),
            size,
        };
        self.client.upload_blob(src, &d)
    }

    fn learned_ids(&self) -> Result<Vec<String>> {
        Ok(self
            .client
            .tags()?
            .into_iter()
            .filter_map(|t| t.strip_prefix("l-").map(String::from))
            .collect())
    }

    fn get_learned(&self, id: &str) -> Result<Option<Vec<u8>>> {
        check_name(id)?;
        self.get_config(&format!("l-{id}"))
    }

    fn put_learned(&self, id: &str, json: &[u8]) -> Result<()> {
        check_name(id)?;
        self.put_artifact(&format!("l-{id}"), LEARNED_TYPE, json, &[])
    }
}
