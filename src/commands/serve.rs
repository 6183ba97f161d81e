//! `audit serve`: the web view of the audit trail (pages in `crate::web`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::cli::{GlobalArgs, ServeArgs};
use crate::output;
use crate::store::Store;
use crate::web::server::{self, Limits, Stopped};
use crate::web::{self, AppState};

/// Runs `audit serve` until Ctrl-C or SIGTERM.
pub async fn run(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<ExitCode> {
    // Refused before anything is opened: a mistake here would publish the trail. An empty token
    // (`AUDIT_SERVE_TOKEN=` left empty by a script) is a mistake, not "no token".
    let token = web::token(args.token.as_deref())?;
    web::check_bind(args.bind, token.as_deref(), args.no_auth)?;
    let url = super::database_url(global)?;
    super::require_existing(&url)?;
    let limits = Limits::new(Duration::from_secs(args.time_limit));
    // A second more than a page may take: the client is answered 503 first (a statement
    // cancelled at the same instant could win the race and make it a 500), and the server
    // then cancels what the page still runs.
    let (store, guard) = Store::connect_read_only_within(&url, limits.page_time + Duration::from_secs(1)).await?;
    super::check_company(&store, args.company_id.as_deref()).await?;
    let listener = tokio::net::TcpListener::bind((args.bind, args.port)).await.with_context(|| {
        format!("cannot listen on {}:{}; is another program using that port? try --port", args.bind, args.port)
    })?;
    let addr = listener.local_addr()?;
    let zone = web::layout::zone_label();
    let state = AppState { store: store.clone(), company_id: args.company_id.clone(), zone };
    let app = web::router(state, token.clone(), args.bind, &limits);
    // The address is the command's result; a script waiting for it reads the first line.
    println!("Serving the audit trail of {} on http://{addr}/", url.redacted());
    output::note(&format!(
        "read-only: {guard}; {}; Ctrl-C stops",
        if token.is_some() { "every request needs the token" } else { "no token" }
    ));
    if server::serve(listener, app, &limits, shutdown()).await == Stopped::Closing {
        output::note(&format!("stopped; connections still open after {:?} were closed", limits.grace));
    }
    // Pages given up on may still hold connections (until their statements time out): not
    // waited for at exit.
    let _ = tokio::time::timeout(Duration::from_secs(2), store.close()).await;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM: stop accepting, finish the pages being sent.
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
