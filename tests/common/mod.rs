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
        self.write_config_via(self.source.port(), self.target.port(), "", extra)
    }

    /// Like [`Lab::write_config`], with the source and the target reached
    /// on other ports (a relay in front of either) and `source_extra` lines
    /// (`timeout_seconds = 2\n`) added to `[source]`.
    pub fn write_config_via(&self, source_port: u16, target_port: u16, source_extra: &str, extra: &str) -> PathBuf {
        let config = format!(
            "[source]\nhost = \"127.0.0.1\"\nport = {source_port}\nsecurity = \"plain\"\n{source_extra}\n\
             [target]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = {target_port}\nsecurity = \"plain\"\n\
             login = \"{{email}}*admin\"\npassword_env = \"CUTOVER_TEST_ADMIN_PW\"\n\n\
             [state]\npath = \"state.db\"\n{extra}"
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

/// The reasons of `email`'s items in `status --json`, by state ("failed",
/// "skipped", ...).
pub fn items_by_state(config: &Path, email: &str) -> BTreeMap<String, Vec<String>> {
    let status = status_json(config);
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in user_status(&status, email)["items"].as_array().unwrap() {
        out.entry(item["state"].as_str().unwrap_or("").to_owned())
            .or_default()
            .push(item["reason"].as_str().unwrap_or("").to_owned());
    }
    out
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
        // Messages sharing a key (duplicate Message-IDs) are matched by
        // bytes, whatever order the target stored them in.
        let mut unmatched: Vec<&StoredMessage> = got.to_vec();
        for s in &wanted {
            let Some(at) = unmatched.iter().position(|t| t.raw == s.raw) else {
                panic!(
                    "{key:?}: no byte-identical copy of a {}-byte message (target has {:?} bytes)",
                    s.raw.len(),
                    unmatched.iter().map(|t| t.raw.len()).collect::<Vec<_>>()
                );
            };
            let t = unmatched.remove(at);
            assert_eq!(s.flags, t.flags, "{key:?}: flags");
            assert_eq!(s.internal_date, t.internal_date, "{key:?}: INTERNALDATE");
        }
    }
    assert_eq!(target.len(), expected, "target holds exactly the source set");
}

/// How many source messages (not in `skipped`) are missing from the target
/// and how many extra copies the target holds, by (folder, key) and bytes.
/// Tests record these figures before asserting they are zero.
pub fn lost_and_duplicated(source: &[StoredMessage], target: &[StoredMessage], skipped: &[&[u8]]) -> (u64, u64) {
    let mut want: BTreeMap<(String, Vec<u8>), i64> = BTreeMap::new();
    for m in source.iter().filter(|m| !skipped.contains(&m.raw.as_slice())) {
        *want.entry((m.folder.clone(), m.raw.clone())).or_default() += 1;
    }
    let mut have: BTreeMap<(String, Vec<u8>), i64> = BTreeMap::new();
    for m in target {
        *have.entry((m.folder.clone(), m.raw.clone())).or_default() += 1;
    }
    let mut lost = 0;
    let mut duplicated = 0;
    for (k, n) in &want {
        let got = have.get(k).copied().unwrap_or(0);
        lost += (n - got).max(0) as u64;
        duplicated += (got - n).max(0) as u64;
    }
    for (k, got) in &have {
        if !want.contains_key(k) {
            duplicated += *got as u64;
        }
    }
    (lost, duplicated)
}

/// Where tests leave their figures for the summary line `scripts/test`
/// prints: `$CUTOVER_FIGURES_DIR`, else `target/figures`. `scripts/test`
/// empties it before the suite runs, so stale figures never count.
pub fn figures_dir() -> PathBuf {
    std::env::var_os("CUTOVER_FIGURES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/figures"))
}

/// Records one test's figures as `name value` lines in
/// `figures_dir()/<test>.txt` (kills, faults, hostile_messages,
/// hostile_server_cases, fuzz_execs, lost, duplicated, secrets_found).
pub fn record_figures(test: &str, figures: &[(&str, u64)]) {
    let dir = figures_dir();
    std::fs::create_dir_all(&dir).expect("create figures dir");
    let text: String = figures.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
    std::fs::write(dir.join(format!("{test}.txt")), text).expect("write figures");
}
