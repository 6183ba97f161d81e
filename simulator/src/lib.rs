//! A local inFlow Cloud API simulator, for tests, benchmarks and the demo.
//!
//! [`Simulator::start`] generates a deterministic company ([`SimConfig::seed`],
//! [`SimConfig::scale`]) and serves it over HTTP on `127.0.0.1:0` (in-process, axum), with the
//! endpoints, paging, filters, includes, shapes, rate limits and errors that
//! `/work/shared/inflow-api/README.md` describes. Tests read the ground truth
//! ([`Simulator::documents`], [`Simulator::scenario`]), change documents while a client pages
//! ([`Simulator::edit_line_serials`], [`Simulator::cancel`], ...), inject faults
//! ([`Simulator::set_faults`]) and read the request log ([`Simulator::requests`]).
//!
//! # Design
//! - `generator.rs` simulates the business over 2024-01..2026-10 (see its docs);
//!   `data.rs` stores it compactly (indices, fixed-point integers, interned serials), and
//!   `render.rs` turns it into JSON on request, so the large scale fits in memory.
//! - `paging.rs` implements `count`/`skip`/`after`/`before`/`start`/`sort`/`sortDesc`/
//!   `includeCount` and the filters; `server.rs` routes, authenticates, rate-limits
//!   (`ratelimit.rs`), injects faults (`faults.rs`) and logs (`log.rs`); `store.rs` holds the
//!   state and the mutations; `inventory.rs` derives products' `inventoryLines`.
//!
//! # Scales (seed 7, release build, 2 cores)
//! | scale | SO | PO | MO | SC | SA | ST | serial occurrences | start | peak RSS |
//! |---|---|---|---|---|---|---|---|---|---|
//! | small | 168 | 70 | 15 | 4 | 22 | 22 | ~1,600 | ~10 ms | 11 MB |
//! | medium | 6,020 | 2,022 | 226 | 57 | 755 | 740 | ~64,000 | ~160 ms | 33 MB |
//! | large | 120,248 | 40,136 | 2,756 | 556 | 15,062 | 14,629 | ~1,276,000 | ~2.7 s | 479 MB |
//! | `N` | ~N | N/3 | N/40 | N/200 | N/8 | N/8 | ~10 per order | | |
//!
//! A serial occurrence is one serial string in one line's `quantity.serialNumbers` (MO: the
//! lines at every depth; SC: both quantities of a sheet line). Planted scenario documents come
//! on top of the plan, and transfers, manufacturing orders and counts without stock to use are
//! skipped, so counts are approximate.
//!
//! # Choices where the reference says "unknown"
//! - Errors are JSON objects `{"message": ..., "code": ...}` plus one key naming the culprit:
//!   `relationship` for a bad include (400 `InvalidInclude`), `filter` for an unknown or
//!   malformed filter (400 `InvalidFilter`), `sort` for an unknown sort property (400
//!   `InvalidSort`), `parameter` for other bad parameters (400 `InvalidParameter`, or
//!   `UnsupportedParameter` for keyset paging on a server emulating an old version). 404 for an
//!   unknown company, resource or id (a malformed id is also a 404), 401 for a missing or wrong
//!   `Authorization: Bearer <key>` (the scheme name is case-insensitive), 405 for a method other
//!   than GET, 429 `{"message": "Too many requests", "code": "TooManyRequests"}`.
//! - Check order: company (404), key (401), rate limit (429), resource (404/405), injected
//!   faults, then the query (400) and the entity (404).
//! - The `Accept` header is recorded but not enforced; every version gets the same shape.
//! - Paging, sorting and filter semantics: see `paging.rs`. Rate limits: see `ratelimit.rs`.
//! - `inventoryLines`: see `inventory.rs` (signed sums; negative rows for the planted faults).
//! - `serial` of a non-serialized product's inventory line is `null`; `lotId` is `null`.
//! - Where the real API could plausibly behave otherwise (a page cap below `count`, a 5xx for an
//!   unsortable `sort`, `sort` ignored, the answer to a cursor whose document is gone, what
//!   `X-listCount` counts, rate headers counting down, SQL Server's GUID order), a switch in
//!   [`Behaviour`] (`SimConfig::behaviour`, [`Simulator::set_behaviour`], `/_sim/behaviour`,
//!   `audit simulate --page-cap ...`) makes it do so; see `behaviour.rs`.
//! - Products from `/products` add `lastModifiedDateTime` and `totalQuantityOnHand` (null
//!   unless `inventoryLines` is included); products embedded by `lines.product` have exactly
//!   the keys of the real 2022 sample.
//! - Admin routes under `/_sim/` need no key, are not rate limited and never faulted.
//! - Manufacturing orders: status `open`, `inProgress` or `completed` (cancelling sets
//!   `isCancelled`). The `lines` tree has one root line per unit built (or one for several), whose
//!   `quantity.serialNumbers` are the finished serials once the order is started, with the
//!   components as children (no serials); pick lines carry the component serials, one pick
//!   matching per picked serial names its component line (`serial` `""` for a bulk component),
//!   and some orders have no matchings at all. Put lines have neither `putDate` nor
//!   `manufacturingOrderLineId` unless [`SimConfig::newer_manufacturing_fields`].
//! - Stock counts: one sheet, one line per sublocation of the product counted, with the expected
//!   serials in `snapshotQuantity` and the counted ones in `countedQuantity`. `sheets.lines` is a
//!   valid include unless [`SimConfig::refuse_sheet_lines`]; `count-sheets/{id}` serves a sheet
//!   by id (there is no list). A completed count with a difference also makes a stock adjustment
//!   (internal reason "Stock count", remarks naming the count), listed only with
//!   [`SimConfig::count_adjustments`]; either way the difference moves the stock once.
//! - `adjustmentReason` is a real include: `{adjustmentReasonId, isActive, isInternal, name}`.

mod behaviour;
mod data;
mod faults;
mod generator;
mod inventory;
mod log;
mod paging;
mod ratelimit;
mod render;
mod scenario;
mod server;
mod store;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub use behaviour::{Behaviour, DateSort, GuidOrder, ListCount, RateHeaders, UnknownCursor};
pub use data::Endpoint;
pub use faults::{Fault, FaultRule, Faults, Trigger};
pub use log::RequestRecord;
pub use ratelimit::RateLimit;
pub use scenario::{BuildChain, DocRef, OnHand, PlantedAnomaly, Scenario, SerialStory, TwoProducts};

/// How big a company to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// About 260 documents: the demo, and what tests start.
    Small,
    /// About 10,000 documents.
    Medium,
    /// Over a million serial occurrences.
    Large,
    /// About this many sales orders, the other document types in proportion.
    Orders(usize),
}

impl FromStr for Scale {
    type Err = SimError;
    fn from_str(s: &str) -> Result<Scale, SimError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "small" => Ok(Scale::Small),
            "medium" => Ok(Scale::Medium),
            "large" => Ok(Scale::Large),
            n => n
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .map(Scale::Orders)
                .ok_or_else(|| SimError::InvalidScale(s.to_string())),
        }
    }
}

impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scale::Small => f.write_str("small"),
            Scale::Medium => f.write_str("medium"),
            Scale::Large => f.write_str("large"),
            Scale::Orders(n) => write!(f, "{n}"),
        }
    }
}

/// How to start a simulator.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of the generated company: the same seed and scale give the same data.
    pub seed: u64,
    pub scale: Scale,
    /// Plant the data faults (a serial sold twice, adjusted out then sold, shipped but never
    /// received). `false` gives a company with no inconsistencies.
    pub data_faults: bool,
    /// Where to listen; port 0 picks a free port.
    pub bind: SocketAddr,
    /// The company id; derived from the seed when `None`.
    pub company_id: Option<Uuid>,
    /// The API key; derived from the seed when `None`.
    pub api_key: Option<String>,
    /// Rate limits; `None` disables rate limiting.
    pub rate_limit: Option<RateLimit>,
    /// Multiplies the rate-limit windows: 0.001 makes a minute 60 ms.
    pub time_scale: f64,
    /// Injected faults, from the start.
    pub faults: Faults,
    /// Answer 400 to `after`/`before`/`start`, like an older server.
    pub reject_keyset: bool,
    /// How to answer where the reference says "unknown" (page caps, sorts, cursors, counts).
    pub behaviour: Behaviour,
    /// Completing a stock count also creates a stock adjustment the API lists (internal reason
    /// "Stock count", remarks naming the count), as some accounts may; off, the count's
    /// difference shows only on the count. Either way the stock moves once.
    pub count_adjustments: bool,
    /// Answer 400 to `include=sheets.lines` on stock counts (the include is unconfirmed): a
    /// client then asks for `include=sheets` and fetches `count-sheets/{id}` for the lines.
    pub refuse_sheet_lines: bool,
    /// Serve manufacturing orders' put lines with `putDate` and `manufacturingOrderLineId`, as
    /// newer API versions are reported to.
    pub newer_manufacturing_fields: bool,
    /// `count` when a list request has none.
    pub default_page_size: usize,
    /// The request log keeps this many newest records.
    pub log_capacity: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 7,
            scale: Scale::Small,
            data_faults: true,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            company_id: None,
            api_key: None,
            rate_limit: Some(RateLimit::default()),
            time_scale: 1.0,
            faults: Faults::default(),
            reject_keyset: false,
            behaviour: Behaviour::DEFAULT,
            count_adjustments: false,
            refuse_sheet_lines: false,
            newer_manufacturing_fields: false,
            default_page_size: 20,
            log_capacity: 1_000_000,
        }
    }
}

/// Everything that can go wrong when starting or driving the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("the generator task failed: {0}")]
    Generator(String),
    #[error("'{0}' is not a scale: use small, medium, large or a number of sales orders")]
    InvalidScale(String),
    #[error(
        "'{0}' is not a document endpoint (sales-orders, purchase-orders, stock-adjustments, stock-transfers, \
         manufacturing-orders, stock-counts)"
    )]
    UnknownEndpoint(String),
    #[error("no {0} document with id {1}")]
    UnknownDocument(String, String),
    #[error("{0} has no line collection '{1}'")]
    UnknownCollection(String, String),
    #[error("no {0} line with id {1}")]
    UnknownLine(String, String),
    #[error("no location with id {0}")]
    UnknownLocation(String),
    #[error("no product with id {0}")]
    UnknownProduct(String),
    #[error("invalid document: {0}")]
    InvalidDocument(String),
    #[error("unsupported change: {0}")]
    Unsupported(String),
}

/// State shared by the handle and the HTTP handler.
pub(crate) struct Shared {
    state: RwLock<store::State>,
    company: String,
    api_key: String,
    time_scale: f64,
    default_count: usize,
    rate_limit: Mutex<Option<RateLimit>>,
    limiter: Mutex<ratelimit::Limiter>,
    faults: Mutex<faults::FaultState>,
    log: Mutex<log::RequestLog>,
    reject_keyset: AtomicBool,
    behaviour: Mutex<Behaviour>,
    refuse_sheet_lines: AtomicBool,
    /// Deletions due after a number of list requests: (endpoint, requests left, document id).
    delete_after_lists: Mutex<Vec<(String, usize, String)>>,
}

/// A lock that survives a panicking holder: the simulator's state stays usable in tests.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Counts an answered list request of `endpoint`, and makes the deletions now due.
    fn list_answered(&self, endpoint: &str) {
        let due: Vec<String> = {
            let mut pending = lock(&self.delete_after_lists);
            for (_, left, _) in pending.iter_mut().filter(|(ep, ..)| ep == endpoint) {
                *left = left.saturating_sub(1);
            }
            let (due, rest) = std::mem::take(&mut *pending).into_iter().partition(|(_, left, _)| *left == 0);
            *pending = rest;
            due.into_iter().map(|(.., id)| id).collect()
        };
        for id in due {
            // A document already gone is no change to make.
            let _ = self.write().delete(endpoint, &id);
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, store::State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write(&self) -> RwLockWriteGuard<'_, store::State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

struct Server {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// A running simulator. Cheap to clone; every clone drives the same server.
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Arc<Mutex<Server>>,
    startup: Duration,
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator").field("addr", &self.addr).field("company", &self.shared.company).finish()
    }
}

impl Simulator {
    /// Generates the company and starts serving it.
    pub async fn start(config: SimConfig) -> Result<Simulator, SimError> {
        let started = Instant::now();
        let (seed, scale, data_faults) = (config.seed, config.scale, config.data_faults);
        let generated = tokio::task::spawn_blocking(move || generator::generate(seed, scale, data_faults))
            .await
            .map_err(|e| SimError::Generator(e.to_string()))?;
        let mut ids = ChaCha8Rng::seed_from_u64(config.seed ^ 0xC0FF_EE00_D15E_A5E5);
        let company_id =
            config.company_id.unwrap_or_else(|| uuid::Builder::from_random_bytes(ids.random()).into_uuid());
        let api_key = config.api_key.clone().unwrap_or_else(|| {
            let bytes: [u8; 20] = ids.random();
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("sim_{hex}")
        });
        let state = store::State {
            cat: generated.cat,
            docs: generated.docs,
            inv: generated.inv,
            rowversion: generated.rowversion,
            rng: generated.rng,
            scenario: generated.scenario,
            count_adjustments: config.count_adjustments,
            newer_manufacturing: config.newer_manufacturing_fields,
        };
        let shared = Arc::new(Shared {
            state: RwLock::new(state),
            company: company_id.hyphenated().to_string(),
            api_key,
            time_scale: if config.time_scale > 0.0 { config.time_scale } else { 1.0 },
            default_count: config.default_page_size,
            rate_limit: Mutex::new(config.rate_limit),
            limiter: Mutex::new(ratelimit::Limiter::default()),
            faults: Mutex::new(faults::FaultState::new(config.faults.clone(), config.seed)),
            log: Mutex::new(log::RequestLog::new(config.log_capacity)),
            reject_keyset: AtomicBool::new(config.reject_keyset),
            behaviour: Mutex::new(config.behaviour.clone()),
            refuse_sheet_lines: AtomicBool::new(config.refuse_sheet_lines),
            delete_after_lists: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| SimError::Bind { addr: config.bind, source })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind { addr: config.bind, source })?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = server::router(shared.clone());
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!("simulator server stopped: {e}");
            }
        });
        Ok(Simulator {
            shared,
            addr,
            server: Arc::new(Mutex::new(Server { stop: Some(stop), task: Some(task) })),
            startup: started.elapsed(),
        })
    }

    /// Stops serving (waits at most two seconds for open connections). Other clones stop too.
    pub async fn shutdown(&self) {
        let (stop, task) = {
            let mut s = lock(&self.server);
            (s.stop.take(), s.task.take())
        };
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        if let Some(task) = task {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task).await.is_err() {
                abort.abort();
            }
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn company_id(&self) -> String {
        self.shared.company.clone()
    }
    pub fn api_key(&self) -> String {
        self.shared.api_key.clone()
    }
    /// How long generation and binding took.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    // Request log ------------------------------------------------------------------------------

    /// Every logged request, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).all()
    }
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }
    /// Requests to one endpoint (`sales-orders`, ..., `_sim`), lists and by-id together.
    pub fn count_requests(&self, endpoint: &str) -> usize {
        lock(&self.shared.log).count_endpoint(endpoint)
    }
    pub fn count_status(&self, status: u16) -> usize {
        lock(&self.shared.log).count_status(status)
    }
    pub fn requests_by_endpoint(&self) -> BTreeMap<String, usize> {
        lock(&self.shared.log).by_endpoint()
    }
    pub fn requests_by_status(&self) -> BTreeMap<u16, usize> {
        lock(&self.shared.log).by_status()
    }

    // Behaviour --------------------------------------------------------------------------------

    /// Replaces the injected faults; request numbering of the rules restarts at 1.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.shared.faults).set(faults);
    }
    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).get()
    }
    /// Sets or (with `None`) disables rate limiting; the windows start empty.
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        *lock(&self.shared.rate_limit) = limit;
        lock(&self.shared.limiter).reset();
    }
    pub fn rate_limit(&self) -> Option<RateLimit> {
        *lock(&self.shared.rate_limit)
    }
    /// Makes `after`/`before`/`start` a 400, like an older server.
    pub fn set_reject_keyset(&self, reject: bool) {
        self.shared.reject_keyset.store(reject, Ordering::SeqCst);
    }
    /// Changes how the API answers where the reference is unsure; see [`Behaviour`].
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.shared.behaviour) = behaviour;
    }
    pub fn behaviour(&self) -> Behaviour {
        lock(&self.shared.behaviour).clone()
    }
    /// Lists (or stops listing) the stock adjustments completed counts made.
    pub fn set_count_adjustments(&self, listed: bool) {
        self.shared.write().count_adjustments = listed;
    }
    /// Makes `include=sheets.lines` on stock counts a 400.
    pub fn set_refuse_sheet_lines(&self, refuse: bool) {
        self.shared.refuse_sheet_lines.store(refuse, Ordering::SeqCst);
    }
    /// Serves put lines with `putDate` and `manufacturingOrderLineId` (or not).
    pub fn set_newer_manufacturing_fields(&self, newer: bool) {
        self.shared.write().newer_manufacturing = newer;
    }

    // Ground truth -----------------------------------------------------------------------------

    /// Every document of `sales-orders`, `purchase-orders`, `stock-adjustments`,
    /// `stock-transfers`, `manufacturing-orders` or `stock-counts` (also `products`,
    /// `locations`, `customers`, `vendors`, and every sheet as `count-sheets`), rendered with every include, in
    /// entity-id order, as the API serves them now. Empty for an unknown endpoint.
    pub fn documents(&self, endpoint: &str) -> Vec<Value> {
        match Endpoint::parse(endpoint) {
            Some(e) => self.shared.read().everything(e),
            None => Vec::new(),
        }
    }
    /// Products with `inventoryLines`.
    pub fn products(&self) -> Vec<Value> {
        self.shared.read().everything(Endpoint::Products)
    }
    pub fn locations(&self) -> Vec<Value> {
        self.shared.read().everything(Endpoint::Locations)
    }
    /// Number of entities per endpoint.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.shared.read().counts()
    }
    /// Serial strings inside the lines' `quantity.serialNumbers` of the document types (adjustments a
    /// count made only while they are listed).
    pub fn serial_occurrences(&self) -> usize {
        self.shared.read().serial_occurrences()
    }
    pub fn scenario(&self) -> Scenario {
        self.shared.read().scenario.clone()
    }
    /// The last value the company-wide rowversion counter handed out.
    pub fn rowversion(&self) -> u64 {
        self.shared.read().rowversion
    }

    // Mutations --------------------------------------------------------------------------------

    /// Replaces a line's serials (its quantity follows, keeping its sign).
    pub fn edit_line_serials(
        &self,
        endpoint: &str,
        doc_id: &str,
        line_collection: &str,
        line_id: &str,
        serials: Vec<String>,
    ) -> Result<(), SimError> {
        self.shared.write().edit_line_serials(endpoint, doc_id, line_collection, line_id, serials)
    }

    /// Deletes a document once `lists` more list requests of `endpoint` have been answered: a
    /// change in the middle of a client's walk, between two of its pages.
    pub fn delete_after_lists(&self, endpoint: &str, lists: usize, doc_id: &str) {
        lock(&self.shared.delete_after_lists).push((endpoint.to_string(), lists, doc_id.to_string()));
    }

    /// Renames a product, customer or vendor (`endpoint`: `products`, `customers`, `vendors`).
    pub fn rename(&self, endpoint: &str, id: &str, name: &str) -> Result<(), SimError> {
        self.shared.write().rename(endpoint, id, name)
    }

    /// Sets `orderDate` / `date` / `transferDate`.
    pub fn set_document_date(&self, endpoint: &str, doc_id: &str, date: DateTime<FixedOffset>) -> Result<(), SimError> {
        self.shared.write().set_document_date(endpoint, doc_id, date)
    }

    /// Moves a line: pick, restock, receive and unstock lines take both; adjustment lines
    /// only their sublocation (the location must be the header's); transfer lines the
    /// sublocation of the side whose location is given.
    pub fn set_line_location(
        &self,
        endpoint: &str,
        doc_id: &str,
        line_collection: &str,
        line_id: &str,
        location_id: &str,
        sublocation: &str,
    ) -> Result<(), SimError> {
        self.shared.write().set_line_location(endpoint, doc_id, line_collection, line_id, location_id, sublocation)
    }

    pub fn cancel(&self, endpoint: &str, doc_id: &str) -> Result<(), SimError> {
        self.shared.write().set_cancelled(endpoint, doc_id, true)
    }
    pub fn uncancel(&self, endpoint: &str, doc_id: &str) -> Result<(), SimError> {
        self.shared.write().set_cancelled(endpoint, doc_id, false)
    }
    pub fn delete(&self, endpoint: &str, doc_id: &str) -> Result<(), SimError> {
        self.shared.write().delete(endpoint, doc_id)
    }
    /// Adds a document given in the API's JSON shape; returns its id. Absent ids are
    /// generated (`salesOrderId` and line ids), an absent number continues the series.
    pub fn insert_document(&self, endpoint: &str, document: Value) -> Result<String, SimError> {
        self.shared.write().insert_document(endpoint, &document)
    }
}
