use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, parser::ValueSource};

fn main() -> ExitCode {
    let matches = audit::cli::Cli::command().get_matches();
    let mut cli = match audit::cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    cli.global.database_url_explicit = matches.value_source("database_url") == Some(ValueSource::CommandLine);
    audit::commands::main(cli)
}
