//! The simulator's data: shapes against the real and constructed samples, value formats,
//! determinism, the believability of the generated history, the planted scenario, and that
//! products' `inventoryLines` agree with the documents.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, FixedOffset};
use inflow_simulator::{Scale, SimConfig, Simulator};
use serde_json::Value;

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/inflow");

fn sample(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{SAMPLES}/{name}")).unwrap();
    serde_json::from_str(&text).unwrap()
}

async fn sim(seed: u64, faults: bool) -> Simulator {
    Simulator::start(SimConfig { seed, data_faults: faults, rate_limit: None, ..SimConfig::default() }).await.unwrap()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect()
}

/// Keys minus the relationships (which depend on `include`).
fn own_keys(v: &Value, rels: &[&str]) -> BTreeSet<String> {
    keys(v).into_iter().filter(|k| !rels.contains(&k.as_str())).collect()
}

const SO_RELS: &[&str] = &[
    "assignedToTeamMember",
    "attachments",
    "confirmerTeamMember",
    "costOfGoodsSold",
    "currency",
    "customer",
    "lastModifiedBy",
    "lines",
    "location",
    "packLines",
    "paymentLines",
    "paymentTerms",
    "pickAllocationFailures",
    "pickAllocationLines",
    "pickLines",
    "pricingScheme",
    "restockLines",
    "salesRepTeamMember",
    "shipLines",
    "taxingScheme",
];

fn dt(v: &Value) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("date: {v}"))).unwrap()
}

fn arr(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}"))
}

fn serials(line: &Value) -> Vec<String> {
    arr(&line["quantity"]["serialNumbers"]).iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sales_orders_have_the_real_samples_keys() {
    let sim = sim(7, true).await;
    let real = sample("sales-order.real-2022.anonymized.json");
    let ours = sim.documents("sales-orders");
    let so = ours.iter().find(|d| !arr(&d["shipLines"]).is_empty() && !arr(&d["lines"]).is_empty()).unwrap();
    // Header, line, embedded product, location and ship line: the same key sets.
    assert_eq!(own_keys(so, SO_RELS), own_keys(&real, SO_RELS), "header keys");
    let real_line = &real["lines"][0];
    let line = &so["lines"][0];
    // (`taxCode` is a relationship the real response did not include.)
    assert_eq!(own_keys(line, &["taxCode"]), keys(real_line), "line keys (with product)");
    assert_eq!(keys(&line["product"]), keys(&real_line["product"]), "product keys");
    assert_eq!(keys(&line["quantity"]), keys(&real_line["quantity"]));
    assert_eq!(keys(&line["discount"]), keys(&real_line["discount"]));
    assert_eq!(keys(&so["location"]), keys(&real["location"]), "location keys");
    assert_eq!(keys(&so["location"]["address"]), keys(&real["location"]["address"]));
    assert_eq!(keys(&so["billingAddress"]), keys(&real["billingAddress"]));
    assert_eq!(keys(&so["customFields"]), keys(&real["customFields"]));
    assert_eq!(keys(&so["shipLines"][0]), keys(&real["shipLines"][0]), "ship line keys");
    // The HTTP body keeps the real key order: id first, then alphabetical.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().build().unwrap();
    let body = http
        .get(format!(
            "{}/{}/sales-orders/{}?include=lines.product,location,shipLines",
            sim.base_url(),
            sim.company_id(),
            so["salesOrderId"].as_str().unwrap()
        ))
        .bearer_auth(sim.api_key())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let raw_real = std::fs::read_to_string(format!("{SAMPLES}/sales-order.real-2022.anonymized.json")).unwrap();
    assert_eq!(top_level_key_order(&body), top_level_key_order(&raw_real));
}

/// The top-level keys of a JSON object in text order.
fn top_level_key_order(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut chars = text.char_indices().peekable();
    let bytes = text.as_bytes();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            '"' => {
                let start = i + 1;
                let mut end = start;
                while let Some((j, d)) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == '"' {
                        end = j;
                        break;
                    }
                }
                let rest = text[end + 1..].trim_start();
                if depth == 1 && rest.starts_with(':') {
                    out.push(String::from_utf8_lossy(&bytes[start..end]).to_string());
                }
            }
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn other_types_cover_the_constructed_samples() {
    let sim = sim(7, true).await;
    let subset = |ours: &Value, sample: &Value, what: &str| {
        let missing: Vec<String> = keys(sample).difference(&keys(ours)).cloned().collect();
        assert!(missing.is_empty(), "{what}: simulator lacks {missing:?}");
    };
    // Sales order movement lines.
    let so_sample = sample("sales-order.movement-lines.CONSTRUCTED.json");
    let sos = sim.documents("sales-orders");
    let so = sos
        .iter()
        .find(|d| !arr(&d["restockLines"]).is_empty() && !arr(&d["packLines"]).is_empty())
        .expect("a sales order with pack and restock lines");
    subset(so, &so_sample, "sales order");
    for coll in ["lines", "pickLines", "packLines", "shipLines", "restockLines"] {
        subset(&so[coll][0], &so_sample[coll][0], coll);
        let mut theirs = keys(&so_sample[coll][0]);
        theirs.insert("product".into());
        theirs.insert("location".into());
        let extra: Vec<String> = keys(&so[coll][0]).difference(&theirs).cloned().collect();
        // Only the real sample's extra line keys (discount, taxes, ...) may be added.
        if coll != "lines" {
            assert!(extra.is_empty(), "{coll} has unexpected keys {extra:?}");
        }
    }
    // Purchase orders.
    let po_sample = sample("purchase-order.receive-unstock.CONSTRUCTED.json");
    let pos = sim.documents("purchase-orders");
    let po = pos.iter().find(|d| !arr(&d["unstockLines"]).is_empty()).expect("a vendor return");
    subset(po, &po_sample, "purchase order");
    for coll in ["lines", "receiveLines", "unstockLines"] {
        subset(&po[coll][0], &po_sample[coll][0], coll);
    }
    // Adjustments and transfers: exactly the constructed keys (plus customFields, which the
    // reference lists on the adjustment header).
    let sa_sample = sample("stock-adjustment.CONSTRUCTED.json");
    for d in sim.documents("stock-adjustments") {
        let mut want = keys(&sa_sample);
        want.insert("customFields".into());
        assert_eq!(own_keys(&d, &["attachments", "lastModifiedBy", "location", "adjustmentReason"]), want);
        assert_eq!(keys(&d["lines"][0]).len(), keys(&sa_sample["lines"][0]).len() + 1, "+product");
    }
    let st_sample = sample("stock-transfer.CONSTRUCTED.json");
    for d in sim.documents("stock-transfers") {
        assert_eq!(
            own_keys(&d, &["attachments", "lastModifiedBy", "fromLocation", "toLocation", "assignedToTeamMember"]),
            keys(&st_sample)
        );
        let mut line_keys = keys(&st_sample["lines"][0]);
        line_keys.insert("product".into());
        assert_eq!(keys(&d["lines"][0]), line_keys);
    }
    // Products and inventory lines.
    let p_sample = sample("product.inventoryLines.CONSTRUCTED.json");
    for p in sim.products() {
        subset(&p, &p_sample, "product");
        if let Some(l) = p["inventoryLines"].get(0) {
            assert_eq!(keys(l), keys(&p_sample["inventoryLines"][0]));
        }
    }
}

fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_digit() || ('a'..='f').contains(&c) }
        })
}

fn is_fixed(s: &str, dp: usize) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let Some((a, b)) = s.split_once('.') else {
        return false;
    };
    !a.is_empty() && a.chars().all(|c| c.is_ascii_digit()) && b.len() == dp && b.chars().all(|c| c.is_ascii_digit())
}

/// Checks every value of a document tree against the real formats.
fn check_formats(v: &Value, key: &str, timestamps: &mut Vec<u64>, offsets: &mut BTreeSet<i32>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                check_formats(x, k, timestamps, offsets);
            }
        }
        Value::Array(a) => {
            for x in a {
                check_formats(x, key, timestamps, offsets);
            }
        }
        Value::String(s) => {
            if key == "timestamp" {
                assert_eq!(s.len(), 16, "{s}");
                assert!(s.chars().all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)), "{s}");
                timestamps.push(u64::from_str_radix(s, 16).unwrap());
            } else if key.ends_with("Id") && key != "externalId" && !s.is_empty() {
                assert!(is_guid(s), "{key}: {s}");
            } else if key.ends_with("Date") || key == "lastModifiedDateTime" {
                let d = DateTime::parse_from_rfc3339(s).unwrap_or_else(|_| panic!("{key}: {s}"));
                assert!(s.len() == 25, "{key}: {s} has whole seconds and an offset");
                offsets.insert(d.offset().local_minus_utc());
            } else if ["standardQuantity", "uomQuantity", "quantityOnHand", "totalQuantityOnHand"].contains(&key) {
                assert!(is_fixed(s, 4), "{key}: {s}");
            } else if [
                "unitPrice",
                "subTotal",
                "total",
                "balance",
                "amountPaid",
                "tax1",
                "tax2",
                "tax1Rate",
                "tax2Rate",
                "value",
                "orderFreight",
                "returnFee",
                "returnFreight",
            ]
            .contains(&key)
            {
                assert!(is_fixed(s, 5), "{key}: {s}");
            } else if key == "exchangeRate" {
                assert!(is_fixed(s, 10), "{key}: {s}");
            }
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn values_use_the_real_formats() {
    let sim = sim(11, true).await;
    let mut timestamps = Vec::new();
    let mut offsets = BTreeSet::new();
    for ep in ["sales-orders", "purchase-orders", "stock-adjustments", "stock-transfers"] {
        for d in sim.documents(ep) {
            check_formats(&d, "", &mut timestamps, &mut offsets);
        }
    }
    for p in sim.products() {
        check_formats(&p, "", &mut timestamps, &mut offsets);
    }
    assert!(offsets.len() >= 2, "several UTC offsets: {offsets:?}");
    assert!(timestamps.len() > 1000);
    // Enums are camelCase.
    let sts = sim.documents("stock-transfers");
    let statuses: BTreeSet<&str> = sts.iter().map(|d| d["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, BTreeSet::from(["completed", "inTransit", "open"]));
    let p = &sim.products()[0];
    assert_eq!(p["itemType"], "stockedProduct");
    // Every timestamp is unique except where an entity is embedded twice (products, locations),
    // and a line can be newer than its header.
    let sos = sim.documents("sales-orders");
    let newer_line =
        sos.iter().any(|d| arr(&d["lines"]).iter().any(|l| l["timestamp"].as_str() > d["timestamp"].as_str()));
    assert!(newer_line);
    let mut own = Vec::new();
    for ep in ["sales-orders", "purchase-orders", "stock-adjustments", "stock-transfers"] {
        for d in sim.documents(ep) {
            own.push(d["timestamp"].as_str().unwrap().to_string());
            for (k, v) in d.as_object().unwrap() {
                if k.ends_with("ines") && k != "inventoryLines" {
                    for l in arr(v) {
                        own.push(l["timestamp"].as_str().unwrap().to_string());
                    }
                }
            }
        }
    }
    let unique: BTreeSet<&String> = own.iter().collect();
    assert_eq!(unique.len(), own.len(), "one counter, one value per row");
}

#[tokio::test(flavor = "multi_thread")]
async fn same_seed_same_company_other_seed_other_company() {
    let a = sim(5, true).await;
    let b = sim(5, true).await;
    let c = sim(6, true).await;
    assert_eq!(a.company_id(), b.company_id());
    assert_eq!(a.api_key(), b.api_key());
    assert_ne!(a.company_id(), c.company_id());
    for ep in ["sales-orders", "purchase-orders", "stock-adjustments", "stock-transfers", "products"] {
        assert_eq!(a.documents(ep), b.documents(ep), "{ep}");
        assert_ne!(a.documents(ep), c.documents(ep), "{ep}");
    }
    assert_eq!(a.scenario(), b.scenario());
}

/// Every stock movement of the JSON documents, per §4.8 of the reference, as
/// (product, location, sublocation, serial or "") → signed quantity in ten-thousandths.
fn on_hand_from_documents(sim: &Simulator) -> BTreeMap<(String, String, String, String), i64> {
    let mut m: BTreeMap<(String, String, String, String), i64> = BTreeMap::new();
    let qty = |l: &Value| -> i64 {
        let s = l["quantity"]["standardQuantity"].as_str().unwrap().replace('.', "");
        s.parse().unwrap()
    };
    let mut add = |line: &Value, loc: &str, sub: &str, sign: i64| {
        let ser = serials(line);
        let product = line["productId"].as_str().unwrap().to_string();
        if ser.is_empty() {
            *m.entry((product, loc.into(), sub.into(), String::new())).or_default() += sign * qty(line);
        } else {
            let unit = if qty(line) < 0 { -10_000 } else { 10_000 };
            for s in ser {
                *m.entry((product.clone(), loc.into(), sub.into(), s)).or_default() += sign * unit;
            }
        }
    };
    let s = |v: &Value| v.as_str().unwrap().to_string();
    for d in sim.documents("sales-orders") {
        if d["isCancelled"] == true || d["isQuote"] == true {
            continue;
        }
        for l in arr(&d["pickLines"]) {
            add(l, &s(&l["locationId"]), &s(&l["sublocation"]), -1);
        }
        for l in arr(&d["restockLines"]) {
            add(l, &s(&l["locationId"]), &s(&l["sublocation"]), 1);
        }
    }
    for d in sim.documents("purchase-orders") {
        if d["isCancelled"] == true || d["isQuote"] == true {
            continue;
        }
        for l in arr(&d["receiveLines"]) {
            add(l, &s(&l["locationId"]), &s(&l["sublocation"]), 1);
        }
        for l in arr(&d["unstockLines"]) {
            add(l, &s(&l["locationId"]), &s(&l["sublocation"]), -1);
        }
    }
    for d in sim.documents("stock-adjustments") {
        if d["isCancelled"] == true || made_by_a_count(&d) {
            continue;
        }
        for l in arr(&d["lines"]) {
            add(l, &s(&d["locationId"]), &s(&l["sublocation"]), 1);
        }
    }
    for d in sim.documents("manufacturing-orders") {
        if d["isCancelled"] == true {
            continue;
        }
        for l in arr(&d["pickLines"]) {
            add(l, &s(&l["locationId"]), &s(&l["sublocation"]), -1);
        }
        if d["status"] == "completed" {
            for l in arr(&d["putLines"]) {
                add(l, &s(&l["locationId"]), &s(&l["sublocation"]), 1);
            }
        }
    }

    for d in sim.documents("stock-transfers") {
        if d["isCancelled"] == true {
            continue;
        }
        let status = d["status"].as_str().unwrap();
        for l in arr(&d["lines"]) {
            if status != "open" {
                add(l, &s(&d["fromLocationId"]), &s(&l["fromSublocation"]), -1);
            }
            if status == "completed" {
                add(l, &s(&d["toLocationId"]), &s(&l["toSublocation"]), 1);
            }
        }
    }
    for (line, loc, _, sign, serial) in count_moves(sim) {
        let product = line["productId"].as_str().unwrap().to_string();
        *m.entry((product, loc, s(&line["sublocation"]), serial)).or_default() += sign * 10_000;
    }
    m.retain(|_, q| *q != 0);
    m
}

/// An adjustment a completed count made: its stock effect is the count's.
fn made_by_a_count(d: &Value) -> bool {
    d["remarks"].as_str().is_some_and(|r| r.starts_with("Stock count SC-"))
}

/// The serials completed stock counts missed (-1) and found (+1): (line, location, date, sign,
/// serial).
fn count_moves(sim: &Simulator) -> Vec<(Value, String, Value, i64, String)> {
    let mut out = Vec::new();
    for d in sim.documents("stock-counts") {
        if d["isCancelled"] == true || d["status"] != "completed" {
            continue;
        }
        for sheet in arr(&d["sheets"]).iter().filter(|s| s["isCancelled"] == false) {
            let date = if sheet["completedDate"].is_string() { &sheet["completedDate"] } else { &d["completedDate"] };
            for l in arr(&sheet["lines"]) {
                let expected: Vec<String> = arr(&l["snapshotQuantity"]["serialNumbers"])
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect();
                let counted: Vec<String> = arr(&l["countedQuantity"]["serialNumbers"])
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect();
                let loc = d["locationId"].as_str().unwrap().to_string();
                for s in expected.iter().filter(|s| !counted.contains(s)) {
                    out.push((l.clone(), loc.clone(), date.clone(), -1, s.clone()));
                }
                for s in counted.iter().filter(|s| !expected.contains(s)) {
                    out.push((l.clone(), loc.clone(), date.clone(), 1, s.clone()));
                }
            }
        }
    }
    out
}

fn inventory_lines(sim: &Simulator) -> BTreeMap<(String, String, String, String), i64> {
    let mut m = BTreeMap::new();
    for p in sim.products() {
        for l in arr(&p["inventoryLines"]) {
            let q: i64 = l["quantityOnHand"].as_str().unwrap().replace('.', "").parse().unwrap();
            let key = (
                l["productId"].as_str().unwrap().to_string(),
                l["locationId"].as_str().unwrap().to_string(),
                l["sublocation"].as_str().unwrap().to_string(),
                l["serial"].as_str().unwrap_or("").to_string(),
            );
            assert!(m.insert(key, q).is_none(), "one line per place and serial");
        }
    }
    m
}

#[tokio::test(flavor = "multi_thread")]
async fn inventory_lines_agree_with_the_documents_before_and_after_mutations() {
    let sim = sim(7, true).await;
    // The serials planted for reconciliation (and moved_from_elsewhere) moved by no document:
    // set them aside here, and check they are where the scenario says inFlow shows them.
    let sc = sim.scenario();
    let off_document: Vec<String> = [
        &sc.never_in_documents,
        &sc.on_hand_without_receipt,
        &sc.gone_but_history_on_hand,
        &sc.different_location,
        &sc.on_hand_in_two_locations,
        &sc.moved_from_elsewhere,
    ]
    .iter()
    .map(|s| s.as_ref().expect("planted with data faults").serial.clone())
    .collect();
    let inventory_lines = |sim: &Simulator| {
        let mut lines = inventory_lines(sim);
        lines.retain(|k, _| !off_document.contains(&k.3));
        lines
    };
    let on_hand_from_documents = |sim: &Simulator| {
        let mut lines = on_hand_from_documents(sim);
        lines.retain(|k, _| !off_document.contains(&k.3));
        lines
    };
    let all = self::inventory_lines(&sim);
    for story in
        [&sc.never_in_documents, &sc.on_hand_without_receipt, &sc.different_location, &sc.on_hand_in_two_locations]
    {
        let story = story.as_ref().unwrap();
        let at = story.on_hand.as_ref().unwrap();
        assert!(
            all.iter()
                .any(|(k, q)| k.3 == story.serial && k.1 == at.location_id && k.2 == at.sublocation && *q == 10_000)
        );
    }
    let two = &sc.on_hand_in_two_locations.as_ref().unwrap().serial;
    assert_eq!(all.keys().filter(|k| &k.3 == two).count(), 2);
    let gone = &sc.gone_but_history_on_hand.as_ref().unwrap().serial;
    assert!(all.keys().all(|k| &k.3 != gone));
    assert_eq!(inventory_lines(&sim), on_hand_from_documents(&sim));
    // Mutations of several kinds, then the same check.
    let pos = sim.documents("purchase-orders");
    let po = pos.iter().find(|d| !arr(&d["receiveLines"]).is_empty() && d["isCancelled"] == false).unwrap();
    let line = &po["receiveLines"][0];
    sim.edit_line_serials(
        "purchase-orders",
        po["purchaseOrderId"].as_str().unwrap(),
        "receiveLines",
        line["purchaseOrderReceiveLineId"].as_str().unwrap(),
        vec!["EDITED-1".into()],
    )
    .unwrap();
    let sts = sim.documents("stock-transfers");
    let st = sts.iter().find(|d| d["status"] == "completed" && d["isCancelled"] == false).unwrap();
    sim.cancel("stock-transfers", st["stockTransferId"].as_str().unwrap()).unwrap();
    let sas = sim.documents("stock-adjustments");
    sim.delete("stock-adjustments", sas[0]["stockAdjustmentId"].as_str().unwrap()).unwrap();
    let sos = sim.documents("sales-orders");
    let cancelled = sos.iter().find(|d| d["isCancelled"] == true).unwrap();
    sim.uncancel("sales-orders", cancelled["salesOrderId"].as_str().unwrap()).unwrap();
    let mut new_doc = po.clone();
    new_doc.as_object_mut().unwrap().remove("purchaseOrderId");
    new_doc.as_object_mut().unwrap().remove("orderNumber");
    sim.insert_document("purchase-orders", new_doc).unwrap();
    assert_eq!(inventory_lines(&sim), on_hand_from_documents(&sim));
}

#[tokio::test(flavor = "multi_thread")]
async fn clean_data_is_consistent_and_faults_are_only_the_planted_ones() {
    for (seed, faults) in [(7, false), (7, true), (8, false), (9, false), (10, true)] {
        let sim = sim(seed, faults).await;
        let inv = inventory_lines(&sim);
        let negative: Vec<_> = inv.iter().filter(|(_, q)| **q < 0).collect();
        let serial_rows_not_one = inv.iter().filter(|(k, q)| !k.3.is_empty() && **q != 10_000).count();
        let sc = sim.scenario();
        if faults {
            assert!(!negative.is_empty());
            // Besides the negative rows, the serial received twice is on hand twice.
            let twice = &sc.in_twice.as_ref().expect("planted fault").serial;
            assert_eq!(inv.iter().find(|(k, _)| &k.3 == twice).map(|(_, q)| *q), Some(20_000));
            assert_eq!(serial_rows_not_one, negative.len() + 1);
            for story in [&sc.sold_twice, &sc.adjusted_out_then_sold, &sc.shipped_never_received] {
                let story = story.as_ref().expect("planted fault");
                assert!(
                    negative.iter().any(|(k, _)| k.3 == story.serial),
                    "{} should be at -1 somewhere",
                    story.serial
                );
            }
        } else {
            assert!(negative.is_empty(), "clean data has no negative stock: {negative:?}");
            assert_eq!(serial_rows_not_one, 0);
            assert!(sc.sold_twice.is_none() && sc.adjusted_out_then_sold.is_none());
            assert!(sc.shipped_never_received.is_none());
            assert!(sc.never_in_documents.is_none() && sc.on_hand_without_receipt.is_none());
            assert!(sc.gone_but_history_on_hand.is_none() && sc.different_location.is_none());
            assert!(sc.on_hand_in_two_locations.is_none());
        }
        // Every picked serial was on hand at that place when it was picked: replay the
        // movements in date order and check no serialized quantity dips below zero.
        let dips = replay_dips(&sim);
        if faults {
            assert!(dips > 0);
        } else {
            assert_eq!(dips, 0, "clean data never removes a serial that is not there");
        }
    }
}

/// Replays serialized movements in time order; counts removals of serials not on hand there.
fn replay_dips(sim: &Simulator) -> usize {
    let mut events: Vec<(DateTime<FixedOffset>, i64, String, String, String)> = Vec::new();
    let s = |v: &Value| v.as_str().unwrap().to_string();
    let mut push = |date: &Value, line: &Value, loc: &Value, sub: &Value, sign: i64| {
        for serial in serials(line) {
            events.push((dt(date), sign, s(&line["productId"]) + "/" + &serial, s(loc), s(sub)));
        }
    };
    for d in sim.documents("purchase-orders") {
        if d["isCancelled"] == true {
            continue;
        }
        for l in arr(&d["receiveLines"]) {
            push(&l["receiveDate"], l, &l["locationId"], &l["sublocation"], 1);
        }
        for l in arr(&d["unstockLines"]) {
            push(&l["unstockDate"], l, &l["locationId"], &l["sublocation"], -1);
        }
    }
    for d in sim.documents("sales-orders") {
        if d["isCancelled"] == true {
            continue;
        }
        for l in arr(&d["pickLines"]) {
            push(&l["pickDate"], l, &l["locationId"], &l["sublocation"], -1);
        }
        for l in arr(&d["restockLines"]) {
            push(&l["restockDate"], l, &l["locationId"], &l["sublocation"], 1);
        }
    }
    for d in sim.documents("stock-adjustments") {
        if d["isCancelled"] == true || made_by_a_count(&d) {
            continue;
        }
        for l in arr(&d["lines"]) {
            let sign = if l["quantity"]["standardQuantity"].as_str().unwrap().starts_with('-') { -1 } else { 1 };
            push(&d["date"], l, &d["locationId"], &l["sublocation"], sign);
        }
    }
    for d in sim.documents("manufacturing-orders") {
        if d["isCancelled"] == true {
            continue;
        }
        for l in arr(&d["pickLines"]) {
            push(&l["pickDate"], l, &l["locationId"], &l["sublocation"], -1);
        }
        if d["status"] == "completed" {
            for l in arr(&d["putLines"]) {
                push(&d["completedDate"], l, &l["locationId"], &l["sublocation"], 1);
            }
        }
    }

    for d in sim.documents("stock-transfers") {
        if d["isCancelled"] == true {
            continue;
        }
        for l in arr(&d["lines"]) {
            if d["status"] != "open" {
                push(&d["sentDate"], l, &d["fromLocationId"], &l["fromSublocation"], -1);
            }
            if d["status"] == "completed" {
                push(&d["receivedDate"], l, &d["toLocationId"], &l["toSublocation"], 1);
            }
        }
    }
    for (line, loc, date, sign, serial) in count_moves(sim) {
        events.push((dt(&date), sign, s(&line["productId"]) + "/" + &serial, loc, s(&line["sublocation"])));
    }
    // Additions first on equal dates.
    events.sort_by_key(|e| (e.0, -e.1));
    let mut at: HashMap<(String, String, String), i64> = HashMap::new();
    let mut dips = 0;
    for (_, sign, serial, loc, sub) in events {
        let q = at.entry((serial, loc, sub)).or_default();
        *q += sign;
        if *q < 0 {
            dips += 1;
        }
    }
    dips
}

#[tokio::test(flavor = "multi_thread")]
async fn the_generated_company_has_every_kind_of_document() {
    let sim = sim(7, true).await;
    let sos = sim.documents("sales-orders");
    let pos = sim.documents("purchase-orders");
    let sas = sim.documents("stock-adjustments");
    let sts = sim.documents("stock-transfers");
    let locs = sim.locations();
    let any = |v: &[Value], f: &dyn Fn(&Value) -> bool| v.iter().any(f);
    // Sales: quotes, cancelled, only picked, packed not shipped, shipped in containers, returns.
    assert!(any(&sos, &|d| d["isQuote"] == true && d["inventoryStatus"] == "quote"));
    assert!(any(&sos, &|d| d["isCancelled"] == true));
    assert!(any(&sos, &|d| !arr(&d["pickLines"]).is_empty() && arr(&d["packLines"]).is_empty()));
    assert!(any(&sos, &|d| !arr(&d["packLines"]).is_empty() && arr(&d["shipLines"]).is_empty()));
    for d in sos.iter().filter(|d| !arr(&d["shipLines"]).is_empty()) {
        let packed: BTreeSet<&str> =
            arr(&d["packLines"]).iter().map(|l| l["containerNumber"].as_str().unwrap()).collect();
        for sl in arr(&d["shipLines"]) {
            for c in arr(&sl["containers"]) {
                assert!(packed.contains(c.as_str().unwrap()), "ship line container without a pack line");
            }
        }
    }
    assert!(any(&sos, &|d| arr(&d["lines"]).iter().any(|l| {
        l["quantity"]["standardQuantity"].as_str().unwrap().starts_with('-') && l["returnDate"].is_string()
    }) && !arr(&d["restockLines"]).is_empty()));
    // Non-serialized products appear with serialNumbers [].
    assert!(any(&sos, &|d| arr(&d["lines"])
        .iter()
        .any(|l| serials(l).is_empty() && l["product"]["trackSerials"] == false)));
    // Purchases: partial receipts (several receive lines), vendor returns.
    assert!(any(&pos, &|d| arr(&d["receiveLines"]).len() >= 2));
    assert!(any(&pos, &|d| d["inventoryStatus"] == "started"));
    assert!(any(&pos, &|d| !arr(&d["unstockLines"]).is_empty()
        && arr(&d["lines"]).iter().any(|l| l["returnDate"].is_string())));
    // Adjustments in and out.
    assert!(any(&sas, &|d| arr(&d["lines"])
        .iter()
        .any(|l| { l["quantity"]["standardQuantity"].as_str().unwrap().starts_with('-') })));
    assert!(any(&sas, &|d| arr(&d["lines"])
        .iter()
        .any(|l| { !l["quantity"]["standardQuantity"].as_str().unwrap().starts_with('-') })));
    // Transfers in every status.
    for status in ["open", "inTransit", "completed"] {
        assert!(any(&sts, &|d| d["status"] == status), "{status}");
    }
    // Manufacturing orders in every status, cancelled ones, several units, with and without
    // pick matchings, and components whose serials are matched to their unit's line.
    let mos = sim.documents("manufacturing-orders");
    for status in ["open", "inProgress", "completed"] {
        assert!(any(&mos, &|d| d["status"] == status && d["isCancelled"] == false), "{status}");
    }
    assert!(any(&mos, &|d| d["isCancelled"] == true && !arr(&d["pickLines"]).is_empty()));
    assert!(any(&mos, &|d| arr(&d["lines"]).len() == 2), "orders building two units on two lines");
    assert!(any(&mos, &|d| arr(&d["lines"]).iter().any(|l| serials(l).len() == 2)), "two units on one line");
    assert!(any(&mos, &|d| !arr(&d["pickLines"]).is_empty() && arr(&d["pickMatchings"]).is_empty()));
    assert!(any(&mos, &|d| arr(&d["pickMatchings"]).iter().any(|m| m["serial"] == "")), "a bulk component");
    for d in &mos {
        let children: BTreeSet<&str> = arr(&d["lines"])
            .iter()
            .flat_map(|l| {
                arr(&l["manufacturingOrderLines"]).iter().map(|c| c["manufacturingOrderLineId"].as_str().unwrap())
            })
            .collect();
        for m in arr(&d["pickMatchings"]) {
            assert!(
                children.contains(m["manufacturingOrderLineId"].as_str().unwrap()),
                "a matching names a component line"
            );
        }
    }
    // Stock counts: completed with serials missing and found, in progress, cancelled.
    let scs = sim.documents("stock-counts");
    let completed: Vec<&Value> =
        scs.iter().filter(|d| d["status"] == "completed" && d["isCancelled"] == false).collect();
    assert!(!completed.is_empty());
    let moves = count_moves(&sim);
    assert!(moves.iter().any(|m| m.3 < 0) && moves.iter().any(|m| m.3 > 0));
    assert!(any(&scs, &|d| d["status"] == "inProgress"));
    assert!(any(&scs, &|d| d["isCancelled"] == true));
    // Locations with sublocations like A-01-2 and RETURNS.
    assert!((4..=6).contains(&locs.len()));
    let subs: BTreeSet<String> = sos
        .iter()
        .flat_map(|d| {
            arr(&d["pickLines"])
                .iter()
                .chain(arr(&d["restockLines"]))
                .map(|l| l["sublocation"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(subs.contains("RETURNS"));
    assert!(subs.iter().any(|s| s.len() == 6 && s.as_bytes()[1] == b'-'), "{subs:?}");
    // Serial formats: SN-000123 and others.
    let all_serials: BTreeSet<String> =
        pos.iter().flat_map(|d| arr(&d["receiveLines"]).iter().flat_map(serials).collect::<Vec<_>>()).collect();
    assert!(all_serials.iter().any(|s| s.starts_with("SN-") && s.len() == 9));
    assert!(all_serials.iter().any(|s| !s.starts_with("SN-")));
    // Dates spread over 2024-01 .. 2026-10.
    let dates: Vec<DateTime<FixedOffset>> = sos.iter().map(|d| dt(&d["orderDate"])).collect();
    let min = dates.iter().min().unwrap().to_rfc3339();
    let max = dates.iter().max().unwrap().to_rfc3339();
    assert!(min.as_str() < "2024-04", "{min}");
    assert!(max.as_str() > "2026-07" && max.as_str() < "2026-11", "{max}");
    // Numbers follow dates.
    let mut by_number = sos.clone();
    by_number.sort_by_key(|d| d["orderNumber"].as_str().unwrap().to_string());
    assert!(by_number.windows(2).all(|w| dt(&w[0]["orderDate"]) <= dt(&w[1]["orderDate"])));
}

fn find_doc<'a>(docs: &'a [Value], id_key: &str, id: &str) -> &'a Value {
    docs.iter().find(|d| d[id_key] == id).unwrap_or_else(|| panic!("{id} not found"))
}

fn mentions(d: &Value, serial: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in d.as_object().unwrap() {
        if let Value::Array(lines) = v {
            for l in lines {
                if l.get("quantity").is_some() && serials(l).iter().any(|s| s == serial) {
                    out.push(k.clone());
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_planted_scenario_is_in_the_data() {
    let sim = sim(7, true).await;
    let sc = sim.scenario();
    let sos = sim.documents("sales-orders");
    let pos = sim.documents("purchase-orders");
    let sas = sim.documents("stock-adjustments");
    let sts = sim.documents("stock-transfers");
    let get = |r: &inflow_simulator::DocRef| -> Value {
        let (docs, key) = match r.endpoint.as_str() {
            "sales-orders" => (&sos, "salesOrderId"),
            "purchase-orders" => (&pos, "purchaseOrderId"),
            "stock-adjustments" => (&sas, "stockAdjustmentId"),
            _ => (&sts, "stockTransferId"),
        };
        let d = find_doc(docs, key, &r.id).clone();
        let number_key = match r.endpoint.as_str() {
            "stock-adjustments" => "adjustmentNumber",
            "stock-transfers" => "transferNumber",
            _ => "orderNumber",
        };
        assert_eq!(d[number_key], r.number.as_str());
        d
    };
    // Full lifecycle.
    let fl = &sc.full_lifecycle;
    assert!(fl.serial.starts_with("SN-"));
    let docs: Vec<Value> = fl.documents.iter().map(get).collect();
    assert_eq!(mentions(&docs[0], &fl.serial), ["receiveLines"]);
    assert_eq!(mentions(&docs[1], &fl.serial), ["lines"]);
    assert_eq!(docs[1]["status"], "completed");
    let mut so_colls = mentions(&docs[2], &fl.serial);
    so_colls.sort();
    so_colls.dedup();
    assert_eq!(so_colls, ["lines", "packLines", "pickLines", "restockLines"]);
    assert_eq!(docs[2]["inventoryStatus"], "fulfilled");
    assert_eq!(arr(&docs[2]["lines"]).len(), 2, "the sale and the return line");
    let on_hand = fl.on_hand.as_ref().unwrap();
    assert_eq!(on_hand.sublocation, "RETURNS");
    let times = [
        dt(&docs[0]["receiveLines"][0]["receiveDate"]),
        dt(&docs[1]["sentDate"]),
        dt(&docs[1]["receivedDate"]),
        dt(&docs[2]["pickLines"][0]["pickDate"]),
        dt(&docs[2]["shipLines"][0]["shippedDate"]),
        dt(&docs[2]["lines"][1]["returnDate"]),
        dt(&docs[2]["restockLines"][0]["restockDate"]),
    ];
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    let inv = inventory_lines(&sim);
    assert_eq!(
        inv.get(&(fl.product_id.clone(), on_hand.location_id.clone(), on_hand.sublocation.clone(), fl.serial.clone())),
        Some(&10_000)
    );
    // Vendor return, adjusted out, open transfer, in transit.
    let vr = get(&sc.vendor_return.documents[0]);
    let mut colls = mentions(&vr, &sc.vendor_return.serial);
    colls.sort();
    assert_eq!(colls, ["lines", "receiveLines", "unstockLines"]);
    let sa = get(&sc.adjusted_out.documents[1]);
    assert_eq!(sa["lines"][0]["quantity"]["standardQuantity"], "-1.0000");
    let open = get(&sc.on_open_transfer.documents[1]);
    assert_eq!(open["status"], "open");
    assert!(open["sentDate"].is_null());
    let transit = get(&sc.in_transit.documents[1]);
    assert_eq!(transit["status"], "inTransit");
    assert!(transit["sentDate"].is_string() && transit["receivedDate"].is_null());
    for story in [&sc.vendor_return, &sc.adjusted_out, &sc.in_transit] {
        assert!(!inv.keys().any(|k| k.3 == story.serial && k.0 == story.product_id), "{} gone", story.serial);
    }
    assert!(inv.keys().any(|k| k.3 == sc.on_open_transfer.serial));
    // Two products, one serial string.
    let tp = sc.two_products.as_ref().unwrap();
    assert_ne!(tp.product_ids[0], tp.product_ids[1]);
    for (story, pid) in tp.stories.iter().zip(&tp.product_ids) {
        assert_eq!(&story.serial, &tp.serial);
        assert_eq!(&story.product_id, pid);
        let first = get(&story.documents[0]);
        assert_eq!(first["receiveLines"][0]["productId"], pid.as_str());
    }
    // Faults.
    let twice = sc.sold_twice.as_ref().unwrap();
    let sales: Vec<Value> = twice.documents[1..].iter().map(get).collect();
    assert_eq!(sales.len(), 2);
    for s in &sales {
        assert!(mentions(s, &twice.serial).contains(&"pickLines".to_string()));
        assert!(!arr(&s["shipLines"]).is_empty());
    }
    let never = sc.shipped_never_received.as_ref().unwrap();
    let received_anywhere =
        pos.iter().any(|d| arr(&d["receiveLines"]).iter().any(|l| serials(l).contains(&never.serial)));
    assert!(!received_anywhere);
    let ats = sc.adjusted_out_then_sold.as_ref().unwrap();
    let adj = get(&ats.documents[1]);
    let sale = get(&ats.documents[2]);
    assert!(dt(&adj["date"]) < dt(&sale["pickLines"][0]["pickDate"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn scales_grow_in_proportion() {
    let small = sim(7, true).await;
    let n = Simulator::start(SimConfig { scale: Scale::Orders(1500), rate_limit: None, ..SimConfig::default() })
        .await
        .unwrap();
    let cs = small.counts();
    let cn = n.counts();
    let so = cn["sales-orders"];
    assert!((1500..1560).contains(&so), "{so}");
    assert!(cn["purchase-orders"] >= 450 && cn["purchase-orders"] <= 560);
    assert!(cn["stock-adjustments"] > cs["stock-adjustments"]);
    assert!(n.serial_occurrences() > 10 * small.serial_occurrences() / 2);
    assert_eq!("medium".parse::<Scale>().unwrap(), Scale::Medium);
    assert_eq!("2500".parse::<Scale>().unwrap(), Scale::Orders(2500));
    assert!("huge".parse::<Scale>().is_err());
}

/// The large scale is measured in release builds:
/// `cargo test --release --test simulator_data -- --ignored large`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "builds the large company: run with --release"]
async fn large_scale_has_over_a_million_serial_occurrences() {
    let t = std::time::Instant::now();
    let sim =
        Simulator::start(SimConfig { scale: Scale::Large, rate_limit: None, ..SimConfig::default() }).await.unwrap();
    assert!(t.elapsed() < std::time::Duration::from_secs(60), "{:?}", t.elapsed());
    assert!(sim.serial_occurrences() >= 1_000_000, "{}", sim.serial_occurrences());
}

/// Documents are dated in their location's business hours, up to a day before the moment the
/// generator decides them: stock arriving in between must not be used (a medium company, whose
/// documents are hours apart, caught it).
#[tokio::test(flavor = "multi_thread")]
async fn a_medium_clean_company_never_removes_a_serial_before_it_arrives() {
    let sim = Simulator::start(SimConfig {
        seed: 7,
        scale: Scale::Medium,
        data_faults: false,
        rate_limit: None,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(replay_dips(&sim), 0);
    assert!(inventory_lines(&sim).values().all(|q| *q > 0));
}
