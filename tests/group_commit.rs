//! Group commit under faults (issue 17 point 1): a failure, a budget stop or a refused
//! document inside a group of pages keeps exactly-once, and a grouped run counts what an
//! ungrouped run of the same company counts.

mod common;

use std::time::{Duration, Instant};

use audit::store::{Backend, Store};
use audit::sync::{Quiet, StopFlag, StopReason};
use common::*;
use inflow_simulator::{Fault, FaultRule, Faults, Scale, Simulator, Trigger};

/// Groups of three pages: 460 sales orders are five pages, written as [1, 2, 3] and [4, 5].
const GROUPED: [(&str, &str); 1] = [("AUDIT_GROUP_PAGES", "3")];
const UNGROUPED: [(&str, &str); 1] = [("AUDIT_GROUP_PAGES", "1")];
const SALES: &str = "SELECT count(*) FROM documents WHERE doc_type = 'sales_order'";

/// The run counters summed over every run, as `ingest_runs` holds them.
async fn run_totals(store: &Store) -> Vec<i64> {
    let sql = "SELECT CAST(sum(pages) AS TEXT) || ',' || CAST(sum(documents_changed) AS TEXT) || ',' || \
               CAST(sum(events_inserted) AS TEXT) || ',' || CAST(sum(events_retracted) AS TEXT) || ',' || \
               CAST(sum(warnings) AS TEXT) FROM ingest_runs WHERE $1 = $1";
    let row = strings(store, sql, "").await;
    row[0].split(',').map(|n| n.parse().unwrap()).collect()
}

/// A second fresh database on the same backend as `db`.
async fn another(db: &TestDb) -> TestDb {
    match db.url.backend() {
        Backend::Sqlite => TestDb::sqlite().await,
        Backend::Postgres => TestDb::postgres().await.expect("a Postgres server"),
    }
}

/// Makes the database refuse the sales order numbered `number`, as a value it cannot hold would.
async fn refuse(db: &TestDb, store: &Store, number: &str) {
    let sql = match db.url.backend() {
        Backend::Sqlite => format!(
            "CREATE TRIGGER refuse_doc BEFORE INSERT ON documents WHEN NEW.doc_number = '{number}' \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        ),
        Backend::Postgres => {
            format!("ALTER TABLE documents ADD CONSTRAINT refuse_doc CHECK (doc_number IS DISTINCT FROM '{number}')")
        }
    };
    with_pool!(store, pool => sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(pool).await.map(|_| ())).unwrap();
}

both_backends! {
async fn a_fetch_failure_inside_a_group_writes_the_pages_before_it_and_resumes_after_them(db: TestDb) {
    let sim = simulator(Scale::Orders(450)).await;
    assert_eq!(sim.documents("sales-orders").len(), 460);
    let store = db.store().await;
    // The fifth sales-order page fails for good (every retry): the group [4, 5] ends with it.
    let failing = FaultRule::new(Fault::Status { status: 503 }, Trigger::Requests((5..=60).collect()))
        .on_endpoint("sales-orders")
        .lists_only();
    sim.set_faults(Faults::none().rule(failing));
    let (code, stdout, stderr) = run_cli(&db, &sim, &["ingest", "--time-scale", "0.001"], &GROUPED);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("sales-orders"), "{stderr}");
    assert_eq!(count(&store, SALES).await, 400, "page 4, fetched before the failure, is written");
    // The next run fetches page 5 (and the document it resumes from) and nothing before it.
    sim.set_faults(Faults::none());
    sim.clear_requests();
    let (code, stdout, stderr) = run_cli(&db, &sim, &["ingest"], &GROUPED);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("succeeded"), "{stdout}");
    assert_eq!(requests_by_endpoint(&sim)["sales-orders"], 2, "{:?}", requests_by_endpoint(&sim));
    assert_exactly_once(&store, &sim).await;
    // The two runs together count what one ungrouped run does.
    let clean = another(&db).await;
    let (code, _, stderr) = run_cli(&clean, &sim, &["ingest"], &UNGROUPED);
    assert_eq!(code, 0, "{stderr}");
    let clean_store = clean.store().await;
    let (grouped, ungrouped) = (run_totals(&store).await, run_totals(&clean_store).await);
    assert_eq!(grouped[..3], ungrouped[..3], "pages, documents changed, events inserted");
}
}

both_backends! {
async fn budget_stops_inside_groups_resume_without_a_hole_or_a_double(db: TestDb) {
    let sim = simulator(Scale::Orders(450)).await;
    let store = db.store().await;
    // Small budgets stop the run while pages are buffered; each run resumes from the last
    // group written. A budget that brought no progress grows.
    let mut budget = 4;
    let mut runs = 0;
    let mut last = (0, 0);
    loop {
        runs += 1;
        assert!(runs < 80, "the runs made no progress");
        let (code, stdout, stderr) = run_cli(&db, &sim, &["ingest", "--max-requests", &budget.to_string()], &GROUPED);
        assert_eq!(code, 0, "{stdout}{stderr}");
        if stdout.contains("succeeded") {
            break;
        }
        assert!(stdout.contains("stopped at --max-requests"), "{stdout}");
        let now = (
            count(&store, "SELECT count(*) FROM documents").await,
            count(&store, "SELECT count(*) FROM sync_state WHERE last_complete_at IS NOT NULL").await,
        );
        budget = if now == last { budget + 1 } else { 4 };
        last = now;
    }
    assert_exactly_once(&store, &sim).await;
    // What the runs counted adds up to the trail, as one ungrouped run counts it.
    let clean = another(&db).await;
    let (code, _, stderr) = run_cli(&clean, &sim, &["ingest"], &UNGROUPED);
    assert_eq!(code, 0, "{stderr}");
    let (grouped, ungrouped) = (run_totals(&store).await, run_totals(&clean.store().await).await);
    assert_eq!(grouped[2], ungrouped[2], "events inserted");
    assert_eq!(grouped[2], count(&store, "SELECT count(*) FROM serial_events").await);
}
}

both_backends! {
async fn a_refused_document_inside_a_group_counts_as_in_an_ungrouped_run(db: TestDb) {
    let sim = simulator(Scale::Orders(450)).await;
    // A sales order in the middle of the walk, so inside a group of several pages.
    let orders = sim.documents("sales-orders");
    let number = orders[orders.len() / 2]["orderNumber"].as_str().expect("an order number").to_string();
    let store = db.store().await;
    let clean = another(&db).await;
    let clean_store = clean.store().await;
    refuse(&db, &store, &number).await;
    refuse(&clean, &clean_store, &number).await;
    let (code, stdout, stderr) = run_cli(&db, &sim, &["ingest"], &GROUPED);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("succeeded"), "{stdout}");
    let (code, _, stderr) = run_cli(&clean, &sim, &["ingest"], &UNGROUPED);
    assert_eq!(code, 0, "{stderr}");
    let quarantined = "SELECT count(*) FROM quarantined_documents WHERE reason LIKE 'the database refused it%'";
    assert_eq!(count(&store, quarantined).await, 1);
    assert_eq!(count(&clean_store, quarantined).await, 1);
    assert_eq!(count(&store, SALES).await, 459, "every other order of the group is written");
    assert_eq!(run_totals(&store).await, run_totals(&clean_store).await);
    let (grouped, _) = stored_events(&store).await;
    let (ungrouped, _) = stored_events(&clean_store).await;
    assert_eq!(grouped, ungrouped);
}
}

/// A write lock on the database, held by the test.
enum Holding {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Blocks the ingest's next page write (SQLite: the write lock; Postgres: the events table).
async fn block_writes(blocker: &Store) -> Holding {
    match (blocker.sqlite_pool(), blocker.postgres_pool()) {
        (Some(pool), _) => {
            let mut conn = pool.acquire().await.unwrap().detach();
            sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.unwrap();
            Holding::Sqlite(conn)
        }
        (None, Some(pool)) => {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("LOCK TABLE serial_events IN EXCLUSIVE MODE").execute(&mut *tx).await.unwrap();
            Holding::Postgres(tx)
        }
        (None, None) => unreachable!("a store has one pool"),
    }
}

/// Waits until the run has written its first sales-order page, then blocks its writes (the
/// blocking store is returned with the lock it holds).
async fn block_after_first_page(db: &TestDb, store: &Store) -> (Store, Holding) {
    let started = Instant::now();
    while count(store, SALES).await == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "no sales-order page written");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let blocker = Store::connect(&db.url).await.unwrap();
    let holding = block_writes(&blocker).await;
    (blocker, holding)
}

async fn release(holding: Holding) {
    match holding {
        Holding::Sqlite(mut conn) => drop(sqlx::query("COMMIT").execute(&mut conn).await.unwrap()),
        Holding::Postgres(tx) => tx.commit().await.unwrap(),
    }
}

/// Starts a run whose sales-order pages come slowly, blocks its second page's write while the
/// walk fetches the rest ahead, and stops it (`lock_lost`: the lock taken over, else a signal).
/// Returns the run's stop reason and the sales orders stored before and after the stop, once
/// the run ended; then checks that the next run completes the same events, each once.
async fn stopped_while_fetched_ahead(db: &TestDb, lock_lost: bool) -> (Option<StopReason>, i64, i64) {
    let sim = simulator(Scale::Orders(450)).await;
    // Slow pages, so that the writer waits for each one until the test blocks it.
    let slow = FaultRule::new(Fault::Delay { millis: 100 }, Trigger::Rate(1.0)).on_endpoint("sales-orders");
    sim.set_faults(Faults::none().rule(slow));
    let store = db.store().await;
    let stop = StopFlag::default();
    let (client, options, run_store) = (client_for(&sim), options(&sim), db.store().await);
    // The run is not `Send`: it runs beside the test's own steps, on this task.
    let run = audit::sync::run(&run_store, &client, &options, &Quiet, &stop);
    let steps = async {
        // The next page's write waits for the database while the walk fetches the rest ahead.
        let (blocker, holding) = block_after_first_page(db, &store).await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let written = count(&store, SALES).await;
        assert!(written < 300, "the test meant to block the second page's write ({written} written)");
        if lock_lost {
            stop.lock_lost();
        } else {
            stop.stop();
        }
        release(holding).await;
        blocker.close().await;
        written
    };
    let (summary, written) = tokio::join!(run, steps);
    let summary = summary.expect("the run ends cleanly");
    let after = count(&store, SALES).await;
    // Nothing is lost: the next run completes the same events.
    sim.set_faults(Faults::none());
    let (code, _, stderr) = run_cli(db, &sim, &["ingest"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_exactly_once(&store, &sim).await;
    (summary.stop, written, after)
}

both_backends! {
/// The lock's contract: once it is lost "the holder should stop writing". Pages fetched ahead
/// while a write waited for the database are not written after the lock was taken over: the
/// group under way commits, and the run stops there (the next holder fetches the rest again).
async fn pages_fetched_ahead_are_not_written_once_the_lock_is_lost(db: TestDb) {
    let (stop, written, after) = stopped_while_fetched_ahead(&db, true).await;
    assert_eq!(stop, Some(StopReason::LockLost));
    assert!(after <= written + 100, "only the write under way commits: {after} sales orders, {written} before");
}
}

both_backends! {
/// A signal while pages wait in the channel: those already fetched are written (this process
/// still holds the lock), and the next run resumes after them without a hole or a double.
async fn pages_fetched_ahead_are_written_after_a_signal(db: TestDb) {
    let (stop, written, after) = stopped_while_fetched_ahead(&db, false).await;
    assert_eq!(stop, Some(StopReason::Signal));
    assert!(after > written + 100, "the pages fetched ahead were written: {after} sales orders, {written} before");
}
}

both_backends! {
/// Stock counts whose list refuses `sheets.lines`: the producer fetches each sheet by id before
/// it sends the page on. A sheet that fails for good inside a group (two counts a page) leaves
/// the pages before it written; the next run resumes after them, and the events are exact.
async fn a_sheet_failing_inside_a_group_of_stock_counts_resumes_exactly(db: TestDb) {
    let behaviour = inflow_simulator::Behaviour { page_cap: Some(2), ..inflow_simulator::Behaviour::DEFAULT };
    let config = inflow_simulator::SimConfig {
        scale: Scale::Small,
        data_faults: false,
        rate_limit: None,
        refuse_sheet_lines: true,
        behaviour,
        ..inflow_simulator::SimConfig::default()
    };
    let sim = Simulator::start(config).await.expect("start simulator");
    let counts = sim.documents("stock-counts").len();
    assert!(counts >= 6, "several pages of stock counts: {counts}");
    let store = db.store().await;
    // The fifth sheet asked for by id fails for good.
    let failing = FaultRule::new(Fault::Status { status: 503 }, Trigger::Requests((5..=60).collect()))
        .on_endpoint("count-sheets");
    sim.set_faults(Faults::none().rule(failing));
    let (code, stdout, stderr) = run_cli(&db, &sim, &["ingest", "--types", "stock-counts", "--time-scale", "0.001"], &GROUPED);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("stock-counts"), "{stderr}");
    let stored = "SELECT count(*) FROM documents WHERE doc_type = 'stock_count'";
    let before = count(&store, stored).await;
    assert!(before > 0, "the pages before the failing sheet are written");
    sim.set_faults(Faults::none());
    let (code, stdout, stderr) = run_cli(&db, &sim, &["ingest", "--types", "stock-counts"], &GROUPED);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("succeeded"), "{stdout}");
    let (stored, rows) = stored_events(&store).await;
    assert_eq!(rows, stored.len(), "no event stored twice");
    let expected: std::collections::BTreeSet<Event> =
        expected_events(&sim).into_iter().filter(|e| e.doc_type == "stock_count").collect();
    assert!(!expected.is_empty());
    assert_eq!(stored, expected, "no event missing");
    // The two runs together count the events once.
    assert_eq!(run_totals(&store).await[2], count(&store, "SELECT count(*) FROM serial_events").await);
}
}

both_backends! {
/// What a crash can cost is bounded: while writes wait for the database, the walk fetches ahead
/// no more than one full group (32 pages) beyond what is committed.
async fn pages_fetched_and_not_committed_never_exceed_one_group(db: TestDb) {
    let sim = simulator(Scale::Orders(5000)).await;
    let quick = FaultRule::new(Fault::Delay { millis: 10 }, Trigger::Rate(1.0)).on_endpoint("sales-orders");
    sim.set_faults(Faults::none().rule(quick));
    let store = db.store().await;
    let stop = StopFlag::default();
    let (client, options, run_store) = (client_for(&sim), options(&sim), db.store().await);
    let run = audit::sync::run(&run_store, &client, &options, &Quiet, &stop);
    let steps = async {
        let (blocker, holding) = block_after_first_page(&db, &store).await;
        tokio::time::sleep(Duration::from_millis(2000)).await;
        let committed = count(&store, SALES).await / 100;
        let fetched = sim.requests().iter().filter(|r| r.endpoint == "sales-orders").count() as i64;
        release(holding).await;
        blocker.close().await;
        (committed, fetched)
    };
    let (summary, (committed, fetched)) = tokio::join!(run, steps);
    summary.expect("the run ends cleanly");
    assert!(fetched > committed + 16, "the walk was meant to fetch ahead: {fetched} fetched, {committed} committed");
    assert!(fetched <= committed + 32, "{fetched} pages fetched, only {committed} committed");
    assert_exactly_once(&store, &sim).await;
}
}
