//! `kiln verify`: re-hash every artifact and compare with what the store recorded.

use crate::{elf_info, Store};
use kiln_diagnostics::Error;
use kiln_diagnostics::Result;
use kiln_schema::Mismatch;
use std::fmt;

/// One thing wrong with the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, relative to the store root.
    pub path: String,
    /// What is wrong with it.
    pub detail: Mismatch,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.detail)
    }
}

/// The outcome of verifying a store.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Artifacts checked.
    pub checked: usize,
    /// Everything found wrong; empty when the store is sound.
    pub problems: Vec<Problem>,
}

impl Store {
    /// Checks every artifact in `checksums.json`: present, same size and SHA-256, its
    /// `.sha256` and `.version` sidecars agree, its SBOMs are the recorded files and
    /// describe this binary, its dependency list is linked in when recorded, and it is
    /// an ELF binary of the recorded architecture (static when built for musl).
    pub fn verify(&self) -> Result<VerifyReport> {
        let checksums = self.read_checksums()?;
        let mut report = VerifyReport::default();
        for a in &checksums.artifacts {
            report.checked += 1;
            let path = self.root().join(&a.path);
            let mut problem = |detail: Mismatch| {
                report.problems.push(Problem {
                    path: a.path.clone(),
                    detail,
                })
            };
            let Ok(meta) = std::fs::metadata(&path) else {
                problem(Mismatch::Missing);
                continue;
            };
            // Read once: hashed here, searched for the audit section below.
            let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
            let actual = kiln_fs::sha256_hex(&bytes);
            if actual != a.sha256 || meta.len() != a.size {
                problem(Mismatch::Digest {
                    actual: actual.clone(),
                    size: meta.len(),
                    recorded: a.sha256.clone(),
                    recorded_size: a.size,
                });
            }
            let sidecar =
                std::fs::read_to_string(path.with_file_name(format!("{}.sha256", a.binary)))
                    .unwrap_or_default();
            if sidecar != crate::sha256_sidecar(&a.sha256, &a.binary) {
                problem(Mismatch::Sidecar {
                    file: format!("{}.sha256", a.binary),
                });
            }
            let version =
                std::fs::read_to_string(path.with_file_name(format!("{}.version", a.binary)))
                    .unwrap_or_default();
            if version != crate::version_sidecar(&a.version) {
                problem(Mismatch::VersionFile {
                    file: format!("{}.version", a.binary),
                    version: a.version.clone(),
                });
            }
            for sbom in &a.sboms {
                let file = self.root().join(&sbom.path);
                match std::fs::read(&file) {
                    Err(_) => problem(Mismatch::SbomMissing {
                        file: sbom.path.clone(),
                    }),
                    Ok(bytes) if kiln_fs::sha256_hex(&bytes) != sbom.sha256 => {
                        problem(Mismatch::SbomChanged {
                            file: sbom.path.clone(),
                        })
                    }
                    Ok(bytes) => {
                        let text = String::from_utf8_lossy(&bytes);
                        if kiln_sbom::described_sha256(&text).as_deref() != Some(actual.as_str()) {
                            problem(Mismatch::SbomOfAnotherBinary {
                                file: sbom.path.clone(),
                            });
                        }
                    }
                }
            }
            if a.auditable {
                let root = kiln_sbom::read_audit(&bytes).and_then(|j| kiln_sbom::audit_root(&j));
                if root.as_deref() != Some(a.package.as_str()) {
                    problem(Mismatch::AuditSection);
                }
            }
            match elf_info(&path) {
                None => problem(Mismatch::NotElf),
                Some(info) if info.arch != a.arch => problem(Mismatch::Machine {
                    actual: info.arch.to_string(),
                    expected: a.arch.clone(),
                }),
                Some(info) if a.target.contains("musl") && !info.is_static => {
                    problem(Mismatch::NotStatic)
                }
                Some(_) => {}
            }
        }
        Ok(report)
    }
}
