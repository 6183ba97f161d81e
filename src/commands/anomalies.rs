//! `audit anomalies`: the serial histories that cannot be right; exit 1 when any is found.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use crate::anomalies::{AnomalyKind, evidence};
use crate::cli::{AnomaliesArgs, GlobalArgs};
use crate::output::{self, Format, iso_time, short_time};
use crate::store::anomalies::{AnomalyFilter, AnomalyRow};

/// CSV columns, part of the documented output contract: the columns of the
/// `serial_anomalies` view, in its order.
pub const CSV_COLUMNS: &[&str] = &[
    "company_id",
    "kind",
    "serial",
    "product_id",
    "product_name",
    "explanation",
    "started_at",
    "event_id",
    "event_type",
    "doc_type",
    "doc_number",
    "location_id",
    "sublocation",
    "earlier_event_id",
    "earlier_event_type",
    "earlier_doc_type",
    "earlier_doc_number",
    "detail",
    "days_in_transit",
];

/// Runs `audit anomalies`: its exit status, or the error to report.
pub async fn run(global: &GlobalArgs, args: AnomaliesArgs) -> anyhow::Result<ExitCode> {
    let store = super::open_reading_store(global).await?;
    super::check_company(&store, args.company.company_id.as_deref()).await?;
    let kinds: Vec<String> = args.kind.iter().map(|k| k.as_str().to_string()).collect();
    let filter = AnomalyFilter {
        company_id: args.company.company_id.as_deref(),
        serial: args.serial.as_deref(),
        kinds: &kinds,
        since: args.since,
        transit_days: args.transit_days,
    };
    let rows = store.anomalies(&filter).await?;
    let stock_wanted = kinds.is_empty() || args.kind.contains(&AnomalyKind::HistoryAndStockDisagree);
    let stock_checked = !stock_wanted || store.has_snapshot(args.company.company_id.as_deref()).await?;
    store.close().await;
    if !stock_checked {
        output::note(
            "note: there is no complete stock snapshot, so history_and_stock_disagree was not checked; \
             `audit snapshot` (or `audit ingest --snapshot`) takes one",
        );
    }
    let stdout = output::stdout();
    let written = match Format::resolve(args.output.format) {
        Format::Json => output::write_json(stdout, &rows),
        Format::Csv => output::write_csv(stdout, CSV_COLUMNS, rows.iter().map(csv_row)),
        Format::Table => print_table(stdout, &rows),
    };
    // A reader that went away (`| head -1`) has seen what it wanted; the answer stands.
    match written {
        Err(e) if output::is_stdout_closed(e.as_ref()) => {}
        other => other?,
    }
    if rows.is_empty() {
        output::note("No anomalies found.");
        return Ok(ExitCode::SUCCESS);
    }
    let mut per_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rows {
        *per_kind.entry(r.kind.as_str()).or_default() += 1;
    }
    let summary: Vec<String> = per_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
    output::note(&format!("{} anomalies: {}.", rows.len(), summary.join(", ")));
    Ok(ExitCode::from(1))
}

fn csv_row(r: &AnomalyRow) -> Vec<String> {
    let o = |s: &Option<String>| s.clone().unwrap_or_default();
    let n = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    vec![
        r.company_id.clone(),
        r.kind.clone(),
        r.serial.clone(),
        o(&r.product_id),
        o(&r.product_name),
        r.explanation.clone(),
        iso_time(r.started_at),
        n(r.event_id),
        o(&r.event_type),
        o(&r.doc_type),
        o(&r.doc_number),
        o(&r.location_id),
        o(&r.sublocation),
        n(r.earlier_event_id),
        o(&r.earlier_event_type),
        o(&r.earlier_doc_type),
        o(&r.earlier_doc_number),
        o(&r.detail),
        n(r.days_in_transit),
    ]
}

fn print_table(mut out: impl Write, rows: &[AnomalyRow]) -> anyhow::Result<()> {
    let since = output::time_header("since");
    let header = ["kind", "serial", "product", &since, "what", "evidence"];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let product = r.product_name.clone().or_else(|| r.product_id.clone()).unwrap_or_default();
            vec![
                r.kind.clone(),
                r.serial.clone(),
                product,
                short_time(r.started_at),
                r.explanation.clone(),
                evidence(r),
            ]
        })
        .collect();
    // Two columns of sentences squeezed beside four others read a word per line: on a narrow
    // terminal each finding is a block instead. Serials, names and document numbers come from
    // inFlow: shown terminal-safe either way.
    if output::width().is_some_and(|w| w < 120) {
        for (i, row) in cells.iter().enumerate() {
            write!(out, "{}", output::vertical_record(i as u64 + 1, &header, row))?;
        }
        return Ok(());
    }
    let mut table = output::table(&header);
    for row in cells {
        output::add_row(&mut table, row);
    }
    writeln!(out, "{}", crate::output::render(&table))?;
    Ok(())
}
