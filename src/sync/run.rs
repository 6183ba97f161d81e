//! An ingest: walks each stream page by page and writes serial events.
//!
//! A run fetches the locations once, then walks the requested streams in turn. Each stream's
//! walk resumes where an earlier, unfinished walk stopped (the position is saved with every
//! page), unless the date bound changed. While one page is written the next one is already being
//! fetched, so the database and inFlow's latency overlap. A run ends `succeeded` when every walk
//! is complete, `stopped` when the request budget or a signal ends it early (its walks resume
//! next time), and `failed` on an error, which names the stream and page.
//!
//! How a stream is walked adapts to the server (see `adapt`). Deletions are concluded only at
//! the end of a walk that proved it saw everything.

use std::borrow::Cow;

use chrono::{NaiveDate, Utc};
use serde_json::value::RawValue;

use super::adapt::{
    Adapt, fetch_all, fetch_locations_with, fetch_parties, learnt, product_rows, resumed_start, walk_mark,
};
use super::derive::{Stored, derive_docs, storable_forms, unreadable};
use super::group;
use super::rebuild::recheck_adjustments;
use super::record::{RunRecord, Worked};
use super::sheets::complete_sheets;
use super::{
    IngestOptions, Progress, RunCounters, RunStatus, RunSummary, StopFlag, StopReason, StreamSummary, SyncError,
};
use crate::inflow::model::Product;
use crate::inflow::newest::{Newest, NewestFirst};
use crate::inflow::walk::{CountMeaning, ListSpec, Page, Paging, Pass, Position, Walk, WalkNote, WalkStart, id_of};
use crate::inflow::{Client, ClientError};
use crate::mapping::{Derived, DocType};
use crate::store::reference::Parties;
use crate::store::walks::{RECHECK_ADJUSTMENTS, WalkEnd, WalkMark};
use crate::store::write::{DocWrite, PageKind, PageOutcome, PageWrite, Quarantine};
use crate::store::{Store, capabilities};

/// `StreamSummary::paging` of a newest-first walk.
const NEWEST_FIRST: &str = "newest-first";

/// How a newest-first walk ended.
enum NewestEnd {
    /// At the window's start, or stopped (why).
    Done(Option<StopReason>),
    /// The shortcut cannot be used (the walk's answer, with why): the stream is walked in full.
    Abandoned(Newest),
}

/// Missing documents are checked one request each; beyond this many something else is wrong
/// (a server that ignores the keyset, say), and no deletion is concluded.
const MAX_CONFIRMATIONS: usize = 100;

/// A walk over every document of a stream (within `--since`), or over a recent window only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkKind {
    /// Every document of the stream (within `--since`).
    Complete,
    /// Only the documents dated within `--window`.
    Window,
}

impl WalkKind {
    /// The kind as `sync_state.walk_kind` stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            WalkKind::Complete => "complete",
            WalkKind::Window => "window",
        }
    }
}

/// Runs one ingest. The run is recorded in `ingest_runs` whatever its outcome.
pub async fn run(
    store: &Store,
    client: &Client,
    options: &IngestOptions,
    progress: &dyn Progress,
    stop: &StopFlag,
) -> Result<RunSummary, SyncError> {
    let record = RunRecord {
        store,
        company_id: &options.company_id,
        command: "ingest",
        arguments: &options.arguments,
        client: Some(client),
        stop: Some(stop),
    };
    record
        .run(|run_id| async move {
            let mut ctx = Run {
                store,
                client,
                options,
                progress,
                stop,
                run_id,
                counters: RunCounters::default(),
                meaning: CountMeaning::Unknown,
                abandoned: Vec::new(),
            };
            let result = ctx.all_streams().await;
            ctx.statistics_at_end().await;
            ctx.sync_client_counters();
            let counters = ctx.counters;
            let result = result.map(|(streams, stop)| {
                let status = if stop.is_some() { RunStatus::Stopped } else { RunStatus::Succeeded };
                (RunSummary { run_id, status, stop, streams, counters }, status)
            });
            Worked { result, counters }
        })
        .await
}

/// Why a request did not happen, when that ends the run cleanly: the budget is spent, or the
/// stop flag was set while waiting.
pub(super) fn clean_stop(e: &ClientError, stop: &StopFlag) -> Option<StopReason> {
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
    /// Streams whose newest-first walk was abandoned in this run.
    abandoned: Vec<DocType>,
}

/// How a stream is walked in this run, from its saved state and the options.
struct Plan {
    doc_type: DocType,
    kind: WalkKind,
    /// The walk's date bound: `--since`, or the window's start.
    bound: Option<NaiveDate>,
    /// The walk whose documents this one marks as seen: its own, or an unfinished one.
    walk_id: i64,
    /// A window walk made beside an unfinished complete walk, whose position stays.
    beside: bool,
    /// A window walk newest first, sorted by this date.
    newest: Option<&'static str>,
}

impl Plan {
    /// Where the walk stands: saved with each page.
    fn mark(&self, position: &Position, paging: Paging, pass: &Pass, restarted: bool) -> WalkMark<'static> {
        let mark = walk_mark(self.doc_type.stream(), self.walk_id, paging, position, pass);
        WalkMark { kind: self.kind.as_str(), from: self.bound, restarted, ..mark }
    }

    /// The list to walk, with inFlow's date filter where the stream has one.
    fn list_spec(&self) -> ListSpec {
        let doc_type = self.doc_type;
        let mut filters = Vec::new();
        if let (Some(from), Some(field)) = (self.bound, doc_type.date_filter()) {
            filters.push((date_filter_param(field), format!(r#"{{"fromDate":"{from}"}}"#)));
        }
        ListSpec {
            path: doc_type.stream(),
            id_field: doc_type.id_field(),
            include: Some(doc_type.includes()),
            fallback_include: doc_type.fallback_includes(),
            filters,
        }
    }
}

impl Run<'_> {
    /// An optional stream whose list the account does not have: a recorded warning, not a failure.
    async fn skip_unavailable(&mut self, doc_type: DocType, path: &str) -> Result<(), SyncError> {
        let text = format!(
            "{path}: inFlow answers 404 for this list while the company answers, so this account does not seem \
             to offer it; the stream is skipped (it is tried again on every run). `audit doctor` reports it; \
             `--types` without {path} avoids the request"
        );
        tracing::warn!("{text}");
        let company = &self.options.company_id;
        self.store.record_run_warning(self.run_id, company, Some(doc_type), "stream_unavailable", &text).await?;
        self.counters.work.warnings += 1;
        Ok(())
    }

    /// A `--window` run of a stream no complete walk has finished: the trail has no history yet.
    async fn warn_window_without_history(&mut self, doc_type: DocType) -> Result<(), SyncError> {
        let stream = doc_type.stream();
        let text = format!(
            "{stream}: no complete walk of this stream has finished yet, so this --window run reads only the \
             documents dated in the window and the trail has no older history; run `audit ingest` without \
             --window (with --since for a bound) once"
        );
        tracing::warn!("{text}");
        let company = &self.options.company_id;
        self.store.record_run_warning(self.run_id, company, Some(doc_type), "window_without_history", &text).await?;
        self.counters.work.warnings += 1;
        Ok(())
    }

    async fn all_streams(&mut self) -> Result<(Vec<StreamSummary>, Option<StopReason>), SyncError> {
        self.meaning = learnt(self.store, self.client, &self.options.company_id).await?;
        let mut summaries = Vec::new();
        match self.fetch_locations().await {
            Ok(()) => {}
            Err(SyncError::Reference { source, .. }) if clean_stop(&source, self.stop).is_some() => {
                return Ok((summaries, clean_stop(&source, self.stop)));
            }
            Err(e) => return Err(e),
        }
        for doc_type in self.options.types.clone() {
            let (summary, stop) = match self.stream(doc_type).await {
                Ok(done) => done,
                Err(SyncError::Fetch { source: ClientError::Unavailable { path, .. }, .. })
                    if self.options.skip_unavailable && doc_type.optional() =>
                {
                    self.skip_unavailable(doc_type, &path).await?;
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
        let stop = self.owed_references().await?;
        Ok((summaries, stop))
    }

    /// Products, customers and vendors are fetched at the end, when documents named ones we do
    /// not know (this run or an earlier one that stopped before it could), and by a complete
    /// run once their last walk is a day old, so that a renamed one shows its new name: other
    /// runs cost no request for them.
    async fn owed_references(&mut self) -> Result<Option<StopReason>, SyncError> {
        for list in [None, Some(Parties::Customers), Some(Parties::Vendors)] {
            let stream = list.map_or("products", Parties::table);
            let state = self.store.sync_state(&self.options.company_id, stream).await?;
            let stale = self.options.window.is_none()
                && state.last_complete_at.is_some_and(|at| Utc::now() - at > REFRESH_REFERENCES_AFTER);
            if state.walk_id.is_none() && !stale {
                continue;
            }
            let result = match list {
                None => self.fetch_products().await,
                Some(which) => {
                    let adapt = Adapt::new(self.store, self.client, &self.options.company_id, self.run_id);
                    let result = fetch_parties(&adapt, which).await;
                    self.counters.work.warnings += adapt.warnings.get();
                    result
                }
            };
            match result {
                Ok(()) => {}
                Err(SyncError::Reference { source, .. }) if clean_stop(&source, self.stop).is_some() => {
                    return Ok(clean_stop(&source, self.stop));
                }
                // An account without the list: names stay GUIDs, and the run goes on.
                Err(SyncError::Reference { source: ClientError::Unavailable { path, .. }, .. }) if list.is_some() => {
                    self.reference_unavailable(&path).await?;
                }
                Err(e) => return Err(e),
            }
            self.store.complete_walk(&self.options.company_id, stream, self.run_id).await?;
        }
        Ok(None)
    }

    /// A reference list (customers, vendors) the account does not offer: a recorded warning.
    async fn reference_unavailable(&mut self, path: &str) -> Result<(), SyncError> {
        let text = format!(
            "{path}: inFlow answers 404 for this list while the company answers, so output shows their ids \
             instead of names; it is tried again when an order names one not stored"
        );
        tracing::warn!("{text}");
        let company = &self.options.company_id;
        self.store.record_run_warning(self.run_id, company, None, "reference_unavailable", &text).await?;
        self.counters.work.warnings += 1;
        Ok(())
    }

    fn sync_client_counters(&mut self) {
        self.counters = self.counters_now();
    }

    /// Walks one stream from where it stands to its end, or until the run stops.
    async fn stream(&mut self, doc_type: DocType) -> Result<(StreamSummary, Option<StopReason>), SyncError> {
        let (mut plan, mut start, mut summary) = self.plan(doc_type).await?;
        if let Some(field) = plan.newest {
            self.progress.stream_started(doc_type.stream(), None);
            match self.walk_newest(&plan, field, &mut summary).await? {
                NewestEnd::Done(stop) => return Ok((summary, stop)),
                NewestEnd::Abandoned(answer) => {
                    self.abandon_newest(doc_type, &answer).await?;
                    // The pages already written stay: they are the same documents.
                    let written = summary.work;
                    (plan, start, summary) = self.plan(doc_type).await?;
                    summary.work += written;
                    summary.work.warnings += 1;
                }
            }
        }
        let adapt = Adapt::new(self.store, self.client, &self.options.company_id, self.run_id);
        let mut recorded = adapt.recorded_paging(doc_type.stream()).await?;
        self.progress.stream_started(doc_type.stream(), summary.resumed_from.as_deref());
        let mut walk = Walk::start(self.client, plan.list_spec(), start);
        if let Some(reason) = self.stop.reason() {
            return Ok((summary, Some(reason)));
        }
        let stop = self.walk_pages(&plan, &mut walk, &mut recorded, &mut summary).await?;
        Ok((summary, stop))
    }

    /// Decides how the stream is walked: resumed, started over, or a window beside an
    /// unfinished complete walk; a new walk is saved at its first page.
    async fn plan(&mut self, doc_type: DocType) -> Result<(Plan, WalkStart, StreamSummary), SyncError> {
        let company = self.options.company_id.as_str();
        let stream = doc_type.stream();
        let state = self.store.sync_state(company, stream).await?;
        let since = self.options.since.or(state.since);
        let newest = self.newest_first(doc_type, state.last_complete_at.is_some()).await?;
        // A window re-reads only recent orders (inFlow filters them by date), and the streams it
        // cannot filter newest first where the server sorts them so; others are walked completely.
        let window_from = self
            .options
            .window
            .filter(|_| doc_type.date_filter().is_some() || newest.is_some())
            .map(|w| (Utc::now() - w).date_naive());
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
            self.warn_window_without_history(doc_type).await?;
        }
        let adapt = Adapt::new(self.store, self.client, company, self.run_id);
        let (walk_id, start) = match (resumable, state.walk_id, beside) {
            (_, _, Some(complete_walk)) => (complete_walk, adapt.fresh_start(stream, false, self.meaning).await?),
            (true, Some(id), None) => (id, resumed_start(&state, self.meaning)),
            _ => (self.run_id, adapt.fresh_start(stream, kind == WalkKind::Complete, self.meaning).await?),
        };
        let plan = Plan { doc_type, kind, bound, walk_id, beside: beside.is_some(), newest };
        let mut summary = StreamSummary { stream, kind: kind.as_str(), ..StreamSummary::default() };
        if resumable && !start.position.is_start() {
            summary.resumed_from = Some(start.position.to_string());
        }
        if beside.is_none() && (!resumable || self.options.since.is_some_and(|s| state.since != Some(s))) {
            let mark = plan.mark(&start.position, start.paging, &start.pass, false);
            self.store.start_walk(company, since, &mark).await?;
        }
        Ok((plan, start, summary))
    }

    /// The date a `--window` walk of this stream sorts on, newest first: for a stream inFlow
    /// cannot filter by date, once a complete walk has finished (the window is a shortcut over
    /// a trail that has its history), unless the server was found not to honour the sort.
    async fn newest_first(&self, doc_type: DocType, has_history: bool) -> Result<Option<&'static str>, SyncError> {
        let (None, Some(field), Some(_), true) =
            (doc_type.date_filter(), doc_type.sort_date(), self.options.window, has_history)
        else {
            return Ok(None);
        };
        if self.abandoned.contains(&doc_type) {
            return Ok(None);
        }
        let adapt = Adapt::new(self.store, self.client, &self.options.company_id, self.run_id);
        Ok(adapt.date_sort_usable(doc_type.stream()).await?.then_some(field))
    }

    /// Walks a stream newest first down to the window's start, checking every page's order.
    /// Keeps no position: a walk stopped midway starts again at the newest page next time.
    async fn walk_newest(
        &mut self,
        plan: &Plan,
        field: &'static str,
        summary: &mut StreamSummary,
    ) -> Result<NewestEnd, SyncError> {
        let (doc_type, stream) = (plan.doc_type, plan.doc_type.stream());
        let from = plan.bound.expect("a window walk has its start as bound");
        let stored = self.store.newest_stored_date(&self.options.company_id, doc_type).await?;
        let mut walk = NewestFirst::new(self.client, plan.list_spec(), field, from, self.meaning).newest_stored(stored);
        loop {
            if let Some(reason) = self.stop.reason() {
                return Ok(NewestEnd::Done(Some(reason)));
            }
            let (items, last) = match walk.next_page().await {
                Ok(Newest::Page { items, last }) => (items, last),
                Ok(answer @ (Newest::OutOfOrder(_) | Newest::Refused(_) | Newest::Unsettled(_))) => {
                    return Ok(NewestEnd::Abandoned(answer));
                }
                Err(source) if clean_stop(&source, self.stop).is_some() => {
                    return Ok(NewestEnd::Done(clean_stop(&source, self.stop)));
                }
                Err(source) => {
                    let position = format!("newest-first walk by {field}");
                    return Err(SyncError::Fetch { stream, position, source });
                }
            };
            let mark = plan.mark(&Position::START, Paging::PREFERRED, &Pass::default(), false);
            let kind = if plan.beside { PageKind::Beside(mark) } else { PageKind::Walk(mark) };
            let written = self.write(doc_type, plan.bound, &items, kind).await?;
            self.add(summary, &written);
            self.progress.page_written(stream, summary, self.client.stats().requests(), self.client.budget_left());
            crate::testing::crash_point("after-page");
            if last {
                self.finish_newest(plan, field, summary).await?;
                return Ok(NewestEnd::Done(None));
            }
        }
    }

    /// Ends a newest-first walk that reached the window's start, and records that the server
    /// honours the sort (once: an answer already recorded is not written again each run).
    async fn finish_newest(&mut self, plan: &Plan, field: &str, summary: &mut StreamSummary) -> Result<(), SyncError> {
        let stream = plan.doc_type.stream();
        let end = WalkEnd {
            company_id: &self.options.company_id,
            run_id: self.run_id,
            doc_type: plan.doc_type,
            complete: false,
            proven: true,
            beside: plan.beside,
            deleted: &[],
            counters: self.counters_now(),
        };
        let retracted = self.store.finish_walk(end).await?;
        self.counters = self.counters_now();
        self.counters.work += retracted;
        summary.work += retracted;
        summary.complete = true;
        summary.paging = NEWEST_FIRST;
        let key = capabilities::date_sort_key(stream);
        let recorded = self.store.capability(&self.options.company_id, &key).await?;
        if recorded.is_none_or(|c| c.value != capabilities::DATE_SORT_HONOURED) {
            let why = format!("a newest-first walk of {stream} by {field} found every page in order");
            let adapt = Adapt::new(self.store, self.client, &self.options.company_id, self.run_id);
            adapt.record_date_sort(stream, capabilities::DATE_SORT_HONOURED, why).await?;
        }
        Ok(())
    }

    /// A newest-first walk cannot go on: a recorded warning, and the stream walked in full
    /// instead. A page out of order records the sort as ignored, a 400 as refused (both tried
    /// again a day later); a list that changed during the walk or a persisting 5xx is this
    /// run's alone, and records nothing about the sort.
    async fn abandon_newest(&mut self, doc_type: DocType, answer: &Newest) -> Result<(), SyncError> {
        let stream = doc_type.stream();
        let retry = super::RETRY_PREFERRED_AFTER.num_hours();
        let (text, recorded, kind) = match answer {
            Newest::OutOfOrder(why) => (
                format!(
                    "{stream}: {why}; the server does not honour a descending sort on the date, so this --window run walks the stream in full instead. Recorded: --window runs try the newest-first walk again after {retry} h"
                ),
                Some((capabilities::DATE_SORT_IGNORED, why)),
                "date_sort_not_honoured",
            ),
            Newest::Refused(why) => (
                format!(
                    "{stream}: {why}; the server refuses a descending sort on the date, so this --window run walks the stream in full instead. Recorded: --window runs try the newest-first walk again after {retry} h"
                ),
                Some((capabilities::DATE_SORT_REFUSED, why)),
                "date_sort_refused",
            ),
            Newest::Unsettled(why) => (
                format!(
                    "{stream}: {why}; this --window run walks the stream in full instead, so that nothing is missed. Nothing is recorded: the next --window run walks newest first again"
                ),
                None,
                "newest_first_interrupted",
            ),
            Newest::Page { .. } => unreachable!("a page is not an abandonment"),
        };
        tracing::warn!("{text}");
        let company = &self.options.company_id;
        if let Some((value, why)) = recorded {
            let adapt = Adapt::new(self.store, self.client, company, self.run_id);
            adapt.record_date_sort(stream, value, why.clone()).await?;
        }
        // Not tried again in this run, whatever is recorded.
        self.abandoned.push(doc_type);
        self.store.record_run_warning(self.run_id, company, Some(doc_type), kind, &text).await?;
        self.counters.work.warnings += 1;
        Ok(())
    }

    /// Writes page after page, the pages fetched ahead written in groups (see `group`); returns
    /// why the run stops, if it does before the walk's end.
    async fn walk_pages(
        &mut self,
        plan: &Plan,
        walk: &mut Walk<'_>,
        recorded: &mut Option<Paging>,
        summary: &mut StreamSummary,
    ) -> Result<Option<StopReason>, SyncError> {
        let (sender, groups) = group::channel();
        let fetching = group::fetch_ahead(walk, self.client, self.stop, sender);
        let writing = self.write_ahead(plan, groups, recorded, summary);
        match group::alongside(writing, fetching).await? {
            None => self.finish_stream(plan, walk, *recorded, summary).await,
            stop => Ok(stop),
        }
    }

    /// The writing side of a walk: each group's notes recorded, then its pages written in one
    /// transaction. `None` once the last page is written, else why the walk stops.
    async fn write_ahead(
        &mut self,
        plan: &Plan,
        mut groups: group::Groups,
        recorded: &mut Option<Paging>,
        summary: &mut StreamSummary,
    ) -> Result<Option<StopReason>, SyncError> {
        let (doc_type, stream) = (plan.doc_type, plan.doc_type.stream());
        loop {
            // The fetching side ended without a last page or a failure: it saw the stop flag.
            let Some(mut fetched) = groups.next().await else {
                return Ok(Some(self.stop.reason().unwrap_or(StopReason::Signal)));
            };
            // A lock taken over means this process stops writing (see `IngestLock::on_lost`):
            // the pages fetched ahead are left to the new holder, which fetches them again from
            // the position saved last. (After a signal they are written: this process still
            // holds the lock.)
            if self.stop.reason() == Some(StopReason::LockLost) {
                return Ok(Some(StopReason::LockLost));
            }
            for f in &mut fetched {
                self.report(doc_type, std::mem::take(&mut f.notes), recorded, summary).await?;
            }
            let failure = fetched.pop_if(|f| f.page.is_err()).and_then(|f| f.page.err());
            let pages: Vec<Page> = fetched.into_iter().filter_map(|f| f.page.ok()).collect();
            if !pages.is_empty() {
                let last = pages.last().is_some_and(|p| p.last);
                self.write_walk_pages(plan, &pages, summary).await?;
                groups.committed(pages.len());
                crate::testing::crash_point("after-page");
                if last {
                    return Ok(None);
                }
            }
            if let Some((position, source)) = failure {
                return match clean_stop(&source, self.stop) {
                    Some(reason) => Ok(Some(reason)),
                    None => Err(SyncError::Fetch { stream, position, source }),
                };
            }
        }
    }

    /// Writes consecutive pages of a walk in one transaction, each with its next position.
    async fn write_walk_pages(
        &mut self,
        plan: &Plan,
        pages: &[Page],
        summary: &mut StreamSummary,
    ) -> Result<(), SyncError> {
        let batches = pages
            .iter()
            .map(|page| {
                let mark = plan.mark(&page.next, page.paging, &page.pass, page.restarted);
                let kind = if plan.beside { PageKind::Beside(mark) } else { PageKind::Walk(mark) };
                (page.items.as_slice(), kind)
            })
            .collect();
        let before = self.counters.work.pages;
        for outcome in self.write_many(plan.doc_type, plan.bound, batches).await? {
            self.add(summary, &outcome);
        }
        self.keep_statistics_fresh(before).await;
        let stream = plan.doc_type.stream();
        self.progress.page_written(stream, summary, self.client.stats().requests(), self.client.budget_left());
        Ok(())
    }

    /// Ends a walk that reached its last page: the documents it did not return are checked,
    /// those gone are marked deleted, and the paging mode it ended with is recorded.
    async fn finish_stream(
        &mut self,
        plan: &Plan,
        walk: &Walk<'_>,
        recorded: Option<Paging>,
        summary: &mut StreamSummary,
    ) -> Result<Option<StopReason>, SyncError> {
        let stream = plan.doc_type.stream();
        // Deletions are concluded only from a walk that proved it saw every document.
        let unproven = walk.unproven().map(str::to_string);
        let deleted = match (plan.kind, &unproven) {
            (WalkKind::Complete, None) => {
                let resumed_from = walk.resumed_from().map(str::to_string);
                let fell_back = walk.include_fell_back();
                match self.confirm_missing(plan, resumed_from, fell_back, summary).await {
                    Ok(deleted) => deleted,
                    Err(SyncError::Fetch { source, .. }) if clean_stop(&source, self.stop).is_some() => {
                        return Ok(clean_stop(&source, self.stop));
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
            company_id: &self.options.company_id,
            run_id: self.run_id,
            doc_type: plan.doc_type,
            complete: plan.kind == WalkKind::Complete,
            proven: unproven.is_none(),
            beside: plan.beside,
            deleted: &deleted,
            counters: self.counters_now(),
        };
        let retracted = self.store.finish_walk(end).await?;
        self.counters = self.counters_now();
        self.counters.work += retracted;
        summary.work += retracted;
        summary.deleted = deleted.len() as i64;
        summary.complete = true;
        summary.unproven = unproven;
        summary.paging = walk.paging().as_str();
        if recorded != Some(walk.paging()) {
            let why = format!("a walk of {stream} reached its end with {}", walk.paging().describe());
            let adapt = Adapt::new(self.store, self.client, &self.options.company_id, self.run_id);
            adapt.record_paging(stream, walk.paging(), why).await?;
        }
        Ok(None)
    }

    /// Reports and records what the walk had to adapt to while fetching a page.
    async fn report(
        &mut self,
        doc_type: DocType,
        notes: Vec<WalkNote>,
        recorded: &mut Option<Paging>,
        summary: &mut StreamSummary,
    ) -> Result<(), SyncError> {
        let adapt = Adapt::new(self.store, self.client, &self.options.company_id, self.run_id);
        for note in notes {
            if let WalkNote::CountMeaning(meaning) = note {
                self.meaning = meaning;
            }
            if let WalkNote::FellBack { to, .. } = &note {
                *recorded = Some(*to);
            }
            if adapt.note(doc_type.stream(), Some(doc_type), &note).await? {
                self.counters.work.warnings += 1;
                summary.work.warnings += 1;
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
        plan: &Plan,
        resumed_from: Option<String>,
        fell_back: bool,
        summary: &mut StreamSummary,
    ) -> Result<Vec<String>, SyncError> {
        let (doc_type, walk_id, bound) = (plan.doc_type, plan.walk_id, plan.bound);
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
            match fetched.map_err(|source| SyncError::Fetch {
                stream,
                position: format!("check of document {id}"),
                source,
            })? {
                Some(raw) => found.push(raw),
                None => deleted.push(id),
            }
        }
        if fell_back {
            found = complete_sheets(self.client, found).await.map_err(|source| SyncError::Fetch {
                stream,
                position: "the sheets of documents the walk did not return".into(),
                source,
            })?;
        }
        if !found.is_empty() {
            let outcome = self.write(doc_type, None, &found, PageKind::Refetch { walk_id: Some(walk_id) }).await?;
            self.add(summary, &outcome);
        }
        Ok(deleted)
    }

    /// Refreshes the database's statistics once the run's pages pass 2, 8, 32, 128, ...: a
    /// few times while a backfill grows the tables by orders of magnitude, then rarely. A
    /// failure (no right to ANALYZE, say) only costs speed.
    async fn keep_statistics_fresh(&self, pages_before: i64) {
        if refresh_statistics_between(pages_before, self.counters.work.pages)
            && let Err(e) = self.store.refresh_statistics().await
        {
            tracing::debug!("could not refresh statistics: {}", crate::error_text(&e));
        }
    }

    /// Leaves the planner's statistics fresh for what follows an ingest (the `sql/` library,
    /// the views, `audit anomalies`): refreshed at the end of a run that changed a large share
    /// of the trail since they last were, unless a signal is ending it. A failure only costs
    /// speed.
    async fn statistics_at_end(&self) {
        if self.stop.reason().is_some() {
            return;
        }
        let work = self.counters.work;
        let changed = work.events_inserted + work.events_retracted + work.documents_changed;
        let refreshed = match self.store.statistics_stale(changed).await {
            Ok(true) => self.store.refresh_statistics().await,
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = refreshed {
            tracing::debug!("could not refresh statistics: {}", crate::error_text(&e));
        }
    }

    /// Adds a written page (or documents fetched by id) to the run's counters and the stream's.
    fn add(&mut self, summary: &mut StreamSummary, outcome: &PageOutcome) {
        self.counters = self.counters_now();
        self.counters.work += outcome.work;
        summary.work += outcome.work;
    }

    /// Derives and writes one page (or documents fetched by id).
    async fn write(
        &self,
        doc_type: DocType,
        bound: Option<NaiveDate>,
        items: &[Box<RawValue>],
        kind: PageKind<'_>,
    ) -> Result<PageOutcome, SyncError> {
        let mut outcomes = self.write_many(doc_type, bound, vec![(items, kind)]).await?;
        Ok(outcomes.pop().expect("one outcome per page"))
    }

    /// Derives pages and writes them in one transaction, each with its walk's next position.
    async fn write_many(
        &self,
        doc_type: DocType,
        bound: Option<NaiveDate>,
        pages: Vec<(&[Box<RawValue>], PageKind<'_>)>,
    ) -> Result<Vec<PageOutcome>, SyncError> {
        let floor = bound.map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
        // A server that echoes the API key into a document does not get it stored.
        let redacted: Vec<Vec<Option<Box<RawValue>>>> = pages
            .iter()
            .map(|(items, _)| {
                items
                    .iter()
                    .map(|raw| match self.client.redact(raw.get()) {
                        Cow::Borrowed(_) => None,
                        Cow::Owned(text) => RawValue::from_string(text).ok(),
                    })
                    .collect()
            })
            .collect();
        let items: Vec<Vec<&RawValue>> = pages
            .iter()
            .zip(&redacted)
            .map(|((items, _), redacted)| {
                items.iter().zip(redacted).map(|(raw, r)| r.as_deref().unwrap_or(raw)).collect()
            })
            .collect();
        let forms: Vec<_> = items.iter().map(|items| storable_forms(items)).collect();
        let mut writes = Vec::with_capacity(pages.len());
        for ((items, forms), (_, kind)) in items.iter().zip(&forms).zip(pages) {
            writes.push(self.page_write(doc_type, floor, &Stored::page(items, forms), kind).await?);
        }
        Ok(self.store.write_pages(writes).await?)
    }

    /// Derives one page's documents into what is written: those dated before the walk's bound
    /// are left out, a repeated one is kept once, an unreadable one is quarantined.
    async fn page_write<'r>(
        &'r self,
        doc_type: DocType,
        floor: Option<chrono::DateTime<Utc>>,
        page: &[Stored<'r>],
        kind: PageKind<'r>,
    ) -> Result<PageWrite<'r>, SyncError> {
        let derived = derive_docs(self.store, &self.options.company_id, doc_type, page).await?;
        let mut docs = Vec::with_capacity(page.len());
        let mut quarantine = Vec::new();
        let mut ids = std::collections::HashSet::with_capacity(page.len());
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
        Ok(PageWrite {
            company_id: &self.options.company_id,
            run_id: self.run_id,
            doc_type,
            observed_at: Utc::now(),
            docs,
            loose_warnings: Vec::new(),
            quarantine,
            kind,
            counters: self.counters_now(),
        })
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

    async fn fetch_locations(&mut self) -> Result<(), SyncError> {
        let adapt = Adapt::new(self.store, self.client, &self.options.company_id, self.run_id);
        let result = fetch_locations_with(&adapt).await;
        self.counters.work.warnings += adapt.warnings.get();
        result
    }

    async fn fetch_products(&mut self) -> Result<(), SyncError> {
        let spec = ListSpec {
            path: "products",
            id_field: "productId",
            include: None,
            fallback_include: None,
            filters: Vec::new(),
        };
        let adapt = Adapt::new(self.store, self.client, &self.options.company_id, self.run_id);
        let products = fetch_all::<Product>(&adapt, spec, "the products").await;
        self.counters.work.warnings += adapt.warnings.get();
        self.store.upsert_products(&self.options.company_id, &product_rows(&products?)).await?;
        Ok(())
    }
}

/// How old the last walk of products, customers or vendors may be before a complete run walks
/// the list again (names change; a window run leaves them).
const REFRESH_REFERENCES_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// Whether the run's page count passed one of 2, 8, 32, 128, ... from `before` to `after`
/// (pages are written in groups): each time the tables may have grown fourfold.
fn refresh_statistics_between(before: i64, after: i64) -> bool {
    std::iter::successors(Some(2_i64), |p| p.checked_mul(4)).take_while(|p| *p <= after).any(|p| p > before)
}

/// `filter[orderDate]`.
fn date_filter_param(field: &str) -> &'static str {
    match field {
        "orderDate" => "filter[orderDate]",
        other => unreachable!("no date filter named {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_are_refreshed_as_the_tables_grow_fourfold() {
        let refreshed: Vec<i64> = (0..600).filter(|p| refresh_statistics_between(p - 1, *p)).collect();
        assert_eq!(refreshed, [2, 8, 32, 128, 512]);
        // A group that jumps over a threshold still refreshes, once.
        assert!(refresh_statistics_between(30, 40));
        assert!(!refresh_statistics_between(33, 127));
        assert!(refresh_statistics_between(0, 600));
    }
}
