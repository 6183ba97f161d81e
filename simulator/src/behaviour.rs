//! Switches for the API behaviours the reference cannot rule out (§2 and §10 of
//! `/work/shared/inflow-api/README.md`: open questions 2, 4 and 11). The default is the friendly
//! choice described in `paging.rs`; each switch makes the simulator behave another plausible way,
//! so that the ingest and `audit doctor` can be tested against all of them, alone and combined.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How the simulated API answers where the real one is unknown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Behaviour {
    /// Lists return at most this many items whatever `count` asks (some clients of the real API
    /// use 30 or 50 per page with many includes). `None`: `count` is honoured up to 100.
    pub page_cap: Option<usize>,
    /// Every list request with a `sort` parameter answers this status (an unsortable field that
    /// answers 500 instead of 400). `None`: sorts work (unknown properties are a 400).
    pub sort_status: Option<u16>,
    /// `sort` and `sortDesc` are ignored: lists come in the default order.
    pub ignore_sort: bool,
    /// How a sort on a document's date (`date`, `transferDate`, `orderDate`) is answered
    /// (question 12 of §10): whether inFlow honours it is unknown.
    pub date_sort: DateSort,
    /// What `after`, `before` or `start` naming no existing entity answers.
    pub unknown_cursor: UnknownCursor,
    /// What `X-listCount` counts (with `includeCount=true`).
    pub list_count: ListCount,
    /// What the first number of the rate headers (`N/60`, `N/1000`) is.
    pub rate_headers: RateHeaders,
    /// How entity ids are ordered by the id sort (and the default order).
    pub guid_order: GuidOrder,
    /// Endpoints (`manufacturing-orders`, `stock-counts`, ...) that answer 404 as if the
    /// account or API version had no such feature; whether inFlow does so is unknown.
    pub unavailable: Vec<String>,
}

impl Behaviour {
    pub const DEFAULT: Behaviour = Behaviour {
        page_cap: None,
        sort_status: None,
        ignore_sort: false,
        date_sort: DateSort::Honour,
        unknown_cursor: UnknownCursor::Compare,
        list_count: ListCount::Total,
        rate_headers: RateHeaders::Used,
        guid_order: GuidOrder::Text,
        unavailable: Vec::new(),
    };

    /// Every switch turned away from its default, with the given unknown-cursor answer and
    /// `X-listCount` meaning: the least friendly server the switches make.
    pub fn hostile(unknown_cursor: UnknownCursor, list_count: ListCount) -> Behaviour {
        Behaviour {
            page_cap: Some(30),
            sort_status: Some(500),
            ignore_sort: true,
            date_sort: DateSort::Ignore,
            unknown_cursor,
            list_count,
            rate_headers: RateHeaders::Remaining,
            guid_order: GuidOrder::SqlServer,
            unavailable: Vec::new(),
        }
    }
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour::DEFAULT
    }
}

/// How a sort on a document's date is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DateSort {
    /// Sorted by the date, ascending or descending (the default).
    Honour,
    /// `sort` and `sortDesc` on a date are ignored: the default (id) order.
    Ignore,
    /// Honoured badly: pages are cut from the default order, then each page is sorted by the
    /// date. Every page looks sorted; the pages are not.
    Badly,
    /// Honoured, but documents with the same date come in another order on each request, as a
    /// database may return the ties of a sort that is not unique (SQL Server's `OFFSET` does).
    ShuffledTies,
}

/// The answer to a cursor (`after=<id>`) whose entity does not exist (deleted, say).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UnknownCursor {
    /// The id is compared with the others (with the id sort any id works; with another sort the
    /// entity's key is unknown, so 400): the default.
    Compare,
    /// This status, with a JSON error body.
    Status(u16),
    /// An empty page, as if nothing came after it.
    Empty,
}

/// What `X-listCount` counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ListCount {
    /// Every entity matching the filters, wherever the page is (the default).
    Total,
    /// Only what remains from the page's position: after the cursor and `skip`, this page
    /// included.
    Remaining,
    /// No `X-listCount` header at all.
    Absent,
}

/// What `N` in `x-inflow-api-rate-limit: N/60` and `x-ratelimit-limit: N/1000` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RateHeaders {
    /// Requests used in the window (the default).
    Used,
    /// Requests left in the window.
    Remaining,
}

/// The order of entity ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GuidOrder {
    /// The order of the ids' text (the default).
    Text,
    /// SQL Server's `uniqueidentifier` order (the server behind inFlow sorts so): the last group
    /// of the text first, then the fourth, then the third, second and first, each of those
    /// three read from its last byte (they are stored little-endian).
    SqlServer,
}

impl GuidOrder {
    /// A key whose natural order is this order.
    pub fn key(self, id: Uuid) -> [u8; 16] {
        let b = id.as_bytes();
        match self {
            GuidOrder::Text => *b,
            GuidOrder::SqlServer => {
                // .NET's `SqlGuid` compares its stored bytes in the order 10..=15, 8, 9, 6, 7, 4,
                // 5, 0..=3; stored bytes 0..=7 are the text's first three groups byte-swapped.
                let mut k = [0u8; 16];
                for (to, from) in [10, 11, 12, 13, 14, 15, 8, 9, 7, 6, 5, 4, 3, 2, 1, 0].into_iter().enumerate() {
                    k[to] = b[from];
                }
                k
            }
        }
    }
}

fn bad(what: &str, s: &str, expected: &str) -> String {
    format!("`{s}` is not {what}: expected {expected}")
}

impl FromStr for UnknownCursor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "compare" => Ok(UnknownCursor::Compare),
            "empty" => Ok(UnknownCursor::Empty),
            n => n
                .parse::<u16>()
                .ok()
                .filter(|n| (400..600).contains(n))
                .map(UnknownCursor::Status)
                .ok_or_else(|| bad("an unknown-cursor answer", s, "compare, empty or a status such as 404")),
        }
    }
}

impl fmt::Display for UnknownCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnknownCursor::Compare => f.write_str("compare"),
            UnknownCursor::Empty => f.write_str("empty"),
            UnknownCursor::Status(s) => write!(f, "{s}"),
        }
    }
}

impl FromStr for DateSort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "honour" | "honor" => Ok(DateSort::Honour),
            "ignore" => Ok(DateSort::Ignore),
            "badly" => Ok(DateSort::Badly),
            "shuffled-ties" => Ok(DateSort::ShuffledTies),
            _ => Err(bad("a date-sort answer", s, "honour, ignore, badly or shuffled-ties")),
        }
    }
}

impl FromStr for ListCount {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "total" => Ok(ListCount::Total),
            "remaining" => Ok(ListCount::Remaining),
            "none" | "absent" => Ok(ListCount::Absent),
            _ => Err(bad("an X-listCount meaning", s, "total, remaining or none")),
        }
    }
}

impl FromStr for RateHeaders {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "used" => Ok(RateHeaders::Used),
            "remaining" => Ok(RateHeaders::Remaining),
            _ => Err(bad("a rate-header meaning", s, "used or remaining")),
        }
    }
}

impl FromStr for GuidOrder {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(GuidOrder::Text),
            "sqlserver" | "sql-server" => Ok(GuidOrder::SqlServer),
            _ => Err(bad("a GUID order", s, "text or sqlserver")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_server_orders_guids_by_their_last_group_first() {
        let id = |s: &str| Uuid::parse_str(s).unwrap();
        let low_last = id("ffffffff-ffff-ffff-ffff-000000000001");
        let high_last = id("00000000-0000-0000-0000-000000000002");
        assert!(low_last > high_last, "as text");
        let k = |u| GuidOrder::SqlServer.key(u);
        assert!(k(low_last) < k(high_last), "SQL Server looks at the last group first");
        // Then the fourth group, then the third, second and first.
        let a = id("00000000-0000-0000-0001-000000000000");
        let b = id("00000000-0000-0001-0000-000000000000");
        let c = id("00000000-0001-0000-0000-000000000000");
        let d = id("00000001-0000-0000-0000-000000000000");
        assert!(k(a) > k(b) && k(b) > k(c) && k(c) > k(d));
        // Inside the first group the last byte counts most.
        assert!(k(id("01000000-0000-0000-0000-000000000000")) < k(id("00010000-0000-0000-0000-000000000000")));
        assert!(k(id("10000000-0000-0000-0000-000000000000")) < k(id("00000001-0000-0000-0000-000000000000")));
        assert_eq!(GuidOrder::Text.key(a), *a.as_bytes());
    }

    #[test]
    fn switches_parse_from_their_command_line_words() {
        assert_eq!("404".parse::<UnknownCursor>(), Ok(UnknownCursor::Status(404)));
        assert_eq!("EMPTY".parse::<UnknownCursor>(), Ok(UnknownCursor::Empty));
        assert!("200".parse::<UnknownCursor>().is_err());
        assert_eq!("none".parse::<ListCount>(), Ok(ListCount::Absent));
        assert_eq!("remaining".parse::<RateHeaders>(), Ok(RateHeaders::Remaining));
        assert_eq!("BADLY".parse::<DateSort>(), Ok(DateSort::Badly));
        assert_eq!("shuffled-ties".parse::<DateSort>(), Ok(DateSort::ShuffledTies));
        assert!("sometimes".parse::<DateSort>().is_err());
        assert_eq!("sqlserver".parse::<GuidOrder>(), Ok(GuidOrder::SqlServer));
        assert!("random".parse::<GuidOrder>().is_err());
    }
}
