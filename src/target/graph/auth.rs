//! App-only access tokens from Entra ID (OAuth 2.0 client credentials), so
//! an unattended run can write into every mailbox the app is allowed to.
//!
//! The app proves itself with a client secret or with a certificate: then
//! each token request carries a JWT client assertion signed PS256 with the
//! certificate's private key, with the certificate's SHA-256 thumbprint in
//! the `x5t#S256` header, as Microsoft's "certificate credentials" page
//! describes. Client credentials never come with a refresh token, so
//! "refreshing" means asking for a new token: this is done a little before
//! the old one expires (tokens live 60 to 90 minutes), and once when Graph
//! rejects a token with 401.
//!
//! Secrets, private keys and tokens stay in [`Secret`] or inside ring's key
//! type; none of them is ever formatted into a log line or an error.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{KeyPair, RSA_PSS_SHA256, RsaKeyPair};
use tokio::time::Instant;
use tokio_rustls::rustls::pki_types::PrivateKeyDer;

use super::api::{TokenError, TokenResponse};
use super::client::{network_error, retry_after};
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::settings::{GraphCredential, GraphSettings};

/// How long a client assertion is valid (Microsoft recommends 10 minutes).
const ASSERTION_LIFETIME_SECS: i64 = 600;
/// Renew this long before a token expires, so no request goes out with a
/// token about to lapse in flight.
const RENEW_EARLY: Duration = Duration::from_secs(300);

enum Credential {
    Secret(Secret),
    Certificate(Box<Signer>),
}

/// The certificate's private key and thumbprint, ready to sign assertions.
pub struct Signer {
    key: RsaKeyPair,
    /// base64url(SHA-256(certificate DER)), the `x5t#S256` header.
    thumbprint_s256: String,
}

impl Signer {
    /// Reads a PEM certificate and its PEM private key (PKCS#8, or PKCS#1
    /// "RSA PRIVATE KEY"), and checks they belong together.
    pub fn from_pem(
        certificate_pem: &str,
        private_key_pem: &Secret,
        certificate_file: &std::path::Path,
    ) -> Result<Signer> {
        let cert_name = certificate_file.display();
        let cert = rustls_pemfile::certs(&mut certificate_pem.as_bytes())
            .next()
            .and_then(|c| c.ok())
            .ok_or_else(|| {
                Error::fatal(format!(
                    "certificate_file {cert_name} holds no readable PEM certificate"
                ))
            })?;
        let key_der = rustls_pemfile::private_key(&mut private_key_pem.expose().as_bytes())
            .ok()
            .flatten()
            .ok_or_else(|| {
                Error::fatal(
                    "private_key_file holds no readable PEM private key (expected -----BEGIN PRIVATE KEY-----)",
                )
            })?;
        let key = match &key_der {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => {
                return Err(Error::fatal(
                    "private_key_file is not an RSA key; Entra ID app certificates use RSA keys (2048 bits or more)",
                ));
            }
        }
        .map_err(|e| Error::fatal(format!("private_key_file is not a usable RSA private key ({e}); use an unencrypted PKCS#8 PEM RSA key of 2048 bits or more")))?;
        // The certificate embeds its public key; a key from another
        // certificate would only fail later, at Entra ID, with an obscure
        // AADSTS code.
        let public = key.public_key().as_ref();
        if !cert.as_ref().windows(public.len()).any(|w| w == public) {
            return Err(Error::fatal(format!(
                "private_key_file does not belong to the certificate in {cert_name}; use the key the certificate was made with"
            )));
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
        Ok(Signer {
            key,
            thumbprint_s256: URL_SAFE_NO_PAD.encode(digest.as_ref()),
        })
    }

    /// A signed JWT client assertion for the token endpoint `audience`.
    pub fn assertion(&self, client_id: &str, audience: &str, now_unix: i64, rng: &dyn SecureRandom) -> Result<String> {
        let header = serde_json::json!({ "alg": "PS256", "typ": "JWT", "x5t#S256": self.thumbprint_s256 });
        let mut jti = [0u8; 16];
        rng.fill(&mut jti)
            .map_err(|_| Error::fatal("the system random generator failed"))?;
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid_v4(jti),
            "iat": now_unix,
            "nbf": now_unix,
            "exp": now_unix + ASSERTION_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PSS_SHA256, rng, signing_input.as_bytes(), &mut signature)
            .map_err(|_| Error::fatal("signing the client assertion failed"))?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// A random (version 4) UUID in its usual spelling, for `jti`.
fn uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

struct Cached {
    token: Secret,
    renew_at: Instant,
}

/// Hands out a valid token, asking Entra ID for a new one when needed.
/// Shared by every session of a run: one token serves all mailboxes.
pub struct TokenSource {
    http: reqwest::Client,
    token_url: String,
    authority: String,
    client_id: String,
    scope: String,
    credential: Credential,
    timeout: Duration,
    rng: SystemRandom,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl TokenSource {
    pub fn new(settings: &GraphSettings, http: reqwest::Client) -> Result<TokenSource> {
        let credential = match &settings.credential {
            GraphCredential::ClientSecret(s) => Credential::Secret(s.clone()),
            GraphCredential::Certificate {
                certificate_pem,
                private_key_pem,
                certificate_file,
            } => Credential::Certificate(Box::new(Signer::from_pem(
                certificate_pem,
                private_key_pem,
                certificate_file,
            )?)),
        };
        Ok(TokenSource {
            http,
            token_url: format!("{}/{}/oauth2/v2.0/token", settings.authority, settings.tenant_id),
            authority: settings.authority.clone(),
            client_id: settings.client_id.clone(),
            scope: format!("{}/.default", settings.endpoint),
            credential,
            timeout: settings.timeout,
            rng: SystemRandom::new(),
            cached: tokio::sync::Mutex::new(None),
        })
    }

    /// A token valid for a while yet. Concurrent callers wait for one
    /// request to Entra ID rather than each sending their own.
    pub async fn token(&self) -> Result<Secret> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.renew_at
        {
            return Ok(c.token.clone());
        }
        let (token, lifetime) = self.request().await?;
        // Renew 5 minutes early, or at half-life for unusually short tokens.
        let early = RENEW_EARLY.min(lifetime / 2);
        *cached = Some(Cached {
            token: token.clone(),
            renew_at: Instant::now() + lifetime - early,
        });
        tracing::debug!(lifetime_s = lifetime.as_secs(), "new Graph access token");
        Ok(token)
    }

    /// Graph refused `rejected` (401): forget it, unless another session
    /// already replaced it, so the next [`TokenSource::token`] asks anew.
    pub async fn reject(&self, rejected: &Secret) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|c| &c.token == rejected) {
            *cached = None;
        }
    }

    async fn request(&self) -> Result<(Secret, Duration)> {
        let mut form: Vec<(&str, String)> = vec![
            ("client_id", self.client_id.clone()),
            ("scope", self.scope.clone()),
            ("grant_type", "client_credentials".into()),
        ];
        match &self.credential {
            Credential::Secret(s) => form.push(("client_secret", s.expose().to_owned())),
            Credential::Certificate(signer) => {
                let now = chrono::Utc::now().timestamp();
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push((
                    "client_assertion",
                    signer.assertion(&self.client_id, &self.token_url, now, &self.rng)?,
                ));
            }
        }
        let response = self
            .http
            .post(&self.token_url)
            .timeout(self.timeout)
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                network_error(
                    &format!("token request to Entra ID ({})", self.authority),
                    &e,
                    self.timeout,
                )
                .error
            })?;
        let status = response.status().as_u16();
        let wait = retry_after(response.headers());
        let body = response.bytes().await.map_err(|e| {
            network_error(
                &format!("token request to Entra ID ({})", self.authority),
                &e,
                self.timeout,
            )
            .error
        })?;
        if status == 200 {
            let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
                Error::transient(format!(
                    "Entra ID answered the token request with an unreadable body ({e})"
                ))
            })?;
            let lifetime = Duration::from_secs(parsed.expires_in.max(60));
            return Ok((Secret::new(parsed.access_token), lifetime));
        }
        Err(classify_token_error(status, wait, &body))
    }
}

/// What a failed token request means and what the admin should do.
pub fn classify_token_error(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Error {
    if status == 429 {
        let delay = retry_after.unwrap_or(Duration::from_secs(30));
        return Error::throttled(delay, "Entra ID throttled the token request (429)");
    }
    if status >= 500 {
        return Error::transient(format!("Entra ID failed the token request ({status}); retrying"));
    }
    let e: TokenError = serde_json::from_slice(body).unwrap_or_default();
    // The description's first line holds the AADSTS code and its meaning;
    // trace and correlation ids follow on later lines.
    let description = e.error_description.lines().next().unwrap_or("").trim().to_owned();
    let code = description.split(':').next().unwrap_or("").trim().to_owned();
    let advice = match code.as_str() {
        "AADSTS7000215" | "AADSTS7000222" => {
            "the client secret is wrong or expired: create a new one under the app registration's Certificates & secrets and update the secret cutover reads"
        }
        "AADSTS700016" => {
            "no app with this client_id exists in this tenant: check client_id and tenant_id against the app registration's overview page"
        }
        "AADSTS90002" | "AADSTS900023" | "AADSTS90013" => "the tenant was not found: check tenant_id",
        "AADSTS700027" | "AADSTS700024" | "AADSTS7000274" | "AADSTS700023" => {
            "the certificate assertion was refused: upload this certificate to the app registration's Certificates & secrets, and check this machine's clock"
        }
        "AADSTS1002012" | "AADSTS70011" | "AADSTS500011" => {
            "the requested scope is invalid: check [target] endpoint (e.g. https://graph.microsoft.com)"
        }
        "AADSTS7000112" | "AADSTS700025" => {
            "the app is disabled or not allowed to use client credentials: check the app registration"
        }
        _ => "check tenant_id, client_id and the app's credential in the app registration",
    };
    let what = if description.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("{}: {description}", e.error)
    };
    Error::fatal(format!("Entra ID refused the app's token request ({what}); {advice}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{RSA_PSS_2048_8192_SHA256, UnparsedPublicKey};

    const CERT: &str = include_str!("../../../tests/data/graph-test-cert.pem");
    const KEY: &str = include_str!("../../../tests/data/graph-test-key.pem");

    fn signer() -> Signer {
        Signer::from_pem(CERT, &Secret::new(KEY), std::path::Path::new("cert.pem")).unwrap()
    }

    fn decode_json(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn client_assertion_is_a_ps256_jwt_with_the_certificate_thumbprint() {
        let s = signer();
        let aud = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token";
        let jwt = s
            .assertion("client-1", aud, 1_700_000_000, &SystemRandom::new())
            .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);

        let header = decode_json(parts[0]);
        assert_eq!(header["alg"], "PS256");
        assert_eq!(header["typ"], "JWT");
        let cert_der = rustls_pemfile::certs(&mut CERT.as_bytes()).next().unwrap().unwrap();
        let thumb = ring::digest::digest(&ring::digest::SHA256, cert_der.as_ref());
        assert_eq!(header["x5t#S256"], URL_SAFE_NO_PAD.encode(thumb.as_ref()));

        let claims = decode_json(parts[1]);
        assert_eq!(claims["aud"], aud);
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["nbf"], 1_700_000_000);
        assert_eq!(claims["iat"], 1_700_000_000);
        assert_eq!(claims["exp"], 1_700_000_600);
        let jti = claims["jti"].as_str().unwrap();
        assert_eq!(jti.len(), 36);
        assert_eq!(&jti[14..15], "4", "a version-4 UUID");

        // The signature verifies with the certificate's public key.
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let public = UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, s.key.public_key().as_ref().to_vec());
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .unwrap();

        // Every assertion is unique.
        let again = s
            .assertion("client-1", aud, 1_700_000_000, &SystemRandom::new())
            .unwrap();
        assert_ne!(decode_json(again.split('.').nth(1).unwrap())["jti"], claims["jti"]);
    }

    #[test]
    fn a_key_from_another_certificate_is_refused_up_front() {
        let other = include_str!("../../../tests/data/graph-other-cert.pem");
        let err = Signer::from_pem(other, &Secret::new(KEY), std::path::Path::new("other.pem"))
            .err()
            .unwrap();
        assert_eq!(err.kind, crate::error::ErrorKind::Fatal);
        assert!(
            err.message.contains("does not belong") && err.message.contains("other.pem"),
            "{err}"
        );
        assert!(!err.message.contains("PRIVATE"), "no key material in errors: {err}");
    }

    #[test]
    fn token_errors_tell_the_admin_what_to_fix() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1\r\nCorrelation ID: 2"}"#;
        let e = classify_token_error(401, None, body);
        assert_eq!(e.kind, crate::error::ErrorKind::Fatal);
        assert!(
            e.message.contains("AADSTS7000215") && e.message.contains("Certificates & secrets"),
            "{e}"
        );
        assert!(!e.message.contains("Trace ID"));
        let e = classify_token_error(
            400,
            None,
            br#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'x' not found."}"#,
        );
        assert!(e.message.contains("tenant_id"), "{e}");
        assert_eq!(
            classify_token_error(429, Some(Duration::from_secs(7)), b"").kind,
            crate::error::ErrorKind::Throttled(Duration::from_secs(7))
        );
        assert_eq!(
            classify_token_error(503, None, b"").kind,
            crate::error::ErrorKind::Transient
        );
    }

    #[test]
    fn uuids_have_the_version_and_variant_bits() {
        let u = uuid_v4([0xff; 16]);
        assert_eq!(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
    }
}
