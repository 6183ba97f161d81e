//! Output formats shared by the commands that print results: a table for people, JSON and CSV
//! for programs. Results go to stdout; everything else goes to stderr.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};

use chrono::{DateTime, Utc};

/// How a command prints its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, for a terminal.
    Table,
    /// JSON, for programs.
    Json,
    /// CSV, for spreadsheets.
    Csv,
}

impl Format {
    /// The chosen format, or a table on a terminal and JSON elsewhere.
    pub fn resolve(chosen: Option<Format>) -> Format {
        chosen.unwrap_or_else(|| if std::io::stdout().is_terminal() { Format::Table } else { Format::Json })
    }
}

/// A table for terminal output, in the project's style. Add rows with [`add_row`].
pub fn table(header: &[&str]) -> comfy_table::Table {
    let mut table = bare_table();
    // Narrow: a header of several words takes several lines rather than widening its column.
    let narrow = width().is_some_and(|w| w < 120);
    table.set_header(header.iter().map(|h| {
        let h = printable(h).into_owned();
        if narrow { stack_words(&h) } else { h }
    }));
    table
}

/// Writes rows as [`split_tables`] cuts them, a blank line between two tables, each
/// [`render`]ed.
pub fn write_split_tables(out: &mut impl std::io::Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    for (i, table) in split_tables(header, rows).into_iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{}", render(&table))?;
    }
    Ok(())
}

/// A table as printed: each line without the padding after its last column (no trailing
/// spaces for a diff, a `grep` or a terminal copy to carry).
pub fn render(table: &comfy_table::Table) -> String {
    table.lines().map(|line| line.trim_end().to_string()).collect::<Vec<_>>().join("\n")
}

/// A table without a header.
pub fn bare_table() -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    // Fit the terminal (comfy-table reads its width when stdout is one) or `COLUMNS` (as shells
    // export it, and as tests fix it): the widest columns wrap instead of every row wrapping at
    // the edge. A pipe or a file gets whole rows.
    if let Some(width) = columns() {
        table.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
        table.set_width(width);
    } else if std::io::stdout().is_terminal() {
        table.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    }
    table
}

/// `last complete walk` as three lines; a one-character word (`events +`) stays with the one
/// before it.
fn stack_words(header: &str) -> String {
    let mut out = String::new();
    for word in header.split(' ') {
        if !out.is_empty() {
            out.push(if word.chars().count() > 1 { '\n' } else { ' ' });
        }
        out.push_str(word);
    }
    out
}

/// `text` broken at spaces into lines of at most the fitted [`width`] (a longer word stays
/// whole); unchanged when there is no width to fit.
pub fn wrap(text: &str) -> String {
    match width() {
        Some(width) => wrap_to(text, usize::from(width)),
        None => text.to_string(),
    }
}

fn wrap_to(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    for (i, word) in text.split(' ').enumerate() {
        let n = display_width(word);
        if i > 0 {
            // Spaces that indent a line are kept; a break replaces the space before a word.
            if line > 0 && n > 0 && line + 1 + n > width {
                out.push('\n');
                line = 0;
            } else {
                out.push(' ');
                line += 1;
            }
        }
        out.push_str(word);
        line += n;
    }
    out
}

/// Columns `text` takes on a terminal: two for a wide character (CJK, most emoji), none for a
/// combining one, as comfy-table measures its cells.
pub fn display_width(text: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(text)
}

/// `COLUMNS`, when set to a usable width.
fn columns() -> Option<u16> {
    std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<u16>().ok()).filter(|&c| c >= 20)
}

/// The width tables are fitted to (`COLUMNS`, or the terminal's), if any: for the tables that
/// shorten a column before wrapping it.
pub fn width() -> Option<u16> {
    columns().or_else(|| if std::io::stdout().is_terminal() { comfy_table::Table::new().width() } else { None })
}

/// A table of many short columns that must fit a width: split into several tables, each
/// repeating the first (key) column, as many columns to each as fit. Without a width to fit,
/// or when everything fits, one table.
pub fn split_tables(header: &[&str], rows: &[Vec<String>]) -> Vec<comfy_table::Table> {
    let groups = match width() {
        Some(w) => column_groups(header, rows, usize::from(w)),
        None => vec![(0..header.len()).collect()],
    };
    groups
        .into_iter()
        .map(|columns| {
            let names: Vec<&str> = columns.iter().map(|&c| header[c]).collect();
            let mut t = table(&names);
            for row in rows {
                add_row(&mut t, columns.iter().map(|&c| row.get(c).cloned().unwrap_or_default()).collect());
            }
            t
        })
        .collect()
}

/// Column indexes per table: the key column (0) in each, then the others in order while their
/// widths (two of padding each; a wide column at its narrowest) fit.
fn column_groups(header: &[&str], rows: &[Vec<String>], width: usize) -> Vec<Vec<usize>> {
    let narrow = width < 120;
    let shown = |c: usize| {
        let head = if narrow { stack_words(header[c]) } else { header[c].to_string() };
        let head = head.lines().map(display_width).max().unwrap_or(0);
        let cells = rows.iter().filter_map(|r| r.get(c)).map(|v| display_width(v)).max().unwrap_or(0);
        let cell = if cells > SHORT_CELL { 8 } else { cells };
        head.max(cell) + 2
    };
    let key = shown(0);
    let mut groups: Vec<Vec<usize>> = vec![vec![0]];
    let mut used = key;
    for c in 1..header.len() {
        let w = shown(c);
        let last = groups.last_mut().expect("one group at least");
        if used + w > width && last.len() > 1 {
            groups.push(vec![0, c]);
            used = key + w;
        } else {
            last.push(c);
            used += w;
        }
    }
    groups
}

/// Whether rows fit the terminal as a table without splitting it (always, without a width).
pub fn fits(header: &[&str], rows: &[Vec<String>]) -> bool {
    width().is_none_or(|w| column_groups(header, rows, usize::from(w)).len() == 1)
}

/// One row as a block of `column | value` lines under `-[ RECORD n ]---`, as psql's `\x`
/// shows it; values shown terminal-safe and wrapped at spaces to the terminal's width.
pub fn vertical_record(n: u64, header: &[&str], row: &[String]) -> String {
    use std::fmt::Write as _;
    let label = header.iter().map(|h| display_width(&printable(h))).max().unwrap_or(0);
    let total = width().map_or(usize::MAX, usize::from);
    let mut out = format!("-[ RECORD {n} ]");
    let rule = total.min(label + 3 + row.iter().map(|v| display_width(v)).max().unwrap_or(0).max(10));
    let dashes = rule.saturating_sub(display_width(&out));
    out.push_str(&"-".repeat(dashes));
    out.push('\n');
    let room = total.saturating_sub(label + 3).max(20);
    for (name, value) in header.iter().zip(row) {
        let value = printable(value);
        let wrapped = if total == usize::MAX { value.into_owned() } else { wrap_to(&value, room) };
        let mut lines = wrapped.split('\n');
        let name = printable(name);
        let pad = " ".repeat(label.saturating_sub(display_width(&name)));
        let _ = writeln!(out, "{name}{pad} | {}", lines.next().unwrap_or_default());
        for more in lines {
            let _ = writeln!(out, "{:label$} | {more}", "");
        }
    }
    out
}

/// `text` wrapped as [`wrap`] does, each line after `indent`: for the paragraphs of a report.
pub fn wrap_indented(text: &str, indent: &str) -> String {
    match width() {
        Some(width) => wrap_to(text, usize::from(width).saturating_sub(indent.len()).max(20))
            .lines()
            .map(|l| format!("{indent}{l}"))
            .collect::<Vec<_>>()
            .join("\n"),
        None => format!("{indent}{text}"),
    }
}

/// Cells up to this wide (dates, counts, statuses) are never wrapped when a table must fit.
const SHORT_CELL: usize = 20;

/// Adds a row whose cells are shown terminal-safe (see [`printable`]). When the table must fit a
/// width, the columns whose cells are all short stay whole and only the wide ones wrap.
pub fn add_row(table: &mut comfy_table::Table, cells: Vec<String>) {
    use comfy_table::{ColumnConstraint, Width};
    let cells: Vec<String> = cells
        .into_iter()
        .map(|c| match printable(&c) {
            Cow::Borrowed(_) => c,
            Cow::Owned(shown) => shown,
        })
        .collect();
    let widths: Vec<usize> = cells.iter().map(|c| c.lines().map(display_width).max().unwrap_or(0)).collect();
    table.add_row(cells);
    for (i, width) in widths.into_iter().enumerate() {
        let Some(column) = table.column_mut(i) else { continue };
        let short = width <= SHORT_CELL;
        match column.constraint() {
            None if short => {
                column.set_constraint(ColumnConstraint::ContentWidth);
            }
            None | Some(ColumnConstraint::ContentWidth) if !short => {
                column.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(8)));
            }
            _ => {}
        }
    }
}

/// Text as it may be shown to people on a terminal: control characters, and the Unicode
/// controls that reorder text, shown escaped (`\n`, `\u{1b}`), as `ls` and `git` do, so that
/// data (a serial, a name) cannot move the cursor, recolour or retitle the terminal, or hide
/// itself. JSON and CSV output stay exact.
pub fn printable(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Standard output for results. When its reader goes away (`audit ... | head`), writes fail with
/// an error that carries [`StdoutClosed`], which the command edge turns into a quiet exit.
pub fn stdout() -> Stdout {
    Stdout(std::io::stdout().lock())
}

/// Locked stdout: see [`stdout`].
pub struct Stdout(std::io::StdoutLock<'static>);

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(closed)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(closed)
    }
}

fn closed(e: std::io::Error) -> std::io::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe { std::io::Error::new(e.kind(), StdoutClosed) } else { e }
}

/// The reader of standard output went away.
#[derive(Debug, thiserror::Error)]
#[error("the reader of standard output went away")]
pub struct StdoutClosed;

/// Whether an error is (or was caused by) standard output closing, rather than anything else
/// that can fail with a broken pipe (a socket).
pub fn is_stdout_closed(err: &(dyn std::error::Error + 'static)) -> bool {
    // io and csv errors hold their cause without always giving it as `source()`.
    fn held<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e (dyn std::error::Error + 'static)> {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.get_ref().map(|inner| inner as &(dyn std::error::Error + 'static));
        }
        match e.downcast_ref::<csv::Error>()?.kind() {
            csv::ErrorKind::Io(io) => Some(io),
            _ => None,
        }
    }
    let mut next = Some(err);
    while let Some(e) = next {
        let mut inner = Some(e);
        while let Some(i) = inner {
            if i.is::<StdoutClosed>() {
                return true;
            }
            inner = held(i);
        }
        next = e.source();
    }
    false
}

/// A line for people on stderr. A closed stderr is not worth failing for (or panicking, as
/// `eprintln!` does): the line is dropped.
pub fn note(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{}", fit_stderr(line));
}

/// Text for stderr fitted to the terminal's width (or `COLUMNS`): a long line breaks between
/// words rather than in the middle of an id, as the terminal would cut it.
fn fit_stderr(text: &str) -> Cow<'_, str> {
    let width =
        columns().or_else(|| if std::io::stderr().is_terminal() { comfy_table::Table::new().width() } else { None });
    match width {
        Some(w) => Cow::Owned(text.split('\n').map(|l| wrap_to(l, usize::from(w))).collect::<Vec<_>>().join("\n")),
        None => Cow::Borrowed(text),
    }
}

/// Stderr for log lines (warnings, `-v`), each fitted as [`note`] fits its lines.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // The log formatter writes each event whole; anything not UTF-8 goes out untouched.
        match std::str::from_utf8(buf) {
            Ok(text) => std::io::stderr().lock().write_all(fit_stderr(text).as_bytes())?,
            Err(_) => std::io::stderr().lock().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Writes rows as CSV with a header line.
pub fn write_csv<W: Write>(out: W, header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(header)?;
    for row in rows {
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}

/// Writes pretty JSON and a final newline. Buffered: the serializer writes token by token, and
/// stdout (a `LineWriter`) would make a system call of every line.
pub fn write_json<W: Write, T: serde::Serialize>(out: W, value: &T) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// Whether people's times are shown in UTC (`--utc`) rather than the local zone.
static SHOW_UTC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Shows people's times in UTC instead of the local zone (`--utc`). JSON and CSV are UTC always.
pub fn show_utc(yes: bool) {
    SHOW_UTC.store(yes, std::sync::atomic::Ordering::Relaxed);
}

fn utc_shown() -> bool {
    SHOW_UTC.load(std::sync::atomic::Ordering::Relaxed)
}

/// The zone people's times are shown in, named: `UTC` with `--utc`, else the zone chrono
/// reads `TZ` as (its name, or the string the user set), else the system's zone name, else its
/// offset (`UTC+02:00`).
pub fn zone_name() -> String {
    if utc_shown() {
        return "UTC".into();
    }
    let tz = std::env::var("TZ").ok();
    zone_label(tz.as_deref(), || iana_time_zone::get_timezone().ok(), is_zone_file)
        .unwrap_or_else(|| format!("UTC{}", chrono::Local::now().format("%:z")))
}

/// Where chrono looks for a zone named in `TZ`.
const ZONE_FOLDERS: [&str; 4] = ["/usr/share/zoneinfo", "/share/zoneinfo", "/etc/zoneinfo", "/usr/share/lib/zoneinfo"];

fn is_zone_file(name: &str) -> bool {
    ZONE_FOLDERS.iter().any(|folder| std::path::Path::new(folder).join(name).is_file())
}

/// The name of the zone chrono uses for this `TZ`, as chrono reads it: empty is UTC, `:NAME`
/// or `NAME` a zone file (a path is named by the zone it holds), a POSIX string (`EST5EDT`) as
/// written, and anything else is ignored for the system's zone.
fn zone_label(
    tz: Option<&str>,
    system: impl FnOnce() -> Option<String>,
    is_zone_file: impl Fn(&str) -> bool,
) -> Option<String> {
    let name = match tz {
        None => system()?,
        Some("") => "UTC".to_string(),
        Some(tz) => {
            let name = tz.strip_prefix(':').unwrap_or(tz);
            if name == "/etc/localtime" {
                // The system's zone, which iana-time-zone names from the same link.
                system()?
            } else if name.starts_with('/') {
                let real = std::fs::canonicalize(name).map_or_else(|_| name.to_string(), |p| p.display().to_string());
                match real.find("/zoneinfo/") {
                    Some(at) => real[at + "/zoneinfo/".len()..].to_string(),
                    None => return None,
                }
            } else if is_zone_file(name) || name.chars().any(|c| c.is_ascii_digit()) {
                name.to_string()
            } else {
                system()?
            }
        }
    };
    let utc = ["UTC", "Etc/UTC", "Etc/UCT", "UCT", "Zulu", "Etc/Zulu", "UTC0", "GMT", "GMT0", "Etc/GMT", "Universal"];
    Some(if utc.contains(&name.as_str()) { "UTC".into() } else { name })
}

/// A column header with the zone its times are in: `date (Europe/Berlin)`.
pub fn time_header(label: &str) -> String {
    format!("{label} ({})", zone_name())
}

/// A time as people read it (tables, summaries, web pages): `2025-07-02 15:00` in the local
/// zone (`TZ` respected), or in UTC with `--utc`; `-` when unknown. Name the zone beside it
/// ([`time_header`], [`zone_name`]).
pub fn short_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".to_string(), |t| shown(t).format("%Y-%m-%d %H:%M").to_string())
}

/// The day of a time, in the zone people's times are shown in: `2025-07-02`.
pub fn short_day(t: DateTime<Utc>) -> String {
    shown(t).format("%Y-%m-%d").to_string()
}

fn shown(t: DateTime<Utc>) -> chrono::DateTime<chrono::FixedOffset> {
    if utc_shown() { t.fixed_offset() } else { t.with_timezone(&chrono::Local).fixed_offset() }
}

/// The last instant of a business day in the zone people's times are shown in: what "on
/// 2025-06-18" means for `audit timeline --on` and `audit serve`'s `?on=`.
pub fn end_of_day(date: chrono::NaiveDate) -> DateTime<Utc> {
    use chrono::TimeZone;
    if utc_shown() {
        end_of_day_in(date, |t| chrono::LocalResult::Single(t.and_utc()))
    } else {
        end_of_day_in(date, |t| chrono::Local.from_local_datetime(&t).map(|t| t.with_timezone(&Utc)))
    }
}

/// [`end_of_day`] in the zone `local` resolves wall-clock times in.
fn end_of_day_in(
    date: chrono::NaiveDate,
    local: impl Fn(chrono::NaiveDateTime) -> chrono::LocalResult<DateTime<Utc>>,
) -> DateTime<Utc> {
    let mut next = date.succ_opt().unwrap_or(date).and_hms_opt(0, 0, 0).expect("midnight exists");
    // A midnight skipped by a clock change (America/Santiago): the day after starts at the
    // first wall-clock time that exists, still read in the local zone.
    for _ in 0..24 * 4 {
        if let Some(start) = local(next).earliest() {
            return start - chrono::Duration::nanoseconds(1);
        }
        next += chrono::Duration::minutes(15);
    }
    next.and_utc() - chrono::Duration::nanoseconds(1)
}

/// A time as programs read it: RFC 3339 in UTC, or empty.
pub fn iso_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(String::new, |t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_headers_stack_their_words_and_text_wraps_at_spaces() {
        assert_eq!(stack_words("last complete walk"), "last\ncomplete\nwalk");
        assert_eq!(stack_words("events +"), "events +");
        assert_eq!(stack_words("stream"), "stream");
        let text = "SN-1 (Laptop): in stock at West Coast DC / RETURNS since 2024-03-20 (restocked on SO-8)";
        let wrapped = wrap_to(text, 40);
        assert!(wrapped.lines().all(|l| l.chars().count() <= 40), "{wrapped}");
        assert_eq!(wrapped.replace('\n', " "), text, "only spaces become line breaks");
        assert_eq!(wrap_to("a-very-long-serial-number-indeed", 10), "a-very-long-serial-number-indeed");
        assert_eq!(wrap_to("  indented  twice", 80), "  indented  twice", "spaces kept where nothing breaks");
    }

    #[test]
    fn a_day_whose_next_midnight_is_skipped_ends_when_the_next_day_starts_locally() {
        use chrono::{FixedOffset, NaiveDate, TimeZone};
        // America/Santiago, 2024-09-08: 00:00 at -04:00 becomes 01:00 at -03:00.
        let (before, after) = (FixedOffset::west_opt(4 * 3600).unwrap(), FixedOffset::west_opt(3 * 3600).unwrap());
        let gap_starts = NaiveDate::from_ymd_opt(2024, 9, 8).unwrap().and_hms_opt(0, 0, 0).unwrap();
        let gap_ends = gap_starts + chrono::Duration::hours(1);
        let santiago = |t: chrono::NaiveDateTime| {
            if t < gap_starts {
                before.from_local_datetime(&t).map(|t| t.to_utc())
            } else if t < gap_ends {
                chrono::LocalResult::None
            } else {
                after.from_local_datetime(&t).map(|t| t.to_utc())
            }
        };
        let end = end_of_day_in(NaiveDate::from_ymd_opt(2024, 9, 7).unwrap(), santiago);
        // 01:00 at -03:00 is 04:00 UTC: the whole of the 7th, to its last local instant.
        assert_eq!(end, Utc.with_ymd_and_hms(2024, 9, 8, 4, 0, 0).unwrap() - chrono::Duration::nanoseconds(1));
        let plain = end_of_day_in(NaiveDate::from_ymd_opt(2024, 9, 9).unwrap(), santiago);
        assert_eq!(plain, Utc.with_ymd_and_hms(2024, 9, 10, 3, 0, 0).unwrap() - chrono::Duration::nanoseconds(1));
    }

    #[test]
    fn the_zone_is_named_as_chrono_reads_tz() {
        let system = || Some("America/Toronto".to_string());
        let files = |name: &str| matches!(name, "Europe/Berlin" | "Asia/Kolkata" | "Etc/UTC");
        let label = |tz: Option<&str>| zone_label(tz, system, files);
        assert_eq!(label(None).as_deref(), Some("America/Toronto"));
        assert_eq!(label(Some("Europe/Berlin")).as_deref(), Some("Europe/Berlin"));
        assert_eq!(label(Some(":Asia/Kolkata")).as_deref(), Some("Asia/Kolkata"));
        // Empty is UTC to chrono, not the system's zone.
        assert_eq!(label(Some("")).as_deref(), Some("UTC"));
        assert_eq!(label(Some("UTC0")).as_deref(), Some("UTC"));
        assert_eq!(label(Some("EST5EDT")).as_deref(), Some("EST5EDT"));
        // A path names the zone it holds, never itself.
        assert_eq!(label(Some(":/etc/localtime")).as_deref(), Some("America/Toronto"));
        assert_eq!(label(Some("/no/such/zone")), None, "then the offset is shown");
        // A name chrono cannot load: it uses the system's zone, and so does the label.
        assert_eq!(label(Some("Nowhere/Land")).as_deref(), Some("America/Toronto"));
    }

    #[test]
    fn many_short_columns_split_into_tables_that_fit() {
        let header = [
            "stream",
            "documents",
            "deleted",
            "events",
            "retracted",
            "since",
            "last complete walk",
            "last window walk",
        ];
        let row = |s: &str| {
            [s, "170", "0", "992", "0", "2025-01-01", "2026-11-29 23:53", "2026-11-29 23:53"].map(String::from).to_vec()
        };
        let rows = vec![row("manufacturing-orders"), row("sales-orders")];
        let groups = column_groups(&header, &rows, 80);
        assert!(groups.len() > 1, "{groups:?}");
        assert!(groups.iter().all(|g| g[0] == 0), "each repeats the key column: {groups:?}");
        let all: Vec<usize> = groups.iter().flat_map(|g| g[1..].iter().copied()).collect();
        assert_eq!(all, (1..header.len()).collect::<Vec<_>>(), "every column once, in order");
        assert_eq!(column_groups(&header, &rows, 200).len(), 1, "wide enough: one table");
        assert_eq!(wrap_to("a b", 80), "a b");
    }

    #[test]
    fn a_vertical_record_puts_each_column_on_its_own_line() {
        let header = ["serial", "location_name"];
        let row = ["SN-1".to_string(), "Main\nWarehouse".to_string()];
        let shown = vertical_record(3, &header, &row);
        let lines: Vec<&str> = shown.lines().collect();
        assert!(lines[0].starts_with("-[ RECORD 3 ]-"), "{shown}");
        assert_eq!(lines[1], "serial        | SN-1");
        assert_eq!(lines[2], "location_name | Main\\nWarehouse", "escaped like any table cell");
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn wide_characters_count_as_the_two_columns_they_take() {
        // Serials and places typed in Japanese: two terminal columns a character.
        assert_eq!((display_width("シリアル"), "シリアル".chars().count()), (8, 4));
        let text = "倉庫 東京 第一倉庫 出荷 待ち 返品 受付 済み 検品 中 棚番 A-12";
        let wrapped = wrap_to(text, 12);
        assert!(wrapped.lines().all(|l| display_width(l) <= 12), "{wrapped}");
        assert_eq!(wrapped.replace('\n', " "), text);
        // A record's separators line up on screen whatever the column names' script.
        let shown = vertical_record(1, &["serial", "場所"], &["SN-1".into(), "東京".into()]);
        let bars: Vec<usize> = shown.lines().skip(1).map(|l| display_width(&l[..l.find('|').unwrap()])).collect();
        assert_eq!(bars, [7, 7], "{shown}");
        // A column of wide serials is measured as it shows: over 20 columns, it may wrap.
        let mut t = bare_table();
        add_row(&mut t, vec!["製品シリアル番号一二三四五".into()]);
        assert!(matches!(t.column(0).unwrap().constraint(), Some(comfy_table::ColumnConstraint::LowerBoundary(_))));
    }

    #[test]
    fn long_stderr_lines_break_between_words_not_inside_an_id() {
        let guid = "771a173f-a54a-45a8-b0c0-b0d615aa9671";
        let line = format!("WARN sales order SO-000123 ({guid}) names an unknown location {guid}; its events are kept");
        let fitted = wrap_to(&line, 80);
        assert!(fitted.lines().all(|l| l.chars().count() <= 80), "{fitted}");
        assert_eq!(fitted.matches(guid).count(), 2, "each id whole: {fitted}");
    }

    #[test]
    fn a_rendered_table_has_no_trailing_spaces() {
        let mut t = table(&["serial", "where"]);
        add_row(&mut t, vec!["SN-1".into(), "Main warehouse".into()]);
        add_row(&mut t, vec!["SN-000002".into(), "-".into()]);
        assert!(t.to_string().lines().any(|l| l.ends_with(' ')), "comfy-table pads the last column");
        let shown = render(&t);
        assert!(shown.lines().all(|l| !l.ends_with(' ')), "{shown:?}");
        assert_eq!(shown.lines().count(), 3);
        assert!(shown.lines().nth(2).unwrap().ends_with("SN-000002  -"), "{shown:?}");
    }

    #[test]
    fn short_columns_stay_whole_and_wide_ones_wrap_to_fit() {
        let mut table = bare_table();
        table.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
        table.set_width(40);
        let long = "West Coast Distribution Centre / Receiving dock 4".to_string();
        add_row(&mut table, vec!["2024-02-05 15:00".into(), long.clone(), "+1".into()]);
        add_row(&mut table, vec!["2024-02-06 15:00".into(), "Main".into(), "-1".into()]);
        let shown = table.to_string();
        assert!(shown.lines().all(|l| l.trim_end().chars().count() <= 40), "{shown}");
        assert!(shown.lines().filter(|l| l.contains("2024-02-0")).count() == 2, "dates whole: {shown}");
        assert!(shown.lines().count() > 2, "the wide column wrapped: {shown}");
    }

    #[test]
    fn a_closed_stdout_is_told_apart_from_other_broken_pipes() {
        let closed = || std::io::Error::new(std::io::ErrorKind::BrokenPipe, StdoutClosed);
        assert!(is_stdout_closed(&closed()));
        let mut w = csv::Writer::from_writer(FailingWriter);
        let csv_error = w.write_record(["a"]).and_then(|_| w.flush().map_err(csv::Error::from)).unwrap_err();
        assert!(is_stdout_closed(&csv_error));
        assert!(is_stdout_closed(&std::io::Error::other(csv_error)));
        let wrapped = anyhow::Error::new(closed()).context("writing the result");
        assert!(is_stdout_closed(wrapped.as_ref()));
        // A socket's broken pipe is an error to report.
        assert!(!is_stdout_closed(&std::io::Error::from(std::io::ErrorKind::BrokenPipe)));
    }

    struct FailingWriter;
    impl Write for FailingWriter {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, StdoutClosed))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn control_characters_are_shown_escaped_and_other_text_is_untouched() {
        assert!(matches!(printable("SN-001 ünïcödé 序列"), Cow::Borrowed(_)));
        assert_eq!(printable("SN\u{1b}[31mRED\u{7}"), "SN\\u{1b}[31mRED\\u{7}");
        assert_eq!(printable("a\nb\tc\rd"), "a\\nb\\tc\\rd");
        assert_eq!(printable("\u{9b}2J \u{202e}txt.exe"), "\\u{9b}2J \\u{202e}txt.exe");
    }
}
