//! One Graph request, done properly: admitted by the mailbox's limits,
//! authorized with a current token (renewed once on 401), bounded by a
//! timeout, retried on throttling and passing faults, and its failure
//! classified for the rest of cutover ([`super::failure`]).
//!
//! Retries follow [`crate::pace::RetryPolicy`]; a 429 or 503 with
//! Retry-After closes the mailbox's gate for that long so that no session
//! sends to that mailbox earlier. A request that is not safe to repeat
//! (creating a message) is not retried here after a failure that may have
//! happened after the server acted on it; the caller checks first.

use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_RANGE, CONTENT_TYPE};

use super::failure::{Failure, classify, network_error};
use super::throttle::MailboxLimits;
use crate::error::ErrorKind;
use crate::http::retry_after;
use crate::oauth::TokenSource;
use crate::pace::RetryPolicy;

/// Attempts per request, throttling included.
const ATTEMPTS: u32 = 8;
/// The login an app token is asked for: an Entra ID app token is not tied
/// to a mailbox, so one serves every session of the run.
const APP_TOKEN: &str = "";
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
    /// Raw bytes of a given type (a contact's photo).
    Bytes {
        data: Bytes,
        content_type: &'static str,
    },
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
            Body::Json(b) | Body::Base64Mime(b) | Body::Bytes { data: b, .. } | Body::Chunk { data: b, .. } => {
                b.len() as u64
            }
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

impl Call<'_> {
    /// An authorized GET, safe to repeat.
    pub fn get(url: String, what: &str) -> Call<'_> {
        Call {
            method: Method::GET,
            url,
            body: Body::Empty,
            what,
            authorized: true,
            idempotent: true,
        }
    }

    /// An authorized DELETE, safe to repeat.
    pub fn delete(url: String, what: &str) -> Call<'_> {
        Call {
            method: Method::DELETE,
            url,
            body: Body::Empty,
            what,
            authorized: true,
            idempotent: true,
        }
    }
}

/// A successful answer.
pub struct Reply {
    pub body: Bytes,
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
                    self.tokens.reject(APP_TOKEN, &token).await;
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
            Some(self.tokens.token(APP_TOKEN).await.map_err(Failure::plain)?)
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
            Body::Bytes { data, content_type } => request.header(CONTENT_TYPE, *content_type).body(data.clone()),
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
