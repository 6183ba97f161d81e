//! The simulator's HTTP behaviour: auth, paging, filters, includes, rate limits, faults, the
//! request log, mutations while paging.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use inflow_simulator::{Fault, FaultRule, Faults, RateLimit, Scale, SimConfig, Simulator, Trigger};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client")
}

/// A small simulator without rate limits (tests that want limits set them).
async fn sim() -> Simulator {
    start(SimConfig { rate_limit: None, ..SimConfig::default() }).await
}

async fn start(config: SimConfig) -> Simulator {
    Simulator::start(config).await.expect("simulator starts")
}

struct Api {
    sim: Simulator,
    http: reqwest::Client,
}

impl Api {
    fn new(sim: &Simulator) -> Api {
        Api { sim: sim.clone(), http: client() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}/{}", self.sim.base_url(), self.sim.company_id(), path)
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .query(query)
            .bearer_auth(self.sim.api_key())
            .header("Accept", "application/json;version=2025-06-24")
            .send()
            .await
            .expect("request sent")
    }

    /// A 200 answer's JSON body.
    async fn json(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let r = self.get(path, query).await;
        let status = r.status();
        let body = r.text().await.expect("body");
        assert_eq!(status, StatusCode::OK, "GET {path} {query:?}: {body}");
        serde_json::from_str(&body).expect("JSON body")
    }

    async fn list(&self, path: &str, query: &[(&str, &str)]) -> Vec<Value> {
        match self.json(path, query).await {
            Value::Array(a) => a,
            other => panic!("expected a bare array, got {other}"),
        }
    }

    /// An error answer: (status, JSON body).
    async fn error(&self, path: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
        let r = self.get(path, query).await;
        let status = r.status();
        let body: Value = r.json().await.expect("JSON error body");
        (status, body)
    }
}

fn ids(rows: &[Value], key: &str) -> Vec<String> {
    rows.iter().map(|r| r[key].as_str().expect("id").to_string()).collect()
}

/// Walks a list with `count`, by `skip` or by `after`, returning each page's length and all ids.
async fn walk(api: &Api, path: &str, id_key: &str, count: usize, keyset: bool) -> (Vec<usize>, Vec<String>) {
    let mut sizes = Vec::new();
    let mut all: Vec<String> = Vec::new();
    let count_s = count.to_string();
    loop {
        let skip = all.len().to_string();
        let last: String = all.last().cloned().unwrap_or_default();
        let mut q = vec![("count", count_s.as_str()), ("sort", id_key)];
        if keyset {
            if !last.is_empty() {
                q.push(("after", last.as_str()));
            }
        } else {
            q.push(("skip", skip.as_str()));
        }
        let page = api.list(path, &q).await;
        sizes.push(page.len());
        all.extend(ids(&page, id_key));
        if page.is_empty() || sizes.len() > 1000 {
            break;
        }
    }
    (sizes, all)
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn small_scale_starts_fast_and_every_endpoint_lists() {
    let sim = sim().await;
    // The brief wants well under 100 ms; allow slack for a loaded debug build.
    assert!(sim.startup_time() < Duration::from_millis(1000), "startup took {:?}", sim.startup_time());
    assert!(!sim.base_url().ends_with('/'));
    let api = Api::new(&sim);
    let counts = sim.counts();
    for (endpoint, id_key) in [
        ("sales-orders", "salesOrderId"),
        ("purchase-orders", "purchaseOrderId"),
        ("stock-adjustments", "stockAdjustmentId"),
        ("stock-transfers", "stockTransferId"),
        ("products", "productId"),
        ("locations", "locationId"),
        ("customers", "customerId"),
        ("vendors", "vendorId"),
    ] {
        assert!(counts[endpoint] > 0, "{endpoint} is empty");
        let page = api.list(endpoint, &[("count", "5")]).await;
        assert_eq!(page.len(), 5.min(counts[endpoint]));
        let id = page[0][id_key].as_str().unwrap();
        let one = api.json(&format!("{endpoint}/{id}"), &[]).await;
        assert_eq!(one[id_key], page[0][id_key]);
    }
    let total: usize = counts.values().sum();
    assert!((200..600).contains(&total), "small has {total} entities");
    let loc = counts["locations"];
    assert!((4..=6).contains(&loc));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_company_and_ids_are_checked() {
    let sim = sim().await;
    let api = Api::new(&sim);
    let http = client();
    let url = api.url("sales-orders");
    // No key, a wrong key, a key without the Bearer scheme.
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http.get(&url).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http.get(&url).header("Authorization", sim.api_key()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Unknown company.
    let r = http
        .get(format!("{}/00000000-0000-4000-8000-000000000000/sales-orders", sim.base_url()))
        .bearer_auth(sim.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Unknown and malformed document ids, unknown resource.
    let (s, body) = api.error("sales-orders/00000000-0000-4000-8000-000000000000", &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(body["message"].is_string());
    let (s, _) = api.error("stock-transfers/not-a-guid", &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = api.error("tax-codes", &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The Accept header is recorded per request.
    let log = sim.requests();
    let with_version: Vec<_> =
        log.iter().filter(|r| r.accept.as_deref() == Some("application/json;version=2025-06-24")).collect();
    assert_eq!(with_version.len(), 3, "{log:#?}");
    assert_eq!(sim.count_status(401), 3);
    assert_eq!(sim.count_status(404), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn count_defaults_to_20_and_over_100_is_400() {
    let sim = sim().await;
    let api = Api::new(&sim);
    assert_eq!(api.list("sales-orders", &[]).await.len(), 20);
    assert_eq!(api.list("sales-orders", &[("count", "100")]).await.len(), 100);
    let (s, body) = api.error("sales-orders", &[("count", "101")]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["parameter"], "count");
    let (s, _) = api.error("sales-orders", &[("count", "ten")]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn paging_exactly_100_and_200_items() {
    let sim = start(SimConfig { rate_limit: None, scale: Scale::Orders(300), ..SimConfig::default() }).await;
    let api = Api::new(&sim);
    let docs = sim.documents("sales-orders");
    assert!(docs.len() > 200, "{} sales orders", docs.len());
    let all = ids(&docs, "salesOrderId");
    for id in &all[200..] {
        sim.delete("sales-orders", id).unwrap();
    }
    for keyset in [false, true] {
        let (sizes, seen) = walk(&api, "sales-orders", "salesOrderId", 100, keyset).await;
        assert_eq!(sizes, [100, 100, 0], "keyset={keyset}");
        assert_eq!(seen, all[..200], "keyset={keyset}");
    }
    for id in &all[100..200] {
        sim.delete("sales-orders", id).unwrap();
    }
    for keyset in [false, true] {
        let (sizes, seen) = walk(&api, "sales-orders", "salesOrderId", 100, keyset).await;
        assert_eq!(sizes, [100, 0], "keyset={keyset}");
        assert_eq!(seen, all[..100]);
    }
    for id in &all[50..100] {
        sim.delete("sales-orders", id).unwrap();
    }
    let (sizes, _) = walk(&api, "sales-orders", "salesOrderId", 100, true).await;
    assert_eq!(sizes, [50, 0], "a short page, then an empty one");
    // includeCount reports the total whatever the page.
    let r = api.get("sales-orders", &[("count", "10"), ("includeCount", "true")]).await;
    assert_eq!(r.headers()["x-listcount"], "50");
    let r = api.get("sales-orders", &[("count", "10")]).await;
    assert!(r.headers().get("x-listcount").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn keyset_returns_every_existing_document_once_while_inserting() {
    let sim = sim().await;
    let api = Api::new(&sim);
    let docs = sim.documents("sales-orders");
    let before: HashSet<String> = ids(&docs, "salesOrderId").into_iter().collect();
    let template = docs[0].clone();
    let mut seen: Vec<String> = Vec::new();
    let mut last = String::new();
    let mut inserted = 0;
    loop {
        let mut q = vec![("count", "25"), ("sort", "salesOrderId")];
        if !last.is_empty() {
            q.push(("after", last.as_str()));
        }
        let page = api.list("sales-orders", &q).await;
        if page.is_empty() {
            break;
        }
        seen.extend(ids(&page, "salesOrderId"));
        last = seen.last().cloned().unwrap();
        // New documents mid-scan: random ids land before and after the cursor.
        for _ in 0..4 {
            let mut d = template.clone();
            let obj = d.as_object_mut().unwrap();
            obj.remove("salesOrderId");
            obj.remove("orderNumber");
            sim.insert_document("sales-orders", d).unwrap();
            inserted += 1;
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no document twice");
    for id in &before {
        assert!(unique.contains(id), "pre-existing {id} was missed");
    }
    assert_eq!(sim.counts()["sales-orders"], before.len() + inserted);
    // Skip paging under the same inserts can repeat rows: the keyset is what makes it safe.
    let sorted: Vec<&String> = {
        let mut v: Vec<&String> = seen.iter().collect();
        v.sort();
        v
    };
    assert_eq!(sorted.len(), seen.len());
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "ascending id order");
}

#[tokio::test(flavor = "multi_thread")]
async fn sort_by_other_keys_with_keyset_and_ties() {
    let sim = sim().await;
    let api = Api::new(&sim);
    let n = sim.counts()["sales-orders"];
    // Make a tie on orderDate: three orders with the same date.
    let docs = sim.documents("sales-orders");
    let tied = chrono::DateTime::parse_from_rfc3339("2025-05-05T10:00:00-05:00").unwrap();
    for d in &docs[..3] {
        sim.set_document_date("sales-orders", d["salesOrderId"].as_str().unwrap(), tied).unwrap();
    }
    for (sort, desc) in [
        ("orderDate", "true"),
        ("orderDate", "false"),
        ("orderNumber", "false"),
        ("timestamp", "true"),
        ("salesOrderId", "true"),
    ] {
        let mut got: Vec<Value> = Vec::new();
        loop {
            let last = got.last().map(|d| d["salesOrderId"].as_str().unwrap().to_string()).unwrap_or_default();
            let mut q = vec![("count", "30"), ("sort", sort), ("sortDesc", desc)];
            if !last.is_empty() {
                q.push(("after", last.as_str()));
            }
            let page = api.list("sales-orders", &q).await;
            if page.is_empty() {
                break;
            }
            got.extend(page);
        }
        assert_eq!(got.len(), n, "sort={sort} desc={desc}");
        let key = |d: &Value| -> (String, String) {
            let k = match sort {
                "orderDate" => chrono::DateTime::parse_from_rfc3339(d["orderDate"].as_str().unwrap())
                    .unwrap()
                    .timestamp()
                    .to_string(),
                other => d[other].as_str().unwrap().to_string(),
            };
            // Zero-pad numbers so string order is numeric order.
            (format!("{k:>20}"), d["salesOrderId"].as_str().unwrap().to_string())
        };
        let keys: Vec<_> = got.iter().map(key).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        if desc == "true" {
            sorted.reverse();
        }
        assert_eq!(keys, sorted, "sort={sort} desc={desc}");
    }
    // `start` includes the entity, `before` stops before it.
    let page = api.list("sales-orders", &[("count", "10")]).await;
    let third = page[2]["salesOrderId"].as_str().unwrap();
    let from = api.list("sales-orders", &[("count", "3"), ("start", third)]).await;
    assert_eq!(from[0]["salesOrderId"], third);
    let before = api.list("sales-orders", &[("count", "10"), ("before", third)]).await;
    assert_eq!(ids(&before, "salesOrderId"), ids(&page[..2], "salesOrderId"));
    let (s, body) = api.error("sales-orders", &[("sort", "colour")]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["sort"], "colour");
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_select_the_documented_subsets() {
    let sim = sim().await;
    let api = Api::new(&sim);
    let all = |endpoint: &str| sim.documents(endpoint);
    async fn every(api: &Api, path: &str, q: &[(&str, &str)]) -> Vec<Value> {
        let mut out = Vec::new();
        let mut skip = 0;
        loop {
            let s = skip.to_string();
            let mut qq = q.to_vec();
            qq.push(("count", "100"));
            qq.push(("skip", s.as_str()));
            let page = api.list(path, &qq).await;
            if page.is_empty() {
                return out;
            }
            skip += page.len();
            out.extend(page);
        }
    }
    // orderDate, date-only, both ends inclusive in the document's local date.
    let sos = all("sales-orders");
    let in_range = |d: &Value, from: &str, to: &str| {
        let day = &d["orderDate"].as_str().unwrap()[..10];
        day >= from && day <= to
    };
    let f = r#"{"fromDate":"2025-01-01","toDate":"2025-03-31"}"#;
    let got = every(&api, "sales-orders", &[("filter[orderDate]", f)]).await;
    let want = sos.iter().filter(|d| in_range(d, "2025-01-01", "2025-03-31")).count();
    assert!(want > 0);
    assert_eq!(got.len(), want);
    // RFC 3339 bounds compare instants.
    let f = r#"{"fromDate":"2025-01-01T00:00:00Z","toDate":"2025-06-30T23:59:59+00:00"}"#;
    let got = every(&api, "purchase-orders", &[("filter[orderDate]", f)]).await;
    let want = all("purchase-orders")
        .iter()
        .filter(|d| {
            let t = chrono::DateTime::parse_from_rfc3339(d["orderDate"].as_str().unwrap()).unwrap();
            t >= chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z").unwrap()
                && t <= chrono::DateTime::parse_from_rfc3339("2025-06-30T23:59:59Z").unwrap()
        })
        .count();
    assert!(want > 0);
    assert_eq!(got.len(), want);
    // isActive.
    let active = every(&api, "sales-orders", &[("filter[isActive]", "true")]).await;
    let cancelled = sos.iter().filter(|d| d["isCancelled"] == true).count();
    assert!(cancelled > 0);
    assert_eq!(active.len(), sos.len() - cancelled);
    assert!(active.iter().all(|d| d["isCancelled"] == false));
    let r = api.get("sales-orders", &[("filter[isActive]", "true"), ("includeCount", "true"), ("count", "1")]).await;
    assert_eq!(r.headers()["x-listcount"], active.len().to_string().as_str());
    // Number filters.
    let sa = &all("stock-adjustments")[3];
    let got =
        every(&api, "stock-adjustments", &[("filter[adjustmentNumber]", sa["adjustmentNumber"].as_str().unwrap())])
            .await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["stockAdjustmentId"], sa["stockAdjustmentId"]);
    let st = &all("stock-transfers")[2];
    let got =
        every(&api, "stock-transfers", &[("filter[transferNumber]", st["transferNumber"].as_str().unwrap())]).await;
    assert_eq!(ids(&got, "stockTransferId"), [st["stockTransferId"].as_str().unwrap()]);
    // Products: trackSerials and lastModifiedDateTime.
    let products = sim.products();
    let serial = every(&api, "products", &[("filter[trackSerials]", "true")]).await;
    let want = products.iter().filter(|p| p["trackSerials"] == true).count();
    assert!(want > 0 && want < products.len());
    assert_eq!(serial.len(), want);
    let f = r#"{"fromDate":"2025-01-01"}"#;
    let recent = every(&api, "products", &[("filter[lastModifiedDateTime]", f)]).await;
    let want = products.iter().filter(|p| &p["lastModifiedDateTime"].as_str().unwrap()[..10] >= "2025-01-01").count();
    assert_eq!(recent.len(), want);
    assert!(want < products.len());
    // Status lists.
    let picked = every(&api, "sales-orders", &[("filter[inventoryStatus][]", "started")]).await;
    assert!(!picked.is_empty());
    assert!(picked.iter().all(|d| d["inventoryStatus"] == "started"));
    // Unknown filters: 400 naming the filter.
    for (path, name) in
        [("sales-orders", "colour"), ("stock-adjustments", "orderDate"), ("stock-transfers", "isActive")]
    {
        let key = format!("filter[{name}]");
        let (s, body) = api.error(path, &[(key.as_str(), "x")]).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path} {name}");
        assert_eq!(body["filter"], name, "{body}");
    }
    let (s, body) = api.error("sales-orders", &[("filter[orderDate]", "not json")]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["filter"], "orderDate");
}

#[tokio::test(flavor = "multi_thread")]
async fn includes_return_only_what_is_asked() {
    let sim = sim().await;
    let api = Api::new(&sim);
    let plain = api.list("sales-orders", &[("count", "5")]).await;
    for d in &plain {
        for k in ["lines", "pickLines", "packLines", "shipLines", "restockLines", "location"] {
            assert!(d.get(k).is_none(), "{k} without include");
        }
    }
    let with = api.list("sales-orders", &[("count", "5"), ("include", "lines.product,shipLines")]).await;
    for d in &with {
        assert!(d["lines"].is_array());
        assert!(d["shipLines"].is_array());
        assert!(d.get("pickLines").is_none());
        for l in d["lines"].as_array().unwrap() {
            assert_eq!(l["product"]["productId"], l["productId"]);
        }
    }
    // pickLines.product and location on by-id requests; unmodelled relationships are null/[].
    let id = plain[0]["salesOrderId"].as_str().unwrap();
    let one = api
        .json(
            &format!("sales-orders/{id}"),
            &[("include", "pickLines.product,pickLines.location,location,customer,attachments")],
        )
        .await;
    assert_eq!(one["location"]["locationId"], one["locationId"]);
    assert!(one["customer"].is_null());
    assert_eq!(one["attachments"], json!([]));
    for l in one["pickLines"].as_array().unwrap() {
        assert_eq!(l["product"]["productId"], l["productId"]);
        assert_eq!(l["location"]["locationId"], l["locationId"]);
    }
    // Products' inventoryLines.
    let p = api.list("products", &[("count", "3"), ("include", "inventoryLines")]).await;
    assert!(p.iter().all(|p| p["inventoryLines"].is_array()));
    assert!(p.iter().all(|p| p["totalQuantityOnHand"].is_string()));
    let p = api.list("products", &[("count", "3")]).await;
    assert!(p.iter().all(|p| p.get("inventoryLines").is_none() && p["totalQuantityOnHand"].is_null()));
    // Every listed name of §5 is accepted.
    for (path, inc) in [
        (
            "sales-orders",
            "lines,lines.product,lines.taxCode,pickLines,pickLines.product,pickLines.location,packLines,shipLines,restockLines,paymentLines,customer,location,currency,paymentTerms,pricingScheme,taxingScheme,costOfGoodsSold,attachments,assignedToTeamMember,confirmerTeamMember,salesRepTeamMember,lastModifiedBy,pickAllocationLines,pickAllocationFailures",
        ),
        (
            "purchase-orders",
            "lines,lines.product,receiveLines,unstockLines,paymentLines,vendor,location,currency,paymentTerms,taxingScheme,attachments,approverTeamMember,assignedToTeamMember,lastModifiedBy",
        ),
        ("stock-adjustments", "lines,lines.product,location,adjustmentReason,attachments,lastModifiedBy"),
        (
            "stock-transfers",
            "lines,lines.product,fromLocation,toLocation,assignedToTeamMember,attachments,lastModifiedBy",
        ),
        (
            "products",
            "inventoryLines,inventoryLines.location,prices,defaultPrice,vendorItems,itemBoms,productBarcodes,images,defaultImage,category,cost,taxCodes,reorderSettings,productOperations,lastVendor,attachments,lastModifiedBy",
        ),
    ] {
        let rows = api.list(path, &[("count", "2"), ("include", inc)]).await;
        assert_eq!(rows.len(), 2, "{path}");
    }
    // Bad includes: 400 naming the relationship.
    for (path, inc, bad) in [
        ("sales-orders", "lines,items", "items"),
        ("stock-adjustments", "lines,customFields", "customFields"),
        ("stock-transfers", "customFields", "customFields"),
        ("products", "stock", "stock"),
        ("products", "inventory", "inventory"),
        ("sales-orders", "lines.stock", "lines.stock"),
    ] {
        let (s, body) = api.error(path, &[("include", inc)]).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path} {inc}");
        assert_eq!(body["relationship"], bad, "{body}");
        assert!(body["message"].as_str().unwrap().contains(bad));
    }
    let (s, _) = api.error(&format!("sales-orders/{id}"), &[("include", "items")]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn minute_window_refuses_with_retry_after_and_frees_up() {
    // A minute of 600 ms.
    let sim = start(SimConfig {
        rate_limit: Some(RateLimit { per_minute: 3, per_hour: 100 }),
        time_scale: 0.01,
        ..SimConfig::default()
    })
    .await;
    let api = Api::new(&sim);
    let t0 = Instant::now();
    for used in 1..=3 {
        let r = api.get("locations", &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["x-inflow-api-rate-limit"], format!("{used}/3").as_str());
        assert_eq!(r.headers()["x-ratelimit-limit"], format!("{used}/100").as_str());
    }
    let r = api.get("locations", &[]).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry = r.headers()["retry-after"].to_str().unwrap().to_string();
    assert!(retry.starts_with("0."), "sub-second Retry-After is a decimal: {retry}");
    let secs: f64 = retry.parse().unwrap();
    assert!(secs > 0.0 && secs <= 0.6, "{secs}");
    assert_eq!(r.headers()["x-inflow-api-rate-limit"], "3/3");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "TooManyRequests");
    // Another refusal is not counted either.
    let r = api.get("locations", &[]).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    tokio::time::sleep(Duration::from_secs_f64(secs) + Duration::from_millis(30)).await;
    assert!(t0.elapsed() < Duration::from_secs(5));
    let r = api.get("locations", &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    // The hour window counts only the accepted requests.
    assert_eq!(r.headers()["x-ratelimit-limit"], "4/100");
}

#[tokio::test(flavor = "multi_thread")]
async fn hour_window_refuses_and_disabling_stops_limits() {
    // An hour of 1.8 s.
    let sim = start(SimConfig {
        rate_limit: Some(RateLimit { per_minute: 100, per_hour: 4 }),
        time_scale: 0.0005,
        ..SimConfig::default()
    })
    .await;
    let api = Api::new(&sim);
    for _ in 0..4 {
        assert_eq!(api.get("locations", &[]).await.status(), StatusCode::OK);
    }
    let r = api.get("locations", &[]).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["x-ratelimit-limit"], "4/4");
    let retry: f64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0.0 && retry <= 2.0, "{retry}");
    tokio::time::sleep(Duration::from_millis(1850)).await;
    let r = api.get("locations", &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-ratelimit-limit"], "1/4");
    // Disabled: no refusals and no headers.
    sim.set_rate_limit(None);
    for _ in 0..10 {
        let r = api.get("locations", &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().get("x-ratelimit-limit").is_none());
    }
    // Default limits when switched back on.
    sim.set_rate_limit(Some(RateLimit::default()));
    let r = api.get("locations", &[]).await;
    assert_eq!(r.headers()["x-inflow-api-rate-limit"], "1/60");
    assert_eq!(r.headers()["x-ratelimit-limit"], "1/1000");
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_status_faults_and_429_bursts() {
    let sim = start(SimConfig {
        rate_limit: None,
        faults: Faults::none().rule(FaultRule::new(Fault::Status { status: 503 }, Trigger::Requests(vec![3, 4, 5]))),
        ..SimConfig::default()
    })
    .await;
    let api = Api::new(&sim);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(api.get("locations", &[]).await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 503, 503, 503, 200]);
    // Changed at runtime: 500 and 502 on every request of one endpoint.
    for status in [500, 502] {
        sim.set_faults(
            Faults::none().rule(FaultRule::new(Fault::Status { status }, Trigger::Rate(1.0)).on_endpoint("products")),
        );
        assert_eq!(api.get("products", &[]).await.status().as_u16(), status);
        assert_eq!(api.get("locations", &[]).await.status(), StatusCode::OK);
    }
    // A 429 burst on the next two list requests, with Retry-After.
    sim.set_faults(
        Faults::none()
            .rule(FaultRule::new(Fault::TooManyRequests { retry_after_secs: 0.05 }, Trigger::Next(2)).lists_only()),
    );
    let id = sim.documents("locations")[0]["locationId"].as_str().unwrap().to_string();
    assert_eq!(api.get(&format!("locations/{id}"), &[]).await.status(), StatusCode::OK);
    for _ in 0..2 {
        let r = api.get("locations", &[]).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()["retry-after"], "0.050");
    }
    assert_eq!(api.get("locations", &[]).await.status(), StatusCode::OK);
    // Probability 0: nothing.
    sim.set_faults(Faults::none().rule(FaultRule::new(Fault::Status { status: 500 }, Trigger::Rate(0.0))));
    for _ in 0..5 {
        assert_eq!(api.get("locations", &[]).await.status(), StatusCode::OK);
    }
    assert_eq!(sim.count_status(503), 3);
    let faulted: Vec<_> = sim.requests().into_iter().filter(|r| r.fault.is_some()).collect();
    assert_eq!(faulted.len(), 3 + 2 + 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_dropped_and_malformed_bodies() {
    let sim = sim().await;
    let api = Api::new(&sim);
    // Slow.
    sim.set_faults(Faults::none().rule(FaultRule::new(Fault::Delay { millis: 300 }, Trigger::Next(1))));
    let t = Instant::now();
    assert_eq!(api.get("locations", &[]).await.status(), StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(300));
    let t = Instant::now();
    assert_eq!(api.get("locations", &[]).await.status(), StatusCode::OK);
    assert!(t.elapsed() < Duration::from_millis(300));
    // Dropped mid-body: headers arrive, the body fails.
    sim.set_faults(Faults::none().rule(FaultRule::new(Fault::DropMidBody { after_bytes: 200 }, Trigger::Next(1))));
    let r = api.get("sales-orders", &[("count", "50"), ("include", "lines")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let err = r.bytes().await.expect_err("the body must fail");
    assert!(err.is_body() || err.is_decode() || err.is_request(), "{err:?}");
    // Malformed JSON: a 200 whose body does not parse.
    sim.set_faults(Faults::none().rule(FaultRule::new(Fault::MalformedJson, Trigger::Next(1))));
    let r = api.get("sales-orders", &[("count", "10")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(!text.is_empty());
    assert!(serde_json::from_str::<Value>(&text).is_err());
    // And the next answer is whole again.
    assert_eq!(api.list("sales-orders", &[("count", "10")]).await.len(), 10);
    let log = sim.requests();
    let faults: Vec<Option<&str>> = log.iter().map(|r| r.fault.as_deref()).collect();
    assert_eq!(faults, [Some("delay 300ms"), None, Some("drop"), Some("malformed"), None]);
}

#[tokio::test(flavor = "multi_thread")]
async fn request_log_records_and_counts() {
    let sim = sim().await;
    let api = Api::new(&sim);
    let f = r#"{"fromDate":"2025-01-01","toDate":"2025-02-01"}"#;
    api.list("sales-orders", &[("count", "7"), ("filter[orderDate]", f)]).await;
    api.list("sales-orders", &[("count", "2")]).await;
    api.list("products", &[("count", "1")]).await;
    api.error("sales-orders", &[("count", "500")]).await;
    let log = sim.requests();
    assert_eq!(log.len(), 4);
    let first = &log[0];
    assert_eq!(first.method, "GET");
    assert_eq!(first.endpoint, "sales-orders");
    assert_eq!(first.path, format!("/{}/sales-orders", sim.company_id()));
    assert_eq!(first.param("filter[orderDate]"), Some(f), "decoded query pairs");
    assert_eq!(first.param("count"), Some("7"));
    assert_eq!(first.status, 200);
    assert!(first.document_id.is_none());
    assert!(log.windows(2).all(|w| w[0].seq < w[1].seq && w[0].at <= w[1].at));
    assert_eq!(sim.count_requests("sales-orders"), 3);
    assert_eq!(sim.count_requests("products"), 1);
    assert_eq!(sim.count_status(400), 1);
    let by: BTreeMap<String, usize> = sim.requests_by_endpoint();
    assert_eq!(by["sales-orders"], 3);
    assert_eq!(sim.requests_by_status()[&200], 3);
    sim.clear_requests();
    assert!(sim.requests().is_empty());
    assert_eq!(sim.count_requests("sales-orders"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn old_server_mode_rejects_keyset_but_pages_by_skip() {
    let sim = start(SimConfig { rate_limit: None, reject_keyset: true, ..SimConfig::default() }).await;
    let api = Api::new(&sim);
    let first = api.list("sales-orders", &[("count", "5")]).await;
    let id = first[4]["salesOrderId"].as_str().unwrap();
    for p in ["after", "before", "start"] {
        let (s, body) = api.error("sales-orders", &[(p, id)]).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(body["parameter"], p);
    }
    let next = api.list("sales-orders", &[("count", "5"), ("skip", "5")]).await;
    assert_eq!(next.len(), 5);
    sim.set_reject_keyset(false);
    let after = api.list("sales-orders", &[("count", "5"), ("after", id)]).await;
    assert_eq!(after, next);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_unconfirmed_behaviour_has_a_switch() {
    use inflow_simulator::{Behaviour, DateSort, GuidOrder, ListCount, RateHeaders, UnknownCursor};
    let sim = start(SimConfig { rate_limit: None, scale: Scale::Orders(250), ..SimConfig::default() }).await;
    let api = Api::new(&sim);
    let all = ids(&sim.documents("sales-orders"), "salesOrderId");
    let set = |b: Behaviour| sim.set_behaviour(b);
    let d = Behaviour::DEFAULT;
    let header = |r: &reqwest::Response, name: &str| r.headers().get(name).map(|v| v.to_str().unwrap().to_string());

    // A page cap below `count`.
    set(Behaviour { page_cap: Some(30), ..d.clone() });
    assert_eq!(api.list("sales-orders", &[("count", "100")]).await.len(), 30);
    let (sizes, seen) = walk(&api, "sales-orders", "salesOrderId", 100, true).await;
    assert!(sizes.iter().all(|n| *n <= 30) && seen == all, "{sizes:?}");

    // A 5xx for any `sort`.
    set(Behaviour { sort_status: Some(500), ..d.clone() });
    let r = api.get("sales-orders", &[("sort", "salesOrderId")]).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(api.list("sales-orders", &[("count", "5")]).await.len(), 5, "without sort it answers");

    // `sort` ignored: a descending date sort comes in id order.
    set(Behaviour { ignore_sort: true, ..d.clone() });
    let page = api.list("sales-orders", &[("count", "20"), ("sort", "orderDate"), ("sortDesc", "true")]).await;
    assert_eq!(ids(&page, "salesOrderId"), all[..20]);

    // A date sort ignored (other sorts work), or honoured badly: each page cut in id order,
    // then sorted by the date.
    let newest = [("count", "20"), ("sort", "orderDate"), ("sortDesc", "true")];
    set(Behaviour { date_sort: DateSort::Ignore, ..d.clone() });
    assert_eq!(ids(&api.list("sales-orders", &newest).await, "salesOrderId"), all[..20]);
    let by_number = api.list("sales-orders", &[("count", "20"), ("sort", "orderNumber")]).await;
    assert_ne!(ids(&by_number, "salesOrderId"), all[..20], "other sorts still work");
    set(Behaviour { date_sort: DateSort::Badly, ..d.clone() });
    let page = api.list("sales-orders", &newest).await;
    let mut got = ids(&page, "salesOrderId");
    got.sort();
    let mut first = all[..20].to_vec();
    first.sort();
    assert_eq!(got, first, "the first 20 by id");
    let dates: Vec<&str> = page.iter().map(|d| d["orderDate"].as_str().unwrap()).collect();
    let instant = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
    assert!(dates.windows(2).all(|w| instant(w[0]) >= instant(w[1])), "sorted within the page: {dates:?}");
    set(Behaviour { date_sort: DateSort::Honour, ..d.clone() });
    let honoured = api.list("sales-orders", &newest).await;
    assert_ne!(ids(&honoured, "salesOrderId"), ids(&page, "salesOrderId"), "the newest 20 of all");

    // The answer to a cursor whose document is gone.
    let gone = all[50].clone();
    sim.delete("sales-orders", &gone).unwrap();
    let after = [("count", "5"), ("after", gone.as_str()), ("includeCount", "true")];
    set(d.clone());
    assert_eq!(ids(&api.list("sales-orders", &after).await, "salesOrderId"), all[51..56], "compared by default");
    for status in [404, 400, 500] {
        set(Behaviour { unknown_cursor: UnknownCursor::Status(status), ..d.clone() });
        assert_eq!(api.get("sales-orders", &after).await.status().as_u16(), status);
    }
    set(Behaviour { unknown_cursor: UnknownCursor::Empty, ..d.clone() });
    let r = api.get("sales-orders", &after).await;
    assert_eq!(header(&r, "x-listcount").as_deref(), Some((all.len() - 1).to_string().as_str()));
    assert_eq!(r.json::<Value>().await.unwrap(), json!([]));

    // X-listCount of what remains from the position, or none at all.
    set(Behaviour { list_count: ListCount::Remaining, ..d.clone() });
    let live = all.len() - 1;
    let r = api.get("sales-orders", &[("count", "10"), ("includeCount", "true")]).await;
    assert_eq!(header(&r, "x-listcount"), Some(live.to_string()));
    let r = api.get("sales-orders", &[("count", "10"), ("includeCount", "true"), ("after", &all[9])]).await;
    assert_eq!(header(&r, "x-listcount"), Some((live - 10).to_string()));
    let r = api.get("sales-orders", &[("count", "10"), ("includeCount", "true"), ("skip", "30")]).await;
    assert_eq!(header(&r, "x-listcount"), Some((live - 30).to_string()));
    set(Behaviour { list_count: ListCount::Absent, ..d.clone() });
    let r = api.get("sales-orders", &[("count", "10"), ("includeCount", "true")]).await;
    assert_eq!(header(&r, "x-listcount"), None);

    // SQL Server's GUID order for the id sort and the keyset.
    set(Behaviour { guid_order: GuidOrder::SqlServer, ..d.clone() });
    let (_, seen) = walk(&api, "sales-orders", "salesOrderId", 100, true).await;
    let mut expected: Vec<String> = all.iter().filter(|id| **id != gone).cloned().collect();
    expected.sort_by_key(|id| GuidOrder::SqlServer.key(uuid::Uuid::parse_str(id).unwrap()));
    assert_eq!(seen, expected);
    assert_ne!(seen, all.iter().filter(|id| **id != gone).cloned().collect::<Vec<_>>(), "not the text order");

    // Rate headers counting down.
    sim.set_rate_limit(Some(RateLimit { per_minute: 60, per_hour: 1000 }));
    set(Behaviour { rate_headers: RateHeaders::Remaining, ..d.clone() });
    let r = api.get("locations", &[]).await;
    assert_eq!(header(&r, "x-inflow-api-rate-limit").as_deref(), Some("59/60"));
    let r = api.get("locations", &[]).await;
    assert_eq!(header(&r, "x-inflow-api-rate-limit").as_deref(), Some("58/60"));
    assert_eq!(header(&r, "x-ratelimit-limit").as_deref(), Some("998/1000"));

    // The switches are also an admin route, for `audit simulate`.
    let http = client();
    let url = format!("{}/_sim/behaviour", sim.base_url());
    let r = http.put(&url).json(&json!({"pageCap": 7, "unknownCursor": {"status": 404}})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(sim.behaviour().page_cap, Some(7));
    assert_eq!(sim.behaviour().unknown_cursor, UnknownCursor::Status(404));
    let shown: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(shown["pageCap"], 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn editing_a_line_bumps_its_and_the_headers_timestamp_only() {
    let sim = sim().await;
    let api = Api::new(&sim);
    let po = sim
        .documents("purchase-orders")
        .into_iter()
        .find(|d| {
            d["receiveLines"].as_array().unwrap().len() >= 2
                && !d["receiveLines"][0]["quantity"]["serialNumbers"].as_array().unwrap().is_empty()
                && d["isCancelled"] == false
        })
        .expect("a PO with two receive lines");
    let id = po["purchaseOrderId"].as_str().unwrap();
    let line = &po["receiveLines"][0];
    let line_id = line["purchaseOrderReceiveLineId"].as_str().unwrap();
    let product = line["productId"].as_str().unwrap();
    let old_serials: Vec<String> = serde_json::from_value(line["quantity"]["serialNumbers"].clone()).unwrap();
    let before_counter = sim.rowversion();
    sim.edit_line_serials(
        "purchase-orders",
        id,
        "receiveLines",
        line_id,
        vec!["NEW-SERIAL-1".into(), "NEW-SERIAL-2".into()],
    )
    .unwrap();
    let after = api.json(&format!("purchase-orders/{id}"), &[("include", "lines,receiveLines,unstockLines")]).await;
    let hex = |v: &Value| u64::from_str_radix(v.as_str().unwrap(), 16).unwrap();
    let new_line = &after["receiveLines"][0];
    assert_eq!(new_line["quantity"]["serialNumbers"], json!(["NEW-SERIAL-1", "NEW-SERIAL-2"]));
    assert_eq!(new_line["quantity"]["standardQuantity"], "2.0000");
    assert!(hex(&after["timestamp"]) > before_counter);
    assert!(hex(&new_line["timestamp"]) > hex(&after["timestamp"]), "line above header");
    assert_eq!(after["receiveLines"][1]["timestamp"], po["receiveLines"][1]["timestamp"]);
    for (a, b) in after["lines"].as_array().unwrap().iter().zip(po["lines"].as_array().unwrap()) {
        assert_eq!(a["timestamp"], b["timestamp"], "untouched lines keep theirs");
    }
    // The product's inventory follows: the new serials are on hand there, the old ones not
    // (unless they moved on since, in which case they were not on hand there anyway).
    let p = sim.products().into_iter().find(|p| p["productId"] == product).unwrap();
    let here: Vec<&Value> = p["inventoryLines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["locationId"] == new_line["locationId"] && l["sublocation"] == new_line["sublocation"])
        .collect();
    for s in ["NEW-SERIAL-1", "NEW-SERIAL-2"] {
        let row = here.iter().find(|l| l["serial"] == s).expect("new serial on hand");
        assert_eq!(row["quantityOnHand"], "1.0000");
        assert!(hex(&row["timestamp"]) > before_counter);
    }
    for s in &old_serials {
        assert!(
            !here.iter().any(|l| l["serial"] == s.as_str() && l["quantityOnHand"] == "1.0000"),
            "{s} should have left"
        );
    }
    // Unknown ids are errors.
    assert!(sim.edit_line_serials("purchase-orders", id, "receiveLines", id, vec![]).is_err());
    assert!(sim.cancel("purchase-orders", "00000000-0000-4000-8000-000000000000").is_err());
    assert!(sim.cancel("customers", id).is_err());
    assert!(sim.edit_line_serials("purchase-orders", id, "pickLines", line_id, vec![]).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_uncancel_delete_and_move_while_serving() {
    let sim = sim().await;
    let api = Api::new(&sim);
    let so = sim
        .documents("sales-orders")
        .into_iter()
        .find(|d| d["isCancelled"] == false && !d["pickLines"].as_array().unwrap().is_empty())
        .unwrap();
    let id = so["salesOrderId"].as_str().unwrap();
    let path = format!("sales-orders/{id}");
    let ts0 = so["timestamp"].as_str().unwrap().to_string();
    sim.cancel("sales-orders", id).unwrap();
    let d = api.json(&path, &[]).await;
    assert_eq!(d["isCancelled"], true);
    assert!(d["timestamp"].as_str().unwrap() > ts0.as_str());
    let active = api.list("sales-orders", &[("filter[isActive]", "true"), ("count", "100")]).await;
    assert!(!ids(&active, "salesOrderId").contains(&id.to_string()));
    sim.uncancel("sales-orders", id).unwrap();
    assert_eq!(api.json(&path, &[]).await["isCancelled"], false);
    // Re-date.
    let when = chrono::DateTime::parse_from_rfc3339("2026-01-02T09:30:00+01:00").unwrap();
    sim.set_document_date("sales-orders", id, when).unwrap();
    assert_eq!(api.json(&path, &[]).await["orderDate"], "2026-01-02T09:30:00+01:00");
    // Move a pick line: the picked serials come off another shelf.
    let pick = &so["pickLines"][0];
    let loc = sim.documents("locations")[1]["locationId"].as_str().unwrap().to_string();
    sim.set_line_location(
        "sales-orders",
        id,
        "pickLines",
        pick["salesOrderPickLineId"].as_str().unwrap(),
        &loc,
        "Z-99-9",
    )
    .unwrap();
    let d = api.json(&path, &[("include", "pickLines")]).await;
    assert_eq!(d["pickLines"][0]["locationId"], loc.as_str());
    assert_eq!(d["pickLines"][0]["sublocation"], "Z-99-9");
    let product = pick["productId"].as_str().unwrap();
    let p = sim.products().into_iter().find(|p| p["productId"] == product).unwrap();
    let at_new: Vec<&Value> =
        p["inventoryLines"].as_array().unwrap().iter().filter(|l| l["sublocation"] == "Z-99-9").collect();
    let picked = pick["quantity"]["serialNumbers"].as_array().unwrap();
    if !picked.is_empty() {
        assert_eq!(at_new.len(), picked.len(), "a pick from an empty shelf goes negative");
        assert!(at_new.iter().all(|l| l["quantityOnHand"] == "-1.0000"));
    }
    // Delete.
    sim.delete("sales-orders", id).unwrap();
    let (s, _) = api.error(&path, &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(sim.delete("sales-orders", id).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_routes_drive_the_same_state() {
    let sim = sim().await;
    let http = client();
    let admin = |p: &str| format!("{}/_sim/{p}", sim.base_url());
    let scenario: Value = http.get(admin("scenario")).send().await.unwrap().json().await.unwrap();
    assert_eq!(scenario["fullLifecycle"]["serial"], sim.scenario().full_lifecycle.serial.as_str());
    let st = &sim.documents("stock-transfers")[0];
    let id = st["stockTransferId"].as_str().unwrap();
    let r = http.post(admin(&format!("documents/stock-transfers/{id}/cancel"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let now = sim.documents("stock-transfers").into_iter().find(|d| d["stockTransferId"] == id).unwrap();
    assert_eq!(now["isCancelled"], true);
    let r = http
        .put(admin("faults"))
        .json(&json!({"rules": [{"fault": {"kind": "status", "status": 502}, "when": {"next": 1}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let api = Api::new(&sim);
    assert_eq!(api.get("locations", &[]).await.status().as_u16(), 502);
    let r = http.put(admin("rate-limit")).json(&json!({"perMinute": 1, "perHour": 10})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(api.get("locations", &[]).await.status(), StatusCode::OK);
    assert_eq!(api.get("locations", &[]).await.status(), StatusCode::TOO_MANY_REQUESTS);
    let r = http.delete(admin("requests")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(sim.count_requests("locations"), 0);
    let r = http.get(admin("nope")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
