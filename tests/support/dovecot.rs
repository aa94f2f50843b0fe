//! Real Dovecot instances as test fixtures.
//!
//! Why a real server: cutover's correctness depends on what an actual IMAP
//! server does with UIDs, UIDVALIDITY, flags, keywords, literal sizes and
//! non-ASCII folder names. A mock would only echo our own assumptions, so every
//! [`Dovecot`] is the distribution's `dovecot` binary running from a generated
//! config under its own temporary directory.
//!
//! Isolation: each instance has its own `base_dir`, `state_dir`, logs, users
//! file and mail homes, a unique `instance_name`, and listens on free loopback
//! ports only. Nothing under `/etc/dovecot` is read and the system service is
//! neither needed nor touched, so any number of instances can run side by side
//! (cargo runs tests in parallel threads; nextest runs them in parallel
//! processes). Instances are stopped through the pid of the `dovecot -F` child
//! we spawned, never by process name.
//!
//! Accounts: as root, the server drops privileges to the Debian system users
//! `dovecot` / `dovenull` and a mail owner `vmail`, which is created on first
//! use if missing. As a non-root user everything runs as that user.
//!
//! Layout and naming choices (they matter to tests):
//! - Storage is Maildir++ (`maildir:~/Maildir`). On disk the hierarchy
//!   separator is always `.`, whatever the IMAP separator is, and names are
//!   modified UTF-7. The `listescape` plugin is loaded so that a folder name may
//!   still contain the other character (e.g. `Mr. Smith` with the `/`
//!   separator); the server shows such a `.` as `\2e` when `.` is the separator.
//!   Avoid backslashes in folder names (the escape character).
//! - The inbox namespace declares `Sent`, `Drafts`, `Trash`, `Junk` and
//!   `Archive` with their SPECIAL-USE flags and `auto = subscribe`. The fixture
//!   also opens them once when a user is added, so they physically exist from
//!   the start: [`Dovecot::folders`] and [`Dovecot::messages`] agree with what
//!   an IMAP `LIST` shows.
//! - The fixture's API always names folders in UTF-8 with `/` as the hierarchy
//!   separator (and `INBOX` for the inbox), translating to and from the
//!   server's separator.
//! - The anvil auth penalty is disabled and `auth_failure_delay = 0`, so tests
//!   that try wrong passwords stay fast.
//! - `mail_save_crlf = yes`: APPENDed mail is stored with CRLF, i.e. as clients
//!   receive it. [`Dovecot::messages`] reports the bytes a client gets for
//!   `BODY[]`; only a message delivered with bare LFs (the corpus has one)
//!   differs from its delivered bytes, by LF -> CRLF (`mailgen::to_crlf`).
//! - `deliver` bypasses IMAP: files are written straight into the Maildir
//!   and indexed with `doveadm force-resync`, assigning UIDs in slice order
//!   (20,000 messages / 1 GB take about 10 s here, mostly disk writes).
//! - Stopping takes about a second: Dovecot's master waits for its log
//!   process, which keeps every logout line for [`Dovecot::session_stats`].
//!
//! - Gmail-like layout ([`DovecotOptions::gmail`], `/` separator only): INBOX
//!   and label folders at the top level, and a `[Gmail]/` namespace (listed
//!   `\Noselect` like Gmail's) of *virtual* folders (Dovecot's `virtual`
//!   plugin) with SPECIAL-USE flags: Sent, Drafts, Spam (`\Junk`), Trash,
//!   and All Mail (`\All`) over INBOX, every label, Sent, Drafts and the
//!   archived mail, never Spam or Trash (as Gmail does). Their messages live
//!   in real folders of a hidden namespace (`GmailSys/`): `deliver` to
//!   `"[Gmail]/Sent Mail"` (or the localized name) writes into the hidden
//!   backing folder, and `deliver` to the All Mail name stores *archived*
//!   mail, which then shows only in All Mail. Unlike Gmail, a message with
//!   two labels is two stored copies, so All Mail lists it twice: a client
//!   must match copies by Message-ID and size either way.
//!
//! - cPanel-style layout ([`DovecotOptions::cpanel`]): the personal
//!   namespace has `prefix = INBOX.` and separator `.`, as cPanel's Dovecot
//!   (and Courier before it) announce: `NAMESPACE (("INBOX." ".")) NIL NIL`.
//!   Every folder is a child of INBOX on the wire (`INBOX.Sent`); the
//!   fixture's API still names it `Sent` (names are relative to the personal
//!   namespace, see [`Dovecot::mailbox_name`]).
//!
//! Set `CUTOVER_FIXTURE_KEEP=1` to keep an instance's directory (config, logs,
//! Maildirs) after it is dropped, for post-mortem debugging.
//!
//! Requires Debian's `dovecot-imapd` (2.3) and `openssl` (for TLS instances):
//! `scripts/install-deps` installs them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::mailgen::{GenMessage, sort_flags, to_crlf};

/// The special-use mailboxes every user has (name, SPECIAL-USE attribute).
pub const SPECIAL_USE: [(&str, &str); 5] = [
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
];

/// Names of a Gmail-like layout's `[Gmail]/` folders (see the module docs).
/// Each name is the part after `[Gmail]/`, ASCII only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GmailLayout {
    pub all: String,
    pub sent: String,
    pub drafts: String,
    pub spam: String,
    pub trash: String,
}

impl GmailLayout {
    /// Gmail in English: "[Gmail]/All Mail", "[Gmail]/Sent Mail", ...
    pub fn english() -> GmailLayout {
        GmailLayout {
            all: "All Mail".into(),
            sent: "Sent Mail".into(),
            drafts: "Drafts".into(),
            spam: "Spam".into(),
            trash: "Trash".into(),
        }
    }

    /// Gmail in German: "[Gmail]/Alle Nachrichten", "[Gmail]/Gesendet", ...
    pub fn german() -> GmailLayout {
        GmailLayout {
            all: "Alle Nachrichten".into(),
            sent: "Gesendet".into(),
            drafts: "Entwuerfe".into(),
            spam: "Spam".into(),
            trash: "Papierkorb".into(),
        }
    }

    /// (name under `[Gmail]/`, SPECIAL-USE flag, hidden backing folder or
    /// `None` for All Mail, which is a view over the others).
    fn folders(&self) -> [(&str, &str, Option<&str>); 5] {
        [
            (self.all.as_str(), "\\All", None),
            (self.sent.as_str(), "\\Sent", Some("Sent")),
            (self.drafts.as_str(), "\\Drafts", Some("Drafts")),
            (self.spam.as_str(), "\\Junk", Some("Spam")),
            (self.trash.as_str(), "\\Trash", Some("Trash")),
        ]
    }
}

/// Prefix of the Gmail layout's virtual folders, and of the hidden
/// namespace holding their messages.
pub const GMAIL_PREFIX: &str = "[Gmail]/";
const GMAIL_HIDDEN: &str = "GmailSys/";

/// How long `start`/`restart` wait for the listener before giving up. Generous
/// because a 2-core CI machine may be starting several instances at once.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// What kind of server to start. Use `..Default::default()` for the rest.
#[derive(Debug, Clone)]
pub struct DovecotOptions {
    /// IMAP hierarchy separator: `'/'` (default) or `'.'`.
    pub separator: char,
    /// Initial users: (login, password). More can be added with
    /// [`Dovecot::add_user`] while the server runs.
    pub users: Vec<(String, String)>,
    /// Master (admin) user: (login, password). Log in as `user*admin` with the
    /// admin's password to act as `user`.
    pub master: Option<(String, String)>,
    /// Also listen with implicit TLS (imaps) and offer STARTTLS on the plain
    /// port, with a certificate for `IP:127.0.0.1` and `DNS:localhost` issued by
    /// a per-instance CA (see [`Dovecot::ca_file`]).
    pub tls: bool,
    /// Connections one user may have open from one IP at once
    /// (`mail_max_userip_connections`); generous by default.
    pub max_userip_connections: u32,
    /// IMAP sessions the server runs at once, all users together (one
    /// process each); a connection beyond it is dropped.
    pub process_limit: u32,
    /// Lay mailboxes out like Gmail (see the module docs); `/` separator only.
    pub gmail: Option<GmailLayout>,
    /// Also accept SASL XOAUTH2 / OAUTHBEARER logins, checking each token by
    /// POSTing it to this OAuth 2.0 introspection URL (RFC 7662; the
    /// answer's `active` must be true and its `username` the login).
    pub oauth2_introspection_url: Option<String>,
    /// Offer COMPRESS=DEFLATE (RFC 4978) after login: Dovecot's `imap_zlib`
    /// plugin (shipped with Debian's dovecot-imapd).
    pub compress: bool,
    /// Prefix of the personal (inbox) namespace: `""` (default) or
    /// `"INBOX."` with the `.` separator (cPanel style, see
    /// [`DovecotOptions::cpanel`]). Not with the Gmail layout.
    pub prefix: String,
}

impl DovecotOptions {
    /// cPanel-style Dovecot: `namespace inbox { prefix = INBOX. separator = .
    /// inbox = yes }`, i.e. `NAMESPACE (("INBOX." ".")) NIL NIL`; set `users`
    /// etc. with `..DovecotOptions::cpanel()`.
    pub fn cpanel() -> DovecotOptions {
        DovecotOptions {
            separator: '.',
            prefix: "INBOX.".to_string(),
            ..Default::default()
        }
    }
}

impl Default for DovecotOptions {
    fn default() -> Self {
        DovecotOptions {
            separator: '/',
            users: Vec::new(),
            master: None,
            tls: false,
            max_userip_connections: 1000,
            process_limit: 1000,
            gmail: None,
            oauth2_introspection_url: None,
            compress: false,
            prefix: String::new(),
        }
    }
}

/// One message as the server stores it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// UTF-8, `/` as hierarchy separator, `INBOX` for the inbox.
    pub folder: String,
    pub uid: u32,
    /// Exact bytes an IMAP client gets for `BODY[]`: the stored file with any
    /// bare LF served as CRLF (identical to the delivered bytes for CRLF mail).
    pub raw: Vec<u8>,
    /// IMAP form, canonical order (see `mailgen::sort_flags`); never `\Recent`.
    pub flags: Vec<String>,
    /// INTERNALDATE as unix seconds (the Maildir file's mtime).
    pub internal_date: i64,
}

impl std::fmt::Debug for StoredMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredMessage")
            .field("folder", &self.folder)
            .field("uid", &self.uid)
            .field("len", &self.raw.len())
            .field("message_id", &super::mailgen::message_id(&self.raw))
            .field("flags", &self.flags)
            .field("internal_date", &self.internal_date)
            .finish()
    }
}

/// STATUS of one existing folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderStatus {
    /// UTF-8, `/` as hierarchy separator, `INBOX` for the inbox.
    pub name: String,
    pub messages: u32,
    pub uidvalidity: u32,
    pub uidnext: u32,
}

/// Totals over finished IMAP sessions, from the `imap(user)` logout lines of
/// the info log (`imap_logout_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Finished IMAP sessions (each logged-in connection, incl. master logins).
    pub sessions: u64,
    /// Message bodies sent to clients (`BODY[]`, `BODY[TEXT]`, `RFC822`, ...).
    pub body_count: u64,
    pub body_bytes: u64,
    /// Header-only fetches (`BODY.PEEK[HEADER]`, ...).
    pub hdr_count: u64,
    pub hdr_bytes: u64,
    /// Bytes received from / sent to clients.
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub expunged: u64,
}

/// A running (or stopped) isolated Dovecot instance. Dropping it stops the
/// server and deletes its directory.
pub struct Dovecot {
    dovecot_bin: PathBuf,
    doveadm_bin: PathBuf,
    conf: PathBuf,
    base_dir: PathBuf,
    info_log: PathBuf,
    error_log: PathBuf,
    stderr_log: PathBuf,
    users_file: PathBuf,
    masters_file: PathBuf,
    home_root: PathBuf,
    tls_dir: PathBuf,
    instance_name: String,
    separator: char,
    max_userip_connections: u32,
    process_limit: u32,
    tls: bool,
    gmail: Option<GmailLayout>,
    oauth2: Option<String>,
    compress: bool,
    /// Personal namespace prefix (`""` or `"INBOX."`).
    prefix: String,
    port: u16,
    imaps_port: Option<u16>,
    child: Option<Child>,
    /// Serialises edits of the users file (add_user takes `&self`).
    users_lock: Mutex<()>,
    /// Declared last so the directory is removed after the server stopped.
    root: tempfile::TempDir,
}

impl Dovecot {
    /// Starts an instance and waits until its IMAP port greets.
    ///
    /// Panics with a readable message when Dovecot is missing
    /// (`scripts/install-deps`) or does not come up (the logs are included).
    pub fn start(opts: DovecotOptions) -> Dovecot {
        assert!(
            opts.separator == '/' || opts.separator == '.',
            "DovecotOptions::separator must be '/' or '.', not {:?}",
            opts.separator
        );
        assert!(
            opts.gmail.is_none() || opts.separator == '/',
            "the Gmail layout uses the '/' separator"
        );
        assert!(
            opts.prefix.is_empty() || (opts.prefix == "INBOX." && opts.separator == '.' && opts.gmail.is_none()),
            "DovecotOptions::prefix must be \"\" or \"INBOX.\" (with the '.' separator, no Gmail layout), not {:?}",
            opts.prefix
        );
        let dovecot_bin = find_binary("dovecot").unwrap_or_else(|| {
            panic!("dovecot not installed: run scripts/install-deps (needs Debian's dovecot-imapd)")
        });
        let doveadm_bin = find_binary("doveadm")
            .unwrap_or_else(|| panic!("doveadm not installed: run scripts/install-deps (needs Debian's dovecot-core)"));
        let acc = accounts();

        let root = tempfile::Builder::new()
            .prefix("cutover-dovecot-")
            .tempdir_in(short_temp_dir())
            .expect("create fixture temp dir");
        let r = root.path().to_path_buf();
        // Dovecot's unprivileged processes must traverse the tree.
        set_mode(&r, 0o755);
        for d in ["run", "state", "log", "home", "tls"] {
            fs::create_dir_all(r.join(d)).expect("create fixture dir");
            set_mode(&r.join(d), 0o755);
        }
        chown(&r.join("home"), acc);

        let n = INSTANCE_SEQ.fetch_add(1, Ordering::Relaxed);
        let mut dc = Dovecot {
            dovecot_bin,
            doveadm_bin,
            conf: r.join("dovecot.conf"),
            base_dir: r.join("run"),
            info_log: r.join("log/info.log"),
            error_log: r.join("log/error.log"),
            stderr_log: r.join("log/stderr.log"),
            users_file: r.join("users"),
            masters_file: r.join("masters"),
            home_root: r.join("home"),
            tls_dir: r.join("tls"),
            instance_name: format!("cutover-fixture-{}-{n}", std::process::id()),
            separator: opts.separator,
            max_userip_connections: opts.max_userip_connections,
            process_limit: opts.process_limit,
            tls: opts.tls,
            gmail: opts.gmail.clone(),
            oauth2: opts.oauth2_introspection_url.clone(),
            compress: opts.compress,
            prefix: opts.prefix.clone(),
            port: 0,
            imaps_port: None,
            child: None,
            users_lock: Mutex::new(()),
            root,
        };
        if std::env::var_os("CUTOVER_FIXTURE_KEEP").is_some_and(|v| v != "0") {
            dc.root.disable_cleanup(true);
        }

        let mut lines = String::new();
        for (login, password) in &opts.users {
            lines.push_str(&dc.user_line(login, password));
        }
        write_file(&dc.users_file, lines.as_bytes(), 0o644);
        let masters = match &opts.master {
            Some((login, password)) => {
                check_credential(login, password);
                format!("{login}:{{PLAIN}}{password}\n")
            }
            None => String::new(),
        };
        write_file(&dc.masters_file, masters.as_bytes(), 0o644);
        if opts.tls {
            make_certificates(&dc.tls_dir);
        }

        dc.launch_on_fresh_ports();
        for (login, _) in &opts.users {
            dc.prepare_user(login);
        }
        dc
    }

    /// Plain IMAP port on 127.0.0.1 (offers STARTTLS when `tls` was set).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Implicit-TLS IMAP port on 127.0.0.1, when started with `tls`.
    pub fn imaps_port(&self) -> Option<u16> {
        self.imaps_port
    }

    /// PEM file of the CA that issued the server certificate, when `tls`.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.tls.then(|| self.tls_dir.join("ca.pem"))
    }

    /// The IMAP hierarchy separator this server uses.
    pub fn separator(&self) -> char {
        self.separator
    }

    /// The personal namespace's prefix: `""`, or `"INBOX."` (cPanel style).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The name a client uses on the wire (before modified UTF-7) for a
    /// fixture folder name: `Sent` -> `INBOX.Sent` in the cPanel layout,
    /// `A/B` -> `A.B` with the `.` separator.
    pub fn mailbox_name(&self, folder: &str) -> String {
        self.vname(folder)
    }

    /// The generated configuration, e.g. for `doveadm -c` or `doveconf -c`.
    pub fn conf_path(&self) -> &Path {
        &self.conf
    }

    /// The instance's private directory (config, logs, homes).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Where a user's Maildir lives (it may not exist before first use).
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.home_dir(user).join("Maildir")
    }

    /// Contents of the info log (logins, logouts with fetch counters).
    pub fn info_log(&self) -> String {
        fs::read_to_string(&self.info_log).unwrap_or_default()
    }

    /// Contents of the error log (warnings and errors).
    pub fn error_log(&self) -> String {
        fs::read_to_string(&self.error_log).unwrap_or_default()
    }

    /// Runs `doveadm -c <conf> ARGS...` and returns its stdout. Panics with
    /// stderr when doveadm fails. Global options go first, e.g.
    /// `&["-f", "tab", "mailbox", "status", ...]`.
    /// Deletes message `uid` of `mailbox` for `user` (doveadm expunge).
    pub fn expunge(&self, user: &str, mailbox: &str, uid: u32) {
        self.doveadm(&["expunge", "-u", user, "mailbox", mailbox, "uid", &uid.to_string()]);
    }

    pub fn doveadm(&self, args: &[&str]) -> String {
        let out = self.doveadm_output(args);
        if !out.status.success() {
            panic!(
                "doveadm {args:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Like [`Dovecot::doveadm`] but returns the raw output, success or not.
    pub fn doveadm_output(&self, args: &[&str]) -> Output {
        Command::new(&self.doveadm_bin)
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run doveadm")
    }

    /// Adds a user to the running server (the passwd-file is re-read by
    /// Dovecot on its next lookup) and creates its special-use folders.
    pub fn add_user(&self, login: &str, password: &str) {
        {
            let _guard = self.users_lock.lock().unwrap_or_else(|e| e.into_inner());
            let mut content = fs::read_to_string(&self.users_file).unwrap_or_default();
            let prefix = format!("{login}:");
            assert!(
                !content.lines().any(|l| l.starts_with(&prefix)),
                "user {login} already exists"
            );
            content.push_str(&self.user_line(login, password));
            // Replace atomically so the auth process never reads half a file.
            write_file(&self.users_file, content.as_bytes(), 0o644);
        }
        if self.child.is_some() {
            // Dovecot re-reads the passwd-file at most once per second: wait
            // until both the passdb and the userdb know the new user, so the
            // caller can log in right away.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let known = self.doveadm_output(&["auth", "test", login, password]).status.success()
                    && self.doveadm_output(&["user", login]).status.success();
                if known {
                    break;
                }
                assert!(Instant::now() < deadline, "Dovecot did not pick up new user {login}");
                std::thread::sleep(Duration::from_millis(50));
            }
            self.prepare_user(login);
        }
    }

    /// Creates a folder (and any missing ancestors, so every level is a real,
    /// selectable folder as most clients would leave it) and subscribes it.
    /// `folder` is UTF-8 with `/` as the hierarchy separator. Existing folders
    /// are left alone.
    pub fn create_folder(&self, user: &str, folder: &str) {
        if is_inbox(folder) {
            return;
        }
        let parts: Vec<&str> = folder.split('/').collect();
        assert!(
            parts.iter().all(|p| !p.is_empty()),
            "empty component in folder name {folder:?}"
        );
        // The Gmail layout's hidden namespace prefix is not a folder itself.
        let first = if folder.starts_with(GMAIL_HIDDEN) { 2 } else { 1 };
        for depth in first..=parts.len() {
            let vname = self.vname(&parts[..depth].join("/"));
            let out = self.doveadm_output(&["mailbox", "create", "-s", "-u", user, &vname]);
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr);
                if !err.contains("already exists") {
                    panic!("creating folder {vname:?} for {user} failed: {err}");
                }
            }
        }
    }

    /// Fast bulk load: writes the messages straight into the folder's Maildir
    /// (flags and keywords in the file name, mtime = `internal_date`), hands
    /// the files to the mail owner and lets Dovecot index them with
    /// `doveadm force-resync`. Creates the folder if needed. UIDs are assigned
    /// in slice order, after any existing messages.
    pub fn deliver(&self, user: &str, folder: &str, msgs: &[GenMessage]) {
        let backing = self.gmail_backing(folder);
        let folder = backing.as_deref().unwrap_or(folder);
        self.create_folder(user, folder);
        let vname = self.vname(folder);
        // Make sure the mailbox is initialised (INBOX's Maildir is created lazily).
        self.doveadm(&["mailbox", "status", "-u", user, "messages", &vname]);
        let dir = self.mailbox_path(user, &vname);
        let acc = accounts();
        for sub in ["cur", "new", "tmp"] {
            let d = dir.join(sub);
            if !d.exists() {
                fs::create_dir_all(&d).expect("create maildir subdir");
                set_mode(&d, 0o700);
                chown(&d, acc);
            }
        }

        // Keywords are stored as letters a..z mapped by dovecot-keywords.
        let mut keywords = read_keywords(&dir);
        let mut changed = false;
        for m in msgs {
            for f in m.flags.iter().filter(|f| !f.starts_with('\\')) {
                if !keywords.iter().any(|k| k.as_deref() == Some(f.as_str())) {
                    let slot = keywords
                        .iter()
                        .position(Option::is_none)
                        .unwrap_or_else(|| panic!("more than 26 keywords in {folder}"));
                    keywords[slot] = Some(f.clone());
                    changed = true;
                }
            }
        }
        if changed {
            let mut text = String::new();
            for (i, k) in keywords.iter().enumerate() {
                if let Some(k) = k {
                    text.push_str(&format!("{i} {k}\n"));
                }
            }
            let path = dir.join("dovecot-keywords");
            write_file(&path, text.as_bytes(), 0o600);
            chown(&path, acc);
        }

        // Name every file first: Dovecot numbers new files by the leading
        // number of their name, so a process-wide increasing sequence keeps
        // UIDs in slice order even though the files are written in parallel.
        let pid = std::process::id();
        let names: Vec<(String, String)> = msgs
            .iter()
            .map(|m| {
                let seq = DELIVERY_SEQ.fetch_add(1, Ordering::Relaxed);
                let base = format!(
                    "{}.M{}P{pid}Q{seq}.cutover-fixture,S={}",
                    1_600_000_000 + seq,
                    seq % 1_000_000,
                    m.raw.len()
                );
                (base, maildir_flags(&m.flags, &keywords))
            })
            .collect();
        let write = |m: &GenMessage, (base, flags): &(String, String)| {
            let tmp = dir.join("tmp").join(base);
            let mut file = fs::File::create(&tmp).expect("create maildir file");
            file.write_all(&m.raw).expect("write maildir file");
            let t = unix_to_system_time(m.internal_date);
            file.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
                .expect("set mtime");
            drop(file);
            chown(&tmp, acc);
            fs::rename(&tmp, dir.join("cur").join(format!("{base}:2,{flags}"))).expect("move into cur/");
        };
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4);
        let per_thread = msgs.len().div_ceil(threads).max(256);
        std::thread::scope(|scope| {
            for (chunk, chunk_names) in msgs.chunks(per_thread).zip(names.chunks(per_thread)) {
                scope.spawn(move || {
                    for (m, name) in chunk.iter().zip(chunk_names) {
                        write(m, name);
                    }
                });
            }
        });
        self.doveadm(&["force-resync", "-u", user, &vname]);
    }

    /// Every message of every folder of `user` as the server sees it, sorted
    /// by folder name then UID.
    ///
    /// Folder, UID and flags come from `doveadm fetch` (which also syncs the
    /// mailboxes, so messages APPENDed over IMAP are included); the bytes and
    /// the INTERNALDATE come from the Maildir file that `dovecot-uidlist` maps
    /// the UID to (Dovecot's INTERNALDATE is the file's mtime).
    pub fn messages(&self, user: &str) -> Vec<StoredMessage> {
        let out = self.doveadm(&["-f", "tab", "fetch", "-u", user, "mailbox uid flags", "all"]);
        let mut by_box: BTreeMap<String, Vec<(u32, Vec<String>)>> = BTreeMap::new();
        let mut rows = out.lines();
        if let Some(header) = rows.next() {
            assert_eq!(header.trim_end(), "mailbox\tuid\tflags", "doveadm fetch header");
        }
        for row in rows.filter(|l| !l.is_empty()) {
            let mut cols = row.split('\t');
            let (Some(vname), Some(uid), Some(flags)) = (cols.next(), cols.next(), cols.next()) else {
                panic!("unexpected doveadm fetch row {row:?}");
            };
            let uid: u32 = uid.trim().parse().expect("uid");
            let mut flags: Vec<String> = flags
                .split_whitespace()
                .filter(|f| *f != "\\Recent")
                .map(str::to_string)
                .collect();
            sort_flags(&mut flags);
            by_box.entry(vname.to_string()).or_default().push((uid, flags));
        }

        let mut result = Vec::new();
        for (vname, entries) in by_box {
            let dir = self.mailbox_path(user, &vname);
            let uid_to_key = read_uidlist(&dir);
            let mut key_to_file: HashMap<String, PathBuf> = HashMap::new();
            for sub in ["cur", "new"] {
                let Ok(rd) = fs::read_dir(dir.join(sub)) else {
                    continue;
                };
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    key_to_file.insert(maildir_key(&name).to_string(), e.path());
                }
            }
            let folder = self.folder_name(&vname);
            for (uid, flags) in entries {
                let key = uid_to_key
                    .get(&uid)
                    .unwrap_or_else(|| panic!("UID {uid} of {vname} is not in {}/dovecot-uidlist", dir.display()));
                let path = key_to_file
                    .get(key)
                    .unwrap_or_else(|| panic!("no Maildir file for UID {uid} ({key}) in {}", dir.display()));
                // Dovecot serves bare LFs as CRLF (`BODY[]`); report that form.
                let mut raw = fs::read(path).expect("read maildir file");
                if has_bare_lf(&raw) {
                    raw = to_crlf(&raw);
                }
                let meta = fs::metadata(path).expect("stat maildir file");
                let internal_date = system_time_to_unix(meta.modified().expect("mtime"));
                result.push(StoredMessage {
                    folder: folder.clone(),
                    uid,
                    raw,
                    flags,
                    internal_date,
                });
            }
        }
        result.sort_by(|a, b| a.folder.cmp(&b.folder).then(a.uid.cmp(&b.uid)));
        result
    }

    /// STATUS of every existing folder of `user`, INBOX first then by name.
    /// (Parents that were never created themselves, e.g. `A` after a raw
    /// `doveadm mailbox create A/B`, are not listed: they are `\NonExistent`.)
    pub fn folders(&self, user: &str) -> Vec<FolderStatus> {
        let status = |mask: &str| {
            self.doveadm(&[
                "-f",
                "tab",
                "mailbox",
                "status",
                "-u",
                user,
                "messages uidvalidity uidnext",
                mask,
            ])
        };
        let out = if self.prefix.is_empty() {
            status("*")
        } else {
            // Under the `INBOX.` prefix `*` matches nothing: INBOX, then its
            // children (same columns; the second header dropped).
            let mut out = status("INBOX");
            for row in status(&format!("{}*", self.prefix)).lines().skip(1) {
                out.push_str(row);
                out.push('\n');
            }
            out
        };
        let mut rows = out.lines();
        let header: Vec<&str> = rows.next().unwrap_or_default().split('\t').collect();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| h.trim() == name)
                .unwrap_or_else(|| panic!("no {name} column in doveadm status output {out:?}"))
        };
        let (c_box, c_msgs, c_uv, c_next) = (col("mailbox"), col("messages"), col("uidvalidity"), col("uidnext"));
        let mut result: Vec<FolderStatus> = rows
            .filter(|l| !l.is_empty())
            .map(|row| {
                let cols: Vec<&str> = row.split('\t').collect();
                let num = |c: usize| -> u32 {
                    cols.get(c)
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or_else(|| panic!("bad doveadm status row {row:?}"))
                };
                FolderStatus {
                    name: self.folder_name(cols[c_box]),
                    messages: num(c_msgs),
                    uidvalidity: num(c_uv),
                    uidnext: num(c_next),
                }
            })
            .collect();
        result.sort_by(|a, b| (!is_inbox(&a.name), &a.name).cmp(&(!is_inbox(&b.name), &b.name)));
        result
    }

    /// Sets a folder's UIDVALIDITY (`doveadm mailbox update --uid-validity`).
    ///
    /// Dovecot keeps the existing UIDs and UIDNEXT; only the UIDVALIDITY value
    /// changes. That is exactly what a client must treat as "every UID I stored
    /// for this folder is void": a correct resync re-identifies the messages
    /// (e.g. by Message-ID) instead of trusting the old UID map.
    pub fn set_uid_validity(&self, user: &str, folder: &str, value: u32) {
        let vname = self.vname(folder);
        self.doveadm(&[
            "mailbox",
            "update",
            "-u",
            user,
            "--uid-validity",
            &value.to_string(),
            &vname,
        ]);
    }

    /// Sums the counters of every *finished* IMAP session so far.
    ///
    /// Flush delay: a session's line is written when its `imap` process ends,
    /// i.e. shortly *after* the client saw `* BYE`/the tagged LOGOUT reply (or
    /// closed the socket), and goes through Dovecot's log process. A test that
    /// just finished a session should poll with [`Dovecot::wait_for_sessions`].
    /// Sessions still open are not counted at all.
    pub fn session_stats(&self) -> SessionStats {
        let mut s = SessionStats::default();
        // Only complete lines: the log process may be mid-write.
        let log = self.info_log();
        for line in log.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            // `imap(user)<pid><session>: Info: Disconnected: Logged out in=.. body_count=..`
            if !line.contains(" imap(") || !line.contains(" body_count=") {
                continue;
            }
            s.sessions += 1;
            for tok in line.split_whitespace() {
                let Some((k, v)) = tok.split_once('=') else {
                    continue;
                };
                let Ok(v) = v.parse::<u64>() else { continue };
                match k {
                    "body_count" => s.body_count += v,
                    "body_bytes" => s.body_bytes += v,
                    "hdr_count" => s.hdr_count += v,
                    "hdr_bytes" => s.hdr_bytes += v,
                    "in" => s.in_bytes += v,
                    "out" => s.out_bytes += v,
                    "expunged" => s.expunged += v,
                    _ => {}
                }
            }
        }
        s
    }

    /// Polls [`Dovecot::session_stats`] until at least `sessions` sessions have
    /// finished; panics after `timeout`.
    pub fn wait_for_sessions(&self, sessions: u64, timeout: Duration) -> SessionStats {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.session_stats();
            if s.sessions >= sessions {
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "only {} of {sessions} IMAP sessions logged out within {timeout:?}; info log:\n{}",
                    s.sessions,
                    self.info_log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (SIGTERM to the `dovecot -F` child, SIGKILL after a
    /// timeout) and waits until its port no longer accepts connections. Data
    /// is kept. Idempotent; never panics.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        // Login processes exit on their own once the master is gone; wait for
        // them so a restart can bind the same ports.
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline && port_accepts(self.port) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops and starts again with the same config, data and ports.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(log) if log.contains("Address already in use") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(log) => panic!("dovecot did not restart: {log}"),
            }
        }
    }

    // ----- internals -------------------------------------------------------

    fn user_line(&self, login: &str, password: &str) -> String {
        check_credential(login, password);
        let acc = accounts();
        let home = self.home_dir(login);
        fs::create_dir_all(&home).expect("create home");
        set_mode(&home, 0o700);
        chown(&home, acc);
        format!(
            "{login}:{{PLAIN}}{password}:{}:{}::{}::\n",
            acc.mail_uid,
            acc.mail_gid,
            home.display()
        )
    }

    fn home_dir(&self, login: &str) -> PathBuf {
        let safe: String = login
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "@._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.home_root.join(safe)
    }

    /// In the Gmail layout, the hidden real folder behind a `[Gmail]/` name
    /// (`GmailSys/Archived` for All Mail); `None` for other folders.
    fn gmail_backing(&self, folder: &str) -> Option<String> {
        let layout = self.gmail.as_ref()?;
        let name = folder.strip_prefix(GMAIL_PREFIX)?;
        let (_, _, backing) = layout.folders().into_iter().find(|(n, _, _)| *n == name)?;
        Some(format!("{GMAIL_HIDDEN}{}", backing.unwrap_or("Archived")))
    }

    /// Writes the Gmail layout's virtual folder definitions into the user's
    /// home and creates their backing folders.
    fn prepare_gmail(&self, login: &str, layout: &GmailLayout) {
        let acc = accounts();
        let vdir = self.home_dir(login).join("virtual");
        fs::create_dir_all(&vdir).expect("create virtual dir");
        chown(&vdir, acc);
        let mut all = String::from("INBOX\n*\n");
        for (name, _, backing) in layout.folders() {
            let backing = format!("{GMAIL_HIDDEN}{}", backing.unwrap_or("Archived"));
            self.create_folder(login, &backing);
            if !backing.ends_with("Spam") && !backing.ends_with("Trash") {
                all.push_str(&format!("{backing}\n"));
            }
            if name != layout.all {
                let dir = vdir.join(name);
                fs::create_dir_all(&dir).expect("create virtual folder dir");
                write_file(
                    &dir.join("dovecot-virtual"),
                    format!("{backing}\n  all\n").as_bytes(),
                    0o644,
                );
                chown(&dir, acc);
            }
        }
        all.push_str("  all\n");
        let dir = vdir.join(&layout.all);
        fs::create_dir_all(&dir).expect("create virtual folder dir");
        write_file(&dir.join("dovecot-virtual"), all.as_bytes(), 0o644);
        chown(&dir, acc);
    }

    /// Opens the special-use folders once so they exist on disk.
    fn prepare_user(&self, login: &str) {
        if let Some(layout) = self.gmail.clone() {
            self.prepare_gmail(login, &layout);
            return;
        }
        // One mailbox per call: several names in one `mailbox status` are
        // ANDed into a search that matches nothing.
        for (name, _) in SPECIAL_USE {
            self.doveadm(&["mailbox", "status", "-u", login, "messages", &self.vname(name)]);
        }
    }

    /// Fixture folder name (UTF-8, `/`) -> server name (UTF-8, its separator).
    fn vname(&self, folder: &str) -> String {
        if is_inbox(folder) {
            return "INBOX".to_string();
        }
        if self.separator == '/' {
            return folder.to_string();
        }
        let name = folder
            .split('/')
            .map(|c| c.replace('.', "\\2e"))
            .collect::<Vec<_>>()
            .join(".");
        format!("{}{name}", self.prefix)
    }

    /// Server name -> fixture folder name.
    fn folder_name(&self, vname: &str) -> String {
        if is_inbox(vname) {
            return "INBOX".to_string();
        }
        if self.separator == '/' {
            return vname.to_string();
        }
        let vname = vname.strip_prefix(self.prefix.as_str()).unwrap_or(vname);
        vname
            .split('.')
            .map(|c| c.replace("\\2e", "."))
            .collect::<Vec<_>>()
            .join("/")
    }

    fn mailbox_path(&self, user: &str, vname: &str) -> PathBuf {
        let out = self.doveadm(&["mailbox", "path", "-u", user, vname]);
        PathBuf::from(out.trim_end_matches('\n'))
    }

    fn launch_on_fresh_ports(&mut self) {
        let mut last = String::new();
        for _ in 0..8 {
            self.port = reserve_port();
            self.imaps_port = self.tls.then(reserve_port);
            write_file(&self.conf, self.render_config().as_bytes(), 0o644);
            match self.spawn() {
                Ok(()) => return,
                // Another process grabbed a port between our probe and
                // Dovecot's bind: try other ports.
                Err(log) if log.contains("Address already in use") => last = log,
                Err(log) => panic!("dovecot did not start: {log}"),
            }
        }
        panic!("dovecot did not start (ports kept being taken): {last}");
    }

    /// Spawns `dovecot -F` and waits for the greeting. Err carries the logs.
    fn spawn(&mut self) -> Result<(), String> {
        let err_offset = fs::metadata(&self.error_log).map(|m| m.len()).unwrap_or(0);
        let stderr = fs::File::create(&self.stderr_log).expect("create stderr log");
        let child = Command::new(&self.dovecot_bin)
            .arg("-F")
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.dovecot_bin.display()));
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        let logs = |me: &Self| {
            let errors = fs::read(&me.error_log).unwrap_or_default();
            let new = &errors[(err_offset as usize).min(errors.len())..];
            format!(
                "(instance dir {})\n--- stderr ---\n{}\n--- error log ---\n{}",
                me.root.path().display(),
                fs::read_to_string(&me.stderr_log).unwrap_or_default(),
                String::from_utf8_lossy(new)
            )
        };
        loop {
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                return Err(format!("dovecot exited with {status} {}", logs(self)));
            }
            if greets(self.port) && self.imaps_port.is_none_or(port_accepts) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = logs(self);
                self.stop();
                return Err(format!("dovecot did not greet within {START_TIMEOUT:?} {log}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn render_config(&self) -> String {
        let acc = accounts();
        let r = self.root.path().display().to_string();
        let mut c = String::new();
        let mut line = |s: &str| {
            c.push_str(s);
            c.push('\n');
        };
        line("# Generated by cutover's test fixture (tests/support/dovecot.rs).");
        line(&format!("instance_name = {}", self.instance_name));
        line(&format!("base_dir = {r}/run"));
        line(&format!("state_dir = {r}/state"));
        line(&format!("log_path = {r}/log/error.log"));
        line(&format!("info_log_path = {r}/log/info.log"));
        line("protocols = imap");
        line("listen = 127.0.0.1");
        line("");
        line("# Plaintext logins on the loopback, master users as user*admin.");
        line("disable_plaintext_auth = no");
        if self.oauth2.is_some() {
            line("auth_mechanisms = plain login xoauth2 oauthbearer");
        } else {
            line("auth_mechanisms = plain login");
        }
        line("auth_master_user_separator = *");
        line("auth_failure_delay = 0");
        line("");
        line(&format!("default_login_user = {}", acc.login_user));
        line(&format!("default_internal_user = {}", acc.internal_user));
        if let Some(group) = &acc.internal_group {
            line(&format!("default_internal_group = {group}"));
        }
        line(&format!("mail_uid = {}", acc.mail_uid));
        line(&format!("mail_gid = {}", acc.mail_gid));
        line(&format!("first_valid_uid = {}", acc.mail_uid));
        line(&format!("last_valid_uid = {}", acc.mail_uid));
        line(&format!("first_valid_gid = {}", acc.mail_gid));
        line(&format!("last_valid_gid = {}", acc.mail_gid));
        line("");
        line("mail_location = maildir:~/Maildir");
        line("# Benchmarks measure the client, not the disk.");
        line("mail_fsync = never");
        line("# Store APPENDed mail with CRLF, i.e. exactly as IMAP clients receive it.");
        line("mail_save_crlf = yes");
        if self.gmail.is_some() {
            line("mail_plugins = $mail_plugins listescape virtual");
        } else {
            line("mail_plugins = $mail_plugins listescape");
        }
        line("plugin {");
        line("  listescape_char = \"\\\\\"");
        line("}");
        line(
            "imap_logout_format = in=%i out=%o deleted=%{deleted} expunged=%{expunged} trashed=%{trashed} hdr_count=%{fetch_hdr_count} hdr_bytes=%{fetch_hdr_bytes} body_count=%{fetch_body_count} body_bytes=%{fetch_body_bytes}",
        );
        line("");
        line("# Many parallel connections per user (default 10) and generous limits.");
        line("protocol imap {");
        line(&format!(
            "  mail_max_userip_connections = {}",
            self.max_userip_connections
        ));
        if self.compress {
            line("  mail_plugins = $mail_plugins imap_zlib");
        }
        line("}");
        line("default_process_limit = 1000");
        line("default_client_limit = 10000");
        line("default_vsz_limit = 1G");
        line("");
        if self.tls {
            line(&format!(
                "ssl = yes\nssl_cert = <{r}/tls/cert.pem\nssl_key = <{r}/tls/key.pem"
            ));
            if Path::new("/usr/share/dovecot/dh.pem").exists() {
                line("ssl_dh = </usr/share/dovecot/dh.pem");
            }
            line("ssl_min_protocol = TLSv1.2");
        } else {
            line("ssl = no");
        }
        line("");
        if let Some(url) = &self.oauth2 {
            let ext = format!(
                "introspection_mode = post\nintrospection_url = {url}\nusername_attribute = username\nactive_attribute = active\nactive_value = true\n"
            );
            write_file(&self.root.path().join("oauth2.conf.ext"), ext.as_bytes(), 0o644);
            line(&format!(
                "passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {r}/oauth2.conf.ext\n}}"
            ));
        }
        line(&format!(
            "passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {r}/masters\n  master = yes\n  result_success = continue\n}}"
        ));
        line(&format!(
            "passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {r}/users\n}}"
        ));
        line(&format!(
            "userdb {{\n  driver = passwd-file\n  args = username_format=%u {r}/users\n}}"
        ));
        line("");
        line("namespace inbox {");
        line("  inbox = yes");
        if self.prefix.is_empty() {
            line("  prefix =");
        } else {
            line(&format!("  prefix = {}", self.prefix));
        }
        line(&format!("  separator = {}", self.separator));
        if let Some(layout) = &self.gmail {
            line("}");
            line("# Gmail layout: [Gmail]/ folders are virtual views over hidden real ones.");
            line("namespace gmailsys {");
            line(&format!("  prefix = {GMAIL_HIDDEN}"));
            line("  separator = /");
            line("  hidden = yes");
            line("  list = no");
            line("  location = maildir:~/GmailSys");
            line("}");
            line("namespace gmail {");
            line(&format!("  prefix = {GMAIL_PREFIX}"));
            line("  separator = /");
            line("  location = virtual:~/virtual");
            for (name, flag, _) in layout.folders() {
                line(&format!("  mailbox \"{name}\" {{\n    special_use = {}\n  }}", flag));
            }
            line("}");
        } else {
            for (name, flag) in SPECIAL_USE {
                line(&format!(
                    "  mailbox {name} {{\n    special_use = {flag}\n    auto = subscribe\n  }}"
                ));
            }
            line("}");
        }
        line("");
        line("service imap-login {");
        line("  inet_listener imap {");
        line("    address = 127.0.0.1");
        line(&format!("    port = {}", self.port));
        line("  }");
        line("  inet_listener imaps {");
        line("    address = 127.0.0.1");
        line(&format!("    port = {}", self.imaps_port.unwrap_or(0)));
        line("    ssl = yes");
        line("  }");
        line("  # One long-lived login process serves many clients.");
        line("  service_count = 0");
        line("  process_min_avail = 1");
        line("  client_limit = 1000");
        if !acc.root {
            line("  chroot =");
        }
        line("}");
        line("service imap {");
        line(&format!("  process_limit = {}", self.process_limit));
        line("}");
        line("# No auth penalty: tests that try wrong passwords must stay fast (the");
        line("# auth process cannot reach the penalty socket, which disables it).");
        line("service anvil {");
        line("  unix_listener anvil-auth-penalty {");
        line("    mode = 0");
        line("  }");
        if !acc.root {
            line("  chroot =");
        }
        line("}");
        if !acc.root {
            line("service auth-worker {\n  user = $default_internal_user\n}");
        }
        c
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
        release_port(self.port);
        if let Some(p) = self.imaps_port {
            release_port(p);
        }
    }
}

// ----- helpers -------------------------------------------------------------

static INSTANCE_SEQ: AtomicU64 = AtomicU64::new(0);
static DELIVERY_SEQ: AtomicU64 = AtomicU64::new(0);
static PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

fn is_inbox(name: &str) -> bool {
    name.eq_ignore_ascii_case("INBOX")
}

/// A free loopback port not handed to another instance of this process.
fn reserve_port() -> u16 {
    let mut guard = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let used = guard.get_or_insert_with(HashSet::new);
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local addr").port();
        if used.insert(port) {
            return port;
        }
    }
}

fn release_port(port: u16) {
    if let Some(used) = PORTS.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        used.remove(&port);
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn port_accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&addr(port), Duration::from_millis(200)).is_ok()
}

/// True when the port answers with an IMAP greeting.
fn greets(port: u16) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&addr(port), Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&stream);
    let mut greeting = String::new();
    let ok = reader.read_line(&mut greeting).is_ok() && greeting.starts_with("* OK");
    let _ = (&stream).write_all(b"x LOGOUT\r\n");
    let _ = stream.shutdown(Shutdown::Both);
    ok
}

fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Unix socket paths are limited to 108 bytes: keep the instance dir short.
fn short_temp_dir() -> PathBuf {
    let t = std::env::temp_dir();
    if t.as_os_str().len() <= 40 {
        t
    } else {
        PathBuf::from("/tmp")
    }
}

fn check_credential(login: &str, password: &str) {
    for s in [login, password] {
        assert!(
            !s.is_empty() && !s.contains([':', '\n', '\r', '\t', '*']),
            "logins/passwords must be non-empty without ':', '*' or control characters: {s:?}"
        );
    }
}

fn write_file(path: &Path, data: &[u8], mode: u32) {
    let tmp = path.with_extension("tmp~");
    fs::write(&tmp, data).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    set_mode(&tmp, mode);
    fs::rename(&tmp, path).unwrap_or_else(|e| panic!("rename to {}: {e}", path.display()));
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

fn chown(path: &Path, acc: &Accounts) {
    if acc.root {
        std::os::unix::fs::chown(path, Some(acc.mail_uid), Some(acc.mail_gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }
}

fn unix_to_system_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

fn system_time_to_unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs_f64().ceil() as i64),
    }
}

fn has_bare_lf(raw: &[u8]) -> bool {
    let mut prev = 0u8;
    raw.iter().any(|&b| {
        let bare = b == b'\n' && prev != b'\r';
        prev = b;
        bare
    })
}

/// Maildir info letters for IMAP flags: system flags as capitals, keywords
/// as `a + index` in dovecot-keywords; sorted as Dovecot writes them.
fn maildir_flags(flags: &[String], keywords: &[Option<String>]) -> String {
    let mut letters: Vec<char> = flags
        .iter()
        .map(|f| match f.as_str() {
            "\\Draft" => 'D',
            "\\Flagged" => 'F',
            "\\Answered" => 'R',
            "\\Seen" => 'S',
            "\\Deleted" => 'T',
            s if s.starts_with('\\') => panic!("unsupported system flag {s}"),
            kw => {
                let i = keywords
                    .iter()
                    .position(|k| k.as_deref() == Some(kw))
                    .expect("keyword registered");
                (b'a' + i as u8) as char
            }
        })
        .collect();
    letters.sort_unstable();
    letters.dedup();
    letters.into_iter().collect()
}

/// The part of a Maildir file name that identifies the message: everything
/// before the first `,` (size fields) or `:` (flags).
fn maildir_key(name: &str) -> &str {
    name.split([',', ':']).next().unwrap_or(name)
}

/// `dovecot-uidlist`: header line, then `UID [ext fields] :filename`.
fn read_uidlist(dir: &Path) -> HashMap<u32, String> {
    let path = dir.join("dovecot-uidlist");
    let text = fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let (head, name) = l.split_once(" :")?;
            let uid = head.split_whitespace().next()?.parse().ok()?;
            Some((uid, maildir_key(name).to_string()))
        })
        .collect()
}

/// `dovecot-keywords`: lines `INDEX NAME`; index i is letter `a + i`.
fn read_keywords(dir: &Path) -> Vec<Option<String>> {
    let mut slots = vec![None; 26];
    let text = fs::read_to_string(dir.join("dovecot-keywords")).unwrap_or_default();
    for l in text.lines() {
        if let Some((i, name)) = l.split_once(' ')
            && let Ok(i) = i.parse::<usize>()
            && i < 26
        {
            slots[i] = Some(name.to_string());
        }
    }
    slots
}

/// Which system users the server runs as.
struct Accounts {
    root: bool,
    login_user: String,
    internal_user: String,
    /// Only set when not root (the default, `dovecot`, needs root to chown).
    internal_group: Option<String>,
    mail_uid: u32,
    mail_gid: u32,
}

fn accounts() -> &'static Accounts {
    static ACC: OnceLock<Accounts> = OnceLock::new();
    ACC.get_or_init(|| {
        let uid: u32 = id(&["-u"]).parse().expect("id -u");
        if uid == 0 {
            // Debian's package creates dovecot and dovenull; vmail is ours.
            ensure_system_user("dovecot");
            ensure_system_user("dovenull");
            ensure_system_user("vmail");
            Accounts {
                root: true,
                login_user: "dovenull".into(),
                internal_user: "dovecot".into(),
                internal_group: None,
                mail_uid: id(&["-u", "vmail"]).parse().expect("vmail uid"),
                mail_gid: id(&["-g", "vmail"]).parse().expect("vmail gid"),
            }
        } else {
            let me = id(&["-un"]);
            Accounts {
                root: false,
                login_user: me.clone(),
                internal_user: me,
                internal_group: Some(id(&["-gn"])),
                mail_uid: uid,
                mail_gid: id(&["-g"]).parse().expect("id -g"),
            }
        }
    })
}

fn id(args: &[&str]) -> String {
    let out = Command::new("id").args(args).output().expect("run id");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn ensure_system_user(name: &str) {
    let exists = || Command::new("id").arg(name).output().is_ok_and(|o| o.status.success());
    if exists() {
        return;
    }
    let out = Command::new("useradd")
        .args(["--system", "--no-create-home", "--user-group"])
        .args(["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name])
        .output();
    // Another process may have created it concurrently: check again.
    if !exists() {
        panic!("cannot create system user {name} for the Dovecot fixture: {out:?}");
    }
}

/// A per-instance CA and a server certificate it issued for 127.0.0.1 and
/// localhost (clients such as rustls reject a self-signed CA:TRUE leaf, so
/// the chain is CA -> leaf).
fn make_certificates(dir: &Path) {
    let openssl = find_binary("openssl").unwrap_or_else(|| panic!("openssl not installed: run scripts/install-deps"));
    let run = |args: &[&str]| {
        let out = Command::new(&openssl)
            .current_dir(dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "3650",
        "-subj",
        "/CN=cutover test fixture CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend(["-keyout", "key.pem", "-out", "server.csr", "-subj", "/CN=localhost"]);
    run(&csr);
    fs::write(
        dir.join("server.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write server.ext");
    let serial = format!("0x{:016x}", fastrand::u64(1..));
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-set_serial",
        &serial,
        "-days",
        "3650",
        "-extfile",
        "server.ext",
        "-out",
        "cert.pem",
    ]);
    for f in ["ca.pem", "cert.pem"] {
        set_mode(&dir.join(f), 0o644);
    }
}
