//! The read side `audit serve` adds: a read-only pool, a document's serials, recent warnings and
//! where a serial was on a date. Everything else the web view shows comes from the functions the
//! commands use.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::query::EventFilter;
use super::{Backend, Context, DatabaseUrl, Pool, Store, StoreError, on_pool};
use crate::timeline::{self, History};

/// Connections of the read-only pool: a few pages may be built at once.
const READ_CONNECTIONS: u32 = 4;

/// What keeps the web view from writing, told once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadGuard {
    /// SQLite: connections opened read-only.
    ReadOnlyFile,
    /// Postgres: read-only transactions, as the database's read-only role (its name).
    ReaderRole(String),
    /// Postgres: read-only transactions with the connecting user's rights (the role is not set
    /// up, or the user may not assume it).
    ReadOnlyTransactions {
        /// The connecting user.
        user: String,
    },
}

impl std::fmt::Display for ReadGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadGuard::ReadOnlyFile => f.write_str("the database file is opened read-only"),
            ReadGuard::ReaderRole(role) => write!(f, "read-only transactions as the read-only role \"{role}\""),
            ReadGuard::ReadOnlyTransactions { user } => write!(
                f,
                "read-only transactions as \"{user}\" (the read-only role of `audit sql` is not available; \
                 README, section Security)"
            ),
        }
    }
}

/// The read-only role this user may assume, if it is set up.
const PG_READER: &str = "SELECT r.rolname::text FROM pg_roles r \
     WHERE r.rolname = audit_sql_role_name() AND pg_has_role(current_user, r.oid, 'MEMBER')";

impl Store {
    /// A pool that cannot write, for a process that only reads beside a running ingest: SQLite
    /// connections opened read-only (as `audit sql` does), or Postgres sessions whose
    /// transactions are read-only, as `audit sql`'s read-only role where it is set up. The
    /// schema is checked, never migrated.
    pub async fn connect_read_only(url: &DatabaseUrl) -> Result<(Store, ReadGuard), StoreError> {
        Store::connect_reader(url, None).await
    }

    /// [`Store::connect_read_only`], with every Postgres statement cancelled by the server after
    /// `limit` (`statement_timeout`), so that what `audit serve` gives up on ends by itself, and
    /// a wait for a connection as long (the page is answered 503 by then, not 500).
    pub async fn connect_read_only_within(
        url: &DatabaseUrl,
        limit: Duration,
    ) -> Result<(Store, ReadGuard), StoreError> {
        Store::connect_reader(url, Some(limit)).await
    }

    async fn connect_reader(url: &DatabaseUrl, limit: Option<Duration>) -> Result<(Store, ReadGuard), StoreError> {
        let connect_err = |source| StoreError::Connect { backend: url.backend().name(), url: url.redacted(), source };
        let (pool, guard) = match url.backend() {
            Backend::Sqlite => {
                let options =
                    super::quiet_slow_statements(SqliteConnectOptions::from_str(url.expose()).map_err(connect_err)?)
                        .read_only(true)
                        .busy_timeout(Duration::from_secs(5));
                let pool = SqlitePoolOptions::new()
                    .max_connections(READ_CONNECTIONS)
                    .connect_with(options)
                    .await
                    .map_err(connect_err)?;
                (Pool::Sqlite(pool), ReadGuard::ReadOnlyFile)
            }
            Backend::Postgres => {
                let options =
                    super::quiet_slow_statements(PgConnectOptions::from_str(url.expose()).map_err(connect_err)?);
                // The schema's version first, as the connecting user: the read-only role may
                // read the audit tables only, not refinery's history.
                let mut conn = sqlx::PgConnection::connect_with(&options).await.map_err(connect_err)?;
                let version = sqlx::query_scalar::<_, Option<i32>>("SELECT max(version) FROM refinery_schema_history")
                    .fetch_one(&mut conn)
                    .await;
                conn.close().await.ok();
                check_version(
                    url,
                    match version {
                        Ok(v) => v,
                        Err(sqlx::Error::Database(e)) if super::is_missing_table(e.as_ref()) => None,
                        Err(e) => {
                            return Err(StoreError::Query {
                                what: "reading the schema version".into(),
                                source: e.into(),
                            });
                        }
                    },
                )?;
                let pool = PgPoolOptions::new()
                    .max_connections(READ_CONNECTIONS)
                    .acquire_timeout(limit.map_or(super::PG_ACQUIRE_TIMEOUT, |l| l.max(super::PG_ACQUIRE_TIMEOUT)))
                    .after_connect(move |conn, _| {
                        Box::pin(async move {
                            super::nodelay::set_nodelay_on_open_sockets();
                            sqlx::query("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                                .execute(&mut *conn)
                                .await?;
                            if let Some(limit) = limit {
                                sqlx::query("SELECT set_config('statement_timeout', $1, false)")
                                    .bind(format!("{}ms", limit.as_millis()))
                                    .execute(&mut *conn)
                                    .await?;
                            }
                            let reader: Option<String> =
                                sqlx::query_scalar(PG_READER).fetch_optional(&mut *conn).await?;
                            if let Some(role) = reader {
                                sqlx::query("SELECT set_config('role', $1, false)")
                                    .bind(role)
                                    .execute(&mut *conn)
                                    .await?;
                            }
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await
                    .map_err(connect_err)?;
                let (role, session_user): (String, String) =
                    sqlx::query_as("SELECT current_user::text, session_user::text")
                        .fetch_one(&pool)
                        .await
                        .map_err(connect_err)?;
                let guard = if role != session_user {
                    ReadGuard::ReaderRole(role)
                } else {
                    ReadGuard::ReadOnlyTransactions { user: role }
                };
                (Pool::Postgres(pool), guard)
            }
        };
        let store = Store { pool, url: url.clone() };
        if store.backend() == Backend::Sqlite {
            check_version(url, store.schema_version().await?)?;
        }
        Ok((store, guard))
    }

    /// The serials on every document numbered `number` (any type), with the events each had
    /// there: grouped by document, then in serial order.
    pub async fn document_serials(
        &self,
        number: &str,
        company_id: Option<&str>,
    ) -> Result<Vec<DocumentSerial>, StoreError> {
        on_pool!(self, pool => {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT e.company_id, e.doc_type, e.doc_id, e.doc_number, e.serial, e.product_id, p.name AS product_name, \
                 e.event_type, e.occurred_at \
                 FROM documents d \
                 JOIN serial_events e ON e.company_id = d.company_id AND e.doc_type = d.doc_type AND e.doc_id = d.doc_id \
                 LEFT JOIN products p ON p.company_id = e.company_id AND p.product_id = e.product_id \
                 WHERE e.retracted_at IS NULL AND d.doc_number = ",
            );
            q.push_bind(number);
            if let Some(company) = company_id {
                q.push(" AND d.company_id = ").push_bind(company);
            }
            q.push(" ORDER BY e.doc_type, e.doc_id, e.serial, e.product_id, e.event_id");
            let rows: Vec<DocumentEventRow> = q
                .build_query_as()
                .persistent(false)
                .fetch_all(pool)
                .await
                .context(|| format!("reading the serials of document {number:?}"))?;
            Ok(group_document_rows(rows))
        })
    }

    /// Location names by (company, location id), for pages that show names rather than ids.
    pub async fn location_names(&self) -> Result<std::collections::HashMap<(String, String), String>, StoreError> {
        on_pool!(self, pool => {
            let rows: Vec<(String, String, Option<String>)> =
                sqlx::query_as("SELECT company_id, location_id, name FROM locations")
                    .fetch_all(pool)
                    .await
                    .context(|| "reading location names".into())?;
            Ok(rows.into_iter().filter_map(|(c, id, name)| Some(((c, id), name?))).collect())
        })
    }

    /// The latest warnings recorded by runs (odd data the ingest kept or left out), newest first.
    pub async fn recent_warnings(&self, company_id: &str, limit: i64) -> Result<Vec<WarningRow>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT run_id, doc_type, doc_number, kind, detail FROM run_warnings WHERE company_id = $1 \
                 ORDER BY warning_id DESC LIMIT $2",
            )
            .bind(company_id)
            .bind(limit)
            .fetch_all(pool)
            .await
            .context(|| "reading recent warnings".into())
        })
    }

    /// Where a serial was at `until`: the histories of its current events that happened by
    /// then, with the rule `audit timeline` and the `serial_current` view apply to all of them
    /// (an undated event placed by its document's earlier steps; one with nothing to borrow a
    /// date from is left out, as nothing says it had happened).
    pub async fn serial_on(
        &self,
        serial: &str,
        company_id: Option<&str>,
        until: DateTime<Utc>,
    ) -> Result<Vec<History>, StoreError> {
        let rows = self.serial_events(serial, &EventFilter { company_id, all: false, as_of: None }).await?;
        let happened: Vec<bool> =
            rows.iter().map(|r| timeline::effective_time(r, &rows).is_some_and(|t| t <= until)).collect();
        let rows = rows.into_iter().zip(happened).filter_map(|(r, keep)| keep.then_some(r)).collect();
        Ok(timeline::histories(rows))
    }
}

/// The schema is only read here: it must be this build's.
fn check_version(url: &DatabaseUrl, found: Option<i32>) -> Result<(), StoreError> {
    let latest = super::migrate::latest_version();
    match found {
        Some(v) if v == latest => Ok(()),
        Some(v) if v > latest => Err(StoreError::SchemaTooNew { found: v, supported: latest }),
        found => Err(StoreError::Query {
            what: format!(
                "checking the schema of {} (version {}, this build needs {latest}); it is only read here, \
                 so run `audit migrate` first",
                url.redacted(),
                found.map_or("none".to_string(), |v| v.to_string())
            ),
            source: "the schema is not up to date".into(),
        }),
    }
}

#[derive(Debug, sqlx::FromRow)]
struct DocumentEventRow {
    company_id: String,
    doc_type: String,
    doc_id: String,
    doc_number: Option<String>,
    serial: String,
    product_id: Option<String>,
    product_name: Option<String>,
    event_type: String,
    occurred_at: Option<DateTime<Utc>>,
}

/// One serial on one document, with what happened to it there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentSerial {
    /// The inFlow company of the document.
    pub company_id: String,
    /// The kind of document (`sales_order`, `stock_transfer`...).
    pub doc_type: String,
    /// inFlow's id of the document.
    pub doc_id: String,
    /// The document's number as people see it.
    pub doc_number: Option<String>,
    /// The serial number.
    pub serial: String,
    /// The serial's product on this document, if the line names one.
    pub product_id: Option<String>,
    /// The product's name, once the products are fetched.
    pub product_name: Option<String>,
    /// The event types on this document, in recorded order.
    pub events: Vec<String>,
    /// The latest date of those events; `None` when none has a date.
    pub last_at: Option<DateTime<Utc>>,
}

fn group_document_rows(rows: Vec<DocumentEventRow>) -> Vec<DocumentSerial> {
    let mut out: Vec<DocumentSerial> = Vec::new();
    for r in rows {
        let same = out.last().is_some_and(|l| {
            l.company_id == r.company_id
                && l.doc_type == r.doc_type
                && l.doc_id == r.doc_id
                && l.serial == r.serial
                && l.product_id == r.product_id
        });
        if !same {
            out.push(DocumentSerial {
                company_id: r.company_id,
                doc_type: r.doc_type,
                doc_id: r.doc_id,
                doc_number: r.doc_number,
                serial: r.serial,
                product_id: r.product_id,
                product_name: r.product_name,
                events: Vec::new(),
                last_at: None,
            });
        }
        let last = out.last_mut().expect("pushed above");
        if !last.events.contains(&r.event_type) {
            last.events.push(r.event_type);
        }
        last.last_at = last.last_at.max(r.occurred_at);
    }
    out
}

/// A row of `run_warnings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct WarningRow {
    /// The run that recorded the warning.
    pub run_id: i64,
    /// The kind of document it is about, if it is about one.
    pub doc_type: Option<String>,
    /// That document's number, if known.
    pub doc_number: Option<String>,
    /// What sort of warning (`unreadable_document`, `escaped_text`...).
    pub kind: String,
    /// The warning in words.
    pub detail: String,
}
