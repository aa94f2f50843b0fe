//! The config file as TOML has it: one struct per section, every key with
//! its documented default, unknown keys refused by name. Nothing here is
//! checked beyond its type; `settings` checks and builds.

use std::path::PathBuf;

use serde::Deserialize;

use crate::imap::{Compression, Security};
use crate::oauth::config::OAuthKeys;
use crate::target::maildir::FolderNames;

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
    #[serde(default)]
    pub(super) contacts_calendars: ContactsCalendarsSection,
}

/// Where contacts and calendars come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum PimSourceKind {
    #[default]
    None,
    Dav,
    Files,
}

/// How the contacts-and-calendars source is logged in to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum PimAuth {
    /// HTTP Basic with the users file's UserName and Password.
    #[default]
    Password,
    /// OAuth bearer tokens (a Google service account, a token command).
    Oauth,
}

/// Where contacts and calendars go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum PimTargetKind {
    Graph,
    Dav,
}

/// `[contacts_calendars]`: optional; absent, nothing but mail is copied.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ContactsCalendarsSection {
    #[serde(default)]
    pub(super) source: PimSourceKind,
    pub(super) url: Option<String>,
    pub(super) path: Option<String>,
    #[serde(default)]
    pub(super) auth: PimAuth,
    pub(super) token_command: Option<String>,
    pub(super) oauth_service_account_file: Option<PathBuf>,
    pub(super) oauth_scope: Option<String>,
    pub(super) target: Option<PimTargetKind>,
    pub(super) target_url: Option<String>,
    #[serde(default = "default_timeout")]
    pub(super) timeout_seconds: u64,
}

impl Default for ContactsCalendarsSection {
    fn default() -> Self {
        ContactsCalendarsSection {
            source: PimSourceKind::None,
            url: None,
            path: None,
            auth: PimAuth::Password,
            token_command: None,
            oauth_service_account_file: None,
            oauth_scope: None,
            target: None,
            target_url: None,
            timeout_seconds: default_timeout(),
        }
    }
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

/// Declares a section that connects to an IMAP server (`[source]` and an
/// IMAP `[target]`) with the connection and OAuth keys both share, between
/// the section's own keys. serde's `flatten` would drop
/// `deny_unknown_fields`, so the shared keys are written into each struct
/// instead; the field order is the order an unknown-key message lists.
/// Each section also gets `oauth_keys`, its OAuth keys for
/// [`crate::oauth::config::token_settings`], and `endpoint_keys`, its
/// connection keys for `settings::endpoint`.
macro_rules! imap_section {
    (
        $(#[$attr:meta])*
        struct $name:ident {
            { $($head:tt)* }
            connection;
            { $($middle:tt)* }
            oauth;
            { $($tail:tt)* }
        }
    ) => {
        $(#[$attr])*
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct $name {
            $($head)*
            pub(super) port: Option<u16>,
            #[serde(default = "default_security")]
            pub(super) security: Security,
            pub(super) ca_file: Option<PathBuf>,
            #[serde(default = "default_timeout")]
            pub(super) timeout_seconds: u64,
            #[serde(default)]
            pub(super) compress: Compression,
            $($middle)*
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
            $($tail)*
        }

        impl $name {
            /// The OAuth keys, named by `section` in their messages.
            pub(super) fn oauth_keys<'a>(&'a self, section: &'a str) -> OAuthKeys<'a> {
                OAuthKeys {
                    section,
                    xoauth2: self.auth == SourceAuth::Xoauth2,
                    token_command: &self.token_command,
                    tenant_id: &self.oauth_tenant_id,
                    client_id: &self.oauth_client_id,
                    client_secret_env: &self.oauth_client_secret_env,
                    certificate_file: &self.oauth_certificate_file,
                    private_key_file: &self.oauth_private_key_file,
                    authority: &self.oauth_authority,
                    service_account_file: &self.oauth_service_account_file,
                }
            }

            /// The connection keys, as written (`ca_file` not yet resolved).
            pub(super) fn endpoint_keys(&self) -> EndpointKeys {
                EndpointKeys {
                    port: self.port,
                    security: self.security,
                    ca_file: self.ca_file.clone(),
                    timeout_seconds: self.timeout_seconds,
                    compress: self.compress,
                }
            }
        }
    };
}

/// The connection keys of an IMAP section, apart from its host.
pub(super) struct EndpointKeys {
    pub(super) port: Option<u16>,
    pub(super) security: Security,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) timeout_seconds: u64,
    pub(super) compress: Compression,
}

imap_section! {
    struct SourceSection {
        {
            #[serde(default)]
            pub(super) kind: SourceKind,
            /// Required for kind = "imap".
            pub(super) host: Option<String>,
            /// Required for kind = "mbox".
            pub(super) path: Option<PathBuf>,
        }
        connection;
        {}
        oauth;
        {
            #[serde(default)]
            pub(super) gmail_labels: crate::labels::LabelMode,
            #[serde(default)]
            pub(super) copy_junk: bool,
            #[serde(default)]
            pub(super) copy_trash: bool,
            #[serde(default)]
            pub(super) shared_folders: bool,
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(super) enum TargetSection {
    Imap(ImapTargetSection),
    Maildir(MaildirTargetSection),
    Graph(crate::target::graph::config::GraphTargetSection),
}

imap_section! {
    struct ImapTargetSection {
        {
            pub(super) host: String,
        }
        connection;
        {
            pub(super) login: Option<String>,
            pub(super) password_env: Option<String>,
        }
        oauth;
        {}
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MaildirTargetSection {
    pub(super) path: PathBuf,
    #[serde(default, deserialize_with = "folder_names")]
    pub(super) folder_names: FolderNames,
}

/// `[target] folder_names`, read by hand: inside the `kind`-tagged
/// `[target]` serde's own message names neither the key nor its line.
fn folder_names<'de, D: serde::Deserializer<'de>>(d: D) -> Result<FolderNames, D::Error> {
    const VALUES: &str = "\"utf7\" (the default) or \"utf8\"";
    struct Names;
    impl serde::de::Visitor<'_> for Names {
        type Value = FolderNames;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "[target] folder_names = {VALUES}")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FolderNames, E> {
            FolderNames::ALL
                .into_iter()
                .find(|n| n.as_str() == v)
                .ok_or_else(|| E::custom(format!("[target] folder_names = {v:?} is unknown: use {VALUES}")))
        }
    }
    d.deserialize_str(Names)
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
    #[serde(default)]
    pub(super) mirror_deletions: bool,
    #[serde(default = "default_max_delete_percent")]
    pub(super) max_delete_percent: u32,
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
            mirror_deletions: false,
            max_delete_percent: default_max_delete_percent(),
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
pub(super) fn default_max_delete_percent() -> u32 {
    10
}
