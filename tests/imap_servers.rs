//! Proves the Courier, Cyrus and cPanel-style Dovecot fixtures do what
//! namespace tests will rely on: each starts, announces the NAMESPACE the real
//! server does, stores messages with their flags and dates, and gives the
//! same bytes back, read independently over IMAP.
//!
//! Each test starts its own instance (they run in parallel, a few seconds
//! each).

mod support;

use std::time::Duration;

use support::imap::{self, ImapConn};
use support::mailgen::{self, to_crlf};
use support::{
    Courier, CourierOptions, Cyrus, CyrusConfig, CyrusOptions, Dovecot, DovecotOptions, GenMessage, MailServer,
    StoredMessage,
};

const USER: &str = "alice";
const PASSWORD: &str = "alice-pw";

fn users() -> Vec<(String, String)> {
    vec![(USER.to_string(), PASSWORD.to_string())]
}

/// Messages with system flags and a keyword, CRLF, distinct dates.
fn sample(seed: u64, count: usize) -> Vec<GenMessage> {
    let flag_sets: [&[&str]; 4] = [&["\\Seen"], &[], &["\\Answered", "\\Flagged"], &["\\Seen", "$Label1"]];
    mailgen::generate(seed, count, 2_000)
        .into_iter()
        .enumerate()
        .map(|(i, mut m)| {
            m.flags = flag_sets[i % flag_sets.len()].iter().map(|f| f.to_string()).collect();
            mailgen::sort_flags(&mut m.flags);
            m
        })
        .collect()
}

/// Asserts `got` (one folder's messages) is `want` delivered in order.
#[track_caller]
fn assert_same(folder: &str, got: &[&StoredMessage], want: &[GenMessage]) {
    assert_eq!(got.len(), want.len(), "message count in {folder}");
    let mut last_uid = 0;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.raw == to_crlf(&w.raw), "{folder}[{i}]: bytes differ");
        assert_eq!(g.flags, w.flags, "{folder}[{i}] flags");
        assert_eq!(g.internal_date, w.internal_date, "{folder}[{i}] internal date");
        assert!(g.uid > last_uid, "{folder}[{i}]: UIDs follow delivery order");
        last_uid = g.uid;
    }
}

/// Delivers into INBOX and two folders (one non-ASCII, one nested) through
/// the fixture, then checks the fixture's view and a raw IMAP read of one
/// message.
fn round_trip(server: &dyn MailServer) {
    let inbox = sample(1, 4);
    let received = sample(2, 2);
    let nested = sample(3, 3);
    server.deliver(USER, "INBOX", &inbox);
    server.deliver(USER, "Reçus", &received);
    server.deliver(USER, "Archive/2024", &nested);

    let stored = server.messages(USER);
    let in_folder = |f: &str| stored.iter().filter(|m| m.folder == f).collect::<Vec<_>>();
    assert_same("INBOX", &in_folder("INBOX"), &inbox);
    assert_same("Reçus", &in_folder("Reçus"), &received);
    assert_same("Archive/2024", &in_folder("Archive/2024"), &nested);

    let folders = server.folders(USER);
    assert_eq!(folders[0].name, "INBOX");
    for (name, count) in [("INBOX", 4), ("Archive", 0), ("Archive/2024", 3), ("Reçus", 2)] {
        let f = folders
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("{name} in {folders:?}"));
        assert_eq!(f.messages, count, "{f:?}");
        assert!(f.uidnext > count && f.uidvalidity > 0, "{f:?}");
    }

    // Independently: the nested folder by its server name, over raw IMAP.
    let mut c = ImapConn::connect(server.port());
    c.login(USER, PASSWORD).expect_ok("LOGIN");
    let mailbox = server.mailbox_name("Archive/2024");
    let fetched = c.fetch_all(&mailbox);
    assert_eq!(fetched.len(), nested.len());
    assert!(fetched[2].raw == nested[2].raw, "BODY[] of {mailbox}");
    assert_eq!(imap::mutf7_encode(&server.mailbox_name("Reçus")), {
        let p = server.prefix();
        format!("{p}Re&AOc-us")
    });
    c.logout();
}

/// NAMESPACE and the LIST separator as a logged-in user sees them.
fn namespace(port: u16) -> (String, Vec<imap::ListEntry>) {
    let mut c = ImapConn::connect(port);
    c.login(USER, PASSWORD).expect_ok("LOGIN");
    let ns = c.namespace();
    let list = c.list("", "*");
    c.logout();
    (ns, list)
}

#[test]
fn courier_announces_inbox_prefix_and_round_trips_mail() {
    let courier = Courier::start(CourierOptions {
        users: users(),
        ..Default::default()
    });
    let (ns, list) = namespace(courier.port());
    assert_eq!(ns, support::courier::NAMESPACE);
    assert_eq!(list.len(), 1, "a new user has INBOX only: {list:?}");
    assert_eq!(list[0].delimiter, Some('.'));

    let mut c = ImapConn::connect(courier.port());
    let caps = c.capabilities();
    assert!(
        !caps.iter().any(|c| c == "LITERAL+"),
        "Courier has no LITERAL+: {caps:?}"
    );
    c.login(USER, PASSWORD).expect_ok("LOGIN");
    let r = c.command("CREATE Sent");
    assert_eq!((r.status.as_str(), r.text.as_str()), ("NO", "NO Invalid mailbox name."));
    c.command("CREATE INBOX.Sent").expect_ok("CREATE INBOX.Sent");
    c.logout();

    round_trip(&courier);
    // Maildir++ on disk, names in UTF-8 (not modified UTF-7).
    assert!(courier.maildir(USER).join(".Reçus/cur").is_dir());
    assert!(courier.maildir(USER).join(".Archive.2024/courierimapuiddb").is_file());

    // Session log: two BODY[] fetches by a client; the fixture's own
    // sessions (from 127.0.0.2) are not counted.
    // Three client sessions so far: NAMESPACE, CREATE, round_trip's read.
    // Their lines are written as each imapd exits: wait for them.
    let before = courier.wait_for_sessions(3, Duration::from_secs(10));
    assert_eq!(before.sessions, 3, "{}", courier.session_log());
    let mut c = ImapConn::connect(courier.port());
    c.login(USER, PASSWORD).expect_ok("LOGIN");
    c.command("EXAMINE INBOX").expect_ok("EXAMINE");
    c.command("UID FETCH 1:2 (BODY.PEEK[])").expect_ok("FETCH");
    c.logout();
    let after = courier.wait_for_sessions(before.sessions + 1, Duration::from_secs(10));
    assert_eq!(after.sessions, before.sessions + 1, "{}", courier.session_log());
    // Courier logs bytes, not fetch counts: those of the stored form, with
    // LF line ends (a CRLF message is stored one byte shorter per line).
    let inbox = sample(1, 4);
    let stored_len = |raw: &[u8]| (raw.len() - raw.windows(2).filter(|w| w == b"\r\n").count()) as u64;
    let sent = stored_len(&inbox[0].raw) + stored_len(&inbox[1].raw);
    assert_eq!(after.body_bytes - before.body_bytes, sent, "{}", courier.session_log());
    assert_eq!(after.body_count, 0);
}

#[test]
fn courier_folder_delivered_to_disk_has_no_stable_uidvalidity_until_selected() {
    let mut courier = Courier::start(CourierOptions {
        users: users(),
        ..Default::default()
    });
    let msgs: Vec<GenMessage> = sample(4, 3)
        .into_iter()
        .map(|mut m| {
            m.flags.retain(|f| f.starts_with('\\'));
            m
        })
        .collect();
    courier.deliver_maildir(USER, "Direct", &msgs);
    let stored = courier.messages(USER);
    let got: Vec<&StoredMessage> = stored.iter().filter(|m| m.folder == "Direct").collect();
    assert_same("Direct", &got, &msgs);

    let uiddb = courier.folder_dir(USER, "Direct").join("courierimapuiddb");
    let status = |c: &Courier| {
        c.folders(USER)
            .into_iter()
            .find(|f| f.name == "Direct")
            .expect("Direct")
    };
    let first = status(&courier);
    assert!(!uiddb.exists(), "EXAMINE/STATUS saved no UIDs");
    // UIDVALIDITY is made up from the clock: a second later it differs.
    std::thread::sleep(Duration::from_millis(1100));
    let second = status(&courier);
    assert_ne!(first.uidvalidity, second.uidvalidity, "a fresh UIDVALIDITY per session");

    // One read-write SELECT saves it for good.
    let mut c = ImapConn::connect(courier.port());
    c.login(USER, PASSWORD).expect_ok("LOGIN");
    c.command("SELECT INBOX.Direct").expect_ok("SELECT");
    c.logout();
    assert!(uiddb.exists(), "SELECT wrote courierimapuiddb");
    let third = status(&courier);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(status(&courier).uidvalidity, third.uidvalidity, "stable after SELECT");

    // Stop and start by PID, same port, same data (the namespace is new).
    let before = courier.messages(USER);
    courier.restart();
    assert_eq!(courier.messages(USER), before);
    assert_eq!(status(&courier).uidvalidity, third.uidvalidity);
}

#[test]
fn cyrus_debian_puts_every_folder_under_inbox() {
    let mut cyrus = Cyrus::start(CyrusOptions {
        config: CyrusConfig::Debian,
        users: users(),
    });
    let (ns, list) = namespace(cyrus.port());
    assert_eq!(ns, support::cyrus::NAMESPACE_DEBIAN);
    assert_eq!(list.len(), 1, "a new user has INBOX only: {list:?}");
    assert_eq!(list[0].delimiter, Some('.'));

    let mut c = ImapConn::connect(cyrus.port());
    c.login(USER, PASSWORD).expect_ok("LOGIN");
    let r = c.command("CREATE Sent");
    assert_eq!((r.status.as_str(), r.text.as_str()), ("NO", "NO Permission denied"));
    c.command("CREATE INBOX.Sent").expect_ok("CREATE INBOX.Sent");
    c.logout();

    round_trip(&cyrus);
    assert_eq!(cyrus.mailbox_name("Archive/2024"), "INBOX.Archive.2024");

    // Stop and start by PID, same port, same data.
    let before = cyrus.messages(USER);
    cyrus.restart();
    assert_eq!(cyrus.messages(USER), before);
}

#[test]
fn cyrus_instances_stop_independently() {
    // master answers SIGTERM by signalling its process group: each instance
    // must have its own, or stopping one ends the others' sessions.
    let keep = Cyrus::start(CyrusOptions {
        users: users(),
        ..Default::default()
    });
    let stopped = Cyrus::start(CyrusOptions {
        users: users(),
        ..Default::default()
    });
    let mut c = ImapConn::connect(keep.port());
    c.login(USER, PASSWORD).expect_ok("LOGIN");
    drop(stopped);
    c.command("NOOP").expect_ok("NOOP after the other instance stopped");
    c.logout();
}

#[test]
fn cyrus_upstream_has_a_flat_personal_namespace() {
    let cyrus = Cyrus::start(CyrusOptions {
        config: CyrusConfig::Upstream,
        users: users(),
    });
    let (ns, list) = namespace(cyrus.port());
    assert_eq!(ns, support::cyrus::NAMESPACE_UPSTREAM);
    assert_eq!(list.len(), 1, "a new user has INBOX only: {list:?}");
    assert_eq!(list[0].delimiter, Some('/'));

    let mut c = ImapConn::connect(cyrus.port());
    c.login(USER, PASSWORD).expect_ok("LOGIN");
    c.command("CREATE Sent").expect_ok("CREATE Sent");
    c.logout();

    round_trip(&cyrus);
    assert_eq!(cyrus.mailbox_name("Archive/2024"), "Archive/2024");
}

#[test]
fn cpanel_dovecot_has_inbox_prefix_and_dot_separator() {
    let dovecot = Dovecot::start(DovecotOptions {
        users: users(),
        ..DovecotOptions::cpanel()
    });
    let (ns, list) = namespace(dovecot.port());
    assert_eq!(ns, r#"* NAMESPACE (("INBOX." ".")) NIL NIL"#);
    let names: Vec<&str> = list.iter().map(|e| e.name.as_str()).collect();
    for special in [
        "INBOX",
        "INBOX.Sent",
        "INBOX.Drafts",
        "INBOX.Trash",
        "INBOX.Junk",
        "INBOX.Archive",
    ] {
        assert!(names.contains(&special), "{special} in {names:?}");
    }
    assert!(list.iter().all(|e| e.delimiter == Some('.')));
    let sent = list.iter().find(|e| e.name == "INBOX.Sent").expect("INBOX.Sent");
    assert!(sent.attributes.iter().any(|a| a == "\\Sent"), "{sent:?}");

    round_trip(&dovecot);
    assert_eq!(dovecot.mailbox_name("Archive/2024"), "INBOX.Archive.2024");
}
