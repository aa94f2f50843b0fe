//! The state DB: what each scan saw and what each run copied, in SQLite
//! (WAL, batched transactions). It is what makes a rerun an incremental
//! resync and a crash harmless: a message is recorded as copied only after
//! the target confirmed it, and a message whose upload was under way when a
//! run died is marked in flight so the next run looks for it before sending
//! it again. One run at a time holds the DB's lock file.
//!
//! This module opens the DB and holds the error type; each concern of the
//! DB lives in a submodule that adds its own methods to [`Checkpoint`]:
//!
//! - `schema`: the tables, and the upgrade of a DB an earlier version wrote;
//! - `lock`: the run lock that keeps a second run off the same DB;
//! - `folders`: the folders a source lists and their target counterparts;
//! - `messages`: what scans found, and the per-message state planning reads;
//! - `labels`: the copies of a label-based source's messages and the marks
//!   written to them, for the label sync;
//! - `records`: the state changes a run makes, applied in batches;
//! - `recorder`: the thread that applies them during a run;
//! - `users`: per-user state, sync history, throttles and the shard claim;
//! - `queries`: the figures and lists `status` and `report` show.
//! - `schedule`: the resync loop of `migrate --every`, one row while it
//!   runs, so `status` and the dashboard can show the next pass;
//! - `dashboard`: what `cutover serve` reads besides, on a connection
//!   opened read-only ([`Checkpoint::open_read_only`]).

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

mod dashboard;
mod folders;
mod labels;
mod lock;
mod messages;
mod pim;
mod queries;
mod recorder;
mod records;
mod schedule;
mod schema;
mod users;

pub use dashboard::{ItemPage, ItemQuery, ItemRow, ItemSort, Schedule, UserRow};
pub use folders::FolderRow;
pub use labels::CopyMarks;
pub use lock::{RunLock, lock};
pub use messages::{FlagChange, KeptCopy, MessageRow, Uncopied, state_to_db};
pub use pim::{PimCollection, PimCounts, PimItem, PimRecord, PimState};
pub use queries::{ProblemItem, SyncCounts, SyncRecord, UserStatus};
pub use recorder::Recorder;
pub use records::Record;
pub use schedule::{SCHEDULE_HEARTBEAT, SCHEDULE_STALE_AFTER};
use schema::{SCHEMA, migrate_schema};
pub use users::{WAITS_HEARTBEAT, WAITS_STALE_AFTER};

/// Why the state DB could not be opened, read or written, in words for the
/// admin (the path, SQLite's reason and what to do about it).
/// How a mailbox is keyed in the state DB: its address in lower case
/// (ASCII, as SQLite's `lower()` upgrades older DBs), so a users file
/// written again with other capitals finds the same mailbox instead of
/// copying it again.
pub(crate) fn user_key(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CheckpointError(pub String);

type Result<T> = std::result::Result<T, CheckpointError>;

fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> CheckpointError + '_ {
    move |e| CheckpointError(format!("state DB {}: {}", path.display(), describe_db_error(&e)))
}

/// SQLite's words, plus what the admin should do when the disk under the
/// state DB is full or failing (SQLite reports a full disk in the WAL or
/// its index as a plain "disk I/O error").
fn describe_db_error(e: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode;
    let code = e.sqlite_error_code();
    if code == Some(ErrorCode::DiskFull) {
        return format!("{e}: the disk holding it is full; free some space there");
    }
    if code == Some(ErrorCode::SystemIoFailure) {
        return format!("{e}: writing to the disk holding it failed (full, read-only or failing?); check that disk");
    }
    e.to_string()
}

/// An open state DB. Its methods are spread over the submodules by concern.
pub struct Checkpoint {
    conn: Connection,
    path: PathBuf,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Checkpoint {
    /// Opens (creating if needed, mode 0600) the state DB.
    pub fn open(path: &Path) -> Result<Checkpoint> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                CheckpointError(format!(
                    "cannot create directory {} for the state DB: {e}",
                    dir.display()
                ))
            })?;
        }
        if !path.exists() {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| CheckpointError(format!("cannot create state DB {}: {e}", path.display())))?;
        }
        let conn = Connection::open(path).map_err(db_err(path))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(db_err(path))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db_err(path))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db_err(path))?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| CheckpointError(format!("state DB {} is not usable: {e}", path.display())))?;
        migrate_schema(&conn).map_err(|e| {
            CheckpointError(format!(
                "state DB {} could not be upgraded: {e}; check that it is writable",
                path.display()
            ))
        })?;
        Ok(Checkpoint {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing state DB for reading only (status, report).
    pub fn open_existing(path: &Path) -> Result<Checkpoint> {
        if !path.is_file() {
            return Err(CheckpointError(format!(
                "state DB {} does not exist; run `cutover migrate` first (or point [state] path at it)",
                path.display()
            )));
        }
        Self::open(path)
    }

    /// Opens an existing state DB strictly for reading (`cutover serve`,
    /// while a migrate may be writing it): SQLite read-only, no schema
    /// created or upgraded, no run lock. WAL lets it read while a run
    /// writes; a DB an earlier version wrote and no later one opened may
    /// lack columns, which the queries then name.
    pub fn open_read_only(path: &Path) -> Result<Checkpoint> {
        use rusqlite::OpenFlags;
        if !path.is_file() {
            return Err(CheckpointError(format!(
                "state DB {} does not exist; run `cutover migrate` first (or point [state] path or --state at it)",
                path.display()
            )));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(db_err(path))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db_err(path))?;
        // Belt and braces: even a statement that tried would not write.
        conn.pragma_update(None, "query_only", true).map_err(db_err(path))?;
        Ok(Checkpoint {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> CheckpointError + '_ {
        db_err(&self.path)
    }

    /// Runs a read query (its statement cached) and turns every row into a
    /// value with `row`; any error names the DB.
    fn query_rows<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.err())?;
        let rows = stmt.query_map(params, row).map_err(self.err())?;
        rows.collect::<std::result::Result<Vec<_>, _>>().map_err(self.err())
    }
}

/// A Unix time as the checkpoint's readers show it (UTC, RFC 3339).
pub fn format_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Fixtures the tests of every submodule share: a DB with one user and
/// its INBOX, and messages as scans see them.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Flags, FolderRole, MessageMeta};

    pub(super) fn meta(uid: u32, mid: &str, size: u64) -> MessageMeta {
        MessageMeta {
            uid,
            flags: Flags::from_wire("\\Seen"),
            internal_date: 1_000 + i64::from(uid),
            size,
            message_id: Some(mid.to_owned()),
            subject: Some(format!("Subject {uid}")),
            gm_msgid: None,
        }
    }

    /// What the copy loop records once the target confirmed a message.
    pub(super) fn copied(folder_id: i64, uid: u32, target_id: &str, message_id: Option<&str>) -> Record {
        Record::Copied {
            folder_id,
            uid,
            target_id: target_id.into(),
            message_id: message_id.map(str::to_owned),
            converted: None,
        }
    }

    /// A message as a scan without headers sees it.
    pub(super) fn without_headers(uid: u32, size: u64) -> MessageMeta {
        MessageMeta {
            message_id: None,
            subject: None,
            ..meta(uid, "", size)
        }
    }

    pub(super) fn setup() -> (tempfile::TempDir, Checkpoint, i64) {
        let dir = tempfile::tempdir().unwrap();
        let mut cp = Checkpoint::open(&dir.path().join("state.db")).unwrap();
        cp.ensure_user("a@x.test").unwrap();
        let folders = cp
            .sync_folder_list("a@x.test", &[("INBOX".into(), "INBOX".into(), Some(FolderRole::Inbox))])
            .unwrap();
        let id = folders[0].id;
        (dir, cp, id)
    }

    #[test]
    fn db_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, _cp, _) = setup();
        let mode = std::fs::metadata(dir.path().join("state.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
