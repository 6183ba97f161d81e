//! Test helpers shared by the integration tests: fresh databases on both backends.
//!
//! Postgres tests read `AUDIT_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), create a uniquely named database and drop it
//! afterwards. When no server answers they are skipped with a message on the terminal, unless
//! `AUDIT_REQUIRE_POSTGRES=1`, which turns the skip into a failure (CI sets it).
#![allow(dead_code)]

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};

use audit::store::{DatabaseUrl, Store};
use sqlx::{Connection, Executor, PgConnection};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh, empty database that disappears when dropped.
pub struct TestDb {
    pub url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
    pg: Option<PgDatabase>,
}

struct PgDatabase {
    admin_url: String,
    name: String,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("audit.db");
        let url = format!("sqlite://{}", path.display()).parse().unwrap();
        TestDb { url, _dir: Some(dir), pg: None }
    }

    /// `None` when Postgres is not reachable and not required (a message says so).
    pub async fn postgres() -> Option<TestDb> {
        let admin_url = std::env::var("AUDIT_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.into());
        let mut admin = match PgConnection::connect(&admin_url).await {
            Ok(conn) => conn,
            Err(err) => {
                let redacted = audit::store::url::redact(&admin_url);
                if std::env::var("AUDIT_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                    panic!("AUDIT_REQUIRE_POSTGRES=1 but Postgres at {redacted} is unreachable: {err}");
                }
                // Written to the real stderr, not the captured one, so the skip is visible.
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED Postgres test: no server at {redacted} ({err}); set AUDIT_TEST_POSTGRES_URL, \
                     or AUDIT_REQUIRE_POSTGRES=1 to make this a failure"
                );
                return None;
            }
        };
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "audit_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            chrono::Utc::now().timestamp_micros() % 1_000_000
        );
        admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.expect("create test database");
        admin.close().await.ok();
        let mut url = url::Url::parse(&admin_url).expect("AUDIT_TEST_POSTGRES_URL is a URL");
        url.set_path(&name);
        Some(TestDb { url: url.as_str().parse().unwrap(), _dir: None, pg: Some(PgDatabase { admin_url, name }) })
    }

    pub async fn store(&self) -> Store {
        Store::open(&self.url).await.expect("open test store")
    }

    /// The URL with its password, for passing to the binary under test.
    pub fn url_string(&self) -> String {
        self.url.expose().to_string()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(pg) = self.pg.take() else { return };
        // Drop runs inside the test's runtime, so the clean-up gets a thread and runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&pg.admin_url).await {
                    let _ = admin
                        .execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", pg.name)))
                        .await;
                    // Roles belong to the whole server: the database's `audit sql` role goes too.
                    let _ =
                        admin.execute(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS audit_sql_{}", pg.name))).await;
                }
            });
        })
        .join();
    }
}

/// Wraps a test function taking a [`TestDb`] and declares one test per backend for it:
/// `name::sqlite` and `name::postgres`. The Postgres one skips (visibly) when no server is
/// reachable.
///
/// ```ignore
/// both_backends! {
/// async fn a_test(db: TestDb) { ... }
/// }
/// ```
#[macro_export]
macro_rules! both_backends {
    ($(#[$meta:meta])* async fn $name:ident($db:ident: TestDb) $body:block) => {
        $(#[$meta])*
        async fn $name($db: $crate::common::TestDb) $body

        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::TestDb::sqlite().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = $crate::common::TestDb::postgres().await {
                    super::$name(db).await;
                }
            }
        }
    };
}

/// Runs `$body` with `$pool` bound to the store's pool, whichever the backend: written once,
/// compiled for each driver.
#[macro_export]
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match ($store.sqlite_pool(), $store.postgres_pool()) {
            (Some($pool), _) => $body,
            (None, Some($pool)) => $body,
            (None, None) => unreachable!("a store has one pool"),
        }
    };
}

/// Runs the `audit` binary with the given database and arguments; returns (status, stdout, stderr).
pub fn run_audit(db_url: &str, args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_audit"));
    // A width from the shell would make tables wrap; the tests that want one set it.
    cmd.args(args).env("AUDIT_DATABASE_URL", db_url).env_remove("RUST_LOG").env_remove("COLUMNS");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run audit");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Records a serial written into `serial_events` by a test's own SQL in `serial_keys`, as
/// audit's write path does for the events it records (for close matches).
pub async fn remember_serial(store: &Store, serial: &str) {
    let norm = audit::store::close::normalise(serial);
    let rnorm: String = norm.chars().rev().collect();
    exec_with(
        store,
        "INSERT INTO serial_keys (company_id, serial, norm, rnorm) \
         SELECT DISTINCT company_id, serial, $2, $3 FROM serial_events WHERE serial = $1",
        &[serial, &norm, &rnorm],
    )
    .await;
}

/// Runs `sql` with one text parameter and returns the first column of every row as text.
pub async fn strings(store: &Store, sql: &'static str, param: &str) -> Vec<String> {
    with_pool!(store, pool => sqlx::query_scalar(sql).bind(param).fetch_all(pool).await.unwrap())
}

/// Runs a statement without parameters.
pub async fn exec(store: &Store, sql: &'static str) {
    exec_with(store, sql, &[]).await
}

/// Runs a statement with text parameters.
pub async fn exec_with(store: &Store, sql: &'static str, params: &[&str]) {
    with_pool!(store, pool => {
        let mut q = sqlx::query(sql);
        for p in params {
            q = q.bind(*p);
        }
        q.execute(pool).await.unwrap();
    })
}

// ---- Ingest against the simulator -------------------------------------------------------------

use std::collections::BTreeSet;
use std::time::Duration;

use audit::inflow::{ApiKey, Client, ClientConfig, RateLimits};
use audit::mapping::DocType;
use audit::sync::{IngestOptions, Quiet, RunSummary, StopFlag};
use inflow_simulator::{Scale, SimConfig, Simulator};

pub const DOC_ENDPOINTS: [&str; 6] =
    ["sales-orders", "purchase-orders", "manufacturing-orders", "stock-counts", "stock-adjustments", "stock-transfers"];

/// A simulator without rate limits or faults.
pub async fn simulator(scale: Scale) -> Simulator {
    Simulator::start(SimConfig { scale, rate_limit: None, ..SimConfig::default() }).await.expect("start simulator")
}

/// A client for the simulator with short waits, so retries do not slow the tests.
pub fn client_for(sim: &Simulator) -> Client {
    let mut config = ClientConfig::new(&sim.base_url(), &sim.company_id(), ApiKey::new(sim.api_key()));
    config.limits = RateLimits { per_minute: 100_000, per_hour: 1_000_000, minute: Duration::from_secs(60) };
    config.retry.base_delay = Duration::from_millis(5);
    config.retry.max_delay = Duration::from_millis(50);
    config.retry.default_retry_after = Duration::from_millis(50);
    Client::new(config).expect("client")
}

pub fn options(sim: &Simulator) -> IngestOptions {
    IngestOptions {
        company_id: sim.company_id(),
        since: None,
        window: None,
        types: DocType::ALL.to_vec(),
        skip_unavailable: true,
        arguments: serde_json::json!({}),
    }
}

/// Runs an ingest in-process with a fresh client.
pub async fn ingest(store: &Store, sim: &Simulator) -> RunSummary {
    audit::sync::run(store, &client_for(sim), &options(sim), &Quiet, &StopFlag::default()).await.expect("ingest")
}

/// An event as compared between runs: everything but ids and observation times.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, sqlx::FromRow)]
pub struct Event {
    pub doc_type: String,
    pub doc_id: String,
    pub line_collection: String,
    pub line_id: String,
    pub serial: String,
    pub event_type: String,
    pub occurred_at: Option<chrono::DateTime<chrono::Utc>>,
    pub location_id: Option<String>,
    pub sublocation: Option<String>,
    pub quantity_delta: i16,
    pub product_id: Option<String>,
}

/// A stored event, current or retracted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub struct StoredEvent {
    #[sqlx(flatten)]
    pub event: Event,
    pub retracted: bool,
}

/// The columns of [`StoredEvent`], for `SELECT ... FROM serial_events`.
pub const EVENT_COLUMNS: &str = "doc_type, doc_id, line_collection, line_id, serial, event_type, occurred_at, \
     location_id, sublocation, quantity_delta, product_id, retracted_at IS NOT NULL AS retracted";

/// The events the simulator's current documents should produce, through the same mapping.
pub fn expected_events(sim: &Simulator) -> BTreeSet<Event> {
    expected_events_where(sim, |_| true)
}

pub fn expected_events_where(sim: &Simulator, keep: impl Fn(&audit::mapping::Derived) -> bool) -> BTreeSet<Event> {
    let mut out = BTreeSet::new();
    for endpoint in DOC_ENDPOINTS {
        let doc_type = DocType::from_stream(endpoint).unwrap();
        for doc in sim.documents(endpoint) {
            let d = audit::mapping::derive(doc_type, &doc.to_string()).expect("simulator documents map");
            if !keep(&d) {
                continue;
            }
            for e in &d.events {
                out.insert(Event {
                    doc_type: doc_type.as_str().to_string(),
                    doc_id: d.doc_id.clone(),
                    line_collection: e.line_collection.to_string(),
                    line_id: e.line_id.clone(),
                    serial: e.serial.clone(),
                    event_type: e.event_type.as_str().to_string(),
                    occurred_at: e.occurred_at,
                    location_id: e.location_id.clone(),
                    sublocation: e.sublocation.clone(),
                    quantity_delta: e.quantity_delta,
                    product_id: e.product_id.clone(),
                });
            }
        }
    }
    out
}

/// Every event row, current or retracted.
pub async fn all_events(store: &Store) -> Vec<StoredEvent> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM serial_events");
    with_pool!(store, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).fetch_all(pool).await.unwrap())
}

/// Requests per endpoint in the simulator's log.
pub fn requests_by_endpoint(sim: &Simulator) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for r in sim.requests() {
        *out.entry(r.endpoint.clone()).or_insert(0) += 1;
    }
    out
}

/// Asserts that the current events are exactly the simulator's: none stored twice, none missing.
pub async fn assert_exactly_once(store: &Store, sim: &Simulator) {
    let (stored, rows) = stored_events(store).await;
    assert_eq!(rows, stored.len(), "no event stored twice");
    assert_eq!(stored, expected_events(sim), "no event missing or different");
}

/// The current events in the database, and how many rows they are (to catch duplicates).
pub async fn stored_events(store: &Store) -> (BTreeSet<Event>, usize) {
    let current: Vec<Event> = all_events(store).await.into_iter().filter(|e| !e.retracted).map(|e| e.event).collect();
    let n = current.len();
    (current.into_iter().collect(), n)
}

/// Runs a statement returning one integer.
pub async fn count(store: &Store, sql: &'static str) -> i64 {
    with_pool!(store, pool => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap())
}

/// Requests a complete walk of `n` documents costs: ceil(n/100), plus one when n is a multiple
/// of 100 (the empty page that proves the end); that is n/100 + 1.
pub fn walk_cost(n: usize) -> usize {
    n / 100 + 1
}

/// The environment that points the binary at the simulator.
pub fn sim_env(sim: &Simulator) -> Vec<(&'static str, String)> {
    vec![
        ("INFLOW_BASE_URL", sim.base_url()),
        ("INFLOW_COMPANY_ID", sim.company_id()),
        ("INFLOW_API_KEY", sim.api_key()),
    ]
}

/// Runs the binary against the simulator; returns (status, stdout, stderr).
pub fn run_cli(db: &TestDb, sim: &Simulator, args: &[&str], extra_env: &[(&str, &str)]) -> (i32, String, String) {
    let env = sim_env(sim);
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra_env);
    // The simulator runs on this runtime: let it keep serving while the binary runs.
    tokio::task::block_in_place(|| run_audit(&db.url_string(), args, &all))
}

/// Starts `audit ingest` with these extra arguments against the simulator, its output piped.
pub fn spawn_ingest(db: &TestDb, sim: &Simulator, extra: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_audit"))
        .arg("ingest")
        .args(extra)
        .env("AUDIT_DATABASE_URL", db.url_string())
        .env_remove("RUST_LOG")
        .envs(sim_env(sim))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start audit ingest")
}

/// Waits (up to 10 s) until a count query says 1 or more: a process under test got that far,
/// however loaded the machine is.
pub async fn wait_until(store: &Store, sql: &'static str) {
    for _ in 0..200 {
        if count(store, sql).await >= 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {sql}");
}

/// Waits for a child at most `limit`; kills it and fails the test if it is still running.
pub fn wait_at_most(
    child: &mut std::process::Child,
    limit: std::time::Duration,
    what: &str,
) -> (std::process::ExitStatus, std::time::Duration) {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, started.elapsed());
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Sends `signal` (`libc::SIGINT`, `libc::SIGTERM`, ...) to a child the test started.
pub fn send_signal(child: &std::process::Child, signal: i32) {
    // SAFETY: sends a signal to a child this test started and has not reaped yet.
    #[allow(unsafe_code, reason = "libc::kill has no safe wrapper")]
    let sent = unsafe { libc::kill(child.id() as i32, signal) };
    assert_eq!(sent, 0);
}
