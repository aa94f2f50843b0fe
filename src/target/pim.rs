//! Where contacts and calendar events go. A mailbox's contacts and events
//! may go elsewhere than its mail: into the same Exchange mailbox when mail
//! goes through Graph, into a CalDAV/CardDAV server beside an IMAP or
//! Maildir target. So they have their own narrow interface, with the same
//! shape as mail's ([`super::TargetSession`]): make sure a collection
//! exists, write one item, find one after a crash, update or delete one
//! written before, list a collection for `cutover verify`. Protocol details
//! (Graph JSON and ids, DAV hrefs and ETags) stay inside each target's
//! module.

use futures::future::BoxFuture;
use sha2::{Digest, Sha256};

use super::Pending;
use crate::model::{ItemKind, TargetLogin};
use crate::transform::contact::ContactObject;
use crate::transform::event::CalendarObject;

/// One contact or event to write, as the source holds it: the parsed item
/// (what Graph is written from) and its own text (what a DAV target
/// stores, byte for byte).
#[derive(Clone, Debug)]
pub struct PimUpload {
    /// A key naming this source item for this mailbox for good (a hash of
    /// the source collection and the item's key in it): Graph's
    /// `transactionId` and the extended property a copy is found by after a
    /// crash. Never the source's URL, which may carry a user name.
    pub key: String,
    pub content: PimContent,
}

/// The item itself.
#[derive(Clone, Debug)]
pub enum PimContent {
    Event(Box<CalendarObject>),
    Contact(Box<ContactObject>),
}

impl PimContent {
    pub fn kind(&self) -> ItemKind {
        match self {
            PimContent::Event(_) => ItemKind::Event,
            PimContent::Contact(_) => ItemKind::Contact,
        }
    }
}

/// What a write left in the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PimWritten {
    /// The target's id for the item (Graph id, DAV href). An item the
    /// target holds as several (a recurrence Graph cannot express, written
    /// as single events) has their ids joined by spaces; `update`, `delete`
    /// and `find` take and give that form.
    pub id: String,
    /// What the target could not hold, worded for the report (extra e-mail
    /// addresses kept in the notes, a rule written as single events).
    pub notes: Vec<String>,
}

/// The key an item is written with: a hash of the mailbox, the source
/// collection and the item's href, so it names the item for good without
/// putting the source's URL (which may carry a login) into the target.
pub fn item_key(email: &str, collection: &str, href: &str) -> String {
    let mut h = Sha256::new();
    for part in [email, collection, href] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// One item as a target collection's listing shows it, for `verify`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PimListed {
    pub id: String,
    /// The key it was written with ([`PimUpload::key`]), where the target
    /// kept it.
    pub key: Option<String>,
    /// The item's iCalendar/vCard UID, where the target keeps the source's
    /// (a DAV target stores the item as the source had it).
    pub uid: Option<String>,
    /// For an item the target holds as several (a series written as
    /// single events): which of them this is. Entries with the same key and
    /// different parts are one item; the same key and part twice is a
    /// duplicate.
    pub part: Option<u32>,
    /// What verify compares with the source, worded the same way on both
    /// sides: [`crate::transform::event::verify_words`] and
    /// [`crate::transform::contact::verify_words`] (subject, start and end
    /// in UTC, all-day, occurrences, attendees; name, e-mail addresses,
    /// phone numbers). A target may add fields of its own, which verify
    /// does not compare.
    pub fields: Vec<(String, String)>,
}

/// A kind of contacts-and-calendars target, shared by every mailbox of a run.
pub trait PimTarget: Send + Sync {
    fn open<'a>(&'a self, user: &'a TargetLogin) -> Pending<'a, Box<dyn PimSession>>;

    /// One line for logs ("Graph contacts and calendars", "CalDAV https://…").
    fn describe(&self) -> String;
}

/// Writes one mailbox's contacts and events.
pub trait PimSession: Send + Sync {
    /// How many items may be written at once (each with its own `create`,
    /// `update`, `find` or `delete`): a mailbox's writes overlap up to
    /// this, so that the target's round trips do not leave its request
    /// budget unused. Each item's own requests stay in order.
    fn parallel_writes(&self) -> usize {
        1
    }

    /// Makes sure a calendar or contact folder named `name` exists and
    /// returns the target's reference to it. An empty name means the
    /// mailbox's default calendar or contact folder (where a source's
    /// primary calendar goes). `known` is the reference a previous run
    /// stored. `color` (the source calendar's `#rrggbb[aa]`) is given to a
    /// calendar this creates, as near as the target can show it; an
    /// existing collection keeps its own.
    fn ensure_collection<'a>(
        &'a mut self,
        kind: ItemKind,
        name: &'a str,
        known: Option<&'a str>,
        color: Option<&'a str>,
    ) -> Pending<'a, String>;

    /// Writes a new item into `collection`. Never sends anything to anyone:
    /// a meeting is written without invitations.
    fn create<'a>(&'a self, collection: &'a str, item: &'a PimUpload) -> Pending<'a, PimWritten>;

    /// Replaces what an earlier write left (`id`) with `item`; returns the
    /// item's id afterwards (a target may replace it). An id the target no
    /// longer knows is an item error. A change the target cannot make
    /// without sending messages (a sent meeting's time, attendees or place
    /// in Exchange) is refused (`ErrorKind::Refused`, with why): the item
    /// stays as first written.
    fn update<'a>(&'a self, collection: &'a str, id: &'a str, item: &'a PimUpload) -> Pending<'a, PimWritten>;

    /// Looks for an item an interrupted run may have written, by its key.
    fn find<'a>(&'a self, collection: &'a str, item: &'a PimUpload) -> Pending<'a, Option<String>>;

    /// Deletes an item written before; one already gone is not an error.
    /// Never sends a cancellation: a sent meeting is kept and the delete
    /// refused (`ErrorKind::Refused`, with why).
    fn delete<'a>(&'a self, kind: ItemKind, collection: &'a str, id: &'a str) -> Pending<'a, ()>;

    /// Read-only listing of a collection for `verify`; a collection that
    /// does not exist is an empty list.
    fn list<'a>(&'a mut self, kind: ItemKind, collection: &'a str) -> Pending<'a, Vec<PimListed>>;

    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}
