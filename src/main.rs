//! The `audit` command line: parses the arguments and runs the command (see [`audit::commands`]).

use std::process::ExitCode;

use clap::{FromArgMatches, parser::ValueSource};

fn main() -> ExitCode {
    // SIGPIPE stays ignored (Rust's default): a socket closed under a write (rustls sending an
    // alert to a server that hung up) is an error to handle, not a silent death. A reader of
    // stdout that goes away (`audit ... | head`) ends the process quietly at the command edge
    // (see `output::stdout`).
    let matches = audit::cli::command().get_matches();
    let mut cli = match audit::cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    cli.global.database_url_explicit = matches.value_source("database_url") == Some(ValueSource::CommandLine);
    // Settings from audit.toml fill what neither a flag nor the environment set. Completions
    // and the manual use none: a broken file in the working folder must not stop them.
    if matches!(cli.command, audit::cli::Command::Completions { .. } | audit::cli::Command::Man) {
        return audit::commands::main(cli);
    }
    let applied = audit::config::load(cli.global.config.as_deref())
        .and_then(|loaded| audit::config::apply(&mut cli, &matches, &loaded));
    if let Err(err) = applied {
        audit::output::note(&format!("error: {err}"));
        return ExitCode::from(2);
    }
    audit::commands::main(cli)
}
