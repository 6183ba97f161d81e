//! Output formats shared by the commands that print results: a table for people, JSON and CSV
//! for programs. Results go to stdout; everything else goes to stderr.

use std::io::{IsTerminal, Write};

use chrono::{DateTime, Utc};

/// How a command prints its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

impl Format {
    /// The chosen format, or a table on a terminal and JSON elsewhere.
    pub fn resolve(chosen: Option<Format>) -> Format {
        chosen.unwrap_or_else(|| if std::io::stdout().is_terminal() { Format::Table } else { Format::Json })
    }
}

/// A table for terminal output, in the project's style.
pub fn table(header: &[&str]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING).set_header(header.iter().map(|h| h.to_string()));
    table
}

/// Writes rows as CSV with a header line.
pub fn write_csv<W: Write>(out: W, header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(header)?;
    for row in rows {
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}

/// Writes pretty JSON and a final newline. Buffered: the serializer writes token by token, and
/// stdout (a `LineWriter`) would make a system call of every line.
pub fn write_json<W: Write, T: serde::Serialize>(out: W, value: &T) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// A time as people read it in a table: `2025-07-02 15:00` in UTC.
pub fn short_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".to_string(), |t| t.format("%Y-%m-%d %H:%M").to_string())
}

/// A time as programs read it: RFC 3339 in UTC, or empty.
pub fn iso_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(String::new, |t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}
