//! The audit trail's storage: SQLite or Postgres behind one small interface.
//!
//! [`Store`] holds a pool of either backend, chosen at runtime from the URL. Queries are written
//! once where the SQL agrees (both engines accept `$1` placeholders, `ON CONFLICT`, partial
//! indexes and `RETURNING`): the `on_pool!` macro expands one body for each pool type, so each
//! is compiled against its own driver with native types (chrono times, JSON) instead of going
//! through `sqlx::Any`. Where the dialects differ, the arms are written out.

pub mod adhoc;
pub mod anomalies;
pub mod browse;
mod bulk;
pub mod capabilities;
pub mod close;
mod documents;
pub mod genealogy;
pub mod lock;
pub mod migrate;
mod nodelay;
pub mod query;
pub mod reference;
pub mod runs;
pub mod status;
pub mod stock;
pub mod url;
pub mod walks;
pub mod write;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgPool, SqlitePool};

pub use migrate::MigrationReport;
pub use url::{Backend, DatabaseUrl, UrlError};

/// How long to wait for a Postgres connection, refused ones retried (a server that is starting
/// up); with [`PG_DIRECT_TIMEOUT`], a database that is down is reported within about 10 s.
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(8);

/// The one direct attempt that says why the pool could not connect: a server that accepts the
/// connection but never answers would otherwise hold it for minutes.
const PG_DIRECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a Postgres connection is retried silently before audit says it is waiting.
const PG_NOTICE_AFTER: Duration = Duration::from_secs(1);

/// How long a SQLite writer waits for another one before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// sqlx logs a statement slower than a second as a warning; an analytical `audit sql` query or a
/// large page is not worth one. Shown with -v; every statement only with -vvv (-vv is for the
/// API's requests).
pub(crate) fn quiet_slow_statements<O: sqlx::ConnectOptions>(options: O) -> O {
    options.log_slow_statements(log::LevelFilter::Info, Duration::from_secs(1)).log_statements(log::LevelFilter::Trace)
}

/// Why the store failed, with what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not one audit can use.
    #[error(transparent)]
    Url(#[from] UrlError),

    /// The Postgres server answered, but has no database of that name.
    #[error(
        "the Postgres database {name} does not exist on {host}:{port} ({url}): create it with \
         `createdb -h {host} -p {port} -U {user} {name}` (or CREATE DATABASE {name}), or fix --database-url"
    )]
    NoSuchDatabase {
        /// The database's name.
        name: String,
        /// The server.
        host: String,
        /// Its port.
        port: u16,
        /// The user audit connects as.
        user: String,
        /// The URL, its password hidden.
        url: String,
    },

    /// The database could not be reached or opened.
    #[error("cannot open the {backend} database {url}")]
    Connect {
        /// The engine's name.
        backend: &'static str,
        /// The URL, its password hidden.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },

    /// The schema was brought up to date, yet a new connection finds it behind again: the
    /// database does not outlive its connection (`sqlite::memory:`).
    #[error(
        "the database {url} is empty again on every connection (an in-memory SQLite database keeps nothing \
         between connections); point --database-url at a database file"
    )]
    NotKept {
        /// The URL, its password hidden.
        url: String,
    },

    /// The schema is newer than this build.
    #[error(
        "the database schema is at version {found}, newer than this build of audit understands \
         (version {supported}); upgrade audit, or point --database-url at another database"
    )]
    SchemaTooNew {
        /// The schema's version.
        found: i32,
        /// The newest version this build knows.
        supported: i32,
    },

    #[error(
        "the database schema is at version {found}, older than this build of audit reads (version {supported}), \
         and bringing it up to date failed; run `audit migrate` once as a user who may write the database"
    )]
    /// The schema is older than this build and could not be brought up to date (a read-only file).
    SchemaBehind {
        /// The version the database is at.
        found: i32,
        /// The version this build reads.
        supported: i32,
        /// Why migrating failed.
        #[source]
        source: Box<StoreError>,
    },

    /// A migration failed (it rolled back).
    #[error("migrating the database schema failed")]
    Migration(#[from] refinery_core::Error),

    /// A statement failed.
    #[error("database error while {what}")]
    Query {
        /// What the store was doing.
        what: String,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(source: sqlx::Error) -> Self {
        StoreError::Query { what: "talking to the database".into(), source: source.into() }
    }
}

/// Adds what was being done to a database error.
pub(crate) trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, sqlx::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Query { what: what(), source: source.into() })
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

// Statements built at run time (`QueryBuilder`) vary with their data: batch sizes, list lengths.
// They run with `.persistent(false)`: cached, every variant would keep a prepared statement, and
// on SQLite one for a large batch holds hundreds of kilobytes.

/// Expands `$body` once per backend with `$pool` bound to that backend's pool, so a query
/// written once is compiled against each driver.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($pool) => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Implements a trait for each backend's connection from one body, so that steps inside a
/// transaction are written once and compiled against each driver.
macro_rules! for_each_connection {
    (impl $trait:ident { $($body:tt)* }) => {
        impl $trait for sqlx::SqliteConnection { $($body)* }
        impl $trait for sqlx::PgConnection { $($body)* }
    };
}
pub(crate) use for_each_connection;

/// "no such table" (SQLite) or undefined_table (Postgres).
fn is_missing_table(e: &dyn sqlx::error::DatabaseError) -> bool {
    e.code().as_deref() == Some("42P01") || e.message().contains("no such table")
}

/// Connects, waiting while another process holds the file's lock: opening switches the journal
/// to WAL, which SQLite refuses at once (without its busy handler) while a fresh file is being
/// set up by another process.
async fn connect_sqlite(pool: SqlitePoolOptions, options: SqliteConnectOptions) -> Result<SqlitePool, sqlx::Error> {
    let deadline = tokio::time::Instant::now() + SQLITE_BUSY_TIMEOUT;
    let mut wait = Duration::from_millis(10);
    loop {
        match pool.clone().connect_with(options.clone()).await {
            Err(sqlx::Error::Database(e))
                if e.message().contains("locked") && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_millis(500));
            }
            other => return other,
        }
    }
}

/// The options of a read-only SQLite connection that works, with `pragmas` added. A database
/// whose directory is read-only cannot be read that way once its WAL index is gone (SQLite would
/// have to create it): it is then opened as immutable, which is what such a file is to this
/// process.
///
/// The probe reads only the header (`PRAGMA schema_version`) on a connection without the
/// pragmas: a pragma such as `cache_size`, or any statement naming a table, makes SQLite parse
/// the whole schema, which was a third of what a short command like `audit timeline` cost.
pub(crate) async fn read_only_sqlite_options(
    base: SqliteConnectOptions,
    pragmas: &[(&'static str, &'static str)],
) -> Result<SqliteConnectOptions, sqlx::Error> {
    async fn probe(options: &SqliteConnectOptions) -> Result<(), sqlx::Error> {
        let mut conn = sqlx::SqliteConnection::connect_with(options).await?;
        let read = sqlx::query("PRAGMA schema_version").execute(&mut conn).await;
        conn.close().await.ok();
        read.map(|_| ())
    }
    let base = base.read_only(true);
    let chosen = match probe(&base).await {
        Ok(()) => base,
        Err(e) if cannot_open(&e) => {
            let immutable = base.immutable(true);
            probe(&immutable).await?;
            immutable
        }
        Err(e) => return Err(e),
    };
    Ok(pragmas.iter().fold(chosen, |options, (key, value)| options.pragma(*key, *value)))
}

/// SQLITE_CANTOPEN (14) and SQLITE_READONLY (8), as a read-only directory gives them.
fn cannot_open(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code();
            let primary = code.as_deref().and_then(|c| c.parse::<i32>().ok()).map(|c| c & 0xff);
            matches!(primary, Some(14 | 8))
        }
        _ => false,
    }
}

/// Opens a write transaction the way each engine wants it.
pub(crate) trait WritePool {
    type Db: sqlx::Database;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>;
}

impl WritePool for SqlitePool {
    type Db = sqlx::Sqlite;
    /// `BEGIN IMMEDIATE` takes the write lock up front: a deferred transaction that reads
    /// first and writes later can fail with "database is locked" instead of waiting.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl WritePool for PgPool {
    type Db = sqlx::Postgres;
    /// Without waiting for the WAL flush at commit. Safe here because every write transaction
    /// carries its own resume point (a page with the walk's position, a lock row): a server
    /// crash can only lose the last few transactions whole, and the next run redoes them.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        let mut tx = self.begin().await?;
        sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
        Ok(tx)
    }
}

/// A connection pool to the audit database.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    url: DatabaseUrl,
}

impl Store {
    /// Connects and brings the schema up to date: what every command that needs the schema does.
    pub async fn open(url: &DatabaseUrl) -> Result<Store, StoreError> {
        let store = Store::connect(url).await?;
        store.ensure_schema().await?;
        Ok(store)
    }

    /// Connects for a command that only reads: on SQLite a read-only connection, which works on
    /// a read-only file or directory too. A schema that is behind is brought up to date first
    /// (that needs write access once); a newer one is refused.
    pub async fn open_read_only(url: &DatabaseUrl) -> Result<Store, StoreError> {
        Store::open_read_only_after(url, false).await
    }

    async fn open_read_only_after(url: &DatabaseUrl, migrated: bool) -> Result<Store, StoreError> {
        if url.backend() != Backend::Sqlite {
            return Store::open(url).await;
        }
        let connect_err = |source| StoreError::Connect { backend: url.backend().name(), url: url.redacted(), source };
        let base = quiet_slow_statements(SqliteConnectOptions::from_str(url.expose()).map_err(connect_err)?);
        let pragmas = [("cache_size", "-8192"), ("query_only", "ON")];
        let options = read_only_sqlite_options(base, &pragmas).await.map_err(connect_err)?;
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.map_err(connect_err)?;
        let store = Store { pool: Pool::Sqlite(pool), url: url.clone() };
        let latest = migrate::latest_version();
        match store.schema_version().await? {
            Some(v) if v == latest => Ok(store),
            Some(v) if v > latest => Err(StoreError::SchemaTooNew { found: v, supported: latest }),
            _ if migrated => {
                store.close().await;
                Err(StoreError::NotKept { url: url.redacted() })
            }
            found => {
                store.close().await;
                match Store::open(url).await {
                    Ok(writer) => writer.close().await,
                    Err(e) => {
                        return Err(StoreError::SchemaBehind {
                            found: found.unwrap_or(0),
                            supported: latest,
                            source: Box::new(e),
                        });
                    }
                }
                Box::pin(Store::open_read_only_after(url, true)).await
            }
        }
    }

    /// Migrates only when the schema is behind: reading the version takes no lock, so commands
    /// that only read neither wait for a running ingest nor make one wait.
    pub async fn ensure_schema(&self) -> Result<(), StoreError> {
        let latest = migrate::latest_version();
        match self.schema_version().await? {
            Some(v) if v == latest => Ok(()),
            Some(v) if v > latest => Err(StoreError::SchemaTooNew { found: v, supported: latest }),
            _ => self.migrate().await.map(|_| ()),
        }
    }

    /// Connects without touching the schema.
    pub async fn connect(url: &DatabaseUrl) -> Result<Store, StoreError> {
        let connect_err = |source| StoreError::Connect { backend: url.backend().name(), url: url.redacted(), source };
        let pool = match url.backend() {
            Backend::Sqlite => {
                let options = quiet_slow_statements(SqliteConnectOptions::from_str(url.expose()).map_err(connect_err)?)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    // The writer's page cache, 64 MiB, and checkpoints every 200 MiB of WAL: with
                    // pages written in groups, a backfill of 1.28 million occurrences spent a
                    // third less time in the kernel (49 s of CPU instead of 59 s) than with 8 MiB
                    // and 40 MiB, for about 60 MB more memory. Commands that only read keep 8 MiB.
                    .pragma("cache_size", "-65536")
                    .pragma("wal_autocheckpoint", "50000");
                // One connection: SQLite has one writer at a time anyway, commands are sequential
                // (the lock's heartbeat waits between two transactions), and it bounds the page
                // cache's memory. An in-memory database could not have more than one either.
                let max = 1;
                let pool = connect_sqlite(SqlitePoolOptions::new().max_connections(max), options)
                    .await
                    .map_err(connect_err)?;
                Pool::Sqlite(pool)
            }
            Backend::Postgres => {
                let options = quiet_slow_statements(PgConnectOptions::from_str(url.expose()).map_err(connect_err)?);
                // One connection: commands are sequential, and the lock's heartbeat waits the few
                // milliseconds between two transactions. A second one would be opened only
                // because a released connection comes back to the pool asynchronously, and a TLS
                // connection costs about 100 ms (sqlx 0.9.0 leaves Nagle's algorithm on). A
                // refused connection is retried (a server may be starting up) until the timeout.
                let missing = |e: &sqlx::Error| {
                    (e.as_database_error().and_then(|d| d.code()).as_deref() == Some("3D000")).then(|| {
                        StoreError::NoSuchDatabase {
                            name: options.get_database().unwrap_or("postgres").to_string(),
                            host: options.get_host().to_string(),
                            port: options.get_port(),
                            user: options.get_username().to_string(),
                            url: url.redacted(),
                        }
                    })
                };
                // Retries are silent: say at once that the server is not answering yet.
                let (host, port) = (options.get_host().to_string(), options.get_port());
                let notice = tokio::spawn(async move {
                    tokio::time::sleep(PG_NOTICE_AFTER).await;
                    tracing::warn!(
                        "the Postgres server at {host}:{port} has not accepted a connection yet (down, refusing, or slow to answer); trying for {} s more",
                        (PG_ACQUIRE_TIMEOUT + PG_DIRECT_TIMEOUT - PG_NOTICE_AFTER).as_secs()
                    );
                });
                let watch = nodelay::WhileConnecting::start();
                let pool = PgPoolOptions::new()
                    .after_connect(|_, _| {
                        Box::pin(async {
                            nodelay::set_nodelay_on_open_sockets();
                            Ok(())
                        })
                    })
                    .max_connections(1)
                    .acquire_timeout(PG_ACQUIRE_TIMEOUT)
                    .connect_with(options.clone())
                    .await;
                drop(watch);
                notice.abort();
                match pool {
                    Ok(pool) => Pool::Postgres(pool),
                    // The pool says only "timed out"; one direct attempt tells why.
                    Err(sqlx::Error::PoolTimedOut) => {
                        let why =
                            match tokio::time::timeout(PG_DIRECT_TIMEOUT, sqlx::PgConnection::connect_with(&options))
                                .await
                            {
                                Ok(direct) => direct.err().unwrap_or(sqlx::Error::PoolTimedOut),
                                Err(_) => sqlx::Error::Io(std::io::Error::new(
                                    std::io::ErrorKind::TimedOut,
                                    format!(
                                        "the server at {}:{} accepted no connection or did not answer within {} s; \
                                     is it up, and is this its address?",
                                        options.get_host(),
                                        options.get_port(),
                                        (PG_ACQUIRE_TIMEOUT + PG_DIRECT_TIMEOUT).as_secs()
                                    ),
                                )),
                            };
                        return Err(missing(&why).unwrap_or_else(|| connect_err(why)));
                    }
                    Err(e) => return Err(missing(&e).unwrap_or_else(|| connect_err(e))),
                }
            }
        };
        Ok(Store { pool, url: url.clone() })
    }

    /// Which engine the store runs on.
    pub fn backend(&self) -> Backend {
        self.url.backend()
    }

    /// The database's URL (its `Display` hides the password).
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Applies pending migrations; safe to call from several processes at once.
    pub async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        match &self.pool {
            Pool::Sqlite(pool) => migrate::migrate_sqlite(pool).await,
            Pool::Postgres(pool) => migrate::migrate_postgres(pool).await,
        }
    }

    /// The highest applied migration version, or `None` for a database never migrated.
    pub async fn schema_version(&self) -> Result<Option<i32>, StoreError> {
        // One query, run outside any transaction: a missing history table is a fresh database.
        let result = on_pool!(self, pool => {
            sqlx::query_scalar::<_, Option<i32>>("SELECT max(version) FROM refinery_schema_history").fetch_one(pool).await
        });
        match result {
            Ok(version) => Ok(version),
            Err(sqlx::Error::Database(e)) if is_missing_table(e.as_ref()) => Ok(None),
            Err(e) => Err(StoreError::Query { what: "reading the schema version".into(), source: e.into() }),
        }
    }

    /// The SQLite pool, for tools and tests that need the driver itself.
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.pool {
            Pool::Sqlite(pool) => Some(pool),
            Pool::Postgres(_) => None,
        }
    }

    /// The Postgres pool, for tools and tests that need the driver itself.
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            Pool::Sqlite(_) => None,
        }
    }

    /// Refreshes the planner's statistics of the tables an ingest grows, and of the two fixed
    /// lists the views join (`event_types`, `anomaly_kinds`: too small for autovacuum ever to
    /// analyse them, and without statistics the `sql/` queries got other plans, up to 1.36 times
    /// slower, than after a manual `ANALYZE`). Postgres plans the per-page look-ups from them, and
    /// with none (a first backfill, or autovacuum off) it can pick a plan that reads every stored
    /// document of the type for each page. SQLite's plans do not depend on them here.
    pub async fn refresh_statistics(&self) -> Result<(), StoreError> {
        if let Pool::Postgres(pool) = &self.pool {
            sqlx::raw_sql(
                "ANALYZE documents; ANALYZE serial_events; ANALYZE serial_keys; ANALYZE genealogy_links; \
                 ANALYZE document_changes; ANALYZE products; ANALYZE customers; ANALYZE vendors; ANALYZE locations; \
                 ANALYZE event_types; ANALYZE anomaly_kinds",
            )
            .execute(pool)
            .await
            .context(|| "refreshing the planner's statistics".into())?;
        }
        Ok(())
    }

    /// Whether `changed` rows written since the statistics were refreshed make them stale: more
    /// than autovacuum's own threshold (50 rows and a tenth of the table, by the planner's last
    /// count of `serial_events`), or any at all before the table was ever analysed. Only
    /// Postgres keeps statistics that go stale this way.
    pub async fn statistics_stale(&self, changed: i64) -> Result<bool, StoreError> {
        let Pool::Postgres(pool) = &self.pool else { return Ok(false) };
        let tuples: Option<f32> =
            sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = to_regclass('serial_events')")
                .fetch_optional(pool)
                .await
                .context(|| "reading the planner's row count of serial_events".into())?;
        Ok(match tuples {
            Some(t) if t >= 0.0 => changed as f64 > 50.0 + 0.1 * f64::from(t),
            _ => changed > 0,
        })
    }

    /// Closes the pool, waiting for its connections to finish.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}
