//! The interface through which a build reports what happens, as typed events, so the
//! analysis and the execution share it without importing each other, the CLI
//! renders them (words or JSON), and tests can observe a build.

use kiln_schema::{Event, Note, Warning};

/// Receives what happens during a build.
pub trait Observer: Sync {
    /// Something happened: a step started or finished, a crate compiled, a note, a
    /// warning.
    fn event(&self, event: Event);

    /// A line cargo wrote to stderr (status lines and rendered diagnostics), passed
    /// through as cargo wrote it.
    fn cargo_stderr(&self, line: &str);

    /// kiln did something on the user's behalf.
    fn note(&self, note: Note) {
        self.event(Event::Note(note));
    }

    /// Something is wrong but the build goes on.
    fn warn(&self, warning: Warning) {
        self.event(Event::Warning(warning));
    }
}

/// An observer that keeps every event, for tests.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct Recorder(pub(crate) std::sync::Mutex<Vec<Event>>);

#[cfg(test)]
impl Observer for Recorder {
    fn event(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }

    fn cargo_stderr(&self, _: &str) {}
}
