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
}
