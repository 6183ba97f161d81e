//! Issue 19, points 3, 4, 6 and 8: the `audit` process against servers that misbehave, and
//! outputs that go away.

mod common;
mod hostile;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The binary, pointed at `db`, with the given environment; stdout and stderr piped.
fn spawn(db: &TestDb, args: &[&str], env: &[(&'static str, String)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_audit"))
        .args(args)
        .env("AUDIT_DATABASE_URL", db.url_string())
        .env_remove("RUST_LOG")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stderr_of(child: &mut Child) -> String {
    let mut text = String::new();
    child.stderr.take().unwrap().read_to_string(&mut text).unwrap();
    text
}

// ---- 3. SIGPIPE ---------------------------------------------------------------------------------

/// `https://` pointed at a plain-HTTP port (hyper answers the TLS handshake with a 400 and closes
/// the connection): rustls writes an alert to the closed socket. That must be an error like any
/// other, not a silent death by SIGPIPE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_against_a_plain_http_port_is_an_error_not_a_silent_death() {
    let db = TestDb::sqlite().await;
    // An existing database, where the failed run is recorded (a new file that a failed first run
    // created is removed again: tests/cli.rs).
    db.store().await.close().await;
    let server = hostile::serve(|_| hostile::json_text("[]")).await;
    let env = hostile::env_for(&format!("https://127.0.0.1:{}", server.port), "a-key-of-some-length");
    let (code, stdout, stderr) = hostile::run_with(&db.url_string(), &["ingest", "--time-scale", "0.001"], &env);
    assert_eq!(code, 2, "exit status (-1 is a death by signal): {stdout}{stderr}");
    assert!(stderr.contains("error: fetching the locations failed"), "{stderr}");
    // The run is recorded as failed and the lock is released.
    let store = db.store().await;
    assert_eq!(
        count(&store, "SELECT count(*) FROM ingest_runs WHERE status = 'failed' AND error IS NOT NULL").await,
        1
    );
    assert_eq!(count(&store, "SELECT count(*) FROM ingest_locks").await, 0);
}

/// Reads one line of the child's stdout, then closes it, as `| head -1` does.
fn close_stdout_after_a_line(child: &mut Child) {
    let mut out = child.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {}
    drop(out);
}

both_backends! {
/// `audit ... | head -1`: every command that prints ends quietly when its reader goes away.
async fn a_closed_stdout_ends_every_printing_command_quietly(db: TestDb) {
    let sim = simulator(inflow_simulator::Scale::Orders(300)).await;
    let env = sim_env(&sim);
    // The ingest's summary is printed after its run is recorded.
    let mut child = spawn(&db, &["ingest"], &env);
    drop(child.stdout.take());
    let (status, _) = tokio::task::block_in_place(|| wait_at_most(&mut child, Duration::from_secs(60), "ingest"));
    let stderr = stderr_of(&mut child);
    assert_eq!(status.code(), Some(0), "{stderr}");
    let store = db.store().await;
    assert_eq!(count(&store, "SELECT count(*) FROM ingest_runs WHERE status = 'succeeded'").await, 1);
    assert_eq!(count(&store, "SELECT count(*) FROM ingest_locks").await, 0);

    let serial = strings(&store, "SELECT serial FROM serial_events WHERE $1 = $1 ORDER BY serial LIMIT 1", "").await;
    // More than a pipe holds (64 KB), in any format.
    let many_rows = "SELECT a.serial, b.event_type FROM serial_events a \
                     CROSS JOIN (SELECT event_type FROM serial_events LIMIT 20) b";
    for args in [
        vec!["sql", many_rows, "--format", "csv"],
        vec!["sql", many_rows, "--format", "json"],
        vec!["sql", many_rows, "--format", "table"],
        vec!["timeline", serial[0].as_str(), "--format", "table"],
        vec!["status", "--format", "table"],
    ] {
        let mut child = spawn(&db, &args, &[]);
        close_stdout_after_a_line(&mut child);
        let (status, _) = tokio::task::block_in_place(|| wait_at_most(&mut child, Duration::from_secs(60), args[0]));
        let stderr = stderr_of(&mut child);
        assert_eq!(status.code(), Some(0), "{args:?} (None is a death by signal): {stderr}");
        assert!(stderr.is_empty(), "{args:?} ends quietly: {stderr}");
    }
}
}

// ---- 4. Hangs -----------------------------------------------------------------------------------

/// A server that drips its first answer a byte at a time for ever, then answers normally.
async fn dripping_first() -> hostile::Hostile {
    let first = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    hostile::serve(move |_| {
        if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
            hostile::drip(Duration::from_millis(100))
        } else {
            hostile::json_text("[]")
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dripping_answer_is_given_up_at_the_request_deadline() {
    let db = TestDb::sqlite().await;
    let server = dripping_first().await;
    let env = hostile::env_for(&server.base_url, "a-key-of-some-length");
    let mut child = spawn(&db, &["ingest", "--request-timeout", "1s", "--time-scale", "0.001"], &env);
    let (status, took) = tokio::task::block_in_place(|| wait_at_most(&mut child, Duration::from_secs(30), "ingest"));
    let stderr = stderr_of(&mut child);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(stderr.contains("timed out"), "{stderr}");
    let store = db.store().await;
    assert_eq!(count(&store, "SELECT count(*) FROM ingest_runs WHERE status = 'succeeded' AND retries = 1").await, 1);
}

/// Starts an ingest, signals it after `after`, and checks that it ends within a few seconds,
/// cleanly, with its run recorded as stopped and its lock released.
async fn signalled_while_waiting(
    what: &str,
    db: &TestDb,
    args: &[&str],
    env: &[(&'static str, String)],
    after: Duration,
) {
    let mut child = spawn(db, args, env);
    tokio::time::sleep(after).await;
    assert!(child.try_wait().unwrap().is_none(), "{what}: ended before the signal; the test proves nothing");
    send_signal(&child, libc::SIGTERM);
    let (status, took) = tokio::task::block_in_place(|| wait_at_most(&mut child, Duration::from_secs(30), what));
    let stderr = stderr_of(&mut child);
    assert_eq!(status.code(), Some(0), "{what}: {stderr}");
    assert!(took < Duration::from_secs(3), "{what}: the signal took {took:?} to act");
    let store = db.store().await;
    assert_eq!(count(&store, "SELECT count(*) FROM ingest_locks").await, 0, "{what}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_cuts_every_wait_short() {
    let db = TestDb::sqlite().await;
    let key = "a-key-of-some-length";

    // A rate-limit slot: one request a minute, so the second waits for about 60 s.
    let sim = simulator(inflow_simulator::Scale::Orders(300)).await;
    let env = sim_env(&sim);
    signalled_while_waiting("a slot", &db, &["ingest", "--max-per-minute", "1"], &env, Duration::from_millis(1500))
        .await;
    let store = db.store().await;
    assert_eq!(count(&store, "SELECT count(*) FROM ingest_runs WHERE status = 'stopped'").await, 1);

    // A Retry-After of an hour.
    let server = hostile::serve(|_| {
        axum::response::IntoResponse::into_response((
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "3600")],
            "slow down",
        ))
    })
    .await;
    let env = hostile::env_for(&server.base_url, key);
    signalled_while_waiting("a Retry-After", &db, &["ingest"], &env, Duration::from_secs(1)).await;

    // Backoff pauses after server errors (0.5 s, 1 s, 2 s, 4 s, ...).
    let server = hostile::serve(|_| hostile::status(503, "down for maintenance")).await;
    let env = hostile::env_for(&server.base_url, key);
    signalled_while_waiting("a backoff", &db, &["ingest"], &env, Duration::from_millis(2500)).await;

    // A request in flight that a server drips for ever (well within the request deadline).
    let server = dripping_first().await;
    let env = hostile::env_for(&server.base_url, key);
    signalled_while_waiting("a dripping request", &db, &["ingest"], &env, Duration::from_secs(1)).await;

    // The lock, held by a live process (this one) on this host.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    let pid = std::process::id().to_string();
    exec_with(
        &store,
        "INSERT INTO ingest_locks (company_id, holder, pid, host, token, acquired_at, heartbeat_at) \
         VALUES ('c1', 'the test', CAST($1 AS INTEGER), $2, 'held-by-the-test', '2099-01-01T00:00:00Z', '2099-01-01T00:00:00Z')",
        &[&pid, &host],
    )
    .await;
    let server = hostile::serve(|_| hostile::json_text("[]")).await;
    let env = hostile::env_for(&server.base_url, key);
    let mut child = spawn(&db, &["ingest", "--wait"], &env);
    tokio::time::sleep(Duration::from_secs(1)).await;
    send_signal(&child, libc::SIGTERM);
    let (status, took) = tokio::task::block_in_place(|| wait_at_most(&mut child, Duration::from_secs(30), "lock"));
    assert_eq!(status.code(), Some(0), "{}", stderr_of(&mut child));
    assert!(took < Duration::from_secs(3), "the lock wait took {took:?} to end");
    assert_eq!(server.total(), 0, "no request while waiting for the lock");
}

both_backends! {
/// A second signal while the run waits for the database (a page write blocked by a lock this
/// test holds): the run is recorded as interrupted, its lock released, and the process ends
/// with status 130 within seconds.
async fn a_second_signal_records_the_run_as_interrupted(db: TestDb) {
    use inflow_simulator::{Fault, FaultRule, Faults, Trigger};
    let sim = simulator(inflow_simulator::Scale::Orders(450)).await;
    sim.set_faults(Faults::none().rule(FaultRule::new(Fault::Delay { millis: 100 }, Trigger::Rate(1.0))));
    let store = db.store().await;
    let mut child = spawn(&db, &["ingest"], &sim_env(&sim));
    let started = Instant::now();
    while count(&store, "SELECT count(*) FROM ingest_runs WHERE pages >= 1").await == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "no page written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Block the next page's write.
    let blocker = audit::store::Store::connect(&db.url).await.unwrap();
    let holding = match db.url.backend() {
        audit::store::Backend::Sqlite => {
            let mut conn = blocker.sqlite_pool().unwrap().acquire().await.unwrap().detach();
            sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.unwrap();
            Holding::Sqlite(conn)
        }
        audit::store::Backend::Postgres => {
            let mut tx = blocker.postgres_pool().unwrap().begin().await.unwrap();
            sqlx::query("LOCK TABLE serial_events IN EXCLUSIVE MODE").execute(&mut *tx).await.unwrap();
            // Until the ingest is seen waiting for it.
            let waiting =
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'";
            while count(&store, waiting).await == 0 {
                assert!(started.elapsed() < Duration::from_secs(60), "the ingest never waited for the lock");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Holding::Postgres(tx)
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_signal(&child, libc::SIGTERM);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(child.try_wait().unwrap().is_none(), "the first signal waits for the page being written");
    send_signal(&child, libc::SIGTERM);
    let signalled = Instant::now();
    // SQLite's whole file is locked, so the record waits for the lock too: it goes after a second.
    let holding = match holding {
        Holding::Sqlite(mut conn) => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
            None
        }
        Holding::Postgres(tx) => Some(tx),
    };
    let (status, _) = tokio::task::block_in_place(|| wait_at_most(&mut child, Duration::from_secs(20), "ingest"));
    let took = signalled.elapsed();
    let stderr = stderr_of(&mut child);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(took < Duration::from_secs(6), "{took:?}: {stderr}");
    assert!(stderr.contains("recorded as interrupted"), "{stderr}");
    assert_eq!(
        count(&store, "SELECT count(*) FROM ingest_runs WHERE status = 'interrupted' AND finished_at IS NOT NULL")
            .await,
        1
    );
    assert_eq!(count(&store, "SELECT count(*) FROM ingest_locks").await, 0);
    drop(holding);
    blocker.close().await;
    // Nothing was lost: the next run completes the same events.
    sim.set_faults(Faults::none());
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_exactly_once(&store, &sim).await;
}
}

enum Holding {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

// ---- 6. The key ---------------------------------------------------------------------------------

const KEY: &str = "sk_echoed_0123456789abcdef";

/// Each way a server can send the key back (in the body of a 400, of a 500, of a 200 that is not
/// JSON, inside a document): never shown, never stored, hidden as `***`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_server_echoes_is_never_shown_or_stored() {
    for case in ["400", "500", "200 not JSON", "in a document"] {
        let db = TestDb::sqlite().await;
        let server = hostile::serve(move |asked| {
            let echo = format!("Authorization: Bearer {}", asked.key.unwrap_or_default());
            match (case, asked.endpoint.as_str()) {
                ("400", _) => hostile::status(400, format!("bad request ({echo})")),
                ("500", _) => hostile::status(500, format!("internal error ({echo})")),
                ("200 not JSON", _) => {
                    axum::response::IntoResponse::into_response(format!("<html><body>{echo}</body></html>"))
                }
                // One page: the page after it is empty, as a server that honours `after` says.
                (_, "sales-orders") if asked.query.iter().any(|(k, _)| k == "after") => hostile::json_text("[]"),
                (_, "sales-orders") => hostile::json_text(format!(
                    r#"[{{"salesOrderId":"so-1","orderNumber":"SO-1","remarks":"{echo}"}}]"#
                )),
                _ => hostile::json_text("[]"),
            }
        })
        .await;
        // An existing database, so that the failed runs are stored and can be searched for the key.
        db.store().await.close().await;
        let env = hostile::env_for(&server.base_url, KEY);
        let args = ["-vv", "ingest", "--types", "sales-orders", "--time-scale", "0.001"];
        let (code, stdout, stderr) = hostile::run_with(&db.url_string(), &args, &env);
        assert!(!stdout.contains(KEY) && !stderr.contains(KEY), "{case}: {stdout}{stderr}");
        let store = db.store().await;
        let stored = strings(
            &store,
            "SELECT COALESCE(error, '') FROM ingest_runs WHERE $1 = $1 \
             UNION ALL SELECT detail FROM run_warnings \
             UNION ALL SELECT reason || raw FROM quarantined_documents \
             UNION ALL SELECT CAST(raw AS TEXT) || COALESCE(raw_text, '') FROM documents",
            "",
        )
        .await
        .concat();
        assert!(!stored.contains(KEY), "{case}: {stored}");
        match case {
            "in a document" => {
                assert_eq!(code, 0, "{stderr}");
                assert!(stored.contains("Bearer ***"), "{case}: the stored document shows where it was: {stored}");
            }
            "500" => {
                assert_eq!(code, 2);
                // Six retries logged, and the final error.
                assert!(stderr.matches("Bearer ***").count() >= 7, "{stderr}");
                assert!(stored.contains("Bearer ***"), "{stored}");
            }
            _ => {
                assert_eq!(code, 2, "{case}: {stderr}");
                assert!(stderr.contains("Bearer ***") && stored.contains("Bearer ***"), "{case}: {stderr} {stored}");
            }
        }
        if let Some(path) = db.url.sqlite_file() {
            store.close().await;
            for file in [path.clone(), path.with_extension("db-wal")] {
                if let Ok(bytes) = std::fs::read(&file) {
                    assert!(
                        !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
                        "{case}: {} holds the key",
                        file.display()
                    );
                }
            }
        }
    }
}

/// A base URL with `user:password@` would be logged, stored with the run's arguments and sent
/// in place of the key: it is refused before anything is sent or stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_base_url_are_refused() {
    let db = TestDb::sqlite().await;
    let server = hostile::serve(|_| hostile::json_text("[]")).await;
    let url = server.base_url.replace("http://", "http://someone:hunter2secret@");
    let env = hostile::env_for(&url, KEY);
    let (code, stdout, stderr) = hostile::run_with(&db.url_string(), &["-vv", "ingest"], &env);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("holds credentials") && stderr.contains("INFLOW_API_KEY"), "{stderr}");
    assert!(!stderr.contains("hunter2secret"), "{stderr}");
    assert_eq!(server.total(), 0, "nothing was sent");
    let (code, _, stderr) = hostile::run_with(
        &db.url_string(),
        &["ingest", "--api-version", "2025-06-24\nX: y"],
        &hostile::env_for(&server.base_url, KEY),
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot be sent in a header"), "{stderr}");
    assert_eq!(server.total(), 0);
}

// ---- 8. A request that can never succeed is not repeated -----------------------------------------

/// A bad `--api-version` answered with 400 (or a 406, or any 4xx but 408, 425 and 429) is not
/// asked again: repeating it only spends the company's quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_can_never_succeed_is_not_repeated() {
    for status in [400, 406, 422] {
        let db = TestDb::sqlite().await;
        let server = hostile::serve(move |_| hostile::status(status, "unsupported API version")).await;
        let env = hostile::env_for(&server.base_url, KEY);
        let (code, _, stderr) = hostile::run_with(&db.url_string(), &["ingest", "--api-version", "1999-01-01"], &env);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(&format!("HTTP {status}")), "{stderr}");
        // A 400 on a keyset page may be tried once more without the keyset (skip paging).
        assert!(server.total() <= 2, "HTTP {status}: {} requests", server.total());
    }
    // 408 and 425 are asked again.
    for status in [408, 425] {
        let db = TestDb::sqlite().await;
        let first = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let server = hostile::serve(move |_| {
            if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                hostile::status(status, "try again")
            } else {
                hostile::json_text("[]")
            }
        })
        .await;
        let env = hostile::env_for(&server.base_url, KEY);
        let (code, _, stderr) = hostile::run_with(&db.url_string(), &["ingest", "--time-scale", "0.001"], &env);
        assert_eq!(code, 0, "HTTP {status}: {stderr}");
    }
}
