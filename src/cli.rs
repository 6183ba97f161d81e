//! Every command-line definition of `audit`, in one place.
//!
//! Each subcommand's arguments are a struct here; its behaviour lives in `commands::<name>`.
//! The `///` comments are the help text users read, so they are written for them. The
//! exceptions are the comments of the argument structs and of `flatten` and `subcommand`
//! fields: clap ignores those, or lets the command's own comment replace them, so they are
//! written for the code's reader.

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};

use crate::inflow::{DEFAULT_API_VERSION, DEFAULT_BASE_URL};
use crate::mapping::DocType;
use crate::output::Format;
use inflow_simulator::{GuidOrder, ListCount, RateHeaders, UnknownCursor};

/// Turn an inFlow Inventory company's transactions into a serial-number audit trail in SQL.
///
/// inFlow's API cannot search by serial number and keeps no serial history: serials appear only
/// inside document lines. `audit ingest` walks sales, purchase and manufacturing orders, stock
/// counts, adjustments and transfers and records every serial occurrence as a row of
/// `serial_events`, in SQLite (the default) or Postgres. `audit timeline SERIAL` then tells one serial's story, and any SQL
/// client can query the same tables.
#[derive(Debug, Parser)]
#[command(
    name = "audit",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = "Exit status: 0 success; 1 a negative answer (unknown serial, disagreements or anomalies found); \
                  2 an error; 75 another ingest of the company holds the lock."
)]
pub struct Cli {
    /// The options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The command line's definition, with the global options the commands that use no database
/// leave out of their help (clap propagates globals to every subcommand).
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    cmd.build();
    for name in ["simulate", "completions", "man"] {
        cmd = cmd.mut_subcommand(name, |sub| sub.mut_arg("database_url", |a| a.hide(true)));
    }
    cmd
}

/// The options of every command (`global`): the database, the settings file, logging and times.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Where the audit trail lives: `sqlite://PATH` (created by the commands that write) or
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE`.
    #[arg(
        long,
        global = true,
        env = "AUDIT_DATABASE_URL",
        default_value = "sqlite://audit.db",
        hide_env_values = true
    )]
    pub database_url: String,

    /// Whether --database-url was given on the command line rather than by default or the
    /// environment (`audit demo` only writes to a database named explicitly).
    #[arg(skip)]
    pub database_url_explicit: bool,

    /// Log more on stderr: -v for progress details, -vv for each request, -vvv for everything.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Print only errors: no progress and no run summary (results of the read commands still go
    /// to stdout), so that a scheduled job mails only on failure.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Read settings from this file instead of `./audit.toml` or `~/.config/audit/audit.toml`
    /// (see `audit config`).
    #[arg(long, global = true, env = "AUDIT_CONFIG", value_name = "PATH", hide_env_values = true)]
    pub config: Option<std::path::PathBuf>,

    /// Show times in UTC instead of the local time zone (`TZ`, or the system's). JSON and CSV
    /// always give RFC 3339 times in UTC.
    #[arg(long, global = true)]
    pub utc: bool,
}

/// The subcommands; each runs `commands::<name>::run`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the database schema and print its version.
    ///
    /// Every command that needs the schema migrates first, so running this by hand is only
    /// needed to prepare a database ahead of time. A database whose schema is newer than this
    /// binary is refused rather than touched.
    Migrate,

    /// Walk inFlow's documents and record every serial occurrence in `serial_events`.
    ///
    /// Sales orders, purchase orders, manufacturing orders, stock counts, stock adjustments and
    /// stock transfers are walked with their line collections, 100 per request, in a keyset on
    /// their ids. Runs are incremental
    /// (an unchanged document costs no writes), resumable (each page is saved with the walk's
    /// position, so a run stopped or killed continues where it was), and polite: requests are
    /// paced under inFlow's per-minute and per-hour limits, which the company's other
    /// integrations share.
    ///
    /// Exit status: 0 when the run finished or stopped cleanly (--max-requests, Ctrl-C), 2 when
    /// it failed (the position is saved either way), 75 when another ingest of the company is
    /// running in the same database.
    #[command(after_help = "Examples:\n  \
        audit ingest --since 2025-01-01\n  \
        audit ingest --types sales-orders,stock-transfers --max-requests 200\n  \
        audit --database-url postgres://audit@db/audit ingest")]
    Ingest(IngestArgs),

    /// Check what inFlow's API does for your account, before a first ingest or for a bug report.
    ///
    /// At most 25 requests, paced under the limits: credentials and company, the API version,
    /// each stream's list with the includes the ingest uses, whether `count=100` is honoured,
    /// whether `X-listCount` comes back and what it counts, keyset paging on each stream, a
    /// descending date sort, `filter[orderDate]`, `filter[lastModifiedDateTime]`, the rate
    /// headers, the manufacturing-order and stock-count endpoints, and the serialized products.
    /// Prints what each answer means for the ingest, and stores the answers in
    /// `api_capabilities`, where the ingest reads how to walk each stream. Never prints the key.
    ///
    /// Exit status: 0 when everything the ingest relies on works, 1 when something it relies on
    /// is missing, 2 when the checks could not be made (inFlow unreachable, database error).
    #[command(after_help = "Examples:\n  \
        audit doctor\n  \
        audit doctor --format json > doctor.json   # to attach to a bug report")]
    Doctor(DoctorArgs),

    /// Record inFlow's current serial stock: every serialized product's inventory lines.
    ///
    /// Walks the products that track serials, 100 per request, with the same pacing and budget
    /// as `audit ingest`, and keeps the result as a new dated snapshot (earlier ones stay, so
    /// stock on a past date remains queryable in `serial_stock`). A snapshot stopped part-way
    /// resumes next time. `audit lookup` and `audit reconcile` read the latest complete one.
    Snapshot(SnapshotArgs),

    /// Look serials up in the local database: their products, whether inFlow has them on hand
    /// and where (latest snapshot), and their last recorded event. No API request.
    ///
    /// Exits 1 when a serial is unknown to both the snapshot and the history.
    #[command(after_help = "Examples:\n  \
        audit lookup SN-001234 SN-001235\n  \
        audit lookup --file serials.txt --format csv\n  \
        cat serials.txt | audit lookup --file -")]
    Lookup(LookupArgs),

    /// Compare the history with inFlow's stock (latest snapshot) and list every disagreement.
    ///
    /// Kinds: never_in_documents, on_hand_without_receipt, on_hand_in_two_locations,
    /// different_location, on_hand_but_history_gone, gone_but_history_on_hand,
    /// negative_on_hand. Exit status 0 when all agree, 1 when any disagreement is found (so it
    /// can gate a scheduled job) and 2 when it cannot tell (no snapshot, database error). Take the snapshot right after an ingest
    /// (`audit ingest --snapshot`) so both describe the same moment.
    Reconcile(ReconcileArgs),

    /// List the serial histories that cannot be right, each with its kind, an explanation, the
    /// evidence (events and documents by number) and when it started. No API request.
    ///
    /// Kinds: out_twice, in_twice, moved_from_elsewhere, appeared_from_nowhere, sold_twice,
    /// stuck_in_transit, returned_never_sold, one_serial_two_products, history_and_stock_disagree
    /// (what `audit reconcile` lists, when a snapshot exists). Retracted events never count; undated
    /// ones are placed as `audit timeline` places them. The `serial_anomalies` view holds the same
    /// rows (with the default --transit-days). Exit status 0 when none is found, 1 when any is,
    /// 2 on error.
    #[command(after_help = "Examples:\n  \
        audit anomalies\n  \
        audit anomalies --kind sold_twice,out_twice --since 2025-01-01 --format csv\n  \
        audit anomalies --serial SN-001234")]
    Anomalies(AnomaliesArgs),

    /// Show what the database holds per company and stream, where walks stand, recent runs,
    /// and what a complete or windowed run costs in requests.
    Status(StatusArgs),

    /// Derive every event again from the stored documents, without asking inFlow.
    ///
    /// For when a new version of audit maps documents better. Events the new mapping no longer
    /// gives are retracted, new ones are added, unchanged ones stay: the audit trail keeps its
    /// history. Makes no API request. Takes the ingest lock like `audit ingest`.
    Rebuild(RebuildArgs),

    /// Print one serial's history: every recorded event in order, and where it is now.
    ///
    /// Events are ordered by date, then by the natural order of a document's steps (ordered or
    /// sold before picked before shipped; sent before received). The running on-hand column
    /// adds up each event's stock effect (+1 in, -1 out). A serial string used by two products
    /// is shown as two histories. Manufacturing orders add what the serial was built into and
    /// what it contains; --tree prints that whole bill of serials. Exits 1 when the serial is
    /// unknown, with close matches.
    #[command(after_help = "Examples:\n  \
        audit timeline SN-001234\n  \
        audit timeline SN-001234 --format json\n  \
        audit timeline SN-001234 --on 2025-06-18          # status and location on that day\n  \
        audit timeline SN-001234 --all --as-recorded-at 2025-06-30T12:00:00Z\n  \
        audit timeline LAP-000123 --tree")]
    Timeline(TimelineArgs),

    /// Run a read-only SQL query against the audit trail and print the result.
    ///
    /// The query runs on a read-only connection (SQLite), or in a read-only transaction as a
    /// role that may only read the audit tables (Postgres; see the README's Security section):
    /// INSERT, UPDATE, DELETE, DROP and the like are refused and change nothing. It is stopped
    /// after --timeout. Rows are printed as they arrive. A file may use named parameters
    /// (`:po_number`), given with --param; each becomes a quoted literal. The queries shipped
    /// with audit run by name (--query); --list says what each answers.
    #[command(after_help = "Examples:\n  \
        audit sql \"SELECT status, count(*) FROM serial_current GROUP BY status\"\n  \
        audit sql --list\n  \
        audit sql --query recall --param po_number=PO-000012 --format csv\n  \
        audit sql --file my_query.sql --param serial=SN-001234")]
    Sql(SqlArgs),

    /// Serve the audit trail as web pages, for people who do not use a terminal: search,
    /// a serial's story (status, timeline, a lane of where it was, documents, genealogy),
    /// documents, recalls, anomalies, reconcile and status.
    ///
    /// Read-only, as `audit sql` is: it can run beside a scheduled ingest and never needs the
    /// API key. No JavaScript and no external assets. Listens on 127.0.0.1:8080 by default; any
    /// other address needs --token (or an explicit --no-auth).
    #[command(after_help = "Examples:\n  \
        audit serve\n  \
        audit serve --port 9000\n  \
        AUDIT_SERVE_TOKEN=s3cret audit serve --bind 0.0.0.0   # open http://HOST:8080/?token=s3cret once")]
    Serve(ServeArgs),

    /// Try audit end to end without an inFlow account: simulate a small company, ingest it into
    /// a local SQLite file, and show one serial's story.
    ///
    /// The simulator runs inside this process and stops with it. The database is
    /// `audit-demo.db` in the working directory (or --database-url, if given on the command line);
    /// running the demo again reuses it, so the second run shows an incremental ingest that
    /// writes nothing.
    Demo(DemoArgs),

    /// Serve a simulated inFlow Cloud API with a generated company, for trying `audit` without
    /// an API key and for tests.
    Simulate(SimulateArgs),

    /// Print a shell completion script, for example
    /// `audit completions bash > ~/.local/share/bash-completion/completions/audit`.
    Completions {
        /// bash, zsh, fish, powershell or elvish.
        shell: clap_complete::Shell,
    },

    /// Print the manual page (roff), for example `audit man > ~/.local/share/man/man1/audit.1`.
    Man,

    /// Show where audit looks for its settings file, which one it read, and the settings taken
    /// from it.
    ///
    /// `--config PATH` (or AUDIT_CONFIG), else `audit.toml` in the working folder, else
    /// `$XDG_CONFIG_HOME/audit/audit.toml` (`~/.config/audit/audit.toml`). A flag wins over an
    /// environment variable, which wins over the file. The API key is never read from it.
    Config,
}

/// `audit simulate`: where to listen, and the company and misbehaviour to simulate.
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

    /// Return at most N items per list page, whatever `count` asks (a page-size cap).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100), help_heading = "Unconfirmed API behaviours")]
    pub page_cap: Option<u32>,

    /// Answer this status (for example 500) to every list request with a `sort` parameter.
    #[arg(long, value_name = "STATUS", value_parser = clap::value_parser!(u16).range(400..600), help_heading = "Unconfirmed API behaviours")]
    pub sort_status: Option<u16>,

    /// Ignore `sort` and `sortDesc`: lists come in the default order.
    #[arg(long, help_heading = "Unconfirmed API behaviours")]
    pub ignore_sort: bool,

    /// How a sort on a document's date (`date`, `transferDate`, `orderDate`) is answered:
    /// honour, ignore (the default order), badly (each page sorted, the pages not), or
    /// shuffled-ties (honoured; documents of equal dates in another order on each request).
    #[arg(long, value_name = "ANSWER", default_value = "honour", help_heading = "Unconfirmed API behaviours")]
    pub date_sort: inflow_simulator::DateSort,

    /// Answer 404 for these endpoints, comma-separated (for example
    /// manufacturing-orders,stock-counts), as an account without that feature might.
    #[arg(long, value_name = "ENDPOINTS", value_delimiter = ',', help_heading = "Unconfirmed API behaviours")]
    pub unavailable: Vec<String>,

    /// The answer to `after=<id>` naming no existing document: compare (the id is compared as
    /// any other), empty (an empty page), or a status such as 404, 400 or 500.
    #[arg(long, value_name = "ANSWER", default_value = "compare", help_heading = "Unconfirmed API behaviours")]
    pub unknown_cursor: UnknownCursor,

    /// What `X-listCount` counts: total (every document matching the filters), remaining
    /// (only what is left from the page's position) or none (no header).
    #[arg(long, value_name = "MEANING", default_value = "total", help_heading = "Unconfirmed API behaviours")]
    pub list_count: ListCount,

    /// What N in the rate headers (`N/60`, `N/1000`) is: used or remaining.
    #[arg(long, value_name = "MEANING", default_value = "used", help_heading = "Unconfirmed API behaviours")]
    pub rate_headers: RateHeaders,

    /// How ids sort: text, or sqlserver (SQL Server's uniqueidentifier order).
    #[arg(long, value_name = "ORDER", default_value = "text", help_heading = "Unconfirmed API behaviours")]
    pub guid_order: GuidOrder,
    /// Completing a stock count also creates a stock adjustment that the API lists (an internal
    /// reason, remarks naming the count), as some accounts may.
    #[arg(long)]
    pub count_adjustments: bool,

    /// Answer 400 to `include=sheets.lines` on stock counts; the sheets' lines are then only
    /// served by `count-sheets/{id}`.
    #[arg(long)]
    pub refuse_sheet_lines: bool,

    /// Serve manufacturing orders' put lines with `putDate` and `manufacturingOrderLineId`, as
    /// newer API versions are reported to.
    #[arg(long)]
    pub newer_manufacturing_fields: bool,
}

/// Where and how to reach inFlow; shared by the commands that call the API.
#[derive(Debug, Clone, Args)]
pub struct InflowArgs {
    /// The company's id (a GUID), from inFlow's Options > Integrations page.
    #[arg(long, env = "INFLOW_COMPANY_ID", hide_env_values = true)]
    pub company_id: Option<String>,

    /// The API key. Prefer the environment variable: arguments are visible to other users of
    /// the machine. The key is never printed, logged or stored.
    #[arg(long, env = "INFLOW_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// A file holding the API key (for a scheduled job: readable by its user only, or it is
    /// refused). Used when no key is given otherwise.
    #[arg(long, env = "INFLOW_API_KEY_FILE", value_name = "PATH", hide_env_values = true)]
    pub api_key_file: Option<std::path::PathBuf>,

    /// The API's address.
    #[arg(long, env = "INFLOW_BASE_URL", default_value = DEFAULT_BASE_URL, hide_env_values = true)]
    pub base_url: String,

    /// The API version sent in the Accept header.
    #[arg(long, env = "INFLOW_API_VERSION", default_value = DEFAULT_API_VERSION, hide_env_values = true)]
    pub api_version: String,

    /// Requests per minute to stay under. inFlow allows 60 per company, shared with the
    /// company's other integrations: lower this to leave them room.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_per_minute: u32,

    /// Requests per hour to stay under (inFlow allows 1000, shared likewise).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_per_hour: u32,

    /// Stop cleanly after this many requests, saving the position, so that a scheduled run
    /// takes only its share of the quota. The next run continues from there.
    #[arg(long, value_name = "N")]
    pub max_requests: Option<u64>,

    /// Give up on one request after this long, from connecting to its last byte (it is then
    /// retried like a dropped connection).
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    pub request_timeout: std::time::Duration,

    /// Compress every wait (rate windows, backoff, Retry-After defaults) by this factor, to
    /// match a simulator started with the same --time-scale. Testing only.
    #[arg(long, default_value_t = 1.0, hide = true)]
    pub time_scale: f64,
}

/// `audit ingest`: how to reach inFlow, which streams to walk and how far back, and how often.
#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// How to reach inFlow.
    #[command(flatten)]
    pub inflow: InflowArgs,

    /// Leave out documents dated before this day (YYYY-MM-DD). Sales and purchase orders are
    /// filtered by inFlow on their order date; adjustments and transfers, which inFlow cannot
    /// filter, are walked in full and filtered here. Remembered: later runs keep the bound.
    #[arg(long, value_name = "DATE", value_parser = parse_since)]
    pub since: Option<NaiveDate>,

    /// Re-read only the sales and purchase orders dated in this recent period (for example
    /// `30d`), with inFlow's date filter, plus the complete adjustment and transfer streams
    /// (which inFlow cannot filter). Cheap enough to run often; a plain run is a complete walk,
    /// which also notices deleted documents.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub window: Option<std::time::Duration>,

    /// Keep running: one run per interval (for example `15m`), never two at once and never
    /// faster than the rate limits allow. Ctrl-C or SIGTERM ends it after the current page.
    #[arg(long, value_name = "INTERVAL", value_parser = parse_duration)]
    pub every: Option<std::time::Duration>,

    /// Run once, even when the settings file sets `every` (for a cron job that shares the file
    /// of a looping service).
    #[arg(long, conflicts_with = "every")]
    pub once: bool,

    /// When another ingest of the same company and database is running, wait for it instead of
    /// exiting (with status 75).
    #[arg(long)]
    pub wait: bool,

    /// After the documents, take a stock snapshot as `audit snapshot` does (same budget).
    #[arg(long)]
    pub snapshot: bool,

    /// Only these streams, comma-separated: sales-orders, purchase-orders,
    /// manufacturing-orders, stock-counts, stock-adjustments, stock-transfers. Default: all.
    #[arg(long, value_delimiter = ',', value_name = "STREAMS", value_parser = parse_stream)]
    pub types: Vec<DocType>,
}

pub(crate) fn parse_stream(s: &str) -> Result<DocType, String> {
    DocType::from_stream(s.trim()).ok_or_else(|| {
        let all: Vec<&str> = DocType::ALL.iter().map(|t| t.stream()).collect();
        format!("unknown stream `{s}`; expected one of {}", all.join(", "))
    })
}

/// `--company-id` for the commands that read the database: one company, or every one it holds.
#[derive(Debug, Clone, Default, Args)]
pub struct CompanyFilter {
    /// Only this company (default: every company the database holds).
    #[arg(long, env = "INFLOW_COMPANY_ID", hide_env_values = true)]
    pub company_id: Option<String>,
}

/// `--format` for the commands that print results.
#[derive(Debug, Clone, Default, Args)]
pub struct FormatChoice {
    /// table (the default on a terminal), json (the default otherwise), or csv.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

/// `--format` for the commands whose results are nested, which have no CSV form.
#[derive(Debug, Clone, Default, Args)]
pub struct NestedFormatChoice {
    /// table (the default on a terminal) or json (the default otherwise).
    #[arg(long, value_enum)]
    pub format: Option<NestedFormat>,
}

/// The formats of [`NestedFormatChoice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NestedFormat {
    /// Aligned columns, for a terminal.
    Table,
    /// JSON, for programs.
    Json,
}

impl NestedFormatChoice {
    /// The chosen format as the output module names it.
    pub fn format(&self) -> Option<Format> {
        self.format.map(|f| match f {
            NestedFormat::Table => Format::Table,
            NestedFormat::Json => Format::Json,
        })
    }
}

/// `audit timeline`: the serial, which companies, which events (retracted ones, as of a day or a
/// recording time), and the output format.
#[derive(Debug, Clone, Args)]
pub struct TimelineArgs {
    /// The serial number, as inFlow stores it (surrounding spaces are ignored).
    #[arg(value_parser = trimmed)]
    pub serial: String,

    /// Which companies to read.
    #[command(flatten)]
    pub company: CompanyFilter,

    /// The output format.
    #[command(flatten)]
    pub output: FormatChoice,

    /// Show retracted events too (events of edited, cancelled or deleted documents), marked.
    #[arg(long)]
    pub all: bool,

    /// Where it was on this business day (YYYY-MM-DD, ending at midnight in the local zone, or
    /// UTC with --utc): its status and location then, and the events up to then, as the
    /// history is known today.
    #[arg(long, value_name = "DATE", value_parser = parse_day, conflicts_with_all = ["tree", "all", "as_recorded_at"])]
    pub on: Option<NaiveDate>,

    /// Not "where was it then" (that is --on) but what the audit trail held at this moment
    /// (RFC 3339, or a date for its start): events recorded by then and not yet retracted then,
    /// for checking what an earlier report was based on. (The genealogy lines are left out:
    /// they describe the current orders.)
    #[arg(long, alias = "as-of", value_name = "TIME", value_parser = parse_time, conflicts_with = "tree")]
    pub as_recorded_at: Option<chrono::DateTime<chrono::Utc>>,

    /// Print the bill of serials instead: every component built into this serial (and theirs,
    /// through subassemblies), and every unit it was built into (and what those went into).
    #[arg(long, conflicts_with = "all")]
    pub tree: bool,
}

/// A typed serial without the spaces around it, which no serial is meant to have.
fn trimmed(s: &str) -> Result<String, String> {
    let serial = s.trim();
    if serial.is_empty() {
        return Err("a serial number cannot be empty or only spaces".into());
    }
    Ok(serial.to_string())
}

fn parse_day(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| format!("`{s}` is not a date in the form YYYY-MM-DD, such as 2025-06-18"))
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    crate::mapping::parse_date(s).ok_or_else(|| format!("`{s}` is not a time: use 2025-06-30T12:00:00Z or 2025-06-30"))
}

/// `audit sql --format`: the formats of the other commands, and a vertical one for wide rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SqlFormat {
    /// Aligned columns; each block of rows too wide for the terminal is shown vertical.
    Table,
    /// One `column | value` line per column, a block per row.
    Vertical,
    /// JSON, for programs.
    Json,
    /// CSV, for spreadsheets.
    Csv,
}

/// `audit sql`: the query (text, file or shipped name), its parameters, and the output.
#[derive(Debug, Clone, Args)]
pub struct SqlArgs {
    /// The query to run.
    #[arg(
        value_name = "SQL",
        required_unless_present_any = ["file", "named", "list"],
        conflicts_with_all = ["file", "named", "list"]
    )]
    pub query: Option<String>,

    /// Run a query shipped with audit (embedded, so it works from any folder): recall,
    /// customer_of_serial, moved_between, ... `--list` names them all with their parameters.
    #[arg(long = "query", id = "named", value_name = "NAME", conflicts_with_all = ["file", "list"])]
    pub named: Option<String>,

    /// List the shipped queries, their parameters and what each answers.
    #[arg(long, conflicts_with = "file")]
    pub list: bool,

    /// Read the query from a file (`-` for standard input). `sql/NAME.sql` falls back to
    /// `sql/NAME.sqlite.sql` or `sql/NAME.postgres.sql` (whichever matches the database) for
    /// queries that need one version per engine.
    #[arg(long, short = 'f', value_name = "PATH")]
    pub file: Option<std::path::PathBuf>,

    /// A named parameter of the query: --param po_number=PO-000012 (repeatable). Parameters
    /// named like dates (from, to, since, ..._date, ..._at) take 2025-07-01 or an RFC 3339 time
    /// (a value not written like a date, such as ship_to=Dock 4, is passed as given).
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,

    /// table (the default on a terminal; rows too wide for it are shown as vertical), vertical
    /// (one `column | value` line per column, a block per row, like psql's `\x`), json (the
    /// default otherwise) or csv.
    #[arg(long, value_enum)]
    pub format: Option<SqlFormat>,

    /// Stop the query after this long (for example 30s, 5m): the database ends it, and it does
    /// not outlive audit.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_query_timeout)]
    pub timeout: std::time::Duration,
}

/// `audit sql --timeout`: at least 100 ms (less stops any query before it starts) and at most a
/// day (Postgres takes no more than about 24 days, and an ad-hoc query has no business longer).
fn parse_query_timeout(s: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(s)?;
    let (min, max) = (std::time::Duration::from_millis(100), std::time::Duration::from_secs(86_400));
    if d < min || d > max {
        return Err(format!("`{s}` is outside the range --timeout takes, 100ms to 24h"));
    }
    Ok(d)
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    let (name, value) = s.split_once('=').ok_or_else(|| format!("`{s}` is not NAME=VALUE"))?;
    let name = name.trim().trim_start_matches(':');
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("`{name}` is not a parameter name (letters, digits and _)"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// `audit serve`: where to listen, who may read, and which company to show.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on. Anything but a loopback address needs --token or --no-auth.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,

    /// Port to listen on; 0 picks a free one (the address is printed on stdout).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,

    /// A secret every request must carry: `Authorization: Bearer TOKEN`, or `?token=TOKEN` once
    /// in a browser (it then sets a cookie). Prefer the environment variable.
    #[arg(long, env = "AUDIT_SERVE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Serve a non-loopback address without a token: anyone who can reach it reads the trail.
    #[arg(long, conflicts_with = "token")]
    pub no_auth: bool,

    /// Only this company's serials, documents, anomalies and status, when the database holds
    /// several. The recall pages run the shipped queries, which cover every company: with this
    /// option they answer only while the database holds this company alone.
    #[arg(long, env = "INFLOW_COMPANY_ID", hide_env_values = true)]
    pub company_id: Option<String>,

    /// Seconds a page may take, waiting for its turn included (8 are built at once). A page
    /// that takes longer is answered "503 Not answered in time"; on Postgres its query is
    /// cancelled too.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub time_limit: u64,
}

/// `audit demo`: whether to start over, and the simulated company's seed.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Delete the demo database first instead of reusing it.
    #[arg(long)]
    pub fresh: bool,

    /// Seed of the simulated company.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// A day in `YYYY-MM-DD`, not in the future (a bound there would read nothing, and be
/// remembered for later runs).
fn parse_since(s: &str) -> Result<NaiveDate, String> {
    let day = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|e| format!("`{s}` is not a date in the form YYYY-MM-DD, such as 2025-01-01 ({e})"))?;
    let today = chrono::Utc::now().date_naive();
    // A day of slack: it is already tomorrow east of UTC.
    if day > today + chrono::Days::new(1) {
        return Err(format!(
            "{day} is in the future (today is {today}, UTC): no document would be read, and later runs would keep \
             that bound"
        ));
    }
    Ok(day)
}

pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| format!("`{s}` is not a duration like 30d or 15m: {e}"))?;
    if d.is_zero() {
        return Err("the duration must be positive".into());
    }
    // Far beyond any use, and well inside what date and clock arithmetic can add.
    if d > std::time::Duration::from_secs(100 * 366 * 86_400) {
        return Err(format!("`{s}` is longer than 100 years"));
    }
    Ok(d)
}

/// `audit status`: which companies, and the output format.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Which companies to read.
    #[command(flatten)]
    pub company: CompanyFilter,

    /// The output format.
    #[command(flatten)]
    pub output: NestedFormatChoice,
}

/// `audit rebuild`: which companies, and whether to wait for a running ingest.
#[derive(Debug, Clone, Args)]
pub struct RebuildArgs {
    /// Which companies to read.
    #[command(flatten)]
    pub company: CompanyFilter,

    /// When an ingest of the company is running, wait for it instead of exiting (status 75).
    #[arg(long)]
    pub wait: bool,
}

/// `audit doctor`: how to reach inFlow, and the output format.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// How to reach inFlow.
    #[command(flatten)]
    pub inflow: InflowArgs,

    /// The output format.
    #[command(flatten)]
    pub output: NestedFormatChoice,
}

/// `audit snapshot`: how to reach inFlow.
#[derive(Debug, Clone, Args)]
pub struct SnapshotArgs {
    /// How to reach inFlow.
    #[command(flatten)]
    pub inflow: InflowArgs,
}

/// `audit lookup`: the serials (given or from a file), which companies, and the output.
#[derive(Debug, Clone, Args)]
pub struct LookupArgs {
    /// Serial numbers to look up (surrounding spaces are ignored).
    #[arg(required_unless_present = "file", value_parser = trimmed)]
    pub serials: Vec<String>,

    /// Read serials from a file, one per line (`-` for standard input); surrounding spaces are
    /// ignored. The output keeps the order of the input.
    #[arg(long, short = 'f', value_name = "PATH")]
    pub file: Option<std::path::PathBuf>,

    /// Which companies to read.
    #[command(flatten)]
    pub company: CompanyFilter,

    /// The output format.
    #[command(flatten)]
    pub output: FormatChoice,
}

/// `audit reconcile`: which companies, and the output format.
#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    /// Which companies to read.
    #[command(flatten)]
    pub company: CompanyFilter,

    /// The output format.
    #[command(flatten)]
    pub output: FormatChoice,
}

/// `audit anomalies`: which anomalies to list, and the output format.
#[derive(Debug, Clone, Args)]
pub struct AnomaliesArgs {
    /// Only these kinds, comma-separated (or the option repeated).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "KIND")]
    pub kind: Vec<crate::anomalies::AnomalyKind>,

    /// Only anomalies that started at or after this time (RFC 3339, or a date for its start).
    /// Undated ones count as the latest, so they are always listed.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,

    /// Only this serial (as inFlow stores it; surrounding spaces are ignored).
    #[arg(long, value_parser = trimmed)]
    pub serial: Option<String>,

    /// Which companies to read.
    #[command(flatten)]
    pub company: CompanyFilter,

    /// A transfer is stuck in transit after more than this many days without its receipt,
    /// counted to the company's newest recorded document.
    #[arg(long, value_name = "DAYS", default_value_t = crate::store::anomalies::DEFAULT_TRANSIT_DAYS)]
    pub transit_days: u32,

    /// The output format.
    #[command(flatten)]
    pub output: FormatChoice,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_serial_is_trimmed_and_never_empty() {
        assert_eq!(trimmed("  SN-1\t").unwrap(), "SN-1");
        for blank in ["", "   ", "\t"] {
            assert!(trimmed(blank).unwrap_err().contains("cannot be empty"), "{blank:?}");
        }
    }

    #[test]
    fn since_is_a_past_day_and_says_the_form_it_expects() {
        assert_eq!(parse_since(" 2025-01-01 ").unwrap(), NaiveDate::from_ymd_opt(2025, 1, 1).unwrap());
        let today = chrono::Utc::now().date_naive();
        assert!(parse_since(&(today + chrono::Days::new(1)).to_string()).is_ok(), "tomorrow somewhere east");
        let err = parse_since(&(today + chrono::Days::new(30)).to_string()).unwrap_err();
        assert!(err.contains("is in the future"), "{err}");
        for bad in ["01/01/2025", "2025-13-01", "yesterday"] {
            let err = parse_since(bad).unwrap_err();
            assert!(err.contains("YYYY-MM-DD, such as 2025-01-01"), "{bad}: {err}");
        }
    }

    #[test]
    fn durations_are_positive_and_bounded() {
        assert_eq!(parse_duration("30d"), Ok(std::time::Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration(" 15m "), Ok(std::time::Duration::from_secs(900)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        // Added to clocks and dates later; must not overflow them.
        assert!(parse_duration("300000y").unwrap_err().contains("100 years"));
    }

    /// The schedules shipped in `contrib/` name only options this binary has.
    #[test]
    fn the_contrib_schedules_parse() {
        use clap::Parser;
        let units = [
            include_str!("../contrib/systemd/audit-ingest-hourly.service"),
            include_str!("../contrib/systemd/audit-ingest-nightly.service"),
        ];
        let mut commands: Vec<&str> =
            units.iter().flat_map(|u| u.lines()).filter_map(|l| l.strip_prefix("ExecStart=")).collect();
        let cron = include_str!("../contrib/cron/audit");
        commands.extend(cron.lines().filter(|l| !l.starts_with('#')).filter_map(|l| {
            let from = l.find("/usr/local/bin/audit")?;
            Some(l[from..].split(">>").next().unwrap_or_default())
        }));
        assert_eq!(commands.len(), 4, "two systemd services and two cron lines");
        for command in commands {
            let words = command.split_whitespace().map(|w| if w.ends_with("/audit") { "audit" } else { w });
            Cli::try_parse_from(words).unwrap_or_else(|e| panic!("{command}: {e}"));
        }
    }
}
