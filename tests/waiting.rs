//! Every mailbox that waits says on what: a run where a limit binds shows
//! it in `--json` as `waiting` events naming the limit, each mailbox's wait
//! ends (`on: null`) by the end of the run, and nothing is left in the
//! state DB for `status` once the run is over.
//!
//! - Dovecot to Dovecot, three mailboxes at once through one source
//!   connection (`max_connections_per_source_host = 1`): `source_slot`.
//! - Dovecot to the Graph emulator with a tiny request budget per mailbox
//!   (`requests_per_10_minutes`, on a scaled clock): `target_budget`,
//!   reported by the Graph target's own pacing.

mod common;
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;
use support::emulator::{CLIENT, Emulator, TENANT};
use support::mailgen;

const SECRET: &str = "graph-s3cret-value";

/// The `--json` lines of a run.
fn events(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Per user, the `on` of each of its `waiting` events, in order (`None`:
/// the wait ended).
fn waits(events: &[Value]) -> BTreeMap<String, Vec<Option<String>>> {
    let mut out: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["event"] == "waiting") {
        assert!(e["since"].is_i64(), "since is Unix seconds: {e}");
        out.entry(e["user"].as_str().unwrap().to_owned())
            .or_default()
            .push(e["on"].as_str().map(str::to_owned));
    }
    out
}

/// Every user's waits ended, and `status` shows none once the run is over.
fn assert_all_ended(waits: &BTreeMap<String, Vec<Option<String>>>, config: &Path) {
    for (user, list) in waits {
        assert_eq!(list.last(), Some(&None), "{user}'s wait never ended: {list:?}");
    }
    // Run as `status_json` runs it, with the Graph secret at hand too.
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["status", "--config", config.to_str().unwrap(), "--json"])
        .env("CUTOVER_TEST_ADMIN_PW", ADMIN_PASSWORD)
        .env("CUTOVER_TEST_GRAPH_SECRET", SECRET)
        .current_dir(config.parent().unwrap())
        .output()
        .expect("run cutover status");
    assert!(out.status.success(), "{}", explain(&out));
    let status: Value = serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    for u in status["users"].as_array().unwrap() {
        assert!(u["waiting_on"].is_null(), "left after the run: {u}");
    }
}

#[test]
fn mailboxes_sharing_one_source_connection_wait_on_the_source_slot() {
    let rows: Vec<(String, String)> = (1..=3).map(user).collect();
    let lab = Lab::new(3);
    for (i, (email, _)) in rows.iter().enumerate() {
        let msgs = mailgen::generate(90 + i as u64, 30, 1500);
        lab.source.deliver(email, "INBOX", &msgs);
    }
    // One source connection for three mailboxes at once, each read at 20
    // messages a second: two of them wait for the slot a while.
    let config = lab.write_config(
        "[run]\nparallel_users = 3\nconnections_per_user = 1\nbatch_messages = 5\n\
         [limits]\nmax_connections_per_source_host = 1\nsource_messages_per_second = 20\n",
    );
    let users = lab.write_users(&rows);
    let out = cutover(
        &[
            "migrate",
            "--config",
            config.to_str().unwrap(),
            "--users",
            users.to_str().unwrap(),
            "--json",
        ],
        &config,
    );
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    for (email, _) in &rows {
        assert_copied_exactly(&lab.source.messages(email), &lab.target.messages(email), &[]);
    }
    let waits = waits(&events(&out));
    let on_slot = waits
        .values()
        .filter(|list| list.iter().any(|on| on.as_deref() == Some("source_slot")))
        .count();
    assert!(
        on_slot >= 1,
        "no mailbox was seen waiting on the source slot: {waits:?}"
    );
    for list in waits.values() {
        for on in list.iter().flatten() {
            assert!(
                ["source_slot", "source_rate", "login_rate", "in_flight_bytes"].contains(&on.as_str()),
                "a wait on {on}, which this run does not limit: {waits:?}"
            );
        }
    }
    assert_all_ended(&waits, &config);
}

#[test]
fn a_graph_mailbox_over_its_request_budget_waits_on_the_target_budget() {
    let rows: Vec<(String, String)> = (1..=2).map(user).collect();
    let lab = Lab::new(2);
    for (i, (email, _)) in rows.iter().enumerate() {
        let msgs = mailgen::generate(120 + i as u64, 40, 1500);
        lab.source.deliver(email, "INBOX", &msgs);
    }
    let emu = Emulator::new().client_secret(SECRET).seed(7).time_scale(0.01).start();
    // 200 requests per mailbox per 10 minutes on a clock 100 times as fast:
    // about 32 a second, 4 at once; each mailbox needs over 40.
    let config = lab.path("cutover.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\n\
             [target]\nkind = \"graph\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\n\
             client_secret_env = \"CUTOVER_TEST_GRAPH_SECRET\"\nendpoint = \"{base}\"\nauthority = \"{base}\"\n\
             timeout_seconds = 20\nlimits_time_scale = 0.01\nrequests_per_10_minutes = 200\n\n\
             [state]\npath = \"state.db\"\n\
             [run]\nparallel_users = 2\nbatch_messages = 5\n",
            lab.source.port(),
            base = emu.base_url,
        ),
    )
    .unwrap();
    let users = lab.write_users(&rows);
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args([
            "migrate",
            "--config",
            config.to_str().unwrap(),
            "--users",
            users.to_str().unwrap(),
            "--json",
        ])
        .env("CUTOVER_TEST_GRAPH_SECRET", SECRET)
        .current_dir(lab.dir.path())
        .output()
        .expect("run cutover");
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let events = events(&out);
    let copied: u64 = events
        .iter()
        .filter(|e| e["event"] == "user_finished")
        .map(|e| e["copied"].as_u64().unwrap())
        .sum();
    assert_eq!(copied, 80, "{}", explain(&out));
    let waits = waits(&events);
    for (email, _) in &rows {
        let list = waits
            .get(email)
            .unwrap_or_else(|| panic!("{email} never waited: {waits:?}"));
        assert!(
            list.iter().any(|on| on.as_deref() == Some("target_budget")),
            "{email} was not seen waiting on the target budget: {list:?}"
        );
    }
    assert_all_ended(&waits, &config);
}
