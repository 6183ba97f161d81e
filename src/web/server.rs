//! The HTTP server under `audit serve`, bounded so that no client can hold it: a request's
//! headers must arrive within [`Limits::headers`], at most [`Limits::connections`] connections
//! are open at once (the next ones wait in the kernel's queue), at most [`Limits::pages`] pages
//! are built at once and each within [`Limits::page_time`] (see [`within_limits`]), and a stop
//! lets the pages being sent finish for at most [`Limits::grace`], then closes what is left.
//!
//! `axum::serve` has none of the first three: a client that sent half a request kept its
//! connection open forever, and Ctrl-C waited for it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

use super::PageError;

/// What one client may take of the server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// How long a page may take, waiting for its turn included.
    pub page_time: Duration,
    /// Pages built at once; the next wait for a turn.
    pub pages: usize,
    /// How long a client has to send a request's headers once it starts one (or, between two
    /// requests on one connection, before the connection is closed).
    pub headers: Duration,
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
            headers: crate::testing::serve_header_timeout().unwrap_or(Duration::from_secs(10)),
            connections: 256,
            grace: Duration::from_secs(10),
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
    let mut stop = std::pin::pin!(stop);
    loop {
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
            // Out of file descriptors, or a connection reset before it was accepted: the next
            // accept may succeed; a pause keeps a persisting error from spinning.
            Err(e) => {
                tracing::warn!("could not accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        stream.set_nodelay(true).ok();
        let service = TowerToHyperService::new(app.clone());
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client gone or too slow ends its connection; nothing to report.
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    match tokio::time::timeout(limits.grace, graceful.shutdown()).await {
        Ok(()) => Stopped::Cleanly,
        Err(_) => Stopped::Closing,
    }
}

/// The pages' share of the server: at most so many at once, each within a time.
#[derive(Debug)]
pub struct PageLimits {
    turns: Semaphore,
    pages: usize,
    time: Duration,
}

impl PageLimits {
    /// From the server's limits.
    pub fn new(limits: &Limits) -> PageLimits {
        PageLimits { turns: Semaphore::new(limits.pages.max(1)), pages: limits.pages.max(1), time: limits.page_time }
    }
}

/// A page waits for its turn and is built within the time limit; else it is answered 503 with
/// what to do, and its work is dropped (on Postgres the server cancels its statement too: the
/// connections have the same `statement_timeout`).
pub async fn within_limits(State(limits): State<Arc<PageLimits>>, request: Request, next: Next) -> Response {
    let asked = Instant::now();
    let path = crate::output::printable(request.uri().path()).into_owned();
    let mut turn: Option<Instant> = None;
    let page = tokio::time::timeout(limits.time, async {
        let _turn = limits.turns.acquire().await.expect("never closed");
        turn = Some(Instant::now());
        next.run(request).await
    })
    .await;
    let Ok(page) = page else {
        let secs = limits.time.as_secs();
        let message = match turn {
            Some(at) => {
                let waited = at.duration_since(asked).as_secs_f64();
                tracing::warn!("{path} was not built within {secs} s ({waited:.1} s waiting for its turn); stopped");
                format!(
                    "This page was not ready within {secs} s ({waited:.1} s of them waiting while {} other pages were \
                     built) and was stopped. Ask for less (one serial, a shorter period), try again when the view \
                     is less busy, or start `audit serve --time-limit` with more seconds.",
                    limits.pages
                )
            }
            None => {
                tracing::warn!("{path} waited {secs} s for one of {} pages being built", limits.pages);
                format!(
                    "The view is busy: {} pages were being built for the last {secs} s. Try again in a moment.",
                    limits.pages
                )
            }
        };
        let mut response = PageError::TooSlow(message).into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
        return response;
    };
    page
}
