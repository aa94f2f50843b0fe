//! Reads `cutover.toml` into validated, built values. Every key has a
//! default documented in `config.example.toml`; an unknown key is an error
//! that names it, so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::imap::{Endpoint, Security, is_loopback_host};
use crate::secret::Secret;

/// Largest message size an admin may allow (Exchange Online's ceiling).
pub const MAX_MESSAGE_BYTES_CEILING: u64 = 150 * 1024 * 1024;

#[derive(Debug)]
pub struct Settings {
    pub source: Endpoint,
    pub target: TargetSettings,
    pub limits: Limits,
    pub state_path: PathBuf,
    pub run: RunSettings,
}

#[derive(Debug, Clone)]
pub enum TargetSettings {
    Imap {
        endpoint: Endpoint,
        /// Login template such as `{email}*admin`; `None` means the users
        /// file's TargetUserName/TargetPassword columns.
        login: Option<String>,
        password: Option<Secret>,
    },
    Maildir {
        path: PathBuf,
    },
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_items: u64,
    pub max_message_bytes: u64,
    pub exclude: Vec<String>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceSection {
    host: String,
    port: Option<u16>,
    #[serde(default = "default_security")]
    security: Security,
    ca_file: Option<PathBuf>,
    #[serde(default = "default_timeout")]
    timeout_seconds: u64,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum TargetSection {
    Imap(ImapTargetSection),
    Maildir(MaildirTargetSection),
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
    login: Option<String>,
    password_env: Option<String>,
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
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_items: default_max_items(),
            max_message_bytes: default_max_message_bytes(),
            exclude: Vec::new(),
        }
    }
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

    let source = endpoint(
        "source",
        file.source.host,
        file.source.port,
        file.source.security,
        file.source.ca_file.map(|p| resolve(&p)),
        file.source.timeout_seconds,
    )
    .map_err(bad)?;

    let target = match file.target {
        TargetSection::Imap(t) => {
            let endpoint = endpoint(
                "target",
                t.host,
                t.port,
                t.security,
                t.ca_file.map(|p| resolve(&p)),
                t.timeout_seconds,
            )
            .map_err(bad)?;
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
            }
        }
        TargetSection::Maildir(m) => TargetSettings::Maildir { path: resolve(&m.path) },
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
    if r.max_in_flight_bytes < 1024 * 1024 {
        return Err(bad("[run] max_in_flight_bytes must be at least 1048576 (1 MiB)".into()));
    }

    Ok(Settings {
        source,
        target,
        limits: Limits {
            max_items: limits.max_items,
            max_message_bytes: limits.max_message_bytes,
            exclude: limits.exclude,
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
    })
}

fn endpoint(
    section: &str,
    host: String,
    port: Option<u16>,
    security: Security,
    ca_file: Option<PathBuf>,
    timeout_seconds: u64,
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
    fn limits_are_checked() {
        let err = parse_str("[source]\nhost = \"h\"\n[target]\nkind = \"maildir\"\npath = \"x\"\n[limits]\nmax_message_bytes = 200000000\n").unwrap_err();
        assert!(err.0.contains("max_message_bytes"), "{err}");
    }
}
