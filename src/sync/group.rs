//! Group commit: while pages are written, the walk fetches ahead, and the pages that are ready
//! when the database is free are written together in one transaction with the last one's
//! position ([`Store::write_pages`](crate::store::Store::write_pages)).
//!
//! At inFlow's own pace (about a page a second) a page is written before the next one arrives,
//! so a group is one page, as it always was. A backfill from a faster server (or one resumed
//! after a wait) writes several at a time, which saves a commit per page and, on SQLite, the
//! rewrite into the WAL of every index page the events touched. The exactly-once guarantee
//! stays, and what a crash costs is bounded: at most [`MAX_PAGES`] pages are fetched and not yet
//! committed at any moment (the fetching side takes a permit per page, the writing side gives
//! them back once a group is committed), so a crash fetches again at most one full group.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};

use super::StopFlag;
use super::sheets::complete_sheets;
use crate::inflow::walk::{Page, Walk, WalkNote};
use crate::inflow::{Client, ClientError};

/// Most pages fetched and not yet committed: in the group being written and waiting for the
/// next one together. So a group holds at most this many, and about half of it while fetching
/// outpaces writing.
pub(super) const MAX_PAGES: usize = 32;

/// A group closes once its documents' JSON reaches this size, so that one transaction stays
/// bounded when pages are large (memory as a whole is bounded by [`MAX_PAGES`]).
const MAX_BYTES: usize = 16 << 20;

/// A page fetched ahead of its write, with what the walk noted while fetching it.
pub(super) struct Fetched {
    /// What the walk had to adapt to (recorded before the page is written).
    pub notes: Vec<WalkNote>,
    /// The page, or why it could not be fetched and where the walk stood.
    pub page: Result<Page, (String, ClientError)>,
}

impl Fetched {
    /// Whether pages may follow this one: it is a page, and not the walk's last.
    fn continues(&self) -> bool {
        self.page.as_ref().is_ok_and(|p| !p.last)
    }

    fn bytes(&self) -> usize {
        self.page.as_ref().map_or(0, |p| p.items.iter().map(|raw| raw.get().len()).sum())
    }
}

/// The sending end: pages, each fetched with a permit.
pub(super) struct Feed {
    tx: mpsc::Sender<Fetched>,
    permits: Arc<Semaphore>,
}

/// The receiving end: pages, grouped.
pub(super) struct Groups {
    rx: mpsc::Receiver<Fetched>,
    /// Pages that may still be fetched before a group is committed.
    permits: Arc<Semaphore>,
    /// Groups of exactly this many pages (`AUDIT_GROUP_PAGES`, for the crash tests): the writer
    /// waits for them instead of taking what is ready.
    forced: Option<usize>,
}

/// A channel from the fetching side to the writing side.
pub(super) fn channel() -> (Feed, Groups) {
    let forced = crate::testing::forced_group_pages();
    let size = forced.unwrap_or(MAX_PAGES).max(1);
    let (tx, rx) = mpsc::channel(size);
    let permits = Arc::new(Semaphore::new(size));
    (Feed { tx, permits: permits.clone() }, Groups { rx, permits, forced })
}

impl Groups {
    /// The next group, in walk order: pages, possibly ending with the failure that ended the
    /// fetching. `None` once the fetching ended without a last page or a failure (it saw the
    /// stop flag).
    pub(super) async fn next(&mut self) -> Option<Vec<Fetched>> {
        let first = self.rx.recv().await?;
        let mut bytes = first.bytes();
        let mut group = vec![first];
        let limit = self.forced.unwrap_or(MAX_PAGES);
        while group.len() < limit && bytes < MAX_BYTES && group.last().is_some_and(Fetched::continues) {
            let next = match self.forced {
                Some(_) => self.rx.recv().await,
                None => self.rx.try_recv().ok(),
            };
            let Some(next) = next else { break };
            bytes += next.bytes();
            group.push(next);
        }
        Some(group)
    }

    /// A group of `pages` is committed: as many more may be fetched.
    pub(super) fn committed(&self, pages: usize) {
        self.permits.add_permits(pages);
    }
}

/// Fetches page after page into `tx` until the walk's last page, a failure, the stop flag, or
/// the writing side is gone. Stock counts whose list refused the sheets' lines get them by id
/// here, so that a page is complete before it is written.
pub(super) async fn fetch_ahead(walk: &mut Walk<'_>, client: &Client, stop: &StopFlag, feed: Feed) {
    loop {
        // Given back when the page's group is committed.
        let Ok(permit) = feed.permits.acquire().await else { return };
        permit.forget();
        let page = match walk.next_page().await {
            Ok(mut page) if walk.include_fell_back() => {
                complete_sheets(client, std::mem::take(&mut page.items)).await.map(|items| Page { items, ..page })
            }
            other => other,
        };
        let page = page.map_err(|e| (walk.position().to_string(), e));
        let fetched = Fetched { notes: walk.take_notes(), page };
        let more = fetched.continues();
        if feed.tx.send(fetched).await.is_err() || !more || stop.is_set() {
            return;
        }
    }
}

/// Runs the writing side with the fetching side alongside it, and ends with the writing side:
/// a fetch still under way then (the run failed or stopped) is dropped.
pub(super) async fn alongside<T>(writing: impl Future<Output = T>, fetching: impl Future<Output = ()>) -> T {
    let (mut writing, mut fetching) = (pin!(writing), pin!(fetching));
    let mut fetched = false;
    loop {
        tokio::select! {
            biased;
            out = &mut writing => return out,
            () = &mut fetching, if !fetched => fetched = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inflow::walk::{Pass, Position};
    use serde_json::value::RawValue;

    fn page(n: usize, last: bool) -> Fetched {
        let items = (0..n).map(|i| RawValue::from_string(format!(r#"{{"id":"{i}"}}"#)).unwrap()).collect();
        let page = Page {
            items,
            next: Position::START,
            paging: crate::inflow::walk::Paging::PREFERRED,
            pass: Pass::default(),
            last,
            restarted: false,
        };
        Fetched { notes: Vec::new(), page: Ok(page) }
    }

    fn failure() -> Fetched {
        Fetched { notes: Vec::new(), page: Err(("page 3".into(), ClientError::BudgetSpent)) }
    }

    fn sizes(group: &[Fetched]) -> Vec<Option<usize>> {
        group.iter().map(|f| f.page.as_ref().ok().map(|p| p.items.len())).collect()
    }

    #[tokio::test]
    async fn a_group_is_what_is_ready_and_ends_at_the_last_page_or_a_failure() {
        let (tx, rx) = mpsc::channel(MAX_PAGES);
        let mut groups = Groups { rx, permits: Arc::new(Semaphore::new(MAX_PAGES)), forced: None };
        for n in [1, 2, 3] {
            tx.send(page(n, false)).await.unwrap();
        }
        assert_eq!(sizes(&groups.next().await.unwrap()), [Some(1), Some(2), Some(3)]);
        // A failure ends its group; nothing after it is taken.
        tx.send(page(4, false)).await.unwrap();
        tx.send(failure()).await.unwrap();
        tx.send(page(5, true)).await.unwrap();
        assert_eq!(sizes(&groups.next().await.unwrap()), [Some(4), None]);
        assert_eq!(sizes(&groups.next().await.unwrap()), [Some(5)]);
        drop(tx);
        assert!(groups.next().await.is_none(), "the fetching side ended");
    }

    #[tokio::test]
    async fn a_group_holds_at_most_max_pages() {
        let (tx, rx) = mpsc::channel(MAX_PAGES + 4);
        let mut groups = Groups { rx, permits: Arc::new(Semaphore::new(MAX_PAGES)), forced: None };
        for _ in 0..MAX_PAGES + 3 {
            tx.send(page(1, false)).await.unwrap();
        }
        assert_eq!(groups.next().await.unwrap().len(), MAX_PAGES);
        assert_eq!(groups.next().await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_forced_group_waits_for_its_pages_but_not_past_the_last() {
        let (tx, rx) = mpsc::channel(3);
        let mut groups = Groups { rx, permits: Arc::new(Semaphore::new(3)), forced: Some(3) };
        let sender = tokio::spawn(async move {
            for n in 1..=4 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                tx.send(page(n, n == 4)).await.unwrap();
            }
        });
        assert_eq!(sizes(&groups.next().await.unwrap()), [Some(1), Some(2), Some(3)]);
        assert_eq!(sizes(&groups.next().await.unwrap()), [Some(4)]);
        sender.await.unwrap();
    }

    #[tokio::test]
    async fn the_writing_side_ending_drops_a_fetch_under_way() {
        let writing = async { 7 };
        let fetching = std::future::pending::<()>();
        assert_eq!(alongside(writing, fetching).await, 7);
    }
}
