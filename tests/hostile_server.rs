//! Issue 19, points 3, 4, 6 and 8: the `audit` process against servers that misbehave, and
//! outputs that go away.

mod common;
mod hostile;

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
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

/// Waits for a child at most `limit`; kills it and fails the test if it is still running.
fn wait_at_most(child: &mut Child, limit: Duration, what: &str) -> (ExitStatus, Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, started.elapsed());
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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

/// `audit ... | head -1`: every command that prints ends quietly when its reader goes away.
async fn a_closed_stdout_ends_every_printing_command_quietly(db: TestDb) {
    let sim = simulator(audit::simulator::Scale::Orders(300)).await;
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
both_backends!(
    a_closed_stdout_ends_every_printing_command_quietly,
    crate::a_closed_stdout_ends_every_printing_command_quietly
);
