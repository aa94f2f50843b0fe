//! Outlook's per-(app, mailbox) throttling and the Retry-After violation recorder.
//!
//! Limits (learn.microsoft.com/graph/throttling-limits, Outlook service):
//! 4 concurrent requests, 10,000 requests per 10 minutes, 150 MB of upload
//! bytes (POST/PATCH/PUT bodies) per 5 minutes. Every request counts against
//! the rate, throttled ones included ("every retry counts against usage").
//!
//! After any response carrying `Retry-After` for a mailbox, the mailbox is in
//! a penalty until that many seconds have passed. A request for it during the
//! penalty is not processed: it gets a new 429 with the remaining time (the
//! documented behaviour) and is recorded as a violation, because a correct
//! client never sends it.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::config::wire_secs;

/// Which Outlook limit a 429 reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Concurrency,
    RequestRate,
    IncomingBytes,
    /// A Retry-After set by an injected fault (503 or 429).
    Fault(u16),
}

impl Reason {
    pub fn message(self) -> &'static str {
        match self {
            Reason::Concurrency => "Application is over its MailboxConcurrency limit.",
            Reason::RequestRate => "Application is over its RequestRate limit.",
            Reason::IncomingBytes => "Application is over its IncomingBytes limit.",
            Reason::Fault(_) => "Application is over its RequestRate limit.",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Concurrency => "MailboxConcurrency",
            Reason::RequestRate => "RequestRate",
            Reason::IncomingBytes => "IncomingBytes",
            Reason::Fault(_) => "InjectedFault",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Penalty {
    until: Instant,
    issued: Instant,
    issued_wall: chrono::DateTime<chrono::Utc>,
    secs: u64,
    status: u16,
    reason: Reason,
}

#[derive(Debug, Default)]
struct Bucket {
    in_flight: u32,
    max_in_flight: u32,
    requests: VecDeque<Instant>,
    uploads: VecDeque<(Instant, u64)>,
    upload_sum: u64,
    penalty: Option<Penalty>,
}

/// A request sent while its mailbox was in a Retry-After penalty.
#[derive(Debug, Clone)]
pub struct Violation {
    pub retry_after_secs: u64,
    pub retry_after_issued_at: chrono::DateTime<chrono::Utc>,
    pub issued_by_status: u16,
    pub issued_for: &'static str,
    pub early_by: Duration,
    pub since_issued: Duration,
    /// Arrived so soon after the Retry-After was issued that it was already on
    /// the wire (see `--violation-grace-ms`).
    pub within_grace: bool,
}

/// Outcome of a refused admission.
#[derive(Debug, Clone)]
pub struct Throttled {
    pub reason: Reason,
    pub retry_after_secs: u64,
    pub violation: Option<Violation>,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_concurrency: u32,
    pub rate_limit: u64,
    pub rate_window: Duration,
    pub upload_limit: u64,
    pub upload_window: Duration,
    pub grace: Duration,
    /// Real duration of one emulated second (the concurrency Retry-After is 1 s).
    pub one_second: Duration,
}

pub type Key = (String, String);

#[derive(Debug)]
pub struct Throttle {
    limits: Limits,
    buckets: HashMap<Key, Bucket>,
}

impl Throttle {
    pub fn new(limits: Limits) -> Throttle {
        Throttle {
            limits,
            buckets: HashMap::new(),
        }
    }

    pub fn reset(&mut self) {
        self.buckets.clear();
    }

    /// Admits a request or says why not. `upload_bytes` is the body size of a
    /// POST/PATCH/PUT (0 otherwise). On success the caller holds a concurrency
    /// slot until it calls [`Throttle::release`].
    /// `arrived` is when the request started to arrive: one that was already
    /// on its way when a Retry-After was issued (a `$batch` item, a long
    /// upload) is throttled but not counted as a violation.
    pub fn admit(&mut self, key: &Key, upload_bytes: u64, arrived: Instant) -> Result<u32, Throttled> {
        let now = Instant::now();
        let limits = self.limits.clone();
        let b = self.buckets.entry(key.clone()).or_default();
        while b
            .requests
            .front()
            .is_some_and(|t| now.duration_since(*t) >= limits.rate_window)
        {
            b.requests.pop_front();
        }
        while let Some(&(t, n)) = b.uploads.front() {
            if now.duration_since(t) < limits.upload_window {
                break;
            }
            b.upload_sum -= n;
            b.uploads.pop_front();
        }
        // Every request counts against the request rate, admitted or not.
        b.requests.push_back(now);

        if let Some(p) = b.penalty {
            if now < p.until {
                let violation = (arrived >= p.issued).then(|| {
                    let since = arrived.duration_since(p.issued);
                    Violation {
                        retry_after_secs: p.secs,
                        retry_after_issued_at: p.issued_wall,
                        issued_by_status: p.status,
                        issued_for: p.reason.as_str(),
                        early_by: p.until.saturating_duration_since(arrived),
                        since_issued: since,
                        within_grace: since <= limits.grace,
                    }
                });
                let secs = wire_secs(p.until.duration_since(now));
                b.penalty = Some(Penalty {
                    until: now + Duration::from_secs(secs),
                    issued: now,
                    issued_wall: chrono::Utc::now(),
                    secs,
                    status: 429,
                    reason: p.reason,
                });
                return Err(Throttled {
                    reason: p.reason,
                    retry_after_secs: secs,
                    violation,
                });
            }
            b.penalty = None;
        }

        let refuse = |b: &mut Bucket, reason: Reason, wait: Duration| {
            let secs = wire_secs(wait);
            b.penalty = Some(Penalty {
                until: now + Duration::from_secs(secs),
                issued: now,
                issued_wall: chrono::Utc::now(),
                secs,
                status: 429,
                reason,
            });
            Err(Throttled {
                reason,
                retry_after_secs: secs,
                violation: None,
            })
        };

        if b.in_flight >= limits.max_concurrency {
            // Concurrency is not time based; Outlook answers Retry-After: 1.
            return refuse(b, Reason::Concurrency, limits.one_second);
        }
        // The request just pushed is included: the (limit+1)-th request is refused.
        if b.requests.len() as u64 > limits.rate_limit {
            let idx = b.requests.len() - limits.rate_limit as usize - 1;
            let frees_at = b.requests[idx] + limits.rate_window;
            return refuse(b, Reason::RequestRate, frees_at.saturating_duration_since(now));
        }
        if upload_bytes > 0 && b.upload_sum + upload_bytes > limits.upload_limit {
            // Wait until enough earlier uploads leave the window for this one to fit.
            let mut freed = 0u64;
            let mut wait = limits.upload_window;
            for &(t, n) in &b.uploads {
                freed += n;
                if b.upload_sum - freed + upload_bytes <= limits.upload_limit {
                    wait = (t + limits.upload_window).saturating_duration_since(now);
                    break;
                }
            }
            return refuse(b, Reason::IncomingBytes, wait);
        }
        if upload_bytes > 0 {
            b.uploads.push_back((now, upload_bytes));
            b.upload_sum += upload_bytes;
        }
        b.in_flight += 1;
        b.max_in_flight = b.max_in_flight.max(b.in_flight);
        Ok(b.in_flight)
    }

    pub fn release(&mut self, key: &Key) {
        if let Some(b) = self.buckets.get_mut(key) {
            b.in_flight = b.in_flight.saturating_sub(1);
        }
    }

    /// Starts a Retry-After penalty for a response that was not a throttle
    /// decision (an injected 503 or 429).
    pub fn set_penalty(&mut self, key: &Key, secs: u64, status: u16) {
        let now = Instant::now();
        let b = self.buckets.entry(key.clone()).or_default();
        b.penalty = Some(Penalty {
            until: now + Duration::from_secs(secs),
            issued: now,
            issued_wall: chrono::Utc::now(),
            secs,
            status,
            reason: Reason::Fault(status),
        });
    }

    /// Highest concurrency seen for a key.
    pub fn max_in_flight(&self, key: &Key) -> u32 {
        self.buckets.get(key).map(|b| b.max_in_flight).unwrap_or(0)
    }
}
