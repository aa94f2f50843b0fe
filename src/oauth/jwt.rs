//! The one JWT signer, for the two assertions cutover signs with an RSA key
//! through ring: the Entra ID client assertion of a certificate credential
//! ([`super::entra`], PS256 as Microsoft's "certificate credentials" page
//! shows it) and the Google service-account grant ([`super::google`],
//! RS256 as Google requires). Reading the PEM key, building the compact
//! `header.claims.signature` form and signing are the same for both; the
//! callers only choose the algorithm and the claims.
//!
//! The private key stays inside ring's key type: it has no `Debug`, and no
//! error here carries key material.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SecureRandom;
use ring::signature::{KeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaEncoding, RsaKeyPair};
use serde_json::Value;
use tokio_rustls::rustls::pki_types::PrivateKeyDer;

/// The JWS algorithm of a signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (Google's service-account grant).
    Rs256,
    /// RSASSA-PSS with SHA-256 (Entra ID client assertions).
    Ps256,
}

impl Alg {
    fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Ps256 => "PS256",
        }
    }
}

/// Why a PEM private key cannot sign; each caller words it for the key the
/// admin configured.
#[derive(Debug)]
pub enum KeyError {
    /// No PEM private key could be read.
    Unreadable,
    /// A key, but not an RSA one (EC, Ed25519).
    NotRsa,
    /// ring refused the RSA key (too small, malformed); ring's reason.
    Unusable(String),
}

/// An RSA private key ready to sign JWTs.
pub struct JwtSigner {
    key: RsaKeyPair,
}

impl JwtSigner {
    /// Reads a PEM private key: PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA
    /// PRIVATE KEY`).
    pub fn from_pem(private_key_pem: &str) -> Result<JwtSigner, KeyError> {
        let der = rustls_pemfile::private_key(&mut private_key_pem.as_bytes())
            .ok()
            .flatten()
            .ok_or(KeyError::Unreadable)?;
        let key = match &der {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => return Err(KeyError::NotRsa),
        }
        .map_err(|e| KeyError::Unusable(e.to_string()))?;
        Ok(JwtSigner { key })
    }

    /// The public key (DER RSAPublicKey), to match it against a certificate.
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    /// A signed compact JWT. `header` holds any fields beyond `alg` and
    /// `typ`, which are set here; `None` when signing fails.
    pub fn sign(&self, alg: Alg, header: Value, claims: &Value, rng: &dyn SecureRandom) -> Option<String> {
        let mut fields = serde_json::Map::new();
        fields.insert("alg".into(), alg.name().into());
        fields.insert("typ".into(), "JWT".into());
        if let Value::Object(extra) = header {
            fields.extend(extra);
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(Value::Object(fields).to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let padding: &'static dyn RsaEncoding = match alg {
            Alg::Rs256 => &RSA_PKCS1_SHA256,
            Alg::Ps256 => &RSA_PSS_SHA256,
        };
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key.sign(padding, rng, input.as_bytes(), &mut signature).ok()?;
        Some(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256, UnparsedPublicKey};

    const KEY: &str = include_str!("../../tests/data/graph-test-key.pem");

    #[test]
    fn both_algorithms_sign_what_the_public_key_verifies() {
        let signer = JwtSigner::from_pem(KEY).unwrap();
        let claims = serde_json::json!({ "iss": "me", "n": 1 });
        for (alg, verify) in [
            (Alg::Rs256, &RSA_PKCS1_2048_8192_SHA256),
            (Alg::Ps256, &RSA_PSS_2048_8192_SHA256),
        ] {
            let jwt = signer
                .sign(alg, serde_json::json!({ "kid": "k1" }), &claims, &SystemRandom::new())
                .unwrap();
            let parts: Vec<&str> = jwt.split('.').collect();
            let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
            assert_eq!(
                header,
                serde_json::json!({ "alg": alg.name(), "typ": "JWT", "kid": "k1" })
            );
            let body: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
            assert_eq!(body, claims);
            UnparsedPublicKey::new(verify, signer.public_key())
                .verify(
                    format!("{}.{}", parts[0], parts[1]).as_bytes(),
                    &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
                )
                .unwrap();
        }
    }

    #[test]
    fn keys_that_cannot_sign_are_told_apart() {
        assert!(matches!(JwtSigner::from_pem("no key here"), Err(KeyError::Unreadable)));
        let ec = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIEPf+ZrA9VqQJvpAr2X43tinkiS+nQn2YzeP80jTI4MooAoGCCqGSM49\nAwEHoUQDQgAEGdREYSWzpS/JlxpwZP0fKbCPbsRqTxWagDNO6O3suL4WtCEIxqAm\nfEbLQoLPn+r3iwkJdLzIZMvYU079Vc0MsQ==\n-----END EC PRIVATE KEY-----\n";
        assert!(matches!(JwtSigner::from_pem(ec), Err(KeyError::NotRsa)));
    }
}
