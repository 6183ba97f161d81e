//! The ingest against every way the inFlow API might behave where the reference cannot say
//! (`Behaviour` switches of the simulator), alone and combined, on SQLite and Postgres: a
//! complete ingest exits 0 and writes exactly the events it writes against the default
//! simulator, and a run resumed after the document at its saved position was deleted completes
//! and retracts that document's events.
//!
//! Each case simulates its own company (a seed of its own) in the one database of the test, so
//! that the many cases cost one database each, not one each.

mod common;

use std::collections::BTreeSet;

use audit::store::Store;
use common::*;
use inflow_simulator::{
    Behaviour, GuidOrder, ListCount, RateHeaders, RateLimit, Scale, SimConfig, Simulator, UnknownCursor,
};

/// Sales orders in the simulated company: several pages at any cap.
const ORDERS: usize = 100;

async fn start(behaviour: Behaviour, reject_keyset: bool, seed: u64, orders: usize) -> Simulator {
    // A generous rate limit, so that the rate headers are sent and read.
    let rate_limit = Some(RateLimit { per_minute: 100_000, per_hour: 1_000_000 });
    let scale = Scale::Orders(orders);
    Simulator::start(SimConfig { seed, scale, rate_limit, behaviour, reject_keyset, ..SimConfig::default() })
        .await
        .expect("start simulator")
}

/// `audit ingest` by the binary, with retries and pacing compressed.
fn ingest_cli(db: &TestDb, sim: &Simulator, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["ingest", "--time-scale", "0.001"];
    args.extend_from_slice(extra);
    run_cli(db, sim, &args, &[])
}

/// One company's events, current or retracted.
async fn company_events(store: &Store, company: &str) -> Vec<StoredEvent> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM serial_events WHERE company_id = $1");
    with_pool!(store, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(company).fetch_all(pool).await.unwrap())
}

/// One company's current events, and how many rows they are (to catch duplicates).
async fn current_events(store: &Store, company: &str) -> (BTreeSet<Event>, usize) {
    let current: Vec<Event> =
        company_events(store, company).await.into_iter().filter(|e| !e.retracted).map(|e| e.event).collect();
    let n = current.len();
    (current.into_iter().collect(), n)
}

/// The two sets are equal; otherwise a few differences, not thousands of events.
fn same_events(stored: &BTreeSet<Event>, expected: &BTreeSet<Event>, label: &str) {
    let extra: Vec<_> = stored.difference(expected).take(3).collect();
    let missing: Vec<_> = expected.difference(stored).take(3).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{label}: {} events stored, {} expected; {} unexpected, e.g. {extra:?}; {} missing, e.g. {missing:?}",
        stored.len(),
        expected.len(),
        stored.difference(expected).count(),
        expected.difference(stored).count(),
    );
}

/// A complete ingest exits 0 and stores exactly the events of the simulator's documents (what
/// an ingest of the default simulator stores, `complete_ingest_records_every_serial_occurrence`
/// in tests/ingest.rs), once each; a second run changes nothing and meets no failure again.
async fn ingest_matches_the_default(db: &TestDb, store: &Store, sim: &Simulator, label: &str) {
    let (code, stdout, stderr) = ingest_cli(db, sim, &[]);
    assert_eq!(code, 0, "{label}: {stdout}{stderr}");
    assert!(stdout.contains("succeeded"), "{label}: {stdout}");
    let company = sim.company_id();
    let expected = expected_events(sim);
    let (stored, rows) = current_events(store, &company).await;
    assert_eq!(rows, stored.len(), "{label}: no duplicated events");
    same_events(&stored, &expected, label);
    assert!(company_events(store, &company).await.iter().all(|e| !e.retracted), "{label}: nothing retracted");

    // The next run walks in the modes recorded by the first: no failing request again.
    sim.clear_requests();
    let (code, stdout, stderr) = ingest_cli(db, sim, &[]);
    assert_eq!(code, 0, "{label}: {stdout}{stderr}");
    assert!(stdout.contains("0 events added, 0 retracted"), "{label}: {stdout}");
    let failed: Vec<_> = sim.requests().into_iter().filter(|r| r.status >= 400).collect();
    assert!(failed.is_empty(), "{label}: the second run repeated failures: {failed:?}");
    same_events(&current_events(store, &company).await.0, &expected, label);
}

/// The switches one at a time.
fn alone() -> Vec<(&'static str, Behaviour, bool)> {
    let d = Behaviour::DEFAULT;
    vec![
        ("page cap 30", Behaviour { page_cap: Some(30), ..d.clone() }, false),
        ("page cap 50", Behaviour { page_cap: Some(50), ..d.clone() }, false),
        ("5xx on sort", Behaviour { sort_status: Some(500), ..d.clone() }, false),
        ("sort ignored", Behaviour { ignore_sort: true, ..d.clone() }, false),
        ("unknown cursor 404", Behaviour { unknown_cursor: UnknownCursor::Status(404), ..d.clone() }, false),
        ("unknown cursor 400", Behaviour { unknown_cursor: UnknownCursor::Status(400), ..d.clone() }, false),
        ("unknown cursor 500", Behaviour { unknown_cursor: UnknownCursor::Status(500), ..d.clone() }, false),
        ("unknown cursor empty", Behaviour { unknown_cursor: UnknownCursor::Empty, ..d.clone() }, false),
        ("X-listCount remaining", Behaviour { list_count: ListCount::Remaining, ..d.clone() }, false),
        ("no X-listCount", Behaviour { list_count: ListCount::Absent, ..d.clone() }, false),
        ("rate headers remaining", Behaviour { rate_headers: RateHeaders::Remaining, ..d.clone() }, false),
        ("SQL Server GUID order", Behaviour { guid_order: GuidOrder::SqlServer, ..d.clone() }, false),
        ("keyset rejected", d.clone(), true),
    ]
}

/// The switches together, in the combinations that can coexist.
fn combined() -> Vec<(&'static str, Behaviour, bool)> {
    vec![
        (
            "all, 404 cursor, remaining count",
            Behaviour::hostile(UnknownCursor::Status(404), ListCount::Remaining),
            false,
        ),
        ("all, empty cursor, no count", Behaviour::hostile(UnknownCursor::Empty, ListCount::Absent), false),
        ("all, 500 cursor, total count", Behaviour::hostile(UnknownCursor::Status(500), ListCount::Total), false),
        (
            "sort ignored, cap 50, 400 cursor, no count, SQL Server order",
            Behaviour {
                page_cap: Some(50),
                ignore_sort: true,
                unknown_cursor: UnknownCursor::Status(400),
                list_count: ListCount::Absent,
                guid_order: GuidOrder::SqlServer,
                ..Behaviour::DEFAULT
            },
            false,
        ),
        ("all, keyset rejected", Behaviour::hostile(UnknownCursor::Status(404), ListCount::Remaining), true),
    ]
}

both_backends! {
async fn every_switch_alone_ingests_the_same_events(db: TestDb) {
    let store = db.store().await;
    for (seed, (label, behaviour, reject_keyset)) in (100..).zip(alone()) {
        let sim = start(behaviour, reject_keyset, seed, ORDERS).await;
        ingest_matches_the_default(&db, &store, &sim, label).await;
        sim.shutdown().await;
    }
}
}

both_backends! {
async fn the_switches_combined_ingest_the_same_events(db: TestDb) {
    let store = db.store().await;
    for (seed, (label, behaviour, reject_keyset)) in (200..).zip(combined()) {
        let sim = start(behaviour, reject_keyset, seed, ORDERS).await;
        ingest_matches_the_default(&db, &store, &sim, label).await;
        sim.shutdown().await;
    }
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hostile_server_and_the_default_one_give_the_same_table() {
    // The comparison the issue states, done literally once: two ingests of the same company,
    // into two databases.
    let reference = TestDb::sqlite().await;
    // Large enough for every kind of document and over a thousand events.
    let orders = 150;
    let plain = start(Behaviour::DEFAULT, false, 7, orders).await;
    let (code, _, stderr) = ingest_cli(&reference, &plain, &[]);
    assert_eq!(code, 0, "{stderr}");
    let hostile_db = TestDb::sqlite().await;
    let hostile = start(Behaviour::hostile(UnknownCursor::Empty, ListCount::Absent), false, 7, orders).await;
    let (code, _, stderr) = ingest_cli(&hostile_db, &hostile, &[]);
    assert_eq!(code, 0, "{stderr}");
    let sorted = |mut v: Vec<StoredEvent>| {
        v.sort();
        v
    };
    let a = sorted(all_events(&reference.store().await).await);
    let b = sorted(all_events(&hostile_db.store().await).await);
    assert!(a.len() > 1000, "{}", a.len());
    assert!(a == b, "{} events against {}", a.len(), b.len());
}

/// The id in a saved position (`after:ID` or `skip:N:ID`).
fn position_id(position: &str) -> Option<String> {
    match audit::inflow::walk::Position::decode(position) {
        audit::inflow::walk::Position::After(id) => id,
        audit::inflow::walk::Position::Skip { last, .. } => last,
    }
}

/// Runs a query with the company and one more text parameter; the first column as text.
async fn texts(store: &Store, sql: &'static str, company: &str, param: &str) -> Vec<String> {
    with_pool!(store, pool => sqlx::query_scalar(sql).bind(company).bind(param).fetch_all(pool).await.unwrap())
}

/// Stops complete ingests with `--max-requests` until the sales-order walk is saved at a
/// document that has events; deletes that document in inFlow; runs again to the end. The run
/// exits 0 and says what happened; the deleted document's events are retracted by that run
/// (keyset paging), or by the next one when the walk pages by `skip` (the deletion shifted the
/// rows under it, so that walk cannot prove it saw everything and concludes no deletion).
async fn resumes_after_the_position_was_deleted(
    db: &TestDb,
    store: &Store,
    sim: &Simulator,
    label: &str,
    skip_paging: bool,
) {
    let company = sim.company_id();
    // Small budgets walk a page or two per run; a budget that brought no progress (retries of a
    // failing mode, the extra page that proves an end without a count) grows.
    let mut budget = 2;
    let mut last_position = String::new();
    let doc_id = 'found: {
        for _ in 0..40 {
            let (code, stdout, stderr) = ingest_cli(db, sim, &["--max-requests", &budget.to_string()]);
            assert_eq!(code, 0, "{label}: {stdout}{stderr}");
            let saved = texts(
                store,
                "SELECT COALESCE(walk_position, '') || '|' || COALESCE(CAST(last_complete_run_id AS TEXT), '') \
                 FROM sync_state WHERE company_id = $1 AND stream = $2",
                &company,
                "sales-orders",
            )
            .await;
            let (position, completed) = saved.first().and_then(|s| s.split_once('|')).unwrap_or(("", ""));
            assert!(completed.is_empty(), "{label}: walked past the sales orders");
            if position == last_position {
                budget += 1;
                continue;
            }
            last_position = position.to_string();
            // Progress: back to the smallest budget, so that the next run stops a page later.
            budget = 2;
            // A server without keyset paging: wait for the walk to have fallen back to skip.
            if skip_paging && !position.starts_with("skip:") {
                continue;
            }
            let Some(id) = position_id(position) else { continue };
            let events = texts(
                store,
                "SELECT CAST(count(*) AS TEXT) FROM serial_events WHERE company_id = $1 AND doc_id = $2",
                &company,
                &id,
            )
            .await;
            if events[0] != "0" {
                break 'found id;
            }
        }
        panic!("{label}: no saved position at a document with events");
    };
    sim.delete("sales-orders", &doc_id).unwrap();

    let (code, stdout, stderr) = ingest_cli(db, sim, &[]);
    assert_eq!(code, 0, "{label}: {stdout}{stderr}");
    let cursor_answers = sim.behaviour().unknown_cursor != UnknownCursor::Compare;
    if skip_paging {
        assert!(stdout.contains("not proven complete"), "{label}: {stdout}");
        assert!(stderr.contains("cannot prove it returned every document"), "{label}: {stderr}");
        let (code, stdout, stderr) = ingest_cli(db, sim, &[]);
        assert_eq!(code, 0, "{label}: {stdout}{stderr}");
        assert!(!stdout.contains("not proven"), "{label}: nothing moved during this walk: {stdout}");
    } else if cursor_answers {
        assert!(
            stderr.contains(&format!("the saved position (document {doc_id}) no longer answers")),
            "{label}: {stderr}"
        );
        assert!(stderr.contains("walked again from its start"), "{label}: {stderr}");
    }
    let (stored, rows) = current_events(store, &company).await;
    assert_eq!(rows, stored.len(), "{label}: no duplicated events");
    same_events(&stored, &expected_events(sim), label);
    let of_doc: Vec<bool> = company_events(store, &company)
        .await
        .into_iter()
        .filter(|e| e.event.doc_id == doc_id)
        .map(|e| e.retracted)
        .collect();
    assert!(
        !of_doc.is_empty() && of_doc.iter().all(|r| *r),
        "{label}: events of the deleted document {doc_id}: {of_doc:?}"
    );
    let deleted = texts(
        store,
        "SELECT CAST(count(*) AS TEXT) FROM documents WHERE company_id = $1 AND doc_id = $2 AND deleted_at IS NOT NULL",
        &company,
        &doc_id,
    )
    .await;
    assert_eq!(deleted, ["1"], "{label}");
}

both_backends! {
async fn a_run_resumed_after_its_position_was_deleted_completes(db: TestDb) {
    let store = db.store().await;
    let d = Behaviour::DEFAULT;
    let cases = [
        ("the id compared", d.clone(), false),
        ("404", Behaviour { unknown_cursor: UnknownCursor::Status(404), ..d.clone() }, false),
        ("400", Behaviour { unknown_cursor: UnknownCursor::Status(400), ..d.clone() }, false),
        ("500", Behaviour { unknown_cursor: UnknownCursor::Status(500), ..d.clone() }, false),
        ("an empty page", Behaviour { unknown_cursor: UnknownCursor::Empty, ..d.clone() }, false),
        (
            "an empty page, no count",
            Behaviour { unknown_cursor: UnknownCursor::Empty, list_count: ListCount::Absent, ..d.clone() },
            false,
        ),
        (
            "an empty page, remaining count",
            Behaviour { unknown_cursor: UnknownCursor::Empty, list_count: ListCount::Remaining, ..d.clone() },
            false,
        ),
    ];
    // Two of the combinations; the others' parts are all above.
    let combinations =
        combined().into_iter().filter(|(label, ..)| label.starts_with("all, 404") || label.ends_with("rejected"));
    for (seed, (label, behaviour, reject_keyset)) in (300..).zip(cases.into_iter().chain(combinations)) {
        // Enough pages of 100 that one ends at a document with events early on.
        let sim = start(behaviour, reject_keyset, seed, 300).await;
        resumes_after_the_position_was_deleted(&db, &store, &sim, label, reject_keyset).await;
        sim.shutdown().await;
    }
}
}

/// Makes every recorded answer of a company look this many hours old.
async fn age_capabilities(store: &Store, company: &str, hours: i64) {
    let then = chrono::Utc::now() - chrono::TimeDelta::hours(hours);
    const SQL: &str = "UPDATE api_capabilities SET checked_at = $1 WHERE company_id = $2";
    with_pool!(store, pool => {
        sqlx::query(SQL).bind(then).bind(company).execute(pool).await.unwrap();
    });
}

/// The paging mode recorded per list, in name order.
async fn recorded_modes(store: &Store, company: &str) -> Vec<(String, String)> {
    store
        .capabilities(company)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.name.starts_with("paging:"))
        .map(|c| (c.name, c.value))
        .collect()
}

both_backends! {
async fn a_failed_paging_mode_is_tried_again_a_day_later(db: TestDb) {
    let store = db.store().await;
    let sim = start(Behaviour { sort_status: Some(500), ..Behaviour::DEFAULT }, false, 400, ORDERS).await;
    let company = sim.company_id();
    let (code, _, stderr) = ingest_cli(&db, &sim, &[]);
    assert_eq!(code, 0, "{stderr}");
    let lists = [
        "customers",
        "locations",
        "manufacturing-orders",
        "products",
        "purchase-orders",
        "sales-orders",
        "stock-adjustments",
        "stock-counts",
        "stock-transfers",
        "vendors",
    ];
    let modes = |mode: &str| lists.iter().map(|l| (format!("paging:{l}"), mode.to_string())).collect::<Vec<_>>();
    assert_eq!(recorded_modes(&store, &company).await, modes("keyset-unsorted"));
    let (code, status, _) = run_cli(&db, &sim, &["status", "--format", "table", "--company-id", &company], &[]);
    assert_eq!(code, 0);
    assert!(
        status.contains("sales-orders pages with keyset-unsorted since") && status.contains("answered HTTP 500"),
        "{status}"
    );

    // Within a day: the recorded mode, no request with `sort`.
    sim.clear_requests();
    let (code, _, stderr) = ingest_cli(&db, &sim, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(sim.requests().iter().all(|r| r.query.iter().all(|(k, _)| k != "sort")), "no probe yet");

    // A day later, a complete walk tries the sort again: one request per list, no retries.
    age_capabilities(&store, &company, 25).await;
    sim.clear_requests();
    let (code, stdout, stderr) = ingest_cli(&db, &sim, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let failed: Vec<String> = sim.requests().into_iter().filter(|r| r.status == 500).map(|r| r.endpoint).collect();
    assert_eq!(
        failed,
        [
            "locations",
            "sales-orders",
            "purchase-orders",
            "manufacturing-orders",
            "stock-counts",
            "stock-adjustments",
            "stock-transfers"
        ]
    );
    assert_eq!(recorded_modes(&store, &company).await, modes("keyset-unsorted"));
    let fresh = store.capability(&company, "paging:sales-orders").await.unwrap().unwrap();
    assert!(chrono::Utc::now() - fresh.checked_at < chrono::TimeDelta::hours(1), "the failure is recorded anew");

    // The server learnt to sort: the next probe a day later succeeds and is kept.
    sim.set_behaviour(Behaviour::DEFAULT);
    age_capabilities(&store, &company, 25).await;
    sim.clear_requests();
    let (code, _, stderr) = ingest_cli(&db, &sim, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(sim.count_status(500), 0);
    // Products, customers and vendors are not walked by a re-run: their mode stays as recorded.
    let walked_once = ["paging:products", "paging:customers", "paging:vendors"];
    let expected: Vec<(String, String)> = modes("keyset")
        .into_iter()
        .map(|(name, mode)| if walked_once.contains(&name.as_str()) { (name, "keyset-unsorted".into()) } else { (name, mode) })
        .collect();
    assert_eq!(recorded_modes(&store, &company).await, expected);
    sim.clear_requests();
    let (code, _, stderr) = ingest_cli(&db, &sim, &[]);
    assert_eq!(code, 0, "{stderr}");
    let sorted = sim
        .requests()
        .into_iter()
        .filter(|r| r.endpoint == "sales-orders")
        .all(|r| r.query.iter().any(|(k, _)| k == "sort"));
    assert!(sorted, "the preferred paging from now on");
    same_events(&current_events(&store, &company).await.0, &expected_events(&sim), "after the probes");
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proving_an_end_costs_nothing_with_a_count_and_one_request_without() {
    // With a count, a walk of n documents costs n/100 + 1 requests (the empty page only when
    // the last page is full: `walk_cost`). Without one, a short last page proves nothing: one
    // more request, the empty page.
    let db = TestDb::sqlite().await;
    let sim = start(Behaviour { list_count: ListCount::Absent, ..Behaviour::DEFAULT }, false, 500, 250).await;
    let (code, _, stderr) = ingest_cli(&db, &sim, &[]);
    assert_eq!(code, 0, "{stderr}");
    let counts = sim.counts();
    let by = requests_by_endpoint(&sim);
    for stream in DOC_ENDPOINTS {
        let n = counts[stream];
        assert_eq!(by[stream], n.div_ceil(100) + 1, "{stream}: {n} documents, their pages and one empty page");
        assert!(by[stream] <= walk_cost(n) + 1, "at most one more request than with a count");
    }
    // A cap of 30 with a count of the whole set: every page is short, and the one that reaches
    // the count ends the walk: ceil(n/30) requests, no more.
    let db = TestDb::sqlite().await;
    let sim = start(Behaviour { page_cap: Some(30), ..Behaviour::DEFAULT }, false, 501, 250).await;
    let (code, _, stderr) = ingest_cli(&db, &sim, &[]);
    assert_eq!(code, 0, "{stderr}");
    let counts = sim.counts();
    let by = requests_by_endpoint(&sim);
    for stream in DOC_ENDPOINTS {
        let n = counts[stream];
        assert_eq!(by[stream], n.div_ceil(30).max(1), "{stream}: {n} documents in pages of 30");
    }
}

both_backends! {
/// An account without manufacturing or stock counts (their lists answer 404 while the company
/// answers, on a friendly and on a hostile server): a default ingest skips those two streams with
/// a recorded warning and stores every other event, exactly once; `--types` naming one of them
/// fails and says why.
async fn streams_the_account_lacks_are_skipped_with_a_warning(db: TestDb) {
    let store = db.store().await;
    let lacking = vec!["manufacturing-orders".to_string(), "stock-counts".to_string()];
    let cases = [
        ("friendly", Behaviour { unavailable: lacking.clone(), ..Behaviour::DEFAULT }),
        (
            "hostile",
            Behaviour {
                unavailable: lacking.clone(),
                ..Behaviour::hostile(UnknownCursor::Status(404), ListCount::Absent)
            },
        ),
    ];
    for (seed, (label, behaviour)) in (600..).zip(cases) {
        let rate_limit = Some(RateLimit { per_minute: 100_000, per_hour: 1_000_000 });
        let config = SimConfig { seed, scale: Scale::Small, rate_limit, behaviour, ..SimConfig::default() };
        let sim = Simulator::start(config).await.expect("start simulator");
        assert!(!sim.documents("manufacturing-orders").is_empty(), "the data has orders the API hides");

        let (code, stdout, stderr) = ingest_cli(&db, &sim, &[]);
        assert_eq!(code, 0, "{label}: {stdout}{stderr}");
        for path in &lacking {
            assert!(
                stderr.contains(&format!("{path}: inFlow answers 404 for this list while the company answers")),
                "{label}: {stderr}"
            );
        }
        let company = sim.company_id();
        let expected: BTreeSet<Event> = expected_events(&sim)
            .into_iter()
            .filter(|e| e.doc_type != "manufacturing_order" && e.doc_type != "stock_count")
            .collect();
        let (stored, rows) = current_events(&store, &company).await;
        assert_eq!(rows, stored.len(), "{label}: no duplicated events");
        same_events(&stored, &expected, label);
        let warnings = texts(
            &store,
            "SELECT w.doc_type FROM run_warnings w JOIN ingest_runs r ON r.run_id = w.run_id \
             WHERE r.company_id = $1 AND $2 = $2 AND w.kind = 'stream_unavailable' ORDER BY w.doc_type",
            &company,
            "",
        )
        .await;
        assert_eq!(warnings, ["manufacturing_order", "stock_count"], "{label}");

        let (code, stdout, stderr) = ingest_cli(&db, &sim, &["--types", "manufacturing-orders"]);
        assert_ne!(code, 0, "{label}: a stream asked for by name is not skipped: {stdout}");
        assert!(stderr.contains("this account does not offer manufacturing-orders"), "{label}: {stderr}");
        sim.shutdown().await;
    }
}
}

both_backends! {
/// An account whose customer and vendor lists answer 404 (the company answers): the run
/// succeeds with every event and a recorded warning per list, and the orders keep their ids.
async fn customers_and_vendors_the_account_lacks_leave_ids_and_a_warning(db: TestDb) {
    let store = db.store().await;
    let lacking = vec!["customers".to_string(), "vendors".to_string()];
    let sim = start(Behaviour { unavailable: lacking, ..Behaviour::DEFAULT }, false, 640, 120).await;
    let (code, stdout, stderr) = ingest_cli(&db, &sim, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for path in ["customers", "vendors"] {
        assert!(
            stderr.contains(&format!("{path}: inFlow answers 404 for this list while the company answers")),
            "{stderr}"
        );
    }
    let company = sim.company_id();
    let (stored, _) = current_events(&store, &company).await;
    same_events(&stored, &expected_events(&sim), "without parties");
    let kinds = texts(
        &store,
        "SELECT w.kind FROM run_warnings w JOIN ingest_runs r ON r.run_id = w.run_id \
         WHERE r.company_id = $1 AND $2 = $2 AND w.kind = 'reference_unavailable'",
        &company,
        "",
    )
    .await;
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert_eq!(count(&store, "SELECT count(*) FROM customers").await, 0);
    assert!(count(&store, "SELECT count(*) FROM documents WHERE party_id IS NOT NULL").await > 0);
    sim.shutdown().await;
}
}
