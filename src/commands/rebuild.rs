//! `audit rebuild`: derive every event again from the stored documents.

use std::process::ExitCode;
use std::time::Instant;

use super::common::{Display, LOCKED, Locked, print_summary, with_company_lock};
use crate::cli::{GlobalArgs, RebuildArgs};
use crate::sync::{StopFlag, StopReason};

/// Runs `audit rebuild`: its exit status, or the error to report.
pub async fn run(global: &GlobalArgs, args: RebuildArgs) -> anyhow::Result<ExitCode> {
    let store = super::open_store(global).await?;
    let companies = match &args.company.company_id {
        Some(c) => vec![c.clone()],
        None => store.companies().await?,
    };
    let progress = Display::new(global);
    for company in companies {
        let started = Instant::now();
        // No signal handler here: Ctrl-C ends the wait, and the process, at once. The flag
        // stops the rebuild between batches when another process takes the lock over.
        let stop = StopFlag::default();
        let work = async || {
            let result = crate::sync::rebuild(&store, &company, &progress, &stop).await;
            progress.clear();
            result
        };
        let result = match with_company_lock(&store, &company, "rebuild", args.wait, &stop, work, |_| false).await? {
            Locked::Ran(result) => result,
            Locked::Busy(holder) => {
                crate::output::note(&format!(
                    "an ingest of company {company} is running: {holder}. Use --wait to wait for it."
                ));
                store.close().await;
                return Ok(ExitCode::from(LOCKED));
            }
            Locked::Stopped => unreachable!("nothing sets the flag while the lock is waited for"),
        };
        let summary = result?;
        if !global.quiet {
            std::io::Write::write_all(&mut crate::output::stdout(), format!("Company {company}:\n").as_bytes())?;
            print_summary(&summary, started.elapsed(), None)?;
        }
        if summary.stop == Some(StopReason::LockLost) {
            store.close().await;
            anyhow::bail!(
                "another process took over the lock of company {company} while this rebuild was silent for more \
                 than {} s; the rebuild stopped between batches: run it again",
                crate::store::lock::STALE_AFTER.as_secs()
            );
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
