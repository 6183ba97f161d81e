//! `audit ingest`: configuration, progress display and the run summary around the engine in
//! [`crate::ingest`].

use std::collections::HashMap;
use std::io::IsTerminal;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{GlobalArgs, InflowArgs, IngestArgs};
use crate::inflow::{ApiKey, Client, ClientConfig, RateLimits};
use crate::ingest::{IngestError, IngestOptions, Progress, RunSummary, StopFlag, StopReason, StreamSummary};
use crate::mapping::DocType;
use crate::store::{Store, StoreError};

/// Exit status when another ingest of the company holds the lock (EX_TEMPFAIL).
pub(crate) const LOCKED: u8 = 75;

/// Exit status after a second signal stopped a run at once (128 + SIGINT, as shells report).
pub(crate) const INTERRUPTED: u8 = 130;

pub async fn run(global: &GlobalArgs, args: IngestArgs) -> anyhow::Result<ExitCode> {
    let stop = StopFlag::default();
    let mut client = client(&args.inflow)?.with_stop(stop.clone());
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
                        store.close().await;
                    }
                    return Err(err);
                }
            }
        };
        // A scheduled loop outlives failed runs: the next one resumes from the saved position.
        // When the database failed, it is tried again sooner, with a backoff.
        let next = match outcome {
            Ok(Some(code)) => break code,
            Ok(None) => {
                database_failures = 0;
                started + every
            }
            Err(Failure::Other(err)) => {
                database_failures = 0;
                crate::output::note(&format!(
                    "error: {}; the next run continues from the saved position",
                    crate::error_text(&*err)
                ));
                started + every
            }
            Err(Failure::Database(err)) => {
                let wait = database_backoff(database_failures, every);
                database_failures += 1;
                crate::output::note(&format!(
                    "error: {}; trying again in {} (the next run continues from the saved position)",
                    crate::error_text(&*err),
                    humantime::format_duration(wait)
                ));
                Instant::now() + wait
            }
        };
        if stop.is_set() {
            break ExitCode::SUCCESS;
        }
        let next = tokio::time::Instant::from_std(next);
        if database_failures == 0 {
            crate::output::note(&format!(
                "next run in {}",
                humantime::format_duration(Duration::from_secs(
                    next.saturating_duration_since(tokio::time::Instant::now()).as_secs()
                ))
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
    let database = |e: StoreError| Failure::Database(e.into());
    let lock = match (args.wait, store.try_lock(company, "ingest").await.map_err(database)?) {
        (_, Ok(lock)) => lock,
        (true, Err(_)) => match store.lock_waiting(company, "ingest", stop).await.map_err(database)? {
            Some(lock) => lock,
            None => return Ok(Some(ExitCode::SUCCESS)),
        },
        (false, Err(holder)) if args.every.is_some() => {
            crate::output::note(&format!(
                "skipping this run: another ingest of company {company} is running, {holder}"
            ));
            return Ok(None);
        }
        (false, Err(holder)) => {
            crate::output::note(&format!(
                "another ingest of company {company} is running in this database: {holder}. Use --wait to wait for it."
            ));
            return Ok(Some(ExitCode::from(LOCKED)));
        }
    };
    let flag = stop.clone();
    lock.on_lost(move || flag.lock_lost());
    let mut result = crate::ingest::run(store, client, options, progress, stop).await;
    progress.clear();
    // Printed before the lock is released, but a closed stdout must not keep it held.
    let mut printed = Ok(());
    if let Ok(summary) = &result
        && args.snapshot
        && summary.stop.is_none()
    {
        printed = print_summary(summary, started.elapsed());
        let snap_started = Instant::now();
        match crate::snapshot::run(store, client, company, stop).await {
            Ok(snap) => printed = printed.and(super::snapshot::print_summary(&snap, snap_started.elapsed())),
            Err(e) => result = Err(e),
        }
    } else if let Ok(summary) = &result {
        printed = print_summary(summary, started.elapsed());
    }
    if let Err(err @ IngestError::Interrupted { .. }) = &result {
        // The run's connection may be stuck in the abandoned statement.
        lock.release_fresh().await;
        crate::output::note(&format!("stopped: {}", crate::error_text(err)));
        return Ok(Some(ExitCode::from(INTERRUPTED)));
    }
    lock.release().await;
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
        Err(IngestError::Store(e)) => Err(Failure::Database(e.into())),
        Err(e) => Err(Failure::Other(e.into())),
    }
}

/// Checks the inFlow settings and builds the client; nothing is sent yet.
/// The key from `INFLOW_API_KEY_FILE`: refused when others may read the file, as ssh refuses
/// a private key, since a key that leaks there leaks for every run.
fn read_key_file(path: &std::path::Path) -> anyhow::Result<String> {
    let shown = path.display();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("cannot read the API key file {shown}"))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            bail!(
                "the API key file {shown} can be read by other users (mode {:o}): run `chmod 600 {shown}`",
                mode & 0o777
            );
        }
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the API key file {shown}"))?;
    let key = text.trim();
    if key.is_empty() || key.contains(char::is_whitespace) {
        bail!("the API key file {shown} must hold the key alone, on one line");
    }
    Ok(key.to_string())
}

pub(crate) fn client(args: &InflowArgs) -> anyhow::Result<Client> {
    let company_id = match args.company_id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => bail!(
            "no inFlow company id: set INFLOW_COMPANY_ID or pass --company-id (inFlow shows it under Options > Integrations)"
        ),
    };
    let api_key = match (args.api_key.as_deref().map(str::trim), &args.api_key_file) {
        (Some(key), _) if !key.is_empty() => ApiKey::new(key),
        (_, Some(path)) => ApiKey::new(&read_key_file(path)?),
        _ => bail!(
            "no inFlow API key: set INFLOW_API_KEY, or INFLOW_API_KEY_FILE to a file readable only by you \
             (inFlow shows the key under Options > Integrations)"
        ),
    };
    if !(args.time_scale > 0.0 && args.time_scale <= 1.0) {
        bail!("--time-scale must be in (0, 1]");
    }
    let shown = crate::store::url::redact(&args.base_url);
    let url = url::Url::parse(&args.base_url).with_context(|| format!("--base-url {shown:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("--base-url must be an http(s) URL, not {shown:?}");
    }
    // They would be logged, stored with the run's arguments, and sent in place of the key.
    if !url.username().is_empty() || url.password().is_some() {
        bail!(
            "--base-url {shown:?} holds credentials (user:password@); inFlow takes the API key only, from \
             INFLOW_API_KEY: remove them from the URL"
        );
    }
    if reqwest::header::HeaderValue::from_str(&format!("application/json;version={}", args.api_version)).is_err() {
        bail!("--api-version {:?} cannot be sent in a header; inFlow versions look like 2025-06-24", args.api_version);
    }
    let mut config = ClientConfig::new(&args.base_url, &company_id, api_key);
    config.api_version = args.api_version.clone();
    config.max_requests = args.max_requests;
    config.request_timeout = args.request_timeout;
    let scale = |d: Duration| d.mul_f64(args.time_scale);
    config.limits = RateLimits {
        per_minute: args.max_per_minute,
        per_hour: args.max_per_hour,
        minute: scale(RateLimits::INFLOW.minute),
    };
    config.retry.base_delay = scale(config.retry.base_delay);
    config.retry.max_delay = scale(config.retry.max_delay);
    config.retry.default_retry_after = scale(config.retry.default_retry_after);
    Ok(Client::new(config)?)
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

pub(crate) fn print_summary(s: &RunSummary, elapsed: Duration) -> std::io::Result<()> {
    let mut out = crate::output::stdout();
    let c = &s.counters;
    let how = match s.stop {
        None => "succeeded".to_string(),
        Some(StopReason::Budget) => "stopped at --max-requests; the next run continues from the saved position".into(),
        Some(StopReason::Signal) => "stopped by a signal; the next run continues from the saved position".into(),
        Some(StopReason::LockLost) => "stopped: the ingest lock was taken over".into(),
    };
    writeln!(
        out,
        "Run {} {how} in {:.1}s: {} requests ({} answered 429, {} retried), {} events added, {} retracted, {} warnings.",
        s.run_id,
        elapsed.as_secs_f64(),
        c.requests,
        c.rate_limited,
        c.retries,
        c.events_inserted,
        c.events_retracted,
        c.warnings
    )?;
    let mut table = crate::output::table(&[
        "stream",
        "pages",
        "documents",
        "changed",
        "deleted",
        "events added",
        "retracted",
        "warnings",
        "walk",
    ]);
    for st in &s.streams {
        let mut walk = match (&st.resumed_from, st.complete, &st.unproven) {
            (_, true, Some(_)) => format!("{} walk ended, not proven complete (see the warning)", st.kind),
            (Some(from), true, None) => format!("{} walk done (resumed at the {from})", st.kind),
            (None, true, None) => format!("{} walk done", st.kind),
            (_, false, _) => format!("{} walk unfinished, position saved", st.kind),
        };
        if st.complete && st.paging != crate::inflow::walk::Paging::PREFERRED.as_str() {
            walk.push_str(&format!(", {} paging", st.paging));
        }
        crate::output::add_row(
            &mut table,
            vec![
                st.stream.to_string(),
                st.pages.to_string(),
                st.documents_seen.to_string(),
                st.documents_changed.to_string(),
                st.deleted.to_string(),
                st.events_inserted.to_string(),
                st.events_retracted.to_string(),
                st.warnings.to_string(),
                walk,
            ],
        );
    }
    writeln!(out, "{table}")?;
    if c.warnings > 0 {
        writeln!(out, "Warnings are listed in run_warnings: SELECT * FROM run_warnings WHERE run_id = {};", s.run_id)?;
    }
    out.flush()
}

/// Progress bars on a terminal; otherwise a line per stream on stderr.
pub(crate) struct Display {
    bars: Option<(MultiProgress, Mutex<HashMap<&'static str, ProgressBar>>)>,
    lines: bool,
}

impl Display {
    pub(crate) fn new(global: &GlobalArgs) -> Display {
        let terminal = std::io::stderr().is_terminal() && !global.quiet;
        let bars = terminal
            .then(|| (MultiProgress::with_draw_target(ProgressDrawTarget::stderr()), Mutex::new(HashMap::new())));
        Display { bars, lines: !terminal && !global.quiet }
    }

    pub(crate) fn clear(&self) {
        if let Some((multi, _)) = &self.bars {
            let _ = multi.clear();
        }
    }
}

impl Progress for Display {
    fn stream_started(&self, stream: &'static str, resumed_from: Option<&str>) {
        if let Some((multi, bars)) = &self.bars {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(ProgressStyle::with_template("{spinner} {prefix:<18} {msg}").expect("valid template"));
            bar.set_prefix(stream);
            bar.set_message(resumed_from.map_or("starting".to_string(), |p| format!("resuming at the {p}")));
            bar.enable_steady_tick(Duration::from_millis(120));
            bars.lock().expect("progress lock").insert(stream, bar);
        }
    }

    fn page_written(&self, stream: &'static str, s: &StreamSummary, requests: u64, budget_left: Option<u64>) {
        if let Some((_, bars)) = &self.bars
            && let Some(bar) = bars.lock().expect("progress lock").get(stream)
        {
            let budget = budget_left.map_or(String::new(), |left| format!(", {left} left in the budget"));
            bar.set_message(format!(
                "{} documents, {} events added, {} retracted; {requests} requests{budget}",
                s.documents_seen, s.events_inserted, s.events_retracted
            ));
        }
    }

    fn stream_finished(&self, s: &StreamSummary) {
        if let Some((_, bars)) = &self.bars
            && let Some(bar) = bars.lock().expect("progress lock").get(s.stream)
        {
            bar.finish();
        }
        if self.lines {
            crate::output::note(&format!(
                "{}: {} pages, {} documents ({} new or changed, {} deleted), {} events added, {} retracted, {} walk {}",
                s.stream,
                s.pages,
                s.documents_seen,
                s.documents_changed,
                s.deleted,
                s.events_inserted,
                s.events_retracted,
                s.kind,
                if s.complete { "done" } else { "unfinished" }
            ));
        }
    }
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
        let err = read_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("can be read by other users (mode 644)") && err.contains("chmod 600"), "{err}");
        assert!(!err.contains("sk_secret_123"), "the key is never shown");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_key_file(&path).unwrap(), "sk_secret_123");

        std::fs::write(&path, "two words\n").unwrap();
        let err = read_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("must hold the key alone") && !err.contains("words"), "{err}");
        let err = read_key_file(&dir.path().join("absent")).unwrap_err();
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
