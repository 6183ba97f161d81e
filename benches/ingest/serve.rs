//! Figure 8: the latency of `audit serve`'s serial page over HTTP, p50 and p95, on the databases
//! of figure 5 (10 million events). The server is the release binary on a free port; the client
//! keeps one connection alive and asks for serials spread over the whole range, one at a time.
//! Baseline: the same server's search page without a query (the HTTP round trip and the page
//! shell, no database read), measured the same way in the same run.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::env;
use crate::report::{Figure, Goal};

pub fn blank(id: &str, backend: &str) -> Figure {
    Figure::new(
        id,
        format!("serial page p95 over HTTP, {backend}"),
        "ms",
        Goal::ValueBelow { value: 50.0 },
        "search page without a query",
    )
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

/// Times `requests` serial pages (serials from `serials`, cycled) and as many search pages.
pub async fn measure(
    id: &str,
    backend: &str,
    db_url: &str,
    events: u64,
    serials: Vec<String>,
    requests: usize,
) -> Figure {
    let figure = blank(id, backend);
    let mut cmd = env::audit(db_url);
    cmd.args(["serve", "--port", "0"]).env_remove("AUDIT_SERVE_TOKEN").stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return figure.failed(format!("cannot start audit serve: {e}")),
    };
    let stdout = child.stdout.take();
    let server = Server(child);
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        if let Some(out) = stdout {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        line
    })
    .await
    .unwrap_or_default();
    let Some(base) =
        line.split_whitespace().find(|w| w.starts_with("http://")).map(|b| b.trim_end_matches('/').to_string())
    else {
        return figure.failed(format!("audit serve printed no address: {line:?}"));
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = match reqwest::Client::builder().timeout(Duration::from_secs(30)).build() {
        Ok(c) => c,
        Err(e) => return figure.failed(format!("no HTTP client: {e}")),
    };
    let get = |query: Vec<(&'static str, String)>, path: &'static str| {
        let request = http.get(format!("{base}{path}")).query(&query);
        async move {
            let started = Instant::now();
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response.text().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((started.elapsed(), status.as_u16(), body))
        }
    };
    // One untimed pass warms the caches and the connection.
    for serial in serials.iter().take(requests.min(serials.len())) {
        if let Err(e) = get(vec![("serial", serial.clone())], "/serial").await {
            return figure.failed(format!("GET /serial?serial={serial}: {e}"));
        }
    }
    let (mut page_ms, mut floor_ms) = (Vec::new(), Vec::new());
    for i in 0..requests {
        let serial = &serials[i % serials.len()];
        let timed = get(vec![("serial", serial.clone())], "/serial").await;
        match timed {
            Ok((took, 200, body)) if body.contains("<tr class=\"event") && body.contains("<svg") => {
                page_ms.push(took.as_secs_f64() * 1000.0)
            }
            Ok((_, status, body)) => {
                return figure.failed(format!(
                    "GET /serial?serial={serial} answered {status} without timeline rows: {}",
                    body.chars().take(300).collect::<String>()
                ));
            }
            Err(e) => return figure.failed(format!("GET /serial?serial={serial}: {e}")),
        }
        match get(Vec::new(), "/").await {
            Ok((took, 200, _)) => floor_ms.push(took.as_secs_f64() * 1000.0),
            Ok((_, status, _)) => return figure.failed(format!("GET / answered {status}")),
            Err(e) => return figure.failed(format!("GET /: {e}")),
        }
    }
    drop(server);
    let (p50, p95) = (percentile(&page_ms, 50.0), percentile(&page_ms, 95.0));
    let (floor50, floor95) = (percentile(&floor_ms, 50.0), percentile(&floor_ms, 95.0));
    figure
        .measured(p95, Some(floor95), None)
        .note(format!(
            "p50 {p50:.1} ms (search page {floor50:.1} ms); {requests} requests, {} serials, over {} events",
            serials.len().min(requests),
            crate::report::thousands(events as i64)
        ))
        .details(json!({
            "events": events,
            "p50_ms": p50,
            "p95_ms": p95,
            "search_p50_ms": floor50,
            "search_p95_ms": floor95,
            "page_ms": page_ms,
            "search_ms": floor_ms,
        }))
}
