//! Contacts and calendar events into an Exchange Online mailbox through
//! Graph: the [`PimTarget`](crate::target::pim::PimTarget) side of the Graph target (issue #14).
//!
//! Contacts and events go through the same [`Http::send`](super::client)
//! and the same per-mailbox [`MailboxLimits`](super::throttle) as mail:
//! Exchange Online counts every request against one budget per mailbox,
//! whatever it touches, so a separate budget would only earn 429s.
//!
//! # Exactly once
//!
//! Every item carries named extended properties in cutover's own property
//! set (the GUID [`super::json`] stamps messages with):
//!
//! - [`KEY_PROPERTY`] (`cutoverItemKey`): the piece's key, [`PimUpload::key`]
//!   (or `key#n` for the n-th of several events, below). `find` filters on
//!   it, so an item an interrupted run wrote is found instead of written
//!   twice.
//! - [`STATE_PROPERTY`] (`cutoverItemState`): `writing` while requests that
//!   complete the item are still to come (occurrence changes, attachments,
//!   a photo, the end of the silent-meeting flow), `done` afterwards. An
//!   item found `writing` is finished, never left half-made. An item with
//!   nothing to follow is created `done` at once.
//! - [`SHAPE_PROPERTY`] (`cutoverMeetingShape`, events only): a digest of
//!   what a meeting's attendees are told about (times, recurrence,
//!   occurrence changes, attendees, location), so that `update` knows
//!   whether a change could be written without sending an update.
//!
//! An event is created with a `transactionId` (the event resource: "a
//! custom identifier specified by a client app for the server to avoid
//! redundant POST operations in case of client retries to create the same
//! event"), derived from the key and the item's text, so the POST is
//! retried like an idempotent request and a lost answer returns the same
//! event. A contact has no such field: a POST whose answer may have been
//! lost is followed by a lookup by key before it is sent again.
//!
//! # Never a message to anyone
//!
//! Graph makes the mailbox owner the organizer of every event created in
//! it, and creating a meeting (an event with attendees) sends invitations,
//! changing its time or attendees sends updates, deleting or cancelling it
//! sends cancellations. A migration must send none of these. So a meeting
//! is created as gscales' new-SilentMeeting.ps1 does it: POSTed with
//! `isDraft: true` (nothing is sent for a draft), its cancelled and changed
//! occurrences applied while it is a draft, and then one PATCH sets the
//! PSETID_Appointment named Booleans `EventDraft` and `IntendedEventDraft`
//! to false, which makes it an ordinary meeting without sending anything.
//! That PATCH also sets the state to `done`, so an interrupted flow is
//! always found as `writing` and still a draft, and finished silently.
//!
//! Once a meeting is no longer a draft it is only changed in what sends
//! nothing (subject, body, categories, reminder, free/busy, sensitivity,
//! importance). A change to anything else, or deleting it, is refused
//! ([`ErrorKind::Refused`](crate::error::ErrorKind)) with a message saying
//! why; the meeting stays as first written.
//!
//! # Attachments
//!
//! An event's inline attachments (iCalendar `ATTACH;VALUE=BINARY`) are
//! added while it is still `writing`, and a meeting still a draft: up to
//! 3 MB with one `POST …/attachments`, from 3 MB to 150 MB through an
//! upload session, the same path as a message's ([`super::write`]), since
//! Graph documents `createUploadSession` for events as for messages.
//! Exchange takes nothing larger on an item; such a file is left out and
//! the report says so.
//!
//! # Several events for one item
//!
//! A series Graph's `patternedRecurrence` cannot express comes as
//! [`Recurrence::Expanded`], and a UID with only overridden occurrences as
//! overrides without a series ([`Event::single_events`]); both are written
//! as single events, the n-th with key `key#n` and its own transactionId.
//! [`PimWritten::id`] is then their Graph ids joined with single spaces
//! (Graph ids never hold whitespace); `update`, `delete` and `find` take
//! and give back that form, and `list` shows each event with the item's
//! key (the `#n` left out) and `n` as its [`PimListed::part`], so that
//! `cutover verify` tells the pieces of one item from a second copy.
//!
//! # Collections
//!
//! A calendar is found by name among `GET /calendars`, case-insensitively
//! as Exchange compares folder names. An empty name, or the default
//! calendar's own name (`Calendar`, or its localized name), means the
//! mailbox's default calendar: that is where a source's primary calendar
//! goes (the caller passes an empty name for it). A contact folder is found
//! with `$filter=displayName eq '…'`; an empty name or `Contacts` means the
//! default Contacts folder, whose reference is [`DEFAULT_CONTACTS`].
//!
//! # Event times
//!
//! [`Call`] carries no request headers: `list` relies on Graph's default of
//! UTC for event times (the same as `Prefer: outlook.timezone="UTC"`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use percent_encoding::utf8_percent_encode;
use reqwest::Method;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::client::{Body, Call, Reply};
use super::failure::Failure;
use super::pim_json::{attachment_json, contact_json, event_json, notes_extras, occurrence_patch_json};
use super::write::{LargeAttachment, MAX_UPLOAD_SESSION, Uploads};
use super::{Inner, Mailbox, QUERY_VALUE, json as mail_json, parse, seg};
use crate::error::{Error, Result};
use crate::model::{ItemKind, TargetLogin};
use crate::target::Pending;
use crate::target::pim::{PimContent, PimListed, PimSession, PimUpload, PimWritten};
use crate::transform::contact::{self, Contact, ContactObject, Photo};
use crate::transform::event::{self, AttachmentContent, CalendarObject, Event, Recurrence};

/// `String {cutover's set} Name cutoverItemKey`: the key an item was
/// written with (see the module documentation).
pub const KEY_PROPERTY: &str = "String {8c1f5e3a-6b2d-4f7e-9a41-2d6c0b7e5f13} Name cutoverItemKey";
/// `String {cutover's set} Name cutoverItemState`: `writing` or `done`.
pub const STATE_PROPERTY: &str = "String {8c1f5e3a-6b2d-4f7e-9a41-2d6c0b7e5f13} Name cutoverItemState";
/// `String {cutover's set} Name cutoverMeetingShape`: digest of what a
/// meeting's attendees were told.
pub const SHAPE_PROPERTY: &str = "String {8c1f5e3a-6b2d-4f7e-9a41-2d6c0b7e5f13} Name cutoverMeetingShape";
/// PSETID_Appointment's `EventDraft` (new-SilentMeeting.ps1).
pub const EVENT_DRAFT_PROPERTY: &str = "Boolean {00062002-0000-0000-C000-000000000046} Name EventDraft";
/// PSETID_Appointment's `IntendedEventDraft` (new-SilentMeeting.ps1).
pub const INTENDED_EVENT_DRAFT_PROPERTY: &str =
    "Boolean {00062002-0000-0000-C000-000000000046} Name IntendedEventDraft";

const WRITING: &str = "writing";
const DONE: &str = "done";

/// The reference `ensure_collection` gives for the mailbox's default
/// Contacts folder (`/users/{id}/contacts`), which has no name to find it by.
pub const DEFAULT_CONTACTS: &str = "contacts";
/// Largest inline event attachment sent in one `POST …/attachments`
/// (Graph's limit for it); larger ones, up to [`MAX_UPLOAD_SESSION`], go
/// through an upload session.
const MAX_EVENT_ATTACHMENT: usize = 3 * 1024 * 1024;
/// Largest contact photo (profilephoto-update: 4 MB).
const MAX_PHOTO: usize = 4 * 1024 * 1024;
/// Items per page when listing.
const PAGE: u32 = 100;
/// Times a contact POST is sent when its answers keep being lost.
const CONTACT_POSTS: u32 = 4;
/// Contact text properties an update empties when the card has none.
const CLEARED_TEXT: &[&str] = &[
    "surname",
    "middleName",
    "title",
    "generation",
    "nickName",
    "companyName",
    "department",
    "jobTitle",
    "profession",
    "spouseName",
    "personalNotes",
];
/// The event properties a meeting may change without Exchange sending an
/// update to its attendees.
const SILENT_FIELDS: &[&str] = &[
    "subject",
    "body",
    "categories",
    "reminderMinutesBeforeStart",
    "isReminderOn",
    "showAs",
    "sensitivity",
    "importance",
];

/// A session for `user`'s mailbox, after the same early check as for mail
/// (once per mailbox per run): `PimTarget::open` for `GraphTarget`.
pub(super) async fn open_session(inner: Arc<Inner>, user: &TargetLogin) -> Result<Box<dyn PimSession>> {
    let email = user.email.trim().to_owned();
    if email.is_empty() {
        return Err(Error::fatal(format!(
            "users file line {}: EmailAddress is empty",
            user.users_file_line
        )));
    }
    let mailbox = inner.mailbox(&email);
    let users = format!("{}/v1.0/users/{}", inner.settings.endpoint, seg(&email));
    inner.check_mailbox(&mailbox, &users).await?;
    let session = GraphPimSession {
        inner,
        mailbox,
        email,
        users,
    };
    Ok(Box::new(session))
}

/// Writes one mailbox's contacts and events through Graph.
pub(super) struct GraphPimSession {
    inner: Arc<Inner>,
    mailbox: Arc<Mailbox>,
    /// The mailbox's address, for the log.
    email: String,
    /// `{endpoint}/v1.0/users/{email}`
    users: String,
}

/// One Graph event of an item (see "Several events for one item").
struct Piece {
    key: String,
    event: Event,
}

/// An item found by its key.
struct Found {
    id: String,
    /// Its state property says the write is complete.
    done: bool,
}

impl PimSession for GraphPimSession {
    /// As many items as the mailbox may have requests in flight: Exchange
    /// Online counts concurrency per mailbox, and the mailbox's limits
    /// hold every request to it anyway.
    fn parallel_writes(&self) -> usize {
        self.inner.settings.max_concurrent_requests
    }

    fn ensure_collection<'a>(
        &'a mut self,
        kind: ItemKind,
        name: &'a str,
        known: Option<&'a str>,
        color: Option<&'a str>,
    ) -> Pending<'a, String> {
        async move {
            match kind {
                ItemKind::Event => self.ensure_calendar(name, known, color).await,
                ItemKind::Contact => self.ensure_contact_folder(name, known).await,
                ItemKind::Mail => Err(Error::fatal(
                    "the contacts-and-calendars target was asked for a mail folder; this is a bug in cutover",
                )),
            }
        }
        .boxed()
    }

    fn create<'a>(&'a self, collection: &'a str, item: &'a PimUpload) -> Pending<'a, PimWritten> {
        async move {
            match &item.content {
                PimContent::Event(o) => self.write_event(collection, &item.key, o, None).await,
                PimContent::Contact(c) => self.create_contact(collection, &item.key, c).await,
            }
        }
        .boxed()
    }

    fn update<'a>(&'a self, collection: &'a str, id: &'a str, item: &'a PimUpload) -> Pending<'a, PimWritten> {
        async move {
            match &item.content {
                PimContent::Event(o) => self.update_event(collection, id, &item.key, o).await,
                PimContent::Contact(c) => self.update_contact(id, &item.key, c).await,
            }
        }
        .boxed()
    }

    fn find<'a>(&'a self, collection: &'a str, item: &'a PimUpload) -> Pending<'a, Option<String>> {
        async move {
            match &item.content {
                PimContent::Event(o) => self.find_event(collection, &item.key, o).await,
                PimContent::Contact(c) => self.find_contact(collection, &item.key, c).await,
            }
        }
        .boxed()
    }

    fn delete<'a>(&'a self, kind: ItemKind, _collection: &'a str, id: &'a str) -> Pending<'a, ()> {
        async move {
            match kind {
                ItemKind::Event => self.delete_event(id).await,
                _ => {
                    for one in split_ids(id) {
                        let url = format!("{}/contacts/{}", self.users, seg(one));
                        self.delete_gone_ok(url, "delete contact").await?;
                    }
                    Ok(())
                }
            }
        }
        .boxed()
    }

    fn list<'a>(&'a mut self, kind: ItemKind, collection: &'a str) -> Pending<'a, Vec<PimListed>> {
        async move {
            match kind {
                ItemKind::Event => self.list_events(collection).await,
                _ => self.list_contacts(collection).await,
            }
        }
        .boxed()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        async {}.boxed()
    }
}

// ---------------------------------------------------------------------------
// Requests

impl GraphPimSession {
    async fn send(&self, call: &Call<'_>) -> std::result::Result<Reply, Failure> {
        self.inner.http.send(&self.mailbox.limits, call).await
    }

    async fn get_json(&self, url: String, what: &str) -> std::result::Result<Value, Failure> {
        let reply = self.send(&Call::get(url, what)).await?;
        parse(&reply.body, what).map_err(Failure::plain)
    }

    /// A JSON request; `idempotent` says whether it may be sent again after
    /// a failure that may have happened after Exchange acted on it.
    async fn send_json(
        &self,
        method: Method,
        url: String,
        body: &Value,
        what: &str,
        idempotent: bool,
    ) -> std::result::Result<Value, Failure> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Failure::plain(Error::item(format!("{what}: cannot encode the request ({e})"))))?;
        let reply = self
            .send(&Call {
                method,
                url,
                body: Body::Json(bytes.into()),
                what,
                authorized: true,
                idempotent,
            })
            .await?;
        if reply.body.is_empty() {
            return Ok(Value::Null);
        }
        parse(&reply.body, what).map_err(Failure::plain)
    }

    /// A DELETE; an item already gone is fine.
    async fn delete_gone_ok(&self, url: String, what: &str) -> Result<()> {
        match self.send(&Call::delete(url, what)).await {
            Ok(_) => Ok(()),
            Err(f) if gone(&f) => Ok(()),
            Err(f) => Err(f.error),
        }
    }

    /// A paging link, refused unless it points back at the configured
    /// endpoint: the token must not go anywhere else.
    fn same_origin(&self, link: &str) -> Result<String> {
        if link.starts_with(&format!("{}/", self.inner.settings.endpoint)) {
            Ok(link.to_owned())
        } else {
            Err(Error::fatal(format!(
                "Graph answered with a paging link outside {} ; refusing to send the app's token there (check [target] endpoint)",
                self.inner.settings.endpoint
            )))
        }
    }

    /// Every item of a paged collection starting at `url`; `None` when the
    /// collection does not exist.
    async fn all_pages(&self, mut url: String, what: &str) -> Result<Option<Vec<Value>>> {
        let mut out = Vec::new();
        loop {
            let page = match self.get_json(url, what).await {
                Ok(v) => v,
                Err(f) if gone(&f) && out.is_empty() => return Ok(None),
                Err(f) => return Err(f.error),
            };
            if let Some(items) = page.get("value").and_then(Value::as_array) {
                out.extend(items.iter().cloned());
            }
            match page.get("@odata.nextLink").and_then(Value::as_str) {
                Some(next) => url = self.same_origin(next)?,
                None => return Ok(Some(out)),
            }
        }
    }

    /// `PUT /contacts/{id}/photo/$value`. The shared client sends only JSON,
    /// MIME and upload ranges, so this request is made here, with the same
    /// limits, token, timeout, retries and classification.
    async fn put_photo(&self, contact: &str, content_type: &'static str, bytes: &[u8], what: &str) -> Result<()> {
        let call = Call {
            method: Method::PUT,
            url: format!("{}/contacts/{}/photo/$value", self.users, seg(contact)),
            body: Body::Bytes {
                data: bytes::Bytes::copy_from_slice(bytes),
                content_type,
            },
            what,
            authorized: true,
            // A PUT of the same photo again leaves the same photo.
            idempotent: true,
        };
        self.send(&call).await.map(|_| ()).map_err(|f| f.error)
    }

    /// The item with `key` in `items_url` (a contacts or events
    /// collection), with its state; `None` when there is none or the
    /// collection is gone.
    async fn by_key(&self, items_url: &str, key: &str, what: &str) -> Result<Option<Found>> {
        let filter = format!(
            "singleValueExtendedProperties/Any(ep: ep/id eq '{KEY_PROPERTY}' and ep/value eq '{}')",
            key.replace('\'', "''")
        );
        let url = format!(
            "{items_url}?$filter={}&$select=id&$expand={}&$top=10",
            utf8_percent_encode(&filter, QUERY_VALUE),
            expand(&[STATE_PROPERTY]),
        );
        let page = match self.get_json(url, what).await {
            Ok(v) => v,
            Err(f) if gone(&f) => return Ok(None),
            Err(f) => return Err(f.error),
        };
        let items = page.get("value").and_then(Value::as_array).cloned().unwrap_or_default();
        // Several would be a duplicate made by something else than cutover's
        // flow; the finished one is the copy.
        let mut best: Option<Found> = None;
        for v in &items {
            let Some(id) = v.get("id").and_then(Value::as_str) else {
                continue;
            };
            let done = property(v, STATE_PROPERTY).is_none_or(|s| s == DONE);
            if best.as_ref().is_none_or(|b| !b.done && done) {
                best = Some(Found {
                    id: id.to_owned(),
                    done,
                });
            }
        }
        Ok(best)
    }
}

/// The answer means the item (or collection) is not there.
/// The addresses of the array `field` of `v`, each found at `pointer`
/// within its element, lower-cased and sorted.
fn sorted_addresses(v: &Value, field: &str, pointer: &str) -> Vec<String> {
    let mut out: Vec<String> = v
        .get(field)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.pointer(pointer).and_then(Value::as_str))
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The folder's name property `field` is `wanted`, compared as Exchange
/// compares names.
fn named(folder: &Value, field: &str, wanted: &str) -> bool {
    folder
        .get(field)
        .and_then(Value::as_str)
        .is_some_and(|n| n.trim().eq_ignore_ascii_case(wanted))
}

fn gone(f: &Failure) -> bool {
    f.code == "ErrorItemNotFound" || f.code == "ErrorInvalidIdMalformed" || f.status == Some(404)
}

/// `$expand` of the named extended properties, encoded for a query.
fn expand(ids: &[&str]) -> String {
    let clauses: Vec<String> = ids.iter().map(|id| format!("id eq '{id}'")).collect();
    utf8_percent_encode(
        &format!("singleValueExtendedProperties($filter={})", clauses.join(" or ")),
        QUERY_VALUE,
    )
    .to_string()
}

/// An extended property's value in an item Graph returned; ids compared
/// as Graph does (case and spacing aside).
fn property<'a>(item: &'a Value, id: &str) -> Option<&'a str> {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase();
    let want = norm(id);
    item.get("singleValueExtendedProperties")?
        .as_array()?
        .iter()
        .find(|p| p.get("id").and_then(Value::as_str).is_some_and(|i| norm(i) == want))?
        .get("value")?
        .as_str()
}

fn ext(props: &[(&str, &str)]) -> Value {
    Value::Array(
        props
            .iter()
            .map(|(id, value)| json!({ "id": id, "value": value }))
            .collect(),
    )
}

/// The Graph ids a [`PimWritten::id`] stands for.
fn split_ids(id: &str) -> Vec<&str> {
    id.split_whitespace().collect()
}

fn hex_digest(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------
// Collections

impl GraphPimSession {
    async fn ensure_calendar(&self, name: &str, known: Option<&str>, color: Option<&str>) -> Result<String> {
        if let Some(k) = known {
            let url = format!("{}/calendars/{}?$select=id", self.users, seg(k));
            match self.get_json(url, "check calendar").await {
                Ok(_) => return Ok(k.to_owned()),
                Err(f) if gone(&f) => {} // deleted since: find or make it again
                Err(f) => return Err(f.error),
            }
        }
        let url = format!("{}/calendars?$select=id,name,isDefaultCalendar&$top={PAGE}", self.users);
        let calendars = self.all_pages(url, "list calendars").await?.unwrap_or_default();
        let wanted = name.trim();
        let is_default = |c: &Value| c.get("isDefaultCalendar").and_then(Value::as_bool) == Some(true);
        let is_named = |c: &Value| named(c, "name", wanted);
        // The default calendar first: its own name, or no name at all (the
        // source's primary calendar), means it.
        let pick = if wanted.is_empty() {
            calendars.iter().find(|c| is_default(c))
        } else {
            calendars
                .iter()
                .find(|c| is_default(c) && is_named(c))
                .or_else(|| calendars.iter().find(|c| is_named(c)))
        };
        if let Some(id) = pick.and_then(|c| c.get("id")).and_then(Value::as_str) {
            return Ok(id.to_owned());
        }
        if wanted.is_empty() {
            return Err(Error::fatal(
                "Graph listed no default calendar for this mailbox; check that the app has the application permission Calendars.ReadWrite with admin consent",
            ));
        }
        // The source calendar's colour as the nearest of Outlook's calendar
        // colours (Graph takes a named one, not a hex value).
        let extra: Vec<(&str, Value)> = color
            .and_then(crate::transform::event::calendar_color)
            .map(|c| ("color", Value::from(c)))
            .into_iter()
            .collect();
        self.create_folder("calendars", "name", "calendar", wanted, &extra)
            .await
    }

    async fn ensure_contact_folder(&self, name: &str, known: Option<&str>) -> Result<String> {
        let wanted = name.trim();
        if let Some(k) = known {
            if k == DEFAULT_CONTACTS {
                return Ok(k.to_owned());
            }
            let url = format!("{}/contactFolders/{}?$select=id", self.users, seg(k));
            match self.get_json(url, "check contact folder").await {
                Ok(_) => return Ok(k.to_owned()),
                Err(f) if gone(&f) => {}
                Err(f) => return Err(f.error),
            }
        }
        if wanted.is_empty() || wanted.eq_ignore_ascii_case("contacts") {
            return Ok(DEFAULT_CONTACTS.to_owned());
        }
        let filter = format!("displayName eq '{}'", wanted.replace('\'', "''"));
        let url = format!(
            "{}/contactFolders?$filter={}&$select=id,displayName",
            self.users,
            utf8_percent_encode(&filter, QUERY_VALUE)
        );
        let found = self.all_pages(url, "look up contact folder").await?.unwrap_or_default();
        if let Some(id) = found.first().and_then(|f| f.get("id")).and_then(Value::as_str) {
            return Ok(id.to_owned());
        }
        self.create_folder("contactFolders", "displayName", "contact folder", wanted, &[])
            .await
    }

    /// Creates the folder `wanted` in `collection` (`calendars` or
    /// `contactFolders`, whose name property is `name_field`); `noun` names
    /// it in messages. One that exists already (under another case, made
    /// meanwhile by another session or by a lost answer) is found in the
    /// whole list, names compared as Exchange compares them.
    async fn create_folder(
        &self,
        collection: &str,
        name_field: &str,
        noun: &str,
        wanted: &str,
        extra: &[(&str, Value)],
    ) -> Result<String> {
        let what = format!("create {noun} {wanted}");
        let url = format!("{}/{collection}", self.users);
        let mut body = Map::new();
        body.insert(name_field.to_owned(), Value::from(wanted));
        for (field, value) in extra {
            body.insert((*field).to_owned(), value.clone());
        }
        match self
            .send_json(Method::POST, url, &Value::Object(body), &what, false)
            .await
        {
            Ok(v) => v
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| Error::transient(format!("{what}: Graph answered without an id"))),
            Err(f) if f.code == "ErrorFolderExists" || f.maybe_applied => {
                let url = format!("{}/{collection}?$select=id,{name_field}&$top={PAGE}", self.users);
                let all = self.all_pages(url, &format!("list {noun}s")).await?.unwrap_or_default();
                all.iter()
                    .find(|c| named(c, name_field, wanted))
                    .and_then(|c| c.get("id"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or(f.error)
            }
            Err(f) => Err(f.error),
        }
    }

    fn contacts_url(&self, folder: &str) -> String {
        if folder == DEFAULT_CONTACTS {
            format!("{}/contacts", self.users)
        } else {
            format!("{}/contactFolders/{}/contacts", self.users, seg(folder))
        }
    }

    fn events_url(&self, calendar: &str) -> String {
        format!("{}/calendars/{}/events", self.users, seg(calendar))
    }
}

// ---------------------------------------------------------------------------
// Contacts

/// The contact's JSON with what cutover adds: a given name when the card
/// has none (Exchange requires one), and the report's notes.
fn contact_body(c: &Contact) -> (Map<String, Value>, Vec<String>) {
    let (v, mut notes) = contact_json(c);
    let mut body = match v {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let has_given = body
        .get("givenName")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.trim().is_empty());
    if !has_given {
        let clean = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        let (given, from) = if let Some(n) = clean(&c.formatted_name) {
            (n, "its formatted name")
        } else if let Some(o) = clean(&c.organization) {
            (o, "its organisation")
        } else if let Some(e) = c
            .emails
            .first()
            .map(|e| e.address.trim().to_owned())
            .filter(|e| !e.is_empty())
        {
            (e, "its first e-mail address")
        } else {
            ("(no name)".to_owned(), "a placeholder")
        };
        notes.push(format!(
            "the card has no given name and Exchange requires one: the given name is {from} (\"{given}\")"
        ));
        body.insert("givenName".into(), json!(given));
    }
    (body, notes)
}

/// The photo to PUT (content type and bytes), or a note saying why not.
fn photo_of(c: &Contact) -> (Option<(&'static str, &[u8])>, Option<String>) {
    let Some(Photo::Inline { media_type, bytes }) = &c.photo else {
        // A photo given as a link is reported by contact_json.
        return (None, None);
    };
    let declared = media_type.as_deref().unwrap_or("").to_ascii_lowercase();
    let kind = if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) || declared.ends_with("jpeg") || declared.ends_with("jpg") {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG") || declared.ends_with("png") {
        Some("image/png")
    } else {
        None
    };
    match kind {
        _ if bytes.is_empty() => (None, Some("the photo is empty; not copied".into())),
        Some(_) if bytes.len() > MAX_PHOTO => (
            None,
            Some(format!(
                "the photo ({} bytes) is larger than Exchange's 4 MB for a contact photo; not copied",
                bytes.len()
            )),
        ),
        Some(k) => (Some((k, bytes.as_slice())), None),
        None => (
            None,
            Some(format!(
                "the photo is {}; Exchange takes JPEG or PNG contact photos, so it was not copied",
                if declared.is_empty() {
                    "of an unknown type"
                } else {
                    declared.as_str()
                }
            )),
        ),
    }
}

impl GraphPimSession {
    async fn create_contact(&self, folder: &str, key: &str, object: &ContactObject) -> Result<PimWritten> {
        let uid = &object.uid;
        let (mut body, mut notes) = contact_body(&object.contact);
        let (photo, photo_note) = photo_of(&object.contact);
        notes.extend(photo_note);
        let state = if photo.is_some() { WRITING } else { DONE };
        body.insert(
            "singleValueExtendedProperties".into(),
            ext(&[(KEY_PROPERTY, key), (STATE_PROPERTY, state)]),
        );
        let body = Value::Object(body);
        let what = format!("create contact {uid}");
        let url = self.contacts_url(folder);
        let mut posts = 0;
        let id = loop {
            posts += 1;
            match self.send_json(Method::POST, url.clone(), &body, &what, false).await {
                Ok(v) => match v.get("id").and_then(Value::as_str) {
                    Some(id) => break id.to_owned(),
                    None => return Err(Error::transient(format!("{what}: Graph answered without an id"))),
                },
                // The answer was lost, maybe after Exchange stored it: look
                // before sending it again.
                Err(f) if f.maybe_applied && posts < CONTACT_POSTS => {
                    if let Some(found) = self.by_key(&url, key, &what).await? {
                        break found.id;
                    }
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(posts))).await;
                }
                Err(f) => return Err(f.error),
            }
        };
        if let Some((ct, bytes)) = photo {
            self.finish_contact(&id, uid, key, ct, bytes).await?;
        }
        Ok(PimWritten { id, notes })
    }

    /// The photo, then the state `done`.
    async fn finish_contact(&self, id: &str, uid: &str, key: &str, ct: &'static str, bytes: &[u8]) -> Result<()> {
        self.put_photo(id, ct, bytes, &format!("set photo of contact {uid}"))
            .await?;
        let url = format!("{}/contacts/{}", self.users, seg(id));
        let body = json!({ "singleValueExtendedProperties": ext(&[(KEY_PROPERTY, key), (STATE_PROPERTY, DONE)]) });
        self.send_json(Method::PATCH, url, &body, &format!("finish contact {uid}"), true)
            .await
            .map_err(|f| f.error)?;
        Ok(())
    }

    async fn find_contact(&self, folder: &str, key: &str, object: &ContactObject) -> Result<Option<String>> {
        let what = format!("look up contact {}", object.uid);
        let Some(found) = self.by_key(&self.contacts_url(folder), key, &what).await? else {
            return Ok(None);
        };
        if !found.done {
            match photo_of(&object.contact).0 {
                Some((ct, bytes)) => self.finish_contact(&found.id, &object.uid, key, ct, bytes).await?,
                None => {
                    let url = format!("{}/contacts/{}", self.users, seg(&found.id));
                    let body = json!({ "singleValueExtendedProperties": ext(&[(STATE_PROPERTY, DONE)]) });
                    self.send_json(Method::PATCH, url, &body, &what, true)
                        .await
                        .map_err(|f| f.error)?;
                }
            }
        }
        Ok(Some(found.id))
    }

    /// A PATCH with the card as it is now. Collections the card no longer
    /// has are emptied; a photo is replaced when the card has one.
    async fn update_contact(&self, id: &str, key: &str, object: &ContactObject) -> Result<PimWritten> {
        let uid = &object.uid;
        let id = split_ids(id).first().copied().unwrap_or(id).to_owned();
        let (mut body, mut notes) = contact_body(&object.contact);
        for list in [
            "emailAddresses",
            "businessPhones",
            "homePhones",
            "imAddresses",
            "categories",
        ] {
            body.entry(list).or_insert_with(|| json!([]));
        }
        // A PATCH keeps what it does not name: what the card no longer has
        // is emptied, so the contact is the card as it is now.
        for text in CLEARED_TEXT {
            body.entry(*text).or_insert_with(|| json!(""));
        }
        body.insert(
            "singleValueExtendedProperties".into(),
            ext(&[(KEY_PROPERTY, key), (STATE_PROPERTY, DONE)]),
        );
        let what = format!("update contact {uid}");
        let url = format!("{}/contacts/{}", self.users, seg(&id));
        self.send_json(Method::PATCH, url, &Value::Object(body), &what, true)
            .await
            .map_err(|f| f.error)?;
        let (photo, photo_note) = photo_of(&object.contact);
        notes.extend(photo_note);
        if let Some((ct, bytes)) = photo {
            self.put_photo(&id, ct, bytes, &format!("set photo of contact {uid}"))
                .await?;
        }
        Ok(PimWritten { id, notes })
    }
}

// ---------------------------------------------------------------------------
// Events

/// The Graph events `object` is written as, each with its key.
fn pieces(key: &str, event: &Event) -> Vec<Piece> {
    match event.single_events() {
        None => vec![Piece {
            key: key.to_owned(),
            event: event.clone(),
        }],
        Some(list) if list.len() == 1 => vec![Piece {
            key: key.to_owned(),
            event: list.into_iter().next().expect("one"),
        }],
        Some(list) => list
            .into_iter()
            .enumerate()
            .map(|(i, event)| Piece {
                key: format!("{key}#{i}"),
                event,
            })
            .collect(),
    }
}

/// The item key a piece key belongs to.
fn item_key(piece_key: &str) -> &str {
    match piece_key.rsplit_once('#') {
        Some((k, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => k,
        _ => piece_key,
    }
}

fn is_meeting(e: &Event) -> bool {
    !e.attendees.is_empty()
}

/// What a meeting's attendees are told about, as a digest: the fields whose
/// change makes Exchange send an update.
fn meeting_shape(e: &Event) -> String {
    let body = event_json(e);
    let pick = |v: &Value| {
        json!([
            v.get("start"),
            v.get("end"),
            v.get("isAllDay"),
            v.get("recurrence"),
            v.get("location"),
            v.get("attendees"),
        ])
    };
    let overrides: Vec<Value> = e
        .overrides
        .iter()
        .map(|o| {
            json!([
                o.original_start.to_utc(e.default_zone).to_rfc3339(),
                pick(&occurrence_patch_json(&o.event))
            ])
        })
        .collect();
    let cancelled: Vec<String> = e
        .cancelled_occurrences
        .iter()
        .map(|t| t.to_utc(e.default_zone).to_rfc3339())
        .collect();
    let canonical = json!([pick(&body), overrides, cancelled]).to_string();
    hex_digest(&[canonical.as_bytes()])
}

/// The piece has requests to follow its POST.
fn has_follow_ups(e: &Event) -> bool {
    let pattern = matches!(e.recurrence, Some(Recurrence::Pattern { .. }));
    is_meeting(e)
        || (pattern && (!e.overrides.is_empty() || !e.cancelled_occurrences.is_empty()))
        || e.attachments
            .iter()
            .any(|a| matches!(a.content, AttachmentContent::Inline { .. }))
}

fn silent_fields(v: &Value) -> Value {
    let mut out = Map::new();
    if let Value::Object(m) = v {
        for k in SILENT_FIELDS {
            if let Some(x) = m.get(*k) {
                out.insert((*k).to_owned(), x.clone());
            }
        }
    }
    Value::Object(out)
}

/// Graph's `dateTime` (`2024-01-01T09:00:00.0000000`, in UTC as asked) as
/// RFC 3339 UTC.
fn utc_text(v: Option<&Value>) -> String {
    let Some(s) = v.and_then(|t| t.get("dateTime")).and_then(Value::as_str) else {
        return String::new();
    };
    let s = s.trim_end_matches('Z');
    match NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        Ok(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => s.to_owned(),
    }
}

/// A recurrence as one line: `weekly interval=1 days=monday,wednesday
/// first=sunday from=2024-01-01 until=2024-06-30` (fields Graph leaves at
/// their defaults left out).
fn recurrence_summary(r: &Value) -> String {
    let (p, range) = (&r["pattern"], &r["range"]);
    let mut out = vec![p["type"].as_str().unwrap_or("").to_owned()];
    out.push(format!("interval={}", p["interval"].as_i64().unwrap_or(1)));
    if let Some(days) = p["daysOfWeek"].as_array().filter(|d| !d.is_empty()) {
        let d: Vec<&str> = days.iter().filter_map(Value::as_str).collect();
        out.push(format!("days={}", d.join(",")));
    }
    if let Some(n) = p["dayOfMonth"].as_i64().filter(|n| *n > 0) {
        out.push(format!("day={n}"));
    }
    if let Some(n) = p["month"].as_i64().filter(|n| *n > 0) {
        out.push(format!("month={n}"));
    }
    if p["type"].as_str().is_some_and(|t| t.starts_with("relative"))
        && let Some(i) = p["index"].as_str()
    {
        out.push(format!("index={i}"));
    }
    if let Some(s) = range["startDate"].as_str() {
        out.push(format!("from={s}"));
    }
    match range["type"].as_str() {
        Some("endDate") => out.push(format!("until={}", range["endDate"].as_str().unwrap_or(""))),
        Some("numbered") => out.push(format!("count={}", range["numberOfOccurrences"].as_i64().unwrap_or(0))),
        _ => out.push("no end".into()),
    }
    out.join(" ")
}

impl GraphPimSession {
    /// Writes every piece of `object`; `salt` (the replaced ids, for an
    /// update) makes the transactionIds differ from the first write's.
    async fn write_event(
        &self,
        calendar: &str,
        key: &str,
        object: &CalendarObject,
        salt: Option<&str>,
    ) -> Result<PimWritten> {
        let uid = &object.uid;
        let list = pieces(key, &object.event);
        let mut notes = Vec::new();
        if let Some(Recurrence::Expanded {
            reason,
            occurrences,
            truncated,
        }) = &object.event.recurrence
        {
            notes.push(format!(
                "the series' rule cannot be kept by Exchange ({reason}); it was written as {} single events{}",
                occurrences.len(),
                if *truncated {
                    ", the later occurrences left out"
                } else {
                    ""
                }
            ));
        }
        let mut ids = Vec::new();
        for piece in &list {
            let (id, piece_notes) = self.write_piece(calendar, uid, piece, &object.raw, salt).await?;
            ids.push(id);
            for n in piece_notes {
                if !notes.contains(&n) {
                    notes.push(n);
                }
            }
        }
        Ok(PimWritten {
            id: ids.join(" "),
            notes,
        })
    }

    /// POSTs one piece (a draft when it is a meeting) and finishes it.
    async fn write_piece(
        &self,
        calendar: &str,
        uid: &str,
        piece: &Piece,
        raw: &str,
        salt: Option<&str>,
    ) -> Result<(String, Vec<String>)> {
        let e = &piece.event;
        let meeting = is_meeting(e);
        let follow_ups = has_follow_ups(e);
        let mut body = match event_json(e) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        // Stable across retries of this very write, new for an update (an
        // event deleted by the update may keep its transactionId).
        let transaction = hex_digest(&[
            b"cutover-event",
            piece.key.as_bytes(),
            raw.as_bytes(),
            salt.unwrap_or("").as_bytes(),
        ]);
        body.insert("transactionId".into(), json!(format!("cutover-{transaction}")));
        if meeting {
            body.insert("isDraft".into(), json!(true));
        }
        let shape = meeting_shape(e);
        body.insert(
            "singleValueExtendedProperties".into(),
            ext(&[
                (KEY_PROPERTY, piece.key.as_str()),
                (STATE_PROPERTY, if follow_ups { WRITING } else { DONE }),
                (SHAPE_PROPERTY, shape.as_str()),
            ]),
        );
        let what = format!("create event {uid}");
        // Idempotent thanks to the transactionId: a retry after a lost
        // answer gets the event the first POST made.
        let created = self
            .send_json(
                Method::POST,
                self.events_url(calendar),
                &Value::Object(body),
                &what,
                true,
            )
            .await
            .map_err(|f| f.error)?;
        let id = created
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::transient(format!("{what}: Graph answered without an id")))?
            .to_owned();
        // A meeting Graph gives back as no longer a draft is one an earlier
        // attempt finished (the transactionId matched): touching it again
        // could send an update.
        let finished = meeting && created.get("isDraft").and_then(Value::as_bool) == Some(false);
        let notes = if follow_ups && !finished {
            self.finish_event(&id, uid, piece).await?
        } else {
            Vec::new()
        };
        Ok((id, notes))
    }

    /// What follows the POST of a piece: occurrence changes, attachments,
    /// and last, in one PATCH, the end of the draft and the state `done`.
    /// Each step can be repeated, so an interrupted run finishes here.
    async fn finish_event(&self, id: &str, uid: &str, piece: &Piece) -> Result<Vec<String>> {
        let e = &piece.event;
        let mut notes = Vec::new();
        if matches!(e.recurrence, Some(Recurrence::Pattern { .. }))
            && (!e.overrides.is_empty() || !e.cancelled_occurrences.is_empty())
        {
            notes.extend(self.apply_occurrences(id, uid, e, false).await?);
        }
        notes.extend(self.add_attachments(id, uid, e).await?);
        let mut props = vec![(KEY_PROPERTY, piece.key.as_str()), (STATE_PROPERTY, DONE)];
        if is_meeting(e) {
            props.push((EVENT_DRAFT_PROPERTY, "false"));
            props.push((INTENDED_EVENT_DRAFT_PROPERTY, "false"));
        }
        let url = format!("{}/events/{}", self.users, seg(id));
        let body = json!({ "singleValueExtendedProperties": ext(&props) });
        self.send_json(Method::PATCH, url, &body, &format!("finish event {uid}"), true)
            .await
            .map_err(|f| f.error)?;
        Ok(notes)
    }

    /// The occurrences of series `id` by their original start (UTC), for
    /// the instants in `wanted`.
    async fn occurrences(
        &self,
        id: &str,
        uid: &str,
        wanted: &[DateTime<Utc>],
    ) -> Result<HashMap<DateTime<Utc>, String>> {
        let mut out = HashMap::new();
        let (Some(first), Some(last)) = (wanted.iter().min(), wanted.iter().max()) else {
            return Ok(out);
        };
        let from = *first - chrono::Duration::days(2);
        let to = *last + chrono::Duration::days(2);
        let url = format!(
            "{}/events/{}/instances?startDateTime={}&endDateTime={}&$select=id,originalStart&$top={PAGE}",
            self.users,
            seg(id),
            utf8_percent_encode(&from.format("%Y-%m-%dT%H:%M:%SZ").to_string(), QUERY_VALUE),
            utf8_percent_encode(&to.format("%Y-%m-%dT%H:%M:%SZ").to_string(), QUERY_VALUE),
        );
        let what = format!("list occurrences of event {uid}");
        let wanted: HashSet<DateTime<Utc>> = wanted.iter().copied().collect();
        for inst in self.all_pages(url, &what).await?.unwrap_or_default() {
            let (Some(oid), Some(orig)) = (
                inst.get("id").and_then(Value::as_str),
                inst.get("originalStart").and_then(Value::as_str),
            ) else {
                continue;
            };
            if let Ok(t) = DateTime::parse_from_rfc3339(orig) {
                let t = t.with_timezone(&Utc);
                if wanted.contains(&t) {
                    out.insert(t, oid.to_owned());
                }
            }
        }
        Ok(out)
    }

    /// Cancelled occurrences deleted and changed ones PATCHed (only their
    /// silent fields when `silent_only`: a meeting that is no longer a
    /// draft). An occurrence already deleted is not listed any more, so a
    /// second pass does nothing more.
    async fn apply_occurrences(&self, id: &str, uid: &str, e: &Event, silent_only: bool) -> Result<Vec<String>> {
        let zone = e.default_zone;
        let mut notes = Vec::new();
        let cancelled: Vec<DateTime<Utc>> = if silent_only {
            Vec::new()
        } else {
            e.cancelled_occurrences.iter().map(|t| t.to_utc(zone)).collect()
        };
        let changed: Vec<(DateTime<Utc>, &Event)> = e
            .overrides
            .iter()
            .map(|o| (o.original_start.to_utc(zone), &o.event))
            .collect();
        let all: Vec<DateTime<Utc>> = cancelled.iter().copied().chain(changed.iter().map(|c| c.0)).collect();
        let found = self.occurrences(id, uid, &all).await?;
        for t in &cancelled {
            if let Some(oid) = found.get(t) {
                let url = format!("{}/events/{}", self.users, seg(oid));
                self.delete_gone_ok(url, &format!("remove a cancelled occurrence of event {uid}"))
                    .await?;
            }
        }
        for (t, occurrence) in &changed {
            let Some(oid) = found.get(t) else {
                notes.push(format!(
                    "the change to the occurrence of {} could not be written: Exchange's series has no occurrence then",
                    t.format("%Y-%m-%d %H:%M UTC")
                ));
                continue;
            };
            let body = if silent_only {
                silent_fields(&occurrence_patch_json(occurrence))
            } else {
                occurrence_patch_json(occurrence)
            };
            let url = format!("{}/events/{}", self.users, seg(oid));
            let what = format!("change an occurrence of event {uid}");
            match self.send_json(Method::PATCH, url, &body, &what, true).await {
                Ok(_) => {}
                // Outlook keeps an occurrence between its neighbours; an
                // override moved past one cannot be held (event-update).
                Err(f) if f.code == "ErrorOccurrenceCrossingBoundary" => notes.push(format!(
                    "the occurrence of {} was moved past a neighbouring occurrence, which Exchange cannot hold; it is kept at its scheduled time",
                    t.format("%Y-%m-%d %H:%M UTC")
                )),
                Err(f) => return Err(f.error),
            }
        }
        Ok(notes)
    }

    /// Inline attachments, each at most once (by name): up to 3 MB in one
    /// `POST …/attachments`, up to 150 MB through an upload session (the
    /// messages' path, [`Uploads`], with the event as the parent); larger
    /// ones are left out with a note.
    ///
    /// Called while the event is still `writing` (and a meeting still a
    /// draft, so that nothing is sent for it): a run cut short here finds
    /// it unfinished and comes back. An attachment is listed only once its
    /// last range is taken, so the name check skips what an earlier pass
    /// completed and sends again what it did not.
    async fn add_attachments(&self, id: &str, uid: &str, e: &Event) -> Result<Vec<String>> {
        let inline: Vec<_> = e
            .attachments
            .iter()
            .filter(|a| matches!(a.content, AttachmentContent::Inline { .. }))
            .collect();
        let mut notes = Vec::new();
        if inline.is_empty() {
            return Ok(notes);
        }
        let parent = format!("{}/events/{}", self.users, seg(id));
        let url = format!("{parent}/attachments");
        let existing: HashSet<String> = self
            .all_pages(
                format!("{url}?$select=id,name"),
                &format!("list attachments of event {uid}"),
            )
            .await?
            .unwrap_or_default()
            .iter()
            .filter_map(|a| a.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect();
        for a in inline {
            let AttachmentContent::Inline { bytes } = &a.content else {
                continue;
            };
            let name = a.name.clone().unwrap_or_else(|| "attachment".into());
            if bytes.len() > MAX_UPLOAD_SESSION {
                notes.push(format!(
                    "the attachment {name} ({} bytes) is larger than the 150 MB Exchange takes on an event; not copied. Share it from OneDrive or SharePoint and add a link to the event instead",
                    bytes.len()
                ));
                continue;
            }
            if existing.contains(&name) {
                continue;
            }
            let what = format!("attach {name} to event {uid}");
            // One request holds at most 4 MB, and a file of just under 3 MB
            // is already that much in base64: such a file goes in ranges too.
            let small = (bytes.len() <= MAX_EVENT_ATTACHMENT)
                .then(|| attachment_json(a))
                .flatten()
                .filter(|body| serde_json::to_vec(body).is_ok_and(|b| b.len() < mail_json::REQUEST_MAX));
            if let Some(body) = small {
                // A lost answer is looked after by the name check of the
                // next pass (the event stays `writing` until then).
                self.send_json(Method::POST, url.clone(), &body, &what, false)
                    .await
                    .map_err(|f| f.error)?;
                continue;
            }
            let large = LargeAttachment {
                name: &name,
                content_type: a.media_type.as_deref().unwrap_or("application/octet-stream"),
                is_inline: false,
                content_id: None,
                data: bytes::Bytes::copy_from_slice(bytes),
            };
            // Lost range answers are settled inside (the event's attachments
            // are read back); a failure leaves the event `writing`.
            self.uploads().upload_session(&parent, large, &what).await?;
        }
        Ok(notes)
    }

    /// The upload-session path, on this mailbox's limits.
    fn uploads(&self) -> Uploads<'_> {
        Uploads {
            inner: &self.inner,
            mailbox: &self.mailbox,
            email: &self.email,
        }
    }

    async fn find_event(&self, calendar: &str, key: &str, object: &CalendarObject) -> Result<Option<String>> {
        let uid = &object.uid;
        let list = pieces(key, &object.event);
        let what = format!("look up event {uid}");
        let url = self.events_url(calendar);
        let mut found = Vec::new();
        for piece in &list {
            found.push(self.by_key(&url, &piece.key, &what).await?);
        }
        if found.iter().all(Option::is_none) {
            return Ok(None);
        }
        // Something was written: finish what is unfinished, write what is
        // missing, so that the item is whole.
        let mut ids = Vec::new();
        for (piece, f) in list.iter().zip(found) {
            match f {
                Some(Found { id, done: true }) => ids.push(id),
                Some(Found { id, done: false }) => {
                    self.finish_event(&id, uid, piece).await?;
                    ids.push(id);
                }
                None => ids.push(self.write_piece(calendar, uid, piece, &object.raw, None).await?.0),
            }
        }
        Ok(Some(ids.join(" ")))
    }

    /// Attendees, draft state and shape of each written event; `None` for
    /// one that is gone.
    async fn written(&self, id: &str) -> Result<Vec<Option<Value>>> {
        let mut out = Vec::new();
        for one in split_ids(id) {
            let url = format!(
                "{}/events/{}?$select=id,attendees,isDraft&$expand={}",
                self.users,
                seg(one),
                expand(&[SHAPE_PROPERTY])
            );
            match self.get_json(url, "read event").await {
                Ok(v) => out.push(Some(v)),
                Err(f) if gone(&f) => out.push(None),
                Err(f) => return Err(f.error),
            }
        }
        Ok(out)
    }

    async fn update_event(&self, calendar: &str, id: &str, key: &str, object: &CalendarObject) -> Result<PimWritten> {
        let uid = &object.uid;
        let written = self.written(id).await?;
        if written.iter().all(Option::is_none) {
            return Err(Error::item(format!(
                "event {uid}: the copy cutover wrote earlier has since been deleted in Exchange, so it was not updated"
            )));
        }
        let sent_meeting = |v: &Option<Value>| {
            v.as_ref().is_some_and(|v| {
                v.get("isDraft").and_then(Value::as_bool) != Some(true)
                    && v.get("attendees")
                        .and_then(Value::as_array)
                        .is_some_and(|a| !a.is_empty())
            })
        };
        if written.iter().any(sent_meeting) {
            let list = pieces(key, &object.event);
            let same_shape = list.len() == written.len()
                && list.iter().zip(&written).all(|(p, w)| {
                    w.as_ref().and_then(|w| property(w, SHAPE_PROPERTY)) == Some(meeting_shape(&p.event).as_str())
                        && is_meeting(&p.event)
                });
            if !same_shape {
                return Err(Error::refused(format!(
                    "event {uid}: the meeting was kept in Exchange as first written: its time, recurrence, attendees or location changed at the source, and changing them in Exchange would send an update to its attendees. To bring it in line, change it in Outlook yourself (Outlook asks whether to send the update), or delete it there and run cutover again"
                )));
            }
            // Only what sends nothing: on each event, and on its changed
            // occurrences.
            let mut notes = Vec::new();
            for (piece, one) in list.iter().zip(split_ids(id)) {
                let url = format!("{}/events/{}", self.users, seg(one));
                let body = silent_fields(&event_json(&piece.event));
                self.send_json(Method::PATCH, url, &body, &format!("update event {uid}"), true)
                    .await
                    .map_err(|f| f.error)?;
                if matches!(piece.event.recurrence, Some(Recurrence::Pattern { .. }))
                    && !piece.event.overrides.is_empty()
                {
                    notes.extend(self.apply_occurrences(one, uid, &piece.event, true).await?);
                }
            }
            return Ok(PimWritten {
                id: id.to_owned(),
                notes,
            });
        }
        // Appointments (and drafts an interrupted run left): nothing is sent
        // for them, so the simplest correct way to replace a series with its
        // exceptions is to delete it and write it again.
        for one in split_ids(id) {
            let url = format!("{}/events/{}", self.users, seg(one));
            self.delete_gone_ok(url, &format!("replace event {uid}")).await?;
        }
        self.write_event(calendar, key, object, Some(id)).await
    }

    async fn delete_event(&self, id: &str) -> Result<()> {
        let written = self.written(id).await?;
        for w in written.iter().flatten() {
            let attendees = w.get("attendees").and_then(Value::as_array).map_or(0, Vec::len);
            if attendees > 0 && w.get("isDraft").and_then(Value::as_bool) != Some(true) {
                return Err(Error::refused(format!(
                    "a meeting with {attendees} attendee{} was kept in Exchange although it is gone from the source: deleting it would send a cancellation to its attendees. Delete it in Outlook yourself if it should go (Outlook asks whether to send the cancellation)",
                    if attendees == 1 { "" } else { "s" }
                )));
            }
        }
        for (one, w) in split_ids(id).into_iter().zip(&written) {
            if w.is_some() {
                let url = format!("{}/events/{}", self.users, seg(one));
                self.delete_gone_ok(url, "delete event").await?;
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------------
    // Listing for verify

    /// Each event of the calendar, times in UTC (Graph's default without a
    /// `Prefer: outlook.timezone` header): the fields of
    /// [`event::verify_words`] (`subject`, `start`, `end`, `isAllDay`,
    /// `occurrences`, `attendees`) and `recurrence` (see
    /// [`recurrence_summary`], empty for a single event). A series'
    /// occurrences are its instances over [`event::verify_window`] from its
    /// start, one request per series; a single event's is itself. The
    /// single events an item was written as are listed each with the item's
    /// key and its piece number as [`PimListed::part`].
    async fn list_events(&self, calendar: &str) -> Result<Vec<PimListed>> {
        let url = format!(
            "{}?$select=subject,start,end,isAllDay,recurrence,attendees&$expand={}&$top={PAGE}",
            self.events_url(calendar),
            expand(&[KEY_PROPERTY])
        );
        let items = self.all_pages(url, "list events").await?.unwrap_or_default();
        let mut out = Vec::with_capacity(items.len());
        for v in &items {
            let Some(id) = v.get("id").and_then(Value::as_str) else {
                continue;
            };
            let recurrence = v.get("recurrence").filter(|r| !r.is_null());
            let all_day = v.get("isAllDay").and_then(Value::as_bool).unwrap_or(false);
            let subject = v["subject"].as_str().unwrap_or("");
            let attendees = sorted_addresses(v, "attendees", "/emailAddress/address");
            let mut fields = match (utc_time(v.get("start")), utc_time(v.get("end"))) {
                (Some(start), Some(end)) => {
                    let occurrences = match recurrence {
                        Some(_) => self.series_occurrences(id, subject, start).await?,
                        None => vec![(start, end)],
                    };
                    event::verify_words(
                        subject,
                        start,
                        end,
                        all_day,
                        &occurrences,
                        attendees.iter().map(String::as_str),
                    )
                }
                // Not a time Graph writes: shown as it came, so it differs.
                _ => vec![
                    ("subject".into(), subject.to_owned()),
                    ("start".into(), utc_text(v.get("start"))),
                    ("end".into(), utc_text(v.get("end"))),
                    ("isAllDay".into(), all_day.to_string()),
                    ("occurrences".into(), String::new()),
                    ("attendees".into(), attendees.join(",")),
                ],
            };
            fields.push((
                "recurrence".into(),
                recurrence.map(recurrence_summary).unwrap_or_default(),
            ));
            let written_key = property(v, KEY_PROPERTY);
            out.push(PimListed {
                id: id.to_owned(),
                key: written_key.map(|k| item_key(k).to_owned()),
                uid: None,
                part: written_key.and_then(piece_number),
                fields,
            });
        }
        Ok(out)
    }

    /// The (start, end) of each occurrence of series `id` over
    /// [`event::verify_window`] from its `start`, exceptions at their new
    /// times and cancelled ones left out (as `instances` lists them).
    async fn series_occurrences(
        &self,
        id: &str,
        subject: &str,
        start: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
        let (from, to) = event::verify_window(start);
        let url = format!(
            "{}/events/{}/instances?startDateTime={}&endDateTime={}&$select=start,end&$top={PAGE}",
            self.users,
            seg(id),
            utf8_percent_encode(&event::utc_word(from), QUERY_VALUE),
            utf8_percent_encode(&event::utc_word(to), QUERY_VALUE),
        );
        let what = format!("list occurrences of event \"{subject}\"");
        Ok(self
            .all_pages(url, &what)
            .await?
            .unwrap_or_default()
            .iter()
            .filter_map(|i| Some((utc_time(i.get("start"))?, utc_time(i.get("end"))?)))
            .collect())
    }

    /// Each contact of the folder: the fields of [`contact::verify_words`]
    /// (`displayName`, `emails`, `phones`), the addresses and numbers
    /// [`contact_json`] kept in the notes counted as held.
    async fn list_contacts(&self, folder: &str) -> Result<Vec<PimListed>> {
        let url = format!(
            "{}?$select=displayName,emailAddresses,businessPhones,homePhones,mobilePhone,personalNotes&$expand={}&$top={PAGE}",
            self.contacts_url(folder),
            expand(&[KEY_PROPERTY])
        );
        let items = self.all_pages(url, "list contacts").await?.unwrap_or_default();
        Ok(items
            .iter()
            .filter_map(|v| {
                let id = v.get("id")?.as_str()?.to_owned();
                let (noted_emails, noted_phones) = notes_extras(v["personalNotes"].as_str().unwrap_or(""));
                let emails = sorted_addresses(v, "emailAddresses", "/address");
                let texts = |field: &str| -> Vec<&str> {
                    v.get(field)
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default()
                };
                let phones = texts("businessPhones")
                    .into_iter()
                    .chain(texts("homePhones"))
                    .chain(v["mobilePhone"].as_str())
                    .chain(noted_phones.iter().map(String::as_str));
                Some(PimListed {
                    id,
                    key: property(v, KEY_PROPERTY).map(str::to_owned),
                    uid: None,
                    part: None,
                    fields: contact::verify_words(
                        v["displayName"].as_str().unwrap_or(""),
                        emails.iter().chain(&noted_emails).map(String::as_str),
                        phones,
                    ),
                })
            })
            .collect())
    }
}

/// The piece number of a piece key (`key#3`: 3).
fn piece_number(piece_key: &str) -> Option<u32> {
    if item_key(piece_key) == piece_key {
        return None;
    }
    piece_key.rsplit_once('#')?.1.parse().ok()
}

/// Graph's `dateTime` (in UTC as asked) as an instant.
fn utc_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let s = v?.get("dateTime")?.as_str()?.trim_end_matches('Z');
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_keys_name_their_item() {
        assert_eq!(item_key("abc#3"), "abc");
        assert_eq!(piece_number("abc#3"), Some(3));
        assert_eq!(piece_number("abc"), None);
        assert_eq!(piece_number("a#b"), None);
        assert_eq!(item_key("abc"), "abc");
        assert_eq!(item_key("a#b"), "a#b");
        assert_eq!(split_ids("A B  C"), vec!["A", "B", "C"]);
    }

    #[test]
    fn properties_are_read_whatever_their_spelling() {
        let v = json!({"singleValueExtendedProperties": [
            {"id": "String {8C1F5E3A-6B2D-4F7E-9A41-2D6C0B7E5F13} Name cutoverItemKey", "value": "k"}
        ]});
        assert_eq!(property(&v, KEY_PROPERTY), Some("k"));
        assert_eq!(property(&v, STATE_PROPERTY), None);
    }

    #[test]
    fn recurrence_is_summarised_on_one_line() {
        let r = json!({
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "dayOfMonth": 0, "month": 0, "index": "first", "firstDayOfWeek": "sunday"},
            "range": {"type": "numbered", "startDate": "2024-01-01", "numberOfOccurrences": 10}
        });
        assert_eq!(
            recurrence_summary(&r),
            "weekly interval=1 days=monday from=2024-01-01 count=10"
        );
        assert_eq!(
            utc_text(Some(
                &json!({"dateTime": "2024-01-01T09:00:00.0000000", "timeZone": "UTC"})
            )),
            "2024-01-01T09:00:00Z"
        );
    }
}
