//! One Graph request, done properly: admitted by the mailbox's limits,
//! authorized with a current token (renewed once on 401), bounded by a
//! timeout, retried on throttling and passing faults, and its failure
//! classified for the rest of cutover ([`classify`]).
//!
//! Retries follow [`crate::pace::RetryPolicy`]; a 429 or 503 with
//! Retry-After closes the mailbox's gate for that long so that no session
//! sends to that mailbox earlier. A request that is not safe to repeat
//! (creating a message) is not retried here after a failure that may have
//! happened after the server acted on it; the caller checks first.

use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_RANGE, CONTENT_TYPE, HeaderMap, RETRY_AFTER};

use super::api::ErrorBody;
use super::auth::TokenSource;
use super::throttle::MailboxLimits;
use crate::error::{Error, ErrorKind};
use crate::pace::RetryPolicy;

/// Attempts per request, throttling included.
const ATTEMPTS: u32 = 8;
/// When a 429 comes without Retry-After (Graph always sends one).
const DEFAULT_THROTTLE: Duration = Duration::from_secs(10);
/// Extra time a request gets per MiB of body, so a 150 MB import on a slow
/// link is not cut off by a timeout meant for small requests.
const SECONDS_PER_MIB: f64 = 1.0;

/// What a request carries.
#[derive(Clone)]
pub enum Body {
    Empty,
    Json(Bytes),
    /// Base64 MIME for importMime (`Content-Type: text/plain`).
    Base64Mime(Bytes),
    /// One range of an upload session.
    Chunk {
        data: Bytes,
        range: String,
    },
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Json(b) | Body::Base64Mime(b) | Body::Chunk { data: b, .. } => b.len() as u64,
        }
    }
}

/// One request to send.
pub struct Call<'a> {
    pub method: Method,
    pub url: String,
    pub body: Body,
    /// For error messages and logs: "create folder Lists", "import message".
    /// Never the URL, which for upload sessions holds a credential.
    pub what: &'a str,
    /// False for upload-session URLs, which carry their own credential and
    /// must not receive the Graph token.
    pub authorized: bool,
    /// Safe to send twice (GET, PATCH, DELETE, a range PUT).
    pub idempotent: bool,
}

/// A successful answer.
pub struct Reply {
    pub body: Bytes,
}

/// A failed request: the classified error plus what callers need to react
/// to specific Graph answers.
#[derive(Debug)]
pub struct Failure {
    pub status: Option<u16>,
    /// Graph's error code (`ErrorFolderExists`), empty when none.
    pub code: String,
    /// Graph's error message, empty when none.
    pub message: String,
    pub error: Error,
    /// The server may have acted on the request before it failed (a
    /// timeout, a reset, a 5xx): creating it again could duplicate it.
    pub maybe_applied: bool,
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Error {
        f.error
    }
}

/// Sends Graph requests for every session of a run.
pub struct Http {
    pub client: reqwest::Client,
    pub tokens: TokenSource,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl Http {
    pub fn new(client: reqwest::Client, tokens: TokenSource, timeout: Duration) -> Http {
        Http {
            client,
            tokens,
            timeout,
            retry: RetryPolicy::new(ATTEMPTS),
        }
    }

    /// Sends `call` to the mailbox behind `limits`, retrying what may be
    /// retried. Returns the answer for 2xx, a classified [`Failure`] else.
    pub async fn send(&self, limits: &MailboxLimits, call: &Call<'_>) -> Result<Reply, Failure> {
        let mut attempt = 0;
        let mut renewed = false;
        loop {
            let failure = match self.attempt(limits, call).await {
                Ok(Exchange::Done(reply)) => return Ok(reply),
                Ok(Exchange::Unauthorized(token)) if !renewed => {
                    // Expired or revoked early: one fresh token, once.
                    self.tokens.reject(&token).await;
                    renewed = true;
                    continue;
                }
                Ok(Exchange::Unauthorized(_)) => classify(401, None, b"", call.what),
                Ok(Exchange::Failed(f)) | Err(f) => f,
            };
            if let ErrorKind::Throttled(delay) = failure.error.kind {
                limits.hold_off(delay);
            }
            attempt += 1;
            let may_repeat = call.idempotent || !failure.maybe_applied;
            let delay = if may_repeat {
                self.retry.delay(attempt, &failure.error)
            } else {
                None
            };
            let Some(delay) = delay else {
                return Err(failure);
            };
            tracing::debug!(
                what = call.what,
                attempt,
                delay_ms = delay.as_millis() as u64,
                "Graph request will be retried: {}",
                failure.error
            );
            // A throttling delay is enforced by the gate for everyone; other
            // faults only delay this request.
            if !matches!(failure.error.kind, ErrorKind::Throttled(_)) {
                tokio::time::sleep(delay).await;
            }
        }
    }

    async fn attempt(&self, limits: &MailboxLimits, call: &Call<'_>) -> Result<Exchange, Failure> {
        let body_len = call.body.len();
        let timeout = self.timeout + Duration::from_secs_f64(body_len as f64 / (1024.0 * 1024.0) * SECONDS_PER_MIB);
        let slot = limits.admit(body_len).await;
        let token = if call.authorized {
            Some(self.tokens.token().await.map_err(|error| Failure {
                status: None,
                code: String::new(),
                message: String::new(),
                error,
                maybe_applied: false,
            })?)
        } else {
            None
        };
        // Getting a token can take a while; a 429 may have arrived meanwhile.
        limits.gate.wait().await;

        let mut request = self.client.request(call.method.clone(), &call.url).timeout(timeout);
        if let Some(t) = &token {
            request = request.header(AUTHORIZATION, format!("Bearer {}", t.expose()));
        }
        request = match &call.body {
            Body::Empty => request,
            Body::Json(b) => request.header(CONTENT_TYPE, "application/json").body(b.clone()),
            Body::Base64Mime(b) => request.header(CONTENT_TYPE, "text/plain").body(b.clone()),
            Body::Chunk { data, range } => request
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_RANGE, range.as_str())
                .body(data.clone()),
        };
        let started = std::time::Instant::now();
        let response = request
            .send()
            .await
            .map_err(|e| network_error(call.what, &e, timeout))?;
        let status = response.status().as_u16();
        let wait = retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| network_error(call.what, &e, timeout))?;
        drop(slot);
        tracing::debug!(what = call.what, method = %call.method, status, ms = started.elapsed().as_millis() as u64, "Graph request");
        if (200..300).contains(&status) {
            return Ok(Exchange::Done(Reply { body }));
        }
        if status == 401
            && let Some(t) = token
        {
            return Ok(Exchange::Unauthorized(t));
        }
        Ok(Exchange::Failed(classify(status, wait, &body, call.what)))
    }
}

enum Exchange {
    Done(Reply),
    /// 401 with this token.
    Unauthorized(crate::secret::Secret),
    Failed(Failure),
}

/// Retry-After in seconds, or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let secs = (when.timestamp() - chrono::Utc::now().timestamp()).max(0);
    Some(Duration::from_secs(secs as u64))
}

/// A request that got no HTTP answer.
pub fn network_error(what: &str, e: &reqwest::Error, timeout: Duration) -> Failure {
    // The URL is dropped from the message: upload-session URLs carry a
    // credential in their query.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    let text = strip_urls(&text);
    let (message, maybe_applied) = if e.is_timeout() {
        (
            format!("{what}: no answer within {} s; retrying", timeout.as_secs()),
            true,
        )
    } else if e.is_connect() {
        (
            format!("{what}: cannot connect ({text}); check network access to the endpoint"),
            false,
        )
    } else {
        (format!("{what}: connection failed ({text})"), true)
    };
    Failure {
        status: None,
        code: String::new(),
        message: String::new(),
        error: Error::transient(message),
        maybe_applied,
    }
}

/// Removes anything that looks like a URL from an error text.
fn strip_urls(text: &str) -> String {
    text.split(' ')
        .map(|w| {
            let w2 = w.trim_start_matches(['(', '"', '\'']);
            if w2.starts_with("http://") || w2.starts_with("https://") {
                "[url]"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Error codes that mean the mailbox itself is missing or not reachable
/// through Graph.
pub fn mailbox_missing(code: &str) -> bool {
    matches!(
        code,
        "ErrorInvalidUser"
            | "MailboxNotEnabledForRESTAPI"
            | "MailboxNotFound"
            | "ErrorNonExistentMailbox"
            | "ResourceNotFound"
            | "Request_ResourceNotFound"
    )
}

/// What an HTTP error answer from Graph means for cutover, and what the
/// admin should do about it. Pure, so every rule is unit-tested.
pub fn classify(status: u16, retry_after: Option<Duration>, body: &[u8], what: &str) -> Failure {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let code = parsed.error.code;
    let message = parsed.error.message;
    let detail = match (code.is_empty(), message.is_empty()) {
        (true, true) => format!("HTTP {status}"),
        (false, true) => format!("HTTP {status} {code}"),
        (true, false) => format!("HTTP {status}: {message}"),
        (false, false) => format!("HTTP {status} {code}: {message}"),
    };
    let (error, maybe_applied) = match status {
        429 => {
            let delay = retry_after.unwrap_or(DEFAULT_THROTTLE);
            (
                Error::throttled(
                    delay,
                    format!(
                        "{what}: Exchange Online throttled the app ({detail}); waiting {} s as asked",
                        delay.as_secs()
                    ),
                ),
                false,
            )
        }
        503 if retry_after.is_some() => {
            let delay = retry_after.unwrap_or(DEFAULT_THROTTLE);
            (
                Error::throttled(
                    delay,
                    format!(
                        "{what}: Graph is busy ({detail}); waiting {} s as asked",
                        delay.as_secs()
                    ),
                ),
                true,
            )
        }
        413 => (
            Error::refused(format!(
                "{what}: message too large for the mailbox ({detail}); raise the mailbox's limit (Set-Mailbox -MaxReceiveSize 150MB) and run again to copy it"
            )),
            false,
        ),
        _ if code == "ErrorMessageSizeExceeded" || code == "RequestEntityTooLarge" => (
            Error::refused(format!(
                "{what}: message too large for the mailbox ({detail}); raise the mailbox's limit (Set-Mailbox -MaxReceiveSize 150MB) and run again to copy it"
            )),
            false,
        ),
        _ if code.starts_with("ErrorQuotaExceeded") || status == 507 => (
            Error::fatal(format!(
                "{what}: the mailbox is full ({detail}); raise its quota or free space, then run again"
            )),
            false,
        ),
        401 => (
            Error::fatal(format!(
                "{what}: Graph refused the app's token even after renewing it ({detail}); check that the app has the application permission Mail.ReadWrite with admin consent, and that tenant_id is the mailbox's tenant"
            )),
            false,
        ),
        403 => (
            Error::fatal(format!(
                "{what}: access denied ({detail}); grant the app the application permission Mail.ReadWrite with admin consent, and if RBAC for Applications or an application access policy limits the app, include this mailbox"
            )),
            false,
        ),
        404 if code == "ErrorItemNotFound" => (Error::item(format!("{what}: not found ({detail})")), false),
        404 => (
            Error::fatal(format!(
                "{what}: mailbox not found ({detail}); check the EmailAddress column and that the user has an Exchange Online mailbox (licensed, not soft-deleted)"
            )),
            false,
        ),
        400 | 409 | 422 => (Error::item(format!("{what}: refused ({detail})")), false),
        500..=599 => (
            Error::transient(format!("{what}: Graph failed ({detail}); retrying")),
            true,
        ),
        _ => (Error::item(format!("{what}: unexpected answer ({detail})")), false),
    };
    Failure {
        status: Some(status),
        code,
        message,
        error,
        maybe_applied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: &str, message: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"error": {"code": code, "message": message}})).unwrap()
    }

    #[test]
    fn throttling_keeps_the_servers_delay() {
        let f = classify(
            429,
            Some(Duration::from_secs(37)),
            &body("ApplicationThrottled", "MailboxConcurrency"),
            "import message",
        );
        assert_eq!(f.error.kind, ErrorKind::Throttled(Duration::from_secs(37)));
        assert!(!f.maybe_applied, "a 429 was not acted on");
        let f = classify(503, Some(Duration::from_secs(5)), b"", "x");
        assert_eq!(f.error.kind, ErrorKind::Throttled(Duration::from_secs(5)));
        assert_eq!(
            classify(429, None, b"", "x").error.kind,
            ErrorKind::Throttled(DEFAULT_THROTTLE)
        );
    }

    #[test]
    fn server_faults_are_transient_and_possibly_applied() {
        for status in [500, 502, 503, 504] {
            let f = classify(status, None, b"<html>", "create message");
            assert_eq!(f.error.kind, ErrorKind::Transient, "{status}");
            assert!(f.maybe_applied, "{status}");
        }
    }

    #[test]
    fn bad_items_keep_their_reason() {
        let f = classify(
            400,
            None,
            &body(
                "ErrorMimeContentInvalidBase64String",
                "Invalid base64 string for MIME content.",
            ),
            "import message",
        );
        assert_eq!(f.error.kind, ErrorKind::Item);
        assert_eq!(f.code, "ErrorMimeContentInvalidBase64String");
        assert!(f.error.message.contains("Invalid base64 string"), "{}", f.error);
        assert!(!f.maybe_applied);
    }

    #[test]
    fn too_large_is_refused_with_advice() {
        let f = classify(413, None, b"", "import message");
        assert_eq!(f.error.kind, ErrorKind::Refused);
        assert!(f.error.message.contains("MaxReceiveSize"));
        assert_eq!(
            classify(400, None, &body("ErrorMessageSizeExceeded", "too big"), "x")
                .error
                .kind,
            ErrorKind::Refused
        );
    }

    #[test]
    fn access_and_missing_mailboxes_are_fatal() {
        let f = classify(
            403,
            None,
            &body("ErrorAccessDenied", "Access is denied."),
            "list folders",
        );
        assert_eq!(f.error.kind, ErrorKind::Fatal);
        assert!(f.error.message.contains("Mail.ReadWrite"));
        let f = classify(
            404,
            None,
            &body("ErrorInvalidUser", "The requested user 'x@y' is invalid."),
            "open mailbox",
        );
        assert_eq!(f.error.kind, ErrorKind::Fatal);
        assert!(f.error.message.contains("EmailAddress"));
        assert_eq!(classify(401, None, b"", "x").error.kind, ErrorKind::Fatal);
        assert_eq!(classify(507, None, b"", "x").error.kind, ErrorKind::Fatal);
        assert!(
            classify(403, None, &body("ErrorQuotaExceeded", "full"), "x")
                .error
                .message
                .contains("mailbox is full")
        );
    }

    #[test]
    fn a_missing_item_is_not_a_missing_mailbox() {
        let f = classify(
            404,
            None,
            &body("ErrorItemNotFound", "The specified object was not found in the store."),
            "x",
        );
        assert_eq!(f.error.kind, ErrorKind::Item);
        assert_eq!(f.code, "ErrorItemNotFound");
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "12".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(12)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        h.insert(RETRY_AFTER, later.parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(d >= Duration::from_secs(118) && d <= Duration::from_secs(120), "{d:?}");
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn urls_never_reach_error_texts() {
        let t =
            strip_urls("error sending request for url (https://outlook.office.com/api/upload?authtoken=SECRET): reset");
        assert!(!t.contains("SECRET"), "{t}");
    }
}
