//! Figure 2: quota use under inFlow's limits, on a compressed clock.
//!
//! The simulator enforces 60 requests per minute and 1000 per hour with its windows shrunk by
//! `time_scale`; `audit ingest` paces itself to the same limits with the same `--time-scale`.
//! The run re-reads the large company (nothing changed, so the database is not what limits it)
//! and is stopped by `--max-requests` once it has outgrown the hour window.
//!
//! From the simulator's request log (arrival times, `RequestRecord.at`):
//! - 429s: answers refused for the rate limit (goal 0).
//! - busiest minute / busiest hour: the most requests inside any sliding window of that length,
//!   divided by the limit. It shows the client uses its whole allowance in a burst, never more.
//! - sustained hourly rate: with t_k the k-th arrival and L = 1000, the window starting at t_k
//!   holds L requests when t_(k+L) is the first one after it, so L requests take
//!   t_(k+L) - t_k; the rate is L x hour / median over k of (t_(k+L) - t_k), divided by L.
//!   It is what a long backfill gets per hour once the first burst is spent.

use std::time::Duration;

use inflow_simulator::{RateLimit, Simulator};
use serde_json::json;

use crate::env;
use crate::procs;
use crate::report::{Figure, Goal};

pub const PER_MINUTE: u32 = 60;
pub const PER_HOUR: u32 = 1000;

pub async fn run(
    sim: &Simulator,
    db_url: &str,
    time_scale: f64,
    max_requests: u64,
    logs: &std::path::Path,
) -> Vec<Figure> {
    let scale_note = format!("minute = {:.0} ms", 60_000.0 * time_scale);
    let f429 = Figure::new("2a", "quota: 429 answers received", "429s", Goal::ValueAtMost { value: 0.0 }, "");
    let fmin =
        Figure::new("2b", "quota: busiest sliding minute", "requests", Goal::RatioAtLeast { ratio: 0.95 }, "limit");
    let fhour =
        Figure::new("2c", "quota: busiest sliding hour", "requests", Goal::RatioAtLeast { ratio: 0.95 }, "limit");
    let frate = Figure::new(
        "2d",
        "quota: sustained requests per hour",
        "requests",
        Goal::RatioAtLeast { ratio: 0.95 },
        "limit",
    );
    let fail = |why: String| {
        vec![
            f429.clone().failed(&why),
            fmin.clone().failed(&why),
            fhour.clone().failed(&why),
            frate.clone().failed(&why),
        ]
    };

    sim.set_rate_limit(Some(RateLimit { per_minute: PER_MINUTE, per_hour: PER_HOUR }));
    sim.clear_requests();
    let mut cmd = env::audit_ingest(db_url, sim);
    cmd.args(["--max-per-minute", &PER_MINUTE.to_string(), "--max-per-hour", &PER_HOUR.to_string()]).args([
        "--time-scale",
        &time_scale.to_string(),
        "--max-requests",
        &max_requests.to_string(),
    ]);
    let logs = logs.to_path_buf();
    let done = tokio::task::spawn_blocking(move || procs::run(&mut cmd, &logs, "quota", None)).await;
    sim.set_rate_limit(None);
    let done = match done {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return fail(format!("cannot run audit: {e}")),
        Err(e) => return fail(e.to_string()),
    };
    if !done.success() {
        return fail(format!("audit ingest failed: {}", done.describe()));
    }
    let log: Vec<_> = sim.requests().into_iter().filter(|r| r.endpoint != "_sim").collect();
    let refused = log.iter().filter(|r| r.status == 429).count();
    let mut times: Vec<f64> = log
        .iter()
        .filter(|r| r.status != 429)
        .filter_map(|r| r.at.timestamp_nanos_opt())
        .map(|ns| ns as f64 / 1e9)
        .collect();
    times.sort_by(f64::total_cmp);
    let minute = 60.0 * time_scale;
    let hour = 3600.0 * time_scale;
    let n = times.len();
    if (n as u64) <= u64::from(PER_HOUR) {
        return fail(format!("the run sent {n} requests, not more than the hourly limit; raise --quota-requests"));
    }
    let span = times[n - 1] - times[0];
    let details = json!({
        "time_scale": time_scale,
        "minute_s": minute,
        "hour_s": hour,
        "requests": n,
        "refused_429": refused,
        "span_hours": span / hour,
        "wall_s": done.wall.as_secs_f64(),
    });
    let busiest_minute = busiest(&times, minute);
    let busiest_hour = busiest(&times, hour);
    let l = PER_HOUR as usize;
    let mut spans: Vec<f64> = (0..n - l).map(|k| times[k + l] - times[k]).collect();
    spans.sort_by(f64::total_cmp);
    let median_span = spans[spans.len() / 2];
    let sustained = l as f64 * hour / median_span;
    vec![
        f429.measured(refused as f64, None, None)
            .note(format!("{n} requests over {:.2} hours ({scale_note})", span / hour))
            .details(details),
        fmin.measured(busiest_minute as f64, Some(f64::from(PER_MINUTE)), None),
        fhour.measured(busiest_hour as f64, Some(f64::from(PER_HOUR)), None),
        frate.measured(sustained, Some(f64::from(PER_HOUR)), None).details(json!({
            "median_seconds_per_1000": median_span,
            "min_seconds_per_1000": spans[0],
            "windows": spans.len(),
        })),
    ]
}

/// The most arrivals inside any window [t, t + length).
fn busiest(times: &[f64], length: f64) -> usize {
    let mut best = 0;
    let mut end = 0;
    for start in 0..times.len() {
        while end < times.len() && times[end] < times[start] + length {
            end += 1;
        }
        best = best.max(end - start);
    }
    best
}

/// The compressed clock for figure 2: a minute short enough for a quick run, long enough that
/// the limit, not the client's own speed, sets the pace: the minute's 60 requests fit in half
/// of it at the speed figure 1 measured.
pub fn choose_time_scale(rerun_requests_per_second: Option<f64>) -> f64 {
    match rerun_requests_per_second {
        Some(rate) if rate > 0.0 => (2.0 / rate).clamp(0.004, 0.05),
        _ => 0.01,
    }
}

/// About how long the quota run takes.
pub fn expected_duration(time_scale: f64, requests: u64) -> Duration {
    // The first 1000 at the minute rate, the rest after the first hour (plus the pacer's 2%).
    let minutes = if requests <= u64::from(PER_HOUR) {
        requests as f64 / f64::from(PER_MINUTE)
    } else {
        61.2 + (requests - u64::from(PER_HOUR)) as f64 / f64::from(PER_MINUTE)
    };
    Duration::from_secs_f64(minutes * 60.0 * time_scale)
}
