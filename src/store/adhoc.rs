//! Ad-hoc read-only SQL for `audit sql`: any query, either engine, values as JSON.
//!
//! Read-only is enforced by the database, not by inspecting the text: SQLite runs the query on
//! a connection opened read-only, Postgres inside a `READ ONLY` transaction that is rolled back.
//! A quick look at the first keyword only turns the common case into a friendlier message.

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
#[error(
    "audit sql only reads: `{keyword}` statements are refused (the database is opened read-only)"
)]
pub struct WriteRefused {
    pub keyword: String,
}

/// Refuses a statement whose first keyword is not a reading one.
pub fn check_read_only(sql: &str) -> Result<(), WriteRefused> {
    let keyword: String = strip_leading_comments(sql)
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    if READING_KEYWORDS.contains(&keyword.to_ascii_lowercase().as_str()) {
        Ok(())
    } else {
        Err(WriteRefused {
            keyword: keyword.to_ascii_uppercase(),
        })
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

/// Replaces each `:name` outside strings, quoted identifiers and comments with the value as a
/// quoted SQL literal. Literals rather than bound parameters, because a bound text parameter
/// has a type on Postgres (`timestamptz >= text` fails) where a literal adapts to its context,
/// as it does on SQLite. The query runs read-only, so a value cannot do harm.
pub fn substitute_params(sql: &str, params: &[(String, String)]) -> Result<String, ParamError> {
    let mut out = String::with_capacity(sql.len());
    let mut used = vec![false; params.len()];
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\'' | '"' => {
                // Copy a string or quoted identifier through its closing quote ('' escapes).
                let mut end = i + 1;
                while end < chars.len() {
                    if chars[end] == c && chars.get(end + 1) == Some(&c) {
                        end += 2;
                    } else if chars[end] == c {
                        break;
                    } else {
                        end += 1;
                    }
                }
                let end = end.min(chars.len() - 1);
                out.extend(&chars[i..=end]);
                i = end + 1;
            }
            '-' if next == Some('-') => {
                let end = (i..chars.len())
                    .find(|&j| chars[j] == '\n')
                    .unwrap_or(chars.len());
                out.extend(&chars[i..end]);
                i = end;
            }
            '/' if next == Some('*') => {
                let end = (i + 2..chars.len().saturating_sub(1))
                    .find(|&j| chars[j] == '*' && chars[j + 1] == '/')
                    .map_or(chars.len(), |j| j + 2);
                out.extend(&chars[i..end]);
                i = end;
            }
            ':' if next == Some(':') => {
                out.push_str("::");
                i += 2;
            }
            ':' if next.is_some_and(|n| n.is_ascii_alphabetic() || n == '_') => {
                let end = (i + 1..chars.len())
                    .find(|&j| !(chars[j].is_ascii_alphanumeric() || chars[j] == '_'))
                    .unwrap_or(chars.len());
                let name: String = chars[i + 1..end].iter().collect();
                let Some(k) = params.iter().position(|(n, _)| *n == name) else {
                    return Err(ParamError::Missing(name));
                };
                used[k] = true;
                out.push('\'');
                out.push_str(&params[k].1.replace('\'', "''"));
                out.push('\'');
                i = end;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
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
                let options = SqliteConnectOptions::from_str(self.url().expose())
                    .context(what)?
                    .read_only(true);
                let mut conn = sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .context(what)?;
                let rows = sqlx::query(statement)
                    .fetch_all(&mut conn)
                    .await
                    .context(what)?;
                conn.close().await.ok();
                Ok(ResultSet {
                    columns: columns(rows.first()),
                    rows: rows.iter().map(sqlite_values).collect(),
                })
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await.context(what)?;
                sqlx::query("SET TRANSACTION READ ONLY")
                    .execute(&mut *tx)
                    .await
                    .context(what)?;
                let rows = sqlx::query(statement)
                    .fetch_all(&mut *tx)
                    .await
                    .context(what)?;
                tx.rollback().await.context(what)?;
                Ok(ResultSet {
                    columns: columns(rows.first()),
                    rows: rows.iter().map(pg_values).collect(),
                })
            }
        }
    }
}

fn columns<R: Row>(row: Option<&R>) -> Vec<String> {
    row.map(|r| r.columns().iter().map(|c| c.name().to_string()).collect())
        .unwrap_or_default()
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
                "INTEGER" => row
                    .try_get::<i64, _>(i)
                    .map(Value::from)
                    .unwrap_or(Value::Null),
                "REAL" => row
                    .try_get::<f64, _>(i)
                    .map(Value::from)
                    .unwrap_or(Value::Null),
                "BLOB" => row
                    .try_get::<Vec<u8>, _>(i)
                    .map(|b| Value::from(format!("<{} bytes>", b.len())))
                    .unwrap_or(Value::Null),
                _ => row
                    .try_get::<String, _>(i)
                    .map(Value::from)
                    .unwrap_or(Value::Null),
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
                "INT2" => row
                    .try_get::<i16, _>(i)
                    .map(Value::from)
                    .unwrap_or(Value::Null),
                "INT4" => row
                    .try_get::<i32, _>(i)
                    .map(Value::from)
                    .unwrap_or(Value::Null),
                "INT8" => row
                    .try_get::<i64, _>(i)
                    .map(Value::from)
                    .unwrap_or(Value::Null),
                "FLOAT4" | "FLOAT8" => row
                    .try_get::<f64, _>(i)
                    .map(Value::from)
                    .unwrap_or(Value::Null),
                "NUMERIC" => text(
                    row.try_get::<rust_decimal::Decimal, _>(i)
                        .map(|d| d.normalize().to_string()),
                ),
                "BOOL" => row
                    .try_get::<bool, _>(i)
                    .map(Value::from)
                    .unwrap_or(Value::Null),
                "TIMESTAMPTZ" => text(
                    row.try_get::<chrono::DateTime<chrono::Utc>, _>(i)
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
                ),
                "TIMESTAMP" => text(
                    row.try_get::<chrono::NaiveDateTime, _>(i)
                        .map(|t| t.to_string()),
                ),
                "DATE" => text(
                    row.try_get::<chrono::NaiveDate, _>(i)
                        .map(|t| t.to_string()),
                ),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn named_parameters_become_quoted_literals_outside_strings_and_comments() {
        let sql = "SELECT ':skip', \"a:b\" FROM t -- :nope\nWHERE x = :po AND y::text = :po /* :no */ AND z = 'it''s :x'";
        assert_eq!(
            substitute_params(sql, &p(&[("po", "PO-1'; DROP TABLE t; --")])).unwrap(),
            "SELECT ':skip', \"a:b\" FROM t -- :nope\nWHERE x = 'PO-1''; DROP TABLE t; --' AND y::text = 'PO-1''; DROP TABLE t; --' /* :no */ AND z = 'it''s :x'"
        );
        assert_eq!(
            substitute_params("select :a", &[]),
            Err(ParamError::Missing("a".into()))
        );
        assert_eq!(
            substitute_params("select 1", &p(&[("a", "1")])),
            Err(ParamError::Unused("a".into()))
        );
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
            assert_eq!(
                check_read_only(bad),
                Err(WriteRefused { keyword: kw.into() }),
                "{bad}"
            );
        }
    }
}
