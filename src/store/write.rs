//! The write side of an ingest: pages written atomically.
//!
//! [`Store::write_page`] is the heart: one transaction holds a page's documents, the events they
//! add or retract, its warnings, the run's counters and the walk's next position. A process
//! killed at any moment therefore resumes from the last committed page and re-derives exactly
//! what was lost, and nothing twice. Its steps (`PageSteps`): classify the documents, diff
//! their events and retract what is gone, insert the new events, upsert the documents, record
//! changes and warnings, note the look-ups owed, then save the counters and the position.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use sqlx::QueryBuilder;

use super::bulk::{Bulk, BulkInsert, Get, Same};
use super::runs::{Counters, RunCounters, save_counters};
use super::walks::{RECHECK_ADJUSTMENTS, WalkMark, WalkSteps};
use super::{Context, Store, StoreError, WritePool, for_each_connection, on_pool};
use crate::mapping::{Derived, DocType, EventDraft, Warning};

/// Rows per multi-row INSERT: 19 parameters a row stays far below both engines' limits
/// (32766 on SQLite, 65535 on Postgres) while amortising the statement.
pub(super) const INSERT_CHUNK: usize = 1000;

/// One document of a page: what the mapping made of it, and its raw JSON.
pub struct DocWrite<'a> {
    /// What the mapping made of it.
    pub derived: Derived,
    /// The JSON stored in `documents.raw` and derived from: storable by both engines.
    pub raw: &'a RawValue,
    /// The JSON exactly as sent, when `raw` had to differ from it (`documents.raw_text`).
    pub raw_text: Option<&'a str>,
}

/// A document that cannot be stored as events: kept in `quarantined_documents` with its JSON as
/// sent, and named in a warning.
pub struct Quarantine<'a> {
    /// Its id, when it has one.
    pub doc_id: Option<String>,
    /// The warning's kind: `unreadable_document`, `quarantined_document`.
    pub kind: &'static str,
    /// Why it is set aside.
    pub reason: String,
    /// Its JSON as sent.
    pub raw: &'a str,
}

/// A warning not tied to a derived document (one that could not be read at all).
pub struct LooseWarning {
    /// The type of the unreadable document.
    pub doc_type: DocType,
    /// Its id, when one could be read.
    pub doc_id: Option<String>,
    /// The warning's kind (`unreadable_document`).
    pub kind: &'static str,
    /// What the warning says.
    pub detail: String,
}

/// A page of documents to write in one transaction.
pub struct PageWrite<'a> {
    /// The company.
    pub company_id: &'a str,
    /// The run writing it.
    pub run_id: i64,
    /// The documents' type.
    pub doc_type: DocType,
    /// When the documents were fetched (or derived again).
    pub observed_at: DateTime<Utc>,
    /// The documents that derived.
    pub docs: Vec<DocWrite<'a>>,
    /// Warnings about documents that could not be read.
    pub loose_warnings: Vec<LooseWarning>,
    /// Documents of the page that cannot be stored (unreadable ones).
    pub quarantine: Vec<Quarantine<'a>>,
    /// Where the documents come from.
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
    Refetch {
        /// The walk that missed them.
        walk_id: Option<i64>,
    },
    /// Stored documents derived again by `audit rebuild`: every document is compared with its
    /// events, nothing else is written but changes where the events differ.
    Rebuild,
    /// Stored documents derived again during an ingest because other documents they depend on
    /// changed (stock adjustments, when the counts that made them arrive or go): as `Rebuild`.
    Rederive,
}

impl PageKind<'_> {
    /// Whether the documents are a page of a walk or a rebuild's batch (what runs count as pages).
    fn is_page(&self) -> bool {
        matches!(self, PageKind::Walk(_) | PageKind::Beside(_) | PageKind::Rebuild)
    }

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
                format!("the {} page {}", mark.stream, mark.place)
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
    /// One page (none for documents fetched by id or derived again during an ingest).
    pub work: Counters,
    /// Documents set aside in `quarantined_documents` (counted in `documents_seen` too).
    pub quarantined: i64,
    /// Product ids the events use that the `products` table does not know yet.
    pub unknown_products: Vec<String>,
    /// A stock count's difference came or went: the adjustments it made are to be derived again.
    pub counts_moved: bool,
    /// An order names a customer or vendor the reference table lacks.
    pub unknown_party: bool,
}

impl PageOutcome {
    /// Adds the outcome of another group of the same page.
    fn add(&mut self, other: PageOutcome) {
        self.work += other.work;
        self.quarantined += other.quarantined;
        self.counts_moved |= other.counts_moved;
        self.unknown_party |= other.unknown_party;
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

impl<'a> PageContext<'a> {
    fn of(page: &PageWrite<'a>) -> PageContext<'a> {
        PageContext {
            company_id: page.company_id,
            doc_type: page.doc_type,
            run_id: page.run_id,
            now: page.observed_at,
            rebuild: matches!(page.kind, PageKind::Rebuild | PageKind::Rederive),
            rebuilt: if matches!(page.kind, PageKind::Rederive) { "rederived" } else { "rebuilt" },
            walk_id: page.kind.walk_id(),
        }
    }
}

/// A group of a page's documents, by whether they changed since they were stored.
struct Classified<'d> {
    /// New or changed documents (every one when deriving again), with their stored version.
    changed: Vec<(&'d DocWrite<'d>, Option<KnownDoc>)>,
    /// Ids of documents stored as they are.
    unchanged: Vec<&'d str>,
}

/// What the changed documents' events come to.
struct Diff<'c> {
    /// Current events no longer derived (retracted by now).
    retracted: Vec<i64>,
    inserts: Vec<NewEvent<'c>>,
    changes: Vec<Change<'c>>,
    /// A stock count's difference (found or missing serials) came or went.
    counts_moved: bool,
}

impl Store {
    /// Writes one page in one transaction; see the module docs.
    ///
    /// A document that cannot be stored does not cost the page: one whose ids no index takes is
    /// set aside before writing (the same rule on both engines), and when the database refuses a
    /// value of the page, the page is written again document by document, each in a savepoint,
    /// and the refused ones are quarantined with a warning naming them.
    pub async fn write_page(&self, page: PageWrite<'_>) -> Result<PageOutcome, StoreError> {
        let mut outcomes = self.write_pages(vec![page]).await?;
        Ok(outcomes.pop().expect("one outcome per page"))
    }

    /// Writes consecutive pages of one walk in one transaction (group commit), each as
    /// [`Store::write_page`] would, in order, so that a later page sees what an earlier one
    /// wrote. Each page's counters are taken to follow the page before it; the position saved
    /// last is the last page's. A crash loses the whole group, which the walk fetches again.
    pub async fn write_pages(&self, mut pages: Vec<PageWrite<'_>>) -> Result<Vec<PageOutcome>, StoreError> {
        let Some(first) = pages.first() else { return Ok(Vec::new()) };
        let what = |page: &PageWrite| format!("writing {}", page.kind.describe(page.doc_type));
        let group = if pages.len() > 1 {
            format!("writing a group of {} pages ending with {}", pages.len(), what(pages.last().expect("not empty")))
        } else {
            what(first)
        };
        on_pool!(self, pool => {
            let mut one_by_one = false;
            'attempt: loop {
                let mut tx = pool.begin_write().await.context(|| group.clone())?;
                let mut outcomes = Vec::with_capacity(pages.len());
                let mut work = pages[0].counters.work;
                let count = pages.len();
                for (i, page) in pages.iter_mut().enumerate() {
                    // Each page's counters follow from the one before it, as if written one by one.
                    page.counters.work = work;
                    let Some(outcome) = tx.page_steps(page, one_by_one).await.context(|| what(page))? else {
                        tx.rollback().await.context(|| what(page))?;
                        one_by_one = true;
                        continue 'attempt;
                    };
                    work += outcome.work;
                    outcomes.push(outcome);
                    if i + 1 < count {
                        crate::testing::crash_point("group-page");
                    }
                }
                crate::testing::crash_point("page-write");
                tx.commit().await.context(|| group.clone())?;
                return Ok(outcomes);
            }
        })
    }
}

/// Sets aside the documents whose ids no index takes (see [`unindexable`]).
fn set_aside_unindexable<'p, 'a>(docs: &'p [DocWrite<'a>]) -> (Vec<&'p DocWrite<'a>>, Vec<Quarantine<'a>>) {
    let mut set_aside = Vec::new();
    let mut kept = Vec::with_capacity(docs.len());
    for doc in docs {
        match unindexable(&doc.derived) {
            Some(reason) => set_aside.push(Quarantine {
                doc_id: Some(doc.derived.doc_id.clone()),
                kind: "quarantined_document",
                reason,
                raw: doc.raw_text.unwrap_or(doc.raw.get()),
            }),
            None => kept.push(doc),
        }
    }
    (kept, set_aside)
}

/// The steps of a page write, inside its transaction; written once, compiled per engine.
trait PageSteps {
    /// Every step of one page: `None` when a value was refused in one group (the caller starts
    /// again one by one), else the page's outcome.
    async fn page_steps(&mut self, page: &PageWrite<'_>, one_by_one: bool) -> Result<Option<PageOutcome>, sqlx::Error>;

    /// Writes the documents in one group, or one by one in savepoints: `None` when a value was
    /// refused in one group (the caller starts again one by one), else the outcome and the
    /// documents refused.
    async fn write_groups<'d>(
        &mut self,
        ctx: &PageContext<'_>,
        docs: &[&'d DocWrite<'d>],
        one_by_one: bool,
    ) -> Result<Option<(PageOutcome, Vec<Quarantine<'d>>)>, sqlx::Error>;

    /// Every step for one group of documents.
    async fn write_group(&mut self, ctx: &PageContext<'_>, docs: &[&DocWrite<'_>]) -> Result<PageOutcome, sqlx::Error>;

    /// Classify: which documents are new or changed since they were stored.
    async fn classify<'d>(
        &mut self,
        ctx: &PageContext<'_>,
        docs: &[&'d DocWrite<'d>],
    ) -> Result<Classified<'d>, sqlx::Error>;

    /// Diff and retract: the changed documents' events against their current ones; what is
    /// gone is retracted.
    async fn diff_and_retract<'c>(
        &mut self,
        ctx: &PageContext<'_>,
        classified: &'c Classified<'_>,
    ) -> Result<Diff<'c>, sqlx::Error>;

    /// Insert events; returns how many were new.
    async fn insert_events(&mut self, ctx: &PageContext<'_>, inserts: &[NewEvent<'_>]) -> Result<i64, sqlx::Error>;

    /// Upsert documents: the new version of each changed one, a sighting of each unchanged one,
    /// and the genealogy links of manufacturing orders.
    async fn upsert_documents(&mut self, ctx: &PageContext<'_>, classified: &Classified<'_>)
    -> Result<(), sqlx::Error>;

    /// Record changes (`document_changes`) and the warnings of the documents (re)derived;
    /// returns the warnings.
    async fn record_changes(
        &mut self,
        ctx: &PageContext<'_>,
        classified: &Classified<'_>,
        changes: &[Change<'_>],
    ) -> Result<i64, sqlx::Error>;

    /// Product ids that the events of (re)derived documents use and the reference table lacks.
    async fn unknown_products(
        &mut self,
        ctx: &PageContext<'_>,
        classified: &Classified<'_>,
    ) -> Result<Vec<String>, sqlx::Error>;

    /// Whether a (re)derived order names a customer or vendor that the reference table lacks.
    async fn unknown_party(&mut self, ctx: &PageContext<'_>, classified: &Classified<'_>) -> Result<bool, sqlx::Error>;

    /// Quarantines the documents set aside, refused or unreadable, and records their warnings
    /// and the page's loose ones, counting them in the outcome.
    async fn quarantine(
        &mut self,
        ctx: &PageContext<'_>,
        quarantined: &[&Quarantine<'_>],
        loose: &[LooseWarning],
        outcome: &mut PageOutcome,
    ) -> Result<(), sqlx::Error>;

    /// Owed look-ups: a product walk for unknown products, a re-check of the adjustments for a
    /// count whose difference moved; owed in the page's transaction, so a crash cannot lose them.
    async fn owe_lookups(&mut self, ctx: &PageContext<'_>, outcome: &PageOutcome) -> Result<(), sqlx::Error>;

    /// Counters and position: the run's counters with the page's, and the walk's next position.
    async fn save_progress(&mut self, page: &PageWrite<'_>, work: &Counters) -> Result<(), sqlx::Error>;
}

for_each_connection! {
    impl PageSteps {
        async fn page_steps(&mut self, page: &PageWrite<'_>, one_by_one: bool) -> Result<Option<PageOutcome>, sqlx::Error> {
            let (docs, set_aside) = set_aside_unindexable(&page.docs);
            let ctx = PageContext::of(page);
            if let PageKind::Walk(mark) = &page.kind
                && mark.restarted
            {
                self.forget_seen(page.company_id, page.doc_type, mark.walk_id).await?;
            }
            let Some((mut outcome, refused)) = self.write_groups(&ctx, &docs, one_by_one).await? else {
                return Ok(None);
            };
            let quarantined: Vec<&Quarantine> = page.quarantine.iter().chain(&set_aside).chain(&refused).collect();
            self.quarantine(&ctx, &quarantined, &page.loose_warnings, &mut outcome).await?;
            self.owe_lookups(&ctx, &outcome).await?;
            outcome.work.pages = i64::from(page.kind.is_page());
            self.save_progress(page, &outcome.work).await?;
            Ok(Some(outcome))
        }

        async fn write_groups<'d>(
            &mut self,
            ctx: &PageContext<'_>,
            docs: &[&'d DocWrite<'d>],
            one_by_one: bool,
        ) -> Result<Option<(PageOutcome, Vec<Quarantine<'d>>)>, sqlx::Error> {
            if !one_by_one {
                return match self.write_group(ctx, docs).await {
                    Ok(outcome) => Ok(Some((outcome, Vec::new()))),
                    Err(e) if refused_value(&e) => {
                        tracing::debug!("{e}; writing the page's documents one by one");
                        Ok(None)
                    }
                    Err(e) => Err(e),
                };
            }
            let mut outcome = PageOutcome::default();
            let mut refused = Vec::new();
            for doc in docs {
                sqlx::query("SAVEPOINT document").execute(&mut *self).await?;
                match self.write_group(ctx, std::slice::from_ref(doc)).await {
                    Ok(part) => {
                        sqlx::query("RELEASE SAVEPOINT document").execute(&mut *self).await?;
                        outcome.add(part);
                    }
                    Err(e) if refused_value(&e) => {
                        sqlx::query("ROLLBACK TO SAVEPOINT document").execute(&mut *self).await?;
                        refused.push(Quarantine {
                            doc_id: Some(doc.derived.doc_id.clone()),
                            kind: "quarantined_document",
                            reason: format!("the database refused it: {}", crate::error_text(&e)),
                            raw: doc.raw_text.unwrap_or(doc.raw.get()),
                        });
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(Some((outcome, refused)))
        }

        async fn write_group(&mut self, ctx: &PageContext<'_>, docs: &[&DocWrite<'_>]) -> Result<PageOutcome, sqlx::Error> {
            let classified = self.classify(ctx, docs).await?;
            let diff = self.diff_and_retract(ctx, &classified).await?;
            let events_inserted = self.insert_events(ctx, &diff.inserts).await?;
            self.upsert_documents(ctx, &classified).await?;
            let warnings = self.record_changes(ctx, &classified, &diff.changes).await?;
            let unknown_products = self.unknown_products(ctx, &classified).await?;
            let unknown_party = self.unknown_party(ctx, &classified).await?;
            // Deriving again changes a document only where its events differ.
            let documents_changed = if ctx.rebuild { diff.changes.len() } else { classified.changed.len() };
            let work = Counters {
                pages: 0,
                documents_seen: docs.len() as i64,
                documents_changed: documents_changed as i64,
                events_inserted,
                events_retracted: diff.retracted.len() as i64,
                warnings,
            };
            Ok(PageOutcome { work, quarantined: 0, unknown_products, counts_moved: diff.counts_moved, unknown_party })
        }

        async fn classify<'d>(
            &mut self,
            ctx: &PageContext<'_>,
            docs: &[&'d DocWrite<'d>],
        ) -> Result<Classified<'d>, sqlx::Error> {
            let ids: Vec<&str> = docs.iter().map(|d| d.derived.doc_id.as_str()).collect();
            let known: HashMap<String, KnownDoc> = if ids.is_empty() {
                HashMap::new()
            } else {
                self.known_documents(ctx.company_id, ctx.doc_type, &ids).await?.into_iter().map(|k| (k.doc_id.clone(), k)).collect()
            };
            let mut classified = Classified { changed: Vec::new(), unchanged: Vec::new() };
            for doc in docs {
                let d = &doc.derived;
                match known.get(&d.doc_id) {
                    Some(k)
                        if !ctx.rebuild
                            && !k.deleted
                            && k.row_version == d.row_version
                            && k.lines_version.as_deref() == Some(d.lines_version.as_str()) =>
                    {
                        classified.unchanged.push(d.doc_id.as_str())
                    }
                    k => classified.changed.push((*doc, k.cloned())),
                }
            }
            Ok(classified)
        }

        async fn diff_and_retract<'c>(
            &mut self,
            ctx: &PageContext<'_>,
            classified: &'c Classified<'_>,
        ) -> Result<Diff<'c>, sqlx::Error> {
            // The current events of known documents that changed, to retract what is gone.
            let changed_known: Vec<&str> =
                classified.changed.iter().filter(|(_, k)| k.is_some()).map(|(d, _)| d.derived.doc_id.as_str()).collect();
            let current_rows: Vec<CurrentEvent> = if changed_known.is_empty() {
                Vec::new()
            } else {
                let mut q = QueryBuilder::new(
                    "SELECT event_id, doc_id, line_collection, line_id, serial, event_type, product_id, occurred_at, \
                     location_id, sublocation, quantity_delta FROM serial_events WHERE retracted_at IS NULL AND company_id = ",
                );
                q.push_bind(ctx.company_id).push(" AND doc_type = ").push_bind(ctx.doc_type.as_str());
                push_in(&mut q, " AND doc_id", &changed_known);
                q.build_query_as::<CurrentEvent>().persistent(false).fetch_all(&mut *self).await?
            };
            let mut current: HashMap<&str, Vec<&CurrentEvent>> = HashMap::new();
            for row in &current_rows {
                current.entry(row.doc_id.as_str()).or_default().push(row);
            }
            let mut diff = Diff { retracted: Vec::new(), inserts: Vec::new(), changes: Vec::new(), counts_moved: false };
            for (doc, known) in &classified.changed {
                let d = &doc.derived;
                let old = current.remove(d.doc_id.as_str()).unwrap_or_default();
                let (new_events, gone) = diff_events(&d.events, &old);
                diff.retracted.extend(gone.iter().copied());
                let events_differ = !new_events.is_empty() || !gone.is_empty();
                if let Some(k) = known.as_ref().filter(|_| !ctx.rebuild || events_differ) {
                    diff.changes.push(Change {
                        doc: d,
                        change: if ctx.rebuild { ctx.rebuilt } else { change_kind(k, d) },
                        old: k,
                        inserted: new_events.len() as i64,
                        retracted: gone.len() as i64,
                    });
                }
                diff.inserts.extend(new_events.into_iter().map(|event| NewEvent { doc: d, event }));
            }
            for chunk in diff.retracted.chunks(INSERT_CHUNK) {
                let mut q = QueryBuilder::new("UPDATE serial_events SET retracted_at = ");
                q.push_bind(ctx.now).push(", retracted_run_id = ").push_bind(ctx.run_id);
                push_in(&mut q, " WHERE event_id", chunk);
                q.build().persistent(false).execute(&mut *self).await?;
            }
            // A stock count whose difference (found or missing serials) came or went.
            let is_count = |t: &str| matches!(t, "count_missing" | "count_found");
            let retracted: HashSet<i64> = diff.retracted.iter().copied().collect();
            diff.counts_moved = ctx.doc_type == DocType::StockCount
                && !ctx.rebuild
                && (diff.inserts.iter().any(|n| is_count(n.event.event_type.as_str()))
                    || current_rows.iter().any(|c| retracted.contains(&c.event_id) && is_count(&c.event_type)));
            Ok(diff)
        }

        async fn insert_events(&mut self, ctx: &PageContext<'_>, inserts: &[NewEvent<'_>]) -> Result<i64, sqlx::Error> {
            let mut inserted = 0;
            for chunk in inserts.chunks(INSERT_CHUNK) {
                inserted += self.bulk_insert(&event_rows(ctx), chunk).await? as i64;
            }
            // For close matches of mistyped serials (V13).
            super::close::remember(&mut *self, ctx.company_id, inserts.iter().map(|n| n.event.serial.as_str())).await?;
            Ok(inserted)
        }

        async fn upsert_documents(&mut self, ctx: &PageContext<'_>, classified: &Classified<'_>) -> Result<(), sqlx::Error> {
            // Genealogy: a derived document's links replace its old ones.
            if ctx.doc_type == DocType::ManufacturingOrder && !classified.changed.is_empty() {
                let derived: Vec<&Derived> = classified.changed.iter().map(|(doc, _)| &doc.derived).collect();
                super::genealogy::replace_links(&mut *self, ctx.company_id, &derived, ctx.now, ctx.run_id).await?;
            }
            // Deriving again writes events only: the stored documents are what was derived.
            let stored: &[(&DocWrite, Option<KnownDoc>)] = if ctx.rebuild { &[] } else { &classified.changed };
            for chunk in stored.chunks(INSERT_CHUNK / 4) {
                let docs: Vec<&DocWrite> = chunk.iter().map(|(doc, _)| *doc).collect();
                self.bulk_insert(&document_rows(ctx), &docs).await?;
                // A stored version ends a document's quarantine.
                let keys: Vec<String> = docs.iter().map(|d| doc_key(Some(&d.derived.doc_id), "")).collect();
                let mut q = QueryBuilder::new("DELETE FROM quarantined_documents WHERE company_id = ");
                q.push_bind(ctx.company_id).push(" AND doc_type = ").push_bind(ctx.doc_type.as_str());
                push_in(&mut q, " AND doc_key", &keys);
                q.build().persistent(false).execute(&mut *self).await?;
            }
            if !classified.unchanged.is_empty() {
                let mut q = QueryBuilder::new("UPDATE documents SET last_seen_at = ");
                q.push_bind(ctx.now)
                    .push(", last_seen_run_id = ")
                    .push_bind(ctx.run_id)
                    .push(", seen_walk_id = ")
                    .push_bind(ctx.walk_id)
                    .push(" WHERE company_id = ")
                    .push_bind(ctx.company_id)
                    .push(" AND doc_type = ")
                    .push_bind(ctx.doc_type.as_str());
                push_in(&mut q, " AND doc_id", &classified.unchanged);
                q.build().persistent(false).execute(&mut *self).await?;
            }
            Ok(())
        }

        async fn record_changes(
            &mut self,
            ctx: &PageContext<'_>,
            classified: &Classified<'_>,
            changes: &[Change<'_>],
        ) -> Result<i64, sqlx::Error> {
            for chunk in changes.chunks(INSERT_CHUNK / 4) {
                self.bulk_insert(&change_rows(ctx), chunk).await?;
            }
            let warnings: Vec<(&Derived, &Warning)> = classified
                .changed
                .iter()
                .flat_map(|(doc, _)| doc.derived.warnings.iter().map(move |w| (&doc.derived, w)))
                .collect();
            for chunk in warnings.chunks(INSERT_CHUNK / 4) {
                self.bulk_insert(&warning_rows(ctx), chunk).await?;
            }
            Ok(warnings.len() as i64)
        }

        async fn unknown_products(
            &mut self,
            ctx: &PageContext<'_>,
            classified: &Classified<'_>,
        ) -> Result<Vec<String>, sqlx::Error> {
            // Unchanged documents were checked when they were stored: a product the list no
            // longer returns must not make every later run walk the products again.
            let products: Vec<&str> = classified
                .changed
                .iter()
                .flat_map(|(d, _)| d.derived.events.iter().filter_map(|e| e.product_id.as_deref()))
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            if products.is_empty() {
                return Ok(Vec::new());
            }
            let mut q = QueryBuilder::new("SELECT product_id FROM products WHERE company_id = ");
            q.push_bind(ctx.company_id);
            push_in(&mut q, " AND product_id", &products);
            let have: HashSet<String> =
                q.build_query_scalar::<String>().persistent(false).fetch_all(&mut *self).await?.into_iter().collect();
            Ok(products.iter().filter(|p| !have.contains(**p)).map(|p| p.to_string()).collect())
        }

        async fn unknown_party(&mut self, ctx: &PageContext<'_>, classified: &Classified<'_>) -> Result<bool, sqlx::Error> {
            let Some((table, column)) = party_table(ctx.doc_type) else { return Ok(false) };
            let parties: Vec<&str> = classified
                .changed
                .iter()
                .filter_map(|(d, _)| d.derived.party_id.as_deref())
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            if parties.is_empty() {
                return Ok(false);
            }
            let mut q = QueryBuilder::new(format!("SELECT count(*) FROM {table} WHERE company_id = "));
            q.push_bind(ctx.company_id);
            push_in(&mut q, &format!(" AND {column}"), &parties);
            let known: i64 = q.build_query_scalar().persistent(false).fetch_one(&mut *self).await?;
            Ok(usize::try_from(known).unwrap_or(0) < parties.len())
        }

        async fn quarantine(
            &mut self,
            ctx: &PageContext<'_>,
            quarantined: &[&Quarantine<'_>],
            loose: &[LooseWarning],
            outcome: &mut PageOutcome,
        ) -> Result<(), sqlx::Error> {
            for q in quarantined {
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
                .execute(&mut *self)
                .await?;
            }
            let rows: Vec<(Option<&str>, &str, &str)> = loose
                .iter()
                .map(|w| (w.doc_id.as_deref(), w.kind, w.detail.as_str()))
                .chain(quarantined.iter().map(|q| (q.doc_id.as_deref(), q.kind, q.reason.as_str())))
                .collect();
            for chunk in rows.chunks(INSERT_CHUNK / 4) {
                self.bulk_insert(&loose_warning_rows(ctx), chunk).await?;
            }
            outcome.work.documents_seen += quarantined.len() as i64;
            outcome.work.warnings += rows.len() as i64;
            outcome.quarantined = quarantined.len() as i64;
            Ok(())
        }

        async fn owe_lookups(&mut self, ctx: &PageContext<'_>, outcome: &PageOutcome) -> Result<(), sqlx::Error> {
            // Events whose products nobody fetched would not be noticed again: their documents
            // are unchanged next time.
            if !outcome.unknown_products.is_empty() {
                self.owe_walk(ctx.company_id, "products", ctx.run_id, ctx.now).await?;
            }
            if outcome.unknown_party
                && let Some((table, _)) = party_table(ctx.doc_type)
            {
                self.owe_walk(ctx.company_id, table, ctx.run_id, ctx.now).await?;
            }
            // Derived again at the end of the run.
            if outcome.counts_moved {
                self.owe_walk(ctx.company_id, RECHECK_ADJUSTMENTS, ctx.run_id, ctx.now).await?;
            }
            Ok(())
        }

        async fn save_progress(&mut self, page: &PageWrite<'_>, work: &Counters) -> Result<(), sqlx::Error> {
            let mut counters = page.counters;
            counters.work += *work;
            save_counters(page.run_id, &counters).build().persistent(false).execute(&mut *self).await?;
            if let PageKind::Walk(mark) = &page.kind {
                self.save_position(page.company_id, mark).await?;
            }
            Ok(())
        }
    }
}

/// The reference table (also the name of its owed walk in `sync_state`) and id column of the
/// party a document type names: sales orders' customers, purchase orders' vendors.
pub(crate) fn party_table(doc_type: DocType) -> Option<(&'static str, &'static str)> {
    match doc_type {
        DocType::SalesOrder => Some(("customers", "customer_id")),
        DocType::PurchaseOrder => Some(("vendors", "vendor_id")),
        _ => None,
    }
}

/// `serial_events`: an event already current is not inserted twice. Postgres's unique index
/// holds the serial's md5 (an index entry has a size limit, a serial has none; see V6).
fn event_rows<'a, 'e>(ctx: &PageContext<'a>) -> Bulk<'a, NewEvent<'e>> {
    Bulk {
        table: "serial_events",
        same: vec![
            ("company_id", Same::Text(ctx.company_id)),
            ("observed_at", Same::Time(ctx.now)),
            ("run_id", Same::Int8(ctx.run_id)),
        ],
        each: vec![
            ("serial", Get::Text(|n| Some(&n.event.serial))),
            ("product_id", Get::Text(|n| n.event.product_id.as_deref())),
            ("doc_type", Get::Text(|n| Some(n.doc.doc_type.as_str()))),
            ("doc_id", Get::Text(|n| Some(&n.doc.doc_id))),
            ("doc_number", Get::Text(|n| n.doc.doc_number.as_deref())),
            ("line_collection", Get::Text(|n| Some(n.event.line_collection))),
            ("line_id", Get::Text(|n| Some(&n.event.line_id))),
            ("event_type", Get::Text(|n| Some(n.event.event_type.as_str()))),
            ("occurred_at", Get::Time(|n| n.event.occurred_at)),
            ("location_id", Get::Text(|n| n.event.location_id.as_deref())),
            ("sublocation", Get::Text(|n| n.event.sublocation.as_deref())),
            ("quantity_delta", Get::Int2(|n| n.event.quantity_delta)),
            ("doc_status", Get::Text(|n| n.doc.doc_status.as_deref())),
        ],
        sqlite_tail: " ON CONFLICT (company_id, doc_type, doc_id, line_collection, line_id, serial, event_type) \
                      WHERE retracted_at IS NULL DO NOTHING",
        postgres_tail: " ON CONFLICT (company_id, doc_type, doc_id, line_collection, line_id, md5(serial), event_type) \
                        WHERE retracted_at IS NULL DO NOTHING",
    }
}

/// `documents`: a known document takes the new version; its first sighting stays.
fn document_rows<'a, 'd>(ctx: &PageContext<'a>) -> Bulk<'a, &'d DocWrite<'d>> {
    const ON_CONFLICT: &str = " ON CONFLICT (company_id, doc_type, doc_id) DO UPDATE SET doc_number = excluded.doc_number, \
         doc_date = excluded.doc_date, doc_status = excluded.doc_status, party_id = excluded.party_id, \
         row_version = excluded.row_version, lines_version = excluded.lines_version, \
         is_cancelled = excluded.is_cancelled, raw = excluded.raw, raw_text = excluded.raw_text, \
         changed_at = excluded.changed_at, \
         changed_run_id = excluded.changed_run_id, last_seen_at = excluded.last_seen_at, \
         last_seen_run_id = excluded.last_seen_run_id, seen_walk_id = excluded.seen_walk_id, \
         deleted_at = NULL, deleted_run_id = NULL";
    Bulk {
        table: "documents",
        same: vec![
            ("company_id", Same::Text(ctx.company_id)),
            ("first_seen_at", Same::Time(ctx.now)),
            ("first_run_id", Same::Int8(ctx.run_id)),
            ("changed_at", Same::Time(ctx.now)),
            ("changed_run_id", Same::Int8(ctx.run_id)),
            ("last_seen_at", Same::Time(ctx.now)),
            ("last_seen_run_id", Same::Int8(ctx.run_id)),
            ("seen_walk_id", Same::MaybeInt8(ctx.walk_id)),
        ],
        each: vec![
            ("doc_type", Get::Text(|d| Some(d.derived.doc_type.as_str()))),
            ("doc_id", Get::Text(|d| Some(&d.derived.doc_id))),
            ("doc_number", Get::Text(|d| d.derived.doc_number.as_deref())),
            ("doc_date", Get::Time(|d| d.derived.doc_date)),
            ("doc_status", Get::Text(|d| d.derived.doc_status.as_deref())),
            ("party_id", Get::Text(|d| d.derived.party_id.as_deref())),
            ("row_version", Get::Text(|d| d.derived.row_version.as_deref())),
            ("lines_version", Get::Text(|d| Some(&d.derived.lines_version))),
            ("is_cancelled", Get::Bool(|d| d.derived.is_cancelled)),
            ("raw", Get::Json(|d| d.raw)),
            ("raw_text", Get::Text(|d| d.raw_text)),
        ],
        sqlite_tail: ON_CONFLICT,
        postgres_tail: ON_CONFLICT,
    }
}

/// `document_changes`: one row per document whose version or events changed.
fn change_rows<'a, 'c>(ctx: &PageContext<'a>) -> Bulk<'a, Change<'c>> {
    Bulk {
        table: "document_changes",
        same: vec![
            ("company_id", Same::Text(ctx.company_id)),
            ("run_id", Same::Int8(ctx.run_id)),
            ("observed_at", Same::Time(ctx.now)),
        ],
        each: vec![
            ("doc_type", Get::Text(|c| Some(c.doc.doc_type.as_str()))),
            ("doc_id", Get::Text(|c| Some(&c.doc.doc_id))),
            ("doc_number", Get::Text(|c| c.doc.doc_number.as_deref())),
            ("change", Get::Text(|c| Some(c.change))),
            ("old_row_version", Get::Text(|c| c.old.row_version.as_deref())),
            ("new_row_version", Get::Text(|c| c.doc.row_version.as_deref())),
            ("old_lines_version", Get::Text(|c| c.old.lines_version.as_deref())),
            ("new_lines_version", Get::Text(|c| Some(&c.doc.lines_version))),
            ("events_inserted", Get::Int8(|c| c.inserted)),
            ("events_retracted", Get::Int8(|c| c.retracted)),
        ],
        sqlite_tail: "",
        postgres_tail: "",
    }
}

/// `run_warnings` about the data of (re)derived documents.
fn warning_rows<'a, 'w>(ctx: &PageContext<'a>) -> Bulk<'a, (&'w Derived, &'w Warning)> {
    Bulk {
        table: "run_warnings",
        same: vec![("run_id", Same::Int8(ctx.run_id)), ("company_id", Same::Text(ctx.company_id))],
        each: vec![
            ("doc_type", Get::Text(|(d, _)| Some(d.doc_type.as_str()))),
            ("doc_id", Get::Text(|(d, _)| Some(&d.doc_id))),
            ("doc_number", Get::Text(|(d, _)| d.doc_number.as_deref())),
            ("line_collection", Get::Text(|(_, w)| w.line_collection)),
            ("line_id", Get::Text(|(_, w)| w.line_id.as_deref())),
            ("kind", Get::Text(|(_, w)| Some(w.kind.as_str()))),
            ("detail", Get::Text(|(_, w)| Some(&w.detail))),
        ],
        sqlite_tail: "",
        postgres_tail: "",
    }
}

/// `run_warnings` not tied to a derived document: (id, kind, detail).
fn loose_warning_rows<'a, 'w>(ctx: &PageContext<'a>) -> Bulk<'a, (Option<&'w str>, &'w str, &'w str)> {
    Bulk {
        table: "run_warnings",
        same: vec![
            ("run_id", Same::Int8(ctx.run_id)),
            ("company_id", Same::Text(ctx.company_id)),
            ("doc_type", Same::Text(ctx.doc_type.as_str())),
        ],
        each: vec![
            ("doc_id", Get::Text(|(id, _, _)| *id)),
            ("kind", Get::Text(|(_, kind, _)| Some(kind))),
            ("detail", Get::Text(|(_, _, detail)| Some(detail))),
        ],
        sqlite_tail: "",
        postgres_tail: "",
    }
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

/// Which derived events are new, and which current ones (by id) are no longer there.
/// An event whose key stays but whose place, time or product changed is both.
fn diff_events<'e>(derived: &'e [EventDraft], current: &[&CurrentEvent]) -> (Vec<&'e EventDraft>, Vec<i64>) {
    let by_key: HashMap<(&str, &str, &str, &str), &CurrentEvent> = current
        .iter()
        .map(|&c| ((c.line_collection.as_str(), c.line_id.as_str(), c.serial.as_str(), c.event_type.as_str()), c))
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
