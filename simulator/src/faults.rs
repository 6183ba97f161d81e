//! Fault injection: 5xx answers, 429 bursts, slow responses, a connection dropped mid-body and
//! a malformed JSON body, each triggered by a probability per request (from a seeded RNG), by
//! request numbers, or for the next K matching requests.
//!
//! Request numbers count, per rule, the API requests in that rule's scope (its endpoint, and
//! lists only if `lists_only`) that passed authentication and rate limiting, starting from 1
//! when the faults were set: `Trigger::Requests(vec![3, 4, 5])` hits the 3rd, 4th and 5th.
//! Several rules may fire on one request: delays add up, and the first other fault wins.
//! Injected faults count toward the rate-limit windows (the request reached the server).

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// What to do to a response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Fault {
    /// Answer this status (500, 502, 503, ...) with a small JSON body.
    #[serde(rename_all = "camelCase")]
    Status { status: u16 },
    /// Answer 429 with this `Retry-After` (real seconds; formatted like the rate limiter's).
    #[serde(rename_all = "camelCase")]
    TooManyRequests { retry_after_secs: f64 },
    /// Wait this long before answering normally.
    #[serde(rename_all = "camelCase")]
    Delay { millis: u64 },
    /// Send the headers and at most this many bytes of the body (never all of it), then close
    /// the connection.
    #[serde(rename_all = "camelCase")]
    DropMidBody { after_bytes: usize },
    /// Answer 200 with the body cut in half, so it is not valid JSON.
    MalformedJson,
}

/// When a rule fires.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Trigger {
    /// With this probability per request.
    Rate(f64),
    /// On these 1-based request numbers.
    Requests(Vec<u64>),
    /// On the next K requests.
    Next(u32),
}

/// One fault and when it applies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    pub fault: Fault,
    pub when: Trigger,
    /// Only requests to this endpoint (e.g. `sales-orders`); all endpoints when `None`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Only list requests (not by-id ones).
    #[serde(default)]
    pub lists_only: bool,
}

impl FaultRule {
    pub fn new(fault: Fault, when: Trigger) -> FaultRule {
        FaultRule { fault, when, endpoint: None, lists_only: false }
    }
    pub fn on_endpoint(mut self, endpoint: &str) -> FaultRule {
        self.endpoint = Some(endpoint.to_string());
        self
    }
    pub fn lists_only(mut self) -> FaultRule {
        self.lists_only = true;
        self
    }
}

/// The fault configuration: a list of rules, empty by default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Faults {
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

impl Faults {
    pub fn none() -> Faults {
        Faults::default()
    }
    pub fn rule(mut self, rule: FaultRule) -> Faults {
        self.rules.push(rule);
        self
    }
}

/// What to inject into one response.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Injection {
    pub delay: Duration,
    pub fault: Option<Fault>,
}

impl Injection {
    pub fn describe(&self) -> Option<String> {
        let f = self.fault.as_ref().map(|f| match f {
            Fault::Status { status } => format!("status {status}"),
            Fault::TooManyRequests { .. } => "429".to_string(),
            Fault::Delay { millis } => format!("delay {millis}ms"),
            Fault::DropMidBody { .. } => "drop".to_string(),
            Fault::MalformedJson => "malformed".to_string(),
        });
        match (self.delay.is_zero(), f) {
            (true, f) => f,
            (false, None) => Some(format!("delay {}ms", self.delay.as_millis())),
            (false, Some(f)) => Some(format!("delay {}ms, {f}", self.delay.as_millis())),
        }
    }
}

#[derive(Debug)]
pub(crate) struct FaultState {
    faults: Faults,
    seen: Vec<u64>,
    left: Vec<u32>,
    rng: ChaCha8Rng,
}

impl FaultState {
    pub fn new(faults: Faults, seed: u64) -> FaultState {
        let mut s = FaultState {
            faults: Faults::default(),
            seen: Vec::new(),
            left: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0xFA17_5EED),
        };
        s.set(faults);
        s
    }

    /// Replaces the rules and restarts their request numbering.
    pub fn set(&mut self, faults: Faults) {
        self.seen = vec![0; faults.rules.len()];
        self.left = faults
            .rules
            .iter()
            .map(|r| match r.when {
                Trigger::Next(k) => k,
                _ => 0,
            })
            .collect();
        self.faults = faults;
    }

    pub fn get(&self) -> Faults {
        self.faults.clone()
    }

    pub fn decide(&mut self, endpoint: &str, is_list: bool) -> Injection {
        let mut inj = Injection::default();
        for (i, rule) in self.faults.rules.iter().enumerate() {
            if rule.endpoint.as_deref().is_some_and(|e| e != endpoint) || (rule.lists_only && !is_list) {
                continue;
            }
            self.seen[i] += 1;
            let fire = match &rule.when {
                Trigger::Rate(p) if p.is_nan() => false,
                Trigger::Rate(p) => self.rng.random_bool(p.clamp(0.0, 1.0)),
                Trigger::Requests(ns) => ns.contains(&self.seen[i]),
                Trigger::Next(_) => {
                    let fire = self.left[i] > 0;
                    self.left[i] = self.left[i].saturating_sub(1);
                    fire
                }
            };
            if !fire {
                continue;
            }
            match &rule.fault {
                Fault::Delay { millis } => inj.delay += Duration::from_millis(*millis),
                other if inj.fault.is_none() => inj.fault = Some(other.clone()),
                _ => {}
            }
        }
        inj
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_and_next_k_rules() {
        let faults = Faults::none()
            .rule(FaultRule::new(Fault::Status { status: 503 }, Trigger::Requests(vec![2, 3])))
            .rule(FaultRule::new(Fault::MalformedJson, Trigger::Next(1)).lists_only());
        let mut s = FaultState::new(faults, 1);
        assert_eq!(s.decide("products", false).fault, None);
        assert_eq!(s.decide("products", false).fault, Some(Fault::Status { status: 503 }));
        // The list rule fires on its first list request, but the 503 rule came first.
        assert_eq!(s.decide("sales-orders", true).fault, Some(Fault::Status { status: 503 }));
        assert_eq!(s.decide("sales-orders", true).fault, None);
    }

    #[test]
    fn rates_are_seeded_and_roughly_right() {
        let faults = Faults::none().rule(FaultRule::new(Fault::Status { status: 500 }, Trigger::Rate(0.25)));
        let mut a = FaultState::new(faults.clone(), 9);
        let mut b = FaultState::new(faults, 9);
        let hits_a: Vec<bool> = (0..1000).map(|_| a.decide("x", true).fault.is_some()).collect();
        let hits_b: Vec<bool> = (0..1000).map(|_| b.decide("x", true).fault.is_some()).collect();
        assert_eq!(hits_a, hits_b);
        let n = hits_a.iter().filter(|h| **h).count();
        assert!((180..320).contains(&n), "{n} hits of 1000 at 25%");
        // Out-of-range probabilities are clamped instead of panicking.
        for p in [f64::NAN, -1.0, 2.0] {
            let mut s = FaultState::new(Faults::none().rule(FaultRule::new(Fault::MalformedJson, Trigger::Rate(p))), 1);
            assert_eq!(s.decide("x", true).fault.is_some(), p > 1.0);
        }
    }

    #[test]
    fn delays_add_up_with_another_fault() {
        let faults = Faults::none()
            .rule(FaultRule::new(Fault::Delay { millis: 5 }, Trigger::Next(1)))
            .rule(FaultRule::new(Fault::Delay { millis: 7 }, Trigger::Next(1)))
            .rule(FaultRule::new(Fault::DropMidBody { after_bytes: 10 }, Trigger::Next(1)));
        let mut s = FaultState::new(faults, 1);
        let inj = s.decide("x", true);
        assert_eq!(inj.delay, Duration::from_millis(12));
        assert_eq!(inj.fault, Some(Fault::DropMidBody { after_bytes: 10 }));
        assert_eq!(inj.describe().as_deref(), Some("delay 12ms, drop"));
    }
}
