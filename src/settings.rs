//! Reads `cutover.toml` into validated, built values. Every key has a
//! default documented in `config.example.toml`; an unknown key is an error
//! that names it, so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::imap::{Compression, Endpoint, Security, is_loopback_host};
use crate::oauth::config::{OAuthKeys, token_settings};
use crate::secret::Secret;

/// Largest message size an admin may allow (Exchange Online's ceiling).
pub const MAX_MESSAGE_BYTES_CEILING: u64 = 150 * 1024 * 1024;

#[derive(Debug)]
pub struct Settings {
    /// The IMAP source (unused when `mbox` is set).
    pub source: Endpoint,
    /// `[source] auth = "xoauth2"`: where the IMAP source's OAuth tokens
    /// come from; `None` logs in with the users file's passwords.
    pub source_tokens: Option<crate::oauth::TokenSettings>,
    /// `[source] kind = "mbox"`: each user's Google Takeout export, a path
    /// with `{email}` (relative paths resolved against the config file).
    pub mbox: Option<PathBuf>,
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
    },
    /// Exchange Online through Microsoft Graph.
    Graph(GraphSettings),
}

/// The Graph target's options are its own; these names stay for callers
/// that reach them through the settings.
pub use crate::target::graph::config::{GraphCredential, GraphSettings, GraphWriteMode};

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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    source: SourceSection,
    target: TargetSection,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    state: StateSection,
    #[serde(default)]
    run: RunSection,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SourceAuth {
    #[default]
    Password,
    Xoauth2,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SourceKind {
    #[default]
    Imap,
    Mbox,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceSection {
    #[serde(default)]
    kind: SourceKind,
    /// Required for kind = "imap".
    host: Option<String>,
    /// Required for kind = "mbox".
    path: Option<PathBuf>,
    port: Option<u16>,
    #[serde(default = "default_security")]
    security: Security,
    ca_file: Option<PathBuf>,
    #[serde(default = "default_timeout")]
    timeout_seconds: u64,
    #[serde(default)]
    compress: Compression,
    #[serde(default)]
    auth: SourceAuth,
    token_command: Option<String>,
    oauth_tenant_id: Option<String>,
    oauth_client_id: Option<String>,
    oauth_client_secret_env: Option<String>,
    oauth_certificate_file: Option<PathBuf>,
    oauth_private_key_file: Option<PathBuf>,
    #[serde(default = "default_oauth_authority")]
    oauth_authority: String,
    oauth_service_account_file: Option<PathBuf>,
    #[serde(default)]
    gmail_labels: crate::labels::LabelMode,
    #[serde(default)]
    copy_junk: bool,
    #[serde(default)]
    copy_trash: bool,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum TargetSection {
    Imap(ImapTargetSection),
    Maildir(MaildirTargetSection),
    Graph(crate::target::graph::config::GraphTargetSection),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImapTargetSection {
    host: String,
    port: Option<u16>,
    #[serde(default = "default_security")]
    security: Security,
    ca_file: Option<PathBuf>,
    #[serde(default = "default_timeout")]
    timeout_seconds: u64,
    #[serde(default)]
    compress: Compression,
    login: Option<String>,
    password_env: Option<String>,
    #[serde(default)]
    auth: SourceAuth,
    token_command: Option<String>,
    oauth_tenant_id: Option<String>,
    oauth_client_id: Option<String>,
    oauth_client_secret_env: Option<String>,
    oauth_certificate_file: Option<PathBuf>,
    oauth_private_key_file: Option<PathBuf>,
    #[serde(default = "default_oauth_authority")]
    oauth_authority: String,
    oauth_service_account_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaildirTargetSection {
    path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    #[serde(default = "default_max_items")]
    max_items: u64,
    #[serde(default = "default_max_message_bytes")]
    max_message_bytes: u64,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default = "default_connections_per_source_host")]
    max_connections_per_source_host: usize,
    #[serde(default = "default_max_connections_per_user")]
    max_connections_per_user: usize,
    #[serde(default = "default_logins_per_second")]
    logins_per_second: u32,
    #[serde(default)]
    source_messages_per_second: u32,
    #[serde(default)]
    source_bytes_per_second: u64,
    #[serde(default)]
    target_messages_per_second: u32,
    #[serde(default)]
    target_bytes_per_second: u64,
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

fn default_connections_per_source_host() -> usize {
    crate::pace::Caps::default().connections_per_source_host
}
fn default_max_connections_per_user() -> usize {
    crate::pace::Caps::default().connections_per_user
}
fn default_logins_per_second() -> u32 {
    crate::pace::Caps::default().logins_per_second
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateSection {
    #[serde(default = "default_state_path")]
    path: PathBuf,
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
struct RunSection {
    #[serde(default = "default_parallel_users")]
    parallel_users: usize,
    #[serde(default = "default_connections_per_user")]
    connections_per_user: usize,
    #[serde(default = "default_batch_messages")]
    batch_messages: usize,
    #[serde(default = "default_batch_bytes")]
    batch_bytes: u64,
    #[serde(default = "default_max_in_flight_bytes")]
    max_in_flight_bytes: u64,
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
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

fn default_security() -> Security {
    Security::Tls
}
fn default_timeout() -> u64 {
    60
}
fn default_oauth_authority() -> String {
    crate::oauth::entra::ENTRA_AUTHORITY.into()
}
fn default_max_items() -> u64 {
    500_000
}
fn default_max_message_bytes() -> u64 {
    36_700_160
}
fn default_state_path() -> PathBuf {
    PathBuf::from("cutover.db")
}
fn default_parallel_users() -> usize {
    4
}
fn default_connections_per_user() -> usize {
    4
}
fn default_batch_messages() -> usize {
    100
}
fn default_batch_bytes() -> u64 {
    8 * 1024 * 1024
}
fn default_max_in_flight_bytes() -> u64 {
    96 * 1024 * 1024
}
fn default_max_attempts() -> u32 {
    6
}

/// Why a config was refused; always names the file and what to change.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read config {}: {e}", path.display())))?;
    parse(&text, path, &|name| std::env::var(name).ok())
}

/// Parses config text; `env` looks up environment variables (injected so
/// tests need not touch the process environment).
pub fn parse(text: &str, path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
    let file: File = toml::from_str(text).map_err(|e| {
        ConfigError(format!(
            "config {} is invalid: {}",
            path.display(),
            e.to_string().trim_end()
        ))
    })?;
    let bad = |msg: String| ConfigError(format!("config {}: {msg}", path.display()));
    // Relative paths in the config are relative to the config file, so a
    // run behaves the same from any working directory.
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };

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
    let src = &file.source;
    let source_tokens = token_settings(
        OAuthKeys {
            section: "source",
            xoauth2: src.auth == SourceAuth::Xoauth2,
            token_command: &src.token_command,
            tenant_id: &src.oauth_tenant_id,
            client_id: &src.oauth_client_id,
            client_secret_env: &src.oauth_client_secret_env,
            certificate_file: &src.oauth_certificate_file,
            private_key_file: &src.oauth_private_key_file,
            authority: &src.oauth_authority,
            service_account_file: &src.oauth_service_account_file,
        },
        &resolve,
        env,
    )
    .map_err(bad)?;
    let (source, mbox) = match file.source.kind {
        SourceKind::Imap => {
            if file.source.path.is_some() {
                return Err(bad(
                    "[source] path is for kind = \"mbox\" (a Google Takeout export); an IMAP source needs host".into(),
                ));
            }
            let host = file.source.host.ok_or_else(|| {
                bad("[source] host is missing: the IMAP server to copy from (or kind = \"mbox\" with path for a Google Takeout export)".into())
            })?;
            let source = endpoint(
                "source",
                host,
                file.source.port,
                file.source.security,
                file.source.ca_file.map(|p| resolve(&p)),
                file.source.timeout_seconds,
                file.source.compress,
            )
            .map_err(bad)?;
            (source, None)
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
            // Never contacted: the IMAP endpoint stays a placeholder.
            let placeholder = Endpoint {
                host: String::new(),
                port: 0,
                security: Security::Plain,
                ca_file: None,
                timeout: Duration::from_secs(file.source.timeout_seconds.max(1)),
                compress: Compression::Never,
            };
            (placeholder, Some(resolve(&path)))
        }
    };

    let target = match file.target {
        TargetSection::Imap(t) => {
            let endpoint = endpoint(
                "target",
                t.host,
                t.port,
                t.security,
                t.ca_file.map(|p| resolve(&p)),
                t.timeout_seconds,
                t.compress,
            )
            .map_err(bad)?;
            let tokens = token_settings(
                OAuthKeys {
                    section: "target",
                    xoauth2: t.auth == SourceAuth::Xoauth2,
                    token_command: &t.token_command,
                    tenant_id: &t.oauth_tenant_id,
                    client_id: &t.oauth_client_id,
                    client_secret_env: &t.oauth_client_secret_env,
                    certificate_file: &t.oauth_certificate_file,
                    private_key_file: &t.oauth_private_key_file,
                    authority: &t.oauth_authority,
                    service_account_file: &t.oauth_service_account_file,
                },
                &resolve,
                env,
            )
            .map_err(bad)?;
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
        TargetSection::Maildir(m) => TargetSettings::Maildir { path: resolve(&m.path) },
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

    Ok(Settings {
        source,
        source_tokens,
        mbox,
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
        },
        shard: None,
    })
}

fn endpoint(
    section: &str,
    host: String,
    port: Option<u16>,
    security: Security,
    ca_file: Option<PathBuf>,
    timeout_seconds: u64,
    compress: Compression,
) -> Result<Endpoint, String> {
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
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Settings, ConfigError> {
        parse(text, Path::new("/etc/cutover/cutover.toml"), &|v| {
            (v == "PW").then(|| "s3cret".to_owned())
        })
    }

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let s =
            parse_str("[source]\nhost = \"imap.example.com\"\n[target]\nkind = \"maildir\"\npath = \"out\"\n").unwrap();
        assert_eq!(s.source.port, 993);
        assert_eq!(s.source.security, Security::Tls);
        assert_eq!(s.limits.max_items, 500_000);
        assert_eq!(s.limits.max_message_bytes, 36_700_160);
        assert_eq!(s.state_path, PathBuf::from("/etc/cutover/cutover.db"));
        assert!(matches!(&s.target, TargetSettings::Maildir { path } if path == Path::new("/etc/cutover/out")));
        assert_eq!(
            s.source.compress,
            Compression::Auto,
            "COMPRESS=DEFLATE is asked for beyond the local networks by default"
        );
    }

    #[test]
    fn compression_can_be_set_on_either_side() {
        let s = parse_str(
            "[source]\nhost = \"imap.example.com\"\ncompress = false\n[target]\nkind = \"imap\"\nhost = \"t.example.com\"\n",
        )
        .unwrap();
        assert_eq!(s.source.compress, Compression::Never);
        assert!(matches!(&s.target, TargetSettings::Imap { endpoint, .. } if endpoint.compress == Compression::Auto));
        let s = parse_str(
            "[source]\nhost = \"imap.example.com\"\ncompress = \"auto\"\n[target]\nkind = \"imap\"\nhost = \"t.example.com\"\ncompress = true\n",
        )
        .unwrap();
        assert_eq!(s.source.compress, Compression::Auto);
        assert!(matches!(&s.target, TargetSettings::Imap { endpoint, .. } if endpoint.compress == Compression::Always));
        let err = parse_str("[source]\nhost = \"h\"\ncompress = \"yes\"\n[target]\nkind = \"maildir\"\npath = \"x\"\n")
            .unwrap_err();
        assert!(err.0.contains("compress") && err.0.contains("auto"), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err =
            parse_str("[source]\nhost = \"h\"\nprot = 1\n[target]\nkind = \"maildir\"\npath = \"x\"\n").unwrap_err();
        assert!(err.0.contains("prot"), "{err}");
        let err =
            parse_str("[source]\nhost = \"h\"\n[target]\nkind = \"imap\"\nhost = \"t\"\nlogn = \"x\"\n").unwrap_err();
        assert!(err.0.contains("logn"), "{err}");
    }

    #[test]
    fn plaintext_only_to_loopback() {
        let err = parse_str(
            "[source]\nhost = \"imap.example.com\"\nsecurity = \"plain\"\n[target]\nkind = \"maildir\"\npath = \"x\"\n",
        )
        .unwrap_err();
        assert!(err.0.contains("loopback"), "{err}");
        assert!(
            parse_str(
                "[source]\nhost = \"127.0.0.1\"\nsecurity = \"plain\"\n[target]\nkind = \"maildir\"\npath = \"x\"\n"
            )
            .is_ok()
        );
    }

    #[test]
    fn master_login_reads_password_from_environment() {
        let s = parse_str("[source]\nhost = \"h\"\n[target]\nkind = \"imap\"\nhost = \"t\"\nlogin = \"{email}*admin\"\npassword_env = \"PW\"\n").unwrap();
        let TargetSettings::Imap { login, password, .. } = &s.target else {
            panic!()
        };
        assert_eq!(login.as_deref(), Some("{email}*admin"));
        assert_eq!(password.as_ref().unwrap().expose(), "s3cret");
        let err = parse_str("[source]\nhost = \"h\"\n[target]\nkind = \"imap\"\nhost = \"t\"\nlogin = \"a\"\npassword_env = \"MISSING\"\n").unwrap_err();
        assert!(err.0.contains("MISSING"), "{err}");
    }

    #[test]
    fn xoauth2_source_settings() {
        let base = "[source]\nhost = \"h\"\n";
        let tail = "[target]\nkind = \"maildir\"\npath = \"x\"\n";
        let s = parse_str(&format!(
            "{base}auth = \"xoauth2\"\ntoken_command = \"gettoken\"\n{tail}"
        ))
        .unwrap();
        assert!(matches!(s.source_tokens, Some(crate::oauth::TokenSettings::Command(ref c)) if c == "gettoken"));
        let s = parse_str(&format!(
            "{base}auth = \"xoauth2\"\noauth_tenant_id = \"t\"\noauth_client_id = \"c\"\noauth_client_secret_env = \"PW\"\n{tail}"
        ))
        .unwrap();
        match s.source_tokens {
            Some(crate::oauth::TokenSettings::Microsoft(app)) => {
                let (scope, authority) = (&app.scope, &app.authority);
                let crate::oauth::entra::ClientAuth::Secret(client_secret) = &app.auth else {
                    panic!("{app:?}")
                };
                assert_eq!(scope, "https://outlook.office365.com/.default");
                assert_eq!(authority, "https://login.microsoftonline.com");
                assert_eq!(client_secret.expose(), "s3cret");
            }
            other => panic!("{other:?}"),
        }
        for (extra, want) in [
            ("auth = \"xoauth2\"\n", "needs token_command"),
            ("token_command = \"x\"\n", "need auth = \"xoauth2\""),
            (
                "auth = \"xoauth2\"\noauth_tenant_id = \"t\"\n",
                "need oauth_tenant_id, oauth_client_id",
            ),
            (
                "auth = \"xoauth2\"\ntoken_command = \"x\"\noauth_client_id = \"c\"\n",
                "not several",
            ),
            (
                "auth = \"xoauth2\"\noauth_tenant_id = \"t\"\noauth_client_id = \"c\"\noauth_client_secret_env = \"NOPE\"\n",
                "NOPE, which is not set",
            ),
        ] {
            let err = parse_str(&format!("{base}{extra}{tail}")).unwrap_err();
            assert!(err.0.contains(want), "{extra:?}: {}", err.0);
        }
    }

    #[test]
    fn xoauth2_microsoft_logins_can_use_a_certificate_on_either_side() {
        let dir = tempfile::tempdir().unwrap();
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        for name in ["graph-test-cert.pem", "graph-test-key.pem", "graph-other-cert.pem"] {
            std::fs::copy(data.join(name), dir.path().join(name)).unwrap();
        }
        let config = dir.path().join("cutover.toml");
        let env = |v: &str| (v == "PW").then(|| "s3cret".to_owned());
        let app = "oauth_tenant_id = \"t\"\noauth_client_id = \"c\"\n";
        let cert =
            "oauth_certificate_file = \"graph-test-cert.pem\"\noauth_private_key_file = \"graph-test-key.pem\"\n";
        let maildir = "[target]\nkind = \"maildir\"\npath = \"x\"\n";
        let certificate = |tokens: &Option<crate::oauth::TokenSettings>| match tokens {
            Some(crate::oauth::TokenSettings::Microsoft(app)) => {
                assert_eq!(app.scope, "https://outlook.office365.com/.default");
                matches!(app.auth, crate::oauth::entra::ClientAuth::Certificate(_))
            }
            _ => false,
        };

        let s = parse(
            &format!("[source]\nhost = \"h\"\nauth = \"xoauth2\"\n{app}{cert}{maildir}"),
            &config,
            &env,
        )
        .unwrap();
        assert!(certificate(&s.source_tokens), "{:?}", s.source_tokens);
        assert!(!format!("{s:?}").contains("PRIVATE KEY"), "no key in debug output");
        let s = parse(
            &format!(
                "[source]\nhost = \"h\"\n[target]\nkind = \"imap\"\nhost = \"t\"\nauth = \"xoauth2\"\n{app}{cert}"
            ),
            &config,
            &env,
        )
        .unwrap();
        let TargetSettings::Imap { tokens, .. } = &s.target else {
            panic!("not imap")
        };
        assert!(certificate(tokens), "{tokens:?}");

        for (extra, want) in [
            (
                format!("{app}oauth_client_secret_env = \"PW\"\n{cert}"),
                "[source] set oauth_client_secret_env or oauth_certificate_file with oauth_private_key_file, not both",
            ),
            (
                format!("{app}oauth_certificate_file = \"graph-test-cert.pem\"\n"),
                "[source] oauth_certificate_file and oauth_private_key_file go together",
            ),
            (
                format!(
                    "{app}oauth_certificate_file = \"graph-other-cert.pem\"\noauth_private_key_file = \"graph-test-key.pem\"\n"
                ),
                "[source] oauth_private_key_file does not belong to the certificate",
            ),
            (
                format!(
                    "{app}oauth_certificate_file = \"nope.pem\"\noauth_private_key_file = \"graph-test-key.pem\"\n"
                ),
                "[source] oauth_certificate_file",
            ),
            (cert.to_owned(), "need oauth_tenant_id, oauth_client_id"),
        ] {
            let err = parse(
                &format!("[source]\nhost = \"h\"\nauth = \"xoauth2\"\n{extra}{maildir}"),
                &config,
                &env,
            )
            .unwrap_err();
            assert!(err.0.contains(want), "{extra:?}: {}", err.0);
            assert!(!err.0.contains("PRIVATE KEY-----"), "no key material: {}", err.0);
        }
        let err = parse(&format!("[source]\nhost = \"h\"\n{cert}{maildir}"), &config, &env).unwrap_err();
        assert!(err.0.contains("need auth = \"xoauth2\""), "{}", err.0);
    }

    #[test]
    fn takeout_source_and_label_rules() {
        let s = parse_str("[source]\nkind = \"mbox\"\npath = \"takeout/{email}.mbox\"\ngmail_labels = \"folders\"\ncopy_trash = true\n[target]\nkind = \"maildir\"\npath = \"x\"\n").unwrap();
        let path = s.mbox.expect("mbox source");
        assert_eq!(
            path,
            Path::new("/etc/cutover/takeout/{email}.mbox"),
            "relative to the config file"
        );
        assert_eq!(s.labels.mode, crate::labels::LabelMode::Folders);
        assert!(s.labels.keep_trash && !s.labels.keep_junk);
        let d = parse_str("[source]\nhost = \"h\"\n[target]\nkind = \"maildir\"\npath = \"x\"\n").unwrap();
        assert_eq!(d.labels, crate::labels::Rules::default());
        assert!(d.mbox.is_none());
        let err = parse_str("[source]\nkind = \"mbox\"\n[target]\nkind = \"maildir\"\npath = \"x\"\n").unwrap_err();
        assert!(err.0.contains("needs path"), "{}", err.0);
        let err = parse_str(
            "[source]\nkind = \"mbox\"\nhost = \"h\"\npath = \"p\"\n[target]\nkind = \"maildir\"\npath = \"x\"\n",
        )
        .unwrap_err();
        assert!(err.0.contains("host is for an IMAP source"), "{}", err.0);
        let err = parse_str("[source]\n[target]\nkind = \"maildir\"\npath = \"x\"\n").unwrap_err();
        assert!(err.0.contains("host is missing"), "{}", err.0);
        let err =
            parse_str("[source]\nhost = \"h\"\ngmail_labels = \"tags\"\n[target]\nkind = \"maildir\"\npath = \"x\"\n")
                .unwrap_err();
        assert!(err.0.contains("gmail_labels"), "{}", err.0);
    }

    #[test]
    fn pacing_caps_have_defaults_and_are_checked() {
        let base = "[source]\nhost = \"h\"\n[target]\nkind = \"maildir\"\npath = \"x\"\n";
        let s = parse_str(base).unwrap();
        assert_eq!(s.limits.pace, crate::pace::Caps::default());
        assert_eq!(s.limits.pace.connections_per_user, 10);
        let s = parse_str(&format!(
            "{base}[limits]\nmax_connections_per_source_host = 40\nlogins_per_second = 5\n\
             source_messages_per_second = 200\ntarget_bytes_per_second = 1000000\n"
        ))
        .unwrap();
        assert_eq!(s.limits.pace.connections_per_source_host, 40);
        assert_eq!(s.limits.pace.logins_per_second, 5);
        assert_eq!(s.limits.pace.source_messages_per_second, 200);
        assert_eq!(s.limits.pace.target_bytes_per_second, 1_000_000);
        assert_eq!(s.limits.pace.source_bytes_per_second, 0);
        let err = parse_str(&format!("{base}[run]\nconnections_per_user = 12\n"))
            .unwrap_err()
            .0;
        assert!(
            err.contains("connections_per_user = 12") && err.contains("max_connections_per_user = 10"),
            "{err}"
        );
        let err = parse_str(&format!("{base}[limits]\nmax_connections_per_source_host = 0\n"))
            .unwrap_err()
            .0;
        assert!(
            err.contains("max_connections_per_source_host must be at least 1"),
            "{err}"
        );
    }

    #[test]
    fn limits_are_checked() {
        let err = parse_str("[source]\nhost = \"h\"\n[target]\nkind = \"maildir\"\npath = \"x\"\n[limits]\nmax_message_bytes = 200000000\n").unwrap_err();
        assert!(err.0.contains("max_message_bytes"), "{err}");
    }
}
