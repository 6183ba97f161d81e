//! Manufacturing orders and stock counts against the simulator, on SQLite and Postgres: the
//! events and genealogy of the planted builds, `audit timeline` and `--tree`, the recall query,
//! counts with serials found and missing in both ways an account may treat them, and the
//! simulator switches (refused `sheets.lines`, the newer put-line fields).

mod common;

use audit::mapping::DocType;
use common::*;
use inflow_simulator::{Scale, SimConfig, Simulator};
use serde_json::Value;

/// A clean company (no planted faults) with the given switches, without rate limits.
async fn clean(config: SimConfig) -> Simulator {
    Simulator::start(SimConfig { data_faults: false, rate_limit: None, scale: Scale::Small, ..config })
        .await
        .expect("start simulator")
}

fn audit_json(db: &TestDb, args: &[&str]) -> Value {
    let (code, stdout, stderr) = tokio::task::block_in_place(|| run_audit(&db.url_string(), args, &[]));
    assert_eq!(code, 0, "audit {args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn audit_text(db: &TestDb, args: &[&str]) -> String {
    let (code, stdout, stderr) = tokio::task::block_in_place(|| run_audit(&db.url_string(), args, &[]));
    assert_eq!(code, 0, "audit {args:?}: {stderr}");
    stdout
}

/// The one history of a serial in `audit timeline --format json`.
fn history(db: &TestDb, serial: &str) -> Value {
    let v = audit_json(db, &["timeline", serial, "--format", "json"]);
    let histories = v["histories"].as_array().unwrap();
    assert_eq!(histories.len(), 1, "{v}");
    histories[0].clone()
}

fn events(h: &Value) -> Vec<(String, String, i64)> {
    h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap().to_string(),
                e["doc_number"].as_str().unwrap().to_string(),
                e["quantity_delta"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn strs(v: &Value, key: &str) -> Vec<String> {
    v.as_array().unwrap().iter().map(|x| x[key].as_str().unwrap_or_default().to_string()).collect()
}

both_backends! {
async fn a_component_is_consumed_and_linked_to_the_unit_it_went_into(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let store = db.store().await;
    ingest(&store, &sim).await;
    let chain = sim.scenario().build_chain;
    let (po, mo1) = (&chain.component.documents[0].number, &chain.component.documents[1].number);
    let h = history(&db, &chain.component.serial);
    assert_eq!(events(&h), [("received".to_string(), po.clone(), 1), ("consumed".into(), mo1.clone(), -1)], "{h}");
    assert_eq!(h["now"]["status"], "consumed");
    assert_eq!(h["now"]["doc_number"], mo1.as_str());
    let built: Vec<(String, String)> = h["built_into"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["finished_serial"].as_str().unwrap().to_string(), r["doc_number"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(built, [(chain.subassembly.serial.clone(), mo1.clone())]);
    assert_eq!(h["built_into"][0]["matched_to"], "unit");
    assert_eq!(h["built_into"][0]["finished_product_id"], chain.subassembly.product_id.as_str());
    assert!(h["components"].as_array().unwrap().is_empty());
    // The table says it in words.
    let text = audit_text(&db, &["timeline", &chain.component.serial, "--format", "table"]);
    assert!(text.contains(&format!("built into {} (", chain.subassembly.serial)) && text.contains(mo1), "{text}");
    assert!(text.contains("consumed from") && text.contains("by manufacturing order"), "{text}");

    // A component of an order still in progress is consumed; its unit is pending, not in stock.
    let sc = sim.scenario();
    let h = history(&db, &sc.build_in_progress_component.serial);
    assert_eq!(h["now"]["status"], "consumed");
    assert_eq!(h["built_into"][0]["finished_serial"], sc.build_in_progress_unit.serial.as_str());
    assert!(h["built_into"][0]["built_at"].is_null());
    let text = audit_text(&db, &["timeline", &sc.build_in_progress_component.serial, "--format", "table"]);
    assert!(text.contains("not completed yet: inProgress"), "{text}");
    let unit = history(&db, &sc.build_in_progress_unit.serial);
    assert_eq!(strs(&unit["events"], "event_type"), ["build_planned", "production_pending"]);
    assert_eq!(unit["now"]["status"], "never_stocked");
}
}

both_backends! {
async fn a_finished_unit_is_produced_with_its_components(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let store = db.store().await;
    ingest(&store, &sim).await;
    let chain = sim.scenario().build_chain;
    let (mo2, so) = (&chain.unit.documents[0].number, &chain.unit.documents[1].number);
    let h = history(&db, &chain.unit.serial);
    let got = events(&h);
    assert_eq!(got[0], ("build_planned".to_string(), mo2.clone(), 0), "{got:?}");
    assert_eq!(got[1], ("produced".to_string(), mo2.clone(), 1), "{got:?}");
    assert!(got[2..].iter().all(|e| &e.1 == so), "then sold on its sales order: {got:?}");
    assert_eq!(h["now"]["status"], "with_customer");
    // Its components: the board (itself built from the chip) and the case.
    let components = &h["components"];
    assert_eq!(components.as_array().unwrap().len(), 2, "{components}");
    assert!(strs(components, "component_serial").contains(&chain.subassembly.serial));
    assert!(strs(components, "doc_number").iter().all(|d| d == mo2));
    assert!(components[0]["built_at"].is_string());
    let text = audit_text(&db, &["timeline", &chain.unit.serial, "--format", "table"]);
    assert!(text.contains("contains 2 components: ") && text.contains(&chain.subassembly.serial), "{text}");
    // The subassembly was produced by one order and consumed by the next.
    let h = history(&db, &chain.subassembly.serial);
    let mo1 = &chain.subassembly.documents[0].number;
    assert_eq!(
        events(&h).into_iter().filter(|e| e.2 != 0).collect::<Vec<_>>(),
        [("produced".to_string(), mo1.clone(), 1), ("consumed".into(), mo2.clone(), -1)]
    );
}
}

both_backends! {
async fn a_two_level_build_is_traced_by_tree(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let store = db.store().await;
    ingest(&store, &sim).await;
    let chain = sim.scenario().build_chain;
    // Up from the chip: the board, then the laptop.
    let v = audit_json(&db, &["timeline", &chain.component.serial, "--tree", "--format", "json"]);
    let tree = &v["trees"][0];
    assert!(tree["components"].as_array().unwrap().is_empty());
    let up = &tree["built_into"];
    assert_eq!(up[0]["serial"], chain.subassembly.serial.as_str(), "{v}");
    assert_eq!(up[0]["children"][0]["serial"], chain.unit.serial.as_str(), "{v}");
    assert_eq!(up[0]["children"][0]["doc_number"], chain.unit.documents[0].number.as_str());
    // Down from the laptop: the board (and the chip in it) and the case.
    let v = audit_json(&db, &["timeline", &chain.unit.serial, "--tree", "--format", "json"]);
    let down = &v["trees"][0]["components"];
    let board = down.as_array().unwrap().iter().find(|n| n["serial"] == chain.subassembly.serial.as_str()).unwrap();
    assert_eq!(strs(&board["children"], "serial"), std::slice::from_ref(&chain.component.serial));
    assert_eq!(down.as_array().unwrap().len(), 2);
    assert!(v["trees"][0]["built_into"].as_array().unwrap().is_empty());
    // The table draws it.
    let text = audit_text(&db, &["timeline", &chain.unit.serial, "--tree", "--format", "table"]);
    let board_line = text.lines().position(|l| l.contains(&chain.subassembly.serial)).expect(&text);
    let chip_line = text.lines().position(|l| l.contains(&chain.component.serial)).expect(&text);
    assert!(chip_line == board_line + 1, "the chip under the board:\n{text}");
    let indent = |i: usize| text.lines().nth(i).unwrap().find(|c: char| c.is_alphanumeric()).unwrap();
    assert!(indent(chip_line) > indent(board_line), "{text}");
    // CSV: one row per link with its level.
    let csv = audit_text(&db, &["timeline", &chain.component.serial, "--tree", "--format", "csv"]);
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.lines().nth(2).unwrap().contains(",built_into,2,"), "{csv}");
    // The SQL file gives the same tree both ways.
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/sql/genealogy.sql");
    let param = format!("serial={}", chain.subassembly.serial);
    let rows = audit_json(&db, &["sql", "--format", "json", "--file", file, "--param", &param]);
    let rows: Vec<(String, i64, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["direction"].as_str().unwrap().into(),
                r["level"].as_i64().unwrap(),
                r["serial"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("component".to_string(), 1, chain.component.serial.clone()),
            ("built_into".into(), 1, chain.unit.serial.clone())
        ]
    );
    // An unknown serial has no tree.
    let (code, _, stderr) =
        tokio::task::block_in_place(|| run_audit(&db.url_string(), &["timeline", "NO-SUCH-1", "--tree"], &[]));
    assert_eq!(code, 1, "{stderr}");
}
}

both_backends! {
async fn the_recall_query_reaches_the_customer_of_a_finished_unit_from_a_components_po(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let store = db.store().await;
    ingest(&store, &sim).await;
    let chain = sim.scenario().build_chain;
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/sql/recall.sql");
    let param = format!("po_number={}", chain.component.documents[0].number);
    let rows = audit_json(&db, &["sql", "--format", "json", "--file", file, "--param", &param]);
    let rows = rows.as_array().unwrap();
    let mine: Vec<&Value> = rows.iter().filter(|r| r["serial"] == chain.component.serial.as_str()).collect();
    let levels: Vec<(i64, &str, &str)> = mine
        .iter()
        .map(|r| (r["level"].as_i64().unwrap(), r["unit_serial"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        levels,
        [
            (0, chain.component.serial.as_str(), "consumed"),
            (1, chain.subassembly.serial.as_str(), "consumed"),
            (2, chain.unit.serial.as_str(), "with_customer")
        ]
    );
    let unit = mine[2];
    assert_eq!(unit["customer_id"], chain.customer_id.as_str());
    assert!(!chain.customer_id.is_empty());
    assert_eq!(unit["built_on"], chain.unit.documents[0].number.as_str());
    assert_eq!(unit["last_document"], chain.unit.documents[1].number.as_str());
    assert!(mine[0]["customer_id"].is_null() && mine[0]["received_at"].is_string());
}
}

/// The current (event type, quantity delta) of a serial's events on one document type.
async fn on_doc(store: &audit::store::Store, serial: &str, doc_type: &str) -> Vec<(String, i64)> {
    let sql = "SELECT event_type || ':' || CAST(quantity_delta AS TEXT) FROM serial_events \
               WHERE retracted_at IS NULL AND serial || '|' || doc_type = $1 ORDER BY event_type";
    strings(store, sql, &format!("{serial}|{doc_type}"))
        .await
        .into_iter()
        .map(|s| {
            let (t, d) = s.split_once(':').unwrap();
            (t.to_string(), d.parse().unwrap())
        })
        .collect()
}

fn reconcile(db: &TestDb) -> (i32, Value) {
    let (code, stdout, stderr) =
        tokio::task::block_in_place(|| run_audit(&db.url_string(), &["reconcile", "--format", "json"], &[]));
    (code, serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}")))
}

async fn counts_add_and_remove_serials_without_double_counting(listed: bool, db: TestDb) {
    let sim = clean(SimConfig { count_adjustments: listed, ..SimConfig::default() }).await;
    let s = sim.scenario();
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest", "--snapshot"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let store = db.store().await;
    let count = &s.count_missing.documents[1].number;
    let missing = history(&db, &s.count_missing.serial);
    assert_eq!(missing["now"]["status"], "missing", "{missing}");
    assert_eq!(missing["now"]["doc_number"], count.as_str());
    assert_eq!(missing["events"].as_array().unwrap().last().unwrap()["on_hand"], 0);
    let found = history(&db, &s.count_found.serial);
    let mut expected = vec!["counted", "count_found"];
    if listed {
        expected.push("adjusted_by_count");
    }
    assert_eq!(strs(&found["events"], "event_type"), expected);
    assert_eq!(found["now"]["status"], "in_stock");
    let at = s.count_found.on_hand.as_ref().unwrap();
    assert_eq!(found["now"]["location_id"], at.location_id.as_str());
    assert_eq!(found["now"]["sublocation"], at.sublocation.as_str());

    // The adjustments a count makes: listed or not, the difference counts once.
    let by_count = count_rows(&store, "adjusted_by_count").await;
    let adjustment_moves = on_doc(&store, &s.count_missing.serial, "stock_adjustment").await;
    if listed {
        assert!(by_count > 0);
        assert_eq!(adjustment_moves, [("adjusted_by_count".to_string(), 0)]);
    } else {
        assert_eq!(by_count, 0);
        assert!(adjustment_moves.is_empty());
    }
    assert_eq!(on_doc(&store, &s.count_missing.serial, "stock_count").await, [("count_missing".to_string(), -1)]);
    // Against inFlow's stock: no disagreement at all (the data is clean).
    let (code, found) = reconcile(&db);
    assert_eq!(found, Value::Array(Vec::new()));
    assert_eq!(code, 0);
    // Deriving everything again changes nothing.
    let before = stored_events(&store).await;
    let (code, _, stderr) = run_cli(&db, &sim, &["rebuild"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stored_events(&store).await, before);
    assert_eq!(count_rows(&store, "rederived").await + count_rows(&store, "rebuilt").await, 0);
}

async fn count_rows(store: &audit::store::Store, what: &str) -> i64 {
    let sql = "SELECT (SELECT count(*) FROM serial_events WHERE retracted_at IS NULL AND event_type = $1) \
               + (SELECT count(*) FROM document_changes WHERE change = $1)";
    let rows: Vec<i64> = with_pool!(store, pool => sqlx::query_scalar(sql).bind(what).fetch_all(pool).await.unwrap());
    rows[0]
}

both_backends! {
async fn counts_without_listed_adjustments(db: TestDb) {
    counts_add_and_remove_serials_without_double_counting(false, db).await
}
}

both_backends! {
async fn counts_with_listed_adjustments(db: TestDb) {
    counts_add_and_remove_serials_without_double_counting(true, db).await
}
}

both_backends! {
async fn a_count_that_arrives_after_its_adjustment_still_counts_once(db: TestDb) {
    let sim = clean(SimConfig { count_adjustments: true, ..SimConfig::default() }).await;
    let s = sim.scenario();
    let store = db.store().await;
    // The adjustments first (a run limited to them, or a database from before counts were read).
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest", "--types", "stock-adjustments"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let alone = on_doc(&store, &s.count_missing.serial, "stock_adjustment").await;
    assert_eq!(alone, [("adjusted_out".to_string(), -1)], "without its count, the adjustment moves the stock");
    // Then everything: the count's events arrive and the adjustment is derived again.
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest", "--snapshot"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        on_doc(&store, &s.count_missing.serial, "stock_adjustment").await,
        [("adjusted_by_count".to_string(), 0)]
    );
    assert!(count_rows(&store, "rederived").await > 0);
    let (code, found) = reconcile(&db);
    assert_eq!((code, found), (0, Value::Array(Vec::new())));
    // The same events as a database that read the counts first.
    let fresh = TestDb::sqlite().await;
    let (code, _, _) = run_cli(&fresh, &sim, &["ingest"], &[]);
    assert_eq!(code, 0);
    assert_eq!(stored_events(&store).await.0, stored_events(&fresh.store().await).await.0);
    // A count cancelled later: its adjustment is the only record left, and moves the stock again.
    let count = &s.count_missing.documents[1].id;
    sim.cancel("stock-counts", count).unwrap();
    ingest(&db.store().await, &sim).await;
    assert!(on_doc(&store, &s.count_missing.serial, "stock_count").await.is_empty());
    assert_eq!(on_doc(&store, &s.count_missing.serial, "stock_adjustment").await, [("adjusted_out".to_string(), -1)]);
}
}

both_backends! {
async fn a_list_that_refuses_the_sheet_lines_gets_them_by_id(db: TestDb) {
    let sim = clean(SimConfig { refuse_sheet_lines: true, ..SimConfig::default() }).await;
    let store = db.store().await;
    let summary = ingest(&store, &sim).await;
    assert!(summary.streams.iter().all(|s| s.complete));
    let (stored, rows) = stored_events(&store).await;
    assert_eq!(rows, stored.len());
    assert_eq!(stored, expected_events(&sim), "the same events as with sheets.lines");
    let requests = sim.requests();
    let counts: Vec<_> = requests.iter().filter(|r| r.endpoint == "stock-counts").collect();
    let include = |r: &inflow_simulator::RequestRecord| {
        r.query.iter().find(|(k, _)| k == "include").map(|(_, v)| v.clone()).unwrap_or_default()
    };
    assert_eq!((counts[0].status, include(counts[0]).as_str()), (400, "sheets,sheets.lines"));
    assert!(counts[1..].iter().all(|r| r.status == 200 && include(r) == "sheets"), "{counts:?}");
    // One request per sheet of each count not cancelled, with its lines.
    let sheets: usize = sim
        .documents("stock-counts")
        .iter()
        .filter(|c| c["isCancelled"] == false)
        .map(|c| c["sheets"].as_array().unwrap().len())
        .sum();
    let by_id: Vec<_> = requests.iter().filter(|r| r.endpoint == "count-sheets").collect();
    assert_eq!(by_id.len(), sheets);
    assert!(by_id.iter().all(|r| r.status == 200 && include(r) == "lines"));
    // The stored count is whole: rebuilding it derives nothing new.
    let before = stored_events(&store).await;
    audit::sync::rebuild(&store, &sim.company_id(), &audit::sync::Quiet, &audit::sync::StopFlag::default()).await.unwrap();
    assert_eq!(stored_events(&store).await, before);
}
}

async fn genealogy_rows(store: &audit::store::Store) -> Vec<String> {
    strings(
        store,
        "SELECT component_serial || '>' || finished_serial || '@' || doc_number || ':' || matched_to || ':' || \
         COALESCE(CAST(built_at AS TEXT), '-') FROM genealogy_links WHERE $1 = $1 \
         ORDER BY component_serial, finished_serial, doc_number",
        "",
    )
    .await
}

both_backends! {
async fn put_lines_with_or_without_their_dates_and_lines_give_the_same_genealogy(db: TestDb) {
    let sim = clean(SimConfig::default()).await;
    let store = db.store().await;
    ingest(&store, &sim).await;
    let plain = genealogy_rows(&store).await;
    assert!(plain.len() > 10, "{plain:?}");
    assert!(plain.iter().any(|l| l.contains(":order:")), "orders without pick matchings link at order level");
    assert!(plain.iter().any(|l| l.contains(":line:")), "a line building two units");
    let events = stored_events(&store).await;
    // The newer shape: put lines name their order line and carry a put date.
    let newer = clean(SimConfig { newer_manufacturing_fields: true, ..SimConfig::default() }).await;
    assert!(newer.documents("manufacturing-orders").iter().any(|d| d["putLines"][0]["putDate"].is_string()));
    let other = TestDb::sqlite().await;
    let other_store = other.store().await;
    ingest(&other_store, &newer).await;
    // Orders whose units each have their own put line are as precise; the events are the same
    // (the put date is the completed date here).
    assert_eq!(stored_events(&other_store).await.0, events.0);
    let newer_rows = genealogy_rows(&other_store).await;
    assert_eq!(newer_rows.len(), plain.len());
    assert_eq!(
        newer_rows.iter().map(|l| l.split(':').next().unwrap()).collect::<Vec<_>>(),
        plain.iter().map(|l| l.split(':').next().unwrap()).collect::<Vec<_>>()
    );

    // Cancelled or deleted orders leave the genealogy and their events are retracted.
    let chain = sim.scenario().build_chain;
    let mo1 = &chain.subassembly.documents[0];
    sim.cancel("manufacturing-orders", &mo1.id).unwrap();
    let mo2 = &chain.unit.documents[0];
    sim.delete("manufacturing-orders", &mo2.id).unwrap();
    ingest(&store, &sim).await;
    let rows = genealogy_rows(&store).await;
    assert!(rows.iter().all(|l| !l.contains(&mo1.number) && !l.contains(&mo2.number)), "{rows:?}");
    assert_eq!(rows.len(), plain.len() - 3, "one chip in the board, the board and a case in the laptop");
    assert!(on_doc(&store, &chain.component.serial, "manufacturing_order").await.is_empty());
    let h = history(&db, &chain.component.serial);
    assert_eq!(h["now"]["status"], "in_stock");
    assert!(h["built_into"].as_array().unwrap().is_empty());
}
}

both_backends! {
async fn status_types_and_window_know_the_new_streams(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest", "--types", "manufacturing-orders,stock-counts"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let streams: Vec<String> = sim.requests().iter().map(|r| r.endpoint.clone()).collect();
    assert!(
        streams.iter().all(|s| ["locations", "manufacturing-orders", "stock-counts", "products"].contains(&s.as_str()))
    );
    let status = audit_json(&db, &["status", "--format", "json"]);
    let company = &status["companies"][0];
    let listed: Vec<String> = strs(&company["streams"], "stream");
    assert_eq!(listed, DocType::ALL.iter().map(|t| t.stream().to_string()).collect::<Vec<_>>());
    let counts = sim.counts();
    let held = |name: &str| {
        company["streams"].as_array().unwrap().iter().find(|s| s["stream"] == name).unwrap()["documents"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(held("manufacturing-orders"), counts["manufacturing-orders"] as i64);
    assert_eq!(held("stock-counts"), counts["stock-counts"] as i64);
    let expected_cost = 1 + walk_cost(counts["manufacturing-orders"]) + walk_cost(counts["stock-counts"]) + 4;
    assert_eq!(company["cost"]["complete"], expected_cost as i64);
    // A window filters manufacturing orders by their order date, not the counts.
    sim.clear_requests();
    let (code, _, stderr) =
        run_cli(&db, &sim, &["ingest", "--types", "manufacturing-orders,stock-counts", "--window", "30d"], &[]);
    assert_eq!(code, 0, "{stderr}");
    for r in sim.requests() {
        let filtered = r.query.iter().any(|(k, _)| k == "filter[orderDate]");
        assert_eq!(filtered, r.endpoint == "manufacturing-orders", "{r:?}");
    }
}
}

both_backends! {
async fn a_server_refusing_both_the_keyset_and_the_sheet_lines_still_gives_every_event(db: TestDb) {
    let sim = clean(SimConfig { refuse_sheet_lines: true, reject_keyset: true, ..SimConfig::default() }).await;
    let store = db.store().await;
    let summary = ingest(&store, &sim).await;
    assert!(summary.streams.iter().all(|s| s.complete), "{:?}", summary.streams);
    assert_exactly_once(&store, &sim).await;
    // The counts came with the smaller include, each sheet fetched by id.
    let pages: Vec<_> =
        sim.requests().into_iter().filter(|r| r.endpoint == "stock-counts" && r.status == 200).collect();
    assert!(!pages.is_empty());
    assert!(pages.iter().all(|r| r.query.iter().any(|(k, v)| k == "include" && v == "sheets")), "{pages:?}");
    assert!(sim.count_requests("count-sheets") > 0);
}
}

/// A walk resumed after a saved id, on a server that refuses both `after` and `sheets.lines`:
/// the smaller include is tried first, then (the saved document still existing) the paging
/// falls back, and the walk asks for the full include again before it settles on the smaller one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_tells_a_refused_include_from_refused_paging() {
    use audit::inflow::walk::{ListSpec, Paging, Position, Walk};
    let sim = clean(SimConfig { refuse_sheet_lines: true, reject_keyset: true, ..SimConfig::default() }).await;
    let client = client_for(&sim);
    let spec = ListSpec {
        path: "stock-counts",
        id_field: "stockCountId",
        include: Some(DocType::StockCount.includes()),
        fallback_include: DocType::StockCount.fallback_includes(),
        filters: Vec::new(),
    };
    let counts = sim.documents("stock-counts");
    let saved = counts[0]["stockCountId"].as_str().unwrap().to_string();
    let mut walk = Walk::new(&client, spec, Position::After(Some(saved)));
    let page = walk.next_page().await.expect("a page in the end");
    assert_eq!(page.items.len(), counts.len());
    assert!(page.last, "one short page, proven the end by its count");
    assert!(walk.include_fell_back());
    assert_eq!(walk.paging(), Paging::KeysetUnsorted, "the keyset with `sort` was given up");
    let tried: Vec<(&str, u16, bool, bool)> = sim
        .requests()
        .iter()
        .map(|r| {
            let has =
                |key: &str, value: Option<&str>| r.query.iter().any(|(k, v)| k == key && value.is_none_or(|x| v == x));
            let by_id = if r.document_id.is_none() { "list" } else { "by id" };
            (by_id, r.status, has("after", None), has("include", Some("sheets")))
        })
        .collect();
    // (list or by id, status, keyset cursor, smaller include): both refused; the smaller include,
    // still with the cursor; the saved document exists, so the paging falls back and starts over
    // with everything; then the smaller include.
    assert_eq!(
        tried,
        [
            ("list", 400, true, false),
            ("list", 400, true, true),
            ("by id", 200, false, false),
            ("list", 400, false, false),
            ("list", 200, false, true)
        ]
    );
}
