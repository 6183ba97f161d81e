//! Two sliding rate-limit windows per company: a minute and an hour.
//!
//! Defaults are the documented 60 per minute and the 1000 per hour that S5 observed. Every API
//! response carries `x-inflow-api-rate-limit: <used>/<max>` (minute window) and
//! `x-ratelimit-limit: <used>/<max>` (hour window). The reference leaves the meaning of the
//! first number open (S5 reads "used", S11 "left"); the simulator sends **used**, counting the
//! current request. A request over either limit gets 429 with `Retry-After` (the real seconds
//! until the oldest request of the full window leaves it: an integer when at least one second,
//! otherwise a decimal such as `0.042`) and is not counted. With rate limiting disabled no
//! request is refused and the two headers are not sent, so a client that throttles itself on
//! them does not slow down benchmarks.
//!
//! `time_scale` shrinks the windows: 0.001 makes a minute 60 ms and an hour 3.6 s.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Limits per company.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    pub per_minute: u32,
    pub per_hour: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit { per_minute: 60, per_hour: 1000 }
    }
}

/// What the limiter decided for one request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Decision {
    Allowed { minute: u32, hour: u32 },
    Limited { retry_after: Duration, minute: u32, hour: u32 },
}

#[derive(Debug, Default)]
pub(crate) struct Limiter {
    minute: VecDeque<Instant>,
    hour: VecDeque<Instant>,
}

fn window(base_secs: f64, time_scale: f64) -> Duration {
    Duration::try_from_secs_f64((base_secs * time_scale).max(0.000_001))
        .unwrap_or(Duration::from_secs(base_secs as u64))
}

impl Limiter {
    fn prune(&mut self, now: Instant, time_scale: f64) {
        let (m, h) = (window(60.0, time_scale), window(3600.0, time_scale));
        while self.minute.front().is_some_and(|t| *t + m <= now) {
            self.minute.pop_front();
        }
        while self.hour.front().is_some_and(|t| *t + h <= now) {
            self.hour.pop_front();
        }
    }

    /// Counts the request if both windows have room.
    pub fn check(&mut self, limit: RateLimit, time_scale: f64, now: Instant) -> Decision {
        self.prune(now, time_scale);
        let mut retry = Duration::ZERO;
        if self.minute.len() as u32 >= limit.per_minute {
            let oldest = self.minute.front().copied().unwrap_or(now);
            retry = retry.max((oldest + window(60.0, time_scale)).saturating_duration_since(now));
        }
        if self.hour.len() as u32 >= limit.per_hour {
            let oldest = self.hour.front().copied().unwrap_or(now);
            retry = retry.max((oldest + window(3600.0, time_scale)).saturating_duration_since(now));
        }
        let full = self.minute.len() as u32 >= limit.per_minute || self.hour.len() as u32 >= limit.per_hour;
        if full {
            return Decision::Limited {
                retry_after: retry,
                minute: self.minute.len() as u32,
                hour: self.hour.len() as u32,
            };
        }
        self.minute.push_back(now);
        self.hour.push_back(now);
        Decision::Allowed { minute: self.minute.len() as u32, hour: self.hour.len() as u32 }
    }

    /// The windows' use without counting a request (for 401/404 answers).
    pub fn peek(&mut self, time_scale: f64, now: Instant) -> (u32, u32) {
        self.prune(now, time_scale);
        (self.minute.len() as u32, self.hour.len() as u32)
    }

    pub fn reset(&mut self) {
        self.minute.clear();
        self.hour.clear();
    }
}

/// `Retry-After` value: whole seconds (rounded up) from one second on, else milliseconds as a
/// decimal (`0.042`), never zero.
pub(crate) fn format_retry_after(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        secs.to_string()
    } else {
        let ms = d.as_nanos().div_ceil(1_000_000).max(1);
        format!("0.{ms:03}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_formats() {
        assert_eq!(format_retry_after(Duration::from_millis(42)), "0.042");
        assert_eq!(format_retry_after(Duration::from_micros(1)), "0.001");
        assert_eq!(format_retry_after(Duration::from_millis(999)), "0.999");
        assert_eq!(format_retry_after(Duration::from_secs(1)), "1");
        assert_eq!(format_retry_after(Duration::from_millis(1500)), "2");
        assert_eq!(format_retry_after(Duration::from_secs(60)), "60");
    }

    #[test]
    fn minute_window_refuses_then_frees() {
        let mut l = Limiter::default();
        let lim = RateLimit { per_minute: 2, per_hour: 10 };
        let t0 = Instant::now();
        assert_eq!(l.check(lim, 1.0, t0), Decision::Allowed { minute: 1, hour: 1 });
        assert_eq!(l.check(lim, 1.0, t0), Decision::Allowed { minute: 2, hour: 2 });
        match l.check(lim, 1.0, t0 + Duration::from_secs(10)) {
            Decision::Limited { retry_after, .. } => {
                assert_eq!(retry_after, Duration::from_secs(50))
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Refused requests are not counted: after the window the count starts from zero.
        assert_eq!(l.check(lim, 1.0, t0 + Duration::from_secs(60)), Decision::Allowed { minute: 1, hour: 3 });
    }

    #[test]
    fn hour_window_binds_with_a_scaled_clock() {
        let mut l = Limiter::default();
        let lim = RateLimit { per_minute: 100, per_hour: 3 };
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(matches!(l.check(lim, 0.001, t0), Decision::Allowed { .. }));
        }
        // 3.6 s is the scaled hour.
        match l.check(lim, 0.001, t0 + Duration::from_millis(600)) {
            Decision::Limited { retry_after, hour, .. } => {
                assert_eq!(hour, 3);
                assert_eq!(retry_after, Duration::from_millis(3000));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
