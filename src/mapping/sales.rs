//! Sales orders: sold or quoted on `lines` (returns are negative lines), then picked, packed,
//! shipped (a pack line's container appears on a ship line) and restocked.

use super::lines::SerialLine;
use super::{Builder, Derived, DocType, EventType, MappingError, Occurrence};
use crate::inflow::model::SalesOrder;

pub(super) fn derive(so: SalesOrder, raw: &str) -> Result<Derived, MappingError> {
    let mut b = Builder::new(
        DocType::SalesOrder,
        so.sales_order_id.as_deref(),
        so.order_number.as_deref(),
        so.inventory_status.as_deref(),
        so.is_cancelled,
        so.timestamp.as_deref(),
    )?;
    let order_date = b.date("orderDate", so.order_date.as_deref(), None);
    b.set_doc_date(order_date);
    b.set_party(so.customer_id.as_deref());
    let is_quote = so.is_quote || so.inventory_status.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("quote"));

    let lines = so.lines.unwrap_or_default();
    let picks = so.pick_lines.unwrap_or_default();
    let packs = so.pack_lines.unwrap_or_default();
    let ships = so.ship_lines.unwrap_or_default();
    let restocks = so.restock_lines.unwrap_or_default();
    b.stamp_all(&lines);
    b.stamp_all(&picks);
    b.stamp_all(&packs);
    b.stamp_all(&ships);
    b.stamp_all(&restocks);
    // Cancelling voids inventory movements: a cancelled order has no events.
    if b.is_cancelled() {
        return b.finish(raw);
    }

    let sold = if is_quote { EventType::Quoted } else { EventType::Sold };
    b.order_lines(&lines, sold, EventType::CustomerReturn, so.location_id.as_deref(), order_date);
    b.placed(&picks, EventType::Picked, -1);
    for (index, l) in packs.iter().enumerate() {
        let line = l.line_ref(index);
        let serials = b.serials(&line);
        let container = l.container_number.as_deref().map(str::trim);
        // The first ship line that lists this pack line's container shipped it.
        let ship = container.and_then(|c| ships.iter().find(|s| s.containers.iter().any(|sc| sc.trim() == c)));
        let (event_type, occurred_at) = match ship {
            Some(s) => (EventType::Shipped, b.date("shippedDate", s.shipped_date.as_deref(), Some(&line))),
            None => (EventType::Packed, None),
        };
        let what = Occurrence { event_type, quantity_delta: 0, location_id: None, sublocation: None, occurred_at };
        b.emit(&line, &serials, what);
    }

    b.placed(&restocks, EventType::Restocked, 1);
    b.finish(raw)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::mapping::test_support::{self, at, fixture, fixture_json, of, s, warnings};
    use crate::mapping::{DocType, EventType, WarningKind, derive};

    const LOC: &str = "00000000-0000-4000-8000-000000000006";

    fn constructed() -> serde_json::Value {
        fixture_json("sales-order.movement-lines.CONSTRUCTED.json")
    }

    fn run(v: &serde_json::Value) -> crate::mapping::Derived {
        test_support::run(DocType::SalesOrder, v)
    }

    #[test]
    fn lines_with_positive_quantity_are_sold_at_the_header_location_on_the_order_date() {
        let d = run(&constructed());
        let line = "00000000-0000-4000-8000-000000000101".to_string();
        let when = at("2025-07-01T09:00:00-04:00");
        assert_eq!(
            of(&d, EventType::Sold),
            vec![("SN-A1".into(), line.clone(), 0, s(LOC), None, when), ("SN-A2".into(), line, 0, s(LOC), None, when)]
        );
        assert_eq!(d.doc_number.as_deref(), Some("SO-000200"));
        assert_eq!(d.doc_status.as_deref(), Some("fulfilled"));
        assert_eq!(d.doc_date, when);
        assert_eq!(d.party_id.as_deref(), Some("00000000-0000-4000-8000-000000000004"));
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    #[test]
    fn lines_of_a_quote_are_quoted() {
        let mut v = constructed();
        v["isQuote"] = true.into();
        let d = run(&v);
        assert_eq!(of(&d, EventType::Quoted).len(), 2);
        assert!(of(&d, EventType::Sold).is_empty());
        // A quote recognised by its status alone, too.
        let mut v = constructed();
        v["inventoryStatus"] = "Quote".into();
        assert_eq!(of(&run(&v), EventType::Quoted).len(), 2);
    }

    #[test]
    fn negative_lines_are_customer_returns_on_the_return_date_else_the_order_date() {
        let d = run(&constructed());
        let line = "00000000-0000-4000-8000-000000000102".to_string();
        assert_eq!(
            of(&d, EventType::CustomerReturn),
            vec![("SN-A2".into(), line.clone(), 0, s(LOC), None, at("2025-07-10T10:00:00-04:00"))]
        );
        let mut v = constructed();
        v["lines"][1]["returnDate"] = serde_json::Value::Null;
        assert_eq!(
            of(&run(&v), EventType::CustomerReturn),
            vec![("SN-A2".into(), line, 0, s(LOC), None, at("2025-07-01T09:00:00-04:00"))]
        );
    }

    #[test]
    fn pick_lines_take_stock_out_of_their_own_location_and_sublocation() {
        let d = run(&constructed());
        let line = "00000000-0000-4000-8000-000000000103".to_string();
        let when = at("2025-07-02T11:00:00-04:00");
        assert_eq!(
            of(&d, EventType::Picked),
            vec![
                ("SN-A1".into(), line.clone(), -1, s(LOC), s("A-01"), when),
                ("SN-A2".into(), line, -1, s(LOC), s("A-01"), when)
            ]
        );
    }

    #[test]
    fn pack_lines_whose_container_shipped_are_shipped_on_the_ship_date() {
        let d = run(&constructed());
        let line = "00000000-0000-4000-8000-000000000104".to_string();
        let when = at("2025-07-02T15:00:00-04:00");
        assert_eq!(
            of(&d, EventType::Shipped),
            vec![("SN-A1".into(), line.clone(), 0, None, None, when), ("SN-A2".into(), line, 0, None, None, when)]
        );
        assert!(of(&d, EventType::Packed).is_empty());
    }

    #[test]
    fn pack_lines_not_on_any_ship_line_are_packed_without_a_date() {
        let mut v = constructed();
        v["shipLines"][0]["containers"] = json!(["2"]);
        let d = run(&v);
        let line = "00000000-0000-4000-8000-000000000104".to_string();
        assert_eq!(
            of(&d, EventType::Packed),
            vec![("SN-A1".into(), line.clone(), 0, None, None, None), ("SN-A2".into(), line, 0, None, None, None)]
        );
        assert!(of(&d, EventType::Shipped).is_empty());
        // Not including shipLines at all means the same.
        let mut v = constructed();
        v.as_object_mut().unwrap().remove("shipLines");
        assert_eq!(of(&run(&v), EventType::Packed).len(), 2);
    }

    #[test]
    fn restock_lines_put_stock_back_where_the_line_says() {
        let d = run(&constructed());
        assert_eq!(
            of(&d, EventType::Restocked),
            vec![(
                "SN-A2".into(),
                "00000000-0000-4000-8000-000000000106".into(),
                1,
                s(LOC),
                s("RETURNS"),
                at("2025-07-10T10:05:00-04:00")
            )]
        );
    }

    #[test]
    fn a_cancelled_order_has_no_events() {
        let mut v = constructed();
        v["isCancelled"] = true.into();
        let d = run(&v);
        assert!(d.is_cancelled);
        assert!(d.events.is_empty());
        assert!(d.warnings.is_empty());
    }

    #[test]
    fn the_real_2022_sample_yields_ten_sold_serials_and_nothing_else() {
        let d = derive(DocType::SalesOrder, &fixture("sales-order.real-2022.anonymized.json")).unwrap();
        assert_eq!(d.events.len(), 10);
        assert!(d.events.iter().all(|e| e.event_type == EventType::Sold && e.line_collection == "lines"));
        assert_eq!(d.events[0].serial, "SERIAL-0001");
        assert_eq!(d.events[0].occurred_at, at("2022-05-30T20:52:50Z"));
        assert_eq!(d.events[0].product_id.as_deref(), Some("00000000-0000-4000-8000-000000000010"));
        assert_eq!(d.row_version.as_deref(), Some("0000000000013CF1"));
        assert!(d.warnings.is_empty());
    }

    #[test]
    fn odd_serials_are_kept_as_far_as_they_make_sense_and_warned_about() {
        let mut v = constructed();
        v["lines"][0]["quantity"]["serialNumbers"] = json!(["SN-A1", "", "  ", "SN-A1", " SN-A9 ", "SN-A2"]);
        let d = run(&v);
        let sold: Vec<String> = of(&d, EventType::Sold).into_iter().map(|e| e.0).collect();
        assert_eq!(sold, ["SN-A1", " SN-A9 ", "SN-A2"]);
        assert_eq!(
            warnings(&d),
            [
                WarningKind::EmptySerial,
                WarningKind::EmptySerial,
                WarningKind::RepeatedSerial,
                WarningKind::PaddedSerial,
                WarningKind::SerialCountMismatch
            ]
        );
        assert!(d.warnings.iter().all(|w| w.line_collection == Some("lines")));
        assert!(d.warnings[4].detail.contains("6 serials for quantity 2"), "{:?}", d.warnings[4]);
    }

    #[test]
    fn a_line_without_id_gets_its_position_and_a_bad_date_is_a_warning() {
        let mut v = constructed();
        v["pickLines"][0].as_object_mut().unwrap().remove("salesOrderPickLineId");
        v["pickLines"][0]["pickDate"] = "last tuesday".into();
        let d = run(&v);
        let picked = of(&d, EventType::Picked);
        assert_eq!(picked[0].1, "#1");
        assert_eq!(picked[0].5, None);
        assert_eq!(warnings(&d), [WarningKind::MissingLineId, WarningKind::BadDate]);
    }
}
