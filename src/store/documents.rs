//! Stored documents read back to be derived again (`audit rebuild`, the re-check of stock
//! adjustments), and what stored stock counts say about serials.

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use sqlx::QueryBuilder;
use sqlx::types::Json;

use super::write::{INSERT_CHUNK, push_in};
use super::{Context, Store, StoreError, on_pool};
use crate::mapping::DocType;
use crate::mapping::stock_count::CountEvidence;

impl Store {
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
}
