//! Gmail Workspace tokens from a Google service account with domain-wide
//! delegation: for each user a JWT signed RS256 with the account's key
//! ([`super::jwt`]), `sub` = the user, scope `https://mail.google.com/`, is
//! exchanged at the account's `token_uri` (RFC 7523 JWT bearer grant) for
//! that user's token. Unlike an Entra ID app token, each token opens one
//! mailbox, so they are cached per login.

use std::time::Duration;

use serde::Deserialize;

use super::jwt::{Alg, JwtSigner, KeyError};
use super::{TokenResponse, post_form};
use crate::error::{Error, Result};
use crate::secret::Secret;

/// Scope of a Gmail IMAP token.
pub const GMAIL_SCOPE: &str = "https://mail.google.com/";

/// Scopes of a token for Google's CalDAV and CardDAV interfaces (Google
/// Calendar's and Contacts' documented scopes); cutover only reads with it.
pub const GOOGLE_DAV_SCOPE: &str = "https://www.googleapis.com/auth/calendar https://www.googleapis.com/auth/carddav";

/// What cutover needs from a Google service account's JSON key file.
pub struct GoogleServiceAccount {
    pub client_email: String,
    pub token_uri: String,
    /// What its tokens may do: [`GMAIL_SCOPE`] unless set with
    /// [`GoogleServiceAccount::with_scope`].
    pub scope: String,
    signer: JwtSigner,
}

impl std::fmt::Debug for GoogleServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

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
        let signer = JwtSigner::from_pem(&parsed.private_key).map_err(|e| match e {
            KeyError::Unreadable => format!("the private_key in {name} is not a readable PEM key"),
            KeyError::NotRsa => format!("the private_key in {name} is not an RSA key"),
            KeyError::Unusable(e) => format!("the private_key in {name} is not a usable RSA key ({e})"),
        })?;
        let token_uri = parsed
            .token_uri
            .unwrap_or_else(|| "https://oauth2.googleapis.com/token".into());
        // The assertion it is sent is as good as the key for an hour: only
        // over https (plain http to loopback, for tests).
        let url = reqwest::Url::parse(&token_uri).map_err(|e| format!("the token_uri in {name} is not a URL: {e}"))?;
        let loopback = url.host_str().is_some_and(crate::imap::is_loopback_host);
        if !(url.scheme() == "https" || url.scheme() == "http" && loopback) {
            return Err(format!(
                "the token_uri in {name} must be an https URL (it is {token_uri:?}); use the key file as Google Cloud issued it"
            ));
        }
        Ok(GoogleServiceAccount {
            client_email: parsed.client_email,
            token_uri,
            scope: GMAIL_SCOPE.to_owned(),
            signer,
        })
    }

    /// The same account asking for tokens of `scope` (space-separated
    /// scopes) instead of Gmail's.
    pub fn with_scope(mut self, scope: &str) -> GoogleServiceAccount {
        self.scope = scope.to_owned();
        self
    }

    /// The signed JWT asking for a token of `user` (RS256).
    pub fn assertion(&self, user: &str, now_unix: i64) -> Result<String> {
        let claims = serde_json::json!({
            "iss": self.client_email,
            "sub": user,
            "scope": self.scope,
            "aud": self.token_uri,
            "iat": now_unix,
            "exp": now_unix + 3600,
        });
        self.signer
            .sign(
                Alg::Rs256,
                serde_json::json!({}),
                &claims,
                &ring::rand::SystemRandom::new(),
            )
            .ok_or_else(|| Error::fatal("signing the Google service account assertion failed"))
    }

    /// Exchanges a fresh assertion for `login`'s token: the token and how
    /// long it lives.
    pub(super) async fn fetch(
        &self,
        login: &str,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Result<(Secret, Duration)> {
        let assertion = self.assertion(login, chrono::Utc::now().timestamp())?;
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion.as_str()),
        ];
        let host = reqwest::Url::parse(&self.token_uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let answer = post_form(
            http,
            &self.token_uri,
            &form,
            timeout,
            &format!("token request to {host}"),
        )
        .await?;
        if !answer.status.is_success() {
            // Google's error codes say what to fix and hold no secret.
            let code = serde_json::from_slice::<serde_json::Value>(&answer.body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let msg = format!(
                "{host} refused the token for {login} (service account {}; check its domain-wide delegation for scope {} in the Google Admin console): {} {code}",
                self.client_email, self.scope, answer.status
            );
            return Err(if answer.status.is_server_error() {
                Error::transient(msg)
            } else {
                Error::fatal(msg)
            });
        }
        let parsed: TokenResponse = serde_json::from_slice(&answer.body)
            .map_err(|_| Error::fatal(format!("the token response from {host} is not OAuth JSON")))?;
        Ok(parsed.into_token())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_file(token_uri: Option<&str>) -> String {
        let mut json = serde_json::json!({
            "client_email": "cutover@project.iam.gserviceaccount.com",
            "private_key": include_str!("../../tests/data/graph-test-key.pem"),
        });
        if let Some(uri) = token_uri {
            json["token_uri"] = uri.into();
        }
        json.to_string()
    }

    #[test]
    fn the_token_uri_of_a_key_file_must_be_https() {
        let file = std::path::Path::new("sa.json");
        let default = GoogleServiceAccount::from_json(&key_file(None), file).unwrap();
        assert_eq!(default.token_uri, "https://oauth2.googleapis.com/token");
        assert!(GoogleServiceAccount::from_json(&key_file(Some("https://oauth2.example.com/t")), file).is_ok());
        assert!(GoogleServiceAccount::from_json(&key_file(Some("http://127.0.0.1:9/token")), file).is_ok());
        for bad in ["http://oauth2.example.com/token", "ftp://x/y", "not a url"] {
            let e = GoogleServiceAccount::from_json(&key_file(Some(bad)), file).err();
            assert!(
                e.as_deref().is_some_and(|e| e.contains("token_uri in sa.json")),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn a_dav_account_asks_for_the_calendar_and_contacts_scopes() {
        let file = std::path::Path::new("sa.json");
        let claims = |account: &GoogleServiceAccount| {
            let jwt = account.assertion("ada@example.org", 1_700_000_000).unwrap();
            let part = jwt.split('.').nth(1).unwrap();
            let bytes = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, part).unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        };
        let mail = GoogleServiceAccount::from_json(&key_file(None), file).unwrap();
        assert_eq!(claims(&mail)["scope"], GMAIL_SCOPE);
        let dav = GoogleServiceAccount::from_json(&key_file(None), file)
            .unwrap()
            .with_scope(GOOGLE_DAV_SCOPE);
        let c = claims(&dav);
        assert_eq!(
            c["scope"],
            "https://www.googleapis.com/auth/calendar https://www.googleapis.com/auth/carddav"
        );
        assert_eq!(c["sub"], "ada@example.org");
    }
}
