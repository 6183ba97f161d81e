//! Figures 3 and 4: ingest speed against a bulk load of the same rows, and peak memory.
//!
//! `audit ingest` (the release binary) runs as its own process against the simulator hosted by
//! this one, with the client's pacing lifted. The baseline takes the `serial_events` rows the
//! ingest wrote, dumps them to CSV (not timed), creates an empty database with `audit migrate`
//! (the project's schema and indexes; not timed) and times the database's own tool loading them:
//! `sqlite3` `.import` into a scratch table then `INSERT ... SELECT` into `serial_events`, with
//! the page cache and synchronous settings audit itself uses; `psql` `\copy` into
//! `serial_events`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use inflow_simulator::{Scale, SimConfig, Simulator};
use serde_json::{Value, json};

use crate::env::{self, Postgres, UNPACED, mb};
use crate::procs::{self, Finished};
use crate::report::{Figure, Goal};

/// The `serial_events` columns a load writes: all but the generated `event_id`.
pub const COLUMNS: &str = "company_id, serial, product_id, doc_type, doc_id, doc_number, line_collection, line_id, \
     event_type, occurred_at, location_id, sublocation, quantity_delta, doc_status, observed_at, run_id, \
     retracted_at, retracted_run_id";

/// A measured ingest.
pub struct Ingest {
    pub run: Finished,
    pub events: u64,
    /// CPU the benchmark process (the simulator) used meanwhile.
    pub simulator_cpu: Duration,
}

impl Ingest {
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.run.wall.as_secs_f64()
    }

    pub fn details(&self) -> Value {
        json!({
            "wall_s": self.run.wall.as_secs_f64(),
            "events": self.events,
            "events_per_s": self.rate(),
            "peak_rss_mb": mb(self.run.max_rss),
            "audit_user_cpu_s": self.run.user.as_secs_f64(),
            "audit_sys_cpu_s": self.run.sys.as_secs_f64(),
            "simulator_cpu_s": self.simulator_cpu.as_secs_f64(),
            "stopped_at_deadline": self.run.interrupted,
            "summary": self.run.stdout.lines().next().unwrap_or(""),
        })
    }
}

/// Starts a simulator without rate limits or faults; `time_scale` only matters once figure 2
/// turns the limits on.
pub async fn simulator(scale: &str, time_scale: f64) -> Result<Simulator, String> {
    let scale: Scale = scale.parse().map_err(|e: inflow_simulator::SimError| e.to_string())?;
    Simulator::start(SimConfig { scale, rate_limit: None, data_faults: false, time_scale, ..SimConfig::default() })
        .await
        .map_err(|e| format!("the simulator did not start: {e}"))
}

/// Runs `audit ingest` to its end (or the deadline) and counts the events it wrote.
pub async fn ingest(
    sim: &Simulator,
    db_url: &str,
    logs: &Path,
    label: &str,
    deadline: Option<Duration>,
) -> Result<Ingest, String> {
    let mut cmd = env::audit_ingest(db_url, sim);
    cmd.args(UNPACED);
    let (logs, label_owned) = (logs.to_path_buf(), label.to_string());
    let cpu_before = procs::self_cpu();
    let run = tokio::task::spawn_blocking(move || procs::run(&mut cmd, &logs, &label_owned, deadline))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot run audit: {e}"))?;
    let simulator_cpu = procs::self_cpu().saturating_sub(cpu_before);
    if !run.success() {
        return Err(format!("audit ingest ({label}) failed: {}", run.describe()));
    }
    let events = count_events(db_url)?;
    if events == 0 {
        return Err(format!("audit ingest ({label}) wrote no events"));
    }
    Ok(Ingest { run, events, simulator_cpu })
}

/// `SELECT count(*) FROM serial_events` through the database's own client.
pub fn count_events(db_url: &str) -> Result<u64, String> {
    let sql = "SELECT count(*) FROM serial_events";
    let out = match db_url.strip_prefix("sqlite://") {
        Some(path) => env::sqlite3(Path::new(path)).arg(sql).output(),
        None => env::psql(db_url).args(["-A", "-t", "-c", sql]).output(),
    }
    .map_err(|e| format!("cannot count the events: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| format!("cannot count the events: {}", String::from_utf8_lossy(&out.stderr).trim()))
}

/// `audit migrate` on an empty database: the project's schema and indexes.
fn migrate(db_url: &str, logs: &Path, label: &str) -> Result<(), String> {
    let mut cmd = env::audit(db_url);
    cmd.arg("migrate");
    let done = procs::run(&mut cmd, logs, label, None).map_err(|e| e.to_string())?;
    if done.success() { Ok(()) } else { Err(format!("audit migrate failed: {}", done.describe())) }
}

/// `audit migrate` on a new Postgres database, then autovacuum turned off on every table it
/// made (`autovacuum_enabled = false`, the table's own setting, whatever the server's): the
/// statistics after the ingest are then those the ingest itself left (figure 6).
pub fn migrate_without_autovacuum(db_url: &str, logs: &Path) -> Result<(), String> {
    migrate(db_url, logs, "postgres-ingest-migrate")?;
    let off = "DO $$ DECLARE t record; BEGIN \
         FOR t IN SELECT schemaname, tablename FROM pg_tables \
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema') LOOP \
         EXECUTE format('ALTER TABLE %I.%I SET (autovacuum_enabled = false, toast.autovacuum_enabled = false)', \
         t.schemaname, t.tablename); END LOOP; END $$";
    let mut cmd = env::psql(db_url);
    cmd.args(["-c", off]);
    run_ok(&mut cmd, logs, "postgres-autovacuum-off").map(|_| ())
}

/// `ANALYZE` of a whole Postgres database through `psql` (not timed).
pub fn analyze(db_url: &str) -> Result<(), String> {
    let out = env::psql(db_url).args(["-c", "ANALYZE"]).output().map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ANALYZE before audit rebuild failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Runs a measured command that must succeed.
fn run_ok(cmd: &mut Command, logs: &Path, label: &str) -> Result<Finished, String> {
    let done = procs::run(cmd, logs, label, None).map_err(|e| format!("cannot run {label}: {e}"))?;
    if done.success() { Ok(done) } else { Err(format!("{label} failed: {}", done.describe())) }
}

/// The bulk-load baseline on SQLite: returns the load's wall time and the rows loaded.
pub fn sqlite_baseline(ingest_db: &Path, work: &Path) -> Result<(Duration, u64), String> {
    let csv = work.join("sqlite-events.csv");
    let mut dump = env::sqlite3(ingest_db);
    dump.args(["-csv", &format!("SELECT {COLUMNS} FROM serial_events ORDER BY event_id")]);
    let dumped = run_ok(&mut dump, work, "sqlite-dump")?;
    std::fs::rename(work.join("sqlite-dump.stdout"), &csv).map_err(|e| e.to_string())?;
    drop(dumped);

    let base = work.join("sqlite-baseline.db");
    remove_sqlite(&base);
    migrate(&env::sqlite_url(&base), work, "sqlite-baseline-migrate")?;
    // .import reads CSV fields as text and an empty field as '', so the nullable columns are
    // turned back into NULLs and the numbers into integers on the way in.
    let script = format!(
        "PRAGMA cache_size = -65536;\n\
         PRAGMA synchronous = NORMAL;\n\
         CREATE TEMP TABLE import_events ({COLUMNS});\n\
         .import --csv {csv} import_events\n\
         INSERT INTO serial_events ({COLUMNS}) SELECT company_id, serial, NULLIF(product_id, ''), doc_type, \
         doc_id, NULLIF(doc_number, ''), line_collection, line_id, event_type, NULLIF(occurred_at, ''), \
         NULLIF(location_id, ''), NULLIF(sublocation, ''), CAST(quantity_delta AS INTEGER), \
         NULLIF(doc_status, ''), observed_at, CAST(run_id AS INTEGER), NULLIF(retracted_at, ''), \
         CAST(NULLIF(retracted_run_id, '') AS INTEGER) FROM import_events;\n",
        csv = csv.display()
    );
    let script_path = work.join("sqlite-load.sql");
    std::fs::write(&script_path, script).map_err(|e| e.to_string())?;
    let mut load = env::sqlite3(&base);
    load.arg(format!(".read {}", script_path.display()));
    let loaded = run_ok(&mut load, work, "sqlite-load")?;
    let rows = count_events(&env::sqlite_url(&base))?;
    let _ = std::fs::remove_file(&csv);
    remove_sqlite(&base);
    Ok((loaded.wall, rows))
}

/// The bulk-load baseline on Postgres: returns the load's wall time and the rows loaded.
pub async fn postgres_baseline(pg: &Postgres, ingest_url: &str, work: &Path) -> Result<(Duration, u64), String> {
    let csv = work.join("postgres-events.csv");
    let mut dump = env::psql(ingest_url);
    dump.args([
        "-c",
        &format!(
            "\\copy (SELECT {COLUMNS} FROM serial_events ORDER BY event_id) TO '{}' WITH (FORMAT csv)",
            csv.display()
        ),
    ]);
    run_ok(&mut dump, work, "postgres-dump")?;
    let base_url = pg.create("baseline").await?;
    let result = (|| {
        migrate(&base_url, work, "postgres-baseline-migrate")?;
        let mut load = env::psql(&base_url);
        load.args(["-c", &format!("\\copy serial_events ({COLUMNS}) FROM '{}' WITH (FORMAT csv)", csv.display())]);
        let loaded = run_ok(&mut load, work, "postgres-load")?;
        let rows = count_events(&base_url)?;
        Ok((loaded.wall, rows))
    })();
    let _ = std::fs::remove_file(&csv);
    pg.drop_db(&base_url).await;
    result
}

pub fn remove_sqlite(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Figure 3 for one database from a measured ingest and its baseline.
pub fn speed_figure(id: &str, backend: &str, ingest: &Ingest, baseline: Result<(Duration, u64), String>) -> Figure {
    let figure =
        Figure::new(id, format!("ingest speed, {backend}"), "events/s", Goal::RatioAtMost { ratio: 1.5 }, "bulk load");
    let (load, rows) = match baseline {
        Ok(b) => b,
        Err(why) => return figure.failed(format!("baseline: {why}")).details(ingest.details()),
    };
    if rows != ingest.events {
        return figure.failed(format!("the bulk load holds {rows} rows, the ingest wrote {}", ingest.events));
    }
    let ratio = ingest.run.wall.as_secs_f64() / load.as_secs_f64();
    let mut figure = figure
        .measured(ingest.rate(), Some(rows as f64 / load.as_secs_f64()), Some(ratio))
        .note(format!(
            "{} events: ingest {:.1} s, bulk load {:.1} s; ratio = ingest time / load time",
            crate::report::thousands(ingest.events as i64),
            ingest.run.wall.as_secs_f64(),
            load.as_secs_f64()
        ))
        .details(json!({ "ingest": ingest.details(), "bulk_load_s": load.as_secs_f64(), "rows": rows }));
    if ingest.run.interrupted {
        figure.met = Some(false);
        figure.note = format!(
            "{}; STOPPED at the --ingest-deadline: not a complete ingest, and the ratio of the part is a lower bound",
            figure.note
        );
    }
    figure
}

/// Figure 4: peak resident memory of the ingest process.
pub fn memory_figure(id: &str, name: String, run: &Ingest, baseline: Option<&Ingest>) -> Figure {
    let goal = match baseline {
        Some(_) => Goal::BelowAndRatioAtMost { value: 200.0, ratio: 1.10 },
        None => Goal::ValueBelow { value: 200.0 },
    };
    let figure = Figure::new(id, name, "MB", goal, if baseline.is_some() { "the 250k run" } else { "" });
    figure.measured(mb(run.run.max_rss), baseline.map(|b| mb(b.run.max_rss)), None).details(run.details())
}

/// Runs `audit rebuild` on a database an ingest filled (figure 3c/3d), to its end or the deadline.
pub async fn rebuild(db_url: &str, logs: &Path, label: &str, deadline: Option<Duration>) -> Result<Finished, String> {
    let mut cmd = env::audit(db_url);
    cmd.arg("rebuild");
    let (logs, label_owned) = (logs.to_path_buf(), label.to_string());
    let run = tokio::task::spawn_blocking(move || procs::run(&mut cmd, &logs, &label_owned, deadline))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot run audit rebuild: {e}"))?;
    // SIGINT at the deadline ends audit rebuild at once (it has no handler): a bound, not a failure.
    if !run.success() && !run.interrupted {
        return Err(format!("audit rebuild ({label}) failed: {}", run.describe()));
    }
    Ok(run)
}

/// A blank figure 3c/3d.
pub fn rebuild_blank(id: &str, backend: &str) -> Figure {
    Figure::new(id, format!("audit rebuild, {backend}"), "events/s", Goal::RatioAtMost { ratio: 1.5 }, "bulk load")
}

/// Figure 3c/3d: `audit rebuild`'s time against the bulk load of the same rows (figure 3's
/// baseline), as events per second of each.
pub fn rebuild_figure(
    id: &str,
    backend: &str,
    run: Result<Finished, String>,
    events_after: Result<u64, String>,
    baseline: &Result<(Duration, u64), String>,
) -> Figure {
    let figure = rebuild_blank(id, backend);
    let run = match run {
        Ok(r) => r,
        Err(why) => return figure.failed(why),
    };
    let details = json!({
        "wall_s": run.wall.as_secs_f64(),
        "peak_rss_mb": mb(run.max_rss),
        "audit_user_cpu_s": run.user.as_secs_f64(),
        "audit_sys_cpu_s": run.sys.as_secs_f64(),
        "stopped_at_deadline": run.interrupted,
        "summary": run.stdout.trim(),
        "stderr_tail": run.stderr.lines().rev().take(3).collect::<Vec<_>>(),
    });
    let (load, rows) = match baseline {
        Ok(b) => *b,
        Err(why) => return figure.failed(format!("baseline: {why}")).details(details),
    };
    let events = match events_after {
        Ok(n) => n,
        Err(why) => return figure.failed(why).details(details),
    };
    let wall = run.wall.as_secs_f64();
    let mut figure = figure
        .measured(rows as f64 / wall, Some(rows as f64 / load.as_secs_f64()), Some(wall / load.as_secs_f64()))
        .note(format!(
            "{} events: rebuild {wall:.1} s, bulk load {:.1} s; ratio = rebuild time / load time",
            crate::report::thousands(rows as i64),
            load.as_secs_f64()
        ))
        .details(json!({ "rebuild": details, "bulk_load_s": load.as_secs_f64(), "rows": rows }));
    if run.interrupted {
        figure.met = Some(false);
        figure.note = format!("{}; STOPPED at the --ingest-deadline: the ratio is a lower bound", figure.note);
    } else if events != rows {
        // The same binary derives what its ingest derived: a rebuild that changes the rows is wrong.
        figure.met = Some(false);
        figure.note = format!("{}; WRONG: the database then held {events} events, {rows} before", figure.note);
    }
    figure
}
