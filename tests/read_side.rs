//! The read commands' edges (review of issues 14 and 19): a read-only SQLite file, data with
//! terminal controls, a reader that goes away, a database with no snapshot yet, and logs that
//! are not on a terminal.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};

use audit::store::Store;
use common::*;

const COMPANY: &str = "c0000000-0000-4000-8000-000000000001";

/// A serial that would recolour and retitle a terminal printed raw.
const HOSTILE: &str = "SN\u{1b}]0;pwned\u{7}\u{1b}[31mRED";

fn time(s: &str) -> chrono::DateTime<chrono::Utc> {
    audit::mapping::parse_date(s).unwrap()
}

/// Events (serial, document, event type, date) of product `p` at location `L1`.
async fn insert_events(store: &Store, events: &[(&str, &str, &str, &str)]) {
    const SQL: &str = "INSERT INTO serial_events (company_id, serial, product_id, doc_type, doc_id, doc_number, \
         line_collection, line_id, event_type, occurred_at, location_id, quantity_delta, observed_at, run_id) \
         SELECT $1, $2, 'p', $3, $4, $4, 'lines', $5, $6, $7, 'L1', t.quantity_delta, $8, 1 \
         FROM event_types t WHERE t.event_type = $6";
    for &(serial, doc, event_type, at) in events {
        let doc_type = if doc.starts_with("SO") { "sales_order" } else { "purchase_order" };
        let line = format!("{doc}/{serial}/{event_type}");
        macro_rules! run {
            ($pool:expr) => {
                sqlx::query(SQL)
                    .bind(COMPANY)
                    .bind(serial)
                    .bind(doc_type)
                    .bind(doc)
                    .bind(&line)
                    .bind(event_type)
                    .bind(time(at))
                    .bind(time("2026-01-01"))
                    .execute($pool)
                    .await
                    .unwrap()
                    .rows_affected()
            };
        }
        let done = match store.sqlite_pool() {
            Some(pool) => run!(pool),
            None => run!(store.postgres_pool().unwrap()),
        };
        assert_eq!(done, 1, "unknown event type {event_type}");
    }
}

/// A product with a name, as `products` keeps it.
async fn insert_product(store: &Store, name: &str) {
    const SQL: &str = "INSERT INTO products (company_id, product_id, name, updated_at) \
         VALUES ($1, 'p', $2, $3)";
    macro_rules! run {
        ($pool:expr) => {
            sqlx::query(SQL)
                .bind(COMPANY)
                .bind(name)
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

/// A complete snapshot with one line on hand: (serial, quantity).
async fn insert_snapshot(store: &Store, serial: &str, quantity: f64) {
    const SNAPSHOT: &str = "INSERT INTO stock_snapshots (company_id, run_id, started_at, completed_at) \
         VALUES ($1, 1, $2, $2) RETURNING snapshot_id";
    const LINE: &str = "INSERT INTO serial_stock (snapshot_id, company_id, product_id, serial, location_id, \
         quantity_on_hand, observed_at, run_id) VALUES ($1, $2, 'p', $3, 'L1', $4, $5, 1)";
    macro_rules! run {
        ($pool:expr) => {{
            let id: i64 =
                sqlx::query_scalar(SNAPSHOT).bind(COMPANY).bind(time("2026-02-01")).fetch_one($pool).await.unwrap();
            sqlx::query(LINE)
                .bind(id)
                .bind(COMPANY)
                .bind(serial)
                .bind(quantity)
                .bind(time("2026-02-01"))
                .execute($pool)
                .await
                .unwrap();
        }};
    }
    match store.sqlite_pool() {
        Some(pool) => run!(pool),
        None => run!(store.postgres_pool().unwrap()),
    }
}

fn audit(db: &TestDb, args: &[&str]) -> (i32, String, String) {
    tokio::task::block_in_place(|| run_audit(&db.url_string(), args, &[]))
}

both_backends! {
/// Serials and names from inFlow reach a terminal escaped in every table; JSON stays exact.
async fn control_characters_are_escaped_in_every_table(db: TestDb) {
    let store = db.store().await;
    insert_product(&store, "Widget\u{1b}[2J").await;
    // Picked before anything brought it in: an anomaly, with the serial in its explanation too.
    insert_events(&store, &[(HOSTILE, "SO-1", "picked", "2025-01-02")]).await;
    for args in [
        vec!["anomalies", "--format", "table"],
        vec!["timeline", HOSTILE, "--tree", "--format", "table"],
        vec!["timeline", HOSTILE, "--format", "table"],
        vec!["lookup", HOSTILE, "--format", "table"],
    ] {
        let (code, stdout, stderr) = audit(&db, &args);
        assert!(code == 0 || code == 1, "{args:?}: {stderr}");
        assert!(!stdout.contains('\u{1b}') && !stdout.contains('\u{7}'), "{args:?} printed raw controls: {stdout:?}");
        assert!(stdout.contains("SN\\u{1b}]0;pwned\\u{7}"), "{args:?}: {stdout}");
        assert!(stdout.contains("Widget\\u{1b}[2J"), "{args:?}: {stdout}");
    }
    let (code, json, _) = audit(&db, &["anomalies", "--format", "json"]);
    assert_eq!(code, 1);
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows[0]["serial"], HOSTILE, "JSON keeps the serial exact");
}
}

/// Runs audit with its stdout (or stderr) already closed by the reader, as `| head` leaves it.
fn with_closed(db: &TestDb, args: &[&str], close_stderr: bool) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_audit"))
        .args(args)
        .env("AUDIT_DATABASE_URL", db.url_string())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut kept = String::new();
    if close_stderr {
        drop(child.stderr.take());
        child.stdout.take().unwrap().read_to_string(&mut kept).unwrap();
    } else {
        drop(child.stdout.take());
        child.stderr.take().unwrap().read_to_string(&mut kept).unwrap();
    }
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), kept)
}

both_backends! {
/// `audit anomalies | head -1` and friends end quietly, with the answer's exit status, and a
/// closed stderr makes nothing panic.
async fn a_reader_that_goes_away_ends_the_command_quietly(db: TestDb) {
    let store = db.store().await;
    insert_events(&store, &[("GONE", "SO-1", "picked", "2025-01-02")]).await;
    for format in ["table", "json", "csv"] {
        let (code, stderr) =
            tokio::task::block_in_place(|| with_closed(&db, &["anomalies", "--format", format], false));
        assert_eq!(code, 1, "{format}: anomalies were found: {stderr}");
        assert!(!stderr.contains("error") && !stderr.contains("panicked"), "{format}: {stderr}");
        let (code, stderr) =
            tokio::task::block_in_place(|| with_closed(&db, &["timeline", "GONE", "--format", format], false));
        assert_eq!(code, 0, "{format}: {stderr}");
        assert!(stderr.is_empty(), "{format}: {stderr}");
    }
    // Notes on a closed stderr: dropped, not a panic (exit 101).
    let (code, _) = tokio::task::block_in_place(|| with_closed(&db, &["anomalies", "--format", "json"], true));
    assert_eq!(code, 1);
    let (code, _) = tokio::task::block_in_place(|| with_closed(&db, &["timeline", "NOSUCH"], true));
    assert_eq!(code, 1);
    let (code, _) = tokio::task::block_in_place(|| with_closed(&db, &["timeline", "NOSUCH", "--tree"], true));
    assert_eq!(code, 1);
}
}

both_backends! {
/// `audit lookup` tells "no snapshot yet" (and what to run) from "not on hand".
async fn lookup_says_when_there_is_no_snapshot_yet(db: TestDb) {
    let store = db.store().await;
    insert_events(&store, &[("S1", "PO-1", "received", "2025-01-01"), ("S2", "PO-1", "received", "2025-01-01")]).await;
    let (code, table, stderr) = audit(&db, &["lookup", "S1", "--format", "table"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(table.contains("no snapshot yet"), "{table}");
    assert!(stderr.contains("there is no stock snapshot yet") && stderr.contains("audit snapshot"), "{stderr}");
    let (code, _, stderr) = audit(&db, &["lookup", "NOSUCH", "--format", "table"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("unknown to the history (no snapshot yet)"), "{stderr}");
    // With a snapshot that lists S1 only, S2 is not on hand, and nothing is said about snapshots.
    insert_snapshot(&store, "S1", 1.0).await;
    let (code, table, stderr) = audit(&db, &["lookup", "S1", "S2", "--format", "table"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(table.contains("on hand at L1") && table.contains("not on hand"), "{table}");
    assert!(!table.contains("snapshot yet") && stderr.is_empty(), "{table}{stderr}");
}
}

/// Logs carry no colour codes when stderr is not a terminal (a file, a pipe, a journal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_off_a_terminal_have_no_colours() {
    let db = TestDb::sqlite().await;
    let _store = db.store().await;
    let (_, _, stderr) = audit(&db, &["-v", "anomalies", "--format", "json"]);
    assert!(stderr.contains("opening the database"), "a log line at -v: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
}

/// The read commands work on a SQLite database the user may only read, in a directory the user
/// may not write (a copy, a shared volume): no write, no WAL index to create. Run as another
/// user when the tests run as root (root may write anything).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_commands_work_on_a_read_only_sqlite_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let url = format!("sqlite://{}", path.display());
    {
        let store = Store::open(&url.parse().unwrap()).await.unwrap();
        insert_events(&store, &[("S1", "PO-1", "received", "2025-01-01"), ("S2", "SO-1", "picked", "2025-01-02")])
            .await;
        insert_snapshot(&store, "S1", 1.0).await;
        store.close().await;
    }
    assert!(!dir.path().join("audit.db-wal").exists(), "closed cleanly, no WAL left to read from");
    let root = unsafe_free_is_root();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let run = |args: &[&str]| {
        let mut cmd = if root {
            // nobody: may read the file and the directory, write neither.
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_audit")]);
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_audit"))
        };
        let out = cmd.args(args).env("AUDIT_DATABASE_URL", &url).env_remove("RUST_LOG").output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    if root && run(&["--version"]).0 != 0 {
        // The binary itself is out of nobody's reach (a private target directory).
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        eprintln!("SKIPPED read-only SQLite test: the audit binary cannot be run as nobody here");
        return;
    }
    for (args, expected) in [
        (vec!["anomalies", "--format", "json"], 1),
        (vec!["timeline", "S1", "--format", "json"], 0),
        (vec!["lookup", "S1", "--format", "json"], 0),
        (vec!["reconcile", "--format", "json", "--company-id", COMPANY], 0),
        (vec!["status", "--format", "json"], 0),
        (vec!["sql", "SELECT count(*) AS n FROM serial_events", "--format", "json"], 0),
    ] {
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, expected, "{args:?}: {stdout}{stderr}");
        assert!(!stdout.is_empty(), "{args:?}");
    }
    let (_, stdout, _) = run(&["sql", "SELECT count(*) AS n FROM serial_events", "--format", "json"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout).unwrap(), serde_json::json!([{"n": 2}]));
    // Nothing was written next to it.
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, ["audit.db"]);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Whether this process runs as root, from /proc (no libc call needed).
fn unsafe_free_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}
