//! The ingest engine: walks each stream page by page and writes serial events.
//!
//! A run fetches the locations once, then walks the requested streams in turn. Each stream's
//! walk resumes where an earlier, unfinished walk stopped (the position is saved with every
//! page), unless the date bound changed. While one page is written the next one is already being
//! fetched, so the database and inFlow's latency overlap. A run ends `succeeded` when every walk
//! is complete, `stopped` when the request budget or a signal ends it early (its walks resume
//! next time), and `failed` on an error, which names the stream and page.

use std::borrow::Cow;

use chrono::{NaiveDate, Utc};
use serde_json::value::RawValue;

use crate::inflow::model::{Location, Product};
use crate::inflow::walk::{ListSpec, Position, Walk, id_of};
use crate::inflow::{Client, ClientError};
use crate::mapping::storable::{KeptEscape, storable_json};
use crate::mapping::{self, Derived, DocType, MappingError, Warning, WarningKind};
use crate::store::ingest::{
    DocWrite, LooseWarning, PageKind, PageOutcome, PageWrite, Quarantine, RunCounters, RunStatus, WalkEnd, WalkMark,
};
use crate::store::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub company_id: String,
    /// Documents dated before this day are left out; remembered for later runs.
    pub since: Option<NaiveDate>,
    /// Re-read only the sales and purchase orders dated within this long before now.
    pub window: Option<chrono::Duration>,
    pub types: Vec<DocType>,
    /// The options as recorded in `ingest_runs.arguments` (never the API key).
    pub arguments: serde_json::Value,
}

/// Missing documents are checked one request each; beyond this many something else is wrong
/// (a server that ignores the keyset, say), and no deletion is concluded.
const MAX_CONFIRMATIONS: usize = 100;

/// A walk over every document of a stream (within `--since`), or over a recent window only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkKind {
    Complete,
    Window,
}

impl WalkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WalkKind::Complete => "complete",
            WalkKind::Window => "window",
        }
    }
}

pub use crate::stop::{StopFlag, StopReason};

/// What happened to one stream in a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StreamSummary {
    pub stream: &'static str,
    /// `complete` or `window`.
    pub kind: &'static str,
    /// The position this run resumed from, if an earlier walk was unfinished.
    pub resumed_from: Option<String>,
    pub pages: i64,
    pub documents_seen: i64,
    pub documents_changed: i64,
    pub events_inserted: i64,
    pub events_retracted: i64,
    pub warnings: i64,
    /// Documents a complete walk found gone from inFlow (their events are retracted).
    pub deleted: i64,
    /// The walk reached its end in this run.
    pub complete: bool,
}

#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_id: i64,
    pub status: RunStatus,
    pub stop: Option<StopReason>,
    pub streams: Vec<StreamSummary>,
    pub counters: RunCounters,
}

/// Progress reports; the command line draws bars from them.
pub trait Progress: Send + Sync {
    fn stream_started(&self, _stream: &'static str, _resumed_from: Option<&str>) {}
    fn page_written(&self, _stream: &'static str, _summary: &StreamSummary, _requests: u64, _budget_left: Option<u64>) {
    }
    fn stream_finished(&self, _summary: &StreamSummary) {}
}

/// Reports nothing.
pub struct Quiet;
impl Progress for Quiet {}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("ingest of {stream} failed at the {position}")]
    Fetch {
        stream: &'static str,
        position: String,
        #[source]
        source: ClientError,
    },
    #[error("fetching {what} failed")]
    Reference {
        what: &'static str,
        #[source]
        source: ClientError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "run {run_id} stopped at once by a second signal; it is recorded as interrupted, and the next run \
         continues from its last saved page"
    )]
    Interrupted { run_id: i64 },
}

/// How long the record of a run abandoned by a second signal may take before the process gives
/// up on it (a later run marks the run interrupted anyway).
const RECORD_INTERRUPTED_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Records a run abandoned by a second signal, on a connection of its own: the run's own may be
/// stuck in the statement that was abandoned (a page waiting for a lock, say).
pub(crate) async fn record_interrupted(store: &Store, run_id: i64) {
    let record = async {
        let fresh = Store::connect(store.url()).await?;
        let marked = fresh.mark_interrupted(run_id, "stopped at once by a second signal").await;
        fresh.close().await;
        marked
    };
    match tokio::time::timeout(RECORD_INTERRUPTED_WITHIN, record).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("could not record run {run_id} as interrupted: {}", crate::error_text(&e)),
        Err(_) => tracing::warn!("could not record run {run_id} as interrupted: the database did not answer in time"),
    }
}

/// Runs one ingest. The run is recorded in `ingest_runs` whatever its outcome.
pub async fn run(
    store: &Store,
    client: &Client,
    options: &IngestOptions,
    progress: &dyn Progress,
    stop: &StopFlag,
) -> Result<RunSummary, IngestError> {
    let run_id =
        store.begin_run(&options.company_id, "ingest", &options.arguments, Some(&client.config().api_version)).await?;
    let mut ctx = Run { store, client, options, progress, stop, run_id, counters: RunCounters::default() };
    let work = async {
        let result = ctx.all_streams().await;
        ctx.sync_client_counters();
        match result {
            Ok((streams, stop)) => {
                let status = if stop.is_some() { RunStatus::Stopped } else { RunStatus::Succeeded };
                store.finish_run(run_id, status, &ctx.counters, None).await?;
                Ok(RunSummary { run_id, status, stop, streams, counters: ctx.counters })
            }
            Err(err) => {
                let text = client.redact(&crate::error_text(&err)).into_owned();
                // The failure is what the user needs to hear about; a second one while recording
                // it is only logged.
                if let Err(e) = store.finish_run(run_id, RunStatus::Failed, &ctx.counters, Some(&text)).await {
                    tracing::error!("could not record the failure of run {run_id}: {}", crate::error_text(&e));
                }
                Err(err)
            }
        }
    };
    // A second signal abandons whatever the run waits for: a page's transaction rolls back, and
    // the last saved page is where the next run starts.
    tokio::select! {
        outcome = work => outcome,
        _ = stop.forced() => {
            record_interrupted(store, run_id).await;
            Err(IngestError::Interrupted { run_id })
        }
    }
}

/// Why a request did not happen, when that ends the run cleanly: the budget is spent, or the
/// stop flag was set while waiting.
fn clean_stop(e: &ClientError, stop: &StopFlag) -> Option<StopReason> {
    match e {
        ClientError::BudgetSpent => Some(StopReason::Budget),
        ClientError::Stopped => Some(stop.reason().unwrap_or(StopReason::Signal)),
        _ => None,
    }
}

struct Run<'a> {
    store: &'a Store,
    client: &'a Client,
    options: &'a IngestOptions,
    progress: &'a dyn Progress,
    stop: &'a StopFlag,
    run_id: i64,
    counters: RunCounters,
}

impl Run<'_> {
    async fn all_streams(&mut self) -> Result<(Vec<StreamSummary>, Option<StopReason>), IngestError> {
        let mut summaries = Vec::new();
        match self.fetch_locations().await {
            Ok(()) => {}
            Err(IngestError::Reference { source, .. }) if clean_stop(&source, self.stop).is_some() => {
                return Ok((summaries, clean_stop(&source, self.stop)));
            }
            Err(e) => return Err(e),
        }
        for doc_type in self.options.types.clone() {
            let (summary, stop) = self.stream(doc_type).await?;
            self.progress.stream_finished(&summary);
            summaries.push(summary);
            if stop.is_some() {
                return Ok((summaries, stop));
            }
        }
        // Products are fetched once, at the end, when events named ones we do not know (this
        // run or an earlier one that stopped before it could).
        let owed = self.store.sync_state(&self.options.company_id, "products").await?.walk_id.is_some();
        if owed {
            match self.fetch_products().await {
                Ok(()) => self.store.complete_walk(&self.options.company_id, "products", self.run_id).await?,
                Err(IngestError::Reference { source, .. }) if clean_stop(&source, self.stop).is_some() => {
                    return Ok((summaries, clean_stop(&source, self.stop)));
                }
                Err(e) => return Err(e),
            }
        }
        Ok((summaries, None))
    }

    fn sync_client_counters(&mut self) {
        let stats = self.client.stats();
        self.counters.requests = stats.requests() as i64;
        self.counters.rate_limited = stats.rate_limited() as i64;
        self.counters.retries = stats.retries() as i64;
    }

    async fn stream(&mut self, doc_type: DocType) -> Result<(StreamSummary, Option<StopReason>), IngestError> {
        let company = self.options.company_id.as_str();
        let stream = doc_type.stream();
        let state = self.store.sync_state(company, stream).await?;
        let since = self.options.since.or(state.since);
        // A window re-reads only recent orders (inFlow filters them by date); the streams it
        // cannot filter are walked completely anyway.
        let window_from =
            self.options.window.filter(|_| doc_type.date_filter().is_some()).map(|w| (Utc::now() - w).date_naive());
        let (kind, bound) = match window_from {
            Some(from) => (WalkKind::Window, Some(since.map_or(from, |s| s.max(from)))),
            None => (WalkKind::Complete, since),
        };
        let resumable =
            state.walk_id.is_some() && state.walk_kind.as_deref() == Some(kind.as_str()) && state.walk_from == bound;
        // A window run leaves an unfinished complete walk (a backfill taken in shares, say) to
        // resume next time, instead of starting it over.
        let beside = match state.walk_id {
            Some(id)
                if kind == WalkKind::Window
                    && state.walk_kind.as_deref() == Some(WalkKind::Complete.as_str())
                    && self.options.since.is_none_or(|s| state.since == Some(s)) =>
            {
                Some(id)
            }
            _ => None,
        };
        let (walk_id, position) = match (resumable, state.walk_id, beside) {
            (_, _, Some(complete_walk)) => (complete_walk, Position::START),
            (true, Some(id), None) => (id, Position::decode(state.walk_position.as_deref().unwrap_or(""))),
            _ => (self.run_id, Position::START),
        };
        let mut summary = StreamSummary { stream, kind: kind.as_str(), ..StreamSummary::default() };
        if resumable && position != Position::START {
            summary.resumed_from = Some(position.to_string());
        }
        if beside.is_none() && (!resumable || self.options.since.is_some_and(|s| state.since != Some(s))) {
            let mark = WalkMark {
                stream,
                walk_id,
                kind: kind.as_str(),
                from: bound,
                paging: position.paging(),
                position: position.encode(),
            };
            self.store.start_walk(company, since, &mark).await?;
        }
        self.progress.stream_started(stream, summary.resumed_from.as_deref());

        let mut filters = Vec::new();
        if let (Some(from), Some(field)) = (bound, doc_type.date_filter()) {
            filters.push((date_filter_param(field), format!(r#"{{"fromDate":"{from}"}}"#)));
        }
        let spec =
            ListSpec { path: stream, id_field: doc_type.id_field(), include: Some(doc_type.includes()), filters };
        let mut walk = Walk::new(self.client, spec, position);

        if let Some(reason) = self.stop.reason() {
            return Ok((summary, Some(reason)));
        }
        let mut next = walk.next_page().await;
        loop {
            let page = match next {
                Ok(page) => page,
                Err(source) if clean_stop(&source, self.stop).is_some() => {
                    return Ok((summary, clean_stop(&source, self.stop)));
                }
                Err(source) => {
                    return Err(IngestError::Fetch { stream, position: walk.position().to_string(), source });
                }
            };
            let last = page.last;
            let keyset = matches!(page.next, Position::After(_));
            let mark = WalkMark {
                stream,
                walk_id,
                kind: kind.as_str(),
                from: bound,
                paging: page.next.paging(),
                position: page.next.encode(),
            };
            let page_kind = if beside.is_some() { PageKind::Beside(mark) } else { PageKind::Walk(mark) };
            // Fetch the next page while this one is written.
            let (written, fetched) = if last || self.stop.is_set() {
                (self.write(doc_type, bound, &page.items, page_kind).await, None)
            } else {
                let (w, f) = tokio::join!(self.write(doc_type, bound, &page.items, page_kind), walk.next_page());
                (w, Some(f))
            };
            let outcome = written?;
            self.add(&mut summary, &outcome, true);
            self.keep_statistics_fresh().await;
            self.progress.page_written(stream, &summary, self.client.stats().requests(), self.client.budget_left());
            crate::testing::crash_point("after-page");

            if last {
                let deleted = match (kind, keyset) {
                    (WalkKind::Complete, true) => {
                        match self.confirm_missing(doc_type, walk_id, bound, &mut summary).await {
                            Ok(deleted) => deleted,
                            Err(IngestError::Fetch { source, .. }) if clean_stop(&source, self.stop).is_some() => {
                                return Ok((summary, clean_stop(&source, self.stop)));
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    (WalkKind::Complete, false) => {
                        tracing::warn!(
                            "{stream}: walked with skip paging, which can miss documents while data changes; deletions are not concluded from it"
                        );
                        Vec::new()
                    }
                    (WalkKind::Window, _) => Vec::new(),
                };
                let end = WalkEnd {
                    company_id: company,
                    run_id: self.run_id,
                    doc_type,
                    complete: kind == WalkKind::Complete,
                    beside: beside.is_some(),
                    deleted: &deleted,
                    counters: self.counters_now(),
                };
                let outcome = self.store.finish_walk(end).await?;
                self.counters = self.counters_now().plus_retractions(&outcome);
                summary.events_retracted += outcome.events_retracted;
                summary.deleted = deleted.len() as i64;
                summary.complete = true;
                return Ok((summary, None));
            }
            if let Some(reason) = self.stop.reason() {
                return Ok((summary, Some(reason)));
            }
            next = fetched.expect("fetched unless last or stopping");
        }
    }

    /// Documents a complete walk did not return are asked for by id: a 404 confirms the
    /// deletion, anything else is a document the walk missed (moved out of the date range, or
    /// created behind the cursor), which is written like a page. Returns the deleted ids.
    async fn confirm_missing(
        &mut self,
        doc_type: DocType,
        walk_id: i64,
        bound: Option<NaiveDate>,
        summary: &mut StreamSummary,
    ) -> Result<Vec<String>, IngestError> {
        let stream = doc_type.stream();
        let missing = self.store.unseen_documents(&self.options.company_id, doc_type, walk_id, bound).await?;
        if missing.len() > MAX_CONFIRMATIONS {
            tracing::warn!(
                "{stream}: {} stored documents were not in the walk, more than the {MAX_CONFIRMATIONS} worth checking one by one; \
                 none is marked deleted this time",
                missing.len()
            );
            return Ok(Vec::new());
        }
        let query = [("include", doc_type.includes().to_string())];
        let mut deleted = Vec::new();
        let mut found = Vec::new();
        for id in missing {
            let what = format!("GET {stream}/{id} (a document the walk did not return)");
            let fetched = self.client.get_document(stream, &id, &query, &what).await;
            match fetched.map_err(|source| IngestError::Fetch {
                stream,
                position: format!("check of document {id}"),
                source,
            })? {
                Some(raw) => found.push(raw),
                None => deleted.push(id),
            }
        }
        if !found.is_empty() {
            let outcome = self.write(doc_type, None, &found, PageKind::Refetch { walk_id: Some(walk_id) }).await?;
            self.add(summary, &outcome, false);
        }
        Ok(deleted)
    }

    /// Refreshes the database's statistics after pages 2, 8, 32, 128, ... of the run: a few
    /// times while a backfill grows the tables by orders of magnitude, then rarely. A failure
    /// (no right to ANALYZE, say) only costs speed.
    async fn keep_statistics_fresh(&mut self) {
        if refresh_statistics_after(self.counters.pages)
            && let Err(e) = self.store.refresh_statistics().await
        {
            tracing::debug!("could not refresh statistics: {}", crate::error_text(&e));
        }
    }

    /// Adds a written page to the run's counters and the stream's summary.
    fn add(&mut self, summary: &mut StreamSummary, outcome: &PageOutcome, page: bool) {
        self.counters = self.counters_now().plus(outcome);
        if !page {
            self.counters.pages -= 1;
        }
        summary.pages += i64::from(page);
        summary.documents_seen += outcome.documents_seen;
        summary.documents_changed += outcome.documents_changed;
        summary.events_inserted += outcome.events_inserted;
        summary.events_retracted += outcome.events_retracted;
        summary.warnings += outcome.warnings;
    }

    /// Derives and writes one page, with the walk's next position.
    async fn write(
        &self,
        doc_type: DocType,
        bound: Option<NaiveDate>,
        items: &[Box<RawValue>],
        kind: PageKind<'_>,
    ) -> Result<PageOutcome, IngestError> {
        let floor = bound.map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
        // A server that echoes the API key into a document does not get it stored.
        let redacted: Vec<Option<Box<RawValue>>> = items
            .iter()
            .map(|raw| match self.client.redact(raw.get()) {
                Cow::Borrowed(_) => None,
                Cow::Owned(text) => RawValue::from_string(text).ok(),
            })
            .collect();
        let items: Vec<&RawValue> = items.iter().zip(&redacted).map(|(raw, r)| r.as_deref().unwrap_or(raw)).collect();
        let storable = storable_forms(&items);
        let mut docs = Vec::with_capacity(items.len());
        let mut quarantine = Vec::new();
        let mut ids = std::collections::HashSet::with_capacity(items.len());
        for (&raw, (clean, kept)) in items.iter().zip(&storable) {
            let stored: &RawValue = clean.as_deref().unwrap_or(raw);
            match derive_storable(doc_type, stored, kept).map(|d| self.redacted(d)) {
                // inFlow cannot filter adjustments and transfers by date, so the bound is applied
                // here (for every type, in case a server ignores the filter).
                Ok(derived) if floor.is_some_and(|f| derived.doc_date.is_some_and(|d| d < f)) => {}
                // A page that repeats a document (a misbehaving server) is written once.
                Ok(derived) if !ids.insert(derived.doc_id.clone()) => {
                    tracing::warn!(
                        "{}: document {} appears twice in one page; kept once",
                        doc_type.stream(),
                        derived.doc_id
                    );
                }
                Ok(derived) => {
                    docs.push(DocWrite { derived, raw: stored, raw_text: clean.is_some().then(|| raw.get()) })
                }
                // Kept as sent, in quarantine: a later version of audit may read it.
                Err(err) => quarantine.push(Quarantine {
                    doc_id: id_of(stored, doc_type.id_field()),
                    kind: "unreadable_document",
                    reason: unreadable(stored.get(), &err),
                    raw: raw.get(),
                }),
            }
        }
        let write = PageWrite {
            company_id: &self.options.company_id,
            run_id: self.run_id,
            doc_type,
            observed_at: Utc::now(),
            docs,
            loose_warnings: Vec::new(),
            quarantine,
            kind,
            counters: self.counters_now(),
        };
        Ok(self.store.write_page(write).await?)
    }

    /// A derived document whose warnings show no API key (they quote the server's data).
    fn redacted(&self, mut derived: Derived) -> Derived {
        for w in &mut derived.warnings {
            if let Cow::Owned(hidden) = self.client.redact(&w.detail) {
                w.detail = hidden;
            }
        }
        derived
    }

    fn counters_now(&self) -> RunCounters {
        let stats = self.client.stats();
        RunCounters {
            requests: stats.requests() as i64,
            rate_limited: stats.rate_limited() as i64,
            retries: stats.retries() as i64,
            ..self.counters
        }
    }

    async fn fetch_locations(&mut self) -> Result<(), IngestError> {
        fetch_locations(self.store, self.client, &self.options.company_id).await
    }

    async fn fetch_products(&mut self) -> Result<(), IngestError> {
        let spec = ListSpec { path: "products", id_field: "productId", include: None, filters: Vec::new() };
        let products: Vec<Product> = fetch_all(self.client, spec, "the products").await?;
        self.store.upsert_products(&self.options.company_id, &products).await?;
        Ok(())
    }
}

/// Pages 2, 8, 32, 128, ... of a run: each time the tables may have grown fourfold.
fn refresh_statistics_after(pages: i64) -> bool {
    pages >= 2 && (pages as u64).is_power_of_two() && pages.trailing_zeros() % 2 == 1
}

/// `filter[orderDate]`.
fn date_filter_param(field: &str) -> &'static str {
    match field {
        "orderDate" => "filter[orderDate]",
        other => unreachable!("no date filter named {other}"),
    }
}

/// Why a document could not be read, with its first bytes.
fn unreadable(raw: &str, err: &mapping::MappingError) -> String {
    format!("{err}; it starts with {}", crate::inflow::client::body_start(raw.as_bytes()))
}

/// Each document's JSON in the form both databases store (see [`mapping::storable`]): `None`
/// where that is the JSON as sent, with the escapes that had to be kept as text.
fn storable_forms(items: &[&RawValue]) -> Vec<(Option<Box<RawValue>>, Vec<KeptEscape>)> {
    items
        .iter()
        .map(|raw| match storable_json(raw.get()) {
            (Cow::Borrowed(_), _) => (None, Vec::new()),
            // Valid JSON stays valid: only backslashes inside strings are doubled.
            (Cow::Owned(clean), kept) => (RawValue::from_string(clean).ok(), kept),
        })
        .collect()
}

/// Derives a document from its storable JSON, with a warning for each escape kept as text.
fn derive_storable(doc_type: DocType, stored: &RawValue, kept: &[KeptEscape]) -> Result<Derived, MappingError> {
    let mut derived = mapping::derive(doc_type, stored.get())?;
    derived.warnings.extend(kept.iter().map(|k| Warning {
        kind: WarningKind::EscapedText,
        line_collection: None,
        line_id: None,
        detail: format!("{}; the JSON as sent is in documents.raw_text", k.describe()),
    }));
    Ok(derived)
}

/// Derives every event again from the stored documents of one company, without any request.
/// Recorded as a run of command `rebuild`.
pub async fn rebuild(store: &Store, company_id: &str, progress: &dyn Progress) -> Result<RunSummary, IngestError> {
    const BATCH: i64 = 200;
    let run_id = store.begin_run(company_id, "rebuild", &serde_json::json!({}), None).await?;
    let mut counters = RunCounters::default();
    let mut streams = Vec::new();
    let result: Result<(), IngestError> = async {
        for doc_type in DocType::ALL {
            let stream = doc_type.stream();
            let mut summary = StreamSummary { stream, kind: "rebuild", ..StreamSummary::default() };
            progress.stream_started(stream, None);
            let mut after = String::new();
            loop {
                let batch = store.stored_documents(company_id, doc_type, &after, BATCH).await?;
                let Some((last, _)) = batch.last() else { break };
                after = last.clone();
                let raws: Vec<Box<RawValue>> = batch.into_iter().map(|(_, raw)| raw).collect();
                let storable = storable_forms(&raws.iter().map(|r| r.as_ref()).collect::<Vec<_>>());
                let mut docs = Vec::with_capacity(raws.len());
                let mut loose_warnings = Vec::new();
                for (raw, (clean, kept)) in raws.iter().zip(&storable) {
                    let stored: &RawValue = clean.as_deref().unwrap_or(raw);
                    match derive_storable(doc_type, stored, kept) {
                        Ok(derived) => docs.push(DocWrite { derived, raw: stored, raw_text: None }),
                        // Stored already; the warning says a later version may read it.
                        Err(err) => loose_warnings.push(LooseWarning {
                            doc_type,
                            doc_id: id_of(stored, doc_type.id_field()),
                            kind: "unreadable_document",
                            detail: unreadable(stored.get(), &err),
                        }),
                    }
                }
                let outcome = store
                    .write_page(PageWrite {
                        company_id,
                        run_id,
                        doc_type,
                        observed_at: Utc::now(),
                        docs,
                        loose_warnings,
                        quarantine: Vec::new(),
                        kind: PageKind::Rebuild,
                        counters,
                    })
                    .await?;
                counters = counters.plus(&outcome);
                summary.pages += 1;
                summary.documents_seen += outcome.documents_seen;
                summary.documents_changed += i64::from(outcome.events_inserted + outcome.events_retracted > 0);
                summary.events_inserted += outcome.events_inserted;
                summary.events_retracted += outcome.events_retracted;
                summary.warnings += outcome.warnings;
                progress.page_written(stream, &summary, 0, None);
            }
            summary.complete = true;
            progress.stream_finished(&summary);
            streams.push(summary);
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            store.finish_run(run_id, RunStatus::Succeeded, &counters, None).await?;
            Ok(RunSummary { run_id, status: RunStatus::Succeeded, stop: None, streams, counters })
        }
        Err(err) => {
            let text = crate::error_text(&err);
            if let Err(e) = store.finish_run(run_id, RunStatus::Failed, &counters, Some(&text)).await {
                tracing::error!("could not record the failure of run {run_id}: {}", crate::error_text(&e));
            }
            Err(err)
        }
    }
}

/// Fetches and stores the company's locations (one short walk).
pub(crate) async fn fetch_locations(store: &Store, client: &Client, company_id: &str) -> Result<(), IngestError> {
    let spec = ListSpec { path: "locations", id_field: "locationId", include: None, filters: Vec::new() };
    let locations: Vec<Location> = fetch_all(client, spec, "the locations").await?;
    store.upsert_locations(company_id, &locations).await?;
    Ok(())
}

/// Walks a small reference list to its end.
async fn fetch_all<T: serde::de::DeserializeOwned>(
    client: &Client,
    spec: ListSpec,
    what: &'static str,
) -> Result<Vec<T>, IngestError> {
    let mut walk = Walk::new(client, spec, Position::START);
    let mut all = Vec::new();
    loop {
        let page = walk.next_page().await.map_err(|source| IngestError::Reference { what, source })?;
        all.extend(
            page.items.iter().filter_map(|raw| mapping::storable::parse_storable(&client.redact(raw.get())).ok()),
        );
        if page.last {
            return Ok(all);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_are_refreshed_as_the_tables_grow_fourfold() {
        let refreshed: Vec<i64> = (0..600).filter(|p| refresh_statistics_after(*p)).collect();
        assert_eq!(refreshed, [2, 8, 32, 128, 512]);
    }
}
