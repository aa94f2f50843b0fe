//! OAuth 2.0 access tokens, for every place cutover logs in with one: IMAP
//! logins (SASL XOAUTH2) where a server no longer takes passwords (Gmail
//! Workspace, Exchange Online), and the Microsoft Graph target.
//!
//! Three ways to get a token ([`TokenSettings`]):
//!
//! - `token_command` ([`command`]): a program that prints a token for the
//!   login it is given;
//! - an Entra ID app with client credentials ([`entra`]): a client secret
//!   or a certificate; one app-only token opens every mailbox the app was
//!   granted, for Graph (`{endpoint}/.default`) or Exchange Online IMAP
//!   (`https://outlook.office365.com/.default`, `IMAP.AccessAsApp`);
//! - a Google service account with domain-wide delegation ([`google`]):
//!   one token per user.
//!
//! The two assertions cutover signs (an Entra certificate credential, a
//! Google service account) share one signer ([`jwt`]). Every token, from
//! any of them, goes through one cache ([`TokenSource`]): shared by all the
//! connections and sessions of a run, so they do not each ask for one;
//! renewed a little before it expires (none of these flows has a refresh
//! token: renewing means asking again); and forgotten when a server
//! refuses it.
//!
//! Tokens stay in [`Secret`]: never logged, never in an error (a failing
//! command's output is not shown, as it may hold a token).

mod command;
pub mod config;
pub mod entra;
pub mod google;
mod jwt;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

pub use self::entra::{EntraApp, EntraCredential};
pub use self::google::{GMAIL_SCOPE, GOOGLE_DAV_SCOPE, GoogleServiceAccount};
use crate::error::Result;
use crate::secret::Secret;

/// Renew this long before a token expires (or at half-life for unusually
/// short tokens), so no request goes out with a token about to lapse in
/// flight.
const RENEW_EARLY: Duration = Duration::from_secs(300);

/// Where tokens come from.
#[derive(Clone, Debug)]
pub enum TokenSettings {
    /// `sh -c COMMAND` with `CUTOVER_LOGIN` set; stdout is the token.
    Command(String),
    /// Entra ID client credentials (Exchange Online IMAP, or Graph).
    Microsoft(Arc<EntraApp>),
    /// A Google service account key (its JSON key file's fields).
    Google(Arc<GoogleServiceAccount>),
}

impl TokenSettings {
    /// Tokens are cached per login, except an app token, which is the same
    /// for every login.
    fn cache_key<'a>(&self, login: &'a str) -> &'a str {
        match self {
            TokenSettings::Command(_) | TokenSettings::Google(_) => login,
            TokenSettings::Microsoft(_) => "",
        }
    }
}

struct Cached {
    token: Secret,
    renew_at: Instant,
}

/// Hands out a valid token for a login, asking for a new one when needed.
/// Clones share one cache.
#[derive(Clone)]
pub struct TokenSource {
    settings: TokenSettings,
    timeout: Duration,
    http: reqwest::Client,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource").field("settings", &self.settings).finish()
    }
}

impl TokenSource {
    /// With an HTTP client of its own; `timeout` bounds each token request
    /// and each run of a token command.
    pub fn new(settings: TokenSettings, timeout: Duration) -> TokenSource {
        // A token request carries the app's secret or a signed assertion:
        // it goes to the configured endpoint only, never where a redirect
        // points.
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        TokenSource::with_client(settings, http, timeout)
    }

    /// With the caller's HTTP client (Graph's: no redirects, cutover's user
    /// agent).
    pub fn with_client(settings: TokenSettings, http: reqwest::Client, timeout: Duration) -> TokenSource {
        TokenSource {
            settings,
            timeout,
            http,
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A token for `login` valid for a while yet (for an app token the
    /// login does not matter). Concurrent callers wait for one request
    /// rather than each sending their own.
    pub async fn token(&self, login: &str) -> Result<Secret> {
        let key = self.settings.cache_key(login);
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.get(key)
            && Instant::now() < c.renew_at
        {
            return Ok(c.token.clone());
        }
        let (token, lifetime) = match &self.settings {
            TokenSettings::Command(command) => (
                command::run(command, login, self.timeout).await?,
                command::COMMAND_TOKEN_LIFETIME,
            ),
            TokenSettings::Microsoft(app) => app.fetch(&self.http, self.timeout).await?,
            TokenSettings::Google(account) => account.fetch(login, &self.http, self.timeout).await?,
        };
        let early = RENEW_EARLY.min(lifetime / 2);
        cache.insert(
            key.to_owned(),
            Cached {
                token: token.clone(),
                renew_at: Instant::now() + lifetime - early,
            },
        );
        tracing::debug!(lifetime_s = lifetime.as_secs(), "new OAuth access token");
        Ok(token)
    }

    /// A server refused `rejected`, the token of `login`: forget it, unless
    /// another connection already replaced it, so the next
    /// [`TokenSource::token`] asks anew.
    pub async fn reject(&self, login: &str, rejected: &Secret) {
        let key = self.settings.cache_key(login);
        let mut cache = self.cache.lock().await;
        if cache.get(key).is_some_and(|c| &c.token == rejected) {
            cache.remove(key);
        }
    }
}

/// A successful token response. `access_token` is moved into a `Secret` as
/// soon as it is parsed.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    /// Seconds; Entra ID grants 60 to 90 minutes, Google one hour.
    expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and its lifetime (an hour when the server does not say,
    /// never under a minute).
    fn into_token(self) -> (Secret, Duration) {
        let lifetime = Duration::from_secs(self.expires_in.unwrap_or(3600).max(60));
        (Secret::new(self.access_token), lifetime)
    }
}

/// A token endpoint's answer, whatever its status.
struct Answer {
    status: reqwest::StatusCode,
    retry_after: Option<Duration>,
    body: Bytes,
}

/// POSTs a token request form; `what` names the request in the error of
/// one that gets no answer.
async fn post_form<F: serde::Serialize + ?Sized>(
    http: &reqwest::Client,
    url: &str,
    form: &F,
    timeout: Duration,
    what: &str,
) -> Result<Answer> {
    let failed = |e: reqwest::Error| crate::http::transport_error(what, &e, timeout).0;
    let response = http
        .post(url)
        .timeout(timeout)
        .form(form)
        .send()
        .await
        .map_err(failed)?;
    let status = response.status();
    let retry_after = crate::http::retry_after(response.headers());
    let body = response.bytes().await.map_err(failed)?;
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// The SASL XOAUTH2 initial response (before base64): who, and the token.
pub fn xoauth2_response(login: &str, token: &Secret) -> Vec<u8> {
    format!("user={login}\x01auth=Bearer {}\x01\x01", token.expose()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoauth2_initial_response_as_google_and_microsoft_document_it() {
        // "base64("user=" {User} "^Aauth=Bearer " {Access Token} "^A^A")"
        assert_eq!(
            xoauth2_response(
                "someuser@example.com",
                &Secret::new("ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
            ),
            b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
        );
    }

    #[tokio::test]
    async fn token_command_gets_the_login_and_its_token_is_cached() {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("count");
        let command = format!("echo x >> {}; echo \"token-for-$CUTOVER_LOGIN\"", count.display());
        let source = TokenSource::new(TokenSettings::Command(command), Duration::from_secs(10));
        let t = source.token("alice@example.com").await.unwrap();
        assert_eq!(t.expose(), "token-for-alice@example.com");
        let t = source.token("alice@example.com").await.unwrap();
        assert_eq!(t.expose(), "token-for-alice@example.com");
        assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 1, "cached");
        source.reject("alice@example.com", &t).await;
        source.token("alice@example.com").await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&count).unwrap().lines().count(),
            2,
            "asked again"
        );
    }

    #[tokio::test]
    async fn a_failing_command_is_named_without_its_output() {
        let source = TokenSource::new(
            TokenSettings::Command("echo secret-token-text; exit 3".into()),
            Duration::from_secs(10),
        );
        let e = source.token("bob").await.unwrap_err();
        assert!(e.message.contains("token_command failed for bob"), "{}", e.message);
        assert!(!e.message.contains("secret-token-text"));
        let source = TokenSource::new(TokenSettings::Command("true".into()), Duration::from_secs(10));
        let e = source.token("bob").await.unwrap_err();
        assert!(e.message.contains("printed no single token"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_refused_token_is_forgotten_only_if_it_is_still_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("count");
        let command = format!("echo x >> {0}; echo \"t$(wc -l < {0} | tr -d ' ')\"", count.display());
        let source = TokenSource::new(TokenSettings::Command(command), Duration::from_secs(10));
        let first = source.token("u").await.unwrap();
        source.reject("u", &first).await;
        let second = source.token("u").await.unwrap();
        assert_ne!(first, second);
        // A connection still holding the first token reports it refused:
        // the second one, which replaced it, is kept.
        source.reject("u", &first).await;
        assert_eq!(source.token("u").await.unwrap(), second);
        assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 2);
    }

    /// A token endpoint that answers with a redirect: the request must not
    /// follow it (it would carry the signed assertion to another server).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn token_requests_never_follow_a_redirect() {
        use std::io::{Read, Write};
        let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let elsewhere_port = elsewhere.local_addr().unwrap().port();
        elsewhere.set_nonblocking(true).unwrap();
        let endpoint = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = endpoint.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in endpoint.incoming().take(1) {
                let mut stream = stream.unwrap();
                let mut buf = [0u8; 8192];
                let _ = stream.read(&mut buf);
                let answer = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{elsewhere_port}/token\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        let key = include_str!("../../tests/data/graph-test-key.pem");
        let json = serde_json::json!({
            "client_email": "cutover@project.iam.gserviceaccount.com",
            "private_key": key,
            "token_uri": format!("http://127.0.0.1:{port}/token"),
        })
        .to_string();
        let account = GoogleServiceAccount::from_json(&json, std::path::Path::new("key.json")).unwrap();
        let source = TokenSource::new(TokenSettings::Google(Arc::new(account)), Duration::from_secs(5));
        assert!(source.token("user@example.com").await.is_err());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            elsewhere.accept().is_err(),
            "the token request followed the redirect to another server"
        );
    }
}
