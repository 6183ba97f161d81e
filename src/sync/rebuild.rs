//! `audit rebuild`, and the re-check of stock adjustments: documents derived again from what is
//! stored, without a request.

use chrono::Utc;
use serde_json::value::RawValue;

use super::derive::{derive_stored, storable_forms};
use super::record::{RunRecord, Worked};
use super::{Progress, RunCounters, RunStatus, RunSummary, StopFlag, StopReason, StreamSummary, SyncError};
use crate::mapping::DocType;
use crate::store::Store;
use crate::store::walks::RECHECK_ADJUSTMENTS;
use crate::store::write::{PageKind, PageWrite};

/// Stored documents derived again per batch.
const BATCH: i64 = 200;

/// Derives every event again from the stored documents of one company, without any request.
/// Recorded as a run of command `rebuild`. It stops between batches when `stop` is set (the
/// company's lock taken over, say); a later rebuild does the whole again.
pub async fn rebuild(
    store: &Store,
    company_id: &str,
    progress: &dyn Progress,
    stop: &StopFlag,
) -> Result<RunSummary, SyncError> {
    let arguments = serde_json::json!({});
    let record = RunRecord { store, company_id, command: "rebuild", arguments: &arguments, client: None, stop: None };
    record
        .run(|run_id| async move {
            let mut counters = RunCounters::default();
            let mut streams = Vec::new();
            let result = rebuild_streams(store, company_id, run_id, progress, stop, &mut counters, &mut streams).await;
            let result = result.map(|stopped| {
                let status = if stopped.is_some() { RunStatus::Stopped } else { RunStatus::Succeeded };
                (RunSummary { run_id, status, stop: stopped, streams, counters }, status)
            });
            Worked { result, counters }
        })
        .await
}

/// Every stream in turn, then the stock adjustments against the counts derived again.
async fn rebuild_streams(
    store: &Store,
    company_id: &str,
    run_id: i64,
    progress: &dyn Progress,
    stop: &StopFlag,
    counters: &mut RunCounters,
    streams: &mut Vec<StreamSummary>,
) -> Result<Option<StopReason>, SyncError> {
    for doc_type in DocType::ALL {
        let stream = doc_type.stream();
        let mut summary = StreamSummary { stream, kind: "rebuild", ..StreamSummary::default() };
        progress.stream_started(stream, None);
        let mut after = String::new();
        loop {
            if let Some(reason) = stop.reason() {
                streams.push(summary);
                return Ok(Some(reason));
            }
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
                    counters: *counters,
                })
                .await?;
            counters.work += outcome.work;
            summary.work += outcome.work;
            progress.page_written(stream, &summary, 0, None);
        }
        summary.complete = true;
        progress.stream_finished(&summary);
        streams.push(summary);
    }
    // Every count was derived again before the adjustments; this settles any adjustment whose
    // count changed since (and clears a recheck an ingest still owed).
    *counters = recheck_adjustments(store, company_id, run_id, *counters).await?;
    store.complete_walk(company_id, RECHECK_ADJUSTMENTS, run_id).await?;
    Ok(None)
}

/// Derives again the stored stock adjustments that the stored counts may have made (see
/// [`Store::adjustments_to_recheck`]); an unchanged one costs nothing but the derivation.
/// Returns the run's counters with what changed.
pub(super) async fn recheck_adjustments(
    store: &Store,
    company_id: &str,
    run_id: i64,
    mut counters: RunCounters,
) -> Result<RunCounters, SyncError> {
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
        // Not a page of a walk: the outcome counts none.
        counters.work += outcome.work;
    }
    Ok(counters)
}
