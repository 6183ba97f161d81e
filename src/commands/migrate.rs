//! `audit migrate`: create or upgrade the schema and print its version.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::GlobalArgs;
use crate::store::Store;

/// Runs `audit migrate`: its exit status, or the error to report.
pub async fn run(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let url = super::database_url(global)?;
    let store = Store::connect(&url).await?;
    let report = store.migrate().await?;
    store.close().await;
    let mut out = crate::output::stdout();
    if report.applied.is_empty() {
        writeln!(out, "{url}: schema version {}, already up to date", report.version)?;
    } else {
        writeln!(out, "{url}: schema version {} (applied {})", report.version, report.applied.join(", "))?;
    }
    Ok(ExitCode::SUCCESS)
}
