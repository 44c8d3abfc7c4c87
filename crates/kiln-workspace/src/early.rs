//! Probes started before `cargo metadata` and collected where they are needed. A
//! restore spends most of its time waiting on processes; the probes that don't depend
//! on metadata's answer (`rustc -vV`, git's view of the checkout) run beside it.
//! Each result is handed out once: a later call runs the process again, so nothing
//! cached here can go stale.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;

type Key = (String, Vec<String>, PathBuf);

static STARTED: Mutex<Vec<(Key, JoinHandle<io::Result<Output>>)>> = Mutex::new(Vec::new());

fn key(program: &str, args: &[&str], dir: &Path) -> Key {
    (
        program.to_string(),
        args.iter().map(|a| a.to_string()).collect(),
        dir.to_path_buf(),
    )
}

fn run_now(program: &str, args: &[&str], dir: &Path) -> io::Result<Output> {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
}

/// Starts `program args` in `dir` now, for a later [`output`] of the same command.
pub fn start(program: &str, args: &[&str], dir: &Path) {
    let k = key(program, args, dir);
    let (p, a, d) = k.clone();
    let handle = std::thread::spawn(move || {
        let args: Vec<&str> = a.iter().map(String::as_str).collect();
        run_now(&p, &args, &d)
    });
    if let Ok(mut started) = STARTED.lock() {
        started.push((k, handle));
    }
}

/// The output of `program args` run in `dir` (stdin closed): the one [`start`]ed
/// earlier if there is one, else run now.
pub fn output(program: &str, args: &[&str], dir: &Path) -> io::Result<Output> {
    let k = key(program, args, dir);
    let early = STARTED.lock().ok().and_then(|mut started| {
        let i = started.iter().position(|(s, _)| *s == k)?;
        Some(started.swap_remove(i).1)
    });
    match early.map(JoinHandle::join) {
        Some(Ok(out)) => out,
        _ => run_now(program, args, dir),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_probe_is_collected_once_then_run_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "before").unwrap();
        start("cat", &["f"], dir.path());
        let early = output("cat", &["f"], dir.path()).unwrap();
        assert_eq!(early.stdout, b"before");
        std::fs::write(&file, "after").unwrap();
        let again = output("cat", &["f"], dir.path()).unwrap();
        assert_eq!(again.stdout, b"after", "nothing kept past one use");
        // Another directory is another probe.
        assert!(!output("cat", &["f"], Path::new("/"))
            .unwrap()
            .status
            .success());
    }
}
