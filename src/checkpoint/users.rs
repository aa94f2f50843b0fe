//! Per-user bookkeeping: each user's state and last error, the history of
//! syncs (one row per run per mailbox), the push-back servers gave, and
//! the shard the DB belongs to, which decides which users it may hold.

use std::collections::HashSet;

use rusqlite::{OptionalExtension, params};

use super::{Checkpoint, CheckpointError, Result, SyncCounts, now};

/// How often a run rewrites its waits' heartbeat, in seconds.
pub const WAITS_HEARTBEAT: i64 = 10;

/// Waits whose heartbeat is older than this (three missed beats) were left
/// by a run that is no longer going; `status` and the dashboard leave them
/// out.
pub const WAITS_STALE_AFTER: i64 = 3 * WAITS_HEARTBEAT;

/// The waits of a `users` row, as readers show them: only while the run
/// that wrote them still beats (`heartbeat`, from `meta`, Unix seconds as
/// text), at `now`.
pub(super) fn current_wait(
    on: Option<String>,
    since: Option<i64>,
    heartbeat: Option<String>,
    now: i64,
) -> (Option<String>, Option<i64>) {
    let alive = heartbeat
        .and_then(|h| h.parse::<i64>().ok())
        .is_some_and(|at| now - at <= WAITS_STALE_AFTER);
    match on {
        Some(on) if alive => (Some(on), since),
        _ => (None, None),
    }
}

impl Checkpoint {
    pub fn ensure_user(&self, email: &str) -> Result<()> {
        let email = &super::user_key(email);
        self.conn
            .execute("INSERT OR IGNORE INTO users (email) VALUES (?1)", params![email])
            .map_err(self.err())?;
        Ok(())
    }

    pub fn set_user_state(&self, email: &str, state: &str, error: Option<&str>) -> Result<()> {
        let email = &super::user_key(email);
        self.ensure_user(email)?;
        self.conn
            .execute(
                "UPDATE users SET state = ?2, last_error = ?3 WHERE email = ?1",
                params![email, state, error],
            )
            .map_err(self.err())?;
        Ok(())
    }

    pub fn begin_sync(&self, email: &str) -> Result<i64> {
        let email = &super::user_key(email);
        self.ensure_user(email)?;
        self.conn
            .execute(
                "INSERT INTO syncs (email, started) VALUES (?1, ?2)",
                params![email, now()],
            )
            .map_err(self.err())?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Ends a sync: its state, what it did (`counts`) and its error, also
    /// as the user's state.
    pub fn finish_sync(
        &self,
        sync_id: i64,
        email: &str,
        state: &str,
        counts: &SyncCounts,
        error: Option<&str>,
    ) -> Result<()> {
        let email = &super::user_key(email);
        let t = now();
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.conn
            .execute(
                "UPDATE syncs SET finished = ?2, state = ?3, error = ?4, copied = ?5, bytes = ?6, moved = ?7,
                    flags_updated = ?8, renamed = ?9, deleted_kept = ?10, deleted_mirrored = ?11
                 WHERE id = ?1",
                params![
                    sync_id,
                    t,
                    state,
                    error,
                    n(counts.copied),
                    n(counts.bytes),
                    n(counts.moved),
                    n(counts.flags_updated),
                    n(counts.renamed),
                    n(counts.deleted_kept),
                    n(counts.deleted_mirrored)
                ],
            )
            .map_err(self.err())?;
        self.conn
            .execute(
                "UPDATE users SET state = ?2, last_error = ?3, last_sync = ?4 WHERE email = ?1",
                params![email, state, error, t],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// The copies kept in the target whose source message is gone (as
    /// [`Checkpoint::kept_copies`], keys only). A sync compares them at its
    /// start and end: the keys only at the end are the copies of messages
    /// it found deleted on the source and kept (`SyncCounts::deleted_kept`).
    pub fn kept_copy_keys(&self, email: &str) -> Result<HashSet<(i64, u32)>> {
        let email = &super::user_key(email);
        Ok(self
            .query_rows(
                "SELECT m.folder_id, m.uid FROM messages m JOIN folders f ON f.id = m.folder_id
                 WHERE f.email = ?1 AND m.state = 'gone' AND m.target_id IS NOT NULL",
                params![email],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .into_iter()
            .collect())
    }

    pub fn set_last_scan(&self, email: &str) -> Result<()> {
        let email = &super::user_key(email);
        self.conn
            .execute(
                "UPDATE users SET last_scan = ?2 WHERE email = ?1",
                params![email, now()],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Counts one push-back from a server against a user (shown by
    /// `status`): when, and the server's words.
    pub fn note_throttle(&self, email: &str, reason: &str) -> Result<()> {
        let email = &super::user_key(email);
        self.ensure_user(email)?;
        self.conn
            .execute(
                "UPDATE users SET throttled = throttled + 1, last_throttle = ?2, last_throttle_reason = ?3
                 WHERE email = ?1",
                params![email, now(), reason],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// What `email` waits on now (a [`crate::wait::WaitOn`] name) and since
    /// when (Unix seconds); `None` once it waits on nothing.
    pub fn set_waiting(&self, email: &str, on: Option<&str>, since: Option<i64>) -> Result<()> {
        let email = &super::user_key(email);
        self.conn
            .execute(
                "UPDATE users SET waiting_on = ?2, waiting_since = ?3 WHERE email = ?1",
                params![email, on, on.and(since)],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// The run that writes the waits is alive: rewritten every
    /// [`WAITS_HEARTBEAT`] seconds, so that readers show the waits only
    /// while it is (a killed run leaves them behind).
    pub fn waits_heartbeat(&self) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES ('waits_at', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![now().to_string()],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// No mailbox waits on anything: at the start of a run (what a killed
    /// one left) and at its end.
    pub fn clear_waiting(&self) -> Result<()> {
        self.conn
            .execute_batch(
                "UPDATE users SET waiting_on = NULL, waiting_since = NULL WHERE waiting_on IS NOT NULL;
                 DELETE FROM meta WHERE key = 'waits_at';",
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Ties the DB to the shard a migrate runs as (`None`: not sharded) the
    /// first time, and refuses a different one afterwards: with another
    /// shard count users move between shards, and a user arriving in a DB
    /// that has never seen it would be copied a second time.
    pub fn claim_shard(&self, shard: Option<&str>) -> Result<()> {
        let wanted = shard.unwrap_or("none");
        let stored: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'shard'", [], |r| r.get(0))
            .optional()
            .map_err(self.err())?;
        let stored = match stored {
            Some(s) => s,
            None => {
                // A DB from before shards were recorded that already holds
                // users was made by an unsharded run.
                let users: i64 = self
                    .conn
                    .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
                    .map_err(self.err())?;
                let value = if users > 0 { "none" } else { wanted };
                self.conn
                    .execute("INSERT INTO meta (key, value) VALUES ('shard', ?1)", params![value])
                    .map_err(self.err())?;
                value.to_owned()
            }
        };
        if stored == wanted {
            return Ok(());
        }
        let made_by = if stored == "none" {
            "a run without --shard".to_owned()
        } else {
            format!("--shard {stored}")
        };
        let this = match shard {
            Some(s) => format!("--shard {s}"),
            None => "no --shard".to_owned(),
        };
        Err(CheckpointError(format!(
            "state DB {} was made by {made_by}, and this run has {this}; keep the same --shard K/N \
             (and the same N on every machine) for the whole migration, or users would be copied twice",
            self.path.display()
        )))
    }

    /// The shard the DB was made for (`Some("none")` when not sharded;
    /// `None` if no migrate has run on it since shards were recorded).
    pub fn shard(&self) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = 'shard'", [], |r| r.get(0))
            .optional()
            .map_err(self.err())
    }
}

#[cfg(test)]
mod tests {
    use crate::checkpoint::tests::{copied, meta, setup};
    use crate::checkpoint::{Checkpoint, Record, SyncCounts};

    #[test]
    fn a_db_stays_with_the_shard_that_made_it() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoint::open(&dir.path().join("s.db")).unwrap();
        assert_eq!(cp.shard().unwrap(), None);
        cp.claim_shard(Some("1/4")).unwrap();
        cp.claim_shard(Some("1/4")).unwrap();
        let e = cp.claim_shard(Some("1/8")).unwrap_err().0;
        assert!(e.contains("--shard 1/4") && e.contains("--shard 1/8"), "{e}");
        assert!(cp.claim_shard(None).unwrap_err().0.contains("no --shard"));
        assert_eq!(cp.shard().unwrap().as_deref(), Some("1/4"));
        // A DB an earlier version filled without recording a shard was unsharded.
        let (_d, old, _) = setup();
        assert!(
            old.claim_shard(Some("0/2"))
                .unwrap_err()
                .0
                .contains("a run without --shard")
        );
        old.claim_shard(None).unwrap();
    }

    #[test]
    fn throttles_are_counted_per_user_with_the_last_reason() {
        let (_d, cp, _) = setup();
        assert_eq!(cp.user_status("a@x.test").unwrap().throttled, 0);
        cp.note_throttle("a@x.test", "FETCH answered NO [THROTTLED]").unwrap();
        cp.note_throttle("a@x.test", "BYE bandwidth limit exceeded").unwrap();
        let s = cp.user_status("a@x.test").unwrap();
        assert_eq!(s.throttled, 2);
        assert!(s.last_throttle.is_some());
        assert_eq!(s.last_throttle_reason.as_deref(), Some("BYE bandwidth limit exceeded"));
    }

    #[test]
    fn syncs_are_listed_oldest_first() {
        let (_d, cp, _) = setup();
        let first = cp.begin_sync("a@x.test").unwrap();
        let counts = SyncCounts {
            copied: 3,
            bytes: 300,
            ..Default::default()
        };
        cp.finish_sync(first, "a@x.test", "done", &counts, None).unwrap();
        let second = cp.begin_sync("a@x.test").unwrap();
        let syncs = cp.syncs("a@x.test").unwrap();
        assert_eq!(syncs.len(), 2);
        assert_eq!((syncs[0].id, syncs[0].counts), (first, counts));
        assert!(syncs[0].finished.is_some());
        assert_eq!((syncs[1].id, syncs[1].finished), (second, None));
        assert_eq!(syncs[1].counts, SyncCounts::default(), "nothing counted while it runs");
    }

    /// Each sync keeps what it did; a copy whose message vanished counts
    /// as kept only while it is still in the target, not once moved or
    /// deleted.
    #[test]
    fn a_sync_records_its_moves_flags_renames_and_deletions() {
        let (_d, mut cp, f) = setup();
        let metas: Vec<_> = (1..=4).map(|uid| meta(uid, &format!("<{uid}>"), 10)).collect();
        cp.store_scan(f, 1, 5, 4, &metas, false).unwrap();
        cp.apply(
            &(1..=4)
                .map(|uid| copied(f, uid, &format!("t{uid}"), None))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let before = cp.kept_copy_keys("a@x.test").unwrap();
        assert!(before.is_empty());
        let first = cp.begin_sync("a@x.test").unwrap();
        // 1 and 2 deleted on the source, 3 filed elsewhere (as 4's folder
        // would: here its row stands in for the new place).
        cp.apply(&[
            Record::Gone { folder_id: f, uid: 1 },
            Record::Gone { folder_id: f, uid: 2 },
            Record::Gone { folder_id: f, uid: 3 },
        ])
        .unwrap();
        cp.store_scan(f, 1, 6, 2, &[meta(5, "<3>", 10)], false).unwrap();
        cp.apply(&[Record::Moved {
            from: (f, 3),
            to: (f, 5),
            target_id: "t5".into(),
        }])
        .unwrap();
        let after = cp.kept_copy_keys("A@x.test").unwrap();
        assert_eq!(after, [(f, 1), (f, 2)].into_iter().collect());
        let counts = SyncCounts {
            moved: 1,
            flags_updated: 4,
            renamed: 2,
            deleted_kept: after.difference(&before).count() as u64,
            ..Default::default()
        };
        cp.finish_sync(first, "A@X.test", "done", &counts, None).unwrap();

        // The next sync mirrors one of them: nothing newly kept.
        let second = cp.begin_sync("a@x.test").unwrap();
        cp.apply(&[Record::Deleted { folder_id: f, uid: 1 }]).unwrap();
        let end = cp.kept_copy_keys("a@x.test").unwrap();
        assert_eq!(end, [(f, 2)].into_iter().collect());
        let mirrored = SyncCounts {
            deleted_kept: end.difference(&after).count() as u64,
            deleted_mirrored: 1,
            ..Default::default()
        };
        cp.finish_sync(second, "a@x.test", "partial", &mirrored, Some("why"))
            .unwrap();

        let syncs = cp.syncs("a@x.test").unwrap();
        assert_eq!(syncs.len(), 2);
        assert_eq!(
            (
                syncs[0].counts.moved,
                syncs[0].counts.flags_updated,
                syncs[0].counts.renamed
            ),
            (1, 4, 2)
        );
        assert_eq!((syncs[0].counts.deleted_kept, syncs[0].counts.deleted_mirrored), (2, 0));
        assert_eq!((syncs[1].counts.deleted_kept, syncs[1].counts.deleted_mirrored), (0, 1));
        assert_eq!(
            (syncs[1].state.as_str(), syncs[1].error.as_deref()),
            ("partial", Some("why"))
        );
        assert_eq!(cp.user_status("a@x.test").unwrap().deleted_on_source, 1);
    }
}
