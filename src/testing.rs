//! Fault hooks for the crash tests, inert unless `AUDIT_CRASH_AT` is set.
//!
//! `AUDIT_CRASH_AT=<point>:<n>` aborts the process (no unwinding, no clean-up, like `kill -9`)
//! the n-th time it reaches `<point>`. Points: `page-write` (inside a page's transaction, just
//! before commit) and `after-page` (after a page committed, before the next request).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

/// Aborts the process here when `AUDIT_CRASH_AT` names this point and count.
pub fn crash_point(point: &str) {
    let target = TARGET.get_or_init(|| {
        let value = std::env::var("AUDIT_CRASH_AT").ok()?;
        let (name, n) = value.split_once(':')?;
        Some((name.to_string(), n.parse().ok()?))
    });
    if let Some((name, n)) = target
        && name == point
        && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n
    {
        crate::output::note(&format!("AUDIT_CRASH_AT: aborting at {point} #{n}"));
        std::process::abort();
    }
}
