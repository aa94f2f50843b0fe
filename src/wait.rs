//! What each mailbox is waiting on, right now. With a hundred mailboxes
//! running at once the admin needs to see which limit binds each of them
//! (a source connection slot, the memory budget, the target's pacing, a
//! server's push-back...) to know which knob to turn. The places that wait
//! say so here ([`Waits::wait`], [`Waits::begin`]); the run samples the
//! registry every second ([`Waits::snapshot`]) and reports each mailbox's
//! changes as events and in the state DB.
//!
//! Protocol-free and cheap: one mutex'd map of counters, touched only when
//! a wait really has to wait (a future that is ready at once costs nothing).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// What a mailbox waits on. Declared from the lowest priority to the
/// highest: when a mailbox waits on several things at once, the highest
/// one is what it is said to wait on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitOn {
    /// The source's login rate (`logins_per_second`).
    LoginRate,
    /// The run's source read caps (source messages or bytes per second).
    SourceRate,
    /// A source connection slot: the per-host or per-user connection cap.
    SourceSlot,
    /// The run-wide budget of message bytes in memory (`max_in_flight_bytes`).
    InFlightBytes,
    /// The target's own pacing: Graph's per-mailbox request, upload and
    /// concurrency budgets, or the run's target write caps.
    TargetBudget,
    /// A server said to wait (a throttling answer, a 429 with Retry-After).
    Throttled,
}

impl WaitOn {
    /// Every reason, from the highest priority to the lowest.
    pub const BY_PRIORITY: [WaitOn; 6] = [
        WaitOn::Throttled,
        WaitOn::TargetBudget,
        WaitOn::InFlightBytes,
        WaitOn::SourceSlot,
        WaitOn::SourceRate,
        WaitOn::LoginRate,
    ];

    /// The name in events and the state DB (`target_budget`).
    pub fn as_str(self) -> &'static str {
        match self {
            WaitOn::LoginRate => "login_rate",
            WaitOn::SourceRate => "source_rate",
            WaitOn::SourceSlot => "source_slot",
            WaitOn::InFlightBytes => "in_flight_bytes",
            WaitOn::TargetBudget => "target_budget",
            WaitOn::Throttled => "throttled",
        }
    }

    /// The reason a name stands for.
    pub fn parse(name: &str) -> Option<WaitOn> {
        WaitOn::BY_PRIORITY.into_iter().find(|w| w.as_str() == name)
    }

    /// In words for people ("target budget").
    pub fn words(self) -> &'static str {
        match self {
            WaitOn::LoginRate => "login rate",
            WaitOn::SourceRate => "source rate",
            WaitOn::SourceSlot => "source slot",
            WaitOn::InFlightBytes => "in-flight bytes",
            WaitOn::TargetBudget => "target budget",
            WaitOn::Throttled => "server push-back",
        }
    }

    /// A name's words, the name itself when it is not known.
    pub fn words_of(name: &str) -> String {
        WaitOn::parse(name).map_or_else(|| name.replace('_', " "), |w| w.words().to_owned())
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What one mailbox waits on at a moment: the highest-priority reason with
/// a wait under way, since when (Unix seconds) and, when known, until when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub on: WaitOn,
    pub since: i64,
    pub until: Option<i64>,
}

/// The waits under way of one mailbox, per reason.
#[derive(Default)]
struct Pending {
    count: [u32; 6],
    since: [i64; 6],
    until: [Option<i64>; 6],
}

impl Pending {
    fn top(&self) -> Option<Waiting> {
        WaitOn::BY_PRIORITY
            .into_iter()
            .find(|w| self.count[w.index()] > 0)
            .map(|on| Waiting {
                on,
                since: self.since[on.index()],
                until: self.until[on.index()],
            })
    }

    fn idle(&self) -> bool {
        self.count.iter().all(|&n| n == 0)
    }
}

/// The registry of waits under way, keyed by mailbox. Cheap to clone (the
/// clones share it).
#[derive(Clone, Default)]
pub struct Waits(Arc<Mutex<HashMap<String, Pending>>>);

/// One wait under way; it ends when dropped.
#[must_use = "the wait ends when the guard is dropped"]
pub struct WaitGuard {
    waits: Waits,
    user: String,
    on: WaitOn,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        let mut map = self.waits.lock();
        if let Some(p) = map.get_mut(&self.user) {
            let i = self.on.index();
            p.count[i] = p.count[i].saturating_sub(1);
            if p.count[i] == 0 {
                p.until[i] = None;
            }
            if p.idle() {
                map.remove(&self.user);
            }
        }
    }
}

/// Mailboxes are named as the state DB keys them: trimmed, lower case.
fn key(user: &str) -> String {
    user.trim().to_ascii_lowercase()
}

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    unix(SystemTime::now())
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl Waits {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `user` starts waiting on `on`; the wait ends when the guard drops.
    pub fn begin(&self, user: &str, on: WaitOn) -> WaitGuard {
        self.start(user, on, None)
    }

    /// As [`Waits::begin`], for a wait whose end is known (a Retry-After):
    /// the latest `until` of the waits under way is reported.
    pub fn begin_until(&self, user: &str, on: WaitOn, until: SystemTime) -> WaitGuard {
        self.start(user, on, Some(unix(until)))
    }

    fn start(&self, user: &str, on: WaitOn, until: Option<i64>) -> WaitGuard {
        let user = key(user);
        {
            let mut map = self.lock();
            let p = map.entry(user.clone()).or_default();
            let i = on.index();
            if p.count[i] == 0 {
                p.since[i] = unix_now();
            }
            p.count[i] += 1;
            if until.is_some() {
                p.until[i] = p.until[i].max(until);
            }
        }
        WaitGuard {
            waits: self.clone(),
            user,
            on,
        }
    }

    /// Awaits `fut`, counted as `user` waiting on `on` while it is not
    /// ready. A future ready at once is not counted at all.
    pub async fn wait<F: Future>(&self, user: &str, on: WaitOn, fut: F) -> F::Output {
        self.wait_until(user, on, None, fut).await
    }

    /// As [`Waits::wait`], with the wait's end when it is known.
    pub async fn wait_until<F: Future>(&self, user: &str, on: WaitOn, until: Option<SystemTime>, fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        if let Poll::Ready(v) = futures::poll!(fut.as_mut()) {
            return v;
        }
        let _guard = match until {
            Some(t) => self.begin_until(user, on, t),
            None => self.begin(user, on),
        };
        fut.await
    }

    /// What each mailbox with a wait under way waits on now.
    pub fn snapshot(&self) -> BTreeMap<String, Waiting> {
        self.lock()
            .iter()
            .filter_map(|(user, p)| p.top().map(|w| (user.clone(), w)))
            .collect()
    }

    /// What `user` waits on now, if anything.
    pub fn of(&self, user: &str) -> Option<Waiting> {
        self.lock().get(&key(user)).and_then(Pending::top)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_highest_priority_wait_is_the_one_reported() {
        let waits = Waits::default();
        let login = waits.begin("a@x.test", WaitOn::LoginRate);
        assert_eq!(waits.of("a@x.test").unwrap().on, WaitOn::LoginRate);
        let slot = waits.begin("a@x.test", WaitOn::SourceSlot);
        assert_eq!(waits.of("a@x.test").unwrap().on, WaitOn::SourceSlot);
        let budget = waits.begin("a@x.test", WaitOn::TargetBudget);
        let bytes = waits.begin("a@x.test", WaitOn::InFlightBytes);
        assert_eq!(waits.of("a@x.test").unwrap().on, WaitOn::TargetBudget);
        let throttled = waits.begin_until(
            "a@x.test",
            WaitOn::Throttled,
            SystemTime::now() + Duration::from_secs(30),
        );
        let now = waits.of("A@X.test").unwrap();
        assert_eq!(now.on, WaitOn::Throttled, "keys ignore case");
        assert!(now.until.is_some_and(|u| u >= unix_now() + 29));
        drop(throttled);
        assert_eq!(waits.of("a@x.test").unwrap().on, WaitOn::TargetBudget);
        assert_eq!(waits.of("a@x.test").unwrap().until, None);
        drop((budget, bytes));
        assert_eq!(waits.of("a@x.test").unwrap().on, WaitOn::SourceSlot);
        drop((slot, login));
        assert_eq!(waits.of("a@x.test"), None);
    }

    #[test]
    fn concurrent_waits_are_counted_and_each_guard_ends_one() {
        let waits = Waits::default();
        let first = waits.begin("a@x.test", WaitOn::SourceSlot);
        let second = waits.begin("a@x.test", WaitOn::SourceSlot);
        let other = waits.begin("b@x.test", WaitOn::InFlightBytes);
        assert_eq!(waits.snapshot().len(), 2);
        drop(first);
        assert_eq!(
            waits.of("a@x.test").map(|w| w.on),
            Some(WaitOn::SourceSlot),
            "one of two waits is still under way"
        );
        drop(second);
        assert_eq!(waits.of("a@x.test"), None);
        let snap = waits.snapshot();
        assert_eq!(snap.len(), 1);
        assert_eq!(snap["b@x.test"].on, WaitOn::InFlightBytes);
        drop(other);
        assert!(waits.snapshot().is_empty());
        assert!(waits.lock().is_empty(), "idle mailboxes leave no entry behind");
    }

    #[tokio::test]
    async fn a_future_is_counted_only_while_it_is_pending() {
        let waits = Waits::default();
        // Ready at once: never counted.
        assert_eq!(waits.wait("a@x.test", WaitOn::LoginRate, async { 7 }).await, 7);
        assert!(waits.snapshot().is_empty());
        let gate = Arc::new(tokio::sync::Notify::new());
        let task = {
            let (waits, gate) = (waits.clone(), gate.clone());
            tokio::spawn(async move { waits.wait("a@x.test", WaitOn::SourceSlot, gate.notified()).await })
        };
        tokio::time::timeout(Duration::from_secs(5), async {
            while waits.of("a@x.test").is_none() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        assert_eq!(waits.of("a@x.test").unwrap().on, WaitOn::SourceSlot);
        gate.notify_one();
        task.await.unwrap();
        assert_eq!(waits.of("a@x.test"), None, "the wait ended with the future");
    }

    #[test]
    fn names_round_trip_and_serialize_in_snake_case() {
        for w in WaitOn::BY_PRIORITY {
            assert_eq!(WaitOn::parse(w.as_str()), Some(w));
            assert_eq!(serde_json::to_value(w).unwrap(), w.as_str());
        }
        assert_eq!(WaitOn::words_of("in_flight_bytes"), "in-flight bytes");
    }
}
