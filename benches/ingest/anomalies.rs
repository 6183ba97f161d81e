//! Figure 7: `audit anomalies` as a whole process over the databases of figure 5 (10 million
//! events), against a full scan of `serial_events` by the database's own client, started fresh
//! each time: `sqlite3 DB "SELECT * FROM serial_events"` and `psql -c "COPY serial_events TO
//! STDOUT"`, their output discarded. Both read every event once; `audit anomalies` must also
//! judge them.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::env;
use crate::report::{Figure, Goal};

pub fn blank(id: &str, backend: &str) -> Figure {
    let client = if backend == "SQLite" { "sqlite3 full scan" } else { "psql full scan" };
    Figure::new(id, format!("audit anomalies, {backend}"), "s", Goal::RatioAtMost { ratio: 3.0 }, client)
}

/// Runs `cmd` to its end with its output discarded; (wall time, exit status, stderr).
fn timed(cmd: &mut Command) -> Result<(Duration, Option<i32>, String), String> {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let started = Instant::now();
    let out = cmd.output().map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    Ok((started.elapsed(), out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned()))
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Times `runs` of each command, alternating which goes first, after one untimed run of each.
pub fn measure(id: &str, backend: &str, db_url: &str, events: u64, runs: usize) -> Figure {
    let figure = blank(id, backend);
    let sqlite = db_url.strip_prefix("sqlite://");
    let client = || -> Command {
        match sqlite {
            Some(path) => {
                let mut c = Command::new("sqlite3");
                c.args(["-batch", path, "SELECT * FROM serial_events"]);
                c
            }
            None => {
                let mut c = env::psql(db_url);
                c.args(["-c", "COPY serial_events TO STDOUT"]);
                c
            }
        }
    };
    let audit = || -> Command {
        let mut c = env::audit(db_url);
        c.args(["anomalies", "--format", "json"]);
        c
    };
    // The plan of the view, for the record (EXPLAIN without running it).
    let plan = match sqlite {
        Some(path) => {
            Command::new("sqlite3").args([path, "EXPLAIN QUERY PLAN SELECT * FROM serial_anomalies"]).output()
        }
        None => env::psql(db_url).args(["-A", "-t", "-c", "EXPLAIN SELECT * FROM serial_anomalies"]).output(),
    }
    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    .unwrap_or_default();
    let mut found = None;
    for warm in &mut [client(), audit()] {
        if let Err(why) = timed(warm) {
            return figure.failed(why);
        }
    }
    let (mut audit_s, mut client_s) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let order = if i % 2 == 0 { [true, false] } else { [false, true] };
        for audit_first in order {
            let (wall, code, stderr) = match timed(&mut if audit_first { audit() } else { client() }) {
                Ok(t) => t,
                Err(why) => return figure.failed(why),
            };
            if audit_first {
                // 0: none found, 1: some found; anything else is a failure.
                if !matches!(code, Some(0 | 1)) {
                    return figure.failed(format!("audit anomalies exited {code:?}: {}", stderr.trim()));
                }
                found = Some(stderr.lines().last().unwrap_or_default().to_string());
                audit_s.push(wall.as_secs_f64());
            } else {
                if code != Some(0) {
                    return figure.failed(format!("the client exited {code:?}: {}", stderr.trim()));
                }
                client_s.push(wall.as_secs_f64());
            }
        }
    }
    let (a, c) = (median(&audit_s), median(&client_s));
    let found = found.unwrap_or_default();
    figure
        .measured(a, Some(c), None)
        .note(format!("median of {runs} runs over {} events; {found}", crate::report::thousands(events as i64)))
        .details(
            json!({ "events": events, "audit_s": audit_s, "client_s": client_s, "audit_says": found, "plan": plan }),
        )
}
