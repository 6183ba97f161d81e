//! The query side on ingested simulator data, on SQLite and Postgres: `audit timeline`, the
//! views, every file in `sql/`, `audit sql`'s read-only guard, and `audit demo`.

mod common;

use common::*;
use inflow_simulator::{Scale, SerialStory, Simulator};
use serde_json::Value;

/// A simulated company ingested into `db`.
async fn ingested(db: &TestDb) -> (Simulator, audit::store::Store) {
    let sim = simulator(Scale::Small).await;
    let store = db.store().await;
    ingest(&store, &sim).await;
    (sim, store)
}

fn timeline_json(db: &TestDb, serial: &str) -> Value {
    let (code, stdout, stderr) =
        tokio::task::block_in_place(|| run_audit(&db.url_string(), &["timeline", serial, "--format", "json"], &[]));
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).expect("timeline JSON")
}

fn sql_json(db: &TestDb, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["sql", "--format", "json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = tokio::task::block_in_place(|| run_audit(&db.url_string(), &all, &[]));
    assert_eq!(code, 0, "audit {all:?}: {stderr}");
    serde_json::from_str::<Vec<Value>>(&stdout).expect("sql JSON")
}

/// Checks one history's events field by field against a planted story.
fn check_story(history: &Value, story: &SerialStory, steps: &[(&str, &str, i64)], status: &str) {
    assert_eq!(history["serial"], story.serial.as_str());
    assert_eq!(history["product_id"], story.product_id.as_str());
    assert!(history["product_name"].is_string(), "{history}");
    let events = history["events"].as_array().unwrap();
    let got: Vec<(&str, &str, i64)> = events
        .iter()
        .map(|e| (e["event_type"].as_str().unwrap(), e["doc_number"].as_str().unwrap(), e["on_hand"].as_i64().unwrap()))
        .collect();
    assert_eq!(got, steps, "{}", story.serial);
    let numbers: Vec<&str> = story.documents.iter().map(|d| d.number.as_str()).collect();
    let mut seen: Vec<&str> = Vec::new();
    for (_, doc, _) in &got {
        if !seen.contains(doc) {
            seen.push(doc);
        }
    }
    assert_eq!(seen, numbers, "documents in the order of the story");
    for e in events {
        assert_eq!(e["serial"], story.serial.as_str());
        assert_eq!(e["retracted"], false);
        assert!(e["retracted_at"].is_null());
        assert!(e["event_id"].as_i64().unwrap() > 0);
        assert!(e["observed_at"].is_string() && e["run_id"].as_i64() == Some(1));
        let delta = e["quantity_delta"].as_i64().unwrap();
        let expected_delta = match e["event_type"].as_str().unwrap() {
            "received" | "restocked" | "adjusted_in" | "transfer_received" => 1,
            "picked" | "unstocked" | "adjusted_out" | "transfer_sent" => -1,
            _ => 0,
        };
        assert_eq!(delta, expected_delta, "{e}");
        if e["event_type"] != "shipped" && e["event_type"] != "packed" {
            assert!(e["location_id"].is_string() && e["location_name"].is_string(), "{e}");
            assert!(e["occurred_at"].as_str().unwrap().ends_with('Z'), "{e}");
        }
    }
    assert_eq!(history["now"]["status"], status, "{}", history["now"]);
    if let Some(on_hand) = &story.on_hand {
        assert_eq!(history["now"]["location_id"], on_hand.location_id.as_str());
        assert_eq!(history["now"]["sublocation"], on_hand.sublocation.as_str());
    }
}

both_backends! {
async fn timelines_tell_every_planted_story(db: TestDb) {
    let (sim, _store) = ingested(&db).await;
    let s = sim.scenario();
    let only = |v: Value| -> Value {
        let histories = v["histories"].as_array().unwrap();
        assert_eq!(histories.len(), 1, "{v}");
        histories[0].clone()
    };

    let full = &s.full_lifecycle;
    let (po, st, so) = (&full.documents[0].number, &full.documents[1].number, &full.documents[2].number);
    check_story(
        &only(timeline_json(&db, &full.serial)),
        full,
        &[
            ("received", po, 1),
            ("transfer_sent", st, 0),
            ("transfer_received", st, 1),
            ("sold", so, 1),
            ("picked", so, 0),
            ("shipped", so, 0),
            ("customer_return", so, 0),
            ("restocked", so, 1),
        ],
        "in_stock",
    );
    let h = only(timeline_json(&db, &full.serial));
    assert!(h["now"]["summary"].as_str().unwrap().starts_with("in stock at "), "{}", h["now"]);
    assert_eq!(h["now"]["event_type"], "restocked");
    assert_eq!(h["now"]["doc_number"], so.as_str());

    let vr = &s.vendor_return;
    let po = &vr.documents[0].number;
    check_story(
        &only(timeline_json(&db, &vr.serial)),
        vr,
        &[("received", po, 1), ("vendor_return", po, 1), ("unstocked", po, 0)],
        "returned_to_vendor",
    );

    let ao = &s.adjusted_out;
    let (po, sa) = (&ao.documents[0].number, &ao.documents[1].number);
    check_story(
        &only(timeline_json(&db, &ao.serial)),
        ao,
        &[("received", po, 1), ("adjusted_out", sa, 0)],
        "adjusted_out",
    );

    let ot = &s.on_open_transfer;
    let (po, st) = (&ot.documents[0].number, &ot.documents[1].number);
    check_story(
        &only(timeline_json(&db, &ot.serial)),
        ot,
        &[("received", po, 1), ("transfer_requested", st, 1)],
        "in_stock",
    );

    let it = &s.in_transit;
    let (po, st) = (&it.documents[0].number, &it.documents[1].number);
    check_story(
        &only(timeline_json(&db, &it.serial)),
        it,
        &[("received", po, 1), ("transfer_sent", st, 0)],
        "in_transit",
    );

    // One serial string under two products: two histories, grouped, each with its own story.
    let two = s.two_products.as_ref().unwrap();
    let v = timeline_json(&db, &two.serial);
    let histories = v["histories"].as_array().unwrap();
    assert_eq!(histories.len(), 2, "{v}");
    let mut products: Vec<&str> = histories.iter().map(|h| h["product_id"].as_str().unwrap()).collect();
    products.sort();
    let mut expected: Vec<&str> = two.product_ids.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(products, expected);
    for story in &two.stories {
        let h = histories.iter().find(|h| h["product_id"] == story.product_id.as_str()).unwrap();
        assert_eq!(h["events"][0]["event_type"], "received");
        assert_eq!(h["events"][0]["doc_number"], story.documents[0].number.as_str());
        let status = if story.on_hand.is_some() { "in_stock" } else { "with_customer" };
        assert_eq!(h["now"]["status"], status, "{}", h["now"]);
    }
}
}

both_backends! {
async fn timeline_formats_agree(db: TestDb) {
    let (sim, _store) = ingested(&db).await;
    let serial = sim.scenario().full_lifecycle.serial;
    let json = timeline_json(&db, &serial);
    let events = json["histories"][0]["events"].as_array().unwrap().clone();

    let (code, csv_out, _) =
        tokio::task::block_in_place(|| run_audit(&db.url_string(), &["timeline", &serial, "--format", "csv"], &[]));
    assert_eq!(code, 0);
    let mut reader = csv::Reader::from_reader(csv_out.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(header, audit::commands::timeline::CSV_COLUMNS);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), events.len());
    for (row, e) in rows.iter().zip(&events) {
        let col = |name: &str| &row[header.iter().position(|h| h == name).unwrap()];
        assert_eq!(col("event_id"), e["event_id"].to_string());
        assert_eq!(col("event_type"), e["event_type"].as_str().unwrap());
        assert_eq!(col("doc_number"), e["doc_number"].as_str().unwrap());
        assert_eq!(col("on_hand"), e["on_hand"].to_string());
        assert_eq!(col("occurred_at"), e["occurred_at"].as_str().unwrap_or(""));
        assert_eq!(col("party_name"), e["party_name"].as_str().unwrap_or(""));
    }
    // The sales order's customer by name, as inFlow's customer list has it.
    let shipped = events.iter().find(|e| e["event_type"] == "shipped").expect("a shipped event");
    let customer = sim
        .documents("customers")
        .into_iter()
        .find(|c| c["customerId"] == shipped["party_id"])
        .map(|c| c["name"].as_str().unwrap().to_string())
        .expect("the order's customer is listed");
    assert_eq!(shipped["party_name"], customer.as_str());

    let (code, table, _) =
        tokio::task::block_in_place(|| run_audit(&db.url_string(), &["timeline", &serial, "--format", "table"], &[]));
    assert_eq!(code, 0);
    let first_line = table.lines().next().unwrap();
    assert!(
        first_line.starts_with(&serial)
            && first_line.contains(json["histories"][0]["now"]["summary"].as_str().unwrap()),
        "{table}"
    );
    assert!(table.contains(&format!(" to {customer}")), "the table names the customer: {table}");
    let mut at = 0;
    for e in &events {
        let pos = table[at..].find(e["event_type"].as_str().unwrap()).expect("each event in order") + at;
        at = pos;
    }
}
}

both_backends! {
async fn an_unknown_serial_exits_1_and_suggests_close_matches(db: TestDb) {
    let (sim, store) = ingested(&db).await;
    let serial = sim.scenario().full_lifecycle.serial;
    let typed = format!("  {}", serial.to_lowercase());
    let (code, stdout, stderr) =
        tokio::task::block_in_place(|| run_audit(&db.url_string(), &["timeline", &typed], &[]));
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("is not in the audit trail") && stderr.contains(&format!("did you mean \"{serial}\"")),
        "{stderr}"
    );
    let prefix = &serial[..serial.len() - 1];
    let (code, _, stderr) = tokio::task::block_in_place(|| run_audit(&db.url_string(), &["timeline", prefix], &[]));
    assert_eq!(code, 1);
    assert!(stderr.contains(&serial), "a prefix suggests the serials it starts: {stderr}");
    let (code, _, stderr) =
        tokio::task::block_in_place(|| run_audit(&db.url_string(), &["timeline", "NOTHING-LIKE-IT"], &[]));
    assert_eq!(code, 1);
    assert!(!stderr.contains("did you mean"), "{stderr}");
    // A serial whose every event is retracted is not suggested as a match for itself.
    let gone = sim.scenario().adjusted_out.serial;
    exec_with(&store, "UPDATE serial_events SET retracted_at = observed_at WHERE serial = $1", &[&gone]).await;
    let (code, _, stderr) = tokio::task::block_in_place(|| run_audit(&db.url_string(), &["timeline", &gone], &[]));
    assert_eq!(code, 1);
    assert!(stderr.contains("only retracted events") && stderr.contains("--all"), "{stderr}");
    assert!(!stderr.contains(&format!("did you mean \"{gone}\"")), "{stderr}");
    let (code, _, _) = tokio::task::block_in_place(|| run_audit(&db.url_string(), &["timeline", &gone, "--all"], &[]));
    assert_eq!(code, 0);
}
}

both_backends! {
async fn serial_current_agrees_with_the_timeline(db: TestDb) {
    let (sim, _store) = ingested(&db).await;
    let s = sim.scenario();
    for story in [&s.full_lifecycle, &s.vendor_return, &s.adjusted_out, &s.on_open_transfer, &s.in_transit] {
        let timeline = timeline_json(&db, &story.serial);
        let rows = sql_json(
            &db,
            &[&format!(
                "SELECT status, location_id, sublocation, doc_number FROM serial_current WHERE serial = '{}'",
                story.serial
            )],
        );
        assert_eq!(rows.len(), 1);
        let now = &timeline["histories"][0]["now"];
        assert_eq!(rows[0]["status"], now["status"], "{}", story.serial);
        assert_eq!(rows[0]["location_id"], now["location_id"]);
        assert_eq!(rows[0]["sublocation"], now["sublocation"]);
        assert_eq!(rows[0]["doc_number"], now["doc_number"]);
    }
}
}

both_backends! {
async fn an_undated_receipt_does_not_outrank_a_later_movement(db: TestDb) {
    let (_sim, store) = ingested(&db).await;
    // A serial ordered and received on one PO, then picked for a customer.
    let candidates = strings(
        &store,
        "SELECT r.serial FROM serial_events r \
         JOIN serial_events o ON o.doc_id = r.doc_id AND o.serial = r.serial AND o.event_type = 'ordered' \
         JOIN serial_events p ON p.serial = r.serial AND p.event_type = 'picked' AND p.occurred_at > r.occurred_at \
         WHERE r.event_type = 'received' AND $1 = $1 ORDER BY r.serial",
        "",
    )
    .await;
    let serial = candidates.first().expect("the simulated company has such a serial").clone();
    // A receipt whose receive date inFlow did not give: it takes its PO's order date.
    exec_with(
        &store,
        "UPDATE serial_events SET occurred_at = NULL WHERE serial = $1 AND event_type = 'received'",
        &[&serial],
    )
    .await;
    let timeline = timeline_json(&db, &serial);
    let events = timeline["histories"][0]["events"].as_array().unwrap();
    let received = events.iter().position(|e| e["event_type"] == "received").unwrap();
    assert!(events[received]["occurred_at"].is_null());
    // The status comes from the latest event that sets one (V10): later than the receipt.
    let last_status = events.iter().rev().find(|e| !e["status_after"].is_null()).unwrap();
    assert_ne!(last_status["event_type"], "received", "a later event follows the receipt: {timeline}");
    let now = &timeline["histories"][0]["now"];
    assert_eq!(now["event_type"], last_status["event_type"], "the header follows the table: {timeline}");
    assert_eq!(now["last_event"], events.last().unwrap()["event_type"]);
    let rows = sql_json(&db, &[&format!("SELECT status, last_event FROM serial_current WHERE serial = '{serial}'")]);
    assert_eq!(rows[0]["status"], now["status"]);
    assert_eq!(rows[0]["last_event"], now["last_event"]);
}
}

both_backends! {
async fn every_sql_file_answers_its_question(db: TestDb) {
    let (sim, store) = ingested(&db).await;
    let s = sim.scenario();
    let full = &s.full_lifecycle;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/sql");
    let mut checked = Vec::new();
    let mut run = |file: &str, params: &[(&str, &str)]| -> Vec<Value> {
        checked.push(file.to_string());
        let path = format!("{dir}/{file}");
        let mut args = vec!["--file".to_string(), path];
        for (k, v) in params {
            args.push("--param".into());
            args.push(format!("{k}={v}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sql_json(&db, &args)
    };

    let rows = run("customer_of_serial.sql", &[("serial", &full.serial)]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["sales_order"], full.documents[2].number.as_str());
    assert!(
        rows[0]["customer_id"].is_string() && rows[0]["shipped_at"].is_string() && rows[0]["returned_at"].is_string(),
        "{rows:?}"
    );

    // Names, not only GUIDs: the customer's as inFlow's customer list has it.
    let name_of = |list: &str, id_field: &str, id: &Value| -> Value {
        let found = sim.documents(list).into_iter().find(|p| &p[id_field] == id);
        found.map(|p| p["name"].clone()).unwrap_or(Value::Null)
    };
    let customer = name_of("customers", "customerId", &rows[0]["customer_id"]);
    assert!(customer.is_string(), "the simulator lists the order's customer: {rows:?}");
    assert_eq!(rows[0]["customer_name"], customer, "{rows:?}");

    let rows = run("purchase_of_serial.sql", &[("serial", &full.serial)]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["purchase_order"], full.documents[0].number.as_str());
    assert!(rows[0]["vendor_id"].is_string() && rows[0]["location_name"].is_string(), "{rows:?}");
    let vendor = name_of("vendors", "vendorId", &rows[0]["vendor_id"]);
    assert!(vendor.is_string(), "the simulator lists the order's vendor: {rows:?}");
    assert_eq!(rows[0]["vendor_name"], vendor, "{rows:?}");

    let rows = run("recall.sql", &[("po_number", &full.documents[0].number)]);
    let mine = rows
        .iter()
        .find(|r| r["serial"] == full.serial.as_str() && r["level"] == 0)
        .expect("the serial is on its PO's recall list");
    assert_eq!(mine["status"], "in_stock");
    assert_eq!(mine["last_event"], "restocked");
    assert_eq!(mine["unit_serial"], full.serial.as_str(), "level 0 is the serial itself");
    // Through manufacturing: the component's PO reaches the unit built from it, and its customer.
    let chain = &s.build_chain;
    let rows = run("recall.sql", &[("po_number", &chain.component.documents[0].number)]);
    let unit = rows.iter().find(|r| r["unit_serial"] == chain.unit.serial.as_str()).expect("the finished unit");
    assert_eq!((unit["level"].as_i64(), unit["customer_id"].as_str()), (Some(2), Some(chain.customer_id.as_str())));
    let unit_customer = name_of("customers", "customerId", &unit["customer_id"]);
    assert!(unit_customer.is_string() && unit["customer_name"] == unit_customer, "{unit:?}");
    // From the component serial itself: the same chain, the same columns.
    let rows = run("recall_serial.sql", &[("serial", &chain.component.serial)]);
    let levels: Vec<(i64, &str, &str)> = rows
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
    assert_eq!(rows[2]["customer_id"], chain.customer_id.as_str());
    assert_eq!(rows[2]["customer_name"], unit_customer);
    assert!(rows[0]["received_at"].is_string(), "the component's receipt: {rows:?}");

    let rows = run("genealogy.sql", &[("serial", &chain.unit.serial)]);
    let mut tree: Vec<(String, i64, String)> = rows
        .iter()
        .map(|r| {
            (
                r["direction"].as_str().unwrap().into(),
                r["level"].as_i64().unwrap(),
                r["serial"].as_str().unwrap().into(),
            )
        })
        .collect();
    tree.sort();
    let mut expected = vec![
        ("component".to_string(), 1, chain.subassembly.serial.clone()),
        ("component".into(), 2, chain.component.serial.clone()),
    ];
    expected.push((
        "component".into(),
        1,
        tree.iter().find(|t| t.1 == 1 && t.2 != chain.subassembly.serial).unwrap().2.clone(),
    ));
    expected.sort();
    assert_eq!(tree, expected, "the board (and its chip) and the case");
    let vr = &s.vendor_return;
    let rows = run("recall.sql", &[("po_number", &vr.documents[0].number)]);
    assert_eq!(rows.iter().find(|r| r["serial"] == vr.serial.as_str()).unwrap()["status"], "returned_to_vendor");

    let rows = run("on_hand_by_location.sql", &[]);
    let total: i64 = rows.iter().map(|r| r["serials"].as_i64().unwrap()).sum();
    assert_eq!(total, count(&store, "SELECT count(*) FROM serial_current WHERE status = 'in_stock'").await);
    assert!(total > 0);

    let rows = run("time_in_stock.sql", &[]);
    let ao = &s.adjusted_out;
    let days = rows.iter().find(|r| r["serial"] == ao.serial.as_str()).expect("adjusted-out serial was in stock once")
        ["days_in_stock"]
        .as_f64()
        .unwrap();
    let tl = timeline_json(&db, &ao.serial);
    let at = |i: usize| {
        chrono::DateTime::parse_from_rfc3339(tl["histories"][0]["events"][i]["occurred_at"].as_str().unwrap()).unwrap()
    };
    let expected = (at(1) - at(0)).num_seconds() as f64 / 86400.0;
    assert!((days - expected).abs() < 0.06, "{days} vs {expected}");

    let received = timeline_json(&db, &full.serial)["histories"][0]["events"][0]["occurred_at"].as_str().unwrap()[..10]
        .to_string();
    let next_day =
        (chrono::NaiveDate::parse_from_str(&received, "%Y-%m-%d").unwrap() + chrono::Days::new(1)).to_string();
    let rows = run("moved_between.sql", &[("from", &received), ("to", &next_day)]);
    assert!(rows.iter().any(|r| r["serial"] == full.serial.as_str() && r["event_type"] == "received"), "{rows:?}");
    assert!(rows.iter().all(|r| r["quantity_delta"] != 0));

    let rows = run("changed_since.sql", &[("since", "2000-01-01")]);
    assert_eq!(rows.len() as i64, count(&store, "SELECT count(*) FROM documents").await, "every document is new once");
    assert!(rows.iter().all(|r| r["change"] == "new"));

    // Where on a day: today's answer is serial_current's; before the first event, nothing.
    let rows = run("where_on_date.sql", &[("serial", full.serial.as_str()), ("on", "2999-01-01")]);
    let current = sql_json(&db, &[&format!("SELECT status, location_name FROM serial_current WHERE serial = '{}'", full.serial)]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((&rows[0]["status"], &rows[0]["location_name"]), (&current[0]["status"], &current[0]["location_name"]));
    assert!(run("where_on_date.sql", &[("serial", full.serial.as_str()), ("on", "2000-01-01")]).is_empty());

    // Every file in sql/ was run here (pairs count once, through their common name).
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".sql"))
        .map(|f| f.replace(".sqlite.sql", ".sql").replace(".postgres.sql", ".sql"))
        .collect();
    files.sort();
    files.dedup();
    checked.sort();
    checked.dedup();
    assert_eq!(files, checked, "each sql/ file needs a known answer here");
}
}

both_backends! {
async fn audit_sql_refuses_writes_and_changes_nothing(db: TestDb) {
    let (_sim, store) = ingested(&db).await;
    let before = stored_events(&store).await;
    let runs = count(&store, "SELECT count(*) FROM ingest_runs").await;
    for statement in [
        "INSERT INTO ingest_runs (company_id, command, status, started_at) VALUES ('x', 'x', 'x', '2025-01-01')",
        "UPDATE serial_events SET serial = 'X'",
        "DELETE FROM serial_events",
        "DROP TABLE serial_events",
        // Passes the first-keyword look: only the database's read-only mode stops it.
        "WITH doomed AS (SELECT 1) DELETE FROM serial_events",
        "SELECT 1; DELETE FROM serial_events",
        // A quote inside a [..] identifier must not hide the `;` (SQLite would run all three).
        "SELECT 1 AS [a']; VACUUM INTO 'copy.db'; SELECT 1 AS [']",
        "SELECT pg_terminate_backend(0)",
    ] {
        let (code, stdout, stderr) =
            tokio::task::block_in_place(|| run_audit(&db.url_string(), &["sql", statement], &[]));
        assert_eq!(code, 2, "{statement} must be refused: {stdout}");
        // (Postgres reads the `[a']` case as one statement with a string in it: a syntax error.)
        let refused = ["refused", "read-only", "readonly", "one statement at a time", "refuses", "syntax error"];
        assert!(refused.iter().any(|r| stderr.contains(r)), "{statement}: {stderr}");
    }
    assert_eq!(stored_events(&store).await, before);
    assert_eq!(count(&store, "SELECT count(*) FROM ingest_runs").await, runs);
    // Reading works, with parameters as literals.
    let rows =
        sql_json(&db, &["SELECT count(*) AS n FROM serial_events WHERE event_type = :t", "--param", "t=received"]);
    assert!(rows[0]["n"].as_i64().unwrap() > 0);
    // No rows: the CSV still has its header.
    let (code, csv, stderr) = tokio::task::block_in_place(|| {
        run_audit(
            &db.url_string(),
            &["sql", "SELECT serial, event_type FROM serial_events WHERE serial = 'none'", "--format", "csv"],
            &[],
        )
    });
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(csv.trim(), "serial,event_type");
}
}

#[test]
fn the_demo_runs_end_to_end_and_again_incrementally() {
    let dir = tempfile::tempdir().unwrap();
    let demo = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_audit"))
            .arg("demo")
            .current_dir(dir.path())
            .env_remove("AUDIT_DATABASE_URL")
            .output()
            .unwrap()
    };
    let started = std::time::Instant::now();
    let first = demo();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(out.contains("Run 1 succeeded") && out.contains("in stock at") && out.contains("restocked"), "{out}");
    assert!(out.contains("Next, try:"), "{out}");
    assert!(dir.path().join("audit-demo.db").exists());
    let second = demo();
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success());
    assert!(out.contains("Run 2 succeeded") && out.contains(" 0 events added, 0 retracted"), "{out}");
}

#[test]
fn reading_commands_do_not_create_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audti.db");
    let url = format!("sqlite://{}", path.display());
    for args in [&["sql", "SELECT 1"][..], &["timeline", "SN-1"], &["status"], &["lookup", "SN-1"], &["reconcile"]] {
        let (code, stdout, stderr) = run_audit(&url, args, &[]);
        assert_eq!(code, 2, "{args:?}: {stdout}");
        assert!(stderr.contains("there is no audit database at") && stderr.contains("audti.db"), "{stderr}");
        assert!(!path.exists(), "{args:?} created {}", path.display());
    }
}

both_backends! {
/// Issue 15, point 9: one definition of where a serial stands. For every serial of the
/// simulated company, `serial_current` (and so `recall.sql`, reconcile and the anomalies) and
/// `audit timeline`'s "now" say the same status, last event, date, place and document; the data
/// covers every status, including picked and not shipped.
async fn every_status_reads_the_same_in_the_view_and_the_timeline(db: TestDb) {
    let (sim, store) = ingested(&db).await;
    let view = sql_json(
        &db,
        &["SELECT company_id, product_id, serial, status, last_event, since, location_id, doc_number \
           FROM serial_current ORDER BY serial"],
    );
    assert!(view.len() > 100, "{} serials", view.len());
    let mut statuses = std::collections::BTreeSet::new();
    for row in &view {
        let serial = row["serial"].as_str().unwrap();
        let events = store.serial_events(serial, &audit::store::query::EventFilter::default()).await.unwrap();
        let histories = audit::timeline::histories(events);
        let h = histories
            .iter()
            .find(|h| h.company_id == row["company_id"] && h.product_id.as_deref() == row["product_id"].as_str())
            .unwrap_or_else(|| panic!("{serial}: no history for {row}"));
        let now = &h.now;
        let label = format!("{serial}: view {row}, timeline {now:?}");
        assert_eq!(now.status.as_str(), row["status"], "{label}");
        assert_eq!(now.last_event.as_deref(), row["last_event"].as_str(), "{label}");
        assert_eq!(now.location_id.as_deref(), row["location_id"].as_str(), "{label}");
        assert_eq!(now.doc_number.as_deref(), row["doc_number"].as_str(), "{label}");
        let since = row["since"].as_str().map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc());
        assert_eq!(now.since, since, "{label}");
        statuses.insert(now.status.as_str());
    }
    let all = [
        "adjusted_out",
        "consumed",
        "in_stock",
        "in_transit",
        "missing",
        "never_stocked",
        "picked",
        "returned_to_vendor",
        "with_customer",
    ];
    assert_eq!(statuses.into_iter().collect::<Vec<_>>(), all, "the data covers every status");
    sim.shutdown().await;
}
}

/// Issue 15, point 1: at 80 columns the timeline fits: the summary wraps at spaces, the
/// document shows its number alone, and only the location wraps; without a width (a pipe)
/// rows stay whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_fits_an_80_column_terminal() {
    let db = TestDb::sqlite().await;
    let (sim, _store) = ingested(&db).await;
    let serial = "SN-000382";
    let run = |env: &[(&str, &str)]| {
        let (code, stdout, stderr) = tokio::task::block_in_place(|| {
            run_audit(&db.url_string(), &["timeline", serial, "--format", "table"], env)
        });
        assert_eq!(code, 0, "{stderr}");
        stdout
    };
    let narrow = run(&[("COLUMNS", "80")]);
    assert!(narrow.lines().all(|l| l.trim_end().chars().count() <= 80), "{narrow}");
    assert!(narrow.contains(" PO-0") && !narrow.contains("purchase order PO-"), "{narrow}");
    assert!(narrow.lines().any(|l| l.contains("received") && l.contains("+1")), "rows keep their cells: {narrow}");
    let whole = run(&[]);
    assert!(whole.contains("purchase order PO-"), "{whole}");
    assert!(whole.lines().any(|l| l.trim_end().chars().count() > 80), "no width, no wrapping: {whole}");
    sim.shutdown().await;
}

both_backends! {
/// Issue 15, point 10: a company filter never hides data silently. An unknown company is an
/// error naming where the filter came from and what the database holds; a serial hidden by the
/// filter says which company has it.
async fn company_filters_say_what_they_hide(db: TestDb) {
    let (sim, store) = ingested(&db).await;
    let other = inflow_simulator::Simulator::start(inflow_simulator::SimConfig {
        seed: 8,
        scale: inflow_simulator::Scale::Orders(5),
        rate_limit: None,
        ..Default::default()
    })
    .await
    .unwrap();
    ingest(&store, &other).await;
    let (first, second) = (sim.company_id(), other.company_id());
    let run =
        |args: &[&str], env: &[(&str, &str)]| tokio::task::block_in_place(|| run_audit(&db.url_string(), args, env));

    for args in [&["status"][..], &["timeline", "SN-000382"], &["anomalies"], &["reconcile"], &["lookup", "SN-000382"]]
    {
        let (code, stdout, stderr) = run(args, &[("INFLOW_COMPANY_ID", "nope")]);
        assert_eq!(code, 2, "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains("company nope (from INFLOW_COMPANY_ID) is not in this database"), "{args:?}: {stderr}");
        assert!(stderr.contains(&first) && stderr.contains(&second), "it names what the database holds: {stderr}");
    }
    let (code, _, stderr) = run(&["status", "--company-id", "nope"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("company nope (from --company-id)"), "{stderr}");
    let (code, _, stderr) = run(&["status", "--company-id", &first.to_uppercase()], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains(&format!("did you mean {first}?")), "{stderr}");

    let only_first = strings(
        &store,
        "SELECT serial FROM serial_events e WHERE company_id = $1 AND NOT EXISTS \
         (SELECT 1 FROM serial_events o WHERE o.serial = e.serial AND o.company_id <> e.company_id) \
         ORDER BY serial LIMIT 1",
        &first,
    )
    .await;
    let serial = only_first[0].as_str();
    let (code, _, stderr) = run(&["timeline", serial], &[("INFLOW_COMPANY_ID", &second)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("it is recorded for company {first}, which INFLOW_COMPANY_ID {second} hides")),
        "{stderr}"
    );
    let (code, _, stderr) = run(&["timeline", serial], &[("INFLOW_COMPANY_ID", &first)]);
    assert_eq!(code, 0, "{stderr}");
    other.shutdown().await;
    sim.shutdown().await;
}
}

/// The README lists the CSV columns of `timeline` and `reconcile` as the program writes them.
#[test]
fn the_readme_lists_the_csv_columns() {
    let readme = include_str!("../README.md").split_whitespace().collect::<Vec<_>>().join(" ");
    for columns in [audit::commands::timeline::CSV_COLUMNS, audit::commands::reconcile::CSV_COLUMNS] {
        let listed = format!("`{}`", columns.join(", "));
        assert!(readme.contains(&listed), "README lacks {listed}");
    }
}
