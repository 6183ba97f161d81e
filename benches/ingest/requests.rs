//! Figure 1: requests spent, against the fewest the same data allows.
//!
//! A walk over N documents needs ceil(N/100) pages, plus the empty page that proves the end
//! when N is a multiple of 100: N/100 + 1 in integer arithmetic. A run walks each stream and
//! the locations; a first run also walks the products, the customers and the vendors once.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use inflow_simulator::{Behaviour, DateSort, Scale, SimConfig, Simulator};
use serde_json::{Value, json};

use crate::env::{self, UNPACED};
use crate::procs;
use crate::report::{Figure, Goal};

pub const DOC_STREAMS: [&str; 6] =
    ["sales-orders", "purchase-orders", "manufacturing-orders", "stock-counts", "stock-adjustments", "stock-transfers"];

/// Requests a complete walk of `n` documents needs.
pub fn walk_cost(n: usize) -> usize {
    n / 100 + 1
}

/// What figure 1 learnt besides its rows, for figure 2's planning.
pub struct Learnt {
    /// Requests per second of an unpaced run over unchanged data.
    pub rerun_rate: Option<f64>,
}

pub async fn run(work: &std::path::Path, scale: &str) -> (Vec<Figure>, Learnt) {
    let goal = Goal::RatioEquals { ratio: 1.0 };
    let f_first = Figure::new("1a", "requests: first complete ingest", "requests", goal, "minimum");
    let f_again = Figure::new("1b", "requests: second run, nothing changed", "requests", goal, "minimum");
    let f_window = Figure::new("1c", "requests: --window run", "requests", goal, "minimum");
    let f_snapshot = Figure::new("1d", "requests: audit snapshot", "requests", goal, "minimum");
    let f_newest = Figure::new(
        "1e",
        "requests: --window run, date sort honoured",
        "requests",
        Goal::RatioAtMost { ratio: 1.2 },
        "minimum",
    );
    let mut learnt = Learnt { rerun_rate: None };

    let scale_value: Scale = match scale.parse() {
        Ok(s) => s,
        Err(e) => {
            let why = e.to_string();
            let all = [f_first, f_again, f_window, f_snapshot, f_newest];
            return (all.into_iter().map(|f| f.failed(&why)).collect(), learnt);
        }
    };
    let sim = match Simulator::start(SimConfig {
        scale: scale_value,
        rate_limit: None,
        data_faults: false,
        ..SimConfig::default()
    })
    .await
    {
        Ok(sim) => sim,
        Err(e) => {
            let why = format!("the simulator did not start: {e}");
            let all = [f_first, f_again, f_window, f_snapshot, f_newest];
            return (all.into_iter().map(|f| f.failed(&why)).collect(), learnt);
        }
    };
    let counts = sim.counts();
    let logs = work.to_path_buf();
    let db = env::sqlite_url(&work.join("requests.db"));
    let streams_cost: usize = DOC_STREAMS.iter().map(|s| walk_cost(counts[*s])).sum();
    let sim_details = json!({ "scale": scale, "documents": counts });

    // 1a: a first complete ingest.
    let first_min = streams_cost
        + walk_cost(counts["locations"])
        + walk_cost(counts["products"])
        + walk_cost(counts["customers"])
        + walk_cost(counts["vendors"]);
    let f_first = match measure(&sim, &db, &logs, "requests-first", &[]).await {
        Ok((n, by, _)) => f_first
            .measured(n as f64, Some(first_min as f64), None)
            .details(json!({ "by_endpoint": by, "simulator": sim_details })),
        Err(why) => f_first.failed(why),
    };

    // 1b: the same again, nothing changed: every walk again (deletions are found only so), no
    // products, customers or vendors.
    let again_min = streams_cost + walk_cost(counts["locations"]);
    let f_again = match measure(&sim, &db, &logs, "requests-again", &[]).await {
        Ok((n, by, wall)) => {
            learnt.rerun_rate = Some(n as f64 / wall.as_secs_f64());
            f_again.measured(n as f64, Some(again_min as f64), None).details(json!({
                "by_endpoint": by,
                "wall_s": wall.as_secs_f64(),
            }))
        }
        Err(why) => f_again.failed(why),
    };

    // 1e (before 1c, which records the sort as not honoured): the same window on a server that
    // honours the date sort, adjustments and transfers walked newest first.
    let f_newest = newest_first(&sim, &db, &logs, f_newest).await;

    // 1c: a window over the most recent documents: sales, purchase and manufacturing orders
    // filtered by inFlow on their date, the other streams walked in full on a server that
    // ignores the date sort (one page of adjustments and one of transfers show it).
    sim.set_behaviour(Behaviour { date_sort: DateSort::Ignore, ..Behaviour::DEFAULT });
    let f_window = match window_plan(&sim) {
        Some((from, arg, [so, po, mo])) => {
            let min = walk_cost(so)
                + walk_cost(po)
                + walk_cost(mo)
                + walk_cost(counts["stock-counts"])
                + 1
                + walk_cost(counts["stock-adjustments"])
                + 1
                + walk_cost(counts["stock-transfers"])
                + walk_cost(counts["locations"]);
            match measure(&sim, &db, &logs, "requests-window", &["--window", &arg]).await {
                Ok((n, by, _)) => f_window
                    .measured(n as f64, Some(min as f64), None)
                    .note(format!("orders dated from {from}: {so} sales, {po} purchase, {mo} manufacturing"))
                    .details(json!({ "by_endpoint": by, "window": arg, "from": from.to_string(),
                    "sales_orders_in_window": so, "purchase_orders_in_window": po,
                    "manufacturing_orders_in_window": mo })),
                Err(why) => f_window.failed(why),
            }
        }
        None => f_window.failed("the simulated company has no dated orders"),
    };

    // 1d: audit snapshot, once that subcommand exists.
    let f_snapshot = snapshot(&sim, &db, &logs, f_snapshot).await;
    sim.shutdown().await;
    (vec![f_first, f_again, f_window, f_snapshot, f_newest], learnt)
}

/// Figure 1e: the window of 1c with the date sort honoured. The minimum: the locations; the
/// orders' pages as in 1c; the stock counts in full (no date filter or sort for them); for the
/// adjustments and transfers the pages of the N dated in the window and one page starting
/// before it, ceil(N/100) + 1, unless the list ends first (then its full walk's cost).
async fn newest_first(sim: &Simulator, db: &str, logs: &std::path::Path, figure: Figure) -> Figure {
    let Some((from, arg, [so, po, mo])) = window_plan(sim) else {
        return figure.failed("the simulated company has no dated orders");
    };
    let counts = sim.counts();
    let floor = from.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let dated = |endpoint: &str, field: &str| {
        sim.documents(endpoint)
            .iter()
            .filter_map(|d| {
                d.get(field).and_then(Value::as_str).and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            })
            .filter(|t| *t >= floor)
            .count()
    };
    let adjustments = dated("stock-adjustments", "date");
    let transfers = dated("stock-transfers", "transferDate");
    // Pages overlap by one row (the row read last comes again, to prove nothing shifted): page
    // k >= 1 asks for skip = 99k, its first new row is row 99k + 1, and the walk ends at the
    // first page whose first new row is before the window: ceil((N - 1) / 99) + 1 pages (at
    // least 2), or sooner when the list ends (page k is short once 99k + 100 > all).
    let newest_cost = |n: usize, all: usize| {
        let proof = n.saturating_sub(1).div_ceil(99).max(1) + 1;
        let end = if all < 100 { 1 } else { (all - 100) / 99 + 2 };
        proof.min(end)
    };
    let min = walk_cost(counts["locations"])
        + walk_cost(so)
        + walk_cost(po)
        + walk_cost(mo)
        + walk_cost(counts["stock-counts"])
        + newest_cost(adjustments, counts["stock-adjustments"])
        + newest_cost(transfers, counts["stock-transfers"]);
    match measure(sim, db, logs, "requests-window-newest", &["--window", &arg]).await {
        Ok((n, by, _)) => figure
            .measured(n as f64, Some(min as f64), None)
            .note(format!("dated from {from}: {adjustments} adjustments, {transfers} transfers"))
            .details(json!({ "by_endpoint": by, "window": arg, "from": from.to_string(),
                "adjustments_in_window": adjustments, "transfers_in_window": transfers })),
        Err(why) => figure.failed(why),
    }
}

/// Runs one ingest and returns the requests the simulator received, by endpoint, and the wall time.
async fn measure(
    sim: &Simulator,
    db: &str,
    logs: &std::path::Path,
    label: &str,
    extra: &[&str],
) -> Result<(usize, BTreeMap<String, usize>, Duration), String> {
    sim.clear_requests();
    let mut cmd = env::audit_ingest(db, sim);
    cmd.args(UNPACED).args(extra);
    let logs = logs.to_path_buf();
    let label = label.to_string();
    let done = tokio::task::spawn_blocking(move || procs::run(&mut cmd, &logs, &label, None))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot run audit: {e}"))?;
    if !done.success() {
        return Err(format!("audit ingest failed: {}", done.describe()));
    }
    let requests: Vec<_> = sim.requests().into_iter().filter(|r| r.endpoint != "_sim").collect();
    let mut by = BTreeMap::new();
    for r in &requests {
        *by.entry(r.endpoint.clone()).or_insert(0) += 1;
    }
    Ok((requests.len(), by, done.wall))
}

/// The window of figure 1c: from 60 days before the newest order, so that it holds some orders
/// whatever today's date is. Returns (first day, `--window` argument, the sales, purchase and
/// manufacturing orders the simulator's date filter lets through).
fn window_plan(sim: &Simulator) -> Option<(NaiveDate, String, [usize; 3])> {
    let dates = |endpoint: &str| -> Vec<NaiveDate> {
        sim.documents(endpoint)
            .iter()
            .filter_map(|d| d.get("orderDate").and_then(Value::as_str).map(str::to_string))
            // The simulator compares a day bound with the document's local date.
            .filter_map(|s| chrono::DateTime::parse_from_rfc3339(&s).ok().map(|t| t.date_naive()))
            .collect()
    };
    let so = dates("sales-orders");
    let po = dates("purchase-orders");
    let mo = dates("manufacturing-orders");
    let newest = so.iter().chain(&po).max().copied()?;
    let today = Utc::now().date_naive();
    let from = (newest - chrono::Days::new(60)).min(today - chrono::Days::new(1));
    // audit computes the first day as (now - window).date; aim at 06:00 UTC of that day so a
    // few seconds between here and there cannot move it.
    let first_instant = from.and_hms_opt(6, 0, 0)?.and_utc();
    let secs = (Utc::now() - first_instant).num_seconds();
    let count = |v: &[NaiveDate]| v.iter().filter(|d| **d >= from).count();
    Some((from, format!("{secs}s"), [count(&so), count(&po), count(&mo)]))
}

async fn snapshot(sim: &Simulator, db: &str, logs: &std::path::Path, figure: Figure) -> Figure {
    // Detect the subcommand at run time: it is being built on another branch.
    let help = std::process::Command::new(env::audit_binary()).args(["snapshot", "--help"]).output();
    match help {
        Ok(out) if out.status.success() => {}
        _ => return figure.not_available("audit snapshot not available"),
    }
    let serialized =
        sim.products().iter().filter(|p| p.get("trackSerials").and_then(Value::as_bool) == Some(true)).count();
    let min = walk_cost(serialized);
    sim.clear_requests();
    let mut cmd = env::audit(db);
    cmd.arg("snapshot")
        .env("INFLOW_BASE_URL", sim.base_url())
        .env("INFLOW_COMPANY_ID", sim.company_id())
        .env("INFLOW_API_KEY", sim.api_key());
    let logs = logs.to_path_buf();
    let done = match tokio::task::spawn_blocking(move || procs::run(&mut cmd, &logs, "requests-snapshot", None)).await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => return figure.failed(format!("cannot run audit snapshot: {e}")),
        Err(e) => return figure.failed(e.to_string()),
    };
    if !done.success() {
        return figure.failed(format!("audit snapshot failed: {}", done.describe()));
    }
    let requests: Vec<_> = sim.requests().into_iter().filter(|r| r.endpoint != "_sim").collect();
    let mut by = BTreeMap::new();
    for r in &requests {
        *by.entry(r.endpoint.clone()).or_insert(0) += 1;
    }
    figure
        .measured(requests.len() as f64, Some(min as f64), None)
        .note(format!("{serialized} serialized products"))
        .details(json!({ "by_endpoint": by, "serialized_products": serialized }))
}
