//! Close matches of a mistyped serial, served by `serial_keys` (migration V13): the serials
//! whose normalised form equals the typed one's, starts with it, or shares its first or last
//! half; the edit distance of those few candidates is measured here. No scan of `serial_events`.

use sqlx::QueryBuilder;

use super::bulk::{Bulk, BulkInsert, Get, Same};
use super::{Context, Store, StoreError, on_pool};

/// Normalised forms keep at most this many characters: index entries stay small, and a longer
/// serial is not typed by hand.
const MAX_NORM: usize = 100;

/// Candidates read per index range: enough for every serial sharing a half in real data, and
/// a bound on the work when a half is shared by a great many (`SN00`).
const CANDIDATES: i64 = 500;

/// A serial's comparable form: upper case, letters and digits only (`sn-000 319` is
/// `SN000319`), at most [`MAX_NORM`] characters.
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
        let mut ranges = vec![("norm", prefix_range(&norm))];
        if len >= 2 {
            ranges.push(("norm", prefix_range(&half(&norm, len / 2))));
            ranges.push(("rnorm", prefix_range(&half(&rnorm, len - len / 2))));
        }
        let mut found: Vec<(String, String)> = Vec::new();
        for (column, (from, to)) in &ranges {
            let rows: Vec<(String, String)> = on_pool!(self, pool => {
                let mut q = QueryBuilder::new("SELECT serial, norm FROM serial_keys WHERE ");
                q.push(*column).push(" >= ").push_bind(from).push(" AND ").push(*column).push(" < ").push_bind(to);
                if let Some(company) = company_id {
                    q.push(" AND company_id = ").push_bind(company);
                }
                q.push(" ORDER BY ").push(*column).push(" LIMIT ").push_bind(CANDIDATES);
                q.build_query_as().persistent(false).fetch_all(pool).await
                    .context(|| format!("looking for serials like {serial:?}"))?
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
