//! Ad-hoc read-only SQL for `audit sql`: any query, either engine, rows streamed as JSON values.
//!
//! Read-only is enforced by the database, not by inspecting the text. SQLite runs the query on a
//! connection opened read-only. Postgres runs it in a `READ ONLY` transaction, as the database's
//! own read-only role (`SET LOCAL ROLE`), inside `audit_sql_rows()`, a `SECURITY DEFINER`
//! function owned by that role: Postgres refuses to change the role inside such a function, so
//! the query cannot switch back, even on a superuser's connection (migration V6 sets it up where
//! the migrating user may create roles; otherwise every run says so). Both engines stop a query
//! at the timeout: Postgres by its `statement_timeout`, SQLite by a progress handler.
//!
//! A look at the text adds what the database cannot: one statement only (SQLite would run them
//! all), a friendlier message for the common case of a write, and a refusal of Postgres functions
//! known to act outside the transaction (a second layer, not the wall).

use std::str::FromStr;
use std::time::Duration;

use futures_util::TryStreamExt;
use serde_json::Value;
use serde_json::value::RawValue;
use sqlx::postgres::PgRow;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{Column, Connection, Row, TypeInfo, ValueRef};

use super::{Backend, Context, Pool, Store, StoreError};

/// Where the rows of a query go, as they arrive: nothing holds the whole result.
pub trait RowSink {
    /// What enforces read-only for this query; told before it runs.
    fn guard(&mut self, guard: &Guard);
    /// The column names, once, before any row (also when there is none).
    fn columns(&mut self, columns: &[String]) -> std::io::Result<()>;
    fn row(&mut self, values: Vec<Value>) -> std::io::Result<()>;
}

/// What made a query read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// SQLite: a connection opened read-only.
    ReadOnlyFile,
    /// Postgres: a read-only transaction, as the read-only role, which the query cannot leave.
    ReaderRole { role: String },
    /// Postgres without the read-only role: a read-only transaction with the rights of `owner`
    /// (the user that migrated the database; not a superuser), which the query cannot leave.
    OwnerRights { owner: String, reader: String, schema: String },
    /// Postgres without the read-only role or its function: a read-only transaction with the
    /// connecting user's own rights.
    OwnRights { user: String, reader: String, schema: String },
}

impl Guard {
    /// What to tell the user on every run when the server does not fully enforce read-only.
    pub fn warning(&self) -> Option<String> {
        // The set-up migration V6 makes where it may, for an administrator to run once.
        let fix = |reader: &str, user: &str, schema: &str| {
            format!(
                "An administrator fixes this once, in this database: CREATE ROLE \"{reader}\" NOLOGIN; \
                 GRANT SELECT ON ALL TABLES IN SCHEMA \"{schema}\" TO \"{reader}\"; \
                 ALTER DEFAULT PRIVILEGES FOR ROLE \"{user}\" IN SCHEMA \"{schema}\" GRANT SELECT ON TABLES TO \"{reader}\"; \
                 ALTER FUNCTION \"{schema}\".audit_sql_rows(text) OWNER TO \"{reader}\"; \
                 GRANT EXECUTE ON FUNCTION \"{schema}\".audit_sql_rows(text) TO \"{user}\"; \
                 GRANT \"{reader}\" TO \"{user}\"; (README, section Security)"
            )
        };
        match self {
            Guard::ReadOnlyFile | Guard::ReaderRole { .. } => None,
            Guard::OwnerRights { owner, reader, schema } => Some(format!(
                "audit sql: the read-only role \"{reader}\" is not set up, so this query ran with the rights of \
                 \"{owner}\" (in a read-only transaction). {}",
                fix(reader, owner, schema)
            )),
            Guard::OwnRights { user, reader, schema } => Some(format!(
                "audit sql: the read-only role \"{reader}\" is not set up or not available to \"{user}\", so this query \
                 ran with the rights of \"{user}\" (in a read-only transaction), which may do more than read. {}",
                fix(reader, user, schema)
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(
        "the query ran longer than {} and was stopped; give it more time with --timeout",
        humantime::format_duration(*.0)
    )]
    Timeout(Duration),
    #[error("audit sql only reads; the database refused the statement: {0}")]
    Refused(String),
    #[error("writing the result failed")]
    Output(#[source] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a query text is read: SQLite's quoting or Postgres's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl From<Backend> for Dialect {
    fn from(backend: Backend) -> Dialect {
        match backend {
            Backend::Sqlite => Dialect::Sqlite,
            Backend::Postgres => Dialect::Postgres,
        }
    }
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

/// Splits SQL into code, quoted text and comments, as the engine's tokenizer does, so that a
/// `;` or a `:name` that only looks quoted is seen for what it is. SQLite: strings '..',
/// identifiers "..", `..` (doubled quotes escape) and [..], comments -- and /* */; it runs every
/// statement of a text. Postgres: strings '..' (E'..' with backslash escapes), identifiers "..",
/// dollar quotes $$..$$ and $tag$..$tag$, comments -- and nested /* */.
fn pieces(sql: &str, dialect: Dialect) -> Vec<(Piece, &str)> {
    let bytes = sql.as_bytes();
    let quoted_until = |i: usize, q: u8, backslashes: bool| {
        let mut j = i + 1;
        while j < bytes.len() {
            // A backslash escape (E'..' only) or a doubled quote.
            if (backslashes && bytes[j] == b'\\') || (bytes[j] == q && bytes.get(j + 1) == Some(&q)) {
                j += 2;
            } else if bytes[j] == q {
                break;
            } else {
                j += 1;
            }
        }
        (j + 1).min(bytes.len())
    };
    let word_char = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        let after_word = i > 0 && word_char(bytes[i - 1]);
        let end = match (dialect, bytes[i], bytes.get(i + 1)) {
            (Dialect::Postgres, b'\'', _) => {
                // E'..' (or e'..'): the E must be a word of its own.
                let escaped = i > 0 && matches!(bytes[i - 1], b'E' | b'e') && (i < 2 || !word_char(bytes[i - 2]));
                Some((Piece::Quoted, quoted_until(i, b'\'', escaped)))
            }
            (Dialect::Postgres, b'"', _) => Some((Piece::Quoted, quoted_until(i, b'"', false))),
            (Dialect::Postgres, b'$', _) if !after_word => dollar_quote(sql, i).map(|end| (Piece::Quoted, end)),
            (Dialect::Postgres, b'/', Some(b'*')) => Some((Piece::Comment, nested_comment_end(bytes, i))),
            (Dialect::Sqlite, q @ (b'\'' | b'"' | b'`'), _) => Some((Piece::Quoted, quoted_until(i, q, false))),
            (Dialect::Sqlite, b'[', _) => Some((Piece::Quoted, sql[i..].find(']').map_or(bytes.len(), |n| i + n + 1))),
            (Dialect::Sqlite, b'/', Some(b'*')) => {
                Some((Piece::Comment, sql[i + 2..].find("*/").map_or(bytes.len(), |n| i + 2 + n + 2)))
            }
            (_, b'-', Some(b'-')) => Some((Piece::Comment, sql[i..].find('\n').map_or(bytes.len(), |n| i + n))),
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

/// The end of a Postgres dollar quote starting at `i` (`$$` or `$tag$`), if one starts there.
fn dollar_quote(sql: &str, i: usize) -> Option<usize> {
    let rest = &sql[i + 1..];
    let tag_len = rest.find('$')?;
    let tag = &rest[..tag_len];
    let valid = tag.is_empty()
        || (tag.starts_with(|c: char| c.is_alphabetic() || c == '_')
            && tag.chars().all(|c| c.is_alphanumeric() || c == '_'));
    if !valid {
        return None;
    }
    let delimiter = &sql[i..i + tag_len + 2];
    let body = i + delimiter.len();
    Some(sql[body..].find(delimiter).map_or(sql.len(), |n| body + n + delimiter.len()))
}

/// The end of a Postgres block comment starting at `i`; they nest.
fn nested_comment_end(bytes: &[u8], i: usize) -> usize {
    let (mut depth, mut j) = (0usize, i);
    while j + 1 < bytes.len() {
        match (bytes[j], bytes[j + 1]) {
            (b'/', b'*') => {
                depth += 1;
                j += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                j += 2;
                if depth == 0 {
                    return j;
                }
            }
            _ => j += 1,
        }
    }
    bytes.len()
}

/// Refuses more than one statement (a trailing `;` is fine): both engines would run only part
/// of it, or refuse it with a less helpful message.
pub fn check_single_statement(sql: &str, dialect: Dialect) -> Result<(), MultipleStatements> {
    let code: String = pieces(sql, dialect).into_iter().filter(|(p, _)| *p == Piece::Code).map(|(_, s)| s).collect();
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
pub fn substitute_params(sql: &str, params: &[(String, String)], dialect: Dialect) -> Result<String, ParamError> {
    let mut out = String::with_capacity(sql.len());
    let mut used = vec![false; params.len()];
    for (piece, text) in pieces(sql, dialect) {
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

/// `sql` with each `:name` outside strings, quoted identifiers and comments replaced by a
/// numbered placeholder (`?1` on SQLite, `$1` on Postgres) for the value of `names[k]`, so that
/// a value taken from a request is bound, never pasted into the statement's text.
pub fn placeholder_params(sql: &str, names: &[&str], dialect: Dialect) -> Result<String, ParamError> {
    let mut out = String::with_capacity(sql.len());
    let mut used = vec![false; names.len()];
    for (piece, text) in pieces(sql, dialect) {
        if piece != Piece::Code {
            out.push_str(text);
            continue;
        }
        let mut rest = text;
        while let Some(colon) = rest.find(':') {
            out.push_str(&rest[..colon]);
            let after = &rest[colon + 1..];
            if let Some(cast) = after.strip_prefix(':') {
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
            let k = names.iter().position(|n| *n == name).ok_or_else(|| ParamError::Missing(name.to_string()))?;
            used[k] = true;
            out.push_str(match dialect {
                Dialect::Sqlite => "?",
                Dialect::Postgres => "$",
            });
            out.push_str(&(k + 1).to_string());
            rest = &after[len..];
        }
        out.push_str(rest);
    }
    if let Some(k) = used.iter().position(|u| !u) {
        return Err(ParamError::Unused(names[k].to_string()));
    }
    Ok(out)
}

/// How `audit sql` may run on this Postgres database: the read-only role's name, the owner of
/// `audit_sql_rows()` (if it exists and the user may call it) and whether it is a superuser,
/// whether the user may switch to the read-only role, and who the user is.
const PG_GUARD: &str = "SELECT audit_sql_role_name(), r.rolname::text, r.rolsuper, \
     COALESCE(pg_has_role(current_user, r.oid, 'MEMBER'), false), current_user::text, \
     COALESCE(n.nspname, current_schema())::text \
     FROM (SELECT to_regprocedure('audit_sql_rows(text)') AS f) x \
     LEFT JOIN pg_proc p ON p.oid = x.f AND has_function_privilege(x.f, 'EXECUTE') \
     LEFT JOIN pg_roles r ON r.oid = p.proowner \
     LEFT JOIN pg_namespace n ON n.oid = p.pronamespace";

impl Store {
    /// Runs one query without any possibility of changing the database, handing the rows to
    /// `sink` as they arrive, and stops it after `timeout`.
    pub async fn read_only_query(
        &self,
        sql: &str,
        timeout: Duration,
        sink: &mut dyn RowSink,
    ) -> Result<(), QueryError> {
        let what = || "running the query".to_string();
        let statement = sqlx::AssertSqlSafe(sql.to_string());
        let timed_out = |e: &sqlx::Error| match e {
            sqlx::Error::Database(db) => {
                // SQLite: SQLITE_INTERRUPT, from the progress handler; Postgres: query_canceled
                // by statement_timeout.
                db.code().as_deref() == Some("9")
                    || (db.code().as_deref() == Some("57014") && db.message().contains("statement timeout"))
            }
            _ => false,
        };
        let failed = |e: sqlx::Error| {
            if timed_out(&e) {
                return QueryError::Timeout(timeout);
            }
            // What audit_sql_rows() says of a statement that returns no rows (a write in a CTE).
            if let sqlx::Error::Database(db) = &e
                && db.message().starts_with("cannot open ")
                && db.message().ends_with(" query as cursor")
            {
                return QueryError::Refused(db.message().to_string());
            }
            QueryError::Store(Err::<(), _>(e).context(what).unwrap_err())
        };
        match &self.pool {
            Pool::Sqlite(_) => {
                let options =
                    super::quiet_slow_statements(SqliteConnectOptions::from_str(self.url().expose()).context(what)?)
                        .read_only(true);
                let mut conn = sqlx::SqliteConnection::connect_with(&options).await.context(what)?;
                // Checked every few thousand virtual machine steps: a query that runs past the
                // deadline (an endless recursive CTE, say) is interrupted.
                let deadline = std::time::Instant::now() + timeout;
                conn.lock_handle()
                    .await
                    .context(what)?
                    .set_progress_handler(1000, move || std::time::Instant::now() < deadline);
                sink.guard(&Guard::ReadOnlyFile);
                let mut announced = false;
                {
                    let mut rows = sqlx::query(statement).fetch(&mut conn);
                    while let Some(row) = rows.try_next().await.map_err(failed)? {
                        if !announced {
                            sink.columns(&columns(&row)).map_err(QueryError::Output)?;
                            announced = true;
                        }
                        sink.row(sqlite_values(&row)).map_err(QueryError::Output)?;
                    }
                }
                if !announced {
                    let names: Result<Vec<String>, _> =
                        described(&mut conn, sql).await.map(|c| c.into_iter().map(|(n, _)| n).collect());
                    sink.columns(&names.unwrap_or_default()).map_err(QueryError::Output)?;
                }
                conn.close().await.ok();
                Ok(())
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await.context(what)?;
                sqlx::query("SET TRANSACTION READ ONLY").execute(&mut *tx).await.context(what)?;
                sqlx::query("SELECT set_config('statement_timeout', $1, true)")
                    .bind(format!("{}ms", timeout.as_millis().max(1)))
                    .execute(&mut *tx)
                    .await
                    .context(what)?;
                type GuardRow = (String, Option<String>, Option<bool>, bool, String, String);
                let (reader, owner, owner_super, member, user, schema): GuardRow = sqlx::query_as(PG_GUARD)
                    .fetch_one(&mut *tx)
                    .await
                    .context(|| "finding audit sql's read-only role".into())?;
                let guard = match (owner, owner_super) {
                    (Some(owner), Some(false)) if owner == reader => Guard::ReaderRole { role: reader },
                    (Some(owner), Some(false)) => Guard::OwnerRights { owner, reader, schema },
                    _ => Guard::OwnRights { user, reader, schema },
                };
                if let Guard::ReaderRole { role } = &guard
                    && member
                {
                    sqlx::query("SELECT set_config('role', $1, true)")
                        .bind(role)
                        .execute(&mut *tx)
                        .await
                        .context(what)?;
                }
                sink.guard(&guard);
                if matches!(guard, Guard::OwnRights { .. }) {
                    let mut announced = false;
                    {
                        let mut rows = sqlx::query(statement).fetch(&mut *tx);
                        while let Some(row) = rows.try_next().await.map_err(failed)? {
                            if !announced {
                                sink.columns(&columns(&row)).map_err(QueryError::Output)?;
                                announced = true;
                            }
                            sink.row(pg_values(&row)).map_err(QueryError::Output)?;
                        }
                    }
                    if !announced {
                        let names: Result<Vec<String>, _> =
                            described(&mut *tx, sql).await.map(|c| c.into_iter().map(|(n, _)| n).collect());
                        sink.columns(&names.unwrap_or_default()).map_err(QueryError::Output)?;
                    }
                } else {
                    // Names and types from the statement's description (which runs nothing), the
                    // values from the rows' JSON. A statement that cannot be described fails here
                    // with the server's message, as running it would.
                    let described = described(&mut *tx, sql).await.map_err(failed)?;
                    let names: Vec<String> = described.iter().map(|(n, _)| n.clone()).collect();
                    sink.columns(&names).map_err(QueryError::Output)?;
                    let mut rows = sqlx::query_scalar::<_, sqlx::types::Json<OrderedRow>>("SELECT audit_sql_rows($1)")
                        .bind(sql)
                        .fetch(&mut *tx);
                    while let Some(row) = rows.try_next().await.map_err(failed)? {
                        let values = row
                            .0
                            .0
                            .iter()
                            .enumerate()
                            .map(|(i, (_, value))| pg_json_value(described.get(i).map(|(_, t)| t.as_str()), value))
                            .collect();
                        sink.row(values).map_err(QueryError::Output)?;
                    }
                }
                tx.rollback().await.context(what)?;
                Ok(())
            }
        }
    }
}

impl Store {
    /// A shipped query (`sql/recall.sql`, say) with its `:name` parameters bound to `values`,
    /// on this store's own connections: for a store opened with [`Store::connect_read_only`],
    /// read-only ones. Columns and rows as [`Store::read_only_query`] gives them.
    pub async fn bound_query(
        &self,
        sql: &str,
        params: &[(&str, &str)],
    ) -> Result<(Vec<String>, Vec<Vec<Value>>), StoreError> {
        let what = || "running the query".to_string();
        let names: Vec<&str> = params.iter().map(|(n, _)| *n).collect();
        let text = placeholder_params(sql, &names, Dialect::from(self.backend()))
            .map_err(|e| StoreError::Query { what: what(), source: e.into() })?;
        let statement = sqlx::AssertSqlSafe(text.clone());
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mut query = sqlx::query(statement);
                for (_, v) in params {
                    query = query.bind(v.to_string());
                }
                let rows = query.fetch_all(pool).await.context(what)?;
                let names = match rows.first() {
                    Some(row) => columns(row),
                    None => {
                        use sqlx::{Executor as _, Statement as _};
                        let sql = sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(text.clone()));
                        let statement = pool.prepare(sql).await.context(what)?;
                        statement.columns().iter().map(|c| c.name().to_string()).collect()
                    }
                };
                Ok((names, rows.iter().map(sqlite_values).collect()))
            }
            Pool::Postgres(pool) => {
                let mut query = sqlx::query(statement);
                for (_, v) in params {
                    query = query.bind(v.to_string());
                }
                let rows = query.fetch_all(pool).await.context(what)?;
                let names = match rows.first() {
                    Some(row) => columns(row),
                    None => {
                        use sqlx::{Executor as _, Statement as _};
                        let sql = sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(text.clone()));
                        let statement = pool.prepare(sql).await.context(what)?;
                        statement.columns().iter().map(|c| c.name().to_string()).collect()
                    }
                };
                Ok((names, rows.iter().map(pg_values).collect()))
            }
        }
    }
}

fn columns<R: Row>(row: &R) -> Vec<String> {
    row.columns().iter().map(|c| c.name().to_string()).collect()
}

/// The names and type names of a statement's columns, from the driver's description of it
/// (which runs nothing).
async fn described<'c, E: sqlx::Executor<'c>>(executor: E, sql: &str) -> Result<Vec<(String, String)>, sqlx::Error> {
    use sqlx::Statement as _;
    let statement = executor.prepare(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(sql.to_string()))).await?;
    Ok(statement.columns().iter().map(|c| (c.name().to_string(), c.type_info().name().to_string())).collect())
}

/// A row as `row_to_json` writes it: names and values in column order (names may repeat).
struct OrderedRow(Vec<(String, Box<RawValue>)>);

impl<'de> serde::Deserialize<'de> for OrderedRow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = OrderedRow;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<OrderedRow, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    entries.push(entry);
                }
                Ok(OrderedRow(entries))
            }
        }
        d.deserialize_map(Entries)
    }
}

/// A value of `row_to_json`, shown as the direct query shows its column type: times in RFC 3339
/// UTC, decimals exact.
fn pg_json_value(type_name: Option<&str>, raw: &RawValue) -> Value {
    let value = || serde_json::from_str::<Value>(raw.get()).unwrap_or(Value::Null);
    let text = || serde_json::from_str::<String>(raw.get()).ok();
    match type_name {
        Some("NUMERIC") => rust_decimal::Decimal::from_str(raw.get()).map(decimal_value).unwrap_or_else(|_| value()),
        Some("TIMESTAMPTZ") => text()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| Value::from(t.to_utc().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
            .unwrap_or_else(value),
        Some("TIMESTAMP") => text()
            .and_then(|t| chrono::NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%S%.f").ok())
            .map(|t| Value::from(t.to_string()))
            .unwrap_or_else(value),
        _ => value(),
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

    #[test]
    fn parameters_become_numbered_placeholders_outside_strings() {
        let sql = "SELECT ':po', x::text FROM t WHERE a = :po AND b = :serial -- :po\n AND c = :po";
        assert_eq!(
            placeholder_params(sql, &["po", "serial"], Dialect::Postgres).unwrap(),
            "SELECT ':po', x::text FROM t WHERE a = $1 AND b = $2 -- :po\n AND c = $1"
        );
        assert_eq!(placeholder_params("a = :po", &["po"], Dialect::Sqlite).unwrap(), "a = ?1");
        assert_eq!(placeholder_params("a = :po", &[], Dialect::Sqlite), Err(ParamError::Missing("po".into())));
        assert_eq!(placeholder_params("a = 1", &["po"], Dialect::Sqlite), Err(ParamError::Unused("po".into())));
    }

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn named_parameters_become_quoted_literals_outside_strings_and_comments() {
        let sql =
            "SELECT ':skip', \"a:b\" FROM t -- :nope\nWHERE x = :po AND y::text = :po /* :no */ AND z = 'it''s :x'";
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            assert_eq!(
                substitute_params(sql, &p(&[("po", "PO-1'; DROP TABLE t; --")]), dialect).unwrap(),
                "SELECT ':skip', \"a:b\" FROM t -- :nope\nWHERE x = 'PO-1''; DROP TABLE t; --' AND y::text = 'PO-1''; DROP TABLE t; --' /* :no */ AND z = 'it''s :x'"
            );
            assert_eq!(substitute_params("select :a", &[], dialect), Err(ParamError::Missing("a".into())));
            assert_eq!(substitute_params("select 1", &p(&[("a", "1")]), dialect), Err(ParamError::Unused("a".into())));
            assert_eq!(
                substitute_params("select '2025-01-01 10:00:00', 'unterminated :x", &[], dialect).unwrap(),
                "select '2025-01-01 10:00:00', 'unterminated :x"
            );
        }
        // Postgres quotes with dollars and E'..' too; nothing inside them is a parameter.
        assert_eq!(
            substitute_params("select $$ :a $$, $q$ :a $q$, E'\\' :a', :b", &p(&[("b", "1")]), Dialect::Postgres)
                .unwrap(),
            "select $$ :a $$, $q$ :a $q$, E'\\' :a', '1'"
        );
    }

    #[test]
    fn one_statement_at_a_time() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            assert_eq!(check_single_statement("select 1;", dialect), Ok(()));
            assert_eq!(check_single_statement("select ';' -- ; \n /* ; */", dialect), Ok(()));
            assert_eq!(check_single_statement("select 1 as \"e;f\"", dialect), Ok(()));
            assert_eq!(check_single_statement("select 1; delete from t", dialect), Err(MultipleStatements));
        }
        assert_eq!(check_single_statement("select 1 as [a;b], 2 as `c;d`", Dialect::Sqlite), Ok(()));
        // A quote inside a [..] or `..` identifier is not a string's start (SQLite's tokenizer).
        for sneaky in [
            "SELECT 1 AS [a']; VACUUM INTO '/tmp/copy.db'; SELECT 1 AS [']",
            "SELECT 1 AS `a'`; VACUUM INTO '/tmp/copy.db'; SELECT 1 AS `'`",
        ] {
            assert_eq!(check_single_statement(sneaky, Dialect::Sqlite), Err(MultipleStatements), "{sneaky}");
        }
        // Postgres: dollar quotes, E-strings with backslash escapes, nested comments.
        for one in [
            "SELECT $$;$$",
            "SELECT $body$ ; $$ ; $body$",
            "SELECT E'\\';'",
            "SELECT 1 /* a /* nested ; */ still a comment ; */",
            "SELECT a$b$c FROM t", // `$` inside a name is no quote
        ] {
            assert_eq!(check_single_statement(one, Dialect::Postgres), Ok(()), "{one}");
        }
        for two in ["SELECT $$;$$; DELETE FROM t", "SELECT '\\'; DELETE FROM t --'", "SELECT $1; DELETE FROM t"] {
            assert_eq!(check_single_statement(two, Dialect::Postgres), Err(MultipleStatements), "{two}");
        }
        // In SQLite, `$$` is a parameter's name, not a quote.
        assert_eq!(check_single_statement("SELECT $$;$$", Dialect::Sqlite), Err(MultipleStatements));
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
