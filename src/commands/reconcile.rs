//! `audit reconcile`: the history against inFlow's stock; exit 1 on any disagreement.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{anyhow, bail};

use crate::cli::{GlobalArgs, ReconcileArgs};
use crate::output::{self, Format, short_time};
use crate::reconcile::{Disagreement, with_places};
use crate::store::Store;

/// CSV columns, part of the documented output contract.
pub const CSV_COLUMNS: &[&str] = &[
    "kind",
    "company_id",
    "product_id",
    "product_name",
    "serial",
    "inflow_location_id",
    "inflow_location_name",
    "inflow_sublocation",
    "inflow_quantity",
    "history_status",
    "history_location_id",
    "history_location_name",
    "history_sublocation",
    "history_document",
];

/// Location names by (company, location id).
type LocationNames = HashMap<(String, String), String>;

/// Runs `audit reconcile`: its exit status, or the error to report.
pub async fn run(global: &GlobalArgs, args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    let store = super::open_reading_store(global).await?;
    super::check_company(&store, args.company.company_id.as_deref()).await?;
    let result = disagreements(&store, args.company.company_id.as_deref()).await;
    let locations = store.location_names().await;
    store.close().await;
    let Reconciled { compared, disagreements: all } = result?;
    let locations = locations?;
    for (company, snapshot_id, taken) in &compared {
        output::note(&format!(
            "company {company}: snapshot {snapshot_id} of {} {} against the history",
            short_time(Some(*taken)),
            output::zone_name()
        ));
    }
    if compared.is_empty() {
        bail!("no company has a complete snapshot yet: run `audit snapshot` (or `audit ingest --snapshot`) first");
    }
    let stdout = output::stdout();
    match Format::resolve(args.output.format) {
        Format::Json => {
            let items: Vec<serde_json::Value> = all
                .iter()
                .map(|(d, name)| {
                    let mut v = serde_json::to_value(d).expect("disagreements serialize");
                    v["product_name"] = name.clone().into();
                    v
                })
                .collect();
            output::write_json(stdout, &items)?;
        }
        Format::Csv => {
            output::write_csv(stdout, CSV_COLUMNS, all.iter().flat_map(|(d, name)| csv_rows(d, name, &locations)))?
        }
        Format::Table => print_table(stdout, &all, &locations)?,
    }
    if all.is_empty() {
        output::note("The history and inFlow's stock agree.");
        Ok(ExitCode::SUCCESS)
    } else {
        output::note(&format!("{} disagreements.", all.len()));
        Ok(ExitCode::from(1))
    }
}

/// What `audit reconcile` and the web view list.
pub struct Reconciled {
    /// Each company compared, with its latest complete snapshot's id and time.
    pub compared: Vec<(String, i64, chrono::DateTime<chrono::Utc>)>,
    /// Each disagreement, with its product's name.
    pub disagreements: Vec<(Disagreement, Option<String>)>,
}

/// The history against the latest complete snapshot of each company that has one (or of
/// `company_id`, which must have one).
pub async fn disagreements(store: &Store, company_id: Option<&str>) -> anyhow::Result<Reconciled> {
    let companies = match company_id {
        Some(c) => vec![c.to_string()],
        None => store.companies().await?,
    };
    let mut all: Vec<(Disagreement, Option<String>)> = Vec::new();
    let mut compared = Vec::new();
    for company in companies {
        let Some((snapshot_id, taken)) = store.latest_snapshot(&company).await? else {
            if company_id.is_some() {
                bail!(
                    "company {company} has no complete snapshot yet: run `audit snapshot` (or `audit ingest --snapshot`) first"
                );
            }
            continue;
        };
        let lines = store.snapshot_lines(&company, snapshot_id).await?;
        let rows = store.stock_disagreements(&company).await?;
        let names = store.product_names(&company).await?;
        let found = with_places(rows, &lines).map_err(|e| anyhow!("serial_stock_disagreements: {e}"))?;
        all.extend(found.into_iter().map(|d| {
            let name = d.product_id.as_ref().and_then(|p| names.get(p).cloned());
            (d, name)
        }));
        compared.push((company, snapshot_id, taken));
    }
    Ok(Reconciled { compared, disagreements: all })
}

/// A location's name, falling back to its id (a location the list no longer returns).
fn location_label(locations: &LocationNames, company: &str, id: Option<&String>) -> String {
    let Some(id) = id else { return String::new() };
    locations.get(&(company.to_string(), id.clone())).cloned().unwrap_or_else(|| id.clone())
}

/// A name only when one is stored (CSV keeps ids and names in columns of their own).
fn location_name(locations: &LocationNames, company: &str, id: Option<&String>) -> String {
    id.and_then(|id| locations.get(&(company.to_string(), id.clone()))).cloned().unwrap_or_default()
}

fn places(d: &Disagreement, locations: &LocationNames) -> String {
    let list: Vec<String> = d
        .inflow
        .iter()
        .map(|p| {
            let sub = p.sublocation.as_deref().filter(|s| !s.is_empty()).map_or(String::new(), |s| format!("/{s}"));
            let place = location_label(locations, &d.company_id, p.location_id.as_ref());
            format!("{place}{sub}: {}", p.quantity_on_hand)
        })
        .collect();
    list.join("; ")
}

/// One CSV row per place where inFlow has the serial (one with empty inFlow columns when it has
/// none), so that every value has a column of its own.
fn csv_rows(d: &Disagreement, name: &Option<String>, locations: &LocationNames) -> Vec<Vec<String>> {
    let o = |s: &Option<String>| s.clone().unwrap_or_default();
    let company = d.company_id.as_str();
    let row = |place: Option<&crate::reconcile::Place>| {
        vec![
            d.kind.as_str().to_string(),
            d.company_id.clone(),
            o(&d.product_id),
            o(name),
            d.serial.clone(),
            place.and_then(|p| p.location_id.clone()).unwrap_or_default(),
            location_name(locations, company, place.and_then(|p| p.location_id.as_ref())),
            place.and_then(|p| p.sublocation.clone()).unwrap_or_default(),
            place.map(|p| p.quantity_on_hand.to_string()).unwrap_or_default(),
            o(&d.history_status),
            o(&d.history_location_id),
            location_name(locations, company, d.history_location_id.as_ref()),
            o(&d.history_sublocation),
            o(&d.history_document),
        ]
    };
    if d.inflow.is_empty() { vec![row(None)] } else { d.inflow.iter().map(|p| row(Some(p))).collect() }
}

fn print_table(
    mut out: impl Write,
    all: &[(Disagreement, Option<String>)],
    locations: &LocationNames,
) -> anyhow::Result<()> {
    let mut table = output::table(&["kind", "serial", "product", "inFlow stock", "history"]);
    for (d, name) in all {
        let history = match &d.history_status {
            Some(status) => {
                let sub = d
                    .history_sublocation
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .map_or(String::new(), |s| format!("/{s}"));
                format!(
                    "{status} at {}{sub} ({})",
                    location_label(locations, &d.company_id, d.history_location_id.as_ref()),
                    d.history_document.clone().unwrap_or_default()
                )
            }
            None => "no event".into(),
        };
        let product = name.clone().or_else(|| d.product_id.clone()).unwrap_or_default();
        crate::output::add_row(
            &mut table,
            vec![d.kind.as_str().to_string(), d.serial.clone(), product, places(d, locations), history],
        );
    }
    writeln!(out, "{}", crate::output::render(&table))?;
    Ok(())
}
