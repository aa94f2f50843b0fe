//! The emulator's own API under `/_emulator/` (no authentication; the server
//! only listens on loopback). Tests use it to inject faults, read counters
//! and dump mailbox contents to compare with what the product meant to write.
//!
//! - `GET  /_emulator/mailboxes` — summary of every mailbox
//! - `POST /_emulator/mailboxes` — `{"address", "maxReceiveSizeBytes"?}` create or update one
//! - `GET  /_emulator/mailboxes/{user}[?mime=false]` — full dump (folders,
//!   messages and the master category list, `masterCategories`)
//! - `PATCH /_emulator/mailboxes/{user}/messages/{id}` — `{"bodyContent"}`:
//!   replace a stored message's body (and its MIME, if imported) the way
//!   a fault in the service or a user's edit would, which Graph itself
//!   refuses on a sent item; tests plant damage for `cutover verify` to find
//! - `GET  /_emulator/mailboxes/{user}/pim[?start=…&end=…]` — contact
//!   folders, contacts, calendars and events, times in UTC; with a window
//!   (RFC 3339) each event also lists its instances in it
//! - `GET|POST /_emulator/permissions` — `{"mailboxSettings": "none"|"read"|"read-write"}`:
//!   the MailboxSettings permission the app holds (`--mailbox-settings`), as
//!   an admin granting or withdrawing it between runs would change it
//! - `GET  /_emulator/stats` — counters, Retry-After violations and the limits in force
//! - `POST /_emulator/reset` — forget mailboxes, stats, throttles, faults, uploads,
//!   permission changes (tokens stay valid)
//! - `GET|POST|DELETE /_emulator/faults` — fault configuration

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::App;
use crate::faults::FaultConfig;
use crate::http::{Req, Resp};
use crate::odata::{fmt_time, recipient_json};
use crate::store::{AttachmentContent, Mailbox, Message};

fn err(status: u16, msg: &str) -> Resp {
    Resp::plain_json(status, &json!({"error": msg}))
}

pub fn handle(app: &Arc<App>, req: &Req) -> Resp {
    let segs: Vec<&str> = req.segments[1..].iter().map(String::as_str).collect();
    match (&req.method, segs.as_slice()) {
        (&Method::GET, ["mailboxes"]) => list_mailboxes(app),
        (&Method::POST, ["mailboxes"]) => create_mailbox(app, req),
        (&Method::GET, ["mailboxes", user]) => dump(app, req, user),
        (&Method::GET, ["mailboxes", user, "pim"]) => dump_pim(app, req, user),
        (&Method::PATCH, ["mailboxes", user, "messages", id]) => tamper(app, req, user, id),
        (&Method::GET, ["permissions"]) => permissions(app),
        (&Method::POST, ["permissions"]) => set_permissions(app, req),
        (&Method::GET, ["stats"]) => stats(app),
        (&Method::POST, ["reset"]) => reset(app),
        (&Method::GET, ["faults"]) => faults_json(app),
        (&Method::POST, ["faults"]) => set_faults(app, req),
        (&Method::DELETE, ["faults"]) => {
            *app.faults.lock().unwrap() = FaultConfig::default();
            faults_json(app)
        }
        _ => err(404, "unknown emulator admin path"),
    }
}

/// The counters, with the limits they were measured against: each window
/// in real (scaled) seconds, so a benchmark can tell what share of the
/// per-mailbox budget a client sustained without knowing how it was started.
fn stats(app: &App) -> Resp {
    let mut v = app.stats.lock().unwrap().to_json();
    let cfg = &app.cfg;
    v["limits"] = json!({
        "time_scale": cfg.time_scale,
        "max_concurrency": cfg.max_concurrency,
        "rate_limit_requests": cfg.rate_limit_requests,
        "rate_window_secs": cfg.rate_window_secs,
        "rate_window_real_secs": cfg.scaled(cfg.rate_window_secs as f64).as_secs_f64(),
        "upload_limit_bytes": cfg.upload_limit_bytes,
        "upload_window_secs": cfg.upload_window_secs,
        "upload_window_real_secs": cfg.scaled(cfg.upload_window_secs as f64).as_secs_f64(),
    });
    Resp::plain_json(200, &v)
}

fn permissions(app: &App) -> Resp {
    let p = *app.mailbox_settings.lock().unwrap();
    Resp::plain_json(200, &json!({"mailboxSettings": crate::categories::permission_name(p)}))
}

fn set_permissions(app: &App, req: &Req) -> Resp {
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return err(400, &format!("invalid JSON: {e}")),
    };
    if let Some(v) = body.get("mailboxSettings") {
        match v.as_str().and_then(crate::categories::permission_named) {
            Some(p) => *app.mailbox_settings.lock().unwrap() = p,
            None => return err(400, "mailboxSettings must be \"none\", \"read\" or \"read-write\""),
        }
    }
    permissions(app)
}

fn faults_json(app: &App) -> Resp {
    let f = app.faults.lock().unwrap().clone();
    Resp::plain_json(200, &serde_json::to_value(f).unwrap_or(Value::Null))
}

fn set_faults(app: &App, req: &Req) -> Resp {
    let cfg: FaultConfig = match serde_json::from_slice(&req.body) {
        Ok(c) => c,
        Err(e) => return err(400, &format!("invalid fault configuration: {e}")),
    };
    if let Err(e) = cfg.validate() {
        return err(400, &e);
    }
    if cfg.expire_tokens_now {
        app.tokens.lock().unwrap().expire_all();
    }
    *app.faults.lock().unwrap() = cfg;
    faults_json(app)
}

fn reset(app: &App) -> Resp {
    {
        // Lock order everywhere: uploads, store, rng, then the small ones.
        let mut store = app.store.lock().unwrap();
        let mut rng = app.rng.lock().unwrap();
        store.reset(app.cfg.mailboxes.as_deref(), &mut rng);
    }
    app.uploads.lock().unwrap().clear();
    app.throttle.lock().unwrap().reset();
    *app.stats.lock().unwrap() = Default::default();
    *app.faults.lock().unwrap() = FaultConfig::default();
    *app.mailbox_settings.lock().unwrap() = app.cfg.mailbox_settings;
    Resp::plain_json(200, &json!({"reset": true}))
}

fn summary(mb: &Mailbox) -> Value {
    json!({
        "id": mb.id,
        "address": mb.address,
        "maxReceiveSizeBytes": mb.max_receive_size,
        "folders": mb.folders.len() - 1,
        "messages": mb.messages.len(),
    })
}

fn list_mailboxes(app: &App) -> Resp {
    let store = app.store.lock().unwrap();
    let list: Vec<Value> = store.mailboxes.iter().map(summary).collect();
    Resp::plain_json(200, &json!({ "mailboxes": list }))
}

fn create_mailbox(app: &App, req: &Req) -> Resp {
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return err(400, &format!("invalid JSON: {e}")),
    };
    let Some(address) = body.get("address").and_then(Value::as_str) else {
        return err(400, "address is required");
    };
    if !address.contains('@') {
        return err(400, "address must be an email address");
    }
    let max = body.get("maxReceiveSizeBytes").and_then(Value::as_u64);
    let mut store = app.store.lock().unwrap();
    let mut rng = app.rng.lock().unwrap();
    let i = store.provision(address, max, &mut rng);
    Resp::plain_json(201, &summary(&store.mailboxes[i]))
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn opt_recipient(r: &Option<crate::store::Recipient>) -> Value {
    r.as_ref().map(recipient_json).unwrap_or(Value::Null)
}

fn message_dump(mb: &Mailbox, m: &Message, with_mime: bool) -> Value {
    let list = |l: &[crate::store::Recipient]| Value::Array(l.iter().map(recipient_json).collect());
    let attachments: Vec<Value> = m
        .attachments
        .iter()
        .map(|a| {
            let (kind, ct, cid, sha) = match &a.content {
                AttachmentContent::File {
                    content_type,
                    content_id,
                    bytes,
                } => ("file", json!(content_type), json!(content_id), sha256_hex(bytes)),
                AttachmentContent::Item { item, raw } => (
                    "item",
                    Value::Null,
                    Value::Null,
                    match raw {
                        Some(r) => sha256_hex(r),
                        None => sha256_hex(&serde_json::to_vec(item).unwrap_or_default()),
                    },
                ),
            };
            json!({
                "id": a.id,
                "type": kind,
                "name": a.name,
                "size": a.size(),
                "contentType": ct,
                "isInline": a.is_inline,
                "contentId": cid,
                "sha256": sha,
                "createdVia": a.created_via,
                "item": match &a.content { AttachmentContent::Item { item, .. } => item.clone(), _ => Value::Null },
            })
        })
        .collect();
    json!({
        "id": m.id,
        "folderId": m.folder_id,
        "folderPath": mb.folder_path(&m.folder_id),
        "createdVia": m.created_via.as_str(),
        "isDraft": m.is_draft,
        "isRead": m.is_read,
        "flag": Value::Object(m.flag.clone()),
        "categories": m.categories,
        "importance": m.importance,
        "subject": m.subject,
        "from": opt_recipient(&m.from),
        "sender": opt_recipient(&m.sender),
        "toRecipients": list(&m.to),
        "ccRecipients": list(&m.cc),
        "bccRecipients": list(&m.bcc),
        "replyTo": list(&m.reply_to),
        "body": {"contentType": m.body_type, "content": m.body},
        "internetMessageId": m.internet_message_id,
        "receivedDateTime": fmt_time(&m.received),
        "sentDateTime": m.sent.map(|t| fmt_time(&t)),
        "createdDateTime": fmt_time(&m.created),
        "lastModifiedDateTime": fmt_time(&m.last_modified),
        "internetMessageHeaders": m.headers.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
        "singleValueExtendedProperties": m.ext_props.iter().map(|(k, v)| json!({"id": k, "value": v})).collect::<Vec<_>>(),
        "multiValueExtendedProperties": m.multi_ext_props,
        "size": m.size(),
        "mimeSha256": m.mime.as_ref().map(|b| sha256_hex(b)),
        "mimeBase64": if with_mime { m.mime.as_ref().map(|b| json!(STANDARD.encode(b))).unwrap_or(Value::Null) } else { Value::Null },
        "attachments": attachments,
    })
}

fn tamper(app: &App, req: &Req, user: &str, id: &str) -> Resp {
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return err(400, &format!("invalid JSON: {e}")),
    };
    let Some(content) = body.get("bodyContent").and_then(Value::as_str) else {
        return err(400, "bodyContent is required");
    };
    let mut store = app.store.lock().unwrap();
    let Some(i) = store.find(user) else {
        return err(404, &format!("no mailbox '{user}'"));
    };
    let Some(m) = store.mailboxes[i].messages.get_mut(id) else {
        return err(404, &format!("no message '{id}'"));
    };
    if let Some(mime) = &m.mime {
        // The imported MIME's body, replaced after its header block.
        let end = mime
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(mime.len(), |p| p + 4);
        let mut changed = mime[..end].to_vec();
        changed.extend_from_slice(content.as_bytes());
        m.mime = Some(changed.into());
    }
    m.body = content.to_owned();
    Resp::plain_json(200, &json!({ "id": id, "bodyLength": content.len() }))
}

fn dump(app: &App, req: &Req, user: &str) -> Resp {
    let with_mime = req.query_param("mime") != Some("false");
    let store = app.store.lock().unwrap();
    let Some(i) = store.find(user) else {
        return err(404, &format!("no mailbox '{user}'"));
    };
    let mb = &store.mailboxes[i];
    let mut folders: Vec<Value> = mb
        .folders
        .values()
        .filter(|f| f.id != mb.top_id)
        .map(|f| {
            json!({
                "id": f.id,
                "displayName": f.display_name,
                "path": mb.folder_path(&f.id),
                "wellKnownName": f.well_known,
                "parentFolderId": f.parent_id,
                "isHidden": f.is_hidden,
                "childFolderCount": f.children.len(),
                "totalItemCount": f.messages.len(),
                "unreadItemCount": mb.unread_count(f),
            })
        })
        .collect();
    folders.sort_by(|a, b| a["path"].to_string().cmp(&b["path"].to_string()));
    // Paths computed once per folder, not per comparison.
    let paths: std::collections::HashMap<&str, Vec<String>> =
        mb.folders.keys().map(|id| (id.as_str(), mb.folder_path(id))).collect();
    let mut msgs: Vec<&Message> = mb.messages.values().collect();
    msgs.sort_by(|a, b| {
        paths[a.folder_id.as_str()]
            .cmp(&paths[b.folder_id.as_str()])
            .then(a.created.cmp(&b.created))
            .then(a.id.cmp(&b.id))
    });
    let messages: Vec<Value> = msgs.iter().map(|m| message_dump(mb, m, with_mime)).collect();
    Resp::plain_json(
        200,
        &json!({
            "id": mb.id,
            "address": mb.address,
            "maxReceiveSizeBytes": mb.max_receive_size,
            "folders": folders,
            "messages": messages,
            "masterCategories": crate::categories::dump(&mb.categories),
        }),
    )
}

fn dump_pim(app: &App, req: &Req, user: &str) -> Resp {
    let time = |name: &str| {
        req.query_param(name)
            .map(|v| chrono::DateTime::parse_from_rfc3339(v).map(|t| t.with_timezone(&chrono::Utc)))
    };
    let window = match (time("start"), time("end")) {
        (None, None) => None,
        (Some(Ok(s)), Some(Ok(e))) => Some((s, e)),
        _ => return err(400, "start and end must both be RFC 3339 date-times"),
    };
    let store = app.store.lock().unwrap();
    let Some(i) = store.find(user) else {
        return err(404, &format!("no mailbox '{user}'"));
    };
    let mb = &store.mailboxes[i];
    let (contact_folders, contacts) = crate::pim::dump_contacts(mb);
    let (calendars, events) = crate::calendar::dump_calendars(mb, window);
    Resp::plain_json(
        200,
        &json!({
            "address": mb.address,
            "contactFolders": contact_folders,
            "contacts": contacts,
            "calendars": calendars,
            "events": events,
        }),
    )
}
