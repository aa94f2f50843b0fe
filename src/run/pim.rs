//! Contacts and calendars of one mailbox (`[contacts_calendars]`), copied
//! after its mail: every calendar and address book the user has on the
//! CalDAV/CardDAV source goes into a collection of the target, each item
//! exactly once, kept up to date on later runs, and never a message sent
//! to anyone (the targets write meetings without invitations and refuse
//! changes that would send some).
//!
//! Per collection: find or make the target collection, list what changed
//! since the stored sync token (with the stored ETags, for servers without
//! `sync-collection`), read the changed items and write each one, recorded
//! in the state DB around the write ([`PimRecord::Writing`] before,
//! `Written` once the target confirmed), as mail is. Up to the session's
//! [`PimSession::parallel_writes`] items are written at once (each item's
//! own requests in order): with Exchange's round trips, one item at a time
//! would leave half the mailbox's request budget unused. The sync token is
//! stored only when every change of the listing was handled, so a run cut
//! short lists the same changes again.
//!
//! Where each collection goes: the source's first calendar (the one a
//! server lists first, normally the user's default) goes to the target's
//! default calendar (`""`, the mailbox's own Calendar); every other
//! calendar and every address book goes to a collection of its display
//! name, created when missing.

use std::collections::{BTreeMap, HashMap, VecDeque};

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};

use crate::checkpoint::{PimItem, PimRecord, PimState};
use crate::dav::{Collection, FetchOutcome};
use crate::error::{Error, ErrorKind};
use crate::event::PimFinished;
use crate::model::ItemKind;
use crate::roster::UserJob;
use crate::source::pim::PimSource;
use crate::target::Pending;
use crate::target::pim::{PimContent, PimSession, PimUpload, item_key};
use crate::transform::{contact::split_vcards, event::split_calendar};

use super::Shared;

/// Items read from the source and written before the next are read, and
/// between which a stop takes effect: a DAV multiget's worth.
const FETCH_BATCH: usize = crate::dav::MULTIGET_BATCH;

/// How many more copies of contacts and events this run may delete from
/// the mailbox (`max_delete_percent` of its copies), shared by its
/// collections.
#[derive(Debug)]
struct DeleteBudget {
    /// The mailbox's copies when the run began.
    copies: u64,
    /// What is left, in hundredths of a copy (`max_delete_percent` ×
    /// copies at the start), so that the share is kept exactly.
    left: u64,
}

/// What this run did with the user's contacts or events.
#[derive(Debug, Default)]
pub(super) struct PimStats {
    pub written: u64,
    pub failed: u64,
    /// Gone from the source this run; the copy is kept.
    pub kept: u64,
    pub deleted: u64,
    /// Why some of it was left as it was this run (deletions refused by
    /// `max_delete_percent`), for the user's state line.
    pub left_behind: Vec<String>,
}

/// [`PimStats`] of both kinds.
#[derive(Debug, Default)]
pub(super) struct PimRun {
    pub events: PimStats,
    pub contacts: PimStats,
    /// A stop (signal) came between two collections: the rest waits for
    /// the next run.
    pub interrupted: bool,
    /// Collections that could not be synced this run (a listing refused, a
    /// target calendar that could not be made, a file too large), each
    /// with why; the others went on, and these are tried again next run.
    pub collections_failed: Vec<String>,
}

impl PimRun {
    pub fn failed(&self) -> u64 {
        self.events.failed + self.contacts.failed
    }

    /// Why the user's contacts and calendars are not all copied, for the
    /// user's state line; `None` when they are.
    pub fn problem(&self) -> Option<String> {
        let mut why = Vec::new();
        let failed = self.failed();
        if failed > 0 {
            why.push(format!(
                "{failed} contacts or events were not copied (each reason is in the log and the report); those that failed for a passing reason are retried by the next run, the others once they change on the source"
            ));
        }
        why.extend(self.collections_failed.iter().cloned());
        why.extend(self.events.left_behind.iter().cloned());
        why.extend(self.contacts.left_behind.iter().cloned());
        (!why.is_empty()).then(|| why.join("; "))
    }

    pub fn finished(&self) -> PimFinished {
        PimFinished {
            contacts_written: self.contacts.written,
            contacts_failed: self.contacts.failed,
            contacts_kept: self.contacts.kept,
            events_written: self.events.written,
            events_failed: self.events.failed,
            events_kept: self.events.kept,
        }
    }
}

/// Copies the user's contacts and calendars; does nothing when the run has
/// no `[contacts_calendars]` source. An error is fatal for this part only:
/// the caller ends the user partial, mail stays copied.
pub(super) async fn sync_pim(shared: &Shared, user: &UserJob) -> Result<Option<PimRun>, Error> {
    let mut stats = PimRun::default();
    let Some(pim) = &shared.run.pim else {
        return Ok(None);
    };
    let source = pim.source_for(user)?;
    let discovery = source
        .collections()
        .await
        .map_err(|e| e.context("contacts and calendars source"))?;
    for skipped in &discovery.skipped {
        tracing::info!(user = %user.email, collection = %skipped.href, "not copied: {}", skipped.reason);
    }
    let mut session = if shared.dry_run {
        None
    } else {
        let mut login = user.target_login();
        if pim.target_is_dav && login.login.is_none() {
            login.login = Some(user.username.clone());
            login.secret = Some(user.password.clone());
        }
        Some(
            pim.target
                .open(&login)
                .await
                .map_err(|e| e.context("contacts and calendars target"))?,
        )
    };
    let mut failed_collections = Vec::new();
    let mut interrupted = false;
    let rules = shared.run.copy.deletions;
    let mut delete_budget = if rules.mirror && !rules.force && !shared.dry_run {
        let copies = shared.db(|cp| {
            let events = cp.pim_counts(&user.email, ItemKind::Event)?;
            let contacts = cp.pim_counts(&user.email, ItemKind::Contact)?;
            Ok(events.written + events.gone_kept + contacts.written + contacts.gone_kept)
        })?;
        Some(DeleteBudget {
            copies,
            left: u64::from(rules.max_percent) * copies,
        })
    } else {
        None
    };
    let result = async {
        for (kind, collections) in [
            (ItemKind::Event, &discovery.calendars),
            (ItemKind::Contact, &discovery.address_books),
        ] {
            for (i, collection) in collections.iter().enumerate() {
                // Collections are the unit of a stop: each one is either
                // synced with its token stored or left for the next run.
                if shared.stop.stopped() {
                    stats.interrupted = true;
                    return Ok(());
                }
                let primary = kind == ItemKind::Event && i == 0 && !discovery.no_primary_calendar;
                let stats = match kind {
                    ItemKind::Event => &mut stats.events,
                    _ => &mut stats.contacts,
                };
                let synced = sync_collection(
                    shared,
                    user,
                    &source,
                    session.as_deref_mut(),
                    kind,
                    collection,
                    primary,
                    stats,
                    delete_budget.as_mut(),
                )
                .await;
                match synced {
                    Ok(true) => {}
                    // Stopped between two batches: the rest waits for the
                    // next run.
                    Ok(false) => {
                        interrupted = true;
                        return Ok(());
                    }
                    // The mailbox or the state DB cannot go on: nothing
                    // else would fare better.
                    Err(e) if e.kind == ErrorKind::Fatal => return Err(e),
                    // This collection only: the others go on, and its sync
                    // token is not stored, so the next run tries it again.
                    Err(e) => {
                        let name = collection.display_name.as_deref().unwrap_or(&collection.href);
                        tracing::warn!(user = %user.email, collection = %name, "not synced this run: {e}");
                        failed_collections.push(format!("{} \"{name}\" not synced: {e}", kind_word(kind)));
                    }
                }
            }
            if !shared.dry_run {
                let listed: Vec<&str> = collections.iter().map(|c| c.href.as_str()).collect();
                shared.db(|cp| cp.set_pim_present(&user.email, kind, &listed))?;
            }
        }
        Ok::<(), Error>(())
    }
    .await;
    if let Some(session) = session {
        session.close().await;
    }
    stats.collections_failed = failed_collections;
    stats.interrupted |= interrupted;
    result.map(|()| Some(stats))
}

fn kind_word(kind: ItemKind) -> &'static str {
    if kind == ItemKind::Event {
        "calendar"
    } else {
        "address book"
    }
}

/// The one item a DAV object holds (one UID: one calendar object or one
/// card), or why it cannot be copied.
fn parse(kind: ItemKind, body: &str) -> Result<(String, PimContent), String> {
    let (mut items, problems): (Vec<(String, PimContent)>, _) = match kind {
        ItemKind::Event => {
            let (objects, problems) = split_calendar(body);
            let items = objects
                .into_iter()
                .map(|o| (o.uid.clone(), PimContent::Event(Box::new(o))))
                .collect();
            (items, problems)
        }
        _ => {
            let (objects, problems) = split_vcards(body);
            let items = objects
                .into_iter()
                .map(|o| (o.uid.clone(), PimContent::Contact(Box::new(o))))
                .collect();
            (items, problems)
        }
    };
    let why = || {
        problems
            .iter()
            .map(|p| format!("{}: {}", p.uid_or_position, p.reason))
            .collect::<Vec<_>>()
            .join("; ")
    };
    match items.len() {
        1 => Ok(items.remove(0)),
        0 if problems.is_empty() => Err("the item holds no event or card".into()),
        0 => Err(why()),
        n => Err(format!(
            "the item holds {n} different UIDs where CalDAV/CardDAV allow one; fix it on the source"
        )),
    }
}

#[allow(clippy::too_many_arguments)]
async fn sync_collection(
    shared: &Shared,
    user: &UserJob,
    source: &PimSource,
    session: Option<&mut (dyn PimSession + 'static)>,
    kind: ItemKind,
    collection: &Collection,
    primary: bool,
    stats: &mut PimStats,
    delete_budget: Option<&mut DeleteBudget>,
) -> Result<bool, Error> {
    let email = &user.email;
    let display_name = collection
        .display_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| {
            let path = collection.href.trim_end_matches('/');
            path.rsplit('/').next().unwrap_or(path).to_owned()
        });
    // Dry run: what would be copied, from what the state DB knows, writing
    // nothing anywhere.
    let Some(session) = session else {
        let known = shared.db(|cp| {
            Ok(cp
                .pim_collections(email, kind)?
                .into_iter()
                .find(|c| c.source_ref == collection.href))
        })?;
        let items = match &known {
            Some(c) => shared.db(|cp| cp.pim_items(c.id))?,
            None => Default::default(),
        };
        let etags = known_etags(&items);
        let changes = source
            .changes(collection, known.as_ref().and_then(|c| c.sync_token.as_deref()), &etags)
            .await?;
        tracing::info!(
            user = %email,
            collection = %display_name,
            changed = changes.changed.len(),
            removed = changes.removed.len(),
            "dry run: would copy the changed {} and record the removed ones",
            if kind == ItemKind::Event { "events" } else { "contacts" }
        );
        return Ok(true);
    };

    let row = shared.db(|cp| cp.pim_collection(email, kind, &collection.href, &display_name))?;
    let name = if primary { "" } else { display_name.as_str() };
    let target_ref = session
        .ensure_collection(kind, name, row.target_ref.as_deref(), collection.color.as_deref())
        .await?;
    if row.target_ref.as_deref() != Some(target_ref.as_str()) {
        shared.db(|cp| cp.set_pim_target(row.id, &target_ref))?;
    }
    let items = shared.db(|cp| cp.pim_items(row.id))?;
    let changes = source
        .changes(collection, row.sync_token.as_deref(), &known_etags(&items))
        .await?;
    if let Some(note) = changes.note(&collection.href) {
        tracing::info!(user = %email, "{note}");
    }
    // Only what differs from what the target holds is read: a full listing
    // (first run, or a token the server forgot) names unchanged items too.
    let hrefs: Vec<String> = changes
        .changed
        .iter()
        .filter(|m| {
            let done = items
                .get(&m.href)
                .is_some_and(|i| i.state == PimState::Written && m.etag.is_some() && i.written_version == m.etag);
            !done
        })
        .map(|m| m.href.clone())
        .collect();
    let listed_etag: BTreeMap<&str, &str> = changes
        .changed
        .iter()
        .filter_map(|m| Some((m.href.as_str(), m.etag.as_deref()?)))
        .collect();
    let mut all_handled = true;
    let mut removed: Vec<String> = changes.removed.clone();
    // Read a batch at a time and written up to `parallel_writes` items at
    // once: memory holds about one batch of items whatever the
    // collection's size, the next batch is read while the last items of
    // the one before are still being written, and a stop takes effect
    // between batches (the items in flight finish; the sync token is then
    // not stored, so the next run lists the rest again).
    let writer: &(dyn PimSession + 'static) = session;
    let parallel = writer.parallel_writes().max(1);
    let context = CollectionWrite {
        collection_id: row.id,
        target_ref: &target_ref,
        kind,
        email,
        source_ref: &collection.href,
        items: &items,
        listed_etag: &listed_etag,
    };
    let mut batches = hrefs.chunks(FETCH_BATCH);
    let mut fetching: Option<Pending<'_, Vec<FetchOutcome>>> = None;
    let mut fetched: VecDeque<FetchOutcome> = VecDeque::new();
    let mut in_flight = FuturesUnordered::new();
    let mut stopped = false;
    loop {
        while in_flight.len() < parallel
            && let Some(outcome) = fetched.pop_front()
        {
            in_flight.push(handle(shared, writer, &context, outcome));
        }
        // The next batch is read as soon as the last item of this one is
        // being written.
        if fetched.is_empty()
            && fetching.is_none()
            && !stopped
            && let Some(batch) = batches.next()
        {
            if shared.stop.stopped() {
                stopped = true;
            } else {
                fetching = Some(source.fetch(collection, batch).boxed());
            }
        }
        if in_flight.is_empty() && fetching.is_none() {
            break;
        }
        tokio::select! {
            Some(handled) = in_flight.next(), if !in_flight.is_empty() => match handled? {
                Handled::Written => stats.written += 1,
                Handled::Unchanged => {}
                Handled::Failed { for_good } => {
                    stats.failed += 1;
                    all_handled &= for_good;
                }
                Handled::Gone(href) => removed.push(href),
            },
            batch = async { fetching.as_mut().expect("polled only while a read is pending").await }, if fetching.is_some() => {
                fetching = None;
                fetched.extend(batch?);
            }
        }
    }
    if stopped {
        return Ok(false);
    }
    // Gone from the source this run (a removed item seen before).
    let newly_gone: Vec<&PimItem> = removed
        .iter()
        .filter_map(|href| items.get(href))
        .filter(|prior| !matches!(prior.state, PimState::Gone | PimState::Deleted))
        .collect();
    let rules = shared.run.copy.deletions;
    let mut mirror = rules.mirror;
    if mirror && let Some(budget) = delete_budget {
        // Copies to delete: those gone this run and those kept by earlier
        // runs. Like mail's, at most max_delete_percent of the mailbox's
        // contacts and events go in one run unless forced: an emptied
        // calendar or an odd listing must not empty the target's.
        let doomed = newly_gone.iter().filter(|p| p.target_id.is_some()).count() as u64
            + items
                .values()
                .filter(|i| i.state == PimState::Gone && i.target_id.is_some())
                .count() as u64;
        if doomed * 100 > budget.left {
            let reason = format!(
                "{doomed} {what} deleted on the source were not deleted from {display_name:?}: with the deletions before it that is over [run] max_delete_percent = {} of the mailbox's {} contacts and events; check the source, then run with --force-deletions or raise max_delete_percent",
                rules.max_percent,
                budget.copies,
                what = if kind == ItemKind::Event { "events" } else { "contacts" },
            );
            tracing::warn!(user = %email, "{reason}");
            stats.left_behind.push(reason);
            mirror = false;
            // Listed again next run, when the admin may force it.
            all_handled = false;
        } else {
            budget.left -= doomed * 100;
        }
    }
    let kept_before: Vec<&PimItem> = if mirror {
        items
            .values()
            .filter(|i| i.state == PimState::Gone && i.target_id.is_some())
            .collect()
    } else {
        Vec::new()
    };
    for prior in newly_gone.into_iter().chain(kept_before) {
        let href = &prior.source_key;
        match (&prior.target_id, mirror) {
            (Some(id), true) => match session.delete(kind, &target_ref, id).await {
                Ok(()) => {
                    shared.db(|cp| {
                        cp.apply_pim(&[PimRecord::Deleted {
                            collection_id: row.id,
                            source_key: href.clone(),
                        }])
                    })?;
                    stats.deleted += 1;
                }
                Err(e) if e.kind == ErrorKind::Fatal => return Err(e),
                Err(e) => {
                    // Kept for now; the next run tries the delete again.
                    tracing::warn!(user = %email, item = %href, "the copy of an item deleted on the source was not deleted: {e}");
                    all_handled = false;
                }
            },
            // Refused by the guard: left as it was, listed again next run.
            (Some(_), false) if rules.mirror => {}
            _ => {
                shared.db(|cp| {
                    cp.apply_pim(&[PimRecord::Gone {
                        collection_id: row.id,
                        source_key: href.clone(),
                    }])
                })?;
                if prior.target_id.is_some() {
                    stats.kept += 1;
                }
            }
        }
    }
    if all_handled {
        shared.db(|cp| cp.set_pim_sync_token(row.id, changes.token.as_deref()))?;
    }
    Ok(true)
}

/// The ETags the source had when each item was last handled, for a
/// listing without `sync-collection`. An item left `Writing` by a crash is
/// left out, so that it is listed, read and settled again.
fn known_etags(items: &std::collections::HashMap<String, PimItem>) -> BTreeMap<String, String> {
    items
        .values()
        .filter(|i| i.state != PimState::Writing)
        .filter_map(|i| Some((i.source_key.clone(), i.source_version.clone()?)))
        .collect()
}

fn fail(shared: &Shared, collection_id: i64, href: &str, uid: &str, version: &str, reason: &str) -> Result<(), Error> {
    shared.db(|cp| {
        cp.apply_pim(&[PimRecord::Failed {
            collection_id,
            source_key: href.to_owned(),
            uid: uid.to_owned(),
            version: version.to_owned(),
            reason: reason.to_owned(),
        }])
    })
}

/// What became of one item of a listing.
enum Handled {
    Written,
    /// The target already holds this version.
    Unchanged,
    /// Not copied; `for_good` unless the failure was a passing one (then
    /// recorded without its version, so the next run reads it again, and
    /// the collection's sync token is not stored).
    Failed {
        for_good: bool,
    },
    /// Gone from the source between the listing and the read.
    Gone(String),
}

/// What every item of one collection is written with.
struct CollectionWrite<'a> {
    collection_id: i64,
    target_ref: &'a str,
    kind: ItemKind,
    email: &'a str,
    source_ref: &'a str,
    /// The state DB's rows of the collection, by source href.
    items: &'a HashMap<String, PimItem>,
    /// The ETag the listing gave each changed item.
    listed_etag: &'a BTreeMap<&'a str, &'a str>,
}

/// Settles one read outcome: records a failed read, passes on a vanished
/// item, writes a found one.
async fn handle(
    shared: &Shared,
    writer: &(dyn PimSession + 'static),
    context: &CollectionWrite<'_>,
    outcome: FetchOutcome,
) -> Result<Handled, Error> {
    match outcome {
        FetchOutcome::Gone { href } => Ok(Handled::Gone(href)),
        FetchOutcome::Failed { href, error } => {
            let version = context.listed_etag.get(href.as_str()).copied().unwrap_or_default();
            tracing::warn!(user = %context.email, item = %href, "cannot read it from the source: {error}");
            fail(shared, context.collection_id, &href, "", version, &error.message)?;
            Ok(Handled::Failed { for_good: true })
        }
        FetchOutcome::Found(item) => {
            let version = item
                .etag
                .clone()
                .unwrap_or_else(|| format!("sha256:{}", item_key("", "", &item.body)));
            let write = ItemWrite {
                collection_id: context.collection_id,
                target_ref: context.target_ref,
                kind: context.kind,
                email: context.email,
                source_ref: context.source_ref,
                href: &item.href,
                body: &item.body,
                version: &version,
                prior: context.items.get(&item.href),
            };
            write_item(shared, writer, write).await
        }
    }
}

/// One item read from the source, to be written.
struct ItemWrite<'a> {
    collection_id: i64,
    target_ref: &'a str,
    kind: ItemKind,
    email: &'a str,
    source_ref: &'a str,
    href: &'a str,
    body: &'a str,
    version: &'a str,
    prior: Option<&'a PimItem>,
}

/// Writes one item read from the source, recorded `Writing` before and
/// `Written` once the target confirmed it. Several run at once; each
/// touches only its own item's row.
async fn write_item(
    shared: &Shared,
    session: &(dyn PimSession + 'static),
    item: ItemWrite<'_>,
) -> Result<Handled, Error> {
    let ItemWrite {
        collection_id,
        target_ref,
        kind,
        email,
        source_ref,
        href,
        body,
        version,
        prior,
    } = item;
    if prior.is_some_and(|p| p.state == PimState::Written && p.written_version.as_deref() == Some(version)) {
        return Ok(Handled::Unchanged);
    }
    let (uid, content) = match parse(kind, body) {
        Ok(parsed) => parsed,
        Err(reason) => {
            tracing::warn!(user = %email, item = %href, "not copied: {reason}");
            fail(shared, collection_id, href, "", version, &reason)?;
            return Ok(Handled::Failed { for_good: true });
        }
    };
    let upload = PimUpload {
        key: item_key(email, source_ref, href),
        content,
    };
    shared.db(|cp| {
        cp.apply_pim(&[PimRecord::Writing {
            collection_id,
            source_key: href.to_owned(),
            uid: uid.clone(),
            version: version.to_owned(),
        }])
    })?;
    // A copy made before (or possibly made by a run that crashed while
    // writing) is updated in place, never written a second time.
    let mut existing = prior.and_then(|p| p.target_id.clone());
    if existing.is_none() && prior.is_some_and(|p| p.state == PimState::Writing) {
        existing = session.find(target_ref, &upload).await.unwrap_or_else(|e| {
            tracing::warn!(user = %email, item = %href, "cannot look for a copy an interrupted run may have made: {e}");
            None
        });
    }
    let result = match &existing {
        Some(id) => session.update(target_ref, id, &upload).await,
        None => session.create(target_ref, &upload).await,
    };
    match result {
        Ok(written) => {
            let notes = (!written.notes.is_empty()).then(|| written.notes.join("; "));
            shared.db(|cp| {
                cp.apply_pim(&[PimRecord::Written {
                    collection_id,
                    source_key: href.to_owned(),
                    uid: uid.clone(),
                    version: version.to_owned(),
                    target_id: written.id.clone(),
                    notes: notes.clone(),
                }])
            })?;
            Ok(Handled::Written)
        }
        // The mailbox cannot go on: the row stays `Writing`, so the next
        // run looks the item up before writing it.
        Err(e) if e.kind == ErrorKind::Fatal => Err(e),
        Err(e) => {
            let passing = matches!(e.kind, ErrorKind::Transient | ErrorKind::Throttled(_));
            tracing::warn!(user = %email, item = %href, "not copied: {e}");
            fail(
                shared,
                collection_id,
                href,
                &uid,
                if passing { "" } else { version },
                &e.message,
            )?;
            Ok(Handled::Failed { for_good: !passing })
        }
    }
}
