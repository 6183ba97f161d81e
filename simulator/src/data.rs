//! The simulator's compact in-memory company: catalog (locations, products, parties, interned
//! serials and sublocations) and the movement document types.
//!
//! Documents are stored as small typed structs, not JSON: products, locations and serials are
//! indices, quantities and money are fixed-point integers, and statuses are `&'static str`.
//! Everything is turned into the API's JSON shape only when a request asks for it
//! (see `render.rs`), which is what lets the large scale hold over a million serial
//! occurrences in a few hundred megabytes.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use chrono::{DateTime, FixedOffset, SecondsFormat};
use serde::{Serialize, Serializer};
use uuid::Uuid;

/// A date as the API sends it: a local time with its UTC offset.
pub(crate) type Dt = DateTime<FixedOffset>;

/// One whole unit in the 4-decimal fixed point used for quantities.
pub(crate) const QTY_ONE: i64 = 10_000;
/// One currency unit in the 5-decimal fixed point used for money and rates.
pub(crate) const MONEY_ONE: i64 = 100_000;

/// An interned serial string (index into [`Catalog::serials`]).
pub(crate) type Sid = u32;
/// An interned sublocation string (index into [`Catalog::sublocations`]); 0 is `""`.
pub(crate) type Sub = u32;

/// Formats a fixed-point integer with `dp` decimals, as inFlow renders decimals.
pub(crate) fn fixed(v: i64, dp: u32) -> String {
    let scale = 10i64.pow(dp);
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    let s = scale as u64;
    format!("{sign}{}.{:0width$}", a / s, a % s, width = dp as usize)
}

/// Money and percentage rates: a string with 5 decimals (`"1874.16000"`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Money(pub i64);
impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&fixed(self.0, 5))
    }
}

/// A quantity: a string with 4 decimals (`"10.0000"`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Q4(pub i64);
impl Serialize for Q4 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&fixed(self.0, 4))
    }
}

/// A lowercase hyphenated GUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Id(pub Uuid);
impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 36];
        s.serialize_str(self.0.hyphenated().encode_lower(&mut buf))
    }
}
impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

/// A date with its offset and whole seconds: `2025-03-04T10:15:00-05:00`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct D(pub Dt);
impl Serialize for D {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&fmt_date(&self.0))
    }
}

pub(crate) fn fmt_date(d: &Dt) -> String {
    d.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// A `rowversion`: 16 upper-case hex digits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ts(pub u64);
impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:016X}", self.0))
    }
}

/// Strings stored once and referred to by index.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    strings: Vec<Box<str>>,
    index: HashMap<Box<str>, u32>,
}

impl Interner {
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.strings.len() as u32;
        self.strings.push(s.into());
        self.index.insert(s.into(), i);
        i
    }
    pub fn get(&self, i: u32) -> &str {
        self.strings.get(i as usize).map(|s| &**s).unwrap_or("")
    }
    #[cfg(test)]
    pub fn lookup(&self, s: &str) -> Option<u32> {
        self.index.get(s).copied()
    }
}

/// `QuantityWithUom`: a signed amount and, for serialized products, the serials.
#[derive(Clone, Debug, Default)]
pub(crate) struct Qty {
    /// Signed, in ten-thousandths.
    pub amount: i64,
    pub serials: Vec<Sid>,
}

impl Qty {
    pub fn serials(serials: Vec<Sid>, negative: bool) -> Qty {
        let n = serials.len() as i64 * QTY_ONE;
        Qty { amount: if negative { -n } else { n }, serials }
    }
    pub fn bulk(units: i64) -> Qty {
        Qty { amount: units * QTY_ONE, serials: Vec::new() }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Address {
    pub address1: String,
    pub city: String,
    pub state: String,
    pub country: String,
    pub postal_code: String,
    pub address_type: Option<&'static str>,
}

#[derive(Clone, Debug)]
pub(crate) struct Location {
    pub id: Uuid,
    pub name: String,
    pub offset: FixedOffset,
    pub address: Address,
    pub is_default: bool,
    /// Bins that stock is usually kept in (the generator's choices; any string is valid).
    pub bins: Vec<Sub>,
    pub ts: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct Product {
    pub id: Uuid,
    pub name: String,
    pub sku: String,
    pub description: String,
    pub barcode: String,
    pub category_id: Uuid,
    pub track_serials: bool,
    pub item_type: &'static str,
    /// Sale price, 5 dp.
    pub price: i64,
    /// Purchase cost, 5 dp.
    pub cost: i64,
    pub last_vendor: Uuid,
    pub last_modified: Dt,
    pub custom1: &'static str,
    pub ts: u64,
}

/// A customer or a vendor: only what a sales or purchase order header shows.
#[derive(Clone, Debug)]
pub(crate) struct Party {
    pub id: Uuid,
    pub name: String,
    pub contact: String,
    pub email: String,
    pub phone: String,
    pub address: Address,
    /// inFlow's `timestamp` (moves on when a test renames the party).
    pub ts: u64,
}

/// Everything that is not a movement document.
#[derive(Debug)]
pub(crate) struct Catalog {
    pub locations: Vec<Location>,
    pub products: Vec<Product>,
    pub customers: Vec<Party>,
    pub vendors: Vec<Party>,
    pub team: Vec<Uuid>,
    pub currency_id: Uuid,
    pub pricing_scheme_id: Uuid,
    pub taxing_scheme_id: Uuid,
    pub tax_code_id: Uuid,
    pub adjustment_reasons: Vec<Uuid>,
    /// The internal ("system-generated") reason of the adjustments completed counts make.
    pub count_reason: Uuid,
    pub serials: Interner,
    pub sublocations: Interner,
    pub product_index: HashMap<Uuid, u32>,
    pub location_index: HashMap<Uuid, u16>,
}

impl Catalog {
    pub fn location(&self, i: u16) -> &Location {
        &self.locations[i as usize]
    }
    pub fn product(&self, i: u32) -> &Product {
        &self.products[i as usize]
    }
    pub fn reindex(&mut self) {
        self.product_index = self.products.iter().enumerate().map(|(i, p)| (p.id, i as u32)).collect();
        self.location_index = self.locations.iter().enumerate().map(|(i, l)| (l.id, i as u16)).collect();
    }
}

/// A sales- or purchase-order line (`lines[]`): goods ordered, or returned when negative.
#[derive(Clone, Debug)]
pub(crate) struct OrderLine {
    pub id: Uuid,
    pub product: u32,
    pub qty: Qty,
    pub unit_price: i64,
    pub return_date: Option<Dt>,
    pub is_discarded: bool,
    pub ts: u64,
}

/// Pick, restock, receive and unstock lines share one shape: product, quantity, place, date.
#[derive(Clone, Debug)]
pub(crate) struct MoveLine {
    pub id: Uuid,
    pub product: u32,
    pub qty: Qty,
    pub location: u16,
    pub sub: Sub,
    pub date: Dt,
    pub ts: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct PackLine {
    pub id: Uuid,
    pub product: u32,
    pub qty: Qty,
    pub container: String,
    pub ts: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct ShipLine {
    pub id: Uuid,
    pub containers: Vec<String>,
    pub shipped_date: Dt,
    pub carrier: &'static str,
    pub tracking: String,
    pub ts: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct AdjLine {
    pub id: Uuid,
    pub product: u32,
    pub qty: Qty,
    pub sub: Sub,
    pub ts: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct XferLine {
    pub id: Uuid,
    pub product: u32,
    pub qty: Qty,
    pub from_sub: Sub,
    pub to_sub: Sub,
    pub ts: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct SalesOrder {
    pub id: Uuid,
    pub number: String,
    pub customer: u32,
    pub location: u16,
    pub order_date: Dt,
    pub invoiced_date: Option<Dt>,
    pub requested_ship_date: Option<Dt>,
    pub inventory_status: &'static str,
    pub payment_status: &'static str,
    pub is_cancelled: bool,
    pub is_completed: bool,
    pub is_quote: bool,
    pub is_invoiced: bool,
    pub same_billing: bool,
    pub source: &'static str,
    pub po_number: String,
    /// Tax rate in percent, 5 dp.
    pub tax_rate: i64,
    pub assigned_to: Uuid,
    pub last_modified_by: Uuid,
    pub lines: Vec<OrderLine>,
    pub pick_lines: Vec<MoveLine>,
    pub pack_lines: Vec<PackLine>,
    pub ship_lines: Vec<ShipLine>,
    pub restock_lines: Vec<MoveLine>,
    pub ts: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct PurchaseOrder {
    pub id: Uuid,
    pub number: String,
    pub vendor: u32,
    pub location: u16,
    pub order_date: Dt,
    pub inventory_status: &'static str,
    pub payment_status: &'static str,
    pub is_cancelled: bool,
    pub is_completed: bool,
    pub is_quote: bool,
    pub vendor_order_number: String,
    pub tax_rate: i64,
    pub assigned_to: Uuid,
    pub last_modified_by: Uuid,
    pub lines: Vec<OrderLine>,
    pub receive_lines: Vec<MoveLine>,
    pub unstock_lines: Vec<MoveLine>,
    pub ts: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct StockAdjustment {
    pub id: Uuid,
    pub number: String,
    pub location: u16,
    pub reason: Uuid,
    pub date: Dt,
    pub is_cancelled: bool,
    pub remarks: String,
    pub last_modified_by: Uuid,
    pub lines: Vec<AdjLine>,
    pub ts: u64,
    /// Made by completing this stock count: listed only when the simulator is switched to
    /// behave so (`SimConfig::count_adjustments`), and never a stock movement of its own.
    pub from_count: Option<Uuid>,
}

#[derive(Clone, Debug)]
pub(crate) struct StockTransfer {
    pub id: Uuid,
    pub number: String,
    pub from: u16,
    pub to: u16,
    pub status: &'static str,
    pub is_cancelled: bool,
    pub transfer_date: Dt,
    pub sent_date: Option<Dt>,
    pub received_date: Option<Dt>,
    pub remarks: String,
    pub last_modified_by: Uuid,
    pub lines: Vec<XferLine>,
    pub ts: u64,
}

/// A line of a manufacturing order's bill of materials: a root line builds a finished product
/// (its serials are the units), its children are the components.
#[derive(Clone, Debug)]
pub(crate) struct MoLine {
    pub id: Uuid,
    pub product: u32,
    pub qty: Qty,
    pub children: Vec<MoLine>,
    pub ts: u64,
}

/// Finished goods put away (into stock once the order is completed).
#[derive(Clone, Debug)]
pub(crate) struct PutLine {
    pub id: Uuid,
    /// The root line it finishes (rendered only by the newer API shape).
    pub line: Uuid,
    pub product: u32,
    pub qty: Qty,
    pub location: u16,
    pub sub: Sub,
    pub ts: u64,
}

/// Which picked quantity (or serial) went into which order line.
#[derive(Clone, Debug)]
pub(crate) struct PickMatching {
    pub id: Uuid,
    pub line: Uuid,
    pub pick_line: Uuid,
    /// In ten-thousandths.
    pub qty: i64,
    pub serial: Option<Sid>,
    pub ts: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct ManufacturingOrder {
    pub id: Uuid,
    pub number: String,
    pub location: u16,
    /// `open`, `inProgress` or `completed`.
    pub status: &'static str,
    pub is_cancelled: bool,
    pub order_date: Dt,
    pub due_date: Option<Dt>,
    pub completed_date: Option<Dt>,
    pub primary_product: u32,
    pub remarks: String,
    pub last_modified_by: Uuid,
    pub lines: Vec<MoLine>,
    pub pick_lines: Vec<MoveLine>,
    pub put_lines: Vec<PutLine>,
    pub pick_matchings: Vec<PickMatching>,
    pub ts: u64,
}

/// One product at one sublocation of a count sheet: what was expected and what was counted.
#[derive(Clone, Debug)]
pub(crate) struct CountLine {
    pub id: Uuid,
    pub product: u32,
    pub sub: Sub,
    pub snapshot: Qty,
    pub counted: Qty,
    pub ts: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct CountSheet {
    pub id: Uuid,
    pub number: u32,
    pub status: &'static str,
    pub is_cancelled: bool,
    pub started: Option<Dt>,
    pub completed: Option<Dt>,
    pub lines: Vec<CountLine>,
    pub ts: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct StockCount {
    pub id: Uuid,
    pub number: String,
    pub location: u16,
    /// `open`, `inProgress`, `inReview` or `completed`.
    pub status: &'static str,
    pub is_cancelled: bool,
    pub started_date: Option<Dt>,
    pub completed_date: Option<Dt>,
    pub remarks: String,
    pub last_modified_by: Uuid,
    pub sheets: Vec<CountSheet>,
    pub ts: u64,
}

impl StockCount {
    pub fn is_completed(&self) -> bool {
        self.status == "completed"
    }
}

/// The movement document tables, each keyed (and so ordered) by entity id.
#[derive(Debug, Default)]
pub(crate) struct Docs {
    pub sales_orders: BTreeMap<Uuid, SalesOrder>,
    pub purchase_orders: BTreeMap<Uuid, PurchaseOrder>,
    pub adjustments: BTreeMap<Uuid, StockAdjustment>,
    pub transfers: BTreeMap<Uuid, StockTransfer>,
    pub manufacturing_orders: BTreeMap<Uuid, ManufacturingOrder>,
    pub counts: BTreeMap<Uuid, StockCount>,
}

/// The endpoints the simulator serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    SalesOrders,
    PurchaseOrders,
    StockAdjustments,
    StockTransfers,
    Products,
    Locations,
    /// `customers`: the names the sales orders' customerId stand for.
    Customers,
    /// `vendors`: the names the purchase orders' vendorId stand for.
    Vendors,
    ManufacturingOrders,
    StockCounts,
    /// `count-sheets/{id}` only: a stock count's sheet with its lines.
    CountSheets,
}

impl Endpoint {
    pub const ALL: [Endpoint; 11] = [
        Endpoint::SalesOrders,
        Endpoint::PurchaseOrders,
        Endpoint::StockAdjustments,
        Endpoint::StockTransfers,
        Endpoint::Products,
        Endpoint::Locations,
        Endpoint::Customers,
        Endpoint::Vendors,
        Endpoint::ManufacturingOrders,
        Endpoint::StockCounts,
        Endpoint::CountSheets,
    ];
    pub const DOCUMENTS: [Endpoint; 6] = [
        Endpoint::SalesOrders,
        Endpoint::PurchaseOrders,
        Endpoint::StockAdjustments,
        Endpoint::StockTransfers,
        Endpoint::ManufacturingOrders,
        Endpoint::StockCounts,
    ];

    /// The path segment, e.g. `sales-orders`.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::SalesOrders => "sales-orders",
            Endpoint::PurchaseOrders => "purchase-orders",
            Endpoint::StockAdjustments => "stock-adjustments",
            Endpoint::StockTransfers => "stock-transfers",
            Endpoint::Products => "products",
            Endpoint::Locations => "locations",
            Endpoint::Customers => "customers",
            Endpoint::Vendors => "vendors",
            Endpoint::ManufacturingOrders => "manufacturing-orders",
            Endpoint::StockCounts => "stock-counts",
            Endpoint::CountSheets => "count-sheets",
        }
    }

    pub fn parse(s: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.name() == s)
    }

    /// The entity id property, e.g. `salesOrderId`.
    pub fn id_field(self) -> &'static str {
        match self {
            Endpoint::SalesOrders => "salesOrderId",
            Endpoint::PurchaseOrders => "purchaseOrderId",
            Endpoint::StockAdjustments => "stockAdjustmentId",
            Endpoint::StockTransfers => "stockTransferId",
            Endpoint::Products => "productId",
            Endpoint::Locations => "locationId",
            Endpoint::Customers => "customerId",
            Endpoint::Vendors => "vendorId",
            Endpoint::ManufacturingOrders => "manufacturingOrderId",
            Endpoint::StockCounts => "stockCountId",
            Endpoint::CountSheets => "countSheetId",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The line collections whose serials a test can edit (sales, purchase, adjustment, transfer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Coll {
    Lines,
    PickLines,
    PackLines,
    ShipLines,
    RestockLines,
    ReceiveLines,
    UnstockLines,
}

impl Coll {
    pub fn parse(endpoint: Endpoint, name: &str) -> Option<Coll> {
        let c = match name {
            "lines" => Coll::Lines,
            "pickLines" => Coll::PickLines,
            "packLines" => Coll::PackLines,
            "shipLines" => Coll::ShipLines,
            "restockLines" => Coll::RestockLines,
            "receiveLines" => Coll::ReceiveLines,
            "unstockLines" => Coll::UnstockLines,
            _ => return None,
        };
        let ok = match endpoint {
            Endpoint::SalesOrders => {
                matches!(c, Coll::Lines | Coll::PickLines | Coll::PackLines | Coll::ShipLines | Coll::RestockLines)
            }
            Endpoint::PurchaseOrders => {
                matches!(c, Coll::Lines | Coll::ReceiveLines | Coll::UnstockLines)
            }
            Endpoint::StockAdjustments | Endpoint::StockTransfers => c == Coll::Lines,
            _ => false,
        };
        ok.then_some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_renders_like_inflow() {
        assert_eq!(fixed(187_416_000, 5), "1874.16000");
        assert_eq!(fixed(0, 5), "0.00000");
        assert_eq!(fixed(-QTY_ONE, 4), "-1.0000");
        assert_eq!(fixed(5, 4), "0.0005");
        assert_eq!(fixed(-5, 4), "-0.0005");
    }

    #[test]
    fn timestamps_are_16_upper_hex_digits() {
        let s = serde_json::to_string(&Ts(0x13CF1)).unwrap();
        assert_eq!(s, "\"0000000000013CF1\"");
    }

    #[test]
    fn interner_round_trips() {
        let mut i = Interner::default();
        let a = i.intern("SN-000001");
        assert_eq!(i.intern("SN-000001"), a);
        assert_eq!(i.get(a), "SN-000001");
        assert_eq!(i.lookup("nope"), None);
    }
}
