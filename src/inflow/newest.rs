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
//!
//! Documents of equal dates may come in another order on each request (a database orders the
//! ties of a sort that is not unique as it likes). So the next page starts with all the rows
//! of the last date of the page before, read again whole; and a date's documents are counted:
//! however they were shuffled, the rows a date fills must be as many as the documents seen with
//! it, or one was never returned and the walk gives way to the full walk. A list whose count
//! changes between two pages gives way too: a deletion could balance a document never returned.

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
    /// Rows consumed so far (the next page starts `tail` rows earlier, to overlap).
    skip: u64,
    /// The id of the last row read (named when the list changed).
    last_id: Option<String>,
    /// Rows the next page reads again: those of the last date of the page before (one when the
    /// whole page had that date). The next page must start with that date, or rows shifted (a
    /// document on a page read was deleted or re-dated) and one would be skipped.
    tail: u64,
    /// The date of the last row read.
    tail_date: Option<Option<DateTime<Utc>>>,
    /// Whether the rows read again hold all of that date. When a whole page had it, only the
    /// row read last is read again, and it must come first again, as in a list of unique dates.
    tail_whole: bool,
    /// How many documents the list held by the count of the page before (when it says).
    size: Option<u64>,
    /// The documents of the date being read, and where its rows start.
    group: Option<Group>,
    /// The ids of the page before: the same page again means the server ignores `skip`.
    previous_ids: Vec<Option<String>>,
    /// The `skip` of the page before.
    previous_offset: Option<u64>,
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
            tail: 0,
            tail_date: None,
            tail_whole: false,
            size: None,
            group: None,
            previous_ids: Vec::new(),
            previous_offset: None,
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

    /// The `skip` of the next request: back to the first row of the last date read (see
    /// [`NewestFirst::tail`]).
    fn offset(&self) -> u64 {
        self.skip.saturating_sub(self.tail)
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
        // Rows at the start of the page that were read before.
        let again = usize::try_from(self.skip - offset).unwrap_or(usize::MAX);
        let ids: Vec<Option<String>> = items.iter().map(|item| id_of(item, self.spec.id_field)).collect();
        let dates: Vec<Option<DateTime<Utc>>> = items
            .iter()
            .map(|item| id_of(item, self.date_field).as_deref().and_then(crate::mapping::parse_date))
            .collect();
        // The rows read again must start with the last date read (in any order among them),
        // or with the row read last where they are that row alone.
        let matched = again > 0
            && if self.tail_whole {
                self.tail_date.is_some_and(|tail| dates.first() == Some(&tail))
            } else {
                ids.first().is_some_and(|first| *first == self.last_id)
            };
        // A list that grew or shrank between two pages moved its rows: an insert above can make
        // a page look repeated, and a deletion can hide a document among equal dates.
        let size = match self.meaning {
            CountMeaning::Total => list_count,
            CountMeaning::Remaining => list_count.map(|c| offset + c),
            CountMeaning::Unknown => None,
        };
        if let (Some(before), Some(now)) = (self.size, size)
            && before != now
        {
            return Newest::Unsettled(format!(
                "the list changed during the walk: it held {before} documents, and {now} at skip={offset} \
                 (a document was added, deleted or re-dated)"
            ));
        }
        self.size = size.or(self.size);
        // The same page from a later `skip` (a page of one row is asked for again from where it
        // was: the same answer then only says nothing followed it).
        if fetched > 0 && ids == self.previous_ids && self.previous_offset.is_some_and(|p| p < offset) {
            return Newest::OutOfOrder(format!(
                "the page at skip={offset} repeated the page before: the server ignores `skip` with this sort"
            ));
        }
        let shifted = again > 0 && !matched;
        // After a page all of one date, another document of it where the row read last should
        // be: equal dates in another order, more of them than a page can read again.
        if shifted && !self.tail_whole && self.tail_date.is_some_and(|tail| dates.first() == Some(&tail)) {
            return Newest::Unsettled(format!(
                "the page at skip={offset} by {} does not start with document {}, the last one read, but with \
                 another of its date: documents of equal dates came back in another order, and more of them \
                 than a page holds cannot be shown all read (or the list changed)",
                self.date_field,
                self.last_id.as_deref().unwrap_or_default()
            ));
        }
        // A row read before where the last date should start: rows moved down (an insert above).
        if shifted && ids.first().is_some_and(|id| id.as_ref().is_some_and(|id| self.seen.contains(id))) {
            return self.changed(offset);
        }
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
        // In order, but not starting with the last date read: rows moved up (a document read
        // was deleted or re-dated older), and one would be skipped without a trace.
        if shifted {
            return self.changed(offset);
        }
        // Each date's rows counted as they pass: a date ends where an older one starts.
        for (i, (id, date)) in ids.iter().zip(&dates).enumerate() {
            let at = offset + i as u64;
            match &mut self.group {
                Some(group) if group.date == *date => group.add(id.as_deref(), at),
                _ => {
                    if let Some(why) = self.group.take().and_then(|g| g.incomplete(at, self.date_field)) {
                        return Newest::Unsettled(why);
                    }
                    let mut group = Group { date: *date, start: at, ids: HashSet::new(), unnamed: HashSet::new() };
                    group.add(id.as_deref(), at);
                    self.group = Some(group);
                }
            }
        }
        // The proof: a page whose first new row (after those read again, which tie it to the
        // page before) is before the window. A page that merely reaches past its start proves
        // nothing against a server that sorts each page but not the pages. An undated document
        // proves nothing either: a server may sort them first.
        let passed = dates.get(again).is_some_and(|d| d.is_some_and(|d| d < self.from));
        let new_rows = fetched.saturating_sub(self.skip - offset);
        let last_id = ids.last().cloned().flatten();
        let ids_kept = ids.clone();
        let fresh: Vec<Box<RawValue>> = items
            .into_iter()
            .zip(ids)
            .enumerate()
            .filter(|(i, (_, id))| match id {
                Some(id) => self.seen.insert(id.clone()),
                None => *i >= again,
            })
            .map(|(_, (item, _))| item)
            .collect();
        // New rows all of the date being counted may be its documents again in another order:
        // the count decides (at the date's end), not this check.
        let counted = self.tail_date.is_some_and(|tail| dates.iter().skip(again).all(|d| *d == tail));
        if new_rows > 0 && fresh.is_empty() && !passed && !counted {
            return Newest::OutOfOrder(format!(
                "the page at skip={offset} repeated documents already returned: the server ignores `skip` with this sort"
            ));
        }
        self.oldest = previous;
        if fetched > 0 {
            self.skip = offset + fetched;
            self.last_id = last_id;
            let last = dates.last().copied();
            let same = dates.iter().rev().take_while(|d| Some(**d) == last).count() as u64;
            // A page all of one date cannot be read again whole; its rows are counted instead.
            self.tail_whole = same < fetched;
            self.tail = if self.tail_whole { same } else { 1 };
            self.tail_date = last;
        }
        self.previous_ids = ids_kept;
        self.previous_offset = Some(offset);
        // A short page ends the list only when the count shows it (a page cap is not an end): a
        // count no more than the page holds, whatever it counts, or than the rows returned so
        // far when it is known to count them all (one counting what remains would end early).
        let total = self.meaning == CountMeaning::Total;
        let ended = new_rows == 0
            || (fetched < PAGE_SIZE as u64 && list_count.is_some_and(|c| c <= fetched || (total && c <= self.skip)));
        // The list's last date ends with the list.
        if ended
            && !passed
            && let Some(why) = self.group.take().and_then(|g| g.incomplete(self.skip, self.date_field))
        {
            return Newest::Unsettled(why);
        }
        Newest::Page { items: fresh, last: passed || ended }
    }
}

/// The documents seen with one date, and the first row it filled.
#[derive(Debug)]
struct Group {
    date: Option<DateTime<Utc>>,
    start: u64,
    ids: HashSet<String>,
    /// Rows without an id, by place (each is a document of its own).
    unnamed: HashSet<u64>,
}

impl Group {
    fn add(&mut self, id: Option<&str>, at: u64) {
        match id {
            Some(id) => {
                self.ids.insert(id.to_string());
            }
            None => {
                self.unnamed.insert(at);
            }
        }
    }

    /// Why the rows from `start` to `end` were not all seen: fewer documents than rows (some
    /// came twice and another never), or more (rows moved between two pages).
    fn incomplete(&self, end: u64, field: &str) -> Option<String> {
        let rows = end - self.start;
        let seen = (self.ids.len() + self.unnamed.len()) as u64;
        (seen != rows).then(|| {
            format!(
                "the documents dated {} by {field} fill {rows} rows but {seen} different ones were returned: \
                 documents of equal dates came back in another order on each page, or the list changed, so \
                 the walk cannot prove it read them all",
                show(self.date)
            )
        })
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
        let capped = page(&[("a", Some("2026-04-05")), ("b", Some("2026-04-04"))], Some(3));
        assert!(matches!(w.advance(capped), Newest::Page { last: false, .. }), "a cap, not the end");
        // The overlapping row is dropped; 3 of 3 returned.
        let next = page(&[("b", Some("2026-04-04")), ("c", Some("2026-04-03"))], Some(3));
        let Newest::Page { items, last } = w.advance(next) else { panic!("in order") };
        assert_eq!((items.len(), last), (1, true), "3 of 3 returned");
        // Only the overlapping row: nothing new, the end.
        let mut w = walk(&client);
        let _ = w.advance(page(&as_refs(&full("a", 20)), None));
        assert!(matches!(
            w.advance(page(&[("a99", Some("2026-04-20T10:00:00+02:00"))], None)),
            Newest::Page { last: true, .. }
        ));
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
        // Each page after the first starts back at the first row of the last day read (five
        // documents a day, so the day at a page's end is read again whole).
        let mut froms = Vec::new();
        loop {
            let from = usize::try_from(w.offset()).unwrap();
            froms.push(from);
            let to = (from + 30).min(100);
            let Newest::Page { last, .. } = w.advance(page(&as_refs(&docs(from, to)), Some((100 - from) as u64)))
            else {
                panic!("in order")
            };
            if last {
                assert_eq!(to, 100, "the count is what the page holds");
                break;
            }
            assert!(froms.len() < 10, "{froms:?}");
        }
        assert_eq!(froms, [0, 25, 50, 75], "the last day of each page read again");
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
        let moved_up = page(&as_refs(&full("b", 19)), None);
        assert!(
            matches!(w.advance(moved_up), Newest::Unsettled(why) if why.contains("changed") && why.contains("a99")),
            "a shift up would skip one document"
        );
        // Where the count says so, the list's new size shows it first.
        let mut w = walk(&client);
        let _ = w.advance(page(&as_refs(&first), Some(300)));
        let counted = page(&as_refs(&full("b", 19)), Some(299));
        assert!(
            matches!(w.advance(counted), Newest::Unsettled(why) if why.contains("held 300 documents, and 299")),
            "the count shows the deletion"
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

    /// `n` documents `{prefix}{i}`, one a minute back from `2026-04-20T10:00Z`.
    fn minutes(prefix: &str, n: usize, from: usize) -> Vec<(String, Option<String>)> {
        let start = chrono::DateTime::parse_from_rfc3339("2026-04-20T10:00:00Z").unwrap();
        (from..from + n)
            .map(|i| (format!("{prefix}{i}"), Some((start - chrono::Duration::minutes(i as i64)).to_rfc3339())))
            .collect()
    }

    fn tied(ids: &[&str], date: &str) -> Vec<(String, Option<String>)> {
        ids.iter().map(|id| ((*id).to_string(), Some(date.to_string()))).collect()
    }

    #[test]
    fn the_last_date_of_a_page_is_read_again_whole_in_any_order() {
        let client = client();
        let mut w = walk(&client);
        let noon = "2026-04-01T12:00:00Z";
        // 97 documents, then 3 of 5 sharing a date: the next page starts at the first of them.
        let mut first = minutes("a", 97, 0);
        first.extend(tied(&["x", "y", "z"], noon));
        let Newest::Page { items, last } = w.advance(page(&as_refs(&first), Some(300))) else { panic!("in order") };
        assert_eq!((items.len(), last), (100, false));
        assert_eq!(w.query().last(), Some(&("skip", "97".to_string())));
        // The server orders the five otherwise this time: the two not seen are new, and
        // nothing is missing (5 documents fill the 5 rows).
        let mut second = tied(&["w", "z", "x", "v", "y"], noon);
        second.extend(minutes("b", 95, 100).into_iter().map(|(id, _)| (id, Some("2026-03-30T00:00:00Z".into()))));
        let Newest::Page { items, last } = w.advance(page(&as_refs(&second), Some(300))) else { panic!("complete") };
        assert_eq!((items.len(), last), (97, false), "w, v and the 95 older ones");
    }

    #[test]
    fn a_date_reordered_across_pages_that_hides_a_document_is_caught() {
        let client = client();
        // 150 documents of one date: a page cannot hold them all, so they are counted. The
        // second page starts with g99 (the row read last) as expected, but shows g51 again
        // where g149 should be: 149 documents in 150 rows.
        let noon = "2026-04-01T12:00:00Z";
        let mut w = walk(&client);
        let _ = w.advance(page(&as_refs(&dated(&named("g", 0..100), noon)), Some(300)));
        assert_eq!(w.query().last(), Some(&("skip", "99".to_string())), "one row back");
        let older = |n: usize| -> Vec<(String, Option<String>)> {
            (0..n).map(|i| (format!("o{i}"), Some("2026-03-20T00:00:00Z".to_string()))).collect()
        };
        let mut hiding = tied(&["g99", "g51"], noon);
        hiding.extend(dated(&named("g", 100..149), noon));
        hiding.extend(older(49));
        assert!(
            matches!(w.advance(page(&as_refs(&hiding), Some(300))), Newest::Unsettled(why) if why.contains("149 different")),
            "one row back matched, and a document would be missed without the count"
        );
        // In the same order as before: 150 documents in 150 rows, nothing is missing.
        let mut w = walk(&client);
        let _ = w.advance(page(&as_refs(&dated(&named("g", 0..100), noon)), Some(300)));
        let mut stable = dated(&named("g", 99..150), noon);
        stable.extend(older(49));
        assert!(matches!(w.advance(page(&as_refs(&stable), Some(300))), Newest::Page { last: false, .. }));
    }

    fn dated(ids: &[String], date: &str) -> Vec<(String, Option<String>)> {
        ids.iter().map(|id| (id.clone(), Some(date.to_string()))).collect()
    }

    fn named(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| format!("{prefix}{i}")).collect()
    }

    #[test]
    fn a_deletion_that_balances_a_hidden_document_is_caught_by_the_count() {
        // 10 documents dated C, then 150 dated D across pages, in another order each time.
        let (c, d) = ("2026-04-10T00:00:00Z", "2026-04-05T00:00:00Z");
        let client = client();
        let mut w = walk(&client);
        let mut p1 = dated(&named("c", 0..10), c);
        p1.extend(dated(&named("d", 0..90), d));
        assert!(matches!(w.advance(page(&as_refs(&p1), Some(400))), Newest::Page { last: false, .. }));
        // c3 deleted before the second page: the rows move up one, and a date's count alone would
        // take the deletion for the document that never came back. The list's size shows it.
        let p2 = dated(&named("d", 0..100), d);
        assert!(matches!(w.advance(page(&as_refs(&p2), Some(399))), Newest::Unsettled(why) if why.contains("399")));
    }

    #[test]
    fn one_new_document_above_a_page_of_ties_is_a_change_not_an_ignored_skip() {
        let (c, d) = ("2026-04-10T00:00:00Z", "2026-04-05T00:00:00Z");
        let client = client();
        let mut w = walk(&client);
        let mut p1 = dated(&["c0".to_string()], c);
        p1.extend(dated(&named("d", 0..99), d));
        let _ = w.advance(page(&as_refs(&p1), Some(300)));
        assert_eq!(w.query().last(), Some(&("skip", "1".to_string())), "the 99 of one date read again");
        // A new newest document: the page at skip=1 is the first page again.
        assert!(matches!(w.advance(page(&as_refs(&p1), Some(301))), Newest::Unsettled(_)));
    }

    #[test]
    fn new_rows_that_repeat_documents_of_the_date_being_counted_are_left_to_the_count() {
        // 101 documents of one date and no count: the second page holds documents already seen,
        // in another order, where d100 should be. Not "skip ignored": the count ends it.
        let d = "2026-04-05T00:00:00Z";
        let client = client();
        let mut w = walk(&client);
        let _ = w.advance(page(&as_refs(&dated(&named("d", 0..100), d)), None));
        let again = dated(&["d99".to_string(), "d42".to_string()], d);
        assert!(matches!(w.advance(page(&as_refs(&again), None)), Newest::Page { last: false, .. }));
        // The list's last row, another of them again: the walk cannot show it read all 101.
        let last = dated(&["d7".to_string()], d);
        assert!(matches!(w.advance(page(&as_refs(&last), None)), Newest::Unsettled(_)));
    }

    #[test]
    fn a_list_of_one_document_and_no_count_ends_without_an_alarm() {
        let client = client();
        let mut w = walk(&client);
        let one = [("a", Some("2026-04-05T00:00:00Z"))];
        assert!(matches!(w.advance(page(&one, None)), Newest::Page { last: false, .. }), "no count: not the end yet");
        assert_eq!(w.query().last(), Some(&("skip", "0".to_string())), "one row back is the same row");
        assert!(matches!(w.advance(page(&one, None)), Newest::Page { last: true, ref items } if items.is_empty()));
    }

    #[test]
    fn a_list_ending_with_a_date_missing_a_document_is_caught() {
        let client = client();
        let noon = "2026-04-01T12:00:00Z";
        let mut w = walk(&client);
        let _ = w.advance(page(&as_refs(&dated(&named("g", 0..100), noon)), Some(103)));
        // The last 4 rows (99..102) repeat g3 where g102 should be: the list ends one short.
        let end = tied(&["g99", "g100", "g3", "g101"], noon);
        assert!(
            matches!(w.advance(page(&as_refs(&end), Some(103))), Newest::Unsettled(why) if why.contains("102 different"))
        );
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
