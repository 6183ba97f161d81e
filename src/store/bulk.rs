//! Many rows in one statement: each bulk table's columns are listed once ([`Bulk`]), and both
//! engines' statements are built from that list. SQLite takes one multi-row `VALUES`; Postgres
//! takes one array per column, unnested: a short statement whatever the batch size, prepared
//! once, instead of thousands of parameters to bind and plan.

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use sqlx::QueryBuilder;
use sqlx::types::Json;

/// How one column's value is read from a row, by the column's type.
pub(super) enum Get<R> {
    Text(for<'r> fn(&'r R) -> Option<&'r str>),
    Time(fn(&R) -> Option<DateTime<Utc>>),
    Int2(fn(&R) -> i16),
    Int8(fn(&R) -> i64),
    Bool(fn(&R) -> bool),
    Json(for<'r> fn(&'r R) -> &'r RawValue),
}

/// A value every row of a batch shares (the company, the run, the time).
#[derive(Clone, Copy)]
pub(super) enum Same<'a> {
    Text(&'a str),
    Time(DateTime<Utc>),
    Int8(i64),
    MaybeInt8(Option<i64>),
}

/// A bulk insert into one table.
pub(super) struct Bulk<'a, R> {
    pub table: &'static str,
    /// Columns whose value is the same for every row: bound once on Postgres.
    pub same: Vec<(&'static str, Same<'a>)>,
    /// Columns read from each row.
    pub each: Vec<(&'static str, Get<R>)>,
    /// What follows the rows (`ON CONFLICT ...`), per engine.
    pub sqlite_tail: &'static str,
    pub postgres_tail: &'static str,
}

impl<R> Bulk<'_, R> {
    /// `INSERT INTO table (columns) `.
    fn head(&self) -> String {
        let names: Vec<&str> = self.same.iter().map(|(n, _)| *n).chain(self.each.iter().map(|(n, _)| *n)).collect();
        format!("INSERT INTO {} ({}) ", self.table, names.join(", "))
    }

    /// The per-row columns' names, separated by commas.
    fn each_names(&self) -> String {
        self.each.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    }
}

/// Runs a [`Bulk`] insert, the fastest way each engine offers; returns the rows inserted.
pub(super) trait BulkInsert {
    async fn bulk_insert<R>(&mut self, bulk: &Bulk<'_, R>, rows: &[R]) -> Result<u64, sqlx::Error>;
}

impl BulkInsert for sqlx::SqliteConnection {
    async fn bulk_insert<R>(&mut self, bulk: &Bulk<'_, R>, rows: &[R]) -> Result<u64, sqlx::Error> {
        if rows.is_empty() {
            return Ok(0);
        }
        let mut q = QueryBuilder::<sqlx::Sqlite>::new(bulk.head());
        q.push_values(rows, |mut b, r| {
            for (_, value) in &bulk.same {
                match *value {
                    Same::Text(v) => b.push_bind(v),
                    Same::Time(v) => b.push_bind(v),
                    Same::Int8(v) => b.push_bind(v),
                    Same::MaybeInt8(v) => b.push_bind(v),
                };
            }
            for (_, get) in &bulk.each {
                match get {
                    Get::Text(f) => b.push_bind(f(r)),
                    Get::Time(f) => b.push_bind(f(r)),
                    Get::Int2(f) => b.push_bind(f(r)),
                    Get::Int8(f) => b.push_bind(f(r)),
                    Get::Bool(f) => b.push_bind(f(r)),
                    Get::Json(f) => b.push_bind(Json(f(r))),
                };
            }
        });
        q.push(bulk.sqlite_tail);
        Ok(q.build().persistent(false).execute(self).await?.rows_affected())
    }
}

impl BulkInsert for sqlx::PgConnection {
    async fn bulk_insert<R>(&mut self, bulk: &Bulk<'_, R>, rows: &[R]) -> Result<u64, sqlx::Error> {
        if rows.is_empty() {
            return Ok(0);
        }
        let mut q = QueryBuilder::<sqlx::Postgres>::new(bulk.head());
        q.push("SELECT ");
        for (_, value) in &bulk.same {
            match *value {
                Same::Text(v) => q.push_bind(v),
                Same::Time(v) => q.push_bind(v),
                Same::Int8(v) => q.push_bind(v),
                Same::MaybeInt8(v) => q.push_bind(v),
            };
            q.push(", ");
        }
        q.push(bulk.each_names()).push(" FROM UNNEST(");
        for (i, (_, get)) in bulk.each.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            let cast = match get {
                Get::Text(f) => {
                    q.push_bind(rows.iter().map(f).collect::<Vec<_>>());
                    "text"
                }
                Get::Time(f) => {
                    q.push_bind(rows.iter().map(f).collect::<Vec<_>>());
                    "timestamptz"
                }
                Get::Int2(f) => {
                    q.push_bind(rows.iter().map(f).collect::<Vec<_>>());
                    "int2"
                }
                Get::Int8(f) => {
                    q.push_bind(rows.iter().map(f).collect::<Vec<_>>());
                    "int8"
                }
                Get::Bool(f) => {
                    q.push_bind(rows.iter().map(f).collect::<Vec<_>>());
                    "bool"
                }
                Get::Json(f) => {
                    q.push_bind(rows.iter().map(|r| Json(f(r))).collect::<Vec<_>>());
                    "jsonb"
                }
            };
            q.push(format!("::{cast}[]"));
        }
        q.push(") AS t (").push(bulk.each_names()).push(")").push(bulk.postgres_tail);
        // The same text for every batch: prepared once.
        Ok(q.build().execute(self).await?.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::*;

    struct Row {
        name: String,
        n: i16,
    }

    fn bulk() -> Bulk<'static, Row> {
        Bulk {
            table: "t",
            same: vec![("company_id", Same::Text("c1"))],
            each: vec![("name", Get::Text(|r: &Row| Some(r.name.as_str()))), ("n", Get::Int2(|r: &Row| r.n))],
            sqlite_tail: " ON CONFLICT DO NOTHING",
            postgres_tail: " ON CONFLICT DO NOTHING",
        }
    }

    #[test]
    fn the_statement_names_the_shared_columns_then_the_rows_columns() {
        let b = bulk();
        assert_eq!(b.head(), "INSERT INTO t (company_id, name, n) ");
        assert_eq!(b.each_names(), "name, n");
    }

    #[tokio::test]
    async fn sqlite_inserts_every_row_with_the_shared_values() {
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (company_id TEXT, name TEXT PRIMARY KEY, n INTEGER)")
            .execute(&mut conn)
            .await
            .unwrap();
        let rows = [Row { name: "a".into(), n: 1 }, Row { name: "b".into(), n: 2 }];
        assert_eq!(conn.bulk_insert(&bulk(), &rows).await.unwrap(), 2);
        assert_eq!(conn.bulk_insert(&bulk(), &rows[..1]).await.unwrap(), 0, "the tail applies");
        assert_eq!(conn.bulk_insert(&bulk(), &[]).await.unwrap(), 0);
        let got: Vec<(String, String, i16)> =
            sqlx::query_as("SELECT company_id, name, n FROM t ORDER BY name").fetch_all(&mut conn).await.unwrap();
        assert_eq!(got, [("c1".into(), "a".into(), 1), ("c1".into(), "b".into(), 2)]);
    }
}
