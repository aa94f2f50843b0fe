//! The schedule of `cutover migrate --every`: one row (table `schedule`,
//! `id = 1`) while a resync loop runs on this state DB, so that `status`
//! and the dashboard, which only read the DB, can say when the next pass
//! comes without asking the process.
//!
//! The row's life:
//!
//! - a pass starts: `pass` is its number (1 for the loop's first),
//!   `pass_started_at` its start and `next_pass_at` NULL;
//! - the pass ends and the loop goes on: `next_pass_at` is when the next
//!   one starts;
//! - the loop ends (a signal, an error): the row is deleted;
//! - a plain `migrate` (without `--every`) deletes it too: it holds the
//!   run lock, which the loop holds for its whole life, so any row it finds
//!   was left by a loop that was killed.
//!
//! While the loop lives it rewrites `updated_at` at least every
//! [`SCHEDULE_HEARTBEAT`] seconds, also during a long pass: a row not
//! rewritten for [`SCHEDULE_STALE_AFTER`] seconds was left by a process
//! that died without cleaning up (SIGKILL, a crash), and
//! [`Schedule::is_current`] is false. All times are Unix seconds. The row
//! is read with [`Checkpoint::schedule`] (`dashboard.rs`), by `status` and
//! the dashboard alike.

use rusqlite::params;

use super::{Checkpoint, Result, Schedule, now};

/// How often a running loop rewrites `updated_at`, in seconds.
pub const SCHEDULE_HEARTBEAT: i64 = 60;

/// A row not rewritten for this long (five missed heartbeats) is left
/// over from a dead process.
pub const SCHEDULE_STALE_AFTER: i64 = 5 * SCHEDULE_HEARTBEAT;

impl Schedule {
    /// A pass is running (none is waited for).
    pub fn running(&self) -> bool {
        self.next_pass_at.is_none()
    }

    /// The loop that wrote the row is still alive (it rewrote the row
    /// recently), as far as the DB can tell at `now`.
    pub fn is_current(&self, now: i64) -> bool {
        now - self.updated_at <= SCHEDULE_STALE_AFTER
    }
}

impl Checkpoint {
    /// Pass `pass` of a loop resyncing every `every_seconds` starts now.
    pub fn schedule_pass_started(&self, every_seconds: u64, pass: u64, started_at: i64) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO schedule (id, every_seconds, pass, pass_started_at, next_pass_at, updated_at)
                 VALUES (1, ?1, ?2, ?3, NULL, ?4)
                 ON CONFLICT (id) DO UPDATE SET every_seconds = excluded.every_seconds, pass = excluded.pass,
                    pass_started_at = excluded.pass_started_at, next_pass_at = NULL, updated_at = excluded.updated_at",
                params![every_seconds as i64, pass as i64, started_at, now()],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// The pass that ran is over; the next one starts at `next_pass_at`.
    pub fn schedule_next_pass(&self, next_pass_at: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE schedule SET next_pass_at = ?1, updated_at = ?2 WHERE id = 1",
                params![next_pass_at, now()],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// The loop is alive: rewrites `updated_at`.
    pub fn schedule_heartbeat(&self) -> Result<()> {
        self.conn
            .execute("UPDATE schedule SET updated_at = ?1 WHERE id = 1", params![now()])
            .map_err(self.err())?;
        Ok(())
    }

    /// No loop runs on this DB (any more).
    pub fn clear_schedule(&self) -> Result<()> {
        self.conn.execute("DELETE FROM schedule", []).map_err(self.err())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_follows_the_loop_and_goes_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoint::open(&dir.path().join("state.db")).unwrap();
        assert_eq!(cp.schedule().unwrap(), None);
        cp.schedule_pass_started(1800, 1, 1_000).unwrap();
        let row = cp.schedule().unwrap().unwrap();
        assert_eq!(
            (row.every_seconds, row.pass, row.pass_started_at),
            (1800, 1, Some(1_000))
        );
        assert!(row.running());
        cp.schedule_next_pass(2_800).unwrap();
        let row = cp.schedule().unwrap().unwrap();
        assert_eq!(row.next_pass_at, Some(2_800));
        assert!(!row.running());
        cp.schedule_pass_started(1800, 2, 2_800).unwrap();
        let row = cp.schedule().unwrap().unwrap();
        assert_eq!((row.pass, row.next_pass_at), (2, None), "one row, the new pass");
        cp.schedule_heartbeat().unwrap();
        cp.clear_schedule().unwrap();
        assert_eq!(cp.schedule().unwrap(), None);
    }

    #[test]
    fn a_row_not_rewritten_for_five_heartbeats_is_stale() {
        let row = Schedule {
            every_seconds: 60,
            pass: 3,
            pass_started_at: Some(100),
            next_pass_at: None,
            updated_at: 1_000,
        };
        assert!(row.is_current(1_000 + SCHEDULE_STALE_AFTER));
        assert!(!row.is_current(1_001 + SCHEDULE_STALE_AFTER));
    }

    #[test]
    fn the_table_is_the_one_the_dashboard_reads() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoint::open(&dir.path().join("state.db")).unwrap();
        let sql: String = cp
            .conn
            .query_row("SELECT sql FROM sqlite_master WHERE name = 'schedule'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(
            sql,
            "CREATE TABLE schedule (id INTEGER PRIMARY KEY CHECK (id = 1), every_seconds INTEGER NOT NULL, pass INTEGER NOT NULL, pass_started_at INTEGER, next_pass_at INTEGER, updated_at INTEGER NOT NULL)"
        );
        let second = cp.conn.execute(
            "INSERT INTO schedule (id, every_seconds, pass, updated_at) VALUES (2, 1, 1, 1)",
            [],
        );
        assert!(second.is_err(), "one row only");
    }
}
