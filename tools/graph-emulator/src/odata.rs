//! OData query options and the JSON shapes of mailFolder, message and
//! attachment resources.
//!
//! Only the query options the product can plausibly use are implemented
//! (`$top`, `$skip`, `$select`, one-clause `$filter`, `$expand` of
//! extended properties and attachments, `$orderby` on date fields). Other
//! valid Graph options answer 501 so a test failure points at the emulator;
//! options Graph itself rejects answer 400.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::http::{Req, Resp, graph_error, not_implemented};
use crate::store::{Attachment, AttachmentContent, Folder, Mailbox, Message, Recipient};

/// Graph's largest page for Outlook collections.
pub const MAX_TOP: usize = 1000;

/// Resource types with their selectable properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Message,
    Folder,
    Attachment,
}

const MESSAGE_PROPS: &[&str] = &[
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
    "internetMessageHeaders",
    "uniqueBody",
];

/// Properties returned when `$select` is absent (not internetMessageHeaders / uniqueBody).
const MESSAGE_DEFAULT: usize = 29;

const FOLDER_PROPS: &[&str] = &[
    "id",
    "displayName",
    "parentFolderId",
    "childFolderCount",
    "unreadItemCount",
    "totalItemCount",
    "sizeInBytes",
    "isHidden",
];

const ATTACHMENT_PROPS: &[&str] = &[
    "id",
    "lastModifiedDateTime",
    "name",
    "contentType",
    "size",
    "isInline",
    "contentId",
    "contentLocation",
    "contentBytes",
];

impl Entity {
    fn props(self) -> &'static [&'static str] {
        match self {
            Entity::Message => MESSAGE_PROPS,
            Entity::Folder => FOLDER_PROPS,
            Entity::Attachment => ATTACHMENT_PROPS,
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            Entity::Message => "microsoft.graph.message",
            Entity::Folder => "microsoft.graph.mailFolder",
            Entity::Attachment => "microsoft.graph.attachment",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Filter {
    InternetMessageId(String),
    DisplayName(String),
    /// `singleValueExtendedProperties/Any(ep: ep/id eq '…' and ep/value eq '…')`:
    /// the normalised property id and the value.
    ExtendedProperty(String, String),
}

/// Splits `a and b` on ` and ` outside string literals.
pub fn split_and(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut start) = (false, 0usize);
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            quoted = !quoted;
        } else if !quoted && s[i..].len() >= 5 && s[i..i + 5].eq_ignore_ascii_case(" and ") {
            out.push(&s[start..i]);
            start = i + 5;
            i += 5;
            continue;
        }
        i += 1;
    }
    out.push(&s[start..]);
    out
}

/// Parses the documented filter on a single-value extended property
/// (learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-get):
/// `singleValueExtendedProperties/Any(ep: ep/id eq '{id}' and ep/value eq '{value}')`.
/// `Err` carries a 400 message for an invalid property id; `Ok(None)` means
/// the expression has another shape.
pub fn ext_prop_filter(expr: &str) -> Result<Option<(String, String)>, String> {
    const HEAD: &str = "singleValueExtendedProperties/Any(";
    let expr = expr.trim();
    if expr.len() < HEAD.len() || !expr[..HEAD.len()].eq_ignore_ascii_case(HEAD) {
        return Ok(None);
    }
    let Some(inner) = expr[HEAD.len()..].strip_suffix(')') else {
        return Ok(None);
    };
    let Some((var, body)) = inner.split_once(':') else {
        return Ok(None);
    };
    let var = var.trim();
    if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Ok(None);
    }
    let clauses = split_and(body);
    if clauses.len() != 2 {
        return Ok(None);
    }
    let (id_prop, value_prop) = (format!("{var}/id"), format!("{var}/value"));
    let (Some(id), Some(value)) = (eq_clause(clauses[0], &id_prop), eq_clause(clauses[1], &value_prop)) else {
        return Ok(None);
    };
    let norm = normalize_prop_id(&id).ok_or_else(|| format!("The extended property id '{id}' is not valid."))?;
    // Graph compares `ep/value` as a string; other types need
    // `cast(ep/value, Edm.…)`, which this emulator does not implement.
    if !norm.starts_with("String ") {
        return Err(format!(
            "The extended property '{id}' is not a string; filter on it with cast(ep/value, Edm.Int32)."
        ));
    }
    Ok(Some((norm, value)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderField {
    Received,
    Sent,
    Created,
    Modified,
}

/// Parsed query options of one request. `F` is the `$filter` the resource
/// takes: mail's `Filter`, or `pim::PimFilter` for contacts and events
/// (which leave the mail-only options at their defaults).
#[derive(Debug, Clone)]
pub struct Query<F = Filter> {
    pub top: Option<usize>,
    pub skip: usize,
    pub select: Option<Vec<&'static str>>,
    pub filter: Option<F>,
    /// `$expand=singleValueExtendedProperties($filter=id eq '…')`: normalised ids.
    pub expand_ext: Option<Vec<String>>,
    pub expand_attachments: bool,
    pub order: Option<(OrderField, bool)>,
    pub include_hidden: bool,
}

impl<F> Default for Query<F> {
    fn default() -> Self {
        Query {
            top: None,
            skip: 0,
            select: None,
            filter: None,
            expand_ext: None,
            expand_attachments: false,
            order: None,
            include_hidden: false,
        }
    }
}

fn bad_query(req: &Req, msg: &str) -> Resp {
    graph_error(req, 400, "BadRequest", msg)
}

/// Parses a single-quoted OData string literal (`'it''s'`).
fn string_literal(s: &str) -> Option<String> {
    let inner = s.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' && chars.next() != Some('\'') {
            return None;
        }
        out.push(c);
    }
    Some(out)
}

/// Parses `<prop> eq '<literal>'` for the given property name.
pub fn eq_clause(expr: &str, prop: &str) -> Option<String> {
    let expr = expr.trim();
    let (lhs, rest) = expr.split_once(char::is_whitespace)?;
    if !lhs.eq_ignore_ascii_case(prop) {
        return None;
    }
    let rest = rest.trim_start();
    let (op, lit) = rest.split_once(char::is_whitespace)?;
    if !op.eq_ignore_ascii_case("eq") {
        return None;
    }
    string_literal(lit)
}

/// Splits on commas that are not inside parentheses.
pub fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// The normalised ids of `$expand=singleValueExtendedProperties($filter=…)`:
/// `filter` is `id eq '…'` clauses joined by `or`.
pub fn expand_ext_ids(req: &Req, filter: &str) -> Result<Vec<String>, Resp> {
    let mut ids = Vec::new();
    for clause in filter.split(" or ") {
        let lit = eq_clause(clause, "id").ok_or_else(|| not_implemented(req, &format!("$expand filter '{clause}'")))?;
        let id = normalize_prop_id(&lit).ok_or_else(|| {
            graph_error(
                req,
                400,
                "ErrorInvalidProperty",
                &format!("The extended property id '{lit}' is not valid."),
            )
        })?;
        ids.push(id);
    }
    Ok(ids)
}

/// Parses the query options of a request addressing `entity`.
pub fn parse(req: &Req, entity: Entity) -> Result<Query, Resp> {
    let mut q = Query::default();
    for (k, v) in &req.query {
        match k.as_str() {
            "$top" => {
                let n: usize = v
                    .parse()
                    .map_err(|_| bad_query(req, &format!("Invalid $top value '{v}'.")))?;
                // Outlook pages hold 1 to 1000 items; outside that range is refused
                // rather than clamped, so a client never relies on a silent clamp.
                if n == 0 || n > MAX_TOP {
                    return Err(bad_query(
                        req,
                        &format!("The value of $top must be between 1 and {MAX_TOP}."),
                    ));
                }
                q.top = Some(n);
            }
            "$skip" => {
                q.skip = v
                    .parse()
                    .map_err(|_| bad_query(req, &format!("Invalid $skip value '{v}'.")))?;
            }
            "$select" => {
                let mut props = Vec::new();
                for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let Some(canon) = entity.props().iter().find(|c| c.eq_ignore_ascii_case(p)) else {
                        return Err(graph_error(
                            req,
                            400,
                            "RequestBroker--ParseUri",
                            &format!(
                                "Could not find a property named '{p}' on type '{}'.",
                                entity.type_name()
                            ),
                        ));
                    };
                    props.push(*canon);
                }
                q.select = Some(props);
            }
            "$filter" => {
                q.filter = Some(match entity {
                    Entity::Message => match ext_prop_filter(v) {
                        Ok(Some((id, value))) => Filter::ExtendedProperty(id, value),
                        Err(msg) => return Err(graph_error(req, 400, "ErrorInvalidProperty", &msg)),
                        Ok(None) => eq_clause(v, "internetMessageId")
                            .map(Filter::InternetMessageId)
                            .ok_or_else(|| not_implemented(req, &format!("$filter={v}")))?,
                    },
                    Entity::Folder => eq_clause(v, "displayName")
                        .map(Filter::DisplayName)
                        .ok_or_else(|| not_implemented(req, &format!("$filter={v}")))?,
                    Entity::Attachment => {
                        return Err(not_implemented(req, "$filter on attachments"));
                    }
                });
            }
            "$expand" => {
                if entity != Entity::Message {
                    return Err(not_implemented(req, "$expand on this resource"));
                }
                for item in split_top_level(v) {
                    let item = item.trim();
                    if item.eq_ignore_ascii_case("attachments") {
                        q.expand_attachments = true;
                        continue;
                    }
                    let Some(inner) = item
                        .strip_prefix("singleValueExtendedProperties(")
                        .and_then(|s| s.strip_suffix(')'))
                    else {
                        return Err(not_implemented(req, &format!("$expand={item}")));
                    };
                    let filter = inner
                        .trim()
                        .strip_prefix("$filter=")
                        .ok_or_else(|| not_implemented(req, &format!("$expand={item}")))?;
                    q.expand_ext = Some(expand_ext_ids(req, filter)?);
                }
            }
            "$orderby" => {
                if entity != Entity::Message {
                    return Err(not_implemented(req, "$orderby on this resource"));
                }
                let mut parts = v.split_whitespace();
                let field = match parts.next().map(str::to_ascii_lowercase).as_deref() {
                    Some("receiveddatetime") => OrderField::Received,
                    Some("sentdatetime") => OrderField::Sent,
                    Some("createddatetime") => OrderField::Created,
                    Some("lastmodifieddatetime") => OrderField::Modified,
                    _ => return Err(not_implemented(req, &format!("$orderby={v}"))),
                };
                let desc = match parts.next().map(str::to_ascii_lowercase).as_deref() {
                    None | Some("asc") => false,
                    Some("desc") => true,
                    Some(_) => return Err(bad_query(req, &format!("Invalid $orderby '{v}'."))),
                };
                q.order = Some((field, desc));
            }
            "$count" | "$search" | "$format" | "$skiptoken" | "$deltatoken" => {
                return Err(not_implemented(req, k));
            }
            "includeHiddenFolders" => {
                q.include_hidden = match v.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(bad_query(req, "includeHiddenFolders must be true or false."));
                    }
                };
            }
            other if other.starts_with('$') => {
                return Err(bad_query(
                    req,
                    &format!("The query specified in the URI is not valid. Query option '{other}' is not supported."),
                ));
            }
            // Non-OData parameters are ignored, as Graph ignores unknown ones.
            _ => {}
        }
    }
    Ok(q)
}

/// Graph's date-time format (UTC, whole seconds).
pub fn fmt_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Single-value extended property types.
const PROP_TYPES: &[&str] = &[
    "Binary",
    "Boolean",
    "CLSID",
    "Currency",
    "Double",
    "Float",
    "Integer",
    "Long",
    "Object",
    "Short",
    "SystemTime",
    "String",
];

/// Normalises an extended property id the way Graph echoes it:
/// `"Integer 0x0E07"` → `"Integer 0xe07"`; named properties keep their form
/// with the type name canonicalised. `None` when the id is not valid.
pub fn normalize_prop_id(id: &str) -> Option<String> {
    let id = id.trim();
    let (ty, rest) = id.split_once(char::is_whitespace)?;
    let ty = PROP_TYPES.iter().find(|t| t.eq_ignore_ascii_case(ty))?;
    let rest = rest.trim();
    if let Some(hex) = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
        let n = u32::from_str_radix(hex, 16).ok()?;
        if hex.is_empty() || n > 0xffff {
            return None;
        }
        return Some(format!("{ty} 0x{n:x}"));
    }
    // Named: "{guid} Name X" or "{guid} Id 0x8005".
    let (guid, tail) = rest.split_once(char::is_whitespace)?;
    let g = guid.strip_prefix('{')?.strip_suffix('}')?;
    let groups: Vec<&str> = g.split('-').collect();
    let ok_guid = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()));
    if !ok_guid {
        return None;
    }
    let (kind, value) = tail.trim().split_once(char::is_whitespace)?;
    let value = value.trim();
    if kind.eq_ignore_ascii_case("name") && !value.is_empty() {
        Some(format!("{ty} {{{}}} Name {value}", g.to_ascii_lowercase()))
    } else if kind.eq_ignore_ascii_case("id") {
        let hex = value.strip_prefix("0x").or_else(|| value.strip_prefix("0X"))?;
        let n = u32::from_str_radix(hex, 16).ok()?;
        Some(format!("{ty} {{{}}} Id 0x{n:x}", g.to_ascii_lowercase()))
    } else {
        None
    }
}

pub fn recipient_json(r: &Recipient) -> Value {
    // Graph fills a missing display name with the address.
    json!({"emailAddress": {"name": r.name.clone().unwrap_or_else(|| r.address.clone()), "address": r.address}})
}

fn recipients_json(list: &[Recipient]) -> Value {
    Value::Array(list.iter().map(recipient_json).collect())
}

/// Plain-text preview of a body (Graph's bodyPreview: up to 255 characters).
fn preview(body_type: &str, body: &str) -> String {
    let text = if body_type == "html" {
        let mut out = String::new();
        let mut in_tag = false;
        for c in body.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                _ if !in_tag => out.push(c),
                _ => {}
            }
        }
        out
    } else {
        body.to_string()
    };
    let collapsed: Vec<&str> = text.split_whitespace().collect();
    collapsed.join(" ").chars().take(255).collect()
}

/// PR_MESSAGE_FLAGS as Exchange would report it for the item's state.
pub fn message_flags(m: &Message) -> u32 {
    let mut f = 0;
    if m.is_read {
        f |= 0x01;
    }
    if m.is_draft {
        f |= 0x08;
    }
    if m.attachments.iter().any(|a| !a.is_inline) {
        f |= 0x10;
    }
    f
}

/// The full message resource; `$select` and `$expand` applied when given.
pub fn message_json(mb: &Mailbox, m: &Message, base: &str, q: Option<&Query>) -> Value {
    let mut o = Map::new();
    let etag = format!("W/\"{}\"", m.change_key());
    let conv_index = {
        let mut raw = vec![1u8];
        raw.extend_from_slice(&Sha256::digest(m.conversation_id.as_bytes())[..21]);
        STANDARD.encode(raw)
    };
    let selected = |p: &str| match q.and_then(|q| q.select.as_ref()) {
        Some(sel) => p == "id" || sel.contains(&p),
        None => MESSAGE_PROPS[..MESSAGE_DEFAULT].contains(&p),
    };
    o.insert("@odata.etag".into(), json!(etag));
    for p in MESSAGE_PROPS {
        if !selected(p) {
            continue;
        }
        let v = match *p {
            "id" => json!(m.id),
            "createdDateTime" => json!(fmt_time(&m.created)),
            "lastModifiedDateTime" => json!(fmt_time(&m.last_modified)),
            "changeKey" => json!(m.change_key()),
            "categories" => json!(m.categories),
            "receivedDateTime" => json!(fmt_time(&m.received)),
            "sentDateTime" => m.sent.map(|t| json!(fmt_time(&t))).unwrap_or(Value::Null),
            "hasAttachments" => json!(m.attachments.iter().any(|a| !a.is_inline)),
            "internetMessageId" => json!(m.internet_message_id),
            "subject" => json!(m.subject),
            "bodyPreview" => json!(preview(&m.body_type, &m.body)),
            "importance" => json!(m.importance),
            "parentFolderId" => json!(m.folder_id),
            "conversationId" => json!(m.conversation_id),
            "conversationIndex" => json!(conv_index),
            "isDeliveryReceiptRequested" => json!(m.delivery_receipt),
            "isReadReceiptRequested" => json!(m.read_receipt),
            "isRead" => json!(m.is_read),
            "isDraft" => json!(m.is_draft),
            "webLink" => json!(format!(
                "{base}/owa/?ItemID={}&exvsurl=1&viewmodel=ReadMessageItem",
                utf8_percent_encode(&m.id, QUERY_VALUE)
            )),
            "inferenceClassification" => json!(m.inference),
            "body" | "uniqueBody" => json!({"contentType": m.body_type, "content": m.body}),
            "sender" => m.sender.as_ref().map(recipient_json).unwrap_or(Value::Null),
            "from" => m.from.as_ref().map(recipient_json).unwrap_or(Value::Null),
            "toRecipients" => recipients_json(&m.to),
            "ccRecipients" => recipients_json(&m.cc),
            "bccRecipients" => recipients_json(&m.bcc),
            "replyTo" => recipients_json(&m.reply_to),
            "flag" => Value::Object(m.flag.clone()),
            "internetMessageHeaders" => {
                Value::Array(m.headers.iter().map(|(n, v)| json!({"name": n, "value": v})).collect())
            }
            _ => continue,
        };
        o.insert((*p).to_string(), v);
    }
    if let Some(ids) = q.and_then(|q| q.expand_ext.as_ref()) {
        let mut props = Vec::new();
        for id in ids {
            // PR_MESSAGE_FLAGS and the two dates reflect the item's state, as
            // Exchange computes them, rather than what a client once sent.
            let value = match id.as_str() {
                "Integer 0xe07" => Some(message_flags(m).to_string()),
                "SystemTime 0xe06" => Some(fmt_time(&m.received)),
                "SystemTime 0x39" => m.sent.map(|t| fmt_time(&t)),
                // PR_MESSAGE_SIZE: Exchange's own size of the item.
                "Integer 0xe08" => Some(m.size().to_string()),
                _ => m.ext_prop(id).map(str::to_string),
            };
            if let Some(v) = value {
                props.push(json!({"id": id, "value": v}));
            }
        }
        o.insert("singleValueExtendedProperties".into(), Value::Array(props));
    }
    if q.is_some_and(|q| q.expand_attachments) {
        o.insert(
            "attachments".into(),
            Value::Array(m.attachments.iter().map(|a| attachment_json(a, None)).collect()),
        );
    }
    let _ = mb;
    Value::Object(o)
}

pub fn folder_json(mb: &Mailbox, f: &Folder, q: Option<&Query>) -> Value {
    let mut o = Map::new();
    let selected = |p: &str| match q.and_then(|q| q.select.as_ref()) {
        Some(sel) => p == "id" || sel.contains(&p),
        None => true,
    };
    for p in FOLDER_PROPS {
        if !selected(p) {
            continue;
        }
        let v = match *p {
            "id" => json!(f.id),
            "displayName" => json!(f.display_name),
            "parentFolderId" => json!(f.parent_id),
            "childFolderCount" => json!(f.children.len()),
            "unreadItemCount" => json!(mb.unread_count(f)),
            "totalItemCount" => json!(f.messages.len()),
            "sizeInBytes" => json!(mb.folder_size(f)),
            "isHidden" => json!(f.is_hidden),
            _ => continue,
        };
        o.insert((*p).to_string(), v);
    }
    Value::Object(o)
}

pub fn attachment_json(a: &Attachment, q: Option<&Query>) -> Value {
    let mut o = Map::new();
    let selected = |p: &str| match q.and_then(|q| q.select.as_ref()) {
        Some(sel) => p == "id" || sel.contains(&p),
        None => true,
    };
    match &a.content {
        AttachmentContent::File {
            content_type,
            content_id,
            bytes,
        } => {
            o.insert("@odata.type".into(), json!("#microsoft.graph.fileAttachment"));
            o.insert("@odata.mediaContentType".into(), json!(content_type));
            for p in ATTACHMENT_PROPS {
                if !selected(p) {
                    continue;
                }
                let v = match *p {
                    "id" => json!(a.id),
                    "lastModifiedDateTime" => json!(fmt_time(&a.last_modified)),
                    "name" => json!(a.name),
                    "contentType" => json!(content_type),
                    "size" => json!(a.size()),
                    "isInline" => json!(a.is_inline),
                    "contentId" => json!(content_id),
                    "contentLocation" => Value::Null,
                    "contentBytes" => json!(STANDARD.encode(bytes)),
                    _ => continue,
                };
                o.insert((*p).to_string(), v);
            }
        }
        AttachmentContent::Item { .. } => {
            o.insert("@odata.type".into(), json!("#microsoft.graph.itemAttachment"));
            for p in ["id", "lastModifiedDateTime", "name", "contentType", "size", "isInline"] {
                if !selected(p) {
                    continue;
                }
                let v = match p {
                    "id" => json!(a.id),
                    "lastModifiedDateTime" => json!(fmt_time(&a.last_modified)),
                    "name" => json!(a.name),
                    "contentType" => Value::Null,
                    "size" => json!(a.size()),
                    _ => json!(a.is_inline),
                };
                o.insert(p.to_string(), v);
            }
        }
    }
    Value::Object(o)
}

/// Characters escaped in query values of generated links.
pub const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'\'')
    .add(b'+')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'/')
    .add(b'@');

/// The `@odata.nextLink` for the page after `next_skip`: the same URL with
/// `$skip` replaced, absolute, on this server.
pub fn next_link(base: &str, req: &Req, next_skip: usize) -> String {
    let mut parts: Vec<String> = req
        .query
        .iter()
        .filter(|(k, _)| k != "$skip")
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, QUERY_VALUE),
                utf8_percent_encode(v, QUERY_VALUE)
            )
        })
        .collect();
    parts.push(format!("%24skip={next_skip}"));
    let path: Vec<String> = req
        .segments
        .iter()
        .map(|s| utf8_percent_encode(s, QUERY_VALUE).to_string())
        .collect();
    format!("{base}/{}?{}", path.join("/"), parts.join("&"))
}

/// The window of a collection that one page shows: (skip, top).
pub fn window(q: &Query, default_top: usize) -> (usize, usize) {
    (q.skip, q.top.unwrap_or(default_top))
}

/// A page of a collection, as `{"@odata.context", "value", "@odata.nextLink"?}`.
/// `items` are the already-rendered items of the window; `total` is the size
/// of the whole (filtered) collection.
pub fn page(
    base: &str,
    req: &Req,
    context: &str,
    items: Vec<Value>,
    total: usize,
    q: &Query,
    default_top: usize,
) -> Value {
    let (skip, top) = window(q, default_top);
    let mut o = Map::new();
    o.insert("@odata.context".into(), json!(context));
    o.insert("value".into(), Value::Array(items));
    if skip + top < total {
        o.insert("@odata.nextLink".into(), json!(next_link(base, req, skip + top)));
    }
    Value::Object(o)
}
