//! Labels changed on a label-based source (Gmail) since the last run. In
//! Gmail a label is a folder: a label added shows the message in one more
//! folder (a new UID there), a label removed takes it out of that folder
//! (the scan records that UID as gone), and the message stays in All Mail
//! throughout. So the scan already sees every label change as folder
//! membership, index-only, and this module makes the copies follow (the
//! decisions are pure, in [`crate::labels`]):
//!
//! - before the scope is decided ([`rehome`]), a copy whose message left
//!   its folder is moved in the target to where the rules want the message
//!   now (categories mode: its new main folder; folders mode: the label
//!   added, or Archive), no body fetched, instead of the message being
//!   copied again;
//! - after the copy ([`sync`]), each copy the rules want is given the
//!   source's marks where they changed: flags, star and, in categories
//!   mode, its labels as categories or keywords (`TargetSession::
//!   update_flags`, which replaces them all); and a copy the rules no longer
//!   want (the label's folder in folders mode, the Archive copy of archived
//!   mail labelled since) is removed from the target, but only while
//!   another copy of its message is there.
//!
//! The labels written to each copy are recorded (`written_labels`, set
//! before the upload, kept when the copy is moved), so a resync with no
//! change writes nothing.

use std::collections::{HashMap, HashSet};

use crate::checkpoint::{CopyMarks, FolderRow, MessageRow, Record};
use crate::error::{Error, ErrorKind};
use crate::labels::{self, Decision, MarksChange};
use crate::model::{Flags, SourceFolder};
use crate::plan::State;
use crate::roster::UserJob;
use crate::transform;

use super::batch::Work;
use super::{Shared, UserStats, open_target};

/// A label-based mailbox as the checkpoint knows it, in the label rules'
/// terms: `copies[i]`, `held[i]` and `rows[i]` are one message row.
struct View {
    folder_rows: Vec<FolderRow>,
    folders: Vec<labels::Folder>,
    rows: Vec<MessageRow>,
    copies: Vec<labels::Copy>,
    /// Whether the target holds a copy for the row (copied, or gone with
    /// its copy kept).
    held: Vec<bool>,
    marks: HashMap<(i64, u32), CopyMarks>,
}

impl View {
    fn read(shared: &Shared, email: &str) -> Result<View, Error> {
        let (folder_rows, rows, marks) = shared.db(|cp| {
            let folder_rows = cp.folders(email)?;
            // Message-IDs only where copies are matched by them (no
            // X-GM-MSGID): half a million of them would weigh for nothing.
            let mut rows = cp.messages(email, false)?;
            if rows.iter().any(|r| r.gm_msgid.is_none()) {
                rows = cp.messages(email, true)?;
            }
            Ok((folder_rows, rows, cp.copy_marks(email)?))
        })?;
        let index: HashMap<i64, usize> = folder_rows.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        let rows: Vec<MessageRow> = rows.into_iter().filter(|r| index.contains_key(&r.folder_id)).collect();
        let folders = folder_rows
            .iter()
            .map(|r| labels::Folder {
                role: r.role,
                name: r.path.clone(),
            })
            .collect();
        let copies = rows
            .iter()
            .map(|r| labels::Copy {
                folder: index[&r.folder_id],
                key: labels::match_key(r.gm_msgid, r.message_id.as_deref(), r.size, r.internal_date),
                state: r.state,
            })
            .collect();
        let held = rows.iter().map(|r| marks.contains_key(&(r.folder_id, r.uid))).collect();
        Ok(View {
            folder_rows,
            folders,
            rows,
            copies,
            held,
            marks,
        })
    }

    fn target_ref(&self, folder_id: i64) -> Option<&str> {
        self.folder_rows
            .iter()
            .find(|r| r.id == folder_id)
            .and_then(|r| r.target_ref.as_deref())
    }
}

/// Moves the copies whose message left their folder (a label removed, the
/// message taken out of the Inbox) to where the label rules want the
/// message now, before the scope is decided: the rows they move to are
/// copied, not uploaded again. Returns the rows held back from this run's
/// copy: a move failed for a reason that may pass, so the next run tries
/// it again first rather than making a second copy. A copy that is not
/// where it was recorded is left to the usual copy (and removed later by
/// [`sync`] if it turns up).
pub(super) async fn rehome(
    shared: &Shared,
    user: &UserJob,
    folders: &[(SourceFolder, FolderRow)],
    stats: &mut UserStats,
) -> Result<HashSet<(i64, u32)>, Error> {
    let mut held_back = HashSet::new();
    if shared.dry_run || !shared.run.target.capabilities().move_messages {
        return Ok(held_back);
    }
    let email = &user.email;
    shared.recorder.flush().await?;
    if shared.db(|cp| cp.kept_copies(email))?.is_empty() {
        return Ok(held_back);
    }
    let view = View::read(shared, email)?;
    let pairs = labels::rehome(&view.folders, &view.copies, &view.held, &shared.run.scope.labels);
    if pairs.is_empty() {
        return Ok(held_back);
    }
    let all_source: Vec<SourceFolder> = folders.iter().map(|(f, _)| f.clone()).collect();
    let by_id: HashMap<i64, &(SourceFolder, FolderRow)> = folders.iter().map(|fr| (fr.1.id, fr)).collect();
    let mut target_refs: HashMap<i64, String> = HashMap::new();
    let mut target = open_target(shared, user).await?;
    let mut stop: Option<String> = None;
    let mut moved = 0u64;
    for (f, t) in pairs {
        let (from, to) = (&view.rows[f], &view.rows[t]);
        let (Some(copy), Some((folder, row))) = (view.marks.get(&(from.folder_id, from.uid)), by_id.get(&to.folder_id))
        else {
            continue;
        };
        if let Some(reason) = &stop {
            hold(shared, to, reason, stats);
            held_back.insert((to.folder_id, to.uid));
            continue;
        }
        if shared.stop.stopped() {
            // Not copied either: the next run moves it first.
            held_back.insert((to.folder_id, to.uid));
            continue;
        }
        // The copy is already where it goes: out of the folder and back in
        // (a new UID), or two source folders that land in one.
        let already_there = |shared: &Shared| {
            shared.recorder.record(Record::Moved {
                from: (from.folder_id, from.uid),
                to: (to.folder_id, to.uid),
                target_id: copy.target_id.clone(),
            });
        };
        if from.folder_id == to.folder_id {
            already_there(shared);
            continue;
        }
        let Some(from_ref) = view.target_ref(from.folder_id) else {
            continue;
        };
        let to_ref = match target_refs.get(&row.id) {
            Some(r) => r.clone(),
            None => {
                let tf = transform::target_folder(folder, &all_source);
                match target.ensure_folder(&tf, row.target_ref.as_deref()).await {
                    Ok(r) => {
                        if row.target_ref.as_deref() != Some(r.as_str()) {
                            let (id, r) = (row.id, r.clone());
                            shared.db(|cp| cp.set_target_ref(id, &r))?;
                        }
                        target_refs.insert(row.id, r.clone());
                        r
                    }
                    // The folder cannot be made: the message is copied (and
                    // fails) the usual way.
                    Err(e) if matches!(e.kind, ErrorKind::Item | ErrorKind::Refused) => continue,
                    Err(e) => return Err(e),
                }
            }
        };
        if to_ref == from_ref {
            already_there(shared);
            continue;
        }
        match target.move_message(from_ref, &copy.target_id, &to_ref).await {
            Ok(target_id) => {
                moved += 1;
                shared.recorder.record(Record::Moved {
                    from: (from.folder_id, from.uid),
                    to: (to.folder_id, to.uid),
                    target_id,
                });
            }
            Err(e) if e.kind == ErrorKind::Item => {
                tracing::warn!(user = %email, folder = %folder.display(), uid = to.uid, "could not move the earlier copy to the folder its labels put it in now; copying the message instead: {e}");
            }
            Err(e) if e.kind == ErrorKind::Fatal => return Err(e),
            Err(e) => {
                tracing::warn!(user = %email, folder = %folder.display(), "moving copies after label changes stopped: {e}");
                hold(shared, to, &e.message, stats);
                held_back.insert((to.folder_id, to.uid));
                stop = Some(e.message);
            }
        }
    }
    target.close().await;
    shared.recorder.flush().await?;
    if moved > 0 {
        tracing::info!(user = %email, moved, "moved earlier copies to where the source's labels put them now");
    }
    stats.moved += moved;
    Ok(held_back)
}

/// A row whose earlier copy is to be moved to it, after a failed move:
/// recorded as failed, not copied while that copy may still be moved.
fn hold(shared: &Shared, to: &MessageRow, reason: &str, stats: &mut UserStats) {
    stats.failed += 1;
    shared.recorder.record(Record::Failed {
        folder_id: to.folder_id,
        uid: to.uid,
        reason: format!(
            "its copy in the target is to be moved here after a label change, which failed: {reason}; run again"
        ),
    });
}

/// Records, before they are uploaded, the labels each queued message
/// carries: once the target confirms the copy, they are what it has.
pub(super) fn note_labels<'a>(shared: &Shared, queued: impl IntoIterator<Item = &'a Work>) -> Result<(), Error> {
    let labels: Vec<(i64, u32, String)> = queued
        .into_iter()
        .flat_map(|w| {
            w.items
                .iter()
                .map(move |i| (w.folder_id, i.uid, labels::labels_to_db(&i.marks.labels)))
        })
        .collect();
    shared.db(|cp| cp.set_written_labels(&labels))
}

/// After the copy: gives the copies the label rules want the source's
/// marks where they changed (flags, star, labels), and removes from the
/// target the copies the rules no longer want while another copy of their
/// message is there. The source wins. A change that cannot be written is
/// counted and tried again on the next run, which the user's state says.
pub(super) async fn sync(shared: &Shared, user: &UserJob, stats: &mut UserStats) -> Result<(), Error> {
    if shared.dry_run {
        return Ok(());
    }
    let email = &user.email;
    shared.recorder.flush().await?;
    let view = View::read(shared, email)?;
    let rules = &shared.run.scope.labels;
    let caps = shared.run.target.capabilities();
    let mut baseline = Vec::new();
    let mut writes: Vec<(usize, Flags, Vec<String>)> = Vec::new();
    for (i, decision) in labels::decide(&view.folders, &view.copies, rules)
        .into_iter()
        .enumerate()
    {
        let Decision::Copy { labels: want, flagged } = decision else {
            continue;
        };
        let r = &view.rows[i];
        let Some(written) = view.marks.get(&(r.folder_id, r.uid)) else {
            continue;
        };
        if r.state != State::Copied {
            continue;
        }
        // As an upload with these marks carries them (`transform::upload`).
        let mut flags = Flags::from_wire(&r.flags);
        if flagged && !flags.flagged() {
            flags.0.push("\\Flagged".to_owned());
        }
        match labels::marks_change(
            written.written_flags.as_deref(),
            written.written_labels.as_deref(),
            &flags.to_wire(),
            &want,
        ) {
            MarksChange::Written => {}
            MarksChange::LabelsUnknown => baseline.push((r.folder_id, r.uid, labels::labels_to_db(&want))),
            MarksChange::Changed => writes.push((i, flags, want)),
        }
    }
    shared.db(|cp| cp.set_written_labels(&baseline))?;
    if !caps.update_flags {
        writes.clear();
    }
    let surplus = if caps.delete {
        labels::surplus(&view.folders, &view.copies, &view.held, rules)
    } else {
        Vec::new()
    };
    if writes.is_empty() && surplus.is_empty() {
        return Ok(());
    }
    tracing::info!(user = %email, marks = writes.len(), remove = surplus.len(), "carrying label and flag changes to earlier copies");
    let mut target = open_target(shared, user).await?;
    let mut failed = 0u64;
    let mut removed = 0u64;
    let mut stopped = false;
    // Marks first, then removals: each needs the copy's folder and id.
    let work = writes
        .into_iter()
        .map(|(i, flags, want)| (i, Some((flags, want))))
        .chain(surplus.into_iter().map(|i| (i, None)));
    for (i, marks) in work {
        if stopped || shared.stop.stopped() {
            break;
        }
        let r = &view.rows[i];
        let (Some(folder), Some(copy)) = (view.target_ref(r.folder_id), view.marks.get(&(r.folder_id, r.uid))) else {
            continue;
        };
        let (folder_id, uid) = (r.folder_id, r.uid);
        let result = match &marks {
            Some((flags, want)) => target
                .update_flags(folder, &copy.target_id, flags, want)
                .await
                .map(|target_id| {
                    stats.flags_updated += 1;
                    Record::MarksWritten {
                        folder_id,
                        uid,
                        flags: flags.to_wire(),
                        labels: labels::labels_to_db(want),
                        target_id,
                    }
                }),
            None => target.delete_message(folder, &copy.target_id).await.map(|()| {
                removed += 1;
                Record::Unfiled { folder_id, uid }
            }),
        };
        match result {
            Ok(record) => shared.recorder.record(record),
            Err(e) if e.kind == ErrorKind::Fatal => return Err(e),
            Err(e) => {
                failed += 1;
                let what = if marks.is_some() {
                    "write label or flag changes to"
                } else {
                    "remove from the target"
                };
                tracing::warn!(user = %email, uid, "could not {what} a copy after a label change: {e}");
                // The session is in doubt: the rest waits for the next run.
                stopped = e.is_retryable();
            }
        }
    }
    target.close().await;
    shared.recorder.flush().await?;
    if removed > 0 {
        tracing::info!(user = %email, removed, "removed copies from folders whose label their message lost");
    }
    if failed > 0 {
        stats.left_behind.push((
            failed,
            format!(
                "{failed} label or flag changes could not be carried to their copies; run migrate again to retry them"
            ),
        ));
    }
    Ok(())
}
