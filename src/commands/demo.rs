//! `audit demo`: the simulator, an ingest and a timeline in one command.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use super::common::{Display, print_summary};
use crate::cli::{DemoArgs, GlobalArgs};
use crate::inflow::{ApiKey, Client, ClientConfig};
use crate::mapping::DocType;
use crate::store::{Backend, DatabaseUrl, Store};
use crate::sync::{IngestOptions, StopFlag};
use inflow_simulator::{Scale, SimConfig, Simulator};

const DEMO_URL: &str = "sqlite://audit-demo.db";

/// Runs `audit demo`: its exit status, or the error to report.
pub async fn run(global: &GlobalArgs, args: DemoArgs) -> anyhow::Result<ExitCode> {
    // Never the configured database (AUDIT_DATABASE_URL may be a real one): only an explicit flag.
    let url: DatabaseUrl =
        if global.database_url_explicit { global.database_url.parse()? } else { DEMO_URL.parse()? };
    if args.fresh {
        remove_sqlite_file(&url)?;
    }
    let started = Instant::now();
    let sim =
        Simulator::start(SimConfig { seed: args.seed, scale: Scale::Small, rate_limit: None, ..SimConfig::default() })
            .await?;
    let counts = sim.counts();
    crate::output::note(&format!(
        "Simulated inFlow company {} at {}: {} sales orders, {} purchase orders, {} manufacturing orders, {} stock \
         counts, {} adjustments, {} transfers.",
        sim.company_id(),
        sim.base_url(),
        counts.get("sales-orders").unwrap_or(&0),
        counts.get("purchase-orders").unwrap_or(&0),
        counts.get("manufacturing-orders").unwrap_or(&0),
        counts.get("stock-counts").unwrap_or(&0),
        counts.get("stock-adjustments").unwrap_or(&0),
        counts.get("stock-transfers").unwrap_or(&0),
    ));
    crate::output::note(&format!("Ingesting into {url} ..."));
    let store = Store::open(&url).await?;
    let client = Client::new(ClientConfig::new(&sim.base_url(), &sim.company_id(), ApiKey::new(sim.api_key())))?;
    let options = IngestOptions {
        company_id: sim.company_id(),
        since: None,
        window: None,
        types: DocType::ALL.to_vec(),
        skip_unavailable: true,
        arguments: serde_json::json!({ "demo": true, "seed": args.seed }),
    };
    let progress = Display::new(global);
    let result = crate::sync::run(&store, &client, &options, &progress, &StopFlag::default()).await;
    progress.clear();
    let summary = result?;
    store.close().await;
    sim.shutdown().await;
    print_summary(&summary, started.elapsed(), None)?;

    let story = sim.scenario().full_lifecycle;
    writeln!(
        crate::output::stdout(),
        "\nOne serial's story (received, transferred, sold, shipped, returned, restocked):\n"
    )?;
    let timeline_global =
        GlobalArgs { database_url: url.expose().to_string(), database_url_explicit: true, ..global.clone() };
    let timeline_args = crate::cli::TimelineArgs {
        serial: story.serial.clone(),
        company: crate::cli::CompanyFilter::default(),
        output: crate::cli::FormatChoice { format: Some(crate::output::Format::Table) },
        all: false,
        on: None,
        as_recorded_at: None,
        tree: false,
    };
    super::timeline::run(&timeline_global, timeline_args).await?;

    let db = if global.database_url_explicit {
        format!("--database-url {url} ")
    } else {
        format!("--database-url {DEMO_URL} ")
    };
    let mut out = crate::output::stdout();
    writeln!(out)?;
    writeln!(out, "Next, try:")?;
    let (serial, po) = (&story.serial, &story.documents[0].number);
    let next = [
        (format!("audit {db}timeline {serial} --format json"), ""),
        (format!("audit {db}sql \"SELECT status, count(*) AS serials FROM serial_current GROUP BY status\""), ""),
        (format!("audit {db}sql --query recall --param po_number={po}"), "the recall of a purchase order"),
        (format!("audit {db}sql --query customer_of_serial --param serial={serial}"), ""),
        ("audit sql --list".to_string(), "the other shipped queries"),
        (format!("audit {db}serve"), "the same trail in a browser, on http://127.0.0.1:8080/"),
        ("audit demo".to_string(), "again: an incremental run that adds nothing"),
        ("audit simulate --scale medium".to_string(), "then, in another shell, audit ingest with the printed settings"),
    ];
    for (command, why) in next {
        if why.is_empty() {
            writeln!(out, "  {command}")?;
        } else {
            writeln!(out, "  {command}   # {why}")?;
        }
    }
    out.flush()?;
    crate::output::note(&format!("Done in {:.1}s.", started.elapsed().as_secs_f64()));
    Ok(ExitCode::SUCCESS)
}

fn remove_sqlite_file(url: &DatabaseUrl) -> anyhow::Result<()> {
    if url.backend() != Backend::Sqlite {
        anyhow::bail!("--fresh only deletes SQLite files; drop the Postgres database yourself");
    }
    let path = url.expose().trim_start_matches("sqlite:").trim_start_matches("//");
    for file in [path.to_string(), format!("{path}-wal"), format!("{path}-shm")] {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot delete {file}"))),
        }
    }
    Ok(())
}
