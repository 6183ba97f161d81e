//! `audit snapshot`: inFlow's current serial stock, from products' `inventoryLines`.
//!
//! Walks `/products?include=inventoryLines&filter[trackSerials]=true` 100 at a time in a keyset
//! on the product id, with the same client, pacing and budget as an ingest, and keeps every
//! inventory line that names a serial as a row of `serial_stock` under a new snapshot. A
//! snapshot stopped part-way resumes into the same snapshot; only a complete one is used by
//! `audit lookup` and `audit reconcile`.

use chrono::Utc;

use super::adapt::{Adapt, fetch_locations, product_rows, resumed_start, walk_mark};
use super::record::{RunRecord, Worked};
use super::run::clean_stop;
use super::{Counters, RunCounters, RunStatus, StopFlag, StopReason, SyncError};
use crate::inflow::Client;
use crate::inflow::model::Product;
use crate::inflow::walk::{CountMeaning, ListSpec, Paging, Pass, Position, Walk, WalkStart};
use crate::store::Store;
use crate::store::stock::{StockPage, StockRow};
use crate::store::walks::WalkMark;

const STREAM: &str = "stock";

/// The list the snapshot walks; its paging mode is the products' one.
const PRODUCTS: &str = "products";

/// What a snapshot run did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotSummary {
    /// The run's row in `ingest_runs`.
    pub run_id: i64,
    /// The snapshot (`stock_snapshots`).
    pub snapshot_id: i64,
    /// Every product was read: the snapshot is usable.
    pub complete: bool,
    /// Why it stopped before the end, if it did.
    #[serde(skip)]
    pub stop: Option<StopReason>,
    /// It continued an unfinished snapshot.
    pub resumed: bool,
    /// Pages of products read in this run.
    pub pages: i64,
    /// Products read in this run.
    pub products: i64,
    /// Inventory lines with a serial kept in this run.
    pub serial_lines: i64,
    /// Requests this run sent.
    pub requests: i64,
}

/// Takes (or resumes) a snapshot of one company. Recorded as a run of command `snapshot`.
pub async fn run(
    store: &Store,
    client: &Client,
    company_id: &str,
    stop: &StopFlag,
) -> Result<SnapshotSummary, SyncError> {
    let arguments = serde_json::json!({});
    let record = RunRecord {
        store,
        company_id,
        command: "snapshot",
        arguments: &arguments,
        client: Some(client),
        stop: Some(stop),
    };
    record
        .run(|run_id| async move {
            let requests_before = client.stats().requests() as i64;
            let result = walk(store, client, company_id, run_id, stop).await;
            let requests = client.stats().requests() as i64 - requests_before;
            let mut counters = RunCounters { requests, ..RunCounters::default() };
            let result = result.map(|mut summary| {
                summary.requests = requests;
                counters.work =
                    Counters { pages: summary.pages, documents_seen: summary.products, ..Counters::default() };
                counters.rate_limited = client.stats().rate_limited() as i64;
                counters.retries = client.stats().retries() as i64;
                let status = if summary.complete { RunStatus::Succeeded } else { RunStatus::Stopped };
                (summary, status)
            });
            Worked { result, counters }
        })
        .await
}

/// Starts a snapshot, or finds the unfinished one to resume.
async fn begin(
    store: &Store,
    adapt: &Adapt<'_>,
    company_id: &str,
    run_id: i64,
) -> Result<(SnapshotSummary, WalkStart), SyncError> {
    let state = store.sync_state(company_id, STREAM).await?;
    let (snapshot_id, start, resumed) = match state.walk_id {
        Some(id) => (id, resumed_start(&state, CountMeaning::Unknown), true),
        None => {
            let id = store.begin_snapshot(company_id, run_id).await?;
            let start = adapt.fresh_start(PRODUCTS, true, CountMeaning::Unknown).await?;
            let mark = mark(id, start.paging, &start.position, &start.pass);
            store.start_walk(company_id, None, &mark).await?;
            (id, start, false)
        }
    };
    let summary = SnapshotSummary {
        run_id,
        snapshot_id,
        complete: false,
        stop: None,
        resumed,
        pages: 0,
        products: 0,
        serial_lines: 0,
        requests: 0,
    };
    Ok((summary, start))
}

async fn walk(
    store: &Store,
    client: &Client,
    company_id: &str,
    run_id: i64,
    stop: &StopFlag,
) -> Result<SnapshotSummary, SyncError> {
    let adapt = Adapt::new(store, client, company_id, run_id);
    let (mut summary, start) = begin(store, &adapt, company_id, run_id).await?;
    // Names for output, if no ingest fetched them yet.
    if !store.has_locations(company_id).await? {
        match fetch_locations(store, client, company_id, run_id).await {
            Err(SyncError::Reference { source, .. }) if clean_stop(&source, stop).is_some() => {
                summary.stop = clean_stop(&source, stop);
                return Ok(summary);
            }
            other => other?,
        }
    }
    let spec = ListSpec {
        path: PRODUCTS,
        id_field: "productId",
        include: Some("inventoryLines"),
        fallback_include: None,
        filters: vec![("filter[trackSerials]", "true".to_string())],
    };
    let mut walk = Walk::start(client, spec, start);
    loop {
        if let Some(reason) = stop.reason() {
            summary.stop = Some(reason);
            return Ok(summary);
        }
        let page = walk.next_page().await;
        for note in walk.take_notes() {
            adapt.note(PRODUCTS, None, &note).await?;
        }
        let page = match page {
            Ok(page) => page,
            Err(source) if clean_stop(&source, stop).is_some() => {
                summary.stop = clean_stop(&source, stop);
                return Ok(summary);
            }
            Err(source) => {
                return Err(SyncError::Fetch { stream: "products", position: walk.position().to_string(), source });
            }
        };
        let products: Vec<Product> = page
            .items
            .iter()
            .filter_map(|raw| crate::mapping::storable::parse_storable(&client.redact(raw.get())).ok())
            .collect();
        let rows = stock_rows(&products);
        store.upsert_products(company_id, &product_rows(&products)).await?;
        summary.pages += 1;
        summary.products += products.len() as i64;
        summary.serial_lines += rows.len() as i64;
        store
            .write_stock_page(StockPage {
                company_id,
                run_id,
                snapshot_id: summary.snapshot_id,
                observed_at: Utc::now(),
                products: products.len() as i64,
                rows,
                mark: WalkMark {
                    restarted: page.restarted,
                    ..mark(summary.snapshot_id, page.paging, &page.next, &page.pass)
                },
            })
            .await?;
        if page.last {
            finish(store, &adapt, &walk, &mut summary).await?;
            return Ok(summary);
        }
    }
}

/// Ends a snapshot that reached the last product: complete, and the paging mode recorded.
async fn finish(
    store: &Store,
    adapt: &Adapt<'_>,
    walk: &Walk<'_>,
    summary: &mut SnapshotSummary,
) -> Result<(), SyncError> {
    if let Some(why) = walk.unproven() {
        tracing::warn!(
            "the snapshot reached the end of the products but cannot prove it saw every one ({why}); \
             take it again if `audit reconcile` reports products missing"
        );
    }
    if adapt.recorded_paging(PRODUCTS).await?.is_some_and(|r| r != walk.paging()) {
        let why = format!("a snapshot walk reached its end with {}", walk.paging().describe());
        adapt.record_paging(PRODUCTS, walk.paging(), why).await?;
    }
    store.complete_snapshot(adapt.company_id, summary.snapshot_id, summary.run_id).await?;
    summary.complete = true;
    Ok(())
}

fn mark(snapshot_id: i64, paging: Paging, position: &Position, pass: &Pass) -> WalkMark<'static> {
    walk_mark(STREAM, snapshot_id, paging, position, pass)
}

/// The serial lines of serialized products. A server that ignores `filter[trackSerials]` sends
/// other products too; their lines carry no serial and are left out.
pub fn stock_rows(products: &[Product]) -> Vec<StockRow> {
    let mut rows = Vec::new();
    for p in products.iter().filter(|p| p.track_serials) {
        let Some(product_id) = p.product_id.clone() else { continue };
        for line in p.inventory_lines.iter().flatten() {
            let Some(serial) = line.serial.clone().filter(|s| !s.trim().is_empty()) else { continue };
            let product_id = line.product_id.clone().unwrap_or_else(|| product_id.clone());
            // Part of an index; serials are not (any length is fine).
            if product_id.len() > crate::store::write::MAX_KEY_BYTES {
                continue;
            }
            rows.push(StockRow {
                product_id,
                serial,
                location_id: line.location_id.clone(),
                sublocation: line.sublocation.clone(),
                quantity_on_hand: line.quantity_on_hand.map_or(0.0, |q| q.try_into().unwrap_or(0.0)),
                inventory_line_id: line.inventory_line_id.clone(),
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_serial_lines_of_serialized_products_are_kept() {
        let products: Vec<Product> = serde_json::from_value(serde_json::json!([
            {"productId": "p1", "trackSerials": true, "inventoryLines": [
                {"inventoryLineId": "a", "locationId": "L1", "sublocation": "A-1", "serial": "SN-1", "quantityOnHand": "1.0000"},
                {"inventoryLineId": "b", "locationId": "L1", "sublocation": "", "serial": "", "quantityOnHand": "3.0000"},
                {"inventoryLineId": "c", "locationId": "L2", "sublocation": "B", "serial": "SN-2", "quantityOnHand": "-1.0000"}
            ]},
            {"productId": "p2", "trackSerials": false, "inventoryLines": [
                {"inventoryLineId": "d", "locationId": "L1", "serial": null, "quantityOnHand": "12.0000"}
            ]}
        ]))
        .unwrap();
        let rows = stock_rows(&products);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].serial.as_str(), rows[0].quantity_on_hand, rows[0].sublocation.as_deref()),
            ("SN-1", 1.0, Some("A-1"))
        );
        assert_eq!((rows[1].serial.as_str(), rows[1].quantity_on_hand), ("SN-2", -1.0));
        assert!(rows.iter().all(|r| r.product_id == "p1"));
    }
}
