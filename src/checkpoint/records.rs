//! The state changes a run makes to its messages, and how a batch of them
//! is applied: in one transaction, so a commit covers thousands of
//! messages and a crash loses at most the batch in progress (those are
//! still in flight, and the next run looks for them before sending again).

use rusqlite::params;

use super::{Checkpoint, Result, db_err, now};
use crate::model::{Headers, SkipReason};

/// One state change, written in batches by the recorder.
#[derive(Clone, Debug)]
pub enum Record {
    InFlight {
        folder_id: i64,
        uid: u32,
    },
    Copied {
        folder_id: i64,
        uid: u32,
        target_id: String,
        /// From the copied body, for a row the scan did not read headers
        /// of: what re-matches the copy after a UIDVALIDITY change. A
        /// Message-ID already recorded is kept.
        message_id: Option<String>,
        /// How the target changed the message's form when it stored it
        /// (a body cut to fit, the original attached): the report lists
        /// it as converted, with this text.
        converted: Option<String>,
    },
    /// What tells a copied message without a Message-ID from others of its
    /// size ([`crate::headers::content_key`]): how its copy is found when
    /// the message is filed into another folder.
    ContentKey {
        folder_id: i64,
        uid: u32,
        key: String,
    },
    /// The Message-ID and Subject of a message a report names (skipped or
    /// failed) whose headers the scan did not read. Recorded once: a
    /// message without a Subject gets an empty one, so it is not asked for
    /// again.
    Headers {
        folder_id: i64,
        headers: Headers,
    },
    Failed {
        folder_id: i64,
        uid: u32,
        reason: String,
    },
    Skipped {
        folder_id: i64,
        uid: u32,
        reason: SkipReason,
    },
    Gone {
        folder_id: i64,
        uid: u32,
    },
    /// The copy of `from` (a message that vanished from its folder on the
    /// source) was moved in the target to `to`'s folder, where the source
    /// filed it: `to` is copied, as `target_id`, with what was written to
    /// the copy; `from` is gone and no longer holds a copy.
    Moved {
        from: (i64, u32),
        to: (i64, u32),
        target_id: String,
    },
    /// The copy of a message deleted on the source was deleted from the
    /// target too (`--mirror-deletions`).
    Deleted {
        folder_id: i64,
        uid: u32,
    },
    /// The copy now carries `flags` (a resync wrote the source's flag
    /// changes to it); `target_id` is its id afterwards (a Maildir file is
    /// renamed).
    FlagsWritten {
        folder_id: i64,
        uid: u32,
        flags: String,
        target_id: String,
    },
    /// The copy of a label-based source's message now carries `flags` and
    /// `labels` (as `labels::labels_to_db` spells them): a resync wrote
    /// the source's marks to it. `target_id` as for `FlagsWritten`.
    MarksWritten {
        folder_id: i64,
        uid: u32,
        flags: String,
        labels: String,
        target_id: String,
    },
    /// The copy of a label-based source's message in this folder was
    /// removed from the target: the message left the folder (a label
    /// removed), or its Archive copy gave way to a label's; another copy
    /// of it is in the target. A message still in the folder is a
    /// duplicate of that copy from now on.
    Unfiled {
        folder_id: i64,
        uid: u32,
    },
}

impl Checkpoint {
    /// Applies a batch of records in one transaction.
    pub fn apply(&mut self, records: &[Record]) -> Result<()> {
        let path = self.path.clone();
        let e = db_err(&path);
        let tx = self.conn.transaction().map_err(&e)?;
        {
            let mut set = tx
                .prepare_cached(
                    "UPDATE messages SET state = ?3, reason = ?4, target_id = COALESCE(?5, target_id),
                        copied_at = COALESCE(?6, copied_at), message_id = COALESCE(message_id, ?7),
                        written_flags = CASE WHEN ?3 = 'copied' THEN flags ELSE written_flags END
                     WHERE folder_id = ?1 AND uid = ?2",
                )
                .map_err(&e)?;
            let mut describe = tx
                .prepare_cached(
                    "UPDATE messages SET message_id = COALESCE(message_id, ?3), subject = COALESCE(?4, subject, '')
                     WHERE folder_id = ?1 AND uid = ?2",
                )
                .map_err(&e)?;
            let mut written = tx
                .prepare_cached(
                    "UPDATE messages SET written_flags = ?3, target_id = ?4 WHERE folder_id = ?1 AND uid = ?2",
                )
                .map_err(&e)?;
            let mut moved_to = tx
                .prepare_cached(
                    "UPDATE messages SET state = 'copied', reason = NULL, target_id = ?5,
                        copied_at = (SELECT copied_at FROM messages WHERE folder_id = ?3 AND uid = ?4),
                        written_flags = (SELECT written_flags FROM messages WHERE folder_id = ?3 AND uid = ?4),
                        written_labels = (SELECT written_labels FROM messages WHERE folder_id = ?3 AND uid = ?4),
                        message_id = COALESCE(message_id, (SELECT message_id FROM messages WHERE folder_id = ?3 AND uid = ?4)),
                        content_key = COALESCE(content_key, (SELECT content_key FROM messages WHERE folder_id = ?3 AND uid = ?4))
                     WHERE folder_id = ?1 AND uid = ?2",
                )
                .map_err(&e)?;
            let mut keyed = tx
                .prepare_cached("UPDATE messages SET content_key = ?3 WHERE folder_id = ?1 AND uid = ?2")
                .map_err(&e)?;
            let mut moved_from = tx
                .prepare_cached(
                    "UPDATE messages SET state = 'gone', target_id = NULL WHERE folder_id = ?1 AND uid = ?2",
                )
                .map_err(&e)?;
            let mut deleted = tx
                .prepare_cached(
                    "UPDATE messages SET target_id = NULL WHERE folder_id = ?1 AND uid = ?2 AND state = 'gone'",
                )
                .map_err(&e)?;
            let mut marks = tx
                .prepare_cached(
                    "UPDATE messages SET written_flags = ?3, written_labels = ?4, target_id = ?5
                     WHERE folder_id = ?1 AND uid = ?2",
                )
                .map_err(&e)?;
            let mut unfiled = tx
                .prepare_cached(
                    "UPDATE messages SET target_id = NULL, written_flags = NULL, written_labels = NULL,
                        reason = CASE WHEN state = 'gone' THEN reason ELSE ?3 END,
                        state = CASE WHEN state = 'gone' THEN 'gone' ELSE 'skipped' END
                     WHERE folder_id = ?1 AND uid = ?2",
                )
                .map_err(&e)?;
            let none = None::<String>;
            let t = now();
            for r in records {
                match r {
                    Record::InFlight { folder_id, uid } => {
                        set.execute(params![folder_id, uid, "inflight", none, none, None::<i64>, none])
                    }
                    Record::Copied {
                        folder_id,
                        uid,
                        target_id,
                        message_id,
                        converted,
                    } => set.execute(params![
                        folder_id,
                        uid,
                        "copied",
                        converted,
                        target_id,
                        Some(t),
                        message_id
                    ]),
                    Record::Failed { folder_id, uid, reason } => {
                        set.execute(params![folder_id, uid, "failed", reason, none, None::<i64>, none])
                    }
                    Record::Skipped { folder_id, uid, reason } => set.execute(params![
                        folder_id,
                        uid,
                        "skipped",
                        reason.as_str(),
                        none,
                        None::<i64>,
                        none
                    ]),
                    Record::Gone { folder_id, uid } => {
                        set.execute(params![folder_id, uid, "gone", none, none, None::<i64>, none])
                    }
                    Record::ContentKey { folder_id, uid, key } => keyed.execute(params![folder_id, uid, key]),
                    Record::Headers { folder_id, headers } => {
                        describe.execute(params![folder_id, headers.uid, headers.message_id, headers.subject])
                    }
                    Record::Deleted { folder_id, uid } => deleted.execute(params![folder_id, uid]),
                    Record::Moved { from, to, target_id } => moved_to
                        .execute(params![to.0, to.1, from.0, from.1, target_id])
                        .and_then(|_| moved_from.execute(params![from.0, from.1])),
                    Record::FlagsWritten {
                        folder_id,
                        uid,
                        flags,
                        target_id,
                    } => written.execute(params![folder_id, uid, flags, target_id]),
                    Record::MarksWritten {
                        folder_id,
                        uid,
                        flags,
                        labels,
                        target_id,
                    } => marks.execute(params![folder_id, uid, flags, labels, target_id]),
                    Record::Unfiled { folder_id, uid } => {
                        unfiled.execute(params![folder_id, uid, SkipReason::Duplicate.as_str()])
                    }
                }
                .map_err(&e)?;
            }
        }
        tx.commit().map_err(&e)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::tests::{setup, without_headers};

    #[test]
    fn headers_read_later_name_problem_items_once() {
        let (_d, mut cp, f) = setup();
        cp.store_scan(f, 1, 3, 2, &[without_headers(1, 10), without_headers(2, 20)], false)
            .unwrap();
        cp.apply(&[
            Record::Skipped {
                folder_id: f,
                uid: 1,
                reason: SkipReason::TooLarge,
            },
            Record::Failed {
                folder_id: f,
                uid: 2,
                reason: "refused".into(),
            },
        ])
        .unwrap();
        assert_eq!(cp.missing_headers("a@x.test").unwrap(), vec![(f, 1), (f, 2)]);
        cp.apply(&[
            Record::Headers {
                folder_id: f,
                headers: Headers {
                    uid: 1,
                    message_id: Some("<big@x>".into()),
                    subject: Some("Holiday photos".into()),
                },
            },
            // No Subject at all: recorded as looked at, reported as none.
            Record::Headers {
                folder_id: f,
                headers: Headers {
                    uid: 2,
                    message_id: None,
                    subject: None,
                },
            },
        ])
        .unwrap();
        assert!(cp.missing_headers("a@x.test").unwrap().is_empty());
        let items = cp.problem_items("a@x.test").unwrap();
        assert_eq!(items[0].subject.as_deref(), Some("Holiday photos"));
        assert_eq!(items[0].message_id.as_deref(), Some("<big@x>"));
        assert_eq!(
            (items[1].subject.as_deref(), items[1].message_id.as_deref()),
            (None, None)
        );
    }

    #[test]
    fn a_converted_copy_is_listed_with_what_was_done_and_a_plain_one_is_not() {
        let (_d, mut cp, f) = setup();
        cp.store_scan(f, 1, 3, 2, &[without_headers(1, 10), without_headers(2, 20)], false)
            .unwrap();
        let copied = |uid: u32, converted: Option<&str>| Record::Copied {
            folder_id: f,
            uid,
            target_id: format!("t{uid}"),
            message_id: None,
            converted: converted.map(str::to_owned),
        };
        // A failure first: copying it later clears the failure's reason.
        cp.apply(&[Record::Failed {
            folder_id: f,
            uid: 1,
            reason: "timed out".into(),
        }])
        .unwrap();
        cp.apply(&[copied(1, None), copied(2, Some("body cut to fit, original attached"))])
            .unwrap();
        let items = cp.problem_items("a@x.test").unwrap();
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!((items[0].uid, items[0].state.as_str()), (2, "converted"));
        assert_eq!(items[0].reason, "body cut to fit, original attached");
        assert_eq!(cp.user_status("a@x.test").unwrap().failed, 0);
    }
}
