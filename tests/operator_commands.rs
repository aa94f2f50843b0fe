//! The operator commands end to end against real Dovecot servers: `check`
//! before a migration, `verify` after it, `report` on it, and shell
//! completions. Each runs the real binary; what it says is compared with
//! what the fixture knows the servers hold.

mod common;
mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::*;
use support::browser::{chromium, chromium_run, decode_png};
use support::dovecot::{Dovecot, DovecotOptions};
use support::mailgen::{self, GenMessage};

fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", explain(out)))
}

fn find<'a>(list: &'a serde_json::Value, key: &str, value: &str) -> &'a serde_json::Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|v| v[key] == value)
        .unwrap_or_else(|| panic!("no {key} = {value} in {list:#}"))
}

/// A message of `bytes` bytes with an RFC 2047 encoded subject.
fn encoded_subject_message(bytes: usize, id: &str) -> GenMessage {
    let mut raw = format!(
        "From: Sender <s@example.org>\r\nTo: r@example.test\r\n\
         Subject: =?UTF-8?Q?Gro=C3=9Fe_Datei_f=C3=BCr_Sie?=\r\nMessage-ID: <{id}>\r\n\
         Date: Mon, 3 Jun 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    while raw.len() + 80 < bytes {
        raw.extend_from_slice(&[b'x'; 78]);
        raw.extend_from_slice(b"\r\n");
    }
    GenMessage {
        raw,
        flags: vec!["\\Seen".into()],
        internal_date: 1_717_408_800,
    }
}

/// Bytes per folder as the fixture stores them (RFC822.SIZE of CRLF mail).
fn bytes_per_folder(server: &Dovecot, email: &str) -> BTreeMap<String, (u64, u64)> {
    let mut map = BTreeMap::new();
    for m in server.messages(email) {
        let e = map.entry(m.folder.clone()).or_insert((0u64, 0u64));
        e.0 += 1;
        e.1 += m.raw.len() as u64;
    }
    map
}

#[test]
fn check_reports_sizes_and_flags_every_kind_of_problem() {
    let lab = Lab::new(2);
    let (email, password) = user(1);
    let msgs = mailgen::generate(301, 40, 2000);
    lab.source.deliver(&email, "INBOX", &msgs[..25]);
    lab.source.deliver(&email, "Archive/2023", &msgs[25..35]);
    lab.source.deliver(&email, "Projets/Écoles", &msgs[35..]);
    lab.source
        .deliver(&email, "INBOX", &[mailgen::big_message(2 * 1024 * 1024, 5)]);
    lab.source.deliver(&email, "Junk", &mailgen::generate(302, 3, 1000));
    // A source mailbox whose target mailbox does not exist.
    lab.source.add_user("user3@example.test", "pw-3-s3cret");
    lab.source
        .deliver("user3@example.test", "INBOX", &mailgen::generate(303, 2, 1000));
    let config = lab.write_config("[limits]\nmax_message_bytes = 1048576\nmax_items = 30\nexclude = [\"Junk\"]\n");
    let users = lab.write_users(&[
        (email.clone(), password.clone()),
        (user(2).0, "wrong-password-xyz".into()),
        ("user3@example.test".into(), "pw-3-s3cret".into()),
    ]);
    let c = config.to_str().unwrap();
    let u = users.to_str().unwrap();

    let out = cutover(&["check", "--config", c, "--users", u, "--json"], &config);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let all = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    for secret in ["wrong-password-xyz", "pw-1-s3cret", "pw-3-s3cret", ADMIN_PASSWORD] {
        assert!(!all.contains(secret), "a password reached the output");
    }
    let report = json_of(&out);
    let users_json = &report["users"];

    let u1 = find(users_json, "email", &email);
    assert_eq!(u1["ready"], true, "{u1:#}");
    let source = &u1["source"];
    assert_eq!(source["size_method"], "STATUS=SIZE", "Dovecot offers STATUS=SIZE");
    let expected = bytes_per_folder(&lab.source, &email);
    for f in lab.source.folders(&email) {
        let got = find(&source["folders"], "folder", &f.name);
        assert_eq!(got["messages"], f.messages, "{}", f.name);
        let bytes = expected.get(&f.name).map(|e| e.1).unwrap_or(0);
        assert_eq!(got["bytes"], bytes, "{}", f.name);
        assert_eq!(got["excluded"], f.name == "Junk");
    }
    assert_eq!(source["messages"], 41, "Junk is excluded");
    assert_eq!(source["too_large"], 1);
    assert_eq!(find(&source["folders"], "folder", "INBOX")["too_large"], 1);
    assert_eq!(source["over_item_cap"], 11);
    let warnings = u1["warnings"].to_string();
    assert!(
        warnings.contains("max_message_bytes") && warnings.contains("max_items"),
        "{warnings}"
    );
    assert!(source["sample"]["bytes"].as_u64().unwrap() > 0);
    assert!(u1["estimated_seconds"].is_u64());
    assert_eq!(u1["target"]["inbox_messages"], 0);

    let u2 = find(users_json, "email", &user(2).0);
    assert_eq!(u2["ready"], false);
    assert!(
        u2["problems"][0]
            .as_str()
            .unwrap()
            .contains("check UserName and Password"),
        "{u2:#}"
    );
    let u3 = find(users_json, "email", "user3@example.test");
    assert_eq!(u3["ready"], false);
    assert_eq!(u3["source"]["messages"], 2, "the source side is still checked");
    assert!(u3["problems"].to_string().contains("target"), "{u3:#}");
    assert_eq!(report["totals"]["failing"], 2);

    // The table, for a ready user only: exit 0.
    let users = lab.write_users(&[(email.clone(), password.clone())]);
    let out = cutover(&["check", "--config", c, "--users", users.to_str().unwrap()], &config);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    eprintln!("{table}");
    assert!(table.contains(&format!("{email}: READY")), "{table}");
    assert!(
        table.contains("Projets/Écoles") && table.contains("Junk (excluded)"),
        "{table}"
    );
    assert!(
        table.contains("estimate:") && table.contains("1 ready, 0 will fail"),
        "{table}"
    );
    assert!(lab.target.messages(&email).is_empty(), "check wrote to the target");
}

/// STATUS=SIZE is read past the IMAP parser, by hand: it must agree with
/// the sizes EXAMINE and RFC822.SIZE give, and leave the connection usable.
#[test]
fn status_size_agrees_with_fetched_sizes() {
    use cutover::imap::{Endpoint, Security};
    use cutover::roster::UserJob;
    use cutover::secret::Secret;

    let server = Dovecot::start(DovecotOptions {
        users: vec![user(1)],
        ..Default::default()
    });
    let (email, password) = user(1);
    server.deliver(&email, "INBOX", &mailgen::generate(311, 12, 3000));
    server.deliver(&email, "Kunden & Partner", &mailgen::generate(312, 4, 3000));
    server.deliver(&email, "日本語", &mailgen::generate(313, 3, 3000));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let source = cutover::source::ImapSource::new(Endpoint {
            host: "127.0.0.1".into(),
            port: server.port(),
            security: Security::Plain,
            ca_file: None,
            timeout: Duration::from_secs(30),
            compress: cutover::imap::Compression::Always,
        })
        .unwrap();
        let job = UserJob {
            email: email.clone(),
            username: email.clone(),
            password: Secret::new(password),
            user_root: None,
            target_username: None,
            target_password: None,
            line: 2,
        };
        let mut session = source.open(&job.source_login()).await.unwrap();
        assert!(session.has_status_size());
        let folders = session.folders().await.unwrap();
        let names: Vec<String> = folders.iter().map(|f| f.wire_name.clone()).collect();
        let by_status = session.folder_sizes(&names).await.unwrap();
        assert_eq!(by_status.len(), names.len());
        for (folder, status) in folders.iter().zip(&by_status) {
            let state = session.examine(&folder.wire_name).await.unwrap();
            let sizes = if state.exists > 0 {
                session.message_sizes().await.unwrap()
            } else {
                Vec::new()
            };
            assert_eq!(
                *status,
                Some((state.exists, sizes.iter().sum::<u64>())),
                "{}",
                folder.display()
            );
        }
        // Twice in a row: nothing was left behind in the parser's buffer.
        assert_eq!(session.folder_sizes(&names).await.unwrap(), by_status);
        assert_eq!(session.folders().await.unwrap().len(), folders.len());
        session.logout().await;
    });
}

#[test]
fn verify_finds_what_the_target_lacks_and_ignores_what_the_rules_skip() {
    let lab = Lab::new(1);
    let (email, password) = user(1);
    let msgs = mailgen::generate(321, 35, 1500);
    lab.source.deliver(&email, "INBOX", &msgs[..20]);
    lab.source.deliver(&email, "Archive/2023", &msgs[20..30]);
    lab.source.deliver(&email, "Sent", &msgs[30..]);
    lab.source
        .deliver(&email, "INBOX", &[mailgen::big_message(2 * 1024 * 1024, 9)]);
    lab.source.deliver(&email, "Junk", &mailgen::generate(322, 4, 1000));
    let config = lab.write_config("[limits]\nmax_message_bytes = 1048576\nexclude = [\"Junk\"]\n");
    let users = lab.write_users(&[(email.clone(), password)]);
    let (c, u) = (config.to_str().unwrap(), users.to_str().unwrap());
    let verify = || cutover(&["verify", "--config", c, "--users", u, "--json"], &config);

    assert_eq!(migrate(&config, &users).status.code(), Some(0));
    let out = verify();
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let v = json_of(&out);
    let uv = &v["users"][0];
    assert_eq!(uv["complete"], true, "{uv:#}");
    assert_eq!(uv["in_scope"], 35);
    assert_eq!(uv["out_of_scope"], 5, "one too large, four in the excluded folder");
    assert_eq!(uv["target_messages"], 35);
    assert_eq!(
        (uv["missing_count"].as_u64(), uv["extra_count"].as_u64()),
        (Some(0), Some(0))
    );
    let inbox = find(&uv["folders"], "target", "INBOX");
    assert_eq!(inbox["skipped"]["too large"], 1);
    assert_eq!(inbox["present"], 20);
    assert_eq!(find(&uv["folders"], "target", "Sent")["present"], 5);
    let junk = uv["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["source"][0] == "Junk")
        .unwrap();
    assert_eq!(
        (junk["excluded"].as_bool(), junk["source_messages"].as_u64()),
        (Some(true), Some(4))
    );

    // The target loses one message, the source gets two new ones, and mail
    // arrives directly in the target.
    let lost = lab
        .target
        .messages(&email)
        .into_iter()
        .find(|m| m.folder == "INBOX")
        .unwrap();
    let lost_id = mailgen::message_id(&lost.raw).unwrap();
    lab.target.expunge(&email, "INBOX", lost.uid);
    let new = mailgen::generate(323, 2, 1500);
    lab.source.deliver(&email, "Archive/2023", &new);
    let direct = mailgen::generate(324, 1, 1500);
    lab.target.deliver(&email, "INBOX", &direct);

    let out = verify();
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let v = json_of(&out);
    let uv = &v["users"][0];
    assert_eq!(uv["missing_count"], 3, "{uv:#}");
    let lost_entry = find(&uv["missing"], "message_id", &lost_id);
    assert_eq!(lost_entry["folder"], "INBOX");
    assert!(
        lost_entry["status"]
            .as_str()
            .unwrap()
            .contains("recorded as copied but not in the target (deleted or moved there after the copy?); verify recorded it as failed: run cutover migrate to copy it again")
    );
    for m in &new {
        let entry = find(&uv["missing"], "message_id", &mailgen::message_id(&m.raw).unwrap());
        assert_eq!(entry["folder"], "Archive/2023");
        assert!(
            entry["status"]
                .as_str()
                .unwrap()
                .contains("arrived after the last migrate")
        );
        assert!(entry["subject"].is_string(), "subjects come with the scan");
    }
    assert_eq!(uv["extra_count"], 1);
    assert_eq!(
        uv["extra"][0]["message_id"],
        mailgen::message_id(&direct[0].raw).unwrap()
    );

    // The table says the same for people.
    let out = cutover(&["verify", "--config", c, "--users", u], &config);
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8_lossy(&out.stdout);
    eprintln!("{table}");
    let lost_line = table
        .lines()
        .find(|l| l.contains(&lost_id))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(lost_line.contains("MISSING INBOX UID"), "{table}");
    assert!(
        table.contains("1 with missing or duplicated messages (3 missing, 0 duplicated)"),
        "{table}"
    );

    // verify recorded the lost message as failed: a resync copies the new
    // mail and that one again, and verify passes.
    let status = json_of(&cutover(&["status", "--config", c, "--json"], &config));
    assert_eq!(status["users"][0]["failed"], 1, "{status:#}");
    assert_eq!(migrate(&config, &users).status.code(), Some(0));
    let out = verify();
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let v = json_of(&out);
    assert_eq!(v["users"][0]["missing_count"], 0);
    assert_eq!(
        lab.target
            .messages(&email)
            .iter()
            .filter(|m| mailgen::message_id(&m.raw).as_deref() == Some(lost_id.as_str()))
            .count(),
        1,
        "copied again, once"
    );
}

#[test]
fn verify_counts_a_copy_of_another_size_as_missing() {
    let lab = Lab::new(1);
    let (email, password) = user(1);
    let msgs = mailgen::generate(331, 6, 3000);
    lab.source.deliver(&email, "INBOX", &msgs);
    let config = lab.write_config("");
    let users = lab.write_users(&[(email.clone(), password)]);
    let (c, u) = (config.to_str().unwrap(), users.to_str().unwrap());
    assert_eq!(migrate(&config, &users).status.code(), Some(0));

    // One copy in the target is replaced by a truncated one: same
    // Message-ID, half the bytes.
    let victim = lab.target.messages(&email).into_iter().next().unwrap();
    let victim_id = mailgen::message_id(&victim.raw).unwrap();
    lab.target.expunge(&email, "INBOX", victim.uid);
    let truncated = GenMessage {
        raw: victim.raw[..victim.raw.len() / 2].to_vec(),
        flags: Vec::new(),
        internal_date: 1_700_000_000,
    };
    lab.target.deliver(&email, "INBOX", &[truncated]);

    let out = cutover(&["verify", "--config", c, "--users", u, "--json"], &config);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a truncated copy is not complete: {}",
        explain(&out)
    );
    let v = json_of(&out);
    let uv = &v["users"][0];
    assert_eq!(uv["missing_count"], 1, "{uv:#}");
    assert_eq!(uv["extra_count"], 0, "{uv:#}");
    let entry = find(&uv["missing"], "message_id", &victim_id);
    let status = entry["status"].as_str().unwrap();
    assert!(status.contains("may be truncated or altered"), "{status}");
    assert_eq!(find(&uv["folders"], "target", "INBOX")["size_differs"], 1);
}

#[test]
fn verify_reads_a_maildir_target_and_names_users_it_cannot_check() {
    let source = Dovecot::start(DovecotOptions {
        users: vec![user(1)],
        ..Default::default()
    });
    let (email, password) = user(1);
    source.deliver(&email, "INBOX", &mailgen::generate(331, 10, 1500));
    source.deliver(&email, "Sent", &mailgen::generate(332, 5, 1500));
    let odd: Vec<GenMessage> = mailgen::odd_corpus().into_iter().map(|(_, m)| m).collect();
    source.deliver(&email, "Odd", &odd);
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
    let (c, u) = (config.to_str().unwrap(), users.to_str().unwrap());
    assert_eq!(migrate(&config, &users).status.code(), Some(0));
    let out = cutover(&["verify", "--config", c, "--users", u, "--json"], &config);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let v = json_of(&out);
    assert_eq!(v["users"][0]["in_scope"], (15 + odd.len()) as u64);
    assert_eq!(v["users"][0]["missing_count"], 0);

    let cur = dir.path().join("out").join(&email).join(".Sent").join("cur");
    let victim = std::fs::read_dir(&cur).unwrap().next().unwrap().unwrap().path();
    std::fs::remove_file(&victim).unwrap();
    let out = cutover(&["verify", "--config", c, "--users", u, "--json"], &config);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let v = json_of(&out);
    assert_eq!(v["users"][0]["missing_count"], 1);
    assert_eq!(v["users"][0]["missing"][0]["folder"], "Sent");

    std::fs::write(
        &users,
        "EmailAddress,UserName,Password\nnobody@example.test,nobody@example.test,nope-secret\n",
    )
    .unwrap();
    let out = cutover(&["verify", "--config", c, "--users", u], &config);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("NOT VERIFIED") && table.contains("refused"), "{table}");
    assert!(!table.contains("nope-secret"));

    // A config that cannot be read: exit 2.
    let out = cutover(&["verify", "--config", "missing.toml", "--users", u], &config);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
}

#[test]
fn report_in_csv_json_and_html_from_a_real_migration() {
    let lab = Lab::new(2);
    let (email, password) = user(1);
    let msgs = mailgen::generate(341, 30, 2000);
    lab.source.deliver(&email, "INBOX", &msgs[..20]);
    lab.source.deliver(&email, "Archive", &msgs[20..]);
    let big = encoded_subject_message(1_200_000, "big-subject@example.test");
    lab.source.deliver(&email, "INBOX", std::slice::from_ref(&big));
    let config = lab.write_config("[limits]\nmax_message_bytes = 1048576\n");
    let users = lab.write_users(&[(email.clone(), password.clone()), (user(2).0, "bad-pw-report".into())]);
    let first = migrate(&config, &users);
    assert_eq!(first.status.code(), Some(1));
    // Not a terminal: plain lines, no escape codes or redraws.
    let progress = String::from_utf8_lossy(&first.stderr);
    assert!(!progress.contains('\x1b') && !progress.contains('\r'), "{progress}");
    assert!(
        progress.contains(&format!("{email}: done (30 copied, 0 failed in ")),
        "{progress}"
    );
    assert!(
        progress.contains(&format!("{}: failed (0 copied", user(2).0)),
        "{progress}"
    );
    assert!(
        progress.contains("copied 30 messages") && progress.contains("2 of 2 mailboxes finished, 1 with problems"),
        "{progress}"
    );
    lab.source.deliver(&email, "INBOX", &mailgen::generate(342, 3, 2000));
    assert_eq!(migrate(&config, &users).status.code(), Some(1));

    let c = config.to_str().unwrap();
    let user2_password = user(2).1;
    let secrets = [
        password.as_str(),
        "bad-pw-report",
        user2_password.as_str(),
        ADMIN_PASSWORD,
    ];
    let check_private = |path: &Path| {
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{} is not private", path.display());
        let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).to_string();
        for s in secrets {
            assert!(!text.contains(s), "a password is in {}", path.display());
        }
        text
    };

    // JSON.
    let json_path = lab.path("report.json");
    let out = cutover(
        &["report", "--config", c, "--output", json_path.to_str().unwrap()],
        &config,
    );
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let report: serde_json::Value = serde_json::from_str(&check_private(&json_path)).unwrap();
    let u1 = find(&report["users"], "email", &email);
    assert_eq!(u1["state"], "done");
    assert_eq!(u1["copied"], 33);
    assert_eq!(u1["source_messages"], 34);
    assert_eq!(u1["skipped_by_reason"]["too large"], 1);
    let syncs = u1["syncs"].as_array().unwrap();
    assert_eq!(syncs.len(), 2);
    assert_eq!(
        (syncs[0]["copied"].as_u64(), syncs[1]["copied"].as_u64()),
        (Some(30), Some(3))
    );
    for s in syncs {
        assert_eq!(s["state"], "done");
        assert!(s["started"].is_string() && s["finished"].is_string() && s["duration_seconds"].is_u64());
    }
    assert!(u1["bytes_per_second"].as_f64().unwrap() > 0.0);
    let u2 = find(&report["users"], "email", &user(2).0);
    assert_eq!(u2["state"], "failed");
    assert!(u2["last_error"].as_str().unwrap().contains("refused"));
    let item = find(&report["items"], "message_id", "<big-subject@example.test>");
    assert_eq!(item["subject"], "Große Datei für Sie", "RFC 2047 decoded");
    assert_eq!(item["reason"], "too large");
    assert_eq!(item["size"], big.raw.len() as u64);
    assert_eq!(report["totals"]["users"], 2);

    // CSV: users, syncs and items, each readable by a CSV parser.
    let csv_path = lab.path("report.csv");
    let out = cutover(
        &[
            "report",
            "--config",
            c,
            "--format",
            "csv",
            "--output",
            csv_path.to_str().unwrap(),
        ],
        &config,
    );
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let read_csv = |name: &str| -> Vec<BTreeMap<String, String>> {
        let text = check_private(&lab.path(name));
        let text = text.strip_prefix('\u{feff}').expect("UTF-8 BOM for Excel");
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let headers = r.headers().unwrap().clone();
        r.records()
            .map(|rec| {
                headers
                    .iter()
                    .zip(rec.unwrap().iter())
                    .map(|(h, v)| (h.to_owned(), v.to_owned()))
                    .collect()
            })
            .collect()
    };
    let rows = read_csv("report.csv");
    assert_eq!(rows.len(), 2);
    let row = rows.iter().find(|r| r["email"] == email).unwrap();
    assert_eq!((row["copied"].as_str(), row["skipped_too_large"].as_str()), ("33", "1"));
    assert_eq!(row["syncs"], "2");
    assert!(row["first_sync_start_utc"].contains(' ') && !row["first_sync_start_utc"].contains('T'));
    let syncs = read_csv("report.syncs.csv");
    assert_eq!(syncs.iter().filter(|r| r["email"] == email).count(), 2);
    let items = read_csv("report.items.csv");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["subject"], "Große Datei für Sie");
    assert_eq!(items[0]["folder"], "INBOX");

    // HTML.
    let html_path = lab.path("report.html");
    let out = cutover(
        &["report", "--config", c, "--output", html_path.to_str().unwrap()],
        &config,
    );
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let html = check_private(&html_path);
    assert!(html.contains(&format!("<td>{email}</td>")) && html.contains("Große Datei für Sie"));
    assert!(html.contains("<svg id=\"throughput\"") && html.contains("<svg id=\"reasons\""));

    let out = cutover(&["report", "--config", c, "--output", "report.txt"], &config);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format"));

    render_in_chromium(&html_path, &email, &user(2).0);
}

/// Renders the page in headless Chromium: the script ran, the users table
/// sorts from a `#sort=` link, and a screenshot is a real picture.
fn render_in_chromium(html: &Path, first: &str, second: &str) {
    // A check that passes without rendering proves nothing: no browser,
    // no pass.
    let Some(browser) = chromium() else {
        panic!("the HTML report cannot be rendered: chromium is not installed (scripts/install-deps installs it)");
    };
    let url = format!("file://{}", html.display());
    let out = chromium_run(browser, &["--dump-dom"], &format!("{url}#sort=users:0:desc"));
    assert!(out.status.success(), "chromium --dump-dom: {}", explain(&out));
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("data-sortable=\"ready\""), "the page's script did not run");
    let (a, b) = (
        dom.find(&format!("<td>{first}</td>")),
        dom.find(&format!("<td>{second}</td>")),
    );
    assert!(a.is_some() && b.is_some(), "user rows missing from the rendered page");
    assert!(b < a, "#sort=users:0:desc did not put {second} first");
    assert!(dom.contains("aria-sort=\"descending\""));

    let shot = html.with_extension("png");
    let out = chromium_run(
        browser,
        &[&format!("--screenshot={}", shot.display()), "--window-size=1280,900"],
        &url,
    );
    assert!(shot.is_file(), "no screenshot: {}", explain(&out));
    let (width, height, pixels) = decode_png(&std::fs::read(&shot).unwrap());
    assert_eq!((width, height), (1280, 900));
    let mut counts: std::collections::HashMap<[u8; 3], usize> = std::collections::HashMap::new();
    for p in &pixels {
        *counts.entry(*p).or_default() += 1;
    }
    let background = counts.values().copied().max().unwrap_or(0);
    assert!(counts.len() > 50, "screenshot has only {} colours", counts.len());
    assert!(
        pixels.len() - background > pixels.len() / 20,
        "screenshot is nearly blank"
    );
    eprintln!("screenshot: {}", shot.display());
    if let Ok(keep) = std::env::var("CUTOVER_KEEP_SCREENSHOT") {
        let _ = std::fs::copy(&shot, keep);
    }
}

#[test]
fn completions_and_help_with_examples() {
    let dir = tempfile::tempdir().unwrap();
    let anchor = dir.path().join("x.toml");
    for (shell, marker) in [
        ("bash", "_cutover()"),
        ("zsh", "#compdef cutover"),
        ("fish", "complete -c cutover"),
    ] {
        let out = cutover(&["completions", shell], &anchor);
        assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        for sub in ["migrate", "status", "check", "verify", "report", "completions"] {
            assert!(script.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    for sub in ["migrate", "status", "check", "verify", "report", "completions"] {
        let out = cutover(&[sub, "--help"], &anchor);
        assert_eq!(out.status.code(), Some(0));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Example"), "{sub} --help has no examples:\n{help}");
        assert!(
            help.contains(&format!("cutover {sub}")),
            "{sub} --help examples:\n{help}"
        );
    }
}
