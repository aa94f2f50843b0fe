//! The scan step of a mailbox: list folders, then read the metadata of what
//! is new in each one (nothing at all for a folder whose UIDNEXT and message
//! count did not change) into the checkpoint; and, once the scope is known,
//! the headers of skipped and failed messages so reports can name them.

use std::collections::HashMap;

use crate::checkpoint::{FolderRow, Record};
use crate::error::Error;
use crate::event::Event;
use crate::labels;
use crate::model::{FolderRole, Headers, ScanDepth, SourceFolder};
use crate::roster::UserJob;

use super::{HeldSource, Shared, UserStats};

/// Most UIDs asked for in one header FETCH, so memory and command length
/// stay bounded however many messages a mailbox skips.
const HEADERS_PER_FETCH: usize = 2000;

/// Scans every folder in scope and returns it with its checkpoint row.
pub(super) async fn scan(
    shared: &Shared,
    user: &UserJob,
    session: &mut HeldSource,
    stats: &mut UserStats,
) -> Result<Vec<(SourceFolder, FolderRow)>, Error> {
    let email = &user.email;
    let listed: Vec<SourceFolder> = session
        .folders()
        .await?
        .into_iter()
        .filter(|f| !shared.run.scope.excludes(&f.display()))
        .collect();
    let entries: Vec<(String, String, Option<FolderRole>)> = listed
        .iter()
        .map(|f| (f.wire_name.clone(), f.display(), f.role))
        .collect();
    let rows = shared.db(|cp| cp.sync_folder_list(email, &entries))?;
    // A folder renamed on the source keeps its copies: renamed in the
    // target, not copied again.
    let rows = super::renames::follow(shared, user, &listed, rows, session, stats).await?;
    folders_deleted(shared, user, &listed, session).await?;
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
        // Flags changed on the source since the last run, for the copies
        // made before: with CONDSTORE only what changed after the last
        // HIGHESTMODSEQ (nothing at all when it did not move), else every
        // message's flags (index-only, but a read of the whole folder).
        let known = !changed_validity && row.uid_validity != 0 && row.max_uid > 0;
        let refresh = match state.highest_modseq {
            _ if !known => None,
            Some(m) if row.highest_modseq != 0 && m == row.highest_modseq => None,
            // HIGHESTMODSEQ went back (the folder's index was rebuilt):
            // changes since the old value would be missed; read them all.
            Some(m) if m < row.highest_modseq => Some(None),
            Some(_) if row.highest_modseq != 0 => Some(Some(row.highest_modseq)),
            _ => Some(None),
        };
        if let Some(since) = refresh
            && state.exists > 0
        {
            let flags = session.flags(row.max_uid, since).await?;
            if !flags.is_empty() {
                let id = row.id;
                shared.db(|cp| cp.refresh_flags(id, &flags))?;
            }
        }
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
            if !changed_validity && row.uid_validity != 0 {
                vanished(shared, email, &folder, row.id, state.exists, session).await?;
            }
        }
        if let Some(m) = state.highest_modseq
            && m != row.highest_modseq
        {
            let id = row.id;
            shared.db(|cp| cp.set_highest_modseq(id, m))?;
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

/// Records as gone the messages of a folder the source no longer holds
/// (deleted, or filed into another folder): more messages known than the
/// folder has means some vanished, and `UID SEARCH` tells which. Their
/// copies stay in the target; a later step may find them filed elsewhere
/// ([`super::moves`]). A search that answers nothing for a folder that
/// still has messages is not believed.
async fn vanished(
    shared: &Shared,
    email: &str,
    folder: &SourceFolder,
    folder_id: i64,
    exists: u32,
    session: &mut HeldSource,
) -> Result<(), Error> {
    let known = shared.db(|cp| cp.known_uids(folder_id))?;
    if known.len() as u64 <= u64::from(exists) {
        return Ok(());
    }
    let present: std::collections::HashSet<u32> = if exists == 0 {
        Default::default()
    } else {
        session.present(&known).await?.into_iter().collect()
    };
    if present.is_empty() && exists > 0 {
        tracing::warn!(user = %email, folder = %folder.display(), "the source found none of the folder's known messages although it holds {exists}; not taken as deletions");
        return Ok(());
    }
    let gone: Vec<Record> = known
        .iter()
        .filter(|uid| !present.contains(uid))
        .map(|&uid| Record::Gone { folder_id, uid })
        .collect();
    tracing::debug!(user = %email, folder = %folder.display(), messages = gone.len(), "gone from the source folder");
    shared.db(|cp| cp.apply(&gone))?;
    Ok(())
}

/// Records as gone the messages of folders deleted on the source: a folder
/// the listing no longer shows, that was not renamed, that the scope does
/// not leave out, and that the server says does not exist when asked to
/// open it (any other failure proves nothing). Its copies stay in the
/// target and are counted as deleted on the source; mail filed elsewhere
/// before the folder went is found there by [`super::moves`]. Not on a
/// label-based source (Gmail), where a label's mail stays in All Mail.
async fn folders_deleted(
    shared: &Shared,
    user: &UserJob,
    listed: &[SourceFolder],
    session: &mut HeldSource,
) -> Result<(), Error> {
    if shared.dry_run || labels::label_based(listed.iter().map(|f| f.role), session.has_gmail_extensions()) {
        return Ok(());
    }
    let email = &user.email;
    let vanished = shared.db(|cp| cp.vanished_folders(email))?;
    for row in vanished {
        if shared.run.scope.excludes(&row.path) {
            continue;
        }
        let id = row.id;
        let known = shared.db(|cp| cp.known_uids(id))?;
        if known.is_empty() || session.folder_exists(&row.wire_name).await? {
            continue;
        }
        tracing::info!(user = %email, folder = %row.path, messages = known.len(), "folder deleted on the source: its copies are kept and counted as deleted on the source");
        let gone: Vec<Record> = known
            .into_iter()
            .map(|uid| Record::Gone { folder_id: id, uid })
            .collect();
        shared.db(|cp| cp.apply(&gone))?;
    }
    Ok(())
}

/// Reads the Message-ID and Subject of the skipped and failed messages the
/// scan did not read headers of, so reports name them.
pub(super) async fn read_missing_headers(
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
        let Some(mut found) = headers_of(session, folder, row, &uids).await? else {
            continue;
        };
        // A message gone from the source is recorded without a Subject
        // too, so it is not asked for on every run.
        for uid in uids {
            let headers = found.remove(&uid).unwrap_or(Headers {
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
    shared.recorder.flush().await
}

/// The Message-ID and Subject of `uids` of a folder, by UID, read from
/// their header blocks at most [`HEADERS_PER_FETCH`] at a time; UIDs the
/// source no longer has are left out. `None` when the folder's UIDVALIDITY
/// is no longer the checkpoint's (the UIDs name other messages now).
pub(super) async fn headers_of(
    session: &mut HeldSource,
    folder: &SourceFolder,
    row: &FolderRow,
    uids: &[u32],
) -> Result<Option<HashMap<u32, Headers>>, Error> {
    let state = session.examine(&folder.wire_name).await?;
    if state.uid_validity != row.uid_validity {
        return Ok(None);
    }
    let asked: std::collections::HashSet<u32> = uids.iter().copied().collect();
    let mut found = HashMap::with_capacity(uids.len());
    for chunk in uids.chunks(HEADERS_PER_FETCH) {
        let answered = session.headers(chunk).await?;
        found.extend(
            answered
                .into_iter()
                .filter(|h| asked.contains(&h.uid))
                .map(|h| (h.uid, h)),
        );
    }
    Ok(Some(found))
}
