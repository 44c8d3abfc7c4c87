//! The `kiln` command. Everything lives in `kiln-commands`; this only hands over.

fn main() -> std::process::ExitCode {
    kiln_commands::main()
}
