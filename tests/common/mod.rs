//! Helpers shared by the end-to-end tests: a lab of two Dovecot servers,
//! config and users files, running the real binary, and comparing mailboxes.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::dovecot::{Dovecot, DovecotOptions, StoredMessage};
use crate::support::mailgen;

pub const ADMIN_PASSWORD: &str = "admin-secret-42";

pub struct Lab {
    pub source: Dovecot,
    pub target: Dovecot,
    pub dir: tempfile::TempDir,
}

pub fn user(n: usize) -> (String, String) {
    (format!("user{n}@example.test"), format!("pw-{n}-s3cret"))
}

impl Lab {
    pub fn new(users: usize) -> Lab {
        let list: Vec<(String, String)> = (1..=users).map(user).collect();
        let source = Dovecot::start(DovecotOptions {
            users: list.clone(),
            ..Default::default()
        });
        let target = Dovecot::start(DovecotOptions {
            users: list,
            master: Some(("admin".into(), ADMIN_PASSWORD.into())),
            ..Default::default()
        });
        Lab {
            source,
            target,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write_config(&self, extra: &str) -> PathBuf {
        let config = format!(
            "[source]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\n\
             [target]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\
             login = \"{{email}}*admin\"\npassword_env = \"CUTOVER_TEST_ADMIN_PW\"\n\n\
             [state]\npath = \"state.db\"\n{extra}",
            self.source.port(),
            self.target.port()
        );
        let p = self.path("cutover.toml");
        std::fs::write(&p, config).unwrap();
        p
    }

    pub fn write_users(&self, rows: &[(String, String)]) -> PathBuf {
        let mut csv = String::from("EmailAddress,UserName,Password\r\n");
        for (u, p) in rows {
            csv.push_str(&format!("{u},{u},{p}\r\n"));
        }
        let p = self.path("users.csv");
        std::fs::write(&p, csv).unwrap();
        p
    }
}

pub fn cutover(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .env("CUTOVER_TEST_ADMIN_PW", ADMIN_PASSWORD)
        .current_dir(config.parent().unwrap())
        .output()
        .expect("run cutover")
}

pub fn migrate(config: &Path, users: &Path) -> Output {
    cutover(
        &[
            "migrate",
            "--config",
            config.to_str().unwrap(),
            "--users",
            users.to_str().unwrap(),
        ],
        config,
    )
}

pub fn status_json(config: &Path) -> serde_json::Value {
    let out = cutover(&["status", "--config", config.to_str().unwrap(), "--json"], config);
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status --json is JSON")
}

pub fn user_status<'a>(status: &'a serde_json::Value, email: &str) -> &'a serde_json::Value {
    status["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == email)
        .unwrap_or_else(|| panic!("{email} in status"))
}

pub fn explain(out: &Output) -> String {
    format!(
        "exit {:?}\nstderr:\n{}\nstdout:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    )
}

/// Messages keyed by (folder, Message-ID or bytes hash), so source and
/// target can be compared whatever UIDs the target assigned.
pub fn by_key(messages: &[StoredMessage]) -> BTreeMap<(String, String), Vec<&StoredMessage>> {
    let mut map: BTreeMap<(String, String), Vec<&StoredMessage>> = BTreeMap::new();
    for m in messages {
        let key = mailgen::message_id(&m.raw).unwrap_or_else(|| format!("{:x}", sha(&m.raw)));
        map.entry((m.folder.clone(), key)).or_default().push(m);
    }
    map
}

pub fn sha(data: &[u8]) -> u128 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(data);
    u128::from_be_bytes(d[..16].try_into().unwrap())
}

/// Asserts every source message (except those in `skipped`) is in the
/// target exactly once, byte-identical, with its flags and INTERNALDATE.
pub fn assert_copied_exactly(source: &[StoredMessage], target: &[StoredMessage], skipped: &[&[u8]]) {
    let src = by_key(source);
    let dst = by_key(target);
    let mut expected = 0;
    for (key, msgs) in &src {
        let wanted: Vec<&&StoredMessage> = msgs.iter().filter(|m| !skipped.contains(&m.raw.as_slice())).collect();
        expected += wanted.len();
        let got = dst.get(key).map(Vec::as_slice).unwrap_or(&[]);
        assert_eq!(
            got.len(),
            wanted.len(),
            "{key:?}: {} in source, {} in target",
            wanted.len(),
            got.len()
        );
        for (s, t) in wanted.iter().zip(got) {
            assert!(
                s.raw == t.raw,
                "{key:?}: bytes differ ({} vs {} bytes)",
                s.raw.len(),
                t.raw.len()
            );
            assert_eq!(s.flags, t.flags, "{key:?}: flags");
            assert_eq!(s.internal_date, t.internal_date, "{key:?}: INTERNALDATE");
        }
    }
    assert_eq!(target.len(), expected, "target holds exactly the source set");
}
