//! The dashboard's view of the state DB, read again every few seconds on a
//! thread of its own: requests read the latest [`Snapshot`] and never wait
//! for the DB. A refresh reads the `users` and `syncs` tables in one pass
//! each and the figures of a user ([`Checkpoint::user_status`], as `status`
//! reads them) only when that user may have changed: it is new, its
//! `users` row changed, or its sync is under way; every user again once a
//! minute (a `verify` can change figures without a sync). When the DB has
//! not changed at all (`PRAGMA data_version`), nothing is read but, once a
//! minute, the copy-rate chart (its window moves on).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::checkpoint::{Checkpoint, CheckpointError, Schedule, SyncCounts, UserRow, UserStatus, format_time};
use crate::model::ItemKind;
use crate::report::{PimFigures, SyncPass, SyncReport, sync_passes};

/// How often the DB is looked at (at least; a slow refresh waits longer).
pub const REFRESH: Duration = Duration::from_secs(2);
/// Every user's figures are read again this often.
const FULL_REFRESH: Duration = Duration::from_secs(60);
/// The copy-rate chart covers this much time, per minute.
const THROUGHPUT_WINDOW: i64 = 6 * 3600;
/// The chart's query reads every message row: it runs at most this often,
/// and never more often than ten times its own duration.
const THROUGHPUT_REFRESH: Duration = Duration::from_secs(5);

/// One user as the dashboard lists it: `status`'s figures and a summary
/// of its syncs.
#[derive(Clone, Debug, Serialize)]
pub struct UserSummary {
    #[serde(flatten)]
    pub status: UserStatus,
    /// Share of the source's messages dealt with (copied or skipped), 0 to 1.
    pub progress: f64,
    /// Its syncs so far.
    pub syncs: u64,
    /// Start of the sync under way (UTC, RFC 3339), if any.
    pub running_since: Option<String>,
    /// What the last finished sync did.
    pub last_sync_counts: Option<SyncCounts>,
    /// Bytes per second of the last finished sync.
    pub last_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contacts: Option<PimFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<PimFigures>,
    /// Unix seconds of `last_sync` and of the running sync's start, for sorting.
    #[serde(skip)]
    pub last_sync_unix: i64,
    #[serde(skip)]
    pub running_since_unix: i64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub users: u64,
    pub done: u64,
    /// Users with a sync under way.
    pub running: u64,
    /// Users whose last sync failed, was partial or was interrupted.
    pub not_done: u64,
    pub source_messages: u64,
    pub source_bytes: u64,
    pub copied: u64,
    pub bytes_copied: u64,
    pub skipped: u64,
    pub failed: u64,
    pub deleted_on_source: u64,
    /// Times servers told connections to slow down, over all users.
    pub throttled: u64,
    /// Users that were ever told so.
    pub throttled_users: u64,
    /// Users waiting on a limit right now, per limit (`target_budget`, …),
    /// while a run goes.
    pub waiting: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contacts: Option<PimFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<PimFigures>,
}

/// A user's last push-back from a server.
#[derive(Clone, Debug, Serialize)]
pub struct Throttle {
    pub email: String,
    pub count: u64,
    pub last: Option<String>,
    pub reason: Option<String>,
}

/// Messages and bytes copied per minute.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Throughput {
    pub bucket_seconds: i64,
    /// `[unix start of the minute, messages, bytes]`, oldest first.
    pub points: Vec<(i64, u64, u64)>,
    /// When it was read (UTC, RFC 3339).
    pub read_at: Option<String>,
}

/// The schedule of `migrate --every`, worded.
#[derive(Clone, Debug, Serialize)]
pub struct ScheduleView {
    #[serde(flatten)]
    pub schedule: Schedule,
    pub running: bool,
    /// "pass 3 running since …" or "next pass (4) at …" (UTC).
    pub text: String,
}

impl ScheduleView {
    /// The schedule as it stands at `now` (unix seconds).
    pub fn new(schedule: Schedule, now: i64) -> ScheduleView {
        let running = schedule.running();
        let text = if !schedule.is_current(now) {
            format!(
                "no `migrate --every` seems to run: its schedule was last written at {} (pass {}); it stopped without cleaning up",
                format_time(schedule.updated_at),
                schedule.pass
            )
        } else {
            match (schedule.next_pass_at, schedule.pass_started_at) {
                (None, Some(started)) => format!("pass {} running since {}", schedule.pass, format_time(started)),
                (None, None) => format!("pass {} running", schedule.pass),
                (Some(next), _) => format!(
                    "next pass ({}) at {}; one every {}",
                    schedule.pass + 1,
                    format_time(next),
                    crate::report::human_duration(schedule.every_seconds.max(0) as u64)
                ),
            }
        };
        ScheduleView {
            schedule,
            running,
            text,
        }
    }
}

/// Everything the dashboard shows but the searched items and a user's
/// sync history, which are read on request.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Snapshot {
    pub state_db: String,
    /// When the DB was last read (UTC, RFC 3339); `None` before the first read.
    pub refreshed: Option<String>,
    /// How long that took.
    pub refresh_ms: u64,
    /// Why the last read failed, if it did (the figures are the last good ones).
    pub error: Option<String>,
    pub totals: Totals,
    /// Users per state.
    pub states: BTreeMap<String, u64>,
    pub passes: Vec<SyncPass>,
    pub throughput: Throughput,
    /// The users last throttled, latest first (at most 20).
    pub throttles: Vec<Throttle>,
    pub schedule: Option<ScheduleView>,
    /// Shared, so that a snapshot carried over is not a copy of every user.
    #[serde(skip)]
    pub users: Arc<Vec<UserSummary>>,
}

/// The latest snapshot, shared between the refresher and the requests.
pub type Shared = Arc<RwLock<Arc<Snapshot>>>;

/// What the refresher keeps between refreshes.
struct Refresher {
    path: PathBuf,
    cp: Option<Checkpoint>,
    data_version: Option<i64>,
    cache: HashMap<String, Cached>,
    last_full: Option<Instant>,
    throughput: Throughput,
    throughput_read: Option<Instant>,
    throughput_took: Duration,
    /// The `data_version` the chart was read at.
    throughput_version: Option<i64>,
}

struct Cached {
    row: UserRow,
    status: UserStatus,
    contacts: Option<PimFigures>,
    events: Option<PimFigures>,
}

/// Starts the refresher thread; the first snapshot is read before this
/// returns, so an unreadable DB is reported at once. The thread ends when
/// `stop` is dropped or sent to.
pub fn start(path: &Path, stop: std::sync::mpsc::Receiver<()>) -> Result<Shared, CheckpointError> {
    let mut refresher = Refresher::open(path)?;
    let first = refresher.tick(&Snapshot::default());
    let shared: Shared = Arc::new(RwLock::new(Arc::new(first)));
    let writer = shared.clone();
    std::thread::Builder::new()
        .name("serve-refresh".into())
        .spawn(move || {
            loop {
                let previous = writer.read().map(|s| s.clone()).unwrap_or_default();
                let started = Instant::now();
                let next = refresher.tick(&previous);
                if let Ok(mut slot) = writer.write() {
                    *slot = Arc::new(next);
                }
                let wait = REFRESH.max(started.elapsed() * 3);
                match stop.recv_timeout(wait) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            }
        })
        .map_err(|e| CheckpointError(format!("cannot start the dashboard's reader thread: {e}")))?;
    Ok(shared)
}

impl Refresher {
    /// A refresher over the state DB at `path`, opened read-only.
    fn open(path: &Path) -> Result<Refresher, CheckpointError> {
        Ok(Refresher {
            path: path.to_path_buf(),
            cp: Some(Checkpoint::open_read_only(path)?),
            data_version: None,
            cache: HashMap::new(),
            last_full: None,
            throughput: Throughput::default(),
            throughput_read: None,
            throughput_took: Duration::ZERO,
            throughput_version: None,
        })
    }

    /// A new snapshot, or `previous` with the error when the DB could not
    /// be read (the connection is opened again next time).
    fn tick(&mut self, previous: &Snapshot) -> Snapshot {
        let started = Instant::now();
        match self.read(previous) {
            Ok(Some(mut s)) => {
                s.refresh_ms = started.elapsed().as_millis() as u64;
                s
            }
            Ok(None) => Snapshot {
                refreshed: Some(now_text()),
                error: None,
                ..previous.clone()
            },
            Err(e) => {
                tracing::warn!("cannot read the state DB: {e}");
                self.cp = None;
                self.data_version = None;
                Snapshot {
                    state_db: self.path.display().to_string(),
                    error: Some(format!(
                        "{e} (showing the figures read before; retrying; a DB written by an older cutover is \
                         upgraded by running `cutover status` once)"
                    )),
                    ..previous.clone()
                }
            }
        }
    }

    /// `None` when nothing changed since the last read.
    fn read(&mut self, previous: &Snapshot) -> Result<Option<Snapshot>, CheckpointError> {
        if self.cp.is_none() {
            self.cp = Some(Checkpoint::open_read_only(&self.path)?);
        }
        let Some(cp) = self.cp.as_ref() else {
            return Ok(None);
        };
        let version = cp.data_version()?;
        // Waits shown are read again even when nothing changed: once the run
        // that wrote them stops beating, they are no longer shown.
        let waits_shown = previous.users.iter().any(|u| u.status.waiting_on.is_some());
        let unchanged = self.data_version == Some(version) && previous.refreshed.is_some() && !waits_shown;
        // Every user again once a minute, if anything changed at all.
        let full = !unchanged && self.last_full.is_none_or(|t| t.elapsed() >= FULL_REFRESH);
        // The chart is read again once the DB changed since it was (at most
        // every few seconds), and every minute anyway (its window moves on).
        let chart_stale = self.throughput_version != Some(version)
            || self.throughput_read.is_none_or(|t| t.elapsed() >= FULL_REFRESH);
        let throughput_due = chart_stale
            && self
                .throughput_read
                .is_none_or(|t| t.elapsed() >= THROUGHPUT_REFRESH.max(self.throughput_took * 10));
        if unchanged {
            if !throughput_due {
                return Ok(None);
            }
            let (chart, took) = read_chart(cp)?;
            self.note_chart(chart, took, version);
            return Ok(Some(Snapshot {
                throughput: self.throughput.clone(),
                refreshed: Some(now_text()),
                error: None,
                ..previous.clone()
            }));
        }
        let rows = cp.user_rows()?;
        let all_syncs = cp.all_syncs()?;
        // One user's syncs at a time, oldest first (as `all_syncs` sorts them).
        let mut histories: HashMap<&str, Vec<SyncReport>> = HashMap::new();
        // The start (unix) of each user's latest sync, for sorting.
        let mut latest: HashMap<&str, i64> = HashMap::new();
        for s in &all_syncs {
            histories.entry(s.email.as_str()).or_default().push(SyncReport::new(s));
            latest.insert(s.email.as_str(), s.started);
        }
        let mut users = Vec::with_capacity(rows.len());
        let mut seen = std::collections::HashSet::with_capacity(rows.len());
        for row in rows {
            let syncs = histories.get(row.email.as_str()).map(Vec::as_slice).unwrap_or(&[]);
            let running = syncs.last().filter(|s| s.finished.is_none());
            let dirty = full
                || running.is_some()
                || self
                    .cache
                    .get(&row.email)
                    .is_none_or(|c| c.row != row || c.status.waiting_on.is_some());
            if dirty {
                let status = cp.user_status(&row.email)?;
                let pim = |kind| -> Result<Option<PimFigures>, CheckpointError> {
                    if cp.pim_collections(&row.email, kind)?.is_empty() {
                        return Ok(None);
                    }
                    Ok(Some(PimFigures::of(&cp.pim_counts(&row.email, kind)?)))
                };
                let contacts = pim(ItemKind::Contact)?;
                let events = pim(ItemKind::Event)?;
                self.cache.insert(
                    row.email.clone(),
                    Cached {
                        row: row.clone(),
                        status,
                        contacts,
                        events,
                    },
                );
            }
            let Some(c) = self.cache.get(&row.email) else {
                continue;
            };
            seen.insert(row.email.clone());
            let latest_start = latest.get(row.email.as_str()).copied().unwrap_or(0);
            users.push(summary(c, syncs, latest_start));
        }
        self.cache.retain(|email, _| seen.contains(email));
        if full {
            self.last_full = Some(Instant::now());
        }
        let now = chrono::Utc::now().timestamp();
        let schedule = cp.schedule()?.map(|s| ScheduleView::new(s, now));
        if throughput_due {
            let (chart, took) = read_chart(cp)?;
            self.note_chart(chart, took, version);
        }
        self.data_version = Some(version);
        let passes = sync_passes(histories_in_order(&users, &histories));
        Ok(Some(assemble(
            self.path.display().to_string(),
            users,
            passes,
            self.throughput.clone(),
            schedule,
        )))
    }
}

impl Refresher {
    fn note_chart(&mut self, chart: Throughput, took: Duration, version: i64) {
        self.throughput = chart;
        self.throughput_took = took;
        self.throughput_read = Some(Instant::now());
        self.throughput_version = Some(version);
    }
}

/// The copies per minute of the chart's window, and how long reading them took.
fn read_chart(cp: &Checkpoint) -> Result<(Throughput, Duration), CheckpointError> {
    let t = Instant::now();
    let since = chrono::Utc::now().timestamp() - THROUGHPUT_WINDOW;
    let chart = Throughput {
        bucket_seconds: 60,
        points: cp.copied_per_minute(since)?,
        read_at: Some(now_text()),
    };
    Ok((chart, t.elapsed()))
}

/// The users' histories in the users' order.
fn histories_in_order<'a>(
    users: &'a [UserSummary],
    histories: &'a HashMap<&str, Vec<SyncReport>>,
) -> impl Iterator<Item = &'a [SyncReport]> {
    users
        .iter()
        .filter_map(|u| histories.get(u.status.email.as_str()).map(Vec::as_slice))
}

fn now_text() -> String {
    format_time(chrono::Utc::now().timestamp())
}

/// A user's line from its figures and its syncs (oldest first).
fn summary(c: &Cached, syncs: &[SyncReport], latest_start: i64) -> UserSummary {
    let s = &c.status;
    let running = syncs.last().filter(|s| s.finished.is_none());
    let last_finished = syncs.iter().rev().find(|s| s.finished.is_some());
    let progress = if s.source_messages > 0 {
        ((s.copied + s.skipped) as f64 / s.source_messages as f64).min(1.0)
    } else if s.state == "done" {
        1.0
    } else {
        0.0
    };
    UserSummary {
        progress,
        syncs: syncs.len() as u64,
        running_since: running.map(|r| r.started.clone()),
        last_sync_counts: last_finished.map(|s| s.counts),
        last_rate: last_finished.and_then(|s| s.bytes_per_second),
        contacts: c.contacts.clone(),
        events: c.events.clone(),
        last_sync_unix: c.row.last_sync.unwrap_or(0),
        running_since_unix: running.map(|_| latest_start).unwrap_or(0),
        status: s.clone(),
    }
}

/// The snapshot of these users: totals, states, throttles.
pub fn assemble(
    state_db: String,
    users: Vec<UserSummary>,
    passes: Vec<SyncPass>,
    throughput: Throughput,
    schedule: Option<ScheduleView>,
) -> Snapshot {
    let mut totals = Totals::default();
    let mut states: BTreeMap<String, u64> = BTreeMap::new();
    for u in &users {
        let s = &u.status;
        totals.users += 1;
        totals.done += u64::from(s.state == "done");
        totals.running += u64::from(u.running_since.is_some());
        totals.not_done += u64::from(matches!(s.state.as_str(), "failed" | "partial" | "interrupted"));
        totals.source_messages += s.source_messages;
        totals.source_bytes += s.source_bytes;
        totals.copied += s.copied;
        totals.bytes_copied += s.bytes_copied;
        totals.skipped += s.skipped;
        totals.failed += s.failed;
        totals.deleted_on_source += s.deleted_on_source;
        totals.throttled += s.throttled;
        totals.throttled_users += u64::from(s.throttled > 0);
        if let Some(on) = &s.waiting_on {
            *totals.waiting.entry(on.clone()).or_default() += 1;
        }
        *states.entry(s.state.clone()).or_default() += 1;
        for (total, figures) in [(&mut totals.contacts, &u.contacts), (&mut totals.events, &u.events)] {
            if let Some(f) = figures {
                let t = total.get_or_insert_default();
                t.written += f.written;
                t.failed += f.failed;
                t.deleted_on_source_kept += f.deleted_on_source_kept;
                t.deleted += f.deleted;
                t.with_notes += f.with_notes;
            }
        }
    }
    let mut throttled: Vec<&UserSummary> = users.iter().filter(|u| u.status.throttled > 0).collect();
    // RFC 3339 UTC times sort as text; latest first.
    throttled.sort_by(|a, b| b.status.last_throttle.cmp(&a.status.last_throttle));
    let throttles = throttled
        .iter()
        .take(20)
        .map(|u| Throttle {
            email: u.status.email.clone(),
            count: u.status.throttled,
            last: u.status.last_throttle.clone(),
            reason: u.status.last_throttle_reason.clone(),
        })
        .collect();
    Snapshot {
        state_db,
        refreshed: Some(now_text()),
        refresh_ms: 0,
        error: None,
        totals,
        states,
        passes,
        throughput,
        throttles,
        schedule,
        users: Arc::new(users),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mailbox's wait shows in its row and the totals while the run
    /// beats, and is gone once the heartbeat is stale although nothing
    /// else in the DB changed (a killed run).
    #[test]
    fn waits_show_while_the_run_beats_and_go_when_it_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let cp = Checkpoint::open(&path).unwrap();
        cp.begin_sync("a@x.test").unwrap();
        cp.begin_sync("b@x.test").unwrap();
        cp.set_waiting("a@x.test", Some("source_slot"), Some(1_700_000_000))
            .unwrap();
        // A heartbeat that goes stale two seconds from now.
        let beat = chrono::Utc::now().timestamp() - crate::checkpoint::WAITS_STALE_AFTER + 1;
        cp.waits_heartbeat().unwrap();
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute("UPDATE meta SET value = ?1 WHERE key = 'waits_at'", [beat.to_string()])
            .unwrap();
        let mut refresher = Refresher::open(&path).unwrap();
        let first = refresher.tick(&Snapshot::default());
        let a = first.users.iter().find(|u| u.status.email == "a@x.test").unwrap();
        assert_eq!(a.status.waiting_on.as_deref(), Some("source_slot"));
        assert_eq!(first.totals.waiting.get("source_slot"), Some(&1));
        let json = serde_json::to_value(&first.totals).unwrap();
        assert_eq!(json["waiting"]["source_slot"], 1);

        // The run dies: nothing in the DB changes any more, but its
        // heartbeat grows old.
        std::thread::sleep(Duration::from_millis(2100));
        let second = refresher.tick(&first);
        assert!(second.users.iter().all(|u| u.status.waiting_on.is_none()));
        assert!(second.totals.waiting.is_empty());
    }

    #[test]
    fn the_schedule_reads_as_words() {
        let at = |pass, started: Option<i64>, next: Option<i64>, updated| Schedule {
            every_seconds: 1800,
            pass,
            pass_started_at: started,
            next_pass_at: next,
            updated_at: updated,
        };
        let v = ScheduleView::new(at(3, Some(0), None, 100), 120);
        assert!(v.running);
        assert_eq!(v.text, "pass 3 running since 1970-01-01T00:00:00Z");
        let v = ScheduleView::new(at(3, Some(0), Some(1800), 1000), 1100);
        assert!(!v.running);
        assert!(
            v.text.starts_with("next pass (4) at 1970-01-01T00:30:00Z"),
            "{}",
            v.text
        );
        let v = ScheduleView::new(at(3, Some(0), Some(1800), 1000), 100_000);
        assert!(v.text.contains("stopped without cleaning up"), "{}", v.text);
    }
}
