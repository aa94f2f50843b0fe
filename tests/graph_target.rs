//! The Graph target against the Graph emulator (`tools/graph-emulator`):
//! folders, both write modes, large attachments, the automatic fallback to
//! json, throttling without Retry-After violations, transient faults
//! without duplicates, token renewal and the lookup after a crash.
//!
//! Each test starts its own emulator on a free loopback port and inspects
//! the result through the emulator's admin API (`/_emulator/...`).

mod support;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use cutover::error::ErrorKind;
use cutover::model::TargetLogin;
use cutover::model::{Flags, FolderRole, TargetFolder, Upload};
use cutover::secret::Secret;
use cutover::settings::{GraphCredential, GraphSettings, GraphWriteMode};
use cutover::target::Target;
use cutover::target::graph::GraphTarget;

use support::emulator::{CLIENT, Emulator, RunningEmulator, TENANT};
const SECRET: &str = "s3cret-value";
const USER: &str = "alice@contoso.test";

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

struct Emu {
    _server: RunningEmulator,
    base: String,
    http: reqwest::Client,
}

impl Emu {
    fn start(extra: &[&str]) -> Emu {
        let cert = data("graph-test-cert.pem");
        let server = Emulator::new()
            .client_secret(SECRET)
            .client_cert(&cert)
            .seed(11)
            .args(extra)
            .start();
        Emu {
            base: server.base_url.clone(),
            _server: server,
            http: reqwest::Client::new(),
        }
    }

    fn settings(&self, write_mode: GraphWriteMode) -> GraphSettings {
        GraphSettings {
            tenant_id: TENANT.into(),
            client_id: CLIENT.into(),
            credential: GraphCredential::ClientSecret(Secret::new(SECRET)),
            endpoint: self.base.clone(),
            authority: self.base.clone(),
            write_mode,
            max_concurrent_requests: 4,
            max_concurrent_requests_per_app: None,
            requests_per_10_minutes: 10_000,
            upload_bytes_per_5_minutes: 157_286_400,
            limits_time_scale: 1.0,
            timeout: Duration::from_secs(30),
        }
    }

    fn target(&self, write_mode: GraphWriteMode) -> GraphTarget {
        GraphTarget::new(self.settings(write_mode)).unwrap()
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self.http.request(method, format!("{}/_emulator/{path}", self.base));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        assert!(resp.status().is_success(), "admin {path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    async fn dump(&self, user: &str) -> Value {
        self.admin(reqwest::Method::GET, &format!("mailboxes/{user}"), None)
            .await
    }

    async fn stats(&self) -> Value {
        self.admin(reqwest::Method::GET, "stats", None).await
    }

    async fn faults(&self, config: Value) {
        self.admin(reqwest::Method::POST, "faults", Some(config)).await;
    }
}

fn user(email: &str) -> TargetLogin {
    TargetLogin {
        email: email.into(),
        login: None,
        secret: None,
        users_file_line: 2,
    }
}

fn folder(anchor: Option<FolderRole>, path: &[&str]) -> TargetFolder {
    TargetFolder {
        anchor,
        path: path.iter().map(|p| p.to_string()).collect(),
    }
}

fn message(id: &str, subject: &str) -> String {
    format!(
        "Received: from mx.example.com by mx.contoso.test; Wed, 1 May 2019 10:00:00 +0000\r\n\
From: Ann <ann@example.com>\r\nTo: Alice <alice@contoso.test>\r\nSubject: {subject}\r\n\
Date: Tue, 30 Apr 2019 12:00:00 +0200\r\nMessage-ID: {id}\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nHello from {subject}.\r\n"
    )
}

fn upload(raw: String, flags: &str, internal_date: i64, message_id: Option<&str>) -> Upload {
    // One key per distinct message, as run.rs gives one per source UID.
    let digest = Sha256::digest(raw.as_bytes());
    let key = cutover::model::MessageKey {
        user: USER.into(),
        folder: "INBOX".into(),
        uid_validity: 1,
        uid: u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]),
    };
    Upload {
        source_size: raw.len() as u64,
        raw: raw.into_bytes().into(),
        flags: Flags::from_wire(flags),
        internal_date,
        message_id: message_id.map(str::to_owned),
        key,
        labels: Vec::new(),
    }
}

fn count(stats: &Value, kind: &str) -> u64 {
    stats["total"]["by_kind"][kind].as_u64().unwrap_or(0)
}

fn paths(dump: &Value) -> Vec<Vec<String>> {
    dump["folders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f["path"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_owned())
                .collect()
        })
        .collect()
}

fn timestamp(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_are_found_or_created_with_hierarchy_and_any_name() {
    let emu = Emu::start(&[]);
    // The certificate credential: a PS256 client assertion.
    let mut settings = emu.settings(GraphWriteMode::Auto);
    settings.credential = GraphCredential::Certificate {
        certificate_pem: std::fs::read_to_string(data("graph-test-cert.pem")).unwrap(),
        private_key_pem: Secret::new(std::fs::read_to_string(data("graph-test-key.pem")).unwrap()),
        certificate_file: data("graph-test-cert.pem"),
    };
    let target = GraphTarget::new(settings).unwrap();
    let mut s = target.open(&user(USER)).await.unwrap();

    assert_eq!(
        s.ensure_folder(&folder(Some(FolderRole::Inbox), &[]), None)
            .await
            .unwrap(),
        "inbox"
    );
    assert_eq!(
        s.ensure_folder(&folder(Some(FolderRole::Sent), &[]), None)
            .await
            .unwrap(),
        "sentitems"
    );
    assert_eq!(
        s.ensure_folder(&folder(Some(FolderRole::Trash), &[]), None)
            .await
            .unwrap(),
        "deleteditems"
    );
    let deep = folder(None, &["Projekte", "2026", "Überblick ✓ 日本"]);
    let deep_id = s.ensure_folder(&deep, None).await.unwrap();
    let lists = folder(Some(FolderRole::Inbox), &["Lists", "rust-users"]);
    let lists_id = s.ensure_folder(&lists, None).await.unwrap();
    assert_ne!(deep_id, lists_id);

    let dump = emu.dump(USER).await;
    let all = paths(&dump);
    let has = |p: &[&str]| all.iter().any(|q| q.iter().map(String::as_str).eq(p.iter().copied()));
    assert!(has(&["Projekte", "2026", "Überblick ✓ 日本"]), "{all:?}");
    assert!(has(&["Inbox", "Lists", "rust-users"]), "{all:?}");

    // A new session has no cache: it finds the folders instead of making
    // duplicates, whatever the case of the name.
    let mut s2 = target.open(&user(USER)).await.unwrap();
    assert_eq!(s2.ensure_folder(&deep, None).await.unwrap(), deep_id);
    assert_eq!(
        s2.ensure_folder(&folder(Some(FolderRole::Inbox), &["LISTS", "Rust-Users"]), None)
            .await
            .unwrap(),
        lists_id
    );

    // A reference the checkpoint kept is used without asking Graph.
    let before = emu.stats().await["total"]["requests"].as_u64().unwrap();
    assert_eq!(s2.ensure_folder(&deep, Some("AAMkcached")).await.unwrap(), "AAMkcached");
    assert_eq!(emu.stats().await["total"]["requests"].as_u64().unwrap(), before);

    // Two sessions racing to create the same folder end with one folder.
    let race = folder(None, &["Race"]);
    let (a, b) = tokio::join!(s.ensure_folder(&race, None), s2.ensure_folder(&race, None));
    assert_eq!(a.unwrap(), b.unwrap());
    let races = paths(&emu.dump(USER).await)
        .into_iter()
        .filter(|p| p == &["Race".to_owned()])
        .count();
    assert_eq!(races, 1);

    // More children than one page: the lookup follows @odata.nextLink.
    for i in 0..105 {
        s.ensure_folder(&folder(None, &["Many", &format!("f{i:03}")]), None)
            .await
            .unwrap();
    }
    let last = s.ensure_folder(&folder(None, &["Many", "f104"]), None).await.unwrap();
    let mut fresh = target.open(&user(USER)).await.unwrap();
    let before = emu.stats().await;
    assert_eq!(
        fresh
            .ensure_folder(&folder(None, &["Many", "f104"]), None)
            .await
            .unwrap(),
        last
    );
    let after = emu.stats().await;
    assert_eq!(
        count(&after, "folders.create") + count(&after, "childFolders.create"),
        count(&before, "folders.create") + count(&before, "childFolders.create"),
        "nothing created"
    );
    assert!(
        count(&after, "childFolders.list") >= count(&before, "childFolders.list") + 2,
        "two pages listed"
    );
    for s in [s, s2, fresh] {
        s.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_mime_is_byte_identical_and_not_a_draft() {
    let emu = Emu::start(&[]);
    let target = emu.target(GraphWriteMode::ImportMime);
    let mut s = target.open(&user(USER)).await.unwrap();
    let inbox = s
        .ensure_folder(&folder(Some(FolderRole::Inbox), &[]), None)
        .await
        .unwrap();
    let raw = message("<mime.1@example.com>", "Byte for byte");
    let id = s
        .upload(
            &inbox,
            &upload(
                raw.clone(),
                "\\Seen \\Flagged Work $Forwarded",
                1_556_704_800,
                Some("<mime.1@example.com>"),
            ),
        )
        .await
        .unwrap();

    let dump = emu.dump(USER).await;
    let m = &dump["messages"][0];
    assert_eq!(m["id"], id);
    assert_eq!(m["createdVia"], "import-mime");
    assert_eq!(m["isDraft"], false);
    assert_eq!(
        STANDARD.decode(m["mimeBase64"].as_str().unwrap()).unwrap(),
        raw.as_bytes(),
        "byte-identical"
    );
    assert_eq!(m["isRead"], true);
    assert_eq!(m["flag"]["flagStatus"], "flagged");
    assert_eq!(m["categories"], json!(["Work"]));
    assert_eq!(m["folderPath"], json!(["Inbox"]));
    let stats = emu.stats().await;
    assert_eq!(count(&stats, "messages.importMime"), 1);
    assert_eq!(count(&stats, "messages.create"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_mode_sets_received_date_read_state_and_flag() {
    let emu = Emu::start(&[]);
    let target = emu.target(GraphWriteMode::Json);
    let mut s = target.open(&user(USER)).await.unwrap();
    let folder_id = s.ensure_folder(&folder(None, &["Old mail"]), None).await.unwrap();
    // INTERNALDATE differs from both the Date header and the Received header,
    // so the received date can only come from 0x0E06.
    let internal = 1_557_000_000; // 2019-05-04T19:20:00Z
    s.upload(
        &folder_id,
        &upload(
            message("<json.1@example.com>", "Unread flagged"),
            "\\Flagged",
            internal,
            Some("<json.1@example.com>"),
        ),
    )
    .await
    .unwrap();
    s.upload(
        &folder_id,
        &upload(
            message("<json.2@example.com>", "Read"),
            "\\Seen Clients",
            internal + 60,
            Some("<json.2@example.com>"),
        ),
    )
    .await
    .unwrap();

    let dump = emu.dump(USER).await;
    let by_subject = |subject: &str| {
        dump["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["subject"] == subject)
            .unwrap()
            .clone()
    };
    let flagged = by_subject("Unread flagged");
    assert_eq!(flagged["createdVia"], "json");
    assert_eq!(flagged["isDraft"], false);
    assert_eq!(timestamp(&flagged["receivedDateTime"]), internal);
    assert_eq!(timestamp(&flagged["sentDateTime"]), 1_556_618_400, "sent = Date header");
    assert_eq!(flagged["isRead"], false);
    assert_eq!(flagged["flag"]["flagStatus"], "flagged");
    assert_eq!(flagged["internetMessageId"], "<json.1@example.com>");
    assert_eq!(flagged["from"]["emailAddress"]["address"], "ann@example.com");
    let props = flagged["singleValueExtendedProperties"].as_array().unwrap();
    let prop = |id: &str| {
        props
            .iter()
            .find(|p| p["id"].as_str().unwrap().eq_ignore_ascii_case(id))
            .map(|p| p["value"].clone())
    };
    assert!(
        prop("String 0x7D").or_else(|| prop("String 0x007D")).is_some(),
        "original headers kept: {props:?}"
    );

    let read = by_subject("Read");
    assert_eq!(read["isRead"], true);
    assert_eq!(read["isDraft"], false);
    assert_eq!(read["categories"], json!(["Clients"]));
    assert_eq!(timestamp(&read["receivedDateTime"]), internal + 60);
    assert_eq!(count(&emu.stats().await, "messages.importMime"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5_mb_attachment_goes_through_an_upload_session() {
    let emu = Emu::start(&[]);
    let target = emu.target(GraphWriteMode::Json);
    let mut s = target.open(&user(USER)).await.unwrap();
    let inbox = s
        .ensure_folder(&folder(Some(FolderRole::Inbox), &[]), None)
        .await
        .unwrap();

    let big: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let small = b"small attachment".to_vec();
    let mut raw = String::from(
        "From: ann@example.com\r\nTo: alice@contoso.test\r\nSubject: Big\r\nMessage-ID: <big.1@example.com>\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n",
    );
    for (name, bytes) in [("big.bin", &big), ("small.txt", &small)] {
        raw.push_str(&format!(
            "--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        ));
        for line in STANDARD.encode(bytes).as_bytes().chunks(76) {
            raw.push_str(std::str::from_utf8(line).unwrap());
            raw.push_str("\r\n");
        }
    }
    raw.push_str("--b--\r\n");
    s.upload(
        &inbox,
        &upload(raw, "\\Seen", 1_600_000_000, Some("<big.1@example.com>")),
    )
    .await
    .unwrap();

    let dump = emu.dump(USER).await;
    assert_eq!(dump["messages"].as_array().unwrap().len(), 1);
    let m = &dump["messages"][0];
    assert_eq!(m["isDraft"], false);
    let atts = m["attachments"].as_array().unwrap();
    let find = |name: &str| {
        atts.iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {atts:?}"))
    };
    let b = find("big.bin");
    assert_eq!(b["size"], big.len());
    let sha: String = Sha256::digest(&big).iter().map(|x| format!("{x:02x}")).collect();
    assert_eq!(b["sha256"], sha);
    let sha_small: String = Sha256::digest(&small).iter().map(|x| format!("{x:02x}")).collect();
    assert_eq!(find("small.txt")["sha256"], sha_small);

    let stats = emu.stats().await;
    assert_eq!(count(&stats, "attachments.createUploadSession"), 1);
    assert_eq!(
        stats["total"]["by_method"]["PUT"], 2,
        "5 MiB in ranges of at most 4 MiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_mode_lands_a_body_too_large_for_one_request_with_its_original_attached() {
    let emu = Emu::start(&[]);
    let target = emu.target(GraphWriteMode::Json);
    let mut s = target.open(&user(USER)).await.unwrap();
    let f = s.ensure_folder(&folder(None, &["Large"]), None).await.unwrap();
    let mut cases = Vec::new();
    for (i, (html, mb)) in [(false, 5), (true, 5)].into_iter().enumerate() {
        let mut raw = format!(
            "From: Ann <ann@example.com>\r\nTo: Alice <alice@contoso.test>\r\nSubject: Large {i}\r\n\
Date: Tue, 30 Apr 2019 12:00:00 +0200\r\nMessage-ID: <large.{i}@example.com>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/{}; charset=utf-8\r\n\r\n",
            if html { "html" } else { "plain" }
        );
        while raw.len() < mb * 1024 * 1024 + 500_000 {
            raw.push_str(if html {
                "<p>A long report line.</p>\r\n"
            } else {
                "A long report line.\r\n"
            });
        }
        let id = format!("<large.{i}@example.com>");
        let up = upload(raw.clone(), "\\Seen", 1_600_000_000 + i as i64, Some(&id));
        let stored = s.upload(&f, &up).await.unwrap();
        cases.push((stored, raw, html));
    }
    let dump = emu.dump(USER).await;
    let messages = dump["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "both landed: {dump:#}");
    for (id, raw, html) in cases {
        let m = messages.iter().find(|m| m["id"] == id.as_str()).unwrap();
        assert_eq!(m["isDraft"], false);
        assert_eq!(m["isRead"], true);
        let attachments = m["attachments"].as_array().unwrap();
        let original = attachments
            .iter()
            .find(|a| a["name"] == "original.eml")
            .unwrap_or_else(|| panic!("{m:#}"));
        assert_eq!(
            original["size"].as_u64(),
            Some(raw.len() as u64),
            "the complete original"
        );
        assert_eq!(attachments.iter().any(|a| a["name"] == "body.html"), html);
    }
    assert!(
        count(&emu.stats().await, "attachments.createUploadSession") >= 2,
        "through upload sessions"
    );
    // Both are reported as converted, once, with what was done.
    let conversions = s.take_conversions();
    assert_eq!(conversions.len(), 2, "{conversions:?}");
    assert!(
        conversions.iter().all(|(_, why)| why.contains("original.eml")),
        "{conversions:?}"
    );
    assert!(s.take_conversions().is_empty(), "taken once");
}

/// A message whose importMime request (base64) would be larger than the
/// mailbox's upload budget for a whole window is throttled by Exchange
/// every time: it goes through json and upload sessions instead, and is
/// reported as converted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_mime_sends_a_message_larger_than_the_upload_window_as_json() {
    let limit: u32 = 4 * 1024 * 1024;
    // Windows of 3 s instead of 5 minutes, on both sides.
    let emu = Emu::start(&["--upload-limit-bytes", &limit.to_string(), "--time-scale", "0.01"]);
    let mut settings = emu.settings(GraphWriteMode::ImportMime);
    settings.upload_bytes_per_5_minutes = limit;
    settings.limits_time_scale = 0.01;
    let target = GraphTarget::new(settings).unwrap();
    let mut s = target.open(&user(USER)).await.unwrap();
    let f = s.ensure_folder(&folder(None, &["Large"]), None).await.unwrap();
    let payload: Vec<u8> = (0..3_200_000u32).map(|i| (i % 251) as u8).collect();
    let raw = format!(
        "From: Ann <ann@example.com>\r\nTo: Alice <alice@contoso.test>\r\nSubject: Scans\r\n\
Date: Tue, 30 Apr 2019 12:00:00 +0200\r\nMessage-ID: <scans.1@example.com>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nScans attached.\r\n\
--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"scans.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        STANDARD.encode(&payload)
    );
    assert!(raw.len() as u64 / 3 * 4 > u64::from(limit), "too large for one import");
    let up = upload(raw, "\\Seen", 1_600_000_000, Some("<scans.1@example.com>"));
    let id = match tokio::time::timeout(Duration::from_secs(20), s.upload(&f, &up)).await {
        Ok(r) => r.unwrap(),
        Err(_) => panic!("throttled again and again: {:#}", emu.stats().await),
    };
    let dump = emu.dump(USER).await;
    let m = dump["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id.as_str())
        .unwrap();
    assert_eq!(m["createdVia"], "json");
    let sha: String = Sha256::digest(&payload).iter().map(|x| format!("{x:02x}")).collect();
    assert_eq!(m["attachments"][0]["sha256"], sha);
    assert_eq!(count(&emu.stats().await, "messages.importMime"), 0);
    let conversions = s.take_conversions();
    assert_eq!(conversions.len(), 1);
    assert!(conversions[0].1.contains("copied as JSON"), "{conversions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_json_once_when_import_mime_is_forbidden() {
    let emu = Emu::start(&["--mail-advanced", "false"]);
    let target = emu.target(GraphWriteMode::Auto);
    let mut s1 = target.open(&user(USER)).await.unwrap();
    let mut s2 = target.open(&user(USER)).await.unwrap();
    let inbox = s1
        .ensure_folder(&folder(Some(FolderRole::Inbox), &[]), None)
        .await
        .unwrap();
    s1.upload(
        &inbox,
        &upload(
            message("<auto.1@example.com>", "First"),
            "\\Seen",
            1_600_000_000,
            Some("<auto.1@example.com>"),
        ),
    )
    .await
    .unwrap();
    s2.upload(
        &inbox,
        &upload(
            message("<auto.2@example.com>", "Second"),
            "",
            1_600_000_100,
            Some("<auto.2@example.com>"),
        ),
    )
    .await
    .unwrap();

    let dump = emu.dump(USER).await;
    let msgs = dump["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    for m in msgs {
        assert_eq!(m["createdVia"], "json");
        assert_eq!(m["isDraft"], false);
    }
    // One refused importMime for the whole run, not one per session.
    assert_eq!(count(&emu.stats().await, "messages.importMime"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_waited_out_without_violating_retry_after() {
    // The emulator allows 2 requests at once; cutover is configured for 4,
    // so it gets 429s (Retry-After: 1) and must hold back every session.
    let emu = Emu::start(&["--max-concurrency", "2"]);
    emu.faults(json!({"fail_next": [{"status": 429, "count": 2}], "retry_after_secs": 2, "latency_ms": [20, 40]}))
        .await;
    let target = std::sync::Arc::new(emu.target(GraphWriteMode::ImportMime));
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = target.open(&user(USER)).await.unwrap();
            for n in 0..3 {
                let id = format!("<t.{worker}.{n}@example.com>");
                s.upload(
                    "inbox",
                    &upload(message(&id, &format!("w{worker} n{n}")), "", 1_600_000_000, Some(&id)),
                )
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let dump = emu.dump(USER).await;
    assert_eq!(dump["messages"].as_array().unwrap().len(), 12, "every message once");
    let stats = emu.stats().await;
    assert!(stats["total"]["throttled_429"].as_u64().unwrap() >= 2, "{stats}");
    assert_eq!(stats["total"]["retry_after_violations"], 0, "{}", stats["violations"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_faults_and_expired_tokens_cause_no_duplicates() {
    let emu = Emu::start(&[]);
    let target = emu.target(GraphWriteMode::Json);
    let mut s = target.open(&user(USER)).await.unwrap();
    // The create fails twice with 500: each time cutover looks the message
    // up before sending it again.
    emu.faults(json!({"fail_next": [{"status": 500, "count": 2}]})).await;
    s.upload(
        "inbox",
        &upload(
            message("<fault.1@example.com>", "Faulted"),
            "",
            1_600_000_000,
            Some("<fault.1@example.com>"),
        ),
    )
    .await
    .unwrap();
    // Every token expires: one 401, one new token, then success.
    emu.faults(json!({"expire_tokens_now": true})).await;
    s.upload(
        "inbox",
        &upload(
            message("<fault.2@example.com>", "After expiry"),
            "",
            1_600_000_000,
            Some("<fault.2@example.com>"),
        ),
    )
    .await
    .unwrap();

    let dump = emu.dump(USER).await;
    let subjects: Vec<&str> = dump["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    let stats = emu.stats().await;
    assert_eq!(count(&stats, "token"), 2, "{stats}");
    assert_eq!(stats["total"]["by_status"]["401"], 1);
}

/// A resync's flag change on a copy: read state, follow-up flag and
/// categories replaced by what an upload with the new marks sets (labels
/// as categories, `$` keywords left out), the id and the stamp kept, in
/// both write modes; a copy Exchange no longer has is that message's
/// failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_flags_replaces_read_state_flag_and_categories() {
    for mode in [GraphWriteMode::ImportMime, GraphWriteMode::Json] {
        let emu = Emu::start(&[]);
        let target = emu.target(mode);
        assert!(target.capabilities().update_flags);
        let mut s = target.open(&user(USER)).await.unwrap();
        let f = s.ensure_folder(&folder(None, &["Resynced"]), None).await.unwrap();
        let mut stored = upload(
            message("<flags.1@example.com>", "Flags change"),
            "\\Flagged Work",
            1_600_000_000,
            Some("<flags.1@example.com>"),
        );
        stored.labels = vec!["Clients".into()];
        let id = s.upload(&f, &stored).await.unwrap();
        let copy = |dump: &Value| {
            let all = dump["messages"].as_array().unwrap();
            assert_eq!(all.len(), 1, "{mode:?}: one copy, never a second");
            all[0].clone()
        };
        let before = copy(&emu.dump(USER).await);
        assert_eq!(
            (&before["isRead"], &before["flag"]["flagStatus"], &before["categories"]),
            (&json!(false), &json!("flagged"), &json!(["Work", "Clients"])),
            "{mode:?}: as uploaded"
        );

        // \Seen added, \Flagged taken away, a keyword and a label for the old ones.
        let new_id = s
            .update_flags(
                &f,
                &id,
                &Flags::from_wire("\\Seen \\Answered Home $Forwarded"),
                &["Family".into()],
            )
            .await
            .unwrap();
        assert_eq!(new_id, id, "{mode:?}: Graph keeps the id");
        let after = copy(&emu.dump(USER).await);
        assert_eq!(after["id"], id);
        assert_eq!(after["isRead"], true, "{mode:?}");
        assert_eq!(after["flag"]["flagStatus"], "notFlagged", "{mode:?}");
        assert_eq!(after["categories"], json!(["Home", "Family"]), "{mode:?}");
        assert_eq!(after["folderId"], before["folderId"], "{mode:?}: not moved");
        // Nothing left: every category removed.
        s.update_flags(&f, &id, &Flags::from_wire("\\Flagged"), &[])
            .await
            .unwrap();
        let last = copy(&emu.dump(USER).await);
        assert_eq!(
            (&last["isRead"], &last["flag"]["flagStatus"], &last["categories"]),
            (&json!(false), &json!("flagged"), &json!([])),
            "{mode:?}"
        );
        // The stamp is untouched: a later run still finds the copy.
        let mut fresh = target.open(&user(USER)).await.unwrap();
        assert_eq!(fresh.find(&f, &stored).await.unwrap(), Some(id.clone()), "{mode:?}");

        // An id of the same form that names no message (deleted, or moved
        // to another folder, which gives it a new id): 404 ErrorItemNotFound.
        let mut gone = id.clone();
        let last_char = gone.pop().unwrap();
        gone.push(if last_char == 'A' { 'B' } else { 'A' });
        let e = fresh
            .update_flags(&f, &gone, &Flags::from_wire("\\Seen"), &[])
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Item, "{mode:?}: {e:?}");
        assert!(e.message.contains("no longer has it"), "{e}");
        let stats = emu.stats().await;
        assert_eq!(
            count(&stats, "messages.patch") as usize,
            if mode == GraphWriteMode::ImportMime { 4 } else { 3 },
            "{mode:?}: one PATCH per update (and the import's own)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_looks_up_by_message_id() {
    let emu = Emu::start(&[]);
    let target = emu.target(GraphWriteMode::Json);
    let mut s = target.open(&user(USER)).await.unwrap();
    let f = s.ensure_folder(&folder(None, &["Found"]), None).await.unwrap();
    let quoted = "<it's.1@example.com>";
    let stored = upload(message(quoted, "Quoted id"), "", 1_600_000_000, Some(quoted));
    let id = s.upload(&f, &stored).await.unwrap();

    let mut fresh = target.open(&user(USER)).await.unwrap();
    assert_eq!(fresh.find(&f, &stored).await.unwrap(), Some(id));
    let absent = upload(
        message("<absent@example.com>", "Absent"),
        "",
        1,
        Some("<absent@example.com>"),
    );
    assert_eq!(fresh.find(&f, &absent).await.unwrap(), None);
    assert_eq!(fresh.find("inbox", &stored).await.unwrap(), None, "another folder");
    let no_id = upload(message("<x@y>", "No id"), "", 1, None);
    assert_eq!(fresh.find(&f, &no_id).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_tells_apart_messages_without_or_sharing_a_message_id() {
    for mode in [GraphWriteMode::Json, GraphWriteMode::ImportMime] {
        let emu = Emu::start(&[]);
        let target = emu.target(mode);
        let mut s = target.open(&user(USER)).await.unwrap();
        let f = s.ensure_folder(&folder(None, &["Found"]), None).await.unwrap();
        // No Message-ID header at all.
        let bare = |subject: &str| {
            format!(
                "From: Ann <ann@example.com>\r\nTo: Alice <alice@contoso.test>\r\nSubject: {subject}\r\n\
Date: Tue, 30 Apr 2019 12:00:00 +0200\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nNo id here: {subject}.\r\n"
            )
        };
        let first = upload(bare("first"), "", 1_600_000_000, None);
        let second = upload(bare("second"), "\\Seen", 1_600_000_100, None);
        let not_sent = upload(bare("never sent"), "", 1_600_000_200, None);
        // Two different messages with the same Message-ID.
        let shared = "<shared@example.com>";
        let twin_a = upload(message(shared, "twin a"), "", 1_600_000_300, Some(shared));
        let twin_b = upload(message(shared, "twin b"), "", 1_600_000_400, Some(shared));
        let id_first = s.upload(&f, &first).await.unwrap();
        let id_second = s.upload(&f, &second).await.unwrap();
        let id_twin_a = s.upload(&f, &twin_a).await.unwrap();

        let mut fresh = target.open(&user(USER)).await.unwrap();
        assert_eq!(fresh.find(&f, &first).await.unwrap(), Some(id_first), "{mode:?}");
        assert_eq!(fresh.find(&f, &second).await.unwrap(), Some(id_second), "{mode:?}");
        assert_eq!(fresh.find(&f, &not_sent).await.unwrap(), None, "{mode:?}");
        assert_eq!(fresh.find(&f, &twin_a).await.unwrap(), Some(id_twin_a), "{mode:?}");
        assert_eq!(
            fresh.find(&f, &twin_b).await.unwrap(),
            None,
            "{mode:?}: the twin sharing the Message-ID was never sent"
        );
        // The stamp is on the stored message, and the MIME was not touched.
        let dump = emu.dump(USER).await;
        for m in dump["messages"].as_array().unwrap() {
            let props = m["singleValueExtendedProperties"].as_array().unwrap();
            assert!(
                props
                    .iter()
                    .any(|p| p["id"].as_str().unwrap().ends_with("Name cutoverKey")),
                "{mode:?}: no stamp on {}",
                m["subject"]
            );
        }
        if mode == GraphWriteMode::ImportMime {
            let raws = stored_mime(&emu).await;
            assert!(raws.contains(&first.raw.to_vec()) && raws.contains(&twin_a.raw.to_vec()));
        }
    }
}

/// The decoded MIME of every message the emulator holds for `USER`.
async fn stored_mime(emu: &Emu) -> Vec<Vec<u8>> {
    emu.dump(USER).await["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| STANDARD.decode(m["mimeBase64"].as_str().unwrap()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_whose_answer_was_lost_is_found_whichever_message_id_exchange_indexed() {
    let emu = Emu::start(&[]);
    let target = emu.target(GraphWriteMode::ImportMime);
    let mut s = target.open(&user(USER)).await.unwrap();
    let f = s.ensure_folder(&folder(None, &["Lost answers"]), None).await.unwrap();
    // Two Message-ID headers: cutover reads the first, a MIME parser on
    // the server side may index the other.
    let raw = message("<first@example.com>", "Two ids").replacen(
        "MIME-Version",
        "Message-ID: <second@example.com>\r\nMIME-Version",
        1,
    );
    let twice = upload(raw.clone(), "\\Seen", 1_600_000_000, Some("<first@example.com>"));
    // The import is stored, its answer never arrives.
    emu.faults(json!({"fail_next": [{"drop": "reset_after", "on": "importMime", "count": 1}]}))
        .await;
    let id = s.upload(&f, &twice).await.unwrap();
    let stored = stored_mime(&emu).await;
    assert_eq!(stored, vec![raw.into_bytes()], "stored once, not sent again");
    let dump = emu.dump(USER).await;
    assert_eq!(dump["messages"][0]["id"], id);
    assert_eq!(dump["messages"][0]["isRead"], true, "the copy found was finished");
    assert_eq!(count(&emu.stats().await, "messages.importMime"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_commits_after_the_client_timed_out_is_not_sent_twice() {
    for mode in [GraphWriteMode::ImportMime, GraphWriteMode::Json] {
        let emu = Emu::start(&[]);
        let mut settings = emu.settings(mode);
        settings.timeout = Duration::from_secs(1);
        let target = GraphTarget::new(settings).unwrap();
        let mut s = target.open(&user(USER)).await.unwrap();
        let f = s.ensure_folder(&folder(None, &["Late"]), None).await.unwrap();
        let late = upload(
            message("<late@example.com>", "Late"),
            "\\Seen",
            1_600_000_000,
            Some("<late@example.com>"),
        );
        // The create is carried out 1.3 s after it arrived: after the
        // client's 1 s timeout, before anything it could do next.
        let create = if mode == GraphWriteMode::ImportMime {
            "importMime"
        } else {
            "POST /v1.0"
        };
        emu.faults(json!({"fail_next": [{"slow_ms": 1300, "on": create, "count": 1}]}))
            .await;
        let id = s.upload(&f, &late).await.unwrap();
        let dump = emu.dump(USER).await;
        let messages = dump["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 1, "{mode:?}: stored once, not sent again: {dump:#}");
        assert_eq!(messages[0]["id"], id, "{mode:?}");
        assert_eq!(messages[0]["isRead"], true, "{mode:?}: the late copy was finished");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_import_is_never_adopted_by_another_message_sharing_its_message_id() {
    let emu = Emu::start(&[]);
    let target = emu.target(GraphWriteMode::ImportMime);
    let mut s = target.open(&user(USER)).await.unwrap();
    let f = s.ensure_folder(&folder(None, &["Twins"]), None).await.unwrap();
    let shared = "<shared.twin@example.com>";
    let twin_a = upload(message(shared, "twin a"), "", 1_600_000_300, Some(shared));
    let twin_b = upload(message(shared, "twin b"), "", 1_600_000_400, Some(shared));
    // twin a is imported but never finished: the PATCH that stamps it is
    // refused and so is the delete of the incomplete copy (as if the run
    // had been killed in between).
    emu.faults(json!({"fail_next": [
        {"status": 400, "on": "PATCH ", "count": 1},
        {"status": 400, "on": "DELETE ", "count": 1},
    ]}))
    .await;
    assert!(s.upload(&f, &twin_a).await.is_err(), "twin a left unfinished");
    assert_eq!(stored_mime(&emu).await.len(), 1);
    // twin b's import is cut off before it is stored: the lookup that
    // follows sees only twin a's unfinished copy with that Message-ID.
    emu.faults(json!({"fail_next": [{"drop": "reset", "on": "importMime", "count": 1}]}))
        .await;
    s.upload(&f, &twin_b).await.unwrap();
    let stored = stored_mime(&emu).await;
    assert_eq!(stored.len(), 2, "twin b has a copy of its own");
    assert!(stored.contains(&twin_a.raw.to_vec()) && stored.contains(&twin_b.raw.to_vec()));
    // A rerun finishes twin a's copy rather than importing it again.
    let mut fresh = target.open(&user(USER)).await.unwrap();
    assert!(fresh.find(&f, &twin_a).await.unwrap().is_some());
    assert_eq!(stored_mime(&emu).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_mailbox_is_fatal_with_advice() {
    let emu = Emu::start(&["--mailboxes", USER]);
    let target = emu.target(GraphWriteMode::Auto);
    let err = target
        .open(&user("bob@contoso.test"))
        .await
        .err()
        .expect("bob has no mailbox");
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(err.message.contains("EmailAddress"), "{err}");
    assert!(target.open(&user(USER)).await.is_ok());
    assert!(target.describe().contains("write mode auto"));
}

/// A copy filed into another folder is moved in Exchange (`POST
/// .../move`), which gives it a new id: the old one is a 404 afterwards, so
/// a second move by it is that message's failure and changes nothing, a
/// flag change by it too, and a delete by it is no error (the copy is gone
/// from there, which is what was wanted); the copy keeps its state and the
/// stamp `find` looks it up by. A move whose answer was lost is checked
/// before it is sent again: never moved twice, never failed for having
/// been done (an empty id: moved, under an id not known). A renamed
/// folder keeps its messages' ids; Exchange's well-known folders are not
/// renamed. Both write modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_copy_gets_a_new_id_and_its_old_id_is_a_404() {
    for mode in [GraphWriteMode::ImportMime, GraphWriteMode::Json] {
        let emu = Emu::start(&[]);
        let target = emu.target(mode);
        let caps = target.capabilities();
        assert!(caps.move_messages && caps.delete && caps.rename_folders, "{caps:?}");
        let mut s = target.open(&user(USER)).await.unwrap();
        let from = s.ensure_folder(&folder(None, &["Filed", "From"]), None).await.unwrap();
        let to = s.ensure_folder(&folder(None, &["Filed", "To"]), None).await.unwrap();
        let stored = upload(
            message("<move.1@example.com>", "Moved"),
            "\\Seen Work",
            1_600_000_000,
            Some("<move.1@example.com>"),
        );
        let id = s.upload(&from, &stored).await.unwrap();
        let only = |dump: &Value| {
            let all = dump["messages"].as_array().unwrap();
            assert_eq!(all.len(), 1, "{mode:?}: one copy, never a second: {all:#?}");
            all[0].clone()
        };
        let before = only(&emu.dump(USER).await);

        let moved = s.move_message(&from, &id, &to).await.unwrap();
        assert_ne!(moved, id, "{mode:?}: Exchange gives a moved message a new id");
        let after = only(&emu.dump(USER).await);
        assert_eq!(after["id"], moved, "{mode:?}");
        assert_eq!(after["folderId"], to, "{mode:?}");
        for kept in [
            "isRead",
            "categories",
            "receivedDateTime",
            "internetMessageId",
            "singleValueExtendedProperties",
        ] {
            assert_eq!(after[kept], before[kept], "{mode:?}: {kept} moves with it");
        }
        let stats = emu.stats().await;
        assert_eq!(count(&stats, "messages.move"), 1, "{mode:?}");
        assert_eq!(s.find(&to, &stored).await.unwrap(), Some(moved.clone()), "{mode:?}");
        assert_eq!(s.find(&from, &stored).await.unwrap(), None, "{mode:?}");

        // The old id names nothing: 404 ErrorItemNotFound for each of these.
        let e = s.move_message(&from, &id, &to).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Item, "{mode:?}: {e:?}");
        assert!(e.message.contains("no longer has it"), "{e}");
        let e = s
            .update_flags(&from, &id, &Flags::from_wire("\\Flagged"), &[])
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Item, "{mode:?}: {e:?}");
        s.delete_message(&from, &id)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: a copy gone from there is no error: {e:?}"));
        assert_eq!(only(&emu.dump(USER).await)["id"], moved, "{mode:?}: nothing changed");
        let stats = emu.stats().await;
        assert_eq!(count(&stats, "messages.move"), 2, "{mode:?}");
        assert_eq!(count(&stats, "messages.delete"), 1, "{mode:?}");
        assert_eq!(stats["total"]["by_status"]["404"], 3, "{mode:?}: {stats}");

        // A renamed and moved folder keeps its messages' ids.
        let sorted = s
            .rename_folder(&to, &folder(Some(FolderRole::Inbox), &["Sorted ✓"]))
            .await
            .unwrap();
        let dump = emu.dump(USER).await;
        let renamed = dump["folders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == sorted)
            .unwrap();
        assert_eq!(renamed["path"], json!(["Inbox", "Sorted ✓"]), "{mode:?}");
        assert_eq!(only(&dump)["id"], moved, "{mode:?}: the message keeps its id");
        assert_eq!(only(&dump)["folderId"], sorted, "{mode:?}");
        s.update_flags(&sorted, &moved, &Flags::from_wire("\\Flagged"), &[])
            .await
            .unwrap();
        for well_known in ["inbox", "sentitems", "deleteditems"] {
            let e = s
                .rename_folder(well_known, &folder(None, &["Renamed"]))
                .await
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::Item, "{mode:?}: {well_known}: {e:?}");
        }
        let e = s
            .rename_folder(&sorted, &folder(Some(FolderRole::Sent), &[]))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Item, "{mode:?}: onto a well-known folder: {e:?}");
        assert_eq!(
            count(&emu.stats().await, "folders.patch"),
            1,
            "{mode:?}: refused before any request"
        );

        // Lost answers. Dropped before Exchange acted: the old id is still
        // there, so the move is sent again and its new id comes back.
        emu.faults(json!({"fail_next": [{"drop": "reset", "on": "/move", "count": 1}]}))
            .await;
        let back = s.move_message(&sorted, &moved, &from).await.unwrap();
        assert!(!back.is_empty() && back != moved, "{mode:?}: {back:?}");
        let copy = only(&emu.dump(USER).await);
        assert_eq!(
            (&copy["id"], &copy["folderId"]),
            (&json!(back), &json!(from)),
            "{mode:?}"
        );
        // Dropped after Exchange moved it: the old id is gone, so it was
        // moved; not sent again, not a failure, the new id unknown.
        emu.faults(json!({"fail_next": [{"drop": "reset_after", "on": "/move", "count": 1}]}))
            .await;
        let lost = s.move_message(&from, &back, &sorted).await.unwrap();
        assert_eq!(lost, "", "{mode:?}: moved, under an id the answer would have said");
        let copy = only(&emu.dump(USER).await);
        assert_eq!(copy["folderId"], sorted, "{mode:?}: moved once");
        assert_eq!(
            count(&emu.stats().await, "messages.move"),
            5,
            "{mode:?}: 2 + 2 (one resent) + 1"
        );

        // Deleted by its id: gone; again: a 404, no error.
        let id = copy["id"].as_str().unwrap().to_owned();
        s.delete_message(&sorted, &id).await.unwrap();
        assert_eq!(emu.dump(USER).await["messages"], json!([]), "{mode:?}");
        s.delete_message(&sorted, &id).await.unwrap();
        s.close().await;
    }
}

/// The messages of a batch go out several at once, up to the mailbox's
/// `max_concurrent_requests`: one session alone keeps the mailbox's four
/// requests busy, and every message is stored once, its result in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_written_several_messages_at_once_up_to_the_mailboxs_concurrency() {
    let emu = Emu::start(&[]);
    let target = emu.target(GraphWriteMode::Json);
    let mut s = target.open(&user(USER)).await.unwrap();
    let folder_id = s.ensure_folder(&folder(None, &["Batch"]), None).await.unwrap();
    emu.faults(json!({"latency_ms": [150, 150]})).await;
    let uploads: Vec<Upload> = (0..12)
        .map(|i| {
            let id = format!("<batch.{i}@example.com>");
            upload(message(&id, &format!("Batch {i}")), "", 1_557_000_000 + i, Some(&id))
        })
        .collect();
    let results = s.upload_many(&folder_id, &uploads).await;
    assert_eq!(results.len(), 12);
    let ids: Vec<String> = results.into_iter().map(|r| r.unwrap()).collect();
    let dump = emu.dump(USER).await;
    let messages = dump["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 12, "each message stored once");
    for (i, id) in ids.iter().enumerate() {
        let stored = messages.iter().find(|m| m["id"] == id.as_str()).unwrap();
        assert_eq!(
            stored["subject"],
            format!("Batch {i}"),
            "results come in the messages' order"
        );
    }
    let stats = emu.stats().await;
    assert_eq!(
        stats["mailboxes"][USER]["max_concurrent"], 4,
        "one session kept the mailbox's 4 requests in flight: {stats}"
    );
}

/// `max_concurrent_requests_per_app`: the requests of all mailboxes
/// together stay within the app-wide cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_app_cap_bounds_the_requests_in_flight_across_mailboxes() {
    let emu = Emu::start(&[]);
    let mut settings = emu.settings(GraphWriteMode::Json);
    settings.max_concurrent_requests_per_app = Some(3);
    let target = GraphTarget::new(settings).unwrap();
    let users = ["alice@contoso.test", "bob@contoso.test", "carol@contoso.test"];
    let mut sessions = Vec::new();
    for u in users {
        let mut s = target.open(&user(u)).await.unwrap();
        let f = s.ensure_folder(&folder(None, &["Batch"]), None).await.unwrap();
        sessions.push((s, f));
    }
    emu.faults(json!({"latency_ms": [100, 100]})).await;
    let uploads: Vec<Upload> = (0..8)
        .map(|i| {
            let id = format!("<app.{i}@example.com>");
            upload(message(&id, &format!("App {i}")), "", 1_557_000_000 + i, Some(&id))
        })
        .collect();
    let all = futures::future::join_all(sessions.iter_mut().map(|(s, f)| s.upload_many(f, &uploads))).await;
    for results in all {
        assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    }
    let stats = emu.stats().await;
    let global = stats["total"]["max_concurrent_global"].as_u64().unwrap();
    assert!(global <= 3, "at most 3 requests in flight for the app: {global}");
    assert!(global >= 2, "the mailboxes did share the app's 3 requests: {global}");
}
