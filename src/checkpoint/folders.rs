//! The folders of a mailbox as the checkpoint knows them: what the source
//! lists (folders that vanished are kept so their copies stay counted),
//! where each scan left off, and the folder each one became on the target.

use rusqlite::params;

use super::{Checkpoint, Result, db_err};
use crate::model::FolderRole;

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
    /// The source's HIGHESTMODSEQ at the last scan (CONDSTORE); 0 unknown.
    pub highest_modseq: u64,
}

impl Checkpoint {
    pub fn folders(&self, email: &str) -> Result<Vec<FolderRow>> {
        let email = &super::user_key(email);
        self.query_rows(
            "SELECT id, wire_name, path, role, uid_validity, uid_next, exists_count, max_uid, target_ref, highest_modseq
             FROM folders WHERE email = ?1 AND present = 1 ORDER BY id",
            params![email],
            |r| {
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
                    highest_modseq: r.get::<_, i64>(9)? as u64,
                })
            },
        )
    }

    /// Records the folders the source lists now; folders that vanished are
    /// kept (their copies stay counted) but no longer scanned.
    pub fn sync_folder_list(
        &mut self,
        email: &str,
        listed: &[(String, String, Option<FolderRole>)],
    ) -> Result<Vec<FolderRow>> {
        let email = &super::user_key(email);
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

    /// Folders the source no longer lists that were scanned and have a
    /// target folder: candidates for a folder renamed or moved on the
    /// source since the last run.
    pub fn vanished_folders(&self, email: &str) -> Result<Vec<FolderRow>> {
        let email = &super::user_key(email);
        self.query_rows(
            "SELECT id, wire_name, path, role, uid_validity, uid_next, exists_count, max_uid, target_ref, highest_modseq
             FROM folders WHERE email = ?1 AND present = 0 AND uid_validity <> 0 AND target_ref IS NOT NULL ORDER BY id",
            params![email],
            |r| {
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
                    highest_modseq: r.get::<_, i64>(9)? as u64,
                })
            },
        )
    }

    /// A folder renamed on the source: the row the source's old name had
    /// (`renamed`, with its messages, copies and scan position) takes the
    /// new name and the target folder it was renamed to, and the row the
    /// listing made for the new name (`listed`, never scanned, holding no
    /// message) is dropped. Returns the row as it is now.
    pub fn adopt_renamed_folder(&mut self, renamed: i64, listed: i64, target_ref: &str) -> Result<FolderRow> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(db_err(&path))?;
        let holds: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM messages WHERE folder_id = ?1",
                params![listed],
                |r| r.get(0),
            )
            .map_err(db_err(&path))?;
        if holds > 0 {
            return Err(super::CheckpointError(format!(
                "state DB {}: folder row {listed} holds messages and cannot take a renamed folder's place",
                path.display()
            )));
        }
        let (email, wire, display, role): (String, String, String, Option<String>) = tx
            .query_row(
                "SELECT email, wire_name, path, role FROM folders WHERE id = ?1",
                params![listed],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(db_err(&path))?;
        tx.execute("DELETE FROM folders WHERE id = ?1", params![listed])
            .map_err(db_err(&path))?;
        tx.execute(
            "UPDATE folders SET wire_name = ?2, path = ?3, role = ?4, present = 1, target_ref = ?5 WHERE id = ?1",
            params![renamed, wire, display, role, target_ref],
        )
        .map_err(db_err(&path))?;
        tx.commit().map_err(db_err(&path))?;
        self.folders(&email)?
            .into_iter()
            .find(|f| f.id == renamed)
            .ok_or_else(|| super::CheckpointError(format!("state DB {}: renamed folder row vanished", path.display())))
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
}
