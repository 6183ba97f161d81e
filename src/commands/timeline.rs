//! `audit timeline SERIAL`: one serial's story, as a table, JSON or CSV.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{GlobalArgs, TimelineArgs};
use crate::output::{self, Format, iso_time, short_time};
use crate::store::Store;
use crate::store::genealogy::{GenealogyRow, Side};
use crate::store::query::EventFilter;
use crate::timeline::{self, Direction, History, TreeNode, doc_with_party, place_label};

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
    "party_id",
    "party_name",
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

/// Runs `audit timeline`: its exit status, or the error to report.
pub async fn run(global: &GlobalArgs, args: TimelineArgs) -> anyhow::Result<ExitCode> {
    // `--on`'s day ends in the local zone whatever the format; past that, JSON and CSV do not
    // depend on the zone (the summary's day is UTC there too).
    let until = args.on.map(|day| (day, output::end_of_day(day), output::zone_name()));
    if Format::resolve(args.output.format) != Format::Table {
        output::show_utc(true);
    }
    let store = super::open_reading_store(global).await?;
    super::check_company(&store, args.company.company_id.as_deref()).await?;
    let filter =
        EventFilter { company_id: args.company.company_id.as_deref(), all: args.all, as_of: args.as_recorded_at };
    let rows = store.serial_events(&args.serial, &filter).await?;
    if args.tree {
        let code = print_tree(&store, &args, rows).await;
        store.close().await;
        return code;
    }
    if rows.is_empty() {
        let (mut msg, similar) =
            unknown_serial(&store, &args.serial, args.company.company_id.as_deref(), args.as_recorded_at).await?;
        if !similar.is_empty() {
            let quoted: Vec<String> = similar.iter().map(|s| format!("{s:?}")).collect();
            msg.push_str(&format!("; did you mean {}?", quoted.join(", ")));
        }
        // A company filter that hides the serial says so.
        if let Some(company) = args.company.company_id.as_deref() {
            let everywhere = EventFilter { company_id: None, ..filter.clone() };
            let mut others: Vec<String> =
                store.serial_events(&args.serial, &everywhere).await?.into_iter().map(|r| r.company_id).collect();
            others.sort();
            others.dedup();
            if !others.is_empty() {
                msg.push_str(&format!(
                    "; it is recorded for company {}, which {} {company} hides",
                    others.join(", "),
                    super::company_filter_source(company)
                ));
            }
        }
        output::note(&msg);
        store.close().await;
        return Ok(ExitCode::from(1));
    }
    if let Some((day, until, zone)) = until {
        let code = print_on(&store, &args, (day, &zone), until).await;
        store.close().await;
        return code;
    }
    let mut histories = timeline::histories(rows);
    if args.as_recorded_at.is_none() {
        let links = store.genealogy_of(&args.serial, args.company.company_id.as_deref()).await?;
        timeline::attach_genealogy(&mut histories, links);
    }
    let stdout = output::stdout();
    match Format::resolve(args.output.format) {
        Format::Json => {
            output::write_json(stdout, &serde_json::json!({ "serial": args.serial, "histories": histories }))?
        }
        Format::Csv => output::write_csv(stdout, CSV_COLUMNS, histories.iter().flat_map(csv_rows))?,
        Format::Table => print_tables(stdout, &histories, args.all, None)?,
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `audit timeline SERIAL --on DAY`: the histories up to the end of that day (what serve's
/// `?on=` shows), with the status and location they end in.
async fn print_on(
    store: &Store,
    args: &TimelineArgs,
    (day, zone): (chrono::NaiveDate, &str),
    until: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<ExitCode> {
    let histories = store.serial_on(&args.serial, args.company.company_id.as_deref(), until).await?;
    if histories.is_empty() {
        output::note(&format!(
            "serial {:?} has no recorded event by the end of {day} ({zone}): it was not yet in the audit trail then",
            args.serial,
        ));
        return Ok(ExitCode::from(1));
    }
    let stdout = output::stdout();
    match Format::resolve(args.output.format) {
        Format::Json => output::write_json(
            stdout,
            &serde_json::json!({
                "serial": args.serial,
                "on": day,
                "until": iso_time(Some(until)),
                "histories": histories,
            }),
        )?,
        Format::Csv => output::write_csv(stdout, CSV_COLUMNS, histories.iter().flat_map(csv_rows))?,
        Format::Table => print_tables(stdout, &histories, false, Some(&format!("on {day}")))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Why a serial has nothing to show, and its closest matches (the same serial ignoring case,
/// spaces and punctuation; else one or two edits away, or serials starting with it): what the
/// CLI and the web view both say.
pub async fn unknown_serial(
    store: &Store,
    serial: &str,
    company_id: Option<&str>,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<(String, Vec<String>), crate::store::StoreError> {
    let mut close = store.close_serials(serial, company_id, 50).await?;
    let mut msg = format!("serial {serial:?} is not in the audit trail");
    if as_of.is_some() {
        msg.push_str(" as of that time");
    }
    // Recorded, but every event of it is retracted (or not yet observed at --as-of).
    if let Some(at) = close.iter().position(|(s, _)| s == serial) {
        close.remove(at);
        msg = match as_of {
            Some(_) => format!("serial {serial:?} has no events recorded and current at that time"),
            None => format!(
                "serial {serial:?} has only retracted events (its documents changed or were deleted); \
                 --all shows them"
            ),
        };
    }
    // The closest only: `SN000319` suggests `SN-000319`, not its neighbours one digit away.
    let best = close.first().map(|(_, d)| *d);
    let similar = close.into_iter().take_while(|(_, d)| Some(*d) == best).take(10).map(|(s, _)| s).collect();
    Ok((msg, similar))
}

/// One history as the CSV rows of `audit timeline --format csv`.
pub fn csv_rows(h: &History) -> Vec<Vec<String>> {
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
                o(&e.party_id),
                o(&e.party_name),
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

/// The histories as tables under a summary line each; `when` (`on 2025-06-18`) says the summary
/// is of that day.
fn print_tables<W: Write>(mut out: W, histories: &[History], all: bool, when: Option<&str>) -> anyhow::Result<()> {
    let several_companies = histories.windows(2).any(|w| w[0].company_id != w[1].company_id);
    for (i, h) in histories.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let company = if several_companies { format!(", company {}", h.company_id) } else { String::new() };
        // Data from inFlow: shown escaped, like the table's cells.
        let when = when.map_or(String::new(), |w| format!(" {w}"));
        let line = format!("{} ({}{company}){when}: {}", h.serial, h.product_label(), h.now.summary);
        writeln!(out, "{}", output::wrap(&output::printable(&line)))?;
        for line in timeline::genealogy_lines(h) {
            writeln!(out, "  {}", output::printable(&line))?;
        }
        let date = output::time_header("date");
        let mut header = vec![date.as_str(), "event", "document", "location", "change", "on hand"];
        if all {
            header.push("retracted");
        }
        let mut table = output::table(&header);
        // Narrow: the document's number alone (the event names its kind), before anything wraps.
        let narrow = output::width().is_some_and(|w| w < 100);
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
                if narrow {
                    doc_with_party(e)
                } else {
                    format!("{} {}", e.doc_type.replace('_', " "), doc_with_party(e))
                },
                location,
                change,
                entry.on_hand.to_string(),
            ];
            if all {
                row.push(e.retracted_at.map_or(String::new(), |t| format!("retracted {}", short_time(Some(t)))));
            }
            crate::output::add_row(&mut table, row);
        }
        writeln!(out, "{}", crate::output::render(&table))?;
    }
    Ok(())
}

/// How deep a bill of serials is followed: far beyond real products, short of a runaway.
const MAX_LEVELS: usize = 32;

/// The bill of serials of one serial, both ways, per company and product.
#[derive(Debug, serde::Serialize)]
struct Bill {
    company_id: String,
    serial: String,
    product_id: Option<String>,
    product_name: Option<String>,
    /// What it contains, and what those contain.
    components: Vec<TreeNode>,
    /// What it was built into, and what those went into.
    built_into: Vec<TreeNode>,
}

/// `audit timeline SERIAL --tree`.
async fn print_tree(
    store: &Store,
    args: &TimelineArgs,
    rows: Vec<crate::store::query::EventRow>,
) -> anyhow::Result<ExitCode> {
    let company = args.company.company_id.as_deref();
    let down = links_from(store, &args.serial, Side::Components, company).await?;
    let up = links_from(store, &args.serial, Side::BuiltInto, company).await?;
    // The serial's own (company, product) pairs: from its events and from its links.
    let mut roots: Vec<(String, Option<String>, Option<String>)> = Vec::new();
    let mut add_root = |company: &str, product: &Option<String>, name: &Option<String>| {
        if !roots.iter().any(|(c, p, _)| c == company && p == product) {
            roots.push((company.to_string(), product.clone(), name.clone()));
        }
    };
    for h in timeline::histories(rows) {
        add_root(&h.company_id, &h.product_id, &h.product_name);
    }
    for r in down.iter().filter(|r| r.finished_serial == args.serial) {
        add_root(&r.company_id, &r.finished_product_id, &r.finished_product_name);
    }
    for r in up.iter().filter(|r| r.component_serial == args.serial) {
        add_root(&r.company_id, &r.component_product_id, &r.component_product_name);
    }
    if roots.is_empty() {
        output::note(&format!("serial {:?} is not in the audit trail", args.serial));
        return Ok(ExitCode::from(1));
    }
    roots.sort();
    let bills: Vec<Bill> = roots
        .into_iter()
        .map(|(company_id, product_id, product_name)| {
            let root = (args.serial.as_str(), product_id.as_deref());
            Bill {
                components: timeline::tree(&company_id, root, &down, Direction::Down),
                built_into: timeline::tree(&company_id, root, &up, Direction::Up),
                serial: args.serial.clone(),
                company_id,
                product_id,
                product_name,
            }
        })
        .collect();
    let stdout = output::stdout();
    match Format::resolve(args.output.format) {
        Format::Json => output::write_json(stdout, &serde_json::json!({ "serial": args.serial, "trees": bills }))?,
        Format::Csv => output::write_csv(stdout, TREE_CSV_COLUMNS, bills.iter().flat_map(tree_csv_rows))?,
        Format::Table => print_bills(stdout, &bills)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Every link reachable from `serial` one way, level by level (one query per level).
async fn links_from(
    store: &Store,
    serial: &str,
    side: Side,
    company: Option<&str>,
) -> anyhow::Result<Vec<GenealogyRow>> {
    let mut seen = std::collections::HashSet::from([serial.to_string()]);
    let mut frontier = vec![serial.to_string()];
    let mut all = Vec::new();
    for _ in 0..MAX_LEVELS {
        if frontier.is_empty() {
            break;
        }
        let rows = store.genealogy(&frontier, side, company).await?;
        frontier = rows
            .iter()
            .map(|r| match side {
                Side::Components => r.component_serial.clone(),
                Side::BuiltInto => r.finished_serial.clone(),
            })
            .filter(|s| seen.insert(s.clone()))
            .collect();
        all.extend(rows);
    }
    Ok(all)
}

/// CSV of a bill of serials: one row per link, with its level from the root.
pub const TREE_CSV_COLUMNS: &[&str] = &[
    "company_id",
    "root_serial",
    "root_product_id",
    "direction",
    "level",
    "serial",
    "product_id",
    "product_name",
    "parent_serial",
    "doc_number",
    "built_at",
    "matched_to",
];

fn tree_csv_rows(bill: &Bill) -> Vec<Vec<String>> {
    fn walk(bill: &Bill, direction: &str, level: usize, parent: &str, nodes: &[TreeNode], out: &mut Vec<Vec<String>>) {
        for n in nodes {
            out.push(vec![
                bill.company_id.clone(),
                bill.serial.clone(),
                bill.product_id.clone().unwrap_or_default(),
                direction.to_string(),
                level.to_string(),
                n.serial.clone(),
                n.product_id.clone().unwrap_or_default(),
                n.product_name.clone().unwrap_or_default(),
                parent.to_string(),
                n.doc_number.clone().unwrap_or_default(),
                iso_time(n.built_at),
                n.matched_to.clone(),
            ]);
            walk(bill, direction, level + 1, &n.serial, &n.children, out);
        }
    }
    let mut out = Vec::new();
    walk(bill, "component", 1, &bill.serial, &bill.components, &mut out);
    walk(bill, "built_into", 1, &bill.serial, &bill.built_into, &mut out);
    out
}

fn print_bills<W: Write>(mut out: W, bills: &[Bill]) -> anyhow::Result<()> {
    for (i, b) in bills.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let product =
            b.product_name.clone().or_else(|| b.product_id.clone()).unwrap_or_else(|| "unknown product".into());
        // Data from inFlow: shown escaped on a terminal.
        writeln!(out, "{}", output::printable(&format!("{} ({product})", b.serial)))?;
        writeln!(out, "contains:")?;
        print_nodes(&mut out, &b.components, "  ")?;
        writeln!(out, "built into:")?;
        print_nodes(&mut out, &b.built_into, "  ")?;
    }
    Ok(())
}

fn print_nodes<W: Write>(out: &mut W, nodes: &[TreeNode], indent: &str) -> anyhow::Result<()> {
    if nodes.is_empty() && indent == "  " {
        writeln!(out, "  (nothing recorded)")?;
    }
    for (i, n) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        let product = n.product_name.clone().or_else(|| n.product_id.clone()).unwrap_or_default();
        let when = n.built_at.map_or("not completed".to_string(), output::short_day);
        let order = n.doc_number.clone().unwrap_or_default();
        let how = match n.matched_to.as_str() {
            "unit" => "",
            "line" => ", one of its line's units",
            _ => ", one of its order's units",
        };
        let line = format!("{} ({product})  {order}, {when}{how}", n.serial);
        writeln!(out, "{indent}{} {}", if last { "└─" } else { "├─" }, output::printable(&line))?;
        let deeper = format!("{indent}{}", if last { "   " } else { "│  " });
        print_nodes(out, &n.children, &deeper)?;
    }
    Ok(())
}
