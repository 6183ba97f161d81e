//! Issue 19, point 5: a scheduled ingest (`--every`) survives a database outage, retrying with a
//! backoff and logging each failure; and point 8: a database that is down is reported within
//! about 10 s, with the reason.

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use inflow_simulator::Scale;

/// A TCP proxy to Postgres that the test can cut: while it is down, it closes the connections it
/// carries and every new one at once, as a server that goes away does.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    carried: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn to(target: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, carried) = (Arc::new(AtomicBool::new(true)), Arc::new(Mutex::new(Vec::new())));
        let (up2, carried2, target) = (up.clone(), carried.clone(), target.to_string());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                carried2.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy { port, up, carried }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for task in self.carried.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// Collects a child's stderr as it comes.
fn collect_stderr(child: &mut Child) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let (mut stderr, sink) = (child.stderr.take().unwrap(), text.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

async fn wait_for(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const RETRIED: &str = "trying again in";

both_backends! {
/// The database becomes unavailable under a running `audit ingest --every 1s`, for several of its
/// runs, then comes back: the loop logs each failure, tries again with a backoff, goes on once
/// it can, and has lost nothing.
///
/// Postgres: the connections go through a proxy the test cuts. SQLite: the process may not grow
/// files beyond 64 KB (`RLIMIT_FSIZE`, a full disk as far as SQLite can tell) until the test
/// lifts the limit.
async fn a_scheduled_loop_outlives_a_database_outage(db: TestDb) {
    let sim = simulator(Scale::Orders(300)).await;
    let (code, _, stderr) = run_cli(&db, &sim, &["ingest"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let store = db.store().await;
    let succeeded = "SELECT count(*) FROM ingest_runs WHERE status = 'succeeded'";

    let mut command = Command::new(env!("CARGO_BIN_EXE_audit"));
    command
        .args(["ingest", "--every", "1s"])
        .envs(sim_env(&sim))
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let proxy = match db.url.backend() {
        audit::store::Backend::Postgres => {
            let url = url::Url::parse(db.url.expose()).unwrap();
            let proxy = Proxy::to(&format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))).await;
            let mut through = url.clone();
            through.set_port(Some(proxy.port)).unwrap();
            command.env("AUDIT_DATABASE_URL", through.as_str());
            Some(proxy)
        }
        audit::store::Backend::Sqlite => {
            command.env("AUDIT_DATABASE_URL", db.url_string());
            use std::os::unix::process::CommandExt;
            // SAFETY: only async-signal-safe calls between fork and exec. SIGXFSZ ignored, so a
            // write past the limit fails with EFBIG instead of killing the process.
            #[allow(unsafe_code, reason = "pre_exec and setrlimit have no safe wrapper")]
            unsafe {
                command.pre_exec(|| {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    let limit = libc::rlimit { rlim_cur: 64 * 1024, rlim_max: libc::RLIM_INFINITY };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            None
        }
    };
    let mut child = command.spawn().unwrap();
    let stderr = collect_stderr(&mut child);
    let retried = || stderr.lock().unwrap().matches(RETRIED).count();

    if let Some(proxy) = &proxy {
        // A run through the proxy, then the outage.
        wait_for("a run through the proxy", Duration::from_secs(60), async || count(&store, succeeded).await >= 2)
            .await;
        proxy.down();
    }
    // Several runs fail, each logged, the loop still alive.
    wait_for("three failures logged", Duration::from_secs(60), async || retried() >= 3).await;
    assert!(child.try_wait().unwrap().is_none(), "the loop ended: {}", stderr.lock().unwrap());
    let before = count(&store, succeeded).await;
    // The database is back.
    match &proxy {
        Some(proxy) => proxy.restore(),
        None => {
            let unlimited = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
            // SAFETY: changes a resource limit of a child this test started and has not reaped.
            #[allow(unsafe_code, reason = "prlimit has no safe wrapper")]
            let done =
                unsafe { libc::prlimit(child.id() as i32, libc::RLIMIT_FSIZE, &unlimited, std::ptr::null_mut()) };
            assert_eq!(done, 0, "{}", std::io::Error::last_os_error());
        }
    }
    wait_for("a run after the outage", Duration::from_secs(60), async || count(&store, succeeded).await > before).await;
    // SAFETY: signals a child this test started and has not reaped.
    #[allow(unsafe_code, reason = "libc::kill has no safe wrapper")]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM)
    };
    let status = child.wait().unwrap();
    let log = stderr.lock().unwrap().clone();
    assert_eq!(status.code(), Some(0), "{log}");
    // Each failure said what failed, and when the next attempt comes (sooner than a whole interval).
    let failures: Vec<&str> = log.lines().filter(|l| l.contains(RETRIED)).collect();
    assert!(failures.len() >= 3, "{log}");
    assert!(failures.iter().all(|l| l.starts_with("error: ")), "{failures:#?}");
    let reason = match db.url.backend() {
        audit::store::Backend::Postgres => "database",
        audit::store::Backend::Sqlite => "disk I/O error",
    };
    assert!(failures.iter().any(|l| l.contains(reason)), "{failures:#?}");
    // Nothing lost or doubled, and no lock left behind.
    assert_exactly_once(&store, &sim).await;
    assert_eq!(count(&store, "SELECT count(*) FROM ingest_locks").await, 0);
}
}

/// Postgres that accepts connections and never answers (a server hung, a proxy whose backend is
/// gone), and a port where nothing listens: both reported within about 10 s, with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_is_down_is_reported_within_seconds() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = silent.accept().await {
            keep.lock().unwrap().push(socket);
        }
    });
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for (port, reason) in [(silent_port, "did not answer within 10 s"), (closed_port, "refused")] {
        let url = format!("postgres://audit@127.0.0.1:{port}/audit");
        let started = Instant::now();
        let (code, _, stderr) = tokio::task::block_in_place(|| run_audit(&url, &["status"], &[]));
        let took = started.elapsed();
        assert_eq!(code, 2, "{stderr}");
        assert!(took < Duration::from_secs(13), "{reason}: reported after {took:?}");
        assert!(stderr.contains(&format!("127.0.0.1:{port}")) || stderr.contains("127.0.0.1"), "{stderr}");
        assert!(stderr.to_lowercase().contains(reason), "{stderr}");
    }
}
