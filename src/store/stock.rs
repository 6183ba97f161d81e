//! Snapshots of inFlow's serial stock, the serial look-up, and what reconciliation compares.

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::walks::WalkMark;
use super::{Context, Store, StoreError, WritePool, on_pool};

/// One inventory line with a serial.
#[derive(Debug, Clone, PartialEq)]
pub struct StockRow {
    /// The line's product (the product's own id when the line names none).
    pub product_id: String,
    /// The serial, verbatim.
    pub serial: String,
    /// Where the line is.
    pub location_id: Option<String>,
    /// The sublocation within `location_id`.
    pub sublocation: Option<String>,
    /// inFlow's quantity on hand (0 when it gave none; negative is possible).
    pub quantity_on_hand: f64,
    /// inFlow's id of the inventory line.
    pub inventory_line_id: Option<String>,
}

/// A page of a snapshot, written with the walk's position.
pub struct StockPage<'a> {
    /// The company whose stock it is.
    pub company_id: &'a str,
    /// The run writing it.
    pub run_id: i64,
    /// The snapshot it belongs to (from [`Store::begin_snapshot`]).
    pub snapshot_id: i64,
    /// When the page was read.
    pub observed_at: DateTime<Utc>,
    /// Products on the page, added to the snapshot's count.
    pub products: i64,
    /// The page's serial lines.
    pub rows: Vec<StockRow>,
    /// Where the walk goes next, saved in the same transaction.
    pub mark: WalkMark<'a>,
}

/// The answer of `audit lookup` for one serial (one row per product and stock line).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
pub struct LookupRow {
    /// The serial asked about.
    pub serial: String,
    /// The company that knows it; `None` (as every field below) for a serial known nowhere.
    pub company_id: Option<String>,
    /// A product that carries it.
    pub product_id: Option<String>,
    /// That product's name, where `products` has it.
    pub product_name: Option<String>,
    /// That product's SKU, where `products` has it.
    pub product_sku: Option<String>,
    /// Per the latest complete snapshot.
    pub location_id: Option<String>,
    /// That location's name, where `locations` has it.
    pub location_name: Option<String>,
    /// The snapshot line's sublocation.
    pub sublocation: Option<String>,
    /// The snapshot line's quantity on hand (lines at 0 are left out).
    pub quantity_on_hand: Option<f64>,
    /// When that snapshot completed.
    pub snapshot_at: Option<DateTime<Utc>>,
    /// Per the history (as the `serial_current` view says it).
    pub history_status: Option<String>,
    /// The location of the event that set that status (of the latest event, when none did).
    pub history_location_id: Option<String>,
    /// That event's sublocation.
    pub history_sublocation: Option<String>,
    /// The type of the latest event, moving or not.
    pub last_event: Option<String>,
    /// When it happened.
    pub last_event_at: Option<DateTime<Utc>>,
    /// The type of its document.
    pub last_doc_type: Option<String>,
    /// Its document's number.
    pub last_doc_number: Option<String>,
}

/// A snapshot row, for reconciliation.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SnapshotLine {
    /// The company of the snapshot.
    pub company_id: String,
    /// The line's product.
    pub product_id: String,
    /// The serial, verbatim.
    pub serial: String,
    /// Where the line is.
    pub location_id: Option<String>,
    /// The sublocation within `location_id`.
    pub sublocation: Option<String>,
    /// inFlow's quantity on hand, never 0 (such lines are left out).
    pub quantity_on_hand: f64,
}

/// The last movement and last event of each serial, ranked as `serial_current` ranks them.
const HISTORY_CTE: &str = "ranked AS (
    SELECT e.company_id, e.product_id, e.serial, e.event_type, e.quantity_delta, e.occurred_at,
           e.doc_type, e.doc_number, e.location_id, e.sublocation, t.status_after,
           ROW_NUMBER() OVER (PARTITION BY e.company_id, e.product_id, e.serial
               ORDER BY CASE WHEN e.effective_at IS NULL THEN 0 ELSE 1 END, e.effective_at DESC, e.step DESC, e.event_id DESC) AS last_rank,
           ROW_NUMBER() OVER (PARTITION BY e.company_id, e.product_id, e.serial
               ORDER BY CASE WHEN t.status_after IS NOT NULL THEN 0 ELSE 1 END,
                        CASE WHEN e.effective_at IS NULL THEN 0 ELSE 1 END, e.effective_at DESC, e.step DESC, e.event_id DESC) AS move_rank
    FROM serial_events_effective e
    LEFT JOIN event_types t ON t.event_type = e.event_type
    WHERE TRUE"; // callers append their ` AND ...` conditions and close the CTE

impl Store {
    /// Starts a snapshot and returns its id.
    pub async fn begin_snapshot(&self, company_id: &str, run_id: i64) -> Result<i64, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO stock_snapshots (company_id, run_id, started_at) VALUES ($1, $2, $3) RETURNING snapshot_id",
            )
            .bind(company_id)
            .bind(run_id)
            .bind(Utc::now())
            .fetch_one(pool)
            .await
            .context(|| "starting a snapshot".into())
        })
    }

    /// Writes a snapshot page and the walk's next position in one transaction.
    pub async fn write_stock_page(&self, page: StockPage<'_>) -> Result<(), StoreError> {
        let what = || format!("writing snapshot {} at the {}", page.snapshot_id, page.mark.position);
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await.context(what)?;
            if page.mark.restarted {
                // The walk started the products over: what it wrote before would be doubled.
                sqlx::query("DELETE FROM serial_stock WHERE snapshot_id = $1")
                    .bind(page.snapshot_id)
                    .execute(&mut *tx)
                    .await
                    .context(what)?;
                sqlx::query("UPDATE stock_snapshots SET products = 0, serial_lines = 0 WHERE snapshot_id = $1")
                    .bind(page.snapshot_id)
                    .execute(&mut *tx)
                    .await
                    .context(what)?;
            }
            for chunk in page.rows.chunks(1000) {
                let mut q = QueryBuilder::new(
                    "INSERT INTO serial_stock (snapshot_id, company_id, product_id, serial, location_id, sublocation, \
                     quantity_on_hand, inventory_line_id, observed_at, run_id) ",
                );
                q.push_values(chunk, |mut row, r| {
                    row.push_bind(page.snapshot_id)
                        .push_bind(page.company_id)
                        .push_bind(&r.product_id)
                        .push_bind(&r.serial)
                        .push_bind(&r.location_id)
                        .push_bind(&r.sublocation)
                        .push_bind(r.quantity_on_hand)
                        .push_bind(&r.inventory_line_id)
                        .push_bind(page.observed_at)
                        .push_bind(page.run_id);
                });
                q.build().persistent(false).execute(&mut *tx).await.context(what)?;
            }
            sqlx::query(
                "UPDATE stock_snapshots SET products = products + $1, serial_lines = serial_lines + $2 WHERE snapshot_id = $3",
            )
            .bind(page.products)
            .bind(page.rows.len() as i64)
            .bind(page.snapshot_id)
            .execute(&mut *tx)
            .await
            .context(what)?;
            sqlx::query(
                "UPDATE sync_state SET walk_paging = $1, walk_position = $2, walk_seen = $3, walk_list_count = $4, \
                 walk_unproven = $5 WHERE company_id = $6 AND stream = $7 AND walk_id = $8",
            )
            .bind(page.mark.paging)
            .bind(&page.mark.position)
            .bind(page.mark.seen)
            .bind(page.mark.list_count)
            .bind(&page.mark.unproven)
            .bind(page.company_id)
            .bind(page.mark.stream)
            .bind(page.mark.walk_id)
            .execute(&mut *tx)
            .await
            .context(what)?;
            tx.commit().await.context(what)?;
            Ok(())
        })
    }

    /// Marks a snapshot complete: from now on it is the company's latest.
    pub async fn complete_snapshot(&self, company_id: &str, snapshot_id: i64, run_id: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE stock_snapshots SET completed_at = $1 WHERE snapshot_id = $2")
                .bind(Utc::now())
                .bind(snapshot_id)
                .execute(pool)
                .await
                .context(|| format!("completing snapshot {snapshot_id}"))?;
            Ok::<(), StoreError>(())
        })?;
        self.complete_walk(company_id, "stock", run_id).await
    }

    /// The latest complete snapshot of a company: its id and time.
    pub async fn latest_snapshot(&self, company_id: &str) -> Result<Option<(i64, DateTime<Utc>)>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT snapshot_id, completed_at FROM stock_snapshots WHERE company_id = $1 AND completed_at IS NOT NULL \
                 ORDER BY snapshot_id DESC LIMIT 1",
            )
            .bind(company_id)
            .fetch_optional(pool)
            .await
            .context(|| "finding the latest snapshot".into())
        })
    }

    /// Everything known about these serials, in one query: the products that carry each, where
    /// the latest snapshot has it, and its history's status and last event. A serial known
    /// nowhere gets one row with only `serial` set. Rows come in the order of `serials`.
    pub async fn lookup(&self, serials: &[String], company_id: Option<&str>) -> Result<Vec<LookupRow>, StoreError> {
        let mut out = Vec::new();
        for chunk in serials.chunks(500) {
            on_pool!(self, pool => {
                // Each serial with its place in the input: the output keeps that order.
                let mut q = QueryBuilder::new("WITH wanted (ord, serial) AS (");
                let mut values = q.separated(" UNION ALL ");
                for (i, s) in chunk.iter().enumerate() {
                    values.push(format!("SELECT {i}, ")).push_bind_unseparated(s.clone());
                }
                q.push("), latest AS (SELECT company_id, MAX(snapshot_id) AS snapshot_id FROM stock_snapshots WHERE completed_at IS NOT NULL GROUP BY company_id), ");
                q.push("stock AS (SELECT s.company_id, s.product_id, s.serial, s.location_id, s.sublocation, s.quantity_on_hand, t.completed_at AS snapshot_at \
                        FROM serial_stock s JOIN latest l ON l.company_id = s.company_id AND l.snapshot_id = s.snapshot_id \
                        JOIN stock_snapshots t ON t.snapshot_id = s.snapshot_id \
                        WHERE s.quantity_on_hand <> 0 AND s.serial IN (SELECT serial FROM wanted)");
                if let Some(c) = company_id {
                    q.push(" AND s.company_id = ").push_bind(c);
                }
                q.push("), ").push(HISTORY_CTE).push(" AND e.serial IN (SELECT serial FROM wanted)");
                if let Some(c) = company_id {
                    q.push(" AND e.company_id = ").push_bind(c);
                }
                q.push("), history AS (SELECT company_id, product_id, serial, \
                        MAX(CASE WHEN last_rank = 1 THEN event_type END) AS last_event, \
                        MAX(CASE WHEN last_rank = 1 THEN occurred_at END) AS last_event_at, \
                        MAX(CASE WHEN last_rank = 1 THEN doc_type END) AS last_doc_type, \
                        MAX(CASE WHEN last_rank = 1 THEN doc_number END) AS last_doc_number, \
                        MAX(CASE WHEN move_rank = 1 THEN ");
                q.push(STATUS_CASE);
                q.push(" END) AS history_status, \
                        MAX(CASE WHEN move_rank = 1 THEN location_id END) AS history_location_id, \
                        MAX(CASE WHEN move_rank = 1 THEN sublocation END) AS history_sublocation \
                        FROM ranked WHERE last_rank = 1 OR move_rank = 1 GROUP BY company_id, product_id, serial), \
                        keys AS (SELECT company_id, product_id, serial FROM stock UNION SELECT company_id, product_id, serial FROM history) \
                        SELECT w.serial, k.company_id, k.product_id, p.name AS product_name, p.sku AS product_sku, \
                        s.location_id, sl.name AS location_name, s.sublocation, s.quantity_on_hand, s.snapshot_at, \
                        h.history_status, h.history_location_id, h.history_sublocation, h.last_event, h.last_event_at, \
                        h.last_doc_type, h.last_doc_number \
                        FROM wanted w \
                        LEFT JOIN keys k ON k.serial = w.serial \
                        LEFT JOIN stock s ON s.company_id = k.company_id AND s.serial = k.serial AND s.product_id = k.product_id \
                        LEFT JOIN history h ON h.company_id = k.company_id AND h.serial = k.serial \
                             AND (h.product_id = k.product_id OR (h.product_id IS NULL AND k.product_id IS NULL)) \
                        LEFT JOIN products p ON p.company_id = k.company_id AND p.product_id = k.product_id \
                        LEFT JOIN locations sl ON sl.company_id = s.company_id AND sl.location_id = s.location_id \
                        ORDER BY w.ord, k.company_id, k.product_id, s.location_id, s.sublocation");
                let rows = q
                    .build_query_as::<LookupRow>().persistent(false)
                    .fetch_all(pool)
                    .await
                    .context(|| format!("looking up {} serials", chunk.len()))?;
                out.extend(rows);
            });
        }
        Ok(out)
    }

    /// Every line with a quantity of the company's latest complete snapshot.
    pub async fn snapshot_lines(&self, company_id: &str, snapshot_id: i64) -> Result<Vec<SnapshotLine>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT company_id, product_id, serial, location_id, sublocation, quantity_on_hand FROM serial_stock \
                 WHERE company_id = $1 AND snapshot_id = $2 AND quantity_on_hand <> 0",
            )
            .bind(company_id)
            .bind(snapshot_id)
            .fetch_all(pool)
            .await
            .context(|| format!("reading snapshot {snapshot_id}"))
        })
    }
}

/// The status of a serial: serial_current's rule (`event_types.status_after` of the row ranked
/// first by `move_rank`).
const STATUS_CASE: &str = "COALESCE(status_after, 'never_stocked')";
