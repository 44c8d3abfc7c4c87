//! Pushing kiln's images to an OCI registry and pulling base images from one.
//!
//! A thin client of our own over ureq rather than oci-client: kiln needs six calls of
//! the distribution API, blocking code fits the rest of kiln, and oci-client would add
//! tokio and still not read docker's credential config. The push order is what keeps a
//! registry consistent: blobs (each only if the registry lacks it), then the platform
//! manifests by digest, then the index under the tags, so a failed push never leaves
//! a tag pointing at a partial image.

mod auth;
mod client;
mod cosign;
mod reference;

pub use auth::{lookup as lookup_credentials, Credentials, Purpose, Source};
pub use client::Client;
pub use cosign::{payload as cosign_payload, signature_tag, SigningKey, SIGNATURE_ANNOTATION};
pub use kiln_config::is_loopback_host;
pub use reference::{is_valid_tag, Reference};

use client::Body;
use kiln_diagnostics::{Error, Result};
use kiln_oci::{media, BaseImage, BasePlatform, BlobDir, Built, Descriptor};

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Blobs uploaded, with their sizes.
    pub uploaded: Vec<(String, u64)>,
    /// Blobs the registry already had.
    pub skipped: usize,
    /// References now pointing at the index.
    pub tags: Vec<String>,
    /// The index digest.
    pub digest: String,
}

impl Client {
    /// Pushes `built` (its blobs in `blobs`) and tags the index with `tags`; its
    /// attachments are also made findable as referrers of their platform manifests.
    pub fn push(
        &self,
        blobs: &BlobDir,
        built: &Built,
        tags: &[String],
        on_blob: &dyn Fn(&Descriptor, bool),
    ) -> Result<PushReport> {
        // Every tag is checked before anything is uploaded: a bad one later in the
        // list must not leave the earlier ones pushed.
        if let Some(bad) = tags.iter().find(|t| !reference::is_valid_tag(t)) {
            return Err(Error::usage(format!(
                "invalid tag `{}`",
                kiln_diagnostics::printable(bad, 140)
            ))
            .hint("tags are letters, digits, `_`, `.` and `-`, at most 128, not starting with `.` or `-`"));
        }
        let mut report = PushReport {
            digest: built.index.digest.clone(),
            ..Default::default()
        };
        let mut seen = std::collections::BTreeSet::new();
        for m in &built.manifests {
            for d in m.layers.iter().map(|l| &l.descriptor).chain([&m.config]) {
                if !seen.insert(d.digest.clone()) {
                    continue;
                }
                let uploaded = self.push_blob(blobs, d)?;
                on_blob(d, uploaded);
                if uploaded {
                    report.uploaded.push((d.digest.clone(), d.size));
                } else {
                    report.skipped += 1;
                }
            }
        }
        for m in &built.manifests {
            self.put_manifest(blobs, &m.manifest, &m.manifest.digest)?;
        }
        // The index lists the attachments, so they go up before it is tagged.
        for a in &built.attachments {
            self.attach(&a.subject, &a.artifact)?;
        }
        for tag in tags {
            self.put_manifest(blobs, &built.index, tag)?;
            report.tags.push(tag.clone());
        }
        Ok(report)
    }

    /// Uploads one blob unless the registry has it; true when uploaded.
    fn push_blob(&self, blobs: &BlobDir, d: &Descriptor) -> Result<bool> {
        if self.blob_exists(&d.digest)? {
            return Ok(false);
        }
        self.upload_blob(&blobs.path(&d.digest), d)?;
        Ok(true)
    }

    /// Whether the repository has the blob `digest`.
    pub fn blob_exists(&self, digest: &str) -> Result<bool> {
        let url = self.url(&format!("blobs/{digest}"));
        Ok(self.send("HEAD", &url, &[], &Body::Empty)?.status == 200)
    }

    /// Uploads the file `path` as the blob `d` (POST, then one PUT).
    pub fn upload_blob(&self, path: &std::path::Path, d: &Descriptor) -> Result<()> {
        self.upload(&Body::File(path, d.size), d)
    }

    /// Uploads `bytes` (small blobs: configs, cache entries) as the blob `d`.
    pub fn upload_blob_bytes(&self, bytes: &[u8], d: &Descriptor) -> Result<()> {
        self.upload(&Body::Bytes(bytes), d)
    }

    /// POST a new upload session, then PUT the blob to it once. A failed PUT is
    /// retried from a new session: the registry may have closed the old one.
    fn upload(&self, body: &Body, d: &Descriptor) -> Result<()> {
        let mut tries = 0;
        loop {
            tries += 1;
            let start = self.send(
                "POST",
                &self.url("blobs/uploads/"),
                &[("Content-Length", "0")],
                &Body::Empty,
            )?;
            let location = match (start.status, &start.location) {
                (202, Some(l)) => self.absolute(l)?,
                _ => return Err(self.unexpected("starting a blob upload", &start)),
            };
            let sep = if location.contains('?') { '&' } else { '?' };
            let url = format!("{location}{sep}digest={}", d.digest);
            let put = self.send_once(
                "PUT",
                &url,
                &[("Content-Type", "application/octet-stream")],
                body,
            );
            let retry = match &put {
                Ok(a) if a.status == 201 => return Ok(()),
                Ok(a) => a.status >= 500 || a.status == 429,
                Err(e) => e.kind() == kiln_diagnostics::Kind::Remote,
            };
            if !retry || tries >= self.attempts() {
                return match put {
                    Ok(a) => {
                        Err(self
                            .unexpected(&format!("the upload of blob {}", short(&d.digest)), &a))
                    }
                    Err(e) => Err(e),
                };
            }
            self.wait(tries);
        }
    }

    /// A small blob in memory, checked against its digest; `None` when absent.
    pub fn blob_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>> {
        let a = self.send(
            "GET",
            &self.url(&format!("blobs/{digest}")),
            &[],
            &Body::Empty,
        )?;
        match a.status {
            200 if format!("sha256:{}", kiln_fs::sha256_hex(&a.body)) == digest => Ok(Some(a.body)),
            200 => Err(Error::remote(format!(
                "blob {} from `{}` does not match its digest",
                short(digest),
                self.registry()
            ))),
            404 => Ok(None),
            _ => Err(self.unexpected(&format!("blob {}", short(digest)), &a)),
        }
    }

    /// Downloads the blob `digest` of `size` bytes into the file `dest` (streamed;
    /// renamed into place when complete; more than `size` bytes is an error). False
    /// when the registry doesn't have it. The caller checks the content against the
    /// digest.
    pub fn download_blob(&self, digest: &str, size: u64, dest: &std::path::Path) -> Result<bool> {
        let a = self.send_to(
            "GET",
            &self.url(&format!("blobs/{digest}")),
            &[],
            &Body::Empty,
            Some((dest, size)),
        )?;
        match a.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.unexpected(&format!("blob {}", short(digest)), &a)),
        }
    }

    /// Stores `bytes` as the manifest `reference` (a tag or digest).
    pub fn put_manifest_bytes(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<()> {
        let a = self.send(
            "PUT",
            &self.url(&format!("manifests/{reference}")),
            &[("Content-Type", media_type)],
            &Body::Bytes(bytes),
        )?;
        if a.status != 201 {
            return Err(self.unexpected(&format!("the manifest {}", short(reference)), &a));
        }
        Ok(())
    }

    /// Pushes `artifact` as a referrer of `subject` and makes it findable: through
    /// the referrers API where the registry has one, else by adding it to the
    /// referrers tag (`sha256-<hex>`, an index of every referrer), the fallback the
    /// distribution spec defines. Returns the artifact manifest's descriptor entry.
    pub fn attach(
        &self,
        subject: &Descriptor,
        artifact: &kiln_oci::Artifact,
    ) -> Result<serde_json::Value> {
        for (mt, bytes) in artifact.blobs() {
            let d = Descriptor::of(mt, bytes);
            if !self.blob_exists(&d.digest)? {
                self.upload_blob_bytes(bytes, &d)?;
            }
        }
        let (bytes, entry) = artifact.manifest(subject);
        let digest = entry["digest"].as_str().unwrap_or_default().to_string();
        self.put_manifest_bytes(&digest, media::MANIFEST, &bytes)?;
        if !self.has_referrers_api(subject)? {
            let tag = kiln_oci::referrers_tag(subject);
            let current = self.manifest_bytes_as(&tag, media::INDEX)?;
            let index = kiln_oci::with_referrer(current.as_deref(), &entry);
            self.put_manifest_bytes(&tag, media::INDEX, &index)?;
        }
        Ok(entry)
    }

    /// Whether the registry answers the referrers API (`GET /v2/<name>/referrers/<digest>`).
    pub fn has_referrers_api(&self, subject: &Descriptor) -> Result<bool> {
        let a = self.send(
            "GET",
            &self.url(&format!("referrers/{}", subject.digest)),
            &[("Accept", media::INDEX)],
            &Body::Empty,
        )?;
        Ok(a.status == 200
            && serde_json::from_slice::<serde_json::Value>(&a.body)
                .is_ok_and(|v| v["manifests"].is_array()))
    }

    /// The manifest at `reference`, or `None` when the registry has none there.
    pub fn manifest_bytes(&self, reference: &str) -> Result<Option<Vec<u8>>> {
        self.manifest_bytes_as(reference, media::MANIFEST)
    }

    /// The manifest at `reference` of the media type `accept`, if any.
    pub fn manifest_bytes_as(&self, reference: &str, accept: &str) -> Result<Option<Vec<u8>>> {
        let a = self.send(
            "GET",
            &self.url(&format!("manifests/{reference}")),
            &[("Accept", accept)],
            &Body::Empty,
        )?;
        match a.status {
            200 => Ok(Some(a.body)),
            404 => Ok(None),
            _ => Err(self.unexpected(&format!("the manifest {}", short(reference)), &a)),
        }
    }

    /// Every tag of the repository (an empty list for a repository not created yet).
    pub fn tags(&self) -> Result<Vec<String>> {
        let a = self.send("GET", &self.url("tags/list?n=100000"), &[], &Body::Empty)?;
        match a.status {
            200 => {
                let v: serde_json::Value = serde_json::from_slice(&a.body).map_err(|e| {
                    Error::remote(format!("`{}` sent an unreadable tag list", self.registry()))
                        .with_source(e)
                })?;
                Ok(v["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect())
            }
            404 => Ok(Vec::new()),
            _ => Err(self.unexpected("the tag list", &a)),
        }
    }

    /// Checks that the registry answers (`GET /v2/`), authenticating if it asks.
    pub fn ping(&self) -> Result<()> {
        let url = self.url("tags/list?n=1");
        let a = self.send("GET", &url, &[], &Body::Empty)?;
        if a.status >= 500 {
            return Err(self.unexpected("a ping", &a));
        }
        Ok(())
    }

    fn put_manifest(&self, blobs: &BlobDir, d: &Descriptor, reference: &str) -> Result<()> {
        let bytes = blobs.read(&d.digest)?;
        let a = self.send(
            "PUT",
            &self.url(&format!("manifests/{reference}")),
            &[("Content-Type", d.media_type.as_str())],
            &Body::Bytes(&bytes),
        )?;
        if a.status != 201 {
            return Err(self.unexpected(&format!("the manifest {}", short(reference)), &a));
        }
        Ok(())
    }

    /// The manifest or index at `reference`, with its media type and digest.
    fn get_manifest(&self, reference: &str) -> Result<(Vec<u8>, String, String)> {
        let accept = [
            media::INDEX,
            media::MANIFEST,
            media::DOCKER_LIST,
            media::DOCKER_MANIFEST,
        ]
        .join(", ");
        let a = self.send(
            "GET",
            &self.url(&format!("manifests/{reference}")),
            &[("Accept", accept.as_str())],
            &Body::Empty,
        )?;
        if a.status == 404 {
            return Err(Error::usage(format!(
                "`{}/{}:{reference}` does not exist",
                self.registry(),
                self.repository()
            ))
            .hint("check the base image's name and tag"));
        }
        if a.status != 200 {
            return Err(self.unexpected(&format!("the manifest {reference}"), &a));
        }
        let digest = format!("sha256:{}", kiln_fs::sha256_hex(&a.body));
        if reference.starts_with("sha256:") && digest != reference {
            return Err(Error::remote(format!(
                "registry `{}` sent a manifest that does not match {reference}",
                self.registry()
            )));
        }
        let media_type = serde_json::from_slice::<serde_json::Value>(&a.body)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(String::from))
            .or(a.content_type.clone())
            .unwrap_or_default();
        Ok((a.body, media_type, digest))
    }

    /// Downloads a blob into `blobs`, checking its digest.
    fn fetch_blob(&self, blobs: &BlobDir, d: &Descriptor) -> Result<()> {
        if blobs.has(&d.digest) {
            return Ok(());
        }
        let missing = || {
            Error::remote(format!(
                "`{}` has no blob {}",
                self.registry(),
                short(&d.digest)
            ))
        };
        if d.size <= SMALL_BLOB {
            let bytes = self.blob_bytes(&d.digest)?.ok_or_else(missing)?;
            blobs.put(&d.media_type, &bytes)?;
            return Ok(());
        }
        // Layers are streamed to disk (no size limit but their own), then checked.
        let dest = blobs.path(&d.digest);
        let staging = kiln_fs::temp_path(&dest);
        if !self.download_blob(&d.digest, d.size, &staging)? {
            return Err(missing());
        }
        match kiln_fs::sha256_file(&staging) {
            Ok((sha, size)) if format!("sha256:{sha}") == d.digest && size == d.size => {
                std::fs::rename(&staging, &dest).map_err(|e| Error::io("rename into", &dest, e))
            }
            _ => {
                let _ = std::fs::remove_file(&staging);
                Err(Error::remote(format!(
                    "blob {} from `{}` does not match its digest",
                    short(&d.digest),
                    self.registry()
                )))
            }
        }
    }

    /// Pulls the base image `reference` for `arches` into `blobs`.
    pub fn pull_base(
        &self,
        reference: &Reference,
        arches: &[String],
        blobs: &BlobDir,
    ) -> Result<BaseImage> {
        let (body, media_type, digest) = self.get_manifest(&reference.reference)?;
        let top: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            Error::remote(format!("`{reference}` is not a valid manifest")).with_source(e)
        })?;
        let mut manifests = Vec::new();
        if media_type == media::INDEX || media_type == media::DOCKER_LIST {
            for arch in arches {
                let entry = top["manifests"].as_array().into_iter().flatten().find(|m| {
                    m["platform"]["os"] == "linux" && m["platform"]["architecture"] == arch.as_str()
                });
                let Some(d) = entry.and_then(|e| e["digest"].as_str()) else {
                    return Err(Error::usage(format!("base image `{reference}` has no linux/{arch} variant"))
                        .hint("choose a multi-arch base, or limit the image's platforms with `--platform`"));
                };
                if !is_digest(d) {
                    return Err(Error::remote(format!(
                        "base image `{reference}` names its linux/{arch} manifest by an invalid digest"
                    )));
                }
                let (b, _, _) = self.get_manifest(d)?;
                manifests.push((arch.clone(), b));
            }
        } else {
            manifests.push((String::new(), body.clone()));
        }
        let mut platforms = Vec::new();
        for (arch, bytes) in manifests {
            let m: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                Error::remote(format!("`{reference}` has an invalid manifest")).with_source(e)
            })?;
            let config_desc = descriptor(&m["config"])?;
            self.fetch_blob(blobs, &config_desc)?;
            let config: serde_json::Value =
                serde_json::from_slice(&blobs.read(&config_desc.digest)?).map_err(|e| {
                    Error::remote(format!("`{reference}` has an invalid config")).with_source(e)
                })?;
            let arch = if arch.is_empty() {
                config["architecture"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            } else {
                arch
            };
            let mut layers = Vec::new();
            for l in m["layers"].as_array().into_iter().flatten() {
                let mut d = descriptor(l)?;
                if d.media_type != media::LAYER_GZIP && d.media_type != media::DOCKER_LAYER {
                    return Err(Error::usage(format!("base image `{reference}` has a layer of type `{}`, which kiln can't append to", d.media_type))
                        .hint("use a base image with gzip layers"));
                }
                self.fetch_blob(blobs, &d)?;
                d.media_type = media::LAYER_GZIP.into();
                layers.push(d);
            }
            platforms.push(BasePlatform {
                arch,
                config,
                layers,
            });
        }
        Ok(BaseImage {
            name: reference.to_string(),
            digest,
            platforms,
        })
    }
}

fn descriptor(v: &serde_json::Value) -> Result<Descriptor> {
    match (
        v["mediaType"].as_str(),
        v["digest"].as_str(),
        v["size"].as_u64(),
    ) {
        (Some(_), Some(d), Some(_)) if !is_digest(d) => Err(Error::remote(
            "a manifest names a blob by an invalid digest (not `sha256:` and 64 hex digits)",
        )),
        (Some(m), Some(d), Some(s)) => Ok(Descriptor {
            media_type: m.into(),
            digest: d.into(),
            size: s,
        }),
        _ => Err(Error::remote("a manifest has an invalid descriptor")),
    }
}

/// Blobs up to this size are read into memory; larger ones are streamed to disk.
const SMALL_BLOB: u64 = client::MAX_IN_MEMORY;

/// `sha256:0123456789ab` for messages; anything that is not a valid digest is shown
/// as `<invalid digest>` (it came from outside and may hold anything).
pub fn short(digest: &str) -> &str {
    match is_digest(digest) {
        true => &digest[..19],
        false => "<invalid digest>",
    }
}

/// Whether `digest` is `sha256:` and 64 lowercase hex digits: the only form kiln
/// accepts from a registry before using it as a name or a path.
pub fn is_digest(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(kiln_fs::is_sha256_hex)
}

#[cfg(test)]
mod digest_tests {
    use super::*;

    #[test]
    fn only_sha256_digests_are_names() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(is_digest(&good));
        assert_eq!(short(&good), &good[..19]);
        for bad in [
            "sha256:/etc/hostname",
            "sha256:ÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄ",
            "",
            "sha512:00",
        ] {
            assert!(!is_digest(bad), "{bad}");
            assert_eq!(short(bad), "<invalid digest>");
        }
        let v = serde_json::json!({"mediaType": "x", "digest": "sha256:/etc/hostname", "size": 1});
        assert!(descriptor(&v).is_err());
    }
}

/// No input from a registry or a user makes these parsers panic.
#[cfg(test)]
mod no_panic {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn references_tags_and_digests(s in ".{0,200}") {
            let _ = Reference::parse(&s);
            let _ = is_valid_tag(&s);
            let _ = is_digest(&s);
            let _ = short(&s);
            let _ = is_loopback_host(&s);
        }

        #[test]
        fn challenges(s in ".{0,200}") {
            let _ = auth::parse_challenge(&s);
            let _ = auth::realm_may_receive_credentials(&s, "ghcr.io");
        }

        #[test]
        fn registry_json(v in proptest::arbitrary::any::<(Option<String>, Option<String>, Option<u64>)>()) {
            let json = serde_json::json!({"mediaType": v.0, "digest": v.1, "size": v.2});
            let _ = descriptor(&json);
        }
    }
}
