//! The store on both backends: migrations, schema contract, URL handling.

mod common;

use audit::store::migrate::latest_version;
use audit::store::{Backend, Store, StoreError};
use common::{TestDb, exec, run_audit, strings};

/// Columns of `serial_events` that users write SQL against.
const CONTRACT_COLUMNS: &[&str] = &[
    "event_id",
    "company_id",
    "serial",
    "product_id",
    "doc_type",
    "doc_id",
    "doc_number",
    "line_collection",
    "line_id",
    "event_type",
    "occurred_at",
    "location_id",
    "sublocation",
    "quantity_delta",
    "doc_status",
    "observed_at",
    "run_id",
    "retracted_at",
    "retracted_run_id",
];

const TABLES: &[&str] = &[
    "serial_events",
    "documents",
    "document_changes",
    "ingest_runs",
    "sync_state",
    "locations",
    "products",
    "run_warnings",
    "customers",
    "vendors",
];

/// Migrations of each dialect (versions may have gaps: a number can be taken by a change not
/// merged yet).
fn migration_count() -> usize {
    std::fs::read_dir(format!("{}/migrations/sqlite", env!("CARGO_MANIFEST_DIR"))).unwrap().count()
}

async fn columns(store: &Store, table: &str) -> Vec<String> {
    let sql = match store.backend() {
        Backend::Sqlite => "SELECT name FROM pragma_table_info($1) ORDER BY cid",
        Backend::Postgres => {
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_name = $1 AND table_schema = current_schema() ORDER BY ordinal_position"
        }
    };
    strings(store, sql, table).await
}

both_backends! {
async fn migrations_from_empty(db: TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), None, "a fresh database has no schema");
    let report = store.migrate().await.unwrap();
    assert_eq!(report.version, latest_version());
    assert!(report.applied.iter().any(|m| m == "V1__audit_trail"), "{report:?}");
    assert_eq!(store.schema_version().await.unwrap(), Some(latest_version()));
    for table in TABLES {
        assert!(!columns(&store, table).await.is_empty(), "table {table} is missing");
    }
    assert_eq!(columns(&store, "serial_events").await, CONTRACT_COLUMNS);
}
}

both_backends! {
async fn migrating_again_is_a_no_op(db: TestDb) {
    let store = db.store().await;
    let again = store.migrate().await.unwrap();
    assert!(again.applied.is_empty(), "{again:?}");
    assert_eq!(again.version, latest_version());
    let rows = strings(&store, "SELECT name FROM refinery_schema_history WHERE name <> $1", "").await;
    assert_eq!(rows.len(), migration_count(), "one history row per migration: {rows:?}");
}
}

both_backends! {
async fn concurrent_migrations_apply_once(db: TestDb) {
    // Separate stores are separate pools, like separate processes.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = db.url.clone();
        tasks.push(tokio::spawn(async move {
            let store = Store::connect(&url).await.unwrap();
            store.migrate().await
        }));
    }
    let mut applied_total = 0;
    for task in tasks {
        let report = task.await.unwrap().expect("a concurrent migration failed");
        assert_eq!(report.version, latest_version());
        applied_total += report.applied.len();
    }
    assert_eq!(applied_total, migration_count(), "each migration applied by exactly one migrator");
    let store = db.store().await;
    let rows = strings(&store, "SELECT name FROM refinery_schema_history WHERE name <> $1", "").await;
    assert_eq!(rows.len(), migration_count(), "{rows:?}");
}
}

both_backends! {
async fn newer_schema_is_refused(db: TestDb) {
    let store = db.store().await;
    exec(
        &store,
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
         VALUES (999, 'from_the_future', '2030-01-01T00:00:00Z', '1')",
    )
    .await;
    match store.migrate().await {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!(found, 999);
            assert_eq!(supported, latest_version());
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    store.close().await;
    let (code, stdout, stderr) = run_audit(&db.url_string(), &["migrate"], &[]);
    assert_ne!(code, 0);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("version 999") && stderr.contains("upgrade audit"), "{stderr}");
}
}

both_backends! {
async fn migrate_command_prints_the_version(db: TestDb) {
    let (code, stdout, stderr) = run_audit(&db.url_string(), &["migrate"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&format!("schema version {}", latest_version())), "{stdout}");
    assert!(stdout.contains("V1__audit_trail"), "{stdout}");
    let (code, stdout, _) = run_audit(&db.url_string(), &["migrate"], &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("already up to date"), "{stdout}");
}
}

#[test]
fn unsupported_scheme_is_a_clear_error() {
    let (code, stdout, stderr) = run_audit("mysql://root:hunter2@localhost/audit", &["migrate"], &[]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("sqlite:") && stderr.contains("postgres://") && stderr.contains("postgresql://"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn password_is_redacted_in_connection_errors_at_every_verbosity() {
    // No such role or database: the connection fails at once and the error quotes the URL.
    let url = "postgres://alice:hunter2@127.0.0.1:5432/no_such_audit_db";
    for verbosity in [&[][..], &["-vvv"][..]] {
        let mut args = verbosity.to_vec();
        args.push("migrate");
        let (code, stdout, stderr) = run_audit(url, &args, &[]);
        assert_eq!(code, 2);
        assert!(stderr.contains("postgres://alice:***@127.0.0.1:5432/no_such_audit_db"), "{stderr}");
        assert!(!stderr.contains("hunter2") && !stdout.contains("hunter2"), "{stderr}");
    }
}

#[test]
fn sqlite_file_is_created_where_the_default_url_points() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_audit"))
        .arg("migrate")
        .current_dir(dir.path())
        .env_remove("AUDIT_DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("audit.db").exists());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("sqlite://audit.db: schema version"));
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_with_normal_sync_and_a_busy_timeout() {
    let db = TestDb::sqlite().await;
    let store = db.store().await;
    let pool = store.sqlite_pool().unwrap();
    // One connection, so the per-connection settings read are those the pool applied.
    let mut conn = pool.acquire().await.unwrap();
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut *conn).await.unwrap();
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut *conn).await.unwrap();
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout").fetch_one(&mut *conn).await.unwrap();
    assert_eq!(journal, "wal");
    assert_eq!(synchronous, 1, "synchronous=NORMAL");
    assert!(busy >= 5_000, "busy_timeout {busy} ms");
}

both_backends! {
async fn event_types_table_matches_the_code(db: TestDb) {
    let store = db.store().await;
    let rows = strings(
        &store,
        "SELECT event_type || ':' || CAST(step AS TEXT) FROM event_types WHERE $1 = $1 ORDER BY event_type",
        "",
    )
    .await;
    let mut expected: Vec<String> =
        audit::mapping::EventType::ALL.iter().map(|t| format!("{}:{}", t.as_str(), t.step())).collect();
    expected.sort();
    assert_eq!(rows, expected);
}
}

#[test]
fn the_views_are_the_same_sql_on_both_engines() {
    for file in ["V2__event_types_and_views.sql", "V5__effective_event_times.sql", "V8__serial_anomalies.sql"] {
        let read =
            |d: &str| std::fs::read_to_string(format!("{}/migrations/{d}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        // Only the two header comment lines, which name the other file, differ, how a view is
        // replaced (SQLite has no CREATE OR REPLACE VIEW), and lines marked as dialect.
        let body = |s: String| {
            s.lines().skip(2).filter(|l| !l.ends_with("-- dialect")).collect::<Vec<_>>().join("\n").replace(
                "DROP VIEW serial_current;\nCREATE VIEW serial_current",
                "CREATE OR REPLACE VIEW serial_current",
            )
        };
        let dialect = |d: &str| read(d).lines().filter(|l| l.ends_with("-- dialect")).count();
        assert!(dialect("sqlite") <= 1 && dialect("sqlite") == dialect("postgres"), "{file}");
        assert_eq!(body(read("sqlite")), body(read("postgres")), "{file}");
    }
    // A migration with a table keeps its types per engine; what follows the marker is the same.
    let file = "V9__manufacturing_and_counts.sql";
    let read =
        |d: &str| std::fs::read_to_string(format!("{}/migrations/{d}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let shared = |s: String| {
        let (_, rest) = s.split_once("-- The same text on both engines from here on").expect("the marker");
        rest.replace("DROP VIEW serial_current;\nCREATE VIEW serial_current", "CREATE OR REPLACE VIEW serial_current")
    };
    assert_eq!(shared(read("sqlite")), shared(read("postgres")), "{file}");
    // V11: the same views but for two marked lines; what follows the marker is Postgres's alone.
    let file = "V11__anomalies_as_of_their_clocks.sql";
    let read =
        |d: &str| std::fs::read_to_string(format!("{}/migrations/{d}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let postgres = read("postgres");
    let (views, _) = postgres.split_once("\n-- Postgres only from here on").expect("the marker");
    let body = |s: &str| s.lines().skip(2).filter(|l| !l.ends_with("-- dialect")).collect::<Vec<_>>().join("\n");
    let sqlite = read("sqlite");
    assert_eq!(body(sqlite.trim_end()), body(views.trim_end()), "{file}");
    let dialect = |s: &str| s.lines().filter(|l| l.ends_with("-- dialect")).count();
    assert_eq!((dialect(&sqlite), dialect(views)), (2, 2), "{file}");
}

#[test]
fn both_dialects_have_the_same_migration_versions() {
    let versions = |d: &str| {
        let mut v: Vec<String> = std::fs::read_dir(format!("{}/migrations/{d}", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().split("__").next().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(versions("sqlite"), versions("postgres"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_commands_do_not_wait_for_a_writer() {
    use sqlx::Connection;
    let db = TestDb::sqlite().await;
    db.store().await.close().await;
    // Another process in the middle of a write (an ingest's page, say).
    let mut writer = sqlx::SqliteConnection::connect(db.url.expose()).await.unwrap();
    let tx = writer.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let started = std::time::Instant::now();
    let (code, _, stderr) = tokio::task::block_in_place(|| run_audit(&db.url_string(), &["timeline", "SN-1"], &[]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not in the audit trail"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "waited {:?} for the writer", started.elapsed());
    tx.rollback().await.unwrap();
}

/// Every table, view and column of the audit schema carries a comment on Postgres, as the
/// SQLite CREATE statements do (refinery's own history table is not ours to describe).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_comments_every_table_view_and_column() {
    let Some(db) = TestDb::postgres().await else { return };
    let store = db.store().await;
    let uncommented = strings(
        &store,
        "SELECT c.relname || CASE WHEN a.attname IS NULL THEN '' ELSE '.' || a.attname END \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
              AND col_description(c.oid, a.attnum) IS NULL \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'v', 'm') AND c.relname <> $1 \
           AND (obj_description(c.oid, 'pg_class') IS NULL OR a.attname IS NOT NULL) \
         ORDER BY 1",
        audit::store::migrate::HISTORY_TABLE,
    )
    .await;
    assert_eq!(uncommented, Vec::<String>::new(), "objects of the audit schema without a COMMENT ON");
    let tables = strings(
        &store,
        "SELECT count(*)::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'v') AND c.relname <> $1",
        audit::store::migrate::HISTORY_TABLE,
    )
    .await;
    assert!(tables[0].parse::<i64>().unwrap() > 20, "the query saw the schema: {tables:?}");
}

both_backends! {
async fn serial_stock_latest_names_the_product_and_location(db: TestDb) {
    let store = db.store().await;
    exec(&store, "INSERT INTO stock_snapshots (company_id, run_id, started_at, completed_at) \
                  VALUES ('c', 1, '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z')").await;
    exec(&store, "INSERT INTO serial_stock (snapshot_id, company_id, product_id, serial, location_id, quantity_on_hand, \
                  observed_at, run_id) VALUES (1, 'c', 'p1', 'SN-1', 'l1', 1, '2025-01-01T00:00:00Z', 1)").await;
    exec(&store, "INSERT INTO products (company_id, product_id, name, updated_at) VALUES ('c', 'p1', 'Widget', '2025-01-01T00:00:00Z')").await;
    exec(&store, "INSERT INTO locations (company_id, location_id, name, updated_at) VALUES ('c', 'l1', 'Main', '2025-01-01T00:00:00Z')").await;
    let rows = strings(&store, "SELECT serial || ' ' || product_name || ' ' || location_name FROM serial_stock_latest WHERE company_id = $1", "c").await;
    assert_eq!(rows, ["SN-1 Widget Main"]);
}
}

both_backends! {
/// A failed first ingest removes the database file it created only while nothing but its own
/// ended runs is in it: another process's running ingest, lock or company keeps the file.
async fn only_a_database_of_ended_runs_of_one_company_counts_as_untouched(db: TestDb) {
    let store = db.store().await;
    let args = serde_json::json!({});
    assert!(store.holds_only_ended_runs_of("c1").await.unwrap(), "an empty database");
    let run = store.begin_run("c1", "ingest", &args, None).await.unwrap();
    assert!(!store.holds_only_ended_runs_of("c1").await.unwrap(), "a run still going");
    store.mark_interrupted(run, "failed").await.unwrap();
    assert!(store.holds_only_ended_runs_of("c1").await.unwrap(), "its own ended run");
    let lock = store.try_lock("c2", "ingest").await.unwrap().unwrap();
    assert!(!store.holds_only_ended_runs_of("c1").await.unwrap(), "another process's lock");
    lock.release().await;
    assert!(store.holds_only_ended_runs_of("c1").await.unwrap());
    let other = store.begin_run("c2", "ingest", &args, None).await.unwrap();
    store.mark_interrupted(other, "failed").await.unwrap();
    assert!(!store.holds_only_ended_runs_of("c1").await.unwrap(), "another company's run");
}
}
