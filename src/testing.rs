//! Fault hooks for the crash tests, inert unless `AUDIT_CRASH_AT` is set.
//!
//! `AUDIT_CRASH_AT=<point>:<n>` aborts the process (no unwinding, no clean-up, like `kill -9`)
//! the n-th time it reaches `<point>`. Points: `page-write` (inside a page's transaction, just
//! before commit), `group-page` (inside a group's transaction, after one of its pages and before
//! the next) and `after-page` (after a page or group committed).
//!
//! `AUDIT_GROUP_PAGES=<n>` makes an ingest write its pages in groups of exactly n (the last
//! group of a walk may be shorter) instead of what is ready, so that a test can kill it inside a
//! group.
//!
//! `AUDIT_SERVE_LIMITS=headers=<ms>,writes=<ms>,grace=<ms>` (any of them) shortens how long
//! `audit serve` waits for a request's headers (10 s), for a client to read its answer (30 s)
//! and for the pages being sent at a stop (10 s), so that the tests of those take a second.

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

/// Groups of exactly this many pages, when `AUDIT_GROUP_PAGES` is set (see the module docs).
pub fn forced_group_pages() -> Option<usize> {
    static FORCED: OnceLock<Option<usize>> = OnceLock::new();
    *FORCED.get_or_init(|| std::env::var("AUDIT_GROUP_PAGES").ok()?.parse().ok().filter(|n| *n > 0))
}

/// One of `audit serve`'s time limits (`headers`, `writes`, `grace`) when `AUDIT_SERVE_LIMITS`
/// sets it (see the module docs).
pub fn serve_limit(name: &str) -> Option<std::time::Duration> {
    let limits = std::env::var("AUDIT_SERVE_LIMITS").ok()?;
    let ms = limits.split(',').find_map(|kv| kv.trim().strip_prefix(name)?.strip_prefix('='))?.parse().ok()?;
    Some(std::time::Duration::from_millis(ms)).filter(|d| !d.is_zero())
}
