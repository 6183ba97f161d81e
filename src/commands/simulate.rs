//! `audit simulate`: serve the local inFlow simulator until Ctrl-C.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{GlobalArgs, SimulateArgs};
use inflow_simulator::{Behaviour, RateLimit, Scale, SimConfig, Simulator};

/// Runs `audit simulate`: its exit status, or the error to report.
pub async fn run(_global: &GlobalArgs, args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let scale: Scale = args.scale.parse()?;
    let rate_limit =
        (!args.no_rate_limit).then_some(RateLimit { per_minute: args.per_minute, per_hour: args.per_hour });
    let config = SimConfig {
        seed: args.seed,
        scale,
        data_faults: !args.no_data_faults,
        bind: SocketAddr::new(args.host, args.port),
        api_key: args.api_key.clone(),
        rate_limit,
        time_scale: args.time_scale,
        reject_keyset: args.reject_keyset,
        behaviour: Behaviour {
            page_cap: args.page_cap.map(|n| n as usize),
            sort_status: args.sort_status,
            ignore_sort: args.ignore_sort,
            date_sort: args.date_sort,
            unknown_cursor: args.unknown_cursor,
            list_count: args.list_count,
            rate_headers: args.rate_headers,
            guid_order: args.guid_order,
            unavailable: args.unavailable.clone(),
        },
        count_adjustments: args.count_adjustments,
        refuse_sheet_lines: args.refuse_sheet_lines,
        newer_manufacturing_fields: args.newer_manufacturing_fields,
        ..SimConfig::default()
    };
    let sim = Simulator::start(config).await.context("cannot start the simulator")?;
    let mut out = crate::output::stdout();
    writeln!(out, "export INFLOW_BASE_URL={}", sim.base_url())?;
    writeln!(out, "export INFLOW_COMPANY_ID={}", sim.company_id())?;
    writeln!(out, "export INFLOW_API_KEY={}", sim.api_key())?;
    out.flush()?;
    drop(out);
    let counts = sim.counts();
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
    crate::output::note(&format!(
        "simulator: scale {scale}, seed {}, started in {:.2?}; {}; {} serial occurrences; Ctrl-C to stop",
        args.seed,
        sim.startup_time(),
        summary.join(", "),
        sim.serial_occurrences()
    ));
    tokio::signal::ctrl_c().await.context("cannot wait for Ctrl-C")?;
    sim.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
