//! The state DB: what each scan saw and what each run copied, in SQLite
//! (WAL, batched transactions). It is what makes a rerun an incremental
//! resync and a crash harmless: a message is recorded as copied only after
//! the target confirmed it, and a message whose upload was under way when a
//! run died is marked in flight so the next run looks for it before sending
//! it again. One run at a time holds the DB's lock file.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::model::{FolderRole, Headers, MessageMeta, SkipReason};
use crate::plan::State;

#[derive(Debug)]
pub struct CheckpointError(pub String);

impl std::fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CheckpointError {}

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

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    email TEXT PRIMARY KEY,
    state TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT,
    last_scan INTEGER,
    last_sync INTEGER
);
CREATE TABLE IF NOT EXISTS folders (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL,
    wire_name TEXT NOT NULL,
    path TEXT NOT NULL,
    role TEXT,
    uid_validity INTEGER NOT NULL DEFAULT 0,
    uid_next INTEGER NOT NULL DEFAULT 0,
    exists_count INTEGER NOT NULL DEFAULT 0,
    max_uid INTEGER NOT NULL DEFAULT 0,
    target_ref TEXT,
    present INTEGER NOT NULL DEFAULT 1,
    UNIQUE (email, wire_name)
);
CREATE TABLE IF NOT EXISTS messages (
    folder_id INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    internal_date INTEGER NOT NULL,
    size INTEGER NOT NULL,
    flags TEXT NOT NULL,
    message_id TEXT,
    subject TEXT,
    gm_msgid INTEGER,
    state TEXT NOT NULL DEFAULT 'pending',
    reason TEXT,
    target_id TEXT,
    copied_at INTEGER,
    PRIMARY KEY (folder_id, uid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS syncs (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL,
    started INTEGER NOT NULL,
    finished INTEGER,
    state TEXT NOT NULL DEFAULT 'running',
    copied INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
";

/// Brings a state DB written by an earlier version up to [`SCHEMA`]:
/// columns added since are added here (SQLite has no ADD COLUMN IF NOT
/// EXISTS), so an upgrade never needs a fresh state DB.
fn migrate_schema(conn: &Connection) -> rusqlite::Result<()> {
    let has_subject: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('messages') WHERE name = 'subject'",
        [],
        |r| r.get(0),
    )?;
    if !has_subject {
        conn.execute_batch("ALTER TABLE messages ADD COLUMN subject TEXT")?;
    }
    // Server push-back per user, for `status`.
    for (column, ty) in [
        ("throttled", "INTEGER NOT NULL DEFAULT 0"),
        ("last_throttle", "INTEGER"),
        ("last_throttle_reason", "TEXT"),
    ] {
        let has: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('users') WHERE name = ?1",
            params![column],
            |r| r.get(0),
        )?;
        if !has {
            conn.execute_batch(&format!("ALTER TABLE users ADD COLUMN {column} {ty}"))?;
        }
    }
    // Facts about the DB itself (which shard it was made for).
    conn.execute_batch("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")?;
    let has_gm_msgid: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('messages') WHERE name = 'gm_msgid'",
        [],
        |r| r.get(0),
    )?;
    if !has_gm_msgid {
        conn.execute_batch("ALTER TABLE messages ADD COLUMN gm_msgid INTEGER")?;
    }
    Ok(())
}

/// Held for the whole run: a second run on the same state DB is refused.
pub struct RunLock {
    _file: File,
}

/// Takes the run lock next to the state DB.
pub fn lock(db_path: &Path) -> Result<RunLock> {
    let lock_path = lock_path(db_path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| CheckpointError(format!("cannot create lock file {}: {e}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(RunLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(CheckpointError(format!(
            "another cutover run is using the state DB {} (lock {} is held); wait for it to finish, or give this run its own [state] path",
            db_path.display(),
            lock_path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(CheckpointError(format!("cannot lock {}: {e}", lock_path.display())))
        }
    }
}

fn lock_path(db_path: &Path) -> PathBuf {
    let mut s = db_path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// A folder as the checkpoint knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderRow {
    pub id: i64,
    pub wire_name: String,
    pub path: String,
    pub role: Option<FolderRole>,
    pub uid_validity: u32,
    pub uid_next: u32,
    pub exists: u32,
    pub max_uid: u32,
    pub target_ref: Option<String>,
}

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
}

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
}

/// A message that was skipped or failed, for status and reports.
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
    pub copied: u64,
    pub bytes: u64,
    pub error: Option<String>,
}

pub struct Checkpoint {
    conn: Connection,
    path: PathBuf,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
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

    fn err(&self) -> impl Fn(rusqlite::Error) -> CheckpointError + '_ {
        db_err(&self.path)
    }

    pub fn ensure_user(&self, email: &str) -> Result<()> {
        self.conn
            .execute("INSERT OR IGNORE INTO users (email) VALUES (?1)", params![email])
            .map_err(self.err())?;
        Ok(())
    }

    pub fn set_user_state(&self, email: &str, state: &str, error: Option<&str>) -> Result<()> {
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

    pub fn folders(&self, email: &str) -> Result<Vec<FolderRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, wire_name, path, role, uid_validity, uid_next, exists_count, max_uid, target_ref
                 FROM folders WHERE email = ?1 AND present = 1 ORDER BY id",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![email], |r| {
                Ok(FolderRow {
                    id: r.get(0)?,
                    wire_name: r.get(1)?,
                    path: r.get(2)?,
                    role: r.get::<_, Option<String>>(3)?.as_deref().and_then(FolderRole::parse),
                    uid_validity: r.get(4)?,
                    uid_next: r.get(5)?,
                    exists: r.get(6)?,
                    max_uid: r.get(7)?,
                    target_ref: r.get(8)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<std::result::Result<Vec<_>, _>>().map_err(self.err())
    }

    /// Records the folders the source lists now; folders that vanished are
    /// kept (their copies stay counted) but no longer scanned.
    pub fn sync_folder_list(
        &mut self,
        email: &str,
        listed: &[(String, String, Option<FolderRole>)],
    ) -> Result<Vec<FolderRow>> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(db_err(&path))?;
        tx.execute("UPDATE folders SET present = 0 WHERE email = ?1", params![email])
            .map_err(db_err(&path))?;
        for (wire, display, role) in listed {
            tx.execute(
                "INSERT INTO folders (email, wire_name, path, role, present) VALUES (?1, ?2, ?3, ?4, 1)
                 ON CONFLICT (email, wire_name) DO UPDATE SET path = excluded.path, role = excluded.role, present = 1",
                params![email, wire, display, role.map(FolderRole::as_str)],
            )
            .map_err(db_err(&path))?;
        }
        tx.commit().map_err(db_err(&path))?;
        self.folders(email)
    }

    pub fn set_target_ref(&self, folder_id: i64, target_ref: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE folders SET target_ref = ?2 WHERE id = ?1",
                params![folder_id, target_ref],
            )
            .map_err(self.err())?;
        Ok(())
    }

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
                    if state != "copied" && state != "skipped" {
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

    pub fn set_last_scan(&self, email: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE users SET last_scan = ?2 WHERE email = ?1",
                params![email, now()],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Every message of the user's present folders. Without
    /// `with_message_ids` their Message-IDs are left out (`None`): planning
    /// needs them only on label-based sources, and half a million of them
    /// would weigh on every resync's memory for nothing.
    pub fn messages(&self, email: &str, with_message_ids: bool) -> Result<Vec<MessageRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT m.folder_id, m.uid, m.internal_date, m.size, m.flags,
                    CASE WHEN ?2 THEN m.message_id END, m.state, m.reason, m.gm_msgid
                 FROM messages m JOIN folders f ON f.id = m.folder_id
                 WHERE f.email = ?1 AND f.present = 1",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![email, with_message_ids], |r| {
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
            })
            .map_err(self.err())?;
        rows.collect::<std::result::Result<Vec<_>, _>>().map_err(self.err())
    }

    /// Applies a batch of records in one transaction.
    pub fn apply(&mut self, records: &[Record]) -> Result<()> {
        let path = self.path.clone();
        let e = db_err(&path);
        let tx = self.conn.transaction().map_err(&e)?;
        {
            let mut set = tx
                .prepare_cached(
                    "UPDATE messages SET state = ?3, reason = ?4, target_id = COALESCE(?5, target_id),
                        copied_at = COALESCE(?6, copied_at), message_id = COALESCE(message_id, ?7)
                     WHERE folder_id = ?1 AND uid = ?2",
                )
                .map_err(&e)?;
            let mut describe = tx
                .prepare_cached(
                    "UPDATE messages SET message_id = COALESCE(message_id, ?3), subject = COALESCE(?4, subject, '')
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
                    } => set.execute(params![folder_id, uid, "copied", none, target_id, Some(t), message_id]),
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
                    Record::Headers { folder_id, headers } => {
                        describe.execute(params![folder_id, headers.uid, headers.message_id, headers.subject])
                    }
                }
                .map_err(&e)?;
            }
        }
        tx.commit().map_err(&e)?;
        Ok(())
    }

    /// Counts one push-back from a server against a user (shown by
    /// `status`): when, and the server's words.
    pub fn note_throttle(&self, email: &str, reason: &str) -> Result<()> {
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

    pub fn user_emails(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT email FROM users ORDER BY email")
            .map_err(self.err())?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(self.err())?;
        rows.collect::<std::result::Result<Vec<_>, _>>().map_err(self.err())
    }

    pub fn user_status(&self, email: &str) -> Result<UserStatus> {
        type UserRow = (String, Option<i64>, Option<String>, i64, Option<i64>, Option<String>);
        let (state, last_sync, last_error, throttled, last_throttle, last_throttle_reason): UserRow = self
            .conn
            .query_row(
                "SELECT state, last_sync, last_error, throttled, last_throttle, last_throttle_reason
                 FROM users WHERE email = ?1",
                params![email],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .optional()
            .map_err(self.err())?
            .unwrap_or_else(|| ("pending".to_owned(), None, None, 0, None, None));
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
        Ok(status)
    }

    /// The skipped and failed messages of a user whose headers were never
    /// read (the scan reads none), by folder id: what a report would name
    /// without a Subject or Message-ID. Copies a label-based source shows in
    /// several folders are left out, as in [`Checkpoint::problem_items`].
    pub fn missing_headers(&self, email: &str) -> Result<Vec<(i64, u32)>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT m.folder_id, m.uid FROM messages m JOIN folders f ON f.id = m.folder_id
                 WHERE f.email = ?1 AND f.present = 1 AND m.state IN ('skipped', 'failed') AND m.subject IS NULL
                   AND NOT (m.state = 'skipped' AND m.reason = 'copied from another folder')
                 ORDER BY m.folder_id, m.uid",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![email], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.err())?;
        rows.collect::<std::result::Result<Vec<_>, _>>().map_err(self.err())
    }

    /// Every skipped or failed message of a user, except the copies a
    /// label-based source (Gmail) shows in several folders: those are not
    /// problems, only counted (the message itself was copied once).
    pub fn problem_items(&self, email: &str) -> Result<Vec<ProblemItem>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT f.path, m.uid, m.internal_date, m.size, m.message_id, m.state, m.reason, NULLIF(m.subject, '')
                 FROM messages m JOIN folders f ON f.id = m.folder_id
                 WHERE f.email = ?1 AND m.state IN ('skipped', 'failed')
                   AND NOT (m.state = 'skipped' AND m.reason = 'copied from another folder')
                 ORDER BY f.path, m.uid",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![email], |r| {
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
            })
            .map_err(self.err())?;
        rows.collect::<std::result::Result<Vec<_>, _>>().map_err(self.err())
    }

    /// Every sync of a user, oldest first.
    pub fn syncs(&self, email: &str) -> Result<Vec<SyncRecord>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, started, finished, state, copied, bytes, error FROM syncs WHERE email = ?1 ORDER BY started, id",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![email], |r| {
                Ok(SyncRecord {
                    id: r.get(0)?,
                    email: email.to_owned(),
                    started: r.get(1)?,
                    finished: r.get(2)?,
                    state: r.get(3)?,
                    copied: r.get::<_, i64>(4)? as u64,
                    bytes: r.get::<_, i64>(5)? as u64,
                    error: r.get(6)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<std::result::Result<Vec<_>, _>>().map_err(self.err())
    }
}

pub fn format_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Flags;

    fn meta(uid: u32, mid: &str, size: u64) -> MessageMeta {
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

    /// A message as a scan without headers sees it.
    fn without_headers(uid: u32, size: u64) -> MessageMeta {
        MessageMeta {
            message_id: None,
            subject: None,
            ..meta(uid, "", size)
        }
    }

    fn setup() -> (tempfile::TempDir, Checkpoint, i64) {
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
    fn db_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, _cp, _) = setup();
        let mode = std::fs::metadata(dir.path().join("state.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

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
        cp.apply(&[
            Record::Copied {
                folder_id: f,
                uid: 1,
                target_id: "t1".into(),
                message_id: None,
            },
            Record::Copied {
                folder_id: f,
                uid: 2,
                target_id: "t2".into(),
                message_id: None,
            },
        ])
        .unwrap();
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
            Record::Copied {
                folder_id: f,
                uid: 1,
                target_id: "t1".into(),
                message_id: Some("<a@x>".into()),
            },
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
    fn an_old_state_db_gains_the_subject_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&SCHEMA.replace("    subject TEXT,\n", "")).unwrap();
        }
        let mut cp = Checkpoint::open(&path).unwrap();
        let f = cp
            .sync_folder_list("a@x.test", &[("INBOX".into(), "INBOX".into(), Some(FolderRole::Inbox))])
            .unwrap()[0]
            .id;
        cp.store_scan(f, 1, 2, 1, &[meta(1, "<a>", 10)], false).unwrap();
        cp.apply(&[Record::Failed {
            folder_id: f,
            uid: 1,
            reason: "boom".into(),
        }])
        .unwrap();
        let items = cp.problem_items("a@x.test").unwrap();
        assert_eq!(items[0].subject.as_deref(), Some("Subject 1"));
        drop(cp);
        assert!(Checkpoint::open(&path).is_ok(), "opening again is a no-op");
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

    #[test]
    fn second_run_is_refused_while_the_lock_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let held = lock(&db).unwrap();
        let err = lock(&db).err().unwrap();
        assert!(err.0.contains("another cutover run"), "{err}");
        drop(held);
        assert!(lock(&db).is_ok());
    }

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
            Record::Copied {
                folder_id: f,
                uid: 1,
                target_id: "t".into(),
                message_id: None,
            },
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
