//! App-only access tokens from Entra ID (OAuth 2.0 client credentials), so
//! an unattended run can open every mailbox the app is allowed to: through
//! Microsoft Graph (scope `{endpoint}/.default`) or Exchange Online IMAP
//! (scope `https://outlook.office365.com/.default`, `IMAP.AccessAsApp`).
//!
//! The app proves itself with a client secret or with a certificate: then
//! each token request carries a JWT client assertion signed PS256 with the
//! certificate's private key ([`super::jwt`]), with the certificate's
//! SHA-256 thumbprint in the `x5t#S256` header, as Microsoft's "certificate
//! credentials" page describes. Client credentials never come with a
//! refresh token, so "refreshing" means asking for a new token (see
//! [`super::TokenSource`]).
//!
//! Errors name the configuration keys the admin has to fix, in the spelling
//! of the section the app is configured in ([`KeyNames`]). Secrets, private
//! keys and tokens stay in [`Secret`] or inside ring's key type; none of
//! them is ever formatted into a log line or an error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;

use super::jwt::{Alg, JwtSigner, KeyError};
use super::{TokenResponse, post_form};
use crate::error::{Error, Result};
use crate::secret::Secret;

/// Entra ID's global cloud, where tokens come from unless configured
/// otherwise.
pub const ENTRA_AUTHORITY: &str = "https://login.microsoftonline.com";

/// How long a client assertion is valid (Microsoft recommends 10 minutes).
const ASSERTION_LIFETIME_SECS: i64 = 600;

/// How a configuration section spells the app's keys, so that every error
/// tells the admin what to change in their own file.
#[derive(Debug)]
pub struct KeyNames {
    /// Put before `tenant_id`, `client_id`, `certificate_file` and
    /// `private_key_file`: empty for `[target] kind = "graph"`, `oauth_` on
    /// the IMAP sides.
    pub prefix: &'static str,
    /// What to check when Entra ID calls the requested scope invalid.
    pub scope_advice: &'static str,
}

/// How the app proves who it is to Entra ID, as configured.
#[derive(Debug, Clone)]
pub enum EntraCredential {
    ClientSecret(Secret),
    /// A certificate registered with the app and its private key; each
    /// token request carries a freshly signed JWT client assertion.
    Certificate {
        certificate_pem: String,
        private_key_pem: Secret,
        /// Where the certificate came from, for error messages.
        certificate_file: PathBuf,
    },
}

impl EntraCredential {
    /// Reads a certificate credential from the files `[section]` names
    /// (already resolved against the config file), checking that they hold
    /// what they should before any token is asked for.
    pub fn read_certificate(section: &str, names: &KeyNames, cert: &Path, key: &Path) -> Result<Self, String> {
        let p = names.prefix;
        let read = |what: &str, path: &Path| -> Result<String, String> {
            std::fs::read_to_string(path)
                .map_err(|e| format!("[{section}] {p}{what} {} cannot be read: {e}", path.display()))
        };
        let certificate_pem = read("certificate_file", cert)?;
        if !certificate_pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(format!(
                "[{section}] {p}certificate_file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                cert.display()
            ));
        }
        let private_key_pem = Secret::new(read("private_key_file", key)?);
        if private_key_pem.expose().contains("ENCRYPTED PRIVATE KEY") {
            return Err(format!(
                "[{section}] {p}private_key_file {} is encrypted; store it unencrypted with owner-only permissions (openssl pkcs8 -topk8 -nocrypt -in key.pem -out key-plain.pem)",
                key.display()
            ));
        }
        if !private_key_pem.expose().contains("PRIVATE KEY-----") {
            return Err(format!(
                "[{section}] {p}private_key_file {} holds no PEM private key (-----BEGIN PRIVATE KEY-----)",
                key.display()
            ));
        }
        Ok(EntraCredential::Certificate {
            certificate_pem,
            private_key_pem,
            certificate_file: cert.to_path_buf(),
        })
    }
}

/// The credential, ready to use: a secret to send, or a certificate to
/// sign assertions with.
pub enum ClientAuth {
    Secret(Secret),
    Certificate(Box<CertificateSigner>),
}

/// The certificate's private key and thumbprint, ready to sign assertions.
pub struct CertificateSigner {
    signer: JwtSigner,
    /// base64url(SHA-256(certificate DER)), the `x5t#S256` header.
    thumbprint_s256: String,
}

impl CertificateSigner {
    /// Reads a PEM certificate and its PEM private key (PKCS#8, or PKCS#1
    /// "RSA PRIVATE KEY"), and checks they belong together.
    pub fn from_pem(
        certificate_pem: &str,
        private_key_pem: &Secret,
        certificate_file: &Path,
        names: &KeyNames,
    ) -> Result<CertificateSigner> {
        let p = names.prefix;
        let cert_name = certificate_file.display();
        let cert = rustls_pemfile::certs(&mut certificate_pem.as_bytes())
            .next()
            .and_then(|c| c.ok())
            .ok_or_else(|| {
                Error::fatal(format!(
                    "{p}certificate_file {cert_name} holds no readable PEM certificate"
                ))
            })?;
        let signer = JwtSigner::from_pem(private_key_pem.expose()).map_err(|e| match e {
            KeyError::Unreadable => Error::fatal(format!(
                "{p}private_key_file holds no readable PEM private key (expected -----BEGIN PRIVATE KEY-----)"
            )),
            KeyError::NotRsa => Error::fatal(format!(
                "{p}private_key_file is not an RSA key; Entra ID app certificates use RSA keys (2048 bits or more)"
            )),
            KeyError::Unusable(e) => Error::fatal(format!("{p}private_key_file is not a usable RSA private key ({e}); use an unencrypted PKCS#8 PEM RSA key of 2048 bits or more")),
        })?;
        // The certificate embeds its public key; a key from another
        // certificate would only fail later, at Entra ID, with an obscure
        // AADSTS code.
        let public = signer.public_key();
        if !cert.as_ref().windows(public.len()).any(|w| w == public) {
            return Err(Error::fatal(format!(
                "{p}private_key_file does not belong to the certificate in {cert_name}; use the key the certificate was made with"
            )));
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
        Ok(CertificateSigner {
            signer,
            thumbprint_s256: URL_SAFE_NO_PAD.encode(digest.as_ref()),
        })
    }

    /// A signed JWT client assertion for the token endpoint `audience`.
    pub fn assertion(&self, client_id: &str, audience: &str, now_unix: i64, rng: &dyn SecureRandom) -> Result<String> {
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
        let header = serde_json::json!({ "x5t#S256": self.thumbprint_s256 });
        self.signer
            .sign(Alg::Ps256, header, &claims, rng)
            .ok_or_else(|| Error::fatal("signing the client assertion failed"))
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

/// An Entra ID app that gets tokens for one scope.
pub struct EntraApp {
    pub tenant_id: String,
    pub client_id: String,
    /// Entra ID's base URL, without a trailing slash.
    pub authority: String,
    /// `{resource}/.default`.
    pub scope: String,
    pub auth: ClientAuth,
    /// `{authority}/{tenant_id}/oauth2/v2.0/token`, also the assertions'
    /// audience.
    token_url: String,
    names: &'static KeyNames,
    rng: SystemRandom,
}

impl std::fmt::Debug for EntraApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let credential = match self.auth {
            ClientAuth::Secret(_) => "client secret",
            ClientAuth::Certificate(_) => "certificate",
        };
        f.debug_struct("EntraApp")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("authority", &self.authority)
            .field("scope", &self.scope)
            .field("credential", &credential)
            .finish_non_exhaustive()
    }
}

impl EntraApp {
    /// The app, with a certificate credential read and checked (the key
    /// must belong to the certificate).
    pub fn new(
        tenant_id: String,
        client_id: String,
        authority: String,
        scope: String,
        credential: &EntraCredential,
        names: &'static KeyNames,
    ) -> Result<EntraApp> {
        let auth = match credential {
            EntraCredential::ClientSecret(s) => ClientAuth::Secret(s.clone()),
            EntraCredential::Certificate {
                certificate_pem,
                private_key_pem,
                certificate_file,
            } => ClientAuth::Certificate(Box::new(CertificateSigner::from_pem(
                certificate_pem,
                private_key_pem,
                certificate_file,
                names,
            )?)),
        };
        Ok(EntraApp {
            token_url: format!("{authority}/{tenant_id}/oauth2/v2.0/token"),
            tenant_id,
            client_id,
            authority,
            scope,
            auth,
            names,
            rng: SystemRandom::new(),
        })
    }

    /// Asks Entra ID for a token: the token and how long it lives.
    pub(super) async fn fetch(&self, http: &reqwest::Client, timeout: Duration) -> Result<(Secret, Duration)> {
        let mut form: Vec<(&str, String)> = vec![
            ("client_id", self.client_id.clone()),
            ("scope", self.scope.clone()),
            ("grant_type", "client_credentials".into()),
        ];
        match &self.auth {
            ClientAuth::Secret(s) => form.push(("client_secret", s.expose().to_owned())),
            ClientAuth::Certificate(signer) => {
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
        let what = format!("token request to Entra ID ({})", self.authority);
        let answer = post_form(http, &self.token_url, &form, timeout, &what).await?;
        if answer.status.as_u16() == 200 {
            let parsed: TokenResponse = serde_json::from_slice(&answer.body).map_err(|e| {
                Error::transient(format!(
                    "Entra ID answered the token request with an unreadable body ({e})"
                ))
            })?;
            return Ok(parsed.into_token());
        }
        Err(classify_token_error(
            answer.status.as_u16(),
            answer.retry_after,
            &answer.body,
            self.names,
        ))
    }
}

/// Entra ID's error body (`{"error":"invalid_client","error_description":"AADSTS7000215: ..."}`).
#[derive(Deserialize, Default)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// What a failed token request means and what the admin should do.
pub fn classify_token_error(status: u16, retry_after: Option<Duration>, body: &[u8], names: &KeyNames) -> Error {
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
    let p = names.prefix;
    let advice = match code.as_str() {
        "AADSTS7000215" | "AADSTS7000222" => {
            "the client secret is wrong or expired: create a new one under the app registration's Certificates & secrets and update the secret cutover reads".to_owned()
        }
        "AADSTS700016" => format!(
            "no app with this {p}client_id exists in this tenant: check {p}client_id and {p}tenant_id against the app registration's overview page"
        ),
        "AADSTS90002" | "AADSTS900023" | "AADSTS90013" => format!("the tenant was not found: check {p}tenant_id"),
        "AADSTS700027" | "AADSTS700024" | "AADSTS7000274" | "AADSTS700023" => {
            "the certificate assertion was refused: upload this certificate to the app registration's Certificates & secrets, and check this machine's clock".to_owned()
        }
        "AADSTS1002012" | "AADSTS70011" | "AADSTS500011" => {
            format!("the requested scope is invalid: {}", names.scope_advice)
        }
        "AADSTS7000112" | "AADSTS700025" => {
            "the app is disabled or not allowed to use client credentials: check the app registration".to_owned()
        }
        _ => format!("check {p}tenant_id, {p}client_id and the app's credential in the app registration"),
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

    const CERT: &str = include_str!("../../tests/data/graph-test-cert.pem");
    const KEY: &str = include_str!("../../tests/data/graph-test-key.pem");
    const KEYS: KeyNames = KeyNames {
        prefix: "",
        scope_advice: "check [target] endpoint (e.g. https://graph.microsoft.com)",
    };

    fn signer() -> CertificateSigner {
        CertificateSigner::from_pem(CERT, &Secret::new(KEY), std::path::Path::new("cert.pem"), &KEYS).unwrap()
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
        let public = UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, s.signer.public_key().to_vec());
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
        let other = include_str!("../../tests/data/graph-other-cert.pem");
        let err = CertificateSigner::from_pem(other, &Secret::new(KEY), std::path::Path::new("other.pem"), &KEYS)
            .err()
            .unwrap();
        assert_eq!(err.kind, crate::error::ErrorKind::Fatal);
        assert!(
            err.message.contains("does not belong") && err.message.contains("other.pem"),
            "{err}"
        );
        assert!(!err.message.contains("PRIVATE"), "no key material in errors: {err}");
    }

    /// Entra ID's answer for a tenant id that does not exist.
    const TENANT_NOT_FOUND: &[u8] =
        br#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'x' not found."}"#;

    #[test]
    fn token_errors_tell_the_admin_what_to_fix() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1\r\nCorrelation ID: 2"}"#;
        let e = classify_token_error(401, None, body, &KEYS);
        assert_eq!(e.kind, crate::error::ErrorKind::Fatal);
        assert!(
            e.message.contains("AADSTS7000215") && e.message.contains("Certificates & secrets"),
            "{e}"
        );
        assert!(!e.message.contains("Trace ID"));
        let e = classify_token_error(400, None, TENANT_NOT_FOUND, &KEYS);
        assert!(e.message.contains("tenant_id"), "{e}");
        assert_eq!(
            classify_token_error(429, Some(Duration::from_secs(7)), b"", &KEYS).kind,
            crate::error::ErrorKind::Throttled(Duration::from_secs(7))
        );
        assert_eq!(
            classify_token_error(503, None, b"", &KEYS).kind,
            crate::error::ErrorKind::Transient
        );
    }

    #[test]
    fn errors_name_the_keys_of_the_section_the_app_is_configured_in() {
        let imap = KeyNames {
            prefix: "oauth_",
            scope_advice: "x",
        };
        let e = classify_token_error(400, None, TENANT_NOT_FOUND, &imap);
        assert!(e.message.contains("check oauth_tenant_id"), "{e}");
        let other = include_str!("../../tests/data/graph-other-cert.pem");
        let err = CertificateSigner::from_pem(other, &Secret::new(KEY), std::path::Path::new("other.pem"), &imap)
            .err()
            .unwrap();
        assert!(
            err.message.starts_with("oauth_private_key_file does not belong"),
            "{err}"
        );
    }

    #[test]
    fn debug_output_names_the_credential_kind_only() {
        let app = EntraApp::new(
            "t".into(),
            "c".into(),
            "https://login.microsoftonline.com".into(),
            "https://graph.microsoft.com/.default".into(),
            &EntraCredential::ClientSecret(Secret::new("very-secret-value")),
            &KEYS,
        )
        .unwrap();
        let debug = format!("{app:?}");
        assert!(
            debug.contains("client secret") && !debug.contains("very-secret-value"),
            "{debug}"
        );
    }

    #[test]
    fn uuids_have_the_version_and_variant_bits() {
        let u = uuid_v4([0xff; 16]);
        assert_eq!(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
    }
}
