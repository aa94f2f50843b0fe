//! Request accounting for `GET /_emulator/stats`.
//!
//! Tests and benchmarks assert on these numbers (how many 429s, how many
//! Retry-After violations, peak concurrency, upload volume), so every request
//! that reaches a Graph, token or upload path is counted exactly once;
//! requests inside a `$batch` are counted individually, like Graph throttles
//! them, and the outer `$batch` call is counted as kind `batch`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::throttle::Violation;

#[derive(Debug, Default, Clone, Serialize)]
pub struct Counters {
    pub requests: u64,
    pub by_method: BTreeMap<String, u64>,
    pub by_kind: BTreeMap<String, u64>,
    pub by_status: BTreeMap<String, u64>,
    pub throttled_429: u64,
    pub throttled_by_reason: BTreeMap<String, u64>,
    pub retry_after_violations: u64,
    pub retry_after_races: u64,
    pub max_concurrent: u32,
    pub upload_bytes: u64,
    pub faults_injected: BTreeMap<String, u64>,
    /// Meeting requests (and updates) Exchange would have sent: one per
    /// message, however many attendees it is addressed to.
    pub invitations_sent: u64,
    /// Meeting cancellations Exchange would have sent, one per message.
    pub cancellations_sent: u64,
    /// Wall-clock milliseconds (Unix epoch) of the first and last request
    /// counted: benchmarks divide the requests by this span to get the rate
    /// a client sustained.
    pub first_request_ms: Option<i64>,
    pub last_request_ms: Option<i64>,
}

impl Counters {
    fn add(&mut self, ev: &Event) {
        self.requests += 1;
        *self.by_method.entry(ev.method.clone()).or_default() += 1;
        *self.by_kind.entry(ev.kind.to_string()).or_default() += 1;
        *self.by_status.entry(ev.status_label()).or_default() += 1;
        if let Some(reason) = ev.throttled {
            self.throttled_429 += 1;
            *self.throttled_by_reason.entry(reason.to_string()).or_default() += 1;
        }
        if let Some(f) = &ev.fault {
            *self.faults_injected.entry(f.clone()).or_default() += 1;
        }
        self.upload_bytes += ev.upload_bytes;
        self.max_concurrent = self.max_concurrent.max(ev.concurrent);
        let now = chrono::Utc::now().timestamp_millis();
        self.first_request_ms.get_or_insert(now);
        self.last_request_ms = Some(now);
    }
}

/// One finished request.
#[derive(Debug, Clone, Default)]
pub struct Event {
    pub mailbox: Option<String>,
    pub method: String,
    pub kind: &'static str,
    /// HTTP status, or `None` when the connection was reset.
    pub status: Option<u16>,
    pub throttled: Option<&'static str>,
    pub fault: Option<String>,
    /// Body bytes admitted against the upload limit.
    pub upload_bytes: u64,
    /// In-flight requests for the mailbox when this one was admitted.
    pub concurrent: u32,
}

impl Event {
    fn status_label(&self) -> String {
        self.status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "reset".to_string())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ViolationRecord {
    pub mailbox: String,
    pub app: String,
    pub at: String,
    pub method: String,
    pub path: String,
    pub retry_after_secs: u64,
    pub retry_after_issued_at: String,
    pub issued_by_status: u16,
    pub issued_for: String,
    pub early_by_ms: u64,
    pub ms_since_issued: u64,
    pub within_grace: bool,
}

#[derive(Debug, Default)]
pub struct Stats {
    total: Counters,
    mailboxes: BTreeMap<String, Counters>,
    violations: Vec<ViolationRecord>,
    /// Peak number of Graph/upload requests in flight across the whole server.
    pub global_max_in_flight: u32,
}

/// Violations listed in full; beyond this only the counters grow, so a
/// misbehaving benchmark cannot exhaust memory.
const MAX_VIOLATION_RECORDS: usize = 10_000;

impl Stats {
    pub fn record(&mut self, ev: &Event) {
        self.total.add(ev);
        if let Some(m) = &ev.mailbox {
            self.mailboxes.entry(m.clone()).or_default().add(ev);
        }
    }

    /// Counts meeting messages a calendar request made Exchange send.
    pub fn record_notices(&mut self, mailbox: &str, invitations: u64, cancellations: u64) {
        for c in [&mut self.total, self.mailboxes.entry(mailbox.to_string()).or_default()] {
            c.invitations_sent += invitations;
            c.cancellations_sent += cancellations;
        }
    }

    pub fn record_violation(&mut self, mailbox: &str, app: &str, method: &str, path: &str, v: &Violation) {
        let bump = |c: &mut Counters| {
            if v.within_grace {
                c.retry_after_races += 1;
            } else {
                c.retry_after_violations += 1;
            }
        };
        bump(&mut self.total);
        bump(self.mailboxes.entry(mailbox.to_string()).or_default());
        if self.violations.len() < MAX_VIOLATION_RECORDS {
            self.violations.push(ViolationRecord {
                mailbox: mailbox.to_string(),
                app: app.to_string(),
                at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                method: method.to_string(),
                path: path.to_string(),
                retry_after_secs: v.retry_after_secs,
                retry_after_issued_at: v
                    .retry_after_issued_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                issued_by_status: v.issued_by_status,
                issued_for: v.issued_for.to_string(),
                early_by_ms: v.early_by.as_millis() as u64,
                ms_since_issued: v.since_issued.as_millis() as u64,
                within_grace: v.within_grace,
            });
        }
    }

    pub fn to_json(&self) -> Value {
        let mut total = serde_json::to_value(&self.total).unwrap_or(Value::Null);
        total["max_concurrent_global"] = json!(self.global_max_in_flight);
        json!({
            "total": total,
            "mailboxes": self.mailboxes,
            "violations": self.violations,
        })
    }
}
