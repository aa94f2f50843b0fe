//! The options of `[target] kind = "graph"`: the section as cutover.toml
//! spells it, checked and built into [`GraphSettings`]. They live with the
//! Graph target rather than in [`crate::settings`], which only finds the
//! section and hands it over, so that everything about Graph (its keys,
//! their defaults, Exchange Online's limits) is in one place. The Entra ID
//! credential is shared with the IMAP sides ([`crate::oauth::entra`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::oauth::entra::{ENTRA_AUTHORITY, EntraCredential, KeyNames};
use crate::secret::Secret;

/// How the app proves who it is to Entra ID: the same credential kinds as
/// every Entra ID app cutover uses.
pub use crate::oauth::entra::EntraCredential as GraphCredential;

/// The Graph section spells the app's keys without a prefix.
pub static GRAPH_KEYS: KeyNames = KeyNames {
    prefix: "",
    scope_advice: "check [target] endpoint (e.g. https://graph.microsoft.com)",
};

/// `[target] kind = "graph"`: an Entra ID app (client credentials) writing
/// into Exchange Online mailboxes through Microsoft Graph.
#[derive(Debug, Clone)]
pub struct GraphSettings {
    pub tenant_id: String,
    pub client_id: String,
    pub credential: GraphCredential,
    /// Graph's base URL without a trailing slash; the token scope is
    /// `{endpoint}/.default`.
    pub endpoint: String,
    /// Entra ID's base URL without a trailing slash.
    pub authority: String,
    pub write_mode: GraphWriteMode,
    /// Requests in flight at once per target mailbox.
    pub max_concurrent_requests: usize,
    /// Requests in flight at once for the whole app, all mailboxes
    /// together; `None`: no such cap (Exchange counts concurrency per app
    /// and mailbox, which is the default reading).
    pub max_concurrent_requests_per_app: Option<usize>,
    /// Requests per target mailbox in any 10-minute window.
    pub requests_per_10_minutes: u32,
    /// Request body bytes (POST, PATCH, PUT) per mailbox in any 5 minutes.
    pub upload_bytes_per_5_minutes: u32,
    /// Multiplies the 10-minute and 5-minute windows of the two budgets
    /// above (1 for Exchange Online; the Graph emulator's `--time-scale`
    /// when it runs Exchange's limits on a faster clock).
    pub limits_time_scale: f64,
    /// Limit on each request (a large upload gets extra time per MiB).
    pub timeout: Duration,
}

/// How messages are written into Exchange Online.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GraphWriteMode {
    /// importMime, switching to json for the rest of the run when the
    /// tenant refuses it.
    Auto,
    /// Byte-identical import (Graph beta, needs Mail-Advanced.ReadWrite.All).
    ImportMime,
    /// JSON message plus MAPI properties (needs only Mail.ReadWrite).
    Json,
}

/// `[target] kind = "graph"` as written; [`graph_settings`] checks it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphTargetSection {
    tenant_id: String,
    client_id: String,
    client_secret_env: Option<String>,
    client_secret_file: Option<PathBuf>,
    certificate_file: Option<PathBuf>,
    private_key_file: Option<PathBuf>,
    #[serde(default = "default_graph_endpoint")]
    endpoint: String,
    #[serde(default = "default_graph_authority")]
    authority: String,
    #[serde(default = "default_graph_write_mode")]
    write_mode: GraphWriteMode,
    #[serde(default = "default_graph_concurrency")]
    max_concurrent_requests: usize,
    #[serde(default)]
    max_concurrent_requests_per_app: usize,
    #[serde(default = "default_graph_requests")]
    requests_per_10_minutes: u32,
    #[serde(default = "default_graph_upload_bytes")]
    upload_bytes_per_5_minutes: u32,
    #[serde(default = "default_graph_limits_time_scale")]
    limits_time_scale: f64,
    #[serde(default = "default_graph_timeout")]
    timeout_seconds: u64,
}

fn default_graph_endpoint() -> String {
    "https://graph.microsoft.com".into()
}
fn default_graph_authority() -> String {
    ENTRA_AUTHORITY.into()
}
fn default_graph_write_mode() -> GraphWriteMode {
    GraphWriteMode::Auto
}
// Exchange Online's documented limits per app and mailbox: 4 concurrent
// requests, 10,000 requests per 10 minutes, 150 MB uploaded per 5 minutes.
fn default_graph_concurrency() -> usize {
    4
}
fn default_graph_requests() -> u32 {
    10_000
}
fn default_graph_upload_bytes() -> u32 {
    157_286_400
}
fn default_graph_limits_time_scale() -> f64 {
    1.0
}
fn default_graph_timeout() -> u64 {
    120
}

/// Validates `[target] kind = "graph"` and reads its secret (from the
/// environment or a file) into a [`Secret`]. `resolve` makes a path from
/// the config relative to the config file; `env` looks up environment
/// variables.
pub fn graph_settings(
    g: GraphTargetSection,
    resolve: &dyn Fn(&Path) -> PathBuf,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<GraphSettings, String> {
    let tenant_id = g.tenant_id.trim().to_owned();
    if tenant_id.is_empty()
        || !tenant_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(format!(
            "[target] tenant_id = {:?} is not a tenant id; use the Directory (tenant) ID GUID or the tenant's domain (contoso.onmicrosoft.com) from the app registration's overview page",
            g.tenant_id
        ));
    }
    let client_id = g.client_id.trim().to_owned();
    if client_id.is_empty() || client_id.contains(char::is_whitespace) {
        return Err(format!(
            "[target] client_id = {:?} is not a client id; use the Application (client) ID GUID from the app registration's overview page",
            g.client_id
        ));
    }

    let certificate = g.certificate_file.is_some() || g.private_key_file.is_some();
    let chosen = [
        g.client_secret_env.is_some(),
        g.client_secret_file.is_some(),
        certificate,
    ]
    .iter()
    .filter(|&&b| b)
    .count();
    if chosen != 1 {
        return Err(format!(
            "[target] needs exactly one credential for the app, found {chosen}: set client_secret_env (an environment variable holding the client secret), client_secret_file (a file holding it), or certificate_file and private_key_file (a certificate uploaded to the app registration, with its PKCS#8 private key)"
        ));
    }
    let read = |what: &str, p: &Path| -> Result<String, String> {
        std::fs::read_to_string(p).map_err(|e| format!("[target] {what} {} cannot be read: {e}", p.display()))
    };
    let credential = if let Some(var) = &g.client_secret_env {
        let value = env(var).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            format!("[target] client_secret_env names {var}, which is not set (or empty) in the environment")
        })?;
        GraphCredential::ClientSecret(Secret::new(value.trim()))
    } else if let Some(file) = &g.client_secret_file {
        let file = resolve(file);
        let value = read("client_secret_file", &file)?;
        if value.trim().is_empty() {
            return Err(format!(
                "[target] client_secret_file {} is empty; put the client secret's value in it",
                file.display()
            ));
        }
        GraphCredential::ClientSecret(Secret::new(value.trim()))
    } else {
        let (Some(cert), Some(key)) = (&g.certificate_file, &g.private_key_file) else {
            return Err("[target] certificate_file and private_key_file go together: set both (the certificate uploaded to the app registration, and its private key)".into());
        };
        EntraCredential::read_certificate("target", &GRAPH_KEYS, &resolve(cert), &resolve(key))?
    };

    let endpoint = crate::http::base_url("target", "endpoint", &g.endpoint)?;
    let authority = crate::http::base_url("target", "authority", &g.authority)?;
    if !(1..=64).contains(&g.max_concurrent_requests) {
        return Err(format!(
            "[target] max_concurrent_requests = {} is out of range (1 to 64; Exchange Online allows 4 per mailbox)",
            g.max_concurrent_requests
        ));
    }
    if g.max_concurrent_requests_per_app > 100_000 {
        return Err(format!(
            "[target] max_concurrent_requests_per_app = {} is out of range (0 for no cap, else 1 to 100000)",
            g.max_concurrent_requests_per_app
        ));
    }
    if g.requests_per_10_minutes == 0 {
        return Err("[target] requests_per_10_minutes must be at least 1".into());
    }
    if g.upload_bytes_per_5_minutes < 1024 * 1024 {
        return Err("[target] upload_bytes_per_5_minutes must be at least 1048576 (1 MiB)".into());
    }
    if !(g.limits_time_scale.is_finite() && g.limits_time_scale >= 0.000_1 && g.limits_time_scale <= 1.0) {
        return Err(format!(
            "[target] limits_time_scale = {} is out of range (0.0001 to 1; leave it at 1 for Exchange Online, set it to the Graph emulator's --time-scale otherwise)",
            g.limits_time_scale
        ));
    }
    if g.timeout_seconds == 0 {
        return Err("[target] timeout_seconds must be at least 1".into());
    }
    Ok(GraphSettings {
        tenant_id,
        client_id,
        credential,
        endpoint,
        authority,
        write_mode: g.write_mode,
        max_concurrent_requests: g.max_concurrent_requests,
        max_concurrent_requests_per_app: (g.max_concurrent_requests_per_app > 0)
            .then_some(g.max_concurrent_requests_per_app),
        requests_per_10_minutes: g.requests_per_10_minutes,
        upload_bytes_per_5_minutes: g.upload_bytes_per_5_minutes,
        limits_time_scale: g.limits_time_scale,
        timeout: Duration::from_secs(g.timeout_seconds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Why the section was refused, as `crate::settings::ConfigError` holds it.
    #[derive(Debug)]
    struct Refused(String);

    impl std::fmt::Display for Refused {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    /// Reads the `[target]` of config text the way `crate::settings` hands
    /// it over (other sections are ignored here), paths relative to `path`.
    fn parse(text: &str, path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<GraphSettings, Refused> {
        #[derive(Deserialize)]
        struct File {
            target: Target,
        }
        #[derive(Deserialize)]
        #[serde(tag = "kind", rename_all = "lowercase")]
        enum Target {
            Graph(GraphTargetSection),
        }
        let file: File = toml::from_str(text).map_err(|e| Refused(e.to_string()))?;
        let Target::Graph(section) = file.target;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
        graph_settings(section, &resolve, env).map_err(Refused)
    }

    fn parse_str(text: &str) -> Result<GraphSettings, Refused> {
        parse(text, Path::new("/etc/cutover/cutover.toml"), &|v| {
            (v == "PW").then(|| "s3cret".to_owned())
        })
    }

    const GRAPH: &str = "[source]\nhost = \"h\"\n[target]\nkind = \"graph\"\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"11111111-2222-3333-4444-555555555555\"\n";

    #[test]
    fn graph_target_gets_documented_defaults() {
        let s = parse_str(&format!("{GRAPH}client_secret_env = \"PW\"\n")).unwrap();
        let g = &s;
        assert_eq!(g.tenant_id, "contoso.onmicrosoft.com");
        assert_eq!(g.client_id, "11111111-2222-3333-4444-555555555555");
        assert!(matches!(&g.credential, GraphCredential::ClientSecret(secret) if secret.expose() == "s3cret"));
        assert_eq!(g.endpoint, "https://graph.microsoft.com");
        assert_eq!(g.authority, "https://login.microsoftonline.com");
        assert_eq!(g.write_mode, GraphWriteMode::Auto);
        assert_eq!(g.max_concurrent_requests, 4);
        assert_eq!(g.max_concurrent_requests_per_app, None);
        assert_eq!(g.requests_per_10_minutes, 10_000);
        assert_eq!(g.upload_bytes_per_5_minutes, 157_286_400);
        assert_eq!(g.limits_time_scale, 1.0);
        assert_eq!(g.timeout, Duration::from_secs(120));
        // The secret never shows in the settings' debug output.
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn graph_keys_are_parsed_and_checked() {
        let s = parse_str(&format!(
            "{GRAPH}client_secret_env = \"PW\"\nendpoint = \"http://127.0.0.1:8080/\"\nauthority = \"http://localhost:8080\"\nwrite_mode = \"import-mime\"\nmax_concurrent_requests = 2\nrequests_per_10_minutes = 600\nupload_bytes_per_5_minutes = 10485760\nlimits_time_scale = 0.05\ntimeout_seconds = 30\n"
        ))
        .unwrap();
        let g = &s;
        assert_eq!(g.endpoint, "http://127.0.0.1:8080");
        assert_eq!(g.authority, "http://localhost:8080");
        assert_eq!(g.write_mode, GraphWriteMode::ImportMime);
        assert_eq!(
            (
                g.max_concurrent_requests,
                g.requests_per_10_minutes,
                g.upload_bytes_per_5_minutes
            ),
            (2, 600, 10_485_760)
        );
        assert_eq!(g.limits_time_scale, 0.05);
        assert_eq!(g.timeout, Duration::from_secs(30));

        for (extra, named) in [
            (
                "client_secret_env = \"PW\"\nendpoint = \"http://graph.example.com\"\n",
                "loopback",
            ),
            ("client_secret_env = \"PW\"\nwrite_mode = \"mime\"\n", "import-mime"),
            (
                "client_secret_env = \"PW\"\nmax_concurrent_requests = 0\n",
                "max_concurrent_requests",
            ),
            (
                "client_secret_env = \"PW\"\nlimits_time_scale = 2.0\n",
                "limits_time_scale",
            ),
            (
                "client_secret_env = \"PW\"\nclient_secrt_file = \"x\"\n",
                "client_secrt_file",
            ),
            ("client_secret_env = \"MISSING\"\n", "MISSING"),
            ("", "exactly one credential"),
            (
                "client_secret_env = \"PW\"\nclient_secret_file = \"s\"\n",
                "exactly one credential",
            ),
            ("certificate_file = \"c.pem\"\n", "private_key_file"),
        ] {
            let err = parse_str(&format!("{GRAPH}{extra}")).unwrap_err();
            assert!(err.0.contains(named), "{extra:?} gave {err}");
        }
        let err = parse_str("[source]\nhost = \"h\"\n[target]\nkind = \"graph\"\ntenant_id = \"a/b\"\nclient_id = \"c\"\nclient_secret_env = \"PW\"\n").unwrap_err();
        assert!(err.0.contains("tenant_id"), "{err}");
    }

    #[test]
    fn graph_secret_and_certificate_files_are_read_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret.txt"), "from-file\n").unwrap();
        std::fs::write(
            dir.path().join("cert.pem"),
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("key.pem"),
            "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("enc.pem"),
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIE\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap();
        let config = dir.path().join("cutover.toml");
        let env = |_: &str| None;

        let s = parse(&format!("{GRAPH}client_secret_file = \"secret.txt\"\n"), &config, &env).unwrap();
        let g = &s;
        assert!(matches!(&g.credential, GraphCredential::ClientSecret(secret) if secret.expose() == "from-file"));

        let s = parse(
            &format!("{GRAPH}certificate_file = \"cert.pem\"\nprivate_key_file = \"key.pem\"\n"),
            &config,
            &env,
        )
        .unwrap();
        let g = &s;
        let GraphCredential::Certificate {
            certificate_pem,
            private_key_pem,
            certificate_file,
        } = &g.credential
        else {
            panic!("not a certificate")
        };
        assert!(certificate_pem.contains("BEGIN CERTIFICATE"));
        assert!(private_key_pem.expose().contains("BEGIN PRIVATE KEY"));
        assert_eq!(certificate_file, &dir.path().join("cert.pem"));

        let err = parse(
            &format!("{GRAPH}certificate_file = \"cert.pem\"\nprivate_key_file = \"enc.pem\"\n"),
            &config,
            &env,
        )
        .unwrap_err();
        assert!(err.0.contains("encrypted"), "{err}");
        let err = parse(&format!("{GRAPH}client_secret_file = \"nope.txt\"\n"), &config, &env).unwrap_err();
        assert!(err.0.contains("nope.txt"), "{err}");
    }

    #[test]
    fn a_per_app_concurrency_cap_is_off_unless_set() {
        let with = parse_str(&format!(
            "{GRAPH}client_secret_env = \"PW\"\nmax_concurrent_requests_per_app = 20\n"
        ))
        .unwrap();
        assert_eq!(with.max_concurrent_requests_per_app, Some(20));
        let zero = parse_str(&format!(
            "{GRAPH}client_secret_env = \"PW\"\nmax_concurrent_requests_per_app = 0\n"
        ))
        .unwrap();
        assert_eq!(zero.max_concurrent_requests_per_app, None);
    }
}
