//! Holding the history against inFlow's stock: pure classification of every disagreement.
//!
//! Per company, product and serial, the history says where the serial is (its last stock
//! movement, as the `serial_current` view does) and whether any event ever brought it in; the
//! latest snapshot says where inFlow has it on hand. They disagree in these ways:
//!
//! | kind | inFlow's stock | the history |
//! |---|---|---|
//! | `never_in_documents` | on hand | no event at all |
//! | `on_hand_without_receipt` | on hand | events, but none ever brought it into stock |
//! | `on_hand_in_two_locations` | on hand at two or more places | (either) |
//! | `different_location` | on hand at one place | in stock at another |
//! | `on_hand_but_history_gone` | on hand | left stock (shipped, returned, adjusted out...) |
//! | `gone_but_history_on_hand` | not on hand | in stock |
//! | `negative_on_hand` | below zero somewhere | (either): removed more often than it came in |

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::stock::{HistoryState, SnapshotLine};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    NeverInDocuments,
    OnHandWithoutReceipt,
    OnHandInTwoLocations,
    DifferentLocation,
    OnHandButHistoryGone,
    GoneButHistoryOnHand,
    NegativeOnHand,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NeverInDocuments => "never_in_documents",
            Kind::OnHandWithoutReceipt => "on_hand_without_receipt",
            Kind::OnHandInTwoLocations => "on_hand_in_two_locations",
            Kind::DifferentLocation => "different_location",
            Kind::OnHandButHistoryGone => "on_hand_but_history_gone",
            Kind::GoneButHistoryOnHand => "gone_but_history_on_hand",
            Kind::NegativeOnHand => "negative_on_hand",
        }
    }
}

/// Where inFlow has a serial, and how many.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Place {
    pub location_id: Option<String>,
    pub sublocation: Option<String>,
    pub quantity_on_hand: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Disagreement {
    pub kind: Kind,
    pub company_id: String,
    pub product_id: Option<String>,
    pub serial: String,
    /// The snapshot's lines for this serial (quantity not zero).
    pub inflow: Vec<Place>,
    /// The history's status and place, when it has any event.
    pub history_status: Option<String>,
    pub history_location_id: Option<String>,
    pub history_sublocation: Option<String>,
    pub history_document: Option<String>,
}

type Key = (String, String, String);

/// Every disagreement between a snapshot and the history, ordered by kind and serial.
pub fn reconcile(snapshot: &[SnapshotLine], history: &[HistoryState]) -> Vec<Disagreement> {
    let mut by_key: BTreeMap<Key, (Vec<&SnapshotLine>, Option<&HistoryState>)> = BTreeMap::new();
    for line in snapshot.iter().filter(|l| l.quantity_on_hand != 0.0) {
        let key = (line.company_id.clone(), line.product_id.clone(), line.serial.clone());
        by_key.entry(key).or_default().0.push(line);
    }
    for h in history {
        let key = (h.company_id.clone(), h.product_id.clone().unwrap_or_default(), h.serial.clone());
        by_key.entry(key).or_default().1 = Some(h);
    }
    let mut out: Vec<Disagreement> = by_key
        .into_iter()
        .filter_map(|((company_id, product_id, serial), (lines, h))| {
            let kind = classify(&lines, h)?;
            Some(Disagreement {
                kind,
                company_id,
                product_id: Some(product_id).filter(|p| !p.is_empty()),
                serial,
                inflow: lines
                    .iter()
                    .map(|l| Place {
                        location_id: l.location_id.clone(),
                        sublocation: l.sublocation.clone(),
                        quantity_on_hand: l.quantity_on_hand,
                    })
                    .collect(),
                history_status: h.map(|h| h.status.clone()),
                history_location_id: h.and_then(|h| h.location_id.clone()),
                history_sublocation: h.and_then(|h| h.sublocation.clone()),
                history_document: h.and_then(|h| h.doc_number.clone()),
            })
        })
        .collect();
    out.sort_by(|a, b| (a.kind, &a.serial, &a.product_id).cmp(&(b.kind, &b.serial, &b.product_id)));
    out
}

fn classify(lines: &[&SnapshotLine], h: Option<&HistoryState>) -> Option<Kind> {
    let on_hand: Vec<&&SnapshotLine> = lines.iter().filter(|l| l.quantity_on_hand > 0.0).collect();
    let in_stock = h.is_some_and(|h| h.status == "in_stock");
    if lines.iter().any(|l| l.quantity_on_hand < 0.0) {
        return Some(Kind::NegativeOnHand);
    }
    match (on_hand.as_slice(), h) {
        ([], _) if in_stock => Some(Kind::GoneButHistoryOnHand),
        ([], _) => None,
        ([_, _, ..], _) => Some(Kind::OnHandInTwoLocations),
        ([_], None) => Some(Kind::NeverInDocuments),
        ([_], Some(h)) if !h.ever_in => Some(Kind::OnHandWithoutReceipt),
        ([_], Some(_)) if !in_stock => Some(Kind::OnHandButHistoryGone),
        ([line], Some(h)) if !same_place(line, h) => Some(Kind::DifferentLocation),
        _ => None,
    }
}

/// The same location and sublocation; no sublocation and an empty one are the same.
fn same_place(line: &SnapshotLine, h: &HistoryState) -> bool {
    let sub = |s: &Option<String>| s.clone().unwrap_or_default();
    line.location_id == h.location_id && sub(&line.sublocation) == sub(&h.sublocation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(serial: &str, loc: &str, sub: &str, qty: f64) -> SnapshotLine {
        SnapshotLine {
            company_id: "c".into(),
            product_id: "p".into(),
            serial: serial.into(),
            location_id: Some(loc.into()),
            sublocation: Some(sub.into()),
            quantity_on_hand: qty,
        }
    }

    fn hist(serial: &str, status: &str, loc: &str, sub: Option<&str>, ever_in: bool) -> HistoryState {
        HistoryState {
            company_id: "c".into(),
            product_id: Some("p".into()),
            serial: serial.into(),
            status: status.into(),
            location_id: Some(loc.into()),
            sublocation: sub.map(str::to_string),
            doc_number: Some("PO-1".into()),
            ever_in,
        }
    }

    fn kinds(snapshot: &[SnapshotLine], history: &[HistoryState]) -> Vec<(Kind, String)> {
        reconcile(snapshot, history).into_iter().map(|d| (d.kind, d.serial)).collect()
    }

    #[test]
    fn agreement_is_silent() {
        let snapshot = [line("A", "L1", "", 1.0), line("Z", "L1", "X", 0.0)];
        let history = [
            hist("A", "in_stock", "L1", None, true),
            hist("B", "with_customer", "L1", Some("S"), true),
            hist("C", "in_transit", "L1", Some("S"), true),
            hist("D", "never_stocked", "L1", None, false),
        ];
        assert_eq!(kinds(&snapshot, &history), []);
    }

    #[test]
    fn each_kind_of_disagreement_is_named() {
        let snapshot = [
            line("NEW", "L1", "A", 1.0),
            line("NORECEIPT", "L1", "A", 1.0),
            line("TWICE", "L1", "A", 1.0),
            line("TWICE", "L2", "B", 1.0),
            line("MOVED", "L2", "B", 1.0),
            line("BACK", "L1", "A", 1.0),
            line("NEG", "L1", "A", -1.0),
        ];
        let history = [
            hist("NORECEIPT", "never_stocked", "L1", None, false),
            hist("TWICE", "in_stock", "L1", Some("A"), true),
            hist("MOVED", "in_stock", "L1", Some("A"), true),
            hist("BACK", "with_customer", "L1", Some("A"), true),
            hist("GONE", "in_stock", "L1", Some("A"), true),
            hist("NEG", "with_customer", "L1", Some("A"), true),
        ];
        assert_eq!(
            kinds(&snapshot, &history),
            [
                (Kind::NeverInDocuments, "NEW".to_string()),
                (Kind::OnHandWithoutReceipt, "NORECEIPT".into()),
                (Kind::OnHandInTwoLocations, "TWICE".into()),
                (Kind::DifferentLocation, "MOVED".into()),
                (Kind::OnHandButHistoryGone, "BACK".into()),
                (Kind::GoneButHistoryOnHand, "GONE".into()),
                (Kind::NegativeOnHand, "NEG".into()),
            ]
        );
    }

    #[test]
    fn the_same_serial_under_two_products_is_two_comparisons() {
        let mut other = line("S", "L2", "B", 1.0);
        other.product_id = "q".into();
        let mut other_hist = hist("S", "in_stock", "L2", Some("B"), true);
        other_hist.product_id = Some("q".into());
        let snapshot = [line("S", "L1", "A", 1.0), other];
        let history = [hist("S", "in_stock", "L1", Some("A"), true), other_hist];
        assert_eq!(kinds(&snapshot, &history), []);
    }
}
