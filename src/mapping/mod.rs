//! From one inFlow document to its serial events: pure functions, no I/O.
//!
//! [`derive()`] reads a document's raw JSON and returns every serial occurrence as an
//! [`EventDraft`] (the columns of `serial_events` that depend on the document alone), the
//! document's identity and version, and [`Warning`]s for odd data. The vocabulary of
//! `doc_type`, `line_collection` and `event_type` is the public contract users query, and the
//! table in the README is the specification; each document type has its own module with a
//! unit test per row.
//!
//! Odd data is normal: a serial is kept verbatim whenever it identifies something, and whatever
//! cannot be used (an empty serial, a repeat inside one line, a date that does not parse) becomes
//! a warning instead of an error, because the raw document is stored beside the events and a
//! later `audit rebuild` can derive them again.

mod adjustment;
mod lines;
pub mod manufacturing;
mod purchase;
mod sales;
pub mod stock_count;
pub mod storable;
mod transfer;

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SubsecRound as _, Utc};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::inflow::model::Quantity;

/// The document types `audit` walks, with how inFlow names and serves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocType {
    /// `sales_order`, from `sales-orders`.
    SalesOrder,
    /// `purchase_order`, from `purchase-orders`.
    PurchaseOrder,
    /// `stock_adjustment`, from `stock-adjustments`.
    StockAdjustment,
    /// `stock_transfer`, from `stock-transfers`.
    StockTransfer,
    /// `manufacturing_order`, from `manufacturing-orders` (an optional stream).
    ManufacturingOrder,
    /// `stock_count`, from `stock-counts` (an optional stream).
    StockCount,
}

impl DocType {
    /// In the order a run walks them: stock counts before stock adjustments, so that an
    /// adjustment a count made is recognised as such when it is first written.
    pub const ALL: [DocType; 6] = [
        DocType::SalesOrder,
        DocType::PurchaseOrder,
        DocType::ManufacturingOrder,
        DocType::StockCount,
        DocType::StockAdjustment,
        DocType::StockTransfer,
    ];

    /// The `doc_type` column value.
    pub fn as_str(self) -> &'static str {
        match self {
            DocType::SalesOrder => "sales_order",
            DocType::PurchaseOrder => "purchase_order",
            DocType::StockAdjustment => "stock_adjustment",
            DocType::StockTransfer => "stock_transfer",
            DocType::ManufacturingOrder => "manufacturing_order",
            DocType::StockCount => "stock_count",
        }
    }

    /// The API path segment, also the stream name in `sync_state` and `--types`.
    pub fn stream(self) -> &'static str {
        match self {
            DocType::SalesOrder => "sales-orders",
            DocType::PurchaseOrder => "purchase-orders",
            DocType::StockAdjustment => "stock-adjustments",
            DocType::StockTransfer => "stock-transfers",
            DocType::ManufacturingOrder => "manufacturing-orders",
            DocType::StockCount => "stock-counts",
        }
    }

    /// The primary-key property, used for keyset paging (`sort=` and `after=`).
    pub fn id_field(self) -> &'static str {
        match self {
            DocType::SalesOrder => "salesOrderId",
            DocType::PurchaseOrder => "purchaseOrderId",
            DocType::StockAdjustment => "stockAdjustmentId",
            DocType::StockTransfer => "stockTransferId",
            DocType::ManufacturingOrder => "manufacturingOrderId",
            DocType::StockCount => "stockCountId",
        }
    }

    /// The line collections to `include=`: every one that carries serials or dates them.
    pub fn includes(self) -> &'static str {
        match self {
            DocType::SalesOrder => "lines,pickLines,packLines,shipLines,restockLines",
            DocType::PurchaseOrder => "lines,receiveLines,unstockLines",
            // The reason tells an adjustment inFlow made itself (a completed count's, say).
            DocType::StockAdjustment => "lines,adjustmentReason",
            DocType::StockTransfer => "lines",
            DocType::ManufacturingOrder => "lines,pickLines,putLines,pickMatchings",
            // `sheets.lines` is not confirmed; see `fallback_includes`.
            DocType::StockCount => "sheets,sheets.lines",
        }
    }

    /// What to ask for when the list refuses `includes()`, with what is missing fetched by id:
    /// stock counts without their sheets' lines, then each sheet from `count-sheets/{id}`.
    pub fn fallback_includes(self) -> Option<&'static str> {
        match self {
            DocType::StockCount => Some("sheets"),
            _ => None,
        }
    }

    /// The server-side date filter, where inFlow has one.
    pub fn date_filter(self) -> Option<&'static str> {
        match self {
            DocType::SalesOrder | DocType::PurchaseOrder | DocType::ManufacturingOrder => Some("orderDate"),
            DocType::StockAdjustment | DocType::StockTransfer | DocType::StockCount => None,
        }
    }

    /// The date a newest-first walk sorts on (`sort=<date>&sortDesc=true`), where the document
    /// has one that is also its date.
    pub fn sort_date(self) -> Option<&'static str> {
        match self {
            DocType::StockAdjustment => Some("date"),
            DocType::StockTransfer => Some("transferDate"),
            DocType::SalesOrder | DocType::PurchaseOrder => Some("orderDate"),
            DocType::ManufacturingOrder | DocType::StockCount => None,
        }
    }

    /// Streams of features an account may not have (manufacturing, stock counts): a default
    /// ingest skips them, with a warning, when their endpoint is missing.
    pub fn optional(self) -> bool {
        matches!(self, DocType::ManufacturingOrder | DocType::StockCount)
    }

    /// The type whose API path segment is `stream` (`sales-orders`), if any.
    pub fn from_stream(stream: &str) -> Option<DocType> {
        DocType::ALL.into_iter().find(|t| t.stream() == stream)
    }
}

impl fmt::Display for DocType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DocType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DocType::ALL
            .into_iter()
            .find(|t| t.as_str() == s || t.stream() == s)
            .ok_or_else(|| format!("unknown document type `{s}`"))
    }
}

macro_rules! event_types {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal, $step:literal;)*) => {
        /// The `event_type` vocabulary: what one serial occurrence records (the README's table).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType { $($(#[doc = $doc])* $variant,)* }

        impl EventType {
            /// Every event type, in declaration order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            /// The `event_type` column value.
            pub fn as_str(self) -> &'static str {
                match self { $(EventType::$variant => $name,)* }
            }

            /// The natural order of a document's steps, for events at the same moment:
            /// ordered or sold before picked before shipped, sent before received.
            pub fn step(self) -> u8 {
                match self { $(EventType::$variant => $step,)* }
            }
        }

        impl FromStr for EventType {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s { $($name => Ok(EventType::$variant),)* _ => Err(format!("unknown event type `{s}`")) }
            }
        }
    };
}

event_types! {
    /// On a sales quote's `lines`; no stock effect.
    Quoted => "quoted", 0;
    /// On a purchase order's `lines`; no stock effect.
    Ordered => "ordered", 1;
    /// On a sales order's `lines` (not a quote); no stock effect.
    Sold => "sold", 1;
    /// On an open transfer's `lines`, at the source; no stock effect.
    TransferRequested => "transfer_requested", 1;
    /// On a purchase order's `receiveLines`: into stock.
    Received => "received", 2;
    /// On an adjustment line with a positive quantity: into stock.
    AdjustedIn => "adjusted_in", 2;
    /// On an adjustment line with a negative quantity: out of stock.
    AdjustedOut => "adjusted_out", 2;
    /// On a sales order's `pickLines`: out of stock.
    Picked => "picked", 3;
    /// On an in-transit or completed transfer's `lines`: out of the source.
    TransferSent => "transfer_sent", 3;
    /// On a sales order's `packLines` whose container has not shipped; no stock effect.
    Packed => "packed", 4;
    /// On a sales order's `packLines` whose container shipped; no stock effect (the pick had it).
    Shipped => "shipped", 5;
    /// On a completed transfer's `lines`: into the destination.
    TransferReceived => "transfer_received", 5;
    /// On a sales order line with a negative quantity; no stock effect (a restock has it).
    CustomerReturn => "customer_return", 6;
    /// On a purchase order line with a negative quantity; no stock effect (an unstock has it).
    VendorReturn => "vendor_return", 6;
    /// On a sales order's `restockLines`: back into stock.
    Restocked => "restocked", 7;
    /// On a purchase order's `unstockLines`: out of stock, back to the vendor.
    Unstocked => "unstocked", 7;
    /// On a manufacturing order's `lines` (its tree); no stock effect.
    BuildPlanned => "build_planned", 1;
    /// On a manufacturing order's `pickLines`: a component out of stock.
    Consumed => "consumed", 3;
    /// On the `putLines` of a manufacturing order not yet completed; no stock effect.
    ProductionPending => "production_pending", 4;
    /// On the `putLines` of a completed manufacturing order: a finished unit into stock.
    Produced => "produced", 5;
    /// A serial counted on a stock count sheet line; no stock effect.
    Counted => "counted", 1;
    /// In a completed count line's snapshot but not counted: out of stock.
    CountMissing => "count_missing", 2;
    /// Counted on a completed count but not in the line's snapshot: into stock.
    CountFound => "count_found", 2;
    /// On an adjustment a completed stock count made; no stock effect (the count's event has it).
    AdjustedByCount => "adjusted_by_count", 2;
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One serial occurrence, as far as the document alone determines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    /// The serial number, verbatim.
    pub serial: String,
    /// The line's `productId`.
    pub product_id: Option<String>,
    /// The JSON key of the line collection the serial came from (`pickLines`, `sheets.lines`).
    pub line_collection: &'static str,
    /// The line's id, or `#n` (its 1-based position) when inFlow gave none.
    pub line_id: String,
    /// What the occurrence records.
    pub event_type: EventType,
    /// When it happened; `None` when the document gives no usable date.
    pub occurred_at: Option<DateTime<Utc>>,
    /// Where, from the header or the line as the event type says.
    pub location_id: Option<String>,
    /// The sublocation within `location_id`, where the line names one.
    pub sublocation: Option<String>,
    /// +1 into stock, -1 out of it, 0 no stock effect.
    pub quantity_delta: i16,
}

impl EventDraft {
    /// The identity of an event within its document: at most one current event per key.
    pub fn key(&self) -> (&'static str, &str, &str, EventType) {
        (self.line_collection, &self.line_id, &self.serial, self.event_type)
    }
}

/// One component serial built into one finished serial by a manufacturing order: a row of
/// `genealogy_links`, replaced whenever its order is derived again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkDraft {
    /// The serial of the component picked into the order.
    pub component_serial: String,
    /// The component's product, from its pick line.
    pub component_product_id: Option<String>,
    /// The serial of the finished unit it went into.
    pub finished_serial: String,
    /// The finished unit's product.
    pub finished_product_id: Option<String>,
    /// When the finished unit was put away; `None` while the order is not completed.
    pub built_at: Option<DateTime<Utc>>,
    /// How the component was tied to this unit.
    pub matched_to: MatchedTo,
}

/// How closely a link is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MatchedTo {
    /// A pick matching ties the component to the order line of this very unit.
    Unit,
    /// A pick matching ties it to an order line that builds several units: one of them.
    Line,
    /// No pick matching: the component went into one of the order's finished units.
    Order,
}

impl MatchedTo {
    /// The `matched_to` column value.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedTo::Unit => "unit",
            MatchedTo::Line => "line",
            MatchedTo::Order => "order",
        }
    }
}

/// Kinds of odd data, counted in the run's record and listed in `run_warnings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarningKind {
    /// An empty or blank serial, skipped.
    EmptySerial,
    /// A serial repeated within one line, recorded once.
    RepeatedSerial,
    /// A serial with surrounding spaces, stored verbatim.
    PaddedSerial,
    /// A line whose number of serials differs from its quantity (or that has no quantity).
    SerialCountMismatch,
    /// A line with serials but no id; its position stands in.
    MissingLineId,
    /// A line with serials but no `productId`.
    MissingProduct,
    /// A date field that does not parse, taken as no date.
    BadDate,
    /// A transfer status other than open, inTransit or completed: no events, rather than a guess.
    UnknownStatus,
    /// An adjustment line with serials but a zero or missing quantity: no direction, no events.
    UnsignedAdjustment,
    /// A `\u0000` or a lone surrogate, kept as text (see [`storable`]).
    EscapedText,
}

impl WarningKind {
    /// The `kind` column value in `run_warnings`.
    pub fn as_str(self) -> &'static str {
        match self {
            WarningKind::EmptySerial => "empty_serial",
            WarningKind::RepeatedSerial => "repeated_serial",
            WarningKind::PaddedSerial => "padded_serial",
            WarningKind::SerialCountMismatch => "serial_count_mismatch",
            WarningKind::MissingLineId => "missing_line_id",
            WarningKind::MissingProduct => "missing_product",
            WarningKind::BadDate => "bad_date",
            WarningKind::UnknownStatus => "unknown_status",
            WarningKind::UnsignedAdjustment => "unsigned_adjustment",
            WarningKind::EscapedText => "escaped_text",
        }
    }
}

/// One piece of odd data met while deriving a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// What is odd.
    pub kind: WarningKind,
    /// The line collection of the line concerned; `None` for the document as a whole.
    pub line_collection: Option<&'static str>,
    /// The line concerned (its id, or `#n` for its position); `None` for the whole document.
    pub line_id: Option<String>,
    /// For a person: the value and what was done with it.
    pub detail: String,
}

/// A document's identity, version and events.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    /// What kind of document it is.
    pub doc_type: DocType,
    /// Its inFlow id (the `id_field` of its type), trimmed.
    pub doc_id: String,
    /// The number people know it by (the order, adjustment, transfer or count number).
    pub doc_number: Option<String>,
    /// orderDate, date or transferDate.
    pub doc_date: Option<DateTime<Utc>>,
    /// The status as inFlow sends it.
    pub doc_status: Option<String>,
    /// The customer of a sales order, the vendor of a purchase order.
    pub party_id: Option<String>,
    /// A cancelled document has no current events.
    pub is_cancelled: bool,
    /// The header `timestamp`.
    pub row_version: Option<String>,
    /// A digest of every line's id and `timestamp` (and of the whole document when some
    /// `timestamp` is missing), so that a change to any line is noticed.
    pub lines_version: String,
    /// Every serial occurrence of the document.
    pub events: Vec<EventDraft>,
    /// Genealogy: components built into finished units (manufacturing orders only).
    pub links: Vec<LinkDraft>,
    /// The odd data met.
    pub warnings: Vec<Warning>,
}

/// What the mapping of one document may need from others: the serials completed stock counts
/// added or removed, to recognise the stock adjustments those counts made (see
/// [`stock_count::CountEvidence`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The serials that completed stock counts moved; empty when nothing is known of them.
    pub counts: &'a [stock_count::CountEvidence],
}

/// Why a document cannot be derived at all (the run quarantines it).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MappingError {
    /// The raw JSON is not an object, or its fields have the wrong types.
    #[error("{doc_type} is not a JSON object of the expected shape: {reason}")]
    Shape {
        /// The type it was read as.
        doc_type: DocType,
        /// The parser's error.
        reason: String,
    },
    /// The document has no id, or a blank one.
    #[error("{doc_type} has no `{field}`, so it cannot be stored")]
    MissingId {
        /// The type it was read as.
        doc_type: DocType,
        /// The id property that is missing.
        field: &'static str,
    },
}

/// Derives the events of one document from its raw JSON.
pub fn derive(doc_type: DocType, raw: &str) -> Result<Derived, MappingError> {
    derive_with(doc_type, raw, Context::default())
}

/// Derives the events of one document, knowing what `context` says of other documents.
pub fn derive_with(doc_type: DocType, raw: &str, context: Context<'_>) -> Result<Derived, MappingError> {
    match doc_type {
        DocType::SalesOrder => sales::derive(parse(doc_type, raw)?, raw),
        DocType::PurchaseOrder => purchase::derive(parse(doc_type, raw)?, raw),
        DocType::StockAdjustment => adjustment::derive(parse(doc_type, raw)?, raw, context.counts),
        DocType::StockTransfer => transfer::derive(parse(doc_type, raw)?, raw),
        DocType::ManufacturingOrder => manufacturing::derive(parse(doc_type, raw)?, raw),
        DocType::StockCount => stock_count::derive(parse(doc_type, raw)?, raw),
    }
}

fn parse<T: DeserializeOwned>(doc_type: DocType, raw: &str) -> Result<T, MappingError> {
    // serde would read an array positionally into the struct's fields; a document is an object.
    if !raw.trim_start().starts_with('{') {
        return Err(MappingError::Shape { doc_type, reason: "not a JSON object".into() });
    }
    serde_json::from_str(raw).map_err(|e| MappingError::Shape { doc_type, reason: e.to_string() })
}

/// Parses an inFlow date: RFC 3339 with an offset as the API sends, or, leniently, a date-time
/// without offset or a bare date (both taken as UTC).
pub fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    parse_date_exact(s).map(|t| t.trunc_subsecs(6))
}

/// Kept to the microsecond, what Postgres stores: a finer time would never compare equal to its
/// stored self, and every re-derived event would look changed.
fn parse_date_exact(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
}

/// Builds a document's [`Derived`]: collects events and warnings and computes its version.
pub(crate) struct Builder {
    derived: Derived,
    version: Sha256,
    missing_stamp: bool,
}

/// Where a line's serials are and what they mean.
pub(crate) struct LineRef<'a> {
    pub collection: &'static str,
    pub index: usize,
    pub id: Option<&'a str>,
    pub product_id: Option<&'a str>,
    pub quantity: &'a Quantity,
}

/// What one line's serials record.
pub(crate) struct Occurrence<'a> {
    pub event_type: EventType,
    pub quantity_delta: i16,
    pub location_id: Option<&'a str>,
    pub sublocation: Option<&'a str>,
    pub occurred_at: Option<DateTime<Utc>>,
}

impl Builder {
    /// Starts a document's build from its header; a missing or blank id is an error.
    pub fn new(
        doc_type: DocType,
        id: Option<&str>,
        number: Option<&str>,
        status: Option<&str>,
        is_cancelled: bool,
        timestamp: Option<&str>,
    ) -> Result<Builder, MappingError> {
        let doc_id = id
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(MappingError::MissingId { doc_type, field: doc_type.id_field() })?;
        let mut version = Sha256::new();
        version.update(timestamp.unwrap_or("").as_bytes());
        Ok(Builder {
            derived: Derived {
                doc_type,
                doc_id: doc_id.to_string(),
                doc_number: number.map(str::to_string),
                doc_date: None,
                doc_status: status.map(str::to_string),
                party_id: None,
                is_cancelled,
                row_version: timestamp.map(str::to_string),
                lines_version: String::new(),
                events: Vec::new(),
                links: Vec::new(),
                warnings: Vec::new(),
            },
            version,
            missing_stamp: timestamp.is_none(),
        })
    }

    /// Whether the document is cancelled (its types then record no events).
    pub fn is_cancelled(&self) -> bool {
        self.derived.is_cancelled
    }

    /// Parses a document or line date; one that does not parse is a warning and `None`.
    pub fn date(&mut self, field: &str, value: Option<&str>, line: Option<&LineRef<'_>>) -> Option<DateTime<Utc>> {
        let value = value.filter(|v| !v.trim().is_empty())?;
        let parsed = parse_date(value);
        if parsed.is_none() {
            self.warn(WarningKind::BadDate, line, format!("`{field}` is not a date: {value:?}"));
        }
        parsed
    }

    /// Sets the document's date (`doc_date`).
    pub fn set_doc_date(&mut self, date: Option<DateTime<Utc>>) {
        self.derived.doc_date = date;
    }

    /// Sets the customer or vendor (`party_id`).
    pub fn set_party(&mut self, party_id: Option<&str>) {
        self.derived.party_id = party_id.map(str::to_string);
    }

    /// Records a line's version; every line of every collection, with or without serials.
    pub fn stamp(&mut self, collection: &str, index: usize, id: Option<&str>, timestamp: Option<&str>) {
        self.missing_stamp |= timestamp.is_none();
        for part in [collection, id.unwrap_or(""), &index.to_string(), timestamp.unwrap_or("")] {
            self.version.update(part.as_bytes());
            self.version.update([0]);
        }
    }

    /// Records a warning, of the whole document when `line` is `None`.
    pub fn warn(&mut self, kind: WarningKind, line: Option<&LineRef<'_>>, detail: String) {
        self.derived.warnings.push(Warning {
            kind,
            line_collection: line.map(|l| l.collection),
            line_id: line.map(|l| line_id(l)),
            detail,
        });
    }

    /// The serials of a line that can be recorded, with warnings for the others.
    pub fn serials<'l>(&mut self, line: &LineRef<'l>) -> Vec<&'l str> {
        let raw = &line.quantity.serial_numbers;
        if raw.is_empty() {
            return Vec::new();
        }
        if line.id.is_none_or(|id| id.trim().is_empty()) {
            self.warn(WarningKind::MissingLineId, Some(line), format!("line {} has no id", line.index + 1));
        }
        if line.product_id.is_none_or(|p| p.trim().is_empty()) {
            self.warn(WarningKind::MissingProduct, Some(line), "line with serials has no productId".into());
        }
        let mut seen = HashSet::with_capacity(raw.len());
        let mut serials = Vec::with_capacity(raw.len());
        for serial in raw {
            if serial.trim().is_empty() {
                self.warn(WarningKind::EmptySerial, Some(line), format!("empty serial {serial:?} skipped"));
            } else if !seen.insert(serial.as_str()) {
                self.warn(
                    WarningKind::RepeatedSerial,
                    Some(line),
                    format!("serial {serial:?} repeated in the line; recorded once"),
                );
            } else {
                if serial.trim() != serial {
                    self.warn(
                        WarningKind::PaddedSerial,
                        Some(line),
                        format!("serial {serial:?} has surrounding spaces; stored verbatim"),
                    );
                }
                serials.push(serial.as_str());
            }
        }
        match line.quantity.amount() {
            Some(q) if q.abs() == Decimal::from(raw.len()) => {}
            q => {
                let q = q.map_or("no quantity".to_string(), |q| format!("quantity {}", q.normalize()));
                self.warn(WarningKind::SerialCountMismatch, Some(line), format!("{} serials for {q}", raw.len()));
            }
        }
        serials
    }

    /// Records one event per serial.
    pub fn emit(&mut self, line: &LineRef<'_>, serials: &[&str], what: Occurrence<'_>) {
        for serial in serials {
            self.derived.events.push(EventDraft {
                serial: (*serial).to_string(),
                product_id: line.product_id.map(str::to_string),
                line_collection: line.collection,
                line_id: line_id(line),
                event_type: what.event_type,
                occurred_at: what.occurred_at,
                location_id: what.location_id.map(str::to_string),
                sublocation: what.sublocation.map(str::to_string),
                quantity_delta: what.quantity_delta,
            });
        }
    }

    /// Records a genealogy link.
    pub fn link(&mut self, link: LinkDraft) {
        self.derived.links.push(link);
    }

    /// The document as derived, with its `lines_version` computed; `raw` is its JSON.
    pub fn finish(mut self, raw: &str) -> Result<Derived, MappingError> {
        // Without a `timestamp` somewhere, only the content itself can tell a change.
        if self.missing_stamp {
            self.version.update(raw.as_bytes());
        }
        let digest = self.version.finalize();
        self.derived.lines_version = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Ok(self.derived)
    }
}

/// A line's id, or its position when inFlow gave none (so the event key stays unique).
fn line_id(line: &LineRef<'_>) -> String {
    match line.id.map(str::trim) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => format!("#{}", line.index + 1),
    }
}

/// The sign of a line quantity: inFlow sends returns and outgoing adjustments as negatives.
pub(crate) fn is_negative(q: &Quantity) -> bool {
    q.amount().is_some_and(|a| a.is_sign_negative() && !a.is_zero())
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/tests/fixtures/inflow/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    pub fn at(s: &str) -> Option<DateTime<Utc>> {
        Some(parse_date(s).expect("test date"))
    }

    /// An event as (serial, line id, delta, location, sublocation, time).
    pub type Row = (String, String, i16, Option<String>, Option<String>, Option<DateTime<Utc>>);

    /// The events of one type.
    pub fn of(d: &Derived, t: EventType) -> Vec<Row> {
        d.events
            .iter()
            .filter(|e| e.event_type == t)
            .map(|e| {
                (
                    e.serial.clone(),
                    e.line_id.clone(),
                    e.quantity_delta,
                    e.location_id.clone(),
                    e.sublocation.clone(),
                    e.occurred_at,
                )
            })
            .collect()
    }

    pub fn warnings(d: &Derived) -> Vec<WarningKind> {
        d.warnings.iter().map(|w| w.kind).collect()
    }

    /// A fixture file of `tests/fixtures/inflow`, parsed.
    pub fn fixture_json(name: &str) -> serde_json::Value {
        serde_json::from_str(&fixture(name)).unwrap()
    }

    /// What the mapping makes of a document that must map.
    pub fn run(doc_type: DocType, v: &serde_json::Value) -> Derived {
        derive(doc_type, &v.to_string()).unwrap()
    }

    pub fn s(x: &str) -> Option<String> {
        Some(x.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_with_offsets_and_leniently_without() {
        assert_eq!(parse_date("2022-05-30T22:52:50+02:00").unwrap().to_rfc3339(), "2022-05-30T20:52:50+00:00");
        assert_eq!(parse_date("2025-07-01T09:00:00Z").unwrap().to_rfc3339(), "2025-07-01T09:00:00+00:00");
        assert_eq!(parse_date("2020-01-31").unwrap().to_rfc3339(), "2020-01-31T00:00:00+00:00");
        assert_eq!(parse_date("2020-01-31T10:00:00.5").unwrap().to_rfc3339(), "2020-01-31T10:00:00.500+00:00");
        // Postgres keeps microseconds; a finer time would never match its stored value.
        assert_eq!(
            parse_date("2025-07-01T09:00:00.1234567Z").unwrap().to_rfc3339(),
            "2025-07-01T09:00:00.123456+00:00"
        );
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(parse_date(""), None);
    }

    #[test]
    fn doc_types_round_trip_their_names() {
        for t in DocType::ALL {
            assert_eq!(t.as_str().parse::<DocType>().unwrap(), t);
            assert_eq!(t.stream().parse::<DocType>().unwrap(), t);
            assert_eq!(DocType::from_stream(t.stream()), Some(t));
        }
        for e in EventType::ALL {
            assert_eq!(e.as_str().parse::<EventType>().unwrap(), *e);
        }
    }

    #[test]
    fn a_document_without_id_is_an_error_and_bad_json_too() {
        assert_eq!(
            derive(DocType::StockTransfer, r#"{"transferNumber":"ST-1"}"#),
            Err(MappingError::MissingId { doc_type: DocType::StockTransfer, field: "stockTransferId" })
        );
        assert!(matches!(derive(DocType::SalesOrder, "[1,2]"), Err(MappingError::Shape { .. })));
    }

    #[test]
    fn any_line_timestamp_change_changes_the_version_and_nothing_else_does() {
        let base = serde_json::json!({
            "stockTransferId": "t1", "status": "completed", "timestamp": "0000000000000010",
            "lines": [
                {"stockTransferLineId": "l1", "timestamp": "0000000000000011", "quantity": {"standardQuantity": "1", "serialNumbers": ["A"]}},
                {"stockTransferLineId": "l2", "timestamp": "0000000000000012", "quantity": {"standardQuantity": "1", "serialNumbers": ["B"]}}
            ]
        });
        let version = |v: &serde_json::Value| derive(DocType::StockTransfer, &v.to_string()).unwrap().lines_version;
        let v0 = version(&base);
        assert_eq!(v0.len(), 16);
        let mut reordered_keys = base.clone();
        reordered_keys["remarks"] = "irrelevant to the version when every timestamp is there".into();
        assert_eq!(version(&reordered_keys), v0);
        let mut line_edit = base.clone();
        line_edit["lines"][1]["timestamp"] = "0000000000000020".into();
        assert_ne!(version(&line_edit), v0);
        let mut line_removed = base.clone();
        line_removed["lines"].as_array_mut().unwrap().pop();
        assert_ne!(version(&line_removed), v0);
        // Without timestamps the content decides.
        let mut unstamped = base.clone();
        unstamped["lines"][0].as_object_mut().unwrap().remove("timestamp");
        let u0 = version(&unstamped);
        unstamped["remarks"] = "changed".into();
        assert_ne!(version(&unstamped), u0);
    }
}
