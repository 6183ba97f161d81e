//! The figures, the printed table and the JSON file.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

/// What a figure's goal asks of it.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Goal {
    /// value / baseline must equal this (to two decimals).
    RatioEquals { ratio: f64 },
    /// value / baseline at most this.
    RatioAtMost { ratio: f64 },
    /// value / baseline at least this.
    RatioAtLeast { ratio: f64 },
    /// The value itself at most this.
    ValueAtMost { value: f64 },
    /// The value itself under this.
    ValueBelow { value: f64 },
    /// The value below `value` and value / baseline at most `ratio` (memory: small and flat).
    BelowAndRatioAtMost { value: f64, ratio: f64 },
}

impl Goal {
    fn text(&self, unit: &str) -> String {
        match *self {
            Goal::RatioEquals { ratio } => format!("ratio {ratio:.2}"),
            Goal::RatioAtMost { ratio } => format!("ratio <= {ratio}"),
            Goal::RatioAtLeast { ratio } => format!("ratio >= {ratio}"),
            Goal::ValueAtMost { value } => format!("<= {}", plain(value, unit)),
            Goal::ValueBelow { value } => format!("< {}", plain(value, unit)),
            Goal::BelowAndRatioAtMost { value, ratio } => format!("< {}, ratio <= {ratio:.2}", plain(value, unit)),
        }
    }

    fn met(&self, value: f64, ratio: Option<f64>) -> bool {
        let r2 = |r: f64| (r * 100.0).round() / 100.0;
        match *self {
            Goal::RatioEquals { ratio: want } => ratio.is_some_and(|r| r2(r) == want),
            Goal::RatioAtMost { ratio: max } => ratio.is_some_and(|r| r2(r) <= max),
            Goal::RatioAtLeast { ratio: min } => ratio.is_some_and(|r| r2(r) >= min),
            Goal::ValueAtMost { value: max } => value <= max,
            Goal::ValueBelow { value: max } => value < max,
            Goal::BelowAndRatioAtMost { value: max, ratio: max_ratio } => {
                value < max && ratio.is_some_and(|r| r2(r) <= max_ratio)
            }
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// `1a`, `3b`, ...
    pub id: String,
    pub name: String,
    /// `requests`, `events/s`, `MB`, `ms`, `share`, `429s`.
    pub unit: String,
    pub value: Option<f64>,
    pub baseline: Option<f64>,
    /// What the baseline is, in a few words.
    pub baseline_name: String,
    /// value / baseline, or a ratio defined by the figure (ingest time / bulk-load time).
    pub ratio: Option<f64>,
    pub goal: Goal,
    pub goal_text: String,
    /// `None` when the figure could not be measured.
    pub met: Option<bool>,
    /// Why it could not be measured, or a short remark.
    pub note: String,
    /// `not_available` slots (a subcommand that has not landed) do not fail the run.
    pub status: Status,
    /// Everything else measured along the way, for the JSON file.
    pub details: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Measured,
    NotAvailable,
    Failed,
}

impl Figure {
    pub fn new(id: &str, name: impl Into<String>, unit: &str, goal: Goal, baseline_name: impl Into<String>) -> Figure {
        Figure {
            id: id.into(),
            name: name.into(),
            unit: unit.into(),
            value: None,
            baseline: None,
            baseline_name: baseline_name.into(),
            ratio: None,
            goal,
            goal_text: goal.text(unit),
            met: None,
            note: String::new(),
            status: Status::Failed,
            details: Value::Null,
        }
    }

    /// Records a measurement; the ratio is value / baseline unless `ratio` is given.
    pub fn measured(mut self, value: f64, baseline: Option<f64>, ratio: Option<f64>) -> Figure {
        self.value = Some(value);
        self.baseline = baseline;
        self.ratio = ratio.or_else(|| baseline.filter(|b| *b != 0.0).map(|b| value / b));
        self.met = Some(self.goal.met(value, self.ratio));
        self.status = Status::Measured;
        self
    }

    pub fn failed(mut self, why: impl Into<String>) -> Figure {
        self.note = format!("not measurable: {}", why.into());
        self.status = Status::Failed;
        self.met = None;
        self
    }

    pub fn not_available(mut self, why: impl Into<String>) -> Figure {
        self.note = format!("not measurable: {}", why.into());
        self.status = Status::NotAvailable;
        self.met = None;
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Figure {
        self.note = note.into();
        self
    }

    pub fn details(mut self, details: Value) -> Figure {
        self.details = details;
        self
    }
}

/// A number as the table shows it, with its unit.
pub fn plain(v: f64, unit: &str) -> String {
    match unit {
        "MB" => format!("{v:.0} MB"),
        "ms" => format!("{v:.1} ms"),
        "events/s" => format!("{} ev/s", thousands(v.round() as i64)),
        "share" => format!("{v:.3}"),
        _ if v.fract() == 0.0 && v.abs() < 1e15 => thousands(v as i64),
        _ => format!("{v:.2}"),
    }
}

pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// The table printed at the end.
pub fn table(figures: &[Figure]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::ASCII_MARKDOWN)
        .set_header(vec!["#", "figure", "value", "baseline", "ratio", "goal", "met?"]);
    for f in figures {
        let value = f.value.map_or_else(|| "-".to_string(), |v| plain(v, &f.unit));
        let baseline = match f.baseline {
            Some(b) => format!("{} ({})", plain(b, &f.unit), f.baseline_name),
            None if f.baseline_name.is_empty() => "-".into(),
            None => format!("- ({})", f.baseline_name),
        };
        let ratio = f.ratio.map_or_else(|| "-".to_string(), |r| format!("{r:.2}"));
        let met = match (f.status, f.met) {
            (_, Some(true)) => "yes".to_string(),
            (_, Some(false)) => "NO".to_string(),
            (Status::NotAvailable, None) => "n/a".to_string(),
            (_, None) => "FAILED".to_string(),
        };
        let name = if f.note.is_empty() { f.name.clone() } else { format!("{}\n  {}", f.name, f.note) };
        t.add_row(vec![f.id.clone(), name, value, baseline, ratio, f.goal_text.clone(), met]);
    }
    t.to_string()
}

/// Writes the whole run as JSON.
pub fn write_json(path: &Path, figures: &[Figure], context: &Value) -> std::io::Result<()> {
    let doc = serde_json::json!({ "context": context, "figures": figures });
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
}

/// A summary line per figure not met, for the end of the output.
pub fn misses(figures: &[Figure]) -> String {
    let mut out = String::new();
    for f in figures.iter().filter(|f| f.met == Some(false)) {
        let _ = writeln!(out, "  {} {}: {}", f.id, f.name, f.goal_text);
    }
    out
}
