//! What `status` and `report` read back: per-user figures, every skipped or
//! failed message, and the sync history. Reads only; nothing here changes
//! the DB.

use rusqlite::{OptionalExtension, params};

use super::{Checkpoint, Result, format_time};

/// Per-user figures for `status` and reports.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct UserStatus {
    pub email: String,
    pub state: String,
    pub folders: u64,
    pub source_messages: u64,
    pub copied: u64,
    pub skipped: u64,
    pub skipped_by_reason: std::collections::BTreeMap<String, u64>,
    pub failed: u64,
    /// Copies kept in the target whose message was deleted on the source
    /// (or is in a folder no longer in scope).
    pub deleted_on_source: u64,
    pub bytes_copied: u64,
    /// Bytes of the messages the last scan saw (gone ones left out).
    pub source_bytes: u64,
    pub last_sync: Option<String>,
    pub last_error: Option<String>,
    /// Times a server told this user's connections to slow down (throttling
    /// response codes, a throttling BYE, refused connections), over all runs.
    pub throttled: u64,
    /// When the last of those was, and what the server said.
    pub last_throttle: Option<String>,
    pub last_throttle_reason: Option<String>,
    /// What the mailbox waits on while a run goes (`source_slot`,
    /// `in_flight_bytes`, `target_budget`, `throttled`, `source_rate`,
    /// `login_rate`) and since when; `None` when it waits on nothing or no
    /// run is going (then absent from the JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_on: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<String>,
}

/// A message that was skipped, failed or converted (copied in another
/// form, its reason says how), for status and reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProblemItem {
    pub email: String,
    pub folder: String,
    pub uid: u32,
    pub internal_date: String,
    pub size: u64,
    pub message_id: Option<String>,
    /// Decoded Subject; `None` for messages scanned before subjects were
    /// recorded.
    pub subject: Option<String>,
    pub state: String,
    pub reason: String,
}

/// What one sync (one `cutover migrate` pass over one mailbox) did to the
/// target, as the `syncs` table counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncCounts {
    /// Messages copied.
    pub copied: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Copies made before, moved to the folder the source filed their
    /// message in.
    pub moved: u64,
    /// Copies made before whose flags were changed to the source's.
    pub flags_updated: u64,
    /// Target folders renamed as on the source.
    pub renamed: u64,
    /// Copies whose message this sync found deleted on the source (gone
    /// from its folder and not filed elsewhere) and that are still in the
    /// target at its end: kept, as by default.
    pub deleted_kept: u64,
    /// Copies of messages deleted on the source that this sync deleted
    /// from the target (`--mirror-deletions`).
    pub deleted_mirrored: u64,
}

impl SyncCounts {
    /// Adds `other` to these counts (totals over syncs).
    pub fn add(&mut self, other: &SyncCounts) {
        self.copied += other.copied;
        self.bytes += other.bytes;
        self.moved += other.moved;
        self.flags_updated += other.flags_updated;
        self.renamed += other.renamed;
        self.deleted_kept += other.deleted_kept;
        self.deleted_mirrored += other.deleted_mirrored;
    }
}

/// One run's work on one mailbox, from the `syncs` table.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SyncRecord {
    pub id: i64,
    pub email: String,
    /// Unix seconds.
    pub started: i64,
    /// Unix seconds; `None` while running, or when the run was killed.
    pub finished: Option<i64>,
    pub state: String,
    #[serde(flatten)]
    pub counts: SyncCounts,
    pub error: Option<String>,
}

impl Checkpoint {
    pub fn user_emails(&self) -> Result<Vec<String>> {
        self.query_rows("SELECT email FROM users ORDER BY email", [], |r| r.get(0))
    }

    pub fn user_status(&self, email: &str) -> Result<UserStatus> {
        let email = &super::user_key(email);
        type UserRow = (String, Option<i64>, Option<String>, i64, Option<i64>, Option<String>);
        type WaitRow = (Option<String>, Option<i64>, Option<String>);
        let ((state, last_sync, last_error, throttled, last_throttle, last_throttle_reason), wait): (UserRow, WaitRow) =
            self.conn
                .query_row(
                    "SELECT state, last_sync, last_error, throttled, last_throttle, last_throttle_reason,
                        waiting_on, waiting_since, (SELECT value FROM meta WHERE key = 'waits_at')
                     FROM users WHERE email = ?1",
                    params![email],
                    |r| {
                        Ok((
                            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?),
                            (r.get(6)?, r.get(7)?, r.get(8)?),
                        ))
                    },
                )
                .optional()
                .map_err(self.err())?
                .unwrap_or_else(|| (("pending".to_owned(), None, None, 0, None, None), (None, None, None)));
        let (waiting_on, waiting_since) = super::users::current_wait(wait.0, wait.1, wait.2, super::now());
        let (folders, source_messages): (i64, Option<i64>) = self
            .conn
            .query_row(
                "SELECT COUNT(*), SUM(exists_count) FROM folders WHERE email = ?1 AND present = 1",
                params![email],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(self.err())?;
        let mut status = UserStatus {
            email: email.to_owned(),
            state,
            folders: folders as u64,
            source_messages: source_messages.unwrap_or(0) as u64,
            last_sync: last_sync.map(format_time),
            last_error,
            throttled: throttled.max(0) as u64,
            last_throttle: last_throttle.map(format_time),
            last_throttle_reason,
            waiting_on,
            waiting_since: waiting_since.map(format_time),
            ..Default::default()
        };
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT m.state, m.reason, COUNT(*), SUM(m.size) FROM messages m JOIN folders f ON f.id = m.folder_id
                 WHERE f.email = ?1 GROUP BY m.state, m.reason",
            )
            .map_err(self.err())?;
        let mut rows = stmt.query(params![email]).map_err(self.err())?;
        while let Some(r) = rows.next().map_err(self.err())? {
            let state: String = r.get(0).map_err(self.err())?;
            let reason: Option<String> = r.get(1).map_err(self.err())?;
            let count: i64 = r.get(2).map_err(self.err())?;
            let bytes: Option<i64> = r.get(3).map_err(self.err())?;
            if state != "gone" {
                status.source_bytes += bytes.unwrap_or(0) as u64;
            }
            match state.as_str() {
                "copied" => {
                    status.copied += count as u64;
                    status.bytes_copied += bytes.unwrap_or(0) as u64;
                }
                "skipped" => {
                    status.skipped += count as u64;
                    *status.skipped_by_reason.entry(reason.unwrap_or_default()).or_default() += count as u64;
                }
                "failed" => status.failed += count as u64,
                _ => {}
            }
        }
        let deleted: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM messages m JOIN folders f ON f.id = m.folder_id
                 WHERE f.email = ?1 AND m.state = 'gone' AND m.target_id IS NOT NULL",
                params![email],
                |r| r.get(0),
            )
            .map_err(self.err())?;
        status.deleted_on_source = deleted as u64;
        Ok(status)
    }

    /// The skipped and failed messages of a user whose headers were never
    /// read (the scan reads none), by folder id: what a report would name
    /// without a Subject or Message-ID. Copies a label-based source shows in
    /// several folders are left out, as in [`Checkpoint::problem_items`].
    pub fn missing_headers(&self, email: &str) -> Result<Vec<(i64, u32)>> {
        let email = &super::user_key(email);
        self.query_rows(
            "SELECT m.folder_id, m.uid FROM messages m JOIN folders f ON f.id = m.folder_id
             WHERE f.email = ?1 AND f.present = 1 AND m.state IN ('skipped', 'failed') AND m.subject IS NULL
               AND NOT (m.state = 'skipped' AND m.reason = 'copied from another folder')
             ORDER BY m.folder_id, m.uid",
            params![email],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// Every skipped, failed or converted message of a user (a converted
    /// one was copied in another form, which its reason says), except the
    /// copies a label-based source (Gmail) shows in several folders: those
    /// are not problems, only counted (the message itself was copied once).
    pub fn problem_items(&self, email: &str) -> Result<Vec<ProblemItem>> {
        let email = &super::user_key(email);
        self.query_rows(
            "SELECT f.path, m.uid, m.internal_date, m.size, m.message_id,
                    CASE m.state WHEN 'copied' THEN 'converted' ELSE m.state END, m.reason, NULLIF(m.subject, '')
             FROM messages m JOIN folders f ON f.id = m.folder_id
             WHERE f.email = ?1
               AND (m.state IN ('skipped', 'failed') OR (m.state = 'copied' AND m.reason IS NOT NULL))
               AND NOT (m.state = 'skipped' AND m.reason = 'copied from another folder')
             ORDER BY f.path, m.uid",
            params![email],
            |r| {
                Ok(ProblemItem {
                    email: email.to_owned(),
                    folder: r.get(0)?,
                    uid: r.get(1)?,
                    internal_date: format_time(r.get(2)?),
                    size: r.get::<_, i64>(3)? as u64,
                    message_id: r.get(4)?,
                    state: r.get(5)?,
                    reason: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
                    subject: r.get(7)?,
                })
            },
        )
    }

    /// Every sync of a user, oldest first.
    pub fn syncs(&self, email: &str) -> Result<Vec<SyncRecord>> {
        let email = &super::user_key(email);
        self.query_rows(
            &format!("SELECT {SYNC_COLUMNS} FROM syncs WHERE email = ?1 ORDER BY started, id"),
            params![email],
            |r| sync_record(r, email.to_owned()),
        )
    }
}

/// The columns [`sync_record`] reads, in its order.
pub(super) const SYNC_COLUMNS: &str =
    "id, started, finished, state, error, copied, bytes, moved, flags_updated, renamed, deleted_kept, deleted_mirrored";

/// A `syncs` row selected as [`SYNC_COLUMNS`].
pub(super) fn sync_record(r: &rusqlite::Row<'_>, email: String) -> rusqlite::Result<SyncRecord> {
    let count = |i: usize| r.get::<_, i64>(i).map(|n| n.max(0) as u64);
    Ok(SyncRecord {
        id: r.get(0)?,
        email,
        started: r.get(1)?,
        finished: r.get(2)?,
        state: r.get(3)?,
        error: r.get(4)?,
        counts: SyncCounts {
            copied: count(5)?,
            bytes: count(6)?,
            moved: count(7)?,
            flags_updated: count(8)?,
            renamed: count(9)?,
            deleted_kept: count(10)?,
            deleted_mirrored: count(11)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use crate::checkpoint::Record;
    use crate::checkpoint::tests::{copied, meta, setup};
    use crate::model::SkipReason;

    #[test]
    fn status_counts_states_and_reasons() {
        let (_d, mut cp, f) = setup();
        cp.store_scan(
            f,
            1,
            5,
            4,
            &[
                meta(1, "<a>", 10),
                meta(2, "<b>", 20),
                meta(3, "<c>", 30),
                meta(4, "<d>", 40),
            ],
            false,
        )
        .unwrap();
        cp.apply(&[
            copied(f, 1, "t", None),
            Record::Skipped {
                folder_id: f,
                uid: 2,
                reason: SkipReason::TooLarge,
            },
            Record::Failed {
                folder_id: f,
                uid: 3,
                reason: "boom".into(),
            },
        ])
        .unwrap();
        let s = cp.user_status("a@x.test").unwrap();
        assert_eq!(
            (s.source_messages, s.copied, s.skipped, s.failed, s.bytes_copied),
            (4, 1, 1, 1, 10)
        );
        assert_eq!(s.skipped_by_reason.get("too large"), Some(&1));
        let problems = cp.problem_items("a@x.test").unwrap();
        assert_eq!(problems.len(), 2);
    }
}
