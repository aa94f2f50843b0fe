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
//!   was granted.
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
            TokenSettings::Command(_) => login.to_owned(),
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
                    "[source] token_command did not finish within {}s for {login}",
                    self.timeout.as_secs()
                ))
            })?
            .map_err(|e| Error::fatal(format!("[source] token_command could not be run: {e}")))?;
        if !out.status.success() {
            return Err(Error::fatal(format!(
                "[source] token_command failed for {login} ({}); run it by hand with CUTOVER_LOGIN={login} to see why",
                out.status
            )));
        }
        let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if token.is_empty() || token.contains(char::is_whitespace) {
            return Err(Error::fatal(format!(
                "[source] token_command printed no single token for {login}; it must print the access token alone on stdout"
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
        let resp = self
            .http
            .post(&url)
            .form(&form)
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
            let msg = format!(
                "Entra ID refused the IMAP token for app {client_id} ({status} {code}); check [source] oauth_tenant_id, oauth_client_id and the secret, and that the app has IMAP.AccessAsApp with admin consent"
            );
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
