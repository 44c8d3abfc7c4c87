//! S3-compatible object storage (AWS S3, MinIO, R2, GCS's S3 API) as a remote cache,
//! through the `object_store` crate (Apache Arrow's, maintained and used widely).
//!
//! `s3://bucket/prefix`; credentials, region and endpoint come from the usual
//! `AWS_*` variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`). A PUT of an S3 object is atomic, so readers
//! never see half an entry; objects are named as in the shared directory.

use crate::{check_name, Remote};
use kiln_diagnostics::{Error, IoContext, Result};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// `s3://bucket/prefix`.
pub struct S3Remote {
    store: AmazonS3,
    prefix: String,
    name: String,
    runtime: tokio::runtime::Runtime,
}

impl S3Remote {
    /// A remote at `bucket`/`prefix`, with the S3 credentials of `access`.
    pub fn new(
        bucket: &str,
        prefix: &str,
        insecure: bool,
        timeout: Duration,
        access: &kiln_config::Access,
    ) -> Result<Self> {
        let location = format!("{bucket}/{prefix}");
        // reqwest's TLS takes the process's rustls provider: ring (kiln's one crypto
        // library). Installing twice (a second remote) keeps the first; both are ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let endpoint = std::env::var("AWS_ENDPOINT_URL")
            .or_else(|_| std::env::var("AWS_ENDPOINT"))
            .ok();
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(timeout)
                    .with_connect_timeout(timeout)
                    .with_allow_http(
                        insecure || std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true"),
                    ),
            )
            .with_retry(RetryConfig {
                max_retries: 1,
                retry_timeout: timeout * 2,
                ..RetryConfig::default()
            });
        if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
            builder = builder.with_region("us-east-1");
        }
        if let Some(e) = endpoint {
            builder = builder.with_endpoint(e);
        }
        // The credentials were taken out of the environment (no child sees them):
        // they come from the settings' access.
        if let Some(v) = access.credential("AWS_ACCESS_KEY_ID") {
            builder = builder.with_access_key_id(v);
        }
        if let Some(v) = access.credential("AWS_SECRET_ACCESS_KEY") {
            builder = builder.with_secret_access_key(v);
        }
        if let Some(v) = access.credential("AWS_SESSION_TOKEN") {
            builder = builder.with_token(v);
        }
        let store = builder.build().map_err(|e| {
            Error::usage(format!("cannot use S3 remote cache `s3://{location}`"))
                .with_source(e)
                .hint("set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION (and AWS_ENDPOINT_URL for S3-compatible storage)")
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::internal("cannot start an async runtime for S3").with_source(e))?;
        Ok(S3Remote {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            name: format!("s3://{bucket}/{}", prefix.trim_matches('/')),
            runtime,
        })
    }

    fn path(&self, kind: &str, name: &str) -> Result<ObjectPath> {
        check_name(name)?;
        let p = if self.prefix.is_empty() {
            format!("{kind}/{name}")
        } else {
            format!("{}/{kind}/{name}", self.prefix)
        };
        Ok(ObjectPath::from(p))
    }

    /// A failure talking to S3: `Remote` kind (skips the remote), credentials never shown.
    fn error(&self, what: &str, e: object_store::Error) -> Error {
        Error::remote(format!("{}: {what} failed", self.name)).with_source(e)
    }

    fn get(&self, kind: &str, name: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(kind, name)?;
        self.runtime.block_on(async {
            match self.store.get(&path).await {
                Ok(r) => Ok(Some(
                    r.bytes()
                        .await
                        .map_err(|e| self.error("a download", e))?
                        .to_vec(),
                )),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.error("a download", e)),
            }
        })
    }

    fn put(&self, kind: &str, name: &str, bytes: Vec<u8>) -> Result<()> {
        let path = self.path(kind, name)?;
        self.runtime.block_on(async {
            self.store
                .put(&path, PutPayload::from(bytes))
                .await
                .map(|_| ())
                .map_err(|e| self.error("an upload", e))
        })
    }
}

impl Remote for S3Remote {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn ping(&self) -> Result<()> {
        // A lookup of an object that needn't exist: proves the bucket answers.
        self.get("entries", "ping.json").map(|_| ())
    }

    fn get_entry(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.get("entries", &format!("{key}.json"))
    }

    fn put_entry(&self, key: &str, json: &[u8]) -> Result<()> {
        self.put("entries", &format!("{key}.json"), json.to_vec())
    }

    fn get_blob(&self, sha256: &str, size: u64, dest: &Path) -> Result<bool> {
        let path = self.path("blobs", sha256)?;
        let tmp = kiln_fs::temp_path(dest);
        let found = self.runtime.block_on(async {
            use futures_util::StreamExt;
            let r = match self.store.get(&path).await {
                Ok(r) => r,
                Err(object_store::Error::NotFound { .. }) => return Ok(false),
                Err(e) => return Err(self.error("a download", e)),
            };
            let mut file = std::fs::File::create(&tmp).io_context("create", &tmp)?;
            let mut stream = r.into_stream();
            let mut written = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.error("a download", e))?;
                written += chunk.len() as u64;
                if written > size {
                    return Err(kiln_diagnostics::Error::remote(format!(
                        "blob {sha256} is larger than its entry says ({size} bytes)"
                    )));
                }
                file.write_all(&chunk).io_context("write", &tmp)?;
            }
            file.sync_all().io_context("write", &tmp)?;
            Ok(true)
        });
        match found {
            Ok(true) => {
                std::fs::rename(&tmp, dest).io_context("rename into", dest)?;
                Ok(true)
            }
            other => {
                let _ = std::fs::remove_file(&tmp);
                other
            }
        }
    }

    fn has_blob(&self, sha256: &str) -> Result<bool> {
        let path = self.path("blobs", sha256)?;
        self.runtime.block_on(async {
            match self.store.head(&path).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(self.error("a lookup", e)),
            }
        })
    }

    fn put_blob(&self, sha256: &str, _size: u64, src: &Path) -> Result<()> {
        let bytes = std::fs::read(src).io_context("read", src)?;
        self.put("blobs", sha256, bytes)
    }

    fn learned_ids(&self) -> Result<Vec<String>> {
        let prefix = self.path("learned", "x")?;
        let dir = ObjectPath::from(prefix.as_ref().trim_end_matches("/x"));
        self.runtime.block_on(async {
            use futures_util::StreamExt;
            let mut out = Vec::new();
            let mut list = self.store.list(Some(&dir));
            while let Some(meta) = list.next().await {
                let meta = meta.map_err(|e| self.error("a listing", e))?;
                if let Some(id) = meta
                    .location
                    .filename()
                    .and_then(|f| f.strip_suffix(".json"))
                {
                    out.push(id.to_string());
                }
            }
            Ok(out)
        })
    }

    fn get_learned(&self, id: &str) -> Result<Option<Vec<u8>>> {
        self.get("learned", &format!("{id}.json"))
    }

    fn put_learned(&self, id: &str, json: &[u8]) -> Result<()> {
        self.put("learned", &format!("{id}.json"), json.to_vec())
    }
}
