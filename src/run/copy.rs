//! The copy step of a mailbox: scan, decide the scope and record what it
//! leaves out, create the target folders, then queue the fetch batches for
//! one worker per connection pair ([`super::batch`]).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use crate::checkpoint::{FolderRow, Record};
use crate::error::{Error, ErrorKind};
use crate::event::Event;
use crate::labels;
use crate::model::{Flags, ScanDepth, SkipReason, SourceFolder};
use crate::plan::{self, Candidate, State};
use crate::roster::UserJob;
use crate::scope;
use crate::target::TargetSession;
use crate::transform::{self, Marks};

use super::batch::{Item, Queue, Work, WorkerStats, copy_batch, worker};
use super::settle::{Fate, Place, settle};
use super::{Shared, UserStats, open_source, open_target};

/// Before the copy, once per mailbox per run: the labels the mailbox's
/// messages carry in the target (categories mode; copies made before
/// included) are made known to it (Graph: added to Outlook's master
/// category list). Mail is copied whatever this gives, unless the target
/// says the user cannot go on.
async fn register_labels(shared: &Shared, user: &UserJob, the_scope: &scope::Scope) -> Result<(), Error> {
    let left_out: HashSet<usize> = the_scope.by_plan.iter().map(|&(i, _)| i).collect();
    let names: std::collections::BTreeSet<&String> = the_scope
        .labels
        .iter()
        .enumerate()
        .filter(|(i, _)| !left_out.contains(i))
        .flat_map(|(_, (labels, _))| labels)
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = names.into_iter().cloned().collect();
    match shared.run.target.register_labels(&user.target_login(), &names).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind == ErrorKind::Fatal => Err(e),
        Err(e) => {
            tracing::warn!(user = %user.email, "the labels could not be added to the target's category list; the messages carry them all the same, and the next run tries again: {e}");
            Ok(())
        }
    }
}

/// Scans, decides the scope and copies one mailbox.
pub(super) async fn copy_mailbox(shared: &Shared, user: &UserJob, stats: &mut UserStats) -> Result<(), Error> {
    let email = &user.email;
    let mut session = open_source(shared, user, true).await?;
    let folders = super::scan::scan(shared, user, &mut session, stats).await?;

    // The scope, over what the checkpoint knows of every folder in it.
    let x_gm_ext = session.has_gmail_extensions();
    let label_based = labels::label_based(folders.iter().map(|(f, _)| f.role), x_gm_ext);
    // Mail filed elsewhere since the last run: its copy moves with it.
    // (On a label-based source a message changes labels: its copy follows
    // them.)
    let held = if label_based {
        super::relabel::rehome(shared, user, &folders, stats).await?
    } else {
        super::moves::reconcile(shared, user, &folders, &mut session, stats).await?
    };
    let with_message_ids = labels::matched_by_message_id(folders.iter().map(|(f, _)| f.role), x_gm_ext);
    let rows = shared.db(|cp| cp.messages(email, with_message_ids))?;
    let folder_index: HashMap<i64, usize> = folders.iter().enumerate().map(|(i, (_, r))| (r.id, i)).collect();
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| folder_index.contains_key(&r.folder_id))
        .collect();
    let scope_folders: Vec<scope::Folder> = folders
        .iter()
        .map(|(f, _)| scope::Folder {
            role: f.role,
            name: f.display(),
        })
        .collect();
    let messages: Vec<scope::Message> = rows
        .iter()
        .map(|r| scope::Message {
            candidate: Candidate {
                folder: folder_index[&r.folder_id],
                uid: r.uid,
                internal_date: r.internal_date,
                size: r.size,
                state: r.state,
            },
            gm_msgid: r.gm_msgid,
            message_id: r.message_id.as_deref(),
        })
        .collect();
    let mut the_scope = scope::decide(&shared.run.scope, &scope_folders, label_based, &messages);
    // Their earlier copy is to be moved to them: not copied again now.
    the_scope
        .copy
        .retain(|&i| !held.contains(&(rows[i].folder_id, rows[i].uid)));
    let candidates: Vec<Candidate> = messages.iter().map(|m| m.candidate).collect();
    drop(messages);
    // Records message `i` as left out for `reason`; `announce` also tells
    // the progress view, with that text.
    let skip = |i: usize, reason: SkipReason, announce: Option<String>| {
        let (folder, row) = &folders[candidates[i].folder];
        let display = folder.display();
        let place = Place {
            user: email,
            folder_id: row.id,
            folder: &display,
        };
        let size = candidates[i].size;
        settle(
            shared,
            place,
            candidates[i].uid,
            Fate::Skipped { reason, size, announce },
        );
    };

    if label_based {
        // A copy made before (another mode, an earlier main folder) stays
        // recorded as copied; the rest is recorded once, without an event
        // per message (a Gmail mailbox has thousands).
        for &(i, reason) in &the_scope.by_labels {
            let state = candidates[i].state;
            if !shared.dry_run && !matches!(state, State::Copied | State::Gone) && state != State::Skipped(reason) {
                skip(i, reason, None);
            }
        }
        tracing::info!(
            user = %user.email,
            mode = ?shared.run.scope.labels.mode,
            duplicates = the_scope.label_skips(SkipReason::Duplicate),
            excluded = the_scope.label_skips(SkipReason::Excluded),
            "label-based source: each message copied once per the label rules"
        );
    }
    if shared.dry_run {
        let mut skipped = BTreeMap::new();
        for (_, reason) in the_scope.skipped() {
            *skipped.entry(reason.as_str().to_owned()).or_insert(0) += 1;
        }
        shared.events.send(Event::WouldCopy {
            user: email.clone(),
            to_copy: the_scope.copy.len(),
            bytes: the_scope.copy.iter().map(|&i| candidates[i].size).sum(),
            already_copied: the_scope.already_copied,
            skipped,
        });
        super::release_source(session).await;
        stats.complete = true;
        return Ok(());
    }
    if label_based {
        register_labels(shared, user, &the_scope).await?;
    }
    let mut newly_skipped = 0;
    for &(i, reason) in &the_scope.by_plan {
        if candidates[i].state != State::Skipped(reason) {
            newly_skipped += 1;
            skip(i, reason, Some(reason.as_str().to_owned()));
        }
    }
    if let Err(e) = super::scan::read_missing_headers(shared, user, &folders, &mut session).await {
        tracing::warn!(user = %email, "could not read the Subject of skipped or failed messages for the report; the next run tries again: {e}");
        if session.conn_broken() {
            super::release_source(session).await;
            session = open_source(shared, user, true).await?;
        }
    }
    let to_copy_bytes: u64 = the_scope.copy.iter().map(|&i| candidates[i].size).sum();
    shared.events.send(Event::Planned {
        user: email.clone(),
        to_copy: the_scope.copy.len(),
        bytes: to_copy_bytes,
        skipped: newly_skipped,
        already_copied: the_scope.already_copied,
    });
    tracing::info!(user = %email, to_copy = the_scope.copy.len(), already = the_scope.already_copied, "planned");
    if the_scope.copy.is_empty() {
        super::release_source(session).await;
        stats.complete = true;
        sync_flags(shared, user, label_based, stats).await?;
        return super::deletions::mirror(shared, user, label_based, stats).await;
    }

    let mut target = open_target(shared, user).await?;
    let (target_refs, refused_folders) = target_folders(
        shared,
        target.as_mut(),
        &folders,
        the_scope.copy.iter().map(|&i| candidates[i].folder),
    )
    .await?;

    let batches = plan::batches(
        &candidates,
        &the_scope.copy,
        shared.run.copy.batch_messages,
        shared.run.copy.batch_bytes,
    );
    let mut queue = VecDeque::new();
    for b in batches {
        let (folder, row) = &folders[b.folder];
        if let Some(reason) = refused_folders.get(&b.folder) {
            // The rest of the mailbox goes on; these fail, and are tried
            // again on every run until the target takes the folder.
            let display = folder.display();
            for &i in &b.items {
                stats.failed += 1;
                let place = Place {
                    user: email,
                    folder_id: row.id,
                    folder: &display,
                };
                let reason = reason.clone();
                settle(shared, place, candidates[i].uid, Fate::Failed { reason });
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
                    let (labels, starred) = std::mem::take(&mut the_scope.labels[i]);
                    Item {
                        uid: r.uid,
                        size: r.size,
                        marks: Marks {
                            flags: Flags::from_wire(&r.flags),
                            starred,
                            labels,
                        },
                        internal_date: r.internal_date,
                        // A failure may come after the target stored the
                        // message (its answer lost, the retries spent).
                        may_be_in_target: matches!(r.state, State::InFlight | State::Failed),
                    }
                })
                .collect(),
        });
    }
    if label_based {
        super::relabel::note_labels(shared, &queue)?;
    }
    // The queue holds what the copy needs; the rest of the scope's inputs
    // would otherwise stay in memory, one row per message, until the end.
    drop((rows, candidates, the_scope));
    let workers = shared.run.copy.connections_per_user.min(queue.len()).max(1);
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
    let mut unstable: HashSet<i64> = HashSet::new();
    for r in results {
        match r {
            Ok(w) => {
                stats.copied += w.copied;
                stats.bytes += w.bytes;
                stats.failed += w.failed;
                unstable.extend(w.unstable);
            }
            Err(e) => fatal = fatal.or(Some(e)),
        }
    }
    stats.complete = queue.lock().map(|q| q.batches.is_empty()).unwrap_or(false);
    if let Some(e) = fatal {
        return Err(e);
    }
    for (fi, (folder, row)) in folders.iter().enumerate() {
        if !unstable.contains(&row.id) || shared.stop.stopped() {
            continue;
        }
        let Some(target_ref) = target_refs.get(&fi) else {
            continue;
        };
        copy_in_one_session(shared, user, folder, row, target_ref, stats).await?;
    }
    if shared.stop.stopped() {
        return Ok(());
    }
    sync_flags(shared, user, label_based, stats).await?;
    super::deletions::mirror(shared, user, label_based, stats).await
}

/// Writes the flags changed on the source since the last run to the copies
/// made before (read, flagged, answered, keywords): the source wins, also
/// over a change made in the target, which `cutover verify` marks for
/// rewriting when it finds a copy's flags differ. Only
/// where the target can change a copy in place; a label-based source's
/// marks (labels, starred) come from the label rules, so its copies are
/// synced with them by [`super::relabel::sync`]. A copy the target cannot
/// update is counted and tried again on the next run, which the user's
/// state says.
async fn sync_flags(shared: &Shared, user: &UserJob, label_based: bool, stats: &mut UserStats) -> Result<(), Error> {
    if label_based {
        // Labels, star and flags together: the copy's marks replace all.
        return super::relabel::sync(shared, user, stats).await;
    }
    if !shared.run.target.capabilities().update_flags {
        return Ok(());
    }
    let email = &user.email;
    shared.recorder.flush().await?;
    let changes = shared.db(|cp| cp.flag_changes(email))?;
    if changes.is_empty() {
        return Ok(());
    }
    let refs: HashMap<i64, String> = shared
        .db(|cp| cp.folders(email))?
        .into_iter()
        .filter_map(|r| Some((r.id, r.target_ref?)))
        .collect();
    tracing::info!(user = %email, messages = changes.len(), "writing flag changes to earlier copies");
    let mut target = open_target(shared, user).await?;
    let mut failed = 0u64;
    for change in changes {
        if shared.stop.stopped() {
            break;
        }
        let Some(folder) = refs.get(&change.folder_id) else {
            continue;
        };
        match target.update_flags(folder, &change.target_id, &change.flags, &[]).await {
            Ok(target_id) => {
                stats.flags_updated += 1;
                shared.recorder.record(Record::FlagsWritten {
                    folder_id: change.folder_id,
                    uid: change.uid,
                    flags: change.flags.to_wire(),
                    target_id,
                });
            }
            Err(e) if e.kind == ErrorKind::Fatal => return Err(e),
            Err(e) => {
                failed += 1;
                tracing::warn!(user = %email, uid = change.uid, "could not write a flag change to the copy: {e}");
                if e.is_retryable() {
                    // The session is in doubt: the rest waits for the next run.
                    break;
                }
            }
        }
    }
    target.close().await;
    if failed > 0 {
        stats.left_behind.push((
            failed,
            format!("{failed} flag changes could not be written to their copies; run migrate again to retry them"),
        ));
    }
    Ok(())
}

/// Copies what is left of a folder whose UIDVALIDITY changed between
/// sessions of one run (Courier, for a folder no client has opened
/// read-write, makes one up in every session): one session examines it,
/// reads its messages with their Message-IDs, re-matches the copies made
/// so far by Message-ID, size and date, and copies the rest without
/// opening the folder again. What even that cannot reach (the connection
/// failed and the next session saw yet another UIDVALIDITY) is left for
/// the next run, and the user ends partial, saying so.
async fn copy_in_one_session(
    shared: &Shared,
    user: &UserJob,
    folder: &SourceFolder,
    row: &FolderRow,
    target_ref: &str,
    stats: &mut UserStats,
) -> Result<(), Error> {
    let email = &user.email;
    tracing::info!(user = %email, folder = %folder.display(), "copying a folder with an unstable UIDVALIDITY in one session");
    let mut source = Some(open_source(shared, user, true).await?);
    let session = source.as_mut().expect("just opened");
    let state = session.examine(&folder.wire_name).await?;
    let metas = if state.exists == 0 {
        Vec::new()
    } else {
        session.scan(1, ScanDepth::Headers).await?
    };
    let (id, uid_next) = (row.id, state.uid_next.unwrap_or(0));
    shared.db(|cp| cp.store_scan(id, state.uid_validity, uid_next, state.exists, &metas, true))?;
    drop(metas);
    let items: Vec<Item> = shared
        .db(|cp| cp.messages(email, false))?
        .into_iter()
        .filter(|r| r.folder_id == row.id && matches!(r.state, State::Pending | State::InFlight | State::Failed))
        .map(|r| Item {
            uid: r.uid,
            size: r.size,
            marks: Marks {
                flags: Flags::from_wire(&r.flags),
                starred: false,
                labels: Vec::new(),
            },
            internal_date: r.internal_date,
            may_be_in_target: matches!(r.state, State::InFlight | State::Failed),
        })
        .collect();
    let mut target = Some(open_target(shared, user).await?);
    let mut worker_stats = WorkerStats::default();
    let mut left = 0u64;
    // Cut into batches as the planner cuts the parallel copy's.
    let candidates: Vec<Candidate> = items
        .iter()
        .map(|i| Candidate {
            folder: 0,
            uid: i.uid,
            internal_date: i.internal_date,
            size: i.size,
            state: State::Pending,
        })
        .collect();
    let all: Vec<usize> = (0..items.len()).collect();
    let cut = plan::batches(
        &candidates,
        &all,
        shared.run.copy.batch_messages,
        shared.run.copy.batch_bytes,
    );
    for b in cut {
        let batch: Vec<Item> = b.items.iter().map(|&i| items[i].clone()).collect();
        if shared.stop.stopped() || worker_stats.unstable.contains(&row.id) {
            left += batch.len() as u64;
            continue;
        }
        let work = Work {
            folder_id: row.id,
            folder_display: folder.display(),
            wire_name: folder.wire_name.clone(),
            uid_validity: state.uid_validity,
            target_ref: target_ref.to_owned(),
            items: batch,
            bytes: b.bytes,
        };
        copy_batch(shared, user, &work, &mut source, &mut target, &mut worker_stats).await?;
        if worker_stats.unstable.contains(&row.id) {
            left += work.items.len() as u64;
        }
    }
    stats.copied += worker_stats.copied;
    stats.bytes += worker_stats.bytes;
    stats.failed += worker_stats.failed;
    if let Some(s) = source {
        super::release_source(s).await;
    }
    if let Some(t) = target {
        t.close().await;
    }
    if left > 0 && !shared.stop.stopped() {
        let reason = format!(
            "{left} messages of folder {} were left for the next run: the source gives the folder a new UIDVALIDITY in every session (Courier does this for a folder no client has opened read-write) and the session reading it was lost; run migrate again, or open the folder once in a mail client to make its UIDs stable",
            folder.display()
        );
        tracing::warn!(user = %email, "{reason}");
        stats.left_behind.push((left, reason));
    }
    Ok(())
}

/// Target folder references by folder index, created once and remembered
/// in the checkpoint, and the folders the target refused with its reason.
type TargetFolders = (HashMap<usize, String>, HashMap<usize, String>);

/// Makes sure the target folders of the `needed` source folders exist.
async fn target_folders(
    shared: &Shared,
    target: &mut dyn TargetSession,
    folders: &[(SourceFolder, FolderRow)],
    needed: impl Iterator<Item = usize>,
) -> Result<TargetFolders, Error> {
    let all_source: Vec<SourceFolder> = folders.iter().map(|(f, _)| f.clone()).collect();
    let mut needed: Vec<usize> = needed.collect();
    needed.sort_unstable();
    needed.dedup();
    let mut refs = HashMap::new();
    let mut refused = HashMap::new();
    for fi in needed {
        let (folder, row) = &folders[fi];
        let tf = transform::target_folder(folder, &all_source);
        match target.ensure_folder(&tf, row.target_ref.as_deref()).await {
            Ok(r) => {
                if row.target_ref.as_deref() != Some(r.as_str()) {
                    let id = row.id;
                    shared.db(|cp| cp.set_target_ref(id, &r))?;
                }
                refs.insert(fi, r);
            }
            Err(e) if e.kind == ErrorKind::Refused => {
                refused.insert(fi, e.message);
            }
            Err(e) => return Err(e),
        }
    }
    Ok((refs, refused))
}
