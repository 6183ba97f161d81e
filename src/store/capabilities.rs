//! `api_capabilities`: what `audit doctor` and the ingest learnt about a company's inFlow API.
//!
//! One row per answer and company, the latest kept, with when it was checked, by what, and
//! under which API version. The ingest reads the paging mode of each stream, what `X-listCount`
//! counts and what the rate headers count, and records what it had to learn itself.

use chrono::{DateTime, Utc};

use super::{Context, Store, StoreError, WritePool, on_pool};

/// A recorded answer.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct Capability {
    /// What was learnt: `paging:<stream>`, `list_count`, `rate_headers`, ...
    pub name: String,
    /// The answer.
    pub value: String,
    /// Why, in words.
    pub detail: Option<String>,
    /// The API version it was learnt with.
    pub api_version: Option<String>,
    /// Who learnt it: `doctor` or `ingest`.
    pub source: String,
    /// When.
    pub checked_at: DateTime<Utc>,
}

impl Capability {
    /// A capability learnt now (source and version are set when it is recorded).
    pub fn new(name: impl Into<String>, value: impl Into<String>, detail: Option<String>) -> Capability {
        Capability {
            name: name.into(),
            value: value.into(),
            detail,
            api_version: None,
            source: String::new(),
            checked_at: Utc::now(),
        }
    }
}

/// The row name of a stream's paging mode.
pub fn paging_key(stream: &str) -> String {
    format!("paging:{stream}")
}

/// The row name of whether a stream's list honours a descending sort on its date (`audit
/// doctor` and newest-first `--window` walks record it): [`DATE_SORT_HONOURED`],
/// [`DATE_SORT_IGNORED`], [`DATE_SORT_REFUSED`], or doctor's [`DATE_SORT_UNKNOWN`].
pub fn date_sort_key(stream: &str) -> String {
    format!("sort_date:{stream}")
}

/// The dates descended (doctor), or every page of a newest-first walk was in order.
pub const DATE_SORT_HONOURED: &str = "honoured";

/// The dates did not descend: a page out of order.
pub const DATE_SORT_IGNORED: &str = "ignored";

/// The server answered the sort with a 400 (doctor's word too).
pub const DATE_SORT_REFUSED: &str = "refused";

/// Doctor could not tell (fewer than two distinct dates).
pub const DATE_SORT_UNKNOWN: &str = "unknown";

/// The row name of what `X-listCount` counts.
pub const LIST_COUNT: &str = "list_count";

/// The row name of what the rate headers count.
pub const RATE_HEADERS: &str = "rate_headers";

/// The row name of whether completing a stock count creates adjustments the API lists.
pub const COUNT_ADJUSTMENTS: &str = "count_adjustments";

impl Store {
    /// Every recorded answer for a company, by name.
    pub async fn capabilities(&self, company_id: &str) -> Result<Vec<Capability>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT name, value, detail, api_version, source, checked_at FROM api_capabilities \
                 WHERE company_id = $1 ORDER BY name",
            )
            .bind(company_id)
            .fetch_all(pool)
            .await
            .context(|| "reading what is known of the inFlow API".into())
        })
    }

    /// One recorded capability of a company.
    pub async fn capability(&self, company_id: &str, name: &str) -> Result<Option<Capability>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT name, value, detail, api_version, source, checked_at FROM api_capabilities \
                 WHERE company_id = $1 AND name = $2",
            )
            .bind(company_id)
            .bind(name)
            .fetch_optional(pool)
            .await
            .context(|| format!("reading what is known of the inFlow API ({name})"))
        })
    }

    /// Records answers (replacing earlier ones of the same names) in one transaction, stamped
    /// with the source, API version and their own check time.
    pub async fn record_capabilities(
        &self,
        company_id: &str,
        source: &str,
        api_version: &str,
        answers: &[Capability],
    ) -> Result<(), StoreError> {
        let what = || "recording what was learnt of the inFlow API".to_string();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await.context(what)?;
            for a in answers {
                sqlx::query(
                    "INSERT INTO api_capabilities (company_id, name, value, detail, api_version, source, checked_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (company_id, name) DO UPDATE SET value = excluded.value, detail = excluded.detail, \
                     api_version = excluded.api_version, source = excluded.source, checked_at = excluded.checked_at",
                )
                .bind(company_id)
                .bind(&a.name)
                .bind(&a.value)
                .bind(&a.detail)
                .bind(api_version)
                .bind(source)
                .bind(a.checked_at)
                .execute(&mut *tx)
                .await
                .context(what)?;
            }
            tx.commit().await.context(what)?;
            Ok(())
        })
    }
}
