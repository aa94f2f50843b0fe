//! Exchange Online's limits per app and target mailbox, kept on our side so
//! that we are throttled as little as possible and, when we are, honour the
//! server's Retry-After exactly: 4 concurrent requests, 10,000 requests per
//! 10 minutes, 150 MB uploaded per 5 minutes (all configurable, and the
//! windows scalable with `limits_time_scale` to match an emulator that runs
//! Exchange's limits on a faster clock).
//!
//! Every session writing into the same mailbox shares one [`MailboxLimits`],
//! so a 429 seen by one session closes the gate for all of them. The timing
//! primitives themselves are protocol-free and live in [`crate::pace`].

use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::config::GraphSettings;
use crate::pace::{Budget, NotBefore};

/// Added to every Retry-After: the header has whole seconds and the server
/// may have rounded down, so waiting exactly that long could be early.
pub const RETRY_AFTER_MARGIN: Duration = Duration::from_millis(250);

pub struct MailboxLimits {
    /// No request to this mailbox before this moment (set by 429/503).
    pub gate: NotBefore,
    concurrency: Semaphore,
    requests: Budget,
    upload_bytes: Budget,
}

/// One of Exchange's windows (`secs` long) on the clock the limits run on:
/// real time for Exchange Online, faster for an emulator that scales them.
fn window(secs: u64, time_scale: f64) -> Duration {
    Duration::from_secs_f64(secs as f64 * time_scale)
}

/// Held while a request is in flight.
pub struct Slot<'a> {
    _permit: SemaphorePermit<'a>,
}

impl MailboxLimits {
    pub fn new(settings: &GraphSettings) -> MailboxLimits {
        MailboxLimits {
            gate: NotBefore::new(),
            concurrency: Semaphore::new(settings.max_concurrent_requests),
            requests: Budget::new(
                settings.requests_per_10_minutes,
                window(600, settings.limits_time_scale),
            ),
            upload_bytes: Budget::new(
                settings.upload_bytes_per_5_minutes,
                window(300, settings.limits_time_scale),
            ),
        }
    }

    /// Waits until a request carrying `body_bytes` may be sent: the gate is
    /// open, a concurrency slot is free, and both budgets allow it. The gate
    /// is checked again last, since a 429 may have arrived while waiting.
    pub async fn admit(&self, body_bytes: u64) -> Slot<'_> {
        self.gate.wait().await;
        let permit = self.concurrency.acquire().await.expect("the semaphore is never closed");
        self.requests.take(1).await;
        if body_bytes > 0 {
            self.upload_bytes.take(body_bytes).await;
        }
        self.gate.wait().await;
        Slot { _permit: permit }
    }

    /// The server asked everyone to wait `delay` (Retry-After).
    pub fn hold_off(&self, delay: Duration) {
        self.gate.push_delay(delay + RETRY_AFTER_MARGIN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::target::graph::config::{GraphCredential, GraphWriteMode};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn settings(concurrency: usize) -> GraphSettings {
        GraphSettings {
            tenant_id: "t".into(),
            client_id: "c".into(),
            credential: GraphCredential::ClientSecret(Secret::new("s")),
            endpoint: "https://graph.microsoft.com".into(),
            authority: "https://login.microsoftonline.com".into(),
            write_mode: GraphWriteMode::Auto,
            max_concurrent_requests: concurrency,
            requests_per_10_minutes: 10_000,
            upload_bytes_per_5_minutes: 157_286_400,
            limits_time_scale: 1.0,
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn at_most_the_configured_requests_are_in_flight() {
        let limits = Arc::new(MailboxLimits::new(&settings(2)));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (limits, in_flight, peak) = (limits.clone(), in_flight.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = limits.admit(10).await;
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_hold_off_delays_every_later_request_by_at_least_the_delay() {
        let limits = MailboxLimits::new(&settings(4));
        let start = tokio::time::Instant::now();
        limits.hold_off(Duration::from_millis(200));
        let _slot = limits.admit(0).await;
        assert!(start.elapsed() >= Duration::from_millis(200) + RETRY_AFTER_MARGIN);
    }
}
