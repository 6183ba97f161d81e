//! `audit sql`: a read-only query, printed as a table, JSON or CSV.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;

use crate::cli::{GlobalArgs, SqlArgs};
use crate::output::{self, Format};
use crate::store::adhoc::{check_no_side_effects, check_read_only, check_single_statement, substitute_params};
use crate::store::{Backend, Store};

pub async fn run(global: &GlobalArgs, args: SqlArgs) -> anyhow::Result<ExitCode> {
    let store = super::open_existing_store(global).await?;
    let result = query(&store, &args).await;
    store.close().await;
    let rows = result?;
    let stdout = std::io::stdout().lock();
    match Format::resolve(args.format) {
        Format::Json => {
            let objects: Vec<serde_json::Map<String, Value>> =
                rows.rows.iter().map(|r| rows.columns.iter().cloned().zip(r.iter().cloned()).collect()).collect();
            output::write_json(stdout, &objects)?;
        }
        Format::Csv => {
            let header: Vec<&str> = rows.columns.iter().map(String::as_str).collect();
            output::write_csv(stdout, &header, rows.rows.iter().map(|r| r.iter().map(plain).collect()))?;
        }
        Format::Table => {
            use std::io::Write;
            let header: Vec<&str> = rows.columns.iter().map(String::as_str).collect();
            let mut table = output::table(&header);
            for r in &rows.rows {
                table.add_row(r.iter().map(plain).collect::<Vec<_>>());
            }
            let mut out = stdout;
            writeln!(out, "{table}")?;
            writeln!(out, "({} row{})", rows.rows.len(), if rows.rows.len() == 1 { "" } else { "s" })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn query(store: &Store, args: &SqlArgs) -> anyhow::Result<crate::store::adhoc::ResultSet> {
    let text = match (&args.query, &args.file) {
        (Some(q), _) => q.clone(),
        (None, Some(path)) => {
            let path = resolve(path, store.backend());
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?
        }
        (None, None) => unreachable!("clap requires a query or --file"),
    };
    let text = substitute_params(&text, &args.params)?;
    check_single_statement(&text)?;
    check_read_only(&text)?;
    check_no_side_effects(&text)?;
    Ok(store.read_only_query(&text).await?)
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
