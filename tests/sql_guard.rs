//! Issue 19, point 2: `audit sql` is read-only because the database enforces it, stops at its
//! timeout, streams its rows, and reads Postgres's quoting.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sqlx::Connection;

fn audit_sql(db: &TestDb, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["sql"];
    all.extend_from_slice(args);
    tokio::task::block_in_place(|| run_audit(&db.url_string(), &all, &[]))
}

/// Runs `audit sql` with a deadline of its own: a query that never ends must not hang the test.
fn audit_sql_within(db: &TestDb, args: &[&str], limit: Duration) -> (i32, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_audit"))
        .arg("sql")
        .args(args)
        .env("AUDIT_DATABASE_URL", db.url_string())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            return (status.code().unwrap_or(-1), stderr, started.elapsed());
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("audit sql {args:?} still ran after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A query that never ends on its own.
fn endless(db: &TestDb) -> &'static str {
    match db.url.backend() {
        audit::store::Backend::Sqlite => {
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
        }
        audit::store::Backend::Postgres => "SELECT pg_sleep(1000)",
    }
}

both_backends! {
async fn a_query_is_stopped_at_its_timeout(db: TestDb) {
    let _store = db.store().await;
    let query = endless(&db);
    let (code, stderr, took) =
        tokio::task::block_in_place(|| audit_sql_within(&db, &[query, "--timeout", "1s"], Duration::from_secs(20)));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("ran longer than 1s") && stderr.contains("--timeout"), "{stderr}");
    assert!(took < Duration::from_secs(6), "stopped after {took:?}");
    assert!(!stderr.contains("WARN"), "a long query is not worth a warning: {stderr}");
}
}

/// The process's peak resident memory so far, from the kernel (VmHWM), in bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

both_backends! {
async fn rows_are_streamed_not_held(db: TestDb) {
    let _store = db.store().await;
    // Rows of a kilobyte: held in memory, 200,000 took about 490 MB, 50,000 over 120 MB (JSON is
    // slow to write in a debug build, so it gets fewer).
    for (format, rows) in [("csv", 200_000), ("json", 50_000)] {
        let query = match db.url.backend() {
            audit::store::Backend::Sqlite => format!(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows}) \
                 SELECT x, printf('%.1000c', 'x') AS filler FROM c"
            ),
            audit::store::Backend::Postgres => {
                format!("SELECT g AS x, repeat('x', 1000) AS filler FROM generate_series(1, {rows}) g")
            }
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_audit"))
            .args(["sql", &query, "--format", format, "--timeout", "10m"])
            .env("AUDIT_DATABASE_URL", db.url_string())
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let (mut lines, mut buf) = (0usize, vec![0u8; 1 << 16]);
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => return lines,
                    Ok(n) => lines += buf[..n].iter().filter(|b| **b == b'\n').count(),
                }
            }
        });
        let mut peak = 0;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            peak = peak.max(peak_rss(pid).unwrap_or(0));
            std::thread::sleep(Duration::from_millis(10));
        };
        let lines = reader.join().unwrap();
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        assert!(status.success(), "{format}: {stderr}");
        match format {
            "csv" => assert_eq!(lines, rows + 1, "a header and every row"),
            _ => assert_eq!(lines, rows * 4 + 2, "every object, pretty-printed"),
        }
        assert!(peak > 0, "the peak was measured");
        assert!(peak < 60_000_000, "{format}: {} MB at the peak for {rows} rows", peak / 1_000_000);
    }
}
}

both_backends! {
async fn reading_still_works_and_the_output_is_as_before(db: TestDb) {
    let _store = db.store().await;
    let (code, json, stderr) = audit_sql(
        &db,
        &["SELECT 1 AS n, 'a' AS s, 1.50 AS d, NULL AS z UNION ALL SELECT 2, 'b', 2, NULL", "--format", "json"],
    );
    assert_eq!(code, 0, "{stderr}");
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    for (row, (n, s, d)) in rows.as_array().unwrap().iter().zip([(1, "a", 1.5), (2, "b", 2.0)]) {
        assert_eq!((row["n"].as_i64(), row["s"].as_str(), row["d"].as_f64()), (Some(n), Some(s), Some(d)), "{json}");
        assert!(row["z"].is_null());
    }
    assert!(json.starts_with("[\n  {\n    \"d\": 1.5,"), "the layout serde_json gives a whole list: {json}");
    assert!(stderr.is_empty(), "no warning where the database enforces read-only: {stderr}");
    let (code, empty, _) = audit_sql(&db, &["SELECT 1 AS n WHERE 1 = 0", "--format", "json"]);
    assert_eq!((code, empty.as_str()), (0, "[]\n"));
    let (code, table, _) = audit_sql(&db, &["SELECT 1 AS n UNION ALL SELECT 2", "--format", "table"]);
    assert_eq!(code, 0);
    assert!(table.ends_with("(2 rows)\n"), "{table}");
}
}

/// Postgres only: what the server itself refuses once `audit sql` has switched to the read-only
/// role, written so that the text checks do not see it (those are a second layer, not the wall).
/// The test's connection is a superuser's, which is what makes a switch back tempting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_what_the_read_only_role_may_not_do() {
    let Some(db) = TestDb::postgres().await else { return };
    let store = db.store().await;
    let pool = store.postgres_pool().unwrap();
    let reader: String = sqlx::query_scalar("SELECT audit_sql_role_name()").fetch_one(pool).await.unwrap();

    // The query runs as the role, which is not a superuser and cannot log in.
    let (code, json, stderr) =
        audit_sql(&db, &["SELECT current_user AS who, session_user AS login", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let who: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(who[0]["who"], reader.as_str());
    let (superuser, login): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolcanlogin FROM pg_roles WHERE rolname = $1")
            .bind(&reader)
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(!superuser && !login);

    // Another session, which the query will try to end.
    let mut victim = sqlx::PgConnection::connect(db.url.expose()).await.unwrap();
    let victim_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut victim).await.unwrap();
    let slot = format!("audit_test_{}", std::process::id());
    let attempts = [
        format!(r#"SELECT U&"pg\005fterminate\005fbackend"({victim_pid})"#),
        format!("SELECT pg_create_physical_replication_slot('{slot}')"),
        "SELECT pg_stat_reset()".to_string(),
        "SELECT pg_read_file('/etc/passwd')".to_string(),
        "SELECT pg_ls_dir('.')".to_string(),
        // A switch back to the session's own (superuser) rights, by the GUCs themselves...
        "SELECT set_config('role', session_user, true), pg_read_file('/etc/passwd')".to_string(),
        "SELECT set_config('session_authorization', session_user, true)".to_string(),
        // ...or planned at run time, after the switch, from a string built in the query.
        "SELECT set_config('role', session_user, true), query_to_xml('SELECT pg_read_' || 'file(''/etc/passwd'')', true, false, '')"
            .to_string(),
    ];
    let server_said = ["permission denied", "must be superuser", "must be a superuser", "cannot set parameter"];
    for attempt in &attempts {
        // The command refuses them (most by its text checks, the second layer)...
        let (code, stdout, stderr) = audit_sql(&db, &[attempt]);
        assert_eq!(code, 2, "{attempt} must fail: {stdout}{stderr}");
        assert!(!stdout.contains("root:"), "{attempt}: {stdout}");
        // ...and the server itself, with no text check in front of it.
        let mut rows = Collect::default();
        let err = store.read_only_query(attempt, Duration::from_secs(10), &mut rows).await.unwrap_err();
        let text = audit::error_text(&err);
        assert!(server_said.iter().any(|s| text.contains(s)), "{attempt}: not refused by the server: {text}");
        assert!(!format!("{:?}", rows.rows).contains("root:"), "{attempt}");
    }
    // Nothing happened: the session lives, no slot was made, the statistics were not reset.
    let alive: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut victim).await.expect("the other session is alive");
    assert_eq!(alive, 1);
    let slots: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1")
        .bind(&slot)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(slots, 0);

    // Postgres's own quoting: a `;` inside dollar quotes is not a second statement.
    let (code, json, stderr) =
        audit_sql(&db, &["SELECT $$;$$ AS a, $tag$ ; $x$ $tag$ AS b, E'\\';' AS c", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v, serde_json::json!([{"a": ";", "b": " ; $x$ ", "c": "';"}]));
    let (code, _, stderr) = audit_sql(&db, &["SELECT $$;$$; DELETE FROM serial_events"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("one statement at a time"), "{stderr}");
    // Writes stay refused, by the text check and by the server behind it.
    exec(&store, "INSERT INTO event_types (event_type, step, quantity_delta, doc_type, description) VALUES ('x', 0, 0, 'x', 'x')").await;
    let (code, _, stderr) =
        audit_sql(&db, &["WITH doomed AS (SELECT 1) DELETE FROM event_types WHERE event_type = 'x'"]);
    assert_eq!(code, 2);
    let refused = ["read-only", "permission denied", "cannot open DELETE query"];
    assert!(refused.iter().any(|r| stderr.contains(r)), "{stderr}");
    assert_eq!(count(&store, "SELECT count(*) FROM event_types WHERE event_type = 'x'").await, 1);
    victim.close().await.ok();
}

/// Postgres only: a database migrated by a user that may not create roles still works; every
/// `audit sql` run says the read-only role is missing and how to fix it, and the fix it prints
/// works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_without_the_role_says_so_on_every_run_and_the_printed_fix_works() {
    let Some(db) = TestDb::postgres().await else { return };
    let store = db.store().await;
    let admin = store.postgres_pool().unwrap().clone();
    let database: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&admin).await.unwrap();
    // A fresh database owned by a user without CREATEROLE, migrated by that user.
    let owner = format!("{database}_owner");
    let owned = format!("{database}_owned");
    let reader = format!("audit_sql_{owned}");
    // Dropped even when an assertion fails: roles outlive the test's database.
    let _cleanup = Cleanup {
        admin_url: db.url.expose().to_string(),
        statements: vec![
            format!("DROP DATABASE IF EXISTS {owned} WITH (FORCE)"),
            format!("DROP ROLE IF EXISTS {reader}"),
            format!("DROP ROLE IF EXISTS {owner}"),
        ],
    };
    for statement in [format!("CREATE ROLE {owner} LOGIN"), format!("CREATE DATABASE {owned} OWNER {owner}")] {
        sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&admin).await.unwrap();
    }
    let mut url = url::Url::parse(db.url.expose()).unwrap();
    url.set_username(&owner).unwrap();
    url.set_path(&owned);
    let owned_url = url.to_string();
    let run = |args: &[&str]| tokio::task::block_in_place(|| run_audit(&owned_url, args, &[]));

    let (code, stdout, stderr) = run(&["migrate"]);
    assert_eq!(code, 0, "the migration does not need the role: {stdout}{stderr}");
    for _ in 0..2 {
        let (code, json, stderr) = run(&["sql", "SELECT current_user AS who", "--format", "json"]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains(&format!("the read-only role \"{reader}\" is not set up")), "{stderr}");
        assert!(stderr.contains("CREATE ROLE") && stderr.contains("GRANT"), "{stderr}");
        assert!(json.contains(&owner), "{json}");
    }
    // The statements the warning prints, run once by an administrator, in that database.
    let (_, _, stderr) = run(&["sql", "SELECT 1"]);
    let fix = stderr.split("in this database: ").nth(1).unwrap().split(" (README").next().unwrap().to_string();
    let mut admin_url = url::Url::parse(db.url.expose()).unwrap();
    admin_url.set_path(&owned);
    let mut conn = sqlx::PgConnection::connect(admin_url.as_str()).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(fix)).execute(&mut conn).await.unwrap();
    conn.close().await.ok();
    let (code, json, stderr) = run(&["sql", "SELECT current_user AS who", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.is_empty(), "fixed: {stderr}");
    assert!(json.contains(&reader), "{json}");
}

/// Rows as the store hands them over.
#[derive(Default)]
struct Collect {
    columns: Vec<String>,
    rows: Vec<Vec<serde_json::Value>>,
}

impl audit::store::adhoc::RowSink for Collect {
    fn guard(&mut self, _: &audit::store::adhoc::Guard) {}
    fn columns(&mut self, columns: &[String]) -> std::io::Result<()> {
        self.columns = columns.to_vec();
        Ok(())
    }
    fn row(&mut self, values: Vec<serde_json::Value>) -> std::io::Result<()> {
        self.rows.push(values);
        Ok(())
    }
}

/// Runs its statements on an admin connection when dropped, on a thread and runtime of its own
/// (drop runs inside the test's runtime).
struct Cleanup {
    admin_url: String,
    statements: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (url, statements) = (self.admin_url.clone(), std::mem::take(&mut self.statements));
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&url).await {
                    for statement in statements {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&mut admin).await;
                    }
                }
            });
        })
        .join();
    }
}

/// Postgres only: the statement timeout is the server's own, so a query does not outlive a
/// client that is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_query_does_not_outlive_a_killed_client() {
    let Some(db) = TestDb::postgres().await else { return };
    let store = db.store().await;
    let pool = store.postgres_pool().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_audit"))
        .args(["sql", "SELECT pg_sleep(1000)", "--timeout", "2s"])
        .env("AUDIT_DATABASE_URL", db.url_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep'",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    };
    let started = Instant::now();
    while running().await == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the query never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The server ends it at the timeout, not after 1000 s.
    while running().await > 0 {
        assert!(started.elapsed() < Duration::from_secs(15), "the query outlived its client");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SQLite: what is one statement is SQLite's parser's answer, not a text splitter's. A `$name(...)`
/// parameter (Tcl style) may hold a quote, which a splitter takes for a string's start, hiding the
/// `;` after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_counts_statements_with_its_own_parser() {
    let db = TestDb::sqlite().await;
    let store = db.store().await;
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    // sqlx binds `$1(...)` as parameter 1 (its leading digits), left unbound: NULL.
    let sneaky = format!("SELECT $1(') ; VACUUM INTO '{}' ; SELECT $2(')", copy.display());
    let (code, stdout, stderr) = audit_sql(&db, &[&sneaky]);
    assert_eq!(code, 2, "{stdout}");
    assert!(stderr.contains("one statement at a time"), "{stderr}");
    assert!(!copy.exists(), "the second statement ran");
    // What SQLite reads as one statement runs, `;` inside a parameter's name and all.
    let (code, json, stderr) = audit_sql(&db, &["SELECT $1(;) IS NULL AS unbound; -- done", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&json).unwrap(), serde_json::json!([{"unbound": 1}]));
    // Behind the text checks, query_only refuses what a read-only file still allows.
    let mut rows = Collect::default();
    let vacuum = format!("VACUUM INTO '{}'", copy.display());
    let err = store.read_only_query(&vacuum, Duration::from_secs(10), &mut rows).await.unwrap_err();
    // SQLite may leave the empty file it opened; no database was copied into it.
    let copied = std::fs::metadata(&copy).map(|m| m.len()).unwrap_or(0);
    assert_eq!(copied, 0, "VACUUM INTO ran: {}", audit::error_text(&err));
    assert!(audit::error_text(&err).contains("readonly"), "{}", audit::error_text(&err));
}

both_backends! {
/// The time limit bounds the database's work: a fast query whose output a slow reader takes
/// longer than the limit to read is not stopped.
async fn the_timeout_does_not_count_a_slow_reader(db: TestDb) {
    let _store = db.store().await;
    // Two megabytes, far more than a pipe holds; well under a second of the database's time.
    let rows = 20_000;
    let query = match db.url.backend() {
        audit::store::Backend::Sqlite => format!(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows}) \
             SELECT x, printf('%.100c', 'x') AS filler FROM c"
        ),
        audit::store::Backend::Postgres => {
            format!("SELECT g AS x, repeat('x', 100) AS filler FROM generate_series(1, {rows}) g")
        }
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_audit"))
        .args(["sql", &query, "--format", "csv", "--timeout", "2s"])
        .env("AUDIT_DATABASE_URL", db.url_string())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A reader that looks away for five seconds (the pipe fills, audit waits), then reads.
    std::thread::sleep(Duration::from_secs(5));
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert_eq!(out.lines().count(), rows + 1, "a header and every row");
}
}

/// Postgres: rows are written as the server makes them, not once the whole result is built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rows_arrive_while_the_query_still_runs() {
    let Some(db) = TestDb::postgres().await else { return };
    let _store = db.store().await;
    // The first rows come at once, the last ones after four seconds.
    let query = "SELECT g, CASE WHEN g = 1500 THEN pg_sleep(4) END AS pause FROM generate_series(1, 2000) g";
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_audit"))
        .args(["sql", query, "--format", "csv"])
        .env("AUDIT_DATABASE_URL", db.url_string())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    let n = stdout.read(&mut first).unwrap();
    let first_at = started.elapsed();
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(n > 0 && first.starts_with(b"g,pause\n"), "{:?}", String::from_utf8_lossy(&first[..n]));
    assert!(first_at < Duration::from_secs(3), "the first row came after {first_at:?}");
    assert!(started.elapsed() >= Duration::from_secs(4), "the whole query takes four seconds");
    assert_eq!(
        String::from_utf8_lossy(&first[..n]).lines().count() + String::from_utf8_lossy(&rest).lines().count() - 1,
        2001
    );
}

/// Postgres: the read-only role may read the schema's version, the output keeps columns that
/// share a name, a syntax error says on which line, and --timeout stays in a sane range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_schema_version_duplicate_names_and_error_lines() {
    let Some(db) = TestDb::postgres().await else { return };
    let _store = db.store().await;
    let (code, json, stderr) =
        audit_sql(&db, &["SELECT max(version) AS v FROM refinery_schema_history", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.is_empty(), "as the read-only role: {stderr}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["v"].as_i64(), Some(i64::from(audit::store::migrate::latest_version())));
    let (code, _, stderr) = audit_sql(&db, &["SELECT 1,\n  2\nFROM WHERE"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("at line 3") && stderr.contains("syntax error"), "{stderr}");
}

both_backends! {
async fn duplicate_column_names_are_all_kept(db: TestDb) {
    let _store = db.store().await;
    let (code, json, stderr) = audit_sql(&db, &["SELECT 1 AS a, 2 AS a, 3 AS a_2", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v, serde_json::json!([{"a": 1, "a_3": 2, "a_2": 3}]));
    for timeout in ["1ms", "2d"] {
        let (code, _, stderr) = audit_sql(&db, &["SELECT 1", "--timeout", timeout]);
        assert_eq!(code, 2, "{timeout}");
        assert!(stderr.contains("100ms to 24h"), "{stderr}");
    }
}
}

both_backends! {
/// `audit sql ... | head`: the reader going away ends audit quietly, with success.
async fn a_closed_stdout_ends_audit_sql_quietly(db: TestDb) {
    let _store = db.store().await;
    let query = match db.url.backend() {
        audit::store::Backend::Sqlite => {
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) SELECT x FROM c"
        }
        audit::store::Backend::Postgres => "SELECT g FROM generate_series(1, 100000) g",
    };
    for format in ["csv", "json", "table"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_audit"))
            .args(["sql", query, "--format", format])
            .env("AUDIT_DATABASE_URL", db.url_string())
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // `head -1`: one read, then the pipe closes.
        let mut stdout = child.stdout.take().unwrap();
        let mut line = [0u8; 16];
        assert!(stdout.read(&mut line).unwrap() > 0);
        drop(stdout);
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        assert_eq!(status.code(), Some(0), "{format}: {stderr}");
        assert!(stderr.is_empty(), "{format}: {stderr}");
    }
}
}
