//! CycloneDX 1.5 JSON: the binary as the BOM's subject, each package a component
//! (build-only ones with scope `excluded`: they are not in the binary), and the
//! graph's edges as `dependencies`.

use crate::{Graph, Kind};
use serde_json::{json, Value};

/// The BOM for `g`'s binary with SHA-256 `sha256`, dated `timestamp` (RFC 3339), by
/// kiln `tool_version`.
pub fn cyclonedx(g: &Graph, sha256: &str, timestamp: &str, tool_version: &str) -> String {
    let mut refs: Vec<String> = Vec::with_capacity(g.nodes.len());
    for i in 0..g.nodes.len() {
        let purl = g.purl(i);
        // Two packages may share a PURL (a path crate named like a registry one).
        let r = if refs.contains(&purl) {
            format!("{purl}#{i}")
        } else {
            purl
        };
        refs.push(r);
    }
    let components: Vec<Value> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut c = json!({
                "type": "library",
                "bom-ref": refs[i],
                "name": n.name,
                "version": n.version,
                "scope": if n.kind == Kind::Build { "excluded" } else { "required" },
                "purl": g.purl(i),
            });
            if let Some(sum) = &n.checksum {
                c["hashes"] = json!([{"alg": "SHA-256", "content": sum}]);
            }
            let declared = crate::spdx::license(n.license.as_deref());
            if declared != "NOASSERTION" {
                c["licenses"] = json!([{ "expression": declared }]);
            }
            c
        })
        .collect();
    let mut components = components;
    let mut linked_refs = Vec::new();
    for l in &g.linked {
        let r = format!("kiln-linked:{}@{}", l.name, l.version);
        let mut c = json!({
            "type": "library",
            "bom-ref": r,
            "name": l.name,
            "version": l.version,
            "scope": "required",
            "purl": l.purl,
            "licenses": [{"expression": crate::spdx::license(Some(&l.license))}],
            "properties": [{"name": "kiln:linkage", "value": "static"}],
        });
        if let Some(cpe) = &l.cpe {
            c["cpe"] = json!(cpe);
        }
        components.push(c);
        linked_refs.push(r);
    }
    let binary_ref = format!("kiln-binary:{}:{}", g.binary, g.target);
    let mut on_binary = vec![refs[g.root].clone()];
    on_binary.extend(linked_refs);
    let mut dependencies = vec![json!({"ref": binary_ref, "dependsOn": on_binary})];
    for (i, n) in g.nodes.iter().enumerate() {
        let on: Vec<&String> = n.deps.iter().map(|d| &refs[*d]).collect();
        dependencies.push(json!({"ref": refs[i], "dependsOn": on}));
    }
    let bom = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": serial(g, sha256),
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {"components": [{"type": "application", "name": "kiln", "version": tool_version}]},
            "component": {
                "type": "application",
                "bom-ref": binary_ref,
                "name": g.binary,
                "version": g.nodes[g.root].version,
                "hashes": [{"alg": "SHA-256", "content": sha256}],
                "properties": [{"name": "kiln:target", "value": g.target}],
            },
        },
        "components": components,
        "dependencies": dependencies,
    });
    let mut text = serde_json::to_string_pretty(&bom).expect("json");
    text.push('\n');
    text
}

/// A UUID (version 5 layout) derived from the binary and its graph, so the same
/// build gets the same serial number.
fn serial(g: &Graph, sha256: &str) -> String {
    let h = kiln_fs::sha256_hex(format!("{}\n{}\n{sha256}", g.target, g.digest()).as_bytes());
    let variant = ["8", "9", "a", "b"][usize::from(h.as_bytes()[16] % 4)];
    format!(
        "urn:uuid:{}-{}-5{}-{variant}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bom_lists_components_and_dependencies() {
        let g = crate::tests::sample();
        let text = cyclonedx(&g, &"cd".repeat(32), "2024-01-01T00:00:00Z", "0.1.0");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["specVersion"], "1.5");
        let serial = v["serialNumber"].as_str().unwrap();
        assert_eq!(serial.len(), "urn:uuid:".len() + 36, "{serial}");
        let cc = v["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "cc")
            .unwrap();
        assert_eq!(cc["scope"], "excluded");
        assert_eq!(v["dependencies"][0]["dependsOn"][0], "pkg:cargo/app@1.0.0");
        assert_eq!(
            v["dependencies"][0]["dependsOn"][1],
            "kiln-linked:OpenSSL@3.6.3"
        );
        let openssl = v["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "OpenSSL")
            .unwrap();
        assert_eq!(openssl["licenses"][0]["expression"], "Apache-2.0");
        assert_eq!(openssl["purl"], "pkg:generic/openssl@3.6.3");
        assert_eq!(
            text,
            cyclonedx(&g, &"cd".repeat(32), "2024-01-01T00:00:00Z", "0.1.0")
        );
    }
}
