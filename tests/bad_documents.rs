//! Issue 19, point 1: documents one database accepts and the other refuses. Both store every
//! document inFlow can return, and the same data; what still cannot be stored is quarantined
//! with a warning, and the rest of the page and the run go on.

mod common;
mod hostile;

use std::sync::{Arc, Mutex};

use audit::mapping::DocType;
use audit::store::query::EventFilter;
use audit::store::runs::RunStatus;
use audit::sync::{Quiet, StopFlag};
use common::*;

/// A sales order with one line and one serial. The arguments are JSON string contents, escapes
/// as written: `SN-\u0000` is a NUL.
fn order(id: &str, number: &str, serial: &str, remarks: &str) -> String {
    format!(
        r#"{{"salesOrderId":"{id}","orderNumber":"{number}","orderDate":"2025-07-01T09:00:00Z","isCancelled":false,
        "isQuote":false,"locationId":"loc-1","customerId":"cust-1","remarks":"{remarks}","timestamp":"0001",
        "lines":[{{"salesOrderLineId":"{id}-l1","productId":"prod-1","quantity":{{"standardQuantity":"1",
        "serialNumbers":["{serial}"]}},"timestamp":"0002"}}]}}"#
    )
}

fn long_serial() -> String {
    // 12,000 characters that do not compress: a btree entry cannot hold them.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..12_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from_digit((x % 36) as u32, 36).unwrap()
        })
        .collect()
}

struct Page {
    docs: Vec<String>,
    nul: String,
    lone: String,
    long_id: String,
    without_id: String,
    refused: String,
}

fn page() -> Page {
    let nul = order("so-nul", r"SO-\u0000", r"SN-\u0000-NUL", r"a\u0000b");
    let lone = order("so-lone", "SO-LONE", r"SN-\ud800-LONE", r"x\udc00y");
    let long_id = order(&"i".repeat(5000), "SO-LONGID", "SN-LONGID", "");
    let without_id = order("", "SO-NOID", "SN-NOID", "").replace(r#""salesOrderId":"","#, "");
    let refused = order("so-refused", "SO-REFUSED", "SN-REFUSED", "");
    let docs = vec![
        order("so-a", "SO-A", "SN-A", "plain"),
        nul.clone(),
        order("so-long", "SO-LONG", &long_serial(), ""),
        lone.clone(),
        long_id.clone(),
        without_id.clone(),
        refused.clone(),
        order("so-z", "SO-Z", "SN-Z", ""),
    ];
    Page { docs, nul, lone, long_id, without_id, refused }
}

/// A server with one page of sales orders, the given ones (the page after it is empty).
async fn server(docs: Vec<String>) -> hostile::Hostile {
    let body = Arc::new(Mutex::new(format!("[{}]", docs.join(","))));
    hostile::serve(move |asked| match asked.endpoint.as_str() {
        "sales-orders" if asked.query.iter().any(|(k, _)| k == "after") => hostile::json_text("[]"),
        "sales-orders" => hostile::json_text(body.lock().unwrap().clone()),
        _ => hostile::json_text("[]"),
    })
    .await
}

fn client(server: &hostile::Hostile) -> audit::inflow::Client {
    let mut config = audit::inflow::ClientConfig::new(&server.base_url, "c1", audit::inflow::ApiKey::new("k"));
    config.retry.base_delay = std::time::Duration::from_millis(5);
    config.retry.max_delay = std::time::Duration::from_millis(50);
    audit::inflow::Client::new(config).unwrap()
}

fn options() -> audit::sync::IngestOptions {
    audit::sync::IngestOptions {
        company_id: "c1".into(),
        since: None,
        window: None,
        types: vec![DocType::SalesOrder],
        skip_unavailable: false,
        arguments: serde_json::json!({}),
    }
}

/// Makes the database refuse one document by itself, as a value it cannot hold would.
async fn refuse_one_document(db: &TestDb, store: &audit::store::Store) {
    match db.url.backend() {
        audit::store::Backend::Sqlite => {
            exec(
                store,
                "CREATE TRIGGER refuse_doc BEFORE INSERT ON documents WHEN NEW.doc_number = 'SO-REFUSED' \
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
            )
            .await
        }
        audit::store::Backend::Postgres => {
            exec(
                store,
                "ALTER TABLE documents ADD CONSTRAINT refuse_doc CHECK (doc_number IS DISTINCT FROM 'SO-REFUSED')",
            )
            .await
        }
    }
}

async fn rows(store: &audit::store::Store, sql: &'static str) -> Vec<String> {
    strings(store, sql, "").await
}

both_backends! {
async fn every_document_is_stored_or_quarantined_and_alike_on_both(db: TestDb) {
    let page = page();
    let server = server(page.docs.clone()).await;
    let store = db.store().await;
    refuse_one_document(&db, &store).await;

    let summary = audit::sync::run(&store, &client(&server), &options(), &Quiet, &StopFlag::default())
        .await
        .expect("the run goes on past the bad documents");
    assert_eq!(summary.status, RunStatus::Succeeded);
    assert_eq!(summary.counters.work.documents_seen, 8);

    // Stored: the plain ones, the NUL, the long serial and the lone surrogate, NUL and surrogate
    // kept as the text of their escapes, the same on both engines.
    let serials = rows(&store, "SELECT serial FROM serial_events WHERE $1 = $1 ORDER BY doc_id").await;
    let long = long_serial();
    let shown = |s: &[String]| -> Vec<String> {
        s.iter().map(|s| if s.len() > 100 { format!("<{} bytes>", s.len()) } else { s.clone() }).collect()
    };
    assert_eq!(shown(&serials), shown(&["SN-A", "SN-\\ud800-LONE", &long, "SN-\\u0000-NUL", "SN-Z"].map(String::from)));
    assert_eq!(serials[2], long);
    assert_eq!(
        rows(&store, "SELECT doc_number FROM documents WHERE $1 = $1 ORDER BY doc_id").await,
        ["SO-A", "SO-LONE", "SO-LONG", "SO-\\u0000", "SO-Z"].map(String::from).to_vec()
    );
    // The JSON as sent is kept exactly where the stored form differs, and only there.
    assert_eq!(
        rows(
            &store,
            "SELECT doc_id || ':' || raw_text FROM documents WHERE raw_text IS NOT NULL AND $1 = $1 ORDER BY doc_id"
        )
        .await,
        vec![format!("so-lone:{}", page.lone), format!("so-nul:{}", page.nul)]
    );
    // The stored form is JSON both engines read back: the escape as text.
    let remarks =
        rows(&store, "SELECT COALESCE(CAST(raw AS TEXT), '') FROM documents WHERE doc_id = 'so-nul' AND $1 = $1").await;
    let stored: serde_json::Value = serde_json::from_str(&remarks[0]).unwrap();
    assert_eq!(stored["remarks"], "a\\u0000b");

    // A serial of any length is found by the timeline's query.
    let events = store.serial_events(&long, &EventFilter::default()).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].doc_id, "so-long");

    // Quarantined, with the JSON as sent: the id too long to index, the unreadable one, and the
    // one the database refused.
    let quarantined = rows(
        &store,
        "SELECT COALESCE(doc_id, '-') || ' | ' || reason FROM quarantined_documents WHERE $1 = $1 ORDER BY COALESCE(doc_id, '')",
    )
    .await;
    assert_eq!(quarantined.len(), 3, "{quarantined:?}");
    assert!(quarantined[0].starts_with("- | sales_order has no `salesOrderId`"), "{quarantined:?}");
    assert!(quarantined[1].contains("`salesOrderId` is 5000 bytes long"), "{quarantined:?}");
    assert!(quarantined[2].starts_with("so-refused | the database refused it"), "{quarantined:?}");
    let kept = rows(&store, "SELECT raw FROM quarantined_documents WHERE $1 = $1 ORDER BY COALESCE(doc_id, '')").await;
    assert_eq!(kept, vec![page.without_id.clone(), page.long_id.clone(), page.refused.clone()]);

    // Each is named in a warning of the run, with the field where it is known.
    let warnings = rows(
        &store,
        "SELECT kind || ' ' || COALESCE(doc_id, '-') || ': ' || detail FROM run_warnings WHERE $1 = $1 ORDER BY warning_id",
    )
    .await;
    let has = |kind: &str, doc: &str, text: &str| {
        warnings.iter().any(|w| w.starts_with(&format!("{kind} {doc}")) && w.contains(text))
    };
    assert!(has("escaped_text", "so-nul", "lines[0].quantity.serialNumbers[0] held \\u0000 (NUL)"), "{warnings:#?}");
    assert!(has("escaped_text", "so-nul", "remarks held \\u0000"), "{warnings:#?}");
    assert!(has("escaped_text", "so-lone", "a lone UTF-16 surrogate"), "{warnings:#?}");
    assert!(has("quarantined_document", &"i".repeat(5000), "`salesOrderId` is 5000 bytes long"), "{warnings:#?}");
    assert!(has("quarantined_document", "so-refused", "refused"), "{warnings:#?}");
    assert!(has("unreadable_document", "-", "has no `salesOrderId`"), "{warnings:#?}");

    // Again: nothing changes, nothing doubles; the quarantine keeps one row per document.
    let again = audit::sync::run(&store, &client(&server), &options(), &Quiet, &StopFlag::default()).await.unwrap();
    assert_eq!((again.counters.work.events_inserted, again.counters.work.events_retracted), (0, 0));
    assert_eq!(count(&store, "SELECT count(*) FROM quarantined_documents").await, 3);
    assert_eq!(count(&store, "SELECT count(*) FROM serial_events").await, 5);

    // `audit rebuild` reads the kept JSON back and derives exactly the same events.
    let rebuilt = audit::sync::rebuild(&store, "c1", &Quiet, &audit::sync::StopFlag::default()).await.unwrap();
    assert_eq!((rebuilt.counters.work.events_inserted, rebuilt.counters.work.events_retracted), (0, 0));

    // Once the database takes the refused document, its quarantine ends.
    match db.url.backend() {
        audit::store::Backend::Sqlite => exec(&store, "DROP TRIGGER refuse_doc").await,
        audit::store::Backend::Postgres => exec(&store, "ALTER TABLE documents DROP CONSTRAINT refuse_doc").await,
    }
    audit::sync::run(&store, &client(&server), &options(), &Quiet, &StopFlag::default()).await.unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM quarantined_documents WHERE doc_id = 'so-refused'").await, 0);
    assert_eq!(count(&store, "SELECT count(*) FROM documents WHERE doc_id = 'so-refused'").await, 1);
}
}

both_backends! {
/// Issue 19, point 7: a serial (or any text from inFlow) holding terminal escape sequences is
/// shown escaped wherever a table or a line is printed for people, and exactly in JSON and CSV.
async fn control_characters_reach_no_terminal(db: TestDb) {
    // ESC [31m (red), an OSC that retitles the terminal, BEL, and a right-to-left override.
    let serial = "SN-\u{1b}[31mRED\u{1b}]0;owned\u{7}\u{202e}X";
    let escaped_in_json = serde_json::to_string(serial).unwrap();
    let doc = order("so-esc", "SO-ESC", escaped_in_json.trim_matches('"'), "");
    let server = server(vec![doc]).await;
    let store = db.store().await;
    audit::sync::run(&store, &client(&server), &options(), &Quiet, &StopFlag::default()).await.unwrap();
    assert_eq!(rows(&store, "SELECT serial FROM serial_events WHERE $1 = $1").await, vec![serial.to_string()]);

    let run = |args: &[&str]| {
        let (code, stdout, stderr) = tokio::task::block_in_place(|| run_audit(&db.url_string(), args, &[]));
        assert_eq!(code, 0, "{args:?}: {stderr}");
        stdout
    };
    let raw = |text: &str| text.chars().any(|c| c.is_control() && c != '\n' || c == '\u{202e}');
    for args in [
        &["timeline", serial, "--format", "table"][..],
        &["sql", "SELECT serial, doc_number FROM serial_events", "--format", "table"],
        &["lookup", serial, "--format", "table"],
    ] {
        let shown = run(args);
        assert!(!raw(&shown), "{args:?} printed a control character: {shown:?}");
        assert!(shown.contains("SN-\\u{1b}[31mRED\\u{1b}]0;owned\\u{7}\\u{202e}X"), "{args:?}: {shown}");
    }
    // Programs get the exact text.
    let json: serde_json::Value = serde_json::from_str(&run(&["timeline", serial, "--format", "json"])).unwrap();
    assert_eq!(json["histories"][0]["serial"], serial);
    let csv = run(&["timeline", serial, "--format", "csv"]);
    assert!(csv.contains(serial), "{csv:?}");
}
}
