//! What several commands share: the inFlow client built from the command line, the progress
//! display and summary of a run, the company's lock around a run, and exit statuses.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{GlobalArgs, InflowArgs};
use crate::inflow::{ApiKey, Client, ClientConfig, RateLimits};
use crate::store::lock::LockHolder;
use crate::store::{Store, StoreError};
use crate::sync::{Progress, RunSummary, StopFlag, StopReason, StreamSummary};

/// Exit status when another run of the company holds the lock (EX_TEMPFAIL).
pub(crate) const LOCKED: u8 = 75;

/// Exit status after a second signal stopped a run at once (128 + SIGINT, as shells report).
pub(crate) const INTERRUPTED: u8 = 130;

/// What became of a run that needs the company's lock.
pub(crate) enum Locked<T> {
    /// The work ran, holding the lock.
    Ran(T),
    /// Another process holds the lock.
    Busy(LockHolder),
    /// The stop flag was set while waiting for the lock.
    Stopped,
}

/// Takes the company's lock for `command` (waiting for it with `wait`), makes `stop` end the
/// run if another process takes the lock over, runs `work` and releases the lock: on a
/// connection of its own when `abandoned` says the work was abandoned mid-statement (the run's
/// connection may be stuck in it).
pub(crate) async fn with_company_lock<T>(
    store: &Store,
    company: &str,
    command: &str,
    wait: bool,
    stop: &StopFlag,
    work: impl AsyncFnOnce() -> T,
    abandoned: impl Fn(&T) -> bool,
) -> Result<Locked<T>, StoreError> {
    let lock = match store.try_lock(company, command).await? {
        Ok(lock) => lock,
        Err(_) if wait => match store.lock_waiting(company, command, stop).await? {
            Some(lock) => lock,
            None => return Ok(Locked::Stopped),
        },
        Err(holder) => return Ok(Locked::Busy(holder)),
    };
    let flag = stop.clone();
    lock.on_lost(move || flag.lock_lost());
    let out = work().await;
    if abandoned(&out) {
        lock.release_fresh().await;
    } else {
        lock.release().await;
    }
    Ok(Locked::Ran(out))
}

/// Checks the inFlow settings and builds the client; nothing is sent yet.
/// The key from `INFLOW_API_KEY_FILE`: refused when others may read the file, as ssh refuses
/// a private key, since a key that leaks there leaks for every run.
pub(crate) fn read_key_file(path: &std::path::Path) -> anyhow::Result<String> {
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

/// Removes a SQLite database file and its journal files, quietly: for a file this process
/// created and left empty.
pub(crate) fn remove_sqlite_files(path: &std::path::Path) {
    let shown = path.display().to_string();
    for file in [shown.clone(), format!("{shown}-wal"), format!("{shown}-shm"), format!("{shown}-journal")] {
        let _ = std::fs::remove_file(file);
    }
}

/// Prints a run's summary: a line for the run (after its start time, for the runs of a
/// schedule) and a table of its streams.
pub(crate) fn print_summary(
    s: &RunSummary,
    elapsed: Duration,
    started_at: Option<chrono::DateTime<chrono::Utc>>,
) -> std::io::Result<()> {
    let mut out = crate::output::stdout();
    if let Some(at) = started_at {
        write!(out, "[{}] ", at.format("%Y-%m-%d %H:%M:%S UTC"))?;
    }
    let c = &s.counters;
    let how = match s.stop {
        None => "succeeded".to_string(),
        Some(StopReason::Budget) => "stopped at --max-requests; the next run continues from the saved position".into(),
        Some(StopReason::Signal) => "stopped by a signal; the next run continues from the saved position".into(),
        Some(StopReason::LockLost) => "stopped: the ingest lock was taken over".into(),
    };
    let line = format!(
        "Run {} {how} in {:.1}s: {} requests ({} answered 429, {} retried), {} events added, {} retracted, {} warnings.",
        s.run_id,
        elapsed.as_secs_f64(),
        c.requests,
        c.rate_limited,
        c.retries,
        c.work.events_inserted,
        c.work.events_retracted,
        c.work.warnings
    );
    writeln!(out, "{}", crate::output::wrap(&line))?;
    let header =
        ["stream", "pages", "documents", "changed", "deleted", "events added", "retracted", "warnings", "walk"];
    let mut rows = Vec::new();
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
        rows.push(vec![
            st.stream.to_string(),
            st.work.pages.to_string(),
            st.work.documents_seen.to_string(),
            st.work.documents_changed.to_string(),
            st.deleted.to_string(),
            st.work.events_inserted.to_string(),
            st.work.events_retracted.to_string(),
            st.work.warnings.to_string(),
            walk,
        ]);
    }
    // Split into tables that each fit the terminal, when its columns do not.
    crate::output::write_split_tables(&mut out, &header, &rows)?;
    if c.work.warnings > 0 {
        writeln!(out, "Warnings are listed in run_warnings: SELECT * FROM run_warnings WHERE run_id = {};", s.run_id)?;
    }
    out.flush()
}

/// Each stream's progress bar, shared by the clones of a [`Display`].
type StreamBars = std::sync::Arc<Mutex<HashMap<&'static str, ProgressBar>>>;

/// Progress bars on a terminal; otherwise, with -v, a line per stream on stderr (without -v the
/// run's summary on stdout says the same once). Clones share the bars
/// (the client's rate-limit waits are shown through one).
#[derive(Clone)]
pub(crate) struct Display {
    bars: Option<(MultiProgress, StreamBars)>,
    lines: bool,
    quiet: bool,
    /// The stream being walked, whose line shows a wait.
    current: std::sync::Arc<Mutex<Option<&'static str>>>,
    /// Somebody reads stderr as the run goes: a terminal, or -v.
    watched: bool,
}

impl Display {
    pub(crate) fn new(global: &GlobalArgs) -> Display {
        let terminal = std::io::stderr().is_terminal() && !global.quiet;
        let bars =
            terminal.then(|| (MultiProgress::with_draw_target(ProgressDrawTarget::stderr()), Default::default()));
        let watched = terminal || (global.verbose >= 1 && !global.quiet);
        Display {
            bars,
            lines: !terminal && !global.quiet && global.verbose > 0,
            quiet: global.quiet,
            current: Default::default(),
            watched,
        }
    }

    /// -q: no summary either, so that a scheduled job's mail comes only with an error.
    pub(crate) fn quiet(&self) -> bool {
        self.quiet
    }

    /// Whether somebody reads stderr as the run goes (a terminal, or -v): what a first run will
    /// cost is told then.
    pub(crate) fn watched(&self) -> bool {
        self.watched
    }

    /// The current stream's line says what it waits for; the next page replaces it.
    pub(crate) fn waiting(&self, wait: Duration) {
        if wait < Duration::from_secs(1) {
            return;
        }
        let current = *self.current.lock().expect("progress lock");
        if let Some((_, bars)) = &self.bars
            && let Some(stream) = current
            && let Some(bar) = bars.lock().expect("progress lock").get(stream)
        {
            bar.set_message(format!("waiting for the rate limit, {} s", wait.as_secs_f64().ceil()));
        }
    }

    pub(crate) fn clear(&self) {
        if let Some((multi, _)) = &self.bars {
            let _ = multi.clear();
        }
    }
}

impl Progress for Display {
    fn stream_started(&self, stream: &'static str, resumed_from: Option<&str>) {
        *self.current.lock().expect("progress lock") = Some(stream);
        if let Some((multi, bars)) = &self.bars {
            let bar = multi.add(ProgressBar::new_spinner());
            // `wide_msg`: cut to the terminal's width, so that a long line never wraps and redraws.
            bar.set_style(ProgressStyle::with_template("{spinner} {prefix:<18} {wide_msg}").expect("valid template"));
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
                s.work.documents_seen, s.work.events_inserted, s.work.events_retracted
            ));
        }
    }

    fn stream_finished(&self, s: &StreamSummary) {
        // Later waits (the end-of-run reference walks) must not rewrite a finished stream's line.
        let mut current = self.current.lock().expect("progress lock");
        if *current == Some(s.stream) {
            *current = None;
        }
        drop(current);
        if let Some((_, bars)) = &self.bars
            && let Some(bar) = bars.lock().expect("progress lock").get(s.stream)
        {
            bar.finish();
        }
        if self.lines {
            crate::output::note(&format!(
                "{}: {} pages, {} documents ({} new or changed, {} deleted), {} events added, {} retracted, {} walk {}",
                s.stream,
                s.work.pages,
                s.work.documents_seen,
                s.work.documents_changed,
                s.deleted,
                s.work.events_inserted,
                s.work.events_retracted,
                s.kind,
                if s.complete { "done" } else { "unfinished" }
            ));
        }
    }
}
