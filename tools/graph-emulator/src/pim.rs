//! Contacts and calendars ("personal information"): routing, the per-mailbox
//! store, query options, contact folders, contacts and contact photos.
//! Calendars and events live in `calendar`, the recurrence engine in
//! `recurrence`.
//!
//! cutover migrates contacts and calendars into Exchange Online through the
//! same Graph endpoints it uses for mail (issue #14). These routes go through
//! the same pipeline as messages — authentication, the per-mailbox throttle,
//! fault injection, `$batch` — so contacts and events draw on the same
//! budget, and they refuse what Graph refuses so the product cannot rely on
//! leniency: unknown properties, wrong JSON types, more e-mail addresses
//! than Exchange stores.

use std::collections::HashMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hyper::Method;
use serde_json::{Map, Value, json};

use crate::App;
use crate::calendar::{self, Calendar, Event};
use crate::folders::{folder_exists, malformed_id, required_name};
use crate::graph::Ctx;
use crate::http::{
    Req, Resp, bad_value, graph_error, json_object, method_not_allowed, not_implemented, unknown_property,
};
use crate::messages::{MAX_REQUEST_BYTES, item_not_found, parse_ext_props, request_too_large};
use crate::odata::{self, MAX_TOP, eq_clause, ext_prop_filter, split_top_level};
use crate::store::{Lookup, Mailbox};

/// Id kinds (see `store::make_id`).
pub const KIND_CONTACT_FOLDER: u8 = b'C';
pub const KIND_CONTACT: u8 = b'P';
pub const KIND_CALENDAR: u8 = b'K';
pub const KIND_EVENT: u8 = b'E';

/// Which calendar an events path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalendarRef {
    /// `/events/…`: lists and creates in the default calendar, finds an
    /// event by id in any calendar.
    Any,
    /// `/calendar/…`.
    Default,
    /// `/calendars/{id}/…`.
    Id(String),
}

/// The resource a contacts or calendar path addresses under `/users/{user}`.
#[derive(Debug, Clone)]
pub enum PimTarget {
    /// `contactFolders` (None: children of the default Contacts folder) or
    /// `contactFolders/{id}/childFolders`.
    ContactFolders(Option<String>),
    ContactFolder(String),
    /// `contacts` (None: the default Contacts folder) or `contactFolders/{id}/contacts`.
    Contacts(Option<String>),
    Contact(Option<String>, String),
    /// `…/contacts/{id}/photo/$value`.
    ContactPhoto(Option<String>, String),
    Calendars,
    /// `calendar` (default) or `calendars/{id}`.
    Calendar(CalendarRef),
    Events(CalendarRef),
    Event(CalendarRef, String),
    EventInstances(CalendarRef, String),
    EventCancel(CalendarRef, String),
    EventAttachments(CalendarRef, String),
    /// `…/events/{id}/attachments/{attachment id}`.
    EventAttachment(CalendarRef, String, String),
    /// `…/events/{id}/attachments/createUploadSession`.
    EventUploadSession(CalendarRef, String),
    CalendarView(CalendarRef),
}

fn is(seg: &str, name: &str) -> bool {
    seg.eq_ignore_ascii_case(name)
}

/// Whether a first path segment belongs to contacts or calendars.
pub fn owns(first: &str) -> bool {
    [
        "contactFolders",
        "contacts",
        "calendars",
        "calendar",
        "events",
        "calendarView",
    ]
    .iter()
    .any(|n| is(first, n))
}

/// Parses a path under `/users/{user}` whose first segment [`owns`] accepts.
/// `Err` carries the segment Graph's router would not know.
pub fn parse(rest: &[String]) -> Result<PimTarget, String> {
    let unknown = |i: usize| rest.get(i).cloned().unwrap_or_default();
    let first = rest[0].as_str();
    if is(first, "contacts") {
        return parse_contacts(None, &rest[1..]).ok_or_else(|| unknown(rest.len() - 1));
    }
    if is(first, "contactFolders") {
        let mut rest = rest;
        loop {
            match rest.len() {
                1 => return Ok(PimTarget::ContactFolders(None)),
                2 => return Ok(PimTarget::ContactFolder(rest[1].clone())),
                _ => {}
            }
            let id = rest[1].clone();
            if is(&rest[2], "childFolders") {
                if rest.len() == 3 {
                    return Ok(PimTarget::ContactFolders(Some(id)));
                }
                // `contactFolders/{a}/childFolders/{b}/…` addresses folder b.
                rest = &rest[2..];
                continue;
            }
            if is(&rest[2], "contacts") {
                return parse_contacts(Some(id), &rest[3..]).ok_or_else(|| rest.last().cloned().unwrap_or_default());
            }
            return Err(rest[2].clone());
        }
    }
    if is(first, "calendarView") && rest.len() == 1 {
        return Ok(PimTarget::CalendarView(CalendarRef::Default));
    }
    if is(first, "events") {
        return parse_events(CalendarRef::Any, &rest[1..]).ok_or_else(|| unknown(rest.len() - 1));
    }
    let (cal, tail) = if is(first, "calendar") {
        (CalendarRef::Default, &rest[1..])
    } else if is(first, "calendars") {
        match rest.get(1) {
            None => return Ok(PimTarget::Calendars),
            Some(id) => (CalendarRef::Id(id.clone()), &rest[2..]),
        }
    } else {
        return Err(first.to_string());
    };
    match tail.first() {
        None => Ok(PimTarget::Calendar(cal)),
        Some(s) if is(s, "events") => parse_events(cal, &tail[1..]).ok_or_else(|| unknown(rest.len() - 1)),
        Some(s) if is(s, "calendarView") && tail.len() == 1 => Ok(PimTarget::CalendarView(cal)),
        Some(s) => Err(s.clone()),
    }
}

fn parse_contacts(folder: Option<String>, rest: &[String]) -> Option<PimTarget> {
    match rest {
        [] => Some(PimTarget::Contacts(folder)),
        [id] => Some(PimTarget::Contact(folder, id.clone())),
        [id, photo, value] if is(photo, "photo") && value == "$value" => {
            Some(PimTarget::ContactPhoto(folder, id.clone()))
        }
        _ => None,
    }
}

fn parse_events(cal: CalendarRef, rest: &[String]) -> Option<PimTarget> {
    match rest {
        [] => Some(PimTarget::Events(cal)),
        [id] => Some(PimTarget::Event(cal, id.clone())),
        [id, s] if is(s, "instances") => Some(PimTarget::EventInstances(cal, id.clone())),
        [id, s] if is(s, "cancel") => Some(PimTarget::EventCancel(cal, id.clone())),
        [id, s] if is(s, "attachments") => Some(PimTarget::EventAttachments(cal, id.clone())),
        [id, s, action] if is(s, "attachments") && is(action, "createUploadSession") => {
            Some(PimTarget::EventUploadSession(cal, id.clone()))
        }
        [id, s, aid] if is(s, "attachments") => Some(PimTarget::EventAttachment(cal, id.clone(), aid.clone())),
        _ => None,
    }
}

/// Stats label of a request.
pub fn kind(t: &PimTarget, m: &Method) -> &'static str {
    let m = m.as_str();
    match (t, m) {
        (PimTarget::ContactFolders(_), "POST") => "contactFolders.create",
        (PimTarget::ContactFolders(_), _) => "contactFolders.list",
        (PimTarget::ContactFolder(_), _) => "contactFolders.get",
        (PimTarget::Contacts(_), "POST") => "contacts.create",
        (PimTarget::Contacts(_), _) => "contacts.list",
        (PimTarget::Contact(..), "PATCH") => "contacts.patch",
        (PimTarget::Contact(..), "DELETE") => "contacts.delete",
        (PimTarget::Contact(..), _) => "contacts.get",
        (PimTarget::ContactPhoto(..), _) => "contacts.photo",
        (PimTarget::Calendars, "POST") => "calendars.create",
        (PimTarget::Calendars, _) => "calendars.list",
        (PimTarget::Calendar(_), _) => "calendars.get",
        (PimTarget::Events(_), "POST") => "events.create",
        (PimTarget::Events(_), _) => "events.list",
        (PimTarget::Event(..), "PATCH") => "events.patch",
        (PimTarget::Event(..), "DELETE") => "events.delete",
        (PimTarget::Event(..), _) => "events.get",
        (PimTarget::EventInstances(..), _) => "events.instances",
        (PimTarget::EventCancel(..), _) => "events.cancel",
        (PimTarget::EventAttachments(..), _) => "events.attachments",
        (PimTarget::EventAttachment(..), _) => "events.attachment",
        (PimTarget::EventUploadSession(..), _) => "events.createUploadSession",
        (PimTarget::CalendarView(_), _) => "calendarView",
    }
}

pub fn dispatch(app: &App, req: &Req, ctx: &Ctx, t: &PimTarget) -> Resp {
    let m = &req.method;
    match t {
        PimTarget::ContactFolders(parent) if *m == Method::GET => list_folders(app, req, ctx, parent.as_deref()),
        PimTarget::ContactFolders(parent) if *m == Method::POST => create_folder(app, req, ctx, parent.as_deref()),
        PimTarget::ContactFolder(id) if *m == Method::GET => get_folder(app, req, ctx, id),
        PimTarget::Contacts(f) if *m == Method::GET => list_contacts(app, req, ctx, f.as_deref()),
        PimTarget::Contacts(f) if *m == Method::POST => create_contact(app, req, ctx, f.as_deref()),
        PimTarget::Contact(f, id) if *m == Method::GET => get_contact(app, req, ctx, f.as_deref(), id),
        PimTarget::Contact(f, id) if *m == Method::PATCH => patch_contact(app, req, ctx, f.as_deref(), id),
        PimTarget::Contact(f, id) if *m == Method::DELETE => delete_contact(app, req, ctx, f.as_deref(), id),
        PimTarget::ContactPhoto(f, id) if *m == Method::PUT => put_photo(app, req, ctx, f.as_deref(), id),
        PimTarget::ContactPhoto(f, id) if *m == Method::GET => get_photo(app, req, ctx, f.as_deref(), id),
        _ => calendar::dispatch(app, req, ctx, t).unwrap_or_else(|| method_not_allowed(req)),
    }
}

// ---------------------------------------------------------------------------
// Store

#[derive(Debug, Clone)]
pub struct ContactFolder {
    pub id: String,
    pub parent_id: String,
    pub display_name: String,
    pub seq: u64,
}

#[derive(Debug, Clone)]
pub struct Contact {
    pub id: String,
    pub folder_id: String,
    pub seq: u64,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub change: u64,
    /// The contact's writable properties as validated JSON.
    pub fields: Map<String, Value>,
    pub ext_props: Vec<(String, String)>,
    /// (content type, bytes) of the photo.
    pub photo: Option<(String, Bytes)>,
}

/// A mailbox's contacts and calendars.
#[derive(Debug, Default)]
pub struct PimStore {
    /// The default Contacts folder: `/contacts` and `/contactFolders` live in it.
    pub contacts_root: String,
    pub contact_folders: HashMap<String, ContactFolder>,
    pub contacts: HashMap<String, Contact>,
    pub default_calendar: String,
    pub calendars: HashMap<String, Calendar>,
    pub events: HashMap<String, Event>,
    /// transactionId → id of the event the first POST with it created.
    pub transactions: HashMap<String, String>,
    /// Creation order of every item (lists are in creation order).
    pub next_seq: u64,
}

impl PimStore {
    pub fn new(root_id: &str, contacts_root: String, default_calendar: String) -> PimStore {
        let mut s = PimStore {
            contacts_root: contacts_root.clone(),
            default_calendar: default_calendar.clone(),
            ..PimStore::default()
        };
        let seq = s.seq();
        s.contact_folders.insert(
            contacts_root.clone(),
            ContactFolder {
                id: contacts_root,
                parent_id: root_id.to_string(),
                display_name: "Contacts".into(),
                seq,
            },
        );
        let seq = s.seq();
        s.calendars.insert(
            default_calendar.clone(),
            Calendar::new(default_calendar, "Calendar".into(), None, true, seq),
        );
        s
    }

    pub fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }
}

/// Resolves an id of `kind` against a map of this mailbox's objects:
/// 400 for an id this service could not have issued, 404 for an unknown one.
pub fn check_id<T>(mb: &Mailbox, req: &Req, id: &str, kind: u8, map: &HashMap<String, T>) -> Result<(), Resp> {
    mb.resolve_object(id, kind).map_err(|e| match e {
        Lookup::Malformed => malformed_id(req),
        Lookup::NotFound => item_not_found(req),
    })?;
    if map.contains_key(id) {
        Ok(())
    } else {
        Err(item_not_found(req))
    }
}

pub fn context(app: &App, ctx: &Ctx, tail: &str) -> String {
    format!(
        "{}/{}/$metadata#users('{}')/{tail}",
        app.base_url, ctx.version, ctx.user
    )
}

// ---------------------------------------------------------------------------
// Query options

/// Graph's page size for contacts and events when `$top` is absent.
pub const DEFAULT_PAGE: usize = 10;

#[derive(Debug, Clone)]
pub enum PimFilter {
    DisplayName(String),
    /// Normalised property id and value.
    ExtendedProperty(String, String),
}

/// The query options of a contacts or events request: `$top`, `$skip`,
/// `$select`, `$filter` and `$expand` of extended properties.
pub type PimQuery = odata::Query<PimFilter>;

impl PimQuery {
    pub fn odata(&self) -> odata::Query {
        odata::Query {
            top: self.top,
            skip: self.skip,
            ..odata::Query::default()
        }
    }
}

/// Parses the query options of a contacts or events request: `$top`
/// (1..=1000), `$skip`, `$select` (against `props`), `$filter` as
/// `filter_prop eq '…'` (displayName for contacts and contact folders, name
/// for calendars, subject for events) or on a string extended property, and
/// `$expand` of extended properties. `$orderby` and the like answer 501.
pub fn parse_query(
    req: &Req,
    props: &[&'static str],
    type_name: &str,
    filter_prop: Option<&str>,
) -> Result<PimQuery, Resp> {
    let mut q = PimQuery::default();
    let bad = |msg: String| graph_error(req, 400, "BadRequest", &msg);
    for (k, v) in &req.query {
        match k.as_str() {
            "$top" => {
                let n: usize = v.parse().map_err(|_| bad(format!("Invalid $top value '{v}'.")))?;
                if n == 0 || n > MAX_TOP {
                    return Err(bad(format!("The value of $top must be between 1 and {MAX_TOP}.")));
                }
                q.top = Some(n);
            }
            "$skip" => q.skip = v.parse().map_err(|_| bad(format!("Invalid $skip value '{v}'.")))?,
            "$select" => {
                let mut out = Vec::new();
                for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let Some(canon) = props.iter().find(|c| c.eq_ignore_ascii_case(p)) else {
                        return Err(graph_error(
                            req,
                            400,
                            "RequestBroker--ParseUri",
                            &format!("Could not find a property named '{p}' on type '{type_name}'."),
                        ));
                    };
                    out.push(*canon);
                }
                q.select = Some(out);
            }
            "$filter" => {
                q.filter = Some(match ext_prop_filter(v) {
                    Ok(Some((id, value))) => PimFilter::ExtendedProperty(id, value),
                    Err(msg) => return Err(graph_error(req, 400, "ErrorInvalidProperty", &msg)),
                    Ok(None) => filter_prop
                        .and_then(|p| eq_clause(v, p))
                        .map(PimFilter::DisplayName)
                        .ok_or_else(|| not_implemented(req, &format!("$filter={v}")))?,
                });
            }
            "$expand" => {
                for item in split_top_level(v) {
                    let item = item.trim();
                    let ids = item
                        .strip_prefix("singleValueExtendedProperties(")
                        .and_then(|s| s.strip_suffix(')'))
                        .and_then(|s| s.trim().strip_prefix("$filter="))
                        .ok_or_else(|| not_implemented(req, &format!("$expand={item}")))?;
                    q.expand_ext = Some(odata::expand_ext_ids(req, ids)?);
                }
            }
            "$orderby" | "$count" | "$search" | "$format" | "$skiptoken" | "$deltatoken" => {
                return Err(not_implemented(req, k));
            }
            other if other.starts_with('$') => {
                return Err(bad(format!(
                    "The query specified in the URI is not valid. Query option '{other}' is not supported."
                )));
            }
            _ => {}
        }
    }
    Ok(q)
}

/// Applies `$select` (keeping `id` and the annotations, as Graph does) and
/// `$expand` of extended properties to a rendered item.
pub fn shape(mut v: Value, q: &PimQuery, ext_props: &[(String, String)]) -> Value {
    if let Some(ids) = &q.expand_ext {
        let found: Vec<Value> = ext_props
            .iter()
            .filter(|(k, _)| ids.contains(k))
            .map(|(k, val)| json!({"id": k, "value": val}))
            .collect();
        if !found.is_empty() {
            v["singleValueExtendedProperties"] = Value::Array(found);
        }
    }
    if let (Some(sel), Value::Object(o)) = (&q.select, &mut v) {
        o.retain(|k, _| {
            k == "id" || k.starts_with('@') || k == "singleValueExtendedProperties" || sel.iter().any(|s| s == k)
        });
    }
    v
}

/// Whether an item passes the `$filter`.
pub fn matches(filter: &Option<PimFilter>, display_name: &str, ext_props: &[(String, String)]) -> bool {
    match filter {
        None => true,
        Some(PimFilter::DisplayName(n)) => display_name == n,
        Some(PimFilter::ExtendedProperty(id, value)) => ext_props.iter().any(|(k, v)| k == id && v == value),
    }
}

/// A page `{"@odata.context", "value", "@odata.nextLink"?}` of rendered items.
pub fn page(app: &App, req: &Req, context: &str, items: Vec<Value>, q: &PimQuery) -> Resp {
    let total = items.len();
    let oq = q.odata();
    let (skip, top) = odata::window(&oq, DEFAULT_PAGE);
    let window: Vec<Value> = items.into_iter().skip(skip).take(top).collect();
    Resp::json(
        200,
        &odata::page(&app.base_url, req, context, window, total, &oq, DEFAULT_PAGE),
    )
}

// ---------------------------------------------------------------------------
// Contact folders

const FOLDER_PROPS: &[&str] = &["id", "displayName", "parentFolderId"];

fn folder_json(f: &ContactFolder) -> Value {
    json!({"id": f.id, "displayName": f.display_name, "parentFolderId": f.parent_id})
}

/// A contact folder id (the default Contacts folder included).
fn resolve_folder(mb: &Mailbox, req: &Req, id: &str) -> Result<String, Resp> {
    check_id(mb, req, id, KIND_CONTACT_FOLDER, &mb.pim.contact_folders)?;
    Ok(id.to_string())
}

/// The contact folder a path names, or the default Contacts folder.
fn folder_or_root(mb: &Mailbox, req: &Req, folder: Option<&str>) -> Result<String, Resp> {
    match folder {
        None => Ok(mb.pim.contacts_root.clone()),
        Some(f) => resolve_folder(mb, req, f),
    }
}

/// A GET of contacts or calendars: parses the query options (`props`,
/// `type_name`, `filter_prop` as for `parse_query`), then runs `f` with them
/// on the mailbox under the store lock.
pub fn read_with_query(
    app: &App,
    req: &Req,
    ctx: &Ctx,
    props: &[&'static str],
    type_name: &str,
    filter_prop: Option<&str>,
    f: impl FnOnce(&Mailbox, PimQuery) -> Result<Resp, Resp>,
) -> Resp {
    with_mailbox(app, req, ctx, parse_query(req, props, type_name, filter_prop), f)
}

/// A GET: `parsed` (what the request's options gave, or the answer refusing
/// them), then `f` with it on the mailbox under the store lock.
pub fn with_mailbox<T>(
    app: &App,
    req: &Req,
    ctx: &Ctx,
    parsed: Result<T, Resp>,
    f: impl FnOnce(&Mailbox, T) -> Result<Resp, Resp>,
) -> Resp {
    let parsed = match parsed {
        Ok(p) => p,
        Err(r) => return r,
    };
    let store = app.store.lock().unwrap();
    let Some(mb) = store.checked(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    f(mb, parsed).unwrap_or_else(|r| r)
}

/// A create under a contact folder: `f` with the mailbox (under the store
/// lock), the id generator and the folder `folder` names (or the default
/// Contacts folder).
fn create_in_folder(
    app: &App,
    req: &Req,
    ctx: &Ctx,
    folder: Option<&str>,
    f: impl FnOnce(&mut Mailbox, &mut fastrand::Rng, String) -> Resp,
) -> Resp {
    let mut store = app.store.lock().unwrap();
    let mut rng = app.rng.lock().unwrap();
    let Some(mb) = store.checked_mut(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    match folder_or_root(mb, req, folder) {
        Ok(id) => f(mb, &mut rng, id),
        Err(r) => r,
    }
}

/// `items` in creation order (`seq`), each rendered by `render`.
pub fn by_seq<'a, T: 'a>(
    items: impl Iterator<Item = &'a T>,
    seq: impl Fn(&T) -> u64,
    render: impl Fn(&T) -> Value,
) -> Vec<Value> {
    let mut list: Vec<&T> = items.collect();
    list.sort_by_key(|t| seq(t));
    list.into_iter().map(render).collect()
}

/// The `@odata.context` of a single entity, then 200 with it.
pub fn entity(app: &App, ctx: &Ctx, mut v: Value, tail: &str) -> Result<Resp, Resp> {
    v["@odata.context"] = json!(context(app, ctx, tail));
    Ok(Resp::json(200, &v))
}

fn list_folders(app: &App, req: &Req, ctx: &Ctx, parent: Option<&str>) -> Resp {
    let ty = "microsoft.graph.contactFolder";
    read_with_query(app, req, ctx, FOLDER_PROPS, ty, Some("displayName"), |mb, q| {
        let parent = folder_or_root(mb, req, parent)?;
        let folders = mb.pim.contact_folders.values();
        let folders = folders.filter(|f| f.parent_id == parent && matches(&q.filter, &f.display_name, &[]));
        let items = by_seq(folders, |f| f.seq, |f| shape(folder_json(f), &q, &[]));
        Ok(page(app, req, &context(app, ctx, "contactFolders"), items, &q))
    })
}

fn get_folder(app: &App, req: &Req, ctx: &Ctx, id: &str) -> Resp {
    read_with_query(
        app,
        req,
        ctx,
        FOLDER_PROPS,
        "microsoft.graph.contactFolder",
        None,
        |mb, q| {
            resolve_folder(mb, req, id)?;
            let v = shape(folder_json(&mb.pim.contact_folders[id]), &q, &[]);
            entity(app, ctx, v, "contactFolders/$entity")
        },
    )
}

/// `POST /contactFolders` (under the default Contacts folder, as
/// user-post-contactfolders documents) or `…/childFolders`: `displayName`
/// required and unique among siblings (409 ErrorFolderExists, as for mail
/// folders); `parentFolderId` in the body must name the parent addressed.
fn create_folder(app: &App, req: &Req, ctx: &Ctx, parent: Option<&str>) -> Resp {
    let body = match json_object(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut name = None;
    let mut body_parent = None;
    for (k, v) in &body {
        match k.as_str() {
            "displayName" => match v.as_str() {
                Some(s) => name = Some(s.to_string()),
                None => return bad_value(req, k, "Edm.String"),
            },
            "parentFolderId" => match v.as_str() {
                Some(s) => body_parent = Some(s.to_string()),
                None => return bad_value(req, k, "Edm.String"),
            },
            "@odata.type" => {}
            _ => return unknown_property(req, k, "microsoft.graph.contactFolder"),
        }
    }
    let name = match required_name(req, name, "displayName") {
        Ok(n) => n,
        Err(r) => return r,
    };
    create_in_folder(app, req, ctx, parent, |mb, rng, parent| {
        if body_parent.is_some_and(|p| p != parent) {
            return graph_error(
                req,
                400,
                "ErrorInvalidParameter",
                "parentFolderId does not name the folder the request addresses.",
            );
        }
        let lower = name.to_lowercase();
        if mb
            .pim
            .contact_folders
            .values()
            .any(|f| f.parent_id == parent && f.display_name.to_lowercase() == lower)
        {
            return folder_exists(req);
        }
        let id = mb.new_id(KIND_CONTACT_FOLDER, rng);
        let seq = mb.pim.seq();
        let f = ContactFolder {
            id: id.clone(),
            parent_id: parent,
            display_name: name,
            seq,
        };
        let mut v = folder_json(&f);
        v["@odata.context"] = json!(context(app, ctx, "contactFolders/$entity"));
        mb.pim.contact_folders.insert(id, f);
        Resp::json(201, &v)
    })
}

// ---------------------------------------------------------------------------
// Contacts

/// How a contact property's value is checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ContactType {
    Str,
    /// A string collection holding at most this many values.
    Strings(usize),
    DateTimeOffset,
    Address,
    /// emailAddress collection, at most this many.
    Emails(usize),
}

/// The most e-mail addresses a contact holds. Graph answers a 4th with 400
/// "The multi value property EmailAddresses has 4 entries, that exceeds the
/// max allowed value of 3" (microsoft-graph-docs-contrib #560).
pub const MAX_CONTACT_EMAILS: usize = 3;

/// Writable properties of `contact` (learn.microsoft.com/graph/api/resources/contact).
const CONTACT_PROPS: &[(&str, ContactType)] = {
    use ContactType::*;
    &[
        ("assistantName", Str),
        ("birthday", DateTimeOffset),
        ("businessAddress", Address),
        ("businessHomePage", Str),
        // Outlook has Business and Business 2 (the same issue documents 2 as the limit).
        ("businessPhones", Strings(2)),
        ("categories", Strings(usize::MAX)),
        ("children", Strings(usize::MAX)),
        ("companyName", Str),
        ("department", Str),
        ("displayName", Str),
        ("emailAddresses", Emails(MAX_CONTACT_EMAILS)),
        ("fileAs", Str),
        ("generation", Str),
        ("givenName", Str),
        ("homeAddress", Address),
        // Outlook has Home and Home 2, and IM address 1 to 3: the same limits
        // are assumed (not documented; the strict choice).
        ("homePhones", Strings(2)),
        ("imAddresses", Strings(3)),
        ("initials", Str),
        ("jobTitle", Str),
        ("manager", Str),
        ("middleName", Str),
        ("mobilePhone", Str),
        ("nickName", Str),
        ("officeLocation", Str),
        ("otherAddress", Address),
        ("personalNotes", Str),
        ("profession", Str),
        ("spouseName", Str),
        ("surname", Str),
        ("title", Str),
        ("yomiCompanyName", Str),
        ("yomiGivenName", Str),
        ("yomiSurname", Str),
    ]
};

/// Read-only contact properties a client may echo back; ignored, as Graph does.
const CONTACT_READ_ONLY: &[&str] = &[
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "parentFolderId",
    "@odata.etag",
    "@odata.type",
    "@odata.context",
];

const CONTACT_SELECTABLE: &[&str] = &[
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "parentFolderId",
    "assistantName",
    "birthday",
    "businessAddress",
    "businessHomePage",
    "businessPhones",
    "categories",
    "children",
    "companyName",
    "department",
    "displayName",
    "emailAddresses",
    "fileAs",
    "generation",
    "givenName",
    "homeAddress",
    "homePhones",
    "imAddresses",
    "initials",
    "jobTitle",
    "manager",
    "middleName",
    "mobilePhone",
    "nickName",
    "officeLocation",
    "otherAddress",
    "personalNotes",
    "profession",
    "spouseName",
    "surname",
    "title",
    "yomiCompanyName",
    "yomiGivenName",
    "yomiSurname",
];

fn too_many(req: &Req, prop: &str, n: usize, max: usize) -> Resp {
    let mut name = prop.to_string();
    name[..1].make_ascii_uppercase();
    graph_error(
        req,
        400,
        "ErrorInvalidArgument",
        &format!("The multi value property {name} has {n} entries, that exceeds the max allowed value of {max}"),
    )
}

/// Checks one contact property value; `Ok` with the value to store.
fn check_contact_value(req: &Req, prop: &str, ty: ContactType, v: &Value) -> Result<Value, Resp> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    match ty {
        ContactType::Str => v
            .as_str()
            .map(|_| v.clone())
            .ok_or_else(|| bad_value(req, prop, "Edm.String")),
        ContactType::Strings(max) => {
            let items = v
                .as_array()
                .filter(|a| a.iter().all(Value::is_string))
                .ok_or_else(|| bad_value(req, prop, "Collection(Edm.String)"))?;
            if items.len() > max {
                return Err(too_many(req, prop, items.len(), max));
            }
            Ok(v.clone())
        }
        ContactType::DateTimeOffset => v
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| json!(odata::fmt_time(&t.with_timezone(&Utc))))
            .ok_or_else(|| bad_value(req, prop, "Edm.DateTimeOffset")),
        ContactType::Address => {
            const TY: &str = "microsoft.graph.physicalAddress";
            let o = v.as_object().ok_or_else(|| bad_value(req, prop, TY))?;
            let mut out = Map::new();
            for (k, val) in o {
                match k.as_str() {
                    "street" | "city" | "state" | "countryOrRegion" | "postalCode" => {
                        if !(val.is_string() || val.is_null()) {
                            return Err(bad_value(req, k, "Edm.String"));
                        }
                        out.insert(k.clone(), val.clone());
                    }
                    "@odata.type" => {}
                    _ => return Err(unknown_property(req, k, TY)),
                }
            }
            Ok(Value::Object(out))
        }
        ContactType::Emails(max) => {
            const TY: &str = "microsoft.graph.emailAddress";
            let items = v
                .as_array()
                .ok_or_else(|| bad_value(req, prop, "Collection(microsoft.graph.emailAddress)"))?;
            if items.len() > max {
                return Err(too_many(req, prop, items.len(), max));
            }
            let mut out = Vec::new();
            for item in items {
                let o = item.as_object().ok_or_else(|| bad_value(req, prop, TY))?;
                let mut e = Map::new();
                for (k, val) in o {
                    match k.as_str() {
                        "address" | "name" => {
                            if !(val.is_string() || val.is_null()) {
                                return Err(bad_value(req, k, "Edm.String"));
                            }
                            e.insert(k.clone(), val.clone());
                        }
                        "@odata.type" => {}
                        _ => return Err(unknown_property(req, k, TY)),
                    }
                }
                out.push(Value::Object(e));
            }
            Ok(Value::Array(out))
        }
    }
}

/// A validated contact body: the properties given, and the extended
/// properties if the body carried them.
type ContactInput = (Map<String, Value>, Option<Vec<(String, String)>>);

/// Validates a contact create or PATCH body.
/// The contact a create or patch request carries: 413 past Graph's request
/// size, then the JSON object, then the contact rules.
fn read_contact_body(req: &Req) -> Result<ContactInput, Resp> {
    if req.body.len() > MAX_REQUEST_BYTES {
        return Err(request_too_large(req));
    }
    parse_contact_body(req, &json_object(req)?)
}

fn parse_contact_body(req: &Req, body: &Map<String, Value>) -> Result<ContactInput, Resp> {
    let mut fields = Map::new();
    let mut ext = None;
    for (k, v) in body {
        if let Some((_, ty)) = CONTACT_PROPS.iter().find(|(n, _)| n == k) {
            fields.insert(k.clone(), check_contact_value(req, k, *ty, v)?);
        } else if k == "singleValueExtendedProperties" {
            ext = Some(parse_ext_props(req, v)?);
        } else if k == "multiValueExtendedProperties" || k == "photo" || k == "extensions" {
            return Err(not_implemented(req, &format!("'{k}' on contacts")));
        } else if !CONTACT_READ_ONLY.contains(&k.as_str()) {
            return Err(unknown_property(req, k, "microsoft.graph.contact"));
        }
    }
    Ok((fields, ext))
}

/// The display name Outlook derives when none is given: given name, middle
/// name and surname (the emulator's reading of "displayName" being computed
/// when not set).
fn derived_display_name(fields: &Map<String, Value>) -> String {
    ["givenName", "middleName", "surname"]
        .iter()
        .filter_map(|k| fields.get(*k).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Contact {
    pub fn display_name(&self) -> String {
        match self.fields.get("displayName").and_then(Value::as_str) {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => derived_display_name(&self.fields),
        }
    }

    fn change_key(&self) -> String {
        use base64::Engine;
        let mut raw = self.id.as_bytes()[4..12].to_vec();
        raw.extend_from_slice(&self.change.to_be_bytes());
        base64::engine::general_purpose::STANDARD.encode(raw)
    }

    /// The contact resource, every property present (null or empty when unset).
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        let ck = self.change_key();
        o.insert("@odata.etag".into(), json!(format!("W/\"{ck}\"")));
        o.insert("id".into(), json!(self.id));
        o.insert("createdDateTime".into(), json!(odata::fmt_time(&self.created)));
        o.insert(
            "lastModifiedDateTime".into(),
            json!(odata::fmt_time(&self.last_modified)),
        );
        o.insert("changeKey".into(), json!(ck));
        o.insert("parentFolderId".into(), json!(self.folder_id));
        for (name, ty) in CONTACT_PROPS {
            let v = self.fields.get(*name).cloned().unwrap_or(Value::Null);
            let v = match (ty, v) {
                (ContactType::Strings(_) | ContactType::Emails(_), Value::Null) => json!([]),
                (ContactType::Address, Value::Null) => json!({}),
                (_, v) => v,
            };
            o.insert((*name).into(), v);
        }
        o.insert("displayName".into(), json!(self.display_name()));
        Value::Object(o)
    }
}

/// Finds a contact, optionally requiring it to be in a folder.
fn locate_contact(mb: &Mailbox, req: &Req, folder: Option<&str>, id: &str) -> Result<(), Resp> {
    if let Some(f) = folder {
        resolve_folder(mb, req, f)?;
    }
    check_id(mb, req, id, KIND_CONTACT, &mb.pim.contacts)?;
    if folder.is_some_and(|f| mb.pim.contacts[id].folder_id != f) {
        return Err(item_not_found(req));
    }
    Ok(())
}

fn list_contacts(app: &App, req: &Req, ctx: &Ctx, folder: Option<&str>) -> Resp {
    let ty = "microsoft.graph.contact";
    read_with_query(app, req, ctx, CONTACT_SELECTABLE, ty, Some("displayName"), |mb, q| {
        let folder = folder_or_root(mb, req, folder)?;
        let list = mb.pim.contacts.values();
        let list = list.filter(|c| c.folder_id == folder && matches(&q.filter, &c.display_name(), &c.ext_props));
        let items = by_seq(list, |c| c.seq, |c| shape(c.to_json(), &q, &c.ext_props));
        Ok(page(app, req, &context(app, ctx, "contacts"), items, &q))
    })
}

fn get_contact(app: &App, req: &Req, ctx: &Ctx, folder: Option<&str>, id: &str) -> Resp {
    read_with_query(
        app,
        req,
        ctx,
        CONTACT_SELECTABLE,
        "microsoft.graph.contact",
        None,
        |mb, q| {
            locate_contact(mb, req, folder, id)?;
            let c = &mb.pim.contacts[id];
            entity(app, ctx, shape(c.to_json(), &q, &c.ext_props), "contacts/$entity")
        },
    )
}

/// `POST …/contacts`: 201 with the contact.
fn create_contact(app: &App, req: &Req, ctx: &Ctx, folder: Option<&str>) -> Resp {
    let (fields, ext) = match read_contact_body(req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    // Graph has refused a contact without a given name ("The property
    // 'GivenName' is required when creating the entity", msgraph-sdk-dotnet
    // #247); the docs are silent, so the emulator keeps the strict rule.
    if fields
        .get("givenName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return graph_error(
            req,
            400,
            "ErrorInvalidProperty",
            "The property 'GivenName' is required when creating the entity.",
        );
    }
    create_in_folder(app, req, ctx, folder, |mb, rng, folder| {
        let id = mb.new_id(KIND_CONTACT, rng);
        let now = Utc::now();
        let seq = mb.pim.seq();
        let c = Contact {
            id: id.clone(),
            folder_id: folder,
            seq,
            created: now,
            last_modified: now,
            change: 1,
            fields,
            ext_props: ext.unwrap_or_default(),
            photo: None,
        };
        let mut v = c.to_json();
        v["@odata.context"] = json!(context(app, ctx, "contacts/$entity"));
        mb.pim.contacts.insert(id, c);
        Resp::json(201, &v)
    })
}

/// A change to one contact: `f` with the mailbox under the store lock, once
/// the contact is found (in `folder` when one is named).
fn change_contact(
    app: &App,
    req: &Req,
    ctx: &Ctx,
    folder: Option<&str>,
    id: &str,
    f: impl FnOnce(&mut Mailbox) -> Resp,
) -> Resp {
    let mut store = app.store.lock().unwrap();
    let Some(mb) = store.checked_mut(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    match locate_contact(mb, req, folder, id) {
        Ok(()) => f(mb),
        Err(r) => r,
    }
}

/// `PATCH …/contacts/{id}`: the properties given replace the stored ones
/// (collections as a whole); extended properties are merged by id.
fn patch_contact(app: &App, req: &Req, ctx: &Ctx, folder: Option<&str>, id: &str) -> Resp {
    let (fields, ext) = match read_contact_body(req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    change_contact(app, req, ctx, folder, id, |mb| {
        let c = mb.pim.contacts.get_mut(id).expect("located");
        for (k, v) in fields {
            c.fields.insert(k, v);
        }
        for (k, v) in ext.unwrap_or_default() {
            c.ext_props.retain(|(e, _)| *e != k);
            c.ext_props.push((k, v));
        }
        c.change += 1;
        c.last_modified = Utc::now();
        let mut v = c.to_json();
        v["@odata.context"] = json!(context(app, ctx, "contacts/$entity"));
        Resp::json(200, &v)
    })
}

fn delete_contact(app: &App, req: &Req, ctx: &Ctx, folder: Option<&str>, id: &str) -> Resp {
    change_contact(app, req, ctx, folder, id, |mb| {
        mb.pim.contacts.remove(id);
        Resp::new(204)
    })
}

/// Largest contact photo: the 4 MB request limit (profilephoto-update: "the
/// size of the photo you can update … is limited to 4 MB").
pub const MAX_PHOTO_BYTES: usize = 4 * 1024 * 1024;

/// `PUT …/contacts/{id}/photo/$value`: binary image data with an image
/// Content-Type (`image/jpeg` or `image/png`; others 415, as the docs list
/// `image/jpeg` as the required type), at most 4 MB (413); 200.
fn put_photo(app: &App, req: &Req, ctx: &Ctx, folder: Option<&str>, id: &str) -> Resp {
    if req.body.len() > MAX_PHOTO_BYTES {
        return request_too_large(req);
    }
    let ct = req.content_type().unwrap_or_default();
    if ct != "image/jpeg" && ct != "image/png" {
        return graph_error(
            req,
            415,
            "UnsupportedMediaType",
            "A photo must be sent as binary data with Content-Type image/jpeg or image/png.",
        );
    }
    if req.body.is_empty() {
        return graph_error(req, 400, "ErrorInvalidRequest", "The photo is empty.");
    }
    change_contact(app, req, ctx, folder, id, |mb| {
        let c = mb.pim.contacts.get_mut(id).expect("located");
        c.photo = Some((ct, req.body.clone()));
        c.change += 1;
        c.last_modified = Utc::now();
        Resp::new(200)
    })
}

/// `GET …/photo/$value`: the bytes; 404 ErrorItemNotFound without a photo.
fn get_photo(app: &App, req: &Req, ctx: &Ctx, folder: Option<&str>, id: &str) -> Resp {
    let store = app.store.lock().unwrap();
    let Some(mb) = store.checked(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    if let Err(r) = locate_contact(mb, req, folder, id) {
        return r;
    }
    match &mb.pim.contacts[id].photo {
        Some((ct, bytes)) => Resp::new(200).header("content-type", ct).body(bytes.clone()),
        None => graph_error(req, 404, "ErrorItemNotFound", "The photo wasn't found."),
    }
}

/// Admin dump of contact folders and contacts, each contact with all its
/// extended properties and its photo's type and size.
pub fn dump_contacts(mb: &Mailbox) -> (Vec<Value>, Vec<Value>) {
    let mut folders: Vec<&ContactFolder> = mb.pim.contact_folders.values().collect();
    folders.sort_by_key(|f| f.seq);
    let mut contacts: Vec<&Contact> = mb.pim.contacts.values().collect();
    contacts.sort_by_key(|c| c.seq);
    (
        folders.iter().map(|f| folder_json(f)).collect(),
        contacts
            .iter()
            .map(|c| {
                let mut v = c.to_json();
                v["singleValueExtendedProperties"] = json!(
                    c.ext_props
                        .iter()
                        .map(|(k, v)| json!({"id": k, "value": v}))
                        .collect::<Vec<_>>()
                );
                v["photo"] = match &c.photo {
                    Some((ct, b)) => json!({"contentType": ct, "size": b.len()}),
                    None => Value::Null,
                };
                v
            })
            .collect(),
    )
}
