//! Real Cyrus IMAP 3.6 instances as test fixtures.
//!
//! Why: Cyrus names mailboxes by its own rules, and how depends on two
//! settings that Debian and upstream set differently:
//! - [`CyrusConfig::Debian`]: Debian 12's shipped `/etc/imapd.conf`
//!   (`altnamespace: no`, `unixhierarchysep: no`). A user's folders are all
//!   children of INBOX: `NAMESPACE (("INBOX." ".")) (("user." ".")) (("" "."))`;
//!   `CREATE Sent` answers `NO Permission denied`, `CREATE INBOX.Sent` works.
//! - [`CyrusConfig::Upstream`]: upstream 3.x defaults (`altnamespace: yes`,
//!   `unixhierarchysep: yes`), otherwise the same file:
//!   `NAMESPACE (("" "/")) (("Other Users/" "/")) (("Shared Folders/" "/"))`.
//!
//! The binaries are Debian 12's `cyrus-common` / `cyrus-imapd`, downloaded and
//! unpacked (never installed: they conflict with dovecot-imapd and pull in an
//! MTA) by `scripts/install-deps` under `/var/cache/cutover-test/cyrus`
//! (`$CUTOVER_TEST_SERVERS`); their libraries and `saslpasswd2` are installed
//! normally.
//!
//! Isolation: each instance has its own directory with an `imapd.conf`
//! (Debian's file with only the paths moved under it: configdirectory,
//! partition-default, proc, lock, sockets, sieve and news dirs; plus
//! `servername`, `admins: cyrus`, `sasl_sasldb_path`, and
//! `master_bind_errors_fatal: yes` so that a taken port makes master exit
//! and the fixture try another), a `cyrus.conf` with `recover` and
//! `imap cmd="imapd -U 30 -C …" listen="127.0.0.1:PORT"`, and runs
//! `master -C imapd.conf -M cyrus.conf -p pidfile` in the foreground as
//! `cyrus:mail` (the `cyrus` system user is created on first use). Stopping
//! sends SIGTERM to master by PID. Master answers it by signalling its whole
//! process group, so each master gets a group of its own (else stopping one
//! instance would kill the others' sessions). Needs root. Nothing logs:
//! Cyrus logs to syslog only, and no syslog runs here.
//!
//! Users: `saslpasswd2 -f BASE/sasl/sasldb2 -u SERVERNAME user` (auxprop
//! sasldb, as Debian's config says); their mailboxes are created by the
//! admin (`cyrus`) over IMAP, `CREATE user.NAME` (or `user/NAME`). Logins are
//! ASCII letters, digits, `_` and `-` (no `.` or `@`: Cyrus maps those
//! into mailbox names). Only INBOX exists at first: Cyrus creates no
//! special-use folders unless configured to.
//!
//! The API names folders like the Dovecot fixture's (UTF-8, `/`, `INBOX`,
//! relative to the personal namespace: `Sent` is `INBOX.Sent` in the Debian
//! config, `Sent` upstream). Mail is written with APPEND (LITERAL+) and read
//! back with EXAMINE + `UID FETCH` as the user.
//!
//! What a client meets (3.6, both configs): LITERAL+, MOVE, UIDPLUS,
//! SPECIAL-USE and CREATE-SPECIAL-USE, LIST-EXTENDED, LIST-STATUS, CONDSTORE,
//! QRESYNC, COMPRESS=DEFLATE, XLIST; AUTH=PLAIN/LOGIN, SCRAM-*, DIGEST-MD5,
//! CRAM-MD5, NTLM before login; `LOGINDISABLED` in the capabilities *after*
//! login. Mailbox names in LIST are atoms where possible (`INBOX.Sent`, not
//! quoted). INTERNALDATE uses a space-padded day (`" 1-Jan-2020 …"`).
//! UIDVALIDITY is the folder's creation time in seconds: folders created in
//! the same second share it.
//!
//! Set `CUTOVER_FIXTURE_KEEP=1` to keep an instance's directory.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::dovecot::{FolderStatus, StoredMessage};
use super::imap::{FolderNaming, ImapConn, mutf7_encode, quote};
use super::mailgen::{GenMessage, sort_flags};
use super::servers;

/// NAMESPACE as a user sees it with [`CyrusConfig::Debian`].
pub const NAMESPACE_DEBIAN: &str = r#"* NAMESPACE (("INBOX." ".")) (("user." ".")) (("" "."))"#;
/// NAMESPACE as a user sees it with [`CyrusConfig::Upstream`].
pub const NAMESPACE_UPSTREAM: &str = r#"* NAMESPACE (("" "/")) (("Other Users/" "/")) (("Shared Folders/" "/"))"#;

/// The admin login (`admins: cyrus`); its password is [`Cyrus::admin_password`].
pub const ADMIN: &str = "cyrus";

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Which `imapd.conf` to run with (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CyrusConfig {
    /// Debian 12's shipped file: `altnamespace: no`, `unixhierarchysep: no`.
    #[default]
    Debian,
    /// Upstream 3.x defaults: `altnamespace: yes`, `unixhierarchysep: yes`.
    Upstream,
}

/// What to start. Use `..Default::default()` for the rest.
#[derive(Debug, Clone, Default)]
pub struct CyrusOptions {
    pub config: CyrusConfig,
    /// Initial users: (login, password). More with [`Cyrus::add_user`].
    pub users: Vec<(String, String)>,
}

/// A running (or stopped) isolated Cyrus instance. Dropping it stops the
/// server and deletes its directory.
pub struct Cyrus {
    pkg: PathBuf,
    config: CyrusConfig,
    servername: String,
    admin_password: String,
    port: u16,
    child: Option<Child>,
    /// login -> password (the fixture logs in as the user to read and write).
    users: Mutex<HashMap<String, String>>,
    naming: FolderNaming,
    owner: (u32, u32),
    /// Declared last so the directory is removed after the server stopped.
    root: tempfile::TempDir,
}

static INSTANCE_SEQ: AtomicU64 = AtomicU64::new(0);

/// Keys of Debian's imapd.conf that hold paths, and where they go under the
/// instance directory.
const MOVED_PATHS: [(&str, &str); 10] = [
    ("configdirectory", "config"),
    ("partition-default", "spool"),
    ("partition-news", "news"),
    ("newsspool", "news"),
    ("sievedir", "sieve"),
    ("proc_path", "run/proc"),
    ("mboxname_lockpath", "run/lock"),
    ("lmtpsocket", "run/socket/lmtp"),
    ("idlesocket", "run/socket/idle"),
    ("notifysocket", "run/socket/notify"),
];

impl Cyrus {
    /// Starts an instance on a free loopback port, waits until it greets,
    /// then creates the users' mailboxes.
    pub fn start(opts: CyrusOptions) -> Cyrus {
        servers::require_root("Cyrus");
        let pkg = servers::unpacked("cyrus");
        servers::ensure_system_user(ADMIN, Some("mail"));
        let owner = servers::ids(ADMIN);
        let root = tempfile::Builder::new()
            .prefix("cutover-cyrus-")
            .tempdir_in(servers::short_temp_dir())
            .expect("create fixture temp dir");
        let r = root.path().to_path_buf();
        servers::make_dir(&r, (0, 0), 0o755);
        for d in [
            "config",
            "spool",
            "news",
            "sieve",
            "sasl",
            "run",
            "run/proc",
            "run/lock",
            "run/socket",
            "log",
        ] {
            servers::make_dir(&r.join(d), owner, 0o750);
        }
        let n = INSTANCE_SEQ.fetch_add(1, Ordering::Relaxed);
        let servername = format!("cyrus-{}-{n}.fixture.test", std::process::id());
        let admin_password = format!("admin-{:016x}", fastrand::u64(..));
        let (prefix, separator, others) = match opts.config {
            CyrusConfig::Debian => ("INBOX.", '.', vec!["user.".to_string()]),
            CyrusConfig::Upstream => ("", '/', vec!["Other Users/".to_string(), "Shared Folders/".to_string()]),
        };
        let mut cyrus = Cyrus {
            pkg,
            config: opts.config,
            servername,
            admin_password,
            port: 0,
            child: None,
            users: Mutex::new(HashMap::new()),
            naming: FolderNaming {
                prefix: prefix.to_string(),
                separator,
                others,
            },
            owner,
            root,
        };
        if servers::keep_dirs() {
            cyrus.root.disable_cleanup(true);
        }
        let conf = cyrus.render_imapd_conf();
        write(&cyrus.conf_path(), &conf, 0o644);
        cyrus.saslpasswd(ADMIN, &cyrus.admin_password.clone());
        for (login, password) in &opts.users {
            cyrus.check_login(login, password);
            cyrus.saslpasswd(login, password);
        }
        cyrus.launch();
        for (login, password) in &opts.users {
            cyrus.create_mailbox(login, password);
        }
        cyrus
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn config(&self) -> CyrusConfig {
        self.config
    }

    /// `.` (Debian) or `/` (Upstream).
    pub fn separator(&self) -> char {
        self.naming.separator
    }

    /// The personal namespace's prefix: `INBOX.` (Debian) or `""`.
    pub fn prefix(&self) -> &str {
        &self.naming.prefix
    }

    /// The server's name of a fixture folder: `Sent` -> `INBOX.Sent`
    /// (Debian) or `Sent` (Upstream).
    pub fn mailbox_name(&self, folder: &str) -> String {
        self.naming.to_server(folder)
    }

    /// What NAMESPACE answers a user (the whole untagged line).
    pub fn expected_namespace(&self) -> &'static str {
        match self.config {
            CyrusConfig::Debian => NAMESPACE_DEBIAN,
            CyrusConfig::Upstream => NAMESPACE_UPSTREAM,
        }
    }

    /// `servername` (in the greeting; the SASL realm of every user).
    pub fn servername(&self) -> &str {
        &self.servername
    }

    /// The admin's password (login [`ADMIN`]).
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// The instance's directory.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The generated `imapd.conf` (for Cyrus tools: `-C PATH`).
    pub fn conf_path(&self) -> PathBuf {
        self.root.path().join("imapd.conf")
    }

    /// Adds a SASL user and has the admin create its mailbox.
    pub fn add_user(&self, login: &str, password: &str) {
        self.check_login(login, password);
        self.saslpasswd(login, password);
        self.create_mailbox(login, password);
    }

    /// Creates a folder and its missing ancestors as the user (CREATE +
    /// SUBSCRIBE).
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
            let r = c.append(&mailbox, &m.flags, Some(m.internal_date), &m.raw);
            assert!(
                r.is_ok(),
                "APPEND #{i} to {mailbox} for {user}: {} {}",
                r.status,
                r.text
            );
        }
        c.logout();
    }

    /// Every message of every folder of `user`, read over IMAP (EXAMINE,
    /// `UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])`), sorted by folder
    /// then UID; flags without `\Recent`, in canonical order.
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

    /// Logs in as the admin (`cyrus`).
    pub fn admin(&self) -> ImapConn {
        let mut c = ImapConn::connect(self.port);
        c.login(ADMIN, &self.admin_password).expect_ok("admin LOGIN");
        c
    }

    /// Stops the server (SIGTERM to master, SIGKILL after a timeout) and
    /// waits until the port is closed. Data is kept. Idempotent; never panics.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        servers::signal(child.id(), "TERM");
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
                // The port may still be held by a closing session.
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                Err(log) => panic!("Cyrus did not restart: {log}"),
            }
        }
    }

    // ----- internals -------------------------------------------------------

    fn check_login(&self, login: &str, password: &str) {
        assert!(
            !login.is_empty() && login != ADMIN && login.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)),
            "Cyrus fixture logins: ASCII letters, digits, '_', '-' only (and not {ADMIN}): {login:?}"
        );
        assert!(
            !password.is_empty() && !password.chars().any(|c| c.is_control()),
            "Cyrus fixture passwords: no control characters: {password:?}"
        );
    }

    /// Debian's imapd.conf with the paths moved under the instance directory.
    fn render_imapd_conf(&self) -> String {
        let debian = fs::read_to_string(self.pkg.join("etc/imapd.conf")).expect("read Debian's imapd.conf");
        let r = self.root.path();
        let mut set: Vec<(String, String)> = MOVED_PATHS
            .iter()
            .map(|(k, sub)| (k.to_string(), r.join(sub).display().to_string()))
            .collect();
        set.push(("servername".into(), self.servername.clone()));
        set.push(("admins".into(), ADMIN.into()));
        set.push(("sasl_sasldb_path".into(), r.join("sasl/sasldb2").display().to_string()));
        // Exit when the port is taken (the default keeps running without
        // the service), so the fixture can try another one.
        set.push(("master_bind_errors_fatal".into(), "yes".into()));
        if self.config == CyrusConfig::Upstream {
            set.push(("altnamespace".into(), "yes".into()));
            set.push(("unixhierarchysep".into(), "yes".into()));
        }
        // Cyrus refuses a key given twice: replace the line where it is set.
        let mut out = String::from(
            "# Generated by cutover's test fixture (tests/support/cyrus.rs) from Debian's /etc/imapd.conf.\n",
        );
        let mut done = vec![false; set.len()];
        for line in debian.lines() {
            let key = line
                .split_once(':')
                .map(|(k, _)| k.trim())
                .filter(|_| !line.starts_with('#'));
            match key.and_then(|k| set.iter().position(|(s, _)| s == k)) {
                Some(i) => {
                    out.push_str(&format!("{}: {}\n", set[i].0, set[i].1));
                    done[i] = true;
                }
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        for (i, (k, v)) in set.iter().enumerate() {
            if !done[i] {
                out.push_str(&format!("{k}: {v}\n"));
            }
        }
        out
    }

    fn cyrus_conf(&self) -> String {
        let bin = self.pkg.join("usr/lib/cyrus/bin");
        let conf = self.conf_path();
        format!(
            "# Generated by cutover's test fixture (tests/support/cyrus.rs).\nSTART {{\n  recover cmd=\"{bin}/ctl_cyrusdb -C {conf} -r\"\n}}\nSERVICES {{\n  imap cmd=\"{bin}/imapd -U 30 -C {conf}\" listen=\"127.0.0.1:{port}\" prefork=0 maxchild=100\n}}\nEVENTS {{\n}}\n",
            bin = bin.display(),
            conf = conf.display(),
            port = self.port
        )
    }

    /// Sets a user's password in the instance's sasldb (as `cyrus`, so the
    /// file stays the server's).
    fn saslpasswd(&self, login: &str, password: &str) {
        let db = self.root.path().join("sasl/sasldb2");
        let mut child = Command::new("saslpasswd2")
            .args(["-p", "-c", "-f"])
            .arg(&db)
            .args(["-u", &self.servername, login])
            .uid(self.owner.0)
            .gid(self.owner.1)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run saslpasswd2: {e} (scripts/install-deps installs sasl2-bin)"));
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{password}\n").as_bytes())
            .expect("write password");
        let out = child.wait_with_output().expect("wait saslpasswd2");
        assert!(
            out.status.success(),
            "saslpasswd2 for {login} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The admin creates `user.LOGIN` (`user/LOGIN`): the user's INBOX.
    fn create_mailbox(&self, login: &str, password: &str) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        assert!(!users.contains_key(login), "user {login} already exists");
        let mut admin = self.admin();
        let sep = self.naming.separator;
        admin
            .command(&format!("CREATE {}", quote(&format!("user{sep}{login}"))))
            .expect_ok("admin CREATE user mailbox");
        admin.logout();
        users.insert(login.to_string(), password.to_string());
    }

    fn login(&self, user: &str) -> ImapConn {
        let password = self
            .users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .cloned()
            .unwrap_or_else(|| panic!("no user {user} in this Cyrus instance"));
        let mut c = ImapConn::connect(self.port);
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
            let name = quote(&mutf7_encode(&self.mailbox_name(&f)));
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
                Err(log) => {
                    servers::release_port(self.port);
                    last = log;
                }
            }
        }
        panic!("Cyrus did not start: {last}");
    }

    /// Runs master and waits for this instance's greeting. Err carries the
    /// log.
    fn spawn(&mut self) -> Result<(), String> {
        let r = self.root.path().to_path_buf();
        write(&r.join("cyrus.conf"), &self.cyrus_conf(), 0o644);
        let libdir = fs::read_dir(self.pkg.join("usr/lib"))
            .expect("read unpacked usr/lib")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("libcyrus.so.0").exists())
            .unwrap_or_else(|| panic!("no libcyrus.so.0 under {}/usr/lib", self.pkg.display()));
        let log_path = r.join("log/master.log");
        let log = fs::File::create(&log_path).expect("create master log");
        servers::chown(&log_path, self.owner);
        let child = Command::new(self.pkg.join("usr/lib/cyrus/bin/master"))
            .arg("-C")
            .arg(self.conf_path())
            .arg("-M")
            .arg(r.join("cyrus.conf"))
            .arg("-p")
            .arg(r.join("run/master.pid"))
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LD_LIBRARY_PATH", &libdir)
            .current_dir(&r)
            // master's SIGTERM handling signals its whole process group
            // (`kill(0, SIGTERM)`): give it its own, or stopping one
            // instance kills every other instance's processes.
            .process_group(0)
            .uid(self.owner.0)
            .gid(self.owner.1)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run Cyrus master: {e}"));
        self.child = Some(child);
        let logs = || {
            format!(
                "(instance dir {}; Cyrus logs to syslog only)\n--- master stdout/stderr ---\n{}",
                r.display(),
                fs::read_to_string(&log_path).unwrap_or_default()
            )
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Err(format!("Cyrus master exited with {status} {}", logs()));
            }
            match servers::greeting(self.port) {
                Some(g) if g.contains(&self.servername) => return Ok(()),
                // Someone else's server took the port: try another.
                Some(g) => {
                    self.stop();
                    return Err(format!("port {} answers for another server: {g}", self.port));
                }
                None => {}
            }
            if Instant::now() > deadline {
                let log = logs();
                self.stop();
                return Err(format!("Cyrus did not greet within {START_TIMEOUT:?} {log}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Cyrus {
    fn drop(&mut self) {
        self.stop();
        servers::release_port(self.port);
    }
}

fn write(path: &Path, text: &str, mode: u32) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    servers::set_mode(path, mode);
}
