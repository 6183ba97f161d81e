//! The ingest engine: walks each stream page by page and writes serial events.
//!
//! A run fetches the locations once, then walks the requested streams in turn. Each stream's
//! walk resumes where an earlier, unfinished walk stopped (the position is saved with every
//! page), unless the date bound changed. While one page is written the next one is already being
//! fetched, so the database and inFlow's latency overlap. A run ends `succeeded` when every walk
//! is complete, `stopped` when the request budget or a signal ends it early (its walks resume
//! next time), and `failed` on an error, which names the stream and page.
//!
//! How a stream is walked adapts to the server (`Adapt`): a walk starts in the paging mode
//! recorded for its stream in `api_capabilities` (by `audit doctor` or an earlier fallback), a
//! complete walk tries the preferred mode again a day after a fallback, and what a walk had to
//! learn (a fallback, a lost position, what `X-listCount` counts) is warned about once and
//! recorded. Deletions are concluded only at the end of a walk that proved it saw everything.

use std::borrow::Cow;

use chrono::{NaiveDate, Utc};
use serde_json::value::RawValue;

use crate::inflow::client::RateMeaning;
use crate::inflow::model::{Location, Product};
use crate::inflow::walk::{CountMeaning, ListSpec, Paging, Pass, Position, Walk, WalkNote, WalkStart, id_of};
use crate::inflow::{Client, ClientError};
use crate::mapping::stock_count::CountEvidence;
use crate::mapping::storable::{KeptEscape, storable_json};
use crate::mapping::{self, Context, Derived, DocType, EventType, MappingError, Warning, WarningKind};
use crate::store::capabilities::{self, Capability};
use crate::store::ingest::{
    DocWrite, LooseWarning, PageKind, PageOutcome, PageWrite, Quarantine, RECHECK_ADJUSTMENTS, RunCounters, RunStatus,
    SyncState, WalkEnd, WalkMark,
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
    /// Skip an optional stream (manufacturing orders, stock counts) whose endpoint the account
    /// does not have, with a warning, instead of failing: when the streams were not chosen.
    pub skip_unavailable: bool,
    /// The options as recorded in `ingest_runs.arguments` (never the API key).
    pub arguments: serde_json::Value,
}

/// Missing documents are checked one request each; beyond this many something else is wrong
/// (a server that ignores the keyset, say), and no deletion is concluded.
const MAX_CONFIRMATIONS: usize = 100;

/// A paging mode that failed is tried again by the first complete walk this long after it was
/// recorded (or whenever `audit doctor` finds it works).
pub const RETRY_PREFERRED_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(24);

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
    /// The walk reached its end but cannot prove it returned every document (why): it
    /// concluded no deletion and is not recorded as complete.
    pub unproven: Option<String>,
    /// How the walk paged when it ended (`keyset`, `keyset-unsorted`, `skip`).
    pub paging: &'static str,
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
    let meaning = learnt(store, client, &options.company_id).await?;
    let mut ctx = Run { store, client, options, progress, stop, run_id, counters: RunCounters::default(), meaning };
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
    /// What `X-listCount` counts, as far as is known.
    meaning: CountMeaning,
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
            let (summary, stop) = match self.stream(doc_type).await {
                Ok(done) => done,
                Err(IngestError::Fetch { source: ClientError::Unavailable { path, .. }, .. })
                    if self.options.skip_unavailable && doc_type.optional() =>
                {
                    let text = format!(
                        "{path}: inFlow answers 404 for this list while the company answers, so this account \
                         does not seem to offer it; the stream is skipped (it is tried again on every run). \
                         `audit doctor` reports it; `--types` without {path} avoids the request"
                    );
                    tracing::warn!("{text}");
                    let company = &self.options.company_id;
                    self.store
                        .record_run_warning(self.run_id, company, Some(doc_type), "stream_unavailable", &text)
                        .await?;
                    self.counters.warnings += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.progress.stream_finished(&summary);
            summaries.push(summary);
            if stop.is_some() {
                return Ok((summaries, stop));
            }
        }
        // Stock adjustments made by counts whose difference changed: derived again (no request).
        if self.store.sync_state(&self.options.company_id, RECHECK_ADJUSTMENTS).await?.walk_id.is_some() {
            self.counters =
                recheck_adjustments(self.store, &self.options.company_id, self.run_id, self.counters_now()).await?;
            self.store.complete_walk(&self.options.company_id, RECHECK_ADJUSTMENTS, self.run_id).await?;
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
        if kind == WalkKind::Window && state.last_complete_at.is_none() && beside.is_none() {
            let text = format!(
                "{stream}: no complete walk of this stream has finished yet, so this --window run reads only the \
                 documents dated in the window and the trail has no older history; run `audit ingest` without \
                 --window (with --since for a bound) once"
            );
            tracing::warn!("{text}");
            self.store
                .record_run_warning(self.run_id, company, Some(doc_type), "window_without_history", &text)
                .await?;
            self.counters.warnings += 1;
        }
        let adapt = Adapt::new(self.store, self.client, company, self.run_id);
        let (walk_id, start) = match (resumable, state.walk_id, beside) {
            (_, _, Some(complete_walk)) => (complete_walk, adapt.fresh_start(stream, false, self.meaning).await?),
            (true, Some(id), None) => (id, resumed_start(&state, self.meaning)),
            _ => (self.run_id, adapt.fresh_start(stream, kind == WalkKind::Complete, self.meaning).await?),
        };
        let mut recorded = adapt.recorded_paging(stream).await?;
        let mut summary = StreamSummary { stream, kind: kind.as_str(), ..StreamSummary::default() };
        if resumable && !start.position.is_start() {
            summary.resumed_from = Some(start.position.to_string());
        }
        if beside.is_none() && (!resumable || self.options.since.is_some_and(|s| state.since != Some(s))) {
            let mark = WalkMark {
                stream,
                walk_id,
                kind: kind.as_str(),
                from: bound,
                paging: start.paging.as_str(),
                position: start.position.encode(),
                seen: start.pass.seen as i64,
                list_count: start.pass.stored_count(),
                unproven: start.pass.unproven.clone(),
                restarted: false,
            };
            self.store.start_walk(company, since, &mark).await?;
        }
        self.progress.stream_started(stream, summary.resumed_from.as_deref());

        let mut filters = Vec::new();
        if let (Some(from), Some(field)) = (bound, doc_type.date_filter()) {
            filters.push((date_filter_param(field), format!(r#"{{"fromDate":"{from}"}}"#)));
        }
        let spec = ListSpec {
            path: stream,
            id_field: doc_type.id_field(),
            include: Some(doc_type.includes()),
            fallback_include: doc_type.fallback_includes(),
            filters,
        };
        let mut walk = Walk::start(self.client, spec, start);

        if let Some(reason) = self.stop.reason() {
            return Ok((summary, Some(reason)));
        }
        let mut next = walk.next_page().await;
        loop {
            self.report(doc_type, &mut walk, &mut recorded, &mut summary).await?;
            let mut page = match next {
                Ok(page) => page,
                Err(source) if clean_stop(&source, self.stop).is_some() => {
                    return Ok((summary, clean_stop(&source, self.stop)));
                }
                Err(source) => {
                    return Err(IngestError::Fetch { stream, position: walk.position().to_string(), source });
                }
            };
            // A list that refused the sheets' lines: each sheet by id (the page is not written,
            // and the walk does not move on, until they are all in).
            if walk.include_fell_back() {
                page.items = match complete_sheets(self.client, std::mem::take(&mut page.items)).await {
                    Ok(items) => items,
                    Err(ClientError::BudgetSpent) => return Ok((summary, Some(StopReason::Budget))),
                    Err(source) => {
                        return Err(IngestError::Fetch { stream, position: walk.position().to_string(), source });
                    }
                };
            }
            let last = page.last;
            let mark = WalkMark {
                stream,
                walk_id,
                kind: kind.as_str(),
                from: bound,
                paging: page.paging.as_str(),
                position: page.next.encode(),
                seen: page.pass.seen as i64,
                list_count: page.pass.stored_count(),
                unproven: page.pass.unproven.clone(),
                restarted: page.restarted,
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
                // Deletions are concluded only from a walk that proved it saw every document.
                let unproven = walk.unproven().map(str::to_string);
                let deleted = match (kind, &unproven) {
                    (WalkKind::Complete, None) => {
                        let resumed_from = walk.resumed_from().map(str::to_string);
                        let fell_back = walk.include_fell_back();
                        match self
                            .confirm_missing(doc_type, walk_id, bound, resumed_from, fell_back, &mut summary)
                            .await
                        {
                            Ok(deleted) => deleted,
                            Err(IngestError::Fetch { source, .. }) if clean_stop(&source, self.stop).is_some() => {
                                return Ok((summary, clean_stop(&source, self.stop)));
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    (WalkKind::Complete, Some(why)) => {
                        tracing::warn!(
                            "{stream}: the walk reached its end but cannot prove it returned every document ({why}); \
                             no deletion is concluded and it is not recorded as a complete walk: the next run walks it again"
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
                    proven: unproven.is_none(),
                    beside: beside.is_some(),
                    deleted: &deleted,
                    counters: self.counters_now(),
                };
                let outcome = self.store.finish_walk(end).await?;
                self.counters = self.counters_now().plus_retractions(&outcome);
                summary.events_retracted += outcome.events_retracted;
                summary.deleted = deleted.len() as i64;
                summary.complete = true;
                summary.unproven = unproven;
                summary.paging = walk.paging().as_str();
                if recorded != Some(walk.paging()) {
                    let why = format!("a walk of {stream} reached its end with {}", walk.paging().describe());
                    adapt.record_paging(stream, walk.paging(), why).await?;
                }
                return Ok((summary, None));
            }
            if let Some(reason) = self.stop.reason() {
                self.report(doc_type, &mut walk, &mut recorded, &mut summary).await?;
                return Ok((summary, Some(reason)));
            }
            next = fetched.expect("fetched unless last or stopping");
        }
    }

    /// Reports and records what the walk had to adapt to since the last call.
    async fn report(
        &mut self,
        doc_type: DocType,
        walk: &mut Walk<'_>,
        recorded: &mut Option<Paging>,
        summary: &mut StreamSummary,
    ) -> Result<(), IngestError> {
        let adapt = Adapt::new(self.store, self.client, &self.options.company_id, self.run_id);
        for note in walk.take_notes() {
            if let WalkNote::CountMeaning(meaning) = note {
                self.meaning = meaning;
            }
            if let WalkNote::FellBack { to, .. } = &note {
                *recorded = Some(*to);
            }
            if adapt.note(doc_type.stream(), Some(doc_type), &note).await? {
                self.counters.warnings += 1;
                summary.warnings += 1;
            }
        }
        Ok(())
    }

    /// Documents a complete walk did not return are asked for by id: a 404 confirms the
    /// deletion, anything else is a document the walk missed (moved out of the date range, or
    /// created behind the cursor), which is written like a page. The document of the position
    /// the walk resumed from is asked for too: seen before the stop, it would not be missed.
    /// Returns the deleted ids.
    async fn confirm_missing(
        &mut self,
        doc_type: DocType,
        walk_id: i64,
        bound: Option<NaiveDate>,
        resumed_from: Option<String>,
        fell_back: bool,
        summary: &mut StreamSummary,
    ) -> Result<Vec<String>, IngestError> {
        let stream = doc_type.stream();
        let mut missing = self.store.unseen_documents(&self.options.company_id, doc_type, walk_id, bound).await?;
        if let Some(id) = resumed_from
            && !missing.contains(&id)
            && self.store.is_stored(&self.options.company_id, doc_type, &id).await?
        {
            missing.push(id);
        }
        if missing.len() > MAX_CONFIRMATIONS {
            tracing::warn!(
                "{stream}: {} stored documents were not in the walk, more than the {MAX_CONFIRMATIONS} worth checking one by one; \
                 none is marked deleted this time",
                missing.len()
            );
            return Ok(Vec::new());
        }
        let include = match doc_type.fallback_includes() {
            Some(smaller) if fell_back => smaller,
            _ => doc_type.includes(),
        };
        let query = [("include", include.to_string())];
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
        if fell_back {
            found = complete_sheets(self.client, found).await.map_err(|source| IngestError::Fetch {
                stream,
                position: "the sheets of documents the walk did not return".into(),
                source,
            })?;
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
        let forms = storable_forms(&items);
        let page = Stored::page(&items, &forms);
        let derived = derive_docs(self.store, &self.options.company_id, doc_type, &page).await?;
        let mut docs = Vec::with_capacity(items.len());
        let mut quarantine = Vec::new();
        let mut ids = std::collections::HashSet::with_capacity(items.len());
        for (stored, result) in page.iter().zip(derived) {
            match result.map(|doc| DocWrite { derived: self.redacted(doc.derived), ..doc }) {
                // inFlow cannot filter counts, adjustments and transfers by date, so the bound is
                // applied here (for every type, in case a server ignores the filter).
                Ok(doc) if floor.is_some_and(|f| doc.derived.doc_date.is_some_and(|d| d < f)) => {}
                // A page that repeats a document (a misbehaving server) is written once.
                Ok(doc) if !ids.insert(doc.derived.doc_id.clone()) => {
                    tracing::warn!(
                        "{}: document {} appears twice in one page; kept once",
                        doc_type.stream(),
                        doc.derived.doc_id
                    );
                }
                Ok(doc) => docs.push(doc),
                // Kept as sent, in quarantine: a later version of audit may read it.
                Err(err) => quarantine.push(Quarantine {
                    doc_id: id_of(stored.json, doc_type.id_field()),
                    kind: "unreadable_document",
                    reason: unreadable(stored.json.get(), &err),
                    raw: stored.as_sent(),
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
        let adapt = Adapt::new(self.store, self.client, &self.options.company_id, self.run_id);
        let result = fetch_locations_with(&adapt).await;
        self.counters.warnings += adapt.warnings.get();
        result
    }

    async fn fetch_products(&mut self) -> Result<(), IngestError> {
        let spec = ListSpec {
            path: "products",
            id_field: "productId",
            include: None,
            fallback_include: None,
            filters: Vec::new(),
        };
        let adapt = Adapt::new(self.store, self.client, &self.options.company_id, self.run_id);
        let products = fetch_all::<Product>(&adapt, spec, "the products").await;
        self.counters.warnings += adapt.warnings.get();
        self.store.upsert_products(&self.options.company_id, &products?).await?;
        Ok(())
    }
}

/// What earlier runs and `audit doctor` learnt that the client and walks use: how to read the
/// rate headers (set on the client), and what `X-listCount` counts (returned).
async fn learnt(store: &Store, client: &Client, company_id: &str) -> Result<CountMeaning, StoreError> {
    if let Some(rate) = store.capability(company_id, capabilities::RATE_HEADERS).await? {
        client.set_rate_meaning(RateMeaning::parse(&rate.value));
    }
    let count = store.capability(company_id, capabilities::LIST_COUNT).await?;
    Ok(count.map_or(CountMeaning::Unknown, |c| CountMeaning::parse(&c.value)))
}

/// Where a saved walk stands, to resume it in the mode it was made with.
pub(crate) fn resumed_start(state: &SyncState, meaning: CountMeaning) -> WalkStart {
    let position = Position::decode(state.walk_position.as_deref().unwrap_or(""));
    let paging = state
        .walk_paging
        .as_deref()
        .and_then(Paging::parse)
        .filter(|p| (*p == Paging::Skip) == (position.paging() == Paging::Skip))
        .unwrap_or(position.paging());
    WalkStart {
        paging,
        position,
        pass: Pass::from_stored(state.walk_seen, state.walk_list_count, state.walk_unproven.clone()),
        meaning,
        probe_fallback: None,
    }
}

/// How walks adapt to the server: the paging mode each stream starts with, and what a walk
/// had to learn, warned about once and recorded in `api_capabilities` (and `run_warnings`).
pub(crate) struct Adapt<'a> {
    store: &'a Store,
    client: &'a Client,
    company_id: &'a str,
    run_id: i64,
    /// Run warnings recorded through this value.
    warnings: std::cell::Cell<i64>,
}

impl<'a> Adapt<'a> {
    pub(crate) fn new(store: &'a Store, client: &'a Client, company_id: &'a str, run_id: i64) -> Adapt<'a> {
        Adapt { store, client, company_id, run_id, warnings: std::cell::Cell::new(0) }
    }

    pub(crate) async fn recorded_paging(&self, stream: &str) -> Result<Option<Paging>, StoreError> {
        let recorded = self.store.capability(self.company_id, &capabilities::paging_key(stream)).await?;
        Ok(recorded.and_then(|c| Paging::parse(&c.value)))
    }

    /// How a new walk of `stream` starts: in the recorded mode, except that a complete walk
    /// tries the preferred one again once the failure is old enough (a probe: without retries,
    /// back to the recorded mode at the first failure).
    pub(crate) async fn fresh_start(
        &self,
        stream: &str,
        complete: bool,
        meaning: CountMeaning,
    ) -> Result<WalkStart, StoreError> {
        let recorded = self.store.capability(self.company_id, &capabilities::paging_key(stream)).await?;
        let mut start = WalkStart { meaning, ..WalkStart::fresh(Paging::PREFERRED) };
        let Some((mode, cap)) = recorded.and_then(|c| Paging::parse(&c.value).map(|m| (m, c))) else {
            return Ok(start);
        };
        if mode == Paging::PREFERRED {
            return Ok(start);
        }
        let age = Utc::now() - cap.checked_at;
        if complete && age >= RETRY_PREFERRED_AFTER {
            tracing::info!(
                "{stream}: trying {} again ({mode} recorded {} h ago)",
                Paging::PREFERRED.describe(),
                age.num_hours()
            );
            start.probe_fallback = Some(mode);
        } else {
            tracing::info!("{stream}: walking with {} ({})", mode.describe(), cap.detail.unwrap_or_default());
            start = WalkStart { meaning, ..WalkStart::fresh(mode) };
        }
        Ok(start)
    }

    pub(crate) async fn record_paging(&self, stream: &str, paging: Paging, why: String) -> Result<(), StoreError> {
        let answer = Capability::new(capabilities::paging_key(stream), paging.as_str(), Some(why));
        self.store.record_capabilities(self.company_id, "ingest", &self.client.config().api_version, &[answer]).await
    }

    /// Warns about a note once and records it; true when it added a run warning.
    pub(crate) async fn note(
        &self,
        stream: &str,
        doc_type: Option<DocType>,
        note: &WalkNote,
    ) -> Result<bool, StoreError> {
        match note {
            WalkNote::FellBack { from, to, why } => {
                let text = format!(
                    "{stream}: {why}; {from} paging does not work here, so the stream is walked again from its start \
                     with {}. Recorded: a complete walk tries {} again after {} h, and `audit doctor` checks it",
                    to.describe(),
                    Paging::PREFERRED,
                    RETRY_PREFERRED_AFTER.num_hours()
                );
                tracing::warn!("{text}");
                self.record_paging(stream, *to, format!("{from} failed: {why}")).await?;
                self.store.record_run_warning(self.run_id, self.company_id, doc_type, "paging_fallback", &text).await?;
                self.warnings.set(self.warnings.get() + 1);
                Ok(true)
            }
            WalkNote::PositionLost { cursor, why } => {
                let text = format!(
                    "{stream}: the saved position (document {cursor}) no longer answers: {why}. The stream is walked \
                     again from its start: documents already stored cost requests but no writes, and no deletion is \
                     concluded before the walk's end is proven"
                );
                tracing::warn!("{text}");
                self.store.record_run_warning(self.run_id, self.company_id, doc_type, "position_lost", &text).await?;
                self.warnings.set(self.warnings.get() + 1);
                Ok(true)
            }
            WalkNote::CountMeaning(meaning) => {
                let why = format!("two consecutive pages of {stream} showed what X-listCount counts");
                tracing::info!("{why}: {}", meaning.as_str());
                let answer = Capability::new(capabilities::LIST_COUNT, meaning.as_str(), Some(why));
                self.store
                    .record_capabilities(self.company_id, "ingest", &self.client.config().api_version, &[answer])
                    .await?;
                Ok(false)
            }
        }
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
fn derive_storable(
    doc_type: DocType,
    stored: &RawValue,
    kept: &[KeptEscape],
    counts: &[CountEvidence],
) -> Result<Derived, MappingError> {
    let mut derived = mapping::derive_with(doc_type, stored.get(), Context { counts })?;
    derived.warnings.extend(kept.iter().map(|k| Warning {
        kind: WarningKind::EscapedText,
        line_collection: None,
        line_id: None,
        detail: format!("{}; the JSON as sent is in documents.raw_text", k.describe()),
    }));
    Ok(derived)
}

/// One document of a page as it is stored: its storable JSON, the escapes kept as text in it,
/// and the JSON as sent where that differs.
struct Stored<'r> {
    json: &'r RawValue,
    kept: &'r [KeptEscape],
    raw_text: Option<&'r str>,
}

impl<'r> Stored<'r> {
    /// A page's documents, from their storable forms ([`storable_forms`]).
    fn page(items: &[&'r RawValue], forms: &'r [(Option<Box<RawValue>>, Vec<KeptEscape>)]) -> Vec<Stored<'r>> {
        items
            .iter()
            .zip(forms)
            .map(|(&raw, (clean, kept))| Stored {
                json: clean.as_deref().unwrap_or(raw),
                kept,
                raw_text: clean.is_some().then(|| raw.get()),
            })
            .collect()
    }

    /// The JSON as inFlow sent it.
    fn as_sent(&self) -> &'r str {
        self.raw_text.unwrap_or(self.json.get())
    }
}

/// Derives a page's documents, each to its events or to why it cannot be read. Stock
/// adjustments are derived knowing what the stored stock counts found and missed of their
/// serials, to recognise the adjustments a count made.
async fn derive_docs<'r>(
    store: &Store,
    company_id: &str,
    doc_type: DocType,
    page: &[Stored<'r>],
) -> Result<Vec<Result<DocWrite<'r>, MappingError>>, StoreError> {
    let derive = |evidence: &[CountEvidence]| -> Vec<Result<DocWrite<'r>, MappingError>> {
        page.iter()
            .map(|s| {
                let derived = derive_storable(doc_type, s.json, s.kept, evidence)?;
                Ok(DocWrite { derived, raw: s.json, raw_text: s.raw_text })
            })
            .collect()
    };
    let first = derive(&[]);
    if doc_type != DocType::StockAdjustment {
        return Ok(first);
    }
    let mut serials: Vec<&str> = first
        .iter()
        .flatten()
        .flat_map(|d| d.derived.events.iter())
        .filter(|e| matches!(e.event_type, EventType::AdjustedIn | EventType::AdjustedOut))
        .map(|e| e.serial.as_str())
        .collect();
    serials.sort_unstable();
    serials.dedup();
    if serials.is_empty() {
        return Ok(first);
    }
    let evidence = store.count_evidence(company_id, &serials).await?;
    if evidence.is_empty() {
        return Ok(first);
    }
    Ok(derive(&evidence))
}

/// Derives stored documents again (`audit rebuild`, the re-check of adjustments), from the JSON
/// as sent and its storable `forms`: one that cannot be read is stored already, so it becomes a
/// warning saying a later version may read it.
async fn derive_stored<'r>(
    store: &Store,
    company_id: &str,
    doc_type: DocType,
    raws: &[&'r RawValue],
    forms: &'r [(Option<Box<RawValue>>, Vec<KeptEscape>)],
) -> Result<(Vec<DocWrite<'r>>, Vec<LooseWarning>), StoreError> {
    let page = Stored::page(raws, forms);
    let mut docs = Vec::with_capacity(raws.len());
    let mut loose_warnings = Vec::new();
    for (stored, result) in page.iter().zip(derive_docs(store, company_id, doc_type, &page).await?) {
        match result {
            Ok(doc) => docs.push(doc),
            Err(err) => loose_warnings.push(LooseWarning {
                doc_type,
                doc_id: id_of(stored.json, doc_type.id_field()),
                kind: "unreadable_document",
                detail: unreadable(stored.json.get(), &err),
            }),
        }
    }
    Ok((docs, loose_warnings))
}

/// Derives again the stored stock adjustments that the stored counts may have made (see
/// [`Store::adjustments_to_recheck`]); an unchanged one costs nothing but the derivation.
/// Returns the run's counters with what changed.
async fn recheck_adjustments(
    store: &Store,
    company_id: &str,
    run_id: i64,
    mut counters: RunCounters,
) -> Result<RunCounters, IngestError> {
    let ids = store.adjustments_to_recheck(company_id).await?;
    for chunk in ids.chunks(200) {
        let stored = store.stored_documents_by_id(company_id, DocType::StockAdjustment, chunk).await?;
        let raws: Vec<&RawValue> = stored.iter().map(|(_, raw)| &**raw).collect();
        let forms = storable_forms(&raws);
        let (docs, loose_warnings) = derive_stored(store, company_id, DocType::StockAdjustment, &raws, &forms).await?;
        let outcome = store
            .write_page(PageWrite {
                company_id,
                run_id,
                doc_type: DocType::StockAdjustment,
                observed_at: Utc::now(),
                docs,
                loose_warnings,
                quarantine: Vec::new(),
                kind: PageKind::Rederive,
                counters,
            })
            .await?;
        // Not a page of a walk.
        counters = RunCounters { pages: counters.pages, ..counters.plus(&outcome) };
    }
    Ok(counters)
}

/// Fills in the lines of each stock count's sheets from `count-sheets/{id}`, for a list that
/// refused `include=sheets.lines`. A cancelled count needs none (it records nothing); a sheet
/// that answers 404 stays without lines, with a warning.
async fn complete_sheets(client: &Client, items: Vec<Box<RawValue>>) -> Result<Vec<Box<RawValue>>, ClientError> {
    let query = [("include", "lines".to_string())];
    let mut out = Vec::with_capacity(items.len());
    for raw in items {
        let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(raw.get()) else {
            out.push(raw);
            continue;
        };
        if doc.get("isCancelled").and_then(serde_json::Value::as_bool) == Some(true) {
            out.push(raw);
            continue;
        }
        let Some(sheets) = doc.get_mut("sheets").and_then(serde_json::Value::as_array_mut) else {
            out.push(raw);
            continue;
        };
        let mut filled = false;
        for sheet in sheets.iter_mut().filter(|s| s.is_object() && !s["lines"].is_array()) {
            let Some(id) = sheet.get("countSheetId").and_then(serde_json::Value::as_str).map(str::to_string) else {
                continue;
            };
            let what = format!("GET count-sheets/{id} (the lines of a stock count's sheet)");
            match client.get_document("count-sheets", &id, &query, &what).await? {
                Some(full) => {
                    let lines = serde_json::from_str::<serde_json::Value>(full.get())
                        .ok()
                        .and_then(|v| v.get("lines").cloned())
                        .filter(serde_json::Value::is_array);
                    if let Some(lines) = lines {
                        sheet["lines"] = lines;
                        filled = true;
                    }
                }
                None => tracing::warn!("count sheet {id} answered 404: its stock count is stored without its lines"),
            }
        }
        match filled {
            true => out.push(RawValue::from_string(doc.to_string()).expect("serialised JSON is JSON")),
            false => out.push(raw),
        }
    }
    Ok(out)
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
                let raws: Vec<&RawValue> = batch.iter().map(|(_, raw)| &**raw).collect();
                // The JSON as sent is read back where it was kept, so escapes are reported again.
                let forms = storable_forms(&raws);
                let (docs, loose_warnings) = derive_stored(store, company_id, doc_type, &raws, &forms).await?;
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
        // Every count was derived again before the adjustments; this settles any adjustment
        // whose count changed since (and clears a recheck an ingest still owed).
        counters = recheck_adjustments(store, company_id, run_id, counters).await?;
        store.complete_walk(company_id, RECHECK_ADJUSTMENTS, run_id).await?;
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
pub(crate) async fn fetch_locations(
    store: &Store,
    client: &Client,
    company_id: &str,
    run_id: i64,
) -> Result<(), IngestError> {
    fetch_locations_with(&Adapt::new(store, client, company_id, run_id)).await
}

async fn fetch_locations_with(adapt: &Adapt<'_>) -> Result<(), IngestError> {
    let spec = ListSpec {
        path: "locations",
        id_field: "locationId",
        include: None,
        fallback_include: None,
        filters: Vec::new(),
    };
    let locations: Vec<Location> = fetch_all(adapt, spec, "the locations").await?;
    adapt.store.upsert_locations(adapt.company_id, &locations).await?;
    Ok(())
}

/// Walks a small reference list to its end, in the mode recorded for it.
async fn fetch_all<T: serde::de::DeserializeOwned>(
    adapt: &Adapt<'_>,
    spec: ListSpec,
    what: &'static str,
) -> Result<Vec<T>, IngestError> {
    let path = spec.path;
    let start = adapt.fresh_start(path, true, CountMeaning::Unknown).await?;
    let recorded = adapt.recorded_paging(path).await?;
    let mut walk = Walk::start(adapt.client, spec, start);
    let mut all = Vec::new();
    loop {
        let page = walk.next_page().await;
        for note in walk.take_notes() {
            adapt.note(path, None, &note).await?;
        }
        let page = page.map_err(|source| IngestError::Reference { what, source })?;
        if page.restarted {
            // The walk started the list over (another paging mode): what came before comes again.
            all.clear();
        }
        let client = adapt.client;
        all.extend(
            page.items.iter().filter_map(|raw| mapping::storable::parse_storable(&client.redact(raw.get())).ok()),
        );
        if page.last {
            if recorded.is_some_and(|r| r != walk.paging()) {
                let why = format!("a walk of {path} reached its end with {}", walk.paging().describe());
                adapt.record_paging(path, walk.paging(), why).await?;
            }
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
