//! `kiln release`: the folder a release uploads, written from the artifact store.
//!
//! One archive per binary x target (`<bin>-<version>-<triple>.tar.gz`: the binary, the
//! package's LICENSE and README files, its SBOMs), byte-reproducible (kiln's
//! deterministic tar, every mtime the commit's or `SOURCE_DATE_EPOCH`); `install.sh`,
//! a POSIX installer carrying the archives' digests; `release.json`, the manifest of
//! it all; and `SHA256SUMS` over every other file. The same command runs locally and
//! in CI, so what CI uploads can be tried first.

mod manifest;

pub use manifest::{ArtifactEntry, FileEntry, ImageEntry, ReleaseManifest, RELEASE_SCHEMA_VERSION};

use kiln_artifacts::Store;
use kiln_diagnostics::{Error, IoContext, Result};
use kiln_image::{Content, Entry};
use kiln_schema::ArtifactRecord;
use kiln_workspace::Workspace;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The installer template; `@...@` fields are filled in per release.
const INSTALL_TEMPLATE: &str = include_str!("install.sh");

/// What to release and where.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The dist folder (replaced whole, never merged with other files).
    pub out: PathBuf,
    /// Compute everything, write nothing.
    pub dry_run: bool,
    /// Where the installer downloads from [default: the GitHub release of `tag`, from
    /// the package's `repository`].
    pub base_url: Option<String>,
    /// The release's tag [default: `v<version>`].
    pub tag: Option<String>,
    /// The image pushed for this release (`registry/repo@sha256:...`), recorded in the
    /// manifest.
    pub image: Option<String>,
}

/// What a release wrote (or would write, for a dry run).
#[derive(Debug, Clone)]
pub struct Released {
    /// The folder.
    pub out: PathBuf,
    /// Its manifest.
    pub manifest: ReleaseManifest,
    /// Every file of the folder, `release.json` and `SHA256SUMS` last.
    pub files: Vec<FileEntry>,
    /// `[package.metadata.binstall]` blocks matching the archive names, by package
    /// (packages with one released binary; binstall takes one archive per package).
    pub binstall: Vec<(String, String)>,
}

/// Writes the release folder for every binary in `store` (or, for a dry run, says
/// what it would hold). Every binary is checked against its recorded digest first.
pub fn release(ws: &Workspace, store: &Store, req: &Request) -> Result<Released> {
    let records = store.read_checksums()?.artifacts;
    if records.is_empty() {
        return Err(Error::usage(format!(
            "the artifact store `{}` holds no binaries to release",
            store.root().display()
        ))
        .hint("run `kiln build` first (or `kiln release` without `--no-build`)"));
    }
    let version = release_version(&records, req.tag.as_deref())?;
    let tag = req.tag.clone().unwrap_or_else(|| format!("v{version}"));
    check_words("tag", &tag)?;
    let base_url = match &req.base_url {
        Some(u) => Some(u.trim_end_matches('/').to_string()),
        None => default_base_url(ws, &records, &tag),
    };
    if let Some(u) = &base_url {
        check_url(u)?;
    }
    let image = req.image.as_deref().map(ImageEntry::parse).transpose()?;
    // What was asked is checked first (usage errors), then what would ship, under the
    // store's lock so no build replaces a file between its check and its archive.
    let _lock = store.lock()?;
    let shipped = records.iter().flat_map(|r| {
        std::iter::once((&r.path, &r.sha256)).chain(r.sboms.iter().map(|s| (&s.path, &s.sha256)))
    });
    for (rel, recorded) in shipped {
        let path = store.root().join(rel);
        let (sha, _) = kiln_fs::sha256_file(&path).io_context("read", &path)?;
        if &sha != recorded {
            return Err(Error::new(
                kiln_diagnostics::Kind::VerifyFailed,
                format!("`{rel}` is not the file checksums.json records (sha256 {sha}, recorded {recorded})"),
            )
            .hint("rebuild it with `kiln build`; nothing was released"));
        }
    }
    let epoch = kiln_workspace::source_date_epoch(&ws.root);

    let fill = |dir: &Path| -> Result<(ReleaseManifest, Vec<FileEntry>)> {
        std::fs::create_dir_all(dir).io_context("create", dir)?;
        let mut files = Vec::new();
        let mut artifacts = Vec::new();
        for r in &records {
            let (archive, entry) = write_archive(ws, store, r, dir, epoch)?;
            files.push(archive);
            artifacts.push(entry);
        }
        let script = installer(&version, base_url.as_deref(), &artifacts, &files);
        files.push(write_file(
            dir,
            "install.sh",
            "installer",
            script.as_bytes(),
        )?);
        let manifest = ReleaseManifest {
            schema_version: RELEASE_SCHEMA_VERSION,
            version: version.clone(),
            tag: tag.clone(),
            source_date_epoch: epoch,
            base_url: base_url.clone(),
            artifacts,
            image: image.clone(),
            files: files.clone(),
        };
        let mut json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
        json.push(b'\n');
        let written = write_file(dir, "release.json", "manifest", &json)?;
        let mut sums = String::new();
        let mut all: Vec<FileEntry> = files.into_iter().chain([written]).collect();
        let mut sorted: Vec<&FileEntry> = all.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        for f in sorted {
            sums.push_str(&format!("{}  {}\n", f.sha256, f.name));
        }
        all.push(write_file(dir, "SHA256SUMS", "checksums", sums.as_bytes())?);
        Ok((manifest, all))
    };

    let (manifest, files) = if req.dry_run {
        let scratch = tempfile_dir(&ws.target_dir)?;
        let m = fill(&scratch.join("dist"));
        let _ = std::fs::remove_dir_all(&scratch);
        m?
    } else {
        check_out_dir(&req.out)?;
        let mut filled = None;
        kiln_fs::install_dir(&req.out, |staging| {
            filled = Some(fill(staging)?);
            Ok(())
        })?;
        filled.expect("filled")
    };
    // binstall fills `{ repo }` from the crate's own `repository`: a block is right
    // only for packages that have one.
    let binstall = binstall_blocks(&records, &tag, &|package| {
        ws.member(package).is_some_and(|m| m.repository.is_some())
    });
    Ok(Released {
        out: req.out.clone(),
        manifest,
        files,
        binstall,
    })
}

/// The version the release carries: the one all released packages share.
fn release_version(records: &[ArtifactRecord], tag: Option<&str>) -> Result<String> {
    let mut versions: Vec<&str> = records.iter().map(|r| r.version.as_str()).collect();
    versions.sort_unstable();
    versions.dedup();
    match (versions.as_slice(), tag) {
        ([one], _) => {
            check_words("version", one)?;
            Ok(one.to_string())
        }
        (_, Some(tag)) => Ok(tag.trim_start_matches('v').to_string()),
        (many, None) => Err(Error::usage(format!(
            "the binaries have different versions ({}): which one is the release's?",
            many.join(", ")
        ))
        .hint(
            "pass `--tag vX.Y.Z` to name the release (each archive keeps its package's version)",
        )),
    }
}

/// The GitHub release download URL of `tag`, from the released packages' `repository`.
fn default_base_url(ws: &Workspace, records: &[ArtifactRecord], tag: &str) -> Option<String> {
    records.iter().find_map(|r| {
        let repo = kiln_workspace::without_credentials(&ws.repository(&r.package)?);
        let repo = repo.trim_end_matches('/').trim_end_matches(".git");
        repo.starts_with("https://github.com/")
            .then(|| format!("{repo}/releases/download/{tag}"))
    })
}

/// Names that end up in file names and inside the installer's quoted strings.
fn check_words(what: &str, s: &str) -> Result<()> {
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
    {
        return Err(Error::usage(format!(
            "the {what} `{}` can't name release files: letters, digits, `.`, `_`, `+` and `-` only",
            s.escape_debug()
        ))
        .hint("use a semver version and a tag like `v1.2.3`"));
    }
    Ok(())
}

/// A download location for the installer: https (or file, for trying it locally),
/// and nothing a shell quote could break.
fn check_url(u: &str) -> Result<()> {
    let ok_scheme = u.starts_with("https://") || u.starts_with("file://");
    let ok_chars = u
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&()*+,;=%".contains(c));
    if !ok_scheme || !ok_chars {
        return Err(Error::usage(format!(
            "`{}` can't be the installer's download location",
            u.escape_debug()
        ))
        .hint("give an https:// URL (file:// to try the installer locally)"));
    }
    Ok(())
}

/// The target triple of a record, without a pinned glibc version (binstall's `{ target }`).
fn triple(r: &ArtifactRecord) -> &str {
    r.target.split('.').next().unwrap_or(&r.target)
}

/// Writes one archive and returns its file entry and manifest entry.
fn write_archive(
    ws: &Workspace,
    store: &Store,
    r: &ArtifactRecord,
    dir: &Path,
    epoch: u64,
) -> Result<(FileEntry, ArtifactEntry)> {
    check_words("version", &r.version)?;
    check_words("binary name", &r.binary)?;
    let stem = format!("{}-{}-{}", r.binary, r.version, triple(r));
    let mut entries = vec![Entry::file(
        &format!("{stem}/{}", r.binary),
        0o755,
        Content::File(store.root().join(&r.path)),
    )];
    for doc in package_docs(ws, &r.package) {
        let name = doc
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        entries.push(Entry::file(
            &format!("{stem}/{name}"),
            0o644,
            Content::File(doc),
        ));
    }
    let mut sboms = Vec::new();
    for s in &r.sboms {
        let name = s.path.rsplit('/').next().unwrap_or(&s.path).to_string();
        entries.push(Entry::file(
            &format!("{stem}/{name}"),
            0o644,
            Content::File(store.root().join(&s.path)),
        ));
        sboms.push(name);
    }
    let name = format!("{stem}.tar.gz");
    let path = dir.join(&name);
    let file = std::fs::File::create(&path).io_context("create", &path)?;
    let (sha256, size) = kiln_image::write_tar_gz(&entries, epoch, std::io::BufWriter::new(file))
        .io_context("write", &path)?;
    let file = FileEntry {
        name: name.clone(),
        kind: "archive".into(),
        sha256,
        size,
    };
    let entry = ArtifactEntry {
        binary: r.binary.clone(),
        package: r.package.clone(),
        version: r.version.clone(),
        target: r.target.clone(),
        os: r.os.clone(),
        arch: r.arch.clone(),
        archive: name,
        binary_sha256: r.sha256.clone(),
        sboms,
    };
    Ok((file, entry))
}

/// The package's LICENSE* and README* files (the workspace root's when it has none),
/// sorted by name.
fn package_docs(ws: &Workspace, package: &str) -> Vec<PathBuf> {
    let docs_in = |dir: &Path| -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| {
                let n = e.file_name().to_string_lossy().to_ascii_uppercase();
                n.starts_with("LICENSE") || n.starts_with("LICENCE") || n.starts_with("README")
            })
            .map(|e| e.path())
            .collect();
        found.sort();
        found
    };
    let own = ws
        .members
        .iter()
        .find(|m| m.name == package)
        .map(|m| docs_in(&m.dir))
        .unwrap_or_default();
    if own.is_empty() {
        docs_in(&ws.root)
    } else {
        own
    }
}

/// `install.sh` for these archives: musl preferred where an arch has both libcs.
fn installer(
    version: &str,
    base_url: Option<&str>,
    artifacts: &[ArtifactEntry],
    files: &[FileEntry],
) -> String {
    let mut chosen: BTreeMap<(&str, &str), &ArtifactEntry> = BTreeMap::new();
    for a in artifacts.iter().filter(|a| a.os == "linux") {
        let key = (a.binary.as_str(), a.arch.as_str());
        let better = chosen
            .get(&key)
            .is_none_or(|old| old.target.contains("-gnu") && a.target.contains("-musl"));
        if better {
            chosen.insert(key, a);
        }
    }
    let mut lines = Vec::new();
    for ((bin, arch), a) in &chosen {
        let sha = &files
            .iter()
            .find(|f| f.name == a.archive)
            .expect("archive written")
            .sha256;
        lines.push(format!("{bin} {arch} {} {sha}", a.archive));
    }
    let mut names: Vec<&str> = chosen.keys().map(|(b, _)| *b).collect();
    names.dedup();
    INSTALL_TEMPLATE
        .replace("@NAME@", &names.join(", "))
        .replace("@VERSION@", version)
        .replace("@BASE_URL@", base_url.unwrap_or_default())
        .replace("@ARCHIVES@", &lines.join("\n"))
}

/// Writes `bytes` as `dir/name` and describes it.
fn write_file(dir: &Path, name: &str, kind: &str, bytes: &[u8]) -> Result<FileEntry> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).io_context("write", &path)?;
    Ok(FileEntry {
        name: name.into(),
        kind: kind.into(),
        sha256: kiln_fs::sha256_hex(bytes),
        size: bytes.len() as u64,
    })
}

/// The dist folder is replaced whole: only an earlier release's (or nothing) may be there.
fn check_out_dir(out: &Path) -> Result<()> {
    let Ok(mut entries) = std::fs::read_dir(out) else {
        return Ok(());
    };
    if entries.next().is_none() || out.join("release.json").is_file() {
        return Ok(());
    }
    Err(Error::usage(format!(
        "`{}` holds files that are not a kiln release; it would be replaced whole",
        out.display()
    ))
    .hint("pass `--out` a new or empty directory"))
}

/// A scratch directory under the target dir (a dry run's archives are real, then dropped).
fn tempfile_dir(target_dir: &Path) -> Result<PathBuf> {
    let dir = kiln_fs::temp_path(&target_dir.join("kiln").join("release-dry-run"));
    std::fs::create_dir_all(&dir).io_context("create", &dir)?;
    Ok(dir)
}

/// `[package.metadata.binstall]` for packages releasing exactly one binary.
fn binstall_blocks(
    records: &[ArtifactRecord],
    tag: &str,
    has_repository: &dyn Fn(&str) -> bool,
) -> Vec<(String, String)> {
    let records: Vec<&ArtifactRecord> = records
        .iter()
        .filter(|r| has_repository(&r.package))
        .collect();
    let mut bins: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in &records {
        let v = bins.entry(r.package.as_str()).or_default();
        if !v.contains(&r.binary.as_str()) {
            v.push(&r.binary);
        }
    }
    let tag_template = tag.replacen(
        records.first().map_or("", |r| r.version.as_str()),
        "{ version }",
        1,
    );
    bins.into_iter()
        .filter(|(_, b)| b.len() == 1)
        .map(|(package, b)| {
            let bin = b[0];
            (
                package.to_string(),
                format!(
                    "[package.metadata.binstall]\npkg-url = \"{{ repo }}/releases/download/{tag_template}/{bin}-{{ version }}-{{ target }}.tar.gz\"\nbin-dir = \"{bin}-{{ version }}-{{ target }}/{{ bin }}{{ binary-ext }}\"\npkg-fmt = \"tgz\"\n"
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
