//! The page handlers. Each reads through the functions the matching command uses, and renders
//! with maud (every value escaped).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::layout::{Shown, document_href, encode, page, serial_href, time};
use super::{AppState, PageError, lane};
use crate::store::anomalies::AnomalyFilter;
use crate::store::query::EventFilter;
use crate::timeline::{self, History};

type Shared = State<Arc<AppState>>;
type PageResult = Result<Response, PageError>;

/// The shipped recall queries, run as `audit sql --file sql/recall.sql` runs them.
const RECALL_BY_PO: &str = include_str!("../../sql/recall.sql");
const RECALL_BY_SERIAL: &str = include_str!("../../sql/recall_serial.sql");

/// Suggestions listed on the search page.
const SEARCH_LIMIT: i64 = 50;

/// The format asked for with `?format=`: the page, or a download.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Download {
    #[default]
    /// The page.
    Html,
    /// A CSV download.
    Csv,
    /// A JSON download.
    Json,
}

fn html_page(title: &str, state: &AppState, body: Markup) -> Response {
    page(title, &state.zone, body).into_response()
}

/// A download, named after what it holds (only safe characters in the file name).
fn attachment(name: &str, ext: &str, content_type: &'static str, body: Vec<u8>) -> Response {
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .take(80)
        .collect();
    let disposition = format!("attachment; filename=\"{safe}.{ext}\"");
    ([(header::CONTENT_TYPE, content_type.to_string()), (header::CONTENT_DISPOSITION, disposition)], body)
        .into_response()
}

/// A CSV download, its cells made safe for a spreadsheet: these files are opened in Excel or
/// LibreOffice, which run a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return as
/// a formula (`=HYPERLINK(...)` in a serial typed into inFlow). Such a cell gets a leading `'`
/// (OWASP's rule), unless it is a plain number such as `-1`. `audit ... --format csv` on the
/// command line stays exact.
fn csv_bytes(columns: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> Result<Vec<u8>, PageError> {
    let mut buf = Vec::new();
    let rows = rows.into_iter().map(|row| row.into_iter().map(spreadsheet_safe).collect::<Vec<_>>());
    crate::output::write_csv(&mut buf, columns, rows).map_err(|e| PageError::failed("writing the CSV", e))?;
    Ok(buf)
}

/// `'=1+2` for `=1+2`; `-1` and `+3.5` stay numbers.
pub fn spreadsheet_safe(cell: String) -> String {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let number = {
        let digits = cell.trim_start_matches(['+', '-']);
        cell.len() - digits.len() == 1
            && !digits.is_empty()
            && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
            && digits.matches('.').count() <= 1
            && digits.starts_with(|c: char| c.is_ascii_digit())
    };
    if risky && !number { format!("'{cell}") } else { cell }
}

fn json_bytes(value: &impl serde::Serialize) -> Result<Vec<u8>, PageError> {
    serde_json::to_vec_pretty(value).map_err(|e| PageError::failed("writing the JSON", e))
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The serial search box.
pub fn search_form(q: &str) -> Markup {
    html! {
        form action="/" method="get" role="search" {
            input type="search" name="q" value=(q) placeholder="Serial number, or its beginning" aria-label="Serial number";
            button type="submit" { "Find serial" }
        }
    }
}

/// The parameters of `/`: `q`, the serial (or its beginning) to look for.
#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
}

/// Search: a serial box answered with the CLI's suggestions (the same serial ignoring case,
/// spaces and punctuation, one or two edits away, or serials starting with it), plus boxes for a
/// document and a recall.
pub async fn search(State(state): Shared, Query(query): Query<SearchQuery>) -> PageResult {
    let q = query.q.clone().unwrap_or_default();
    let matches = match nonempty(&query.q) {
        Some(q) => Some(
            state
                .store
                .similar_serials(q, state.company_id.as_deref(), SEARCH_LIMIT)
                .await
                .map_err(|e| PageError::failed(format!("searching for serials like {q:?}"), e))?,
        ),
        None => None,
    };
    let body = html! {
        h1 { "Find a serial" }
        (search_form(&q))
        @if let Some(matches) = &matches {
            @if matches.is_empty() {
                p.error { "No serial is " (format!("{:?}", q.trim())) " or starts with it (ignoring case)." }
            } @else {
                p { (matches.len()) @if matches.len() as i64 == SEARCH_LIMIT { "+" } " matching serial" @if matches.len() != 1 { "s" } ":" }
                ul.plain.matches {
                    @for s in matches { li { a href=(serial_href(s)) { (Shown(s)) } } }
                }
            }
        }
        h2 { "A document" }
        form action="/document" method="get" {
            input type="search" name="number" placeholder="PO-000012, SO-000345, …" aria-label="Document number";
            button type="submit" { "Show its serials" }
        }
        h2 { "Recall" }
        form action="/recall" method="get" {
            input type="search" name="po" placeholder="Purchase order number" aria-label="Purchase order number";
            button type="submit" { "Recall a PO" }
        }
        form action="/recall" method="get" {
            input type="search" name="serial" placeholder="Component serial" aria-label="Component serial";
            button type="submit" { "Recall a component" }
        }
    };
    Ok(html_page("Search", &state, body))
}

/// The parameters of `/serial`: `serial`, `on` (a date) and `format`.
#[derive(Debug, Deserialize)]
pub struct SerialQuery {
    serial: Option<String>,
    /// A business date: where was it at the end of that day (local time)?
    on: Option<String>,
    #[serde(default)]
    format: Download,
}

/// Serial: per product, a status card, the lane, genealogy, the timeline and its documents.
pub async fn serial(State(state): Shared, Query(query): Query<SerialQuery>) -> PageResult {
    let Some(serial) = query.serial.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string) else {
        return Err(PageError::BadRequest("Which serial? Give it as /serial?serial=SN-001234.".into()));
    };
    let on = match nonempty(&query.on) {
        Some(text) => Some(NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
            PageError::BadRequest(format!("{text:?} is not a date: give ?on= as YYYY-MM-DD, for example 2025-06-30"))
        })?),
        None => None,
    };
    let company = state.company_id.as_deref();
    let failed = |e| PageError::failed(format!("reading the history of serial {serial:?}"), e);
    let rows = state
        .store
        .serial_events(&serial, &EventFilter { company_id: company, ..Default::default() })
        .await
        .map_err(failed)?;
    if rows.is_empty() {
        let (message, suggestions) = crate::commands::timeline::unknown_serial(&state.store, &serial, company, None)
            .await
            .map_err(|e| PageError::failed(format!("looking for serials like {serial:?}"), e))?;
        return Err(PageError::NotFound { title: "Unknown serial".into(), message, suggestions });
    }
    let (histories, end) = match on {
        Some(date) => {
            let until = crate::output::end_of_day(date);
            (state.store.serial_on(&serial, company, until).await.map_err(failed)?, until)
        }
        None => {
            let links = state.store.genealogy_of(&serial, company).await.map_err(failed)?;
            let histories = blocking(move || {
                let mut histories = timeline::histories(rows);
                timeline::attach_genealogy(&mut histories, links);
                Ok(histories)
            })
            .await?;
            (histories, Utc::now())
        }
    };
    // Building the page or the download takes time in proportion to the serial's history: off
    // the server's tasks, so that one long history cannot keep every other page waiting.
    let zone = state.zone.clone();
    blocking(move || serial_response(&serial, on, &histories, end, query.format, &zone)).await
}

/// Runs `f` on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PageError> + Send + 'static,
) -> Result<T, PageError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| PageError::failed("building the page", e))?
}

fn serial_response(
    serial: &str,
    on: Option<NaiveDate>,
    histories: &[History],
    end: DateTime<Utc>,
    format: Download,
    zone: &str,
) -> PageResult {
    match format {
        Download::Csv => {
            let body = csv_bytes(
                crate::commands::timeline::CSV_COLUMNS,
                histories.iter().flat_map(crate::commands::timeline::csv_rows),
            )?;
            return Ok(attachment(serial, "csv", "text/csv; charset=utf-8", body));
        }
        Download::Json => {
            let body = json_bytes(&serde_json::json!({ "serial": serial, "histories": histories }))?;
            return Ok(attachment(serial, "json", "application/json", body));
        }
        Download::Html => {}
    }
    let several_companies = histories.windows(2).any(|w| w[0].company_id != w[1].company_id);
    let here = format!("{}&", serial_href(serial));
    let on_suffix = on.map_or(String::new(), |d| format!("&on={d}"));
    let downloads = (format!("{here}format=csv{on_suffix}"), format!("{here}format=json{on_suffix}"));
    let body = html! {
        h1 { "Serial " (Shown(serial)) }
        form action="/serial" method="get" {
            input type="hidden" name="serial" value=(serial);
            input type="date" name="on" value=(on.map(|d| d.to_string()).unwrap_or_default()) aria-label="Where was it on this date?";
            button type="submit" { "Where was it on this date?" }
            @if on.is_some() { a href=(serial_href(serial)) { "Back to now" } }
        }
        p {
            "Download: " a href=(downloads.0) { "CSV" } " · "
            a href=(downloads.1) { "JSON" }
        }
        @if let Some(date) = on {
            p.muted { "As it stood at the end of " (date) " (" (zone) "), from the events recorded for that date and before." }
            @if histories.is_empty() {
                p.error { "Nothing had happened to " (Shown(serial)) " by the end of " (date) "." }
            }
        }
        @for h in histories {
            (history_section(h, several_companies, end, &downloads))
        }
    };
    Ok(page(&format!("Serial {serial}"), zone, body).into_response())
}

fn status_badge(status: &str) -> Markup {
    html! { span class=(format!("status {status}")) { (status.replace('_', " ")) } }
}

/// At most this many timeline rows and document links on a page: a serial moved a hundred
/// thousand times would otherwise make a page of tens of megabytes.
pub const MAX_TIMELINE_ROWS: usize = 1000;
const MAX_DOCUMENTS: usize = 500;

/// `downloads`: the addresses of the CSV and JSON downloads, which have every event.
fn history_section(h: &History, several_companies: bool, end: DateTime<Utc>, downloads: &(String, String)) -> Markup {
    let place = match (&h.now.location_name, &h.now.location_id) {
        (Some(name), _) | (None, Some(name)) => {
            let sub = h.now.sublocation.as_deref().filter(|s| !s.is_empty());
            Some(match sub {
                Some(sub) => format!("{name} / {sub}"),
                None => name.clone(),
            })
        }
        _ => None,
    };
    let mut documents: Vec<(&str, String)> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for e in h.events.iter().filter(|e| !e.retracted) {
        if let Some(n) = &e.event.doc_number
            && seen.insert(n.as_str())
        {
            documents.push((n.as_str(), e.event.doc_type.replace('_', " ")));
        }
    }
    let total_documents = documents.len();
    documents.truncate(MAX_DOCUMENTS);
    // The latest events, when there are too many for one page; the downloads have them all.
    let shown = &h.events[h.events.len().saturating_sub(MAX_TIMELINE_ROWS)..];
    let hidden = h.events.len() - shown.len();
    html! {
        section.history {
            div.card.now {
                div { strong { (h.product_label()) } @if several_companies { span.muted { " · company " (h.company_id) } } }
                div { (status_badge(h.now.status.as_str()))
                    @if let Some(place) = &place { " at " strong { (place) } }
                    @if h.now.since.is_some() { " since " (time(h.now.since)) }
                }
                div.muted { (h.now.summary) }
            }
            @let genealogy = timeline::genealogy_lines(h);
            @if !genealogy.is_empty() {
                h2 { "Genealogy" }
                ul.plain.genealogy {
                    @for r in &h.built_into {
                        li { "Built into " a href=(serial_href(&r.finished_serial)) { (Shown(&r.finished_serial)) }
                            " (" (r.finished_product_name.clone().or_else(|| r.finished_product_id.clone()).unwrap_or_default()) ")"
                            @if let Some(n) = &r.doc_number { " on " a href=(document_href(n)) { (Shown(n)) } }
                            @if r.built_at.is_some() { ", " (time(r.built_at)) } @else { " (not completed yet)" } }
                    }
                    @for r in &h.components {
                        li { "Contains " a href=(serial_href(&r.component_serial)) { (Shown(&r.component_serial)) }
                            " (" (r.component_product_name.clone().or_else(|| r.component_product_id.clone()).unwrap_or_default()) ")"
                            @if let Some(n) = &r.doc_number { " from " a href=(document_href(n)) { (Shown(n)) } } }
                    }
                }
            }
            h2 { "Where it was" }
            (lane::svg(h, end))
            h2 { "Timeline" }
            @if hidden > 0 {
                p.muted.truncated { "The latest " (shown.len()) " of " (h.events.len()) " events; the " (hidden) " older ones are in the "
                    a href=(downloads.0) { "CSV" } " and " a href=(downloads.1) { "JSON" } " downloads." }
            }
            (timeline_table(shown))
            @if !documents.is_empty() {
                h2 { "Documents" }
                @if total_documents > documents.len() {
                    p.muted.truncated { "The first " (documents.len()) " of " (total_documents) " documents; the downloads name them all." }
                }
                ul.plain.documents {
                    @for (number, kind) in &documents {
                        li { (kind) " " a href=(document_href(number)) { (Shown(number)) } " · every serial on it"
                            @if kind == "purchase order" { " · " a href=(format!("/recall?po={}", encode(number))) { "recall" } } }
                    }
                }
            }
        }
    }
}

/// The timeline's rows, retracted ones marked; the party named as the terminal's timeline does.
fn timeline_table(shown: &[timeline::Entry]) -> Markup {
    html! {
    div.scroll {
        table.timeline {
            thead { tr { th { "date" } th { "event" } th { "document" } th { "location" } th.num { "change" } th.num { "on hand" } } }
            tbody {
                @for entry in shown {
                    @let e = &entry.event;
                    tr.event.retracted[entry.retracted] {
                        td { (time(e.occurred_at)) }
                        td { (e.event_type.replace('_', " ")) }
                        td { (e.doc_type.replace('_', " ")) " "
                            @match &e.doc_number {
                                Some(n) => a href=(document_href(n)) { (Shown(n)) },
                                None => span.muted { (e.doc_id) },
                            }
                            @if let Some((word, name)) = timeline::party(e) { " " (word) " " (Shown(name)) }
                        }
                        td { @if e.location_id.is_some() { (timeline::place_label(e)) } }
                        td.num { @match e.quantity_delta { 1 => "+1", 0 => "", d => (d) } }
                        td.num { (entry.on_hand) }
                    }
                }
            }
        }
    }
    }
}

/// The parameters of `/document`: `number` (exact, as inFlow shows it) and `format`.
#[derive(Debug, Deserialize)]
pub struct DocumentQuery {
    number: Option<String>,
    #[serde(default)]
    format: Download,
}

/// CSV columns of the document page's download.
pub const DOCUMENT_CSV_COLUMNS: &[&str] = &[
    "company_id",
    "doc_type",
    "doc_number",
    "serial",
    "product_id",
    "product_name",
    "events_on_document",
    "history_status",
    "history_location_id",
    "history_sublocation",
    "last_event",
    "last_event_at",
    "last_doc_number",
];

/// Document: every serial on it, with what happened there and each one's status now.
pub async fn document(State(state): Shared, Query(query): Query<DocumentQuery>) -> PageResult {
    let Some(number) = nonempty(&query.number).map(str::to_string) else {
        return Err(PageError::BadRequest("Which document? Give its number as /document?number=PO-000012.".into()));
    };
    let company = state.company_id.as_deref();
    let failed = |e| PageError::failed(format!("reading document {number:?}"), e);
    let serials = state.store.document_serials(&number, company).await.map_err(failed)?;
    if serials.is_empty() {
        return Err(PageError::NotFound {
            title: "Unknown document".into(),
            message: format!(
                "No recorded serial is on a document numbered {number:?} (numbers are exact, as inFlow shows them)."
            ),
            suggestions: Vec::new(),
        });
    }
    // Each serial's status now, as `audit lookup` gives it.
    let wanted: Vec<String> = serials.iter().map(|s| s.serial.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let looked_up = state.store.lookup(&wanted, company).await.map_err(failed)?;
    let status: BTreeMap<(Option<String>, Option<String>, String), &crate::store::stock::LookupRow> =
        looked_up.iter().map(|r| ((r.company_id.clone(), r.product_id.clone(), r.serial.clone()), r)).collect();
    let names = state.store.location_names().await.map_err(failed)?;
    let place = |company: &str, id: Option<&str>, sub: Option<&str>| place_name(&names, company, id, sub);
    let now_of = |s: &crate::store::browse::DocumentSerial| {
        status.get(&(Some(s.company_id.clone()), s.product_id.clone(), s.serial.clone())).copied()
    };
    match query.format {
        Download::Csv => {
            let rows = serials.iter().map(|s| {
                let n = now_of(s);
                let o = |f: fn(&crate::store::stock::LookupRow) -> Option<String>| n.and_then(f).unwrap_or_default();
                vec![
                    s.company_id.clone(),
                    s.doc_type.clone(),
                    s.doc_number.clone().unwrap_or_default(),
                    s.serial.clone(),
                    s.product_id.clone().unwrap_or_default(),
                    s.product_name.clone().unwrap_or_default(),
                    s.events.join(" "),
                    o(|r| r.history_status.clone()),
                    o(|r| r.history_location_id.clone()),
                    o(|r| r.history_sublocation.clone()),
                    o(|r| r.last_event.clone()),
                    crate::output::iso_time(n.and_then(|r| r.last_event_at)),
                    o(|r| r.last_doc_number.clone()),
                ]
            });
            return Ok(attachment(&number, "csv", "text/csv; charset=utf-8", csv_bytes(DOCUMENT_CSV_COLUMNS, rows)?));
        }
        Download::Json => {
            let items: Vec<Value> =
                serials.iter().map(|s| serde_json::json!({ "serial": s, "now": now_of(s) })).collect();
            return Ok(attachment(&number, "json", "application/json", json_bytes(&items)?));
        }
        Download::Html => {}
    }
    let kinds: BTreeSet<&str> = serials.iter().map(|s| s.doc_type.as_str()).collect();
    let body = html! {
        h1 { "Document " (Shown(&number)) }
        p { (serials.len()) " serial" @if serials.len() != 1 { "s" } " on "
            (kinds.iter().map(|k| k.replace('_', " ")).collect::<Vec<_>>().join(", "))
            " " (Shown(&number)) ". Download: "
            a href=(format!("{}&format=csv", document_href(&number))) { "CSV" } " · "
            a href=(format!("{}&format=json", document_href(&number))) { "JSON" }
            @if kinds.contains("purchase_order") { " · " a href=(format!("/recall?po={}", encode(&number))) { "recall this PO" } }
        }
        div.scroll {
            table.document {
                thead { tr { th { "serial" } th { "product" } th { "on this document" } th { "status now" } th { "where" } th { "last event" } } }
                tbody {
                    @for s in &serials {
                        @let n = now_of(s);
                        tr.serial {
                            td { a href=(serial_href(&s.serial)) { (Shown(&s.serial)) } }
                            td { (s.product_name.clone().or_else(|| s.product_id.clone()).unwrap_or_default()) }
                            td { (s.events.iter().map(|e| e.replace('_', " ")).collect::<Vec<_>>().join(", ")) }
                            td { @if let Some(st) = n.and_then(|r| r.history_status.as_deref()) { (status_badge(st)) } }
                            td { (place(&s.company_id, n.and_then(|r| r.history_location_id.as_deref()), n.and_then(|r| r.history_sublocation.as_deref()))) }
                            td { @if let Some(r) = n { (r.last_event.clone().unwrap_or_default().replace('_', " ")) " "
                                    @if let Some(d) = &r.last_doc_number { a href=(document_href(d)) { (Shown(d)) } } " " (time(r.last_event_at)) } }
                        }
                    }
                }
            }
        }
    };
    Ok(html_page(&format!("Document {number}"), &state, body))
}

/// The rows of a recall.
struct Collect {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

/// The parameters of `/recall`: `po` (a purchase order number) or `serial` (a component), and
/// `format`.
#[derive(Debug, Deserialize)]
pub struct RecallQuery {
    po: Option<String>,
    serial: Option<String>,
    #[serde(default)]
    format: Download,
}

fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Recall: the shipped `sql/recall.sql` (from a PO) or `sql/recall_serial.sql` (from a
/// component serial), run read-only as `audit sql` runs them.
pub async fn recall(State(state): Shared, Query(query): Query<RecallQuery>) -> PageResult {
    let (text, param, value, label) = match (nonempty(&query.po), nonempty(&query.serial)) {
        (Some(po), _) => (RECALL_BY_PO, "po_number", po.to_string(), format!("purchase order {po}")),
        (None, Some(serial)) => (RECALL_BY_SERIAL, "serial", serial.to_string(), format!("serial {serial}")),
        (None, None) => {
            return Err(PageError::BadRequest(
                "What to recall? Give /recall?po=PO-000012 or /recall?serial=CHIP-000123.".into(),
            ));
        }
    };
    // The shipped queries have no company column to filter on: with --company-id, a recall
    // is answered only when no other company is in the database, so none of theirs can show.
    if let Some(company) = &state.company_id {
        let companies = state.store.companies().await.map_err(|e| PageError::failed("listing the companies", e))?;
        if companies.iter().any(|c| c != company) {
            return Err(PageError::Unavailable(format!(
                "Recall is not available in this view: it is limited to company {company} (--company-id), and the \
                 shipped recall queries cover every company in the database, so they would show other companies' \
                 serials and customers. Run `audit sql --query recall` instead, or serve without --company-id."
            )));
        }
    }
    // The value is bound, never pasted into the statement.
    let (columns, values) = state
        .store
        .bound_query(text, &[(param, value.as_str())])
        .await
        .map_err(|e| PageError::failed(format!("the recall of {label:?}"), e))?;
    let rows = Collect { columns, rows: values };
    match query.format {
        Download::Csv => {
            let columns: Vec<&str> = rows.columns.iter().map(String::as_str).collect();
            let body = csv_bytes(&columns, rows.rows.iter().map(|r| r.iter().map(cell_text).collect()))?;
            return Ok(attachment(&format!("recall-{value}"), "csv", "text/csv; charset=utf-8", body));
        }
        Download::Json => {
            let items: Vec<serde_json::Map<String, Value>> =
                rows.rows.iter().map(|r| rows.columns.iter().cloned().zip(r.iter().cloned()).collect()).collect();
            return Ok(attachment(&format!("recall-{value}"), "json", "application/json", json_bytes(&items)?));
        }
        Download::Html => {}
    }
    let col = |name: &str| rows.columns.iter().position(|c| c == name);
    let (status_col, customer_col) = (col("status"), col("customer_id"));
    let with_customers =
        rows.rows.iter().filter(|r| customer_col.and_then(|i| r.get(i)).is_some_and(|v| !v.is_null())).count();
    let this = match (nonempty(&query.po), nonempty(&query.serial)) {
        (Some(po), _) => format!("/recall?po={}", encode(po)),
        _ => format!("/recall?serial={}", encode(&value)),
    };
    let body = html! {
        h1 { "Recall of " (Shown(&label)) }
        @if rows.rows.is_empty() {
            p.error { "Nothing to recall: no serial "
                @if query.po.is_some() { "was received on purchase order " } @else { "is recorded as " }
                (format!("{value:?}")) "." }
        } @else {
            p { (rows.rows.len()) " unit" @if rows.rows.len() != 1 { "s" } " to trace; " (with_customers) " with customers. Download: "
                a href=(format!("{this}&format=csv")) { "CSV" } " · " a href=(format!("{this}&format=json")) { "JSON" } }
            div.scroll {
                table.recall {
                    thead { tr { @for c in &rows.columns { th { (c.replace('_', " ")) } } } }
                    tbody {
                        @for r in &rows.rows {
                            tr.unit {
                                @for (i, v) in r.iter().enumerate() {
                                    td { (recall_cell(&rows.columns[i], v, Some(i) == status_col)) }
                                }
                            }
                        }
                    }
                }
            }
            p.muted { "From the shipped query " code { @if query.po.is_some() { "sql/recall.sql" } @else { "sql/recall_serial.sql" } } ", run read-only as " code { "audit sql" } " runs it." }
        }
    };
    Ok(html_page(&format!("Recall {value}"), &state, body))
}

fn recall_cell(column: &str, v: &Value, is_status: bool) -> Markup {
    let text = cell_text(v);
    if text.is_empty() {
        return html! {};
    }
    match column {
        "serial" | "unit_serial" => html! { a href=(serial_href(&text)) { (Shown(&text)) } },
        "built_on" | "last_document" => html! { a href=(document_href(&text)) { (Shown(&text)) } },
        "received_at" | "since" => match DateTime::parse_from_rfc3339(&text.replace(' ', "T")) {
            Ok(t) => time(Some(t.to_utc())),
            Err(_) => html! { (text) },
        },
        _ if is_status => status_badge(&text),
        _ => html! { (Shown(&text.replace('_', " "))) },
    }
}

/// Anomalies: the rows `audit anomalies` lists (all kinds, the default transit days).
pub async fn anomalies(State(state): Shared) -> PageResult {
    let company = state.company_id.as_deref();
    let filter = AnomalyFilter { company_id: company, ..AnomalyFilter::default() };
    let failed = |e| PageError::failed("listing the anomalies", e);
    let rows = state.store.anomalies(&filter).await.map_err(failed)?;
    let stock_checked = state.store.has_snapshot(company).await.map_err(failed)?;
    let mut per_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rows {
        *per_kind.entry(r.kind.as_str()).or_default() += 1;
    }
    let body = html! {
        h1 { "Anomalies" }
        @if !stock_checked {
            p.muted { "There is no complete stock snapshot, so history and stock were not compared (" code { "audit snapshot" } " takes one)." }
        }
        @if rows.is_empty() {
            p { "No anomalies found." }
        } @else {
            p { (rows.len()) " anomalies: " (per_kind.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ")) "." }
            div.scroll {
                table.anomalies {
                    thead { tr { th { "kind" } th { "serial" } th { "product" } th { "since" } th { "what" } th { "evidence" } } }
                    tbody {
                        @for r in &rows {
                            tr.anomaly {
                                td { (r.kind.replace('_', " ")) }
                                td { a href=(serial_href(&r.serial)) { (Shown(&r.serial)) } }
                                td { (r.product_name.clone().or_else(|| r.product_id.clone()).unwrap_or_default()) }
                                td { (time(r.started_at)) }
                                td { (r.explanation) }
                                td { (crate::anomalies::evidence(r)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(html_page("Anomalies", &state, body))
}

/// Reconcile: the disagreements `audit reconcile` lists.
pub async fn reconcile(State(state): Shared) -> PageResult {
    let result = crate::commands::reconcile::disagreements(&state.store, state.company_id.as_deref()).await;
    let names = state.store.location_names().await.map_err(|e| PageError::failed("reading location names", e))?;
    let place = |company: &str, id: Option<&str>, sub: Option<&str>| place_name(&names, company, id, sub);
    let body = match result {
        Err(e) if state.company_id.is_some() && e.to_string().contains("no complete snapshot") => {
            html! { h1 { "Reconcile" } p { (e.to_string()) } }
        }
        Err(e) => return Err(PageError::failed("comparing the history with inFlow's stock", e)),
        Ok(found) if found.compared.is_empty() => html! {
            h1 { "Reconcile" }
            p { "No company has a complete stock snapshot yet: " code { "audit snapshot" } " (or " code { "audit ingest --snapshot" } ") takes one." }
        },
        Ok(found) => html! {
            h1 { "Reconcile" }
            @for (company, id, taken) in &found.compared {
                p.muted { "Company " (company) ": snapshot " (id) " of " (time(Some(*taken))) " against the history." }
            }
            @if found.disagreements.is_empty() {
                p { "The history and inFlow's stock agree." }
            } @else {
                p { (found.disagreements.len()) " disagreements." }
                div.scroll {
                    table.reconcile {
                        thead { tr { th { "kind" } th { "serial" } th { "product" } th { "inFlow stock" } th { "history" } } }
                        tbody {
                            @for (d, name) in &found.disagreements {
                                tr.disagreement {
                                    td { (d.kind.as_str().replace('_', " ")) }
                                    td { a href=(serial_href(&d.serial)) { (Shown(&d.serial)) } }
                                    td { (name.clone().or_else(|| d.product_id.clone()).unwrap_or_default()) }
                                    td { (d.inflow.iter().map(|p| format!("{}: {}", place(&d.company_id, p.location_id.as_deref(), p.sublocation.as_deref()), p.quantity_on_hand)).collect::<Vec<_>>().join("; ")) }
                                    td { @match &d.history_status {
                                        Some(status) => { (status_badge(status)) " at " (place(&d.company_id, d.history_location_id.as_deref(), d.history_sublocation.as_deref()))
                                            @if let Some(doc) = &d.history_document { " (" a href=(document_href(doc)) { (Shown(doc)) } ")" } },
                                        None => "no event",
                                    } }
                                }
                            }
                        }
                    }
                }
            }
        },
    };
    Ok(html_page("Reconcile", &state, body))
}

/// `West Coast DC / A-01-4`: the location's name (its id when it has none), and the sublocation.
fn place_name(
    names: &std::collections::HashMap<(String, String), String>,
    company: &str,
    id: Option<&str>,
    sub: Option<&str>,
) -> String {
    let Some(id) = id else { return String::new() };
    let name = names.get(&(company.to_string(), id.to_string())).cloned().unwrap_or_else(|| id.to_string());
    match sub.filter(|s| !s.is_empty()) {
        Some(sub) => format!("{name} / {sub}"),
        None => name,
    }
}

/// How long ago, in words: `3 h ago`.
fn ago(t: DateTime<Utc>) -> String {
    match (Utc::now() - t).num_minutes() {
        m if m < 1 => "just now".into(),
        m if m < 120 => format!("{m} min ago"),
        m if m < 48 * 60 => format!("{} h ago", m / 60),
        m => format!("{} days ago", m / (24 * 60)),
    }
}

/// When a walk last finished and how long ago, or never.
fn freshness(t: Option<DateTime<Utc>>) -> Markup {
    match t {
        Some(at) => html! { (time(t)) " " span.muted { (ago(at)) } },
        None => html! { span.muted { "never" } },
    }
}

/// Status: last runs, how fresh each stream is, warnings and the request budget used.
pub async fn status(State(state): Shared) -> PageResult {
    let failed = |e| PageError::failed("reading the status", e);
    let companies = match &state.company_id {
        Some(c) => vec![c.clone()],
        None => state.store.companies().await.map_err(failed)?,
    };
    let mut report = Vec::new();
    for company in companies {
        let warnings = state.store.recent_warnings(&company, 20).await.map_err(failed)?;
        let status = crate::commands::status::company_status(&state.store, company)
            .await
            .map_err(|e| PageError::failed("reading the status", e))?;
        report.push((status, warnings));
    }
    let body = html! {
        h1 { "Status" }
        @if report.is_empty() { p { "Nothing ingested yet: run " code { "audit ingest" } "." } }
        @for (c, warnings) in &report {
            section.company {
                h2 { "Company " (c.company_id) }
                div.card {
                    div { @match &c.lock { Some(holder) => { "Running now: " (holder) }, None => "No ingest running." } }
                    div { "Request budget: " strong { (c.requests_last_hour) } " of 1000 used by audit in the last hour (shared with the company's other integrations)." }
                    div.muted { "A complete run costs about " (c.cost.complete) " requests; a 30-day window about " (c.cost.window_30_days) "." }
                }
                h2 { "Streams" }
                div.scroll { table.streams {
                    thead { tr { th { "stream" } th.num { "documents" } th.num { "events" } th { "last complete walk" } th { "last window walk" } th { "unfinished walk" } } }
                    tbody { @for s in &c.streams {
                        tr.stream {
                            td { (s.stream) }
                            td.num { (s.documents) }
                            td.num { (s.events) }
                            td { (freshness(s.last_complete_at)) }
                            td { (freshness(s.last_window_at)) }
                            td { @if let Some(kind) = &s.walk_kind { (kind) " since " (time(s.walk_started_at)) } @else { "-" } }
                        }
                    } }
                } }
                h2 { "Recent runs" }
                div.scroll { table.runs {
                    thead { tr { th.num { "run" } th { "command" } th { "status" } th { "started" } th.num { "requests" } th.num { "documents" } th.num { "events +" } th.num { "events −" } th.num { "warnings" } th.num { "429s" } } }
                    tbody { @for r in &c.runs {
                        tr.run {
                            td.num { (r.run_id) } td { (r.command) } td { (r.status) } td { (time(Some(r.started_at))) }
                            td.num { (r.requests) } td.num { (r.work.documents_seen) } td.num { (r.work.events_inserted) } td.num { (r.work.events_retracted) }
                            td.num { (r.work.warnings) } td.num { (r.rate_limited) }
                        }
                        @if let Some(error) = &r.error { tr { td colspan="10" { span.error { "run " (r.run_id) " failed: " (error) } } } }
                    } }
                } }
                h2 { "Latest warnings" }
                @if warnings.is_empty() { p.muted { "None recorded." } } @else {
                    div.scroll { table.warnings {
                        thead { tr { th.num { "run" } th { "kind" } th { "document" } th { "detail" } } }
                        tbody { @for w in warnings {
                            tr.warning {
                                td.num { (w.run_id) } td { (w.kind) }
                                td { @if let Some(n) = &w.doc_number { a href=(document_href(n)) { (Shown(n)) } } @else { (w.doc_type.clone().unwrap_or_default()) } }
                                td { (w.detail) }
                            }
                        } }
                    } }
                }
            }
        }
    };
    Ok(html_page("Status", &state, body))
}

/// Any other path: 404 with the search box.
pub async fn not_found() -> PageError {
    PageError::NotFound {
        title: "Not found".into(),
        message: "There is no such page here. Search for a serial:".into(),
        suggestions: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Local;

    #[test]
    fn a_cell_a_spreadsheet_would_run_is_made_text() {
        for (cell, safe) in [
            ("=1+2", "'=1+2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("+A1", "'+A1"),
            ("-2+3", "'-2+3"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("-1", "-1"),
            ("+3.5", "+3.5"),
            ("-", "'-"),
            ("SN-001", "SN-001"),
            ("", ""),
        ] {
            assert_eq!(spreadsheet_safe(cell.to_string()), safe, "{cell:?}");
        }
    }

    #[test]
    fn a_date_ends_at_the_last_instant_of_the_local_day() {
        let d = NaiveDate::from_ymd_opt(2025, 6, 30).unwrap();
        let end = crate::output::end_of_day(d);
        assert_eq!(end.with_timezone(&Local).date_naive(), d);
        assert_eq!((end + chrono::Duration::nanoseconds(1)).with_timezone(&Local).date_naive(), d.succ_opt().unwrap());
    }
}
