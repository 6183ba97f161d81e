//! Newest-first `--window` walks of the streams inFlow cannot filter by date (stock adjustments
//! and transfers), on SQLite and Postgres: with the date sort honoured a window run costs the
//! pages of the window's documents and one proof page; ignored or honoured badly, the shortcut
//! is abandoned for a full walk with a warning; the events are the same either way.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::*;
use inflow_simulator::{Behaviour, DateSort, Scale, Simulator};

/// On the simulator's 2,500-order company, a window holding more than a page of adjustments and
/// of transfers, and old documents beyond the page that holds its last ones.
const WINDOW_DAYS: i64 = 500;
const SCALE: Scale = Scale::Orders(2500);

/// The streams walked newest first, with their date.
const NEWEST: [(&str, &str); 2] = [("stock-adjustments", "date"), ("stock-transfers", "transferDate")];

/// The window's start as the walk compares it: midnight UTC of the day the window starts.
fn window_start() -> DateTime<Utc> {
    (Utc::now() - Duration::days(WINDOW_DAYS)).date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc()
}

/// (documents dated in the window, all documents) of a stream.
fn in_window(sim: &Simulator, endpoint: &str, field: &str) -> (usize, usize) {
    let docs = sim.documents(endpoint);
    let from = window_start();
    let n = docs
        .iter()
        .filter(|d| d[field].as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).is_some_and(|d| d >= from))
        .count();
    (n, docs.len())
}

/// The fewest requests that show a newest-first stream's window. Pages overlap by one row (the
/// row read last comes again, to prove nothing shifted): the first page holds rows 0..99, page
/// k >= 1 asks for skip = 99k and its first new row is row 99k + 1. The walk ends at the first
/// page whose first new row is before the window, row N or later for N documents in it: the
/// smallest k >= 1 with 99k + 1 >= N, so ceil((N - 1) / 99) + 1 pages (2 for N <= 100). It ends
/// sooner when the list does: page k is short once 99k + 100 > all.
fn newest_minimum(n: usize, all: usize) -> usize {
    let proof = n.saturating_sub(1).div_ceil(99).max(1) + 1;
    let end = if all < 100 { 1 } else { (all - 100) / 99 + 2 };
    proof.min(end)
}

fn requests_of(sim: &Simulator, endpoint: &str) -> Vec<inflow_simulator::RequestRecord> {
    sim.requests().into_iter().filter(|r| r.endpoint == endpoint).collect()
}

fn sorted_newest_first(r: &inflow_simulator::RequestRecord, field: &str) -> bool {
    let has = |k: &str, v: &str| r.query.iter().any(|(qk, qv)| qk == k && qv == v);
    has("sort", field) && has("sortDesc", "true")
}

/// A backfilled company whose simulator then changes: an old adjustment and an old transfer
/// are re-dated into the window (a window run must see them).
async fn backfilled(db: &TestDb, scale: Scale) -> (Simulator, audit::store::Store) {
    let sim = simulator(scale).await;
    let store = db.store().await;
    let summary = ingest(&store, &sim).await;
    assert!(summary.streams.iter().all(|s| s.complete), "{:?}", summary.streams);
    let recent = (Utc::now() - Duration::days(2)).fixed_offset();
    for (endpoint, field) in NEWEST {
        let from = window_start();
        let docs = sim.documents(endpoint);
        let old = docs
            .iter()
            .find(|d| d[field].as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).is_some_and(|d| d < from))
            .unwrap_or_else(|| panic!("{endpoint}: no document before the window"));
        let id_field = if endpoint == "stock-adjustments" { "stockAdjustmentId" } else { "stockTransferId" };
        sim.set_document_date(endpoint, old[id_field].as_str().unwrap(), recent).unwrap();
    }
    sim.clear_requests();
    (sim, store)
}

fn window_run(db: &TestDb, sim: &Simulator) -> String {
    let days = format!("{WINDOW_DAYS}d");
    // Compressed waits: the retries of a failing server's 5xx need not take real minutes.
    let (code, stdout, stderr) = run_cli(db, sim, &["ingest", "--window", &days, "--time-scale", "0.001"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    stderr
}

async fn capability(store: &audit::store::Store, sim: &Simulator, stream: &str) -> Option<String> {
    let key = audit::store::capabilities::date_sort_key(stream);
    store.capability(&sim.company_id(), &key).await.unwrap().map(|c| c.value)
}

both_backends! {
/// Honoured: the window run asks the two streams newest first and costs exactly the minimum
/// (with the locations and the filtered order streams as before), and ends with the events a
/// full walk gives.
async fn an_honoured_date_sort_makes_window_runs_cost_the_window(db: TestDb) {
    let (sim, store) = backfilled(&db, SCALE).await;
    let stderr = window_run(&db, &sim);
    assert!(!stderr.contains("does not honour"), "{stderr}");
    let mut expected_total = 0;
    for (endpoint, field) in NEWEST {
        let (n, all) = in_window(&sim, endpoint, field);
        assert!(
            n > 100 && newest_minimum(n, all) < walk_cost(all),
            "{endpoint}: {n} of {all} in the window; the test needs several pages, and a proof page before the end"
        );
        let asked = requests_of(&sim, endpoint);
        assert!(asked.iter().all(|r| sorted_newest_first(r, field)), "{asked:?}");
        assert_eq!(asked.len(), newest_minimum(n, all), "{endpoint}: {n} of {all} documents in the window");
        assert!(asked.len() < walk_cost(all), "cheaper than the full walk");
        expected_total += asked.len();
        assert_eq!(capability(&store, &sim, endpoint).await.as_deref(), Some("honoured"));
    }
    // The rest as before: the locations, the filtered orders, the stock counts in full.
    for endpoint in ["locations", "sales-orders", "purchase-orders", "manufacturing-orders", "stock-counts"] {
        expected_total += requests_of(&sim, endpoint).len();
    }
    assert_eq!(requests_of(&sim, "locations").len(), 1);
    assert_eq!(sim.requests().len(), expected_total, "nothing else: {:?}", sim.requests_by_endpoint());
    assert_exactly_once(&store, &sim).await;
    let windows = "SELECT count(*) FROM sync_state WHERE last_window_at IS NOT NULL \
                   AND stream IN ('stock-adjustments', 'stock-transfers')";
    assert_eq!(count(&store, windows).await, 2, "recorded as window walks");
    assert_eq!(count(&store, "SELECT count(*) FROM run_warnings").await, 0);
    sim.shutdown().await;
}
}

both_backends! {
/// Ignored: the first page is out of order, so the run warns, records the sort as not honoured
/// and walks both streams in full (one probe page more); the next window run does not probe
/// again, until a day has passed.
async fn an_ignored_date_sort_falls_back_to_full_walks_with_a_warning(db: TestDb) {
    let (sim, store) = backfilled(&db, SCALE).await;
    sim.set_behaviour(Behaviour { date_sort: DateSort::Ignore, ..Behaviour::DEFAULT });
    let stderr = window_run(&db, &sim);
    for (endpoint, _) in NEWEST {
        assert!(stderr.contains(&format!("{endpoint}: the page at skip=0 is not sorted newest first")), "{stderr}");
        let all = sim.counts()[endpoint];
        assert_eq!(requests_of(&sim, endpoint).len(), 1 + walk_cost(all), "{endpoint}: the probe page, then in full");
        assert_eq!(capability(&store, &sim, endpoint).await.as_deref(), Some("ignored"));
    }
    assert_eq!(count(&store, "SELECT count(*) FROM run_warnings WHERE kind = 'date_sort_not_honoured'").await, 2);
    assert_exactly_once(&store, &sim).await;

    // The next window run walks them in full without asking the sort again.
    sim.clear_requests();
    window_run(&db, &sim);
    for (endpoint, field) in NEWEST {
        let asked = requests_of(&sim, endpoint);
        assert!(asked.iter().all(|r| !sorted_newest_first(r, field)), "{asked:?}");
        assert_eq!(asked.len(), walk_cost(sim.counts()[endpoint]));
    }
    assert_eq!(count(&store, "SELECT count(*) FROM run_warnings WHERE kind = 'date_sort_not_honoured'").await, 2);

    // A day later (the server now honouring it) it is tried again, and recorded as honoured.
    for (endpoint, _) in NEWEST {
        let key = audit::store::capabilities::date_sort_key(endpoint);
        let mut old = store.capability(&sim.company_id(), &key).await.unwrap().unwrap();
        old.checked_at -= Duration::hours(25);
        store.record_capabilities(&sim.company_id(), "ingest", "2025-06-24", &[old]).await.unwrap();
    }
    sim.set_behaviour(Behaviour::DEFAULT);
    sim.clear_requests();
    window_run(&db, &sim);
    for (endpoint, field) in NEWEST {
        let (n, all) = in_window(&sim, endpoint, field);
        assert_eq!(requests_of(&sim, endpoint).len(), newest_minimum(n, all));
        assert_eq!(capability(&store, &sim, endpoint).await.as_deref(), Some("honoured"));
    }
    sim.shutdown().await;
}
}

both_backends! {
/// Honoured badly (each page sorted, the pages cut in id order): the first page looks right,
/// the second starts newer than the first ended, so the shortcut is abandoned for a full walk.
async fn a_date_sort_honoured_badly_is_caught_across_pages(db: TestDb) {
    let (sim, store) = backfilled(&db, SCALE).await;
    sim.set_behaviour(Behaviour { date_sort: DateSort::Badly, ..Behaviour::DEFAULT });
    let stderr = window_run(&db, &sim);
    for (endpoint, field) in NEWEST {
        assert!(stderr.contains(&format!("{endpoint}: the page at skip=99 is not sorted newest first")), "{stderr}");
        let asked = requests_of(&sim, endpoint);
        let probe = asked.iter().filter(|r| sorted_newest_first(r, field)).count();
        assert_eq!(probe, 2, "two pages in order within, not across");
        assert_eq!(asked.len(), probe + walk_cost(sim.counts()[endpoint]));
        assert_eq!(capability(&store, &sim, endpoint).await.as_deref(), Some("ignored"));
    }
    assert_exactly_once(&store, &sim).await;
    sim.shutdown().await;
}
}

both_backends! {
/// A window run stopped inside a newest-first walk keeps no position: the next one starts the
/// walk again at the newest page, and ends with the same events as a full walk.
async fn a_stopped_newest_first_walk_starts_again_next_time(db: TestDb) {
    let (sim, store) = backfilled(&db, SCALE).await;
    let days = format!("{WINDOW_DAYS}d");
    // The locations, the three filtered order streams' pages, the stock counts and one page of
    // adjustments: stopped inside the adjustments' walk.
    let before: usize = ["sales-orders", "purchase-orders", "manufacturing-orders", "stock-counts"]
        .iter()
        .map(|e| {
            let docs = sim.documents(e);
            let field = if *e == "stock-counts" { None } else { Some("orderDate") };
            let n = match field {
                None => docs.len(),
                Some(f) => {
                    let from = (Utc::now() - Duration::days(WINDOW_DAYS)).date_naive().to_string();
                    docs.iter().filter(|d| d[f].as_str().is_some_and(|s| s[..10] >= *from)).count()
                }
            };
            walk_cost(n)
        })
        .sum();
    let budget = (1 + before + 1).to_string();
    let (code, stdout, stderr) = run_cli(&db, &sim, &["ingest", "--window", &days, "--max-requests", &budget], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let asked = requests_of(&sim, "stock-adjustments");
    assert_eq!(asked.len(), 1, "stopped after one page of the adjustments: {:?}", sim.requests_by_endpoint());
    let saved = strings(&store, "SELECT walk_kind || ':' || walk_position FROM sync_state WHERE stream = $1", "stock-adjustments").await;
    assert_eq!(saved, ["window:"], "no position kept");

    sim.clear_requests();
    window_run(&db, &sim);
    let asked = requests_of(&sim, "stock-adjustments");
    let skips: Vec<&str> =
        asked.iter().filter_map(|r| r.query.iter().find(|(k, _)| k == "skip").map(|(_, v)| v.as_str())).collect();
    assert_eq!(skips.first(), Some(&"0"), "started again at the newest page");
    let (n, all) = in_window(&sim, "stock-adjustments", "date");
    assert_eq!(asked.len(), newest_minimum(n, all));
    assert_exactly_once(&store, &sim).await;
    sim.shutdown().await;
}
}

both_backends! {
/// What `audit doctor` finds is what window runs follow: an ignored date sort recorded by it
/// means a full walk at once, without a probe page or a warning.
async fn a_date_sort_doctor_found_ignored_is_not_tried(db: TestDb) {
    let (sim, store) = backfilled(&db, SCALE).await;
    sim.set_behaviour(Behaviour { date_sort: DateSort::Ignore, ..Behaviour::DEFAULT });
    let (code, stdout, stderr) = run_cli(&db, &sim, &["doctor", "--format", "json", "--time-scale", "0.001"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let row = report["checks"].as_array().unwrap().iter().find(|c| c["check"] == "sort_date:stock-adjustments").cloned();
    assert_eq!(row.as_ref().map(|r| r["ingest"].as_str().unwrap()), Some("--window walks it in full (tried again after 24 h)"));
    for (endpoint, _) in NEWEST {
        assert_eq!(capability(&store, &sim, endpoint).await.as_deref(), Some("ignored"));
    }
    sim.clear_requests();
    let stderr = window_run(&db, &sim);
    assert!(!stderr.contains("does not honour"), "{stderr}");
    for (endpoint, field) in NEWEST {
        let asked = requests_of(&sim, endpoint);
        assert!(asked.iter().all(|r| !sorted_newest_first(r, field)), "{asked:?}");
        assert_eq!(asked.len(), walk_cost(sim.counts()[endpoint]));
    }
    assert_eq!(count(&store, "SELECT count(*) FROM run_warnings").await, 0);
    assert_exactly_once(&store, &sim).await;
    sim.shutdown().await;
}
}

both_backends! {
/// Honoured badly, with the window's only adjustment beyond the first page cut in id order: that
/// page, all dated before the window, would end the walk at once; a newer stored adjustment
/// shows it is not the newest, so the shortcut is abandoned and the adjustment is seen.
async fn a_first_page_before_the_window_is_checked_against_what_is_stored(db: TestDb) {
    let sim = simulator(SCALE).await;
    let (endpoint, field, id_field) = ("stock-adjustments", "date", "stockAdjustmentId");
    let mut ids: Vec<String> =
        sim.documents(endpoint).iter().map(|d| d[id_field].as_str().unwrap().to_string()).collect();
    ids.sort();
    let last = ids.last().unwrap().clone();
    // The newest of all when backfilled, then moved into the window.
    sim.set_document_date(endpoint, &last, (Utc::now() - Duration::days(10)).fixed_offset()).unwrap();
    let store = db.store().await;
    ingest(&store, &sim).await;
    sim.set_document_date(endpoint, &last, (Utc::now() - Duration::days(1)).fixed_offset()).unwrap();
    sim.set_behaviour(Behaviour { date_sort: DateSort::Badly, ..Behaviour::DEFAULT });
    let (code, stdout, stderr) = run_cli(&db, &sim, &["ingest", "--window", "5d"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains(&format!("{endpoint}: the first page by {field} starts at")), "{stderr}");
    assert_eq!(capability(&store, &sim, endpoint).await.as_deref(), Some("ignored"));
    assert_exactly_once(&store, &sim).await;
    sim.shutdown().await;
}
}

/// The (id, date) of a stream's documents, newest first, as a server honouring the sort lists them.
fn newest_order(sim: &Simulator, endpoint: &str, field: &str, id_field: &str) -> Vec<(String, DateTime<Utc>)> {
    let mut docs: Vec<(String, DateTime<Utc>)> = sim
        .documents(endpoint)
        .iter()
        .filter_map(|d| {
            let date = DateTime::parse_from_rfc3339(d[field].as_str()?).ok()?.to_utc();
            Some((d[id_field].as_str()?.to_string(), date))
        })
        .collect();
    docs.sort_by_key(|d| std::cmp::Reverse(d.1));
    docs
}

both_backends! {
/// A document of the first page deleted between the first and the second page of the walk:
/// every later row moves up one place. Without the overlapping row the second page would start
/// one row late and skip a document; with it the walk sees the list changed, warns, walks the
/// stream in full for this run, and records nothing about the sort. The skipped document here
/// is one re-dated into the window after the backfill: its new date must be stored.
async fn a_document_deleted_during_the_walk_does_not_make_it_skip_one(db: TestDb) {
    let (sim, store) = backfilled(&db, SCALE).await;
    let (endpoint, field, id_field) = ("stock-adjustments", "date", "stockAdjustmentId");
    let order = newest_order(&sim, endpoint, field, id_field);
    assert!(order[99].1 > order[100].1 && order[100].1 >= window_start(), "{:?}", &order[98..102]);
    // An old document moved to row 100: the first row of the second page.
    let from = window_start();
    let old = order.iter().rev().find(|(_, d)| *d < from).expect("a document before the window").0.clone();
    let moved = order[100].1 + (order[99].1 - order[100].1) / 2;
    sim.set_document_date(endpoint, &old, moved.fixed_offset()).unwrap();
    let order = newest_order(&sim, endpoint, field, id_field);
    assert_eq!(order[100].0, old, "the moved document is row 100");
    // A document of the first page deleted once the first page is answered.
    sim.delete_after_lists(endpoint, 1, &order[10].0);
    sim.clear_requests();
    let stderr = window_run(&db, &sim);
    // First what matters: the document the shift would skip is stored with its new date.
    let stored = "SELECT CAST(doc_date AS TEXT) FROM documents WHERE doc_id = $1";
    let dates = strings(&store, stored, &old).await;
    let day = moved.date_naive().to_string();
    assert!(dates.len() == 1 && dates[0].starts_with(&day), "{dates:?}: the document moved to {moved} was skipped");
    assert!(stderr.contains("the list changed during the walk"), "{stderr}");
    assert!(!stderr.contains("does not honour"), "{stderr}");
    let warned = "SELECT count(*) FROM run_warnings WHERE kind = 'newest_first_interrupted'";
    assert_eq!(count(&store, warned).await, 1);
    assert_ne!(capability(&store, &sim, endpoint).await.as_deref(), Some("ignored"), "not recorded as ignored");
    // Every event of the server's documents is stored, none twice (the deleted document's stay
    // until a complete walk retracts them).
    let (events, rows) = stored_events(&store).await;
    assert_eq!(rows, events.len(), "no event twice");
    let missing: Vec<_> = expected_events(&sim).into_iter().filter(|e| !events.contains(e)).collect();
    assert!(missing.is_empty(), "{missing:?}");
    // The next window run walks newest first again, at the minimum.
    sim.clear_requests();
    let stderr = window_run(&db, &sim);
    assert!(!stderr.contains("changed"), "{stderr}");
    let (n, all) = in_window(&sim, endpoint, field);
    assert_eq!(requests_of(&sim, endpoint).len(), newest_minimum(n, all));
    sim.shutdown().await;
}
}

both_backends! {
/// A persisting 5xx on the sort falls back to a full walk for this run and records nothing; a
/// 400 is recorded as refused, doctor's word.
async fn a_failing_sort_falls_back_and_a_refused_one_is_recorded_as_refused(db: TestDb) {
    let (sim, store) = backfilled(&db, Scale::Orders(450)).await;
    sim.set_behaviour(Behaviour { sort_status: Some(500), ..Behaviour::DEFAULT });
    let stderr = window_run(&db, &sim);
    assert!(stderr.contains("HTTP 500"), "{stderr}");
    assert!(!stderr.contains("does not honour"), "{stderr}");
    for (endpoint, _) in NEWEST {
        assert_eq!(capability(&store, &sim, endpoint).await, None, "{endpoint}: a 5xx records nothing");
    }
    sim.set_behaviour(Behaviour { sort_status: Some(400), ..Behaviour::DEFAULT });
    let stderr = window_run(&db, &sim);
    assert!(stderr.contains("refuses a descending sort"), "{stderr}");
    for (endpoint, _) in NEWEST {
        assert_eq!(capability(&store, &sim, endpoint).await.as_deref(), Some("refused"), "{endpoint}");
    }
    let (events, rows) = stored_events(&store).await;
    assert_eq!(rows, events.len());
    assert_eq!(events, expected_events(&sim));
    sim.shutdown().await;
}
}

/// Gives `count` documents of a stream, from row `first` of its newest-first order, the date of
/// the first of them: one group of equal dates. Returns that date.
fn tie(sim: &Simulator, endpoint: &str, field: &str, id_field: &str, first: usize, count: usize) -> DateTime<Utc> {
    let order = newest_order(sim, endpoint, field, id_field);
    let date = order[first].1;
    assert!(date >= window_start() && first + count < order.len(), "{:?}", &order[first..first + 2]);
    for (id, _) in &order[first..first + count] {
        sim.set_document_date(endpoint, id, date.fixed_offset()).unwrap();
    }
    date
}

both_backends! {
/// 40 adjustments of equal dates across the end of the first page, which the server orders
/// otherwise on each request (as SQL Server may order a sort's ties). The second page starts
/// with all of them again, so the walk reads every one, stays newest first, warns of nothing,
/// and stores each re-dated document's new date.
async fn equal_dates_in_another_order_on_each_request_are_all_read(db: TestDb) {
    let (sim, store) = backfilled(&db, SCALE).await;
    let (endpoint, field, id_field) = ("stock-adjustments", "date", "stockAdjustmentId");
    let date = tie(&sim, endpoint, field, id_field, 80, 40);
    let order = newest_order(&sim, endpoint, field, id_field);
    assert!(order[79].1 > date && order[80..120].iter().all(|(_, d)| *d == date) && order[120].1 < date);
    sim.set_behaviour(Behaviour { date_sort: DateSort::ShuffledTies, ..Behaviour::DEFAULT });
    sim.clear_requests();
    let stderr = window_run(&db, &sim);
    assert!(!stderr.contains(endpoint), "no fallback, no warning: {stderr}");
    let asked = requests_of(&sim, endpoint);
    assert!(asked.iter().all(|r| sorted_newest_first(r, field)), "{asked:?}");
    // The second page asks for row 80 again: 20 rows of the first page read again, so at most
    // one page more than the minimum.
    assert!(asked[1].query.iter().any(|(k, v)| k == "skip" && v == "80"), "{:?}", asked[1]);
    let (n, all) = in_window(&sim, endpoint, field);
    assert!(asked.len() <= newest_minimum(n, all) + 1, "{} requests for {n} documents", asked.len());
    assert_exactly_once(&store, &sim).await;
    for (id, _) in &order[80..120] {
        let dates = strings(&store, "SELECT CAST(doc_date AS TEXT) FROM documents WHERE doc_id = $1", id).await;
        assert!(dates.len() == 1 && dates[0].starts_with(&date.date_naive().to_string()), "{id}: {dates:?}");
    }
    assert_eq!(count(&store, "SELECT count(*) FROM run_warnings").await, 0);
    sim.shutdown().await;
}
}

both_backends! {
/// More adjustments of one date than a page holds, in another order on each request: no
/// overlap can hold them, and their count shows some never came back (one row back matched
/// the row read last, or not), so the walk gives way to the full walk for this run (nothing
/// recorded about the sort) and nothing is missed.
async fn more_equal_dates_than_a_page_in_another_order_fall_back_to_the_full_walk(db: TestDb) {
    let (sim, store) = backfilled(&db, SCALE).await;
    let (endpoint, field, id_field) = ("stock-adjustments", "date", "stockAdjustmentId");
    let (n, _) = in_window(&sim, endpoint, field);
    assert!(n > 130, "{n} adjustments in the window");
    // From the newest: the first page is all of that date, and the second can show only 21 of
    // the 120 rows again, in another order: the 20 not yet seen cannot all be among them.
    tie(&sim, endpoint, field, id_field, 0, 120);
    sim.set_behaviour(Behaviour { date_sort: DateSort::ShuffledTies, ..Behaviour::DEFAULT });
    sim.clear_requests();
    let stderr = window_run(&db, &sim);
    // Found at the second page (another document of that date where the row read last should
    // be) or at the date's end (fewer documents than rows), whichever the order shows first.
    assert!(
        (stderr.contains("cannot be shown all read") || stderr.contains("cannot prove it read them all"))
            && stderr.contains("walks the stream in full"),
        "{stderr}"
    );
    let warned = "SELECT count(*) FROM run_warnings WHERE kind = 'newest_first_interrupted'";
    assert_eq!(count(&store, warned).await, 1);
    assert_ne!(capability(&store, &sim, endpoint).await.as_deref(), Some("ignored"), "not recorded as ignored");
    let all = sim.counts()[endpoint];
    let asked = requests_of(&sim, endpoint);
    assert_eq!(asked.iter().filter(|r| !sorted_newest_first(r, field)).count(), walk_cost(all), "then in full");
    assert_exactly_once(&store, &sim).await;
    sim.shutdown().await;
}
}
