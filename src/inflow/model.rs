//! Lenient Rust shapes of the inFlow documents that carry serials.
//!
//! The API reference marks much of the wire format as unconfirmed, so these types accept what a
//! real server might plausibly send: unknown fields are ignored, decimals come as strings or
//! numbers, enums stay plain strings (compared case-insensitively by the mapping), dates stay
//! strings until the mapping parses them (so a bad date becomes a warning, not a lost page), and
//! `null` is accepted wherever a value is optional. The raw JSON of every document is stored
//! beside the events, so nothing these types drop is lost.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Declares a document or line type whose every field is read through [`Lenient`].
macro_rules! lenient_struct {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(rename_all = "camelCase", default)]
        pub struct $name {
            $($(#[$fmeta])* #[serde(deserialize_with = "Lenient::lenient")] pub $field: $ty,)*
        }
    };
}

lenient_struct! {
    /// `QuantityWithUom`: the `quantity` of every line type, and the only place serials live.
    pub struct Quantity {
        standard_quantity: Option<Decimal>,
        uom_quantity: Option<Decimal>,
        uom: Option<String>,
        serial_numbers: Vec<String>,
    }
}

impl Quantity {
    /// The quantity in the product's standard unit, falling back to the shown unit.
    pub fn amount(&self) -> Option<Decimal> {
        self.standard_quantity.or(self.uom_quantity)
    }
}

lenient_struct! {
    /// `GET /{companyId}/sales-orders`: the header plus the line collections that carry serials.
    pub struct SalesOrder {
        sales_order_id: Option<String>,
        order_number: Option<String>,
        order_date: Option<String>,
        customer_id: Option<String>,
        location_id: Option<String>,
        inventory_status: Option<String>,
        is_cancelled: bool,
        is_quote: bool,
        timestamp: Option<String>,
        lines: Option<Vec<SalesOrderLine>>,
        pick_lines: Option<Vec<SalesOrderPickLine>>,
        pack_lines: Option<Vec<SalesOrderPackLine>>,
        ship_lines: Option<Vec<SalesOrderShipLine>>,
        restock_lines: Option<Vec<SalesOrderRestockLine>>,
    }
}

lenient_struct! {
    /// Goods ordered and returned: a return is a line with a negative quantity.
    pub struct SalesOrderLine {
        sales_order_line_id: Option<String>,
        product_id: Option<String>,
        quantity: Quantity,
        return_date: Option<String>,
        is_discarded: bool,
        timestamp: Option<String>,
    }
}

lenient_struct! {
    pub struct SalesOrderPickLine {
        sales_order_pick_line_id: Option<String>,
        product_id: Option<String>,
        quantity: Quantity,
        location_id: Option<String>,
        sublocation: Option<String>,
        pick_date: Option<String>,
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// Packed goods; a pack line has no location or date, its container ties it to a ship line.
    pub struct SalesOrderPackLine {
        sales_order_pack_line_id: Option<String>,
        product_id: Option<String>,
        quantity: Quantity,
        container_number: Option<String>,
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// A shipment: no product or serials, only the containers it took and when.
    pub struct SalesOrderShipLine {
        sales_order_ship_line_id: Option<String>,
        containers: Vec<String>,
        shipped_date: Option<String>,
        carrier: Option<String>,
        tracking_number: Option<String>,
        timestamp: Option<String>,
    }
}

lenient_struct! {
    pub struct SalesOrderRestockLine {
        sales_order_restock_line_id: Option<String>,
        product_id: Option<String>,
        quantity: Quantity,
        location_id: Option<String>,
        sublocation: Option<String>,
        restock_date: Option<String>,
        timestamp: Option<String>,
    }
}

lenient_struct! {
    pub struct PurchaseOrder {
        purchase_order_id: Option<String>,
        order_number: Option<String>,
        order_date: Option<String>,
        vendor_id: Option<String>,
        location_id: Option<String>,
        inventory_status: Option<String>,
        is_cancelled: bool,
        is_quote: bool,
        timestamp: Option<String>,
        lines: Option<Vec<PurchaseOrderLine>>,
        receive_lines: Option<Vec<PurchaseOrderReceiveLine>>,
        unstock_lines: Option<Vec<PurchaseOrderUnstockLine>>,
    }
}

lenient_struct! {
    pub struct PurchaseOrderLine {
        purchase_order_line_id: Option<String>,
        product_id: Option<String>,
        quantity: Quantity,
        return_date: Option<String>,
        timestamp: Option<String>,
    }
}

lenient_struct! {
    pub struct PurchaseOrderReceiveLine {
        purchase_order_receive_line_id: Option<String>,
        product_id: Option<String>,
        quantity: Quantity,
        location_id: Option<String>,
        sublocation: Option<String>,
        receive_date: Option<String>,
        timestamp: Option<String>,
    }
}

lenient_struct! {
    pub struct PurchaseOrderUnstockLine {
        purchase_order_unstock_line_id: Option<String>,
        product_id: Option<String>,
        quantity: Quantity,
        location_id: Option<String>,
        sublocation: Option<String>,
        unstock_date: Option<String>,
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// A stock adjustment: location on the header, a signed quantity delta on each line.
    pub struct StockAdjustment {
        stock_adjustment_id: Option<String>,
        adjustment_number: Option<String>,
        date: Option<String>,
        location_id: Option<String>,
        adjustment_reason_id: Option<String>,
        is_cancelled: bool,
        remarks: Option<String>,
        timestamp: Option<String>,
        lines: Option<Vec<StockAdjustmentLine>>,
        /// With `include=adjustmentReason`: whether inFlow made the reason itself.
        adjustment_reason: Option<AdjustmentReason>,
    }
}

lenient_struct! {
    /// `AdjustmentReason`: `isInternal` reasons are "system-generated".
    pub struct AdjustmentReason {
        adjustment_reason_id: Option<String>,
        name: Option<String>,
        is_internal: Option<bool>,
    }
}

lenient_struct! {
    pub struct StockAdjustmentLine {
        stock_adjustment_line_id: Option<String>,
        product_id: Option<String>,
        quantity: Quantity,
        sublocation: Option<String>,
        timestamp: Option<String>,
    }
}

lenient_struct! {
    pub struct StockTransfer {
        stock_transfer_id: Option<String>,
        transfer_number: Option<String>,
        status: Option<String>,
        from_location_id: Option<String>,
        to_location_id: Option<String>,
        transfer_date: Option<String>,
        sent_date: Option<String>,
        received_date: Option<String>,
        is_cancelled: bool,
        timestamp: Option<String>,
        lines: Option<Vec<StockTransferLine>>,
    }
}

lenient_struct! {
    pub struct StockTransferLine {
        stock_transfer_line_id: Option<String>,
        product_id: Option<String>,
        quantity: Quantity,
        from_sublocation: Option<String>,
        to_sublocation: Option<String>,
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// `GET /{companyId}/manufacturing-orders`: components picked, finished goods put away.
    pub struct ManufacturingOrder {
        manufacturing_order_id: Option<String>,
        manufacturing_order_number: Option<String>,
        status: Option<String>,
        is_cancelled: bool,
        is_completed: bool,
        order_date: Option<String>,
        completed_date: Option<String>,
        location_id: Option<String>,
        timestamp: Option<String>,
        /// A tree: each line may hold `manufacturingOrderLines`.
        lines: Option<Vec<ManufacturingOrderLine>>,
        pick_lines: Option<Vec<ManufacturingOrderPickLine>>,
        put_lines: Option<Vec<ManufacturingOrderPutLine>>,
        pick_matchings: Option<Vec<ManufacturingOrderPickMatching>>,
    }
}

lenient_struct! {
    /// A line of the bill of materials: the root lines are the finished products, their
    /// children the components (or subassemblies, with children of their own).
    pub struct ManufacturingOrderLine {
        manufacturing_order_line_id: Option<String>,
        parent_manufacturing_order_line_id: Option<String>,
        product_id: Option<String>,
        quantity: Quantity,
        timestamp: Option<String>,
        manufacturing_order_lines: Option<Vec<ManufacturingOrderLine>>,
    }
}

lenient_struct! {
    /// Raw material taken out of stock.
    pub struct ManufacturingOrderPickLine {
        manufacturing_order_pick_line_id: Option<String>,
        product_id: Option<String>,
        quantity: Quantity,
        location_id: Option<String>,
        sublocation: Option<String>,
        pick_date: Option<String>,
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// Finished goods put away; `putDate` and `manufacturingOrderLineId` only in newer versions.
    pub struct ManufacturingOrderPutLine {
        manufacturing_order_put_line_id: Option<String>,
        manufacturing_order_line_id: Option<String>,
        product_id: Option<String>,
        quantity: Quantity,
        location_id: Option<String>,
        sublocation: Option<String>,
        put_date: Option<String>,
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// Which picked serial went into which order line; `serial` is `""` when not serialized.
    pub struct ManufacturingOrderPickMatching {
        manufacturing_order_pick_matching_id: Option<String>,
        manufacturing_order_line_id: Option<String>,
        manufacturing_order_pick_line_id: Option<String>,
        matched_quantity: Option<Decimal>,
        serial: Option<String>,
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// `GET /{companyId}/stock-counts` with `include=sheets,sheets.lines`.
    pub struct StockCount {
        stock_count_id: Option<String>,
        stock_count_number: Option<String>,
        location_id: Option<String>,
        status: Option<String>,
        is_cancelled: bool,
        is_completed: bool,
        started_date: Option<String>,
        completed_date: Option<String>,
        timestamp: Option<String>,
        sheets: Option<Vec<CountSheet>>,
    }
}

lenient_struct! {
    /// `GET /{companyId}/count-sheets/{countSheetId}`, or a sheet inside a stock count.
    pub struct CountSheet {
        count_sheet_id: Option<String>,
        stock_count_id: Option<String>,
        status: Option<String>,
        is_cancelled: bool,
        is_completed: bool,
        started_date: Option<String>,
        completed_date: Option<String>,
        timestamp: Option<String>,
        lines: Option<Vec<CountSheetLine>>,
    }
}

lenient_struct! {
    /// What was expected (`snapshotQuantity`) and what was found (`countedQuantity`) at a
    /// sublocation; both may carry serials.
    pub struct CountSheetLine {
        count_sheet_line_id: Option<String>,
        product_id: Option<String>,
        sublocation: Option<String>,
        snapshot_quantity: Quantity,
        counted_quantity: Quantity,
        timestamp: Option<String>,
    }
}

lenient_struct! {
    pub struct Product {
        product_id: Option<String>,
        name: Option<String>,
        sku: Option<String>,
        item_type: Option<String>,
        track_serials: bool,
        is_active: Option<bool>,
        last_modified_date_time: Option<String>,
        timestamp: Option<String>,
        inventory_lines: Option<Vec<InventoryLine>>,
    }
}

lenient_struct! {
    /// Current on-hand state: one row per location, sublocation and serial (and lot).
    pub struct InventoryLine {
        inventory_line_id: Option<String>,
        product_id: Option<String>,
        location_id: Option<String>,
        sublocation: Option<String>,
        serial: Option<String>,
        quantity_on_hand: Option<Decimal>,
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// A customer or a vendor: the id under either name, and what output shows.
    pub struct Party {
        customer_id: Option<String>,
        vendor_id: Option<String>,
        name: Option<String>,
        is_active: Option<bool>,
        timestamp: Option<String>,
    }
}

lenient_struct! {
    pub struct Location {
        location_id: Option<String>,
        name: Option<String>,
        is_active: Option<bool>,
        is_default: Option<bool>,
        timestamp: Option<String>,
    }
}

/// Reads a field the way the reference says a real server may send it, never failing the
/// document over one odd value.
pub trait Lenient: Sized {
    fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
}

/// A string, or a number or boolean rendered as text; `null` and other shapes become `None`.
impl Lenient for Option<String> {
    fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        })
    }
}

/// An exact decimal from a string (`"10.0000"`) or a JSON number.
impl Lenient for Option<Decimal> {
    fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::String(s) => s.trim().parse().ok(),
            Value::Number(n) => n.to_string().parse().ok(),
            _ => None,
        })
    }
}

/// `true`/`false`, also as the strings `"true"`/`"false"` in any case.
impl Lenient for Option<bool> {
    fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Bool(b) => Some(b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        })
    }
}

/// A flag that is false unless the document says otherwise.
impl Lenient for bool {
    fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<bool>::lenient(d)?.unwrap_or(false))
    }
}

/// A list of strings; other items are rendered as text, `null` items dropped, `null` is empty.
impl Lenient for Vec<String> {
    fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Array(items) => items
                .into_iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s),
                    Value::Null => None,
                    other => Some(other.to_string()),
                })
                .collect(),
            Value::String(s) => vec![s],
            _ => Vec::new(),
        })
    }
}

/// An object as documented; a bare number or string is a quantity without serials.
impl Lenient for Quantity {
    fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(match v {
            Value::Object(_) => serde_json::from_value(v).unwrap_or_default(),
            Value::String(_) | Value::Number(_) => {
                Quantity { standard_quantity: Option::<Decimal>::lenient(v).unwrap_or_default(), ..Quantity::default() }
            }
            _ => Quantity::default(),
        })
    }
}

/// An included relationship object; anything else is `None`.
impl Lenient for Option<AdjustmentReason> {
    fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(d)? {
            v @ Value::Object(_) => serde_json::from_value(v).ok(),
            _ => None,
        })
    }
}

/// A line collection: absent or `null` is `None` (not included); items that are not objects
/// are dropped rather than failing the whole document.
impl<T: serde::de::DeserializeOwned> Lenient for Option<Vec<T>> {
    fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Array(items) => Some(
                items.into_iter().filter(Value::is_object).filter_map(|v| serde_json::from_value(v).ok()).collect(),
            ),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/inflow");

    fn sample(name: &str) -> String {
        std::fs::read_to_string(format!("{SAMPLES}/{name}")).unwrap()
    }

    #[test]
    fn real_sales_order_sample_parses_with_serials_and_ship_line() {
        let so: SalesOrder = serde_json::from_str(&sample("sales-order.real-2022.anonymized.json")).unwrap();
        assert_eq!(so.order_number.as_deref(), Some("SO-000001"));
        assert_eq!(so.inventory_status.as_deref(), Some("fulfilled"));
        assert_eq!(so.timestamp.as_deref(), Some("0000000000013CF1"));
        assert!(!so.is_cancelled);
        let lines = so.lines.as_ref().unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].quantity.serial_numbers.len(), 10);
        assert_eq!(lines[0].quantity.amount(), Some(Decimal::from(10)));
        assert!(so.pick_lines.is_none(), "pickLines were not included in that response");
        let ship = &so.ship_lines.as_ref().unwrap()[0];
        assert_eq!(ship.containers, vec!["1".to_string()]);
        assert_eq!(ship.shipped_date.as_deref(), Some("2022-05-31T22:22:07+02:00"));
    }

    #[test]
    fn constructed_samples_parse() {
        let so: SalesOrder = serde_json::from_str(&sample("sales-order.movement-lines.CONSTRUCTED.json")).unwrap();
        assert_eq!(so.pack_lines.unwrap()[0].container_number.as_deref(), Some("1"));
        assert_eq!(so.restock_lines.unwrap()[0].sublocation.as_deref(), Some("RETURNS"));
        let po: PurchaseOrder =
            serde_json::from_str(&sample("purchase-order.receive-unstock.CONSTRUCTED.json")).unwrap();
        assert_eq!(po.receive_lines.unwrap()[0].quantity.serial_numbers, ["SN-A1", "SN-A2", "SN-A3"]);
        let sa: StockAdjustment = serde_json::from_str(&sample("stock-adjustment.CONSTRUCTED.json")).unwrap();
        assert_eq!(sa.lines.unwrap()[0].quantity.amount(), Some(Decimal::from(-1)));
        let st: StockTransfer = serde_json::from_str(&sample("stock-transfer.CONSTRUCTED.json")).unwrap();
        assert_eq!(st.status.as_deref(), Some("completed"));
        let p: Product = serde_json::from_str(&sample("product.inventoryLines.CONSTRUCTED.json")).unwrap();
        assert!(p.track_serials);
        assert_eq!(p.inventory_lines.unwrap()[0].serial.as_deref(), Some("SN-A2"));
    }

    #[test]
    fn odd_shapes_degrade_instead_of_failing() {
        let so: SalesOrder = serde_json::from_value(serde_json::json!({
            "salesOrderId": 42,
            "isCancelled": "TRUE",
            "isQuote": null,
            "someFutureField": {"nested": [1, 2]},
            "lines": [
                "not an object",
                {"salesOrderLineId": "l1", "quantity": {"standardQuantity": 2, "serialNumbers": ["A", 7, null]}},
                {"salesOrderLineId": "l2", "quantity": "3.5"}
            ],
            "pickLines": null
        }))
        .unwrap();
        assert_eq!(so.sales_order_id.as_deref(), Some("42"));
        assert!(so.is_cancelled);
        assert!(!so.is_quote);
        let lines = so.lines.unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].quantity.serial_numbers, ["A", "7"]);
        assert_eq!(lines[0].quantity.amount(), Some(Decimal::from(2)));
        assert_eq!(lines[1].quantity.amount(), Some(Decimal::new(35, 1)));
        assert!(so.pick_lines.is_none());
    }
}
