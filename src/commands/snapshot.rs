//! `audit snapshot`: record inFlow's current serial stock.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use super::common::{INTERRUPTED, LOCKED, Locked, client, with_company_lock};
use crate::cli::{GlobalArgs, SnapshotArgs};
use crate::sync::snapshot::SnapshotSummary;
use crate::sync::{StopFlag, StopReason, SyncError};

/// Runs `audit snapshot`: its exit status, or the error to report.
pub async fn run(global: &GlobalArgs, args: SnapshotArgs) -> anyhow::Result<ExitCode> {
    let stop = StopFlag::default();
    let client = client(&args.inflow)?.with_stop(stop.clone());
    let store = super::open_store(global).await?;
    let company = client.config().company_id.clone();
    super::stop_on_signals(stop.clone());
    let started = Instant::now();
    let work = async || crate::sync::snapshot::run(&store, &client, &company, &stop).await;
    let abandoned = |result: &Result<_, SyncError>| matches!(result, Err(SyncError::Interrupted { .. }));
    let result = match with_company_lock(&store, &company, "snapshot", false, &stop, work, abandoned).await? {
        Locked::Ran(result) => result,
        Locked::Busy(holder) => {
            crate::output::note(&format!("another ingest of company {company} is running in this database: {holder}"));
            store.close().await;
            return Ok(ExitCode::from(LOCKED));
        }
        Locked::Stopped => unreachable!("the lock is not waited for"),
    };
    if let Err(err @ SyncError::Interrupted { .. }) = &result {
        // Not closing the store: its connection may be stuck in the abandoned statement.
        crate::output::note(&format!("stopped: {}", crate::error_text(err)));
        return Ok(ExitCode::from(INTERRUPTED));
    }
    store.close().await;
    let summary = result?;
    if !global.quiet {
        print_summary(&summary, started.elapsed())?;
    }
    if summary.stop == Some(StopReason::LockLost) {
        anyhow::bail!(
            "another process took over the ingest lock of company {company}; the next snapshot run continues"
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn print_summary(s: &SnapshotSummary, elapsed: std::time::Duration) -> std::io::Result<()> {
    let how = match (s.complete, s.stop) {
        (true, _) => "complete".to_string(),
        (false, Some(StopReason::Budget)) => "stopped at --max-requests; the next snapshot run continues it".into(),
        (false, _) => "stopped; the next snapshot run continues it".into(),
    };
    let resumed = if s.resumed { " (resumed)" } else { "" };
    writeln!(
        crate::output::stdout(),
        "Snapshot {}{resumed} {how} in {:.1}s: {} requests, {} serialized products, {} serial lines.",
        s.snapshot_id,
        elapsed.as_secs_f64(),
        s.requests,
        s.products,
        s.serial_lines
    )
}
