//! Folders renamed or moved on the source since the last run. Users
//! reorganise folders until cutover day; a tool that only sees names copies
//! a renamed folder again under its new name and leaves the old one in the
//! target (what the commercial movers do). Here a folder the source no
//! longer lists and a folder it lists for the first time are one folder
//! renamed when the new one has the old one's UIDVALIDITY and agrees with
//! every message the checkpoint knows of it (same UIDs, same sizes), and no
//! other folder could be it: its target folder is renamed (IMAP RENAME,
//! Graph PATCH/move, Maildir rename), its checkpoint row takes the new name,
//! and nothing in it is copied again. When in doubt the folder is copied as
//! a new one, as before: a wrong guess would file mail under the wrong name.

use std::collections::{HashMap, HashSet};

use crate::checkpoint::FolderRow;
use crate::error::{Error, ErrorKind};
use crate::model::{ScanDepth, SourceFolder};
use crate::roster::UserJob;
use crate::transform;

use super::{HeldSource, Shared, UserStats, open_target};

/// What the checkpoint knows of a folder the source no longer lists.
pub(super) struct Vanished<'a> {
    pub uid_validity: u32,
    pub uid_next: u32,
    pub max_uid: u32,
    /// UID → size of the messages it still held at the last look.
    pub known: &'a HashMap<u32, u64>,
}

/// A folder the source lists for the first time, as EXAMINE and an
/// index-only scan show it.
pub(super) struct Appeared<'a> {
    pub uid_validity: u32,
    pub uid_next: u32,
    /// UID and size of every message it holds.
    pub messages: &'a [(u32, u64)],
}

/// Whether `appeared` can be `vanished` under another name: the same
/// UIDVALIDITY, a UIDNEXT that did not go back, and every message at a UID
/// the old folder had reached is one the checkpoint knows there, with its
/// size (messages may have been deleted or added since, not replaced).
fn could_be(vanished: &Vanished, appeared: &Appeared) -> bool {
    vanished.uid_validity == appeared.uid_validity
        && (appeared.uid_next == 0 || appeared.uid_next >= vanished.uid_next)
        && appeared
            .messages
            .iter()
            .filter(|(uid, _)| *uid <= vanished.max_uid)
            .all(|(uid, size)| vanished.known.get(uid) == Some(size))
}

/// Pairs each vanished folder with the appeared folder that is it renamed,
/// as `(vanished index, appeared index)`: only pairs where neither side
/// could be anything else. Pure, so every case is unit-tested.
pub(super) fn pair_renames(vanished: &[Vanished], appeared: &[Appeared]) -> Vec<(usize, usize)> {
    let candidates: Vec<(usize, usize)> = vanished
        .iter()
        .enumerate()
        .flat_map(|(v, old)| {
            appeared
                .iter()
                .enumerate()
                .filter(move |(_, new)| could_be(old, new))
                .map(move |(a, _)| (v, a))
        })
        .collect();
    let mut per_vanished: HashMap<usize, usize> = HashMap::new();
    let mut per_appeared: HashMap<usize, usize> = HashMap::new();
    for &(v, a) in &candidates {
        *per_vanished.entry(v).or_default() += 1;
        *per_appeared.entry(a).or_default() += 1;
    }
    candidates
        .into_iter()
        .filter(|(v, a)| per_vanished[v] == 1 && per_appeared[a] == 1)
        .collect()
}

/// Finds the folders renamed or moved on the source since the last run and
/// renames their target folders; returns `rows` with each renamed folder's
/// row (its messages, copies and scan position) in place of the empty row
/// the listing made for its new name. Costs nothing unless a scanned folder
/// vanished from the listing: then one EXAMINE for each new folder, and an
/// index-only scan of those with a vanished folder's UIDVALIDITY.
///
/// A target folder that cannot be renamed (a folder of that name is there
/// already) leaves the folder to be copied as a new one, said loudly; a
/// dropped connection fails the mailbox, so the next run tries the rename
/// again rather than copying the folder twice.
pub(super) async fn follow(
    shared: &Shared,
    user: &UserJob,
    listed: &[SourceFolder],
    mut rows: Vec<FolderRow>,
    session: &mut HeldSource,
    stats: &mut UserStats,
) -> Result<Vec<FolderRow>, Error> {
    // On a label-based source (Gmail) a folder is a label, and its copies
    // live wherever the label rules put them: there is no folder of its own
    // in the target to rename.
    if shared.dry_run
        || !shared.run.target.capabilities().rename_folders
        || crate::labels::label_based(listed.iter().map(|f| f.role), session.has_gmail_extensions())
    {
        return Ok(rows);
    }
    let email = &user.email;
    // Folders with a role map to the target's own folders, never renamed.
    let vanished_rows: Vec<FolderRow> = shared
        .db(|cp| cp.vanished_folders(email))?
        .into_iter()
        .filter(|r| r.role.is_none())
        .collect();
    if vanished_rows.is_empty() {
        return Ok(rows);
    }
    let by_wire: HashMap<&str, &FolderRow> = rows.iter().map(|r| (r.wire_name.as_str(), r)).collect();
    let fresh: Vec<(&SourceFolder, i64)> = listed
        .iter()
        .filter(|f| f.role.is_none())
        .filter_map(|f| {
            by_wire
                .get(f.wire_name.as_str())
                .filter(|r| r.uid_validity == 0)
                .map(|r| (f, r.id))
        })
        .collect();
    if fresh.is_empty() {
        return Ok(rows);
    }

    let validities: HashSet<u32> = vanished_rows.iter().map(|r| r.uid_validity).collect();
    // Each new folder with a vanished folder's UIDVALIDITY, as seen now.
    struct Looked {
        fresh: usize,
        uid_validity: u32,
        uid_next: u32,
        messages: Vec<(u32, u64)>,
    }
    let mut seen: Vec<Looked> = Vec::new();
    for (i, (folder, _)) in fresh.iter().enumerate() {
        let state = session.examine(&folder.wire_name).await?;
        if !validities.contains(&state.uid_validity) {
            continue;
        }
        let messages = if state.exists == 0 {
            Vec::new()
        } else {
            session
                .scan(1, ScanDepth::Index)
                .await?
                .into_iter()
                .map(|m| (m.uid, m.size))
                .collect()
        };
        seen.push(Looked {
            fresh: i,
            uid_validity: state.uid_validity,
            uid_next: state.uid_next.unwrap_or(0),
            messages,
        });
    }
    if seen.is_empty() {
        return Ok(rows);
    }
    let known: Vec<HashMap<u32, u64>> = vanished_rows
        .iter()
        .map(|r| {
            let id = r.id;
            shared
                .db(|cp| cp.known_sizes(id))
                .map(|sizes| sizes.into_iter().collect())
        })
        .collect::<Result<_, _>>()?;
    let vanished: Vec<Vanished> = vanished_rows
        .iter()
        .zip(&known)
        .map(|(r, known)| Vanished {
            uid_validity: r.uid_validity,
            uid_next: r.uid_next,
            max_uid: r.max_uid,
            known,
        })
        .collect();
    let appeared: Vec<Appeared> = seen
        .iter()
        .map(|l| Appeared {
            uid_validity: l.uid_validity,
            uid_next: l.uid_next,
            messages: &l.messages,
        })
        .collect();
    let mut pairs = pair_renames(&vanished, &appeared);
    if pairs.is_empty() {
        return Ok(rows);
    }
    // Parents first: a folder renamed with its parent came along.
    pairs.sort_by_key(|&(v, _)| vanished_rows[v].path.matches('/').count());

    let mut target = open_target(shared, user).await?;
    // (old path, new path) of each folder renamed so far.
    let mut done: Vec<(String, Vec<String>)> = Vec::new();
    for (v, a) in pairs {
        let old = &vanished_rows[v];
        let (folder, listed_id) = fresh[seen[a].fresh];
        let Some(old_ref) = old.target_ref.as_deref() else {
            continue;
        };
        let to = transform::target_folder(folder, listed);
        // Below a folder renamed just before, the target renamed it along
        // with its parent: it is found where that put it.
        let came_along = done.iter().find_map(|(old_parent, new_parent)| {
            let rest = old.path.strip_prefix(old_parent.as_str())?.strip_prefix('/')?;
            let mut path = new_parent.clone();
            path.extend(rest.split('/').map(str::to_owned));
            Some(path)
        });
        let renamed = match came_along {
            Some(path) => {
                let here = transform::target_folder(
                    &SourceFolder {
                        wire_name: String::new(),
                        path,
                        role: None,
                    },
                    listed,
                );
                match target.ensure_folder(&here, None).await {
                    Ok(r) if here == to => Ok(r),
                    Ok(r) => target.rename_folder(&r, &to).await,
                    Err(e) => Err(e),
                }
            }
            None => target.rename_folder(old_ref, &to).await,
        };
        match renamed {
            Ok(new_ref) => {
                let row = shared.db(|cp| cp.adopt_renamed_folder(old.id, listed_id, &new_ref))?;
                tracing::info!(user = %email, from = %old.path, to = %folder.display(), "folder renamed on the source: renamed in the target, its copies kept");
                rows.retain(|r| r.id != listed_id && r.id != row.id);
                rows.push(row);
                stats.renamed += 1;
                done.push((old.path.clone(), folder.path.clone()));
            }
            Err(e) if matches!(e.kind, ErrorKind::Item | ErrorKind::Refused) => {
                tracing::warn!(user = %email, from = %old.path, to = %folder.display(), "folder renamed on the source, but its target folder could not be renamed, so the folder is copied under its new name and the old target folder keeps the earlier copies: {e}");
            }
            Err(e) => {
                target.close().await;
                return Err(e.context(format!("renaming target folder {} to {}", old.path, folder.display())));
            }
        }
    }
    target.close().await;
    rows.sort_by_key(|r| r.id);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(pairs: &[(u32, u64)]) -> HashMap<u32, u64> {
        pairs.iter().copied().collect()
    }

    fn vanished(uid_validity: u32, uid_next: u32, known: &HashMap<u32, u64>) -> Vanished<'_> {
        Vanished {
            uid_validity,
            uid_next,
            max_uid: known.keys().max().copied().unwrap_or(0),
            known,
        }
    }

    fn appeared(uid_validity: u32, uid_next: u32, messages: &[(u32, u64)]) -> Appeared<'_> {
        Appeared {
            uid_validity,
            uid_next,
            messages,
        }
    }

    #[test]
    fn a_renamed_folder_is_found_with_deletions_and_new_mail() {
        let old = known(&[(1, 100), (2, 200), (3, 300)]);
        // 2 deleted, 4 new since.
        let new = [(1, 100), (3, 300), (4, 400)];
        assert_eq!(
            pair_renames(&[vanished(7, 4, &old)], &[appeared(7, 5, &new)]),
            vec![(0, 0)]
        );
    }

    #[test]
    fn another_uidvalidity_or_other_messages_are_not_the_folder() {
        let old = known(&[(1, 100), (2, 200)]);
        assert!(pair_renames(&[vanished(7, 3, &old)], &[appeared(8, 3, &[(1, 100), (2, 200)])]).is_empty());
        // A UID the old folder had reached holding another message.
        assert!(pair_renames(&[vanished(7, 3, &old)], &[appeared(7, 3, &[(1, 100), (2, 201)])]).is_empty());
        // A UID the old folder never had below its highest.
        let gap = known(&[(1, 100), (5, 500)]);
        assert!(pair_renames(&[vanished(7, 6, &gap)], &[appeared(7, 6, &[(3, 300), (5, 500)])]).is_empty());
        // UIDNEXT went back: not the same folder.
        assert!(pair_renames(&[vanished(7, 9, &old)], &[appeared(7, 3, &[(1, 100)])]).is_empty());
    }

    #[test]
    fn ambiguity_is_not_guessed() {
        // Two folders made in the same second on a server whose UIDVALIDITY
        // is the time, both emptied and renamed: either could be either.
        let empty = known(&[]);
        assert!(
            pair_renames(
                &[vanished(7, 1, &empty), vanished(7, 1, &empty)],
                &[appeared(7, 1, &[]), appeared(7, 1, &[])]
            )
            .is_empty()
        );
        // One vanished, two could be it.
        let old = known(&[(1, 100)]);
        assert!(
            pair_renames(
                &[vanished(7, 2, &old)],
                &[appeared(7, 2, &[(1, 100)]), appeared(7, 2, &[])]
            )
            .is_empty()
        );
        // But the content tells two same-second folders apart.
        let a = known(&[(1, 100)]);
        let b = known(&[(1, 111)]);
        let mut pairs = pair_renames(
            &[vanished(7, 2, &a), vanished(7, 2, &b)],
            &[appeared(7, 2, &[(1, 111)]), appeared(7, 2, &[(1, 100)])],
        );
        pairs.sort();
        assert_eq!(pairs, vec![(0, 1), (1, 0)]);
    }
}
