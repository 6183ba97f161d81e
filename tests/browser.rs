//! `audit serve` in a real browser: the demo database, served, and the search, serial and recall
//! pages loaded in headless Chromium. The rendered DOM must show the timeline rows and the SVG
//! lane. Skipped (visibly) when Chromium is not installed, unless `AUDIT_REQUIRE_CHROMIUM=1`
//! (CI sets it, and `.ci/run` installs Debian's `chromium`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|p| p.is_file()))
    });
    if found.is_none() {
        if std::env::var("AUDIT_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            panic!("AUDIT_REQUIRE_CHROMIUM=1 but no chromium on PATH: apt-get install -y chromium");
        }
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED browser test: no chromium on PATH (apt-get install -y chromium), or set AUDIT_REQUIRE_CHROMIUM=1 \
             to make this a failure"
        );
    }
    found
}

/// Headless Chromium with what a container needs (no sandbox as root, no GPU), a throwaway
/// profile, and a bound on time.
fn headless(browser: &Path, profile: &Path, args: &[&str], url: &str) -> std::process::Output {
    let mut child = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().expect("chromium status").is_some() {
            return child.wait_with_output().expect("chromium output");
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish loading {url} within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn dom(browser: &Path, profile: &Path, url: &str) -> String {
    let out = headless(browser, profile, &["--dump-dom"], url);
    assert!(out.status.success(), "chromium failed on {url}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("the DOM is UTF-8")
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value after `key` in the demo's "Next, try:" lines.
fn after<'a>(text: &'a str, key: &str) -> &'a str {
    let start = text.find(key).unwrap_or_else(|| panic!("{key} not in the demo's output:\n{text}")) + key.len();
    text[start..].split_whitespace().next().unwrap()
}

#[test]
fn search_serial_and_recall_pages_render_in_chromium() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("demo.db").display());
    let demo = Command::new(env!("CARGO_BIN_EXE_audit"))
        .args(["--database-url", &url, "demo"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run audit demo");
    let demo_out = String::from_utf8_lossy(&demo.stdout).into_owned();
    assert!(demo.status.success(), "{demo_out}{}", String::from_utf8_lossy(&demo.stderr));
    let serial = after(&demo_out, "timeline ").to_string();
    let po = after(&demo_out, "po_number=").to_string();

    let mut child = Command::new(env!("CARGO_BIN_EXE_audit"))
        .args(["--database-url", &url, "serve", "--port", "0"])
        .env_remove("RUST_LOG")
        .env_remove("AUDIT_SERVE_TOKEN")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start audit serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _server = Server(child);
    let base = line.split_whitespace().find(|w| w.starts_with("http://")).expect("address").trim_end_matches('/');
    let profile = dir.path().join("profile");
    let q = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();

    let search = dom(&browser, &profile, &format!("{base}/?q={}", q(&serial[..serial.len() - 1])));
    assert!(search.contains(&format!("href=\"/serial?serial={}\"", q(&serial))), "{search}");

    let page = dom(&browser, &profile, &format!("{base}/serial?serial={}", q(&serial)));
    let (code, json, _) = common::run_audit(&url, &["timeline", &serial, "--format", "json"], &[]);
    assert_eq!(code, 0);
    let history: serde_json::Value = serde_json::from_str(&json).unwrap();
    let events: usize =
        history["histories"].as_array().unwrap().iter().map(|h| h["events"].as_array().unwrap().len()).sum();
    assert!(events >= 6, "the demo's serial is received, transferred, sold, shipped, returned and restocked");
    assert_eq!(page.matches("<tr class=\"event").count(), events, "{page}");
    assert!(page.contains("<svg") && page.contains("class=\"stay"), "the lane is in the rendered DOM: {page}");
    for event in ["received", "transfer sent", "picked", "shipped", "customer return", "restocked"] {
        assert!(page.contains(&format!("<td>{event}</td>")), "{event} in the timeline");
    }

    let recall = dom(&browser, &profile, &format!("{base}/recall?po={}", q(&po)));
    assert!(recall.matches("<tr class=\"unit\"").count() >= 1, "{recall}");
    assert!(recall.contains(&serial));

    // The README's screenshot is taken this way; here it only has to come out as a PNG.
    let shot = dir.path().join("serial.png");
    let out = headless(
        &browser,
        &profile,
        &[&format!("--screenshot={}", shot.display()), "--window-size=1100,1300"],
        &format!("{base}/serial?serial={}", q(&serial)),
    );
    assert!(out.status.success());
    let png = std::fs::read(&shot).expect("the screenshot is written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} bytes", png.len());
}
