//! `cargo kiln …`: the same command as `kiln …`, run by cargo as a subcommand.

fn main() -> std::process::ExitCode {
    kiln_commands::cargo_main()
}
