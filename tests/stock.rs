//! Stock snapshots, `audit lookup` and `audit reconcile` against the simulator, on SQLite and
//! Postgres.

mod common;

use std::collections::BTreeSet;

use common::*;
use inflow_simulator::{Scale, SimConfig, Simulator};
use serde_json::Value;

type StockKey = (String, String, String, String, i64);

/// The simulator's serial inventory lines, as (product, serial, location, sublocation, qty×10⁴).
fn inventory(sim: &Simulator) -> BTreeSet<StockKey> {
    let mut out = BTreeSet::new();
    for p in sim.products() {
        if p["trackSerials"] != true {
            continue;
        }
        for l in p["inventoryLines"].as_array().into_iter().flatten() {
            let Some(serial) = l["serial"].as_str().filter(|s| !s.is_empty()) else { continue };
            let qty: f64 = l["quantityOnHand"].as_str().unwrap().parse().unwrap();
            out.insert((
                l["productId"].as_str().unwrap().to_string(),
                serial.to_string(),
                l["locationId"].as_str().unwrap().to_string(),
                l["sublocation"].as_str().unwrap_or("").to_string(),
                (qty * 10_000.0).round() as i64,
            ));
        }
    }
    out
}

async fn latest_stock(store: &audit::store::Store) -> BTreeSet<StockKey> {
    const SQL: &str = "SELECT product_id, serial, COALESCE(location_id, ''), COALESCE(sublocation, ''), quantity_on_hand \
                       FROM serial_stock_latest";
    let rows: Vec<(String, String, String, String, f64)> =
        with_pool!(store, pool => sqlx::query_as(SQL).fetch_all(pool).await.unwrap());
    rows.into_iter().map(|(a, b, c, d, q)| (a, b, c, d, (q * 10_000.0).round() as i64)).collect()
}

fn serialized_products(sim: &Simulator) -> usize {
    sim.products().iter().filter(|p| p["trackSerials"] == true).count()
}

both_backends! {
async fn a_snapshot_stores_exactly_the_serial_inventory_lines(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let (code, stdout, stderr) = run_cli(&db, &sim, &["snapshot"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("complete"), "{stdout}");
    let store = db.store().await;
    let expected = inventory(&sim);
    assert!(expected.len() > 20, "{}", expected.len());
    assert_eq!(latest_stock(&store).await, expected);
    // ceil(P/100) product pages for P serialized products (+1 at a multiple of 100), all with
    // the serial filter and the inventory lines; locations once, since none were known.
    let products: Vec<_> = sim.requests().into_iter().filter(|r| r.endpoint == "products").collect();
    assert_eq!(products.len(), walk_cost(serialized_products(&sim)));
    for r in &products {
        assert_eq!(r.param("filter[trackSerials]"), Some("true"), "{r:?}");
        assert_eq!(r.param("include"), Some("inventoryLines"), "{r:?}");
        assert_eq!(r.param("count"), Some("100"));
    }
    assert_eq!(sim.requests().len(), products.len() + 1);

    // A second snapshot is a new set; the first stays queryable.
    sim.clear_requests();
    let (code, _, _) = run_cli(&db, &sim, &["snapshot"], &[]);
    assert_eq!(code, 0);
    assert!(sim.requests().iter().all(|r| r.endpoint == "products"), "locations are known now");
    assert_eq!(count(&store, "SELECT count(*) FROM stock_snapshots WHERE completed_at IS NOT NULL").await, 2);
    let per_snapshot =
        strings(&store, "SELECT CAST(count(*) AS TEXT) FROM serial_stock WHERE $1 = $1 GROUP BY snapshot_id", "").await;
    assert_eq!(per_snapshot, vec![expected.len().to_string(); 2]);
}
}

both_backends! {
async fn a_stopped_snapshot_resumes_into_the_same_set(db: TestDb) {
    let sim = simulator(Scale::Orders(20_000)).await;
    assert!(serialized_products(&sim) > 100, "needs two pages of products");
    // Locations, then the first page of products.
    let (code, stdout, _) = run_cli(&db, &sim, &["snapshot", "--max-requests", "2"], &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("stopped at --max-requests"), "{stdout}");
    let store = db.store().await;
    assert_eq!(count(&store, "SELECT count(*) FROM stock_snapshots WHERE completed_at IS NOT NULL").await, 0);
    assert!(latest_stock(&store).await.is_empty(), "an unfinished snapshot is not the latest");
    sim.clear_requests();
    let (code, stdout, _) = run_cli(&db, &sim, &["snapshot"], &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("(resumed) complete"), "{stdout}");
    let first = sim.requests().into_iter().find(|r| r.endpoint == "products").unwrap();
    assert!(first.param("after").is_some(), "resumed after the first page: {first:?}");
    assert_eq!(count(&store, "SELECT count(*) FROM stock_snapshots").await, 1);
    assert_eq!(latest_stock(&store).await, inventory(&sim));
}
}

both_backends! {
/// A snapshot whose walk starts the products over (keyset refused on the second page, pages
/// capped at 3, stopped and resumed in skip paging): the same set, nothing doubled.
async fn a_snapshot_that_starts_over_or_pages_by_skip_stores_each_line_once(db: TestDb) {
    use inflow_simulator::Behaviour;
    let sim = Simulator::start(SimConfig {
        rate_limit: None,
        reject_keyset: true,
        behaviour: Behaviour { page_cap: Some(3), ..Behaviour::DEFAULT },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    assert!(serialized_products(&sim) > 12, "several capped pages: {}", serialized_products(&sim));
    // The locations (walked to their end through the same fallbacks), then for the products:
    // a keyset page, the second refused, its cursor checked, the same without sort, then skip
    // pages, stopped part-way.
    let (code, stdout, stderr) =
        run_cli(&db, &sim, &["snapshot", "--max-requests", "17", "--time-scale", "0.001"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("stopped at --max-requests"), "{stdout}");
    let store = db.store().await;
    let saved = strings(&store, "SELECT walk_position FROM sync_state WHERE stream = $1", "stock").await;
    assert!(saved[0].starts_with("skip:"), "{saved:?}");
    let (code, stdout, stderr) = run_cli(&db, &sim, &["snapshot", "--time-scale", "0.001"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("(resumed) complete"), "{stdout}");
    let rows = count(&store, "SELECT count(*) FROM serial_stock").await;
    let expected = inventory(&sim);
    assert_eq!(rows as usize, expected.len(), "no line twice");
    assert_eq!(latest_stock(&store).await, expected);
    let products = count(&store, "SELECT CAST(products AS BIGINT) FROM stock_snapshots").await;
    assert_eq!(products as usize, serialized_products(&sim), "no product counted twice");
}
}

fn lookup(db: &TestDb, args: &[&str]) -> (i32, Vec<Value>) {
    let mut all = vec!["lookup", "--format", "json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = tokio::task::block_in_place(|| run_audit(&db.url_string(), &all, &[]));
    (code, serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}")))
}

both_backends! {
async fn lookup_answers_for_on_hand_sold_unknown_and_shared_serials(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest", "--snapshot"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let s = sim.scenario();
    let on_hand = &s.full_lifecycle;
    let two = s.two_products.as_ref().unwrap();
    let (sold, shelf) = (&two.stories[0], &two.stories[1]);

    let (code, rows) = lookup(&db, &[&on_hand.serial, &two.serial, "NO-SUCH-SERIAL"]);
    assert_eq!(code, 1, "an unknown serial makes the exit status 1");
    let of = |serial: &str| rows.iter().filter(|r| r["serial"] == serial).cloned().collect::<Vec<_>>();

    let r = of(&on_hand.serial);
    assert_eq!(r.len(), 1);
    let at = on_hand.on_hand.as_ref().unwrap();
    assert_eq!((r[0]["found"].clone(), r[0]["on_hand"].clone()), (Value::Bool(true), Value::Bool(true)));
    assert_eq!(r[0]["product_id"], on_hand.product_id.as_str());
    assert_eq!(r[0]["location_id"], at.location_id.as_str());
    assert_eq!(r[0]["sublocation"], at.sublocation.as_str());
    assert!(r[0]["location_name"].is_string() && r[0]["snapshot_at"].is_string());
    assert_eq!(r[0]["history_status"], "in_stock");
    assert_eq!(r[0]["last_event"], "restocked");
    assert_eq!(r[0]["last_doc_number"], on_hand.documents[2].number.as_str());

    // One serial string, two products: one sold, one on the shelf.
    let r = of(&two.serial);
    assert_eq!(r.len(), 2, "{r:?}");
    let sold_row = r.iter().find(|x| x["product_id"] == sold.product_id.as_str()).unwrap();
    assert_eq!(sold_row["on_hand"], false);
    assert!(sold_row["location_id"].is_null());
    assert_eq!(sold_row["history_status"], "with_customer");
    assert_eq!(sold_row["last_event"], "shipped");
    let shelf_row = r.iter().find(|x| x["product_id"] == shelf.product_id.as_str()).unwrap();
    assert_eq!(shelf_row["on_hand"], true);
    assert_eq!(shelf_row["location_id"], shelf.on_hand.as_ref().unwrap().location_id.as_str());

    let r = of("NO-SUCH-SERIAL");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["found"], false);
    assert!(r[0]["product_id"].is_null());

    // Many at once from a file (or stdin), as CSV; all known: exit 0.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("serials.txt");
    std::fs::write(&file, format!("{}\n\n{}\r\n", on_hand.serial, two.serial)).unwrap();
    let path = file.display().to_string();
    let (code, csv_out, stderr) = tokio::task::block_in_place(|| {
        run_audit(&db.url_string(), &["lookup", "--file", &path, "--format", "csv"], &[])
    });
    assert_eq!(code, 0, "{stderr}");
    let mut reader = csv::Reader::from_reader(csv_out.as_bytes());
    assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), audit::commands::lookup::CSV_COLUMNS);
    assert_eq!(reader.records().count(), 3);
}
}

fn reconcile(db: &TestDb) -> (i32, Vec<Value>) {
    let (code, stdout, stderr) =
        tokio::task::block_in_place(|| run_audit(&db.url_string(), &["reconcile", "--format", "json"], &[]));
    (code, serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}")))
}

both_backends! {
async fn reconcile_finds_each_planted_disagreement_by_kind(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest", "--snapshot"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let (code, found) = reconcile(&db);
    assert_eq!(code, 1);
    let s = sim.scenario();
    let planted = [
        (&s.never_in_documents, "never_in_documents"),
        (&s.on_hand_without_receipt, "on_hand_without_receipt"),
        (&s.gone_but_history_on_hand, "gone_but_history_on_hand"),
        (&s.different_location, "different_location"),
        (&s.on_hand_in_two_locations, "on_hand_in_two_locations"),
        (&s.sold_twice, "negative_on_hand"),
        (&s.adjusted_out_then_sold, "negative_on_hand"),
        (&s.shipped_never_received, "negative_on_hand"),
    ];
    let mut expected: Vec<(String, String)> =
        planted.iter().map(|(story, kind)| (story.as_ref().unwrap().serial.clone(), kind.to_string())).collect();
    expected.sort();
    let mut got: Vec<(String, String)> = found
        .iter()
        .map(|d| (d["serial"].as_str().unwrap().to_string(), d["kind"].as_str().unwrap().to_string()))
        .collect();
    got.sort();
    assert_eq!(got, expected, "exactly the planted disagreements, each by its kind");
    let moved = found.iter().find(|d| d["kind"] == "different_location").unwrap();
    let at = s.different_location.as_ref().unwrap().on_hand.clone().unwrap();
    assert_eq!(moved["inflow"][0]["location_id"], at.location_id.as_str());
    assert_ne!(moved["history_location_id"], at.location_id.as_str());
    assert_eq!(moved["history_status"], "in_stock");
    let twice = found.iter().find(|d| d["kind"] == "on_hand_in_two_locations").unwrap();
    assert_eq!(twice["inflow"].as_array().unwrap().len(), 2);
    let (code, csv_out, _) =
        tokio::task::block_in_place(|| run_audit(&db.url_string(), &["reconcile", "--format", "csv"], &[]));
    assert_eq!(code, 1);
    // One row per place inFlow has the serial at, each value in a column of its own.
    let rows: usize = found.iter().map(|d| d["inflow"].as_array().unwrap().len().max(1)).sum();
    assert_eq!(csv_out.lines().count(), rows + 1);
    let location_name = |id: &str| -> String {
        let l = sim.locations().into_iter().find(|l| l["locationId"] == id).expect("a simulator location");
        l["name"].as_str().unwrap().to_string()
    };
    let mut reader = csv::Reader::from_reader(csv_out.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(header, audit::commands::reconcile::CSV_COLUMNS);
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let col = |r: &csv::StringRecord, name: &str| r[header.iter().position(|h| h == name).unwrap()].to_string();
    let row = records.iter().find(|r| col(r, "kind") == "different_location").unwrap();
    assert_eq!(col(row, "inflow_location_id"), at.location_id);
    assert_eq!(col(row, "inflow_location_name"), location_name(&at.location_id));
    assert_eq!(col(row, "inflow_quantity"), "1");
    let history_id = col(row, "history_location_id");
    assert_eq!(col(row, "history_location_name"), location_name(&history_id));
    assert_eq!(records.iter().filter(|r| col(r, "kind") == "on_hand_in_two_locations").count(), 2);
    // The table names the locations; their GUIDs are left to JSON and CSV.
    let (_, table, _) =
        tokio::task::block_in_place(|| run_audit(&db.url_string(), &["reconcile", "--format", "table"], &[]));
    assert!(table.contains(&location_name(&at.location_id)), "{table}");
    assert!(!table.contains(at.location_id.as_str()), "{table}");
}
}

both_backends! {
async fn reconcile_finds_nothing_on_a_clean_company(db: TestDb) {
    let sim =
        Simulator::start(SimConfig { data_faults: false, rate_limit: None, ..SimConfig::default() }).await.unwrap();
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest", "--snapshot"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let (code, found) = reconcile(&db);
    assert_eq!(found, Vec::<Value>::new());
    assert_eq!(code, 0);
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_without_a_snapshot_says_what_to_do() {
    let db = TestDb::sqlite().await;
    let sim = simulator(Scale::Small).await;
    ingest(&db.store().await, &sim).await;
    let (code, _, stderr) = run_cli(&db, &sim, &["reconcile"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no complete snapshot") && stderr.contains("audit snapshot"), "{stderr}");
}
