//! The page shell, its style sheet, and how times and places are shown.

use chrono::{DateTime, Local, Utc};
use maud::{DOCTYPE, Markup, html};

/// Inline, so the page needs nothing else (the CSP allows inline style and nothing external).
const STYLE: &str = "
:root{--fg:#1d2433;--muted:#5b6477;--line:#d9dee8;--bg:#fff;--card:#f5f7fb;--accent:#1f5fbf;--bad:#b42318;--good:#127a3e}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{background:#13233f;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;align-items:center}
header a{color:#fff;text-decoration:none}header b{font-size:1.05rem;margin-right:.6rem}
main{padding:1rem;max-width:72rem;margin:auto}
a{color:var(--accent)}h1{font-size:1.35rem;margin:.4rem 0 .8rem;word-break:break-all}h2{font-size:1.1rem;margin:1.4rem 0 .5rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.8rem 1rem;margin:.6rem 0}
.status{display:inline-block;padding:.1rem .5rem;border-radius:1rem;background:#e4ecfb;font-weight:600;font-size:.85rem}
.status.with_customer{background:#fdecc8}.status.in_stock{background:#d7f5e3}.status.missing,.status.adjusted_out{background:#fde0dd}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--card);white-space:nowrap}td a,td time{white-space:nowrap}tr.retracted td{color:var(--muted);text-decoration:line-through}
td.num{text-align:right;font-variant-numeric:tabular-nums}
form{display:flex;flex-wrap:wrap;gap:.5rem;margin:.5rem 0}input{font:inherit;padding:.4rem .6rem;border:1px solid var(--line);border-radius:6px;min-width:14rem;flex:1}
button{font:inherit;padding:.4rem .9rem;border:0;border-radius:6px;background:var(--accent);color:#fff}
.muted{color:var(--muted)}.error{color:var(--bad)}ul.plain{padding-left:1.1rem}
footer{color:var(--muted);font-size:.8rem;padding:1rem;text-align:center}
svg.lane{width:100%;height:auto;background:#fff;border:1px solid var(--line);border-radius:6px}
svg .stay{fill:#7aa7e8}svg .stay.now{fill:#2e7d4f}svg .grid{stroke:#e3e7ef}svg text{font:11px system-ui,sans-serif;fill:#39425a}
svg .sale{fill:#d9480f}svg .return{fill:#0c8599}svg .transfer{fill:#6741d9}svg .other{fill:#5b6477}
.legend span{margin-right:1rem;white-space:nowrap}.legend i{display:inline-block;width:.7rem;height:.7rem;border-radius:2px;margin-right:.25rem;vertical-align:-1px}
";

/// The time zone the pages show times in, named: `Europe/Paris (UTC+01:00)`, as the terminal
/// names it ([`crate::output::zone_name`]).
pub fn zone_label() -> String {
    let name = crate::output::zone_name();
    if name.starts_with("UTC") {
        return name;
    }
    format!("{name} (UTC{})", Local::now().format("%:z"))
}

/// A time in the server's local zone, in a `<time>` element carrying the exact UTC instant.
pub fn time(t: Option<DateTime<Utc>>) -> Markup {
    match t {
        Some(t) => html! {
            time datetime=(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) {
                (crate::output::short_time(Some(t)))
            }
        },
        None => html! { span.muted { "undated" } },
    }
}

/// A time as text in the local zone, for the SVG's titles.
pub fn local_text(t: DateTime<Utc>) -> String {
    crate::output::short_time(Some(t))
}

/// Text from inFlow users shown as the terminal shows it ([`crate::output::printable`]):
/// control characters and the bidirectional overrides (U+202A–202E, U+2066–2069) become visible
/// escapes, so `SN-\u{202e}1234` cannot pose as `SN-4321`; then HTML-escaped as any value.
pub struct Shown<'a>(pub &'a str);

impl maud::Render for Shown<'_> {
    fn render_to(&self, buffer: &mut String) {
        crate::output::printable(self.0).as_ref().render_to(buffer);
    }
}

/// `/serial?serial=...`, with the serial encoded for a query string.
pub fn serial_href(serial: &str) -> String {
    format!("/serial?serial={}", encode(serial))
}

/// The link to a document's page.
pub fn document_href(number: &str) -> String {
    format!("/document?number={}", encode(number))
}

/// Percent-encoding for a query value: everything but unreserved characters.
pub fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A whole page: the navigation, `body`, and the footer naming the time zone.
pub fn page(title: &str, zone: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (Shown(title)) " · audit" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header {
                    a href="/" { b { "audit" } }
                    a href="/" { "Search" }
                    a href="/anomalies" { "Anomalies" }
                    a href="/reconcile" { "Reconcile" }
                    a href="/status" { "Status" }
                }
                main { (body) }
                footer { "Read-only view of the audit trail. Times in " (zone) "." }
            }
        }
    }
}
