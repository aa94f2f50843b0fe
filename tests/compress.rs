//! COMPRESS=DEFLATE (RFC 4978) against real Dovecot with its `imap_zlib`
//! plugin, source and IMAP target alike. Each server sits behind a relay
//! that counts the bytes on the wire and keeps what clients sent, so the
//! tests judge by what crossed the wire, not by the client's own account:
//! compression on shrinks the server's answers below the mail they carry
//! (and the uploads below the mail sent); off sends no COMPRESS at all; a
//! server that refuses it is migrated uncompressed.

mod common;
mod support;

use std::path::{Path, PathBuf};

use common::{ADMIN_PASSWORD, Lab, assert_copied_exactly, explain, user};
use support::relay::Relay;
use support::{Dovecot, DovecotOptions, mailgen};

/// Source and target Dovecot, both offering COMPRESS=DEFLATE.
fn lab() -> Lab {
    let users = vec![user(1)];
    Lab {
        source: Dovecot::start(DovecotOptions {
            users: users.clone(),
            compress: true,
            ..Default::default()
        }),
        target: Dovecot::start(DovecotOptions {
            users,
            master: Some(("admin".into(), ADMIN_PASSWORD.into())),
            compress: true,
            ..Default::default()
        }),
        dir: tempfile::tempdir().unwrap(),
    }
}

/// Mail in three folders, about 0.8 MB, with one 300 KB message so an
/// APPEND and a FETCH each span many compressed reads and writes. Returns
/// the bytes delivered.
fn fill(lab: &Lab) -> u64 {
    let (email, _) = user(1);
    let mut total = 0;
    for (seed, folder, count) in [(801, "INBOX", 20), (802, "Projekte/Übersicht", 12), (803, "Archive", 8)] {
        let msgs = mailgen::generate(seed, count, 12_000);
        total += msgs.iter().map(|m| m.raw.len() as u64).sum::<u64>();
        lab.source.deliver(&email, folder, &msgs);
    }
    let big = mailgen::big_message(300_000, 804);
    total += big.raw.len() as u64;
    lab.source.deliver(&email, "INBOX", &[big]);
    total
}

/// A config through the two relays; `source_extra`/`target_extra` are
/// extra keys for those sections.
fn config(lab: &Lab, source: &Relay, target: &Relay, source_extra: &str, target_extra: &str) -> PathBuf {
    let text = format!(
        "[source]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n{source_extra}\n\
         [target]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\
         login = \"{{email}}*admin\"\npassword_env = \"CUTOVER_TEST_ADMIN_PW\"\n{target_extra}\n\
         [state]\npath = \"state.db\"\n",
        source.port(),
        target.port()
    );
    let path = lab.path("cutover.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `cutover -vv migrate` (debug log on stderr), then source and target
/// compared.
fn migrate_and_compare(lab: &Lab, config: &Path) -> std::process::Output {
    let (email, _) = user(1);
    let users = lab.write_users(&[user(1)]);
    let out = common::cutover(
        &[
            "-vv",
            "migrate",
            "--config",
            config.to_str().unwrap(),
            "--users",
            users.to_str().unwrap(),
        ],
        config,
    );
    assert!(out.status.success(), "migrate failed: {}", explain(&out));
    assert_copied_exactly(&lab.source.messages(&email), &lab.target.messages(&email), &[]);
    out
}

#[test]
fn compressed_migrate_copies_exactly_and_shrinks_the_wire_both_ways() {
    let lab = lab();
    let mail_bytes = fill(&lab);
    let source = Relay::start(lab.source.port());
    let target = Relay::start(lab.target.port());
    // Forced on: the servers are on loopback, where "auto" leaves it off.
    let config = config(&lab, &source, &target, "compress = true", "compress = true");
    let out = migrate_and_compare(&lab, &config);

    // Every connection to either server asked for compression...
    for (side, relay) in [("source", &source), ("target", &target)] {
        let connections = relay.client_streams().len();
        assert!(connections > 0, "{side}: no connection went through the relay");
        assert_eq!(
            relay.connections_sending(b" COMPRESS DEFLATE\r\n"),
            connections,
            "{side}: every connection asks for COMPRESS DEFLATE"
        );
    }
    // ...and got it: the source's answers, which carry every message once
    // plus the protocol around them, took fewer bytes on the wire than the
    // mail alone; likewise the uploads to the target.
    let down = source.bytes_to_client();
    let up = target.bytes_to_server();
    eprintln!("{mail_bytes} bytes of mail: {down} bytes from the source, {up} bytes to the target on the wire");
    assert!(
        down < mail_bytes * 9 / 10,
        "source answers took {down} bytes on the wire for {mail_bytes} bytes of mail"
    );
    assert!(
        up < mail_bytes * 9 / 10,
        "uploads took {up} bytes on the wire for {mail_bytes} bytes of mail"
    );
    // The debug log says so per connection, check and bench report it.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("COMPRESS=DEFLATE active"), "{stderr}");
    let (check, bench) = check_and_bench(&lab, &config);
    assert_eq!(check["users"][0]["source"]["compressed"], true, "{check:#}");
    assert_eq!(bench["compressed"], true, "{bench:#}");
    assert_eq!(bench["rows"][0]["messages"], 41, "{bench:#}");
}

/// `cutover check --json` and a one-connection `cutover bench --json`.
fn check_and_bench(lab: &Lab, config: &Path) -> (serde_json::Value, serde_json::Value) {
    let users = lab.write_users(&[user(1)]);
    let (c, u) = (config.to_str().unwrap(), users.to_str().unwrap());
    let json = |args: &[&str]| {
        let out = common::cutover(args, config);
        assert!(out.status.success(), "{args:?}: {}", explain(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("JSON")
    };
    (
        json(&["check", "--config", c, "--users", u, "--json"]),
        json(&[
            "bench",
            "--config",
            c,
            "--users",
            u,
            "--connections",
            "1",
            "--seconds",
            "30",
            "--json",
        ]),
    )
}

#[test]
fn compress_false_and_auto_to_loopback_send_no_compress_command() {
    let lab = lab();
    let mail_bytes = fill(&lab);
    let source = Relay::start(lab.source.port());
    let target = Relay::start(lab.target.port());
    let config = config(&lab, &source, &target, "compress = false", "compress = false");
    migrate_and_compare(&lab, &config);
    for (side, relay) in [("source", &source), ("target", &target)] {
        assert!(
            !relay.client_streams().is_empty(),
            "{side}: no connection went through the relay"
        );
        assert_eq!(relay.connections_sending(b"COMPRESS"), 0, "{side}: COMPRESS was sent");
    }
    // Uncompressed, the wire carries at least the mail itself.
    assert!(source.bytes_to_client() > mail_bytes);
    assert!(target.bytes_to_server() > mail_bytes);
    let (check, bench) = check_and_bench(&lab, &config);
    assert_eq!(check["users"][0]["source"]["compressed"], false, "{check:#}");
    assert_eq!(bench["compressed"], false, "{bench:#}");
    assert_eq!(
        source.connections_sending(b"COMPRESS"),
        0,
        "check and bench sent COMPRESS"
    );

    // The default, "auto", leaves connections to loopback uncompressed.
    let source = Relay::start(lab.source.port());
    let target = Relay::start(lab.target.port());
    let auto = self::config(&lab, &source, &target, "", "");
    let (check, bench) = check_and_bench(&lab, &auto);
    assert_eq!(check["users"][0]["source"]["compressed"], false, "{check:#}");
    assert_eq!(bench["compressed"], false, "{bench:#}");
    assert!(
        !source.client_streams().is_empty(),
        "no connection went through the relay"
    );
    assert_eq!(
        source.connections_sending(b"COMPRESS"),
        0,
        "COMPRESS sent to loopback by default"
    );
}

#[test]
fn a_server_that_refuses_compress_is_migrated_uncompressed() {
    let lab = lab();
    let mail_bytes = fill(&lab);
    // Dovecot answers the spoiled COMPRESS with its own NO.
    let source = Relay::refusing_compress(lab.source.port());
    let target = Relay::refusing_compress(lab.target.port());
    let config = config(&lab, &source, &target, "compress = true", "compress = true");
    let out = migrate_and_compare(&lab, &config);
    for (side, relay) in [("source", &source), ("target", &target)] {
        let connections = relay.client_streams().len();
        assert!(connections > 0, "{side}: no connection went through the relay");
        assert_eq!(
            relay.connections_sending(b" COMPRESS DEFLATE\r\n"),
            connections,
            "{side}: every connection asked"
        );
    }
    // Refused, so nothing was compressed, and the refusal is in the log.
    assert!(source.bytes_to_client() > mail_bytes);
    assert!(target.bytes_to_server() > mail_bytes);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("COMPRESS DEFLATE refused"), "{stderr}");
    assert!(!stderr.contains("COMPRESS=DEFLATE active"), "{stderr}");
}
