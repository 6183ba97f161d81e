//! The read side of `audit anomalies` and `audit reconcile`: the `serial_anomaly_findings` and
//! `serial_stock_disagreements` views (migration V8, redefined in V11), which hold the only
//! definition of each kind. The commands filter and order their rows, nothing more.

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::{Context, Store, StoreError, on_pool};

/// Days a transfer may be in transit before it counts as stuck, as the `serial_anomalies` view
/// counts them.
pub const DEFAULT_TRANSIT_DAYS: u32 = 14;

/// One finding: a row of `serial_anomaly_findings`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct AnomalyRow {
    /// The inFlow company whose history it is.
    pub company_id: String,
    /// One of `anomaly_kinds` (`stuck_in_transit`, `history_and_stock_disagree`...).
    pub kind: String,
    /// The serial concerned.
    pub serial: String,
    /// The product it is under.
    pub product_id: Option<String>,
    /// That product's name, where `products` has it.
    pub product_name: Option<String>,
    /// One line in plain words.
    pub explanation: String,
    /// When the history went wrong (for history_and_stock_disagree: the snapshot's time);
    /// `None` for an undated event.
    pub started_at: Option<DateTime<Utc>>,
    /// The event that shows it, and the earlier one it conflicts with.
    pub event_id: Option<i64>,
    /// Its type (for history_and_stock_disagree: of the event that set the history's status).
    pub event_type: Option<String>,
    /// The type of its document.
    pub doc_type: Option<String>,
    /// Its document's number.
    pub doc_number: Option<String>,
    /// The location it names.
    pub location_id: Option<String>,
    /// The sublocation it names.
    pub sublocation: Option<String>,
    /// The earlier event it conflicts with, where there is one.
    pub earlier_event_id: Option<i64>,
    /// The earlier event's type.
    pub earlier_event_type: Option<String>,
    /// The type of the earlier event's document.
    pub earlier_doc_type: Option<String>,
    /// The earlier event's document number.
    pub earlier_doc_number: Option<String>,
    /// history_and_stock_disagree: the reconcile kind; one_serial_two_products: the other
    /// product's id.
    pub detail: Option<String>,
    /// stuck_in_transit: whole days from sending to the company's newest document.
    pub days_in_transit: Option<i64>,
}

/// Which findings to read.
#[derive(Debug, Clone)]
pub struct AnomalyFilter<'a> {
    /// Only this company's findings.
    pub company_id: Option<&'a str>,
    /// Only this serial's findings (exact match).
    pub serial: Option<&'a str>,
    /// Only these kinds (empty: all).
    pub kinds: &'a [String],
    /// Only those that started at or after this time (undated ones count as the latest).
    pub since: Option<DateTime<Utc>>,
    /// A transfer is stuck after more than this many days in transit.
    pub transit_days: u32,
}

impl Default for AnomalyFilter<'_> {
    fn default() -> Self {
        AnomalyFilter { company_id: None, serial: None, kinds: &[], since: None, transit_days: DEFAULT_TRANSIT_DAYS }
    }
}

/// A row of `serial_stock_disagreements`: what `audit reconcile` lists.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StockDisagreementRow {
    /// The company of the snapshot.
    pub company_id: String,
    /// How they disagree (`never_in_documents`, `different_location`...; see the view).
    pub kind: String,
    /// The product the serial is under.
    pub product_id: Option<String>,
    /// The serial concerned.
    pub serial: String,
    /// The serial's status per the history the snapshot could know; `None` when the history
    /// has no event of it.
    pub history_status: Option<String>,
    /// The location of the event that set that status (`None` for `never_stocked`).
    pub history_location_id: Option<String>,
    /// That event's sublocation.
    pub history_sublocation: Option<String>,
    /// The number of that event's document.
    pub history_doc_number: Option<String>,
}

const ANOMALY_COLUMNS: &str = "SELECT company_id, kind, serial, product_id, product_name, explanation, started_at, \
     event_id, event_type, doc_type, doc_number, location_id, sublocation, earlier_event_id, earlier_event_type, \
     earlier_doc_type, earlier_doc_number, detail, days_in_transit FROM serial_anomaly_findings ";

impl Store {
    /// The kinds the database knows (`anomaly_kinds`), by name.
    pub async fn anomaly_kinds(&self) -> Result<Vec<(String, String)>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_as("SELECT kind, description FROM anomaly_kinds ORDER BY kind")
                .fetch_all(pool)
                .await
                .context(|| "reading the anomaly kinds".into())
        })
    }

    /// The findings `filter` selects, ordered by kind, serial, product and start.
    pub async fn anomalies(&self, filter: &AnomalyFilter<'_>) -> Result<Vec<AnomalyRow>, StoreError> {
        let mut rows: Vec<AnomalyRow> = on_pool!(self, pool => {
            let mut q = QueryBuilder::new(ANOMALY_COLUMNS);
            let mut conn = without_jit(pool).await?;
            // The same cut as the serial_anomalies view, with the caller's number of days.
            q.push("WHERE (kind <> 'stuck_in_transit' OR days_in_transit > ")
                .push_bind(i64::from(filter.transit_days))
                .push(")");
            if let Some(company) = filter.company_id {
                q.push(" AND company_id = ").push_bind(company);
            }
            if let Some(serial) = filter.serial {
                q.push(" AND serial = ").push_bind(serial);
            }
            if !filter.kinds.is_empty() {
                q.push(" AND kind IN (");
                let mut list = q.separated(", ");
                for kind in filter.kinds {
                    list.push_bind(kind.as_str());
                }
                q.push(")");
            }
            if let Some(since) = filter.since {
                q.push(" AND (started_at IS NULL OR started_at >= ").push_bind(since).push(")");
            }
            let rows = q.build_query_as::<AnomalyRow>()
                .persistent(false)
                .fetch_all(&mut *conn)
                .await
                .context(|| "reading serial_anomaly_findings".into())?;
            conn.rollback().await.context(|| "reading serial_anomaly_findings".into())?;
            rows
        });
        // Ordered here: the engines sort NULLs differently.
        rows.sort_by(|a, b| {
            (&a.kind, &a.company_id, &a.serial, &a.product_id, a.started_at.is_none(), a.started_at, a.event_id).cmp(&(
                &b.kind,
                &b.company_id,
                &b.serial,
                &b.product_id,
                b.started_at.is_none(),
                b.started_at,
                b.event_id,
            ))
        });
        Ok(rows)
    }

    /// Whether a complete stock snapshot exists (of this company), without which
    /// history_and_stock_disagree cannot be checked.
    pub async fn has_snapshot(&self, company_id: Option<&str>) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM stock_snapshots WHERE completed_at IS NOT NULL \
                 AND ($1 IS NULL OR company_id = $1))",
            )
            .bind(company_id)
            .fetch_one(pool)
            .await
            .context(|| "looking for a stock snapshot".into())
        })
    }

    /// Every disagreement of one company's latest complete snapshot with its history.
    pub async fn stock_disagreements(&self, company_id: &str) -> Result<Vec<StockDisagreementRow>, StoreError> {
        on_pool!(self, pool => {
            let mut conn = without_jit(pool).await?;
            let rows = sqlx::query_as(
                "SELECT company_id, kind, product_id, serial, history_status, history_location_id, \
                 history_sublocation, history_doc_number FROM serial_stock_disagreements WHERE company_id = $1",
            )
            .bind(company_id)
            .fetch_all(&mut *conn)
            .await
            .context(|| "reading serial_stock_disagreements".into())?;
            conn.rollback().await.context(|| "reading serial_stock_disagreements".into())?;
            Ok(rows)
        })
    }
}

/// A transaction for one of the large read queries. On Postgres with JIT compilation off: the
/// views compile to hundreds of functions, which cost more than they save (the findings of 650,000
/// events took 66 s with JIT and 29 s without, in the same session).
async fn without_jit<P: JitSwitch>(pool: &P) -> Result<sqlx::Transaction<'static, P::Db>, StoreError> {
    pool.begin_without_jit().await.context(|| "starting a read".into())
}

trait JitSwitch {
    type Db: sqlx::Database;
    async fn begin_without_jit(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>;
}

impl JitSwitch for sqlx::SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_without_jit(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin().await
    }
}

impl JitSwitch for sqlx::PgPool {
    type Db = sqlx::Postgres;
    async fn begin_without_jit(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        let mut tx = self.begin().await?;
        sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
        Ok(tx)
    }
}
