//! The Exchange Online target, through Microsoft Graph with an app-only
//! token. This is the target cutover exists for: EWS in Exchange Online is
//! being switched off (October 2026 to April 2027), and IMAP APPEND into
//! Exchange is throttled hard and cannot be scoped to some mailboxes.
//! Graph can be: an Entra ID app is granted Mail.ReadWrite, and an
//! application access policy or RBAC for Applications limits it to the
//! mailboxes being migrated.
//!
//! Why it is done the way it is:
//!
//! - **Graph's limits are ours to keep** ([`throttle`]): Exchange Online
//!   allows an app 4 concurrent requests, 10,000 requests per 10 minutes
//!   and 150 MB of uploads per 5 minutes per mailbox, and punishes more
//!   with 429s. Every session of a mailbox shares one set of limits, and a
//!   Retry-After closes the mailbox's gate for all of them.
//! - **Every request is classified** ([`failure`]) into the crate's error
//!   kinds, with advice for the admin; [`client`] retries what may be
//!   retried and renews the token once on 401.
//! - **Byte-identical where the tenant allows it** ([`write`]): importMime
//!   stores the source bytes; where Mail-Advanced.ReadWrite.All is not
//!   granted, the message is re-created as JSON with MAPI properties
//!   ([`json`]) that keep its dates and keep it from being a draft.
//! - **Exactly once** ([`lookup`]): creating a message is not idempotent,
//!   and an answer can be lost after Exchange stored it. Every copy is
//!   stamped with named extended properties of cutover's own, so a copy a
//!   lost answer or a killed run left behind is found and finished (or
//!   removed when half-made) instead of being written twice.
//! - **Folders by id** ([`folders`]): role folders are Exchange's
//!   well-known folders; others are found or made level by level, and made
//!   again if deleted during the run, and renamed or moved in place when
//!   the source's are.
//! - **A one-way sync** ([`write`]): a copy's flags are PATCHed, a copy
//!   filed elsewhere is moved (and gets a new id), one deleted on the
//!   source is deleted.
//! - **Labels Outlook lists** ([`categories`]): Gmail's labels, set on the
//!   messages as categories, are added to the mailbox's master category
//!   list (with MailboxSettings.ReadWrite), without which Outlook does not
//!   show them in its category list.
//!
//! Tokens come from [`crate::oauth`] (an Entra ID app with a client secret
//! or a certificate); the Graph target's options are its own ([`config`]).
//! HTTP, folder ids and MAPI properties stay inside this module: the rest
//! of cutover sees a [`Target`].

mod api;
mod categories;
mod client;
mod compare;
pub mod config;
mod failure;
mod folders;
pub mod json;
mod lookup;
mod pim;
pub mod pim_json;
mod throttle;
mod write;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use self::client::{Call, Http, Reply};
use self::config::{GRAPH_KEYS, GraphSettings, GraphWriteMode};
use self::failure::Failure;
use self::throttle::MailboxLimits;
use crate::error::{Error, Result};
use crate::model::TargetLogin;
use crate::model::{Flags, MessageKey, TargetFolder, Upload};
use crate::oauth::{EntraApp, TokenSettings, TokenSource};
use crate::target::{Inventoried, Pending, Target, TargetSession};

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

// Helpers every part of the target uses.

/// `s` as one URL path segment (a mailbox, a folder or message id).
fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// A Graph answer's JSON body as `T`; `what` names the request.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| Error::transient(format!("{what}: Graph answered with an unreadable body ({e})")))
}

/// cutover's stamp for a message: its source key and size.
fn stamp_of(message: &Upload) -> json::Stamp {
    json::Stamp::new(
        &message.key.to_string(),
        message.source_size,
        message.message_id.as_deref(),
    )
}

/// The Graph target of a run; sessions for each mailbox come from
/// [`Target::open`].
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
    /// The admin was told to grant MailboxSettings.ReadWrite.
    warned_categories: AtomicBool,
    mailboxes: Mutex<HashMap<String, Arc<Mailbox>>>,
    /// Where each mailbox's limits report their waits ([`Target::report_waits`]).
    waits: std::sync::OnceLock<crate::wait::Waits>,
    /// `max_concurrent_requests_per_app`, shared by every mailbox's limits.
    app_requests: Option<Arc<tokio::sync::Semaphore>>,
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
    /// The names in the mailbox's Outlook master category list, lower-cased,
    /// once read ([`categories`]); held while it is brought up to date.
    categories: tokio::sync::Mutex<Option<std::collections::HashSet<String>>>,
}

impl GraphTarget {
    pub fn new(settings: GraphSettings) -> Result<GraphTarget> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.timeout.min(Duration::from_secs(30)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cutover/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::fatal(format!("cannot set up the HTTP client: {e}")))?;
        // One app token serves every mailbox; asked for with the Graph
        // client, which follows no redirect.
        let app = EntraApp::new(
            settings.tenant_id.clone(),
            settings.client_id.clone(),
            settings.authority.clone(),
            format!("{}/.default", settings.endpoint),
            &settings.credential,
            &GRAPH_KEYS,
        )?;
        let tokens = TokenSource::with_client(
            TokenSettings::Microsoft(Arc::new(app)),
            client.clone(),
            settings.timeout,
        );
        let http = Http::new(client, tokens, settings.timeout);
        let app_requests = settings
            .max_concurrent_requests_per_app
            .map(|n| Arc::new(tokio::sync::Semaphore::new(n)));
        Ok(GraphTarget {
            inner: Arc::new(Inner {
                http,
                settings,
                use_json: AtomicBool::new(false),
                warned_dates: AtomicBool::new(false),
                warned_categories: AtomicBool::new(false),
                mailboxes: Mutex::new(HashMap::new()),
                waits: std::sync::OnceLock::new(),
                app_requests,
            }),
        })
    }
}

impl Inner {
    /// Fails early, and with a clear reason, on a mailbox that does not
    /// exist or that the app may not read; once per mailbox per run.
    /// `users` is the mailbox's `/users/{id}` URL.
    async fn check_mailbox(&self, mailbox: &Mailbox, users: &str) -> Result<()> {
        mailbox
            .checked
            .get_or_try_init(|| async {
                let url = format!("{users}/mailFolders/inbox?$select=id");
                self.http
                    .send(&mailbox.limits, &Call::get(url, "open mailbox"))
                    .await
                    .map(|_| ())
                    .map_err(Error::from)
            })
            .await?;
        Ok(())
    }

    fn mailbox(&self, email: &str) -> Arc<Mailbox> {
        let mut map = self.mailboxes.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(email.to_ascii_lowercase())
            .or_insert_with(|| {
                let limits = match &self.app_requests {
                    Some(app) => MailboxLimits::new(&self.settings).sharing_app_cap(app.clone()),
                    None => MailboxLimits::new(&self.settings),
                };
                Arc::new(Mailbox {
                    limits: match self.waits.get() {
                        Some(waits) => limits.reporting(waits.clone(), email),
                        None => limits,
                    },
                    checked: tokio::sync::OnceCell::new(),
                    paths: Mutex::new(HashMap::new()),
                    moved: Mutex::new(HashMap::new()),
                    categories: tokio::sync::Mutex::new(None),
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
    fn open<'a>(&'a self, user: &'a TargetLogin) -> Pending<'a, Box<dyn TargetSession>> {
        async move {
            let email = user.email.trim().to_owned();
            if email.is_empty() {
                return Err(Error::fatal(format!(
                    "users file line {}: EmailAddress is empty",
                    user.users_file_line
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
                conversions: Mutex::default(),
            };
            session.inner.check_mailbox(&session.mailbox, &session.users).await?;
            let session: Box<dyn TargetSession> = Box::new(session);
            Ok(session)
        }
        .boxed()
    }

    fn capabilities(&self) -> crate::target::Capabilities {
        crate::target::Capabilities {
            move_messages: true,
            update_flags: true,
            delete: true,
            rename_folders: true,
            // isRead and flag.flagStatus; Exchange keeps no \Answered a
            // listing shows.
            listed_flags: &["\\Seen", "\\Flagged"],
            ..crate::target::Capabilities::MAIL_APPEND_ONLY
        }
    }

    /// The labels' categories go into the mailbox's Outlook master
    /// category list ([`categories`]).
    fn register_labels<'a>(&'a self, user: &'a TargetLogin, labels: &'a [String]) -> Pending<'a, Option<String>> {
        self.inner.register_labels(&user.email, labels).boxed()
    }

    /// Each mailbox's limits report their waits ([`MailboxLimits::reporting`]).
    fn report_waits(&self, waits: crate::wait::Waits) {
        let _ = self.inner.waits.set(waits);
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

/// One session writing into one mailbox. Its methods are spread over the
/// modules by concern ([`folders`], [`write`], [`lookup`]).
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
    /// Messages stored in another form than the source's, for the report
    /// ([`TargetSession::take_conversions`]).
    /// (A lock, as the messages of a batch are written several at once.)
    conversions: Mutex<Vec<(MessageKey, String)>>,
}

impl GraphSession {
    fn note_conversion(&self, conversion: (MessageKey, String)) {
        self.conversions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conversion);
    }

    async fn send(&self, call: &Call<'_>) -> std::result::Result<Reply, Failure> {
        self.inner.http.send(&self.mailbox.limits, call).await
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
}

impl TargetSession for GraphSession {
    fn ensure_folder<'a>(&'a mut self, folder: &'a TargetFolder, known: Option<&'a str>) -> Pending<'a, String> {
        self.ensure(folder, known).boxed()
    }

    fn upload<'a>(&'a mut self, folder: &'a str, message: &'a Upload) -> Pending<'a, String> {
        self.upload_to(folder, message).boxed()
    }

    fn upload_many<'a>(&'a mut self, folder: &'a str, messages: &'a [Upload]) -> BoxFuture<'a, Vec<Result<String>>> {
        self.upload_all(folder, messages).boxed()
    }

    fn find<'a>(&'a mut self, folder: &'a str, message: &'a Upload) -> Pending<'a, Option<String>> {
        self.find_copy(folder, message).boxed()
    }

    fn inventory<'a>(&'a mut self, folder: &'a TargetFolder, known: Option<&'a str>) -> Pending<'a, Vec<Inventoried>> {
        self.inventory_of(folder, known).boxed()
    }

    /// A message id is the mailbox's, whatever its folder: `folder` is not
    /// needed.
    fn update_flags<'a>(
        &'a mut self,
        _folder: &'a str,
        id: &'a str,
        flags: &'a Flags,
        labels: &'a [String],
    ) -> Pending<'a, String> {
        self.set_flags(id, flags, labels).boxed()
    }

    /// A message id is the mailbox's, whatever its folder: `from` is not
    /// needed.
    fn move_message<'a>(&'a mut self, _from: &'a str, id: &'a str, to: &'a str) -> Pending<'a, String> {
        self.move_copy(id, to).boxed()
    }

    fn delete_message<'a>(&'a mut self, _folder: &'a str, id: &'a str) -> Pending<'a, ()> {
        self.delete_copy(id).boxed()
    }

    fn rename_folder<'a>(&'a mut self, known: &'a str, to: &'a TargetFolder) -> Pending<'a, String> {
        self.rename(known, to).boxed()
    }

    fn compare_content<'a>(
        &'a mut self,
        _folder: &'a TargetFolder,
        _known: Option<&'a str>,
        item: &'a Inventoried,
        source: &'a [u8],
    ) -> Pending<'a, Option<String>> {
        self.compare_copy(item, source).boxed()
    }

    fn take_conversions(&mut self) -> Vec<(MessageKey, String)> {
        std::mem::take(self.conversions.get_mut().unwrap_or_else(|p| p.into_inner()))
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        async {}.boxed()
    }
}

/// Contacts and calendars go into the same mailbox, on the same limits
/// ([`pim`]).
impl crate::target::pim::PimTarget for GraphTarget {
    fn open<'a>(&'a self, user: &'a TargetLogin) -> Pending<'a, Box<dyn crate::target::pim::PimSession>> {
        pim::open_session(self.inner.clone(), user).boxed()
    }

    fn describe(&self) -> String {
        format!("Graph contacts and calendars {}", self.inner.settings.endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parts_are_encoded() {
        assert_eq!(seg("a.b+c@example.com"), "a.b+c@example.com");
        assert_eq!(seg("AAMk/AD=="), "AAMk%2FAD==");
        assert_eq!(
            utf8_percent_encode("internetMessageId eq '<a''b@c>'", QUERY_VALUE).to_string(),
            "internetMessageId%20eq%20%27%3Ca%27%27b%40c%3E%27"
        );
    }
}
