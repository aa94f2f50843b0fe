//! Secrets never leak: a migration at trace level, with known passwords for
//! the source users and the target admin, then every output and every file
//! the run wrote is searched for them.

mod common;
mod support;

use std::process::Command;

use common::*;
use support::mailgen;

fn files_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_below(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn passwords_appear_in_no_log_output_state_or_report_even_at_trace_level() {
    let lab = Lab::new(2);
    for n in 1..=2 {
        lab.source
            .deliver(&user(n).0, "INBOX", &mailgen::generate(n as u64, 15, 1000));
    }
    let config = lab.write_config("");
    let mut rows = vec![user(1), user(2)];
    rows[1].1 = "Wrong-Secret-Pw-999".into();
    let users = lab.write_users(&rows);
    let log = lab.path("trace.log");
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args([
            "-vvv",
            "--log-file",
            log.to_str().unwrap(),
            "migrate",
            "--config",
            "cutover.toml",
            "--users",
            "users.csv",
        ])
        .env("CUTOVER_TEST_ADMIN_PW", ADMIN_PASSWORD)
        .env("RUST_LOG", "trace")
        .current_dir(lab.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let trace = std::fs::read_to_string(&log).unwrap();
    assert!(
        trace.contains("TRACE") || trace.contains("DEBUG"),
        "the log file holds trace output"
    );

    let status = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["status", "--config", config.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let status_table = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["status", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();

    let secrets = [rows[0].1.as_str(), rows[1].1.as_str(), ADMIN_PASSWORD];
    let mut outputs: Vec<(String, Vec<u8>)> = vec![
        ("migrate stdout".into(), out.stdout.clone()),
        ("migrate stderr".into(), out.stderr.clone()),
        ("status --json".into(), status.stdout),
        ("status".into(), status_table.stdout),
    ];
    for path in files_below(lab.dir.path()) {
        if path == users || path == config {
            continue; // the admin's own inputs
        }
        outputs.push((path.display().to_string(), std::fs::read(&path).unwrap()));
    }
    let mut searched = 0u64;
    let mut found_in = Vec::new();
    for (name, bytes) in &outputs {
        for secret in secrets {
            if bytes.windows(secret.len()).any(|w| w == secret.as_bytes()) {
                found_in.push(format!("secret {secret:?} found in {name}"));
            }
            searched += 1;
        }
    }
    record_figures(
        "secrets",
        &[("secret_searches", searched), ("secrets_found", found_in.len() as u64)],
    );
    assert!(found_in.is_empty(), "{found_in:#?}");
    assert!(
        outputs.iter().any(|(n, _)| n.ends_with("state.db")),
        "the state DB was searched"
    );
    println!("secrets searched: {searched} (output, file) pairs, none found");
}

#[test]
fn a_bad_users_file_never_shows_a_password() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cutover.toml"),
        "[source]\nhost = \"127.0.0.1\"\nsecurity = \"plain\"\n\n[target]\nkind = \"maildir\"\npath = \"mail\"\n",
    )
    .unwrap();
    let secrets = ["S3cretPw!", "hunter2", "Tr0ub4dor&3", " spaced pw ", "p\u{e4}ss"];
    let cases: [(&str, Vec<u8>); 6] = [
        (
            "no header",
            b"alice@x.test,alice,S3cretPw!\nbob@x.test,bob,hunter2\n".to_vec(),
        ),
        ("login first", b"alice,alice@x.test,hunter2\n".to_vec()),
        (
            "password as a column",
            b"EmailAddress,UserName,Password,Tr0ub4dor&3\na@x.test,a,S3cretPw!,x\n".to_vec(),
        ),
        (
            "short row",
            b"EmailAddress,UserName,Password\na@x.test,S3cretPw!\n".to_vec(),
        ),
        (
            "empty address",
            b"EmailAddress,UserName,Password\n,a,hunter2\nnot-an-address,b,S3cretPw!\n".to_vec(),
        ),
        (
            "invalid UTF-8 in a later column",
            [&b"EmailAddress,UserName,Password,TargetPassword\na@x.test,a, spaced pw ,p\xe4ss\xff\n"[..]].concat(),
        ),
    ];
    let mut found = Vec::new();
    for (name, csv) in &cases {
        std::fs::write(dir.path().join("users.csv"), csv).unwrap();
        for command in ["check", "migrate", "verify", "bench"] {
            let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
                .args(["-vvv", command, "--config", "cutover.toml", "--users", "users.csv"])
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "{name}, {command}: {}", explain(&out));
            let text = [out.stdout, out.stderr].concat();
            assert!(
                String::from_utf8_lossy(&text).contains("users file"),
                "{name}, {command}: the error names the users file: {}",
                String::from_utf8_lossy(&text)
            );
            for secret in secrets {
                if text.windows(secret.len()).any(|w| w == secret.as_bytes()) {
                    found.push(format!("{secret:?} shown by {command} for {name}"));
                }
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn status_and_report_read_the_state_db_without_any_credential() {
    let dir = tempfile::tempdir().unwrap();
    // Every secret this config names is missing from the environment.
    std::fs::write(
        dir.path().join("cutover.toml"),
        "[source]\nhost = \"imap.example.test\"\nauth = \"xoauth2\"\noauth_tenant_id = \"11111111-2222-4333-8444-555555555555\"\n\
         oauth_client_id = \"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee\"\noauth_client_secret_env = \"CUTOVER_TEST_UNSET_SOURCE_SECRET\"\n\n\
         [target]\nkind = \"imap\"\nhost = \"imap.example.test\"\nlogin = \"{email}*admin\"\n\
         password_env = \"CUTOVER_TEST_UNSET_TARGET_PW\"\n\n[state]\npath = \"state.db\"\n",
    )
    .unwrap();
    cutover::checkpoint::Checkpoint::open(&dir.path().join("state.db")).unwrap();
    for args in [
        &["status", "--config", "cutover.toml"][..],
        &["status", "--json", "--config", "cutover.toml"],
        &["report", "--config", "cutover.toml", "--output", "report.csv"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(args)
            .env_remove("CUTOVER_TEST_UNSET_SOURCE_SECRET")
            .env_remove("CUTOVER_TEST_UNSET_TARGET_PW")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", explain(&out));
    }
    // migrate still needs them, and says which.
    std::fs::write(
        dir.path().join("users.csv"),
        "EmailAddress,UserName,Password\na@x.test,a,p\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["migrate", "--config", "cutover.toml", "--users", "users.csv"])
        .env_remove("CUTOVER_TEST_UNSET_TARGET_PW")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
}

#[test]
fn the_log_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("existing.log");
    std::fs::write(&existing, "").unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o644)).unwrap();
    for log in [dir.path().join("new.log"), existing] {
        let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args([
                "-v",
                "--log-file",
                log.to_str().unwrap(),
                "status",
                "--config",
                "missing.toml",
            ])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
        let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", log.display());
    }
}
