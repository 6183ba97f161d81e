//! Ad-hoc read-only SQL for `audit sql`: any query, either engine, rows streamed as JSON values.
//!
//! Read-only is enforced by the database, not by inspecting the text. SQLite runs the query on a
//! connection opened read-only with `query_only` on, after its own parser has said the text is one
//! statement. Postgres runs it in a `READ ONLY` transaction, as the database's own read-only role
//! (`SET LOCAL ROLE`), opened as a cursor by `audit_sql_open()` and read a batch at a time by
//! `audit_sql_fetch()`, `SECURITY DEFINER` functions owned by that role: Postgres refuses to
//! change the role inside such a function, so the query cannot switch back, even on a
//! superuser's connection (migrations V6 and V11 set it up where the migrating user may create
//! roles; otherwise every run says so). Both engines stop a query once the database has worked
//! on it for the timeout (Postgres by a `statement_timeout` per fetch, SQLite by a progress
//! handler); the time spent writing rows out does not count.
//!
//! A look at the text adds what the database cannot: one statement only on Postgres, a
//! friendlier message for the common case of a write, and a refusal of Postgres functions known
//! to act outside the transaction, Unicode escapes decoded (a second layer, not the wall).

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
    /// One row, its values in the order of the columns.
    fn row(&mut self, values: Vec<Value>) -> std::io::Result<()>;
    /// Writes out what is buffered: called when the database pauses (between two fetches) and
    /// now and then, so that a reader sees rows as they come.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How often rows are flushed to the reader while they stream in.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// What made a query read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// SQLite: a connection opened read-only.
    ReadOnlyFile,
    /// Postgres: a read-only transaction, as the read-only role, which the query cannot leave.
    ReaderRole {
        /// The read-only role's name.
        role: String,
    },
    /// Postgres without the read-only role: a read-only transaction with the rights of `owner`
    /// (the user that migrated the database; not a superuser), which the query cannot leave.
    OwnerRights {
        /// The owner of `audit_sql_fetch()`, whose rights the query has.
        owner: String,
        /// The name the read-only role should have.
        reader: String,
        /// The schema of audit's tables and functions.
        schema: String,
    },
    /// Postgres without the read-only role or its function: a read-only transaction with the
    /// connecting user's own rights.
    OwnRights {
        /// The connecting user.
        user: String,
        /// The name the read-only role should have.
        reader: String,
        /// The schema of audit's tables and functions (the current one if they are missing).
        schema: String,
    },
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
                 GRANT SELECT ON \"{schema}\".refinery_schema_history TO \"{reader}\"; \
                 ALTER FUNCTION \"{schema}\".audit_sql_open(text) OWNER TO \"{reader}\"; \
                 ALTER FUNCTION \"{schema}\".audit_sql_fetch(integer) OWNER TO \"{reader}\"; \
                 GRANT EXECUTE ON FUNCTION \"{schema}\".audit_sql_open(text) TO \"{user}\"; \
                 GRANT EXECUTE ON FUNCTION \"{schema}\".audit_sql_fetch(integer) TO \"{user}\"; \
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

/// Why `audit sql` could not run a query or write its result.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The database worked on the query longer than `--timeout` (the value given).
    #[error(
        "the query ran longer than {} and was stopped; give it more time with --timeout",
        humantime::format_duration(*.0)
    )]
    Timeout(Duration),
    /// The database refused a statement that writes (its message).
    #[error("audit sql only reads; the database refused the statement: {0}")]
    Refused(String),
    /// Writing rows to the output failed.
    #[error("writing the result failed")]
    Output(#[source] std::io::Error),
    /// The text holds more than one statement.
    #[error(transparent)]
    Several(#[from] MultipleStatements),
    /// Connecting, or the query's own error from the database.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a query text is read: SQLite's quoting or Postgres's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite's.
    Sqlite,
    /// Postgres's.
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

/// A statement whose first keyword is not a reading one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("audit sql only reads: `{keyword}` statements are refused (the database is opened read-only)")]
pub struct WriteRefused {
    /// That keyword, as written.
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

/// Statements that change something, by their first keyword, on either engine: refused as
/// writes. Any other first word is a syntax error, not a refusal.
const WRITING_KEYWORDS: &[&str] = &[
    "insert",
    "update",
    "delete",
    "merge",
    "upsert",
    "replace",
    "create",
    "drop",
    "alter",
    "truncate",
    "comment",
    "grant",
    "revoke",
    "attach",
    "detach",
    "pragma",
    "vacuum",
    "reindex",
    "analyze",
    "analyse",
    "begin",
    "start",
    "commit",
    "end",
    "rollback",
    "abort",
    "savepoint",
    "release",
    "copy",
    "call",
    "do",
    "set",
    "reset",
    "lock",
    "listen",
    "unlisten",
    "notify",
    "cluster",
    "refresh",
    "prepare",
    "execute",
    "deallocate",
    "declare",
    "fetch",
    "move",
    "close",
    "load",
    "discard",
    "security",
    "import",
    "checkpoint",
    "reassign",
];

/// A first word that starts no SQL statement (`selec 1`): the query's own mistake.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "syntax error: a statement cannot start with `{word}`{hint}; audit sql runs one SELECT (or WITH, VALUES, EXPLAIN)"
)]
pub struct NotAStatement {
    /// The first word, as written.
    pub word: String,
    hint: String,
}

/// Tells a misspelt first keyword from a statement that writes.
pub fn check_statement_keyword(sql: &str) -> Result<(), NotAStatement> {
    // The keyword ends where a letter does, as `check_read_only` reads it: `select(1)`,
    // `values(1)` and `select*from t` are statements.
    let word: String = strip_leading_comments(sql).chars().take_while(char::is_ascii_alphabetic).collect();
    let lower = word.to_ascii_lowercase();
    if lower.is_empty() || READING_KEYWORDS.contains(&lower.as_str()) || WRITING_KEYWORDS.contains(&lower.as_str()) {
        return Ok(());
    }
    let near = READING_KEYWORDS.iter().find(|k| edit_distance(k, &lower) <= 2 && lower.len() >= 3);
    let hint = near.map_or(String::new(), |k| format!(" (did you mean {}?)", k.to_ascii_uppercase()));
    Err(NotAStatement { word, hint })
}

/// Levenshtein distance, for short words.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != b[j])).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
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

/// A mismatch between a query's `:name` parameters and the values given for them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParamError {
    /// The query uses `:name`, but no value was given for it.
    #[error("the query uses :{0} but no --param {0}=VALUE was given")]
    Missing(String),
    /// A value was given for a name the query does not use.
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

/// A query text with more than one statement.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("audit sql runs one statement at a time; this text has several (separated by `;`)")]
pub struct MultipleStatements;

/// Postgres functions that act outside the transaction (on other sessions, the server, files,
/// other databases), which a read-only transaction does not stop, and functions that run SQL
/// given as text (which a look at the text cannot see into).
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
    "pg_stat_file",
    "lo_import",
    "lo_export",
    "dblink",
    "dblink_exec",
    "dblink_connect",
    "dblink_send_query",
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "ts_stat",
    "ts_rewrite",
];

/// Families of such functions, by the start of their names.
const SIDE_EFFECT_PREFIXES: &[&str] =
    &["pg_stat_reset", "pg_read_", "pg_ls_", "pg_create_", "pg_drop_", "pg_replication_", "pg_file_"];

/// Why [`check_no_side_effects`] refuses a query text before it runs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SideEffectRefused {
    /// It mentions a function that acts outside the transaction or runs SQL given as text
    /// (the name).
    #[error(
        "audit sql refuses {0}(): it acts outside the read-only transaction, or runs SQL given as text. To give \
         people ad-hoc SQL safely, connect them as a database role that may only SELECT"
    )]
    Function(String),
    /// A `U&` (Unicode escape) text that cannot be decoded (why).
    #[error(
        "audit sql cannot read this U& (Unicode escape) text: {0}; write the name or string without U&, or set \
         up the read-only role (README, section Security)"
    )]
    UnicodeEscape(String),
}

/// Refuses any mention of the functions in `SIDE_EFFECT_FUNCTIONS`, quoted or not: Postgres
/// can call a quoted name (`"pg_cancel_backend"(0)`) or one spelled with Unicode escapes
/// (`U&"pg\005fcancel\005fbackend"`, decoded here first), and its quoting (`E'\''`, `$$`, arrays
/// in brackets) is not SQLite's. A mention in a string or comment is refused too; that is rare,
/// and a guess that misses is worse. Best effort: a role that may only SELECT is the real guard.
pub fn check_no_side_effects(sql: &str, dialect: Dialect) -> Result<(), SideEffectRefused> {
    let decoded = match dialect {
        Dialect::Postgres => decode_unicode_escapes(sql)?,
        Dialect::Sqlite => sql.to_string(),
    };
    let words = decoded.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
    let refused = |w: &str| SIDE_EFFECT_FUNCTIONS.contains(&w) || SIDE_EFFECT_PREFIXES.iter().any(|p| w.starts_with(p));
    match words.map(str::to_ascii_lowercase).find(|w| refused(w)) {
        Some(f) => Err(SideEffectRefused::Function(f)),
        None => Ok(()),
    }
}

/// The text with each Postgres `U&'...'` string and `U&"..."` identifier (and its `UESCAPE 'c'`
/// clause) replaced by what it spells, quotes kept: `\XXXX` and `\+XXXXXX` are code points, the
/// escape character doubled is itself. Postgres's own rules; what does not follow them is refused
/// rather than guessed at.
fn decode_unicode_escapes(sql: &str) -> Result<String, SideEffectRefused> {
    let bad = |why: &str| SideEffectRefused::UnicodeEscape(why.to_string());
    let chars: Vec<char> = sql.chars().collect();
    let word_char = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    while i < chars.len() {
        let starts = matches!(chars[i], 'u' | 'U')
            && chars.get(i + 1) == Some(&'&')
            && matches!(chars.get(i + 2), Some('\'' | '"'))
            && (i == 0 || !word_char(chars[i - 1]));
        if !starts {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let quote = chars[i + 2];
        // The body, with doubled quotes as one.
        let mut body = Vec::new();
        let mut j = i + 3;
        loop {
            match chars.get(j) {
                None => return Err(bad("an unterminated U& quote")),
                Some(&c) if c == quote && chars.get(j + 1) == Some(&quote) => {
                    body.push(c);
                    j += 2;
                }
                Some(&c) if c == quote => {
                    j += 1;
                    break;
                }
                Some(&c) => {
                    body.push(c);
                    j += 1;
                }
            }
        }
        // An optional UESCAPE 'c' after it.
        let mut escape = '\\';
        let mut k = j;
        while chars.get(k).is_some_and(|c| c.is_whitespace()) {
            k += 1;
        }
        let keyword: String = chars.iter().skip(k).take(7).collect();
        if keyword.eq_ignore_ascii_case("uescape") && !chars.get(k + 7).is_some_and(|&c| word_char(c)) {
            k += 7;
            while chars.get(k).is_some_and(|c| c.is_whitespace()) {
                k += 1;
            }
            match (chars.get(k), chars.get(k + 1), chars.get(k + 2)) {
                (Some('\''), Some(&c), Some('\'')) if c != '\'' => {
                    escape = c;
                    j = k + 3;
                }
                _ => return Err(bad("a UESCAPE clause that is not one character in quotes")),
            }
        }
        if escape.is_ascii_hexdigit() || matches!(escape, '+' | '\'' | '"') || escape.is_whitespace() {
            return Err(bad("an escape character Postgres does not accept"));
        }
        out.push(quote);
        let mut b = 0;
        while b < body.len() {
            if body[b] != escape {
                out.push(body[b]);
                b += 1;
                continue;
            }
            if body.get(b + 1) == Some(&escape) {
                out.push(escape);
                b += 2;
                continue;
            }
            let (digits, skip) = if body.get(b + 1) == Some(&'+') { (6, 2) } else { (4, 1) };
            let hex: String = body.iter().skip(b + skip).take(digits).collect();
            if hex.len() != digits || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad("an escape that is not followed by 4 (or + and 6) hexadecimal digits"));
            }
            let code = u32::from_str_radix(&hex, 16).map_err(|_| bad("a bad escape"))?;
            out.push(char::from_u32(code).ok_or_else(|| bad("an escape of no character (a surrogate half?)"))?);
            b += skip + digits;
        }
        out.push(quote);
        i = j;
    }
    Ok(out)
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
/// `audit_sql_fetch()` (if it exists and the user may call it) and whether it is a superuser,
/// whether the user may switch to the read-only role, and who the user is.
const PG_GUARD: &str = "SELECT audit_sql_role_name(), r.rolname::text, r.rolsuper, \
     COALESCE(pg_has_role(current_user, r.oid, 'MEMBER'), false), current_user::text, \
     COALESCE(n.nspname, current_schema())::text \
     FROM (SELECT to_regprocedure('audit_sql_fetch(integer)') AS f) x \
     LEFT JOIN pg_proc p ON p.oid = x.f AND has_function_privilege(x.f, 'EXECUTE') \
     LEFT JOIN pg_roles r ON r.oid = p.proowner \
     LEFT JOIN pg_namespace n ON n.oid = p.pronamespace";

/// Rows per fetch on Postgres: what the server and audit hold at a time.
const PG_BATCH: i32 = 1000;

/// The time a query may take, counted only while audit waits for the database: the time spent
/// writing rows out (to a slow `| less`, say) is not the query's.
struct Budget {
    limit: Duration,
    /// Nanoseconds since `start` after which the query is stopped; pushed back by each write.
    deadline: std::sync::Arc<std::sync::atomic::AtomicU64>,
    start: std::time::Instant,
    /// Postgres: time the fetches took so far.
    spent: Duration,
}

impl Budget {
    fn new(limit: Duration) -> Budget {
        let nanos = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
        Budget {
            limit,
            deadline: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(nanos)),
            start: std::time::Instant::now(),
            spent: Duration::ZERO,
        }
    }

    /// For SQLite's progress handler: whether the query may go on.
    fn check(&self) -> impl FnMut() -> bool + Send + 'static {
        let (deadline, start) = (self.deadline.clone(), self.start);
        move || {
            let now = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            now < deadline.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    /// Runs `write` without counting its time.
    fn paused<T>(&self, write: impl FnOnce() -> T) -> T {
        let before = std::time::Instant::now();
        let out = write();
        let nanos = u64::try_from(before.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.deadline.fetch_add(nanos, std::sync::atomic::Ordering::Relaxed);
        out
    }

    /// What is left for the next Postgres statement, as a `statement_timeout` value; `None` when
    /// nothing is.
    fn remaining(&self) -> Option<String> {
        let left = self.limit.checked_sub(self.spent).filter(|d| !d.is_zero())?;
        Some(format!("{}ms", left.as_millis().max(1)))
    }
}

/// Whether SQLite reads `sql` as one statement (and nothing but comments after it), as it
/// prepares it: text splitting can be fooled by its tokens (`$name(...)` parameters may hold
/// quotes and semicolons), its own parser cannot. A text whose first statement does not
/// prepare passes: running it reports the error.
#[allow(unsafe_code)] // sqlite3_prepare_v2's tail pointer is the only way to ask SQLite itself.
fn sqlite_single_statement(handle: std::ptr::NonNull<libsqlite3_sys::sqlite3>, sql: &str) -> bool {
    use libsqlite3_sys::{SQLITE_OK, sqlite3_finalize, sqlite3_prepare_v2};
    let bytes = sql.as_bytes();
    let (mut offset, mut statements) = (0usize, 0);
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let Ok(len) = std::os::raw::c_int::try_from(rest.len()) else { return false };
        let mut stmt = std::ptr::null_mut();
        let mut tail = std::ptr::null();
        // SAFETY: the handle is locked for this connection (no other call runs on it), `rest`
        // outlives the call and its length is given, and the statement is finalized at once.
        let rc = unsafe {
            let rc = sqlite3_prepare_v2(handle.as_ptr(), rest.as_ptr().cast(), len, &mut stmt, &mut tail);
            if !stmt.is_null() {
                sqlite3_finalize(stmt);
            }
            rc
        };
        if rc != SQLITE_OK {
            // A later statement that does not even prepare is a later statement all the same.
            return statements == 0;
        }
        if stmt.is_null() {
            // Only whitespace and comments were left.
            break;
        }
        statements += 1;
        if statements > 1 {
            return false;
        }
        let used = (tail as usize).saturating_sub(rest.as_ptr() as usize);
        if used == 0 {
            break;
        }
        offset += used;
    }
    true
}

/// Whether Postgres accepts `sql` in `DECLARE ... CURSOR FOR` (EXPLAIN and SHOW it does not).
fn declarable(sql: &str) -> bool {
    let keyword: String = strip_leading_comments(sql).chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    !matches!(keyword.to_ascii_lowercase().as_str(), "explain" | "show")
}

impl Store {
    /// Runs one query without any possibility of changing the database, handing the rows to
    /// `sink` as they arrive, and stops it once the database has worked on it for `timeout`
    /// (the time the sink takes to write rows out does not count).
    pub async fn read_only_query(
        &self,
        sql: &str,
        timeout: Duration,
        sink: &mut dyn RowSink,
    ) -> Result<(), QueryError> {
        let budget = Budget::new(timeout);
        match &self.pool {
            Pool::Sqlite(_) => self.sqlite_read_only_query(sql, timeout, budget, sink).await,
            Pool::Postgres(pool) => postgres_read_only_query(pool, sql, timeout, budget, sink).await,
        }
    }

    /// [`Store::read_only_query`] on SQLite: a read-only connection of its own.
    async fn sqlite_read_only_query(
        &self,
        sql: &str,
        timeout: Duration,
        budget: Budget,
        sink: &mut dyn RowSink,
    ) -> Result<(), QueryError> {
        let what = || "running the query".to_string();
        let statement = sqlx::AssertSqlSafe(sql.to_string());
        let failed = |e: sqlx::Error| query_failure(e, timeout, sql);
        // Read-only twice over: the file is opened read-only, and query_only refuses any
        // change (VACUUM INTO, a pragma) that a read-only file would still allow.
        let base = super::quiet_slow_statements(SqliteConnectOptions::from_str(self.url().expose()).context(what)?);
        let options = super::read_only_sqlite_options(base, &[("query_only", "ON")]).await.context(what)?;
        let mut conn = sqlx::SqliteConnection::connect_with(&options).await.context(what)?;
        {
            let mut handle = conn.lock_handle().await.context(what)?;
            // SQLite runs every statement of a text: ask its parser how many there are.
            if !sqlite_single_statement(handle.as_raw_handle(), sql) {
                return Err(QueryError::Several(MultipleStatements));
            }
            // Checked every thousand virtual machine steps: a query that runs past its
            // time (an endless recursive CTE, say) is interrupted.
            handle.set_progress_handler(1000, budget.check());
        }
        sink.guard(&Guard::ReadOnlyFile);
        let mut announced = false;
        let mut flushed = std::time::Instant::now();
        {
            let mut rows = sqlx::query(statement).fetch(&mut conn);
            while let Some(row) = rows.try_next().await.map_err(failed)? {
                if !announced {
                    sink.columns(&columns(&row)).map_err(QueryError::Output)?;
                    announced = true;
                }
                budget.paused(|| sink.row(sqlite_values(&row))).map_err(QueryError::Output)?;
                if flushed.elapsed() >= FLUSH_EVERY {
                    budget.paused(|| sink.flush()).map_err(QueryError::Output)?;
                    flushed = std::time::Instant::now();
                }
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
}

/// [`Store::read_only_query`] on Postgres: a READ ONLY transaction, as the reader role when it
/// may be taken, with the time left given to each statement.
async fn postgres_read_only_query(
    pool: &sqlx::PgPool,
    sql: &str,
    timeout: Duration,
    budget: Budget,
    sink: &mut dyn RowSink,
) -> Result<(), QueryError> {
    let what = || "running the query".to_string();
    let statement = sqlx::AssertSqlSafe(sql.to_string());
    let failed = |e: sqlx::Error| query_failure(e, timeout, sql);
    let mut tx = pool.begin().await.context(what)?;
    sqlx::query("SET TRANSACTION READ ONLY").execute(&mut *tx).await.context(what)?;
    let guard = pg_guard(&mut tx).await?;
    sink.guard(&guard);
    // Each statement gets what is left of the time; only the database's time counts.
    let mut budget = budget;
    macro_rules! timed {
        ($query:expr) => {{
            let left = budget.remaining().ok_or(QueryError::Timeout(timeout))?;
            sqlx::query("SELECT set_config('statement_timeout', $1, true)")
                .bind(left)
                .execute(&mut *tx)
                .await
                .context(what)?;
            let began = std::time::Instant::now();
            let out = $query.await.map_err(failed);
            budget.spent += began.elapsed();
            out?
        }};
    }
    // Names and types from the statement's description (which runs nothing); a
    // statement that cannot be described fails here with the server's message.
    let described = timed!(described(&mut *tx, sql));
    let names: Vec<String> = described.iter().map(|(n, _)| n.clone()).collect();
    sink.columns(&names).map_err(QueryError::Output)?;
    match guard {
        Guard::OwnRights { .. } if declarable(sql) => {
            let declare = format!("DECLARE audit_sql_cursor NO SCROLL CURSOR FOR {sql}");
            timed!(sqlx::query(sqlx::AssertSqlSafe(declare)).execute(&mut *tx));
            loop {
                let rows = timed!(
                    sqlx::query(sqlx::AssertSqlSafe(format!("FETCH {PG_BATCH} FROM audit_sql_cursor")))
                        .fetch_all(&mut *tx)
                );
                for row in &rows {
                    sink.row(pg_values(row)).map_err(QueryError::Output)?;
                }
                sink.flush().map_err(QueryError::Output)?;
                if rows.len() < PG_BATCH as usize {
                    break;
                }
            }
        }
        Guard::OwnRights { .. } => {
            // EXPLAIN and SHOW: a few rows, read as they come.
            let rows = timed!(sqlx::query(statement).fetch_all(&mut *tx));
            for row in &rows {
                sink.row(pg_values(row)).map_err(QueryError::Output)?;
            }
        }
        _ => {
            // The values from the rows' JSON, typed by the description.
            timed!(sqlx::query("SELECT audit_sql_open($1)").bind(sql).execute(&mut *tx));
            loop {
                let rows = timed!(
                    sqlx::query_scalar::<_, sqlx::types::Json<OrderedRow>>("SELECT audit_sql_fetch($1)")
                        .bind(PG_BATCH)
                        .fetch_all(&mut *tx)
                );
                for row in &rows {
                    let values = row
                        .0
                        .0
                        .iter()
                        .enumerate()
                        .map(|(i, (_, value))| pg_json_value(described.get(i).map(|(_, t)| t.as_str()), value))
                        .collect();
                    sink.row(values).map_err(QueryError::Output)?;
                }
                sink.flush().map_err(QueryError::Output)?;
                if rows.len() < PG_BATCH as usize {
                    break;
                }
            }
        }
    }
    tx.rollback().await.context(what)?;
    Ok(())
}

/// Why a query failed, as `audit sql` tells it: out of time, refused, or the database's error
/// (with the line it points at).
fn query_failure(e: sqlx::Error, timeout: Duration, sql: &str) -> QueryError {
    let timed_out = match &e {
        sqlx::Error::Database(db) => {
            // SQLite: SQLITE_INTERRUPT, from the progress handler; Postgres: query_canceled by
            // statement_timeout.
            db.code().as_deref() == Some("9")
                || (db.code().as_deref() == Some("57014") && db.message().contains("statement timeout"))
        }
        _ => false,
    };
    if timed_out {
        return QueryError::Timeout(timeout);
    }
    if let sqlx::Error::Database(db) = &e {
        // What the cursor functions say of a statement that returns no rows (a write in a CTE),
        // and what DECLARE says of a write.
        if (db.message().starts_with("cannot open ") && db.message().ends_with(" query as cursor"))
            || db.message().contains("must not contain data-modifying statements")
        {
            return QueryError::Refused(db.message().to_string());
        }
        if let Some(line) = pg_error_line(db.as_ref(), sql) {
            return QueryError::Store(
                Err::<(), _>(e).context(|| format!("running the query (at line {line})")).unwrap_err(),
            );
        }
    }
    QueryError::Store(Err::<(), _>(e).context(|| "running the query".to_string()).unwrap_err())
}

/// How a Postgres query is kept from writing: the read-only role audit sql's functions run as,
/// taken when the user may; see [`Guard`].
async fn pg_guard(tx: &mut sqlx::PgConnection) -> Result<Guard, QueryError> {
    type GuardRow = (String, Option<String>, Option<bool>, bool, String, String);
    let (reader, owner, owner_super, member, user, schema): GuardRow =
        sqlx::query_as(PG_GUARD).fetch_one(&mut *tx).await.context(|| "finding audit sql's read-only role".into())?;
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
            .context(|| "running the query".into())?;
    }
    Ok(guard)
}

/// The line of the query a Postgres error points at (syntax errors carry a character position).
fn pg_error_line(db: &dyn sqlx::error::DatabaseError, sql: &str) -> Option<usize> {
    let pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?;
    let sqlx::postgres::PgErrorPosition::Original(position) = pg.position()? else { return None };
    // A 1-based position in characters.
    let before: String = sql.chars().take(position.saturating_sub(1)).collect();
    Some(before.matches('\n').count() + 1)
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
        let check = |sql: &str| check_no_side_effects(sql, Dialect::Postgres);
        assert_eq!(
            check("SELECT PG_TERMINATE_BACKEND (pid) FROM pg_stat_activity"),
            Err(SideEffectRefused::Function("pg_terminate_backend".into()))
        );
        assert!(check("select dblink_exec('x', 'delete from t')").is_err());
        // Quoted names and Postgres quoting the splitter does not know do not hide them.
        for sneaky in [
            "SELECT \"pg_cancel_backend\"(0)",
            "SELECT ARRAY[pg_terminate_backend(pid)] FROM pg_stat_activity",
            "SELECT E'\\'', pg_terminate_backend(pid), ''' ' FROM pg_stat_activity",
        ] {
            assert!(check(sneaky).is_err(), "{sneaky}");
        }
        // Part of another word, a name is harmless.
        assert_eq!(check("select my_dblink_count, pg_cancel_backends from t"), Ok(()));
        assert_eq!(check("select pg_stat_activity, xpg_ls_dir from t"), Ok(()));
    }

    #[test]
    fn unicode_escapes_are_read_as_postgres_reads_them() {
        let check = |sql: &str| check_no_side_effects(sql, Dialect::Postgres);
        for sneaky in [
            r#"SELECT U&"pg\005fterminate\005fbackend"(pid) FROM pg_stat_activity"#,
            r#"SELECT u&"pg\+00005fcancel\+00005fbackend"(0)"#,
            r#"SELECT U&"pg!005fterminate!005fbackend" UESCAPE '!' (pid) FROM pg_stat_activity"#,
            r#"SELECT U&"\0070\0067_read_file"('/etc/passwd')"#,
            r#"SELECT query_to_xml(U&'select pg\005fsleep(1)', true, true, '')"#,
        ] {
            assert!(matches!(check(sneaky), Err(SideEffectRefused::Function(_))), "{sneaky}");
        }
        assert_eq!(
            decode_unicode_escapes(r#"select U&"d\0061t\+000061" , U&'it''s \\ x' uescape '\'"#).unwrap(),
            r#"select "data" , 'it's \ x'"#
        );
        // Not U&: part of a word, or no quote after it.
        assert_eq!(decode_unicode_escapes("select xu&'a', u & 'b'").unwrap(), "select xu&'a', u & 'b'");
        for unreadable in
            [r#"select U&"\zzzz""#, r#"select U&"\d800""#, r#"select U&"x" UESCAPE '+'"#, "select U&'open"]
        {
            assert!(matches!(check(unreadable), Err(SideEffectRefused::UnicodeEscape(_))), "{unreadable}");
        }
        // SQLite has no U& syntax: the text is read as it is.
        assert_eq!(check_no_side_effects(r#"select U&"\zzzz""#, Dialect::Sqlite), Ok(()));
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

    #[test]
    fn a_misspelt_first_word_is_a_syntax_error_not_a_refusal() {
        let err = check_statement_keyword("selec 1").unwrap_err().to_string();
        assert!(
            err.starts_with("syntax error") && err.contains("`selec`") && err.contains("did you mean SELECT?"),
            "{err}"
        );
        let err = check_statement_keyword("-- c\nfrobnicate").unwrap_err().to_string();
        assert!(err.contains("`frobnicate`") && !err.contains("did you mean"), "{err}");
        for ok in [
            "SELECT 1",
            "delete from t",
            "  with x as (select 1) select 1",
            "(select 1)",
            "pragma x",
            "select(1)",
            "VALUES(1)",
            "select*from t",
        ] {
            assert_eq!(check_statement_keyword(ok), Ok(()), "{ok}");
        }
        assert_eq!(edit_distance("selec", "select"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
