//! graph-emulator: a local stand-in for Microsoft Graph (Outlook mail) and the
//! Microsoft identity platform token endpoint.
//!
//! Exchange Online cannot be reached from tests, demos or benchmarks, so
//! cutover carries this emulator. It follows Graph's documented contract
//! strictly — it refuses what Graph refuses, throttles as Outlook does and
//! records every request a client sends before a Retry-After has passed — so
//! a product that passes against it does not depend on leniency. It is test
//! support, not part of the migration path: its own package in the
//! workspace, sharing no code with the product, so the shipped `cutover`
//! binary carries no HTTP server.
//!
//! Layout: `config` (CLI), `http` (request/response plumbing), `auth`
//! (tokens), `graph` (pipeline and routing), `folders`, `messages`,
//! `attachments` (incl. upload sessions), `batch`, `odata` (query options
//! and resource JSON), `mime`, `store` (in-memory mailboxes), `throttle`,
//! `faults`, `stats`, `admin` (`/_emulator/*`); contacts and calendars:
//! `pim` (routing, contact folders, contacts), `calendar` (calendars,
//! events, invitations), `recurrence` (time zones, patternedRecurrence);
//! `categories` (Outlook's master category list).
//!
//! # Choices where Graph's documentation is silent
//!
//! Each is also commented where it is implemented.
//!
//! - Time: `--time-scale` multiplies every duration (token lifetime, throttle
//!   windows, Retry-After, upload-session lifetime). Durations on the wire
//!   (`expires_in`, `Retry-After`) are real seconds, rounded up, never below
//!   1, and the penalty enforced is exactly what was announced.
//! - Retry-After: after any response with `Retry-After` for a mailbox (429,
//!   injected 503/429), requests for that app and mailbox before it expires
//!   get 429 with the remaining time and are recorded as violations. Those
//!   arriving within `--violation-grace-ms` of the announcement are recorded
//!   as races instead (they were already on the wire); `$batch` items and
//!   requests that began arriving before the announcement are never counted.
//!   Every request counts against the request rate, throttled ones included.
//!   A concurrency 429 announces `Retry-After: 1`.
//! - Ids look like Exchange's (`AAMk…`). An id this service could not have
//!   issued is `400 ErrorInvalidIdMalformed`; a well-formed unknown one is
//!   `404 ErrorItemNotFound`. An unknown user is `404 ErrorInvalidUser`.
//! - Folders: a new mailbox also has Sync Issues (Conflicts, Local Failures,
//!   Server Failures) and, outside the root, Deletions
//!   (`recoverableitemsdeletions`); `clutter`, `scheduled` and
//!   `searchfolders` answer 404. Lists are in display-name order. `$top` must
//!   be 1..=1000; paging links use `$skip`. Valid OData this emulator does not
//!   implement answers `501 NotImplemented`.
//! - MIME create: requests over 4 MiB are `413 ErrorRequestEntityTooLarge`;
//!   the draft is read, received now, sent at its `Date:`; its `$value` is
//!   re-rendered from properties, not the client's bytes.
//! - importMime: received at the topmost `Received:` header's date, else
//!   `Date:`, else now; unread; no request limit but MaxReceiveSize.
//! - MaxReceiveSize exceeded: `413 ErrorMessageSizeExceeded`.
//! - JSON create: an explicit `isRead` wins over the 0x0E07 read bit;
//!   `internetMessageHeaders` must be `x-` headers and are then ignored;
//!   `$expand` of 0x0E07 / 0x0E06 / 0x0039 reports the item's state.
//! - PATCH of subject, body, recipients, from, sender or internetMessageId on
//!   a non-draft without Mail-Advanced is `403 ErrorAccessDenied` (the
//!   2026-12-31 rule, enforced now); a refused PATCH changes nothing.
//! - Attachments: `POST` over 3 MiB (or over 4 MiB of request) is 413 with a
//!   hint to use an upload session; sessions take 3–150 MiB; attachments on
//!   non-drafts follow `--nondraft-attachments` (default allow). Upload URLs
//!   refuse `Authorization` (401), need `application/octet-stream` (415),
//!   take ranges in order (gap or overlap: 416, so a range sent again
//!   after it was taken is refused too; after the final range the session
//!   is gone: 404), at most 4 MiB each (413), live 2 hours, and are
//!   throttled and faulted (below).
//! - `$batch`: bodies follow OData JSON batch (JSON, text as a string, other
//!   media base64url); dependants of a failed request get 424; 4 items run at
//!   a time; responses are shuffled (seeded).
//! - Faults are drawn after throttling admission: a faulted request used a
//!   slot and counts. Injected 503/429 carry `Retry-After` (2 emulated
//!   seconds unless `retry_after_secs` is set); 500/502/504 do not.
//! - Fault targets: `/v1.0` and `/beta` requests (inside `$batch` no
//!   connection is dropped) and `PUT`s on upload URLs, which `fail_next`'s
//!   `on` matches as `PUT /_upload/{token}`; the random rates and latency
//!   apply to both. Never faulted: the token endpoint, an upload URL's
//!   `DELETE`, `/_emulator`. Fault kinds: `status` answers that error
//!   without processing; `drop: "reset"` drops the connection before
//!   processing; `drop: "reset_after"` processes, then drops it (an upload
//!   range is committed; the final one completes the attachment);
//!   `slow_ms` holds a Graph request that long and then processes it, but
//!   takes an upload range at once and holds only its answer. Either way a
//!   client with a shorter timeout gives up on a request that is carried
//!   out.
//! - `POST /_emulator/reset` keeps issued tokens valid.
//!
//! Contacts and calendars (the same pipeline, throttle, faults and `$batch`
//! as mail, so they spend the same per-mailbox budget):
//!
//! - Contact folders: `/contactFolders` lists and creates children of the
//!   default Contacts folder (user-post-contactfolders); names are unique
//!   among siblings, case-insensitively (409 ErrorFolderExists, as for mail
//!   folders); `contactFolders/{a}/childFolders/{b}/…` addresses folder b.
//!   Lists are in creation order, 10 a page unless `$top` says otherwise.
//! - Contacts: unknown properties and wrong JSON types are 400
//!   RequestBodyRead. More than 3 `emailAddresses`, 2 `businessPhones`, 2
//!   `homePhones` or 3 `imAddresses` is 400 ErrorInvalidArgument with
//!   Graph's message ("The multi value property EmailAddresses has 4
//!   entries, that exceeds the max allowed value of 3"; the limits are
//!   reported in microsoft-graph-docs-contrib #560, the code is this
//!   emulator's choice, the phone and IM limits are Outlook's field counts).
//!   A create without a non-empty `givenName` is 400 ErrorInvalidProperty
//!   (what Graph answered in msgraph-sdk-dotnet #247; undocumented, kept as
//!   the strict choice). Without `displayName` the contact's is given,
//!   middle and surname.
//!   `birthday` must be an RFC 3339 DateTimeOffset. `$filter` takes
//!   `displayName eq '…'` or a string extended property. A PATCH replaces
//!   the properties it names (collections whole) and merges extended
//!   properties by id.
//! - Contact photos: `PUT …/photo/$value` with `image/jpeg` or `image/png`
//!   (other types 415), 1 byte to 4 MB (413 above), answers 200;
//!   `GET …/photo/$value` returns the bytes or 404.
//! - Calendars: `name` required and unique in the mailbox (409
//!   ErrorFolderExists); `color` a calendarColor.
//! - Event bodies: unknown properties and wrong types are 400
//!   RequestBodyRead; read-only properties are ignored; `organizer` is
//!   checked for shape and ignored — the owner is always the organizer.
//!   `start` and `end` are required; `dateTime` has no offset (one with `Z`
//!   or `+01:00` is refused: the zone belongs in `timeZone`); `timeZone` is
//!   an IANA name or one of the Windows names in `recurrence.rs` (others 400
//!   TimeZoneNotSupportedException). Violations of the documented rules —
//!   end before start, an all-day event not midnight to midnight over whole
//!   days, more than 500 attendees, a recurrence breaking its pattern or
//!   range rules, a range whose startDate is not the start's date — are 400
//!   ErrorPropertyValidationFailure (the code Graph answers an invalid
//!   all-day event with, microsoft-graph-docs #7919; the emulator's
//!   messages name the rule broken). Bodies
//!   over 4 MiB are 413.
//! - patternedRecurrence: each pattern type requires its documented
//!   properties (weekly: daysOfWeek; absoluteMonthly: dayOfMonth;
//!   relativeMonthly: daysOfWeek; absoluteYearly: dayOfMonth and month;
//!   relativeYearly: daysOfWeek and month); `interval` ≥ 1 is required;
//!   properties a type does not use must be absent or at the value Graph
//!   reports for "unset" (0, `[]`, `first`, `sunday`, `0001-01-01`), so a
//!   GET body round-trips but a contradictory one is refused. Ranges:
//!   endDate needs `endDate` ≥ `startDate`; numbered needs
//!   `numberOfOccurrences` > 0; noEnd neither.
//! - Expansion is in the start's time zone (`recurrenceTimeZone` is checked
//!   but not used): occurrences keep their wall-clock time across DST; a
//!   time skipped by DST moves later by the gap, a repeated one is its first
//!   instance. `dayOfMonth` beyond a month's end is the month's last day.
//!   Weekly weeks start on `firstDayOfWeek`. Cancelled occurrences still
//!   count towards `numberOfOccurrences`. A start the pattern does not hit
//!   (a Tuesday for a Monday pattern) is kept on the master, and the first
//!   occurrence is the pattern's first date from the range start on.
//! - Occurrence ids are stable and encode master and original date. PATCH
//!   of an occurrence makes an exception (`type: exception`, `originalStart`
//!   the scheduled start); it can't carry recurrence, isAllDay or extended
//!   properties (400), nor move onto or past a neighbour's day (400
//!   ErrorOccurrenceCrossingBoundary, event-update). DELETE of an occurrence
//!   cancels it (204; its id is then 404). A new pattern drops exceptions.
//! - `instances` and `calendarView` need `startDateTime` and `endDateTime`
//!   (400 ErrorInvalidParameter); values without an offset are UTC. An
//!   occurrence is listed when it overlaps the window. A single-instance
//!   event has no instances (empty list). Times are in UTC unless `Prefer:
//!   outlook.timezone="…"` names a known zone; all-day events read midnight
//!   to midnight in any zone.
//! - transactionId: a POST whose transactionId an existing event of the
//!   mailbox was created with answers 201 with that event and creates and
//!   sends nothing, whatever else the body says (the docs give the purpose,
//!   not the status). Once the event is deleted the id may be used again.
//!   PATCH may repeat it but not change it (400 ErrorInvalidProperty).
//! - Invitations (`invitations_sent` / `cancellations_sent` in the stats,
//!   per mailbox and in total) count messages, not recipients. A meeting is
//!   an event with attendees. Sent: creating a non-draft meeting (1
//!   request); PATCHing a non-draft meeting's or occurrence's start, end,
//!   isAllDay, recurrence, attendees, location or locations (1 update;
//!   subject or body alone send nothing); DELETE of a non-draft meeting or
//!   one of its occurrences, or `POST …/cancel` (1 cancellation; cancel
//!   answers 202, removes the event, and is 400 ErrorInvalidRequest for an
//!   event without attendees).
//! - Drafts: an event is a draft when it was created with `isDraft: true`
//!   (the emulator then sets the PSETID_Appointment named Booleans
//!   `EventDraft` and `IntendedEventDraft` to true, whatever the body said).
//!   Nothing is sent for a draft — not for its creation, changes, occurrence
//!   changes or deletes, cancel or delete. It stops being a draft when a
//!   PATCH leaves both named properties `false` (new-SilentMeeting.ps1's
//!   second step); that PATCH sends nothing either (a PATCH is judged by the
//!   state before it), and from then on the event is an ordinary meeting.
//!   `isDraft` itself can't be changed by PATCH (400 ErrorInvalidProperty).
//!   Creating without `isDraft: true` is never a draft, whatever the
//!   extended properties say.
//! - Master categories (`outlook/masterCategories`, see `categories`): list,
//!   create, get and delete; MailboxSettings.Read to read and
//!   MailboxSettings.ReadWrite to write (`--mailbox-settings`, default
//!   read-write; else 403 ErrorAccessDenied); `color` one of `none`,
//!   `preset0`…`preset24`; `displayName` required and unique ignoring case
//!   (a duplicate is 409 ErrorDuplicateMasterCategory: the documentation
//!   gives the rule, not the answer); a new mailbox holds the six default
//!   colour categories.
//! - Event attachments: `POST …/events/{id}/attachments` takes a
//!   fileAttachment of at most 3 MiB (413, as for messages); item
//!   attachments and attachments on one occurrence answer 501.

mod admin;
mod attachments;
mod auth;
mod batch;
mod calendar;
mod categories;
mod config;
mod faults;
mod folders;
mod graph;
mod http;
mod messages;
mod mime;
mod odata;
mod pim;
mod recurrence;
mod stats;
mod store;
mod throttle;

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

use crate::config::{Cli, Config};
use crate::http::{Req, Resp};

/// Largest request body read at all (importMime of a 150 MB message is
/// about 200 MB of base64).
const MAX_BODY: usize = 320 * 1024 * 1024;

/// Shared server state. Each part has its own lock, taken briefly and never
/// across an await.
pub struct App {
    pub cfg: Config,
    /// `http://127.0.0.1:PORT`: the endpoint and authority the client uses,
    /// and the base of every link the emulator returns.
    pub base_url: String,
    pub store: Mutex<store::Store>,
    pub tokens: Mutex<auth::Tokens>,
    pub throttle: Mutex<throttle::Throttle>,
    pub faults: Mutex<faults::FaultConfig>,
    pub stats: Mutex<stats::Stats>,
    pub uploads: Mutex<HashMap<String, attachments::UploadSession>>,
    pub rng: Mutex<fastrand::Rng>,
    /// Graph requests in flight across all mailboxes.
    pub in_flight: AtomicU32,
    /// The MailboxSettings permission the app holds now: `--mailbox-settings`,
    /// changed by `POST /_emulator/permissions` (an admin granting it
    /// between runs).
    pub mailbox_settings: Mutex<config::MailboxSettings>,
}

/// What a request ends in: a response, or a dropped connection (injected reset).
pub enum Outcome {
    Resp(Resp),
    Reset,
}

/// Error returned to hyper to drop a connection without answering.
#[derive(Debug)]
struct ConnectionReset;

impl std::fmt::Display for ConnectionReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected connection reset")
    }
}

impl std::error::Error for ConnectionReset {}

async fn serve(app: Arc<App>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, ConnectionReset> {
    let arrived = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(Resp::plain_json(
                413,
                &json!({"error": {"code": "RequestEntityTooLarge", "message": "The request body is too large."}}),
            )
            .into_hyper());
        }
    };
    let mut req = Req::new(parts.method, &path_and_query, parts.headers, body);
    req.arrived = arrived;
    match route(app, req).await {
        Outcome::Resp(r) => Ok(r.into_hyper()),
        Outcome::Reset => Err(ConnectionReset),
    }
}

async fn route(app: Arc<App>, req: Req) -> Outcome {
    let first = req.segments.first().map(String::as_str).unwrap_or("");
    match first {
        "_emulator" => Outcome::Resp(admin::handle(&app, &req)),
        "_upload" => {
            attachments::purge_expired(&app);
            attachments::handle_upload(app, req).await
        }
        "v1.0" | "beta" => graph::handle(app, req, false).await,
        _ if req.segments.len() == 4
            && req.segments[1] == "oauth2"
            && req.segments[2] == "v2.0"
            && req.segments[3] == "token" =>
        {
            let tenant = req.segments[0].clone();
            let resp = auth::token_endpoint(&app, &req, &tenant);
            app.stats.lock().unwrap().record(&stats::Event {
                method: req.method.to_string(),
                kind: "token",
                status: Some(resp.status_u16()),
                ..stats::Event::default()
            });
            Outcome::Resp(resp)
        }
        _ => Outcome::Resp(Resp::plain_json(
            404,
            &json!({"error": {"code": "NotFound", "message": "No such endpoint on the Graph emulator."}}),
        )),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let cfg = match Config::from_cli(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("graph-emulator: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GRAPH_EMULATOR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("graph-emulator: cannot start runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cfg)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("graph-emulator: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

async fn run(cfg: Config) -> Result<(), String> {
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let base_url = format!("http://{addr}");
    let mut rng = fastrand::Rng::with_seed(cfg.seed);
    let store = store::Store::new(cfg.mailboxes.as_deref(), cfg.max_receive_size_bytes, &mut rng);
    let limits = throttle::Limits {
        max_concurrency: cfg.max_concurrency,
        rate_limit: cfg.rate_limit_requests,
        rate_window: cfg.scaled(cfg.rate_window_secs as f64),
        upload_limit: cfg.upload_limit_bytes,
        upload_window: cfg.scaled(cfg.upload_window_secs as f64),
        grace: cfg.violation_grace,
        one_second: cfg.scaled(1.0),
    };
    let app = Arc::new(App {
        base_url: base_url.clone(),
        store: Mutex::new(store),
        tokens: Mutex::new(auth::Tokens::default()),
        throttle: Mutex::new(throttle::Throttle::new(limits)),
        faults: Mutex::new(faults::FaultConfig::default()),
        stats: Mutex::new(stats::Stats::default()),
        uploads: Mutex::new(HashMap::new()),
        rng: Mutex::new(rng),
        in_flight: AtomicU32::new(0),
        mailbox_settings: Mutex::new(cfg.mailbox_settings),
        cfg,
    });
    if let Some(path) = &app.cfg.port_file {
        std::fs::write(path, addr.port().to_string())
            .map_err(|e| format!("cannot write --port-file {}: {e}", path.display()))?;
    }
    {
        // The first stdout line is the contract with whoever started us.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {base_url}");
        let _ = out.flush();
    }
    tracing::info!(%base_url, "graph emulator started");
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| serve(app.clone(), req));
                    if let Err(e) = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await
                    {
                        tracing::debug!("connection ended: {e}");
                    }
                });
            }
            _ = &mut shutdown => {
                tracing::info!("shutting down");
                return Ok(());
            }
        }
    }
}
