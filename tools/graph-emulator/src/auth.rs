//! Microsoft identity platform stand-in: the client-credentials token
//! endpoint and bearer-token checks on Graph requests.
//!
//! Tokens are opaque random strings (real ones are JWTs, but a client must
//! treat them as opaque). What matters for the product is the contract: the
//! form fields it must send, the AADSTS errors it must survive, `expires_in`,
//! and the `401 InvalidAuthenticationToken` it gets once a token expires.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::App;
use crate::http::{Req, Resp, graph_error, parse_form};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const GRAPH_DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";

/// The public key of the app's certificate credential, with the thumbprints
/// Entra matches against the assertion's `x5t#S256` / `x5t` header.
#[derive(Debug, Clone)]
pub struct CertKey {
    /// RSAPublicKey DER (what ring's RSA verifiers take).
    rsa_public_key: Vec<u8>,
    /// base64url(SHA-256(certificate DER)).
    x5t_s256: String,
    /// base64url(SHA-1(certificate DER)).
    x5t: String,
}

impl CertKey {
    /// Reads the first `CERTIFICATE` block of a PEM file.
    pub fn from_pem(pem: &str) -> Result<CertKey, String> {
        let begin = "-----BEGIN CERTIFICATE-----";
        let end = "-----END CERTIFICATE-----";
        let start = pem.find(begin).ok_or("no CERTIFICATE block in PEM")? + begin.len();
        let stop = pem[start..].find(end).ok_or("unterminated CERTIFICATE block")? + start;
        let b64: String = pem[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
        let der = STANDARD
            .decode(b64)
            .map_err(|e| format!("certificate is not valid base64: {e}"))?;
        let rsa_public_key = rsa_key_from_cert(&der).ok_or("certificate has no RSA public key")?;
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
        Ok(CertKey {
            rsa_public_key,
            x5t_s256: URL_SAFE_NO_PAD.encode(Sha256::digest(&der)),
            x5t: URL_SAFE_NO_PAD.encode(sha1.as_ref()),
        })
    }
}

/// Reads one DER TLV: returns (tag, content, rest).
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// Walks Certificate → tbsCertificate → subjectPublicKeyInfo and returns the
/// RSAPublicKey inside its BIT STRING. A hand-written walk keeps the emulator
/// free of an X.509 dependency; only the fields before the key are skipped.
fn rsa_key_from_cert(der: &[u8]) -> Option<Vec<u8>> {
    const RSA_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let (tag, cert, _) = der_tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, tbs, _) = der_tlv(cert)?;
    if tag != 0x30 {
        return None;
    }
    let mut rest = tbs;
    // Optional explicit [0] version.
    if rest.first() == Some(&0xa0) {
        rest = der_tlv(rest)?.2;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        rest = der_tlv(rest)?.2;
    }
    let (tag, spki, _) = der_tlv(rest)?;
    if tag != 0x30 {
        return None;
    }
    let (_, alg, after_alg) = der_tlv(spki)?;
    let (_, oid, _) = der_tlv(alg)?;
    if oid != RSA_OID {
        return None;
    }
    let (tag, bits, _) = der_tlv(after_alg)?;
    if tag != 0x03 || bits.first() != Some(&0) {
        return None;
    }
    Some(bits[1..].to_vec())
}

/// What a valid access token stands for.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    /// Application (client) id; throttling is per app and mailbox.
    pub app: String,
    pub expires_at: Instant,
}

/// Issued access tokens.
#[derive(Debug, Default)]
pub struct Tokens {
    map: HashMap<String, TokenInfo>,
}

impl Tokens {
    /// Marks every issued token as expired now (fault injection).
    pub fn expire_all(&mut self) {
        let now = Instant::now();
        for t in self.map.values_mut() {
            t.expires_at = now;
        }
    }

    fn issue(&mut self, app: &str, lifetime: Duration, rng: &mut fastrand::Rng) -> String {
        // Drop long-dead tokens so a long benchmark does not grow the map forever;
        // an hour of grace keeps "expired" (rather than "unknown") answers for them.
        let now = Instant::now();
        self.map.retain(|_, t| t.expires_at + Duration::from_secs(3600) > now);
        let mut raw = [0u8; 48];
        rng.fill(&mut raw);
        let token = format!("EwB{}", URL_SAFE_NO_PAD.encode(raw));
        self.map.insert(
            token.clone(),
            TokenInfo {
                app: app.to_string(),
                expires_at: now + lifetime,
            },
        );
        token
    }
}

/// An Entra (AADSTS) error body.
fn aad_error(app: &App, status: u16, error: &str, code: u32, description: &str) -> Resp {
    let mut rng = fastrand::Rng::new();
    let trace = crate::http::guid(&mut rng);
    let correlation = crate::http::guid(&mut rng);
    let ts = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {ts}"
        ),
        "error_codes": [code],
        "timestamp": ts,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": format!("{}/error?code={code}", app.base_url),
    });
    Resp::plain_json(status, &body)
}

/// `POST /{tenant}/oauth2/v2.0/token` (client-credentials grant only).
pub fn token_endpoint(app: &App, req: &Req, tenant: &str) -> Resp {
    if req.method != hyper::Method::POST {
        return aad_error(
            app,
            400,
            "invalid_request",
            900561,
            "The endpoint only accepts POST requests.",
        );
    }
    let cfg = &app.cfg;
    if !tenant.eq_ignore_ascii_case(&cfg.tenant_id) {
        return aad_error(
            app,
            400,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    let form: HashMap<String, String> = if req.content_type().as_deref() == Some("application/x-www-form-urlencoded") {
        parse_form(&req.body).into_iter().collect()
    } else {
        HashMap::new()
    };
    let missing = |p: &str| {
        aad_error(
            app,
            400,
            "invalid_request",
            900144,
            &format!("The request body must contain the following parameter: '{p}'."),
        )
    };
    let Some(grant) = form.get("grant_type") else {
        return missing("grant_type");
    };
    if grant != "client_credentials" {
        return aad_error(
            app,
            400,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant}'."),
        );
    }
    let Some(client_id) = form.get("client_id") else {
        return missing("client_id");
    };
    if !client_id.eq_ignore_ascii_case(&cfg.client_id) {
        return aad_error(
            app,
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'.",
                cfg.tenant_id
            ),
        );
    }
    let Some(scope) = form.get("scope") else {
        return missing("scope");
    };
    // The emulator is the resource: `{endpoint}/.default`, whether the client
    // names it by the bound address or by the Host it connected to, or Graph's own.
    let own_scope = format!("{}/.default", app.base_url);
    let host_scope = req.header("host").map(|h| format!("http://{h}/.default"));
    if scope != GRAPH_DEFAULT_SCOPE && scope != &own_scope && host_scope.as_ref() != Some(scope) {
        if scope.contains(' ') || !scope.ends_with("/.default") {
            return aad_error(
                app,
                400,
                "invalid_scope",
                1002012,
                &format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            );
        }
        return aad_error(
            app,
            400,
            "invalid_resource",
            500011,
            &format!(
                "The resource principal named {} was not found in the tenant named {}.",
                scope.trim_end_matches("/.default"),
                cfg.tenant_id
            ),
        );
    }
    let secret = form.get("client_secret");
    let assertion = form.get("client_assertion");
    match (secret, assertion) {
        (None, None) => {
            return aad_error(
                app,
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            );
        }
        (Some(_), Some(_)) => {
            return aad_error(
                app,
                400,
                "invalid_request",
                50027,
                "Only one client credential may be presented: client_secret or client_assertion.",
            );
        }
        (Some(s), None) => {
            if cfg.client_secret.as_deref() != Some(s.as_str()) {
                return aad_error(
                    app,
                    401,
                    "invalid_client",
                    7000215,
                    &format!(
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                        cfg.client_id
                    ),
                );
            }
        }
        (None, Some(jwt)) => {
            if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
                return aad_error(
                    app,
                    400,
                    "invalid_request",
                    50027,
                    &format!("client_assertion_type must be '{JWT_BEARER}'."),
                );
            }
            let token_url = format!("{}/{}/oauth2/v2.0/token", app.base_url, tenant);
            let host_url = req
                .header("host")
                .map(|h| format!("http://{h}/{tenant}/oauth2/v2.0/token"));
            if let Err((code, msg)) = verify_assertion(
                jwt,
                cfg.client_cert.as_ref(),
                &cfg.client_id,
                &[Some(token_url), host_url],
            ) {
                return aad_error(app, 401, "invalid_client", code, &msg);
            }
        }
    }
    let lifetime_secs = cfg.token_lifetime_secs as f64;
    let lifetime = cfg.scaled(lifetime_secs);
    let reported = cfg.reported_secs(lifetime_secs);
    let token = {
        let mut rng = app.rng.lock().unwrap();
        app.tokens.lock().unwrap().issue(&cfg.client_id, lifetime, &mut rng)
    };
    Resp::plain_json(
        200,
        &json!({
            "token_type": "Bearer",
            "expires_in": reported,
            "ext_expires_in": reported,
            "access_token": token,
        }),
    )
}

/// Checks a client assertion as Entra does for certificate credentials.
fn verify_assertion(
    jwt: &str,
    cert: Option<&CertKey>,
    client_id: &str,
    audiences: &[Option<String>],
) -> Result<(), (u32, String)> {
    let malformed = || (50027, "JWT token is invalid or malformed.".to_string());
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err(malformed());
    }
    let decode = |s: &str| -> Option<Value> {
        let raw = URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()?;
        serde_json::from_slice(&raw).ok()
    };
    let header = decode(parts[0]).ok_or_else(malformed)?;
    let claims = decode(parts[1]).ok_or_else(malformed)?;
    let signature = URL_SAFE_NO_PAD
        .decode(parts[2].trim_end_matches('='))
        .map_err(|_| malformed())?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let verifier: &'static dyn ring::signature::VerificationAlgorithm = match alg {
        "RS256" => &RSA_PKCS1_2048_8192_SHA256,
        "PS256" => &RSA_PSS_2048_8192_SHA256,
        other => {
            return Err((
                5002738,
                format!("Invalid JWT token. '{other}' is not a supported signature algorithm."),
            ));
        }
    };
    let key_not_found = || {
        (
            700027,
            format!(
                "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{}'] Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.",
                header
                    .get("x5t#S256")
                    .or_else(|| header.get("x5t"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
            ),
        )
    };
    let Some(cert) = cert else {
        return Err(key_not_found());
    };
    let thumb_ok = match (
        header.get("x5t#S256").and_then(Value::as_str),
        header.get("x5t").and_then(Value::as_str),
    ) {
        (Some(s256), _) => s256.trim_end_matches('=') == cert.x5t_s256,
        (None, Some(x5t)) => x5t.trim_end_matches('=') == cert.x5t,
        (None, None) => false,
    };
    if !thumb_ok {
        return Err(key_not_found());
    }
    let signed = format!("{}.{}", parts[0], parts[1]);
    UnparsedPublicKey::new(verifier, &cert.rsa_public_key)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| {
            (
                7000274,
                "Key was found, but use of the key to verify the signature failed.".to_string(),
            )
        })?;
    let claim = |n: &str| claims.get(n).and_then(Value::as_str);
    let aud = claim("aud").unwrap_or("");
    if !audiences.iter().flatten().any(|a| a == aud) {
        return Err((
            700212,
            format!("The audience '{aud}' of the client assertion is not the token endpoint URL."),
        ));
    }
    if claim("iss") != Some(client_id) || claim("sub") != Some(client_id) {
        return Err((
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.".to_string(),
        ));
    }
    if claim("jti").is_none() {
        return Err((
            700023,
            "Client assertion contains an invalid or missing 'jti' claim.".to_string(),
        ));
    }
    let now = chrono::Utc::now().timestamp();
    let exp = claims.get("exp").and_then(Value::as_i64);
    // Entra tolerates a few minutes of clock skew on nbf; exp is checked as is.
    let nbf_ok = claims
        .get("nbf")
        .and_then(Value::as_i64)
        .is_none_or(|nbf| nbf <= now + 300);
    match exp {
        Some(exp) if exp > now && nbf_ok => Ok(()),
        _ => Err((
            700024,
            "Client assertion is not within its valid time range.".to_string(),
        )),
    }
}

/// Validates the bearer token of a Graph request; returns the app id.
pub fn authenticate(app: &App, req: &Req) -> Result<String, Resp> {
    let unauthorized = |message: &str| {
        graph_error(req, 401, "InvalidAuthenticationToken", message).header(
            "www-authenticate",
            "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
        )
    };
    let token = req
        .header("authorization")
        .and_then(|h| {
            let (scheme, rest) = h.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .unwrap_or("");
    if token.is_empty() {
        return Err(unauthorized("Access token is empty."));
    }
    let info = app.tokens.lock().unwrap().map.get(token).cloned();
    match info {
        None => Err(unauthorized("CompactToken parsing failed with error code: 80049217")),
        Some(t) if Instant::now() >= t.expires_at => {
            Err(unauthorized("Lifetime validation failed, the token is expired."))
        }
        Some(t) => Ok(t.app),
    }
}
