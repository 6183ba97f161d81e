//! Figure 6: each query of the `sql/` library through `audit sql --query NAME` on the large
//! Postgres database right after figure 3b's ingest (with the statistics the ingest left), against
//! the same query after a manual `ANALYZE` of the database.
//!
//! The parameters are real values read from the database (a serial with a rich history, a
//! purchase order whose serials were built into other units, a period that holds movements...),
//! and each query must return rows. Every query is warmed once (untimed), then timed
//! `--sql-runs` times; then `ANALYZE` runs (through `psql`) and every query is timed again. A
//! query does not change the statistics, so the order keeps the first side honest. The plans
//! (`EXPLAIN` of the cursor `audit sql` opens) before and after are kept in the JSON file.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use audit::store::adhoc::{Dialect, ParamError, substitute_params};
use serde_json::{Value, json};

use crate::env;
use crate::procs;
use crate::report::{Figure, Goal};

/// A run of `audit sql` longer than this is stopped by audit itself (`--timeout`), and the
/// figure is then a lower bound.
const TIMEOUT: Duration = Duration::from_secs(60);

/// About the most one side of one query may take: a query whose warm-up took longer than this
/// over `--sql-runs` is timed fewer times (down to once), so that the slow queries of the
/// full-size company cost half a minute or so each, not several minutes; the quick ones, which
/// the process start and the machine's noise dominate, get every run.
const SIDE_BUDGET: Duration = Duration::from_secs(10);

/// One query of the library, in its Postgres text.
struct LibraryQuery {
    name: String,
    text: String,
    params: Vec<String>,
}

/// A query with the parameter values chosen for it.
struct Prepared {
    query: LibraryQuery,
    values: Vec<(String, String)>,
}

/// What one side (before or after `ANALYZE`) measured for one query.
#[derive(Default)]
struct Side {
    runs: Vec<Duration>,
    rows: Option<usize>,
    timed_out: bool,
    plan: String,
    error: Option<String>,
}

impl Side {
    fn median(&self) -> Option<Duration> {
        let mut runs = self.runs.clone();
        runs.sort();
        runs.get(runs.len() / 2).copied()
    }
}

/// The figure-6 rows, one per library query, on the database at `url` (figure 3b's, just
/// ingested). `runs` is the number of timed runs of each query on each side.
pub async fn run(url: &str, runs: usize) -> Vec<Figure> {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || measure(&url, runs))
        .await
        .unwrap_or_else(|e| vec![blank("6", "the library").failed(format!("the measuring task failed: {e}"))])
}

fn measure(url: &str, runs: usize) -> Vec<Figure> {
    let library = match library() {
        Ok(l) if !l.is_empty() => l,
        Ok(_) => return vec![blank("6", "the library").failed("no query found in sql/")],
        Err(why) => return vec![blank("6", "the library").failed(why)],
    };
    let ids: Vec<String> = (0..library.len()).map(figure_id).collect();
    let mut context = json!({
        "autovacuum": psql_value(url, "SHOW autovacuum").ok(),
        "statistics_before_analyze": psql_value(url, TABLE_STATS).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok()),
    });
    let mut prepared = Vec::new();
    let mut figures: Vec<Option<Figure>> = Vec::new();
    for (query, id) in library.into_iter().zip(&ids) {
        match choose_values(url, &query) {
            Ok(values) => {
                prepared.push(Prepared { query, values });
                figures.push(None);
            }
            Err(why) => figures.push(Some(blank(id, &query.name).failed(why))),
        }
    }
    let before: Vec<Side> = prepared.iter().map(|p| time_side(url, p, None, runs)).collect();
    let started = Instant::now();
    let analyzed = env::psql(url).args(["-c", "ANALYZE"]).output();
    let analyze_s = started.elapsed().as_secs_f64();
    if let Err(why) = analyzed.as_ref().map_err(|e| e.to_string()).and_then(|o| {
        if o.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&o.stderr).trim().to_string()) }
    }) {
        let why = format!("ANALYZE failed: {why}");
        return ids.iter().map(|id| blank(id, "the library").failed(&why)).collect();
    }
    context["analyze_s"] = json!(analyze_s);
    // The same number of runs as before the ANALYZE; one after a timeout (the ratio is then a
    // lower bound); none for a query that failed.
    let after: Vec<Side> = prepared
        .iter()
        .zip(&before)
        .map(|(p, b)| match (&b.error, b.timed_out) {
            (None, false) => time_side(url, p, Some(b.runs.len()), runs),
            (None, true) => time_side(url, p, Some(1), runs),
            (Some(_), _) => Side::default(),
        })
        .collect();
    let mut measured = prepared.iter().zip(before).zip(after);
    let mut out = Vec::new();
    for (slot, id) in figures.into_iter().zip(&ids) {
        match slot {
            Some(f) => out.push(f.details(context.clone())),
            None => {
                let ((p, b), a) = measured.next().expect("one measurement per prepared query");
                out.push(figure(id, p, &b, &a, &context));
            }
        }
    }
    out
}

/// `6a`, `6b`, ... in the order of the query names.
fn figure_id(i: usize) -> String {
    match u8::try_from(i).ok().filter(|i| *i < 26) {
        Some(i) => format!("6{}", char::from(b'a' + i)),
        None => format!("6-{i}"),
    }
}

/// The one row figure 6 shows when it could not start (no database, say).
pub fn blank_all(why: &str) -> Figure {
    blank("6", "(every query)").failed(why)
}

fn blank(id: &str, name: &str) -> Figure {
    Figure::new(
        id,
        format!("audit sql --query {name}, Postgres, right after the ingest"),
        "ms",
        Goal::RatioAtMost { ratio: 1.2 },
        "after ANALYZE",
    )
}

/// The row of one query from its two sides.
fn figure(id: &str, p: &Prepared, before: &Side, after: &Side, context: &Value) -> Figure {
    let params: Vec<String> = p.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let details = json!({
        "query": p.query.name,
        "params": params,
        "context": context,
        "before_analyze": side_details(before),
        "after_analyze": side_details(after),
    });
    let f = blank(id, &p.query.name).details(details);
    if let Some(why) = before.error.as_ref().or(after.error.as_ref()) {
        return f.failed(why.clone());
    }
    let (Some(b), Some(a)) = (before.median(), after.median()) else {
        return f.failed("no timed run");
    };
    let rows = before.rows.or(after.rows).unwrap_or(0);
    if rows == 0 {
        return f.failed(format!(
            "returned no rows with {}: choose other values (the finders in benches/ingest/queries.rs)",
            params.join(" ")
        ));
    }
    if !before.timed_out && !after.timed_out && before.rows != after.rows {
        return f.failed(format!(
            "{} rows before ANALYZE, {} after: the answers differ",
            rows,
            after.rows.unwrap_or(0)
        ));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut figure = f.measured(ms(b), Some(ms(a)), None).note(format!(
        "{} rows; {}; median of {} / {} runs",
        crate::report::thousands(rows as i64),
        if params.is_empty() { "no parameters".to_string() } else { params.join(" ") },
        before.runs.len(),
        after.runs.len()
    ));
    if before.timed_out || after.timed_out {
        figure.met = Some(false);
        figure.note = format!(
            "{}; TIMED OUT at {} s {} ANALYZE: the ratio is a bound",
            figure.note,
            TIMEOUT.as_secs(),
            if before.timed_out { "before" } else { "after" }
        );
    }
    figure
}

fn side_details(side: &Side) -> Value {
    json!({
        "runs_ms": side.runs.iter().map(|d| d.as_secs_f64() * 1000.0).collect::<Vec<_>>(),
        "median_ms": side.median().map(|d| d.as_secs_f64() * 1000.0),
        "min_ms": side.runs.iter().min().map(|d| d.as_secs_f64() * 1000.0),
        "rows": side.rows,
        "timed_out": side.timed_out,
        "plan": side.plan,
        "error": side.error,
    })
}

/// Times one query: on the first side a warm-up run first (untimed: it also sets the hint bits
/// of the rows the ingest wrote), which sets how many timed runs both sides get (`runs`, fewer
/// for a long query, so that one side of one query costs about [`SIDE_BUDGET`]); its plan.
fn time_side(url: &str, p: &Prepared, runs: Option<usize>, wanted: usize) -> Side {
    let mut side =
        Side { plan: explain(url, p).unwrap_or_else(|why| format!("EXPLAIN failed: {why}")), ..Side::default() };
    let runs = match runs {
        Some(n) => n,
        None => match run_once(url, p, true) {
            Ok(Run::Done { wall, rows }) => {
                side.rows = rows;
                let fit = (SIDE_BUDGET.as_secs_f64() / wall.as_secs_f64().max(1e-3)).floor() as usize;
                fit.clamp(1, wanted)
            }
            Ok(Run::TimedOut) => {
                // Timing it again would only cost the timeout again.
                side.timed_out = true;
                side.runs.push(TIMEOUT);
                return side;
            }
            Err(why) => {
                side.error = Some(why);
                return side;
            }
        },
    };
    let count_first = side.rows.is_none();
    for i in 0..runs {
        // The rows are counted once a side (parsing the JSON is not timed, but costs).
        let count = count_first && i == 0;
        match run_once(url, p, count) {
            Ok(Run::Done { wall, rows }) => {
                side.runs.push(wall);
                if count {
                    side.rows = rows;
                }
            }
            Ok(Run::TimedOut) => {
                side.timed_out = true;
                side.runs.push(TIMEOUT);
                break;
            }
            Err(why) => {
                side.error = Some(why);
                break;
            }
        }
    }
    side
}

enum Run {
    Done { wall: Duration, rows: Option<usize> },
    TimedOut,
}

/// One `audit sql --query NAME --format json` as its own process, wall time from start to exit.
fn run_once(url: &str, p: &Prepared, count_rows: bool) -> Result<Run, String> {
    let mut cmd = env::audit(url);
    cmd.args(["sql", "--query", &p.query.name, "--format", "json", "--timeout"]).arg(format!("{}s", TIMEOUT.as_secs()));
    for (k, v) in &p.values {
        cmd.arg("--param").arg(format!("{k}={v}"));
    }
    let (wall, code, stdout, stderr) =
        procs::time_output(&mut cmd).map_err(|e| format!("cannot run audit sql --query {}: {e}", p.query.name))?;
    if code != Some(0) {
        let text = stderr.to_lowercase();
        // audit's own words for its --timeout (src/store/adhoc.rs, QueryError::Timeout).
        if text.contains("ran longer than") {
            return Ok(Run::TimedOut);
        }
        return Err(format!(
            "audit sql --query {} failed (exit {code:?}): {}",
            p.query.name,
            stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | ")
        ));
    }
    let rows = if count_rows {
        let value: Value = serde_json::from_str(&stdout)
            .map_err(|e| format!("audit sql --query {} printed no JSON list: {e}", p.query.name))?;
        Some(value.as_array().map_or(0, Vec::len))
    } else {
        None
    };
    Ok(Run::Done { wall, rows })
}

/// The plan of the cursor `audit sql` opens for the query (cursors are planned for their first
/// rows, `cursor_tuple_fraction`, so a plain `EXPLAIN SELECT` could show another plan).
fn explain(url: &str, p: &Prepared) -> Result<String, String> {
    let text = substitute_params(&p.query.text, &p.values, Dialect::Postgres).map_err(|e| e.to_string())?;
    let text = text.trim().trim_end_matches(';');
    let out = env::psql(url)
        .args(["-A", "-t", "-c", "BEGIN", "-c"])
        .arg(format!("EXPLAIN DECLARE bench_cursor NO SCROLL CURSOR FOR\n{text}"))
        .args(["-c", "ROLLBACK"])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `pg_stat_user_tables` as JSON: what the ingest's own ANALYZEs (and autovacuum, if it ran)
/// left.
const TABLE_STATS: &str = "SELECT COALESCE(json_agg(json_build_object('table', relname, 'live_rows', n_live_tup, \
     'modified_since_analyze', n_mod_since_analyze, 'last_analyze', last_analyze, 'last_autoanalyze', \
     last_autoanalyze, 'autoanalyze_count', autoanalyze_count) ORDER BY relname), '[]') FROM pg_stat_user_tables";

/// The queries of `sql/`, each once with its Postgres text (`x.postgres.sql` over `x.sql`), by
/// name; the files are those the binary embeds (a unit test of `audit` checks they match).
fn library() -> Result<Vec<LibraryQuery>, String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut files: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".sql") && !n.ends_with(".sqlite.sql"))
        .collect();
    files.sort();
    let mut out: Vec<LibraryQuery> = Vec::new();
    for file in files {
        let name = file.trim_end_matches(".sql").trim_end_matches(".postgres").to_string();
        let own = file.ends_with(".postgres.sql");
        if let Some(existing) = out.iter().position(|q| q.name == name) {
            if !own {
                continue;
            }
            out.remove(existing);
        }
        let text = std::fs::read_to_string(dir.join(&file)).map_err(|e| format!("cannot read sql/{file}: {e}"))?;
        let params = params(&text);
        out.push(LibraryQuery { name, text, params });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The `:name` parameters of a query, found the way `audit sql` substitutes them.
fn params(text: &str) -> Vec<String> {
    let mut given: Vec<(String, String)> = Vec::new();
    while let Err(ParamError::Missing(name)) = substitute_params(text, &given, Dialect::Postgres) {
        given.push((name, String::new()));
    }
    given.into_iter().map(|(name, _)| name).collect()
}

/// Real values for a query's parameters, read from the database.
fn choose_values(url: &str, q: &LibraryQuery) -> Result<Vec<(String, String)>, String> {
    let mut values = Vec::new();
    for param in &q.params {
        let sql = finder(&q.name, param, &values).ok_or_else(|| {
            format!("no value is chosen for parameter :{param}: add a finder for it in benches/ingest/queries.rs")
        })?;
        let value = psql_value(url, &sql)?;
        if value.is_empty() {
            return Err(format!("no value for :{param} in the database (finder: {sql})"));
        }
        values.push((param.clone(), value));
    }
    Ok(values)
}

/// The SQL that finds a value of `param` for query `query`, given the values chosen before it.
fn finder(query: &str, param: &str, chosen: &[(String, String)]) -> Option<String> {
    let quote = |v: &str| format!("'{}'", v.replace('\'', "''"));
    Some(match (query, param) {
        // A component that was built into something which was itself built into something:
        // the deepest tree in both directions.
        ("genealogy" | "recall_serial", "serial") => "SELECT g.component_serial FROM serial_genealogy g \
             LEFT JOIN serial_genealogy up ON up.company_id = g.company_id AND up.component_serial = g.finished_serial \
             AND up.component_product_id = g.finished_product_id \
             GROUP BY g.component_serial ORDER BY count(up.finished_serial) DESC, g.component_serial LIMIT 1"
            .into(),
        // A serial bought and sold, with the most events.
        (_, "serial") => "SELECT serial FROM serial_events WHERE retracted_at IS NULL \
             GROUP BY company_id, product_id, serial \
             HAVING bool_or(event_type = 'received' AND doc_type = 'purchase_order') \
             AND bool_or(event_type = 'shipped' AND doc_type = 'sales_order') \
             ORDER BY count(*) DESC, serial LIMIT 1"
            .into(),
        // The purchase order with the most serials later built into other units.
        (_, "po_number") => "SELECT r.doc_number FROM serial_events r \
             LEFT JOIN serial_genealogy g ON g.company_id = r.company_id AND g.component_serial = r.serial \
             AND g.component_product_id = r.product_id \
             WHERE r.doc_type = 'purchase_order' AND r.event_type = 'received' AND r.retracted_at IS NULL \
             AND r.doc_number IS NOT NULL \
             GROUP BY r.doc_number ORDER BY count(g.finished_serial) DESC, count(*) DESC, r.doc_number LIMIT 1"
            .into(),
        // The 30 days up to the newest dated movement.
        (_, "from") => "SELECT to_char((max(occurred_at) AT TIME ZONE 'UTC')::date - 29, 'YYYY-MM-DD') \
             FROM serial_events WHERE occurred_at IS NOT NULL"
            .into(),
        (_, "to") => "SELECT to_char((max(occurred_at) AT TIME ZONE 'UTC')::date + 1, 'YYYY-MM-DD') \
             FROM serial_events WHERE occurred_at IS NOT NULL"
            .into(),
        // What a user asks after a daily run: the newest thousand documents.
        (_, "since") => "SELECT to_char(first_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"') \
             FROM documents ORDER BY first_seen_at DESC OFFSET 999 LIMIT 1"
            .into(),
        // The day of the middle of the chosen serial's dated events.
        (_, "on") => {
            let serial = chosen.iter().find(|(k, _)| k == "serial")?;
            format!(
                "SELECT to_char((occurred_at AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD') FROM ( \
                 SELECT occurred_at, row_number() OVER (ORDER BY occurred_at) AS n, count(*) OVER () AS total \
                 FROM serial_events WHERE serial = {} AND occurred_at IS NOT NULL AND retracted_at IS NULL) x \
                 WHERE n = (total + 1) / 2",
                quote(&serial.1)
            )
        }
        _ => return None,
    })
}

/// The first column of the first row of a query through `psql`, trimmed.
fn psql_value(url: &str, sql: &str) -> Result<String, String> {
    let out = env::psql(url).args(["-A", "-t", "-c", sql]).output().map_err(|e| format!("cannot run psql: {e}"))?;
    if !out.status.success() {
        return Err(format!("psql failed on `{sql}`: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").trim().to_string())
}
