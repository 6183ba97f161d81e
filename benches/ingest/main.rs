//! `cargo bench --bench ingest`: the figures of merit of `audit`, each beside a baseline measured
//! in the same run. See `benches/README.md` for what each figure means.
//!
//! 1. requests spent, against the fewest the data allows (simulator document counts);
//! 2. quota use under 60/minute and 1000/hour on a compressed clock;
//! 3. ingest speed against the database's own bulk load of the same rows (3a/3b), and `audit
//!    rebuild` of the same databases against the same loads (3c/3d);
//! 4. peak resident memory of the ingest process at ~250k and ~1.2M serial occurrences;
//! 5. `audit timeline` latency on 10 million events against `sqlite3` / `psql`;
//! 6. each `sql/` query on figure 3b's database right after the ingest, against after `ANALYZE`;
//! 7. `audit anomalies` over figure 5's events against a full scan by `sqlite3` / `psql`;
//! 8. `audit serve`'s serial page over HTTP on the same events (p50, p95).
//!
//! Prints a table and writes it as JSON to `target/bench-ingest.json`. Exits 1 when a figure
//! could not be measured (a slot for a subcommand that has not landed yet does not count), 2 on
//! bad arguments; a goal that is missed is reported, not an error.

mod anomalies;
mod env;
mod procs;
mod queries;
mod quota;
mod report;
mod requests;
mod serve;
mod speed;
mod timeline;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use env::{Options, Postgres};
use report::{Figure, Status};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(procs::HELPER_FLAG) {
        return procs::helper_main(&args[2..]);
    }
    let options = match Options::parse(args.into_iter().skip(1)) {
        Ok(o) => o,
        Err(why) => {
            if !why.is_empty() {
                eprintln!("error: {why}");
            }
            eprint!("{}", env::USAGE);
            return ExitCode::from(2);
        }
    };
    // Two workers: the simulator serves while a blocking thread waits for the measured child.
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime");
    runtime.block_on(run(options))
}

/// Prints a progress line with the time since the start.
fn say(started: Instant, text: &str) {
    eprintln!("[{:>6.1}s] {text}", started.elapsed().as_secs_f64());
}

async fn run(o: Options) -> ExitCode {
    let started = Instant::now();
    let mut context = Map::new();
    context.insert("started_at".into(), json!(chrono::Utc::now().to_rfc3339()));
    context.insert("cores".into(), json!(env::cores()));
    context.insert("load_average_at_start".into(), json!(env::load_average()));
    context.insert("audit_binary".into(), json!(env::audit_binary().display().to_string()));
    context.insert("options".into(), json!(format!("{o:?}")));
    if let Some(load) = env::load_average()
        && load[0] > 0.5 * env::cores() as f64
    {
        say(
            started,
            &format!(
                "warning: the machine is busy (load average {:.2} on {} cores); timings will be slower than on an idle machine",
                load[0],
                env::cores()
            ),
        );
    }
    let bin = env::audit_binary();
    if !bin.exists() {
        eprintln!("error: the audit binary {} is missing; run through `cargo bench --bench ingest`", bin.display());
        return ExitCode::FAILURE;
    }
    let target = env::target_dir();
    let work = match tempfile::Builder::new().prefix("bench-ingest-").tempdir_in(&target) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("error: cannot create a work directory in {}: {e}", target.display());
            return ExitCode::FAILURE;
        }
    };
    let work_path = work.path().to_path_buf();
    say(started, &format!("work directory {}", work_path.display()));

    let sqlite_ok = env::tool_available("sqlite3", "-version");
    let psql_ok = env::tool_available("psql", "--version");
    let pg: Result<Postgres, String> =
        if psql_ok { Postgres::connect(&o.postgres_url).await } else { Err("psql is not installed".into()) };
    if let Ok(pg) = &pg {
        let mut settings = Map::new();
        for name in ["server_version", "shared_buffers", "synchronous_commit", "autovacuum", "max_wal_size"] {
            settings.insert(name.into(), json!(pg.setting(name).await));
        }
        context.insert("postgres".into(), Value::Object(settings));
    }
    let pg_ref = pg.as_ref().map_err(Clone::clone);
    let mut figures: Vec<Figure> = Vec::new();
    let mut phases = Map::new();

    // 1. Requests.
    let mut rerun_rate = None;
    if o.wants("requests") {
        let t = Instant::now();
        say(started, &format!("figure 1: requests, simulator scale {}", o.requests_scale));
        let (f, learnt) = requests::run(&work_path, &o.requests_scale).await;
        rerun_rate = learnt.rerun_rate;
        figures.extend(f);
        phases.insert("requests_s".into(), json!(t.elapsed().as_secs_f64()));
    }

    // 4a. Memory at ~250k occurrences.
    let mut small_ingest = None;
    if o.wants("memory") {
        let t = Instant::now();
        let scale = o.small_orders.to_string();
        say(started, &format!("figure 4a: memory, simulator scale {scale}"));
        let figure = match speed::simulator(&scale, 1.0).await {
            Ok(sim) => {
                let occurrences = sim.serial_occurrences();
                let db = work_path.join("memory-small.db");
                let result = speed::ingest(&sim, &env::sqlite_url(&db), &work_path, "memory-small", None).await;
                sim.shutdown().await;
                speed::remove_sqlite(&db);
                match result {
                    Ok(ingest) => {
                        let f = speed::memory_figure(
                            "4a",
                            format!(
                                "peak RSS of audit ingest, {} occurrences (SQLite)",
                                report::thousands(occurrences as i64)
                            ),
                            &ingest,
                            None,
                        );
                        small_ingest = Some(ingest);
                        f
                    }
                    Err(why) => memory_blank("4a", "~250k").failed(why),
                }
            }
            Err(why) => memory_blank("4a", "~250k").failed(why),
        };
        figures.push(figure);
        phases.insert("memory_small_s".into(), json!(t.elapsed().as_secs_f64()));
    }

    // 3, 4b and 2 share the large company.
    if o.wants("speed") || o.wants("memory") || o.wants("quota") || o.wants("sql") {
        let time_scale = quota::choose_time_scale(rerun_rate);
        say(started, &format!("starting the simulator, scale {}", o.large_scale));
        match speed::simulator(&o.large_scale, time_scale).await {
            Err(why) => {
                if o.wants("speed") {
                    figures.push(speed_blank("3a", "SQLite").failed(&why));
                    figures.push(speed::rebuild_blank("3c", "SQLite").failed(&why));
                }
                figures.extend(postgres_blanks(&o, &why));
                if o.wants("memory") {
                    figures.push(memory_blank("4b", "~1.2M").failed(&why));
                }
            }
            Ok(sim) => {
                let occurrences = sim.serial_occurrences();
                context.insert(
                    "large_company".into(),
                    json!({
                        "scale": o.large_scale, "documents": sim.counts(), "serial_occurrences": occurrences,
                        "startup_s": sim.startup_time().as_secs_f64(),
                    }),
                );
                large(
                    &o,
                    &sim,
                    &work_path,
                    &pg_ref,
                    sqlite_ok,
                    small_ingest.as_ref(),
                    time_scale,
                    started,
                    &mut figures,
                    &mut phases,
                )
                .await;
                sim.shutdown().await;
            }
        }
    }

    // 5. Timeline latency, 7. anomalies and 8. serve, on the same generated databases.
    if o.wants("timeline") || o.wants("anomalies") || o.wants("serve") {
        let t = Instant::now();
        say(
            started,
            &format!(
                "figures 5/7/8: generating two databases of {} events",
                report::thousands(o.timeline_events as i64)
            ),
        );
        let wanted = timeline::Wanted {
            sqlite: sqlite_ok,
            timeline_samples: o.wants("timeline").then_some(o.timeline_samples),
            anomaly_runs: o.wants("anomalies").then_some(o.anomaly_runs),
            serve_requests: o.wants("serve").then_some(o.serve_requests),
        };
        figures.extend(timeline::run(&work_path, pg_ref.clone(), o.timeline_events, wanted).await);
        phases.insert("timeline_s".into(), json!(t.elapsed().as_secs_f64()));
    }

    if let Ok(pg) = &pg {
        pg.drop_all().await;
    }
    figures.sort_by(|a, b| a.id.cmp(&b.id));
    let runtime = started.elapsed();
    context.insert("phases_s".into(), Value::Object(phases));
    context.insert("runtime_s".into(), json!(runtime.as_secs_f64()));
    context.insert("load_average_at_end".into(), json!(env::load_average()));

    println!();
    println!("{}", report::table(&figures));
    println!(
        "benchmark runtime {:.0} s (without the build); load average at the end {}",
        runtime.as_secs_f64(),
        env::load_average().map_or("?".into(), |l| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]))
    );
    let misses = report::misses(&figures);
    if !misses.is_empty() {
        println!("goals not met:\n{misses}");
    }
    let json_path = target.join("bench-ingest.json");
    match report::write_json(&json_path, &figures, &Value::Object(context)) {
        Ok(()) => println!("written to {}", json_path.display()),
        Err(e) => eprintln!("error: cannot write {}: {e}", json_path.display()),
    }
    if o.keep {
        let kept = work.keep();
        println!("work directory kept: {}", kept.display());
    }
    let failed: Vec<&Figure> = figures.iter().filter(|f| f.status == Status::Failed).collect();
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        for f in failed {
            eprintln!("could not measure {} {}: {}", f.id, f.name, f.note);
        }
        ExitCode::FAILURE
    }
}

fn speed_blank(id: &str, backend: &str) -> Figure {
    Figure::new(
        id,
        format!("ingest speed, {backend}"),
        "events/s",
        report::Goal::RatioAtMost { ratio: 1.5 },
        "bulk load",
    )
}

fn memory_blank(id: &str, size: &str) -> Figure {
    Figure::new(
        id,
        format!("peak RSS of audit ingest, {size} occurrences (SQLite)"),
        "MB",
        report::Goal::ValueBelow { value: 200.0 },
        "",
    )
}

/// Figures 3, 4b, 2 and 6 on the large company: SQLite first, then Postgres.
#[allow(clippy::too_many_arguments)]
async fn large(
    o: &Options,
    sim: &inflow_simulator::Simulator,
    work: &std::path::Path,
    pg: &Result<&Postgres, String>,
    sqlite_ok: bool,
    small: Option<&speed::Ingest>,
    time_scale: f64,
    started: Instant,
    figures: &mut Vec<Figure>,
    phases: &mut Map<String, Value>,
) {
    if o.wants("speed") || o.wants("memory") || o.wants("quota") {
        sqlite_large(o, sim, work, sqlite_ok, small, time_scale, started, figures, phases).await;
    }

    // Postgres: figures 3b, 6 and 3d on one ingest.
    if o.wants("speed") || o.wants("sql") {
        let t = Instant::now();
        figures.extend(match pg {
            Err(why) => postgres_blanks(o, why),
            Ok(pg) => match pg.create("ingest").await {
                Err(why) => postgres_blanks(o, &format!("cannot create a database: {why}")),
                Ok(url) => {
                    let f = postgres_figures(o, sim, pg, &url, work, started, phases).await;
                    pg.drop_db(&url).await;
                    f
                }
            },
        });
        phases.insert("postgres_s".into(), json!(t.elapsed().as_secs_f64()));
    }
}

/// Figures 3a, 3c, 4b and 2 on the SQLite database of the large company.
#[allow(clippy::too_many_arguments)]
async fn sqlite_large(
    o: &Options,
    sim: &inflow_simulator::Simulator,
    work: &std::path::Path,
    sqlite_ok: bool,
    small: Option<&speed::Ingest>,
    time_scale: f64,
    started: Instant,
    figures: &mut Vec<Figure>,
    phases: &mut Map<String, Value>,
) {
    let deadline = Some(Duration::from_secs(o.ingest_deadline_secs));
    let occurrences = report::thousands(sim.serial_occurrences() as i64);

    // SQLite ingest: figure 3a, and 4b (memory at the large size).
    let db = work.join("ingest.db");
    let db_url = env::sqlite_url(&db);
    let t = Instant::now();
    say(started, &format!("figure 3a/4b: audit ingest of {occurrences} occurrences into SQLite"));
    let sqlite_ingest = speed::ingest(sim, &db_url, work, "ingest-sqlite", deadline).await;
    phases.insert("ingest_sqlite_s".into(), json!(t.elapsed().as_secs_f64()));
    if o.wants("memory") {
        figures.push(match &sqlite_ingest {
            Ok(ingest) => speed::memory_figure(
                "4b",
                format!("peak RSS of audit ingest, {occurrences} occurrences (SQLite)"),
                ingest,
                small,
            ),
            Err(why) => memory_blank("4b", "~1.2M").failed(why),
        });
    }
    if o.wants("speed") {
        figures.extend(sqlite_speed(&sqlite_ingest, &db, work, sqlite_ok, deadline, started, phases).await);
    }

    // Figure 2 re-reads the company into the database the ingest filled.
    if o.wants("quota") {
        let t = Instant::now();
        let expected = quota::expected_duration(time_scale, o.quota_requests);
        say(
            started,
            &format!(
                "figure 2: quota, {} requests paced to 60/min and 1000/h with a minute of {:.0} ms (about {:.0} s)",
                o.quota_requests,
                60_000.0 * time_scale,
                expected.as_secs_f64()
            ),
        );
        let ready = match &sqlite_ingest {
            Ok(ingest) if !ingest.run.interrupted => Ok(()),
            _ => {
                // The quota run needs a filled database; without figure 3 make one, untimed.
                speed::remove_sqlite(&db);
                speed::ingest(sim, &db_url, work, "quota-fill", None).await.map(|_| ())
            }
        };
        match ready {
            Ok(()) => figures.extend(quota::run(sim, &db_url, time_scale, o.quota_requests, work).await),
            Err(why) => {
                for (id, name) in [("2a", "429s"), ("2b", "minute"), ("2c", "hour"), ("2d", "sustained")] {
                    figures.push(
                        Figure::new(
                            id,
                            format!("quota: {name}"),
                            "requests",
                            report::Goal::RatioAtLeast { ratio: 0.95 },
                            "limit",
                        )
                        .failed(&why),
                    );
                }
            }
        }
        phases.insert("quota_s".into(), json!(t.elapsed().as_secs_f64()));
    }
    speed::remove_sqlite(&db);
}

/// Figures 3a (bulk-load baseline of the SQLite ingest) and 3c (`audit rebuild` of the same
/// database against that baseline).
async fn sqlite_speed(
    ingest: &Result<speed::Ingest, String>,
    db: &std::path::Path,
    work: &std::path::Path,
    sqlite_ok: bool,
    deadline: Option<Duration>,
    started: Instant,
    phases: &mut Map<String, Value>,
) -> Vec<Figure> {
    let ingest = match ingest {
        Ok(i) => i,
        Err(why) => {
            return vec![speed_blank("3a", "SQLite").failed(why), speed::rebuild_blank("3c", "SQLite").failed(why)];
        }
    };
    let t = Instant::now();
    say(started, "figure 3a: bulk-load baseline with sqlite3");
    let baseline = if sqlite_ok {
        let (db, work) = (db.to_path_buf(), work.to_path_buf());
        tokio::task::spawn_blocking(move || speed::sqlite_baseline(&db, &work))
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
    } else {
        Err("sqlite3 is not installed".into())
    };
    phases.insert("baseline_sqlite_s".into(), json!(t.elapsed().as_secs_f64()));
    let t = Instant::now();
    say(started, "figure 3c: audit rebuild of the SQLite database");
    let db_url = env::sqlite_url(db);
    let rebuilt = speed::rebuild(&db_url, work, "rebuild-sqlite", deadline).await;
    let events = speed::count_events(&db_url);
    phases.insert("rebuild_sqlite_s".into(), json!(t.elapsed().as_secs_f64()));
    vec![
        speed::speed_figure("3a", "SQLite", ingest, baseline.clone()),
        speed::rebuild_figure("3c", "SQLite", rebuilt, events, &baseline),
    ]
}

/// The Postgres figures a failure leaves blank, for the groups asked for.
fn postgres_blanks(o: &Options, why: &str) -> Vec<Figure> {
    let mut out = Vec::new();
    if o.wants("speed") {
        out.push(speed_blank("3b", "Postgres").failed(why));
        out.push(speed::rebuild_blank("3d", "Postgres").failed(why));
    }
    if o.wants("sql") {
        out.push(queries::blank_all(why));
    }
    out
}

/// Figure 3b (ingest into a new Postgres database against `psql \copy`), then figure 6 (the
/// `sql/` queries on what the ingest left, before and after `ANALYZE`), then figure 3d (`audit
/// rebuild` of the same database, analysed, against 3b's baseline). Figure 6 comes before the
/// rebuild, which writes to the tables.
async fn postgres_figures(
    o: &Options,
    sim: &inflow_simulator::Simulator,
    pg: &Postgres,
    url: &str,
    work: &std::path::Path,
    started: Instant,
    phases: &mut Map<String, Value>,
) -> Vec<Figure> {
    let deadline = Some(Duration::from_secs(o.ingest_deadline_secs));
    let occurrences = report::thousands(sim.serial_occurrences() as i64);
    // The schema first (untimed, as for the baseline), so that autovacuum can be kept off the
    // tables: figure 6 measures the statistics the ingest itself leaves.
    if let Err(why) = speed::migrate_without_autovacuum(url, work) {
        return postgres_blanks(o, &why);
    }
    let t = Instant::now();
    say(started, &format!("figure 3b: audit ingest of {occurrences} occurrences into Postgres"));
    let ingest = match speed::ingest(sim, url, work, "ingest-postgres", deadline).await {
        Ok(i) => i,
        Err(why) => return postgres_blanks(o, &why),
    };
    phases.insert("ingest_postgres_s".into(), json!(t.elapsed().as_secs_f64()));
    let mut out = Vec::new();
    let baseline = if o.wants("speed") {
        say(started, "figure 3b: bulk-load baseline with psql \\copy");
        let baseline = speed::postgres_baseline(pg, url, work).await;
        out.push(speed::speed_figure("3b", "Postgres", &ingest, baseline.clone()));
        Some(baseline)
    } else {
        None
    };
    if o.wants("sql") {
        let t = Instant::now();
        say(started, "figure 6: the sql/ queries before and after ANALYZE");
        out.extend(queries::run(url, o.sql_runs).await);
        phases.insert("sql_s".into(), json!(t.elapsed().as_secs_f64()));
    }
    if let Some(baseline) = baseline {
        let t = Instant::now();
        // The rebuild runs on analysed tables either way (figure 6's ANALYZE, or this one, not
        // timed): a user rebuilds long after the ingest, once autovacuum (or the ingest's own
        // ANALYZE) has been through the tables.
        if !o.wants("sql")
            && let Err(why) = speed::analyze(url)
        {
            out.push(speed::rebuild_blank("3d", "Postgres").failed(why));
            return out;
        }
        say(started, "figure 3d: audit rebuild of the Postgres database");
        let rebuilt = speed::rebuild(url, work, "rebuild-postgres", deadline).await;
        let events = speed::count_events(url);
        out.push(speed::rebuild_figure("3d", "Postgres", rebuilt, events, &baseline));
        phases.insert("rebuild_postgres_s".into(), json!(t.elapsed().as_secs_f64()));
    }
    out
}
