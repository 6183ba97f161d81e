//! HTTP: one catch-all handler that routes `/{companyId}/{resource}[/{id}]` and `/_sim/...`,
//! checks the company and key, applies the rate limits and injected faults, answers, and logs.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use super::behaviour::{Behaviour, ListCount, RateHeaders};
use super::data::Endpoint;
use super::faults::{Fault, Faults, Injection};
use super::log::RequestRecord;
use super::paging::{ApiError, ListQuery, QueryOptions, parse_includes};
use super::ratelimit::{self, Decision, RateLimit};
use super::{Shared, SimError, lock};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

const MAX_ADMIN_BODY: usize = 16 * 1024 * 1024;

fn json_response(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut r = (status, Body::from(bytes)).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    r
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.status, &e.body())
}

fn set_header(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(HeaderName::from_static(name), v);
    }
}

async fn handle(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    let started = Instant::now();
    let at = chrono::Utc::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query: Vec<(String, String)> =
        req.uri().query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let accept = header_text(req.headers(), header::ACCEPT);
    let auth = header_text(req.headers(), header::AUTHORIZATION);
    let segs: Vec<String> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).map(str::to_string).collect();

    let admin = segs.first().is_some_and(|s| s == "_sim");
    let (endpoint, document_id) = if admin {
        ("_sim".to_string(), None)
    } else {
        (segs.get(1).cloned().unwrap_or_default(), segs.get(2).cloned())
    };
    let seq = lock(&sh.log).next_seq();

    let (response, fault) = if admin {
        let body = axum::body::to_bytes(req.into_body(), MAX_ADMIN_BODY).await.unwrap_or_default();
        (admin_route(&sh, &method, &segs[1..], &body).await, None)
    } else {
        api(&sh, &method, &segs, &query, auth.as_deref()).await
    };
    if !admin && document_id.is_none() && method == Method::GET && response.status().is_success() {
        sh.list_answered(&endpoint);
    }

    lock(&sh.log).push(RequestRecord {
        seq,
        method: method.to_string(),
        path,
        endpoint,
        document_id,
        query,
        accept,
        status: response.status().as_u16(),
        at,
        elapsed: started.elapsed(),
        fault,
    });
    response
}

fn header_text(h: &HeaderMap, name: header::HeaderName) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn rate_headers(h: &mut HeaderMap, limit: Option<RateLimit>, used: (u32, u32), style: RateHeaders) {
    if let Some(l) = limit {
        let shown = |used: u32, max: u32| match style {
            RateHeaders::Used => used,
            RateHeaders::Remaining => max.saturating_sub(used),
        };
        set_header(h, "x-inflow-api-rate-limit", &format!("{}/{}", shown(used.0, l.per_minute), l.per_minute));
        set_header(h, "x-ratelimit-limit", &format!("{}/{}", shown(used.1, l.per_hour), l.per_hour));
    }
}

fn bearer_ok(auth: Option<&str>, key: &str) -> bool {
    let Some(a) = auth else { return false };
    let mut parts = a.trim().splitn(2, ' ');
    let scheme = parts.next().unwrap_or("");
    let token = parts.next().unwrap_or("").trim();
    scheme.eq_ignore_ascii_case("bearer") && token == key
}

async fn api(
    sh: &Shared,
    method: &Method,
    segs: &[String],
    query: &[(String, String)],
    auth: Option<&str>,
) -> (Response, Option<String>) {
    let limit = *lock(&sh.rate_limit);
    let style = lock(&sh.behaviour).rate_headers;
    let peek = |sh: &Shared| lock(&sh.limiter).peek(sh.time_scale, Instant::now());

    // GUIDs match whatever their case, as ASP.NET route values do.
    if !segs.first().is_some_and(|c| c.eq_ignore_ascii_case(&sh.company)) {
        let mut r = error_response(&ApiError::not_found("Company not found"));
        rate_headers(r.headers_mut(), limit, peek(sh), style);
        return (r, None);
    }
    if !bearer_ok(auth, &sh.api_key) {
        let mut r = json_response(
            401,
            &json!({"message": "Authorization has been denied for this request.", "code": "Unauthorized"}),
        );
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        rate_headers(r.headers_mut(), limit, peek(sh), style);
        return (r, None);
    }
    let used = match limit {
        None => (0, 0),
        Some(l) => match lock(&sh.limiter).check(l, sh.time_scale, Instant::now()) {
            Decision::Allowed { minute, hour } => (minute, hour),
            Decision::Limited { retry_after, minute, hour } => {
                let mut r = json_response(429, &json!({"message": "Too many requests", "code": "TooManyRequests"}));
                set_header(r.headers_mut(), "retry-after", &ratelimit::format_retry_after(retry_after));
                rate_headers(r.headers_mut(), limit, (minute, hour), style);
                return (r, None);
            }
        },
    };

    let mut inj = Injection::default();
    let mut response = 'answer: {
        let Some(endpoint) = segs.get(1).and_then(|s| Endpoint::parse(s)) else {
            break 'answer error_response(&ApiError::not_found("No such resource"));
        };
        if segs.len() > 3 || lock(&sh.behaviour).unavailable.iter().any(|u| u == endpoint.name()) {
            break 'answer error_response(&ApiError::not_found("No such resource"));
        }
        if method != Method::GET {
            break 'answer json_response(
                405,
                &json!({"message": "The simulator serves GET only", "code": "MethodNotAllowed"}),
            );
        }
        let is_list = segs.len() == 2;
        inj = lock(&sh.faults).decide(endpoint.name(), is_list);
        if !inj.delay.is_zero() {
            tokio::time::sleep(inj.delay).await;
        }
        match &inj.fault {
            Some(Fault::Status { status }) => {
                break 'answer json_response(
                    *status,
                    &json!({"message": "Injected server error", "code": "ServerError"}),
                );
            }
            Some(Fault::TooManyRequests { retry_after_secs }) => {
                let mut r = json_response(429, &json!({"message": "Too many requests", "code": "TooManyRequests"}));
                // A configured value, but from JSON too: never panic on NaN or overflow.
                let d = Duration::try_from_secs_f64(retry_after_secs.max(0.0)).unwrap_or(Duration::from_secs(3600));
                set_header(r.headers_mut(), "retry-after", &ratelimit::format_retry_after(d));
                break 'answer r;
            }
            _ => {}
        }
        let result = if is_list { answer_list(sh, endpoint, query) } else { answer_one(sh, endpoint, &segs[2], query) };
        match result {
            Err(e) => error_response(&e),
            Ok((bytes, count)) => ok_body(bytes, count, inj.fault.as_ref()),
        }
    };
    rate_headers(response.headers_mut(), limit, used, style);
    (response, inj.describe())
}

fn answer_list(
    sh: &Shared,
    endpoint: Endpoint,
    query: &[(String, String)],
) -> Result<(Vec<u8>, Option<usize>), ApiError> {
    let behaviour = lock(&sh.behaviour).clone();
    let counted = behaviour.list_count != ListCount::Absent;
    let opts = QueryOptions {
        default_count: sh.default_count,
        max_count: 100,
        reject_keyset: sh.reject_keyset.load(Ordering::SeqCst),
        behaviour,
        refuse_sheet_lines: sh.refuse_sheet_lines.load(Ordering::SeqCst),
    };
    let q = ListQuery::parse(endpoint, query, &opts)?;
    let (bytes, total) = sh.read().list_json(endpoint, &q)?;
    Ok((bytes, (q.include_count && counted).then_some(total)))
}

fn answer_one(
    sh: &Shared,
    endpoint: Endpoint,
    id: &str,
    query: &[(String, String)],
) -> Result<(Vec<u8>, Option<usize>), ApiError> {
    let includes = parse_includes(
        endpoint,
        query.iter().filter(|(k, _)| k == "include").map(|(_, v)| v.as_str()),
        sh.refuse_sheet_lines.load(Ordering::SeqCst),
    )?;
    let missing = || ApiError::not_found(format!("No {endpoint} entity with id {id}"));
    let id = Uuid::parse_str(id).map_err(|_| missing())?;
    Ok((sh.read().one_json(endpoint, id, &includes)?, None))
}

/// A 200 JSON body, possibly spoiled by a body fault.
fn ok_body(bytes: Vec<u8>, count: Option<usize>, fault: Option<&Fault>) -> Response {
    let mut r = match fault {
        Some(Fault::MalformedJson) => {
            // Half the body: an unclosed array or object is never valid JSON.
            let cut = (bytes.len() / 2).max(1).min(bytes.len().saturating_sub(1));
            (StatusCode::OK, Body::from(bytes[..cut].to_vec())).into_response()
        }
        Some(Fault::DropMidBody { after_bytes }) => {
            // Headers go out, then some bytes, then the stream errors and hyper closes the
            // connection without finishing the chunked body.
            // The pause lets hyper flush the head and the first bytes before the error; an
            // immediate error makes it drop the connection before sending anything.
            use futures_util::StreamExt;
            let cut = (*after_bytes).min(bytes.len().saturating_sub(1));
            let first = Bytes::copy_from_slice(&bytes[..cut]);
            let head = futures_util::stream::iter([Ok::<Bytes, std::io::Error>(first)]);
            let tail = futures_util::stream::once(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err::<Bytes, std::io::Error>(std::io::Error::other("injected connection drop"))
            });
            (StatusCode::OK, Body::from_stream(head.chain(tail))).into_response()
        }
        _ => (StatusCode::OK, Body::from(bytes)).into_response(),
    };
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    if let Some(n) = count {
        set_header(r.headers_mut(), "x-listcount", &n.to_string());
    }
    r
}

// ---------------------------------------------------------------------------------------------
// Admin routes: /_sim/...

fn sim_error(e: &SimError) -> Response {
    let status = match e {
        SimError::UnknownEndpoint(_)
        | SimError::UnknownDocument(..)
        | SimError::UnknownCollection(..)
        | SimError::UnknownLine(..) => 404,
        _ => 400,
    };
    json_response(status, &json!({"message": e.to_string(), "code": "SimulatorError"}))
}

fn done(r: Result<(), SimError>) -> Response {
    match r {
        Ok(()) => json_response(200, &json!({"ok": true})),
        Err(e) => sim_error(&e),
    }
}

#[allow(clippy::result_large_err)] // only on the admin path; a boxed response buys nothing
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|e| json_response(400, &json!({"message": format!("bad JSON body: {e}"), "code": "BadBody"})))
}

/// `/_sim/health`, `/_sim/scenario`, `/_sim/counts`, `/_sim/requests` (GET, DELETE),
/// `/_sim/faults` (GET, PUT), `/_sim/rate-limit` (PUT, body a RateLimit or null),
/// `/_sim/reject-keyset` (PUT, body true/false), `/_sim/behaviour` (GET, PUT: a Behaviour), `/_sim/documents/{endpoint}` (GET: ground
/// truth; POST: insert, body the document), `/_sim/documents/{endpoint}/{id}` (DELETE),
/// `.../{id}/cancel` and `.../{id}/uncancel` (POST), `.../{id}/date` (PUT `{"date": ...}`),
/// `.../{id}/lines/{collection}/{lineId}/serials` (PUT `{"serialNumbers": [...]}`) and
/// `.../{id}/lines/{collection}/{lineId}/location` (PUT `{"locationId", "sublocation"}`).
async fn admin_route(sh: &Shared, method: &Method, segs: &[String], body: &[u8]) -> Response {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = method.clone();
    let get = m == Method::GET;
    match (m, s.as_slice()) {
        (_, ["health"]) if get => json_response(200, &json!({"ok": true})),
        (_, ["scenario"]) if get => {
            json_response(200, &serde_json::to_value(&sh.read().scenario).unwrap_or(Value::Null))
        }
        (_, ["counts"]) if get => {
            let st = sh.read();
            json_response(200, &json!({"documents": st.counts(), "serialOccurrences": st.serial_occurrences()}))
        }
        (_, ["requests"]) if get => {
            json_response(200, &serde_json::to_value(lock(&sh.log).all()).unwrap_or(Value::Null))
        }
        (Method::DELETE, ["requests"]) => {
            lock(&sh.log).clear();
            json_response(200, &json!({"ok": true}))
        }
        (_, ["faults"]) if get => {
            json_response(200, &serde_json::to_value(lock(&sh.faults).get()).unwrap_or(Value::Null))
        }
        (Method::PUT, ["faults"]) => match parse_body::<Faults>(body) {
            Ok(f) => {
                lock(&sh.faults).set(f);
                json_response(200, &json!({"ok": true}))
            }
            Err(r) => r,
        },
        (Method::PUT, ["rate-limit"]) => match parse_body::<Option<RateLimit>>(body) {
            Ok(l) => {
                *lock(&sh.rate_limit) = l;
                lock(&sh.limiter).reset();
                json_response(200, &json!({"ok": true}))
            }
            Err(r) => r,
        },
        (_, ["behaviour"]) if get => {
            json_response(200, &serde_json::to_value(&*lock(&sh.behaviour)).unwrap_or(Value::Null))
        }
        (Method::PUT, ["behaviour"]) => match parse_body::<Behaviour>(body) {
            Ok(b) => {
                *lock(&sh.behaviour) = b;
                json_response(200, &json!({"ok": true}))
            }
            Err(r) => r,
        },
        (Method::PUT, ["reject-keyset"]) => match parse_body::<bool>(body) {
            Ok(b) => {
                sh.reject_keyset.store(b, Ordering::SeqCst);
                json_response(200, &json!({"ok": true}))
            }
            Err(r) => r,
        },
        (_, ["documents", ep]) if get => match Endpoint::parse(ep) {
            Some(e) => json_response(200, &Value::Array(sh.read().everything(e))),
            None => sim_error(&SimError::UnknownEndpoint(ep.to_string())),
        },
        (Method::POST, ["documents", ep]) => match parse_body::<Value>(body) {
            Ok(doc) => match sh.write().insert_document(ep, &doc) {
                Ok(id) => json_response(201, &json!({"id": id})),
                Err(e) => sim_error(&e),
            },
            Err(r) => r,
        },
        (Method::DELETE, ["documents", ep, id]) => done(sh.write().delete(ep, id)),
        (Method::POST, ["documents", ep, id, "cancel"]) => done(sh.write().set_cancelled(ep, id, true)),
        (Method::POST, ["documents", ep, id, "uncancel"]) => done(sh.write().set_cancelled(ep, id, false)),
        (Method::PUT, ["documents", ep, id, "date"]) => {
            #[derive(serde::Deserialize)]
            struct B {
                date: chrono::DateTime<chrono::FixedOffset>,
            }
            match parse_body::<B>(body) {
                Ok(b) => done(sh.write().set_document_date(ep, id, b.date)),
                Err(r) => r,
            }
        }
        (Method::PUT, ["documents", ep, id, "lines", coll, line, "serials"]) => {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct B {
                serial_numbers: Vec<String>,
            }
            match parse_body::<B>(body) {
                Ok(b) => done(sh.write().edit_line_serials(ep, id, coll, line, b.serial_numbers)),
                Err(r) => r,
            }
        }
        (Method::PUT, ["documents", ep, id, "lines", coll, line, "location"]) => {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct B {
                location_id: String,
                #[serde(default)]
                sublocation: String,
            }
            match parse_body::<B>(body) {
                Ok(b) => done(sh.write().set_line_location(ep, id, coll, line, &b.location_id, &b.sublocation)),
                Err(r) => r,
            }
        }
        _ => json_response(404, &json!({"message": "No such simulator route", "code": "NotFound"})),
    }
}
