//! Newest-first walks: a `--window` run of a stream inFlow cannot filter by date asks for it
//! sorted by its date, newest first (`sort=<date>&sortDesc=true&skip=<n>`), and stops at the
//! first page that starts before the window: the pages of the window's documents, and one more
//! as the proof.
//!
//! Whether inFlow honours that sort is unknown (§10, question 12), so every page is checked: a
//! date newer than one on an earlier page, or a page not sorted within itself, ends the walk as
//! out of order, and the engine walks the stream in full instead. The walk keeps no position:
//! one stopped midway starts again next time (window walks are short, and every document is
//! written idempotently).

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::value::RawValue;

use super::client::{ArrayPage, Client, ClientError};
use super::walk::{CountMeaning, ListSpec, PAGE_SIZE, id_of};

/// What a newest-first walk returned.
#[derive(Debug)]
pub enum Newest {
    /// A page of documents not returned before; `last` once the window's start was passed or
    /// the list ended.
    Page {
        /// The documents.
        items: Vec<Box<RawValue>>,
        /// Nothing newer than the window's start is left.
        last: bool,
    },
    /// The server does not sort by the date (why): the shortcut is abandoned.
    OutOfOrder(String),
}

/// A walk of one stream, newest first, down to `from`.
pub struct NewestFirst<'c> {
    client: &'c Client,
    spec: ListSpec,
    date_field: &'static str,
    from: DateTime<Utc>,
    /// What `X-listCount` counts: a short page ends the list only when the count proves it.
    meaning: CountMeaning,
    /// The newest date stored for the stream: the first page must not start older.
    stored: Option<DateTime<Utc>>,
    skip: u64,
    /// The oldest date returned so far (`None` inside: a document without a date, sorted last).
    oldest: Option<Option<DateTime<Utc>>>,
    seen: HashSet<String>,
}

impl<'c> NewestFirst<'c> {
    /// A walk of `spec` sorted by `date_field`, newest first, stopping before `from`.
    pub fn new(
        client: &'c Client,
        spec: ListSpec,
        date_field: &'static str,
        from: NaiveDate,
        meaning: CountMeaning,
    ) -> NewestFirst<'c> {
        let from = from.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        NewestFirst {
            client,
            spec,
            date_field,
            from,
            meaning,
            stored: None,
            skip: 0,
            oldest: None,
            seen: HashSet::new(),
        }
    }

    /// The newest date of the stream's stored documents: a first page starting older shows a
    /// server that sorts each page but not the list (a page cut from another order).
    #[must_use]
    pub fn newest_stored(self, stored: Option<DateTime<Utc>>) -> NewestFirst<'c> {
        NewestFirst { stored, ..self }
    }

    /// The query of the next page.
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = vec![("count", PAGE_SIZE.to_string()), ("includeCount", "true".to_string())];
        if let Some(include) = self.spec.include {
            q.push(("include", include.to_string()));
        }
        q.extend(self.spec.filters.iter().cloned());
        q.push(("sort", self.date_field.to_string()));
        q.push(("sortDesc", "true".to_string()));
        q.push(("skip", self.skip.to_string()));
        q
    }

    /// Fetches and checks the next page. A request the server refuses (a 400 for the sort, or a
    /// persisting 5xx) counts as out of order too: the full walk does not need the sort.
    pub async fn next_page(&mut self) -> Result<Newest, ClientError> {
        let what = format!("GET {} (newest first by {}, skip={})", self.spec.path, self.date_field, self.skip);
        match self.client.get_array(self.spec.path, &self.query(), &what).await {
            Ok(page) => Ok(self.advance(page)),
            Err(ClientError::Rejected { status: 400, body, .. }) => {
                Ok(Newest::OutOfOrder(format!("{what} answered HTTP 400 ({body})")))
            }
            // A sort the server fails on: the full walk does not send it.
            Err(ClientError::GaveUp { status: Some(s), attempts, .. }) if s >= 500 => {
                Ok(Newest::OutOfOrder(format!("{what} answered HTTP {s} on {attempts} attempts")))
            }
            Err(e) => Err(e),
        }
    }

    fn advance(&mut self, page: ArrayPage) -> Newest {
        let ArrayPage { items, list_count, .. } = page;
        let fetched = items.len() as u64;
        let dates: Vec<Option<DateTime<Utc>>> = items
            .iter()
            .map(|item| id_of(item, self.date_field).as_deref().and_then(crate::mapping::parse_date))
            .collect();
        let mut previous = self.oldest;
        for (i, date) in dates.iter().enumerate() {
            if let Some(before) = previous
                && newer(*date, before)
            {
                let place = if i == 0 { "its first document".to_string() } else { format!("document {}", i + 1) };
                return Newest::OutOfOrder(format!(
                    "the page at skip={} is not sorted newest first by {}: {place} is dated {} after one dated {}",
                    self.skip,
                    self.date_field,
                    show(*date),
                    show(before)
                ));
            }
            previous = Some(*date);
        }
        // Only the first page can start before the window with no earlier page to compare it
        // with: what is stored is its check.
        if self.skip == 0
            && let (Some(Some(first)), Some(stored)) = (dates.first(), self.stored)
            && *first < stored
        {
            return Newest::OutOfOrder(format!(
                "the first page by {} starts at a document dated {} although one dated {} is stored: \
                 the server does not return the newest first",
                self.date_field,
                first.to_rfc3339(),
                stored.to_rfc3339()
            ));
        }
        // The proof: a page that starts before the window. A page that merely reaches past its
        // start proves nothing against a server that sorts each page but not the pages. An
        // undated first document proves nothing either: a server may sort them first.
        let passed = dates.first().is_some_and(|d| d.is_some_and(|d| d < self.from));
        let ids: Vec<Option<String>> = items.iter().map(|item| id_of(item, self.spec.id_field)).collect();
        let fresh: Vec<Box<RawValue>> = items
            .into_iter()
            .zip(ids)
            .filter(|(_, id)| id.as_ref().is_none_or(|id| self.seen.insert(id.clone())))
            .map(|(item, _)| item)
            .collect();
        if fetched > 0 && fresh.is_empty() && !passed {
            return Newest::OutOfOrder(format!(
                "the page at skip={} repeated documents already returned: the server ignores `skip` with this sort",
                self.skip
            ));
        }
        self.oldest = previous;
        self.skip += fetched;
        // A short page ends the list only when the count shows it (a page cap is not an end): a
        // count no more than the page holds, whatever it counts, or than the rows returned so
        // far when it is known to count them all (one counting what remains would end early).
        let total = self.meaning == CountMeaning::Total;
        let ended = fetched == 0
            || (fetched < PAGE_SIZE as u64 && list_count.is_some_and(|c| c <= fetched || (total && c <= self.skip)));
        Newest::Page { items: fresh, last: passed || ended }
    }
}

/// `a` sorts before `b` in a newest-first order although it should not: newer, or dated after
/// an undated one (undated documents sort last).
fn newer(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a > b,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

fn show(d: Option<DateTime<Utc>>) -> String {
    d.map_or_else(|| "nothing".to_string(), |d| d.to_rfc3339())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client::new(super::super::ClientConfig::new("http://127.0.0.1:9", "c", super::super::ApiKey::new("k"))).unwrap()
    }

    fn walk(client: &Client) -> NewestFirst<'_> {
        let spec = ListSpec {
            path: "stock-adjustments",
            id_field: "stockAdjustmentId",
            include: None,
            fallback_include: None,
            filters: Vec::new(),
        };
        NewestFirst::new(client, spec, "date", NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(), CountMeaning::Total)
    }

    fn page(docs: &[(&str, Option<&str>)], count: Option<u64>) -> ArrayPage {
        let items = docs
            .iter()
            .map(|(id, date)| {
                let doc = serde_json::json!({ "stockAdjustmentId": id, "date": date });
                RawValue::from_string(doc.to_string()).unwrap()
            })
            .collect();
        ArrayPage { items, list_count: count, rate_minute: None, rate_hour: None }
    }

    fn full(prefix: &str, day: u32) -> Vec<(String, Option<String>)> {
        (0..100).map(|i| (format!("{prefix}{i}"), Some(format!("2026-04-{day:02}T10:00:00+02:00")))).collect()
    }

    fn as_refs(v: &[(String, Option<String>)]) -> Vec<(&str, Option<&str>)> {
        v.iter().map(|(a, b)| (a.as_str(), b.as_deref())).collect()
    }

    #[test]
    fn pages_newest_first_end_at_the_first_document_before_the_window() {
        let client = client();
        let mut w = walk(&client);
        assert!(w.query().contains(&("sortDesc", "true".into())) && w.query().contains(&("sort", "date".into())));
        let first = full("a", 20);
        let Newest::Page { items, last } = w.advance(page(&as_refs(&first), Some(500))) else { panic!("in order") };
        assert_eq!((items.len(), last), (100, false));
        assert_eq!(w.query().last(), Some(&("skip", "100".to_string())));
        // Equal dates across pages are in order; a page reaching past the window's start does
        // not end the walk, the next one, starting before it, does.
        let second = page(&[("b1", Some("2026-04-20T10:00:00+02:00")), ("b2", Some("2026-02-27"))], Some(500));
        let Newest::Page { items, last } = w.advance(second) else { panic!("in order") };
        assert_eq!((items.len(), last), (2, false));
        let proof = page(&[("c1", Some("2026-02-27")), ("c2", Some("2026-02-26"))], Some(500));
        let Newest::Page { last, .. } = w.advance(proof) else { panic!("in order") };
        assert!(last);
    }

    #[test]
    fn a_page_out_of_order_within_or_across_pages_is_reported() {
        let client = client();
        let mut w = walk(&client);
        let unsorted = page(&[("a", Some("2026-04-01")), ("b", Some("2026-04-03"))], Some(2));
        assert!(matches!(w.advance(unsorted), Newest::OutOfOrder(why) if why.contains("document 2")));
        let mut w = walk(&client);
        assert!(matches!(w.advance(page(&as_refs(&full("a", 10)), Some(300))), Newest::Page { last: false, .. }));
        let newer = page(&as_refs(&full("b", 12)), Some(300));
        assert!(matches!(w.advance(newer), Newest::OutOfOrder(why) if why.contains("first document")));
        // A dated document after an undated one is out of order too.
        let mut w = walk(&client);
        let after_null = page(&[("a", None), ("b", Some("2026-04-03"))], Some(2));
        assert!(matches!(w.advance(after_null), Newest::OutOfOrder(_)));
    }

    #[test]
    fn a_short_page_ends_only_when_the_count_proves_it_and_repeats_are_dropped() {
        let client = client();
        let mut w = walk(&client);
        let capped = page(&[("a", Some("2026-04-05")), ("b", Some("2026-04-04"))], Some(10));
        assert!(matches!(w.advance(capped), Newest::Page { last: false, .. }), "a cap, not the end");
        // A document inserted at the top shifts the page by one: the repeat is dropped.
        let shifted = page(&[("b", Some("2026-04-04")), ("c", Some("2026-04-03"))], Some(4));
        let Newest::Page { items, last } = w.advance(shifted) else { panic!("in order") };
        assert_eq!((items.len(), last), (1, true), "4 of 4 returned");
        assert!(matches!(w.advance(page(&[], None)), Newest::Page { last: true, .. }));
        // Nothing but repeats: the server ignores `skip`.
        let mut w = walk(&client);
        let same = [("a", Some("2026-04-05")), ("b", Some("2026-04-05"))];
        let _ = w.advance(page(&same, None));
        assert!(matches!(w.advance(page(&same, None)), Newest::OutOfOrder(why) if why.contains("repeated")));
    }

    #[test]
    fn a_capped_page_counted_as_what_remains_does_not_end_the_walk() {
        let client = client();
        let mut w = walk(&client);
        w.meaning = CountMeaning::Remaining;
        // 100 documents in the window, pages capped at 30, each counting what remains from it.
        let docs = |from: usize, to: usize| -> Vec<(String, Option<String>)> {
            (from..to).map(|i| (format!("a{i}"), Some(format!("2026-04-{:02}", 28 - i / 5)))).collect()
        };
        for (from, remaining) in [(0, 100), (30, 70), (60, 40)] {
            let Newest::Page { last, .. } = w.advance(page(&as_refs(&docs(from, from + 30)), Some(remaining))) else {
                panic!("in order")
            };
            assert!(!last, "{remaining} remain from skip={from}: not the end");
        }
        let Newest::Page { last, .. } = w.advance(page(&as_refs(&docs(90, 100)), Some(10))) else { panic!("in order") };
        assert!(last, "the count is what the page holds");
    }

    #[test]
    fn an_undated_first_document_does_not_prove_the_window_passed() {
        let client = client();
        let mut w = walk(&client);
        // A server sorting undated documents first: a page of them proves nothing, and the dated
        // ones after them are out of order (the full walk reads them).
        let undated: Vec<(String, Option<String>)> = (0..100).map(|i| (format!("u{i}"), None)).collect();
        assert!(matches!(w.advance(page(&as_refs(&undated), Some(300))), Newest::Page { last: false, .. }));
        assert!(matches!(w.advance(page(&as_refs(&full("d", 20)), Some(300))), Newest::OutOfOrder(_)));
    }

    #[test]
    fn dates_are_read_as_the_stored_ones_are() {
        // An offsetless time is the time of that day (UTC), as stored: not that day's midnight,
        // which would sort before the stored copy of the same document.
        let client = client();
        let stored = crate::mapping::parse_date("2026-02-20T05:00:00");
        let mut w = walk(&client).newest_stored(stored);
        let same = page(&[("a", Some("2026-02-20T05:00:00")), ("b", Some("2026-02-01"))], Some(300));
        assert!(matches!(w.advance(same), Newest::Page { last: true, .. }));
    }

    #[test]
    fn a_first_page_older_than_what_is_stored_is_out_of_order() {
        let client = client();
        // A server sorting each page cut in id order: the first page, all before the window,
        // would end the walk at once; the newest stored document shows it is not the newest.
        let stored = "2026-02-20T00:00:00Z".parse().ok();
        let mut w = walk(&client).newest_stored(stored);
        let old = page(&[("a", Some("2026-02-10")), ("b", Some("2026-02-01"))], Some(300));
        assert!(matches!(w.advance(old), Newest::OutOfOrder(why) if why.contains("is stored")));
        let mut w = walk(&client).newest_stored(stored);
        let newest = page(&[("a", Some("2026-02-20")), ("b", Some("2026-02-01"))], Some(300));
        assert!(matches!(w.advance(newest), Newest::Page { last: true, .. }), "starts at what is stored");
    }
}
