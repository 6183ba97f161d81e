//! Where a serial was over time, as inline SVG: a row per location, a bar per stay (from the
//! movement that brought it in to the one that took it out), and marks for sales, returns and
//! transfers. Pure: built from a [`History`] as `audit timeline` tells it.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use maud::{Markup, html};

use crate::timeline::{Entry, History};

const WIDTH: f64 = 900.0;
const LABEL: f64 = 170.0;
const ROW: f64 = 30.0;
const TOP: f64 = 8.0;
const AXIS: f64 = 26.0;

/// A stay at one location.
#[derive(Debug, Clone, PartialEq)]
pub struct Stay {
    /// The location row.
    pub row: usize,
    /// When the stay began.
    pub from: DateTime<Utc>,
    /// `None`: still there at the end of the lane.
    pub to: Option<DateTime<Utc>>,
    /// The tooltip.
    pub title: String,
}

/// What a mark stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkKind {
    /// Picked or shipped.
    Sale,
    /// A customer return.
    Return,
    /// Sent or received on a transfer.
    Transfer,
}

impl MarkKind {
    fn class(self) -> &'static str {
        match self {
            MarkKind::Sale => "sale",
            MarkKind::Return => "return",
            MarkKind::Transfer => "transfer",
        }
    }

    fn of(event_type: &str) -> Option<MarkKind> {
        match event_type {
            "picked" | "shipped" => Some(MarkKind::Sale),
            "customer_return" | "vendor_return" => Some(MarkKind::Return),
            "transfer_sent" | "transfer_received" => Some(MarkKind::Transfer),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
/// An event drawn on a row.
pub struct Mark {
    /// The location row.
    pub row: usize,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What it was.
    pub kind: MarkKind,
    /// The tooltip.
    pub title: String,
}

/// The lane's content: its rows (location names), stays and marks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lane {
    /// The location names, one row each.
    pub rows: Vec<String>,
    /// The stays, as bars.
    pub stays: Vec<Stay>,
    /// The sales, returns and transfers, as marks.
    pub marks: Vec<Mark>,
}

fn location(e: &Entry) -> Option<String> {
    e.event.location_name.clone().or_else(|| e.event.location_id.clone())
}

/// Stays and marks of the current events. An undated event takes the time of the event before
/// it (the timeline already placed it after its document's earlier steps).
pub fn lane(h: &History) -> Lane {
    let mut lane = Lane::default();
    let row_of = |lane: &mut Lane, name: String| match lane.rows.iter().position(|r| *r == name) {
        Some(i) => i,
        None => {
            lane.rows.push(name);
            lane.rows.len() - 1
        }
    };
    let mut open: Option<(usize, DateTime<Utc>, String)> = None;
    let mut last_time: Option<DateTime<Utc>> = None;
    let mut last_row: Option<usize> = None;
    for e in h.events.iter().filter(|e| !e.retracted) {
        let Some(at) = e.event.occurred_at.or(last_time) else { continue };
        last_time = Some(at);
        let doc = crate::timeline::doc_label(&e.event);
        let here = location(e).map(|l| row_of(&mut lane, l));
        let delta = e.event.quantity_delta;
        // Out of stock ends the stay; so does coming in again (the history missed the way out).
        if delta != 0
            && let Some((row, from, title)) = open.take()
        {
            lane.stays.push(Stay { row, from, to: Some(at), title });
        }
        if delta > 0
            && let Some(row) = here
        {
            let place = crate::timeline::place_label(&e.event);
            open = Some((
                row,
                at,
                format!("{place}: from {} ({} on {doc})", super::layout::local_text(at), e.event.event_type),
            ));
        }
        if let Some(kind) = MarkKind::of(&e.event.event_type)
            && let Some(row) = here.or(last_row)
        {
            lane.marks.push(Mark {
                row,
                at,
                kind,
                title: format!("{} on {doc}, {}", e.event.event_type, super::layout::local_text(at)),
            });
        }
        last_row = here.or(last_row);
    }
    if let Some((row, from, title)) = open {
        lane.stays.push(Stay { row, from, to: None, title });
    }
    lane
}

/// The lane as SVG. A stay that goes on runs to the right edge, its title saying it was still
/// there at `end` (now, or the end of the date asked about).
pub fn svg(h: &History, end: DateTime<Utc>) -> Markup {
    let mut lane = lane(h);
    for s in lane.stays.iter_mut().filter(|s| s.to.is_none()) {
        s.title = format!("{}, still there at {}", s.title, super::layout::local_text(end));
    }
    if lane.rows.is_empty() {
        return html! { p.muted { "No stock movement with a location is recorded, so there is no lane to draw." } };
    }
    let times = lane.stays.iter().map(|s| s.from).chain(lane.stays.iter().filter_map(|s| s.to));
    let times = times.chain(lane.marks.iter().map(|m| m.at));
    let start = times.clone().min().unwrap_or(end);
    let last = times.max().unwrap_or(end);
    // The axis spans the events, with room on both sides (at least a day in all), so that a
    // stay that goes on runs to the right edge instead of squeezing the history into a corner.
    let span = (last - start).max(chrono::Duration::days(1));
    let pad = (span / 12).max(chrono::Duration::hours(12));
    let (t0, t1) = (start - pad, last + pad);
    let plot = WIDTH - LABEL - 10.0;
    let x = |t: DateTime<Utc>| LABEL + plot * ((t - t0).num_seconds() as f64 / (t1 - t0).num_seconds().max(1) as f64);
    let height = TOP + ROW * lane.rows.len() as f64 + AXIS;
    let axis_y = TOP + ROW * lane.rows.len() as f64;
    let ticks: Vec<DateTime<Utc>> = (0..=4).map(|i| t0 + (t1 - t0) * i / 4).collect();
    // One shape per row and pixel column: a long history would otherwise draw thousands of
    // shapes on top of each other (and make a page of megabytes). Of stays starting in the same
    // column the longest is kept; of marks of one kind, the first.
    let mut widest: HashMap<(usize, i64), usize> = HashMap::new();
    for (i, s) in lane.stays.iter().enumerate() {
        let end_of = |s: &Stay| x(s.to.unwrap_or(t1));
        widest
            .entry((s.row, x(s.from) as i64))
            .and_modify(|k| {
                if end_of(s) > end_of(&lane.stays[*k]) {
                    *k = i;
                }
            })
            .or_insert(i);
    }
    let mut keep: Vec<usize> = widest.into_values().collect();
    keep.sort_unstable();
    let stays: Vec<&Stay> = keep.into_iter().map(|i| &lane.stays[i]).collect();
    let mut seen = HashSet::new();
    let marks: Vec<&Mark> = lane.marks.iter().filter(|m| seen.insert((m.row, x(m.at) as i64, m.kind))).collect();
    let merged = (lane.stays.len() - stays.len()) + (lane.marks.len() - marks.len());
    html! {
        svg.lane xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {WIDTH} {height}")) role="img"
            aria-label=(format!("Where {} was over time: {} locations", h.serial, lane.rows.len())) {
            @for (i, name) in lane.rows.iter().enumerate() {
                @let y = TOP + ROW * i as f64;
                line.grid x1="0" x2=(WIDTH) y1=(y + ROW) y2=(y + ROW) {}
                text x="4" y=(y + ROW / 2.0 + 4.0) { (short(name, 26)) title { (name) } }
            }
            @for (i, t) in ticks.iter().enumerate() {
                @let anchor = match i { 0 => "start", 4 => "end", _ => "middle" };
                line.grid x1=(fmt(x(*t))) x2=(fmt(x(*t))) y1=(TOP) y2=(axis_y) {}
                text x=(fmt(x(*t))) y=(axis_y + 16.0) text-anchor=(anchor) { (crate::output::short_day(*t)) }
            }
            @for s in &stays {
                @let y = TOP + ROW * s.row as f64 + 7.0;
                @let x1 = x(s.from);
                @let x2 = x(s.to.unwrap_or(t1)).max(x1 + 2.0);
                rect class=(if s.to.is_none() { "stay now" } else { "stay" }) x=(fmt(x1)) y=(y) width=(fmt(x2 - x1)) height=(ROW - 14.0) rx="3" {
                    title { (s.title) }
                }
            }
            @for m in &marks {
                @let cx = x(m.at);
                @let cy = TOP + ROW * m.row as f64 + ROW / 2.0;
                path class=(format!("mark {}", m.kind.class())) d=(marker(m.kind, cx, cy)) {
                    title { (m.title) }
                }
            }
        }
        @if merged > 0 {
            p.muted.merged { (merged) " stays and marks too close together to tell apart are drawn as one; the CSV and JSON downloads list every event." }
        }
        p.legend.muted {
            span { i style="background:#7aa7e8" {} "stay" }
            span { i style="background:#2e7d4f" {} "current stay" }
            span { i style="background:#d9480f" {} "sale (picked, shipped)" }
            span { i style="background:#0c8599" {} "return" }
            span { i style="background:#6741d9" {} "transfer" }
        }
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

/// A down triangle for a sale, an up one for a return, a diamond for a transfer.
fn marker(kind: MarkKind, x: f64, y: f64) -> String {
    let r = 6.0;
    match kind {
        MarkKind::Sale => format!("M{:.1} {:.1}L{:.1} {:.1}L{:.1} {:.1}Z", x - r, y - r, x + r, y - r, x, y + r),
        MarkKind::Return => format!("M{:.1} {:.1}L{:.1} {:.1}L{:.1} {:.1}Z", x - r, y + r, x + r, y + r, x, y - r),
        MarkKind::Transfer => {
            format!("M{:.1} {:.1}L{:.1} {:.1}L{:.1} {:.1}L{:.1} {:.1}Z", x, y - r, x + r, y, x, y + r, x - r, y)
        }
    }
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { format!("{}…", s.chars().take(n - 1).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::query::EventRow;

    fn ev(id: i64, doc: &str, event_type: &str, day: u32, delta: i16, location: Option<&str>) -> EventRow {
        EventRow {
            event_id: id,
            company_id: "c".into(),
            serial: "SN-1".into(),
            product_id: Some("p1".into()),
            product_name: Some("Laptop".into()),
            product_sku: None,
            doc_type: "x".into(),
            doc_id: doc.into(),
            doc_number: Some(doc.into()),
            party_id: None,
            party_name: None,
            line_collection: "lines".into(),
            line_id: format!("l{id}"),
            event_type: event_type.into(),
            occurred_at: Some(format!("2025-06-{day:02}T10:00:00Z").parse().unwrap()),
            location_id: location.map(|l| format!("id-{l}")),
            location_name: location.map(str::to_string),
            sublocation: None,
            quantity_delta: delta,
            doc_status: None,
            observed_at: Utc::now(),
            run_id: 1,
            retracted_at: None,
            retracted_run_id: None,
            status_after: None,
        }
    }

    #[test]
    fn stays_follow_movements_and_marks_name_sales_returns_and_transfers() {
        let rows = vec![
            ev(1, "PO-1", "received", 1, 1, Some("Main")),
            ev(2, "ST-1", "transfer_sent", 3, -1, Some("Main")),
            ev(3, "ST-1", "transfer_received", 4, 1, Some("Store <b>")),
            ev(4, "SO-1", "picked", 6, -1, Some("Store <b>")),
            ev(5, "SO-1", "shipped", 6, 0, None),
            ev(6, "SO-1", "customer_return", 9, 0, None),
            ev(7, "SO-1", "restocked", 9, 1, Some("Main")),
        ];
        let h = &crate::timeline::histories(rows)[0];
        let l = lane(h);
        assert_eq!(l.rows, ["Main", "Store <b>"]);
        let stays: Vec<(usize, u32, Option<u32>)> = l
            .stays
            .iter()
            .map(|s| (s.row, chrono::Datelike::day(&s.from), s.to.map(|t| chrono::Datelike::day(&t))))
            .collect();
        assert_eq!(stays, [(0, 1, Some(3)), (1, 4, Some(6)), (0, 9, None)]);
        let marks: Vec<(usize, MarkKind)> = l.marks.iter().map(|m| (m.row, m.kind)).collect();
        // The shipment and the return have no location: marked on the last row the serial was on.
        assert_eq!(
            marks,
            [
                (0, MarkKind::Transfer),
                (1, MarkKind::Transfer),
                (1, MarkKind::Sale),
                (1, MarkKind::Sale),
                (1, MarkKind::Return)
            ]
        );
        let svg = svg(h, "2025-06-30T00:00:00Z".parse().unwrap()).into_string();
        assert_eq!(svg.matches("<rect class=\"stay").count(), 3);
        assert_eq!(svg.matches("class=\"stay now\"").count(), 1);
        assert!(svg.contains("Store &lt;b&gt;") && !svg.contains("Store <b>"), "names are escaped");
    }

    #[test]
    fn no_located_movement_draws_no_lane() {
        let h = &crate::timeline::histories(vec![ev(1, "SO-1", "quoted", 1, 0, None)])[0];
        assert!(lane(h).rows.is_empty());
        assert!(svg(h, Utc::now()).into_string().contains("no lane"));
    }
}
