//! `audit status`: per company and stream, what is held, where walks stand, recent runs and
//! what runs cost.

use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;

use crate::cli::{GlobalArgs, StatusArgs};
use crate::inflow::walk::{PAGE_SIZE, Paging, Position};
use crate::mapping::DocType;
use crate::output::{self, Format, short_time};
use crate::store::capabilities::Capability;
use crate::store::lock::LockHolder;
use crate::store::status::{RunRow, StreamStatus};

#[derive(Debug, Serialize)]
/// What `audit status` tells of one company.
pub struct CompanyStatus {
    /// The inFlow company.
    pub company_id: String,
    /// The running ingest, if any.
    pub lock: Option<String>,
    /// Requests `audit` made for it in the last hour.
    pub requests_last_hour: i64,
    /// Requests a run would take now: every stream walked, or sales and purchase orders of the
    /// last 30 days only.
    pub cost: Cost,
    /// Each stream's holdings and walks.
    pub streams: Vec<StreamStatus>,
    /// The latest runs.
    pub runs: Vec<RunRow>,
    /// What `audit doctor` and the ingest learnt of the company's API (`api_capabilities`).
    pub api: Vec<Capability>,
}

#[derive(Debug, Serialize)]
/// What runs cost in requests, from the document counts held.
pub struct Cost {
    /// A complete run.
    pub complete: i64,
    /// A `--window 30d` run.
    pub window_30_days: i64,
}

/// Runs `audit status`: its exit status, or the error to report.
pub async fn run(global: &GlobalArgs, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let store = super::open_reading_store(global).await?;
    super::check_company(&store, args.company.company_id.as_deref()).await?;
    let companies = match &args.company.company_id {
        Some(c) => vec![c.clone()],
        None => store.companies().await?,
    };
    let mut report = Vec::new();
    for company_id in companies {
        report.push(company_status(&store, company_id).await?);
    }
    store.close().await;
    let mut out = crate::output::stdout();
    match Format::resolve(args.output.format()) {
        Format::Csv => anyhow::bail!("the status is nested and has no CSV form; use --format json"),
        Format::Json => output::write_json(out, &serde_json::json!({ "companies": report }))?,
        Format::Table => {
            if report.is_empty() {
                writeln!(out, "Nothing ingested yet: run `audit ingest`.")?;
            }
            for c in &report {
                print_company(&mut out, c)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `audit status` and the web view report of one company.
pub async fn company_status(store: &crate::store::Store, company_id: String) -> anyhow::Result<CompanyStatus> {
    let streams = store.streams_status(&company_id).await?;
    let lock = store.lock_holder(&company_id).await?.as_ref().map(LockHolder::to_string);
    let api = store.capabilities(&company_id).await?;
    Ok(CompanyStatus {
        cost: cost(&streams, &api),
        lock,
        requests_last_hour: store.requests_last_hour(&company_id).await?,
        runs: store.recent_runs(&company_id, 5).await?,
        api,
        streams,
        company_id,
    })
}

/// Documents a page of `stream` holds: 100, or the cap `audit doctor` found (`page_size:<stream>`
/// recorded as `capped:N`).
fn page_size(api: &[Capability], stream: &str) -> i64 {
    let key = format!("page_size:{stream}");
    api.iter()
        .find(|c| c.name == key)
        .and_then(|c| c.value.strip_prefix("capped:")?.trim().parse::<i64>().ok())
        .filter(|n| (1..PAGE_SIZE as i64).contains(n))
        .unwrap_or(PAGE_SIZE as i64)
}

/// A walk of n documents costs n/100 + 1 requests (n/N + 1 where pages are capped at N); every
/// run also reads the locations once. A window re-reads only the streams inFlow filters by date
/// (sales, purchase and manufacturing orders), dated in the last 30 days, and walks the others
/// in full.
fn cost(streams: &[StreamStatus], api: &[Capability]) -> Cost {
    let pages = |s: &StreamStatus, n: i64| n / page_size(api, &s.stream) + 1;
    let dated = |s: &StreamStatus| DocType::from_stream(&s.stream).is_some_and(|t| t.date_filter().is_some());
    Cost {
        complete: 1 + streams.iter().map(|s| pages(s, s.documents)).sum::<i64>(),
        window_30_days: 1 + streams
            .iter()
            .map(|s| pages(s, if dated(s) { s.documents_last_30_days } else { s.documents }))
            .sum::<i64>(),
    }
}

/// An unfinished walk as people count it: pages and documents read (an id in the keyset means
/// nothing to them), or where it resumes when that is all that is known.
fn unfinished_walk(s: &StreamStatus, page: i64) -> String {
    match (&s.walk_kind, s.walk_seen, &s.walk_position) {
        (Some(kind), Some(seen), _) => {
            let pages = (seen + page - 1) / page;
            format!("{kind}, {pages} page{} ({seen} documents) read", if pages == 1 { "" } else { "s" })
        }
        (Some(kind), None, Some(pos)) => format!("{kind}, at the {}", Position::decode(pos)),
        _ => "-".into(),
    }
}

fn print_company(out: &mut impl Write, c: &CompanyStatus) -> anyhow::Result<()> {
    writeln!(out, "Company {}", crate::output::printable(&c.company_id))?;
    match &c.lock {
        Some(holder) => writeln!(out, "  Running now: {}", crate::output::printable(&holder.clone()))?,
        None => writeln!(out, "  No ingest running.")?,
    }
    writeln!(
        out,
        "{}",
        output::wrap_indented(
            &format!(
                "Requests by audit in the last hour: {} (inFlow allows 1000 per hour, shared with other integrations).",
                c.requests_last_hour
            ),
            "  "
        )
    )?;
    writeln!(
        out,
        "{}",
        output::wrap_indented(
            &format!(
                "A complete run costs about {} requests; a --window 30d run about {}.",
                c.cost.complete, c.cost.window_30_days
            ),
            "  "
        )
    )?;
    let (complete, window) = (output::time_header("last complete walk"), output::time_header("last window walk"));
    let header =
        ["stream", "documents", "deleted", "events", "retracted", "since", "unfinished walk", &complete, &window];
    let rows: Vec<Vec<String>> = c
        .streams
        .iter()
        .map(|s| {
            let walk = unfinished_walk(s, page_size(&c.api, &s.stream));
            vec![
                s.stream.clone(),
                s.documents.to_string(),
                s.documents_deleted.to_string(),
                s.events.to_string(),
                s.events_retracted.to_string(),
                s.since.map_or("-".into(), |d| d.to_string()),
                walk,
                short_time(s.last_complete_at),
                short_time(s.last_window_at),
            ]
        })
        .collect();
    output::write_split_tables(out, &header, &rows)?;
    let window_only: Vec<&str> = c
        .streams
        .iter()
        .filter(|s| s.last_complete_at.is_none() && s.last_window_at.is_some() && s.walk_kind.is_none())
        .map(|s| s.stream.as_str())
        .collect();
    if !window_only.is_empty() {
        writeln!(
            out,
            "{}",
            output::wrap_indented(
                &format!(
                    "{} had only --window walks: the trail holds only their recent documents. Run `audit ingest` \
             without --window once (with --since for a bound) for the history.",
                    window_only.join(", ")
                ),
                "  "
            )
        )?;
    }
    // Streams walked otherwise than by the preferred keyset paging: worth knowing.
    for c in c.api.iter().filter(|c| c.name.starts_with("paging:") && c.value != Paging::PREFERRED.as_str()) {
        writeln!(
            out,
            "{}",
            output::wrap_indented(
                &format!(
                    "{} pages with {} since {} ({}: {}); {} is tried again a day later, or by `audit doctor`.",
                    c.name.trim_start_matches("paging:"),
                    c.value,
                    short_time(Some(c.checked_at)),
                    c.source,
                    c.detail.as_deref().unwrap_or("-"),
                    Paging::PREFERRED,
                ),
                "  "
            )
        )?;
    }
    print_runs(out, &c.runs)?;
    writeln!(out)?;
    Ok(())
}

/// The recent runs, and the errors of those that failed.
fn print_runs(out: &mut impl Write, runs: &[RunRow]) -> anyhow::Result<()> {
    let started = output::time_header("started");
    let header = [
        "run",
        "command",
        "status",
        &started,
        "requests",
        "documents",
        "changed",
        "events +",
        "events -",
        "warnings",
        "429s",
    ];
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.run_id.to_string(),
                r.command.clone(),
                r.status.clone(),
                short_time(Some(r.started_at)),
                r.requests.to_string(),
                r.work.documents_seen.to_string(),
                r.work.documents_changed.to_string(),
                r.work.events_inserted.to_string(),
                r.work.events_retracted.to_string(),
                r.work.warnings.to_string(),
                r.rate_limited.to_string(),
            ]
        })
        .collect();
    writeln!(out, "  Recent runs:")?;
    output::write_split_tables(out, &header, &rows)?;
    for r in runs.iter().filter(|r| r.error.is_some()) {
        writeln!(
            out,
            "{}",
            output::wrap_indented(
                &format!(
                    "run {} failed: {}",
                    r.run_id,
                    crate::output::printable(r.error.as_deref().unwrap_or_default())
                ),
                "  "
            )
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unfinished_walk_is_shown_as_pages_read_not_an_id() {
        let mut s = StreamStatus { walk_kind: Some("complete".into()), ..StreamStatus::default() };
        s.walk_position = Some("after:0b5d7a6e-0000-4000-8000-000000000001".into());
        s.walk_seen = Some(250);
        assert_eq!(unfinished_walk(&s, 100), "complete, 3 pages (250 documents) read");
        assert_eq!(unfinished_walk(&s, 30), "complete, 9 pages (250 documents) read", "pages capped at 30");
        s.walk_seen = Some(100);
        assert_eq!(unfinished_walk(&s, 100), "complete, 1 page (100 documents) read");
        s.walk_seen = None;
        assert!(unfinished_walk(&s, 100).starts_with("complete, at the "), "{}", unfinished_walk(&s, 100));
        assert_eq!(unfinished_walk(&StreamStatus::default(), 100), "-");
    }

    fn stream(name: &str, documents: i64, recent: i64) -> StreamStatus {
        StreamStatus { stream: name.into(), documents, documents_last_30_days: recent, ..StreamStatus::default() }
    }

    #[test]
    fn costs_count_a_page_per_hundred_documents_plus_the_last_one_and_the_locations() {
        let streams = [
            stream("sales-orders", 1000, 150),
            stream("purchase-orders", 250, 0),
            stream("manufacturing-orders", 320, 20),
            stream("stock-counts", 120, 3),
            stream("stock-adjustments", 99, 99),
            stream("stock-transfers", 0, 0),
        ];
        let c = cost(&streams, &[]);
        assert_eq!(c.complete, 1 + 11 + 3 + 4 + 2 + 1 + 1);
        // Manufacturing orders are filtered by date like sales and purchase orders; counts are not.
        assert_eq!(c.window_30_days, 1 + 2 + 1 + 1 + 2 + 1 + 1);
        // Where doctor found sales orders capped at 30 a page: 1000/30 + 1 and 150/30 + 1.
        let capped = |value: &str| Capability::new("page_size:sales-orders", value, None);
        let c = cost(&streams, &[capped("capped:30")]);
        assert_eq!((c.complete, c.window_30_days), (1 + 34 + 3 + 4 + 2 + 1 + 1, 1 + 6 + 1 + 1 + 2 + 1 + 1));
        // Nothing usable recorded: 100 a page.
        for value in ["100", "unknown", "capped:0", "capped:x", "capped:500"] {
            assert_eq!(cost(&streams, &[capped(value)]).complete, 1 + 11 + 3 + 4 + 2 + 1 + 1, "{value}");
        }
    }
}
