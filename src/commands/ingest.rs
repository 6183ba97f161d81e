//! `audit ingest`: the engine's ingest ([`crate::sync::run`](mod@crate::sync::run)) once or on a schedule, under the
//! company's lock, with its progress and summary.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::common::{Display, INTERRUPTED, LOCKED, Locked, client, print_summary, with_company_lock};
use crate::cli::{GlobalArgs, IngestArgs};
use crate::inflow::Client;
use crate::mapping::DocType;
use crate::store::{Store, StoreError};
use crate::sync::{IngestOptions, StopFlag, StopReason, SyncError};

/// Runs `audit ingest`: its exit status, or the error to report.
pub async fn run(global: &GlobalArgs, args: IngestArgs) -> anyhow::Result<ExitCode> {
    let stop = StopFlag::default();
    let mut client = client(&args.inflow)?.with_stop(stop.clone());
    // A SQLite file this run creates is removed again if the run fails before storing a
    // document (a wrong key or company), rather than left behind empty. A dangling symbolic
    // link is not new: removing it would delete the user's link.
    let new_file = super::database_url(global)?.sqlite_file().filter(|p| p.symlink_metadata().is_err());
    // The first opening fails at once: a wrong URL is better told than retried.
    let mut store = Some(super::open_store(global).await?);
    let types = if args.types.is_empty() { DocType::ALL.to_vec() } else { args.types.clone() };
    let company = client.config().company_id.clone();
    let options = IngestOptions {
        company_id: company.clone(),
        since: args.since,
        window: args.window.map(|w| chrono::Duration::from_std(w).unwrap_or(chrono::Duration::MAX)),
        types,
        skip_unavailable: args.types.is_empty(),
        arguments: arguments(&args),
    };
    super::stop_on_signals(stop.clone());
    let progress = Display::new(global);
    let shown = progress.clone();
    client.observe_waits(std::sync::Arc::new(move |wait| shown.waiting(wait)));
    let mut database_failures = 0u32;
    let code = loop {
        let started = Instant::now();
        // A scheduled loop holds no connection between its runs: each opens the database anew
        // (which must exist by then), so an outage in between costs nothing.
        let opened = match store.take() {
            Some(store) => Ok(store),
            None => super::open_existing_store(global).await.map_err(Failure::Database),
        };
        let outcome = match opened {
            Ok(db) => {
                let outcome = one_run(&db, &args, &client, &options, &progress, &stop, started).await;
                if args.every.is_some() && !stop.is_forced() {
                    db.close().await;
                } else {
                    store = Some(db);
                }
                outcome
            }
            Err(failure) => Err(failure),
        };
        let Some(every) = args.every else {
            match outcome {
                Ok(code) => break code.unwrap_or(ExitCode::SUCCESS),
                Err(Failure::Database(err) | Failure::Other(err)) => {
                    if let Some(store) = store.take() {
                        let empty =
                            new_file.is_some() && matches!(store.holds_only_ended_runs_of(&company).await, Ok(true));
                        store.close().await;
                        if let (true, Some(path)) = (empty, &new_file) {
                            super::common::remove_sqlite_files(path);
                        }
                    }
                    return Err(err);
                }
            }
        };
        let next = match outcome {
            Ok(Some(code)) => break code,
            Ok(None) => {
                database_failures = 0;
                started + every
            }
            Err(failure) => after_failure(failure, &mut database_failures, started, every),
        };
        if stop.is_set() {
            break ExitCode::SUCCESS;
        }
        let next = tokio::time::Instant::from_std(next);
        if database_failures == 0 && !global.quiet {
            let wait = Duration::from_secs(next.saturating_duration_since(tokio::time::Instant::now()).as_secs());
            let at = chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
            crate::output::note(&format!(
                "next run at {} (in {})",
                at.format("%Y-%m-%d %H:%M:%S UTC"),
                humantime::format_duration(wait)
            ));
        }
        stop.sleep_until(next).await;
        if stop.is_set() {
            break ExitCode::SUCCESS;
        }
        client = client.next_run();
    };
    // After a second signal the pool's connection may be stuck in the abandoned statement, and
    // closing the pool would wait for it.
    if let Some(store) = store
        && code != ExitCode::from(INTERRUPTED)
    {
        store.close().await;
    }
    Ok(code)
}

/// When a scheduled loop runs again after a failed run, saying why. A scheduled loop outlives
/// failed runs: the next one resumes from the saved position. When the database failed, it is
/// tried again sooner, with a backoff.
fn after_failure(failure: Failure, database_failures: &mut u32, started: Instant, every: Duration) -> Instant {
    match failure {
        Failure::Other(err) => {
            *database_failures = 0;
            crate::output::note(&format!(
                "error: {}; the next run continues from the saved position",
                crate::error_text(&*err)
            ));
            started + every
        }
        Failure::Database(err) => {
            let wait = database_backoff(*database_failures, every);
            *database_failures += 1;
            crate::output::note(&format!(
                "error: {}; trying again in {} (the next run continues from the saved position)",
                crate::error_text(&*err),
                humantime::format_duration(wait)
            ));
            Instant::now() + wait
        }
    }
}

/// Why a run of the loop failed: the database (tried again soon) or anything else.
enum Failure {
    Database(anyhow::Error),
    Other(anyhow::Error),
}

/// Waits between attempts while the database fails: 1 s, 2 s, 4 s, ... up to a minute, and
/// never longer than the schedule's own interval.
fn database_backoff(failures: u32, every: Duration) -> Duration {
    Duration::from_secs(1u64 << failures.min(6)).min(Duration::from_secs(60)).min(every.max(Duration::from_secs(1)))
}

/// One run of the loop: take the lock, ingest (and snapshot), print, release. `Some(code)` ends
/// the loop with that status.
async fn one_run(
    store: &Store,
    args: &IngestArgs,
    client: &Client,
    options: &IngestOptions,
    progress: &Display,
    stop: &StopFlag,
    started: Instant,
) -> Result<Option<ExitCode>, Failure> {
    let company = &options.company_id;
    let started_at = chrono::Utc::now();
    let database = |e: StoreError| Failure::Database(e.into());
    let work = async || {
        // Told before a first run, where a person (a terminal, or -v) reads it.
        if progress.watched()
            && crate::sync::estimate::worth_probing(client, &options.types)
            && crate::sync::estimate::is_first_run(store, options).await
        {
            match crate::sync::estimate::probe(client, &options.types).await {
                Ok(estimate) => crate::output::note(&estimate.describe(&client.config().limits)),
                // The run that follows stops at once too.
                Err(crate::inflow::ClientError::Stopped | crate::inflow::ClientError::BudgetSpent) => {}
                Err(e) => {
                    tracing::warn!("the cost of this first run could not be estimated: {}", crate::error_text(&e))
                }
            }
        }
        let mut result = crate::sync::run(store, client, options, progress, stop).await;
        progress.clear();
        // Printed before the lock is released, but a closed stdout must not keep it held.
        let mut printed = Ok(());
        let quiet = progress.quiet();
        if let Ok(summary) = &result {
            if !quiet {
                printed = print_summary(summary, started.elapsed(), args.every.map(|_| started_at));
            }
            if args.snapshot && summary.stop.is_none() {
                let snap_started = Instant::now();
                match crate::sync::snapshot::run(store, client, company, stop).await {
                    Ok(_) if quiet => {}
                    Ok(snap) => printed = printed.and(super::snapshot::print_summary(&snap, snap_started.elapsed())),
                    Err(e) => result = Err(e),
                }
            }
        }
        (result, printed)
    };
    let abandoned = |(result, _): &(Result<_, SyncError>, _)| matches!(result, Err(SyncError::Interrupted { .. }));
    let (result, printed) = match with_company_lock(store, company, "ingest", args.wait, stop, work, abandoned)
        .await
        .map_err(database)?
    {
        Locked::Ran(out) => out,
        Locked::Stopped => return Ok(Some(ExitCode::SUCCESS)),
        Locked::Busy(holder) if args.every.is_some() => {
            crate::output::note(&format!(
                "skipping this run: another ingest of company {company} is running, {holder}"
            ));
            return Ok(None);
        }
        Locked::Busy(holder) => {
            crate::output::note(&format!(
                "another ingest of company {company} is running in this database: {holder}. Use --wait to wait for it."
            ));
            return Ok(Some(ExitCode::from(LOCKED)));
        }
    };
    if let Err(err @ SyncError::Interrupted { .. }) = &result {
        crate::output::note(&format!("stopped: {}", crate::error_text(err)));
        return Ok(Some(ExitCode::from(INTERRUPTED)));
    }
    printed.map_err(|e| Failure::Other(e.into()))?;
    match result {
        // Another process took the lock over while this one was silent (a suspended machine,
        // say): this run ended after its last page; it is a failure, not a clean stop.
        Ok(_) if stop.reason() == Some(StopReason::LockLost) => {
            stop.clear_lock_lost();
            Err(Failure::Other(anyhow::anyhow!(
                "another process took over the ingest lock of company {company} while this one was silent \
                 for more than {} s; this run stopped after its last page",
                crate::store::lock::STALE_AFTER.as_secs()
            )))
        }
        Ok(_) => Ok(None),
        Err(SyncError::Store(e)) => Err(Failure::Database(e.into())),
        Err(e) => Err(Failure::Other(e.into())),
    }
}

/// The options as recorded with the run: everything but the key.
fn arguments(args: &IngestArgs) -> serde_json::Value {
    serde_json::json!({
        "since": args.since,
        "snapshot": args.snapshot,
        "window": args.window.map(|w| humantime::format_duration(w).to_string()),
        "every": args.every.map(|w| humantime::format_duration(w).to_string()),
        "types": args.types.iter().map(|t| t.stream()).collect::<Vec<_>>(),
        "base_url": args.inflow.base_url,
        "max_per_minute": args.inflow.max_per_minute,
        "max_per_hour": args.inflow.max_per_hour,
        "max_requests": args.inflow.max_requests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_key_file_is_read_only_when_others_cannot_read_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "  sk_secret_123\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = super::super::common::read_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("can be read by other users (mode 644)") && err.contains("chmod 600"), "{err}");
        assert!(!err.contains("sk_secret_123"), "the key is never shown");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(super::super::common::read_key_file(&path).unwrap(), "sk_secret_123");

        std::fs::write(&path, "two words\n").unwrap();
        let err = super::super::common::read_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("must hold the key alone") && !err.contains("words"), "{err}");
        let err = super::super::common::read_key_file(&dir.path().join("absent")).unwrap_err();
        assert!(format!("{err:#}").contains("cannot read the API key file"), "{err:#}");
    }

    #[test]
    fn the_database_is_tried_again_sooner_and_sooner_less_often_up_to_a_minute_or_the_interval() {
        let hour = Duration::from_secs(3600);
        let waits: Vec<u64> = (0..9).map(|n| database_backoff(n, hour).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(database_backoff(5, Duration::from_secs(10)), Duration::from_secs(10));
        assert_eq!(database_backoff(0, Duration::from_millis(10)), Duration::from_secs(1));
    }
}
