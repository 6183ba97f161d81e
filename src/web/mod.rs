//! `audit serve`: the audit trail as server-rendered pages, read-only, with no external assets.
//!
//! Templates are [maud](https://maud.lambda.xyz) macros: checked when the crate compiles, and
//! every interpolated value is HTML-escaped unless explicitly marked otherwise (only the fixed
//! style sheet is). Pages call the functions the commands call (the store's queries, the
//! timeline's story, the shipped `sql/recall.sql`), never a copy of their SQL.

pub mod auth;
pub mod lane;
pub mod layout;
pub mod pages;
pub mod server;

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::html;

use crate::store::Store;

/// What every page handler reads.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The read-only store the pages read.
    pub store: Store,
    /// Only this company, when given.
    pub company_id: Option<String>,
    /// The zone times are shown in, named once at start-up.
    pub zone: String,
}

/// The pages, behind the token check (when there is a token) or else the `Host` check, the
/// refusal of control characters in parameters, and the security headers. Only GET (and HEAD)
/// routes exist: anything else is answered 405. `bind` is the address served on; `limits` bound
/// the pages built at once and the time each may take (see [`server::within_limits`]).
pub fn router(state: AppState, token: Option<String>, bind: IpAddr, limits: &server::Limits) -> Router {
    let state = Arc::new(state);
    let pages = Router::new()
        .route("/", get(pages::search))
        .route("/serial", get(pages::serial))
        .route("/document", get(pages::document))
        .route("/recall", get(pages::recall))
        .route("/anomalies", get(pages::anomalies))
        .route("/reconcile", get(pages::reconcile))
        .route("/status", get(pages::status))
        .fallback(pages::not_found)
        .with_state(state);
    let pages = pages.layer(middleware::from_fn(no_control_characters));
    // Inside the token check: a request without the token takes no turn.
    let pages =
        pages.layer(middleware::from_fn_with_state(Arc::new(server::PageLimits::new(limits)), server::within_limits));
    let pages = match token {
        Some(token) => pages.layer(middleware::from_fn_with_state(Arc::new(auth::Token::new(&token)), auth::check)),
        None => pages.layer(middleware::from_fn_with_state(bind, local_host)),
    };
    pages.layer(middleware::from_fn(security_headers))
}

/// Without a token, a request must name this server by address (`127.0.0.1:8080`, `[::1]`) or
/// as `localhost`: a web page whose own name has been rebound to 127.0.0.1 (DNS rebinding)
/// could otherwise read the trail with its scripts. An IP address as `Host` is no rebinding;
/// on a loopback bind only loopback addresses are expected.
pub fn host_allowed(host: &str, bind: IpAddr) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((ip, port))
                if port.is_empty() || port.strip_prefix(':').is_some_and(|p| p.chars().all(|c| c.is_ascii_digit())) =>
            {
                ip
            }
            _ => return false,
        },
        None => host
            .rsplit_once(':')
            .map_or(host, |(name, port)| if port.chars().all(|c| c.is_ascii_digit()) { name } else { host }),
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback() || !bind.is_loopback(),
        Err(_) => false,
    }
}

async fn local_host(
    axum::extract::State(bind): axum::extract::State<IpAddr>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    if host.as_deref().is_some_and(|h| host_allowed(h, bind)) {
        return next.run(request).await;
    }
    let body = html! {
        h1 { "Wrong address" }
        p.error { "This audit view has no token, so it answers only when reached as localhost or by its IP address." }
        p { "Open it as http://127.0.0.1:PORT/, or start " code { "audit serve --token …" } " to reach it under another name." }
    };
    (StatusCode::MISDIRECTED_REQUEST, layout::page("Wrong address", &layout::zone_label(), body)).into_response()
}

/// A NUL or another control character in a parameter is no serial or document number (and a
/// NUL is refused by Postgres): 400, on both databases, before any handler reads it.
async fn no_control_characters(request: Request, next: Next) -> Response {
    let query = request.uri().query().unwrap_or("");
    let bad = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, v)| k.chars().chain(v.chars()).any(char::is_control))
        .map(|(k, _)| k.into_owned());
    match bad {
        Some(name) => PageError::BadRequest(format!(
            "The parameter {:?} contains a control character (a NUL, a line break, …), which no serial, document \
             number or date has. Check what was pasted.",
            crate::output::printable(&name)
        ))
        .into_response(),
        None => next.run(request).await,
    }
}

/// No script, no frame, nothing fetched from elsewhere: the pages are HTML with inline style
/// and inline SVG only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::CACHE_CONTROL, "no-store");
    response
}

/// Serving on a non-loopback address without a token or `--no-auth`: refused, with the address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "refusing to serve on {0} without a token: anyone who can reach that address could read the audit trail. \
     Give --token (or AUDIT_SERVE_TOKEN), serve on 127.0.0.1 and reach it through an SSH tunnel or a proxy, \
     or pass --no-auth if the network is trusted"
)]
pub struct BindRefused(pub IpAddr);

/// A `--token` (or `AUDIT_SERVE_TOKEN`) that is empty or only spaces: refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "the token given with --token (or AUDIT_SERVE_TOKEN) is empty or only spaces: give a real one \
     (from `openssl rand -hex 16`, say), or leave it out (and unset AUDIT_SERVE_TOKEN) to serve on 127.0.0.1 without one"
)]
pub struct EmptyToken;

/// The token to require: none when not given; an empty or blank one is refused.
pub fn token(given: Option<&str>) -> Result<Option<String>, EmptyToken> {
    match given {
        None => Ok(None),
        Some(t) if t.trim().is_empty() => Err(EmptyToken),
        Some(t) => Ok(Some(t.to_string())),
    }
}

/// A loopback address may be served as is; any other needs a token or an explicit `--no-auth`.
pub fn check_bind(addr: IpAddr, token: Option<&str>, no_auth: bool) -> Result<(), BindRefused> {
    let has_token = token.is_some_and(|t| !t.is_empty());
    if addr.is_loopback() || has_token || no_auth { Ok(()) } else { Err(BindRefused(addr)) }
}

/// A page that could not be built: answered with its status and a sentence saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// A parameter that cannot be used (400), with what is wrong with it.
    #[error("{0}")]
    BadRequest(String),
    /// A page this view does not offer, for a reason given.
    #[error("{0}")]
    Unavailable(String),
    /// A page not built in time, or no turn to build it (503), with what to do.
    #[error("{0}")]
    TooSlow(String),
    /// No such serial, document or page (404), with serials that may have been meant.
    #[error("{message}")]
    NotFound {
        /// The page's title.
        title: String,
        /// What was not found, and what to try.
        message: String,
        /// Serials like the one asked for, each linked to its page.
        suggestions: Vec<String>,
    },
    /// A read that failed (500): the page names what failed; the log line has the cause.
    #[error("{what}: {source:#}")]
    Failed {
        /// What was being read.
        what: String,
        /// The cause, logged but not shown.
        #[source]
        source: anyhow::Error,
    },
}

impl PageError {
    /// A [`PageError::Failed`]: `what` was being read when `source` went wrong.
    pub fn failed(what: impl Into<String>, source: impl Into<anyhow::Error>) -> PageError {
        PageError::Failed { what: what.into(), source: source.into() }
    }

    /// The operator's log line for a failure: one line, whatever the request carried.
    pub fn log_line(&self) -> String {
        let text = match self {
            PageError::Failed { what, source } => format!("{what}: {}", crate::error_text(source.as_ref())),
            other => other.to_string(),
        };
        crate::output::printable(&text).into_owned()
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let zone = layout::zone_label();
        let (status, title, body) = match &self {
            PageError::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, "Bad request".to_string(), html! { p.error { (message) } })
            }
            PageError::Unavailable(message) => {
                (StatusCode::FORBIDDEN, "Not available here".to_string(), html! { p.error { (message) } })
            }
            PageError::TooSlow(message) => {
                (StatusCode::SERVICE_UNAVAILABLE, "Not answered in time".to_string(), html! { p.error { (message) } })
            }
            PageError::NotFound { title, message, suggestions } => (
                StatusCode::NOT_FOUND,
                title.clone(),
                html! {
                    p.error { (message) }
                    @if !suggestions.is_empty() {
                        p { "Did you mean:" }
                        ul.plain.suggestions {
                            @for s in suggestions { li { a href=(layout::serial_href(s)) { (layout::Shown(s)) } } }
                        }
                    }
                    (pages::search_form(""))
                },
            ),
            PageError::Failed { what, .. } => {
                // The details go to the operator's terminal, escaped to one line; the page says
                // what failed and what to do, not what the database driver said. A page whose
                // client was already answered 503 was logged then.
                if server::given_up() {
                    tracing::debug!("{} (after its 503)", self.log_line());
                } else {
                    tracing::error!("{}", self.log_line());
                }
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Error".to_string(),
                    html! {
                        p.error { (layout::Shown(what)) " failed." }
                        p { "Try again in a moment; if it keeps failing, the terminal running `audit serve` has the details." }
                    },
                )
            }
        };
        (status, layout::page(&title, &zone, html! { h1 { (title) } (body) })).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_served_without_a_token_or_no_auth() {
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let lan: IpAddr = "192.168.1.10".parse().unwrap();
        for local in ["127.0.0.1", "::1"] {
            assert_eq!(check_bind(local.parse().unwrap(), None, false), Ok(()));
        }
        assert_eq!(check_bind(any, None, false), Err(BindRefused(any)));
        assert_eq!(check_bind(lan, Some(""), false), Err(BindRefused(lan)), "an empty token is no token");
        assert_eq!(check_bind(lan, Some("s3cret"), false), Ok(()));
        assert_eq!(check_bind(any, None, true), Ok(()));
    }

    #[test]
    fn without_a_token_only_addresses_and_localhost_are_answered() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        for host in ["localhost", "localhost:8080", "LOCALHOST:1", "127.0.0.1", "127.0.0.1:8080", "[::1]:8080", "[::1]"]
        {
            assert!(host_allowed(host, local), "{host}");
        }
        for host in
            ["attacker.example", "attacker.example:8080", "localhost.attacker.example", "192.168.1.2:8080", "", "[::1"]
        {
            assert!(!host_allowed(host, local), "{host}");
        }
        // Served on the network with --no-auth: its addresses, never a name that could be rebound.
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        assert!(host_allowed("192.168.1.2:8080", any) && host_allowed("[fe80::1]:80", any));
        assert!(!host_allowed("nas.local:8080", any));
    }

    #[test]
    fn an_empty_or_blank_token_is_refused() {
        assert_eq!(token(None), Ok(None));
        assert_eq!(token(Some("")), Err(EmptyToken));
        assert_eq!(token(Some(" \t")), Err(EmptyToken));
        assert_eq!(token(Some("s3cret")), Ok(Some("s3cret".into())));
    }

    #[test]
    fn a_failure_is_logged_on_one_line() {
        let e = PageError::failed(
            format!("the recall of {}", "x\n2026-01-01T00:00:00Z  INFO forged"),
            anyhow::anyhow!("driver said\nmore"),
        );
        let line = e.log_line();
        assert!(!line.contains('\n') && line.contains("x\\n2026") && line.contains("said\\nmore"), "{line}");
    }

    #[tokio::test]
    async fn a_failure_page_does_not_show_the_driver_message() {
        let e = PageError::failed("reading serial \"A\"", anyhow::anyhow!("invalid byte sequence 0x00 (driver)"));
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("failed.") && !body.contains("driver"), "{body}");
    }
}
