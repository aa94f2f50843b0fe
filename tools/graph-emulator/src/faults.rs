//! Fault injection, configured through `POST /_emulator/faults`.
//!
//! Real Graph fails transiently (500/503/504, dropped connections, slow
//! answers); the product's retry logic is only tested if the emulator does
//! too. Faults apply to `/v1.0` and `/beta` requests only: the token
//! endpoint, upload URLs and the admin API are never faulted.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Deterministic "fail the next N requests with STATUS".
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailNext {
    pub status: u16,
    pub count: u32,
}

/// The fault configuration; a POST replaces it whole.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// Probability per request of answering with the given status ("503": 0.05).
    #[serde(default)]
    pub status_rate: BTreeMap<String, f64>,
    /// Probability per request of dropping the connection without a response.
    #[serde(default)]
    pub reset_rate: f64,
    /// Probability per request of processing it fully and then dropping the
    /// connection before the answer: the client cannot know whether it
    /// was applied (the case exactly-once handling exists for).
    #[serde(default)]
    pub reset_after_rate: f64,
    /// Extra latency drawn uniformly from [min, max] milliseconds (real time).
    #[serde(default)]
    pub latency_ms: Option<[u64; 2]>,
    /// Queue of deterministic failures, consumed in order.
    #[serde(default)]
    pub fail_next: Vec<FailNext>,
    /// Retry-After (emulated seconds, scaled like every duration) on injected 503s and 429s.
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    /// One-shot action: expire every issued token now. Not kept in the configuration.
    #[serde(default, skip_serializing)]
    pub expire_tokens_now: bool,
}

/// What to do to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    Reset,
    /// Process the request, then drop the connection.
    ResetAfter,
    Status(u16),
}

impl FaultConfig {
    /// Checks ranges; returns a message for the admin caller.
    pub fn validate(&self) -> Result<(), String> {
        for (k, v) in &self.status_rate {
            let code: u16 = k
                .parse()
                .map_err(|_| format!("status_rate key {k:?} is not a status code"))?;
            if !(400..=599).contains(&code) {
                return Err(format!("status_rate key {code} is not an error status"));
            }
            if !(0.0..=1.0).contains(v) {
                return Err(format!("status_rate[{k}] must be between 0 and 1"));
            }
        }
        let total: f64 = self.status_rate.values().sum::<f64>() + self.reset_rate + self.reset_after_rate;
        if !(0.0..=1.0).contains(&self.reset_rate) || !(0.0..=1.0).contains(&self.reset_after_rate) || total > 1.0 {
            return Err("reset_rate, reset_after_rate and status_rate must add up to at most 1".into());
        }
        if let Some([lo, hi]) = self.latency_ms
            && lo > hi
        {
            return Err("latency_ms must be [min, max] with min <= max".into());
        }
        for f in &self.fail_next {
            if !(400..=599).contains(&f.status) {
                return Err(format!("fail_next status {} is not an error status", f.status));
            }
        }
        Ok(())
    }

    /// Draws the latency for one request.
    pub fn latency(&self, rng: &mut fastrand::Rng) -> Option<Duration> {
        self.latency_ms
            .map(|[lo, hi]| Duration::from_millis(rng.u64(lo..=hi)))
            .filter(|d| !d.is_zero())
    }

    /// Decides the fault for one request; consumes `fail_next` first.
    /// `allow_reset` is false inside `$batch`, where no connection can be dropped.
    pub fn decide(&mut self, rng: &mut fastrand::Rng, allow_reset: bool) -> Fault {
        if let Some(first) = self.fail_next.first_mut() {
            let status = first.status;
            first.count = first.count.saturating_sub(1);
            if first.count == 0 {
                self.fail_next.remove(0);
            }
            return Fault::Status(status);
        }
        let draw = rng.f64();
        let mut acc = 0.0;
        if allow_reset {
            acc += self.reset_rate;
            if draw < acc {
                return Fault::Reset;
            }
            acc += self.reset_after_rate;
            if draw < acc {
                return Fault::ResetAfter;
            }
        }
        for (k, p) in &self.status_rate {
            acc += p;
            if draw < acc {
                return Fault::Status(k.parse().unwrap_or(503));
            }
        }
        Fault::None
    }
}
