//! Stock adjustments: the location is on the header, each line's quantity is a signed delta.
//! A serial moved by an adjustment that a completed stock count made is `adjusted_by_count`,
//! with no stock effect: the count's own event has it (see `stock_count`).

use super::lines::SerialLine;
use super::stock_count::{AdjustmentOrigin, CountEvidence};
use super::{Builder, Derived, DocType, EventType, MappingError, Occurrence, WarningKind};
use crate::inflow::model::StockAdjustment;

pub(super) fn derive(sa: StockAdjustment, raw: &str, counts: &[CountEvidence]) -> Result<Derived, MappingError> {
    let mut b = Builder::new(
        DocType::StockAdjustment,
        sa.stock_adjustment_id.as_deref(),
        sa.adjustment_number.as_deref(),
        None,
        sa.is_cancelled,
        sa.timestamp.as_deref(),
    )?;
    let date = b.date("date", sa.date.as_deref(), None);
    b.set_doc_date(date);
    let lines = sa.lines.clone().unwrap_or_default();
    b.stamp_all(&lines);
    if b.is_cancelled() {
        return b.finish(raw);
    }
    let origin = AdjustmentOrigin::new(&sa, date);
    for (index, l) in lines.iter().enumerate() {
        let line = l.line_ref(index);
        let serials = b.serials(&line);
        if serials.is_empty() {
            continue;
        }
        let (event_type, quantity_delta) = match l.quantity.amount() {
            Some(q) if q.is_sign_positive() && !q.is_zero() => (EventType::AdjustedIn, 1),
            Some(q) if !q.is_zero() => (EventType::AdjustedOut, -1),
            // Without a sign there is no telling in from out; the raw document keeps the serials.
            q => {
                let q = q.map_or("no quantity".into(), |q| format!("quantity {}", q.normalize()));
                b.warn(WarningKind::UnsignedAdjustment, Some(&line), format!("{q}: direction unknown, no events"));
                continue;
            }
        };
        let at = |event_type, quantity_delta| Occurrence {
            event_type,
            quantity_delta,
            location_id: sa.location_id.as_deref(),
            sublocation: l.sublocation.as_deref(),
            occurred_at: date,
        };
        let (by_count, own): (Vec<&str>, Vec<&str>) = serials
            .iter()
            .partition(|s| origin.made_by(counts, s, l.product_id.as_deref(), quantity_delta > 0).is_some());
        b.emit(&line, &own, at(event_type, quantity_delta));
        b.emit(&line, &by_count, at(EventType::AdjustedByCount, 0));
    }
    b.finish(raw)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::mapping::test_support::{self, at, fixture_json, of, s, warnings};
    use crate::mapping::{DocType, EventType, WarningKind};

    const LOC: &str = "00000000-0000-4000-8000-000000000007";
    const LINE: &str = "00000000-0000-4000-8000-000000000402";

    fn constructed() -> serde_json::Value {
        fixture_json("stock-adjustment.CONSTRUCTED.json")
    }

    fn run(v: &serde_json::Value) -> crate::mapping::Derived {
        test_support::run(DocType::StockAdjustment, v)
    }

    #[test]
    fn negative_lines_adjust_out_at_the_header_location_and_line_sublocation() {
        let d = run(&constructed());
        assert_eq!(
            of(&d, EventType::AdjustedOut),
            vec![("SN-A1".into(), LINE.into(), -1, s(LOC), s("B-07"), at("2025-07-05T12:00:00-04:00"))]
        );
        assert_eq!(d.doc_number.as_deref(), Some("SA-000020"));
        assert_eq!(d.doc_status, None, "adjustments have no status");
    }

    #[test]
    fn positive_lines_adjust_in() {
        let mut v = constructed();
        v["lines"][0]["quantity"] = json!({"standardQuantity": "2.0000", "serialNumbers": ["SN-X1", "SN-X2"]});
        assert_eq!(
            of(&run(&v), EventType::AdjustedIn),
            ["SN-X1", "SN-X2"].map(|sn| (
                sn.to_string(),
                LINE.to_string(),
                1,
                s(LOC),
                s("B-07"),
                at("2025-07-05T12:00:00-04:00")
            ))
        );
    }

    #[test]
    fn a_line_without_a_sign_is_a_warning_not_a_guess() {
        let mut v = constructed();
        v["lines"][0]["quantity"] = json!({"standardQuantity": "0", "serialNumbers": ["SN-X1"]});
        let d = run(&v);
        assert!(d.events.is_empty());
        assert_eq!(warnings(&d), [WarningKind::SerialCountMismatch, WarningKind::UnsignedAdjustment]);
    }

    #[test]
    fn a_cancelled_adjustment_has_no_events() {
        let mut v = constructed();
        v["isCancelled"] = true.into();
        assert!(run(&v).events.is_empty());
    }
}
