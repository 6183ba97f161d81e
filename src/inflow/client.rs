//! The HTTP client for inFlow Cloud: authentication, pacing, retries and lenient page parsing.
//!
//! Every request goes through [`Client::get_array`], which waits for the [`Pacer`], counts the
//! request against the run's budget, and retries what is worth retrying: 429 after its
//! `Retry-After`, 408, 425, 5xx, timeouts, dropped connections and unparsable bodies with
//! exponential backoff and jitter. Anything else (400, 401, 404, another 4xx) fails at once, since
//! repeating it would only spend the company's shared quota. A request has a total deadline (a
//! server dripping its answer cannot hold it), and a [`StopFlag`] cuts every wait short: the
//! slot, the request, the backoff and the `Retry-After`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, RETRY_AFTER};
use serde_json::value::RawValue;
use tokio::time::Instant;

use super::pacer::{Pacer, RateLimits};
use crate::stop::StopFlag;

/// The API key. It is only ever put in the `Authorization` header: `Debug` and `Display` hide it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key as read (from `INFLOW_API_KEY` or a key file).
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// How hard to try before giving up on a request.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after 5xx, timeouts, dropped connections and unparsable bodies.
    pub max_retries: u32,
    /// Retries after 429, counted separately: waiting them out is the polite answer.
    pub max_rate_limited: u32,
    /// The first backoff; it doubles with each retry, with jitter.
    pub base_delay: Duration,
    /// The longest backoff between two attempts.
    pub max_delay: Duration,
    /// Wait after a 429 that carries no usable `Retry-After`.
    pub default_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 6,
            max_rate_limited: 20,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            default_retry_after: Duration::from_secs(60),
        }
    }
}

/// A page of 100 documents with their lines is a few hundred kilobytes; this leaves room for a
/// slow link, not for a server that never finishes.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Where and how to reach one company's inFlow data.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The API address, without a trailing `/`.
    pub base_url: String,
    /// The inFlow company id, the first segment of every path.
    pub company_id: String,
    /// Sent as `Authorization: Bearer`.
    pub api_key: ApiKey,
    /// Sent in the `Accept` header, e.g. `2025-06-24`.
    pub api_version: String,
    /// The pace to keep (requests per minute and per hour).
    pub limits: RateLimits,
    /// When to retry and how long to wait.
    pub retry: RetryPolicy,
    /// Ends the run cleanly once this many requests were sent (retries included).
    pub max_requests: Option<u64>,
    /// Longest wait for the connection.
    pub connect_timeout: Duration,
    /// Longest silence between two reads of an answer.
    pub read_timeout: Duration,
    /// The whole request, from connecting to the body's last byte.
    pub request_timeout: Duration,
}

impl ClientConfig {
    /// inFlow's default pace, retries and timeouts, without a request budget.
    pub fn new(base_url: &str, company_id: &str, api_key: ApiKey) -> ClientConfig {
        ClientConfig {
            base_url: base_url.trim_end_matches('/').to_string(),
            company_id: company_id.to_string(),
            api_key,
            api_version: super::DEFAULT_API_VERSION.to_string(),
            limits: RateLimits::INFLOW,
            retry: RetryPolicy::default(),
            max_requests: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// Why a request to inFlow did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Not a failure: the run's `--max-requests` budget is spent.
    #[error("the request budget is spent")]
    BudgetSpent,

    /// Not a failure: the stop flag was set (a signal, a lost lock) while waiting.
    #[error("stopped while waiting for inFlow")]
    Stopped,

    #[error(
        "inFlow refused the API key for {what} (HTTP {status}): check INFLOW_API_KEY and that the company has the API add-on"
    )]
    /// 401 or 403: the key is wrong, or the company lacks the API add-on.
    Unauthorized {
        /// The request, as named in messages.
        what: String,
        /// The HTTP status: 401 or 403.
        status: u16,
    },

    /// A 404 that does not (yet) say why: the company was not checked.
    #[error("inFlow answered 404 (not found) for {what}")]
    NotFound {
        /// The request, as named in messages.
        what: String,
    },

    /// A 404, and a second request to another endpoint of the company answered 404 too.
    #[error(
        "company {company} not found at {base_url}: inFlow answered 404 for {what} and for the company's {checked}; \
         check INFLOW_COMPANY_ID (inFlow shows it under Options > Integrations) and INFLOW_BASE_URL"
    )]
    CompanyNotFound {
        /// The company id that was asked for.
        company: String,
        /// The API address that was asked.
        base_url: String,
        /// The request that was answered 404 first.
        what: String,
        /// The list asked as a check: `product list` or `location list`.
        checked: &'static str,
    },

    /// The company answers, but this list endpoint does not exist for it, even without paging
    /// parameters (an account or API version without manufacturing or stock counts, say).
    #[error(
        "inFlow answered 404 for {what}, and for `{path}` without paging parameters, while the company answers: \
         this account does not offer {path}{}",
        if *stream { "; leave it out of --types" } else { "" }
    )]
    Unavailable {
        /// The request, as named in messages.
        what: String,
        /// The list endpoint, e.g. `manufacturing-orders`.
        path: String,
        /// Whether it is a document stream `--types` chooses (not a reference list).
        stream: bool,
    },

    #[error("inFlow rejected {what} (HTTP {status}): {body}")]
    /// Any other status not worth retrying (400, another 4xx): asking again would be refused again.
    Rejected {
        /// The request, as named in messages.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body, the key hidden.
        body: String,
    },

    #[error("{what} cannot be sent ({reason}): check --base-url and --api-version")]
    /// The request cannot be built (a header value with a newline, say), so no retry can help.
    Unsendable {
        /// The request, as named in messages.
        what: String,
        /// Why the request could not be built.
        reason: String,
    },

    /// Retries spent; `status` is the last answer's HTTP status, if there was one.
    #[error("{what} failed after {attempts} attempts; last: {last}. Run again later: the position is saved")]
    GaveUp {
        /// The request, as named in messages.
        what: String,
        /// Attempts made, the first included.
        attempts: u32,
        /// What went wrong the last time.
        last: String,
        /// The last answer's HTTP status; `None` when there was no answer.
        status: Option<u16>,
    },

    #[error(
        "{what} returned a full page that does not move the walk on (the server ignores the paging \
         parameters, or the page's documents have no id); stopped rather than spend the quota on the same page"
    )]
    /// A full page that did not advance the walk: stopped, since asking again would loop.
    Stuck {
        /// The request, as named in messages.
        what: String,
    },

    #[error("cannot build the HTTP client")]
    /// reqwest could not build its client (no TLS backend, say).
    Setup(#[source] reqwest::Error),
}

/// Counters of what the client did, read by the ingest summary.
#[derive(Debug, Default)]
pub struct ClientStats {
    /// Requests sent, retries included.
    pub requests: AtomicU64,
    /// Answers that were 429.
    pub rate_limited: AtomicU64,
    /// Attempts repeated after a failure (429s included).
    pub retries: AtomicU64,
}

impl ClientStats {
    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    /// 429 answers so far.
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }
    /// Retries so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
}

/// A parsed page: the JSON array's items, kept raw, and what its headers said.
#[derive(Debug, Default)]
pub struct ArrayPage {
    /// The documents, unparsed, so that each can be read leniently (and stored) on its own.
    pub items: Vec<Box<RawValue>>,
    /// `X-listCount`, when the server sent one (`includeCount=true` asks for it).
    pub list_count: Option<u64>,
    /// The rate headers as sent: `x-inflow-api-rate-limit` (minute) and `x-ratelimit-limit`
    /// (hour), e.g. `12/60`.
    pub rate_minute: Option<String>,
    /// The hour's header, `x-ratelimit-limit`, as sent.
    pub rate_hour: Option<String>,
}

/// What the first number of the rate headers (`N/60`) means. The reference cannot say;
/// `audit doctor` finds out from two consecutive answers and the ingest reads its finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateMeaning {
    /// Not found out yet: read as `used`, the cautious guess.
    Unknown,
    /// `N` is the requests already made in the window.
    Used,
    /// `N` is the requests still allowed in the window.
    Remaining,
}

impl RateMeaning {
    /// The name stored for it: `unknown`, `used` or `remaining`.
    pub fn as_str(self) -> &'static str {
        match self {
            RateMeaning::Unknown => "unknown",
            RateMeaning::Used => "used",
            RateMeaning::Remaining => "remaining",
        }
    }

    /// Reads [`RateMeaning::as_str`]'s names back; anything else is `Unknown`.
    pub fn parse(s: &str) -> RateMeaning {
        match s {
            "used" => RateMeaning::Used,
            "remaining" => RateMeaning::Remaining,
            _ => RateMeaning::Unknown,
        }
    }
}

/// A paced, retrying client for one company's inFlow data. Clones share the pacing, counters
/// and stop flag.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    config: Arc<ClientConfig>,
    pacer: Arc<Pacer>,
    stats: Arc<ClientStats>,
    /// A [`RateMeaning`] as u8, shared by the clients of a scheduled loop.
    rate_meaning: Arc<AtomicU8>,
    /// Some request of the company was answered 200: the company exists.
    company_answered: Arc<AtomicBool>,
    stop: StopFlag,
}

/// What one attempt came to.
enum Attempt<T> {
    Done(T),
    /// Worth another try, after the given wait (or the backoff when `None`).
    Retry {
        last: String,
        wait: Option<Duration>,
        rate_limited: bool,
        /// The HTTP status, when the server answered.
        status: Option<u16>,
    },
    Fatal(ClientError),
}

impl Client {
    /// A client with fresh pacing and counters. Fails only when the HTTP client cannot be built.
    pub fn new(config: ClientConfig) -> Result<Client, ClientError> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!("audit/", env!("CARGO_PKG_VERSION"), " (inFlow serial audit trail)"))
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .timeout(config.request_timeout)
            .build()
            .map_err(ClientError::Setup)?;
        Ok(Client {
            http,
            pacer: Arc::new(Pacer::new(config.limits)),
            config: Arc::new(config),
            stats: Arc::new(ClientStats::default()),
            rate_meaning: Arc::new(AtomicU8::new(RateMeaning::Unknown as u8)),
            company_answered: Arc::new(AtomicBool::new(false)),
            stop: StopFlag::default(),
        })
    }

    /// This client, with every wait cut short when `stop` is set.
    pub fn with_stop(mut self, stop: StopFlag) -> Client {
        self.stop = stop;
        self
    }

    /// The same client (pacing, counters, budget) with another retry policy: for a request
    /// that only probes whether something works, where a failure is an answer, not an outage.
    pub fn with_retry(&self, retry: RetryPolicy) -> Client {
        let config = ClientConfig { retry, ..(*self.config).clone() };
        Client { config: Arc::new(config), ..self.clone() }
    }

    /// Tells `observer` of every wait for the rate limit (this client's and its next runs').
    pub fn observe_waits(&self, observer: crate::inflow::pacer::WaitObserver) {
        self.pacer.observe_waits(observer);
    }

    /// How to read the rate headers from now on.
    pub fn set_rate_meaning(&self, meaning: RateMeaning) {
        self.rate_meaning.store(meaning as u8, Ordering::Relaxed);
    }

    /// How the rate headers are read now.
    pub fn rate_meaning(&self) -> RateMeaning {
        match self.rate_meaning.load(Ordering::Relaxed) {
            x if x == RateMeaning::Used as u8 => RateMeaning::Used,
            x if x == RateMeaning::Remaining as u8 => RateMeaning::Remaining,
            _ => RateMeaning::Unknown,
        }
    }

    /// After a 404 for `what` on `path`: unless the company already answered, asks another
    /// endpoint of it (one cheap request). [`ClientError::CompanyNotFound`] when that answers
    /// 404 too; otherwise the plain [`ClientError::NotFound`] naming the request.
    pub async fn explain_not_found(&self, path: &str, what: &str) -> ClientError {
        if self.company_answered.load(Ordering::Relaxed) {
            return ClientError::NotFound { what: what.to_string() };
        }
        let checked = if path.starts_with("locations") { "products" } else { "locations" };
        let query = [("count", "1".to_string())];
        let check = format!("GET {checked} (a check of the company after a 404)");
        match self.get_array(checked, &query, &check).await {
            Err(ClientError::NotFound { .. }) => ClientError::CompanyNotFound {
                company: self.config.company_id.clone(),
                base_url: self.config.base_url.clone(),
                what: what.to_string(),
                checked: if checked == "products" { "product list" } else { "location list" },
            },
            // The company answers (or the check could not tell): the 404 is about the request.
            _ => ClientError::NotFound { what: what.to_string() },
        }
    }

    /// A client for the next run of a scheduled ingest: fresh counters and budget, but the
    /// same pacing windows, since inFlow's quota does not reset between our runs.
    pub fn next_run(&self) -> Client {
        Client {
            http: self.http.clone(),
            config: self.config.clone(),
            pacer: self.pacer.clone(),
            stats: Arc::new(ClientStats::default()),
            rate_meaning: self.rate_meaning.clone(),
            company_answered: self.company_answered.clone(),
            stop: self.stop.clone(),
        }
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// What this run's client has done so far.
    pub fn stats(&self) -> &ClientStats {
        &self.stats
    }

    /// Requests left in the budget, if there is one.
    pub fn budget_left(&self) -> Option<u64> {
        self.config.max_requests.map(|max| max.saturating_sub(self.stats.requests()))
    }

    /// `text` with the API key replaced by `***`, for anything that came from the server before it
    /// is shown or stored: a server (or a proxy in front of it) can echo the request's headers in
    /// an error page. Also as JSON and URLs escape it. A key of a few characters is left alone:
    /// hiding every `k` of a message would say nothing useful about it.
    pub fn redact<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        const SHORTEST_HIDDEN: usize = 8;
        let key = self.config.api_key.expose();
        if key.len() < SHORTEST_HIDDEN {
            return text.into();
        }
        let forms =
            [key.to_string(), key.replace('/', "\\/"), url::form_urlencoded::byte_serialize(key.as_bytes()).collect()];
        let mut out = std::borrow::Cow::Borrowed(text);
        for form in &forms {
            if out.contains(form.as_str()) {
                out = out.replace(form.as_str(), "***").into();
            }
        }
        out
    }

    /// The first bytes of a body, for messages: the key hidden before the cut (so no part of it
    /// shows), control characters escaped.
    fn shown(&self, body: &[u8]) -> String {
        body_start(self.redact(&String::from_utf8_lossy(body)).as_bytes())
    }

    /// GETs `/{companyId}/{path}` and parses the body as a JSON array, retrying as described in
    /// the module docs. `what` names the request in errors (stream and page position).
    pub async fn get_array(&self, path: &str, query: &[(&str, String)], what: &str) -> Result<ArrayPage, ClientError> {
        let parse = |body: &[u8], headers: &HeaderMap| {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(|v| v.trim().to_string());
            serde_json::from_slice::<Vec<Box<RawValue>>>(body)
                .map(|items| ArrayPage {
                    items,
                    list_count: header("x-listcount").and_then(|v| v.parse().ok()),
                    rate_minute: header("x-inflow-api-rate-limit"),
                    rate_hour: header("x-ratelimit-limit"),
                })
                .map_err(|e| format!("the body is not a JSON array ({e})"))
        };
        self.get(path, query, what, parse).await
    }

    /// GETs one document, `/{companyId}/{path}/{id}`; `None` when inFlow answers 404.
    pub async fn get_document(
        &self,
        path: &str,
        id: &str,
        query: &[(&str, String)],
        what: &str,
    ) -> Result<Option<Box<RawValue>>, ClientError> {
        let parse = |body: &[u8], _: &HeaderMap| match serde_json::from_slice::<Box<RawValue>>(body) {
            Ok(doc) if doc.get().trim_start().starts_with('{') => Ok(doc),
            Ok(_) => Err("the body is not a JSON object".to_string()),
            Err(e) => Err(format!("the body is not JSON ({e})")),
        };
        match self.get(&format!("{path}/{id}"), query, what, parse).await {
            Ok(doc) => Ok(Some(doc)),
            Err(ClientError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn get<T>(
        &self,
        path: &str,
        query: &[(&str, String)],
        what: &str,
        parse: impl Fn(&[u8], &HeaderMap) -> Result<T, String>,
    ) -> Result<T, ClientError> {
        let url = format!("{}/{}/{}", self.config.base_url, self.config.company_id, path);
        let policy = self.config.retry;
        let (mut retries, mut rate_limited) = (0u32, 0u32);
        loop {
            if self.budget_left() == Some(0) {
                return Err(ClientError::BudgetSpent);
            }
            // Every wait below ends when the stop flag is set; a request in flight is dropped.
            let slot = tokio::select! {
                slot = self.pacer.acquire() => slot,
                _ = self.stop.stopped() => return Err(ClientError::Stopped),
            };
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let attempt = tokio::select! {
                attempt = self.attempt(&url, query, what, &parse) => attempt,
                _ = self.stop.stopped() => return Err(ClientError::Stopped),
            };
            self.pacer.answered(slot).await;
            match attempt {
                Attempt::Done(page) => return Ok(page),
                Attempt::Fatal(err) => return Err(err),
                Attempt::Retry { last, wait, rate_limited: was_429, status } => {
                    let attempts = retries + rate_limited + 1;
                    let exhausted = if was_429 {
                        rate_limited += 1;
                        self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                        rate_limited > policy.max_rate_limited
                    } else {
                        retries += 1;
                        retries > policy.max_retries
                    };
                    if exhausted {
                        return Err(ClientError::GaveUp { what: what.to_string(), attempts, last, status });
                    }
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    let wait = wait.unwrap_or_else(|| backoff(&policy, retries));
                    tracing::warn!("{what}: {last}; retrying in {wait:.1?}");
                    if was_429 {
                        // Everyone waits, not only this request: the quota is shared. The wait
                        // itself is the next slot's.
                        self.pacer.pause_until(Instant::now() + wait).await;
                    } else {
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = self.stop.stopped() => return Err(ClientError::Stopped),
                        }
                    }
                }
            }
        }
    }

    async fn attempt<T>(
        &self,
        url: &str,
        query: &[(&str, String)],
        what: &str,
        parse: &impl Fn(&[u8], &HeaderMap) -> Result<T, String>,
    ) -> Attempt<T> {
        let request = self
            .http
            .get(url)
            .query(query)
            .header(AUTHORIZATION, format!("Bearer {}", self.config.api_key.expose()))
            .header(ACCEPT, format!("application/json;version={}", self.config.api_version));
        tracing::debug!(%url, ?query, "GET");
        let response = match request.send().await {
            Ok(r) => r,
            // A request that cannot be built (a header value with a newline, say) never will be.
            Err(e) if e.is_builder() => {
                return Attempt::Fatal(ClientError::Unsendable {
                    what: what.to_string(),
                    reason: describe_transport(&e),
                });
            }
            Err(e) => {
                return Attempt::Retry { last: describe_transport(&e), wait: None, rate_limited: false, status: None };
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        log_rate_headers(&headers);
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Attempt::Retry {
                    last: format!("HTTP {} with a body cut short ({})", status.as_u16(), describe_transport(&e)),
                    wait: None,
                    rate_limited: false,
                    status: None,
                };
            }
        };
        let what = what.to_string();
        match status {
            s if s.is_success() => match parse(&body, &headers) {
                Ok(value) => {
                    self.company_answered.store(true, Ordering::Relaxed);
                    if let Some(wait) = server_window_full(&headers, self.config.limits.minute, self.rate_meaning()) {
                        self.pacer.pause_until(Instant::now() + wait).await;
                    }
                    Attempt::Done(value)
                }
                Err(e) => Attempt::Retry {
                    last: format!("{}; it starts with {}", self.redact(&e), self.shown(&body)),
                    wait: None,
                    rate_limited: false,
                    status: None,
                },
            },
            StatusCode::TOO_MANY_REQUESTS => Attempt::Retry {
                last: "HTTP 429 Too Many Requests".into(),
                wait: Some(retry_after(&headers).unwrap_or(self.config.retry.default_retry_after)),
                rate_limited: true,
                status: Some(429),
            },
            s if retried(s) => Attempt::Retry {
                last: format!("HTTP {}: {}", s.as_u16(), self.shown(&body)),
                wait: None,
                rate_limited: false,
                status: Some(s.as_u16()),
            },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Attempt::Fatal(ClientError::Unauthorized { what, status: status.as_u16() })
            }
            StatusCode::NOT_FOUND => Attempt::Fatal(ClientError::NotFound { what }),
            s => Attempt::Fatal(ClientError::Rejected { what, status: s.as_u16(), body: self.shown(&body) }),
        }
    }
}

/// The statuses worth asking again for, besides 429 (which waits for its `Retry-After`): a
/// timeout (408), "too early" (425) and server errors. Any other 4xx means the request itself is
/// wrong (a bad `--api-version` is a 400), and repeating it only spends the shared quota.
fn retried(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT || status.as_u16() == 425
}

/// reqwest and rustls need a process-wide crypto provider; ring is the one compiled in.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Exponential backoff with full jitter, so that retries of several clients spread out.
fn backoff(policy: &RetryPolicy, retry: u32) -> Duration {
    let cap = policy.base_delay.saturating_mul(1u32 << retry.min(16)).min(policy.max_delay);
    let jittered = rand::rng().random_range(0.5..=1.0) * cap.as_secs_f64();
    Duration::from_secs_f64(jittered)
}

/// `Retry-After` as seconds (fractions accepted, as the simulator's compressed clock sends) or
/// as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let secs = (date.timestamp_millis() - chrono::Utc::now().timestamp_millis()).max(0) as u64;
    Some(Duration::from_millis(secs.min(3_600_000)))
}

/// Reads `x-inflow-api-rate-limit` and `x-ratelimit-limit` as `used/max` or `left/max`, as
/// `meaning` says (unknown: `used/max`, the reference not being sure). Only a full window
/// changes anything: then we wait a slot's length rather than collect a 429. A `left/max` server
/// read as `used/max` looks full only when a window is untouched, so a wrong guess costs at
/// most one short pause.
fn server_window_full(headers: &HeaderMap, minute: Duration, meaning: RateMeaning) -> Option<Duration> {
    let parse = |name: &str| -> Option<(u64, u32)> {
        let (n, max) = headers.get(name)?.to_str().ok()?.split_once('/')?;
        Some((n.trim().parse().ok()?, max.trim().parse().ok().filter(|m| *m > 0)?))
    };
    let full = |(n, max): (u64, u32)| match meaning {
        RateMeaning::Remaining => n == 0,
        RateMeaning::Used | RateMeaning::Unknown => n >= u64::from(max),
    };
    let mut wait = None;
    if let Some((n, max)) = parse("x-inflow-api-rate-limit")
        && full((n, max))
    {
        wait = Some(minute / max);
    }
    if let Some((n, max)) = parse("x-ratelimit-limit")
        && full((n, max))
    {
        wait = Some(wait.unwrap_or_default().max(minute * 60 / max));
    }
    wait
}

fn log_rate_headers(headers: &HeaderMap) {
    let get = |name| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("-");
    tracing::trace!(minute = get("x-inflow-api-rate-limit"), hour = get("x-ratelimit-limit"), "rate headers");
}

fn describe_transport(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "connection dropped while reading the body"
    } else {
        "request failed"
    };
    // The URL is left out: it is long and the caller names the request.
    let mut text = kind.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The first bytes of a body, for error messages, control characters escaped (a message reaches
/// a terminal).
pub fn body_start(body: &[u8]) -> String {
    const SHOWN: usize = 200;
    let text = String::from_utf8_lossy(&body[..body.len().min(SHOWN)]);
    let text = crate::output::printable(&text);
    if body.len() > SHOWN { format!("{text}…") } else { text.into_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn the_api_key_never_shows_in_debug_output() {
        let config = ClientConfig::new("http://x", "c", ApiKey::new("sk_live_secret"));
        assert!(!format!("{config:?}").contains("sk_live_secret"));
    }

    #[test]
    fn retry_after_reads_seconds_fractions_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("0.042"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(42)));
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        h.insert(RETRY_AFTER, HeaderValue::from_str(&soon).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(d > Duration::from_secs(25) && d <= Duration::from_secs(30), "{d:?}");
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn a_full_server_window_pauses_and_anything_else_does_not() {
        let minute = Duration::from_secs(60);
        let mut h = HeaderMap::new();
        h.insert("x-inflow-api-rate-limit", HeaderValue::from_static("12/60"));
        h.insert("x-ratelimit-limit", HeaderValue::from_static("500/1000"));
        assert_eq!(server_window_full(&h, minute, RateMeaning::Unknown), None);
        h.insert("x-inflow-api-rate-limit", HeaderValue::from_static("60/60"));
        assert_eq!(server_window_full(&h, minute, RateMeaning::Unknown), Some(Duration::from_secs(1)));
        h.insert("x-ratelimit-limit", HeaderValue::from_static("1000/1000"));
        assert_eq!(server_window_full(&h, minute, RateMeaning::Unknown), Some(Duration::from_millis(3600)));
        h.insert("x-ratelimit-limit", HeaderValue::from_static("garbage"));
        assert_eq!(server_window_full(&h, minute, RateMeaning::Unknown), Some(Duration::from_secs(1)));
        // Limits of zero, or beyond u32 (2^32 would wrap to a zero divisor), are not believed.
        for odd in ["0/0", "4294967296/4294967296", "1/-5"] {
            h.insert("x-inflow-api-rate-limit", HeaderValue::from_static(odd));
            h.insert("x-ratelimit-limit", HeaderValue::from_static(odd));
            assert_eq!(server_window_full(&h, minute, RateMeaning::Unknown), None, "{odd}");
        }
    }

    #[test]
    fn rate_headers_known_to_count_down_are_full_at_zero() {
        let minute = Duration::from_secs(60);
        let mut h = HeaderMap::new();
        h.insert("x-inflow-api-rate-limit", HeaderValue::from_static("60/60"));
        assert_eq!(server_window_full(&h, minute, RateMeaning::Remaining), None, "a fresh window, not a full one");
        assert_eq!(server_window_full(&h, minute, RateMeaning::Used), Some(Duration::from_secs(1)));
        h.insert("x-inflow-api-rate-limit", HeaderValue::from_static("0/60"));
        assert_eq!(server_window_full(&h, minute, RateMeaning::Remaining), Some(Duration::from_secs(1)));
        assert_eq!(server_window_full(&h, minute, RateMeaning::Used), None);
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter_up_to_the_cap() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        for _ in 0..50 {
            let first = backoff(&policy, 1);
            assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200), "{first:?}");
            let late = backoff(&policy, 10);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_secs(1), "{late:?}");
        }
    }

    #[test]
    fn only_429_408_425_and_server_errors_are_asked_again() {
        let asked_again: Vec<u16> =
            (400..600).filter(|s| retried(StatusCode::from_u16(*s).unwrap())).filter(|s| *s < 500).collect();
        assert_eq!(asked_again, [408, 425], "429 has its own path");
        assert!(retried(StatusCode::BAD_GATEWAY) && retried(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!retried(StatusCode::BAD_REQUEST) && !retried(StatusCode::NOT_ACCEPTABLE));
    }

    #[test]
    fn the_key_is_hidden_in_what_the_server_says_however_it_is_written() {
        let key = "sk_live/Ab+cd=";
        let client = Client::new(ClientConfig::new("http://x", "c", ApiKey::new(key))).unwrap();
        let echoed = format!(
            r#"{{"error":"bad key {}", "url":"?k={}", "raw":"Bearer {key}"}}"#,
            key.replace('/', "\\/"),
            "sk_live%2FAb%2Bcd%3D"
        );
        let shown = client.redact(&echoed);
        assert!(!shown.contains("Ab+cd") && !shown.contains("Ab%2Bcd"), "{shown}");
        assert_eq!(shown.matches("***").count(), 3, "{shown}");
        // Hidden before a long body is cut, so no half of it shows either.
        let long = format!("{}{key}{}", "x".repeat(195), "y".repeat(100));
        let start = client.shown(long.as_bytes());
        assert!(!start.contains("sk_li"), "{start}");
        let short = Client::new(ClientConfig::new("http://x", "c", ApiKey::new("k"))).unwrap();
        assert_eq!(short.redact("a key, kept"), "a key, kept");
        assert!(matches!(client.redact("nothing to hide"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn body_start_is_bounded() {
        assert_eq!(body_start(b"[{\"a\""), "[{\"a\"");
        assert_eq!(body_start(&[b'x'; 500]).chars().count(), 201);
        assert_eq!(body_start(b"<h1>\x1b[2J</h1>"), "<h1>\\u{1b}[2J</h1>");
    }
}
