//! Hostile mail: every message of the generated hostile set (no Message-ID,
//! duplicate Message-IDs, bare LF, NUL bytes, 8-bit headers, unknown and
//! wrong charsets, 1,000 header lines, 100-deep MIME nesting, zero bytes,
//! header-only, exactly at and one byte over `max_message_bytes`) is copied
//! byte-identical to a real Dovecot target or reported in `status` with its
//! reason, and none of them stops the mailbox. The same set goes through the
//! Graph JSON transform without a panic.

mod common;
mod support;

use common::*;
use support::hostile::{self, Expect};
use support::imap::{ImapConn, first_literal, quote};
use support::mailgen;

use cutover::model::Flags;
use cutover::target::graph::json;

const LIMIT: usize = 200_000;

#[test]
fn hostile_messages_are_copied_faithfully_or_reported() {
    let lab = Lab::new(1);
    let (email, _) = user(1);
    let corpus = hostile::corpus(LIMIT);
    let msgs: Vec<_> = corpus.iter().map(|h| h.msg.clone()).collect();
    lab.source.deliver(&email, "Hostile", &msgs);
    // Ordinary mail after the hostile set, in the same folder and another:
    // a hostile message must not stop the rest of the mailbox.
    let normal = mailgen::generate(5, 30, 30);
    lab.source.deliver(&email, "Hostile", &normal[..15]);
    lab.source.deliver(&email, "INBOX", &normal[15..]);
    lab.write_config(&format!(
        "[run]\nbatch_messages = 4\n[limits]\nmax_message_bytes = {LIMIT}\n"
    ));
    lab.write_users(&[user(1)]);

    let out = migrate(&lab.path("cutover.toml"), &lab.path("users.csv"));
    let code = out.status.code();
    assert!(code == Some(0) || code == Some(1), "{}", explain(&out));

    // The source as an IMAP client reads it: that is what "faithful" means
    // (Dovecot, for one, serves NUL bytes as 0x80 to a BODY[] fetch, and
    // bare LF as CRLF).
    let source = served(&lab, &email);
    let target = lab.target.messages(&email);
    let status = status_json(&lab.path("cutover.toml"));
    let u = user_status(&status, &email);
    let items = u["items"].as_array().unwrap();
    let reported = |size: usize| -> Option<String> {
        items
            .iter()
            .find(|i| i["folder"] == "Hostile" && i["size"].as_u64() == Some(size as u64))
            .map(|i| {
                format!(
                    "{}: {}",
                    i["state"].as_str().unwrap_or(""),
                    i["reason"].as_str().unwrap_or("")
                )
            })
    };

    // Which source bytes are allowed to be missing from the target: the
    // oversized one (must be reported "too large") and any "copied or
    // reported" one the target refused (must be reported with a reason).
    let mut skipped: Vec<Vec<u8>> = Vec::new();
    for h in &corpus {
        // What an IMAP client reads from the source (Dovecot serves bare LF
        // as CRLF), matched by the INTERNALDATE the fixture gave it.
        let Some(src) = source
            .iter()
            .find(|m| m.folder == "Hostile" && m.internal_date == h.msg.internal_date)
        else {
            panic!("{}: not in the source", h.name);
        };
        let copied = target
            .iter()
            .filter(|t| t.folder == "Hostile" && t.raw == src.raw)
            .count();
        match h.expect {
            Expect::Copied => {
                assert_eq!(
                    copied,
                    1,
                    "{}: copied {copied} times; status: {:?}",
                    h.name,
                    reported(src.raw.len())
                );
            }
            Expect::TooLarge => {
                assert_eq!(copied, 0, "{}: must not be copied", h.name);
                let why = reported(src.raw.len()).unwrap_or_else(|| panic!("{}: not reported", h.name));
                assert!(why.contains("too large"), "{}: {why}", h.name);
                skipped.push(src.raw.clone());
            }
            Expect::CopiedOrReported => {
                if copied == 0 {
                    let why = reported(src.raw.len()).unwrap_or_else(|| {
                        let near: Vec<_> = target
                            .iter()
                            .filter(|t| t.internal_date == h.msg.internal_date)
                            .map(|t| String::from_utf8_lossy(&t.raw).into_owned())
                            .collect();
                        panic!(
                            "{}: neither copied nor reported; source {:?}, target {near:?}",
                            h.name,
                            String::from_utf8_lossy(&src.raw)
                        )
                    });
                    assert!(why.len() > "failed: ".len(), "{}: reported without a reason", h.name);
                    eprintln!("{} reported: {why}", h.name);
                    skipped.push(src.raw.clone());
                } else {
                    assert_eq!(copied, 1, "{}: copied {copied} times", h.name);
                }
            }
        }
    }
    let skipped_refs: Vec<&[u8]> = skipped.iter().map(Vec::as_slice).collect();
    let (lost, duplicated) = lost_and_duplicated(&source, &target, &skipped_refs);
    record_figures(
        "hostile_mail",
        &[
            ("hostile_messages", corpus.len() as u64),
            ("lost", lost),
            ("duplicated", duplicated),
        ],
    );
    assert_eq!((lost, duplicated), (0, 0), "lost, duplicated");
    // Flags and dates too, for everything that was copied.
    assert_copied_exactly(&source, &target, &skipped_refs);
    // A rerun finds nothing new to do and copies nothing twice.
    let again = migrate(&lab.path("cutover.toml"), &lab.path("users.csv"));
    assert_eq!(again.status.code(), code, "{}", explain(&again));
    assert_eq!(lab.target.messages(&email).len(), target.len(), "rerun copied again");
}

/// Every message of the source as `UID FETCH n BODY.PEEK[]` returns it,
/// read by the test's own IMAP client.
fn served(lab: &Lab, email: &str) -> Vec<support::StoredMessage> {
    let mut stored = lab.source.messages(email);
    let mut conn = ImapConn::connect(lab.source.port());
    conn.login(email, &user(1).1).expect_ok("login");
    let mut open = String::new();
    for m in &mut stored {
        if m.folder != open {
            conn.command(&format!("EXAMINE {}", quote(&m.folder)))
                .expect_ok("examine");
            open = m.folder.clone();
        }
        let r = conn
            .command(&format!("UID FETCH {} BODY.PEEK[]", m.uid))
            .expect_ok("fetch");
        m.raw = first_literal(&r.data).unwrap_or_default();
    }
    stored
}

#[test]
fn hostile_messages_go_through_the_graph_json_transform() {
    let flags = Flags::from_wire("\\Seen \\Flagged");
    for h in hostile::corpus(LIMIT) {
        let result = json::build(&h.msg.raw, &flags, h.msg.internal_date);
        match result {
            Ok(m) => {
                let v: serde_json::Value = serde_json::from_slice(&m.request)
                    .unwrap_or_else(|e| panic!("{}: request is not JSON: {e}", h.name));
                assert_eq!(v["isRead"], true, "{}", h.name);
                assert!(v["body"].is_object(), "{}: no body", h.name);
                assert!(
                    m.request.len() <= json::REQUEST_MAX,
                    "{}: request of {} bytes",
                    h.name,
                    m.request.len()
                );
                // Never a draft: PR_MESSAGE_FLAGS is always set at creation.
                let props = v["singleValueExtendedProperties"].as_array().unwrap();
                assert!(props.iter().any(|p| p["id"] == "Integer 0x0E07"), "{}", h.name);
            }
            // Refusing is fine for a message with nothing to parse, as long
            // as the reason says so (it lands in status as the item's reason).
            Err(reason) => {
                assert!(h.msg.raw.len() < 100, "{}: refused: {reason}", h.name);
                assert!(!reason.is_empty(), "{}", h.name);
            }
        }
    }
    // A duplicated Message-ID stays on both messages; no Message-ID gives none.
    let corpus = hostile::corpus(LIMIT);
    let id_of = |name: &str| {
        let h = corpus.iter().find(|h| h.name == name).unwrap();
        let m = json::build(&h.msg.raw, &flags, 0).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&m.request).unwrap();
        v["internetMessageId"].clone()
    };
    assert_eq!(id_of("duplicate-message-id-1"), "<same@hostile.test>");
    assert_eq!(id_of("duplicate-message-id-2"), "<same@hostile.test>");
    assert!(id_of("no-message-id-a").is_null());
}
