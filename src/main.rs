use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = audit::cli::Cli::parse();
    audit::commands::main(cli)
}
