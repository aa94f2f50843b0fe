//! The migrate operation: for each user, scan the source into the
//! checkpoint ([`scan`]), decide the scope, then fetch, transform and upload
//! in parallel batches ([`copy`]), recording each message only once the
//! target confirmed it ([`settle`]). Several mailboxes run at once; within a
//! mailbox several connections fetch disjoint UID batches; bytes in flight
//! are capped across the whole run, so memory is bounded by configuration,
//! not by mailbox size.
//!
//! Everything here receives built values ([`build::Migration`]); nothing
//! reads the settings.

mod batch;
mod copy;
mod deletions;
mod every;
mod moves;
mod pim;
mod relabel;
mod renames;
mod scan;
mod settle;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument;

use crate::build::{self, Migration, StartError};
use crate::checkpoint::{self, Checkpoint, CheckpointError, Recorder, SyncCounts};
use crate::error::{Error, ErrorKind};
use crate::event::{Event, Events};
use crate::pace::Held;
use crate::roster::UserJob;
use crate::source::Session as SourceSession;
use crate::target::TargetSession;
use crate::wait::{WaitOn, Waiting, unix_now};

pub use every::migrate_every;

/// How a run ended, as the exit code tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every user done.
    Done,
    /// Some users failed or were partly copied; the others finished.
    Partial,
    /// Stopped by a signal; the next run resumes.
    Interrupted,
}

/// Set by a signal handler; checked between batches so that what is in
/// flight finishes and is recorded before the run stops. A task that only
/// waits (`migrate --every` between passes) awaits [`StopFlag::until_stopped`].
#[derive(Clone, Default)]
pub struct StopFlag(Arc<StopInner>);

#[derive(Default)]
struct StopInner {
    stopped: AtomicBool,
    woken: tokio::sync::Notify,
}

impl StopFlag {
    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        self.0.woken.notify_waiters();
    }

    pub fn stopped(&self) -> bool {
        self.0.stopped.load(Ordering::SeqCst)
    }

    /// Returns once [`StopFlag::stop`] was called (at once if it was).
    pub async fn until_stopped(&self) {
        loop {
            let woken = self.0.woken.notified();
            tokio::pin!(woken);
            // Registered before the flag is read: a stop in between wakes it.
            woken.as_mut().enable();
            if self.stopped() {
                return;
            }
            woken.await;
        }
    }
}

/// Everything the per-user tasks share.
struct Shared {
    /// Shared by the passes of `migrate --every` (pacing, token caches).
    run: Arc<Migration>,
    db: Mutex<Checkpoint>,
    recorder: Recorder,
    events: Events,
    stop: StopFlag,
    dry_run: bool,
}

impl Shared {
    /// Runs a short checkpoint operation from async code.
    fn db<T>(&self, f: impl FnOnce(&mut Checkpoint) -> Result<T, CheckpointError>) -> Result<T, Error> {
        tokio::task::block_in_place(|| {
            let mut cp = self.db.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut cp).map_err(|e| Error::fatal(e.0))
        })
    }
}

/// Result of one user's sync.
struct UserResult {
    state: &'static str,
    copied: u64,
    bytes: u64,
    failed: u64,
    flags_updated: u64,
    moved: u64,
    renamed: u64,
    deleted_kept: u64,
    deleted: u64,
    /// What the contacts-and-calendars part did, when the run has one.
    pim: Option<crate::event::PimFinished>,
    error: Option<String>,
}

impl UserResult {
    fn failed(error: String) -> UserResult {
        UserResult {
            state: "failed",
            copied: 0,
            bytes: 0,
            failed: 0,
            flags_updated: 0,
            moved: 0,
            renamed: 0,
            deleted_kept: 0,
            deleted: 0,
            pim: None,
            error: Some(error),
        }
    }
}

#[derive(Default)]
struct UserStats {
    copied: u64,
    bytes: u64,
    failed: u64,
    /// Messages in scope that this run could not reach, with why (a folder
    /// whose UIDVALIDITY changed even within one session): the user ends
    /// partial.
    left_behind: Vec<(u64, String)>,
    /// Copies made before whose flags this run changed to the source's.
    flags_updated: u64,
    /// Copies made before that this run moved to where the source filed
    /// their message.
    moved: u64,
    /// Target folders this run renamed as on the source.
    renamed: u64,
    /// Copies of messages this run found deleted on the source and kept in
    /// the target (counted from the checkpoint at the end of the sync).
    deleted_kept: u64,
    /// Copies of messages deleted on the source that this run deleted.
    deleted: u64,
    /// Every planned batch was processed (not cut short by a stop).
    complete: bool,
}

/// The migrate command: copies everything not yet copied for every user.
pub async fn migrate(
    run: Migration,
    users: Vec<UserJob>,
    events: Events,
    stop: StopFlag,
    dry_run: bool,
) -> Result<Outcome, StartError> {
    let _lock = checkpoint::lock(&run.state_path)?;
    if !dry_run {
        // Holding the run lock proves no `--every` loop runs on this DB:
        // a schedule row left by one that was killed is stale.
        Checkpoint::open(&run.state_path)?.clear_schedule()?;
    }
    pass(Arc::new(run), users, events, stop, dry_run).await
}

/// One migrate over every user, the run lock already held (by [`migrate`],
/// or by [`migrate_every`] for all of its passes).
async fn pass(
    run: Arc<Migration>,
    users: Vec<UserJob>,
    events: Events,
    stop: StopFlag,
    dry_run: bool,
) -> Result<Outcome, StartError> {
    let db = Checkpoint::open(&run.state_path)?;
    if !dry_run {
        db.claim_shard(run.shard.as_deref())?;
        // Waits a killed run left behind are not this run's.
        db.clear_waiting()?;
    }
    // The target's own pacing (Graph's per-mailbox budgets) reports its
    // waits into the same registry.
    run.target.report_waits(run.copy.waits.clone());
    let (recorder, recorder_thread) = Recorder::start(&run.state_path)?;
    events.send(Event::RunStarted {
        users: users.len(),
        target: run.target.describe(),
    });
    let parallel = run.copy.parallel_users;
    // The names the users file gives, for the waits' events (the registry
    // keys them as the state DB does).
    let names: std::collections::HashMap<String, String> = users
        .iter()
        .map(|u| (checkpoint::user_key(&u.email), u.email.clone()))
        .collect();
    let shared = Arc::new(Shared {
        run,
        db: Mutex::new(db),
        recorder: recorder.clone(),
        events: events.clone(),
        stop: stop.clone(),
        dry_run,
    });

    let (stop_sampling, sampling_stopped) = tokio::sync::oneshot::channel();
    let sampler = tokio::spawn(sample_waits(shared.clone(), names, sampling_stopped));

    let results: Vec<UserResult> = build::each_user(
        users,
        parallel,
        |user| {
            let shared = shared.clone();
            // Every log line of this mailbox carries its address.
            let span = tracing::info_span!("mailbox", user = %user.email);
            async move { sync_user(&shared, &user).await }.instrument(span)
        },
        |_, reason| UserResult::failed(reason),
    )
    .await;

    let _ = stop_sampling.send(());
    let _ = sampler.await;
    let flushed = recorder.flush().await;
    drop(recorder);
    drop(shared);
    let _ = recorder_thread.join();
    if let Err(e) = flushed {
        return Err(StartError(e.message));
    }
    let interrupted = stop.stopped();
    let users_failed = results.iter().filter(|r| r.state != "done").count();
    events.send(Event::RunFinished {
        users_done: results.len() - users_failed,
        users_failed,
        copied: results.iter().map(|r| r.copied).sum(),
        bytes: results.iter().map(|r| r.bytes).sum(),
        interrupted,
    });
    Ok(if interrupted {
        Outcome::Interrupted
    } else if users_failed > 0 {
        Outcome::Partial
    } else {
        Outcome::Done
    })
}

async fn sync_user(shared: &Shared, user: &UserJob) -> UserResult {
    let email = user.email.clone();
    shared.events.send(Event::UserStarted { user: email.clone() });
    if shared.dry_run {
        let mut stats = UserStats::default();
        let mut error = copy::copy_mailbox(shared, user, &mut stats)
            .await
            .err()
            .map(|e| e.message);
        if error.is_none()
            && let Err(e) = pim::sync_pim(shared, user).await
        {
            error = Some(format!("contacts and calendars: {e}"));
        }
        if let Some(e) = &error {
            shared.events.send(Event::UserFinished {
                user: email.clone(),
                state: "failed".to_owned(),
                copied: 0,
                bytes: 0,
                failed: 0,
                flags_updated: 0,
                moved: 0,
                renamed: 0,
                deleted_kept: 0,
                deleted: 0,
                pim: None,
                error: Some(e.clone()),
            });
        }
        return match error {
            Some(e) => UserResult::failed(e),
            None => UserResult {
                state: "done",
                copied: 0,
                bytes: 0,
                failed: 0,
                flags_updated: 0,
                moved: 0,
                renamed: 0,
                deleted_kept: 0,
                deleted: 0,
                pim: None,
                error: None,
            },
        };
    }
    let (sync_id, kept_before) = match shared.db(|cp| {
        cp.set_user_state(&email, "syncing", None)?;
        Ok((cp.begin_sync(&email)?, cp.kept_copy_keys(&email)?))
    }) {
        Ok(started) => started,
        Err(e) => return finish(shared, None, user, UserResult::failed(e.message)),
    };
    let mut stats = UserStats::default();
    let result = copy::copy_mailbox(shared, user, &mut stats).await;
    let flushed = shared.recorder.flush().await;
    // Contacts and calendars once the mail is copied; their failure leaves
    // the mail done and the user partial.
    let mut pim_done = None;
    let pim_error = match (&result, &flushed) {
        (Ok(()), Ok(())) if !shared.stop.stopped() => match pim::sync_pim(shared, user).await {
            Ok(None) => None,
            Ok(Some(pim)) => {
                pim_done = Some(pim.finished());
                if pim.interrupted {
                    // Reported as interrupted, like mail cut short.
                    stats.complete = false;
                }
                tracing::info!(user = %email, events = ?pim.events, contacts = ?pim.contacts, "contacts and calendars synced");
                pim.problem()
            }
            Err(e) => Some(format!("contacts and calendars not copied: {e}")),
        },
        _ => None,
    };
    // Copies kept at the end but not at the start: messages this sync found
    // deleted on the source (not moved, not mirrored).
    match shared.db(|cp| cp.kept_copy_keys(&email)) {
        Ok(kept) => stats.deleted_kept = kept.difference(&kept_before).count() as u64,
        Err(e) => tracing::warn!(user = %email, "cannot count the copies kept of mail deleted on the source: {e}"),
    }
    let (state, error) = match (result, flushed) {
        (Err(e), _) | (Ok(()), Err(e)) => ("failed", Some(e.message)),
        (Ok(()), Ok(())) if shared.stop.stopped() && !stats.complete => (
            "interrupted",
            Some("stopped before the end; run migrate again to resume".to_owned()),
        ),
        (Ok(()), Ok(())) if stats.failed > 0 || !stats.left_behind.is_empty() || pim_error.is_some() => {
            let mut why = Vec::new();
            if stats.failed > 0 {
                why.push(format!(
                    "{} messages failed; run migrate again to retry them",
                    stats.failed
                ));
            }
            why.extend(stats.left_behind.iter().map(|(_, reason)| reason.clone()));
            why.extend(pim_error);
            ("partial", Some(why.join("; ")))
        }
        (Ok(()), Ok(())) => ("done", None),
    };
    finish(
        shared,
        Some(sync_id),
        user,
        UserResult {
            state,
            copied: stats.copied,
            bytes: stats.bytes,
            failed: stats.failed,
            flags_updated: stats.flags_updated,
            moved: stats.moved,
            renamed: stats.renamed,
            deleted_kept: stats.deleted_kept,
            deleted: stats.deleted,
            pim: pim_done,
            error,
        },
    )
}

fn finish(shared: &Shared, sync_id: Option<i64>, user: &UserJob, r: UserResult) -> UserResult {
    if let Some(id) = sync_id {
        let counts = SyncCounts {
            copied: r.copied,
            bytes: r.bytes,
            moved: r.moved,
            flags_updated: r.flags_updated,
            renamed: r.renamed,
            deleted_kept: r.deleted_kept,
            deleted_mirrored: r.deleted,
        };
        let _ = shared.db(|cp| {
            cp.finish_sync(id, &user.email, r.state, &counts, r.error.as_deref())?;
            cp.set_waiting(&user.email, None, None)
        });
    } else {
        let _ = shared.db(|cp| {
            cp.set_user_state(&user.email, r.state, r.error.as_deref())?;
            cp.set_waiting(&user.email, None, None)
        });
    }
    // A mailbox that failed is an error even for `-q`; a partial or
    // interrupted one resumes on the next run.
    match &r.error {
        Some(e) if r.state == "failed" => tracing::error!(user = %user.email, state = r.state, "{e}"),
        Some(e) => tracing::warn!(user = %user.email, state = r.state, "{e}"),
        None => {}
    }
    shared.events.send(Event::UserFinished {
        user: user.email.clone(),
        state: r.state.to_owned(),
        copied: r.copied,
        bytes: r.bytes,
        failed: r.failed,
        flags_updated: r.flags_updated,
        moved: r.moved,
        renamed: r.renamed,
        deleted_kept: r.deleted_kept,
        deleted: r.deleted,
        pim: r.pim.clone(),
        error: r.error.clone(),
    });
    r
}

/// Runs `op` until it succeeds, waiting between attempts as the retry
/// policy says (a throttling delay in full); gives up with the last error.
async fn with_retries<T, Fut: Future<Output = Result<T, Error>>>(
    shared: &Shared,
    email: &str,
    mut op: impl FnMut() -> Fut,
) -> Result<T, Error> {
    let mut attempt = 0;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                attempt += 1;
                match shared.run.copy.retry.delay(attempt, &e) {
                    Some(d) => {
                        note_wait(shared, email, d, &e);
                        if matches!(e.kind, ErrorKind::Throttled(_)) {
                            let until = std::time::SystemTime::now() + d;
                            let waits = &shared.run.copy.waits;
                            waits
                                .wait_until(email, WaitOn::Throttled, Some(until), tokio::time::sleep(d))
                                .await;
                        } else {
                            tokio::time::sleep(d).await;
                        }
                    }
                    None => return Err(e),
                }
            }
        }
    }
}

/// A source connection with the connection slots (per host, per user) it
/// holds while open.
type HeldSource = Held<SourceSession>;

/// Opens a source connection within the connection caps and the login
/// rate, after any wait a server asked this user for.
/// With `retry` false, one attempt only (the caller decides what a refusal
/// means).
async fn open_source(shared: &Shared, user: &UserJob, retry: bool) -> Result<HeldSource, Error> {
    let pace = &shared.run.copy.pace;
    let login = user.source_login();
    let host = shared.run.source.host_key(&login);
    let waits = &shared.run.copy.waits;
    let email = user.email.as_str();
    let slot = waits
        .wait(email, WaitOn::SourceSlot, pace.source_connection(&host, email))
        .await;
    let gate = pace.user_gate(email);
    let attempt = || async {
        waits
            .wait_until(email, WaitOn::Throttled, gate.opens_at(), gate.wait())
            .await;
        waits.wait(email, WaitOn::LoginRate, pace.before_login()).await;
        shared.run.source.open(&login).await
    };
    let session = if retry {
        with_retries(shared, &user.email, attempt).await
    } else {
        attempt().await
    }
    .map_err(|e| e.context("source"))?;
    Ok(Held::new(session, slot))
}

/// How long a server may still count a session after closing its
/// connection: Dovecot's process for it exits, and is counted against
/// `process_limit`, a moment after the close.
const SESSION_TEARDOWN_GRACE: Duration = Duration::from_millis(250);

/// Lets go of a source connection and then of its slots: a working one
/// logs out (and waits for the server to close it); a broken one is
/// dropped, since the server ends that session only once it notices the
/// connection is gone. Either way the slots are held a moment longer, so
/// the server has let go before another login may take them. Done in the
/// background: the caller goes on at once.
async fn release_source(held: HeldSource) {
    let (session, slot) = held.into_parts();
    tokio::spawn(async move {
        if session.conn_broken() {
            drop(session);
            tokio::time::sleep(SESSION_TEARDOWN_GRACE * 2).await;
        } else {
            session.logout().await;
            tokio::time::sleep(SESSION_TEARDOWN_GRACE).await;
        }
        drop(slot);
    });
}

async fn open_target(shared: &Shared, user: &UserJob) -> Result<Box<dyn TargetSession>, Error> {
    let login = user.target_login();
    with_retries(shared, &user.email, || shared.run.target.open(&login)).await
}

/// Before a retry: logs the wait; when the server pushed back, holds back
/// every connection of the user for as long, and counts it for `status`.
fn note_wait(shared: &Shared, email: &str, delay: Duration, e: &Error) {
    tracing::info!(user = %email, delay_ms = delay.as_millis() as u64, "waiting before retry: {e}");
    if matches!(e.kind, ErrorKind::Throttled(_)) {
        tracing::warn!(user = %email, delay_ms = delay.as_millis() as u64, "the server asked to slow down: {e}");
        shared.run.copy.pace.user_gate(email).push_delay(delay);
        record_throttle(shared, email, e);
        shared.events.send(Event::Throttled {
            user: email.to_owned(),
            delay_ms: delay.as_millis() as u64,
            reason: e.message.clone(),
        });
    }
}

/// Counts a push-back against the user in the checkpoint, for `status`.
fn record_throttle(shared: &Shared, email: &str, e: &Error) {
    if let Err(db) = shared.db(|cp| cp.note_throttle(email, &e.message)) {
        tracing::warn!(user = %email, "cannot record the throttling: {db}");
    }
}

/// Every second, what each mailbox waits on ([`crate::wait`]): a change is
/// sent as a `waiting` event and written to the user's row, and the rows'
/// heartbeat is rewritten every [`checkpoint::WAITS_HEARTBEAT`] seconds so
/// readers can tell a going run's waits from a killed one's. Once `stop`
/// fires, every mailbox still shown waiting is said to wait on nothing and
/// the rows are cleared.
async fn sample_waits(
    shared: Arc<Shared>,
    names: std::collections::HashMap<String, String>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let waits = shared.run.copy.waits.clone();
    let name = |key: &str| names.get(key).cloned().unwrap_or_else(|| key.to_owned());
    let mut shown: std::collections::HashMap<String, Waiting> = std::collections::HashMap::new();
    let mut beat_at: Option<i64> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {}
        }
        let now = waits.snapshot();
        let mut changes: Vec<(String, Option<Waiting>)> = now
            .iter()
            .filter(|(user, w)| shown.get(*user).map(|s| s.on) != Some(w.on))
            .map(|(user, w)| (user.clone(), Some(*w)))
            .collect();
        changes.extend(
            shown
                .keys()
                .filter(|user| !now.contains_key(*user))
                .map(|user| (user.clone(), None)),
        );
        let at = unix_now();
        for (user, w) in &changes {
            shared.events.send(Event::Waiting {
                user: name(user),
                on: w.map(|w| w.on.as_str().to_owned()),
                since: w.map_or(at, |w| w.since),
                until: w.and_then(|w| w.until),
            });
            match w {
                Some(w) => shown.insert(user.clone(), *w),
                None => shown.remove(user),
            };
        }
        let beat = beat_at.is_none_or(|b| at - b >= checkpoint::WAITS_HEARTBEAT);
        if shared.dry_run || (changes.is_empty() && !beat) {
            continue;
        }
        let written = shared.db(|cp| {
            for (user, w) in &changes {
                cp.set_waiting(user, w.map(|w| w.on.as_str()), w.map(|w| w.since))?;
            }
            cp.waits_heartbeat()
        });
        match written {
            Ok(()) => beat_at = Some(at),
            Err(e) => tracing::warn!("cannot record what the mailboxes wait on: {e}"),
        }
    }
    let at = unix_now();
    for user in shown.keys() {
        shared.events.send(Event::Waiting {
            user: name(user),
            on: None,
            since: at,
            until: None,
        });
    }
    if !shared.dry_run
        && let Err(e) = shared.db(|cp| cp.clear_waiting())
    {
        tracing::warn!("cannot clear what the mailboxes waited on: {e}");
    }
}
