//! Migrations: refinery's runner over a sqlx connection.
//!
//! refinery has no sqlx driver, so this module implements its async traits for a sqlx
//! transaction. The whole upgrade runs inside one outer transaction that also serialises
//! concurrent migrators: `BEGIN IMMEDIATE` takes SQLite's write lock up front, and on Postgres a
//! transaction-scoped advisory lock makes a second process wait, then find nothing left to do.
//! Each migration runs in a savepoint, so a failing one leaves the database as it was.

use refinery_core::traits::r#async::{AsyncQuery, AsyncTransaction};
use refinery_core::{AsyncMigrate, Migration, Runner};
use sqlx::{Connection, Postgres, Row, Sqlite, Transaction};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::StoreError;

mod embedded {
    pub mod sqlite {
        refinery::embed_migrations!("migrations/sqlite");
    }
    pub mod postgres {
        refinery::embed_migrations!("migrations/postgres");
    }
}

/// refinery's history table; its name is part of the schema users see.
pub const HISTORY_TABLE: &str = "refinery_schema_history";

/// Arbitrary but fixed key of the Postgres advisory lock that serialises migrators.
const PG_MIGRATION_LOCK: i64 = 0x6175_6469_745f_6d69; // "audit_mi"

/// What a migration run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Names of the migrations applied by this run, oldest first (`V1__audit_trail`, ...).
    pub applied: Vec<String>,
    /// The schema version after the run.
    pub version: i32,
}

pub(crate) fn sqlite_runner() -> Runner {
    embedded::sqlite::migrations::runner()
}

pub(crate) fn postgres_runner() -> Runner {
    embedded::postgres::migrations::runner()
}

include!(concat!(env!("OUT_DIR"), "/latest_migration.rs"));

/// The newest schema version this binary knows (from the file names, by `build.rs`).
pub fn latest_version() -> i32 {
    LATEST_MIGRATION
}

/// A sqlx transaction seen by refinery as a database connection.
pub(crate) struct TxMigrator<'t, DB: sqlx::Database> {
    tx: &'t mut Transaction<'static, DB>,
}

macro_rules! impl_migrator {
    ($db:ty) => {
        impl AsyncTransaction for TxMigrator<'_, $db> {
            type Error = sqlx::Error;

            async fn execute<'a, T: Iterator<Item = &'a str> + Send + 'a>(
                &'a mut self,
                queries: T,
            ) -> Result<usize, Self::Error> {
                // A savepoint: one migration and its history row land together or not at all.
                let mut savepoint = self.tx.begin().await?;
                let mut count = 0;
                for query in queries {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(query.to_string())).execute(&mut *savepoint).await?;
                    count += 1;
                }
                savepoint.commit().await?;
                Ok(count)
            }
        }

        impl AsyncQuery<Vec<Migration>> for TxMigrator<'_, $db> {
            async fn query<'a>(&'a mut self, query: &'a str) -> Result<Vec<Migration>, Self::Error> {
                let rows = sqlx::query(sqlx::AssertSqlSafe(query.to_string())).fetch_all(&mut **self.tx).await?;
                rows.iter().map(history_row).collect()
            }
        }

        impl AsyncMigrate for TxMigrator<'_, $db> {}
    };
}

impl_migrator!(Sqlite);
impl_migrator!(Postgres);

fn history_row<R: Row>(row: &R) -> Result<Migration, sqlx::Error>
where
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let decode = |what: &str, err: String| sqlx::Error::Decode(format!("{HISTORY_TABLE}.{what}: {err}").into());
    let version: i32 = row.try_get(0)?;
    let name: String = row.try_get(1)?;
    let applied_on: String = row.try_get(2)?;
    let checksum: String = row.try_get(3)?;
    let applied_on = OffsetDateTime::parse(&applied_on, &Rfc3339).map_err(|e| decode("applied_on", e.to_string()))?;
    let checksum = checksum.parse::<u64>().map_err(|e| decode("checksum", e.to_string()))?;
    Ok(Migration::applied(version, name, applied_on, checksum))
}

/// Applies pending migrations on SQLite, holding the write lock for the whole upgrade.
pub(crate) async fn migrate_sqlite(pool: &sqlx::SqlitePool) -> Result<MigrationReport, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query(CREATE_HISTORY_TABLE).execute(&mut *tx).await.map_err(history_table_error)?;
    let report = run(&mut TxMigrator { tx: &mut tx }, sqlite_runner()).await?;
    if report.applied.iter().any(|m| m == CLOSE_MATCHES) {
        backfill_keys_sqlite(&mut tx, BACKFILL_PAGE).await?;
    }
    tx.commit().await?;
    Ok(report)
}

/// Fills `serial_keys` from the recorded serials, `page` distinct ones at a time in the order
/// of the serial index, so that memory stays flat however many there are.
async fn backfill_keys_sqlite(tx: &mut sqlx::SqliteConnection, page: i64) -> Result<(), sqlx::Error> {
    let mut after: Option<(String, String)> = None;
    loop {
        let query = match &after {
            None => sqlx::query_as(SERIALS_FIRST),
            Some((company, serial)) => sqlx::query_as(SERIALS_AFTER).bind(serial.clone()).bind(company.clone()),
        };
        let serials: Vec<(String, String)> = query.bind(page).fetch_all(&mut *tx).await?;
        let Some(last) = serials.last().cloned() else { return Ok(()) };
        super::close::backfill(&mut *tx, serials).await?;
        after = Some(last);
    }
}

/// Applies pending migrations on Postgres under an advisory lock held until commit.
pub(crate) async fn migrate_postgres(pool: &sqlx::PgPool) -> Result<MigrationReport, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_MIGRATION_LOCK).execute(&mut *tx).await?;
    sqlx::query(CREATE_HISTORY_TABLE).execute(&mut *tx).await.map_err(history_table_error)?;
    let report = run(&mut TxMigrator { tx: &mut tx }, postgres_runner()).await?;
    if report.applied.iter().any(|m| m == CLOSE_MATCHES) {
        // A cursor in the migration's transaction: the serials a page at a time, memory flat.
        sqlx::query(sqlx::AssertSqlSafe(format!("DECLARE v13_serials NO SCROLL CURSOR FOR {SERIALS}")))
            .execute(&mut *tx)
            .await?;
        loop {
            let fetch = format!("FETCH {BACKFILL_PAGE} FROM v13_serials");
            let serials: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(fetch)).fetch_all(&mut *tx).await?;
            if serials.is_empty() {
                break;
            }
            super::close::backfill(&mut *tx, serials).await?;
        }
        sqlx::query("CLOSE v13_serials").execute(&mut *tx).await?;
        // Statistics now: without them the planner reads all of a company's keys for each
        // close-match range until autovacuum gets to the table.
        sqlx::query("ANALYZE serial_keys").execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(report)
}

/// The migration that creates `serial_keys`, which is then filled from the recorded serials
/// (normalised here, in one place, rather than in each dialect's SQL).
const CLOSE_MATCHES: &str = "V13__close_matches";
const SERIALS: &str = "SELECT DISTINCT company_id, serial FROM serial_events";
/// Distinct serials read per step of the backfill.
const BACKFILL_PAGE: i64 = 10_000;
/// On SQLite, pages in the order of `serial_events_by_serial` (serial, company_id, ...).
const SERIALS_FIRST: &str =
    "SELECT DISTINCT company_id, serial FROM serial_events ORDER BY serial, company_id LIMIT ?1";
const SERIALS_AFTER: &str = "SELECT DISTINCT company_id, serial FROM serial_events \
     WHERE (serial, company_id) > (?1, ?2) ORDER BY serial, company_id LIMIT ?3";

/// refinery creates its history table itself; doing it first lets us read the history without
/// a failing query, which would abort a Postgres transaction. Same DDL as refinery's.
const CREATE_HISTORY_TABLE: &str = "CREATE TABLE IF NOT EXISTS refinery_schema_history (
    version int4 PRIMARY KEY,
    name VARCHAR(255),
    applied_on VARCHAR(255),
    checksum VARCHAR(255))";

fn history_table_error(source: sqlx::Error) -> StoreError {
    StoreError::Query { what: "creating the migration history table".into(), source: source.into() }
}

async fn run<C>(conn: &mut C, runner: Runner) -> Result<MigrationReport, StoreError>
where
    C: AsyncMigrate + Send,
{
    let latest = runner.get_migrations().iter().map(|m| m.version()).max().unwrap_or(0);
    // Check before refinery's runner: it would log an error and carry on, and a newer binary's
    // schema may mean data this one would misread.
    let applied = runner.get_applied_migrations_async(conn).await?;
    if let Some(newest) = applied.iter().map(|m| m.version()).max()
        && newest > latest
    {
        return Err(StoreError::SchemaTooNew { found: newest, supported: latest });
    }
    let report = runner.set_abort_divergent(true).run_async(conn).await?;
    let applied_now: Vec<String> =
        report.applied_migrations().iter().map(|m| format!("V{}__{}", m.version(), m.name())).collect();
    let version = report
        .applied_migrations()
        .iter()
        .map(|m| m.version())
        .chain(applied.iter().map(|m| m.version()))
        .max()
        .unwrap_or(0);
    Ok(MigrationReport { applied: applied_now, version })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What refinery (and so `audit migrate`) does with gaps in the version numbers: versions
    /// above the newest applied one are applied in order whatever the gap, but a version below
    /// it that was never applied is refused. A database migrated by a build with V7 but no V6 is
    /// therefore refused by a later build that has both.
    #[tokio::test]
    async fn a_gap_in_versions_is_applied_in_order_but_a_lower_version_added_later_is_refused() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let m =
            |v: i32| Migration::unapplied(&format!("V{v}__t{v}"), &format!("CREATE TABLE t{v} (x INTEGER)")).unwrap();
        let migrate = |migrations: Vec<Migration>| {
            let pool = pool.clone();
            async move {
                let mut tx = pool.begin().await.unwrap();
                sqlx::query(CREATE_HISTORY_TABLE).execute(&mut *tx).await.unwrap();
                let report = run(&mut TxMigrator { tx: &mut tx }, Runner::new(&migrations)).await;
                tx.commit().await.unwrap();
                report
            }
        };
        let report = migrate(vec![m(1), m(3)]).await.unwrap();
        assert_eq!(report.applied, ["V1__t1", "V3__t3"]);
        let later = migrate(vec![m(1), m(2), m(3)]).await;
        assert!(
            matches!(&later, Err(StoreError::Migration(e)) if matches!(e.kind(), refinery_core::error::Kind::MissingVersion(_))),
            "{later:?}"
        );
    }

    /// The backfill reads the serials a page at a time: every distinct (company, serial) gets
    /// its key once, across page boundaries and companies sharing a serial.
    #[tokio::test]
    async fn v13_backfill_pages_through_every_serial_once() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let mut tx = pool.begin().await.unwrap();
        sqlx::query(CREATE_HISTORY_TABLE).execute(&mut *tx).await.unwrap();
        run(&mut TxMigrator { tx: &mut tx }, sqlite_runner()).await.unwrap();
        sqlx::raw_sql("DELETE FROM serial_keys").execute(&mut *tx).await.unwrap();
        let mut expected = Vec::new();
        for (i, serial) in ["A-1", "A-2", "B-1", "b-1", "C 3", "D-4", "E-5"].iter().enumerate() {
            for company in ["c1", "c2"].iter().take(1 + i % 2) {
                for line in ["1", "2"] {
                    sqlx::query(
                        "INSERT INTO serial_events (company_id, serial, doc_type, doc_id, line_collection, line_id, \
                         event_type, quantity_delta, observed_at, run_id) \
                         VALUES (?1, ?2, 'sales_order', 'd', 'lines', ?3, 'sold', -1, '2025-01-01T00:00:00Z', 1)",
                    )
                    .bind(company)
                    .bind(serial)
                    .bind(line)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                }
                expected.push((company.to_string(), serial.to_string()));
            }
        }
        backfill_keys_sqlite(&mut tx, 3).await.unwrap();
        let mut keys: Vec<(String, String)> =
            sqlx::query_as("SELECT company_id, serial FROM serial_keys").fetch_all(&mut *tx).await.unwrap();
        tx.rollback().await.unwrap();
        keys.sort();
        expected.sort();
        assert_eq!(expected.len(), 10);
        assert_eq!(keys, expected);
    }

    #[test]
    fn the_latest_version_is_the_newest_embedded_migration_of_each_dialect() {
        let newest = |r: Runner| r.get_migrations().iter().map(|m| m.version()).max();
        assert_eq!(newest(sqlite_runner()), Some(latest_version()));
        assert_eq!(newest(postgres_runner()), Some(latest_version()));
    }

    /// Orders stored before V12 name customers and vendors that were never fetched, and an
    /// unchanged order never asks for them: V12 owes one walk of each list an order names.
    async fn v12_owes_the_party_walks<C: AsyncMigrate + Send>(
        conn: &mut C,
        runner: fn() -> Runner,
        exec: impl AsyncFn(&mut C, &str),
        owed: impl AsyncFn(&mut C) -> Vec<(String, String, i64, chrono::DateTime<chrono::Utc>)>,
    ) {
        run(conn, runner().set_target(refinery_core::Target::Version(11))).await.unwrap();
        exec(
            conn,
            "INSERT INTO ingest_runs (company_id, command, status, started_at) \
                    VALUES ('c', 'ingest', 'succeeded', '2025-01-01T00:00:00Z')",
        )
        .await;
        for (doc_type, id, party) in [
            ("sales_order", "s1", "'cu1'"),
            ("purchase_order", "p1", "'v1'"),
            ("purchase_order", "p2", "'v2'"),
            ("stock_transfer", "t1", "NULL"),
        ] {
            exec(conn, &format!("INSERT INTO documents (company_id, doc_type, doc_id, party_id, raw, first_seen_at, first_run_id, \
                      changed_at, changed_run_id, last_seen_at, last_seen_run_id) VALUES ('c', '{doc_type}', '{id}', {party}, '{{}}', \
                      '2025-01-01T00:00:00Z', 1, '2025-01-01T00:00:00Z', 1, '2025-01-01T00:00:00Z', 1)")).await;
        }
        run(conn, runner()).await.unwrap();
        let expected = [("c".to_string(), "customers".to_string(), 1), ("c".to_string(), "vendors".to_string(), 1)];
        // The time reads back as the walk's start (as `Store::sync_state` reads it).
        let owed: Vec<_> = owed(conn).await.into_iter().map(|(c, s, w, _)| (c, s, w)).collect();
        assert_eq!(owed, expected);
    }

    const OWED: &str =
        "SELECT company_id, stream, walk_id, walk_started_at FROM sync_state WHERE walk_id IS NOT NULL ORDER BY stream";

    #[tokio::test]
    async fn v12_owes_sqlite_databases_their_customers_and_vendors() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let mut tx = pool.begin().await.unwrap();
        sqlx::query(CREATE_HISTORY_TABLE).execute(&mut *tx).await.unwrap();
        let mut conn = TxMigrator { tx: &mut tx };
        v12_owes_the_party_walks(
            &mut conn,
            sqlite_runner,
            async |c: &mut TxMigrator<'_, Sqlite>, sql: &str| {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(&mut **c.tx).await.unwrap();
            },
            async |c: &mut TxMigrator<'_, Sqlite>| sqlx::query_as(OWED).fetch_all(&mut **c.tx).await.unwrap(),
        )
        .await;
    }

    #[tokio::test]
    async fn v12_owes_postgres_databases_their_customers_and_vendors() {
        // As the integration tests: AUDIT_TEST_POSTGRES_URL, and a visible skip unless required.
        let admin_url = std::env::var("AUDIT_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let admin = match sqlx::PgPool::connect(&admin_url).await {
            Ok(admin) => admin,
            Err(e) if std::env::var("AUDIT_REQUIRE_POSTGRES").as_deref() == Ok("1") => panic!("no Postgres: {e}"),
            Err(e) => {
                eprintln!("SKIPPED Postgres test: no server ({e})");
                return;
            }
        };
        let name = format!("audit_v12_{}", std::process::id());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).execute(&admin).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
        let pool =
            sqlx::PgPool::connect(&format!("{}/{name}", admin_url.rsplit_once('/').expect("a database in the URL").0))
                .await
                .unwrap();
        let mut tx = pool.begin().await.unwrap();
        sqlx::query(CREATE_HISTORY_TABLE).execute(&mut *tx).await.unwrap();
        let mut conn = TxMigrator { tx: &mut tx };
        v12_owes_the_party_walks(
            &mut conn,
            postgres_runner,
            async |c: &mut TxMigrator<'_, Postgres>, sql: &str| {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(&mut **c.tx).await.unwrap();
            },
            async |c: &mut TxMigrator<'_, Postgres>| sqlx::query_as(OWED).fetch_all(&mut **c.tx).await.unwrap(),
        )
        .await;
        tx.rollback().await.unwrap();
        pool.close().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}"))).execute(&admin).await.unwrap();
    }
}
