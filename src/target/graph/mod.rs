//! The Exchange Online target, through Microsoft Graph with an app-only
//! token. This is the target cutover exists for: EWS in Exchange Online is
//! being switched off (October 2026 to April 2027), and IMAP APPEND into
//! Exchange is throttled hard and cannot be scoped to some mailboxes.
//!
//! Folders: INBOX and role folders map to Exchange's well-known folders
//! (`inbox`, `sentitems`, `drafts`, `deleteditems`, `junkemail`,
//! `archive`); other folders are found by listing children (Graph has no
//! documented name filter on folders) and created level by level. The
//! reference the checkpoint keeps is the Graph folder id, or the well-known
//! name.
//!
//! Messages are written one of two ways ([`GraphWriteMode`]):
//! - **importMime** (Graph beta): the exact source bytes, stored as a
//!   delivered, non-draft message; read state, flag and categories are then
//!   PATCHed where they differ from what Exchange derived.
//! - **json**: the message re-created from parsed MIME with MAPI properties
//!   for the dates and the non-draft state ([`json`]); large attachments
//!   are added afterwards, through upload sessions above 3 MiB.
//!
//! `auto` uses importMime and, the first time the tenant refuses it (no
//! Mail-Advanced.ReadWrite.All, or no beta endpoint), switches the whole run
//! to json and says so once.
//!
//! Exactly once: every copy is stamped with named extended properties of
//! cutover's own ([`json::Stamp`]: a digest of the source mailbox, folder,
//! UIDVALIDITY and UID, plus the source size and Message-ID), set in the
//! json create request or in the PATCH that follows an import, and only
//! once the copy is complete. A create that failed in a way that may have
//! stored the message anyway (timeout, reset, 5xx), and any message a
//! killed run had in flight, is looked up by that stamp before it is sent
//! again, so messages without a Message-ID or sharing one are neither lost
//! nor doubled; an import cut short before its PATCH is found by
//! Message-ID (or its bytes) and completed. A message whose follow-up steps
//! failed (PATCH, attachments) is deleted before the error is reported, so
//! a retry never leaves a half-made copy behind.
//!
//! HTTP, tokens, folder ids and MAPI properties stay inside this module.

mod api;
mod auth;
mod client;
pub mod json;
mod throttle;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;

use self::api::{CreatedMessage, Folder, FolderPage, MessagePage, MessagePatch, NewFolder, UploadSession};
use self::client::{Body, Call, Failure, Http, Reply};
use self::throttle::MailboxLimits;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Flags, FolderRole, TargetFolder, Upload};
use crate::roster::UserJob;
use crate::settings::{GraphSettings, GraphWriteMode};
use crate::target::{Inventoried, Target, TargetSession};

/// Characters left as they are in a URL path segment (RFC 3986 pchar);
/// everything else, `/` included, is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':');
/// Characters left as they are in a query value.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
/// Upload-session ranges: a multiple of 320 KiB, at most 4 MiB.
const CHUNK_BYTES: usize = 12 * 320 * 1024;
/// Folders listed per page.
const FOLDER_PAGE: u32 = 100;
/// Unstamped messages examined when looking for an interrupted import.
const LOOKUP_CANDIDATES: u32 = 50;
/// Messages listed per page by `inventory`.
const INVENTORY_PAGE: u32 = 500;
/// PR_MESSAGE_SIZE, Exchange's size of an item (not the MIME size).
const MESSAGE_SIZE_PROPERTY: &str = "Integer 0x0E08";
/// Messages above this size are base64-encoded or converted off the async
/// threads.
const BLOCKING_ABOVE: usize = 1024 * 1024;

fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// The Exchange folder for a role, by well-known name.
fn well_known(role: FolderRole) -> Option<&'static str> {
    Some(match role {
        FolderRole::Inbox => "inbox",
        FolderRole::Sent => "sentitems",
        FolderRole::Drafts => "drafts",
        FolderRole::Trash => "deleteditems",
        FolderRole::Junk => "junkemail",
        FolderRole::Archive | FolderRole::All => "archive",
        FolderRole::Flagged | FolderRole::Important => return None,
    })
}

/// A top-level folder for roles Exchange has no folder for.
fn role_folder_name(role: FolderRole) -> &'static str {
    match role {
        FolderRole::Flagged => "Starred",
        FolderRole::Important => "Important",
        _ => "Archive",
    }
}

/// Where resolving a target folder starts (a well-known folder, or the
/// root when `None`) and the names to walk down from there.
fn start_of(folder: &TargetFolder) -> (Option<String>, Vec<String>) {
    let mut path: Vec<String> = folder.path.clone();
    let mut parent = None;
    if let Some(role) = folder.anchor {
        match well_known(role) {
            Some(name) => parent = Some(name.to_owned()),
            None => path.insert(0, role_folder_name(role).to_owned()),
        }
    }
    (parent, path)
}

pub struct GraphTarget {
    inner: Arc<Inner>,
}

/// Shared by every session of the run.
struct Inner {
    http: Http,
    settings: GraphSettings,
    /// `auto` found importMime unavailable: json from now on, every session.
    use_json: AtomicBool,
    /// The importMime received-date warning was given.
    warned_dates: AtomicBool,
    mailboxes: Mutex<HashMap<String, Arc<Mailbox>>>,
}

/// Shared by the sessions writing into one mailbox.
struct Mailbox {
    limits: MailboxLimits,
    /// The mailbox was found reachable once; later sessions skip the check.
    checked: tokio::sync::OnceCell<()>,
    /// What each folder reference stands for, so a folder deleted in
    /// Exchange during the run can be made again.
    paths: Mutex<HashMap<String, TargetFolder>>,
    /// Folder references replaced during the run (old → new).
    moved: Mutex<HashMap<String, String>>,
}

impl GraphTarget {
    pub fn new(settings: GraphSettings) -> Result<GraphTarget> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.timeout.min(Duration::from_secs(30)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cutover/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::fatal(format!("cannot set up the HTTP client: {e}")))?;
        let tokens = auth::TokenSource::new(&settings, client.clone())?;
        let http = Http::new(client, tokens, settings.timeout);
        Ok(GraphTarget {
            inner: Arc::new(Inner {
                http,
                settings,
                use_json: AtomicBool::new(false),
                warned_dates: AtomicBool::new(false),
                mailboxes: Mutex::new(HashMap::new()),
            }),
        })
    }
}

impl Inner {
    fn mailbox(&self, email: &str) -> Arc<Mailbox> {
        let mut map = self.mailboxes.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(email.to_ascii_lowercase())
            .or_insert_with(|| {
                Arc::new(Mailbox {
                    limits: MailboxLimits::new(&self.settings),
                    checked: tokio::sync::OnceCell::new(),
                    paths: Mutex::new(HashMap::new()),
                    moved: Mutex::new(HashMap::new()),
                })
            })
            .clone()
    }

    fn json_now(&self) -> bool {
        match self.settings.write_mode {
            GraphWriteMode::Json => true,
            GraphWriteMode::ImportMime => false,
            GraphWriteMode::Auto => self.use_json.load(Ordering::SeqCst),
        }
    }

    /// `auto`: importMime is not available; json for the rest of the run.
    fn fall_back_to_json(&self, why: &Failure) {
        if !self.use_json.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                "importMime is not available to this app ({}); copying the rest of this run with write_mode = \"json\": messages are re-created from their parsed MIME with their dates, read state, flags and categories, but are not byte-identical. For byte-identical copies grant the app the Microsoft Graph application permission Mail-Advanced.ReadWrite.All (with admin consent) and run again; to make json the deliberate choice, set write_mode = \"json\"",
                why.error
            );
        }
    }
}

fn mode_name(mode: GraphWriteMode) -> &'static str {
    match mode {
        GraphWriteMode::Auto => "auto",
        GraphWriteMode::ImportMime => "import-mime",
        GraphWriteMode::Json => "json",
    }
}

impl Target for GraphTarget {
    fn open<'a>(&'a self, user: &'a UserJob) -> BoxFuture<'a, Result<Box<dyn TargetSession>>> {
        async move {
            let email = user.email.trim().to_owned();
            if email.is_empty() {
                return Err(Error::fatal(format!(
                    "users file line {}: EmailAddress is empty",
                    user.line
                )));
            }
            let inner = self.inner.clone();
            let mailbox = inner.mailbox(&email);
            let users = format!("{}/v1.0/users/{}", inner.settings.endpoint, seg(&email));
            let beta_users = format!("{}/beta/users/{}", inner.settings.endpoint, seg(&email));
            let session = GraphSession {
                inner,
                mailbox,
                email,
                users,
                beta_users,
                children: HashMap::new(),
            };
            // Fail early, and with a clear reason, on a mailbox that does not
            // exist or that the app may not read; once per mailbox per run.
            session
                .mailbox
                .checked
                .get_or_try_init(|| async {
                    let url = format!("{}/mailFolders/inbox?$select=id", session.users);
                    session
                        .send(&Call::get(url, "open mailbox"))
                        .await
                        .map(|_| ())
                        .map_err(Error::from)
                })
                .await?;
            let session: Box<dyn TargetSession> = Box::new(session);
            Ok(session)
        }
        .boxed()
    }

    fn capabilities(&self) -> crate::target::Capabilities {
        crate::target::Capabilities::MAIL_APPEND_ONLY
    }

    fn describe(&self) -> String {
        let s = &self.inner.settings;
        format!(
            "Microsoft Graph {} (tenant {}, write mode {})",
            s.endpoint,
            s.tenant_id,
            mode_name(s.write_mode)
        )
    }
}

impl Call<'_> {
    fn get(url: String, what: &str) -> Call<'_> {
        Call {
            method: Method::GET,
            url,
            body: Body::Empty,
            what,
            authorized: true,
            idempotent: true,
        }
    }
}

impl Failure {
    /// A failure that is only an error (no HTTP status to react to).
    fn plain(error: Error) -> Failure {
        Failure {
            status: None,
            code: String::new(),
            message: String::new(),
            error,
            maybe_applied: false,
        }
    }
}

/// The answer to a create that may have been retried.
enum Created {
    /// Created now; the answer's body.
    New(Bytes),
    /// An earlier attempt had stored it after all.
    Existing(Found),
}

/// A copy of a message found in the target folder.
enum Found {
    /// Carries cutover's stamp: finished, nothing more to do.
    Complete(String),
    /// Has no stamp: an import cut short before the PATCH that sets read
    /// state, flag and stamp, which still has to be sent.
    Unfinished(String),
}

struct GraphSession {
    inner: Arc<Inner>,
    mailbox: Arc<Mailbox>,
    email: String,
    /// `{endpoint}/v1.0/users/{email}`
    users: String,
    /// `{endpoint}/beta/users/{email}`
    beta_users: String,
    /// (parent reference, lower-cased display name) → folder id.
    children: HashMap<(String, String), String>,
}

impl GraphSession {
    async fn send(&self, call: &Call<'_>) -> std::result::Result<Reply, Failure> {
        self.inner.http.send(&self.mailbox.limits, call).await
    }

    // --- folders -------------------------------------------------------------

    /// The reference for a target folder, creating what is missing.
    async fn resolve(&mut self, folder: &TargetFolder) -> Result<String> {
        let (mut parent, path) = start_of(folder);
        // For messages: the path as the admin knows it, from the anchor.
        let anchor = parent.clone();
        for (depth, name) in path.iter().enumerate() {
            let below = path[..=depth].join("/");
            let display = match &anchor {
                Some(a) => format!("{a}/{below}"),
                None => below,
            };
            parent = Some(self.child(parent.as_deref(), name, &display).await?);
        }
        parent.ok_or_else(|| Error::fatal(format!("target folder {} has no name", folder.display())))
    }

    /// The id of folder `name` under `parent` (the root when `None`),
    /// created if missing.
    async fn child(&mut self, parent: Option<&str>, name: &str, display: &str) -> Result<String> {
        if name.trim().is_empty() {
            return Err(Error::refused(format!(
                "folder {display} has an empty name, which Exchange does not allow; its messages are skipped"
            )));
        }
        let key = (parent.unwrap_or("").to_owned(), name.to_lowercase());
        if let Some(id) = self.children.get(&key) {
            return Ok(id.clone());
        }
        let collection = match parent {
            Some(p) => format!("{}/mailFolders/{}/childFolders", self.users, seg(p)),
            None => format!("{}/mailFolders", self.users),
        };
        if let Some(id) = self.list_children(parent, &collection, name).await? {
            return Ok(id);
        }
        let body = serde_json::to_vec(&NewFolder {
            display_name: name,
            is_hidden: false,
        })
        .expect("serializes");
        let what = format!("create folder {display}");
        let call = Call {
            method: Method::POST,
            url: collection.clone(),
            body: Body::Json(body.into()),
            what: &what,
            authorized: true,
            idempotent: false,
        };
        let mut attempt = 0;
        loop {
            match self.send(&call).await {
                Ok(reply) => {
                    let folder: Folder = parse(&reply.body, &what)?;
                    self.children.insert(key, folder.id.clone());
                    return Ok(folder.id);
                }
                // Another session (or an earlier, interrupted attempt)
                // created it meanwhile.
                Err(f) if f.status == Some(409) || f.code == "ErrorFolderExists" => {
                    return self.list_children(parent, &collection, name).await?.ok_or_else(|| {
                        Error::transient(format!(
                            "{what}: Exchange says it exists but does not list it; retrying"
                        ))
                    });
                }
                Err(f) if f.maybe_applied && f.error.is_retryable() => {
                    if let Some(id) = self.list_children(parent, &collection, name).await? {
                        return Ok(id);
                    }
                    attempt += 1;
                    match self.inner.http.retry.delay(attempt, &f.error) {
                        Some(d) if !matches!(f.error.kind, ErrorKind::Throttled(_)) => tokio::time::sleep(d).await,
                        Some(_) => {}
                        None => return Err(f.error),
                    }
                }
                Err(f) if f.error.kind == ErrorKind::Item => {
                    return Err(Error::refused(format!(
                        "Exchange refused to create folder {display} ({}); its messages are skipped: rename the source folder or exclude it",
                        f.error.message.trim_start_matches(&format!("{what}: ")),
                    )));
                }
                Err(f) => return Err(f.error),
            }
        }
    }

    /// The reference of a target folder that already exists, without
    /// creating anything: `None` when some level of it is missing.
    async fn existing(&mut self, folder: &TargetFolder) -> Result<Option<String>> {
        let (mut parent, path) = start_of(folder);
        for name in &path {
            let key = (parent.clone().unwrap_or_default(), name.to_lowercase());
            if let Some(id) = self.children.get(&key) {
                parent = Some(id.clone());
                continue;
            }
            let collection = match &parent {
                Some(p) => format!("{}/mailFolders/{}/childFolders", self.users, seg(p)),
                None => format!("{}/mailFolders", self.users),
            };
            match self.list_children(parent.as_deref(), &collection, name).await? {
                Some(id) => parent = Some(id),
                None => return Ok(None),
            }
        }
        Ok(parent)
    }

    /// Lists the children of `parent` page by page (caching them all) and
    /// returns the one called `name`, compared as Exchange does, ignoring
    /// case.
    async fn list_children(&mut self, parent: Option<&str>, collection: &str, name: &str) -> Result<Option<String>> {
        let wanted = name.to_lowercase();
        let parent_key = parent.unwrap_or("").to_owned();
        let mut url = format!("{collection}?$top={FOLDER_PAGE}&$select=id,displayName");
        let mut found = None;
        loop {
            let reply = self.send(&Call::get(url, "list folders")).await?;
            let page: FolderPage = parse(&reply.body, "list folders")?;
            for f in page.value {
                let lower = f.display_name.to_lowercase();
                if lower == wanted && found.is_none() {
                    found = Some(f.id.clone());
                }
                self.children.insert((parent_key.clone(), lower), f.id);
            }
            match page.next_link {
                Some(next) if found.is_none() => url = self.same_origin(next)?,
                _ => return Ok(found),
            }
        }
    }

    /// A paging link, refused unless it points back at the configured
    /// endpoint: the token must not go anywhere else.
    fn same_origin(&self, link: String) -> Result<String> {
        if link.starts_with(&format!("{}/", self.inner.settings.endpoint)) {
            Ok(link)
        } else {
            Err(Error::fatal(format!(
                "Graph answered with a paging link outside {} ; refusing to send the app's token there (check [target] endpoint)",
                self.inner.settings.endpoint
            )))
        }
    }

    /// The folder reference to use now for `folder` (it may have been made
    /// again during the run).
    fn current_folder(&self, folder: &str) -> String {
        let moved = self.mailbox.moved.lock().unwrap_or_else(|p| p.into_inner());
        moved.get(folder).cloned().unwrap_or_else(|| folder.to_owned())
    }

    fn remember_folder(&self, reference: &str, folder: &TargetFolder) {
        let mut paths = self.mailbox.paths.lock().unwrap_or_else(|p| p.into_inner());
        paths.insert(reference.to_owned(), folder.clone());
    }

    /// The folder behind `reference` is gone from Exchange: make it again
    /// and use the new one for the rest of the run.
    async fn recreate_folder(&mut self, reference: &str) -> Result<Option<String>> {
        let known = {
            let paths = self.mailbox.paths.lock().unwrap_or_else(|p| p.into_inner());
            paths.get(reference).cloned()
        };
        let Some(folder) = known else { return Ok(None) };
        self.children.retain(|_, id| id != reference);
        let fresh = self.resolve(&folder).await?;
        if fresh == reference {
            return Ok(None);
        }
        tracing::warn!(user = %self.email, folder = %folder.display(), "the target folder was deleted in Exchange during the run; created it again");
        self.remember_folder(&fresh, &folder);
        self.mailbox
            .moved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(reference.to_owned(), fresh.clone());
        Ok(Some(fresh))
    }

    // --- messages ------------------------------------------------------------

    /// Writes one message with the mode in force.
    async fn write(&mut self, folder: &str, message: &Upload) -> std::result::Result<String, Failure> {
        if self.inner.json_now() {
            return self.write_json(folder, message).await;
        }
        let auto = self.inner.settings.write_mode == GraphWriteMode::Auto;
        match self.write_mime(folder, message).await {
            Ok(id) => Ok(id),
            Err(f) if import_unavailable(&f) && auto => {
                self.inner.fall_back_to_json(&f);
                self.write_json(folder, message).await
            }
            Err(f) if f.status == Some(403) => Err(Failure::plain(Error::fatal(format!(
                "{}; importMime needs the application permission Mail-Advanced.ReadWrite.All: grant it with admin consent, or set [target] write_mode = \"auto\" or \"json\"",
                f.error
            )))),
            // importMime refused this one message (bad MIME, over its size
            // limit): json may still take it, with attachments split off.
            Err(f)
                if auto
                    && matches!(f.error.kind, ErrorKind::Item | ErrorKind::Refused)
                    && f.code != "ErrorItemNotFound" =>
            {
                tracing::info!(user = %self.email, "importMime refused a message ({}); copying it as JSON instead", f.error);
                self.write_json(folder, message).await.map_err(|mut j| {
                    j.error.message = format!(
                        "{} (importMime had refused it too: {})",
                        j.error.message, f.error.message
                    );
                    j
                })
            }
            Err(f) => Err(f),
        }
    }

    async fn write_mime(&mut self, folder: &str, message: &Upload) -> std::result::Result<String, Failure> {
        let encoded = encode_base64(message.raw.clone()).await;
        let url = format!("{}/mailFolders/{}/importMime", self.beta_users, seg(folder));
        let call = Call {
            method: Method::POST,
            url,
            body: Body::Base64Mime(encoded),
            what: "import message",
            authorized: true,
            idempotent: false,
        };
        let (id, state) = match self.create(&call, folder, message).await? {
            Created::New(body) => {
                let created: CreatedMessage = parse(&body, "import message").map_err(Failure::plain)?;
                (created.id.clone(), Some(created))
            }
            Created::Existing(Found::Complete(id)) => return Ok(id),
            Created::Existing(Found::Unfinished(id)) => (id, None),
        };
        // Always sent: besides read state and flag it carries the stamp
        // that lets a later run find this message (importMime takes no
        // properties, and the MIME is not to be rewritten).
        let mut patch = state_patch(&with_labels(message), state.as_ref());
        patch.single_value_extended_properties = Some(stamp_of(message).properties());
        if let Err(e) = self.patch(&id, &patch).await {
            self.discard(&id).await;
            return Err(Failure::plain(e));
        }
        if let Some(created) = &state {
            self.check_received_date(created, message);
        }
        Ok(id)
    }

    async fn write_json(&mut self, folder: &str, message: &Upload) -> std::result::Result<String, Failure> {
        let built = build_json(message)
            .await
            .map_err(|e| Failure::plain(Error::item(format!("cannot convert the message to Graph JSON: {e}"))))?;
        let url = format!("{}/mailFolders/{}/messages", self.users, seg(folder));
        let call = Call {
            method: Method::POST,
            url,
            body: Body::Json(built.request.into()),
            what: "create message",
            authorized: true,
            idempotent: false,
        };
        let id = match self.create(&call, folder, message).await? {
            Created::New(body) => {
                parse::<api::IdOnly>(&body, "create message")
                    .map_err(Failure::plain)?
                    .id
            }
            // Found rather than made: a finished copy (a pending one is
            // deleted by the lookup and never found).
            Created::Existing(Found::Complete(id)) => return Ok(id),
            Created::Existing(Found::Unfinished(id)) => {
                self.finish(&id, message).await.map_err(Failure::plain)?;
                return Ok(id);
            }
        };
        if built.deferred.is_empty() {
            return Ok(id);
        }
        for attachment in built.deferred {
            if let Err(e) = self.add_attachment(&id, attachment).await {
                self.discard(&id).await;
                return Err(Failure::plain(e));
            }
        }
        // Complete now: the final stamp replaces the pending one.
        let patch = MessagePatch {
            single_value_extended_properties: Some(stamp_of(message).properties()),
            ..MessagePatch::default()
        };
        if let Err(e) = self.patch(&id, &patch).await {
            self.discard(&id).await;
            return Err(Failure::plain(e));
        }
        Ok(id)
    }

    /// Completes a copy found unstamped (an import cut short before its
    /// PATCH): read state, flag, categories and stamp.
    async fn finish(&self, id: &str, message: &Upload) -> Result<()> {
        let mut patch = state_patch(&with_labels(message), None);
        patch.single_value_extended_properties = Some(stamp_of(message).properties());
        self.patch(id, &patch).await
    }

    /// Sends a create; after a failure that may have stored the message
    /// anyway, looks it up before sending again.
    async fn create(
        &mut self,
        call: &Call<'_>,
        folder: &str,
        message: &Upload,
    ) -> std::result::Result<Created, Failure> {
        let mut attempt = 0;
        loop {
            let f = match self.send(call).await {
                Ok(reply) => return Ok(Created::New(reply.body)),
                Err(f) if f.maybe_applied && f.error.is_retryable() => f,
                Err(f) => return Err(f),
            };
            if let Some(found) = self.lookup(folder, message).await.map_err(Failure::plain)? {
                tracing::debug!(user = %self.email, "an interrupted create had stored the message; using it");
                return Ok(Created::Existing(found));
            }
            attempt += 1;
            match self.inner.http.retry.delay(attempt, &f.error) {
                // The gate already holds everyone back for a throttle.
                Some(_) if matches!(f.error.kind, ErrorKind::Throttled(_)) => {}
                Some(d) => tokio::time::sleep(d).await,
                None => return Err(f),
            }
        }
    }

    async fn patch(&self, id: &str, patch: &MessagePatch) -> Result<()> {
        let url = format!("{}/messages/{}", self.users, seg(id));
        let body = serde_json::to_vec(patch).expect("serializes");
        let call = Call {
            method: Method::PATCH,
            url,
            body: Body::Json(body.into()),
            what: "set read state, flag and categories",
            authorized: true,
            idempotent: true,
        };
        self.send(&call).await?;
        Ok(())
    }

    /// Deletes a half-made copy; a failure only leaves it behind, which is
    /// logged.
    async fn discard(&self, id: &str) {
        let url = format!("{}/messages/{}", self.users, seg(id));
        let call = Call {
            method: Method::DELETE,
            url,
            body: Body::Empty,
            what: "delete incomplete copy",
            authorized: true,
            idempotent: true,
        };
        if let Err(f) = self.send(&call).await
            && f.status != Some(404)
        {
            tracing::warn!(user = %self.email, "an incomplete copy of a message could not be deleted and may remain in the target folder: {}", f.error);
        }
    }

    async fn add_attachment(&self, message_id: &str, attachment: json::Attachment) -> Result<()> {
        let what = format!("add attachment {}", attachment.name);
        let small = attachment.bytes.len() <= json::ATTACHMENT_INLINE_MAX;
        let body = if small { Some(attachment.to_json()) } else { None };
        if let Some(body) = body.filter(|b| b.len() < json::REQUEST_MAX) {
            let url = format!("{}/messages/{}/attachments", self.users, seg(message_id));
            let call = Call {
                method: Method::POST,
                url,
                body: Body::Json(body.into()),
                what: &what,
                authorized: true,
                idempotent: false,
            };
            self.send(&call).await?;
            return Ok(());
        }
        self.upload_session(message_id, attachment, &what).await
    }

    /// Large attachments: an upload session, then the bytes in sequential
    /// ranges sent to the session's URL without the Graph token (the URL
    /// carries its own credential).
    async fn upload_session(&self, message_id: &str, attachment: json::Attachment, what: &str) -> Result<()> {
        let total = attachment.bytes.len();
        let request = api::UploadSessionRequest {
            attachment_item: api::AttachmentItem {
                attachment_type: "file",
                name: &attachment.name,
                size: total as u64,
                content_type: &attachment.content_type,
                is_inline: attachment.is_inline,
                content_id: attachment.content_id.as_deref(),
            },
        };
        let url = format!(
            "{}/messages/{}/attachments/createUploadSession",
            self.users,
            seg(message_id)
        );
        let body = serde_json::to_vec(&request).expect("serializes");
        let call = Call {
            method: Method::POST,
            url,
            body: Body::Json(body.into()),
            what,
            authorized: true,
            idempotent: false,
        };
        let reply = self.send(&call).await?;
        let session: UploadSession = parse(&reply.body, what)?;
        check_upload_url(&session.upload_url).map_err(|e| e.context(what))?;
        let data = Bytes::from(attachment.bytes);
        let mut start = 0;
        while start < total {
            let end = (start + CHUNK_BYTES).min(total);
            let range = format!("bytes {}-{}/{}", start, end - 1, total);
            let call = Call {
                method: Method::PUT,
                url: session.upload_url.clone(),
                body: Body::Chunk {
                    data: data.slice(start..end),
                    range,
                },
                what,
                authorized: false,
                idempotent: true,
            };
            self.send(&call).await?;
            start = end;
        }
        Ok(())
    }

    /// The id of the copy of `message` that an earlier attempt (or an
    /// interrupted run) stored in `folder`, if there is one.
    ///
    /// First by cutover's stamp (`$filter` on the named extended property
    /// holding the source key), which every finished copy carries and which
    /// tells apart messages sharing a Message-ID or having none. Then, for
    /// an importMime cut short between the import and the PATCH that adds
    /// the stamp: an unstamped message with the same bytes (among those
    /// with the same Message-ID, or the newest ones for a message without
    /// one), else the first unstamped one with the same Message-ID.
    async fn lookup(&self, folder: &str, message: &Upload) -> Result<Option<Found>> {
        let stamp = stamp_of(message);
        let Some(stamped) = self.stamped(folder, &stamp.key, 1).await? else {
            // The folder is gone, so the message is not there.
            return Ok(None);
        };
        if let Some(id) = stamped.into_iter().next() {
            return Ok(Some(Found::Complete(id)));
        }
        // A json copy whose attachments were still being added: cutover's
        // own and incomplete, so it is replaced.
        for id in self
            .stamped(folder, &json::Stamp::pending(&stamp.key), 10)
            .await?
            .unwrap_or_default()
        {
            tracing::debug!(user = %self.email, "deleting an incomplete copy left by an interrupted run");
            self.discard(&id).await;
        }
        let expand = utf8_percent_encode(
            &format!("singleValueExtendedProperties($filter=id eq '{}')", json::KEY_PROPERTY),
            QUERY_VALUE,
        )
        .to_string();
        let by_id = message.message_id.as_deref().and_then(json::bracketed_message_id);
        let url = match &by_id {
            Some(id) => {
                let filter = format!("internetMessageId eq '{}'", id.replace('\'', "''"));
                format!(
                    "{}/mailFolders/{}/messages?$filter={}&$select=id,internetMessageId&$expand={expand}&$top={LOOKUP_CANDIDATES}",
                    self.users,
                    seg(folder),
                    utf8_percent_encode(&filter, QUERY_VALUE)
                )
            }
            None => format!(
                "{}/mailFolders/{}/messages?$orderby=createdDateTime%20desc&$select=id,internetMessageId&$expand={expand}&$top={LOOKUP_CANDIDATES}",
                self.users,
                seg(folder)
            ),
        };
        let page: MessagePage = match self.send(&Call::get(url, "look up unfinished import")).await {
            Ok(reply) => parse(&reply.body, "look up message")?,
            Err(f) if f.code == "ErrorItemNotFound" => return Ok(None),
            Err(f) => return Err(f.error),
        };
        // Stamped candidates are other source messages' copies. Of the
        // rest, one with exactly these bytes is the best match (two source
        // messages may share a Message-ID); else, by Message-ID, the first.
        let unstamped: Vec<String> = page
            .value
            .into_iter()
            .filter(|c| c.property(json::KEY_PROPERTY).is_none())
            .map(|c| c.id)
            .collect();
        for id in &unstamped {
            if self.same_mime(id, &message.raw).await? {
                return Ok(Some(Found::Unfinished(id.clone())));
            }
        }
        Ok(by_id.and(unstamped.into_iter().next()).map(Found::Unfinished))
    }

    /// The ids of the messages in `folder` whose stamp is `key` (at most
    /// `top`); `None` when the folder does not exist.
    async fn stamped(&self, folder: &str, key: &str, top: u32) -> Result<Option<Vec<String>>> {
        let filter = format!(
            "singleValueExtendedProperties/Any(ep: ep/id eq '{}' and ep/value eq '{key}')",
            json::KEY_PROPERTY,
        );
        let url = format!(
            "{}/mailFolders/{}/messages?$filter={}&$select=id&$top={top}",
            self.users,
            seg(folder),
            utf8_percent_encode(&filter, QUERY_VALUE)
        );
        match self.send(&Call::get(url, "look up message by cutover's key")).await {
            Ok(reply) => Ok(Some(
                parse::<MessagePage>(&reply.body, "look up message")?
                    .value
                    .into_iter()
                    .map(|m| m.id)
                    .collect(),
            )),
            Err(f) if f.code == "ErrorItemNotFound" => Ok(None),
            Err(f) => Err(f.error),
        }
    }

    /// Whether the stored MIME of message `id` is exactly `raw`.
    async fn same_mime(&self, id: &str, raw: &[u8]) -> Result<bool> {
        let url = format!("{}/messages/{}/$value", self.users, seg(id));
        match self.send(&Call::get(url, "compare message content")).await {
            Ok(reply) => Ok(reply.body.as_ref() == raw),
            Err(f) if f.code == "ErrorItemNotFound" => Ok(false),
            Err(f) => Err(f.error),
        }
    }

    /// Read-only listing of one folder for `cutover verify`: Message-ID
    /// and size of every message, page by page. For cutover's copies both
    /// are what the source had (from the stamp); for other messages they
    /// are Exchange's internetMessageId and PR_MESSAGE_SIZE.
    async fn list_folder(&self, reference: &str) -> Result<Option<Vec<Inventoried>>> {
        let expand = format!(
            "singleValueExtendedProperties($filter=id eq '{}' or id eq '{}' or id eq '{MESSAGE_SIZE_PROPERTY}')",
            json::SIZE_PROPERTY,
            json::MESSAGE_ID_PROPERTY,
        );
        let mut url = format!(
            "{}/mailFolders/{}/messages?$select=internetMessageId&$expand={}&$top={INVENTORY_PAGE}",
            self.users,
            seg(reference),
            utf8_percent_encode(&expand, QUERY_VALUE)
        );
        let mut out = Vec::new();
        loop {
            let page: MessagePage = match self.send(&Call::get(url, "list messages")).await {
                Ok(reply) => parse(&reply.body, "list messages")?,
                Err(f) if f.code == "ErrorItemNotFound" && out.is_empty() => return Ok(None),
                Err(f) => return Err(f.error),
            };
            for m in &page.value {
                let stamped = m.property(json::SIZE_PROPERTY);
                let size = stamped
                    .or_else(|| m.property(MESSAGE_SIZE_PROPERTY))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                // cutover's copies: the Message-ID the source has (none
                // when it has none); anything else: Exchange's.
                let message_id = match stamped {
                    Some(_) => m.property(json::MESSAGE_ID_PROPERTY).map(str::to_owned),
                    None => m.internet_message_id.as_deref().and_then(json::bracketed_message_id),
                };
                out.push(Inventoried { message_id, size });
            }
            match page.next_link {
                Some(next) => url = self.same_origin(next)?,
                None => return Ok(Some(out)),
            }
        }
    }

    /// importMime has no documented rule for the received date. If it did
    /// not keep INTERNALDATE, say so once: the admin may prefer json.
    fn check_received_date(&self, created: &CreatedMessage, message: &Upload) {
        let Some(received) = created
            .received_date_time
            .as_deref()
            .and_then(|r| chrono::DateTime::parse_from_rfc3339(r).ok())
        else {
            return;
        };
        if message.internal_date > 0
            && (received.timestamp() - message.internal_date).abs() > 86_400
            && !self.inner.warned_dates.swap(true, Ordering::SeqCst)
        {
            tracing::warn!(
                user = %self.email,
                "importMime stored a received date ({received}) that is not the source's INTERNALDATE; Outlook sorts by received date. If that matters, set [target] write_mode = \"json\", which sets the received date explicitly"
            );
        }
    }
}

/// The PATCH that brings a created message to the source's read state,
/// flag and categories. `created` is what Exchange made of it, or `None`
/// when unknown (then everything that matters is set).
fn state_patch(flags: &Flags, created: Option<&CreatedMessage>) -> MessagePatch {
    let mut patch = MessagePatch::default();
    let want_read = flags.seen();
    if created.and_then(|c| c.is_read) != Some(want_read) {
        patch.is_read = Some(want_read);
    }
    let want_flag = json::flag_status(flags);
    let have_flag = created.map(|c| c.flag.as_ref().map_or("notFlagged", |f| f.flag_status.as_str()));
    if have_flag.is_none_or(|have| have != want_flag) {
        patch.flag = Some(api::FollowupFlag {
            flag_status: want_flag.into(),
        });
    }
    let want: Vec<String> = json::categories(flags);
    let have: Vec<String> = created.and_then(|c| c.categories.clone()).unwrap_or_default();
    let same = want.len() == have.len() && want.iter().all(|w| have.iter().any(|h| h.eq_ignore_ascii_case(w)));
    if !same && (created.is_some() || !want.is_empty()) {
        patch.categories = Some(want);
    }
    patch
}

/// Whether a failed importMime means the app cannot use importMime at all
/// (permission missing, beta endpoint absent) rather than this message.
fn import_unavailable(f: &Failure) -> bool {
    let text = format!("{} {}", f.code, f.message).to_lowercase();
    let mentions_endpoint = [
        "importmime",
        "segment",
        "not supported",
        "unsupported",
        "not implemented",
    ]
    .iter()
    .any(|w| text.contains(w));
    match f.status {
        Some(403 | 405 | 501) => true,
        Some(404) => mentions_endpoint || (f.code != "ErrorItemNotFound" && !client::mailbox_missing(&f.code)),
        Some(400) => mentions_endpoint,
        _ => false,
    }
}

/// Upload URLs come from the server; they get message bytes (not the
/// token), and still only over https, or http to loopback.
fn check_upload_url(url: &str) -> Result<()> {
    let parsed = reqwest::Url::parse(url).map_err(|_| Error::transient("Graph returned an unreadable upload URL"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if crate::imap::is_loopback_host(parsed.host_str().unwrap_or("")) => Ok(()),
        _ => Err(Error::item(
            "Graph returned an upload URL that is not https; the attachment was not sent",
        )),
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| Error::transient(format!("{what}: Graph answered with an unreadable body ({e})")))
}

async fn encode_base64(raw: Bytes) -> Bytes {
    if raw.len() <= BLOCKING_ABOVE {
        return Bytes::from(STANDARD.encode(&raw));
    }
    tokio::task::spawn_blocking(move || Bytes::from(STANDARD.encode(&raw)))
        .await
        .expect("base64 encoding does not panic")
}

/// cutover's stamp for a message: its source key and size.
fn stamp_of(message: &Upload) -> json::Stamp {
    json::Stamp::new(
        &message.key.to_string(),
        message.source_size,
        message.message_id.as_deref(),
    )
}

/// The message's flags with its labels (from a label-based source such as
/// Gmail) added as keywords, which become Outlook categories.
fn with_labels(message: &Upload) -> Flags {
    let mut flags = message.flags.clone();
    for label in &message.labels {
        if !flags.has(label) {
            flags.0.push(label.clone());
        }
    }
    flags
}

async fn build_json(message: &Upload) -> std::result::Result<json::JsonMessage, String> {
    let stamp = stamp_of(message);
    if message.raw.len() <= BLOCKING_ABOVE {
        return json::build_stamped(&message.raw, &with_labels(message), message.internal_date, Some(&stamp));
    }
    let (raw, flags, date) = (message.raw.clone(), with_labels(message), message.internal_date);
    tokio::task::spawn_blocking(move || json::build_stamped(&raw, &flags, date, Some(&stamp)))
        .await
        .map_err(|e| format!("conversion failed: {e}"))?
}

impl TargetSession for GraphSession {
    fn ensure_folder<'a>(
        &'a mut self,
        folder: &'a TargetFolder,
        known: Option<&'a str>,
    ) -> BoxFuture<'a, Result<String>> {
        async move {
            let reference = match known {
                Some(k) => k.to_owned(),
                None => self.resolve(folder).await?,
            };
            self.remember_folder(&reference, folder);
            Ok(reference)
        }
        .boxed()
    }

    fn upload<'a>(&'a mut self, folder: &'a str, message: &'a Upload) -> BoxFuture<'a, Result<String>> {
        async move {
            let mut folder = self.current_folder(folder);
            let mut recreated = false;
            loop {
                match self.write(&folder, message).await {
                    Ok(id) => return Ok(id),
                    // The folder was deleted in Exchange since it was made.
                    Err(f) if f.code == "ErrorItemNotFound" && !recreated => {
                        match self.recreate_folder(&folder).await? {
                            Some(fresh) => {
                                folder = fresh;
                                recreated = true;
                            }
                            None => return Err(f.error),
                        }
                    }
                    Err(f) => return Err(f.error),
                }
            }
        }
        .boxed()
    }

    fn find<'a>(&'a mut self, folder: &'a str, message: &'a Upload) -> BoxFuture<'a, Result<Option<String>>> {
        async move {
            let folder = self.current_folder(folder);
            match self.lookup(&folder, message).await? {
                Some(Found::Complete(id)) => Ok(Some(id)),
                Some(Found::Unfinished(id)) => {
                    self.finish(&id, message).await?;
                    Ok(Some(id))
                }
                None => Ok(None),
            }
        }
        .boxed()
    }

    fn inventory<'a>(
        &'a mut self,
        folder: &'a TargetFolder,
        known: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Inventoried>>> {
        async move {
            if let Some(k) = known {
                let reference = self.current_folder(k);
                if let Some(list) = self.list_folder(&reference).await? {
                    return Ok(list);
                }
                // Deleted in Exchange since: look for it by name below.
            }
            match self.existing(folder).await? {
                Some(reference) => Ok(self.list_folder(&reference).await?.unwrap_or_default()),
                None => Ok(Vec::new()),
            }
        }
        .boxed()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        async {}.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16, code: &str, message: &str) -> Failure {
        let body = serde_json::to_vec(&serde_json::json!({"error": {"code": code, "message": message}})).unwrap();
        client::classify(status, None, &body, "import message")
    }

    #[test]
    fn import_mime_unavailable_is_told_apart_from_a_bad_message() {
        assert!(import_unavailable(&failure(
            403,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again."
        )));
        assert!(import_unavailable(&failure(
            400,
            "BadRequest",
            "Resource not found for the segment 'importMime'."
        )));
        assert!(import_unavailable(&failure(404, "UnknownError", "")));
        assert!(import_unavailable(&failure(405, "", "")));
        assert!(!import_unavailable(&failure(
            400,
            "ErrorMimeContentInvalidBase64String",
            "Invalid base64 string for MIME content."
        )));
        assert!(!import_unavailable(&failure(
            404,
            "ErrorItemNotFound",
            "The specified object was not found in the store."
        )));
        assert!(!import_unavailable(&failure(
            404,
            "ErrorInvalidUser",
            "The requested user is invalid."
        )));
        assert!(!import_unavailable(&failure(429, "ApplicationThrottled", "")));
        assert!(!import_unavailable(&failure(500, "", "")));
    }

    fn created(is_read: bool, flag: Option<&str>, categories: &[&str]) -> CreatedMessage {
        CreatedMessage {
            id: "m1".into(),
            is_read: Some(is_read),
            flag: flag.map(|f| api::FollowupFlag { flag_status: f.into() }),
            categories: Some(categories.iter().map(|c| c.to_string()).collect()),
            received_date_time: None,
        }
    }

    #[test]
    fn only_differences_are_patched() {
        let flags = Flags::from_wire("\\Seen \\Flagged Work");
        assert!(state_patch(&flags, Some(&created(true, Some("flagged"), &["work"]))).is_empty());
        let p = state_patch(&flags, Some(&created(false, Some("notFlagged"), &[])));
        assert_eq!(p.is_read, Some(true));
        assert_eq!(p.flag.unwrap().flag_status, "flagged");
        assert_eq!(p.categories, Some(vec!["Work".to_owned()]));
        // Unread and unflagged, as Exchange created it: nothing to do.
        assert!(state_patch(&Flags::default(), Some(&created(false, None, &[]))).is_empty());
        // Exchange added a category the source does not have: removed.
        let p = state_patch(&Flags::default(), Some(&created(false, None, &["Imported"])));
        assert_eq!(p.categories, Some(vec![]));
        // State unknown (found after an interrupted create): set it all.
        let p = state_patch(&Flags::from_wire("\\Seen"), None);
        assert_eq!(
            (p.is_read, p.flag.map(|f| f.flag_status), p.categories),
            (Some(true), Some("notFlagged".into()), None)
        );
    }

    #[test]
    fn roles_map_to_well_known_folders() {
        assert_eq!(well_known(FolderRole::Inbox), Some("inbox"));
        assert_eq!(well_known(FolderRole::Sent), Some("sentitems"));
        assert_eq!(well_known(FolderRole::Drafts), Some("drafts"));
        assert_eq!(well_known(FolderRole::Trash), Some("deleteditems"));
        assert_eq!(well_known(FolderRole::Junk), Some("junkemail"));
        assert_eq!(well_known(FolderRole::Archive), Some("archive"));
        assert_eq!(well_known(FolderRole::Flagged), None);
    }

    #[test]
    fn url_parts_are_encoded() {
        assert_eq!(seg("a.b+c@example.com"), "a.b+c@example.com");
        assert_eq!(seg("AAMk/AD=="), "AAMk%2FAD==");
        assert_eq!(
            utf8_percent_encode("internetMessageId eq '<a''b@c>'", QUERY_VALUE).to_string(),
            "internetMessageId%20eq%20%27%3Ca%27%27b%40c%3E%27"
        );
    }

    #[test]
    fn upload_urls_must_be_https_or_loopback() {
        assert!(
            check_upload_url(
                "https://outlook.office.com/api/gv1.0/users('x')/messages('y')/AttachmentSessions('z')?authtoken=t"
            )
            .is_ok()
        );
        assert!(check_upload_url("http://127.0.0.1:9999/upload/1").is_ok());
        assert!(check_upload_url("http://attacker.example/upload").is_err());
    }
}
