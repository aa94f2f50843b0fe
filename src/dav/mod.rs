//! The CalDAV (RFC 4791) and CardDAV (RFC 6352) client both sides use, as
//! `imap/` is for mail: one HTTP client with its credentials and deadline,
//! discovery of a user's calendars and address books (RFC 6764, RFC 4791
//! §6, RFC 6352 §7), change listing (RFC 6578 `sync-collection`, or an ETag
//! listing where a server offers none), bounded multiget fetches, and the
//! classification of every failure into [`crate::error::ErrorKind`].
//!
//! The source side (`source::dav`) only reads through it (PROPFIND, REPORT,
//! GET); the target side (`target::dav`) adds MKCALENDAR, extended MKCOL,
//! PUT and DELETE through [`DavClient::send`]. Neither imports the other.
//!
//! Secrets stay in [`Secret`]: the `Debug` of [`DavAuth`] and [`DavClient`]
//! prints none, and no error names a URL with credentials or a header.

mod discover;
mod fetch;
mod sync;
pub mod xml;

use std::fmt;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use crate::error::{Error, ErrorKind, Result};
use crate::oauth::TokenSource;
use crate::secret::Secret;

pub use discover::{Collection, CollectionKind, Discovery, SkippedCollection};
pub use fetch::{FetchOutcome, FetchedItem, MAX_ITEM_BYTES, MULTIGET_BATCH};
pub use sync::{Changes, ListedBy, Member, diff_members};

/// The most a single answer may hold (a multistatus of one multiget batch,
/// a PROPFIND of a large collection). A bigger answer is not read on.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// How a request proves who it is for. The secret never prints.
#[derive(Clone)]
pub enum DavAuth {
    /// HTTP Basic (RFC 7617): the account's login and password.
    Basic { user: String, password: Secret },
    /// An OAuth bearer token; `user` only names the account in messages.
    Bearer { user: String, token: Secret },
    /// OAuth bearer tokens for `user` from a token source (a Google service
    /// account with domain-wide delegation, a token command), asked for on
    /// each request so that a long sync never goes out with an expired one.
    OAuth { user: String, tokens: TokenSource },
}

impl DavAuth {
    /// The account, as error messages name it.
    pub fn user(&self) -> &str {
        match self {
            DavAuth::Basic { user, .. } | DavAuth::Bearer { user, .. } | DavAuth::OAuth { user, .. } => user,
        }
    }
}

impl fmt::Debug for DavAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DavAuth::Basic { user, .. } => write!(f, "Basic {{ user: {user:?}, password: [redacted] }}"),
            DavAuth::Bearer { user, .. } => write!(f, "Bearer {{ user: {user:?}, token: [redacted] }}"),
            DavAuth::OAuth { user, .. } => write!(f, "OAuth {{ user: {user:?} }}"),
        }
    }
}

/// Per-client choices.
#[derive(Clone, Debug)]
pub struct DavOptions {
    /// The deadline of one request, connection and whole answer included.
    pub timeout: Duration,
    /// Use `sync-collection` where a collection offers it. `false` forces
    /// the ETag listing (PROPFIND Depth 1 `getetag`) everywhere: for servers
    /// whose sync support is known to be unreliable, and for tests.
    pub sync_collection: bool,
    /// Hrefs asked for in one multiget ([`MULTIGET_BATCH`] by default):
    /// lower for a server that limits its multiget answers.
    pub multiget_batch: usize,
}

impl Default for DavOptions {
    fn default() -> Self {
        DavOptions {
            timeout: Duration::from_secs(60),
            sync_collection: true,
            multiget_batch: MULTIGET_BATCH,
        }
    }
}

/// How much of the account a failure stops: it decides what a 403 or a 404
/// means (see [`classify`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Finding the principal, the home sets and the collections.
    Discovery,
    /// Reading or creating one collection.
    Collection,
    /// Reading or writing one item.
    Item,
}

/// One HTTP answer, read whole (up to its cap).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

/// A CalDAV/CardDAV client for one account on one server.
#[derive(Clone)]
pub struct DavClient {
    http: reqwest::Client,
    /// The URL the admin gave (server root, context path or a collection),
    /// its path ending in `/`.
    base: Url,
    auth: DavAuth,
    options: DavOptions,
}

impl fmt::Debug for DavClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DavClient")
            .field("base", &self.base.as_str())
            .field("auth", &self.auth)
            .field("options", &self.options)
            .finish()
    }
}

impl DavClient {
    /// A client for `url` (https, or plain http to loopback; no credentials
    /// or query in it). Redirects are not followed blindly: discovery
    /// follows those of `/.well-known/` itself (see [`DavClient::discover`]).
    pub fn new(url: &str, auth: DavAuth, options: DavOptions) -> Result<DavClient> {
        let checked = crate::http::base_url("dav", "url", url).map_err(Error::fatal)?;
        let mut base = Url::parse(&checked).map_err(|e| Error::fatal(format!("[dav] url = {url:?}: {e}")))?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(options.timeout.min(Duration::from_secs(30)))
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cutover/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::fatal(format!("cannot set up the HTTP client: {e}")))?;
        Ok(DavClient {
            http,
            base,
            auth,
            options,
        })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    pub fn options(&self) -> &DavOptions {
        &self.options
    }

    /// The account, as messages name it.
    pub fn user(&self) -> &str {
        self.auth.user()
    }

    /// The absolute URL of an href (a path such as `/alice/cal/` or a full
    /// URL) on this server.
    pub fn url(&self, href: &str) -> Result<Url> {
        self.base
            .join(href)
            .map_err(|e| Error::transient(format!("the server named an unusable href {href:?}: {e}")))
    }

    /// Sends one request with the account's credentials and reads the whole
    /// answer (at most `cap` bytes) before the deadline. Any status comes
    /// back as it is; a request that got no answer in time, or an answer
    /// larger than `cap`, is an error. `what` names the operation in
    /// messages ("PROPFIND /alice/cal/").
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        headers: &[(HeaderName, HeaderValue)],
        body: Option<String>,
        cap: usize,
        what: &str,
    ) -> Result<Answer> {
        self.send_capped(method, url, headers, body, cap, what)
            .await?
            .ok_or_else(|| {
                Error::item(format!(
                    "{what}: the answer is larger than {} KiB, more than cutover reads",
                    cap / 1024
                ))
            })
    }

    /// [`DavClient::send`], with `None` for an answer larger than `cap`
    /// (not read on), for callers that then ask for less.
    ///
    /// A request that only reads (GET, PROPFIND, REPORT) is sent again, up
    /// to [`READ_ATTEMPTS`] times in all, when it got no answer in time or
    /// the server answered 429, 502, 503 or 504 (after its Retry-After, at
    /// most [`MAX_RETRY_WAIT`]); a passing fault of the server then costs
    /// nothing. Writes are not repeated here: their callers decide, since
    /// a lost answer may mean the write was made. With OAuth, a 401 gets
    /// one fresh token and one more try.
    pub(crate) async fn send_capped(
        &self,
        method: Method,
        url: Url,
        headers: &[(HeaderName, HeaderValue)],
        body: Option<String>,
        cap: usize,
        what: &str,
    ) -> Result<Option<Answer>> {
        let reads_only = matches!(method.as_str(), "GET" | "HEAD" | "PROPFIND" | "REPORT" | "OPTIONS");
        let mut attempt = 1;
        let mut renewed = false;
        loop {
            let token = match &self.auth {
                DavAuth::OAuth { user, tokens } => Some(tokens.token(user).await?),
                _ => None,
            };
            let outcome = self
                .send_once(
                    method.clone(),
                    url.clone(),
                    headers,
                    body.clone(),
                    cap,
                    what,
                    token.as_ref(),
                )
                .await;
            if let (Ok(Some(answer)), DavAuth::OAuth { user, tokens }, Some(token)) = (&outcome, &self.auth, &token)
                && answer.status == StatusCode::UNAUTHORIZED
                && !renewed
            {
                // Expired or revoked early: one fresh token, once.
                tokens.reject(user, token).await;
                renewed = true;
                continue;
            }
            let wait = match &outcome {
                Err(e) if e.kind == ErrorKind::Transient => retry_wait(attempt, None),
                Ok(Some(answer)) if RETRIED_STATUSES.contains(&answer.status.as_u16()) => {
                    retry_wait(attempt, crate::http::retry_after(&answer.headers))
                }
                _ => None,
            };
            match wait {
                Some(wait) if reads_only && attempt < READ_ATTEMPTS => {
                    tracing::debug!(
                        what,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "DAV request will be sent again"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => return outcome,
            }
        }
    }

    /// One exchange of [`DavClient::send_capped`].
    #[allow(clippy::too_many_arguments)]
    async fn send_once(
        &self,
        method: Method,
        url: Url,
        headers: &[(HeaderName, HeaderValue)],
        body: Option<String>,
        cap: usize,
        what: &str,
        token: Option<&Secret>,
    ) -> Result<Option<Answer>> {
        let mut request = self.http.request(method, url);
        request = match (&self.auth, token) {
            (DavAuth::Basic { user, password }, _) => request.basic_auth(user, Some(password.expose())),
            (DavAuth::Bearer { token, .. }, _) => request.bearer_auth(token.expose()),
            (DavAuth::OAuth { .. }, Some(token)) => request.bearer_auth(token.expose()),
            (DavAuth::OAuth { .. }, None) => request,
        };
        for (name, value) in headers {
            request = request.header(name, value.clone());
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let timeout = self.options.timeout;
        let exchange = async {
            let mut response = request
                .send()
                .await
                .map_err(|e| crate::http::transport_error(what, &e, timeout).0)?;
            let status = response.status();
            let headers = response.headers().clone();
            let mut bytes = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| crate::http::transport_error(what, &e, timeout).0)?
            {
                if bytes.len() + chunk.len() > cap {
                    return Ok(None);
                }
                bytes.extend_from_slice(&chunk);
            }
            // iCalendar and vCard 4 are UTF-8 by definition, and so is
            // every DAV server's XML in practice; reading on would alter
            // the data, and asking again gives the same bytes.
            let body = String::from_utf8(bytes)
                .map_err(|_| Error::item(format!("{what}: the server's answer is not UTF-8 text")))?;
            Ok(Some(Answer { status, headers, body }))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(Error::transient(format!(
                "{what}: no answer within {} ms",
                timeout.as_millis()
            ))),
        }
    }

    /// PROPFIND with `Depth` and a body, expecting 207 Multi-Status.
    pub async fn propfind(&self, href: &str, depth: u8, body: &str, scope: Scope) -> Result<String> {
        let what = format!("PROPFIND {href}");
        let answer = self
            .send(
                Method::from_bytes(b"PROPFIND").expect("valid method"),
                self.url(href)?,
                &[depth_header(depth), xml_content_type()],
                Some(body.to_owned()),
                MAX_RESPONSE_BYTES,
                &what,
            )
            .await?;
        if answer.status != StatusCode::MULTI_STATUS {
            return Err(classify(&answer, scope, &what, self.user()));
        }
        Ok(answer.body)
    }

    /// REPORT with a body and a `Depth` header (the multigets send none, see
    /// `fetch`). The answer
    /// comes back whatever its status, for the caller to read
    /// preconditions (RFC 6578 §3.2).
    pub async fn report(&self, href: &str, depth: u8, body: String, cap: usize) -> Result<Answer> {
        self.send(
            Method::from_bytes(b"REPORT").expect("valid method"),
            self.url(href)?,
            &[depth_header(depth), xml_content_type()],
            Some(body),
            cap,
            &format!("REPORT {href}"),
        )
        .await
    }
}

pub(crate) fn depth_header(depth: u8) -> (HeaderName, HeaderValue) {
    (HeaderName::from_static("depth"), HeaderValue::from(u16::from(depth)))
}

pub(crate) fn xml_content_type() -> (HeaderName, HeaderValue) {
    (CONTENT_TYPE, HeaderValue::from_static("application/xml; charset=utf-8"))
}

/// Turns an answer that is not the success expected into an error of the
/// right class, with what the admin can do. `what` names the operation and
/// its href (never a full URL, never credentials).
pub fn classify(answer: &Answer, scope: Scope, what: &str, user: &str) -> Error {
    let status = answer.status;
    let code = status.as_u16();
    let precondition = xml::error_condition(&answer.body);
    let reason = status.canonical_reason().unwrap_or("");
    match code {
        401 => Error::fatal(format!(
            "{what}: the server refused the login of {user} ({code} {reason}); check the user's password or token"
        )),
        403 if precondition.is_some() && scope != Scope::Discovery => Error::refused(format!(
            "{what}: the server refuses it ({code}, precondition {})",
            precondition.unwrap_or_default()
        )),
        403 if scope == Scope::Item => Error::refused(format!("{what}: the server forbids it ({code} {reason})")),
        403 => Error::fatal(format!(
            "{what}: {user} may not access it ({code} {reason}); check the account's permissions on the server"
        )),
        404 | 410 if scope == Scope::Item => Error::item(format!("{what}: no longer on the server ({code} {reason})")),
        404 | 410 => Error::fatal(format!(
            "{what}: the collection does not exist on the server for {user} ({code} {reason}); check the URL"
        )),
        412 => Error::item(format!(
            "{what}: changed on the server since it was read ({code} {reason}); it is read again on the next run"
        )),
        413 | 415 => Error::refused(format!("{what}: the server will not store it ({code} {reason})")),
        429 | 503 => match crate::http::retry_after(&answer.headers) {
            Some(delay) => Error::throttled(delay, format!("{what}: the server asks to slow down ({code} {reason})")),
            None if code == 429 => Error::throttled(
                Duration::from_secs(30),
                format!("{what}: the server asks to slow down ({code} {reason})"),
            ),
            None => Error::transient(format!("{what}: the server is unavailable ({code} {reason}); retrying")),
        },
        507 => Error::fatal(format!(
            "{what}: the server has no space left for {user} ({code} {reason}); raise the account's quota"
        )),
        500..=599 => Error::transient(format!("{what}: server error ({code} {reason}); retrying")),
        _ if scope == Scope::Item => Error::item(format!("{what}: unexpected answer {code} {reason}")),
        _ => Error::fatal(format!(
            "{what}: unexpected answer {code} {reason}; check that the URL is a CalDAV/CardDAV server"
        )),
    }
}

/// How many times a request that only reads is sent in all before its
/// fault is reported (see [`DavClient::send_capped`]).
pub const READ_ATTEMPTS: u32 = 3;

/// The longest wait before sending a read again; a server asking for
/// longer has its answer reported instead (the run moves on, the next run
/// reads it).
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);

/// Answers worth asking again for: throttled, or a gateway or server that
/// is passing through a bad moment.
const RETRIED_STATUSES: [u16; 4] = [429, 502, 503, 504];

/// The wait before attempt `attempt + 1`: the server's Retry-After where it
/// gave one, else 1 s, 2 s, 4 s, ...; `None` when the server asks for more
/// than [`MAX_RETRY_WAIT`].
fn retry_wait(attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
    let wait = retry_after.unwrap_or_else(|| Duration::from_secs(1 << (attempt - 1).min(5)));
    (wait <= MAX_RETRY_WAIT).then_some(wait)
}

/// Whether two hrefs name the same resource: compared as decoded paths,
/// ignoring scheme and host and a trailing slash.
pub fn same_href(a: &str, b: &str) -> bool {
    normalize_href(a) == normalize_href(b)
}

/// The decoded path of an href, without a trailing slash.
pub fn normalize_href(href: &str) -> String {
    let path = match Url::parse(href) {
        Ok(url) => url.path().to_owned(),
        Err(_) => href.to_owned(),
    };
    let decoded = percent_encoding::percent_decode_str(&path)
        .decode_utf8_lossy()
        .into_owned();
    let trimmed = decoded.trim_end_matches('/');
    if trimmed.is_empty() { "/".into() } else { trimmed.into() }
}

/// The path form of an href the server sent (an absolute URL becomes its
/// path), so that every href cutover stores looks alike.
pub fn path_of(href: &str) -> String {
    match Url::parse(href) {
        Ok(url) => url.path().to_owned(),
        Err(_) => href.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(code: u16, body: &str, retry_after: Option<&str>) -> Answer {
        let mut headers = HeaderMap::new();
        if let Some(r) = retry_after {
            headers.insert(reqwest::header::RETRY_AFTER, r.parse().unwrap());
        }
        Answer {
            status: StatusCode::from_u16(code).unwrap(),
            headers,
            body: body.into(),
        }
    }

    #[test]
    fn statuses_are_classified_as_the_issue_describes() {
        use crate::error::ErrorKind::*;
        let k = |code, body: &str, scope, ra| classify(&answer(code, body, ra), scope, "PUT /a/b.ics", "alice").kind;
        assert_eq!(k(401, "", Scope::Discovery, None), Fatal);
        assert_eq!(k(403, "", Scope::Discovery, None), Fatal);
        assert_eq!(k(404, "", Scope::Collection, None), Fatal);
        assert_eq!(k(412, "", Scope::Item, None), Item);
        assert_eq!(k(413, "", Scope::Item, None), Refused);
        assert_eq!(k(415, "", Scope::Item, None), Refused);
        let uid_conflict =
            r#"<D:error xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><C:no-uid-conflict/></D:error>"#;
        let e = classify(&answer(403, uid_conflict, None), Scope::Item, "PUT /a/b.ics", "alice");
        assert_eq!(e.kind, Refused);
        assert!(e.message.contains("no-uid-conflict"), "{}", e.message);
        assert_eq!(k(503, "", Scope::Item, Some("7")), Throttled(Duration::from_secs(7)));
        assert_eq!(k(429, "", Scope::Item, Some("3")), Throttled(Duration::from_secs(3)));
        assert_eq!(k(503, "", Scope::Item, None), Transient);
        assert_eq!(k(502, "", Scope::Item, None), Transient);
    }

    #[test]
    fn hrefs_compare_as_decoded_paths() {
        assert!(same_href("/alice/cal/", "http://h:1/alice/cal"));
        assert!(same_href("/alice/my%20cal/x.ics", "/alice/my cal/x.ics"));
        assert!(!same_href("/alice/cal/a.ics", "/alice/cal/b.ics"));
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let auth = DavAuth::Basic {
            user: "alice".into(),
            password: Secret::new("hunter2"),
        };
        let client = DavClient::new("http://127.0.0.1:1/", auth, DavOptions::default()).unwrap();
        let shown = format!("{client:?}");
        assert!(shown.contains("alice") && !shown.contains("hunter2"), "{shown}");
    }
}

/// The client's own behaviour on the wire: what it sends again and with
/// which credentials. A scripted loopback HTTP peer plays the server's
/// part, since these are faults (503s, expired tokens) a real server
/// cannot be asked to make on cue; the DAV protocol itself is tested
/// against a real Radicale (tests/dav.rs).
#[cfg(test)]
mod wire_tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::oauth::TokenSettings;

    /// Serves `replies` in order, one per connection; records each request
    /// head (request line and headers).
    async fn scripted(replies: Vec<&'static str>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            for reply in replies {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // The head, then the body its Content-Length announces.
                loop {
                    let n = stream.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length || n == 0 {
                            record.lock().unwrap().push(text[..end].to_owned());
                            break;
                        }
                    }
                    if n == 0 {
                        break;
                    }
                }
                stream.write_all(reply.as_bytes()).await.unwrap();
                stream.shutdown().await.ok();
            }
        });
        (base, seen)
    }

    const UNAVAILABLE: &str =
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    const UNAUTHORIZED: &str = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    const MULTISTATUS: &str = "HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml\r\nContent-Length: 45\r\nConnection: close\r\n\r\n<d:multistatus xmlns:d=\"DAV:\"></d:multistatus>";

    fn basic() -> DavAuth {
        DavAuth::Basic {
            user: "alice".into(),
            password: Secret::new("pw"),
        }
    }

    #[tokio::test]
    async fn a_read_the_server_was_too_busy_for_is_sent_again() {
        let (base, seen) = scripted(vec![UNAVAILABLE, UNAVAILABLE, MULTISTATUS]).await;
        let client = DavClient::new(&base, basic(), DavOptions::default()).unwrap();
        let body = client.propfind("/alice/", 0, "<x/>", Scope::Discovery).await.unwrap();
        assert!(body.contains("multistatus"));
        assert_eq!(seen.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_read_gives_up_after_its_attempts_and_a_write_is_never_repeated() {
        let (base, seen) = scripted(vec![UNAVAILABLE, UNAVAILABLE, UNAVAILABLE, UNAVAILABLE]).await;
        let client = DavClient::new(&base, basic(), DavOptions::default()).unwrap();
        let err = client
            .propfind("/alice/", 0, "<x/>", Scope::Discovery)
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert_eq!(seen.lock().unwrap().len(), READ_ATTEMPTS as usize);

        let (base, seen) = scripted(vec![UNAVAILABLE, MULTISTATUS]).await;
        let client = DavClient::new(&base, basic(), DavOptions::default()).unwrap();
        let answer = client
            .send(
                Method::PUT,
                client.url("/alice/cal/a.ics").unwrap(),
                &[],
                Some("BEGIN:VCALENDAR".into()),
                1024,
                "PUT a.ics",
            )
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(seen.lock().unwrap().len(), 1, "a write is left to its caller");
    }

    #[tokio::test]
    async fn oauth_sends_a_bearer_token_and_renews_it_once_when_refused() {
        let dir = tempfile::tempdir().unwrap();
        let counter = dir.path().join("n");
        // Each run of the command prints a new token: tok-1, tok-2, ...
        let command = format!(
            "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; echo tok-$n-for-$CUTOVER_LOGIN",
            c = counter.display()
        );
        let tokens = TokenSource::new(TokenSettings::Command(command), Duration::from_secs(10));
        let auth = DavAuth::OAuth {
            user: "alice@example.org".into(),
            tokens,
        };
        assert!(!format!("{auth:?}").contains("tok-"), "no token in Debug");
        let (base, seen) = scripted(vec![UNAUTHORIZED, MULTISTATUS, MULTISTATUS]).await;
        let client = DavClient::new(&base, auth, DavOptions::default()).unwrap();
        client.propfind("/alice/", 0, "<x/>", Scope::Discovery).await.unwrap();
        client.propfind("/alice/", 0, "<x/>", Scope::Discovery).await.unwrap();
        let seen = seen.lock().unwrap();
        let bearer = |head: &String| {
            head.lines()
                .find_map(|l| {
                    l.strip_prefix("authorization: ")
                        .or_else(|| l.strip_prefix("Authorization: "))
                })
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(
            seen.iter().map(bearer).collect::<Vec<_>>(),
            [
                "Bearer tok-1-for-alice@example.org",
                "Bearer tok-2-for-alice@example.org",
                "Bearer tok-2-for-alice@example.org"
            ],
            "refused once: a new token; then the cached one"
        );
    }
}
