//! `cutover init`: a first `cutover.toml` and `users.csv` for one source
//! and target kind, so an admin starts from the dozen keys their pair
//! needs (each with a one-line comment and the right values: Gmail's and
//! Exchange Online's hosts, their logins, the label rules) instead of from
//! the whole of `config.example.toml`.
//!
//! The texts are built by pure functions ([`config_text`], [`users_text`],
//! [`next_steps`]); [`write`] is the one that touches the disk, and never
//! replaces a file unless asked to. The generated config loads with the
//! settings loader as written (secrets are named by environment variable,
//! never written); the users file holds placeholders that start with
//! `CHANGE-ME`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where mail comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Gmail or Google Workspace over IMAP.
    Gmail,
    /// Exchange Online (Microsoft 365) over IMAP.
    ExchangeImap,
    /// Any other IMAP server.
    Imap,
    /// Google Takeout exports, one mbox per user.
    Takeout,
}

/// Where mail goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Exchange Online over Microsoft Graph.
    Graph,
    Imap,
    Maildir,
}

impl Source {
    pub const ALL: [Source; 4] = [Source::Gmail, Source::ExchangeImap, Source::Imap, Source::Takeout];
}

impl Target {
    pub const ALL: [Target; 3] = [Target::Graph, Target::Imap, Target::Maildir];
}

/// The config file's name in the directory.
pub const CONFIG_FILE: &str = "cutover.toml";
/// The users file's name in the directory.
pub const USERS_FILE: &str = "users.csv";

/// The environment variable holding the Graph app's client secret.
const GRAPH_SECRET_ENV: &str = "CUTOVER_GRAPH_SECRET";
/// The environment variable holding the Entra ID app's secret for IMAP.
const IMAP_APP_SECRET_ENV: &str = "CUTOVER_IMAP_APP_SECRET";

/// Where the comment of a key starts, so they line up.
const COMMENT_COLUMN: usize = 36;

/// One key per line with its comment (`(setting, comment)`; a setting
/// starting with `#` is an alternative shown commented out, an empty one a
/// comment line of its own).
fn keys(out: &mut String, lines: &[(&str, &str)]) {
    for (setting, comment) in lines {
        if setting.is_empty() {
            out.push_str(&format!("# {comment}\n"));
        } else {
            out.push_str(&format!("{setting:<width$} # {comment}\n", width = COMMENT_COLUMN - 1));
        }
    }
}

/// The commented `cutover.toml` for the pair.
pub fn config_text(source: Source, target: Target) -> String {
    let mut out = format!(
        "# cutover configuration: {} -> {}, written by `cutover init`.\n\
         # Only the keys this pair needs; config.example.toml explains every key.\n\
         # Relative paths are relative to this file. Secrets never go here: they\n\
         # are read from the environment variables named below.\n\n[source]\n",
        source_words(source),
        target_words(target)
    );
    let labels: [(&str, &str); 3] = [
        (
            "gmail_labels = \"categories\"",
            "each message once, labels as categories (keywords on IMAP); \"folders\": a copy per label",
        ),
        ("copy_junk = false", "true: also copy Spam"),
        ("copy_trash = false", "true: also copy Trash"),
    ];
    match source {
        Source::Gmail => {
            keys(
                &mut out,
                &[
                    (
                        "host = \"imap.gmail.com\"",
                        "Gmail's IMAP server (IMAP enabled for each user)",
                    ),
                    ("port = 993", "implicit TLS"),
                    ("security = \"tls\"", "certificates are always verified"),
                    (
                        "auth = \"password\"",
                        "an app password per user in users.csv (2-Step Verification on)",
                    ),
                    (
                        "",
                        "Workspace without app passwords: a service account with domain-wide delegation:",
                    ),
                    (
                        "# auth = \"xoauth2\"",
                        "a token per user (users.csv's Password then unused)",
                    ),
                    (
                        "# oauth_service_account_file = \"sa.json\"",
                        "its JSON key, scope https://mail.google.com/",
                    ),
                ],
            );
            keys(&mut out, &labels);
        }
        Source::ExchangeImap => keys(
            &mut out,
            &[
                ("host = \"outlook.office365.com\"", "Exchange Online's IMAP server"),
                ("port = 993", "implicit TLS"),
                ("security = \"tls\"", "certificates are always verified"),
                (
                    "auth = \"xoauth2\"",
                    "Exchange Online takes no passwords over IMAP (users.csv's Password unused)",
                ),
                (
                    "oauth_tenant_id = \"contoso.onmicrosoft.com\"",
                    "your tenant's domain or Directory (tenant) ID",
                ),
                (
                    "oauth_client_id = \"00000000-0000-0000-0000-000000000000\"",
                    "Entra ID app with IMAP.AccessAsApp, granted each mailbox",
                ),
                (
                    "oauth_client_secret_env = \"CUTOVER_IMAP_APP_SECRET\"",
                    "environment variable holding that app's client secret",
                ),
            ],
        ),
        Source::Imap => keys(
            &mut out,
            &[
                (
                    "host = \"imap.example.com\"",
                    "the IMAP server mail is copied from (only ever read)",
                ),
                ("port = 993", "993 for implicit TLS, 143 for starttls"),
                ("security = \"tls\"", "or \"starttls\" (\"plain\" only to loopback)"),
                (
                    "# ca_file = \"private-ca.pem\"",
                    "a private CA's certificates, if the server uses one",
                ),
            ],
        ),
        Source::Takeout => {
            keys(
                &mut out,
                &[
                    ("kind = \"mbox\"", "Google Takeout exports instead of an IMAP server"),
                    (
                        "path = \"takeout/{email}.mbox\"",
                        "each user's Takeout .mbox; {email} is users.csv's EmailAddress",
                    ),
                ],
            );
            keys(&mut out, &labels);
        }
    }
    out.push_str("\n[target]\n");
    match target {
        Target::Graph => keys(
            &mut out,
            &[
                (
                    "kind = \"graph\"",
                    "Exchange Online over Microsoft Graph; mailbox = users.csv's EmailAddress",
                ),
                (
                    "tenant_id = \"contoso.onmicrosoft.com\"",
                    "your tenant's domain or Directory (tenant) ID",
                ),
                (
                    "client_id = \"00000000-0000-0000-0000-000000000000\"",
                    "app with Mail.ReadWrite and Mail-Advanced.ReadWrite.All, admin consent",
                ),
                (
                    "client_secret_env = \"CUTOVER_GRAPH_SECRET\"",
                    "environment variable holding the app's client secret",
                ),
                (
                    "write_mode = \"auto\"",
                    "exact bytes (import-mime), json if the tenant refuses it",
                ),
            ],
        ),
        Target::Imap => keys(
            &mut out,
            &[
                ("kind = \"imap\"", "another IMAP server"),
                ("host = \"imap.example.net\"", "the IMAP server mail goes to"),
                ("port = 993", "993 for implicit TLS, 143 for starttls"),
                ("security = \"tls\"", "or \"starttls\" (\"plain\" only to loopback)"),
                (
                    "",
                    "Logins: users.csv's TargetUserName/TargetPassword, or one admin login for all:",
                ),
                (
                    "# login = \"{email}*admin\"",
                    "e.g. a Dovecot master user ({email}: the EmailAddress)",
                ),
                (
                    "# password_env = \"CUTOVER_TARGET_PASSWORD\"",
                    "environment variable holding that login's password",
                ),
            ],
        ),
        Target::Maildir => keys(
            &mut out,
            &[
                ("kind = \"maildir\"", "a Maildir++ tree per user on this machine"),
                ("path = \"/srv/mail\"", "one tree per EmailAddress below this directory"),
                (
                    "folder_names = \"utf7\"",
                    "non-ASCII folder names as Dovecot stores them; \"utf8\" as Courier 5",
                ),
            ],
        ),
    }
    out.push_str("\n[state]\n");
    keys(
        &mut out,
        &[(
            "path = \"cutover.db\"",
            "the checkpoint; keep it: reruns resync from it",
        )],
    );
    out.push_str("\n[run]\n");
    keys(
        &mut out,
        &[
            ("parallel_users = 4", "mailboxes copied at the same time"),
            ("connections_per_user = 4", "source connections per mailbox"),
        ],
    );
    out
}

/// The header of `users.csv` for the pair: the source's login columns, and
/// the IMAP target's per-user login (the generated config uses no admin
/// login).
fn users_columns(target: Target) -> &'static str {
    match target {
        Target::Imap => "EmailAddress,UserName,Password,TargetUserName,TargetPassword",
        Target::Graph | Target::Maildir => "EmailAddress,UserName,Password",
    }
}

/// `users.csv`: the header and two example rows whose values to replace
/// start with `CHANGE-ME`.
pub fn users_text(source: Source, target: Target) -> String {
    let mut out = format!("{}\n", users_columns(target));
    for name in ["alice", "bob"] {
        let email = format!("{name}@example.com");
        let password = match source {
            Source::Gmail => format!("CHANGE-ME-{name}-app-password"),
            Source::Imap => format!("CHANGE-ME-{name}-password"),
            // Not used (XOAUTH2, or files), but the column must not be empty.
            Source::ExchangeImap | Source::Takeout => "unused".to_owned(),
        };
        out.push_str(&format!("{email},{email},{password}"));
        if target == Target::Imap {
            out.push_str(&format!(",{email},CHANGE-ME-{name}-target-password"));
        }
        out.push('\n');
    }
    out
}

/// What [`write`] wrote.
#[derive(Debug)]
pub struct Written {
    pub config: PathBuf,
    pub users: PathBuf,
}

/// Why nothing was written.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InitError(pub String);

/// Writes `cutover.toml` and `users.csv` into `dir` (created if needed).
/// Without `force`, an existing file of either name is left alone and
/// nothing is written. `users.csv` will hold passwords: it is created
/// readable by its owner only.
pub fn write(dir: &Path, source: Source, target: Target, force: bool) -> Result<Written, InitError> {
    let written = Written {
        config: dir.join(CONFIG_FILE),
        users: dir.join(USERS_FILE),
    };
    if !force {
        for path in [&written.config, &written.users] {
            if path.exists() {
                return Err(InitError(format!(
                    "{} already exists; nothing was written. Move it away, use --dir for another directory, or --force to replace it",
                    path.display()
                )));
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| InitError(format!("cannot create directory {}: {e}", dir.display())))?;
    write_file(&written.config, &config_text(source, target), 0o644, force)?;
    write_file(&written.users, &users_text(source, target), 0o600, force)?;
    Ok(written)
}

fn write_file(path: &Path, text: &str, mode: u32, force: bool) -> Result<(), InitError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(mode);
    if force {
        options.create(true).truncate(true);
    } else {
        // Also refuses a file that appeared since the check.
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|e| {
        InitError(if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!("{} already exists; use --force to replace it", path.display())
        } else {
            format!("cannot write {}: {e}", path.display())
        })
    })?;
    file.write_all(text.as_bytes())
        .map_err(|e| InitError(format!("cannot write {}: {e}", path.display())))
}

/// What to tell the admin once the files are written: what was written,
/// what to fill in, and the commands to run next.
pub fn next_steps(written: &Written, source: Source, target: Target) -> String {
    let config = written.config.display();
    let users = written.users.display();
    let mut out = format!("wrote {config}\nwrote {users}\n\nNext:\n");
    let mut edit = Vec::new();
    match source {
        Source::Gmail => {}
        Source::ExchangeImap => edit.push("[source] oauth_tenant_id and oauth_client_id"),
        Source::Imap => edit.push("[source] host (and port, security)"),
        Source::Takeout => edit.push("[source] path (where the Takeout .mbox files are)"),
    }
    edit.push(match target {
        Target::Graph => "[target] tenant_id and client_id",
        Target::Imap => "[target] host (and port, security)",
        Target::Maildir => "[target] path",
    });
    out.push_str(&format!("  1. In {config}, set {}.", edit.join("; ")));
    if source == Source::Gmail {
        out.push_str(" [source] is set for app passwords; for a service account, use its commented lines.");
    }
    out.push('\n');
    out.push_str(&format!(
        "  2. In {users}, one row per mailbox: replace the example rows and every CHANGE-ME value.\n"
    ));
    let mut secrets = Vec::new();
    if source == Source::ExchangeImap {
        secrets.push(IMAP_APP_SECRET_ENV);
    }
    if target == Target::Graph {
        secrets.push(GRAPH_SECRET_ENV);
    }
    let mut step = 3;
    if !secrets.is_empty() {
        let exports: Vec<String> = secrets.iter().map(|v| format!("{v}=...")).collect();
        out.push_str(&format!(
            "  {step}. Put the app's client secret in the environment (never in the file): export {}\n",
            exports.join(" ")
        ));
        step += 1;
    }
    out.push_str(&format!(
        "  {step}. Check logins, sizes and the estimate (writes nothing):\n       cutover check --config {config} --users {users}\n"
    ));
    out.push_str(&format!(
        "  {}. Copy, then rerun (or add --every 30m) to resync until cutover:\n       cutover migrate --config {config} --users {users}\n",
        step + 1
    ));
    out
}

fn source_words(s: Source) -> &'static str {
    match s {
        Source::Gmail => "Gmail over IMAP",
        Source::ExchangeImap => "Exchange Online over IMAP",
        Source::Imap => "an IMAP server",
        Source::Takeout => "Google Takeout exports",
    }
}

fn target_words(t: Target) -> &'static str {
    match t {
        Target::Graph => "Exchange Online (Microsoft Graph)",
        Target::Imap => "an IMAP server",
        Target::Maildir => "Maildir",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        [GRAPH_SECRET_ENV, IMAP_APP_SECRET_ENV]
            .contains(&name)
            .then(|| "test-secret".to_owned())
    }

    /// Every pair's config loads as written, with the source and target
    /// it names, and its users file is read with the example rows.
    #[test]
    fn every_pair_loads_with_the_settings_loader() {
        for source in Source::ALL {
            for target in Target::ALL {
                let text = config_text(source, target);
                let path = Path::new("/etc/cutover/cutover.toml");
                let settings = crate::settings::parse(&text, path, &env)
                    .unwrap_or_else(|e| panic!("{source:?} -> {target:?}: {e}\n{text}"));
                use crate::settings::{SourceSettings, TargetSettings};
                match (source, &settings.source) {
                    (Source::Takeout, SourceSettings::Mbox { path }) => {
                        assert_eq!(path, Path::new("/etc/cutover/takeout/{email}.mbox"))
                    }
                    (Source::Takeout, other) => panic!("{other:?}"),
                    (_, SourceSettings::Imap { endpoint, tokens, .. }) => {
                        let host = match source {
                            Source::Gmail => "imap.gmail.com",
                            Source::ExchangeImap => "outlook.office365.com",
                            _ => "imap.example.com",
                        };
                        assert!(format!("{endpoint:?}").contains(host), "{endpoint:?}");
                        assert_eq!(tokens.is_some(), source == Source::ExchangeImap, "{source:?}");
                    }
                    (_, other) => panic!("{other:?}"),
                }
                let kind_ok = matches!(
                    (target, &settings.target),
                    (Target::Graph, TargetSettings::Graph(_))
                        | (Target::Imap, TargetSettings::Imap { .. })
                        | (Target::Maildir, TargetSettings::Maildir { .. })
                );
                assert!(kind_ok, "{target:?}: {:?}", settings.target);
                assert_eq!(settings.state_path, Path::new("/etc/cutover/cutover.db"));
                let users = crate::roster::parse_users(users_text(source, target).as_bytes())
                    .unwrap_or_else(|e| panic!("{source:?} -> {target:?}: {e:?}"));
                assert_eq!(users.len(), 2);
                assert_eq!(users[1].email, "bob@example.com");
                assert_eq!(users[0].target_username.is_some(), target == Target::Imap);
            }
        }
    }

    #[test]
    fn each_key_has_its_comment_and_only_the_pair_keys_are_set() {
        for source in Source::ALL {
            for target in Target::ALL {
                let text = config_text(source, target);
                for line in text.lines() {
                    let t = line.trim();
                    if t.is_empty() || t.starts_with('#') || t.starts_with('[') {
                        continue;
                    }
                    assert!(t.contains(" # "), "{source:?} -> {target:?}: no comment on {t:?}");
                }
                let gmail_keys = text.contains("\ngmail_labels =");
                assert_eq!(
                    gmail_keys,
                    matches!(source, Source::Gmail | Source::Takeout),
                    "{source:?}"
                );
                assert_eq!(text.contains("\nhost = \"imap.gmail.com\""), source == Source::Gmail);
                assert_eq!(
                    text.contains("client_secret_env"),
                    target == Target::Graph || source == Source::ExchangeImap
                );
                assert!(!text.contains("password_env = \"") || text.contains("# password_env"));
            }
        }
        let takeout = config_text(Source::Takeout, Target::Graph);
        assert!(takeout.contains("path = \"takeout/{email}.mbox\""), "{takeout}");
        assert!(!takeout.contains("\nhost ="), "an mbox source has no host");
    }

    #[test]
    fn users_file_asks_for_what_the_pair_needs() {
        let gmail = users_text(Source::Gmail, Target::Graph);
        assert!(gmail.starts_with("EmailAddress,UserName,Password\n"), "{gmail}");
        assert!(gmail.contains("alice@example.com,alice@example.com,CHANGE-ME-alice-app-password\n"));
        let imap = users_text(Source::Imap, Target::Imap);
        assert!(imap.starts_with("EmailAddress,UserName,Password,TargetUserName,TargetPassword\n"));
        assert!(imap.contains("CHANGE-ME-bob-target-password"));
        assert_eq!(imap.lines().count(), 3, "header and two rows");
        let exchange = users_text(Source::ExchangeImap, Target::Maildir);
        assert!(!exchange.contains("CHANGE-ME"), "no password is used: {exchange}");
    }

    #[test]
    fn files_are_never_replaced_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let written = write(dir.path(), Source::Imap, Target::Imap, false).unwrap();
        std::fs::write(&written.users, "mine").unwrap();
        let err = write(dir.path(), Source::Gmail, Target::Graph, false).unwrap_err();
        assert!(
            err.0.contains("cutover.toml already exists") && err.0.contains("--force"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&written.users).unwrap(), "mine");
        std::fs::remove_file(&written.config).unwrap();
        let err = write(dir.path(), Source::Gmail, Target::Graph, false).unwrap_err();
        assert!(err.0.contains("users.csv already exists"), "{err}");
        assert!(!written.config.exists(), "nothing written when one file is in the way");
        write(dir.path(), Source::Gmail, Target::Graph, true).unwrap();
        assert!(
            std::fs::read_to_string(&written.config)
                .unwrap()
                .contains("imap.gmail.com")
        );
        assert!(
            std::fs::read_to_string(&written.users)
                .unwrap()
                .contains("app-password")
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&written.users).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "users.csv is for its owner only");
    }

    #[test]
    fn next_steps_name_the_files_the_secrets_and_the_commands() {
        let written = Written {
            config: PathBuf::from("/x/cutover.toml"),
            users: PathBuf::from("/x/users.csv"),
        };
        let text = next_steps(&written, Source::ExchangeImap, Target::Graph);
        assert!(text.contains("wrote /x/cutover.toml\nwrote /x/users.csv"), "{text}");
        assert!(
            text.contains("export CUTOVER_IMAP_APP_SECRET=... CUTOVER_GRAPH_SECRET=..."),
            "{text}"
        );
        assert!(
            text.contains("cutover check --config /x/cutover.toml --users /x/users.csv"),
            "{text}"
        );
        assert!(
            text.contains("cutover migrate --config /x/cutover.toml --users /x/users.csv"),
            "{text}"
        );
        let plain = next_steps(&written, Source::Imap, Target::Maildir);
        assert!(!plain.contains("export"), "{plain}");
    }
}
