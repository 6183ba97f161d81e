//! Client-side pacing under inFlow's two sliding windows (per minute and per hour).
//!
//! The quota is per company and shared with its other integrations, so `audit` waits *before*
//! sending rather than waiting for a 429. Send times are kept per window; a request goes out
//! only when every window has room. The server counts arrivals, which fall somewhere between a
//! send and its answer: a request that travelled faster than its predecessor could land inside
//! the previous window. So each request counts from its answer once that is in (a slow network
//! or a loaded machine cannot bring about a 429), and the windows are measured a little longer
//! than their nominal length for the requests still in flight.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Requests allowed per window, and how long a window is (shortened in tests).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Requests allowed in any one minute.
    pub per_minute: u32,
    /// Requests allowed in any one hour (60 `minute`s).
    pub per_hour: u32,
    /// The length of a "minute"; tests compress time against the simulator's scaled clock.
    pub minute: Duration,
}

impl RateLimits {
    /// inFlow's documented limits.
    pub const INFLOW: RateLimits = RateLimits { per_minute: 60, per_hour: 1000, minute: Duration::from_secs(60) };

    /// The length of an hour: 60 `minute`s, so tests compress it too.
    pub fn hour(&self) -> Duration {
        self.minute * 60
    }
}

#[derive(Debug)]
struct Window {
    limit: usize,
    length: Duration,
    sent: VecDeque<Instant>,
}

impl Window {
    fn new(limit: u32, length: Duration) -> Window {
        // 2% of slack, see the module comment.
        Window { limit: limit.max(1) as usize, length: length + length / 50, sent: VecDeque::new() }
    }

    /// When the next request may go out, given the sends so far.
    fn ready_at(&mut self, now: Instant) -> Instant {
        while self.sent.front().is_some_and(|t| now.duration_since(*t) >= self.length) {
            self.sent.pop_front();
        }
        if self.sent.len() < self.limit { now } else { self.sent[self.sent.len() - self.limit] + self.length }
    }
}

#[derive(Debug)]
struct State {
    windows: [Window; 2],
    /// Set by a 429's Retry-After or a server that says its window is full.
    paused_until: Option<Instant>,
}

/// A request's place in the windows, to be moved to its answer by [`Pacer::answered`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a slot is given back to `Pacer::answered` once the answer is in"]
pub struct Slot(Instant);

/// Told how long each wait for a send slot will be, as it starts (a progress line shows it).
pub type WaitObserver = Arc<dyn Fn(Duration) + Send + Sync>;

/// Hands out send slots under both windows; shared by all requests of a client.
pub struct Pacer {
    state: Mutex<State>,
    observer: std::sync::Mutex<Option<WaitObserver>>,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer").field("state", &self.state).finish_non_exhaustive()
    }
}

/// Waits this long or longer are logged at -v; every wait at -vv.
const NOTABLE_WAIT: Duration = Duration::from_secs(1);

impl Pacer {
    /// A pacer with empty windows, nothing sent yet.
    pub fn new(limits: RateLimits) -> Pacer {
        Pacer {
            state: Mutex::new(State {
                windows: [Window::new(limits.per_minute, limits.minute), Window::new(limits.per_hour, limits.hour())],
                paused_until: None,
            }),
            observer: std::sync::Mutex::new(None),
        }
    }

    /// Tells `observer` of every wait from now on.
    pub fn observe_waits(&self, observer: WaitObserver) {
        *self.observer.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(observer);
    }

    fn waiting(&self, wait: Duration) {
        if wait >= NOTABLE_WAIT {
            tracing::info!("waiting for the rate limit, {} s", wait.as_secs_f64().ceil());
        } else {
            tracing::debug!("waiting for the rate limit, {wait:.1?}");
        }
        let observer = self.observer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if let Some(observer) = observer {
            observer(wait);
        }
    }

    /// Waits until a request may be sent and records it as sent.
    pub async fn acquire(&self) -> Slot {
        loop {
            let wait_until = {
                let mut state = self.state.lock().await;
                let now = Instant::now();
                let mut at = state.paused_until.filter(|p| *p > now).unwrap_or(now);
                for w in &mut state.windows {
                    at = at.max(w.ready_at(now));
                }
                if at <= now {
                    for w in &mut state.windows {
                        w.sent.push_back(now);
                    }
                    return Slot(now);
                }
                at
            };
            self.waiting(wait_until.saturating_duration_since(Instant::now()));
            tokio::time::sleep_until(wait_until).await;
        }
    }

    /// The answer to the request sent in `slot` is in: from now on it counts from this moment,
    /// the latest the server can have counted it.
    pub async fn answered(&self, slot: Slot) {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        for w in &mut state.windows {
            match w.sent.iter().rposition(|t| *t == slot.0) {
                Some(at) => w.sent[at] = now,
                // Already out of the window (an answer slower than the window): count it anew.
                None => w.sent.push_back(now),
            }
            // Answers of overlapping requests can come back in another order than they left.
            w.sent.make_contiguous().sort_unstable();
        }
    }

    /// Holds every request back until `until` (a 429's Retry-After).
    pub async fn pause_until(&self, until: Instant) {
        let mut state = self.state.lock().await;
        state.paused_until = Some(state.paused_until.map_or(until, |p| p.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_minute: u32, per_hour: u32) -> RateLimits {
        RateLimits { per_minute, per_hour, minute: Duration::from_secs(60) }
    }

    /// Sends `n` requests as fast as the pacer allows and returns their offsets from the start.
    async fn send_times(pacer: &Pacer, n: usize) -> Vec<Duration> {
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..n {
            let slot = pacer.acquire().await;
            times.push(start.elapsed());
            pacer.answered(slot).await;
        }
        times
    }

    /// The most sends inside any window of `length`.
    fn busiest(times: &[Duration], length: Duration) -> usize {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| times[i..].iter().take_while(|u| **u - *t < length).count())
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn the_minute_window_is_never_exceeded_and_is_used_fully() {
        let pacer = Pacer::new(limits(30, 1000));
        let times = send_times(&pacer, 95).await;
        assert_eq!(busiest(&times, Duration::from_secs(60)), 30);
        // The first 30 go at once; then one more per freed slot.
        assert_eq!(times[29], Duration::ZERO);
        assert!(times[30] >= Duration::from_secs(60) && times[30] <= Duration::from_secs(62), "{:?}", times[30]);
        assert!(times[94] <= Duration::from_secs(3 * 62), "{:?}", times[94]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_hour_window_binds_when_the_minute_one_does_not() {
        let pacer = Pacer::new(limits(60, 100));
        let times = send_times(&pacer, 130).await;
        assert_eq!(busiest(&times, Duration::from_secs(3600)), 100);
        assert_eq!(busiest(&times, Duration::from_secs(60)), 60);
        assert!(times[100] >= Duration::from_secs(3600), "{:?}", times[100]);
    }

    /// A request counts from its answer: the server may have counted it as late as that, so a
    /// slow answer cannot let a later request land inside a full window.
    #[tokio::test(start_paused = true)]
    async fn a_request_counts_from_its_answer() {
        let pacer = Pacer::new(limits(30, 1000));
        let start = Instant::now();
        for _ in 0..30 {
            let slot = pacer.acquire().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            pacer.answered(slot).await;
        }
        let _ = pacer.acquire().await;
        // The first answer came at 1 s; the window with its 2% of slack is 61.2 s.
        assert!(start.elapsed() >= Duration::from_millis(62_200), "{:?}", start.elapsed());
        // Overlapping requests answered out of order keep the window sorted.
        let pacer = Pacer::new(limits(2, 1000));
        let (a, b) = (pacer.acquire().await, pacer.acquire().await);
        tokio::time::sleep(Duration::from_secs(2)).await;
        pacer.answered(b).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        pacer.answered(a).await;
        let start = Instant::now();
        let _ = pacer.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_millis(61_200) - Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_request_back() {
        let pacer = Pacer::new(limits(60, 1000));
        let _ = pacer.acquire().await;
        pacer.pause_until(Instant::now() + Duration::from_secs(5)).await;
        let start = Instant::now();
        let _ = pacer.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }
}
