//! What the target holds of a mailbox's contacts and calendar events, so
//! that they are copied exactly once like mail: one row per source
//! collection (a CalDAV calendar, a CardDAV address book, a Takeout .ics or
//! .vcf file) with the target collection it goes to and the sync token
//! reached, and one row per item (a DAV object resource, or one UID of a
//! Takeout file) with the source version it was last written from and the
//! target's id for it.
//!
//! An item is recorded as written only after the target confirmed it. A
//! write is announced first ([`PimRecord::Writing`]): a row left in that
//! state by a crash tells the next run to look the item up in the target
//! before creating it again, which is what makes a lost answer harmless
//! for targets that have no idempotent create.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use super::{Checkpoint, Result, db_err, now, user_key};
use crate::model::ItemKind;

/// The two kinds of collection, as the state DB spells them.
fn kind_to_db(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Contact => "contact",
        ItemKind::Event => "event",
        ItemKind::Mail => "mail",
    }
}

fn kind_from_db(kind: &str) -> ItemKind {
    match kind {
        "contact" => ItemKind::Contact,
        "event" => ItemKind::Event,
        _ => ItemKind::Mail,
    }
}

/// A source collection of contacts or events and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PimCollection {
    pub id: i64,
    pub kind: ItemKind,
    /// The source's reference: a DAV collection URL path, or a Takeout
    /// file's path inside the export.
    pub source_ref: String,
    pub display_name: String,
    /// The sync-collection token reached by the last complete listing.
    pub sync_token: Option<String>,
    /// The target's reference to the collection it was written to (Graph
    /// calendar or contact folder id, DAV collection path).
    pub target_ref: Option<String>,
    /// Listed by the latest scan of the source.
    pub present: bool,
}

/// Where an item stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PimState {
    /// A write was sent and not (yet) confirmed: look it up before writing
    /// it again.
    Writing,
    /// The target holds the item as of `written_version`.
    Written,
    /// The target refused it or it could not be read; `reason` says why.
    Failed,
    /// Gone from the source; the target's copy is kept.
    Gone,
    /// Gone from the source and deleted from the target (mirrored).
    Deleted,
}

impl PimState {
    fn from_db(s: &str) -> PimState {
        match s {
            "writing" => PimState::Writing,
            "written" => PimState::Written,
            "gone" => PimState::Gone,
            "deleted" => PimState::Deleted,
            _ => PimState::Failed,
        }
    }
}

/// One contact or event as the state DB knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PimItem {
    /// The item's key in its source collection: the object's href on DAV,
    /// its UID in a Takeout file.
    pub source_key: String,
    /// The iCalendar/vCard UID.
    pub uid: String,
    pub state: PimState,
    /// The source version last written (a DAV ETag, or a content hash).
    pub written_version: Option<String>,
    /// The source version last seen (what a failed write was attempted
    /// from).
    pub source_version: Option<String>,
    pub target_id: Option<String>,
    pub reason: Option<String>,
    /// What the target could not hold of it, for the report (extra e-mail
    /// addresses kept in the notes, a rule expanded into single events).
    pub notes: Option<String>,
}

/// A change to an item's row, applied in one transaction with others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PimRecord {
    /// A write of `version` is about to be sent.
    Writing {
        collection_id: i64,
        source_key: String,
        uid: String,
        version: String,
    },
    /// The target confirmed it holds `version` as `target_id`.
    Written {
        collection_id: i64,
        source_key: String,
        uid: String,
        version: String,
        target_id: String,
        notes: Option<String>,
    },
    /// `version` could not be written (or read); the next run tries again
    /// only when the source version changes (a failure for a passing
    /// reason is recorded without its version, so it is tried again).
    Failed {
        collection_id: i64,
        source_key: String,
        uid: String,
        version: String,
        reason: String,
    },
    /// The source no longer holds it; the copy stays.
    Gone { collection_id: i64, source_key: String },
    /// The source no longer holds it and its copy was deleted.
    Deleted { collection_id: i64, source_key: String },
}

/// A mailbox's contacts or events in one line of `status` and `report`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PimCounts {
    /// Items the target holds as the source last had them.
    pub written: u64,
    pub failed: u64,
    /// Gone from the source, copy kept.
    pub gone_kept: u64,
    /// Gone from the source, copy deleted.
    pub deleted: u64,
    /// Written items with notes on what the target could not hold.
    pub with_notes: u64,
}

impl Checkpoint {
    /// The row of a source collection, created on first sight (the display
    /// name follows the source's).
    pub fn pim_collection(
        &mut self,
        email: &str,
        kind: ItemKind,
        source_ref: &str,
        display_name: &str,
    ) -> Result<PimCollection> {
        let email = user_key(email);
        let e = db_err(&self.path);
        self.conn
            .execute(
                "INSERT INTO pim_collections (email, kind, source_ref, display_name) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (email, kind, source_ref) DO UPDATE SET display_name = ?4, present = 1",
                params![email, kind_to_db(kind), source_ref, display_name],
            )
            .map_err(&e)?;
        self.conn
            .query_row(
                "SELECT id, kind, source_ref, display_name, sync_token, target_ref, present
                 FROM pim_collections WHERE email = ?1 AND kind = ?2 AND source_ref = ?3",
                params![email, kind_to_db(kind), source_ref],
                collection_row,
            )
            .map_err(&e)
    }

    /// The mailbox's known collections of `kind`.
    pub fn pim_collections(&self, email: &str, kind: ItemKind) -> Result<Vec<PimCollection>> {
        self.query_rows(
            "SELECT id, kind, source_ref, display_name, sync_token, target_ref, present
             FROM pim_collections WHERE email = ?1 AND kind = ?2 ORDER BY source_ref",
            params![user_key(email), kind_to_db(kind)],
            collection_row,
        )
    }

    /// Records the target collection a source collection goes to.
    pub fn set_pim_target(&mut self, collection_id: i64, target_ref: &str) -> Result<()> {
        let e = db_err(&self.path);
        self.conn
            .execute(
                "UPDATE pim_collections SET target_ref = ?2 WHERE id = ?1",
                params![collection_id, target_ref],
            )
            .map_err(&e)?;
        Ok(())
    }

    /// Records the sync token of a listing whose every change was handled
    /// (`None` forgets it: the next run lists the whole collection).
    pub fn set_pim_sync_token(&mut self, collection_id: i64, token: Option<&str>) -> Result<()> {
        let e = db_err(&self.path);
        self.conn
            .execute(
                "UPDATE pim_collections SET sync_token = ?2 WHERE id = ?1",
                params![collection_id, token],
            )
            .map_err(&e)?;
        Ok(())
    }

    /// Marks the collections of `kind` the latest scan listed (by
    /// `source_ref`) as present and the others as not.
    pub fn set_pim_present(&mut self, email: &str, kind: ItemKind, listed: &[&str]) -> Result<()> {
        let email = user_key(email);
        let e = db_err(&self.path);
        let tx = self.conn.transaction().map_err(&e)?;
        tx.execute(
            "UPDATE pim_collections SET present = 0 WHERE email = ?1 AND kind = ?2",
            params![email, kind_to_db(kind)],
        )
        .map_err(&e)?;
        {
            let mut set = tx
                .prepare_cached(
                    "UPDATE pim_collections SET present = 1 WHERE email = ?1 AND kind = ?2 AND source_ref = ?3",
                )
                .map_err(&e)?;
            for source_ref in listed {
                set.execute(params![email, kind_to_db(kind), source_ref]).map_err(&e)?;
            }
        }
        tx.commit().map_err(&e)
    }

    /// A collection's items by source key.
    pub fn pim_items(&self, collection_id: i64) -> Result<HashMap<String, PimItem>> {
        let rows = self.query_rows(
            "SELECT source_key, uid, state, written_version, source_version, target_id, reason, notes
             FROM pim_items WHERE collection_id = ?1",
            params![collection_id],
            |r| {
                Ok(PimItem {
                    source_key: r.get(0)?,
                    uid: r.get(1)?,
                    state: PimState::from_db(&r.get::<_, String>(2)?),
                    written_version: r.get(3)?,
                    source_version: r.get(4)?,
                    target_id: r.get(5)?,
                    reason: r.get(6)?,
                    notes: r.get(7)?,
                })
            },
        )?;
        Ok(rows.into_iter().map(|item| (item.source_key.clone(), item)).collect())
    }

    /// Applies `records` in one transaction.
    pub fn apply_pim(&mut self, records: &[PimRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let e = db_err(&self.path);
        let at = now();
        let tx = self.conn.transaction().map_err(&e)?;
        for record in records {
            match record {
                PimRecord::Writing {
                    collection_id,
                    source_key,
                    uid,
                    version,
                } => tx.execute(
                    "INSERT INTO pim_items (collection_id, source_key, uid, state, source_version, updated)
                     VALUES (?1, ?2, ?3, 'writing', ?4, ?5)
                     ON CONFLICT (collection_id, source_key) DO UPDATE
                     SET uid = ?3, state = 'writing', source_version = ?4, updated = ?5",
                    params![collection_id, source_key, uid, version, at],
                ),
                PimRecord::Written {
                    collection_id,
                    source_key,
                    uid,
                    version,
                    target_id,
                    notes,
                } => tx.execute(
                    "INSERT INTO pim_items
                        (collection_id, source_key, uid, state, source_version, written_version, target_id, notes, reason, updated)
                     VALUES (?1, ?2, ?3, 'written', ?4, ?4, ?5, ?6, NULL, ?7)
                     ON CONFLICT (collection_id, source_key) DO UPDATE
                     SET uid = ?3, state = 'written', source_version = ?4, written_version = ?4, target_id = ?5,
                         notes = ?6, reason = NULL, updated = ?7",
                    params![collection_id, source_key, uid, version, target_id, notes, at],
                ),
                PimRecord::Failed {
                    collection_id,
                    source_key,
                    uid,
                    version,
                    reason,
                } => tx.execute(
                    "INSERT INTO pim_items (collection_id, source_key, uid, state, source_version, reason, updated)
                     VALUES (?1, ?2, ?3, 'failed', ?4, ?5, ?6)
                     ON CONFLICT (collection_id, source_key) DO UPDATE
                     SET uid = ?3, state = 'failed', source_version = ?4, reason = ?5, updated = ?6",
                    params![collection_id, source_key, uid, version, reason, at],
                ),
                PimRecord::Gone {
                    collection_id,
                    source_key,
                } => tx.execute(
                    "UPDATE pim_items SET state = 'gone', updated = ?3
                     WHERE collection_id = ?1 AND source_key = ?2 AND state <> 'deleted'",
                    params![collection_id, source_key, at],
                ),
                PimRecord::Deleted {
                    collection_id,
                    source_key,
                } => tx.execute(
                    "UPDATE pim_items SET state = 'deleted', updated = ?3 WHERE collection_id = ?1 AND source_key = ?2",
                    params![collection_id, source_key, at],
                ),
            }
            .map_err(&e)?;
        }
        tx.commit().map_err(&e)
    }

    /// The mailbox's counts for `kind`.
    pub fn pim_counts(&self, email: &str, kind: ItemKind) -> Result<PimCounts> {
        let e = db_err(&self.path);
        self.conn
            .query_row(
                "SELECT
                    COALESCE(SUM(i.state = 'written'), 0),
                    COALESCE(SUM(i.state IN ('failed', 'writing') AND i.written_version IS NULL), 0),
                    COALESCE(SUM(i.state = 'gone' AND i.target_id IS NOT NULL), 0),
                    COALESCE(SUM(i.state = 'deleted'), 0),
                    COALESCE(SUM(i.state = 'written' AND i.notes IS NOT NULL), 0)
                 FROM pim_items i JOIN pim_collections c ON c.id = i.collection_id
                 WHERE c.email = ?1 AND c.kind = ?2",
                params![user_key(email), kind_to_db(kind)],
                |r| {
                    Ok(PimCounts {
                        written: r.get(0)?,
                        failed: r.get(1)?,
                        gone_kept: r.get(2)?,
                        deleted: r.get(3)?,
                        with_notes: r.get(4)?,
                    })
                },
            )
            .map_err(&e)
    }

    /// The target id of an item, if any copy was confirmed.
    pub fn pim_target_id(&self, collection_id: i64, source_key: &str) -> Result<Option<String>> {
        let e = db_err(&self.path);
        self.conn
            .query_row(
                "SELECT target_id FROM pim_items WHERE collection_id = ?1 AND source_key = ?2",
                params![collection_id, source_key],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(&e)
    }
}

impl Checkpoint {
    /// The mailbox's contacts and events the report lists one by one, each
    /// with its collection: those that failed (a write refused or a source
    /// item that could not be read, and a write never confirmed that left
    /// no copy, which `pim_counts` counts as failed too) and those written
    /// with notes on what the target could not hold. Failed ones come
    /// first, then by kind, collection name and UID, so a report reads in
    /// the order an admin fixes them.
    pub fn pim_problems(&self, email: &str) -> Result<Vec<(PimCollection, PimItem)>> {
        self.query_rows(
            "SELECT c.id, c.kind, c.source_ref, c.display_name, c.sync_token, c.target_ref, c.present,
                    i.source_key, i.uid, i.state, i.written_version, i.source_version, i.target_id, i.reason, i.notes
             FROM pim_items i JOIN pim_collections c ON c.id = i.collection_id
             WHERE c.email = ?1
               AND (i.state = 'failed'
                    OR (i.state = 'writing' AND i.written_version IS NULL)
                    OR (i.state = 'written' AND i.notes IS NOT NULL))
             ORDER BY i.state = 'written', c.kind, c.display_name, c.source_ref, i.uid, i.source_key",
            params![user_key(email)],
            |r| {
                let item = PimItem {
                    source_key: r.get(7)?,
                    uid: r.get(8)?,
                    state: PimState::from_db(&r.get::<_, String>(9)?),
                    written_version: r.get(10)?,
                    source_version: r.get(11)?,
                    target_id: r.get(12)?,
                    reason: r.get(13)?,
                    notes: r.get(14)?,
                };
                Ok((collection_row(r)?, item))
            },
        )
    }
}

fn collection_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PimCollection> {
    Ok(PimCollection {
        id: r.get(0)?,
        kind: kind_from_db(&r.get::<_, String>(1)?),
        source_ref: r.get(2)?,
        display_name: r.get(3)?,
        sync_token: r.get(4)?,
        target_ref: r.get(5)?,
        present: r.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, Checkpoint) {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoint::open(&dir.path().join("state.db")).unwrap();
        (dir, cp)
    }

    fn written(collection_id: i64, key: &str, version: &str, target_id: &str) -> PimRecord {
        PimRecord::Written {
            collection_id,
            source_key: key.into(),
            uid: format!("uid-{key}"),
            version: version.into(),
            target_id: target_id.into(),
            notes: None,
        }
    }

    /// A collection is one row per mailbox, kind and source reference,
    /// whatever the address's case; its name follows the source's, and
    /// its target and token are kept across runs.
    #[test]
    fn a_collection_is_found_again_with_its_target_and_token() {
        let (_d, mut cp) = open();
        let c = cp
            .pim_collection("A@x.test", ItemKind::Event, "/a/work/", "Work")
            .unwrap();
        cp.set_pim_target(c.id, "AAMkCal1").unwrap();
        cp.set_pim_sync_token(c.id, Some("http://radicale.org/ns/sync/1"))
            .unwrap();
        let again = cp
            .pim_collection("a@x.test", ItemKind::Event, "/a/work/", "Work (renamed)")
            .unwrap();
        assert_eq!(again.id, c.id);
        assert_eq!(again.display_name, "Work (renamed)");
        assert_eq!(again.target_ref.as_deref(), Some("AAMkCal1"));
        assert_eq!(again.sync_token.as_deref(), Some("http://radicale.org/ns/sync/1"));
        // The same path as an address book is another collection.
        let book = cp
            .pim_collection("a@x.test", ItemKind::Contact, "/a/work/", "Work")
            .unwrap();
        assert_ne!(book.id, c.id);
        assert_eq!(cp.pim_collections("a@x.test", ItemKind::Event).unwrap().len(), 1);
    }

    /// An item announced and never confirmed stays `Writing` (looked up
    /// before it is written again); once confirmed it records the version
    /// and the target's id; a later failure of a newer version keeps the
    /// copy's id and written version.
    #[test]
    fn an_item_is_written_only_once_confirmed() {
        let (_d, mut cp) = open();
        let c = cp
            .pim_collection("a@x.test", ItemKind::Contact, "/a/book/", "Book")
            .unwrap();
        cp.apply_pim(&[PimRecord::Writing {
            collection_id: c.id,
            source_key: "/a/book/1.vcf".into(),
            uid: "uid-1".into(),
            version: "\"e1\"".into(),
        }])
        .unwrap();
        let items = cp.pim_items(c.id).unwrap();
        assert_eq!(items["/a/book/1.vcf"].state, PimState::Writing);
        assert_eq!(items["/a/book/1.vcf"].written_version, None);
        assert_eq!(cp.pim_counts("a@x.test", ItemKind::Contact).unwrap().written, 0);

        cp.apply_pim(&[written(c.id, "/a/book/1.vcf", "\"e1\"", "AAMkC1")])
            .unwrap();
        cp.apply_pim(&[PimRecord::Failed {
            collection_id: c.id,
            source_key: "/a/book/1.vcf".into(),
            uid: "uid-1".into(),
            version: "\"e2\"".into(),
            reason: "refused".into(),
        }])
        .unwrap();
        let item = &cp.pim_items(c.id).unwrap()["/a/book/1.vcf"];
        assert_eq!(item.state, PimState::Failed);
        assert_eq!(item.written_version.as_deref(), Some("\"e1\""));
        assert_eq!(item.source_version.as_deref(), Some("\"e2\""));
        assert_eq!(item.target_id.as_deref(), Some("AAMkC1"));
        assert_eq!(
            cp.pim_target_id(c.id, "/a/book/1.vcf").unwrap().as_deref(),
            Some("AAMkC1")
        );
    }

    /// The counts: written (with notes counted apart), failed without any
    /// copy, gone with the copy kept, deleted.
    #[test]
    fn counts_tell_written_failed_kept_and_deleted_apart() {
        let (_d, mut cp) = open();
        let c = cp
            .pim_collection("a@x.test", ItemKind::Event, "/a/cal/", "Cal")
            .unwrap();
        let mut records: Vec<PimRecord> = (0..5)
            .map(|i| written(c.id, &format!("/a/cal/{i}.ics"), "v1", &format!("T{i}")))
            .collect();
        records.push(PimRecord::Written {
            collection_id: c.id,
            source_key: "/a/cal/n.ics".into(),
            uid: "n".into(),
            version: "v1".into(),
            target_id: "Tn".into(),
            notes: Some("rule expanded".into()),
        });
        records.push(PimRecord::Failed {
            collection_id: c.id,
            source_key: "/a/cal/bad.ics".into(),
            uid: "bad".into(),
            version: "v1".into(),
            reason: "no DTSTART".into(),
        });
        records.push(PimRecord::Gone {
            collection_id: c.id,
            source_key: "/a/cal/0.ics".into(),
        });
        records.push(PimRecord::Deleted {
            collection_id: c.id,
            source_key: "/a/cal/1.ics".into(),
        });
        // Gone after deleted does not bring it back.
        records.push(PimRecord::Gone {
            collection_id: c.id,
            source_key: "/a/cal/1.ics".into(),
        });
        cp.apply_pim(&records).unwrap();
        assert_eq!(
            cp.pim_counts("a@x.test", ItemKind::Event).unwrap(),
            PimCounts {
                written: 4,
                failed: 1,
                gone_kept: 1,
                deleted: 1,
                with_notes: 1,
            }
        );
        assert_eq!(
            cp.pim_counts("a@x.test", ItemKind::Contact).unwrap(),
            PimCounts::default()
        );
    }

    #[test]
    fn present_marks_only_the_listed_collections() {
        let (_d, mut cp) = open();
        let a = cp.pim_collection("a@x.test", ItemKind::Event, "/a/1/", "One").unwrap();
        let b = cp.pim_collection("a@x.test", ItemKind::Event, "/a/2/", "Two").unwrap();
        cp.set_pim_present("a@x.test", ItemKind::Event, &["/a/2/"]).unwrap();
        let all = cp.pim_collections("a@x.test", ItemKind::Event).unwrap();
        assert!(!all.iter().find(|c| c.id == a.id).unwrap().present);
        assert!(all.iter().find(|c| c.id == b.id).unwrap().present);
    }

    /// The report's list: failed items (with their reason) and unconfirmed
    /// writes that left no copy come first, then written items with notes;
    /// written items without notes, kept, deleted and unconfirmed updates
    /// of a copy are not listed.
    #[test]
    fn problems_list_failed_then_noted_items_with_their_collection() {
        let (_d, mut cp) = open();
        let cal = cp
            .pim_collection("A@x.test", ItemKind::Event, "/a/cal/", "Work")
            .unwrap();
        let book = cp
            .pim_collection("a@x.test", ItemKind::Contact, "/a/book/", "Friends")
            .unwrap();
        let other = cp.pim_collection("b@x.test", ItemKind::Event, "/b/cal/", "B").unwrap();
        cp.apply_pim(&[
            PimRecord::Written {
                collection_id: cal.id,
                source_key: "/a/cal/r.ics".into(),
                uid: "r".into(),
                version: "v1".into(),
                target_id: "Tr".into(),
                notes: Some("the rule was expanded into 3 single events".into()),
            },
            written(cal.id, "/a/cal/plain.ics", "v1", "Tp"),
            PimRecord::Failed {
                collection_id: cal.id,
                source_key: "/a/cal/bad.ics".into(),
                uid: "bad".into(),
                version: "v1".into(),
                reason: "the item holds 2 different UIDs".into(),
            },
            PimRecord::Writing {
                collection_id: book.id,
                source_key: "/a/book/lost.vcf".into(),
                uid: "lost".into(),
                version: "v1".into(),
            },
            written(book.id, "/a/book/upd.vcf", "v1", "Tu"),
            PimRecord::Writing {
                collection_id: book.id,
                source_key: "/a/book/upd.vcf".into(),
                uid: "uid-/a/book/upd.vcf".into(),
                version: "v2".into(),
            },
            written(cal.id, "/a/cal/gone.ics", "v1", "Tg"),
            PimRecord::Gone {
                collection_id: cal.id,
                source_key: "/a/cal/gone.ics".into(),
            },
            PimRecord::Failed {
                collection_id: other.id,
                source_key: "/b/cal/x.ics".into(),
                uid: "x".into(),
                version: "v1".into(),
                reason: "someone else's".into(),
            },
        ])
        .unwrap();
        let problems = cp.pim_problems("a@X.test").unwrap();
        let listed: Vec<_> = problems
            .iter()
            .map(|(c, i)| {
                (
                    c.display_name.as_str(),
                    i.uid.as_str(),
                    i.state,
                    i.reason.as_deref(),
                    i.notes.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            listed,
            [
                ("Friends", "lost", PimState::Writing, None, None),
                (
                    "Work",
                    "bad",
                    PimState::Failed,
                    Some("the item holds 2 different UIDs"),
                    None
                ),
                (
                    "Work",
                    "r",
                    PimState::Written,
                    None,
                    Some("the rule was expanded into 3 single events")
                ),
            ]
        );
        assert_eq!(problems[0].0.kind, ItemKind::Contact);
        assert_eq!(problems[1].0.kind, ItemKind::Event);
        // As many failed as `pim_counts` counts.
        let failed = |kind| {
            problems
                .iter()
                .filter(|(c, i)| c.kind == kind && i.state != PimState::Written)
                .count() as u64
        };
        assert_eq!(
            failed(ItemKind::Event),
            cp.pim_counts("a@x.test", ItemKind::Event).unwrap().failed
        );
        assert_eq!(
            failed(ItemKind::Contact),
            cp.pim_counts("a@x.test", ItemKind::Contact).unwrap().failed
        );
    }
}
