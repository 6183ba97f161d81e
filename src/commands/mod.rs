//! One module per subcommand. `main` sets up logging and the runtime, runs the command and
//! turns its outcome into an exit status.

pub mod anomalies;
mod common;
pub mod demo;
pub mod doctor;
pub mod ingest;
pub mod lookup;
pub mod migrate;
pub mod rebuild;
pub mod reconcile;
pub mod reference;
pub mod serve;
pub mod simulate;
pub mod snapshot;
pub mod sql;
pub mod status;
pub mod timeline;

use std::process::ExitCode;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::store::{DatabaseUrl, Store};

/// Exit status of a command that failed. As with grep and diff, 1 is an answer ("unknown
/// serial", "disagreements found"), so a script can tell it from trouble.
pub(crate) const ERROR: u8 = 2;

/// Runs the parsed command line and returns the process exit status.
pub fn main(cli: Cli) -> ExitCode {
    init_tracing(&cli.global);
    crate::output::show_utc(cli.global.utc);
    // Commands that talk to inFlow (or serve as it) overlap network, parsing and database work
    // on all cores; the others run a query or two, where starting worker threads is most of
    // the cost.
    let mut builder = match cli.command {
        Command::Ingest(_)
        | Command::Snapshot(_)
        | Command::Rebuild(_)
        | Command::Demo(_)
        | Command::Simulate(_)
        | Command::Serve(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            crate::output::note(&format!("error: cannot start the async runtime: {err}"));
            return ExitCode::from(ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        // `audit ... | head`: the reader has what it wanted.
        Err(err) if crate::output::is_stdout_closed(err.as_ref()) => ExitCode::SUCCESS,
        Err(err) => {
            crate::output::note(&format!("error: {}", crate::error_text(err.as_ref())));
            ExitCode::from(ERROR)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global;
    match cli.command {
        Command::Migrate => migrate::run(&global).await,
        Command::Ingest(args) => ingest::run(&global, args).await,
        Command::Doctor(args) => doctor::run(&global, args).await,
        Command::Timeline(args) => timeline::run(&global, args).await,
        Command::Sql(args) => sql::run(&global, args).await,
        Command::Status(args) => status::run(&global, args).await,
        Command::Snapshot(args) => snapshot::run(&global, args).await,
        Command::Lookup(args) => lookup::run(&global, args).await,
        Command::Reconcile(args) => reconcile::run(&global, args).await,
        Command::Anomalies(args) => anomalies::run(&global, args).await,
        Command::Rebuild(args) => rebuild::run(&global, args).await,
        Command::Serve(args) => serve::run(&global, args).await,
        Command::Demo(args) => demo::run(&global, args).await,
        Command::Simulate(args) => simulate::run(&global, args).await,
        Command::Completions { shell } => reference::completions(shell),
        Command::Man => reference::man(),
        Command::Config => reference::config(&global),
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

/// A SQLite file that does not exist is an error for a command that reads (most likely a
/// mistyped URL), not a new empty database.
pub(crate) fn require_existing(url: &DatabaseUrl) -> anyhow::Result<()> {
    if let Some(path) = url.sqlite_file().filter(|p| !p.exists()) {
        anyhow::bail!(
            "there is no audit database at {}: check --database-url (or AUDIT_DATABASE_URL), or fill one with \
             `audit ingest` (`audit demo` to try it on simulated data)",
            path.display()
        );
    }
    Ok(())
}

/// Opens the database for a command that only reads it: a SQLite file that does not exist is
/// an error (most likely a mistyped URL), not a new empty database.
pub(crate) async fn open_existing_store(global: &GlobalArgs) -> anyhow::Result<Store> {
    let url = database_url(global)?;
    require_existing(&url)?;
    open_store(global).await
}

/// Where a company filter came from, for messages: a value of `INFLOW_COMPANY_ID` filters
/// silently unless it is named.
pub(crate) fn company_filter_source(company: &str) -> String {
    if std::env::var("INFLOW_COMPANY_ID").is_ok_and(|v| v.trim() == company) {
        "INFLOW_COMPANY_ID".into()
    } else if let Some(file) = crate::config::company_source(company) {
        file
    } else {
        "--company-id".into()
    }
}

/// A read command's company filter must name a company the database holds: a mistyped or
/// stale one would otherwise read as "nothing there".
pub(crate) async fn check_company(store: &Store, company: Option<&str>) -> anyhow::Result<()> {
    let Some(company) = company else { return Ok(()) };
    if store.has_company(company).await? {
        return Ok(());
    }
    let known = store.companies().await?;
    let source = company_filter_source(company);
    let held = match known.as_slice() {
        [] => "it holds no company yet: run `audit ingest`".to_string(),
        [one] => format!("it holds company {one}"),
        many => format!("it holds companies {}", many.join(", ")),
    };
    let case = known.iter().find(|k| k.eq_ignore_ascii_case(company));
    let hint = case.map_or(String::new(), |k| format!(" (did you mean {k}? ids are compared exactly)"));
    anyhow::bail!("company {company} (from {source}) is not in this database{hint}; {held}")
}

/// [`open_existing_store`] for a command that never writes: a SQLite file is opened read-only,
/// so that a read-only file or directory (a copy, a shared volume) can still be read.
pub(crate) async fn open_reading_store(global: &GlobalArgs) -> anyhow::Result<Store> {
    let url = database_url(global)?;
    require_existing(&url)?;
    tracing::info!(database = %url, "opening the database to read it");
    Ok(Store::open_read_only(&url).await?)
}

/// Colours only for a person at a terminal who has not set `NO_COLOR` (to anything but the
/// empty string, as no-color.org says): a log file, a pipe or a journal gets plain text.
fn colours(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Diagnostics go to stderr; `RUST_LOG` overrides the level chosen by `-v`/`-q`.
fn init_tracing(global: &GlobalArgs) {
    use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let level = match (global.quiet, global.verbose) {
        (true, _) => LevelFilter::ERROR,
        (false, 0) => LevelFilter::WARN,
        (false, 1) => LevelFilter::INFO,
        (false, 2) => LevelFilter::DEBUG,
        (false, _) => LevelFilter::TRACE,
    };
    let ansi = colours(std::io::IsTerminal::is_terminal(&std::io::stderr()), std::env::var_os("NO_COLOR"));
    let fmt =
        tracing_subscriber::fmt::layer().with_writer(|| crate::output::LogWriter).with_target(false).with_ansi(ansi);
    // `EnvFilter` compiles regular expressions to parse its directives: a third of a short
    // command's CPU time. Only a `RUST_LOG` needs it.
    let _ = match std::env::var("RUST_LOG").ok().and_then(|v| EnvFilter::try_new(v).ok()) {
        Some(filter) => tracing_subscriber::registry().with(fmt.with_filter(filter)).try_init(),
        None => {
            // Dependencies stay at warn below -vvv: their debug output is noise to users.
            let deps = if global.verbose >= 3 { level } else { LevelFilter::WARN.min(level) };
            // sqlx's slow-statement notes (at info) follow -v like audit's own.
            let filter =
                Targets::new().with_default(deps).with_target("audit", level).with_target("sqlx::query", level);
            tracing_subscriber::registry().with(fmt.with_filter(filter)).try_init()
        }
    };
}

/// Ctrl-C or SIGTERM cuts every wait short and ends a run after the page it is writing, with its
/// position saved. A second one abandons that page and records the run as interrupted; a third,
/// or a record that takes too long, ends the process at once (the last saved page stays saved).
pub(crate) fn stop_on_signals(stop: crate::stop::StopFlag) {
    const EXIT_AFTER_FORCE: std::time::Duration = std::time::Duration::from_secs(10);
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
                return;
            };
            for n in 0.. {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                match n {
                    0 => {
                        crate::output::note(
                            "interrupted: finishing the page in progress, then stopping (interrupt again to stop now)",
                        );
                        stop.stop();
                    }
                    1 => {
                        crate::output::note("stopping at once; the run is recorded as interrupted");
                        stop.force();
                        tokio::spawn(async {
                            tokio::time::sleep(EXIT_AFTER_FORCE).await;
                            std::process::exit(common::INTERRUPTED.into());
                        });
                    }
                    _ => std::process::exit(common::INTERRUPTED.into()),
                }
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.stop();
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(super::colours(true, None));
        assert!(!super::colours(false, None), "redirected");
        assert!(!super::colours(true, Some("1".into())), "NO_COLOR");
        assert!(super::colours(true, Some("".into())), "an empty NO_COLOR is unset");
    }
}
