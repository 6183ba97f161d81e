//! The queries of `sql/`, embedded in the binary (the list is written by `build.rs`), so that
//! `audit sql --query NAME` works outside a clone of the repository.

use crate::store::Backend;

include!(concat!(env!("OUT_DIR"), "/sql_library.rs"));

/// One shipped query: `recall`, or `time_in_stock` in one file per engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Query {
    pub name: String,
    /// The one-sentence description from the file's header comment.
    pub description: String,
    /// The `:name` parameters, in the order they first appear.
    pub params: Vec<String>,
}

/// The engine a file is written for, from its name: `x.sqlite.sql`, `x.postgres.sql`, or
/// `x.sql` for both.
fn split_name(file: &str) -> (&str, Option<Backend>) {
    let stem = file.strip_suffix(".sql").unwrap_or(file);
    if let Some(name) = stem.strip_suffix(".sqlite") {
        (name, Some(Backend::Sqlite))
    } else if let Some(name) = stem.strip_suffix(".postgres") {
        (name, Some(Backend::Postgres))
    } else {
        (stem, None)
    }
}

/// The text of query `name` for `backend`: its own file, or the one for both engines.
pub(crate) fn text(name: &str, backend: Backend) -> Option<&'static str> {
    let name = name.trim().trim_end_matches(".sql");
    let shared = LIBRARY.iter().find(|(file, _)| split_name(file) == (name, None));
    let own = LIBRARY.iter().find(|(file, _)| split_name(file) == (name, Some(backend)));
    own.or(shared).map(|(_, text)| *text)
}

/// Every shipped query once (a query in one file per engine is listed once), by name.
pub(crate) fn list() -> Vec<Query> {
    let mut out: Vec<Query> = Vec::new();
    for (file, text) in LIBRARY {
        let (name, _) = split_name(file);
        if out.iter().any(|q| q.name == name) {
            continue;
        }
        out.push(Query { name: name.to_string(), description: description(text), params: params(text) });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The names a user may give to `--query`, for an error message.
pub(crate) fn names() -> Vec<String> {
    list().into_iter().map(|q| q.name).collect()
}

/// The header comment's first sentence, on one line.
fn description(text: &str) -> String {
    let mut header = String::new();
    for line in text.lines() {
        let Some(comment) = line.trim().strip_prefix("--") else { break };
        let comment = comment.trim();
        if comment.starts_with("Run:") {
            break;
        }
        if !header.is_empty() {
            header.push(' ');
        }
        header.push_str(comment);
    }
    // The first sentence: up to a full stop followed by a space (or the end).
    let sentence = match header.find(". ") {
        Some(end) => &header[..=end],
        None => &header,
    };
    shorten(sentence, DESCRIPTION_WIDTH)
}

/// A listed description's most characters: one line of a wide terminal.
const DESCRIPTION_WIDTH: usize = 110;

/// `text` cut at a word before `max` characters, with an ellipsis, when longer.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out = String::new();
    for word in text.split(' ') {
        if out.chars().count() + word.chars().count() + 2 > max {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.trim_end_matches([',', ';', ':']).to_string() + "…"
}

/// The `:name` parameters of a query, outside strings and comments (as `audit sql` substitutes
/// them).
fn params(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    // Substituting a marker for every name finds them the way the substitution reads the text.
    let mut given: Vec<(String, String)> = Vec::new();
    loop {
        match crate::store::adhoc::substitute_params(text, &given, crate::store::adhoc::Dialect::Sqlite) {
            Err(crate::store::adhoc::ParamError::Missing(name)) => {
                names.push(name.clone());
                given.push((name, String::new()));
            }
            _ => return names,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `.sql` file in `sql/` is in the binary: a file added after the last build is
    /// caught here (build.rs writes the list from the folder, so a fresh build includes it).
    #[test]
    fn every_file_of_sql_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        on_disk.sort();
        let embedded: Vec<String> = LIBRARY.iter().map(|(n, _)| (*n).to_string()).collect();
        assert_eq!(embedded, on_disk);
        for (file, text) in LIBRARY {
            let on_disk =
                std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql").join(file));
            assert_eq!(on_disk.unwrap(), *text, "{file} is embedded as it is on disk");
        }
    }

    #[test]
    fn every_query_has_a_description_and_its_parameters() {
        let queries = list();
        assert!(queries.len() >= 9, "{queries:?}");
        for q in &queries {
            let n = q.description.chars().count();
            assert!(n > 20 && n <= DESCRIPTION_WIDTH, "{}: {:?}", q.name, q.description);
            assert!(
                text(&q.name, Backend::Sqlite).is_some() && text(&q.name, Backend::Postgres).is_some(),
                "{}",
                q.name
            );
        }
        let recall = queries.iter().find(|q| q.name == "recall").unwrap();
        assert_eq!(recall.params, ["po_number"]);
        let moved = queries.iter().find(|q| q.name == "moved_between").unwrap();
        assert_eq!(moved.params, ["from", "to"]);
        assert!(moved.description.starts_with("Serials that moved"), "{}", moved.description);
        assert_eq!(queries.iter().filter(|q| q.name == "time_in_stock").count(), 1);
    }

    #[test]
    fn a_long_description_is_cut_at_a_word() {
        assert_eq!(shorten("short one.", 20), "short one.");
        assert_eq!(shorten("one two, three four", 12), "one two…");
        assert!(shorten(&"word ".repeat(50), 30).chars().count() <= 30);
    }

    #[test]
    fn a_query_in_two_files_is_picked_by_engine() {
        let sqlite = text("time_in_stock", Backend::Sqlite).unwrap();
        let postgres = text("time_in_stock", Backend::Postgres).unwrap();
        assert_ne!(sqlite, postgres);
        assert_eq!(Some(sqlite), LIBRARY.iter().find(|(n, _)| *n == "time_in_stock.sqlite.sql").map(|(_, t)| *t));
        assert_eq!(text("recall.sql", Backend::Postgres), text("recall", Backend::Sqlite));
        assert!(text("nope", Backend::Sqlite).is_none());
    }
}
