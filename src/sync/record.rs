//! The `ingest_runs` row around every run of the engine, written once for all of them.

use std::future::Future;

use super::{RunCounters, RunStatus, StopFlag, SyncError};
use crate::inflow::Client;
use crate::store::Store;

/// How long the record of a run abandoned by a second signal may take before the process gives
/// up on it (a later run marks the run interrupted anyway).
const RECORD_INTERRUPTED_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// A run to record: which command, for which company, with what.
pub(crate) struct RunRecord<'a> {
    pub store: &'a Store,
    pub company_id: &'a str,
    /// `ingest`, `snapshot`, `rebuild`.
    pub command: &'static str,
    pub arguments: &'a serde_json::Value,
    /// The client of a run that talks to inFlow: its API version is recorded, and its key is
    /// redacted from a failure's text.
    pub client: Option<&'a Client>,
    /// A forced stop (a second signal) abandons the work and records the run as interrupted.
    pub stop: Option<&'a StopFlag>,
}

/// What a run's work came to: its value and the status to record, or its error; and its
/// counters either way.
pub(crate) struct Worked<T> {
    pub result: Result<(T, RunStatus), SyncError>,
    pub counters: RunCounters,
}

impl RunRecord<'_> {
    /// Records the run's start, does the work (given the run's id), and records how it ended:
    /// the status and counters it reports, or `failed` with the error's text.
    pub(crate) async fn run<T, Fut>(self, work: impl FnOnce(i64) -> Fut) -> Result<T, SyncError>
    where
        Fut: Future<Output = Worked<T>>,
    {
        let store = self.store;
        let api_version = self.client.map(|c| c.config().api_version.as_str());
        let run_id = store.begin_run(self.company_id, self.command, self.arguments, api_version).await?;
        let recorded = async {
            let Worked { result, counters } = work(run_id).await;
            match result {
                Ok((value, status)) => {
                    store.finish_run(run_id, status, &counters, None).await?;
                    Ok(value)
                }
                Err(err) => {
                    let text = crate::error_text(&err);
                    let text = self.client.map_or(text.clone(), |c| c.redact(&text).into_owned());
                    // The failure is what the user needs to hear about; a second one while
                    // recording it is only logged.
                    if let Err(e) = store.finish_run(run_id, RunStatus::Failed, &counters, Some(&text)).await {
                        tracing::error!("could not record the failure of run {run_id}: {}", crate::error_text(&e));
                    }
                    Err(err)
                }
            }
        };
        let Some(stop) = self.stop else { return recorded.await };
        // A second signal abandons whatever the run waits for: a page's transaction rolls back,
        // and the last saved page is where the next run starts.
        tokio::select! {
            outcome = recorded => outcome,
            _ = stop.forced() => {
                record_interrupted(store, run_id).await;
                Err(SyncError::Interrupted { run_id })
            }
        }
    }
}

/// Records a run abandoned by a second signal, on a connection of its own: the run's own may be
/// stuck in the statement that was abandoned (a page waiting for a lock, say).
async fn record_interrupted(store: &Store, run_id: i64) {
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
