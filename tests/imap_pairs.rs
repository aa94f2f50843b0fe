//! The copy / resync / verify spine against real server pairs beyond plain
//! Dovecot (issue "Real IMAP servers beyond Dovecot").
//!
//! Why this file exists: `migrate_dovecot.rs` only ever meets Dovecot's
//! flat personal namespace (`""`, `/`). Real migrations start from, or land
//! on, servers whose personal namespace is `INBOX.` with `.` (Courier,
//! Debian's Cyrus, cPanel's Dovecot) or flat with `/` (upstream Cyrus). A
//! tool that ignores NAMESPACE nests everything below INBOX on the target
//! (`INBOX/Sent`), cannot create top-level folders on Debian's Cyrus (`NO
//! Permission denied`), or drops the INBOX itself when `UserRoot=INBOX`.
//! Each test here runs the real binary between a pair of real servers
//! (or into the Graph emulator) and checks what a user would see:
//!
//! - the first `cutover migrate` exits 0 and every source message is in the
//!   target exactly once, byte-identical, with its flags (keywords too) and
//!   INTERNALDATE, in the same folder *relative to each server's personal
//!   namespace* (the fixtures' names: `Sent`, `Archive/2024`, `INBOX`), so
//!   Sent mail is in the target's Sent and nothing is nested below INBOX;
//! - a second `cutover migrate` fetches no message body (the source's own
//!   session counters where it has them, and the client's commands as a
//!   relay in front of the source saw them) and leaves the target as it was;
//! - `cutover verify` exits 0, and the source is untouched.
//!
//! One generic spine ([`spine`]) runs over `&dyn MailServer` sources and an
//! IMAP ([`Target::Imap`]) or Graph ([`Target::Graph`]) target; the pair
//! tests only start servers and fill the mailbox. Two more tests cover
//! Courier's folders without saved UIDs (delivered straight into the
//! Maildir) and `UserRoot=INBOX`.

mod common;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sha2::{Digest, Sha256};

use common::{ADMIN_PASSWORD, assert_copied_exactly, explain, items_by_state, status_json, user_status};
use support::emulator::{CLIENT, Emulator, RunningEmulator, TENANT};
use support::mailgen::{self, GenMessage};
use support::relay::Relay;
use support::{
    Courier, CourierOptions, Cyrus, CyrusConfig, CyrusOptions, Dovecot, DovecotOptions, FolderStatus, MailServer,
    SessionStats, StoredMessage,
};

/// The mailbox being migrated (the target mailbox, EmailAddress).
const EMAIL: &str = "alice@example.test";
/// The login on every server (Cyrus logins may not contain `@` or `.`).
const LOGIN: &str = "alice";
const PASSWORD: &str = "alice-source-pw";
const TARGET_PASSWORD: &str = "alice-target-pw";
const GRAPH_SECRET: &str = "graph-s3cret-value";
const GRAPH_SECRET_ENV: &str = "CUTOVER_TEST_GRAPH_SECRET";

/// The test mailbox, named relative to the personal namespace: INBOX, the
/// role folders, a nested folder, a non-ASCII name and one with a space.
/// (No component may contain `.`: Courier, Debian's Cyrus and cPanel's
/// Dovecot use it as the separator.)
const FOLDERS: [&str; 7] = [
    "INBOX",
    "Sent",
    "Drafts",
    "Trash",
    "Archive/2024",
    "Reçus",
    "Old Projects",
];
const PER_FOLDER: usize = 6;

/// Flags by message index: system flags, `$Forwarded` and a custom keyword.
const FLAG_SETS: [&[&str]; 7] = [
    &["\\Seen"],
    &["\\Seen", "$Forwarded"],
    &["\\Answered", "\\Seen"],
    &["\\Flagged"],
    &["\\Seen", "ProjectX"],
    &[],
    &["\\Answered", "\\Flagged", "\\Seen", "$Forwarded", "ProjectX"],
];

// --- the mailbox ---------------------------------------------------------------

/// `count` generated messages (old INTERNALDATEs, 2019-2024) with the
/// flags of [`FLAG_SETS`] in turn; `system_only` keeps system flags only
/// (for Courier's Maildir delivery, which cannot store keywords).
fn messages(seed: u64, count: usize, system_only: bool) -> Vec<GenMessage> {
    mailgen::generate(seed, count, 1500)
        .into_iter()
        .enumerate()
        .map(|(i, mut m)| {
            m.flags = FLAG_SETS[i % FLAG_SETS.len()]
                .iter()
                .filter(|f| !system_only || f.starts_with('\\'))
                .map(|f| f.to_string())
                .collect();
            mailgen::sort_flags(&mut m.flags);
            m
        })
        .collect()
}

/// Fills [`FOLDERS`] through the fixture (APPEND or its own delivery) and
/// checks the fixture stored what was delivered; returns the source view.
fn fill_mailbox(server: &dyn MailServer, seed: u64) -> Vec<StoredMessage> {
    let all = messages(seed, FOLDERS.len() * PER_FOLDER, false);
    for (folder, chunk) in FOLDERS.iter().zip(all.chunks(PER_FOLDER)) {
        server.deliver(LOGIN, folder, chunk);
    }
    let stored = server.messages(LOGIN);
    let counts = by_folder(stored.iter().map(|m| m.folder.as_str()));
    for folder in FOLDERS {
        assert_eq!(counts.get(folder), Some(&PER_FOLDER), "fixture stored {counts:?}");
    }
    assert_eq!(stored.len(), all.len(), "fixture stored {counts:?}");
    for m in &stored {
        let sent = all.iter().find(|g| g.raw == m.raw).expect("fixture keeps the bytes");
        assert_eq!((&m.flags, m.internal_date), (&sent.flags, sent.internal_date), "{m:?}");
    }
    stored
}

fn by_folder<'a>(folders: impl Iterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for f in folders {
        *out.entry(f.to_owned()).or_default() += 1;
    }
    out
}

fn folder_names(list: &[FolderStatus]) -> BTreeSet<String> {
    list.iter().map(|f| f.name.clone()).collect()
}

// --- the source ------------------------------------------------------------------

/// How a source server counts the message bodies it sent.
enum Counter<'a> {
    /// `body_count`: fetches of `BODY[]`, `BODY[TEXT]`, ... per session.
    Dovecot(&'a Dovecot),
    /// `body_bytes`: bytes Courier sent for body fetches.
    Courier(&'a Courier),
    /// Cyrus logs to syslog only: the relay's view is all there is.
    None,
}

/// The source server, reached through a relay that keeps what the client
/// sent on each connection.
struct Source<'a> {
    server: &'a dyn MailServer,
    counter: Counter<'a>,
    relay: Relay,
}

impl<'a> Source<'a> {
    fn new(server: &'a dyn MailServer, counter: Counter<'a>) -> Source<'a> {
        Source::behind(Relay::start(server.port()), server, counter)
    }

    fn behind(relay: Relay, server: &'a dyn MailServer, counter: Counter<'a>) -> Source<'a> {
        Source { server, counter, relay }
    }

    fn stats(&self) -> Option<SessionStats> {
        match self.counter {
            Counter::Dovecot(d) => Some(d.session_stats()),
            Counter::Courier(c) => Some(c.session_stats()),
            Counter::None => None,
        }
    }

    /// The session totals once at least one more session than `before`
    /// has ended and no further one ended for half a second (a run's
    /// sessions are logged as their server processes exit).
    fn settled_stats(&self, before: SessionStats) -> SessionStats {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = self.stats().unwrap();
        let mut since = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.stats().unwrap();
            if now != last {
                last = now;
                since = Instant::now();
            }
            if last.sessions > before.sessions && since.elapsed() > Duration::from_millis(500) {
                return last;
            }
            assert!(
                Instant::now() < deadline,
                "the source logged no finished session of the run: {last:?}"
            );
        }
    }

    /// Runs `run` and asserts the source sent no message body meanwhile.
    fn assert_no_bodies_during(&self, what: &str, run: impl FnOnce() -> Output) -> Output {
        let before = self.stats();
        let connections = self.relay.client_streams().len();
        let out = run();
        if let Some(before) = before {
            let after = self.settled_stats(before);
            let (fetched, unit) = match self.counter {
                Counter::Dovecot(_) => (after.body_count - before.body_count, "bodies"),
                _ => (after.body_bytes - before.body_bytes, "body bytes"),
            };
            assert_eq!(fetched, 0, "{what}: the source sent {fetched} {unit}: {after:?}");
        }
        let streams = self.relay.client_streams();
        assert!(streams.len() > connections, "{what}: no connection reached the source");
        for (i, stream) in streams[connections..].iter().enumerate() {
            let sent = String::from_utf8_lossy(stream).to_ascii_uppercase();
            let asked: Vec<&str> = sent
                .lines()
                .filter(|l| l.contains("FETCH") && FULL_BODY.iter().any(|b| l.contains(b)))
                .collect();
            assert!(
                asked.is_empty(),
                "{what}: connection {i} asked the source for bodies: {asked:?}"
            );
        }
        out
    }
}

/// Fetch items that send a whole message (or its text) to the client.
const FULL_BODY: [&str; 7] = [
    "BODY.PEEK[]",
    "BODY[]",
    "BODY.PEEK[TEXT]",
    "BODY[TEXT]",
    "BINARY.PEEK[]",
    "RFC822)",
    "RFC822 ",
];

// --- the target -------------------------------------------------------------------

/// How cutover logs in to an IMAP target.
#[derive(Clone, Copy)]
enum TargetLogin {
    /// As the user: TargetUserName / TargetPassword columns.
    Own,
    /// `{email}*admin` with the admin's password (a Dovecot master user).
    Master,
}

enum Target<'a> {
    Imap {
        server: &'a dyn MailServer,
        /// The mailbox's login on the target (what its fixture reads).
        user: &'a str,
        login: TargetLogin,
    },
    Graph(&'a Emu),
}

/// What a no-op run must leave exactly as it was.
#[derive(Debug, PartialEq)]
enum Snapshot {
    Imap(Vec<StoredMessage>, Vec<FolderStatus>),
    /// (id, folder, lastModifiedDateTime) of every message, and the
    /// emulator's count of writing requests.
    Graph(Vec<(String, String, String)>, u64),
}

impl Target<'_> {
    fn snapshot(&self) -> Snapshot {
        match self {
            Target::Imap { server, user, .. } => Snapshot::Imap(server.messages(user), server.folders(user)),
            Target::Graph(emu) => {
                let dump = emu.dump(EMAIL);
                let mut ids: Vec<(String, String, String)> = dump["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| {
                        let s = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
                        (s("id"), s("folderId"), s("lastModifiedDateTime"))
                    })
                    .collect();
                ids.sort();
                Snapshot::Graph(ids, emu.writes())
            }
        }
    }

    /// The `[target]` section.
    fn config(&self) -> String {
        match self {
            Target::Imap { server, login, .. } => {
                let auth = match login {
                    TargetLogin::Own => String::new(),
                    TargetLogin::Master => {
                        "login = \"{email}*admin\"\npassword_env = \"CUTOVER_TEST_ADMIN_PW\"\n".to_owned()
                    }
                };
                format!(
                    "[target]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n{auth}",
                    server.port()
                )
            }
            Target::Graph(emu) => format!(
                "[target]\nkind = \"graph\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\n\
                 client_secret_env = \"{GRAPH_SECRET_ENV}\"\nendpoint = \"{base}\"\nauthority = \"{base}\"\n\
                 write_mode = \"import-mime\"\ntimeout_seconds = 20\nlimits_time_scale = {EMU_TIME_SCALE}\n",
                base = emu.base
            ),
        }
    }

    /// The users file's target columns: (header, value) pairs.
    fn columns(&self) -> Vec<(&'static str, String)> {
        match self {
            Target::Imap {
                login: TargetLogin::Own,
                user,
                ..
            } => vec![
                ("TargetUserName", user.to_string()),
                ("TargetPassword", TARGET_PASSWORD.into()),
            ],
            _ => Vec::new(),
        }
    }

    /// Folder names (relative to the personal namespace) before the run.
    fn folders(&self) -> BTreeSet<String> {
        match self {
            Target::Imap { server, user, .. } => folder_names(&server.folders(user)),
            Target::Graph(_) => BTreeSet::new(),
        }
    }

    /// Asserts `source` is in the target exactly once, in its place, with
    /// its bytes, flags and date; `before` are the target's folders before
    /// the first run.
    fn assert_holds(&self, source: &[StoredMessage], before: &BTreeSet<String>) {
        match self {
            Target::Imap { server, user, .. } => assert_imap_holds(*server, user, source, before),
            Target::Graph(emu) => assert_graph_holds(&emu.dump(EMAIL), source),
        }
    }
}

fn assert_imap_holds(server: &dyn MailServer, user: &str, source: &[StoredMessage], before: &BTreeSet<String>) {
    let got = server.messages(user);
    let want_counts = by_folder(source.iter().map(|m| m.folder.as_str()));
    let got_counts = by_folder(got.iter().map(|m| m.folder.as_str()));
    let folders = folder_names(&server.folders(user));
    let nested: Vec<&String> = folders
        .iter()
        .filter(|f| f.to_ascii_uppercase().starts_with("INBOX/"))
        .collect();
    assert!(
        nested.is_empty() && got_counts == want_counts,
        "messages by folder (relative to each server's personal namespace) differ:\n  source: {want_counts:?}\n  target: {got_counts:?}\n  target folders nested below INBOX: {nested:?}"
    );
    // No stray folder: what the run created is a folder of the source.
    let source_folders: BTreeSet<&str> = source.iter().map(|m| m.folder.as_str()).collect();
    let stray: Vec<&String> = folders
        .iter()
        .filter(|f| !before.contains(*f) && !source_folders.contains(f.as_str()) && !is_ancestor(f, &source_folders))
        .collect();
    assert!(stray.is_empty(), "the target has folders the source has not: {stray:?}");
    assert_copied_exactly(source, &got, &[]);
}

/// Whether `folder` is a parent of one of `folders` (`Archive` of
/// `Archive/2024`).
fn is_ancestor(folder: &str, folders: &BTreeSet<&str>) -> bool {
    folders.iter().any(|f| f.starts_with(&format!("{folder}/")))
}

// --- the Graph emulator -----------------------------------------------------------

/// Every emulated duration runs at this fraction of real time (and
/// cutover's Exchange budgets on the same clock).
const EMU_TIME_SCALE: f64 = 0.01;

struct Emu {
    _server: RunningEmulator,
    base: String,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Emu {
    fn start() -> Emu {
        let server = Emulator::new()
            .client_secret(GRAPH_SECRET)
            .seed(7)
            .time_scale(EMU_TIME_SCALE)
            .quiet()
            .start();
        Emu {
            base: server.base_url.clone(),
            _server: server,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            http: reqwest::Client::new(),
        }
    }

    fn admin(&self, path: &str) -> Value {
        let url = format!("{}/_emulator/{path}", self.base);
        self.rt.block_on(async {
            let resp = self.http.get(url).send().await.unwrap();
            let status = resp.status();
            let body = resp.bytes().await.unwrap();
            assert!(status.is_success(), "emulator {path}: {status}");
            serde_json::from_slice(&body).unwrap()
        })
    }

    /// The stored mailbox: folders (with wellKnownName) and messages
    /// (with their MIME).
    fn dump(&self, email: &str) -> Value {
        self.admin(&format!("mailboxes/{email}"))
    }

    /// Requests that changed a mailbox so far.
    fn writes(&self) -> u64 {
        let stats = self.admin("stats");
        ["POST", "PATCH", "PUT", "DELETE"]
            .iter()
            .map(|m| stats["total"]["by_method"][m].as_u64().unwrap_or(0))
            .sum()
    }
}

/// Where Exchange keeps a source folder: the well-known folder of a role
/// folder, and the display path below the message folder root.
fn graph_place(folder: &str) -> (Option<&'static str>, Vec<String>) {
    let mut path: Vec<String> = folder.split('/').map(str::to_owned).collect();
    let (well_known, display) = match path[0].as_str() {
        "INBOX" => (Some("inbox"), "Inbox"),
        "Sent" => (Some("sentitems"), "Sent Items"),
        "Drafts" => (Some("drafts"), "Drafts"),
        "Trash" => (Some("deleteditems"), "Deleted Items"),
        "Archive" => (Some("archive"), "Archive"),
        _ => (None, ""),
    };
    if well_known.is_some() {
        path[0] = display.to_owned();
    }
    (well_known.filter(|_| path.len() == 1), path)
}

fn sha_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn path_of(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect()
}

/// The Graph counterpart of [`assert_imap_holds`]: every source message
/// once (import-mime keeps the bytes), in the well-known folder of its role
/// or at its path, read state, flag and categories (custom keywords) as in
/// the source, received date = INTERNALDATE (Exchange takes it from the
/// first Received header, which mailgen writes with the INTERNALDATE).
fn assert_graph_holds(dump: &Value, source: &[StoredMessage]) {
    let well_known: BTreeMap<String, String> = dump["folders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_owned(),
                f["wellKnownName"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let targets = dump["messages"].as_array().unwrap();
    let want_paths: Vec<String> = source.iter().map(|m| graph_place(&m.folder).1.join("/")).collect();
    let got_paths: Vec<String> = targets.iter().map(|t| path_of(&t["folderPath"]).join("/")).collect();
    let want_counts = by_folder(want_paths.iter().map(String::as_str));
    let got_counts = by_folder(got_paths.iter().map(String::as_str));
    assert!(
        got_counts == want_counts,
        "messages by Exchange folder differ:\n  source (placed as Exchange names its folders): {want_counts:?}\n  target: {got_counts:?}"
    );
    let mut taken = vec![false; targets.len()];
    for s in source {
        let (role, path) = graph_place(&s.folder);
        let what = format!("{} uid {} ({:?})", s.folder, s.uid, mailgen::message_id(&s.raw));
        let digest = sha_hex(&s.raw);
        let i = (0..targets.len())
            .find(|&i| {
                !taken[i]
                    && path_of(&targets[i]["folderPath"]) == path
                    && targets[i]["mimeBase64"]
                        .as_str()
                        .is_some_and(|b| sha_hex(&STANDARD.decode(b).unwrap()) == digest)
            })
            .unwrap_or_else(|| panic!("{what}: no byte-identical copy in {path:?}"));
        taken[i] = true;
        let t = &targets[i];
        if let Some(role) = role {
            assert_eq!(
                well_known.get(t["folderId"].as_str().unwrap()).map(String::as_str),
                Some(role),
                "{what}: not in the well-known folder"
            );
        }
        let has = |f: &str| s.flags.iter().any(|x| x == f);
        assert_eq!(t["isRead"], has("\\Seen"), "{what}: isRead");
        let status = t["flag"]["flagStatus"].as_str().unwrap_or("notFlagged");
        assert_eq!(status == "flagged", has("\\Flagged"), "{what}: flag {status}");
        let categories: Vec<&str> = s
            .flags
            .iter()
            .filter(|f| !f.starts_with('\\') && !f.starts_with('$'))
            .map(String::as_str)
            .collect();
        let got: Vec<&str> = t["categories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(got, categories, "{what}: categories");
        let received = chrono::DateTime::parse_from_rfc3339(t["receivedDateTime"].as_str().unwrap())
            .unwrap()
            .timestamp();
        assert_eq!(received, s.internal_date, "{what}: receivedDateTime");
    }
}

// --- the run ------------------------------------------------------------------------

/// A config and users file in a directory of their own (own checkpoint).
struct Run {
    dir: tempfile::TempDir,
}

impl Run {
    fn new(source_port: u16, target: &Target, user_root: Option<&str>) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "[source]\nhost = \"127.0.0.1\"\nport = {source_port}\nsecurity = \"plain\"\n\n{}\n[state]\npath = \"state.db\"\n",
            target.config()
        );
        std::fs::write(dir.path().join("cutover.toml"), config).unwrap();
        let mut columns: Vec<(&str, String)> = vec![
            ("EmailAddress", EMAIL.into()),
            ("UserName", LOGIN.into()),
            ("Password", PASSWORD.into()),
        ];
        if let Some(root) = user_root {
            columns.push(("UserRoot", root.into()));
        }
        columns.extend(target.columns());
        let header: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
        let row: Vec<&str> = columns.iter().map(|(_, v)| v.as_str()).collect();
        std::fs::write(
            dir.path().join("users.csv"),
            format!("{}\r\n{}\r\n", header.join(","), row.join(",")),
        )
        .unwrap();
        Run { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("cutover.toml")
    }

    fn cutover(&self, command: &str) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args([command, "--config", "cutover.toml", "--users", "users.csv"])
            .env("CUTOVER_TEST_ADMIN_PW", ADMIN_PASSWORD)
            .env(GRAPH_SECRET_ENV, GRAPH_SECRET)
            .current_dir(self.dir.path())
            .output()
            .expect("run cutover")
    }
}

/// The spine: first copy, a no-op resync, verify; the source untouched.
fn spine(source: &Source, target: &Target, user_root: Option<&str>) {
    let started = Instant::now();
    let want = source.server.messages(LOGIN);
    assert!(!want.is_empty());
    let target_before = target.folders();
    let run = Run::new(source.relay.port(), target, user_root);

    let out = run.cutover("migrate");
    assert_eq!(out.status.code(), Some(0), "first migrate: {}", explain(&out));
    target.assert_holds(&want, &target_before);

    let copied = target.snapshot();
    let out = source.assert_no_bodies_during("second migrate", || run.cutover("migrate"));
    assert_eq!(out.status.code(), Some(0), "second migrate: {}", explain(&out));
    assert!(target.snapshot() == copied, "the second migrate changed the target");

    let out = run.cutover("verify");
    assert_eq!(out.status.code(), Some(0), "verify: {}", explain(&out));
    assert!(
        source.server.messages(LOGIN) == want,
        "the source changed (flags added?)"
    );
    eprintln!("spine took {:?}", started.elapsed());
}

fn source_user() -> Vec<(String, String)> {
    vec![(LOGIN.into(), PASSWORD.into())]
}

fn target_user() -> Vec<(String, String)> {
    vec![(LOGIN.into(), TARGET_PASSWORD.into())]
}

fn dovecot_target() -> Dovecot {
    Dovecot::start(DovecotOptions {
        users: target_user(),
        ..Default::default()
    })
}

fn cyrus(config: CyrusConfig, users: Vec<(String, String)>) -> Cyrus {
    Cyrus::start(CyrusOptions { config, users })
}

fn imap_target(server: &dyn MailServer) -> Target<'_> {
    Target::Imap {
        server,
        user: LOGIN,
        login: TargetLogin::Own,
    }
}

// --- the pairs ------------------------------------------------------------------------

#[test]
fn courier_to_dovecot() {
    let courier = Courier::start(CourierOptions {
        users: source_user(),
        ..Default::default()
    });
    fill_mailbox(&courier, 101);
    let target = dovecot_target();
    spine(
        &Source::new(&courier, Counter::Courier(&courier)),
        &imap_target(&target),
        None,
    );
}

#[test]
fn dovecot_to_cyrus_debian() {
    let source = Dovecot::start(DovecotOptions {
        users: source_user(),
        ..Default::default()
    });
    fill_mailbox(&source, 102);
    let target = cyrus(CyrusConfig::Debian, target_user());
    spine(
        &Source::new(&source, Counter::Dovecot(&source)),
        &imap_target(&target),
        None,
    );
}

#[test]
fn dovecot_to_cyrus_upstream() {
    let source = Dovecot::start(DovecotOptions {
        users: source_user(),
        ..Default::default()
    });
    fill_mailbox(&source, 103);
    let target = cyrus(CyrusConfig::Upstream, target_user());
    spine(
        &Source::new(&source, Counter::Dovecot(&source)),
        &imap_target(&target),
        None,
    );
}

#[test]
fn cyrus_debian_to_dovecot() {
    let source = cyrus(CyrusConfig::Debian, source_user());
    fill_mailbox(&source, 104);
    let target = dovecot_target();
    spine(&Source::new(&source, Counter::None), &imap_target(&target), None);
}

#[test]
fn cpanel_dovecot_to_graph() {
    let source = Dovecot::start(DovecotOptions {
        users: source_user(),
        ..DovecotOptions::cpanel()
    });
    fill_mailbox(&source, 105);
    let emu = Emu::start();
    spine(
        &Source::new(&source, Counter::Dovecot(&source)),
        &Target::Graph(&emu),
        None,
    );
}

/// Courier makes up a fresh UIDVALIDITY in every session for a folder no
/// client ever SELECTed (mail an MDA wrote into the Maildir), and cutover
/// only EXAMINEs: its scan and its fetches see different UIDVALIDITYs and
/// UIDs (the relay delays each new session past the next second, so they
/// always do). The first run copies everything, or says which folder it
/// could not finish; it never claims success with mail missing, and never
/// copies a message twice. The next run converges.
#[test]
fn courier_folders_without_saved_uids_are_copied_completely_or_reported() {
    let courier = Courier::start(CourierOptions {
        users: source_user(),
        ..Default::default()
    });
    let all = messages(106, 24, true);
    // Written to disk, never SELECTed: no courierimapuiddb.
    let unsaved = ["INBOX", "Direct Mail", "Archive/2024"];
    for (folder, chunk) in unsaved.iter().zip(all.chunks(6)) {
        courier.deliver_maildir(LOGIN, folder, chunk);
    }
    courier.deliver(LOGIN, "Sent", &all[18..]);
    let want = courier.messages(LOGIN);
    assert_eq!(want.len(), all.len());
    for folder in unsaved {
        assert!(
            !courier.folder_dir(LOGIN, folder).join("courierimapuiddb").exists(),
            "{folder} has saved UIDs"
        );
    }
    let dovecot = dovecot_target();
    let target = imap_target(&dovecot);
    let before = target.folders();
    let source = Source::behind(
        Relay::delaying_sessions(courier.port(), Duration::from_millis(1100)),
        &courier,
        Counter::Courier(&courier),
    );
    let run = Run::new(source.relay.port(), &target, None);

    // Each such folder is copied again in one session (one EXAMINE: its
    // UIDs hold for that long), so the first run is complete.
    let out = run.cutover("migrate");
    assert_eq!(out.status.code(), Some(0), "first migrate: {}", explain(&out));
    target.assert_holds(&want, &before);
    let status = status_json(&run.config());
    assert_eq!(user_status(&status, EMAIL)["state"], "done", "{status:#}");

    // Later runs (a new UIDVALIDITY again) re-match and copy nothing twice.
    let out = run.cutover("migrate");
    assert_eq!(out.status.code(), Some(0), "second migrate: {}", explain(&out));
    target.assert_holds(&want, &before);
    // Read-only: nothing opened those folders read-write on the source.
    for folder in unsaved {
        assert!(
            !courier.folder_dir(LOGIN, folder).join("courierimapuiddb").exists(),
            "{folder} was SELECTed on the source"
        );
    }
}

/// A target mailbox that may not get more folders (here: Cyrus, with a
/// folder-count quota of one, the INBOX: `SETQUOTA (X-NUM-FOLDERS 1)`).
/// `check` says so before anything is copied, with where folders would go;
/// `migrate` fails those folders, not the mailbox: the INBOX is copied,
/// the user ends partial, exit 1.
#[test]
fn a_target_that_refuses_folder_creation_is_flagged_by_check_and_costs_only_those_folders() {
    let source = Dovecot::start(DovecotOptions {
        users: source_user(),
        ..Default::default()
    });
    let want = fill_mailbox(&source, 108);
    let cyrus = cyrus(CyrusConfig::Debian, target_user());
    let mut admin = cyrus.admin();
    admin
        .command(&format!("SETQUOTA user.{LOGIN} (X-NUM-FOLDERS 1)"))
        .expect_ok("SETQUOTA");
    admin.logout();
    let target = imap_target(&cyrus);
    let run = Run::new(source.port(), &target, None);

    let out = run.cutover("check");
    assert_eq!(out.status.code(), Some(1), "check: {}", explain(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("refused to create a folder") && said.contains("INBOX."),
        "check does not say that folders cannot be created, or where: {said}"
    );
    assert!(
        !folder_names(&cyrus.folders(LOGIN))
            .iter()
            .any(|f| f.contains("cutover-check")),
        "check left its scratch folder behind"
    );

    let out = run.cutover("migrate");
    assert_eq!(out.status.code(), Some(1), "migrate: {}", explain(&out));
    let inbox: Vec<&StoredMessage> = want.iter().filter(|m| m.folder == "INBOX").collect();
    let got = cyrus.messages(LOGIN);
    assert!(!inbox.is_empty());
    assert_eq!(
        got.iter().filter(|m| m.folder == "INBOX").count(),
        inbox.len(),
        "the INBOX was not copied: {:?}",
        by_folder(got.iter().map(|m| m.folder.as_str()))
    );
    let status = status_json(&run.config());
    let user = user_status(&status, EMAIL);
    assert_eq!(user["state"], "partial", "{user:#}");
    let failed = items_by_state(&run.config(), EMAIL);
    let refused = want.iter().filter(|m| m.folder != "INBOX").count();
    assert_eq!(
        failed.get("failed").map(Vec::len),
        Some(refused),
        "every message of a refused folder fails: {failed:?}"
    );
}

/// The one session that copies a folder without saved UIDs is lost
/// half-way (its first body fetch cuts the connection), and the next
/// session sees yet another UIDVALIDITY: that folder's messages cannot be
/// reached in this run. The user ends partial naming the folder and how
/// many messages were left, the run exits 1, nothing is copied twice, and
/// the next run completes.
#[test]
fn courier_folder_left_by_a_lost_session_makes_the_user_partial_until_the_next_run() {
    let courier = Courier::start(CourierOptions {
        users: source_user(),
        ..Default::default()
    });
    let all = messages(109, 12, true);
    let unsaved = ["INBOX", "Direct Mail"];
    for (folder, chunk) in unsaved.iter().zip(all.chunks(6)) {
        courier.deliver_maildir(LOGIN, folder, chunk);
    }
    let want = courier.messages(LOGIN);
    let dovecot = dovecot_target();
    let target = imap_target(&dovecot);
    let before = target.folders();
    // Every EXAMINE a second late: no two openings of a folder share a
    // UIDVALIDITY, so only the one-session copy can reach these folders;
    // its first body fetch is the run's first, and is cut.
    let relay =
        Relay::slow_to_open_dropping_once(courier.port(), "EXAMINE", Duration::from_millis(1100), "BODY.PEEK[]", 1);
    let source = Source::behind(relay, &courier, Counter::Courier(&courier));
    let run = Run::new(source.relay.port(), &target, None);

    let out = run.cutover("migrate");
    assert_eq!(out.status.code(), Some(1), "first migrate: {}", explain(&out));
    let status = status_json(&run.config());
    let user = user_status(&status, EMAIL);
    assert_eq!(user["state"], "partial", "{user:#}");
    let said = user["last_error"].as_str().unwrap_or_default();
    assert!(
        unsaved
            .iter()
            .any(|f| said.contains(&format!("6 messages of folder {f} were left"))),
        "the reason does not say how many messages of which folder were left: {said}"
    );
    let got = dovecot.messages(LOGIN);
    assert_eq!(
        got.len(),
        6,
        "one folder copied, the other left: {:?}",
        by_folder(got.iter().map(|m| m.folder.as_str()))
    );

    let out = run.cutover("migrate");
    assert_eq!(out.status.code(), Some(0), "second migrate: {}", explain(&out));
    target.assert_holds(&want, &before);
}

/// `UserRoot=INBOX` (a users file written for Courier, whose folders are
/// all below `INBOX.`): every folder is copied relative to that root, and
/// the INBOX itself too.
#[test]
fn courier_user_root_inbox_copies_inbox_and_every_folder() {
    let courier = Courier::start(CourierOptions {
        users: source_user(),
        ..Default::default()
    });
    fill_mailbox(&courier, 107);
    let target = Dovecot::start(DovecotOptions {
        users: vec![(EMAIL.into(), TARGET_PASSWORD.into())],
        master: Some(("admin".into(), ADMIN_PASSWORD.into())),
        ..Default::default()
    });
    spine(
        &Source::new(&courier, Counter::Courier(&courier)),
        &Target::Imap {
            server: &target,
            user: EMAIL,
            login: TargetLogin::Master,
        },
        Some("INBOX"),
    );
}
