//! The C libraries a binary links that no crate of its graph brings: what kiln
//! provisioned (OpenSSL), the allocator it linked (mimalloc), and the static libc of
//! a musl target. They go into the binary's `checksums.json` record and its SBOMs,
//! so a scanner sees OpenSSL's exact release and a security fix is noticed.

use crate::analysis::UnitPlan;
use crate::plan::Plan;
use kiln_sbom::Linked;
use kiln_schema::LinkedRecord;

/// The musl release a static musl binary carries: Rust's self-contained musl
/// target (1.2.5 since Rust 1.93; 1.2.3 before) and zig's (1.2.5 since 0.12, older
/// than anything kiln installs) agree.
fn musl_version(rustc_line: &str) -> &'static str {
    let minor = rustc_line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    match minor {
        Some(m) if m < 93 => "1.2.3",
        _ => "1.2.5",
    }
}

/// The libraries `unit` links: each as its record and as its SBOM component.
pub(crate) fn linked(
    plan: &Plan,
    unit: &UnitPlan,
    mimalloc: bool,
    rustc_line: &str,
) -> Vec<(LinkedRecord, Linked)> {
    let mut out = Vec::new();
    let openssl = plan.steps[unit.step]
        .native
        .iter()
        .any(|n| n.target == unit.target && n.provision.krate == "openssl-sys");
    if openssl {
        let v = kiln_native::openssl_version();
        out.push(entry(
            "OpenSSL",
            v,
            Some(format!("openssl-src {}", kiln_native::OPENSSL_SRC_VERSION)),
            "Apache-2.0",
            format!("pkg:generic/openssl@{v}"),
            Some(format!("cpe:2.3:a:openssl:openssl:{v}:*:*:*:*:*:*:*")),
        ));
    }
    if mimalloc {
        let v = kiln_native::MIMALLOC_VERSION;
        out.push(entry(
            "mimalloc",
            v,
            Some(format!(
                "libmimalloc-sys {}",
                kiln_native::MIMALLOC_SYS_VERSION
            )),
            "MIT",
            format!("pkg:github/microsoft/mimalloc@v{v}"),
            Some(format!("cpe:2.3:a:microsoft:mimalloc:{v}:*:*:*:*:*:*:*")),
        ));
    }
    if unit.target.is_musl() {
        let v = musl_version(rustc_line);
        out.push(entry(
            "musl",
            v,
            None,
            "MIT",
            format!("pkg:generic/musl@{v}"),
            Some(format!("cpe:2.3:a:musl-libc:musl:{v}:*:*:*:*:*:*:*")),
        ));
    }
    out
}

fn entry(
    name: &str,
    version: &str,
    source: Option<String>,
    license: &str,
    purl: String,
    cpe: Option<String>,
) -> (LinkedRecord, Linked) {
    (
        LinkedRecord {
            name: name.into(),
            version: version.into(),
            source,
            license: license.into(),
        },
        Linked {
            name: name.into(),
            version: version.into(),
            license: license.into(),
            purl,
            cpe,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn musl_follows_the_toolchain() {
        assert_eq!(musl_version("rustc 1.95.0 (59807616e 2026-04-14)"), "1.2.5");
        assert_eq!(musl_version("rustc 1.89.0 (29483883e 2025-08-04)"), "1.2.3");
        assert_eq!(musl_version(""), "1.2.5");
    }
}
