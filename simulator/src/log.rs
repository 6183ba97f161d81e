//! The request log that tests and benchmarks read.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One request as the simulator saw it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// 1-based order of arrival since the simulator started.
    pub seq: u64,
    pub method: String,
    pub path: String,
    /// `sales-orders`, `purchase-orders`, `stock-adjustments`, `stock-transfers`, `products`,
    /// `locations`; `_sim` for admin routes; the raw path segment for anything else.
    pub endpoint: String,
    /// The document id of a by-id request; `None` for lists.
    pub document_id: Option<String>,
    /// Decoded query pairs in order.
    pub query: Vec<(String, String)>,
    /// The `Accept` header (where the client says `version=...`).
    pub accept: Option<String>,
    pub status: u16,
    /// When the request arrived.
    pub at: DateTime<Utc>,
    /// Time to produce the response head (includes injected delays).
    pub elapsed: Duration,
    /// The injected fault, if any: `status 503`, `429`, `delay 200ms`, `drop`, `malformed`.
    pub fault: Option<String>,
}

impl RequestRecord {
    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
pub(crate) struct RequestLog {
    records: VecDeque<RequestRecord>,
    capacity: usize,
    next_seq: u64,
}

impl RequestLog {
    pub fn new(capacity: usize) -> RequestLog {
        RequestLog { records: VecDeque::new(), capacity: capacity.max(1), next_seq: 1 }
    }

    pub fn next_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// Keeps the newest `capacity` records.
    pub fn push(&mut self, r: RequestRecord) {
        if self.records.len() == self.capacity {
            self.records.pop_front();
        }
        self.records.push_back(r);
    }

    pub fn all(&self) -> Vec<RequestRecord> {
        let mut v: Vec<_> = self.records.iter().cloned().collect();
        v.sort_by_key(|r| r.seq);
        v
    }

    pub fn clear(&mut self) {
        self.records.clear();
    }

    pub fn count_endpoint(&self, endpoint: &str) -> usize {
        self.records.iter().filter(|r| r.endpoint == endpoint).count()
    }

    pub fn count_status(&self, status: u16) -> usize {
        self.records.iter().filter(|r| r.status == status).count()
    }

    pub fn by_endpoint(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for r in &self.records {
            *m.entry(r.endpoint.clone()).or_default() += 1;
        }
        m
    }

    pub fn by_status(&self) -> BTreeMap<u16, usize> {
        let mut m = BTreeMap::new();
        for r in &self.records {
            *m.entry(r.status).or_default() += 1;
        }
        m
    }
}
