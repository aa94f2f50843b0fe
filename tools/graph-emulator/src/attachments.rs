//! Attachments and large-attachment upload sessions.
//!
//! Two ways in, chosen by size (learn.microsoft.com/graph/outlook-large-attachments):
//! under 3 MB a single `POST …/attachments`; from 3 MB to 150 MB
//! `createUploadSession`, then sequential `PUT`s of at most 4 MB to the
//! pre-authenticated `uploadUrl` — which must be called without an
//! `Authorization` header. The final PUT answers `201` with a `Location`
//! header and an empty body; the others `200` with `nextExpectedRanges`.
//! Messages and events take upload sessions alike (attachment:
//! createUploadSession); the session remembers which one it fills
//! ([`UploadParent`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use chrono::Utc;
use hyper::Method;
use serde_json::{Value, json};

use crate::config::NonDraftAttachments;
use crate::faults::Fault;
use crate::graph::{Chain, Ctx};
use crate::http::{Req, Resp, bad_value, graph_error, json_object, stamp, unknown_property};
use crate::messages::{MAX_REQUEST_BYTES, item_not_found, locate, message_too_large};
use crate::mime::NewAttachment;
use crate::odata::{self, Entity};
use crate::stats::Event;
use crate::store::{Attachment, AttachmentContent, KIND_ATTACHMENT, Lookup, Mailbox, Message};
use crate::throttle::Key;
use crate::{App, Outcome};

/// Largest file a single `POST …/attachments` takes (3 MB, read as MiB).
pub const MAX_INLINE_ATTACHMENT: u64 = 3 * 1024 * 1024;
/// Smallest and largest upload-session attachment (3 MB – 150 MB).
pub const MIN_SESSION_ATTACHMENT: u64 = 3 * 1024 * 1024;
pub const MAX_SESSION_ATTACHMENT: u64 = 150 * 1024 * 1024;
/// Largest range one PUT may carry.
pub const MAX_CHUNK: usize = 4 * 1024 * 1024;
/// Lifetime of an upload URL (emulated seconds). Not documented; the doc's
/// example session outlives its attachment by more than 1.5 hours, so 2 h.
const SESSION_LIFETIME_SECS: f64 = 7200.0;

/// Parses an attachment object (`POST …/attachments` or inside a message create).
/// The attachment a POST carries: `too_big` past Graph's request size, then
/// the JSON object, then the attachment rules.
pub fn read_attachment(req: &Req, too_big: impl FnOnce() -> Resp) -> Result<NewAttachment, Resp> {
    if req.body.len() > MAX_REQUEST_BYTES {
        return Err(too_big());
    }
    parse_attachment(req, &Value::Object(json_object(req)?))
}

pub fn parse_attachment(req: &Req, v: &Value) -> Result<NewAttachment, Resp> {
    let o = v
        .as_object()
        .ok_or_else(|| bad_value(req, "attachments", "microsoft.graph.attachment"))?;
    let ty = o
        .get("@odata.type")
        .and_then(Value::as_str)
        .map(|t| t.trim_start_matches('#').to_string());
    let string = |k: &str| -> Result<Option<String>, Resp> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad_value(req, k, "Edm.String")),
        }
    };
    let is_inline = match o.get("isInline") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad_value(req, "isInline", "Edm.Boolean")),
    };
    let name = string("name")?.unwrap_or_default();
    match ty.as_deref() {
        Some("microsoft.graph.fileAttachment") => {
            for k in o.keys() {
                if ![
                    "@odata.type",
                    "@odata.mediaContentType",
                    "name",
                    "contentType",
                    "contentBytes",
                    "isInline",
                    "contentId",
                    "contentLocation",
                    "size",
                    "id",
                    "lastModifiedDateTime",
                ]
                .contains(&k.as_str())
                {
                    return Err(unknown_property(req, k, "microsoft.graph.fileAttachment"));
                }
            }
            let b64 = string("contentBytes")?.ok_or_else(|| {
                graph_error(
                    req,
                    400,
                    "ErrorInvalidParameter",
                    "The fileAttachment requires contentBytes.",
                )
            })?;
            let bytes = STANDARD
                .decode(b64.trim())
                .map_err(|_| bad_value(req, "contentBytes", "Edm.Binary"))?;
            Ok(NewAttachment {
                name,
                is_inline,
                content: AttachmentContent::File {
                    content_type: string("contentType")?.unwrap_or_else(|| "application/octet-stream".to_string()),
                    content_id: string("contentId")?,
                    bytes: Bytes::from(bytes),
                },
            })
        }
        Some("microsoft.graph.itemAttachment") => {
            for k in o.keys() {
                if ![
                    "@odata.type",
                    "name",
                    "item",
                    "isInline",
                    "contentType",
                    "size",
                    "id",
                    "lastModifiedDateTime",
                ]
                .contains(&k.as_str())
                {
                    return Err(unknown_property(req, k, "microsoft.graph.itemAttachment"));
                }
            }
            let item = o
                .get("item")
                .filter(|i| i.is_object())
                .cloned()
                .ok_or_else(|| bad_value(req, "item", "microsoft.graph.outlookItem"))?;
            Ok(NewAttachment {
                name,
                is_inline,
                content: AttachmentContent::Item { item, raw: None },
            })
        }
        Some("microsoft.graph.referenceAttachment") => Err(crate::http::not_implemented(req, "referenceAttachment")),
        _ => Err(graph_error(
            req,
            400,
            "ErrorInvalidParameter",
            "The attachment must specify @odata.type: #microsoft.graph.fileAttachment or #microsoft.graph.itemAttachment.",
        )),
    }
}

/// Gives a parsed attachment an id and adds it to a message.
pub fn store_attachment(
    mb: &mut Mailbox,
    m: &mut Message,
    a: NewAttachment,
    via: &'static str,
    rng: &mut fastrand::Rng,
) -> String {
    let id = mb.new_id(KIND_ATTACHMENT, rng);
    m.attachments.push(Attachment {
        id: id.clone(),
        name: a.name,
        is_inline: a.is_inline,
        last_modified: Utc::now(),
        content: a.content,
        created_via: via,
    });
    id
}

fn nondraft_refused(app: &App, req: &Req, m: &Message) -> Option<Resp> {
    (!m.is_draft && app.cfg.nondraft_attachments == NonDraftAttachments::Deny).then(|| {
        graph_error(
            req,
            403,
            "ErrorAccessDenied",
            "Access is denied. Attachments can't be added to a message that is not a draft.",
        )
    })
}

fn attachments_context(app: &App, ctx: &Ctx, msg: &str) -> String {
    format!(
        "{}/{}/$metadata#users('{}')/messages('{msg}')/attachments",
        app.base_url, ctx.version, ctx.user
    )
}

pub fn list(app: &App, req: &Req, ctx: &Ctx, chain: Option<&Chain>, id: &str) -> Resp {
    let q = match odata::parse(req, Entity::Attachment) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let store = app.store.lock().unwrap();
    let Some(mb) = store.checked(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    if let Err(r) = locate(mb, req, chain, id) {
        return r;
    }
    let m = &mb.messages[id];
    let (skip, top) = odata::window(&q, app.cfg.page_size);
    let items: Vec<Value> = m
        .attachments
        .iter()
        .skip(skip)
        .take(top)
        .map(|a| odata::attachment_json(a, Some(&q)))
        .collect();
    Resp::json(
        200,
        &odata::page(
            &app.base_url,
            req,
            &attachments_context(app, ctx, id),
            items,
            m.attachments.len(),
            &q,
            app.cfg.page_size,
        ),
    )
}

pub fn create(app: &App, req: &Req, ctx: &Ctx, chain: Option<&Chain>, id: &str) -> Resp {
    let too_big = || {
        graph_error(
            req,
            413,
            "ErrorRequestEntityTooLarge",
            "The attachment is larger than 3 MB. Attach files between 3 MB and 150 MB with attachments/createUploadSession.",
        )
    };
    // A 3 MB file is 4 MB of base64, so Graph's 4 MB request limit is the
    // 3 MB attachment limit; both answer with the upload-session hint.
    let new = match read_attachment(req, too_big) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let AttachmentContent::File { bytes, .. } = &new.content
        && bytes.len() as u64 > MAX_INLINE_ATTACHMENT
    {
        return too_big();
    }
    let mut store = app.store.lock().unwrap();
    let mut rng = app.rng.lock().unwrap();
    let Some(mb) = store.checked_mut(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    if let Err(r) = locate(mb, req, chain, id) {
        return r;
    }
    let mut m = mb.messages[id].clone();
    if let Some(r) = nondraft_refused(app, req, &m) {
        return r;
    }
    let aid = store_attachment(mb, &mut m, new, "post", &mut rng);
    if m.size() > mb.max_receive_size {
        return message_too_large(req, m.size(), mb.max_receive_size);
    }
    m.touch();
    let mut out = odata::attachment_json(m.attachments.last().expect("just added"), None);
    out["@odata.context"] = json!(format!("{}/$entity", attachments_context(app, ctx, id)));
    mb.messages.insert(id.to_string(), m);
    let _ = aid;
    Resp::json(201, &out)
}

fn find_attachment<'a>(mb: &'a Mailbox, req: &Req, id: &str, aid: &str) -> Result<&'a Attachment, Resp> {
    mb.resolve_object(aid, KIND_ATTACHMENT).map_err(|e| match e {
        Lookup::Malformed => crate::folders::malformed_id(req),
        Lookup::NotFound => item_not_found(req),
    })?;
    mb.messages[id]
        .attachments
        .iter()
        .find(|a| a.id == aid)
        .ok_or_else(|| item_not_found(req))
}

pub fn get(app: &App, req: &Req, ctx: &Ctx, chain: Option<&Chain>, id: &str, aid: &str, raw: bool) -> Resp {
    let q = match odata::parse(req, Entity::Attachment) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let store = app.store.lock().unwrap();
    let Some(mb) = store.checked(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    if let Err(r) = locate(mb, req, chain, id) {
        return r;
    }
    let a = match find_attachment(mb, req, id, aid) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if raw {
        return match &a.content {
            AttachmentContent::File {
                content_type, bytes, ..
            } => Resp::new(200).header("content-type", content_type).body(bytes.clone()),
            AttachmentContent::Item { raw, item } => Resp::new(200).header("content-type", "text/plain").body(
                raw.clone()
                    .unwrap_or_else(|| Bytes::from(serde_json::to_vec(item).unwrap_or_default())),
            ),
        };
    }
    let mut out = odata::attachment_json(a, Some(&q));
    out["@odata.context"] = json!(format!("{}/$entity", attachments_context(app, ctx, id)));
    Resp::json(200, &out)
}

pub fn delete(app: &App, req: &Req, ctx: &Ctx, chain: Option<&Chain>, id: &str, aid: &str) -> Resp {
    let mut store = app.store.lock().unwrap();
    let Some(mb) = store.checked_mut(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    if let Err(r) = locate(mb, req, chain, id) {
        return r;
    }
    if let Err(r) = find_attachment(mb, req, id, aid) {
        return r;
    }
    if let Some(m) = mb.messages.get_mut(id) {
        m.attachments.retain(|a| a.id != aid);
        m.touch();
    }
    Resp::new(204)
}

/// The item an upload session adds its attachment to: a message, or an
/// event (attachment: createUploadSession takes both,
/// `/messages/{id}/attachments/createUploadSession` and
/// `/events/{id}/attachments/createUploadSession`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadParent {
    Message(String),
    /// A series master or single event (never one occurrence).
    Event(String),
}

impl UploadParent {
    fn id(&self) -> &str {
        match self {
            UploadParent::Message(id) | UploadParent::Event(id) => id,
        }
    }

    /// The entity set the v2.0 URLs in the session's answers name.
    fn set(&self) -> &'static str {
        match self {
            UploadParent::Message(_) => "Messages",
            UploadParent::Event(_) => "Events",
        }
    }
}

/// An upload session in progress.
#[derive(Debug)]
pub struct UploadSession {
    pub app_id: String,
    pub mailbox: usize,
    pub mailbox_id: String,
    pub address: String,
    pub parent: UploadParent,
    pub name: String,
    pub content_type: String,
    pub is_inline: bool,
    pub content_id: Option<String>,
    pub size: u64,
    pub data: Vec<u8>,
    pub expires: Instant,
    pub expires_wall: chrono::DateTime<Utc>,
}

/// The validated `AttachmentItem` of a createUploadSession request.
pub struct SessionItem {
    name: String,
    size: u64,
    content_type: Option<String>,
    is_inline: bool,
    content_id: Option<String>,
}

/// Reads and checks a createUploadSession body: one `AttachmentItem` of
/// attachmentType `file`, with a name and a size of 3 MB to 150 MB. The
/// same rules for a message and an event.
pub fn read_session_item(req: &Req) -> Result<SessionItem, Resp> {
    let body = json_object(req)?;
    let mut item = None;
    for (k, v) in &body {
        // Action parameter names are matched case-insensitively by Graph.
        if k.eq_ignore_ascii_case("AttachmentItem") {
            item = v.as_object().cloned();
            if item.is_none() {
                return Err(bad_value(req, k, "microsoft.graph.attachmentItem"));
            }
        } else {
            return Err(graph_error(
                req,
                400,
                "RequestBodyRead",
                &format!(
                    "The parameter '{k}' in the request payload is not a valid parameter for the operation 'createUploadSession'."
                ),
            ));
        }
    }
    let Some(item) = item else {
        return Err(graph_error(
            req,
            400,
            "ErrorInvalidParameter",
            "The AttachmentItem parameter is required.",
        ));
    };
    let (mut name, mut size, mut content_type, mut is_inline, mut content_id, mut kind) =
        (None, None, None, false, None, None);
    for (k, v) in &item {
        match k.as_str() {
            "attachmentType" => kind = v.as_str().map(str::to_ascii_lowercase),
            "name" => name = v.as_str().map(str::to_string),
            "size" => size = v.as_u64(),
            "contentType" => content_type = v.as_str().map(str::to_string),
            "isInline" => match v.as_bool() {
                Some(b) => is_inline = b,
                None => return Err(bad_value(req, k, "Edm.Boolean")),
            },
            "contentId" => content_id = v.as_str().map(str::to_string),
            "@odata.type" => {}
            _ => return Err(unknown_property(req, k, "microsoft.graph.attachmentItem")),
        }
    }
    if kind.as_deref() != Some("file") {
        return Err(graph_error(
            req,
            400,
            "ErrorInvalidParameter",
            "Upload sessions support attachmentType 'file' only.",
        ));
    }
    let (Some(name), Some(size)) = (name, size) else {
        return Err(graph_error(
            req,
            400,
            "ErrorInvalidParameter",
            "AttachmentItem requires name and size.",
        ));
    };
    if size < MIN_SESSION_ATTACHMENT {
        return Err(graph_error(
            req,
            400,
            "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
            "The attachment size should not be less than 3 MB. Attach smaller files with a POST on the attachments collection.",
        ));
    }
    if size > MAX_SESSION_ATTACHMENT {
        return Err(graph_error(
            req,
            400,
            "ErrorAttachmentSizeShouldNotBeGreaterThanMaximumSize",
            "The attachment size should not be greater than 150 MB.",
        ));
    }
    Ok(SessionItem {
        name,
        size,
        content_type,
        is_inline,
        content_id,
    })
}

/// `POST /messages/{id}/attachments/createUploadSession`.
pub fn create_upload_session(app: &App, req: &Req, ctx: &Ctx, chain: Option<&Chain>, id: &str) -> Resp {
    let item = match read_session_item(req) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let (mailbox_id, address) = {
        let store = app.store.lock().unwrap();
        let Some(mb) = store.checked(ctx.mailbox, &ctx.mailbox_id) else {
            return crate::graph::mailbox_gone(req);
        };
        if let Err(r) = locate(mb, req, chain, id) {
            return r;
        }
        if let Some(r) = nondraft_refused(app, req, &mb.messages[id]) {
            return r;
        }
        (mb.id.clone(), mb.address.clone())
    };
    open_upload_session(
        app,
        ctx,
        mailbox_id,
        address,
        UploadParent::Message(id.to_string()),
        item,
    )
}

/// Opens a session for `item` on `parent` (found in the mailbox by the
/// caller) and answers with its pre-authenticated `uploadUrl`.
pub fn open_upload_session(
    app: &App,
    ctx: &Ctx,
    mailbox_id: String,
    address: String,
    parent: UploadParent,
    item: SessionItem,
) -> Resp {
    let token = {
        let mut raw = [0u8; 32];
        app.rng.lock().unwrap().fill(&mut raw);
        URL_SAFE_NO_PAD.encode(raw)
    };
    let lifetime = app.cfg.scaled(SESSION_LIFETIME_SECS);
    let expires_wall = Utc::now() + chrono::Duration::from_std(lifetime).unwrap_or_default();
    let session = UploadSession {
        app_id: ctx.app_id.clone(),
        mailbox: ctx.mailbox,
        mailbox_id,
        address,
        parent,
        name: item.name,
        content_type: item.content_type.unwrap_or_else(|| "application/octet-stream".into()),
        is_inline: item.is_inline,
        content_id: item.content_id,
        size: item.size,
        data: Vec::new(),
        expires: Instant::now() + lifetime,
        expires_wall,
    };
    app.uploads.lock().unwrap().insert(token.clone(), session);
    Resp::json(
        201,
        &json!({
            "@odata.context": format!("{}/{}/$metadata#microsoft.graph.uploadSession", app.base_url, ctx.version),
            "uploadUrl": format!("{}/_upload/{token}", app.base_url),
            "expirationDateTime": expires_wall.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "nextExpectedRanges": ["0-"],
        }),
    )
}

/// Parses `bytes a-b/N`.
fn content_range(v: &str) -> Option<(u64, u64, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((
        a.trim().parse().ok()?,
        b.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

/// `PUT` / `DELETE` on an upload URL (`/_upload/{token}`). Not a Graph path:
/// no bearer token; still throttled per (app, mailbox), as the uploads
/// count against the mailbox's limits.
///
/// A `PUT` is faulted like a Graph request (matched as
/// `PUT /_upload/{token}`), with what each fault means for a range:
/// `reset` drops the connection before the range is looked at; an error
/// status answers without taking it; `reset_after` takes the range (the
/// final one completes the attachment) and then drops the connection;
/// `slow` takes it and answers only after the delay, when the client may
/// have given up. After those two the client cannot know the range was
/// committed, and a repeat of it is refused as any out-of-order range is
/// (416; 404 once the final range has ended the session).
///
/// The work runs in a task of its own, so a range the client gave up on is
/// still taken and counted, as a real server would.
pub async fn handle_upload(app: Arc<App>, req: Req) -> Outcome {
    let work = tokio::spawn(async move {
        let mut ev = Event {
            method: req.method.to_string(),
            kind: if req.method == Method::DELETE {
                "upload.delete"
            } else {
                "upload.put"
            },
            ..Event::default()
        };
        let outcome = upload_inner(&app, &req, &mut ev).await;
        ev.status = match &outcome {
            Outcome::Resp(r) => Some(r.status_u16()),
            Outcome::Reset => None,
        };
        app.stats.lock().unwrap().record(&ev);
        match outcome {
            Outcome::Resp(r) => Outcome::Resp(stamp(&req, r)),
            Outcome::Reset => Outcome::Reset,
        }
    });
    work.await.unwrap_or(Outcome::Reset)
}

fn upload_error(req: &Req, status: u16, code: &str, message: &str) -> Resp {
    graph_error(req, status, code, message)
}

/// Holds an upload's throttling slot until dropped.
struct UploadSlot<'a> {
    app: &'a App,
    key: Key,
}

impl Drop for UploadSlot<'_> {
    fn drop(&mut self) {
        self.app.throttle.lock().unwrap().release(&self.key);
    }
}

async fn upload_inner(app: &Arc<App>, req: &Req, ev: &mut Event) -> Outcome {
    let token = req.segments.get(1).cloned().unwrap_or_default();
    let (key, address, expired) = {
        let uploads = app.uploads.lock().unwrap();
        match uploads.get(&token) {
            None => {
                return Outcome::Resp(upload_error(
                    req,
                    404,
                    "ErrorItemNotFound",
                    "The upload session was not found or has expired.",
                ));
            }
            Some(s) => (
                (s.app_id.clone(), s.mailbox_id.clone()),
                s.address.clone(),
                Instant::now() >= s.expires,
            ),
        }
    };
    ev.mailbox = Some(address.clone());
    if expired {
        app.uploads.lock().unwrap().remove(&token);
        return Outcome::Resp(upload_error(
            req,
            404,
            "ErrorItemNotFound",
            "The upload session was not found or has expired.",
        ));
    }
    if req.headers.contains_key("authorization") {
        // The URL is pre-authenticated; the docs say not to send Authorization
        // and that doing so can fail with 401.
        return Outcome::Resp(upload_error(
            req,
            401,
            "InvalidAuthenticationToken",
            "Do not specify an Authorization header for a pre-authenticated upload URL.",
        ));
    }
    if req.method == Method::DELETE {
        app.uploads.lock().unwrap().remove(&token);
        return Outcome::Resp(Resp::new(204));
    }
    if req.method != Method::PUT {
        return Outcome::Resp(crate::http::method_not_allowed(req));
    }
    let upload = req.body.len() as u64;
    let admitted = app.throttle.lock().unwrap().admit(&key, upload, req.arrived);
    match admitted {
        Err(t) => {
            if let Some(v) = &t.violation {
                app.stats
                    .lock()
                    .unwrap()
                    .record_violation(&address, &key.0, "PUT", &req.path, v);
            }
            ev.throttled = Some(t.reason.as_str());
            return Outcome::Resp(
                graph_error(req, 429, "ApplicationThrottled", t.reason.message())
                    .header("retry-after", &t.retry_after_secs.to_string()),
            );
        }
        Ok(c) => {
            ev.concurrent = c;
            ev.upload_bytes = upload;
        }
    }
    // Faults are drawn after admission, as for Graph requests: a faulted
    // range used a slot and counts.
    let _slot = UploadSlot { app, key: key.clone() };
    let fault = crate::graph::draw_fault(app, req, true).await;
    match fault {
        Fault::Reset => {
            ev.fault = Some("reset".into());
            return Outcome::Reset;
        }
        Fault::Status(status) => {
            ev.fault = Some(status.to_string());
            let resp = crate::graph::fault_response(app, req, status);
            if let Some(secs) = resp
                .headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
            {
                app.throttle.lock().unwrap().set_penalty(&key, secs, status);
            }
            return Outcome::Resp(resp);
        }
        Fault::None | Fault::ResetAfter | Fault::Slow(_) => {}
    }
    let resp = put_chunk(app, req, &token);
    match fault {
        Fault::ResetAfter => {
            // Taken (committed), but the client never hears the answer.
            ev.fault = Some(crate::graph::RESET_AFTER.into());
            Outcome::Reset
        }
        Fault::Slow(delay) => {
            // Taken now; the answer comes late.
            ev.fault = Some("slow".into());
            tokio::time::sleep(delay).await;
            Outcome::Resp(resp)
        }
        _ => Outcome::Resp(resp),
    }
}

fn put_chunk(app: &App, req: &Req, token: &str) -> Resp {
    if req.content_type().as_deref() != Some("application/octet-stream") {
        return upload_error(
            req,
            415,
            "UnsupportedMediaType",
            "Upload ranges must be sent with Content-Type application/octet-stream.",
        );
    }
    let Some((start, end, total)) = req.header("content-range").and_then(content_range) else {
        return upload_error(
            req,
            400,
            "InvalidRequest",
            "A Content-Range header of the form 'bytes {start}-{end}/{total}' is required.",
        );
    };
    if req.body.len() > MAX_CHUNK {
        return upload_error(
            req,
            413,
            "ErrorRequestEntityTooLarge",
            "A single upload range can't be larger than 4 MB.",
        );
    }
    let mut uploads = app.uploads.lock().unwrap();
    let Some(s) = uploads.get_mut(token) else {
        return upload_error(
            req,
            404,
            "ErrorItemNotFound",
            "The upload session was not found or has expired.",
        );
    };
    if total != s.size {
        return upload_error(
            req,
            400,
            "InvalidRequest",
            &format!(
                "The total size {total} in Content-Range doesn't match the session's size {}.",
                s.size
            ),
        );
    }
    let next = s.data.len() as u64;
    if end < start || end >= total {
        return upload_error(
            req,
            416,
            "InvalidRange",
            &format!("The range {start}-{end} is not valid for a file of {total} bytes."),
        );
    }
    if start != next {
        // Ranges must arrive in order: a gap or an overlap is refused.
        return upload_error(
            req,
            416,
            "InvalidRange",
            &format!("The range starts at {start} but the next expected byte is {next}."),
        );
    }
    if end - start + 1 != req.body.len() as u64 {
        return upload_error(
            req,
            400,
            "InvalidRequest",
            "The body length doesn't match the Content-Range.",
        );
    }
    // The item must still exist; a message's growing attachment must also
    // fit its MaxReceiveSize (an event's is bounded by the session's 150 MB).
    let too_large = {
        let store = app.store.lock().unwrap();
        let Some(mb) = store.checked(s.mailbox, &s.mailbox_id) else {
            uploads.remove(token);
            return crate::graph::mailbox_gone(req);
        };
        let size = match &s.parent {
            UploadParent::Message(id) => mb.messages.get(id).map(|m| Some((m.size(), mb.max_receive_size))),
            UploadParent::Event(id) => mb.pim.events.get(id).map(|_| None),
        };
        match size {
            Some(size) => size.filter(|(have, max)| have + end + 1 > *max),
            None => {
                uploads.remove(token);
                return item_not_found(req);
            }
        }
    };
    if let Some((have, max)) = too_large {
        uploads.remove(token);
        return message_too_large(req, have + end + 1, max);
    }
    s.data.extend_from_slice(&req.body);
    if (s.data.len() as u64) < s.size {
        return Resp::json(
            200,
            &json!({
                "@odata.context": format!("{}/api/v2.0/$metadata#Users('{}')/{}('{}')/AttachmentSessions/$entity", app.base_url, s.mailbox_id, s.parent.set(), s.parent.id()),
                "ExpirationDateTime": s.expires_wall.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "nextExpectedRanges": [s.data.len().to_string()],
            }),
        );
    }
    let s = uploads.remove(token).expect("session present");
    drop(uploads);
    let mut store = app.store.lock().unwrap();
    let mut rng = app.rng.lock().unwrap();
    let Some(mb) = store.checked_mut(s.mailbox, &s.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    let new = NewAttachment {
        name: s.name,
        is_inline: s.is_inline,
        content: AttachmentContent::File {
            content_type: s.content_type,
            content_id: s.content_id,
            bytes: Bytes::from(s.data),
        },
    };
    let aid = match &s.parent {
        UploadParent::Message(id) => {
            let Some(mut m) = mb.messages.get(id).cloned() else {
                return item_not_found(req);
            };
            let aid = store_attachment(mb, &mut m, new, "upload-session", &mut rng);
            m.touch();
            mb.messages.insert(id.clone(), m);
            aid
        }
        UploadParent::Event(id) => {
            if !mb.pim.events.contains_key(id) {
                return item_not_found(req);
            }
            let aid = mb.new_id(KIND_ATTACHMENT, &mut rng);
            let ev = mb.pim.events.get_mut(id).expect("checked above");
            ev.attachments.push(Attachment {
                id: aid.clone(),
                name: new.name,
                is_inline: new.is_inline,
                last_modified: Utc::now(),
                content: new.content,
                created_via: "upload-session",
            });
            ev.change += 1;
            ev.last_modified = Utc::now();
            aid
        }
    };
    Resp::new(201).header(
        "location",
        &format!(
            "{}/api/v2.0/Users('{}')/{}('{}')/Attachments('{aid}')",
            app.base_url,
            s.mailbox_id,
            s.parent.set(),
            s.parent.id()
        ),
    )
}

/// Drops expired sessions (called on reset and opportunistically).
pub fn purge_expired(app: &App) {
    let now = Instant::now();
    app.uploads
        .lock()
        .unwrap()
        .retain(|_, s| s.expires + Duration::from_secs(60) > now);
}
