//! What the target holds of a label-based source's messages, for the label
//! sync of a resync: which rows have a copy (copied, or gone from their
//! folder with the copy kept) and the marks written to it, flags and labels.

use std::collections::HashMap;

use rusqlite::params;

use super::{Checkpoint, Result, db_err};

/// A copy in the target and what was written to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyMarks {
    pub target_id: String,
    /// The flags written, IMAP spelling (`None`: not recorded).
    pub written_flags: Option<String>,
    /// The labels written, as `labels::labels_to_db` spells them (`None`:
    /// not recorded, a copy made before labels were).
    pub written_labels: Option<String>,
}

impl Checkpoint {
    /// The copies the target holds of the user's present folders' messages,
    /// by (folder id, UID).
    pub fn copy_marks(&self, email: &str) -> Result<HashMap<(i64, u32), CopyMarks>> {
        let email = &super::user_key(email);
        let rows = self.query_rows(
            "SELECT m.folder_id, m.uid, m.target_id, m.written_flags, m.written_labels
             FROM messages m JOIN folders f ON f.id = m.folder_id
             WHERE f.email = ?1 AND f.present = 1 AND m.target_id IS NOT NULL AND m.state IN ('copied', 'gone')",
            params![email],
            |r| {
                Ok((
                    (r.get::<_, i64>(0)?, r.get::<_, u32>(1)?),
                    CopyMarks {
                        target_id: r.get(2)?,
                        written_flags: r.get(3)?,
                        written_labels: r.get(4)?,
                    },
                ))
            },
        )?;
        Ok(rows.into_iter().collect())
    }

    /// Records the labels an upload carries (before it is sent: once the
    /// target confirms it, they are what the copy has) or a copy is taken
    /// to have.
    pub fn set_written_labels(&mut self, labels: &[(i64, u32, String)]) -> Result<()> {
        if labels.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let e = db_err(&path);
        let tx = self.conn.transaction().map_err(&e)?;
        {
            let mut set = tx
                .prepare_cached("UPDATE messages SET written_labels = ?3 WHERE folder_id = ?1 AND uid = ?2")
                .map_err(&e)?;
            for (folder_id, uid, l) in labels {
                set.execute(params![folder_id, uid, l]).map_err(&e)?;
            }
        }
        tx.commit().map_err(&e)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::checkpoint::tests::{copied, meta, setup};
    use crate::checkpoint::{Checkpoint, Record};

    #[test]
    fn labels_written_follow_the_copy_and_go_with_it() {
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
        cp.set_written_labels(&[(f, 1, "Work".into()), (f, 2, String::new())])
            .unwrap();
        cp.apply(&[copied(f, 1, "t1", None), copied(f, 2, "t2", None)]).unwrap();
        let marks = cp.copy_marks("a@x.test").unwrap();
        assert_eq!(marks.len(), 2, "only copies: {marks:?}");
        assert_eq!(marks[&(f, 1)].written_labels.as_deref(), Some("Work"));
        assert_eq!(marks[&(f, 1)].written_flags.as_deref(), Some("\\Seen"));

        // Its message left the folder: the copy stays; then it is moved to
        // another message's row, which takes what was written to it.
        cp.apply(&[Record::Gone { folder_id: f, uid: 1 }]).unwrap();
        assert_eq!(cp.copy_marks("a@x.test").unwrap()[&(f, 1)].target_id, "t1");
        cp.apply(&[Record::Moved {
            from: (f, 1),
            to: (f, 3),
            target_id: "t3".into(),
        }])
        .unwrap();
        let marks = cp.copy_marks("a@x.test").unwrap();
        assert!(!marks.contains_key(&(f, 1)));
        assert_eq!(marks[&(f, 3)].written_labels.as_deref(), Some("Work"));

        cp.apply(&[Record::MarksWritten {
            folder_id: f,
            uid: 3,
            flags: "\\Seen \\Flagged".into(),
            labels: "Family".into(),
            target_id: "t3b".into(),
        }])
        .unwrap();
        let m = &cp.copy_marks("a@x.test").unwrap()[&(f, 3)];
        assert_eq!(
            (
                m.target_id.as_str(),
                m.written_flags.as_deref(),
                m.written_labels.as_deref()
            ),
            ("t3b", Some("\\Seen \\Flagged"), Some("Family"))
        );

        // Its copy removed while the message stays in the folder: a
        // duplicate from now on; nothing of it is in the target.
        cp.apply(&[Record::Unfiled { folder_id: f, uid: 2 }]).unwrap();
        assert!(!cp.copy_marks("a@x.test").unwrap().contains_key(&(f, 2)));
        let rows = cp.messages("a@x.test", false).unwrap();
        let state = |uid| rows.iter().find(|r| r.uid == uid).unwrap().state;
        assert_eq!(
            state(2),
            crate::plan::State::Skipped(crate::model::SkipReason::Duplicate)
        );
        assert_eq!(state(1), crate::plan::State::Gone);
        assert_eq!(cp.user_status("a@x.test").unwrap().copied, 1);
    }

    /// A DB from before labels were recorded gains the column; its copies
    /// have none recorded (taken as written at their next resync).
    #[test]
    fn an_old_state_db_gains_the_labels_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let old = crate::checkpoint::schema::SCHEMA.replace("    written_labels TEXT,\n", "");
            assert_ne!(old, crate::checkpoint::schema::SCHEMA);
            rusqlite::Connection::open(&path).unwrap().execute_batch(&old).unwrap();
        }
        let mut cp = Checkpoint::open(&path).unwrap();
        let f = cp
            .sync_folder_list("a@x.test", &[("INBOX".into(), "INBOX".into(), None)])
            .unwrap()[0]
            .id;
        cp.store_scan(f, 1, 2, 1, &[meta(1, "<a@x>", 10)], false).unwrap();
        cp.apply(&[copied(f, 1, "t1", None)]).unwrap();
        assert_eq!(cp.copy_marks("a@x.test").unwrap()[&(f, 1)].written_labels, None);
        drop(cp);
        assert!(Checkpoint::open(&path).is_ok(), "opening again is a no-op");
    }
}
