//! When to try again, and how fast to go. Knows limits and timing, not
//! protocols: each protocol module classifies its own errors (retry,
//! throttled with a delay, item failed, fatal) and this module decides when
//! the next attempt may start.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::error::{Error, ErrorKind};

/// Retry timing for transient errors and server push-back.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    pub fn new(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }

    /// How long to wait before attempt number `attempt` (1-based count of
    /// failures so far), or `None` when the error is not worth retrying or
    /// the attempts are used up. A throttling delay from the server is
    /// honoured in full, never shortened.
    pub fn delay(&self, attempt: u32, error: &Error) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        match error.kind {
            ErrorKind::Throttled(d) => Some(d.max(self.base_delay)),
            ErrorKind::Transient => {
                let exp = self.base_delay.saturating_mul(1u32 << attempt.min(16));
                let capped = exp.min(self.max_delay);
                // Full jitter in the upper half, so parallel connections that
                // failed together do not come back together.
                let jitter = fastrand::f64() * 0.5 + 0.5;
                Some(capped.mul_f64(jitter))
            }
            ErrorKind::Item | ErrorKind::Refused | ErrorKind::Fatal => None,
        }
    }
}

/// Limits shared by every mailbox of a run.
#[derive(Clone)]
pub struct Limits {
    /// Logins per second towards the source, so a run over thousands of
    /// users does not look like a password-guessing attack.
    logins: Arc<DefaultDirectRateLimiter>,
}

impl Limits {
    pub fn new(logins_per_second: u32) -> Limits {
        let rate = NonZeroU32::new(logins_per_second.max(1)).expect("at least one");
        Limits {
            logins: Arc::new(RateLimiter::direct(Quota::per_second(rate))),
        }
    }

    pub async fn before_login(&self) {
        self.logins.until_ready().await;
    }
}

// ---------------------------------------------------------------------------
// Shared gates and budgets: timing primitives several connections to the
// same server-side resource (one target mailbox, say) share, so that what
// one connection learns (the server said "wait 30 s") holds for all of them.
// ---------------------------------------------------------------------------

/// A moment before which nothing may start. Anyone may push it later (a
/// server asked to wait); it never moves earlier, so the longest wait asked
/// for always wins.
#[derive(Debug, Default)]
pub struct NotBefore {
    until: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl NotBefore {
    pub fn new() -> NotBefore {
        NotBefore::default()
    }

    /// Nothing may start before `until` (unless it is already later).
    pub fn push(&self, until: tokio::time::Instant) {
        let mut guard = self.until.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none_or(|current| current < until) {
            *guard = Some(until);
        }
    }

    /// Nothing may start within `delay` from now.
    pub fn push_delay(&self, delay: Duration) {
        self.push(tokio::time::Instant::now() + delay);
    }

    /// How long is left before the gate opens, if it is closed.
    pub fn remaining(&self) -> Option<Duration> {
        let until = (*self.until.lock().unwrap_or_else(|p| p.into_inner()))?;
        let now = tokio::time::Instant::now();
        (until > now).then(|| until - now)
    }

    /// Waits until the gate is open. Re-checks after each sleep, because
    /// someone may have pushed the gate further meanwhile.
    pub async fn wait(&self) {
        while let Some(left) = self.remaining() {
            tokio::time::sleep(left).await;
        }
    }
}

/// A budget of units (requests, bytes) over a sliding window: at most
/// `amount` units in any window of length `per`. A tenth of the amount may
/// go at once, the rest is replenished evenly, so even a burst at the start
/// of a window cannot exceed the amount.
pub struct Budget {
    limiter: DefaultDirectRateLimiter,
    burst: u32,
}

impl Budget {
    pub fn new(amount: u32, per: Duration) -> Budget {
        let amount = amount.max(1);
        let burst = (amount / 10).max(1);
        let replenished = (amount - burst).max(1);
        let interval = (per / replenished).max(Duration::from_nanos(1));
        let quota = Quota::with_period(interval)
            .expect("interval is not zero")
            .allow_burst(NonZeroU32::new(burst).expect("at least one"));
        Budget {
            limiter: RateLimiter::direct(quota),
            burst,
        }
    }

    /// Waits until `units` may be spent, then spends them. Amounts larger
    /// than one burst are spent burst by burst, so any amount is allowed
    /// and simply takes as long as the budget dictates.
    pub async fn take(&self, units: u64) {
        let mut left = units;
        while left > 0 {
            let now = u32::try_from(left).unwrap_or(u32::MAX).min(self.burst);
            let n = NonZeroU32::new(now).expect("left > 0");
            // Cannot fail: `now` never exceeds the burst capacity.
            let _ = self.limiter.until_n_ready(n).await;
            left -= u64::from(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_delays_are_honoured_exactly_or_more() {
        let p = RetryPolicy::new(5);
        let e = Error::throttled(Duration::from_millis(299_961), "slow down");
        assert_eq!(p.delay(1, &e), Some(Duration::from_millis(299_961)));
    }

    #[test]
    fn transient_delays_grow_and_are_capped() {
        let p = RetryPolicy::new(20);
        let e = Error::transient("reset");
        let d1 = p.delay(1, &e).unwrap();
        let d10 = p.delay(10, &e).unwrap();
        assert!(d1 <= Duration::from_secs(1));
        assert!(d10 >= Duration::from_secs(30) && d10 <= Duration::from_secs(60));
    }

    #[test]
    fn permanent_errors_and_exhausted_attempts_are_not_retried() {
        let p = RetryPolicy::new(3);
        assert_eq!(p.delay(1, &Error::fatal("bad password")), None);
        assert_eq!(p.delay(1, &Error::item("bad message")), None);
        assert_eq!(p.delay(3, &Error::transient("reset")), None);
    }

    #[tokio::test]
    async fn not_before_never_opens_early_and_never_moves_earlier() {
        let gate = NotBefore::new();
        let start = tokio::time::Instant::now();
        gate.wait().await;
        assert!(start.elapsed() < Duration::from_millis(50), "an untouched gate is open");
        gate.push_delay(Duration::from_millis(300));
        gate.push_delay(Duration::from_millis(5));
        assert!(
            gate.remaining().is_some_and(|d| d > Duration::from_millis(200)),
            "the later push wins"
        );
        gate.wait().await;
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert_eq!(gate.remaining(), None);
    }

    #[tokio::test]
    async fn not_before_honours_a_push_made_while_waiting() {
        let gate = Arc::new(NotBefore::new());
        let start = tokio::time::Instant::now();
        gate.push_delay(Duration::from_millis(100));
        let g = gate.clone();
        let pusher = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            g.push_delay(Duration::from_millis(250));
        });
        gate.wait().await;
        pusher.await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(300), "{:?}", start.elapsed());
    }

    #[tokio::test]
    async fn budget_spreads_a_window_and_allows_amounts_above_a_burst() {
        // 100 units per 200 ms: 10 at once, the other 90 over 200 ms.
        let budget = Budget::new(100, Duration::from_millis(200));
        let start = std::time::Instant::now();
        budget.take(10).await;
        assert!(
            start.elapsed() < Duration::from_millis(50),
            "the first burst is immediate"
        );
        budget.take(90).await;
        let spent = start.elapsed();
        assert!(spent >= Duration::from_millis(170), "{spent:?}");
        assert!(spent < Duration::from_secs(2), "{spent:?}");
        // Far more than one burst in one call is fine; it just waits.
        let start = std::time::Instant::now();
        Budget::new(1000, Duration::from_millis(100)).take(550).await;
        assert!(start.elapsed() >= Duration::from_millis(40), "{:?}", start.elapsed());
    }
}
