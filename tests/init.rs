//! `cutover init` end to end: for every source and target kind the real
//! binary writes a config that `cutover check` (the same settings loader
//! and users-file reader as `migrate`) accepts once the users file's
//! placeholders are filled in, and it never replaces a file without
//! `--force`.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SOURCES: [&str; 4] = ["gmail", "exchange-imap", "imap", "takeout"];
const TARGETS: [&str; 3] = ["graph", "imap", "maildir"];

fn cutover(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run cutover")
}

fn explain(out: &Output) -> String {
    format!(
        "exit {:?}\nstderr:\n{}\nstdout:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    )
}

/// How `cutover check` on the written files got on.
enum Checked {
    /// It ended: its exit code and everything it wrote to stderr.
    Ended(Option<i32>, String),
    /// It was trying to reach a server (a retried connection or token
    /// request, logged at -vv): well past the config. It was stopped there
    /// rather than waiting out its retries.
    Connecting(String),
}

/// `cutover -vv check` on the written files, with the secrets the config
/// names in the environment.
fn check(dir: &Path) -> Checked {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["-vv", "check", "--config", "cutover.toml", "--users", "users.csv"])
        .env("CUTOVER_GRAPH_SECRET", "test-graph-secret")
        .env("CUTOVER_IMAP_APP_SECRET", "test-imap-secret")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cutover check");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut said = String::new();
    // Hang guard only: a config is refused (or taken) at once.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let retried = line.contains("will be retried") || line.contains("waiting before retry");
                said.push_str(&line);
                said.push('\n');
                if retried {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Checked::Connecting(said);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let code = child.wait().expect("cutover check").code();
                return Checked::Ended(code, said);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("cutover check still running after 120 s: {said}");
            }
        }
    }
}

#[test]
fn every_pair_gets_a_config_check_accepts() {
    let started = Instant::now();
    for source in SOURCES {
        for target in TARGETS {
            let dir = tempfile::tempdir().unwrap();
            let out = cutover(&["init", "--source", source, "--target", target], dir.path());
            assert_eq!(out.status.code(), Some(0), "{source} -> {target}: {}", explain(&out));
            let said = String::from_utf8_lossy(&out.stdout);
            assert!(
                said.contains("wrote ./cutover.toml") && said.contains("wrote ./users.csv"),
                "{said}"
            );
            assert!(
                said.contains("cutover check --config ./cutover.toml --users ./users.csv"),
                "{said}"
            );
            assert!(
                said.contains("cutover migrate --config ./cutover.toml --users ./users.csv"),
                "{said}"
            );

            // The admin fills in the users file's placeholders.
            let users = dir.path().join("users.csv");
            let text = std::fs::read_to_string(&users).unwrap();
            std::fs::write(&users, text.replace("CHANGE-ME-", "filled-in-")).unwrap();

            let (code, err) = match check(dir.path()) {
                Checked::Ended(code, err) => (code, err),
                Checked::Connecting(err) => (None, err),
            };
            assert!(
                !err.contains("error: config") && !err.contains("cannot read config"),
                "{source} -> {target}: the config was refused (exit {code:?}): {err}"
            );
            assert!(
                !err.contains("users file"),
                "{source} -> {target}: the users file was refused (exit {code:?}): {err}"
            );
            // The example hosts and tenants cannot be reached or logged in
            // to: no user is ready (1), or it was stopped while trying.
            assert!(
                matches!(code, None | Some(1)),
                "{source} -> {target}: exit {code:?}: {err}"
            );
        }
    }
    println!("12 pairs checked in {:?}", started.elapsed());
}

#[test]
fn files_are_kept_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let first = cutover(
        &["init", "--source", "imap", "--target", "maildir", "--dir", "conf"],
        dir.path(),
    );
    assert_eq!(first.status.code(), Some(0), "{}", explain(&first));
    let config = dir.path().join("conf/cutover.toml");
    let users = dir.path().join("conf/users.csv");
    std::fs::write(&users, "EmailAddress,UserName,Password\nme@example.org,me,mine\n").unwrap();

    let again = cutover(
        &["init", "--source", "gmail", "--target", "graph", "--dir", "conf"],
        dir.path(),
    );
    assert_eq!(again.status.code(), Some(2), "{}", explain(&again));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("conf/cutover.toml already exists") && err.contains("--force"),
        "{err}"
    );
    assert!(std::fs::read_to_string(&config).unwrap().contains("imap.example.com"));
    assert!(std::fs::read_to_string(&users).unwrap().contains("me@example.org"));

    // Only the users file in the way: still nothing written.
    std::fs::remove_file(&config).unwrap();
    let again = cutover(
        &["init", "--source", "gmail", "--target", "graph", "--dir", "conf"],
        dir.path(),
    );
    assert_eq!(again.status.code(), Some(2), "{}", explain(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("conf/users.csv already exists"));
    assert!(!config.exists());

    let forced = cutover(
        &[
            "init", "--source", "gmail", "--target", "graph", "--dir", "conf", "--force",
        ],
        dir.path(),
    );
    assert_eq!(forced.status.code(), Some(0), "{}", explain(&forced));
    assert!(std::fs::read_to_string(&config).unwrap().contains("imap.gmail.com"));
    assert!(
        std::fs::read_to_string(&users)
            .unwrap()
            .contains("CHANGE-ME-alice-app-password")
    );
}
