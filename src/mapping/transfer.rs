//! Stock transfers: requested while open, sent (out of the source) once in transit, and received
//! (into the destination) once completed.

use super::lines::SerialLine;
use super::{Builder, Derived, DocType, EventType, MappingError, Occurrence, WarningKind};
use crate::inflow::model::StockTransfer;

pub(super) fn derive(st: StockTransfer, raw: &str) -> Result<Derived, MappingError> {
    let mut b = Builder::new(
        DocType::StockTransfer,
        st.stock_transfer_id.as_deref(),
        st.transfer_number.as_deref(),
        st.status.as_deref(),
        st.is_cancelled,
        st.timestamp.as_deref(),
    )?;
    let transfer_date = b.date("transferDate", st.transfer_date.as_deref(), None);
    b.set_doc_date(transfer_date);
    let lines = st.lines.unwrap_or_default();
    b.stamp_all(&lines);
    if b.is_cancelled() {
        return b.finish(raw);
    }
    let status = st.status.as_deref().unwrap_or("").trim().to_ascii_lowercase();
    let (requested, sent, received) = match status.as_str() {
        "open" => (true, false, false),
        "intransit" | "in_transit" => (false, true, false),
        "completed" => (false, true, true),
        _ => {
            // An unknown status may move stock or not: record nothing rather than guess, and say so.
            if lines.iter().any(|l| !l.quantity.serial_numbers.is_empty()) {
                let shown = st.status.as_deref().unwrap_or("(none)");
                b.warn(
                    WarningKind::UnknownStatus,
                    None,
                    format!("transfer status {shown:?} is not open, inTransit or completed; no events"),
                );
            }
            return b.finish(raw);
        }
    };
    let sent_date = if sent || received { b.date("sentDate", st.sent_date.as_deref(), None) } else { None };
    let received_date = if received { b.date("receivedDate", st.received_date.as_deref(), None) } else { None };

    for (index, l) in lines.iter().enumerate() {
        let line = l.line_ref(index);
        let serials = b.serials(&line);
        let from = (st.from_location_id.as_deref(), l.from_sublocation.as_deref());
        if requested {
            let what = Occurrence {
                event_type: EventType::TransferRequested,
                quantity_delta: 0,
                location_id: from.0,
                sublocation: from.1,
                occurred_at: transfer_date,
            };
            b.emit(&line, &serials, what);
        }
        if sent {
            let what = Occurrence {
                event_type: EventType::TransferSent,
                quantity_delta: -1,
                location_id: from.0,
                sublocation: from.1,
                occurred_at: sent_date.or(transfer_date),
            };
            b.emit(&line, &serials, what);
        }
        if received {
            let what = Occurrence {
                event_type: EventType::TransferReceived,
                quantity_delta: 1,
                location_id: st.to_location_id.as_deref(),
                sublocation: l.to_sublocation.as_deref(),
                occurred_at: received_date.or(sent_date),
            };
            b.emit(&line, &serials, what);
        }
    }
    b.finish(raw)
}

#[cfg(test)]
mod tests {
    use crate::mapping::test_support::{self, at, fixture, of, s, warnings};
    use crate::mapping::{DocType, EventType, WarningKind};

    const FROM: &str = "00000000-0000-4000-8000-000000000006";
    const TO: &str = "00000000-0000-4000-8000-000000000007";
    const LINE: &str = "00000000-0000-4000-8000-000000000301";

    fn with_status(status: &str) -> serde_json::Value {
        let mut v: serde_json::Value = serde_json::from_str(&fixture("stock-transfer.CONSTRUCTED.json")).unwrap();
        v["status"] = status.into();
        v
    }

    fn run(v: &serde_json::Value) -> crate::mapping::Derived {
        test_support::run(DocType::StockTransfer, v)
    }

    #[test]
    fn an_open_transfer_is_requested_at_the_source_on_the_transfer_date() {
        let d = run(&with_status("open"));
        assert_eq!(
            of(&d, EventType::TransferRequested),
            vec![("SN-A1".into(), LINE.into(), 0, s(FROM), s("A-01"), at("2025-07-03T08:00:00-04:00"))]
        );
        assert_eq!(d.events.len(), 1);
    }

    #[test]
    fn an_in_transit_transfer_is_sent_out_of_the_source_on_the_sent_date_else_the_transfer_date() {
        let mut v = with_status("inTransit");
        let d = run(&v);
        assert_eq!(
            of(&d, EventType::TransferSent),
            vec![("SN-A1".into(), LINE.into(), -1, s(FROM), s("A-01"), at("2025-07-03T09:00:00-04:00"))]
        );
        assert_eq!(d.events.len(), 1);
        v["sentDate"] = serde_json::Value::Null;
        assert_eq!(of(&run(&v), EventType::TransferSent)[0].5, at("2025-07-03T08:00:00-04:00"));
    }

    #[test]
    fn a_completed_transfer_is_sent_and_received_into_the_destination() {
        let mut v = with_status("completed");
        let d = run(&v);
        assert_eq!(of(&d, EventType::TransferSent).len(), 1);
        assert_eq!(
            of(&d, EventType::TransferReceived),
            vec![("SN-A1".into(), LINE.into(), 1, s(TO), s("B-07"), at("2025-07-04T09:00:00-04:00"))]
        );
        v["receivedDate"] = serde_json::Value::Null;
        assert_eq!(of(&run(&v), EventType::TransferReceived)[0].5, at("2025-07-03T09:00:00-04:00"));
    }

    #[test]
    fn statuses_are_matched_without_regard_to_case() {
        assert_eq!(run(&with_status("Completed")).events.len(), 2);
        assert_eq!(run(&with_status("INTRANSIT")).events.len(), 1);
    }

    #[test]
    fn an_unknown_status_is_kept_as_text_and_warned_about() {
        let d = run(&with_status("partiallyReceived"));
        assert!(d.events.is_empty());
        assert_eq!(d.doc_status.as_deref(), Some("partiallyReceived"));
        assert_eq!(warnings(&d), [WarningKind::UnknownStatus]);
    }

    #[test]
    fn a_cancelled_transfer_has_no_events() {
        let mut v = with_status("completed");
        v["isCancelled"] = true.into();
        assert!(run(&v).events.is_empty());
    }
}
