//! Fault injection, configured through `POST /_emulator/faults`.
//!
//! Real Graph fails transiently (500/503/504, dropped connections, slow
//! answers); the product's retry logic is only tested if the emulator does
//! too. Faults apply to `/v1.0` and `/beta` requests and to `PUT`s on
//! upload URLs (`PUT /_upload/{token}` for `on`): the token endpoint, an
//! upload URL's `DELETE` and the admin API are never faulted.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Deterministic "fail the next N requests with STATUS" (or drop their
/// connection), optionally only requests whose `METHOD /path` contains
/// `on` (`"importMime"`, `"PATCH "`): a test can then fail exactly the step
/// it is about, such as an import whose answer is lost.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailNext {
    /// The error status to answer with; or, without it, `drop`.
    #[serde(default)]
    pub status: Option<u16>,
    /// Drop the connection instead of answering: `"reset"` before the
    /// request is processed, `"reset_after"` once it has been.
    #[serde(default)]
    pub drop: Option<DropKind>,
    /// Or: hold the request this many milliseconds (real time), then
    /// process and answer it. With a client timeout shorter than that, a
    /// create commits after the client gave up on it ("slow success"). An
    /// upload range is taken at once and only its answer is held.
    #[serde(default)]
    pub slow_ms: Option<u64>,
    pub count: u32,
    /// Only requests whose `METHOD /path` contains this text.
    #[serde(default)]
    pub on: Option<String>,
}

/// How a `fail_next` entry drops a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropKind {
    Reset,
    ResetAfter,
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
    /// Process the request after this long (an upload range: answer it
    /// after this long), whether or not the client still waits.
    Slow(Duration),
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
            match (f.status, f.drop, f.slow_ms) {
                (Some(status), None, None) if !(400..=599).contains(&status) => {
                    return Err(format!("fail_next status {status} is not an error status"));
                }
                (Some(_), None, None) | (None, Some(_), None) | (None, None, Some(_)) => {}
                _ => return Err("each fail_next entry needs exactly one of status, drop and slow_ms".into()),
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

    /// Decides the fault for one request (`request` makes its
    /// `METHOD /path`, only while something is queued); the first matching
    /// `fail_next` entry goes first. `allow_reset` is false inside
    /// `$batch`, where no connection can be dropped.
    pub fn decide(&mut self, rng: &mut fastrand::Rng, allow_reset: bool, request: impl FnOnce() -> String) -> Fault {
        let queued = if self.fail_next.is_empty() {
            None
        } else {
            let request = request();
            self.fail_next.iter().position(|f| {
                (allow_reset || f.drop.is_none()) && f.on.as_deref().is_none_or(|on| request.contains(on))
            })
        };
        if let Some(i) = queued {
            let entry = &mut self.fail_next[i];
            let fault = match (entry.status, entry.drop, entry.slow_ms) {
                (Some(status), _, _) => Fault::Status(status),
                (None, _, Some(ms)) => Fault::Slow(Duration::from_millis(ms)),
                (None, Some(DropKind::ResetAfter), None) => Fault::ResetAfter,
                (None, _, None) => Fault::Reset,
            };
            entry.count = entry.count.saturating_sub(1);
            if entry.count == 0 {
                self.fail_next.remove(i);
            }
            return fault;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(entries: serde_json::Value) -> FaultConfig {
        let config: FaultConfig = serde_json::from_value(serde_json::json!({ "fail_next": entries })).unwrap();
        config.validate().unwrap();
        config
    }

    #[test]
    fn queued_faults_hit_only_the_requests_they_name() {
        let mut config = queue(serde_json::json!([
            {"drop": "reset_after", "on": "importMime", "count": 1},
            {"status": 400, "on": "PATCH ", "count": 2},
        ]));
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(
            config.decide(&mut rng, true, || "GET /v1.0/users/a/messages".to_owned()),
            Fault::None
        );
        assert_eq!(
            config.decide(&mut rng, true, || "PATCH /v1.0/users/a/messages/1".to_owned()),
            Fault::Status(400)
        );
        // Inside $batch no connection is dropped: the entry waits.
        assert_eq!(
            config.decide(&mut rng, false, || "POST /beta/users/a/mailFolders/x/importMime"
                .to_owned()),
            Fault::None
        );
        assert_eq!(
            config.decide(&mut rng, true, || "POST /beta/users/a/mailFolders/x/importMime"
                .to_owned()),
            Fault::ResetAfter
        );
        assert_eq!(
            config.decide(&mut rng, true, || "POST /beta/users/a/mailFolders/x/importMime"
                .to_owned()),
            Fault::None
        );
        assert_eq!(
            config.decide(&mut rng, true, || "PATCH /v1.0/users/a/messages/1".to_owned()),
            Fault::Status(400)
        );
        assert_eq!(
            config.decide(&mut rng, true, || "PATCH /v1.0/users/a/messages/1".to_owned()),
            Fault::None
        );
    }

    #[test]
    fn upload_ranges_are_matched_by_their_upload_path() {
        let mut config = queue(serde_json::json!([
            {"slow_ms": 50, "on": "PUT /_upload", "count": 1},
        ]));
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(
            config.decide(&mut rng, true, || "PUT /v1.0/users/a/messages/1".to_owned()),
            Fault::None
        );
        assert_eq!(
            config.decide(&mut rng, true, || "PUT /_upload/tok3n".to_owned()),
            Fault::Slow(Duration::from_millis(50))
        );
        assert!(config.fail_next.is_empty());
    }

    #[test]
    fn a_queued_fault_needs_a_status_or_a_drop() {
        for bad in [
            serde_json::json!([{"count": 1}]),
            serde_json::json!([{"status": 503, "drop": "reset", "count": 1}]),
            serde_json::json!([{"status": 200, "count": 1}]),
            serde_json::json!([{"slow_ms": 100, "drop": "reset", "count": 1}]),
        ] {
            let config: FaultConfig = serde_json::from_value(serde_json::json!({ "fail_next": bad })).unwrap();
            assert!(config.validate().is_err(), "{bad}");
        }
    }
}
