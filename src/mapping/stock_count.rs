//! Stock counts: the serials counted on each sheet line (`counted`), and on a completed count
//! the difference with the line's snapshot: a serial expected but not counted is
//! `count_missing` (-1), one counted but not expected is `count_found` (+1).
//!
//! Whether completing a count also creates stock adjustments that the API lists is unknown
//! (§4.5 and §10 of the reference). If it does, those adjustments carry the same serials again,
//! and their ±1 would count the difference twice. Such an adjustment is recognised by the
//! evidence both documents carry, and its serials become `adjusted_by_count` (no stock effect),
//! leaving the stock effect on the count's own events:
//!
//! - the same serial (and product, where both name one), moved the same way (out for missing,
//!   in for found), at the same location;
//! - on the same day as the count's completion, give or take one calendar day (inFlow dates
//!   carry the location's offset, which the stored UTC times lose);
//! - and the adjustment says where it comes from: an internal adjustment reason (inFlow's own,
//!   "system-generated"), or the count's number in its remarks or number.
//!
//! [`count_adjustment_behaviour`] applies the same rule to documents fetched from an account, to
//! tell which way it behaves (for `audit doctor`).

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::lines::Line;
use super::{Builder, Derived, DocType, EventType, LineRef, MappingError, Occurrence};
use crate::inflow::model::{CountSheetLine, StockAdjustment, StockCount};

const SHEET_LINES: &str = CountSheetLine::COLLECTION;

pub(super) fn derive(sc: StockCount, raw: &str) -> Result<Derived, MappingError> {
    let mut b = Builder::new(
        DocType::StockCount,
        sc.stock_count_id.as_deref(),
        sc.stock_count_number.as_deref(),
        sc.status.as_deref(),
        sc.is_cancelled,
        sc.timestamp.as_deref(),
    )?;
    let completed_date = b.date("completedDate", sc.completed_date.as_deref(), None);
    let started_date = b.date("startedDate", sc.started_date.as_deref(), None);
    b.set_doc_date(completed_date.or(started_date));
    let sheets = sc.sheets.unwrap_or_default();
    b.stamp_all(&sheets);
    let mut index = 0;
    for sheet in &sheets {
        for l in sheet.lines.as_deref().unwrap_or_default() {
            b.stamp(SHEET_LINES, index, l.id(), l.timestamp());
            index += 1;
        }
    }
    if b.is_cancelled() {
        return b.finish(raw);
    }
    let completed = sc.is_completed || is_completed(sc.status.as_deref());
    let location = sc.location_id.as_deref();
    let mut index = 0;
    for sheet in &sheets {
        let sheet_lines = sheet.lines.as_deref().unwrap_or_default();
        if sheet.is_cancelled {
            index += sheet_lines.len();
            continue;
        }
        // When the sheet was completed, else the count; a count still going on is dated by its
        // start (an undated event would sort after everything that happened since).
        let sheet_date = b.date("completedDate", sheet.completed_date.as_deref(), None);
        let sheet_start = b.date("startedDate", sheet.started_date.as_deref(), None);
        let occurred_at = sheet_date.or(completed_date).or(sheet_start).or(started_date);
        for l in sheet_lines {
            let line = LineRef {
                collection: SHEET_LINES,
                index,
                id: l.id(),
                product_id: l.product_id.as_deref(),
                quantity: &l.counted_quantity,
            };
            index += 1;
            let counted = b.serials(&line);
            let at = |event_type, quantity_delta| Occurrence {
                event_type,
                quantity_delta,
                location_id: location,
                sublocation: l.sublocation.as_deref(),
                occurred_at,
            };
            b.emit(&line, &counted, at(EventType::Counted, 0));
            if !completed {
                continue;
            }
            let expected: Vec<&str> = snapshot_serials(l);
            let counted_set: HashSet<&str> = counted.iter().copied().collect();
            let expected_set: HashSet<&str> = expected.iter().copied().collect();
            let missing: Vec<&str> = expected.iter().copied().filter(|s| !counted_set.contains(s)).collect();
            let found: Vec<&str> = counted.iter().copied().filter(|s| !expected_set.contains(s)).collect();
            b.emit(&line, &missing, at(EventType::CountMissing, -1));
            b.emit(&line, &found, at(EventType::CountFound, 1));
        }
    }
    b.finish(raw)
}

fn is_completed(status: Option<&str>) -> bool {
    status.is_some_and(|s| s.trim().eq_ignore_ascii_case("completed"))
}

/// The serials a line expected, in order, without empty ones or repeats (the counted serials
/// are where odd data is warned about).
fn snapshot_serials(l: &CountSheetLine) -> Vec<&str> {
    let mut seen = HashSet::new();
    l.snapshot_quantity
        .serial_numbers
        .iter()
        .map(String::as_str)
        .filter(|s| !s.trim().is_empty() && seen.insert(*s))
        .collect()
}

/// A serial a completed count removed (`count_missing`) or added (`count_found`): what an
/// adjustment the count made would repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountEvidence {
    /// The serial the count moved.
    pub serial: String,
    /// Its product, from the count line.
    pub product_id: Option<String>,
    /// The count's location.
    pub location_id: Option<String>,
    /// When the count event happened, dated as `counted` is.
    pub at: Option<DateTime<Utc>>,
    /// `count_found` (into stock); else `count_missing`.
    pub found: bool,
    /// The count's number, which an adjustment it made may name in its remarks or number.
    pub count_number: Option<String>,
}

impl CountEvidence {
    /// The evidence in a count's derived events.
    pub fn of(count: &Derived) -> Vec<CountEvidence> {
        count
            .events
            .iter()
            .filter(|e| matches!(e.event_type, EventType::CountMissing | EventType::CountFound))
            .map(|e| CountEvidence {
                serial: e.serial.clone(),
                product_id: e.product_id.clone(),
                location_id: e.location_id.clone(),
                at: e.occurred_at,
                found: e.event_type == EventType::CountFound,
                count_number: count.doc_number.clone(),
            })
            .collect()
    }
}

/// What an adjustment says about where it comes from.
pub(crate) struct AdjustmentOrigin<'a> {
    location_id: Option<&'a str>,
    date: Option<DateTime<Utc>>,
    internal_reason: bool,
    /// Remarks and number, lower-cased, where a count's number would be named.
    text: String,
}

impl<'a> AdjustmentOrigin<'a> {
    pub(crate) fn new(sa: &'a StockAdjustment, date: Option<DateTime<Utc>>) -> AdjustmentOrigin<'a> {
        let reason = sa.adjustment_reason.as_ref();
        AdjustmentOrigin {
            location_id: sa.location_id.as_deref(),
            date,
            internal_reason: reason.and_then(|r| r.is_internal).unwrap_or(false),
            text: format!("{} {}", sa.remarks.as_deref().unwrap_or(""), sa.adjustment_number.as_deref().unwrap_or(""))
                .to_lowercase(),
        }
    }

    /// The count that made this adjustment's move of `serial`, if the evidence says one did.
    pub(crate) fn made_by<'e>(
        &self,
        evidence: &'e [CountEvidence],
        serial: &str,
        product_id: Option<&str>,
        into_stock: bool,
    ) -> Option<&'e CountEvidence> {
        evidence.iter().find(|e| {
            e.serial == serial
                && e.found == into_stock
                && (e.product_id.is_none() || product_id.is_none() || e.product_id.as_deref() == product_id)
                && e.location_id.is_some()
                && e.location_id.as_deref() == self.location_id
                && same_day(e.at, self.date)
                && (self.internal_reason
                    || e.count_number
                        .as_deref()
                        .is_some_and(|n| !n.trim().is_empty() && self.text.contains(&n.trim().to_lowercase())))
        })
    }
}

/// At most one calendar day apart (UTC dates), both known.
pub(crate) fn same_day(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a.date_naive() - b.date_naive()).num_days().abs() <= 1,
        _ => false,
    }
}

/// How an account treats completed counts, judged from its documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum CountAdjustments {
    /// Completing a count also created adjustments the API lists: `audit` records their
    /// serials as `adjusted_by_count`, so the count's difference counts once.
    Listed {
        /// The count whose difference the adjustment repeats (that of its first such serial).
        count_number: Option<String>,
        /// The first adjustment found repeating a count.
        adjustment_number: Option<String>,
        /// How many of that adjustment's serials are `adjusted_by_count`.
        serials: usize,
    },
    /// Counts with differences whose adjustments would be among those fetched, and none is
    /// there: the count's own events are the only record of the difference.
    NotListed {
        /// Completed counts with a difference dated within a day of the adjustments' range.
        counts_checked: usize,
    },
    /// No completed count with a difference in the documents given, or the adjustments given
    /// do not cover their dates: nothing to judge from.
    Unknown {
        /// Why there is nothing to judge from, for a person.
        reason: String,
    },
}

/// Judges whether completing a count creates listed adjustments, from raw stock counts and
/// stock adjustments (as the API returns them, adjustments with `include=lines,adjustmentReason`).
/// "Not listed" needs adjustments dated around each count judged, so that a missing match is
/// evidence and not only a gap in what was fetched. Documents that do not parse are skipped.
pub fn count_adjustment_behaviour(counts: &[&str], adjustments: &[&str]) -> CountAdjustments {
    let derived_counts: Vec<Derived> =
        counts.iter().filter_map(|raw| super::derive(DocType::StockCount, raw).ok()).collect();
    let with_difference: Vec<&Derived> = derived_counts.iter().filter(|d| !CountEvidence::of(d).is_empty()).collect();
    if with_difference.is_empty() {
        return CountAdjustments::Unknown {
            reason: format!(
                "none of the {} stock counts fetched is completed with a serial found or missing",
                derived_counts.len()
            ),
        };
    }
    let evidence: Vec<CountEvidence> = with_difference.iter().flat_map(|d| CountEvidence::of(d)).collect();
    let mut dates = BTreeSet::new();
    for raw in adjustments {
        let Ok(derived) = super::derive_with(DocType::StockAdjustment, raw, super::Context { counts: &evidence })
        else {
            continue;
        };
        if let Some(d) = derived.doc_date {
            dates.insert(d);
        }
        let by_count: Vec<_> = derived.events.iter().filter(|e| e.event_type == EventType::AdjustedByCount).collect();
        if let Some(first) = by_count.first() {
            let count = evidence.iter().find(|e| e.serial == first.serial).and_then(|e| e.count_number.clone());
            return CountAdjustments::Listed {
                count_number: count,
                adjustment_number: derived.doc_number.clone(),
                serials: by_count.len(),
            };
        }
    }
    let (Some(first), Some(last)) = (dates.first(), dates.last()) else {
        return CountAdjustments::Unknown { reason: "no dated stock adjustment was fetched".into() };
    };
    let covered = with_difference
        .iter()
        .filter(|d| d.doc_date.is_some_and(|c| c >= *first - chrono::Days::new(1) && c <= *last + chrono::Days::new(1)))
        .count();
    if covered == 0 {
        return CountAdjustments::Unknown {
            reason: "the stock adjustments fetched are not dated around any completed count".into(),
        };
    }
    CountAdjustments::NotListed { counts_checked: covered }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::mapping::test_support::{self, at, of, s, warnings};
    use crate::mapping::{Context, WarningKind, derive_with};

    fn q(serials: &[&str]) -> Value {
        json!({"standardQuantity": format!("{}.0000", serials.len()), "serialNumbers": serials})
    }

    /// A count at loc-1 with one sheet: A-01 expected S1, S2 and counted S1, S3; B-02 expected S4
    /// and counted S4.
    fn count(status: &str) -> Value {
        json!({
            "stockCountId": "sc-1", "stockCountNumber": "SC-000007", "locationId": "loc-1",
            "status": status, "isCancelled": false, "isCompleted": status == "completed",
            "startedDate": "2025-06-10T08:00:00-04:00",
            "completedDate": if status == "completed" { json!("2025-06-10T17:00:00-04:00") } else { Value::Null },
            "timestamp": "0000000000000200",
            "sheets": [{
                "countSheetId": "sh-1", "stockCountId": "sc-1", "sheetNumber": 1, "status": status,
                "isCancelled": false, "isCompleted": status == "completed",
                "completedDate": if status == "completed" { json!("2025-06-10T16:00:00-04:00") } else { Value::Null },
                "timestamp": "0000000000000201",
                "lines": [
                    {"countSheetLineId": "cl-1", "productId": "p-1", "sublocation": "A-01",
                     "snapshotQuantity": q(&["S1", "S2"]), "countedQuantity": q(&["S1", "S3"]), "timestamp": "0000000000000202"},
                    {"countSheetLineId": "cl-2", "productId": "p-1", "sublocation": "B-02",
                     "snapshotQuantity": q(&["S4"]), "countedQuantity": q(&["S4"]), "timestamp": "0000000000000203"}
                ]
            }]
        })
    }

    fn run(v: &serde_json::Value) -> crate::mapping::Derived {
        test_support::run(DocType::StockCount, v)
    }

    #[test]
    fn counted_serials_are_recorded_at_the_header_location_and_line_sublocation_on_the_sheet_date() {
        let d = run(&count("completed"));
        let when = at("2025-06-10T16:00:00-04:00");
        assert_eq!(
            of(&d, EventType::Counted),
            vec![
                ("S1".into(), "cl-1".into(), 0, s("loc-1"), s("A-01"), when),
                ("S3".into(), "cl-1".into(), 0, s("loc-1"), s("A-01"), when),
                ("S4".into(), "cl-2".into(), 0, s("loc-1"), s("B-02"), when)
            ]
        );
        assert_eq!(d.doc_number.as_deref(), Some("SC-000007"));
        assert_eq!(d.doc_date, at("2025-06-10T17:00:00-04:00"));
        assert_eq!(d.events[0].line_collection, "sheets.lines");
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    #[test]
    fn a_completed_count_removes_the_missing_and_adds_the_found() {
        let d = run(&count("completed"));
        let when = at("2025-06-10T16:00:00-04:00");
        assert_eq!(
            of(&d, EventType::CountMissing),
            vec![("S2".into(), "cl-1".into(), -1, s("loc-1"), s("A-01"), when)]
        );
        assert_eq!(of(&d, EventType::CountFound), vec![("S3".into(), "cl-1".into(), 1, s("loc-1"), s("A-01"), when)]);
        // Without a sheet date, the count's.
        let mut v = count("completed");
        v["sheets"][0]["completedDate"] = Value::Null;
        assert_eq!(of(&run(&v), EventType::CountMissing)[0].5, at("2025-06-10T17:00:00-04:00"));
    }

    #[test]
    fn a_count_not_completed_has_counted_serials_and_no_stock_effect() {
        for status in ["open", "inProgress", "inReview", "InProgress"] {
            let d = run(&count(status));
            assert_eq!(of(&d, EventType::Counted).len(), 3, "{status}");
            assert!(d.events.iter().all(|e| e.quantity_delta == 0), "{status}");
            assert_eq!(d.doc_date, at("2025-06-10T08:00:00-04:00"), "dated by its start");
            assert!(d.events.iter().all(|e| e.occurred_at == at("2025-06-10T08:00:00-04:00")), "{status}");
        }
        // A sheet started on its own date.
        let mut v = count("inProgress");
        v["sheets"][0]["startedDate"] = "2025-06-11T09:00:00-04:00".into();
        assert!(run(&v).events.iter().all(|e| e.occurred_at == at("2025-06-11T09:00:00-04:00")));
        // The flag alone completes it.
        let mut v = count("inReview");
        v["isCompleted"] = true.into();
        assert_eq!(of(&run(&v), EventType::CountMissing).len(), 1);
    }

    #[test]
    fn cancelled_counts_and_sheets_record_nothing() {
        let mut v = count("completed");
        v["isCancelled"] = true.into();
        assert!(run(&v).events.is_empty());
        let mut v = count("completed");
        v["sheets"][0]["isCancelled"] = true.into();
        assert!(run(&v).events.is_empty());
    }

    #[test]
    fn a_serial_counted_on_another_line_moves_between_sublocations() {
        let mut v = count("completed");
        // S2 was expected at A-01 and turns up at B-02.
        v["sheets"][0]["lines"][1]["countedQuantity"] = q(&["S4", "S2"]);
        let d = run(&v);
        let moved: Vec<_> = d.events.iter().filter(|e| e.serial == "S2" && e.quantity_delta != 0).collect();
        assert_eq!(moved.len(), 2);
        assert!(
            moved.iter().any(|e| e.event_type == EventType::CountMissing && e.sublocation.as_deref() == Some("A-01"))
        );
        assert!(
            moved.iter().any(|e| e.event_type == EventType::CountFound && e.sublocation.as_deref() == Some("B-02"))
        );
    }

    #[test]
    fn odd_counted_serials_are_warned_about_and_a_line_change_changes_the_version() {
        let mut v = count("completed");
        v["sheets"][0]["lines"][0]["countedQuantity"] =
            json!({"standardQuantity": "3", "serialNumbers": ["S1", "S1", ""]});
        let d = run(&v);
        assert!(
            warnings(&d).contains(&WarningKind::RepeatedSerial) && warnings(&d).contains(&WarningKind::EmptySerial)
        );
        let v0 = run(&count("completed")).lines_version;
        let mut v = count("completed");
        v["sheets"][0]["lines"][1]["timestamp"] = "00000000000002FF".into();
        assert_ne!(run(&v).lines_version, v0);
    }

    /// The adjustment a count that creates listed adjustments would make.
    fn count_adjustment() -> Value {
        json!({
            "stockAdjustmentId": "sa-9", "adjustmentNumber": "SA-000031", "date": "2025-06-10T17:00:00-04:00",
            "locationId": "loc-1", "remarks": "Stock count SC-000007", "isCancelled": false,
            "adjustmentReason": {"adjustmentReasonId": "r-1", "name": "Stock count", "isInternal": false},
            "lines": [
                {"stockAdjustmentLineId": "al-1", "productId": "p-1", "sublocation": "A-01", "quantity": {"standardQuantity": "-1", "serialNumbers": ["S2"]}},
                {"stockAdjustmentLineId": "al-2", "productId": "p-1", "sublocation": "A-01", "quantity": {"standardQuantity": "1", "serialNumbers": ["S3"]}}
            ]
        })
    }

    fn adjusted(v: &Value, evidence: &[CountEvidence]) -> Derived {
        derive_with(DocType::StockAdjustment, &v.to_string(), Context { counts: evidence }).unwrap()
    }

    #[test]
    fn an_adjustment_the_count_made_has_no_stock_effect_of_its_own() {
        let evidence = CountEvidence::of(&run(&count("completed")));
        assert_eq!(evidence.len(), 2);
        let d = adjusted(&count_adjustment(), &evidence);
        let types: Vec<(&str, EventType, i16)> =
            d.events.iter().map(|e| (e.serial.as_str(), e.event_type, e.quantity_delta)).collect();
        assert_eq!(types, [("S2", EventType::AdjustedByCount, 0), ("S3", EventType::AdjustedByCount, 0)]);
        // Without the count's evidence, the same adjustment moves stock.
        let d = adjusted(&count_adjustment(), &[]);
        assert_eq!(of(&d, EventType::AdjustedOut).len() + of(&d, EventType::AdjustedIn).len(), 2);
    }

    #[test]
    fn each_piece_of_evidence_is_needed() {
        let evidence = CountEvidence::of(&run(&count("completed")));
        let by_count = |v: &Value| adjusted(v, &evidence).events.iter().filter(|e| e.quantity_delta == 0).count();
        assert_eq!(by_count(&count_adjustment()), 2);
        // An internal reason instead of the count's number.
        let mut v = count_adjustment();
        v["remarks"] = "".into();
        assert_eq!(by_count(&v), 0, "no sign of the count");
        v["adjustmentReason"]["isInternal"] = true.into();
        assert_eq!(by_count(&v), 2);
        // Another location.
        let mut v = count_adjustment();
        v["locationId"] = "loc-2".into();
        assert_eq!(by_count(&v), 0);
        // Two days later.
        let mut v = count_adjustment();
        v["date"] = "2025-06-12T17:00:00-04:00".into();
        assert_eq!(by_count(&v), 0);
        // The next day (an offset moving the UTC date) still matches.
        v["date"] = "2025-06-11T09:00:00-04:00".into();
        assert_eq!(by_count(&v), 2);
        // The opposite direction: S2 added back is not the count's removal.
        let mut v = count_adjustment();
        v["lines"][0]["quantity"]["standardQuantity"] = "1".into();
        assert_eq!(by_count(&v), 1);
        // Another product with the same serial string.
        let mut v = count_adjustment();
        v["lines"][0]["productId"] = "p-2".into();
        assert_eq!(by_count(&v), 1);
    }

    #[test]
    fn the_account_behaviour_is_judged_from_fetched_documents() {
        let c = count("completed").to_string();
        let listed = count_adjustment().to_string();
        let verdict = count_adjustment_behaviour(&[&c], &[&listed]);
        assert_eq!(
            verdict,
            CountAdjustments::Listed {
                count_number: Some("SC-000007".into()),
                adjustment_number: Some("SA-000031".into()),
                serials: 2
            }
        );
        // Adjustments around the count's date, none of them the count's.
        let mut other = count_adjustment();
        other["remarks"] = "Damaged".into();
        let other = other.to_string();
        assert_eq!(count_adjustment_behaviour(&[&c], &[&other]), CountAdjustments::NotListed { counts_checked: 1 });
        // Adjustments from another year say nothing.
        let mut far = count_adjustment();
        far["date"] = "2024-01-10T17:00:00-04:00".into();
        let far = far.to_string();
        assert!(matches!(count_adjustment_behaviour(&[&c], &[&far]), CountAdjustments::Unknown { .. }));
        // No completed count with a difference.
        let open = count("inProgress").to_string();
        assert!(matches!(count_adjustment_behaviour(&[&open], &[&listed]), CountAdjustments::Unknown { .. }));
        assert!(matches!(count_adjustment_behaviour(&[], &[]), CountAdjustments::Unknown { .. }));
    }
}
