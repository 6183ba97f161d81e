//! What a first ingest will cost, told before it starts: on a real company it takes hours.
//!
//! One request per list (`count=1&includeCount=true`) asks inFlow how many entities it holds
//! (`X-listCount`); a walk of N needs N/100 + 1 pages. A list whose count the server does not
//! give is named as unknown rather than guessed.

use std::time::Duration;

use crate::inflow::pacer::RateLimits;
use crate::inflow::{Client, ClientError};
use crate::mapping::DocType;
use crate::store::Store;
use crate::sync::IngestOptions;

/// The reference lists a first run walks besides the document streams (the locations are
/// one page on every run).
const REFERENCE_LISTS: [&str; 3] = ["products", "customers", "vendors"];

/// Requests a complete walk of `n` entities needs: full pages, and the page that proves the end.
pub fn walk_cost(n: u64) -> u64 {
    n / 100 + 1
}

/// The probe's answer for one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCost {
    /// The list's path, e.g. `sales-orders`.
    pub path: &'static str,
    /// Entities it holds, when the server said.
    pub entities: Option<u64>,
}

/// What a first run will cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimate {
    /// Each list walked, with its count when known.
    pub lists: Vec<ListCost>,
    /// Requests the probe itself took.
    pub probe_requests: u64,
}

impl Estimate {
    /// Requests of the lists whose count is known, plus the locations' page and the probe.
    pub fn requests(&self) -> u64 {
        let known: u64 = self.lists.iter().filter_map(|l| l.entities).map(walk_cost).sum();
        known + 1 + self.probe_requests
    }

    /// The lists whose count the server did not give.
    pub fn unknown(&self) -> Vec<&'static str> {
        self.lists.iter().filter(|l| l.entities.is_none()).map(|l| l.path).collect()
    }

    /// The message printed before the run.
    pub fn describe(&self, limits: &RateLimits) -> String {
        let requests = self.requests();
        let mut each: Vec<String> =
            self.lists.iter().filter_map(|l| l.entities.map(|n| format!("{} {}", l.path, walk_cost(n)))).collect();
        each.extend(["locations 1".to_string(), format!("this estimate {}", self.probe_requests)]);
        let unknown = self.unknown();
        let (at_least, unknown_note) = if unknown.is_empty() {
            ("about", String::new())
        } else {
            ("at least", format!("; inFlow did not say how many {} there are", unknown.join(", ")))
        };
        format!(
            "first ingest of this company: {at_least} {requests} requests ({}){unknown_note}. \
             At {} requests per minute and {} per hour that takes {at_least} {}. It can be stopped at any time \
             (Ctrl-C): the next run continues where this one stopped.",
            each.join(", "),
            limits.per_minute,
            limits.per_hour,
            describe_duration(time_at_limits(requests, limits)),
        )
    }
}

/// How long `requests` take under both windows: the hour's share at the minute's pace, then
/// a wait for the hour window, and so on.
pub fn time_at_limits(requests: u64, limits: &RateLimits) -> Duration {
    let (per_minute, per_hour) = (u64::from(limits.per_minute.max(1)), u64::from(limits.per_hour.max(1)));
    if requests <= per_minute.min(per_hour) {
        return Duration::ZERO;
    }
    let full_hours = (requests - 1) / per_hour;
    let rest = requests - full_hours * per_hour;
    // The first minute's share goes out at once.
    let minutes = rest.saturating_sub(1) / per_minute;
    limits.hour() * u32::try_from(full_hours).unwrap_or(u32::MAX)
        + limits.minute * u32::try_from(minutes).unwrap_or(u32::MAX)
}

/// `2 h 5 min`, `12 min`, `under a minute`.
pub fn describe_duration(d: Duration) -> String {
    let minutes = d.as_secs().div_ceil(60);
    match (minutes / 60, minutes % 60) {
        (0, 0) => "under a minute".into(),
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// Whether no walk of the run's streams ever completed for the company (a store that cannot
/// tell counts as not first: the estimate is a courtesy, not worth failing over).
pub async fn is_first_run(store: &Store, options: &IngestOptions) -> bool {
    for doc_type in &options.types {
        match store.sync_state(&options.company_id, doc_type.stream()).await {
            Ok(state) if state.last_complete_at.is_none() && state.walk_id.is_none() => {}
            _ => return false,
        }
    }
    true
}

/// Whether the probe is worth its requests: a `--max-requests` budget that could not pay for it
/// twice over is left to the run itself (the probe would spend most or all of it).
pub fn worth_probing(client: &Client, types: &[DocType]) -> bool {
    let lists = (types.len() + REFERENCE_LISTS.len()) as u64;
    client.budget_left().is_none_or(|left| left >= 2 * lists)
}

/// Asks inFlow how many entities each list of the run holds: one request per list. A list the
/// account does not have (404) counts as empty.
pub async fn probe(client: &Client, types: &[DocType]) -> Result<Estimate, ClientError> {
    let before = client.stats().requests();
    let mut lists = Vec::new();
    let paths = types.iter().map(|t| t.stream()).chain(REFERENCE_LISTS);
    for path in paths {
        let query = [("count", "1".to_string()), ("includeCount", "true".to_string())];
        let what = format!("GET {path} (how many there are, for the estimate)");
        let entities = match client.get_array(path, &query, &what).await {
            Ok(page) => page.list_count,
            Err(ClientError::NotFound { .. } | ClientError::Unavailable { .. }) => Some(0),
            Err(e) => return Err(e),
        };
        lists.push(ListCost { path, entities });
    }
    Ok(Estimate { lists, probe_requests: client.stats().requests() - before })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFLOW: RateLimits = RateLimits::INFLOW;

    #[test]
    fn time_follows_both_windows() {
        assert_eq!(time_at_limits(60, &INFLOW), Duration::ZERO);
        assert_eq!(time_at_limits(121, &INFLOW), Duration::from_secs(120));
        // 1000 in the first hour, then the rest from the second hour on.
        assert_eq!(time_at_limits(1000, &INFLOW), Duration::from_secs(16 * 60));
        assert_eq!(time_at_limits(2500, &INFLOW), Duration::from_secs(2 * 3600 + 8 * 60));
        assert_eq!(describe_duration(time_at_limits(2500, &INFLOW)), "2 h 8 min");
        assert_eq!(describe_duration(Duration::from_secs(59)), "1 min");
        assert_eq!(describe_duration(Duration::ZERO), "under a minute");
    }

    #[test]
    fn the_estimate_counts_pages_and_names_what_it_does_not_know() {
        let e = Estimate {
            lists: vec![
                ListCost { path: "sales-orders", entities: Some(25_000) },
                ListCost { path: "stock-counts", entities: None },
                ListCost { path: "products", entities: Some(99) },
            ],
            probe_requests: 3,
        };
        // 251 + 1 pages, the locations' page and the probe.
        assert_eq!(e.requests(), 251 + 1 + 1 + 3);
        let text = e.describe(&INFLOW);
        assert!(
            text.starts_with("first ingest of this company: at least 256 requests (sales-orders 251, products 1"),
            "{text}"
        );
        assert!(text.contains("inFlow did not say how many stock-counts there are"), "{text}");
        assert!(text.contains("At 60 requests per minute and 1000 per hour that takes at least 4 min"), "{text}");
        let known =
            Estimate { lists: vec![ListCost { path: "sales-orders", entities: Some(250_000) }], probe_requests: 1 };
        assert!(known.describe(&INFLOW).contains("about 2503 requests"), "{}", known.describe(&INFLOW));
        assert!(known.describe(&INFLOW).contains("takes about 2 h 8 min"), "{}", known.describe(&INFLOW));
        // A server that gives no count: the lists are named, and no list's gap is left empty.
        let none = Estimate { lists: vec![ListCost { path: "sales-orders", entities: None }], probe_requests: 1 };
        let text = none.describe(&INFLOW);
        assert!(text.contains("at least 2 requests (locations 1, this estimate 1); inFlow did not say"), "{text}");
    }
}
