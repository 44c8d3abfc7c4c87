//! The `kiln` command. Everything lives in `kiln-cli`; this only hands over.

fn main() -> std::process::ExitCode {
    kiln_cli::main()
}
