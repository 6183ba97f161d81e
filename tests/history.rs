//! Change history and scheduled runs, on SQLite and Postgres: edits, cancellations and
//! deletions become retractions, `--as-of` tells what was known then, stopped runs conclude
//! nothing, one ingest at a time, `audit rebuild`, `--window`, `--every` and `audit status`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use audit::sync::{Quiet, StopFlag};
use common::*;
use inflow_simulator::{Behaviour, DateSort, Fault, FaultRule, Faults, Scale, Trigger};
use serde_json::Value;

fn doc<'a>(docs: &'a [Value], id_field: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    docs.iter().find(|d| pred(d)).unwrap_or_else(|| panic!("no document matching in {} docs ({id_field})", docs.len()))
}

fn timeline(db: &TestDb, args: &[&str]) -> Value {
    let mut all = vec!["timeline", "--format", "json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = tokio::task::block_in_place(|| run_audit(&db.url_string(), &all, &[]));
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

both_backends! {
async fn edits_cancellations_and_deletions_are_kept_as_retractions(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let store = db.store().await;
    ingest(&store, &sim).await;
    let before = expected_events(&sim);
    let max_before = count(&store, "SELECT max(event_id) FROM serial_events").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;

    // 1. A pick line's serials change, 2. a receipt moves to another sublocation.
    let s = sim.scenario();
    let so_id = &s.full_lifecycle.documents[2].id;
    let sales = sim.documents("sales-orders");
    let so = doc(&sales, "salesOrderId", |d| d["salesOrderId"] == so_id.as_str());
    let pick = &so["pickLines"][0];
    let pick_id = pick["salesOrderPickLineId"].as_str().unwrap();
    let mut serials: Vec<String> =
        pick["quantity"]["serialNumbers"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert!(serials.contains(&s.full_lifecycle.serial));
    serials.retain(|x| *x != s.full_lifecycle.serial);
    serials.push("SN-REPLACEMENT-1".into());
    sim.edit_line_serials("sales-orders", so_id, "pickLines", pick_id, serials).unwrap();
    let vr = &s.vendor_return.documents[0].id;
    let purchases = sim.documents("purchase-orders");
    let po = doc(&purchases, "purchaseOrderId", |d| d["purchaseOrderId"] == vr.as_str());
    let receive = &po["receiveLines"][0];
    sim.set_line_location(
        "purchase-orders",
        vr,
        "receiveLines",
        receive["purchaseOrderReceiveLineId"].as_str().unwrap(),
        receive["locationId"].as_str().unwrap(),
        "MOVED-9",
    )
    .unwrap();
    // 3. A pick moves to another sublocation.
    let sold = &s.two_products.as_ref().unwrap().stories[0];
    let picked_so = &sold.documents[1].id;
    let picked_doc = doc(&sales, "salesOrderId", |d| d["salesOrderId"] == picked_so.as_str());
    let pick_line = &picked_doc["pickLines"][0];
    sim.set_line_location(
        "sales-orders",
        picked_so,
        "pickLines",
        pick_line["salesOrderPickLineId"].as_str().unwrap(),
        pick_line["locationId"].as_str().unwrap(),
        "PICKED-FROM-HERE",
    )
    .unwrap();
    // 4. A transfer is cancelled, 5. a cancelled order is un-cancelled, 6. an adjustment deleted.
    let transfer = &s.in_transit.documents[1].id;
    sim.cancel("stock-transfers", transfer).unwrap();
    let cancelled = doc(&sales, "salesOrderId", |d| {
        d["isCancelled"] == true && d["pickLines"].as_array().is_some_and(|p| !p.is_empty())
    });
    let uncancelled = cancelled["salesOrderId"].as_str().unwrap().to_string();
    sim.uncancel("sales-orders", &uncancelled).unwrap();
    let adjustment = &s.adjusted_out.documents[1].id;
    sim.delete("stock-adjustments", adjustment).unwrap();

    let again = ingest(&store, &sim).await;
    let after = expected_events(&sim);
    assert_ne!(before, after);
    // The current events are what inFlow's current data gives...
    let (current, rows) = stored_events(&store).await;
    assert_eq!(rows, current.len());
    assert_eq!(current, after);
    // ...and every superseded event is still there, retracted exactly once.
    let all = all_events(&store).await;
    let retracted: Vec<&Event> = all.iter().filter(|e| e.retracted).map(|e| &e.event).collect();
    let retracted_set: BTreeSet<Event> = retracted.iter().map(|e| (*e).clone()).collect();
    assert_eq!(retracted.len(), retracted_set.len(), "retracted once");
    let gone: BTreeSet<Event> = before.difference(&after).cloned().collect();
    assert_eq!(retracted_set, gone);
    assert_eq!(again.counters.work.events_retracted as usize, gone.len());
    // Un-cancelled events are new rows, not revived ones.
    assert!(count(&store, "SELECT count(*) FROM serial_events WHERE retracted_at IS NULL AND event_id > 0").await > 0);
    let new_rows = all.iter().filter(|e| !e.retracted && e.event.doc_id == uncancelled).count();
    assert!(new_rows > 0);
    assert!(count(&store, "SELECT min(event_id) FROM serial_events WHERE retracted_at IS NULL AND doc_type = 'sales_order' AND doc_id IN (SELECT doc_id FROM document_changes WHERE change = 'uncancelled')").await > max_before);

    // Each change is in the log with the versions it went between.
    let changes =
        strings(&store, "SELECT change || ':' || doc_id FROM document_changes WHERE $1 = $1 ORDER BY change", "").await;
    for expected in [
        format!("cancelled:{transfer}"),
        format!("uncancelled:{uncancelled}"),
        format!("deleted:{adjustment}"),
        format!("changed:{so_id}"),
        format!("changed:{vr}"),
        format!("changed:{picked_so}"),
    ] {
        assert!(changes.contains(&expected), "{expected} in {changes:?}");
    }
    assert_eq!(count(&store, "SELECT count(*) FROM document_changes WHERE change <> 'deleted' AND (old_row_version IS NULL OR new_row_version IS NULL OR old_lines_version = new_lines_version AND old_row_version = new_row_version)").await, 0);
    assert_eq!(count(&store, "SELECT count(*) FROM documents WHERE deleted_at IS NOT NULL").await, 1);

    // What we knew then: before the edit, the serial was picked on the order; now it is not.
    let serial = &s.full_lifecycle.serial;
    let types = |v: &Value| -> Vec<String> {
        v["histories"][0]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_type"].as_str().unwrap().to_string())
            .collect()
    };
    let then = timeline(&db, &[serial, "--as-of", &between.to_rfc3339()]);
    let now = timeline(&db, &[serial]);
    assert!(types(&then).contains(&"picked".to_string()), "{then}");
    assert!(!types(&now).contains(&"picked".to_string()), "{now}");
    // Then, the pick was current: it counts in the running on-hand and the header, unmarked.
    let then_events = then["histories"][0]["events"].as_array().unwrap();
    let at = then_events.iter().position(|e| e["event_type"] == "picked").unwrap();
    let then_pick = &then_events[at];
    assert_eq!(then_pick["retracted"], false, "{then_pick}");
    assert!(then_pick["retracted_at"].is_null(), "{then_pick}");
    assert_eq!(then_pick["on_hand"].as_i64().unwrap(), then_events[at - 1]["on_hand"].as_i64().unwrap() - 1, "{then}");
    let then_all = timeline(&db, &[serial, "--as-of", &between.to_rfc3339(), "--all"]);
    assert!(
        then_all["histories"][0]["events"].as_array().unwrap().iter().all(|e| e["retracted"] == false),
        "nothing was retracted yet then: {then_all}"
    );
    let all_rows = timeline(&db, &[serial, "--all"]);
    let picked = all_rows["histories"][0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_type"] == "picked")
        .unwrap()
        .clone();
    assert_eq!(picked["retracted"], true);
    assert!(picked["retracted_at"].is_string() && picked["retracted_run_id"] == 2, "{picked}");
    // The moved pick: the old place is retracted, the new one current.
    let moved = timeline(&db, &[&s.two_products.as_ref().unwrap().serial, "--all"]);
    let history =
        moved["histories"].as_array().unwrap().iter().find(|h| h["product_id"] == sold.product_id.as_str()).unwrap();
    let picks: Vec<(&str, bool)> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "picked")
        .map(|e| (e["sublocation"].as_str().unwrap(), e["retracted"].as_bool().unwrap()))
        .collect();
    assert_eq!(picks.len(), 2, "{picks:?}");
    assert!(
        picks.contains(&("PICKED-FROM-HERE", false)) && picks.iter().any(|(sub, r)| *r && *sub != "PICKED-FROM-HERE"),
        "{picks:?}"
    );
    // The replacement serial appears from the second run on only.
    let (code, _, _) = tokio::task::block_in_place(|| {
        run_audit(&db.url_string(), &["timeline", "SN-REPLACEMENT-1", "--as-of", &between.to_rfc3339()], &[])
    });
    assert_eq!(code, 1);
    assert_eq!(timeline(&db, &["SN-REPLACEMENT-1"])["histories"][0]["events"][0]["event_type"], "picked");
}
}

both_backends! {
async fn changes_during_a_walk_are_caught_and_a_stopped_walk_concludes_nothing(db: TestDb) {
    let sim = simulator(Scale::Orders(450)).await;
    let store = db.store().await;
    ingest(&store, &sim).await;
    // Stop after the locations and two sales-order pages...
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest", "--max-requests", "3"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let sales = sim.documents("sales-orders");
    let mut ids: Vec<&str> = sales.iter().map(|d| d["salesOrderId"].as_str().unwrap()).collect();
    ids.sort();
    // ...then change documents behind and ahead of the cursor, and delete one of each.
    let (behind, ahead) = (ids[10].to_string(), ids[ids.len() - 10].to_string());
    for id in [&behind, &ahead] {
        sim.set_document_date(
            "sales-orders",
            id,
            chrono::DateTime::parse_from_rfc3339("2025-01-15T10:00:00-05:00").unwrap(),
        )
        .unwrap();
    }
    let cancelled_ahead = ids[ids.len() - 30].to_string();
    sim.cancel("sales-orders", &cancelled_ahead).unwrap();
    let (gone_behind, gone_ahead) = (ids[20].to_string(), ids[ids.len() - 20].to_string());
    sim.delete("sales-orders", &gone_behind).unwrap();
    sim.delete("sales-orders", &gone_ahead).unwrap();
    // A stopped run retracts nothing for documents it has not seen.
    assert_eq!(count(&store, "SELECT count(*) FROM documents WHERE deleted_at IS NOT NULL").await, 0);
    assert_eq!(count(&store, "SELECT count(*) FROM serial_events WHERE retracted_at IS NOT NULL").await, 0);

    // The resumed walk finishes and confirms by id the deletion ahead of its cursor, and asks
    // for the document of the position it resumed from (seen before the stop, a deletion there
    // would go unnoticed). The deletion behind happened after this walk had seen the document:
    // the next walk notices it.
    let saved = strings(&store, "SELECT walk_position FROM sync_state WHERE stream = $1", "sales-orders").await;
    let cursor = saved[0].strip_prefix("after:").expect("a keyset position").to_string();
    sim.clear_requests();
    let (code, stdout, stderr) = run_cli(&db, &sim, &["ingest"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("succeeded"), "{stdout}");
    let by_id: Vec<String> = sim.requests().into_iter().filter_map(|r| r.document_id).collect();
    assert_eq!(by_id, [gone_ahead.clone(), cursor]);
    let deleted = "SELECT doc_id FROM documents WHERE deleted_at IS NOT NULL AND $1 = $1 ORDER BY doc_id";
    assert_eq!(strings(&store, deleted, "").await, std::slice::from_ref(&gone_ahead));
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let mut both = vec![gone_ahead, gone_behind];
    both.sort();
    assert_eq!(strings(&store, deleted, "").await, both);
    // Both edits were picked up, and nothing is lost or doubled.
    let (current, rows) = stored_events(&store).await;
    assert_eq!(rows, current.len());
    assert_eq!(current, expected_events(&sim));
    let dates = strings(&store, "SELECT CAST(doc_date AS TEXT) FROM documents WHERE doc_id IN ($1)", &behind).await;
    assert!(dates[0].starts_with("2025-01-15"), "{dates:?}");
}
}

both_backends! {
async fn sigterm_finishes_the_page_saves_the_position_and_exits_0(db: TestDb) {
    let sim = simulator(Scale::Orders(800)).await;
    let store = db.store().await;
    ingest(&store, &sim).await;
    let victim = sim.documents("stock-transfers")[0]["stockTransferId"].as_str().unwrap().to_string();
    sim.delete("stock-transfers", &victim).unwrap();
    sim.set_faults(Faults::none().rule(FaultRule::new(Fault::Delay { millis: 60 }, Trigger::Rate(1.0))));
    let child = spawn_ingest(&db, &sim, &[]);
    // Once it is writing pages (its signal handler is set by then), ask it to stop.
    wait_until(&store, "SELECT count(*) FROM ingest_runs WHERE status = 'running' AND pages > 0").await;
    let killed = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let out = tokio::task::block_in_place(|| child.wait_with_output()).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("stopped by a signal"), "{stdout}");
    assert_eq!(count(&store, "SELECT count(*) FROM ingest_runs WHERE status = 'stopped'").await, 1);
    assert_eq!(
        count(&store, "SELECT count(*) FROM documents WHERE deleted_at IS NOT NULL").await,
        0,
        "a stopped run concludes nothing"
    );
    assert!(count(&store, "SELECT count(*) FROM sync_state WHERE walk_position IS NOT NULL").await >= 1);
    sim.set_faults(Faults::none());
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count(&store, "SELECT count(*) FROM documents WHERE deleted_at IS NOT NULL").await, 1);
    assert_eq!(stored_events(&store).await.0, expected_events(&sim));
}
}

both_backends! {
async fn one_ingest_at_a_time_and_a_dead_holder_is_taken_over(db: TestDb) {
    let sim = simulator(Scale::Orders(300)).await;
    let _ = db.store().await;
    sim.set_faults(Faults::none().rule(FaultRule::new(Fault::Delay { millis: 150 }, Trigger::Rate(1.0))));
    let first = spawn_ingest(&db, &sim, &[]);
    wait_until(&db.store().await, "SELECT count(*) FROM ingest_locks").await;
    // A second one refuses, naming the holder...
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest"], &[]);
    assert_eq!(code, 75, "{stderr}");
    assert!(stderr.contains(&format!("audit ingest (pid {}", first.id())) && stderr.contains("--wait"), "{stderr}");
    // ...or waits for it with --wait.
    let waiter = spawn_ingest(&db, &sim, &["--wait"]);
    let first = tokio::task::block_in_place(|| first.wait_with_output()).unwrap();
    assert!(first.status.success());
    let waiter = tokio::task::block_in_place(|| waiter.wait_with_output()).unwrap();
    assert!(waiter.status.success(), "{}", String::from_utf8_lossy(&waiter.stderr));
    assert!(String::from_utf8_lossy(&waiter.stderr).contains("waiting for the ingest lock held by audit ingest"));

    // A killed holder leaves its row behind; the next run takes it over.
    let mut doomed = spawn_ingest(&db, &sim, &[]);
    let store = db.store().await;
    wait_until(&store, "SELECT count(*) FROM ingest_locks").await;
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM ingest_locks").await, 1, "the dead holder's lock remains");
    sim.set_faults(Faults::none());
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count(&store, "SELECT count(*) FROM ingest_locks").await, 0);
    assert_eq!(stored_events(&store).await.0, expected_events(&sim));
}
}

both_backends! {
async fn a_silent_holder_on_another_host_is_taken_over(db: TestDb) {
    let store = db.store().await;
    let stale = (chrono::Utc::now() - chrono::Duration::minutes(10)).to_rfc3339();
    let fresh = chrono::Utc::now().to_rfc3339();
    for (heartbeat, held) in [(&fresh, true), (&stale, false)] {
        let sql = format!(
            "INSERT INTO ingest_locks (company_id, holder, pid, host, token, acquired_at, heartbeat_at) \
             VALUES ('c1', 'audit ingest (pid 1 on elsewhere)', 1, 'elsewhere', 't', '{heartbeat}', '{heartbeat}')"
        );
        with_pool!(store, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(pool).await.unwrap();
        });
        match store.try_lock("c1", "ingest").await.unwrap() {
            Ok(lock) => {
                assert!(!held, "a live holder elsewhere keeps its lock");
                lock.release().await;
            }
            Err(holder) => {
                assert!(held, "a silent holder is taken over");
                assert_eq!(holder.host, "elsewhere");
                exec(&store, "DELETE FROM ingest_locks").await;
            }
        }
    }
}
}

both_backends! {
/// A rebuild counts what it changed the same way in its summary, its streams and its run row:
/// the documents whose events changed, not the pages they were on nor every document read.
async fn rebuild_summary_streams_and_run_row_agree(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let store = db.store().await;
    ingest(&store, &sim).await;
    // As after a mapping change: one event of each of two purchase orders no longer matches.
    exec(
        &store,
        "UPDATE serial_events SET sublocation = 'OLD-MAPPING' WHERE event_id IN (SELECT min(event_id) \
         FROM serial_events WHERE event_type = 'received' GROUP BY doc_id ORDER BY 1 LIMIT 2)",
    )
    .await;
    let company = sim.company_id();
    let summary = audit::sync::rebuild(&store, &company, &Quiet, &StopFlag::default()).await.unwrap();
    let mut streams = audit::sync::Counters::default();
    for s in &summary.streams {
        streams += s.work;
    }
    assert_eq!(streams, summary.counters.work, "the streams add up to the run");
    let c = summary.counters.work;
    assert_eq!((c.documents_changed, c.events_inserted, c.events_retracted), (2, 2, 2));
    assert!(c.documents_seen > c.pages && c.pages >= 6, "{c:?}");
    let sql = "SELECT pages, documents_seen, documents_changed, events_inserted, events_retracted, warnings \
               FROM ingest_runs WHERE run_id = $1";
    let row: audit::sync::Counters =
        with_pool!(store, pool => sqlx::query_as(sql).bind(summary.run_id).fetch_one(pool).await.unwrap());
    assert_eq!(row, summary.counters.work, "the run row says what the summary says");
}
}

both_backends! {
async fn rebuild_changes_nothing_and_asks_inflow_nothing(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let store = db.store().await;
    ingest(&store, &sim).await;
    let before = all_events(&store).await;
    sim.clear_requests();
    let (code, stdout, stderr) = run_cli(&db, &sim, &["rebuild"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("0 events added, 0 retracted"), "{stdout}");
    assert!(sim.requests().is_empty(), "rebuild made requests: {:?}", sim.requests());
    assert_eq!(all_events(&store).await, before);
    assert_eq!(
        count(&store, "SELECT count(*) FROM ingest_runs WHERE command = 'rebuild' AND status = 'succeeded'").await,
        1
    );

    // As after a mapping change: one stored event no longer matches its document; rebuild
    // retracts it and records the right one, and the trail keeps both.
    exec(&store, "UPDATE serial_events SET sublocation = 'OLD-MAPPING' WHERE event_id = (SELECT min(event_id) FROM serial_events WHERE event_type = 'received')").await;
    let (code, stdout, stderr) = run_cli(&db, &sim, &["rebuild"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("1 events added, 1 retracted"), "{stdout}");
    assert_eq!(stored_events(&store).await.0, expected_events(&sim));
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM serial_events WHERE sublocation = 'OLD-MAPPING' AND retracted_at IS NOT NULL"
        )
        .await,
        1
    );
    assert_eq!(count(&store, "SELECT count(*) FROM document_changes WHERE change = 'rebuilt'").await, 1);
    assert!(sim.requests().is_empty());
}
}

both_backends! {
async fn window_runs_reread_recent_orders_and_whole_unfilterable_streams(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let store = db.store().await;
    ingest(&store, &sim).await;
    // An old sales order disappears: only a complete walk may conclude that.
    let old = sim.documents("sales-orders")[0]["salesOrderId"].as_str().unwrap().to_string();
    sim.delete("sales-orders", &old).unwrap();
    // A server that cannot sort them by date (tests/window.rs covers one that can).
    sim.set_behaviour(Behaviour { date_sort: DateSort::Ignore, ..Behaviour::DEFAULT });
    sim.clear_requests();
    let (code, stdout, stderr) = run_cli(&db, &sim, &["ingest", "--window", "400d"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("window walk done"), "{stdout}");
    let from = (chrono::Utc::now() - chrono::Duration::days(400)).date_naive();
    let filter = format!(r#"{{"fromDate":"{from}"}}"#);
    for r in sim.requests() {
        let filtered = r.query.iter().any(|(k, v)| k == "filter[orderDate]" && *v == filter);
        match r.endpoint.as_str() {
            "sales-orders" | "purchase-orders" | "manufacturing-orders" => assert!(filtered, "{r:?}"),
            "stock-adjustments" | "stock-transfers" | "stock-counts" => {
                assert!(!filtered && r.query.iter().all(|(k, _)| !k.starts_with("filter")), "{r:?}")
            }
            _ => {}
        }
    }
    let counts = sim.counts();
    let transfers = sim.requests().iter().filter(|r| r.endpoint == "stock-transfers").count();
    assert_eq!(transfers, 1 + walk_cost(counts["stock-transfers"]), "a newest-first page out of order, then in full");
    assert_eq!(count(&store, "SELECT count(*) FROM documents WHERE deleted_at IS NOT NULL").await, 0);
    assert_eq!(count(&store, "SELECT count(*) FROM sync_state WHERE last_window_at IS NOT NULL").await, 3);
    // A complete run concludes it.
    ingest(&db.store().await, &sim).await;
    assert_eq!(
        strings(&store, "SELECT doc_id FROM documents WHERE deleted_at IS NOT NULL AND $1 = $1", "").await,
        [old]
    );
}
}

both_backends! {
async fn a_window_run_leaves_an_unfinished_complete_walk_to_resume(db: TestDb) {
    let sim = simulator(Scale::Orders(500)).await;
    // A backfill taken in shares: locations and two sales-order pages.
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest", "--max-requests", "3"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let store = db.store().await;
    let position = "SELECT walk_kind || ' ' || walk_position FROM sync_state WHERE stream = $1";
    let saved = strings(&store, position, "sales-orders").await;
    assert!(saved[0].starts_with("complete after:"), "{saved:?}");

    // An hourly window run in between walks its window and leaves the backfill's place alone.
    let (code, stdout, stderr) = run_cli(&db, &sim, &["ingest", "--window", "400d"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("window walk done"), "{stdout}");
    assert_eq!(strings(&store, position, "sales-orders").await, saved);
    assert_eq!(count(&store, "SELECT count(*) FROM sync_state WHERE last_window_at IS NOT NULL").await, 3);

    // The next plain run resumes the backfill, completes it, and concludes no false deletion
    // from documents that only the window saw.
    sim.clear_requests();
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let first = sim.requests().into_iter().find(|r| r.endpoint == "sales-orders").unwrap();
    let after = first.query.iter().find(|(k, _)| k == "after").map(|(_, v)| format!("complete after:{v}"));
    assert_eq!(after.as_deref(), Some(saved[0].as_str()), "resumed where the backfill stopped");
    assert!(sim.requests().iter().all(|r| r.query.iter().all(|(k, _)| k != "filter[orderDate]")));
    assert_exactly_once(&store, &sim).await;
    assert_eq!(count(&store, "SELECT count(*) FROM documents WHERE deleted_at IS NOT NULL").await, 0);
    assert_eq!(count(&store, "SELECT count(*) FROM sync_state WHERE walk_id IS NOT NULL").await, 0);
}
}

both_backends! {
async fn every_runs_on_a_schedule_until_sigterm(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let child = spawn_ingest(&db, &sim, &["--every", "700ms"]);
    // Stopped once a second run has finished, rather than after a fixed time.
    let store = db.store().await;
    wait_until(&store, "SELECT count(*) - 1 FROM ingest_runs WHERE status = 'succeeded'").await;
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let out = tokio::task::block_in_place(|| child.wait_with_output()).unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let runs = count(&store, "SELECT count(*) FROM ingest_runs").await;
    assert!((2..=3).contains(&runs), "{runs} runs: two finished, and at most one more started");
    assert_eq!(count(&store, "SELECT count(*) FROM ingest_runs WHERE run_id > 1 AND events_inserted > 0").await, 0);
    assert_eq!(count(&store, "SELECT count(*) FROM ingest_runs WHERE status = 'running'").await, 0);
    let starts =
        strings(&store, "SELECT CAST(started_at AS TEXT) FROM ingest_runs WHERE $1 = $1 ORDER BY run_id", "").await;
    assert_eq!(starts.len() as i64, runs);
}
}

both_backends! {
async fn status_reports_holdings_walks_runs_and_costs(db: TestDb) {
    let sim = simulator(Scale::Orders(450)).await;
    let (code, _, _) = run_cli(&db, &sim, &["ingest", "--max-requests", "3"], &[]);
    assert_eq!(code, 0);
    let (code, stdout, stderr) = run_cli(&db, &sim, &["status", "--format", "json"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let c = &v["companies"][0];
    assert_eq!(c["company_id"], sim.company_id().as_str());
    assert_eq!(c["requests_last_hour"], 3);
    assert!(c["lock"].is_null());
    let so = &c["streams"][0];
    assert_eq!(so["stream"], "sales-orders");
    assert_eq!(so["documents"], 200);
    assert_eq!(so["walk_kind"], "complete");
    assert!(so["walk_position"].as_str().unwrap().starts_with("after:"));
    assert_eq!(c["runs"][0]["status"], "stopped");

    ingest(&db.store().await, &sim).await;
    let (_, stdout, _) = run_cli(&db, &sim, &["status", "--format", "json"], &[]);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let c = &v["companies"][0];
    let counts = sim.counts();
    let expected_cost = 1 + DOC_ENDPOINTS.iter().map(|e| walk_cost(counts[*e])).sum::<usize>();
    assert_eq!(c["cost"]["complete"], expected_cost);
    for (i, e) in DOC_ENDPOINTS.iter().enumerate() {
        assert_eq!(c["streams"][i]["documents"], counts[*e], "{e}");
        assert!(c["streams"][i]["walk_position"].is_null());
        assert!(c["streams"][i]["last_complete_at"].is_string());
    }
    assert_eq!(c["runs"].as_array().unwrap().len(), 2);
    let (code, table, _) = run_cli(&db, &sim, &["status", "--format", "table"], &[]);
    assert_eq!(code, 0);
    assert!(table.contains(&format!("A complete run costs about {expected_cost} requests")), "{table}");

    // A run killed two hours ago is left `running` with no live lock: its requests are not this
    // hour's. (Both runs above finished within the hour.)
    let before: i64 = {
        let (_, stdout, _) = run_cli(&db, &sim, &["status", "--format", "json"], &[]);
        serde_json::from_str::<Value>(&stdout).unwrap()["companies"][0]["requests_last_hour"].as_i64().unwrap()
    };
    let long_ago = chrono::Utc::now() - chrono::Duration::hours(2);
    let insert = "INSERT INTO ingest_runs (company_id, command, status, started_at, requests) \
                  VALUES ($1, 'ingest', 'running', $2, 900)";
    let store = db.store().await;
    with_pool!(store, pool => {
        sqlx::query(insert).bind(sim.company_id()).bind(long_ago).execute(pool).await.unwrap();
    });
    store.close().await;
    let (_, stdout, _) = run_cli(&db, &sim, &["status", "--format", "json"], &[]);
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap()["companies"][0]["requests_last_hour"], before);
}
}
