//! Walk bookkeeping: each stream's saved position in `sync_state`, the start and end of a
//! walk, what a walk did not return, and work owed to a later step of a run.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::QueryBuilder;

use super::runs::{Counters, RunCounters, save_counters};
use super::{Context, Store, StoreError, WritePool, for_each_connection, on_pool};
use crate::mapping::DocType;

/// The `sync_state` stream that owes a recheck of the stock adjustments against the counts.
pub const RECHECK_ADJUSTMENTS: &str = "count-adjustments";

/// A stream's row of `sync_state`.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct SyncState {
    /// `--since`, remembered for later runs.
    pub since: Option<NaiveDate>,
    /// The unfinished walk, if any: the run that started it.
    pub walk_id: Option<i64>,
    /// `complete` or `window`.
    pub walk_kind: Option<String>,
    /// The unfinished walk's date bound.
    pub walk_from: Option<NaiveDate>,
    /// How the unfinished walk pages.
    pub walk_paging: Option<String>,
    /// Where the unfinished walk resumes (see `inflow::walk::Position`).
    pub walk_position: Option<String>,
    /// When the unfinished walk started.
    pub walk_started_at: Option<DateTime<Utc>>,
    /// Documents the unfinished walk's pass has returned.
    pub walk_seen: Option<i64>,
    /// The `X-listCount` the pass started with.
    pub walk_list_count: Option<i64>,
    /// Why the pass cannot prove it returns every document.
    pub walk_unproven: Option<String>,
    /// When the last complete walk ended.
    pub last_complete_at: Option<DateTime<Utc>>,
    /// When the last window walk ended.
    pub last_window_at: Option<DateTime<Utc>>,
}

/// Where a walk stands after a page: saved with the page.
#[derive(Debug, Clone)]
pub struct WalkMark<'a> {
    /// The stream (the `sync_state` row).
    pub stream: &'static str,
    /// The walk: the run that started it (a snapshot's id for `stock`).
    pub walk_id: i64,
    /// `complete` or `window`.
    pub kind: &'a str,
    /// The walk's date bound.
    pub from: Option<NaiveDate>,
    /// How the walk pages now.
    pub paging: &'static str,
    /// Where the walk goes next, encoded.
    pub position: String,
    /// How messages name the page: `ending with document ...`, `ending before skip=...`.
    pub place: String,
    /// What the walk's pass has seen (see `inflow::walk::Pass`): documents returned, the
    /// `X-listCount` it started with (-1 once it moved), why it cannot prove completeness.
    pub seen: i64,
    /// The `X-listCount` the pass started with.
    pub list_count: Option<i64>,
    /// Why the pass cannot prove it returns every document.
    pub unproven: Option<String>,
    /// The first page of a pass that started the stream over (a lost position, a fallback):
    /// what the walk saw before no longer counts as seen, so that a document deleted since is
    /// found missing at the end.
    pub restarted: bool,
}

/// How a walk ended, for [`Store::finish_walk`].
pub struct WalkEnd<'a> {
    /// The company.
    pub company_id: &'a str,
    /// The run ending the walk.
    pub run_id: i64,
    /// The stream's document type.
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

impl Store {
    /// A stream's saved state (empty when it was never walked).
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

    /// Ends a walk that checks nothing for deletion (a reference list such as `products`, the
    /// stock snapshot, the adjustment recheck): clears its position and records when, and in
    /// which run, it completed.
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

    /// The newest date among a stream's stored documents not marked deleted: a server's newest
    /// first must not start older than that (a newest-first walk checks its first page by it).
    pub async fn newest_stored_date(
        &self,
        company_id: &str,
        doc_type: DocType,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT doc_date FROM documents WHERE company_id = $1 AND doc_type = $2 AND deleted_at IS NULL \
                 AND doc_date IS NOT NULL ORDER BY doc_date DESC LIMIT 1",
            )
            .bind(company_id)
            .bind(doc_type.as_str())
            .fetch_optional(pool)
            .await
            .context(|| format!("reading the newest stored {}", doc_type.stream()))
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
    /// Returns what that retracted.
    pub async fn finish_walk(&self, end: WalkEnd<'_>) -> Result<Counters, StoreError> {
        let stream = end.doc_type.stream();
        let what = || format!("recording the end of the {stream} walk");
        let now = Utc::now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await.context(what)?;
            let mut done = Counters::default();
            for doc_id in end.deleted {
                done.events_retracted += tx.mark_deleted(&end, doc_id, now).await.context(what)?;
            }
            tx.end_walk(&end, now).await.context(what)?;
            let mut counters = end.counters;
            counters.work += done;
            save_counters(end.run_id, &counters).build().persistent(false).execute(&mut *tx).await.context(what)?;
            tx.commit().await.context(what)?;
            Ok(done)
        })
    }
}

/// The steps of a walk's bookkeeping inside a page's or a walk end's transaction.
pub(super) trait WalkSteps {
    /// Marks a document confirmed gone from inFlow as deleted, retracting its events and
    /// recording the change; returns the events retracted.
    async fn mark_deleted(&mut self, end: &WalkEnd<'_>, doc_id: &str, now: DateTime<Utc>) -> Result<i64, sqlx::Error>;

    /// Records the walk as ended: its position cleared (unless it was made beside an
    /// unfinished complete walk) and the time of the last complete or window walk set.
    async fn end_walk(&mut self, end: &WalkEnd<'_>, now: DateTime<Utc>) -> Result<(), sqlx::Error>;

    /// Saves where the walk goes after a page.
    async fn save_position(&mut self, company_id: &str, mark: &WalkMark<'_>) -> Result<(), sqlx::Error>;

    /// A pass that started the stream over: what the walk saw before no longer counts as seen,
    /// so that a document deleted since is found missing at the end.
    async fn forget_seen(&mut self, company_id: &str, doc_type: DocType, walk_id: i64) -> Result<(), sqlx::Error>;

    /// Marks work owed to a later step of the run (or the next run): a walk of `stream` is due.
    async fn owe_walk(
        &mut self,
        company_id: &str,
        stream: &str,
        run_id: i64,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error>;
}

for_each_connection! {
    impl WalkSteps {
        async fn mark_deleted(&mut self, end: &WalkEnd<'_>, doc_id: &str, now: DateTime<Utc>) -> Result<i64, sqlx::Error> {
            let retracted = sqlx::query(
                "UPDATE serial_events SET retracted_at = $1, retracted_run_id = $2 \
                 WHERE company_id = $3 AND doc_type = $4 AND doc_id = $5 AND retracted_at IS NULL",
            )
            .bind(now)
            .bind(end.run_id)
            .bind(end.company_id)
            .bind(end.doc_type.as_str())
            .bind(doc_id)
            .execute(&mut *self)
            .await?
            .rows_affected() as i64;
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
            .execute(&mut *self)
            .await?;
            sqlx::query("DELETE FROM genealogy_links WHERE company_id = $1 AND doc_type = $2 AND doc_id = $3")
                .bind(end.company_id)
                .bind(end.doc_type.as_str())
                .bind(doc_id)
                .execute(&mut *self)
                .await?;
            sqlx::query(
                "UPDATE documents SET deleted_at = $1, deleted_run_id = $2 WHERE company_id = $3 AND doc_type = $4 AND doc_id = $5",
            )
            .bind(now)
            .bind(end.run_id)
            .bind(end.company_id)
            .bind(end.doc_type.as_str())
            .bind(doc_id)
            .execute(&mut *self)
            .await?;
            Ok(retracted)
        }

        async fn end_walk(&mut self, end: &WalkEnd<'_>, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
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
            if set.is_empty() {
                return Ok(());
            }
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
            query.bind(end.company_id).bind(end.doc_type.stream()).execute(&mut *self).await?;
            Ok(())
        }

        async fn save_position(&mut self, company_id: &str, mark: &WalkMark<'_>) -> Result<(), sqlx::Error> {
            sqlx::query(
                "UPDATE sync_state SET walk_paging = $1, walk_position = $2, walk_seen = $3, walk_list_count = $4, \
                 walk_unproven = $5 WHERE company_id = $6 AND stream = $7 AND walk_id = $8",
            )
            .bind(mark.paging)
            .bind(&mark.position)
            .bind(mark.seen)
            .bind(mark.list_count)
            .bind(&mark.unproven)
            .bind(company_id)
            .bind(mark.stream)
            .bind(mark.walk_id)
            .execute(&mut *self)
            .await?;
            Ok(())
        }

        async fn forget_seen(&mut self, company_id: &str, doc_type: DocType, walk_id: i64) -> Result<(), sqlx::Error> {
            sqlx::query(
                "UPDATE documents SET seen_walk_id = NULL WHERE company_id = $1 AND doc_type = $2 AND seen_walk_id = $3",
            )
            .bind(company_id)
            .bind(doc_type.as_str())
            .bind(walk_id)
            .execute(&mut *self)
            .await?;
            Ok(())
        }

        async fn owe_walk(&mut self, company_id: &str, stream: &str, run_id: i64, now: DateTime<Utc>)
        -> Result<(), sqlx::Error> {
            sqlx::query(
                "INSERT INTO sync_state (company_id, stream, walk_id, walk_kind, walk_paging, walk_position, walk_started_at) \
                 VALUES ($1, $2, $3, 'complete', 'keyset', '', $4) \
                 ON CONFLICT (company_id, stream) DO UPDATE SET walk_id = COALESCE(sync_state.walk_id, excluded.walk_id), \
                 walk_kind = excluded.walk_kind, walk_started_at = COALESCE(sync_state.walk_started_at, excluded.walk_started_at)",
            )
            .bind(company_id)
            .bind(stream)
            .bind(run_id)
            .bind(now)
            .execute(&mut *self)
            .await?;
            Ok(())
        }
    }
}
