//! Reads `cutover.toml` into validated, built values. Every key has a
//! default documented in `config.example.toml`; an unknown key is an error
//! that names it, so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::imap::{Endpoint, Security, is_loopback_host};
use crate::oauth::config::token_settings;
use crate::secret::Secret;

mod file;
use file::*;

/// Largest message size an admin may allow (Exchange Online's ceiling).
pub const MAX_MESSAGE_BYTES_CEILING: u64 = 150 * 1024 * 1024;

#[derive(Debug)]
pub struct Settings {
    pub source: SourceSettings,
    /// How a label-based source (Gmail, or any server with an All Mail
    /// folder) is copied: `[source] gmail_labels`, `copy_junk`, `copy_trash`.
    pub labels: crate::labels::Rules,
    pub target: TargetSettings,
    pub limits: Limits,
    pub state_path: PathBuf,
    pub run: RunSettings,
    /// The shard this run is (`--shard K/N`, from the command line, never
    /// the config file); `None` for a run over the whole users file.
    pub shard: Option<crate::shard::Shard>,
    /// `[contacts_calendars]`: `None` when contacts and calendars are not
    /// copied (the default).
    pub pim: Option<PimSettings>,
}

/// Where each user's contacts and calendars are read and written.
#[derive(Clone, Debug)]
pub struct PimSettings {
    pub source: PimSourceSettings,
    /// `auth = "oauth"`: where the DAV source's bearer tokens come from;
    /// `None`: the users file's password.
    pub tokens: Option<crate::oauth::TokenSettings>,
    pub target: PimTargetSettings,
    /// The deadline of one DAV request.
    pub timeout: Duration,
}

/// Where contacts and calendars are read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PimSourceSettings {
    /// The CalDAV/CardDAV server base each user's collections are
    /// discovered from (checked: https, or http to loopback).
    Dav { url: String },
    /// Each user's `.ics`/`.vcf` files: a path template with `{email}`
    /// (relative paths resolved against the config file), a folder such
    /// as a Google Takeout export or one file.
    Files { path: PathBuf },
}

/// Where contacts and calendars go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PimTargetSettings {
    /// Into the Exchange mailbox, through the `[target]` Graph settings.
    Graph,
    /// Into another CalDAV/CardDAV server at this base URL.
    Dav { url: String },
}

/// Where mail is read from.
#[derive(Debug, Clone)]
pub enum SourceSettings {
    Imap {
        endpoint: Endpoint,
        /// `[source] auth = "xoauth2"`: where the OAuth tokens come from;
        /// `None` logs in with the users file's passwords.
        tokens: Option<crate::oauth::TokenSettings>,
        /// `[source] shared_folders`: also copy the folders of other users'
        /// and shared namespaces the login sees.
        shared_folders: bool,
    },
    /// `[source] kind = "mbox"`: each user's Google Takeout export, a path
    /// with `{email}` (relative paths resolved against the config file).
    Mbox { path: PathBuf },
}

impl SourceSettings {
    /// The IMAP server, for an IMAP source.
    pub fn endpoint(&self) -> Option<&Endpoint> {
        match self {
            SourceSettings::Imap { endpoint, .. } => Some(endpoint),
            SourceSettings::Mbox { .. } => None,
        }
    }

    /// Where the IMAP source's OAuth tokens come from, if it uses them.
    pub fn tokens(&self) -> Option<&crate::oauth::TokenSettings> {
        match self {
            SourceSettings::Imap { tokens, .. } => tokens.as_ref(),
            SourceSettings::Mbox { .. } => None,
        }
    }

    /// The Takeout path template, for an mbox source.
    pub fn mbox_path(&self) -> Option<&Path> {
        match self {
            SourceSettings::Mbox { path } => Some(path),
            SourceSettings::Imap { .. } => None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum TargetSettings {
    Imap {
        endpoint: Endpoint,
        /// Login template such as `{email}*admin`; `None` means the users
        /// file's TargetUserName/TargetPassword columns.
        login: Option<String>,
        password: Option<Secret>,
        /// `auth = "xoauth2"`: where the tokens come from.
        tokens: Option<crate::oauth::TokenSettings>,
    },
    Maildir {
        path: PathBuf,
        /// `folder_names`: how folder directories spell non-ASCII names.
        folder_names: MaildirFolderNames,
    },
    /// Exchange Online through Microsoft Graph.
    Graph(GraphSettings),
}

/// The Graph target's options are its own; these names stay for callers
/// that reach them through the settings.
pub use crate::target::graph::config::{GraphCredential, GraphSettings, GraphWriteMode};
/// The Maildir target's `folder_names`, by the name callers of the
/// settings know it.
pub use crate::target::maildir::FolderNames as MaildirFolderNames;

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_items: u64,
    pub max_message_bytes: u64,
    pub exclude: Vec<String>,
    /// Connection caps, login rate and read/write rates for `pace`.
    pub pace: crate::pace::Caps,
}

#[derive(Debug, Clone)]
pub struct RunSettings {
    pub parallel_users: usize,
    pub connections_per_user: usize,
    pub batch_messages: usize,
    pub batch_bytes: u64,
    pub max_in_flight_bytes: u64,
    pub max_attempts: u32,
    /// Delete from the target the copies of messages deleted on the source
    /// (`--mirror-deletions` sets it for one run).
    pub mirror_deletions: bool,
    /// Refuse, per mailbox and run, to delete more than this share of its
    /// copies (`--force-deletions` lifts it for one run).
    pub max_delete_percent: u32,
}

/// Why a config was refused; always names the file and what to change.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    parse(&read(path)?, path, &|name| std::env::var(name).ok())
}

/// The state DB's path alone, for the commands that only read the state DB
/// (`status`, `report`): the file is checked as [`load`] checks its syntax
/// and keys, but no secret is looked up or read, so these commands run
/// without the migration's credentials.
pub fn load_state_path(path: &Path) -> Result<PathBuf, ConfigError> {
    let file = file_of(&read(path)?, path)?;
    Ok(relative_to(path, &file.state.path))
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError(format!("cannot read config {}: {e}", path.display())))
}

fn file_of(text: &str, path: &Path) -> Result<File, ConfigError> {
    toml::from_str(text).map_err(|e| {
        ConfigError(format!(
            "config {} is invalid: {}",
            path.display(),
            e.to_string().trim_end()
        ))
    })
}

/// Relative paths in the config are relative to the config file, so a run
/// behaves the same from any working directory.
fn relative_to(config: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        config.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// Parses config text; `env` looks up environment variables (injected so
/// tests need not touch the process environment).
pub fn parse(text: &str, path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
    let file = file_of(text, path)?;
    let bad = |msg: String| ConfigError(format!("config {}: {msg}", path.display()));
    let resolve = |p: &Path| relative_to(path, p);

    let labels = crate::labels::Rules {
        mode: file.source.gmail_labels,
        keep_junk: file.source.copy_junk,
        keep_trash: file.source.copy_trash,
    };
    if file.source.auth == SourceAuth::Xoauth2 && file.source.kind == SourceKind::Mbox {
        return Err(bad(
            "[source] auth = \"xoauth2\" is for an IMAP source, not kind = \"mbox\"".into(),
        ));
    }
    let source_tokens = token_settings(file.source.oauth_keys("source"), &resolve, env).map_err(bad)?;
    let source = match file.source.kind {
        SourceKind::Imap => {
            if file.source.path.is_some() {
                return Err(bad(
                    "[source] path is for kind = \"mbox\" (a Google Takeout export); an IMAP source needs host".into(),
                ));
            }
            let host = file.source.host.clone().ok_or_else(|| {
                bad("[source] host is missing: the IMAP server to copy from (or kind = \"mbox\" with path for a Google Takeout export)".into())
            })?;
            let endpoint = endpoint("source", host, file.source.endpoint_keys(), &resolve).map_err(bad)?;
            SourceSettings::Imap {
                endpoint,
                tokens: source_tokens,
                shared_folders: file.source.shared_folders,
            }
        }
        SourceKind::Mbox => {
            if file.source.host.is_some() {
                return Err(bad(
                    "[source] host is for an IMAP source; kind = \"mbox\" reads path".into()
                ));
            }
            let path = file.source.path.ok_or_else(|| {
                bad("[source] kind = \"mbox\" needs path, the Takeout .mbox of each user with {email}, e.g. \"takeout/{email}.mbox\"".into())
            })?;
            SourceSettings::Mbox { path: resolve(&path) }
        }
    };

    let target = match file.target {
        TargetSection::Imap(t) => {
            let endpoint = endpoint("target", t.host.clone(), t.endpoint_keys(), &resolve).map_err(bad)?;
            let tokens = token_settings(t.oauth_keys("target"), &resolve, env).map_err(bad)?;
            if tokens.is_some() && t.password_env.is_some() {
                return Err(bad(
                    "[target] auth = \"xoauth2\" logs in with tokens: remove password_env (login, default \"{email}\", names the mailbox)".into(),
                ));
            }
            let password = match &t.password_env {
                Some(var) => Some(Secret::new(env(var).ok_or_else(|| {
                    bad(format!(
                        "[target] password_env names {var}, which is not set in the environment"
                    ))
                })?)),
                None => None,
            };
            if let Some(login) = &t.login
                && password.is_none()
                && tokens.is_none()
            {
                return Err(bad(format!(
                    "[target] login = {login:?} needs password_env (the variable holding that login's password)"
                )));
            }
            if t.login.is_none() && password.is_some() {
                return Err(bad("[target] password_env is set but login is not; set login (e.g. \"{email}*admin\") or remove password_env to use the users file's TargetUserName/TargetPassword".into()));
            }
            TargetSettings::Imap {
                endpoint,
                login: t.login,
                password,
                tokens,
            }
        }
        TargetSection::Maildir(m) => TargetSettings::Maildir {
            path: resolve(&m.path),
            folder_names: m.folder_names,
        },
        TargetSection::Graph(g) => {
            TargetSettings::Graph(crate::target::graph::config::graph_settings(g, &resolve, env).map_err(bad)?)
        }
    };

    let limits = file.limits;
    if limits.max_message_bytes == 0 || limits.max_message_bytes > MAX_MESSAGE_BYTES_CEILING {
        return Err(bad(format!(
            "[limits] max_message_bytes = {} is out of range (1 to {MAX_MESSAGE_BYTES_CEILING}, 150 MiB)",
            limits.max_message_bytes
        )));
    }
    if limits.max_items == 0 {
        return Err(bad("[limits] max_items must be at least 1".into()));
    }
    for glob in &limits.exclude {
        globset::Glob::new(glob).map_err(|e| bad(format!("[limits] exclude pattern {glob:?} is invalid: {e}")))?;
    }

    let r = file.run;
    for (name, v) in [
        ("parallel_users", r.parallel_users),
        ("connections_per_user", r.connections_per_user),
        ("batch_messages", r.batch_messages),
    ] {
        if v == 0 {
            return Err(bad(format!("[run] {name} must be at least 1")));
        }
    }
    if r.connections_per_user > 64 {
        return Err(bad(
            "[run] connections_per_user above 64 would trip every server's limits".into(),
        ));
    }
    for (name, v) in [
        (
            "max_connections_per_source_host",
            limits.max_connections_per_source_host,
        ),
        ("max_connections_per_user", limits.max_connections_per_user),
        ("logins_per_second", limits.logins_per_second as usize),
    ] {
        if v == 0 {
            return Err(bad(format!("[limits] {name} must be at least 1")));
        }
    }
    if r.connections_per_user > limits.max_connections_per_user {
        return Err(bad(format!(
            "[run] connections_per_user = {} is above [limits] max_connections_per_user = {}; lower the first or raise the cap (Gmail allows about 15 per account, Dovecot 10 per user and IP by default)",
            r.connections_per_user, limits.max_connections_per_user
        )));
    }
    if r.max_in_flight_bytes < 1024 * 1024 {
        return Err(bad("[run] max_in_flight_bytes must be at least 1048576 (1 MiB)".into()));
    }

    let pim = pim_settings(
        file.contacts_calendars,
        matches!(target, TargetSettings::Graph(_)),
        source.mbox_path(),
        &resolve,
    )
    .map_err(bad)?;
    Ok(Settings {
        source,
        labels,
        target,
        limits: Limits {
            max_items: limits.max_items,
            max_message_bytes: limits.max_message_bytes,
            exclude: limits.exclude,
            pace: crate::pace::Caps {
                connections_per_source_host: limits.max_connections_per_source_host,
                connections_per_user: limits.max_connections_per_user,
                logins_per_second: limits.logins_per_second,
                source_messages_per_second: limits.source_messages_per_second,
                source_bytes_per_second: limits.source_bytes_per_second,
                target_messages_per_second: limits.target_messages_per_second,
                target_bytes_per_second: limits.target_bytes_per_second,
            },
        },
        state_path: resolve(&file.state.path),
        run: RunSettings {
            parallel_users: r.parallel_users,
            connections_per_user: r.connections_per_user,
            batch_messages: r.batch_messages,
            batch_bytes: r.batch_bytes.max(1),
            max_in_flight_bytes: r.max_in_flight_bytes,
            max_attempts: r.max_attempts.max(1),
            mirror_deletions: r.mirror_deletions,
            max_delete_percent: r.max_delete_percent.min(100),
        },
        shard: None,
        pim,
    })
}

/// Checks `[contacts_calendars]`. Absent or `source = "none"`, nothing
/// but mail is copied, whatever the other keys say.
fn pim_settings(
    section: ContactsCalendarsSection,
    graph_target: bool,
    mbox: Option<&Path>,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<Option<PimSettings>, String> {
    const S: &str = "contacts_calendars";
    if section.source == PimSourceKind::None {
        if section.url.is_some() || section.path.is_some() || section.target.is_some() || section.target_url.is_some() {
            return Err(format!(
                "[{S}] url, path, target or target_url is set but source is \"none\" (the default); set source = \"dav\" (with url) or source = \"files\" (with path) to copy contacts and calendars, or remove them"
            ));
        }
        return Ok(None);
    }
    let tokens = pim_tokens(&section, resolve)?;
    let source = match section.source {
        PimSourceKind::Files => {
            if section.url.is_some() {
                return Err(format!(
                    "[{S}] url is for source = \"dav\"; source = \"files\" reads path"
                ));
            }
            let path = match (section.path.filter(|p| !p.trim().is_empty()), mbox) {
                (Some(path), _) => resolve(Path::new(&path)),
                (None, Some(export)) if takeout_of(export).is_some() => takeout_of(export).unwrap_or_default(),
                (None, _) => {
                    return Err(format!(
                        "[{S}] source = \"files\" needs path, each user's .ics/.vcf files with {{email}}, e.g. \"takeout/{{email}}\" (a Takeout export folder) or \"contacts/{{email}}.vcf\"; beside a Takeout mbox whose folder names the user it defaults to that export"
                    ));
                }
            };
            PimSourceSettings::Files { path }
        }
        _ => {
            if section.path.is_some() {
                return Err(format!(
                    "[{S}] path is for source = \"files\"; source = \"dav\" reads url"
                ));
            }
            let url = section.url.ok_or_else(|| {
                format!("[{S}] source = \"dav\" needs url, the CalDAV/CardDAV server each user's calendars and address books are found from")
            })?;
            PimSourceSettings::Dav {
                url: crate::http::base_url(S, "url", &url)?,
            }
        }
    };
    if section.timeout_seconds == 0 {
        return Err(format!("[{S}] timeout_seconds must be at least 1"));
    }
    let target = match section.target {
        Some(PimTargetKind::Graph) if !graph_target => {
            return Err(format!(
                "[{S}] target = \"graph\" needs [target] kind = \"graph\"; with another mail target use target = \"dav\" and target_url"
            ));
        }
        Some(PimTargetKind::Graph) => PimTargetSettings::Graph,
        None if graph_target => PimTargetSettings::Graph,
        None => {
            return Err(format!(
                "[{S}] target is missing: the mail target is not Graph, so set target = \"dav\" and target_url (the CalDAV/CardDAV server to write to)"
            ));
        }
        Some(PimTargetKind::Dav) => {
            let url = section.target_url.as_deref().ok_or_else(|| {
                format!("[{S}] target = \"dav\" needs target_url, the CalDAV/CardDAV server to write to")
            })?;
            PimTargetSettings::Dav {
                url: crate::http::base_url(S, "target_url", url)?,
            }
        }
    };
    if section.target_url.is_some() && target == PimTargetSettings::Graph {
        return Err(format!(
            "[{S}] target_url is for target = \"dav\"; remove it to write into the Exchange mailbox"
        ));
    }
    Ok(Some(PimSettings {
        source,
        tokens,
        target,
        timeout: Duration::from_secs(section.timeout_seconds),
    }))
}

/// The export a Takeout mbox (path template) belongs to: the folder
/// holding its `Mail` folder (`Takeout/Mail/All mail....mbox` gives
/// `Takeout`), else the mbox's own folder; `None` when that folder is not
/// the user's own (no `{email}` in it), since every user would then read
/// the same files.
fn takeout_of(mbox: &Path) -> Option<PathBuf> {
    let folder = mbox.parent().unwrap_or(Path::new("."));
    let export = match (folder.file_name(), folder.parent()) {
        (Some(name), Some(export)) if name.eq_ignore_ascii_case("Mail") => export.to_path_buf(),
        _ => folder.to_path_buf(),
    };
    export.to_string_lossy().contains("{email}").then_some(export)
}

/// `[contacts_calendars] auth`: the users file's password, or OAuth tokens
/// from a token command or a Google service account (Google serves
/// CalDAV and CardDAV with OAuth only).
fn pim_tokens(
    section: &ContactsCalendarsSection,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<Option<crate::oauth::TokenSettings>, String> {
    const S: &str = "contacts_calendars";
    let oauth_keys = section.token_command.is_some()
        || section.oauth_service_account_file.is_some()
        || section.oauth_scope.is_some();
    if section.auth == PimAuth::Password {
        if oauth_keys {
            return Err(format!("[{S}] token_command and oauth_* keys need auth = \"oauth\""));
        }
        return Ok(None);
    }
    if section.source != PimSourceKind::Dav {
        return Err(format!(
            "[{S}] auth = \"oauth\" is for source = \"dav\"; files need no login"
        ));
    }
    match (&section.token_command, &section.oauth_service_account_file) {
        (Some(_), Some(_)) => Err(format!(
            "[{S}] set token_command or oauth_service_account_file, not both"
        )),
        (Some(command), None) => {
            if command.trim().is_empty() {
                return Err(format!("[{S}] token_command is empty"));
            }
            if section.oauth_scope.is_some() {
                return Err(format!(
                    "[{S}] oauth_scope is for oauth_service_account_file; a token_command asks for its own scopes"
                ));
            }
            Ok(Some(crate::oauth::TokenSettings::Command(command.clone())))
        }
        (None, Some(file)) => {
            let path = resolve(file);
            let json = std::fs::read_to_string(&path)
                .map_err(|e| format!("[{S}] oauth_service_account_file {}: {e}", path.display()))?;
            let scope = section.oauth_scope.as_deref().unwrap_or(crate::oauth::GOOGLE_DAV_SCOPE);
            if scope.trim().is_empty() {
                return Err(format!("[{S}] oauth_scope is empty"));
            }
            let account = crate::oauth::GoogleServiceAccount::from_json(&json, &path)
                .map_err(|e| format!("[{S}] oauth_service_account_file: {e}"))?
                .with_scope(scope);
            Ok(Some(crate::oauth::TokenSettings::Google(std::sync::Arc::new(account))))
        }
        (None, None) => Err(format!(
            "[{S}] auth = \"oauth\" needs token_command (a program printing a token for $CUTOVER_LOGIN) or oauth_service_account_file (a Google service account with domain-wide delegation)"
        )),
    }
}

/// Checks an IMAP section's host and connection keys and builds its
/// endpoint; a relative `ca_file` is resolved against the config file.
fn endpoint(
    section: &str,
    host: String,
    keys: EndpointKeys,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<Endpoint, String> {
    let EndpointKeys {
        port,
        security,
        ca_file,
        timeout_seconds,
        compress,
    } = keys;
    let ca_file = ca_file.map(|p| resolve(&p));
    if host.trim().is_empty() {
        return Err(format!("[{section}] host is empty"));
    }
    if security == Security::Plain && !is_loopback_host(&host) {
        return Err(format!(
            "[{section}] security = \"plain\" is only allowed to loopback addresses (host is {host}); use \"tls\" or \"starttls\""
        ));
    }
    if let Some(ca) = &ca_file
        && !ca.is_file()
    {
        return Err(format!("[{section}] ca_file {} does not exist", ca.display()));
    }
    if timeout_seconds == 0 {
        return Err(format!("[{section}] timeout_seconds must be at least 1"));
    }
    let port = port.unwrap_or(match security {
        Security::Tls => 993,
        _ => 143,
    });
    Ok(Endpoint {
        host,
        port,
        security,
        ca_file,
        timeout: Duration::from_secs(timeout_seconds),
        compress,
    })
}

#[cfg(test)]
mod tests;
