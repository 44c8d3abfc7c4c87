//! `kiln completions SHELL` and `kiln man --output DIR`: what packagers ship beside
//! the binary, generated from the same argument definitions as `--help`.

use crate::args::{Cli, CompletionsArgs, ManArgs};
use crate::reporter::Reporter;
use clap::CommandFactory;
use kiln_diagnostics::{Error, Result};
use kiln_schema::Event;
use std::process::ExitCode;

pub(crate) fn completions(args: &CompletionsArgs, r: &Reporter) -> Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "kiln", &mut script);
    // The script is the data asked for: stdout, whatever the message format.
    r.output(String::from_utf8_lossy(&script).trim_end());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn man(args: &ManArgs, r: &Reporter) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.output).map_err(|e| Error::io("create", &args.output, e))?;
    let mut pages = Vec::new();
    write_pages(Cli::command(), "", &args.output, &mut pages)?;
    r.emit(&Event::ManWritten {
        dir: super::short(&args.output),
        pages,
    });
    Ok(ExitCode::SUCCESS)
}

/// Writes `cmd`'s page (`kiln-cache-push.1` for `kiln cache push`) and its
/// subcommands', atomically each.
fn write_pages(
    cmd: clap::Command,
    parent: &str,
    dir: &std::path::Path,
    pages: &mut Vec<String>,
) -> Result<()> {
    let name = if parent.is_empty() {
        cmd.get_name().to_string()
    } else {
        format!("{parent}-{}", cmd.get_name())
    };
    let cmd = cmd.name(name.clone());
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .map_err(|e| Error::internal("failed to render a man page").with_source(e))?;
    let file = format!("{name}.1");
    kiln_fs::write_atomic(&dir.join(&file), &page)?;
    pages.push(file);
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub.clone(), &name, dir, pages)?;
    }
    Ok(())
}
