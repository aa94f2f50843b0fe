//! `cutover migrate --every`: the resync loop against real Dovecot source
//! and target, run as the real binary with `--json`. Passes repeat, mail
//! that arrives between them is copied by a later pass of the same process,
//! `status` shows the next pass while the loop waits, and SIGTERM ends the
//! loop: at once while waiting (exit code of the last pass, 0), or, during a
//! pass, once that pass stopped as any stopped run does (130), after which
//! a plain migrate completes with nothing lost or duplicated.
//!
//! Deadlines here only guard against hangs; nothing asserts how long a
//! step took.

mod common;
mod support;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::*;
use support::mailgen;

/// A `migrate --every` process and the JSON events it printed so far.
struct Looping {
    child: Child,
    events: Receiver<serde_json::Value>,
    seen: Vec<serde_json::Value>,
    stderr: std::path::PathBuf,
}

impl Looping {
    fn start(lab: &Lab, every: &str) -> Looping {
        let stderr = lab.path(&format!("every-{every}.stderr"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args([
                "migrate",
                "--config",
                "cutover.toml",
                "--users",
                "users.csv",
                "--json",
                "--every",
                every,
            ])
            .env("CUTOVER_TEST_ADMIN_PW", ADMIN_PASSWORD)
            .current_dir(lab.dir.path())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start cutover");
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let event = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        Looping {
            child,
            events,
            seen: Vec::new(),
            stderr,
        }
    }

    fn explain(&self) -> String {
        format!(
            "events so far:\n{}\nstderr:\n{}",
            self.seen
                .iter()
                .map(|e| e.to_string())
                .filter(|e| !e.contains("batch_copied"))
                .collect::<Vec<_>>()
                .join("\n"),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    /// Waits for the next event that `wanted` accepts (hang guard: 120 s).
    fn wait_for(&mut self, what: &str, wanted: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    self.seen.push(event.clone());
                    if wanted(&event) {
                        return event;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("no {what} within 120 s\n{}", self.explain()),
                Err(RecvTimeoutError::Disconnected) => panic!("the process ended before {what}\n{}", self.explain()),
            }
        }
    }

    fn sigterm(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits for the exit (hang guard: 60 s) and collects the remaining
    /// events.
    fn exit_code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("still running 60 s after SIGTERM\n{}", self.explain());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(event) = self.events.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(event);
        }
        status.code()
    }

    fn count(&self, kind: &str) -> usize {
        self.seen.iter().filter(|e| e["event"] == kind).count()
    }
}

impl Drop for Looping {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is(kind: &'static str) -> impl Fn(&serde_json::Value) -> bool {
    move |e| e["event"] == kind
}

/// The schedule `status --json` shows, if any.
fn schedule(lab: &Lab) -> Option<serde_json::Value> {
    let status = status_json(&lab.path("cutover.toml"));
    let schedules = status.get("schedules")?.as_array()?.clone();
    assert!(schedules.len() <= 1, "{schedules:?}");
    schedules.into_iter().next()
}

/// The state DB holds no schedule row (the loop cleaned up).
fn schedule_rows(lab: &Lab) -> i64 {
    let db = rusqlite::Connection::open(lab.path("state.db")).unwrap();
    db.query_row("SELECT COUNT(*) FROM schedule", [], |r| r.get(0)).unwrap()
}

#[test]
fn passes_repeat_pick_up_new_mail_and_stop_at_once_while_waiting() {
    let lab = Lab::new(1);
    let (email, _) = user(1);
    lab.source.deliver(&email, "INBOX", &mailgen::generate(501, 20, 2000));
    lab.source.deliver(&email, "Archive", &mailgen::generate(502, 5, 2000));
    lab.write_config("");
    lab.write_users(&[user(1)]);
    let mut every = Looping::start(&lab, "2s");

    let first = every.wait_for("pass 1 finished", is("pass_finished"));
    assert_eq!(
        (first["pass"].as_u64(), first["outcome"].as_str()),
        (Some(1), Some("done"))
    );
    let next = every.wait_for("the next pass's time", is("next_pass"));
    assert_eq!(next["pass"], 2);
    assert_eq!(lab.target.messages(&email).len(), 25);

    // New mail after pass 1: a later pass of the same process copies it.
    let late = mailgen::generate(503, 1, 3000);
    lab.source.deliver(&email, "INBOX", &late);
    let copied_in = loop {
        let done = every.wait_for("a later pass finishing", is("pass_finished"));
        assert_eq!(done["outcome"], "done", "{}", every.explain());
        if lab.target.messages(&email).len() == 26 {
            break done["pass"].as_u64().unwrap();
        }
    };
    assert!(copied_in >= 2, "copied by pass {copied_in}");
    let copies: u64 = every
        .seen
        .iter()
        .filter(|e| e["event"] == "user_finished")
        .map(|e| e["copied"].as_u64().unwrap())
        .sum();
    assert_eq!(copies, 26, "each message copied once over the passes");
    assert_copied_exactly(&lab.source.messages(&email), &lab.target.messages(&email), &[]);

    // While the loop waits, `status` shows when the next pass comes. A
    // short wait (2 s) may be missed by one look: look again (each pass
    // also shows its schedule, as running).
    let deadline = Instant::now() + Duration::from_secs(120);
    let waiting = loop {
        assert!(
            Instant::now() < deadline,
            "status never showed the wait\n{}",
            every.explain()
        );
        match schedule(&lab) {
            Some(s) if s["running"] == false => break s,
            Some(s) => assert_eq!(s["running"], true, "{s}"),
            None => panic!("status shows no schedule while the loop runs\n{}", every.explain()),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(waiting["every_seconds"], 2);
    assert!(waiting["next_pass_at"].is_string(), "{waiting}");
    let text = cutover(&["status", "--config", "cutover.toml"], &lab.path("cutover.toml"));
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(text.contains("syncing every 2s; pass "), "{text}");
    // Stopped while it runs fast passes: it exits with the code of how it
    // stopped (a pass cut short, or none).
    every.sigterm();
    let code = every.exit_code();
    let stopped = every.seen.last().cloned().unwrap_or_default();
    assert_eq!(stopped["event"], "passes_stopped", "{}", every.explain());
    let expected = if stopped["while_waiting"] == true { 0 } else { 130 };
    assert_eq!(code, Some(expected), "{}", every.explain());
    assert!(every.count("pass_started") >= 2);
    assert_eq!(schedule_rows(&lab), 0, "the loop removed its schedule");

    // A long interval: SIGTERM lands on the wait, for certain, and ends it
    // at once (the hang guard is far below the hour it would wait).
    let mut hourly = Looping::start(&lab, "1h");
    let finished = hourly.wait_for("pass 1 finished", is("pass_finished"));
    assert_eq!(finished["outcome"], "done");
    let next = hourly.wait_for("the next pass's time", is("next_pass"));
    assert!(next["in_seconds"].as_u64().unwrap() > 3000, "{next}");
    let waiting = schedule(&lab).expect("status shows the schedule while waiting");
    assert_eq!(waiting["running"], false);
    assert_eq!(waiting["every_seconds"], 3600);
    assert_eq!(waiting["pass"], 1);
    let text = cutover(&["status", "--config", "cutover.toml"], &lab.path("cutover.toml"));
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        text.contains("syncing every 1h; pass 1 finished; next pass at "),
        "{text}"
    );
    hourly.sigterm();
    assert_eq!(
        hourly.exit_code(),
        Some(0),
        "stopped while waiting after a done pass\n{}",
        hourly.explain()
    );
    let last = hourly.seen.last().unwrap();
    assert_eq!(
        (last["event"].as_str(), last["while_waiting"].as_bool()),
        (Some("passes_stopped"), Some(true))
    );
    assert_eq!(hourly.count("pass_started"), 1);
    // The state DB is consistent: no schedule left, the user done, every
    // message copied once.
    assert_eq!(schedule_rows(&lab), 0);
    assert!(schedule(&lab).is_none());
    assert_eq!(
        user_status(&status_json(&lab.path("cutover.toml")), &email)["state"],
        "done"
    );
    assert_copied_exactly(&lab.source.messages(&email), &lab.target.messages(&email), &[]);
    // The no-op passes fetched no message: only the 26 copies were read.
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.source.session_stats().body_count < 26 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(lab.source.session_stats().body_count, 26, "a no-op pass fetched bodies");
}

#[test]
fn sigterm_during_a_pass_ends_it_cleanly_and_the_loop_with_it() {
    let lab = Lab::new(1);
    let (email, _) = user(1);
    lab.source.deliver(&email, "INBOX", &mailgen::generate(77, 2500, 3000));
    // Reads paced (2,500 messages take over 8 s), so the signal lands on a
    // running pass, as in tests/kill_resume.rs.
    lab.write_config(
        "[run]\nconnections_per_user = 2\nbatch_messages = 20\n\n[limits]\nsource_messages_per_second = 300\n",
    );
    lab.write_users(&[user(1)]);
    let mut every = Looping::start(&lab, "2s");
    every.wait_for("pass 1", is("pass_started"));
    every.wait_for("a first batch copied", is("batch_copied"));
    let running = schedule(&lab).expect("status shows the schedule during a pass");
    assert_eq!(
        (running["running"].as_bool(), running["pass"].as_u64()),
        (Some(true), Some(1))
    );
    assert!(running["next_pass_at"].is_null(), "{running}");
    let text = cutover(&["status", "--config", "cutover.toml"], &lab.path("cutover.toml"));
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(text.contains("syncing every 2s; pass 1 running since "), "{text}");

    every.sigterm();
    assert_eq!(
        every.exit_code(),
        Some(130),
        "a pass was cut short\n{}",
        every.explain()
    );
    let finished = every.seen.iter().find(|e| e["event"] == "pass_finished").unwrap();
    assert_eq!(finished["outcome"], "interrupted");
    let user_done = every.seen.iter().find(|e| e["event"] == "user_finished").unwrap();
    assert_eq!(user_done["state"], "interrupted", "{}", every.explain());
    let last = every.seen.last().unwrap();
    assert_eq!(
        (last["event"].as_str(), last["while_waiting"].as_bool()),
        (Some("passes_stopped"), Some(false))
    );
    assert_eq!(every.count("pass_started"), 1, "no pass after the stop");
    assert_eq!(every.count("next_pass"), 0);
    assert_eq!(schedule_rows(&lab), 0, "the loop removed its schedule");
    let u = user_status(&status_json(&lab.path("cutover.toml")), &email).clone();
    assert_eq!(u["state"], "interrupted");
    assert!(u["copied"].as_u64().unwrap() < 2500, "stopped mid-copy");
    assert_eq!(
        u["copied"].as_u64().unwrap(),
        lab.target.messages(&email).len() as u64,
        "every copy in the target is recorded, and only those"
    );

    let out = migrate(&lab.path("cutover.toml"), &lab.path("users.csv"));
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert_copied_exactly(&lab.source.messages(&email), &lab.target.messages(&email), &[]);
}

#[test]
fn a_plain_migrate_clears_a_schedule_left_by_a_killed_loop() {
    let lab = Lab::new(1);
    let (email, _) = user(1);
    lab.source.deliver(&email, "INBOX", &mailgen::generate(601, 3, 2000));
    lab.write_config("");
    lab.write_users(&[user(1)]);
    let mut every = Looping::start(&lab, "1h");
    every.wait_for("the next pass's time", is("next_pass"));
    assert!(schedule(&lab).is_some());
    // SIGKILL: no chance to clean up.
    every.child.kill().unwrap();
    every.child.wait().unwrap();
    assert_eq!(schedule_rows(&lab), 1, "left behind");
    let out = migrate(&lab.path("cutover.toml"), &lab.path("users.csv"));
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert_eq!(schedule_rows(&lab), 0, "a plain migrate proves no loop runs");
    assert!(schedule(&lab).is_none());
}
