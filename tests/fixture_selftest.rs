//! Proves the Dovecot fixture and the mail generator do what other tests rely
//! on: if these fail, a failing migration test says nothing about cutover.
//!
//! Each test starts its own real Dovecot instance (they run in parallel) and
//! checks the fixture's view (`messages`, `folders`, `session_stats`) against
//! what an independent raw IMAP conversation observes.

mod support;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::imap::{self, ImapConn};
use support::mailgen::{self, sort_flags, to_crlf};
use support::{Dovecot, DovecotOptions, GenMessage, StoredMessage};

const ALICE: &str = "alice@example.test";
const BOB: &str = "bob@example.test";

fn two_users() -> DovecotOptions {
    DovecotOptions {
        users: vec![
            (ALICE.to_string(), "alice-pw".to_string()),
            (BOB.to_string(), "bob-pw".to_string()),
        ],
        ..Default::default()
    }
}

fn in_folder<'a>(stored: &'a [StoredMessage], folder: &str) -> Vec<&'a StoredMessage> {
    stored.iter().filter(|m| m.folder == folder).collect()
}

/// Asserts that `got` is `want` delivered in order into one folder: same
/// bytes (as served over IMAP), flags and dates, UIDs ascending.
#[track_caller]
fn assert_same(folder: &str, got: &[&StoredMessage], want: &[GenMessage]) {
    assert_eq!(got.len(), want.len(), "message count in {folder}");
    let mut last_uid = 0;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.raw == to_crlf(&w.raw),
            "{folder}[{i}]: bytes differ ({} vs {} bytes, ids {:?} vs {:?})",
            g.raw.len(),
            w.raw.len(),
            mailgen::message_id(&g.raw),
            mailgen::message_id(&w.raw)
        );
        assert_eq!(g.flags, w.flags, "{folder}[{i}] flags");
        assert_eq!(g.internal_date, w.internal_date, "{folder}[{i}] internal date");
        assert!(g.uid > last_uid, "{folder}[{i}]: UIDs must follow delivery order");
        last_uid = g.uid;
    }
}

fn login(dc: &Dovecot, user: &str, password: &str) -> ImapConn {
    let mut c = ImapConn::connect(dc.port());
    c.login(user, password).expect_ok("LOGIN");
    c
}

#[test]
fn deliver_then_read_back_byte_exact_with_flags_and_dates() {
    let dc = Dovecot::start(two_users());
    let generated = mailgen::generate(7, 160, 6000);
    let plan: [(&str, std::ops::Range<usize>); 5] = [
        ("INBOX", 0..50),
        ("Répertoire/Unterordner", 50..80),
        ("日本語", 80..110),
        ("Projects/2024/Q1", 110..140),
        ("Mr. Smith", 140..160),
    ];
    dc.create_folder(ALICE, "Empty/Nested/Deep");
    for (folder, range) in &plan {
        dc.deliver(ALICE, folder, &generated[range.clone()]);
    }
    // A second delivery appends after the first one.
    let odd: Vec<GenMessage> = mailgen::odd_corpus().into_iter().map(|(_, m)| m).collect();
    dc.deliver(ALICE, "INBOX", &odd);

    let stored = dc.messages(ALICE);
    assert_eq!(stored.len(), 160 + odd.len());
    for (folder, range) in &plan {
        let got = in_folder(&stored, folder);
        let want: &[GenMessage] = &generated[range.clone()];
        if *folder == "INBOX" {
            let all: Vec<GenMessage> = want.iter().chain(&odd).cloned().collect();
            assert_same(folder, &got, &all);
            assert_eq!(got[0].uid, 1);
            assert_eq!(got.last().unwrap().uid as usize, all.len());
        } else {
            assert_same(folder, &got, want);
        }
    }
    // Keywords survive (the generator puts one on ~6% of messages).
    assert!(stored.iter().any(|m| m.flags.iter().any(|f| !f.starts_with('\\'))));

    let folders = dc.folders(ALICE);
    let names: Vec<&str> = folders.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names[0], "INBOX");
    for want in [
        "Archive",
        "Drafts",
        "Junk",
        "Sent",
        "Trash",
        "Répertoire",
        "Répertoire/Unterordner",
        "日本語",
        "Projects",
        "Projects/2024",
        "Projects/2024/Q1",
        "Mr. Smith",
        "Empty",
        "Empty/Nested",
        "Empty/Nested/Deep",
    ] {
        assert!(names.contains(&want), "folder {want} missing from {names:?}");
    }
    for f in &folders {
        let count = in_folder(&stored, &f.name).len() as u32;
        assert_eq!(f.messages, count, "STATUS MESSAGES of {}", f.name);
        assert_eq!(f.uidnext, count + 1, "UIDNEXT of {}", f.name);
        assert!(f.uidvalidity > 0);
    }

    // Bob is untouched and only has the standard folders.
    assert!(dc.messages(BOB).is_empty());
    let bob: Vec<String> = dc.folders(BOB).into_iter().map(|f| f.name).collect();
    assert_eq!(bob, ["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"]);
}

#[test]
fn imap_view_matches_fixture_view() {
    let dc = Dovecot::start(two_users());
    let corpus = mailgen::odd_corpus();
    let odd: Vec<GenMessage> = corpus.iter().map(|(_, m)| m.clone()).collect();
    dc.deliver(ALICE, "Répertoire/日本語", &odd);
    let stored = dc.messages(ALICE);
    assert_same("Répertoire/日本語", &in_folder(&stored, "Répertoire/日本語"), &odd);

    assert_eq!(imap::mutf7_encode("Répertoire/日本語"), "R&AOk-pertoire/&ZeVnLIqe-");
    assert_eq!(
        imap::mutf7_decode("R&AOk-pertoire/&ZeVnLIqe- &- ok"),
        "Répertoire/日本語 & ok"
    );
    let mut c = login(&dc, ALICE, "alice-pw");
    let list = c.command("LIST \"\" \"*\"").expect_ok("LIST").data_text();
    assert!(list.contains("\"/\" R&AOk-pertoire/&ZeVnLIqe-\r\n"), "{list}");
    for (name, flag) in support::dovecot::SPECIAL_USE {
        let line = list.lines().find(|l| l.ends_with(&format!(" {name}"))).unwrap_or("");
        assert!(line.contains(flag), "{name} should be {flag}: {list}");
    }
    let caps = c.command("CAPABILITY").expect_ok("CAPABILITY").data_text();
    for cap in ["UIDPLUS", "LITERAL+", "SPECIAL-USE", "MOVE", "CONDSTORE"] {
        assert!(caps.contains(cap), "capability {cap} missing: {caps}");
    }
    let sel = c
        .command(&format!(
            "EXAMINE {}",
            imap::quote(&imap::mutf7_encode("Répertoire/日本語"))
        ))
        .expect_ok("EXAMINE")
        .data_text();
    assert!(sel.contains(&format!("* {} EXISTS", odd.len())), "{sel}");
    for m in &stored {
        let r = c
            .command(&format!("UID FETCH {} (FLAGS INTERNALDATE BODY.PEEK[])", m.uid))
            .expect_ok("FETCH");
        let body = imap::first_literal(&r.data).expect("body literal");
        assert!(body == m.raw, "BODY[] of UID {} differs from messages()", m.uid);
        assert_eq!(imap::internaldate(&r.data), Some(m.internal_date), "UID {}", m.uid);
        let text = r.data_text();
        for f in &m.flags {
            assert!(text.contains(f.as_str()), "UID {} lacks {f}: {text}", m.uid);
        }
    }
    // The LF-only corpus file is served with CRLF, and messages() says so.
    let (i, _) = corpus
        .iter()
        .enumerate()
        .find(|(_, (name, _))| name.contains("lf-only"))
        .expect("LF-only corpus message");
    assert!(!odd[i].raw.windows(2).any(|w| w == b"\r\n"));
    assert!(stored[i].raw.windows(2).any(|w| w == b"\r\n"));
    c.logout().expect_ok("LOGOUT");
}

#[test]
fn appended_over_imap_is_visible() {
    let dc = Dovecot::start(two_users());
    let msgs = mailgen::generate(11, 3, 3000);
    let mut c = login(&dc, BOB, "bob-pw");
    c.command(&format!(
        "CREATE {}",
        imap::quote(&imap::mutf7_encode("Écoles/Réunions"))
    ))
    .expect_ok("CREATE");
    let r = c.append(
        "Écoles/Réunions",
        &msgs[0].flags,
        Some(msgs[0].internal_date),
        &msgs[0].raw,
    );
    assert!(r.text.contains("APPENDUID"), "UIDPLUS reply expected: {}", r.text);
    let kw = vec!["\\Flagged".to_string(), "$Label9".to_string()];
    c.append("INBOX", &kw, Some(1_600_000_000), &msgs[1].raw)
        .expect_ok("APPEND");
    c.append("INBOX", &[], Some(1_600_000_100), &msgs[2].raw)
        .expect_ok("APPEND");
    c.logout().expect_ok("LOGOUT");

    let stored = dc.messages(BOB);
    let inbox = in_folder(&stored, "INBOX");
    assert_eq!(inbox.len(), 2);
    assert_eq!(inbox[0].raw, msgs[1].raw);
    assert_eq!(inbox[0].flags, kw);
    assert_eq!(inbox[0].internal_date, 1_600_000_000);
    assert_eq!((inbox[0].uid, inbox[1].uid), (1, 2));
    assert!(inbox[1].flags.is_empty());
    let ecoles = in_folder(&stored, "Écoles/Réunions");
    assert_same("Écoles/Réunions", &ecoles, &msgs[..1]);
    // A client-created folder and delivered mail can be mixed.
    dc.deliver(BOB, "Écoles/Réunions", &msgs[1..]);
    assert_eq!(in_folder(&dc.messages(BOB), "Écoles/Réunions").len(), 3);
}

#[test]
fn uid_validity_can_be_forced() {
    let dc = Dovecot::start(two_users());
    dc.deliver(ALICE, "Box", &mailgen::generate(3, 5, 1000));
    let before = dc.folders(ALICE).into_iter().find(|f| f.name == "Box").unwrap();
    let new_value = before.uidvalidity.wrapping_add(1000);
    dc.set_uid_validity(ALICE, "Box", new_value);
    let after = dc.folders(ALICE).into_iter().find(|f| f.name == "Box").unwrap();
    assert_eq!(after.uidvalidity, new_value);
    // Documented behaviour: UIDs and UIDNEXT are kept.
    assert_eq!(after.uidnext, before.uidnext);
    let uids: Vec<u32> = in_folder(&dc.messages(ALICE), "Box").iter().map(|m| m.uid).collect();
    assert_eq!(uids, [1, 2, 3, 4, 5]);
    let mut c = login(&dc, ALICE, "alice-pw");
    let sel = c.command("SELECT Box").expect_ok("SELECT").data_text();
    assert!(sel.contains(&format!("[UIDVALIDITY {new_value}]")), "{sel}");
}

#[test]
fn session_stats_count_fetched_bodies() {
    let dc = Dovecot::start(two_users());
    let msgs = mailgen::generate(5, 6, 2000);
    dc.deliver(ALICE, "INBOX", &msgs);
    assert_eq!(dc.session_stats(), Default::default());

    let mut c = login(&dc, ALICE, "alice-pw");
    c.command("EXAMINE INBOX").expect_ok("EXAMINE");
    let r = c.command("UID FETCH 1:* BODY.PEEK[]").expect_ok("FETCH");
    assert_eq!(r.data_text().matches(" FETCH (").count(), 6);
    c.logout().expect_ok("LOGOUT");
    let s = dc.wait_for_sessions(1, Duration::from_secs(10));
    assert_eq!(s.sessions, 1);
    assert_eq!(s.body_count, 6);
    assert_eq!(s.body_bytes, msgs.iter().map(|m| m.raw.len() as u64).sum::<u64>());

    // A flags-and-headers-only session adds a session but no bodies.
    let mut c = login(&dc, ALICE, "alice-pw");
    c.command("EXAMINE INBOX").expect_ok("EXAMINE");
    c.command("UID FETCH 1:* (FLAGS UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        .expect_ok("FETCH");
    drop(c); // no LOGOUT: a dropped connection is logged too
    let s2 = dc.wait_for_sessions(2, Duration::from_secs(10));
    assert_eq!(s2.body_count, s.body_count);
    assert_eq!(s2.body_bytes, s.body_bytes);
    assert!(s2.hdr_count >= 6, "{s2:?}");
}

#[test]
fn master_user_logs_in_as_any_user() {
    let dc = Dovecot::start(DovecotOptions {
        master: Some(("admin".to_string(), "admin-pw".to_string())),
        ..two_users()
    });
    dc.deliver(BOB, "INBOX", &mailgen::generate(9, 4, 1000));
    let mut c = ImapConn::connect(dc.port());
    c.login(&format!("{BOB}*admin"), "admin-pw").expect_ok("master LOGIN");
    let sel = c.command("SELECT INBOX").expect_ok("SELECT").data_text();
    assert!(sel.contains("* 4 EXISTS"), "master session must see bob's INBOX: {sel}");
    c.logout().expect_ok("LOGOUT");

    let mut c = ImapConn::connect(dc.port());
    assert!(!c.login(&format!("{BOB}*admin"), "wrong").is_ok());
    assert!(!c.login(&format!("{BOB}*admin"), "bob-pw").is_ok());
    assert!(!c.login("nobody@example.test*admin", "admin-pw").is_ok());
    c.login(BOB, "bob-pw").expect_ok("own password still works");
}

#[test]
fn users_can_be_added_while_running() {
    let mut dc = Dovecot::start(DovecotOptions::default());
    let mut c = ImapConn::connect(dc.port());
    assert!(!c.login("carol@example.test", "carol-pw").is_ok());
    dc.add_user("carol@example.test", "carol-pw");
    c.login("carol@example.test", "carol-pw")
        .expect_ok("LOGIN after add_user");
    let names: Vec<String> = dc.folders("carol@example.test").into_iter().map(|f| f.name).collect();
    assert_eq!(names, ["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"]);
    drop(c);

    // Restart keeps data, users and ports.
    dc.deliver("carol@example.test", "Keep", &mailgen::generate(1, 3, 800));
    let (port, before) = (dc.port(), dc.messages("carol@example.test"));
    dc.stop();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "stopped server still listens"
    );
    dc.restart();
    assert_eq!(dc.port(), port);
    let mut c = login(&dc, "carol@example.test", "carol-pw");
    c.command("SELECT Keep").expect_ok("SELECT after restart");
    assert_eq!(dc.messages("carol@example.test"), before);
}

#[test]
fn dot_separator_is_translated() {
    let dc = Dovecot::start(DovecotOptions {
        separator: '.',
        ..two_users()
    });
    let msgs = mailgen::generate(21, 4, 1000);
    dc.deliver(ALICE, "Répertoire/Unterordner", &msgs[..2]);
    dc.deliver(ALICE, "Mr. Smith/Notes", &msgs[2..]);
    let names: Vec<String> = dc.folders(ALICE).into_iter().map(|f| f.name).collect();
    for want in ["Répertoire", "Répertoire/Unterordner", "Mr. Smith", "Mr. Smith/Notes"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    let stored = dc.messages(ALICE);
    assert_same(
        "Répertoire/Unterordner",
        &in_folder(&stored, "Répertoire/Unterordner"),
        &msgs[..2],
    );
    assert_same("Mr. Smith/Notes", &in_folder(&stored, "Mr. Smith/Notes"), &msgs[2..]);

    let mut c = login(&dc, ALICE, "alice-pw");
    let list = c.command("LIST \"\" \"*\"").expect_ok("LIST").data_text();
    assert!(list.contains("\".\" R&AOk-pertoire.Unterordner"), "{list}");
    assert!(list.contains("Mr\\\\2e Smith.Notes"), "{list}");
}

#[test]
fn tls_listener_verifies_against_ca_file() {
    let dc = Dovecot::start(DovecotOptions {
        tls: true,
        ..two_users()
    });
    let ca = dc.ca_file().expect("ca file");
    let imaps = dc.imaps_port().expect("imaps port");
    assert_ne!(imaps, dc.port());
    let s_client = |extra: &[&str]| {
        let out = Command::new("openssl")
            .arg("s_client")
            .args(extra)
            .arg("-CAfile")
            .arg(&ca)
            .args([
                "-verify_return_error",
                "-verify_ip",
                "127.0.0.1",
                "-servername",
                "localhost",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("openssl s_client (install openssl)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "s_client {extra:?} failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
        text
    };
    s_client(&["-connect", &format!("127.0.0.1:{imaps}")]);
    s_client(&["-connect", &format!("127.0.0.1:{}", dc.port()), "-starttls", "imap"]);
    let c = ImapConn::connect(dc.port());
    assert!(c.greeting.contains("STARTTLS"), "{}", c.greeting);

    let plain = Dovecot::start(DovecotOptions::default());
    assert_eq!((plain.imaps_port(), plain.ca_file()), (None, None));
    assert!(!ImapConn::connect(plain.port()).greeting.contains("STARTTLS"));
}

/// The product's TLS stack (rustls) must accept the fixture's certificate
/// chain for both names a config may use.
#[tokio::test]
async fn rustls_trusts_the_ca_file_for_ip_and_localhost() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, pki_types::ServerName};

    let dc = Dovecot::start(DovecotOptions {
        tls: true,
        ..Default::default()
    });
    let pem = std::fs::read(dc.ca_file().unwrap()).unwrap();
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = std::sync::Arc::new(
        ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    for name in ["127.0.0.1", "localhost"] {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", dc.imaps_port().unwrap()))
            .await
            .unwrap();
        let server_name = ServerName::try_from(name.to_string()).unwrap();
        let tls = tokio_rustls::TlsConnector::from(config.clone())
            .connect(server_name, tcp)
            .await
            .unwrap_or_else(|e| panic!("TLS handshake as {name}: {e}"));
        let mut greeting = String::new();
        BufReader::new(tls).read_line(&mut greeting).await.unwrap();
        assert!(greeting.starts_with("* OK"), "{greeting}");
    }
}

#[test]
fn parallel_instances_are_isolated() {
    let handles: Vec<_> = (0..3u64)
        .map(|seed| {
            std::thread::spawn(move || {
                let dc = Dovecot::start(two_users());
                let msgs = mailgen::generate(100 + seed, 10 + seed as usize, 1500);
                dc.deliver(ALICE, "Shared Name", &msgs);
                (dc, msgs)
            })
        })
        .collect();
    let instances: Vec<(Dovecot, Vec<GenMessage>)> = handles
        .into_iter()
        .map(|h| h.join().expect("instance thread"))
        .collect();
    let ports: HashSet<u16> = instances.iter().map(|(dc, _)| dc.port()).collect();
    assert_eq!(ports.len(), 3);
    for (dc, msgs) in &instances {
        assert_same("Shared Name", &in_folder(&dc.messages(ALICE), "Shared Name"), msgs);
    }
}

#[test]
fn bulk_delivery_is_fast() {
    let dc = Dovecot::start(two_users());
    let msgs = mailgen::generate(77, 2000, 10_000);
    let t = Instant::now();
    dc.deliver(ALICE, "Bulk", &msgs);
    let elapsed = t.elapsed();
    let stored = dc.messages(ALICE);
    assert_same("Bulk", &in_folder(&stored, "Bulk"), &msgs);
    assert!(
        elapsed < Duration::from_secs(20),
        "delivering 2000 messages took {elapsed:?}"
    );
    eprintln!(
        "delivered 2000 messages ({} MB) in {elapsed:?}",
        msgs.iter().map(|m| m.raw.len()).sum::<usize>() / 1_000_000
    );
}

// ----- generator ----------------------------------------------------------

#[test]
fn generator_is_deterministic_and_varied() {
    let a = mailgen::generate(42, 400, 8000);
    assert_eq!(a, mailgen::generate(42, 400, 8000));
    assert_ne!(a[0].raw, mailgen::generate(43, 1, 8000)[0].raw);

    let ids: HashSet<String> = a.iter().map(|m| mailgen::message_id(&m.raw).unwrap()).collect();
    assert_eq!(ids.len(), a.len(), "Message-IDs must be unique");
    let dates: HashSet<i64> = a.iter().map(|m| m.internal_date).collect();
    assert_eq!(dates.len(), a.len(), "INTERNALDATEs must be distinct");
    assert!(
        a.windows(2).any(|w| w[0].internal_date > w[1].internal_date),
        "dates not shuffled"
    );
    let (min, max) = (dates.iter().min().unwrap(), dates.iter().max().unwrap());
    assert!(*min >= mailgen::DATES_FROM && *max < mailgen::DATES_FROM + mailgen::DATES_SPAN);
    assert!(max - min > 3 * 365 * 86_400, "dates should spread over years");

    let avg = a.iter().map(|m| m.raw.len()).sum::<usize>() / a.len();
    assert!((5000..12000).contains(&avg), "average size {avg} far from 8000");

    let parser = mail_parser::MessageParser::default();
    let (mut alternative, mut attachments, mut non_ascii_subject, mut keyword) = (0, 0, 0, 0);
    for m in &a {
        assert!(!has_bare_lf(&m.raw), "generated mail must be CRLF");
        let mut sorted = m.flags.clone();
        sort_flags(&mut sorted);
        assert_eq!(sorted, m.flags, "flags in canonical order");
        keyword += m.flags.iter().any(|f| !f.starts_with('\\')) as usize;
        let parsed = parser.parse(&m.raw).expect("generated mail parses");
        assert!(parsed.date().is_some() && parsed.from().is_some());
        let subject = parsed.subject().expect("subject");
        non_ascii_subject += !subject.is_ascii() as usize;
        attachments += (parsed.attachment_count() > 0) as usize;
        let raw = String::from_utf8_lossy(&m.raw);
        alternative += raw.contains("multipart/alternative") as usize;
    }
    for (what, n) in [
        ("multipart/alternative", alternative),
        ("attachments", attachments),
        ("non-ASCII subjects", non_ascii_subject),
        ("keywords", keyword),
    ] {
        assert!(n > 5 && n < a.len(), "{what}: {n} of {}", a.len());
    }
}

#[test]
fn big_message_has_exact_size() {
    let parser = mail_parser::MessageParser::default();
    for size in [2048, 2049, 2050, 77_777, 1_000_003, 36 * 1024 * 1024 + 1024] {
        let m = mailgen::big_message(size, 3);
        assert_eq!(m.raw.len(), size);
        assert!(!has_bare_lf(&m.raw));
        assert!(m.raw.split(|&b| b == b'\n').all(|l| l.len() <= 998), "line too long");
        let parsed = parser.parse(&m.raw).expect("parses");
        assert_eq!(parsed.attachment_count(), 1, "size {size}");
        assert!(mailgen::message_id(&m.raw).is_some());
    }
}

#[test]
fn odd_corpus_is_complete() {
    let corpus = mailgen::odd_corpus();
    assert!(corpus.len() >= 30, "only {} corpus files", corpus.len());
    let parser = mail_parser::MessageParser::default();
    for (name, m) in &corpus {
        assert!(m.raw.len() < 20_000, "{name} is too big");
        assert!(parser.parse(&m.raw).is_some(), "{name} does not parse");
    }
    let get = |part: &str| &corpus.iter().find(|(n, _)| n.contains(part)).unwrap().1;
    assert!(has_bare_lf(&get("lf-only").raw));
    assert_eq!(mailgen::message_id(&get("missing-message-id").raw), None);
    assert_eq!(
        mailgen::message_id(&get("duplicate-headers").raw).as_deref(),
        Some("<odd-22.first@corpus.cutover.test>")
    );
    assert!(get("8bit-without-cte").raw.iter().any(|&b| b >= 0x80));
    // Byte-exact storage: git must not have rewritten line ends.
    assert!(get("koi8-r").raw.windows(2).any(|w| w == b"\r\n"));
}

fn has_bare_lf(raw: &[u8]) -> bool {
    raw.iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || raw[i - 1] != b'\r'))
}
