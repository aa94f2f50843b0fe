//! Contacts and calendars into another CalDAV/CardDAV server
//! (`[contacts_calendars] target = "dav"`): the [`PimTarget`] face of
//! [`DavTarget`]. Items are stored as the source's own text, byte for byte
//! (the server keeps what the user had, extensions included); the target
//! id of an item is its href, which is made from its UID, so an item an
//! interrupted run may have written is found again by that href alone.
//!
//! Updates and deletes are conditional on the ETag the server has right
//! now (read just before), so nothing changed on the target behind
//! cutover's back is overwritten without the server agreeing to it.
//!
//! `list` (for `cutover verify`) reads every item back and parses it as
//! the source's items are parsed, so what verify compares is worded by the
//! same functions on both sides; items are matched by UID, which the
//! stored text keeps.

use std::collections::HashMap;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::Pending;
use super::dav::{DavTarget, item_segment};
use super::pim::{PimContent, PimListed, PimSession, PimTarget, PimUpload, PimWritten};
use crate::dav::{Collection, CollectionKind, DavAuth, DavClient, DavOptions, FetchOutcome, same_href};
use crate::error::{Error, Result};
use crate::model::{ItemKind, TargetLogin};
use crate::transform::contact::{self, split_vcards};
use crate::transform::event::{self, split_calendar};

/// A DAV server that contacts and calendars are written to, shared by the
/// run; each mailbox opens its own account on it.
pub struct DavPimTarget {
    url: String,
    options: DavOptions,
}

impl DavPimTarget {
    /// `url` is checked already (https, or http to loopback).
    pub fn new(url: String, options: DavOptions) -> DavPimTarget {
        DavPimTarget { url, options }
    }
}

impl PimTarget for DavPimTarget {
    fn open<'a>(&'a self, user: &'a TargetLogin) -> Pending<'a, Box<dyn PimSession>> {
        async move {
            let (Some(login), Some(secret)) = (user.login.clone(), user.secret.clone()) else {
                return Err(Error::fatal(format!(
                    "users file line {}: {} has no login and password for the contacts and calendars target; fill TargetUserName/TargetPassword (or the source's UserName/Password)",
                    user.users_file_line, user.email
                )));
            };
            let auth = DavAuth::Basic {
                user: login,
                password: secret,
            };
            let client = DavClient::new(&self.url, auth, self.options.clone())?;
            let target = DavTarget::open(client.clone()).await?;
            let known = target
                .existing()
                .calendars
                .iter()
                .chain(&target.existing().address_books)
                .map(|c| (c.href.clone(), c.clone()))
                .collect();
            Ok(Box::new(DavPimSession { target, client, known }) as Box<dyn PimSession>)
        }
        .boxed()
    }

    fn describe(&self) -> String {
        format!("CalDAV/CardDAV {}", self.url)
    }
}

/// One account on the target server.
struct DavPimSession {
    target: DavTarget,
    /// The same account, for reading items back (`list`).
    client: DavClient,
    /// The account's collections by href: those it had when opened and
    /// those this session created.
    known: HashMap<String, Collection>,
}

fn dav_kind(kind: ItemKind) -> CollectionKind {
    match kind {
        ItemKind::Event => CollectionKind::Calendar,
        _ => CollectionKind::AddressBook,
    }
}

/// Items written at once to one account: a few, as CalDAV/CardDAV clients
/// do, without crowding the server.
const PARALLEL_WRITES: usize = 4;

/// Items read back at once by `list`: bodies are parsed and dropped batch
/// by batch, so a large collection is not held as text.
const LIST_BATCH: usize = 100;

/// The fields `verify` compares, by name.
type Fields = Vec<(String, String)>;

/// What `list` shows of one stored object: each UID it holds with the
/// fields `verify` compares, worded as for the source's items; an object
/// that cannot be parsed as one entry without a UID saying why.
fn listed(kind: CollectionKind, href: String, body: &str) -> Vec<PimListed> {
    let (entries, problems): (Vec<(String, Fields)>, _) = match kind {
        CollectionKind::Calendar => {
            let (objects, problems) = split_calendar(body);
            let entries = objects
                .iter()
                .map(|o| (o.uid.clone(), event::verify_fields(o)))
                .collect();
            (entries, problems)
        }
        CollectionKind::AddressBook => {
            let (objects, problems) = split_vcards(body);
            let entries = objects
                .iter()
                .map(|o| (o.uid.clone(), contact::verify_fields(o)))
                .collect();
            (entries, problems)
        }
    };
    if entries.is_empty() {
        let why: Vec<String> = problems.iter().map(|p| p.reason.clone()).collect();
        return vec![unreadable(href, why.join("; "))];
    }
    entries
        .into_iter()
        .map(|(uid, fields)| PimListed {
            id: href.clone(),
            key: None,
            uid: Some(uid),
            part: None,
            fields,
        })
        .collect()
}

/// An object `list` could not read or parse: no UID, and why.
fn unreadable(href: String, why: String) -> PimListed {
    PimListed {
        id: href,
        key: None,
        uid: None,
        part: None,
        fields: vec![("unreadable".into(), why)],
    }
}

fn uid_and_text(item: &PimUpload) -> (&str, &str) {
    match &item.content {
        PimContent::Event(e) => (&e.uid, &e.raw),
        PimContent::Contact(c) => (&c.uid, &c.raw),
    }
}

impl DavPimSession {
    fn collection(&self, href: &str) -> Result<&Collection> {
        self.known
            .iter()
            .find(|(h, _)| same_href(h, href))
            .map(|(_, c)| c)
            .ok_or_else(|| {
                Error::fatal(format!(
                    "the target collection {href} is not on the contacts and calendars target any more; it was removed during the run"
                ))
            })
    }

    /// The href an item of `uid` is stored at in `collection`.
    fn href_of(&self, collection: &str, item: &PimUpload) -> Result<String> {
        let c = self.collection(collection)?;
        let (uid, _) = uid_and_text(item);
        Ok(format!(
            "{}/{}",
            c.href.trim_end_matches('/'),
            item_segment(uid, c.kind)
        ))
    }
}

impl PimSession for DavPimSession {
    fn parallel_writes(&self) -> usize {
        PARALLEL_WRITES
    }

    fn ensure_collection<'a>(
        &'a mut self,
        kind: ItemKind,
        name: &'a str,
        known: Option<&'a str>,
        color: Option<&'a str>,
    ) -> Pending<'a, String> {
        async move {
            let kind = dav_kind(kind);
            if let Some(href) = known
                && let Ok(c) = self.collection(href)
                && c.kind == kind
            {
                return Ok(c.href.clone());
            }
            // "" is the account's default collection: its first one of the
            // kind, or a new one when it has none.
            let wanted = if name.is_empty() {
                match kind {
                    CollectionKind::Calendar => "Calendar",
                    CollectionKind::AddressBook => "Contacts",
                }
            } else {
                name
            };
            let mut same_kind: Vec<&Collection> = self.known.values().filter(|c| c.kind == kind).collect();
            same_kind.sort_by(|a, b| a.href.cmp(&b.href));
            let existing = if name.is_empty() {
                same_kind.first().copied()
            } else {
                same_kind.into_iter().find(|c| c.display_name.as_deref() == Some(name))
            };
            if let Some(c) = existing {
                return Ok(c.href.clone());
            }
            let color = color.filter(|_| kind == CollectionKind::Calendar);
            let created = self.target.create_collection(kind, wanted, color, None).await?;
            let href = created.href.clone();
            self.known.insert(href.clone(), created);
            Ok(href)
        }
        .boxed()
    }

    fn create<'a>(&'a self, collection: &'a str, item: &'a PimUpload) -> Pending<'a, PimWritten> {
        async move {
            let c = self.collection(collection)?.clone();
            let (uid, text) = uid_and_text(item);
            let stored = self.target.put_new(&c, uid, text).await?;
            Ok(PimWritten {
                id: stored.href,
                notes: Vec::new(),
            })
        }
        .boxed()
    }

    fn update<'a>(&'a self, collection: &'a str, id: &'a str, item: &'a PimUpload) -> Pending<'a, PimWritten> {
        async move {
            let kind = self.collection(collection)?.kind;
            let (_, text) = uid_and_text(item);
            let etag = self.target.etag_of(id).await?.ok_or_else(|| {
                Error::item(format!(
                    "{id} is no longer on the target (deleted there?); it is not written again"
                ))
            })?;
            let stored = self.target.put_update(kind, id, &etag, text).await?;
            Ok(PimWritten {
                id: stored.href,
                notes: Vec::new(),
            })
        }
        .boxed()
    }

    fn find<'a>(&'a self, collection: &'a str, item: &'a PimUpload) -> Pending<'a, Option<String>> {
        async move {
            let href = self.href_of(collection, item)?;
            Ok(self.target.etag_of(&href).await?.map(|_| href))
        }
        .boxed()
    }

    fn delete<'a>(&'a self, _kind: ItemKind, _collection: &'a str, id: &'a str) -> Pending<'a, ()> {
        async move {
            match self.target.etag_of(id).await? {
                Some(etag) => self.target.delete(id, &etag).await,
                None => Ok(()),
            }
        }
        .boxed()
    }

    /// Every item of the collection read back (multiget,
    /// [`LIST_BATCH`] at a time) and parsed as the source's items are, so
    /// its fields are worded as the source's: each listed with its UID.
    fn list<'a>(&'a mut self, _kind: ItemKind, collection: &'a str) -> Pending<'a, Vec<PimListed>> {
        async move {
            let Ok(c) = self.collection(collection).cloned() else {
                return Ok(Vec::new());
            };
            let hrefs: Vec<String> = self.target.list(&c).await?.into_iter().map(|m| m.href).collect();
            let mut out = Vec::with_capacity(hrefs.len());
            for batch in hrefs.chunks(LIST_BATCH) {
                for outcome in self.client.fetch(&c, batch).await? {
                    match outcome {
                        FetchOutcome::Found(item) => out.extend(listed(c.kind, item.href, &item.body)),
                        // Deleted since the listing: not there.
                        FetchOutcome::Gone { .. } => {}
                        FetchOutcome::Failed { href, error } => out.push(unreadable(href, error.message)),
                    }
                }
            }
            Ok(out)
        }
        .boxed()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        async {}.boxed()
    }
}
