//! `audit anomalies`, the `serial_anomalies` view and `serial_stock_disagreements` (migration
//! V8) on SQLite and Postgres: the simulator's planted histories are found with their evidence,
//! its clean company yields nothing, and hand-made histories pin down the rules (event order,
//! undated events, retractions, reconciliation).

mod common;

use std::collections::BTreeSet;

use audit::anomalies::AnomalyKind;
use audit::store::Store;
use audit::store::anomalies::AnomalyRow;
use common::*;
use inflow_simulator::{PlantedAnomaly, Scale, SimConfig, Simulator};
use serde_json::Value;

/// A finding as the tests compare it: kind, serial, product, the event's type and document,
/// the earlier event's type and document, and the detail.
type Finding =
    (String, String, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>);

fn finding(v: &Value) -> Finding {
    let s = |k: &str| v[k].as_str().map(str::to_string);
    (
        s("kind").unwrap(),
        s("serial").unwrap(),
        s("product_id"),
        s("event_type"),
        s("doc_number"),
        s("earlier_event_type"),
        s("earlier_doc_number"),
        s("detail"),
    )
}

fn planted(p: &PlantedAnomaly) -> Finding {
    (
        p.kind.clone(),
        p.serial.clone(),
        Some(p.product_id.clone()),
        p.event_type.clone(),
        p.document.as_ref().map(|d| d.number.clone()),
        p.earlier_event_type.clone(),
        p.earlier_document.as_ref().map(|d| d.number.clone()),
        p.detail.clone(),
    )
}

/// `audit anomalies --format json ARGS`: (exit status, rows, stderr).
fn anomalies(db: &TestDb, args: &[&str]) -> (i32, Vec<Value>, String) {
    let mut all = vec!["anomalies", "--format", "json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = tokio::task::block_in_place(|| run_audit(&db.url_string(), &all, &[]));
    let rows = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}"));
    (code, rows, stderr)
}

fn findings(rows: &[Value]) -> Vec<Finding> {
    let mut out: Vec<Finding> = rows.iter().map(finding).collect();
    out.sort();
    out
}

/// Every row of the `serial_anomalies` view, as the command prints them.
async fn view_rows(store: &Store) -> Vec<Value> {
    const SQL: &str = "SELECT * FROM serial_anomalies";
    let mut rows: Vec<AnomalyRow> = if let Some(pool) = store.sqlite_pool() {
        sqlx::query_as(SQL).fetch_all(pool).await.unwrap()
    } else {
        sqlx::query_as(SQL).fetch_all(store.postgres_pool().unwrap()).await.unwrap()
    };
    rows.sort_by(|a, b| {
        (&a.kind, &a.serial, &a.product_id, a.event_id).cmp(&(&b.kind, &b.serial, &b.product_id, b.event_id))
    });
    rows.iter().map(|r| serde_json::to_value(r).unwrap()).collect()
}

both_backends! {
async fn every_planted_anomaly_is_found_with_its_evidence(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let scenario = sim.scenario();
    let all: Vec<Finding> = scenario.anomalies.iter().map(planted).collect();
    let kinds: BTreeSet<&str> = scenario.anomalies.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds.len(), AnomalyKind::ALL.len(), "the simulator plants every kind: {kinds:?}");

    // Without a snapshot there is nothing to reconcile with.
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let (code, rows, stderr) = anomalies(&db, &[]);
    assert_eq!(code, 1, "{stderr}");
    let mut expected: Vec<Finding> = all.iter().filter(|f| f.0 != "history_and_stock_disagree").cloned().collect();
    expected.sort();
    assert_eq!(findings(&rows), expected, "exactly the planted anomalies, with their evidence");
    assert!(stderr.contains(&format!("{} anomalies", rows.len())), "{stderr}");
    assert!(stderr.contains("no complete stock snapshot, so history_and_stock_disagree was not checked"), "{stderr}");

    let (code, _, stderr) = run_cli(&db, &sim, &["snapshot"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let (code, rows, stderr) = anomalies(&db, &[]);
    assert_eq!(code, 1);
    assert!(!stderr.contains("not checked"), "{stderr}");
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(findings(&rows), expected, "and the stock disagreements once a snapshot exists");

    // Each row explains itself with the documents it names, and started when its event happened.
    let store = db.store().await;
    for r in &rows {
        let text = r["explanation"].as_str().unwrap();
        for key in ["doc_number", "earlier_doc_number"] {
            if let Some(number) = r[key].as_str() {
                assert!(text.contains(number), "{text} should name {number}");
            }
        }
        if let (Some(id), "out_twice" | "in_twice" | "moved_from_elsewhere" | "appeared_from_nowhere" | "sold_twice") =
            (r["event_id"].as_i64(), r["kind"].as_str().unwrap())
        {
            let at = event_time(&store, id).await;
            assert_eq!(r["started_at"].as_str(), Some(at.as_str()), "{r}");
        }
    }
    // The view lists the same rows, field for field.
    assert_eq!(view_rows(&store).await, rows);
}
}

/// An event's time as the JSON output writes it.
async fn event_time(store: &Store, event_id: i64) -> String {
    const SQL: &str = "SELECT occurred_at FROM serial_events WHERE event_id = $1";
    let t: chrono::DateTime<chrono::Utc> = if let Some(pool) = store.sqlite_pool() {
        sqlx::query_scalar(SQL).bind(event_id).fetch_one(pool).await.unwrap()
    } else {
        sqlx::query_scalar(SQL).bind(event_id).fetch_one(store.postgres_pool().unwrap()).await.unwrap()
    };
    serde_json::to_value(t).unwrap().as_str().unwrap().to_string()
}

both_backends! {
async fn a_clean_company_has_no_anomalies(db: TestDb) {
    // Big enough for transfers still on the way, returns resold, split deliveries and
    // cancellations: every history the generator makes without faults is plausible.
    let sim = Simulator::start(SimConfig {
        scale: Scale::Orders(1500),
        data_faults: false,
        rate_limit: None,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    assert!(sim.scenario().anomalies.is_empty() && sim.scenario().two_products.is_none());
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest", "--snapshot"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let (code, rows, stderr) = anomalies(&db, &[]);
    assert_eq!(rows, Vec::<Value>::new(), "no false positives");
    assert_eq!(code, 0);
    assert!(stderr.contains("No anomalies found."), "{stderr}");
    assert!(view_rows(&db.store().await).await.is_empty());
    // The company has what could have gone wrong: returns, resales and transfers on the way.
    let store = db.store().await;
    let returns = count(&store, "SELECT count(*) FROM serial_events WHERE event_type = 'restocked'").await;
    let received = count(&store, "SELECT count(*) FROM serial_events WHERE event_type = 'transfer_received'").await;
    let in_transit = count(&store, "SELECT count(*) FROM serial_current WHERE status = 'in_transit'").await;
    assert!(
        returns > 5 && received > 5 && in_transit > 0,
        "returns {returns}, {received} received, {in_transit} on the way"
    );
}
}

both_backends! {
async fn options_filter_the_findings_and_formats_follow_the_contract(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest", "--snapshot"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let s = sim.scenario();
    let (_, all, _) = anomalies(&db, &[]);
    let kinds_of =
        |rows: &[Value]| rows.iter().map(|r| r["kind"].as_str().unwrap().to_string()).collect::<BTreeSet<_>>();

    let (code, rows, _) = anomalies(&db, &["--kind", "out_twice,in_twice"]);
    assert_eq!(code, 1);
    assert_eq!(kinds_of(&rows), BTreeSet::from(["in_twice".to_string(), "out_twice".to_string()]));
    assert_eq!(rows.len(), all.iter().filter(|r| r["kind"] == "out_twice" || r["kind"] == "in_twice").count());

    let twice = &s.sold_twice.as_ref().unwrap().serial;
    let (_, rows, _) = anomalies(&db, &["--serial", twice]);
    assert_eq!(
        kinds_of(&rows),
        BTreeSet::from(["history_and_stock_disagree".into(), "out_twice".into(), "sold_twice".into()])
    );
    assert!(rows.iter().all(|r| r["serial"] == twice.as_str()));

    let since = "2025-06-01";
    let (_, rows, _) = anomalies(&db, &["--since", since]);
    let kept = |r: &Value| r["started_at"].as_str().is_none_or(|t| t >= "2025-06-01T00:00:00Z");
    assert!(!rows.is_empty() && rows.iter().all(kept));
    assert_eq!(rows.len(), all.iter().filter(|r| kept(r)).count());
    assert!(rows.len() < all.len());

    // An unknown company is an error, not a clean bill.
    let unknown = "00000000-0000-4000-8000-000000000000";
    let (code, stdout, stderr) = tokio::task::block_in_place(|| {
        run_audit(&db.url_string(), &["anomalies", "--format", "json", "--company-id", unknown], &[])
    });
    assert_eq!((code, stdout.as_str()), (2, ""), "{stderr}");
    assert!(stderr.contains(&format!("company {unknown} (from --company-id) is not in this database")), "{stderr}");
    let (_, rows, _) = anomalies(&db, &["--company-id", &sim.company_id()]);
    assert_eq!(rows.len(), all.len());

    // The planted in-transit transfer is days old: stuck only when fewer days are allowed.
    let transit = &s.in_transit.serial;
    let stuck = |rows: &[Value]| {
        rows.iter()
            .filter(|r| r["kind"] == "stuck_in_transit")
            .map(|r| r["serial"].as_str().unwrap().to_string())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(stuck(&all), BTreeSet::from([s.stuck_in_transit.as_ref().unwrap().serial.clone()]));
    let (_, rows, _) = anomalies(&db, &["--transit-days", "0"]);
    assert!(stuck(&rows).contains(transit), "{rows:?}");
    let days = rows.iter().find(|r| r["serial"] == transit.as_str()).unwrap()["days_in_transit"].as_i64().unwrap();
    assert!((1..=14).contains(&days), "{days}");

    let (code, csv_out, _) = tokio::task::block_in_place(|| {
        run_audit(&db.url_string(), &["anomalies", "--format", "csv", "--kind", "sold_twice"], &[])
    });
    assert_eq!(code, 1);
    let mut reader = csv::Reader::from_reader(csv_out.as_bytes());
    assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), audit::commands::anomalies::CSV_COLUMNS);
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 1);
    assert_eq!(&records[0][1], "sold_twice");
    let (code, table, _) = tokio::task::block_in_place(|| {
        run_audit(&db.url_string(), &["anomalies", "--format", "table", "--serial", twice], &[])
    });
    assert_eq!(code, 1);
    let second_order = &s.sold_twice.as_ref().unwrap().documents[2].number;
    assert!(table.contains("sold_twice") && table.contains(second_order.as_str()), "{table}");

    // The same columns as the view, in its order.
    let store = db.store().await;
    let columns = view_columns(&store).await;
    assert_eq!(columns, audit::commands::anomalies::CSV_COLUMNS);

    // Errors: exit 2 with a message.
    let (code, _, stderr) =
        tokio::task::block_in_place(|| run_audit(&db.url_string(), &["anomalies", "--since", "soon"], &[]));
    assert_eq!(code, 2);
    assert!(stderr.contains("is not a time"), "{stderr}");
    let (code, _, stderr) =
        tokio::task::block_in_place(|| run_audit("sqlite:///nonexistent/dir/audit.db", &["anomalies"], &[]));
    assert_eq!(code, 2);
    assert!(stderr.contains("there is no audit database"), "{stderr}");
}
}

async fn view_columns(store: &Store) -> Vec<String> {
    match store.backend() {
        audit::store::Backend::Sqlite => {
            strings(store, "SELECT name FROM pragma_table_info('serial_anomalies') WHERE $1 = $1 ORDER BY cid", "")
                .await
        }
        audit::store::Backend::Postgres => {
            strings(
                store,
                "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'serial_anomalies' \
                 AND table_schema = current_schema() AND $1 = $1 ORDER BY ordinal_position",
                "",
            )
            .await
        }
    }
}

both_backends! {
async fn a_cancelled_order_no_longer_counts(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let story = sim.scenario().sold_twice.unwrap();
    let (_, rows, _) = anomalies(&db, &["--serial", &story.serial]);
    assert_eq!(rows.len(), 2, "out_twice and sold_twice: {rows:?}");
    // The second order is cancelled in inFlow: its events are retracted, and never count.
    sim.cancel("sales-orders", &story.documents[2].id).unwrap();
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let (code, rows, _) = anomalies(&db, &["--serial", &story.serial]);
    assert_eq!((code, rows), (0, Vec::<Value>::new()));
    let store = db.store().await;
    let retracted = count(&store, "SELECT count(*) FROM serial_events WHERE retracted_at IS NOT NULL").await;
    assert!(retracted >= 3, "{retracted}");
}
}

// ---- Hand-made histories ---------------------------------------------------------------------

const COMPANY: &str = "c0000000-0000-4000-8000-000000000001";

/// One event: (serial, product, document, event type, time or "", location, sublocation,
/// retracted). The document type comes from the name (`SO-1` a sales order...), the stock
/// effect from `event_types`, as an ingest records them.
type Ev<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, &'a str, &'a str, bool);

fn time(s: &str) -> chrono::DateTime<chrono::Utc> {
    audit::mapping::parse_date(s).unwrap()
}

fn doc_type(doc: &str) -> &'static str {
    match &doc[..2] {
        "SO" => "sales_order",
        "PO" => "purchase_order",
        "SA" => "stock_adjustment",
        _ => "stock_transfer",
    }
}

async fn insert_events(store: &Store, events: &[Ev<'_>]) {
    const SQL: &str = "INSERT INTO serial_events (company_id, serial, product_id, doc_type, doc_id, doc_number, \
         line_collection, line_id, event_type, occurred_at, location_id, sublocation, quantity_delta, observed_at, \
         run_id, retracted_at) \
         SELECT $1, $2, $3, $4, $5, $5, 'lines', $6, $7, $8, $9, $10, t.quantity_delta, $11, 1, $12 \
         FROM event_types t WHERE t.event_type = $7";
    for &(serial, product, doc, event_type, at, location, sublocation, retracted) in events {
        let line = format!("{doc}/{serial}/{product}/{event_type}");
        let at = (!at.is_empty()).then(|| time(at));
        let product = (!product.is_empty()).then_some(product);
        let sublocation = (!sublocation.is_empty()).then_some(sublocation);
        let retracted_at = retracted.then(|| time("2026-01-02"));
        macro_rules! run {
            ($pool:expr) => {
                sqlx::query(SQL)
                    .bind(COMPANY)
                    .bind(serial)
                    .bind(product)
                    .bind(doc_type(doc))
                    .bind(doc)
                    .bind(&line)
                    .bind(event_type)
                    .bind(at)
                    .bind(location)
                    .bind(sublocation)
                    .bind(time("2026-01-01"))
                    .bind(retracted_at)
                    .execute($pool)
                    .await
                    .unwrap()
            };
        }
        let done = match store.sqlite_pool() {
            Some(pool) => run!(pool).rows_affected(),
            None => run!(store.postgres_pool().unwrap()).rows_affected(),
        };
        assert_eq!(done, 1, "unknown event type {event_type}");
    }
}

/// A sales order of a customer, as `documents` keeps it.
async fn insert_order(store: &Store, doc: &str, customer: &str) {
    const SQL: &str = "INSERT INTO documents (company_id, doc_type, doc_id, doc_number, party_id, raw, first_seen_at, \
         first_run_id, changed_at, changed_run_id, last_seen_at, last_seen_run_id) \
         VALUES ($1, 'sales_order', $2, $2, $3, '{}', $4, 1, $4, 1, $4, 1)";
    macro_rules! run {
        ($pool:expr) => {
            sqlx::query(SQL)
                .bind(COMPANY)
                .bind(doc)
                .bind(customer)
                .bind(time("2026-01-01"))
                .execute($pool)
                .await
                .unwrap()
                .rows_affected()
        };
    }
    match store.sqlite_pool() {
        Some(pool) => run!(pool),
        None => run!(store.postgres_pool().unwrap()),
    };
}

/// A complete snapshot with these lines: (product, serial, location, sublocation, quantity).
async fn insert_snapshot(store: &Store, lines: &[(&str, &str, &str, &str, f64)]) {
    const SNAPSHOT: &str = "INSERT INTO stock_snapshots (company_id, run_id, started_at, completed_at) \
         VALUES ($1, 1, $2, $2) RETURNING snapshot_id";
    const LINE: &str = "INSERT INTO serial_stock (snapshot_id, company_id, product_id, serial, location_id, sublocation, \
         quantity_on_hand, observed_at, run_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1)";
    macro_rules! run {
        ($pool:expr) => {{
            let id: i64 =
                sqlx::query_scalar(SNAPSHOT).bind(COMPANY).bind(time("2026-02-01")).fetch_one($pool).await.unwrap();
            for &(product, serial, location, sublocation, qty) in lines {
                sqlx::query(LINE)
                    .bind(id)
                    .bind(COMPANY)
                    .bind(product)
                    .bind(serial)
                    .bind(location)
                    .bind((!sublocation.is_empty()).then_some(sublocation))
                    .bind(qty)
                    .bind(time("2026-02-01"))
                    .execute($pool)
                    .await
                    .unwrap();
            }
        }};
    }
    match store.sqlite_pool() {
        Some(pool) => run!(pool),
        None => run!(store.postgres_pool().unwrap()),
    }
}

/// (serial, kind) of every finding, or of every stock disagreement.
async fn kinds_found(db: &TestDb) -> Vec<(String, String)> {
    let (_, rows, _) = anomalies(db, &[]);
    let mut out: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r["serial"].as_str().unwrap().to_string(), r["kind"].as_str().unwrap().to_string()))
        .collect();
    out.sort();
    out
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    out.sort();
    out
}

both_backends! {
async fn each_kind_follows_its_rule(db: TestDb) {
    let store = db.store().await;
    // A stock-removing event type audit does not know yet: it counts by the sign event_types
    // gives it.
    exec(
        &store,
        "INSERT INTO event_types (event_type, step, quantity_delta, doc_type, description) \
         VALUES ('scrapped', 3, -1, 'manufacturing_order', 'scrapped by a later version')",
    )
    .await;
    let (l1, l2) = ("L1", "L2");
    #[rustfmt::skip]
    insert_events(&store, &[
        // Plausible: in, out, back in (a return), out again; a sublocation change is no move.
        ("OK-1", "p", "PO-1", "received", "2025-01-01", l1, "A", false),
        ("OK-1", "p", "SO-1", "sold", "2025-01-05", l1, "", false),
        ("OK-1", "p", "SO-1", "picked", "2025-01-05T02:00:00Z", l1, "B", false),
        ("OK-1", "p", "SO-1", "shipped", "2025-01-06", "", "", false),
        ("OK-1", "p", "SO-1", "customer_return", "2025-02-01", l1, "", false),
        ("OK-1", "p", "SO-1", "restocked", "2025-02-02", l1, "R", false),
        ("OK-1", "p", "SO-2", "sold", "2025-03-01", l1, "", false),
        ("OK-1", "p", "SO-2", "picked", "2025-03-01T02:00:00Z", l1, "R", false),
        // Sent and received on the same day: the natural order of the steps decides.
        ("OK-2", "p", "PO-2", "received", "2025-01-01", l1, "", false),
        ("OK-2", "p", "ST-1", "transfer_sent", "2025-01-10", l1, "", false),
        ("OK-2", "p", "ST-1", "transfer_received", "2025-01-10", l2, "", false),
        ("OK-2", "p", "SA-1", "adjusted_out", "2025-01-11", l2, "", false),
        // One customer on two orders is not two customers.
        ("OK-3", "p", "PO-3", "received", "2025-01-01", l1, "", false),
        ("OK-3", "p", "SO-3", "sold", "2025-01-02", l1, "", false),
        ("OK-3", "p", "SO-4", "sold", "2025-01-03", l1, "", false),
        // Out twice, the second time by a build.
        ("OUT", "p", "PO-4", "received", "2025-01-01", l1, "", false),
        ("OUT", "p", "MO-1", "scrapped", "2025-01-02", l1, "", false),
        ("OUT", "p", "SA-2", "adjusted_out", "2025-01-03", l1, "", false),
        // In twice: a receipt, then an adjustment in, with no removal between.
        ("IN", "p", "PO-5", "received", "2025-01-01", l1, "", false),
        ("IN", "p", "SA-3", "adjusted_in", "2025-01-02", l1, "", false),
        // Received at L1, picked at L2.
        ("MOVED", "p", "PO-6", "received", "2025-01-01", l1, "", false),
        ("MOVED", "p", "SO-5", "picked", "2025-01-02", l2, "", false),
        // Built into something before anything brought it in.
        ("NOWHERE", "p", "MO-2", "scrapped", "2025-01-02", l1, "", false),
        // Two customers' orders, neither picked: sold twice and nothing else.
        ("TWICE", "p", "SO-6", "sold", "2025-01-02", l1, "", false),
        ("TWICE", "p", "SO-7", "sold", "2025-01-03", l1, "", false),
        // Returned and restocked, never sold: one finding, at the return.
        ("BACK", "p", "SO-8", "customer_return", "2025-01-02", l1, "", false),
        ("BACK", "p", "SO-8", "restocked", "2025-01-03", l1, "", false),
        // One serial, two products (each history plausible).
        ("SHARED", "p", "PO-7", "received", "2025-01-01", l1, "", false),
        ("SHARED", "q", "PO-8", "received", "2025-01-05", l2, "", false),
    ]).await;
    for (doc, customer) in [("SO-3", "A"), ("SO-4", "A"), ("SO-6", "A"), ("SO-7", "B")] {
        insert_order(&store, doc, customer).await;
    }
    assert_eq!(
        kinds_found(&db).await,
        pairs(&[
            ("BACK", "returned_never_sold"),
            ("IN", "in_twice"),
            ("MOVED", "moved_from_elsewhere"),
            ("NOWHERE", "appeared_from_nowhere"),
            ("OUT", "out_twice"),
            ("SHARED", "one_serial_two_products"),
            ("SHARED", "one_serial_two_products"),
            ("TWICE", "sold_twice"),
        ])
    );
    let (_, rows, _) = anomalies(&db, &["--serial", "OUT"]);
    assert_eq!(
        (rows[0]["event_type"].as_str(), rows[0]["earlier_event_type"].as_str()),
        (Some("adjusted_out"), Some("scrapped"))
    );
    assert_eq!(rows[0]["started_at"], "2025-01-03T00:00:00Z");
    let (_, rows, _) = anomalies(&db, &["--serial", "BACK"]);
    assert_eq!(rows[0]["event_type"], "customer_return");
    let (_, rows, _) = anomalies(&db, &["--serial", "SHARED"]);
    assert!(
        rows.iter().all(|r| r["started_at"] == "2025-01-05T00:00:00Z"),
        "when the second product took it: {rows:?}"
    );
    assert_eq!(rows.iter().map(|r| r["detail"].as_str().unwrap()).collect::<BTreeSet<_>>(), BTreeSet::from(["p", "q"]));
}
}

both_backends! {
async fn undated_events_are_placed_as_serial_current_places_them(db: TestDb) {
    let store = db.store().await;
    #[rustfmt::skip]
    insert_events(&store, &[
        // The receipt has no date but its order has: it is placed there, before the pick.
        ("U-1", "p", "PO-1", "ordered", "2025-01-01", "L1", "", false),
        ("U-1", "p", "PO-1", "received", "", "L1", "", false),
        ("U-1", "p", "SO-1", "picked", "2025-02-01", "L1", "", false),
        // Nothing to borrow a date from: the receipt counts as the latest event, after the pick.
        ("U-2", "p", "PO-2", "received", "", "L1", "", false),
        ("U-2", "p", "SO-2", "picked", "2025-02-01", "L1", "", false),
    ]).await;
    assert_eq!(kinds_found(&db).await, pairs(&[("U-2", "appeared_from_nowhere")]));
    let status =
        strings(&store, "SELECT serial || ':' || status FROM serial_current WHERE $1 = $1 ORDER BY serial", "").await;
    assert_eq!(status, ["U-1:picked", "U-2:in_stock"], "the same order as serial_current");
}
}

both_backends! {
async fn retracted_events_never_count(db: TestDb) {
    let store = db.store().await;
    #[rustfmt::skip]
    insert_events(&store, &[
        ("R-1", "p", "PO-1", "received", "2025-01-01", "L1", "", false),
        ("R-1", "p", "SO-1", "picked", "2025-01-02", "L1", "", false),
        ("R-1", "p", "SO-2", "picked", "2025-01-03", "L1", "", true),
        ("R-2", "p", "PO-2", "received", "2025-01-01", "L1", "", false),
        ("R-2", "p", "SO-3", "picked", "2025-01-02", "L1", "", false),
        ("R-2", "p", "SO-4", "picked", "2025-01-03", "L1", "", false),
        // A retracted receipt leaves the pick without a source.
        ("R-3", "p", "PO-3", "received", "2025-01-01", "L1", "", true),
        ("R-3", "p", "SO-5", "picked", "2025-01-02", "L1", "", false),
    ]).await;
    assert_eq!(kinds_found(&db).await, pairs(&[("R-2", "out_twice"), ("R-3", "appeared_from_nowhere")]));
}
}

both_backends! {
async fn stock_disagreements_are_what_reconcile_lists(db: TestDb) {
    let store = db.store().await;
    #[rustfmt::skip]
    insert_events(&store, &[
        // Agreeing: in stock where inFlow has it (no sublocation and an empty one are the same),
        // out of stock and not on hand, in transit, only on an order.
        ("A", "p", "PO-1", "received", "2025-01-01", "L1", "", false),
        ("B", "p", "PO-2", "received", "2025-01-01", "L1", "S", false),
        ("B", "p", "SO-1", "picked", "2025-01-02", "L1", "S", false),
        ("C", "p", "PO-3", "received", "2025-01-01", "L1", "S", false),
        ("C", "p", "ST-1", "transfer_sent", "2025-01-02", "L1", "S", false),
        ("D", "p", "SO-2", "sold", "2025-01-02", "L1", "", false),
        // Disagreeing.
        ("NORECEIPT", "p", "SO-3", "sold", "2025-01-02", "L1", "", false),
        ("TWICE", "p", "PO-4", "received", "2025-01-01", "L1", "A", false),
        ("MOVED", "p", "PO-5", "received", "2025-01-01", "L1", "A", false),
        ("BACK", "p", "PO-6", "received", "2025-01-01", "L1", "A", false),
        ("BACK", "p", "SO-4", "picked", "2025-01-02", "L1", "A", false),
        ("GONE", "p", "PO-7", "received", "2025-01-01", "L1", "A", false),
        ("NEG", "p", "PO-8", "received", "2025-01-01", "L1", "A", false),
        ("NEG", "p", "SO-5", "picked", "2025-01-02", "L1", "A", false),
        // Received once, since adjusted out, yet on hand: left stock, not never received.
        ("EVERIN", "p", "PO-9", "received", "2025-01-01", "L1", "A", false),
        ("EVERIN", "p", "SA-1", "adjusted_out", "2025-01-02", "L1", "A", false),
        // The same serial under two products: two comparisons, both agreeing.
        ("S", "p", "PO-10", "received", "2025-01-01", "L1", "A", false),
        ("S", "q", "PO-11", "received", "2025-01-01", "L2", "B", false),
    ]).await;
    #[rustfmt::skip]
    insert_snapshot(&store, &[
        ("p", "A", "L1", "", 1.0),
        ("p", "Z", "L1", "X", 0.0),
        ("p", "NEW", "L1", "A", 1.0),
        ("p", "NORECEIPT", "L1", "A", 1.0),
        ("p", "TWICE", "L1", "A", 1.0),
        ("p", "TWICE", "L2", "B", 1.0),
        ("p", "MOVED", "L2", "B", 1.0),
        ("p", "BACK", "L1", "A", 1.0),
        ("p", "NEG", "L1", "A", -1.0),
        ("p", "EVERIN", "L1", "A", 1.0),
        ("p", "S", "L1", "A", 1.0),
        ("q", "S", "L2", "B", 1.0),
    ]).await;
    let got = strings(
        &store,
        "SELECT serial || ':' || kind FROM serial_stock_disagreements WHERE $1 = $1 ORDER BY serial",
        "",
    )
    .await;
    assert_eq!(
        got,
        [
            "BACK:on_hand_but_history_gone",
            "EVERIN:on_hand_but_history_gone",
            "GONE:gone_but_history_on_hand",
            "MOVED:different_location",
            "NEG:negative_on_hand",
            "NEW:never_in_documents",
            "NORECEIPT:on_hand_without_receipt",
            "TWICE:on_hand_in_two_locations",
        ]
    );
    // `audit reconcile` lists these rows, with inFlow's places; `audit anomalies` too.
    let (code, stdout, stderr) = tokio::task::block_in_place(|| {
        run_audit(&db.url_string(), &["reconcile", "--format", "json", "--company-id", COMPANY], &[])
    });
    assert_eq!(code, 1, "{stderr}");
    let listed: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    let mut kinds: Vec<String> =
        listed.iter().map(|d| format!("{}:{}", d["serial"].as_str().unwrap(), d["kind"].as_str().unwrap())).collect();
    kinds.sort();
    assert_eq!(kinds, got);
    let twice = listed.iter().find(|d| d["serial"] == "TWICE").unwrap();
    assert_eq!(twice["inflow"].as_array().unwrap().len(), 2);
    let moved = listed.iter().find(|d| d["serial"] == "MOVED").unwrap();
    assert_eq!(
        (moved["history_status"].as_str(), moved["history_location_id"].as_str()),
        (Some("in_stock"), Some("L1"))
    );
    let (_, rows, _) = anomalies(&db, &["--kind", "history_and_stock_disagree"]);
    let mut details: Vec<String> =
        rows.iter().map(|r| format!("{}:{}", r["serial"].as_str().unwrap(), r["detail"].as_str().unwrap())).collect();
    details.sort();
    assert_eq!(details, got);
}
}

both_backends! {
async fn the_kinds_table_lists_the_command_line_kinds(db: TestDb) {
    let store = db.store().await;
    let table: Vec<String> = store.anomaly_kinds().await.unwrap().into_iter().map(|(k, _)| k).collect();
    let mut code: Vec<String> = AnomalyKind::ALL.iter().map(|k| k.as_str().to_string()).collect();
    code.sort();
    assert_eq!(table, code);
}
}

both_backends! {
/// The query plans keep the two properties the benchmark relies on: asking about one serial
/// reads its events through the serial index only, and (on SQLite) the findings are computed
/// once, outside the loop over the kinds, not once per kind.
async fn the_plans_read_one_serial_by_index_and_the_findings_once(db: TestDb) {
    let store = db.store().await;
    match store.backend() {
        audit::store::Backend::Sqlite => {
            let pool = store.sqlite_pool().unwrap();
            let plan = |sql: &'static str| async move {
                let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(sql).fetch_all(pool).await.unwrap();
                rows.into_iter().map(|r| r.3).collect::<Vec<String>>()
            };
            let one = plan("EXPLAIN QUERY PLAN SELECT * FROM serial_anomalies WHERE serial = 'SN-1'").await;
            let one = one.join("\n");
            assert!(!one.contains("SCAN e") && !one.contains("SCAN serial_events"), "{one}");
            assert!(one.contains("serial_events_by_serial (serial=?"), "{one}");
            let all = plan("EXPLAIN QUERY PLAN SELECT * FROM serial_anomalies").await;
            let at = |needle: &str| {
                all.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle}: {all:?}"))
            };
            assert!(at("SCAN p") < at("SEARCH k"), "the kinds loop inside the findings: {all:?}");
        }
        audit::store::Backend::Postgres => {
            let plan =
                strings(&store, "EXPLAIN SELECT * FROM serial_anomalies WHERE serial = 'SN-1' AND $1 = $1", "").await;
            let plan = plan.join("\n");
            assert!(!plan.contains("Seq Scan on serial_events"), "{plan}");
            assert!(plan.contains("Index Cond: (serial = 'SN-1'::text)"), "{plan}");
        }
    }
}
}

/// A document of any type with its date, as `documents` keeps it.
async fn insert_document(store: &Store, doc: &str, doc_date: &str, party: Option<&str>) {
    const SQL: &str = "INSERT INTO documents (company_id, doc_type, doc_id, doc_number, doc_date, party_id, raw, \
         first_seen_at, first_run_id, changed_at, changed_run_id, last_seen_at, last_seen_run_id) \
         VALUES ($1, $2, $3, $3, $4, $5, '{}', $6, 1, $6, 1, $6, 1)";
    macro_rules! run {
        ($pool:expr) => {
            sqlx::query(SQL)
                .bind(COMPANY)
                .bind(doc_type(doc))
                .bind(doc)
                .bind(time(doc_date))
                .bind(party)
                .bind(time("2026-01-01"))
                .execute($pool)
                .await
                .unwrap()
                .rows_affected()
        };
    }
    match store.sqlite_pool() {
        Some(pool) => run!(pool),
        None => run!(store.postgres_pool().unwrap()),
    };
}

both_backends! {
/// `--since` chooses which findings are shown by when they started; the findings themselves are
/// judged on the whole history. A removal after the date whose receipt came before it is plain.
async fn since_filters_the_findings_not_the_history(db: TestDb) {
    let store = db.store().await;
    #[rustfmt::skip]
    insert_events(&store, &[
        // Received before the date, sold after it: nothing wrong.
        ("PLAIN", "p", "PO-1", "received", "2025-01-01", "L1", "", false),
        ("PLAIN", "p", "SO-1", "picked", "2025-07-01", "L1", "", false),
        // Received and adjusted out before the date, picked after it: out twice, from the pick.
        ("OUT", "p", "PO-2", "received", "2025-01-01", "L1", "", false),
        ("OUT", "p", "SA-1", "adjusted_out", "2025-02-01", "L1", "", false),
        ("OUT", "p", "SO-2", "picked", "2025-07-01", "L1", "", false),
        // Went wrong before the date: not shown with it.
        ("OLD", "p", "SO-3", "picked", "2025-02-01", "L1", "", false),
    ]).await;
    let (code, rows, stderr) = anomalies(&db, &["--since", "2025-06-01"]);
    assert_eq!(code, 1, "{stderr}");
    let found: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r["serial"].as_str().unwrap().to_string(), r["kind"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(found, pairs(&[("OUT", "out_twice")]), "{rows:?}");
    assert_eq!(rows[0]["earlier_event_type"], "adjusted_out", "the evidence reaches before the date");
    assert_eq!(kinds_found(&db).await, pairs(&[("OLD", "appeared_from_nowhere"), ("OUT", "out_twice")]));
}
}

both_backends! {
/// A snapshot is compared with what it could know: events dated after it are news to it, not
/// disagreements; what had happened by then still is one.
async fn a_snapshot_is_compared_with_the_history_up_to_its_time(db: TestDb) {
    let store = db.store().await;
    // The snapshot completes on 2026-02-01.
    #[rustfmt::skip]
    insert_events(&store, &[
        // On hand at L1 when the snapshot was taken; sold, moved and received since.
        ("SOLD", "p", "PO-1", "received", "2025-01-01", "L1", "", false),
        ("SOLD", "p", "SO-1", "picked", "2026-03-01", "L1", "", false),
        ("MOVED", "p", "PO-2", "received", "2025-01-01", "L1", "", false),
        ("MOVED", "p", "ST-1", "transfer_sent", "2026-03-01", "L1", "", false),
        ("MOVED", "p", "ST-1", "transfer_received", "2026-03-02", "L2", "", false),
        // Not yet in stock when the snapshot was taken, received since.
        ("LATER", "p", "PO-3", "received", "2026-03-01", "L1", "", false),
        // A real disagreement from before the snapshot: sold, yet on hand.
        ("GONE", "p", "PO-4", "received", "2025-01-01", "L1", "", false),
        ("GONE", "p", "SO-2", "picked", "2025-06-01", "L1", "", false),
        // Received after the snapshot yet on hand in it: nothing the snapshot knew brought it in.
        ("EARLY", "p", "PO-5", "received", "2026-03-01", "L1", "", false),
    ]).await;
    #[rustfmt::skip]
    insert_snapshot(&store, &[
        ("p", "SOLD", "L1", "", 1.0),
        ("p", "MOVED", "L1", "", 1.0),
        ("p", "GONE", "L1", "", 1.0),
        ("p", "EARLY", "L1", "", 1.0),
    ]).await;
    let got = strings(
        &store,
        "SELECT serial || ':' || kind FROM serial_stock_disagreements WHERE $1 = $1 ORDER BY serial",
        "",
    )
    .await;
    assert_eq!(got, ["EARLY:never_in_documents", "GONE:on_hand_but_history_gone"]);
    let (_, rows, _) = anomalies(&db, &["--kind", "history_and_stock_disagree"]);
    let mut serials: Vec<&str> = rows.iter().map(|r| r["serial"].as_str().unwrap()).collect();
    serials.sort();
    assert_eq!(serials, ["EARLY", "GONE"]);
    let (code, stdout, stderr) = tokio::task::block_in_place(|| {
        run_audit(&db.url_string(), &["reconcile", "--format", "json", "--company-id", COMPANY], &[])
    });
    assert_eq!(code, 1, "{stderr}");
    let listed: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed.len(), 2, "{stdout}");
}
}

both_backends! {
/// A transfer dated in the future neither ages the others nor is stuck itself; days in transit
/// are counted to the newest document that is not in the future, and never below zero.
async fn transit_is_aged_by_the_newest_document_not_in_the_future(db: TestDb) {
    let store = db.store().await;
    let future = (chrono::Utc::now() + chrono::Duration::days(400)).format("%Y-%m-%d").to_string();
    #[rustfmt::skip]
    insert_events(&store, &[
        // Sent ten days before the newest (past) document.
        ("RECENT", "p", "PO-1", "received", "2025-01-01", "L1", "", false),
        ("RECENT", "p", "ST-1", "transfer_sent", "2025-03-01", "L1", "", false),
        // Sent on a transfer typed with a date more than a year ahead.
        ("AHEAD", "p", "PO-2", "received", "2025-01-01", "L1", "", false),
        ("AHEAD", "p", "ST-2", "transfer_sent", future.as_str(), "L1", "", false),
        // Sent long before: stuck.
        ("STUCK", "p", "PO-3", "received", "2024-01-01", "L1", "", false),
        ("STUCK", "p", "ST-3", "transfer_sent", "2024-06-01", "L1", "", false),
    ]).await;
    for (doc, date) in
        [("PO-1", "2025-01-01"), ("ST-1", "2025-03-01"), ("ST-2", future.as_str()), ("ST-3", "2024-06-01")]
    {
        insert_document(&store, doc, date, None).await;
    }
    insert_document(&store, "SO-1", "2025-03-11", None).await;
    let (_, rows, _) = anomalies(&db, &["--kind", "stuck_in_transit", "--transit-days", "0"]);
    let days: std::collections::BTreeMap<&str, i64> =
        rows.iter().map(|r| (r["serial"].as_str().unwrap(), r["days_in_transit"].as_i64().unwrap())).collect();
    assert_eq!(days.get("RECENT"), Some(&10), "{rows:?}");
    assert_eq!(days.get("STUCK"), Some(&283), "{rows:?}");
    assert_eq!(days.get("AHEAD"), None, "zero days, not negative: {rows:?}");
    let all = strings(
        &store,
        "SELECT serial || ':' || CAST(days_in_transit AS TEXT) FROM serial_anomaly_findings \
         WHERE kind = 'stuck_in_transit' AND $1 = $1 ORDER BY serial",
        "",
    )
    .await;
    assert_eq!(all, ["AHEAD:0", "RECENT:10", "STUCK:283"]);
    assert_eq!(kinds_found(&db).await, pairs(&[("STUCK", "stuck_in_transit")]));
}
}

both_backends! {
/// sold_twice needs two known customers that differ: an order without one proves nothing.
async fn sold_twice_needs_two_known_customers(db: TestDb) {
    let store = db.store().await;
    #[rustfmt::skip]
    insert_events(&store, &[
        ("NONE", "p", "SO-1", "sold", "2025-01-02", "L1", "", false),
        ("NONE", "p", "SO-2", "sold", "2025-01-03", "L1", "", false),
        ("ONE", "p", "SO-3", "sold", "2025-01-02", "L1", "", false),
        ("ONE", "p", "SO-4", "sold", "2025-01-03", "L1", "", false),
        ("TWO", "p", "SO-5", "sold", "2025-01-02", "L1", "", false),
        ("TWO", "p", "SO-6", "sold", "2025-01-03", "L1", "", false),
    ]).await;
    for (doc, party) in [("SO-1", None), ("SO-2", None), ("SO-3", Some("A")), ("SO-4", None), ("SO-5", Some("A"))] {
        insert_document(&store, doc, "2025-01-01", party).await;
    }
    insert_document(&store, "SO-6", "2025-01-01", Some("B")).await;
    assert_eq!(kinds_found(&db).await, pairs(&[("TWO", "sold_twice")]));
}
}
