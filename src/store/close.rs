//! Close matches of a mistyped serial, served by `serial_keys` (migration V13): the serials
//! whose normalised form equals the typed one's, starts with it, or shares its first or last
//! half; the edit distance of those few candidates is measured here. No scan of `serial_events`.

use super::bulk::{Bulk, BulkInsert, Get, Same};
use super::{Context, Store, StoreError, on_pool};

/// Normalised forms keep at most this many characters: index entries stay small, and a longer
/// serial is not typed by hand.
const MAX_NORM: usize = 100;

/// Candidates read per index range and direction: a bound on the work when a half is shared by
/// a great many serials (`SN00`).
const CANDIDATES: i64 = 250;

/// A serial's comparable form: upper case, letters and digits only (`sn-000 319` is
/// `SN000319`), at most `MAX_NORM` (100) characters.
pub fn normalise(serial: &str) -> String {
    serial.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_uppercase).take(MAX_NORM).collect()
}

/// A serial's row of `serial_keys`.
pub(super) struct SerialKey {
    serial: String,
    norm: String,
    rnorm: String,
}

impl SerialKey {
    pub(super) fn new(serial: &str) -> SerialKey {
        let norm = normalise(serial);
        let rnorm = norm.chars().rev().collect();
        SerialKey { serial: serial.to_string(), norm, rnorm }
    }
}

/// `serial_keys` rows of one company; a serial already known is skipped.
pub(super) fn key_rows(company_id: &str) -> Bulk<'_, SerialKey> {
    Bulk {
        table: "serial_keys",
        same: vec![("company_id", Same::Text(company_id))],
        each: vec![
            ("serial", Get::Text(|k| Some(&k.serial))),
            ("norm", Get::Text(|k| Some(&k.norm))),
            ("rnorm", Get::Text(|k| Some(&k.rnorm))),
        ],
        sqlite_tail: " ON CONFLICT (company_id, serial) DO NOTHING",
        postgres_tail: " ON CONFLICT (company_id, md5(serial)) DO NOTHING",
    }
}

/// Records the serials of newly inserted events in `serial_keys`.
pub(super) async fn remember<C: BulkInsert>(
    conn: &mut C,
    company_id: &str,
    serials: impl IntoIterator<Item = &str>,
) -> Result<(), sqlx::Error> {
    let mut distinct: Vec<&str> = serials.into_iter().collect();
    distinct.sort_unstable();
    distinct.dedup();
    let keys: Vec<SerialKey> = distinct.into_iter().map(SerialKey::new).collect();
    for chunk in keys.chunks(1000) {
        conn.bulk_insert(&key_rows(company_id), chunk).await?;
    }
    Ok(())
}

/// How many edits a typed serial may be from a suggestion: one for a short serial, two otherwise.
fn allowed_edits(len: usize) -> usize {
    if len <= 5 { 1 } else { 2 }
}

/// Levenshtein distance (insertions, deletions, substitutions) between two strings, by character.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// `[from, to)`: the strings starting with `prefix`, in byte order (`to` is past any character).
fn prefix_range(prefix: &str) -> (String, String) {
    (prefix.to_string(), format!("{prefix}\u{10FFFF}"))
}

/// The candidates in `[$1, $2)` of `column` (`norm` or `rnorm`), up to `$3`, read upward or
/// downward; of company `$4` if `company`. On SQLite the company is not offered as an index (`+`):
/// without statistics SQLite would read all of a company's serials by the primary key, and sort.
fn candidates_sql(column: &str, upward: bool, company: bool, sqlite: bool) -> String {
    let company = match (company, sqlite) {
        (false, _) => "",
        (true, true) => " AND +company_id = $4",
        (true, false) => " AND company_id = $4",
    };
    let order = if upward { "" } else { " DESC" };
    format!(
        "SELECT serial, norm FROM serial_keys WHERE {column} >= $1 AND {column} < $2{company} \
         ORDER BY {column}{order} LIMIT $3"
    )
}

impl Store {
    /// Serials that look like `serial`, best first, each with its edit distance (between the
    /// normalised forms): the same ignoring case, spaces and punctuation (distance 0), within
    /// one or two edits, or starting with it. For "did you mean" and the search page.
    pub async fn close_serials(
        &self,
        serial: &str,
        company_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, usize)>, StoreError> {
        let norm = normalise(serial.trim());
        if norm.is_empty() {
            return Ok(Vec::new());
        }
        let rnorm: String = norm.chars().rev().collect();
        let len = norm.chars().count();
        let edits = allowed_edits(len);
        let half = |s: &str, n: usize| s.chars().take(n).collect::<String>();
        // Starting with the typed serial (a search box), or sharing its first or last half.
        // A half shared by more serials than a read takes (`SN00`) is read outward from what
        // was typed, both ways: the serials sorting next to it share the longest prefix (or
        // suffix) with it, where a typo late in the serial leaves its match.
        let mut reads = vec![("norm", norm.clone(), prefix_range(&norm).1, true)];
        if len >= 2 {
            let (from, to) = prefix_range(&half(&norm, len / 2));
            reads.push(("norm", norm.clone(), to, true));
            reads.push(("norm", from, norm.clone(), false));
            let (from, to) = prefix_range(&half(&rnorm, len - len / 2));
            reads.push(("rnorm", rnorm.clone(), to, true));
            reads.push(("rnorm", from, rnorm.clone(), false));
        }
        let mut found: Vec<(String, String)> = Vec::new();
        for (column, from, to, upward) in &reads {
            let sql = candidates_sql(column, *upward, company_id.is_some(), self.sqlite_pool().is_some());
            let rows: Vec<(String, String)> = on_pool!(self, pool => {
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(from).bind(to).bind(CANDIDATES);
                if let Some(company) = company_id {
                    q = q.bind(company);
                }
                q.persistent(false).fetch_all(pool).await.context(|| format!("looking for serials like {serial:?}"))?
            });
            found.extend(rows);
        }
        let mut scored: Vec<(String, usize)> = found
            .into_iter()
            .filter_map(|(candidate, candidate_norm)| {
                let d = edit_distance(&norm, &candidate_norm);
                (d <= edits || candidate_norm.starts_with(&norm)).then_some((candidate, d))
            })
            .collect();
        // The same serial ignoring case and punctuation first, then the serials that start with
        // exactly what was typed (ignoring case: a search box), then by distance, completions
        // of the normalised form first.
        let typed = serial.trim().to_lowercase();
        scored.sort_by_cached_key(|(s, d)| {
            (*d != 0, !s.to_lowercase().starts_with(&typed), *d, !normalise(s).starts_with(&norm), s.clone())
        });
        scored.dedup_by(|a, b| a.0 == b.0);
        scored.truncate(limit);
        Ok(scored)
    }
}

/// Fills `serial_keys` from `serial_events`, when migration V13 creates it.
pub(super) async fn backfill<C: BulkInsert>(conn: &mut C, rows: Vec<(String, String)>) -> Result<(), sqlx::Error> {
    let mut rows = rows;
    rows.sort_unstable();
    for group in rows.chunk_by(|a, b| a.0 == b.0) {
        let company = group[0].0.clone();
        remember(conn, &company, group.iter().map(|(_, s)| s.as_str())).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each read of candidates is a range of one index on SQLite, also for one company.
    #[tokio::test]
    async fn candidates_are_read_from_the_normalised_index_on_sqlite() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        sqlx::raw_sql(include_str!("../../migrations/sqlite/V13__close_matches.sql")).execute(&pool).await.unwrap();
        for (column, index) in [("norm", "serial_keys_by_norm"), ("rnorm", "serial_keys_by_rnorm")] {
            for upward in [true, false] {
                let sql = format!("EXPLAIN QUERY PLAN {}", candidates_sql(column, upward, true, true));
                let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind("SN1")
                    .bind("SN2")
                    .bind(10_i64)
                    .bind("c1")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                let plan: Vec<String> = plan.into_iter().map(|row| row.3).collect();
                let plan = plan.join("\n");
                assert!(plan.contains(index) && !plan.contains("TEMP B-TREE"), "{column} {upward}: {plan}");
            }
        }
    }

    #[test]
    fn serials_normalise_to_upper_case_letters_and_digits() {
        assert_eq!(normalise(" sn-000 319 "), "SN000319");
        assert_eq!(normalise("PRJ/24.000_676"), "PRJ24000676");
        assert_eq!(normalise("--"), "");
        assert_eq!(normalise(&"9".repeat(300)).len(), MAX_NORM);
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("PRJ2400676", "PRJ24000676"), 1);
        assert_eq!(edit_distance("SN000319", "SN000319"), 0);
        assert_eq!(edit_distance("SN000319", "SN000391"), 2);
        assert_eq!(edit_distance("", "ABC"), 3);
        assert_eq!(edit_distance("KITTEN", "SITTING"), 3);
    }

    #[test]
    fn one_edit_leaves_the_first_or_the_last_half_intact() {
        // Why two index ranges find every serial one edit away.
        let typed = "PRJ2400676";
        let len = typed.len();
        for real in ["PRJ24000676", "XRJ2400676", "PRJ2400677", "RJ2400676"] {
            assert_eq!(edit_distance(typed, real), 1);
            let first = &typed[..len / 2];
            let last = &typed[len / 2..];
            assert!(real.starts_with(first) || real.ends_with(last), "{real}");
        }
    }
}
