//! Per-user bookkeeping: each user's state and last error, the history of
//! syncs (one row per run per mailbox), the push-back servers gave, and
//! the shard the DB belongs to, which decides which users it may hold.

use rusqlite::{OptionalExtension, params};

use super::{Checkpoint, CheckpointError, Result, now};

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

    pub fn finish_sync(
        &self,
        sync_id: i64,
        email: &str,
        state: &str,
        copied: u64,
        bytes: u64,
        error: Option<&str>,
    ) -> Result<()> {
        let email = &super::user_key(email);
        let t = now();
        self.conn
            .execute(
                "UPDATE syncs SET finished = ?2, state = ?3, copied = ?4, bytes = ?5, error = ?6 WHERE id = ?1",
                params![sync_id, t, state, copied as i64, bytes as i64, error],
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
    use crate::checkpoint::Checkpoint;
    use crate::checkpoint::tests::setup;

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
        cp.finish_sync(first, "a@x.test", "done", 3, 300, None).unwrap();
        let second = cp.begin_sync("a@x.test").unwrap();
        let syncs = cp.syncs("a@x.test").unwrap();
        assert_eq!(syncs.len(), 2);
        assert_eq!((syncs[0].id, syncs[0].copied, syncs[0].bytes), (first, 3, 300));
        assert!(syncs[0].finished.is_some());
        assert_eq!((syncs[1].id, syncs[1].finished), (second, None));
    }
}
