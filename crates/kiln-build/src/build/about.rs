//! What kiln writes about each binary besides the binary, and what it links into
//! it: the SBOMs (dated by the source's time, never the clock), the audit section
//! (cargo-auditable's `.dep-v0`), and the allocator replacing musl's `malloc`. kiln,
//! as cargo's rustc wrapper (the plan's environment says so), links the objects
//! written here.

use crate::analysis::{UnitPlan, UnitState};
use crate::plan::Plan;
use kiln_diagnostics::{Error, IoContext, Result};
use kiln_toolchain::Target;
use kiln_workspace::Workspace;
use std::path::{Path, PathBuf};

/// What kiln writes about each binary besides the binary (the SBOMs, dated by the
/// source's time, never the clock), and what it links in: the audit section, the
/// allocator replacing musl's `malloc`.
pub(crate) struct About {
    formats: Vec<kiln_config::SbomFormat>,
    created: String,
    auditable: bool,
    allocator: Option<kiln_config::AllocatorConfig>,
    native_root: PathBuf,
    /// Where the objects for the linker go (when the wrapper can add them).
    link_dir: Option<PathBuf>,
}

impl About {
    pub(crate) fn new(ws: &Workspace, plan: &Plan) -> Self {
        Self {
            formats: crate::analysis::sbom_formats(ws),
            created: kiln_fs::rfc3339(kiln_workspace::source_date_epoch(&ws.root)),
            auditable: crate::analysis::links_audit_section(ws),
            allocator: ws.config.allocator.clone(),
            native_root: plan.native_root.clone(),
            link_dir: plan.link_dir.clone(),
        }
    }

    /// Makes cargo link again each binary whose allocator changed since it was last
    /// linked in this target dir: cargo doesn't see the object kiln adds, so it
    /// would call the old binary fresh. Removing its output is what cargo notices.
    /// Before cargo starts, in both the cold and the warm path.
    pub(crate) fn relink_changed_allocators(&self, plan: &Plan) {
        let stamps = plan.target_dir.join("kiln/allocator");
        for step in &plan.steps {
            for target in &step.targets {
                for bin in &step.bins {
                    let wanted = if self.mimalloc_for(bin, target) {
                        kiln_native::mimalloc_identity()
                    } else {
                        "system".to_string()
                    };
                    let stamp = stamps.join(&target.triple).join(bin);
                    let linked =
                        std::fs::read_to_string(&stamp).unwrap_or_else(|_| "system".to_string());
                    if linked == wanted {
                        continue;
                    }
                    let out = plan
                        .target_dir
                        .join(&target.triple)
                        .join(plan.selection.profile_dir());
                    let _ = std::fs::remove_file(out.join(bin));
                    let prefix = format!("{}-", bin.replace('-', "_"));
                    for e in std::fs::read_dir(out.join("deps"))
                        .into_iter()
                        .flatten()
                        .flatten()
                    {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if name.starts_with(&prefix) && !name.contains('.') {
                            let _ = std::fs::remove_file(e.path());
                        }
                    }
                    let _ = kiln_fs::write_atomic(&stamp, wanted.as_bytes());
                }
            }
        }
    }

    /// Whether `bin` links mimalloc in place of musl's `malloc` on `target`.
    pub(crate) fn mimalloc_for(&self, bin: &str, target: &Target) -> bool {
        crate::allocator::mimalloc_for(&self.allocator, bin, target)
    }

    pub(crate) fn documents(
        &self,
        g: &kiln_sbom::Graph,
        sha256: &str,
    ) -> Vec<kiln_artifacts::Document> {
        self.formats
            .iter()
            .map(|f| {
                let text = match f {
                    kiln_config::SbomFormat::Spdx => {
                        kiln_sbom::spdx(g, sha256, &self.created, env!("CARGO_PKG_VERSION"))
                    }
                    kiln_config::SbomFormat::Cyclonedx => {
                        kiln_sbom::cyclonedx(g, sha256, &self.created, env!("CARGO_PKG_VERSION"))
                    }
                };
                kiln_artifacts::Document {
                    suffix: f.suffix().into(),
                    format: f.format_name().into(),
                    bytes: text.into_bytes(),
                }
            })
            .collect()
    }

    /// Clears the link objects of an earlier build (the wrapper waits for `ready`).
    pub(crate) fn reset(&self) {
        if let Some(dir) = &self.link_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Writes the link objects of each unit to build where the wrapper finds it (the
    /// audit section; mimalloc, compiled once per target into the native cache), then
    /// `ready` (also when analysis or mimalloc failed: the wrapper must not wait
    /// forever; the build fails with that error). Nothing when nothing is built: a
    /// restore leaves `target/` alone and needs no zig.
    pub(crate) fn write_objects(&self, units: Option<&[UnitPlan]>, all: bool) -> Result<()> {
        let Some(dir) = &self.link_dir else {
            return Ok(());
        };
        let building: Vec<&UnitPlan> = units
            .into_iter()
            .flatten()
            .filter(|u| all || u.state == UnitState::Rebuild)
            .collect();
        if units.is_some() && building.is_empty() {
            return Ok(());
        }
        let _ = std::fs::create_dir_all(dir);
        let written = self.link_objects(dir, &building);
        let _ = std::fs::write(dir.join("ready"), b"");
        written
    }

    fn link_objects(&self, dir: &Path, building: &[&UnitPlan]) -> Result<()> {
        let mut zig = None;
        for u in building {
            let at = dir.join(&u.target.triple);
            if self.auditable {
                if let Some(obj) = u.graph.as_ref().and_then(kiln_sbom::audit_object) {
                    kiln_fs::write_atomic(&at.join(format!("{}.o", u.bin)), &obj)?;
                }
            }
            if self.mimalloc_for(&u.bin, &u.target) {
                if zig.is_none() {
                    zig = Some(kiln_toolchain::ZigProbe::locate().ok_or_else(|| {
                        Error::environment("`allocator = \"mimalloc\"` needs zig to compile mimalloc, and zig is not installed")
                            .hint("run `kiln setup`, or set `allocator = \"system\"`")
                    })?);
                }
                let exe = &zig.as_ref().expect("located above").exe;
                let (library, _) =
                    kiln_native::provision_mimalloc(&self.native_root, &u.target, exe)?;
                let dir = at.join(format!("{}.alloc", u.bin));
                std::fs::create_dir_all(&dir).io_context("create", &dir)?;
                let dest = dir.join(library.file_name().unwrap_or_default());
                let _ = std::fs::remove_file(&dest);
                std::fs::hard_link(&library, &dest)
                    .or_else(|_| std::fs::copy(&library, &dest).map(|_| ()))
                    .io_context("copy into", &dest)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn about(link_dir: Option<PathBuf>) -> About {
        About {
            formats: vec![kiln_config::SbomFormat::Spdx],
            created: "2026-01-01T00:00:00Z".into(),
            auditable: true,
            allocator: None,
            native_root: PathBuf::from("/native"),
            link_dir,
        }
    }

    #[test]
    fn objects_are_ready_for_the_wrapper_even_when_analysis_failed() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link");
        let a = about(Some(link.clone()));
        std::fs::create_dir_all(link.join("stale")).unwrap();
        a.reset();
        assert!(!link.exists(), "an earlier build's objects are gone");
        // No units known (the analysis failed): the wrapper must not wait for ever.
        a.write_objects(None, true).unwrap();
        assert!(link.join("ready").is_file());
        // Without a link dir there is nothing to write, and no error.
        about(None).write_objects(None, true).unwrap();
    }

    #[test]
    fn mimalloc_is_for_the_musl_binaries_configured() {
        let mut a = about(None);
        a.allocator = Some(kiln_config::AllocatorConfig::All(
            kiln_config::Allocator::Mimalloc,
        ));
        let musl = Target::parse("amd64").unwrap();
        let gnu = Target::parse("amd64-gnu").unwrap();
        assert!(a.mimalloc_for("app", &musl));
        assert!(!a.mimalloc_for("app", &gnu));
    }
}
