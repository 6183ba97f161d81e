//! The serial histories that cannot be right, as `audit anomalies` names them.
//!
//! Each kind is defined once, in SQL: the `serial_anomaly_findings` view (migration V8), which
//! `serial_anomalies` and the command both read. Stock movements are told apart by the sign of
//! their `quantity_delta` (the `event_types` table's), so a new event type is covered by its
//! sign; only the kinds about sales, returns and transfers name their event types.

use crate::store::anomalies::AnomalyRow;

/// The kinds, as the `anomaly_kinds` table lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// Two stock-removing events with no stock-adding event between them.
    OutTwice,
    /// Two stock-adding events with no removal between them (a duplicate receipt, say).
    InTwice,
    /// Removed from one location while the history has it at another.
    MovedFromElsewhere,
    /// Its first stock movement removes it from stock.
    AppearedFromNowhere,
    /// On the sales orders of two customers with no return between them.
    SoldTwice,
    /// Sent on a transfer and not received after --transit-days.
    StuckInTransit,
    /// A customer return with no earlier sale.
    ReturnedNeverSold,
    /// The same serial on two products of one company.
    OneSerialTwoProducts,
    /// The latest stock snapshot and the history disagree (what `audit reconcile` lists).
    HistoryAndStockDisagree,
}

impl AnomalyKind {
    /// Every kind, in the order the table lists them.
    pub const ALL: [AnomalyKind; 9] = [
        AnomalyKind::OutTwice,
        AnomalyKind::InTwice,
        AnomalyKind::MovedFromElsewhere,
        AnomalyKind::AppearedFromNowhere,
        AnomalyKind::SoldTwice,
        AnomalyKind::StuckInTransit,
        AnomalyKind::ReturnedNeverSold,
        AnomalyKind::OneSerialTwoProducts,
        AnomalyKind::HistoryAndStockDisagree,
    ];

    /// The kind as the views and the output name it.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::OutTwice => "out_twice",
            AnomalyKind::InTwice => "in_twice",
            AnomalyKind::MovedFromElsewhere => "moved_from_elsewhere",
            AnomalyKind::AppearedFromNowhere => "appeared_from_nowhere",
            AnomalyKind::SoldTwice => "sold_twice",
            AnomalyKind::StuckInTransit => "stuck_in_transit",
            AnomalyKind::ReturnedNeverSold => "returned_never_sold",
            AnomalyKind::OneSerialTwoProducts => "one_serial_two_products",
            AnomalyKind::HistoryAndStockDisagree => "history_and_stock_disagree",
        }
    }
}

/// The evidence of a finding for people: the events by id and type, with their documents.
/// `#1116 picked SO-000039, after #839 picked SO-000021`.
pub fn evidence(row: &AnomalyRow) -> String {
    let event = |id: Option<i64>, event_type: &Option<String>, doc_type: &Option<String>, number: &Option<String>| {
        let mut parts = Vec::new();
        if let Some(id) = id {
            parts.push(format!("#{id}"));
        }
        if let Some(t) = event_type {
            parts.push(t.clone());
        }
        match (number, doc_type) {
            (Some(n), _) => parts.push(n.clone()),
            (None, Some(d)) => parts.push(d.clone()),
            (None, None) => {}
        }
        parts.join(" ")
    };
    let this = event(row.event_id, &row.event_type, &row.doc_type, &row.doc_number);
    let earlier = event(row.earlier_event_id, &row.earlier_event_type, &row.earlier_doc_type, &row.earlier_doc_number);
    match (this.is_empty(), earlier.is_empty()) {
        (_, true) => this,
        (true, false) => earlier,
        (false, false) => format!("{this}, after {earlier}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> AnomalyRow {
        AnomalyRow {
            company_id: "c".into(),
            kind: "out_twice".into(),
            serial: "SN-1".into(),
            product_id: None,
            product_name: None,
            explanation: String::new(),
            started_at: None,
            event_id: Some(1116),
            event_type: Some("picked".into()),
            doc_type: Some("sales_order".into()),
            doc_number: Some("SO-000039".into()),
            location_id: None,
            sublocation: None,
            earlier_event_id: Some(839),
            earlier_event_type: Some("picked".into()),
            earlier_doc_type: Some("sales_order".into()),
            earlier_doc_number: Some("SO-000021".into()),
            detail: None,
            days_in_transit: None,
        }
    }

    #[test]
    fn evidence_names_both_events_and_their_documents() {
        assert_eq!(evidence(&row()), "#1116 picked SO-000039, after #839 picked SO-000021");
    }

    #[test]
    fn evidence_without_an_earlier_event_or_an_event_id() {
        let mut r = row();
        r.earlier_event_id = None;
        r.earlier_event_type = None;
        r.earlier_doc_type = None;
        r.earlier_doc_number = None;
        assert_eq!(evidence(&r), "#1116 picked SO-000039");
        // A stock disagreement names the history's last event, which has no id in the view.
        r.event_id = None;
        r.doc_number = None;
        assert_eq!(evidence(&r), "picked sales_order");
    }

    #[test]
    fn kind_names_are_the_command_line_values() {
        use clap::ValueEnum;
        for kind in AnomalyKind::ALL {
            let value = kind.to_possible_value().unwrap();
            assert_eq!(value.get_name(), kind.as_str());
        }
        assert_eq!(AnomalyKind::value_variants().len(), AnomalyKind::ALL.len());
    }
}
