//! Issue 15's command-line points: the embedded query library, the demo's next steps, messages,
//! scheduled-job output, help text and the settings file (`audit.toml`).

mod common;

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use inflow_simulator::{Scale, Simulator};
use serde_json::Value;

/// The binary with a clean environment for the settings that tests set themselves, run in `dir`.
fn audit(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_audit"));
    cmd.current_dir(dir)
        .env_remove("AUDIT_DATABASE_URL")
        .env_remove("AUDIT_CONFIG")
        .env_remove("INFLOW_COMPANY_ID")
        .env_remove("RUST_LOG")
        .env_remove("COLUMNS")
        .env_remove("NO_COLOR")
        // No settings file of the machine's user.
        .env("XDG_CONFIG_HOME", dir.join("no-config-home"));
    cmd
}

fn output(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("run audit");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A command line as a shell splits it: words, and double-quoted strings as one word.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut started) = (false, false);
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// Issue 15, point 6: every command the demo suggests runs as printed, in a folder that is not
/// a clone of the repository (no `sql/` beside it), against the database the demo wrote.
#[test]
fn the_demos_next_steps_run_as_printed_outside_a_clone() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = output(audit(dir.path()).arg("demo"));
    assert_eq!(code, 0, "{stderr}");
    let next = stdout.split("Next, try:").nth(1).unwrap_or_else(|| panic!("no next steps:\n{stdout}"));
    let mut ran = 0;
    for line in next.lines().map(str::trim).filter(|l| l.starts_with("audit ")) {
        let command = line.split(" # ").next().unwrap().trim();
        let words = shell_words(command);
        // Long-running or a second demo: not a next step to check here.
        if words.iter().any(|w| matches!(w.as_str(), "serve" | "simulate" | "demo")) {
            continue;
        }
        assert!(!command.contains("sql/"), "a path into a clone: {command}");
        let (code, stdout, stderr) = output(audit(dir.path()).args(&words[1..]));
        assert_eq!(code, 0, "{command}: {stderr}");
        assert!(
            !stdout.trim().is_empty() && !stdout.contains("(0 rows)") && stdout.trim() != "[]",
            "{command}: {stdout}"
        );
        ran += 1;
    }
    assert!(ran >= 5, "the demo printed too few commands to try:\n{next}");
    // The README shows this very output.
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let block = format!("Next, try:\n{}", next.trim_start_matches('\n'));
    assert!(readme.contains(block.trim_end()), "the README's demo output differs from:\n{block}");
    assert!(next.contains("--query recall --param po_number=") && next.contains("sqlite://audit-demo.db"), "{next}");
}

/// The demo's database, for the tests that only read.
fn demo_db(dir: &Path) -> String {
    let (code, _, stderr) = output(audit(dir).args(["demo"]));
    assert_eq!(code, 0, "{stderr}");
    "sqlite://audit-demo.db".into()
}

#[test]
fn sql_list_names_every_shipped_query_with_its_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = output(audit(dir.path()).args(["sql", "--list"]).env("COLUMNS", "200"));
    assert_eq!(code, 0, "{stderr}");
    let sql = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    for file in std::fs::read_dir(sql).unwrap() {
        let name = file.unwrap().file_name().into_string().unwrap();
        let Some(stem) = name.strip_suffix(".sql") else { continue };
        let query = stem.trim_end_matches(".sqlite").trim_end_matches(".postgres");
        let row = stdout.lines().find(|l| l.trim_start().starts_with(&format!("{query} ")));
        assert!(row.is_some(), "{query} is not listed:\n{stdout}");
    }
    let recall = stdout.lines().find(|l| l.trim_start().starts_with("recall ")).unwrap();
    assert!(recall.contains("po_number=") && recall.contains("every serial that arrived"), "{recall}");
    let moved = stdout.lines().find(|l| l.trim_start().starts_with("moved_between ")).unwrap();
    assert!(moved.contains("from=") && moved.contains("to="), "{moved}");
    // No database is needed to list them.
    assert!(!dir.path().join("audit.db").exists());
}

fn sql_rows(db: &TestDb, args: &[&str], stdin: Option<&str>) -> Vec<Value> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_audit"));
    cmd.arg("sql").args(["--format", "json"]).args(args).env("AUDIT_DATABASE_URL", db.url_string());
    cmd.current_dir(std::env::temp_dir()).env_remove("RUST_LOG").stdin(Stdio::piped()).stdout(Stdio::piped());
    cmd.stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default().as_bytes()).unwrap();
    drop(input);
    let out = tokio::task::block_in_place(|| child.wait_with_output().unwrap());
    assert!(out.status.success(), "audit sql {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sql_fails(db: &TestDb, args: &[&str]) -> String {
    let mut all = vec!["sql"];
    all.extend_from_slice(args);
    let (code, _, stderr) = tokio::task::block_in_place(|| run_audit(&db.url_string(), &all, &[]));
    assert_eq!(code, 2, "{args:?}: {stderr}");
    stderr
}

async fn ingested(db: &TestDb, sim: &Simulator) {
    let store = db.store().await;
    ingest(&store, sim).await;
    store.close().await;
}

both_backends! {
/// `--query NAME` runs the embedded file (the engine's own version where there are two), from
/// any folder, with the same rows as `--file`; `--file -` reads standard input.
async fn shipped_queries_run_by_name_from_any_folder(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    ingested(&db, &sim).await;
    let po = &sim.scenario().full_lifecycle.documents[0].number;
    let root = env!("CARGO_MANIFEST_DIR");
    let by_name = sql_rows(&db, &["--query", "recall", "--param", &format!("po_number={po}")], None);
    let by_file =
        sql_rows(&db, &["--file", &format!("{root}/sql/recall.sql"), "--param", &format!("po_number={po}")], None);
    assert!(!by_name.is_empty());
    assert_eq!(by_name, by_file);
    let by_name = sql_rows(&db, &["--query", "time_in_stock"], None);
    let by_file = sql_rows(&db, &["--file", &format!("{root}/sql/time_in_stock.sql")], None);
    assert!(!by_name.is_empty());
    assert_eq!(by_name, by_file, "the engine's own file is picked");
    let piped = sql_rows(&db, &["--file", "-"], Some("SELECT count(*) AS n FROM serial_events"));
    assert!(piped[0]["n"].as_i64().unwrap() > 0, "{piped:?}");
    let err = sql_fails(&db, &["--query", "recal", "--param", "po_number=x"]);
    assert!(err.contains("no shipped query `recal`") && err.contains("recall, recall_serial"), "{err}");
}
}

both_backends! {
/// Point 12: a misspelt keyword is a syntax error, not a refusal; a date parameter in another
/// form is refused with the form expected, and the two forms of one instant give the same rows.
async fn sql_messages_name_the_mistake(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    ingested(&db, &sim).await;
    let err = sql_fails(&db, &["selec 1"]);
    assert!(err.contains("syntax error") && err.contains("did you mean SELECT?") && !err.contains("refused"), "{err}");
    let err = sql_fails(&db, &["DELETE FROM serial_events"]);
    assert!(err.contains("refused"), "{err}");
    // A keyword followed by punctuation is a statement, not a misspelling.
    for glued in ["select(1) AS n", "select*from (select 1 AS n) AS t"] {
        assert_eq!(sql_rows(&db, &[glued], None)[0]["n"], 1, "{glued}");
    }
    // An empty standard input is told as such (output() gives the child an empty one).
    let err = sql_fails(&db, &["--file", "-"]);
    assert!(err.contains("read no query from stdin"), "{err}");
    let err = sql_fails(&db, &["--query", "moved_between", "--param", "from=01/01/2025", "--param", "to=2030-01-01"]);
    assert!(err.contains("--param from=01/01/2025 is not a date") && err.contains("2025-07-01"), "{err}");
    let by_date = sql_rows(&db, &["--query", "moved_between", "--param", "from=2000-01-01", "--param", "to=2100-01-01"], None);
    let by_time = sql_rows(
        &db,
        &["--query", "moved_between", "--param", "from=2000-01-01T02:00:00+02:00", "--param", "to=2100-01-01T00:00:00Z"],
        None,
    );
    assert!(!by_date.is_empty());
    assert_eq!(by_date, by_time);
    let store = db.store().await;
    let moved = count(&store, "SELECT count(*) FROM serial_timeline WHERE quantity_delta <> 0 AND occurred_at IS NOT NULL").await;
    assert_eq!(by_date.len() as i64, moved, "every dated movement is inside 2000..2100");
}
}

/// Point 12: the same date parameters give the same rows on SQLite and Postgres.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_parameters_give_the_same_rows_on_both_engines() {
    let Some(pg) = TestDb::postgres().await else { return };
    let lite = TestDb::sqlite().await;
    let sim = simulator(Scale::Small).await;
    ingested(&lite, &sim).await;
    ingested(&pg, &sim).await;
    let args = ["--query", "moved_between", "--param", "from=2024-02-01", "--param", "to=2024-03-01T12:30:00+01:00"];
    let keys = |rows: Vec<Value>| -> Vec<(String, String, String)> {
        rows.iter()
            .map(|r| (r["serial"].to_string(), r["event_type"].to_string(), r["doc_number"].to_string()))
            .collect()
    };
    let (mut a, mut b) = (keys(sql_rows(&lite, &args, None)), keys(sql_rows(&pg, &args, None)));
    a.sort();
    b.sort();
    assert!(!a.is_empty());
    assert_eq!(a, b);
}

/// Point 12: a Postgres database that does not exist says how to create it.
#[test]
fn a_missing_postgres_database_says_how_to_create_it() {
    let admin = std::env::var("AUDIT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path("audit_no_such_database_h2");
    let (code, _, stderr) = run_audit(url.as_str(), &["status"], &[]);
    assert_eq!(code, 2, "{stderr}");
    if stderr.contains("refused") {
        let _ = writeln!(std::io::stderr(), "SKIPPED: no Postgres server: {stderr}");
        return;
    }
    assert!(
        stderr.contains("does not exist")
            && stderr.contains("createdb")
            && stderr.contains("audit_no_such_database_h2"),
        "{stderr}"
    );
}

/// Reads a child's stderr until a line contains `what` or `limit` passes; the line and when.
fn first_line_with(child: &mut std::process::Child, what: &str, limit: Duration) -> Option<(String, Duration)> {
    let started = Instant::now();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send((line, started.elapsed())).is_err() {
                break;
            }
        }
    });
    while let Ok((line, at)) = rx.recv_timeout(limit.saturating_sub(started.elapsed())) {
        if line.contains(what) {
            return Some((line, at));
        }
    }
    None
}

/// Point 12: a refused Postgres connection and an unreachable API are reported within seconds,
/// before the retries end.
#[test]
fn refused_connections_are_told_at_once() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut child = audit(dir.path())
        .args(["--database-url", &format!("postgres://audit@127.0.0.1:{closed}/audit"), "status"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let found = first_line_with(&mut child, "has not accepted a connection yet", Duration::from_secs(5));
    let _ = child.wait();
    let (line, at) = found.expect("no early word about the database");
    assert!(at < Duration::from_secs(4) && line.contains(&format!("127.0.0.1:{closed}")), "{line} after {at:?}");

    let mut child = audit(dir.path())
        .args(["--database-url", "sqlite://api.db", "ingest", "--company-id", "c"])
        .args(["--base-url", &format!("http://127.0.0.1:{closed}")])
        .env("INFLOW_API_KEY", "k")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let found = first_line_with(&mut child, "could not connect", Duration::from_secs(5));
    let _ = child.kill();
    let _ = child.wait();
    let (line, at) = found.expect("no early word about the API");
    assert!(at < Duration::from_secs(4) && line.contains("retrying"), "{line} after {at:?}");
}

both_backends! {
/// Point 13: `-q` prints nothing on success; without it the summary is printed once (the
/// stream lines on stderr only with -v); and a failed first run leaves no database file.
async fn scheduled_runs_are_quiet_with_q_and_the_summary_comes_once(db: TestDb) {
    let sim = simulator(Scale::Small).await;
    let (code, stdout, stderr) = run_cli(&db, &sim, &["-q", "ingest"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!((stdout.as_str(), stderr.as_str()), ("", ""), "-q prints nothing on success");
    let (code, stdout, stderr) = run_cli(&db, &sim, &["ingest"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.matches("Run 2 succeeded").count(), 1, "{stdout}");
    assert!(!stderr.contains("sales-orders:"), "the streams are in the summary, not twice: {stderr}");
    assert!(!stderr.contains('\u{1b}') && !stdout.contains('\u{1b}'), "no colour codes when redirected");
    let (code, _, stderr) = run_cli(&db, &sim, &["-v", "ingest"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("sales-orders:") && !stderr.contains('\u{1b}'), "{stderr}");
    // A failure is still told with -q.
    let (code, _, stderr) = run_cli(&db, &sim, &["-q", "ingest"], &[("INFLOW_API_KEY", "wrong")]);
    assert_eq!(code, 2);
    assert!(stderr.starts_with("error: "), "{stderr}");
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_first_run_leaves_no_database_file() {
    let sim = simulator(Scale::Small).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let url = format!("sqlite://{}", path.display());
    for (key, company) in [("wrong".to_string(), sim.company_id()), (sim.api_key(), "no-such-company".to_string())] {
        let base = sim.base_url();
        let env =
            [("INFLOW_API_KEY", key.as_str()), ("INFLOW_COMPANY_ID", company.as_str()), ("INFLOW_BASE_URL", &base)];
        let (code, _, stderr) = tokio::task::block_in_place(|| run_audit(&url, &["ingest"], &env));
        assert_eq!(code, 2, "{stderr}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "{left:?} left behind: {stderr}");
    }
    // A dangling symbolic link is the user's: the file it names is created, and the link kept.
    #[cfg(unix)]
    {
        let target = dir.path().join("target.db");
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let env = [
            ("INFLOW_API_KEY", "wrong"),
            ("INFLOW_COMPANY_ID", &sim.company_id()),
            ("INFLOW_BASE_URL", &sim.base_url()),
        ];
        let link_url = format!("sqlite://{}", link.display());
        let (code, _, stderr) = tokio::task::block_in_place(|| run_audit(&link_url, &["ingest"], &env));
        assert_eq!(code, 2, "{stderr}");
        assert!(link.symlink_metadata().is_ok(), "the user's link was removed");
        std::fs::remove_file(&link).unwrap();
        let _ = std::fs::remove_file(&target);
    }
    // A database that existed is kept, failed run or not.
    let env = sim_env(&sim);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, _, stderr) = tokio::task::block_in_place(|| run_audit(&url, &["ingest"], &env));
    assert_eq!(code, 0, "{stderr}");
    let mut wrong = env.clone();
    wrong.push(("INFLOW_API_KEY", "wrong"));
    let (code, _, _) = tokio::task::block_in_place(|| run_audit(&url, &["ingest"], &wrong));
    assert_eq!(code, 2);
    assert!(path.exists());
}

/// Point 13: each run of `--every` carries its start time, and its summary comes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_of_a_schedule_is_stamped_once() {
    let sim = simulator(Scale::Small).await;
    let db = TestDb::sqlite().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_audit"))
        .args(["ingest", "--every", "1s", "--max-per-minute", "100000", "--max-per-hour", "1000000"])
        .env("AUDIT_DATABASE_URL", db.url_string())
        .envs(sim_env(&sim))
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let store = db.store().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&store, "SELECT count(*) FROM ingest_runs WHERE status = 'succeeded'").await < 3 {
        assert!(Instant::now() < deadline, "three runs did not happen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // SAFETY: signals a child this test started and has not reaped.
    #[allow(unsafe_code, reason = "libc::kill has no safe wrapper")]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM)
    };
    let out = tokio::task::block_in_place(|| {
        let _ = child.wait();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut text).unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        (text, err)
    });
    let (stdout, stderr) = out;
    for run in 1..=3 {
        let lines: Vec<&str> = stdout.lines().filter(|l| l.contains(&format!("] Run {run} "))).collect();
        assert_eq!(lines.len(), 1, "run {run}:\n{stdout}");
        let stamp = lines[0].strip_prefix('[').and_then(|l| l.split_once(" UTC]")).map(|(t, _)| t).unwrap();
        assert!(chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S").is_ok(), "{}", lines[0]);
    }
    assert!(stderr.contains("next run at "), "{stderr}");
    // Point 14: the signal's note says what happens now, not a delay.
    assert!(stderr.contains("interrupted: finishing the page in progress, then stopping"), "{stderr}");
}

/// Point 7: sqlx's slow-statement notes only with -v, and never colour codes in a redirected
/// stderr.
#[test]
fn slow_statements_are_logged_only_with_v_and_without_colour() {
    let dir = tempfile::tempdir().unwrap();
    let url = demo_db(dir.path());
    // A query of a few seconds (slow is over one).
    let slow =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 8000000) SELECT count(*) AS n FROM c";
    let (code, _, quiet) = output(audit(dir.path()).args(["--database-url", &url, "sql", slow, "--format", "csv"]));
    assert_eq!(code, 0, "{quiet}");
    assert_eq!(quiet, "", "nothing on stderr without -v");
    let (code, _, verbose) =
        output(audit(dir.path()).args(["-v", "--database-url", &url, "sql", slow, "--format", "csv"]));
    assert_eq!(code, 0, "{verbose}");
    assert!(verbose.contains("slow statement"), "{verbose}");
    assert!(!verbose.contains('\u{1b}'), "colour codes in a redirected stderr: {verbose:?}");
}

/// Point 14: help shows no empty environment value, the formats a command takes, the global
/// options under their own heading (and not for `simulate`), and the demo's own database.
#[test]
fn help_says_what_the_command_takes() {
    let dir = tempfile::tempdir().unwrap();
    let help = |args: &[&str]| {
        let (code, stdout, stderr) = output(audit(dir.path()).args(args).env("INFLOW_COMPANY_ID", ""));
        assert_eq!(code, 0, "{stderr}");
        stdout
    };
    let status = help(&["status", "--help"]);
    assert!(status.contains("[env: INFLOW_COMPANY_ID]") && !status.contains("INFLOW_COMPANY_ID="), "{status}");
    let formats = status.split("--format").nth(1).unwrap().split("-h, --help").next().unwrap();
    assert!(formats.contains("table") && formats.contains("json") && !formats.contains("csv"), "{formats}");
    let (global, own) = (status.find("Global options:").unwrap(), status.find("--format").unwrap());
    assert!(own < global && status[global..].contains("--database-url"), "{status}");
    let simulate = help(&["simulate", "--help"]);
    assert!(!simulate.contains("--database-url"), "{simulate}");
    let demo = help(&["demo", "--help"]);
    assert!(demo.contains("audit-demo.db"), "{demo}");
    let (code, _, stderr) = output(audit(dir.path()).args(["status", "--format", "csv"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("invalid value 'csv'"), "{stderr}");
}

/// The settings file: found in the working folder, the user's config folder or at --config;
/// a flag wins over the environment, which wins over the file, which wins over the default.
#[test]
fn settings_come_from_audit_toml_under_the_environment_and_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("no-config-home");
    // Which database a read command tried tells which setting won.
    let tried = |cmd: &mut Command| {
        let (code, _, stderr) = output(cmd);
        assert_eq!(code, 2, "{stderr}");
        let at = stderr.split("there is no audit database at ").nth(1).unwrap_or_else(|| panic!("{stderr}"));
        Path::new(at.split(':').next().unwrap()).file_name().unwrap().to_string_lossy().into_owned()
    };
    assert_eq!(tried(audit(dir.path()).arg("status")), "audit.db", "the default");
    std::fs::create_dir_all(home.join("audit")).unwrap();
    std::fs::write(home.join("audit/audit.toml"), "database_url = \"sqlite://from-home.db\"\n").unwrap();
    assert_eq!(tried(audit(dir.path()).arg("status")), "from-home.db", "the user's config folder");
    std::fs::write(dir.path().join("audit.toml"), "database_url = \"sqlite://from-here.db\"\n").unwrap();
    assert_eq!(tried(audit(dir.path()).arg("status")), "from-here.db", "the working folder first");
    assert_eq!(
        tried(audit(dir.path()).arg("status").env("AUDIT_DATABASE_URL", "sqlite://from-env.db")),
        "from-env.db",
        "the environment over the file"
    );
    assert_eq!(
        tried(
            audit(dir.path())
                .args(["--database-url", "sqlite://from-flag.db", "status"])
                .env("AUDIT_DATABASE_URL", "sqlite://from-env.db")
        ),
        "from-flag.db",
        "the flag over both"
    );
    let other = dir.path().join("other.toml");
    std::fs::write(&other, "database_url = \"sqlite://from-other.db\"\n").unwrap();
    assert_eq!(tried(audit(dir.path()).arg("--config").arg(&other).arg("status")), "from-other.db");

    let (code, stdout, stderr) = output(audit(dir.path()).arg("config"));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("audit.toml  (read)") && stdout.contains("database_url = sqlite://from-here.db"),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("{}  (not read", home.join("audit/audit.toml").display())), "{stdout}");
}

#[test]
fn a_settings_file_with_a_key_or_an_unknown_setting_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("audit.toml"), "company_id = \"c\"\napi_key = \"sk_live_secret\"\n").unwrap();
    let (code, stdout, stderr) = output(audit(dir.path()).arg("status"));
    assert_eq!(code, 2, "{stdout}");
    assert!(stderr.contains("`api_key`") && stderr.contains("INFLOW_API_KEY_FILE"), "{stderr}");
    assert!(!stderr.contains("sk_live_secret"), "the key is never shown: {stderr}");
    std::fs::write(dir.path().join("audit.toml"), "max_per_minut = 30\n").unwrap();
    let (code, _, stderr) = output(audit(dir.path()).arg("status"));
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown setting `max_per_minut`") && stderr.contains("max_per_minute"), "{stderr}");
    // Completions and the manual read no settings: a broken file does not stop them.
    std::fs::write(dir.path().join("audit.toml"), "broken = \n").unwrap();
    for args in [&["completions", "bash"][..], &["man"]] {
        let (code, stdout, stderr) = output(audit(dir.path()).args(args));
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert!(stdout.contains("audit"), "{args:?}");
    }
}

/// The settings file's company and limits reach a command that calls inFlow; the environment
/// still wins over the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_files_company_and_limits_reach_an_ingest() {
    let sim = simulator(Scale::Small).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("audit.toml"),
        format!(
            "database_url = \"sqlite://set.db\"\ncompany_id = \"{}\"\nmax_per_minute = 50000\nmax_per_hour = 900000\n\
             types = [\"stock-transfers\"]\n",
            sim.company_id()
        ),
    )
    .unwrap();
    let run = |extra: &[(&str, &str)]| {
        let mut cmd = audit(dir.path());
        cmd.arg("ingest").env("INFLOW_API_KEY", sim.api_key()).env("INFLOW_BASE_URL", sim.base_url());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        tokio::task::block_in_place(|| output(&mut cmd))
    };
    let (code, stdout, stderr) = run(&[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(dir.path().join("set.db").exists());
    assert!(stdout.contains("stock-transfers") && !stdout.contains("sales-orders"), "types from the file: {stdout}");
    let (code, _, stderr) = run(&[("INFLOW_COMPANY_ID", "not-this-one")]);
    assert_eq!(code, 2, "the environment's company wins: {stderr}");
}

both_backends! {
/// Point 14: `audit status` shows a suspended walk as the pages read, not the id it resumes
/// after.
async fn status_shows_a_suspended_walk_as_pages_read(db: TestDb) {
    let sim = simulator(Scale::Orders(450)).await;
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest", "--max-requests", "3"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let (code, table, stderr) = run_cli(&db, &sim, &["status", "--format", "table"], &[("COLUMNS", "200")]);
    assert_eq!(code, 0, "{stderr}");
    let row = table.lines().find(|l| l.trim_start().starts_with("sales-orders")).unwrap();
    assert!(row.contains("complete, 2 pages (200 documents) read"), "{table}");
    assert!(!table.contains("after:") && !table.contains("page after"), "{table}");
}
}

/// A reading command on `sqlite::memory:` migrated a fresh database, reopened it read-only (a new,
/// empty one) and migrated again, until the stack overflowed. It is an error that says why.
#[test]
fn an_in_memory_database_is_refused_by_reading_commands_not_recursed_into() {
    for args in [&["status"][..], &["sql", "SELECT 1"], &["timeline", "SN-1"]] {
        let (code, stdout, stderr) = run_audit("sqlite::memory:", args, &[]);
        assert_eq!(code, 2, "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains("in-memory SQLite database keeps nothing"), "{args:?}: {stderr}");
    }
}
