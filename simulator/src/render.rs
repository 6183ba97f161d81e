//! Turning stored documents into the API's JSON, and the `include` relationship graph.
//!
//! Shape rules, copied from the real 2022 sales order: the entity id comes first, then every
//! other property in case-insensitive alphabetical order, then the included relationships, also
//! alphabetical. Decimals are strings (money 5 dp, quantities 4 dp), enums camelCase, dates carry
//! the location's UTC offset, and `null`s stay `null`. Key order is fixed by the field order of
//! the `Wire*` structs below, so the HTTP body keeps it.
//!
//! Relationships that the simulator does not model (customer, currency, attachments, ...) are
//! valid includes and render as `null` (single) or `[]` (collections), so a client that asks for
//! them does not get a 400.

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::data::*;
use super::inventory::Inventory;

/// A node of the relationship graph: what an include name leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    SalesOrder,
    PurchaseOrder,
    Adjustment,
    Transfer,
    Product,
    Location,
    SoLine,
    PoLine,
    PlaceLine,
    ProductLine,
    ShipLine,
    InventoryLine,
    Manufacturing,
    BomLine,
    MoPlacedLine,
    Matching,
    Count,
    Sheet,
    CountItem,
    Reason,
    /// A relationship the simulator does not materialise: rendered as `null`.
    Leaf,
    /// A collection the simulator does not materialise: rendered as `[]`.
    LeafList,
}

use Node::*;

/// Relationships of each node, in case-insensitive alphabetical order (the render order).
/// Names are from §5 of the API reference.
fn rels(node: Node) -> &'static [(&'static str, Node)] {
    match node {
        SalesOrder => &[
            ("assignedToTeamMember", Leaf),
            ("attachments", LeafList),
            ("confirmerTeamMember", Leaf),
            ("costOfGoodsSold", Leaf),
            ("currency", Leaf),
            ("customer", Leaf),
            ("lastModifiedBy", Leaf),
            ("lines", SoLine),
            ("location", Location),
            ("packLines", ProductLine),
            ("paymentLines", LeafList),
            ("paymentTerms", Leaf),
            ("pickAllocationFailures", LeafList),
            ("pickAllocationLines", LeafList),
            ("pickLines", PlaceLine),
            ("pricingScheme", Leaf),
            ("restockLines", PlaceLine),
            ("salesRepTeamMember", Leaf),
            ("shipLines", ShipLine),
            ("taxingScheme", Leaf),
        ],
        PurchaseOrder => &[
            ("approverTeamMember", Leaf),
            ("assignedToTeamMember", Leaf),
            ("attachments", LeafList),
            ("currency", Leaf),
            ("lastModifiedBy", Leaf),
            ("lines", PoLine),
            ("location", Location),
            ("paymentLines", LeafList),
            ("paymentTerms", Leaf),
            ("receiveLines", PlaceLine),
            ("taxingScheme", Leaf),
            ("unstockLines", PlaceLine),
            ("vendor", Leaf),
        ],
        Adjustment => &[
            ("adjustmentReason", Reason),
            ("attachments", LeafList),
            ("lastModifiedBy", Leaf),
            ("lines", ProductLine),
            ("location", Location),
        ],
        Transfer => &[
            ("assignedToTeamMember", Leaf),
            ("attachments", LeafList),
            ("fromLocation", Location),
            ("lastModifiedBy", Leaf),
            ("lines", ProductLine),
            ("toLocation", Location),
        ],
        Product => &[
            ("attachments", LeafList),
            ("category", Leaf),
            ("cost", Leaf),
            ("defaultImage", Leaf),
            ("defaultPrice", Leaf),
            ("images", LeafList),
            ("inventoryLines", InventoryLine),
            ("itemBoms", LeafList),
            ("lastModifiedBy", Leaf),
            ("lastVendor", Leaf),
            ("prices", LeafList),
            ("productBarcodes", LeafList),
            ("productOperations", LeafList),
            ("reorderSettings", LeafList),
            ("taxCodes", LeafList),
            ("vendorItems", LeafList),
        ],
        Manufacturing => &[
            ("assignedToTeamMember", Leaf),
            ("attachments", LeafList),
            ("currency", Leaf),
            ("lastModifiedBy", Leaf),
            ("lines", BomLine),
            ("location", Location),
            ("pickLines", MoPlacedLine),
            ("pickMatchings", Matching),
            ("primaryFinishedProduct", Product),
            ("putLines", MoPlacedLine),
        ],
        Count => &[
            ("assignedToTeamMember", Leaf),
            ("attachments", LeafList),
            ("lastModifiedBy", Leaf),
            ("location", Location),
            ("sheets", Sheet),
        ],
        Sheet => &[("lines", CountItem)],
        SoLine | PoLine => &[("product", Product), ("taxCode", Leaf)],
        PlaceLine | MoPlacedLine => &[("location", Location), ("product", Product)],
        ProductLine | BomLine | CountItem => &[("product", Product)],
        InventoryLine => &[("location", Location)],
        Location | ShipLine | Matching | Reason | Leaf | LeafList => &[],
    }
}

pub(crate) fn root(endpoint: Endpoint) -> Node {
    match endpoint {
        Endpoint::SalesOrders => SalesOrder,
        Endpoint::PurchaseOrders => PurchaseOrder,
        Endpoint::StockAdjustments => Adjustment,
        Endpoint::StockTransfers => Transfer,
        Endpoint::Products => Product,
        Endpoint::Locations => Location,
        Endpoint::Customers | Endpoint::Vendors => Leaf,
        Endpoint::ManufacturingOrders => Manufacturing,
        Endpoint::StockCounts => Count,
        Endpoint::CountSheets => Sheet,
    }
}

/// The parsed `include=` tree: `lines.product,location` → {lines: {product: {}}, location: {}}.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Includes {
    children: BTreeMap<&'static str, Includes>,
}

impl Includes {
    pub fn get(&self, name: &str) -> Option<&Includes> {
        self.children.get(name)
    }

    /// Parses every `include` value (comma-separated, dotted paths). Names match
    /// case-insensitively; the first name that is not a relationship is the error.
    pub fn parse<'v>(endpoint: Endpoint, values: impl IntoIterator<Item = &'v str>) -> Result<Includes, String> {
        let mut tree = Includes::default();
        for value in values {
            for path in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let mut node = root(endpoint);
                let mut at = &mut tree;
                for seg in path.split('.') {
                    let Some(&(name, target)) = rels(node).iter().find(|(n, _)| n.eq_ignore_ascii_case(seg.trim()))
                    else {
                        return Err(path.to_string());
                    };
                    at = at.children.entry(name).or_default();
                    node = target;
                }
            }
        }
        Ok(tree)
    }

    /// Every relationship of the endpoint, with the product and location of each line: what
    /// the simulator's ground-truth accessors render.
    pub fn everything(endpoint: Endpoint) -> Includes {
        fn fill(node: Node, depth: u32) -> Includes {
            let mut t = Includes::default();
            if depth == 0 {
                return t;
            }
            for &(name, target) in rels(node) {
                // Related products and locations come without their own relationships.
                let d = if matches!(target, Product | Location) { 0 } else { depth - 1 };
                t.children.insert(name, fill(target, d));
            }
            t
        }
        fill(root(endpoint), 2)
    }
}

/// What rendering needs besides the document.
pub(crate) struct Ctx<'a> {
    pub cat: &'a Catalog,
    pub inv: &'a Inventory,
}

/// Included relationships, serialized after the properties (via `#[serde(flatten)]`).
pub(crate) struct Rels<'a>(Vec<(&'static str, Rel<'a>)>);

impl Serialize for Rels<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum Rel<'a> {
    Null,
    Empty([(); 0]),
    SoLines(Vec<WireSoLine<'a>>),
    PoLines(Vec<WirePoLine<'a>>),
    Picks(Vec<WirePickLine<'a>>),
    Packs(Vec<WirePackLine<'a>>),
    Ships(Vec<WireShipLine<'a>>),
    Restocks(Vec<WireRestockLine<'a>>),
    Receives(Vec<WireReceiveLine<'a>>),
    Unstocks(Vec<WireUnstockLine<'a>>),
    AdjLines(Vec<WireAdjLine<'a>>),
    XferLines(Vec<WireXferLine<'a>>),
    Location(WireLocation<'a>),
    Product(Box<WireProduct<'a>>),
    InvLines(Vec<WireInvLine<'a>>),
    MoLines(Vec<WireMoLine<'a>>),
    MoPicks(Vec<WireMoPickLine<'a>>),
    MoPuts(Vec<WireMoPutLine<'a>>),
    Matchings(Vec<WireMatching<'a>>),
    Sheets(Vec<WireSheet<'a>>),
    CountLines(Vec<WireCountLine<'a>>),
    Reason(WireReason),
}

/// Builds the relationships of `node` that `inc` asks for; `make` renders the materialised ones
/// and returns `None` for the rest, which become `null` or `[]`.
fn build_rels<'a>(
    node: Node,
    inc: &Includes,
    mut make: impl FnMut(&'static str, &Includes) -> Option<Rel<'a>>,
) -> Rels<'a> {
    let mut out = Vec::new();
    if inc.children.is_empty() {
        return Rels(out);
    }
    for &(name, target) in rels(node) {
        if let Some(sub) = inc.get(name) {
            let v = make(name, sub).unwrap_or(if target == LeafList { Rel::Empty([]) } else { Rel::Null });
            out.push((name, v));
        }
    }
    Rels(out)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireQuantity {
    standard_quantity: Q4,
    uom_quantity: Q4,
    uom: &'static str,
    serial_numbers: Vec<String>,
}

fn quantity(q: &Qty, cat: &Catalog) -> WireQuantity {
    WireQuantity {
        standard_quantity: Q4(q.amount),
        uom_quantity: Q4(q.amount),
        uom: "",
        serial_numbers: q.serials.iter().map(|&s| cat.serials.get(s).to_string()).collect(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireAddress<'a> {
    address1: &'a str,
    address2: &'static str,
    city: &'a str,
    state: &'a str,
    country: &'a str,
    postal_code: &'a str,
    remarks: &'static str,
    address_type: Option<&'static str>,
}

fn address(a: &Address) -> WireAddress<'_> {
    WireAddress {
        address1: &a.address1,
        address2: "",
        city: &a.city,
        state: &a.state,
        country: &a.country,
        postal_code: &a.postal_code,
        remarks: "",
        address_type: a.address_type,
    }
}

#[derive(Serialize)]
pub(crate) struct CustomFields<'a> {
    custom1: &'a str,
    custom2: &'a str,
    custom3: &'a str,
    custom4: &'a str,
    custom5: &'a str,
    custom6: &'a str,
    custom7: &'a str,
    custom8: &'a str,
    custom9: &'a str,
    custom10: &'a str,
}

fn custom_fields(first: &str) -> CustomFields<'_> {
    CustomFields {
        custom1: first,
        custom2: "",
        custom3: "",
        custom4: "",
        custom5: "",
        custom6: "",
        custom7: "",
        custom8: "",
        custom9: "",
        custom10: "",
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Discount {
    value: Money,
    is_percent: bool,
}

const NO_DISCOUNT: Discount = Discount { value: Money(0), is_percent: true };

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireLocation<'a> {
    location_id: Id,
    address: WireAddress<'a>,
    is_active: bool,
    is_default: bool,
    name: &'a str,
    timestamp: Ts,
}

pub(crate) fn location(l: &super::data::Location) -> WireLocation<'_> {
    WireLocation {
        location_id: Id(l.id),
        address: address(&l.address),
        is_active: true,
        is_default: l.is_default,
        name: &l.name,
        timestamp: Ts(l.ts),
    }
}

/// A customer or a vendor: `customerId` or `vendorId` by the list it is on.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireParty<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_id: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vendor_id: Option<Id>,
    name: &'a str,
    contact_name: &'a str,
    email: &'a str,
    phone: &'a str,
    address: WireAddress<'a>,
    is_active: bool,
    timestamp: Ts,
}

pub(crate) fn party(endpoint: Endpoint, p: &super::data::Party) -> WireParty<'_> {
    let customer = endpoint == Endpoint::Customers;
    WireParty {
        customer_id: customer.then_some(Id(p.id)),
        vendor_id: (!customer).then_some(Id(p.id)),
        name: &p.name,
        contact_name: &p.contact,
        email: &p.email,
        phone: &p.phone,
        address: address(&p.address),
        is_active: true,
        timestamp: Ts(p.ts),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireProduct<'a> {
    product_id: Id,
    barcode: &'a str,
    category_id: Id,
    custom_fields: CustomFields<'a>,
    description: &'a str,
    height: Option<Money>,
    hs_tariff_number: &'static str,
    is_active: bool,
    item_type: &'static str,
    last_modified_by_id: Id,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_modified_date_time: Option<D>,
    last_vendor_id: Id,
    length: Option<Money>,
    name: &'a str,
    origin_country: &'static str,
    purchasing_uom: Option<&'static str>,
    remarks: &'static str,
    sales_uom: Option<&'static str>,
    sku: &'a str,
    standard_uom_name: &'static str,
    timestamp: Ts,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_quantity_on_hand: Option<Option<Q4>>,
    track_serials: bool,
    weight: Option<Money>,
    width: Option<Money>,
    #[serde(flatten)]
    rels: Rels<'a>,
}

/// A product. `top_level` is the `/products` rendering, which adds `lastModifiedDateTime` and
/// `totalQuantityOnHand` (null unless `inventoryLines` is included, as the reference says); the
/// product embedded by `lines.product` has exactly the keys of the real 2022 sample.
pub(crate) fn product<'a>(cx: &Ctx<'a>, index: u32, inc: &Includes, top_level: bool) -> WireProduct<'a> {
    let p = cx.cat.product(index);
    let with_inv = inc.get("inventoryLines").is_some();
    let rels = build_rels(Product, inc, |name, sub| match name {
        "inventoryLines" => Some(Rel::InvLines(
            cx.inv
                .lines_of(index)
                .map(|(k, row)| WireInvLine {
                    inventory_line_id: Id(row.id),
                    location_id: Id(cx.cat.location(k.location).id),
                    lot_id: None,
                    product_id: Id(p.id),
                    quantity_on_hand: Q4(row.qty),
                    serial: k.serial.map(|s| cx.cat.serials.get(s)),
                    sublocation: cx.cat.sublocations.get(k.sub),
                    timestamp: Ts(row.ts),
                    rels: build_rels(InventoryLine, sub, |_, _| {
                        Some(Rel::Location(location(cx.cat.location(k.location))))
                    }),
                })
                .collect(),
        )),
        _ => None,
    });
    WireProduct {
        product_id: Id(p.id),
        barcode: &p.barcode,
        category_id: Id(p.category_id),
        custom_fields: custom_fields(p.custom1),
        description: &p.description,
        height: None,
        hs_tariff_number: "",
        is_active: true,
        item_type: p.item_type,
        last_modified_by_id: Id(cx.cat.team[0]),
        last_modified_date_time: top_level.then_some(D(p.last_modified)),
        last_vendor_id: Id(p.last_vendor),
        length: None,
        name: &p.name,
        origin_country: "",
        purchasing_uom: None,
        remarks: "",
        sales_uom: None,
        sku: &p.sku,
        standard_uom_name: "",
        timestamp: Ts(p.ts),
        total_quantity_on_hand: (top_level || with_inv).then(|| with_inv.then(|| Q4(cx.inv.total(index)))),
        track_serials: p.track_serials,
        weight: None,
        width: None,
        rels,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireInvLine<'a> {
    inventory_line_id: Id,
    location_id: Id,
    lot_id: Option<&'static str>,
    product_id: Id,
    quantity_on_hand: Q4,
    serial: Option<&'a str>,
    sublocation: &'a str,
    timestamp: Ts,
    #[serde(flatten)]
    rels: Rels<'a>,
}

/// The `product` / `location` relationships of a line.
fn line_rels<'a>(node: Node, cx: &Ctx<'a>, inc: &Includes, product_index: u32, loc: Option<u16>) -> Rels<'a> {
    build_rels(node, inc, |name, sub| match name {
        "product" => Some(Rel::Product(Box::new(product(cx, product_index, sub, false)))),
        "location" => loc.map(|l| Rel::Location(location(cx.cat.location(l)))),
        _ => None,
    })
}

fn line_sub_total(l: &OrderLine) -> i64 {
    ((l.unit_price as i128 * l.qty.amount as i128) / QTY_ONE as i128) as i64
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireSoLine<'a> {
    sales_order_line_id: Id,
    description: &'a str,
    discount: Discount,
    is_discarded: bool,
    product_id: Id,
    quantity: WireQuantity,
    return_date: Option<D>,
    service_completed: Option<bool>,
    sub_total: Money,
    tax1_rate: Money,
    tax2_rate: Money,
    tax_code_id: Id,
    timestamp: Ts,
    unit_price: Money,
    #[serde(flatten)]
    rels: Rels<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WirePoLine<'a> {
    purchase_order_line_id: Id,
    description: &'a str,
    discount: Discount,
    product_id: Id,
    quantity: WireQuantity,
    return_date: Option<D>,
    service_completed: Option<bool>,
    sub_total: Money,
    tax1_rate: Money,
    tax2_rate: Money,
    tax_code_id: Id,
    timestamp: Ts,
    unit_price: Money,
    vendor_item_code: &'static str,
    #[serde(flatten)]
    rels: Rels<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WirePickLine<'a> {
    sales_order_pick_line_id: Id,
    description: &'a str,
    location_id: Id,
    pick_date: D,
    product_id: Id,
    quantity: WireQuantity,
    sublocation: &'a str,
    timestamp: Ts,
    #[serde(flatten)]
    rels: Rels<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WirePackLine<'a> {
    sales_order_pack_line_id: Id,
    container_number: &'a str,
    description: &'a str,
    product_id: Id,
    quantity: WireQuantity,
    timestamp: Ts,
    #[serde(flatten)]
    rels: Rels<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireShipLine<'a> {
    sales_order_ship_line_id: Id,
    carrier: &'static str,
    containers: &'a [String],
    easy_post_confirmation_email_address: &'static str,
    easy_post_shipment_id: &'static str,
    easy_post_shipment_status: &'static str,
    shipped_date: D,
    timestamp: Ts,
    tracking_number: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireRestockLine<'a> {
    sales_order_restock_line_id: Id,
    description: &'a str,
    location_id: Id,
    product_id: Id,
    quantity: WireQuantity,
    restock_date: D,
    sublocation: &'a str,
    timestamp: Ts,
    #[serde(flatten)]
    rels: Rels<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireReceiveLine<'a> {
    purchase_order_receive_line_id: Id,
    description: &'a str,
    location_id: Id,
    product_id: Id,
    quantity: WireQuantity,
    receive_date: D,
    sublocation: &'a str,
    timestamp: Ts,
    vendor_item_code: &'static str,
    #[serde(flatten)]
    rels: Rels<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireUnstockLine<'a> {
    purchase_order_unstock_line_id: Id,
    description: &'a str,
    location_id: Id,
    product_id: Id,
    quantity: WireQuantity,
    sublocation: &'a str,
    timestamp: Ts,
    unstock_date: D,
    vendor_item_code: &'static str,
    #[serde(flatten)]
    rels: Rels<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireAdjLine<'a> {
    stock_adjustment_line_id: Id,
    description: &'a str,
    product_id: Id,
    quantity: WireQuantity,
    sublocation: &'a str,
    timestamp: Ts,
    #[serde(flatten)]
    rels: Rels<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireXferLine<'a> {
    stock_transfer_line_id: Id,
    description: &'a str,
    from_sublocation: &'a str,
    product_id: Id,
    quantity: WireQuantity,
    timestamp: Ts,
    to_sublocation: &'a str,
    #[serde(flatten)]
    rels: Rels<'a>,
}

/// Money totals of an order, derived from its lines.
struct Totals {
    sub_total: i64,
    tax: i64,
    total: i64,
}

fn totals(lines: &[OrderLine], tax_rate: i64) -> Totals {
    let sub_total: i64 = lines.iter().map(line_sub_total).sum();
    let tax = ((sub_total as i128 * tax_rate as i128) / (100 * MONEY_ONE as i128)) as i64;
    Totals { sub_total, tax, total: sub_total + tax }
}

/// (total, balance) of an order, for the `total` and `balance` filters and sorts.
pub(crate) fn total_and_balance(lines: &[OrderLine], tax_rate: i64, status: &str) -> (i64, i64) {
    let t = totals(lines, tax_rate);
    (t.total, t.total - paid(status, t.total))
}

fn paid(status: &str, total: i64) -> i64 {
    match status {
        "paid" => total,
        "partial" => total / 2,
        _ => 0,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireSalesOrder<'a> {
    sales_order_id: Id,
    amount_paid: Money,
    assigned_to_team_member_id: Id,
    balance: Money,
    billing_address: WireAddress<'a>,
    calculate_tax2_on_tax1: bool,
    confirmer_team_member_id: Option<Id>,
    contact_name: &'a str,
    currency_id: Id,
    customer_id: Id,
    custom_fields: CustomFields<'a>,
    due_date: Option<D>,
    email: &'a str,
    exchange_rate: &'static str,
    external_id: &'static str,
    inventory_status: &'static str,
    invoiced_date: Option<D>,
    is_cancelled: bool,
    is_completed: bool,
    is_invoiced: bool,
    is_quote: bool,
    is_tax_inclusive: bool,
    last_modified_by_id: Id,
    location_id: Id,
    needs_confirmation: bool,
    non_customer_cost: Discount,
    order_date: D,
    order_freight: Money,
    order_number: &'a str,
    order_remarks: &'static str,
    pack_remarks: &'static str,
    payment_status: &'static str,
    payment_terms_id: Option<Id>,
    phone: &'a str,
    pick_remarks: &'static str,
    po_number: &'a str,
    pricing_scheme_id: Id,
    requested_ship_date: Option<D>,
    restock_remarks: &'static str,
    return_fee: Money,
    return_freight: Money,
    return_remarks: &'static str,
    sales_rep: &'static str,
    sales_rep_team_member_id: Option<Id>,
    same_billing_and_shipping: bool,
    shipping_address: WireAddress<'a>,
    ship_remarks: &'static str,
    ship_to_company_name: &'a str,
    show_shipping: bool,
    source: &'static str,
    sub_total: Money,
    tax1: Money,
    tax1_name: &'static str,
    tax1_on_shipping: bool,
    tax1_rate: Money,
    tax2: Money,
    tax2_name: &'static str,
    tax2_on_shipping: bool,
    tax2_rate: Money,
    taxing_scheme_id: Id,
    timestamp: Ts,
    total: Money,
    #[serde(flatten)]
    rels: Rels<'a>,
}

pub(crate) fn sales_order<'a>(so: &'a super::data::SalesOrder, cx: &Ctx<'a>, inc: &Includes) -> WireSalesOrder<'a> {
    let cat = cx.cat;
    let customer = &cat.customers[so.customer as usize];
    let t = totals(&so.lines, so.tax_rate);
    let amount_paid = paid(so.payment_status, t.total);
    let rels = build_rels(SalesOrder, inc, |name, sub| {
        Some(match name {
            "lines" => Rel::SoLines(
                so.lines
                    .iter()
                    .map(|l| WireSoLine {
                        sales_order_line_id: Id(l.id),
                        description: &cat.product(l.product).description,
                        discount: NO_DISCOUNT,
                        is_discarded: l.is_discarded,
                        product_id: Id(cat.product(l.product).id),
                        quantity: quantity(&l.qty, cat),
                        return_date: l.return_date.map(D),
                        service_completed: None,
                        sub_total: Money(line_sub_total(l)),
                        tax1_rate: Money(so.tax_rate),
                        tax2_rate: Money(0),
                        tax_code_id: Id(cat.tax_code_id),
                        timestamp: Ts(l.ts),
                        unit_price: Money(l.unit_price),
                        rels: line_rels(SoLine, cx, sub, l.product, None),
                    })
                    .collect(),
            ),
            "pickLines" => Rel::Picks(
                so.pick_lines
                    .iter()
                    .map(|l| WirePickLine {
                        sales_order_pick_line_id: Id(l.id),
                        description: &cat.product(l.product).description,
                        location_id: Id(cat.location(l.location).id),
                        pick_date: D(l.date),
                        product_id: Id(cat.product(l.product).id),
                        quantity: quantity(&l.qty, cat),
                        sublocation: cat.sublocations.get(l.sub),
                        timestamp: Ts(l.ts),
                        rels: line_rels(PlaceLine, cx, sub, l.product, Some(l.location)),
                    })
                    .collect(),
            ),
            "packLines" => Rel::Packs(
                so.pack_lines
                    .iter()
                    .map(|l| WirePackLine {
                        sales_order_pack_line_id: Id(l.id),
                        container_number: &l.container,
                        description: &cat.product(l.product).description,
                        product_id: Id(cat.product(l.product).id),
                        quantity: quantity(&l.qty, cat),
                        timestamp: Ts(l.ts),
                        rels: line_rels(ProductLine, cx, sub, l.product, None),
                    })
                    .collect(),
            ),
            "shipLines" => Rel::Ships(
                so.ship_lines
                    .iter()
                    .map(|l| WireShipLine {
                        sales_order_ship_line_id: Id(l.id),
                        carrier: l.carrier,
                        containers: &l.containers,
                        easy_post_confirmation_email_address: "",
                        easy_post_shipment_id: "",
                        easy_post_shipment_status: "manual",
                        shipped_date: D(l.shipped_date),
                        timestamp: Ts(l.ts),
                        tracking_number: &l.tracking,
                    })
                    .collect(),
            ),
            "restockLines" => Rel::Restocks(
                so.restock_lines
                    .iter()
                    .map(|l| WireRestockLine {
                        sales_order_restock_line_id: Id(l.id),
                        description: &cat.product(l.product).description,
                        location_id: Id(cat.location(l.location).id),
                        product_id: Id(cat.product(l.product).id),
                        quantity: quantity(&l.qty, cat),
                        restock_date: D(l.date),
                        sublocation: cat.sublocations.get(l.sub),
                        timestamp: Ts(l.ts),
                        rels: line_rels(PlaceLine, cx, sub, l.product, Some(l.location)),
                    })
                    .collect(),
            ),
            "location" => Rel::Location(location(cat.location(so.location))),
            _ => return None,
        })
    });
    WireSalesOrder {
        sales_order_id: Id(so.id),
        amount_paid: Money(amount_paid),
        assigned_to_team_member_id: Id(so.assigned_to),
        balance: Money(t.total - amount_paid),
        billing_address: address(&customer.address),
        calculate_tax2_on_tax1: false,
        confirmer_team_member_id: None,
        contact_name: &customer.contact,
        currency_id: Id(cat.currency_id),
        customer_id: Id(customer.id),
        custom_fields: custom_fields(so.source_label()),
        due_date: None,
        email: &customer.email,
        exchange_rate: "1.0000000000",
        external_id: "",
        inventory_status: so.inventory_status,
        invoiced_date: so.invoiced_date.map(D),
        is_cancelled: so.is_cancelled,
        is_completed: so.is_completed,
        is_invoiced: so.is_invoiced,
        is_quote: so.is_quote,
        is_tax_inclusive: false,
        last_modified_by_id: Id(so.last_modified_by),
        location_id: Id(cat.location(so.location).id),
        needs_confirmation: false,
        non_customer_cost: Discount { value: Money(0), is_percent: false },
        order_date: D(so.order_date),
        order_freight: Money(0),
        order_number: &so.number,
        order_remarks: "",
        pack_remarks: "",
        payment_status: so.payment_status,
        payment_terms_id: None,
        phone: &customer.phone,
        pick_remarks: "",
        po_number: &so.po_number,
        pricing_scheme_id: Id(cat.pricing_scheme_id),
        requested_ship_date: so.requested_ship_date.map(D),
        restock_remarks: "",
        return_fee: Money(0),
        return_freight: Money(0),
        return_remarks: "",
        sales_rep: "",
        sales_rep_team_member_id: None,
        same_billing_and_shipping: so.same_billing,
        shipping_address: address(&customer.address),
        ship_remarks: "",
        ship_to_company_name: &customer.name,
        show_shipping: true,
        source: so.source,
        sub_total: Money(t.sub_total),
        tax1: Money(t.tax),
        tax1_name: "Sales tax",
        tax1_on_shipping: false,
        tax1_rate: Money(so.tax_rate),
        tax2: Money(0),
        tax2_name: "",
        tax2_on_shipping: false,
        tax2_rate: Money(0),
        taxing_scheme_id: Id(cat.taxing_scheme_id),
        timestamp: Ts(so.ts),
        total: Money(t.total),
        rels,
    }
}

impl super::data::SalesOrder {
    /// `custom1` of a sales order: the sales channel, like the real sample's filled custom field.
    fn source_label(&self) -> &'static str {
        match self.source {
            "inFlowWeb" => "Phone",
            _ => "Web",
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WirePurchaseOrder<'a> {
    purchase_order_id: Id,
    amount_paid: Money,
    approver_team_member_id: Option<Id>,
    assigned_to_team_member_id: Id,
    balance: Money,
    calculate_tax2_on_tax1: bool,
    carrier: &'static str,
    contact_name: &'a str,
    currency_id: Id,
    custom_fields: CustomFields<'a>,
    due_date: Option<D>,
    email: &'a str,
    exchange_rate: &'static str,
    freight: Money,
    inventory_status: &'static str,
    is_cancelled: bool,
    is_completed: bool,
    is_quote: bool,
    is_tax_inclusive: bool,
    last_modified_by_id: Id,
    location_id: Id,
    non_vendor_costs: Discount,
    order_date: D,
    order_number: &'a str,
    order_remarks: &'static str,
    payment_status: &'static str,
    payment_terms_id: Option<Id>,
    phone: &'a str,
    receive_remarks: &'static str,
    request_ship_date: Option<D>,
    return_remarks: &'static str,
    ship_to_address: WireAddress<'a>,
    sub_total: Money,
    tax1: Money,
    tax1_name: &'static str,
    tax1_on_shipping: bool,
    tax1_rate: Money,
    tax2: Money,
    tax2_name: &'static str,
    tax2_on_shipping: bool,
    tax2_rate: Money,
    taxing_scheme_id: Id,
    timestamp: Ts,
    total: Money,
    unstock_remarks: &'static str,
    vendor_address: WireAddress<'a>,
    vendor_id: Id,
    vendor_order_number: &'a str,
    #[serde(flatten)]
    rels: Rels<'a>,
}

pub(crate) fn purchase_order<'a>(
    po: &'a super::data::PurchaseOrder,
    cx: &Ctx<'a>,
    inc: &Includes,
) -> WirePurchaseOrder<'a> {
    let cat = cx.cat;
    let vendor = &cat.vendors[po.vendor as usize];
    let loc = cat.location(po.location);
    let t = totals(&po.lines, po.tax_rate);
    let amount_paid = paid(po.payment_status, t.total);
    let rels = build_rels(PurchaseOrder, inc, |name, sub| {
        Some(match name {
            "lines" => Rel::PoLines(
                po.lines
                    .iter()
                    .map(|l| WirePoLine {
                        purchase_order_line_id: Id(l.id),
                        description: &cat.product(l.product).description,
                        discount: NO_DISCOUNT,
                        product_id: Id(cat.product(l.product).id),
                        quantity: quantity(&l.qty, cat),
                        return_date: l.return_date.map(D),
                        service_completed: None,
                        sub_total: Money(line_sub_total(l)),
                        tax1_rate: Money(po.tax_rate),
                        tax2_rate: Money(0),
                        tax_code_id: Id(cat.tax_code_id),
                        timestamp: Ts(l.ts),
                        unit_price: Money(l.unit_price),
                        vendor_item_code: "",
                        rels: line_rels(PoLine, cx, sub, l.product, None),
                    })
                    .collect(),
            ),
            "receiveLines" => Rel::Receives(
                po.receive_lines
                    .iter()
                    .map(|l| WireReceiveLine {
                        purchase_order_receive_line_id: Id(l.id),
                        description: &cat.product(l.product).description,
                        location_id: Id(cat.location(l.location).id),
                        product_id: Id(cat.product(l.product).id),
                        quantity: quantity(&l.qty, cat),
                        receive_date: D(l.date),
                        sublocation: cat.sublocations.get(l.sub),
                        timestamp: Ts(l.ts),
                        vendor_item_code: "",
                        rels: line_rels(PlaceLine, cx, sub, l.product, Some(l.location)),
                    })
                    .collect(),
            ),
            "unstockLines" => Rel::Unstocks(
                po.unstock_lines
                    .iter()
                    .map(|l| WireUnstockLine {
                        purchase_order_unstock_line_id: Id(l.id),
                        description: &cat.product(l.product).description,
                        location_id: Id(cat.location(l.location).id),
                        product_id: Id(cat.product(l.product).id),
                        quantity: quantity(&l.qty, cat),
                        sublocation: cat.sublocations.get(l.sub),
                        timestamp: Ts(l.ts),
                        unstock_date: D(l.date),
                        vendor_item_code: "",
                        rels: line_rels(PlaceLine, cx, sub, l.product, Some(l.location)),
                    })
                    .collect(),
            ),
            "location" => Rel::Location(location(loc)),
            _ => return None,
        })
    });
    WirePurchaseOrder {
        purchase_order_id: Id(po.id),
        amount_paid: Money(amount_paid),
        approver_team_member_id: None,
        assigned_to_team_member_id: Id(po.assigned_to),
        balance: Money(t.total - amount_paid),
        calculate_tax2_on_tax1: false,
        carrier: "",
        contact_name: &vendor.contact,
        currency_id: Id(cat.currency_id),
        custom_fields: custom_fields(""),
        due_date: None,
        email: &vendor.email,
        exchange_rate: "1.0000000000",
        freight: Money(0),
        inventory_status: po.inventory_status,
        is_cancelled: po.is_cancelled,
        is_completed: po.is_completed,
        is_quote: po.is_quote,
        is_tax_inclusive: false,
        last_modified_by_id: Id(po.last_modified_by),
        location_id: Id(loc.id),
        non_vendor_costs: Discount { value: Money(0), is_percent: false },
        order_date: D(po.order_date),
        order_number: &po.number,
        order_remarks: "",
        payment_status: po.payment_status,
        payment_terms_id: None,
        phone: &vendor.phone,
        receive_remarks: "",
        request_ship_date: None,
        return_remarks: "",
        ship_to_address: address(&loc.address),
        sub_total: Money(t.sub_total),
        tax1: Money(t.tax),
        tax1_name: "Sales tax",
        tax1_on_shipping: false,
        tax1_rate: Money(po.tax_rate),
        tax2: Money(0),
        tax2_name: "",
        tax2_on_shipping: false,
        tax2_rate: Money(0),
        taxing_scheme_id: Id(cat.taxing_scheme_id),
        timestamp: Ts(po.ts),
        total: Money(t.total),
        unstock_remarks: "",
        vendor_address: address(&vendor.address),
        vendor_id: Id(vendor.id),
        vendor_order_number: &po.vendor_order_number,
        rels,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireAdjustment<'a> {
    stock_adjustment_id: Id,
    adjustment_number: &'a str,
    adjustment_reason_id: Id,
    custom_fields: CustomFields<'a>,
    date: D,
    is_cancelled: bool,
    last_modified_by_id: Id,
    location_id: Id,
    remarks: &'a str,
    timestamp: Ts,
    #[serde(flatten)]
    rels: Rels<'a>,
}

pub(crate) fn adjustment<'a>(sa: &'a StockAdjustment, cx: &Ctx<'a>, inc: &Includes) -> WireAdjustment<'a> {
    let cat = cx.cat;
    let rels = build_rels(Adjustment, inc, |name, sub| {
        Some(match name {
            "adjustmentReason" => Rel::Reason(reason(cat, sa.reason)),
            "lines" => Rel::AdjLines(
                sa.lines
                    .iter()
                    .map(|l| WireAdjLine {
                        stock_adjustment_line_id: Id(l.id),
                        description: &cat.product(l.product).description,
                        product_id: Id(cat.product(l.product).id),
                        quantity: quantity(&l.qty, cat),
                        sublocation: cat.sublocations.get(l.sub),
                        timestamp: Ts(l.ts),
                        rels: line_rels(ProductLine, cx, sub, l.product, None),
                    })
                    .collect(),
            ),
            "location" => Rel::Location(location(cat.location(sa.location))),
            _ => return None,
        })
    });
    WireAdjustment {
        stock_adjustment_id: Id(sa.id),
        adjustment_number: &sa.number,
        adjustment_reason_id: Id(sa.reason),
        custom_fields: custom_fields(""),
        date: D(sa.date),
        is_cancelled: sa.is_cancelled,
        last_modified_by_id: Id(sa.last_modified_by),
        location_id: Id(cat.location(sa.location).id),
        remarks: &sa.remarks,
        timestamp: Ts(sa.ts),
        rels,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireTransfer<'a> {
    stock_transfer_id: Id,
    assigned_to_team_member_id: Option<Id>,
    custom_fields: CustomFields<'a>,
    from_location_id: Id,
    is_cancelled: bool,
    last_modified_by_id: Id,
    received_date: Option<D>,
    remarks: &'a str,
    sent_date: Option<D>,
    status: &'static str,
    timestamp: Ts,
    to_location_id: Id,
    transfer_date: D,
    transfer_number: &'a str,
    #[serde(flatten)]
    rels: Rels<'a>,
}

pub(crate) fn transfer<'a>(st: &'a StockTransfer, cx: &Ctx<'a>, inc: &Includes) -> WireTransfer<'a> {
    let cat = cx.cat;
    let rels = build_rels(Transfer, inc, |name, sub| {
        Some(match name {
            "lines" => Rel::XferLines(
                st.lines
                    .iter()
                    .map(|l| WireXferLine {
                        stock_transfer_line_id: Id(l.id),
                        description: &cat.product(l.product).description,
                        from_sublocation: cat.sublocations.get(l.from_sub),
                        product_id: Id(cat.product(l.product).id),
                        quantity: quantity(&l.qty, cat),
                        timestamp: Ts(l.ts),
                        to_sublocation: cat.sublocations.get(l.to_sub),
                        rels: line_rels(ProductLine, cx, sub, l.product, None),
                    })
                    .collect(),
            ),
            "fromLocation" => Rel::Location(location(cat.location(st.from))),
            "toLocation" => Rel::Location(location(cat.location(st.to))),
            _ => return None,
        })
    });
    WireTransfer {
        stock_transfer_id: Id(st.id),
        assigned_to_team_member_id: None,
        custom_fields: custom_fields(""),
        from_location_id: Id(cat.location(st.from).id),
        is_cancelled: st.is_cancelled,
        last_modified_by_id: Id(st.last_modified_by),
        received_date: st.received_date.map(D),
        remarks: &st.remarks,
        sent_date: st.sent_date.map(D),
        status: st.status,
        timestamp: Ts(st.ts),
        to_location_id: Id(cat.location(st.to).id),
        transfer_date: D(st.transfer_date),
        transfer_number: &st.number,
        rels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_parse_dotted_and_reject_unknown() {
        let inc = Includes::parse(Endpoint::SalesOrders, ["lines.product,shipLines", "location"]).unwrap();
        assert!(inc.get("lines").unwrap().get("product").is_some());
        assert!(inc.get("shipLines").is_some());
        assert!(inc.get("location").is_some());
        assert!(inc.get("pickLines").is_none());
        assert_eq!(
            Includes::parse(Endpoint::StockAdjustments, ["lines,customFields"]),
            Err("customFields".to_string())
        );
        assert_eq!(Includes::parse(Endpoint::SalesOrders, ["lines.stock"]), Err("lines.stock".to_string()));
        assert_eq!(Includes::parse(Endpoint::Products, ["inventory"]), Err("inventory".to_string()));
        // Case-insensitive names resolve to the canonical spelling.
        let inc = Includes::parse(Endpoint::Products, ["InventoryLines.Location"]).unwrap();
        assert!(inc.get("inventoryLines").unwrap().get("location").is_some());
    }

    #[test]
    fn everything_includes_line_products() {
        let inc = Includes::everything(Endpoint::PurchaseOrders);
        assert!(inc.get("receiveLines").unwrap().get("product").is_some());
        assert!(inc.get("receiveLines").unwrap().get("location").is_some());
        assert!(inc.get("vendor").is_some());
    }
}

// ---------------------------------------------------------------------------------------------
// Adjustment reasons, manufacturing orders and stock counts

/// The names of the catalog's ordinary adjustment reasons, in order.
const REASON_NAMES: [&str; 4] = ["Damaged", "Lost", "Found", "Correction"];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireReason {
    adjustment_reason_id: Id,
    is_active: bool,
    is_internal: bool,
    name: &'static str,
}

fn reason(cat: &Catalog, id: uuid::Uuid) -> WireReason {
    let internal = id == cat.count_reason;
    let name = if internal {
        "Stock count"
    } else {
        cat.adjustment_reasons.iter().position(|r| *r == id).map_or("Other", |i| REASON_NAMES[i % REASON_NAMES.len()])
    };
    WireReason { adjustment_reason_id: Id(id), is_active: true, is_internal: internal, name }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireManufacturingOrder<'a> {
    manufacturing_order_id: Id,
    assigned_to_team_member_id: Option<Id>,
    completed_date: Option<D>,
    currency_id: Id,
    due_date: Option<D>,
    extra_costs: Money,
    is_cancelled: bool,
    is_completed: bool,
    is_prioritized: bool,
    last_modified_by_id: Id,
    location_id: Id,
    manufacturing_order_number: &'a str,
    order_date: D,
    pick_remarks: &'static str,
    primary_finished_product_id: Id,
    put_away_remarks: &'static str,
    remarks: &'a str,
    status: &'static str,
    timestamp: Ts,
    #[serde(flatten)]
    rels: Rels<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireMoLine<'a> {
    manufacturing_order_line_id: Id,
    description: &'a str,
    manufacturing_order_id: Id,
    manufacturing_order_lines: Vec<WireMoLine<'a>>,
    manufacturing_order_operations: [(); 0],
    parent_manufacturing_order_line_id: Option<Id>,
    product_id: Id,
    quantity: WireQuantity,
    timestamp: Ts,
    #[serde(flatten)]
    rels: Rels<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireMoPickLine<'a> {
    manufacturing_order_pick_line_id: Id,
    description: &'a str,
    location_id: Id,
    lot_id: Option<&'static str>,
    pick_date: D,
    product_id: Id,
    quantity: WireQuantity,
    sublocation: &'a str,
    timestamp: Ts,
    #[serde(flatten)]
    rels: Rels<'a>,
}

/// `manufacturingOrderLineId` and `putDate` come only with the newer shape
/// (`SimConfig::newer_manufacturing_fields`), as the 2025-06-24 spec has neither.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireMoPutLine<'a> {
    manufacturing_order_put_line_id: Id,
    description: &'a str,
    location_id: Id,
    lot_id: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    manufacturing_order_line_id: Option<Id>,
    product_id: Id,
    #[serde(skip_serializing_if = "Option::is_none")]
    put_date: Option<Option<D>>,
    quantity: WireQuantity,
    sublocation: &'a str,
    timestamp: Ts,
    #[serde(flatten)]
    rels: Rels<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireMatching<'a> {
    manufacturing_order_pick_matching_id: Id,
    manufacturing_order_line_id: Id,
    manufacturing_order_pick_line_id: Id,
    matched_quantity: Q4,
    serial: &'a str,
    timestamp: Ts,
}

fn mo_line<'a>(
    l: &'a MoLine,
    parent: Option<uuid::Uuid>,
    mo: uuid::Uuid,
    cx: &Ctx<'a>,
    inc: &Includes,
) -> WireMoLine<'a> {
    let cat = cx.cat;
    WireMoLine {
        manufacturing_order_line_id: Id(l.id),
        description: &cat.product(l.product).description,
        manufacturing_order_id: Id(mo),
        manufacturing_order_lines: l.children.iter().map(|c| mo_line(c, Some(l.id), mo, cx, inc)).collect(),
        manufacturing_order_operations: [],
        parent_manufacturing_order_line_id: parent.map(Id),
        product_id: Id(cat.product(l.product).id),
        quantity: quantity(&l.qty, cat),
        timestamp: Ts(l.ts),
        rels: line_rels(BomLine, cx, inc, l.product, None),
    }
}

/// A manufacturing order; `newer` adds the put lines' `putDate` and `manufacturingOrderLineId`.
pub(crate) fn manufacturing_order<'a>(
    mo: &'a ManufacturingOrder,
    cx: &Ctx<'a>,
    inc: &Includes,
    newer: bool,
) -> WireManufacturingOrder<'a> {
    let cat = cx.cat;
    let completed = mo.status == "completed";
    let rels = build_rels(Manufacturing, inc, |name, sub| {
        Some(match name {
            "lines" => Rel::MoLines(mo.lines.iter().map(|l| mo_line(l, None, mo.id, cx, sub)).collect()),
            "pickLines" => Rel::MoPicks(
                mo.pick_lines
                    .iter()
                    .map(|l| WireMoPickLine {
                        manufacturing_order_pick_line_id: Id(l.id),
                        description: &cat.product(l.product).description,
                        location_id: Id(cat.location(l.location).id),
                        lot_id: None,
                        pick_date: D(l.date),
                        product_id: Id(cat.product(l.product).id),
                        quantity: quantity(&l.qty, cat),
                        sublocation: cat.sublocations.get(l.sub),
                        timestamp: Ts(l.ts),
                        rels: line_rels(MoPlacedLine, cx, sub, l.product, Some(l.location)),
                    })
                    .collect(),
            ),
            "putLines" => Rel::MoPuts(
                mo.put_lines
                    .iter()
                    .map(|l| WireMoPutLine {
                        manufacturing_order_put_line_id: Id(l.id),
                        description: &cat.product(l.product).description,
                        location_id: Id(cat.location(l.location).id),
                        lot_id: None,
                        manufacturing_order_line_id: newer.then_some(Id(l.line)),
                        product_id: Id(cat.product(l.product).id),
                        put_date: newer.then_some(mo.completed_date.filter(|_| completed).map(D)),
                        quantity: quantity(&l.qty, cat),
                        sublocation: cat.sublocations.get(l.sub),
                        timestamp: Ts(l.ts),
                        rels: line_rels(MoPlacedLine, cx, sub, l.product, Some(l.location)),
                    })
                    .collect(),
            ),
            "pickMatchings" => Rel::Matchings(
                mo.pick_matchings
                    .iter()
                    .map(|m| WireMatching {
                        manufacturing_order_pick_matching_id: Id(m.id),
                        manufacturing_order_line_id: Id(m.line),
                        manufacturing_order_pick_line_id: Id(m.pick_line),
                        matched_quantity: Q4(m.qty),
                        serial: m.serial.map_or("", |s| cat.serials.get(s)),
                        timestamp: Ts(m.ts),
                    })
                    .collect(),
            ),
            "primaryFinishedProduct" => Rel::Product(Box::new(product(cx, mo.primary_product, sub, false))),
            "location" => Rel::Location(location(cat.location(mo.location))),
            _ => return None,
        })
    });
    WireManufacturingOrder {
        manufacturing_order_id: Id(mo.id),
        assigned_to_team_member_id: None,
        completed_date: mo.completed_date.filter(|_| completed).map(D),
        currency_id: Id(cat.currency_id),
        due_date: mo.due_date.map(D),
        extra_costs: Money(0),
        is_cancelled: mo.is_cancelled,
        is_completed: completed,
        is_prioritized: false,
        last_modified_by_id: Id(mo.last_modified_by),
        location_id: Id(cat.location(mo.location).id),
        manufacturing_order_number: &mo.number,
        order_date: D(mo.order_date),
        pick_remarks: "",
        primary_finished_product_id: Id(cat.product(mo.primary_product).id),
        put_away_remarks: "",
        remarks: &mo.remarks,
        status: mo.status,
        timestamp: Ts(mo.ts),
        rels,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireStockCount<'a> {
    stock_count_id: Id,
    assigned_to_team_member_id: Option<Id>,
    completed_date: Option<D>,
    is_cancelled: bool,
    is_completed: bool,
    is_prepared: bool,
    is_reviewed: bool,
    is_started: bool,
    last_modified_by_id: Id,
    location_id: Id,
    remarks: &'a str,
    started_date: Option<D>,
    status: &'static str,
    stock_count_number: &'a str,
    timestamp: Ts,
    #[serde(flatten)]
    rels: Rels<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireSheet<'a> {
    count_sheet_id: Id,
    completed_date: Option<D>,
    is_cancelled: bool,
    is_completed: bool,
    sheet_number: u32,
    started_date: Option<D>,
    status: &'static str,
    stock_count_id: Id,
    timestamp: Ts,
    #[serde(flatten)]
    rels: Rels<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireCountLine<'a> {
    count_sheet_line_id: Id,
    counted_quantity: WireQuantity,
    description: &'a str,
    product_id: Id,
    snapshot_quantity: WireQuantity,
    sublocation: &'a str,
    timestamp: Ts,
    #[serde(flatten)]
    rels: Rels<'a>,
}

/// A count sheet (inside its count, or from `count-sheets/{id}`).
pub(crate) fn sheet<'a>(sh: &'a CountSheet, count: uuid::Uuid, cx: &Ctx<'a>, inc: &Includes) -> WireSheet<'a> {
    let cat = cx.cat;
    let rels = build_rels(Sheet, inc, |name, sub| match name {
        "lines" => Some(Rel::CountLines(
            sh.lines
                .iter()
                .map(|l| WireCountLine {
                    count_sheet_line_id: Id(l.id),
                    counted_quantity: quantity(&l.counted, cat),
                    description: &cat.product(l.product).description,
                    product_id: Id(cat.product(l.product).id),
                    snapshot_quantity: quantity(&l.snapshot, cat),
                    sublocation: cat.sublocations.get(l.sub),
                    timestamp: Ts(l.ts),
                    rels: line_rels(CountItem, cx, sub, l.product, None),
                })
                .collect(),
        )),
        _ => None,
    });
    WireSheet {
        count_sheet_id: Id(sh.id),
        completed_date: sh.completed.map(D),
        is_cancelled: sh.is_cancelled,
        is_completed: sh.status == "completed",
        sheet_number: sh.number,
        started_date: sh.started.map(D),
        status: sh.status,
        stock_count_id: Id(count),
        timestamp: Ts(sh.ts),
        rels,
    }
}

pub(crate) fn stock_count<'a>(sc: &'a StockCount, cx: &Ctx<'a>, inc: &Includes) -> WireStockCount<'a> {
    let cat = cx.cat;
    let rels = build_rels(Count, inc, |name, sub| {
        Some(match name {
            "sheets" => Rel::Sheets(sc.sheets.iter().map(|sh| sheet(sh, sc.id, cx, sub)).collect()),
            "location" => Rel::Location(location(cat.location(sc.location))),
            _ => return None,
        })
    });
    WireStockCount {
        stock_count_id: Id(sc.id),
        assigned_to_team_member_id: None,
        completed_date: sc.completed_date.filter(|_| sc.is_completed()).map(D),
        is_cancelled: sc.is_cancelled,
        is_completed: sc.is_completed(),
        is_prepared: true,
        is_reviewed: sc.is_completed(),
        is_started: sc.status != "open",
        last_modified_by_id: Id(sc.last_modified_by),
        location_id: Id(cat.location(sc.location).id),
        remarks: &sc.remarks,
        started_date: sc.started_date.map(D),
        status: sc.status,
        stock_count_number: &sc.number,
        timestamp: Ts(sc.ts),
        rels,
    }
}
