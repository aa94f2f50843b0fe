//! Calendars and events: create, read, update, delete, cancel, recurrence
//! instances, calendarView, attachments — and the meeting requests and
//! cancellations Exchange would send for them.
//!
//! A migration must never send a meeting request or a cancellation: each one
//! lands in a real person's inbox. So the emulator counts every message
//! Exchange would send (stats `invitations_sent` / `cancellations_sent`),
//! letting tests prove the product's silent path sends none. The silent path
//! is the one gscales' `new-SilentMeeting.ps1` uses: create the meeting with
//! `isDraft: true`, then PATCH the PSETID_Appointment named Boolean
//! properties `EventDraft` and `IntendedEventDraft` to `false`. See
//! `main.rs` for exactly what the emulator treats as a draft.
//!
//! Graph makes the mailbox owner the organizer of every event created in
//! the mailbox, whatever the request says (microsoft-graph-docs-contrib
//! #389); the emulator does the same.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use hyper::Method;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::App;
use crate::attachments::{
    MAX_INLINE_ATTACHMENT, UploadParent, open_upload_session, read_attachment, read_session_item,
};
use crate::folders::{folder_exists, malformed_id};
use crate::graph::Ctx;
use crate::http::{Req, Resp, bad_value, graph_error, json_object, unknown_property};
use crate::messages::{MAX_REQUEST_BYTES, item_not_found, parse_ext_props, request_too_large};
use crate::odata::{self, normalize_prop_id};
use crate::pim::{
    CalendarRef, KIND_CALENDAR, KIND_EVENT, PimQuery, PimTarget, by_seq, check_id, context, entity, matches, page,
    parse_query, read_with_query, shape, with_mailbox,
};
use crate::recurrence::{self, Invalid, Recurrence, ZonedTime, fmt_local, local_to_utc, resolve_zone};
use crate::store::{Attachment, AttachmentContent, KIND_ATTACHMENT, Lookup, Mailbox};

/// Id kind of an occurrence of a series (its id encodes master and date).
const KIND_OCCURRENCE: u8 = b'O';

/// Most attendees an event takes (calendar-post-events: 500).
pub const MAX_ATTENDEES: usize = 500;

/// PSETID_Appointment, the property set of `EventDraft` / `IntendedEventDraft`.
const PSETID_APPOINTMENT: &str = "{00062002-0000-0000-C000-000000000046}";

fn draft_prop(name: &str) -> String {
    normalize_prop_id(&format!("Boolean {PSETID_APPOINTMENT} Name {name}")).unwrap_or_default()
}

pub fn dispatch(app: &App, req: &Req, ctx: &Ctx, t: &PimTarget) -> Option<Resp> {
    let m = &req.method;
    Some(match t {
        PimTarget::Calendars if *m == Method::GET => list_calendars(app, req, ctx),
        PimTarget::Calendars if *m == Method::POST => create_calendar(app, req, ctx),
        PimTarget::Calendar(c) if *m == Method::GET => get_calendar(app, req, ctx, c),
        PimTarget::Events(c) if *m == Method::GET => list_events(app, req, ctx, c),
        PimTarget::Events(c) if *m == Method::POST => with_notices(app, |a| create_event(a, req, ctx, c)),
        PimTarget::Event(c, id) if *m == Method::GET => get_event(app, req, ctx, c, id),
        PimTarget::Event(c, id) if *m == Method::PATCH => with_notices(app, |a| patch_event(a, req, ctx, c, id)),
        PimTarget::Event(c, id) if *m == Method::DELETE => {
            with_notices(app, |a| delete_event(a, req, ctx, c, id, false))
        }
        PimTarget::EventCancel(c, id) if *m == Method::POST => {
            with_notices(app, |a| delete_event(a, req, ctx, c, id, true))
        }
        PimTarget::EventInstances(c, id) if *m == Method::GET => instances(app, req, ctx, c, id),
        PimTarget::EventAttachments(c, id) if *m == Method::POST => add_attachment(app, req, ctx, c, id),
        PimTarget::EventAttachments(c, id) if *m == Method::GET => list_attachments(app, req, ctx, c, id),
        PimTarget::EventAttachment(c, id, aid) if *m == Method::GET => get_attachment(app, req, ctx, c, id, aid),
        PimTarget::EventAttachment(c, id, aid) if *m == Method::DELETE => delete_attachment(app, req, ctx, c, id, aid),
        PimTarget::EventUploadSession(c, id) if *m == Method::POST => create_upload_session(app, req, ctx, c, id),
        PimTarget::CalendarView(c) if *m == Method::GET => calendar_view(app, req, ctx, c),
        _ => return None,
    })
}

/// Messages Exchange would send for one request.
#[derive(Debug, Default, Clone, Copy)]
pub struct Notices {
    pub invitations: u64,
    pub cancellations: u64,
}

/// Runs a handler that may send meeting messages, then counts them in the
/// stats (after the store lock is released: lock order is store, then stats).
fn with_notices(app: &App, f: impl FnOnce(&App) -> (Resp, Notices, String)) -> Resp {
    let (resp, n, address) = f(app);
    if n.invitations > 0 || n.cancellations > 0 {
        app.stats
            .lock()
            .unwrap()
            .record_notices(&address, n.invitations, n.cancellations);
    }
    resp
}

// ---------------------------------------------------------------------------
// Store types

#[derive(Debug, Clone)]
pub struct Calendar {
    pub id: String,
    pub name: String,
    pub color: String,
    pub is_default: bool,
    pub seq: u64,
}

/// Calendar colours (learn.microsoft.com/graph/api/resources/calendar).
const COLORS: &[&str] = &[
    "auto",
    "lightBlue",
    "lightGreen",
    "lightOrange",
    "lightGray",
    "lightYellow",
    "lightTeal",
    "lightPink",
    "lightBrown",
    "lightRed",
    "maxColor",
];

impl Calendar {
    pub fn new(id: String, name: String, color: Option<String>, is_default: bool, seq: u64) -> Calendar {
        Calendar {
            id,
            name,
            color: color.unwrap_or_else(|| "auto".into()),
            is_default,
            seq,
        }
    }

    fn to_json(&self, owner: &str) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "color": self.color,
            "hexColor": "",
            "isDefaultCalendar": self.is_default,
            "changeKey": STANDARD.encode(&self.id.as_bytes()[4..12]),
            "canShare": true,
            "canViewPrivateItems": true,
            "canEdit": true,
            "isRemovable": !self.is_default,
            "isTallyingResponses": true,
            "allowedOnlineMeetingProviders": ["teamsForBusiness"],
            "defaultOnlineMeetingProvider": "teamsForBusiness",
            "owner": {"name": owner, "address": owner},
        })
    }
}

/// A change to one occurrence of a series.
#[derive(Debug, Clone, Default)]
pub struct Exception {
    pub cancelled: bool,
    pub fields: Map<String, Value>,
    pub start: Option<ZonedTime>,
    pub end: Option<ZonedTime>,
    pub attendees: Option<Vec<Value>>,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub calendar_id: String,
    pub seq: u64,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub change: u64,
    pub transaction_id: Option<String>,
    /// Validated simple properties (subject, body, location, …).
    pub fields: Map<String, Value>,
    pub start: ZonedTime,
    pub end: ZonedTime,
    pub is_all_day: bool,
    pub recurrence: Option<Recurrence>,
    /// Normalised attendee objects.
    pub attendees: Vec<Value>,
    pub is_draft: bool,
    pub ext_props: Vec<(String, String)>,
    /// Changed or cancelled occurrences, by original date (in the start zone).
    pub exceptions: BTreeMap<NaiveDate, Exception>,
    pub attachments: Vec<Attachment>,
    pub ical_uid: String,
}

impl Event {
    fn is_meeting(&self) -> bool {
        !self.attendees.is_empty()
    }

    fn ext(&self, id: &str) -> Option<&str> {
        self.ext_props.iter().find(|(k, _)| k == id).map(|(_, v)| v.as_str())
    }

    fn change_key(&self) -> String {
        let mut raw = self.id.as_bytes()[4..12].to_vec();
        raw.extend_from_slice(&self.change.to_be_bytes());
        STANDARD.encode(raw)
    }
}

// ---------------------------------------------------------------------------
// Errors

fn validation(req: &Req, msg: &str) -> Resp {
    graph_error(req, 400, "ErrorPropertyValidationFailure", msg)
}

fn invalid(req: &Req, e: Invalid) -> Resp {
    match e {
        Invalid::BadValue(p, ty) => bad_value(req, &p, ty),
        Invalid::Unknown(p, ty) => unknown_property(req, &p, ty),
        Invalid::Zone(z) => graph_error(
            req,
            400,
            "TimeZoneNotSupportedException",
            &format!("A valid TimeZone value must be specified. The following TimeZone value is not supported: '{z}'."),
        ),
        Invalid::Rule(msg) => validation(req, &msg),
    }
}

// ---------------------------------------------------------------------------
// Calendars

const CALENDAR_PROPS: &[&str] = &[
    "id",
    "name",
    "color",
    "hexColor",
    "isDefaultCalendar",
    "changeKey",
    "canShare",
    "canViewPrivateItems",
    "canEdit",
    "isRemovable",
    "isTallyingResponses",
    "allowedOnlineMeetingProviders",
    "defaultOnlineMeetingProvider",
    "owner",
];

fn resolve_calendar(mb: &Mailbox, req: &Req, c: &CalendarRef) -> Result<Option<String>, Resp> {
    match c {
        CalendarRef::Any => Ok(None),
        CalendarRef::Default => Ok(Some(mb.pim.default_calendar.clone())),
        CalendarRef::Id(id) => {
            check_id(mb, req, id, KIND_CALENDAR, &mb.pim.calendars)?;
            Ok(Some(id.clone()))
        }
    }
}

const CALENDAR_TYPE: &str = "microsoft.graph.calendar";

fn list_calendars(app: &App, req: &Req, ctx: &Ctx) -> Resp {
    read_with_query(app, req, ctx, CALENDAR_PROPS, CALENDAR_TYPE, Some("name"), |mb, q| {
        let cals = mb.pim.calendars.values().filter(|c| matches(&q.filter, &c.name, &[]));
        let items = by_seq(cals, |c: &Calendar| c.seq, |c| shape(c.to_json(&mb.address), &q, &[]));
        Ok(page(app, req, &context(app, ctx, "calendars"), items, &q))
    })
}

fn get_calendar(app: &App, req: &Req, ctx: &Ctx, c: &CalendarRef) -> Resp {
    read_with_query(app, req, ctx, CALENDAR_PROPS, CALENDAR_TYPE, None, |mb, q| {
        let id = resolve_calendar(mb, req, c)?.unwrap_or_else(|| mb.pim.default_calendar.clone());
        let v = shape(mb.pim.calendars[&id].to_json(&mb.address), &q, &[]);
        entity(app, ctx, v, "calendars/$entity")
    })
}

/// `POST /calendars`: `name` required (user-post-calendars) and unique in
/// the mailbox (409 ErrorFolderExists, a calendar being a folder); `color`
/// one of the calendarColor values.
fn create_calendar(app: &App, req: &Req, ctx: &Ctx) -> Resp {
    let body = match json_object(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut name = None;
    let mut color = None;
    for (k, v) in &body {
        match k.as_str() {
            "name" => name = Some(v.as_str().ok_or_else(|| bad_value(req, k, "Edm.String"))),
            "color" => {
                let c = v
                    .as_str()
                    .and_then(|s| COLORS.iter().find(|c| c.eq_ignore_ascii_case(s)))
                    .ok_or_else(|| bad_value(req, k, "microsoft.graph.calendarColor"));
                match c {
                    Ok(c) => color = Some(c.to_string()),
                    Err(r) => return r,
                }
            }
            "@odata.type" => {}
            _ => return unknown_property(req, k, "microsoft.graph.calendar"),
        }
    }
    let name = match name
        .transpose()
        .and_then(|n| crate::folders::required_name(req, n.map(|n| n.to_string()), "name"))
    {
        Ok(n) => n,
        Err(r) => return r,
    };
    let mut store = app.store.lock().unwrap();
    let mut rng = app.rng.lock().unwrap();
    let Some(mb) = store.checked_mut(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    let lower = name.to_lowercase();
    if mb.pim.calendars.values().any(|c| c.name.to_lowercase() == lower) {
        return folder_exists(req);
    }
    let id = mb.new_id(KIND_CALENDAR, &mut rng);
    let seq = mb.pim.seq();
    let cal = Calendar::new(id.clone(), name, color, false, seq);
    let mut v = cal.to_json(&mb.address);
    v["@odata.context"] = json!(context(app, ctx, "calendars/$entity"));
    mb.pim.calendars.insert(id, cal);
    Resp::json(201, &v)
}

// ---------------------------------------------------------------------------
// Event bodies

/// What a create or PATCH body says; `None` for what it leaves alone.
#[derive(Default)]
struct EventInput {
    fields: Map<String, Value>,
    start: Option<ZonedTime>,
    end: Option<ZonedTime>,
    is_all_day: Option<bool>,
    recurrence: Option<Option<Recurrence>>,
    attendees: Option<Vec<Value>>,
    is_draft: Option<bool>,
    transaction_id: Option<String>,
    ext: Option<Vec<(String, String)>>,
}

/// Event properties a client may send that are read-only or derived; Graph
/// ignores them. `organizer` is here too: the owner is always the organizer.
const EVENT_IGNORED: &[&str] = &[
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "iCalUId",
    "isOrganizer",
    "isCancelled",
    "seriesMasterId",
    "type",
    "webLink",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "originalStart",
    "responseStatus",
    "bodyPreview",
    "hasAttachments",
    "onlineMeeting",
    "onlineMeetingUrl",
    "@odata.type",
    "@odata.etag",
    "@odata.context",
];

fn enum_value(req: &Req, prop: &str, v: &Value, allowed: &[&str], ty: &str) -> Result<Value, Resp> {
    v.as_str()
        .and_then(|s| allowed.iter().find(|a| a.eq_ignore_ascii_case(s)))
        .map(|a| json!(a))
        .ok_or_else(|| bad_value(req, prop, ty))
}

fn check_email(req: &Req, prop: &str, v: &Value, need_address: bool) -> Result<Value, Resp> {
    const TY: &str = "microsoft.graph.emailAddress";
    let o = v.as_object().ok_or_else(|| bad_value(req, prop, TY))?;
    let mut out = Map::new();
    for (k, val) in o {
        match k.as_str() {
            "address" | "name" => {
                if !(val.is_string() || val.is_null()) {
                    return Err(bad_value(req, k, "Edm.String"));
                }
                out.insert(k.clone(), val.clone());
            }
            "@odata.type" => {}
            _ => return Err(unknown_property(req, k, TY)),
        }
    }
    if need_address && !out.get("address").is_some_and(Value::is_string) {
        return Err(validation(req, "An attendee's emailAddress.address is required."));
    }
    Ok(Value::Object(out))
}

fn check_location(req: &Req, prop: &str, v: &Value) -> Result<Value, Resp> {
    const TY: &str = "microsoft.graph.location";
    let o = v.as_object().ok_or_else(|| bad_value(req, prop, TY))?;
    for (k, val) in o {
        match k.as_str() {
            "displayName" | "locationEmailAddress" | "locationUri" | "uniqueId" | "uniqueIdType" | "locationType" => {
                if !(val.is_string() || val.is_null()) {
                    return Err(bad_value(req, k, "Edm.String"));
                }
            }
            "address" | "coordinates" => {
                if !(val.is_object() || val.is_null()) {
                    return Err(bad_value(req, k, "microsoft.graph.physicalAddress"));
                }
            }
            "@odata.type" => {}
            _ => return Err(unknown_property(req, k, TY)),
        }
    }
    Ok(v.clone())
}

fn check_attendee(req: &Req, v: &Value) -> Result<Value, Resp> {
    const TY: &str = "microsoft.graph.attendee";
    let o = v.as_object().ok_or_else(|| bad_value(req, "attendees", TY))?;
    let mut email = None;
    let mut kind = json!("required");
    for (k, val) in o {
        match k.as_str() {
            "emailAddress" => email = Some(check_email(req, k, val, true)?),
            "type" => {
                kind = enum_value(
                    req,
                    k,
                    val,
                    &["required", "optional", "resource"],
                    "microsoft.graph.attendeeType",
                )?
            }
            // A response is the attendee's to give; what the organizer's
            // client sends is ignored, as Graph does.
            "status" | "proposedNewTime" | "@odata.type" => {}
            _ => return Err(unknown_property(req, k, TY)),
        }
    }
    let email = email.ok_or_else(|| validation(req, "An attendee needs an emailAddress."))?;
    Ok(json!({
        "type": kind,
        "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
        "emailAddress": email,
    }))
}

/// The event a create or patch request carries: 413 past Graph's request
/// size, then the JSON object, then the event rules.
fn read_event_body(req: &Req) -> Result<EventInput, Resp> {
    if req.body.len() > MAX_REQUEST_BYTES {
        return Err(request_too_large(req));
    }
    parse_event_body(req, &json_object(req)?)
}

/// Event properties that take one member of a Graph enumeration: the
/// property, its members, the enumeration's type.
const EVENT_ENUMS: &[(&str, &[&str], &str)] = &[
    ("importance", &["low", "normal", "high"], "microsoft.graph.importance"),
    (
        "sensitivity",
        &["normal", "personal", "private", "confidential"],
        "microsoft.graph.sensitivity",
    ),
    (
        "showAs",
        &["free", "tentative", "busy", "oof", "workingElsewhere", "unknown"],
        "microsoft.graph.freeBusyStatus",
    ),
    (
        "onlineMeetingProvider",
        &["unknown", "teamsForBusiness", "skypeForBusiness", "skypeForConsumer"],
        "microsoft.graph.onlineMeetingProviderType",
    ),
];

fn parse_event_body(req: &Req, body: &Map<String, Value>) -> Result<EventInput, Resp> {
    let mut input = EventInput::default();
    let bool_of = |k: &str, v: &Value| {
        v.as_bool()
            .map(Value::Bool)
            .ok_or_else(|| bad_value(req, k, "Edm.Boolean"))
    };
    for (k, v) in body {
        let key = k.as_str();
        if let Some(&(_, allowed, ty)) = EVENT_ENUMS.iter().find(|(p, ..)| *p == key) {
            let e = enum_value(req, key, v, allowed, ty)?;
            input.fields.insert(k.clone(), e);
            continue;
        }
        match key {
            "subject" => {
                if !(v.is_string() || v.is_null()) {
                    return Err(bad_value(req, k, "Edm.String"));
                }
                input.fields.insert(k.clone(), v.clone());
            }
            "body" => {
                const TY: &str = "microsoft.graph.itemBody";
                let o = v.as_object().ok_or_else(|| bad_value(req, k, TY))?;
                let mut content_type = "text";
                let mut content = String::new();
                for (bk, bv) in o {
                    match bk.as_str() {
                        "contentType" => {
                            content_type = match bv.as_str().map(str::to_ascii_lowercase).as_deref() {
                                Some("text") => "text",
                                Some("html") => "html",
                                _ => return Err(bad_value(req, bk, "microsoft.graph.bodyType")),
                            }
                        }
                        "content" => content = bv.as_str().ok_or_else(|| bad_value(req, bk, "Edm.String"))?.into(),
                        "@odata.type" => {}
                        _ => return Err(unknown_property(req, bk, TY)),
                    }
                }
                input
                    .fields
                    .insert(k.clone(), json!({"contentType": content_type, "content": content}));
            }
            "start" | "end" => {
                let t = recurrence::parse_zoned(key, v).map_err(|e| invalid(req, e))?;
                if key == "start" {
                    input.start = Some(t);
                } else {
                    input.end = Some(t);
                }
            }
            "isAllDay" => input.is_all_day = Some(v.as_bool().ok_or_else(|| bad_value(req, k, "Edm.Boolean"))?),
            "isDraft" => input.is_draft = Some(v.as_bool().ok_or_else(|| bad_value(req, k, "Edm.Boolean"))?),
            "isReminderOn" | "responseRequested" | "allowNewTimeProposals" | "hideAttendees" | "isOnlineMeeting" => {
                input.fields.insert(k.clone(), bool_of(key, v)?);
            }
            "reminderMinutesBeforeStart" => {
                let n = v.as_i64().ok_or_else(|| bad_value(req, k, "Edm.Int32"))?;
                input.fields.insert(k.clone(), json!(n));
            }
            "categories" => {
                if !v.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
                    return Err(bad_value(req, k, "Collection(Edm.String)"));
                }
                input.fields.insert(k.clone(), v.clone());
            }
            "location" => {
                input.fields.insert(k.clone(), check_location(req, key, v)?);
            }
            "locations" => {
                let items = v
                    .as_array()
                    .ok_or_else(|| bad_value(req, k, "Collection(microsoft.graph.location)"))?;
                let out: Result<Vec<Value>, Resp> = items.iter().map(|l| check_location(req, key, l)).collect();
                input.fields.insert(k.clone(), Value::Array(out?));
            }
            "attendees" => {
                let items = match v {
                    Value::Null => Vec::new(),
                    Value::Array(a) => a.clone(),
                    _ => return Err(bad_value(req, k, "Collection(microsoft.graph.attendee)")),
                };
                if items.len() > MAX_ATTENDEES {
                    return Err(validation(
                        req,
                        &format!(
                            "An event can have at most {MAX_ATTENDEES} attendees; this one has {}.",
                            items.len()
                        ),
                    ));
                }
                let out: Result<Vec<Value>, Resp> = items.iter().map(|a| check_attendee(req, a)).collect();
                input.attendees = Some(out?);
            }
            "recurrence" => input.recurrence = Some(recurrence::parse(v).map_err(|e| invalid(req, e))?),
            "transactionId" => {
                input.transaction_id = Some(v.as_str().ok_or_else(|| bad_value(req, k, "Edm.String"))?.to_string());
            }
            "organizer" => {
                // Checked for shape, then ignored: the owner is the organizer.
                let o = v
                    .as_object()
                    .ok_or_else(|| bad_value(req, k, "microsoft.graph.recipient"))?;
                if let Some(e) = o.get("emailAddress") {
                    check_email(req, "emailAddress", e, false)?;
                }
            }
            "singleValueExtendedProperties" => input.ext = Some(parse_ext_props(req, v)?),
            "multiValueExtendedProperties" | "extensions" | "attachments" | "instances" | "calendar" => {
                return Err(crate::http::not_implemented(req, &format!("'{k}' in an event body")));
            }
            _ if EVENT_IGNORED.contains(&key) => {}
            _ => return Err(unknown_property(req, k, "microsoft.graph.event")),
        }
    }
    Ok(input)
}

/// The documented rules on an event's times, checked on the merged state:
/// end not before start; an all-day event starts and ends at midnight and
/// lasts whole days; a series' range starts on the event's start date
/// (recurrencerange: startDate "must be the same value as the start property
/// of the recurring event").
fn check_times(
    req: &Req,
    start: &ZonedTime,
    end: &ZonedTime,
    all_day: bool,
    rec: Option<&Recurrence>,
) -> Result<(), Resp> {
    if end.utc() < start.utc() {
        return Err(validation(
            req,
            "The end time of an event can't be before its start time.",
        ));
    }
    if all_day {
        let midnight = NaiveTime::MIN;
        if start.local.time() != midnight || end.local.time() != midnight || end.local.date() <= start.local.date() {
            return Err(validation(
                req,
                "An all-day event must start and end at midnight and last at least one whole day.",
            ));
        }
    }
    if let Some(r) = rec
        && r.range.start != start.local.date()
    {
        return Err(validation(
            req,
            &format!(
                "recurrence.range.startDate {} must be the date of the event's start ({}).",
                r.range.start,
                start.local.date()
            ),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Rendering

/// The zone responses use: `Prefer: outlook.timezone="…"` when it names a
/// zone Exchange knows, else UTC (Graph's default).
fn response_zone(req: &Req) -> (String, Tz) {
    for v in req.headers.get_all("prefer") {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let part = part.trim();
            if let Some(rest) = part.strip_prefix("outlook.timezone=") {
                let name = rest.trim_matches('"');
                if let Some(tz) = resolve_zone(name) {
                    return (name.to_string(), tz);
                }
            }
        }
    }
    ("UTC".into(), Tz::UTC)
}

fn render_time(t: &ZonedTime, all_day: bool, zone: &(String, Tz)) -> Value {
    // All-day events read midnight to midnight whatever the zone asked for
    // (by design, per the Graph team in microsoft-graph-docs #1802).
    let local = if all_day {
        t.local
    } else {
        t.utc().with_timezone(&zone.1).naive_local()
    };
    json!({"dateTime": fmt_local(&local), "timeZone": zone.0})
}

fn organizer_json(address: &str) -> Value {
    let name = address.split('@').next().unwrap_or(address);
    json!({"emailAddress": {"name": name, "address": address}})
}

const EVENT_PROPS: &[&str] = &[
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "transactionId",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "iCalUId",
    "reminderMinutesBeforeStart",
    "isReminderOn",
    "hasAttachments",
    "subject",
    "bodyPreview",
    "importance",
    "sensitivity",
    "isAllDay",
    "isCancelled",
    "isOrganizer",
    "responseRequested",
    "seriesMasterId",
    "showAs",
    "type",
    "webLink",
    "onlineMeetingUrl",
    "isOnlineMeeting",
    "onlineMeetingProvider",
    "allowNewTimeProposals",
    "isDraft",
    "hideAttendees",
    "responseStatus",
    "body",
    "start",
    "end",
    "location",
    "locations",
    "recurrence",
    "attendees",
    "organizer",
    "originalStart",
];

fn event_json(owner: &str, ev: &Event, zone: &(String, Tz)) -> Value {
    let f = |k: &str, default: Value| ev.fields.get(k).cloned().unwrap_or(default);
    let body = f("body", json!({"contentType": "text", "content": ""}));
    let preview: String = body["content"].as_str().unwrap_or("").chars().take(255).collect();
    let ck = ev.change_key();
    let mut o = json!({
        "@odata.etag": format!("W/\"{ck}\""),
        "id": ev.id,
        "createdDateTime": odata::fmt_time(&ev.created),
        "lastModifiedDateTime": odata::fmt_time(&ev.last_modified),
        "changeKey": ck,
        "categories": f("categories", json!([])),
        "originalStartTimeZone": ev.start.zone,
        "originalEndTimeZone": ev.end.zone,
        "iCalUId": ev.ical_uid,
        "reminderMinutesBeforeStart": f("reminderMinutesBeforeStart", json!(15)),
        "isReminderOn": f("isReminderOn", json!(true)),
        "hasAttachments": !ev.attachments.is_empty(),
        "subject": f("subject", json!("")),
        "bodyPreview": preview,
        "importance": f("importance", json!("normal")),
        "sensitivity": f("sensitivity", json!("normal")),
        "isAllDay": ev.is_all_day,
        "isCancelled": false,
        "isOrganizer": true,
        "responseRequested": f("responseRequested", json!(true)),
        "seriesMasterId": null,
        "showAs": f("showAs", json!("busy")),
        "type": if ev.recurrence.is_some() { "seriesMaster" } else { "singleInstance" },
        "webLink": format!("https://outlook.office365.com/owa/?itemid={}&exvsurl=1&path=/calendar/item", ev.id),
        "onlineMeetingUrl": null,
        "isOnlineMeeting": f("isOnlineMeeting", json!(false)),
        "onlineMeetingProvider": f("onlineMeetingProvider", json!("unknown")),
        "allowNewTimeProposals": f("allowNewTimeProposals", json!(true)),
        "isDraft": ev.is_draft,
        "hideAttendees": f("hideAttendees", json!(false)),
        "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
        "body": body,
        "start": render_time(&ev.start, ev.is_all_day, zone),
        "end": render_time(&ev.end, ev.is_all_day, zone),
        "location": f("location", json!({"displayName": "", "locationType": "default"})),
        "locations": f("locations", json!([])),
        "recurrence": ev.recurrence.as_ref().map(Recurrence::to_json),
        "attendees": ev.attendees,
        "organizer": organizer_json(owner),
    });
    if let Some(t) = &ev.transaction_id {
        // "only returned in a response payload if an app has set it"
        o["transactionId"] = json!(t);
    }
    o
}

// ---------------------------------------------------------------------------
// Occurrences

/// The id of the occurrence of `master` originally on `date`: kind, mailbox,
/// the master's serial, the date, and bytes derived from the master id, so
/// the same occurrence always has the same id.
fn occurrence_id(master: &str, date: NaiveDate) -> String {
    let raw = URL_SAFE_NO_PAD.decode(&master[4..]).unwrap_or_default();
    let mut b = [0u8; 24];
    b[0] = KIND_OCCURRENCE;
    b[1..13].copy_from_slice(&raw[1..13]);
    let days = date.signed_duration_since(NaiveDate::MIN).num_days() as u32;
    b[13..17].copy_from_slice(&days.to_be_bytes());
    let digest = Sha256::digest(master.as_bytes());
    b[17..].copy_from_slice(&digest[..7]);
    format!("AAMk{}", URL_SAFE_NO_PAD.encode(b))
}

/// (master serial bytes, date) of an occurrence id.
fn parse_occurrence_id(id: &str) -> Option<([u8; 8], NaiveDate)> {
    let raw = URL_SAFE_NO_PAD.decode(id.strip_prefix("AAMk")?).ok()?;
    if raw.len() != 24 || raw[0] != KIND_OCCURRENCE {
        return None;
    }
    let serial: [u8; 8] = raw[5..13].try_into().ok()?;
    let days = u32::from_be_bytes(raw[13..17].try_into().ok()?);
    let date = NaiveDate::MIN.checked_add_signed(chrono::Duration::days(days as i64))?;
    Some((serial, date))
}

fn serial_of(id: &str) -> Option<[u8; 8]> {
    let raw = URL_SAFE_NO_PAD.decode(id.strip_prefix("AAMk")?).ok()?;
    raw.get(5..13)?.try_into().ok()
}

/// One occurrence of a series (or the single instance of an event).
pub struct Instance<'a> {
    pub date: NaiveDate,
    pub start: ZonedTime,
    pub end: ZonedTime,
    pub exception: Option<&'a Exception>,
}

impl Event {
    /// The occurrence originally on `date`, as scheduled before any change.
    fn scheduled(&self, date: NaiveDate) -> (ZonedTime, ZonedTime) {
        let tz = self.start.tz();
        let start_local = NaiveDateTime::new(date, self.start.local.time());
        // The duration as wall-clock time in the start zone, so a one-hour
        // meeting stays one hour and an all-day event stays whole days.
        let end_in_start_zone = self.end.utc().with_timezone(&tz).naive_local();
        let length = end_in_start_zone - self.start.local;
        let end_local = start_local + length;
        let end_utc = local_to_utc(tz, end_local);
        (
            ZonedTime {
                local: start_local,
                zone: self.start.zone.clone(),
            },
            ZonedTime {
                local: end_utc.with_timezone(&self.end.tz()).naive_local(),
                zone: self.end.zone.clone(),
            },
        )
    }

    /// Outlook's rule for exceptions (event-update): an occurrence can't be
    /// moved to or before the day of the previous occurrence, nor to or
    /// after the day of the next one. Days are compared in the series' start
    /// zone, against the neighbours' scheduled dates.
    fn crosses_neighbours(&self, date: NaiveDate, new_start: &ZonedTime) -> bool {
        let Some(rec) = &self.recurrence else {
            return false;
        };
        let horizon = date + chrono::Duration::days(366 * i64::from(rec.pattern.interval) + 31);
        let dates = rec.dates(horizon);
        let day = new_start.utc().with_timezone(&self.start.tz()).date_naive();
        let prev = dates.iter().rev().find(|d| **d < date);
        let next = dates.iter().find(|d| **d > date);
        prev.is_some_and(|p| day <= *p) || next.is_some_and(|n| day >= *n)
    }

    fn is_occurrence_date(&self, date: NaiveDate) -> bool {
        self.recurrence
            .as_ref()
            .is_some_and(|r| r.dates(date).last() == Some(&date))
    }

    /// The occurrences overlapping `[from, to)` (cancelled ones left out).
    pub fn instances(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Instance<'_>> {
        let overlaps = |s: &ZonedTime, e: &ZonedTime| {
            let (s, e) = (s.utc(), e.utc());
            s < to && (e > from || (s == e && s >= from))
        };
        let Some(rec) = &self.recurrence else {
            return if overlaps(&self.start, &self.end) {
                vec![Instance {
                    date: self.start.local.date(),
                    start: self.start.clone(),
                    end: self.end.clone(),
                    exception: None,
                }]
            } else {
                Vec::new()
            };
        };
        // A changed occurrence may have moved into the window from a date
        // outside it: look a year past the window's end.
        let until = to.with_timezone(&self.start.tz()).date_naive() + chrono::Duration::days(366);
        let mut out = Vec::new();
        for date in rec.dates(until) {
            let exception = self.exceptions.get(&date);
            if exception.is_some_and(|x| x.cancelled) {
                continue;
            }
            let (mut s, mut e) = self.scheduled(date);
            if let Some(x) = exception {
                if let Some(xs) = &x.start {
                    s = xs.clone();
                }
                if let Some(xe) = &x.end {
                    e = xe.clone();
                }
            }
            if overlaps(&s, &e) {
                out.push(Instance {
                    date,
                    start: s,
                    end: e,
                    exception,
                });
            }
        }
        out.sort_by_key(|i| i.start.utc());
        out
    }
}

fn instance_json(owner: &str, ev: &Event, inst: &Instance, zone: &(String, Tz)) -> Value {
    let mut v = event_json(owner, ev, zone);
    if ev.recurrence.is_none() {
        return v;
    }
    let (original_start, _) = ev.scheduled(inst.date);
    v["id"] = json!(occurrence_id(&ev.id, inst.date));
    v["seriesMasterId"] = json!(ev.id);
    v["type"] = json!(if inst.exception.is_some() {
        "exception"
    } else {
        "occurrence"
    });
    v["recurrence"] = Value::Null;
    v["originalStart"] = json!(odata::fmt_time(&original_start.utc()));
    v["start"] = render_time(&inst.start, ev.is_all_day, zone);
    v["end"] = render_time(&inst.end, ev.is_all_day, zone);
    if let Some(x) = inst.exception {
        for (k, val) in &x.fields {
            v[k.as_str()] = val.clone();
        }
        if let Some(a) = &x.attendees {
            v["attendees"] = json!(a);
        }
    }
    v
}

/// What an event id names.
enum Located {
    Master(String),
    Occurrence(String, NaiveDate),
}

/// Finds an event or occurrence id, optionally within a calendar.
/// A change to one event: `f` with the mailbox under the store lock, the
/// event located and its series master's id. The answers carry the
/// mailbox's address (empty when the mailbox is gone).
fn change_event(
    app: &App,
    req: &Req,
    ctx: &Ctx,
    c: &CalendarRef,
    id: &str,
    f: impl FnOnce(&mut Mailbox, Located, String) -> (Resp, Notices, String),
) -> (Resp, Notices, String) {
    let mut store = app.store.lock().unwrap();
    let Some(mb) = store.checked_mut(ctx.mailbox, &ctx.mailbox_id) else {
        return (crate::graph::mailbox_gone(req), Notices::default(), String::new());
    };
    let address = mb.address.clone();
    let located = match locate(mb, req, c, id) {
        Ok(l) => l,
        Err(r) => return (r, Notices::default(), address),
    };
    let master_id = match &located {
        Located::Master(m) | Located::Occurrence(m, _) => m.clone(),
    };
    f(mb, located, master_id)
}

fn locate(mb: &Mailbox, req: &Req, cal: &CalendarRef, id: &str) -> Result<Located, Resp> {
    let cal = resolve_calendar(mb, req, cal)?;
    let in_calendar = |ev: &Event| cal.as_ref().is_none_or(|c| *c == ev.calendar_id);
    if let Some((serial, date)) = parse_occurrence_id(id) {
        mb.resolve_object(id, KIND_OCCURRENCE)
            .map_err(|_| item_not_found(req))?;
        let master = mb
            .pim
            .events
            .values()
            .find(|e| serial_of(&e.id) == Some(serial))
            .ok_or_else(|| item_not_found(req))?;
        if !in_calendar(master)
            || !master.is_occurrence_date(date)
            || master.exceptions.get(&date).is_some_and(|x| x.cancelled)
        {
            return Err(item_not_found(req));
        }
        return Ok(Located::Occurrence(master.id.clone(), date));
    }
    mb.resolve_object(id, KIND_EVENT).map_err(|e| match e {
        Lookup::Malformed => malformed_id(req),
        Lookup::NotFound => item_not_found(req),
    })?;
    match mb.pim.events.get(id) {
        Some(ev) if in_calendar(ev) => Ok(Located::Master(id.to_string())),
        _ => Err(item_not_found(req)),
    }
}

// ---------------------------------------------------------------------------
// Event handlers

fn list_events(app: &App, req: &Req, ctx: &Ctx, c: &CalendarRef) -> Resp {
    let zone = response_zone(req);
    read_with_query(
        app,
        req,
        ctx,
        EVENT_PROPS,
        "microsoft.graph.event",
        Some("subject"),
        |mb, q| {
            let cal = resolve_calendar(mb, req, c)?.unwrap_or_else(|| mb.pim.default_calendar.clone());
            let list = mb.pim.events.values().filter(|e| {
                e.calendar_id == cal
                    && matches(
                        &q.filter,
                        e.fields.get("subject").and_then(Value::as_str).unwrap_or(""),
                        &e.ext_props,
                    )
            });
            let items = by_seq(
                list,
                |e: &Event| e.seq,
                |e| shape(event_json(&mb.address, e, &zone), &q, &e.ext_props),
            );
            Ok(page(app, req, &context(app, ctx, "events"), items, &q))
        },
    )
}

fn get_event(app: &App, req: &Req, ctx: &Ctx, c: &CalendarRef, id: &str) -> Resp {
    let zone = response_zone(req);
    read_with_query(app, req, ctx, EVENT_PROPS, "microsoft.graph.event", None, |mb, q| {
        let v = match locate(mb, req, c, id)? {
            Located::Master(id) => {
                let ev = &mb.pim.events[&id];
                shape(event_json(&mb.address, ev, &zone), &q, &ev.ext_props)
            }
            Located::Occurrence(master, date) => {
                let ev = &mb.pim.events[&master];
                let (start, end) = ev.scheduled(date);
                let exception = ev.exceptions.get(&date);
                let inst = Instance {
                    date,
                    start: exception.and_then(|x| x.start.clone()).unwrap_or(start),
                    end: exception.and_then(|x| x.end.clone()).unwrap_or(end),
                    exception,
                };
                shape(instance_json(&mb.address, ev, &inst, &zone), &q, &ev.ext_props)
            }
        };
        entity(app, ctx, v, "events/$entity")
    })
}

/// `POST …/events`: 201 with the event. A `transactionId` already used in
/// this mailbox returns the event it created (201, the same body) and
/// creates and sends nothing.
fn create_event(app: &App, req: &Req, ctx: &Ctx, c: &CalendarRef) -> (Resp, Notices, String) {
    let none = Notices::default();
    let input = match read_event_body(req) {
        Ok(i) => i,
        Err(r) => return (r, none, String::new()),
    };
    let zone = response_zone(req);
    let mut store = app.store.lock().unwrap();
    let mut rng = app.rng.lock().unwrap();
    let Some(mb) = store.checked_mut(ctx.mailbox, &ctx.mailbox_id) else {
        return (crate::graph::mailbox_gone(req), none, String::new());
    };
    let address = mb.address.clone();
    let cal = match resolve_calendar(mb, req, c) {
        Ok(c) => c.unwrap_or_else(|| mb.pim.default_calendar.clone()),
        Err(r) => return (r, none, address),
    };
    let respond = |mb: &Mailbox, ev: &Event| {
        let mut v = event_json(&mb.address, ev, &zone);
        v["@odata.context"] = json!(context(app, ctx, "events/$entity"));
        Resp::json(201, &v)
    };
    if let Some(t) = &input.transaction_id
        && let Some(existing) = mb.pim.transactions.get(t).and_then(|id| mb.pim.events.get(id))
    {
        return (respond(mb, existing), none, address);
    }
    let (Some(start), Some(end)) = (input.start, input.end) else {
        return (validation(req, "An event needs both start and end."), none, address);
    };
    let is_all_day = input.is_all_day.unwrap_or(false);
    let recurrence = input.recurrence.flatten();
    if let Err(r) = check_times(req, &start, &end, is_all_day, recurrence.as_ref()) {
        return (r, none, address);
    }
    let is_draft = input.is_draft.unwrap_or(false);
    let mut ext_props = input.ext.unwrap_or_default();
    if is_draft {
        // A draft carries both draft markers set, whatever the request said;
        // only a later PATCH clears them (see main.rs).
        for name in ["EventDraft", "IntendedEventDraft"] {
            let id = draft_prop(name);
            ext_props.retain(|(k, _)| *k != id);
            ext_props.push((id, "true".into()));
        }
    }
    let id = mb.new_id(KIND_EVENT, &mut rng);
    let now = Utc::now();
    let seq = mb.pim.seq();
    let ev = Event {
        ical_uid: format!(
            "040000008200E00074C5B7101A82E008{}",
            hex(&Sha256::digest(id.as_bytes())[..16])
        ),
        id: id.clone(),
        calendar_id: cal,
        seq,
        created: now,
        last_modified: now,
        change: 1,
        transaction_id: input.transaction_id.clone(),
        fields: input.fields,
        start,
        end,
        is_all_day,
        recurrence,
        attendees: input.attendees.unwrap_or_default(),
        is_draft,
        ext_props,
        exceptions: BTreeMap::new(),
        attachments: Vec::new(),
    };
    let notices = Notices {
        invitations: u64::from(!ev.is_draft && ev.is_meeting()),
        cancellations: 0,
    };
    let resp = respond(mb, &ev);
    if let Some(t) = input.transaction_id {
        mb.pim.transactions.insert(t, id.clone());
    }
    mb.pim.events.insert(id, ev);
    (resp, notices, address)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// Properties whose change makes Exchange send a meeting update.
const SENDS_UPDATE: &[&str] = &["location", "locations"];

/// `PATCH …/events/{id}` (series master, single event or one occurrence).
fn patch_event(app: &App, req: &Req, ctx: &Ctx, c: &CalendarRef, id: &str) -> (Resp, Notices, String) {
    let none = Notices::default();
    let input = match read_event_body(req) {
        Ok(i) => i,
        Err(r) => return (r, none, String::new()),
    };
    let zone = response_zone(req);
    change_event(app, req, ctx, c, id, |mb, located, master_id| {
        let address = mb.address.clone();
        let mut ev = mb.pim.events[&master_id].clone();
        if let Some(t) = &input.transaction_id
            && ev.transaction_id.as_deref() != Some(t.as_str())
        {
            return (
                graph_error(
                    req,
                    400,
                    "ErrorInvalidProperty",
                    "transactionId can't be changed after the event is created.",
                ),
                none,
                address,
            );
        }
        if input.is_draft.is_some_and(|d| d != ev.is_draft) {
            return (
                graph_error(
                    req,
                    400,
                    "ErrorInvalidProperty",
                    "isDraft can't be changed by PATCH; clear the EventDraft and IntendedEventDraft properties instead.",
                ),
                none,
                address,
            );
        }
        let was_draft = ev.is_draft;
        let changes_meeting = input.start.is_some()
            || input.end.is_some()
            || input.attendees.is_some()
            || input.is_all_day.is_some()
            || input.recurrence.is_some()
            || SENDS_UPDATE.iter().any(|k| input.fields.contains_key(*k));
        match located {
            Located::Occurrence(_, date) => {
                if input.recurrence.is_some() || input.is_all_day.is_some() || input.ext.is_some() {
                    return (
                        validation(
                            req,
                            "recurrence, isAllDay and extended properties can't be set on one occurrence.",
                        ),
                        none,
                        address,
                    );
                }
                let (sched_start, sched_end) = ev.scheduled(date);
                let x = ev.exceptions.entry(date).or_default();
                let start = input.start.or_else(|| x.start.clone()).unwrap_or(sched_start);
                let end = input.end.or_else(|| x.end.clone()).unwrap_or(sched_end);
                if let Err(r) = check_times(req, &start, &end, ev.is_all_day, None) {
                    return (r, none, address);
                }
                if ev.crosses_neighbours(date, &start) {
                    return (
                        graph_error(
                            req,
                            400,
                            "ErrorOccurrenceCrossingBoundary",
                            "Modified occurrence is crossing or overlapping adjacent occurrence.",
                        ),
                        none,
                        address,
                    );
                }
                let x = ev.exceptions.get_mut(&date).expect("just added");
                x.start = Some(start);
                x.end = Some(end);
                for (k, v) in input.fields {
                    x.fields.insert(k, v);
                }
                if let Some(a) = input.attendees {
                    x.attendees = Some(a);
                }
            }
            Located::Master(_) => {
                let start = input.start.unwrap_or_else(|| ev.start.clone());
                let end = input.end.unwrap_or_else(|| ev.end.clone());
                let all_day = input.is_all_day.unwrap_or(ev.is_all_day);
                let recurrence = match input.recurrence {
                    Some(r) => r,
                    None => ev.recurrence.clone(),
                };
                if let Err(r) = check_times(req, &start, &end, all_day, recurrence.as_ref()) {
                    return (r, none, address);
                }
                if recurrence != ev.recurrence {
                    // A new pattern replaces the series and its exceptions.
                    ev.exceptions.clear();
                }
                ev.start = start;
                ev.end = end;
                ev.is_all_day = all_day;
                ev.recurrence = recurrence;
                for (k, v) in input.fields {
                    ev.fields.insert(k, v);
                }
                if let Some(a) = input.attendees {
                    ev.attendees = a;
                }
                for (k, v) in input.ext.unwrap_or_default() {
                    ev.ext_props.retain(|(e, _)| *e != k);
                    ev.ext_props.push((k, v));
                }
            }
        }
        // The silent-meeting flow: once both draft markers are false the event
        // is an ordinary meeting, and that PATCH itself sends nothing.
        if was_draft {
            let cleared = ["EventDraft", "IntendedEventDraft"]
                .iter()
                .all(|n| ev.ext(&draft_prop(n)).is_some_and(|v| v.eq_ignore_ascii_case("false")));
            if cleared {
                ev.is_draft = false;
            }
        }
        let notices = Notices {
            invitations: u64::from(!was_draft && ev.is_meeting() && changes_meeting),
            cancellations: 0,
        };
        ev.change += 1;
        ev.last_modified = Utc::now();
        let mut v = match located_view(&ev, id) {
            Some(date) => {
                let x = ev.exceptions.get(&date);
                let inst = Instance {
                    date,
                    start: x.and_then(|x| x.start.clone()).unwrap_or_else(|| ev.scheduled(date).0),
                    end: x.and_then(|x| x.end.clone()).unwrap_or_else(|| ev.scheduled(date).1),
                    exception: x,
                };
                instance_json(&address, &ev, &inst, &zone)
            }
            None => event_json(&address, &ev, &zone),
        };
        v["@odata.context"] = json!(context(app, ctx, "events/$entity"));
        mb.pim.events.insert(master_id, ev);
        (Resp::json(200, &v), notices, address)
    })
}

/// The occurrence date an id names, if it names an occurrence of `ev`.
fn located_view(ev: &Event, id: &str) -> Option<NaiveDate> {
    if id == ev.id {
        return None;
    }
    parse_occurrence_id(id).map(|(_, d)| d)
}

/// `DELETE …/events/{id}` (204) or `POST …/events/{id}/cancel` (202). The
/// organizer deleting or cancelling a meeting (or one occurrence of it)
/// sends a cancellation, unless it is a draft. Cancel is for meetings only
/// (event-cancel: "available only to the organizer of a meeting"); on an
/// event without attendees it is 400 ErrorInvalidRequest.
fn delete_event(app: &App, req: &Req, ctx: &Ctx, c: &CalendarRef, id: &str, cancel: bool) -> (Resp, Notices, String) {
    let none = Notices::default();
    if cancel && !req.body.is_empty() {
        let body = match json_object(req) {
            Ok(b) => b,
            Err(r) => return (r, none, String::new()),
        };
        for (k, v) in &body {
            if k != "comment" {
                return (unknown_property(req, k, "cancel"), none, String::new());
            }
            if !v.is_string() {
                return (bad_value(req, k, "Edm.String"), none, String::new());
            }
        }
    }
    change_event(app, req, ctx, c, id, |mb, located, master_id| {
        let address = mb.address.clone();
        let ev = &mb.pim.events[&master_id];
        let attendees_of_target = match &located {
            Located::Occurrence(_, d) => ev
                .exceptions
                .get(d)
                .and_then(|x| x.attendees.as_ref())
                .map_or(ev.is_meeting(), |a| !a.is_empty()),
            Located::Master(_) => ev.is_meeting(),
        };
        if cancel && !attendees_of_target {
            return (
                graph_error(
                    req,
                    400,
                    "ErrorInvalidRequest",
                    "Your request can't be completed. Only a meeting with attendees can be cancelled.",
                ),
                none,
                address,
            );
        }
        let notices = Notices {
            invitations: 0,
            cancellations: u64::from(!ev.is_draft && attendees_of_target),
        };
        match located {
            Located::Master(id) => {
                mb.pim.events.remove(&id);
            }
            Located::Occurrence(m, date) => {
                let ev = mb.pim.events.get_mut(&m).expect("located");
                ev.exceptions.entry(date).or_default().cancelled = true;
                ev.change += 1;
                ev.last_modified = Utc::now();
            }
        }
        (Resp::new(if cancel { 202 } else { 204 }), notices, address)
    })
}

/// `startDateTime` / `endDateTime` of instances and calendarView: required
/// (400 ErrorInvalidParameter otherwise), ISO 8601 with or without an offset
/// (without one: UTC).
fn window(req: &Req) -> Result<Window, Resp> {
    let param = |name: &str| {
        req.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let missing = || {
        graph_error(
            req,
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        )
    };
    let parse = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| recurrence::parse_local(s).map(|t| t.and_utc()))
    };
    let (Some(s), Some(e)) = (param("startDateTime"), param("endDateTime")) else {
        return Err(missing());
    };
    let (Some(s), Some(e)) = (parse(s), parse(e)) else {
        return Err(graph_error(
            req,
            400,
            "ErrorInvalidParameter",
            "startDateTime and endDateTime must be ISO 8601 date-times.",
        ));
    };
    if e < s {
        return Err(graph_error(
            req,
            400,
            "ErrorInvalidParameter",
            "endDateTime must not be before startDateTime.",
        ));
    }
    Ok((s, e))
}

/// `GET …/events/{id}/instances`: the occurrences and exceptions of a series
/// in the window; a single-instance event has none (an empty list).
fn instances(app: &App, req: &Req, ctx: &Ctx, c: &CalendarRef, id: &str) -> Resp {
    let zone = response_zone(req);
    with_mailbox(app, req, ctx, window_query(req), |mb, (q, (from, to))| {
        let master = match locate(mb, req, c, id)? {
            Located::Master(m) => m,
            Located::Occurrence(..) => return Err(crate::http::method_not_allowed(req)),
        };
        let ev = &mb.pim.events[&master];
        let items = if ev.recurrence.is_none() {
            Vec::new()
        } else {
            ev.instances(from, to)
                .iter()
                .map(|i| shape(instance_json(&mb.address, ev, i, &zone), &q, &ev.ext_props))
                .collect()
        };
        let context = context(app, ctx, &format!("events('{master}')/instances"));
        Ok(page(app, req, &context, items, &q))
    })
}

/// `startDateTime` to `endDateTime` of a windowed events GET.
type Window = (DateTime<Utc>, DateTime<Utc>);

/// The query options of a windowed events GET, then its window.
fn window_query(req: &Req) -> Result<(PimQuery, Window), Resp> {
    let q = parse_query(req, EVENT_PROPS, "microsoft.graph.event", None)?;
    Ok((q, window(req)?))
}

/// `GET …/calendarView`: single events and occurrences in the window, by start.
fn calendar_view(app: &App, req: &Req, ctx: &Ctx, c: &CalendarRef) -> Resp {
    let zone = response_zone(req);
    with_mailbox(app, req, ctx, window_query(req), |mb, (q, (from, to))| {
        let cal = resolve_calendar(mb, req, c)?.unwrap_or_else(|| mb.pim.default_calendar.clone());
        let mut all: Vec<(DateTime<Utc>, u64, Value)> = Vec::new();
        for ev in mb.pim.events.values().filter(|e| e.calendar_id == cal) {
            for inst in ev.instances(from, to) {
                let v = shape(instance_json(&mb.address, ev, &inst, &zone), &q, &ev.ext_props);
                all.push((inst.start.utc(), ev.seq, v));
            }
        }
        all.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        let items = all.into_iter().map(|x| x.2).collect();
        Ok(page(app, req, &context(app, ctx, "calendarView"), items, &q))
    })
}

/// `POST …/events/{id}/attachments`: a fileAttachment of at most 3 MB (413
/// otherwise, as for messages); 201.
fn add_attachment(app: &App, req: &Req, ctx: &Ctx, c: &CalendarRef, id: &str) -> Resp {
    let too_big = || {
        graph_error(
            req,
            413,
            "ErrorRequestEntityTooLarge",
            "The attachment is larger than 3 MB. Attach larger files with attachments/createUploadSession.",
        )
    };
    let new = match read_attachment(req, too_big) {
        Ok(a) => a,
        Err(r) => return r,
    };
    match &new.content {
        AttachmentContent::File { bytes, .. } if bytes.len() as u64 > MAX_INLINE_ATTACHMENT => return too_big(),
        AttachmentContent::File { .. } => {}
        AttachmentContent::Item { .. } => {
            return crate::http::not_implemented(req, "item attachments on events");
        }
    }
    let mut store = app.store.lock().unwrap();
    let mut rng = app.rng.lock().unwrap();
    let Some(mb) = store.checked_mut(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    let master = match locate(mb, req, c, id) {
        Ok(Located::Master(m)) => m,
        Ok(Located::Occurrence(..)) => {
            return crate::http::not_implemented(req, "attachments on one occurrence");
        }
        Err(r) => return r,
    };
    let aid = mb.new_id(KIND_ATTACHMENT, &mut rng);
    let a = Attachment {
        id: aid,
        name: new.name,
        is_inline: new.is_inline,
        last_modified: Utc::now(),
        content: new.content,
        created_via: "post",
    };
    let mut out = odata::attachment_json(&a, None);
    out["@odata.context"] = json!(context(app, ctx, &format!("events('{master}')/attachments/$entity")));
    let ev = mb.pim.events.get_mut(&master).expect("located");
    ev.attachments.push(a);
    ev.change += 1;
    ev.last_modified = Utc::now();
    Resp::json(201, &out)
}

/// `POST …/events/{id}/attachments/createUploadSession`: files of 3 MB to
/// 150 MB, with the same rules, ranges and pre-authenticated upload URL
/// as for a message (`attachments`); the completed attachment is the
/// event's. As for a POST, on the event itself, not one occurrence.
fn create_upload_session(app: &App, req: &Req, ctx: &Ctx, c: &CalendarRef, id: &str) -> Resp {
    let item = match read_session_item(req) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let (mailbox_id, address, master) = {
        let store = app.store.lock().unwrap();
        let Some(mb) = store.checked(ctx.mailbox, &ctx.mailbox_id) else {
            return crate::graph::mailbox_gone(req);
        };
        match locate(mb, req, c, id) {
            Ok(Located::Master(m)) => (mb.id.clone(), mb.address.clone(), m),
            Ok(Located::Occurrence(..)) => {
                return crate::http::not_implemented(req, "attachments on one occurrence");
            }
            Err(r) => return r,
        }
    };
    open_upload_session(app, ctx, mailbox_id, address, UploadParent::Event(master), item)
}

/// The event's attachment `aid`, or the 404 Graph gives for an id it does
/// not hold.
fn event_attachment<'a>(mb: &'a Mailbox, req: &Req, master: &str, aid: &str) -> Result<&'a Attachment, Resp> {
    mb.resolve_object(aid, KIND_ATTACHMENT).map_err(|e| match e {
        Lookup::Malformed => malformed_id(req),
        Lookup::NotFound => item_not_found(req),
    })?;
    mb.pim.events[master]
        .attachments
        .iter()
        .find(|a| a.id == aid)
        .ok_or_else(|| item_not_found(req))
}

fn get_attachment(app: &App, req: &Req, ctx: &Ctx, c: &CalendarRef, id: &str, aid: &str) -> Resp {
    let q = match odata::parse(req, odata::Entity::Attachment) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let store = app.store.lock().unwrap();
    let Some(mb) = store.checked(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    let master = match locate(mb, req, c, id) {
        Ok(Located::Master(m) | Located::Occurrence(m, _)) => m,
        Err(r) => return r,
    };
    match event_attachment(mb, req, &master, aid) {
        Ok(a) => {
            let mut out = odata::attachment_json(a, Some(&q));
            out["@odata.context"] = json!(context(app, ctx, &format!("events('{master}')/attachments/$entity")));
            Resp::json(200, &out)
        }
        Err(r) => r,
    }
}

/// `DELETE …/events/{id}/attachments/{aid}`: 204.
fn delete_attachment(app: &App, req: &Req, ctx: &Ctx, c: &CalendarRef, id: &str, aid: &str) -> Resp {
    let mut store = app.store.lock().unwrap();
    let Some(mb) = store.checked_mut(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    let master = match locate(mb, req, c, id) {
        Ok(Located::Master(m)) => m,
        Ok(Located::Occurrence(..)) => {
            return crate::http::not_implemented(req, "attachments on one occurrence");
        }
        Err(r) => return r,
    };
    if let Err(r) = event_attachment(mb, req, &master, aid) {
        return r;
    }
    let ev = mb.pim.events.get_mut(&master).expect("located");
    ev.attachments.retain(|a| a.id != aid);
    ev.change += 1;
    ev.last_modified = Utc::now();
    Resp::new(204)
}

fn list_attachments(app: &App, req: &Req, ctx: &Ctx, c: &CalendarRef, id: &str) -> Resp {
    // `$select` as for a message's attachments: a listing for names and
    // sizes need not carry every file's bytes.
    let selected = match odata::parse(req, odata::Entity::Attachment) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let store = app.store.lock().unwrap();
    let Some(mb) = store.checked(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    let master = match locate(mb, req, c, id) {
        Ok(Located::Master(m) | Located::Occurrence(m, _)) => m,
        Err(r) => return r,
    };
    let items: Vec<Value> = mb.pim.events[&master]
        .attachments
        .iter()
        .map(|a| odata::attachment_json(a, Some(&selected)))
        .collect();
    let q = PimQuery::default();
    page(
        app,
        req,
        &context(app, ctx, &format!("events('{master}')/attachments")),
        items,
        &q,
    )
}

/// Admin dump of calendars and events: every event in UTC with its
/// extended properties, draft state, attachments and — when a window is
/// given — its instances in the window.
pub fn dump_calendars(mb: &Mailbox, window: Option<(DateTime<Utc>, DateTime<Utc>)>) -> (Vec<Value>, Vec<Value>) {
    let utc = ("UTC".to_string(), Tz::UTC);
    let mut cals: Vec<&Calendar> = mb.pim.calendars.values().collect();
    cals.sort_by_key(|c| c.seq);
    let mut events: Vec<&Event> = mb.pim.events.values().collect();
    events.sort_by_key(|e| e.seq);
    let events = events
        .iter()
        .map(|ev| {
            let mut v = event_json(&mb.address, ev, &utc);
            v["calendarId"] = json!(ev.calendar_id);
            v["singleValueExtendedProperties"] = json!(
                ev.ext_props
                    .iter()
                    .map(|(k, v)| json!({"id": k, "value": v}))
                    .collect::<Vec<_>>()
            );
            v["attachments"] = json!(
                ev.attachments
                    .iter()
                    .map(|a| json!({"name": a.name, "size": a.size()}))
                    .collect::<Vec<_>>()
            );
            if let Some((from, to)) = window {
                v["instances"] = json!(
                    ev.instances(from, to)
                        .iter()
                        .map(|i| instance_json(&mb.address, ev, i, &utc))
                        .collect::<Vec<_>>()
                );
            }
            v
        })
        .collect();
    (cals.iter().map(|c| c.to_json(&mb.address)).collect(), events)
}
