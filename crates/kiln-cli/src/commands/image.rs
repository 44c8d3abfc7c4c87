//! `kiln image` and `kiln dockerfile`.

use super::{build::human_size, load_workspace, open_cache, short};
use crate::args::{Cli, DockerfileArgs, ImageArgs};
use crate::reporter::Reporter;
use kiln_artifacts::Store;
use kiln_diagnostics::{Error, IoContext, Result};
use kiln_image::{BlobDir, DockerBase, ImageSpec, LayerCache, PlatformImage, Provenance};
use kiln_registry::{Client, Reference};
use kiln_schema::Event;
use kiln_toolchain::Target;
use kiln_workspace::Workspace;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where `kiln image` writes its OCI layout by default.
fn default_layout(ws: &Workspace) -> PathBuf {
    ws.target_dir.join("kiln/image")
}

/// The image spec, resolved from the config and what the store (or workspace) holds.
fn spec(
    ws: &Workspace,
    available: &[String],
    base: Option<&str>,
    version: impl Fn(&str) -> Option<String>,
) -> Result<ImageSpec> {
    let mut config = ws.config.image.clone().unwrap_or_default();
    if let Some(b) = base {
        config.base = Some(b.to_string());
    }
    let dir_name = ws
        .root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "app".into());
    let git = kiln_build::git_info(&ws.root);
    let provenance = Provenance {
        source: ws
            .root_manifest
            .get("workspace")
            .and_then(|w| w.get("package"))
            .or_else(|| ws.root_manifest.get("package"))
            .and_then(|p| p.get("repository"))
            .and_then(|r| r.as_str())
            .map(String::from),
        revision: git.commit,
        version: None,
    };
    let mut spec = ImageSpec::resolve(
        Some(&config),
        &dir_name,
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

/// The platforms to build: `--platform`, else the configured targets.
fn platforms(ws: &Workspace, args: &[String]) -> Result<Vec<Target>> {
    let wanted: Vec<String> = if !args.is_empty() {
        args.iter()
            .flat_map(|a| a.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    } else if let Some(t) = &ws.config.targets {
        t.clone()
    } else {
        return Ok(Target::defaults());
    };
    wanted.iter().map(|t| Target::parse(t)).collect()
}

pub(crate) fn image(cli: &Cli, args: &ImageArgs, r: &Reporter) -> Result<ExitCode> {
    let ws = load_workspace(cli)?;
    let store = Store::new(kiln_build::artifact_dir(&ws, args.out.as_deref()));
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
        return Err(Error::usage(format!(
            "the artifact store is not consistent: {} {}",
            p.path, p.detail
        ))
        .hint("run `kiln build` to rewrite it, then `kiln image` again"));
    }
    let mut available: Vec<String> = checksums
        .artifacts
        .iter()
        .map(|a| a.binary.clone())
        .collect();
    available.sort();
    available.dedup();
    let spec = spec(&ws, &available, args.base.as_deref(), |bin| {
        checksums
            .artifacts
            .iter()
            .find(|a| a.binary == bin)
            .map(|a| a.version.clone())
    })?;
    let targets = platforms(&ws, &args.platforms)?;
    let mut images = Vec::new();
    for t in &targets {
        let mut binaries = Vec::new();
        for b in &spec.binaries {
            let rec = checksums
                .artifacts
                .iter()
                .find(|a| a.binary == *b && a.arch == t.arch && a.os == "linux");
            let Some(rec) = rec else {
                return Err(Error::usage(format!(
                    "`{b}` has no artifact for {} in `{}`",
                    t.platform(),
                    short(store.root())
                ))
                .hint(format!(
                    "run `kiln build --target {}` first, or leave {} out with `--platform`",
                    t.arch,
                    t.platform()
                )));
            };
            needs_no_libc(rec, spec.base.as_deref())?;
            binaries.push((b.clone(), store.root().join(&rec.path)));
        }
        images.push(PlatformImage {
            arch: t.arch.clone(),
            binaries,
        });
    }
    let (kind, dest) = parse_output(args.output.as_deref(), &ws)?;
    let layout = if kind == "oci" {
        dest.clone()
    } else {
        default_layout(&ws)
    };
    let cache = open_cache(&ws).ok();
    let layer_cache = cache
        .as_ref()
        .map(|c| LayerCache::new(c.root().join("layers")));
    let parent = layout.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).io_context("create", parent)?;
    let staging = kiln_fs::temp_path(&layout);
    let result = (|| {
        let blobs = BlobDir::new(&staging)?;
        let base = match &spec.base {
            Some(b) => {
                let reference = Reference::parse(b)?;
                r.status("Pulling", &format!("base image {reference}"));
                let client =
                    Client::for_pull(&reference, args.insecure && reference.is_loopback())?;
                let arches: Vec<String> = targets.iter().map(|t| t.arch.clone()).collect();
                Some(client.pull_base(&reference, &arches, &blobs)?)
            }
            None => None,
        };
        let names: Vec<String> = targets.iter().map(|t| t.platform()).collect();
        r.status(
            "Assembling",
            &format!(
                "{} ({}) from {}",
                spec.name,
                names.join(", "),
                short(store.root())
            ),
        );
        let attach = |img: &PlatformImage, subject: &kiln_oci::Descriptor| {
            if args.no_attach {
                return Ok(Vec::new());
            }
            attachments(&ws, &checksums, img, &spec.name, subject)
        };
        let built = kiln_image::assemble(
            &spec,
            &images,
            base.as_ref(),
            &blobs,
            layer_cache.as_ref(),
            &attach,
        )?;
        kiln_image::write_layout(&blobs, &built, &spec.name, "latest")?;
        Ok::<_, Error>(built)
    })();
    let built = match result {
        Ok(b) => b,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    replace_dir(&staging, &layout)?;
    let blobs = BlobDir::new(&layout)?;
    let mut layers = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for m in &built.manifests {
        for l in &m.layers {
            if !seen.insert(l.descriptor.digest.clone()) {
                continue;
            }
            let what = l.role.to_string();
            r.info(
                "Layer",
                &format!(
                    "{} {:>9}  {what}{}",
                    kiln_registry::short(&l.descriptor.digest),
                    human_size(l.descriptor.size),
                    if l.cached { " (cached)" } else { "" }
                ),
            );
            layers.push((l.descriptor.digest.clone(), l.descriptor.size, what));
        }
        r.info(
            "Manifest",
            &format!("linux/{} {}", m.arch, m.manifest.digest),
        );
    }
    for a in &built.attachments {
        r.info(
            "Attached",
            &format!(
                "{} to linux/{} {}",
                a.artifact.artifact_type, a.arch, a.manifest.digest
            ),
        );
    }
    let mut outputs = vec![format!("oci:{}", short(&layout))];
    if kind == "oci-archive" {
        kiln_image::write_archive(&blobs, &built, &dest, spec.epoch)?;
        outputs.push(format!("oci-archive:{}", short(&dest)));
    }
    r.status(
        "Wrote",
        &format!("{} {}", outputs.join(", "), built.index.digest),
    );
    let mut pushed = Vec::new();
    if let Some(target) = &args.push {
        let reference = Reference::parse(target)?;
        if reference.reference.starts_with("sha256:") {
            return Err(Error::usage("`--push` takes a tag, not a digest")
                .hint("write it as `registry/repository:tag`"));
        }
        // The key is read before anything is pushed: a bad one pushes nothing.
        let key = signing_key(args)?;
        let client = Client::new(&reference, args.insecure)?;
        let mut tags = vec![reference.reference.clone()];
        tags.extend(args.tags.iter().cloned());
        tags.dedup();
        let report = client.push(&blobs, &built, &tags, &|d, uploaded| {
            if uploaded && r.verbose() {
                r.info(
                    "Uploaded",
                    &format!("{} {}", kiln_registry::short(&d.digest), human_size(d.size)),
                );
            }
        })?;
        let bytes: u64 = report.uploaded.iter().map(|(_, s)| s).sum();
        for t in &report.tags {
            pushed.push(reference.with_tag(t).to_string());
        }
        r.status(
            "Pushed",
            &format!(
                "{} ({} blobs uploaded, {}; {} already there) {}",
                pushed.join(", "),
                report.uploaded.len(),
                human_size(bytes),
                report.skipped,
                report.digest
            ),
        );
        if !built.attachments.is_empty() {
            r.status(
                "Referred",
                &format!(
                    "{} attachments to their platform manifests",
                    built.attachments.len()
                ),
            );
        }
        if let Some(key) = key {
            let tag = client.sign(&built.index, &key)?;
            r.status(
                "Signed",
                &format!("{} as {}", built.index.digest, reference.with_tag(&tag)),
            );
        }
    }
    r.event(&Event::ImageWritten {
        digest: built.index.digest.clone(),
        platforms: built
            .manifests
            .iter()
            .map(|m| (format!("linux/{}", m.arch), m.manifest.digest.clone()))
            .collect(),
        layers,
        outputs,
        pushed,
    });
    Ok(ExitCode::SUCCESS)
}

/// Refuses a glibc binary on an image without a base: `FROM scratch` has no C
/// library to run it. Names the base to use instead.
fn needs_no_libc(rec: &kiln_schema::ArtifactRecord, base: Option<&str>) -> Result<()> {
    let glibc = Target::parse(&rec.target).is_ok_and(|t| t.is_gnu());
    if !glibc || base.is_some() {
        return Ok(());
    }
    Err(Error::usage(format!(
        "`{}` for linux/{} is a glibc binary ({}), and an image `FROM scratch` has no C library to run it",
        rec.binary,
        rec.arch,
        kiln_diagnostics::printable(&rec.target, 80)
    ))
    .hint("set a glibc base: `base = \"debian:bookworm-slim\"` under [workspace.metadata.kiln.image], or `--base`")
    .hint("or build the static musl targets (`amd64`, `arm64`) for a scratch image"))
}

/// The key `--sign-key FILE` or `KILN_IMAGE_SIGNING_KEY` names, if any.
fn signing_key(args: &ImageArgs) -> Result<Option<kiln_registry::SigningKey>> {
    let pem = match &args.sign_key {
        // Refused when others can read it (as ssh does): they could sign too.
        Some(path) => kiln_trust::read_secret_file(path)
            .map_err(|e| e.hint("pass a PKCS#8 PEM file to --sign-key"))?
            .into_bytes(),
        None => match &kiln_config::env().image_signing_key {
            Some(secret) => secret.expose().to_vec(),
            None => return Ok(None),
        },
    };
    kiln_registry::SigningKey::from_pem(&pem).map(Some)
}

/// What is attached to a platform manifest `subject` of the image `name`: the SBOMs
/// of its binaries (one artifact, a layer per SPDX file) and an in-toto statement
/// with SLSA v1 provenance. Deterministic: the same build attaches the same bytes,
/// wherever the image is written or pushed.
fn attachments(
    ws: &Workspace,
    checksums: &kiln_schema::Checksums,
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
            checksums
                .artifacts
                .iter()
                .find(|a| a.binary == *b && a.arch == img.arch && a.os == "linux")
        })
        .collect();
    let store = kiln_build::artifact_dir(ws, None);
    let mut sboms = Vec::new();
    for rec in &records {
        for s in rec.sboms.iter().filter(|s| s.format.starts_with("spdx")) {
            let path = store.join(&s.path);
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
    let statement = provenance(ws, &records, name, subject);
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
    ws: &Workspace,
    records: &[&kiln_schema::ArtifactRecord],
    name: &str,
    subject: &kiln_oci::Descriptor,
) -> serde_json::Value {
    let workspace = ws
        .root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let origin = kiln_workspace::git_line(&ws.root, &["remote", "get-url", "origin"])
        .map(|u| kiln_workspace::without_credentials(&u));
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

/// `oci:DIR` or `oci-archive:FILE`; the default is the layout under `target/kiln/image`.
fn parse_output(output: Option<&str>, ws: &Workspace) -> Result<(String, PathBuf)> {
    let Some(o) = output else {
        return Ok(("oci".into(), default_layout(ws)));
    };
    match o.split_once(':') {
        Some(("oci", p)) if !p.is_empty() => Ok(("oci".into(), absolute(p))),
        Some(("oci-archive", p)) if !p.is_empty() => Ok(("oci-archive".into(), absolute(p))),
        _ => Err(Error::usage(format!("unknown image output `{o}`"))
            .hint("use `oci:DIR` (an OCI layout) or `oci-archive:FILE.tar` (for `podman load` / `docker load`)")),
    }
}

fn absolute(p: &str) -> PathBuf {
    std::env::current_dir().unwrap_or_default().join(p)
}

/// Puts the finished directory `new` where `dest` is, replacing an old one.
fn replace_dir(new: &Path, dest: &Path) -> Result<()> {
    if dest.exists() {
        let old = kiln_fs::temp_path(dest);
        std::fs::rename(dest, &old).io_context("move aside", dest)?;
        std::fs::rename(new, dest).io_context("rename into", dest)?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(new, dest).io_context("rename into", dest)?;
    }
    Ok(())
}

pub(crate) fn dockerfile(cli: &Cli, args: &DockerfileArgs, r: &Reporter) -> Result<ExitCode> {
    let ws = load_workspace(cli)?;
    let store = Store::new(kiln_build::artifact_dir(&ws, None));
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
    let spec = spec(&ws, &available, args.base.as_deref(), |bin| {
        ws.members
            .iter()
            .find(|p| p.bins.iter().any(|b| b == bin))
            .map(|p| p.version.clone())
    })?;
    for rec in records.iter().filter(|a| spec.binaries.contains(&a.binary)) {
        needs_no_libc(rec, spec.base.as_deref())?;
    }
    let out = args
        .output
        .as_ref()
        .map_or_else(|| ws.root.clone(), |o| absolute(&o.to_string_lossy()));
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
    let rootfs = out.join("kiln-rootfs");
    let staging = kiln_fs::temp_path(&rootfs);
    let written = (|| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&staging).io_context("create", &staging)?;
        for (path, mode, bytes) in &files.rootfs {
            let p = staging.join(path);
            if mode & kiln_image::DIR != 0 {
                std::fs::create_dir_all(&p).io_context("create", &p)?;
            } else {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).io_context("create", parent)?;
                }
                std::fs::write(&p, bytes).io_context("write", &p)?;
            }
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & 0o7777))
                .io_context("set permissions of", &p)?;
        }
        Ok::<_, Error>(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    if files.rootfs.is_empty() {
        let _ = std::fs::remove_dir_all(&staging);
        let _ = std::fs::remove_dir_all(&rootfs);
    } else {
        replace_dir(&staging, &rootfs)?;
    }
    r.status(
        "Wrote",
        &format!(
            "{}, {}{} (base {})",
            short(&out.join("Dockerfile")),
            short(&out.join(".dockerignore")),
            if files.rootfs.is_empty() {
                String::new()
            } else {
                format!(", {}/", short(&rootfs))
            },
            spec.base.as_deref().unwrap_or("scratch")
        ),
    );
    let context = match short(&out) {
        s if s.is_empty() => ".".to_string(),
        s => s,
    };
    r.info(
        "Next",
        &format!(
            "kiln build && docker buildx build --platform linux/amd64,linux/arm64 -t {} {context}",
            spec.name
        ),
    );
    Ok(ExitCode::SUCCESS)
}
