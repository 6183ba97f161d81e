//! One ingest per company and database at a time.
//!
//! The lock is a row of `ingest_locks`, which works the same on both engines and can say who
//! holds it. The holder refreshes `heartbeat_at` while it runs and deletes the row when done. A
//! row left behind by a process that died is taken over: at once when the holder ran on this
//! host and its process is gone, otherwise once its heartbeat is older than [`STALE_AFTER`].

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Context, Store, StoreError, WritePool, on_pool};
use crate::stop::StopFlag;

/// How often a holder proves it is alive.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// A heartbeat this old means the holder is gone (several beats missed).
pub const STALE_AFTER: Duration = Duration::from_secs(90);

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LockHolder {
    /// What holds it: `audit <command> (pid N on host)`.
    pub holder: String,
    /// The holder's process id.
    pub pid: i64,
    /// The holder's host.
    pub host: String,
    /// When the holder took the lock.
    pub acquired_at: DateTime<Utc>,
    /// The holder's last sign of life.
    pub heartbeat_at: DateTime<Utc>,
    /// Which taking of the lock this is; read only where the row is taken over.
    #[sqlx(default)]
    token: String,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (since {}, last heartbeat {})",
            self.holder,
            self.acquired_at.format("%Y-%m-%d %H:%M:%S UTC"),
            self.heartbeat_at.format("%H:%M:%S UTC")
        )
    }
}

/// Called by the heartbeat when the lock's row is gone: taken over by another process after a
/// pause longer than [`STALE_AFTER`], or deleted by hand.
type OnLost = Arc<OnceLock<Box<dyn Fn() + Send + Sync>>>;

/// A held lock. Release it with [`IngestLock::release`]; if the process dies instead, the next
/// one recovers it as described in the module docs.
pub struct IngestLock {
    store: Store,
    company_id: String,
    token: String,
    heartbeat: tokio::task::JoinHandle<()>,
    on_lost: OnLost,
}

impl Store {
    /// Takes the company's ingest lock, or says who holds it.
    pub async fn try_lock(
        &self,
        company_id: &str,
        command: &str,
    ) -> Result<Result<IngestLock, LockHolder>, StoreError> {
        let pid = i64::from(std::process::id());
        let host = hostname();
        let token = uuid::Uuid::new_v4().to_string();
        let holder = format!("audit {command} (pid {pid} on {host})");
        let now = Utc::now();
        let what = || format!("taking the ingest lock of company {company_id}");
        let taken = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await.context(what)?;
            let current: Option<LockHolder> = sqlx::query_as(
                "SELECT holder, pid, host, acquired_at, heartbeat_at, token FROM ingest_locks WHERE company_id = $1",
            )
            .bind(company_id)
            .fetch_optional(&mut *tx)
            .await
            .context(what)?;
            if let Some(current) = current {
                if !is_dead(&current, &host, now) {
                    tx.rollback().await.context(what)?;
                    return Ok(Err(current));
                }
                tracing::warn!("taking over the ingest lock left by {current}: its holder is gone");
                // Only the dead row: on Postgres another process may have taken it over since we
                // looked, and its fresh row must survive (our insert then finds the conflict).
                sqlx::query("DELETE FROM ingest_locks WHERE company_id = $1 AND token = $2")
                    .bind(company_id)
                    .bind(&current.token)
                    .execute(&mut *tx)
                    .await
                    .context(what)?;
            }
            // ON CONFLICT: another process may have inserted since we looked (Postgres).
            let inserted = sqlx::query(
                "INSERT INTO ingest_locks (company_id, holder, pid, host, token, acquired_at, heartbeat_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (company_id) DO NOTHING",
            )
            .bind(company_id)
            .bind(&holder)
            .bind(pid)
            .bind(&host)
            .bind(&token)
            .bind(now)
            .execute(&mut *tx)
            .await
            .context(what)?
            .rows_affected();
            tx.commit().await.context(what)?;
            inserted == 1
        });
        if !taken {
            return match self.lock_holder(company_id).await? {
                Some(current) => Ok(Err(current)),
                // Released in between: try once more.
                None => Box::pin(self.try_lock(company_id, command)).await,
            };
        }
        HELD.lock().expect("lock tokens").push(token.clone());
        let on_lost = OnLost::default();
        let heartbeat = tokio::spawn(heartbeat(
            self.clone(),
            company_id.to_string(),
            token.clone(),
            Arc::clone(&on_lost),
            HEARTBEAT,
        ));
        Ok(Ok(IngestLock { store: self.clone(), company_id: company_id.to_string(), token, heartbeat, on_lost }))
    }

    /// Waits until the lock is free, then takes it, telling once who it waits for; `None` when
    /// `stop` is set meanwhile.
    pub async fn lock_waiting(
        &self,
        company_id: &str,
        command: &str,
        stop: &StopFlag,
    ) -> Result<Option<IngestLock>, StoreError> {
        let mut told = false;
        loop {
            match self.try_lock(company_id, command).await? {
                Ok(lock) => return Ok(Some(lock)),
                Err(holder) => {
                    if !told {
                        crate::output::note(&format!("waiting for the ingest lock held by {holder}"));
                        told = true;
                    }
                    stop.sleep_until(tokio::time::Instant::now() + Duration::from_millis(500)).await;
                    if stop.is_set() {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Who holds the company's lock, if anyone.
    pub async fn lock_holder(&self, company_id: &str) -> Result<Option<LockHolder>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_as("SELECT holder, pid, host, acquired_at, heartbeat_at FROM ingest_locks WHERE company_id = $1")
                .bind(company_id)
                .fetch_optional(pool)
                .await
                .context(|| format!("reading the ingest lock of company {company_id}"))
        })
    }
}

impl IngestLock {
    /// What to do if the lock is lost while held (the holder should stop writing).
    pub fn on_lost(&self, f: impl Fn() + Send + Sync + 'static) {
        let _ = self.on_lost.set(Box::new(f));
    }

    /// Deletes the lock's row. A failure is only logged: the caller's own result matters more
    /// (a database that is gone fails both), and a row left behind is recovered as a dead one.
    pub async fn release(self) {
        self.heartbeat.abort();
        forget(&self.token);
        let (store, company_id, token) = (&self.store, &self.company_id, &self.token);
        let result = on_pool!(store, pool => {
            sqlx::query("DELETE FROM ingest_locks WHERE company_id = $1 AND token = $2")
                .bind(company_id)
                .bind(token)
                .execute(pool)
                .await
                .map(|_| ())
        });
        if let Err(e) = result {
            tracing::warn!("could not release the ingest lock of company {company_id} ({e}); the next run recovers it");
        }
    }
}

impl IngestLock {
    /// Releases the lock on a connection of its own, giving up after a few seconds: after a
    /// second signal the store's connection may be stuck in the statement that was abandoned.
    /// A row left behind is recovered as a dead one.
    pub async fn release_fresh(self) {
        self.heartbeat.abort();
        forget(&self.token);
        let release = async {
            let fresh = Store::connect(self.store.url()).await?;
            let deleted = on_pool!(fresh, pool => {
                sqlx::query("DELETE FROM ingest_locks WHERE company_id = $1 AND token = $2")
                    .bind(&self.company_id)
                    .bind(&self.token)
                    .execute(pool)
                    .await
                    .map(|_| ())
                    .context(|| format!("releasing the ingest lock of company {}", self.company_id))
            });
            fresh.close().await;
            deleted
        };
        match tokio::time::timeout(Duration::from_secs(5), release).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(
                "could not release the ingest lock ({}); the next run recovers it",
                crate::error_text(&e)
            ),
            Err(_) => tracing::warn!("could not release the ingest lock in time; the next run recovers it"),
        }
    }
}

impl Drop for IngestLock {
    fn drop(&mut self) {
        // A lock dropped without release (an error path) stops proving it is alive, so the next
        // run can recover it; the common path releases it explicitly.
        self.heartbeat.abort();
        forget(&self.token);
    }
}

async fn heartbeat(store: Store, company_id: String, token: String, on_lost: OnLost, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let result = on_pool!(store, pool => {
            sqlx::query("UPDATE ingest_locks SET heartbeat_at = $1 WHERE company_id = $2 AND token = $3")
                .bind(Utc::now())
                .bind(&company_id)
                .bind(&token)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        });
        match result {
            Ok(0) => {
                tracing::error!(
                    "the ingest lock of company {company_id} is no longer held by this process: another one took \
                     it over after {} s without a heartbeat from here, or its row was deleted",
                    STALE_AFTER.as_secs()
                );
                if let Some(f) = on_lost.get() {
                    f();
                }
                return;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("could not refresh the ingest lock: {e}"),
        }
    }
}

/// The tokens of the locks this process holds now.
static HELD: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn held(token: &str) -> bool {
    HELD.lock().expect("lock tokens").iter().any(|t| t == token)
}

fn forget(token: &str) {
    HELD.lock().expect("lock tokens").retain(|t| t != token);
}

/// Whether a lock's holder is gone: its process no longer exists on this host, or it has not
/// proved it is alive for a long time. A row of this very process that it no longer holds is a
/// leftover too: a release that failed while the database was down, which would otherwise keep
/// every later run of a scheduled loop out.
fn is_dead(lock: &LockHolder, our_host: &str, now: DateTime<Utc>) -> bool {
    let silent = (now - lock.heartbeat_at).to_std().unwrap_or_default();
    let here = lock.host == our_host;
    let ours_no_more = here && lock.pid == i64::from(std::process::id()) && !held(&lock.token);
    silent > STALE_AFTER || ours_no_more || (here && !process_exists(lock.pid))
}

#[cfg(target_os = "linux")]
fn process_exists(pid: i64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Elsewhere only the heartbeat can tell.
#[cfg(not(target_os = "linux"))]
fn process_exists(_pid: i64) -> bool {
    true
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown host".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(host: &str, pid: i64, beat_secs_ago: i64) -> LockHolder {
        let now = Utc::now();
        LockHolder {
            holder: "audit ingest".into(),
            pid,
            host: host.into(),
            acquired_at: now,
            heartbeat_at: now - chrono::Duration::seconds(beat_secs_ago),
            token: String::new(),
        }
    }

    #[tokio::test]
    async fn a_holder_whose_row_is_gone_is_told_to_stop() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a.db").display()).parse().unwrap();
        let store = Store::open(&url).await.unwrap();
        let lock = store.try_lock("c1", "ingest").await.unwrap().unwrap();
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&lost);
        lock.on_lost(move || flag.store(true, std::sync::atomic::Ordering::SeqCst));
        // A fast heartbeat beside the real one: it finds its row while the lock is held...
        let beat = |store: &Store| {
            tokio::spawn(heartbeat(
                store.clone(),
                "c1".into(),
                lock.token.clone(),
                Arc::clone(&lock.on_lost),
                Duration::from_millis(10),
            ))
        };
        let first = beat(&store);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!lost.load(std::sync::atomic::Ordering::SeqCst));
        first.abort();
        // ...and, once another process has taken the row over, says the lock is lost.
        sqlx::query("UPDATE ingest_locks SET token = 'taken-over'")
            .execute(store.sqlite_pool().unwrap())
            .await
            .unwrap();
        let second = beat(&store);
        tokio::time::timeout(Duration::from_secs(5), second).await.expect("the heartbeat ends").unwrap();
        assert!(lost.load(std::sync::atomic::Ordering::SeqCst));
        lock.release().await;
    }

    #[test]
    fn a_holder_is_dead_when_its_process_is_gone_here_or_its_heartbeat_is_old() {
        let me = i64::from(std::process::id());
        let now = Utc::now();
        let parent = i64::from(std::os::unix::process::parent_id());
        assert!(!is_dead(&holder("here", parent, 5), "here", now), "a live process on this host");
        assert!(is_dead(&holder("here", me, 5), "here", now), "a leftover of this process");
        let mut mine = holder("here", me, 5);
        mine.token = "held-now".into();
        HELD.lock().unwrap().push(mine.token.clone());
        assert!(!is_dead(&mine, "here", now), "a lock this process holds now");
        forget("held-now");
        assert!(is_dead(&holder("here", i64::from(u32::MAX), 5), "here", now), "no such process");
        assert!(
            !is_dead(&holder("elsewhere", i64::from(u32::MAX), 5), "here", now),
            "another host: only the heartbeat tells"
        );
        assert!(is_dead(&holder("elsewhere", parent, 600), "here", now), "silent for too long");
    }
}
