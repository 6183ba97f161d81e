//! `audit sql`: a read-only query, printed as a table, JSON or CSV, row by row as it arrives.

mod library;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;

use crate::cli::{GlobalArgs, SqlArgs, SqlFormat};
use crate::output::{self, Format};
use crate::store::adhoc::{
    Dialect, Guard, RowSink, check_no_side_effects, check_read_only, check_single_statement, check_statement_keyword,
    substitute_params,
};
use crate::store::{Backend, Store};

/// Rows per table printed: a table needs its rows to size its columns, and holding them all is
/// what streaming avoids (like psql's FETCH_COUNT, each block is aligned on its own).
const TABLE_BLOCK: usize = 1000;

/// Runs `audit sql`: its exit status, or the error to report.
pub async fn run(global: &GlobalArgs, args: SqlArgs) -> anyhow::Result<ExitCode> {
    if args.list {
        print_list()?;
        return Ok(ExitCode::SUCCESS);
    }
    let store = super::open_reading_store(global).await?;
    let format = match args.format {
        Some(f) => f,
        None if Format::resolve(None) == Format::Table => SqlFormat::Table,
        None => SqlFormat::Json,
    };
    let table =
        |vertical| TableSink { out: output::stdout(), columns: Vec::new(), block: Vec::new(), rows: 0, vertical };
    let mut sink: Box<dyn Sink> = match format {
        SqlFormat::Json => Box::new(JsonSink {
            out: std::io::BufWriter::with_capacity(64 * 1024, output::stdout()),
            columns: Vec::new(),
            rows: 0,
        }),
        SqlFormat::Csv => Box::new(CsvSink { out: csv::Writer::from_writer(output::stdout()), columns: 0 }),
        SqlFormat::Table => Box::new(table(None)),
        SqlFormat::Vertical => Box::new(table(Some(true))),
    };
    let result = query(&store, &args, sink.as_row_sink()).await;
    store.close().await;
    result?;
    sink.finish()?;
    Ok(ExitCode::SUCCESS)
}

async fn query(store: &Store, args: &SqlArgs, sink: &mut dyn RowSink) -> anyhow::Result<()> {
    let dialect = Dialect::from(store.backend());
    let text = query_text(args, store.backend())?;
    let params = checked_params(&args.params)?;
    let text = substitute_params(&text, &params, dialect)?;
    check_statement_keyword(&text)?;
    // SQLite's own parser counts the statements (in the store); Postgres runs one statement per
    // prepared query, and this says why more are refused.
    if dialect == Dialect::Postgres {
        check_single_statement(&text, dialect)?;
    }
    check_read_only(&text)?;
    check_no_side_effects(&text, dialect)?;
    Ok(store.read_only_query(&text, args.timeout, sink).await?)
}

/// The statement: given, shipped (`--query`), or read from a file or stdin (`--file -`).
fn query_text(args: &SqlArgs, backend: Backend) -> anyhow::Result<String> {
    if let Some(q) = &args.query {
        return Ok(q.clone());
    }
    if let Some(name) = &args.named {
        return library::text(name, backend).map(str::to_string).ok_or_else(|| {
            anyhow::anyhow!(
                "there is no shipped query `{name}`; the shipped ones are {} (`audit sql --list` describes them)",
                library::names().join(", ")
            )
        });
    }
    let Some(path) = &args.file else { anyhow::bail!("give a query, --query NAME, --file PATH or --list") };
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("cannot read the query from stdin")?;
        if strip_comments_and_space(&text).is_empty() {
            anyhow::bail!(
                "--file - read no query from stdin: pipe a statement in, e.g. echo 'SELECT 1' | audit sql --file -"
            );
        }
        return Ok(text);
    }
    let path = resolve(path, backend);
    std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {}; the shipped queries run without a file: audit sql --query NAME (see audit sql --list)",
            path.display()
        )
    })
}

/// Parameters whose name says they hold a date or time (`from`, `to`, `since`, `until`, `on`,
/// `date`, or a name ending in `_date`, `_at`, `_from`, ...).
fn is_date_param(name: &str) -> bool {
    const WORDS: &[&str] = &["from", "to", "since", "until", "on", "date", "day", "before", "after", "at"];
    let name = name.to_ascii_lowercase();
    WORDS.contains(&name.as_str()) || WORDS.iter().any(|w| name.ends_with(&format!("_{w}")))
}

/// Whether a value is written as a date or time would be (digits, separators, `T`/`Z`, month
/// names), so that a date-named parameter holding something else (`ship_to=Dock 4`) is passed
/// as given.
fn looks_like_a_date(value: &str) -> bool {
    const MONTHS: &[&str] = &[
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let dateish_word = |w: &str| {
        let w = w.to_ascii_lowercase();
        w == "t" || w == "z" || (w.len() >= 3 && MONTHS.iter().any(|m| m.starts_with(&w)))
    };
    value.chars().any(|c| c.is_ascii_digit())
        && value.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()).all(|w| {
            // `2025-07-01T12:00:00Z` splits into `T`, `Z`.
            dateish_word(w)
        })
}

/// The text without `--` line comments, `/* */` comments or spaces: empty for no statement.
fn strip_comments_and_space(text: &str) -> String {
    text.lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<String>()
        .split("/*")
        .map(|part| part.split_once("*/").map_or(part, |(_, rest)| rest))
        .collect::<String>()
        .trim()
        .to_string()
}

/// Date-like parameters checked and written as the database stores times (UTC, `+00:00`), so
/// that both engines compare them alike: `01/01/2025` is refused, not read differently by
/// SQLite (as text) and Postgres (by its DateStyle).
fn checked_params(params: &[(String, String)]) -> anyhow::Result<Vec<(String, String)>> {
    params
        .iter()
        .map(|(name, value)| {
            // A date has digits and little else: `ship_to=Dock` or `located_at=Bin` is not one.
            if !is_date_param(name) || !looks_like_a_date(value) {
                return Ok((name.clone(), value.clone()));
            }
            let v = value.trim();
            if let Ok(day) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
                return Ok((name.clone(), day.format("%Y-%m-%d").to_string()));
            }
            let time = chrono::DateTime::parse_from_rfc3339(v).map_err(|_| {
                anyhow::anyhow!(
                    "--param {name}={value} is not a date or time: use a date such as 2025-07-01, or a time such as \
                     2025-07-01T12:00:00+00:00 (UTC, or with its offset)"
                )
            })?;
            let utc = time.with_timezone(&chrono::Utc);
            Ok((name.clone(), utc.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)))
        })
        .collect()
}

/// `audit sql --list`: each shipped query, its parameters and what it answers.
fn print_list() -> anyhow::Result<()> {
    let mut out = output::stdout();
    let mut table = output::table(&["query", "parameters", "description"]);
    for q in library::list() {
        let params: Vec<String> = q.params.iter().map(|p| format!("{p}=...")).collect();
        output::add_row(&mut table, vec![q.name, params.join(" "), q.description]);
    }
    writeln!(out, "{}", crate::output::render(&table))?;
    writeln!(out, "Run one with: audit sql --query NAME --param NAME=VALUE")?;
    out.flush()?;
    Ok(())
}

/// `sql/x.sql`, or the engine's own `sql/x.sqlite.sql` / `sql/x.postgres.sql` when only those exist.
fn resolve(path: &Path, backend: Backend) -> PathBuf {
    if path.exists() {
        return path.to_path_buf();
    }
    let dialect = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let candidate = path.with_extension(format!("{dialect}.sql"));
    if candidate.exists() { candidate } else { path.to_path_buf() }
}

/// A value as text in a table or CSV cell.
fn plain(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Column names as JSON object keys, which must differ: a repeated name gets the first free
/// suffix `_2`, `_3`, ... (`SELECT 1 AS a, 2 AS a` gives `a` and `a_2`).
fn unique_names(columns: &[String]) -> Vec<String> {
    let mut taken: std::collections::HashSet<String> = columns.iter().cloned().collect();
    let mut seen = std::collections::HashSet::new();
    columns
        .iter()
        .map(|name| {
            if seen.insert(name.clone()) {
                return name.clone();
            }
            let unique = (2..).map(|n| format!("{name}_{n}")).find(|c| !taken.contains(c)).expect("a free name");
            taken.insert(unique.clone());
            seen.insert(unique.clone());
            unique
        })
        .collect()
}

/// A format's writer: rows as they come, then whatever closes the output.
trait Sink: RowSink {
    fn as_row_sink(&mut self) -> &mut dyn RowSink;
    fn finish(&mut self) -> std::io::Result<()>;
}

/// Said on stderr, on every run where the server does not fully enforce read-only.
fn tell(guard: &Guard) {
    if let Some(warning) = guard.warning() {
        output::note(&warning);
    }
}

/// A list of objects, pretty-printed as `serde_json` prints a whole list, one object at a time.
struct JsonSink<W: Write> {
    out: std::io::BufWriter<W>,
    columns: Vec<String>,
    rows: u64,
}

impl<W: Write> RowSink for JsonSink<W> {
    fn guard(&mut self, guard: &Guard) {
        tell(guard)
    }

    fn columns(&mut self, columns: &[String]) -> std::io::Result<()> {
        self.columns = unique_names(columns);
        Ok(())
    }

    fn row(&mut self, values: Vec<Value>) -> std::io::Result<()> {
        let object: serde_json::Map<String, Value> = self.columns.iter().cloned().zip(values).collect();
        let text = serde_json::to_string_pretty(&object)?;
        self.out.write_all(if self.rows == 0 { b"[\n  " } else { b",\n  " })?;
        // One level deeper, as inside the list (strings hold no raw newline: JSON escapes it).
        self.out.write_all(text.replace('\n', "\n  ").as_bytes())?;
        self.rows += 1;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl<W: Write> Sink for JsonSink<W> {
    fn as_row_sink(&mut self) -> &mut dyn RowSink {
        self
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.out.write_all(if self.rows == 0 { b"[]\n" } else { b"\n]\n" })?;
        self.out.flush()
    }
}

struct CsvSink<W: Write> {
    out: csv::Writer<W>,
    columns: usize,
}

impl<W: Write> RowSink for CsvSink<W> {
    fn guard(&mut self, guard: &Guard) {
        tell(guard)
    }

    fn columns(&mut self, columns: &[String]) -> std::io::Result<()> {
        self.columns = columns.len();
        self.out.write_record(columns).map_err(std::io::Error::other)
    }

    fn row(&mut self, values: Vec<Value>) -> std::io::Result<()> {
        self.out.write_record(values.iter().map(plain)).map_err(std::io::Error::other)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl<W: Write> Sink for CsvSink<W> {
    fn as_row_sink(&mut self) -> &mut dyn RowSink {
        self
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Tables of [`TABLE_BLOCK`] rows, the header on the first, and the row count at the end; or
/// the rows vertical, one block each.
struct TableSink<W: Write> {
    out: W,
    columns: Vec<String>,
    block: Vec<Vec<String>>,
    rows: u64,
    /// Vertical: chosen, or decided by the first block (rows too wide for the terminal).
    vertical: Option<bool>,
}

impl<W: Write> TableSink<W> {
    fn print_block(&mut self) -> std::io::Result<()> {
        let header: Vec<&str> = self.columns.iter().map(String::as_str).collect();
        let first = self.rows == self.block.len() as u64;
        let block = &self.block;
        let vertical = *self.vertical.get_or_insert_with(|| !block.is_empty() && !output::fits(&header, block));
        if vertical {
            let start = self.rows - self.block.len() as u64;
            for (i, row) in self.block.drain(..).enumerate() {
                write!(self.out, "{}", output::vertical_record(start + i as u64 + 1, &header, &row))?;
            }
            return Ok(());
        }
        let mut table = if first { output::table(&header) } else { output::bare_table() };
        for row in self.block.drain(..) {
            output::add_row(&mut table, row);
        }
        writeln!(self.out, "{}", crate::output::render(&table))
    }
}

impl<W: Write> RowSink for TableSink<W> {
    fn guard(&mut self, guard: &Guard) {
        tell(guard)
    }

    fn columns(&mut self, columns: &[String]) -> std::io::Result<()> {
        self.columns = columns.to_vec();
        Ok(())
    }

    fn row(&mut self, values: Vec<Value>) -> std::io::Result<()> {
        self.block.push(values.iter().map(plain).collect());
        self.rows += 1;
        if self.block.len() == TABLE_BLOCK { self.print_block() } else { Ok(()) }
    }
}

impl<W: Write> Sink for TableSink<W> {
    fn as_row_sink(&mut self) -> &mut dyn RowSink {
        self
    }

    fn finish(&mut self) -> std::io::Result<()> {
        if !self.block.is_empty() || self.rows == 0 {
            self.print_block()?;
        }
        writeln!(self.out, "({} row{})", self.rows, if self.rows == 1 { "" } else { "s" })?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_column_names_get_a_suffix_that_is_free() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(unique_names(&names(&["a", "a"])), names(&["a", "a_2"]));
        assert_eq!(unique_names(&names(&["a", "a_2", "a", "b"])), names(&["a", "a_2", "a_3", "b"]));
        assert_eq!(unique_names(&names(&["x", "x", "x"])), names(&["x", "x_2", "x_3"]));
    }

    #[test]
    fn an_empty_query_is_told_as_empty() {
        assert_eq!(strip_comments_and_space("  \n-- just a note\n/* and */ \n"), "");
        assert_eq!(strip_comments_and_space("-- x\nSELECT 1"), "SELECT 1");
    }

    #[test]
    fn date_parameters_are_checked_and_written_as_stored() {
        let p = |n: &str, v: &str| checked_params(&[(n.to_string(), v.to_string())]);
        let err = p("from", "01/01/2025").unwrap_err().to_string();
        assert!(err.contains("--param from=01/01/2025 is not a date") && err.contains("2025-07-01"), "{err}");
        assert_eq!(p("to", " 2025-08-01 ").unwrap()[0].1, "2025-08-01");
        assert_eq!(p("since", "2025-07-01T14:00:00+02:00").unwrap()[0].1, "2025-07-01T12:00:00+00:00");
        assert_eq!(p("shipped_at", "2025-07-01T12:00:00Z").unwrap()[0].1, "2025-07-01T12:00:00+00:00");
        assert!(p("ship_date", "July 1").is_err());
        // Not a date by its name: passed as given.
        assert_eq!(p("po_number", "01/01/2025").unwrap()[0].1, "01/01/2025");
        assert_eq!(p("serial", "SN-1").unwrap()[0].1, "SN-1");
        // Named like a date but holding a name: passed as given, not refused.
        assert_eq!(p("ship_to", "Dock").unwrap()[0].1, "Dock");
        assert_eq!(p("located_at", "West Coast DC").unwrap()[0].1, "West Coast DC");
        assert!(p("from", "2025.01.01").is_err());
        assert!(p("until", "1/1/25").is_err());
        assert_eq!(p("ship_to", "Dock 4").unwrap()[0].1, "Dock 4");
    }

    #[test]
    fn json_keeps_every_column_of_a_row() {
        let mut sink = JsonSink { out: std::io::BufWriter::new(Vec::new()), columns: Vec::new(), rows: 0 };
        sink.columns(&["a".into(), "a".into()]).unwrap();
        sink.row(vec![Value::from(1), Value::from(2)]).unwrap();
        sink.finish().unwrap();
        let text = String::from_utf8(sink.out.into_inner().unwrap()).unwrap();
        let rows: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(rows, serde_json::json!([{"a": 1, "a_2": 2}]));
    }
}
