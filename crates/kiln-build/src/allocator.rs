//! The allocator of shipped binaries: which ones run on musl's `malloc` (noted),
//! which link mimalloc instead, and how that enters their keys.

use crate::keys::KeyContext;
use crate::plan::Plan;
use kiln_fingerprint::Inputs;
use kiln_toolchain::Target;
use kiln_workspace::Workspace;

/// The allocator kiln links into a musl binary is part of it: mimalloc's identity
/// and the zig that compiles it are key inputs (nothing for the system allocator, so
/// keys of workspaces without the setting don't change).
pub(crate) fn add_allocator_input(
    inputs: &mut Inputs,
    allocator: &Option<kiln_config::AllocatorConfig>,
    bin: &str,
    target: &Target,
    zig: Option<&str>,
) {
    if mimalloc_for(allocator, bin, target) {
        inputs.add(
            kiln_fingerprint::InputId::Allocator,
            kiln_fingerprint::InputValue::Text {
                value: format!(
                    "{}, zig {}",
                    kiln_native::mimalloc_identity(),
                    zig.unwrap_or(kiln_toolchain::ZIG_VERSION)
                ),
            },
        );
    }
}

/// Whether `bin` links mimalloc on `target` (musl only: glibc's malloc is fine).
pub(crate) fn mimalloc_for(
    allocator: &Option<kiln_config::AllocatorConfig>,
    bin: &str,
    target: &Target,
) -> bool {
    target.is_musl()
        && allocator
            .as_ref()
            .is_some_and(|a| a.of(bin) == kiln_config::Allocator::Mimalloc)
}

/// Whether any unit of the plan links mimalloc.
pub(crate) fn wants_mimalloc(ws: &Workspace, plan: &Plan) -> bool {
    plan.steps.iter().any(|s| {
        s.targets.iter().any(|t| {
            s.bins
                .iter()
                .any(|b| mimalloc_for(&ws.config.allocator, b, t))
        })
    })
}

/// Crates that install a global allocator of their own: a binary with one of them in
/// its graph doesn't run on musl's `malloc` (for Rust's allocations).
const ALLOCATOR_CRATES: &[&str] = &[
    "mimalloc",
    "tikv-jemallocator",
    "jemallocator",
    "snmalloc-rs",
    "rpmalloc",
    "tcmalloc",
    "tcmalloc-better",
    "scudo",
    "auto-allocator",
];

/// The note for binaries that will run on musl's `malloc`: once per binary, however
/// many musl targets it has; none for a binary whose allocator the workspace chose
/// (even `"system"`: a choice made knowingly needs no reminder).
pub(crate) fn musl_malloc_note(
    ws: &Workspace,
    plan: &Plan,
    ctx: &KeyContext,
) -> Option<kiln_schema::Note> {
    let chosen = |bin: &str| ws.config.allocator.as_ref().is_some_and(|a| a.chooses(bin));
    let mut bins = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        for bin in step.bins.iter().filter(|b| !chosen(b)) {
            let on_musl_malloc = step.targets.iter().any(|t| {
                t.is_musl()
                    && !mimalloc_for(&ws.config.allocator, bin, t)
                    && !ctx
                        .graph(i, &t.triple)
                        .nodes
                        .iter()
                        .any(|n| ALLOCATOR_CRATES.contains(&n.name.as_str()))
            });
            if on_musl_malloc && !bins.contains(bin) {
                bins.push(bin.clone());
            }
        }
    }
    if bins.is_empty() {
        return None;
    }
    Some(kiln_schema::Note::MuslMalloc { binaries: bins })
}
