//! `audit timeline SERIAL`: one serial's story, as a table, JSON or CSV.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{GlobalArgs, TimelineArgs};
use crate::output::{self, Format, iso_time, short_time};
use crate::store::query::EventFilter;
use crate::timeline::{self, History, doc_label, place_label};

/// CSV columns, part of the documented output contract.
pub const CSV_COLUMNS: &[&str] = &[
    "company_id",
    "serial",
    "product_id",
    "product_name",
    "product_sku",
    "event_id",
    "occurred_at",
    "event_type",
    "doc_type",
    "doc_id",
    "doc_number",
    "line_collection",
    "line_id",
    "location_id",
    "location_name",
    "sublocation",
    "quantity_delta",
    "on_hand",
    "doc_status",
    "observed_at",
    "retracted_at",
    "retracted_run_id",
];

pub async fn run(global: &GlobalArgs, args: TimelineArgs) -> anyhow::Result<ExitCode> {
    let store = super::open_existing_store(global).await?;
    let filter = EventFilter { company_id: args.company_id.as_deref(), all: args.all, as_of: args.as_of };
    let rows = store.serial_events(&args.serial, &filter).await?;
    if rows.is_empty() {
        let mut similar = store.similar_serials(&args.serial, args.company_id.as_deref(), 10).await?;
        let mut msg = format!("serial {:?} is not in the audit trail", args.serial);
        if args.as_of.is_some() {
            msg.push_str(" as of that time");
        }
        // Recorded, but every event of it is retracted (or not yet observed at --as-of).
        if let Some(at) = similar.iter().position(|s| *s == args.serial) {
            similar.remove(at);
            msg = match args.as_of {
                Some(_) => format!("serial {:?} has no events recorded and current at that time", args.serial),
                None => format!(
                    "serial {:?} has only retracted events (its documents changed or were deleted); \
                     --all shows them",
                    args.serial
                ),
            };
        }
        if !similar.is_empty() {
            let quoted: Vec<String> = similar.iter().map(|s| format!("{s:?}")).collect();
            msg.push_str(&format!("; did you mean {}?", quoted.join(", ")));
        }
        output::note(&msg);
        store.close().await;
        return Ok(ExitCode::from(1));
    }
    let histories = timeline::histories(rows);
    let stdout = output::stdout();
    match Format::resolve(args.format) {
        Format::Json => {
            output::write_json(stdout, &serde_json::json!({ "serial": args.serial, "histories": histories }))?
        }
        Format::Csv => output::write_csv(stdout, CSV_COLUMNS, histories.iter().flat_map(csv_rows))?,
        Format::Table => print_tables(stdout, &histories, args.all)?,
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

fn csv_rows(h: &History) -> Vec<Vec<String>> {
    let o = |s: &Option<String>| s.clone().unwrap_or_default();
    h.events
        .iter()
        .map(|entry| {
            let e = &entry.event;
            vec![
                e.company_id.clone(),
                e.serial.clone(),
                o(&e.product_id),
                o(&h.product_name),
                o(&h.product_sku),
                e.event_id.to_string(),
                iso_time(e.occurred_at),
                e.event_type.clone(),
                e.doc_type.clone(),
                e.doc_id.clone(),
                o(&e.doc_number),
                e.line_collection.clone(),
                e.line_id.clone(),
                o(&e.location_id),
                o(&e.location_name),
                o(&e.sublocation),
                e.quantity_delta.to_string(),
                entry.on_hand.to_string(),
                o(&e.doc_status),
                iso_time(Some(e.observed_at)),
                iso_time(e.retracted_at),
                e.retracted_run_id.map(|r| r.to_string()).unwrap_or_default(),
            ]
        })
        .collect()
}

fn print_tables<W: Write>(mut out: W, histories: &[History], all: bool) -> anyhow::Result<()> {
    let several_companies = histories.windows(2).any(|w| w[0].company_id != w[1].company_id);
    for (i, h) in histories.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let company = if several_companies { format!(", company {}", h.company_id) } else { String::new() };
        // Data from inFlow: shown escaped, like the table's cells.
        let line = format!("{} ({}{company}): {}", h.serial, h.product_label(), h.now.summary);
        writeln!(out, "{}", output::printable(&line))?;
        let mut header = vec!["date", "event", "document", "location", "change", "on hand"];
        if all {
            header.push("retracted");
        }
        let mut table = output::table(&header);
        for entry in &h.events {
            let e = &entry.event;
            let location = if e.location_id.is_some() { place_label(e) } else { String::new() };
            let change = match e.quantity_delta {
                1 => "+1".to_string(),
                0 => String::new(),
                d => d.to_string(),
            };
            let mut row = vec![
                short_time(e.occurred_at),
                e.event_type.clone(),
                format!("{} {}", e.doc_type.replace('_', " "), doc_label(e)),
                location,
                change,
                entry.on_hand.to_string(),
            ];
            if all {
                row.push(e.retracted_at.map_or(String::new(), |t| format!("retracted {}", short_time(Some(t)))));
            }
            crate::output::add_row(&mut table, row);
        }
        writeln!(out, "{table}")?;
    }
    Ok(())
}
