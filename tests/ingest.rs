//! `audit ingest` against the simulator, on SQLite and Postgres.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use audit::mapping::EventType;
use audit::store::Store;
use audit::store::runs::RunStatus;
use audit::sync::{Quiet, StopFlag};
use common::*;
use inflow_simulator::{Fault, FaultRule, Faults, RateLimit, Scale, SimConfig, Simulator, Trigger};

both_backends! {
async fn complete_ingest_records_every_serial_occurrence_with_minimal_requests(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let store = db.store().await;
    let summary = ingest(&store, &sim).await;
    assert_eq!(summary.status, RunStatus::Succeeded);
    assert!(summary.streams.iter().all(|s| s.complete), "{:?}", summary.streams);

    let expected = expected_events(&sim);
    let (stored, rows) = stored_events(&store).await;
    assert_eq!(rows, stored.len(), "no duplicated events");
    assert_eq!(stored, expected);
    assert!(stored.len() > 500, "the small company has serials: {}", stored.len());
    // Every row of the mapping table occurs in the simulated company (an adjustment a count
    // made only where counts make listed adjustments: see tests/manufacturing.rs).
    for t in EventType::ALL.iter().filter(|t| **t != EventType::AdjustedByCount) {
        assert!(stored.iter().any(|e| e.event_type == t.as_str()), "no {t} event from simulator data");
    }

    // ceil(N/100) per stream (+1 when N is a multiple of 100), plus the reference lists: the
    // orders name customers and vendors not stored yet, so a first run walks those lists once.
    let counts = sim.counts();
    let by_endpoint = requests_by_endpoint(&sim);
    for endpoint in DOC_ENDPOINTS.iter().chain(&["locations", "products", "customers", "vendors"]) {
        assert_eq!(
            by_endpoint.get(*endpoint).copied().unwrap_or(0),
            walk_cost(counts[*endpoint]),
            "{endpoint}: {by_endpoint:?} for {counts:?}"
        );
    }
    let total: usize = by_endpoint.values().sum();
    assert_eq!(summary.counters.requests as usize, total);

    // Every document request is a keyset page of 100 on the id, with the stream's includes.
    for r in sim.requests().iter().filter(|r| DOC_ENDPOINTS.contains(&r.endpoint.as_str())) {
        let q: BTreeMap<&str, &str> = r.query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(q.get("count"), Some(&"100"), "{r:?}");
        assert!(q.get("sort").is_some_and(|s| s.ends_with("Id")), "{r:?}");
        assert!(q.contains_key("include"), "{r:?}");
        assert_eq!(r.accept.as_deref(), Some("application/json;version=2025-06-24"));
    }
    let so_include = sim
        .requests()
        .iter()
        .find(|r| r.endpoint == "sales-orders")
        .unwrap()
        .query
        .iter()
        .find(|(k, _)| k == "include")
        .unwrap()
        .1
        .clone();
    assert_eq!(so_include, "lines,pickLines,packLines,shipLines,restockLines");

    // The run is recorded with its counters.
    assert_eq!(count(&store, "SELECT count(*) FROM ingest_runs WHERE status = 'succeeded'").await, 1);
    assert_eq!(
        count(&store, "SELECT CAST(sum(events_inserted) AS BIGINT) FROM ingest_runs").await,
        expected.len() as i64
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM documents").await,
        DOC_ENDPOINTS.iter().map(|e| counts[*e] as i64).sum::<i64>()
    );
    assert_eq!(count(&store, "SELECT count(*) FROM locations").await, counts["locations"] as i64);
    assert_eq!(count(&store, "SELECT count(*) FROM customers").await, counts["customers"] as i64);
    assert_eq!(count(&store, "SELECT count(*) FROM vendors").await, counts["vendors"] as i64);
    // Every order's customer or vendor has a name.
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM documents d WHERE d.doc_type = 'sales_order' AND NOT EXISTS \
             (SELECT 1 FROM customers c WHERE c.company_id = d.company_id AND c.customer_id = d.party_id AND c.name <> '')"
        )
        .await,
        0
    );
}
}

both_backends! {
async fn a_rerun_over_unchanged_data_writes_no_events(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let store = db.store().await;
    ingest(&store, &sim).await;
    let before = stored_events(&store).await;
    let max_id = count(&store, "SELECT max(event_id) FROM serial_events").await;
    sim.clear_requests();

    let again = ingest(&store, &sim).await;
    assert_eq!(again.status, RunStatus::Succeeded);
    assert_eq!(
        (again.counters.work.events_inserted, again.counters.work.events_retracted, again.counters.work.documents_changed),
        (0, 0, 0)
    );
    assert_eq!(stored_events(&store).await, before);
    assert_eq!(count(&store, "SELECT max(event_id) FROM serial_events").await, max_id);
    assert_eq!(count(&store, "SELECT count(*) FROM document_changes").await, 0);
    // Products, customers and vendors are known now: only the document walks and the
    // locations are fetched.
    let by_endpoint = requests_by_endpoint(&sim);
    for known in ["products", "customers", "vendors"] {
        assert!(!by_endpoint.contains_key(known), "{known}: {by_endpoint:?}");
    }
    assert_eq!(by_endpoint["locations"], 1);

    // A product the list stopped returning (deleted in inFlow): unchanged documents that name it
    // do not make every later run walk the products again.
    exec(&store, "DELETE FROM products WHERE product_id IN (SELECT min(product_id) FROM serial_events)").await;
    sim.clear_requests();
    ingest(&store, &sim).await;
    let by_endpoint = requests_by_endpoint(&sim);
    assert!(!by_endpoint.contains_key("products"), "{by_endpoint:?}");
}
}

both_backends! {
/// A product, a customer and a vendor renamed in inFlow: runs within a day and window runs do
/// not walk those lists again (names stay); the first complete run a day after their last walk
/// does, and stores the new names.
async fn renamed_products_customers_and_vendors_are_refreshed_a_day_later(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let store = db.store().await;
    ingest(&store, &sim).await;
    let company = sim.company_id();
    let lists = [("products", "product_id"), ("customers", "customer_id"), ("vendors", "vendor_id")];
    let mut renamed = Vec::new();
    for (list, column) in lists {
        let id: String = first_of(&store, &format!("SELECT min({column}) FROM {list} WHERE company_id = $1"), &company, None)
            .await;
        sim.rename(list, &id, &format!("Renamed {list} <b>&</b>")).unwrap();
        renamed.push((format!("SELECT name FROM {list} WHERE company_id = $1 AND {column} = $2"), id));
    }
    let wanted: Vec<String> = lists.iter().map(|(list, _)| format!("Renamed {list} <b>&</b>")).collect();
    let names = async |store: &Store| {
        let mut out = Vec::new();
        for (sql, id) in &renamed {
            out.push(first_of(store, sql, &company, Some(id)).await);
        }
        out
    };
    let asked = |sim: &Simulator| {
        let by = requests_by_endpoint(sim);
        lists.iter().filter(|(list, _)| by.contains_key(*list)).count()
    };

    // Within a day: not walked again.
    sim.clear_requests();
    ingest(&store, &sim).await;
    assert_eq!(asked(&sim), 0, "{:?}", requests_by_endpoint(&sim));
    assert!(names(&store).await.iter().zip(&wanted).all(|(n, w)| n != w));

    // A day later, a window run still leaves them.
    let day_ago = chrono::Utc::now() - chrono::Duration::hours(25);
    let backdate = "UPDATE sync_state SET last_complete_at = $1 WHERE stream IN ('products', 'customers', 'vendors')";
    with_pool!(store, pool => {
        sqlx::query(backdate).bind(day_ago).execute(pool).await.unwrap();
    });
    sim.clear_requests();
    let (code, out, err) = run_cli(&db, &sim, &["ingest", "--window", "30d"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(asked(&sim), 0, "{:?}", requests_by_endpoint(&sim));

    // The next complete run walks the three lists and stores the new names, once.
    sim.clear_requests();
    ingest(&store, &sim).await;
    assert_eq!(asked(&sim), 3, "{:?}", requests_by_endpoint(&sim));
    assert_eq!(names(&store).await, wanted);
    sim.clear_requests();
    ingest(&store, &sim).await;
    assert_eq!(asked(&sim), 0, "walked a day later, not every run: {:?}", requests_by_endpoint(&sim));
}
}

/// The one text value `sql` selects, with `$1` (and `$2`, if given) bound.
async fn first_of(store: &Store, sql: &str, one: &str, two: Option<&str>) -> String {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    let value: Option<String> = with_pool!(store, pool => {
        let mut q = sqlx::query_scalar(sql).bind(one);
        if let Some(two) = two {
            q = q.bind(two);
        }
        q.fetch_one(pool).await.unwrap()
    });
    value.unwrap_or_else(|| panic!("nothing selected"))
}

both_backends! {
async fn a_changed_document_is_not_duplicated(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let store = db.store().await;
    ingest(&store, &sim).await;
    // Move a received serial's receipt to another sublocation: same key, new place.
    let story = sim.scenario().vendor_return;
    let po = &story.documents[0];
    let doc = sim.documents("purchase-orders").into_iter().find(|d| d["purchaseOrderId"] == po.id.as_str()).unwrap();
    let line = &doc["receiveLines"][0];
    sim.set_line_location(
        "purchase-orders",
        &po.id,
        "receiveLines",
        line["purchaseOrderReceiveLineId"].as_str().unwrap(),
        line["locationId"].as_str().unwrap(),
        "MOVED-1",
    )
    .unwrap();
    let again = ingest(&store, &sim).await;
    assert_eq!(again.counters.work.documents_changed, 1);
    assert_exactly_once(&store, &sim).await;
    assert!(again.counters.work.events_retracted > 0 && again.counters.work.events_retracted == again.counters.work.events_inserted);
}
}

/// Runs the binary with these settings until it aborts at a crash point.
fn killed_at(db: &TestDb, sim: &Simulator, crash_at: &str, env: &[(&str, &str)]) {
    let mut env = env.to_vec();
    env.push(("AUDIT_CRASH_AT", crash_at));
    let (code, _, stderr) = run_cli(db, sim, &["ingest"], &env);
    assert_eq!(code, -1, "the process was meant to die at {crash_at}: {stderr}");
    assert!(stderr.contains("AUDIT_CRASH_AT: aborting"), "{stderr}");
}

/// Runs the binary to a successful end.
fn succeeds(db: &TestDb, sim: &Simulator, env: &[(&str, &str)]) -> String {
    let (code, stdout, stderr) = run_cli(db, sim, &["ingest"], env);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("succeeded"), "{stdout}");
    stdout
}

/// Kills the binary at a crash point, then runs it again to the end.
async fn killed_and_restarted(db: &TestDb, sim: &Simulator, crash_at: &str) {
    killed_at(db, sim, crash_at, &[]);
    succeeds(db, sim, &[]);
}

both_backends! {
async fn a_run_killed_anywhere_resumes_to_the_same_events(db: TestDb) {
    let sim = simulator(Scale::Orders(450)).await;
    let expected = expected_events(&sim);
    let store = db.store().await;
    // Inside a page's transaction, between two pages, and inside a later stream's page.
    for crash_at in ["page-write:2", "after-page:3", "page-write:7"] {
        killed_and_restarted(&db, &sim, crash_at).await;
        let (stored, rows) = stored_events(&store).await;
        assert_eq!(rows, stored.len(), "no duplicates after a crash at {crash_at}");
        assert_eq!(stored, expected, "after a crash at {crash_at}");
    }
    // The dead runs are recorded as interrupted, and a last run adds nothing.
    assert_eq!(count(&store, "SELECT count(*) FROM ingest_runs WHERE status = 'interrupted'").await, 3);
    assert!(succeeds(&db, &sim, &[]).contains("0 events added, 0 retracted"));
}
}

both_backends! {
async fn a_run_killed_inside_a_group_of_pages_loses_the_group_alone(db: TestDb) {
    // 460 sales orders: five pages, written as groups [1, 2, 3] and [4, 5].
    let sim = simulator(Scale::Orders(450)).await;
    assert_eq!(sim.documents("sales-orders").len(), 460);
    let store = db.store().await;
    let sales = "SELECT count(*) FROM documents WHERE doc_type = 'sales_order'";
    let grouped = [("AUDIT_GROUP_PAGES", "3")];
    // Just before the second group's commit: the first group's three pages are in, together.
    killed_at(&db, &sim, "page-write:2", &grouped);
    assert_eq!(count(&store, sales).await, 300, "the first commit held three pages");
    // Resumed, and killed inside the group [4, 5] after its first page was written in the
    // transaction: lost with it.
    killed_at(&db, &sim, "group-page:1", &grouped);
    assert_eq!(count(&store, sales).await, 300, "a group is committed whole or not at all");
    // The next run fetches that group again (pages 4 and 5, and the document it resumes from)
    // and nothing before it.
    sim.clear_requests();
    succeeds(&db, &sim, &grouped);
    assert_eq!(requests_by_endpoint(&sim)["sales-orders"], 3, "{:?}", requests_by_endpoint(&sim));
    assert_exactly_once(&store, &sim).await;
    // Pages are counted one by one whatever the groups: a last run adds nothing.
    assert!(succeeds(&db, &sim, &[]).contains("0 events added, 0 retracted"));
}
}

both_backends! {
async fn at_a_slow_servers_pace_a_group_is_one_page(db: TestDb) {
    // Pages that arrive slower than they are written (inFlow's own pace is about one a second):
    // the writer never finds two ready, so each commit holds one page, as before groups.
    let sim = simulator(Scale::Orders(450)).await;
    sim.set_faults(Faults::none().rule(FaultRule::new(Fault::Delay { millis: 400 }, Trigger::Rate(1.0))));
    let store = db.store().await;
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest"], &[("AUDIT_CRASH_AT", "page-write:3")]);
    assert_eq!(code, -1, "the process was meant to die at the third commit: {stderr}");
    assert_eq!(count(&store, "SELECT count(*) FROM documents WHERE doc_type = 'sales_order'").await, 200);
}
}

both_backends! {
async fn a_run_killed_by_sigkill_at_a_random_moment_resumes(db: TestDb) {
    let sim = simulator(Scale::Orders(450)).await;
    // Slow pages widen the window in which the kill lands mid-walk.
    sim.set_faults(Faults::none().rule(FaultRule::new(Fault::Delay { millis: 40 }, Trigger::Rate(1.0))));
    let mut child = spawn_ingest(&db, &sim, &[]);
    let pause = 150 + (std::process::id() % 200) as u64;
    tokio::time::sleep(Duration::from_millis(pause)).await;
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the run finished before it was killed; the test proves nothing");
    sim.set_faults(Faults::none());
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let store = db.store().await;
    assert_exactly_once(&store, &sim).await;
}
}

both_backends! {
async fn faults_are_retried_and_the_result_is_the_same(db: TestDb) {
    let sim = simulator(Scale::Orders(300)).await;
    let retry_after = Fault::TooManyRequests { retry_after_secs: 0.05 };
    sim.set_faults(
        Faults::none()
            .rule(FaultRule::new(retry_after, Trigger::Requests(vec![2, 3, 4])))
            .rule(FaultRule::new(Fault::Status { status: 503 }, Trigger::Requests(vec![5, 6])))
            .rule(FaultRule::new(Fault::Status { status: 500 }, Trigger::Requests(vec![7])))
            .rule(FaultRule::new(Fault::Status { status: 502 }, Trigger::Requests(vec![8])))
            .rule(FaultRule::new(Fault::DropMidBody { after_bytes: 300 }, Trigger::Requests(vec![10])))
            .rule(FaultRule::new(Fault::MalformedJson, Trigger::Requests(vec![12]))),
    );
    let store = db.store().await;
    let summary = ingest(&store, &sim).await;
    assert_eq!(summary.status, RunStatus::Succeeded);
    assert_exactly_once(&store, &sim).await;
    assert_eq!(summary.counters.rate_limited, 3);
    assert_eq!(summary.counters.retries, 3 + 4 + 2, "{:?}", summary.counters);
    assert_eq!(count(&store, "SELECT rate_limited FROM ingest_runs").await, 3);
    let faulted: Vec<_> = sim.requests().into_iter().filter(|r| r.fault.is_some()).collect();
    assert_eq!(faulted.len(), 9, "{faulted:?}");
}
}

both_backends! {
async fn a_permanent_failure_exits_non_zero_naming_stream_and_page(db: TestDb) {
    let sim = simulator(Scale::Orders(300)).await;
    sim.set_faults(
        Faults::none()
            .rule(FaultRule::new(Fault::Status { status: 503 }, Trigger::Rate(1.0)).on_endpoint("stock-transfers")),
    );
    let (code, stdout, stderr) = run_cli(&db, &sim, &["ingest", "--time-scale", "0.001"], &[]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("ingest of stock-transfers failed at the first page"), "{stderr}");
    assert!(stderr.contains("HTTP 503"), "{stderr}");
    assert!(stderr.contains("attempts"), "{stderr}");
    let store = db.store().await;
    assert_eq!(
        count(&store, "SELECT count(*) FROM ingest_runs WHERE status = 'failed' AND error LIKE '%stock-transfers%'")
            .await,
        1
    );
    // The streams before it were written and their walks completed.
    assert_eq!(count(&store, "SELECT count(*) FROM sync_state WHERE last_complete_at IS NOT NULL").await, 5);
}
}

both_backends! {
async fn pacing_under_the_limits_never_meets_a_429(db: TestDb) {
    // A minute of 90 ms, an hour of 5.4 s. The simulator enforces exactly the limits the client
    // paces to, both small enough that the run needs several minute windows and two hours.
    let scale = 0.0015;
    let sim = Simulator::start(SimConfig {
        scale: Scale::Orders(3000),
        rate_limit: Some(RateLimit { per_minute: 20, per_hour: 40 }),
        time_scale: scale,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let scale_arg = scale.to_string();
    let args = ["ingest", "--max-per-minute", "20", "--max-per-hour", "40", "--time-scale", &scale_arg];
    let started = std::time::Instant::now();
    let (code, stdout, stderr) = run_cli(&db, &sim, &args, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("(0 answered 429"), "{stdout}");
    assert_eq!(sim.count_status(429), 0);
    let requests = sim.requests().len();
    assert!(requests > 40, "the run must outgrow the hour window to prove anything: {requests}");
    assert!(started.elapsed() >= Duration::from_secs_f64(3600.0 * scale), "the hour window was respected");
    let store = db.store().await;
    assert_eq!(stored_events(&store).await.0, expected_events(&sim));
}
}

both_backends! {
async fn since_filters_on_the_server_where_it_can_and_locally_elsewhere(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let since = "2025-06-01";
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest", "--since", since], &[]);
    assert_eq!(code, 0, "{stderr}");
    let floor = chrono::DateTime::parse_from_rfc3339("2025-06-01T00:00:00Z").unwrap().to_utc();
    let expected = expected_events_where(&sim, |d| d.doc_date.is_none_or(|t| t >= floor));
    assert!(!expected.is_empty() && expected.len() < expected_events(&sim).len());
    let store = db.store().await;
    assert_eq!(stored_events(&store).await.0, expected);
    let filter = r#"{"fromDate":"2025-06-01"}"#;
    let filtered =
        |r: &inflow_simulator::RequestRecord| r.query.iter().any(|(k, v)| k == "filter[orderDate]" && v == filter);
    for r in sim.requests() {
        match r.endpoint.as_str() {
            "sales-orders" | "purchase-orders" | "manufacturing-orders" => assert!(filtered(&r), "{r:?}"),
            _ => assert!(!filtered(&r), "inFlow has no date filter on {}", r.endpoint),
        }
    }
    // A later plain run keeps the bound.
    sim.clear_requests();
    let (code, _, _) = run_cli(&db, &sim, &["ingest"], &[]);
    assert_eq!(code, 0);
    assert!(sim.requests().iter().filter(|r| r.endpoint == "sales-orders").all(filtered));
    assert_eq!(stored_events(&store).await.0, expected);
}
}

both_backends! {
async fn types_limit_the_streams(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let (code, stdout, stderr) = run_cli(&db, &sim, &["ingest", "--types", "stock-transfers,purchase-orders"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let endpoints = requests_by_endpoint(&sim);
    assert!(!endpoints.contains_key("sales-orders") && !endpoints.contains_key("stock-adjustments"), "{endpoints:?}");
    assert!(endpoints.contains_key("stock-transfers") && endpoints.contains_key("purchase-orders"));
    assert!(stdout.contains("stock-transfers") && !stdout.contains("sales-orders"), "{stdout}");
    let store = db.store().await;
    assert_eq!(
        count(&store, "SELECT count(*) FROM serial_events WHERE doc_type IN ('sales_order', 'stock_adjustment')").await,
        0
    );
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest", "--types", "invoices"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown stream `invoices`"), "{stderr}");
}
}

both_backends! {
async fn max_requests_stops_cleanly_and_the_next_run_resumes(db: TestDb) {
    let sim = simulator(Scale::Orders(500)).await;
    // Locations, then two sales-order pages: the walk stops mid-stream.
    let (code, stdout, stderr) = run_cli(&db, &sim, &["ingest", "--max-requests", "3"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("stopped at --max-requests"), "{stdout}");
    assert_eq!(sim.requests().len(), 3);
    let store = db.store().await;
    assert_eq!(count(&store, "SELECT count(*) FROM ingest_runs WHERE status = 'stopped' AND requests = 3").await, 1);
    let saved = strings(&store, "SELECT walk_position FROM sync_state WHERE stream = $1", "sales-orders").await;
    assert!(saved[0].starts_with("after:"), "{saved:?}");

    sim.clear_requests();
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let first_so = sim.requests().into_iter().find(|r| r.endpoint == "sales-orders").unwrap();
    let after = first_so.query.iter().find(|(k, _)| k == "after").map(|(_, v)| format!("after:{v}"));
    assert_eq!(after.as_deref(), Some(saved[0].as_str()), "the second run resumes where the first stopped");
    assert_exactly_once(&store, &sim).await;
}
}

both_backends! {
async fn the_api_key_appears_nowhere(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    sim.set_faults(Faults::none().rule(FaultRule::new(Fault::Status { status: 500 }, Trigger::Requests(vec![2]))));
    let key = sim.api_key();
    let (code, stdout, stderr) = run_cli(&db, &sim, &["-vvv", "ingest", "--time-scale", "0.01"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("GET"), "-vvv logs each request, and the dependencies too: {stderr}");
    assert!(!stdout.contains(&key) && !stderr.contains(&key));
    // Nor in any stored text.
    let store = db.store().await;
    let dump =
        strings(&store, "SELECT CAST(arguments AS TEXT) || COALESCE(error, '') FROM ingest_runs WHERE $1 = $1", "")
            .await
            .concat();
    assert!(!dump.contains(&key));
    if db.url.backend() == audit::store::Backend::Sqlite {
        store.close().await;
        let path = db.url_string().trim_start_matches("sqlite://").to_string();
        for file in [path.clone(), format!("{path}-wal")] {
            if let Ok(bytes) = std::fs::read(&file) {
                assert!(!bytes.windows(key.len()).any(|w| w == key.as_bytes()), "{file} holds the key");
            }
        }
    }
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_company_or_key_fails_before_any_request() {
    let db = TestDb::sqlite().await;
    let sim = simulator(Scale::Small).await;
    let url = db.url_string();
    let base = sim.base_url();
    let run = |env: Vec<(&'static str, String)>| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        tokio::task::block_in_place(|| run_audit(&url, &["ingest"], &env))
    };
    let (code, _, stderr) = run(vec![("INFLOW_BASE_URL", base.clone()), ("INFLOW_API_KEY", sim.api_key())]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no inFlow company id") && stderr.contains("INFLOW_COMPANY_ID"), "{stderr}");
    let (code, _, stderr) = run(vec![("INFLOW_BASE_URL", base), ("INFLOW_COMPANY_ID", sim.company_id())]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no inFlow API key") && stderr.contains("INFLOW_API_KEY"), "{stderr}");
    assert!(sim.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_or_company_is_a_clear_error() {
    let db = TestDb::sqlite().await;
    let sim = simulator(Scale::Small).await;
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest"], &[("INFLOW_API_KEY", "wrong")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("refused the API key") && stderr.contains("401"), "{stderr}");
    assert!(!stderr.contains("wrong"), "not even a wrong key is echoed: {stderr}");
    let (code, _, stderr) =
        run_cli(&db, &sim, &["ingest"], &[("INFLOW_COMPANY_ID", "00000000-0000-0000-0000-000000000000")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("404") && stderr.contains("INFLOW_COMPANY_ID"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_on_a_list_names_the_page_unless_the_company_is_unknown() {
    let db = TestDb::sqlite().await;
    let sim = simulator(Scale::Small).await;
    // The company answers (its locations list does), one stream does not.
    sim.set_faults(
        Faults::none()
            .rule(FaultRule::new(Fault::Status { status: 404 }, Trigger::Rate(1.0)).on_endpoint("purchase-orders")),
    );
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest", "--time-scale", "0.001"], &[]);
    assert_eq!(code, 2, "{stderr}");
    // A core stream is never skipped: the run fails, naming the page and what the 404 means.
    assert!(
        stderr.contains("ingest of purchase-orders failed at the first page")
            && stderr.contains("inFlow answered 404 for GET purchase-orders (first page")
            && stderr.contains("this account does not offer purchase-orders"),
        "{stderr}"
    );
    assert!(!stderr.contains("INFLOW_COMPANY_ID"), "the company is fine: {stderr}");
    // The company had answered (its locations): no request spent checking it.
    let locations = sim.requests().into_iter().filter(|r| r.endpoint == "locations").count();
    assert_eq!(locations, 1);

    // The first request of a run answers 404: one cheap request to another endpoint shows the
    // company exists, so the message names the request, not the company.
    sim.set_faults(
        Faults::none().rule(FaultRule::new(Fault::Status { status: 404 }, Trigger::Rate(1.0)).on_endpoint("locations")),
    );
    sim.clear_requests();
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest", "--time-scale", "0.001"], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("inFlow answered 404 for GET locations (first page"), "{stderr}");
    assert!(stderr.contains("does not offer locations") && !stderr.contains("--types"), "{stderr}");
    assert!(!stderr.contains("INFLOW_COMPANY_ID"), "{stderr}");
    let checks: Vec<_> = sim.requests().into_iter().filter(|r| r.endpoint == "products").collect();
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert!(checks[0].query.contains(&("count".to_string(), "1".to_string())), "a cheap request: {checks:?}");

    // An unknown company: the check confirms it, and the message says so.
    sim.set_faults(Faults::none());
    let (code, _, stderr) =
        run_cli(&db, &sim, &["ingest"], &[("INFLOW_COMPANY_ID", "00000000-0000-0000-0000-000000000000")]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("company 00000000-0000-0000-0000-000000000000 not found")
            && stderr.contains("inFlow answered 404 for GET locations (first page) and for the company's product list"),
        "{stderr}"
    );
}

both_backends! {
async fn a_server_without_keyset_paging_gets_skip_paging(db: TestDb) {
    let sim = simulator(Scale::Orders(250)).await;
    sim.set_reject_keyset(true);
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("walked again from its start with skip paging"), "{stderr}");
    let store = db.store().await;
    assert_exactly_once(&store, &sim).await;
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_signal_ends_the_run_after_a_page() {
    let db = TestDb::sqlite().await;
    let sim = simulator(Scale::Orders(450)).await;
    let store = db.store().await;
    let stop = StopFlag::default();
    stop.stop();
    let summary = audit::sync::run(&store, &client_for(&sim), &options(&sim), &Quiet, &stop).await.unwrap();
    assert_eq!(summary.status, RunStatus::Stopped);
    assert_eq!(summary.stop, Some(audit::sync::StopReason::Signal));
    assert_eq!(count(&store, "SELECT count(*) FROM ingest_runs WHERE status = 'stopped'").await, 1);
    // A lock taken over by another process ends the run the same way, with its own reason.
    let stop = StopFlag::default();
    stop.lock_lost();
    let summary = audit::sync::run(&store, &client_for(&sim), &options(&sim), &Quiet, &stop).await.unwrap();
    assert_eq!(summary.stop, Some(audit::sync::StopReason::LockLost));
}

/// A server that answers every list with `answer(endpoint, query)`, counting requests per endpoint.
struct OddServer {
    base_url: String,
    requests: std::sync::Arc<std::sync::Mutex<BTreeMap<String, usize>>>,
}

type Query = BTreeMap<String, String>;

async fn odd_server(answer: impl Fn(&str, &Query) -> serde_json::Value + Clone + Send + Sync + 'static) -> OddServer {
    use axum::extract::{Path, Query as Q, State};
    type Requests = std::sync::Arc<std::sync::Mutex<BTreeMap<String, usize>>>;
    let requests = Requests::default();
    let app = axum::Router::new()
        .route(
            "/{company}/{endpoint}",
            axum::routing::get(
                move |State(requests): State<Requests>,
                      Path((_, endpoint)): Path<(String, String)>,
                      Q(query): Q<Query>| {
                    let answer = answer.clone();
                    async move {
                        *requests.lock().unwrap().entry(endpoint.clone()).or_insert(0) += 1;
                        axum::Json(answer(&endpoint, &query))
                    }
                },
            ),
        )
        .with_state(requests.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    OddServer { base_url, requests }
}

fn odd_client(server: &OddServer) -> audit::inflow::Client {
    let mut config = audit::inflow::ClientConfig::new(&server.base_url, "c1", audit::inflow::ApiKey::new("k"));
    config.retry.base_delay = Duration::from_millis(5);
    config.retry.max_delay = Duration::from_millis(50);
    audit::inflow::Client::new(config).unwrap()
}

fn odd_options(types: Vec<audit::mapping::DocType>) -> audit::sync::IngestOptions {
    audit::sync::IngestOptions {
        company_id: "c1".into(),
        since: None,
        window: None,
        types,
        skip_unavailable: false,
        arguments: serde_json::json!({}),
    }
}

/// One simulated sales order, renamed.
async fn sales_order(id: &str) -> serde_json::Value {
    let sim = simulator(Scale::Orders(5)).await;
    let mut doc = sim
        .documents("sales-orders")
        .into_iter()
        .find(|d| d["lines"][0]["quantity"]["serialNumbers"][0].is_string())
        .unwrap();
    doc["salesOrderId"] = id.into();
    doc
}

both_backends! {
async fn a_page_that_repeats_a_document_writes_it_once(db: TestDb) {
    let doc = sales_order("so-twice").await;
    // The pair on the first page, then nothing (no count: the empty page proves the end).
    let server = odd_server(move |endpoint, query| match endpoint {
        "sales-orders" if !query.contains_key("after") => serde_json::json!([doc, doc]),
        _ => serde_json::json!([]),
    })
    .await;
    let store = db.store().await;
    let options = odd_options(vec![audit::mapping::DocType::SalesOrder]);
    let summary =
        audit::sync::run(&store, &odd_client(&server), &options, &Quiet, &StopFlag::default()).await.unwrap();
    assert_eq!(summary.status, RunStatus::Succeeded);
    assert_eq!(count(&store, "SELECT count(*) FROM documents").await, 1);
    let (stored, rows) = stored_events(&store).await;
    assert_eq!(rows, stored.len(), "no duplicated events");
    assert!(rows > 0);
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_after_is_walked_by_skip_to_the_end() {
    let doc = sales_order("so-x").await;
    let docs: Vec<serde_json::Value> = (0..250)
        .map(|i| {
            let mut d = doc.clone();
            d["salesOrderId"] = format!("so-{i:03}").into();
            d
        })
        .collect();
    let expected: std::collections::BTreeSet<String> = docs.iter().map(|d| d["salesOrderId"].to_string()).collect();
    // `count` and `skip` work; `after` and `sort` are ignored, silently.
    let server = odd_server(move |endpoint, query| match endpoint {
        "sales-orders" => {
            let skip: usize = query.get("skip").map_or(0, |s| s.parse().unwrap());
            serde_json::json!(docs.iter().skip(skip).take(100).collect::<Vec<_>>())
        }
        _ => serde_json::json!([]),
    })
    .await;
    let db = TestDb::sqlite().await;
    let store = db.store().await;
    let options = odd_options(vec![audit::mapping::DocType::SalesOrder]);
    let summary = audit::sync::run(&store, &odd_client(&server), &options, &Quiet, &StopFlag::default()).await.unwrap();
    assert_eq!(summary.status, RunStatus::Succeeded);
    let stream = &summary.streams[0];
    assert!(stream.complete && stream.unproven.is_none() && stream.paging == "skip", "{stream:?}");
    let stored: std::collections::BTreeSet<String> =
        strings(&store, "SELECT '\"' || doc_id || '\"' FROM documents WHERE $1 = $1", "").await.into_iter().collect();
    assert_eq!(stored, expected);
    let recorded = store.capability("c1", "paging:sales-orders").await.unwrap().unwrap();
    assert_eq!(recorded.value, "skip");
    assert!(recorded.detail.unwrap().contains("repeated documents already returned"));
    assert_eq!(count(&store, "SELECT count(*) FROM run_warnings WHERE kind = 'paging_fallback'").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_the_keyset_does_not_loop_for_ever() {
    let doc = sales_order("so-x").await;
    let page: Vec<serde_json::Value> = (0..100)
        .map(|i| {
            let mut d = doc.clone();
            d["salesOrderId"] = format!("so-{i:03}").into();
            d
        })
        .collect();
    // The same full page whatever `after`, `sort` or `skip` say.
    let server = odd_server(move |endpoint, _| match endpoint {
        "sales-orders" => serde_json::json!(page),
        _ => serde_json::json!([]),
    })
    .await;
    let db = TestDb::sqlite().await;
    let store = db.store().await;
    let options = odd_options(vec![audit::mapping::DocType::SalesOrder]);
    let err = audit::sync::run(&store, &odd_client(&server), &options, &Quiet, &StopFlag::default()).await.unwrap_err();
    let text = audit::error_text(&err);
    assert!(text.contains("sales-orders") && text.contains("does not move the walk on"), "{text}");
    // Two pages in each mode: keyset, keyset without sort, skip; each second page repeats the first.
    assert_eq!(server.requests.lock().unwrap()["sales-orders"], 6, "stopped at the first repeated page of each mode");
    // The first page is kept; the run is recorded as failed.
    assert_eq!(count(&store, "SELECT count(*) FROM documents").await, 100);
    assert_eq!(count(&store, "SELECT count(*) FROM ingest_runs WHERE status = 'failed'").await, 1);
}

both_backends! {
/// Runs that would quietly do little say so: a `--since` in the future is refused with the
/// reason, and a first run with only `--window` warns, with `status` repeating it until a
/// complete walk has finished; after that, window runs do not warn.
async fn runs_that_would_quietly_do_little_say_so(db: TestDb) {
    let store = db.store().await;
    let sim = simulator(Scale::Small).await;
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest", "--since", "2999-01-01"], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("2999-01-01 is in the future"), "{stderr}");
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest", "--since", "01/01/2025"], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("YYYY-MM-DD"), "{stderr}");

    let (code, stdout, stderr) = run_cli(&db, &sim, &["ingest", "--window", "30d"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let dated = ["sales-orders", "purchase-orders", "manufacturing-orders"];
    for stream in dated {
        assert!(stderr.contains(&format!("{stream}: no complete walk of this stream has finished yet")), "{stderr}");
    }
    assert_eq!(count(&store, "SELECT count(*) FROM run_warnings WHERE kind = 'window_without_history'").await, 3);
    let (_, status, _) = run_cli(&db, &sim, &["status", "--format", "table"], &[]);
    assert!(status.contains(&format!("{} had only --window walks", dated.join(", "))), "{status}");

    let (code, stdout, stderr) = run_cli(&db, &sim, &["ingest"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest", "--window", "30d"], &[]);
    assert_eq!(code, 0);
    assert!(!stderr.contains("no complete walk"), "{stderr}");
    let (_, status, _) = run_cli(&db, &sim, &["status", "--format", "table"], &[]);
    assert!(!status.contains("only --window walks"), "{status}");
    sim.shutdown().await;
}
}

both_backends! {
/// Before a first run a reader is told what it will cost, and the count is the run's own; the
/// waits for the rate limit are logged at -v. A second run tells nothing.
async fn a_first_run_tells_its_cost_and_its_waits(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    // Ten requests a minute, a minute of 3 s: the run waits for the limit several times.
    let args = ["ingest", "-v", "--max-per-minute", "10", "--time-scale", "0.05"];
    let (code, _, stderr) = run_cli(&db, &sim, &args, &[]);
    assert_eq!(code, 0, "{stderr}");
    let sent = sim.requests().len();
    assert!(
        stderr.contains(&format!("first ingest of this company: about {sent} requests (sales-orders ")),
        "the estimate is the run's own count ({sent}): {stderr}"
    );
    assert!(stderr.contains("At 10 requests per minute and 1000 per hour that takes about "), "{stderr}");
    assert!(stderr.contains("waiting for the rate limit, "), "{stderr}");
    sim.clear_requests();
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest", "-v"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("first ingest"), "{stderr}");
    assert!(!sim.requests().iter().any(|r| r.query.iter().any(|(k, v)| k == "count" && v == "1")), "no probe");
}
}

both_backends! {
/// Ctrl-C during a wait for the rate limit ends the wait at once, and no request follows it.
async fn a_stop_during_a_rate_limit_wait_ends_at_once_without_another_request(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    // Two requests a minute: the third waits about a minute for its slot.
    let child = spawn_ingest(&db, &sim, &["--max-per-minute", "2"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while sim.requests().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "the run did not start");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Well inside the wait for the third slot.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let sent = sim.requests().len();
    assert_eq!(sent, 2, "the third request waits for its slot");
    let signalled = std::time::Instant::now();
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = tokio::task::block_in_place(|| child.wait_with_output()).unwrap();
    let took = signalled.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(took < std::time::Duration::from_secs(2), "the stop waited out the pause: {took:?}; {stderr}");
    // A moment for anything in flight to reach the simulator's log.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sim.requests().len(), sent, "a request after the signal: {stderr}");
    assert_eq!(out.status.code(), Some(0), "a clean stop: {stderr}");
    let store = db.store().await;
    assert_eq!(count(&store, "SELECT count(*) FROM ingest_runs WHERE status = 'stopped'").await, 1);
}
}

both_backends! {
/// A first run under a `--max-requests` budget too small to pay for the estimate's probe spends
/// the budget on the documents, not on the estimate.
async fn a_small_budget_is_not_spent_on_the_estimate(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest", "-v", "--max-requests", "6"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("could not be estimated"), "{stderr}");
    let requests = sim.requests();
    assert_eq!(requests.len(), 6, "the budget is used");
    assert!(!requests.iter().any(|r| r.query.iter().any(|(k, v)| k == "count" && v == "1")), "no probe: {stderr}");
    let store = db.store().await;
    assert!(count(&store, "SELECT count(*) FROM documents").await > 0, "the run stored documents: {stderr}");
}
}

/// The ingest refreshes the planner's statistics of the tables it grows, `serial_keys` (the close
/// matches' index) among them, and of the fixed lists the views join, rather than leaving them
/// to autovacuum's schedule. A manual ANALYZE
/// sets `last_analyze`; autovacuum sets `last_autoanalyze`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_ingest_analyses_the_tables_it_grows() {
    let Some(db) = TestDb::postgres().await else { return };
    let sim = simulator(Scale::Small).await;
    let store = db.store().await;
    let pool = store.postgres_pool().expect("a Postgres store");
    // The migrations analyse some tables while they are empty: only later analyses count.
    let before: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()").fetch_one(pool).await.unwrap();
    assert_eq!(ingest(&store, &sim).await.status, RunStatus::Succeeded);
    let mut analysed: Vec<String> = Vec::new();
    // Statistics of other sessions reach pg_stat views within about a second.
    for _ in 0..50 {
        analysed = sqlx::query_scalar(
            "SELECT relname::text FROM pg_stat_user_tables WHERE last_analyze > $1 \
             AND relname IN ('anomaly_kinds', 'documents', 'event_types', 'serial_events', 'serial_keys') ORDER BY 1",
        )
        .bind(before)
        .fetch_all(pool)
        .await
        .unwrap();
        if analysed.len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The fixed lists the views join too: autovacuum never analyses tables that small.
    assert_eq!(analysed, ["anomaly_kinds", "documents", "event_types", "serial_events", "serial_keys"]);
}
