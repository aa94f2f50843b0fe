//! Mail filed into another folder on the source since the last run. Users
//! keep filing mail until cutover day; a tool that only adds new UIDs copies
//! each filed message again and leaves the old copy where it was (what the
//! commercial movers do). Here, after the scan, a copy kept in the target
//! whose source message vanished from its folder, and a message new in
//! another folder with the same Message-ID and size (without a Message-ID:
//! the same content key, a hash of the header block recorded at copy time),
//! are one message moved:
//! its copy is moved in the target (no body fetched or uploaded), and the
//! flag sync that follows gives it its new flags.

use std::collections::{HashMap, HashSet};

use crate::checkpoint::{FolderRow, Record};
use crate::error::{Error, ErrorKind};
use crate::model::SourceFolder;
use crate::plan;
use crate::roster::UserJob;
use crate::transform;

use super::{HeldSource, Shared, UserStats, open_target};

/// Most header sections read in one FETCH while looking for the content
/// key of messages without a Message-ID: memory stays bounded.
const HEADER_SECTIONS_PER_FETCH: usize = 500;

/// Messages held back from this run's copy: their earlier copy is to be
/// moved to them, and the move failed for a reason that may pass.
pub(super) type Held = HashSet<(i64, u32)>;

/// Finds the kept copies whose source message was filed into another
/// folder and moves them there in the target. Where the target has no such
/// copy any more, the message is copied as a new one; where a move failed
/// for a reason that may pass (a dropped connection), the message is
/// recorded as failed and returned as held: this run does not copy it, the
/// next one tries the move again first, so the kept copy is never
/// duplicated meanwhile.
pub(super) async fn reconcile(
    shared: &Shared,
    user: &UserJob,
    folders: &[(SourceFolder, FolderRow)],
    session: &mut HeldSource,
    stats: &mut UserStats,
) -> Result<Held, Error> {
    let mut held = Held::new();
    if !shared.run.target.capabilities().move_messages || shared.dry_run {
        return Ok(held);
    }
    let email = &user.email;
    shared.recorder.flush().await?;
    let kept = shared.db(|cp| cp.kept_copies(email))?;
    if kept.is_empty() {
        return Ok(held);
    }
    let sizes: HashSet<u64> = kept.iter().filter(|k| k.message_id.is_some()).map(|k| k.size).collect();

    // The Message-ID of each new message that could be one of them (same
    // size): read once, by UID, from the header block only.
    let uncopied = shared.db(|cp| cp.uncopied(email))?;
    for (folder, row) in folders {
        let uids: Vec<u32> = uncopied
            .iter()
            .filter(|u| u.folder_id == row.id && u.message_id.is_none() && sizes.contains(&u.size))
            .map(|u| u.uid)
            .collect();
        if uids.is_empty() {
            continue;
        }
        let Some(found) = super::scan::headers_of(session, folder, row, &uids).await? else {
            continue;
        };
        let records: Vec<Record> = found
            .into_values()
            .filter(|h| h.message_id.is_some())
            .map(|headers| Record::Headers {
                folder_id: row.id,
                headers,
            })
            .collect();
        shared.db(|cp| cp.apply(&records))?;
    }
    let uncopied = shared.db(|cp| cp.uncopied(email))?;

    // A message without a Message-ID is known by its content key: read
    // from the header section of each new one without a Message-ID that
    // could be such a copy (same size).
    let keyed_sizes: HashSet<u64> = kept
        .iter()
        .filter(|k| k.message_id.is_none() && k.content_key.is_some())
        .map(|k| k.size)
        .collect();
    let mut content_keys: HashMap<(i64, u32), String> = HashMap::new();
    if !keyed_sizes.is_empty() {
        for (folder, row) in folders {
            let uids: Vec<u32> = uncopied
                .iter()
                .filter(|u| u.folder_id == row.id && u.message_id.is_none() && keyed_sizes.contains(&u.size))
                .map(|u| u.uid)
                .collect();
            if uids.is_empty() {
                continue;
            }
            let state = session.examine(&folder.wire_name).await?;
            if state.uid_validity != row.uid_validity {
                continue;
            }
            for chunk in uids.chunks(HEADER_SECTIONS_PER_FETCH) {
                for (uid, key) in session.content_keys(chunk).await? {
                    content_keys.insert((row.id, uid), key);
                }
            }
        }
    }
    let kept_keys: Vec<Option<(&str, u64)>> = kept
        .iter()
        .map(|k| {
            k.message_id
                .as_deref()
                .or(k.content_key.as_deref())
                .map(|id| (id, k.size))
        })
        .collect();
    let new_keys: Vec<Option<(&str, u64)>> = uncopied
        .iter()
        .map(|u| {
            u.message_id
                .as_deref()
                .or_else(|| content_keys.get(&(u.folder_id, u.uid)).map(String::as_str))
                .map(|id| (id, u.size))
        })
        .collect();
    let matches = plan::match_moves(&kept_keys, &new_keys);
    if matches.is_empty() {
        return Ok(held);
    }

    let all_source: Vec<SourceFolder> = folders.iter().map(|(f, _)| f.clone()).collect();
    let by_id: HashMap<i64, &(SourceFolder, FolderRow)> = folders.iter().map(|fr| (fr.1.id, fr)).collect();
    let mut target_refs: HashMap<i64, String> = HashMap::new();
    let mut target = open_target(shared, user).await?;
    let mut stop: Option<Error> = None;
    for (k, n) in matches {
        let (from, to) = (&kept[k], &uncopied[n]);
        let Some((folder, row)) = by_id.get(&to.folder_id) else {
            continue;
        };
        if let Some(e) = &stop {
            hold_for_move(shared, to.folder_id, to.uid, e, stats);
            held.insert((to.folder_id, to.uid));
            continue;
        }
        let Some(from_ref) = from.target_ref.as_deref() else {
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
                    // The folder cannot be made: its messages are copied
                    // (and fail) the usual way.
                    Err(e) if matches!(e.kind, ErrorKind::Item | ErrorKind::Refused) => continue,
                    Err(e) => return Err(e),
                }
            }
        };
        match target.move_message(from_ref, &from.target_id, &to_ref).await {
            Ok(target_id) => {
                stats.moved += 1;
                shared.recorder.record(Record::Moved {
                    from: (from.folder_id, from.uid),
                    to: (to.folder_id, to.uid),
                    target_id,
                });
            }
            Err(e) if e.kind == ErrorKind::Item => {
                // The copy is not where it was recorded (moved or deleted
                // on the target): the message is copied as a new one.
                tracing::warn!(user = %email, folder = %folder.display(), uid = to.uid, "could not move the earlier copy here; copying the message instead: {e}");
            }
            Err(e) if e.kind == ErrorKind::Fatal => return Err(e),
            Err(e) => {
                tracing::warn!(user = %email, folder = %folder.display(), "moving earlier copies stopped: {e}");
                hold_for_move(shared, to.folder_id, to.uid, &e, stats);
                held.insert((to.folder_id, to.uid));
                stop = Some(e);
            }
        }
    }
    target.close().await;
    shared.recorder.flush().await?;
    if stats.moved > 0 {
        tracing::info!(user = %email, moved = stats.moved, "moved earlier copies to where the source filed them");
    }
    Ok(held)
}

/// A message whose earlier copy is to be moved to it, after a failed move:
/// recorded as failed, not copied as new while that copy may still be
/// moved; the next run tries the move again first.
fn hold_for_move(shared: &Shared, folder_id: i64, uid: u32, e: &Error, stats: &mut UserStats) {
    stats.failed += 1;
    shared.recorder.record(Record::Failed {
        folder_id,
        uid,
        reason: format!(
            "its copy in the target is to be moved here, which failed: {}; run again",
            e.message
        ),
    });
}
