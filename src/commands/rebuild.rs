//! `audit rebuild`: derive every event again from the stored documents.

use std::process::ExitCode;
use std::time::Instant;

use crate::cli::{GlobalArgs, RebuildArgs};

pub async fn run(global: &GlobalArgs, args: RebuildArgs) -> anyhow::Result<ExitCode> {
    let store = super::open_store(global).await?;
    let companies = match &args.company_id {
        Some(c) => vec![c.clone()],
        None => store.companies().await?,
    };
    let progress = super::ingest::Display::new(global);
    for company in companies {
        let started = Instant::now();
        let lock = match store.try_lock(&company, "rebuild").await? {
            Ok(lock) => lock,
            // No signal handler here: Ctrl-C ends the wait, and the process, at once.
            Err(_) if args.wait => store
                .lock_waiting(&company, "rebuild", &crate::stop::StopFlag::default())
                .await?
                .expect("never stopped"),
            Err(holder) => {
                crate::output::note(&format!(
                    "an ingest of company {company} is running: {holder}. Use --wait to wait for it."
                ));
                store.close().await;
                return Ok(ExitCode::from(super::ingest::LOCKED));
            }
        };
        let result = crate::ingest::rebuild(&store, &company, &progress).await;
        progress.clear();
        lock.release().await;
        let summary = result?;
        std::io::Write::write_all(&mut crate::output::stdout(), format!("Company {company}:\n").as_bytes())?;
        super::ingest::print_summary(&summary, started.elapsed())?;
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
