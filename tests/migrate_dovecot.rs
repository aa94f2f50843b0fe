//! The spine end to end against real Dovecot servers: the real `cutover`
//! binary copies between two isolated Dovecot instances (or into a
//! Maildir), and both sides are compared message by message.

mod common;
mod support;

use std::collections::HashMap;

use common::*;
use support::dovecot::{Dovecot, DovecotOptions};
use support::mailgen::{self, GenMessage};

/// The folders of the standard test mailbox: nested, non-ASCII, a role
/// folder, and names with spaces.
const FOLDERS: [&str; 10] = [
    "INBOX",
    "Sent",
    "Archive",
    "Archive/2023",
    "Archive/2023/Q1",
    "Projets/Écoles",
    "日本語",
    "Kunden & Partner",
    "Listes/Übersicht",
    "Odd",
];

fn fill_standard_mailbox(server: &Dovecot, email: &str, count: usize, seed: u64) -> usize {
    let messages = mailgen::generate(seed, count, 3000);
    let mut per_folder: HashMap<&str, Vec<GenMessage>> = HashMap::new();
    for (i, m) in messages.into_iter().enumerate() {
        per_folder.entry(FOLDERS[i % (FOLDERS.len() - 1)]).or_default().push(m);
    }
    for (folder, msgs) in &per_folder {
        server.deliver(email, folder, msgs);
    }
    let odd: Vec<GenMessage> = mailgen::odd_corpus().into_iter().map(|(_, m)| m).collect();
    let n = odd.len();
    server.deliver(email, "Odd", &odd);
    count + n
}

#[test]
fn full_copy_then_noop_resync_then_exactly_the_new_mail() {
    let lab = Lab::new(1);
    let (email, password) = user(1);
    let delivered = fill_standard_mailbox(&lab.source, &email, 2000, 7);
    let big = mailgen::big_message(36 * 1024 * 1024 + 1024, 99);
    lab.source.deliver(&email, "INBOX", std::slice::from_ref(&big));
    let source_before = lab.source.messages(&email);
    assert_eq!(source_before.len(), delivered + 1);

    let config = lab.write_config("");
    let users = lab.write_users(&[(email.clone(), password.clone())]);
    let before_copy = lab.source.session_stats();
    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    // The scan stays in Dovecot's index: the only headers read are the
    // skipped message's, for the report (each copy takes its Message-ID
    // from the body it fetched).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let copy_stats = loop {
        let s = lab.source.session_stats();
        if s.body_count - before_copy.body_count >= delivered as u64 || std::time::Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(copy_stats.body_count - before_copy.body_count, delivered as u64);
    assert_eq!(
        copy_stats.hdr_count - before_copy.hdr_count,
        1,
        "the scan read headers: {copy_stats:?}"
    );

    let target = lab.target.messages(&email);
    assert_copied_exactly(&source_before, &target, &[big.raw.as_slice()]);
    // The source is untouched: same bytes, same flags (no \Seen added).
    assert!(lab.source.messages(&email) == source_before, "source changed");

    let status = status_json(&config);
    let u = user_status(&status, &email);
    assert_eq!(u["state"], "done");
    assert_eq!(u["copied"], delivered as u64);
    assert_eq!(u["source_messages"], (delivered + 1) as u64);
    assert_eq!(u["skipped"], 1);
    let items = u["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["reason"], "too large");
    assert_eq!(items[0]["folder"], "INBOX");
    assert_eq!(items[0]["size"], big.raw.len() as u64);
    assert_eq!(
        items[0]["subject"],
        format!("Large attachment ({} bytes)", big.raw.len())
    );
    assert_eq!(items[0]["message_id"], mailgen::message_id(&big.raw).unwrap());

    // Second run: nothing new, so nothing copied and no body fetched.
    let before = lab.source.session_stats();
    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let after = lab
        .source
        .wait_for_sessions(before.sessions + 1, std::time::Duration::from_secs(10));
    assert_eq!(after.body_count, before.body_count, "a no-op resync fetched bodies");
    assert_eq!(lab.target.messages(&email).len(), target.len());

    // Fifty new messages arrive: the third run copies exactly those.
    let new = mailgen::generate(1234, 50, 2000);
    lab.source.deliver(&email, "INBOX", &new[..30]);
    lab.source.deliver(&email, "Archive/2023", &new[30..]);
    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let target_after = lab.target.messages(&email);
    assert_eq!(target_after.len(), target.len() + 50);
    assert_copied_exactly(&lab.source.messages(&email), &target_after, &[big.raw.as_slice()]);
    let status = status_json(&config);
    assert_eq!(user_status(&status, &email)["copied"], (delivered + 50) as u64);
}

#[test]
fn a_wrong_password_fails_that_user_and_the_others_finish() {
    let lab = Lab::new(3);
    for n in 1..=3 {
        lab.source
            .deliver(&user(n).0, "INBOX", &mailgen::generate(n as u64, 20, 1000));
    }
    let config = lab.write_config("");
    let mut rows: Vec<(String, String)> = (1..=3).map(user).collect();
    rows[1].1 = "not-the-password".into();
    let users = lab.write_users(&rows);
    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("user2@example.test") && stderr.contains("refused"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password"), "password leaked to stderr");
    let status = status_json(&config);
    assert_eq!(user_status(&status, "user1@example.test")["state"], "done");
    assert_eq!(user_status(&status, "user3@example.test")["state"], "done");
    let failed = user_status(&status, "user2@example.test");
    assert_eq!(failed["state"], "failed");
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .contains("check UserName and Password")
    );
    assert_eq!(lab.target.messages("user1@example.test").len(), 20);
    assert_eq!(lab.target.messages("user3@example.test").len(), 20);
}

#[test]
fn uidvalidity_reset_rematches_without_duplicates() {
    let lab = Lab::new(1);
    let (email, password) = user(1);
    lab.source.deliver(&email, "INBOX", &mailgen::generate(5, 40, 1500));
    let config = lab.write_config("");
    let users = lab.write_users(&[(email.clone(), password)]);
    assert_eq!(migrate(&config, &users).status.code(), Some(0));
    assert_eq!(lab.target.messages(&email).len(), 40);

    lab.source.set_uid_validity(&email, "INBOX", 777_000);
    lab.source.deliver(&email, "INBOX", &mailgen::generate(6, 5, 1500));
    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert_copied_exactly(&lab.source.messages(&email), &lab.target.messages(&email), &[]);
    assert_eq!(lab.target.messages(&email).len(), 45);
}

#[test]
fn item_cap_copies_the_newest_and_reports_the_rest() {
    let lab = Lab::new(1);
    let (email, password) = user(1);
    let mut msgs = mailgen::generate(11, 30, 800);
    for (i, m) in msgs.iter_mut().enumerate() {
        m.internal_date = 1_600_000_000 + i as i64 * 3600;
    }
    lab.source.deliver(&email, "INBOX", &msgs[..15]);
    lab.source.deliver(&email, "Archive", &msgs[15..]);
    let config = lab.write_config("[limits]\nmax_items = 10\nexclude = [\"Trash\", \"junk*\"]\n");
    let users = lab.write_users(&[(email.clone(), password)]);
    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let target = lab.target.messages(&email);
    assert_eq!(target.len(), 10);
    let newest: Vec<i64> = (20..30).map(|i| 1_600_000_000 + i * 3600).collect();
    let mut dates: Vec<i64> = target.iter().map(|m| m.internal_date).collect();
    dates.sort();
    assert_eq!(dates, newest);
    let status = status_json(&config);
    let u = user_status(&status, &email);
    assert_eq!(u["skipped"], 20);
    assert_eq!(u["skipped_by_reason"]["over item cap"], 20);
}

#[test]
fn maildir_target_keeps_bytes_flags_and_dates() {
    let source = Dovecot::start(DovecotOptions {
        users: vec![user(1)],
        ..Default::default()
    });
    let (email, password) = user(1);
    let msgs = mailgen::generate(21, 25, 2000);
    source.deliver(&email, "INBOX", &msgs[..10]);
    source.deliver(&email, "Sent", &msgs[10..20]);
    source.deliver(&email, "Projets/Écoles", &msgs[20..]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cutover.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n[target]\nkind = \"maildir\"\npath = \"out\"\n",
            source.port()
        ),
    )
    .unwrap();
    let users = dir.path().join("users.csv");
    std::fs::write(
        &users,
        format!("EmailAddress,UserName,Password\n{email},{email},{password}\n"),
    )
    .unwrap();
    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let root = dir.path().join("out").join(&email);
    let read = |sub: &str| -> Vec<(Vec<u8>, String, i64)> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(root.join(sub).join("cur")).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let flags = name.rsplit_once(":2,").unwrap().1.to_owned();
            let mtime = e
                .metadata()
                .unwrap()
                .modified()
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            v.push((std::fs::read(e.path()).unwrap(), flags, mtime));
        }
        v
    };
    let inbox = read("");
    let sent = read(".Sent");
    let ecoles = read(".Projets.&AMk-coles");
    assert_eq!((inbox.len(), sent.len(), ecoles.len()), (10, 10, 5));
    for m in source.messages(&email) {
        let stored = match m.folder.as_str() {
            "INBOX" => &inbox,
            "Sent" => &sent,
            _ => &ecoles,
        };
        let found = stored
            .iter()
            .find(|(raw, _, _)| *raw == m.raw)
            .expect("message stored byte-identical");
        assert_eq!(found.2, m.internal_date);
        let letters: String = [
            ("\\Draft", 'D'),
            ("\\Flagged", 'F'),
            ("\\Answered", 'R'),
            ("\\Seen", 'S'),
        ]
        .iter()
        .filter(|(f, _)| m.flags.iter().any(|x| x == f))
        .map(|(_, l)| *l)
        .collect();
        assert_eq!(found.1, letters);
    }
    // A rerun writes nothing new.
    assert_eq!(migrate(&config, &users).status.code(), Some(0));
    assert_eq!(read("").len(), 10);
}

#[test]
fn tls_is_verified_and_ca_file_trusts_a_private_ca() {
    let source = Dovecot::start(DovecotOptions {
        users: vec![user(1)],
        tls: true,
        ..Default::default()
    });
    let (email, password) = user(1);
    source.deliver(&email, "INBOX", &mailgen::generate(31, 5, 1000));
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.csv");
    std::fs::write(
        &users,
        format!("EmailAddress,UserName,Password\n{email},{email},{password}\n"),
    )
    .unwrap();
    let config = dir.path().join("cutover.toml");
    let write = |security: &str, port: u16, ca: bool| {
        let ca_line = if ca {
            format!("ca_file = \"{}\"\n", source.ca_file().unwrap().display())
        } else {
            String::new()
        };
        std::fs::write(
            &config,
            format!("[source]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"{security}\"\n{ca_line}[target]\nkind = \"maildir\"\npath = \"out\"\n"),
        )
        .unwrap();
    };
    // Without the private CA the certificate is rejected, clearly.
    write("tls", source.imaps_port().unwrap(), false);
    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ca_file"),
        "{}",
        explain(&out)
    );
    // With it, implicit TLS and STARTTLS both work.
    write("tls", source.imaps_port().unwrap(), true);
    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    std::fs::remove_dir_all(dir.path().join("out")).unwrap();
    std::fs::remove_file(dir.path().join("cutover.db")).unwrap();
    write("starttls", source.port(), true);
    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert_eq!(
        std::fs::read_dir(dir.path().join("out").join(&email).join("cur"))
            .unwrap()
            .count(),
        5
    );
}

#[test]
fn bad_config_and_bad_users_file_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cutover.toml");
    std::fs::write(&config, "[source]\nhost = \"127.0.0.1\"\nsecurity = \"plain\"\nprot = 1\n[target]\nkind = \"maildir\"\npath = \"out\"\n").unwrap();
    let users = dir.path().join("users.csv");
    std::fs::write(&users, "EmailAddress,UserName,Password\na@x.test,a,p\n").unwrap();
    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("prot"),
        "{}",
        explain(&out)
    );

    std::fs::write(
        &config,
        "[source]\nhost = \"127.0.0.1\"\nsecurity = \"plain\"\n[target]\nkind = \"maildir\"\npath = \"out\"\n",
    )
    .unwrap();
    std::fs::write(
        &users,
        "EmailAddress,UserName,Password\na@x.test,a,p\n,b,p\na@x.test,c,p\n",
    )
    .unwrap();
    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3") && stderr.contains("line 4"), "{stderr}");
    assert!(
        !dir.path().join("out").exists(),
        "nothing may be written when the users file is refused"
    );
}

#[test]
fn dry_run_plans_without_writing_and_json_mode_streams_events() {
    let lab = Lab::new(1);
    let (email, password) = user(1);
    let mut msgs = mailgen::generate(51, 12, 1000);
    msgs.push(mailgen::big_message(2 * 1024 * 1024, 3));
    lab.source.deliver(&email, "INBOX", &msgs);
    let config = lab.write_config("[limits]\nmax_message_bytes = 1048576\n");
    let users = lab.write_users(&[(email.clone(), password)]);
    let c = config.to_str().unwrap();
    let u = users.to_str().unwrap();

    let out = cutover(&["migrate", "--config", c, "--users", u, "--dry-run"], &config);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("would copy 12 messages") && stderr.contains("1 too large"),
        "{stderr}"
    );
    assert!(lab.target.messages(&email).is_empty(), "a dry run wrote to the target");

    let out = cutover(&["migrate", "--config", c, "--users", u, "--json"], &config);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    for kind in [
        "run_started",
        "user_started",
        "folder_scanned",
        "planned",
        "batch_copied",
        "item_skipped",
        "user_finished",
        "run_finished",
    ] {
        assert!(kinds.contains(&kind), "no {kind} event in {kinds:?}");
    }
    let copied: u64 = events
        .iter()
        .filter(|e| e["event"] == "batch_copied")
        .map(|e| e["messages"].as_u64().unwrap())
        .sum();
    assert_eq!(copied, 12);
    let skipped = events.iter().find(|e| e["event"] == "item_skipped").unwrap();
    assert_eq!(skipped["reason"], "too large");
    assert_eq!(lab.target.messages(&email).len(), 12);
}

#[test]
fn a_target_without_literal_plus_dropping_mid_batch_loses_nothing() {
    let lab = Lab::new(1);
    let (email, password) = user(1);
    lab.source.deliver(&email, "INBOX", &mailgen::generate(611, 30, 2000));
    // The target offers no LITERAL+ (one APPEND at a time, each waiting
    // for the server's go-ahead) and drops the connection when the 4th
    // APPEND of the run arrives: the 4th and the rest of its batch are
    // never answered.
    let relay = support::relay::Relay::without_literal_plus_dropping_at_append(lab.target.port(), 4);
    lab.write_config_via(
        lab.source.port(),
        relay.port(),
        "",
        "[run]\nbatch_messages = 10\nconnections_per_user = 1\nmax_attempts = 3\n",
    );
    let users = lab.write_users(&[(email.clone(), password)]);
    let out = migrate(&lab.path("cutover.toml"), &users);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(relay.dropped(), "the connection was never dropped");
    assert!(
        relay.connections_sending(b"+}\r\n") == 0 && relay.connections_sending(b"}\r\n") > 0,
        "the client used synchronizing literals only"
    );
    // Every message arrived once in this same run: none was left in flight
    // and counted done.
    let (src, dst) = (lab.source.messages(&email), lab.target.messages(&email));
    assert_eq!(lost_and_duplicated(&src, &dst, &[]), (0, 0));
    assert_copied_exactly(&src, &dst, &[]);
    let status = status_json(&lab.path("cutover.toml"));
    assert_eq!(user_status(&status, &email)["copied"], 30, "{status:#}");
}

#[test]
fn a_folder_the_target_refuses_to_create_fails_alone() {
    let lab = Lab::new(1);
    let (email, password) = user(1);
    let msgs = mailgen::generate(621, 12, 2000);
    lab.source.deliver(&email, "INBOX", &msgs[..5]);
    lab.source.deliver(&email, "Refused/Box", &msgs[5..8]);
    lab.source.deliver(&email, "Fine", &msgs[8..]);
    let relay = support::relay::Relay::refusing_create(lab.target.port(), "Refused");
    lab.write_config_via(lab.source.port(), relay.port(), "", "");
    let users = lab.write_users(&[(email.clone(), password)]);
    let out = migrate(&lab.path("cutover.toml"), &users);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    // The other folders are copied in full.
    let copied = lab.target.messages(&email);
    let source = lab.source.messages(&email);
    let outside: Vec<_> = source
        .iter()
        .filter(|m| !m.folder.starts_with("Refused"))
        .cloned()
        .collect();
    assert_copied_exactly(&outside, &copied, &[]);
    // The refused folder's messages failed, each with the server's reason.
    let by_state = items_by_state(&lab.path("cutover.toml"), &email);
    let failed = by_state.get("failed").cloned().unwrap_or_default();
    assert_eq!(failed.len(), 3, "{by_state:#?}");
    assert!(
        failed.iter().all(|r| r.contains("does not allow that mailbox name")),
        "{failed:#?}"
    );
}

/// Flags changed on the source after the copy — read, unread, flagged,
/// answered, a keyword — reach the copies on the next run, without a body
/// fetched; a further run writes nothing. With CONDSTORE only what changed
/// since the last HIGHESTMODSEQ is read (nothing when it did not move);
/// without it (hidden by a relay) every message's flags are read.
#[test]
fn flag_changes_on_the_source_reach_the_copies_with_and_without_condstore() {
    use support::relay::Relay;
    for condstore in [true, false] {
        let lab = Lab::new(1);
        let (email, password) = user(1);
        fill_standard_mailbox(&lab.source, &email, 120, 21);
        let relay = if condstore {
            Relay::start(lab.source.port())
        } else {
            Relay::hiding_capabilities(lab.source.port(), &["CONDSTORE", "QRESYNC"])
        };
        let config = lab.write_config_via(relay.port(), lab.target.port(), "", "");
        let users = lab.write_users(&[(email.clone(), password.clone())]);
        let out = migrate(&config, &users);
        assert_eq!(out.status.code(), Some(0), "first copy: {}", explain(&out));
        assert_copied_exactly(&lab.source.messages(&email), &lab.target.messages(&email), &[]);

        // A week of reading and filing flags on the source.
        let flags = |verb: &str, flags: &str, query: &[&str]| {
            let mut args = vec!["flags", verb, "-u", email.as_str(), flags];
            args.extend_from_slice(query);
            lab.source.doveadm(&args);
        };
        flags("add", "\\Seen", &["mailbox", "INBOX", "all"]);
        flags("add", "\\Flagged $Forwarded", &["mailbox", "Archive", "uid", "1:3"]);
        flags("remove", "\\Seen", &["mailbox", "Sent", "all"]);
        flags("add", "\\Answered ProjectX", &["mailbox", "Archive/2023", "uid", "2"]);
        let copies: HashMap<(String, Vec<u8>), Vec<String>> = lab
            .target
            .messages(&email)
            .into_iter()
            .map(|m| ((m.folder, m.raw), m.flags))
            .collect();
        let differing = lab
            .source
            .messages(&email)
            .into_iter()
            .filter(|m| copies.get(&(m.folder.clone(), m.raw.clone())) != Some(&m.flags))
            .count();
        assert!(differing > 10, "the source's flags changed: {differing} differ");

        let streams_before = relay.client_streams().len();
        let before = lab.source.session_stats();
        let out = migrate(&config, &users);
        assert_eq!(out.status.code(), Some(0), "resync: {}", explain(&out));
        assert_copied_exactly(&lab.source.messages(&email), &lab.target.messages(&email), &[]);
        let stats = lab
            .source
            .wait_for_sessions(before.sessions + 1, std::time::Duration::from_secs(5));
        assert_eq!(stats.body_count, before.body_count, "the resync fetched bodies");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains("flag changes written"),
            "the summary does not count them: {said}"
        );
        let sent: String = relay.client_streams()[streams_before..]
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        if condstore {
            assert!(sent.contains("CHANGEDSINCE"), "CONDSTORE was not used: {sent}");
        } else {
            assert!(
                !sent.contains("CHANGEDSINCE") && sent.contains("(UID FLAGS)"),
                "without CONDSTORE every flag is read: {sent}"
            );
        }

        // Nothing changed since: nothing written, and with CONDSTORE not
        // even a flag read.
        let streams_before = relay.client_streams().len();
        let out = migrate(&config, &users);
        assert_eq!(out.status.code(), Some(0), "no-op resync: {}", explain(&out));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            !said.contains("flag changes written"),
            "a no-op resync wrote flags: {said}"
        );
        let sent: String = relay.client_streams()[streams_before..]
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        if condstore {
            assert!(!sent.contains("(UID FLAGS)"), "a no-op resync read flags: {sent}");
        }
        assert_copied_exactly(&lab.source.messages(&email), &lab.target.messages(&email), &[]);
    }
}

/// Mail filed into another folder on the source after the copy — both
/// ways, then flagged in its new place — has its copy moved in the target:
/// every folder holds exactly the source's messages with their flags, none
/// twice, and no body is fetched for it.
#[test]
fn mail_filed_into_another_folder_moves_its_copy_instead_of_copying_it_again() {
    let lab = Lab::new(1);
    let (email, password) = user(1);
    fill_standard_mailbox(&lab.source, &email, 120, 31);
    let config = lab.write_config("");
    let users = lab.write_users(&[(email.clone(), password.clone())]);
    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(0), "first copy: {}", explain(&out));
    assert_copied_exactly(&lab.source.messages(&email), &lab.target.messages(&email), &[]);

    let doveadm = |args: &[&str]| {
        // `doveadm move -u U ...`, `doveadm flags add -u U ...`.
        let verb = if args[0] == "flags" { 2 } else { 1 };
        let mut all = args[..verb].to_vec();
        all.extend(["-u", email.as_str()]);
        all.extend_from_slice(&args[verb..]);
        lab.source.doveadm(&all);
    };
    doveadm(&["move", "Archive", "mailbox", "INBOX", "uid", "1:5"]);
    doveadm(&["move", "INBOX", "mailbox", "Archive/2023", "uid", "1:2"]);
    // A message without a Message-ID: found by the content key its copy
    // recorded.
    let found = lab.source.doveadm(&[
        "search",
        "-u",
        &email,
        "mailbox",
        "Odd",
        "NOT",
        "HEADER",
        "Message-ID",
        "",
    ]);
    let no_id: Vec<&str> = found.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert_eq!(
        no_id.len(),
        1,
        "the odd corpus has one message without a Message-ID: {found}"
    );
    doveadm(&["move", "INBOX", "mailbox", "Odd", "uid", no_id[0]]);
    // Flagged in its new place, after the move.
    doveadm(&["flags", "add", "\\Flagged", "mailbox", "Archive", "all"]);
    let source = lab.source.messages(&email);

    let before = lab.source.session_stats();
    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(0), "resync: {}", explain(&out));
    assert_copied_exactly(&source, &lab.target.messages(&email), &[]);
    let stats = lab
        .source
        .wait_for_sessions(before.sessions + 1, std::time::Duration::from_secs(5));
    assert_eq!(
        stats.body_count, before.body_count,
        "the resync fetched bodies for moved mail"
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("8 moved"), "the summary does not count the moves: {said}");
    // Its sync counts the moves and the flags written, and no deletion:
    // the mail moved, it was not deleted.
    let flags_written: u64 = said
        .split(" flag changes written")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the summary does not count the flags written: {said}"));
    let status = status_json(&config);
    let u = user_status(&status, &email);
    let last = |key: &str| u["last_sync_counts"][key].as_u64();
    assert_eq!(
        (last("copied"), last("moved"), last("flags_updated")),
        (Some(0), Some(8), Some(flags_written)),
        "{u:#}"
    );
    assert_eq!(
        (last("deleted_kept"), last("deleted_mirrored")),
        (Some(0), Some(0)),
        "{u:#}"
    );
    assert_eq!(u["deleted_on_source"], 0);

    // And nothing more to do.
    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(0), "no-op resync: {}", explain(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("moved"), "a no-op resync moved mail: {said}");
    assert_copied_exactly(&source, &lab.target.messages(&email), &[]);

    // The report keeps each sync's counts: the first copied, the second
    // moved and wrote flags, the third did nothing.
    let report = lab.path("report.json");
    let out = cutover(
        &[
            "report",
            "--config",
            config.to_str().unwrap(),
            "--output",
            report.to_str().unwrap(),
        ],
        &config,
    );
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let syncs = report["users"][0]["syncs"].as_array().unwrap();
    let counts = |key: &str| syncs.iter().map(|s| s[key].as_u64().unwrap()).collect::<Vec<_>>();
    assert_eq!(syncs.len(), 3);
    assert!(
        counts("copied")[0] > 100 && counts("copied")[1..] == [0, 0],
        "{syncs:#?}"
    );
    assert_eq!(counts("moved"), [0, 8, 0]);
    assert_eq!(counts("flags_updated"), [0, flags_written, 0]);
    assert_eq!(counts("deleted_kept"), [0, 0, 0]);
    assert_eq!(report["passes"][1]["moved"], 8);
}

/// A folder renamed on the source, and a nested folder moved to the top,
/// are renamed in the target with the copies they hold: nothing is copied
/// again, no body is fetched, the old names are gone from the target, and
/// mail filed into the renamed folder afterwards moves there.
#[test]
fn a_folder_renamed_on_the_source_is_renamed_in_the_target() {
    let lab = Lab::new(1);
    let (email, password) = user(1);
    fill_standard_mailbox(&lab.source, &email, 120, 61);
    let config = lab.write_config("");
    let users = lab.write_users(&[(email.clone(), password.clone())]);
    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(0), "first copy: {}", explain(&out));

    let doveadm = |args: &[&str]| {
        let mut all = args[..2].to_vec();
        all.extend(["-u", email.as_str()]);
        all.extend_from_slice(&args[2..]);
        lab.source.doveadm(&all);
    };
    // Archive/2023 (with Archive/2023/Q1 below it) gets another name; a
    // nested folder goes to the top.
    doveadm(&["mailbox", "rename", "Archive/2023", "Archive/Old 2023"]);
    doveadm(&["mailbox", "rename", "Listes/Übersicht", "Übersicht"]);
    doveadm(&["move", "Archive/Old 2023", "mailbox", "INBOX", "uid", "1:2"]);
    let source = lab.source.messages(&email);

    let before = lab.source.session_stats();
    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(0), "resync: {}", explain(&out));
    assert_copied_exactly(&source, &lab.target.messages(&email), &[]);
    let stats = lab
        .source
        .wait_for_sessions(before.sessions + 1, std::time::Duration::from_secs(5));
    assert_eq!(stats.body_count, before.body_count, "the resync fetched bodies");
    let names = |server: &Dovecot| {
        let mut names: Vec<String> = server
            .folders(&email)
            .into_iter()
            .filter(|f| f.messages > 0)
            .map(|f| f.name)
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(&lab.target),
        names(&lab.source),
        "no folder left under its old name"
    );
    let all_target: Vec<String> = lab.target.folders(&email).into_iter().map(|f| f.name).collect();
    for old in ["Archive/2023", "Archive/2023/Q1", "Listes/Übersicht"] {
        assert!(
            !all_target.iter().any(|n| n == old),
            "{old} lingers in the target: {all_target:?}"
        );
    }
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("2 moved"), "{said}");

    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(0), "no-op resync: {}", explain(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !said.contains("renamed") && !said.contains("moved"),
        "a no-op resync changed things: {said}"
    );
    assert_copied_exactly(&source, &lab.target.messages(&email), &[]);
}

/// A folder deleted on the source, after two of its messages were filed
/// elsewhere: those two are moved, the rest stay in the target counted as
/// deleted on the source, and `--mirror-deletions` deletes them.
#[test]
fn a_folder_deleted_on_the_source_counts_its_copies_as_deleted() {
    let lab = Lab::new(1);
    let (email, password) = user(1);
    fill_standard_mailbox(&lab.source, &email, 90, 71);
    let config = lab.write_config("");
    let users = lab.write_users(&[(email.clone(), password.clone())]);
    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(0), "first copy: {}", explain(&out));
    let folder = "Kunden & Partner";
    let held = lab
        .source
        .folders(&email)
        .into_iter()
        .find(|f| f.name == folder)
        .unwrap()
        .messages as u64;
    lab.source
        .doveadm(&["move", "-u", &email, "INBOX", "mailbox", folder, "uid", "1:2"]);
    lab.source.doveadm(&["mailbox", "delete", "-u", &email, folder]);
    assert!(!lab.source.folders(&email).iter().any(|f| f.name == folder));

    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(0), "resync: {}", explain(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("2 moved"), "{said}");
    let status = status_json(&config);
    let u = user_status(&status, &email);
    assert_eq!(u["deleted_on_source"].as_u64(), Some(held - 2), "{u:#}");
    let in_folder = |server: &Dovecot| {
        server
            .messages(&email)
            .into_iter()
            .filter(|m| m.folder == folder)
            .count() as u64
    };
    assert_eq!(in_folder(&lab.target), held - 2, "kept in the target by default");

    let out = cutover(
        &[
            "migrate",
            "--config",
            config.to_str().unwrap(),
            "--users",
            users.to_str().unwrap(),
            "--mirror-deletions",
            "--force-deletions",
        ],
        &config,
    );
    assert_eq!(out.status.code(), Some(0), "mirrored: {}", explain(&out));
    assert_copied_exactly(&lab.source.messages(&email), &lab.target.messages(&email), &[]);
}

/// Mail deleted on the source stays in the target and is counted as
/// deleted on source; `--mirror-deletions` then deletes exactly those
/// copies, and a further run changes nothing. Deleting more than
/// `max_delete_percent` of a mailbox's copies is refused (partial, exit 1,
/// nothing deleted) unless forced.
#[test]
fn deletions_are_kept_and_counted_then_mirrored_on_request_within_the_guard() {
    let lab = Lab::new(1);
    let (email, password) = user(1);
    fill_standard_mailbox(&lab.source, &email, 120, 41);
    let config = lab.write_config("");
    let users = lab.write_users(&[(email.clone(), password.clone())]);
    let run = |extra: &[&str]| {
        let mut args = vec![
            "migrate",
            "--config",
            config.to_str().unwrap(),
            "--users",
            users.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        cutover(&args, &config)
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(0), "first copy: {}", explain(&out));
    let expunge = |query: &[&str]| {
        let mut args = vec!["expunge", "-u", email.as_str()];
        args.extend_from_slice(query);
        lab.source.doveadm(&args);
    };
    let deleted_on_source = || user_status(&status_json(&config), &email)["deleted_on_source"].as_u64();

    // What the last sync counted: (deleted kept, deleted mirrored).
    let last_sync = || {
        let status = status_json(&config);
        let last = &user_status(&status, &email)["last_sync_counts"];
        (last["deleted_kept"].as_u64(), last["deleted_mirrored"].as_u64())
    };

    expunge(&["mailbox", "INBOX", "uid", "1:3"]);
    let out = run(&["--json"]);
    assert_eq!(out.status.code(), Some(0), "resync: {}", explain(&out));
    assert_eq!(
        lab.target.messages(&email).len(),
        lab.source.messages(&email).len() + 3,
        "kept in the target by default"
    );
    assert_eq!(deleted_on_source(), Some(3));
    assert_eq!(last_sync(), (Some(3), Some(0)));
    let finished: serde_json::Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "user_finished")
        .expect("a user_finished event");
    let count = |key: &str| finished[key].as_u64();
    assert_eq!(
        (
            count("deleted_kept"),
            count("deleted"),
            count("moved"),
            count("renamed")
        ),
        (Some(3), Some(0), Some(0), Some(0)),
        "{finished}"
    );

    let out = run(&["--mirror-deletions"]);
    assert_eq!(out.status.code(), Some(0), "mirrored: {}", explain(&out));
    assert_copied_exactly(&lab.source.messages(&email), &lab.target.messages(&email), &[]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("3 deleted as on the source"),
        "{}",
        explain(&out)
    );
    assert_eq!(deleted_on_source(), Some(0));
    assert_eq!(last_sync(), (Some(0), Some(3)), "mirrored, none newly kept");
    let out = run(&["--mirror-deletions"]);
    assert_eq!(out.status.code(), Some(0), "again: {}", explain(&out));
    assert_copied_exactly(&lab.source.messages(&email), &lab.target.messages(&email), &[]);
    assert_eq!(last_sync(), (Some(0), Some(0)));

    // A whole folder emptied: far over 10% of the mailbox.
    expunge(&["mailbox", "Archive", "all"]);
    expunge(&["mailbox", "Sent", "all"]);
    let target_before = lab.target.messages(&email);
    let out = run(&["--mirror-deletions"]);
    assert_eq!(out.status.code(), Some(1), "over the guard: {}", explain(&out));
    let status = status_json(&config);
    let u = user_status(&status, &email);
    assert_eq!(u["state"], "partial", "{u:#}");
    assert!(
        u["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("max_delete_percent"),
        "{u:#}"
    );
    assert_eq!(
        lab.target.messages(&email),
        target_before,
        "nothing deleted over the guard"
    );
    let emptied = target_before.len() - lab.source.messages(&email).len();
    assert_eq!(last_sync(), (Some(emptied as u64), Some(0)), "kept over the guard");
    let out = run(&["--mirror-deletions", "--force-deletions"]);
    assert_eq!(out.status.code(), Some(0), "forced: {}", explain(&out));
    assert_copied_exactly(&lab.source.messages(&email), &lab.target.messages(&email), &[]);
    assert_eq!(last_sync(), (Some(0), Some(emptied as u64)));

    // The history: every sync with what it kept and mirrored, in the
    // status and in the report's syncs CSV.
    let status = status_json(&config);
    let syncs = user_status(&status, &email)["syncs"].as_array().unwrap().clone();
    let column = |key: &str| syncs.iter().map(|s| s[key].as_u64().unwrap()).collect::<Vec<_>>();
    let emptied = emptied as u64;
    assert_eq!(column("deleted_kept"), [0, 3, 0, 0, emptied, 0]);
    assert_eq!(column("deleted_mirrored"), [0, 0, 3, 0, 0, emptied]);
    let csv = lab.path("report.csv");
    let out = cutover(
        &[
            "report",
            "--config",
            config.to_str().unwrap(),
            "--output",
            csv.to_str().unwrap(),
        ],
        &config,
    );
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let syncs_csv = std::fs::read_to_string(lab.path("report.syncs.csv")).unwrap();
    let mut rows = syncs_csv.trim_start_matches('\u{feff}').lines();
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (kept, mirrored) = (at("deleted_kept"), at("deleted_mirrored"));
    let rows: Vec<(String, String)> = rows
        .map(|r| {
            let cells: Vec<&str> = r.split(',').collect();
            (cells[kept].to_owned(), cells[mirrored].to_owned())
        })
        .collect();
    assert_eq!(rows[1], ("3".to_owned(), "0".to_owned()), "{syncs_csv}");
    assert_eq!(rows[2], ("0".to_owned(), "3".to_owned()), "{syncs_csv}");
    assert_eq!(rows[5], ("0".to_owned(), emptied.to_string()), "{syncs_csv}");
}

/// `verify` catches a message the target holds twice — in its folder and
/// in another, where the source holds it once — and exits 1 naming it.
#[test]
fn verify_catches_a_planted_duplicate_in_another_folder() {
    let lab = Lab::new(1);
    let (email, password) = user(1);
    fill_standard_mailbox(&lab.source, &email, 60, 51);
    let config = lab.write_config("");
    let users = lab.write_users(&[(email.clone(), password.clone())]);
    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(0), "copy: {}", explain(&out));
    let verify = || {
        cutover(
            &[
                "verify",
                "--config",
                config.to_str().unwrap(),
                "--users",
                users.to_str().unwrap(),
                "--quick",
            ],
            &config,
        )
    };
    let out = verify();
    assert_eq!(out.status.code(), Some(0), "verify before: {}", explain(&out));

    // What a mover that copies instead of moving leaves behind.
    let inbox = lab
        .source
        .messages(&email)
        .into_iter()
        .find(|m| m.folder == "INBOX")
        .unwrap();
    let planted = mailgen::GenMessage {
        raw: inbox.raw.clone(),
        flags: inbox.flags.clone(),
        internal_date: inbox.internal_date,
    };
    lab.target.deliver(&email, "Archive", &[planted]);
    let out = verify();
    assert_eq!(out.status.code(), Some(1), "verify with a duplicate: {}", explain(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("DUPLICATE in target Archive") && said.contains("1 duplicated"),
        "{said}"
    );
}

/// Someone changes a copy's read state and flag in the target after the
/// copy: verify names the copy with both sides' flags and fails (exit 1);
/// the next migrate writes the source's flags to it again (the source wins
/// while migrating), and verify passes.
#[test]
fn verify_catches_a_planted_flag_difference() {
    let lab = Lab::new(1);
    let (email, password) = user(1);
    fill_standard_mailbox(&lab.source, &email, 60, 52);
    let config = lab.write_config("");
    let users = lab.write_users(&[(email.clone(), password.clone())]);
    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(0), "copy: {}", explain(&out));
    let verify = |json: bool| {
        let mut args = vec![
            "verify",
            "--config",
            config.to_str().unwrap(),
            "--users",
            users.to_str().unwrap(),
            "--quick",
        ];
        if json {
            args.push("--json");
        }
        cutover(&args, &config)
    };
    let out = verify(false);
    assert_eq!(out.status.code(), Some(0), "verify before: {}", explain(&out));

    // The first copy in the target's INBOX: read state and flag turned
    // around there, the source left as it was.
    let copy = lab
        .target
        .messages(&email)
        .into_iter()
        .find(|m| m.folder == "INBOX" && m.uid == 1)
        .expect("a copy in the target's INBOX");
    let original = lab
        .source
        .messages(&email)
        .into_iter()
        .find(|m| m.folder == "INBOX" && m.raw == copy.raw)
        .expect("its source message");
    assert_eq!(original.flags, copy.flags, "copied with the source's flags");
    let has = |flag: &str| original.flags.iter().any(|f| f == flag);
    for flag in ["\\Seen", "\\Flagged"] {
        let verb = if has(flag) { "remove" } else { "add" };
        lab.target
            .doveadm(&["flags", verb, "-u", &email, flag, "mailbox", "INBOX", "uid", "1"]);
    }
    let state = |seen: bool, flagged: bool| {
        let mut s = if seen { "read" } else { "unread" }.to_owned();
        if flagged {
            s.push_str("+flagged");
        }
        s
    };
    let (seen, flagged) = (has("\\Seen"), has("\\Flagged"));
    let want = format!("source {}, target {}", state(seen, flagged), state(!seen, !flagged));

    let out = verify(false);
    assert_eq!(
        out.status.code(),
        Some(1),
        "verify with a flag changed: {}",
        explain(&out)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    let line = said
        .lines()
        .find(|l| l.contains("FLAGS DIFFER"))
        .unwrap_or_else(|| panic!("no flag difference named: {said}"));
    assert!(
        line.contains(&format!("FLAGS DIFFER INBOX UID {} (", original.uid))
            && line.contains(&mailgen::message_id(&original.raw).unwrap())
            && line.contains(&want)
            && line.contains("run cutover migrate"),
        "{line}"
    );
    assert!(said.contains("1 with other flags"), "{said}");
    let out = verify(true);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let uv = &report["users"][0];
    assert_eq!(
        (
            uv["flags_differ_count"].as_u64(),
            uv["missing_count"].as_u64(),
            uv["complete"].as_bool()
        ),
        (Some(1), Some(0), Some(false)),
        "{uv:#}"
    );
    assert_eq!(
        uv["flags_differ"][0]["differ"],
        serde_json::json!(["\\Seen", "\\Flagged"])
    );

    // The source wins: the resync writes its flags to the copy again.
    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(0), "resync: {}", explain(&out));
    assert_copied_exactly(&lab.source.messages(&email), &lab.target.messages(&email), &[]);
    let out = verify(false);
    assert_eq!(out.status.code(), Some(0), "verify after the resync: {}", explain(&out));
}
