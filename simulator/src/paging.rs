//! List queries: `count`, `skip`, `after`/`before`/`start`, `sort`, `sortDesc`, `includeCount`,
//! `include` and `filter[...]`, parsed from the decoded query pairs and applied to a table.
//!
//! Choices where the reference says "unknown" (§2, §3, §10):
//! - `count` defaults to 20 (S9's claim); above 100 is a 400 rather than a silent clamp, so a
//!   client that asks for too much notices. `count=0` returns `[]`.
//! - The default sort is the entity id. Every sort is made total by breaking ties on the entity
//!   id (in the same direction), so keysets never skip or repeat rows.
//! - `after`, `before` and `start` are filters on the active sort ("sorted after that entity"):
//!   they compare (sort key, id) with the referenced entity's. With the id sort the id itself is
//!   the key, so a cursor whose entity was deleted mid-scan still works; with another sort the
//!   entity must exist (else 400), since its key cannot be known. `skip` and `count` apply after
//!   them, so `before` returns the first rows sorted before the entity, not the last ones.
//! - `X-listCount` is the number of rows matching the filters, ignoring keyset, `skip` and
//!   `count` ("the total number of entries for these filters").
//! - Text sorts are case-insensitive (SQL Server's default collation); nulls sort first.
//! - Number filters (`orderNumber`, `adjustmentNumber`, `transferNumber`, `poNumber`, ...)
//!   match the whole value, ignoring case; `name`, `description`, `barcode` and `smart` match a
//!   substring, ignoring case. Status filters take one value, repeated `filter[x][]=` values or
//!   a JSON array. Date ranges take `YYYY-MM-DD` (compared with the document's local date,
//!   `toDate` inclusive to the end of that day) or RFC 3339 instants; number ranges use the
//!   same `fromDate`/`toDate` keys, as the docs (oddly) say.
//! - Unknown `filter[...]` names, unknown sort properties and malformed values are 400s with a
//!   JSON body naming the parameter; other unknown query parameters are ignored.
//! - Each of these choices that the real API might make otherwise has a switch in
//!   [`Behaviour`](super::behaviour::Behaviour): a page cap, a 5xx for `sort`, `sort` ignored,
//!   the answer to an unknown cursor, `X-listCount` of what remains (or none), SQL Server's
//!   GUID order.

use std::cmp::Ordering;

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde_json::Value;
use uuid::Uuid;

use super::behaviour::{Behaviour, DateSort, GuidOrder, ListCount, UnknownCursor};
use super::data::*;
use super::inventory::Inventory;
use super::render::Includes;

/// A request the API refuses, with the JSON body it answers.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// An extra key naming what was wrong, e.g. ("filter", "foo").
    pub detail: Option<(&'static str, String)>,
}

impl ApiError {
    pub fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status: 400, code, message: message.into(), detail: None }
    }
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> ApiError {
        self.detail = Some((key, value.into()));
        self
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError { status: 404, code: "NotFound", message: message.into(), detail: None }
    }
    pub fn body(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("message".into(), Value::from(self.message.clone()));
        m.insert("code".into(), Value::from(self.code));
        if let Some((k, v)) = &self.detail {
            m.insert((*k).into(), Value::from(v.clone()));
        }
        Value::Object(m)
    }
}

/// A property a list can be sorted or filtered on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Id,
    Number,
    Date,
    Timestamp,
    Active,
    LocationId,
    PartyId,
    InventoryStatus,
    PaymentStatus,
    RequestedShipDate,
    InvoicedDate,
    PoNumber,
    Total,
    Balance,
    Smart,
    Name,
    Description,
    Barcode,
    ItemType,
    CategoryId,
    LastModified,
    TrackSerials,
    Sku,
    Status,
    SentDate,
    ReceivedDate,
    FromLocationId,
    ToLocationId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Sort only.
    SortOnly,
    Exact,
    Contains,
    StatusList,
    IdEq,
    DateRange,
    NumRange,
    Bool,
    /// Filter only, substring.
    SmartText,
    /// Filter only, boolean.
    BoolOnly,
}

struct Spec {
    name: &'static str,
    field: Field,
    kind: Kind,
}

/// Sortable and filterable properties per endpoint. Filters are the documented ones (§3) plus
/// products' `trackSerials` (S9); sorts are the ids, numbers, dates, statuses and `timestamp`.
fn specs(endpoint: Endpoint) -> &'static [Spec] {
    use Field as F;
    use Kind as K;
    match endpoint {
        Endpoint::SalesOrders => &[
            Spec { name: "salesOrderId", field: F::Id, kind: K::SortOnly },
            Spec { name: "orderNumber", field: F::Number, kind: K::Exact },
            Spec { name: "inventoryStatus", field: F::InventoryStatus, kind: K::StatusList },
            Spec { name: "paymentStatus", field: F::PaymentStatus, kind: K::StatusList },
            Spec { name: "customerId", field: F::PartyId, kind: K::IdEq },
            Spec { name: "orderDate", field: F::Date, kind: K::DateRange },
            Spec { name: "poNumber", field: F::PoNumber, kind: K::Exact },
            Spec { name: "locationId", field: F::LocationId, kind: K::IdEq },
            Spec { name: "requestedShipDate", field: F::RequestedShipDate, kind: K::DateRange },
            Spec { name: "invoicedDate", field: F::InvoicedDate, kind: K::DateRange },
            Spec { name: "total", field: F::Total, kind: K::NumRange },
            Spec { name: "balance", field: F::Balance, kind: K::NumRange },
            Spec { name: "isActive", field: F::Active, kind: K::BoolOnly },
            Spec { name: "smart", field: F::Smart, kind: K::SmartText },
            Spec { name: "timestamp", field: F::Timestamp, kind: K::SortOnly },
        ],
        Endpoint::PurchaseOrders => &[
            Spec { name: "purchaseOrderId", field: F::Id, kind: K::SortOnly },
            Spec { name: "orderNumber", field: F::Number, kind: K::Exact },
            Spec { name: "inventoryStatus", field: F::InventoryStatus, kind: K::StatusList },
            Spec { name: "paymentStatus", field: F::PaymentStatus, kind: K::StatusList },
            Spec { name: "vendorId", field: F::PartyId, kind: K::IdEq },
            Spec { name: "orderDate", field: F::Date, kind: K::DateRange },
            Spec { name: "vendorOrderNumber", field: F::PoNumber, kind: K::Exact },
            Spec { name: "locationId", field: F::LocationId, kind: K::IdEq },
            Spec { name: "requestShipDate", field: F::RequestedShipDate, kind: K::DateRange },
            Spec { name: "total", field: F::Total, kind: K::NumRange },
            Spec { name: "balance", field: F::Balance, kind: K::NumRange },
            Spec { name: "isActive", field: F::Active, kind: K::BoolOnly },
            Spec { name: "smart", field: F::Smart, kind: K::SmartText },
            Spec { name: "timestamp", field: F::Timestamp, kind: K::SortOnly },
        ],
        Endpoint::StockAdjustments => &[
            Spec { name: "stockAdjustmentId", field: F::Id, kind: K::SortOnly },
            Spec { name: "adjustmentNumber", field: F::Number, kind: K::Exact },
            Spec { name: "date", field: F::Date, kind: K::SortOnly },
            Spec { name: "locationId", field: F::LocationId, kind: K::SortOnly },
            Spec { name: "timestamp", field: F::Timestamp, kind: K::SortOnly },
        ],
        Endpoint::StockTransfers => &[
            Spec { name: "stockTransferId", field: F::Id, kind: K::SortOnly },
            Spec { name: "transferNumber", field: F::Number, kind: K::Exact },
            Spec { name: "transferDate", field: F::Date, kind: K::SortOnly },
            Spec { name: "sentDate", field: F::SentDate, kind: K::SortOnly },
            Spec { name: "receivedDate", field: F::ReceivedDate, kind: K::SortOnly },
            Spec { name: "status", field: F::Status, kind: K::SortOnly },
            Spec { name: "fromLocationId", field: F::FromLocationId, kind: K::SortOnly },
            Spec { name: "toLocationId", field: F::ToLocationId, kind: K::SortOnly },
            Spec { name: "timestamp", field: F::Timestamp, kind: K::SortOnly },
        ],
        Endpoint::Products => &[
            Spec { name: "productId", field: F::Id, kind: K::SortOnly },
            Spec { name: "name", field: F::Name, kind: K::Contains },
            Spec { name: "sku", field: F::Sku, kind: K::SortOnly },
            Spec { name: "description", field: F::Description, kind: K::Contains },
            Spec { name: "isActive", field: F::Active, kind: K::Bool },
            Spec { name: "barcode", field: F::Barcode, kind: K::Contains },
            Spec { name: "itemType", field: F::ItemType, kind: K::Exact },
            Spec { name: "categoryId", field: F::CategoryId, kind: K::IdEq },
            Spec { name: "lastModifiedDateTime", field: F::LastModified, kind: K::DateRange },
            Spec { name: "trackSerials", field: F::TrackSerials, kind: K::Bool },
            Spec { name: "smart", field: F::Smart, kind: K::SmartText },
            Spec { name: "timestamp", field: F::Timestamp, kind: K::SortOnly },
        ],
        Endpoint::Locations => &[
            Spec { name: "locationId", field: F::Id, kind: K::SortOnly },
            Spec { name: "name", field: F::Name, kind: K::Contains },
            Spec { name: "isActive", field: F::Active, kind: K::Bool },
            Spec { name: "timestamp", field: F::Timestamp, kind: K::SortOnly },
        ],
        Endpoint::Customers | Endpoint::Vendors => &[
            Spec { name: "customerId", field: F::Id, kind: K::SortOnly },
            Spec { name: "vendorId", field: F::Id, kind: K::SortOnly },
            Spec { name: "name", field: F::Name, kind: K::Contains },
            Spec { name: "isActive", field: F::Active, kind: K::Bool },
            Spec { name: "smart", field: F::Smart, kind: K::SmartText },
            Spec { name: "timestamp", field: F::Timestamp, kind: K::SortOnly },
        ],
        Endpoint::ManufacturingOrders => &[
            Spec { name: "manufacturingOrderId", field: F::Id, kind: K::SortOnly },
            Spec { name: "manufacturingOrderNumber", field: F::Number, kind: K::Exact },
            Spec { name: "status", field: F::Status, kind: K::StatusList },
            Spec { name: "orderDate", field: F::Date, kind: K::DateRange },
            Spec { name: "dueDate", field: F::RequestedShipDate, kind: K::DateRange },
            Spec { name: "locationId", field: F::LocationId, kind: K::IdEq },
            Spec { name: "isActive", field: F::Active, kind: K::BoolOnly },
            Spec { name: "completedDate", field: F::ReceivedDate, kind: K::SortOnly },
            Spec { name: "timestamp", field: F::Timestamp, kind: K::SortOnly },
        ],
        Endpoint::StockCounts => &[
            Spec { name: "stockCountId", field: F::Id, kind: K::SortOnly },
            Spec { name: "stockCountNumber", field: F::Number, kind: K::Exact },
            Spec { name: "status", field: F::Status, kind: K::SortOnly },
            Spec { name: "startedDate", field: F::Date, kind: K::SortOnly },
            Spec { name: "completedDate", field: F::ReceivedDate, kind: K::SortOnly },
            Spec { name: "timestamp", field: F::Timestamp, kind: K::SortOnly },
        ],
        // Served by id only.
        Endpoint::CountSheets => &[],
    }
}

/// A property's value, for filtering and sorting.
pub(crate) enum Val<'a> {
    Null,
    Str(&'a str),
    Date(Dt),
    Bool(bool),
    Num(i64),
    Id(Uuid),
}

/// Something a list endpoint returns.
pub(crate) trait Entity {
    fn id(&self) -> Uuid;
    fn field(&self, f: Field, cx: &FieldCtx) -> Val<'_>;
}

pub(crate) struct FieldCtx<'a> {
    pub cat: &'a Catalog,
    #[allow(dead_code)]
    pub inv: &'a Inventory,
}

#[derive(Clone, Debug)]
enum DateBound {
    Day(NaiveDate),
    At(DateTime<FixedOffset>),
}

#[derive(Clone, Debug)]
enum Filter {
    Exact(Field, String),
    Contains(Field, String),
    AnyOf(Field, Vec<String>),
    IdEq(Field, Uuid),
    Dates(Field, Option<DateBound>, Option<DateBound>),
    Nums(Field, Option<i64>, Option<i64>),
    Bool(Field, bool),
    Smart(String),
}

/// A parsed list request.
#[derive(Clone, Debug)]
pub(crate) struct ListQuery {
    pub count: usize,
    pub skip: usize,
    pub after: Option<Uuid>,
    pub before: Option<Uuid>,
    pub start: Option<Uuid>,
    sort: Field,
    pub desc: bool,
    /// A date sort honoured badly: each page (cut in id order) sorted by this, descending if so.
    page_sort: Option<(Field, bool)>,
    /// Ties of the sort ordered by the ids scrambled with this (another value on each request),
    /// rather than by id.
    tie_salt: Option<u128>,
    pub include_count: bool,
    pub includes: Includes,
    filters: Vec<Filter>,
    guid_order: GuidOrder,
    unknown_cursor: UnknownCursor,
    list_count: ListCount,
}

pub(crate) struct QueryOptions {
    pub default_count: usize,
    pub max_count: usize,
    pub reject_keyset: bool,
    pub behaviour: Behaviour,
    /// Refuse `include=sheets.lines` on stock counts (see `SimConfig::refuse_sheet_lines`).
    pub refuse_sheet_lines: bool,
}

/// The 400 a server answers to an include it does not know.
pub(crate) fn invalid_include(endpoint: Endpoint, bad: &str) -> ApiError {
    ApiError::bad("InvalidInclude", format!("'{bad}' is not a relationship of {endpoint}")).with("relationship", bad)
}

/// Parses the `include` values, refusing the sheets' lines of a stock count when asked to.
pub(crate) fn parse_includes<'v>(
    endpoint: Endpoint,
    values: impl IntoIterator<Item = &'v str>,
    refuse_sheet_lines: bool,
) -> Result<Includes, ApiError> {
    let includes = Includes::parse(endpoint, values).map_err(|bad| invalid_include(endpoint, &bad))?;
    if refuse_sheet_lines
        && endpoint == Endpoint::StockCounts
        && includes.get("sheets").and_then(|s| s.get("lines")).is_some()
    {
        return Err(invalid_include(endpoint, "sheets.lines"));
    }
    Ok(includes)
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ApiError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad("InvalidParameter", format!("'{key}' must be true or false")).with("parameter", key)),
    }
}

fn parse_id(key: &str, v: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(v.trim())
        .map_err(|_| ApiError::bad("InvalidParameter", format!("'{key}' must be an entity id")).with("parameter", key))
}

fn parse_date_bound(key: &str, v: &Value) -> Result<Option<DateBound>, ApiError> {
    let bad = || {
        ApiError::bad("InvalidFilter", format!("filter[{key}] dates must be YYYY-MM-DD or RFC 3339"))
            .with("filter", key)
    };
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                Ok(Some(DateBound::Day(d)))
            } else if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                Ok(Some(DateBound::At(t)))
            } else if let Ok(t) = s.parse::<chrono::NaiveDateTime>() {
                // No offset: read as UTC.
                Ok(Some(DateBound::At(t.and_utc().fixed_offset())))
            } else {
                Err(bad())
            }
        }
        _ => Err(bad()),
    }
}

fn parse_num_bound(key: &str, v: &Value) -> Result<Option<i64>, ApiError> {
    let text = match v {
        Value::Null => return Ok(None),
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    let d: rust_decimal::Decimal = text.parse().map_err(|_| {
        ApiError::bad("InvalidFilter", format!("filter[{key}] bounds must be numbers")).with("filter", key)
    })?;
    let scaled = d.checked_mul(rust_decimal::Decimal::from(MONEY_ONE));
    let clamp = if d.is_sign_negative() { i64::MIN } else { i64::MAX };
    Ok(Some(scaled.and_then(|x| x.trunc().try_into().ok()).unwrap_or(clamp)))
}

/// `{"fromDate":..,"toDate":..}` from a filter value.
fn parse_range(key: &str, raw: &str) -> Result<(Value, Value), ApiError> {
    let v: Value = serde_json::from_str(raw).map_err(|_| {
        ApiError::bad("InvalidFilter", format!("filter[{key}] must be a JSON object with fromDate and/or toDate"))
            .with("filter", key)
    })?;
    let Value::Object(m) = v else {
        return Err(ApiError::bad(
            "InvalidFilter",
            format!("filter[{key}] must be a JSON object with fromDate and/or toDate"),
        )
        .with("filter", key));
    };
    let get =
        |k: &str| m.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone()).unwrap_or(Value::Null);
    Ok((get("fromDate"), get("toDate")))
}

fn parse_list(raw: &str) -> Vec<String> {
    let t = raw.trim();
    if t.starts_with('[')
        && let Ok(Value::Array(items)) = serde_json::from_str::<Value>(t)
    {
        return items
            .into_iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s),
                Value::Null => None,
                other => Some(other.to_string()),
            })
            .collect();
    }
    t.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()
}

impl ListQuery {
    pub fn parse(endpoint: Endpoint, pairs: &[(String, String)], opts: &QueryOptions) -> Result<ListQuery, ApiError> {
        let mut q = ListQuery {
            count: opts.default_count,
            skip: 0,
            after: None,
            before: None,
            start: None,
            sort: Field::Id,
            desc: false,
            page_sort: None,
            tie_salt: None,
            include_count: false,
            includes: Includes::default(),
            filters: Vec::new(),
            guid_order: opts.behaviour.guid_order,
            unknown_cursor: opts.behaviour.unknown_cursor,
            list_count: opts.behaviour.list_count,
        };
        let mut includes = Vec::new();
        let mut date_sort = None;
        for (key, value) in pairs {
            let k = key.as_str();
            if let Some(rest) = k.strip_prefix("filter[") {
                let name = rest.strip_suffix("][]").or_else(|| rest.strip_suffix(']')).unwrap_or(rest);
                q.filters.push(parse_filter(endpoint, name, value)?);
                continue;
            }
            match k {
                "count" => {
                    let n: usize = value.trim().parse().map_err(|_| {
                        ApiError::bad("InvalidParameter", "'count' must be a whole number").with("parameter", "count")
                    })?;
                    if n > opts.max_count {
                        return Err(ApiError::bad(
                            "InvalidParameter",
                            format!("'count' must be at most {}", opts.max_count),
                        )
                        .with("parameter", "count"));
                    }
                    q.count = n;
                }
                "skip" => {
                    q.skip = value.trim().parse().map_err(|_| {
                        ApiError::bad("InvalidParameter", "'skip' must be a whole number").with("parameter", "skip")
                    })?;
                }
                "after" | "before" | "start" => {
                    if opts.reject_keyset {
                        return Err(ApiError::bad(
                            "UnsupportedParameter",
                            format!("'{k}' is not supported by this server"),
                        )
                        .with("parameter", k));
                    }
                    if value.trim().is_empty() {
                        continue;
                    }
                    let id = parse_id(k, value)?;
                    match k {
                        "after" => q.after = Some(id),
                        "before" => q.before = Some(id),
                        _ => q.start = Some(id),
                    }
                }
                "sort" => {
                    let name = value.trim();
                    if name.is_empty() {
                        continue;
                    }
                    if let Some(status) = opts.behaviour.sort_status {
                        return Err(ApiError {
                            status,
                            code: "ServerError",
                            message: "An error has occurred.".into(),
                            detail: None,
                        });
                    }
                    if opts.behaviour.ignore_sort {
                        continue;
                    }
                    let spec = specs(endpoint)
                        .iter()
                        .find(|s| {
                            s.name.eq_ignore_ascii_case(name) && !matches!(s.kind, Kind::SmartText | Kind::BoolOnly)
                        })
                        .ok_or_else(|| {
                            ApiError::bad("InvalidSort", format!("'{name}' is not a sortable property of {endpoint}"))
                                .with("sort", name)
                        })?;
                    match (spec.field, opts.behaviour.date_sort) {
                        (Field::Date, DateSort::Ignore) => date_sort = Some(DateSort::Ignore),
                        (Field::Date, DateSort::Badly) => date_sort = Some(DateSort::Badly),
                        (Field::Date, DateSort::ShuffledTies) => {
                            q.sort = Field::Date;
                            q.tie_salt = Some(next_salt());
                        }
                        (field, _) => q.sort = field,
                    }
                }
                "sortDesc" if opts.behaviour.ignore_sort => {}
                "sortDesc" => q.desc = parse_bool(k, value)?,
                "includeCount" => q.include_count = parse_bool(k, value)?,
                "include" => includes.push(value.as_str()),
                _ => {}
            }
        }
        match date_sort {
            Some(DateSort::Ignore) => q.desc = false,
            Some(DateSort::Badly) => q.page_sort = Some((Field::Date, std::mem::take(&mut q.desc))),
            _ => {}
        }
        q.includes = parse_includes(endpoint, includes, opts.refuse_sheet_lines)?;
        if let Some(cap) = opts.behaviour.page_cap {
            q.count = q.count.min(cap);
        }
        Ok(q)
    }

    /// The answer to a cursor naming no existing entity, when the behaviour says so: `Err` for
    /// a status, `Ok(Some(total))` for an empty page, `Ok(None)` to go on comparing.
    fn unknown_cursor<'a, E: 'a>(
        &self,
        lookup: &impl Fn(Uuid) -> Option<&'a E>,
        total: impl FnOnce() -> usize,
    ) -> Result<Option<usize>, ApiError> {
        let cursors = [(self.after, "after"), (self.start, "start"), (self.before, "before")];
        let Some((id, param)) =
            cursors.into_iter().find_map(|(c, p)| c.filter(|id| lookup(*id).is_none()).map(|id| (id, p)))
        else {
            return Ok(None);
        };
        match self.unknown_cursor {
            UnknownCursor::Compare => Ok(None),
            UnknownCursor::Empty => Ok(Some(if self.list_count == ListCount::Total { total() } else { 0 })),
            UnknownCursor::Status(status) => Err(ApiError {
                status,
                code: if status == 404 { "NotFound" } else { "InvalidParameter" },
                message: format!("'{param}' names an entity that does not exist: {id}"),
                detail: Some(("parameter", param.to_string())),
            }),
        }
    }

    /// Pages a table that is already in entity-id order (a `BTreeMap` keyed by id) without
    /// sorting it: the common `sort=<id>&after=<id>` scan stays cheap on the large scale.
    /// Other sorts go through [`ListQuery::run`].
    pub fn run_id_ordered<'a, E: Entity + 'a, I>(
        &self,
        all: I,
        lookup: impl Fn(Uuid) -> Option<&'a E>,
        cx: &FieldCtx,
    ) -> Result<(Vec<&'a E>, usize), ApiError>
    where
        I: DoubleEndedIterator<Item = &'a E> + Clone,
    {
        if self.sort != Field::Id || self.guid_order != GuidOrder::Text || self.page_sort.is_some() {
            return self.run(all, lookup, cx);
        }
        let filtered = || all.clone().filter(|e| self.filters.iter().all(|f| matches(f, *e, cx))).count();
        if let Some(total) = self.unknown_cursor(&lookup, filtered)? {
            return Ok((Vec::new(), total));
        }
        let keep = |e: &&'a E| {
            let id = e.id();
            let beyond = |cursor: Uuid, strict: bool| {
                let o = id.cmp(&cursor);
                let o = if self.desc { o.reverse() } else { o };
                o == Ordering::Greater || (!strict && o == Ordering::Equal)
            };
            self.after.is_none_or(|a| beyond(a, true))
                && self.start.is_none_or(|s| beyond(s, false))
                && self.before.is_none_or(|b| !beyond(b, false))
                && self.filters.iter().all(|f| matches(f, *e, cx))
        };
        let total = match (self.include_count, self.list_count) {
            (false, _) | (_, ListCount::Absent) => 0,
            (true, ListCount::Total) => filtered(),
            (true, ListCount::Remaining) => all.clone().filter(keep).count().saturating_sub(self.skip),
        };
        let page = if self.desc {
            all.rev().filter(keep).skip(self.skip).take(self.count).collect()
        } else {
            all.filter(keep).skip(self.skip).take(self.count).collect()
        };
        Ok((page, total))
    }

    /// Filters, sorts and pages `all`; returns the page and the filtered total.
    pub fn run<'a, E: Entity>(
        &self,
        all: impl Iterator<Item = &'a E>,
        lookup: impl Fn(Uuid) -> Option<&'a E>,
        cx: &FieldCtx,
    ) -> Result<(Vec<&'a E>, usize), ApiError> {
        let order = self.guid_order;
        let mut rows: Vec<(Key, [u8; 16], &'a E)> = all
            .filter(|e| self.filters.iter().all(|f| matches(f, *e, cx)))
            .map(|e| (key(e.field(self.sort, cx), order), order.key(e.id()), e))
            .collect();
        let total = rows.len();
        if let Some(total) = self.unknown_cursor(&lookup, || total)? {
            return Ok((Vec::new(), total));
        }
        if let Some(salt) = self.tie_salt {
            // Only the ties move: rows with equal keys are ordered by a scrambled id.
            rows.sort_by_cached_key(|r| (r.0.clone(), u128::from_be_bytes(r.1) ^ salt));
        } else {
            rows.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        }
        if self.desc {
            rows.reverse();
        }
        let reference = |id: Uuid, param: &'static str| -> Result<(Key, [u8; 16]), ApiError> {
            if self.sort == Field::Id {
                return Ok((Key::Id(order.key(id)), order.key(id)));
            }
            lookup(id).map(|e| (key(e.field(self.sort, cx), order), order.key(id))).ok_or_else(|| {
                ApiError::bad("InvalidParameter", format!("'{param}' names an entity that does not exist"))
                    .with("parameter", param)
            })
        };
        let cursors = [(self.after, "after"), (self.start, "start"), (self.before, "before")];
        for (cursor, param) in cursors {
            let Some(id) = cursor else { continue };
            let (rk, rid) = reference(id, param)?;
            rows.retain(|(k, i, _)| {
                let mut o = (k, *i).cmp(&(&rk, rid));
                if self.desc {
                    o = o.reverse();
                }
                match param {
                    "after" => o == Ordering::Greater,
                    "start" => o != Ordering::Less,
                    _ => o == Ordering::Less,
                }
            });
        }
        let total = match (self.include_count, self.list_count) {
            (false, _) | (_, ListCount::Absent) => 0,
            (true, ListCount::Total) => total,
            (true, ListCount::Remaining) => rows.len().saturating_sub(self.skip),
        };
        let mut page: Vec<&'a E> = rows.into_iter().skip(self.skip).take(self.count).map(|(_, _, e)| e).collect();
        if let Some((field, desc)) = self.page_sort {
            page.sort_by_cached_key(|e| (key(e.field(field, cx), order), order.key(e.id())));
            if desc {
                page.reverse();
            }
        }
        Ok((page, total))
    }
}

/// Another scrambling of the ids for each request (splitmix64 of a counter, twice).
fn next_salt() -> u128 {
    static REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let n = REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (u128::from(mix(n)) << 64) | u128::from(mix(n ^ 0xdead_beef))
}

fn parse_filter(endpoint: Endpoint, name: &str, raw: &str) -> Result<Filter, ApiError> {
    let spec =
        specs(endpoint).iter().find(|s| s.name.eq_ignore_ascii_case(name) && s.kind != Kind::SortOnly).ok_or_else(
            || ApiError::bad("InvalidFilter", format!("'{name}' is not a filter of {endpoint}")).with("filter", name),
        )?;
    let key = spec.name;
    Ok(match spec.kind {
        Kind::Exact => Filter::Exact(spec.field, raw.trim().to_string()),
        Kind::Contains => Filter::Contains(spec.field, raw.trim().to_lowercase()),
        Kind::SmartText => Filter::Smart(raw.trim().to_lowercase()),
        Kind::StatusList => Filter::AnyOf(spec.field, parse_list(raw)),
        Kind::IdEq => Filter::IdEq(
            spec.field,
            Uuid::parse_str(raw.trim()).map_err(|_| {
                ApiError::bad("InvalidFilter", format!("filter[{key}] must be an id")).with("filter", key)
            })?,
        ),
        Kind::DateRange => {
            let (from, to) = parse_range(key, raw)?;
            Filter::Dates(spec.field, parse_date_bound(key, &from)?, parse_date_bound(key, &to)?)
        }
        Kind::NumRange => {
            let (from, to) = parse_range(key, raw)?;
            Filter::Nums(spec.field, parse_num_bound(key, &from)?, parse_num_bound(key, &to)?)
        }
        Kind::Bool | Kind::BoolOnly => {
            Filter::Bool(spec.field, parse_bool(&format!("filter[{key}]"), raw).map_err(|e| e.with("filter", key))?)
        }
        Kind::SortOnly => unreachable!("filtered out above"),
    })
}

fn matches<E: Entity>(f: &Filter, e: &E, cx: &FieldCtx) -> bool {
    match f {
        Filter::Exact(field, want) => match e.field(*field, cx) {
            Val::Str(s) => s.eq_ignore_ascii_case(want),
            _ => false,
        },
        Filter::Contains(field, want) => match e.field(*field, cx) {
            Val::Str(s) => s.to_lowercase().contains(want.as_str()),
            _ => false,
        },
        Filter::Smart(want) => match e.field(Field::Smart, cx) {
            Val::Str(s) => s.to_lowercase().contains(want.as_str()),
            _ => false,
        },
        Filter::AnyOf(field, wants) => match e.field(*field, cx) {
            Val::Str(s) => wants.iter().any(|w| w.eq_ignore_ascii_case(s)),
            _ => false,
        },
        Filter::IdEq(field, want) => matches!(e.field(*field, cx), Val::Id(id) if id == *want),
        Filter::Bool(field, want) => matches!(e.field(*field, cx), Val::Bool(b) if b == *want),
        Filter::Nums(field, from, to) => match e.field(*field, cx) {
            Val::Num(n) => from.is_none_or(|f| n >= f) && to.is_none_or(|t| n <= t),
            _ => false,
        },
        Filter::Dates(field, from, to) => match e.field(*field, cx) {
            Val::Date(d) => {
                let local = d.date_naive();
                let after_from = match from {
                    None => true,
                    Some(DateBound::Day(day)) => local >= *day,
                    Some(DateBound::At(t)) => d >= *t,
                };
                let before_to = match to {
                    None => true,
                    Some(DateBound::Day(day)) => local <= *day,
                    Some(DateBound::At(t)) => d <= *t,
                };
                after_from && before_to
            }
            _ => false,
        },
    }
}

/// A sort key; nulls first, text case-insensitive, dates by instant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Null,
    Num(i64),
    Text(String),
    Id([u8; 16]),
}

fn key(v: Val, order: GuidOrder) -> Key {
    match v {
        Val::Null => Key::Null,
        Val::Str(s) => Key::Text(s.to_lowercase()),
        Val::Date(d) => Key::Num(d.timestamp()),
        Val::Bool(b) => Key::Num(b as i64),
        Val::Num(n) => Key::Num(n),
        Val::Id(id) => Key::Id(order.key(id)),
    }
}

fn opt_date(d: Option<Dt>) -> Val<'static> {
    d.map_or(Val::Null, Val::Date)
}

impl Entity for SalesOrder {
    fn id(&self) -> Uuid {
        self.id
    }
    fn field(&self, f: Field, cx: &FieldCtx) -> Val<'_> {
        match f {
            Field::Id => Val::Id(self.id),
            Field::Number => Val::Str(&self.number),
            Field::Date => Val::Date(self.order_date),
            Field::Timestamp => Val::Num(self.ts as i64),
            Field::Active => Val::Bool(!self.is_cancelled),
            Field::LocationId => Val::Id(cx.cat.location(self.location).id),
            Field::PartyId => Val::Id(cx.cat.customers[self.customer as usize].id),
            Field::InventoryStatus => Val::Str(self.inventory_status),
            Field::PaymentStatus => Val::Str(self.payment_status),
            Field::RequestedShipDate => opt_date(self.requested_ship_date),
            Field::InvoicedDate => opt_date(self.invoiced_date),
            Field::PoNumber => Val::Str(&self.po_number),
            Field::Total | Field::Balance => {
                let (total, balance) =
                    super::render::total_and_balance(&self.lines, self.tax_rate, self.payment_status);
                Val::Num(if f == Field::Total { total } else { balance })
            }
            // The docs say `smart` searches the order number and the customer name; the
            // number is enough here.
            Field::Smart => Val::Str(&self.number),
            _ => Val::Null,
        }
    }
}

impl Entity for PurchaseOrder {
    fn id(&self) -> Uuid {
        self.id
    }
    fn field(&self, f: Field, cx: &FieldCtx) -> Val<'_> {
        match f {
            Field::Id => Val::Id(self.id),
            Field::Number | Field::Smart => Val::Str(&self.number),
            Field::Date => Val::Date(self.order_date),
            Field::Timestamp => Val::Num(self.ts as i64),
            Field::Active => Val::Bool(!self.is_cancelled),
            Field::LocationId => Val::Id(cx.cat.location(self.location).id),
            Field::PartyId => Val::Id(cx.cat.vendors[self.vendor as usize].id),
            Field::InventoryStatus => Val::Str(self.inventory_status),
            Field::PaymentStatus => Val::Str(self.payment_status),
            Field::PoNumber => Val::Str(&self.vendor_order_number),
            Field::Total | Field::Balance => {
                let (total, balance) =
                    super::render::total_and_balance(&self.lines, self.tax_rate, self.payment_status);
                Val::Num(if f == Field::Total { total } else { balance })
            }
            _ => Val::Null,
        }
    }
}

impl Entity for StockAdjustment {
    fn id(&self) -> Uuid {
        self.id
    }
    fn field(&self, f: Field, cx: &FieldCtx) -> Val<'_> {
        match f {
            Field::Id => Val::Id(self.id),
            Field::Number => Val::Str(&self.number),
            Field::Date => Val::Date(self.date),
            Field::Timestamp => Val::Num(self.ts as i64),
            Field::LocationId => Val::Id(cx.cat.location(self.location).id),
            _ => Val::Null,
        }
    }
}

impl Entity for StockTransfer {
    fn id(&self) -> Uuid {
        self.id
    }
    fn field(&self, f: Field, cx: &FieldCtx) -> Val<'_> {
        match f {
            Field::Id => Val::Id(self.id),
            Field::Number => Val::Str(&self.number),
            Field::Date => Val::Date(self.transfer_date),
            Field::SentDate => opt_date(self.sent_date),
            Field::ReceivedDate => opt_date(self.received_date),
            Field::Status => Val::Str(self.status),
            Field::FromLocationId => Val::Id(cx.cat.location(self.from).id),
            Field::ToLocationId => Val::Id(cx.cat.location(self.to).id),
            Field::Timestamp => Val::Num(self.ts as i64),
            _ => Val::Null,
        }
    }
}

impl Entity for ManufacturingOrder {
    fn id(&self) -> Uuid {
        self.id
    }
    fn field(&self, f: Field, cx: &FieldCtx) -> Val<'_> {
        match f {
            Field::Id => Val::Id(self.id),
            Field::Number => Val::Str(&self.number),
            Field::Date => Val::Date(self.order_date),
            Field::RequestedShipDate => opt_date(self.due_date),
            Field::ReceivedDate => opt_date(self.completed_date.filter(|_| self.status == "completed")),
            Field::Status => Val::Str(self.status),
            Field::LocationId => Val::Id(cx.cat.location(self.location).id),
            Field::Active => Val::Bool(!self.is_cancelled),
            Field::Timestamp => Val::Num(self.ts as i64),
            _ => Val::Null,
        }
    }
}

impl Entity for StockCount {
    fn id(&self) -> Uuid {
        self.id
    }
    fn field(&self, f: Field, _cx: &FieldCtx) -> Val<'_> {
        match f {
            Field::Id => Val::Id(self.id),
            Field::Number => Val::Str(&self.number),
            Field::Status => Val::Str(self.status),
            Field::Date => opt_date(self.started_date),
            Field::ReceivedDate => opt_date(self.completed_date.filter(|_| self.is_completed())),
            Field::Timestamp => Val::Num(self.ts as i64),
            _ => Val::Null,
        }
    }
}

impl Entity for Product {
    fn id(&self) -> Uuid {
        self.id
    }
    fn field(&self, f: Field, _cx: &FieldCtx) -> Val<'_> {
        match f {
            Field::Id => Val::Id(self.id),
            Field::Name => Val::Str(&self.name),
            Field::Sku => Val::Str(&self.sku),
            Field::Description => Val::Str(&self.description),
            Field::Active => Val::Bool(true),
            Field::Barcode => Val::Str(&self.barcode),
            Field::ItemType => Val::Str(self.item_type),
            Field::CategoryId => Val::Id(self.category_id),
            Field::LastModified => Val::Date(self.last_modified),
            Field::TrackSerials => Val::Bool(self.track_serials),
            Field::Smart => Val::Str(&self.name),
            Field::Timestamp => Val::Num(self.ts as i64),
            _ => Val::Null,
        }
    }
}

impl Entity for Location {
    fn id(&self) -> Uuid {
        self.id
    }
    fn field(&self, f: Field, _cx: &FieldCtx) -> Val<'_> {
        match f {
            Field::Id => Val::Id(self.id),
            Field::Name => Val::Str(&self.name),
            Field::Active => Val::Bool(true),
            Field::Timestamp => Val::Num(self.ts as i64),
            _ => Val::Null,
        }
    }
}

impl Entity for crate::data::Party {
    fn id(&self) -> Uuid {
        self.id
    }
    fn field(&self, f: Field, _cx: &FieldCtx) -> Val<'_> {
        match f {
            Field::Id => Val::Id(self.id),
            Field::Name | Field::Smart => Val::Str(&self.name),
            Field::Active => Val::Bool(true),
            Field::Timestamp => Val::Num(self.ts as i64),
            _ => Val::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const OPTS: QueryOptions = QueryOptions {
        default_count: 20,
        max_count: 100,
        reject_keyset: false,
        behaviour: Behaviour::DEFAULT,
        refuse_sheet_lines: false,
    };

    #[test]
    fn defaults_and_limits() {
        let q = ListQuery::parse(Endpoint::SalesOrders, &[], &OPTS).unwrap();
        assert_eq!(q.count, 20);
        assert_eq!(q.sort, Field::Id);
        let e = ListQuery::parse(Endpoint::SalesOrders, &pairs(&[("count", "101")]), &OPTS).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.detail, Some(("parameter", "count".into())));
        assert!(ListQuery::parse(Endpoint::SalesOrders, &pairs(&[("count", "100")]), &OPTS).is_ok());
    }

    #[test]
    fn unknown_filter_and_sort_are_named() {
        let e =
            ListQuery::parse(Endpoint::StockAdjustments, &pairs(&[("filter[orderDate]", "{}")]), &OPTS).unwrap_err();
        assert_eq!(e.detail, Some(("filter", "orderDate".into())));
        let e = ListQuery::parse(Endpoint::SalesOrders, &pairs(&[("sort", "color")]), &OPTS).unwrap_err();
        assert_eq!(e.detail, Some(("sort", "color".into())));
    }

    #[test]
    fn keyset_can_be_rejected() {
        let opts = QueryOptions { reject_keyset: true, ..OPTS };
        let e = ListQuery::parse(
            Endpoint::SalesOrders,
            &pairs(&[("after", "00000000-0000-4000-8000-000000000001")]),
            &opts,
        )
        .unwrap_err();
        assert_eq!(e.code, "UnsupportedParameter");
    }

    #[test]
    fn sheet_lines_can_be_refused_on_stock_counts_only() {
        let q = pairs(&[("include", "sheets,sheets.lines")]);
        assert!(ListQuery::parse(Endpoint::StockCounts, &q, &OPTS).is_ok());
        let refusing = QueryOptions { refuse_sheet_lines: true, ..OPTS };
        let e = ListQuery::parse(Endpoint::StockCounts, &q, &refusing).unwrap_err();
        assert_eq!((e.status, e.code), (400, "InvalidInclude"));
        assert_eq!(e.detail, Some(("relationship", "sheets.lines".into())));
        assert!(ListQuery::parse(Endpoint::StockCounts, &pairs(&[("include", "sheets")]), &refusing).is_ok());
    }

    #[test]
    fn date_bounds_parse_both_forms() {
        let q = ListQuery::parse(
            Endpoint::SalesOrders,
            &pairs(&[("filter[orderDate]", r#"{"fromDate":"2024-01-01","toDate":"2024-02-01T00:00:00Z"}"#)]),
            &OPTS,
        )
        .unwrap();
        assert!(matches!(&q.filters[0], Filter::Dates(Field::Date, Some(DateBound::Day(_)), Some(DateBound::At(_)))));
        let e = ListQuery::parse(
            Endpoint::SalesOrders,
            &pairs(&[("filter[orderDate]", r#"{"fromDate":"yesterday"}"#)]),
            &OPTS,
        )
        .unwrap_err();
        assert_eq!(e.code, "InvalidFilter");
    }

    #[test]
    fn hostile_values_are_400s_not_panics() {
        for (k, v) in [
            ("filter[total]", r#"{"fromDate":"79228162514264337593543950335"}"#),
            ("filter[total]", r#"{"toDate":"-79228162514264337593543950335"}"#),
            ("skip", "99999999999999999999999"),
            ("count", "-1"),
            ("sortDesc", "maybe"),
            ("after", "zzz"),
            ("filter[customerId]", "nope"),
            ("filter[isActive]", "2"),
        ] {
            let r = ListQuery::parse(Endpoint::SalesOrders, &pairs(&[(k, v)]), &OPTS);
            if let Err(e) = r {
                assert_eq!(e.status, 400, "{k}={v}");
            }
        }
    }

    #[test]
    fn status_lists_accept_three_encodings() {
        assert_eq!(parse_list(r#"["started","fulfilled"]"#), ["started", "fulfilled"]);
        assert_eq!(parse_list("started"), ["started"]);
        assert_eq!(parse_list("started, fulfilled"), ["started", "fulfilled"]);
    }
}
