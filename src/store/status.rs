//! What `audit status` reports: per company and stream, what is held and where walks stand.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::runs::Counters;
use super::{Context, Store, StoreError, on_pool};

/// One stream of one company (`audit status`): what the database holds of it and where its walks
/// stand.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct StreamStatus {
    /// The stream's name (`sales-orders`, `purchase-orders`...).
    pub stream: String,
    /// Stored documents of the stream that are not deleted.
    pub documents: i64,
    /// Stored documents a complete walk no longer returned.
    pub documents_deleted: i64,
    /// Documents dated within the last 30 days (the default window).
    pub documents_last_30_days: i64,
    /// Serial events of the stream's documents that stand.
    pub events: i64,
    /// Serial events of the stream's documents that were retracted.
    pub events_retracted: i64,
    /// The lower date bound kept from `--since`, if one was given.
    pub since: Option<NaiveDate>,
    /// The unfinished walk's kind (`complete` or `window`); `None` when no walk is unfinished.
    pub walk_kind: Option<String>,
    /// Where the unfinished walk resumes.
    pub walk_position: Option<String>,
    /// When the unfinished walk started.
    pub walk_started_at: Option<DateTime<Utc>>,
    /// Documents the unfinished walk has read so far.
    pub walk_seen: Option<i64>,
    /// When the last complete walk that proved it saw every document ended.
    pub last_complete_at: Option<DateTime<Utc>>,
    /// When the last window walk ended.
    pub last_window_at: Option<DateTime<Utc>>,
}

/// One run of `ingest_runs`, as `audit status` lists the recent ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RunRow {
    /// The run's id, in the order the runs started.
    pub run_id: i64,
    /// The command that ran (`ingest`, `rebuild`, `snapshot`...).
    pub command: String,
    /// `running`, `succeeded`, `stopped`, `failed` or `interrupted`.
    pub status: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it ended; `None` while it runs, or for a dead run until a later run marks it
    /// `interrupted`.
    pub finished_at: Option<DateTime<Utc>>,
    /// API requests the run made.
    pub requests: i64,
    /// What the run did: pages, documents, events and warnings.
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub work: Counters,
    /// 429 (rate limited) answers the run received.
    pub rate_limited: i64,
    /// Why the run did not succeed, when a reason was recorded.
    pub error: Option<String>,
}

impl Store {
    /// Companies with anything recorded.
    pub async fn companies(&self) -> Result<Vec<String>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT company_id FROM ingest_runs UNION SELECT company_id FROM documents ORDER BY company_id",
            )
            .fetch_all(pool)
            .await
            .context(|| "listing companies".into())
        })
    }

    /// Whether the database holds nothing but ended runs of `company_id`: no document, no run
    /// of another company, no run still going and no lock held. A failed first ingest removes
    /// the file it created only then, so that a process that opened it meanwhile keeps it.
    pub async fn holds_only_ended_runs_of(&self, company_id: &str) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT NOT (EXISTS (SELECT 1 FROM documents) \
                 OR EXISTS (SELECT 1 FROM ingest_runs WHERE company_id <> $1 OR status = 'running') \
                 OR EXISTS (SELECT 1 FROM ingest_locks))",
            )
            .bind(company_id)
            .fetch_one(pool)
            .await
            .context(|| "looking for others' data".into())
        })
    }

    /// Whether the database holds anything of `company_id` (runs, documents or events).
    pub async fn has_company(&self, company_id: &str) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM ingest_runs WHERE company_id = $1) \
                 OR EXISTS (SELECT 1 FROM documents WHERE company_id = $1) \
                 OR EXISTS (SELECT 1 FROM serial_events WHERE company_id = $1)",
            )
            .bind(company_id)
            .fetch_one(pool)
            .await
            .context(|| format!("looking for company {company_id}"))
        })
    }

    /// One stream's status for `company_id`: the counts of documents and events of type
    /// `doc_type`, and the walk state kept under `stream`.
    pub async fn stream_status(
        &self,
        company_id: &str,
        stream: &str,
        doc_type: &str,
    ) -> Result<StreamStatus, StoreError> {
        let what = || format!("reading the status of {stream}");
        let month_ago = Utc::now() - chrono::Duration::days(30);
        let counts = on_pool!(self, pool => {
            let (documents, documents_deleted, documents_last_30_days): (i64, i64, i64) = sqlx::query_as(
                "SELECT COALESCE(SUM(CASE WHEN deleted_at IS NULL THEN 1 ELSE 0 END), 0), \
                        COALESCE(SUM(CASE WHEN deleted_at IS NULL THEN 0 ELSE 1 END), 0), \
                        COALESCE(SUM(CASE WHEN deleted_at IS NULL AND doc_date >= $3 THEN 1 ELSE 0 END), 0) \
                 FROM documents WHERE company_id = $1 AND doc_type = $2",
            )
            .bind(company_id)
            .bind(doc_type)
            .bind(month_ago)
            .fetch_one(pool)
            .await
            .context(what)?;
            let (events, events_retracted): (i64, i64) = sqlx::query_as(
                "SELECT COALESCE(SUM(CASE WHEN retracted_at IS NULL THEN 1 ELSE 0 END), 0), \
                        COALESCE(SUM(CASE WHEN retracted_at IS NULL THEN 0 ELSE 1 END), 0) \
                 FROM serial_events WHERE company_id = $1 AND doc_type = $2",
            )
            .bind(company_id)
            .bind(doc_type)
            .fetch_one(pool)
            .await
            .context(what)?;
            Ok::<_, StoreError>((documents, documents_deleted, documents_last_30_days, events, events_retracted))
        })?;
        let (documents, documents_deleted, documents_last_30_days, events, events_retracted) = counts;
        let state = self.sync_state(company_id, stream).await?;
        Ok(StreamStatus {
            stream: stream.to_string(),
            documents,
            documents_deleted,
            documents_last_30_days,
            events,
            events_retracted,
            since: state.since,
            walk_kind: state.walk_kind,
            walk_position: state.walk_position,
            walk_started_at: state.walk_started_at,
            walk_seen: state.walk_seen,
            last_complete_at: state.last_complete_at,
            last_window_at: state.last_window_at,
        })
    }

    /// Every stream's status, in the order `audit ingest` walks them.
    pub async fn streams_status(&self, company_id: &str) -> Result<Vec<StreamStatus>, StoreError> {
        let mut out = Vec::new();
        for doc_type in crate::mapping::DocType::ALL {
            out.push(self.stream_status(company_id, doc_type.stream(), doc_type.as_str()).await?);
        }
        Ok(out)
    }

    /// The company's latest `limit` runs, newest first.
    pub async fn recent_runs(&self, company_id: &str, limit: i64) -> Result<Vec<RunRow>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT run_id, command, status, started_at, finished_at, requests, pages, documents_seen, \
                 documents_changed, events_inserted, events_retracted, warnings, rate_limited, error \
                 FROM ingest_runs WHERE company_id = $1 ORDER BY run_id DESC LIMIT $2",
            )
            .bind(company_id)
            .bind(limit)
            .fetch_all(pool)
            .await
            .context(|| "reading recent runs".into())
        })
    }

    /// Requests of runs that started or were still running within the last hour: what `audit`
    /// took of the hourly quota (other integrations come on top). A run left unfinished counts
    /// only while a live process holds the company's lock: one killed long ago is not running.
    pub async fn requests_last_hour(&self, company_id: &str) -> Result<i64, StoreError> {
        let now = Utc::now();
        let hour_ago = now - chrono::Duration::hours(1);
        let alive_since = now - chrono::Duration::from_std(super::lock::STALE_AFTER).expect("a short duration");
        on_pool!(self, pool => {
            sqlx::query_scalar::<_, Option<i64>>(
                "SELECT CAST(SUM(requests) AS BIGINT) FROM ingest_runs \
                 WHERE company_id = $1 AND (started_at >= $2 OR finished_at >= $2 OR (finished_at IS NULL AND EXISTS \
                 (SELECT 1 FROM ingest_locks l WHERE l.company_id = $1 AND l.heartbeat_at >= $3)))",
            )
            .bind(company_id)
            .bind(hour_ago)
            .bind(alive_since)
            .fetch_one(pool)
            .await
            .map(Option::unwrap_or_default)
            .context(|| "counting recent requests".into())
        })
    }
}
