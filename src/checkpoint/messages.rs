//! The messages scans found and the state each is in: storing a scan
//! (re-matching earlier copies after a UIDVALIDITY change so nothing is
//! copied twice or dropped) and reading a mailbox back for planning.

use std::collections::HashMap;

use rusqlite::params;

use super::{Checkpoint, Result, db_err};
use crate::model::{Flags, MessageMeta, SkipReason};
use crate::plan::State;

/// A message row, as the planner and the copy loop need it.
#[derive(Clone, Debug)]
pub struct MessageRow {
    pub folder_id: i64,
    pub uid: u32,
    pub internal_date: i64,
    pub size: u64,
    pub flags: String,
    pub message_id: Option<String>,
    /// Gmail's X-GM-MSGID, on sources with X-GM-EXT-1.
    pub gm_msgid: Option<u64>,
    pub state: State,
}

pub fn state_to_db(state: State) -> (&'static str, Option<&'static str>) {
    match state {
        State::Pending => ("pending", None),
        State::Copied => ("copied", None),
        State::Skipped(r) => ("skipped", Some(r.as_str())),
        State::Failed => ("failed", None),
        State::InFlight => ("inflight", None),
        State::Gone => ("gone", None),
    }
}

fn state_from_db(state: &str, reason: Option<&str>) -> State {
    match state {
        "copied" => State::Copied,
        "skipped" => State::Skipped(reason.and_then(SkipReason::parse).unwrap_or(SkipReason::TargetRefused)),
        "failed" => State::Failed,
        "inflight" => State::InFlight,
        "gone" => State::Gone,
        _ => State::Pending,
    }
}

/// A copied or skipped message's record (state, reason, target id, copy
/// time), carried over to its new UID after a UIDVALIDITY change.
type CarriedState = (String, Option<String>, Option<String>, Option<i64>);

/// The key that recognises the same message after a UIDVALIDITY change:
/// Message-ID and size, or the date and size when there is no Message-ID.
fn rematch_key(message_id: Option<&str>, size: u64, internal_date: i64) -> String {
    match message_id {
        Some(id) if !id.is_empty() => format!("{id}\u{0}{size}"),
        _ => format!("\u{0}{internal_date}\u{0}{size}"),
    }
}

impl Checkpoint {
    /// Stores what a scan of one folder found. `metas` are the messages
    /// above the previous `max_uid` (or all of them after a UIDVALIDITY
    /// change, in which case earlier copies are re-matched by Message-ID and
    /// size so nothing is copied twice and nothing is dropped).
    pub fn store_scan(
        &mut self,
        folder_id: i64,
        uid_validity: u32,
        uid_next: u32,
        exists: u32,
        metas: &[MessageMeta],
        full_rescan: bool,
    ) -> Result<()> {
        let path = self.path.clone();
        let e = db_err(&path);
        let tx = self.conn.transaction().map_err(&e)?;
        let mut carried: HashMap<String, Vec<CarriedState>> = HashMap::new();
        if full_rescan {
            {
                let mut stmt = tx
                    .prepare("SELECT message_id, size, internal_date, state, reason, target_id, copied_at FROM messages WHERE folder_id = ?1")
                    .map_err(&e)?;
                let mut rows = stmt.query(params![folder_id]).map_err(&e)?;
                while let Some(r) = rows.next().map_err(&e)? {
                    let state: String = r.get(3).map_err(&e)?;
                    // In flight: an upload may have reached the target
                    // before the run stopped, so the renumbered message is
                    // looked up there before it is sent again.
                    if state != "copied" && state != "skipped" && state != "inflight" {
                        continue;
                    }
                    let mid: Option<String> = r.get(0).map_err(&e)?;
                    let size: i64 = r.get(1).map_err(&e)?;
                    let date: i64 = r.get(2).map_err(&e)?;
                    carried
                        .entry(rematch_key(mid.as_deref(), size as u64, date))
                        .or_default()
                        .push((
                            state,
                            r.get(4).map_err(&e)?,
                            r.get(5).map_err(&e)?,
                            r.get(6).map_err(&e)?,
                        ));
                }
            }
            tx.execute("DELETE FROM messages WHERE folder_id = ?1", params![folder_id])
                .map_err(&e)?;
        }
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO messages (folder_id, uid, internal_date, size, flags, message_id, state, reason, target_id, copied_at, subject, gm_msgid)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                     ON CONFLICT (folder_id, uid) DO UPDATE SET flags = excluded.flags,
                        subject = COALESCE(excluded.subject, subject)",
                )
                .map_err(&e)?;
            for m in metas {
                let key = rematch_key(m.message_id.as_deref(), m.size, m.internal_date);
                // A row recorded without its Message-ID (skipped before its
                // headers were read) is keyed by date and size.
                let prior = carried.get_mut(&key).and_then(|v| v.pop()).or_else(|| {
                    m.message_id.as_ref()?;
                    carried
                        .get_mut(&rematch_key(None, m.size, m.internal_date))
                        .and_then(|v| v.pop())
                });
                let (state, reason, target_id, copied_at) =
                    prior.unwrap_or_else(|| ("pending".to_owned(), None, None, None));
                insert
                    .execute(params![
                        folder_id,
                        m.uid,
                        m.internal_date,
                        m.size as i64,
                        m.flags.to_wire(),
                        m.message_id,
                        state,
                        reason,
                        target_id,
                        copied_at,
                        m.subject,
                        m.gm_msgid.map(|id| id as i64)
                    ])
                    .map_err(&e)?;
            }
        }
        let max_uid = metas.iter().map(|m| m.uid).max().unwrap_or(0);
        tx.execute(
            "UPDATE folders SET uid_validity = ?2, uid_next = ?3, exists_count = ?4,
                max_uid = CASE WHEN ?5 THEN ?6 ELSE MAX(max_uid, ?6) END
             WHERE id = ?1",
            params![folder_id, uid_validity, uid_next, exists, full_rescan, max_uid],
        )
        .map_err(&e)?;
        tx.commit().map_err(&e)?;
        Ok(())
    }

    /// Every message of the user's present folders. Without
    /// `with_message_ids` their Message-IDs are left out (`None`): planning
    /// needs them only on label-based sources, and half a million of them
    /// would weigh on every resync's memory for nothing.
    pub fn messages(&self, email: &str, with_message_ids: bool) -> Result<Vec<MessageRow>> {
        let email = &super::user_key(email);
        self.query_rows(
            "SELECT m.folder_id, m.uid, m.internal_date, m.size, m.flags,
                CASE WHEN ?2 THEN m.message_id END, m.state, m.reason, m.gm_msgid
             FROM messages m JOIN folders f ON f.id = m.folder_id
             WHERE f.email = ?1 AND f.present = 1",
            params![email, with_message_ids],
            |r| {
                let state: String = r.get(6)?;
                let reason: Option<String> = r.get(7)?;
                Ok(MessageRow {
                    folder_id: r.get(0)?,
                    uid: r.get(1)?,
                    internal_date: r.get(2)?,
                    size: r.get::<_, i64>(3)? as u64,
                    flags: r.get(4)?,
                    message_id: r.get(5)?,
                    gm_msgid: r.get::<_, Option<i64>>(8)?.map(|id| id as u64),
                    state: state_from_db(&state, reason.as_deref()),
                })
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Record;
    use crate::checkpoint::tests::{copied, meta, setup, without_headers};
    use crate::model::MessageMeta;

    #[test]
    fn copied_survives_uidvalidity_change_by_message_id_and_size() {
        let (_d, mut cp, f) = setup();
        cp.store_scan(
            f,
            1,
            4,
            3,
            &[meta(1, "<a@x>", 10), meta(2, "<b@x>", 20), meta(3, "<c@x>", 30)],
            false,
        )
        .unwrap();
        cp.apply(&[copied(f, 1, "t1", None), copied(f, 2, "t2", None)]).unwrap();
        // New UIDVALIDITY: same messages renumbered, plus one new.
        cp.store_scan(
            f,
            2,
            5,
            4,
            &[
                meta(11, "<a@x>", 10),
                meta(12, "<b@x>", 20),
                meta(13, "<c@x>", 30),
                meta(14, "<d@x>", 40),
            ],
            true,
        )
        .unwrap();
        let rows = cp.messages("a@x.test", true).unwrap();
        let state = |uid| rows.iter().find(|r| r.uid == uid).unwrap().state;
        assert_eq!(state(11), State::Copied);
        assert_eq!(state(12), State::Copied);
        assert_eq!(state(13), State::Pending);
        assert_eq!(state(14), State::Pending);
        assert_eq!(rows.len(), 4);
        let folder = &cp.folders("a@x.test").unwrap()[0];
        assert_eq!((folder.uid_validity, folder.max_uid), (2, 14));
    }

    #[test]
    fn in_flight_survives_uidvalidity_change() {
        let (_d, mut cp, f) = setup();
        cp.store_scan(f, 1, 3, 2, &[meta(1, "<a@x>", 10), meta(2, "<b@x>", 20)], false)
            .unwrap();
        cp.apply(&[Record::InFlight { folder_id: f, uid: 1 }]).unwrap();
        cp.store_scan(f, 2, 13, 2, &[meta(11, "<a@x>", 10), meta(12, "<b@x>", 20)], true)
            .unwrap();
        let rows = cp.messages("a@x.test", true).unwrap();
        let state = |uid| rows.iter().find(|r| r.uid == uid).unwrap().state;
        assert_eq!(
            state(11),
            State::InFlight,
            "looked up in the target before it is sent again"
        );
        assert_eq!(state(12), State::Pending);
    }

    /// A scan without headers leaves Message-IDs to the copies; after a
    /// UIDVALIDITY change (scanned with headers) the copies are re-matched
    /// by the Message-ID their copy recorded, and a skipped message whose
    /// headers were never read by its date and size.
    #[test]
    fn index_only_scans_rematch_by_the_message_id_each_copy_recorded() {
        let (_d, mut cp, f) = setup();
        cp.store_scan(
            f,
            1,
            4,
            3,
            &[without_headers(1, 10), without_headers(2, 20), without_headers(3, 30)],
            false,
        )
        .unwrap();
        cp.apply(&[
            copied(f, 1, "t1", Some("<a@x>")),
            Record::Skipped {
                folder_id: f,
                uid: 2,
                reason: SkipReason::TooLarge,
            },
        ])
        .unwrap();
        assert_eq!(
            cp.messages("a@x.test", true).unwrap()[0].message_id.as_deref(),
            Some("<a@x>")
        );
        // The skipped one is what a report would name without a Subject.
        assert_eq!(cp.missing_headers("a@x.test").unwrap(), vec![(f, 2)]);
        // The server renumbers: UID + 10, INTERNALDATE kept.
        let renumbered = |uid: u32, mid, size| MessageMeta {
            internal_date: meta(uid, mid, size).internal_date,
            ..meta(uid + 10, mid, size)
        };
        cp.store_scan(
            f,
            2,
            5,
            3,
            &[
                renumbered(1, "<a@x>", 10),
                renumbered(2, "<b@x>", 20),
                renumbered(3, "<c@x>", 30),
            ],
            true,
        )
        .unwrap();
        let rows = cp.messages("a@x.test", true).unwrap();
        let state = |uid| rows.iter().find(|r| r.uid == uid).unwrap().state;
        assert_eq!(state(11), State::Copied);
        assert_eq!(state(12), State::Skipped(SkipReason::TooLarge));
        assert_eq!(state(13), State::Pending);
    }

    /// `cutover verify` found copies whose flags differ from the source's
    /// although the source's did not change: marked, they are listed for
    /// the next resync to write (with or without flags on the source), and
    /// once written they are not listed again.
    #[test]
    fn copies_marked_for_a_rewrite_are_listed_until_written() {
        let (_d, mut cp, f) = setup();
        let unflagged = MessageMeta {
            flags: Flags::default(),
            ..meta(2, "<b@x>", 20)
        };
        cp.store_scan(
            f,
            1,
            4,
            3,
            &[meta(1, "<a@x>", 10), unflagged, meta(3, "<c@x>", 30)],
            false,
        )
        .unwrap();
        cp.apply(&[copied(f, 1, "t1", None), copied(f, 2, "t2", None)]).unwrap();
        assert_eq!(cp.flag_changes("a@x.test").unwrap(), vec![], "written as copied");

        // UID 3 was never copied: nothing to rewrite there.
        cp.rewrite_flags(&[(f, 1), (f, 2), (f, 3)]).unwrap();
        let changes = cp.flag_changes("a@x.test").unwrap();
        let listed: Vec<(u32, &str, String)> = changes
            .iter()
            .map(|c| (c.uid, c.target_id.as_str(), c.flags.to_wire()))
            .collect();
        assert_eq!(
            listed,
            vec![(1, "t1", "\\Seen".to_owned()), (2, "t2", String::new())],
            "the source's flags, even none"
        );

        cp.apply(&[
            Record::FlagsWritten {
                folder_id: f,
                uid: 1,
                flags: "\\Seen".into(),
                target_id: "t1".into(),
            },
            Record::FlagsWritten {
                folder_id: f,
                uid: 2,
                flags: String::new(),
                target_id: "t2".into(),
            },
        ])
        .unwrap();
        assert_eq!(cp.flag_changes("a@x.test").unwrap(), vec![]);
    }

    /// The source's flags as a resync reads them: those CONDSTORE says
    /// changed, or every message's (without CONDSTORE, compared with the
    /// folder's rows instead of one UPDATE each). Either way the rows whose
    /// flags differ take them; a UID the checkpoint does not know is left
    /// out.
    #[test]
    fn refreshed_flags_reach_the_rows_whose_flags_differ() {
        let (_d, mut cp, f) = setup();
        let metas: Vec<MessageMeta> = (1..=10).map(|uid| meta(uid, &format!("<{uid}@x>"), 10)).collect();
        cp.store_scan(f, 1, 11, 10, &metas, false).unwrap();
        let wire = |s: &str| Flags::from_wire(s).to_wire();
        let recorded = |cp: &Checkpoint| -> Vec<(u32, String)> {
            let mut rows: Vec<(u32, String)> = cp
                .messages("a@x.test", false)
                .unwrap()
                .into_iter()
                .map(|r| (r.uid, r.flags))
                .collect();
            rows.sort();
            rows
        };
        let expect = |changed: &[(u32, &str)]| -> Vec<(u32, String)> {
            (1..=10)
                .map(|uid| {
                    let now = changed.iter().find(|(u, _)| *u == uid).map_or("\\Seen", |(_, f)| *f);
                    (uid, wire(now))
                })
                .collect()
        };

        // CONDSTORE: two changed.
        cp.refresh_flags(f, &[(3, Flags::from_wire("\\Seen \\Flagged")), (7, Flags::default())])
            .unwrap();
        assert_eq!(recorded(&cp), expect(&[(3, "\\Seen \\Flagged"), (7, "")]));

        // Without: every message's, out of order, one more changed, 7 read
        // again, and UID 11 (not scanned yet) too.
        let mut all: Vec<(u32, Flags)> = (1..=11)
            .rev()
            .map(|uid| {
                let f = match uid {
                    3 => "\\Seen \\Flagged",
                    5 => "\\Answered",
                    7 => "",
                    _ => "\\Seen",
                };
                (uid, Flags::from_wire(f))
            })
            .collect();
        all.swap(0, 4);
        cp.refresh_flags(f, &all).unwrap();
        assert_eq!(
            recorded(&cp),
            expect(&[(3, "\\Seen \\Flagged"), (5, "\\Answered"), (7, "")])
        );
    }
}

/// A copy whose source flags changed since they were written to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagChange {
    pub folder_id: i64,
    pub uid: u32,
    pub target_id: String,
    /// The source's flags now: what the copy is to carry.
    pub flags: Flags,
}

/// What `written_flags` holds for a copy whose flags are to be written
/// again whatever the source's are: `cutover verify` found the copy's flags
/// differ from the source's (changed by someone in the target, or lost
/// there). No list of IMAP flags is spelled so (flags are atoms, which
/// take no parentheses), so [`Checkpoint::flag_changes`] lists the copy.
const REWRITE_FLAGS: &str = "(rewrite)";

/// The same flags, in any order and spelling of case.
fn same_flags(a: &str, b: &str) -> bool {
    let set = |s: &str| {
        let mut v: Vec<String> = s.split_whitespace().map(str::to_ascii_lowercase).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    set(a) == set(b)
}

impl Checkpoint {
    /// Records the source's HIGHESTMODSEQ of a folder after a scan.
    pub fn set_highest_modseq(&mut self, folder_id: i64, modseq: u64) -> Result<()> {
        let e = db_err(&self.path);
        self.conn
            .execute(
                "UPDATE folders SET highest_modseq = ?2 WHERE id = ?1",
                params![folder_id, modseq as i64],
            )
            .map_err(&e)?;
        Ok(())
    }

    /// The source's flags of messages already known, as a resync read them
    /// (all of them, or those CONDSTORE says changed).
    pub fn refresh_flags(&mut self, folder_id: i64, flags: &[(u32, Flags)]) -> Result<()> {
        let path = self.path.clone();
        let e = db_err(&path);
        let mut read: Vec<(u32, String)> = flags.iter().map(|(uid, f)| (*uid, f.to_wire())).collect();
        // The flags of (nearly) every message, as a source without
        // CONDSTORE gives them on every resync: only those that differ from
        // the folder's rows, read once in UID order, are written. One
        // UPDATE per message costs several times that read (0.8 s of CPU
        // for a 500,000-message mailbox, most of a no-op resync's).
        let known: i64 = self
            .conn
            .query_row(
                "SELECT exists_count FROM folders WHERE id = ?1",
                params![folder_id],
                |r| r.get(0),
            )
            .map_err(&e)?;
        if read.len() as i64 * 4 >= known {
            read.sort_unstable_by_key(|(uid, _)| *uid);
            let mut differ = Vec::new();
            let mut stmt = self
                .conn
                .prepare_cached("SELECT uid, flags FROM messages WHERE folder_id = ?1 ORDER BY uid")
                .map_err(&e)?;
            let mut rows = stmt.query(params![folder_id]).map_err(&e)?;
            let mut next = read.into_iter().peekable();
            while let Some(r) = rows.next().map_err(&e)? {
                let uid: u32 = r.get(0).map_err(&e)?;
                while next.next_if(|(u, _)| *u < uid).is_some() {}
                if let Some((uid, wire)) = next.next_if(|(u, _)| *u == uid)
                    && r.get_ref(1).map_err(&e)?.as_str().ok() != Some(wire.as_str())
                {
                    differ.push((uid, wire));
                }
            }
            read = differ;
        }
        let tx = self.conn.transaction().map_err(&e)?;
        {
            let mut set = tx
                .prepare_cached("UPDATE messages SET flags = ?3 WHERE folder_id = ?1 AND uid = ?2 AND flags <> ?3")
                .map_err(&e)?;
            for (uid, wire) in &read {
                set.execute(params![folder_id, uid, wire]).map_err(&e)?;
            }
        }
        tx.commit().map_err(&e)?;
        Ok(())
    }

    /// Marks copies whose flags are to be written again on the next
    /// resync (see [`REWRITE_FLAGS`]): the source wins. Rows not recorded
    /// as copied are left as they are.
    pub fn rewrite_flags(&mut self, copies: &[(i64, u32)]) -> Result<()> {
        let path = self.path.clone();
        let e = db_err(&path);
        let tx = self.conn.transaction().map_err(&e)?;
        {
            let mut mark = tx
                .prepare_cached(
                    "UPDATE messages SET written_flags = ?3 WHERE folder_id = ?1 AND uid = ?2 AND state = 'copied'",
                )
                .map_err(&e)?;
            for (folder_id, uid) in copies {
                mark.execute(params![folder_id, uid, REWRITE_FLAGS]).map_err(&e)?;
            }
        }
        tx.commit().map_err(&e)?;
        Ok(())
    }

    /// Copies of the user's present folders whose source flags are no
    /// longer the ones written to them.
    pub fn flag_changes(&self, email: &str) -> Result<Vec<FlagChange>> {
        let email = &super::user_key(email);
        let rows: Vec<(i64, u32, String, String, Option<String>)> = self.query_rows(
            "SELECT m.folder_id, m.uid, m.target_id, m.flags, m.written_flags
             FROM messages m JOIN folders f ON f.id = m.folder_id
             WHERE f.email = ?1 AND f.present = 1 AND m.state = 'copied' AND m.target_id IS NOT NULL
               AND m.written_flags IS NOT m.flags",
            params![email],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?;
        Ok(rows
            .into_iter()
            .filter(|(_, _, _, flags, written)| !same_flags(flags, written.as_deref().unwrap_or("")))
            .map(|(folder_id, uid, target_id, flags, _)| FlagChange {
                folder_id,
                uid,
                target_id,
                flags: Flags::from_wire(&flags),
            })
            .collect())
    }
}

/// A copy kept in the target whose source message is gone from its folder
/// (deleted, or filed elsewhere).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptCopy {
    pub folder_id: i64,
    pub uid: u32,
    pub size: u64,
    pub message_id: Option<String>,
    pub target_id: String,
    /// The target folder holding it.
    pub target_ref: Option<String>,
    /// For a message without a Message-ID, what tells it from others of
    /// its size ([`crate::headers::content_key`]), where recorded.
    pub content_key: Option<String>,
}

/// A message not copied yet (new, or failed), with its key as far as known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uncopied {
    pub folder_id: i64,
    pub uid: u32,
    pub size: u64,
    pub message_id: Option<String>,
}

impl Checkpoint {
    /// The UIDs of a folder's messages the source still had at the last
    /// look (every state but gone).
    pub fn known_uids(&self, folder_id: i64) -> Result<Vec<u32>> {
        self.query_rows(
            "SELECT uid FROM messages WHERE folder_id = ?1 AND state <> 'gone' ORDER BY uid",
            params![folder_id],
            |r| r.get(0),
        )
    }

    /// The UID and size of a folder's messages the source still had at the
    /// last look: what a folder found under another name must agree with
    /// to be taken for this one renamed.
    pub fn known_sizes(&self, folder_id: i64) -> Result<Vec<(u32, u64)>> {
        self.query_rows(
            "SELECT uid, size FROM messages WHERE folder_id = ?1 AND state <> 'gone' ORDER BY uid",
            params![folder_id],
            |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)),
        )
    }

    /// Copies kept in the target whose source message is gone: deleted on
    /// the source, or filed into another folder.
    pub fn kept_copies(&self, email: &str) -> Result<Vec<KeptCopy>> {
        let email = &super::user_key(email);
        self.query_rows(
            "SELECT m.folder_id, m.uid, m.size, m.message_id, m.target_id, f.target_ref, m.content_key
             FROM messages m JOIN folders f ON f.id = m.folder_id
             WHERE f.email = ?1 AND m.state = 'gone' AND m.target_id IS NOT NULL
             ORDER BY m.folder_id, m.uid",
            params![email],
            |r| {
                Ok(KeptCopy {
                    folder_id: r.get(0)?,
                    uid: r.get(1)?,
                    size: r.get::<_, i64>(2)? as u64,
                    message_id: r.get(3)?,
                    target_id: r.get(4)?,
                    target_ref: r.get(5)?,
                    content_key: r.get(6)?,
                })
            },
        )
    }

    /// Messages of the user's present folders not copied yet.
    pub fn uncopied(&self, email: &str) -> Result<Vec<Uncopied>> {
        let email = &super::user_key(email);
        self.query_rows(
            "SELECT m.folder_id, m.uid, m.size, m.message_id
             FROM messages m JOIN folders f ON f.id = m.folder_id
             WHERE f.email = ?1 AND f.present = 1 AND m.state IN ('pending', 'failed') AND m.target_id IS NULL
             ORDER BY m.folder_id, m.uid",
            params![email],
            |r| {
                Ok(Uncopied {
                    folder_id: r.get(0)?,
                    uid: r.get(1)?,
                    size: r.get::<_, i64>(2)? as u64,
                    message_id: r.get(3)?,
                })
            },
        )
    }
}
