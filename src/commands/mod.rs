//! One module per subcommand. `main` sets up logging and the runtime, runs the command and
//! turns its outcome into an exit status.

pub mod migrate;
pub mod simulate;

use std::process::ExitCode;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::store::{DatabaseUrl, Store};

/// Runs the parsed command line and returns the process exit status.
pub fn main(cli: Cli) -> ExitCode {
    init_tracing(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", describe(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping a cause whose text its parent already quotes
/// (sqlx and io errors often repeat their source in their own message).
fn describe(err: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut parent = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !parent.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        parent = text;
    }
    out
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global;
    match cli.command {
        Command::Migrate => migrate::run(&global).await,
        Command::Simulate(args) => simulate::run(&global, args).await,
    }
}

/// The database URL of the command line, checked.
pub(crate) fn database_url(global: &GlobalArgs) -> anyhow::Result<DatabaseUrl> {
    Ok(global.database_url.parse()?)
}

/// Opens the database named on the command line and brings its schema up to date.
pub(crate) async fn open_store(global: &GlobalArgs) -> anyhow::Result<Store> {
    let url = database_url(global)?;
    tracing::info!(database = %url, "opening the database");
    Ok(Store::open(&url).await?)
}

/// Diagnostics go to stderr; `RUST_LOG` overrides the level chosen by `-v`/`-q`.
fn init_tracing(global: &GlobalArgs) {
    use tracing_subscriber::EnvFilter;
    let level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // Dependencies stay at warn below -vvv: their debug output is noise to users.
        let deps = if global.verbose >= 3 { level } else { "warn" };
        EnvFilter::new(format!("{deps},audit={level}"))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
