//! Messages: create (MIME or JSON), importMime, list, get, `$value`, PATCH,
//! DELETE, move.
//!
//! A move (`POST …/messages/{id}/move`, `destinationId` a folder id or a
//! well-known name) answers `201 Created` with the message under a new id,
//! as message-move documents ("creates a new copy of the message in the
//! destination folder and removes the original"): the old id is a 404
//! afterwards. DELETE answers 204, and 404 ErrorItemNotFound for an id that
//! names nothing (Exchange keeps a deleted item in Recoverable Items; the
//! emulator removes it).
//!
//! The rules here are the ones cutover's Graph target stands on
//! (exchange-facts.md §1):
//! - MIME create (`Content-Type: text/plain`) always makes a draft;
//! - beta `importMime` makes a non-draft, keeps the MIME byte for byte, and
//!   needs Mail-Advanced.ReadWrite.All;
//! - JSON create honours PR_MESSAGE_FLAGS (0x0E07), PR_MESSAGE_DELIVERY_TIME
//!   (0x0E06) and PR_CLIENT_SUBMIT_TIME (0x0039) and ignores
//!   receivedDateTime / sentDateTime / internetMessageHeaders / isDraft;
//! - those three MAPI properties are creation-only: a PATCH that carries
//!   them (or isDraft / receivedDateTime) changes nothing and does not fail;
//! - "sensitive" properties (subject, body, recipients, …) of a non-draft can
//!   only be changed with Mail-Advanced (the change announced for 2026-12-31,
//!   enforced here).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::App;
use crate::attachments::{parse_attachment, store_attachment};
use crate::folders::{folder_not_found, malformed_id, resolve_chain};
use crate::graph::{Chain, Ctx};
use crate::http::{Req, Resp, bad_value, graph_error, json_object, unknown_property};
use crate::mime;
use crate::odata::{self, Entity, Filter, OrderField, normalize_prop_id};
use crate::store::{CreatedVia, KIND_MESSAGE, Lookup, Mailbox, Message, Recipient};

/// Graph's request size limit (4 MB) for everything but importMime and upload sessions.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

pub fn request_too_large(req: &Req) -> Resp {
    graph_error(
        req,
        413,
        "ErrorRequestEntityTooLarge",
        &format!(
            "The request entity is too large: {} bytes; the maximum request size is {MAX_REQUEST_BYTES} bytes.",
            req.body.len()
        ),
    )
}

/// The item would exceed the mailbox's MaxReceiveSize. Graph's status for this
/// is not documented; 413 is used because the refusal is about size and the
/// code is the one reported by clients (microsoft-graph-docs #15579).
pub fn message_too_large(req: &Req, size: u64, max: u64) -> Resp {
    graph_error(
        req,
        413,
        "ErrorMessageSizeExceeded",
        &format!(
            "The message exceeds the maximum supported size. (item size {size} bytes, MaxReceiveSize {max} bytes)"
        ),
    )
}

pub fn item_not_found(req: &Req) -> Resp {
    graph_error(
        req,
        404,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

fn access_denied(req: &Req) -> Resp {
    graph_error(
        req,
        403,
        "ErrorAccessDenied",
        "Access is denied. Check credentials and try again.",
    )
}

/// Finds a message id in a mailbox, optionally requiring it to be in a folder.
pub fn locate(mb: &Mailbox, req: &Req, chain: Option<&Chain>, id: &str) -> Result<(), Resp> {
    mb.resolve_object(id, KIND_MESSAGE).map_err(|e| match e {
        Lookup::Malformed => malformed_id(req),
        Lookup::NotFound => item_not_found(req),
    })?;
    let m = mb.messages.get(id).ok_or_else(|| item_not_found(req))?;
    if let Some(c) = chain {
        let fid = resolve_chain(mb, req, c)?;
        if m.folder_id != fid {
            return Err(item_not_found(req));
        }
    }
    Ok(())
}

fn conversation_id(mb: &Mailbox, subject: &str) -> String {
    let mut s = subject.trim();
    loop {
        let lower = s.to_ascii_lowercase();
        match ["re:", "fw:", "fwd:", "aw:", "wg:"]
            .iter()
            .find(|p| lower.starts_with(*p))
        {
            Some(p) => s = s[p.len()..].trim_start(),
            None => break,
        }
    }
    let digest = Sha256::digest(format!("{}\n{}", mb.id, s.to_lowercase()).as_bytes());
    format!("AAQk{}", STANDARD.encode(&digest[..18]))
}

fn new_internet_message_id(rng: &mut fastrand::Rng) -> String {
    let mut raw = [0u8; 16];
    rng.fill(&mut raw);
    let hex: String = raw.iter().map(|b| format!("{b:02X}")).collect();
    format!("<{hex}@emulator.prod.outlook.com>")
}

fn blank_message(id: String, folder_id: String, via: CreatedVia) -> Message {
    let now = Utc::now();
    let mut flag = Map::new();
    flag.insert("flagStatus".into(), json!("notFlagged"));
    Message {
        id,
        folder_id,
        created_via: via,
        created: now,
        last_modified: now,
        change: 1,
        received: now,
        sent: Some(now),
        is_draft: true,
        is_read: true,
        subject: String::new(),
        body_type: "text".into(),
        body: String::new(),
        from: None,
        sender: None,
        to: Vec::new(),
        cc: Vec::new(),
        bcc: Vec::new(),
        reply_to: Vec::new(),
        importance: "normal".into(),
        inference: "focused".into(),
        categories: Vec::new(),
        flag,
        internet_message_id: String::new(),
        headers: Vec::new(),
        ext_props: Vec::new(),
        multi_ext_props: Vec::new(),
        delivery_receipt: false,
        read_receipt: false,
        conversation_id: String::new(),
        mime: None,
        attachments: Vec::new(),
    }
}

fn created_response(app: &App, ctx: &Ctx, mb: &Mailbox, m: &Message, status: u16) -> Resp {
    let mut body = odata::message_json(mb, m, &app.base_url, None);
    body["@odata.context"] = json!(format!(
        "{}/{}/$metadata#users('{}')/messages/$entity",
        app.base_url, ctx.version, ctx.user
    ));
    Resp::json(status, &body)
}

/// Target folder of a create: the addressed folder, or Drafts for `/messages`.
fn target_folder(mb: &Mailbox, req: &Req, chain: Option<&Chain>) -> Result<String, Resp> {
    match chain {
        Some(c) => resolve_chain(mb, req, c),
        None => mb
            .well_known
            .get("drafts")
            .cloned()
            .ok_or_else(|| folder_not_found(req)),
    }
}

/// `POST …/messages`: MIME (text/plain) or JSON (application/json).
pub fn create(app: &App, req: &Req, ctx: &Ctx, chain: Option<&Chain>) -> Resp {
    if req.body.len() > MAX_REQUEST_BYTES {
        return request_too_large(req);
    }
    match req.content_type().as_deref() {
        Some("text/plain") => create_from_mime(app, req, ctx, chain, CreatedVia::MimeDraft),
        Some("application/json") => create_from_json(app, req, ctx, chain),
        _ => graph_error(
            req,
            415,
            "UnsupportedMediaType",
            "Use Content-Type application/json for a JSON message or text/plain for base64 MIME.",
        ),
    }
}

/// `POST /beta/users/{u}/mailFolders/{f}/importMime`.
pub fn import_mime(app: &App, req: &Req, ctx: &Ctx, chain: &Chain) -> Resp {
    if !app.cfg.mail_advanced {
        return access_denied(req);
    }
    if req.content_type().as_deref() != Some("text/plain") {
        return graph_error(
            req,
            415,
            "UnsupportedMediaType",
            "importMime takes the base64 MIME content with Content-Type text/plain.",
        );
    }
    create_from_mime(app, req, ctx, Some(chain), CreatedVia::ImportMime)
}

fn create_from_mime(app: &App, req: &Req, ctx: &Ctx, chain: Option<&Chain>, via: CreatedVia) -> Resp {
    let Some(raw) = mime::decode_base64_body(&req.body) else {
        return graph_error(
            req,
            400,
            "ErrorMimeContentInvalidBase64String",
            "Invalid base64 string for MIME content.",
        );
    };
    // Parse outside the store lock: MIME can be tens of megabytes.
    let parsed = mime::parse(&raw);
    let raw = Bytes::from(raw);
    let mut store = app.store.lock().unwrap();
    let mut rng = app.rng.lock().unwrap();
    let Some(mb) = store.checked_mut(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    let folder = match target_folder(mb, req, chain) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if raw.len() as u64 > mb.max_receive_size {
        return message_too_large(req, raw.len() as u64, mb.max_receive_size);
    }
    let id = mb.new_id(KIND_MESSAGE, &mut rng);
    let mut m = blank_message(id, folder, via);
    m.subject = parsed.subject;
    m.from = parsed.from;
    m.sender = parsed.sender;
    m.to = parsed.to;
    m.cc = parsed.cc;
    m.bcc = parsed.bcc;
    m.reply_to = parsed.reply_to;
    m.body_type = parsed.body_type;
    m.body = parsed.body;
    m.headers = parsed.headers;
    if let Some(i) = parsed.importance {
        m.importance = i;
    }
    m.internet_message_id = parsed.message_id.unwrap_or_else(|| new_internet_message_id(&mut rng));
    match via {
        CreatedVia::ImportMime => {
            // Delivered-looking item: unread, not a draft. Received time: the
            // topmost Received header (the final hop), else Date, else now —
            // the docs give no rule, and this is what a delivered copy shows.
            m.is_draft = false;
            m.is_read = false;
            m.received = parsed.first_received.or(parsed.date).unwrap_or(m.created);
            m.sent = Some(parsed.date.unwrap_or(m.received));
        }
        _ => {
            // MIME create always makes a draft; the doc example shows isRead
            // true, receivedDateTime = now and sentDateTime from Date.
            m.is_draft = true;
            m.is_read = true;
            m.sent = Some(parsed.date.unwrap_or(m.created));
        }
    }
    m.conversation_id = conversation_id(mb, &m.subject);
    for a in parsed.attachments {
        let aid = mb.new_id(crate::store::KIND_ATTACHMENT, &mut rng);
        m.attachments.push(crate::store::Attachment {
            id: aid,
            name: a.name,
            is_inline: a.is_inline,
            last_modified: m.created,
            content: a.content,
            created_via: "mime",
        });
    }
    m.mime = Some(raw);
    let resp = created_response(app, ctx, mb, &m, 201);
    mb.insert_message(m);
    resp
}

/// Properties of message that a create request may carry but Graph ignores.
const IGNORED_ON_CREATE: &[&str] = &[
    "receivedDateTime",
    "sentDateTime",
    "isDraft",
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "hasAttachments",
    "bodyPreview",
    "webLink",
    "uniqueBody",
    "@odata.type",
    "@odata.etag",
];

fn parse_recipient(req: &Req, prop: &str, v: &Value) -> Result<Recipient, Resp> {
    let bad = || bad_value(req, prop, "microsoft.graph.recipient");
    let o = v.as_object().ok_or_else(bad)?;
    for k in o.keys() {
        if k != "emailAddress" && k != "@odata.type" {
            return Err(unknown_property(req, k, "microsoft.graph.recipient"));
        }
    }
    let ea = o.get("emailAddress").and_then(Value::as_object).ok_or_else(bad)?;
    for k in ea.keys() {
        if k != "address" && k != "name" && k != "@odata.type" {
            return Err(unknown_property(req, k, "microsoft.graph.emailAddress"));
        }
    }
    let address = ea.get("address").and_then(Value::as_str).ok_or_else(bad)?.to_string();
    let name = match ea.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad()),
    };
    Ok(Recipient { name, address })
}

fn parse_recipients(req: &Req, prop: &str, v: &Value) -> Result<Vec<Recipient>, Resp> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(|i| parse_recipient(req, prop, i)).collect(),
        _ => Err(bad_value(req, prop, "Collection(microsoft.graph.recipient)")),
    }
}

fn parse_body(req: &Req, v: &Value) -> Result<(String, String), Resp> {
    let bad = || bad_value(req, "body", "microsoft.graph.itemBody");
    let o = v.as_object().ok_or_else(bad)?;
    let mut ty = "text".to_string();
    let mut content = String::new();
    for (k, v) in o {
        match k.as_str() {
            "contentType" => {
                ty = match v.as_str().map(str::to_ascii_lowercase).as_deref() {
                    Some("text") => "text".into(),
                    Some("html") => "html".into(),
                    _ => return Err(bad_value(req, "contentType", "microsoft.graph.bodyType")),
                }
            }
            "content" => content = v.as_str().ok_or_else(bad)?.to_string(),
            "@odata.type" => {}
            _ => return Err(unknown_property(req, k, "microsoft.graph.itemBody")),
        }
    }
    Ok((ty, content))
}

fn parse_enum(req: &Req, prop: &str, v: &Value, allowed: &[&str], ty: &str) -> Result<String, Resp> {
    let s = v.as_str().map(str::to_ascii_lowercase);
    match s {
        Some(s) if allowed.contains(&s.as_str()) => Ok(s),
        _ => Err(bad_value(req, prop, ty)),
    }
}

fn parse_categories(req: &Req, v: &Value) -> Result<Vec<String>, Resp> {
    let bad = || bad_value(req, "categories", "Collection(Edm.String)");
    v.as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|c| c.as_str().map(str::to_string).ok_or_else(bad))
        .collect()
}

fn parse_flag(req: &Req, v: &Value) -> Result<Map<String, Value>, Resp> {
    let o = v
        .as_object()
        .ok_or_else(|| bad_value(req, "flag", "microsoft.graph.followupFlag"))?;
    let mut out = Map::new();
    out.insert("flagStatus".into(), json!("notFlagged"));
    for (k, val) in o {
        match k.as_str() {
            "flagStatus" => {
                let s = match val.as_str().map(str::to_ascii_lowercase).as_deref() {
                    Some("notflagged") => "notFlagged",
                    Some("flagged") => "flagged",
                    Some("complete") => "complete",
                    _ => {
                        return Err(bad_value(req, "flagStatus", "microsoft.graph.followupFlagStatus"));
                    }
                };
                out.insert(k.clone(), json!(s));
            }
            "startDateTime" | "dueDateTime" | "completedDateTime" => {
                let ok = val.is_null()
                    || val
                        .as_object()
                        .is_some_and(|d| d.get("dateTime").is_some_and(Value::is_string));
                if !ok {
                    return Err(bad_value(req, k, "microsoft.graph.dateTimeTimeZone"));
                }
                out.insert(k.clone(), val.clone());
            }
            "@odata.type" => {}
            _ => return Err(unknown_property(req, k, "microsoft.graph.followupFlag")),
        }
    }
    Ok(out)
}

fn parse_bool(req: &Req, prop: &str, v: &Value) -> Result<bool, Resp> {
    v.as_bool().ok_or_else(|| bad_value(req, prop, "Edm.Boolean"))
}

fn parse_string(req: &Req, prop: &str, v: &Value) -> Result<String, Resp> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        _ => Err(bad_value(req, prop, "Edm.String")),
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// Checks an extended property value against its declared type.
fn valid_prop_value(id: &str, value: &str) -> bool {
    let ty = id.split_whitespace().next().unwrap_or("");
    match ty {
        "Integer" | "Short" | "Long" => value.trim().parse::<i64>().is_ok(),
        "SystemTime" => parse_time(value).is_some(),
        "Boolean" => matches!(value.to_ascii_lowercase().as_str(), "true" | "false"),
        "Double" | "Float" | "Currency" => value.trim().parse::<f64>().is_ok(),
        "Binary" => STANDARD.decode(value).is_ok(),
        "CLSID" => normalize_prop_id(&format!("String {{{}}} Id 0x1", value.trim_matches(['{', '}']))).is_some(),
        _ => true,
    }
}

/// Parses `singleValueExtendedProperties`: normalised (id, value) pairs.
pub fn parse_ext_props(req: &Req, v: &Value) -> Result<Vec<(String, String)>, Resp> {
    let bad = || {
        bad_value(
            req,
            "singleValueExtendedProperties",
            "Collection(microsoft.graph.singleValueLegacyExtendedProperty)",
        )
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for item in v.as_array().ok_or_else(bad)? {
        let o = item.as_object().ok_or_else(bad)?;
        for k in o.keys() {
            if k != "id" && k != "value" && k != "@odata.type" {
                return Err(unknown_property(
                    req,
                    k,
                    "microsoft.graph.singleValueLegacyExtendedProperty",
                ));
            }
        }
        let raw_id = o.get("id").and_then(Value::as_str).ok_or_else(bad)?;
        let value = o.get("value").and_then(Value::as_str).ok_or_else(bad)?;
        let id = normalize_prop_id(raw_id).ok_or_else(|| {
            graph_error(
                req,
                400,
                "ErrorInvalidProperty",
                &format!("The extended property id '{raw_id}' is not valid."),
            )
        })?;
        if !valid_prop_value(&id, value) {
            return Err(graph_error(
                req,
                400,
                "ErrorInvalidExtendedPropertyValue",
                &format!("The value '{value}' is not valid for extended property '{raw_id}'."),
            ));
        }
        out.retain(|(k, _)| *k != id);
        out.push((id, value.to_string()));
    }
    Ok(out)
}

fn check_internet_headers(req: &Req, v: &Value) -> Result<(), Resp> {
    let bad = || {
        bad_value(
            req,
            "internetMessageHeaders",
            "Collection(microsoft.graph.internetMessageHeader)",
        )
    };
    for h in v.as_array().ok_or_else(bad)? {
        let name = h.get("name").and_then(Value::as_str).ok_or_else(bad)?;
        // Graph only accepts custom x- headers here (and then ignores them at create).
        if !name.to_ascii_lowercase().starts_with("x-") {
            return Err(graph_error(
                req,
                400,
                "InvalidInternetMessageHeader",
                &format!("The internet message header name '{name}' should start with 'x-' or 'X-'."),
            ));
        }
    }
    Ok(())
}

fn create_from_json(app: &App, req: &Req, ctx: &Ctx, chain: Option<&Chain>) -> Resp {
    let body = match json_object(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut m = blank_message(String::new(), String::new(), CreatedVia::Json);
    let mut is_read: Option<bool> = None;
    let mut new_attachments = Vec::new();
    for (k, v) in &body {
        let r: Result<(), Resp> = (|| {
            match k.as_str() {
                "subject" => m.subject = parse_string(req, k, v)?,
                "body" => (m.body_type, m.body) = parse_body(req, v)?,
                "from" => {
                    m.from = if v.is_null() {
                        None
                    } else {
                        Some(parse_recipient(req, k, v)?)
                    }
                }
                "sender" => {
                    m.sender = if v.is_null() {
                        None
                    } else {
                        Some(parse_recipient(req, k, v)?)
                    }
                }
                "toRecipients" => m.to = parse_recipients(req, k, v)?,
                "ccRecipients" => m.cc = parse_recipients(req, k, v)?,
                "bccRecipients" => m.bcc = parse_recipients(req, k, v)?,
                "replyTo" => m.reply_to = parse_recipients(req, k, v)?,
                "importance" => {
                    m.importance = parse_enum(req, k, v, &["low", "normal", "high"], "microsoft.graph.importance")?
                }
                "inferenceClassification" => {
                    m.inference = parse_enum(
                        req,
                        k,
                        v,
                        &["focused", "other"],
                        "microsoft.graph.inferenceClassificationType",
                    )?
                }
                "internetMessageId" => m.internet_message_id = parse_string(req, k, v)?,
                "isRead" => is_read = Some(parse_bool(req, k, v)?),
                "isDeliveryReceiptRequested" => m.delivery_receipt = parse_bool(req, k, v)?,
                "isReadReceiptRequested" => m.read_receipt = parse_bool(req, k, v)?,
                "categories" => m.categories = parse_categories(req, v)?,
                "flag" => m.flag = parse_flag(req, v)?,
                "attachments" => {
                    let items = v
                        .as_array()
                        .ok_or_else(|| bad_value(req, k, "Collection(microsoft.graph.attachment)"))?;
                    for a in items {
                        new_attachments.push(parse_attachment(req, a)?);
                    }
                }
                "singleValueExtendedProperties" => m.ext_props = parse_ext_props(req, v)?,
                "multiValueExtendedProperties" => {
                    m.multi_ext_props = v.as_array().cloned().ok_or_else(|| {
                        bad_value(req, k, "Collection(microsoft.graph.multiValueLegacyExtendedProperty)")
                    })?
                }
                "internetMessageHeaders" => check_internet_headers(req, v)?,
                k if IGNORED_ON_CREATE.contains(&k) => {}
                _ => return Err(unknown_property(req, k, "microsoft.graph.message")),
            }
            Ok(())
        })();
        if let Err(resp) = r {
            return resp;
        }
    }
    // PR_MESSAGE_FLAGS decides draft and read state; without it the item is a
    // draft, as Exchange sets MSGFLAG_UNSENT by default.
    let flags = m.ext_prop("Integer 0xe07").and_then(|v| v.trim().parse::<i64>().ok());
    m.is_draft = flags.is_none_or(|f| f & 0x08 != 0);
    m.is_read = is_read.or(flags.map(|f| f & 0x01 != 0)).unwrap_or(true);
    if let Some(t) = m.ext_prop("SystemTime 0xe06").and_then(parse_time) {
        m.received = t;
    }
    if let Some(t) = m.ext_prop("SystemTime 0x39").and_then(parse_time) {
        m.sent = Some(t);
    }
    if let Some(h) = m.ext_prop("String 0x7d") {
        m.headers = mime::parse_header_block(h);
    }

    let mut store = app.store.lock().unwrap();
    let mut rng = app.rng.lock().unwrap();
    let Some(mb) = store.checked_mut(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    m.folder_id = match target_folder(mb, req, chain) {
        Ok(f) => f,
        Err(r) => return r,
    };
    m.id = mb.new_id(KIND_MESSAGE, &mut rng);
    if m.internet_message_id.is_empty() {
        m.internet_message_id = new_internet_message_id(&mut rng);
    }
    m.conversation_id = conversation_id(mb, &m.subject);
    for a in new_attachments {
        store_attachment(mb, &mut m, a, "json", &mut rng);
    }
    if m.size() > mb.max_receive_size {
        return message_too_large(req, m.size(), mb.max_receive_size);
    }
    let resp = created_response(app, ctx, mb, &m, 201);
    mb.insert_message(m);
    resp
}

pub fn list(app: &App, req: &Req, ctx: &Ctx, chain: Option<&Chain>) -> Resp {
    let q = match odata::parse(req, Entity::Message) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let store = app.store.lock().unwrap();
    let Some(mb) = store.checked(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    let imid = match &q.filter {
        Some(Filter::InternetMessageId(v)) => Some(v.as_str()),
        _ => None,
    };
    let ext = match &q.filter {
        Some(Filter::ExtendedProperty(id, value)) => Some((id.as_str(), value.as_str())),
        _ => None,
    };
    let ext_ok = |m: &Message| ext.is_none_or(|(id, value)| m.ext_prop(id) == Some(value));
    let (mut items, context): (Vec<&Message>, String) = match chain {
        Some(c) => {
            let fid = match resolve_chain(mb, req, c) {
                Ok(f) => f,
                Err(r) => return r,
            };
            (
                mb.folders[&fid]
                    .messages
                    .iter()
                    .filter_map(|id| mb.messages.get(id))
                    .filter(|m| imid.is_none_or(|i| m.internet_message_id == i))
                    .filter(|m| ext_ok(m))
                    .collect(),
                format!("users('{}')/mailFolders('{fid}')/messages", ctx.user),
            )
        }
        None => (
            match imid {
                Some(i) => mb
                    .by_imid
                    .get(i)
                    .map(|ids| ids.iter().filter_map(|id| mb.messages.get(id)).collect())
                    .unwrap_or_default(),
                None => mb.messages.values().filter(|m| ext_ok(m)).collect(),
            },
            format!("users('{}')/messages", ctx.user),
        ),
    };
    let (field, desc) = q.order.unwrap_or((OrderField::Received, true));
    let key = |m: &Message| match field {
        OrderField::Received => Some(m.received),
        OrderField::Sent => m.sent,
        OrderField::Created => Some(m.created),
        OrderField::Modified => Some(m.last_modified),
    };
    // Ties are broken by creation time then id so that paging is stable.
    items.sort_by(|a, b| {
        let ord = key(a)
            .cmp(&key(b))
            .then(a.created.cmp(&b.created))
            .then(a.id.cmp(&b.id));
        if desc { ord.reverse() } else { ord }
    });
    let (skip, top) = odata::window(&q, app.cfg.page_size);
    let page_items: Vec<Value> = items
        .iter()
        .skip(skip)
        .take(top)
        .map(|m| odata::message_json(mb, m, &app.base_url, Some(&q)))
        .collect();
    let context = format!("{}/{}/$metadata#{context}", app.base_url, ctx.version);
    Resp::json(
        200,
        &odata::page(
            &app.base_url,
            req,
            &context,
            page_items,
            items.len(),
            &q,
            app.cfg.page_size,
        ),
    )
}

pub fn get(app: &App, req: &Req, ctx: &Ctx, chain: Option<&Chain>, id: &str) -> Resp {
    let q = match odata::parse(req, Entity::Message) {
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
    let mut body = odata::message_json(mb, &mb.messages[id], &app.base_url, Some(&q));
    body["@odata.context"] = json!(format!(
        "{}/{}/$metadata#users('{}')/messages/$entity",
        app.base_url, ctx.version, ctx.user
    ));
    Resp::json(200, &body)
}

pub fn value(app: &App, req: &Req, ctx: &Ctx, chain: Option<&Chain>, id: &str) -> Resp {
    if chain.is_some() {
        // Reported for /mailFolders/{id}/messages/{id}/$value (microsoft-graph-docs-contrib #776, #5546).
        return graph_error(req, 405, "ErrorInvalidRequest", "The OData request is not supported.");
    }
    let store = app.store.lock().unwrap();
    let Some(mb) = store.checked(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    if let Err(r) = locate(mb, req, None, id) {
        return r;
    }
    let m = &mb.messages[id];
    let bytes = match (&m.mime, m.created_via) {
        (Some(raw), CreatedVia::ImportMime) => raw.clone(),
        _ => mime::render(m),
    };
    Resp::new(200).header("content-type", "text/plain").body(bytes)
}

pub fn delete(app: &App, req: &Req, ctx: &Ctx, chain: Option<&Chain>, id: &str) -> Resp {
    let mut store = app.store.lock().unwrap();
    let Some(mb) = store.checked_mut(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    if let Err(r) = locate(mb, req, chain, id) {
        return r;
    }
    mb.remove_message(id);
    Resp::new(204)
}

/// Properties only a draft (or an app with Mail-Advanced) may change.
const SENSITIVE: &[&str] = &[
    "subject",
    "body",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "from",
    "sender",
    "internetMessageId",
];

/// Accepted in a PATCH and silently ignored (read-only or creation-only).
const IGNORED_ON_PATCH: &[&str] = &[
    "isDraft",
    "receivedDateTime",
    "sentDateTime",
    "internetMessageHeaders",
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "hasAttachments",
    "bodyPreview",
    "webLink",
    "uniqueBody",
    "@odata.type",
    "@odata.etag",
];

/// MAPI properties that can only be set at creation; in a PATCH they are a no-op.
const CREATION_ONLY_PROPS: &[&str] = &["Integer 0xe07", "SystemTime 0xe06", "SystemTime 0x39"];

pub fn patch(app: &App, req: &Req, ctx: &Ctx, chain: Option<&Chain>, id: &str) -> Resp {
    let body = match json_object(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if req.body.len() > MAX_REQUEST_BYTES {
        return request_too_large(req);
    }
    let mut store = app.store.lock().unwrap();
    let Some(mb) = store.checked_mut(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    if let Err(r) = locate(mb, req, chain, id) {
        return r;
    }
    let is_draft = mb.messages[id].is_draft;
    if !is_draft && !app.cfg.mail_advanced && body.keys().any(|k| SENSITIVE.contains(&k.as_str())) {
        return access_denied(req);
    }
    // Validate everything on a copy, then commit, so a bad property changes nothing.
    let mut m = mb.messages[id].clone();
    for (k, v) in &body {
        let r: Result<(), Resp> = (|| {
            match k.as_str() {
                "isRead" => m.is_read = parse_bool(req, k, v)?,
                "flag" => m.flag = parse_flag(req, v)?,
                "categories" => m.categories = parse_categories(req, v)?,
                "importance" => {
                    m.importance = parse_enum(req, k, v, &["low", "normal", "high"], "microsoft.graph.importance")?
                }
                "inferenceClassification" => {
                    m.inference = parse_enum(
                        req,
                        k,
                        v,
                        &["focused", "other"],
                        "microsoft.graph.inferenceClassificationType",
                    )?
                }
                "isDeliveryReceiptRequested" => m.delivery_receipt = parse_bool(req, k, v)?,
                "isReadReceiptRequested" => m.read_receipt = parse_bool(req, k, v)?,
                "subject" => m.subject = parse_string(req, k, v)?,
                "body" => (m.body_type, m.body) = parse_body(req, v)?,
                "from" => {
                    m.from = if v.is_null() {
                        None
                    } else {
                        Some(parse_recipient(req, k, v)?)
                    }
                }
                "sender" => {
                    m.sender = if v.is_null() {
                        None
                    } else {
                        Some(parse_recipient(req, k, v)?)
                    }
                }
                "toRecipients" => m.to = parse_recipients(req, k, v)?,
                "ccRecipients" => m.cc = parse_recipients(req, k, v)?,
                "bccRecipients" => m.bcc = parse_recipients(req, k, v)?,
                "replyTo" => m.reply_to = parse_recipients(req, k, v)?,
                "internetMessageId" => m.internet_message_id = parse_string(req, k, v)?,
                "singleValueExtendedProperties" => {
                    for (pid, pv) in parse_ext_props(req, v)? {
                        if CREATION_ONLY_PROPS.contains(&pid.as_str()) {
                            continue;
                        }
                        if pid == "String 0x7d" {
                            m.headers = mime::parse_header_block(&pv);
                        }
                        m.ext_props.retain(|(k, _)| *k != pid);
                        m.ext_props.push((pid, pv));
                    }
                }
                "multiValueExtendedProperties" => {
                    m.multi_ext_props = v.as_array().cloned().ok_or_else(|| {
                        bad_value(req, k, "Collection(microsoft.graph.multiValueLegacyExtendedProperty)")
                    })?
                }
                "attachments" => {
                    return Err(graph_error(
                        req,
                        400,
                        "ErrorInvalidRequest",
                        "Attachments can't be changed with PATCH; use the attachments collection.",
                    ));
                }
                k if IGNORED_ON_PATCH.contains(&k) => {}
                _ => return Err(unknown_property(req, k, "microsoft.graph.message")),
            }
            Ok(())
        })();
        if let Err(resp) = r {
            return resp;
        }
    }
    let old_imid = mb.messages[id].internet_message_id.clone();
    if m.internet_message_id != old_imid {
        mb.unindex_imid(&old_imid, id);
        mb.by_imid
            .entry(m.internet_message_id.clone())
            .or_default()
            .push(id.to_string());
    }
    m.touch();
    let mut out = odata::message_json(mb, &m, &app.base_url, None);
    out["@odata.context"] = json!(format!(
        "{}/{}/$metadata#users('{}')/messages/$entity",
        app.base_url, ctx.version, ctx.user
    ));
    mb.messages.insert(id.to_string(), m);
    Resp::json(200, &out)
}

/// `POST …/messages/{id}/move`: 201 with the moved message, which has a
/// new id.
pub fn move_message(app: &App, req: &Req, ctx: &Ctx, chain: Option<&Chain>, id: &str) -> Resp {
    let destination = match crate::folders::destination_id(req, "microsoft.graph.message") {
        Ok(d) => d,
        Err(r) => return r,
    };
    let mut store = app.store.lock().unwrap();
    let mut rng = app.rng.lock().unwrap();
    let Some(mb) = store.checked_mut(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    if let Err(r) = locate(mb, req, chain, id) {
        return r;
    }
    let folder = match mb.resolve_folder(&destination) {
        Ok(f) => f,
        Err(Lookup::Malformed) => return malformed_id(req),
        Err(Lookup::NotFound) => return folder_not_found(req),
    };
    let Some(new_id) = mb.move_message(id, &folder, &mut rng) else {
        return item_not_found(req);
    };
    created_response(app, ctx, mb, &mb.messages[&new_id], 201)
}
