//! Stopping a run from outside: a signal, or the ingest lock taken over.
//!
//! [`StopFlag`] is shared by the signal handler, the lock's heartbeat, the ingest and the inFlow
//! client. Set, it cuts every wait short (a rate-limit slot, a backoff pause, a `Retry-After`, a
//! request in flight, the lock), so the run saves its position and ends within seconds. A second
//! signal *forces* the stop: the page being written is abandoned (its transaction rolls back)
//! and the run is recorded as interrupted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// Set from outside (a signal handler, the lock's heartbeat) to end the run, with the reason.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    reason: AtomicU8,
    forced: AtomicBool,
    changed: tokio::sync::Notify,
}

const NOT_STOPPED: u8 = 0;
const SIGNAL: u8 = 1;
const LOCK_LOST: u8 = 2;

/// Why a run ended before finishing its walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The request budget (`--max-requests`) is spent.
    Budget,
    /// A signal (Ctrl-C, SIGTERM).
    Signal,
    /// Another process took the ingest lock over (this one was silent too long).
    LockLost,
}

impl StopFlag {
    /// A signal: the process is to end.
    pub fn stop(&self) {
        self.0.reason.store(SIGNAL, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }

    /// A second signal: end now, abandoning the page being written.
    pub fn force(&self) {
        self.0.reason.store(SIGNAL, Ordering::SeqCst);
        self.0.forced.store(true, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }

    /// The ingest lock was taken over: this run must end, the process may go on.
    pub fn lock_lost(&self) {
        let _ = self.0.reason.compare_exchange(NOT_STOPPED, LOCK_LOST, Ordering::SeqCst, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }

    /// Whether the run is to end.
    pub fn is_set(&self) -> bool {
        self.reason().is_some()
    }

    /// Whether a second signal forced the stop.
    pub fn is_forced(&self) -> bool {
        self.0.forced.load(Ordering::SeqCst)
    }

    /// Why the run is to end, if it is.
    pub fn reason(&self) -> Option<StopReason> {
        match self.0.reason.load(Ordering::SeqCst) {
            SIGNAL => Some(StopReason::Signal),
            LOCK_LOST => Some(StopReason::LockLost),
            _ => None,
        }
    }

    /// Forgets a lost lock (a scheduled loop's next run takes the lock anew); a signal stays.
    pub fn clear_lock_lost(&self) {
        let _ = self.0.reason.compare_exchange(LOCK_LOST, NOT_STOPPED, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Resolves once the flag is set (at once if it is).
    pub async fn stopped(&self) {
        self.until(|| self.is_set()).await
    }

    /// Resolves once the stop is forced.
    pub async fn forced(&self) {
        self.until(|| self.is_forced()).await
    }

    async fn until(&self, done: impl Fn() -> bool) {
        loop {
            // Registered before the check: a change in between still wakes it.
            let changed = self.0.changed.notified();
            if done() {
                return;
            }
            changed.await;
        }
    }

    /// Sleeps until `deadline`, or less if the flag is set meanwhile.
    pub async fn sleep_until(&self, deadline: tokio::time::Instant) {
        tokio::select! {
            _ = self.stopped() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_lost_lock_ends_one_run_and_a_signal_ends_them_all() {
        let stop = StopFlag::default();
        assert_eq!(stop.reason(), None);
        stop.lock_lost();
        assert_eq!(stop.reason(), Some(StopReason::LockLost));
        stop.clear_lock_lost();
        assert!(!stop.is_set(), "the next scheduled run may go on");
        stop.stop();
        stop.lock_lost();
        assert_eq!(stop.reason(), Some(StopReason::Signal), "a lost lock does not hide a signal");
        stop.clear_lock_lost();
        assert_eq!(stop.reason(), Some(StopReason::Signal));
        assert!(!stop.is_forced());
        stop.force();
        assert!(stop.is_forced());
    }

    #[tokio::test(start_paused = true)]
    async fn waits_end_when_the_flag_is_set_and_forced_only_when_forced() {
        let stop = StopFlag::default();
        let waiter = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let started = tokio::time::Instant::now();
                stop.sleep_until(started + Duration::from_secs(3600)).await;
                started.elapsed()
            })
        };
        let forced = {
            let stop = stop.clone();
            tokio::spawn(async move { stop.forced().await })
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.stop();
        assert_eq!(waiter.await.unwrap(), Duration::from_secs(2));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!forced.is_finished(), "a first signal does not force");
        stop.force();
        tokio::time::timeout(Duration::from_secs(1), forced).await.unwrap().unwrap();
        // Set already: no wait at all.
        tokio::time::timeout(Duration::from_millis(1), stop.stopped()).await.unwrap();
    }
}
