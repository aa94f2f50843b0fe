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

use std::time::{Duration, SystemTime};

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

use super::config::GraphSettings;
use crate::pace::{Budget, NotBefore};
use crate::wait::{WaitOn, Waits};

/// Added to every Retry-After: the header has whole seconds and the server
/// may have rounded down, so waiting exactly that long could be early.
pub const RETRY_AFTER_MARGIN: Duration = Duration::from_millis(250);

pub struct MailboxLimits {
    /// No request to this mailbox before this moment (set by 429/503).
    pub gate: NotBefore,
    concurrency: Semaphore,
    requests: Budget,
    upload_bytes: Budget,
    /// Where waits are reported, and the mailbox's user as the run names
    /// it ([`MailboxLimits::reporting`]); `None`: not reported.
    report: Option<(Waits, String)>,
    /// Requests in flight for the whole app, every mailbox's limits
    /// sharing it (`max_concurrent_requests_per_app`); `None`: no such cap.
    app: Option<Arc<Semaphore>>,
}

/// One of Exchange's windows (`secs` long) on the clock the limits run on:
/// real time for Exchange Online, faster for an emulator that scales them.
fn window(secs: u64, time_scale: f64) -> Duration {
    Duration::from_secs_f64(secs as f64 * time_scale)
}

/// Held while a request is in flight.
pub struct Slot<'a> {
    _permit: SemaphorePermit<'a>,
    _app: Option<OwnedSemaphorePermit>,
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
            report: None,
            app: None,
        }
    }

    /// These limits also hold a slot of the app-wide concurrency cap for
    /// each request, shared with every other mailbox's limits.
    pub fn sharing_app_cap(mut self, app: Arc<Semaphore>) -> MailboxLimits {
        self.app = Some(app);
        self
    }

    /// These limits report their waits for `user` into `waits`: on the
    /// gate as `throttled`, on the budgets and the concurrency cap as
    /// `target_budget`.
    pub fn reporting(mut self, waits: Waits, user: &str) -> MailboxLimits {
        self.report = Some((waits, user.to_owned()));
        self
    }

    /// Awaits `fut`, reported as a wait on `on` (until `until`, if known).
    async fn waited<F: Future>(&self, on: WaitOn, until: Option<SystemTime>, fut: F) -> F::Output {
        match &self.report {
            Some((waits, user)) => waits.wait_until(user, on, until, fut).await,
            None => fut.await,
        }
    }

    /// Waits until the gate is open, reported as `throttled`.
    async fn through_gate(&self) {
        self.waited(WaitOn::Throttled, self.gate.opens_at(), self.gate.wait())
            .await;
    }

    /// Waits until a request carrying `body_bytes` may be sent: the gate is
    /// open, a concurrency slot is free, and both budgets allow it. The gate
    /// is checked again last, since a 429 may have arrived while waiting.
    pub async fn admit(&self, body_bytes: u64) -> Slot<'_> {
        self.through_gate().await;
        let permit = self
            .waited(WaitOn::TargetBudget, None, self.concurrency.acquire())
            .await
            .expect("the semaphore is never closed");
        // The app's slot after the mailbox's own, so a mailbox waiting for
        // its own never holds one other mailboxes could use.
        let app = match &self.app {
            Some(app) => Some(
                self.waited(WaitOn::TargetBudget, None, app.clone().acquire_owned())
                    .await
                    .expect("the semaphore is never closed"),
            ),
            None => None,
        };
        self.waited(WaitOn::TargetBudget, None, self.requests.take(1)).await;
        if body_bytes > 0 {
            self.waited(WaitOn::TargetBudget, None, self.upload_bytes.take(body_bytes))
                .await;
        }
        self.through_gate().await;
        Slot {
            _permit: permit,
            _app: app,
        }
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
            max_concurrent_requests_per_app: None,
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

    /// A wait at the gate is reported as the server's push-back, a wait on
    /// the request budget as the target's budget; neither when not waiting.
    #[tokio::test]
    async fn waits_at_the_gate_and_on_the_budgets_are_reported_for_the_mailbox() {
        let waits = Waits::default();
        let mut tight = settings(4);
        tight.requests_per_10_minutes = 100;
        tight.limits_time_scale = 0.002; // 100 requests per 1.2 s
        let limits = Arc::new(MailboxLimits::new(&tight).reporting(waits.clone(), "a@x.test"));
        drop(limits.admit(0).await);
        assert_eq!(waits.of("a@x.test"), None, "an admitted request never waited");
        async fn seen(waits: &Waits, on: WaitOn) {
            tokio::time::timeout(Duration::from_secs(5), async {
                while waits.of("a@x.test").map(|w| w.on) != Some(on) {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("{on:?} was never reported"));
        }
        // The burst is 2 (a fiftieth of 100): the next requests wait.
        let busy = {
            let limits = limits.clone();
            tokio::spawn(async move {
                for _ in 0..6 {
                    drop(limits.admit(0).await);
                }
            })
        };
        seen(&waits, WaitOn::TargetBudget).await;
        busy.await.unwrap();
        limits.hold_off(Duration::from_millis(300));
        let held = {
            let limits = limits.clone();
            tokio::spawn(async move { drop(limits.admit(0).await) })
        };
        seen(&waits, WaitOn::Throttled).await;
        assert!(
            waits.of("a@x.test").unwrap().until.is_some(),
            "a Retry-After has an end"
        );
        held.await.unwrap();
        assert_eq!(waits.of("a@x.test"), None);
    }

    #[tokio::test]
    async fn a_hold_off_delays_every_later_request_by_at_least_the_delay() {
        let limits = MailboxLimits::new(&settings(4));
        let start = tokio::time::Instant::now();
        limits.hold_off(Duration::from_millis(200));
        let _slot = limits.admit(0).await;
        assert!(start.elapsed() >= Duration::from_millis(200) + RETRY_AFTER_MARGIN);
    }

    #[tokio::test]
    async fn an_app_wide_cap_holds_the_requests_of_all_mailboxes_together() {
        let app = Arc::new(Semaphore::new(3));
        let mailboxes: Vec<Arc<MailboxLimits>> = (0..4)
            .map(|_| Arc::new(MailboxLimits::new(&settings(4)).sharing_app_cap(app.clone())))
            .collect();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for limits in &mailboxes {
            for _ in 0..4 {
                let (limits, in_flight, peak) = (limits.clone(), in_flight.clone(), peak.clone());
                tasks.push(tokio::spawn(async move {
                    let _slot = limits.admit(10).await;
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                }));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        // 4 mailboxes may have 16 in flight; the app only 3.
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }
}
