//! Connection caps against a real server that enforces its own: a source
//! Dovecot that runs at most 3 IMAP sessions at once (a 4th connection is
//! dropped) and allows each user 2. With the caps set to match, a run that
//! would like 6 connections never trips the server, copies everything, and
//! records no throttling.

mod common;
mod support;

use common::*;
use support::dovecot::{Dovecot, DovecotOptions};
use support::mailgen;

#[test]
fn caps_per_host_and_per_user_keep_the_run_within_the_servers_limits() {
    let rows: Vec<(String, String)> = (1..=3).map(user).collect();
    let lab = Lab {
        source: Dovecot::start(DovecotOptions {
            users: rows.clone(),
            process_limit: 3,
            max_userip_connections: 2,
            ..Default::default()
        }),
        target: Dovecot::start(DovecotOptions {
            users: rows.clone(),
            master: Some(("admin".into(), ADMIN_PASSWORD.into())),
            ..Default::default()
        }),
        dir: tempfile::tempdir().unwrap(),
    };
    for (i, (email, _)) in rows.iter().enumerate() {
        let msgs = mailgen::generate(40 + i as u64, 80, 1500);
        lab.source.deliver(email, "INBOX", &msgs[..50]);
        lab.source.deliver(email, "Lists", &msgs[50..]);
    }
    // Three users with two connections each would be six sessions.
    let config = lab.write_config(
        "[run]\nparallel_users = 3\nconnections_per_user = 2\nbatch_messages = 5\n\
         [limits]\nmax_connections_per_source_host = 3\nmax_connections_per_user = 2\n",
    );
    let users = lab.write_users(&rows);
    let out = migrate(&config, &users);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    for (email, _) in &rows {
        assert_copied_exactly(&lab.source.messages(email), &lab.target.messages(email), &[]);
    }
    let logs = format!("{}{}", lab.source.info_log(), lab.source.error_log());
    assert!(
        !logs.contains("process_limit"),
        "the server had to drop a connection:\n{logs}"
    );
    assert!(
        !logs.contains("Maximum number of connections"),
        "a user went over its connections:\n{logs}"
    );
    let status = status_json(&config);
    assert_eq!(status["totals"]["throttled"], 0);
    assert_eq!(status["totals"]["copied"], 3 * 80);
}

#[test]
fn a_connection_slot_is_freed_only_once_the_server_let_go() {
    let rows: Vec<(String, String)> = (1..=3).map(user).collect();
    let lab = Lab::new(3);
    for (i, (email, _)) in rows.iter().enumerate() {
        let msgs = mailgen::generate(60 + i as u64, 40, 1500);
        lab.source.deliver(email, "INBOX", &msgs[..20]);
        lab.source.deliver(email, "Lists", &msgs[20..]);
    }
    // A source slow to tear sessions down: each lives on 300 ms after it
    // ends, and its close reaches the client only then. Three users at
    // once and a cap of two: the cap is always contended (a mailbox gives
    // its connection back after each fetch), so a slot freed before the
    // server let go is taken at once and the server sees a third session.
    let relay = support::relay::Relay::lingering(lab.source.port(), std::time::Duration::from_millis(300));
    lab.write_config_via(
        relay.port(),
        lab.target.port(),
        "",
        "[run]\nparallel_users = 3\nconnections_per_user = 2\nbatch_messages = 5\n\
         [limits]\nmax_connections_per_source_host = 2\nmax_connections_per_user = 2\n",
    );
    let users = lab.write_users(&rows);
    let out = migrate(&lab.path("cutover.toml"), &users);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    for (email, _) in &rows {
        assert_copied_exactly(&lab.source.messages(email), &lab.target.messages(email), &[]);
    }
    assert!(
        relay.client_streams().len() > 3,
        "sessions were opened one after another"
    );
    assert!(
        relay.max_sessions() <= 2,
        "{} source sessions were open at once, over the cap of 2",
        relay.max_sessions()
    );
}

/// More mailboxes at once than the source host has connections for: they
/// take turns at the source, a mailbox giving its connection back once it
/// has fetched a batch (while the target takes it), instead of the first
/// mailbox holding the only connection until all of it is copied while the
/// other waits idle.
#[test]
fn mailboxes_beyond_the_hosts_connection_cap_take_turns_at_the_source() {
    let rows: Vec<(String, String)> = (1..=2).map(user).collect();
    let lab = Lab::new(2);
    for (i, (email, _)) in rows.iter().enumerate() {
        let msgs = mailgen::generate(80 + i as u64, 30, 1500);
        lab.source.deliver(email, "INBOX", &msgs);
    }
    let config = lab.write_config(
        "[run]\nparallel_users = 2\nbatch_messages = 5\n\
         [limits]\nmax_connections_per_source_host = 1\n",
    );
    let users = lab.write_users(&rows);
    let out = cutover(
        &[
            "migrate",
            "--json",
            "--config",
            config.to_str().unwrap(),
            "--users",
            users.to_str().unwrap(),
        ],
        &config,
    );
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    for (email, _) in &rows {
        assert_copied_exactly(&lab.source.messages(email), &lab.target.messages(email), &[]);
    }
    // The order in which batches landed, by mailbox.
    let landed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "batch_copied")
        .map(|e| e["user"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(landed.len(), 12, "6 batches of 5 per mailbox: {landed:?}");
    let first_of = |u: &str| landed.iter().position(|x| x == u).unwrap();
    let last_of = |u: &str| landed.iter().rposition(|x| x == u).unwrap();
    let (a, b) = (&rows[0].0, &rows[1].0);
    let (first, second) = if first_of(a) < first_of(b) { (a, b) } else { (b, a) };
    assert!(
        first_of(second) < last_of(first),
        "one mailbox held the only source connection until it was done: {landed:?}"
    );
}
