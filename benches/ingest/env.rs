//! What every figure needs: the audit binary, a work directory, Postgres databases of our own,
//! and commands for `audit`, `sqlite3` and `psql`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use inflow_simulator::Simulator;
use sqlx::{Connection, Executor, PgConnection};

/// Settings from the command line (`cargo bench --bench ingest -- ARGS`).
#[derive(Debug, Clone)]
pub struct Options {
    /// Figure groups to run: requests, quota, speed, sql, memory, timeline, anomalies, serve.
    pub only: Vec<String>,
    /// Simulator scale of the large ingest (figures 2, 3, 4b).
    pub large_scale: String,
    /// Sales orders of the 250k-occurrence company (figure 4a).
    pub small_orders: usize,
    /// Simulator scale of figure 1.
    pub requests_scale: String,
    /// Events in the timeline databases (figure 5).
    pub timeline_events: u64,
    /// Serials timed in figure 5.
    pub timeline_samples: usize,
    /// Timed runs of each command in figure 7.
    pub anomaly_runs: usize,
    /// Timed runs of each `sql/` query on each side of the `ANALYZE` (figure 6).
    pub sql_runs: usize,
    /// Timed serial pages of figure 8.
    pub serve_requests: usize,
    /// Requests of the quota run (figure 2); more than the hourly limit.
    pub quota_requests: u64,
    /// Seconds after which an ingest is stopped (SIGINT) so that the run stays bounded.
    pub ingest_deadline_secs: u64,
    pub postgres_url: String,
    /// Keep the work directory (databases, CSV files, logs) for inspection.
    pub keep: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            only: Vec::new(),
            large_scale: "large".into(),
            small_orders: 24_000,
            requests_scale: "medium".into(),
            timeline_events: 10_000_000,
            timeline_samples: 25,
            anomaly_runs: 3,
            sql_runs: 11,
            serve_requests: 200,
            quota_requests: 1_300,
            ingest_deadline_secs: 300,
            postgres_url: std::env::var("AUDIT_BENCH_POSTGRES_URL")
                .or_else(|_| std::env::var("AUDIT_TEST_POSTGRES_URL"))
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
            keep: false,
        }
    }
}

pub const USAGE: &str = "\
usage: cargo bench --bench ingest [-- OPTIONS]

  --only LIST            figure groups to run, comma-separated: requests, quota, speed, sql,
                         memory, timeline, anomalies, serve (default: all)
  --large-scale SCALE    simulator scale of the large ingest (default: large, ~1.2M occurrences)
  --small-orders N       sales orders of the ~250k-occurrence company (default: 24000)
  --requests-scale S     simulator scale of the request figures (default: medium)
  --timeline-events N    events in the timeline databases (default: 10000000)
  --timeline-samples N   serials timed for the latency figures (default: 25)
  --anomaly-runs N       timed runs of audit anomalies and of the full scan (default: 3)
  --sql-runs N           timed runs of each sql/ query before and after ANALYZE, figure 6
                         (default: 11; fewer for a slow query, about 10 s a side at most)
  --serve-requests N     serial pages timed over HTTP for figure 8 (default: 200)
  --quota-requests N     requests of the quota run, more than 1000 (default: 1300)
  --ingest-deadline S    stop an ingest still running after S seconds (default: 300)
  --postgres-url URL     admin connection (default: $AUDIT_BENCH_POSTGRES_URL,
                         $AUDIT_TEST_POSTGRES_URL or postgres://postgres@127.0.0.1:5432/postgres)
  --keep                 keep the work directory (databases, CSV files, logs)
";

impl Options {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let mut o = Options::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let mut value = |name: &str| inline.clone().or_else(|| args.next()).ok_or(format!("{name} needs a value"));
            let number = |name: &str, v: String| v.parse::<u64>().map_err(|_| format!("{name}: `{v}` is not a number"));
            match flag.as_str() {
                // cargo bench passes --bench to every harness-less bench.
                "--bench" => {}
                "--only" => o.only = value("--only")?.split(',').map(|s| s.trim().to_string()).collect(),
                "--large-scale" => o.large_scale = value("--large-scale")?,
                "--small-orders" => o.small_orders = number("--small-orders", value("--small-orders")?)? as usize,
                "--requests-scale" => o.requests_scale = value("--requests-scale")?,
                "--timeline-events" => o.timeline_events = number("--timeline-events", value("--timeline-events")?)?,
                "--timeline-samples" => {
                    o.timeline_samples = number("--timeline-samples", value("--timeline-samples")?)?.max(1) as usize
                }
                "--anomaly-runs" => {
                    o.anomaly_runs = number("--anomaly-runs", value("--anomaly-runs")?)?.max(1) as usize
                }
                "--sql-runs" => o.sql_runs = number("--sql-runs", value("--sql-runs")?)?.max(1) as usize,
                "--serve-requests" => {
                    o.serve_requests = number("--serve-requests", value("--serve-requests")?)?.max(1) as usize
                }
                "--quota-requests" => o.quota_requests = number("--quota-requests", value("--quota-requests")?)?,
                "--ingest-deadline" => {
                    o.ingest_deadline_secs = number("--ingest-deadline", value("--ingest-deadline")?)?
                }
                "--postgres-url" => o.postgres_url = value("--postgres-url")?,
                "--keep" => o.keep = true,
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        const GROUPS: [&str; 8] = ["requests", "quota", "speed", "sql", "memory", "timeline", "anomalies", "serve"];
        if let Some(bad) = o.only.iter().find(|g| !GROUPS.contains(&g.as_str())) {
            return Err(format!("--only: unknown group `{bad}`; use {}", GROUPS.join(", ")));
        }
        Ok(o)
    }

    pub fn wants(&self, group: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|g| g == group)
    }
}

/// The release `audit` binary. Cargo builds it for benchmarks and names it at compile time.
pub fn audit_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_audit"))
}

/// `target/`, found from the binary's place (`target/release/audit`).
pub fn target_dir() -> PathBuf {
    let bin = audit_binary();
    bin.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("target"))
}

/// `audit` with a database and no stray environment.
pub fn audit(database_url: &str) -> Command {
    let mut cmd = Command::new(audit_binary());
    cmd.arg("--database-url").arg(database_url);
    for var in ["RUST_LOG", "AUDIT_DATABASE_URL", "INFLOW_BASE_URL", "INFLOW_COMPANY_ID", "INFLOW_API_KEY"] {
        cmd.env_remove(var);
    }
    cmd.env_remove("AUDIT_CRASH_AT");
    cmd
}

/// `audit ingest` against a simulator, with the client's pacing lifted (the simulator does not
/// limit; figure 2 sets its own limits).
pub fn audit_ingest(database_url: &str, sim: &Simulator) -> Command {
    let mut cmd = audit(database_url);
    cmd.arg("ingest")
        .env("INFLOW_BASE_URL", sim.base_url())
        .env("INFLOW_COMPANY_ID", sim.company_id())
        .env("INFLOW_API_KEY", sim.api_key());
    cmd
}

/// Arguments that lift the client's own pacing.
pub const UNPACED: [&str; 4] = ["--max-per-minute", "4000000000", "--max-per-hour", "4000000000"];

pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// `sqlite3` in batch mode on a file.
pub fn sqlite3(path: &Path) -> Command {
    let mut cmd = Command::new("sqlite3");
    cmd.arg("-batch").arg("-bail").arg(path);
    cmd
}

/// `psql` without ~/.psqlrc, stopping at the first error.
pub fn psql(url: &str) -> Command {
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url]);
    cmd
}

/// Whether a command-line tool is installed (`sqlite3 -version`, `psql --version`).
pub fn tool_available(tool: &str, arg: &str) -> bool {
    Command::new(tool).arg(arg).output().is_ok_and(|o| o.status.success())
}

/// Databases created by this run on the Postgres server, dropped at the end.
pub struct Postgres {
    admin_url: String,
    created: Mutex<Vec<String>>,
}

impl Postgres {
    /// `Err` with the reason when the server does not answer.
    pub async fn connect(admin_url: &str) -> Result<Postgres, String> {
        let conn = PgConnection::connect(admin_url)
            .await
            .map_err(|e| format!("Postgres at {} does not answer: {e}", audit::store::url::redact(admin_url)))?;
        conn.close().await.ok();
        Ok(Postgres { admin_url: admin_url.to_string(), created: Mutex::new(Vec::new()) })
    }

    /// Creates an empty database named after this process and `label`; returns its URL.
    pub async fn create(&self, label: &str) -> Result<String, String> {
        let name = format!("audit_bench_{}_{label}", std::process::id());
        let mut admin = PgConnection::connect(&self.admin_url).await.map_err(|e| e.to_string())?;
        admin
            .execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
            .await
            .map_err(|e| e.to_string())?;
        admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.map_err(|e| e.to_string())?;
        admin.close().await.ok();
        self.created.lock().unwrap().push(name.clone());
        let mut url = url::Url::parse(&self.admin_url).map_err(|e| e.to_string())?;
        url.set_path(&name);
        Ok(url.to_string())
    }

    /// Drops one database made by [`Postgres::create`] (by its URL).
    pub async fn drop_db(&self, url: &str) {
        let Some(name) = url::Url::parse(url).ok().map(|u| u.path().trim_start_matches('/').to_string()) else {
            return;
        };
        if let Ok(mut admin) = PgConnection::connect(&self.admin_url).await {
            let _ = admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).await;
            // The database's `audit sql` role (roles belong to the whole server).
            let _ = admin.execute(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS audit_sql_{name}"))).await;
            admin.close().await.ok();
        }
        self.created.lock().unwrap().retain(|n| *n != name);
    }

    pub async fn drop_all(&self) {
        let names: Vec<String> = self.created.lock().unwrap().drain(..).collect();
        if let Ok(mut admin) = PgConnection::connect(&self.admin_url).await {
            for name in names {
                let _ =
                    admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).await;
                let _ = admin.execute(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS audit_sql_{name}"))).await;
            }
            admin.close().await.ok();
        }
    }

    /// A server setting (`SHOW name`), for the record.
    pub async fn setting(&self, name: &str) -> Option<String> {
        let mut admin = PgConnection::connect(&self.admin_url).await.ok()?;
        let v: Option<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {name}"))).fetch_one(&mut admin).await.ok();
        admin.close().await.ok();
        v
    }
}

/// The machine's load average (1, 5, 15 minutes), to show how busy it was.
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut parts = text.split_whitespace().map(|p| p.parse::<f64>().ok());
    Some([parts.next()??, parts.next()??, parts.next()??])
}

/// Cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Bytes to MB (10^6), as the memory goal is stated.
pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}
