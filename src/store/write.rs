//! The write side of an ingest: runs, walk positions, and pages written atomically.
//!
//! [`Store::write_page`] is the heart: one transaction holds a page's documents, the events they
//! add or retract, its warnings, the run's counters and the walk's next position. A process
//! killed at any moment therefore resumes from the last committed page and re-derives exactly
//! what was lost, and nothing twice.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::value::RawValue;
use sqlx::QueryBuilder;
use sqlx::types::Json;

use super::{Context, Store, StoreError, WritePool, on_pool};
use crate::mapping::stock_count::CountEvidence;
use crate::mapping::{Derived, DocType, EventDraft, Warning};

/// Marks work owed to a later step of the run (or the next run), inside the page's
/// transaction: a walk of `$stream` is due.
macro_rules! owe_walk {
    ($tx:expr, $company_id:expr, $stream:expr, $run_id:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO sync_state (company_id, stream, walk_id, walk_kind, walk_paging, walk_position, walk_started_at) \
             VALUES ($1, $2, $3, 'complete', 'keyset', '', $4) \
             ON CONFLICT (company_id, stream) DO UPDATE SET walk_id = COALESCE(sync_state.walk_id, excluded.walk_id), \
             walk_kind = excluded.walk_kind, walk_started_at = COALESCE(sync_state.walk_started_at, excluded.walk_started_at)",
        )
        .bind($company_id)
        .bind($stream)
        .bind($run_id)
        .bind($now)
        .execute(&mut *$tx)
    };
}

/// Rows per multi-row INSERT: 19 parameters a row stays far below both engines' limits
/// (32766 on SQLite, 65535 on Postgres) while amortising the statement.
const INSERT_CHUNK: usize = 1000;

/// The counters of an `ingest_runs` row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunCounters {
    pub requests: i64,
    pub pages: i64,
    pub documents_seen: i64,
    pub documents_changed: i64,
    pub events_inserted: i64,
    pub events_retracted: i64,
    pub warnings: i64,
    pub rate_limited: i64,
    pub retries: i64,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Succeeded,
    /// Stopped cleanly before the end (request budget, signal); the position is saved.
    Stopped,
    Failed,
    /// Found still `running` by a later run: its process died.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Stopped => "stopped",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

/// A stream's row of `sync_state`.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct SyncState {
    pub since: Option<NaiveDate>,
    pub walk_id: Option<i64>,
    pub walk_kind: Option<String>,
    pub walk_from: Option<NaiveDate>,
    pub walk_paging: Option<String>,
    pub walk_position: Option<String>,
    pub walk_started_at: Option<DateTime<Utc>>,
    pub walk_seen: Option<i64>,
    pub walk_list_count: Option<i64>,
    pub walk_unproven: Option<String>,
    pub last_complete_at: Option<DateTime<Utc>>,
    pub last_window_at: Option<DateTime<Utc>>,
}

/// Where a walk stands after a page: saved with the page.
#[derive(Debug, Clone)]
pub struct WalkMark<'a> {
    pub stream: &'static str,
    pub walk_id: i64,
    pub kind: &'a str,
    pub from: Option<NaiveDate>,
    pub paging: &'static str,
    pub position: String,
    /// What the walk's pass has seen (see `inflow::walk::Pass`): documents returned, the
    /// `X-listCount` it started with (-1 once it moved), why it cannot prove completeness.
    pub seen: i64,
    pub list_count: Option<i64>,
    pub unproven: Option<String>,
    /// The first page of a pass that started the stream over (a lost position, a fallback):
    /// what the walk saw before no longer counts as seen, so that a document deleted since is
    /// found missing at the end.
    pub restarted: bool,
}

/// How a walk ended, for [`Store::finish_walk`].
pub struct WalkEnd<'a> {
    pub company_id: &'a str,
    pub run_id: i64,
    pub doc_type: DocType,
    /// A complete walk (else a window one, which concludes nothing about missing documents).
    pub complete: bool,
    /// The walk proved it returned every document; an unproven complete walk ends without
    /// being recorded as complete.
    pub proven: bool,
    /// A window walk made beside an unfinished complete walk, whose saved position stays.
    pub beside: bool,
    /// Documents confirmed gone from inFlow.
    pub deleted: &'a [String],
    /// The run's counters before this step.
    pub counters: RunCounters,
}

/// One document of a page: what the mapping made of it, and its raw JSON.
pub struct DocWrite<'a> {
    pub derived: Derived,
    /// The JSON stored in `documents.raw` and derived from: storable by both engines.
    pub raw: &'a RawValue,
    /// The JSON exactly as sent, when `raw` had to differ from it (`documents.raw_text`).
    pub raw_text: Option<&'a str>,
}

/// A document that cannot be stored as events: kept in `quarantined_documents` with its JSON as
/// sent, and named in a warning.
pub struct Quarantine<'a> {
    pub doc_id: Option<String>,
    /// The warning's kind: `unreadable_document`, `quarantined_document`.
    pub kind: &'static str,
    pub reason: String,
    pub raw: &'a str,
}

/// A warning not tied to a derived document (one that could not be read at all).
pub struct LooseWarning {
    pub doc_type: DocType,
    pub doc_id: Option<String>,
    pub kind: &'static str,
    pub detail: String,
}

pub struct PageWrite<'a> {
    pub company_id: &'a str,
    pub run_id: i64,
    pub doc_type: DocType,
    pub observed_at: DateTime<Utc>,
    pub docs: Vec<DocWrite<'a>>,
    pub loose_warnings: Vec<LooseWarning>,
    /// Documents of the page that cannot be stored (unreadable ones).
    pub quarantine: Vec<Quarantine<'a>>,
    pub kind: PageKind<'a>,
    /// The run's counters before this page; the page's own effects are added to them.
    pub counters: RunCounters,
}

/// Where a page's documents come from, which decides what is written besides events.
#[derive(Debug, Clone)]
pub enum PageKind<'a> {
    /// A page of a walk: the walk's next position is saved with it.
    Walk(WalkMark<'a>),
    /// A page of a window walk made while a complete walk is unfinished: its documents count as
    /// seen by that walk (`mark.walk_id`), and no position is saved, so the complete walk resumes
    /// where it stopped. An interrupted window starts again; it is a few pages.
    Beside(WalkMark<'a>),
    /// Documents fetched one by one (a walk missed them); they count as seen by that walk.
    Refetch { walk_id: Option<i64> },
    /// Stored documents derived again by `audit rebuild`: every document is compared with its
    /// events, nothing else is written but changes where the events differ.
    Rebuild,
    /// Stored documents derived again during an ingest because other documents they depend on
    /// changed (stock adjustments, when the counts that made them arrive or go): as `Rebuild`.
    Rederive,
}

impl PageKind<'_> {
    fn walk_id(&self) -> Option<i64> {
        match self {
            PageKind::Walk(mark) | PageKind::Beside(mark) => Some(mark.walk_id),
            PageKind::Refetch { walk_id } => *walk_id,
            PageKind::Rebuild | PageKind::Rederive => None,
        }
    }

    fn describe(&self, doc_type: DocType) -> String {
        match self {
            PageKind::Walk(mark) | PageKind::Beside(mark) => {
                format!("the {} page {}", mark.stream, describe_page_ending(&mark.position))
            }
            PageKind::Refetch { .. } => format!("{} documents fetched by id", doc_type.stream()),
            PageKind::Rebuild => format!("rebuilt {} documents", doc_type.stream()),
            PageKind::Rederive => format!("{} documents derived again", doc_type.stream()),
        }
    }
}

/// What a page changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageOutcome {
    pub documents_seen: i64,
    pub documents_changed: i64,
    pub events_inserted: i64,
    pub events_retracted: i64,
    pub warnings: i64,
    /// Documents set aside in `quarantined_documents` (counted in `documents_seen` too).
    pub quarantined: i64,
    /// Product ids the events use that the `products` table does not know yet.
    pub unknown_products: Vec<String>,
    /// A stock count's difference came or went: the adjustments it made are to be derived again.
    pub counts_moved: bool,
}

impl PageOutcome {
    /// Adds the outcome of another group of the same page.
    fn add(&mut self, other: PageOutcome) {
        self.documents_seen += other.documents_seen;
        self.documents_changed += other.documents_changed;
        self.events_inserted += other.events_inserted;
        self.events_retracted += other.events_retracted;
        self.warnings += other.warnings;
        self.quarantined += other.quarantined;
        self.counts_moved |= other.counts_moved;
        self.unknown_products.extend(other.unknown_products);
        self.unknown_products.sort();
        self.unknown_products.dedup();
    }
}

/// A stored document's version, to tell whether a fetched one changed.
#[derive(Debug, Clone, sqlx::FromRow)]
struct KnownDoc {
    doc_id: String,
    row_version: Option<String>,
    lines_version: Option<String>,
    is_cancelled: bool,
    deleted: bool,
}

/// A current event of a changed document, compared with what the new version derives.
#[derive(Debug, Clone, sqlx::FromRow)]
struct CurrentEvent {
    event_id: i64,
    doc_id: String,
    line_collection: String,
    line_id: String,
    serial: String,
    event_type: String,
    product_id: Option<String>,
    occurred_at: Option<DateTime<Utc>>,
    location_id: Option<String>,
    sublocation: Option<String>,
    quantity_delta: i16,
}

impl CurrentEvent {
    fn same_as(&self, e: &EventDraft) -> bool {
        self.product_id == e.product_id
            && self.occurred_at == e.occurred_at
            && self.location_id == e.location_id
            && self.sublocation == e.sublocation
            && self.quantity_delta == e.quantity_delta
    }
}

/// An event to insert, with the document fields it repeats.
struct NewEvent<'a> {
    doc: &'a Derived,
    event: &'a EventDraft,
}

/// A `document_changes` row.
struct Change<'a> {
    doc: &'a Derived,
    change: &'static str,
    old: &'a KnownDoc,
    inserted: i64,
    retracted: i64,
}

/// The middle of a page write: which documents changed, their events, versions, changes and
/// warnings, for one group of documents. Expands to a `Result<PageOutcome, sqlx::Error>`; a
/// macro so that each backend's arm of [`on_pool!`] compiles it against its own driver.
macro_rules! write_documents {
    ($tx:ident, $ctx:ident, $docs:expr) => {
        async {
            let ctx = &$ctx;
            let docs: &[&DocWrite] = $docs;
            let ids: Vec<&str> = docs.iter().map(|d| d.derived.doc_id.as_str()).collect();
            // Which documents are new or changed since we last stored them.
            let known: HashMap<String, KnownDoc> = if ids.is_empty() {
                HashMap::new()
            } else {
                $tx.known_documents(ctx.company_id, ctx.doc_type, &ids).await?.into_iter().map(|k| (k.doc_id.clone(), k)).collect()
            };
            let mut unchanged = Vec::new();
            let mut changed = Vec::new();
            for doc in docs {
                let d = &doc.derived;
                match known.get(&d.doc_id) {
                    Some(k)
                        if !ctx.rebuild
                            && !k.deleted
                            && k.row_version == d.row_version
                            && k.lines_version.as_deref() == Some(d.lines_version.as_str()) =>
                    {
                        unchanged.push(d.doc_id.as_str())
                    }
                    k => changed.push((*doc, k)),
                }
            }

            // The current events of known documents that changed, to retract what is gone.
            let changed_known: Vec<&str> =
                changed.iter().filter(|(_, k)| k.is_some()).map(|(d, _)| d.derived.doc_id.as_str()).collect();
            let mut current: HashMap<&str, Vec<CurrentEvent>> = HashMap::new();
            let current_rows: Vec<CurrentEvent> = if changed_known.is_empty() {
                Vec::new()
            } else {
                let mut q = QueryBuilder::new(
                    "SELECT event_id, doc_id, line_collection, line_id, serial, event_type, product_id, occurred_at, \
                     location_id, sublocation, quantity_delta FROM serial_events WHERE retracted_at IS NULL AND company_id = ",
                );
                q.push_bind(ctx.company_id).push(" AND doc_type = ").push_bind(ctx.doc_type.as_str());
                push_in(&mut q, " AND doc_id", &changed_known);
                q.build_query_as::<CurrentEvent>().persistent(false).fetch_all(&mut *$tx).await?
            };
            for row in &current_rows {
                current.entry(row.doc_id.as_str()).or_default().push(row.clone());
            }

            let mut retract_ids = Vec::new();
            let mut inserts = Vec::new();
            let mut changes = Vec::new();
            for (doc, known) in &changed {
                let d = &doc.derived;
                let old = current.remove(d.doc_id.as_str()).unwrap_or_default();
                let (new_events, gone) = diff_events(&d.events, &old);
                retract_ids.extend(gone.iter().copied());
                inserts.extend(new_events.iter().map(|event| NewEvent { doc: d, event }));
                let events_differ = !new_events.is_empty() || !gone.is_empty();
                if let Some(k) = known.filter(|_| !ctx.rebuild || events_differ) {
                    changes.push(Change {
                        doc: d,
                        change: if ctx.rebuild { ctx.rebuilt } else { change_kind(k, d) },
                        old: k,
                        inserted: new_events.len() as i64,
                        retracted: gone.len() as i64,
                    });
                }
            }

            let now = ctx.now;
            for chunk in retract_ids.chunks(INSERT_CHUNK) {
                let mut q = QueryBuilder::new("UPDATE serial_events SET retracted_at = ");
                q.push_bind(now).push(", retracted_run_id = ").push_bind(ctx.run_id);
                push_in(&mut q, " WHERE event_id", chunk);
                q.build().persistent(false).execute(&mut *$tx).await?;
            }
            let mut inserted = 0;
            for chunk in inserts.chunks(INSERT_CHUNK) {
                let batch = EventBatch { company_id: ctx.company_id, observed_at: now, run_id: ctx.run_id, events: chunk };
                inserted += $tx.insert_events(&batch).await? as i64;
            }

            // Genealogy: a derived document's links replace its old ones.
            if ctx.doc_type == DocType::ManufacturingOrder && !changed.is_empty() {
                let derived: Vec<&Derived> = changed.iter().map(|(doc, _)| &doc.derived).collect();
                super::genealogy::replace_links(&mut *$tx, ctx.company_id, &derived, now, ctx.run_id).await?;
            }
            // A stock count whose difference (found or missing serials) came or went.
            let is_count = |t: &str| matches!(t, "count_missing" | "count_found");
            let retracted: HashSet<i64> = retract_ids.iter().copied().collect();
            let counts_moved = ctx.doc_type == DocType::StockCount
                && !ctx.rebuild
                && (inserts.iter().any(|n| is_count(n.event.event_type.as_str()))
                    || current_rows.iter().any(|c| retracted.contains(&c.event_id) && is_count(&c.event_type)));

            // Documents: the new version of each changed one, a sighting of each unchanged one.
            let stored_docs: &[(&DocWrite, Option<&KnownDoc>)] = if ctx.rebuild { &[] } else { &changed };
            for chunk in stored_docs.chunks(INSERT_CHUNK / 4) {
                let docs: Vec<&DocWrite> = chunk.iter().map(|(doc, _)| *doc).collect();
                let batch = DocBatch { company_id: ctx.company_id, now, run_id: ctx.run_id, walk_id: ctx.walk_id, docs: &docs };
                $tx.upsert_documents(&batch).await?;
                // A stored version ends a document's quarantine.
                let keys: Vec<String> = docs.iter().map(|d| doc_key(Some(&d.derived.doc_id), "")).collect();
                let mut q = QueryBuilder::new("DELETE FROM quarantined_documents WHERE company_id = ");
                q.push_bind(ctx.company_id).push(" AND doc_type = ").push_bind(ctx.doc_type.as_str());
                push_in(&mut q, " AND doc_key", &keys);
                q.build().persistent(false).execute(&mut *$tx).await?;
            }
            if !unchanged.is_empty() {
                let mut q = QueryBuilder::new("UPDATE documents SET last_seen_at = ");
                q.push_bind(now)
                    .push(", last_seen_run_id = ")
                    .push_bind(ctx.run_id)
                    .push(", seen_walk_id = ")
                    .push_bind(ctx.walk_id)
                    .push(" WHERE company_id = ")
                    .push_bind(ctx.company_id)
                    .push(" AND doc_type = ")
                    .push_bind(ctx.doc_type.as_str());
                push_in(&mut q, " AND doc_id", &unchanged);
                q.build().persistent(false).execute(&mut *$tx).await?;
            }
            for chunk in changes.chunks(INSERT_CHUNK / 4) {
                let mut q = QueryBuilder::new(
                    "INSERT INTO document_changes (company_id, doc_type, doc_id, doc_number, run_id, observed_at, change, \
                     old_row_version, new_row_version, old_lines_version, new_lines_version, events_inserted, events_retracted) ",
                );
                q.push_values(chunk, |mut row, c| {
                    row.push_bind(ctx.company_id)
                        .push_bind(c.doc.doc_type.as_str())
                        .push_bind(&c.doc.doc_id)
                        .push_bind(&c.doc.doc_number)
                        .push_bind(ctx.run_id)
                        .push_bind(now)
                        .push_bind(c.change)
                        .push_bind(&c.old.row_version)
                        .push_bind(&c.doc.row_version)
                        .push_bind(&c.old.lines_version)
                        .push_bind(&c.doc.lines_version)
                        .push_bind(c.inserted)
                        .push_bind(c.retracted);
                });
                q.build().persistent(false).execute(&mut *$tx).await?;
            }

            // Warnings of the documents (re)derived here.
            let warnings: Vec<(&Derived, &Warning)> =
                changed.iter().flat_map(|(doc, _)| doc.derived.warnings.iter().map(move |w| (&doc.derived, w))).collect();
            for chunk in warnings.chunks(INSERT_CHUNK / 4) {
                let mut q = QueryBuilder::new(
                    "INSERT INTO run_warnings (run_id, company_id, doc_type, doc_id, doc_number, line_collection, line_id, kind, detail) ",
                );
                q.push_values(chunk, |mut row, (d, w)| {
                    row.push_bind(ctx.run_id)
                        .push_bind(ctx.company_id)
                        .push_bind(d.doc_type.as_str())
                        .push_bind(&d.doc_id)
                        .push_bind(&d.doc_number)
                        .push_bind(w.line_collection)
                        .push_bind(&w.line_id)
                        .push_bind(w.kind.as_str())
                        .push_bind(&w.detail);
                });
                q.build().persistent(false).execute(&mut *$tx).await?;
            }

            // Product ids that the events of (re)derived documents use and the reference table
            // lacks. Unchanged documents were checked when they were stored: a product the list
            // no longer returns must not make every later run walk the products again.
            let products: Vec<&str> = changed
                .iter()
                .flat_map(|(d, _)| d.derived.events.iter().filter_map(|e| e.product_id.as_deref()))
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let mut unknown_products = Vec::new();
            if !products.is_empty() {
                let mut q = QueryBuilder::new("SELECT product_id FROM products WHERE company_id = ");
                q.push_bind(ctx.company_id);
                push_in(&mut q, " AND product_id", &products);
                let have: HashSet<String> =
                    q.build_query_scalar::<String>().persistent(false).fetch_all(&mut *$tx).await?.into_iter().collect();
                unknown_products = products.iter().filter(|p| !have.contains(**p)).map(|p| p.to_string()).collect();
            }
            Ok::<_, sqlx::Error>(PageOutcome {
                documents_seen: docs.len() as i64,
                documents_changed: changed.len() as i64,
                events_inserted: inserted,
                events_retracted: retract_ids.len() as i64,
                warnings: warnings.len() as i64,
                quarantined: 0,
                unknown_products,
                counts_moved,
            })
        }
        .await
    };
}
impl Store {
    /// Records the start of a run and returns its id. Runs left `running` by a dead process
    /// of the same company are marked `interrupted` first.
    pub async fn begin_run(
        &self,
        company_id: &str,
        command: &str,
        arguments: &serde_json::Value,
        api_version: Option<&str>,
    ) -> Result<i64, StoreError> {
        let now = Utc::now();
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE ingest_runs SET status = 'interrupted', finished_at = $1 \
                 WHERE company_id = $2 AND status = 'running'",
            )
            .bind(now)
            .bind(company_id)
            .execute(pool)
            .await
            .context(|| "marking runs of dead processes as interrupted".into())?;
            sqlx::query_scalar(
                "INSERT INTO ingest_runs (company_id, command, status, started_at, arguments, api_version) \
                 VALUES ($1, $2, 'running', $3, $4, $5) RETURNING run_id",
            )
            .bind(company_id)
            .bind(command)
            .bind(now)
            .bind(Json(arguments))
            .bind(api_version)
            .fetch_one(pool)
            .await
            .context(|| "recording the start of the run".into())
        })
    }

    /// Records a warning about the run itself (not about a document's data): a paging mode
    /// that failed, a saved position that no longer answered.
    pub async fn record_run_warning(
        &self,
        run_id: i64,
        company_id: &str,
        doc_type: Option<DocType>,
        kind: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO run_warnings (run_id, company_id, doc_type, kind, detail) VALUES ($1, $2, $3, $4, $5)")
                .bind(run_id)
                .bind(company_id)
                .bind(doc_type.map(DocType::as_str))
                .bind(kind)
                .bind(detail)
                .execute(pool)
                .await
                .context(|| format!("recording a warning of run {run_id}"))?;
            Ok(())
        })
    }

    /// Records how a run ended, with its final counters.
    pub async fn finish_run(
        &self,
        run_id: i64,
        status: RunStatus,
        counters: &RunCounters,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut q = QueryBuilder::new("UPDATE ingest_runs SET status = ");
            q.push_bind(status.as_str()).push(", finished_at = ").push_bind(Utc::now()).push(", error = ").push_bind(error);
            push_counters(&mut q, counters);
            q.push(" WHERE run_id = ").push_bind(run_id);
            q.build().persistent(false).execute(pool).await.context(|| format!("recording the end of run {run_id}"))?;
            Ok(())
        })
    }

    /// Marks a run abandoned mid-way (a second signal) as interrupted, with why.
    pub async fn mark_interrupted(&self, run_id: i64, why: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE ingest_runs SET status = 'interrupted', finished_at = $1, error = $2 \
                 WHERE run_id = $3 AND status = 'running'",
            )
            .bind(Utc::now())
            .bind(why)
            .bind(run_id)
            .execute(pool)
            .await
            .context(|| format!("recording run {run_id} as interrupted"))?;
            Ok(())
        })
    }

    pub async fn sync_state(&self, company_id: &str, stream: &str) -> Result<SyncState, StoreError> {
        on_pool!(self, pool => {
            let row: Option<SyncState> = sqlx::query_as(
                "SELECT since, walk_id, walk_kind, walk_from, walk_paging, walk_position, walk_started_at, walk_seen, \
                 walk_list_count, walk_unproven, last_complete_at, last_window_at \
                 FROM sync_state WHERE company_id = $1 AND stream = $2",
            )
            .bind(company_id)
            .bind(stream)
            .fetch_optional(pool)
            .await
            .context(|| format!("reading the saved position of {stream}"))?;
            Ok(row.unwrap_or_default())
        })
    }

    /// Keeps `--since` for later runs, and starts a walk at its first page.
    pub async fn start_walk(
        &self,
        company_id: &str,
        since: Option<NaiveDate>,
        mark: &WalkMark<'_>,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO sync_state (company_id, stream, since, walk_id, walk_kind, walk_from, walk_paging, walk_position, \
                 walk_started_at, walk_seen, walk_list_count, walk_unproven) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (company_id, stream) DO UPDATE SET since = excluded.since, walk_id = excluded.walk_id, \
                 walk_kind = excluded.walk_kind, walk_from = excluded.walk_from, walk_paging = excluded.walk_paging, \
                 walk_position = excluded.walk_position, walk_started_at = excluded.walk_started_at, \
                 walk_seen = excluded.walk_seen, walk_list_count = excluded.walk_list_count, \
                 walk_unproven = excluded.walk_unproven",
            )
            .bind(company_id)
            .bind(mark.stream)
            .bind(since)
            .bind(mark.walk_id)
            .bind(mark.kind)
            .bind(mark.from)
            .bind(mark.paging)
            .bind(&mark.position)
            .bind(Utc::now())
            .bind(mark.seen)
            .bind(mark.list_count)
            .bind(&mark.unproven)
            .execute(pool)
            .await
            .context(|| format!("saving the start of the {} walk", mark.stream))?;
            Ok(())
        })
    }

    /// A batch of stored, not deleted documents of one type after `after` (by id), with their
    /// JSON as inFlow sent it, for `audit rebuild`.
    pub async fn stored_documents(
        &self,
        company_id: &str,
        doc_type: DocType,
        after: &str,
        limit: i64,
    ) -> Result<Vec<(String, Box<RawValue>)>, StoreError> {
        on_pool!(self, pool => {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT doc_id, COALESCE(raw_text, CAST(raw AS TEXT)) FROM documents WHERE company_id = $1 \
                 AND doc_type = $2 AND deleted_at IS NULL AND doc_id > $3 ORDER BY doc_id LIMIT $4",
            )
            .bind(company_id)
            .bind(doc_type.as_str())
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await
            .context(|| format!("reading stored {}", doc_type.stream()))?;
            rows.into_iter()
                .map(|(id, raw)| match RawValue::from_string(raw) {
                    Ok(raw) => Ok((id, raw)),
                    Err(e) => Err(StoreError::Query {
                        what: format!("reading the stored JSON of {} {id}", doc_type.stream()),
                        source: e.into(),
                    }),
                })
                .collect()
        })
    }

    /// Stored, not deleted documents by id, with their raw JSON.
    pub async fn stored_documents_by_id(
        &self,
        company_id: &str,
        doc_type: DocType,
        ids: &[String],
    ) -> Result<Vec<(String, Box<RawValue>)>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(INSERT_CHUNK) {
            let rows: Vec<(String, Json<Box<RawValue>>)> = on_pool!(self, pool => {
                let mut q = QueryBuilder::new("SELECT doc_id, raw FROM documents WHERE deleted_at IS NULL AND company_id = ");
                q.push_bind(company_id).push(" AND doc_type = ").push_bind(doc_type.as_str());
                push_in(&mut q, " AND doc_id", chunk);
                q.push(" ORDER BY doc_id");
                q.build_query_as().persistent(false).fetch_all(pool).await
            })
            .context(|| format!("reading stored {}", doc_type.stream()))?;
            out.extend(rows.into_iter().map(|(id, raw)| (id, raw.0)));
        }
        Ok(out)
    }

    /// What completed stock counts say about these serials: the current `count_missing` and
    /// `count_found` events, as evidence for the adjustments a count made.
    pub async fn count_evidence(&self, company_id: &str, serials: &[&str]) -> Result<Vec<CountEvidence>, StoreError> {
        type Row = (String, Option<String>, Option<String>, Option<DateTime<Utc>>, String, Option<String>);
        let mut out = Vec::new();
        for chunk in serials.chunks(INSERT_CHUNK) {
            let rows: Vec<Row> = on_pool!(self, pool => {
                let mut q = QueryBuilder::new(
                    "SELECT serial, product_id, location_id, occurred_at, event_type, doc_number FROM serial_events \
                     WHERE retracted_at IS NULL AND event_type IN ('count_missing', 'count_found') AND company_id = ",
                );
                q.push_bind(company_id);
                push_in(&mut q, " AND serial", chunk);
                q.build_query_as().persistent(false).fetch_all(pool).await
            })
            .context(|| "reading what stock counts found and missed".into())?;
            out.extend(rows.into_iter().map(|(serial, product_id, location_id, at, event_type, count_number)| {
                CountEvidence { serial, product_id, location_id, at, found: event_type == "count_found", count_number }
            }));
        }
        Ok(out)
    }

    /// Stock adjustments whose events may not match the stock counts stored now: one that moves
    /// a serial the way a count did, at its location around its day (a count's adjustment
    /// written before its count), and one marked `adjusted_by_count` whose count no longer says
    /// so (a count cancelled or edited since). Deriving them again with the counts' evidence
    /// settles each; most are left unchanged.
    pub async fn adjustments_to_recheck(&self, company_id: &str) -> Result<Vec<String>, StoreError> {
        type Pair = (String, Option<DateTime<Utc>>, Option<DateTime<Utc>>);
        let what = || "looking for stock adjustments a stock count made".to_string();
        let (pairs, orphans): (Vec<Pair>, Vec<String>) = on_pool!(self, pool => {
            let pairs: Vec<Pair> = sqlx::query_as(
                "SELECT a.doc_id, a.occurred_at, c.occurred_at FROM serial_events a \
                 JOIN serial_events c ON c.serial = a.serial AND c.company_id = a.company_id \
                  AND c.location_id = a.location_id AND c.retracted_at IS NULL \
                  AND ((a.event_type = 'adjusted_out' AND c.event_type = 'count_missing') \
                    OR (a.event_type = 'adjusted_in' AND c.event_type = 'count_found')) \
                  AND (c.product_id = a.product_id OR c.product_id IS NULL OR a.product_id IS NULL) \
                 WHERE a.company_id = $1 AND a.doc_type = 'stock_adjustment' AND a.retracted_at IS NULL \
                  AND a.event_type IN ('adjusted_out', 'adjusted_in')",
            )
            .bind(company_id)
            .fetch_all(pool)
            .await
            .context(what)?;
            let orphans: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT a.doc_id FROM serial_events a WHERE a.company_id = $1 AND a.retracted_at IS NULL \
                  AND a.event_type = 'adjusted_by_count' AND NOT EXISTS (SELECT 1 FROM serial_events c \
                  WHERE c.serial = a.serial AND c.company_id = a.company_id AND c.location_id = a.location_id \
                  AND c.retracted_at IS NULL AND c.event_type IN ('count_missing', 'count_found'))",
            )
            .bind(company_id)
            .fetch_all(pool)
            .await
            .context(what)?;
            (pairs, orphans)
        });
        let mut ids: Vec<String> = pairs
            .into_iter()
            .filter(|(_, a, c)| crate::mapping::stock_count::same_day(*a, *c))
            .map(|(id, _, _)| id)
            .chain(orphans)
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Ends the walk of a reference list (`products`).
    pub async fn complete_walk(&self, company_id: &str, stream: &str, run_id: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE sync_state SET walk_id = NULL, walk_kind = NULL, walk_from = NULL, walk_paging = NULL, \
                 walk_position = NULL, walk_started_at = NULL, walk_seen = NULL, walk_list_count = NULL, \
                 walk_unproven = NULL, last_complete_at = $1, last_complete_run_id = $2 \
                 WHERE company_id = $3 AND stream = $4",
            )
            .bind(Utc::now())
            .bind(run_id)
            .bind(company_id)
            .bind(stream)
            .execute(pool)
            .await
            .context(|| format!("recording the end of the {stream} walk"))?;
            Ok(())
        })
    }

    /// Documents of a stream that a walk did not return: candidates for deletion. With a date
    /// bound only documents dated inside it count, since the walk could not see the others.
    pub async fn unseen_documents(
        &self,
        company_id: &str,
        doc_type: DocType,
        walk_id: i64,
        bound: Option<NaiveDate>,
    ) -> Result<Vec<String>, StoreError> {
        on_pool!(self, pool => {
            let mut q = QueryBuilder::new("SELECT doc_id FROM documents WHERE company_id = ");
            q.push_bind(company_id)
                .push(" AND doc_type = ")
                .push_bind(doc_type.as_str())
                .push(" AND deleted_at IS NULL AND (seen_walk_id IS NULL OR seen_walk_id <> ")
                .push_bind(walk_id)
                .push(")");
            if let Some(day) = bound {
                q.push(" AND doc_date >= ").push_bind(day.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
            }
            q.push(" ORDER BY doc_id");
            q.build_query_scalar::<String>().persistent(false)
                .fetch_all(pool)
                .await
                .context(|| format!("looking for {} the walk did not return", doc_type.stream()))
        })
    }

    /// Whether a document is stored and not marked deleted.
    pub async fn is_stored(&self, company_id: &str, doc_type: DocType, doc_id: &str) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let found: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM documents WHERE company_id = $1 AND doc_type = $2 AND doc_id = $3 AND deleted_at IS NULL",
            )
            .bind(company_id)
            .bind(doc_type.as_str())
            .bind(doc_id)
            .fetch_optional(pool)
            .await
            .context(|| format!("looking for {} {doc_id}", doc_type.stream()))?;
            Ok(found.is_some())
        })
    }

    /// Ends a walk that reached its last page, in one transaction: the documents confirmed
    /// deleted are marked so and their events retracted, and the walk is recorded as done.
    pub async fn finish_walk(&self, end: WalkEnd<'_>) -> Result<PageOutcome, StoreError> {
        let stream = end.doc_type.stream();
        let what = || format!("recording the end of the {stream} walk");
        let now = Utc::now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await.context(what)?;
            let mut retracted_total = 0i64;
            for doc_id in end.deleted {
                let retracted = sqlx::query(
                    "UPDATE serial_events SET retracted_at = $1, retracted_run_id = $2 \
                     WHERE company_id = $3 AND doc_type = $4 AND doc_id = $5 AND retracted_at IS NULL",
                )
                .bind(now)
                .bind(end.run_id)
                .bind(end.company_id)
                .bind(end.doc_type.as_str())
                .bind(doc_id)
                .execute(&mut *tx)
                .await
                .context(what)?
                .rows_affected() as i64;
                retracted_total += retracted;
                sqlx::query(
                    "INSERT INTO document_changes (company_id, doc_type, doc_id, doc_number, run_id, observed_at, change, \
                     old_row_version, new_row_version, old_lines_version, new_lines_version, events_inserted, events_retracted) \
                     SELECT company_id, doc_type, doc_id, doc_number, $1, $2, 'deleted', row_version, NULL, lines_version, NULL, 0, $3 \
                     FROM documents WHERE company_id = $4 AND doc_type = $5 AND doc_id = $6",
                )
                .bind(end.run_id)
                .bind(now)
                .bind(retracted)
                .bind(end.company_id)
                .bind(end.doc_type.as_str())
                .bind(doc_id)
                .execute(&mut *tx)
                .await
                .context(what)?;
                sqlx::query("DELETE FROM genealogy_links WHERE company_id = $1 AND doc_type = $2 AND doc_id = $3")
                    .bind(end.company_id)
                    .bind(end.doc_type.as_str())
                    .bind(doc_id)
                    .execute(&mut *tx)
                    .await
                    .context(what)?;
                sqlx::query(
                    "UPDATE documents SET deleted_at = $1, deleted_run_id = $2 WHERE company_id = $3 AND doc_type = $4 AND doc_id = $5",
                )
                .bind(now)
                .bind(end.run_id)
                .bind(end.company_id)
                .bind(end.doc_type.as_str())
                .bind(doc_id)
                .execute(&mut *tx)
                .await
                .context(what)?;
            }
            // A complete walk that could not prove it saw everything ends, but is not recorded
            // as complete.
            let finished = match (end.complete, end.proven) {
                (true, true) => Some("last_complete_at = $1, last_complete_run_id = $2"),
                (true, false) => None,
                (false, _) => Some("last_window_at = $1, last_window_run_id = $2"),
            };
            let ended = (!end.beside).then_some(
                "walk_id = NULL, walk_kind = NULL, walk_from = NULL, walk_paging = NULL, walk_position = NULL, \
                 walk_started_at = NULL, walk_seen = NULL, walk_list_count = NULL, walk_unproven = NULL",
            );
            let set: Vec<&str> = ended.into_iter().chain(finished).collect();
            if !set.is_empty() {
                let set = set.join(", ");
                let query = match finished {
                    Some(_) => sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE sync_state SET {set} WHERE company_id = $3 AND stream = $4"
                    )))
                    .bind(now)
                    .bind(end.run_id),
                    None => sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE sync_state SET {set} WHERE company_id = $1 AND stream = $2"
                    ))),
                };
                query.bind(end.company_id).bind(stream).execute(&mut *tx).await.context(what)?;
            }
            let outcome = PageOutcome { events_retracted: retracted_total, ..PageOutcome::default() };
            let counters = RunCounters { events_retracted: end.counters.events_retracted + retracted_total, ..end.counters };
            let mut q = QueryBuilder::new("UPDATE ingest_runs SET status = 'running'");
            push_counters(&mut q, &counters);
            q.push(" WHERE run_id = ").push_bind(end.run_id);
            q.build().persistent(false).execute(&mut *tx).await.context(what)?;
            tx.commit().await.context(what)?;
            Ok(outcome)
        })
    }

    /// Writes one page in one transaction; see the module docs.
    ///
    /// A document that cannot be stored does not cost the page: one whose ids no index takes is
    /// set aside before writing (the same rule on both engines), and when the database refuses a
    /// value of the page, the page is written again document by document, each in a savepoint,
    /// and the refused ones are quarantined with a warning naming them.
    pub async fn write_page(&self, page: PageWrite<'_>) -> Result<PageOutcome, StoreError> {
        let what = || format!("writing {}", page.kind.describe(page.doc_type));
        let mut set_aside: Vec<Quarantine> = Vec::new();
        let mut docs: Vec<&DocWrite> = Vec::with_capacity(page.docs.len());
        for doc in &page.docs {
            match unindexable(&doc.derived) {
                Some(reason) => set_aside.push(Quarantine {
                    doc_id: Some(doc.derived.doc_id.clone()),
                    kind: "quarantined_document",
                    reason,
                    raw: doc.raw_text.unwrap_or(doc.raw.get()),
                }),
                None => docs.push(doc),
            }
        }
        let ctx = PageContext {
            company_id: page.company_id,
            doc_type: page.doc_type,
            run_id: page.run_id,
            now: page.observed_at,
            rebuild: matches!(page.kind, PageKind::Rebuild | PageKind::Rederive),
            rebuilt: if matches!(page.kind, PageKind::Rederive) { "rederived" } else { "rebuilt" },
            walk_id: page.kind.walk_id(),
        };
        on_pool!(self, pool => {
            let mut one_by_one = false;
            loop {
                let mut tx = pool.begin_write().await.context(what)?;
                // A pass that started the stream over: what the walk saw before no longer counts
                // as seen, so that a document deleted since is found missing at the end.
                if let PageKind::Walk(mark) = &page.kind
                    && mark.restarted
                {
                    sqlx::query(
                        "UPDATE documents SET seen_walk_id = NULL WHERE company_id = $1 AND doc_type = $2 AND seen_walk_id = $3",
                    )
                    .bind(page.company_id)
                    .bind(page.doc_type.as_str())
                    .bind(mark.walk_id)
                    .execute(&mut *tx)
                    .await
                    .context(what)?;
                }
                let mut outcome = PageOutcome::default();
                let mut refused: Vec<Quarantine> = Vec::new();
                let groups: Vec<&[&DocWrite]> = if one_by_one { docs.chunks(1).collect() } else { vec![&docs[..]] };
                let mut again = false;
                for group in groups {
                    if one_by_one {
                        sqlx::query("SAVEPOINT document").execute(&mut *tx).await.context(what)?;
                    }
                    let written: Result<PageOutcome, sqlx::Error> = write_documents!(tx, ctx, group);
                    match written {
                        Ok(part) => {
                            if one_by_one {
                                sqlx::query("RELEASE SAVEPOINT document").execute(&mut *tx).await.context(what)?;
                            }
                            outcome.add(part);
                        }
                        Err(e) if refused_value(&e) && !one_by_one => {
                            tracing::debug!("{}: {e}; writing its documents one by one", what());
                            again = true;
                            break;
                        }
                        Err(e) if refused_value(&e) => {
                            sqlx::query("ROLLBACK TO SAVEPOINT document").execute(&mut *tx).await.context(what)?;
                            let doc = group[0];
                            refused.push(Quarantine {
                                doc_id: Some(doc.derived.doc_id.clone()),
                                kind: "quarantined_document",
                                reason: format!("the database refused it: {}", crate::error_text(&e)),
                                raw: doc.raw_text.unwrap_or(doc.raw.get()),
                            });
                        }
                        Err(e) => return Err(e).context(what),
                    }
                }
                if again {
                    tx.rollback().await.context(what)?;
                    one_by_one = true;
                    continue;
                }

                // Documents set aside, and those that could not be read at all.
                let quarantined: Vec<&Quarantine> = page.quarantine.iter().chain(&set_aside).chain(&refused).collect();
                for q in &quarantined {
                    tracing::warn!(
                        "{} document {} quarantined: {}",
                        ctx.doc_type.stream(),
                        q.doc_id.as_deref().map_or("without an id".to_string(), |id| format!("{id:?}")),
                        q.reason
                    );
                    sqlx::query(
                        "INSERT INTO quarantined_documents (company_id, doc_type, doc_key, doc_id, reason, raw, \
                         first_seen_at, first_run_id, last_seen_at, last_run_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7, $8) \
                         ON CONFLICT (company_id, doc_type, doc_key) DO UPDATE SET doc_id = excluded.doc_id, \
                         reason = excluded.reason, raw = excluded.raw, last_seen_at = excluded.last_seen_at, \
                         last_run_id = excluded.last_run_id",
                    )
                    .bind(ctx.company_id)
                    .bind(ctx.doc_type.as_str())
                    .bind(doc_key(q.doc_id.as_deref(), q.raw))
                    .bind(&q.doc_id)
                    .bind(&q.reason)
                    .bind(q.raw)
                    .bind(ctx.now)
                    .bind(ctx.run_id)
                    .execute(&mut *tx)
                    .await
                    .context(what)?;
                }
                let loose: Vec<(Option<&str>, &str, &str)> = page
                    .loose_warnings
                    .iter()
                    .map(|w| (w.doc_id.as_deref(), w.kind, w.detail.as_str()))
                    .chain(quarantined.iter().map(|q| (q.doc_id.as_deref(), q.kind, q.reason.as_str())))
                    .collect();
                for chunk in loose.chunks(INSERT_CHUNK / 4) {
                    let mut q = QueryBuilder::new("INSERT INTO run_warnings (run_id, company_id, doc_type, doc_id, kind, detail) ");
                    q.push_values(chunk, |mut row, (doc_id, kind, detail)| {
                        row.push_bind(ctx.run_id)
                            .push_bind(ctx.company_id)
                            .push_bind(ctx.doc_type.as_str())
                            .push_bind(*doc_id)
                            .push_bind(*kind)
                            .push_bind(*detail);
                    });
                    q.build().persistent(false).execute(&mut *tx).await.context(what)?;
                }
                outcome.documents_seen += quarantined.len() as i64;
                outcome.warnings += loose.len() as i64;
                outcome.quarantined = quarantined.len() as i64;

                if !outcome.unknown_products.is_empty() {
                    // Owe a product walk, in this transaction: a crash right after the commit must
                    // not leave events whose products nobody will fetch (their documents are unchanged
                    // next time, so they would not be noticed again).
                    owe_walk!(tx, ctx.company_id, "products", ctx.run_id, ctx.now).await.context(what)?;
                }
                // A count's difference that came or went: the adjustments it made are to be
                // derived again (at the end of the run), owed in this transaction so a crash
                // cannot lose it.
                if outcome.counts_moved {
                    owe_walk!(tx, ctx.company_id, RECHECK_ADJUSTMENTS, ctx.run_id, ctx.now).await.context(what)?;
                }

                let counters = page.counters.plus(&outcome);
                let mut q = QueryBuilder::new("UPDATE ingest_runs SET status = 'running'");
                push_counters(&mut q, &counters);
                q.push(" WHERE run_id = ").push_bind(page.run_id);
                q.build().persistent(false).execute(&mut *tx).await.context(what)?;

                if let PageKind::Walk(mark) = &page.kind {
                    sqlx::query(
                        "UPDATE sync_state SET walk_paging = $1, walk_position = $2, walk_seen = $3, walk_list_count = $4, \
                         walk_unproven = $5 WHERE company_id = $6 AND stream = $7 AND walk_id = $8",
                    )
                    .bind(mark.paging)
                    .bind(&mark.position)
                    .bind(mark.seen)
                    .bind(mark.list_count)
                    .bind(&mark.unproven)
                    .bind(page.company_id)
                    .bind(mark.stream)
                    .bind(mark.walk_id)
                    .execute(&mut *tx)
                    .await
                    .context(what)?;
                }

                crate::testing::crash_point("page-write");
                tx.commit().await.context(what)?;
                return Ok(outcome);
            }
        })
    }
}

/// The `sync_state` stream that owes a recheck of the stock adjustments against the counts.
pub const RECHECK_ADJUSTMENTS: &str = "count-adjustments";

/// What the documents of a page share.
struct PageContext<'a> {
    company_id: &'a str,
    doc_type: DocType,
    run_id: i64,
    now: DateTime<Utc>,
    /// Documents derived again from what is stored (`audit rebuild`, a re-check): only their
    /// events are compared and written, and changes are recorded under this name.
    rebuild: bool,
    rebuilt: &'static str,
    walk_id: Option<i64>,
}

/// Ids longer than this are not stored: they are part of btree keys, which Postgres limits to
/// about 2.7 KB an entry. The same limit on SQLite keeps the two databases alike.
pub const MAX_KEY_BYTES: usize = 1000;

/// Why a document's ids cannot be indexed, naming the field; `None` when they can.
fn unindexable(d: &Derived) -> Option<String> {
    let limit = |what: String, len: usize| {
        Some(format!("{what} is {len} bytes long, and audit indexes values of at most {MAX_KEY_BYTES} bytes"))
    };
    if d.doc_id.len() > MAX_KEY_BYTES {
        return limit(format!("its `{}`", d.doc_type.id_field()), d.doc_id.len());
    }
    if let Some(number) = d.doc_number.as_deref().filter(|n| n.len() > MAX_KEY_BYTES) {
        return limit("its document number".into(), number.len());
    }
    if let Some(e) = d.events.iter().find(|e| e.line_id.len() > MAX_KEY_BYTES) {
        return limit(format!("the id of a line in `{}`", e.line_collection), e.line_id.len());
    }
    None
}

/// The key of a quarantined document: a digest of its id (of its JSON when it has none), since
/// the id itself may be too long to index.
fn doc_key(doc_id: Option<&str>, raw: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = match doc_id {
        Some(id) => Sha256::digest(id.as_bytes()),
        None => Sha256::digest(raw.as_bytes()),
    };
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the database refused a value (a text it cannot hold, a key too long for an index, a
/// constraint), as opposed to failing itself (a lost connection, a full disk, a lock): only the
/// first is a reason to set a document aside.
fn refused_value(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else { return false };
    let Some(code) = db.code() else { return false };
    if db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() {
        // SQLSTATE classes: data exception, integrity constraint violation, program limit exceeded.
        ["22", "23", "54"].iter().any(|class| code.starts_with(class))
    } else {
        // SQLite's extended result code, by its primary code: TOOBIG, CONSTRAINT, MISMATCH, RANGE.
        code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 18 | 19 | 20 | 25))
    }
}

/// Events to insert, with what they share.
struct EventBatch<'a> {
    company_id: &'a str,
    observed_at: DateTime<Utc>,
    run_id: i64,
    events: &'a [NewEvent<'a>],
}

// Literals behind macros, so that `concat!` can build each engine's statement from them.
macro_rules! insert_events {
    () => {
        "INSERT INTO serial_events (company_id, serial, product_id, doc_type, doc_id, doc_number, line_collection, \
         line_id, event_type, occurred_at, location_id, sublocation, quantity_delta, doc_status, observed_at, run_id) "
    };
}

/// The conflict clause: an event already current is not inserted twice. Postgres's unique index
/// holds the serial's md5 (an index entry has a size limit, a serial has none; see V6).
macro_rules! on_event_conflict {
    (sqlite) => {
        " ON CONFLICT (company_id, doc_type, doc_id, line_collection, line_id, serial, event_type) \
         WHERE retracted_at IS NULL DO NOTHING"
    };
    (postgres) => {
        " ON CONFLICT (company_id, doc_type, doc_id, line_collection, line_id, md5(serial), event_type) \
         WHERE retracted_at IS NULL DO NOTHING"
    };
}

macro_rules! known_documents {
    () => {
        "SELECT doc_id, row_version, lines_version, is_cancelled, deleted_at IS NOT NULL AS deleted \
         FROM documents WHERE company_id = "
    };
}

/// The stored versions of a page's documents.
trait KnownDocuments {
    async fn known_documents(
        &mut self,
        company_id: &str,
        doc_type: DocType,
        ids: &[&str],
    ) -> Result<Vec<KnownDoc>, sqlx::Error>;
}

impl KnownDocuments for sqlx::SqliteConnection {
    async fn known_documents(
        &mut self,
        company_id: &str,
        doc_type: DocType,
        ids: &[&str],
    ) -> Result<Vec<KnownDoc>, sqlx::Error> {
        let mut q = QueryBuilder::<sqlx::Sqlite>::new(known_documents!());
        q.push_bind(company_id).push(" AND doc_type = ").push_bind(doc_type.as_str());
        push_in(&mut q, " AND doc_id", ids);
        q.build_query_as().persistent(false).fetch_all(self).await
    }
}

/// Postgres: the ids as one array. Not prepared: the table grows from nothing during a first
/// ingest, and a cached generic plan made while it was small scans it whole (seen as 17 ms a page).
impl KnownDocuments for sqlx::PgConnection {
    async fn known_documents(
        &mut self,
        company_id: &str,
        doc_type: DocType,
        ids: &[&str],
    ) -> Result<Vec<KnownDoc>, sqlx::Error> {
        sqlx::query_as(concat!(known_documents!(), "$1 AND doc_type = $2 AND doc_id = ANY($3)"))
            .bind(company_id)
            .bind(doc_type.as_str())
            .bind(ids)
            .persistent(false)
            .fetch_all(self)
            .await
    }
}

/// Documents to store, with what they share.
struct DocBatch<'a> {
    company_id: &'a str,
    now: DateTime<Utc>,
    run_id: i64,
    walk_id: Option<i64>,
    docs: &'a [&'a DocWrite<'a>],
}

macro_rules! upsert_documents {
    () => {
        "INSERT INTO documents (company_id, doc_type, doc_id, doc_number, doc_date, doc_status, party_id, row_version, \
         lines_version, is_cancelled, raw, raw_text, first_seen_at, first_run_id, changed_at, changed_run_id, \
         last_seen_at, last_seen_run_id, seen_walk_id) "
    };
}

/// A known document takes the new version; its first sighting stays.
macro_rules! on_document_conflict {
    () => {
        " ON CONFLICT (company_id, doc_type, doc_id) DO UPDATE SET doc_number = excluded.doc_number, \
         doc_date = excluded.doc_date, doc_status = excluded.doc_status, party_id = excluded.party_id, \
         row_version = excluded.row_version, lines_version = excluded.lines_version, \
         is_cancelled = excluded.is_cancelled, raw = excluded.raw, raw_text = excluded.raw_text, \
         changed_at = excluded.changed_at, \
         changed_run_id = excluded.changed_run_id, last_seen_at = excluded.last_seen_at, \
         last_seen_run_id = excluded.last_seen_run_id, seen_walk_id = excluded.seen_walk_id, \
         deleted_at = NULL, deleted_run_id = NULL"
    };
}

/// Storing many documents, the fastest way each engine offers.
trait UpsertDocuments {
    async fn upsert_documents(&mut self, batch: &DocBatch<'_>) -> Result<(), sqlx::Error>;
}

impl UpsertDocuments for sqlx::SqliteConnection {
    async fn upsert_documents(&mut self, b: &DocBatch<'_>) -> Result<(), sqlx::Error> {
        let mut q = QueryBuilder::<sqlx::Sqlite>::new(upsert_documents!());
        q.push_values(b.docs, |mut row, doc| {
            let d = &doc.derived;
            row.push_bind(b.company_id)
                .push_bind(d.doc_type.as_str())
                .push_bind(&d.doc_id)
                .push_bind(&d.doc_number)
                .push_bind(d.doc_date)
                .push_bind(&d.doc_status)
                .push_bind(&d.party_id)
                .push_bind(&d.row_version)
                .push_bind(&d.lines_version)
                .push_bind(d.is_cancelled)
                .push_bind(Json(doc.raw))
                .push_bind(doc.raw_text)
                .push_bind(b.now)
                .push_bind(b.run_id)
                .push_bind(b.now)
                .push_bind(b.run_id)
                .push_bind(b.now)
                .push_bind(b.run_id)
                .push_bind(b.walk_id);
        });
        q.push(on_document_conflict!());
        q.build().persistent(false).execute(self).await?;
        Ok(())
    }
}

impl UpsertDocuments for sqlx::PgConnection {
    async fn upsert_documents(&mut self, b: &DocBatch<'_>) -> Result<(), sqlx::Error> {
        let sql = concat!(
            upsert_documents!(),
            "SELECT $1, doc_type, doc_id, doc_number, doc_date, doc_status, party_id, row_version, lines_version, \
             is_cancelled, raw, raw_text, $2, $3, $2, $3, $2, $3, $4 \
             FROM UNNEST($5::text[], $6::text[], $7::text[], $8::timestamptz[], $9::text[], $10::text[], \
             $11::text[], $12::text[], $13::bool[], $14::jsonb[], $15::text[]) \
             AS t (doc_type, doc_id, doc_number, doc_date, doc_status, party_id, row_version, lines_version, \
             is_cancelled, raw, raw_text)",
            on_document_conflict!()
        );
        let docs = b.docs;
        let col = |f: for<'n> fn(&'n DocWrite<'n>) -> Option<&'n str>| -> Vec<Option<&str>> {
            docs.iter().map(|d| f(d)).collect()
        };
        sqlx::query(sql)
            .bind(b.company_id)
            .bind(b.now)
            .bind(b.run_id)
            .bind(b.walk_id)
            .bind(col(|d| Some(d.derived.doc_type.as_str())))
            .bind(col(|d| Some(d.derived.doc_id.as_str())))
            .bind(col(|d| d.derived.doc_number.as_deref()))
            .bind(docs.iter().map(|d| d.derived.doc_date).collect::<Vec<_>>())
            .bind(col(|d| d.derived.doc_status.as_deref()))
            .bind(col(|d| d.derived.party_id.as_deref()))
            .bind(col(|d| d.derived.row_version.as_deref()))
            .bind(col(|d| Some(d.derived.lines_version.as_str())))
            .bind(docs.iter().map(|d| d.derived.is_cancelled).collect::<Vec<_>>())
            .bind(docs.iter().map(|d| Json(d.raw)).collect::<Vec<_>>())
            .bind(col(|d| d.raw_text))
            .execute(self)
            .await?;
        Ok(())
    }
}

/// Inserting many events, the fastest way each engine offers.
trait InsertEvents {
    async fn insert_events(&mut self, batch: &EventBatch<'_>) -> Result<u64, sqlx::Error>;
}

/// SQLite: one multi-row VALUES statement.
impl InsertEvents for sqlx::SqliteConnection {
    async fn insert_events(&mut self, batch: &EventBatch<'_>) -> Result<u64, sqlx::Error> {
        let mut q = QueryBuilder::<sqlx::Sqlite>::new(insert_events!());
        q.push_values(batch.events, |mut row, n| {
            row.push_bind(batch.company_id)
                .push_bind(&n.event.serial)
                .push_bind(&n.event.product_id)
                .push_bind(n.doc.doc_type.as_str())
                .push_bind(&n.doc.doc_id)
                .push_bind(&n.doc.doc_number)
                .push_bind(n.event.line_collection)
                .push_bind(&n.event.line_id)
                .push_bind(n.event.event_type.as_str())
                .push_bind(n.event.occurred_at)
                .push_bind(&n.event.location_id)
                .push_bind(&n.event.sublocation)
                .push_bind(n.event.quantity_delta)
                .push_bind(&n.doc.doc_status)
                .push_bind(batch.observed_at)
                .push_bind(batch.run_id);
        });
        q.push(on_event_conflict!(sqlite));
        Ok(q.build().persistent(false).execute(self).await?.rows_affected())
    }
}

/// Postgres: one array per column, unnested; a single short statement whatever the batch size,
/// planned once, instead of thousands of parameters to bind and plan.
impl InsertEvents for sqlx::PgConnection {
    async fn insert_events(&mut self, batch: &EventBatch<'_>) -> Result<u64, sqlx::Error> {
        let ev = batch.events;
        let col =
            |f: for<'n> fn(&'n NewEvent<'n>) -> Option<&'n str>| -> Vec<Option<&str>> { ev.iter().map(f).collect() };
        let sql = concat!(
            insert_events!(),
            "SELECT $1, serial, product_id, doc_type, doc_id, doc_number, line_collection, line_id, event_type, \
             occurred_at, location_id, sublocation, quantity_delta, doc_status, $2, $3 \
             FROM UNNEST($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], \
             $11::text[], $12::timestamptz[], $13::text[], $14::text[], $15::int2[], $16::text[]) \
             AS t (serial, product_id, doc_type, doc_id, doc_number, line_collection, line_id, event_type, \
             occurred_at, location_id, sublocation, quantity_delta, doc_status)",
            on_event_conflict!(postgres)
        );
        let done = sqlx::query(sql)
            .bind(batch.company_id)
            .bind(batch.observed_at)
            .bind(batch.run_id)
            .bind(col(|n| Some(n.event.serial.as_str())))
            .bind(col(|n| n.event.product_id.as_deref()))
            .bind(col(|n| Some(n.doc.doc_type.as_str())))
            .bind(col(|n| Some(n.doc.doc_id.as_str())))
            .bind(col(|n| n.doc.doc_number.as_deref()))
            .bind(col(|n| Some(n.event.line_collection)))
            .bind(col(|n| Some(n.event.line_id.as_str())))
            .bind(col(|n| Some(n.event.event_type.as_str())))
            .bind(ev.iter().map(|n| n.event.occurred_at).collect::<Vec<_>>())
            .bind(col(|n| n.event.location_id.as_deref()))
            .bind(col(|n| n.event.sublocation.as_deref()))
            .bind(ev.iter().map(|n| n.event.quantity_delta).collect::<Vec<i16>>())
            .bind(col(|n| n.doc.doc_status.as_deref()))
            .execute(self)
            .await?;
        Ok(done.rows_affected())
    }
}

impl RunCounters {
    /// These counters with retractions outside a page (deleted documents) added.
    pub fn plus_retractions(&self, outcome: &PageOutcome) -> RunCounters {
        RunCounters { events_retracted: self.events_retracted + outcome.events_retracted, ..*self }
    }

    /// These counters with a page's effects added (requests are set by the caller).
    pub fn plus(&self, page: &PageOutcome) -> RunCounters {
        RunCounters {
            pages: self.pages + 1,
            documents_seen: self.documents_seen + page.documents_seen,
            documents_changed: self.documents_changed + page.documents_changed,
            events_inserted: self.events_inserted + page.events_inserted,
            events_retracted: self.events_retracted + page.events_retracted,
            warnings: self.warnings + page.warnings,
            ..*self
        }
    }
}

/// Which derived events are new, and which current ones (by id) are no longer there.
/// An event whose key stays but whose place, time or product changed is both.
fn diff_events<'e>(derived: &'e [EventDraft], current: &[CurrentEvent]) -> (Vec<&'e EventDraft>, Vec<i64>) {
    let by_key: HashMap<(&str, &str, &str, &str), &CurrentEvent> = current
        .iter()
        .map(|c| ((c.line_collection.as_str(), c.line_id.as_str(), c.serial.as_str(), c.event_type.as_str()), c))
        .collect();
    let mut kept = HashSet::new();
    let mut new = Vec::new();
    for e in derived {
        let key = (e.line_collection, e.line_id.as_str(), e.serial.as_str(), e.event_type.as_str());
        match by_key.get(&key) {
            Some(c) if c.same_as(e) => {
                kept.insert(c.event_id);
            }
            _ => new.push(e),
        }
    }
    let gone = current.iter().map(|c| c.event_id).filter(|id| !kept.contains(id)).collect();
    (new, gone)
}

fn change_kind(old: &KnownDoc, new: &Derived) -> &'static str {
    match (old.deleted, old.is_cancelled, new.is_cancelled) {
        (true, _, _) => "reappeared",
        (false, false, true) => "cancelled",
        (false, true, false) => "uncancelled",
        _ => "changed",
    }
}

/// A page by where the walk goes after it (the position saved with it).
fn describe_page_ending(next: &str) -> String {
    use crate::inflow::walk::Position;
    match Position::decode(next) {
        Position::After(Some(id)) => format!("ending with document {id}"),
        Position::After(None) => "at the start of the walk".into(),
        Position::Skip { n, .. } => format!("ending before skip={n}"),
    }
}

/// Appends `<column> IN ($1, $2, ...)`.
pub(crate) fn push_in<DB, T>(q: &mut QueryBuilder<DB>, column: &str, values: &[T])
where
    DB: sqlx::Database,
    T: Clone + for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    q.push(column).push(" IN (");
    let mut list = q.separated(", ");
    for v in values {
        list.push_bind(v.clone());
    }
    list.push_unseparated(")");
}

fn push_counters<DB>(q: &mut QueryBuilder<DB>, c: &RunCounters)
where
    DB: sqlx::Database,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    for (column, value) in [
        ("requests", c.requests),
        ("pages", c.pages),
        ("documents_seen", c.documents_seen),
        ("documents_changed", c.documents_changed),
        ("events_inserted", c.events_inserted),
        ("events_retracted", c.events_retracted),
        ("warnings", c.warnings),
        ("rate_limited", c.rate_limited),
        ("retries", c.retries),
    ] {
        q.push(format!(", {column} = ")).push_bind(value);
    }
}
