//! Command line and resolved runtime configuration.
//!
//! The emulator is started by tests, demos and benchmarks, so every knob that
//! changes observable Graph behaviour lives here, with Graph's documented
//! value as its default. The few knobs that go beyond the brief (throttle
//! limits, violation grace) exist so tests can provoke limits without sending
//! 10,000 requests; their defaults are the documented Exchange Online values.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};

/// Default tenant id: any GUID works; this one is easy to spot in logs.
pub const DEFAULT_TENANT: &str = "00000000-0000-4000-8000-00000000e4a1";
/// Default application (client) id.
pub const DEFAULT_CLIENT: &str = "00000000-0000-4000-8000-00000000c11e";

/// Whether attachments may be added to messages that are not drafts.
///
/// Public sources do not say whether Exchange accepts attachments (inline
/// POST or upload sessions) on a message created non-draft through
/// `Integer 0x0E07` (exchange-facts.md §1c "Not found"), so both answers are
/// selectable and the product can be tested against each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NonDraftAttachments {
    Allow,
    Deny,
}

/// Which MailboxSettings application permission the app holds: the
/// master category list (`/outlook/masterCategories`) is read with
/// MailboxSettings.Read and written with MailboxSettings.ReadWrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MailboxSettings {
    None,
    Read,
    ReadWrite,
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "graph-emulator",
    about = "Local Microsoft Graph (Outlook mail) emulator for cutover's tests, demos and benchmarks",
    version
)]
pub struct Cli {
    /// Address to listen on. Only loopback addresses are accepted.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Write the bound port number to this file once listening.
    #[arg(long)]
    pub port_file: Option<PathBuf>,
    /// Directory (tenant) id accepted by the token endpoint.
    #[arg(long, default_value = DEFAULT_TENANT)]
    pub tenant_id: String,
    /// Application (client) id accepted by the token endpoint.
    #[arg(long, default_value = DEFAULT_CLIENT)]
    pub client_id: String,
    /// Client secret accepted by the token endpoint.
    #[arg(long, conflicts_with = "client_secret_env")]
    pub client_secret: Option<String>,
    /// Read the client secret from this environment variable.
    #[arg(long)]
    pub client_secret_env: Option<String>,
    /// PEM certificate whose public key verifies client assertions (RS256/PS256).
    #[arg(long)]
    pub client_cert: Option<PathBuf>,
    /// Access-token lifetime in (unscaled) seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_lifetime_secs: u64,
    /// Whether the app holds Mail-Advanced.ReadWrite.All (importMime, sensitive PATCH on non-drafts).
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub mail_advanced: bool,
    /// Which MailboxSettings permission the app holds (the master category list).
    #[arg(long, value_enum, default_value_t = MailboxSettings::ReadWrite)]
    pub mailbox_settings: MailboxSettings,
    /// Comma-separated mailbox addresses; when given, any other user is unknown (404).
    #[arg(long, value_delimiter = ',')]
    pub mailboxes: Option<Vec<String>>,
    /// Multiplier applied to every duration (throttle windows, token lifetime, Retry-After).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Default MaxReceiveSize of each mailbox, in bytes (Exchange Online default 36 MB).
    #[arg(long, default_value_t = 37_748_736)]
    pub max_receive_size_bytes: u64,
    /// Default page size of collections when $top is not given.
    #[arg(long, default_value_t = 10)]
    pub page_size: usize,
    /// Seed for every random choice (ids, fault draws, batch response order).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Concurrent requests allowed per app and mailbox.
    #[arg(long, default_value_t = 4)]
    pub max_concurrency: u32,
    /// Requests allowed per app and mailbox in each rate window.
    #[arg(long, default_value_t = 10_000)]
    pub rate_limit_requests: u64,
    /// Length of the request-rate window in (unscaled) seconds.
    #[arg(long, default_value_t = 600)]
    pub rate_window_secs: u64,
    /// Upload bytes (POST/PATCH/PUT bodies) allowed per app and mailbox in each upload window.
    #[arg(long, default_value_t = 157_286_400)]
    pub upload_limit_bytes: u64,
    /// Length of the upload window in (unscaled) seconds.
    #[arg(long, default_value_t = 300)]
    pub upload_window_secs: u64,
    /// Requests arriving this many real milliseconds after a Retry-After was issued are
    /// recorded as races, not violations: they were on the wire before the client could
    /// have read the Retry-After.
    #[arg(long, default_value_t = 50)]
    pub violation_grace_ms: u64,
    /// Whether attachments may be added to non-draft messages.
    #[arg(long, value_enum, default_value_t = NonDraftAttachments::Allow)]
    pub nondraft_attachments: NonDraftAttachments,
}

/// Configuration after validation, with secrets and keys loaded.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub port_file: Option<PathBuf>,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub client_cert: Option<crate::auth::CertKey>,
    pub token_lifetime_secs: u64,
    pub mail_advanced: bool,
    pub mailbox_settings: MailboxSettings,
    pub mailboxes: Option<Vec<String>>,
    pub time_scale: f64,
    pub max_receive_size_bytes: u64,
    pub page_size: usize,
    pub seed: u64,
    pub max_concurrency: u32,
    pub rate_limit_requests: u64,
    pub rate_window_secs: u64,
    pub upload_limit_bytes: u64,
    pub upload_window_secs: u64,
    pub violation_grace: Duration,
    pub nondraft_attachments: NonDraftAttachments,
}

impl Config {
    /// Validates the command line and loads the secret and certificate.
    pub fn from_cli(cli: Cli) -> Result<Config, String> {
        if !cli.listen.ip().is_loopback() {
            return Err(format!(
                "--listen {} is not a loopback address; the emulator only serves loopback",
                cli.listen
            ));
        }
        if !(cli.time_scale.is_finite() && cli.time_scale > 0.0) {
            return Err("--time-scale must be a positive number".into());
        }
        if cli.page_size == 0 || cli.page_size > 1000 {
            return Err("--page-size must be between 1 and 1000".into());
        }
        if cli.max_concurrency == 0 {
            return Err("--max-concurrency must be at least 1".into());
        }
        let client_secret = match (&cli.client_secret, &cli.client_secret_env) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(var)) => {
                Some(std::env::var(var).map_err(|_| format!("--client-secret-env {var}: variable is not set"))?)
            }
            (None, None) => None,
        };
        let client_cert = match &cli.client_cert {
            Some(path) => {
                let pem =
                    std::fs::read_to_string(path).map_err(|e| format!("--client-cert {}: {e}", path.display()))?;
                Some(
                    crate::auth::CertKey::from_pem(&pem)
                        .map_err(|e| format!("--client-cert {}: {e}", path.display()))?,
                )
            }
            None => None,
        };
        if client_secret.is_none() && client_cert.is_none() {
            // An app registration without any credential cannot obtain tokens; refusing to
            // start is clearer than an emulator that rejects every token request.
            return Err("no client credential: give --client-secret, --client-secret-env or --client-cert".into());
        }
        if let Some(list) = &cli.mailboxes
            && list.iter().any(|m| !m.contains('@'))
        {
            return Err("--mailboxes entries must be email addresses".into());
        }
        Ok(Config {
            listen: cli.listen,
            port_file: cli.port_file,
            tenant_id: cli.tenant_id,
            client_id: cli.client_id,
            client_secret,
            client_cert,
            token_lifetime_secs: cli.token_lifetime_secs,
            mail_advanced: cli.mail_advanced,
            mailbox_settings: cli.mailbox_settings,
            mailboxes: cli.mailboxes,
            time_scale: cli.time_scale,
            max_receive_size_bytes: cli.max_receive_size_bytes,
            page_size: cli.page_size,
            seed: cli.seed.unwrap_or_else(|| fastrand::u64(..)),
            max_concurrency: cli.max_concurrency,
            rate_limit_requests: cli.rate_limit_requests,
            rate_window_secs: cli.rate_window_secs,
            upload_limit_bytes: cli.upload_limit_bytes,
            upload_window_secs: cli.upload_window_secs,
            violation_grace: Duration::from_millis(cli.violation_grace_ms),
            nondraft_attachments: cli.nondraft_attachments,
        })
    }

    /// Real duration of `secs` emulated seconds.
    pub fn scaled(&self, secs: f64) -> Duration {
        Duration::from_secs_f64((secs * self.time_scale).max(0.0))
    }

    /// Seconds reported on the wire for an emulated duration: the scaled value,
    /// rounded up to whole seconds and never below 1, so that a client that
    /// waits what it is told always waits long enough.
    pub fn reported_secs(&self, secs: f64) -> u64 {
        wire_secs(self.scaled(secs))
    }
}

/// Whole seconds (at least 1) covering a real duration; the unit of `Retry-After`.
pub fn wire_secs(d: Duration) -> u64 {
    (d.as_secs_f64().ceil() as u64).max(1)
}
