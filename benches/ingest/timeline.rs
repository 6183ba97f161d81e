//! Figure 5: `audit timeline SERIAL --format json` as a whole process on a database of many
//! events, against the database's own command-line client running the same indexed query in a
//! fresh process.
//!
//! The database is generated, not ingested: `audit migrate` makes the schema, the
//! `serial_events` indexes are dropped, the rows are inserted by one `INSERT ... SELECT` (a
//! recursive CTE on SQLite, `generate_series` on Postgres) and the indexes are created again by
//! the migration's own statements, which ends with the same schema an ingest would have made.
//! Each serial has four events (received, sold, picked, shipped) spread over the table, like the
//! ~4.2 events per serial of the simulated company; 200 products and 4 locations give the
//! joins something to find.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::env::{self, Postgres};
use crate::procs;
use crate::report::{Figure, Goal};
use crate::speed::remove_sqlite;

const COMPANY: &str = "5b0c6a4e-0000-4000-8000-000000000001";
const EVENTS_PER_SERIAL: u64 = 4;

/// The query `audit timeline` runs (`src/store/query.rs`), for the command-line clients.
fn query(serial: &str) -> String {
    format!("{}'{serial}' AND e.retracted_at IS NULL", audit::store::query::EVENT_COLUMNS)
}

fn serial_name(s: u64) -> String {
    format!("SN-{s:08}")
}

/// The serials timed: spread over the whole range, the same on both databases.
fn sample(serials: u64, n: usize) -> Vec<String> {
    (0..n as u64).map(|j| serial_name((j.wrapping_mul(2_654_435_761).wrapping_add(12_345)) % serials)).collect()
}

/// The generated rows: i runs over 0..N; serial s = i mod S gets event k = i div S.
const SQLITE_ROWS: &str = "
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}),
r AS (SELECT i % {serials} AS s, i / {serials} AS k FROM n)
INSERT INTO serial_events (company_id, serial, product_id, doc_type, doc_id, doc_number, line_collection, line_id,
    event_type, occurred_at, location_id, sublocation, quantity_delta, doc_status, observed_at, run_id)
SELECT '{company}', printf('SN-%08d', s),
    printf('%08x-1111-4111-8111-%012x', s % 200, s % 200),
    CASE k WHEN 0 THEN 'purchase_order' ELSE 'sales_order' END,
    printf('%08x-2222-4222-8222-%012x', min(k, 1), s / 10),
    CASE k WHEN 0 THEN printf('PO-%07d', s / 10) ELSE printf('SO-%07d', s / 10) END,
    CASE k WHEN 0 THEN 'receiveLines' WHEN 1 THEN 'lines' WHEN 2 THEN 'pickLines' ELSE 'shipLines' END,
    printf('%08x-3333-4333-8333-%012x', k, s / 2),
    CASE k WHEN 0 THEN 'received' WHEN 1 THEN 'sold' WHEN 2 THEN 'picked' ELSE 'shipped' END,
    strftime('%Y-%m-%dT%H:%M:%S+00:00', 1704067200 + (s % 1000) * 86400 + k * 259200 + (s * 37) % 86400, 'unixepoch'),
    printf('%08x-4444-4444-8444-%012x', s % 4, s % 4),
    CASE k WHEN 0 THEN 'A-' || (s % 50) ELSE NULL END,
    CASE k WHEN 0 THEN 1 WHEN 2 THEN -1 ELSE 0 END,
    'fulfilled', '2026-01-01T00:00:00+00:00', 1
FROM r;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 199)
INSERT INTO products (company_id, product_id, name, sku, track_serials, is_active, item_type, row_version, updated_at)
SELECT '{company}', printf('%08x-1111-4111-8111-%012x', i, i), 'Product ' || i, printf('SKU-%04d', i), 1, 1,
    'stockedProduct', '0', '2026-01-01T00:00:00+00:00' FROM n;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 3)
INSERT INTO locations (company_id, location_id, name, is_active, row_version, updated_at)
SELECT '{company}', printf('%08x-4444-4444-8444-%012x', i, i), 'Location ' || i, 1, '0',
    '2026-01-01T00:00:00+00:00' FROM n;
";

const POSTGRES_ROWS: &str = "
INSERT INTO serial_events (company_id, serial, product_id, doc_type, doc_id, doc_number, line_collection, line_id,
    event_type, occurred_at, location_id, sublocation, quantity_delta, doc_status, observed_at, run_id)
SELECT '{company}', 'SN-' || lpad(s::text, 8, '0'),
    lpad(to_hex(s % 200), 8, '0') || '-1111-4111-8111-' || lpad(to_hex(s % 200), 12, '0'),
    CASE k WHEN 0 THEN 'purchase_order' ELSE 'sales_order' END,
    lpad(to_hex(least(k, 1)), 8, '0') || '-2222-4222-8222-' || lpad(to_hex(s / 10), 12, '0'),
    CASE k WHEN 0 THEN 'PO-' ELSE 'SO-' END || lpad((s / 10)::text, 7, '0'),
    CASE k WHEN 0 THEN 'receiveLines' WHEN 1 THEN 'lines' WHEN 2 THEN 'pickLines' ELSE 'shipLines' END,
    lpad(to_hex(k), 8, '0') || '-3333-4333-8333-' || lpad(to_hex(s / 2), 12, '0'),
    CASE k WHEN 0 THEN 'received' WHEN 1 THEN 'sold' WHEN 2 THEN 'picked' ELSE 'shipped' END,
    to_timestamp(1704067200 + (s % 1000) * 86400 + k * 259200 + (s * 37) % 86400),
    lpad(to_hex(s % 4), 8, '0') || '-4444-4444-8444-' || lpad(to_hex(s % 4), 12, '0'),
    CASE k WHEN 0 THEN 'A-' || (s % 50) ELSE NULL END,
    CASE k WHEN 0 THEN 1 WHEN 2 THEN -1 ELSE 0 END,
    'fulfilled', timestamptz '2026-01-01 00:00:00+00', 1
FROM (SELECT i % {serials} AS s, i / {serials} AS k FROM generate_series(0::bigint, {last}) AS i) r;
INSERT INTO products (company_id, product_id, name, sku, track_serials, is_active, item_type, row_version, updated_at)
SELECT '{company}', lpad(to_hex(i), 8, '0') || '-1111-4111-8111-' || lpad(to_hex(i), 12, '0'), 'Product ' || i,
    'SKU-' || lpad(i::text, 4, '0'), true, true, 'stockedProduct', '0', timestamptz '2026-01-01 00:00:00+00'
FROM generate_series(0, 199) AS i;
INSERT INTO locations (company_id, location_id, name, is_active, row_version, updated_at)
SELECT '{company}', lpad(to_hex(i), 8, '0') || '-4444-4444-8444-' || lpad(to_hex(i), 12, '0'), 'Location ' || i,
    true, '0', timestamptz '2026-01-01 00:00:00+00'
FROM generate_series(0, 3) AS i;
";

fn fill(template: &str, events: u64) -> String {
    let serials = events.div_ceil(EVENTS_PER_SERIAL);
    template
        .replace("{last}", &(events - 1).to_string())
        .replace("{serials}", &serials.to_string())
        .replace("{company}", COMPANY)
}

/// Builds the SQLite database; returns how long generation took.
pub fn generate_sqlite(path: &Path, events: u64, logs: &Path) -> Result<Duration, String> {
    remove_sqlite(path);
    let url = env::sqlite_url(path);
    let started = std::time::Instant::now();
    run_ok(env::audit(&url).arg("migrate"), logs, "timeline-sqlite-migrate")?;
    // The migration's own index statements, to create again after the load.
    let listed = run_ok(
        env::sqlite3(path).args([
            "-json",
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'serial_events' AND sql IS NOT NULL",
        ]),
        logs,
        "timeline-sqlite-indexes",
    )?;
    let indexes: Vec<Value> = serde_json::from_str(listed.stdout.trim()).map_err(|e| e.to_string())?;
    let mut script = String::from(
        "PRAGMA journal_mode = DELETE;\nPRAGMA synchronous = OFF;\nPRAGMA cache_size = -1048576;\nBEGIN;\n",
    );
    for ix in &indexes {
        script.push_str(&format!("DROP INDEX {};\n", ix["name"].as_str().unwrap_or_default()));
    }
    script.push_str(&fill(SQLITE_ROWS, events));
    for ix in &indexes {
        script.push_str(ix["sql"].as_str().unwrap_or_default());
        script.push_str(";\n");
    }
    script.push_str("COMMIT;\nPRAGMA journal_mode = WAL;\n");
    let script_path = logs.join("timeline-sqlite.sql");
    std::fs::write(&script_path, script).map_err(|e| e.to_string())?;
    run_ok(env::sqlite3(path).arg(format!(".read {}", script_path.display())), logs, "timeline-sqlite-generate")?;
    Ok(started.elapsed())
}

/// Builds the Postgres database; returns how long generation took.
pub fn generate_postgres(url: &str, events: u64, logs: &Path) -> Result<Duration, String> {
    let started = std::time::Instant::now();
    run_ok(env::audit(url).arg("migrate"), logs, "timeline-postgres-migrate")?;
    let listed = run_ok(
        env::psql(url).args([
            "-A",
            "-t",
            "-c",
            "SELECT json_agg(json_build_object('name', indexname, 'sql', indexdef)) FROM pg_indexes \
             WHERE tablename = 'serial_events' AND indexname <> 'serial_events_pkey'",
        ]),
        logs,
        "timeline-postgres-indexes",
    )?;
    let indexes: Vec<Value> = serde_json::from_str(listed.stdout.trim()).map_err(|e| e.to_string())?;
    let mut script = String::from("SET synchronous_commit = off;\nSET maintenance_work_mem = '1GB';\nBEGIN;\n");
    for ix in &indexes {
        script.push_str(&format!("DROP INDEX {};\n", ix["name"].as_str().unwrap_or_default()));
    }
    script.push_str(&fill(POSTGRES_ROWS, events));
    for ix in &indexes {
        script.push_str(ix["sql"].as_str().unwrap_or_default());
        script.push_str(";\n");
    }
    script.push_str("COMMIT;\nANALYZE serial_events;\nANALYZE products;\nANALYZE locations;\n");
    let script_path = logs.join("timeline-postgres.sql");
    std::fs::write(&script_path, script).map_err(|e| e.to_string())?;
    run_ok(env::psql(url).args(["-f", &script_path.display().to_string()]), logs, "timeline-postgres-generate")?;
    Ok(started.elapsed())
}

fn run_ok(cmd: &mut std::process::Command, logs: &Path, label: &str) -> Result<procs::Finished, String> {
    let done = procs::run(cmd, logs, label, None).map_err(|e| format!("cannot run {label}: {e}"))?;
    if done.success() { Ok(done) } else { Err(format!("{label} failed: {}", done.describe())) }
}

/// Times both commands for each sampled serial and returns the figure.
pub fn measure(id: &str, backend: &str, db_url: &str, events: u64, samples: usize, generated: Duration) -> Figure {
    let figure = Figure::new(
        id,
        format!("timeline latency, {backend}"),
        "ms",
        Goal::RatioAtMost { ratio: 2.0 },
        if backend == "SQLite" { "sqlite3" } else { "psql" },
    );
    let rows_in_db = match crate::speed::count_events(db_url) {
        Ok(n) => n,
        Err(why) => return figure.failed(why),
    };
    let serials = events.div_ceil(EVENTS_PER_SERIAL);
    let picked = sample(serials, samples);
    let client = |serial: &str| -> std::process::Command {
        match db_url.strip_prefix("sqlite://") {
            Some(path) => {
                let mut c = std::process::Command::new("sqlite3");
                c.args(["-batch", "-json", path, &query(serial)]);
                c
            }
            None => {
                let mut c = env::psql(db_url);
                c.args(["-A", "-t", "-c", &query(serial)]);
                c
            }
        }
    };
    let audit_cmd = |serial: &str| -> std::process::Command {
        let mut c = env::audit(db_url);
        c.args(["timeline", serial, "--format", "json"]);
        c
    };
    // The plan of the client's query, for the record: it must use serial_events_by_serial.
    let plan = {
        let mut c = match db_url.strip_prefix("sqlite://") {
            Some(path) => {
                let mut c = std::process::Command::new("sqlite3");
                c.args(["-batch", path, &format!("EXPLAIN QUERY PLAN {}", query(&picked[0]))]);
                c
            }
            None => {
                let mut c = env::psql(db_url);
                c.args(["-A", "-t", "-c", &format!("EXPLAIN {}", query(&picked[0]))]);
                c
            }
        };
        c.output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
    };
    if !plan.contains("serial_events_by_serial") {
        return figure.failed(format!("the client's query does not use serial_events_by_serial: {plan}"));
    }
    // One untimed pass warms the caches the same way for both.
    for serial in &picked {
        let _ = client(serial).output();
        let _ = audit_cmd(serial).output();
    }
    let mut audit_ms = Vec::new();
    let mut client_ms = Vec::new();
    for (i, serial) in picked.iter().enumerate() {
        // Alternate who goes first, so neither always finds the other's caches.
        let order = if i % 2 == 0 { [true, false] } else { [false, true] };
        for audit_first in order {
            let timed = if audit_first {
                procs::time_output(&mut audit_cmd(serial))
            } else {
                procs::time_output(&mut client(serial))
            };
            let (wall, code, stdout, stderr) = match timed {
                Ok(t) => t,
                Err(e) => return figure.failed(format!("cannot run the command: {e}")),
            };
            if code != Some(0) {
                return figure.failed(format!(
                    "{} for {serial} exited {code:?}: {}",
                    if audit_first { "audit timeline" } else { "the client" },
                    stderr.trim()
                ));
            }
            if audit_first {
                let events = serde_json::from_str::<Value>(&stdout)
                    .ok()
                    .and_then(|v| {
                        v["histories"]
                            .as_array()
                            .map(|h| h.iter().map(|h| h["events"].as_array().map_or(0, Vec::len)).sum::<usize>())
                    })
                    .unwrap_or(0);
                if events == 0 {
                    return figure.failed(format!("audit timeline {serial} printed no events"));
                }
                audit_ms.push(wall.as_secs_f64() * 1000.0);
            } else {
                if !stdout.contains(serial.as_str()) {
                    return figure.failed(format!("the client found no rows for {serial}"));
                }
                client_ms.push(wall.as_secs_f64() * 1000.0);
            }
        }
    }
    let a = median(&mut audit_ms);
    let c = median(&mut client_ms);
    figure
        .measured(a, Some(c), None)
        .note(format!("median of {} serials over {} events", picked.len(), crate::report::thousands(rows_in_db as i64)))
        .details(json!({
            "events": rows_in_db,
            "generated_in_s": generated.as_secs_f64(),
            "audit_ms": audit_ms,
            "client_ms": client_ms,
            "client_plan": plan.trim(),
        }))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn blank(id: &str, backend: &str) -> Figure {
    let client = if backend == "SQLite" { "sqlite3" } else { "psql" };
    Figure::new(id, format!("timeline latency, {backend}"), "ms", Goal::RatioAtMost { ratio: 2.0 }, client)
}

/// What to measure on the generated databases: figure 5 (this many serials), figure 7 (this
/// many runs), or both; and whether `sqlite3` is there to generate the SQLite one.
pub struct Wanted {
    pub sqlite: bool,
    pub timeline_samples: Option<usize>,
    pub anomaly_runs: Option<usize>,
    /// Figure 8: this many timed serial pages over HTTP.
    pub serve_requests: Option<usize>,
}

/// Figures 5 and 6 on both databases. SQLite and Postgres are generated at the same time (two
/// processes on two cores), then measured one after the other.
pub async fn run(work: &Path, pg: Result<&Postgres, String>, events: u64, wanted: Wanted) -> Vec<Figure> {
    let sqlite_path = work.join("timeline.db");
    let sqlite_url = env::sqlite_url(&sqlite_path);
    let (path, logs) = (sqlite_path.clone(), work.to_path_buf());
    let sqlite_gen = wanted.sqlite.then(|| tokio::task::spawn_blocking(move || generate_sqlite(&path, events, &logs)));
    let pg_db = match &pg {
        Ok(pg) => pg.create("timeline").await.map_err(|e| format!("cannot create a database: {e}")),
        Err(why) => Err(why.clone()),
    };
    let pg_gen = pg_db.clone().map(|url| {
        let logs = work.to_path_buf();
        tokio::task::spawn_blocking(move || generate_postgres(&url, events, &logs))
    });
    let sqlite_generated = match sqlite_gen {
        Some(task) => task.await.map_err(|e| e.to_string()).and_then(|r| r),
        None => Err("sqlite3 is not installed".to_string()),
    };
    let pg_generated = match pg_gen {
        Ok(task) => task.await.map_err(|e| e.to_string()).and_then(|r| r),
        Err(why) => Err(why),
    };

    let mut figures = Vec::new();
    let sqlite = sqlite_generated.map(|generated| (sqlite_url, generated));
    figures.extend(measure_both(&["5a", "7a", "8a"], "SQLite", sqlite, &wanted).await);
    remove_sqlite(&sqlite_path);
    let postgres = match (&pg_db, pg_generated) {
        (Ok(url), Ok(generated)) => Ok((url.clone(), generated)),
        (Ok(_), Err(why)) => Err(format!("generating the database: {why}")),
        (Err(why), _) => Err(why.clone()),
    };
    figures.extend(measure_both(&["5b", "7b", "8b"], "Postgres", postgres, &wanted).await);
    if let (Ok(pg), Ok(url)) = (&pg, &pg_db) {
        pg.drop_db(url).await;
    }
    figures
}

/// The wanted figures of one database: the timeline latency (`ids[0]`), `audit anomalies`
/// (`ids[1]`) and the serial page of `audit serve` (`ids[2]`), or why they could not be measured.
async fn measure_both(
    ids: &[&str; 3],
    backend: &'static str,
    db: Result<(String, Duration), String>,
    wanted: &Wanted,
) -> Vec<Figure> {
    let mut out = Vec::new();
    let counted = db.and_then(|(url, generated)| Ok((crate::speed::count_events(&url)?, url, generated)));
    let (events, url, generated) = match counted {
        Ok(db) => db,
        Err(why) => {
            if wanted.timeline_samples.is_some() {
                out.push(blank(ids[0], backend).failed(&why));
            }
            if wanted.anomaly_runs.is_some() {
                out.push(crate::anomalies::blank(ids[1], backend).failed(&why));
            }
            if wanted.serve_requests.is_some() {
                out.push(crate::serve::blank(ids[2], backend).failed(&why));
            }
            return out;
        }
    };
    if let Some(samples) = wanted.timeline_samples {
        let (id, url) = (ids[0].to_string(), url.clone());
        out.push(
            tokio::task::spawn_blocking(move || measure(&id, backend, &url, events, samples, generated))
                .await
                .unwrap_or_else(|e| blank(ids[0], backend).failed(e.to_string())),
        );
    }
    if let Some(requests) = wanted.serve_requests {
        let serials = sample(events.div_ceil(EVENTS_PER_SERIAL), requests);
        out.push(crate::serve::measure(ids[2], backend, &url, events, serials, requests).await);
    }
    if let Some(runs) = wanted.anomaly_runs {
        let id = ids[1].to_string();
        out.push(
            tokio::task::spawn_blocking(move || crate::anomalies::measure(&id, backend, &url, events, runs))
                .await
                .unwrap_or_else(|e| crate::anomalies::blank(ids[1], backend).failed(e.to_string())),
        );
    }
    out
}
