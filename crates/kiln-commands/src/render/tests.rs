//! The human renderer: events into the words people read.

use super::*;
use kiln_schema::{Counts, Note, Warning};

fn words(e: Event) -> Vec<String> {
    render(&e, View::default())
        .into_iter()
        .map(|l| l.text)
        .collect()
}

#[test]
fn a_build_summary_counts_and_names_the_store() {
    let w = words(Event::Finished {
        success: true,
        elapsed_secs: 1.5,
        artifacts: 4,
        error: None,
        counts: Counts {
            built: 1,
            restored: 2,
            fresh: 1,
        },
        store: "artifacts".into(),
        cached: true,
    });
    assert_eq!(
        w,
        ["4 binaries (1 built, 2 restored, 1 fresh) in 1.50s into artifacts [cache: 3/4 hits]"]
    );
    let one = words(Event::Finished {
        success: true,
        elapsed_secs: 0.2,
        artifacts: 1,
        error: None,
        counts: Counts {
            fresh: 1,
            ..Counts::default()
        },
        store: "artifacts".into(),
        cached: false,
    });
    assert_eq!(one, ["1 binary (1 fresh) in 0.20s into artifacts"]);
}

#[test]
fn notes_and_warnings_are_words_made_from_their_data() {
    let n = words(Event::Note(Note::RustTargetInstalled {
        target: "aarch64-unknown-linux-musl".into(),
    }));
    assert_eq!(
        n,
        ["installed the Rust target aarch64-unknown-linux-musl with rustup"]
    );
    let w = render(
        &Event::Warning(Warning::UnsignedEntries {
            remote: "file:///r".into(),
            entries: vec!["a 01".into(), "b 02".into()],
        }),
        View::default(),
    );
    assert_eq!(w[0].style, Style::Warn);
    assert!(w[0]
        .text
        .starts_with("2 remote entries from file:///r carry no signature"));
}

#[test]
fn progress_events_say_nothing_and_commands_only_with_verbose() {
    assert!(words(Event::CrateCompiled {
        name: "x".into(),
        target: "host".into()
    })
    .is_empty());
    let started = Event::BuildStarted {
        targets: vec!["x86_64-unknown-linux-musl".into()],
        packages: vec!["app".into()],
        backend: kiln_schema::BackendKind::Zig,
        version: "1.0.0".into(),
        command: "cargo zigbuild --timings".into(),
        crates: 3,
    };
    assert_eq!(
        words(started.clone()),
        ["app v1.0.0 (linux/amd64) with zig"]
    );
    let verbose = View {
        verbose: true,
        log: false,
    };
    assert_eq!(render(&started, verbose).len(), 2);
}
