//! Every command-line definition of `audit`, in one place.
//!
//! Each subcommand's arguments are a struct here; its behaviour lives in `commands::<name>`.
//! The `///` comments are the help text users read, so they are written for them.

use clap::{Args, Parser, Subcommand};

/// Turn an inFlow Inventory company's transactions into a serial-number audit trail in SQL.
///
/// inFlow's API cannot search by serial number and keeps no serial history: serials appear only
/// inside document lines. `audit ingest` walks sales orders, purchase orders, stock adjustments
/// and stock transfers and records every serial occurrence as a row of `serial_events`, in SQLite
/// (the default) or Postgres. `audit timeline SERIAL` then tells one serial's story, and any SQL
/// client can query the same tables.
#[derive(Debug, Parser)]
#[command(
    name = "audit",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Where the audit trail lives: `sqlite://PATH` (created if missing) or
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE`.
    #[arg(
        long,
        global = true,
        env = "AUDIT_DATABASE_URL",
        default_value = "sqlite://audit.db",
        hide_env_values = true
    )]
    pub database_url: String,

    /// Log more on stderr: -v for progress details, -vv for each request, -vvv for everything.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Print only errors on stderr (results still go to stdout).
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the database schema and print its version.
    ///
    /// Every command that needs the schema migrates first, so running this by hand is only
    /// needed to prepare a database ahead of time. A database whose schema is newer than this
    /// binary is refused rather than touched.
    Migrate,

    /// Serve a simulated inFlow Cloud API with a generated company, for trying `audit` without
    /// an API key and for tests.
    Simulate(SimulateArgs),
}

#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,

    /// Seed of the generated company: the same seed and scale give the same data.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,

    /// Size of the company: small, medium, large (over a million serial occurrences), or a
    /// number of sales orders.
    #[arg(long, default_value = "small")]
    pub scale: String,

    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,

    /// Generate clean data: no serial sold twice, adjusted out then sold, or shipped without
    /// being received.
    #[arg(long)]
    pub no_data_faults: bool,

    /// API key clients must send as `Authorization: Bearer KEY` (default: derived from the seed).
    #[arg(long)]
    pub api_key: Option<String>,

    /// Requests allowed per minute.
    #[arg(long, default_value_t = 60)]
    pub per_minute: u32,

    /// Requests allowed per hour.
    #[arg(long, default_value_t = 1000)]
    pub per_hour: u32,

    /// Do not rate-limit (and send no rate-limit headers).
    #[arg(long)]
    pub no_rate_limit: bool,

    /// Multiply the rate-limit windows, e.g. 0.01 makes a minute 0.6 s.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,

    /// Answer 400 to `after`/`before`/`start`, like an older server that only pages by `skip`.
    #[arg(long)]
    pub reject_keyset: bool,
}
