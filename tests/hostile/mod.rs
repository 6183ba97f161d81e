//! Servers that misbehave on purpose, for the tests of issue 19: each answers every request of
//! `/{company}/{endpoint}` with what a closure says, and counts the requests per endpoint.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// What the closure is told about a request.
#[derive(Debug, Clone)]
pub struct Asked {
    pub endpoint: String,
    pub query: Vec<(String, String)>,
    /// The key after `Bearer `, if any.
    pub key: Option<String>,
}

pub type Requests = Arc<Mutex<BTreeMap<String, usize>>>;

pub struct Hostile {
    pub base_url: String,
    pub port: u16,
    pub requests: Requests,
}

impl Hostile {
    pub fn count(&self, endpoint: &str) -> usize {
        self.requests.lock().unwrap().get(endpoint).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.requests.lock().unwrap().values().sum()
    }
}

/// A server whose every answer is `answer(request)`.
pub async fn serve(answer: impl Fn(Asked) -> Response + Clone + Send + Sync + 'static) -> Hostile {
    use axum::extract::{Path, Query, State};
    let requests = Requests::default();
    let app = axum::Router::new()
        .route(
            "/{company}/{*endpoint}",
            axum::routing::get(
                move |State(requests): State<Requests>,
                      Path((_, endpoint)): Path<(String, String)>,
                      Query(query): Query<Vec<(String, String)>>,
                      headers: HeaderMap| {
                    let answer = answer.clone();
                    async move {
                        *requests.lock().unwrap().entry(endpoint.clone()).or_insert(0) += 1;
                        let key = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.strip_prefix("Bearer "))
                            .map(str::to_string);
                        answer(Asked { endpoint, query, key })
                    }
                },
            ),
        )
        .with_state(requests.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Hostile { base_url: format!("http://127.0.0.1:{port}"), port, requests }
}

/// A 200 with a JSON text body, as is (so it may hold what `serde_json::Value` cannot).
pub fn json_text(body: impl Into<String>) -> Response {
    (StatusCode::OK, [("content-type", "application/json")], body.into()).into_response()
}

pub fn status(code: u16, body: impl Into<String>) -> Response {
    (StatusCode::from_u16(code).unwrap(), body.into()).into_response()
}

/// A 200 whose body never ends: one byte every `every`.
pub fn drip(every: Duration) -> Response {
    let stream = futures_util::stream::unfold((), move |()| async move {
        tokio::time::sleep(every).await;
        Some((Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b" ")), ()))
    });
    (StatusCode::OK, [("content-type", "application/json")], Body::from_stream(stream)).into_response()
}

/// Environment that points the binary at a server, for company `c1` with `key`.
pub fn env_for(base_url: &str, key: &str) -> Vec<(&'static str, String)> {
    vec![
        ("INFLOW_BASE_URL", base_url.to_string()),
        ("INFLOW_COMPANY_ID", "c1".to_string()),
        ("INFLOW_API_KEY", key.to_string()),
    ]
}

/// Runs the binary with the given environment (without blocking the server on this runtime).
pub fn run_with(db_url: &str, args: &[&str], env: &[(&'static str, String)]) -> (i32, String, String) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    tokio::task::block_in_place(|| crate::common::run_audit(db_url, args, &env))
}
