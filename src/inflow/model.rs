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
        /// The amount in the product's standard unit.
        standard_quantity: Option<Decimal>,
        /// The amount in the unit shown (`uom`).
        uom_quantity: Option<Decimal>,
        /// The unit of measure shown, if not the standard one.
        uom: Option<String>,
        /// The serials moved; empty for a product without serial tracking.
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
        /// The sales order's id.
        sales_order_id: Option<String>,
        /// The number shown to users.
        order_number: Option<String>,
        /// When the order was placed.
        order_date: Option<String>,
        /// The customer.
        customer_id: Option<String>,
        /// The order's default location; lines may name their own.
        location_id: Option<String>,
        /// inFlow's fulfilment state, e.g. `Fulfilled` (read-only).
        inventory_status: Option<String>,
        /// Cancelled: it moves no stock.
        is_cancelled: bool,
        /// A quote, not (yet) an order: moves no stock.
        is_quote: bool,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
        /// The document's lines.
        lines: Option<Vec<SalesOrderLine>>,
        /// Goods picked out of stock.
        pick_lines: Option<Vec<SalesOrderPickLine>>,
        /// Goods packed into containers.
        pack_lines: Option<Vec<SalesOrderPackLine>>,
        /// Shipments.
        ship_lines: Option<Vec<SalesOrderShipLine>>,
        /// Returned goods put back into stock.
        restock_lines: Option<Vec<SalesOrderRestockLine>>,
    }
}

lenient_struct! {
    /// Goods ordered and returned: a return is a line with a negative quantity.
    pub struct SalesOrderLine {
        /// The sales order line's id.
        sales_order_line_id: Option<String>,
        /// The product.
        product_id: Option<String>,
        /// How many, with the serials.
        quantity: Quantity,
        /// For a negative quantity: when it was returned.
        return_date: Option<String>,
        /// For a negative quantity: discarded, not restocked.
        is_discarded: bool,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// Goods picked out of stock for an order, from a location.
    pub struct SalesOrderPickLine {
        /// The sales order pick line's id.
        sales_order_pick_line_id: Option<String>,
        /// The product.
        product_id: Option<String>,
        /// How many, with the serials.
        quantity: Quantity,
        /// Where it was picked from.
        location_id: Option<String>,
        /// The bin or shelf within the location, if any.
        sublocation: Option<String>,
        /// When it was picked.
        pick_date: Option<String>,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// Packed goods; a pack line has no location or date, its container ties it to a ship line.
    pub struct SalesOrderPackLine {
        /// The sales order pack line's id.
        sales_order_pack_line_id: Option<String>,
        /// The product.
        product_id: Option<String>,
        /// How many, with the serials.
        quantity: Quantity,
        /// The container it was packed in.
        container_number: Option<String>,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// A shipment: no product or serials, only the containers it took and when.
    pub struct SalesOrderShipLine {
        /// The sales order ship line's id.
        sales_order_ship_line_id: Option<String>,
        /// The container numbers it took.
        containers: Vec<String>,
        /// When it shipped.
        shipped_date: Option<String>,
        /// The carrier.
        carrier: Option<String>,
        /// The carrier's tracking number.
        tracking_number: Option<String>,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// Returned goods put back into stock at a location.
    pub struct SalesOrderRestockLine {
        /// The sales order restock line's id.
        sales_order_restock_line_id: Option<String>,
        /// The product.
        product_id: Option<String>,
        /// How many, with the serials.
        quantity: Quantity,
        /// Where it was restocked.
        location_id: Option<String>,
        /// The bin or shelf within the location, if any.
        sublocation: Option<String>,
        /// When it was restocked.
        restock_date: Option<String>,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// `GET /{companyId}/purchase-orders`: the header plus the line collections that carry serials.
    pub struct PurchaseOrder {
        /// The purchase order's id.
        purchase_order_id: Option<String>,
        /// The number shown to users.
        order_number: Option<String>,
        /// When the order was placed.
        order_date: Option<String>,
        /// The vendor.
        vendor_id: Option<String>,
        /// The order's default location; lines may name their own.
        location_id: Option<String>,
        /// inFlow's fulfilment state, e.g. `Fulfilled` (read-only).
        inventory_status: Option<String>,
        /// Cancelled: it moves no stock.
        is_cancelled: bool,
        /// A quote, not (yet) an order: moves no stock.
        is_quote: bool,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
        /// The document's lines.
        lines: Option<Vec<PurchaseOrderLine>>,
        /// Goods received into stock.
        receive_lines: Option<Vec<PurchaseOrderReceiveLine>>,
        /// Vendor returns taken out of stock.
        unstock_lines: Option<Vec<PurchaseOrderUnstockLine>>,
    }
}

lenient_struct! {
    /// Goods ordered and returned to the vendor: a return is a line with a negative quantity.
    pub struct PurchaseOrderLine {
        /// The purchase order line's id.
        purchase_order_line_id: Option<String>,
        /// The product.
        product_id: Option<String>,
        /// How many, with the serials.
        quantity: Quantity,
        /// For a negative quantity: when it was returned.
        return_date: Option<String>,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// Goods received into stock at a location.
    pub struct PurchaseOrderReceiveLine {
        /// The purchase order receive line's id.
        purchase_order_receive_line_id: Option<String>,
        /// The product.
        product_id: Option<String>,
        /// How many, with the serials.
        quantity: Quantity,
        /// Where it was received.
        location_id: Option<String>,
        /// The bin or shelf within the location, if any.
        sublocation: Option<String>,
        /// When it was received.
        receive_date: Option<String>,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// Goods returned to the vendor, taken out of stock at a location.
    pub struct PurchaseOrderUnstockLine {
        /// The purchase order unstock line's id.
        purchase_order_unstock_line_id: Option<String>,
        /// The product.
        product_id: Option<String>,
        /// How many, with the serials.
        quantity: Quantity,
        /// Where it left stock.
        location_id: Option<String>,
        /// The bin or shelf within the location, if any.
        sublocation: Option<String>,
        /// When it left stock.
        unstock_date: Option<String>,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// A stock adjustment: location on the header, a signed quantity delta on each line.
    pub struct StockAdjustment {
        /// The stock adjustment's id.
        stock_adjustment_id: Option<String>,
        /// The number shown to users.
        adjustment_number: Option<String>,
        /// When the adjustment was made.
        date: Option<String>,
        /// Where the stock changed.
        location_id: Option<String>,
        /// The reason given for the adjustment.
        adjustment_reason_id: Option<String>,
        /// Cancelled: it moves no stock.
        is_cancelled: bool,
        /// Free text from the user.
        remarks: Option<String>,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
        /// The document's lines.
        lines: Option<Vec<StockAdjustmentLine>>,
        /// With `include=adjustmentReason`: whether inFlow made the reason itself.
        adjustment_reason: Option<AdjustmentReason>,
    }
}

lenient_struct! {
    /// `AdjustmentReason`: `isInternal` reasons are "system-generated".
    pub struct AdjustmentReason {
        /// The adjustment reason's id.
        adjustment_reason_id: Option<String>,
        /// The name shown to users.
        name: Option<String>,
        /// Made by inFlow itself ("system-generated"), not by a user.
        is_internal: Option<bool>,
    }
}

lenient_struct! {
    /// A product's change at the adjustment's location; the quantity is a signed delta.
    pub struct StockAdjustmentLine {
        /// The stock adjustment line's id.
        stock_adjustment_line_id: Option<String>,
        /// The product.
        product_id: Option<String>,
        /// How many, with the serials.
        quantity: Quantity,
        /// The bin or shelf within the location, if any.
        sublocation: Option<String>,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// `GET /{companyId}/stock-transfers`: goods moved from one location to another.
    pub struct StockTransfer {
        /// The stock transfer's id.
        stock_transfer_id: Option<String>,
        /// The number shown to users.
        transfer_number: Option<String>,
        /// inFlow's status name, as sent.
        status: Option<String>,
        /// The source location.
        from_location_id: Option<String>,
        /// The destination location.
        to_location_id: Option<String>,
        /// When the transfer was made.
        transfer_date: Option<String>,
        /// When it left the source location.
        sent_date: Option<String>,
        /// When it arrived at the destination.
        received_date: Option<String>,
        /// Cancelled: it moves no stock.
        is_cancelled: bool,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
        /// The document's lines.
        lines: Option<Vec<StockTransferLine>>,
    }
}

lenient_struct! {
    /// A product moved, with the sublocations it left and reached.
    pub struct StockTransferLine {
        /// The stock transfer line's id.
        stock_transfer_line_id: Option<String>,
        /// The product.
        product_id: Option<String>,
        /// How many, with the serials.
        quantity: Quantity,
        /// The sublocation it came from.
        from_sublocation: Option<String>,
        /// The sublocation it went to.
        to_sublocation: Option<String>,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// `GET /{companyId}/manufacturing-orders`: components picked, finished goods put away.
    pub struct ManufacturingOrder {
        /// The manufacturing order's id.
        manufacturing_order_id: Option<String>,
        /// The number shown to users.
        manufacturing_order_number: Option<String>,
        /// inFlow's status name, as sent.
        status: Option<String>,
        /// Cancelled: it moves no stock.
        is_cancelled: bool,
        /// Finished: the goods are made.
        is_completed: bool,
        /// When the order was placed.
        order_date: Option<String>,
        /// When it was completed.
        completed_date: Option<String>,
        /// Where the order is made.
        location_id: Option<String>,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
        /// A tree: each line may hold `manufacturingOrderLines`.
        lines: Option<Vec<ManufacturingOrderLine>>,
        /// Goods picked out of stock.
        pick_lines: Option<Vec<ManufacturingOrderPickLine>>,
        /// Finished goods put away.
        put_lines: Option<Vec<ManufacturingOrderPutLine>>,
        /// Which picked serial went into which line.
        pick_matchings: Option<Vec<ManufacturingOrderPickMatching>>,
    }
}

lenient_struct! {
    /// A line of the bill of materials: the root lines are the finished products, their
    /// children the components (or subassemblies, with children of their own).
    pub struct ManufacturingOrderLine {
        /// The manufacturing order line's id.
        manufacturing_order_line_id: Option<String>,
        /// The line this one is a component of; `None` for a root line.
        parent_manufacturing_order_line_id: Option<String>,
        /// The product.
        product_id: Option<String>,
        /// How many, with the serials.
        quantity: Quantity,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
        /// Its components, each a line of its own.
        manufacturing_order_lines: Option<Vec<ManufacturingOrderLine>>,
    }
}

lenient_struct! {
    /// Raw material taken out of stock.
    pub struct ManufacturingOrderPickLine {
        /// The manufacturing order pick line's id.
        manufacturing_order_pick_line_id: Option<String>,
        /// The product.
        product_id: Option<String>,
        /// How many, with the serials.
        quantity: Quantity,
        /// Where it was picked from.
        location_id: Option<String>,
        /// The bin or shelf within the location, if any.
        sublocation: Option<String>,
        /// When it was picked.
        pick_date: Option<String>,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// Finished goods put away; `putDate` and `manufacturingOrderLineId` only in newer versions.
    pub struct ManufacturingOrderPutLine {
        /// The manufacturing order put line's id.
        manufacturing_order_put_line_id: Option<String>,
        /// The bill-of-materials line it belongs to.
        manufacturing_order_line_id: Option<String>,
        /// The product.
        product_id: Option<String>,
        /// How many, with the serials.
        quantity: Quantity,
        /// Where it was put away.
        location_id: Option<String>,
        /// The bin or shelf within the location, if any.
        sublocation: Option<String>,
        /// When it was put away.
        put_date: Option<String>,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// Which picked serial went into which order line; `serial` is `""` when not serialized.
    pub struct ManufacturingOrderPickMatching {
        /// The manufacturing order pick matching's id.
        manufacturing_order_pick_matching_id: Option<String>,
        /// The bill-of-materials line it belongs to.
        manufacturing_order_line_id: Option<String>,
        /// The pick line the serial came from.
        manufacturing_order_pick_line_id: Option<String>,
        /// How many of the picked quantity went into the line.
        matched_quantity: Option<Decimal>,
        /// The serial number; `""` or `None` when there is none.
        serial: Option<String>,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// `GET /{companyId}/stock-counts` with `include=sheets,sheets.lines`.
    pub struct StockCount {
        /// The stock count's id.
        stock_count_id: Option<String>,
        /// The number shown to users.
        stock_count_number: Option<String>,
        /// The location counted.
        location_id: Option<String>,
        /// inFlow's status name, as sent.
        status: Option<String>,
        /// Cancelled: it moves no stock.
        is_cancelled: bool,
        /// Finished.
        is_completed: bool,
        /// When counting started.
        started_date: Option<String>,
        /// When it was completed.
        completed_date: Option<String>,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
        /// The count sheets, with their lines.
        sheets: Option<Vec<CountSheet>>,
    }
}

lenient_struct! {
    /// `GET /{companyId}/count-sheets/{countSheetId}`, or a sheet inside a stock count.
    pub struct CountSheet {
        /// The count sheet's id.
        count_sheet_id: Option<String>,
        /// The stock count the sheet belongs to.
        stock_count_id: Option<String>,
        /// inFlow's status name, as sent.
        status: Option<String>,
        /// Cancelled: it moves no stock.
        is_cancelled: bool,
        /// Finished.
        is_completed: bool,
        /// When counting started.
        started_date: Option<String>,
        /// When it was completed.
        completed_date: Option<String>,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
        /// The document's lines.
        lines: Option<Vec<CountSheetLine>>,
    }
}

lenient_struct! {
    /// What was expected (`snapshotQuantity`) and what was found (`countedQuantity`) at a
    /// sublocation; both may carry serials.
    pub struct CountSheetLine {
        /// The count sheet line's id.
        count_sheet_line_id: Option<String>,
        /// The product.
        product_id: Option<String>,
        /// The bin or shelf within the location, if any.
        sublocation: Option<String>,
        /// What the count expected, taken when the sheet started.
        snapshot_quantity: Quantity,
        /// What was counted.
        counted_quantity: Quantity,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// `GET /{companyId}/products`: a reference list (names, SKUs, serial tracking) and, with its
    /// inventory lines, the stock snapshot.
    pub struct Product {
        /// The product's id.
        product_id: Option<String>,
        /// The name shown to users.
        name: Option<String>,
        /// The SKU.
        sku: Option<String>,
        /// inFlow's item type, e.g. `stockedProduct`.
        item_type: Option<String>,
        /// Whether the product has serial numbers.
        track_serials: bool,
        /// `false` once deactivated in inFlow.
        is_active: Option<bool>,
        /// When it was last changed.
        last_modified_date_time: Option<String>,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
        /// With `include=inventoryLines`: where it is on hand now.
        inventory_lines: Option<Vec<InventoryLine>>,
    }
}

lenient_struct! {
    /// Current on-hand state: one row per location, sublocation and serial (and lot).
    pub struct InventoryLine {
        /// The inventory line's id.
        inventory_line_id: Option<String>,
        /// The product.
        product_id: Option<String>,
        /// Where it is.
        location_id: Option<String>,
        /// The bin or shelf within the location, if any.
        sublocation: Option<String>,
        /// The serial number; `""` or `None` when there is none.
        serial: Option<String>,
        /// How many are there now.
        quantity_on_hand: Option<Decimal>,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// A customer or a vendor: the id under either name, and what output shows.
    pub struct Party {
        /// The id, when it is a customer.
        customer_id: Option<String>,
        /// The id, when it is a vendor.
        vendor_id: Option<String>,
        /// The name shown to users.
        name: Option<String>,
        /// `false` once deactivated in inFlow.
        is_active: Option<bool>,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
    }
}

lenient_struct! {
    /// `GET /{companyId}/locations`: a reference list, read for names.
    pub struct Location {
        /// The location's id.
        location_id: Option<String>,
        /// The name shown to users.
        name: Option<String>,
        /// `false` once deactivated in inFlow.
        is_active: Option<bool>,
        /// The company's default location.
        is_default: Option<bool>,
        /// inFlow's row version: rises whenever this row is written.
        timestamp: Option<String>,
    }
}

/// Reads a field the way the reference says a real server may send it, never failing the
/// document over one odd value.
pub trait Lenient: Sized {
    /// Deserializes the value, taking whatever shape the reference allows and a default for the rest;
    /// errs only when the input itself cannot be read.
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
