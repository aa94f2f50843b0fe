//! One mailbox's batch queue at work: each worker holds a source and a
//! target connection and takes fetch batches off the queue: reserve the
//! batch's bytes, fetch, transform, upload, and settle each message. A
//! batch that fails part-way resumes with what is left of it, looking up
//! in the target what may already be there.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use tracing::Instrument;

use crate::checkpoint::Record;
use crate::error::{Error, ErrorKind};
use crate::event::Event;
use crate::model::{MessageKey, Upload};
use crate::roster::UserJob;
use crate::target::TargetSession;
use crate::transform::{self, Marks};
use crate::wait::WaitOn;

use super::settle::{Fate, Place, settle};
use super::{HeldSource, Shared, open_source, open_target};

/// One item of a batch, with what the copy loop needs to know about it.
#[derive(Clone)]
pub(super) struct Item {
    pub uid: u32,
    pub size: u64,
    pub marks: Marks,
    pub internal_date: i64,
    /// An earlier attempt may have stored it (it was in flight, or failed
    /// after being sent): looked up in the target before it is sent.
    pub may_be_in_target: bool,
}

pub(super) struct Work {
    pub folder_id: i64,
    pub folder_display: String,
    pub wire_name: String,
    pub uid_validity: u32,
    pub target_ref: String,
    pub items: Vec<Item>,
    pub bytes: u64,
}

impl Work {
    fn place<'a>(&'a self, user: &'a str) -> Place<'a> {
        Place {
            user,
            folder_id: self.folder_id,
            folder: &self.folder_display,
        }
    }
}

#[derive(Default)]
pub(super) struct WorkerStats {
    pub copied: u64,
    pub bytes: u64,
    pub failed: u64,
    /// Folders whose UIDVALIDITY this worker's session saw differ from the
    /// scan's: their UIDs mean other messages here, so their batches were
    /// set aside for a copy in one session ([`super::copy`]).
    pub unstable: HashSet<i64>,
}

/// The batches of one mailbox, and how many workers still take them.
pub(super) struct Queue {
    pub batches: VecDeque<Work>,
    pub workers: usize,
}

/// One connection pair working through the mailbox's batch queue. When the
/// server turns away this worker's connection (too many connections) while
/// other workers are still at it, this one hands its batch back and stops:
/// the mailbox goes on with the connections the server allows.
pub(super) async fn worker(
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
                            super::record_throttle(shared, &user.email, &e);
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
            if stats.unstable.contains(&work.folder_id) {
                // The folder's other batches would meet the same: they go
                // with it to the copy in one session.
                let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                q.batches.retain(|w| w.folder_id != work.folder_id);
            }
        }
    }
    .await;
    if let Some(s) = source {
        super::release_source(s).await;
    }
    if let Some(t) = target {
        t.close().await;
    }
    result.map(|()| stats)
}

pub(super) async fn copy_batch(
    shared: &Shared,
    user: &UserJob,
    work: &Work,
    source: &mut Option<HeldSource>,
    target: &mut Option<Box<dyn TargetSession>>,
    stats: &mut WorkerStats,
) -> Result<(), Error> {
    let email = &user.email;
    // In flight before upload, durably: if the run dies mid-batch, the next
    // run looks these up in the target instead of sending them twice.
    for item in &work.items {
        settle(shared, work.place(email), item.uid, Fate::InFlight);
    }
    shared.recorder.flush().await?;

    let mut remaining: Vec<Item> = work.items.clone();
    let mut attempt = 0;
    let gate = shared.run.copy.pace.user_gate(email);
    while !remaining.is_empty() {
        let attempt_result = async {
            // After a push-back, every connection of the user waits it out.
            let waits = &shared.run.copy.waits;
            waits
                .wait_until(email, WaitOn::Throttled, gate.opens_at(), gate.wait())
                .await;
            // The source connection (and its slots) comes before the memory
            // budget, so a worker waiting for a slot never holds bytes that
            // the workers holding slots need.
            if source.is_none() {
                *source = Some(open_source(shared, user, true).await?);
            }
            // Memory bound: the batch's bytes are reserved before they are
            // fetched, and only while this attempt runs.
            let _reserved = waits
                .wait(
                    email,
                    WaitOn::InFlightBytes,
                    shared.run.copy.in_flight.reserve(work.bytes),
                )
                .await?;
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
                    item.may_be_in_target = true;
                }
                // Drop connections that failed; the next attempt reconnects
                // and resumes with what is left of the batch.
                if source.as_ref().is_some_and(|s| s.conn_broken()) || e.is_retryable() {
                    if let Some(s) = source.take() {
                        super::release_source(s).await;
                    }
                    if let Some(t) = target.take() {
                        t.close().await;
                    }
                }
                attempt += 1;
                match shared.run.copy.retry.delay(attempt, &e) {
                    Some(d) => {
                        super::note_wait(shared, email, d, &e);
                        tokio::time::sleep(d).await;
                    }
                    None => {
                        for item in remaining.drain(..) {
                            stats.failed += 1;
                            let fate = Fate::Failed {
                                reason: e.message.clone(),
                            };
                            settle(shared, work.place(email), item.uid, fate);
                        }
                    }
                }
            }
        }
    }
    Ok(())
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
            // UIDs of this batch no longer mean the same messages in this
            // session (Courier makes up a new UIDVALIDITY in every session
            // for a folder no client has opened read-write). The folder is
            // copied again in one session, re-matched by Message-ID; until
            // then these stay in flight, so nothing is sent twice.
            tracing::info!(user = %email, folder = %work.folder_display, "the folder's UIDVALIDITY differs in this session; it is copied in one session instead");
            stats.unstable.insert(work.folder_id);
            remaining.clear();
            return Ok(());
        }
    }
    let uids: Vec<u32> = remaining.iter().map(|i| i.uid).collect();
    let fetch_bytes: u64 = remaining.iter().map(|i| i.size).sum();
    let pace = &shared.run.copy.pace;
    let read = pace.before_source_read(uids.len() as u64, fetch_bytes);
    shared.run.copy.waits.wait(email, WaitOn::SourceRate, read).await;
    tracing::debug!(user = %email, folder = %work.folder_display, messages = uids.len(), bytes = work.bytes, "fetching batch");
    let mut bodies: HashMap<u32, bytes::Bytes> = HashMap::with_capacity(uids.len());
    source
        .fetch_bodies(
            &uids,
            fetch_bytes.saturating_mul(2).saturating_add(1 << 20),
            |uid, body| {
                bodies.insert(uid, body);
            },
        )
        .await?;

    // A message missing from the answer is gone only if the folder no
    // longer has it; one the server still lists but did not send, or sent
    // empty (BODY[] NIL), fails and is tried again on the next run.
    let missing: Vec<u32> = remaining
        .iter()
        .filter(|i| !bodies.contains_key(&i.uid))
        .map(|i| i.uid)
        .collect();
    let still_there: HashSet<u32> = if missing.is_empty() {
        HashSet::new()
    } else {
        source.present(&missing).await?.into_iter().collect()
    };
    let mut settled: HashSet<u32> = HashSet::new();
    for item in remaining.iter() {
        let fate = match bodies.get(&item.uid) {
            None if still_there.contains(&item.uid) => Fate::Failed {
                reason: format!(
                    "the source did not send message UID {} although it still lists it; run again to retry it",
                    item.uid
                ),
            },
            None => Fate::Gone,
            Some(raw) if raw.is_empty() => Fate::Failed {
                reason: format!(
                    "the source sent an empty body for message UID {} (listed at {} bytes); run again to retry it, or check the message on the source",
                    item.uid, item.size
                ),
            },
            Some(_) => continue,
        };
        if matches!(fate, Fate::Failed { .. }) {
            stats.failed += 1;
            tracing::warn!(user = %email, folder = %work.folder_display, uid = item.uid, "message failed: the source did not send its body");
        }
        bodies.remove(&item.uid);
        settle(shared, work.place(email), item.uid, fate);
        settled.insert(item.uid);
    }

    // Mailboxes are waiting for a connection to the source host: this one
    // has its batch and needs the source no more until the next, so it
    // gives its connection back instead of holding it idle while the
    // target takes the batch (which, paced, takes far longer than the
    // fetch). With more mailboxes at once than the host has connections
    // for, they take turns at the source rather than half of them idling
    // until the other half finished.
    let host = shared.run.source.host_key(&user.source_login());
    if shared.run.copy.pace.source_host_contended(&host)
        && let Some(held) = source_slot.take()
    {
        super::release_source(held).await;
    }
    let target = target_slot.as_mut().expect("just opened");
    let mut to_upload: Vec<(Upload, &Item)> = Vec::with_capacity(remaining.len());
    // Each outcome keeps its upload: the checkpoint learns the Message-ID
    // of each copy, and the Subject of each failure, from its body.
    let mut outcomes: Vec<(&Item, Upload, Result<String, Error>)> = Vec::new();
    for item in remaining.iter() {
        let Some(raw) = bodies.remove(&item.uid) else {
            continue; // settled above
        };
        let key = MessageKey {
            user: email.clone(),
            folder: work.wire_name.clone(),
            uid_validity: work.uid_validity,
            uid: item.uid,
        };
        let upload = transform::upload(raw, key, item.marks.clone(), item.internal_date, item.size);
        if item.may_be_in_target {
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
    let mut conversions: HashMap<u32, String> = HashMap::new();
    if !stopped_early && !to_upload.is_empty() {
        let uploads: Vec<Upload> = to_upload.iter().map(|(u, _)| u.clone()).collect();
        let upload_bytes: u64 = uploads.iter().map(|u| u.raw.len() as u64).sum();
        let write = shared
            .run
            .copy
            .pace
            .before_target_write(uploads.len() as u64, upload_bytes);
        shared.run.copy.waits.wait(email, WaitOn::TargetBudget, write).await;
        let mut results = target.upload_many(&work.target_ref, &uploads).await.into_iter();
        for (key, note) in target.take_conversions() {
            conversions.insert(key.uid, note);
        }
        // Every upload ends in an outcome: one the target left unanswered
        // (the connection failed) may or may not be stored, so it is tried
        // again, looked up first.
        for (upload, item) in to_upload {
            let r = results.next().unwrap_or_else(|| {
                Err(Error::transient(
                    "the target did not answer this upload (the connection failed); trying again",
                ))
            });
            outcomes.push((item, upload, r));
        }
    }
    let (mut batch_copied, mut batch_bytes) = (0u64, 0u64);
    let mut result = Ok(());
    for (item, upload, outcome) in outcomes {
        if matches!(&outcome, Err(e) if matches!(e.kind, ErrorKind::Item | ErrorKind::Refused)) {
            shared.recorder.record(Record::Headers {
                folder_id: work.folder_id,
                headers: transform::report_headers(&upload, item.uid),
            });
        }
        let fate = match outcome {
            Ok(target_id) => {
                batch_copied += 1;
                batch_bytes += item.size;
                Fate::Copied {
                    target_id,
                    content_key: upload
                        .message_id
                        .is_none()
                        .then(|| crate::headers::content_key(&upload.raw)),
                    message_id: upload.message_id,
                    converted: conversions.remove(&item.uid),
                }
            }
            // A refusal (over the target's size limit) can change with the
            // target's settings: a failure, tried again on every run.
            Err(e) if matches!(e.kind, ErrorKind::Item | ErrorKind::Refused) => {
                stats.failed += 1;
                tracing::warn!(user = %email, folder = %work.folder_display, uid = item.uid, "message failed: {e}");
                Fate::Failed { reason: e.message }
            }
            // Not settled: tried again, looked up first. Those after it
            // are settled all the same (a target writing several at once
            // answers each of them).
            Err(e) => {
                if result.is_ok() || e.kind == ErrorKind::Fatal {
                    result = Err(e);
                }
                continue;
            }
        };
        settle(shared, work.place(email), item.uid, fate);
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
