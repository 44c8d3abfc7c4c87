//! `kiln dockerfile`: a Dockerfile, its `.dockerignore` and the small root
//! filesystem it copies (users, volumes), for those who build with `docker buildx`.

use crate::spec::{needs_no_libc, short, spec};
use kiln_artifacts::Store;
use kiln_diagnostics::{Error, IoContext, Result};
use kiln_image::DockerBase;
use kiln_schema::Event;
use kiln_workspace::Workspace;
use std::path::PathBuf;

/// What `kiln dockerfile` was asked for.
#[derive(Debug, Clone, Default)]
pub struct DockerfileRequest {
    /// `--base`: the base image instead of the configured one.
    pub base: Option<String>,
    /// `--output`: the directory to write into (the build context; default: the
    /// workspace root).
    pub output: Option<PathBuf>,
}

/// Writes the Dockerfile, `.dockerignore` and `kiln-rootfs.tar`, and
/// says what it wrote.
pub fn dockerfile(ws: &Workspace, req: &DockerfileRequest) -> Result<Event> {
    let store = Store::new(&ws.settings.artifact_dir.value);
    // The Dockerfile may be written before anything is built: the workspace's binaries
    // stand in for the store's.
    let records = store
        .read_checksums()
        .map(|c| c.artifacts)
        .unwrap_or_default();
    let mut available: Vec<String> = records.iter().map(|a| a.binary.clone()).collect();
    if available.is_empty() {
        available = ws.binary_members().flat_map(|p| p.bins.clone()).collect();
    }
    available.sort();
    available.dedup();
    let spec = spec(ws, &available, req.base.as_deref(), |bin| {
        ws.members
            .iter()
            .find(|p| p.bins.iter().any(|b| b == bin))
            .map(|p| p.version.clone())
    })?;
    for rec in records.iter().filter(|a| spec.binaries.contains(&a.binary)) {
        needs_no_libc(rec, spec.base.as_deref())?;
    }
    let out = match &req.output {
        Some(o) => std::env::current_dir().unwrap_or_default().join(o),
        None => ws.root.clone(),
    };
    let artifacts = store.root().strip_prefix(&out).map_err(|_| {
        Error::usage(format!(
            "the artifact store `{}` is outside `{}`, so a docker build there can't copy it",
            store.root().display(),
            out.display()
        ))
        .hint("write the Dockerfile at the workspace root (the default) or set `artifact-dir` inside it")
    })?;
    let files = kiln_image::dockerfile(
        &spec,
        &DockerBase::parse(spec.base.as_deref()),
        &artifacts.to_string_lossy(),
    );
    std::fs::create_dir_all(&out).io_context("create", &out)?;
    kiln_fs::write_atomic(&out.join("Dockerfile"), files.dockerfile.as_bytes())?;
    kiln_fs::write_atomic(&out.join(".dockerignore"), files.dockerignore.as_bytes())?;
    let rootfs = out.join(kiln_image::ROOTFS_TAR);
    match &files.rootfs {
        Some(tar) => kiln_fs::write_atomic(&rootfs, tar)?,
        None => {
            let _ = std::fs::remove_file(&rootfs);
        }
    }
    // The directory earlier versions wrote: generated, and no longer used.
    let old = out.join("kiln-rootfs");
    if old.join("base").is_dir() || old.join("volume").is_dir() {
        let _ = std::fs::remove_dir_all(&old);
    }
    let context = match short(&out) {
        s if s.is_empty() => ".".to_string(),
        s => s,
    };
    Ok(Event::DockerfileWritten {
        dockerfile: short(&out.join("Dockerfile")),
        dockerignore: short(&out.join(".dockerignore")),
        rootfs: files.rootfs.is_some().then(|| short(&rootfs)),
        base: spec.base.clone().unwrap_or_else(|| "scratch".into()),
        next: format!(
            "kiln build && docker buildx build --platform linux/amd64,linux/arm64 -t {} {context}",
            spec.name
        ),
    })
}
