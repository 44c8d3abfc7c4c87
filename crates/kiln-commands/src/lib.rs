//! kiln's command line. `main` parses arguments, runs one command, renders its result
//! and maps errors to the documented exit codes (`docs/exit-codes.md`).

mod args;
mod commands;
mod render;
mod reporter;

use clap::Parser;
use kiln_diagnostics::Error;
use reporter::Reporter;
use std::process::ExitCode;

/// Runs kiln with the process arguments and returns its exit code.
pub fn main() -> ExitCode {
    run(std::env::args_os().collect())
}

/// Runs kiln as `cargo kiln …`: cargo starts `cargo-kiln kiln …`, so the
/// subcommand's own name goes before the arguments are read.
pub fn cargo_main() -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "kiln") {
        args.remove(1);
    }
    run(args)
}

fn run(args: Vec<std::ffi::OsString>) -> ExitCode {
    let _ = STARTED.set(std::time::Instant::now());
    // Cargo runs kiln as its rustc wrapper when kiln fixes rustflags per target.
    if let Some(code) = kiln_toolchain::wrapper::run_if_wrapping() {
        return code;
    }
    // Before any thread: kiln's credentials leave the environment every child
    // inherits (cargo, rustc, build scripts, zig), even this process's own `/proc`
    // block (kiln runs itself again without them, handing their values over in a
    // pipe), and tools `kiln setup` installed for kiln come first on PATH.
    match kiln_config::take_sealed_fd() {
        Some(fd) => kiln_metrics::sealed::receive(fd),
        None => {
            let names: Vec<&str> = kiln_config::sealed_names().collect();
            kiln_metrics::sealed::rerun_without(&names);
        }
    }
    kiln_metrics::sealed::not_dumpable();
    kiln_config::seal_credentials();
    // Also before any thread: an interrupt reaches cargo and rustc, not kiln alone.
    kiln_metrics::signals::forward_interrupts();
    let env = kiln_config::env();
    kiln_toolchain::activate_tools(env.tools_dir());
    let cli = args::Cli::parse_from(args);
    let heartbeat = env.heartbeat.unwrap_or(std::time::Duration::from_secs(30));
    let reporter = Reporter::new(&cli.global, heartbeat);
    match commands::run(&cli, &reporter) {
        Ok(code) => code,
        Err(err) => {
            reporter.error(&err);
            exit_code(&err)
        }
    }
}

/// When this kiln process started: "Finished in" counts from here to the end, so
/// the figure a user reads is the wall time they waited (argument parsing, loading
/// the workspace and cargo metadata included).
static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Seconds since this kiln process started.
pub(crate) fn elapsed_secs() -> f64 {
    STARTED
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
}

fn exit_code(err: &Error) -> ExitCode {
    ExitCode::from(u8::try_from(err.kind().exit_code()).unwrap_or(1))
}
