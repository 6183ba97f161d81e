//! One serial's story from its events: ordering, running on-hand effect, and where it is now.
//!
//! Events are ordered by when they happened, then by the natural order of a document's steps
//! (ordered or sold before picked before shipped; sent before received), then by `event_id`.
//! A packed event has no date of its own; it is placed right after the dated steps of its own
//! document that come before it. One serial string under two products (or two companies) is
//! two histories, kept apart.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::mapping::EventType;
use crate::store::genealogy::GenealogyRow;
use crate::store::query::EventRow;

/// Where a serial stands: the `status_after` of its latest current event that has one, the
/// rule `serial_current` applies (`event_types.status_after`, migration V10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// In stock at a location.
    InStock,
    /// Sent on a stock transfer and not received yet.
    InTransit,
    /// Picked for a sales order and not shipped yet: out of stock, not with the customer.
    Picked,
    /// Shipped to a customer.
    WithCustomer,
    /// Returned to the vendor on a purchase order.
    ReturnedToVendor,
    /// Taken out of stock by a stock adjustment.
    AdjustedOut,
    /// Picked as a component of a manufacturing order: built into another product.
    Consumed,
    /// Expected by a completed stock count and not counted.
    Missing,
    /// Documents mention it (ordered, quoted, sold) but no stock movement is recorded.
    NeverStocked,
    /// A status this version does not know (a database migrated by a newer `audit`).
    Other,
}

impl Status {
    const ALL: [Status; 10] = [
        Status::InStock,
        Status::InTransit,
        Status::Picked,
        Status::WithCustomer,
        Status::ReturnedToVendor,
        Status::AdjustedOut,
        Status::Consumed,
        Status::Missing,
        Status::NeverStocked,
        Status::Other,
    ];

    /// The status's name, as `event_types.status_after` and the output spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InStock => "in_stock",
            Status::InTransit => "in_transit",
            Status::Picked => "picked",
            Status::WithCustomer => "with_customer",
            Status::ReturnedToVendor => "returned_to_vendor",
            Status::AdjustedOut => "adjusted_out",
            Status::Consumed => "consumed",
            Status::Missing => "missing",
            Status::NeverStocked => "never_stocked",
            Status::Other => "other",
        }
    }

    /// The status a `status_after` text names.
    pub fn parse(text: &str) -> Status {
        Status::ALL.into_iter().find(|s| s.as_str() == text).unwrap_or(Status::Other)
    }
}

/// The "now" line of a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Now {
    /// Where the serial stands.
    pub status: Status,
    /// The location of the event that set the status.
    pub location_id: Option<String>,
    /// That location's name, once the locations are fetched.
    pub location_name: Option<String>,
    /// That event's sublocation (bin), if any.
    pub sublocation: Option<String>,
    /// When that event happened; `None` when undated or never stocked.
    pub since: Option<DateTime<Utc>>,
    /// The event that set the status.
    pub event_type: Option<String>,
    /// The latest event of any kind (`serial_current.last_event`).
    pub last_event: Option<String>,
    /// The document of the event that set the status (of the latest event when none did).
    pub doc_type: Option<String>,
    /// That document's number.
    pub doc_number: Option<String>,
    /// One sentence for people.
    pub summary: String,
}

/// One event of a history, in the story's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The event as stored.
    #[serde(flatten)]
    pub event: EventRow,
    /// The running sum of `quantity_delta` over current events up to this one.
    pub on_hand: i64,
    /// Whether the event was retracted: shown, but not counted in `on_hand` or the status.
    pub retracted: bool,
}

/// The history of one serial under one product of one company.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct History {
    /// The inFlow company.
    pub company_id: String,
    /// The serial number.
    pub serial: String,
    /// The product the serial belongs to; `None` when its documents name none.
    pub product_id: Option<String>,
    /// The product's name, from the first event that carries one.
    pub product_name: Option<String>,
    /// The product's SKU, from the first event that carries one.
    pub product_sku: Option<String>,
    /// Where the serial stands now.
    pub now: Now,
    /// Every event, ordered as the module describes.
    pub events: Vec<Entry>,
    /// The finished units this serial was built into (manufacturing orders).
    pub built_into: Vec<GenealogyRow>,
    /// The components built into this serial.
    pub components: Vec<GenealogyRow>,
}

impl History {
    /// The product as people name it: its name, else its SKU, else its id.
    pub fn product_label(&self) -> String {
        self.product_name
            .clone()
            .or_else(|| self.product_sku.clone())
            .or_else(|| self.product_id.clone())
            .unwrap_or_else(|| "unknown product".into())
    }
}

/// Groups a serial's events into histories and tells each one's story.
pub fn histories(rows: Vec<EventRow>) -> Vec<History> {
    let mut groups: BTreeMap<(String, Option<String>), Vec<EventRow>> = BTreeMap::new();
    for row in rows {
        groups.entry((row.company_id.clone(), row.product_id.clone())).or_default().push(row);
    }
    groups.into_values().map(history).collect()
}

fn step(event_type: &str) -> u8 {
    event_type.parse::<EventType>().map_or(u8::MAX, EventType::step)
}

fn history(mut rows: Vec<EventRow>) -> History {
    let effective: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| effective_time(r, &rows)).collect();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    // Undated events that cannot borrow a date go last: they are the least placed in time.
    order.sort_by_key(|&i| (effective[i].is_none(), effective[i], step(&rows[i].event_type), rows[i].event_id));
    let mut sorted: Vec<EventRow> = Vec::with_capacity(rows.len());
    let mut slots: Vec<Option<EventRow>> = rows.drain(..).map(Some).collect();
    for i in order {
        sorted.push(slots[i].take().expect("each index once"));
    }

    let mut on_hand = 0i64;
    let events: Vec<Entry> = sorted
        .into_iter()
        .map(|event| {
            let retracted = event.retracted_at.is_some();
            if !retracted {
                on_hand += i64::from(event.quantity_delta);
            }
            Entry { event, on_hand, retracted }
        })
        .collect();
    let first = &events[0].event;
    History {
        company_id: first.company_id.clone(),
        serial: first.serial.clone(),
        product_id: first.product_id.clone(),
        product_name: events.iter().find_map(|e| e.event.product_name.clone()),
        product_sku: events.iter().find_map(|e| e.event.product_sku.clone()),
        now: now(&events),
        events,
        built_into: Vec::new(),
        components: Vec::new(),
    }
}

/// Attaches each genealogy row to the histories of its two serials (by company and product).
pub fn attach_genealogy(histories: &mut [History], rows: Vec<GenealogyRow>) {
    for row in rows {
        for h in histories.iter_mut().filter(|h| h.company_id == row.company_id) {
            if h.serial == row.component_serial && h.product_id == row.component_product_id {
                h.built_into.push(row.clone());
            }
            if h.serial == row.finished_serial && h.product_id == row.finished_product_id {
                h.components.push(row.clone());
            }
        }
    }
}

/// "built into LP-1 (Laptop) on MO-000012" for each unit, "contains 2 components: ..." for
/// the serial's own components: the lines under a history's header.
pub fn genealogy_lines(h: &History) -> Vec<String> {
    let mut out = Vec::new();
    for r in &h.built_into {
        let product = r.finished_product_name.clone().or_else(|| r.finished_product_id.clone()).unwrap_or_default();
        out.push(format!("built into {} ({product}) on {}{}", r.finished_serial, order_label(r), build_state(r)));
    }
    if !h.components.is_empty() {
        let n = h.components.len();
        let parts: Vec<String> = h
            .components
            .iter()
            .map(|r| {
                let product =
                    r.component_product_name.clone().or_else(|| r.component_product_id.clone()).unwrap_or_default();
                format!("{} ({product})", r.component_serial)
            })
            .collect();
        let mut orders: Vec<String> = h.components.iter().map(order_label).collect();
        orders.sort();
        orders.dedup();
        out.push(format!(
            "contains {n} component{}: {} on {}",
            if n == 1 { "" } else { "s" },
            parts.join(", "),
            orders.join(", ")
        ));
    }
    out
}

fn order_label(r: &GenealogyRow) -> String {
    r.doc_number.clone().unwrap_or_else(|| format!("{} {}", r.doc_type, r.doc_id))
}

/// ", 2025-03-04", or how the order stands, and how precise the link is when it is not exact.
fn build_state(r: &GenealogyRow) -> String {
    let when = match r.built_at {
        Some(t) => format!(", {}", crate::output::short_day(t)),
        None => {
            format!(" (not completed yet{})", r.order_status.as_deref().map(|s| format!(": {s}")).unwrap_or_default())
        }
    };
    let how = match r.matched_to.as_str() {
        "unit" => "",
        "line" => "; one of the units of its order line",
        _ => "; one of the units of its order",
    };
    format!("{when}{how}")
}

/// A node of a bill of serials: a serial, and the order that linked it to its parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeNode {
    /// The serial number.
    pub serial: String,
    /// Its product, if known.
    pub product_id: Option<String>,
    /// The product's name, once the products are fetched.
    pub product_name: Option<String>,
    /// The manufacturing order that built it in (or was built with it).
    pub doc_number: Option<String>,
    /// When the finished unit was put away; `None` while the order is not completed.
    pub built_at: Option<DateTime<Utc>>,
    /// `unit`, `line` or `order`: how closely the link is known.
    pub matched_to: String,
    /// The next level of the bill, the same way.
    pub children: Vec<TreeNode>,
}

/// Which way a bill of serials goes from its root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Components, their components, ...
    Down,
    /// The units it was built into, and theirs, ...
    Up,
}

/// The bill of serials from `root` (serial, product) one way, from every link loaded. A serial
/// met again on its own path (a cycle in odd data) is not followed; depth is bounded.
pub fn tree(
    company_id: &str,
    root: (&str, Option<&str>),
    rows: &[GenealogyRow],
    direction: Direction,
) -> Vec<TreeNode> {
    fn grow(
        company_id: &str,
        at: (&str, Option<&str>),
        rows: &[GenealogyRow],
        direction: Direction,
        path: &mut Vec<(String, Option<String>)>,
    ) -> Vec<TreeNode> {
        if path.len() > 32 {
            return Vec::new();
        }
        let mut out = Vec::new();
        for r in rows.iter().filter(|r| r.company_id == company_id) {
            let (from, to) = match direction {
                Direction::Down => (
                    (r.finished_serial.as_str(), r.finished_product_id.as_deref()),
                    (&r.component_serial, &r.component_product_id, &r.component_product_name),
                ),
                Direction::Up => (
                    (r.component_serial.as_str(), r.component_product_id.as_deref()),
                    (&r.finished_serial, &r.finished_product_id, &r.finished_product_name),
                ),
            };
            if from != at {
                continue;
            }
            let key = (to.0.clone(), to.1.clone());
            if path.contains(&key) {
                continue;
            }
            path.push(key);
            let children = grow(company_id, (to.0, to.1.as_deref()), rows, direction, path);
            path.pop();
            out.push(TreeNode {
                serial: to.0.clone(),
                product_id: to.1.clone(),
                product_name: to.2.clone(),
                doc_number: r.doc_number.clone(),
                built_at: r.built_at,
                matched_to: r.matched_to.clone(),
                children,
            });
        }
        out
    }
    let mut path = vec![(root.0.to_string(), root.1.map(str::to_string))];
    grow(company_id, root, rows, direction, &mut path)
}

/// An undated event (packed) borrows the latest date of the earlier steps of its document.
pub(crate) fn effective_time(row: &EventRow, all: &[EventRow]) -> Option<DateTime<Utc>> {
    row.occurred_at.or_else(|| {
        let own = step(&row.event_type);
        all.iter()
            .filter(|o| o.doc_type == row.doc_type && o.doc_id == row.doc_id && step(&o.event_type) < own)
            .filter(|o| o.retracted_at.is_none())
            .filter_map(|o| o.occurred_at)
            .max()
    })
}

fn now(events: &[Entry]) -> Now {
    let current: Vec<&EventRow> = events.iter().filter(|e| !e.retracted).map(|e| &e.event).collect();
    // The latest event that sets a status, in the table's order (an undated event placed by its
    // document's earlier steps), as the serial_current view takes it.
    let Some(last) = current.iter().rev().find(|e| e.status_after.is_some()) else {
        let summary = match current.last() {
            Some(e) => {
                format!("never in stock per the recorded history; last seen {} on {}", e.event_type, doc_label(e))
            }
            None => "no current events (every recorded event was retracted)".to_string(),
        };
        return Now {
            status: Status::NeverStocked,
            location_id: None,
            location_name: None,
            sublocation: None,
            since: None,
            event_type: current.last().map(|e| e.event_type.clone()),
            last_event: current.last().map(|e| e.event_type.clone()),
            doc_type: current.last().map(|e| e.doc_type.clone()),
            doc_number: current.last().and_then(|e| e.doc_number.clone()),
            summary,
        };
    };
    let status_text = last.status_after.as_deref().unwrap_or_default();
    let status = Status::parse(status_text);
    let place = place_label(last);
    let when = last.occurred_at.map_or("an unknown date".to_string(), crate::output::short_day);
    let doc = doc_label(last);
    let summary = match status {
        Status::Picked => format!("left stock: picked from {place} for {doc} on {when}, not shipped yet"),
        Status::WithCustomer => match &last.party_name {
            Some(name) => format!("left stock: shipped to {name} on {doc} ({when})"),
            None => format!("left stock: shipped to the customer on {doc} ({when})"),
        },
        Status::InTransit => format!("in transit from {place} on {doc} since {when}"),
        Status::ReturnedToVendor => format!("left stock: returned to the vendor from {place} on {doc} ({when})"),
        Status::AdjustedOut => format!("left stock: adjusted out of {place} on {doc} ({when})"),
        Status::Consumed => format!("left stock: consumed from {place} by manufacturing order {doc} ({when})"),
        Status::Missing => format!("left stock: missing at {place} per stock count {doc} ({when})"),
        Status::InStock => format!("in stock at {place} since {when} ({} on {doc})", last.event_type),
        Status::NeverStocked | Status::Other => format!("{status_text}: {} on {doc} ({when})", last.event_type),
    };
    // The view's last_event: the latest event of any kind.
    let latest = current.last().unwrap_or(last);
    Now {
        status,
        location_id: last.location_id.clone(),
        location_name: last.location_name.clone(),
        sublocation: last.sublocation.clone(),
        since: last.occurred_at,
        event_type: Some(last.event_type.clone()),
        last_event: Some(latest.event_type.clone()),
        doc_type: Some(last.doc_type.clone()),
        doc_number: last.doc_number.clone(),
        summary,
    }
}

/// `Warehouse A / A-01`, falling back to the location id.
pub fn place_label(e: &EventRow) -> String {
    let location =
        e.location_name.clone().or_else(|| e.location_id.clone()).unwrap_or_else(|| "an unknown location".into());
    match e.sublocation.as_deref().filter(|s| !s.is_empty()) {
        Some(sub) => format!("{location} / {sub}"),
        None => location,
    }
}

/// `SO-000123`, falling back to the document type and id.
pub fn doc_label(e: &EventRow) -> String {
    e.doc_number.clone().unwrap_or_else(|| format!("{} {}", e.doc_type, e.doc_id))
}

/// The document with its customer or vendor by name: `SO-000123 to Acme`, `PO-7 from Ajax`
/// (the document alone while the name is not fetched: a GUID tells a reader nothing).
pub fn doc_with_party(e: &EventRow) -> String {
    let doc = doc_label(e);
    match party(e) {
        Some((word, name)) => format!("{doc} {word} {name}"),
        None => doc,
    }
}

/// "to" the customer of a sales order or "from" the vendor of a purchase order, when its name
/// is known. A blank name says nothing: "SO-1 to " would read as a cut line.
pub fn party(e: &EventRow) -> Option<(&'static str, &str)> {
    let name = e.party_name.as_deref().map(str::trim).filter(|n| !n.is_empty())?;
    match e.doc_type.as_str() {
        "sales_order" => Some(("to", name)),
        "purchase_order" => Some(("from", name)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: i64, doc: &str, event_type: &str, at: Option<&str>, delta: i16) -> EventRow {
        EventRow {
            event_id: id,
            company_id: "c".into(),
            serial: "SN-1".into(),
            product_id: Some("p1".into()),
            product_name: Some("Laptop".into()),
            product_sku: None,
            doc_type: doc.split('-').next().unwrap().to_string(),
            doc_id: doc.into(),
            doc_number: Some(doc.into()),
            party_id: None,
            party_name: None,
            line_collection: "lines".into(),
            line_id: format!("l{id}"),
            event_type: event_type.into(),
            occurred_at: at.map(|t| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)),
            location_id: Some("loc1".into()),
            location_name: Some("Main".into()),
            sublocation: Some("A-01".into()),
            quantity_delta: delta,
            doc_status: None,
            observed_at: Utc::now(),
            run_id: 1,
            retracted_at: None,
            retracted_run_id: None,
            status_after: status_after(event_type),
        }
    }

    /// `event_types.status_after` as migration V10 sets it (the store's rows carry it; the
    /// integration test `every_status_reads_the_same_in_the_view_and_the_timeline` checks the
    /// database side).
    fn status_after(event_type: &str) -> Option<String> {
        let status = match event_type {
            "received" | "adjusted_in" | "transfer_received" | "restocked" | "produced" | "count_found" => "in_stock",
            "transfer_sent" => "in_transit",
            "picked" => "picked",
            "shipped" => "with_customer",
            "unstocked" => "returned_to_vendor",
            "adjusted_out" => "adjusted_out",
            "consumed" => "consumed",
            "count_missing" => "missing",
            _ => return None,
        };
        Some(status.to_string())
    }

    fn types(h: &History) -> Vec<&str> {
        h.events.iter().map(|e| e.event.event_type.as_str()).collect()
    }

    #[test]
    fn documents_name_their_customer_or_vendor() {
        let mut e = ev(1, "SO-1", "shipped", None, -1);
        e.doc_type = "sales_order".into();
        assert_eq!(doc_with_party(&e), "SO-1", "no name fetched: the document alone");
        e.party_id = Some("0b4c-guid".into());
        e.party_name = Some("Acme Tools".into());
        assert_eq!(doc_with_party(&e), "SO-1 to Acme Tools");
        e.doc_type = "purchase_order".into();
        assert_eq!(doc_with_party(&e), "SO-1 from Acme Tools");
        e.party_name = Some("  ".into());
        assert_eq!(doc_with_party(&e), "SO-1", "a blank name is no name");
        e.party_name = Some("Acme Tools".into());
        e.doc_type = "stock_transfer".into();
        assert_eq!(doc_with_party(&e), "SO-1");
    }

    #[test]
    fn same_day_steps_follow_the_natural_order_and_packed_follows_its_pick() {
        let t = "2025-07-02T10:00:00Z";
        let rows = vec![
            ev(9, "SO-1", "shipped", Some(t), 0),
            ev(8, "SO-1", "packed", None, 0),
            ev(7, "SO-1", "picked", Some(t), -1),
            ev(6, "SO-1", "sold", Some(t), 0),
            ev(1, "PO-1", "received", Some("2025-06-01T00:00:00Z"), 1),
        ];
        let h = &histories(rows)[0];
        assert_eq!(types(h), ["received", "sold", "picked", "packed", "shipped"]);
        assert_eq!(h.events.iter().map(|e| e.on_hand).collect::<Vec<_>>(), [1, 1, 0, 0, 0]);
        assert_eq!(h.now.status, Status::WithCustomer);
        assert!(h.now.summary.contains("shipped to the customer on SO-1"), "{}", h.now.summary);
    }

    #[test]
    fn sent_comes_before_received_and_the_serial_is_then_in_stock_there() {
        let t = "2025-07-03T09:00:00Z";
        let mut received = ev(5, "ST-1", "transfer_received", Some(t), 1);
        received.location_name = Some("Store".into());
        received.sublocation = Some("B-07".into());
        let rows = vec![
            received,
            ev(4, "ST-1", "transfer_sent", Some(t), -1),
            ev(1, "PO-1", "received", Some("2025-06-01T00:00:00Z"), 1),
        ];
        let h = &histories(rows)[0];
        assert_eq!(types(h), ["received", "transfer_sent", "transfer_received"]);
        assert_eq!(h.now.status, Status::InStock);
        assert_eq!(h.now.location_name.as_deref(), Some("Store"));
        assert_eq!(h.now.summary, "in stock at Store / B-07 since 2025-07-03 (transfer_received on ST-1)");
    }

    #[test]
    fn the_now_line_names_each_way_out_of_stock() {
        let day = Some("2025-06-01T00:00:00Z");
        let later = Some("2025-06-02T00:00:00Z");
        for (event, status) in [
            ("transfer_sent", Status::InTransit),
            ("unstocked", Status::ReturnedToVendor),
            ("adjusted_out", Status::AdjustedOut),
            ("picked", Status::Picked),
        ] {
            let h = &histories(vec![ev(1, "PO-1", "received", day, 1), ev(2, "X-1", event, later, -1)])[0];
            assert_eq!(h.now.status, status, "{event}");
            assert_eq!(h.events.last().unwrap().on_hand, 0);
        }
        let h = &histories(vec![ev(1, "SO-1", "quoted", day, 0)])[0];
        assert_eq!(h.now.status, Status::NeverStocked);
        // Shipped after the pick: with the customer, and the latest event is the one the view names.
        let h = &histories(vec![
            ev(1, "PO-1", "received", day, 1),
            ev(2, "SO-1", "picked", later, -1),
            ev(3, "SO-1", "shipped", later, 0),
            ev(4, "SO-1", "packed", None, 0),
        ])[0];
        assert_eq!(h.now.status, Status::WithCustomer);
        assert_eq!(h.now.event_type.as_deref(), Some("shipped"));
        assert_eq!(h.now.summary, "left stock: shipped to the customer on SO-1 (2025-06-02)");
        assert_eq!(h.now.last_event.as_deref(), Some("shipped"), "packed is placed after its pick, before shipped");
    }

    #[test]
    fn an_undated_receipt_is_placed_by_its_order_and_the_header_follows_the_table() {
        // Received without a receive date: it borrows the PO's order date, so the later pick is
        // the last movement, in the table and in the header alike.
        let rows = vec![
            ev(1, "PO-1", "ordered", Some("2025-05-01T00:00:00Z"), 0),
            ev(2, "PO-1", "received", None, 1),
            ev(3, "SO-6", "picked", Some("2025-06-20T00:00:00Z"), -1),
        ];
        let h = &histories(rows)[0];
        assert_eq!(types(h), ["ordered", "received", "picked"]);
        assert_eq!(h.events.last().unwrap().on_hand, 0);
        assert_eq!(h.now.status, Status::Picked);
        // With nothing to borrow from, an undated movement is the latest.
        let rows =
            vec![ev(3, "SO-6", "picked", Some("2025-06-20T00:00:00Z"), -1), ev(4, "SA-1", "adjusted_in", None, 1)];
        let h = &histories(rows)[0];
        assert_eq!(types(h), ["picked", "adjusted_in"]);
        assert_eq!(h.now.status, Status::InStock);
    }

    #[test]
    fn consumed_and_missing_serials_have_their_own_status() {
        let day = Some("2025-06-01T00:00:00Z");
        let later = Some("2025-06-02T00:00:00Z");
        let h = &histories(vec![ev(1, "PO-1", "received", day, 1), ev(2, "MO-1", "consumed", later, -1)])[0];
        assert_eq!(h.now.status, Status::Consumed);
        assert_eq!(h.now.summary, "left stock: consumed from Main / A-01 by manufacturing order MO-1 (2025-06-02)");
        let h = &histories(vec![ev(1, "PO-1", "received", day, 1), ev(2, "SC-1", "count_missing", later, -1)])[0];
        assert_eq!(h.now.status, Status::Missing);
        assert!(h.now.summary.contains("missing at Main / A-01 per stock count SC-1"), "{}", h.now.summary);
        // Produced and found are ways into stock like any other.
        for event in ["produced", "count_found"] {
            let h = &histories(vec![ev(1, "X-1", event, day, 1)])[0];
            assert_eq!(h.now.status, Status::InStock, "{event}");
        }
    }

    fn link(component: &str, finished: &str, order: &str, matched_to: &str, built: bool) -> GenealogyRow {
        GenealogyRow {
            company_id: "c".into(),
            component_serial: component.into(),
            component_product_id: Some(format!("p-{}", &component[..2])),
            component_product_name: Some(format!("{} part", &component[..2])),
            finished_serial: finished.into(),
            finished_product_id: Some(format!("p-{}", &finished[..2])),
            finished_product_name: Some(format!("{} unit", &finished[..2])),
            doc_type: "manufacturing_order".into(),
            doc_id: order.to_lowercase(),
            doc_number: Some(order.into()),
            order_status: Some(if built { "completed" } else { "inProgress" }.into()),
            built_at: built.then(|| DateTime::parse_from_rfc3339("2025-03-04T10:00:00Z").unwrap().with_timezone(&Utc)),
            matched_to: matched_to.into(),
        }
    }

    #[test]
    fn genealogy_is_told_in_words_on_both_sides() {
        let mut board = ev(1, "MO-1", "produced", Some("2025-03-04T10:00:00Z"), 1);
        board.serial = "BD-1".into();
        board.product_id = Some("p-BD".into());
        let mut hs = histories(vec![board]);
        let rows = vec![
            link("CH-1", "BD-1", "MO-1", "unit", true),
            link("CS-1", "BD-1", "MO-1", "unit", true),
            link("BD-1", "LP-1", "MO-2", "line", false),
            link("XX-1", "YY-1", "MO-3", "unit", true),
        ];
        attach_genealogy(&mut hs, rows);
        let h = &hs[0];
        assert_eq!((h.built_into.len(), h.components.len()), (1, 2));
        assert_eq!(
            genealogy_lines(h),
            [
                "built into LP-1 (LP unit) on MO-2 (not completed yet: inProgress); one of the units of its order line",
                "contains 2 components: CH-1 (CH part), CS-1 (CS part) on MO-1",
            ]
        );
    }

    #[test]
    fn a_bill_of_serials_goes_down_and_up_and_stops_at_cycles() {
        let rows = vec![
            link("CH-1", "BD-1", "MO-1", "unit", true),
            link("BD-1", "LP-1", "MO-2", "unit", true),
            link("CS-1", "LP-1", "MO-2", "order", true),
            // Odd data: the laptop back into the chip.
            link("LP-1", "CH-1", "MO-9", "unit", true),
        ];
        let down = tree("c", ("LP-1", Some("p-LP")), &rows, Direction::Down);
        assert_eq!(down.iter().map(|n| n.serial.as_str()).collect::<Vec<_>>(), ["BD-1", "CS-1"]);
        assert_eq!(down[0].children[0].serial, "CH-1");
        assert!(down[0].children[0].children.is_empty(), "the cycle back to LP-1 is not followed");
        assert_eq!(down[1].matched_to, "order");
        let up = tree("c", ("CH-1", Some("p-CH")), &rows, Direction::Up);
        assert_eq!(up[0].serial, "BD-1");
        assert_eq!(up[0].children[0].serial, "LP-1");
        assert_eq!(up[0].children[0].doc_number.as_deref(), Some("MO-2"));
        // Another company's links are not this serial's.
        assert!(tree("other", ("LP-1", Some("p-LP")), &rows, Direction::Down).is_empty());
        // Another product with the same serial string is another tree.
        assert!(tree("c", ("LP-1", Some("p-XX")), &rows, Direction::Down).is_empty());
    }

    #[test]
    fn retracted_rows_are_shown_but_count_for_nothing() {
        let mut gone = ev(2, "SA-1", "adjusted_out", Some("2025-06-02T00:00:00Z"), -1);
        gone.retracted_at = Some(Utc::now());
        let h = &histories(vec![ev(1, "PO-1", "received", Some("2025-06-01T00:00:00Z"), 1), gone])[0];
        assert_eq!(h.events.iter().map(|e| (e.on_hand, e.retracted)).collect::<Vec<_>>(), [(1, false), (1, true)]);
        assert_eq!(h.now.status, Status::InStock);
    }

    #[test]
    fn one_serial_under_two_products_is_two_histories() {
        let mut other = ev(2, "PO-2", "received", Some("2025-06-01T00:00:00Z"), 1);
        other.product_id = Some("p2".into());
        other.product_name = Some("Phone".into());
        let hs = histories(vec![ev(1, "PO-1", "received", Some("2025-06-01T00:00:00Z"), 1), other]);
        assert_eq!(hs.len(), 2);
        assert_eq!(hs.iter().map(History::product_label).collect::<Vec<_>>(), ["Laptop", "Phone"]);
    }
}
