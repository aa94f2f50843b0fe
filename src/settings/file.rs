//! The config file as TOML has it: one struct per section, every key with
//! its documented default, unknown keys refused by name. Nothing here is
//! checked beyond its type; `settings` checks and builds.

use std::path::PathBuf;

use serde::Deserialize;

use crate::imap::{Compression, Security};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub(super) source: SourceSection,
    pub(super) target: TargetSection,
    #[serde(default)]
    pub(super) limits: LimitsSection,
    #[serde(default)]
    pub(super) state: StateSection,
    #[serde(default)]
    pub(super) run: RunSection,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum SourceAuth {
    #[default]
    Password,
    Xoauth2,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum SourceKind {
    #[default]
    Imap,
    Mbox,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SourceSection {
    #[serde(default)]
    pub(super) kind: SourceKind,
    /// Required for kind = "imap".
    pub(super) host: Option<String>,
    /// Required for kind = "mbox".
    pub(super) path: Option<PathBuf>,
    pub(super) port: Option<u16>,
    #[serde(default = "default_security")]
    pub(super) security: Security,
    pub(super) ca_file: Option<PathBuf>,
    #[serde(default = "default_timeout")]
    pub(super) timeout_seconds: u64,
    #[serde(default)]
    pub(super) compress: Compression,
    #[serde(default)]
    pub(super) auth: SourceAuth,
    pub(super) token_command: Option<String>,
    pub(super) oauth_tenant_id: Option<String>,
    pub(super) oauth_client_id: Option<String>,
    pub(super) oauth_client_secret_env: Option<String>,
    pub(super) oauth_certificate_file: Option<PathBuf>,
    pub(super) oauth_private_key_file: Option<PathBuf>,
    #[serde(default = "default_oauth_authority")]
    pub(super) oauth_authority: String,
    pub(super) oauth_service_account_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) gmail_labels: crate::labels::LabelMode,
    #[serde(default)]
    pub(super) copy_junk: bool,
    #[serde(default)]
    pub(super) copy_trash: bool,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(super) enum TargetSection {
    Imap(ImapTargetSection),
    Maildir(MaildirTargetSection),
    Graph(crate::target::graph::config::GraphTargetSection),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ImapTargetSection {
    pub(super) host: String,
    pub(super) port: Option<u16>,
    #[serde(default = "default_security")]
    pub(super) security: Security,
    pub(super) ca_file: Option<PathBuf>,
    #[serde(default = "default_timeout")]
    pub(super) timeout_seconds: u64,
    #[serde(default)]
    pub(super) compress: Compression,
    pub(super) login: Option<String>,
    pub(super) password_env: Option<String>,
    #[serde(default)]
    pub(super) auth: SourceAuth,
    pub(super) token_command: Option<String>,
    pub(super) oauth_tenant_id: Option<String>,
    pub(super) oauth_client_id: Option<String>,
    pub(super) oauth_client_secret_env: Option<String>,
    pub(super) oauth_certificate_file: Option<PathBuf>,
    pub(super) oauth_private_key_file: Option<PathBuf>,
    #[serde(default = "default_oauth_authority")]
    pub(super) oauth_authority: String,
    pub(super) oauth_service_account_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MaildirTargetSection {
    pub(super) path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsSection {
    #[serde(default = "default_max_items")]
    pub(super) max_items: u64,
    #[serde(default = "default_max_message_bytes")]
    pub(super) max_message_bytes: u64,
    #[serde(default)]
    pub(super) exclude: Vec<String>,
    #[serde(default = "default_connections_per_source_host")]
    pub(super) max_connections_per_source_host: usize,
    #[serde(default = "default_max_connections_per_user")]
    pub(super) max_connections_per_user: usize,
    #[serde(default = "default_logins_per_second")]
    pub(super) logins_per_second: u32,
    #[serde(default)]
    pub(super) source_messages_per_second: u32,
    #[serde(default)]
    pub(super) source_bytes_per_second: u64,
    #[serde(default)]
    pub(super) target_messages_per_second: u32,
    #[serde(default)]
    pub(super) target_bytes_per_second: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_items: default_max_items(),
            max_message_bytes: default_max_message_bytes(),
            exclude: Vec::new(),
            max_connections_per_source_host: default_connections_per_source_host(),
            max_connections_per_user: default_max_connections_per_user(),
            logins_per_second: default_logins_per_second(),
            source_messages_per_second: 0,
            source_bytes_per_second: 0,
            target_messages_per_second: 0,
            target_bytes_per_second: 0,
        }
    }
}

pub(super) fn default_connections_per_source_host() -> usize {
    crate::pace::Caps::default().connections_per_source_host
}
pub(super) fn default_max_connections_per_user() -> usize {
    crate::pace::Caps::default().connections_per_user
}
pub(super) fn default_logins_per_second() -> u32 {
    crate::pace::Caps::default().logins_per_second
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StateSection {
    #[serde(default = "default_state_path")]
    pub(super) path: PathBuf,
}

impl Default for StateSection {
    fn default() -> Self {
        StateSection {
            path: default_state_path(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunSection {
    #[serde(default = "default_parallel_users")]
    pub(super) parallel_users: usize,
    #[serde(default = "default_connections_per_user")]
    pub(super) connections_per_user: usize,
    #[serde(default = "default_batch_messages")]
    pub(super) batch_messages: usize,
    #[serde(default = "default_batch_bytes")]
    pub(super) batch_bytes: u64,
    #[serde(default = "default_max_in_flight_bytes")]
    pub(super) max_in_flight_bytes: u64,
    #[serde(default = "default_max_attempts")]
    pub(super) max_attempts: u32,
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection {
            parallel_users: default_parallel_users(),
            connections_per_user: default_connections_per_user(),
            batch_messages: default_batch_messages(),
            batch_bytes: default_batch_bytes(),
            max_in_flight_bytes: default_max_in_flight_bytes(),
            max_attempts: default_max_attempts(),
        }
    }
}

pub(super) fn default_security() -> Security {
    Security::Tls
}
pub(super) fn default_timeout() -> u64 {
    60
}
pub(super) fn default_oauth_authority() -> String {
    crate::oauth::entra::ENTRA_AUTHORITY.into()
}
pub(super) fn default_max_items() -> u64 {
    500_000
}
pub(super) fn default_max_message_bytes() -> u64 {
    36_700_160
}
pub(super) fn default_state_path() -> PathBuf {
    PathBuf::from("cutover.db")
}
pub(super) fn default_parallel_users() -> usize {
    4
}
pub(super) fn default_connections_per_user() -> usize {
    4
}
pub(super) fn default_batch_messages() -> usize {
    100
}
pub(super) fn default_batch_bytes() -> u64 {
    8 * 1024 * 1024
}
pub(super) fn default_max_in_flight_bytes() -> u64 {
    96 * 1024 * 1024
}
pub(super) fn default_max_attempts() -> u32 {
    6
}
