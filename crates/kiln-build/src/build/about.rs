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

    /// Makes cargo link again each binary whose linked-in objects (allocator, audit
    /// section) changed since it was last linked in this target dir, or are unknown
    /// (a target dir cargo filled without kiln): cargo doesn't see the objects kiln
    /// adds, so it would call the old binary fresh. Removing its output is what cargo
    /// notices. Before cargo starts, for the units it builds (a restore leaves
    /// `target/` alone).
    pub(crate) fn relink_changed_objects(&self, plan: &Plan, building: &[super::Wanted<'_>]) {
        let stamps = plan.target_dir.join("kiln/linked-in");
        for w in building {
            let (bin, target) = (w.bin, w.target);
            let wanted = self.linked_in(bin, target);
            let stamp = stamps.join(&target.triple).join(bin);
            if std::fs::read_to_string(&stamp).is_ok_and(|linked| linked == wanted) {
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

    /// What kiln links into `bin` on `target`, as recorded beside cargo's outputs.
    fn linked_in(&self, bin: &str, target: &Target) -> String {
        let allocator = if self.mimalloc_for(bin, target) {
            kiln_native::mimalloc_identity()
        } else {
            "system".to_string()
        };
        let audit = if self.auditable && self.link_dir.is_some() {
            kiln_sbom::AUDIT_SECTION
        } else {
            "none"
        };
        format!("allocator {allocator}\naudit section {audit}\n")
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
    fn what_is_linked_in_names_the_allocator_and_the_audit_section() {
        let musl = Target::parse("amd64").unwrap();
        let with_wrapper = about(Some(PathBuf::from("/link")));
        let audited = with_wrapper.linked_in("app", &musl);
        assert!(audited.contains(".dep-v0"), "{audited}");
        let mut off = about(Some(PathBuf::from("/link")));
        off.auditable = false;
        assert_ne!(off.linked_in("app", &musl), audited, "toggling relinks");
        // No wrapper, nothing linked, whatever the setting.
        assert_eq!(
            about(None).linked_in("app", &musl),
            off.linked_in("app", &musl)
        );
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
