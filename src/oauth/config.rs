//! The `auth = "xoauth2"` keys of `[source]` and of an IMAP `[target]`,
//! checked and built into [`TokenSettings`]. The sections themselves belong
//! to [`crate::settings`]; what their OAuth keys mean, and which
//! combinations make sense, is this module's business. Keys and files are
//! read here, so a run never starts with a credential that cannot work.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::entra::{EntraApp, EntraCredential, KeyNames};
use super::{GoogleServiceAccount, TokenSettings};
use crate::secret::Secret;

/// The Entra ID app keys of the IMAP sides are spelled `oauth_*`.
pub static IMAP_KEYS: KeyNames = KeyNames {
    prefix: "oauth_",
    scope_advice: "cutover asks for https://outlook.office365.com/.default; check that the tenant has Exchange Online and that oauth_authority is its Entra ID",
};

/// Scope of an Exchange Online IMAP token.
const EXCHANGE_IMAP_SCOPE: &str = "https://outlook.office365.com/.default";

/// The OAuth keys of `[source]` or an IMAP `[target]`.
pub struct OAuthKeys<'a> {
    pub section: &'a str,
    pub xoauth2: bool,
    pub token_command: &'a Option<String>,
    pub tenant_id: &'a Option<String>,
    pub client_id: &'a Option<String>,
    pub client_secret_env: &'a Option<String>,
    pub certificate_file: &'a Option<PathBuf>,
    pub private_key_file: &'a Option<PathBuf>,
    pub authority: &'a str,
    pub service_account_file: &'a Option<PathBuf>,
}

/// `auth = "xoauth2"`: a token command, Microsoft client credentials
/// (Exchange Online IMAP, with a client secret or a certificate) or a
/// Google service account (Gmail Workspace).
pub fn token_settings(
    k: OAuthKeys<'_>,
    resolve: &dyn Fn(&Path) -> PathBuf,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<TokenSettings>, String> {
    let section = k.section;
    let certificate = k.certificate_file.is_some() || k.private_key_file.is_some();
    let microsoft = k.tenant_id.is_some() || k.client_id.is_some() || k.client_secret_env.is_some() || certificate;
    let google = k.service_account_file.is_some();
    if !k.xoauth2 {
        if k.token_command.is_some() || microsoft || google {
            return Err(format!(
                "[{section}] token_command and oauth_* keys need auth = \"xoauth2\""
            ));
        }
        return Ok(None);
    }
    let ways = usize::from(k.token_command.is_some()) + usize::from(microsoft) + usize::from(google);
    if ways > 1 {
        return Err(format!(
            "[{section}] set one of token_command, the Microsoft oauth_* keys or oauth_service_account_file, not several"
        ));
    }
    if let Some(file) = k.service_account_file {
        let path = resolve(file);
        let json = std::fs::read_to_string(&path)
            .map_err(|e| format!("[{section}] oauth_service_account_file {}: {e}", path.display()))?;
        let account = GoogleServiceAccount::from_json(&json, &path)
            .map_err(|e| format!("[{section}] oauth_service_account_file: {e}"))?;
        return Ok(Some(TokenSettings::Google(Arc::new(account))));
    }
    if let Some(command) = k.token_command {
        if command.trim().is_empty() {
            return Err(format!("[{section}] token_command is empty"));
        }
        return Ok(Some(TokenSettings::Command(command.clone())));
    }
    if !microsoft {
        return Err(format!(
            "[{section}] auth = \"xoauth2\" needs token_command (a program printing a token for $CUTOVER_LOGIN), oauth_tenant_id, oauth_client_id and oauth_client_secret_env or oauth_certificate_file with oauth_private_key_file (Microsoft client credentials), or oauth_service_account_file (a Google service account with domain-wide delegation)"
        ));
    }
    let incomplete = || {
        format!(
            "[{section}] Microsoft client credentials need oauth_tenant_id, oauth_client_id and oauth_client_secret_env (or oauth_certificate_file and oauth_private_key_file, a certificate uploaded to the app registration and its private key)"
        )
    };
    let (Some(tenant_id), Some(client_id)) = (k.tenant_id, k.client_id) else {
        return Err(incomplete());
    };
    let credential = match (k.client_secret_env, certificate) {
        (Some(_), true) => {
            return Err(format!(
                "[{section}] set oauth_client_secret_env or oauth_certificate_file with oauth_private_key_file, not both"
            ));
        }
        (Some(var), false) => {
            let secret = env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                format!(
                    "[{section}] oauth_client_secret_env names {var}, which is not set (or empty) in the environment"
                )
            })?;
            EntraCredential::ClientSecret(Secret::new(secret))
        }
        (None, true) => {
            let (Some(cert), Some(key)) = (k.certificate_file, k.private_key_file) else {
                return Err(format!(
                    "[{section}] oauth_certificate_file and oauth_private_key_file go together: set both (the certificate uploaded to the app registration, and its private key)"
                ));
            };
            EntraCredential::read_certificate(section, &IMAP_KEYS, &resolve(cert), &resolve(key))?
        }
        (None, false) => return Err(incomplete()),
    };
    let authority = crate::http::base_url(section, "oauth_authority", k.authority)?;
    let app = EntraApp::new(
        tenant_id.clone(),
        client_id.clone(),
        authority,
        EXCHANGE_IMAP_SCOPE.into(),
        &credential,
        &IMAP_KEYS,
    )
    .map_err(|e| format!("[{section}] {}", e.message))?;
    Ok(Some(TokenSettings::Microsoft(Arc::new(app))))
}
