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
    // ends, and its close reaches the client only then. Three users want
    // two copy connections each plus a scan: the cap of three is always
    // contended, so a slot freed before the server let go is taken at
    // once and the server sees a fourth session.
    let relay = support::relay::Relay::lingering(lab.source.port(), std::time::Duration::from_millis(300));
    lab.write_config_via(
        relay.port(),
        lab.target.port(),
        "",
        "[run]\nparallel_users = 3\nconnections_per_user = 2\nbatch_messages = 5\n\
         [limits]\nmax_connections_per_source_host = 3\nmax_connections_per_user = 2\n",
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
        relay.max_sessions() <= 3,
        "{} source sessions were open at once, over the cap of 3",
        relay.max_sessions()
    );
}
