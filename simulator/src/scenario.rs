//! Named serials that the generator plants so tests can check known stories end to end.

use serde::Serialize;

/// One document a planted serial appears in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DocRef {
    /// `sales-orders`, `purchase-orders`, `stock-adjustments` or `stock-transfers`.
    pub endpoint: String,
    pub id: String,
    /// The document number (`SO-000012`, `PO-000003`, `SA-000001`, `ST-000004`).
    pub number: String,
}

/// Where a serial is on hand at the end of its story.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OnHand {
    pub location_id: String,
    pub sublocation: String,
}

/// A planted serial: its string, its product, the documents of its story in time order, and
/// where it is on hand at the end (if it is).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SerialStory {
    pub serial: String,
    pub product_id: String,
    pub documents: Vec<DocRef>,
    pub on_hand: Option<OnHand>,
}

/// One serial string that two products both use, each with a legitimate history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TwoProducts {
    pub serial: String,
    pub product_ids: [String; 2],
    pub stories: [SerialStory; 2],
}

/// A two-level build: a component built into a subassembly, the subassembly (with another
/// component) into a unit, and the unit sold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildChain {
    /// Received on a purchase order, consumed by the first manufacturing order.
    pub component: SerialStory,
    /// Produced by the first order, consumed by the second.
    pub subassembly: SerialStory,
    /// Produced by the second order, sold and shipped on a sales order.
    pub unit: SerialStory,
    /// The customer of that sales order.
    pub customer_id: String,
}

/// A finding `audit anomalies` must report on the planted data: its kind, serial and product,
/// and the evidence (the event that shows it and the earlier one it conflicts with, by type and
/// document). `history_and_stock_disagree` needs a stock snapshot; `detail` is then the kind
/// `audit reconcile` gives, and the event is the history's last one (as `serial_current`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlantedAnomaly {
    pub kind: String,
    pub serial: String,
    pub product_id: String,
    pub event_type: Option<String>,
    pub document: Option<DocRef>,
    pub earlier_event_type: Option<String>,
    pub earlier_document: Option<DocRef>,
    pub detail: Option<String>,
}

/// The planted stories. The data faults are `None` (and `anomalies` empty) when generated with
/// `faults: false`: that company's histories are all plausible.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Scenario {
    /// Received → transferred → sold (line) → picked → packed → shipped → returned → restocked.
    pub full_lifecycle: SerialStory,
    /// Received, then returned to the vendor (`unstockLines` plus a negative PO line).
    pub vendor_return: SerialStory,
    /// Received, then removed by a stock adjustment of -1.
    pub adjusted_out: SerialStory,
    /// Received, then put on a transfer that is still `open` (no stock moved yet).
    pub on_open_transfer: SerialStory,
    /// Received, then sent on a transfer that is `inTransit` (left the source, not arrived).
    pub in_transit: SerialStory,
    /// Fault: the same serial string under two products.
    pub two_products: Option<TwoProducts>,
    /// Fault: shipped on one sales order, then shipped again on another, with no return.
    pub sold_twice: Option<SerialStory>,
    /// Fault: adjusted out (-1), then picked and shipped on a sales order.
    pub adjusted_out_then_sold: Option<SerialStory>,
    /// Fault: shipped on a sales order but never received by any document.
    pub shipped_never_received: Option<SerialStory>,
    // Stock changes no document records, so `inventoryLines` disagree with the history
    // (`None` without data faults). `on_hand` is where inFlow shows the serial.
    /// On hand from an opening balance; in no document at all.
    pub never_in_documents: Option<SerialStory>,
    /// On hand from an opening balance, and on an unpicked sales order: no receipt.
    pub on_hand_without_receipt: Option<SerialStory>,
    /// Received, then removed by a stock count: gone per inFlow, on hand per the history.
    pub gone_but_history_on_hand: Option<SerialStory>,
    /// Received at one location, moved to another by a stockroom scan.
    pub different_location: Option<SerialStory>,
    /// Received at one location and counted again at a second one: on hand twice.
    pub on_hand_in_two_locations: Option<SerialStory>,
    // Manufacturing orders and stock counts (planted in clean data too).
    /// Chip -> board -> laptop, and the laptop sold.
    pub build_chain: BuildChain,
    /// Received, then consumed by a manufacturing order still in progress.
    pub build_in_progress_component: SerialStory,
    /// The unit that order will build: pending, not in stock.
    pub build_in_progress_unit: SerialStory,
    /// Received, then not found by a completed stock count.
    pub count_missing: SerialStory,
    /// Not expected by a completed stock count, and counted: in stock from then on.
    pub count_found: SerialStory,
    // More histories that cannot be right, with stock that agrees with the documents.
    /// Received on two purchase orders.
    pub in_twice: Option<SerialStory>,
    /// Received at Main, moved west by no document, picked there.
    pub moved_from_elsewhere: Option<SerialStory>,
    /// Received, then sent on a transfer still in transit.
    pub stuck_in_transit: Option<SerialStory>,
    /// Returned by a customer and restocked, never sold.
    pub returned_never_sold: Option<SerialStory>,
    /// Every finding the faults above make, with its evidence.
    pub anomalies: Vec<PlantedAnomaly>,
}
