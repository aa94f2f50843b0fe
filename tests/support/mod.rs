//! Shared test support for cutover's integration tests, examples and benchmarks.
//!
//! Every `tests/*.rs` file that needs a server declares `mod support;`; examples
//! include the same code with `#[path = "../tests/support/mod.rs"] mod support;`.
//! Each user of this module needs only a subset of it, hence the crate-wide
//! `dead_code` allowance below.
//!
//! - [`dovecot`]: starts real, isolated Dovecot instances (no mock servers: the
//!   point is to migrate against the IMAP semantics a production server has).
//! - [`courier`], [`cyrus`]: real Courier-IMAP 5.0 and Cyrus IMAP 3.6 from
//!   Debian's packages (unpacked, not installed, by `scripts/install-deps`),
//!   for the `INBOX.` namespaces and `.` separators those servers announce.
//!   [`MailServer`] lets a test run against any of the three.
//! - [`mailgen`]: deterministic message generator and the odd-MIME corpus.
//! - [`imap`]: a tiny blocking IMAP client for raw protocol checks in tests.
//! - [`emulator`]: finds (or builds) the Graph emulator and starts it for a test.
//! - [`hostile`]: generated hostile mail (NUL bytes, 100-deep MIME, ...).
//! - [`hostile_server`]: a relay in front of Dovecot that misbehaves on cue.
//! - [`listener`]: the accept loop both relays share.
//! - [`browser`]: headless Chromium, for tests that render cutover's pages.
//! - [`relay`]: a relay that counts the bytes on the wire and can make the
//!   server refuse COMPRESS.
#![allow(dead_code, unused_imports)]

pub mod browser;
pub mod courier;
pub mod cyrus;
pub mod dovecot;
pub mod emulator;
pub mod hostile;
pub mod hostile_server;
pub mod imap;
pub mod listener;
pub mod mailgen;
pub mod pim;
pub mod radicale;
pub mod relay;

pub use courier::{Courier, CourierOptions};
pub use cyrus::{Cyrus, CyrusConfig, CyrusOptions};
pub use dovecot::{Dovecot, DovecotOptions, FolderStatus, SessionStats, StoredMessage};
pub use mailgen::{GenMessage, big_message, generate, message_id, odd_corpus};

/// What the Dovecot, Courier and Cyrus fixtures have in common, so one test
/// can run against each. Folder names are the fixtures' own: UTF-8, `/` as
/// the hierarchy separator, `INBOX` for the inbox, relative to the personal
/// namespace (`Sent` is `INBOX.Sent` on the wire under an `INBOX.` prefix:
/// see [`MailServer::mailbox_name`]).
pub trait MailServer {
    /// Plain IMAP port on 127.0.0.1.
    fn port(&self) -> u16;
    /// The personal namespace's prefix as announced (`""`, `"INBOX."`).
    fn prefix(&self) -> &str;
    /// The personal namespace's hierarchy separator.
    fn separator(&self) -> char;
    /// The server's name for a fixture folder (UTF-8, before modified UTF-7).
    fn mailbox_name(&self, folder: &str) -> String;
    fn add_user(&self, login: &str, password: &str);
    /// Creates a folder and its missing ancestors.
    fn create_folder(&self, user: &str, folder: &str);
    /// Stores messages (bytes, flags, INTERNALDATE) in a folder, creating it;
    /// UIDs follow slice order.
    fn deliver(&self, user: &str, folder: &str, msgs: &[GenMessage]);
    /// Every message of every folder of `user`, by folder then UID.
    fn messages(&self, user: &str) -> Vec<StoredMessage>;
    /// STATUS of every folder of `user`, INBOX first then by name.
    fn folders(&self, user: &str) -> Vec<FolderStatus>;
}

macro_rules! mail_server {
    ($t:ty) => {
        impl MailServer for $t {
            fn port(&self) -> u16 {
                <$t>::port(self)
            }
            fn prefix(&self) -> &str {
                <$t>::prefix(self)
            }
            fn separator(&self) -> char {
                <$t>::separator(self)
            }
            fn mailbox_name(&self, folder: &str) -> String {
                <$t>::mailbox_name(self, folder)
            }
            fn add_user(&self, login: &str, password: &str) {
                <$t>::add_user(self, login, password)
            }
            fn create_folder(&self, user: &str, folder: &str) {
                <$t>::create_folder(self, user, folder)
            }
            fn deliver(&self, user: &str, folder: &str, msgs: &[GenMessage]) {
                <$t>::deliver(self, user, folder, msgs)
            }
            fn messages(&self, user: &str) -> Vec<StoredMessage> {
                <$t>::messages(self, user)
            }
            fn folders(&self, user: &str) -> Vec<FolderStatus> {
                <$t>::folders(self, user)
            }
        }
    };
}
mail_server!(Dovecot);
mail_server!(Courier);
mail_server!(Cyrus);

/// What the Courier and Cyrus fixtures share: the unpacked Debian packages,
/// system users, loopback ports and stopping a process by its PID.
pub mod servers {
    use std::collections::HashSet;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    /// Where `scripts/install-deps` unpacks the Courier and Cyrus packages
    /// (`$CUTOVER_TEST_SERVERS`, default `/var/cache/cutover-test`).
    pub fn servers_dir() -> PathBuf {
        std::env::var_os("CUTOVER_TEST_SERVERS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/cache/cutover-test"))
    }

    /// The unpacked root of `name` (`courier`, `cyrus`); panics with the fix
    /// when it is missing.
    pub fn unpacked(name: &str) -> PathBuf {
        let root = servers_dir().join(name);
        assert!(
            root.join(".cutover-unpacked").is_file(),
            "{} is missing: run scripts/install-deps (it unpacks Debian's {name} server packages there)",
            root.display()
        );
        root
    }

    /// The fixtures switch users and mount file systems: they need root (as
    /// CI and the development machines have).
    pub fn require_root(what: &str) {
        let out = Command::new("id").arg("-u").output().expect("run id");
        assert!(
            String::from_utf8_lossy(&out.stdout).trim() == "0",
            "the {what} fixture must run as root (it switches users and, for Courier, mounts over /etc/courier in a private namespace)"
        );
    }

    /// Creates a system user (no home, no login) unless it exists.
    pub fn ensure_system_user(name: &str, group: Option<&str>) {
        let exists = || Command::new("id").arg(name).output().is_ok_and(|o| o.status.success());
        if exists() {
            return;
        }
        let mut cmd = Command::new("useradd");
        cmd.args([
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
        ]);
        match group {
            Some(g) => cmd.args(["--gid", g]),
            None => cmd.arg("--user-group"),
        };
        let out = cmd.arg(name).output();
        // Another process may have created it concurrently: check again.
        assert!(exists(), "cannot create system user {name}: {out:?}");
    }

    /// (uid, gid) of a user.
    pub fn ids(user: &str) -> (u32, u32) {
        let get = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, user]).output().expect("run id");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("no user {user}"))
        };
        (get("-u"), get("-g"))
    }

    static PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

    /// A free loopback port not handed to another Courier/Cyrus instance of
    /// this process (a port the server then fails to bind is retried).
    pub fn reserve_port() -> u16 {
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

    pub fn release_port(port: u16) {
        if let Some(used) = PORTS.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            used.remove(&port);
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    pub fn port_accepts(port: u16) -> bool {
        TcpStream::connect_timeout(&addr(port), Duration::from_millis(200)).is_ok()
    }

    /// The IMAP greeting on `port`, if something there sends one.
    pub fn greeting(port: u16) -> Option<String> {
        let stream = TcpStream::connect_timeout(&addr(port), Duration::from_millis(200)).ok()?;
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut reader = BufReader::new(&stream);
        let mut greeting = String::new();
        let ok = reader.read_line(&mut greeting).is_ok() && greeting.starts_with("* OK");
        let _ = (&stream).write_all(b"x LOGOUT\r\n");
        let _ = stream.shutdown(Shutdown::Both);
        ok.then_some(greeting)
    }

    /// Unix socket paths are limited to 108 bytes: keep instance dirs short.
    pub fn short_temp_dir() -> PathBuf {
        let t = std::env::temp_dir();
        if t.as_os_str().len() <= 40 {
            t
        } else {
            PathBuf::from("/tmp")
        }
    }

    /// `CUTOVER_FIXTURE_KEEP=1` keeps instance directories for post-mortems.
    pub fn keep_dirs() -> bool {
        std::env::var_os("CUTOVER_FIXTURE_KEEP").is_some_and(|v| v != "0")
    }

    /// Sends `signal` (e.g. `TERM`, `KILL`) to one process by PID.
    pub fn signal(pid: u32, signal: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Waits up to `timeout` for `child` to exit, then SIGKILLs it.
    pub fn reap(child: &mut Child, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// Waits until nothing accepts connections on `port` any more.
    pub fn wait_port_closed(port: u16, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && port_accepts(port) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// chown by ids.
    pub fn chown(path: &Path, (uid, gid): (u32, u32)) {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }

    pub fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    }

    /// Creates `path` (and parents) owned by `owner` with `mode`.
    pub fn make_dir(path: &Path, owner: (u32, u32), mode: u32) {
        std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        chown(path, owner);
        set_mode(path, mode);
    }
}
