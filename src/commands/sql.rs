//! `audit sql`: a read-only query, printed as a table, JSON or CSV, row by row as it arrives.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;

use crate::cli::{GlobalArgs, SqlArgs, SqlFormat};
use crate::output::{self, Format};
use crate::store::adhoc::{
    Dialect, Guard, RowSink, check_no_side_effects, check_read_only, check_single_statement, substitute_params,
};
use crate::store::{Backend, Store};

/// Rows per table printed: a table needs its rows to size its columns, and holding them all is
/// what streaming avoids (like psql's FETCH_COUNT, each block is aligned on its own).
const TABLE_BLOCK: usize = 1000;

/// Runs `audit sql`: its exit status, or the error to report.
pub async fn run(global: &GlobalArgs, args: SqlArgs) -> anyhow::Result<ExitCode> {
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
    let text = match (&args.query, &args.file) {
        (Some(q), _) => q.clone(),
        (None, Some(path)) => {
            let path = resolve(path, store.backend());
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?
        }
        (None, None) => unreachable!("clap requires a query or --file"),
    };
    let text = substitute_params(&text, &args.params, dialect)?;
    // SQLite's own parser counts the statements (in the store); Postgres runs one statement per
    // prepared query, and this says why more are refused.
    if dialect == Dialect::Postgres {
        check_single_statement(&text, dialect)?;
    }
    check_read_only(&text)?;
    check_no_side_effects(&text, dialect)?;
    Ok(store.read_only_query(&text, args.timeout, sink).await?)
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
        writeln!(self.out, "{table}")
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
