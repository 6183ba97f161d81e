//! `audit ingest`: configuration, progress display and the run summary around the engine in
//! [`crate::ingest`].

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{GlobalArgs, InflowArgs, IngestArgs};
use crate::inflow::{ApiKey, Client, ClientConfig, RateLimits};
use crate::ingest::{IngestOptions, Progress, RunSummary, StopFlag, StopReason, StreamSummary};
use crate::mapping::DocType;

pub async fn run(global: &GlobalArgs, args: IngestArgs) -> anyhow::Result<ExitCode> {
    let client = client(&args.inflow)?;
    let store = super::open_store(global).await?;
    let types = if args.types.is_empty() {
        DocType::ALL.to_vec()
    } else {
        args.types.clone()
    };
    let options = IngestOptions {
        company_id: client.config().company_id.clone(),
        since: args.since,
        types,
        arguments: arguments(&args),
    };
    let stop = StopFlag::default();
    super::stop_on_signals(stop.clone());
    let progress = Display::new(global);
    let started = Instant::now();
    let result = crate::ingest::run(&store, &client, &options, &progress, &stop).await;
    progress.clear();
    store.close().await;
    let summary = result?;
    print_summary(&summary, started.elapsed());
    Ok(ExitCode::SUCCESS)
}

/// Checks the inFlow settings and builds the client; nothing is sent yet.
pub(crate) fn client(args: &InflowArgs) -> anyhow::Result<Client> {
    let company_id = match args.company_id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => bail!(
            "no inFlow company id: set INFLOW_COMPANY_ID or pass --company-id (inFlow shows it under Options > Integrations)"
        ),
    };
    let api_key = match args.api_key.as_deref().map(str::trim) {
        Some(key) if !key.is_empty() => ApiKey::new(key),
        _ => bail!(
            "no inFlow API key: set INFLOW_API_KEY (inFlow shows it under Options > Integrations)"
        ),
    };
    if !(args.time_scale > 0.0 && args.time_scale <= 1.0) {
        bail!("--time-scale must be in (0, 1]");
    }
    let url = url::Url::parse(&args.base_url)
        .with_context(|| format!("--base-url {:?} is not a URL", args.base_url))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("--base-url must be an http(s) URL, not {:?}", args.base_url);
    }
    let mut config = ClientConfig::new(&args.base_url, &company_id, api_key);
    config.api_version = args.api_version.clone();
    config.max_requests = args.max_requests;
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
        "types": args.types.iter().map(|t| t.stream()).collect::<Vec<_>>(),
        "base_url": args.inflow.base_url,
        "max_per_minute": args.inflow.max_per_minute,
        "max_per_hour": args.inflow.max_per_hour,
        "max_requests": args.inflow.max_requests,
    })
}

pub(crate) fn print_summary(s: &RunSummary, elapsed: Duration) {
    let c = &s.counters;
    let how = match s.stop {
        None => "succeeded".to_string(),
        Some(StopReason::Budget) => {
            "stopped at --max-requests; the next run continues from the saved position".into()
        }
        Some(StopReason::Signal) => {
            "stopped by a signal; the next run continues from the saved position".into()
        }
    };
    println!(
        "Run {} {how} in {:.1}s: {} requests ({} answered 429, {} retried), {} events added, {} retracted, {} warnings.",
        s.run_id,
        elapsed.as_secs_f64(),
        c.requests,
        c.rate_limited,
        c.retries,
        c.events_inserted,
        c.events_retracted,
        c.warnings
    );
    let mut table = crate::output::table(&[
        "stream",
        "pages",
        "documents",
        "changed",
        "events added",
        "retracted",
        "warnings",
        "walk",
    ]);
    for st in &s.streams {
        let walk = match (&st.resumed_from, st.complete) {
            (Some(from), true) => format!("complete (resumed at the {from})"),
            (None, true) => "complete".to_string(),
            (_, false) => "unfinished, position saved".to_string(),
        };
        table.add_row(vec![
            st.stream.to_string(),
            st.pages.to_string(),
            st.documents_seen.to_string(),
            st.documents_changed.to_string(),
            st.events_inserted.to_string(),
            st.events_retracted.to_string(),
            st.warnings.to_string(),
            walk,
        ]);
    }
    println!("{table}");
    if c.warnings > 0 {
        println!(
            "Warnings are listed in run_warnings: SELECT * FROM run_warnings WHERE run_id = {};",
            s.run_id
        );
    }
}

/// Progress bars on a terminal; otherwise a line per stream on stderr.
pub(crate) struct Display {
    bars: Option<(MultiProgress, Mutex<HashMap<&'static str, ProgressBar>>)>,
    lines: bool,
}

impl Display {
    pub(crate) fn new(global: &GlobalArgs) -> Display {
        let terminal = std::io::stderr().is_terminal() && !global.quiet;
        let bars = terminal.then(|| {
            (
                MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                Mutex::new(HashMap::new()),
            )
        });
        Display {
            bars,
            lines: !terminal && !global.quiet,
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
        if let Some((multi, bars)) = &self.bars {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<18} {msg}")
                    .expect("valid template"),
            );
            bar.set_prefix(stream);
            bar.set_message(
                resumed_from.map_or("starting".to_string(), |p| format!("resuming at the {p}")),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bars.lock().expect("progress lock").insert(stream, bar);
        }
    }

    fn page_written(
        &self,
        stream: &'static str,
        s: &StreamSummary,
        requests: u64,
        budget_left: Option<u64>,
    ) {
        if let Some((_, bars)) = &self.bars
            && let Some(bar) = bars.lock().expect("progress lock").get(stream)
        {
            let budget =
                budget_left.map_or(String::new(), |left| format!(", {left} left in the budget"));
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
            eprintln!(
                "{}: {} pages, {} documents ({} new or changed), {} events added, {} retracted, {}",
                s.stream,
                s.pages,
                s.documents_seen,
                s.documents_changed,
                s.events_inserted,
                s.events_retracted,
                if s.complete {
                    "walk complete"
                } else {
                    "walk unfinished"
                }
            );
        }
    }
}
