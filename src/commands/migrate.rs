//! `audit migrate`: create or upgrade the schema and print its version.

use std::process::ExitCode;

use crate::cli::GlobalArgs;

pub async fn run(_global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
