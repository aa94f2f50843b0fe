//! The one place that wires everything: for each user, scan the source
//! into the checkpoint, plan, then fetch, transform and upload in parallel
//! batches, recording each message only once the target confirmed it.
//! Several mailboxes run at once; within a mailbox several connections
//! fetch disjoint UID batches; bytes in flight are capped across the whole
//! run, so memory is bounded by configuration, not by mailbox size.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument;

use futures::StreamExt;
use tokio::sync::{Semaphore, oneshot};

use crate::checkpoint::{self, Checkpoint, CheckpointError, FolderRow, Record};
use crate::error::{Error, ErrorKind};
use crate::event::{Event, Events};
use crate::labels;
use crate::model::{Flags, ScanDepth, SourceFolder, Upload};
use crate::pace::{Held, Limits as PaceLimits, RetryPolicy};
use crate::plan::{self, Candidate, State};
use crate::roster::UserJob;
use crate::settings::{Settings, TargetSettings};
use crate::source::{ImapSource, MboxSource, Session as SourceSession, Source};
use crate::target::{Target, TargetSession, graph::GraphTarget, imap::ImapTarget, maildir::MaildirTarget};
use crate::transform;

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

/// Why a run could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

impl From<CheckpointError> for StartError {
    fn from(e: CheckpointError) -> Self {
        StartError(e.0)
    }
}

/// Set by a signal handler; checked between batches so that what is in
/// flight finishes and is recorded before the run stops.
#[derive(Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

pub fn build_target(settings: &TargetSettings) -> Result<Arc<dyn Target>, StartError> {
    Ok(match settings {
        TargetSettings::Imap {
            endpoint,
            login,
            password,
            tokens,
        } => {
            let target = ImapTarget::new(endpoint.clone(), login.clone(), password.clone())
                .map_err(|e| StartError(e.message))?;
            Arc::new(match tokens {
                Some(t) => target.with_tokens(crate::oauth::TokenSource::new(t.clone(), endpoint.timeout)),
                None => target,
            })
        }
        TargetSettings::Maildir { path } => Arc::new(MaildirTarget::new(path.clone())),
        TargetSettings::Graph(graph) => Arc::new(GraphTarget::new(graph.clone()).map_err(|e| StartError(e.message))?),
    })
}

/// The configured IMAP source, logging in with OAuth tokens (XOAUTH2) when
/// `[source] auth = "xoauth2"`.
pub fn imap_source(settings: &Settings) -> Result<ImapSource, StartError> {
    let source = ImapSource::new(settings.source.clone()).map_err(|e| StartError(e.message))?;
    Ok(match &settings.source_tokens {
        Some(tokens) => source.with_tokens(crate::oauth::TokenSource::new(tokens.clone(), settings.source.timeout)),
        None => source,
    })
}

/// The `[limits] exclude` globs, matched case-insensitively against a
/// folder's display path ("Archive/2023"). `verify` and `check` use the same
/// set, so all three agree on which folders are out of scope.
pub fn exclude_set(settings: &Settings) -> Result<globset::GlobSet, StartError> {
    let mut globs = globset::GlobSetBuilder::new();
    for pattern in &settings.limits.exclude {
        let glob = globset::GlobBuilder::new(pattern)
            .case_insensitive(true)
            .literal_separator(false)
            .build()
            .map_err(|e| StartError(format!("exclude pattern {pattern:?}: {e}")))?;
        globs.add(glob);
    }
    globs.build().map_err(|e| StartError(e.to_string()))
}

/// Writes records in batched transactions on a thread of its own, so the
/// async pipeline never waits on SQLite except when it must (see
/// [`Recorder::flush`]).
#[derive(Clone)]
struct Recorder(std_mpsc::Sender<RecorderMsg>);

enum RecorderMsg {
    Record(Record),
    Flush(oneshot::Sender<Result<(), String>>),
}

impl Recorder {
    fn start(path: &std::path::Path) -> Result<(Recorder, std::thread::JoinHandle<()>), CheckpointError> {
        let mut cp = Checkpoint::open(path)?;
        let (tx, rx) = std_mpsc::channel::<RecorderMsg>();
        let handle = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                let mut failure: Option<String> = None;
                while let Ok(first) = rx.recv() {
                    let mut records = Vec::new();
                    let mut flushes = Vec::new();
                    let mut next = Some(first);
                    while let Some(msg) = next {
                        match msg {
                            RecorderMsg::Record(r) => records.push(r),
                            RecorderMsg::Flush(done) => flushes.push(done),
                        }
                        next = if records.len() < 4096 { rx.try_recv().ok() } else { None };
                    }
                    if failure.is_none()
                        && !records.is_empty()
                        && let Err(e) = cp.apply(&records)
                    {
                        failure = Some(e.0);
                    }
                    for done in flushes {
                        let _ = done.send(failure.clone().map_or(Ok(()), Err));
                    }
                }
            })
            .map_err(|e| CheckpointError(format!("cannot start the checkpoint writer: {e}")))?;
        Ok((Recorder(tx), handle))
    }

    fn record(&self, r: Record) {
        let _ = self.0.send(RecorderMsg::Record(r));
    }

    /// Waits until everything sent so far is committed.
    async fn flush(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        let _ = self.0.send(RecorderMsg::Flush(tx));
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::fatal(format!(
                "{e}; the checkpoint is intact up to this point, free the problem and run again"
            ))),
            Err(_) => Err(Error::fatal("the checkpoint writer stopped")),
        }
    }
}

/// Everything the per-user tasks share.
struct Shared {
    settings: Settings,
    source: Source,
    target: Arc<dyn Target>,
    db: Mutex<Checkpoint>,
    recorder: Recorder,
    events: Events,
    in_flight: Arc<Semaphore>,
    retry: RetryPolicy,
    pace: PaceLimits,
    exclude: globset::GlobSet,
    stop: StopFlag,
    dry_run: bool,
    /// Fetch batch size: `batch_bytes`, or less so that every connection
    /// of every mailbox running at once fits in the in-flight budget.
    batch_bytes: u64,
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
    error: Option<String>,
}

/// The migrate command: copies everything not yet copied for every user.
pub async fn migrate(
    settings: Settings,
    users: Vec<UserJob>,
    events: Events,
    stop: StopFlag,
    dry_run: bool,
) -> Result<Outcome, StartError> {
    let _lock = checkpoint::lock(&settings.state_path)?;
    let db = Checkpoint::open(&settings.state_path)?;
    if !dry_run {
        db.claim_shard(settings.shard.map(|s| s.to_string()).as_deref())?;
    }
    let (recorder, recorder_thread) = Recorder::start(&settings.state_path)?;
    let source = match &settings.mbox {
        Some(path) => Source::Mbox(MboxSource::new(path.clone())),
        None => Source::Imap(imap_source(&settings)?),
    };
    let target = build_target(&settings.target)?;
    let exclude = exclude_set(&settings)?;
    let in_flight_kib = in_flight_capacity_kib(&settings) as usize;
    events.send(Event::RunStarted {
        users: users.len(),
        target: target.describe(),
    });
    let batch_bytes = plan::batch_bytes_within_budget(
        settings.run.batch_bytes,
        settings.run.max_in_flight_bytes,
        settings.run.parallel_users.min(users.len()),
        settings.run.connections_per_user,
    );
    let shared = Arc::new(Shared {
        batch_bytes,
        retry: RetryPolicy::new(settings.run.max_attempts),
        pace: PaceLimits::new(&settings.limits.pace),
        in_flight: Arc::new(Semaphore::new(in_flight_kib)),
        settings,
        source,
        target,
        db: Mutex::new(db),
        recorder: recorder.clone(),
        events: events.clone(),
        exclude,
        stop: stop.clone(),
        dry_run,
    });

    let parallel = shared.settings.run.parallel_users;
    let results: Vec<UserResult> = each_user(
        users,
        parallel,
        |user| {
            let shared = shared.clone();
            // Every log line of this mailbox carries its address.
            let span = tracing::info_span!("mailbox", user = %user.email);
            async move { sync_user(&shared, &user).await }.instrument(span)
        },
        |_, reason| UserResult {
            state: "failed",
            copied: 0,
            bytes: 0,
            failed: 0,
            error: Some(reason),
        },
    )
    .await;

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
        let error = copy_mailbox(shared, user, &mut stats).await.err().map(|e| e.message);
        let state = if error.is_some() { "failed" } else { "done" };
        if let Some(e) = &error {
            shared.events.send(Event::UserFinished {
                user: email.clone(),
                state: state.to_owned(),
                copied: 0,
                bytes: 0,
                failed: 0,
                error: Some(e.clone()),
            });
        }
        return UserResult {
            state,
            copied: 0,
            bytes: 0,
            failed: 0,
            error,
        };
    }
    let sync_id = match shared.db(|cp| {
        cp.set_user_state(&email, "syncing", None)?;
        cp.begin_sync(&email)
    }) {
        Ok(id) => id,
        Err(e) => {
            return finish(
                shared,
                None,
                user,
                UserResult {
                    state: "failed",
                    copied: 0,
                    bytes: 0,
                    failed: 0,
                    error: Some(e.message),
                },
            );
        }
    };
    let mut stats = UserStats::default();
    let result = copy_mailbox(shared, user, &mut stats).await;
    let flushed = shared.recorder.flush().await;
    let (state, error) = match (result, flushed) {
        (Err(e), _) | (Ok(()), Err(e)) => ("failed", Some(e.message)),
        (Ok(()), Ok(())) if shared.stop.stopped() && !stats.complete => (
            "interrupted",
            Some("stopped before the end; run migrate again to resume".to_owned()),
        ),
        (Ok(()), Ok(())) if stats.failed > 0 => (
            "partial",
            Some(format!(
                "{} messages failed; run migrate again to retry them",
                stats.failed
            )),
        ),
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
            error,
        },
    )
}

fn finish(shared: &Shared, sync_id: Option<i64>, user: &UserJob, r: UserResult) -> UserResult {
    if let Some(id) = sync_id {
        let _ = shared.db(|cp| cp.finish_sync(id, &user.email, r.state, r.copied, r.bytes, r.error.as_deref()));
    } else {
        let _ = shared.db(|cp| cp.set_user_state(&user.email, r.state, r.error.as_deref()));
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
        error: r.error.clone(),
    });
    r
}

#[derive(Default)]
struct UserStats {
    copied: u64,
    bytes: u64,
    failed: u64,
    /// Every planned batch was processed (not cut short by a stop).
    complete: bool,
}

/// Opens a source session, retrying transient failures.
/// Runs `op` until it succeeds, waiting between attempts as the retry
/// policy says (a throttling delay in full); gives up with the last error.
/// Runs `work` for every user of the users file, at most `parallel` at
/// once, each on a task of its own so a panic in one mailbox cannot take
/// the others down. Results come back in the users file's order; a task
/// that panicked yields `on_panic(email, reason)`.
pub async fn each_user<T, Fut>(
    users: Vec<UserJob>,
    parallel: usize,
    work: impl Fn(UserJob) -> Fut,
    on_panic: impl Fn(String, String) -> T,
) -> Vec<T>
where
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut results: Vec<(usize, T)> = futures::stream::iter(users.into_iter().enumerate())
        .map(|(i, user)| {
            let email = user.email.clone();
            let task = tokio::spawn(work(user));
            let on_panic = &on_panic;
            async move {
                let result = task
                    .await
                    .unwrap_or_else(|e| on_panic(email, format!("internal error: {e}")));
                (i, result)
            }
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

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
                match shared.retry.delay(attempt, &e) {
                    Some(d) => {
                        note_wait(shared, email, d, &e);
                        tokio::time::sleep(d).await;
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
    let host = shared.source.host_key(user);
    let slot = shared.pace.source_connection(&host, &user.email).await;
    let gate = shared.pace.user_gate(&user.email);
    let attempt = || async {
        gate.wait().await;
        shared.pace.before_login().await;
        shared.source.open(user).await
    };
    let session = if retry {
        with_retries(shared, &user.email, attempt).await
    } else {
        attempt().await
    }
    .map_err(|e| e.context("source"))?;
    Ok(Held::new(session, slot))
}

async fn open_target(shared: &Shared, user: &UserJob) -> Result<Box<dyn TargetSession>, Error> {
    with_retries(shared, &user.email, || shared.target.open(user)).await
}

/// Before a retry: logs the wait; when the server pushed back, holds back
/// every connection of the user for as long, and counts it for `status`.
fn note_wait(shared: &Shared, email: &str, delay: Duration, e: &Error) {
    tracing::info!(user = %email, delay_ms = delay.as_millis() as u64, "waiting before retry: {e}");
    if matches!(e.kind, ErrorKind::Throttled(_)) {
        tracing::warn!(user = %email, delay_ms = delay.as_millis() as u64, "the server asked to slow down: {e}");
        shared.pace.user_gate(email).push_delay(delay);
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

/// Scan: list folders, then fetch metadata of what is new in each one
/// (nothing at all for a folder whose UIDNEXT and message count did not
/// change), into the checkpoint.
async fn scan(
    shared: &Shared,
    user: &UserJob,
    session: &mut HeldSource,
) -> Result<Vec<(SourceFolder, FolderRow)>, Error> {
    let email = &user.email;
    let listed: Vec<SourceFolder> = session
        .folders()
        .await?
        .into_iter()
        .filter(|f| !shared.exclude.is_match(f.display()))
        .collect();
    let entries: Vec<(String, String, Option<crate::model::FolderRole>)> = listed
        .iter()
        .map(|f| (f.wire_name.clone(), f.display(), f.role))
        .collect();
    let rows = shared.db(|cp| cp.sync_folder_list(email, &entries))?;
    // Message-IDs before copying only where copies are matched by them: on
    // a label-based source without Gmail's message ids. Everywhere else the
    // scan stays in the server's index and each copy records the Message-ID
    // from the body it fetched.
    let label_keys_need_ids =
        labels::matched_by_message_id(listed.iter().map(|f| f.role), session.has_gmail_extensions());
    let by_wire: HashMap<&str, &FolderRow> = rows.iter().map(|r| (r.wire_name.as_str(), r)).collect();
    let mut out = Vec::new();
    for folder in listed {
        let row = (*by_wire
            .get(folder.wire_name.as_str())
            .ok_or_else(|| Error::fatal("folder vanished from the checkpoint"))?)
        .clone();
        let state = session.examine(&folder.wire_name).await?;
        let uid_next = state.uid_next.unwrap_or(0);
        let changed_validity = row.uid_validity != 0 && row.uid_validity != state.uid_validity;
        let unchanged = !changed_validity
            && row.uid_validity != 0
            && uid_next != 0
            && uid_next == row.uid_next
            && state.exists == row.exists;
        let mut new = 0;
        if !unchanged {
            let from = if changed_validity || row.uid_validity == 0 {
                1
            } else {
                row.max_uid + 1
            };
            // After a UIDVALIDITY change every message is re-matched to its
            // earlier copy by Message-ID.
            let depth = if changed_validity || label_keys_need_ids {
                ScanDepth::Headers
            } else {
                ScanDepth::Index
            };
            let metas = if state.exists == 0 {
                Vec::new()
            } else {
                session.scan(from, depth).await?
            };
            new = metas.len();
            if changed_validity {
                tracing::warn!(user = %email, folder = %folder.display(), "UIDVALIDITY changed; re-matching earlier copies by Message-ID and size");
            }
            let id = row.id;
            shared.db(|cp| cp.store_scan(id, state.uid_validity, uid_next, state.exists, &metas, changed_validity))?;
        }
        shared.events.send(Event::FolderScanned {
            user: email.clone(),
            folder: folder.display(),
            messages: state.exists,
            new,
        });
        let mut row = row;
        row.uid_validity = state.uid_validity;
        out.push((folder, row));
    }
    shared.db(|cp| cp.set_last_scan(email))?;
    Ok(out)
}

/// One item of a batch, with what the copy loop needs to know about it.
#[derive(Clone)]
struct Item {
    uid: u32,
    size: u64,
    flags: Flags,
    /// Labels to carry as categories / keywords (label-based sources).
    labels: Vec<String>,
    internal_date: i64,
    was_in_flight: bool,
}

struct Work {
    folder_id: i64,
    folder_display: String,
    wire_name: String,
    uid_validity: u32,
    target_ref: String,
    items: Vec<Item>,
    bytes: u64,
}

/// Labels to carry and whether the message is starred, per kept row.
type RowLabels = (Vec<String>, bool);

/// On a label-based source (Gmail, or any server with an All Mail folder),
/// keeps one row per message (or one per label folder in folders mode) and
/// records the others as duplicates or excluded (see `labels`); elsewhere
/// keeps every row. Returns the kept rows, their labels, and how many rows
/// were left out for each reason.
fn apply_label_rules(
    shared: &Shared,
    user: &UserJob,
    folders: &[(SourceFolder, FolderRow)],
    folder_index: &HashMap<i64, usize>,
    rows: Vec<checkpoint::MessageRow>,
    session: &SourceSession,
) -> (
    Vec<checkpoint::MessageRow>,
    Vec<RowLabels>,
    [(crate::model::SkipReason, u64); 2],
) {
    use crate::model::SkipReason;
    let mut counts = [(SkipReason::Duplicate, 0), (SkipReason::Excluded, 0)];
    if !labels::label_based(folders.iter().map(|(f, _)| f.role), session.has_gmail_extensions()) {
        let n = rows.len();
        return (rows, vec![(Vec::new(), false); n], counts);
    }
    let label_folders: Vec<labels::Folder> = folders
        .iter()
        .map(|(f, _)| labels::Folder {
            role: f.role,
            name: f.display(),
        })
        .collect();
    let copies: Vec<labels::Copy> = rows
        .iter()
        .map(|r| labels::Copy {
            folder: folder_index[&r.folder_id],
            key: labels::match_key(r.gm_msgid, r.message_id.as_deref(), r.size, r.internal_date),
            state: r.state,
        })
        .collect();
    let decisions = labels::decide(&label_folders, &copies, &shared.settings.labels);
    let mut kept = Vec::with_capacity(rows.len());
    let mut kept_labels = Vec::with_capacity(rows.len());
    for (r, d) in rows.into_iter().zip(decisions) {
        let reason = match d {
            labels::Decision::Copy { labels, flagged } => {
                kept.push(r);
                kept_labels.push((labels, flagged));
                continue;
            }
            labels::Decision::Duplicate => SkipReason::Duplicate,
            labels::Decision::Excluded => SkipReason::Excluded,
        };
        counts[usize::from(reason == SkipReason::Excluded)].1 += 1;
        // A copy made before (another mode, an earlier main folder) stays
        // recorded as copied; the rest is recorded once, without an event
        // per message (a Gmail mailbox has thousands).
        if !shared.dry_run && !matches!(r.state, State::Copied | State::Gone) && r.state != State::Skipped(reason) {
            shared.recorder.record(Record::Skipped {
                folder_id: r.folder_id,
                uid: r.uid,
                reason,
            });
        }
    }
    tracing::info!(
        user = %user.email,
        mode = ?shared.settings.labels.mode,
        duplicates = counts[0].1,
        excluded = counts[1].1,
        "label-based source: each message copied once per the label rules"
    );
    (kept, kept_labels, counts)
}

async fn copy_mailbox(shared: &Shared, user: &UserJob, stats: &mut UserStats) -> Result<(), Error> {
    let email = &user.email;
    let mut session = open_source(shared, user, true).await?;
    let folders = scan(shared, user, &mut session).await?;

    // Plan.
    let with_message_ids =
        labels::matched_by_message_id(folders.iter().map(|(f, _)| f.role), session.has_gmail_extensions());
    let rows = shared.db(|cp| cp.messages(email, with_message_ids))?;
    let folder_index: HashMap<i64, usize> = folders.iter().enumerate().map(|(i, (_, r))| (r.id, i)).collect();
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| folder_index.contains_key(&r.folder_id))
        .collect();
    let (rows, labels_of, label_skips) = apply_label_rules(shared, user, &folders, &folder_index, rows, &session);
    let candidates: Vec<Candidate> = rows
        .iter()
        .map(|r| Candidate {
            folder: folder_index[&r.folder_id],
            uid: r.uid,
            internal_date: r.internal_date,
            size: r.size,
            state: r.state,
        })
        .collect();
    let limits = plan::Limits {
        max_items: shared.settings.limits.max_items,
        max_message_bytes: shared.settings.limits.max_message_bytes,
    };
    let the_plan = plan::plan(&candidates, limits);
    if shared.dry_run {
        let mut skipped = std::collections::BTreeMap::new();
        for &(_, reason) in &the_plan.skip {
            *skipped.entry(reason.as_str().to_owned()).or_insert(0) += 1;
        }
        for (reason, n) in label_skips {
            if n > 0 {
                *skipped.entry(reason.as_str().to_owned()).or_insert(0) += n;
            }
        }
        shared.events.send(Event::WouldCopy {
            user: email.clone(),
            to_copy: the_plan.copy.len(),
            bytes: the_plan.copy.iter().map(|&i| rows[i].size).sum(),
            already_copied: the_plan.already_copied,
            skipped,
        });
        session.into_parts().0.logout().await;
        stats.complete = true;
        return Ok(());
    }
    let mut newly_skipped = 0;
    for &(i, reason) in &the_plan.skip {
        let r = &rows[i];
        if r.state != State::Skipped(reason) {
            newly_skipped += 1;
            shared.recorder.record(Record::Skipped {
                folder_id: r.folder_id,
                uid: r.uid,
                reason,
            });
            shared.events.send(Event::ItemSkipped {
                user: email.clone(),
                folder: folders[candidates[i].folder].0.display(),
                uid: r.uid,
                size: r.size,
                reason: reason.as_str().to_owned(),
            });
        }
    }
    if let Err(e) = read_missing_headers(shared, user, &folders, &mut session).await {
        tracing::warn!(user = %email, "could not read the Subject of skipped or failed messages for the report; the next run tries again: {e}");
        if session.conn_broken() {
            drop(session);
            session = open_source(shared, user, true).await?;
        }
    }
    let to_copy_bytes: u64 = the_plan.copy.iter().map(|&i| rows[i].size).sum();
    shared.events.send(Event::Planned {
        user: email.clone(),
        to_copy: the_plan.copy.len(),
        bytes: to_copy_bytes,
        skipped: newly_skipped,
        already_copied: the_plan.already_copied,
    });
    tracing::info!(user = %email, to_copy = the_plan.copy.len(), already = the_plan.already_copied, "planned");
    if the_plan.copy.is_empty() {
        session.into_parts().0.logout().await;
        stats.complete = true;
        return Ok(());
    }

    // Target folders, created once and remembered in the checkpoint.
    let mut target = open_target(shared, user).await?;
    let all_source: Vec<SourceFolder> = folders.iter().map(|(f, _)| f.clone()).collect();
    let mut target_refs: HashMap<usize, String> = HashMap::new();
    let mut needed: Vec<usize> = the_plan.copy.iter().map(|&i| candidates[i].folder).collect();
    needed.sort_unstable();
    needed.dedup();
    let mut refused_folders: HashMap<usize, String> = HashMap::new();
    for fi in needed {
        let (folder, row) = &folders[fi];
        let tf = transform::target_folder(folder, &all_source);
        match target.ensure_folder(&tf, row.target_ref.as_deref()).await {
            Ok(r) => {
                if row.target_ref.as_deref() != Some(r.as_str()) {
                    let id = row.id;
                    shared.db(|cp| cp.set_target_ref(id, &r))?;
                }
                target_refs.insert(fi, r);
            }
            Err(e) if e.kind == ErrorKind::Refused => {
                refused_folders.insert(fi, e.message);
            }
            Err(e) => return Err(e),
        }
    }

    let batches = plan::batches(
        &candidates,
        &the_plan.copy,
        shared.settings.run.batch_messages,
        shared.batch_bytes,
    );
    let mut queue = VecDeque::new();
    for b in batches {
        let (folder, row) = &folders[b.folder];
        if let Some(reason) = refused_folders.get(&b.folder) {
            for &i in &b.items {
                shared.recorder.record(Record::Skipped {
                    folder_id: row.id,
                    uid: rows[i].uid,
                    reason: crate::model::SkipReason::TargetRefused,
                });
                shared.events.send(Event::ItemSkipped {
                    user: email.clone(),
                    folder: folder.display(),
                    uid: rows[i].uid,
                    size: rows[i].size,
                    reason: reason.clone(),
                });
            }
            continue;
        }
        queue.push_back(Work {
            folder_id: row.id,
            folder_display: folder.display(),
            wire_name: folder.wire_name.clone(),
            uid_validity: row.uid_validity,
            target_ref: target_refs[&b.folder].clone(),
            bytes: b.bytes,
            items: b
                .items
                .iter()
                .map(|&i| {
                    let r = &rows[i];
                    let mut flags = Flags::from_wire(&r.flags);
                    let (labels, starred) = labels_of[i].clone();
                    if starred && !flags.flagged() {
                        flags.0.push("\\Flagged".to_owned());
                    }
                    Item {
                        uid: r.uid,
                        size: r.size,
                        flags,
                        labels,
                        internal_date: r.internal_date,
                        was_in_flight: r.state == State::InFlight,
                    }
                })
                .collect(),
        });
    }
    // The queue holds what the copy needs; the rest of the plan's inputs
    // would otherwise stay in memory, one row per message, until the end.
    drop((rows, candidates, labels_of, the_plan));
    let workers = shared.settings.run.connections_per_user.min(queue.len()).max(1);
    let queue = Arc::new(Mutex::new(Queue {
        batches: queue,
        workers,
    }));
    let mut tasks = Vec::new();
    let mut first = Some((session, target));
    for _ in 0..workers {
        let conns = first.take();
        tasks.push(worker(shared, user, queue.clone(), conns));
    }
    let results = futures::future::join_all(tasks).await;
    let mut fatal = None;
    for r in results {
        match r {
            Ok(w) => {
                stats.copied += w.copied;
                stats.bytes += w.bytes;
                stats.failed += w.failed;
            }
            Err(e) => fatal = fatal.or(Some(e)),
        }
    }
    stats.complete = queue.lock().map(|q| q.batches.is_empty()).unwrap_or(false);
    match fatal {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Most UIDs asked for in one header FETCH, so memory and command length
/// stay bounded however many messages a mailbox skips.
const HEADERS_PER_FETCH: usize = 2000;

/// Reads the Message-ID and Subject of the skipped and failed messages the
/// scan did not read headers of, so reports name them.
async fn read_missing_headers(
    shared: &Shared,
    user: &UserJob,
    folders: &[(SourceFolder, FolderRow)],
    session: &mut HeldSource,
) -> Result<(), Error> {
    shared.recorder.flush().await?;
    let missing = shared.db(|cp| cp.missing_headers(&user.email))?;
    if missing.is_empty() {
        return Ok(());
    }
    tracing::debug!(user = %user.email, messages = missing.len(), "reading headers of skipped and failed messages");
    for (folder, row) in folders {
        let uids: Vec<u32> = missing
            .iter()
            .filter(|(id, _)| *id == row.id)
            .map(|&(_, uid)| uid)
            .collect();
        if uids.is_empty() {
            continue;
        }
        let state = session.examine(&folder.wire_name).await?;
        if state.uid_validity != row.uid_validity {
            continue;
        }
        for chunk in uids.chunks(HEADERS_PER_FETCH) {
            let mut found: HashMap<u32, crate::model::Headers> =
                session.headers(chunk).await?.into_iter().map(|h| (h.uid, h)).collect();
            // A message gone from the source is recorded without a Subject
            // too, so it is not asked for on every run.
            for &uid in chunk {
                let headers = found.remove(&uid).unwrap_or(crate::model::Headers {
                    uid,
                    message_id: None,
                    subject: None,
                });
                shared.recorder.record(Record::Headers {
                    folder_id: row.id,
                    headers,
                });
            }
        }
    }
    shared.recorder.flush().await
}

#[derive(Default)]
struct WorkerStats {
    copied: u64,
    bytes: u64,
    failed: u64,
}

/// The batches of one mailbox, and how many workers still take them.
struct Queue {
    batches: VecDeque<Work>,
    workers: usize,
}

/// One connection pair working through the mailbox's batch queue. When the
/// server turns away this worker's connection (too many connections) while
/// other workers are still at it, this one hands its batch back and stops:
/// the mailbox goes on with the connections the server allows.
async fn worker(
    shared: &Shared,
    user: &UserJob,
    queue: Arc<Mutex<Queue>>,
    conns: Option<(HeldSource, Box<dyn TargetSession>)>,
) -> Result<WorkerStats, Error> {
    let (mut source, mut target) = match conns {
        Some((s, t)) => (Some(s), Some(t)),
        None => (None, None),
    };
    let mut stats = WorkerStats::default();
    let result = async {
        loop {
            if shared.stop.stopped() {
                return Ok(());
            }
            let next = {
                let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                let next = q.batches.pop_front();
                if next.is_none() {
                    q.workers -= 1;
                }
                next
            };
            let Some(work) = next else { return Ok(()) };
            if source.is_none() {
                match open_source(shared, user, false).await {
                    Ok(s) => source = Some(s),
                    Err(e) if matches!(e.kind, ErrorKind::Throttled(_)) => {
                        let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                        if q.workers > 1 {
                            q.workers -= 1;
                            q.batches.push_front(work);
                            let left = q.workers;
                            drop(q);
                            tracing::info!(user = %user.email, connections = left, "the source turned a connection away; going on with fewer: {e}");
                            record_throttle(shared, &user.email, &e);
                            return Ok(());
                        }
                    }
                    // The batch's own retries take it from here.
                    Err(_) => {}
                }
            }
            let span = tracing::info_span!("batch", folder = %work.folder_display);
            copy_batch(shared, user, &work, &mut source, &mut target, &mut stats)
                .instrument(span)
                .await?;
        }
    }
    .await;
    if let Some(s) = source {
        let (session, _slot) = s.into_parts();
        session.logout().await;
    }
    if let Some(t) = target {
        t.close().await;
    }
    result.map(|()| stats)
}

async fn copy_batch(
    shared: &Shared,
    user: &UserJob,
    work: &Work,
    source: &mut Option<HeldSource>,
    target: &mut Option<Box<dyn TargetSession>>,
    stats: &mut WorkerStats,
) -> Result<(), Error> {
    let email = &user.email;
    let want = u32::try_from(work.bytes.div_ceil(1024))
        .unwrap_or(u32::MAX)
        .clamp(1, in_flight_capacity_kib(&shared.settings));

    // In flight before upload, durably: if the run dies mid-batch, the next
    // run looks these up in the target instead of sending them twice.
    for item in &work.items {
        shared.recorder.record(Record::InFlight {
            folder_id: work.folder_id,
            uid: item.uid,
        });
    }
    shared.recorder.flush().await?;

    let mut remaining: Vec<Item> = work.items.clone();
    let mut attempt = 0;
    let gate = shared.pace.user_gate(email);
    while !remaining.is_empty() {
        let attempt_result = async {
            // After a push-back, every connection of the user waits it out.
            gate.wait().await;
            // The source connection (and its slots) comes before the memory
            // budget, so a worker waiting for a slot never holds bytes that
            // the workers holding slots need.
            if source.is_none() {
                *source = Some(open_source(shared, user, true).await?);
            }
            // Memory bound: the batch's bytes are reserved before they are
            // fetched (a single message larger than the whole budget takes
            // all of it), and only while this attempt runs.
            let _permit = shared
                .in_flight
                .acquire_many(want)
                .await
                .map_err(|_| Error::fatal("run is shutting down"))?;
            copy_items(shared, user, work, &mut remaining, source, target, stats).await
        }
        .await;
        match attempt_result {
            Ok(()) => break,
            Err(e) if e.kind == ErrorKind::Fatal => return Err(e),
            Err(e) => {
                // What is left may have reached the target before the
                // failure: look each one up before sending it again.
                for item in remaining.iter_mut() {
                    item.was_in_flight = true;
                }
                // Drop connections that failed; the next attempt reconnects
                // and resumes with what is left of the batch.
                if source.as_ref().is_some_and(|s| s.conn_broken()) || e.is_retryable() {
                    if let Some(s) = source.take() {
                        drop(s);
                    }
                    if let Some(t) = target.take() {
                        t.close().await;
                    }
                }
                attempt += 1;
                match shared.retry.delay(attempt, &e) {
                    Some(d) => {
                        note_wait(shared, email, d, &e);
                        tokio::time::sleep(d).await;
                    }
                    None => {
                        for item in remaining.drain(..) {
                            stats.failed += 1;
                            shared.recorder.record(Record::Failed {
                                folder_id: work.folder_id,
                                uid: item.uid,
                                reason: e.message.clone(),
                            });
                            shared.events.send(Event::ItemFailed {
                                user: email.clone(),
                                folder: work.folder_display.clone(),
                                uid: item.uid,
                                reason: e.message.clone(),
                            });
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// The in-flight byte budget in KiB, the unit of the semaphore.
fn in_flight_capacity_kib(settings: &Settings) -> u32 {
    (settings.run.max_in_flight_bytes / 1024).clamp(1024, u64::from(u32::MAX >> 4)) as u32
}

/// Fetches what is left of a batch and uploads it; on return with an error
/// `remaining` holds exactly the items not yet settled.
async fn copy_items(
    shared: &Shared,
    user: &UserJob,
    work: &Work,
    remaining: &mut Vec<Item>,
    source_slot: &mut Option<HeldSource>,
    target_slot: &mut Option<Box<dyn TargetSession>>,
    stats: &mut WorkerStats,
) -> Result<(), Error> {
    let email = &user.email;
    if source_slot.is_none() {
        *source_slot = Some(open_source(shared, user, true).await?);
    }
    if target_slot.is_none() {
        *target_slot = Some(open_target(shared, user).await?);
    }
    let source = source_slot.as_mut().expect("just opened");
    if source.examined() != Some(work.wire_name.as_str()) {
        let state = source.examine(&work.wire_name).await?;
        if state.uid_validity != work.uid_validity {
            // UIDs of this batch no longer mean the same messages; the next
            // run's scan re-matches them. Nothing here is failed or lost.
            tracing::warn!(user = %email, folder = %work.folder_display, "UIDVALIDITY changed during the run; these messages are left for the next run");
            remaining.clear();
            return Ok(());
        }
    }
    let uids: Vec<u32> = remaining.iter().map(|i| i.uid).collect();
    let fetch_bytes: u64 = remaining.iter().map(|i| i.size).sum();
    shared.pace.before_source_read(uids.len() as u64, fetch_bytes).await;
    tracing::debug!(user = %email, folder = %work.folder_display, messages = uids.len(), bytes = work.bytes, "fetching batch");
    let mut bodies: HashMap<u32, bytes::Bytes> = HashMap::with_capacity(uids.len());
    source
        .fetch_bodies(&uids, |uid, body| {
            bodies.insert(uid, body);
        })
        .await?;

    let target = target_slot.as_mut().expect("just opened");
    let mut batch_copied = 0u64;
    let mut batch_bytes = 0u64;
    let mut settled: std::collections::HashSet<u32> = std::collections::HashSet::new();
    let mut to_upload: Vec<(Upload, &Item)> = Vec::with_capacity(remaining.len());
    // Each outcome keeps its upload: the checkpoint learns the Message-ID
    // of each copy, and the Subject of each failure, from its body.
    let mut outcomes: Vec<(&Item, Upload, Result<String, Error>)> = Vec::new();
    for item in remaining.iter() {
        let Some(raw) = bodies.remove(&item.uid) else {
            // Deleted on the source since the scan.
            shared.recorder.record(Record::Gone {
                folder_id: work.folder_id,
                uid: item.uid,
            });
            settled.insert(item.uid);
            continue;
        };
        // The Message-ID comes from the body: rows scanned without headers
        // learn it here, and the checkpoint keeps it for re-matching.
        let message_id = crate::model::message_id_from_header(crate::model::header_block(&raw));
        let upload = Upload {
            raw,
            flags: item.flags.clone(),
            internal_date: item.internal_date,
            message_id,
            key: format!("{}/{}/{}/{}", email, work.wire_name, work.uid_validity, item.uid),
            labels: item.labels.clone(),
            source_size: item.size,
        };
        if item.was_in_flight {
            // It may already be there: a run died, or a connection failed,
            // after sending it.
            match target.find(&work.target_ref, &upload).await {
                Ok(Some(id)) => {
                    outcomes.push((item, upload, Ok(id)));
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    outcomes.push((item, upload, Err(e)));
                    break;
                }
            }
        }
        to_upload.push((upload, item));
    }
    let stopped_early = outcomes.last().is_some_and(|(_, _, r)| r.is_err());
    if !stopped_early && !to_upload.is_empty() {
        let uploads: Vec<Upload> = to_upload.iter().map(|(u, _)| u.clone()).collect();
        let upload_bytes: u64 = uploads.iter().map(|u| u.raw.len() as u64).sum();
        shared
            .pace
            .before_target_write(uploads.len() as u64, upload_bytes)
            .await;
        let results = target.upload_many(&work.target_ref, &uploads).await;
        for (r, (upload, item)) in results.into_iter().zip(to_upload) {
            outcomes.push((item, upload, r));
        }
    }
    let mut result = Ok(());
    for (item, upload, outcome) in outcomes {
        if matches!(&outcome, Err(e) if matches!(e.kind, ErrorKind::Item | ErrorKind::Refused)) {
            shared.recorder.record(Record::Headers {
                folder_id: work.folder_id,
                headers: crate::model::Headers {
                    uid: item.uid,
                    message_id: upload.message_id.clone(),
                    subject: crate::source::imap::subject_from_header(crate::model::header_block(&upload.raw)),
                },
            });
        }
        match outcome {
            Ok(id) => {
                tracing::trace!(user = %email, folder = %work.folder_display, uid = item.uid, target_id = %id, "copied");
                shared.recorder.record(Record::Copied {
                    folder_id: work.folder_id,
                    uid: item.uid,
                    target_id: id,
                    message_id: upload.message_id,
                });
                batch_copied += 1;
                batch_bytes += item.size;
            }
            Err(e) if e.kind == ErrorKind::Item => {
                stats.failed += 1;
                tracing::warn!(user = %email, folder = %work.folder_display, uid = item.uid, "message failed: {e}");
                shared.recorder.record(Record::Failed {
                    folder_id: work.folder_id,
                    uid: item.uid,
                    reason: e.message.clone(),
                });
                shared.events.send(Event::ItemFailed {
                    user: email.clone(),
                    folder: work.folder_display.clone(),
                    uid: item.uid,
                    reason: e.message,
                });
            }
            Err(e) if e.kind == ErrorKind::Refused => {
                shared.recorder.record(Record::Skipped {
                    folder_id: work.folder_id,
                    uid: item.uid,
                    reason: crate::model::SkipReason::TargetRefused,
                });
                shared.events.send(Event::ItemSkipped {
                    user: email.clone(),
                    folder: work.folder_display.clone(),
                    uid: item.uid,
                    size: item.size,
                    reason: e.message,
                });
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
        settled.insert(item.uid);
    }
    remaining.retain(|i| !settled.contains(&i.uid));
    stats.copied += batch_copied;
    stats.bytes += batch_bytes;
    if batch_copied > 0 {
        shared.events.send(Event::BatchCopied {
            user: email.clone(),
            folder: work.folder_display.clone(),
            messages: batch_copied,
            bytes: batch_bytes,
        });
    }
    result
}
