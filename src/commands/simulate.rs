//! `audit simulate`: serve the local inFlow simulator.

use std::process::ExitCode;

use crate::cli::{GlobalArgs, SimulateArgs};

pub async fn run(_global: &GlobalArgs, _args: SimulateArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the simulator is not built yet")
}
