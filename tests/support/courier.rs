//! Real Courier-IMAP 5.0 instances as test fixtures.
//!
//! Why: Courier (which hosting panels shipped for years) puts
//! every folder under `INBOX.` with `.` as the separator:
//! `NAMESPACE (("INBOX." ".")) NIL (("#shared." ".")("shared." "."))`, and
//! answers `CREATE Sent` with `NO Invalid mailbox name`. Its UID bookkeeping
//! differs from Dovecot's too (below). A migration tool must meet it as it is.
//!
//! The binaries are Debian 12's `courier-imap` / `courier-base`, downloaded
//! and unpacked (never installed: they conflict with dovecot-imapd and pull
//! in an MTA) by `scripts/install-deps` under `/var/cache/cutover-test/courier`
//! (`$CUTOVER_TEST_SERVERS`); the auth daemon and userdb tools
//! (`courier-authdaemon`, `courier-authlib-userdb`) are installed normally.
//!
//! Isolation: Courier's auth library has fixed paths compiled in
//! (`/etc/courier/authdaemonrc`, `/etc/courier/userdb.dat`,
//! `/run/courier/authdaemon/socket`). Each instance therefore runs in its
//! own mount and PID namespace (`unshare`), where the instance's `etc/` and
//! `run/` are bind-mounted over `/etc/courier` and `/run/courier`; the
//! system's `/etc/courier` is never touched (an empty `/run/courier` is
//! created if missing, as a mount point). Inside: `authdaemond` with
//! `authuserdb` only, and `couriertcpd -address=127.0.0.1 -maxprocs=40
//! -maxperip=20 PORT imaplogin imapd Maildir` with the environment of
//! Debian's `/etc/courier/imapd` (its `ulimit -v` included), except that
//! `IMAP_EMPTYTRASH=Trash:7` is off (a test's old INTERNALDATEs would be
//! purged from Trash at logout) and there is no STARTTLS (no certificate).
//! Stopping SIGKILLs the namespace's first process by PID, which ends every
//! process of the instance. Needs root.
//!
//! Users: `userdb` + `makeuserdb` on the instance's `etc/userdb` (password
//! hash by `userdbpw -md5`), mail owned by the `vmail` system user (created on
//! first use, as the Dovecot fixture does), Maildir at `home/USER/Maildir`.
//!
//! What the fixture's API does:
//! - Folder names are the Dovecot fixture's: UTF-8, `/` separated, `INBOX`,
//!   relative to the personal namespace: `Archive/2024` is `INBOX.Archive.2024`
//!   on the wire and the Maildir++ folder `.Archive.2024` on disk, in UTF-8
//!   (`.Reçus`: Courier 5 stores names as UTF-8, not modified UTF-7). A
//!   component may not contain `.`.
//! - [`Courier::deliver`] APPENDs over IMAP as the user (Courier has no
//!   LITERAL+: synchronising literals), which is also what writes the
//!   folder's `courierimapuiddb`, so UIDs and UIDVALIDITY stay put.
//! - [`Courier::deliver_maildir`] writes files straight into the Maildir, as
//!   an MDA would. Until some client SELECTs that folder read-write,
//!   Courier has no `courierimapuiddb` for it and makes up a fresh
//!   UIDVALIDITY (time-based) and UIDs in every session: EXAMINE and STATUS
//!   do not save them.
//! - [`Courier::messages`] / [`Courier::folders`] read over IMAP with EXAMINE
//!   and STATUS (read-only: nothing on the server changes).
//! - The fixture's own IMAP sessions connect from 127.0.0.2;
//!   [`Courier::session_stats`] leaves them out, so the counters are those of
//!   the code under test. Session lines (`LOGOUT, user=…, headers=N, body=N,
//!   rcvd=…, sent=…`) are in [`Courier::session_log`]; their numbers are
//!   bytes, not fetch counts.
//!
//! What a client meets (5.0.13): `IMAP4rev1 UIDPLUS CHILDREN NAMESPACE
//! THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE ACL ACL2=UNION
//! ENABLE UTF8=ACCEPT`: no LITERAL+, MOVE, SPECIAL-USE, COMPRESS or
//! CONDSTORE, and no AUTH= mechanisms without TLS (LOGIN works). A quoted
//! raw UTF-8 mailbox name is refused (`NO Error in IMAP command received by
//! server.`): names travel in modified UTF-7. UIDVALIDITY is the creation
//! time minus 10^9 seconds: folders created in the same second share it.
//!
//! Set `CUTOVER_FIXTURE_KEEP=1` to keep an instance's directory.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::dovecot::{FolderStatus, SessionStats, StoredMessage};
use super::imap::{FolderNaming, ImapConn};
use super::mailgen::{GenMessage, sort_flags};
use super::servers;

/// What Courier answers to NAMESPACE (the whole untagged line).
pub const NAMESPACE: &str = r##"* NAMESPACE (("INBOX." ".")) NIL (("#shared." ".")("shared." "."))"##;

/// Source address of the fixture's own IMAP sessions.
const FIXTURE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What to start. Use `..Default::default()` for the rest.
#[derive(Debug, Clone, Default)]
pub struct CourierOptions {
    /// Initial users: (login, password). More with [`Courier::add_user`].
    pub users: Vec<(String, String)>,
    /// Keep Debian's `IMAP_EMPTYTRASH=Trash:7` (messages older than 7 days
    /// are purged from `INBOX.Trash` at logout). Off by default.
    pub empty_trash: bool,
}

/// A running (or stopped) isolated Courier-IMAP instance. Dropping it stops
/// the server and deletes its directory.
pub struct Courier {
    pkg: PathBuf,
    port: u16,
    empty_trash: bool,
    child: Option<Child>,
    /// login -> password (the fixture logs in as the user to read and write).
    users: Mutex<HashMap<String, String>>,
    naming: FolderNaming,
    mail_owner: (u32, u32),
    /// Declared last so the directory is removed after the server stopped.
    root: tempfile::TempDir,
}

static DELIVERY_SEQ: AtomicU64 = AtomicU64::new(0);

impl Courier {
    /// Starts an instance on a free loopback port and waits until it greets
    /// and its auth daemon listens.
    pub fn start(opts: CourierOptions) -> Courier {
        servers::require_root("Courier");
        let pkg = servers::unpacked("courier");
        for bin in ["/usr/lib/courier/courier-authlib/authdaemond", "/usr/sbin/makeuserdb"] {
            assert!(
                Path::new(bin).exists(),
                "{bin} missing: run scripts/install-deps (courier-authdaemon, courier-authlib-userdb)"
            );
        }
        servers::ensure_system_user("vmail", None);
        let mail_owner = servers::ids("vmail");
        let root = tempfile::Builder::new()
            .prefix("cutover-courier-")
            .tempdir_in(servers::short_temp_dir())
            .expect("create fixture temp dir");
        let r = root.path();
        let me = (0, 0);
        servers::make_dir(r, me, 0o755);
        servers::make_dir(&r.join("etc"), me, 0o755);
        servers::make_dir(&r.join("run/authdaemon"), me, 0o750);
        servers::make_dir(&r.join("log"), me, 0o755);
        servers::make_dir(&r.join("home"), me, 0o755);
        // authuserdb only; the rest as Debian's authdaemonrc.
        write(
            &r.join("etc/authdaemonrc"),
            "# Generated by cutover's test fixture (tests/support/courier.rs).\nauthmodulelist=\"authuserdb\"\nauthmodulelistorig=\"authuserdb\"\ndaemons=5\nauthdaemonvar=/run/courier/authdaemon\nDEBUG_LOGIN=0\nDEFAULTOPTIONS=\"\"\nLOGGEROPTS=\"\"\n",
            0o644,
        );
        // Debian's imapd settings, read by the start script.
        let imapd = fs::read_to_string(pkg.join("etc/courier/imapd")).expect("read Debian's /etc/courier/imapd");
        write(&r.join("etc/imapd"), &imapd, 0o644);
        write(&r.join("etc/userdb"), "", 0o600);

        let mut courier = Courier {
            pkg,
            port: 0,
            empty_trash: opts.empty_trash,
            child: None,
            users: Mutex::new(HashMap::new()),
            naming: FolderNaming {
                prefix: "INBOX.".into(),
                separator: '.',
                others: vec!["#shared.".into(), "shared.".into()],
            },
            mail_owner,
            root,
        };
        if servers::keep_dirs() {
            courier.root.disable_cleanup(true);
        }
        for (login, password) in &opts.users {
            courier.write_user(login, password);
        }
        courier.launch();
        courier
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `.`, the only hierarchy separator Courier has.
    pub fn separator(&self) -> char {
        '.'
    }

    /// `INBOX.`: every folder of a user is a child of INBOX.
    pub fn prefix(&self) -> &str {
        &self.naming.prefix
    }

    /// The server's name of a fixture folder: `Archive/2024` ->
    /// `INBOX.Archive.2024`.
    pub fn mailbox_name(&self, folder: &str) -> String {
        self.naming.to_server(folder)
    }

    /// The instance's directory (etc/, run/, log/, home/).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// A user's Maildir.
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.home_dir(user).join("Maildir")
    }

    /// The directory of a folder inside the user's Maildir (`INBOX` is the
    /// Maildir itself, `A/B` is `.A.B`, names in UTF-8).
    pub fn folder_dir(&self, user: &str, folder: &str) -> PathBuf {
        if folder.eq_ignore_ascii_case("INBOX") {
            return self.maildir(user);
        }
        let name = self.mailbox_name(folder);
        let rest = name.strip_prefix("INBOX").expect("INBOX. prefix");
        self.maildir(user).join(rest)
    }

    /// The session log (`-stderr=` of couriertcpd): `LOGIN, user=…` and
    /// `LOGOUT, user=…, ip=[…], port=[…], headers=N, body=N, rcvd=N, sent=N`.
    pub fn session_log(&self) -> String {
        fs::read_to_string(self.root.path().join("log/imapd.log")).unwrap_or_default()
    }

    /// Sums the finished sessions of the session log, except the fixture's
    /// own (from 127.0.0.2). Courier logs *bytes*, not fetch counts:
    /// `body=` is the size of what `BODY[...]` / `BODY.PEEK[...]` / `RFC822`
    /// fetches sent, measured in the stored form (LF line ends: a CRLF
    /// message of L lines counts L bytes less than it is on the wire;
    /// `BODY.PEEK[HEADER]` counts here too), `headers=` the same for header
    /// fetches, `rcvd=` / `sent=` the wire bytes. They fill `body_bytes`,
    /// `hdr_bytes`, `in_bytes` and `out_bytes`; the counts stay 0. Sessions
    /// the client ends by dropping the connection count too.
    pub fn session_stats(&self) -> SessionStats {
        let mut s = SessionStats::default();
        let log = self.session_log();
        for line in log.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            if !line.contains(" user=") || !line.contains(" body=") || line.contains(&format!("{FIXTURE_IP}]")) {
                continue;
            }
            s.sessions += 1;
            for field in line.trim_end().split(", ") {
                let Some((k, v)) = field.split_once('=') else {
                    continue;
                };
                let Ok(v) = v.parse::<u64>() else { continue };
                match k {
                    "headers" => s.hdr_bytes += v,
                    "body" => s.body_bytes += v,
                    "rcvd" => s.in_bytes += v,
                    "sent" => s.out_bytes += v,
                    _ => {}
                }
            }
        }
        s
    }

    /// Polls [`Courier::session_stats`] until at least `sessions` sessions
    /// have finished; panics after `timeout`.
    pub fn wait_for_sessions(&self, sessions: u64, timeout: Duration) -> SessionStats {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.session_stats();
            if s.sessions >= sessions {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {sessions} IMAP sessions ended within {timeout:?}; log:\n{}",
                s.sessions,
                self.session_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Adds a user (userdb + makeuserdb; the auth daemon sees it at once)
    /// with an empty Maildir.
    pub fn add_user(&self, login: &str, password: &str) {
        self.write_user(login, password);
    }

    /// Creates a folder and its missing ancestors over IMAP (CREATE +
    /// SUBSCRIBE), as the user.
    pub fn create_folder(&self, user: &str, folder: &str) {
        let mut c = self.login(user);
        self.ensure_folder(&mut c, folder);
        c.logout();
    }

    /// APPENDs the messages in slice order (flags, keywords, INTERNALDATE)
    /// as the user, creating the folder first if needed.
    pub fn deliver(&self, user: &str, folder: &str, msgs: &[GenMessage]) {
        let mut c = self.login(user);
        self.ensure_folder(&mut c, folder);
        let mailbox = self.mailbox_name(folder);
        for (i, m) in msgs.iter().enumerate() {
            let r = c.append_sync(&mailbox, &m.flags, Some(m.internal_date), &m.raw);
            assert!(
                r.is_ok(),
                "APPEND #{i} to {mailbox} for {user}: {} {}",
                r.status,
                r.text
            );
        }
        c.logout();
    }

    /// Writes the messages straight into the folder's Maildir (`cur/`, flags
    /// as info letters, mtime = INTERNALDATE), creating the Maildir++ folder
    /// and its ancestors on disk. No `courierimapuiddb` is written: see the
    /// module docs. System flags only (keywords need [`Courier::deliver`]).
    pub fn deliver_maildir(&self, user: &str, folder: &str, msgs: &[GenMessage]) {
        assert!(self.maildir(user).is_dir(), "no user {user}");
        // Ancestors first, each a real folder (as Courier's CREATE leaves them).
        let parts: Vec<&str> = if folder.eq_ignore_ascii_case("INBOX") {
            Vec::new()
        } else {
            folder.split('/').collect()
        };
        for depth in 1..=parts.len() {
            let dir = self.folder_dir(user, &parts[..depth].join("/"));
            for sub in ["", "cur", "new", "tmp"] {
                let d = dir.join(sub);
                if !d.exists() {
                    servers::make_dir(&d, self.mail_owner, 0o700);
                }
            }
            let marker = dir.join("maildirfolder");
            if !marker.exists() {
                fs::write(&marker, b"").expect("write maildirfolder");
                servers::chown(&marker, self.mail_owner);
            }
        }
        let dir = self.folder_dir(user, folder);
        let pid = std::process::id();
        for m in msgs {
            let letters: String = {
                let mut l: Vec<char> = m
                    .flags
                    .iter()
                    .map(|f| match f.as_str() {
                        "\\Draft" => 'D',
                        "\\Flagged" => 'F',
                        "\\Answered" => 'R',
                        "\\Seen" => 'S',
                        "\\Deleted" => 'T',
                        other => panic!("deliver_maildir: system flags only, not {other:?} (use deliver)"),
                    })
                    .collect();
                l.sort_unstable();
                l.into_iter().collect()
            };
            // Increasing names: Courier numbers new files in name order.
            let seq = DELIVERY_SEQ.fetch_add(1, Ordering::Relaxed);
            let base = format!(
                "{}.M{}P{pid}Q{seq}.cutover-fixture,S={}",
                1_600_000_000 + seq,
                seq % 1_000_000,
                to_lf(&m.raw).len()
            );
            let tmp = dir.join("tmp").join(&base);
            let mut file = fs::File::create(&tmp).expect("create maildir file");
            // Unix line ends on disk, as Courier's own APPEND stores them; it
            // serves them as CRLF.
            file.write_all(&to_lf(&m.raw)).expect("write maildir file");
            let t = unix_to_system_time(m.internal_date);
            file.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
                .expect("set mtime");
            drop(file);
            servers::chown(&tmp, self.mail_owner);
            fs::rename(&tmp, dir.join("cur").join(format!("{base}:2,{letters}"))).expect("move into cur/");
        }
    }

    /// Every message of every folder of `user`, read over IMAP (EXAMINE,
    /// `UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])`), sorted by folder
    /// then UID. Flags without `\Recent`, in canonical order. For a folder
    /// without `courierimapuiddb` the UIDs are this session's (see the module
    /// docs).
    pub fn messages(&self, user: &str) -> Vec<StoredMessage> {
        let mut c = self.login(user);
        let mut out = Vec::new();
        for (folder, mailbox) in self.list_folders(&mut c) {
            for m in c.fetch_all(&mailbox) {
                let mut flags: Vec<String> = m.flags.into_iter().filter(|f| f != "\\Recent").collect();
                sort_flags(&mut flags);
                out.push(StoredMessage {
                    folder: folder.clone(),
                    uid: m.uid,
                    raw: m.raw,
                    flags,
                    internal_date: m.internal_date,
                });
            }
        }
        c.logout();
        out.sort_by(|a, b| a.folder.cmp(&b.folder).then(a.uid.cmp(&b.uid)));
        out
    }

    /// STATUS of every folder of `user`, INBOX first then by name.
    pub fn folders(&self, user: &str) -> Vec<FolderStatus> {
        let mut c = self.login(user);
        let mut out = Vec::new();
        for (folder, mailbox) in self.list_folders(&mut c) {
            let s = c.status(&mailbox, &["MESSAGES", "UIDVALIDITY", "UIDNEXT"]);
            let num = |k: &str| *s.get(k).unwrap_or_else(|| panic!("STATUS {mailbox}: no {k}")) as u32;
            out.push(FolderStatus {
                name: folder,
                messages: num("MESSAGES"),
                uidvalidity: num("UIDVALIDITY"),
                uidnext: num("UIDNEXT"),
            });
        }
        c.logout();
        out.sort_by(|a, b| (a.name != "INBOX", &a.name).cmp(&(b.name != "INBOX", &b.name)));
        out
    }

    /// Stops the instance (SIGKILL to its namespace's first process, which
    /// ends them all) and waits until the port is closed. Data is kept.
    /// Idempotent; never panics.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // `unshare --fork` ignores SIGTERM; its child is PID 1 of the
        // instance's PID namespace: killing it ends the namespace.
        let pid = child.id();
        let init = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse::<u32>().ok()));
        match init {
            Some(init) => servers::signal(init, "KILL"),
            None => servers::signal(pid, "KILL"),
        }
        servers::reap(&mut child, STOP_TIMEOUT);
        servers::wait_port_closed(self.port, STOP_TIMEOUT);
    }

    /// Stops and starts again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(log) if Instant::now() < deadline && log.contains("in use") => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(log) => panic!("Courier did not restart: {log}"),
            }
        }
    }

    // ----- internals -------------------------------------------------------

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
        self.root.path().join("home").join(safe)
    }

    fn write_user(&self, login: &str, password: &str) {
        assert!(
            !login.is_empty() && login.chars().all(|c| c.is_ascii_alphanumeric() || "@._-".contains(c)),
            "Courier fixture logins: ASCII letters, digits, '@', '.', '_', '-' only: {login:?}"
        );
        assert!(
            !password.is_empty() && !password.chars().any(|c| c.is_control() || c == ' '),
            "Courier fixture passwords: no spaces or control characters: {password:?}"
        );
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        assert!(!users.contains_key(login), "user {login} already exists");
        let home = self.home_dir(login);
        servers::make_dir(&home, self.mail_owner, 0o700);
        for sub in ["Maildir", "Maildir/cur", "Maildir/new", "Maildir/tmp"] {
            servers::make_dir(&home.join(sub), self.mail_owner, 0o700);
        }
        let hash = run_stdin("userdbpw", &["-md5"], &format!("{password}\n"));
        let hash = hash.trim();
        assert!(hash.starts_with("$1$"), "userdbpw -md5 gave {hash:?}");
        let db = self.root.path().join("etc/userdb");
        let (uid, gid) = self.mail_owner;
        run_stdin(
            "userdb",
            &[
                "-f",
                &db.display().to_string(),
                login,
                "set",
                &format!("home={}", home.display()),
                &format!("mail={}", home.join("Maildir").display()),
                &format!("uid={uid}"),
                &format!("gid={gid}"),
                &format!("systempw={hash}"),
            ],
            "",
        );
        run_stdin("makeuserdb", &["-f", &db.display().to_string()], "");
        users.insert(login.to_string(), password.to_string());
    }

    fn login(&self, user: &str) -> ImapConn {
        let password = self
            .users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .cloned()
            .unwrap_or_else(|| panic!("no user {user} in this Courier instance"));
        let mut c = ImapConn::connect_from(self.port, FIXTURE_IP);
        c.login(user, &password).expect_ok("fixture LOGIN");
        c
    }

    /// (fixture name, server name) of every selectable folder of the user.
    fn list_folders(&self, c: &mut ImapConn) -> Vec<(String, String)> {
        c.list("", "*")
            .into_iter()
            .filter(|e| e.selectable())
            .filter_map(|e| Some((self.naming.to_fixture(&e.name)?, e.name)))
            .collect()
    }

    fn ensure_folder(&self, c: &mut ImapConn, folder: &str) {
        if folder.eq_ignore_ascii_case("INBOX") {
            return;
        }
        let existing: Vec<String> = self.list_folders(c).into_iter().map(|(f, _)| f).collect();
        let parts: Vec<&str> = folder.split('/').collect();
        for depth in 1..=parts.len() {
            let f = parts[..depth].join("/");
            if existing.contains(&f) {
                continue;
            }
            let name = super::imap::quote(&super::imap::mutf7_encode(&self.mailbox_name(&f)));
            c.command(&format!("CREATE {name}")).expect_ok("fixture CREATE");
            c.command(&format!("SUBSCRIBE {name}")).expect_ok("fixture SUBSCRIBE");
        }
    }

    fn launch(&mut self) {
        let mut last = String::new();
        for _ in 0..8 {
            self.port = servers::reserve_port();
            match self.spawn() {
                Ok(()) => return,
                Err(log) if log.contains("in use") => {
                    servers::release_port(self.port);
                    last = log;
                }
                Err(log) => panic!("Courier did not start: {log}"),
            }
        }
        panic!("Courier did not start (ports kept being taken): {last}");
    }

    /// The script run inside the instance's namespaces.
    fn script(&self) -> String {
        let r = self.root.path().display();
        let pkg = self.pkg.display();
        let trash = if self.empty_trash {
            ""
        } else {
            "unset IMAP_EMPTYTRASH\n"
        };
        format!(
            "set -e
mount --bind {r}/etc /etc/courier
mount --bind {r}/run /run/courier
/usr/lib/courier/courier-authlib/authdaemond >>{r}/log/authdaemond.log 2>&1 &
set -a
. /etc/courier/imapd
{trash}IMAP_STARTTLS=NO
set +a
if [ -n \"$IMAP_ULIMITD\" ]; then ulimit -v \"$IMAP_ULIMITD\"; fi
exec {pkg}/usr/sbin/couriertcpd -address=127.0.0.1 -maxprocs=40 -maxperip=20 \
  -nodnslookup -noidentlookup -stderr={r}/log/imapd.log \
  {port} {pkg}/usr/lib/courier/courier/imaplogin {pkg}/usr/bin/imapd Maildir
",
            port = self.port
        )
    }

    /// Starts the namespace and waits for the greeting and the auth socket.
    /// Err carries the logs.
    fn spawn(&mut self) -> Result<(), String> {
        for mount_point in ["/etc/courier", "/run/courier"] {
            if !Path::new(mount_point).is_dir() {
                fs::create_dir_all(mount_point).unwrap_or_else(|e| panic!("create mount point {mount_point}: {e}"));
            }
        }
        let r = self.root.path().to_path_buf();
        let _ = fs::remove_file(r.join("run/authdaemon/socket"));
        let script = r.join("start.sh");
        write(&script, &self.script(), 0o755);
        let start_log = r.join("log/start.log");
        let stderr = fs::File::create(&start_log).expect("create start log");
        let child = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "--pid",
                "--fork",
                "--kill-child",
                "sh",
            ])
            .arg(&script)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .current_dir(&r)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(stderr.try_clone().expect("clone log"))
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run unshare: {e}"));
        self.child = Some(child);
        let logs = || {
            format!(
                "(instance dir {})\n--- start log ---\n{}\n--- authdaemond ---\n{}\n--- imapd log ---\n{}",
                r.display(),
                fs::read_to_string(&start_log).unwrap_or_default(),
                fs::read_to_string(r.join("log/authdaemond.log")).unwrap_or_default(),
                fs::read_to_string(r.join("log/imapd.log")).unwrap_or_default(),
            )
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Err(format!("Courier exited with {status} {}", logs()));
            }
            let ready = r.join("run/authdaemon/socket").exists()
                && servers::greeting(self.port).is_some_and(|g| g.contains("Courier-IMAP"));
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = logs();
                self.stop();
                return Err(format!("Courier did not greet within {START_TIMEOUT:?} {log}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Courier {
    fn drop(&mut self) {
        self.stop();
        servers::release_port(self.port);
    }
}

fn write(path: &Path, text: &str, mode: u32) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    servers::set_mode(path, mode);
}

/// Runs a program with `input` on stdin; panics unless it succeeds.
fn run_stdin(program: &str, args: &[&str], input: &str) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (scripts/install-deps installs it)"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn unix_to_system_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// CRLF -> LF (bare CRs stay).
fn to_lf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, &b) in raw.iter().enumerate() {
        if b == b'\r' && raw.get(i + 1) == Some(&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
}
