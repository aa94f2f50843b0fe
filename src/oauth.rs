//! OAuth 2.0 access tokens for IMAP logins (SASL XOAUTH2), where a server
//! no longer takes passwords: Gmail Workspace, Exchange Online.
//!
//! Two ways to get a token, chosen in `[source]`:
//!
//! - `token_command`: any program that prints an access token for the
//!   login it is given (`$CUTOVER_LOGIN`), so an admin can plug in whatever
//!   their identity provider needs;
//! - Microsoft client credentials: an Entra ID app with the
//!   `IMAP.AccessAsApp` permission gets one app-only token (scope
//!   `https://outlook.office365.com/.default`) that opens every mailbox it
//!   was granted;
//! - a Google service account with domain-wide delegation (Gmail
//!   Workspace): for each user a JWT signed RS256 with the account's key,
//!   `sub` = the user, scope `https://mail.google.com/`, is exchanged at the
//!   account's `token_uri` (RFC 7523 JWT bearer grant) for that user's
//!   token.
//!
//! Tokens are cached until shortly before they expire, so parallel
//! connections do not each ask for one. They stay in [`Secret`]: never
//! logged, never in an error (a failing command's output is not shown, as
//! it may hold a token).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::secret::Secret;

/// Lifetime assumed for a token from a command (it does not say).
const COMMAND_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Renew this long before a token expires.
const RENEW_EARLY: Duration = Duration::from_secs(300);

/// Where tokens come from.
#[derive(Clone, Debug)]
pub enum TokenSettings {
    /// `sh -c COMMAND` with `CUTOVER_LOGIN` set; stdout is the token.
    Command(String),
    /// Entra ID client credentials for Exchange Online IMAP.
    Microsoft {
        tenant_id: String,
        client_id: String,
        client_secret: Secret,
        /// Entra ID's base URL, without a trailing slash.
        authority: String,
        /// Requested scope: `https://outlook.office365.com/.default`.
        scope: String,
    },
    /// A Google service account key (its JSON key file's fields).
    Google(Arc<GoogleServiceAccount>),
}

/// What cutover needs from a Google service account's JSON key file.
pub struct GoogleServiceAccount {
    pub client_email: String,
    pub token_uri: String,
    key: ring::signature::RsaKeyPair,
}

impl std::fmt::Debug for GoogleServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

/// Scope of a Gmail IMAP token.
pub const GMAIL_SCOPE: &str = "https://mail.google.com/";

impl GoogleServiceAccount {
    /// Reads the JSON key file Google Cloud hands out for a service
    /// account (`type`, `client_email`, `private_key`, `token_uri`).
    pub fn from_json(json: &str, file: &std::path::Path) -> std::result::Result<GoogleServiceAccount, String> {
        #[derive(Deserialize)]
        struct KeyFile {
            client_email: String,
            private_key: String,
            token_uri: Option<String>,
        }
        let name = file.display();
        let parsed: KeyFile = serde_json::from_str(json).map_err(|e| {
            format!("{name} is not a Google service account key file (JSON with client_email and private_key): {e}")
        })?;
        let der = rustls_pemfile::private_key(&mut parsed.private_key.as_bytes())
            .ok()
            .flatten()
            .ok_or_else(|| format!("the private_key in {name} is not a readable PEM key"))?;
        let key = match &der {
            tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(k) => {
                ring::signature::RsaKeyPair::from_pkcs8(k.secret_pkcs8_der())
            }
            tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs1(k) => {
                ring::signature::RsaKeyPair::from_der(k.secret_pkcs1_der())
            }
            _ => return Err(format!("the private_key in {name} is not an RSA key")),
        }
        .map_err(|e| format!("the private_key in {name} is not a usable RSA key ({e})"))?;
        Ok(GoogleServiceAccount {
            client_email: parsed.client_email,
            token_uri: parsed
                .token_uri
                .unwrap_or_else(|| "https://oauth2.googleapis.com/token".into()),
            key,
        })
    }

    /// The signed JWT asking for a token of `user` (RS256).
    pub fn assertion(&self, user: &str, now_unix: i64) -> Result<String> {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = serde_json::json!({ "alg": "RS256", "typ": "JWT" });
        let claims = serde_json::json!({
            "iss": self.client_email,
            "sub": user,
            "scope": GMAIL_SCOPE,
            "aud": self.token_uri,
            "iat": now_unix,
            "exp": now_unix + 3600,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| Error::fatal("signing the Google service account assertion failed"))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// Hands out tokens, cached per login (a Microsoft app token is the same
/// for every login).
#[derive(Clone)]
pub struct TokenSource {
    settings: TokenSettings,
    timeout: Duration,
    cache: Arc<Mutex<HashMap<String, (Secret, Instant)>>>,
    http: reqwest::Client,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource").field("settings", &self.settings).finish()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

impl TokenSource {
    pub fn new(settings: TokenSettings, timeout: Duration) -> TokenSource {
        TokenSource {
            settings,
            timeout,
            cache: Arc::new(Mutex::new(HashMap::new())),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
        }
    }

    /// A valid token for `login`.
    pub async fn token(&self, login: &str) -> Result<Secret> {
        let key = match &self.settings {
            TokenSettings::Command(_) | TokenSettings::Google(_) => login.to_owned(),
            TokenSettings::Microsoft { .. } => String::new(),
        };
        let mut cache = self.cache.lock().await;
        if let Some((token, until)) = cache.get(&key)
            && Instant::now() + RENEW_EARLY < *until
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = match &self.settings {
            TokenSettings::Command(command) => (self.run_command(command, login).await?, COMMAND_TOKEN_LIFETIME),
            TokenSettings::Microsoft {
                tenant_id,
                client_id,
                client_secret,
                authority,
                scope,
            } => {
                self.client_credentials(tenant_id, client_id, client_secret, authority, scope)
                    .await?
            }
            TokenSettings::Google(account) => {
                let assertion = account.assertion(login, chrono::Utc::now().timestamp())?;
                let form = [
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", assertion.as_str()),
                ];
                let what = format!(
                    "the Gmail token for {login} (service account {}; check its domain-wide delegation for scope {GMAIL_SCOPE} in the Google Admin console)",
                    account.client_email
                );
                self.token_request(&account.token_uri, &form, &what).await?
            }
        };
        cache.insert(key, (token.clone(), Instant::now() + lifetime));
        Ok(token)
    }

    /// Forgets a token the server refused, so the next login asks again.
    pub async fn reject(&self, login: &str) {
        let mut cache = self.cache.lock().await;
        cache.remove(login);
        cache.remove("");
    }

    async fn run_command(&self, command: &str, login: &str) -> Result<Secret> {
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .env("CUTOVER_LOGIN", login)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(self.timeout, child)
            .await
            .map_err(|_| {
                Error::transient(format!(
                    "token_command did not finish within {}s for {login}",
                    self.timeout.as_secs()
                ))
            })?
            .map_err(|e| Error::fatal(format!("token_command could not be run: {e}")))?;
        if !out.status.success() {
            return Err(Error::fatal(format!(
                "token_command failed for {login} ({}); run it by hand with CUTOVER_LOGIN={login} to see why",
                out.status
            )));
        }
        let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if token.is_empty() || token.contains(char::is_whitespace) {
            return Err(Error::fatal(format!(
                "token_command printed no single token for {login}; it must print the access token alone on stdout"
            )));
        }
        Ok(Secret::new(token))
    }

    async fn client_credentials(
        &self,
        tenant_id: &str,
        client_id: &str,
        client_secret: &Secret,
        authority: &str,
        scope: &str,
    ) -> Result<(Secret, Duration)> {
        let url = format!("{authority}/{tenant_id}/oauth2/v2.0/token");
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret.expose()),
            ("scope", scope),
        ];
        let what = format!(
            "the IMAP token for app {client_id} (check oauth_tenant_id, oauth_client_id and the secret, and that the app has IMAP.AccessAsApp with admin consent)"
        );
        self.token_request(&url, &form, &what).await
    }

    /// POSTs a token request form; `what` names the token and what to check
    /// when it is refused.
    async fn token_request(&self, url: &str, form: &[(&str, &str)], what: &str) -> Result<(Secret, Duration)> {
        let authority = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let resp = self
            .http
            .post(url)
            .form(form)
            .send()
            .await
            .map_err(|e| Error::transient(format!("token request to {authority} failed: {}", e.without_url())))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| Error::transient(format!("token response from {authority} cut off: {e}")))?;
        if !status.is_success() {
            // Entra ID's error codes say what to fix and hold no secret.
            let code = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let msg = format!("{authority} refused {what}: {status} {code}");
            return Err(if status.is_server_error() {
                Error::transient(msg)
            } else {
                Error::fatal(msg)
            });
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| Error::fatal(format!("the token response from {authority} is not OAuth JSON")))?;
        Ok((
            Secret::new(parsed.access_token),
            Duration::from_secs(parsed.expires_in.unwrap_or(3600)),
        ))
    }
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
        source.reject("alice@example.com").await;
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
}
