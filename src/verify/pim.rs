//! Contacts and calendar events in `cutover verify`, beside mail: when the
//! config has `[contacts_calendars]`, every calendar and address book the
//! user has on the source is read afresh (a full listing and every item,
//! never the state DB's memory of them) and compared with the target
//! collection the state DB says it went to, read back through
//! [`PimSession::list`].
//!
//! What is checked, per source collection:
//!
//! - every source item is in its target collection exactly once, found by
//!   the key it was written with ([`item_key`], kept by Graph) or by its UID
//!   (kept by a DAV target). One the target lacks is missing, with what the
//!   state DB knows about it; an item the state DB records as failed when it
//!   was copied is reported as such ("failed at copy time") and not as
//!   missing, since `migrate` reported it already. A second copy (the same
//!   key or UID twice, or an item without either whose subject and start,
//!   or name and e-mail addresses, are a source item's) is a duplicate.
//!   Anything else the target holds is extra: listed, but it does not fail
//!   the verification (created there after the copy);
//! - the fields a user notices, worded by the same pure functions for both
//!   sides ([`event::verify_fields`], [`contact::verify_fields`]): an
//!   event's subject, start and end in UTC, all-day flag, its occurrences
//!   in UTC over its first [`event::VERIFY_WINDOW_DAYS`] days and its
//!   attendees' addresses; a contact's name, every e-mail address (Graph
//!   holds three and `migrate` keeps the others in the contact's notes:
//!   those count as held) and every phone number (compared by digits).
//!
//! Nothing is written anywhere, neither to the targets nor to the state DB.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::build::Pim;
use crate::checkpoint::{PimItem, PimState};
use crate::dav::{Collection, FetchOutcome};
use crate::error::Error;
use crate::model::ItemKind;
use crate::roster::UserJob;
use crate::source::pim::PimSource;
use crate::target::pim::{PimListed, item_key};
use crate::transform::{contact, event};

use super::Ctx;

/// An item's fields as verify compares them, by name.
type Fields = Vec<(String, String)>;

/// Source items read at once; their text is dropped once worded.
const FETCH_BATCH: usize = 100;
/// Values of a list-valued field shown on each side of a difference.
const VALUES_SHOWN: usize = 5;

/// One user's contacts and calendars, compared.
#[derive(Debug, Default, Serialize)]
pub struct PimVerify {
    /// Why they could not be compared (source or target unreachable).
    pub error: Option<String>,
    pub collections: Vec<PimCollectionVerify>,
    /// Every missing, different, duplicated, extra or failed item.
    pub findings: Vec<PimFinding>,
    pub missing: u64,
    pub differ: u64,
    pub duplicates: u64,
    /// In the target only (not counted against completeness).
    pub extra: u64,
    /// Recorded as failed when copied (not counted against completeness:
    /// `migrate` reported them, with why).
    pub failed_at_copy: u64,
}

impl PimVerify {
    /// Compared, and nothing is missing, different or duplicated.
    pub fn complete(&self) -> bool {
        self.error.is_none() && self.missing == 0 && self.differ == 0 && self.duplicates == 0
    }
}

/// One target collection and the source collection(s) that go into it.
#[derive(Debug, Default, Serialize)]
pub struct PimCollectionVerify {
    /// `events` or `contacts`.
    pub kind: &'static str,
    /// The source collections' display names.
    pub source: Vec<String>,
    /// The target's reference to the collection; empty when none was made
    /// yet.
    pub target: String,
    pub source_items: u64,
    pub target_items: u64,
    /// Found once, with the source's fields.
    pub matching: u64,
    pub missing: u64,
    pub differ: u64,
    pub duplicates: u64,
    pub extra: u64,
    pub failed_at_copy: u64,
}

/// What is wrong with one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    Missing,
    Differs,
    Duplicate,
    Extra,
    FailedAtCopy,
}

#[derive(Debug, Serialize)]
pub struct PimFinding {
    pub finding: Finding,
    /// `event` or `contact`.
    pub kind: &'static str,
    /// The source collection's display name (for an extra item, the
    /// target collection's source collections).
    pub collection: String,
    pub uid: Option<String>,
    /// The event's subject or the contact's name.
    pub name: String,
    /// Where the source holds it: the last part of its href (or its key in
    /// a file), for an item the source has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// The fields that differ (for [`Finding::Differs`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<FieldDifference>,
    /// What the state DB knows, and what to do.
    pub status: String,
}

/// One field whose value is not the source's.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct FieldDifference {
    pub field: String,
    /// A single-valued field: each side's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// A list (occurrences, addresses, numbers): the values on one side only,
    /// the first [`VALUES_SHOWN`] of each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub only_in_source: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub only_in_target: Vec<String>,
    /// Values on one side only beyond those shown.
    #[serde(skip_serializing_if = "is_zero")]
    pub more: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Fields holding comma-separated lists, compared value by value.
const LIST_FIELDS: [&str; 4] = ["occurrences", "attendees", "emails", "phones"];

/// The differences between a source item's fields and its copy's; only the
/// source's fields are compared (a target may list more).
pub fn differences(source: &[(String, String)], target: &[(String, String)]) -> Vec<FieldDifference> {
    let mut out = Vec::new();
    let held = |name: &str| target.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    if let Some(why) = held("unreadable") {
        out.push(FieldDifference {
            field: "unreadable".into(),
            source: None,
            target: Some(why.to_owned()),
            only_in_source: Vec::new(),
            only_in_target: Vec::new(),
            more: 0,
        });
        return out;
    }
    for (name, want) in source {
        let have = held(name).unwrap_or("");
        if have == want {
            continue;
        }
        if LIST_FIELDS.contains(&name.as_str()) {
            let split = |s: &str| -> Vec<String> {
                let mut v: Vec<String> = s.split(',').filter(|x| !x.is_empty()).map(str::to_owned).collect();
                v.sort();
                v
            };
            let (a, b) = (split(want), split(have));
            let only_a: Vec<String> = a.iter().filter(|x| b.binary_search(x).is_err()).cloned().collect();
            let only_b: Vec<String> = b.iter().filter(|x| a.binary_search(x).is_err()).cloned().collect();
            let more = only_a.len().saturating_sub(VALUES_SHOWN) + only_b.len().saturating_sub(VALUES_SHOWN);
            out.push(FieldDifference {
                field: name.clone(),
                source: None,
                target: None,
                only_in_source: only_a.into_iter().take(VALUES_SHOWN).collect(),
                only_in_target: only_b.into_iter().take(VALUES_SHOWN).collect(),
                more: more as u64,
            });
        } else {
            out.push(FieldDifference {
                field: name.clone(),
                source: Some(want.clone()),
                target: Some(have.to_owned()),
                only_in_source: Vec::new(),
                only_in_target: Vec::new(),
                more: 0,
            });
        }
    }
    out
}

/// The fields of an item a target holds as several entries (a series
/// written as single events): the earliest's, with the occurrences of all
/// of them within [`event::verify_window`] from the earliest start.
pub fn merge_parts(parts: &[&PimListed]) -> Vec<(String, String)> {
    let value = |l: &PimListed, name: &str| -> String {
        l.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let Some(first) = parts.iter().min_by_key(|p| value(p, "start")) else {
        return Vec::new();
    };
    let mut fields = first.fields.clone();
    let Ok(start) = DateTime::parse_from_rfc3339(&value(first, "start")) else {
        return fields;
    };
    let (from, to) = event::verify_window(start.with_timezone(&Utc));
    let (from, to) = (event::utc_word(from), event::utc_word(to));
    // Words sort as instants do, so the window is applied to them directly.
    let mut spans: Vec<String> = parts
        .iter()
        .flat_map(|p| {
            value(p, "occurrences")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|span| {
            let (s, e) = span.split_once('/').unwrap_or((span, span));
            (*s < *to.as_str() && *e > *from.as_str()) || (s == e && *s >= *from.as_str() && *s < *to.as_str())
        })
        .collect();
    spans.sort();
    spans.dedup();
    if let Some(slot) = fields.iter_mut().find(|(n, _)| n == "occurrences") {
        slot.1 = spans.join(",");
    }
    fields
}

/// What makes an item without key or UID a second copy of a source item:
/// the same subject and start, or the same name and e-mail addresses.
fn likeness(kind: ItemKind, fields: &[(String, String)]) -> Option<(String, String)> {
    let value = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    match kind {
        ItemKind::Event => Some((value("subject")?, value("start")?)),
        _ => Some((value("displayName")?, value("emails")?)),
    }
}

fn noun(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Event => "event",
        _ => "contact",
    }
}

/// The shown name of an item's fields: subject or display name.
fn shown(kind: ItemKind, fields: &[(String, String)]) -> String {
    let name = if kind == ItemKind::Event {
        "subject"
    } else {
        "displayName"
    };
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// The user's contacts-and-calendars source, read-only, as `migrate`
/// reads it.
fn open_source(pim: &Pim, user: &UserJob) -> Result<PimSource, Error> {
    pim.source_for(user)
}

/// One source item as read now.
struct SourceItem {
    /// Its key in the source collection (the href).
    source_key: String,
    /// Parsed: (UID, fields); or why it cannot be.
    parsed: Result<(String, Vec<(String, String)>), String>,
    /// The version `migrate` would record for it.
    version: String,
}

/// One source collection as read now, with the state DB's rows.
struct SourceCollection {
    href: String,
    display_name: String,
    target_ref: Option<String>,
    items: Vec<SourceItem>,
    known: HashMap<String, PimItem>,
}

/// Compares the user's contacts and calendars; failures to reach either
/// side end up in [`PimVerify::error`].
pub(super) async fn verify_user(ctx: &Ctx, pim: &Pim, user: &UserJob) -> PimVerify {
    let mut out = PimVerify::default();
    if let Err(e) = compare(ctx, pim, user, &mut out).await {
        out.error = Some(e.message);
    }
    out
}

async fn compare(ctx: &Ctx, pim: &Pim, user: &UserJob, out: &mut PimVerify) -> Result<(), Error> {
    let source = open_source(pim, user)?;
    let discovery = source
        .collections()
        .await
        .map_err(|e| e.context("contacts and calendars source"))?;
    let mut login = user.target_login();
    if pim.target_is_dav && login.login.is_none() {
        login.login = Some(user.username.clone());
        login.secret = Some(user.password.clone());
    }
    let mut session = pim
        .target
        .open(&login)
        .await
        .map_err(|e| e.context("contacts and calendars target"))?;
    let result = async {
        for (kind, collections) in [
            (ItemKind::Event, &discovery.calendars),
            (ItemKind::Contact, &discovery.address_books),
        ] {
            let mut read = Vec::with_capacity(collections.len());
            for c in collections {
                read.push(read_collection(ctx, &source, &user.email, kind, c).await?);
            }
            // Source collections that go into one target collection are
            // compared together against it.
            let mut groups: Vec<(Option<String>, Vec<SourceCollection>)> = Vec::new();
            for c in read {
                match groups.iter_mut().find(|(t, _)| t.is_some() && *t == c.target_ref) {
                    Some((_, members)) => members.push(c),
                    None => groups.push((c.target_ref.clone(), vec![c])),
                }
            }
            for (target_ref, members) in groups {
                let listed = match &target_ref {
                    Some(t) => session
                        .list(kind, t)
                        .await
                        .map_err(|e| e.context("contacts and calendars target"))?,
                    None => Vec::new(),
                };
                compare_group(out, &user.email, kind, target_ref.as_deref(), &members, &listed);
            }
        }
        Ok::<(), Error>(())
    }
    .await;
    session.close().await;
    result
}

/// Reads one source collection afresh and the state DB's rows for it.
async fn read_collection(
    ctx: &Ctx,
    source: &PimSource,
    email: &str,
    kind: ItemKind,
    collection: &Collection,
) -> Result<SourceCollection, Error> {
    let display_name = collection
        .display_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| {
            let path = collection.href.trim_end_matches('/');
            path.rsplit('/').next().unwrap_or(path).to_owned()
        });
    let (target_ref, known) = match &ctx.db {
        Some(db) => tokio::task::block_in_place(|| {
            let cp = db.lock().unwrap_or_else(|p| p.into_inner());
            let e = |e: crate::checkpoint::CheckpointError| Error::fatal(e.0);
            let row = cp
                .pim_collections(email, kind)
                .map_err(e)?
                .into_iter()
                .find(|c| c.source_ref == collection.href);
            match row {
                Some(row) => Ok::<_, Error>((row.target_ref.clone(), cp.pim_items(row.id).map_err(e)?)),
                None => Ok((None, HashMap::new())),
            }
        })?,
        None => (None, HashMap::new()),
    };
    let listing = source
        .changes(collection, None, &BTreeMap::new())
        .await
        .map_err(|e| e.context(format!("source collection {display_name}")))?;
    let hrefs: Vec<String> = listing.changed.into_iter().map(|m| m.href).collect();
    let mut items = Vec::with_capacity(hrefs.len());
    for batch in hrefs.chunks(FETCH_BATCH) {
        let fetched = source
            .fetch(collection, batch)
            .await
            .map_err(|e| e.context(format!("source collection {display_name}")))?;
        for outcome in fetched {
            match outcome {
                // Deleted since the listing: not on the source any more.
                FetchOutcome::Gone { .. } => {}
                FetchOutcome::Failed { href, error } => items.push(SourceItem {
                    source_key: href,
                    parsed: Err(format!("cannot be read from the source: {}", error.message)),
                    version: String::new(),
                }),
                FetchOutcome::Found(item) => {
                    let version = item
                        .etag
                        .clone()
                        .unwrap_or_else(|| format!("sha256:{}", item_key("", "", &item.body)));
                    items.push(SourceItem {
                        parsed: parse(kind, &item.body),
                        source_key: item.href,
                        version,
                    });
                }
            }
        }
    }
    Ok(SourceCollection {
        href: collection.href.clone(),
        display_name,
        target_ref,
        items,
        known,
    })
}

/// The one item a source object holds, worded for comparison, or why
/// `migrate` could not copy it.
fn parse(kind: ItemKind, body: &str) -> Result<(String, Vec<(String, String)>), String> {
    let (mut items, problems): (Vec<(String, Fields)>, _) = match kind {
        ItemKind::Event => {
            let (objects, problems) = event::split_calendar(body);
            let items = objects
                .iter()
                .map(|o| (o.uid.clone(), event::verify_fields(o)))
                .collect();
            (items, problems)
        }
        _ => {
            let (objects, problems) = contact::split_vcards(body);
            let items = objects
                .iter()
                .map(|o| (o.uid.clone(), contact::verify_fields(o)))
                .collect();
            (items, problems)
        }
    };
    match items.len() {
        1 => Ok(items.remove(0)),
        0 if problems.is_empty() => Err("the item holds no event or card".into()),
        0 => Err(problems
            .iter()
            .map(|p| format!("{}: {}", p.uid_or_position, p.reason))
            .collect::<Vec<_>>()
            .join("; ")),
        n => Err(format!(
            "the item holds {n} different UIDs where CalDAV/CardDAV allow one"
        )),
    }
}

/// The target's entries of one collection, taken as they are matched.
struct Pool<'a> {
    entries: &'a [PimListed],
    taken: Vec<bool>,
    by_key: HashMap<&'a str, Vec<usize>>,
    by_uid: HashMap<&'a str, Vec<usize>>,
}

impl<'a> Pool<'a> {
    fn new(entries: &'a [PimListed]) -> Pool<'a> {
        let mut by_key: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut by_uid: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            if let Some(k) = &e.key {
                by_key.entry(k).or_default().push(i);
            } else if let Some(u) = &e.uid {
                by_uid.entry(u).or_default().push(i);
            }
        }
        Pool {
            entries,
            taken: vec![false; entries.len()],
            by_key,
            by_uid,
        }
    }

    /// The entries written with `key`, else those holding `uid`, not taken
    /// yet; taken now.
    fn take(&mut self, key: &str, uid: &str) -> Vec<&'a PimListed> {
        let mut out = Vec::new();
        for list in [self.by_key.get(key), self.by_uid.get(uid)].into_iter().flatten() {
            for &i in list {
                if !self.taken[i] {
                    self.taken[i] = true;
                    out.push(&self.entries[i]);
                }
            }
            if !out.is_empty() {
                break;
            }
        }
        out
    }

    fn rest(&self) -> impl Iterator<Item = &'a PimListed> + '_ {
        self.entries
            .iter()
            .zip(&self.taken)
            .filter(|(_, t)| !**t)
            .map(|(e, _)| e)
    }
}

/// Splits the entries found for one item into the item itself (its parts
/// merged) and the duplicates: the same part twice.
fn split_duplicates<'a>(found: &[&'a PimListed]) -> (Vec<(String, String)>, Vec<&'a PimListed>) {
    let mut parts: Vec<&PimListed> = Vec::new();
    let mut duplicates = Vec::new();
    for e in found {
        if parts.iter().any(|p| p.part == e.part) {
            duplicates.push(*e);
        } else {
            parts.push(e);
        }
    }
    let fields = if parts.len() == 1 {
        parts[0].fields.clone()
    } else {
        merge_parts(&parts)
    };
    (fields, duplicates)
}

/// Compares one target collection with the source collection(s) going into
/// it, adding to `out`.
fn compare_group(
    out: &mut PimVerify,
    email: &str,
    kind: ItemKind,
    target_ref: Option<&str>,
    members: &[SourceCollection],
    listed: &[PimListed],
) {
    let noun = noun(kind);
    let mut cv = PimCollectionVerify {
        kind: if kind == ItemKind::Event { "events" } else { "contacts" },
        source: members.iter().map(|c| c.display_name.clone()).collect(),
        target: target_ref.unwrap_or_default().to_owned(),
        target_items: listed.len() as u64,
        ..Default::default()
    };
    let mut findings = Vec::new();
    let mut pool = Pool::new(listed);
    // Copies of items deleted on the source, by key and by UID: kept by
    // `migrate` unless it mirrors deletions, so not extra.
    let mut deleted_on_source: HashSet<String> = HashSet::new();
    for c in members {
        for p in c.known.values() {
            if matches!(p.state, PimState::Gone | PimState::Deleted) {
                deleted_on_source.insert(item_key(email, &c.href, &p.source_key));
                if !p.uid.is_empty() {
                    deleted_on_source.insert(p.uid.clone());
                }
            }
        }
    }
    // Source items by likeness, for target entries matched by neither key nor UID.
    let mut alike: HashMap<(String, String), (&str, &str)> = HashMap::new();
    // UIDs of the source items the target lacks.
    let mut lacking: HashSet<&str> = HashSet::new();
    for c in members {
        for item in &c.items {
            cv.source_items += 1;
            let prior = c.known.get(&item.source_key);
            let failed_reason = prior
                .filter(|p| p.state == PimState::Failed)
                .map(|p| p.reason.clone().unwrap_or_else(|| "no reason recorded".into()));
            let (uid, fields) = match &item.parsed {
                Ok((uid, fields)) => (uid.as_str(), fields),
                Err(why) => {
                    let key = item_key(email, &c.href, &item.source_key);
                    let found = pool.take(&key, "");
                    let uid = prior.map(|p| p.uid.clone()).filter(|u| !u.is_empty());
                    let (finding, status) = match (&failed_reason, found.is_empty()) {
                        (Some(reason), _) => (Finding::FailedAtCopy, format!("failed at copy time ({reason})")),
                        (None, true) => (
                            Finding::Missing,
                            format!("{why}; fix it on the source, then run cutover migrate"),
                        ),
                        // Copied before it became unreadable: not compared.
                        (None, false) => continue,
                    };
                    count(&mut cv, finding);
                    findings.push(PimFinding {
                        finding,
                        kind: noun,
                        collection: c.display_name.clone(),
                        uid,
                        name: String::new(),
                        item: Some(item_name(&item.source_key)),
                        differences: Vec::new(),
                        status,
                    });
                    continue;
                }
            };
            let name = shown(kind, fields);
            let finding = |finding, differences, status: String| PimFinding {
                finding,
                kind: noun,
                collection: c.display_name.clone(),
                uid: Some(uid.to_owned()),
                name: name.clone(),
                item: Some(item_name(&item.source_key)),
                differences,
                status,
            };
            if let Some(l) = likeness(kind, fields) {
                alike.entry(l).or_insert((uid, &c.display_name));
            }
            if target_ref.is_none() {
                let (kind_found, status) = match failed_reason {
                    Some(reason) => (Finding::FailedAtCopy, format!("failed at copy time ({reason})")),
                    None => (
                        Finding::Missing,
                        "the collection was not copied yet: run cutover migrate".to_owned(),
                    ),
                };
                count(&mut cv, kind_found);
                findings.push(finding(kind_found, Vec::new(), status));
                continue;
            }
            let key = item_key(email, &c.href, &item.source_key);
            let found = pool.take(&key, uid);
            if found.is_empty() {
                let (kind_found, status) = match failed_reason {
                    Some(reason) => (Finding::FailedAtCopy, format!("failed at copy time ({reason})")),
                    None => (Finding::Missing, missing_status(prior)),
                };
                lacking.insert(uid);
                count(&mut cv, kind_found);
                findings.push(finding(kind_found, Vec::new(), status));
                continue;
            }
            let (held, duplicates) = split_duplicates(&found);
            for _ in &duplicates {
                count(&mut cv, Finding::Duplicate);
                findings.push(finding(
                    Finding::Duplicate,
                    Vec::new(),
                    format!(
                        "the target holds this {noun} {} times, the source once: delete the extra copy in the target",
                        duplicates.len() + 1
                    ),
                ));
            }
            let differences = differences(fields, &held);
            if differences.is_empty() {
                cv.matching += 1;
                continue;
            }
            let changed_on_source = prior.is_none_or(|p| p.written_version.as_deref() != Some(item.version.as_str()));
            let status = match &failed_reason {
                Some(reason) => format!(
                    "the source's latest version failed at copy time ({reason}); the target holds an earlier one"
                ),
                None if changed_on_source => "changed on the source since the last migrate: run cutover migrate".into(),
                None => "the copy is not the source's (changed in the target after the copy?): change it back in the target, or change the item on the source so the next migrate writes it again".into(),
            };
            count(&mut cv, Finding::Differs);
            findings.push(finding(Finding::Differs, differences, status));
        }
    }
    let target_name = cv.source.join(" + ");
    for e in pool.rest() {
        let like = likeness(kind, &e.fields).and_then(|l| alike.get(&l));
        let name = shown(kind, &e.fields);
        match like {
            // Looks like a source item the target lacks: put there by
            // hand, it seems; that item is reported missing already.
            Some((uid, collection)) if lacking.contains(uid) => {
                count(&mut cv, Finding::Extra);
                findings.push(PimFinding {
                    finding: Finding::Extra,
                    kind: noun,
                    collection: (*collection).to_owned(),
                    uid: Some((*uid).to_owned()),
                    name,
                    item: None,
                    differences: Vec::new(),
                    status: "looks like this missing source item, but was not written by cutover (put there by hand?); migrate does not recognise it as the copy".into(),
                });
            }
            Some((uid, collection)) => {
                count(&mut cv, Finding::Duplicate);
                findings.push(PimFinding {
                    finding: Finding::Duplicate,
                    kind: noun,
                    collection: (*collection).to_owned(),
                    uid: Some((*uid).to_owned()),
                    name,
                    item: None,
                    differences: Vec::new(),
                    status: "a second copy of this source item, not made by cutover: delete it in the target".into(),
                });
            }
            None => {
                let was_deleted = [&e.key, &e.uid]
                    .into_iter()
                    .flatten()
                    .any(|k| deleted_on_source.contains(k));
                let status = if was_deleted {
                    "deleted on the source after it was copied; the copy is kept (cutover migrate --mirror-deletions deletes such copies); not counted as a problem"
                } else {
                    "in the target only (created there after the copy?); not counted as a problem"
                };
                count(&mut cv, Finding::Extra);
                findings.push(PimFinding {
                    finding: Finding::Extra,
                    kind: noun,
                    collection: target_name.clone(),
                    uid: e.uid.clone(),
                    name,
                    item: None,
                    differences: Vec::new(),
                    status: status.into(),
                });
            }
        }
    }
    out.missing += cv.missing;
    out.differ += cv.differ;
    out.duplicates += cv.duplicates;
    out.extra += cv.extra;
    out.failed_at_copy += cv.failed_at_copy;
    out.collections.push(cv);
    out.findings.extend(findings);
}

/// The last part of a source key (an href's file name), to find the item
/// by on the source.
fn item_name(source_key: &str) -> String {
    let path = source_key.trim_end_matches('/');
    path.rsplit('/').next().unwrap_or(path).to_owned()
}

fn count(cv: &mut PimCollectionVerify, finding: Finding) {
    match finding {
        Finding::Missing => cv.missing += 1,
        Finding::Differs => cv.differ += 1,
        Finding::Duplicate => cv.duplicates += 1,
        Finding::Extra => cv.extra += 1,
        Finding::FailedAtCopy => cv.failed_at_copy += 1,
    }
}

/// What the state DB knows of an item the target lacks, and what to do.
fn missing_status(prior: Option<&PimItem>) -> String {
    match prior.map(|p| p.state) {
        None => "new on the source since the last migrate: run cutover migrate".into(),
        Some(PimState::Writing) => {
            "the copy was interrupted: run cutover migrate (it looks for the copy before writing it again)".into()
        }
        Some(PimState::Written) => {
            "recorded as copied but not in the target (deleted there after the copy?); migrate writes an item again only when it changes on the source: restore it in the target, or change it on the source and run cutover migrate".into()
        }
        Some(PimState::Gone | PimState::Deleted) => {
            "recorded as deleted on the source, but it is there again: run cutover migrate".into()
        }
        Some(PimState::Failed) => "failed at copy time".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::contact::split_vcards;
    use crate::transform::event::split_calendar;

    fn calendar(body: &str) -> String {
        format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//cutover tests//EN\r\n{body}END:VCALENDAR\r\n")
    }

    fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} in {fields:?}"))
    }

    fn one_event(body: &str) -> Vec<(String, String)> {
        let (objects, problems) = split_calendar(&calendar(body));
        assert!(problems.is_empty(), "{problems:?}");
        event::verify_fields(&objects[0])
    }

    #[test]
    fn a_weekly_series_across_the_dst_switch_keeps_its_wall_clock_time() {
        // Mondays 09:00 Berlin from 17 March 2025, four times: 09:00 CET is
        // 08:00 UTC, after 30 March 09:00 CEST is 07:00 UTC; 31 March
        // cancelled, 7 April moved to 11:00.
        let fields = one_event(
            "BEGIN:VEVENT\r\nUID:dst-1\r\nDTSTAMP:20250101T000000Z\r\n\
DTSTART;TZID=Europe/Berlin:20250317T090000\r\nDTEND;TZID=Europe/Berlin:20250317T093000\r\n\
RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=5\r\nEXDATE;TZID=Europe/Berlin:20250331T090000\r\n\
SUMMARY:Standup\r\nORGANIZER:mailto:alice@example.test\r\n\
ATTENDEE;CN=Bob:mailto:Bob@Example.com\r\nATTENDEE:mailto:anna@example.com\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:dst-1\r\nDTSTAMP:20250101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20250407T090000\r\n\
DTSTART;TZID=Europe/Berlin:20250407T110000\r\nDTEND;TZID=Europe/Berlin:20250407T113000\r\n\
SUMMARY:Standup (moved)\r\nEND:VEVENT\r\n",
        );
        assert_eq!(field(&fields, "subject"), "Standup");
        assert_eq!(field(&fields, "start"), "2025-03-17T08:00:00Z");
        assert_eq!(field(&fields, "end"), "2025-03-17T08:30:00Z");
        assert_eq!(field(&fields, "isAllDay"), "false");
        assert_eq!(
            field(&fields, "occurrences"),
            "2025-03-17T08:00:00Z/2025-03-17T08:30:00Z,\
2025-03-24T08:00:00Z/2025-03-24T08:30:00Z,\
2025-04-07T09:00:00Z/2025-04-07T09:30:00Z,\
2025-04-14T07:00:00Z/2025-04-14T07:30:00Z"
        );
        assert_eq!(
            field(&fields, "attendees"),
            "anna@example.com,bob@example.com",
            "sorted, lower-case, the organizer not among them"
        );
    }

    #[test]
    fn an_all_day_event_over_several_days_is_midnight_to_midnight() {
        let fields = one_event(
            "BEGIN:VEVENT\r\nUID:trip-1\r\nDTSTAMP:20250101T000000Z\r\nDTSTART;VALUE=DATE:20250414\r\n\
DTEND;VALUE=DATE:20250417\r\nSUMMARY:Easter trip\r\nEND:VEVENT\r\n",
        );
        assert_eq!(field(&fields, "isAllDay"), "true");
        assert_eq!(field(&fields, "start"), "2025-04-14T00:00:00Z");
        assert_eq!(field(&fields, "end"), "2025-04-17T00:00:00Z", "the day after the last");
        assert_eq!(
            field(&fields, "occurrences"),
            "2025-04-14T00:00:00Z/2025-04-17T00:00:00Z"
        );
        assert_eq!(field(&fields, "attendees"), "");
        // The same words from what a target lists of it.
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let (start, end) = (t("2025-04-14T00:00:00Z"), t("2025-04-17T00:00:00Z"));
        assert_eq!(
            event::verify_words(" Easter trip ", start, end, true, &[(start, end)], []),
            fields
        );
    }

    #[test]
    fn a_contact_with_five_addresses_is_compared_with_all_five() {
        let card = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:anna\r\nFN:Anna Meyer\r\nN:Meyer;Anna;;;\r\n\
EMAIL;TYPE=INTERNET:A1@example.com\r\nEMAIL;TYPE=INTERNET:a2@example.com\r\n\
EMAIL;TYPE=INTERNET:a3@example.com\r\nEMAIL;TYPE=INTERNET:a4@example.com\r\n\
EMAIL;TYPE=INTERNET:a5@example.com\r\nTEL;TYPE=CELL:+49 170 1234-567\r\nTEL;TYPE=WORK:030 123\r\nEND:VCARD\r\n";
        let (objects, problems) = split_vcards(card);
        assert!(problems.is_empty(), "{problems:?}");
        let fields = contact::verify_fields(&objects[0]);
        assert_eq!(field(&fields, "displayName"), "Anna Meyer");
        assert_eq!(
            field(&fields, "emails"),
            "a1@example.com,a2@example.com,a3@example.com,a4@example.com,a5@example.com"
        );
        assert_eq!(field(&fields, "phones"), "+491701234567,030123");
        // A target holding three in its fields and two in the notes words
        // them alike.
        let held = contact::verify_words(
            "Anna Meyer",
            [
                "a3@example.com",
                "a1@example.com",
                "a2@example.com",
                "a4@EXAMPLE.com",
                "a5@example.com",
            ],
            ["030 123", "+491701234567"],
        );
        assert_eq!(held, fields);
        // Only three held: the other two are named as missing from the copy.
        let short = contact::verify_words(
            "Anna Meyer",
            ["a1@example.com", "a2@example.com", "a3@example.com"],
            ["030 123", "+491701234567"],
        );
        assert_eq!(
            differences(&fields, &short),
            vec![FieldDifference {
                field: "emails".into(),
                source: None,
                target: None,
                only_in_source: vec!["a4@example.com".into(), "a5@example.com".into()],
                only_in_target: Vec::new(),
                more: 0,
            }]
        );
    }

    fn listed(key: &str, part: Option<u32>, fields: Vec<(String, String)>) -> PimListed {
        PimListed {
            id: format!("id-{key}-{part:?}"),
            key: Some(key.into()),
            uid: None,
            part,
            fields,
        }
    }

    #[test]
    fn pieces_of_one_item_are_merged_and_a_repeated_piece_is_a_duplicate() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let piece = |s: &str, e: &str| event::verify_words("Pills", t(s), t(e), false, &[(t(s), t(e))], []);
        let a = listed("k", Some(1), piece("2025-06-02T13:00:00Z", "2025-06-02T13:05:00Z"));
        let b = listed("k", Some(0), piece("2025-06-02T07:00:00Z", "2025-06-02T07:05:00Z"));
        let again = listed("k", Some(0), piece("2025-06-02T07:00:00Z", "2025-06-02T07:05:00Z"));
        let (fields, duplicates) = split_duplicates(&[&a, &b, &again]);
        assert_eq!(duplicates, vec![&again]);
        assert_eq!(field(&fields, "start"), "2025-06-02T07:00:00Z");
        assert_eq!(
            field(&fields, "occurrences"),
            "2025-06-02T07:00:00Z/2025-06-02T07:05:00Z,2025-06-02T13:00:00Z/2025-06-02T13:05:00Z"
        );
    }

    fn contact_item(href: &str, uid: &str, name: &str, email: &str) -> SourceItem {
        SourceItem {
            source_key: href.into(),
            parsed: Ok((uid.into(), contact::verify_words(name, [email], []))),
            version: format!("etag-{uid}"),
        }
    }

    fn known(href: &str, uid: &str, state: PimState, reason: Option<&str>) -> (String, PimItem) {
        (
            href.into(),
            PimItem {
                source_key: href.into(),
                uid: uid.into(),
                state,
                written_version: (state == PimState::Written).then(|| format!("etag-{uid}")),
                source_version: None,
                target_id: None,
                reason: reason.map(str::to_owned),
                notes: None,
            },
        )
    }

    #[test]
    fn items_are_matched_by_uid_and_each_finding_says_what_the_state_db_knows() {
        let collection = SourceCollection {
            href: "/alice/friends/".into(),
            display_name: "Friends".into(),
            target_ref: Some("/bob/friends/".into()),
            items: vec![
                contact_item("/alice/friends/a.vcf", "a", "Anna", "anna@example.com"),
                contact_item("/alice/friends/b.vcf", "b", "Ben", "ben@example.com"),
                contact_item("/alice/friends/c.vcf", "c", "Cleo", "cleo@example.com"),
                contact_item("/alice/friends/d.vcf", "d", "Dora", "dora@example.com"),
                contact_item("/alice/friends/e.vcf", "e", "Emil", "emil@example.com"),
            ],
            known: [
                known("/alice/friends/a.vcf", "a", PimState::Written, None),
                known("/alice/friends/b.vcf", "b", PimState::Written, None),
                known("/alice/friends/c.vcf", "c", PimState::Written, None),
                known(
                    "/alice/friends/d.vcf",
                    "d",
                    PimState::Failed,
                    Some("refused by the target"),
                ),
                known("/alice/friends/gone.vcf", "gone", PimState::Gone, None),
            ]
            .into_iter()
            .collect(),
        };
        let copy = |uid: &str, name: &str, email: &str| PimListed {
            id: format!("/bob/friends/{uid}.vcf"),
            key: None,
            uid: Some(uid.into()),
            part: None,
            fields: contact::verify_words(name, [email], []),
        };
        let listed = vec![
            copy("a", "Anna", "anna@example.com"),
            copy("b", "Ben", "ben@changed.example"),
            copy("a", "Anna", "anna@example.com"),
            copy("gone", "Gus", "gus@example.com"),
            copy("z", "Zoe", "zoe@example.com"),
        ];
        let mut out = PimVerify::default();
        compare_group(
            &mut out,
            "alice@example.test",
            ItemKind::Contact,
            Some("/bob/friends/"),
            &[collection],
            &listed,
        );
        let seen: Vec<(Finding, Option<&str>, &str)> = out
            .findings
            .iter()
            .map(|f| {
                (
                    f.finding,
                    f.uid.as_deref(),
                    f.status.split(':').next().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    Finding::Duplicate,
                    Some("a"),
                    "the target holds this contact 2 times, the source once"
                ),
                (
                    Finding::Differs,
                    Some("b"),
                    "the copy is not the source's (changed in the target after the copy?)"
                ),
                (
                    Finding::Missing,
                    Some("c"),
                    "recorded as copied but not in the target (deleted there after the copy?); migrate writes an item again only when it changes on the source"
                ),
                (
                    Finding::FailedAtCopy,
                    Some("d"),
                    "failed at copy time (refused by the target)"
                ),
                (Finding::Missing, Some("e"), "new on the source since the last migrate"),
                (
                    Finding::Extra,
                    Some("gone"),
                    "deleted on the source after it was copied; the copy is kept (cutover migrate --mirror-deletions deletes such copies); not counted as a problem"
                ),
                (
                    Finding::Extra,
                    Some("z"),
                    "in the target only (created there after the copy?); not counted as a problem"
                ),
            ]
        );
        assert_eq!(
            (out.missing, out.differ, out.duplicates, out.extra, out.failed_at_copy),
            (2, 1, 1, 2, 1)
        );
        assert!(!out.complete());
        let c = &out.collections[0];
        assert_eq!((c.source_items, c.target_items, c.matching), (5, 5, 1));
    }

    #[test]
    fn single_fields_show_both_values_and_an_unreadable_copy_says_why() {
        let source = vec![("subject".to_owned(), "Review".to_owned())];
        let target = vec![
            ("subject".to_owned(), "Reveiw".to_owned()),
            ("recurrence".to_owned(), "weekly".to_owned()),
        ];
        let d = differences(&source, &target);
        assert_eq!(d.len(), 1, "fields the source has not are not compared");
        assert_eq!(
            (d[0].source.as_deref(), d[0].target.as_deref()),
            (Some("Review"), Some("Reveiw"))
        );
        let unreadable = vec![("unreadable".to_owned(), "no END:VCALENDAR".to_owned())];
        assert_eq!(differences(&source, &unreadable)[0].field, "unreadable");
        assert!(differences(&source, &source).is_empty());
    }
}
