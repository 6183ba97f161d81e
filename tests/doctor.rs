//! `audit doctor` against the simulator's default behaviour and each of its switches: what it
//! reports, the budget it keeps, its exit status, and the answers the ingest then reads.

mod common;

use common::*;
use inflow_simulator::{
    Behaviour, Fault, FaultRule, Faults, GuidOrder, ListCount, RateHeaders, RateLimit, Scale, SimConfig, Simulator,
    Trigger, UnknownCursor,
};
use serde_json::Value;

const STREAMS: [&str; 4] = ["sales-orders", "purchase-orders", "stock-adjustments", "stock-transfers"];

async fn start(behaviour: Behaviour, reject_keyset: bool) -> Simulator {
    // Rate limited (generously), so that the rate headers are sent.
    let rate_limit = Some(RateLimit { per_minute: 100_000, per_hour: 1_000_000 });
    let config = SimConfig { scale: Scale::Orders(150), rate_limit, behaviour, reject_keyset, ..SimConfig::default() };
    Simulator::start(config).await.expect("start simulator")
}

async fn start_with(configure: impl FnOnce(&mut SimConfig)) -> Simulator {
    let rate_limit = Some(RateLimit { per_minute: 100_000, per_hour: 1_000_000 });
    let mut config = SimConfig { scale: Scale::Orders(150), rate_limit, ..SimConfig::default() };
    configure(&mut config);
    Simulator::start(config).await.expect("start simulator")
}

/// Runs `audit doctor --format json`; returns the exit status, the report and stderr, after
/// checking that the key shows nowhere and the budget was kept.
fn doctor(db: &TestDb, sim: &Simulator, env: &[(&str, &str)]) -> (i32, Value, String) {
    sim.clear_requests();
    let (code, stdout, stderr) = run_cli(db, sim, &["doctor", "--format", "json", "--time-scale", "0.001"], env);
    let key = sim.api_key();
    assert!(!stdout.contains(&key) && !stderr.contains(&key), "the key was printed");
    assert!(stderr.contains("at most 25 requests"), "the budget is stated up front: {stderr}");
    let sent = sim.requests().into_iter().filter(|r| r.endpoint != "_sim").count();
    assert!(sent <= 25, "{sent} requests");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    assert_eq!(report["requests"].as_u64(), Some(sent as u64), "{report}");
    (code, report, stderr)
}

/// The check named `key`: (status, answer, result).
fn check(report: &Value, key: &str) -> (String, String, String) {
    let c = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == key)
        .unwrap_or_else(|| panic!("no check {key} in {report:#}"));
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (text(&c["verdict"]), text(&c["answer"]), text(&c["result"]))
}

fn answer(report: &Value, key: &str) -> String {
    check(report, key).1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_simulator_passes_every_check_within_the_budget() {
    let db = TestDb::sqlite().await;
    let sim = start(Behaviour::DEFAULT, false).await;
    // The key from a file readable by its owner only, as a scheduled job keeps it.
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("inflow-api-key");
    std::fs::write(&key_file, format!("{}\n", sim.api_key())).unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(&key_file, <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600))
        .unwrap();
    let env = [("INFLOW_API_KEY", ""), ("INFLOW_API_KEY_FILE", key_file.to_str().unwrap())];
    let (code, report, stderr) = doctor(&db, &sim, &env);
    assert_eq!(code, 0, "{report:#}{stderr}");
    assert_eq!(report["exit_status"], 0);
    for key in ["credentials", "company"] {
        assert_eq!(check(&report, key).0, "ok");
    }
    assert_eq!(answer(&report, "api_version"), "2025-06-24");
    for stream in STREAMS {
        assert_eq!(answer(&report, &format!("list:{stream}")), "ok");
        assert_eq!(answer(&report, &format!("paging:{stream}")), "keyset");
        assert_eq!(answer(&report, &format!("sort_date:{stream}")), "honoured");
        assert_eq!(answer(&report, &format!("filter_last_modified:{stream}")), "not_available");
    }
    assert_eq!(answer(&report, "page_size:sales-orders"), "100");
    assert_eq!(answer(&report, "filter_order_date:sales-orders"), "works");
    assert_eq!(answer(&report, "filter_order_date:purchase-orders"), "works");
    assert_eq!(answer(&report, "list_count"), "total");
    assert_eq!(answer(&report, "rate_headers"), "used");
    assert_eq!(answer(&report, "unknown_cursor"), "compare");
    assert_eq!(answer(&report, "id_order"), "text");
    assert_eq!(answer(&report, "products_serial_filter"), "works");
    for endpoint in ["manufacturing-orders", "stock-counts"] {
        let (verdict, answer, result) = check(&report, &format!("endpoint:{endpoint}"));
        assert_eq!((verdict.as_str(), answer.as_str()), ("ok", "available"), "{result}");
    }
    assert!(report["checks"].as_array().unwrap().iter().all(|c| c["verdict"] != "not_checked"), "{report:#}");

    // The answers are stored, and a table says the same.
    let store = db.store().await;
    let stored = store.capabilities(&sim.company_id()).await.unwrap();
    assert!(stored.iter().all(|c| c.source == "doctor" && c.api_version.as_deref() == Some("2025-06-24")));
    assert!(stored.iter().any(|c| c.name == "paging:stock-transfers" && c.value == "keyset"));
    let (code, table, _) = run_cli(&db, &sim, &["doctor", "--format", "table"], &[]);
    assert_eq!(code, 0);
    assert!(
        table.contains("Everything the ingest relies on works") && table.contains(" stock counts: adjustments "),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_switch_is_reported() {
    let d = Behaviour::DEFAULT;
    let db = TestDb::sqlite().await;
    let run = |behaviour: Behaviour, reject: bool| {
        let db = &db;
        async move {
            let sim = start(behaviour, reject).await;
            let (code, report, stderr) = doctor(db, &sim, &[]);
            assert_eq!(code, 0, "the ingest copes with every switch: {report:#}{stderr}");
            sim.shutdown().await;
            report
        }
    };

    let r = run(Behaviour { page_cap: Some(30), ..d.clone() }, false).await;
    assert_eq!(check(&r, "page_size:sales-orders").0, "adapts");
    assert_eq!(answer(&r, "page_size:sales-orders"), "capped:30");

    let r = run(Behaviour { sort_status: Some(500), ..d.clone() }, false).await;
    for stream in STREAMS {
        assert_eq!(answer(&r, &format!("paging:{stream}")), "keyset-unsorted", "{r:#}");
        assert_eq!(answer(&r, &format!("sort_date:{stream}")), "refused");
    }

    let r = run(Behaviour { ignore_sort: true, ..d.clone() }, false).await;
    for stream in STREAMS {
        assert_eq!(answer(&r, &format!("sort_date:{stream}")), "ignored", "{r:#}");
        assert_eq!(answer(&r, &format!("paging:{stream}")), "keyset");
    }

    for (cursor, expected) in [
        (UnknownCursor::Status(404), "404"),
        (UnknownCursor::Status(400), "400"),
        (UnknownCursor::Status(500), "500"),
        (UnknownCursor::Empty, "empty"),
    ] {
        let r = run(Behaviour { unknown_cursor: cursor, ..d.clone() }, false).await;
        assert_eq!(answer(&r, "unknown_cursor"), expected);
    }

    let r = run(Behaviour { list_count: ListCount::Remaining, ..d.clone() }, false).await;
    assert_eq!(answer(&r, "list_count"), "remaining");
    let r = run(Behaviour { list_count: ListCount::Absent, ..d.clone() }, false).await;
    assert_eq!(answer(&r, "list_count"), "absent");
    assert_eq!(check(&r, "list_count").0, "adapts");

    let r = run(Behaviour { rate_headers: RateHeaders::Remaining, ..d.clone() }, false).await;
    assert_eq!(answer(&r, "rate_headers"), "remaining");

    let r = run(Behaviour { guid_order: GuidOrder::SqlServer, ..d.clone() }, false).await;
    assert_eq!(answer(&r, "id_order"), "sqlserver");
    assert_eq!(answer(&r, "paging:sales-orders"), "keyset");

    let r = run(d.clone(), true).await;
    for stream in STREAMS {
        assert_eq!(answer(&r, &format!("paging:{stream}")), "skip", "{r:#}");
    }

    // Stock counts whose list refuses the sheets' lines: the sheets by id.
    let sim = start_with(|c| c.refuse_sheet_lines = true).await;
    let (code, r, stderr) = doctor(&db, &sim, &[]);
    assert_eq!(code, 0, "{r:#}{stderr}");
    let (verdict, value, result) = check(&r, "endpoint:stock-counts");
    assert_eq!((verdict.as_str(), value.as_str()), ("adapts", "sheets_by_id"), "{result}");
    assert!(result.contains("count-sheets/{id}?include=lines answers"), "{result}");
    sim.shutdown().await;

    // Completed counts that also create listed adjustments, and counts that do not.
    for (listed, expected) in [(true, "listed"), (false, "not_listed")] {
        let sim = start_with(|c| {
            c.count_adjustments = listed;
            c.scale = Scale::Small;
        })
        .await;
        let (_, r, _) = doctor(&db, &sim, &[]);
        assert_eq!(answer(&r, "count_adjustments"), expected, "{r:#}");
        sim.shutdown().await;
    }

    // An account without manufacturing or stock counts: reported, and not what the ingest needs.
    let lacking = vec!["manufacturing-orders".to_string(), "stock-counts".to_string()];
    let r = run(Behaviour { unavailable: lacking.clone(), ..d.clone() }, false).await;
    for path in &lacking {
        let (verdict, value, result) = check(&r, &format!("endpoint:{path}"));
        assert_eq!((verdict.as_str(), value.as_str()), ("info", "not_available"), "{result}");
    }

    // All at once.
    let r = run(Behaviour::hostile(UnknownCursor::Empty, ListCount::Absent), false).await;
    assert_eq!(answer(&r, "page_size:sales-orders"), "unknown", "no count: a short page proves nothing");
    assert_eq!(answer(&r, "paging:sales-orders"), "keyset-unsorted");
    assert_eq!(answer(&r, "list_count"), "absent");
    assert_eq!(answer(&r, "rate_headers"), "remaining");
    assert_eq!(answer(&r, "unknown_cursor"), "empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_ingest_relies_on_missing_exits_1_and_an_unreachable_server_2() {
    let db = TestDb::sqlite().await;
    let sim = start(Behaviour::DEFAULT, false).await;
    let (code, r, _) = doctor(&db, &sim, &[("INFLOW_API_KEY", "wrong")]);
    assert_eq!(code, 1);
    assert_eq!(check(&r, "credentials").0, "missing");
    let (code, r, _) = doctor(&db, &sim, &[("INFLOW_COMPANY_ID", "00000000-0000-0000-0000-000000000000")]);
    assert_eq!(code, 1);
    let (verdict, _, result) = check(&r, "company");
    assert_eq!(verdict, "missing");
    assert!(result.contains("not found"), "{result}");

    // A stream whose list fails whatever the paging.
    sim.set_faults(
        Faults::none()
            .rule(FaultRule::new(Fault::Status { status: 400 }, Trigger::Rate(1.0)).on_endpoint("stock-transfers")),
    );
    let (code, r, _) = doctor(&db, &sim, &[]);
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(check(&r, "list:stock-transfers").0, "missing");
    assert_eq!(check(&r, "list:sales-orders").0, "ok");
    sim.set_faults(Faults::none());

    // Nobody listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (code, stdout, stderr) =
        run_cli(&db, &sim, &["doctor", "--format", "json", "--time-scale", "0.001"], &[("INFLOW_BASE_URL", &url)]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    let r: Value = serde_json::from_str(&stdout).unwrap();
    assert!(r["error"].as_str().is_some_and(|e| e.contains("connect")), "{r:#}");
}

both_backends! {
/// The doctor's findings choose how the ingest walks: with `sort` answering 500, no ingest
/// request sends it, so the ingest meets no failure at all.
async fn the_ingest_walks_as_the_doctor_found(db: TestDb) {
    let sim = start(Behaviour { sort_status: Some(500), ..Behaviour::DEFAULT }, false).await;
    let (code, _, stderr) = doctor(&db, &sim, &[]);
    assert_eq!(code, 0, "{stderr}");
    sim.clear_requests();
    let (code, stdout, stderr) = run_cli(&db, &sim, &["ingest", "--time-scale", "0.001"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let sorted: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| STREAMS.contains(&r.endpoint.as_str()) && r.query.iter().any(|(k, _)| k == "sort"))
        .collect();
    assert!(sorted.is_empty(), "{sorted:?}");
    assert_eq!(sim.count_status(500), 0);
    let store = db.store().await;
    let (stored, rows) = stored_events(&store).await;
    assert_eq!(rows, stored.len());
    assert_eq!(stored.len(), expected_events(&sim).len());
    assert!(stored == expected_events(&sim));
}
}

both_backends! {
/// Pages capped at 30: once doctor has found it, `audit status` counts what runs cost and the
/// pages an unfinished walk read at 30 documents a page, not 100.
async fn status_counts_pages_of_the_size_doctor_found(db: TestDb) {
    let sim = start(Behaviour { page_cap: Some(30), ..Behaviour::DEFAULT }, false).await;
    let store = db.store().await;
    ingest(&store, &sim).await;
    let status = |db: &TestDb| -> Value {
        let (code, stdout, stderr) = run_cli(db, &sim, &["status", "--format", "json"], &[]);
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str::<Value>(&stdout).unwrap()["companies"][0].clone()
    };
    // A complete run: the locations, then n/page + 1 requests per stream.
    let complete_at = |c: &Value, capped: &[&str]| -> i64 {
        let streams = c["streams"].as_array().unwrap();
        let page = |s: &Value| if capped.iter().any(|k| k.ends_with(s["stream"].as_str().unwrap())) { 30 } else { 100 };
        1 + streams.iter().map(|s| s["documents"].as_i64().unwrap() / page(s) + 1).sum::<i64>()
    };
    let before = status(&db);
    assert_eq!(before["cost"]["complete"].as_i64().unwrap(), complete_at(&before, &[]), "nothing known: 100 a page");
    let (code, _, stderr) = doctor(&db, &sim, &[]);
    assert_eq!(code, 0, "{stderr}");
    let after = status(&db);
    let capped: Vec<&str> = after["api"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"].as_str().unwrap().starts_with("page_size:") && c["value"] == "capped:30")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    // The streams holding more than 30 documents (the others cannot show a cap).
    assert_eq!(capped, ["page_size:purchase-orders", "page_size:sales-orders"]);
    assert_eq!(after["cost"]["complete"].as_i64().unwrap(), complete_at(&after, &capped), "{:#}", after["streams"]);
    assert!(complete_at(&after, &capped) > complete_at(&after, &[]) + 5);
    sim.shutdown().await;
}
}
