//! The read side used by the commands: one serial's events, and look-ups for suggestions.

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::{Context, Store, StoreError, on_pool};

/// A `serial_events` row with the names of its product, location, and customer or vendor.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct EventRow {
    /// The row's id: also the order in which events were recorded.
    pub event_id: i64,
    /// The inFlow company the event belongs to.
    pub company_id: String,
    /// The serial number as the document line carries it.
    pub serial: String,
    /// The line's product, when the document names one.
    pub product_id: Option<String>,
    /// The product's name, once the products are fetched.
    pub product_name: Option<String>,
    /// The product's SKU, once the products are fetched.
    pub product_sku: Option<String>,
    /// The kind of document (`sales_order`, `purchase_order`, `stock_transfer`...).
    pub doc_type: String,
    /// inFlow's id of the document.
    pub doc_id: String,
    /// The document's number as people see it (`SO-000123`), when it has one.
    pub doc_number: Option<String>,
    /// The sales order's customer or the purchase order's vendor (`documents.party_id`).
    pub party_id: Option<String>,
    /// Its name, once the customers or vendors are fetched.
    pub party_name: Option<String>,
    /// The document's JSON key the serial came from (`lines`, `pickLines`...).
    pub line_collection: String,
    /// inFlow's id of the line within that collection.
    pub line_id: String,
    /// What happened to the serial (`sold`, `shipped`, `received`...; see `event_types`).
    pub event_type: String,
    /// When it happened by the document's dates; `None` when the document gives no date.
    pub occurred_at: Option<DateTime<Utc>>,
    /// Where it happened, when the line or document names a location.
    pub location_id: Option<String>,
    /// The location's name, once the locations are fetched.
    pub location_name: Option<String>,
    /// The sublocation (bin) within the location, if any.
    pub sublocation: Option<String>,
    /// How the event moves the serial's stock: +1 in, -1 out, 0 no movement.
    pub quantity_delta: i16,
    /// The document's status when the event was recorded.
    pub doc_status: Option<String>,
    /// When `audit` recorded the event.
    pub observed_at: DateTime<Utc>,
    /// The run (`ingest_runs.run_id`) that recorded it.
    pub run_id: i64,
    /// When a later run withdrew the event (its document changed or went); `None` while it stands.
    pub retracted_at: Option<DateTime<Utc>>,
    /// The run that withdrew it.
    pub retracted_run_id: Option<i64>,
    /// The status this event leaves the serial in (`event_types.status_after`), if it changes it.
    pub status_after: Option<String>,
}

/// Which rows of a serial's history to read.
#[derive(Debug, Clone, Default)]
pub struct EventFilter<'a> {
    /// Only this company's events; `None` for every company's.
    pub company_id: Option<&'a str>,
    /// Retracted rows too.
    pub all: bool,
    /// The history as recorded at that moment: observed by then, and not retracted by then.
    pub as_of: Option<DateTime<Utc>>,
}

/// The events of one serial with product and location names, up to the serial to compare with
/// (the benchmark runs the same text in `sqlite3` and `psql`).
pub const EVENT_COLUMNS: &str = "SELECT e.event_id, e.company_id, e.serial, e.product_id, p.name AS product_name, \
     p.sku AS product_sku, e.doc_type, e.doc_id, e.doc_number, d.party_id, COALESCE(c.name, v.name) AS party_name, \
     e.line_collection, e.line_id, e.event_type, e.occurred_at, e.location_id, l.name AS location_name, e.sublocation, e.quantity_delta, e.doc_status, \
     e.observed_at, e.run_id, e.retracted_at, e.retracted_run_id, t.status_after \
     FROM serial_events e \
     LEFT JOIN event_types t ON t.event_type = e.event_type \
     LEFT JOIN products p ON p.company_id = e.company_id AND p.product_id = e.product_id \
     LEFT JOIN locations l ON l.company_id = e.company_id AND l.location_id = e.location_id \
     LEFT JOIN documents d ON d.company_id = e.company_id AND d.doc_type = e.doc_type AND d.doc_id = e.doc_id \
     LEFT JOIN customers c ON e.doc_type = 'sales_order' AND c.company_id = d.company_id AND c.customer_id = d.party_id \
     LEFT JOIN vendors v ON e.doc_type = 'purchase_order' AND v.company_id = d.company_id AND v.vendor_id = d.party_id \
     WHERE e.serial = ";

impl Store {
    /// Every event of one serial string (under any product), unordered.
    pub async fn serial_events(&self, serial: &str, filter: &EventFilter<'_>) -> Result<Vec<EventRow>, StoreError> {
        on_pool!(self, pool => {
            let mut q = QueryBuilder::new(EVENT_COLUMNS);
            q.push_bind(serial);
            if let Some(company) = filter.company_id {
                q.push(" AND e.company_id = ").push_bind(company);
            }
            match (filter.as_of, filter.all) {
                (Some(t), false) => {
                    q.push(" AND e.observed_at <= ").push_bind(t);
                    q.push(" AND (e.retracted_at IS NULL OR e.retracted_at > ").push_bind(t).push(")");
                }
                (Some(t), true) => {
                    q.push(" AND e.observed_at <= ").push_bind(t);
                }
                (None, false) => {
                    q.push(" AND e.retracted_at IS NULL");
                }
                (None, true) => {}
            }
            let mut rows = q.build_query_as::<EventRow>().persistent(false)
                .fetch_all(pool)
                .await
                .context(|| format!("reading the events of serial {serial:?}"))?;
            // As of a moment, a retraction made later had not happened yet.
            if let Some(t) = filter.as_of {
                for row in rows.iter_mut().filter(|r| r.retracted_at.is_some_and(|r| r > t)) {
                    row.retracted_at = None;
                    row.retracted_run_id = None;
                }
            }
            Ok(rows)
        })
    }

    /// Serials that look like `serial`, best first: the same ignoring case, spaces and
    /// punctuation, one or two edits away, or starting with it ([`Store::close_serials`]). For
    /// "did you mean" when a serial is unknown, and the search page.
    pub async fn similar_serials(
        &self,
        serial: &str,
        company_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let limit = usize::try_from(limit).unwrap_or(0);
        Ok(self.close_serials(serial, company_id, limit).await?.into_iter().map(|(s, _)| s).collect())
    }
}
