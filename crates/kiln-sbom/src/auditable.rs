//! The dependency list cargo-auditable defines, as an object file kiln links in.
//!
//! Format 1 of cargo-auditable's `VersionInfo`: `{"format":1,"packages":[...]}`, each
//! package with `name`, `version`, `source` (`crates.io`, `git`, `local`,
//! `registry`), `kind` only when `build`, `dependencies` only when some, `root` only
//! on the root; zlib-compressed into a section named `.dep-v0`. kiln writes it
//! itself instead of running `cargo auditable`: it already has the graph, and it is
//! cargo's rustc wrapper, so it hands the object to the linker of the binary's crate.

use crate::{elf, Graph, Kind, Source};
use serde_json::{json, Map, Value};
use std::io::Write;

/// The section readers look for.
pub const AUDIT_SECTION: &str = ".dep-v0";

/// The uncompressed JSON: byte-identical for the same graph.
pub fn audit_json(g: &Graph) -> String {
    let packages: Vec<Value> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut p = Map::new();
            p.insert("name".into(), json!(n.name));
            p.insert("version".into(), json!(n.version));
            let source = match n.source {
                Source::CratesIo => "crates.io",
                Source::Registry(_) => "registry",
                Source::Git(_) => "git",
                Source::Local => "local",
            };
            p.insert("source".into(), json!(source));
            if n.kind == Kind::Build {
                p.insert("kind".into(), json!("build"));
            }
            if !n.deps.is_empty() {
                p.insert("dependencies".into(), json!(n.deps));
            }
            if i == g.root {
                p.insert("root".into(), json!(true));
            }
            Value::Object(p)
        })
        .collect();
    serde_json::to_string(&json!({ "format": 1, "packages": packages })).expect("json")
}

/// An ELF relocatable object for `target` holding the compressed list in
/// [`AUDIT_SECTION`]; `None` for targets that aren't 64-bit little-endian ELF.
pub fn audit_object(g: &Graph) -> Option<Vec<u8>> {
    let machine = elf::machine(&g.target)?;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(audit_json(g).as_bytes()).ok()?;
    let data = z.finish().ok()?;
    Some(elf::object_with_section(machine, AUDIT_SECTION, &data))
}

/// The dependency list linked into the ELF `binary`, decompressed, if it has one.
pub fn read_audit(binary: &[u8]) -> Option<String> {
    use std::io::Read;
    let data = elf::section(binary, AUDIT_SECTION)?;
    let mut text = String::new();
    // Bounded: a section is untrusted input (a binary from anywhere).
    flate2::read::ZlibDecoder::new(data)
        .take(64 << 20)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_list_follows_cargo_auditable_format_one() {
        let g = crate::tests::sample();
        let v: Value = serde_json::from_str(&audit_json(&g)).unwrap();
        assert_eq!(v["format"], 1);
        let p = v["packages"].as_array().unwrap();
        assert_eq!(p[0]["name"], "app");
        assert_eq!(p[0]["root"], true);
        assert_eq!(p[0]["source"], "local");
        assert_eq!(p[0]["dependencies"], json!([1, 2]));
        assert_eq!(p[1]["kind"], "build");
        assert!(p[3].get("kind").is_none() && p[3].get("root").is_none());
        assert_eq!(p[2]["source"], "git");
        assert_eq!(
            audit_json(&g),
            audit_json(&crate::tests::sample()),
            "deterministic"
        );
    }

    #[test]
    fn the_object_holds_the_compressed_list() {
        let g = crate::tests::sample();
        let obj = audit_object(&g).unwrap();
        let data = elf::section(&obj, AUDIT_SECTION).expect("section");
        let mut text = String::new();
        flate2::read::ZlibDecoder::new(data)
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, audit_json(&g));
        let mut mac = g.clone();
        mac.target = "aarch64-apple-darwin".into();
        assert!(audit_object(&mac).is_none());
    }
}
