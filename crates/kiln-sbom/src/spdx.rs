//! SPDX 2.3 JSON: the binary as a package, every package of its graph with its PURL,
//! declared license and `Cargo.lock` checksum, and the graph's edges as
//! relationships (`DEPENDS_ON`, `BUILD_DEPENDENCY_OF`).

use crate::{Graph, Kind, Source};
use serde_json::{json, Value};

/// The document for `g`'s binary with SHA-256 `sha256`, created at `created`
/// (RFC 3339) by kiln `tool_version`.
pub fn spdx(g: &Graph, sha256: &str, created: &str, tool_version: &str) -> String {
    let id = |i: usize| format!("SPDXRef-Package-{i}-{}", spdx_id_part(&g.nodes[i].name));
    let mut packages = vec![json!({
        "SPDXID": "SPDXRef-Binary",
        "name": g.binary,
        "versionInfo": g.nodes[g.root].version,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "APPLICATION",
        "checksums": [{"algorithm": "SHA256", "checksumValue": sha256}],
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": license(g.nodes[g.root].license.as_deref()),
        "copyrightText": "NOASSERTION",
        "comment": format!("{} built for {}", g.binary, g.target),
    })];
    for (i, n) in g.nodes.iter().enumerate() {
        let mut p = json!({
            "SPDXID": id(i),
            "name": n.name,
            "versionInfo": n.version,
            "downloadLocation": download(n),
            "filesAnalyzed": false,
            "primaryPackagePurpose": "LIBRARY",
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": license(n.license.as_deref()),
            "copyrightText": "NOASSERTION",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": g.purl(i),
            }],
        });
        if let Some(sum) = &n.checksum {
            p["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": sum}]);
        }
        packages.push(p);
    }
    for (i, l) in g.linked.iter().enumerate() {
        let mut refs = vec![json!({
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": l.purl,
        })];
        if let Some(cpe) = &l.cpe {
            refs.push(json!({
                "referenceCategory": "SECURITY",
                "referenceType": "cpe23Type",
                "referenceLocator": cpe,
            }));
        }
        packages.push(json!({
            "SPDXID": linked_id(i, l),
            "name": l.name,
            "versionInfo": l.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "LIBRARY",
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": license(Some(&l.license)),
            "copyrightText": "NOASSERTION",
            "comment": "a C library linked statically into the binary",
            "externalRefs": refs,
        }));
    }
    let mut relationships = vec![
        json!({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-Binary"}),
        json!({"spdxElementId": "SPDXRef-Binary", "relationshipType": "GENERATED_FROM", "relatedSpdxElement": id(g.root)}),
    ];
    for (i, l) in g.linked.iter().enumerate() {
        relationships.push(json!({"spdxElementId": "SPDXRef-Binary", "relationshipType": "STATIC_LINK", "relatedSpdxElement": linked_id(i, l)}));
    }
    for (i, n) in g.nodes.iter().enumerate() {
        for d in &n.deps {
            relationships.push(if g.nodes[*d].kind == Kind::Build {
                json!({"spdxElementId": id(*d), "relationshipType": "BUILD_DEPENDENCY_OF", "relatedSpdxElement": id(i)})
            } else {
                json!({"spdxElementId": id(i), "relationshipType": "DEPENDS_ON", "relatedSpdxElement": id(*d)})
            });
        }
    }
    let doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}-{}", g.binary, g.target),
        "documentNamespace": format!("https://spdx.org/spdxdocs/kiln/{}-{}-{sha256}", g.binary, g.target),
        "creationInfo": {
            "created": created,
            "creators": [format!("Tool: kiln-{tool_version}")],
        },
        "packages": packages,
        "relationships": relationships,
    });
    let mut text = serde_json::to_string_pretty(&doc).expect("json");
    text.push('\n');
    text
}

/// The SPDX id of the `i`th linked C library.
fn linked_id(i: usize, l: &crate::Linked) -> String {
    format!("SPDXRef-Linked-{i}-{}", spdx_id_part(&l.name))
}

/// Letters, digits, `.` and `-` only, as SPDX identifiers allow.
fn spdx_id_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Where the package's source can be fetched.
fn download(n: &crate::Node) -> String {
    match &n.source {
        Source::CratesIo => format!(
            "https://crates.io/api/v1/crates/{}/{}/download",
            n.name, n.version
        ),
        Source::Git(url) => format!("git+{url}"),
        Source::Registry(_) | Source::Local => "NOASSERTION".into(),
    }
}

/// License identifiers crates use, from the SPDX license list: an expression made of
/// others is not asserted (validators reject identifiers they don't know, and a
/// `LicenseRef-` needs the license text, which kiln doesn't carry).
const KNOWN: &[&str] = &[
    "0BSD",
    "AGPL-3.0",
    "AGPL-3.0-only",
    "AGPL-3.0-or-later",
    "Apache-2.0",
    "Artistic-2.0",
    "BSD-1-Clause",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSD-4-Clause",
    "BSL-1.0",
    "CC-BY-3.0",
    "CC-BY-4.0",
    "CC0-1.0",
    "CDLA-Permissive-2.0",
    "EPL-2.0",
    "GPL-2.0",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "ISC",
    "LGPL-2.1",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-3.0",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "LLVM-exception",
    "MIT",
    "MIT-0",
    "MPL-2.0",
    "NCSA",
    "OpenSSL",
    "Python-2.0",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "Unlicense",
    "Zlib",
    "zlib-acknowledgement",
    "WTFPL",
    "X11",
];

/// The declared license as an SPDX expression: cargo's legacy `MIT/Apache-2.0` is
/// `MIT OR Apache-2.0`; anything that doesn't parse, or names an identifier outside
/// [`KNOWN`], is `NOASSERTION`.
pub(crate) fn license(l: Option<&str>) -> Value {
    let Some(l) = l.map(str::trim).filter(|l| !l.is_empty()) else {
        return json!("NOASSERTION");
    };
    let spaced = l
        .replace('/', " OR ")
        .replace('(', " ( ")
        .replace(')', " ) ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    if parse_expr(&tokens, 0) == Some(tokens.len()) {
        let text = tokens.join(" ").replace("( ", "(").replace(" )", ")");
        json!(text)
    } else {
        json!("NOASSERTION")
    }
}

/// `expr := term ((AND | OR) term)*`: the index after it, if it parses.
fn parse_expr(t: &[&str], mut i: usize) -> Option<usize> {
    i = parse_term(t, i)?;
    while matches!(t.get(i), Some(&"AND" | &"OR")) {
        i = parse_term(t, i + 1)?;
    }
    Some(i)
}

/// `term := "(" expr ")" | id ["+"] ["WITH" exception]`.
fn parse_term(t: &[&str], i: usize) -> Option<usize> {
    match *t.get(i)? {
        "(" => {
            let end = parse_expr(t, i + 1)?;
            (t.get(end) == Some(&")")).then_some(end + 1)
        }
        id if KNOWN.contains(&id.trim_end_matches('+')) => {
            if t.get(i + 1) == Some(&"WITH") {
                t.get(i + 2)?;
                Some(i + 3)
            } else {
                Some(i + 1)
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_describes_the_binary_and_its_graph() {
        let g = crate::tests::sample();
        let text = spdx(&g, &"cd".repeat(32), "2024-01-01T00:00:00Z", "0.1.0");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["spdxVersion"], "SPDX-2.3");
        let packages = v["packages"].as_array().unwrap();
        assert_eq!(packages.len(), 6);
        let openssl = packages.iter().find(|p| p["name"] == "OpenSSL").unwrap();
        assert_eq!(openssl["licenseDeclared"], "Apache-2.0");
        assert_eq!(openssl["externalRefs"][1]["referenceType"], "cpe23Type");
        assert_eq!(
            packages[0]["checksums"][0]["checksumValue"],
            "cd".repeat(32)
        );
        let serde = packages.iter().find(|p| p["name"] == "serde").unwrap();
        assert_eq!(
            serde["externalRefs"][0]["referenceLocator"],
            "pkg:cargo/serde@1.0.0"
        );
        assert_eq!(serde["checksums"][0]["checksumValue"], "ab".repeat(32));
        let rels = serde_json::to_string(&v["relationships"]).unwrap();
        assert!(rels.contains("BUILD_DEPENDENCY_OF") && rels.contains("DEPENDS_ON"));
        assert!(rels.contains("STATIC_LINK"), "{rels}");
        assert_eq!(
            text,
            spdx(&g, &"cd".repeat(32), "2024-01-01T00:00:00Z", "0.1.0")
        );
    }

    #[test]
    fn licenses_become_expressions_or_noassertion() {
        assert_eq!(license(Some("MIT/Apache-2.0")), json!("MIT OR Apache-2.0"));
        assert_eq!(
            license(Some("MIT OR Apache-2.0")),
            json!("MIT OR Apache-2.0")
        );
        assert_eq!(
            license(Some("(MIT OR Apache-2.0) AND BSD-3-Clause")),
            json!("(MIT OR Apache-2.0) AND BSD-3-Clause")
        );
        assert_eq!(license(Some("see LICENSE file")), json!("NOASSERTION"));
        assert_eq!(license(Some("Proprietary")), json!("NOASSERTION"));
        assert_eq!(license(Some("MIT OR")), json!("NOASSERTION"));
        assert_eq!(
            license(Some("Apache-2.0 WITH LLVM-exception")),
            json!("Apache-2.0 WITH LLVM-exception")
        );
        assert_eq!(license(Some("MIT; rm -rf")), json!("NOASSERTION"));
        assert_eq!(license(None), json!("NOASSERTION"));
    }
}
