//! `audit doctor`: what a company's inFlow API does where the reference cannot say, checked live
//! within a budget of [`BUDGET`] requests, before a first ingest or for a bug report.
//!
//! Each check is one or two small requests (a few documents, no includes unless the includes are
//! what is checked), judged by pure functions below. The answers the ingest uses (how each
//! stream pages, what `X-listCount` counts, which way the rate headers count) are stored in
//! `api_capabilities` by the command; the ingest reads them to choose how it walks.

use chrono::{NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::inflow::client::{ArrayPage, RateMeaning};
use crate::inflow::walk::{CountMeaning, Paging, id_of};
use crate::inflow::{Client, ClientError};
use crate::mapping::DocType;
use crate::store::capabilities::{self, Capability};

/// The most requests `audit doctor` sends.
pub const BUDGET: u64 = 25;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Works as the ingest prefers.
    Ok,
    /// Works otherwise; the ingest adapts (at some cost, said in the row).
    Adapts,
    /// Something the ingest (or `audit snapshot`) relies on does not work.
    Missing,
    /// Not used by the ingest: for the record and for bug reports.
    Info,
    /// Not checked: an earlier answer made it pointless, or the budget ran out.
    NotChecked,
}

impl Verdict {
    /// How a table shows the verdict.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Adapts => "adapts",
            Verdict::Missing => "MISSING",
            Verdict::Info => "info",
            Verdict::NotChecked => "not checked",
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// A stable name; also the `api_capabilities` row of the answer.
    pub check: String,
    /// What was checked, for people.
    pub label: String,
    /// What the answer means for the ingest.
    pub verdict: Verdict,
    /// What inFlow answered.
    pub result: String,
    /// What the ingest does about it.
    pub ingest: String,
    /// The short answer stored in `api_capabilities`; `None` for an inconclusive check.
    #[serde(rename = "answer")]
    pub value: Option<String>,
}

impl Check {
    fn new(check: impl Into<String>, label: impl Into<String>, verdict: Verdict) -> Check {
        Check {
            check: check.into(),
            label: label.into(),
            verdict,
            result: String::new(),
            ingest: String::new(),
            value: None,
        }
    }

    fn result(mut self, result: impl Into<String>) -> Check {
        self.result = result.into();
        self
    }

    fn ingest(mut self, ingest: impl Into<String>) -> Check {
        self.ingest = ingest.into();
        self
    }

    fn value(mut self, value: impl Into<String>) -> Check {
        self.value = Some(value.into());
        self
    }
}

/// Everything the doctor found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
    /// Requests sent (retries included).
    pub requests: u64,
    /// Why the checks could not be completed (inFlow unreachable, say).
    pub error: Option<String>,
}

impl Report {
    /// 0 when everything the ingest relies on works, 1 when something is missing, 2 when the
    /// checks could not be made.
    pub fn exit_code(&self) -> u8 {
        if self.error.is_some() {
            2
        } else if self.checks.iter().any(|c| c.verdict == Verdict::Missing) {
            1
        } else {
            0
        }
    }

    /// The answers to store, stamped now.
    pub fn capabilities(&self) -> Vec<Capability> {
        self.checks
            .iter()
            .filter_map(|c| {
                c.value.as_ref().map(|v| Capability::new(c.check.clone(), v.clone(), Some(c.result.clone())))
            })
            .collect()
    }
}

/// The streams every company has get the full checks (paging, counts, sorts, filters). The
/// manufacturing-order and stock-count lists, which fewer companies use, get their list with the
/// ingest's includes: the budget holds no more, and their walks adapt like any other.
const FULLY_CHECKED: [DocType; 4] =
    [DocType::SalesOrder, DocType::PurchaseOrder, DocType::StockAdjustment, DocType::StockTransfer];

/// Runs every check with `client` (whose budget should be [`BUDGET`]).
pub async fn run(client: &Client) -> Report {
    let mut d = Doctor {
        client,
        checks: Vec::new(),
        rates: Vec::new(),
        id_order_checked: false,
        adjustments: Vec::new(),
        sort_failed: Vec::new(),
        error: None,
    };
    if d.credentials().await {
        let mut counts = Vec::new();
        for doc_type in FULLY_CHECKED {
            counts.push(d.stream(doc_type).await);
        }
        d.list_count(&counts);
        d.rate_headers();
        d.unknown_cursor().await;
        d.serial_products().await;
        d.manufacturing_orders().await;
        d.stock_counts().await;
        // Last: the least useful to the ingest, cut first when failures spent the budget.
        for doc_type in DocType::ALL {
            d.last_modified_filter(doc_type).await;
        }
    }
    let requests = client.stats().requests();
    Report { checks: d.checks, requests, error: d.error }
}

/// What one stream's checks learnt about `X-listCount`.
#[derive(Debug, Default)]
struct CountSeen {
    present: Option<bool>,
    meaning: Option<CountMeaning>,
}

struct Doctor<'c> {
    client: &'c Client,
    checks: Vec<Check>,
    /// The rate headers of the first answers, in order.
    rates: Vec<(Option<String>, Option<String>)>,
    /// Whether the sort on the id worked for the first stream (to judge the id order).
    id_order_checked: bool,
    /// The first page of stock adjustments, to judge what completing a count creates.
    adjustments: Vec<Box<RawValue>>,
    /// Per fully checked stream, whether `sort=<id>` failed.
    sort_failed: Vec<bool>,
    error: Option<String>,
}

/// A request's outcome, as the checks read it.
enum Answer {
    Page(ArrayPage),
    /// inFlow answered with this status (and body, when it had one).
    Status(u16, String),
    /// Not asked: the budget is spent or inFlow could not be reached (the report says which).
    NotAsked,
}

impl Doctor<'_> {
    async fn get(&mut self, path: &str, query: &[(&'static str, String)]) -> Answer {
        if self.error.is_some() {
            return Answer::NotAsked;
        }
        let what = format!("GET {path} (audit doctor)");
        match self.client.get_array(path, query, &what).await {
            Ok(page) => {
                if self.rates.len() < 2 {
                    self.rates.push((page.rate_minute.clone(), page.rate_hour.clone()));
                }
                Answer::Page(page)
            }
            Err(ClientError::Unauthorized { status, .. }) => Answer::Status(status, String::new()),
            Err(ClientError::NotFound { .. }) => Answer::Status(404, String::new()),
            Err(ClientError::Rejected { status, body, .. }) => Answer::Status(status, message_of(&body)),
            Err(ClientError::GaveUp { status: Some(status), last, .. }) if status != 429 => {
                // `last` reads `HTTP 500: "<body start>"`.
                let quoted = last.split_once(": ").map_or("", |(_, rest)| rest);
                let body = serde_json::from_str::<String>(quoted).unwrap_or_default();
                Answer::Status(status, message_of(&body))
            }
            Err(ClientError::BudgetSpent) => Answer::NotAsked,
            Err(e) => {
                self.error = Some(crate::error_text(&e));
                Answer::NotAsked
            }
        }
    }

    /// A list request with `sort=<id_field>`, asked again without it when that fails with a
    /// 400 or a 5xx; returns the answer and, when the sort was the trouble, what it answered.
    async fn with_sort(
        &mut self,
        path: &str,
        query: &[(&'static str, String)],
        id_field: &str,
    ) -> (Answer, Option<String>) {
        let mut sorted = query.to_vec();
        sorted.push(("sort", id_field.to_string()));
        match self.get(path, &sorted).await {
            Answer::Status(status, body) if status == 400 || status >= 500 => {
                (self.get(path, query).await, Some(http(status, &body)))
            }
            answer => (answer, None),
        }
    }

    /// How a reference list (locations, products) pages: the ingest walks it to its end with a
    /// sort on the id when that works.
    fn reference_paging(&mut self, path: &str, sort_failure: Option<String>) {
        let label = format!("{path}: sort by id");
        let check = match sort_failure {
            None => Check::new(format!("paging:{path}"), label, Verdict::Ok)
                .result("works")
                .ingest(Paging::Keyset.describe())
                .value(Paging::Keyset.as_str()),
            Some(why) => Check::new(format!("paging:{path}"), label, Verdict::Adapts)
                .result(format!("fails ({why}); the list answers without the sort"))
                .ingest(Paging::KeysetUnsorted.describe())
                .value(Paging::KeysetUnsorted.as_str()),
        };
        self.push(check);
    }

    fn not_asked(&self) -> String {
        match &self.error {
            Some(_) => "not checked: inFlow could not be reached".into(),
            None => format!("not checked: the budget of {BUDGET} requests is spent"),
        }
    }

    fn push(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// Credentials, company and API version: one request that any working setup answers.
    async fn credentials(&mut self) -> bool {
        let version = self.client.config().api_version.clone();
        // The ingest's own first request.
        let query = [("count", "100".to_string()), ("includeCount", "true".into())];
        let (answer, sort_failure) = self.with_sort("locations", &query, "locationId").await;
        let (creds, company, api) = match answer {
            Answer::Page(page) => {
                let locations = page.list_count.map_or(format!("{} or more locations", page.items.len()), |n| {
                    format!("{n} location{}", if n == 1 { "" } else { "s" })
                });
                (
                    Check::new("credentials", "credentials", Verdict::Ok).result("accepted").value("ok"),
                    Check::new("company", "company", Verdict::Ok).result(format!("found ({locations})")).value("ok"),
                    Check::new("api_version", "API version", Verdict::Ok)
                        .result(format!("{version} accepted"))
                        .value(version.clone()),
                )
            }
            Answer::Status(status @ (401 | 403), _) => {
                let failed = Check::new("credentials", "credentials", Verdict::Missing)
                    .result(format!("refused (HTTP {status})"))
                    .ingest("cannot run: check INFLOW_API_KEY and that the company has the API add-on")
                    .value("refused");
                self.push(failed);
                return self.skip_rest("the API key was refused");
            }
            Answer::Status(404, _) => {
                let err = self.client.explain_not_found("locations", "GET locations").await;
                let company_missing = matches!(err, ClientError::CompanyNotFound { .. });
                let check = if company_missing {
                    Check::new("company", "company", Verdict::Missing)
                        .result(format!("not found: {}", crate::error_text(&err)))
                        .ingest("cannot run: check INFLOW_COMPANY_ID and INFLOW_BASE_URL")
                        .value("not_found")
                } else {
                    Check::new("company", "company", Verdict::Missing)
                        .result("the locations list answered 404 although the company answers")
                        .ingest("cannot fetch the locations")
                };
                self.push(check);
                return self.skip_rest("the company was not found");
            }
            Answer::Status(status, body) => {
                let check = Check::new("api_version", "API version", Verdict::Missing)
                    .result(format!("{version}: {}", http(status, &body)))
                    .ingest("cannot run: try another --api-version, or send this row to us");
                self.push(check);
                return self.skip_rest("the first request failed");
            }
            Answer::NotAsked => return self.skip_rest("inFlow could not be reached"),
        };
        self.push(creds);
        self.push(company);
        self.push(api);
        self.reference_paging("locations", sort_failure);
        true
    }

    fn skip_rest(&mut self, why: &str) -> bool {
        let check =
            Check::new("other_checks", "the other checks", Verdict::NotChecked).result(format!("not run: {why}"));
        self.push(check);
        false
    }

    /// A stream's list with its includes, `count=100`, keyset paging and a descending date
    /// sort; returns what it saw of `X-listCount`.
    async fn stream(&mut self, doc_type: DocType) -> CountSeen {
        let stream = doc_type.stream();
        let includes = doc_type.includes();
        let id = doc_type.id_field();
        let mut seen = CountSeen::default();
        // The ingest's own first page; without `sort` again if that is what fails.
        let query = [("count", "100".to_string()), ("includeCount", "true".into()), ("include", includes.into())];
        let (answer, sort_failure) = self.with_sort(stream, &query, id).await;
        let sorted = sort_failure.is_none();
        self.sort_failed.push(!sorted);
        let label = format!("{stream}: list + includes");
        let page = match answer {
            Answer::Page(page) => page,
            Answer::Status(status, body) => {
                let check = Check::new(format!("list:{stream}"), label, Verdict::Missing)
                    .result(http(status, &refused_include(&body, includes)))
                    .ingest(format!("cannot ingest {stream}: send this row to us"))
                    .value("refused");
                self.push(check);
                return seen;
            }
            Answer::NotAsked => {
                let result = self.not_asked();
                self.push(Check::new(format!("list:{stream}"), label, Verdict::NotChecked).result(result));
                return seen;
            }
        };
        if doc_type == DocType::StockAdjustment {
            self.adjustments = page.items.iter().map(|item| item.to_owned()).collect();
        }
        self.push(
            Check::new(format!("list:{stream}"), label, Verdict::Ok)
                .result(format!("answered {} documents with include={includes}", page.items.len()))
                .ingest("walks it")
                .value("ok"),
        );
        seen.present = Some(page.list_count.is_some());
        let size = judge_page_size(page.items.len(), page.list_count);
        self.push(
            Check::new(format!("page_size:{stream}"), format!("{stream}: count=100"), size.verdict())
                .result(size.describe())
                .ingest(size.ingest())
                .value(size.value()),
        );

        // Keyset: the page after the first page's last document.
        let ids: Vec<String> = page.items.iter().filter_map(|d| id_of(d, id)).collect();
        if sorted && ids.len() >= 3 && !self.id_order_checked {
            self.id_order_checked = true;
            self.push(
                Check::new("id_order", format!("{stream}: order of ids"), Verdict::Info)
                    .result(format!("{} (sorted by {id})", judge_id_order(&ids)))
                    .ingest("nothing assumes an order of ids: each page goes on after the last id returned")
                    .value(judge_id_order(&ids)),
            );
        }
        let paging_label = format!("{stream}: keyset paging");
        match ids.last() {
            None => self.push(
                Check::new(format!("paging:{stream}"), paging_label, Verdict::NotChecked)
                    .result("not checked: the stream has no documents"),
            ),
            Some(cursor) => {
                let mut q =
                    vec![("count", "2".to_string()), ("includeCount", "true".into()), ("after", cursor.clone())];
                if sorted {
                    q.push(("sort", id.to_string()));
                }
                let next = self.get(stream, &q).await;
                let keyset = match next {
                    Answer::Page(next) => {
                        if let (Some(before), Some(now)) = (page.list_count, next.list_count) {
                            seen.meaning = Some(CountMeaning::observed(before, page.items.len() as u64, now));
                        }
                        let next_ids: Vec<String> = next.items.iter().filter_map(|d| id_of(d, id)).collect();
                        judge_keyset(&ids, cursor, &next_ids)
                    }
                    Answer::Status(status, body) => Err(format!("after={cursor} answered {}", http(status, &body))),
                    Answer::NotAsked => {
                        let result = self.not_asked();
                        self.push(
                            Check::new(format!("paging:{stream}"), paging_label, Verdict::NotChecked).result(result),
                        );
                        return seen;
                    }
                };
                let check = paging_check(stream, id, keyset, sort_failure.as_deref());
                self.push(check);
            }
        }

        let field = date_field(doc_type);
        let dates = self.date_sort(doc_type, field).await;
        if doc_type.date_filter().is_some() {
            let mut sample = dates;
            sample.extend(dates_of(&page.items, field));
            self.order_date_filter(doc_type, &sample, page.list_count).await;
        }
        seen
    }

    /// A descending sort on the stream's date, judged from the dates returned; returns them.
    async fn date_sort(&mut self, doc_type: DocType, field: &str) -> Vec<NaiveDate> {
        let stream = doc_type.stream();
        let q = [("count", "20".to_string()), ("sort", field.to_string()), ("sortDesc", "true".into())];
        let label = format!("{stream}: date sort desc");
        match self.get(stream, &q).await {
            Answer::Page(page) => {
                let dates = dates_of(&page.items, field);
                let sorted = judge_descending(&dates);
                let (verdict, result, value) = match sorted {
                    Some(true) => {
                        (Verdict::Info, format!("honoured: sort={field}&sortDesc=true, dates descend"), "honoured")
                    }
                    Some(false) => {
                        (Verdict::Info, format!("ignored: sort={field}&sortDesc=true, dates do not descend"), "ignored")
                    }
                    None => (Verdict::Info, "cannot tell: fewer than two distinct dates".into(), "unknown"),
                };
                self.push(
                    Check::new(format!("sort_date:{stream}"), label, verdict)
                        .result(result)
                        .ingest(date_sort_use(doc_type, value))
                        .value(value),
                );
                dates
            }
            Answer::Status(status, body) => {
                self.push(
                    Check::new(format!("sort_date:{stream}"), label, Verdict::Info)
                        .result(format!("refused: {}", http(status, &body)))
                        .ingest(date_sort_use(doc_type, "refused"))
                        .value("refused"),
                );
                Vec::new()
            }
            Answer::NotAsked => {
                let result = self.not_asked();
                self.push(Check::new(format!("sort_date:{stream}"), label, Verdict::NotChecked).result(result));
                Vec::new()
            }
        }
    }

    /// `filter[orderDate]` from a day in the middle of the dates seen.
    async fn order_date_filter(&mut self, doc_type: DocType, dates: &[NaiveDate], total: Option<u64>) {
        let stream = doc_type.stream();
        let label = format!("{stream}: filter[orderDate]");
        let key = format!("filter_order_date:{stream}");
        let mut days = dates.to_vec();
        days.sort();
        let Some(from) = days.get(days.len() / 2).copied() else {
            self.push(Check::new(key, label, Verdict::NotChecked).result("not checked: no dated documents"));
            return;
        };
        let q = [
            ("count", "20".to_string()),
            ("includeCount", "true".into()),
            ("filter[orderDate]", format!(r#"{{"fromDate":"{from}"}}"#)),
        ];
        let check = match self.get(stream, &q).await {
            Answer::Page(page) => {
                match judge_date_filter(from, &dates_of(&page.items, "orderDate"), page.list_count, total) {
                    true => Check::new(key, label, Verdict::Ok)
                        .result(format!("works (from {from})"))
                        .ingest("--since and --window filter on inFlow")
                        .value("works"),
                    false => Check::new(key, label, Verdict::Adapts)
                        .result(format!("ignored: documents dated before {from} came back"))
                        .ingest("--since still holds (the ingest filters too); --window reads the whole stream")
                        .value("ignored"),
                }
            }
            Answer::Status(status, body) => Check::new(key, label, Verdict::Missing)
                .result(format!("refused: {}", http(status, &body)))
                .ingest("--since and --window fail on this stream; a plain ingest does not use the filter")
                .value("refused"),
            Answer::NotAsked => Check::new(key, label, Verdict::NotChecked).result(self.not_asked()),
        };
        self.push(check);
    }

    fn list_count(&mut self, seen: &[CountSeen]) {
        let label = "X-listCount";
        let present: Vec<bool> = seen.iter().filter_map(|s| s.present).collect();
        let meanings: Vec<CountMeaning> =
            seen.iter().filter_map(|s| s.meaning).filter(|m| *m != CountMeaning::Unknown).collect();
        let check = if present.is_empty() {
            Check::new(capabilities::LIST_COUNT, label, Verdict::NotChecked).result("not checked: no list answered")
        } else if present.iter().all(|p| !p) {
            Check::new(capabilities::LIST_COUNT, label, Verdict::Adapts)
                .result("not sent (includeCount=true)")
                .ingest("a short page is followed by one more request, whose empty answer proves the end")
                .value("absent")
        } else if let Some(first) = meanings.first().filter(|m| meanings.iter().all(|x| x == *m)) {
            let (result, value) = match first {
                CountMeaning::Total => ("sent; counts every document matching the filters", "total"),
                _ => ("sent; counts what remains after the cursor", "remaining"),
            };
            Check::new(capabilities::LIST_COUNT, label, Verdict::Ok)
                .result(result)
                .ingest("proves the end of a walk on its last page, without an extra request")
                .value(value)
        } else {
            Check::new(capabilities::LIST_COUNT, label, Verdict::Ok)
                .result("sent; what it counts could not be told (streams too small, or they disagree)")
                .ingest("proves an end when the count is within the page; otherwise one more request")
        };
        self.push(check);
    }

    fn rate_headers(&mut self) {
        let label = "rate headers";
        let check = match self.rates.as_slice() {
            [(None, None), ..] | [] => Check::new(capabilities::RATE_HEADERS, label, Verdict::Adapts)
                .result("not sent")
                .ingest("paces by its own count of requests (--max-per-minute, --max-per-hour)")
                .value("absent"),
            [first, second, ..] => {
                let shown = |(m, h): &(Option<String>, Option<String>)| {
                    format!("{}, {}", m.as_deref().unwrap_or("-"), h.as_deref().unwrap_or("-"))
                };
                let meaning = judge_rate(first, second);
                let seen = format!("{} then {}", shown(first), shown(second));
                match meaning {
                    RateMeaning::Used => Check::new(capabilities::RATE_HEADERS, label, Verdict::Ok)
                        .result(format!("count up (requests used): {seen}"))
                        .ingest("paces itself, and pauses when inFlow reports a window full")
                        .value("used"),
                    RateMeaning::Remaining => Check::new(capabilities::RATE_HEADERS, label, Verdict::Ok)
                        .result(format!("count down (requests left): {seen}"))
                        .ingest("paces itself, and pauses when inFlow reports nothing left")
                        .value("remaining"),
                    RateMeaning::Unknown => Check::new(capabilities::RATE_HEADERS, label, Verdict::Info)
                        .result(format!("sent, direction unclear: {seen}"))
                        .ingest("paces by its own count; reads the headers as used/limit"),
                }
            }
            [_] => Check::new(capabilities::RATE_HEADERS, label, Verdict::NotChecked)
                .result("not checked: only one answer"),
        };
        self.push(check);
    }

    /// What `after=` answers for an id that names no document (as a deleted one would).
    async fn unknown_cursor(&mut self) {
        let label = "sales-orders: unknown cursor";
        let key = "unknown_cursor";
        let ingest =
            "a saved position whose document is gone: checks it by id, then walks the stream again from its start";
        let unknown = uuid::Uuid::new_v4().to_string();
        let q = [("count", "1".to_string()), ("after", unknown)];
        let check = match self.get("sales-orders", &q).await {
            Answer::Page(page) if page.items.is_empty() => Check::new(key, label, Verdict::Info)
                .result("after=<an id of no document> answers an empty page, like the end")
                .ingest(ingest)
                .value("empty"),
            Answer::Page(_) => Check::new(key, label, Verdict::Info)
                .result("after=<an id of no document> answers documents: the id is compared like any other")
                .ingest("a saved position whose document is gone still answers")
                .value("compare"),
            Answer::Status(status, body) => Check::new(key, label, Verdict::Info)
                .result(format!("after=<an id of no document> answers {}", http(status, &body)))
                .ingest(ingest)
                .value(status.to_string()),
            Answer::NotAsked => Check::new(key, label, Verdict::NotChecked).result(self.not_asked()),
        };
        self.push(check);
    }

    /// `filter[lastModifiedDateTime]` from tomorrow: an honoured filter returns nothing.
    async fn last_modified_filter(&mut self, doc_type: DocType) {
        let stream = doc_type.stream();
        let label = format!("{stream}: filter[lastModifiedDateTime]");
        let key = format!("filter_last_modified:{stream}");
        let tomorrow = Utc::now().date_naive() + chrono::Days::new(1);
        let q = [
            ("count", "1".to_string()),
            ("includeCount", "true".into()),
            ("filter[lastModifiedDateTime]", format!(r#"{{"fromDate":"{tomorrow}"}}"#)),
        ];
        let ingest = "not used: a complete run walks every document to notice changes";
        let check = match self.get(stream, &q).await {
            Answer::Page(page) if page.items.is_empty() && page.list_count.is_none_or(|n| n == 0) => {
                Check::new(key, label, Verdict::Info)
                    .result("works (nothing modified after tomorrow)")
                    .ingest(ingest)
                    .value("works")
            }
            Answer::Page(_) => Check::new(key, label, Verdict::Info)
                .result("ignored: documents came back for a date in the future")
                .ingest(ingest)
                .value("ignored"),
            Answer::Status(status, body) => Check::new(key, label, Verdict::Info)
                .result(format!("not available: {}", http(status, &body)))
                .ingest(ingest)
                .value("not_available"),
            Answer::NotAsked => Check::new(key, label, Verdict::NotChecked).result(self.not_asked()),
        };
        self.push(check);
    }

    /// The manufacturing-order list with the ingest's includes.
    async fn manufacturing_orders(&mut self) {
        let doc_type = DocType::ManufacturingOrder;
        let (path, include) = (doc_type.stream(), doc_type.includes());
        let q = [("count", "5".to_string()), ("include", include.to_string())];
        let answer = self.list_paging(doc_type, &q).await;
        let check = self.endpoint_check(path, "manufacturing orders", include, answer);
        self.push(check);
    }

    /// A list's first page with `sort=<id>` as the ingest sends it, and the paging it records:
    /// keyset, or keyset without the sort when that fails. When the sort failed on every stream
    /// checked before, it is not asked again (the budget is short); the walk still adapts if
    /// `after` fails too.
    async fn list_paging(&mut self, doc_type: DocType, query: &[(&'static str, String)]) -> Answer {
        let path = doc_type.stream();
        let everywhere = !self.sort_failed.is_empty() && self.sort_failed.iter().all(|f| *f);
        let (answer, failure) = if everywhere {
            let failure = "it failed on every stream checked above; not asked again".to_string();
            (self.get(path, query).await, Some(failure))
        } else {
            self.with_sort(path, query, doc_type.id_field()).await
        };
        if matches!(answer, Answer::Page(_)) {
            self.reference_paging(path, failure);
        }
        answer
    }

    /// The stock-count list with the sheets' lines, or with the sheets only and one sheet by id
    /// (as the ingest does when the list refuses `sheets.lines`); then what completing a count
    /// creates, judged from the counts and the adjustments fetched.
    async fn stock_counts(&mut self) {
        let doc_type = DocType::StockCount;
        let path = doc_type.stream();
        let full = doc_type.includes();
        let q = [("count", "20".to_string()), ("include", full.to_string())];
        let mut counts = Vec::new();
        let check = match self.list_paging(doc_type, &q).await {
            Answer::Status(400, body) if doc_type.fallback_includes().is_some() => {
                let smaller = doc_type.fallback_includes().unwrap_or_default();
                let q = [("count", "20".to_string()), ("include", smaller.to_string())];
                let refused = http(400, &refused_include(&body, full));
                match self.get(path, &q).await {
                    Answer::Page(page) => {
                        let sheet = page.items.iter().find_map(|c| first_sheet_id(c.get()));
                        let by_id = match sheet {
                            None => "no sheet to fetch by id".to_string(),
                            Some(id) => match self.get_document(&format!("count-sheets/{id}"), "lines").await {
                                Answer::Page(_) => "count-sheets/{id}?include=lines answers".to_string(),
                                Answer::Status(status, body) => {
                                    format!("count-sheets/{{id}} answered {}", http(status, &body))
                                }
                                Answer::NotAsked => self.not_asked(),
                            },
                        };
                        Check::new(format!("endpoint:{path}"), "stock counts", Verdict::Adapts)
                            .result(format!("include={full} refused ({refused}); include={smaller} answers; {by_id}"))
                            .ingest("walks it with include=sheets and fetches each sheet's lines by id (a request per sheet)")
                            .value("sheets_by_id")
                    }
                    other => self.endpoint_check(path, "stock counts", smaller, other),
                }
            }
            answer => {
                if let Answer::Page(page) = &answer {
                    counts = page.items.iter().map(|c| c.get().to_string()).collect();
                }
                self.endpoint_check(path, "stock counts", full, answer)
            }
        };
        self.push(check);
        self.count_adjustments(&counts);
    }

    /// Whether a completed count's difference also shows as a listed stock adjustment.
    fn count_adjustments(&mut self, counts: &[String]) {
        use crate::mapping::stock_count::{CountAdjustments, count_adjustment_behaviour};
        let label = "stock counts: adjustments";
        let key = capabilities::COUNT_ADJUSTMENTS;
        let counts: Vec<&str> = counts.iter().map(String::as_str).collect();
        let adjustments: Vec<&str> = self.adjustments.iter().map(|a| a.get()).collect();
        let check = match count_adjustment_behaviour(&counts, &adjustments) {
            CountAdjustments::Listed { count_number, adjustment_number, serials } => {
                Check::new(key, label, Verdict::Info)
                    .result(format!(
                        "listed: adjustment {} carries {serials} serial(s) of count {}",
                        adjustment_number.as_deref().unwrap_or("?"),
                        count_number.as_deref().unwrap_or("?")
                    ))
                    .ingest("records those serials as adjusted_by_count, so a count's difference counts once")
                    .value("listed")
            }
            CountAdjustments::NotListed { counts_checked } => Check::new(key, label, Verdict::Info)
                .result(format!("not listed: {counts_checked} count(s) with a difference and no matching adjustment"))
                .ingest("the count's own count_missing / count_found events move the stock")
                .value("not_listed"),
            CountAdjustments::Unknown { reason } => Check::new(key, label, Verdict::Info)
                .result(format!("cannot tell: {reason}"))
                .ingest("decides per adjustment, from the evidence in the data"),
        };
        self.push(check);
    }

    /// One document by id, with an include.
    async fn get_document(&mut self, path: &str, include: &str) -> Answer {
        if self.error.is_some() {
            return Answer::NotAsked;
        }
        let what = format!("GET {path} (audit doctor)");
        let (dir, id) = path.rsplit_once('/').unwrap_or((path, ""));
        match self.client.get_document(dir, id, &[("include", include.to_string())], &what).await {
            Ok(Some(_)) => Answer::Page(ArrayPage::default()),
            Ok(None) => Answer::Status(404, String::new()),
            Err(ClientError::Rejected { status, body, .. }) => Answer::Status(status, message_of(&body)),
            Err(ClientError::Unauthorized { status, .. }) => Answer::Status(status, String::new()),
            Err(ClientError::BudgetSpent) => Answer::NotAsked,
            Err(e) => {
                self.error = Some(crate::error_text(&e));
                Answer::NotAsked
            }
        }
    }

    fn endpoint_check(&self, path: &str, name: &str, include: &str, answer: Answer) -> Check {
        let key = format!("endpoint:{path}");
        match answer {
            Answer::Page(page) => Check::new(key, name, Verdict::Ok)
                .result(format!(
                    "{path}?include={include} answers ({} document{})",
                    page.items.len(),
                    if page.items.len() == 1 { "" } else { "s" }
                ))
                .ingest("walks it")
                .value("available"),
            Answer::Status(404, _) => Check::new(key, name, Verdict::Info)
                .result(format!("{path}: endpoint answered 404: not available"))
                .ingest(format!("a default ingest skips {path}, with a warning; `--types` naming it fails"))
                .value("not_available"),
            Answer::Status(status, body) => Check::new(key, name, Verdict::Missing)
                .result(http(status, &refused_include(&body, include)))
                .ingest(format!("cannot ingest {path}: send this row to us"))
                .value("refused"),
            Answer::NotAsked => Check::new(key, name, Verdict::NotChecked).result(self.not_asked()),
        }
    }

    async fn serial_products(&mut self) {
        let label = "serialized products";
        let key = "products_serial_filter";
        let q =
            [("count", "5".to_string()), ("include", "inventoryLines".into()), ("filter[trackSerials]", "true".into())];
        let (answer, sort_failure) = self.with_sort("products", &q, "productId").await;
        if matches!(answer, Answer::Page(_)) {
            self.reference_paging("products", sort_failure);
        }
        let check = match answer {
            Answer::Page(page) => {
                let products: Vec<Value> =
                    page.items.iter().filter_map(|p| serde_json::from_str(p.get()).ok()).collect();
                let unserialized = products.iter().filter(|p| p["trackSerials"] != Value::Bool(true)).count();
                let without_lines = products.iter().filter(|p| !p["inventoryLines"].is_array()).count();
                if products.is_empty() {
                    Check::new(key, label, Verdict::Ok)
                        .result("answers; no serialized product")
                        .ingest("audit snapshot finds no serial stock")
                        .value("works")
                } else if without_lines > 0 {
                    Check::new(key, label, Verdict::Missing)
                        .result(format!("{without_lines} of {} products came without inventoryLines", products.len()))
                        .ingest("audit snapshot cannot see the serial stock")
                        .value("no_inventory_lines")
                } else if unserialized > 0 {
                    Check::new(key, label, Verdict::Adapts)
                        .result(format!(
                            "filter ignored: {unserialized} of {} products do not track serials",
                            products.len()
                        ))
                        .ingest("audit snapshot walks every product and keeps the serialized ones")
                        .value("ignored")
                } else {
                    Check::new(key, label, Verdict::Ok)
                        .result("include=inventoryLines&filter[trackSerials]=true works")
                        .ingest("audit snapshot walks the serialized products only")
                        .value("works")
                }
            }
            Answer::Status(status, body) => Check::new(key, label, Verdict::Missing)
                .result(http(status, &refused_include(&body, "inventoryLines")))
                .ingest("audit snapshot cannot run; the ingest does not need it")
                .value("refused"),
            Answer::NotAsked => Check::new(key, label, Verdict::NotChecked).result(self.not_asked()),
        };
        self.push(check);
    }
}

/// `HTTP 400: <message>`, or `HTTP 400` alone.
fn http(status: u16, body: &str) -> String {
    if body.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {body}") }
}

/// The `message` of a JSON error body, or the body's start.
fn message_of(body: &str) -> String {
    let message = serde_json::from_str::<Value>(body).ok().and_then(|v| v.get("message")?.as_str().map(String::from));
    let text = message.unwrap_or_else(|| body.to_string());
    if text.chars().count() > 160 { format!("{}…", text.chars().take(160).collect::<String>()) } else { text }
}

/// The id of a stock count's first sheet.
fn first_sheet_id(count: &str) -> Option<String> {
    let doc: Value = serde_json::from_str(count).ok()?;
    doc.get("sheets")?.as_array()?.iter().find_map(|s| s.get("countSheetId")?.as_str().map(String::from))
}

/// What the ingest does with a stream's date sort, given doctor's answer.
fn date_sort_use(doc_type: DocType, answer: &str) -> &'static str {
    match (doc_type.date_filter(), doc_type.sort_date(), answer) {
        (Some(_), _, _) => "not used: complete walks go by id, --window filters on inFlow",
        (None, None, _) => "not used",
        (None, Some(_), "honoured") => "--window walks it newest first, checking every page",
        (None, Some(_), "unknown") => "--window tries it newest first, checking every page",
        (None, Some(_), _) => "--window walks it in full (tried again after 24 h)",
    }
}

/// The date property a stream's documents are dated by.
fn date_field(doc_type: DocType) -> &'static str {
    match doc_type {
        DocType::SalesOrder | DocType::PurchaseOrder => "orderDate",
        DocType::StockAdjustment => "date",
        DocType::StockTransfer => "transferDate",
        DocType::ManufacturingOrder => "orderDate",
        DocType::StockCount => "startedDate",
    }
}

/// The local dates (as the document gives them) of a property.
fn dates_of(items: &[Box<RawValue>], field: &str) -> Vec<NaiveDate> {
    items
        .iter()
        .filter_map(|item| {
            let doc: Value = serde_json::from_str(item.get()).ok()?;
            let text = doc.get(field)?.as_str()?;
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|t| t.date_naive())
                .ok()
                .or_else(|| NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok())
        })
        .collect()
}

/// A 400's body, with the include it names when it names one of `includes`.
fn refused_include(body: &str, includes: &str) -> String {
    let named = includes.split(',').find(|i| body.contains(&format!("'{i}'")) || body.contains(&format!("\"{i}\"")));
    match named {
        Some(include) => format!("(the include {include} was refused): {body}"),
        None => body.to_string(),
    }
}

/// What a first page says of `count=100`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSize {
    /// A full page came back.
    Honoured,
    /// The server returned fewer than asked while more exist.
    Capped(usize),
    /// Fewer than 100 documents came back, and either the count says that is all (the
    /// stream is small) or there is no count to tell.
    Unknown(usize, Option<u64>),
}

impl PageSize {
    fn verdict(self) -> Verdict {
        match self {
            PageSize::Honoured => Verdict::Ok,
            PageSize::Capped(_) => Verdict::Adapts,
            PageSize::Unknown(..) => Verdict::Info,
        }
    }

    fn describe(self) -> String {
        match self {
            PageSize::Honoured => "honoured (100 documents)".into(),
            PageSize::Capped(n) => format!("capped: {n} documents per page while more exist"),
            PageSize::Unknown(n, Some(_)) => format!("cannot tell: the stream holds only {n} documents"),
            PageSize::Unknown(n, None) => {
                format!("cannot tell: {n} documents came back, and no count says if more exist")
            }
        }
    }

    fn ingest(self) -> &'static str {
        match self {
            PageSize::Honoured | PageSize::Unknown(..) => "asks 100 per page",
            PageSize::Capped(_) => "follows each short page until the end is proven; more requests per walk",
        }
    }

    fn value(self) -> String {
        match self {
            PageSize::Honoured => "100".into(),
            PageSize::Capped(n) => format!("capped:{n}"),
            PageSize::Unknown(..) => "unknown".into(),
        }
    }
}

/// What a first page of `count=100` tells, from what it returned and `X-listCount`.
pub fn judge_page_size(returned: usize, count: Option<u64>) -> PageSize {
    match count {
        _ if returned >= 100 => PageSize::Honoured,
        Some(total) if total > returned as u64 => PageSize::Capped(returned),
        _ => PageSize::Unknown(returned, count),
    }
}

/// The order of ids a sort on them returned: `text`, `sqlserver` (SQL Server's
/// uniqueidentifier order) or `other`.
pub fn judge_id_order(ids: &[String]) -> &'static str {
    use inflow_simulator::GuidOrder;
    let keys = |order: GuidOrder| -> Option<Vec<[u8; 16]>> {
        ids.iter().map(|id| uuid::Uuid::parse_str(id).ok().map(|u| order.key(u))).collect()
    };
    let ascending = |k: Option<Vec<[u8; 16]>>| k.is_some_and(|k| k.windows(2).all(|w| w[0] <= w[1]));
    if ascending(keys(GuidOrder::Text)) {
        "text"
    } else if ascending(keys(GuidOrder::SqlServer)) {
        "sqlserver"
    } else {
        "other"
    }
}

/// Whether the page after `cursor` moved on: neither the cursor nor the first page again.
pub fn judge_keyset(first: &[String], cursor: &str, next: &[String]) -> Result<(), String> {
    if next.iter().any(|id| id == cursor || first.contains(id)) {
        Err(format!("the page after {cursor} repeated documents of the first page: `after` is ignored"))
    } else {
        Ok(())
    }
}

/// `Some(true)` when the dates never rise and at least two differ, `Some(false)` when they rise
/// somewhere, `None` when they cannot tell.
pub fn judge_descending(dates: &[NaiveDate]) -> Option<bool> {
    if dates.windows(2).any(|w| w[1] > w[0]) {
        Some(false)
    } else if dates.windows(2).any(|w| w[1] < w[0]) {
        Some(true)
    } else {
        None
    }
}

/// A date filter works when nothing dated before its first day came back, and it left out
/// something (when both counts are known).
pub fn judge_date_filter(from: NaiveDate, dates: &[NaiveDate], filtered: Option<u64>, total: Option<u64>) -> bool {
    let all_inside = dates.iter().all(|d| *d >= from);
    let fewer = match (filtered, total) {
        (Some(f), Some(t)) => f < t,
        _ => true,
    };
    all_inside && fewer
}

/// Which way the rate headers count, from two consecutive answers' (minute, hour) headers.
pub fn judge_rate(first: &(Option<String>, Option<String>), second: &(Option<String>, Option<String>)) -> RateMeaning {
    let n = |v: &Option<String>| -> Option<u64> { v.as_deref()?.split_once('/')?.0.trim().parse().ok() };
    let direction = |a: &Option<String>, b: &Option<String>| match (n(a), n(b)) {
        (Some(x), Some(y)) if y > x => Some(RateMeaning::Used),
        (Some(x), Some(y)) if y < x => Some(RateMeaning::Remaining),
        _ => None,
    };
    match (direction(&first.0, &second.0), direction(&first.1, &second.1)) {
        (Some(a), Some(b)) if a != b => RateMeaning::Unknown,
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => RateMeaning::Unknown,
    }
}

/// The keyset paging check: what `after=<id>` did, and whether `sort` had to be left out.
fn paging_check(stream: &str, id: &str, keyset: Result<(), String>, sort_failure: Option<&str>) -> Check {
    let paging_label = format!("{stream}: keyset paging");
    match (keyset, sort_failure) {
        (Ok(()), None) => Check::new(format!("paging:{stream}"), paging_label, Verdict::Ok)
            .result(format!("works (sort={id}&after=<id>)"))
            .ingest(Paging::Keyset.describe())
            .value(Paging::Keyset.as_str()),
        (Ok(()), Some(why)) => Check::new(format!("paging:{stream}"), paging_label, Verdict::Adapts)
            .result(format!("sort={id} fails ({why}); after=<id> works without it"))
            .ingest(Paging::KeysetUnsorted.describe())
            .value(Paging::KeysetUnsorted.as_str()),
        (Err(why), _) => Check::new(format!("paging:{stream}"), paging_label, Verdict::Adapts)
            .result(format!("does not work: {why}"))
            .ingest(format!(
                "{}: a walk costs about 1% more, and proves completeness only when nothing changes meanwhile",
                Paging::Skip.describe()
            ))
            .value(Paging::Skip.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_short_first_page_is_a_cap_only_when_the_count_shows_more() {
        assert_eq!(judge_page_size(100, None), PageSize::Honoured);
        assert_eq!(judge_page_size(30, Some(250)), PageSize::Capped(30));
        assert_eq!(judge_page_size(30, Some(30)), PageSize::Unknown(30, Some(30)));
        assert_eq!(judge_page_size(30, None), PageSize::Unknown(30, None));
    }

    #[test]
    fn keyset_works_when_the_next_page_moves_on() {
        let first: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        assert!(judge_keyset(&first, "c", &["d".into(), "e".into()]).is_ok());
        assert!(judge_keyset(&first, "c", &[]).is_ok(), "nothing after the cursor");
        assert!(judge_keyset(&first, "c", &["a".into(), "b".into()]).is_err(), "the first page again");
        assert!(judge_keyset(&first, "c", &["c".into(), "d".into()]).is_err(), "the cursor itself");
    }

    #[test]
    fn the_order_of_ids_is_recognised() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let text = ids(&["00000000-0000-0000-0000-000000000002", "10000000-0000-0000-0000-000000000001"]);
        assert_eq!(judge_id_order(&text), "text");
        let sql = ids(&["10000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"]);
        assert_eq!(judge_id_order(&sql), "sqlserver");
        let neither = ids(&["b", "a"]);
        assert_eq!(judge_id_order(&neither), "other");
    }

    #[test]
    fn a_descending_sort_is_judged_from_the_dates() {
        let desc = [day("2026-03-01"), day("2026-02-01"), day("2026-02-01"), day("2025-12-24")];
        assert_eq!(judge_descending(&desc), Some(true));
        let mixed = [day("2026-03-01"), day("2026-04-01"), day("2025-12-24")];
        assert_eq!(judge_descending(&mixed), Some(false));
        assert_eq!(judge_descending(&[day("2026-03-01"), day("2026-03-01")]), None);
        assert_eq!(judge_descending(&[]), None);
    }

    #[test]
    fn a_date_filter_works_when_nothing_older_comes_back_and_something_is_left_out() {
        let from = day("2026-01-01");
        assert!(judge_date_filter(from, &[day("2026-01-01"), day("2026-05-01")], Some(40), Some(100)));
        assert!(!judge_date_filter(from, &[day("2025-12-31")], Some(40), Some(100)), "an older document");
        assert!(!judge_date_filter(from, &[day("2026-02-01")], Some(100), Some(100)), "nothing left out");
        assert!(judge_date_filter(from, &[day("2026-02-01")], None, None));
    }

    #[test]
    fn rate_headers_counting_up_or_down() {
        let h = |m: &str, hr: &str| (Some(m.to_string()), Some(hr.to_string()));
        assert_eq!(judge_rate(&h("1/60", "10/1000"), &h("2/60", "11/1000")), RateMeaning::Used);
        assert_eq!(judge_rate(&h("59/60", "990/1000"), &h("58/60", "989/1000")), RateMeaning::Remaining);
        // The minute window rolled over between the two: the hour still tells.
        assert_eq!(judge_rate(&h("5/60", "10/1000"), &h("5/60", "11/1000")), RateMeaning::Used);
        assert_eq!(judge_rate(&h("5/60", "10/1000"), &h("4/60", "11/1000")), RateMeaning::Unknown, "they disagree");
        assert_eq!(judge_rate(&(None, None), &(None, None)), RateMeaning::Unknown);
    }

    #[test]
    fn error_bodies_are_shown_by_their_message() {
        assert_eq!(message_of(r#"{"message":"'x' is not a filter","code":"InvalidFilter"}"#), "'x' is not a filter");
        assert_eq!(message_of("plain"), "plain");
        assert_eq!(message_of(&"y".repeat(500)).chars().count(), 161);
    }

    #[test]
    fn a_refused_include_is_named() {
        let body = r#"{"message":"'shipLines' is not a relationship of sales-orders","code":"InvalidInclude","relationship":"shipLines"}"#;
        assert!(refused_include(body, "lines,pickLines,shipLines").starts_with("(the include shipLines was refused)"));
        assert_eq!(refused_include("oops", "lines"), "oops");
    }

    #[test]
    fn the_exit_status_says_missing_or_error() {
        let report = |verdicts: &[Verdict], error: Option<&str>| Report {
            checks: verdicts.iter().map(|v| Check::new("x", "x", *v)).collect(),
            requests: 0,
            error: error.map(String::from),
        };
        assert_eq!(report(&[Verdict::Ok, Verdict::Adapts, Verdict::Info, Verdict::NotChecked], None).exit_code(), 0);
        assert_eq!(report(&[Verdict::Ok, Verdict::Missing], None).exit_code(), 1);
        assert_eq!(report(&[Verdict::Ok], Some("unreachable")).exit_code(), 2);
    }
}
