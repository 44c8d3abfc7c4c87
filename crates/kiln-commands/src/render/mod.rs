//! The human renderer: every [`Event`] put into words, in one place (a room per
//! kind: `build` for what a build says, `commands` for the other commands' results,
//! `notices` for notes, warnings and reasons). The reporter prints what this returns
//! (colors, streams); the JSON renderer prints the events as they are. A sentence
//! here is never read back by anything.

mod build;
mod commands;
mod notices;
#[cfg(test)]
mod tests;

use kiln_schema::{Event, UnitGroup};

/// How a line looks and where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// A green, right-aligned verb: progress or a result (stderr).
    Status(&'static str),
    /// A cyan verb: information (stderr).
    Info(&'static str),
    /// `warning: ...` (stderr).
    Warn,
    /// An error line, as errors are printed (stderr).
    Error,
    /// Text as it is (stderr).
    Plain,
    /// Data a command was asked for (stdout).
    Data,
}

/// One line to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) style: Style,
    pub(crate) text: String,
}

fn line(style: Style, text: impl Into<String>) -> Line {
    Line {
        style,
        text: text.into(),
    }
}

/// What the renderer needs to know besides the event.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct View {
    /// `-v`.
    pub(crate) verbose: bool,
    /// stderr is a CI log (no terminal): a line per finished step.
    pub(crate) log: bool,
}

/// `chronik-server (linux/amd64, linux/arm64), chronik-cli (linux/amd64)`.
fn grouped(units: &[UnitGroup]) -> String {
    units
        .iter()
        .map(|u| format!("{} ({})", u.binary, platforms(&u.arches)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `linux/amd64, linux/arm64`: platforms spelled as `--target` takes them, in every
/// command's output.
fn platforms<S: AsRef<str>>(arches: &[S]) -> String {
    arches
        .iter()
        .map(|a| format!("linux/{}", a.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `1 binary`, `4 binaries`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The words for an event: nothing for events that only feed progress.
pub(crate) fn render(e: &Event, v: View) -> Vec<Line> {
    build::render(e, v).unwrap_or_else(|| commands::render(e, v))
}

/// `amd64` for a target triple (or the triple itself).
pub(crate) fn arch_of(triple: &str) -> &str {
    match triple.split('-').next().unwrap_or(triple) {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
