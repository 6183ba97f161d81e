//! `audit lookup`: serials to products, stock and last event, from the local database.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{GlobalArgs, LookupArgs};
use crate::output::{self, Format, iso_time, short_time};
use crate::store::stock::LookupRow;

/// CSV columns, part of the documented output contract.
pub const CSV_COLUMNS: &[&str] = &[
    "serial",
    "found",
    "company_id",
    "product_id",
    "product_name",
    "product_sku",
    "on_hand",
    "location_id",
    "location_name",
    "sublocation",
    "quantity_on_hand",
    "snapshot_at",
    "history_status",
    "history_location_id",
    "history_sublocation",
    "last_event",
    "last_event_at",
    "last_doc_type",
    "last_doc_number",
];

/// Runs `audit lookup`: its exit status, or the error to report.
pub async fn run(global: &GlobalArgs, args: LookupArgs) -> anyhow::Result<ExitCode> {
    let mut serials = args.serials.clone();
    if let Some(path) = &args.file {
        serials.extend(read_serials(path)?);
    }
    let store = super::open_reading_store(global).await?;
    super::check_company(&store, args.company.company_id.as_deref()).await?;
    let rows = store.lookup(&serials, args.company.company_id.as_deref()).await?;
    let snapshot = store.has_snapshot(args.company.company_id.as_deref()).await?;
    let hints = suggestions(&store, &rows, args.company.company_id.as_deref()).await?;
    store.close().await;
    if !snapshot {
        output::note(
            "note: there is no stock snapshot yet, so inFlow's stock is not shown, only the history; \
             `audit snapshot` (or `audit ingest --snapshot`) takes one",
        );
    }
    let unknown = rows.iter().filter(|r| !found(r)).count();
    let stdout = output::stdout();
    match Format::resolve(args.output.format) {
        Format::Json => {
            let items: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    let mut v = serde_json::to_value(r).expect("rows serialize");
                    v["found"] = found(r).into();
                    v["on_hand"] = on_hand(r).into();
                    v
                })
                .collect();
            output::write_json(stdout, &items)?;
        }
        Format::Csv => output::write_csv(stdout, CSV_COLUMNS, rows.iter().map(csv_row))?,
        Format::Table => print_table(stdout, &rows, snapshot)?,
    }
    for hint in hints {
        output::note(&hint);
    }
    if unknown > 0 {
        let against = if snapshot { "the history and the latest snapshot" } else { "the history (no snapshot yet)" };
        output::note(&format!("{unknown} of {} serials are unknown to {against}", serials.len()));
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Unknown serials this many at most get "did you mean": a list of typos is read, not a file
/// of serials from elsewhere.
const HINTED: usize = 10;

/// "did you mean" for the first unknown serials, as `audit timeline` says it.
async fn suggestions(
    store: &crate::store::Store,
    rows: &[LookupRow],
    company_id: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    // Each unknown serial once, however often and wherever it is repeated in the input.
    let mut seen = std::collections::HashSet::new();
    let unknown: Vec<&str> =
        rows.iter().filter(|r| !found(r)).map(|r| r.serial.as_str()).filter(|s| seen.insert(*s)).collect();
    let mut hints = Vec::new();
    for serial in unknown.into_iter().take(HINTED) {
        let (_, similar) = super::timeline::unknown_serial(store, serial, company_id, None).await?;
        if !similar.is_empty() {
            let quoted: Vec<String> = similar.iter().map(|s| format!("{s:?}")).collect();
            hints.push(format!("{serial:?} is unknown; did you mean {}?", quoted.join(", ")));
        }
    }
    Ok(hints)
}

/// One serial per line, without the spaces around it; blank lines are skipped.
fn read_serials(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?,
        ))
    };
    let mut out = Vec::new();
    for line in reader.lines() {
        let line = line?;
        let line = line.trim();
        if !line.is_empty() {
            out.push(line.to_string());
        }
    }
    Ok(out)
}

fn found(r: &LookupRow) -> bool {
    r.product_id.is_some() || r.company_id.is_some()
}

fn on_hand(r: &LookupRow) -> bool {
    r.quantity_on_hand.is_some_and(|q| q > 0.0)
}

fn csv_row(r: &LookupRow) -> Vec<String> {
    let o = |s: &Option<String>| s.clone().unwrap_or_default();
    vec![
        r.serial.clone(),
        found(r).to_string(),
        o(&r.company_id),
        o(&r.product_id),
        o(&r.product_name),
        o(&r.product_sku),
        on_hand(r).to_string(),
        o(&r.location_id),
        o(&r.location_name),
        o(&r.sublocation),
        r.quantity_on_hand.map(|q| q.to_string()).unwrap_or_default(),
        iso_time(r.snapshot_at),
        o(&r.history_status),
        o(&r.history_location_id),
        o(&r.history_sublocation),
        o(&r.last_event),
        iso_time(r.last_event_at),
        o(&r.last_doc_type),
        o(&r.last_doc_number),
    ]
}

fn print_table(mut out: impl Write, rows: &[LookupRow], snapshot: bool) -> anyhow::Result<()> {
    let last_event = output::time_header("last event");
    let mut table = output::table(&["serial", "product", "inFlow stock (latest snapshot)", "history", &last_event]);
    for r in rows {
        if !found(r) {
            crate::output::add_row(
                &mut table,
                vec![r.serial.clone(), "unknown".into(), String::new(), String::new(), String::new()],
            );
            continue;
        }
        let product = r
            .product_name
            .clone()
            .or_else(|| r.product_sku.clone())
            .or_else(|| r.product_id.clone())
            .unwrap_or_default();
        let stock = match r.quantity_on_hand {
            Some(q) => {
                let place = r.location_name.clone().or_else(|| r.location_id.clone()).unwrap_or_default();
                let sub =
                    r.sublocation.as_deref().filter(|s| !s.is_empty()).map_or(String::new(), |s| format!(" / {s}"));
                if q > 0.0 { format!("on hand at {place}{sub}") } else { format!("{q} at {place}{sub}") }
            }
            // The snapshot lists what is on hand: a serial it does not list is not.
            None if snapshot => "not on hand".into(),
            None => "no snapshot yet".into(),
        };
        let last = match &r.last_event {
            Some(e) => format!("{e} {} {}", r.last_doc_number.clone().unwrap_or_default(), short_time(r.last_event_at)),
            None => "-".into(),
        };
        crate::output::add_row(
            &mut table,
            vec![r.serial.clone(), product, stock, r.history_status.clone().unwrap_or_else(|| "-".into()), last],
        );
    }
    writeln!(out, "{}", crate::output::render(&table))?;
    Ok(())
}
