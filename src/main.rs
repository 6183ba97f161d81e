use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, parser::ValueSource};

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of stdout goes away (`audit ... | head`)
    // instead of panicking on a failed print.
    #[cfg(unix)]
    // SAFETY: restores the default disposition before any thread starts; nothing else handles SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let matches = audit::cli::Cli::command().get_matches();
    let mut cli = match audit::cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    cli.global.database_url_explicit = matches.value_source("database_url") == Some(ValueSource::CommandLine);
    audit::commands::main(cli)
}
