//! Walking a list endpoint page by page.
//!
//! The walk is a keyset on the primary key (`sort=<entity>Id&after=<last id>&count=100`), which
//! stays correct while documents change: an edit or insert elsewhere cannot shift rows between
//! pages the way `skip` paging does. A short page ends the walk, so N documents cost
//! ceil(N/100) requests, plus one only when N is a multiple of 100. A server that rejects the
//! keyset parameters gets plain `skip` paging instead, with a warning, and the pages are
//! de-duplicated by id.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::client::{Client, ClientError};

/// inFlow's maximum page size.
pub const PAGE_SIZE: usize = 100;

/// Where a walk stands: what the next request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// Keyset paging; `None` is the first page.
    After(Option<String>),
    /// `skip` paging, after the server refused the keyset parameters.
    Skip(u64),
}

impl Position {
    pub const START: Position = Position::After(None);

    /// The stored form: `after:<id>`, `skip:<n>`, or empty at the start.
    pub fn encode(&self) -> String {
        match self {
            Position::After(None) => String::new(),
            Position::After(Some(id)) => format!("after:{id}"),
            Position::Skip(n) => format!("skip:{n}"),
        }
    }

    pub fn decode(s: &str) -> Position {
        if let Some(id) = s.strip_prefix("after:") {
            Position::After(Some(id.to_string()))
        } else if let Some(n) = s.strip_prefix("skip:").and_then(|n| n.parse().ok()) {
            Position::Skip(n)
        } else {
            Position::START
        }
    }

    pub fn paging(&self) -> &'static str {
        match self {
            Position::After(_) => "keyset",
            Position::Skip(_) => "skip",
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::After(None) => f.write_str("first page"),
            Position::After(Some(id)) => write!(f, "page after {id}"),
            Position::Skip(n) => write!(f, "page at skip={n}"),
        }
    }
}

/// A list endpoint and what to ask it for.
#[derive(Debug, Clone)]
pub struct ListSpec {
    /// Path under the company: `sales-orders`.
    pub path: &'static str,
    /// The primary-key property: `salesOrderId`.
    pub id_field: &'static str,
    pub include: Option<&'static str>,
    /// A smaller `include` for a server that refuses `include` (what is left out is fetched
    /// some other way by the caller, see [`Walk::include_fell_back`]).
    pub fallback_include: Option<&'static str>,
    /// `filter[...]` pairs and the like, sent with every page.
    pub filters: Vec<(&'static str, String)>,
}

/// One page of a walk.
#[derive(Debug)]
pub struct Page {
    /// The documents of the page not already seen in this walk, raw.
    pub items: Vec<Box<RawValue>>,
    /// Where the walk continues.
    pub next: Position,
    /// The walk is complete after this page.
    pub last: bool,
}

/// A walk over one list endpoint.
pub struct Walk<'c> {
    client: &'c Client,
    spec: ListSpec,
    position: Position,
    /// Ids seen in `skip` mode, where pages can overlap while data changes.
    seen: HashSet<String>,
    /// The ids of the last `skip` page: the same full page again means the server ignores `skip`.
    last_ids: Vec<Option<String>>,
    /// Asking for `fallback_include` instead of `include`.
    include_fell_back: bool,
    /// The fallback was tried with the current paging (it is tried once per paging mode).
    fallback_tried: bool,
    /// The fallback has been reported.
    fallback_warned: bool,
}

impl<'c> Walk<'c> {
    pub fn new(client: &'c Client, spec: ListSpec, position: Position) -> Walk<'c> {
        Walk {
            client,
            spec,
            position,
            seen: HashSet::new(),
            last_ids: Vec::new(),
            include_fell_back: false,
            fallback_tried: false,
            fallback_warned: false,
        }
    }

    /// The pages come with `fallback_include`: the server refused the full `include`.
    pub fn include_fell_back(&self) -> bool {
        self.include_fell_back
    }

    pub fn position(&self) -> &Position {
        &self.position
    }

    /// Fetches the next page. Returns the page and advances; the caller saves `page.next` with
    /// the page's data so a restart continues from there.
    pub async fn next_page(&mut self) -> Result<Page, ClientError> {
        loop {
            let query = self.query();
            let what = format!("GET {} ({})", self.spec.path, self.position);
            match self.client.get_array(self.spec.path, &query, &what).await {
                Ok(page) => {
                    if self.include_fell_back && !self.fallback_warned {
                        self.fallback_warned = true;
                        tracing::warn!(
                            "{}: the server refused include={}; asking for include={} and fetching the rest by id",
                            self.spec.path,
                            self.spec.include.unwrap_or_default(),
                            self.spec.fallback_include.unwrap_or_default()
                        );
                    }
                    return self.advance(page.items).ok_or(ClientError::Stuck { what });
                }
                // The include may be what the server refuses: try the smaller one first.
                Err(ClientError::Rejected { status: 400, body, .. })
                    if self.spec.fallback_include.is_some() && !self.fallback_tried =>
                {
                    tracing::debug!("{}: {what} refused ({body}); trying the smaller include", self.spec.path);
                    self.include_fell_back = true;
                    self.fallback_tried = true;
                }
                Err(ClientError::Rejected { status: 400, body, .. }) if matches!(self.position, Position::After(_)) => {
                    tracing::warn!(
                        "{}: the server rejected keyset paging ({body}); falling back to skip paging, de-duplicated by id",
                        self.spec.path
                    );
                    self.position = Position::Skip(0);
                    // It was the paging, perhaps not the include: ask for everything again.
                    self.include_fell_back = false;
                    self.fallback_tried = false;
                }
                Err(err) => return Err(err),
            }
        }
    }

    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = vec![("count", PAGE_SIZE.to_string())];
        let include = if self.include_fell_back { self.spec.fallback_include } else { self.spec.include };
        if let Some(include) = include {
            q.push(("include", include.to_string()));
        }
        q.extend(self.spec.filters.iter().cloned());
        match &self.position {
            Position::After(after) => {
                q.push(("sort", self.spec.id_field.to_string()));
                if let Some(id) = after {
                    q.push(("after", id.clone()));
                }
            }
            Position::Skip(n) => q.push(("skip", n.to_string())),
        }
        q
    }

    /// The page and where the walk goes next; `None` when a full page does not move the walk on
    /// (a server that ignores `after` or `skip` would otherwise be asked for the same page forever).
    fn advance(&mut self, items: Vec<Box<RawValue>>) -> Option<Page> {
        let fetched = items.len();
        let last = fetched < PAGE_SIZE;
        let (items, next) = match &self.position {
            Position::After(prev) => {
                let last_id = items.iter().rev().find_map(|item| id_of(item, self.spec.id_field));
                let next = Position::After(last_id.or_else(|| prev.clone()));
                if !last && next == self.position {
                    return None;
                }
                (items, next)
            }
            Position::Skip(n) => {
                let ids: Vec<Option<String>> = items.iter().map(|item| id_of(item, self.spec.id_field)).collect();
                // A page of documents all seen before can be legitimate (data shifted under the
                // cursor); the very same page twice is not.
                if !last && ids == self.last_ids {
                    return None;
                }
                let fresh = items
                    .into_iter()
                    .zip(&ids)
                    .filter(|(_, id)| id.as_ref().is_none_or(|id| self.seen.insert(id.clone())))
                    .map(|(item, _)| item)
                    .collect();
                self.last_ids = ids;
                (fresh, Position::Skip(n + fetched as u64))
            }
        };
        self.position = next.clone();
        Some(Page { items, next, last })
    }
}

/// Reads one string property of a JSON object without building the rest of it.
pub fn id_of(item: &RawValue, field: &str) -> Option<String> {
    let mut de = serde_json::Deserializer::from_str(item.get());
    FieldSeed(field).deserialize(&mut de).ok().flatten()
}

struct FieldSeed<'f>(&'f str);

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = Option<String>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == self.0 && found.is_none() {
                found = match map.next_value::<serde_json::Value>()? {
                    serde_json::Value::String(s) => Some(s),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                };
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_their_stored_form() {
        for p in [Position::START, Position::After(Some("abc-1".into())), Position::Skip(300)] {
            assert_eq!(Position::decode(&p.encode()), p);
        }
        assert_eq!(Position::decode("garbage"), Position::START);
    }

    fn page(ids: impl Iterator<Item = Option<String>>) -> Vec<Box<RawValue>> {
        ids.map(|id| {
            let doc = match id {
                Some(id) => serde_json::json!({ "salesOrderId": id }),
                None => serde_json::json!({ "orderNumber": "SO-1" }),
            };
            RawValue::from_string(doc.to_string()).unwrap()
        })
        .collect()
    }

    fn walk(client: &Client, position: Position) -> Walk<'_> {
        let spec = ListSpec {
            path: "sales-orders",
            id_field: "salesOrderId",
            include: None,
            fallback_include: None,
            filters: Vec::new(),
        };
        Walk::new(client, spec, position)
    }

    fn client() -> Client {
        Client::new(super::super::ClientConfig::new("http://127.0.0.1:9", "c", super::super::ApiKey::new("k"))).unwrap()
    }

    #[test]
    fn a_keyset_page_moves_on_to_its_last_document_that_has_an_id() {
        let client = client();
        let mut w = walk(&client, Position::START);
        let mut items = page((0..99).map(|i| Some(format!("id-{i:03}"))));
        items.extend(page(std::iter::once(None)));
        let p = w.advance(items).expect("moves on");
        assert_eq!(p.next, Position::After(Some("id-098".into())));
        assert!(!p.last);
        let p = w.advance(page((0..3).map(|i| Some(format!("z-{i}"))))).expect("short page");
        assert!(p.last);
        assert_eq!(p.next, Position::After(Some("z-2".into())));
    }

    #[test]
    fn a_full_page_that_does_not_move_the_walk_on_is_refused() {
        let client = client();
        // A server that ignores `after`: the same full page again.
        let same = || page((0..100).map(|i| Some(format!("id-{i:03}"))));
        let mut w = walk(&client, Position::START);
        assert!(w.advance(same()).is_some());
        assert!(w.advance(same()).is_none(), "same page twice");
        // Nothing to move on to: no document has an id.
        let mut w = walk(&client, Position::START);
        assert!(w.advance(page((0..100).map(|_| None))).is_none());
        // Skip paging on a server that ignores `skip`: the same full page again.
        let mut w = walk(&client, Position::Skip(0));
        assert!(w.advance(same()).is_some());
        assert!(w.advance(same()).is_none());
        // A full page of documents seen before, but not the same page, is data that shifted.
        let mut w = walk(&client, Position::Skip(0));
        assert!(w.advance(same()).is_some());
        let shifted = page((1..101).map(|i| Some(format!("id-{:03}", i % 100))));
        assert!(w.advance(shifted).is_some_and(|p| p.items.is_empty() && p.next == Position::Skip(200)));
        // A short page ends the walk whatever it holds.
        assert!(w.advance(page((0..5).map(|i| Some(format!("id-{i:03}"))))).is_some_and(|p| p.last));
    }

    #[test]
    fn ids_are_read_without_parsing_the_whole_document() {
        let raw = RawValue::from_string(r#"{"lines":[{"salesOrderId":"nested"}],"salesOrderId":"abc","x":1}"#.into())
            .unwrap();
        assert_eq!(id_of(&raw, "salesOrderId").as_deref(), Some("abc"));
        assert_eq!(id_of(&raw, "purchaseOrderId"), None);
        let not_object = RawValue::from_string("[1]".into()).unwrap();
        assert_eq!(id_of(&not_object, "salesOrderId"), None);
    }
}
