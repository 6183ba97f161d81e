//! Purchase orders: ordered on `lines` (vendor returns are negative lines), received into stock
//! on `receiveLines`, sent back out of stock on `unstockLines`.

use super::{Builder, Derived, DocType, EventType, MappingError};
use crate::inflow::model::PurchaseOrder;

pub(super) fn derive(po: PurchaseOrder, raw: &str) -> Result<Derived, MappingError> {
    let mut b = Builder::new(
        DocType::PurchaseOrder,
        po.purchase_order_id.as_deref(),
        po.order_number.as_deref(),
        po.inventory_status.as_deref(),
        po.is_cancelled,
        po.timestamp.as_deref(),
    )?;
    let order_date = b.date("orderDate", po.order_date.as_deref(), None);
    b.set_doc_date(order_date);
    b.set_party(po.vendor_id.as_deref());
    let lines = po.lines.unwrap_or_default();
    let receives = po.receive_lines.unwrap_or_default();
    let unstocks = po.unstock_lines.unwrap_or_default();
    b.stamp_all(&lines);
    b.stamp_all(&receives);
    b.stamp_all(&unstocks);
    if b.is_cancelled() {
        return b.finish(raw);
    }
    b.order_lines(&lines, EventType::Ordered, EventType::VendorReturn, po.location_id.as_deref(), order_date);
    b.placed(&receives, EventType::Received, 1);
    b.placed(&unstocks, EventType::Unstocked, -1);
    b.finish(raw)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::mapping::test_support::{self, at, fixture_json, of, s};
    use crate::mapping::{DocType, EventType};

    const LOC: &str = "00000000-0000-4000-8000-000000000006";

    fn constructed() -> serde_json::Value {
        fixture_json("purchase-order.receive-unstock.CONSTRUCTED.json")
    }

    fn run(v: &serde_json::Value) -> crate::mapping::Derived {
        test_support::run(DocType::PurchaseOrder, v)
    }

    #[test]
    fn lines_with_serials_are_ordered_at_the_header_location() {
        let mut v = constructed();
        v["lines"][0]["quantity"]["serialNumbers"] = json!(["SN-A1", "SN-A2", "SN-A3"]);
        let d = run(&v);
        let when = at("2025-06-01T09:00:00-04:00");
        let line = "00000000-0000-4000-8000-000000000201".to_string();
        assert_eq!(of(&d, EventType::Ordered)[0], ("SN-A1".into(), line, 0, s(LOC), None, when));
        assert_eq!(of(&d, EventType::Ordered).len(), 3);
        assert_eq!(d.party_id.as_deref(), Some("00000000-0000-4000-8000-000000000013"));
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    #[test]
    fn lines_without_serials_yield_nothing() {
        let d = run(&constructed());
        assert!(of(&d, EventType::Ordered).is_empty());
    }

    #[test]
    fn negative_lines_are_vendor_returns_on_the_return_date_else_the_order_date() {
        let mut v = constructed();
        v["lines"][0]["quantity"] = json!({"standardQuantity": "-1.0000", "serialNumbers": ["SN-A3"]});
        v["lines"][0]["returnDate"] = "2025-06-20T09:30:00-04:00".into();
        let line = "00000000-0000-4000-8000-000000000201".to_string();
        assert_eq!(
            of(&run(&v), EventType::VendorReturn),
            vec![("SN-A3".into(), line.clone(), 0, s(LOC), None, at("2025-06-20T09:30:00-04:00"))]
        );
        v["lines"][0]["returnDate"] = serde_json::Value::Null;
        assert_eq!(
            of(&run(&v), EventType::VendorReturn),
            vec![("SN-A3".into(), line, 0, s(LOC), None, at("2025-06-01T09:00:00-04:00"))]
        );
    }

    #[test]
    fn receive_lines_bring_stock_in_at_their_location_and_sublocation() {
        let d = run(&constructed());
        let line = "00000000-0000-4000-8000-000000000202".to_string();
        let when = at("2025-06-05T10:00:00-04:00");
        assert_eq!(
            of(&d, EventType::Received),
            ["SN-A1", "SN-A2", "SN-A3"].map(|sn| (sn.to_string(), line.clone(), 1, s(LOC), s("A-01"), when))
        );
    }

    #[test]
    fn unstock_lines_take_stock_out() {
        let d = run(&constructed());
        assert_eq!(
            of(&d, EventType::Unstocked),
            vec![(
                "SN-A3".into(),
                "00000000-0000-4000-8000-000000000203".into(),
                -1,
                s(LOC),
                s("A-01"),
                at("2025-06-20T10:00:00-04:00")
            )]
        );
    }

    #[test]
    fn a_cancelled_order_has_no_events() {
        let mut v = constructed();
        v["isCancelled"] = true.into();
        assert!(run(&v).events.is_empty());
    }
}
