//! Ad-hoc read-only SQL for `audit sql`: any query, either engine, values as JSON.
//!
//! Read-only is enforced by the database, not by inspecting the text: SQLite runs the query on
//! a connection opened read-only, Postgres inside a `READ ONLY` transaction that is rolled back.
//! A look at the text adds what the database cannot: one statement only (SQLite would run them
//! all), no Postgres function that acts outside the transaction, and a friendlier message for
//! the common case of a write.

use std::str::FromStr;

use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{Column, Connection, Row, TypeInfo, ValueRef};

use super::{Context, Pool, Store, StoreError};

/// The result of a query: column names and rows of JSON values.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ResultSet {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// Statements `audit sql` accepts, by their first keyword.
const READING_KEYWORDS: &[&str] = &["select", "with", "values", "explain", "table", "show"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("audit sql only reads: `{keyword}` statements are refused (the database is opened read-only)")]
pub struct WriteRefused {
    pub keyword: String,
}

/// Refuses a statement whose first keyword is not a reading one.
pub fn check_read_only(sql: &str) -> Result<(), WriteRefused> {
    let keyword: String = strip_leading_comments(sql).chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    if READING_KEYWORDS.contains(&keyword.to_ascii_lowercase().as_str()) {
        Ok(())
    } else {
        Err(WriteRefused { keyword: keyword.to_ascii_uppercase() })
    }
}

fn strip_leading_comments(mut s: &str) -> &str {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix("--") {
            s = rest.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(rest) = s.strip_prefix("/*") {
            s = rest.split_once("*/").map_or("", |(_, r)| r);
        } else {
            return s;
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParamError {
    #[error("the query uses :{0} but no --param {0}=VALUE was given")]
    Missing(String),
    #[error("--param {0} is not used by the query")]
    Unused(String),
}

/// A piece of SQL text: code, or something parameters and separators do not apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    Code,
    /// A string literal or quoted identifier, quotes included.
    Quoted,
    Comment,
}

/// Splits SQL into code, quoted text and comments, as SQLite's tokenizer does: strings '..',
/// identifiers "..", `..` (doubled quotes escape) and [..], comments -- and /* */. SQLite runs
/// every statement of a text, so the one-statement check must not miss a `;` that only looks
/// quoted. (Postgres runs one statement per query whatever the text holds.)
fn pieces(sql: &str) -> Vec<(Piece, &str)> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        let end = match (bytes[i], bytes.get(i + 1)) {
            (q @ (b'\'' | b'"' | b'`'), _) => {
                let mut j = i + 1;
                while j < bytes.len() {
                    if bytes[j] == q && bytes.get(j + 1) == Some(&q) {
                        j += 2;
                    } else if bytes[j] == q {
                        break;
                    } else {
                        j += 1;
                    }
                }
                Some((Piece::Quoted, (j + 1).min(bytes.len())))
            }
            (b'[', _) => Some((Piece::Quoted, sql[i..].find(']').map_or(bytes.len(), |n| i + n + 1))),
            (b'-', Some(b'-')) => Some((Piece::Comment, sql[i..].find('\n').map_or(bytes.len(), |n| i + n))),
            (b'/', Some(b'*')) => {
                Some((Piece::Comment, sql[i + 2..].find("*/").map_or(bytes.len(), |n| i + 2 + n + 2)))
            }
            _ => None,
        };
        match end {
            Some((piece, end)) => {
                if start < i {
                    out.push((Piece::Code, &sql[start..i]));
                }
                out.push((piece, &sql[i..end]));
                start = end;
                i = end;
            }
            None => i += 1,
        }
    }
    if start < bytes.len() {
        out.push((Piece::Code, &sql[start..]));
    }
    out
}

/// Refuses more than one statement (a trailing `;` is fine): both engines would run only part
/// of it, or refuse it with a less helpful message.
pub fn check_single_statement(sql: &str) -> Result<(), MultipleStatements> {
    let code: String = pieces(sql).into_iter().filter(|(p, _)| *p == Piece::Code).map(|(_, s)| s).collect();
    match code.trim().trim_end_matches(';').contains(';') {
        true => Err(MultipleStatements),
        false => Ok(()),
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("audit sql runs one statement at a time; this text has several (separated by `;`)")]
pub struct MultipleStatements;

/// Postgres functions that act outside the transaction (on other sessions, the server, files,
/// other databases), which a read-only transaction does not stop.
const SIDE_EFFECT_FUNCTIONS: &[&str] = &[
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_log_backend_memory_contexts",
    "pg_file_write",
    "lo_import",
    "lo_export",
    "dblink",
    "dblink_exec",
    "dblink_connect",
    "dblink_send_query",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "audit sql refuses {0}(): it acts outside the read-only transaction. To give people ad-hoc SQL safely, \
     connect them as a database role that may only SELECT"
)]
pub struct SideEffectRefused(pub String);

/// Refuses any mention of the functions in [`SIDE_EFFECT_FUNCTIONS`], quoted or not: Postgres
/// can call a quoted name (`"pg_cancel_backend"(0)`), and its quoting (`E'\''`, `$$`, arrays in
/// brackets) is not SQLite's. A mention in a string or comment is refused too; that is rare, and
/// a guess that misses is worse. Best effort: a role that may only SELECT is the real guard.
pub fn check_no_side_effects(sql: &str) -> Result<(), SideEffectRefused> {
    let words = sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
    match words.map(str::to_ascii_lowercase).find(|w| SIDE_EFFECT_FUNCTIONS.contains(&w.as_str())) {
        Some(f) => Err(SideEffectRefused(f)),
        None => Ok(()),
    }
}

/// Replaces each `:name` outside strings, quoted identifiers and comments with the value as a
/// quoted SQL literal. Literals rather than bound parameters, because a bound text parameter
/// has a type on Postgres (`timestamptz >= text` fails) where a literal adapts to its context,
/// as it does on SQLite. The query runs read-only, so a value cannot do harm.
pub fn substitute_params(sql: &str, params: &[(String, String)]) -> Result<String, ParamError> {
    let mut out = String::with_capacity(sql.len());
    let mut used = vec![false; params.len()];
    for (piece, text) in pieces(sql) {
        if piece != Piece::Code {
            out.push_str(text);
            continue;
        }
        let mut rest = text;
        while let Some(colon) = rest.find(':') {
            out.push_str(&rest[..colon]);
            let after = &rest[colon + 1..];
            if let Some(cast) = after.strip_prefix(':') {
                // A Postgres cast, `x::text`.
                out.push_str("::");
                rest = cast;
                continue;
            }
            let len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            let name = &after[..len];
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                out.push(':');
                rest = after;
                continue;
            }
            let k = params.iter().position(|(n, _)| n == name).ok_or_else(|| ParamError::Missing(name.to_string()))?;
            used[k] = true;
            out.push('\'');
            out.push_str(&params[k].1.replace('\'', "''"));
            out.push('\'');
            rest = &after[len..];
        }
        out.push_str(rest);
    }
    if let Some(k) = used.iter().position(|u| !u) {
        return Err(ParamError::Unused(params[k].0.clone()));
    }
    Ok(out)
}

impl Store {
    /// Runs one query without any possibility of changing the database.
    pub async fn read_only_query(&self, sql: &str) -> Result<ResultSet, StoreError> {
        let what = || "running the query".to_string();
        let statement = sqlx::AssertSqlSafe(sql.to_string());
        match &self.pool {
            Pool::Sqlite(_) => {
                let options = SqliteConnectOptions::from_str(self.url().expose()).context(what)?.read_only(true);
                let mut conn = sqlx::SqliteConnection::connect_with(&options).await.context(what)?;
                let rows = sqlx::query(statement).fetch_all(&mut conn).await.context(what)?;
                let columns = match rows.first() {
                    Some(row) => columns(row),
                    None => described_columns(&mut conn, sql).await,
                };
                conn.close().await.ok();
                Ok(ResultSet { columns, rows: rows.iter().map(sqlite_values).collect() })
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await.context(what)?;
                sqlx::query("SET TRANSACTION READ ONLY").execute(&mut *tx).await.context(what)?;
                let rows = sqlx::query(statement).fetch_all(&mut *tx).await.context(what)?;
                let columns = match rows.first() {
                    Some(row) => columns(row),
                    None => described_columns(&mut *tx, sql).await,
                };
                tx.rollback().await.context(what)?;
                Ok(ResultSet { columns, rows: rows.iter().map(pg_values).collect() })
            }
        }
    }
}

fn columns<R: Row>(row: &R) -> Vec<String> {
    row.columns().iter().map(|c| c.name().to_string()).collect()
}

/// The column names of a query that returned no rows, so that an empty CSV still has its
/// header. Best effort: none when the driver cannot describe the statement.
async fn described_columns<'c, E: sqlx::Executor<'c>>(executor: E, sql: &str) -> Vec<String> {
    use sqlx::Statement as _;
    match executor.prepare(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(sql.to_string()))).await {
        Ok(statement) => statement.columns().iter().map(|c| c.name().to_string()).collect(),
        Err(_) => Vec::new(),
    }
}

fn sqlite_values(row: &SqliteRow) -> Vec<Value> {
    (0..row.len())
        .map(|i| {
            let raw = match row.try_get_raw(i) {
                Ok(raw) if !raw.is_null() => raw,
                _ => return Value::Null,
            };
            // SQLite values carry their storage class.
            match raw.type_info().name() {
                "INTEGER" => row.try_get::<i64, _>(i).map(Value::from).unwrap_or(Value::Null),
                "REAL" => row.try_get::<f64, _>(i).map(Value::from).unwrap_or(Value::Null),
                "BLOB" => row
                    .try_get::<Vec<u8>, _>(i)
                    .map(|b| Value::from(format!("<{} bytes>", b.len())))
                    .unwrap_or(Value::Null),
                _ => row.try_get::<String, _>(i).map(Value::from).unwrap_or(Value::Null),
            }
        })
        .collect()
}

fn pg_values(row: &PgRow) -> Vec<Value> {
    (0..row.len())
        .map(|i| {
            let raw = match row.try_get_raw(i) {
                Ok(raw) if !raw.is_null() => raw,
                _ => return Value::Null,
            };
            let ty = raw.type_info().name().to_string();
            let text = |r: Result<String, sqlx::Error>| r.map(Value::from).unwrap_or(Value::Null);
            match ty.as_str() {
                "INT2" => row.try_get::<i16, _>(i).map(Value::from).unwrap_or(Value::Null),
                "INT4" => row.try_get::<i32, _>(i).map(Value::from).unwrap_or(Value::Null),
                "INT8" => row.try_get::<i64, _>(i).map(Value::from).unwrap_or(Value::Null),
                "FLOAT4" | "FLOAT8" => row.try_get::<f64, _>(i).map(Value::from).unwrap_or(Value::Null),
                "NUMERIC" => row.try_get::<rust_decimal::Decimal, _>(i).map(decimal_value).unwrap_or(Value::Null),
                "BOOL" => row.try_get::<bool, _>(i).map(Value::from).unwrap_or(Value::Null),
                "TIMESTAMPTZ" => text(
                    row.try_get::<chrono::DateTime<chrono::Utc>, _>(i)
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
                ),
                "TIMESTAMP" => text(row.try_get::<chrono::NaiveDateTime, _>(i).map(|t| t.to_string())),
                "DATE" => text(row.try_get::<chrono::NaiveDate, _>(i).map(|t| t.to_string())),
                "JSON" | "JSONB" => row.try_get::<Value, _>(i).unwrap_or(Value::Null),
                "UUID" => text(row.try_get::<uuid::Uuid, _>(i).map(|u| u.to_string())),
                _ => row
                    .try_get::<String, _>(i)
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::from(format!("<{ty}: cast it to text to see it>"))),
            }
        })
        .collect()
}

/// A decimal as a JSON number when a float holds it exactly, else as text.
fn decimal_value(d: rust_decimal::Decimal) -> Value {
    use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
    let d = d.normalize();
    match d.to_f64() {
        Some(f) if rust_decimal::Decimal::from_f64(f).map(|x| x.normalize()) == Some(d) => Value::from(f),
        _ => Value::from(d.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn named_parameters_become_quoted_literals_outside_strings_and_comments() {
        let sql =
            "SELECT ':skip', \"a:b\" FROM t -- :nope\nWHERE x = :po AND y::text = :po /* :no */ AND z = 'it''s :x'";
        assert_eq!(
            substitute_params(sql, &p(&[("po", "PO-1'; DROP TABLE t; --")])).unwrap(),
            "SELECT ':skip', \"a:b\" FROM t -- :nope\nWHERE x = 'PO-1''; DROP TABLE t; --' AND y::text = 'PO-1''; DROP TABLE t; --' /* :no */ AND z = 'it''s :x'"
        );
        assert_eq!(substitute_params("select :a", &[]), Err(ParamError::Missing("a".into())));
        assert_eq!(substitute_params("select 1", &p(&[("a", "1")])), Err(ParamError::Unused("a".into())));
        assert_eq!(
            substitute_params("select '2025-01-01 10:00:00', 'unterminated :x", &[]).unwrap(),
            "select '2025-01-01 10:00:00', 'unterminated :x"
        );
    }

    #[test]
    fn one_statement_at_a_time() {
        assert_eq!(check_single_statement("select 1;"), Ok(()));
        assert_eq!(check_single_statement("select ';' -- ; \n /* ; */"), Ok(()));
        assert_eq!(check_single_statement("select 1 as [a;b], 2 as `c;d`, 3 as \"e;f\""), Ok(()));
        assert_eq!(check_single_statement("select 1; delete from t"), Err(MultipleStatements));
        // A quote inside a [..] or `..` identifier is not a string's start (SQLite's tokenizer).
        for sneaky in [
            "SELECT 1 AS [a']; VACUUM INTO '/tmp/copy.db'; SELECT 1 AS [']",
            "SELECT 1 AS `a'`; VACUUM INTO '/tmp/copy.db'; SELECT 1 AS `'`",
        ] {
            assert_eq!(check_single_statement(sneaky), Err(MultipleStatements), "{sneaky}");
        }
    }

    #[test]
    fn functions_that_act_outside_the_transaction_are_refused() {
        assert_eq!(
            check_no_side_effects("SELECT PG_TERMINATE_BACKEND (pid) FROM pg_stat_activity"),
            Err(SideEffectRefused("pg_terminate_backend".into()))
        );
        assert!(check_no_side_effects("select dblink_exec('x', 'delete from t')").is_err());
        // Quoted names and Postgres quoting the splitter does not know do not hide them.
        for sneaky in [
            "SELECT \"pg_cancel_backend\"(0)",
            "SELECT ARRAY[pg_terminate_backend(pid)] FROM pg_stat_activity",
            "SELECT E'\\'', pg_terminate_backend(pid), ''' ' FROM pg_stat_activity",
        ] {
            assert!(check_no_side_effects(sneaky).is_err(), "{sneaky}");
        }
        // Part of another word, a name is harmless.
        assert_eq!(check_no_side_effects("select my_dblink_count, pg_cancel_backends from t"), Ok(()));
    }

    #[test]
    fn only_reading_statements_pass_the_first_look() {
        for ok in [
            "SELECT 1",
            "  with x as (select 1) select * from x",
            "-- note\n/* c */ select 1",
            "VALUES (1)",
            "explain select 1",
        ] {
            assert_eq!(check_read_only(ok), Ok(()), "{ok}");
        }
        for (bad, kw) in [
            ("INSERT INTO t VALUES (1)", "INSERT"),
            ("update t set a = 1", "UPDATE"),
            ("-- sneaky\ndelete from t", "DELETE"),
            ("DROP TABLE serial_events", "DROP"),
            ("pragma writable_schema = 1", "PRAGMA"),
        ] {
            assert_eq!(check_read_only(bad), Err(WriteRefused { keyword: kw.into() }), "{bad}");
        }
    }
}
