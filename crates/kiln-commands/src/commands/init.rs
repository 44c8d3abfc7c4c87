//! `kiln init`: a commented settings block for the workspace (what `dist init` and
//! `goreleaser init` do), and the generated paths in `.gitignore`. It never
//! overwrites: a workspace that has a kiln table already is told where it is.

use super::{load_workspace, short};
use crate::args::InitArgs;
use crate::reporter::Reporter;
use kiln_diagnostics::{Error, Result};
use kiln_schema::Event;
use kiln_workspace::Workspace;
use std::process::ExitCode;

pub(crate) fn init(args: &InitArgs, r: &Reporter) -> Result<ExitCode> {
    let ws = load_workspace(&args.manifest, kiln_config::Flags::default())?;
    let table = table_name(&ws.root_manifest);
    if let Some(existing) = existing_table(&ws.root_manifest) {
        return Err(Error::usage(format!(
            "`{}` already has a {existing} table",
            short(&ws.manifest)
        ))
        .hint(
            "edit it by hand; `kiln config` shows every effective setting and where it comes from",
        ));
    }
    let binaries: Vec<String> = ws
        .binary_members()
        .flat_map(|p| p.bins.iter().cloned())
        .collect();
    let name = image_name(&ws, &binaries);
    let block = block(table, &name, &binaries);
    let text =
        std::fs::read_to_string(&ws.manifest).map_err(|e| Error::io("read", &ws.manifest, e))?;
    let mut updated = text.clone();
    if !updated.is_empty() && !updated.ends_with('\n') {
        updated.push('\n');
    }
    updated.push('\n');
    updated.push_str(&block);
    // What is written must be what kiln reads back.
    kiln_config::Config::parse(&updated).map_err(|e| {
        Error::internal("the settings block `kiln init` wrote does not parse").with_source(e)
    })?;
    let artifact_dir = ws
        .settings
        .artifact_dir
        .value
        .strip_prefix(&ws.root)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "artifacts".into());
    let gitignore = ws.root.join(".gitignore");
    // Read as bytes: a `.gitignore` that isn't UTF-8 keeps every byte it had, and
    // one that can't be read is an error, never an empty file to overwrite.
    let current = match std::fs::read(&gitignore) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io("read", &gitignore, e)),
    };
    let added = missing_ignores(
        &String::from_utf8_lossy(&current),
        &[&format!("/{artifact_dir}/"), "/target/"],
    );
    write_through_links(&ws.manifest, updated.as_bytes())?;
    if !added.is_empty() {
        let mut ignore = current.clone();
        if !ignore.is_empty() && !ignore.ends_with(b"\n") {
            ignore.push(b'\n');
        }
        ignore.extend_from_slice(b"# kiln: the artifact store and cargo's output\n");
        for line in &added {
            ignore.extend_from_slice(line.as_bytes());
            ignore.push(b'\n');
        }
        write_through_links(&gitignore, &ignore)?;
    }
    r.emit(&Event::Initialized {
        manifest: short(&ws.manifest),
        table: format!("[{table}]"),
        binaries,
        gitignore: added,
    });
    Ok(ExitCode::SUCCESS)
}

/// Replaces the file `path` points to (through symbolic links) in one rename: a
/// symlinked `Cargo.toml` stays a link, to the file it always named.
fn write_through_links(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    kiln_fs::write_atomic(&target, bytes)
}

/// `workspace.metadata.kiln`, or `package.metadata.kiln` for a single package (a
/// `[workspace]` table added to a package could change which workspace it is in).
fn table_name(manifest: &toml::Table) -> &'static str {
    if manifest.contains_key("workspace") {
        "workspace.metadata.kiln"
    } else {
        "package.metadata.kiln"
    }
}

fn existing_table(manifest: &toml::Table) -> Option<&'static str> {
    let has = |section: &str| {
        manifest
            .get(section)
            .and_then(|s| s.get("metadata"))
            .and_then(|m| m.get("kiln"))
            .is_some()
    };
    if has("workspace") {
        Some("[workspace.metadata.kiln]")
    } else if has("package") {
        Some("[package.metadata.kiln]")
    } else {
        None
    }
}

/// The only binary package's name, else the workspace directory's, as a valid
/// image name (lowercase, `[a-z0-9._-]`).
fn image_name(ws: &Workspace, binaries: &[String]) -> String {
    let members: Vec<&str> = ws.binary_members().map(|p| p.name.as_str()).collect();
    let raw = match (members.as_slice(), binaries) {
        ([only], _) => (*only).to_string(),
        _ => ws
            .root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "app".into()),
    };
    let name: String = raw
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '-',
        })
        .collect();
    let name = name
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    if name.is_empty() {
        "app".into()
    } else {
        name
    }
}

/// The entry point: the only binary, or the one named like the image.
fn entrypoint<'b>(name: &str, binaries: &'b [String]) -> Option<&'b String> {
    match binaries {
        [only] => Some(only),
        _ => binaries
            .iter()
            .find(|b| *b == name || b.ends_with("-server")),
    }
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

fn block(table: &str, name: &str, binaries: &[String]) -> String {
    let docs = kiln_diagnostics::docs_url("configuration.md");
    let entry = match entrypoint(name, binaries) {
        Some(b) => format!("entrypoint = [{b:?}]\n"),
        None => "# entrypoint = [\"your-binary\"]\n".into(),
    };
    format!(
        r#"[{table}]
# Written by `kiln init`. Every key, with its default: {docs}
# Platforms to build, each a static musl binary.
targets = ["linux/amd64", "linux/arm64"]
# Where `kiln build` writes binaries, checksums.json and SBOMs (ignored by git).
artifact-dir = "artifacts"
# musl's malloc is slow under many threads; "mimalloc" replaces it without code changes.
# allocator = "mimalloc"

[{table}.image]
# `kiln image` (OCI, no daemon) and `kiln dockerfile` package these.
name = "{name}"
binaries = {bins}
{entry}# base = "scratch"           # or a registry image whose layers go under kiln's
# ports = ["8080/tcp"]
# volumes = ["/data"]

[{table}.cache]
# A binary cache shared by CI and the team (oci://, s3://, file://), and the public
# keys whose signatures readers trust (`kiln cache keygen NAME --output FILE`):
# remote = "oci://ghcr.io/OWNER/REPO-cache"
# trusted-keys = []
"#,
        bins = list(binaries),
    )
}

/// The lines of `wanted` that `.gitignore` text `current` doesn't already ignore
/// (with or without the leading or trailing slash).
fn missing_ignores(current: &str, wanted: &[&str]) -> Vec<String> {
    let norm = |l: &str| l.trim().trim_matches('/').to_string();
    let have: Vec<String> = current.lines().map(norm).collect();
    wanted
        .iter()
        .filter(|w| !have.contains(&norm(w)))
        .map(|w| w.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignores_already_there_in_any_spelling_are_not_added_again() {
        let wanted = ["/artifacts/", "/target/"];
        assert_eq!(missing_ignores("target\n", &wanted), vec!["/artifacts/"]);
        assert_eq!(
            missing_ignores("/artifacts\n/target/\n", &wanted),
            Vec::<String>::new()
        );
        assert_eq!(missing_ignores("", &wanted).len(), 2);
    }

    #[test]
    fn the_block_parses_for_either_table_and_names_the_entry_point() {
        let bins = vec!["chronik-server".to_string(), "chronik-cli".to_string()];
        for table in ["workspace.metadata.kiln", "package.metadata.kiln"] {
            let text = block(table, "chronik", &bins);
            let c = kiln_config::Config::parse(&text).unwrap();
            let image = c.image.unwrap();
            assert_eq!(
                image.entrypoint.unwrap(),
                vec!["chronik-server".to_string()]
            );
        }
    }
}
