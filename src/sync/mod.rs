//! The engine: what reads inFlow and writes the audit trail.
//!
//! - [`run`](mod@run): an ingest, which walks each stream page by page and writes serial events.
//! - [`rebuild`](mod@rebuild): every event derived again from the stored documents, without a request.
//! - [`snapshot`]: inFlow's current serial stock, from products' `inventoryLines`.
//! - `adapt`: how walks adapt to the server (paging modes, what `X-listCount` counts) and the
//!   reference lists (locations, products); `derive`: documents to events, as stored;
//!   `sheets`: the lines of stock counts' sheets fetched one by one; `record`: the run row
//!   around every run; `group`: group commit, pages fetched ahead and written together.
//!
//! Every run is recorded in `ingest_runs` (`record`) whatever its outcome, with one set of
//! [`Counters`] added up from pages to streams to the run.

mod adapt;
mod derive;
pub mod estimate;
mod group;
pub mod rebuild;
mod record;
pub mod run;
mod sheets;
pub mod snapshot;

use chrono::NaiveDate;

use crate::inflow::ClientError;
use crate::mapping::DocType;
pub use crate::stop::{StopFlag, StopReason};
use crate::store::StoreError;
pub use crate::store::runs::{Counters, RunCounters, RunStatus};
pub use adapt::RETRY_PREFERRED_AFTER;
pub use rebuild::rebuild;
pub use run::run;

/// What an ingest is asked to do.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// The inFlow company whose documents are walked.
    pub company_id: String,
    /// Documents dated before this day are left out; remembered for later runs.
    pub since: Option<NaiveDate>,
    /// Re-read only the sales and purchase orders dated within this long before now.
    pub window: Option<chrono::Duration>,
    /// The streams to walk, in this order.
    pub types: Vec<DocType>,
    /// Skip an optional stream (manufacturing orders, stock counts) whose endpoint the account
    /// does not have, with a warning, instead of failing: when the streams were not chosen.
    pub skip_unavailable: bool,
    /// The options as recorded in `ingest_runs.arguments` (never the API key).
    pub arguments: serde_json::Value,
}

/// What happened to one stream in a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StreamSummary {
    /// The stream's name (`sales-orders`, ...).
    pub stream: &'static str,
    /// `complete`, `window` or `rebuild`.
    pub kind: &'static str,
    /// The position this run resumed from, if an earlier walk was unfinished.
    pub resumed_from: Option<String>,
    /// What the stream's pages did.
    #[serde(flatten)]
    pub work: Counters,
    /// Documents a complete walk found gone from inFlow (their events are retracted).
    pub deleted: i64,
    /// The walk reached its end in this run.
    pub complete: bool,
    /// The walk reached its end but cannot prove it returned every document (why): it
    /// concluded no deletion and is not recorded as complete.
    pub unproven: Option<String>,
    /// How the walk paged when it ended (`keyset`, `keyset-unsorted`, `skip`).
    pub paging: &'static str,
}

/// What a run did, stream by stream and in all.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run's row in `ingest_runs`.
    pub run_id: i64,
    /// How the run ended.
    pub status: RunStatus,
    /// Why the run stopped before its end, if it did.
    pub stop: Option<StopReason>,
    /// Each stream walked, in order.
    pub streams: Vec<StreamSummary>,
    /// The run's counters, as recorded.
    pub counters: RunCounters,
}

/// Progress reports; the command line draws bars from them.
pub trait Progress: Send + Sync {
    /// A stream's walk starts (or resumes at this position).
    fn stream_started(&self, _stream: &'static str, _resumed_from: Option<&str>) {}
    /// A page was written; the stream's summary so far, the run's requests and the budget left.
    fn page_written(&self, _stream: &'static str, _summary: &StreamSummary, _requests: u64, _budget_left: Option<u64>) {
    }
    /// A stream's walk ended (done, or stopped).
    fn stream_finished(&self, _summary: &StreamSummary) {}
}

/// Reports nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// Why a run of the engine (an ingest, a snapshot, a rebuild) failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A request of a stream's walk failed.
    #[error("ingest of {stream} failed at the {position}")]
    Fetch {
        /// The stream.
        stream: &'static str,
        /// Which page or request.
        position: String,
        /// The client's error.
        #[source]
        source: ClientError,
    },
    /// Fetching a reference list (locations, products) failed.
    #[error("fetching {what} failed")]
    Reference {
        /// Which list.
        what: &'static str,
        /// The client's error.
        #[source]
        source: ClientError,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A second signal abandoned the run.
    #[error(
        "run {run_id} stopped at once by a second signal; it is recorded as interrupted, and the next run \
         continues from its last saved page"
    )]
    Interrupted {
        /// The run, recorded as interrupted.
        run_id: i64,
    },
}
