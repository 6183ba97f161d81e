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
    /// The server does not sort by the date (why): the shortcut is abandoned, and the sort
    /// recorded as ignored.
    OutOfOrder(String),
    /// The server refused the sort with a 400 (why): abandoned, recorded as refused.
    Refused(String),
    /// The walk cannot go on for this run only (why): the list changed between two pages (the
    /// overlapping row is not the one seen last), or the sort failed with a persisting 5xx.
    /// Abandoned for a full walk; nothing is recorded about the sort.
    Unsettled(String),
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
    /// Rows consumed so far (the next page asks for one row less, to overlap).
    skip: u64,
    /// The id of the last row read: the first row of the next page must be it again, or rows
    /// shifted (a document on a page read was deleted or re-dated) and one would be skipped.
    last_id: Option<String>,
    /// The ids of the page before: the same page again means the server ignores `skip`.
    previous_ids: Vec<Option<String>>,
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
            last_id: None,
            previous_ids: Vec::new(),
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

    /// The `skip` of the next request: one row back once a row was read, as the skip-mode
    /// [`super::walk::Walk`] does, to check that it is still the row seen last.
    fn offset(&self) -> u64 {
        if self.last_id.is_some() { self.skip.saturating_sub(1) } else { self.skip }
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
        q.push(("skip", self.offset().to_string()));
        q
    }

    /// Fetches and checks the next page. A 400 refuses the sort; a persisting 5xx may be a
    /// passing fault: either way the full walk, which does not send the sort, takes over.
    pub async fn next_page(&mut self) -> Result<Newest, ClientError> {
        let what = format!("GET {} (newest first by {}, skip={})", self.spec.path, self.date_field, self.offset());
        match self.client.get_array(self.spec.path, &self.query(), &what).await {
            Ok(page) => Ok(self.advance(page)),
            Err(ClientError::Rejected { status: 400, body, .. }) => {
                Ok(Newest::Refused(format!("{what} answered HTTP 400 ({body})")))
            }
            Err(ClientError::GaveUp { status: Some(s), attempts, .. }) if s >= 500 => {
                Ok(Newest::Unsettled(format!("{what} answered HTTP {s} on {attempts} attempts")))
            }
            Err(e) => Err(e),
        }
    }

    fn advance(&mut self, page: ArrayPage) -> Newest {
        let ArrayPage { items, list_count, .. } = page;
        let fetched = items.len() as u64;
        let offset = self.offset();
        let ids: Vec<Option<String>> = items.iter().map(|item| id_of(item, self.spec.id_field)).collect();
        // The overlapping row must be the one read last (checked below, after the order).
        let matched = self.last_id.is_some() && ids.first().is_some_and(|first| *first == self.last_id);
        if fetched > 0 && ids == self.previous_ids {
            return Newest::OutOfOrder(format!(
                "the page at skip={offset} repeated the page before: the server ignores `skip` with this sort"
            ));
        }
        let shifted = self.last_id.is_some() && !matched;
        // A row read before where the last one should be: rows moved down (an insert above).
        if shifted && ids.first().is_some_and(|id| id.as_ref().is_some_and(|id| self.seen.contains(id))) {
            return self.changed(offset);
        }
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
                    offset,
                    self.date_field,
                    show(*date),
                    show(before)
                ));
            }
            previous = Some(*date);
        }
        // Only the first page can start before the window with no earlier page to compare it
        // with: what is stored is its check.
        if offset == 0
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
        // In order, but not starting with the row read last: rows moved up (a document read was
        // deleted or re-dated older), and one would be skipped without a trace.
        if shifted {
            return self.changed(offset);
        }
        // The proof: a page whose first new row (after the overlapping one, which ties it to the
        // page before) is before the window. A page that merely reaches past its start proves
        // nothing against a server that sorts each page but not the pages. An undated document
        // proves nothing either: a server may sort them first.
        let passed = dates.get(usize::from(matched)).is_some_and(|d| d.is_some_and(|d| d < self.from));
        let last_id = ids.last().cloned().flatten();
        let ids_kept = ids.clone();
        let new_rows = fetched - u64::from(matched);
        let fresh: Vec<Box<RawValue>> = items
            .into_iter()
            .zip(ids)
            .skip(usize::from(matched))
            .filter(|(_, id)| id.as_ref().is_none_or(|id| self.seen.insert(id.clone())))
            .map(|(item, _)| item)
            .collect();
        if new_rows > 0 && fresh.is_empty() && !passed {
            return Newest::OutOfOrder(format!(
                "the page at skip={offset} repeated documents already returned: the server ignores `skip` with this sort"
            ));
        }
        self.oldest = previous;
        if fetched > 0 {
            self.skip = offset + fetched;
            self.last_id = last_id;
        }
        self.previous_ids = ids_kept;
        // A short page ends the list only when the count shows it (a page cap is not an end): a
        // count no more than the page holds, whatever it counts, or than the rows returned so
        // far when it is known to count them all (one counting what remains would end early).
        let total = self.meaning == CountMeaning::Total;
        let ended = new_rows == 0
            || (fetched < PAGE_SIZE as u64 && list_count.is_some_and(|c| c <= fetched || (total && c <= self.skip)));
        Newest::Page { items: fresh, last: passed || ended }
    }
}

impl NewestFirst<'_> {
    fn changed(&self, offset: u64) -> Newest {
        Newest::Unsettled(format!(
            "the list changed during the walk: the page at skip={offset} by {} does not start with document {}, \
             the last one read (a document already read was deleted, re-dated or added)",
            self.date_field,
            self.last_id.as_deref().unwrap_or_default()
        ))
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
        // One row back: the next page starts with the row read last.
        assert_eq!(w.query().last(), Some(&("skip", "99".to_string())));
        // Equal dates across pages are in order; a page reaching past the window's start does
        // not end the walk, the next one, starting before it, does.
        let overlap = ("a99", Some("2026-04-20T10:00:00+02:00"));
        let second = page(&[overlap, ("b1", Some("2026-04-20T10:00:00+02:00")), ("b2", Some("2026-02-27"))], Some(500));
        let Newest::Page { items, last } = w.advance(second) else { panic!("in order") };
        assert_eq!((items.len(), last), (2, false), "the overlapping row is not returned twice");
        assert_eq!(w.query().last(), Some(&("skip", "101".to_string())));
        let proof =
            page(&[("b2", Some("2026-02-27")), ("c1", Some("2026-02-27")), ("c2", Some("2026-02-26"))], Some(500));
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
        // The overlapping row is dropped; 3 of 3 returned.
        let next = page(&[("b", Some("2026-04-04")), ("c", Some("2026-04-03"))], Some(3));
        let Newest::Page { items, last } = w.advance(next) else { panic!("in order") };
        assert_eq!((items.len(), last), (1, true), "3 of 3 returned");
        // Only the overlapping row: nothing new, the end.
        let mut w = walk(&client);
        let _ = w.advance(page(&as_refs(&full("a", 20)), None));
        assert!(matches!(w.advance(page(&[("a99", Some("2026-04-20"))], None)), Newest::Page { last: true, .. }));
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
        // Each page after the first starts one row back, with the row read last.
        for (from, remaining) in [(0, 100), (29, 71), (58, 42)] {
            let Newest::Page { last, .. } = w.advance(page(&as_refs(&docs(from, from + 30)), Some(remaining))) else {
                panic!("in order")
            };
            assert!(!last, "{remaining} remain from skip={from}: not the end");
        }
        let Newest::Page { last, .. } = w.advance(page(&as_refs(&docs(87, 100)), Some(13))) else { panic!("in order") };
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

    #[test]
    fn a_list_that_changed_between_two_pages_is_unsettled_not_out_of_order() {
        let client = client();
        // A document of the first page deleted (or re-dated older) before the second: every
        // row moves up one place, and the second page starts after the row read last.
        let mut w = walk(&client);
        let first = full("a", 20);
        let _ = w.advance(page(&as_refs(&first), Some(300)));
        let moved_up = page(&as_refs(&full("b", 19)), Some(299));
        assert!(
            matches!(w.advance(moved_up), Newest::Unsettled(why) if why.contains("changed") && why.contains("a99")),
            "a shift up would skip one document"
        );
        // A document inserted above: the row before the last one read comes first.
        let mut w = walk(&client);
        let _ =
            w.advance(page(&[("a", Some("2026-04-05")), ("b", Some("2026-04-04")), ("c", Some("2026-04-03"))], None));
        let moved_down = page(&[("b", Some("2026-04-04")), ("c", Some("2026-04-03")), ("d", Some("2026-04-02"))], None);
        assert!(matches!(w.advance(moved_down), Newest::Unsettled(why) if why.contains("changed")));
        // An empty page where the row read last should be: it went away.
        let mut w = walk(&client);
        let _ = w.advance(page(&as_refs(&first), None));
        assert!(matches!(w.advance(page(&[], None)), Newest::Unsettled(_)));
    }

    #[test]
    fn a_page_whose_first_new_row_is_before_the_window_is_the_proof() {
        let client = client();
        let mut w = walk(&client);
        let _ = w.advance(page(&as_refs(&full("a", 20)), Some(300)));
        // The overlapping row is in the window, the next one not: nothing newer is left.
        let next = page(&[("a99", Some("2026-04-20T10:00:00+02:00")), ("b", Some("2026-02-27"))], Some(300));
        assert!(matches!(w.advance(next), Newest::Page { last: true, .. }));
    }
}
