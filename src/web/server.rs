//! The HTTP server under `audit serve`, bounded so that a slow or hostile client costs little:
//! a request's headers must arrive within [`Limits::headers`] (an idle connection is closed
//! then too), an answer the client stops reading is cut off after [`Limits::writes`], at most
//! [`Limits::connections`] connections are open at once (the next ones wait in the kernel's
//! queue), at most [`Limits::pages`] pages are built at once and each is answered within
//! [`Limits::page_time`] (see [`within_limits`]), and a stop lets the pages being sent finish
//! for at most [`Limits::grace`], then closes what is left.
//!
//! `axum::serve` has none of these: a client that sent half a request kept its connection open
//! forever, and Ctrl-C waited for it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_io_timeout::TimeoutStream;

use super::PageError;

tokio::task_local! {
    /// Set once the client of the page being built was answered 503: the page's own failure
    /// (its statement cancelled, say) is then no news for the operator.
    static GIVEN_UP: Arc<std::sync::atomic::AtomicBool>;
}

/// Whether the page being built was given up on (see [`within_limits`]).
pub fn given_up() -> bool {
    GIVEN_UP.try_with(|g| g.load(std::sync::atomic::Ordering::Relaxed)).unwrap_or(false)
}

/// What one client may take of the server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// How long a page may take to be answered, waiting for its turn included.
    pub page_time: Duration,
    /// Pages built at once; the next wait for a turn.
    pub pages: usize,
    /// How long a client has to send a request's headers once it starts one (or, between two
    /// requests on one connection, before the connection is closed).
    pub headers: Duration,
    /// How long an answer may wait for the client to read more of it.
    pub writes: Duration,
    /// Connections open at once.
    pub connections: usize,
    /// How long a stop waits for the pages being sent.
    pub grace: Duration,
}

impl Limits {
    /// The defaults, with pages allowed `page_time` each.
    pub fn new(page_time: Duration) -> Limits {
        Limits {
            page_time,
            // Twice the read connections: a page waiting for a connection costs nothing.
            pages: 8,
            headers: crate::testing::serve_limit("headers").unwrap_or(Duration::from_secs(10)),
            writes: crate::testing::serve_limit("writes").unwrap_or(Duration::from_secs(30)),
            connections: 256,
            grace: crate::testing::serve_limit("grace").unwrap_or(Duration::from_secs(10)),
        }
    }
}

/// How the server ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Every connection closed by itself within the grace period.
    Cleanly,
    /// Connections were still open when the grace period ended; they were closed.
    Closing,
}

/// Serves `app` on `listener` until `stop` completes, within `limits`.
pub async fn serve(listener: TcpListener, app: Router, limits: &Limits, stop: impl Future<Output = ()>) -> Stopped {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.headers);
    let open = Arc::new(Semaphore::new(limits.connections));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = open.clone().acquire_owned() => slot.expect("never closed"),
            () = &mut stop => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors: wait a second for some to close (and log once a
                // second at most). A connection reset before it was accepted is no error here.
                if !matches!(e.kind(), std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset) {
                    tracing::warn!("could not accept a connection: {e}; trying again in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                continue;
            }
        };
        stream.set_nodelay(true).ok();
        let mut stream = TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.writes));
        let service = TowerToHyperService::new(app.clone());
        let conn = graceful.watch(http.serve_connection(TokioIo::new(Box::pin(stream)), service));
        connections.spawn(async move {
            // A client gone, too slow or not reading ends its connection; nothing to report.
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    let stopped = match tokio::time::timeout(limits.grace, graceful.shutdown()).await {
        Ok(()) => Stopped::Cleanly,
        Err(_) => Stopped::Closing,
    };
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    stopped
}

/// The pages' share of the server: at most so many built at once, each answered within a time.
#[derive(Debug)]
pub struct PageLimits {
    turns: Arc<Semaphore>,
    pages: usize,
    time: Duration,
}

impl PageLimits {
    /// From the server's limits.
    pub fn new(limits: &Limits) -> PageLimits {
        let pages = limits.pages.max(1);
        PageLimits { turns: Arc::new(Semaphore::new(pages)), pages, time: limits.page_time }
    }
}

/// A page waits for its turn, then is built in a task of its own that keeps the turn until it
/// ends; the client is answered 503 with what to do when the page is not ready in time. The
/// task is not cut off halfway (a Postgres statement dropped mid-way can leave its connection
/// unusable): it ends by itself, on Postgres by the connections' `statement_timeout`.
pub async fn within_limits(State(limits): State<Arc<PageLimits>>, request: Request, next: Next) -> Response {
    let asked = Instant::now();
    let deadline = asked + limits.time;
    let path = crate::output::printable(request.uri().path()).into_owned();
    let secs = limits.time.as_secs();
    let too_slow = |message: String| {
        let mut response = PageError::TooSlow(message).into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
        response
    };
    let Ok(turn) = tokio::time::timeout_at(deadline, limits.turns.clone().acquire_owned()).await else {
        tracing::warn!("{path} waited {secs} s for one of {} pages being built", limits.pages);
        return too_slow(format!(
            "The view is busy: {} pages were being built for the last {secs} s. Try again in a moment.",
            limits.pages
        ));
    };
    let turn = turn.expect("never closed");
    let waited = asked.elapsed().as_secs_f64();
    let given_up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let page = tokio::spawn(GIVEN_UP.scope(given_up.clone(), async move {
        let page = next.run(request).await;
        drop(turn);
        page
    }));
    match tokio::time::timeout_at(deadline, page).await {
        Ok(Ok(page)) => page,
        Ok(Err(e)) => PageError::failed(format!("building {path}"), e).into_response(),
        Err(_) => {
            given_up.store(true, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!("{path} was not ready within {secs} s ({waited:.1} s waiting for its turn)");
            too_slow(format!(
                "This page was not ready within {secs} s ({waited:.1} s of them waiting while {} other pages \
                 were built). Ask for less (one serial, a shorter period), try again when the view is less \
                 busy, or start `audit serve --time-limit` with more seconds.",
                limits.pages - 1
            ))
        }
    }
}
