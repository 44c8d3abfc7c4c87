//! Image assembly: layers, one config and manifest per platform, the index over them,
//! and the two local outputs (OCI layout directory, OCI archive).

use crate::layer::{write_layer, LayerCache};
use crate::tar::{self, Content, Entry};
use kiln_config::ImageConfig;
use kiln_diagnostics::{Error, IoContext, Result};
use kiln_fs::rfc3339;
use kiln_oci::{
    canonical_json, media, Artifact, Attachment, BaseImage, BasePlatform, BlobDir, Built,
    Descriptor, Layer, LayerRole, PlatformManifest,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `PATH` in kiln's images: binaries go to `/usr/local/bin`.
const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The user the image runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Name in `/etc/passwd`.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
}

/// Everything that decides an image, resolved from `[workspace.metadata.kiln.image]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// Image name (for the layout reference and the Dockerfile's comments).
    pub name: String,
    /// Binaries copied to `/usr/local/bin`.
    pub binaries: Vec<String>,
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// The user.
    pub user: User,
    /// `9092/tcp`...
    pub ports: Vec<String>,
    /// Directories owned by the user and declared volumes.
    pub volumes: Vec<String>,
    /// Environment, added to `PATH`.
    pub env: BTreeMap<String, String>,
    /// Config labels (the OCI annotations are copied here too).
    pub labels: BTreeMap<String, String>,
    /// Manifest and index annotations.
    pub annotations: BTreeMap<String, String>,
    /// `WorkingDir`.
    pub workdir: String,
    /// The base image reference, `None` for scratch.
    pub base: Option<String>,
    /// Whether a scratch image gets the CA bundle.
    pub ca_certificates: bool,
    /// Seconds since the epoch for every timestamp (`SOURCE_DATE_EPOCH` or the commit).
    pub epoch: u64,
}

/// Facts about the build the annotations record.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    /// Repository URL.
    pub source: Option<String>,
    /// Commit.
    pub revision: Option<String>,
    /// Version of the entrypoint's package.
    pub version: Option<String>,
}

impl ImageSpec {
    /// Resolves the configuration: `default_name` is the workspace directory's name,
    /// `available` the binaries the artifact store holds.
    pub fn resolve(
        config: Option<&ImageConfig>,
        default_name: &str,
        available: &[String],
        epoch: u64,
        provenance: &Provenance,
    ) -> Result<Self> {
        let c = config.cloned().unwrap_or_default();
        let name = c
            .name
            .clone()
            .unwrap_or_else(|| default_name.to_lowercase());
        let binaries = c.binaries.clone().unwrap_or_else(|| available.to_vec());
        if binaries.is_empty() {
            return Err(
                Error::usage("the artifact store holds no binaries to put in an image")
                    .hint("run `kiln build` first"),
            );
        }
        for b in &binaries {
            if !available.contains(b) {
                return Err(Error::usage(format!("image binary `{b}` is not in the artifact store"))
                    .hint(format!("build it with `kiln build --bin {b}`, or fix `binaries` in `[workspace.metadata.kiln.image]` (the store has: {})", available.join(", "))));
            }
        }
        let entrypoint = match &c.entrypoint {
            Some(e) => e.clone(),
            None if binaries.len() == 1 => vec![binaries[0].clone()],
            None => binaries
                .iter()
                .find(|b| **b == name)
                .map(|b| vec![b.clone()])
                .unwrap_or_default(),
        };
        let user = c.user.as_ref().map_or(
            User {
                name: "app".into(),
                uid: 1000,
                gid: 1000,
            },
            |u| User {
                name: u.name.clone(),
                uid: u.uid,
                gid: u.gid.unwrap_or(u.uid),
            },
        );
        check_user_name(&user.name)?;
        let volumes: Vec<String> = c
            .volumes
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|v| image_path(&v, "volumes"))
            .collect::<Result<_>>()?;
        let workdir = match &c.workdir {
            Some(w) => image_path(w, "workdir")?,
            None => volumes.first().cloned().unwrap_or_else(|| "/".into()),
        };
        for k in c.env.iter().flatten().map(|(k, _)| k) {
            if k.is_empty() || k.contains('=') || k.chars().any(char::is_control) {
                return Err(Error::usage(format!(
                    "`{}` in [workspace.metadata.kiln.image] env is not a variable name",
                    kiln_diagnostics::printable(k, 40)
                )));
            }
        }
        let base = c.base.clone().filter(|b| b != "scratch");
        let mut annotations = BTreeMap::new();
        let oci = |k: &str| format!("org.opencontainers.image.{k}");
        annotations.insert(oci("created"), rfc3339(epoch));
        annotations.insert(oci("title"), name.clone());
        for (k, v) in [
            (
                "source",
                c.source.clone().or_else(|| provenance.source.clone()),
            ),
            ("revision", provenance.revision.clone()),
            ("version", provenance.version.clone()),
        ] {
            if let Some(v) = v {
                annotations.insert(oci(k), v);
            }
        }
        if let Some(b) = &base {
            annotations.insert(oci("base.name"), b.clone());
        }
        annotations.extend(c.annotations.clone().unwrap_or_default());
        let mut labels = annotations.clone();
        labels.extend(c.labels.clone().unwrap_or_default());
        Ok(ImageSpec {
            name,
            binaries,
            entrypoint,
            cmd: c.cmd.clone().unwrap_or_default(),
            user,
            ports: c.ports.iter().flatten().map(|p| p.spec()).collect(),
            volumes,
            env: c.env.clone().unwrap_or_default(),
            labels,
            annotations,
            workdir,
            base,
            ca_certificates: c.ca_certificates.unwrap_or(true),
            epoch,
        })
    }

    /// `/etc/passwd` for a scratch image.
    pub fn passwd(&self) -> String {
        let home = self.volumes.first().map_or("/", |v| v.as_str());
        format!(
            "root:x:0:0:root:/root:/sbin/nologin\n{}:x:{}:{}:{}:{home}:/sbin/nologin\n",
            self.user.name, self.user.uid, self.user.gid, self.user.name
        )
    }

    /// `/etc/group` for a scratch image.
    pub fn group(&self) -> String {
        format!("root:x:0:\n{}:x:{}:\n", self.user.name, self.user.gid)
    }

    /// The layer under the binaries: users and CA bundle (scratch only), `/tmp`, and
    /// the volumes owned by the user.
    fn base_entries(&self) -> Vec<Entry> {
        let mut entries = vec![Entry::dir("tmp", 0o1777)];
        if self.base.is_none() {
            entries.push(Entry::file(
                "etc/passwd",
                0o644,
                Content::Bytes(self.passwd().into_bytes()),
            ));
            entries.push(Entry::file(
                "etc/group",
                0o644,
                Content::Bytes(self.group().into_bytes()),
            ));
            if self.ca_certificates {
                entries.push(Entry::file(
                    "etc/ssl/certs/ca-certificates.crt",
                    0o644,
                    Content::Bytes(crate::certs::ca_bundle()),
                ));
            }
        }
        for v in &self.volumes {
            entries.push(Entry::owned_dir(v, 0o755, self.user.uid, self.user.gid));
        }
        if self.workdir != "/" && !self.volumes.contains(&self.workdir) {
            entries.push(Entry::dir(&self.workdir, 0o755));
        }
        entries
    }
}

/// `path` (a volume or the working directory) as an absolute path of plain
/// components: no `..`, no control characters, nothing a layer can't hold.
fn image_path(path: &str, key: &str) -> Result<String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let ok = parts
        .iter()
        .all(|p| *p != "." && *p != ".." && !p.chars().any(char::is_control))
        && path.len() <= 1024;
    if !ok {
        return Err(Error::usage(format!(
            "`{}` in [workspace.metadata.kiln.image] {key} is not a plain absolute path",
            kiln_diagnostics::printable(path, 60)
        ))
        .hint("write it like `/data`: no `..` or `.` components, no control characters"));
    }
    Ok(format!("/{}", parts.join("/")))
}

/// A user name `/etc/passwd` can hold: what `useradd` accepts.
fn check_user_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = name.len() <= 32
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "the image user `{}` is not a valid user name",
            kiln_diagnostics::printable(name, 40)
        ))
        .hint("use lowercase letters, digits, `_` or `-`, starting with a letter, at most 32 characters"))
    }
}

/// One platform's input: its binaries on disk.
#[derive(Debug, Clone)]
pub struct PlatformImage {
    /// OCI architecture (`amd64`).
    pub arch: String,
    /// `(name, path)` of each binary.
    pub binaries: Vec<(String, PathBuf)>,
}

/// What is attached to one platform's manifest (its SBOMs, its provenance).
pub type Attach<'a> = &'a dyn Fn(&PlatformImage, &Descriptor) -> Result<Vec<Artifact>>;

/// Writes every blob of the image into `blobs` and returns the index. `attach`
/// gives each platform manifest its attachments, which the index lists after the
/// platforms.
pub fn assemble(
    spec: &ImageSpec,
    platforms: &[PlatformImage],
    base: Option<&BaseImage>,
    blobs: &BlobDir,
    cache: Option<&LayerCache>,
    attach: Attach,
) -> Result<Built> {
    let own_base = write_layer(
        &spec.base_entries(),
        spec.epoch,
        blobs,
        cache,
        LayerRole::System,
    )?;
    let mut manifests = Vec::new();
    let mut index_entries = Vec::new();
    let (mut attachments, mut attached_entries) = (Vec::new(), Vec::new());
    for p in platforms {
        let entries: Vec<Entry> = p
            .binaries
            .iter()
            .map(|(name, path)| {
                Entry::file(
                    &format!("usr/local/bin/{name}"),
                    0o755,
                    Content::File(path.clone()),
                )
            })
            .collect();
        let bin_layer = write_layer(
            &entries,
            spec.epoch,
            blobs,
            cache,
            LayerRole::Binaries(p.arch.clone()),
        )?;
        let base_platform = match base {
            Some(b) => Some(b.platforms.iter().find(|bp| bp.arch == p.arch).ok_or_else(|| {
                Error::usage(format!("base image `{}` has no linux/{} variant", b.name, p.arch))
                    .hint("choose a multi-arch base, or build only the platforms it has (`--platform`)")
            })?),
            None => None,
        };
        let mut layers: Vec<Layer> = base_platform
            .map(|bp| {
                let diff_ids = bp.config["rootfs"]["diff_ids"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                bp.layers
                    .iter()
                    .zip(diff_ids)
                    .enumerate()
                    .map(|(i, (d, id))| Layer {
                        descriptor: d.clone(),
                        diff_id: id.as_str().unwrap_or_default().to_string(),
                        cached: true,
                        role: LayerRole::Base(i + 1),
                    })
                    .collect()
            })
            .unwrap_or_default();
        layers.push(own_base.clone());
        layers.push(bin_layer);
        let config = image_config(spec, &p.arch, base_platform, &layers);
        let config_desc = blobs.put_json(media::CONFIG, &config)?;
        let mut annotations = spec.annotations.clone();
        if let Some(b) = base {
            annotations.insert(
                "org.opencontainers.image.base.digest".into(),
                b.digest.clone(),
            );
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media::MANIFEST,
            "config": config_desc.to_json(),
            "layers": layers.iter().map(|l| l.descriptor.to_json()).collect::<Vec<_>>(),
            "annotations": annotations,
        });
        let manifest_desc = blobs.put_json(media::MANIFEST, &manifest)?;
        let mut entry = manifest_desc.to_json();
        entry["platform"] = json!({"architecture": p.arch, "os": "linux"});
        index_entries.push(entry);
        for artifact in attach(p, &manifest_desc)? {
            for (mt, bytes) in artifact.blobs() {
                blobs.put(mt, bytes)?;
            }
            let (bytes, mut entry) = artifact.manifest(&manifest_desc);
            let manifest = blobs.put(media::MANIFEST, &bytes)?;
            entry["platform"] = kiln_oci::not_a_platform();
            attached_entries.push(entry);
            attachments.push(Attachment {
                arch: p.arch.clone(),
                subject: manifest_desc.clone(),
                artifact,
                manifest,
            });
        }
        manifests.push(PlatformManifest {
            arch: p.arch.clone(),
            manifest: manifest_desc,
            config: config_desc,
            layers,
        });
    }
    let mut annotations = spec.annotations.clone();
    if let Some(b) = base {
        annotations.insert(
            "org.opencontainers.image.base.digest".into(),
            b.digest.clone(),
        );
    }
    index_entries.extend(attached_entries);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media::INDEX,
        "manifests": index_entries,
        "annotations": annotations,
    });
    let index = blobs.put_json(media::INDEX, &index)?;
    Ok(Built {
        index,
        manifests,
        attachments,
    })
}

/// The image config of one platform, on top of the base's when there is one.
fn image_config(
    spec: &ImageSpec,
    arch: &str,
    base: Option<&BasePlatform>,
    layers: &[Layer],
) -> Value {
    let mut root = base.map_or_else(|| json!({}), |b| b.config.clone());
    let base_config = root.get("config").cloned().unwrap_or_else(|| json!({}));
    let mut env: Vec<String> = base_config["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_else(|| vec![PATH.to_string()]);
    for (k, v) in &spec.env {
        env.retain(|e| e.split('=').next() != Some(k));
        env.push(format!("{k}={v}"));
    }
    let set = |key: &str, extra: Vec<String>| {
        let mut m: Map<String, Value> = base_config[key].as_object().cloned().unwrap_or_default();
        for e in extra {
            m.insert(e, json!({}));
        }
        m
    };
    let ports = set("ExposedPorts", spec.ports.clone());
    let volumes = set("Volumes", spec.volumes.clone());
    let mut labels: Map<String, Value> = base_config["Labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (k, v) in &spec.labels {
        labels.insert(k.clone(), json!(v));
    }
    let mut config = json!({
        "User": format!("{}:{}", spec.user.uid, spec.user.gid),
        "Env": env,
        "WorkingDir": spec.workdir,
        "Labels": labels,
    });
    if !spec.entrypoint.is_empty() {
        config["Entrypoint"] = json!(spec.entrypoint);
    }
    if !spec.cmd.is_empty() || !spec.entrypoint.is_empty() {
        config["Cmd"] = json!(spec.cmd);
    }
    if !ports.is_empty() {
        config["ExposedPorts"] = Value::Object(ports);
    }
    if !volumes.is_empty() {
        config["Volumes"] = Value::Object(volumes);
    }
    let created = rfc3339(spec.epoch);
    let mut history: Vec<Value> = root["history"].as_array().cloned().unwrap_or_default();
    history.push(json!({"created": created, "created_by": "kiln image: users, /tmp and volumes"}));
    history.push(json!({"created": created, "created_by": format!("kiln image: {}", spec.binaries.join(", "))}));
    root["architecture"] = json!(arch);
    root["os"] = json!("linux");
    root["created"] = json!(created);
    root["config"] = config;
    root["rootfs"] = json!({"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()});
    root["history"] = json!(history);
    if let Some(obj) = root.as_object_mut() {
        // Fields of the base that describe how *it* was built.
        for k in ["container", "container_config", "docker_version", "variant"] {
            obj.remove(k);
        }
    }
    root
}

/// Writes `index.json` and `oci-layout` so `blobs`' root is an OCI image layout whose
/// one image is tagged `tag`.
pub fn write_layout(blobs: &BlobDir, built: &Built, name: &str, tag: &str) -> Result<()> {
    let mut entry = built.index.to_json();
    entry["annotations"] = json!({
        "org.opencontainers.image.ref.name": tag,
        "io.containerd.image.name": format!("{name}:{tag}"),
    });
    let index = json!({"schemaVersion": 2, "mediaType": media::INDEX, "manifests": [entry]});
    kiln_fs::write_atomic(
        &blobs.root().join("index.json"),
        canonical_json(&index).as_bytes(),
    )?;
    kiln_fs::write_atomic(
        &blobs.root().join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
}

/// Every blob `built` uses, attachments included, each once: the index first.
fn used_digests(built: &Built) -> Vec<String> {
    let mut digests: Vec<String> = vec![built.index.digest.clone()];
    for PlatformManifest {
        manifest: m,
        config: c,
        layers,
        ..
    } in &built.manifests
    {
        digests.push(m.digest.clone());
        digests.push(c.digest.clone());
        digests.extend(layers.iter().map(|l| l.descriptor.digest.clone()));
    }
    for a in &built.attachments {
        let blobs = a
            .artifact
            .blobs()
            .map(|(mt, b)| Descriptor::of(mt, b).digest);
        digests.extend(blobs.chain([a.manifest.digest.clone()]));
    }
    let mut seen = std::collections::BTreeSet::new();
    digests.retain(|d| seen.insert(d.clone()));
    digests
}

/// Whether kiln may write an image into the directory `dir`: it doesn't exist, is
/// empty, or is an OCI layout (an `oci-layout` file and a readable `index.json`).
/// Anything else is refused: kiln adds to a layout, never replaces what it
/// didn't write.
pub fn check_layout_dir(dir: &Path) -> Result<()> {
    let refuse = |why: &str| {
        Err(Error::usage(format!(
            "`{}` can't take the image: {why}",
            dir.display()
        ))
        .hint("pass `--output oci:DIR` a new or empty directory, or an existing OCI layout (kiln adds the image to it)"))
    };
    match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) if dir.exists() => return refuse("it is not a directory"),
        Err(e) => return Err(Error::io("read", dir, e)),
        Ok(mut entries) => {
            if entries.next().is_none() {
                return Ok(());
            }
        }
    }
    if !dir.join("oci-layout").is_file() {
        return refuse("it holds files and is not an OCI layout (no `oci-layout` file)");
    }
    if dir.join("index.json").exists() && read_index(dir).is_err() {
        return refuse("its `index.json` is not an OCI index");
    }
    Ok(())
}

fn read_index(dir: &Path) -> Result<Value> {
    let path = dir.join("index.json");
    let bytes = std::fs::read(&path).io_context("read", &path)?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::usage(format!("`{}` is not JSON", path.display())).with_source(e))?;
    if !v["manifests"].is_array() {
        return Err(Error::usage(format!(
            "`{}` has no `manifests` list",
            path.display()
        )));
    }
    Ok(v)
}

/// Adds the image `built` (its blobs in `blobs`) to the OCI layout at `dir` as
/// `tag`, as skopeo does: blobs it lacks are linked or copied in (each under a
/// temporary name, then renamed), then `index.json` is rewritten in one rename with
/// the entry of the same tag replaced and every other entry kept. A kill at any
/// point leaves the layout as it was or with the image added; blobs no entry uses
/// any more stay (as skopeo leaves them). Checked with [`check_layout_dir`] first.
pub fn add_to_layout(
    blobs: &BlobDir,
    built: &Built,
    dir: &Path,
    name: &str,
    tag: &str,
) -> Result<()> {
    check_layout_dir(dir)?;
    let out = BlobDir::new(dir)?;
    for d in used_digests(built) {
        // A blob is known by its name, as `BlobDir::put` knows it.
        if out.has(&d) {
            continue;
        }
        let dest = out.path(&d);
        let src = blobs.path(&d);
        let tmp = kiln_fs::temp_path(&dest);
        if std::fs::hard_link(&src, &tmp).is_err() {
            kiln_fs::copy_hashing(&src, &tmp, false)?;
        }
        std::fs::rename(&tmp, &dest).io_context("rename into", &dest)?;
    }
    kiln_fs::sync_dir(&dir.join("blobs/sha256"))?;
    if !dir.join("oci-layout").is_file() {
        kiln_fs::write_atomic(
            &dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
    }
    let mut index = if dir.join("index.json").exists() {
        read_index(dir)?
    } else {
        json!({"schemaVersion": 2, "manifests": []})
    };
    let mut entry = built.index.to_json();
    entry["annotations"] = json!({
        "org.opencontainers.image.ref.name": tag,
        "io.containerd.image.name": format!("{name}:{tag}"),
    });
    let manifests = index["manifests"].as_array_mut().expect("checked above");
    manifests.retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] != tag);
    manifests.push(entry);
    kiln_fs::write_atomic(&dir.join("index.json"), canonical_json(&index).as_bytes())?;
    kiln_fs::sync_dir(dir)
}

/// Whether kiln may write an OCI archive at `dest`: nothing there, an empty file,
/// or an OCI archive (a tar holding `oci-layout`), which kiln replaces whole.
pub fn check_archive_dest(dest: &Path) -> Result<()> {
    let refuse = || {
        Err(Error::usage(format!(
            "`{}` exists and is not an OCI archive; kiln won't overwrite it",
            dest.display()
        ))
        .hint("pass `--output oci-archive:FILE` a new file name, or remove that file yourself"))
    };
    let file = match std::fs::File::open(dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read", dest, e)),
        Ok(f) => f,
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return refuse();
    }
    match tar_has(file, "oci-layout") {
        Ok(true) => Ok(()),
        Ok(false) => refuse(),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => refuse(),
        Err(e) => Err(Error::io("read", dest, e)),
    }
}

/// Whether the tar `file` (empty counts as yes: nothing to lose) has an entry
/// named `name`, reading headers only.
fn tar_has(mut file: std::fs::File, name: &str) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut header = [0u8; 512];
    for i in 0..100_000 {
        match file.read_exact(&mut header) {
            Err(e) if i == 0 && e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(file.metadata()?.len() == 0)
            }
            r => r?,
        }
        if header.iter().all(|&b| b == 0) {
            return Ok(false);
        }
        let field = |range: std::ops::Range<usize>| {
            let f = &header[range];
            String::from_utf8_lossy(&f[..f.iter().position(|&b| b == 0).unwrap_or(f.len())])
                .into_owned()
        };
        if field(0..100).trim_start_matches("./") == name {
            return Ok(true);
        }
        let size = u64::from_str_radix(field(124..136).trim(), 8)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        file.seek(SeekFrom::Current(size.div_ceil(512) as i64 * 512))?;
    }
    Ok(false)
}

/// Writes the layout at `blobs`' root as a tar (what `podman load` / `docker load`
/// take), holding only the blobs `built` uses, attachments included. Checked with
/// [`check_archive_dest`] first.
pub fn write_archive(blobs: &BlobDir, built: &Built, dest: &Path, epoch: u64) -> Result<()> {
    check_archive_dest(dest)?;
    let root = blobs.root();
    let digests = used_digests(built);
    let mut entries = vec![
        Entry::file("oci-layout", 0o644, Content::File(root.join("oci-layout"))),
        Entry::file("index.json", 0o644, Content::File(root.join("index.json"))),
    ];
    for d in &digests {
        let hex = d.trim_start_matches("sha256:");
        entries.push(Entry::file(
            &format!("blobs/sha256/{hex}"),
            0o644,
            Content::File(blobs.path(d)),
        ));
    }
    let tmp = kiln_fs::temp_path(dest);
    let result = std::fs::File::create(&tmp)
        .and_then(|f| {
            let mut w = std::io::BufWriter::new(f);
            tar::write(&entries, epoch, &mut w)?;
            use std::io::Write;
            w.flush()?;
            w.get_ref().sync_all()
        })
        .io_context("write", dest)
        .and_then(|_| std::fs::rename(&tmp, dest).io_context("rename into", dest));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No `[workspace.metadata.kiln.image]` strings make resolving or assembling an
    /// image panic: each is an image or a usage error.
    mod no_panic {
        use super::*;
        use proptest::prelude::*;

        /// Mostly plausible values (so assembling is reached), sometimes anything.
        fn any_text() -> impl Strategy<Value = String> {
            prop_oneof![3 => "[a-z][a-zé/_.-]{0,150}", 1 => ".{0,300}"]
        }

        /// Paths with long multi-byte components (tar's prefix/name split).
        fn any_path() -> impl Strategy<Value = String> {
            prop_oneof![3 => "(/[a-zé]{1,60}){1,5}", 1 => any_text()]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(96))]
            #[test]
            fn config_strings(
                name in any_text(),
                user in prop_oneof!["[a-z][a-z0-9_-]{0,10}", any_text()],
                volume in any_path(),
                workdir in any_path(),
                env_key in any_text(),
                env_value in any_text(),
                label in any_text(),
                entry in any_text(),
            ) {
                let c = kiln_config::ImageConfig {
                    name: Some(name),
                    entrypoint: Some(vec![entry.clone()]),
                    cmd: Some(vec![entry]),
                    user: Some(kiln_config::ImageUser { name: user, uid: 7, gid: None }),
                    volumes: Some(vec![volume]),
                    workdir: Some(workdir),
                    env: Some([(env_key, env_value.clone())].into()),
                    labels: Some([(label.clone(), env_value.clone())].into()),
                    annotations: Some([(label, env_value)].into()),
                    ca_certificates: Some(false),
                    ..Default::default()
                };
                let Ok(s) = ImageSpec::resolve(Some(&c), "srv", &["srv".into()], 1, &Provenance::default()) else {
                    return Ok(());
                };
                let dir = tempfile::tempdir().unwrap();
                let bin = dir.path().join("srv");
                std::fs::write(&bin, b"\x7fELF").unwrap();
                let blobs = BlobDir::new(&dir.path().join("layout")).unwrap();
                let platforms = [PlatformImage { arch: "amd64".into(), binaries: vec![("srv".into(), bin)] }];
                if let Ok(built) = assemble(&s, &platforms, None, &blobs, None, &|_, _| Ok(vec![])) {
                    let _ = write_layout(&blobs, &built, &s.name, "latest");
                    let _ = write_archive(&blobs, &built, &dir.path().join("a.tar"), s.epoch);
                }
            }
        }
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(1_795_856_399), "2026-11-28T08:59:59Z");
    }

    fn spec() -> ImageSpec {
        let config: kiln_config::Config = kiln_config::Config::parse(
            "[workspace.metadata.kiln.image]\nentrypoint = [\"srv\"]\ncmd = [\"run\"]\nuser = { name = \"svc\", uid = 1000 }\nports = [9092, \"53/udp\"]\nvolumes = [\"/data\"]\nenv = { A = \"1\" }\n",
        )
        .unwrap();
        ImageSpec::resolve(
            config.image.as_ref(),
            "srv",
            &["srv".into()],
            1,
            &Provenance {
                source: Some("https://example.com/srv".into()),
                revision: Some("abc".into()),
                version: Some("1.0.0".into()),
            },
        )
        .unwrap()
    }

    #[test]
    fn config_has_numeric_user_ports_volumes_and_annotations() {
        let s = spec();
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("srv");
        std::fs::write(&bin, b"\x7fELF").unwrap();
        let blobs = BlobDir::new(&dir.path().join("layout")).unwrap();
        let platforms = [PlatformImage {
            arch: "amd64".into(),
            binaries: vec![("srv".into(), bin)],
        }];
        let built = assemble(&s, &platforms, None, &blobs, None, &|_, _| Ok(vec![])).unwrap();
        let PlatformManifest {
            manifest,
            config,
            layers,
            ..
        } = &built.manifests[0];
        let config: Value = serde_json::from_slice(&blobs.read(&config.digest).unwrap()).unwrap();
        assert_eq!(config["config"]["User"], "1000:1000");
        assert_eq!(
            config["config"]["ExposedPorts"],
            json!({"9092/tcp": {}, "53/udp": {}})
        );
        assert_eq!(config["config"]["Volumes"], json!({"/data": {}}));
        assert_eq!(config["config"]["WorkingDir"], "/data");
        assert_eq!(config["config"]["Entrypoint"], json!(["srv"]));
        assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        let manifest: Value =
            serde_json::from_slice(&blobs.read(&manifest.digest).unwrap()).unwrap();
        assert_eq!(
            manifest["annotations"]["org.opencontainers.image.revision"],
            "abc"
        );
        assert_eq!(manifest["layers"].as_array().unwrap().len(), layers.len());
        assert!(s.passwd().contains("svc:x:1000:1000:svc:/data:"));
    }
}
