//! The Graph request pipeline: authentication, routing, mailbox lookup,
//! throttling, fault injection, then the resource handlers.
//!
//! The order mirrors what a client observes from Graph: a bad token is a 401
//! whatever the path; throttling is decided per (app, mailbox) before any
//! work; injected faults look like service failures of an admitted request.
//! `$batch` re-enters this pipeline once per inner request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hyper::Method;

use crate::faults::Fault;
use crate::http::{Req, Resp, graph_error, method_not_allowed, not_implemented, stamp, unknown_segment};
use crate::stats::Event;
use crate::throttle::Key;
use crate::{App, Outcome, attachments, auth, batch, categories, folders, messages, pim};

/// A folder addressed by `mailFolders/{a}/childFolders/{b}/…`.
pub type Chain = Vec<String>;

/// The resource a Graph path addresses under `/users/{user}`.
#[derive(Debug, Clone)]
pub enum Target {
    User,
    /// `mailFolders` (None: children of msgfolderroot) or `…/childFolders`.
    FolderCollection(Option<Chain>),
    Folder(Chain),
    Messages(Option<Chain>),
    ImportMime(Chain),
    /// `mailFolders/{a}[/childFolders/{b}…]/move`.
    FolderMove(Chain),
    Message(Option<Chain>, String),
    /// `…/messages/{id}/move`.
    MessageMove(Option<Chain>, String),
    MessageValue(Option<Chain>, String),
    Attachments(Option<Chain>, String),
    Attachment(Option<Chain>, String, String),
    AttachmentValue(Option<Chain>, String, String),
    UploadSession(Option<Chain>, String),
    /// Contacts and calendars (see `pim`).
    Pim(pim::PimTarget),
    /// `outlook/masterCategories[/{id}]` (see `categories`).
    Categories(categories::CategoryTarget),
}

enum ParseErr {
    Unknown(String),
    NotImplemented(String),
}

/// Graph path segments this emulator knows but does not implement.
const UNIMPLEMENTED: &[&str] = &[
    "move",
    "copy",
    "send",
    "reply",
    "replyAll",
    "forward",
    "createReply",
    "createReplyAll",
    "createForward",
    "delta",
    "extensions",
    "messageRules",
    "multiValueExtendedProperties",
    "singleValueExtendedProperties",
    "mailboxSettings",
    "sendMail",
    "inferenceClassification",
    "permanentDelete",
    // Calendar features outside what cutover writes.
    "accept",
    "decline",
    "tentativelyAccept",
    "dismissReminder",
    "snoozeReminder",
    "calendarGroups",
    "calendarPermissions",
    "getSchedule",
    "findMeetingTimes",
    "reminderView",
    "mentions",
];

fn is(seg: &str, name: &str) -> bool {
    seg.eq_ignore_ascii_case(name)
}

fn unknown_or_unimplemented(seg: &str) -> ParseErr {
    if UNIMPLEMENTED.iter().any(|u| is(seg, u)) {
        ParseErr::NotImplemented(seg.to_string())
    } else {
        ParseErr::Unknown(seg.to_string())
    }
}

fn parse_target(rest: &[String], beta: bool) -> Result<Target, ParseErr> {
    let Some(first) = rest.first() else {
        return Ok(Target::User);
    };
    if is(first, "messages") {
        return parse_messages(None, &rest[1..]);
    }
    if is(first, "outlook") {
        return categories::parse(&rest[1..])
            .map(Target::Categories)
            .map_err(ParseErr::NotImplemented);
    }
    if pim::owns(first) {
        return pim::parse(rest)
            .map(Target::Pim)
            .map_err(|seg| unknown_or_unimplemented(&seg));
    }
    if !is(first, "mailFolders") {
        return Err(unknown_or_unimplemented(first));
    }
    if rest.len() == 1 {
        return Ok(Target::FolderCollection(None));
    }
    if is(&rest[1], "delta") {
        return Err(ParseErr::NotImplemented("delta".into()));
    }
    let mut chain = vec![rest[1].clone()];
    let mut i = 2;
    loop {
        if i == rest.len() {
            return Ok(Target::Folder(chain));
        }
        let seg = &rest[i];
        if is(seg, "childFolders") {
            if i + 1 == rest.len() {
                return Ok(Target::FolderCollection(Some(chain)));
            }
            chain.push(rest[i + 1].clone());
            i += 2;
        } else if is(seg, "messages") {
            return parse_messages(Some(chain), &rest[i + 1..]);
        } else if is(seg, "importMime") && beta && i + 1 == rest.len() {
            return Ok(Target::ImportMime(chain));
        } else if is(seg, "move") && i + 1 == rest.len() {
            return Ok(Target::FolderMove(chain));
        } else {
            return Err(unknown_or_unimplemented(seg));
        }
    }
}

fn parse_messages(folder: Option<Chain>, rest: &[String]) -> Result<Target, ParseErr> {
    let Some(id) = rest.first() else {
        return Ok(Target::Messages(folder));
    };
    if is(id, "delta") {
        return Err(ParseErr::NotImplemented("delta".into()));
    }
    let id = id.clone();
    match rest.len() {
        1 => Ok(Target::Message(folder, id)),
        2 if rest[1] == "$value" => Ok(Target::MessageValue(folder, id)),
        2 if is(&rest[1], "move") => Ok(Target::MessageMove(folder, id)),
        2 if is(&rest[1], "attachments") => Ok(Target::Attachments(folder, id)),
        3 if is(&rest[1], "attachments") && is(&rest[2], "createUploadSession") => {
            Ok(Target::UploadSession(folder, id))
        }
        3 if is(&rest[1], "attachments") => Ok(Target::Attachment(folder, id, rest[2].clone())),
        4 if is(&rest[1], "attachments") && rest[3] == "$value" => {
            Ok(Target::AttachmentValue(folder, id, rest[2].clone()))
        }
        _ => {
            let seg = if is(&rest[1], "attachments") {
                rest.get(3).unwrap_or(&rest[1])
            } else {
                &rest[1]
            };
            Err(unknown_or_unimplemented(seg))
        }
    }
}

/// Stats label of a request.
fn kind(target: &Target, method: &Method) -> &'static str {
    let m = method.as_str();
    match (target, m) {
        (Target::User, _) => "user.get",
        (Target::FolderCollection(None), "POST") => "folders.create",
        (Target::FolderCollection(None), _) => "folders.list",
        (Target::FolderCollection(Some(_)), "POST") => "childFolders.create",
        (Target::FolderCollection(Some(_)), _) => "childFolders.list",
        (Target::Folder(_), "PATCH") => "folders.patch",
        (Target::Folder(_), _) => "folders.get",
        (Target::FolderMove(_), _) => "folders.move",
        (Target::MessageMove(..), _) => "messages.move",
        (Target::Messages(_), "POST") => "messages.create",
        (Target::Messages(_), _) => "messages.list",
        (Target::ImportMime(_), _) => "messages.importMime",
        (Target::Message(..), "PATCH") => "messages.patch",
        (Target::Message(..), "DELETE") => "messages.delete",
        (Target::Message(..), _) => "messages.get",
        (Target::MessageValue(..), _) => "messages.value",
        (Target::Attachments(..), "POST") => "attachments.create",
        (Target::Attachments(..), _) => "attachments.list",
        (Target::Attachment(..), _) | (Target::AttachmentValue(..), _) => "attachments.get",
        (Target::UploadSession(..), _) => "attachments.createUploadSession",
        (Target::Pim(t), _) => pim::kind(t, method),
        (Target::Categories(t), _) => categories::kind(t, method),
    }
}

/// Everything a handler needs about the request beyond the request itself.
pub struct Ctx {
    pub mailbox: usize,
    /// Id of that mailbox, to detect a reset in the meantime.
    pub mailbox_id: String,
    /// "v1.0" or "beta".
    pub version: String,
    /// The `{user}` segment as the client wrote it (for `@odata.context`).
    pub user: String,
    pub app_id: String,
}

/// 404 for a mailbox removed by `POST /_emulator/reset` while a request was in flight.
pub fn mailbox_gone(req: &Req) -> Resp {
    graph_error(
        req,
        404,
        "ErrorInvalidUser",
        "The requested user is invalid (the emulator was reset).",
    )
}

/// Holds a concurrency slot until dropped.
struct Slot {
    app: Arc<App>,
    key: Key,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.app.throttle.lock().unwrap().release(&self.key);
        self.app.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Handles one `/v1.0` or `/beta` request (or one request inside `$batch`).
///
/// The work runs in a task of its own, so a request the client gave up on
/// (timed out, closed its connection) is still carried out, as a real
/// server would.
pub fn handle(app: Arc<App>, req: Req, in_batch: bool) -> Pin<Box<dyn Future<Output = Outcome> + Send>> {
    let work = tokio::spawn(async move {
        let mut ev = Event {
            method: req.method.to_string(),
            kind: "other",
            ..Event::default()
        };
        let mut outcome = pipeline(&app, &req, in_batch, &mut ev).await;
        if ev.fault.as_deref() == Some(RESET_AFTER) {
            // Processed, but the client never hears the answer.
            outcome = Outcome::Reset;
        }
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
    Box::pin(async move { work.await.unwrap_or(Outcome::Reset) })
}

/// Error body of an injected failure.
pub fn fault_response(app: &App, req: &Req, status: u16) -> Resp {
    let (code, message) = match status {
        429 => ("ApplicationThrottled", "Application is over its RequestRate limit."),
        500 => ("InternalServerError", "An internal server error occurred."),
        502 => ("BadGateway", "The gateway received an invalid response."),
        503 => ("ServiceNotAvailable", "The service is temporarily unavailable."),
        504 => ("GatewayTimeout", "The gateway did not receive a timely response."),
        _ => ("UnknownError", "An injected failure."),
    };
    let resp = graph_error(req, status, code, message);
    if matches!(status, 429 | 503) {
        let secs = app
            .faults
            .lock()
            .unwrap()
            .retry_after_secs
            .unwrap_or(DEFAULT_FAULT_RETRY_AFTER);
        resp.header("retry-after", &app.cfg.reported_secs(secs as f64).to_string())
    } else {
        resp
    }
}

/// The fault label of a request processed and then cut off.
pub const RESET_AFTER: &str = "reset_after";

/// Retry-After (emulated seconds) on injected 503/429 unless configured.
const DEFAULT_FAULT_RETRY_AFTER: u64 = 2;

/// Applies the configured latency, then draws the fault for a request
/// (matched against its `METHOD /path`). `allow_reset` is false inside
/// `$batch`. Graph requests and upload-URL PUTs both come through here.
pub async fn draw_fault(app: &App, req: &Req, allow_reset: bool) -> Fault {
    let (latency, fault) = {
        let mut rng = app.rng.lock().unwrap();
        let mut faults = app.faults.lock().unwrap();
        let request = || format!("{} /{}", req.method, req.segments.join("/"));
        (faults.latency(&mut rng), faults.decide(&mut rng, allow_reset, request))
    };
    if let Some(d) = latency {
        tokio::time::sleep(d).await;
    }
    fault
}

/// Applies latency and draws a fault. Returns a response (or reset) when the
/// request fails here.
async fn inject(app: &App, req: &Req, in_batch: bool, ev: &mut Event) -> Option<Outcome> {
    match draw_fault(app, req, !in_batch).await {
        Fault::None => None,
        Fault::Reset => {
            ev.fault = Some("reset".into());
            Some(Outcome::Reset)
        }
        Fault::ResetAfter => {
            ev.fault = Some(RESET_AFTER.into());
            None
        }
        Fault::Status(s) => {
            ev.fault = Some(s.to_string());
            Some(Outcome::Resp(fault_response(app, req, s)))
        }
        Fault::Slow(d) => {
            ev.fault = Some("slow".into());
            tokio::time::sleep(d).await;
            None
        }
    }
}

async fn pipeline(app: &Arc<App>, req: &Req, in_batch: bool, ev: &mut Event) -> Outcome {
    let version = req.segments[0].clone();
    let app_id = match auth::authenticate(app, req) {
        Ok(a) => a,
        Err(r) => {
            ev.kind = "unauthenticated";
            return Outcome::Resp(r);
        }
    };
    let Some(second) = req.segments.get(1) else {
        return Outcome::Resp(graph_error(req, 400, "BadRequest", "Invalid request."));
    };
    if second == "$batch" && req.segments.len() == 2 {
        ev.kind = "batch";
        if in_batch {
            return Outcome::Resp(graph_error(
                req,
                400,
                "BadRequest",
                "Nested batch requests are not supported.",
            ));
        }
        if req.method != Method::POST {
            return Outcome::Resp(method_not_allowed(req));
        }
        if let Some(o) = inject(app, req, in_batch, ev).await {
            return o;
        }
        return Outcome::Resp(batch::run(app.clone(), req, &version).await);
    }
    if is(second, "me") {
        return Outcome::Resp(graph_error(
            req,
            400,
            "BadRequest",
            "/me request is only valid with delegated authentication flow.",
        ));
    }
    if !is(second, "users") {
        return Outcome::Resp(unknown_segment(req, second));
    }
    let Some(user) = req.segments.get(2).cloned() else {
        return Outcome::Resp(not_implemented(req, "listing users"));
    };
    let target = match parse_target(&req.segments[3..], version == "beta") {
        Ok(t) => t,
        Err(ParseErr::Unknown(seg)) => return Outcome::Resp(unknown_segment(req, &seg)),
        Err(ParseErr::NotImplemented(seg)) => {
            return Outcome::Resp(not_implemented(req, &format!("'{seg}'")));
        }
    };
    ev.kind = kind(&target, &req.method);
    let found = {
        let mut store = app.store.lock().unwrap();
        let mut rng = app.rng.lock().unwrap();
        store.lookup(&user, &mut rng).map(|i| {
            let mb = &store.mailboxes[i];
            (i, mb.id.clone(), mb.address.clone())
        })
    };
    let Some((mailbox, mailbox_id, address)) = found else {
        return Outcome::Resp(graph_error(
            req,
            404,
            "ErrorInvalidUser",
            &format!("The requested user '{user}' is invalid."),
        ));
    };
    ev.mailbox = Some(address.clone());

    // Throttling, per (app, mailbox).
    let key: Key = (app_id.clone(), mailbox_id);
    let upload = if matches!(req.method, Method::POST | Method::PATCH | Method::PUT) {
        req.body.len() as u64
    } else {
        0
    };
    let admitted = app.throttle.lock().unwrap().admit(&key, upload, req.arrived);
    let concurrent = match admitted {
        Ok(c) => c,
        Err(t) => {
            if let Some(v) = &t.violation {
                app.stats
                    .lock()
                    .unwrap()
                    .record_violation(&address, &app_id, req.method.as_str(), &req.path, v);
            }
            ev.throttled = Some(t.reason.as_str());
            return Outcome::Resp(
                graph_error(req, 429, "ApplicationThrottled", t.reason.message())
                    .header("retry-after", &t.retry_after_secs.to_string()),
            );
        }
    };
    let global = app.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _slot = Slot {
        app: app.clone(),
        key: key.clone(),
    };
    {
        let mut stats = app.stats.lock().unwrap();
        stats.global_max_in_flight = stats.global_max_in_flight.max(global);
    }
    ev.concurrent = concurrent;
    ev.upload_bytes = upload;

    if let Some(o) = inject(app, req, in_batch, ev).await {
        if let Outcome::Resp(r) = &o
            && let Some(secs) = r
                .headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        {
            app.throttle.lock().unwrap().set_penalty(&key, secs, r.status_u16());
        }
        return o;
    }

    let ctx = Ctx {
        mailbox,
        mailbox_id: key.1.clone(),
        version,
        user,
        app_id,
    };
    Outcome::Resp(dispatch(app, req, &ctx, &target))
}

fn dispatch(app: &Arc<App>, req: &Req, ctx: &Ctx, target: &Target) -> Resp {
    let m = &req.method;
    match target {
        Target::User if *m == Method::GET => folders::get_user(app, req, ctx),
        Target::FolderCollection(chain) if *m == Method::GET => folders::list(app, req, ctx, chain.as_ref()),
        Target::FolderCollection(chain) if *m == Method::POST => folders::create(app, req, ctx, chain.as_ref()),
        Target::Folder(chain) if *m == Method::GET => folders::get(app, req, ctx, chain),
        Target::Folder(chain) if *m == Method::PATCH => folders::update(app, req, ctx, chain),
        Target::Folder(_) if *m == Method::DELETE => not_implemented(req, "deleting mail folders"),
        Target::FolderMove(chain) if *m == Method::POST => folders::move_folder(app, req, ctx, chain),
        Target::MessageMove(chain, id) if *m == Method::POST => {
            messages::move_message(app, req, ctx, chain.as_ref(), id)
        }
        Target::Messages(chain) if *m == Method::GET => messages::list(app, req, ctx, chain.as_ref()),
        Target::Messages(chain) if *m == Method::POST => messages::create(app, req, ctx, chain.as_ref()),
        Target::ImportMime(chain) if *m == Method::POST => messages::import_mime(app, req, ctx, chain),
        Target::Message(chain, id) if *m == Method::GET => messages::get(app, req, ctx, chain.as_ref(), id),
        Target::Message(chain, id) if *m == Method::PATCH => messages::patch(app, req, ctx, chain.as_ref(), id),
        Target::Message(chain, id) if *m == Method::DELETE => messages::delete(app, req, ctx, chain.as_ref(), id),
        Target::MessageValue(chain, id) if *m == Method::GET => messages::value(app, req, ctx, chain.as_ref(), id),
        Target::Attachments(chain, id) if *m == Method::GET => attachments::list(app, req, ctx, chain.as_ref(), id),
        Target::Attachments(chain, id) if *m == Method::POST => attachments::create(app, req, ctx, chain.as_ref(), id),
        Target::Attachment(chain, id, aid) if *m == Method::GET => {
            attachments::get(app, req, ctx, chain.as_ref(), id, aid, false)
        }
        Target::Attachment(chain, id, aid) if *m == Method::DELETE => {
            attachments::delete(app, req, ctx, chain.as_ref(), id, aid)
        }
        Target::AttachmentValue(chain, id, aid) if *m == Method::GET => {
            attachments::get(app, req, ctx, chain.as_ref(), id, aid, true)
        }
        Target::UploadSession(chain, id) if *m == Method::POST => {
            attachments::create_upload_session(app, req, ctx, chain.as_ref(), id)
        }
        Target::Pim(t) => pim::dispatch(app, req, ctx, t),
        Target::Categories(t) => categories::dispatch(app, req, ctx, t),
        _ => method_not_allowed(req),
    }
}
