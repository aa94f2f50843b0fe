//! Crash safety: `cutover migrate` killed with SIGKILL at random moments,
//! again and again, then rerun to the end, leaves the target holding
//! exactly the source set: nothing missing, nothing twice. SIGTERM stops
//! gracefully with the "interrupted" exit code, and the next run resumes.

mod common;
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use support::mailgen;

fn spawn_migrate(lab: &Lab) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["migrate", "--config", "cutover.toml", "--users", "users.csv", "-q"])
        .env("CUTOVER_TEST_ADMIN_PW", ADMIN_PASSWORD)
        .current_dir(lab.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start cutover")
}

#[test]
fn sigkill_at_random_moments_never_loses_or_duplicates() {
    let lab = Lab::new(2);
    for n in 1..=2 {
        let (email, _) = user(n);
        let msgs = mailgen::generate(40 + n as u64, 1500, 2500);
        lab.source.deliver(&email, "INBOX", &msgs[..600]);
        lab.source.deliver(&email, "Archive/2024", &msgs[600..1100]);
        lab.source.deliver(&email, "Sent", &msgs[1100..]);
    }
    // Odd mail too: messages without a Message-ID, bare LF line ends, ...
    let odd: Vec<_> = mailgen::odd_corpus().into_iter().map(|(_, m)| m).collect();
    lab.source.deliver(&user(1).0, "Odd", &odd);
    // ... and hostile mail: two different messages sharing a Message-ID,
    // none at all, 100-deep nesting, 1,000 header lines. (Left out: NUL
    // bytes, which Dovecot serves as 0x80, and the zero-byte message, which
    // it refuses to store; tests/hostile_mail.rs covers both.)
    let hostile: Vec<_> = support::hostile::corpus(5000)
        .into_iter()
        .filter(|h| h.name != "nul-bytes" && h.name != "zero-bytes")
        .map(|h| h.msg)
        .collect();
    lab.source.deliver(&user(2).0, "Hostile", &hostile);
    // Small batches and several connections: many commits and uploads in
    // flight at any moment, so kills land mid-batch. Reads are paced so the
    // copy takes longer than the 20 kills can (3,200 messages at 300/s
    // against at most 20 × 400 ms), whatever the machine's speed: every
    // kill lands on a running copy.
    lab.write_config(
        "[run]\nconnections_per_user = 3\nbatch_messages = 25\nparallel_users = 2\n\n[limits]\nsource_messages_per_second = 300\n",
    );
    lab.write_users(&[user(1), user(2)]);

    let mut rng = fastrand::Rng::with_seed(2026);
    let mut kills = 0u64;
    let deadline = Instant::now() + Duration::from_secs(240);
    while kills < 20 && Instant::now() < deadline {
        let mut child = spawn_migrate(&lab);
        std::thread::sleep(Duration::from_millis(rng.u64(30..400)));
        if child.try_wait().unwrap().is_some() {
            break; // finished on its own: everything is copied
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
    }
    assert!(kills >= 20, "only {kills} kills landed before the copy finished");
    let out = migrate(&lab.path("cutover.toml"), &lab.path("users.csv"));
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let (mut lost, mut duplicated) = (0, 0);
    for n in 1..=2 {
        let (email, _) = user(n);
        let (l, d) = lost_and_duplicated(&lab.source.messages(&email), &lab.target.messages(&email), &[]);
        lost += l;
        duplicated += d;
    }
    record_figures(
        "kill_resume_imap",
        &[("kills", kills), ("lost", lost), ("duplicated", duplicated)],
    );
    for n in 1..=2 {
        let (email, _) = user(n);
        assert_copied_exactly(&lab.source.messages(&email), &lab.target.messages(&email), &[]);
    }
    println!("kills survived: {kills}, messages lost: {lost}, duplicated: {duplicated}");
}

#[test]
fn sigterm_stops_gracefully_and_the_next_run_resumes() {
    let lab = Lab::new(1);
    let (email, _) = user(1);
    lab.source.deliver(&email, "INBOX", &mailgen::generate(77, 2500, 3000));
    // Reads paced (2,500 messages take over 8 s), so the signal always
    // lands on a running copy: a run that ended first proves nothing.
    lab.write_config(
        "[run]\nconnections_per_user = 2\nbatch_messages = 20\n\n[limits]\nsource_messages_per_second = 300\n",
    );
    lab.write_users(&[user(1)]);
    let mut child = spawn_migrate(&lab);
    let started = Instant::now();
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before SIGTERM was sent"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing was copied within 60 s"
        );
        let copied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            user_status(&status_json(&lab.path("cutover.toml")), &email)["copied"].as_u64()
        }))
        .ok()
        .flatten()
        .unwrap_or(0);
        if copied > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted exit code");
    let json = status_json(&lab.path("cutover.toml"));
    let u = user_status(&json, &email);
    assert_eq!(u["state"], "interrupted");
    assert!(u["copied"].as_u64().unwrap() < 2500, "stopped mid-copy");
    let out = migrate(&lab.path("cutover.toml"), &lab.path("users.csv"));
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert_copied_exactly(&lab.source.messages(&email), &lab.target.messages(&email), &[]);
}
