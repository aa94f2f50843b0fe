//! The tables of the state DB, and the upgrade of a DB an earlier version
//! wrote: a new version opens an old DB in place, never asking for a fresh
//! one (which would mean copying every mailbox again).

use rusqlite::{Connection, params};

pub(super) const SCHEMA: &str = "
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
    highest_modseq INTEGER NOT NULL DEFAULT 0,
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
    written_flags TEXT,
    content_key TEXT,
    written_labels TEXT,
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
    error TEXT,
    moved INTEGER NOT NULL DEFAULT 0,
    flags_updated INTEGER NOT NULL DEFAULT 0,
    renamed INTEGER NOT NULL DEFAULT 0,
    deleted_kept INTEGER NOT NULL DEFAULT 0,
    deleted_mirrored INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS pim_collections (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL,
    kind TEXT NOT NULL,
    source_ref TEXT NOT NULL,
    display_name TEXT NOT NULL,
    sync_token TEXT,
    target_ref TEXT,
    present INTEGER NOT NULL DEFAULT 1,
    UNIQUE (email, kind, source_ref)
);
CREATE TABLE IF NOT EXISTS pim_items (
    collection_id INTEGER NOT NULL,
    source_key TEXT NOT NULL,
    uid TEXT NOT NULL,
    state TEXT NOT NULL,
    source_version TEXT,
    written_version TEXT,
    target_id TEXT,
    reason TEXT,
    notes TEXT,
    updated INTEGER NOT NULL,
    PRIMARY KEY (collection_id, source_key)
) WITHOUT ROWID;
";

/// The counts of the one-way sync each `syncs` row gained (`SyncCounts`);
/// syncs recorded before count 0.
const SYNC_COUNT_COLUMNS: [&str; 5] = ["moved", "flags_updated", "renamed", "deleted_kept", "deleted_mirrored"];

/// Brings a state DB written by an earlier version up to [`SCHEMA`]:
/// columns added since are added here (SQLite has no ADD COLUMN IF NOT
/// EXISTS), so an upgrade never needs a fresh state DB.
pub(super) fn migrate_schema(conn: &Connection) -> rusqlite::Result<()> {
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
        // What the mailbox waits on while a run goes (`wait.rs`), since
        // when; cleared when it finishes and when the run ends.
        ("waiting_on", "TEXT"),
        ("waiting_since", "INTEGER"),
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
    // Flag sync: the source's HIGHESTMODSEQ per folder (CONDSTORE), and the
    // flags last written to each copy. Copies made before were written with
    // the flags their row holds (those are only refreshed from now on).
    let has_modseq: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('folders') WHERE name = 'highest_modseq'",
        [],
        |r| r.get(0),
    )?;
    if !has_modseq {
        conn.execute_batch("ALTER TABLE folders ADD COLUMN highest_modseq INTEGER NOT NULL DEFAULT 0")?;
    }
    let has_written: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('messages') WHERE name = 'written_flags'",
        [],
        |r| r.get(0),
    )?;
    if !has_written {
        conn.execute_batch(
            "ALTER TABLE messages ADD COLUMN written_flags TEXT;
             UPDATE messages SET written_flags = flags WHERE state = 'copied';",
        )?;
    }
    // The content key of copies without a Message-ID, for moves.
    let has_content_key: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('messages') WHERE name = 'content_key'",
        [],
        |r| r.get(0),
    )?;
    if !has_content_key {
        conn.execute_batch("ALTER TABLE messages ADD COLUMN content_key TEXT")?;
    }
    // What each sync did besides copying: moves, flag updates, renamed
    // folders, deletions on the source kept or mirrored.
    for column in SYNC_COUNT_COLUMNS {
        let has: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('syncs') WHERE name = ?1",
            params![column],
            |r| r.get(0),
        )?;
        if !has {
            conn.execute_batch(&format!(
                "ALTER TABLE syncs ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0"
            ))?;
        }
    }
    // Label sync: the labels last written to each copy of a label-based
    // source's message (see `labels::labels_to_db`). Copies made before
    // have none recorded: their labels at the next resync are taken as
    // written.
    let has_written_labels: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('messages') WHERE name = 'written_labels'",
        [],
        |r| r.get(0),
    )?;
    if !has_written_labels {
        conn.execute_batch("ALTER TABLE messages ADD COLUMN written_labels TEXT")?;
    }
    // Mailboxes are keyed by their address in lower case (`user_key`);
    // earlier versions kept it as the users file wrote it.
    conn.execute_batch(
        "UPDATE OR IGNORE users SET email = lower(email) WHERE email <> lower(email);
         UPDATE OR IGNORE folders SET email = lower(email) WHERE email <> lower(email);
         UPDATE syncs SET email = lower(email) WHERE email <> lower(email);",
    )?;
    // What every resync looks for among a mailbox's rows: copies kept for
    // messages gone from their folder (moves, deletions, the sync's counts)
    // and copies whose flags are to be written. Partial indexes hold only
    // those rows, so a copy never writes to them and a resync reads a few
    // rows instead of all 500,000 of a large mailbox; `state` leads, so
    // the planner takes them over the primary key.
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS messages_kept ON messages (state, folder_id, uid)
            WHERE state = 'gone' AND target_id IS NOT NULL;
         CREATE INDEX IF NOT EXISTS messages_flags_unwritten ON messages (state, folder_id, uid)
            WHERE state = 'copied' AND target_id IS NOT NULL AND written_flags IS NOT flags;",
    )?;
    // `migrate --every`: the resync loop's schedule, one row while a loop
    // runs, for `status` and the dashboard (see `schedule.rs`).
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schedule (id INTEGER PRIMARY KEY CHECK (id = 1), every_seconds INTEGER NOT NULL, pass INTEGER NOT NULL, pass_started_at INTEGER, next_pass_at INTEGER, updated_at INTEGER NOT NULL)",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::tests::meta;
    use crate::checkpoint::{Checkpoint, Record, SyncCounts};
    use crate::model::FolderRole;

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

    /// A DB whose `syncs` table counted only copies and bytes gains the
    /// counts of moves, flag updates, renames and deletions: its syncs
    /// read back with 0 for them, and new syncs record them.
    #[test]
    fn an_old_state_db_gains_the_sync_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            // The syncs table as earlier versions made it.
            let (others, _) = SCHEMA.split_once("CREATE TABLE IF NOT EXISTS syncs").unwrap();
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(others).unwrap();
            conn.execute_batch(
                "CREATE TABLE syncs (
                    id INTEGER PRIMARY KEY,
                    email TEXT NOT NULL,
                    started INTEGER NOT NULL,
                    finished INTEGER,
                    state TEXT NOT NULL DEFAULT 'running',
                    copied INTEGER NOT NULL DEFAULT 0,
                    bytes INTEGER NOT NULL DEFAULT 0,
                    error TEXT
                );",
            )
            .unwrap();
            conn.execute_batch(
                "INSERT INTO users (email, state) VALUES ('a@x.test', 'done');
                 INSERT INTO syncs (email, started, finished, state, copied, bytes) VALUES ('a@x.test', 1, 2, 'done', 7, 700);",
            )
            .unwrap();
        }
        let cp = Checkpoint::open(&path).unwrap();
        let id = cp.begin_sync("a@x.test").unwrap();
        let counts = SyncCounts {
            copied: 1,
            bytes: 10,
            moved: 2,
            flags_updated: 3,
            renamed: 4,
            deleted_kept: 5,
            deleted_mirrored: 6,
        };
        cp.finish_sync(id, "a@x.test", "done", &counts, None).unwrap();
        let syncs = cp.syncs("a@x.test").unwrap();
        assert_eq!(
            syncs[0].counts,
            SyncCounts {
                copied: 7,
                bytes: 700,
                ..Default::default()
            }
        );
        assert_eq!(syncs[1].counts, counts);
        drop(cp);
        let cp = Checkpoint::open(&path).unwrap();
        assert_eq!(
            cp.syncs("a@x.test").unwrap()[1].counts,
            counts,
            "opening again is a no-op"
        );
    }

    #[test]
    fn a_mailbox_is_found_whatever_the_capitals_of_its_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let folder = [("INBOX".to_owned(), "INBOX".to_owned(), Some(FolderRole::Inbox))];
        {
            // A DB an earlier version wrote, keyed as the users file had it.
            let mut cp = Checkpoint::open(&path).unwrap();
            cp.conn
                .execute_batch(
                    "INSERT INTO users (email, state) VALUES ('Alice@Example.COM', 'done');
                     INSERT INTO folders (email, wire_name, path, role) VALUES ('Alice@Example.COM', 'INBOX', 'INBOX', 'inbox');
                     INSERT INTO syncs (email, started, state) VALUES ('Alice@Example.COM', 1, 'done');",
                )
                .unwrap();
            let f = cp.folders("alice@example.com").unwrap();
            assert!(f.is_empty(), "not upgraded yet");
            let _ = &mut cp;
        }
        let mut cp = Checkpoint::open(&path).unwrap();
        for email in ["alice@example.com", "ALICE@example.com", "Alice@Example.COM"] {
            assert_eq!(cp.folders(email).unwrap().len(), 1, "{email}");
            assert_eq!(cp.syncs(email).unwrap().len(), 1, "{email}");
        }
        let before = cp.folders("alice@example.com").unwrap()[0].id;
        let again = cp.sync_folder_list("ALICE@EXAMPLE.COM", &folder).unwrap();
        assert_eq!(again[0].id, before, "the same folder, not a new one");
        cp.set_user_state("Alice@example.com", "done", None).unwrap();
        assert_eq!(cp.user_emails().unwrap(), ["alice@example.com"]);
    }
}
