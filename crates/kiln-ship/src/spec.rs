//! The image spec, resolved from the config, the flags and what the store holds.

use kiln_diagnostics::Result;
use kiln_image::{ImageSpec, Provenance};
use kiln_workspace::Workspace;

/// The spec of the workspace's image: its config with `base` (a flag) over it, the
/// binaries `available`, and the entrypoint's package version from `version`.
pub(crate) fn spec(
    ws: &Workspace,
    available: &[String],
    base: Option<&str>,
    version: impl Fn(&str) -> Option<String>,
) -> Result<ImageSpec> {
    let mut config = ws.config.image.clone().unwrap_or_default();
    if let Some(b) = base {
        config.base = Some(b.to_string());
    }
    let provenance = Provenance {
        source: ws.root_repository(),
        revision: kiln_workspace::git_line(&ws.root, &["rev-parse", "--verify", "-q", "HEAD"]),
        version: None,
    };
    let mut spec = ImageSpec::resolve(
        Some(&config),
        &dir_name(ws),
        available,
        kiln_workspace::source_date_epoch(&ws.root),
        &provenance,
    )?;
    // The version is the entrypoint's package version, known once the spec is.
    if let Some(v) = spec.entrypoint.first().and_then(|e| version(e)) {
        let key = "org.opencontainers.image.version".to_string();
        spec.annotations
            .entry(key.clone())
            .or_insert_with(|| v.clone());
        spec.labels.entry(key).or_insert(v);
    }
    Ok(spec)
}

/// The workspace directory's name (the image's default name).
pub(crate) fn dir_name(ws: &Workspace) -> String {
    ws.root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "app".into())
}

/// Refuses a glibc binary on an image without a base: `FROM scratch` has no C
/// library to run it. Names the base to use instead.
pub(crate) fn needs_no_libc(rec: &kiln_schema::ArtifactRecord, base: Option<&str>) -> Result<()> {
    let glibc = kiln_config::Target::parse(&rec.target).is_ok_and(|t| t.is_gnu());
    if !glibc || base.is_some() {
        return Ok(());
    }
    Err(kiln_diagnostics::Error::usage(format!(
        "`{}` for linux/{} is a glibc binary ({}), and an image `FROM scratch` has no C library to run it",
        rec.binary,
        rec.arch,
        kiln_diagnostics::printable(&rec.target, 80)
    ))
    .hint("set a glibc base: `base = \"debian:bookworm-slim\"` under [workspace.metadata.kiln.image], or `--base`")
    .hint("or build the static musl targets (`amd64`, `arm64`) for a scratch image"))
}

/// A path relative to the current directory when it is below it, for messages.
pub(crate) fn short(path: &std::path::Path) -> String {
    kiln_fs::display_path(path)
}
