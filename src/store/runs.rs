//! Run bookkeeping: the `ingest_runs` rows of ingests, snapshots and rebuilds, their counters
//! and the warnings about a run itself.

use std::ops::AddAssign;

use chrono::Utc;
use sqlx::QueryBuilder;
use sqlx::types::Json;

use super::{Context, Store, StoreError, on_pool};
use crate::mapping::DocType;

/// What a page, a stream's walk or a whole run did to the documents and events: one type, added
/// up with `+=` from pages to streams to runs, and flattened into rows and JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct Counters {
    /// Pages of a walk (or batches of a rebuild); documents fetched one by one are no page.
    pub pages: i64,
    /// Documents read (quarantined ones included).
    pub documents_seen: i64,
    /// New or changed documents; for a rebuild, documents whose events changed.
    pub documents_changed: i64,
    /// Serial events added.
    pub events_inserted: i64,
    /// Serial events retracted (their document changed or went).
    pub events_retracted: i64,
    /// Warnings recorded in `run_warnings`.
    pub warnings: i64,
}

impl AddAssign for Counters {
    fn add_assign(&mut self, other: Counters) {
        self.pages += other.pages;
        self.documents_seen += other.documents_seen;
        self.documents_changed += other.documents_changed;
        self.events_inserted += other.events_inserted;
        self.events_retracted += other.events_retracted;
        self.warnings += other.warnings;
    }
}

/// The counters of an `ingest_runs` row: the work done, and what it cost in requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunCounters {
    /// Requests sent to inFlow.
    pub requests: i64,
    /// What the run did.
    #[serde(flatten)]
    pub work: Counters,
    /// Requests answered 429.
    pub rate_limited: i64,
    /// Requests sent again after a failure.
    pub retries: i64,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Still running (or its process died without a trace yet).
    Running,
    /// Every walk reached its end.
    Succeeded,
    /// Stopped cleanly before the end (request budget, signal); the position is saved.
    Stopped,
    /// Ended by an error, recorded with the run.
    Failed,
    /// Found still `running` by a later run: its process died.
    Interrupted,
}

impl RunStatus {
    /// The status as `ingest_runs.status` stores it.
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
}

/// `UPDATE ingest_runs SET status = 'running'` with these counters, for `run_id`: saved in the
/// transaction of each page, so a killed run's row says what it had done.
pub(super) fn save_counters<DB>(run_id: i64, counters: &RunCounters) -> QueryBuilder<DB>
where
    DB: sqlx::Database,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut q = QueryBuilder::new("UPDATE ingest_runs SET status = 'running'");
    push_counters(&mut q, counters);
    q.push(" WHERE run_id = ").push_bind(run_id);
    q
}

fn push_counters<DB>(q: &mut QueryBuilder<DB>, c: &RunCounters)
where
    DB: sqlx::Database,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let w = &c.work;
    for (column, value) in [
        ("requests", c.requests),
        ("pages", w.pages),
        ("documents_seen", w.documents_seen),
        ("documents_changed", w.documents_changed),
        ("events_inserted", w.events_inserted),
        ("events_retracted", w.events_retracted),
        ("warnings", w.warnings),
        ("rate_limited", c.rate_limited),
        ("retries", c.retries),
    ] {
        q.push(format!(", {column} = ")).push_bind(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_field_by_field() {
        let page = Counters {
            pages: 1,
            documents_seen: 100,
            documents_changed: 3,
            events_inserted: 7,
            events_retracted: 2,
            warnings: 1,
        };
        let mut total = Counters::default();
        total += page;
        total += page;
        assert_eq!(
            total,
            Counters {
                pages: 2,
                documents_seen: 200,
                documents_changed: 6,
                events_inserted: 14,
                events_retracted: 4,
                warnings: 2
            }
        );
    }

    #[test]
    fn run_counters_serialise_flat() {
        let c =
            RunCounters { requests: 5, work: Counters { pages: 2, ..Counters::default() }, ..RunCounters::default() };
        let json = serde_json::to_value(c).unwrap();
        assert_eq!(json["requests"], 5);
        assert_eq!(json["pages"], 2);
        assert!(json.get("work").is_none());
    }
}
