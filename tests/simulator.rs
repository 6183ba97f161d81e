//! What audit needs of the simulator (whose own tests are in `simulator/tests/`): its documents
//! parse into audit's model, and `audit simulate` serves it.

use std::collections::BTreeMap;
use std::time::Duration;

use audit::inflow::model;
use inflow_simulator::{SimConfig, Simulator};
use reqwest::StatusCode;
use serde_json::Value;

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/inflow");

fn arr(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}"))
}

fn serials(line: &Value) -> Vec<String> {
    arr(&line["quantity"]["serialNumbers"]).iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_simulated_document_parses_into_the_model() {
    let config = SimConfig { seed: 7, data_faults: true, rate_limit: None, ..SimConfig::default() };
    let sim = Simulator::start(config).await.unwrap();
    // The real sample and the simulator's sales orders: the same Rust types for both.
    let text = std::fs::read_to_string(format!("{SAMPLES}/sales-order.real-2022.anonymized.json")).unwrap();
    let parsed_real: model::SalesOrder = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed_real.lines.unwrap()[0].quantity.serial_numbers.len(), 10);
    let sales = sim.documents("sales-orders");
    assert!(!sales.is_empty());
    for d in &sales {
        let parsed: model::SalesOrder = serde_json::from_value(d.clone()).unwrap();
        assert_eq!(parsed.sales_order_id.as_deref(), d["salesOrderId"].as_str());
        assert_eq!(parsed.timestamp.as_deref(), d["timestamp"].as_str());
        let lines = parsed.lines.unwrap();
        assert_eq!(lines.len(), arr(&d["lines"]).len());
        for (l, raw) in lines.iter().zip(arr(&d["lines"])) {
            assert_eq!(l.quantity.serial_numbers, serials(raw));
            assert!(l.quantity.amount().is_some());
        }
        assert_eq!(parsed.pick_lines.unwrap().len(), arr(&d["pickLines"]).len());
        assert_eq!(parsed.ship_lines.unwrap().len(), arr(&d["shipLines"]).len());
    }
    for d in &sim.documents("purchase-orders") {
        let p: model::PurchaseOrder = serde_json::from_value(d.clone()).unwrap();
        assert_eq!(p.receive_lines.unwrap().len(), arr(&d["receiveLines"]).len());
    }
    for d in sim.documents("stock-adjustments") {
        let _: model::StockAdjustment = serde_json::from_value(d).unwrap();
    }
    for d in sim.documents("stock-transfers") {
        let _: model::StockTransfer = serde_json::from_value(d).unwrap();
    }
    for p in sim.products() {
        let parsed: model::Product = serde_json::from_value(p.clone()).unwrap();
        assert_eq!(parsed.inventory_lines.unwrap().len(), arr(&p["inventoryLines"]).len());
    }
    for l in sim.locations() {
        let parsed: model::Location = serde_json::from_value(l).unwrap();
        assert!(parsed.name.is_some());
    }
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client")
}

#[test]
fn simulate_command_prints_exports_and_serves() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_audit"))
        .args(["simulate", "--port", "0", "--seed", "3", "--scale", "small"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut vars = BTreeMap::new();
    for _ in 0..3 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let rest = line.trim().strip_prefix("export ").expect("an export line");
        let (k, v) = rest.split_once('=').unwrap();
        vars.insert(k.to_string(), v.to_string());
    }
    assert!(vars["INFLOW_BASE_URL"].starts_with("http://127.0.0.1:"));
    assert!(!vars["INFLOW_BASE_URL"].ends_with(":0"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, upper) = rt.block_on(async {
        let get = |company: String| {
            client()
                .get(format!("{}/{company}/locations", vars["INFLOW_BASE_URL"]))
                .bearer_auth(&vars["INFLOW_API_KEY"])
                .send()
        };
        let a = get(vars["INFLOW_COMPANY_ID"].clone()).await.unwrap().status();
        let b = get(vars["INFLOW_COMPANY_ID"].to_uppercase()).await.unwrap().status();
        (a, b)
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(upper, StatusCode::OK, "company ids match in any case");
}
