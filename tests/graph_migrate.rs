//! Exchange Online end to end: the real `cutover` binary copies real IMAP
//! mailboxes (a Dovecot source started by the test) into the Graph
//! emulator (`tools/graph-emulator`, spawned by the test), and the
//! emulator's dump of every mailbox is compared with the source message by
//! message, in both write modes.
//!
//! The emulator runs with Exchange Online's real throttle limits (4
//! concurrent requests, 10,000 requests per 10 minutes, 150 MB per 5
//! minutes per mailbox), time-scaled so the test stays fast; its counters
//! prove that no request went out before a Retry-After expired. The fault
//! runs add injected 5xx, dropped connections (before and after the server
//! acted), expiring tokens and a killed process, and still end with every
//! message exactly once; a rerun then writes nothing.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_parser::{MessageParser, MimeHeaders, PartType};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use support::dovecot::{Dovecot, DovecotOptions, StoredMessage};
use support::mailgen::{self, GenMessage};

use support::emulator::{CLIENT, Emulator, RunningEmulator, TENANT};
const SECRET: &str = "graph-s3cret-value";
const SECRET_ENV: &str = "CUTOVER_TEST_GRAPH_SECRET";
/// Every emulated duration (throttle windows, Retry-After, token lifetime)
/// runs at this fraction of real time.
const TIME_SCALE: f64 = 0.01;
/// cutover's own request and upload budgets on the same scaled clock: the
/// documented 10,000 requests and 150 MB, over windows 0.01 times as long.
const SCALED_BUDGET: &str = "limits_time_scale = 0.01\n";

/// The folders of the standard test mailbox (as in migrate_dovecot.rs):
/// nested, non-ASCII, role folders, and names with spaces.
const FOLDERS: [&str; 10] = [
    "INBOX",
    "Sent",
    "Archive",
    "Archive/2023",
    "Archive/2023/Q1",
    "Projets/Écoles",
    "日本語",
    "Kunden & Partner",
    "Listes/Übersicht",
    "Odd",
];

fn user(n: usize) -> (String, String) {
    (format!("user{n}@example.test"), format!("pw-{n}-s3cret"))
}

// --- the emulator ------------------------------------------------------------

struct Emu {
    _server: RunningEmulator,
    base: String,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Emu {
    fn start(extra: &[&str]) -> Emu {
        let server = Emulator::new()
            .client_secret(SECRET)
            .seed(7)
            .time_scale(TIME_SCALE)
            .args(extra)
            .start();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Emu {
            base: server.base_url.clone(),
            _server: server,
            rt,
            http: reqwest::Client::new(),
        }
    }

    /// One HTTP request; the status and the JSON body (Null when none).
    fn call(&self, method: reqwest::Method, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        self.rt.block_on(async {
            let mut r = self.http.request(method, url);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            if let Some(b) = body {
                r = r.json(&b);
            }
            let resp = r.send().await.unwrap();
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.unwrap();
            (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
        })
    }

    fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, &format!("{}/_emulator/{path}", self.base), None, body);
        assert!((200..300).contains(&status), "admin {path}: {status} {v}");
        v
    }

    fn dump(&self, email: &str) -> Value {
        self.admin(reqwest::Method::GET, &format!("mailboxes/{email}"), None)
    }

    fn stats(&self) -> Value {
        self.admin(reqwest::Method::GET, "stats", None)
    }

    fn faults(&self, config: Value) {
        self.admin(reqwest::Method::POST, "faults", Some(config));
    }

    /// Messages stored across every mailbox.
    fn stored(&self) -> u64 {
        self.admin(reqwest::Method::GET, "mailboxes", None)["mailboxes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["messages"].as_u64().unwrap())
            .sum()
    }

    /// An app-only token, as the product gets one.
    fn token(&self) -> String {
        let url = format!("{}/{TENANT}/oauth2/v2.0/token", self.base);
        self.rt.block_on(async {
            let resp = self
                .http
                .post(url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", CLIENT),
                    ("client_secret", SECRET),
                    ("scope", &format!("{}/.default", self.base)),
                ])
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "token: {}", resp.status());
            let v: Value = resp.json().await.unwrap();
            v["access_token"].as_str().unwrap().to_owned()
        })
    }
}

/// Requests that change a mailbox.
fn writes(stats: &Value) -> u64 {
    ["POST", "PATCH", "PUT", "DELETE"]
        .iter()
        .map(|m| stats["total"]["by_method"][m].as_u64().unwrap_or(0))
        .sum()
}

/// Exchange's throttling was respected: nothing sent during a Retry-After,
/// and under 2% of all requests answered 429.
fn assert_throttling_respected(stats: &Value) {
    let total = &stats["total"];
    assert_eq!(
        total["retry_after_violations"], 0,
        "requests sent before Retry-After expired: {:#}",
        stats["violations"]
    );
    let requests = total["requests"].as_u64().unwrap();
    let throttled = total["throttled_429"].as_u64().unwrap();
    assert!(requests > 0);
    assert!(
        throttled * 50 < requests,
        "{throttled} of {requests} requests were answered 429 (limit 2%): {total:#}"
    );
}

// --- the source and the run --------------------------------------------------

struct Lab {
    source: Dovecot,
    dir: tempfile::TempDir,
}

impl Lab {
    fn new(users: usize) -> Lab {
        let source = Dovecot::start(DovecotOptions {
            users: (1..=users).map(user).collect(),
            ..Default::default()
        });
        Lab {
            source,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Config and users file for a run into `emu`, in a directory of its
    /// own (its own checkpoint).
    fn setup(&self, name: &str, emu: &Emu, mode: &str, users: &[(String, String)], extra: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "[source]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\n\
             [target]\nkind = \"graph\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\n\
             client_secret_env = \"{SECRET_ENV}\"\nendpoint = \"{base}\"\nauthority = \"{base}\"\n\
             write_mode = \"{mode}\"\ntimeout_seconds = 20\n{SCALED_BUDGET}\n\
             [state]\npath = \"state.db\"\n{extra}",
            self.source.port(),
            base = emu.base,
        );
        std::fs::write(dir.join("cutover.toml"), config).unwrap();
        let mut csv = String::from("EmailAddress,UserName,Password\r\n");
        for (u, p) in users {
            csv.push_str(&format!("{u},{u},{p}\r\n"));
        }
        std::fs::write(dir.join("users.csv"), csv).unwrap();
        dir
    }
}

fn command(dir: &Path, sub: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cutover"));
    c.args([sub, "--config", "cutover.toml", "--users", "users.csv"])
        .env(SECRET_ENV, SECRET)
        .current_dir(dir);
    c
}

fn migrate(dir: &Path) -> Output {
    command(dir, "migrate").output().expect("run cutover")
}

fn explain(out: &Output) -> String {
    format!(
        "exit {:?}\nstderr:\n{}\nstdout:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    )
}

/// `cutover verify --json`: the exit code (with stderr when not 0) and the report.
fn verify(dir: &Path) -> (Option<i32>, Value) {
    let out = command(dir, "verify")
        .arg("--json")
        .output()
        .expect("run cutover verify");
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("verify --json: {}", explain(&out)));
    if out.status.code() != Some(0) {
        eprintln!("verify: {}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.code(), v)
}

/// The standard mailbox: `count` generated messages spread over the nine
/// other folders, plus the odd-MIME corpus in "Odd".
fn fill_standard_mailbox(server: &Dovecot, email: &str, count: usize, seed: u64) {
    let messages = mailgen::generate(seed, count, 3000);
    let mut per_folder: HashMap<&str, Vec<GenMessage>> = HashMap::new();
    for (i, m) in messages.into_iter().enumerate() {
        per_folder.entry(FOLDERS[i % (FOLDERS.len() - 1)]).or_default().push(m);
    }
    for (folder, msgs) in &per_folder {
        server.deliver(email, folder, msgs);
    }
    let odd: Vec<GenMessage> = mailgen::odd_corpus().into_iter().map(|(_, m)| m).collect();
    server.deliver(email, "Odd", &odd);
}

/// `raw` without its Message-ID header.
fn strip_message_id(mut m: GenMessage) -> GenMessage {
    let text = String::from_utf8_lossy(&m.raw).into_owned();
    let start = text.find("\r\nMessage-ID:").expect("generated mail has a Message-ID") + 2;
    let end = start + text[start..].find("\r\n").unwrap() + 2;
    m.raw = [&m.raw[..start], &m.raw[end..]].concat();
    m
}

// --- comparing source and target ---------------------------------------------

/// Where a source folder lands in Exchange (display names from the top).
fn graph_path(folder: &str) -> Vec<String> {
    let mut parts: Vec<String> = folder.split('/').map(str::to_owned).collect();
    parts[0] = match parts[0].as_str() {
        "INBOX" => "Inbox",
        "Sent" => "Sent Items",
        "Archive" => "Archive",
        "Drafts" => "Drafts",
        "Trash" => "Deleted Items",
        "Junk" => "Junk Email",
        other => other,
    }
    .to_owned();
    parts
}

fn sha_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect()
}

fn addresses(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["emailAddress"]["address"].as_str().unwrap().to_ascii_lowercase())
        .collect()
}

fn source_addresses(a: Option<&mail_parser::Address>) -> Vec<String> {
    a.map(|a| {
        a.iter()
            .filter_map(|x| x.address())
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

fn timestamp(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .timestamp()
}

/// The decoded bytes of a MIME part, from the raw message (the test's own
/// decoding, so the product's is checked against something else).
fn part_bytes(raw: &[u8], part: &mail_parser::MessagePart) -> Vec<u8> {
    if let PartType::Binary(b) | PartType::InlineBinary(b) = &part.body {
        return b.to_vec();
    }
    let body = &raw[part.raw_body_offset() as usize..(part.raw_end_offset() as usize).min(raw.len())];
    let cte = part.content_transfer_encoding().map(|e| e.trim().to_ascii_lowercase());
    match cte.as_deref() {
        Some("base64") => {
            let clean: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
            STANDARD.decode(clean).unwrap_or_else(|_| body.to_vec())
        }
        Some("quoted-printable") => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(body).unwrap_or_else(|| body.to_vec())
        }
        _ => body.to_vec(),
    }
}

/// Compares the emulator's dumps with the source: every message once, in
/// the right folder, not a draft, with its read state and flag; in
/// import-mime mode byte for byte; in json mode with the INTERNALDATE as
/// received date and the subject, body, recipients, Message-ID and every
/// attachment of the source.
fn assert_copied(mode: &str, source: &[StoredMessage], dump: &Value) {
    let email = dump["address"].as_str().unwrap();
    let targets = dump["messages"].as_array().unwrap();
    assert_eq!(
        targets.len(),
        source.len(),
        "{email} ({mode}): the target holds {} messages, the source {}",
        targets.len(),
        source.len()
    );
    // Target messages by (folder path, key); each is taken once.
    // Every target message is filed under the keys a source message can
    // look it up by, and taken once. import-mime: the digest of its bytes.
    // json: Message-ID and subject, and for a source message without a
    // Message-ID (Exchange makes one up) its original header block, which
    // json mode keeps as PR_TRANSPORT_MESSAGE_HEADERS (0x007D).
    let keys_of_target = |t: &Value| -> Vec<String> {
        if mode == "import-mime" {
            let raw = STANDARD
                .decode(t["mimeBase64"].as_str().expect("importMime keeps the MIME"))
                .unwrap();
            return vec![sha_hex(&raw)];
        }
        let mut keys =
            vec![t["subject"].as_str().unwrap().to_owned() + "\u{0}" + t["internetMessageId"].as_str().unwrap_or("")];
        if let Some(h) = t["singleValueExtendedProperties"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == "String 0x7d")
        {
            keys.push(format!("headers\u{0}{}", h["value"].as_str().unwrap().trim_end()));
        }
        keys
    };
    let mut taken = vec![false; targets.len()];
    let mut pool: BTreeMap<(Vec<String>, String), Vec<usize>> = BTreeMap::new();
    for (i, t) in targets.iter().enumerate() {
        for k in keys_of_target(t) {
            pool.entry((strings(&t["folderPath"]), k)).or_default().push(i);
        }
    }
    for s in source {
        let parsed = MessageParser::default().parse(&s.raw).expect("source parses");
        let mid = mailgen::message_id(&s.raw);
        let key = match (mode, &mid) {
            ("import-mime", _) => sha_hex(&s.raw),
            (_, Some(m)) => format!("{}\u{0}{m}", parsed.subject().unwrap_or_default()),
            (_, None) => {
                let end = s.raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(s.raw.len());
                format!("headers\u{0}{}", String::from_utf8_lossy(&s.raw[..end]).trim_end())
            }
        };
        let path = graph_path(&s.folder);
        let what = format!("{email} {} uid {} ({mid:?})", s.folder, s.uid);
        let index = pool
            .get(&(path.clone(), key))
            .and_then(|list| list.iter().copied().find(|&i| !taken[i]))
            .unwrap_or_else(|| panic!("{what} ({mode}): not in target folder {path:?}"));
        taken[index] = true;
        let t = &targets[index];
        assert_eq!(t["isDraft"], false, "{what}: a draft");
        let seen = s.flags.iter().any(|f| f == "\\Seen");
        let flagged = s.flags.iter().any(|f| f == "\\Flagged");
        assert_eq!(t["isRead"], seen, "{what}: isRead");
        let status = t["flag"]["flagStatus"].as_str().unwrap_or("notFlagged");
        assert_eq!(status == "flagged", flagged, "{what}: flag {status}");
        if mode == "import-mime" {
            // The bytes are the source's: the key above is their digest.
            assert_eq!(t["createdVia"], "import-mime", "{what}");
            continue;
        }
        assert_eq!(
            timestamp(&t["receivedDateTime"]),
            s.internal_date,
            "{what}: receivedDateTime is not the INTERNALDATE"
        );
        if let Some(m) = &mid {
            assert_eq!(t["internetMessageId"].as_str(), Some(m.as_str()), "{what}: Message-ID");
        }
        assert_eq!(
            t["subject"].as_str().unwrap(),
            parsed.subject().unwrap_or_default(),
            "{what}: subject"
        );
        assert_eq!(
            addresses(&t["toRecipients"]),
            source_addresses(parsed.to()),
            "{what}: To"
        );
        assert_eq!(
            addresses(&t["ccRecipients"]),
            source_addresses(parsed.cc()),
            "{what}: Cc"
        );
        if let Some(from) = source_addresses(parsed.from()).first() {
            assert_eq!(
                t["from"]["emailAddress"]["address"]
                    .as_str()
                    .map(str::to_ascii_lowercase)
                    .as_ref(),
                Some(from),
                "{what}: From"
            );
        }
        // The body: the HTML when there is any, else the text.
        let has_html = parsed.html_bodies().any(|p| matches!(p.body, PartType::Html(_)));
        let html: Vec<String> = (0..parsed.html_body_count())
            .filter_map(|i| parsed.body_html(i).map(|c| c.into_owned()))
            .collect();
        let body = &t["body"];
        if has_html {
            assert_eq!(body["contentType"], "html", "{what}: body type");
            for h in &html {
                assert!(
                    body["content"].as_str().unwrap().contains(h.trim()),
                    "{what}: HTML body differs"
                );
            }
        } else {
            assert_eq!(body["contentType"], "text", "{what}: body type");
            for i in 0..parsed.text_body_count() {
                let text = parsed.body_text(i).unwrap_or_default();
                assert!(
                    body["content"].as_str().unwrap().contains(text.trim()),
                    "{what}: text body differs"
                );
            }
        }
        // Every attachment: its bytes (size and SHA-256) and its file name.
        let mut want: Vec<(u64, String)> = Vec::new();
        let mut want_names: Vec<String> = Vec::new();
        for part in parsed.attachments() {
            let bytes = part_bytes(&s.raw, part);
            want.push((bytes.len() as u64, sha_hex(&bytes)));
            if let Some(n) = part.attachment_name().map(str::trim).filter(|n| !n.is_empty()) {
                want_names.push(n.to_owned());
            }
        }
        let got_list = t["attachments"].as_array().unwrap();
        let mut got: Vec<(u64, String)> = got_list
            .iter()
            .map(|a| (a["size"].as_u64().unwrap(), a["sha256"].as_str().unwrap().to_owned()))
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{what}: attachments (size, sha256)");
        let got_names: Vec<&str> = got_list.iter().map(|a| a["name"].as_str().unwrap()).collect();
        for n in &want_names {
            assert!(
                got_names.contains(&n.as_str()),
                "{what}: attachment {n:?} missing in {got_names:?}"
            );
        }
    }
}

// --- the tests ---------------------------------------------------------------

/// The standard 2,000-message mailbox and 20 more mailboxes at once, in
/// both write modes, with Exchange's throttle limits; then a rerun that
/// sends nothing and a verify that finds everything (and notices a
/// message deleted in Exchange).
#[test]
fn both_write_modes_copy_every_mailbox_exactly_within_exchange_limits() {
    let others = 20;
    let lab = Lab::new(1 + others);
    let big = user(1).0;
    fill_standard_mailbox(&lab.source, &big, 2000, 7);
    for n in 2..=1 + others {
        let msgs = mailgen::generate(100 + n as u64, 24, 2000);
        lab.source.deliver(&user(n).0, "INBOX", &msgs[..12]);
        lab.source.deliver(&user(n).0, "Sent", &msgs[12..18]);
        lab.source.deliver(&user(n).0, "Kunden & Partner", &msgs[18..]);
    }
    let users: Vec<(String, String)> = (1..=1 + others).map(user).collect();
    let source: Vec<Vec<StoredMessage>> = users.iter().map(|(e, _)| lab.source.messages(e)).collect();
    assert_eq!(source[0].len(), 2000 + mailgen::odd_corpus().len());

    for mode in ["import-mime", "json"] {
        let emu = Emu::start(&[]);
        let dir = lab.setup(mode, &emu, mode, &users, "\n[run]\nparallel_users = 21\n");
        let started = Instant::now();
        let out = migrate(&dir);
        assert_eq!(out.status.code(), Some(0), "{mode}: {}", explain(&out));
        eprintln!("{mode}: copied {} mailboxes in {:?}", users.len(), started.elapsed());
        for ((email, _), src) in users.iter().zip(&source) {
            assert_copied(mode, src, &emu.dump(email));
        }
        let stats = emu.stats();
        eprintln!("{mode}: {:#}", stats["total"]);
        assert_throttling_respected(&stats);
        // Four sessions per mailbox share its limit of four requests.
        assert!(stats["total"]["max_concurrent"].as_u64().unwrap() <= 4, "{stats:#}");

        // A rerun finds nothing new and writes nothing.
        let out = migrate(&dir);
        assert_eq!(out.status.code(), Some(0), "{mode} rerun: {}", explain(&out));
        assert_eq!(
            writes(&emu.stats()),
            writes(&stats),
            "{mode}: the rerun wrote to Exchange"
        );

        // verify lists every Graph folder and finds each message, with its
        // source size.
        let (code, v) = verify(&dir);
        let incomplete: Vec<&Value> = v["users"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["complete"] != true || !u["error"].is_null())
            .chain([&v["totals"]])
            .collect();
        assert_eq!(code, Some(0), "{mode}: verify {incomplete:#?}");
        for (uv, src) in v["users"].as_array().unwrap().iter().zip(&source) {
            assert_eq!(uv["complete"], true, "{mode}: {uv:#}");
            assert_eq!(uv["target_messages"], src.len() as u64, "{mode}: {uv:#}");
            assert_eq!(
                (uv["missing_count"].as_u64(), uv["extra_count"].as_u64()),
                (Some(0), Some(0))
            );
            for f in uv["folders"].as_array().unwrap() {
                assert_eq!(f["size_differs"], 0, "{mode}: {f:#}");
            }
        }
    }
}

/// A message deleted in Exchange after the copy is reported missing by
/// verify, and one added there directly is reported extra.
#[test]
fn verify_reads_graph_folders_and_names_what_differs() {
    let lab = Lab::new(1);
    let (email, password) = user(1);
    let msgs = mailgen::generate(55, 30, 1500);
    lab.source.deliver(&email, "INBOX", &msgs[..20]);
    lab.source.deliver(&email, "Archive/2023", &msgs[20..]);
    let emu = Emu::start(&["--page-size", "7"]);
    let dir = lab.setup("verify", &emu, "json", &[(email.clone(), password)], "");
    let out = migrate(&dir);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let (code, v) = verify(&dir);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["users"][0]["target_messages"], 30);
    // `cutover check` reads the Exchange inbox the same way.
    let out = command(&dir, "check").arg("--json").output().unwrap();
    let check: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", explain(&out)));
    assert_eq!(check["users"][0]["target"]["inbox_messages"], 20, "{check:#}");

    // Exchange loses one message and receives one directly.
    let dump = emu.dump(&email);
    let lost = dump["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| strings(&m["folderPath"]) == ["Archive", "2023"])
        .unwrap();
    let token = emu.token();
    let users = format!("{}/v1.0/users/{email}", emu.base);
    let (status, _) = emu.call(
        reqwest::Method::DELETE,
        &format!("{users}/messages/{}", lost["id"].as_str().unwrap()),
        Some(&token),
        None,
    );
    assert_eq!(status, 204);
    let (status, _) = emu.call(
        reqwest::Method::POST,
        &format!("{users}/mailFolders/inbox/messages"),
        Some(&token),
        Some(json!({
            "subject": "Arrived in Exchange",
            "internetMessageId": "<direct.1@contoso.test>",
            "body": {"contentType": "text", "content": "hello"},
            "singleValueExtendedProperties": [{"id": "Integer 0x0E07", "value": "1"}],
        })),
    );
    assert_eq!(status, 201);

    let (code, v) = verify(&dir);
    assert_eq!(code, Some(1), "{v:#}");
    let uv = &v["users"][0];
    assert_eq!(
        (uv["missing_count"].as_u64(), uv["extra_count"].as_u64()),
        (Some(1), Some(1)),
        "{uv:#}"
    );
    assert_eq!(uv["missing"][0]["message_id"], lost["internetMessageId"]);
    assert_eq!(uv["missing"][0]["folder"], "Archive/2023");
    assert_eq!(uv["extra"][0]["message_id"], "<direct.1@contoso.test>");
}

/// Someone marks a copy read (or unread) and flags it in Exchange after
/// the copy: verify compares the read state and the flag with the source
/// (not \Answered, which Exchange does not keep) and fails, naming the
/// copy; the next migrate writes the source's back, and verify passes.
#[test]
fn verify_compares_read_state_and_flag_and_migrate_writes_them_back() {
    let lab = Lab::new(1);
    let (email, password) = user(1);
    let mut msgs = mailgen::generate(57, 6, 1500);
    msgs[0].flags = vec!["\\Seen".into()];
    msgs[1].flags = vec!["\\Answered".into(), "\\Seen".into()];
    lab.source.deliver(&email, "INBOX", &msgs);
    let emu = Emu::start(&[]);
    let dir = lab.setup("verify-flags", &emu, "json", &[(email.clone(), password)], "");
    let out = migrate(&dir);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let (code, v) = verify(&dir);
    assert_eq!(code, Some(0), "answered, read and unread copies pass: {v:#}");

    let id = mailgen::message_id(&msgs[0].raw).unwrap();
    let copy_of = |dump: &Value| {
        dump["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["internetMessageId"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} in the target"))
            .clone()
    };
    let copy = copy_of(&emu.dump(&email));
    assert_eq!(
        (copy["isRead"].as_bool(), copy["flag"]["flagStatus"].as_str()),
        (Some(true), Some("notFlagged"))
    );
    let token = emu.token();
    let (status, _) = emu.call(
        reqwest::Method::PATCH,
        &format!(
            "{}/v1.0/users/{email}/messages/{}",
            emu.base,
            copy["id"].as_str().unwrap()
        ),
        Some(&token),
        Some(json!({ "isRead": false, "flag": { "flagStatus": "flagged" } })),
    );
    assert_eq!(status, 200);

    let (code, v) = verify(&dir);
    assert_eq!(code, Some(1), "{v:#}");
    let uv = &v["users"][0];
    assert_eq!(
        (uv["flags_differ_count"].as_u64(), uv["missing_count"].as_u64()),
        (Some(1), Some(0)),
        "{uv:#}"
    );
    let item = &uv["flags_differ"][0];
    assert_eq!(item["message_id"], id.as_str(), "{item:#}");
    assert_eq!(item["folder"], "INBOX", "{item:#}");
    assert_eq!(
        (item["source"].as_str(), item["target"].as_str()),
        (Some("read"), Some("unread+flagged"))
    );
    assert!(
        item["status"].as_str().unwrap().contains("run cutover migrate"),
        "{item:#}"
    );
    // The listing alone sees it too.
    let out = command(&dir, "verify").arg("--quick").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("FLAGS DIFFER INBOX UID 1") && said.contains("source read, target unread+flagged"),
        "{said}"
    );

    let out = migrate(&dir);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let copy = copy_of(&emu.dump(&email));
    assert_eq!(
        (copy["isRead"].as_bool(), copy["flag"]["flagStatus"].as_str()),
        (Some(true), Some("notFlagged")),
        "the source's flags written back"
    );
    let (code, v) = verify(&dir);
    assert_eq!(code, Some(0), "{v:#}");
}

/// `auto` on a tenant without Mail-Advanced.ReadWrite.All: one clear
/// warning naming the permission, then every message through json.
#[test]
fn auto_mode_falls_back_to_json_once_and_says_why() {
    let lab = Lab::new(2);
    for n in 1..=2 {
        let msgs = mailgen::generate(70 + n as u64, 15, 1500);
        lab.source.deliver(&user(n).0, "INBOX", &msgs[..10]);
        lab.source.deliver(&user(n).0, "Listes/Übersicht", &msgs[10..]);
    }
    let users: Vec<(String, String)> = (1..=2).map(user).collect();
    let emu = Emu::start(&["--mail-advanced", "false"]);
    let dir = lab.setup("auto", &emu, "auto", &users, "");
    let out = migrate(&dir);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("Mail-Advanced.ReadWrite.All").count(),
        1,
        "one warning naming the permission: {stderr}"
    );
    assert!(!stderr.contains(SECRET), "the client secret leaked: {stderr}");
    for (email, _) in &users {
        let dump = emu.dump(email);
        assert!(
            dump["messages"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["createdVia"] == "json")
        );
        assert_copied("json", &lab.source.messages(email), &dump);
    }
}

/// Injected 503s and 500s, connections dropped before and after Exchange
/// acted, tokens expiring mid-run and a killed process: the runs that
/// follow leave every message exactly once (messages without a Message-ID
/// included), and a rerun writes nothing.
fn faults_leave_no_gap_and_no_duplicate(mode: &str) {
    let lab = Lab::new(3);
    for n in 1..=3 {
        let (email, _) = user(n);
        let msgs: Vec<GenMessage> = mailgen::generate(300 + n as u64, 90, 2500)
            .into_iter()
            .enumerate()
            .map(|(i, m)| if i % 4 == 0 { strip_message_id(m) } else { m })
            .collect();
        lab.source.deliver(&email, "INBOX", &msgs[..50]);
        lab.source.deliver(&email, "Archive/2023", &msgs[50..70]);
        lab.source.deliver(&email, "Projets/Écoles", &msgs[70..]);
    }
    let odd: Vec<GenMessage> = mailgen::odd_corpus().into_iter().map(|(_, m)| m).collect();
    lab.source.deliver(&user(1).0, "Odd", &odd);
    // Too large for one JSON request: created, then completed through an
    // upload session, a copy cut short on the way must not survive.
    lab.source
        .deliver(&user(2).0, "INBOX", &[mailgen::big_message(5 * 1024 * 1024, 3)]);
    let users: Vec<(String, String)> = (1..=3).map(user).collect();
    let total: usize = users.iter().map(|(e, _)| lab.source.messages(e).len()).sum();

    // Tokens live 4 s (400 emulated seconds): several expire during the run.
    // With a 503 on one request in fifty, requests already on their way
    // when one is issued are common; on a loaded test machine a response
    // can take a few hundred milliseconds to be read, so requests up to
    // 250 ms after a Retry-After count as races rather than violations.
    let emu = Emu::start(&["--token-lifetime-secs", "400", "--violation-grace-ms", "250"]);
    let dir = lab.setup(
        mode,
        &emu,
        mode,
        &users,
        "\n[run]\nparallel_users = 3\nconnections_per_user = 3\nbatch_messages = 10\nmax_attempts = 20\n",
    );
    let faults = json!({
        "status_rate": {"503": 0.02, "500": 0.02},
        "reset_rate": 0.02,
        "reset_after_rate": 0.04,
        "retry_after_secs": 1,
    });
    emu.faults(faults.clone());

    // First run: every token is revoked a third of the way in, and the
    // process is killed two thirds of the way in.
    let mut child = command(&dir, "migrate")
        .arg("-q")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut expired = false;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            break;
        }
        let stored = emu.stored() as usize;
        if !expired && stored * 3 >= total {
            let mut f = faults.clone();
            f["expire_tokens_now"] = json!(true);
            emu.faults(f);
            expired = true;
        }
        if stored * 3 >= total * 2 {
            break;
        }
    }
    let killed = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    eprintln!(
        "{mode}: first run {} with {} of {total} messages stored",
        if killed { "killed" } else { "finished" },
        emu.stored()
    );
    // A new process cannot know of a Retry-After its killed predecessor
    // was given (1 s here): the rerun comes after it, as an admin's would.
    std::thread::sleep(Duration::from_millis(1500));

    // Runs with the faults still on until one finishes cleanly.
    let mut finished = false;
    for _ in 0..3 {
        let out = migrate(&dir);
        if out.status.code() == Some(0) {
            finished = true;
            break;
        }
        eprintln!("{mode}: a run under faults ended with {}", explain(&out));
        std::thread::sleep(Duration::from_millis(1500));
    }
    emu.faults(json!({}));
    if !finished {
        let out = migrate(&dir);
        assert_eq!(out.status.code(), Some(0), "{mode}: {}", explain(&out));
    }
    let stats = emu.stats();
    let injected = &stats["total"]["faults_injected"];
    assert!(
        injected["reset_after"].as_u64().unwrap_or(0) > 0 && injected["503"].as_u64().unwrap_or(0) > 0,
        "{mode}: the faults did happen: {injected}"
    );
    assert!(
        stats["total"]["by_status"]["401"].as_u64().unwrap_or(0) > 0,
        "{mode}: no token expired mid-run"
    );
    assert_eq!(stats["total"]["retry_after_violations"], 0, "{:#}", stats["violations"]);
    for (email, _) in &users {
        assert_copied(mode, &lab.source.messages(email), &emu.dump(email));
    }

    let before = writes(&emu.stats());
    let out = migrate(&dir);
    assert_eq!(out.status.code(), Some(0), "{mode} rerun: {}", explain(&out));
    assert_eq!(writes(&emu.stats()), before, "{mode}: the rerun wrote to Exchange");
}

#[test]
fn import_mime_faults_leave_no_gap_and_no_duplicate() {
    faults_leave_no_gap_and_no_duplicate("import-mime");
}

#[test]
fn json_faults_leave_no_gap_and_no_duplicate() {
    faults_leave_no_gap_and_no_duplicate("json");
}

/// A large attachment's upload range that Exchange took but whose answer
/// the client never got: in json mode the copy is finished by finding the
/// attachment or sending it through a new upload session, not by deleting
/// the message and creating it again. `fault` is the one `fail_next` entry
/// for the first `PUT /_upload/…`; `message_bytes` the size of the
/// source message holding the attachment (it picks how many ranges there
/// are); `timeout_seconds` the client's Graph timeout; `sessions` the
/// upload sessions it should take.
fn a_lost_upload_answer_does_not_recreate_the_message(
    name: &str,
    fault: Value,
    message_bytes: usize,
    timeout_seconds: u64,
    sessions: u64,
) {
    let lab = Lab::new(1);
    let (email, password) = user(1);
    let mut msgs = mailgen::generate(900, 4, 1500);
    msgs.push(mailgen::big_message(message_bytes, 9));
    lab.source.deliver(&email, "INBOX", &msgs);
    let source = lab.source.messages(&email);
    assert_eq!(source.len(), 5);

    let emu = Emu::start(&[]);
    let dir = lab.setup(name, &emu, "json", &[(email.clone(), password)], "");
    let config = dir.join("cutover.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(
        "timeout_seconds = 20\n",
        &format!("timeout_seconds = {timeout_seconds}\n"),
    );
    std::fs::write(&config, text).unwrap();
    emu.faults(json!({ "fail_next": [fault] }));

    let out = migrate(&dir);
    assert_eq!(out.status.code(), Some(0), "{name}: {}", explain(&out));
    // A slow range is counted once its late answer is sent, which can be
    // after the run ended.
    let injected = |stats: &Value| -> u64 {
        stats["total"]["faults_injected"]
            .as_object()
            .map_or(0, |f| f.values().filter_map(Value::as_u64).sum())
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stats = emu.stats();
    while injected(&stats) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        stats = emu.stats();
    }
    let total = &stats["total"];
    assert_eq!(
        injected(&stats),
        1,
        "{name}: the upload fault did happen, once: {total:#}"
    );
    // Every message once, the attachment with the source's bytes (size
    // and SHA-256 of the decoded content).
    let dump = emu.dump(&email);
    assert_copied("json", &source, &dump);
    let big = dump["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["subject"].as_str().unwrap().starts_with("Large attachment"))
        .unwrap();
    let attachments = big["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1, "{name}: {attachments:#?}");
    assert_eq!(attachments[0]["createdVia"], "upload-session");
    // Made once: the copy was finished, not discarded and made again.
    assert_eq!(
        (
            total["by_kind"]["messages.create"].as_u64(),
            total["by_kind"]["messages.delete"].as_u64().unwrap_or(0)
        ),
        (Some(source.len() as u64), 0),
        "{name}: messages created and deleted: {total:#}"
    );
    assert_eq!(
        total["by_kind"]["attachments.createUploadSession"].as_u64(),
        Some(sessions),
        "{name}: upload sessions: {total:#}"
    );
}

/// The first range of a two-range attachment is committed and its
/// connection dropped: the repeat is refused (416), the attachment is not
/// on the message, so it is sent again through a fresh upload session.
#[test]
fn an_upload_range_committed_before_its_connection_dropped_does_not_recreate_the_message() {
    a_lost_upload_answer_does_not_recreate_the_message(
        "upload-reset-after",
        json!({"drop": "reset_after", "on": "PUT /_upload/", "count": 1}),
        6 * 1024 * 1024,
        20,
        2,
    );
}

/// The only range of an attachment is committed but answered after the
/// client's timeout (2 s plus 1 s per MiB): the repeat finds the session
/// gone (404), and the attachment is found on the message, complete.
#[test]
fn an_upload_range_answered_after_the_client_timed_out_does_not_recreate_the_message() {
    a_lost_upload_answer_does_not_recreate_the_message(
        "upload-slow",
        json!({"slow_ms": 8000, "on": "PUT /_upload/", "count": 1}),
        9 * 1024 * 1024 / 2,
        2,
        1,
    );
}

/// A copy whose body Exchange lost half of, a copy missing its
/// attachment and a message the mailbox is too small for: each fails
/// `verify` (exit 1) and is named with what differs, while the listing
/// alone (`--quick`, which is all verify read before) sees nothing wrong
/// in the first two. Once the damaged copies are deleted, migrate copies
/// them again (verify recorded them as failed) and verify passes.
#[test]
fn verify_reads_content_and_finds_a_cut_body_a_lost_attachment_and_a_refused_message() {
    let lab = Lab::new(1);
    let (email, password) = user(1);
    let long_text = format!(
        "From: Ann <ann@example.org>\r\nTo: {email}\r\nSubject: Minutes\r\nMessage-ID: <minutes.1@example.org>\r\n\
Date: Tue, 3 Mar 2026 10:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
        "Item discussed and agreed by everyone present. ".repeat(200)
    );
    let with_attachment = format!(
        "From: Bob <bob@example.org>\r\nTo: {email}\r\nSubject: Contract\r\nMessage-ID: <contract.1@example.org>\r\n\
Date: Tue, 3 Mar 2026 11:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain\r\n\r\nThe signed contract is attached.\r\n\
--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"contract.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b1--\r\n",
        "JVBERi0xLjQKJcfsj6IK".repeat(400)
    );
    let plain = mailgen::generate(91, 5, 1500);
    let mut inbox: Vec<GenMessage> = plain;
    for raw in [long_text, with_attachment] {
        inbox.push(GenMessage {
            raw: raw.into_bytes(),
            ..inbox[0].clone()
        });
    }
    lab.source.deliver(&email, "INBOX", &inbox);
    let emu = Emu::start(&[]);
    let dir = lab.setup("verify-content", &emu, "json", &[(email.clone(), password)], "");
    let out = migrate(&dir);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let (code, v) = verify(&dir);
    assert_eq!(code, Some(0), "a faithful copy passes: {v:#}");

    // Exchange loses half a body and an attachment.
    let dump = emu.dump(&email);
    let by_id = |id: &str| {
        dump["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["internetMessageId"] == id)
            .unwrap_or_else(|| panic!("{id} in the target"))
            .clone()
    };
    let minutes = by_id("<minutes.1@example.org>");
    let contract = by_id("<contract.1@example.org>");
    let minutes_body = minutes["body"]["content"].as_str().unwrap().to_owned();
    let half = &minutes_body[..minutes_body.len() / 2];
    let (status, _) = emu.call(
        reqwest::Method::PATCH,
        &format!(
            "{}/_emulator/mailboxes/{email}/messages/{}",
            emu.base,
            minutes["id"].as_str().unwrap()
        ),
        None,
        Some(json!({ "bodyContent": half })),
    );
    assert_eq!(status, 200);
    let token = emu.token();
    let users = format!("{}/v1.0/users/{email}", emu.base);
    let attachment = contract["attachments"][0]["id"].as_str().unwrap();
    let (status, _) = emu.call(
        reqwest::Method::DELETE,
        &format!(
            "{users}/messages/{}/attachments/{attachment}",
            contract["id"].as_str().unwrap()
        ),
        Some(&token),
        None,
    );
    assert_eq!(status, 204);

    // The listing alone does not see it.
    let out = command(&dir, "verify").arg("--quick").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "--quick compares listings only: {}",
        explain(&out)
    );

    let (code, v) = verify(&dir);
    assert_eq!(code, Some(1), "{v:#}");
    let uv = &v["users"][0];
    assert_eq!(uv["missing_count"], 2, "{uv:#}");
    assert_eq!(uv["folders"][0]["content_differs"], 2, "{uv:#}");
    let status_of = |id: &str| {
        uv["missing"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["message_id"] == id)
            .map(|m| m["status"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("{id} missing: {uv:#}"))
    };
    let minutes_status = status_of("<minutes.1@example.org>");
    assert!(minutes_status.contains("body is cut short"), "{minutes_status}");
    let contract_status = status_of("<contract.1@example.org>");
    assert!(
        contract_status.contains("attachment \"contract.pdf\"") && contract_status.contains("missing"),
        "{contract_status}"
    );

    // The admin deletes the damaged copies; migrate copies them again.
    for m in [&minutes, &contract] {
        let (status, _) = emu.call(
            reqwest::Method::DELETE,
            &format!("{users}/messages/{}", m["id"].as_str().unwrap()),
            Some(&token),
            None,
        );
        assert_eq!(status, 204);
    }
    let out = migrate(&dir);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let (code, v) = verify(&dir);
    assert_eq!(code, Some(0), "copied again: {v:#}");

    // A message larger than the mailbox takes: missing, exit 1.
    let (status, _) = emu.call(
        reqwest::Method::POST,
        &format!("{}/_emulator/mailboxes", emu.base),
        None,
        Some(json!({ "address": email, "maxReceiveSizeBytes": 400_000 })),
    );
    assert!(status == 200 || status == 201, "{status}");
    lab.source
        .deliver(&email, "INBOX", &[mailgen::big_message(600 * 1024, 7)]);
    let out = migrate(&dir);
    assert_ne!(
        out.status.code(),
        Some(0),
        "a refused message fails the run: {}",
        explain(&out)
    );
    let (code, v) = verify(&dir);
    assert_eq!(code, Some(1), "{v:#}");
    assert_eq!(v["users"][0]["missing_count"], 1, "{v:#}");
}
