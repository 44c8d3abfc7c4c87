//! `kiln image`: the store's binaries as a multi-arch OCI image, without a daemon.

use crate::spec::{needs_no_libc, short, spec};
use kiln_artifacts::Store;
use kiln_config::{ImageOutput, Target};
use kiln_diagnostics::{Error, Result};
use kiln_image::{BlobDir, ImageSpec, LayerCache, PlatformImage};
use kiln_registry::{Client, Reference};
use kiln_schema::{Event, LayerRole};
use kiln_workspace::Workspace;
use std::path::PathBuf;

/// What `kiln image` was asked for (the store and platforms are the settings').
#[derive(Debug, Clone, Default)]
pub struct ImageRequest {
    /// `--output`: an OCI layout directory or archive besides the default layout.
    pub output: Option<ImageOutput>,
    /// `--push`: the reference to push to.
    pub push: Option<String>,
    /// `--tag`: more tags for the push.
    pub tags: Vec<String>,
    /// `--base`: the base image instead of the configured one.
    pub base: Option<String>,
    /// `--insecure`: plain HTTP to a registry on this machine.
    pub insecure: bool,
    /// `--sign-key`: the cosign key file (else `KILN_IMAGE_SIGNING_KEY`).
    pub sign_key: Option<PathBuf>,
    /// Attach the SBOMs and provenance (not `--no-attach`).
    pub attach: bool,
    /// Where kiln keeps compressed layers between runs.
    pub layer_cache: Option<PathBuf>,
}

/// Verifies the store, assembles the image of its binaries for the settings'
/// platforms, writes it (the default layout under `target/kiln/image`, and the
/// requested output), pushes and signs it when asked. Emits `image-started` and,
/// at the end, `image-written`.
pub fn image(ws: &Workspace, req: &ImageRequest, emit: &dyn Fn(Event)) -> Result<()> {
    let store = Store::new(&ws.settings.artifact_dir.value);
    let checksums = store.read_checksums()?;
    if checksums.artifacts.is_empty() {
        return Err(Error::usage(format!(
            "no artifacts in `{}` to build an image from",
            short(store.root())
        ))
        .hint("run `kiln build` first"));
    }
    let report = store.verify()?;
    if let Some(p) = report.problems.first() {
        return Err(Error::new(
            kiln_diagnostics::Kind::VerifyFailed,
            format!(
                "the artifact store is not consistent: {} {}",
                p.path, p.detail
            ),
        )
        .hint("run `kiln build` to rewrite it, then `kiln image` again"));
    }
    let mut available: Vec<String> = checksums
        .artifacts
        .iter()
        .map(|a| a.binary.clone())
        .collect();
    available.sort();
    available.dedup();
    let spec = spec(ws, &available, req.base.as_deref(), |bin| {
        checksums
            .artifacts
            .iter()
            .find(|a| a.binary == bin)
            .map(|a| a.version.clone())
    })?;
    let targets = &ws.settings.targets.value;
    let images = platform_images(&spec, targets, &store, &checksums)?;
    emit(Event::ImageStarted {
        name: spec.name.clone(),
        platforms: targets.iter().map(Target::platform).collect(),
        store: short(store.root()),
        base: spec.base.clone(),
    });
    // kiln's own layout is replaced whole; a layout of the user's gets the image
    // added (refused up front when the directory is anything else).
    let layout = ws.target_dir.join("kiln/image");
    match &req.output {
        Some(ImageOutput::Layout(dir)) => kiln_image::check_layout_dir(dir)?,
        Some(ImageOutput::Archive(dest)) => kiln_image::check_archive_dest(dest)?,
        None => {}
    }
    let workspace = crate::spec::dir_name(ws);
    let origin = kiln_workspace::git_line(&ws.root, &["remote", "get-url", "origin"])
        .map(|u| kiln_workspace::without_credentials(&u));
    let source = kiln_image::Source {
        store: store.root(),
        checksums: &checksums,
        workspace: &workspace,
        origin: origin.as_deref(),
    };
    let layer_cache = req.layer_cache.as_ref().map(LayerCache::new);
    let mut built = None;
    kiln_fs::install_dir(&layout, |staging| {
        let blobs = BlobDir::new(staging)?;
        let base = match &spec.base {
            Some(b) => {
                let reference = Reference::parse(b)?;
                // `--insecure` is for the destination; the base may share it only
                // when its host is listed too (a loopback one is plain HTTP anyway).
                let access = &ws.settings.access;
                let listed = access.insecure_registries.contains(&reference.registry);
                let client = Client::for_pull(&reference, req.insecure && listed, access)?;
                let arches: Vec<String> = targets.iter().map(|t| t.arch.clone()).collect();
                Some(client.pull_base(&reference, &arches, &blobs)?)
            }
            None => None,
        };
        let attach = |img: &PlatformImage, subject: &kiln_oci::Descriptor| {
            if !req.attach {
                return Ok(Vec::new());
            }
            kiln_image::attachments(&source, img, &spec.name, subject)
        };
        let b = kiln_image::assemble(
            &spec,
            &images,
            base.as_ref(),
            &blobs,
            layer_cache.as_ref(),
            &attach,
        )?;
        kiln_image::write_layout(&blobs, &b, &spec.name, "latest")?;
        built = Some(b);
        Ok(())
    })?;
    let built = built.expect("filled when the layout was written");
    let blobs = BlobDir::new(&layout)?;
    let mut outputs = vec![format!("oci:{}", short(&layout))];
    match &req.output {
        Some(ImageOutput::Archive(dest)) => {
            kiln_image::write_archive(&blobs, &built, dest, spec.epoch)?;
            outputs.push(format!("oci-archive:{}", short(dest)));
        }
        Some(ImageOutput::Layout(dir)) => {
            kiln_image::add_to_layout(&blobs, &built, dir, &spec.name, "latest")?;
            outputs.push(format!("oci:{}", short(dir)));
        }
        None => {}
    }
    let (pushed, uploaded, signed) = match &req.push {
        Some(target) => push(ws, req, target, &blobs, &built)?,
        None => (Vec::new(), (0, 0, 0), None),
    };
    let mut layers = Vec::new();
    let mut cached_layers = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for l in built.manifests.iter().flat_map(|m| m.layers.iter()) {
        if seen.insert(l.descriptor.digest.clone()) {
            layers.push((
                l.descriptor.digest.clone(),
                l.descriptor.size,
                match &l.role {
                    kiln_oci::LayerRole::Base(n) => LayerRole::Base { n: *n },
                    kiln_oci::LayerRole::System => LayerRole::System,
                    kiln_oci::LayerRole::Binaries(arch) => {
                        LayerRole::Binaries { arch: arch.clone() }
                    }
                },
            ));
            if l.cached {
                cached_layers.push(l.descriptor.digest.clone());
            }
        }
    }
    emit(Event::ImageWritten {
        digest: built.index.digest.clone(),
        platforms: built
            .manifests
            .iter()
            .map(|m| (format!("linux/{}", m.arch), m.manifest.digest.clone()))
            .collect(),
        layers,
        outputs,
        pushed,
        cached_layers,
        attached: built
            .attachments
            .iter()
            .map(|a| {
                (
                    a.artifact.artifact_type.clone(),
                    format!("linux/{}", a.arch),
                    a.manifest.digest.clone(),
                )
            })
            .collect(),
        uploaded,
        signed,
    });
    Ok(())
}

/// Each platform's binaries, from the store's records.
fn platform_images(
    spec: &ImageSpec,
    targets: &[Target],
    store: &Store,
    checksums: &kiln_schema::Checksums,
) -> Result<Vec<PlatformImage>> {
    targets
        .iter()
        .map(|t| {
            let binaries = spec
                .binaries
                .iter()
                .map(|b| {
                    let rec = checksums
                        .artifacts
                        .iter()
                        .find(|a| a.binary == *b && a.arch == t.arch && a.os == "linux")
                        .ok_or_else(|| {
                            Error::usage(format!(
                                "`{b}` has no artifact for {} in `{}`",
                                t.platform(),
                                short(store.root())
                            ))
                            .hint(format!(
                                "run `kiln build --target {}` first, or leave {} out with `--platform`",
                                t.arch,
                                t.platform()
                            ))
                        })?;
                    needs_no_libc(rec, spec.base.as_deref())?;
                    Ok((b.clone(), store.root().join(&rec.path)))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(PlatformImage {
                arch: t.arch.clone(),
                binaries,
            })
        })
        .collect()
}

/// What a push did: the references pushed, `(blobs uploaded, their bytes, blobs
/// already there)`, and the signature's reference.
type Pushed = (Vec<String>, (usize, u64, usize), Option<String>);

/// Pushes the image (blobs once, the index last) to `target` and its tags, and signs
/// it when a key is given. A bad key is refused before anything is pushed.
fn push(
    ws: &Workspace,
    req: &ImageRequest,
    target: &str,
    blobs: &BlobDir,
    built: &kiln_oci::Built,
) -> Result<Pushed> {
    let reference = Reference::parse(target)?;
    if reference.reference.starts_with("sha256:") {
        return Err(Error::usage("`--push` takes a tag, not a digest")
            .hint("write it as `registry/repository:tag`"));
    }
    let key = signing_key(ws, req)?;
    let client = Client::new(&reference, req.insecure, &ws.settings.access)?;
    let mut tags = vec![reference.reference.clone()];
    tags.extend(req.tags.iter().cloned());
    tags.dedup();
    let report = client.push(blobs, built, &tags, &|_, _| {})?;
    let bytes: u64 = report.uploaded.iter().map(|(_, s)| s).sum();
    let pushed = report
        .tags
        .iter()
        .map(|t| reference.with_tag(t).to_string())
        .collect();
    let signed = match key {
        Some(key) => {
            let tag = client.sign(&built.index, &key)?;
            Some(reference.with_tag(&tag).to_string())
        }
        None => None,
    };
    Ok((
        pushed,
        (report.uploaded.len(), bytes, report.skipped),
        signed,
    ))
}

/// The key `--sign-key FILE` or `KILN_IMAGE_SIGNING_KEY` names, if any.
fn signing_key(ws: &Workspace, req: &ImageRequest) -> Result<Option<kiln_registry::SigningKey>> {
    let pem = match &req.sign_key {
        // Refused when others can read it (as ssh does): they could sign too.
        Some(path) => kiln_trust::read_secret_file(path)
            .map_err(|e| e.hint("pass a PKCS#8 PEM file to --sign-key"))?
            .into_bytes(),
        None => match &ws.settings.image_signing_key {
            Some(secret) => secret.expose().to_vec(),
            None => return Ok(None),
        },
    };
    kiln_registry::SigningKey::from_pem(&pem).map(Some)
}
