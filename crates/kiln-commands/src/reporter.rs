//! Where every line kiln prints goes through: commands emit [`Event`]s, and this
//! prints each as JSON (one object per line on stdout) or as words (the human
//! renderer, `crate::render`: cargo-style colored status lines on stderr, data on
//! stdout), with a progress bar and a heartbeat while cargo runs. No command
//! checks the message format.

use crate::args::{ColorChoice, GlobalArgs, MessageFormat};
use crate::render::{self, Style, View};
use anstyle::AnsiColor;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln_build::Observer;
use kiln_diagnostics::Error;
use kiln_schema::Event;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const GREEN: anstyle::Style = AnsiColor::Green.on_default().bold();
const CYAN: anstyle::Style = AnsiColor::Cyan.on_default().bold();
const YELLOW: anstyle::Style = AnsiColor::Yellow.on_default().bold();
const RED: anstyle::Style = AnsiColor::Red.on_default().bold();

/// Where every line kiln prints goes through.
pub(crate) struct Reporter {
    json: bool,
    verbose: bool,
    quiet: bool,
    progress: Mutex<Option<ProgressBar>>,
    /// What is compiling now, for the heartbeat.
    activity: Arc<Mutex<Activity>>,
    /// Inside rustup's backtrace in cargo's stderr (hidden without `-v`).
    in_backtrace: std::sync::atomic::AtomicBool,
    /// Inside one of cargo's error messages (shown even with `-q`, whole).
    in_error: std::sync::atomic::AtomicBool,
    /// The heartbeat thread, when stderr is not a terminal and a build runs.
    heartbeat: Mutex<Option<Heartbeat>>,
    /// How often the heartbeat speaks.
    every: Duration,
}

/// The builds in progress, as the heartbeat reports them.
#[derive(Default)]
struct Activity {
    /// Package being built, with when it started.
    steps: Vec<(String, Instant)>,
    /// Crates finished so far, and the last one.
    finished: usize,
    last: String,
}

/// A thread that prints a line every interval while builds run, so CI services that
/// kill silent jobs see kiln alive; dropping the sender stops it.
struct Heartbeat {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Reporter {
    pub(crate) fn new(g: &GlobalArgs, heartbeat: Duration) -> Self {
        let choice = match g.color {
            ColorChoice::Auto => anstream::ColorChoice::Auto,
            ColorChoice::Always => anstream::ColorChoice::Always,
            ColorChoice::Never => anstream::ColorChoice::Never,
        };
        choice.write_global();
        Self {
            json: g.message_format == MessageFormat::Json,
            verbose: g.verbose > 0,
            quiet: g.quiet,
            progress: Mutex::new(None),
            activity: Arc::default(),
            in_backtrace: Default::default(),
            in_error: Default::default(),
            heartbeat: Mutex::new(None),
            every: heartbeat,
        }
    }

    /// Starts the heartbeat (once) when lines are for people but stderr is not a
    /// terminal: a CI log.
    fn start_heartbeat(&self) {
        if self.quiet || self.json || std::io::stderr().is_terminal() {
            return;
        }
        let mut guard = self.heartbeat.lock().unwrap();
        if guard.is_some() {
            return;
        }
        let every = self.every;
        let (stop, rx) = std::sync::mpsc::channel::<()>();
        let activity = Arc::clone(&self.activity);
        let thread = std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                let a = activity.lock().unwrap();
                if a.steps.is_empty() {
                    continue;
                }
                let steps: Vec<String> = a
                    .steps
                    .iter()
                    .map(|(p, t)| format!("{p} ({}s)", t.elapsed().as_secs()))
                    .collect();
                let last = if a.last.is_empty() {
                    String::new()
                } else {
                    format!(", last {}", a.last)
                };
                anstream::eprintln!(
                    "{CYAN}{:>12}{CYAN:#} {}: {} crates done{last}",
                    "Compiling",
                    steps.join(", "),
                    a.finished
                );
            }
        });
        *guard = Some(Heartbeat { stop, thread });
    }

    fn stop_heartbeat(&self) {
        if let Some(h) = self.heartbeat.lock().unwrap().take() {
            drop(h.stop);
            let _ = h.thread.join();
        }
    }

    /// Runs `print` without tearing the progress bar.
    fn around_progress(&self, print: impl FnOnce()) {
        let guard = self.progress.lock().unwrap();
        match guard.as_ref() {
            Some(pb) => pb.suspend(print),
            None => print(),
        }
    }

    /// Prints a line on stderr.
    fn line(&self, text: &str) {
        self.around_progress(|| anstream::eprintln!("{text}"));
    }

    /// Prints `e`: as JSON, or in words.
    pub(crate) fn emit(&self, e: &Event) {
        if self.json {
            self.output(&serde_json::to_string(e).expect("events serialize"));
            return;
        }
        let view = View {
            verbose: self.verbose,
            log: !std::io::stderr().is_terminal(),
        };
        for l in render::render(e, view) {
            self.print(&l);
        }
    }

    fn print(&self, l: &render::Line) {
        let text = &l.text;
        match l.style {
            Style::Data => self.output(text),
            Style::Error => self.line(&format!("{RED}error{RED:#}: {text}")),
            Style::Warn => self.line(&format!("{YELLOW}warning{YELLOW:#}: {text}")),
            _ if self.quiet => {}
            Style::Status(verb) => self.line(&format!("{GREEN}{verb:>12}{GREEN:#} {text}")),
            Style::Info(verb) => self.line(&format!("{CYAN}{verb:>12}{CYAN:#} {text}")),
            Style::Plain => self.line(text),
        }
    }

    /// Prints an error with its causes and hints. Errors always go to stderr.
    pub(crate) fn error(&self, err: &Error) {
        let mut text = format!("{RED}error{RED:#}: {err}");
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            let msg = s.to_string();
            for (i, l) in msg.trim_end().lines().enumerate() {
                let lead = if i == 0 { "  caused by: " } else { "    " };
                text.push_str(&format!("\n{lead}{l}"));
            }
            source = s.source();
        }
        for h in err.hints() {
            // A hint of several lines (a diff) stays indented under its label.
            let h = h.replace('\n', "\n        ");
            text.push_str(&format!("\n  {CYAN}hint{CYAN:#}: {h}"));
        }
        self.line(&text);
    }

    /// Writes one JSON event on stdout whatever the message format: the output a
    /// command was asked for (`kiln affected --format json`).
    pub(crate) fn output_event(&self, e: &Event) {
        self.output(&serde_json::to_string(e).expect("events serialize"));
    }

    /// Writes a line of a command's output (data for a pipe) on stdout.
    pub(crate) fn output(&self, text: &str) {
        self.around_progress(|| println!("{text}"));
    }

    fn start_progress(&self, len: u64, prefix: String) {
        if self.quiet || self.json || !std::io::stderr().is_terminal() {
            return;
        }
        let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template(
                "{prefix:>12.cyan.bold} [{bar:27}] {pos}/{len}: {wide_msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        pb.set_prefix(prefix);
        pb.enable_steady_tick(Duration::from_millis(120));
        *self.progress.lock().unwrap() = Some(pb);
    }

    fn finish_progress(&self) {
        if let Some(pb) = self.progress.lock().unwrap().take() {
            pb.finish_and_clear();
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.finish_progress();
        self.stop_heartbeat();
    }
}

/// True for cargo's right-aligned status lines (`   Compiling foo v0.1.0`).
fn is_cargo_status(line: &str) -> bool {
    line.len() > 13
        && line.as_bytes()[12] == b' '
        && line[..12]
            .trim_start()
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase())
        && !line[..12].trim_start().contains(' ')
}

impl Observer for Reporter {
    fn event(&self, e: Event) {
        match &e {
            Event::BuildStarted {
                packages, crates, ..
            } => {
                self.emit(&e);
                self.start_progress(*crates as u64, "Building".into());
                let mut a = self.activity.lock().unwrap();
                a.steps
                    .extend(packages.iter().map(|p| (p.clone(), Instant::now())));
                drop(a);
                self.start_heartbeat();
            }
            Event::CrateCompiled { name, target } => {
                {
                    let mut a = self.activity.lock().unwrap();
                    a.finished += 1;
                    a.last = format!("{name} ({target})");
                }
                self.emit(&e);
                if let Some(pb) = self.progress.lock().unwrap().as_ref() {
                    if pb.position() + 1 >= pb.length().unwrap_or(0) {
                        pb.inc_length(1);
                    }
                    pb.inc(1);
                    pb.set_message(format!("{name} ({target})"));
                }
            }
            Event::StepFinished { package, .. } => {
                self.finish_progress();
                self.activity
                    .lock()
                    .unwrap()
                    .steps
                    .retain(|(p, _)| p != package);
                self.emit(&e);
            }
            _ => self.emit(&e),
        }
    }

    fn cargo_stderr(&self, line: &str) {
        // rustup's backtrace (after `Stack backtrace:`, indented) only with `-v`.
        if !self.verbose {
            use std::sync::atomic::Ordering;
            if line.starts_with("Stack backtrace:") {
                self.in_backtrace.store(true, Ordering::SeqCst);
                return;
            }
            if self.in_backtrace.load(Ordering::SeqCst) {
                if line.starts_with(' ') || line.is_empty() {
                    return;
                }
                self.in_backtrace.store(false, Ordering::SeqCst);
            }
        }
        if is_cargo_status(line) {
            if self.verbose && !self.json {
                self.line(line);
            }
        } else if self.json {
            eprintln!("{line}");
        } else if !self.quiet {
            self.line(line);
        } else {
            // Quiet, as `cargo -q`: errors still whole (a failed build script's output
            // is its cause), from `error` to the next warning.
            use std::sync::atomic::Ordering;
            if line.starts_with("error") {
                self.in_error.store(true, Ordering::SeqCst);
            } else if line.starts_with("warning") {
                self.in_error.store(false, Ordering::SeqCst);
            }
            if self.in_error.load(Ordering::SeqCst) {
                self.line(line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn recognises_cargo_status_lines() {
        assert!(super::is_cargo_status("   Compiling foo v0.1.0 (/x)"));
        assert!(super::is_cargo_status("    Finished `release` profile"));
        assert!(!super::is_cargo_status(
            "error[E0425]: cannot find value `x`"
        ));
        assert!(!super::is_cargo_status("  --> src/main.rs:1:1"));
    }
}
