//! Holding the history against inFlow's stock.
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
//!
//! The classification is the `serial_stock_disagreements` view (migration V8), so that `audit
//! reconcile`, `audit anomalies` (kind `history_and_stock_disagree`) and any SQL client list the
//! same rows. This module adds inFlow's places to each row and orders them.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::Serialize;

use crate::store::anomalies::StockDisagreementRow;
use crate::store::stock::SnapshotLine;

/// How the history and inFlow's stock disagree about a serial (the table above); ordered as
/// listed, which is the order of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// On hand in inFlow, but no event of the serial at all.
    NeverInDocuments,
    /// On hand in inFlow; the history has events, but none ever brought it into stock.
    OnHandWithoutReceipt,
    /// On hand at two or more places in inFlow.
    OnHandInTwoLocations,
    /// On hand at one place in inFlow, in stock at another by the history.
    DifferentLocation,
    /// On hand in inFlow, but the history has it out of stock (shipped, returned, adjusted out...).
    OnHandButHistoryGone,
    /// Not on hand in inFlow, but in stock by the history.
    GoneButHistoryOnHand,
    /// Below zero somewhere in inFlow: removed more often than it came in.
    NegativeOnHand,
}

impl Kind {
    /// Every kind, in the report's order.
    pub const ALL: [Kind; 7] = [
        Kind::NeverInDocuments,
        Kind::OnHandWithoutReceipt,
        Kind::OnHandInTwoLocations,
        Kind::DifferentLocation,
        Kind::OnHandButHistoryGone,
        Kind::GoneButHistoryOnHand,
        Kind::NegativeOnHand,
    ];

    /// The kind's name as the `serial_stock_disagreements` view and the output spell it.
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

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Kind, String> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| format!("unknown disagreement kind {s:?}"))
    }
}

/// Where inFlow has a serial, and how many.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Place {
    /// The inFlow location, if the snapshot line names one.
    pub location_id: Option<String>,
    /// The sublocation (bin) within it, if any.
    pub sublocation: Option<String>,
    /// inFlow's quantity on hand there: never zero here, below zero only under `negative_on_hand`.
    pub quantity_on_hand: f64,
}

/// One serial on which the history and inFlow's latest snapshot disagree: a row of `audit
/// reconcile`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Disagreement {
    /// How they disagree.
    pub kind: Kind,
    /// The inFlow company.
    pub company_id: String,
    /// The serial's product; `None` when it is not known.
    pub product_id: Option<String>,
    /// The serial number.
    pub serial: String,
    /// The snapshot's lines for this serial (quantity not zero).
    pub inflow: Vec<Place>,
    /// The history's status and place, when it has any event.
    pub history_status: Option<String>,
    /// The location of the history's last stock movement.
    pub history_location_id: Option<String>,
    /// The sublocation of that movement.
    pub history_sublocation: Option<String>,
    /// The number of the document of that movement.
    pub history_document: Option<String>,
}

/// The view's rows with the snapshot's places of each serial, ordered by kind and serial.
pub fn with_places(rows: Vec<StockDisagreementRow>, snapshot: &[SnapshotLine]) -> Result<Vec<Disagreement>, String> {
    let mut places: BTreeMap<(&str, &str, &str), Vec<Place>> = BTreeMap::new();
    for line in snapshot.iter().filter(|l| l.quantity_on_hand != 0.0) {
        places.entry((&line.company_id, &line.product_id, &line.serial)).or_default().push(Place {
            location_id: line.location_id.clone(),
            sublocation: line.sublocation.clone(),
            quantity_on_hand: line.quantity_on_hand,
        });
    }
    let mut out = rows
        .into_iter()
        .map(|r| {
            let product = r.product_id.clone().unwrap_or_default();
            let inflow = places.get(&(r.company_id.as_str(), product.as_str(), r.serial.as_str())).cloned();
            Ok(Disagreement {
                kind: r.kind.parse()?,
                company_id: r.company_id,
                product_id: r.product_id.filter(|p| !p.is_empty()),
                serial: r.serial,
                inflow: inflow.unwrap_or_default(),
                history_status: r.history_status,
                history_location_id: r.history_location_id,
                history_sublocation: r.history_sublocation,
                history_document: r.history_doc_number,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    out.sort_by(|a, b| (a.kind, &a.serial, &a.product_id).cmp(&(b.kind, &b.serial, &b.product_id)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(product: &str, serial: &str, loc: &str, qty: f64) -> SnapshotLine {
        SnapshotLine {
            company_id: "c".into(),
            product_id: product.into(),
            serial: serial.into(),
            location_id: Some(loc.into()),
            sublocation: None,
            quantity_on_hand: qty,
        }
    }

    fn row(kind: &str, product: Option<&str>, serial: &str) -> StockDisagreementRow {
        StockDisagreementRow {
            company_id: "c".into(),
            kind: kind.into(),
            product_id: product.map(str::to_string),
            serial: serial.into(),
            history_status: None,
            history_location_id: None,
            history_sublocation: None,
            history_doc_number: None,
        }
    }

    #[test]
    fn each_row_gets_its_own_products_places_and_rows_are_ordered_by_kind() {
        let snapshot = [
            line("p", "S", "L1", 1.0),
            line("p", "S", "L2", 1.0),
            line("q", "S", "L3", 1.0),
            line("p", "Z", "L1", 0.0),
        ];
        let rows = vec![
            row("negative_on_hand", Some("p"), "A"),
            row("on_hand_in_two_locations", Some("p"), "S"),
            row("gone_but_history_on_hand", Some("p"), "Z"),
        ];
        let out = with_places(rows, &snapshot).unwrap();
        let kinds: Vec<Kind> = out.iter().map(|d| d.kind).collect();
        assert_eq!(kinds, [Kind::OnHandInTwoLocations, Kind::GoneButHistoryOnHand, Kind::NegativeOnHand]);
        let at: Vec<_> = out[0].inflow.iter().map(|p| p.location_id.as_deref().unwrap()).collect();
        assert_eq!(at, ["L1", "L2"], "product q's line is another comparison");
        assert!(out[1].inflow.is_empty(), "a line of quantity 0 is no place");
    }

    #[test]
    fn a_history_without_product_matches_the_empty_product_and_shows_none() {
        let out =
            with_places(vec![row("on_hand_but_history_gone", Some(""), "S")], &[line("", "S", "L1", 1.0)]).unwrap();
        assert_eq!(out[0].product_id, None);
        assert_eq!(out[0].inflow.len(), 1);
    }

    #[test]
    fn every_kind_the_view_can_name_is_known() {
        for kind in Kind::ALL {
            assert_eq!(kind.as_str().parse::<Kind>(), Ok(kind));
        }
        assert!(with_places(vec![row("misplaced", None, "S")], &[]).is_err());
    }
}
