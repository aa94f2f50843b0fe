//! Hostile servers: a relay in front of the real source Dovecot misbehaves
//! towards one user when bodies are fetched (unexpected untagged
//! responses, garbage, literals whose declared size lies, a 4 GB literal,
//! a 24 MiB line, a FETCH that never ends, silence mid-response). The
//! connection is dropped with a clear error, memory stays bounded, no read
//! hangs (every read has a timeout), the other user is copied in full, and
//! once the server behaves the rerun completes with nothing lost or twice.

mod common;
mod support;

use std::process::Command;

use common::*;
use support::hostile_server::{HostileServer, Misbehave};
use support::mailgen;

/// Peak resident memory allowed to a run facing a hostile server; the
/// server offers up to 4 GB.
const MAX_RSS_KIB: u64 = 96 * 1024;

/// `cutover migrate` under GNU time: (output, peak RSS in KiB).
fn migrate_measured(lab: &Lab) -> (std::process::Output, u64) {
    let rss_file = lab.path("rss.txt");
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .arg(env!("CARGO_BIN_EXE_cutover"))
        .args(["migrate", "--config", "cutover.toml", "--users", "users.csv"])
        .env("CUTOVER_TEST_ADMIN_PW", ADMIN_PASSWORD)
        .current_dir(lab.dir.path())
        .output()
        .expect("run cutover under /usr/bin/time (install the `time` package)");
    let text = std::fs::read_to_string(&rss_file).unwrap();
    let rss = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    (out, rss)
}

#[test]
fn hostile_servers_are_dropped_and_the_run_goes_on() {
    let lab = Lab::new(2);
    let (victim, _) = user(1);
    let (bystander, _) = user(2);
    let relay = HostileServer::start(lab.source.port());
    lab.write_config_via(
        relay.port(),
        lab.target.port(),
        "timeout_seconds = 2\n",
        "[run]\nmax_attempts = 2\nbatch_messages = 10\nparallel_users = 2\n",
    );
    lab.write_users(&[user(1), user(2)]);

    let mut cases = 0;
    let mut worst_rss = 0;
    // Summed over every case, both users, by content and per folder: the
    // figures report what was counted, not a constant.
    let (mut lost_total, mut duplicated_total) = (0u64, 0u64);
    for (i, mode) in Misbehave::ALL.into_iter().enumerate() {
        // New mail for both users, so each case has bodies to fetch.
        let fresh = mailgen::generate(900 + i as u64, 24, 24);
        lab.source.deliver(&victim, "INBOX", &fresh[..12]);
        lab.source.deliver(&bystander, "INBOX", &fresh[12..]);
        let hits = relay.hits();
        relay.script(Some((&victim, mode)));
        let (out, rss) = migrate_measured(&lab);
        relay.script(None);
        assert!(relay.hits() > hits, "{mode:?}: the misbehaviour never played");
        worst_rss = worst_rss.max(rss);
        assert!(rss < MAX_RSS_KIB, "{mode:?}: peak memory {rss} KiB");
        // The bystander is complete whatever the victim's server did.
        assert_copied_exactly(&lab.source.messages(&bystander), &lab.target.messages(&bystander), &[]);
        let status = status_json(&lab.path("cutover.toml"));
        let v = user_status(&status, &victim);
        if mode.is_survivable() {
            assert_eq!(out.status.code(), Some(0), "{mode:?}: {}", explain(&out));
        } else {
            assert_eq!(out.status.code(), Some(1), "{mode:?}: {}", explain(&out));
            // The victim's batch is reported failed, with the reason.
            let failed: Vec<&str> = v["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["state"] == "failed")
                .map(|i| i["reason"].as_str().unwrap_or(""))
                .collect();
            assert!(!failed.is_empty(), "{mode:?}: nothing reported failed: {v}");
            eprintln!("{mode:?}: {} failed, e.g. {:?}", failed.len(), failed[0]);
            // Short, says what failed, and carries none of the server's bytes.
            for r in &failed {
                assert!(r.starts_with("FETCH: ") && r.len() < 400, "{mode:?}: {r}");
                assert!(!r.contains("liar@example.test"), "{mode:?}: {r}");
            }
        }
        // The server behaves again: the rerun completes the victim exactly.
        let out = migrate(&lab.path("cutover.toml"), &lab.path("users.csv"));
        assert_eq!(out.status.code(), Some(0), "{mode:?} rerun: {}", explain(&out));
        for email in [&victim, &bystander] {
            let (src, dst) = (lab.source.messages(email), lab.target.messages(email));
            let (lost, duplicated) = lost_and_duplicated(&src, &dst, &[]);
            if (lost, duplicated) != (0, 0) {
                eprintln!("{mode:?}: {email}: lost {lost}, duplicated {duplicated}");
            }
            lost_total += lost;
            duplicated_total += duplicated;
        }
        cases += 1;
    }
    eprintln!("peak memory facing hostile servers: {worst_rss} KiB");
    record_figures(
        "hostile_server",
        &[
            ("hostile_server_cases", cases),
            ("lost", lost_total),
            ("duplicated", duplicated_total),
        ],
    );
    assert_eq!((lost_total, duplicated_total), (0, 0), "lost, duplicated");
    assert_copied_exactly(&lab.source.messages(&victim), &lab.target.messages(&victim), &[]);
}

#[test]
fn bodies_a_server_leaves_out_or_sends_empty_fail_and_are_copied_later() {
    let lab = Lab::new(1);
    let (email, _) = user(1);
    let relay = HostileServer::start(lab.source.port());
    lab.write_config_via(
        relay.port(),
        lab.target.port(),
        "timeout_seconds = 5\n",
        "[run]\nmax_attempts = 1\nbatch_messages = 10\n",
    );
    lab.write_users(&[user(1)]);
    lab.source.deliver(&email, "INBOX", &mailgen::generate(950, 6, 2000));

    // The answer leaves every message out although the folder has them:
    // none is gone, each failed with the reason.
    relay.script(Some((&email, Misbehave::OmitsBodies)));
    let out = migrate(&lab.path("cutover.toml"), &lab.path("users.csv"));
    assert!(relay.hits() > 0, "the misbehaviour never played");
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let by_state = items_by_state(&lab.path("cutover.toml"), &email);
    assert!(!by_state.contains_key("gone"), "{by_state:#?}");
    let failed = by_state.get("failed").cloned().unwrap_or_default();
    assert_eq!(failed.len(), 6, "{by_state:#?}");
    assert!(failed.iter().all(|r| r.contains("did not send")), "{failed:#?}");

    // BODY[] NIL for each: nothing is copied as an empty message.
    let hits = relay.hits();
    relay.script(Some((&email, Misbehave::NilBodies)));
    let out = migrate(&lab.path("cutover.toml"), &lab.path("users.csv"));
    assert!(relay.hits() > hits, "the misbehaviour never played");
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let by_state = items_by_state(&lab.path("cutover.toml"), &email);
    let failed = by_state.get("failed").cloned().unwrap_or_default();
    assert_eq!(failed.len(), 6, "{by_state:#?}");
    assert!(failed.iter().all(|r| r.contains("empty body")), "{failed:#?}");
    assert!(lab.target.messages(&email).is_empty(), "no empty copy was stored");

    // The server behaves again: every message arrives, once.
    relay.script(None);
    let out = migrate(&lab.path("cutover.toml"), &lab.path("users.csv"));
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert_copied_exactly(&lab.source.messages(&email), &lab.target.messages(&email), &[]);
}

#[test]
fn a_large_message_over_a_slow_link_takes_the_time_it_needs() {
    let lab = Lab::new(1);
    let (email, _) = user(1);
    let relay = HostileServer::start(lab.source.port());
    // 2 s to answer, but a 1.5 MB message at about 200 KiB/s takes 7 s:
    // the answer keeps coming, so it is waited for.
    lab.write_config_via(
        relay.port(),
        lab.target.port(),
        "timeout_seconds = 2\n",
        "[run]\nmax_attempts = 1\n",
    );
    lab.write_users(&[user(1)]);
    lab.source
        .deliver(&email, "INBOX", &[mailgen::big_message(1_500_000, 17)]);
    relay.script(Some((&email, Misbehave::SlowLink)));
    let out = migrate(&lab.path("cutover.toml"), &lab.path("users.csv"));
    assert!(relay.hits() > 0, "the slow link never played");
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert_copied_exactly(&lab.source.messages(&email), &lab.target.messages(&email), &[]);
}

#[test]
fn a_server_that_understates_sizes_cannot_overrun_the_memory_budget() {
    let lab = Lab::new(1);
    let (email, _) = user(1);
    let relay = HostileServer::start(lab.source.port());
    lab.write_config_via(
        relay.port(),
        lab.target.port(),
        "timeout_seconds = 5\n",
        "[run]\nmax_attempts = 2\nbatch_messages = 10\n",
    );
    lab.write_users(&[user(1)]);
    // Three 2 MB messages the server says are 200 KB each: the batch's
    // bodies (6 MB) are far over what was reserved for them.
    let big: Vec<_> = (0..3).map(|i| mailgen::big_message(2_000_000, 40 + i)).collect();
    lab.source.deliver(&email, "INBOX", &big);
    relay.script(Some((&email, Misbehave::UnderstatesSizes)));
    let out = migrate(&lab.path("cutover.toml"), &lab.path("users.csv"));
    assert!(relay.hits() > 0, "the sizes were never understated");
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let by_state = items_by_state(&lab.path("cutover.toml"), &email);
    let failed = by_state.get("failed").cloned().unwrap_or_default();
    assert_eq!(failed.len(), 3, "{by_state:#?}");
    assert!(
        failed
            .iter()
            .all(|r| r.contains("more than the") && r.contains("sizes announced")),
        "{failed:#?}"
    );
    assert!(lab.target.messages(&email).is_empty());

    // A rerun against the same server fails them again, as loudly: they
    // are never dropped from the run or counted done.
    let out = migrate(&lab.path("cutover.toml"), &lab.path("users.csv"));
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    assert_eq!(
        items_by_state(&lab.path("cutover.toml"), &email)
            .get("failed")
            .map(Vec::len),
        Some(3)
    );
}
